/* SPDX-License-Identifier: MIT */
/*
 * Helpers for the libFuzzer targets that play a virtio driver against a
 * device model on its PCI transport, with no KVM (after
 * tests/unit/virtio_test_driver.h, without cmocka):
 *
 *  - an input reader (fz_in_*) that yields zeroes once the input runs out;
 *  - the driver side: rings in a guest memory of its own, chains built
 *    from a free list of descriptors (direct or indirect), kicks through
 *    the notify register, used entries read back;
 *  - determinism: the device runs on its transport's I/O thread, so after
 *    an action the target calls fz_settle(), which waits until the I/O
 *    thread has handled everything that was ready before (an eventfd of
 *    the target's, watched on that thread: epoll reports ready descriptors
 *    in the order they became ready, so when its callback runs, the events
 *    before it were handled). Several rounds let chains of events
 *    (accept, then read) finish.
 *
 * Everything aborts on a broken invariant of the harness itself, which
 * libFuzzer reports as a crash.
 */
#ifndef NESTVM_TESTS_FUZZ_VIRTIO_H
#define NESTVM_TESTS_FUZZ_VIRTIO_H

#include "arch/x86/layout.h"
#include "core/log.h"
#include "devices/pci/pci_host.h"
#include "devices/virtio/virtio_pci.h"
#include "fuzz_common.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------ input */

struct fz_in {
	const uint8_t *p;
	size_t n;
};

static inline bool fz_in_empty(const struct fz_in *in)
{
	return in->n == 0;
}

static inline uint64_t fz_in_bytes_le(struct fz_in *in, unsigned int k)
{
	uint64_t v = 0;

	for (unsigned int i = 0; i < k && in->n; i++, in->p++, in->n--)
		v |= (uint64_t)in->p[0] << (8 * i);
	return v;
}

static inline uint8_t fz_u8(struct fz_in *in)
{
	return (uint8_t)fz_in_bytes_le(in, 1);
}

static inline uint16_t fz_u16(struct fz_in *in)
{
	return (uint16_t)fz_in_bytes_le(in, 2);
}

static inline uint32_t fz_u32(struct fz_in *in)
{
	return (uint32_t)fz_in_bytes_le(in, 4);
}

static inline uint64_t fz_u64(struct fz_in *in)
{
	return fz_in_bytes_le(in, 8);
}

/* fz_take - up to @len bytes of input into @buf, the rest zero; returns @len. */
static inline size_t fz_take(struct fz_in *in, void *buf, size_t len)
{
	size_t n = len < in->n ? len : in->n;

	memcpy(buf, in->p, n);
	memset((uint8_t *)buf + n, 0, len - n);
	in->p += n;
	in->n -= n;
	return len;
}

/* ------------------------------------------------------ virtio driver */

#define FZ_MEM_SIZE (32ULL << 20)
#define FZ_BAR LAYOUT_PCI_MMIO32
#define FZ_RING_GPA 0x100000ULL /* rings of queue q at FZ_RING_GPA + q * 0x10000 */
#define FZ_BUF_GPA 0x800000ULL  /* buffers are bump-allocated from here, per input */
#define FZ_MAX_QUEUES 24
#define FZ_QMAX 256
#define FZ_CHAIN_MAX 16 /* descriptors per chain in the descriptor table */

struct fz_queue {
	uint16_t size;
	uint16_t avail_idx;
	uint16_t last_used;
	bool ready;
	struct virtq_desc *desc;
	struct virtq_avail *avail;
	struct virtq_used *used;
	uint16_t free[FZ_QMAX];
	unsigned int nr_free;
	uint8_t chain_len[FZ_QMAX]; /* by head: table descriptors it holds, 0 if not in use */
	uint16_t chain[FZ_QMAX][FZ_CHAIN_MAX];
	uint64_t cookie[FZ_QMAX]; /* by head: the target's */
};

struct fz {
	struct guest_mem *mem;
	struct pci_host *host;
	struct virtio_pci *vp;
	struct pci_device *pci;
	struct virtio_device *vdev;
	uint64_t buf_next;
	bool out_of_memory;
	struct fz_queue q[FZ_MAX_QUEUES];
	unsigned int nr_msi; /* atomic */
	bool guest_stopped;  /* atomic: what the transport's guest_running answers, negated */

