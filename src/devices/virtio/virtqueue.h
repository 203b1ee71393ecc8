/* SPDX-License-Identifier: MIT */
#ifndef NESTVM_DEVICES_VIRTIO_VIRTQUEUE_H
#define NESTVM_DEVICES_VIRTIO_VIRTQUEUE_H

#include "core/device.h"
#include "core/guest_mem.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/*
 * Split virtqueues (virtio 1.2 §2.7), the device side.
 *
 * A split virtqueue of Queue Size N (a power of two) is three areas of guest
 * memory whose addresses the driver writes into the transport:
 *
 *   descriptor table (16-byte aligned): N descriptors of 16 bytes,
 *       { le64 addr; le32 len; le16 flags; le16 next; }
 *     A buffer is one descriptor; a request is a chain of them linked by
 *     `next` while flags has NEXT. WRITE marks a buffer the device writes
 *     (device-writable buffers come after all device-readable ones).
 *     INDIRECT makes the descriptor point at a table of further descriptors
 *     in guest memory, which form the rest of the chain.
 *   available ring (driver area, 2-byte aligned):
 *       { le16 flags; le16 idx; le16 ring[N]; le16 used_event; }
 *     The driver puts the head index of each new chain in ring[idx % N] and
 *     then increments idx (free-running, wraps at 65536).
 *   used ring (device area, 4-byte aligned):
 *       { le16 flags; le16 idx; struct { le32 id; le32 len; } ring[N];
 *         le16 avail_event; }
 *     The device returns a chain by writing its head and the number of bytes
 *     it wrote into ring[idx % N] and then incrementing idx.
 *
 * Notification suppression: without VIRTIO_F_RING_EVENT_IDX the driver sets
 * avail.flags bit 0 (NO_INTERRUPT) when it wants no interrupts and the device
 * sets used.flags bit 0 (NO_NOTIFY). With it, used_event tells the device at
 * which used idx the driver wants its next interrupt, and avail_event tells
 * the driver at which avail idx the device wants its next notification
 * (§2.7.7, §2.7.10).
 *
 * The guest is hostile. Everything here follows from that:
 *  - every guest address goes through guest_mem_ptr() (the ring areas once,
 *    when the queue starts; each buffer when its descriptor is read);
 *  - avail.idx is read once per virtq_pop() and must not run more than N
 *    ahead of what the device has consumed; each ring slot and each
 *    descriptor is copied once and the copy is what gets validated and used;
 *  - a chain is bounded: at most N buffer descriptors in all, counting those
 *    of an indirect table; an indirect table is whole in guest RAM, a
 *    multiple of 16 bytes, holds at most N descriptors, and may not itself
 *    contain INDIRECT; no descriptor has both INDIRECT and NEXT;
 *  - lengths are summed in 64 bits, so they cannot wrap.
 * A chain breaking any rule makes virtq_pop() return -EIO and the queue stays
 * broken (it pops nothing more) until the transport restarts it: the device
 * then sets DEVICE_NEEDS_RESET (§2.1.2), as OpenBSD's vmd does. The guest can
 * still change a buffer's contents while the device uses it; that only hurts
 * the guest, since the device never trusts data it read from a buffer twice.
 *
 * Locking: a virtqueue belongs to one thread at a time (the device's I/O
 * thread, or the transport while the device is stopped); it has no lock.
 */

/* Descriptor flags (§2.7.5). */
#define VIRTQ_DESC_F_NEXT 1
#define VIRTQ_DESC_F_WRITE 2
#define VIRTQ_DESC_F_INDIRECT 4

#define VIRTQ_AVAIL_F_NO_INTERRUPT 1
#define VIRTQ_USED_F_NO_NOTIFY 1

/* Alignment of the three areas (§2.7, table "Virtqueue Part Alignment"). */
#define VIRTQ_DESC_ALIGN 16
#define VIRTQ_AVAIL_ALIGN 2
#define VIRTQ_USED_ALIGN 4

struct virtq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct virtq_avail {
	uint16_t flags;
	uint16_t idx;
	uint16_t ring[]; /* then le16 used_event */
};

