/* SPDX-License-Identifier: MIT */
/*
 * Disk I/O engine: io_uring through liburing. One ring per disk; its
 * completions are signalled on an eventfd registered with the ring
 * (io_uring_register_eventfd), so the owner's poll loop sees them like any
 * other fd. Short reads and writes are resubmitted for the rest; a fallocate
 * mode the file system lacks falls back to disk_do_sync().
 *
 * Built only with liburing (the Makefile defines HAVE_LIBURING when
 * pkg-config finds it); without it init() fails and disk_open() uses the
 * thread pool.
 */
#include "backends/disk_engine.h"

#include "core/log.h"

#include <errno.h>
#include <string.h>

#ifdef HAVE_LIBURING

#include <linux/falloc.h>
#include <liburing.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* Enough for every request a virtio-blk queue can have in flight. */
#define DISK_URING_ENTRIES 256

struct disk_uring {
	struct io_uring ring;
	bool ring_ready;
};

static void disk_uring_destroy(struct disk *disk);

static int disk_uring_init(struct disk *disk)
{
	struct disk_uring *u = calloc(1, sizeof(*u));
	int r;

	if (!u)
		return -ENOMEM;
	disk->engine = u;
	r = io_uring_queue_init(DISK_URING_ENTRIES, &u->ring, 0);
	if (r < 0)
		goto err;
	u->ring_ready = true;
	disk->completion_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (disk->completion_fd < 0) {
		r = -errno;
		goto err;
	}
	r = io_uring_register_eventfd(&u->ring, disk->completion_fd);
	if (r < 0)
		goto err;
	return 0;
err:
	disk_uring_destroy(disk);
	return r;
}

/* Prepare @io's next step in an SQE and hand it to the kernel. */
static int disk_uring_queue(struct disk *disk, struct disk_io *io)
{
	struct disk_uring *u = disk->engine;
	struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
	uint64_t off = io->offset + io->done_bytes;
	int mode = FALLOC_FL_KEEP_SIZE;

	if (!sqe) {
		/* The ring is full: push what is queued and try once more. */
		io_uring_submit(&u->ring);
		sqe = io_uring_get_sqe(&u->ring);
		if (!sqe)
			return -EBUSY;
	}
	switch (io->op) {
	case DISK_OP_READ:
		io_uring_prep_readv(sqe, disk->fd, io->iov, (unsigned int)io->iovcnt, off);
		break;
	case DISK_OP_WRITE:
		io_uring_prep_writev(sqe, disk->fd, io->iov, (unsigned int)io->iovcnt, off);
		break;
	case DISK_OP_FLUSH:
		io_uring_prep_fsync(sqe, disk->fd, IORING_FSYNC_DATASYNC);
		break;
	case DISK_OP_DISCARD:
	case DISK_OP_WRITE_ZEROES_UNMAP:
		io_uring_prep_fallocate(sqe, disk->fd, mode | FALLOC_FL_PUNCH_HOLE, off, io->len);
		break;
	case DISK_OP_WRITE_ZEROES:
		io_uring_prep_fallocate(sqe, disk->fd, mode | FALLOC_FL_ZERO_RANGE, off, io->len);
		break;
	}
	io_uring_sqe_set_data(sqe, io);
	/* Plugged: disk_uring_unplug() submits the batch. */
	if (disk->plugged)
		return 0;
	return io_uring_submit(&u->ring) < 0 ? -EIO : 0;
}

static void disk_uring_unplug(struct disk *disk)
{
	struct disk_uring *u = disk->engine;
	int r;

	/* A failed enter leaves the SQEs in the ring, for the next one. */
	do
		r = io_uring_submit(&u->ring);
	while (r == -EINTR || r == -EAGAIN);
	if (r < 0)
		log_error("disk %s: io_uring submission: %s", disk->path, strerror(-r));
}

static int disk_uring_submit(struct disk *disk, struct disk_io *io)
{
	return disk_uring_queue(disk, io);
}

/* One CQE for @io with result @res: finish it, or resubmit what is left. */
static void disk_uring_handle(struct disk *disk, struct disk_io *io, int res)
{
	if (io->op == DISK_OP_READ || io->op == DISK_OP_WRITE) {
		if (res == -EAGAIN || res == -EINTR) {
			if (disk_uring_queue(disk, io) < 0)
				disk_finish(disk, io, -EIO);
			return;
		}
		/* 0 bytes of a transfer that wanted more: past the end of the file. */
		if (res < 0 || (res == 0 && io->done_bytes < io->len)) {
			disk_finish(disk, io, res < 0 ? res : -EIO);
			return;
		}
		io->done_bytes += (uint64_t)res;
		if (io->done_bytes < io->len) {
			disk_iov_advance(io, (uint64_t)res);
			if (disk_uring_queue(disk, io) < 0)
				disk_finish(disk, io, -EIO);
			return;
		}
		disk_finish(disk, io, (int64_t)io->len);
		return;
	}
	if (io->op == DISK_OP_FLUSH) {
		disk_finish(disk, io, res);
		return;
	}
	/* fallocate: the file system may lack the mode; do it the slow way then. */
	if (res == -EOPNOTSUPP || res == -EINVAL)
		disk_finish(disk, io, disk_do_sync(disk, io));
	else
		disk_finish(disk, io, res < 0 ? res : (int64_t)io->len);
}

static void disk_uring_complete(struct disk *disk, bool wait)
{
	struct disk_uring *u = disk->engine;
	struct io_uring_cqe *cqe;
	uint64_t v;

	if (read(disk->completion_fd, &v, sizeof(v)) < 0) {
		/* EAGAIN: no new completion signalled; peek anyway. */
	}
	if (wait) {
		int r;

		do
			r = io_uring_wait_cqe(&u->ring, &cqe);
		while (r == -EINTR);
	}
	while (io_uring_peek_cqe(&u->ring, &cqe) == 0) {
		struct disk_io *io = io_uring_cqe_get_data(cqe);
		int res = cqe->res;

		io_uring_cqe_seen(&u->ring, cqe);
		disk_uring_handle(disk, io, res);
	}
}

static void disk_uring_destroy(struct disk *disk)
{
	struct disk_uring *u = disk->engine;

	if (!u)
		return;
	if (u->ring_ready)
		io_uring_queue_exit(&u->ring);
	if (disk->completion_fd >= 0)
		close(disk->completion_fd);
	disk->completion_fd = -1;
	free(u);
	disk->engine = NULL;
}

#else /* !HAVE_LIBURING */

static int disk_uring_init(struct disk *disk)
{
	(void)disk;
	return -ENOSYS;
}

static int disk_uring_submit(struct disk *disk, struct disk_io *io)
{
	(void)disk;
	(void)io;
	return -ENOSYS;
}

static void disk_uring_complete(struct disk *disk, bool wait)
{
	(void)disk;
	(void)wait;
}

static void disk_uring_destroy(struct disk *disk)
{
	(void)disk;
}

#endif

const struct disk_engine_ops disk_uring_ops = {
    .name = "io_uring",
    .init = disk_uring_init,
    .submit = disk_uring_submit,
    .complete = disk_uring_complete,
#ifdef HAVE_LIBURING
    .unplug = disk_uring_unplug,
#endif
    .destroy = disk_uring_destroy,
};
