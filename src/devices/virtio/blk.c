/* SPDX-License-Identifier: MIT */
/*
 * virtio-blk (virtio 1.2 §5.2): requests from the guest's queue to the disk
 * backend and back. See blk.h.
 *
 * A request is a chain: a 16-byte header (type, reserved, sector) in the
 * device-readable part, then the data (readable for writes, writable for
 * reads), and one status byte, the chain's last writable byte (§5.2.6). The
 * header may be split over several buffers; it is copied out once.
 *
 * Reads and writes popped in one batch that continue each other on the disk
 * (the next one's first sector is where the previous one ends, same
 * direction) are merged into one disk request with the members' buffers
 * one after the other: a sequential stream at depth costs one preadv or
 * pwritev (one SQE, one worker hand-over) per batch instead of one per
 * request. The first request of a run carries the merged disk_io; the
 * others hang off it and complete with it, with its status (as a Linux
 * block request made of merged bios does).
 */
#include "devices/virtio/blk.h"

#include "core/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#define BLK_HDR_SIZE 16
#define BLK_SEG_SIZE 16 /* struct virtio_blk_discard_write_zeroes */
#define BLK_SECTOR_SHIFT 9
#define BLK_SEG_MAX (VIRTIO_BLK_QUEUE_SIZE - 2) /* header and status take two */
#define BLK_MAX_DISCARD_SECTORS (1U << 22)      /* 2 GiB per request */
#define BLK_DISCARD_ALIGNMENT 8                 /* sectors: 4 KiB, the usual hole granularity */
#define BLK_PCI_CLASS 0x010000                  /* mass storage, SCSI (what QEMU uses) */
#define BLK_MERGE_MAX_BYTES (1U << 20)          /* a merged run stops growing at 1 MiB */

struct blk_req {
	struct virtio_blk *blk;
	struct disk_io io;
	struct virtq_req vr;
	struct iovec chain[VIRTIO_BLK_QUEUE_SIZE];
	struct iovec data[VIRTIO_BLK_QUEUE_SIZE];
	uint8_t *status;
	uint32_t used_len;
	struct blk_req *next_free;
	/* Merging: the run's first request lists the others, in disk order. */
	struct blk_req *merged_next;
	struct blk_req *merged_tail; /* first request only */
};

struct virtio_blk {
	struct virtio_device vdev;
	struct virtq vq;
	struct disk *disk;
	bool readonly;
	uint64_t capacity; /* sectors */
	uint8_t config[VIRTIO_BLK_CFG_SIZE];
	char id[VIRTIO_BLK_ID_BYTES];
	struct blk_req *reqs;
	struct blk_req *free_list;
	bool resetting;      /* completions only free their request */
	bool need_notify;    /* something was pushed since the last interrupt check */
	bool starved;        /* the queue waits for a free request */
	struct blk_req *run; /* reads or writes being merged, not yet submitted */
};

static struct blk_req *blk_req_get(struct virtio_blk *blk)
{
	struct blk_req *req = blk->free_list;

	if (req)
		blk->free_list = req->next_free;
	return req;
}

static void blk_req_put(struct virtio_blk *blk, struct blk_req *req)
{
	req->next_free = blk->free_list;
	blk->free_list = req;
}

/* Finish @req with @status: write the status byte and return the chain. */
static void blk_req_complete_one(struct virtio_blk *blk, struct blk_req *req, uint8_t status)
{
	if (!blk->resetting) {
		if (req->status)
			*req->status = status;
		virtq_push(&blk->vq, req->vr.head, status == VIRTIO_BLK_S_OK ? req->used_len : 1);
		virtq_mark_written(&blk->vq, &req->vr);
		blk->need_notify = true;
	}
	blk_req_put(blk, req);
}

/* Finish @req and the requests merged into it, in disk order, with @status. */
static void blk_req_complete(struct virtio_blk *blk, struct blk_req *req, uint8_t status)
{
	while (req) {
		struct blk_req *next = req->merged_next;

		req->merged_next = NULL;
		req->merged_tail = NULL;
		blk_req_complete_one(blk, req, status);
		req = next;
	}
}

/*
 * Without VIRTIO_BLK_F_FLUSH the driver assumes a write-through disk
 * (virtio 1.2 §5.2.6.2): a write completes only once it is durable.
 */
