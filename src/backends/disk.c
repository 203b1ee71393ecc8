/* SPDX-License-Identifier: MIT */
/*
 * Raw disk images: opening and locking the file, picking an I/O engine, and
 * the synchronous implementation of every operation. See disk.h.
 */
#include "backends/disk.h"

#include "backends/disk_engine.h"
#include "core/fsutil.h"
#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define DISK_ZERO_CHUNK (64 * 1024)

void disk_iov_advance(struct disk_io *io, uint64_t n)
{
	while (n && io->iovcnt) {
		if (n < io->iov->iov_len) {
			io->iov->iov_base = (uint8_t *)io->iov->iov_base + n;
			io->iov->iov_len -= n;
			return;
		}
		n -= io->iov->iov_len;
		io->iov++;
		io->iovcnt--;
	}
}

void disk_finish(struct disk *disk, struct disk_io *io, int64_t result)
{
	disk->inflight--;
	io->done(io, result);
}

/* preadv/pwritev until all of io->len is done; a short read at the end of the file is -EIO. */
static int64_t disk_rw_sync(struct disk *disk, struct disk_io *io)
{
	bool write = io->op == DISK_OP_WRITE;

	while (io->done_bytes < io->len) {
		ssize_t n = write ? pwritev(disk->fd, io->iov, io->iovcnt,
		                            (off_t)(io->offset + io->done_bytes))
		                  : preadv(disk->fd, io->iov, io->iovcnt,
		                           (off_t)(io->offset + io->done_bytes));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		io->done_bytes += (uint64_t)n;
		disk_iov_advance(io, (uint64_t)n);
	}
	return (int64_t)io->len;
}

/* Write-zeroes where fallocate cannot: plain writes of a zero buffer. */
static int64_t disk_write_zeroes_slow(struct disk *disk, uint64_t offset, uint64_t len)
{
	static const uint8_t zero[DISK_ZERO_CHUNK];
	uint64_t done = 0;

	while (done < len) {
		size_t n = len - done < sizeof(zero) ? (size_t)(len - done) : sizeof(zero);
		ssize_t w = pwrite(disk->fd, zero, n, (off_t)(offset + done));

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		done += (uint64_t)w;
	}
	return (int64_t)len;
}

int64_t disk_do_sync(struct disk *disk, struct disk_io *io)
{
	int mode = FALLOC_FL_KEEP_SIZE;

	if (io->op != DISK_OP_READ && io->op != DISK_OP_FLUSH && disk->readonly)
		return -EROFS;
	switch (io->op) {
	case DISK_OP_READ:
	case DISK_OP_WRITE:
		return disk_rw_sync(disk, io);
	case DISK_OP_FLUSH:
		return fdatasync(disk->fd) < 0 ? -errno : 0;
	case DISK_OP_DISCARD:
		/* A hint: where holes are not supported, the data simply stays. */
		if (fallocate(disk->fd, mode | FALLOC_FL_PUNCH_HOLE, (off_t)io->offset,
		              (off_t)io->len) < 0 &&
		    errno != EOPNOTSUPP)
			return -errno;
		return (int64_t)io->len;
	case DISK_OP_WRITE_ZEROES_UNMAP:
		if (fallocate(disk->fd, mode | FALLOC_FL_PUNCH_HOLE, (off_t)io->offset,
		              (off_t)io->len) == 0)
			return (int64_t)io->len;
		/* fall through */
	case DISK_OP_WRITE_ZEROES:
		if (fallocate(disk->fd, mode | FALLOC_FL_ZERO_RANGE, (off_t)io->offset,
		              (off_t)io->len) == 0)
			return (int64_t)io->len;
		if (errno != EOPNOTSUPP && errno != EINVAL)
			return -errno;
		return disk_write_zeroes_slow(disk, io->offset, io->len);
	}
	return -EINVAL;
}

int disk_submit(struct disk *disk, struct disk_io *io)
{
	int r;

	io->done_bytes = 0;
	io->result = 0;
	io->next = NULL;
	if (io->op != DISK_OP_READ && io->op != DISK_OP_FLUSH && disk->readonly)
		return -EROFS;
	if (io->offset > disk->size || io->len > disk->size - io->offset)
		return -EINVAL;
	r = disk->ops->submit(disk, io);
	if (r == 0)
		disk->inflight++;
	return r;
}

void disk_plug(struct disk *disk)
{
	disk->plugged = true;
}

void disk_unplug(struct disk *disk)
{
	disk->plugged = false;
	if (disk->ops->unplug)
		disk->ops->unplug(disk);
}

void disk_complete(struct disk *disk, bool wait)
{
	disk->ops->complete(disk, wait && disk->inflight > 0);
}

void disk_drain(struct disk *disk)
{
	while (disk->inflight > 0)
		disk->ops->complete(disk, true);
}

