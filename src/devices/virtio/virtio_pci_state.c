/* SPDX-License-Identifier: MIT */
/*
 * A virtio PCI function as a device of the lifecycle layer (core/device.h):
 * quiesce and resume, save and restore of the transport's state (common
 * configuration, MSI-X, the PCI configuration space, each queue) around
 * the model's own, reset. See "Lifecycle" in virtio_pci.h for the rules
 * and the saved layout.
 */
#include "devices/virtio/virtio_pci_internal.h"

#include "core/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VP_STATUS_KNOWN                                                                            \
	(VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_DRIVER_OK |              \
	 VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DEVICE_NEEDS_RESET | VIRTIO_STATUS_FAILED)

/* The transport's part of a saved state, read and checked before anything changes. */
struct vp_state {
	uint8_t status;
	uint64_t driver_features;
	uint32_t dfselect;
	uint32_t gfselect;
	uint16_t config_vector;
	uint16_t queue_select;
	uint8_t config_generation;
	uint8_t isr;
	uint8_t config[PCI_CFG_SPACE_SIZE];
	uint8_t msix_table[VP_MAX_VECTORS * PCI_MSIX_ENTRY_SIZE];
	uint64_t msix_pba[VP_PBA_WORDS];
	struct virtq_state q[VIRTIO_PCI_MAX_QUEUES];
	uint16_t queue_vector[VIRTIO_PCI_MAX_QUEUES];
};

struct virtio_device *virtio_pci_vdev(struct virtio_pci *vp)
{
	return vp->vdev;
}

bool virtio_state_end(struct dev_state_in *in)
{
	return dsi_check(in, in->pos == in->len, "%zu bytes of its state are left over",
	                 in->len - in->pos);
}

/* ------------------------------------------------------ quiesce, resume */

int virtio_pci_quiesce(struct virtio_pci *vp)
{
	int r;

	pthread_mutex_lock(&vp->lock);
	r = vp_park(vp, VIRTIO_PCI_QUIESCE_TIMEOUT_MS);
	pthread_mutex_unlock(&vp->lock);
	if (r < 0)
		log_error("%s: cannot quiesce: %s", vp->vdev->name, strerror(-r));
	return r;
}

/* Look at every enabled queue once, as a notification would make the I/O thread do. */
static void vp_kick_all(struct virtio_pci *vp)
{
	struct virtio_device *vdev = vp->vdev;

	for (unsigned int q = 0; q < vdev->nr_queues; q++)
		if (vdev->vqs[q].started)
			virtio_device_kick(vdev, q);
}

void virtio_pci_resume(struct virtio_pci *vp)
{
	pthread_mutex_lock(&vp->lock);
	if (vp->parkers > 0)
		vp_unpark(vp);
	/* Kicks that came while parked were read; buffers may be waiting anyway. */
	vp_kick_all(vp);
	pthread_mutex_unlock(&vp->lock);
}

/* ------------------------------------------------------------------ save */

/*
 * One queue: a chain the model holds and will take again is saved as not
 * taken (the driver cannot reuse its slot or descriptors before it is
 * used). Any other chain in flight means the device was not quiesced,
 * unless it waits for a reset: it dropped the chain that broke it, and the
 * driver's reset forgets it.
 */
static int vp_save_queue(struct virtio_pci *vp, unsigned int q, struct dev_state *out)
{
	struct virtio_device *vdev = vp->vdev;
	struct virtq_state st;
	unsigned int held = vdev->ops->held ? vdev->ops->held(vdev, q) : 0;
	uint16_t in_flight;

	virtq_save(&vdev->vqs[q], &st);
	in_flight = (uint16_t)(st.last_avail - st.used_idx);
	if (held > in_flight) {
		log_error("%s: queue %u: %u chains held but %u in flight", vdev->name, q, held,
		          in_flight);
		return -EIO;
	}
	st.last_avail = (uint16_t)(st.last_avail - held);
	if (in_flight != held && !(vdev->status & VIRTIO_STATUS_DEVICE_NEEDS_RESET)) {
		log_error("%s: queue %u has %u requests in flight; quiesce it first", vdev->name, q,
		          in_flight - held);
		return -EBUSY;
	}
	virtq_state_put(out, &st);
	ds_put_u16(out, vp->queue_vector[q]);
	return 0;
}