static bool blk_write_through(const struct virtio_blk *blk)
{
	return !(blk->vdev.acked & VIRTIO_BIT(VIRTIO_BLK_F_FLUSH));
}

static void blk_io_done(struct disk_io *io, int64_t result)
{
	struct blk_req *req = io->opaque;

	if (result >= 0 && io->op != DISK_OP_READ && io->op != DISK_OP_FLUSH &&
	    blk_write_through(req->blk) && !req->blk->resetting) {
		io->op = DISK_OP_FLUSH;
		io->offset = 0;
		io->len = 0;
		if (disk_submit(req->blk->disk, io) == 0)
			return;
		result = -EIO;
	}
	if (result < 0)
		log_debug("%s: request at sector %llu failed: %s", req->blk->vdev.name,
		          (unsigned long long)(io->offset >> BLK_SECTOR_SHIFT),
		          strerror((int)-result));
	blk_req_complete(req->blk, req, result < 0 ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK);
}

/* Is [sector, sector + bytes/512) on the disk, in whole sectors? */
static bool blk_range_ok(const struct virtio_blk *blk, uint64_t sector, uint64_t bytes)
{
	uint64_t n = bytes >> BLK_SECTOR_SHIFT;

	return !(bytes & (DISK_SECTOR_SIZE - 1)) && sector <= blk->capacity &&
	       n <= blk->capacity - sector;
}

static void blk_submit(struct virtio_blk *blk, struct blk_req *req, enum disk_op op,
                       uint64_t sector, uint64_t len)
{
	int r;

	req->io.op = op;
	req->io.offset = sector << BLK_SECTOR_SHIFT;
	req->io.len = len;
	r = disk_submit(blk->disk, &req->io);
	if (r < 0)
		blk_req_complete(blk, req, VIRTIO_BLK_S_IOERR);
}

/* Start the run of merged reads or writes, if any. */
static void blk_run_submit(struct virtio_blk *blk)
{
	struct blk_req *run = blk->run;

	if (!run)
		return;
	blk->run = NULL;
	blk_submit(blk, run, run->io.op, run->io.offset >> BLK_SECTOR_SHIFT, run->io.len);
}

/*
 * Can @req (decoded, its data in req->data) join the run? Same direction,
 * starting where the run ends, and the run's iovec array and size limit
 * leave room (a buffer continuing the run's last one in host memory takes
 * no new entry).
 */
static bool blk_run_accepts(const struct blk_req *run, const struct blk_req *req)
{
	const struct iovec *last;
	int need = req->io.iovcnt;

	/* Empty transfers stay on their own (nothing to gain, no iovec to continue). */
	if (run->io.op != req->io.op || run->io.offset + run->io.len != req->io.offset ||
	    run->io.len + req->io.len > BLK_MERGE_MAX_BYTES || run->io.iovcnt == 0 ||
	    req->io.iovcnt == 0)
		return false;
	last = &run->io.iov[run->io.iovcnt - 1];
	if ((uint8_t *)last->iov_base + last->iov_len == req->io.iov[0].iov_base)
		need--;
	return run->io.iovcnt + need <= VIRTIO_BLK_QUEUE_SIZE;
}

/* Append @req's data to the run's and hang @req off it (blk_run_accepts() said yes). */
static void blk_run_append(struct blk_req *run, struct blk_req *req)
{
	struct iovec *last = &run->io.iov[run->io.iovcnt - 1];
	int i = 0;

	if ((uint8_t *)last->iov_base + last->iov_len == req->io.iov[0].iov_base) {
		last->iov_len += req->io.iov[0].iov_len;
		i = 1;
	}
	for (; i < req->io.iovcnt; i++)
		run->io.iov[run->io.iovcnt++] = req->io.iov[i];
	run->io.len += req->io.len;
	if (run->merged_tail)
		run->merged_tail->merged_next = req;
	else
		run->merged_next = req;
	run->merged_tail = req;
}

/*
 * A decoded read or write of @len bytes at @sector, its data in req->data:
 * merge it into the current run when it continues it, otherwise start the
 * run and begin a new one with @req. blk_process() starts the last run.
 */