/* Milliseconds from now to @deadline, rounded up; 0 once it has passed. */
static int disk_ms_left(const struct timespec *deadline)
{
	struct timespec now;
	long long ns;

	clock_gettime(CLOCK_MONOTONIC, &now);
	ns = (long long)(deadline->tv_sec - now.tv_sec) * 1000000000LL +
	     (deadline->tv_nsec - now.tv_nsec);
	if (ns <= 0)
		return 0;
	return ns > 3600000LL * 1000000LL ? 3600000 : (int)((ns + 999999) / 1000000);
}

int disk_drain_until(struct disk *disk, const struct timespec *deadline)
{
	/*
	 * completion_fd is signalled for every request finished off the
	 * caller's thread; those finished at submission need only a look.
	 */
	for (;;) {
		struct pollfd pfd = {.fd = disk->completion_fd, .events = POLLIN};
		int ms;

		disk->ops->complete(disk, false);
		if (disk->inflight == 0)
			return 0;
		ms = disk_ms_left(deadline);
		if (ms == 0)
			return -ETIMEDOUT;
		if (poll(&pfd, 1, ms) < 0 && errno != EINTR)
			return -errno;
	}
}

int disk_completion_fd(const struct disk *disk)
{
	return disk->completion_fd;
}

const char *disk_engine_name(const struct disk *disk)
{
	return disk->ops->name;
}

static int disk_start_engine(struct disk *disk, enum disk_engine engine)
{
	int r;

	if (engine != DISK_ENGINE_THREADS) {
		disk->ops = &disk_uring_ops;
		r = disk->ops->init(disk);
		if (r == 0)
			return 0;
		if (engine == DISK_ENGINE_URING) {
			log_error("disk %s: io_uring unavailable: %s", disk->path, strerror(-r));
			return r;
		}
		log_info("disk %s: io_uring unavailable (%s), using the thread pool", disk->path,
		         strerror(-r));
	}
	disk->ops = &disk_threads_ops;
	r = disk->ops->init(disk);
	if (r < 0) {
		log_error("disk %s: cannot start I/O threads: %s", disk->path, strerror(-r));
		disk->ops = NULL;
	}
	return r;
}

int disk_open(const char *path, bool readonly, enum disk_engine engine, struct disk **out)
{
	struct disk *disk;
	struct stat st;
	int r;

	*out = NULL;
	disk = calloc(1, sizeof(*disk));
	if (!disk)
		return -ENOMEM;
	disk->completion_fd = -1;
	disk->fd = -1;
	disk->readonly = readonly;
	disk->path = strdup(path);
	/* Never blocks; regular files and block devices only. */
	r = disk->path ? fs_open_input(path, readonly ? O_RDONLY : O_RDWR, &st) : -ENOMEM;
	if (r < 0) {
		log_error("disk '%s': %s%s", path, fs_strerror(r),
		          r == -EACCES && !readonly ? " (add ,readonly to use it read-only)" : "");
		goto err;
	}
	disk->fd = r;
	if (flock(disk->fd, (readonly ? LOCK_SH : LOCK_EX) | LOCK_NB) < 0) {
		r = -errno;
		log_error("disk '%s': %s by another process (a running VM?)", path,
		          readonly ? "locked for writing" : "in use");
		goto err;
	}
	if (S_ISBLK(st.st_mode)) {
		off_t end = lseek(disk->fd, 0, SEEK_END);

		disk->size = end > 0 ? (uint64_t)end : 0;
	} else {
		disk->size = (uint64_t)st.st_size;
	}
	r = disk_start_engine(disk, engine);
	if (r < 0)
		goto err;
	log_info("disk %s: %llu bytes, %s, %s", path, (unsigned long long)disk->size,
	         readonly ? "read-only" : "read-write", disk->ops->name);
	*out = disk;
	return 0;
err:
	disk_close(disk);
	return r;
}

void disk_close(struct disk *disk)
{
	bool started;

	if (!disk)
		return;
	/* A disk rejected by disk_open() never had an engine, nor a write to flush. */
	started = disk->ops != NULL;
	if (disk->ops) {
		disk_drain(disk);
		disk->ops->destroy(disk);
	}
	if (disk->fd >= 0) {
		if (started && !disk->readonly && fdatasync(disk->fd) < 0)
			log_warn("disk %s: final flush failed: %s", disk->path, strerror(errno));
		/*
		 * Unlocked now, not when the last descriptor of the file goes: a
		 * jailed monitor keeps one from before the jail (core/fsutil.h).
		 */
		if (started)
			(void)flock(disk->fd, LOCK_UN);
		close(disk->fd);
	}
	free(disk->path);
	free(disk);
}

int disk_lock(struct disk *disk, bool take)
{
	if (take) {
		if (flock(disk->fd, (disk->readonly ? LOCK_SH : LOCK_EX) | LOCK_NB) < 0)
			return errno == EWOULDBLOCK ? -EBUSY : -errno;
		return 0;
	}
	if (!disk->readonly && fdatasync(disk->fd) < 0)
		return -errno;
	return flock(disk->fd, LOCK_UN) < 0 ? -errno : 0;
}
