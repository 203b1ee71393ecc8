/* SPDX-License-Identifier: MIT */
#ifndef NESTVM_BACKENDS_DISK_H
#define NESTVM_BACKENDS_DISK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>
#include <time.h>

/*
 * Disk images for block devices: a raw image file, read and written off the
 * vCPU threads by an I/O engine behind a small ops table:
 *
 *   io_uring  (liburing; Linux >= 5.6 for every operation used) - one ring,
 *             completions signalled on an eventfd;
 *   threads   a pool of worker threads doing preadv/pwritev/fdatasync/
 *             fallocate, completions handed back through an eventfd.
 *
 * disk_open() picks io_uring when nestvm was built with liburing and the
 * kernel lets it set up a ring, the thread pool otherwise (or when asked).
 * Both engines report completions the same way: the owner watches
 * disk_completion_fd() and calls disk_complete(), which runs each finished
 * request's done() callback on the caller's thread. That is how virtio-blk
 * completes requests on its own I/O thread with no extra locking. A request
 * may also finish within disk_submit() (the thread pool reads what the page
 * cache holds at once): the completion fd is not signalled for it, and its
 * done() runs at the next disk_complete(), which a submitter calls after a
 * batch of submissions.
 *
 * Discard punches a hole (FALLOC_FL_PUNCH_HOLE), so a sparse image stays
 * sparse; write-zeroes uses FALLOC_FL_ZERO_RANGE, or a hole when the guest
 * allows unmapping, falling back to writing zeroes where the file system
 * supports neither.
 *
 * A disk and its requests belong to one thread at a time (no locking).
 */

#define DISK_SECTOR_SIZE 512

enum disk_op {
	DISK_OP_READ,
	DISK_OP_WRITE,
	DISK_OP_FLUSH,
	DISK_OP_DISCARD,
	DISK_OP_WRITE_ZEROES,       /* zeroes, keep the blocks allocated */
	DISK_OP_WRITE_ZEROES_UNMAP, /* zeroes, may deallocate */
};

enum disk_engine { DISK_ENGINE_AUTO, DISK_ENGINE_URING, DISK_ENGINE_THREADS };

struct disk;

/*
 * One request. The submitter fills op, offset, len (bytes), iov/iovcnt (read
 * and write) and done; the engine may modify iov (it advances over short
 * transfers) and uses the private fields. done(io, result) gets the bytes
 * transferred (all of len) or -errno.
 */
struct disk_io {
	enum disk_op op;
	uint64_t offset;
	uint64_t len;
	struct iovec *iov;
	int iovcnt;
	void (*done)(struct disk_io *io, int64_t result);
	void *opaque; /* the submitter's */

	/* Engine-private. */
	uint64_t done_bytes;
	int64_t result;
	struct disk_io *next;
};

struct disk_engine_ops {
	const char *name;
	int (*init)(struct disk *disk);
	/* Start @io; completes later through complete(). Returns 0 or -errno (not started). */
	int (*submit)(struct disk *disk, struct disk_io *io);
	/* Run done() for every finished request; @wait: block until at least one is. */
	void (*complete)(struct disk *disk, bool wait);
	/* Optional: start what submit() queued while disk->plugged (disk_unplug()). */
	void (*unplug)(struct disk *disk);
	void (*destroy)(struct disk *disk);
};

struct disk {
	int fd;
	bool readonly;
	uint64_t size;         /* bytes */
	unsigned int inflight; /* submitted, done() not yet run */
	bool plugged;          /* between disk_plug() and disk_unplug() */
	int completion_fd;     /* readable when complete() has work */
	const struct disk_engine_ops *ops;
	void *engine;
	char *path;
};

extern const struct disk_engine_ops disk_uring_ops;
extern const struct disk_engine_ops disk_threads_ops;

/*
 * disk_open - open the raw image @path (read-only if @readonly) and start
 * @engine. Takes a shared (read-only) or exclusive lock on the file, so two
 * VMs cannot write one image. Returns 0 or -errno; errors are logged.
 */
int disk_open(const char *path, bool readonly, enum disk_engine engine, struct disk **out)
    __attribute__((warn_unused_result));

/* disk_submit - start @io (see struct disk_io). Returns 0 or -errno (done() will not run). */
int disk_submit(struct disk *disk, struct disk_io *io) __attribute__((warn_unused_result));

/*
 * disk_plug, disk_unplug - the requests submitted in between may wait until
 * disk_unplug() to be started, together (io_uring: one io_uring_enter() for
 * the batch instead of one per request). Call disk_unplug() before
 * disk_complete() or any wait.
 */
void disk_plug(struct disk *disk);
void disk_unplug(struct disk *disk);

/* disk_complete - run the done() callbacks of finished requests; @wait blocks for one. */
void disk_complete(struct disk *disk, bool wait);

/* disk_drain - wait until every submitted request has completed (done() run). */
void disk_drain(struct disk *disk);

/*
 * disk_drain_until - disk_drain() bounded by @deadline (CLOCK_MONOTONIC).
 * Returns 0, or -ETIMEDOUT with requests still in flight (they complete
 * later, through disk_completion_fd() as usual).
 */
int disk_drain_until(struct disk *disk, const struct timespec *deadline)
    __attribute__((warn_unused_result));

/* disk_completion_fd - poll it for POLLIN, then call disk_complete(). */
int disk_completion_fd(const struct disk *disk);

/* disk_engine_name - "io_uring" or "threads". */
const char *disk_engine_name(const struct disk *disk);

/*
 * disk_lock - hand the image's lock over (live migration: the destination
 * opens the same image, shared storage): @take false flushes the image
 * (unless read-only) and drops the lock, with no request in flight; @take
 * true takes it again as disk_open() did. 0, or -EBUSY (another process
 * holds it) or -errno.
 */
int disk_lock(struct disk *disk, bool take) __attribute__((warn_unused_result));

/* disk_close - drain, flush (unless read-only) and close; NULL is a no-op. */
void disk_close(struct disk *disk);

/*
 * disk_do_sync - perform @io synchronously with plain system calls; returns
 * bytes or -errno. The thread pool's worker body, and the fallback for
 * operations an engine cannot do itself.
 */
int64_t disk_do_sync(struct disk *disk, struct disk_io *io);

#endif