static void blk_queue_rw(struct virtio_blk *blk, struct blk_req *req, enum disk_op op,
                         uint64_t sector, uint64_t len)
{
	req->io.op = op;
	req->io.offset = sector << BLK_SECTOR_SHIFT;
	req->io.len = len;
	if (blk->run && blk_run_accepts(blk->run, req)) {
		blk_run_append(blk->run, req);
		return;
	}
	blk_run_submit(blk);
	blk->run = req;
}

/* Slice [off, off + len) of the readable (@in false) or writable buffers into req->data. */
static bool blk_slice(struct blk_req *req, bool in, size_t off, uint64_t len)
{
	struct virtq_req *vr = &req->vr;
	int n = in ? iov_slice(vr->iov + vr->nr_out, vr->nr_in, off, len, req->data,
	                       VIRTIO_BLK_QUEUE_SIZE)
	           : iov_slice(vr->iov, vr->nr_out, off, len, req->data, VIRTIO_BLK_QUEUE_SIZE);

	if (n < 0)
		return false;
	req->io.iov = req->data;
	req->io.iovcnt = n;
	return true;
}

/* VIRTIO_BLK_T_DISCARD and _WRITE_ZEROES: one segment (max_*_seg is 1). */
static void blk_handle_zeroes(struct virtio_blk *blk, struct blk_req *req, uint32_t type)
{
	struct virtq_req *vr = &req->vr;
	uint8_t seg[BLK_SEG_SIZE];
	uint64_t sector;
	uint32_t nr, flags;
	enum disk_op op;

	if (blk->readonly) {
		blk_req_complete(blk, req, VIRTIO_BLK_S_IOERR);
		return;
	}
	if (vr->out_len != BLK_HDR_SIZE + BLK_SEG_SIZE ||
	    iov_to_buf(vr->iov, vr->nr_out, BLK_HDR_SIZE, seg, sizeof(seg)) != sizeof(seg)) {
		blk_req_complete(blk, req, VIRTIO_BLK_S_IOERR);
		return;
	}
	memcpy(&sector, seg, 8);
	memcpy(&nr, seg + 8, 4);
	memcpy(&flags, seg + 12, 4);
	/* Unknown flags, or unmap on a discard, are unsupported (§5.2.6.2). */
	if ((flags & ~VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) ||
	    (type == VIRTIO_BLK_T_DISCARD && flags)) {
		blk_req_complete(blk, req, VIRTIO_BLK_S_UNSUPP);
		return;
	}
	if (nr > BLK_MAX_DISCARD_SECTORS ||
	    !blk_range_ok(blk, sector, (uint64_t)nr << BLK_SECTOR_SHIFT)) {
		blk_req_complete(blk, req, VIRTIO_BLK_S_IOERR);
		return;
	}
	/* No sectors: nothing to do (fallocate() would refuse the zero length). */
	if (nr == 0) {
		blk_req_complete(blk, req, VIRTIO_BLK_S_OK);
		return;
	}
	if (type == VIRTIO_BLK_T_DISCARD)
		op = DISK_OP_DISCARD;
	else if (flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP)
		op = DISK_OP_WRITE_ZEROES_UNMAP;
	else
		op = DISK_OP_WRITE_ZEROES;
	req->used_len = 1;
	blk_submit(blk, req, op, sector, (uint64_t)nr << BLK_SECTOR_SHIFT);
}

