/* SPDX-License-Identifier: MIT */
/*
 * The virtio PCI transport, modern interface (virtio 1.2 §4.1): capabilities,
 * the BAR0 register regions, MSI-X, notifications, feature negotiation,
 * device reset, and each device's I/O thread. See virtio_pci.h.
 */
#include "devices/virtio/virtio_pci_internal.h"

#include "core/log.h"
#include "core/sandbox.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* struct virtio_pci_cap (§4.1.4) field offsets. */
#define VCAP_LEN 2
#define VCAP_CFG_TYPE 3
#define VCAP_BAR 4
#define VCAP_ID 5
#define VCAP_OFFSET 8
#define VCAP_LENGTH 12
#define VCAP_SIZE 16
#define VCAP_NOTIFY_MULT 16 /* struct virtio_pci_notify_cap */
#define VCAP_NOTIFY_SIZE 20
#define VCAP_PCI_CFG_DATA 16 /* struct virtio_pci_cfg_cap */
#define VCAP_PCI_CFG_SIZE 20

static struct virtio_pci *vp_from_pci(struct pci_device *dev)
{
	return dev->opaque;
}

bool virtio_device_is_live(const struct virtio_device *vdev)
{
	return (vdev->status & VIRTIO_STATUS_DRIVER_OK) &&
	       !(vdev->status & (VIRTIO_STATUS_DEVICE_NEEDS_RESET | VIRTIO_STATUS_FAILED)) &&
	       !vdev->transport->stopped;
}

void virtio_device_lock(struct virtio_device *vdev)
{
	pthread_mutex_lock(&vdev->transport->lock);
}

void virtio_device_unlock(struct virtio_device *vdev)
{
	pthread_mutex_unlock(&vdev->transport->lock);
}

void virtio_device_kick(struct virtio_device *vdev, unsigned int q)
{
	uint64_t one = 1;

	if (q < vdev->nr_queues && write(vdev->transport->kick_fd[q], &one, sizeof(one)) < 0)
		log_debug("%s: queue %u kick lost", vdev->name, q);
}

/* ------------------------------------------------------------------ MSI-X */

static uint32_t vp_msix_word(const struct virtio_pci *vp, unsigned int vector, unsigned int off)
{
	return pci_cfg_get32(vp->msix_table, vector * PCI_MSIX_ENTRY_SIZE + off);
}

static bool vp_msix_vector_masked(const struct virtio_pci *vp, unsigned int vector)
{
	return vp->msix_masked ||
	       (vp_msix_word(vp, vector, PCI_MSIX_ENTRY_VECTOR_CTRL) & PCI_MSIX_ENTRY_CTRL_MASKBIT);
}

static void vp_msix_fire(struct virtio_pci *vp, unsigned int vector)
{
	uint64_t addr = vp_msix_word(vp, vector, 0) | (uint64_t)vp_msix_word(vp, vector, 4) << 32;
	uint32_t data = vp_msix_word(vp, vector, 8);

	if (vp->cfg.msi_send(vp->cfg.opaque, addr, data) < 0)
		log_debug("%s: MSI-X vector %u not delivered", vp->vdev->name, vector);
}

/* Send MSI-X @vector, or remember it in the PBA while it is masked (PCI 3.0 §6.8.3.4). */
static void vp_msix_send(struct virtio_pci *vp, uint16_t vector)
{
	if (vector == VIRTIO_MSI_NO_VECTOR || vector >= vp->nr_vectors)
		return;
	if (vp_msix_vector_masked(vp, vector)) {
		vp->msix_pba[vector / 64] |= 1ULL << (vector % 64);
		return;
	}
	vp_msix_fire(vp, vector);
}

/* After an unmask: deliver what became pending while masked. */
static void vp_msix_deliver_pending(struct virtio_pci *vp)
{
	if (!vp->msix_enabled || vp->msix_masked)
		return;
	for (unsigned int v = 0; v < vp->nr_vectors; v++) {
		uint64_t bit = 1ULL << (v % 64);

		if ((vp->msix_pba[v / 64] & bit) && !vp_msix_vector_masked(vp, v)) {
			vp->msix_pba[v / 64] &= ~bit;
			vp_msix_fire(vp, v);
		}
	}
}

static void vp_raise_config(struct virtio_pci *vp)
{
	vp->isr |= VIRTIO_PCI_ISR_CONFIG;
	if (vp->msix_enabled)
		vp_msix_send(vp, vp->config_vector);
}

void virtio_device_notify_queue(struct virtio_device *vdev, unsigned int q)
{
	struct virtio_pci *vp = vdev->transport;

	if (q >= vdev->nr_queues || !virtq_should_notify(&vdev->vqs[q]))
		return;
	/* With MSI-X on, the ISR queue bit is not used (§4.1.4.5.1). */
	if (vp->msix_enabled)
		vp_msix_send(vp, vp->queue_vector[q]);
	else
		vp->isr |= VIRTIO_PCI_ISR_QUEUE;
}

void virtio_device_set_needs_reset(struct virtio_device *vdev, const char *why)
{
	struct virtio_pci *vp = vdev->transport;

	if (vdev->status & VIRTIO_STATUS_DEVICE_NEEDS_RESET)
		return;
	if (!vp->needs_reset_logged)
		log_warn("%s: %s; the device stops until the guest resets it", vdev->name, why);
	vp->needs_reset_logged = true;
	vdev->status |= VIRTIO_STATUS_DEVICE_NEEDS_RESET;
	if (vdev->status & VIRTIO_STATUS_DRIVER_OK)
		vp_raise_config(vp);
}

void virtio_device_config_changed(struct virtio_device *vdev)
{
	struct virtio_pci *vp = vdev->transport;

	vp->config_generation++;
	if (vdev->status & VIRTIO_STATUS_DRIVER_OK)
		vp_raise_config(vp);
}

/* ---------------------------------------------------- common configuration */

