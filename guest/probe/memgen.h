/* SPDX-License-Identifier: MIT */
#ifndef PROBE_MEMGEN_H
#define PROBE_MEMGEN_H

/*
 * test=memgen's virtio-blk write stream (memgen_disk.c), which the BSP
 * drives between chunks of its memory walk (test_memgen.c) with disk=on.
 *
 * Request k writes one sector, k modulo the span, with a block naming
 * (sector, k). At most MEMGEN_DISK_DEPTH requests are in flight, so a save
 * often lands while one is. Every completion is checked to happen exactly
 * once: used.idx may move by at most the number of requests in flight, a
 * used element must name a request in flight, its status byte must say OK,
 * and the status byte of a completed request, set to MEMGEN_DISK_CONSUMED,
 * must stay so until its slot is reused (a device that completes a request
 * twice writes it again). At the end every sector written is read back and
 * must hold the block of the last request that wrote it.
 */

#include "virtio.h"

#define MEMGEN_DISK_SLOTS 8   /* request buffers, reused in turn */
#define MEMGEN_DISK_DEPTH 2   /* requests in flight at most */
#define MEMGEN_DISK_SPAN 4096 /* sectors written in turn (2 MiB), fewer on a smaller disk */
#define MEMGEN_DISK_QSIZE 32  /* three descriptors per slot */
#define MEMGEN_DISK_CONSUMED 0xa5
#define MEMGEN_DISK_PENDING 0xff
#define MEMGEN_DISK_MAGIC 0x6b7369646e65676dULL /* "mgendisk" */
#define MEMGEN_DISK_READ_BYTES (64 * 1024)      /* read-back request size */

/* The sector a request writes: its identity, then a pattern derived from it. */
struct memgen_block {
	uint64_t magic, sector, seq, check;
	uint64_t fill[VIRTIO_BLK_SECTOR / 8 - 4];
};

struct memgen_disk_req {
	struct virtio_blk_hdr hdr;
	struct memgen_block block;
	volatile uint8_t status;
	bool busy;
	uint64_t seq;
};

struct memgen_disk {
	struct vdev dev;
	struct vq vq;
	uint64_t capacity, span; /* sectors */
	uint64_t submitted, completed;
	unsigned int inflight, max_inflight;
	struct memgen_disk_req req[MEMGEN_DISK_SLOTS];
	char why[200]; /* what failed */
};

/*
 * memgen_disk_start - find virtio-blk disk 0 and start its queue. @d stays
 * the stream's state. Returns 0, or -1 with d->why set.
 */
int memgen_disk_start(struct memgen_disk *d);

/*
 * memgen_disk_poll - take the completed requests (checking each, see
 * above) and submit new ones up to MEMGEN_DISK_DEPTH. Never waits.
 * Returns 0, or -1 with d->why set.
 */
int memgen_disk_poll(struct memgen_disk *d);

/*
 * memgen_disk_finish - wait for the requests in flight, check the counts,
 * read every sector written back into @buf (MEMGEN_DISK_READ_BYTES) and
 * check it. Returns 0, or -1 with d->why set.
 */
int memgen_disk_finish(struct memgen_disk *d, uint8_t *buf);

#endif
