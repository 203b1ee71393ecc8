/* SPDX-License-Identifier: MIT */
/*
 * A minimal virtio PCI driver for unit tests: it plays the guest against a
 * virtio_pci transport on a PCI host, with its rings and buffers in a guest
 * memory of its own, and records the MSI-X messages and ioeventfd
 * registrations the transport makes. No KVM. Include after cmocka.h.
 *
 * For save and restore: vd_save() quiesces the device and keeps its state
 * and the guest (memory and the driver's ring bookkeeping); vd_load_guest()
 * puts that guest into another struct vd, whose fresh device vd_restore()
 * then restores, as a restore into a new process would. guest_stopped
 * plays the vCPUs not running yet (the transport's cfg->guest_running).
 */
#ifndef NESTVM_TESTS_VIRTIO_TEST_DRIVER_H
#define NESTVM_TESTS_VIRTIO_TEST_DRIVER_H

#include "arch/x86/layout.h"
#include "devices/pci/pci_host.h"
#include "devices/virtio/virtio_pci.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define VD_MEM_SIZE (32ULL << 20)
#define VD_BAR LAYOUT_PCI_MMIO32
#define VD_RING_GPA 0x100000ULL /* rings of queue q at VD_RING_GPA + q * 0x10000 */
#define VD_BUF_GPA 0x400000ULL  /* buffers are bump-allocated from here */
#define VD_MAX_MSI 4096
#define VD_MAX_IOEVENTFD 16

struct vd_msi {
	uint64_t addr;
	uint32_t data;
};

struct vd_queue {
	uint16_t size;
	uint16_t avail_idx;
	uint16_t last_used;
	uint16_t next_desc;
	struct virtq_desc *desc;
	struct virtq_avail *avail;
	struct virtq_used *used;
};

struct vd {
	struct guest_mem mem;
	struct pci_host *host;
	struct virtio_pci *vp;
	struct pci_device *pci;
	struct virtio_device *vdev;
	uint64_t buf_next;
	struct vd_queue q[8];

	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct vd_msi msi[VD_MAX_MSI]; /* under lock */
	unsigned int nr_msi;           /* under lock */

	struct {
		uint64_t gpa;
		int fd;
	} ioeventfd[VD_MAX_IOEVENTFD];
	unsigned int nr_ioeventfd;
	bool use_ioeventfd;
	bool guest_stopped; /* atomic: what vd_guest_running() answers, negated */
};

static inline int vd_msi_send(void *opaque, uint64_t addr, uint32_t data)
{
	struct vd *d = opaque;

	pthread_mutex_lock(&d->lock);
	if (d->nr_msi < VD_MAX_MSI)
		d->msi[d->nr_msi] = (struct vd_msi){addr, data};
	d->nr_msi++;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
	return 0;
}

static inline int vd_ioeventfd(void *opaque, uint64_t gpa, uint32_t len, int fd, bool assign)
{
	struct vd *d = opaque;

	assert_int_equal(len, 2);
	if (assign) {
		assert_true(d->nr_ioeventfd < VD_MAX_IOEVENTFD);
		d->ioeventfd[d->nr_ioeventfd].gpa = gpa;
		d->ioeventfd[d->nr_ioeventfd].fd = fd;
		d->nr_ioeventfd++;
		return 0;
	}
	for (unsigned int i = 0; i < d->nr_ioeventfd; i++) {
		if (d->ioeventfd[i].gpa == gpa && d->ioeventfd[i].fd == fd) {
			d->ioeventfd[i] = d->ioeventfd[--d->nr_ioeventfd];
			return 0;
		}
	}
	fail_msg("unassigning an ioeventfd that was not assigned: 0x%llx", (unsigned long long)gpa);
	return -ENOENT;
}

static inline bool vd_guest_running(void *opaque)
{
	struct vd *d = opaque;

	return !__atomic_load_n(&d->guest_stopped, __ATOMIC_ACQUIRE);
}

static inline void vd_set_guest_stopped(struct vd *d, bool stopped)
{
	__atomic_store_n(&d->guest_stopped, stopped, __ATOMIC_RELEASE);
}