uint64_t vp_offered(const struct virtio_pci *vp)
{
	return vp->vdev->features | VIRTIO_BIT(VIRTIO_F_VERSION_1);
}

static struct virtq *vp_selected(struct virtio_pci *vp)
{
	return vp->queue_select < vp->vdev->nr_queues ? &vp->vdev->vqs[vp->queue_select] : NULL;
}

/* The common configuration structure as the driver would read it now. */
static void vp_common_snapshot(struct virtio_pci *vp, uint8_t *b)
{
	struct virtio_device *vdev = vp->vdev;
	struct virtq *q = vp_selected(vp);
	uint64_t df = vp_offered(vp);

	memset(b, 0, VIRTIO_PCI_COMMON_CFG_SIZE);
	pci_cfg_set32(b, VIRTIO_PCI_COMMON_DFSELECT, vp->dfselect);
	pci_cfg_set32(b, VIRTIO_PCI_COMMON_DF,
	              vp->dfselect == 0   ? (uint32_t)df
	              : vp->dfselect == 1 ? (uint32_t)(df >> 32)
	                                  : 0);
	pci_cfg_set32(b, VIRTIO_PCI_COMMON_GFSELECT, vp->gfselect);
	pci_cfg_set32(b, VIRTIO_PCI_COMMON_GF,
	              vp->gfselect == 0   ? (uint32_t)vp->driver_features
	              : vp->gfselect == 1 ? (uint32_t)(vp->driver_features >> 32)
	                                  : 0);
	pci_cfg_set16(b, VIRTIO_PCI_COMMON_MSIX, vp->config_vector);
	pci_cfg_set16(b, VIRTIO_PCI_COMMON_NUMQ, (uint16_t)vdev->nr_queues);
	b[VIRTIO_PCI_COMMON_STATUS] = vdev->status;
	b[VIRTIO_PCI_COMMON_CFGGENERATION] = vp->config_generation;
	pci_cfg_set16(b, VIRTIO_PCI_COMMON_Q_SELECT, vp->queue_select);
	pci_cfg_set16(b, VIRTIO_PCI_COMMON_Q_MSIX,
	              q ? vp->queue_vector[vp->queue_select] : VIRTIO_MSI_NO_VECTOR);
	if (!q)
		return;
	pci_cfg_set16(b, VIRTIO_PCI_COMMON_Q_SIZE, q->size);
	pci_cfg_set16(b, VIRTIO_PCI_COMMON_Q_ENABLE, q->started);
	pci_cfg_set16(b, VIRTIO_PCI_COMMON_Q_NOFF, vp->queue_select);
	pci_cfg_set32(b, VIRTIO_PCI_COMMON_Q_DESCLO, (uint32_t)q->desc_gpa);
	pci_cfg_set32(b, VIRTIO_PCI_COMMON_Q_DESCHI, (uint32_t)(q->desc_gpa >> 32));
	pci_cfg_set32(b, VIRTIO_PCI_COMMON_Q_AVAILLO, (uint32_t)q->avail_gpa);
	pci_cfg_set32(b, VIRTIO_PCI_COMMON_Q_AVAILHI, (uint32_t)(q->avail_gpa >> 32));
	pci_cfg_set32(b, VIRTIO_PCI_COMMON_Q_USEDLO, (uint32_t)q->used_gpa);
	pci_cfg_set32(b, VIRTIO_PCI_COMMON_Q_USEDHI, (uint32_t)(q->used_gpa >> 32));
}

/* Device reset (§2.4): whether written by the driver or done at teardown. */
void vp_reset(struct virtio_pci *vp)
{
	struct virtio_device *vdev = vp->vdev;

	if (vdev->ops->reset)
		vdev->ops->reset(vdev);
	for (unsigned int q = 0; q < vdev->nr_queues; q++) {
		virtq_reset(&vdev->vqs[q]);
		vp->queue_vector[q] = VIRTIO_MSI_NO_VECTOR;
	}
	vdev->status = 0;
	vdev->acked = 0;
	vp->driver_features = 0;
	vp->dfselect = 0;
	vp->gfselect = 0;
	vp->queue_select = 0;
	vp->config_vector = VIRTIO_MSI_NO_VECTOR;
	vp->isr = 0;
	vp->needs_reset_logged = false;
}

/* FEATURES_OK: accept the driver's features only if they are a subset of ours (§3.1.1). */
static bool vp_accept_features(struct virtio_pci *vp)
{
	uint64_t f = vp->driver_features;

	if ((f & ~vp_offered(vp)) || !(f & VIRTIO_BIT(VIRTIO_F_VERSION_1))) {
		log_info(
		    "%s: the driver accepted features 0x%llx, not a subset of the offered 0x%llx "
		    "with VERSION_1; FEATURES_OK refused",
		    vp->vdev->name, (unsigned long long)f, (unsigned long long)vp_offered(vp));
		return false;
	}
	vp->vdev->acked = f;
	return true;
}

static void vp_driver_ok(struct virtio_pci *vp)
{
	struct virtio_device *vdev = vp->vdev;

	if (vdev->ops->activate && vdev->ops->activate(vdev) < 0) {
		virtio_device_set_needs_reset(vdev, "the device could not start");
		return;
	}
	/* Buffers the driver made available before DRIVER_OK are looked at now. */
	for (unsigned int q = 0; q < vdev->nr_queues; q++)
		if (vdev->vqs[q].started)
			virtio_device_kick(vdev, q);
}