	int barrier_fd;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint64_t barrier_done; /* under lock */
	uint64_t barrier_sent;
};

static inline int fz_msi_send(void *opaque, uint64_t addr, uint32_t data)
{
	struct fz *f = opaque;

	(void)addr;
	(void)data;
	__atomic_add_fetch(&f->nr_msi, 1, __ATOMIC_RELAXED);
	return 0;
}

static inline bool fz_guest_running(void *opaque)
{
	struct fz *f = opaque;

	return !__atomic_load_n(&f->guest_stopped, __ATOMIC_ACQUIRE);
}

static inline void fz_barrier_cb(struct virtio_device *vdev, int fd, uint32_t revents, void *arg)
{
	struct fz *f = arg;
	uint64_t n;

	(void)vdev;
	(void)revents;
	if (read(fd, &n, sizeof(n)) != sizeof(n))
		return;
	pthread_mutex_lock(&f->lock);
	f->barrier_done += n;
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->lock);
}

/* fz_guest_mem - the one guest memory of this process (the targets reuse it). */
static inline struct guest_mem *fz_guest_mem(void)
{
	static struct guest_mem mem;

	if (!mem.nr_regions)
		FZ_CHECK(guest_mem_init(&mem, FZ_MEM_SIZE, 0) == 0);
	return &mem;
}

static inline void *fz_gpa(struct fz *f, uint64_t gpa, uint64_t len)
{
	void *p = guest_mem_ptr(f->mem, gpa, len ? len : 1);

	FZ_CHECK(p);
	return p;
}

/* fz_alloc - @len zeroed bytes of guest memory (16-byte aligned), or 0 when the area is used up. */
static inline uint64_t fz_alloc(struct fz *f, uint64_t len)
{
	uint64_t gpa = f->buf_next;

	if (len > FZ_MEM_SIZE - gpa - 16) {
		f->out_of_memory = true;
		return 0;
	}
	f->buf_next = (gpa + len + 15) & ~15ULL;
	memset(fz_gpa(f, gpa, len), 0, len);
	return gpa;
}

/* fz_create - @vdev on a new transport and PCI host, BAR0 at FZ_BAR, memory decoding on. */
static inline void fz_create(struct fz *f, struct virtio_device *vdev)
{
	struct pci_host_config hc = {.mmio_base = LAYOUT_PCI_MMIO32};
	struct virtio_pci_config cfg = {.bar_addr = FZ_BAR,
	                                .msi_send = fz_msi_send,
	                                .guest_running = fz_guest_running,
	                                .opaque = f};

	memset(f, 0, sizeof(*f));
	f->mem = fz_guest_mem();
	f->buf_next = FZ_BUF_GPA;
	cfg.mem = f->mem;
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->cond, NULL);
	FZ_CHECK(pci_host_create(&hc, &f->host) == 0);
	FZ_CHECK(virtio_pci_create(vdev, &cfg, &f->vp) == 0);
	f->pci = virtio_pci_device(f->vp);
	f->vdev = vdev;
	FZ_CHECK(pci_host_add_device(f->host, f->pci) == 0);
	pci_host_config_write(f->host, f->pci->devfn, PCI_CFG_COMMAND, 2,
	                      PCI_CMD_MEMORY | PCI_CMD_MASTER);
	f->barrier_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	FZ_CHECK(f->barrier_fd >= 0);
	virtio_device_lock(vdev);
	FZ_CHECK(virtio_device_watch(vdev, f->barrier_fd, EPOLLIN, fz_barrier_cb, f) == 0);
	virtio_device_unlock(vdev);
}

/* fz_destroy - the transport (which resets the device) and the host; not the device model. */
static inline void fz_destroy(struct fz *f)
{
	virtio_pci_destroy(f->vp);
	pci_host_destroy(f->host);
	close(f->barrier_fd);
	pthread_mutex_destroy(&f->lock);
	pthread_cond_destroy(&f->cond);
}