static inline void *vd_gpa(struct vd *d, uint64_t gpa, uint64_t len)
{
	void *p = guest_mem_ptr(&d->mem, gpa, len);

	assert_non_null(p);
	return p;
}

/* vd_alloc - @len bytes of zeroed guest memory, 16-byte aligned; returns the gpa. */
static inline uint64_t vd_alloc(struct vd *d, uint64_t len)
{
	uint64_t gpa = d->buf_next;

	d->buf_next = (d->buf_next + len + 15) & ~15ULL;
	assert_true(d->buf_next < VD_MEM_SIZE);
	memset(vd_gpa(d, gpa, len ? len : 1), 0, len);
	return gpa;
}

/*
 * vd_create_at - @vdev on a transport on a PCI host, BAR0 at @bar (0: not
 * assigned), memory decoding on if @decode.
 */
static inline struct vd *vd_create_at(struct virtio_device *vdev, bool use_ioeventfd, uint64_t bar,
                                      bool decode)
{
	struct vd *d = calloc(1, sizeof(*d));
	struct pci_host_config hc = {.mmio_base = LAYOUT_PCI_MMIO32};
	struct virtio_pci_config cfg = {.bar_addr = bar,
	                                .msi_send = vd_msi_send,
	                                .guest_running = vd_guest_running,
	                                .opaque = d};

	assert_non_null(d);
	pthread_mutex_init(&d->lock, NULL);
	pthread_cond_init(&d->cond, NULL);
	assert_int_equal(guest_mem_init(&d->mem, VD_MEM_SIZE, 0), 0);
	d->buf_next = VD_BUF_GPA;
	d->use_ioeventfd = use_ioeventfd;
	cfg.mem = &d->mem;
	if (use_ioeventfd)
		cfg.ioeventfd = vd_ioeventfd;
	assert_int_equal(pci_host_create(&hc, &d->host), 0);
	assert_int_equal(virtio_pci_create(vdev, &cfg, &d->vp), 0);
	d->pci = virtio_pci_device(d->vp);
	d->vdev = vdev;
	assert_int_equal(pci_host_add_device(d->host, d->pci), 0);
	if (decode)
		pci_host_config_write(d->host, d->pci->devfn, PCI_CFG_COMMAND, 2,
		                      PCI_CMD_MEMORY | PCI_CMD_MASTER);
	return d;
}

/* vd_create - @vdev on a transport on a PCI host, BAR0 at VD_BAR, memory decoding on. */
static inline struct vd *vd_create(struct virtio_device *vdev, bool use_ioeventfd)
{
	return vd_create_at(vdev, use_ioeventfd, VD_BAR, true);
}

/* vd_destroy - tear down the transport (not the device model) and the host. */
static inline void vd_destroy(struct vd *d)
{
	virtio_pci_destroy(d->vp);
	pci_host_destroy(d->host);
	guest_mem_destroy(&d->mem);
	pthread_mutex_destroy(&d->lock);
	pthread_cond_destroy(&d->cond);
	free(d);
}

/* BAR0 accesses through the PCI host's MMIO window, as a vCPU's would arrive. */
static inline uint64_t vd_read(struct vd *d, uint32_t off, uint32_t len)
{
	uint8_t b[8] = {0};
	uint64_t v = 0;

	pci_host_mmio_io(d->host, VD_BAR - LAYOUT_PCI_MMIO32 + off, b, len, false);
	memcpy(&v, b, len);
	return v;
}

static inline void vd_write(struct vd *d, uint32_t off, uint32_t len, uint64_t v)
{
	uint8_t b[8];

	memcpy(b, &v, sizeof(b));
	pci_host_mmio_io(d->host, VD_BAR - LAYOUT_PCI_MMIO32 + off, b, len, true);
}

static inline uint32_t vd_cfg_read(struct vd *d, uint32_t reg, uint32_t len)
{
	return pci_host_config_read(d->host, d->pci->devfn, reg, len);
}

static inline void vd_cfg_write(struct vd *d, uint32_t reg, uint32_t len, uint32_t v)
{
	pci_host_config_write(d->host, d->pci->devfn, reg, len, v);
}