/* Decode one popped request and start it (or fail it at once). */
static void blk_handle(struct virtio_blk *blk, struct blk_req *req)
{
	struct virtq_req *vr = &req->vr;
	struct iovec *last;
	uint8_t hdr[BLK_HDR_SIZE];
	uint32_t type;
	uint64_t sector, data_len;

	req->status = NULL;
	req->used_len = 1;
	req->io.iov = NULL;
	req->io.iovcnt = 0;
	/* No status byte: the request cannot even be failed; return it untouched. */
	if (vr->nr_in == 0) {
		req->used_len = 0;
		blk_req_complete(blk, req, VIRTIO_BLK_S_OK);
		return;
	}
	last = &vr->iov[vr->nr_out + vr->nr_in - 1];
	req->status = (uint8_t *)last->iov_base + last->iov_len - 1;
	if (iov_to_buf(vr->iov, vr->nr_out, 0, hdr, sizeof(hdr)) != sizeof(hdr)) {
		blk_req_complete(blk, req, VIRTIO_BLK_S_IOERR);
		return;
	}
	memcpy(&type, hdr, 4);
	memcpy(&sector, hdr + 8, 8);

	switch (type) {
	case VIRTIO_BLK_T_IN:
		data_len = vr->in_len - 1;
		if (!blk_range_ok(blk, sector, data_len) || !blk_slice(req, true, 0, data_len)) {
			blk_req_complete(blk, req, VIRTIO_BLK_S_IOERR);
			return;
		}
		req->used_len = (uint32_t)(data_len + 1 > UINT32_MAX ? UINT32_MAX : data_len + 1);
		blk_queue_rw(blk, req, DISK_OP_READ, sector, data_len);
		return;
	case VIRTIO_BLK_T_OUT:
		data_len = vr->out_len - BLK_HDR_SIZE;
		if (blk->readonly || !blk_range_ok(blk, sector, data_len) ||
		    !blk_slice(req, false, BLK_HDR_SIZE, data_len)) {
			blk_req_complete(blk, req, VIRTIO_BLK_S_IOERR);
			return;
		}
		blk_queue_rw(blk, req, DISK_OP_WRITE, sector, data_len);
		return;
	case VIRTIO_BLK_T_FLUSH:
		blk_submit(blk, req, DISK_OP_FLUSH, 0, 0);
		return;
	case VIRTIO_BLK_T_GET_ID: {
		size_t n = vr->in_len - 1 < sizeof(blk->id) ? vr->in_len - 1 : sizeof(blk->id);

		iov_from_buf(vr->iov + vr->nr_out, vr->nr_in, 0, blk->id, n);
		req->used_len = (uint32_t)n + 1;
		blk_req_complete(blk, req, VIRTIO_BLK_S_OK);
		return;
	}
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		blk_handle_zeroes(blk, req, type);
		return;
	default:
		blk_req_complete(blk, req, VIRTIO_BLK_S_UNSUPP);
		return;
	}
}

static void blk_flush_notify(struct virtio_blk *blk)
{
	if (blk->need_notify) {
		blk->need_notify = false;
		virtio_device_notify_queue(&blk->vdev, 0);
	}
}

/* Pop and start requests until the queue is empty or every request slot is busy. */
static void blk_process(struct virtio_blk *blk)
{
	struct virtq *vq = &blk->vq;

	blk->starved = false;
	virtq_disable_notify(vq);
	disk_plug(blk->disk);
	for (;;) {
		struct blk_req *req;
		int r;

		while ((req = blk_req_get(blk))) {
			r = virtq_pop(vq, &req->vr);
			if (r <= 0) {
				blk_req_put(blk, req);
				if (r < 0) {
					virtio_device_set_needs_reset(&blk->vdev,
					                              "malformed request queue");
					blk_run_submit(blk);
					disk_unplug(blk->disk);
					blk_flush_notify(blk);
					return;
				}
				break;
			}
			blk_handle(blk, req);
		}
		if (!blk->free_list) {
			/* A completion frees a slot and comes back here. */
			blk->starved = true;
			break;
		}
		if (!virtq_enable_notify(vq))
			break;
	}
	blk_run_submit(blk);
	disk_unplug(blk->disk);
	/*
	 * Reads from the page cache often complete inside the submission:
	 * reap them now rather than after another trip through epoll.
	 */
	disk_complete(blk->disk, false);
	blk_flush_notify(blk);
}

static void blk_completion_ready(struct virtio_device *vdev, int fd, uint32_t revents, void *arg)
{
	struct virtio_blk *blk = arg;

	(void)vdev;
	(void)fd;
	(void)revents;
	disk_complete(blk->disk, false);
	blk_flush_notify(blk);
	if (blk->starved && virtio_device_is_live(&blk->vdev))
		blk_process(blk);
}

static void blk_queue_notify(struct virtio_device *vdev, unsigned int q)
{
	(void)q;
	blk_process(container_of(vdev, struct virtio_blk, vdev));
}

static int blk_activate(struct virtio_device *vdev)
{
	struct virtio_blk *blk = container_of(vdev, struct virtio_blk, vdev);

	return virtio_device_watch(vdev, disk_completion_fd(blk->disk), EPOLLIN,
	                           blk_completion_ready, blk);
}