/* fz_barrier - wait until the I/O thread has handled every event ready before this call. */
static inline void fz_barrier(struct fz *f)
{
	uint64_t one = 1;
	struct timespec ts;

	FZ_CHECK(write(f->barrier_fd, &one, sizeof(one)) == sizeof(one));
	f->barrier_sent++;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 20;
	pthread_mutex_lock(&f->lock);
	while (f->barrier_done < f->barrier_sent) {
		if (pthread_cond_timedwait(&f->cond, &f->lock, &ts) == ETIMEDOUT) {
			fprintf(stderr, "the device's I/O thread is stuck\n");
			abort();
		}
	}
	pthread_mutex_unlock(&f->lock);
}

/* fz_settle - a few barriers: events that cause further events are handled too. */
static inline void fz_settle(struct fz *f)
{
	for (int i = 0; i < 3; i++)
		fz_barrier(f);
}

/* BAR0 accesses through the PCI host's MMIO window, as a vCPU's would arrive. */
static inline uint64_t fz_read(struct fz *f, uint32_t off, uint32_t len)
{
	uint8_t b[8] = {0};
	uint64_t v = 0;

	pci_host_mmio_io(f->host, FZ_BAR - LAYOUT_PCI_MMIO32 + off, b, len, false);
	memcpy(&v, b, len);
	return v;
}

static inline void fz_write(struct fz *f, uint32_t off, uint32_t len, uint64_t v)
{
	uint8_t b[8];

	memcpy(b, &v, sizeof(b));
	pci_host_mmio_io(f->host, FZ_BAR - LAYOUT_PCI_MMIO32 + off, b, len, true);
}

static inline uint32_t fz_cfg_read(struct fz *f, uint32_t reg, uint32_t len)
{
	return pci_host_config_read(f->host, f->pci->devfn, reg, len);
}

static inline void fz_cfg_write(struct fz *f, uint32_t reg, uint32_t len, uint32_t v)
{
	pci_host_config_write(f->host, f->pci->devfn, reg, len, v);
}

static inline uint8_t fz_status(struct fz *f)
{
	return (uint8_t)fz_read(f, VIRTIO_PCI_COMMON_STATUS, 1);
}

static inline void fz_set_status(struct fz *f, uint8_t s)
{
	fz_write(f, VIRTIO_PCI_COMMON_STATUS, 1, s);
}

static inline bool fz_needs_reset(struct fz *f)
{
	return fz_status(f) & VIRTIO_STATUS_DEVICE_NEEDS_RESET;
}