struct virtq_used_elem {
	uint32_t id;
	uint32_t len;
};

struct virtq_used {
	uint16_t flags;
	uint16_t idx;
	struct virtq_used_elem ring[]; /* then le16 avail_event */
};

/* Sizes of the areas for a queue of @n entries, with the event-index fields. */
#define VIRTQ_DESC_SIZE(n) (16ULL * (n))
#define VIRTQ_AVAIL_SIZE(n) (6ULL + 2ULL * (n))
#define VIRTQ_USED_SIZE(n) (6ULL + 8ULL * (n))

/*
 * One virtqueue. The transport fills the configuration (size, addresses),
 * then calls virtq_start(); the device pops, pushes and asks whether to
 * notify.
 */
struct virtq {
	/* Configuration, written by the driver through the transport. */
	uint16_t max_size; /* what the device offers */
	uint16_t size;     /* what the driver chose; a power of two <= max_size */
	uint64_t desc_gpa;
	uint64_t avail_gpa;
	uint64_t used_gpa;

	/* Running state, valid after virtq_start(). */
	const struct guest_mem *mem;
	struct virtq_desc *desc;
	struct virtq_avail *avail;
	struct virtq_used *used;
	bool started;
	bool broken;             /* a malformed chain was seen; nothing more is popped */
	bool event_idx;          /* VIRTIO_F_RING_EVENT_IDX negotiated */
	bool indirect;           /* VIRTIO_F_RING_INDIRECT_DESC negotiated */
	uint16_t last_avail;     /* next avail ring slot the device reads */
	uint16_t used_idx;       /* the device's copy of used.idx */
	uint16_t signalled_used; /* used idx at the last interrupt (event idx) */
	bool signalled_valid;
};

/*
 * One popped chain: iov[0, nr_out) are the device-readable buffers,
 * iov[nr_out, nr_out + nr_in) the device-writable ones, as host addresses
 * inside guest RAM. Zero-length buffers are left out. The caller provides
 * @iov with room for @cap entries; a chain needing more is malformed.
 */
struct virtq_req {
	uint16_t head;
	unsigned int nr_out;
	unsigned int nr_in;
	uint64_t out_len; /* bytes in the readable buffers */
	uint64_t in_len;  /* bytes in the writable buffers */
	struct iovec *iov;
	unsigned int cap;
};

/*
 * virtq_init - set @vq to its reset state offering @max_size entries (a power
 * of two, at most VIRTQ_SPLIT_MAX_SIZE): size = max_size, addresses 0.
 */
void virtq_init(struct virtq *vq, uint16_t max_size);

/*
 * virtq_start - check the configuration and map the three areas: size a
 * power of two no larger than max_size, each area aligned (see above) and
 * wholly in guest RAM. @event_idx and @indirect are the negotiated ring
 * features. Returns 0, or -EINVAL (the queue stays stopped).
 */
int virtq_start(struct virtq *vq, const struct guest_mem *mem, bool event_idx, bool indirect)
    __attribute__((warn_unused_result));

/* virtq_reset - back to virtq_init()'s state, keeping max_size. */
void virtq_reset(struct virtq *vq);

/*
 * virtq_pop - take the next available chain into @req (whose iov and cap
 * the caller set). Returns 1 when @req holds a chain, 0 when none is
 * available (or the queue is not started), -EIO when the ring or the chain
 * is malformed: the queue is then broken and the device must ask for a reset.
 */
int virtq_pop(struct virtq *vq, struct virtq_req *req) __attribute__((warn_unused_result));

/*
 * virtq_push - return chain @head to the driver, with @len bytes written to
 * its device-writable buffers (§2.7.8). Does not notify: see
 * virtq_should_notify(). No-op on a queue that is not started.
 */
void virtq_push(struct virtq *vq, uint16_t head, uint32_t len);

/*
 * virtq_mark_written - the device wrote into @req's device-writable buffers
 * (data, status): mark their pages for a live migration, which KVM's dirty
 * log does not see (guest_mem_mark_dirty()). Call it after the writes. The
 * used ring is marked by virtq_push() and the notification calls.
 */