static void blk_reset(struct virtio_device *vdev)
{
	struct virtio_blk *blk = container_of(vdev, struct virtio_blk, vdev);

	/* Nothing may write guest memory after the reset: wait for the disk. */
	blk->resetting = true;
	if (blk->disk)
		disk_drain(blk->disk);
	blk->resetting = false;
	blk->need_notify = false;
	blk->starved = false;
}

static void blk_config_read(struct virtio_device *vdev, uint32_t offset, void *data, uint32_t len)
{
	memcpy(data, (container_of(vdev, struct virtio_blk, vdev))->config + offset, len);
}

/*
 * On the I/O thread, parking: every request taken from the queue completes
 * on the disk and goes back to the driver, with its interrupt. Nothing new
 * is popped (a starved queue is looked at again on resume).
 */
static int blk_quiesce(struct virtio_device *vdev, const struct timespec *deadline)
{
	struct virtio_blk *blk = container_of(vdev, struct virtio_blk, vdev);
	int r = blk->disk ? disk_drain_until(blk->disk, deadline) : 0;

	blk_flush_notify(blk);
	if (r < 0)
		log_warn("%s: %u requests still on the disk: %s", vdev->name, blk->disk->inflight,
		         strerror(-r));
	return r;
}

/*
 * The device's own state is its configuration, fixed at creation: saved
 * so that a restore onto another image (another size, read-only or not,
 * another serial) is refused rather than surprising the guest's driver.
 */
static int blk_save(struct virtio_device *vdev, struct dev_state *out)
{
	struct virtio_blk *blk = container_of(vdev, struct virtio_blk, vdev);

	if (blk->disk && blk->disk->inflight) {
		log_error("%s: %u requests in flight; quiesce it first", vdev->name,
		          blk->disk->inflight);
		return -EBUSY;
	}
	ds_put_u64(out, blk->capacity);
	ds_put_bool(out, blk->readonly);
	ds_put_bytes(out, blk->id, sizeof(blk->id));
	return 0;
}

static int blk_restore(struct virtio_device *vdev, struct dev_state_in *in, uint32_t version)
{
	struct virtio_blk *blk = container_of(vdev, struct virtio_blk, vdev);
	uint64_t capacity = dsi_get_u64(in);
	bool readonly = dsi_get_bool(in);
	char id[VIRTIO_BLK_ID_BYTES];

	(void)version;
	dsi_get_bytes(in, id, sizeof(id));
	dsi_check(in, capacity == blk->capacity,
	          "the disk had %llu sectors, this one has %llu: not the same image",
	          (unsigned long long)capacity, (unsigned long long)blk->capacity);
	dsi_check(in, readonly == blk->readonly, "the disk was %s, this one is %s",
	          readonly ? "read-only" : "read-write",
	          blk->readonly ? "read-only" : "read-write");
	dsi_check(in, memcmp(id, blk->id, sizeof(id)) == 0, "the disk had another serial");
	return virtio_state_end(in) ? 0 : -EBADMSG;
}

static void blk_stop(struct virtio_device *vdev)
{
	virtio_blk_close_disk(container_of(vdev, struct virtio_blk, vdev));
}

static void blk_destroy(struct virtio_device *vdev)
{
	virtio_blk_destroy(container_of(vdev, struct virtio_blk, vdev));
}

static const struct virtio_device_ops virtio_blk_ops = {
    .config_read = blk_config_read,
    .activate = blk_activate,
    .queue_notify = blk_queue_notify,
    .reset = blk_reset,
    .quiesce = blk_quiesce,
    .save = blk_save,
    .restore = blk_restore,
    .stop = blk_stop,
    .destroy = blk_destroy,
};