static int vp_save_locked(struct virtio_pci *vp, struct dev_state *out)
{
	struct virtio_device *vdev = vp->vdev;
	int r = 0;

	ds_put_u16(out, vdev->device_id);
	ds_put_u16(out, (uint16_t)vdev->nr_queues);
	ds_put_u16(out, (uint16_t)vp->nr_vectors);
	ds_put_u8(out, vdev->status);
	ds_put_u64(out, vp->driver_features);
	ds_put_u32(out, vp->dfselect);
	ds_put_u32(out, vp->gfselect);
	ds_put_u16(out, vp->config_vector);
	ds_put_u16(out, vp->queue_select);
	ds_put_u8(out, vp->config_generation);
	ds_put_u8(out, vp->isr);
	/* The vCPUs are parked: nothing changes the configuration space under us. */
	ds_put_bytes(out, vp->pci.config, PCI_CFG_SPACE_SIZE);
	ds_put_bytes(out, vp->msix_table, vp->nr_vectors * PCI_MSIX_ENTRY_SIZE);
	for (unsigned int w = 0; w < (vp->nr_vectors + 63) / 64; w++)
		ds_put_u64(out, vp->msix_pba[w]);
	for (unsigned int q = 0; q < vdev->nr_queues && r == 0; q++)
		r = vp_save_queue(vp, q, out);
	if (r == 0 && vdev->ops->save)
		r = vdev->ops->save(vdev, out);
	return r;
}

int virtio_pci_save(struct virtio_pci *vp, struct dev_state *out)
{
	int r;

	pthread_mutex_lock(&vp->lock);
	r = vp_save_locked(vp, out);
	pthread_mutex_unlock(&vp->lock);
	return r;
}

/* --------------------------------------------------------------- restore */

/* A vector the driver could have written: one of ours, or none. */
static bool vp_vector_ok(const struct virtio_pci *vp, uint16_t v)
{
	return v == VIRTIO_MSI_NO_VECTOR || v < vp->nr_vectors;
}

/* The header fields: which device, status and features. */
static void vp_read_header(struct virtio_pci *vp, struct dev_state_in *in, struct vp_state *st)
{
	struct virtio_device *vdev = vp->vdev;
	uint16_t id = dsi_get_u16(in), nq = dsi_get_u16(in), nv = dsi_get_u16(in);
	uint64_t offered = vp_offered(vp);

	dsi_check(in, id == vdev->device_id && nq == vdev->nr_queues && nv == vp->nr_vectors,
	          "it is a device %u with %u queues and %u vectors where this one is a %u with "
	          "%u and %u: saved with another configuration",
	          id, nq, nv, vdev->device_id, vdev->nr_queues, vp->nr_vectors);
	st->status = dsi_get_u8(in);
	st->driver_features = dsi_get_u64(in);
	st->dfselect = dsi_get_u32(in);
	st->gfselect = dsi_get_u32(in);
	st->config_vector = dsi_get_u16(in);
	st->queue_select = dsi_get_u16(in);
	st->config_generation = dsi_get_u8(in);
	st->isr = dsi_get_u8(in);
	dsi_check(in, !(st->status & ~VP_STATUS_KNOWN), "device status 0x%02x has unknown bits",
	          st->status);
	dsi_check(
	    in, !(st->status & VIRTIO_STATUS_DRIVER_OK) || (st->status & VIRTIO_STATUS_FEATURES_OK),
	    "device status 0x%02x has DRIVER_OK without FEATURES_OK", st->status);
	/* What vp_accept_features() would have refused. */
	dsi_check(in,
	          !(st->status & VIRTIO_STATUS_FEATURES_OK) ||
	              (!(st->driver_features & ~offered) &&
	               (st->driver_features & VIRTIO_BIT(VIRTIO_F_VERSION_1))),
	          "negotiated features 0x%llx are not a subset of the offered 0x%llx with "
	          "VERSION_1",
	          (unsigned long long)st->driver_features, (unsigned long long)offered);
	dsi_check(in, vp_vector_ok(vp, st->config_vector),
	          "configuration MSI-X vector %u is out of range (%u vectors)", st->config_vector,
	          vp->nr_vectors);
	dsi_check(in, !(st->isr & ~(VIRTIO_PCI_ISR_QUEUE | VIRTIO_PCI_ISR_CONFIG)),
	          "ISR 0x%02x has unknown bits", st->isr);
}

