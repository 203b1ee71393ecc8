/* SPDX-License-Identifier: MIT */
/*
 * test=virtio-bench: 4 KiB sequential and random reads and writes on a
 * virtio-blk disk through the probe's driver, at CPL3: the request loop
 * publishes chains, notifies through the queue's notify address (one exit,
 * handled by an ioeventfd in nestvm and in QEMU) unless the device set
 * NO_NOTIFY, and polls used.idx; no interrupts.
 *
 * Parameters: seconds=N per pattern (default 2), qd=1,32 (queue depths,
 * each at most MAX_QD, default "1,32"), span_mb=N (the part of the disk
 * used, default all of it up to 1 GiB), disk=N (the Nth virtio-blk),
 * patterns=seqread,... (a subset, default all four).
 * One line per pattern and depth:
 *
 *   probe: bench: pattern=randread qd=1 bs=4096 ops=N us=N iops=N kbps=N errors=N
 *
 * (kbps in KiB/s). The bench/virtio_guest.sh script runs it under nestvm
 * and QEMU on the same image. PASS when every request came back OK.
 */
#include "virtio.h"
#include "hv.h"

#define BS 4096
#define MAX_QD 64
#define QSIZE 256
#define SECTORS_PER_BLOCK (BS / VIRTIO_BLK_SECTOR)
#define DEFAULT_SECONDS 2
#define DEFAULT_SPAN (1ULL << 30)
#define DRAIN_TIMEOUT_US 5000000
#define BENCH_SEED 0x9e3779b97f4a7c15ULL

_Static_assert(3 * MAX_QD <= QSIZE, "three descriptors per request");

static uint8_t bench_buf[MAX_QD][BS] __attribute__((aligned(4096)));
static struct virtio_blk_hdr bench_hdr[MAX_QD];
static volatile uint8_t bench_status[MAX_QD];

struct pattern {
	const char *name;
	uint32_t type;
	bool random;
};

static const struct pattern patterns[] = {
    {"seqread", VIRTIO_BLK_T_IN, false},
    {"randread", VIRTIO_BLK_T_IN, true},
    {"seqwrite", VIRTIO_BLK_T_OUT, false},
    {"randwrite", VIRTIO_BLK_T_OUT, true},
};

struct bench {
	struct vdev *d;
	struct vq *vq;
	uint64_t blocks; /* 4 KiB blocks in the span */
	uint64_t next;   /* sequential position */
	uint64_t rng;
};

static uint64_t bench_block(struct bench *b, const struct pattern *p)
{
	if (!p->random) {
		uint64_t blk = b->next;

		b->next = b->next + 1 == b->blocks ? 0 : b->next + 1;
		return blk;
	}
	b->rng ^= b->rng << 13;
	b->rng ^= b->rng >> 7;
	b->rng ^= b->rng << 17;
	return b->rng % b->blocks;
}

/* Fill request slot @k's three descriptors and make it available. */
static void bench_submit(struct bench *b, const struct pattern *p, unsigned int k)
{
	struct vring_desc *desc = b->vq->desc + 3 * k;
	uint16_t data_flags =
	    VRING_DESC_F_NEXT | (p->type == VIRTIO_BLK_T_IN ? VRING_DESC_F_WRITE : 0);

	bench_hdr[k] = (struct virtio_blk_hdr){.type = p->type,
	                                       .sector = bench_block(b, p) * SECTORS_PER_BLOCK};
	bench_status[k] = 0xff;
	desc[0] = (struct vring_desc){(uintptr_t)&bench_hdr[k], sizeof(bench_hdr[k]),
	                              VRING_DESC_F_NEXT, (uint16_t)(3 * k + 1)};
	desc[1] =
	    (struct vring_desc){(uintptr_t)bench_buf[k], BS, data_flags, (uint16_t)(3 * k + 2)};
	desc[2] = (struct vring_desc){(uintptr_t)&bench_status[k], 1, VRING_DESC_F_WRITE, 0};
	vq_publish(b->vq, (uint16_t)(3 * k));
}

struct result {
	uint64_t ops, errors, us;
	bool stuck;
};

/* One pattern at depth @qd for @seconds. */
static struct result bench_run(struct bench *b, const struct pattern *p, unsigned int qd,
                               uint64_t seconds)
{
	const uint64_t khz = virtio_tsc_khz();
	uint64_t start, end, now, last_progress;
	unsigned int inflight = 0;
	struct result r = {0};

	b->next = 0;
	b->rng = BENCH_SEED; /* every run the same sequence (bench/host_rw.c too) */
	start = rdtsc();
	end = start + seconds * 1000 * khz;
	for (unsigned int k = 0; k < qd; k++, inflight++)
		bench_submit(b, p, k);
	vq_kick(b->vq);
	now = last_progress = start;
	while (inflight) {
		struct vring_used_elem e;
		bool resubmitted = false;

		while (vq_get_used(b->vq, &e)) {
			unsigned int k = e.id / 3;

			last_progress = now;
			if (k >= qd || bench_status[k] != VIRTIO_BLK_S_OK)
				r.errors++;
			r.ops++;
			inflight--;
			if (now < end && k < qd) {
				bench_submit(b, p, k);
				inflight++;
				resubmitted = true;
			}
		}
		if (resubmitted)
			vq_kick(b->vq);
		now = rdtsc();
		if (now - last_progress > DRAIN_TIMEOUT_US / 1000 * khz) {
			r.stuck = true;
			break;
		}
		cpu_relax();
	}
	r.us = (now - start) * 1000 / khz;
	return r;
}