static void blk_fill_config(struct virtio_blk *blk)
{
	uint8_t *c = blk->config;

	pci_cfg_set32(c, VIRTIO_BLK_CFG_CAPACITY, (uint32_t)blk->capacity);
	pci_cfg_set32(c, VIRTIO_BLK_CFG_CAPACITY + 4, (uint32_t)(blk->capacity >> 32));
	pci_cfg_set32(c, VIRTIO_BLK_CFG_SEG_MAX, BLK_SEG_MAX);
	pci_cfg_set32(c, VIRTIO_BLK_CFG_BLK_SIZE, DISK_SECTOR_SIZE);
	pci_cfg_set32(c, VIRTIO_BLK_CFG_MAX_DISCARD_SECTORS, BLK_MAX_DISCARD_SECTORS);
	pci_cfg_set32(c, VIRTIO_BLK_CFG_MAX_DISCARD_SEG, 1);
	pci_cfg_set32(c, VIRTIO_BLK_CFG_DISCARD_ALIGNMENT, BLK_DISCARD_ALIGNMENT);
	pci_cfg_set32(c, VIRTIO_BLK_CFG_MAX_WRITE_ZEROES_SECTORS, BLK_MAX_DISCARD_SECTORS);
	pci_cfg_set32(c, VIRTIO_BLK_CFG_MAX_WRITE_ZEROES_SEG, 1);
	c[VIRTIO_BLK_CFG_WRITE_ZEROES_MAY_UNMAP] = 1;
}

int virtio_blk_create(const struct virtio_blk_params *params, struct virtio_blk **out)
{
	struct virtio_blk *blk;
	const char *serial = params->serial ? params->serial : "nestvm";
	int r;

	*out = NULL;
	blk = calloc(1, sizeof(*blk));
	if (!blk)
		return -ENOMEM;
	blk->reqs = calloc(VIRTIO_BLK_QUEUE_SIZE, sizeof(*blk->reqs));
	if (!blk->reqs) {
		free(blk);
		return -ENOMEM;
	}
	r = disk_open(params->path, params->readonly, params->engine, &blk->disk);
	if (r < 0) {
		virtio_blk_destroy(blk);
		return r;
	}
	blk->readonly = params->readonly;
	blk->capacity = blk->disk->size >> BLK_SECTOR_SHIFT;
	if (blk->disk->size & (DISK_SECTOR_SIZE - 1))
		log_warn("disk %s: size is not a multiple of 512; the last %llu bytes are unused",
		         params->path,
		         (unsigned long long)(blk->disk->size & (DISK_SECTOR_SIZE - 1)));
	strncpy(blk->id, serial, sizeof(blk->id)); /* NUL-padded, not terminated at 20 (§5.2.6) */
	for (unsigned int i = 0; i < VIRTIO_BLK_QUEUE_SIZE; i++) {
		struct blk_req *req = &blk->reqs[i];

		req->blk = blk;
		req->io.opaque = req;
		req->io.done = blk_io_done;
		req->vr.iov = req->chain;
		req->vr.cap = VIRTIO_BLK_QUEUE_SIZE;
		blk_req_put(blk, req);
	}
	blk_fill_config(blk);
	virtq_init(&blk->vq, VIRTIO_BLK_QUEUE_SIZE);
	blk->vdev = (struct virtio_device){
	    .ops = &virtio_blk_ops,
	    .name = "virtio-blk",
	    .device_id = VIRTIO_ID_BLOCK,
	    .class_code = BLK_PCI_CLASS,
	    .features = VIRTIO_BIT(VIRTIO_BLK_F_SEG_MAX) | VIRTIO_BIT(VIRTIO_BLK_F_BLK_SIZE) |
	                VIRTIO_BIT(VIRTIO_BLK_F_FLUSH) | VIRTIO_BIT(VIRTIO_F_RING_INDIRECT_DESC) |
	                VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX),
	    .config_size = VIRTIO_BLK_CFG_SIZE,
	    .nr_queues = 1,
	    .vqs = &blk->vq,
	};
	if (params->readonly)
		blk->vdev.features |= VIRTIO_BIT(VIRTIO_BLK_F_RO);
	else
		blk->vdev.features |=
		    VIRTIO_BIT(VIRTIO_BLK_F_DISCARD) | VIRTIO_BIT(VIRTIO_BLK_F_WRITE_ZEROES);
	*out = blk;
	return 0;
}

struct virtio_device *virtio_blk_vdev(struct virtio_blk *blk)
{
	return &blk->vdev;
}

struct disk *virtio_blk_disk(struct virtio_blk *blk)
{
	return blk->disk;
}

void virtio_blk_close_disk(struct virtio_blk *blk)
{
	if (!blk)
		return;
	blk->resetting = true;
	disk_close(blk->disk);
	blk->disk = NULL;
}

void virtio_blk_destroy(struct virtio_blk *blk)
{
	if (!blk)
		return;
	virtio_blk_close_disk(blk);
	free(blk->reqs);
	free(blk);
}