/* The configuration space and MSI-X: only what the guest could have written differs. */
static void vp_read_pci(struct virtio_pci *vp, struct dev_state_in *in, struct vp_state *st)
{
	unsigned int nw = (vp->nr_vectors + 63) / 64;

	dsi_get_bytes(in, st->config, PCI_CFG_SPACE_SIZE);
	for (unsigned int i = 0; i < PCI_CFG_SPACE_SIZE && !in->bad; i++) {
		uint8_t fixed = (uint8_t)~vp->pci.wmask[i];

		dsi_check(in, !((st->config[i] ^ vp->pci.config[i]) & fixed),
		          "its PCI configuration byte 0x%02x is 0x%02x where this device has "
		          "0x%02x: saved from another device",
		          i, st->config[i], vp->pci.config[i]);
	}
	dsi_get_bytes(in, st->msix_table, vp->nr_vectors * PCI_MSIX_ENTRY_SIZE);
	for (unsigned int w = 0; w < nw; w++) {
		unsigned int bits = vp->nr_vectors - 64 * w;
		uint64_t valid = bits >= 64 ? ~0ULL : (1ULL << bits) - 1;

		st->msix_pba[w] = dsi_get_u64(in);
		dsi_check(in, !(st->msix_pba[w] & ~valid),
		          "MSI-X pending bits 0x%llx name vectors it does not have",
		          (unsigned long long)st->msix_pba[w]);
	}
}

/*
 * Each queue: a state virtq_restore() accepts, vectors in range, nothing in
 * flight (but what a device waiting for a reset dropped).
 */
static void vp_read_queues(struct virtio_pci *vp, struct dev_state_in *in, struct vp_state *st)
{
	struct virtio_device *vdev = vp->vdev;
	uint64_t acked = (st->status & VIRTIO_STATUS_FEATURES_OK) ? st->driver_features : 0;

	for (unsigned int q = 0; q < vdev->nr_queues && !in->bad; q++) {
		struct virtq_state *qs = &st->q[q];
		struct virtq scratch = vdev->vqs[q];
		char why[120];

		virtq_state_get(in, qs);
		st->queue_vector[q] = dsi_get_u16(in);
		if (in->bad)
			break;
		dsi_check(in, virtq_restore(&scratch, vp->cfg.mem, qs, why, sizeof(why)) == 0,
		          "queue %u: %s", q, why);
		dsi_check(in,
		          (!qs->event_idx || (acked & VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX))) &&
		              (!qs->indirect || (acked & VIRTIO_BIT(VIRTIO_F_RING_INDIRECT_DESC))),
		          "queue %u uses ring features the driver did not negotiate", q);
		dsi_check(in,
		          qs->last_avail == qs->used_idx ||
		              (st->status & VIRTIO_STATUS_DEVICE_NEEDS_RESET),
		          "queue %u has %u requests in flight: saved from a device not quiesced", q,
		          (uint16_t)(qs->last_avail - qs->used_idx));
		dsi_check(in, vp_vector_ok(vp, st->queue_vector[q]),
		          "queue %u MSI-X vector %u is out of range (%u vectors)", q,
		          st->queue_vector[q], vp->nr_vectors);
	}
}

/* Load a checked state into the device, which was just reset. Lock held. */
static void vp_apply(struct virtio_pci *vp, const struct vp_state *st)
{
	struct virtio_device *vdev = vp->vdev;
	char why[120];

	vdev->status = st->status;
	vdev->acked = (st->status & VIRTIO_STATUS_FEATURES_OK) ? st->driver_features : 0;
	vp->driver_features = st->driver_features;
	vp->dfselect = st->dfselect;
	vp->gfselect = st->gfselect;
	vp->config_vector = st->config_vector;
	vp->queue_select = st->queue_select;
	vp->config_generation = st->config_generation;
	vp->isr = st->isr;
	vp->needs_reset_logged = st->status & VIRTIO_STATUS_DEVICE_NEEDS_RESET;
	for (unsigned int i = 0; i < PCI_CFG_SPACE_SIZE; i++)
		vp->pci.config[i] = (uint8_t)((vp->pci.config[i] & ~vp->pci.wmask[i]) |
		                              (st->config[i] & vp->pci.wmask[i]));
	memcpy(vp->msix_table, st->msix_table, vp->nr_vectors * PCI_MSIX_ENTRY_SIZE);
	memcpy(vp->msix_pba, st->msix_pba, sizeof(vp->msix_pba));
	vp_update_msix(vp);
	for (unsigned int q = 0; q < vdev->nr_queues; q++) {
		vp->queue_vector[q] = st->queue_vector[q];
		/* Checked on a copy already: it cannot fail. */
		if (virtq_restore(&vdev->vqs[q], vp->cfg.mem, &st->q[q], why, sizeof(why)) < 0)
			log_error("%s: queue %u: %s", vdev->name, q, why);
	}
}

