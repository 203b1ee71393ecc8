/* SPDX-License-Identifier: MIT */
/*
 * Disk I/O engine: a small pool of worker threads running each request with
 * plain system calls (disk_do_sync). Finished requests go on a list and the
 * completion eventfd is signalled; disk_complete() runs their callbacks on
 * the owner's thread. The fallback where io_uring is unavailable.
 *
 * A read is first tried on the submitting thread with RWF_NOWAIT, which
 * succeeds only when the page cache holds all of it (what io_uring does for
 * buffered reads before it punts to a worker): a cached read then costs no
 * hand-over to a worker and back, which on a loaded host is two trips
 * through the scheduler. It finishes at once and its done() runs at the
 * next disk_complete() (see disk.h). What is not cached goes to the pool as
 * before. Buffered writes cannot be tried that way (ext4 answers
 * EOPNOTSUPP), and may sleep in dirty-page throttling: they stay on the pool.
 */
#include "backends/disk_engine.h"
#include "core/sandbox.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define DISK_THREADS 4
/* Larger reads go to the pool even when cached: the owner's thread has other queues. */
#define DISK_INLINE_MAX (1U << 20)

struct disk_pool {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct disk_io *todo_head, *todo_tail; /* under lock */
	struct disk_io *done;                  /* under lock, newest first */
	bool stop;                             /* under lock */
	pthread_t threads[DISK_THREADS];
	unsigned int nr_threads;
	struct disk *disk;
	/* The owner's thread only: reads finished at submission, oldest first. */
	struct disk_io *ready_head, *ready_tail;
	bool no_nowait; /* preadv2(RWF_NOWAIT) is not supported here */
};

static void *disk_pool_worker(void *arg)
{
	struct disk_pool *p = arg;
	uint64_t one = 1;

	sandbox_enter(SANDBOX_DEVICE, "disk-worker");
	pthread_mutex_lock(&p->lock);
	for (;;) {
		struct disk_io *io;

		while (!p->stop && !p->todo_head)
			pthread_cond_wait(&p->cond, &p->lock);
		if (p->stop)
			break;
		io = p->todo_head;
		p->todo_head = io->next;
		if (!p->todo_head)
			p->todo_tail = NULL;
		pthread_mutex_unlock(&p->lock);

		io->result = disk_do_sync(p->disk, io);

		pthread_mutex_lock(&p->lock);
		io->next = p->done;
		p->done = io;
		/* The eventfd counter saturates harmlessly; a lost wake-up is not possible. */
		if (write(p->disk->completion_fd, &one, sizeof(one)) < 0) {
			/* EAGAIN: the counter is already non-zero, the owner will look. */
		}
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

static void disk_threads_destroy(struct disk *disk);

static int disk_threads_init(struct disk *disk)
{
	struct disk_pool *p = calloc(1, sizeof(*p));
	sigset_t all, old;
	int r = 0;

	if (!p)
		return -ENOMEM;
	p->disk = disk;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	disk->engine = p;
	disk->completion_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (disk->completion_fd < 0) {
		r = -errno;
		goto err;
	}
	/* Workers take no signals: the monitor's main thread handles them. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (unsigned int i = 0; i < DISK_THREADS; i++) {
		r = -sandbox_thread_create(&p->threads[i], disk_pool_worker, p);
		if (r < 0)
			break;
		p->nr_threads++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (p->nr_threads > 0)
		return 0;
err:
	disk_threads_destroy(disk);
	return r;
}

/*
 * Try read @io from the page cache on the caller's thread. True when all of
 * it was read (it is then on the ready list); false leaves what is left
 * (io->done_bytes, io->iov advanced) for a worker.
 */
static bool disk_threads_read_cached(struct disk *disk, struct disk_pool *p, struct disk_io *io)
{
	if (p->no_nowait || io->len > DISK_INLINE_MAX)
		return false;
	while (io->done_bytes < io->len) {
		ssize_t n = preadv2(disk->fd, io->iov, io->iovcnt,
		                    (off_t)(io->offset + io->done_bytes), RWF_NOWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EOPNOTSUPP || errno == ENOSYS))
			p->no_nowait = true;
		/* EAGAIN (not cached), an error, or the end of the file: the worker decides. */
		if (n <= 0)
			return false;
		io->done_bytes += (uint64_t)n;
		disk_iov_advance(io, (uint64_t)n);
	}
	io->result = (int64_t)io->len;
	io->next = NULL;
	if (p->ready_tail)
		p->ready_tail->next = io;
	else
		p->ready_head = io;
	p->ready_tail = io;
	return true;
}

static int disk_threads_submit(struct disk *disk, struct disk_io *io)
{
	struct disk_pool *p = disk->engine;

	if (io->op == DISK_OP_READ && disk_threads_read_cached(disk, p, io))
		return 0;
	pthread_mutex_lock(&p->lock);
	if (p->todo_tail)
		p->todo_tail->next = io;
	else
		p->todo_head = io;
	p->todo_tail = io;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->lock);
	return 0;
}

static void disk_threads_complete(struct disk *disk, bool wait)
{
	struct disk_pool *p = disk->engine;
	struct disk_io *list, *fifo = NULL;
	uint64_t v;

	/* Reads done at submission first: nothing signals them, nothing to wait for. */
	while (p->ready_head) {
		struct disk_io *io = p->ready_head;

		p->ready_head = io->next;
		if (!p->ready_head)
			p->ready_tail = NULL;
		disk_finish(disk, io, io->result);
		wait = false;
	}
	if (wait) {
		struct pollfd pfd = {.fd = disk->completion_fd, .events = POLLIN};

		while (poll(&pfd, 1, -1) < 0 && errno == EINTR)
			;
	}
	if (read(disk->completion_fd, &v, sizeof(v)) < 0) {
		/* EAGAIN: nothing signalled since the last look; the list may still hold some. */
	}
	pthread_mutex_lock(&p->lock);
	list = p->done;
	p->done = NULL;
	pthread_mutex_unlock(&p->lock);
	/* Complete in the order the workers finished. */
	while (list) {
		struct disk_io *io = list;

		list = io->next;
		io->next = fifo;
		fifo = io;
	}
	while (fifo) {
		struct disk_io *io = fifo;

		fifo = io->next;
		disk_finish(disk, io, io->result);
	}
}

static void disk_threads_destroy(struct disk *disk)
{
	struct disk_pool *p = disk->engine;

	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	for (unsigned int i = 0; i < p->nr_threads; i++)
		pthread_join(p->threads[i], NULL);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->cond);
	if (disk->completion_fd >= 0)
		close(disk->completion_fd);
	disk->completion_fd = -1;
	free(p);
	disk->engine = NULL;
}

const struct disk_engine_ops disk_threads_ops = {
    .name = "threads",
    .init = disk_threads_init,
    .submit = disk_threads_submit,
    .complete = disk_threads_complete,
    .destroy = disk_threads_destroy,
};