/* fz_negotiate - reset, ACKNOWLEDGE, DRIVER, accept @want; returns whether FEATURES_OK stuck. */
static inline bool fz_negotiate(struct fz *f, uint64_t want)
{
	fz_set_status(f, 0);
	for (unsigned int q = 0; q < FZ_MAX_QUEUES; q++)
		f->q[q].ready = false;
	fz_set_status(f, VIRTIO_STATUS_ACKNOWLEDGE);
	fz_set_status(f, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	fz_write(f, VIRTIO_PCI_COMMON_GFSELECT, 4, 0);
	fz_write(f, VIRTIO_PCI_COMMON_GF, 4, (uint32_t)want);
	fz_write(f, VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
	fz_write(f, VIRTIO_PCI_COMMON_GF, 4, want >> 32);
	fz_set_status(f,
	              VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
	return fz_status(f) & VIRTIO_STATUS_FEATURES_OK;
}

/* fz_msix_enable - MSI-X on, @nr_vectors vectors unmasked. */
static inline void fz_msix_enable(struct fz *f, unsigned int nr_vectors)
{
	int cap = 0;
	uint32_t p = fz_cfg_read(f, PCI_CFG_CAPABILITY_LIST, 1);

	for (int n = 0; p && n < 48; n++, p = fz_cfg_read(f, p + 1, 1))
		if (fz_cfg_read(f, p, 1) == PCI_CAP_ID_MSIX)
			cap = (int)p;
	FZ_CHECK(cap != 0);
	for (unsigned int v = 0; v < nr_vectors; v++) {
		uint32_t e = VIRTIO_PCI_MSIX_TABLE_OFF + v * PCI_MSIX_ENTRY_SIZE;

		fz_write(f, e, 4, 0xfee00000U | v << 12);
		fz_write(f, e + 4, 4, 0);
		fz_write(f, e + 8, 4, 0x40 + v);
		fz_write(f, e + 12, 4, 0);
	}
	fz_cfg_write(f, (uint32_t)cap + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE);
}

/* fz_setup_queue - rings for queue @q of @size entries (a power of two <= FZ_QMAX), enabled. */
static inline void fz_setup_queue(struct fz *f, unsigned int q, uint16_t size, uint16_t vector)
{
	struct fz_queue *vq = &f->q[q];
	uint64_t base = FZ_RING_GPA + q * 0x10000ULL;
	uint64_t desc = base, avail = base + 0x8000, used = base + 0xa000;

	FZ_CHECK(q < FZ_MAX_QUEUES && size && size <= FZ_QMAX);
	memset(fz_gpa(f, base, 0x10000), 0, 0x10000);
	fz_write(f, VIRTIO_PCI_COMMON_Q_SELECT, 2, q);
	fz_write(f, VIRTIO_PCI_COMMON_Q_SIZE, 2, size);
	fz_write(f, VIRTIO_PCI_COMMON_Q_DESCLO, 4, (uint32_t)desc);
	fz_write(f, VIRTIO_PCI_COMMON_Q_DESCHI, 4, 0);
	fz_write(f, VIRTIO_PCI_COMMON_Q_AVAILLO, 4, (uint32_t)avail);
	fz_write(f, VIRTIO_PCI_COMMON_Q_AVAILHI, 4, 0);
	fz_write(f, VIRTIO_PCI_COMMON_Q_USEDLO, 4, (uint32_t)used);
	fz_write(f, VIRTIO_PCI_COMMON_Q_USEDHI, 4, 0);
	fz_write(f, VIRTIO_PCI_COMMON_Q_MSIX, 2, vector);
	fz_write(f, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
	memset(vq, 0, sizeof(*vq));
	vq->size = size;
	vq->ready = true;
	vq->desc = fz_gpa(f, desc, VIRTQ_DESC_SIZE(size));
	vq->avail = fz_gpa(f, avail, VIRTQ_AVAIL_SIZE(size));
	vq->used = fz_gpa(f, used, VIRTQ_USED_SIZE(size));
	for (unsigned int i = 0; i < size; i++)
		vq->free[vq->nr_free++] = (uint16_t)(size - 1 - i);
}

/*
 * fz_bring_up - negotiate @features (with VERSION_1), MSI-X on, queues
 * 0..nq-1 of @size on vectors 1.., DRIVER_OK. Returns false if the device
 * refused the features.
 */
static inline bool fz_bring_up(struct fz *f, uint64_t features, unsigned int nq, uint16_t size)
{
	if (!fz_negotiate(f, features | VIRTIO_BIT(VIRTIO_F_VERSION_1)))
		return false;
	fz_msix_enable(f, nq + 1);
	fz_write(f, VIRTIO_PCI_COMMON_MSIX, 2, 0);
	for (unsigned int q = 0; q < nq; q++)
		fz_setup_queue(f, q, size, (uint16_t)(q + 1));
	fz_set_status(f, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
	                     VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
	FZ_CHECK(fz_status(f) & VIRTIO_STATUS_DRIVER_OK);
	return true;
}

struct fz_buf {
	uint64_t gpa;
	uint32_t len;
	bool write; /* device-writable */
};

/*
 * fz_submit - a chain of @n buffers on queue @q, made available (not
 * kicked), through an indirect table if @indirect (the buffers then take
 * one table descriptor). Returns the head, or -1 if the queue has no free
 * descriptors (or guest memory for the table is used up).
 */
static inline int fz_submit(struct fz *f, unsigned int q, const struct fz_buf *bufs, unsigned int n,
                            bool indirect, uint64_t cookie)
{
	struct fz_queue *vq = &f->q[q];
	unsigned int need = indirect ? 1 : n;
	uint16_t idx[FZ_CHAIN_MAX];
	uint16_t head;

	if (!vq->ready || n == 0 || need > FZ_CHAIN_MAX || need > vq->nr_free)
		return -1;
	for (unsigned int i = 0; i < need; i++)
		idx[i] = vq->free[--vq->nr_free];
	head = idx[0];
	if (indirect) {
		uint64_t t = fz_alloc(f, 16ULL * n);
		struct virtq_desc *d;

		if (!t) {
			vq->free[vq->nr_free++] = head;
			return -1;
		}
		d = fz_gpa(f, t, 16ULL * n);
		for (unsigned int i = 0; i < n; i++)
			d[i] = (struct virtq_desc){
			    .addr = bufs[i].gpa,
			    .len = bufs[i].len,
			    .flags = (uint16_t)((bufs[i].write ? VIRTQ_DESC_F_WRITE : 0) |
			                        (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0)),
			    .next = (uint16_t)(i + 1),
			};
		vq->desc[head] =
		    (struct virtq_desc){.addr = t, .len = 16 * n, .flags = VIRTQ_DESC_F_INDIRECT};
	} else {
		for (unsigned int i = 0; i < n; i++)
			vq->desc[idx[i]] = (struct virtq_desc){
			    .addr = bufs[i].gpa,
			    .len = bufs[i].len,
			    .flags = (uint16_t)((bufs[i].write ? VIRTQ_DESC_F_WRITE : 0) |
			                        (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0)),
			    .next = i + 1 < n ? idx[i + 1] : 0,
			};
	}
	vq->chain_len[head] = (uint8_t)need;
	memcpy(vq->chain[head], idx, need * sizeof(idx[0]));
	vq->cookie[head] = cookie;
	vq->avail->ring[vq->avail_idx % vq->size] = head;
	__atomic_store_n(&vq->avail->idx, ++vq->avail_idx, __ATOMIC_RELEASE);
	return head;
}

/* fz_kick - notify queue @q through its notify register. */
static inline void fz_kick(struct fz *f, unsigned int q)
{
	fz_write(f, VIRTIO_PCI_NOTIFY_OFF + q * VIRTIO_PCI_NOTIFY_MULTIPLIER, 2, q);
}

/*
 * fz_used - the next used element of queue @q, if any: checks that it names
 * a chain in flight and frees its descriptors; *@cookie is the chain's.
 */
static inline bool fz_used(struct fz *f, unsigned int q, struct virtq_used_elem *out,
                           uint64_t *cookie)
{
	struct fz_queue *vq = &f->q[q];
	uint16_t head;

	if (!vq->ready || __atomic_load_n(&vq->used->idx, __ATOMIC_ACQUIRE) == vq->last_used)
		return false;
	*out = vq->used->ring[vq->last_used % vq->size];
	vq->last_used++;
	FZ_CHECK(out->id < vq->size);
	head = (uint16_t)out->id;
	FZ_CHECK(vq->chain_len[head] != 0); /* the device returned a chain twice */
	for (unsigned int i = 0; i < vq->chain_len[head]; i++)
		vq->free[vq->nr_free++] = vq->chain[head][i];
	vq->chain_len[head] = 0;
	*cookie = vq->cookie[head];
	return true;
}

/* fz_in_flight - chains made available on @q and not yet returned. */
static inline unsigned int fz_in_flight(struct fz *f, unsigned int q)
{
	return (uint16_t)(f->q[q].avail_idx - f->q[q].last_used);
}

/*
 * fz_split - cut [gpa, gpa + len) into at most @max buffers at points taken
 * from the input (zero-length pieces are dropped). Returns how many.
 */
static inline unsigned int fz_split(struct fz_in *in, uint64_t gpa, uint32_t len, bool write,
                                    struct fz_buf *out, unsigned int max)
{
	unsigned int n = 0, pieces = 1 + fz_u8(in) % max;

	while (len && n < max) {
		uint32_t take = (n + 1 == pieces || n + 1 == max) ? len : 1 + fz_u16(in) % len;

		out[n++] = (struct fz_buf){gpa, take, write};
		gpa += take;
		len -= take;
	}
	return n;
}

#endif