void virtq_mark_written(const struct virtq *vq, const struct virtq_req *req);

/*
 * virtq_should_notify - after one or more pushes: does the driver want an
 * interrupt now? (avail.flags NO_INTERRUPT, or used_event with event idx,
 * §2.7.10). Records the notification when it says yes.
 */
bool virtq_should_notify(struct virtq *vq);

/*
 * virtq_enable_notify - the device has emptied the queue and wants to hear
 * about new buffers: clears used.flags NO_NOTIFY or, with event idx, sets
 * avail_event to the next slot. Returns true if buffers arrived meanwhile
 * (the caller should pop again), false if it may now sleep.
 */
bool virtq_enable_notify(struct virtq *vq);

/*
 * virtq_disable_notify - the device is busy with the queue and polls it
 * anyway: ask the driver not to notify (used.flags NO_NOTIFY; a no-op with
 * event idx, where avail_event simply stays behind).
 */
void virtq_disable_notify(struct virtq *vq);

/* virtq_has_avail - whether a chain is waiting (reads avail.idx). */
bool virtq_has_avail(struct virtq *vq);

/*
 * What a save (core/device.h) keeps of a virtqueue: the driver's
 * configuration and the device's cursors. The rings themselves are in guest
 * memory, which is saved with the VM.
 */
struct virtq_state {
	uint16_t size;
	bool started;
	bool broken;
	bool event_idx;
	bool indirect;
	uint64_t desc_gpa;
	uint64_t avail_gpa;
	uint64_t used_gpa;
	uint16_t last_avail; /* the next avail ring slot the device reads */
	uint16_t used_idx;
	uint16_t signalled_used;
	bool signalled_valid;
};

/* virtq_save - @vq's state into @st. */
void virtq_save(const struct virtq *vq, struct virtq_state *st);

/*
 * virtq_restore - make @vq, whose max_size is the device's, what @st says,
 * over @mem. Checks first, and changes nothing on failure: a stopped queue
 * is in virtq_reset()'s state but for its size and addresses (the driver's
 * writes, checked when it starts); a started one passes virtq_start()'s
 * checks (size a power of two at most max_size, rings aligned in guest
 * RAM) and has at most size chains between used_idx and last_avail.
 * Returns 0, or -EINVAL with the reason in @why.
 */
int virtq_restore(struct virtq *vq, const struct guest_mem *mem, const struct virtq_state *st,
                  char *why, size_t why_len) __attribute__((warn_unused_result));

/*
 * virtq_state_put, virtq_state_get - @st as bytes of a device's saved state
 * (little-endian, fixed size) and back. _get leaves the checks to
 * virtq_restore(); it only fails @in (a short read, a flag other than 0/1).
 */
void virtq_state_put(struct dev_state *out, const struct virtq_state *st);
void virtq_state_get(struct dev_state_in *in, struct virtq_state *st);

/*
 * iov helpers over a popped chain, bounded by the iov lengths:
 * iov_to_buf - copy up to @len bytes starting @offset bytes into @iov to
 * @buf; iov_from_buf - copy @buf to @iov at @offset. Both return the bytes
 * copied (short when the iovs end first).
 */
size_t iov_to_buf(const struct iovec *iov, unsigned int cnt, size_t offset, void *buf, size_t len);
size_t iov_from_buf(const struct iovec *iov, unsigned int cnt, size_t offset, const void *buf,
                    size_t len);

/* iov_length - total bytes of @cnt iovs (64-bit, cannot wrap for iovs from a chain). */
uint64_t iov_length(const struct iovec *iov, unsigned int cnt);

/*
 * iov_slice - fill @out (room for @cap) with the part [@offset, @offset +
 * @len) of @iov. Returns the number of iovs used, or -1 if the range does
 * not lie within @iov or needs more than @cap entries.
 */
int iov_slice(const struct iovec *iov, unsigned int cnt, size_t offset, size_t len,
              struct iovec *out, unsigned int cap);

#endif