static inline uint8_t vd_status(struct vd *d)
{
	return (uint8_t)vd_read(d, VIRTIO_PCI_COMMON_STATUS, 1);
}

static inline void vd_set_status(struct vd *d, uint8_t s)
{
	vd_write(d, VIRTIO_PCI_COMMON_STATUS, 1, s);
}

static inline uint64_t vd_device_features(struct vd *d)
{
	uint64_t f;

	vd_write(d, VIRTIO_PCI_COMMON_DFSELECT, 4, 0);
	f = vd_read(d, VIRTIO_PCI_COMMON_DF, 4);
	vd_write(d, VIRTIO_PCI_COMMON_DFSELECT, 4, 1);
	return f | vd_read(d, VIRTIO_PCI_COMMON_DF, 4) << 32;
}

static inline void vd_write_features(struct vd *d, uint64_t f)
{
	vd_write(d, VIRTIO_PCI_COMMON_GFSELECT, 4, 0);
	vd_write(d, VIRTIO_PCI_COMMON_GF, 4, (uint32_t)f);
	vd_write(d, VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
	vd_write(d, VIRTIO_PCI_COMMON_GF, 4, f >> 32);
}

/* vd_negotiate - reset, ACKNOWLEDGE, DRIVER, accept @want & offered; returns FEATURES_OK. */
static inline bool vd_negotiate(struct vd *d, uint64_t want)
{
	vd_set_status(d, 0);
	vd_set_status(d, VIRTIO_STATUS_ACKNOWLEDGE);
	vd_set_status(d, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	vd_write_features(d, want);
	vd_set_status(d,
	              VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
	return vd_status(d) & VIRTIO_STATUS_FEATURES_OK;
}

/* vd_msix_enable - MSI-X on; vector v gets address 0xfee00000 | v << 12, data 0x40 + v. */
static inline void vd_msix_enable(struct vd *d, unsigned int nr_vectors)
{
	int cap = 0;
	uint32_t p = vd_cfg_read(d, PCI_CFG_CAPABILITY_LIST, 1);

	for (int n = 0; p && n < 48; n++, p = vd_cfg_read(d, p + 1, 1))
		if (vd_cfg_read(d, p, 1) == PCI_CAP_ID_MSIX)
			cap = (int)p;
	assert_true(cap != 0);
	for (unsigned int v = 0; v < nr_vectors; v++) {
		uint32_t e = VIRTIO_PCI_MSIX_TABLE_OFF + v * PCI_MSIX_ENTRY_SIZE;

		vd_write(d, e, 4, 0xfee00000U | v << 12);
		vd_write(d, e + 4, 4, 0);
		vd_write(d, e + 8, 4, 0x40 + v);
		vd_write(d, e + 12, 4, 0); /* unmask */
	}
	vd_cfg_write(d, (uint32_t)cap + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE);
}

/* vd_setup_queue - rings for queue @q of @size entries, MSI-X vector @vector, enabled. */
static inline void vd_setup_queue(struct vd *d, unsigned int q, uint16_t size, uint16_t vector)
{
	struct vd_queue *vq = &d->q[q];
	uint64_t base = VD_RING_GPA + q * 0x10000ULL;
	uint64_t desc = base, avail = base + 0x8000, used = base + 0xa000;

	assert_true(VIRTQ_DESC_SIZE(size) <= 0x8000);
	memset(vd_gpa(d, base, 0x10000), 0, 0x10000);
	vd_write(d, VIRTIO_PCI_COMMON_Q_SELECT, 2, q);
	vd_write(d, VIRTIO_PCI_COMMON_Q_SIZE, 2, size);
	vd_write(d, VIRTIO_PCI_COMMON_Q_DESCLO, 4, (uint32_t)desc);
	vd_write(d, VIRTIO_PCI_COMMON_Q_DESCHI, 4, 0);
	vd_write(d, VIRTIO_PCI_COMMON_Q_AVAILLO, 4, (uint32_t)avail);
	vd_write(d, VIRTIO_PCI_COMMON_Q_AVAILHI, 4, 0);
	vd_write(d, VIRTIO_PCI_COMMON_Q_USEDLO, 4, (uint32_t)used);
	vd_write(d, VIRTIO_PCI_COMMON_Q_USEDHI, 4, 0);
	vd_write(d, VIRTIO_PCI_COMMON_Q_MSIX, 2, vector);
	vd_write(d, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
	*vq = (struct vd_queue){
	    .size = size,
	    .desc = vd_gpa(d, desc, VIRTQ_DESC_SIZE(size)),
	    .avail = vd_gpa(d, avail, VIRTQ_AVAIL_SIZE(size)),
	    .used = vd_gpa(d, used, VIRTQ_USED_SIZE(size)),
	};
}

struct vd_buf {
	uint64_t gpa;
	uint32_t len;
	bool write; /* device-writable */
};

/* vd_kick - notify queue @q through its notify register (or its ioeventfd). */
static inline void vd_kick(struct vd *d, unsigned int q)
{
	for (unsigned int i = 0; d->use_ioeventfd && i < d->nr_ioeventfd; i++) {
		if (d->ioeventfd[i].gpa ==
		    VD_BAR + VIRTIO_PCI_NOTIFY_OFF + q * VIRTIO_PCI_NOTIFY_MULTIPLIER) {
			uint64_t one = 1;

			/* What KVM does when the guest writes the notify address. */
			assert_int_equal(write(d->ioeventfd[i].fd, &one, sizeof(one)), sizeof(one));
			return;
		}
	}
	vd_write(d, VIRTIO_PCI_NOTIFY_OFF + q * VIRTIO_PCI_NOTIFY_MULTIPLIER, 2, q);
}

/* vd_submit - a chain of @n buffers on queue @q, made available (not kicked); returns the head. */
static inline uint16_t vd_submit(struct vd *d, unsigned int q, const struct vd_buf *bufs,
                                 unsigned int n)
{
	struct vd_queue *vq = &d->q[q];
	uint16_t head = vq->next_desc;

	for (unsigned int i = 0; i < n; i++) {
		uint16_t idx = (uint16_t)((head + i) % vq->size);

		vq->desc[idx] = (struct virtq_desc){
		    .addr = bufs[i].gpa,
		    .len = bufs[i].len,
		    .flags = (uint16_t)((bufs[i].write ? VIRTQ_DESC_F_WRITE : 0) |
		                        (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0)),
		    .next = (uint16_t)((idx + 1) % vq->size),
		};
	}
	vq->next_desc = (uint16_t)((head + n) % vq->size);
	vq->avail->ring[vq->avail_idx % vq->size] = head;
	__atomic_store_n(&vq->avail->idx, ++vq->avail_idx, __ATOMIC_RELEASE);
	return head;
}

static inline void vd_deadline(struct timespec *ts, int ms)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	ts->tv_sec += ms / 1000 + ts->tv_nsec / 1000000000L;
	ts->tv_nsec %= 1000000000L;
}

/* vd_wait_used - wait up to @ms for the next used element of queue @q; false on timeout. */
static inline bool vd_wait_used(struct vd *d, unsigned int q, struct virtq_used_elem *out, int ms)
{
	struct vd_queue *vq = &d->q[q];

	for (int waited = 0; waited <= ms; waited++) {
		if (__atomic_load_n(&vq->used->idx, __ATOMIC_ACQUIRE) != vq->last_used) {
			*out = vq->used->ring[vq->last_used % vq->size];
			vq->last_used++;
			return true;
		}
		usleep(1000);
	}
	return false;
}

/* vd_wait_msi - wait up to @ms until at least @n MSIs were sent; returns the count. */
static inline unsigned int vd_wait_msi(struct vd *d, unsigned int n, int ms)
{
	struct timespec ts;
	unsigned int got;

	vd_deadline(&ts, ms);
	pthread_mutex_lock(&d->lock);
	while (d->nr_msi < n && pthread_cond_timedwait(&d->cond, &d->lock, &ts) == 0)
		;
	got = d->nr_msi;
	pthread_mutex_unlock(&d->lock);
	return got;
}

static inline unsigned int vd_msi_count(struct vd *d)
{
	unsigned int n;

	pthread_mutex_lock(&d->lock);
	n = d->nr_msi;
	pthread_mutex_unlock(&d->lock);
	return n;
}

/* vd_bring_up - negotiate @features, MSI-X on, queues 0..nq-1 of @size on vectors 1.., DRIVER_OK.
 */
static inline void vd_bring_up(struct vd *d, uint64_t features, unsigned int nq, uint16_t size)
{
	assert_true(vd_negotiate(d, features | VIRTIO_BIT(VIRTIO_F_VERSION_1)));
	vd_msix_enable(d, nq + 1);
	vd_write(d, VIRTIO_PCI_COMMON_MSIX, 2, 0);
	for (unsigned int q = 0; q < nq; q++)
		vd_setup_queue(d, q, size, (uint16_t)(q + 1));
	vd_set_status(d, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
	                     VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
	assert_int_equal(vd_status(d) & VIRTIO_STATUS_DRIVER_OK, VIRTIO_STATUS_DRIVER_OK);
}

/* What vd_save() keeps: the device's saved state and the guest side. */
struct vd_saved {
	struct dev_state state;
	uint8_t *mem;       /* all of guest memory */
	uintptr_t mem_base; /* where it was mapped, to rebase the ring pointers */
	uint64_t buf_next;
	struct vd_queue q[8];
};

/* vd_save - quiesce @d's device, save its state and copy the guest. Resume it yourself. */
static inline void vd_save(struct vd *d, struct vd_saved *s)
{
	memset(s, 0, sizeof(*s));
	assert_int_equal(virtio_pci_quiesce(d->vp), 0);
	assert_int_equal(virtio_pci_save(d->vp, &s->state), 0);
	assert_int_equal(s->state.error, 0);
	s->mem = malloc(VD_MEM_SIZE);
	assert_non_null(s->mem);
	memcpy(s->mem, vd_gpa(d, 0, VD_MEM_SIZE), VD_MEM_SIZE);
	s->mem_base = (uintptr_t)vd_gpa(d, 0, VD_MEM_SIZE);
	s->buf_next = d->buf_next;
	memcpy(s->q, d->q, sizeof(s->q));
}

static inline void *vd_rebase(struct vd *d, const struct vd_saved *s, const void *p)
{
	return p ? (uint8_t *)vd_gpa(d, 0, VD_MEM_SIZE) + ((uintptr_t)p - s->mem_base) : NULL;
}

/* vd_load_guest - make @d's guest the saved one: memory, allocations, rings. */
static inline void vd_load_guest(struct vd *d, const struct vd_saved *s)
{
	memcpy(vd_gpa(d, 0, VD_MEM_SIZE), s->mem, VD_MEM_SIZE);
	d->buf_next = s->buf_next;
	for (unsigned int q = 0; q < 8; q++) {
		d->q[q] = s->q[q];
		d->q[q].desc = vd_rebase(d, s, s->q[q].desc);
		d->q[q].avail = vd_rebase(d, s, s->q[q].avail);
		d->q[q].used = vd_rebase(d, s, s->q[q].used);
	}
}

/*
 * vd_restore_bytes - restore @d's device from @len bytes as
 * device_list_restore() would (the reader must be used up); the reason of a
 * failure in @why. Returns 0 or -errno.
 */
static inline int vd_restore_bytes(struct vd *d, const void *buf, size_t len, char *why,
                                   size_t why_len)
{
	struct dev_state_in in;
	int r;

	dsi_init(&in, buf, len);
	r = virtio_pci_restore(d->vp, &in, VIRTIO_PCI_STATE_VERSION);
	if (r == 0)
		r = dsi_finish(&in);
	snprintf(why, why_len, "%s", in.why);
	return r;
}

static inline void vd_restore(struct vd *d, const struct vd_saved *s)
{
	char why[160];
	int r = vd_restore_bytes(d, s->state.buf, s->state.len, why, sizeof(why));

	if (r != 0)
		fail_msg("restore failed: %s (%s)", strerror(-r), why);
}

static inline void vd_saved_release(struct vd_saved *s)
{
	ds_release(&s->state);
	free(s->mem);
	s->mem = NULL;
}

#endif