/* Is @name one of the comma-separated names in @list (NULL: all are)? */
static bool pattern_wanted(const char *list, const char *name)
{
	size_t n = strlen(name);

	if (!list)
		return true;
	for (const char *s = list; *s;) {
		const char *end = s;

		while (*end && *end != ',')
			end++;
		if ((size_t)(end - s) == n && memcmp(s, name, n) == 0)
			return true;
		s = *end ? end + 1 : end;
	}
	return false;
}

/* Parse "1,32" into @qds; returns how many. */
static unsigned int parse_depths(const char *s, unsigned int *qds, unsigned int max)
{
	unsigned int n = 0, v = 0;
	bool digit = false;

	for (;; s++) {
		if (*s >= '0' && *s <= '9') {
			v = v * 10 + (*s - '0');
			digit = true;
			continue;
		}
		if (digit && v >= 1 && v <= MAX_QD && n < max)
			qds[n++] = v;
		v = 0;
		digit = false;
		if (!*s)
			return n;
	}
}

int test_virtio_bench(void)
{
	struct vdev d;
	struct vq vq;
	struct bench b = {&d, &vq, 0, 0, BENCH_SEED};
	uint64_t index = 0, seconds = DEFAULT_SECONDS, span_mb = 0, cap, span;
	unsigned int qds[4], nqd, nrun = 0;
	uint64_t total_errors = 0;
	const char *why, *qd_param = param_get("qd"), *only = param_get("patterns");
	uint16_t size;

	param_u64("disk", &index);
	param_u64("seconds", &seconds);
	param_u64("span_mb", &span_mb);
	nqd = parse_depths(qd_param ? qd_param : "1,32", qds, ARRAY_SIZE(qds));
	if (!nqd)
		return probe_fail("qd=%s: want depths from 1 to %u, comma-separated", qd_param,
		                  MAX_QD);
	if (virtio_find(VIRTIO_ID_BLK, index, &d, &why) < 0)
		return probe_fail("virtio-blk %lu: %s", index, why);
	cap = virtio_device_cfg32(&d, 0) | (uint64_t)virtio_device_cfg32(&d, 4) << 32;
	span = span_mb ? span_mb << 20 : DEFAULT_SPAN;
	if (span > cap * VIRTIO_BLK_SECTOR)
		span = cap * VIRTIO_BLK_SECTOR;
	b.blocks = span / BS;
	if (b.blocks < 2)
		return probe_fail("the disk (%lu sectors) is too small", cap);
	size = QSIZE;
	/*
	 * FLUSH, as Linux negotiates it: without it QEMU makes its cache
	 * write-through (an fdatasync per write), which is not what is compared.
	 */
	if (virtio_start(&d, &vq, 0, size, VIRTIO_FEATURE(VIRTIO_BLK_F_FLUSH), &why) < 0)
		return probe_fail("start: %s", why);
	for (unsigned int k = 0; k < MAX_QD; k++)
		memset(bench_buf[k], 0x5a ^ k, BS);
	printf("probe: bench: disk 00:%02x.%u, %lu MiB span, %lu s per pattern, TSC %lu kHz\n",
	       d.devfn >> 3, d.devfn & 7, span >> 20, seconds, virtio_tsc_khz());
	for (unsigned int q = 0; q < nqd; q++) {
		for (size_t i = 0; i < ARRAY_SIZE(patterns); i++) {
			struct result r;
			uint64_t us;

			if (!pattern_wanted(only, patterns[i].name))
				continue;
			r = bench_run(&b, &patterns[i], qds[q], seconds);
			us = r.us ? r.us : 1;
			nrun++;

			printf("probe: bench: pattern=%s qd=%u bs=%u ops=%lu us=%lu iops=%lu "
			       "kbps=%lu errors=%lu%s\n",
			       patterns[i].name, qds[q], BS, r.ops, r.us, r.ops * 1000000 / us,
			       r.ops * (BS / 1024) * 1000000 / us, r.errors,
			       r.stuck ? " stuck" : "");
			total_errors += r.errors;
			if (r.stuck) {
				virtio_reset(&d);
				return probe_fail("%s at depth %u: no completion for %u s (status "
				                  "0x%x)",
				                  patterns[i].name, qds[q],
				                  DRAIN_TIMEOUT_US / 1000000, virtio_status(&d));
			}
		}
	}
	virtio_reset(&d);
	if (total_errors)
		return probe_fail("%lu requests failed", total_errors);
	return probe_pass("%u runs (patterns x depths)", nrun);
}