/* Read and check everything, then load it; the I/O thread is parked. Lock held. */
static int vp_restore_parked(struct virtio_pci *vp, struct dev_state_in *in, struct vp_state *st,
                             uint32_t version)
{
	struct virtio_device *vdev = vp->vdev;
	int r;

	vp_read_header(vp, in, st);
	vp_read_pci(vp, in, st);
	vp_read_queues(vp, in, st);
	if (in->bad)
		return -EBADMSG;
	/* In-flight requests of the device as created are finished (quiesce) or dropped. */
	vp_reset(vp);
	if (vdev->ops->restore)
		r = vdev->ops->restore(vdev, in, version);
	else
		r = virtio_state_end(in) ? 0 : -EBADMSG;
	if (r == 0 && in->bad)
		r = -EBADMSG;
	if (r < 0)
		return r;
	vp_apply(vp, st);
	/* What a started device set up then (virtio-blk: it watches its disk's completions). */
	if (virtio_device_is_live(vdev) && vdev->ops->activate) {
		r = vdev->ops->activate(vdev);
		if (r < 0) {
			dsi_check(in, false, "the device cannot start again: %s", strerror(-r));
			vp_reset(vp);
			return r;
		}
	}
	vp_update_ioeventfds(vp);
	/* The I/O thread waits for the guest to run, then looks at every queue. */
	vp->until_run = true;
	return 0;
}

int virtio_pci_restore(struct virtio_pci *vp, struct dev_state_in *in, uint32_t version)
{
	struct vp_state *st;
	int r;

	if (!dsi_check(in, version == VIRTIO_PCI_STATE_VERSION,
	               "state version %u is not one this nestvm reads (%u)", version,
	               VIRTIO_PCI_STATE_VERSION))
		return -EBADMSG;
	st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	pthread_mutex_lock(&vp->lock);
	if (vp->stopped) {
		dsi_check(in, false, "the device is stopped");
		r = -ESHUTDOWN;
	} else {
		r = vp_park(vp, VIRTIO_PCI_QUIESCE_TIMEOUT_MS);
		if (r < 0)
			dsi_check(in, false, "its I/O thread did not stop: %s", strerror(-r));
	}
	if (r == 0) {
		r = vp_restore_parked(vp, in, st, version);
		vp_unpark(vp);
	}
	pthread_mutex_unlock(&vp->lock);
	free(st);
	return r;
}

/* ----------------------------------------------------------------- reset */

void virtio_pci_reset(struct virtio_pci *vp)
{
	bool parked;

	pthread_mutex_lock(&vp->lock);
	/* Parked, the I/O thread finishes the model's requests itself; else vp_reset() waits. */
	parked = vp_park(vp, VIRTIO_PCI_QUIESCE_TIMEOUT_MS) == 0;
	vp_reset(vp);
	vp->until_run = false;
	for (unsigned int i = 0; i < PCI_CFG_SPACE_SIZE; i++)
		vp->pci.config[i] = (uint8_t)((vp->pci.config[i] & ~vp->pci.wmask[i]) |
		                              (vp->config_init[i] & vp->pci.wmask[i]));
	memset(vp->msix_table, 0, sizeof(vp->msix_table));
	for (unsigned int v = 0; v < vp->nr_vectors; v++)
		pci_cfg_set32(vp->msix_table, v * PCI_MSIX_ENTRY_SIZE + PCI_MSIX_ENTRY_VECTOR_CTRL,
		              PCI_MSIX_ENTRY_CTRL_MASKBIT);
	memset(vp->msix_pba, 0, sizeof(vp->msix_pba));
	vp_update_msix(vp);
	vp_update_ioeventfds(vp);
	if (parked)
		vp_unpark(vp);
	pthread_mutex_unlock(&vp->lock);
}

/* ------------------------------------------------------ the device_ops */

static int vp_dev_quiesce(void *dev)
{
	return virtio_pci_quiesce(dev);
}

static void vp_dev_resume(void *dev)
{
	virtio_pci_resume(dev);
}

static void vp_dev_reset(void *dev)
{
	virtio_pci_reset(dev);
}

static int vp_dev_save(void *dev, struct dev_state *out)
{
	return virtio_pci_save(dev, out);
}

static int vp_dev_restore(void *dev, struct dev_state_in *in, uint32_t version)
{
	return virtio_pci_restore(dev, in, version);
}

/* The transport, then the model it carried. */
static void vp_dev_destroy(void *dev)
{
	struct virtio_pci *vp = dev;
	struct virtio_device *vdev;

	if (!vp)
		return;
	vdev = vp->vdev;
	virtio_pci_destroy(vp);
	if (vdev->ops->destroy)
		vdev->ops->destroy(vdev);
}

const struct device_ops virtio_pci_device_ops = {
    .kind = "virtio-pci",
    .version = VIRTIO_PCI_STATE_VERSION,
    .quiesce = vp_dev_quiesce,
    .resume = vp_dev_resume,
    .reset = vp_dev_reset,
    .save = vp_dev_save,
    .restore = vp_dev_restore,
    .destroy = vp_dev_destroy,
};
