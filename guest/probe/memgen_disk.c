/* SPDX-License-Identifier: MIT */
/*
 * test=memgen disk=on: a virtio-blk write stream whose every request must
 * complete exactly once (see memgen.h), on the probe's polled virtio driver
 * (virtio.c). Request k uses slot k % MEMGEN_DISK_SLOTS: descriptors
 * 3 * slot .. 3 * slot + 2 (header, the sector, status byte).
 */
#include "memgen.h"
#include "memgen_chain.h"

#define DRAIN_TIMEOUT_US 10000000

/* The block request @seq writes to @sector. */
static void block_fill(struct memgen_block *b, uint64_t sector, uint64_t seq)
{
	b->magic = MEMGEN_DISK_MAGIC;
	b->sector = sector;
	b->seq = seq;
	b->check = memgen_mix(sector << 32 ^ seq);
	for (unsigned int i = 0; i < ARRAY_SIZE(b->fill); i++)
		b->fill[i] = memgen_mix(b->check + i);
}

int memgen_disk_start(struct memgen_disk *d)
{
	const char *why;

	memset(d, 0, sizeof(*d));
	if (virtio_find(VIRTIO_ID_BLK, 0, &d->dev, &why) < 0 ||
	    virtio_start(&d->dev, &d->vq, 0, MEMGEN_DISK_QSIZE, 0, &why) < 0) {
		format(d->why, sizeof(d->why), "virtio-blk 0: %s", why);
		return -1;
	}
	d->capacity = virtio_device_cfg32(&d->dev, 4);
	d->capacity = d->capacity << 32 | virtio_device_cfg32(&d->dev, 0);
	if (d->capacity == 0) {
		format(d->why, sizeof(d->why), "virtio-blk 0 has no sectors");
		return -1;
	}
	d->span = d->capacity < MEMGEN_DISK_SPAN ? d->capacity : MEMGEN_DISK_SPAN;
	return 0;
}

/* Take every used element there is, checking each. 0, or -1 with d->why. */
static int disk_reap(struct memgen_disk *d)
{
	uint16_t used = __atomic_load_n(&d->vq.used->idx, __ATOMIC_ACQUIRE);
	uint16_t fresh = used - d->vq.last_used;
	struct vring_used_elem e;

	if (fresh > d->inflight) {
		format(d->why, sizeof(d->why),
		       "used.idx moved by %u with %u requests in flight (used.idx %u, %lu "
		       "submitted, %lu completed): a request completed twice",
		       fresh, d->inflight, used, d->submitted, d->completed);
		return -1;
	}
	while (fresh-- && vq_get_used(&d->vq, &e)) {
		unsigned int slot = e.id / 3;
		struct memgen_disk_req *r = &d->req[slot];

		if (e.id % 3 || slot >= MEMGEN_DISK_SLOTS || !r->busy) {
			format(d->why, sizeof(d->why),
			       "used element id %u (len %u) is no request in flight (%lu "
			       "submitted, %lu completed)",
			       e.id, e.len, d->submitted, d->completed);
			return -1;
		}
		if (r->status != VIRTIO_BLK_S_OK) {
			format(d->why, sizeof(d->why),
			       "write %lu (sector %lu) completed with status 0x%02x", r->seq,
			       r->hdr.sector, r->status);
			return -1;
		}
		r->status = MEMGEN_DISK_CONSUMED;
		r->busy = false;
		d->inflight--;
		d->completed++;
	}
	return 0;
}

/* Submit the next write, unless its slot is still busy. 0, or -1 with d->why. */
static int disk_submit(struct memgen_disk *d)
{
	uint64_t seq = d->submitted, sector = seq % d->span;
	unsigned int slot = seq % MEMGEN_DISK_SLOTS;
	struct memgen_disk_req *r = &d->req[slot];
	uint16_t head = 3 * slot;

	if (r->busy)
		return 0;
	if (seq >= MEMGEN_DISK_SLOTS && r->status != MEMGEN_DISK_CONSUMED) {
		format(d->why, sizeof(d->why),
		       "the status byte of write %lu changed from 0x%02x to 0x%02x after it "
		       "completed: written twice",
		       r->seq, MEMGEN_DISK_CONSUMED, r->status);
		return -1;
	}
	block_fill(&r->block, sector, seq);
	r->hdr = (struct virtio_blk_hdr){.type = VIRTIO_BLK_T_OUT, .sector = sector};
	r->seq = seq;
	r->status = MEMGEN_DISK_PENDING;
	r->busy = true;
	d->vq.desc[head] = (struct vring_desc){(uintptr_t)&r->hdr, sizeof(r->hdr),
	                                       VRING_DESC_F_NEXT, (uint16_t)(head + 1)};
	d->vq.desc[head + 1] = (struct vring_desc){(uintptr_t)&r->block, sizeof(r->block),
	                                           VRING_DESC_F_NEXT, (uint16_t)(head + 2)};
	d->vq.desc[head + 2] = (struct vring_desc){(uintptr_t)&r->status, 1, VRING_DESC_F_WRITE, 0};
	d->submitted++;
	d->inflight++;
	if (d->inflight > d->max_inflight)
		d->max_inflight = d->inflight;
	vq_publish(&d->vq, head);
	vq_kick(&d->vq);
	return 0;
}

