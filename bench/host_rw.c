/* SPDX-License-Identifier: MIT */
/*
 * The baseline for bench/virtio_guest.sh: the probe's virtio-bench patterns
 * (4 KiB sequential and random reads and writes over the first SPAN bytes
 * of an image, same xorshift sequence) done by this process directly on the
 * image file: pread/pwrite at queue depth 1, io_uring with QD in flight at
 * deeper depths (when built with -DHAVE_LIBURING; skipped otherwise).
 * Buffered I/O, like nestvm's and QEMU's default cache mode.
 *
 * usage: host_rw IMAGE SECONDS SPAN_MIB QD[,QD...]
 * prints one line per pattern and depth, in the probe's format:
 *   host: pattern=randread qd=1 bs=4096 ops=N us=N iops=N kbps=N errors=N
 */
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#ifdef HAVE_LIBURING
#include <liburing.h>
#endif

#define BS 4096
#define MAX_QD 64

struct pattern {
	const char *name;
	bool write, random;
};

static const struct pattern patterns[] = {
    {"seqread", false, false},
    {"randread", false, true},
    {"seqwrite", true, false},
    {"randwrite", true, true},
};

struct gen {
	uint64_t blocks, next, rng;
};

/* The probe's sequence (guest/probe/test_virtio_bench.c, bench_block()). */
static uint64_t gen_block(struct gen *g, const struct pattern *p)
{
	if (!p->random) {
		uint64_t b = g->next;

		g->next = g->next + 1 == g->blocks ? 0 : g->next + 1;
		return b;
	}
	g->rng ^= g->rng << 13;
	g->rng ^= g->rng >> 7;
	g->rng ^= g->rng << 17;
	return g->rng % g->blocks;
}

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static char bufs[MAX_QD][BS] __attribute__((aligned(4096)));

struct result {
	uint64_t ops, errors, us;
};

static struct result run_qd1(int fd, struct gen *g, const struct pattern *p, uint64_t seconds)
{
	struct result r = {0};
	uint64_t start = now_us(), end = start + seconds * 1000000, t = start;

	while (t < end) {
		for (int i = 0; i < 64; i++) {
			off_t off = (off_t)gen_block(g, p) * BS;
			ssize_t n =
			    p->write ? pwrite(fd, bufs[0], BS, off) : pread(fd, bufs[0], BS, off);

			r.errors += n != BS;
			r.ops++;
		}
		t = now_us();
	}
	r.us = t - start;
	return r;
}

#ifdef HAVE_LIBURING
static void uring_submit(struct io_uring *ring, int fd, struct gen *g, const struct pattern *p,
                         unsigned int k)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
	off_t off = (off_t)gen_block(g, p) * BS;

	if (p->write)
		io_uring_prep_write(sqe, fd, bufs[k], BS, off);
	else
		io_uring_prep_read(sqe, fd, bufs[k], BS, off);
	io_uring_sqe_set_data(sqe, (void *)(uintptr_t)k);
}

static struct result run_uring(int fd, struct gen *g, const struct pattern *p, unsigned int qd,
                               uint64_t seconds)
{
	struct result r = {0};
	struct io_uring ring;
	uint64_t start, end, t;
	unsigned int inflight = 0;

	if (io_uring_queue_init(MAX_QD, &ring, 0) < 0) {
		r.errors = 1;
		return r;
	}
	start = now_us();
	end = start + seconds * 1000000;
	t = start;
	for (unsigned int k = 0; k < qd; k++, inflight++)
		uring_submit(&ring, fd, g, p, k);
	io_uring_submit(&ring);
	while (inflight) {
		struct io_uring_cqe *cqe;
		unsigned int k;

		if (io_uring_wait_cqe(&ring, &cqe) < 0)
			break;
		k = (unsigned int)(uintptr_t)io_uring_cqe_get_data(cqe);
		r.errors += cqe->res != BS;
		r.ops++;
		inflight--;
		io_uring_cqe_seen(&ring, cqe);
		if ((r.ops & 63) == 0)
			t = now_us();
		if (t < end) {
			uring_submit(&ring, fd, g, p, k);
			inflight++;
			io_uring_submit(&ring);
		}
	}
	r.us = now_us() - start;
	io_uring_queue_exit(&ring);
	return r;
}
#endif

int main(int argc, char **argv)
{
	uint64_t seconds, span;
	int fd;
	char *qds, *tok;

	if (argc != 5) {
		fprintf(stderr, "usage: %s IMAGE SECONDS SPAN_MIB QD[,QD...]\n", argv[0]);
		return 2;
	}
	seconds = strtoull(argv[2], NULL, 10);
	span = strtoull(argv[3], NULL, 10) << 20;
	qds = argv[4];
	fd = open(argv[1], O_RDWR);
	if (fd < 0) {
		perror(argv[1]);
		return 1;
	}
	if (lseek(fd, 0, SEEK_END) < (off_t)span) {
		fprintf(stderr, "%s: smaller than %s MiB\n", argv[1], argv[3]);
		return 1;
	}
	for (unsigned int k = 0; k < MAX_QD; k++)
		memset(bufs[k], 0x5a ^ k, BS);
	for (tok = strtok(qds, ","); tok; tok = strtok(NULL, ",")) {
		unsigned int qd = (unsigned int)atoi(tok);

		for (size_t i = 0; i < sizeof(patterns) / sizeof(patterns[0]); i++) {
			struct gen g = {span / BS, 0, 0x9e3779b97f4a7c15ULL};
			struct result r;

			if (qd == 1) {
				r = run_qd1(fd, &g, &patterns[i], seconds);
			} else {
#ifdef HAVE_LIBURING
				if (qd > MAX_QD)
					qd = MAX_QD;
				r = run_uring(fd, &g, &patterns[i], qd, seconds);
#else
				continue;
#endif
			}
			if (!r.us)
				r.us = 1;
			printf("host: pattern=%s qd=%u bs=%d ops=%llu us=%llu iops=%llu kbps=%llu "
			       "errors=%llu\n",
			       patterns[i].name, qd, BS, (unsigned long long)r.ops,
			       (unsigned long long)r.us,
			       (unsigned long long)(r.ops * 1000000 / r.us),
			       (unsigned long long)(r.ops * (BS / 1024) * 1000000 / r.us),
			       (unsigned long long)r.errors);
		}
	}
	close(fd);
	return 0;
}