static void vp_write_status(struct virtio_pci *vp, uint8_t v)
{
	struct virtio_device *vdev = vp->vdev;
	uint8_t old = vdev->status;
	uint8_t nw;

	if (v == 0) {
		vp_reset(vp);
		return;
	}
	/* Only the device sets NEEDS_RESET; the driver only adds bits until it resets. */
	nw = old | (v & (uint8_t)~VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	if ((nw & VIRTIO_STATUS_FEATURES_OK) && !(old & VIRTIO_STATUS_FEATURES_OK) &&
	    !vp_accept_features(vp))
		nw &= (uint8_t)~VIRTIO_STATUS_FEATURES_OK;
	if ((nw & VIRTIO_STATUS_DRIVER_OK) && !(nw & VIRTIO_STATUS_FEATURES_OK))
		nw &= (uint8_t)~VIRTIO_STATUS_DRIVER_OK; /* no DRIVER_OK without features */
	vdev->status = nw;
	if ((nw & VIRTIO_STATUS_DRIVER_OK) && !(old & VIRTIO_STATUS_DRIVER_OK) && !vp->stopped &&
	    !(nw & (VIRTIO_STATUS_FAILED | VIRTIO_STATUS_DEVICE_NEEDS_RESET)))
		vp_driver_ok(vp);
}

static void vp_enable_queue(struct virtio_pci *vp, struct virtq *q)
{
	struct virtio_device *vdev = vp->vdev;

	if (q->started || vp->stopped)
		return;
	if (virtq_start(q, vp->cfg.mem, virtio_device_has(vdev, VIRTIO_F_RING_EVENT_IDX),
	                virtio_device_has(vdev, VIRTIO_F_RING_INDIRECT_DESC)) < 0) {
		virtio_device_set_needs_reset(
		    vdev, "the driver enabled a queue with a bad size or address");
		return;
	}
	if (virtio_device_is_live(vdev))
		virtio_device_kick(vdev, vp->queue_select);
}

static uint64_t vp_set_half(uint64_t old, bool high, uint32_t v)
{
	return high ? (old & 0xffffffffULL) | (uint64_t)v << 32 : (old & ~0xffffffffULL) | v;
}

/* A write of @v to the whole field at @off (size from the layout). */
static void vp_common_set(struct virtio_pci *vp, uint32_t off, uint32_t v)
{
	struct virtio_device *vdev = vp->vdev;
	struct virtq *q = vp_selected(vp);
	bool features_open = !(vdev->status & VIRTIO_STATUS_FEATURES_OK);

	switch (off) {
	case VIRTIO_PCI_COMMON_DFSELECT:
		vp->dfselect = v;
		break;
	case VIRTIO_PCI_COMMON_GFSELECT:
		vp->gfselect = v;
		break;
	case VIRTIO_PCI_COMMON_GF:
		if (features_open && vp->gfselect < 2)
			vp->driver_features =
			    vp_set_half(vp->driver_features, vp->gfselect == 1, v);
		break;
	case VIRTIO_PCI_COMMON_MSIX:
		vp->config_vector = v < vp->nr_vectors ? (uint16_t)v : VIRTIO_MSI_NO_VECTOR;
		break;
	case VIRTIO_PCI_COMMON_STATUS:
		vp_write_status(vp, (uint8_t)v);
		break;
	case VIRTIO_PCI_COMMON_Q_SELECT:
		vp->queue_select = (uint16_t)v;
		break;
	case VIRTIO_PCI_COMMON_Q_MSIX:
		if (q)
			vp->queue_vector[vp->queue_select] =
			    v < vp->nr_vectors ? (uint16_t)v : VIRTIO_MSI_NO_VECTOR;
		break;
	case VIRTIO_PCI_COMMON_Q_ENABLE:
		/* Writing 0 is not allowed (§4.1.4.3.2); a started queue is left alone. */
		if (q && v == 1)
			vp_enable_queue(vp, q);
		break;
	default:
		break;
	}
	/* A queue's size and addresses are fixed once it is enabled. */
	if (!q || q->started)
		return;
	switch (off) {
	case VIRTIO_PCI_COMMON_Q_SIZE:
		q->size = (uint16_t)v;
		break;
	case VIRTIO_PCI_COMMON_Q_DESCLO:
	case VIRTIO_PCI_COMMON_Q_DESCHI:
		q->desc_gpa = vp_set_half(q->desc_gpa, off == VIRTIO_PCI_COMMON_Q_DESCHI, v);
		break;
	case VIRTIO_PCI_COMMON_Q_AVAILLO:
	case VIRTIO_PCI_COMMON_Q_AVAILHI:
		q->avail_gpa = vp_set_half(q->avail_gpa, off == VIRTIO_PCI_COMMON_Q_AVAILHI, v);
		break;
	case VIRTIO_PCI_COMMON_Q_USEDLO:
	case VIRTIO_PCI_COMMON_Q_USEDHI:
		q->used_gpa = vp_set_half(q->used_gpa, off == VIRTIO_PCI_COMMON_Q_USEDHI, v);
		break;
	default:
		break;
	}
}

/* Fields of struct virtio_pci_common_cfg, 64-bit ones as two halves. */
static const uint8_t vp_common_fields[][2] = {
    {VIRTIO_PCI_COMMON_DFSELECT, 4},  {VIRTIO_PCI_COMMON_DF, 4},
    {VIRTIO_PCI_COMMON_GFSELECT, 4},  {VIRTIO_PCI_COMMON_GF, 4},
    {VIRTIO_PCI_COMMON_MSIX, 2},      {VIRTIO_PCI_COMMON_NUMQ, 2},
    {VIRTIO_PCI_COMMON_STATUS, 1},    {VIRTIO_PCI_COMMON_CFGGENERATION, 1},
    {VIRTIO_PCI_COMMON_Q_SELECT, 2},  {VIRTIO_PCI_COMMON_Q_SIZE, 2},
    {VIRTIO_PCI_COMMON_Q_MSIX, 2},    {VIRTIO_PCI_COMMON_Q_ENABLE, 2},
    {VIRTIO_PCI_COMMON_Q_NOFF, 2},    {VIRTIO_PCI_COMMON_Q_DESCLO, 4},
    {VIRTIO_PCI_COMMON_Q_DESCHI, 4},  {VIRTIO_PCI_COMMON_Q_AVAILLO, 4},
    {VIRTIO_PCI_COMMON_Q_AVAILHI, 4}, {VIRTIO_PCI_COMMON_Q_USEDLO, 4},
    {VIRTIO_PCI_COMMON_Q_USEDHI, 4},  {VIRTIO_PCI_COMMON_Q_NDATA, 2},
    {VIRTIO_PCI_COMMON_Q_RESET, 2},
};

/*
 * An access of any width to the common configuration. The driver uses each
 * field's natural width (§4.1.3.1); other widths are split into fields, and
 * a partial write merges with the field's current value.
 */
static void vp_common_io(struct virtio_pci *vp, uint32_t off, uint8_t *data, uint32_t len,
                         bool is_write)
{
	uint8_t snap[VIRTIO_PCI_COMMON_CFG_SIZE];

	vp_common_snapshot(vp, snap);
	if (!is_write) {
		for (uint32_t i = 0; i < len; i++)
			data[i] = off + i < sizeof(snap) ? snap[off + i] : 0;
		return;
	}
	for (size_t f = 0; f < sizeof(vp_common_fields) / sizeof(vp_common_fields[0]); f++) {
		uint32_t fo = vp_common_fields[f][0], fs = vp_common_fields[f][1];
		uint8_t val[4] = {0};
		bool hit = false;

		memcpy(val, snap + fo, fs);
		for (uint32_t i = 0; i < len; i++) {
			if (off + i >= fo && off + i < fo + fs) {
				val[off + i - fo] = data[i];
				hit = true;
			}
		}
		if (hit)
			vp_common_set(vp, fo, pci_cfg_get32(val, 0));
	}
}

/* ---------------------------------------------------------------- BAR0 */

static void vp_msix_table_io(struct virtio_pci *vp, uint32_t off, uint8_t *data, uint32_t len,
                             bool is_write)
{
	uint32_t size = vp->nr_vectors * PCI_MSIX_ENTRY_SIZE;

	for (uint32_t i = 0; i < len; i++) {
		if (off + i >= size) {
			if (!is_write)
				data[i] = 0;
			continue;
		}
		if (is_write)
			vp->msix_table[off + i] = data[i];
		else
			data[i] = vp->msix_table[off + i];
	}
	if (is_write)
		vp_msix_deliver_pending(vp);
}

static void vp_msix_pba_io(struct virtio_pci *vp, uint32_t off, uint8_t *data, uint32_t len,
                           bool is_write)
{
	const uint8_t *pba = (const uint8_t *)vp->msix_pba;

	if (is_write)
		return; /* read-only (PCI 3.0 §6.8.2.10) */
	for (uint32_t i = 0; i < len; i++)
		data[i] = off + i < sizeof(vp->msix_pba) ? pba[off + i] : 0;
}

/* One access to BAR0 at @off; device lock held. */
static void vp_bar_access_locked(struct virtio_pci *vp, uint64_t off, uint8_t *data, uint32_t len,
                                 bool is_write)
{
	struct virtio_device *vdev = vp->vdev;

	if (!is_write)
		memset(data, 0, len);
	if (off >= VIRTIO_PCI_BAR_SIZE || len > VIRTIO_PCI_BAR_SIZE - off)
		return;
	/* Every region is 4 KiB; an access straddling two reaches neither. */
	if ((off & 0xfff) + len > 0x1000)
		return;
	switch (off & ~0xfffULL) {
	case VIRTIO_PCI_COMMON_OFF:
		vp_common_io(vp, (uint32_t)off, data, len, is_write);
		break;
	case VIRTIO_PCI_ISR_OFF:
		/* Reading the ISR clears it (§4.1.4.5). */
		if (!is_write && off == VIRTIO_PCI_ISR_OFF) {
			data[0] = vp->isr;
			vp->isr = 0;
		}
		break;
	case VIRTIO_PCI_DEVICE_OFF: {
		uint32_t o = (uint32_t)(off - VIRTIO_PCI_DEVICE_OFF);
		uint32_t n = o < vdev->config_size ? vdev->config_size - o : 0;

		if (n > len)
			n = len;
		if (!n)
			break;
		if (is_write && vdev->ops->config_write)
			vdev->ops->config_write(vdev, o, data, n);
		else if (!is_write && vdev->ops->config_read)
			vdev->ops->config_read(vdev, o, data, n);
		break;
	}
	case VIRTIO_PCI_NOTIFY_OFF:
		if (is_write)
			virtio_device_kick(vdev, (unsigned int)(off - VIRTIO_PCI_NOTIFY_OFF) /
			                             VIRTIO_PCI_NOTIFY_MULTIPLIER);
		break;
	case VIRTIO_PCI_MSIX_TABLE_OFF:
		vp_msix_table_io(vp, (uint32_t)(off - VIRTIO_PCI_MSIX_TABLE_OFF), data, len,
		                 is_write);
		break;
	case VIRTIO_PCI_MSIX_PBA_OFF:
		vp_msix_pba_io(vp, (uint32_t)(off - VIRTIO_PCI_MSIX_PBA_OFF), data, len, is_write);
		break;
	default:
		break;
	}
}

void virtio_pci_bar_io(struct pci_device *dev, unsigned int bar, uint64_t offset, void *data,
                       uint32_t len, bool is_write)
{
	struct virtio_pci *vp = vp_from_pci(dev);

	if (bar != VIRTIO_PCI_BAR) {
		if (!is_write)
			memset(data, 0xff, len);
		return;
	}
	pthread_mutex_lock(&vp->lock);
	vp_bar_access_locked(vp, offset, data, len, is_write);
	pthread_mutex_unlock(&vp->lock);
}

/* ------------------------------------------------- configuration space */

static bool overlaps(uint32_t reg, uint32_t len, uint32_t start, uint32_t size)
{
	return reg < start + size && start < reg + len;
}

/*
 * VIRTIO_PCI_CAP_PCI_CFG (§4.1.4.9): the driver points cap.bar/offset/length
 * at a BAR0 register and accesses it through pci_cfg_data. Host lock held.
 */
static void vp_pcicfg_access(struct virtio_pci *vp, bool is_write)
{
	uint8_t *cap = vp->pci.config + vp->pcicfg_cap;
	uint32_t off = pci_cfg_get32(cap, VCAP_OFFSET), len = pci_cfg_get32(cap, VCAP_LENGTH);
	uint8_t buf[4] = {0};

	if (cap[VCAP_BAR] != VIRTIO_PCI_BAR || (len != 1 && len != 2 && len != 4) || off % len ||
	    off >= VIRTIO_PCI_BAR_SIZE)
		return;
	if (is_write)
		memcpy(buf, cap + VCAP_PCI_CFG_DATA, len);
	pthread_mutex_lock(&vp->lock);
	vp_bar_access_locked(vp, off, buf, len, is_write);
	pthread_mutex_unlock(&vp->lock);
	if (!is_write)
		memcpy(cap + VCAP_PCI_CFG_DATA, buf, len);
}

/* Move the ioeventfds to where BAR0 decodes now (nowhere if memory is off). Host lock held. */
void vp_update_ioeventfds(struct virtio_pci *vp)
{
	uint16_t cmd = pci_cfg_get16(vp->pci.config, PCI_CFG_COMMAND);
	uint64_t base = (cmd & PCI_CMD_MEMORY) ? pci_device_bar_address(&vp->pci, 0) : 0;

	if (!vp->cfg.ioeventfd || base == vp->ioevent_base)
		return;
	for (unsigned int q = 0; q < vp->vdev->nr_queues; q++) {
		uint64_t off = VIRTIO_PCI_NOTIFY_OFF + q * VIRTIO_PCI_NOTIFY_MULTIPLIER;

		if (vp->ioevent_base)
			vp->cfg.ioeventfd(vp->cfg.opaque, vp->ioevent_base + off, 2, vp->kick_fd[q],
			                  false);
		if (base &&
		    vp->cfg.ioeventfd(vp->cfg.opaque, base + off, 2, vp->kick_fd[q], true) < 0)
			log_debug("%s: no ioeventfd for queue %u; notifications exit to nestvm",
			          vp->vdev->name, q);
	}
	vp->ioevent_base = base;
}

void vp_update_msix(struct virtio_pci *vp)
{
	uint16_t ctl = pci_cfg_get16(vp->pci.config, (uint32_t)vp->msix_cap + PCI_MSIX_FLAGS);

	vp->msix_enabled = ctl & PCI_MSIX_FLAGS_ENABLE;
	vp->msix_masked = ctl & PCI_MSIX_FLAGS_MASKALL;
}

static void vp_config_read(struct pci_device *dev, uint32_t reg, uint32_t len)
{
	struct virtio_pci *vp = vp_from_pci(dev);

	if (overlaps(reg, len, (uint32_t)vp->pcicfg_cap + VCAP_PCI_CFG_DATA, 4))
		vp_pcicfg_access(vp, false);
}

static void vp_config_write(struct pci_device *dev, uint32_t reg, uint32_t len)
{
	struct virtio_pci *vp = vp_from_pci(dev);

	if (overlaps(reg, len, (uint32_t)vp->msix_cap + PCI_MSIX_FLAGS, 2)) {
		pthread_mutex_lock(&vp->lock);
		vp_update_msix(vp);
		vp_msix_deliver_pending(vp);
		pthread_mutex_unlock(&vp->lock);
	}
	if (overlaps(reg, len, PCI_CFG_COMMAND, 2) || overlaps(reg, len, PCI_CFG_BAR0, 4))
		vp_update_ioeventfds(vp);
	if (overlaps(reg, len, (uint32_t)vp->pcicfg_cap + VCAP_PCI_CFG_DATA, 4))
		vp_pcicfg_access(vp, true);
}

static const struct pci_device_ops virtio_pci_ops = {
    .config_read = vp_config_read,
    .config_write = vp_config_write,
    .bar_io = virtio_pci_bar_io,
};

/* Append one struct virtio_pci_cap of @size bytes describing a BAR0 region. */
static int vp_add_vendor_cap(struct virtio_pci *vp, uint8_t type, uint32_t offset, uint32_t length,
                             uint8_t size)
{
	int off = pci_device_add_capability(&vp->pci, PCI_CAP_ID_VNDR, size);
	uint8_t *c;

	if (off < 0)
		return off;
	c = vp->pci.config + off;
	c[VCAP_LEN] = size;
	c[VCAP_CFG_TYPE] = type;
	c[VCAP_BAR] = VIRTIO_PCI_BAR;
	pci_cfg_set32(c, VCAP_OFFSET, offset);
	pci_cfg_set32(c, VCAP_LENGTH, length);
	return off;
}

static int vp_build_config_space(struct virtio_pci *vp)
{
	struct virtio_device *vdev = vp->vdev;
	int off, r;

	pci_device_init(&vp->pci, VIRTIO_PCI_VENDOR_ID, VIRTIO_PCI_DEVICE_ID_BASE + vdev->device_id,
	                vdev->class_code, VIRTIO_PCI_REVISION);
	pci_device_set_subsystem(&vp->pci, VIRTIO_PCI_VENDOR_ID, VP_SUBSYSTEM_ID);
	vp->pci.ops = &virtio_pci_ops;
	vp->pci.opaque = vp;
	vp->pci.name = vdev->name;
	r = pci_device_set_bar(&vp->pci, VIRTIO_PCI_BAR, PCI_BAR_MEM32, VIRTIO_PCI_BAR_SIZE, false);
	if (r < 0)
		return r;
	if (vp->cfg.bar_addr)
		pci_device_set_bar_address(&vp->pci, VIRTIO_PCI_BAR, vp->cfg.bar_addr);

	off = vp_add_vendor_cap(vp, VIRTIO_PCI_CAP_COMMON_CFG, VIRTIO_PCI_COMMON_OFF,
	                        VIRTIO_PCI_COMMON_CFG_SIZE, VCAP_SIZE);
	if (off >= 0)
		off =
		    vp_add_vendor_cap(vp, VIRTIO_PCI_CAP_ISR_CFG, VIRTIO_PCI_ISR_OFF, 1, VCAP_SIZE);
	if (off >= 0 && vdev->config_size)
		off = vp_add_vendor_cap(vp, VIRTIO_PCI_CAP_DEVICE_CFG, VIRTIO_PCI_DEVICE_OFF,
		                        vdev->config_size, VCAP_SIZE);
	if (off >= 0)
		off = vp_add_vendor_cap(vp, VIRTIO_PCI_CAP_NOTIFY_CFG, VIRTIO_PCI_NOTIFY_OFF,
		                        vdev->nr_queues * VIRTIO_PCI_NOTIFY_MULTIPLIER,
		                        VCAP_NOTIFY_SIZE);
	if (off >= 0)
		pci_cfg_set32(vp->pci.config, (uint32_t)off + VCAP_NOTIFY_MULT,
		              VIRTIO_PCI_NOTIFY_MULTIPLIER);
	if (off >= 0)
		off = vp_add_vendor_cap(vp, VIRTIO_PCI_CAP_PCI_CFG, 0, 0, VCAP_PCI_CFG_SIZE);
	if (off < 0)
		return off;
	/* The window's bar, offset, length and data are the driver's to write. */
	vp->pcicfg_cap = off;
	vp->pci.wmask[off + VCAP_BAR] = 0xff;
	pci_cfg_set32(vp->pci.wmask, (uint32_t)off + VCAP_OFFSET, 0xffffffff);
	pci_cfg_set32(vp->pci.wmask, (uint32_t)off + VCAP_LENGTH, 0xffffffff);
	pci_cfg_set32(vp->pci.wmask, (uint32_t)off + VCAP_PCI_CFG_DATA, 0xffffffff);

	off = pci_device_add_capability(&vp->pci, PCI_CAP_ID_MSIX, PCI_MSIX_CAP_SIZE);
	if (off < 0)
		return off;
	vp->msix_cap = off;
	pci_cfg_set16(vp->pci.config, (uint32_t)off + PCI_MSIX_FLAGS,
	              (uint16_t)(vp->nr_vectors - 1));
	pci_cfg_set16(vp->pci.wmask, (uint32_t)off + PCI_MSIX_FLAGS,
	              PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
	pci_cfg_set32(vp->pci.config, (uint32_t)off + PCI_MSIX_TABLE,
	              VIRTIO_PCI_MSIX_TABLE_OFF | VIRTIO_PCI_BAR);
	pci_cfg_set32(vp->pci.config, (uint32_t)off + PCI_MSIX_PBA,
	              VIRTIO_PCI_MSIX_PBA_OFF | VIRTIO_PCI_BAR);
	/* Every vector starts masked (PCI 3.0 §6.8.2.9). */
	for (unsigned int v = 0; v < vp->nr_vectors; v++)
		pci_cfg_set32(vp->msix_table, v * PCI_MSIX_ENTRY_SIZE + PCI_MSIX_ENTRY_VECTOR_CTRL,
		              PCI_MSIX_ENTRY_CTRL_MASKBIT);
	return 0;
}

/* ---------------------------------------------------------- I/O thread */

static struct virtio_watch *vp_find_watch(struct virtio_pci *vp, int fd)
{
	for (struct virtio_watch *w = vp->watches; w; w = w->next)
		if (w->fd == fd)
			return w;
	return NULL;
}

int virtio_device_watch(struct virtio_device *vdev, int fd, uint32_t events, virtio_watch_fn fn,
                        void *arg)
{
	struct virtio_pci *vp = vdev->transport;
	struct virtio_watch *w = vp_find_watch(vp, fd);
	struct epoll_event ev = {.events = events};

	if (w) {
		w->events = events;
		ev.data.ptr = w;
		return epoll_ctl(vp->epfd, EPOLL_CTL_MOD, fd, &ev) < 0 ? -errno : 0;
	}
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	*w = (struct virtio_watch){.fd = fd, .events = events, .fn = fn, .arg = arg};
	ev.data.ptr = w;
	if (epoll_ctl(vp->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int r = -errno;

		free(w);
		return r;
	}
	w->next = vp->watches;
	vp->watches = w;
	return 0;
}

void virtio_device_unwatch(struct virtio_device *vdev, int fd)
{
	struct virtio_pci *vp = vdev->transport;

	for (struct virtio_watch **p = &vp->watches; *p; p = &(*p)->next) {
		struct virtio_watch *w = *p;

		if (w->fd != fd)
			continue;
		epoll_ctl(vp->epfd, EPOLL_CTL_DEL, fd, NULL);
		*p = w->next;
		/* An event for it may be in the I/O thread's current batch: free it after. */
		w->dead = true;
		w->next = vp->graveyard;
		vp->graveyard = w;
		return;
	}
}

static void vp_free_graveyard(struct virtio_pci *vp)
{
	while (vp->graveyard) {
		struct virtio_watch *w = vp->graveyard;

		vp->graveyard = w->next;
		free(w);
	}
}

static void vp_kick_ready(struct virtio_device *vdev, int fd, uint32_t revents, void *arg)
{
	unsigned int q = (unsigned int)(uintptr_t)arg;
	uint64_t n;

	(void)revents;
	if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		log_debug("%s: queue %u eventfd: %s", vdev->name, q, strerror(errno));
	if (virtio_device_is_live(vdev) && vdev->vqs[q].started && !vdev->vqs[q].broken &&
	    vdev->ops->queue_notify)
		vdev->ops->queue_notify(vdev, q);
}

/* wake_fd: the thread looks at stopping and parkers after this batch. */
static void vp_wake_ready(struct virtio_device *vdev, int fd, uint32_t revents, void *arg)
{
	uint64_t n;

	(void)revents;
	(void)arg;
	if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		log_debug("%s: wake eventfd: %s", vdev->name, strerror(errno));
}

static void vp_wake(struct virtio_pci *vp)
{
	uint64_t one = 1;

	if (write(vp->wake_fd, &one, sizeof(one)) < 0)
		log_debug("%s: wake-up lost", vp->vdev->name);
}

static void timespec_add_ns(struct timespec *ts, long long ns)
{
	ts->tv_sec += (time_t)(ns / 1000000000LL);
	ts->tv_nsec += (long)(ns % 1000000000LL);
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/* After a restore: every enabled queue once, as if notified, and the model's debts. */
static void vp_restart(struct virtio_pci *vp)
{
	struct virtio_device *vdev = vp->vdev;

	for (unsigned int q = 0; q < vdev->nr_queues; q++)
		if (vdev->vqs[q].started)
			virtio_device_kick(vdev, q);
	if (vdev->ops->restarted)
		vdev->ops->restarted(vdev);
}

/*
 * A restored device waits (parked) for the guest to run: true once
 * cfg->guest_running says so and nobody else wants the thread parked. Asks
 * without the device lock, at most every VP_RUN_POLL_NS. Lock held.
 */
static bool vp_guest_runs(struct virtio_pci *vp)
{
	struct timespec ts;
	bool running;

	if (!vp->cfg.guest_running)
		return true;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	timespec_add_ns(&ts, VP_RUN_POLL_NS);
	pthread_cond_timedwait(&vp->park_cond, &vp->lock, &ts);
	if (vp->parkers || vp->stopping || !vp->until_run)
		return false;
	pthread_mutex_unlock(&vp->lock);
	running = vp->cfg.guest_running(vp->cfg.opaque);
	pthread_mutex_lock(&vp->lock);
	return running && !vp->parkers && !vp->stopping && vp->until_run;
}

/*
 * The I/O thread's park point, between two batches of events (lock held):
 * while a quiesce, restore or reset wants it, run ops->quiesce once and
 * wait; a restored device then waits for the guest to run.
 */
static void vp_park_point(struct virtio_pci *vp)
{
	struct virtio_device *vdev = vp->vdev;
	bool restart = false;

	while (!vp->stopping && (vp->parkers || vp->until_run)) {
		if (vp->parkers) {
			if (!vp->parked) {
				vp->park_result = vdev->ops->quiesce
				                      ? vdev->ops->quiesce(vdev, &vp->park_deadline)
				                      : 0;
				vp->parked = true;
				pthread_cond_broadcast(&vp->park_cond);
			}
			pthread_cond_wait(&vp->park_cond, &vp->lock);
			continue;
		}
		vp->parked = false;
		if (vp_guest_runs(vp)) {
			vp->until_run = false;
			restart = true;
		}
	}
	vp->parked = false;
	if (restart && !vp->stopping)
		vp_restart(vp);
}

int vp_park(struct virtio_pci *vp, int timeout_ms)
{
	struct virtio_device *vdev = vp->vdev;
	struct timespec deadline;
	int r = 0;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	timespec_add_ns(&deadline, (long long)timeout_ms * 1000000LL);
	vp->parkers++;
	vp->park_deadline = deadline;
	if (!vp->thread_running) {
		/* No thread (stopped, or it failed): nothing else runs; finish here. */
		vp->parked = true;
		r = vdev->ops->quiesce && !vp->stopped ? vdev->ops->quiesce(vdev, &deadline) : 0;
		if (r < 0)
			vp_unpark(vp);
		return r;
	}
	pthread_cond_broadcast(&vp->park_cond);
	vp_wake(vp);
	while (!vp->parked && vp->thread_running && r == 0)
		r = pthread_cond_timedwait(&vp->park_cond, &vp->lock, &deadline);
	if (vp->parked)
		r = vp->park_result;
	else if (!vp->thread_running)
		r = 0; /* it ended (virtio_pci_stop() reset the device): nothing runs */
	else
		r = -ETIMEDOUT;
	if (r < 0)
		vp_unpark(vp);
	return r;
}

void vp_unpark(struct virtio_pci *vp)
{
	vp->parkers--;
	/* The next park runs ops->quiesce again. */
	vp->parked = false;
	pthread_cond_broadcast(&vp->park_cond);
}

static void *vp_io_thread(void *arg)
{
	struct virtio_pci *vp = arg;
	struct epoll_event evs[VP_EPOLL_BATCH];
	bool stop = false;

	/* vsock alone connects to host sockets (the guest's connections to PATH_PORT). */
	sandbox_enter(vp->vdev->device_id == VIRTIO_ID_VSOCK ? SANDBOX_VSOCK : SANDBOX_DEVICE,
	              vp->vdev->name);
	while (!stop) {
		int n = epoll_wait(vp->epfd, evs, VP_EPOLL_BATCH, -1);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			log_error("%s: I/O thread: epoll_wait: %s", vp->vdev->name,
			          strerror(errno));
			break;
		}
		pthread_mutex_lock(&vp->lock);
		for (int i = 0; i < n; i++) {
			struct virtio_watch *w = evs[i].data.ptr;

			if (!w->dead)
				w->fn(vp->vdev, w->fd, evs[i].events, w->arg);
		}
		vp_free_graveyard(vp);
		vp_park_point(vp);
		stop = vp->stopping;
		pthread_mutex_unlock(&vp->lock);
	}
	pthread_mutex_lock(&vp->lock);
	vp->thread_running = false;
	pthread_cond_broadcast(&vp->park_cond);
	pthread_mutex_unlock(&vp->lock);
	return NULL;
}

static int vp_add_internal_watch(struct virtio_pci *vp, struct virtio_watch *w, int fd,
                                 virtio_watch_fn fn, void *arg)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = w};

	*w = (struct virtio_watch){.fd = fd, .events = EPOLLIN, .fn = fn, .arg = arg};
	return epoll_ctl(vp->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

static int vp_cond_init(pthread_cond_t *cond)
{
	pthread_condattr_t ca;
	int r = pthread_condattr_init(&ca);

	if (r == 0)
		r = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	if (r == 0)
		r = pthread_cond_init(cond, &ca);
	pthread_condattr_destroy(&ca);
	return r;
}

/* Start the I/O thread with every signal blocked: the main thread takes SIGINT/SIGTERM. */
static int vp_start_thread(struct virtio_pci *vp)
{
	sigset_t all, old;
	int r;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	vp->thread_running = true;
	r = sandbox_thread_create(&vp->thread, vp_io_thread, vp);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r) {
		vp->thread_running = false;
		return -r;
	}
	vp->thread_started = true;
	return 0;
}

/* ------------------------------------------------------------ lifecycle */

int virtio_pci_create(struct virtio_device *vdev, const struct virtio_pci_config *cfg,
                      struct virtio_pci **out)
{
	struct virtio_pci *vp;
	int r;

	*out = NULL;
	if (!vdev || !vdev->ops || !cfg || !cfg->mem || !cfg->msi_send || !vdev->nr_queues ||
	    vdev->nr_queues > VIRTIO_PCI_MAX_QUEUES || !vdev->vqs ||
	    vdev->config_size > VIRTIO_PCI_DEVICE_SIZE)
		return -EINVAL;
	vp = calloc(1, sizeof(*vp));
	if (!vp)
		return -ENOMEM;
	vp->vdev = vdev;
	vp->cfg = *cfg;
	vp->epfd = vp->wake_fd = -1;
	for (unsigned int q = 0; q < VIRTIO_PCI_MAX_QUEUES; q++)
		vp->kick_fd[q] = -1;
	vp->nr_vectors = vdev->nr_queues + 1;
	vdev->transport = vp;
	vdev->status = 0;
	vdev->acked = 0;
	r = pthread_mutex_init(&vp->lock, NULL);
	if (r) {
		free(vp);
		return -r;
	}
	r = vp_cond_init(&vp->park_cond);
	if (r) {
		pthread_mutex_destroy(&vp->lock);
		free(vp);
		return -r;
	}
	for (unsigned int q = 0; q < vdev->nr_queues; q++)
		vp->queue_vector[q] = VIRTIO_MSI_NO_VECTOR;
	vp->config_vector = VIRTIO_MSI_NO_VECTOR;
	r = vp_build_config_space(vp);
	if (r < 0)
		goto err;
	memcpy(vp->config_init, vp->pci.config, sizeof(vp->config_init));

	vp->epfd = epoll_create1(EPOLL_CLOEXEC);
	vp->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vp->epfd < 0 || vp->wake_fd < 0) {
		r = -errno;
		goto err;
	}
	r = vp_add_internal_watch(vp, &vp->wake_watch, vp->wake_fd, vp_wake_ready, NULL);
	for (unsigned int q = 0; q < vdev->nr_queues && r == 0; q++) {
		vp->kick_fd[q] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (vp->kick_fd[q] < 0) {
			r = -errno;
			break;
		}
		r = vp_add_internal_watch(vp, &vp->kick_watch[q], vp->kick_fd[q], vp_kick_ready,
		                          (void *)(uintptr_t)q);
	}
	if (r == 0)
		r = vp_start_thread(vp);
	if (r < 0)
		goto err;
	*out = vp;
	return 0;
err:
	virtio_pci_destroy(vp);
	return r;
}

struct pci_device *virtio_pci_device(struct virtio_pci *vp)
{
	return &vp->pci;
}

void virtio_pci_stop(struct virtio_pci *vp)
{
	if (!vp)
		return;
	if (vp->thread_started) {
		pthread_mutex_lock(&vp->lock);
		vp->stopping = true;
		pthread_cond_broadcast(&vp->park_cond);
		pthread_mutex_unlock(&vp->lock);
		vp_wake(vp);
		pthread_join(vp->thread, NULL);
		vp->thread_started = false;
	}
	pthread_mutex_lock(&vp->lock);
	if (!vp->stopped) {
		vp->stopped = true;
		vp->until_run = false;
		vp_reset(vp);
		if (vp->vdev->ops->stop)
			vp->vdev->ops->stop(vp->vdev);
	}
	pthread_mutex_unlock(&vp->lock);
}

void virtio_pci_destroy(struct virtio_pci *vp)
{
	if (!vp)
		return;
	virtio_pci_stop(vp);
	if (vp->ioevent_base && vp->cfg.ioeventfd) {
		for (unsigned int q = 0; q < vp->vdev->nr_queues; q++)
			vp->cfg.ioeventfd(vp->cfg.opaque,
			                  vp->ioevent_base + VIRTIO_PCI_NOTIFY_OFF +
			                      q * VIRTIO_PCI_NOTIFY_MULTIPLIER,
			                  2, vp->kick_fd[q], false);
	}
	while (vp->watches) {
		struct virtio_watch *w = vp->watches;

		vp->watches = w->next;
		free(w);
	}
	vp_free_graveyard(vp);
	for (unsigned int q = 0; q < VIRTIO_PCI_MAX_QUEUES; q++)
		if (vp->kick_fd[q] >= 0)
			close(vp->kick_fd[q]);
	if (vp->wake_fd >= 0)
		close(vp->wake_fd);
	if (vp->epfd >= 0)
		close(vp->epfd);
	pthread_cond_destroy(&vp->park_cond);
	pthread_mutex_destroy(&vp->lock);
	vp->vdev->transport = NULL;
	free(vp);
}