int memgen_disk_poll(struct memgen_disk *d)
{
	if (disk_reap(d) < 0)
		return -1;
	while (d->inflight < MEMGEN_DISK_DEPTH) {
		uint64_t before = d->submitted;

		if (disk_submit(d) < 0)
			return -1;
		if (d->submitted == before)
			break;
	}
	return 0;
}

/* Wait until nothing is in flight. 0, or -1 with d->why. */
static int disk_drain(struct memgen_disk *d)
{
	uint64_t end = virtio_now_us() + DRAIN_TIMEOUT_US;

	while (d->inflight) {
		if (disk_reap(d) < 0)
			return -1;
		if (!d->inflight)
			break;
		if (virtio_status(&d->dev) & VIRTIO_S_NEEDS_RESET) {
			format(d->why, sizeof(d->why),
			       "the disk set DEVICE_NEEDS_RESET with %u requests in flight",
			       d->inflight);
			return -1;
		}
		if (virtio_now_us() > end) {
			format(d->why, sizeof(d->why),
			       "%u of %lu writes never completed (waited %u s)", d->inflight,
			       d->submitted, DRAIN_TIMEOUT_US / 1000000);
			return -1;
		}
		cpu_relax();
	}
	return 0;
}

/* Sector @sector's content in @got against the last write to it. 0, or -1 with d->why. */
static int disk_check_sector(struct memgen_disk *d, uint64_t sector, const struct memgen_block *got)
{
	uint64_t seq = sector + (d->submitted - 1 - sector) / d->span * d->span;
	struct memgen_block want;

	block_fill(&want, sector, seq);
	if (memcmp(got, &want, sizeof(want)) == 0)
		return 0;
	format(d->why, sizeof(d->why),
	       "sector %lu reads back magic 0x%lx sector %lu write %lu%s, expected write %lu",
	       sector, got->magic, got->sector, got->seq,
	       got->magic == want.magic && got->sector == sector && got->seq == seq
	           ? " with other data"
	           : "",
	       seq);
	return -1;
}

int memgen_disk_finish(struct memgen_disk *d, uint8_t *buf)
{
	const uint64_t per_read = MEMGEN_DISK_READ_BYTES / VIRTIO_BLK_SECTOR;
	uint64_t written;

	if (disk_drain(d) < 0)
		return -1;
	if (d->completed != d->submitted || d->vq.used->idx != d->vq.avail_idx) {
		format(d->why, sizeof(d->why),
		       "%lu writes submitted, %lu completed; used.idx %u, avail.idx %u",
		       d->submitted, d->completed, d->vq.used->idx, d->vq.avail_idx);
		return -1;
	}
	written = d->submitted < d->span ? d->submitted : d->span;
	for (uint64_t s = 0; s < written; s += per_read) {
		uint64_t n = written - s < per_read ? written - s : per_read;
		int st = blk_rw(&d->dev, &d->vq, VIRTIO_BLK_T_IN, s, buf, n * VIRTIO_BLK_SECTOR);

		if (st != VIRTIO_BLK_S_OK) {
			format(d->why, sizeof(d->why), "read-back of sectors %lu..%lu: status %d",
			       s, s + n - 1, st);
			return -1;
		}
		for (uint64_t i = 0; i < n; i++)
			if (disk_check_sector(d, s + i,
			                      (const void *)(buf + i * VIRTIO_BLK_SECTOR)) < 0)
				return -1;
	}
	for (unsigned int slot = 0; slot < MEMGEN_DISK_SLOTS && slot < d->submitted; slot++)
		if (d->req[slot].status != MEMGEN_DISK_CONSUMED) {
			format(d->why, sizeof(d->why),
			       "the status byte of write %lu changed to 0x%02x after it completed",
			       d->req[slot].seq, d->req[slot].status);
			return -1;
		}
	if (__atomic_load_n(&d->vq.used->idx, __ATOMIC_ACQUIRE) != d->vq.last_used) {
		format(d->why, sizeof(d->why), "used.idx moved to %u after the last request (%u)",
		       d->vq.used->idx, d->vq.last_used);
		return -1;
	}
	return 0;
}
