/* SPDX-License-Identifier: MIT */
/*
 * Unit tests: virtio-blk through the virtio PCI transport on a temporary
 * raw image, with each I/O engine (io_uring where the kernel allows it, and
 * the thread pool): read, write, flush, get-id, discard and write-zeroes on
 * a sparse file, requests out of range or malformed, a read-only disk
 * refusing writes, many requests in flight, adjacent requests merged, a
 * reset with I/O in flight;
 * save and restore: writes in flight at a quiesce complete there, a write
 * made available while quiesced completes exactly once in the restored
 * device, and a state is refused on another image.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "devices/virtio/blk.h"
#include "virtio_test_driver.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>

#define IMG_SIZE (4ULL << 20)
#define QSIZE 256
#define SERIAL "nestvm-test-serial-too-long"

struct fixture {
	char path[64];
	struct virtio_blk *blk;
	struct vd *d;
	int fd; /* the image, for checking from the host side */
	enum disk_engine engine;
	bool readonly;
};

static int setup_with(void **state, enum disk_engine engine, bool readonly)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct virtio_blk_params p = {.readonly = readonly, .engine = engine, .serial = SERIAL};
	int r;

	assert_non_null(f);
	snprintf(f->path, sizeof(f->path), "/tmp/nestvm-test-blk.XXXXXX");
	f->fd = mkstemp(f->path);
	assert_true(f->fd >= 0);
	assert_int_equal(ftruncate(f->fd, IMG_SIZE), 0);
	/* Some recognisable data in sector 1. */
	assert_int_equal(pwrite(f->fd, "hello, disk", 11, 512), 11);
	p.path = f->path;
	r = virtio_blk_create(&p, &f->blk);
	assert_int_equal(r, 0);
	f->d = vd_create(virtio_blk_vdev(f->blk), false);
	f->engine = engine;
	f->readonly = readonly;
	vd_bring_up(f->d, virtio_blk_vdev(f->blk)->features & ~VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX),
	            1, QSIZE);
	*state = f;
	return 0;
}

static int setup_uring(void **state)
{
	return setup_with(state, DISK_ENGINE_URING, false);
}

static int setup_threads(void **state)
{
	return setup_with(state, DISK_ENGINE_THREADS, false);
}

static int setup_readonly(void **state)
{
	return setup_with(state, DISK_ENGINE_AUTO, true);
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	vd_destroy(f->d);
	virtio_blk_destroy(f->blk);
	close(f->fd);
	unlink(f->path);
	free(f);
	return 0;
}

struct blk_result {
	uint8_t status;
	uint32_t used_len;
};

/* Make one request available and kick; does not wait. Returns the status byte's gpa. */
static uint64_t blk_start(struct vd *d, uint32_t type, uint64_t sector, uint64_t data, uint32_t len,
                          bool device_writes)
{
	uint64_t hdr = vd_alloc(d, 16), status = vd_alloc(d, 1);
	uint8_t *h = vd_gpa(d, hdr, 16);
	struct vd_buf bufs[3];
	unsigned int n = 0;

	memcpy(h, &type, 4);
	memset(h + 4, 0, 4);
	memcpy(h + 8, &sector, 8);
	*(uint8_t *)vd_gpa(d, status, 1) = 0xee;
	bufs[n++] = (struct vd_buf){hdr, 16, false};
	if (len)
		bufs[n++] = (struct vd_buf){data, len, device_writes};
	bufs[n++] = (struct vd_buf){status, 1, true};
	vd_submit(d, 0, bufs, n);
	return status;
}

static struct blk_result blk_request(struct vd *d, uint32_t type, uint64_t sector, uint64_t data,
                                     uint32_t len, bool device_writes)
{
	uint64_t status = blk_start(d, type, sector, data, len, device_writes);
	struct virtq_used_elem e;
	struct blk_result res;

	vd_kick(d, 0);
	assert_true(vd_wait_used(d, 0, &e, 5000));
	res.status = *(uint8_t *)vd_gpa(d, status, 1);
	res.used_len = e.len;
	return res;
}

static uint16_t used_idx_of(struct vd *d)
{
	return __atomic_load_n(&d->q[0].used->idx, __ATOMIC_ACQUIRE);
}

static void test_config(void **state)
{
	struct fixture *f = *state;
	struct vd *d = f->d;
	uint64_t features = f->d->vdev->features;

	assert_int_equal(vd_read(d, VIRTIO_PCI_DEVICE_OFF + VIRTIO_BLK_CFG_CAPACITY, 4),
	                 IMG_SIZE / 512);
	assert_int_equal(vd_read(d, VIRTIO_PCI_DEVICE_OFF + VIRTIO_BLK_CFG_CAPACITY + 4, 4), 0);
	assert_int_equal(vd_read(d, VIRTIO_PCI_DEVICE_OFF + VIRTIO_BLK_CFG_SEG_MAX, 4),
	                 VIRTIO_BLK_QUEUE_SIZE - 2);
	assert_int_equal(vd_read(d, VIRTIO_PCI_DEVICE_OFF + VIRTIO_BLK_CFG_BLK_SIZE, 4), 512);
	assert_int_equal(vd_cfg_read(d, PCI_CFG_DEVICE_ID, 2), 0x1042);
	assert_true(features & VIRTIO_BIT(VIRTIO_BLK_F_FLUSH));
	assert_int_equal(!!(features & VIRTIO_BIT(VIRTIO_BLK_F_RO)), f->readonly);
	assert_int_equal(!!(features & VIRTIO_BIT(VIRTIO_BLK_F_DISCARD)), !f->readonly);
	assert_false(features & VIRTIO_BIT(VIRTIO_F_RING_PACKED));
}

static void test_read(void **state)
{
	struct fixture *f = *state;
	struct vd *d = f->d;
	uint64_t buf = vd_alloc(d, 1024);
	struct blk_result r = blk_request(d, VIRTIO_BLK_T_IN, 0, buf, 1024, true);

	assert_int_equal(r.status, VIRTIO_BLK_S_OK);
	assert_int_equal(r.used_len, 1025);
	assert_memory_equal(vd_gpa(d, buf + 512, 11), "hello, disk", 11);
}

static void test_write_read_back(void **state)
{
	struct fixture *f = *state;
	struct vd *d = f->d;
	uint64_t w = vd_alloc(d, 4096), rd = vd_alloc(d, 4096);
	uint8_t host[4096];
	struct blk_result r;

	for (int i = 0; i < 4096; i++)
		((uint8_t *)vd_gpa(d, w, 4096))[i] = (uint8_t)(i * 7);
	r = blk_request(d, VIRTIO_BLK_T_OUT, 16, w, 4096, false);
	assert_int_equal(r.status, VIRTIO_BLK_S_OK);
	assert_int_equal(r.used_len, 1);
	r = blk_request(d, VIRTIO_BLK_T_IN, 16, rd, 4096, true);
	assert_int_equal(r.status, VIRTIO_BLK_S_OK);
	assert_memory_equal(vd_gpa(d, rd, 4096), vd_gpa(d, w, 4096), 4096);
	r = blk_request(d, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false);
	assert_int_equal(r.status, VIRTIO_BLK_S_OK);
	/* The host sees it in the image. */
	assert_int_equal(pread(f->fd, host, sizeof(host), 16 * 512), sizeof(host));
	assert_memory_equal(host, vd_gpa(d, w, 4096), 4096);
}

static void test_out_of_range(void **state)
{
	struct fixture *f = *state;
	struct vd *d = f->d;
	uint64_t buf = vd_alloc(d, 4096);
	uint64_t last = IMG_SIZE / 512 - 1;

	assert_int_equal(blk_request(d, VIRTIO_BLK_T_IN, last, buf, 512, true).status,
	                 VIRTIO_BLK_S_OK);
	assert_int_equal(blk_request(d, VIRTIO_BLK_T_IN, last, buf, 1024, true).status,
	                 VIRTIO_BLK_S_IOERR);
	assert_int_equal(blk_request(d, VIRTIO_BLK_T_IN, UINT64_MAX, buf, 512, true).status,
	                 VIRTIO_BLK_S_IOERR);
	assert_int_equal(blk_request(d, VIRTIO_BLK_T_IN, UINT64_MAX >> 9, buf, 512, true).status,
	                 VIRTIO_BLK_S_IOERR);
	/* Not a whole number of sectors. */
	assert_int_equal(blk_request(d, VIRTIO_BLK_T_IN, 0, buf, 100, true).status,
	                 VIRTIO_BLK_S_IOERR);
	assert_int_equal(blk_request(d, VIRTIO_BLK_T_OUT, 0, buf, 513, false).status,
	                 f->readonly ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_IOERR);
}

/*
 * A read or write of no data at a sector on the disk is well-formed: OK, as
 * with the thread pool (io_uring's zero-byte result was taken for the end of
 * the file: found by tests/fuzz/fuzz_virtio_blk.c).
 */
static void test_zero_length_transfer(void **state)
{
	struct fixture *f = *state;
	struct vd *d = f->d;
	struct blk_result r;

	r = blk_request(d, VIRTIO_BLK_T_IN, 0, 0, 0, true);
	assert_int_equal(r.status, VIRTIO_BLK_S_OK);
	assert_int_equal(r.used_len, 1);
	r = blk_request(d, VIRTIO_BLK_T_IN, IMG_SIZE / 512, 0, 0, true);
	assert_int_equal(r.status, VIRTIO_BLK_S_OK);
	r = blk_request(d, VIRTIO_BLK_T_OUT, 8, 0, 0, false);
	assert_int_equal(r.status, f->readonly ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK);
	assert_int_equal(r.used_len, 1);
}

static void test_get_id_and_unsupported(void **state)
{
	struct fixture *f = *state;
	struct vd *d = f->d;
	uint64_t buf = vd_alloc(d, 64);
	struct blk_result r;

	r = blk_request(d, VIRTIO_BLK_T_GET_ID, 0, buf, VIRTIO_BLK_ID_BYTES, true);
	assert_int_equal(r.status, VIRTIO_BLK_S_OK);
	assert_int_equal(r.used_len, VIRTIO_BLK_ID_BYTES + 1);
	assert_memory_equal(vd_gpa(d, buf, 20), SERIAL, 20);
	r = blk_request(d, 99, 0, buf, 512, true);
	assert_int_equal(r.status, VIRTIO_BLK_S_UNSUPP);
}

static void test_split_header(void **state)
{
	struct fixture *f = *state;
	struct vd *d = f->d;
	uint64_t hdr = vd_alloc(d, 16), data = vd_alloc(d, 512), st = vd_alloc(d, 1);
	uint32_t type = VIRTIO_BLK_T_IN;
	uint64_t sector = 1;
	struct vd_buf bufs[4] = {
	    {hdr, 5, false}, {hdr + 5, 11, false}, {data, 512, true}, {st, 1, true}};
	struct virtq_used_elem e;

	memcpy(vd_gpa(d, hdr, 4), &type, 4);
	memcpy(vd_gpa(d, hdr + 8, 8), &sector, 8);
	vd_submit(d, 0, bufs, 4);
	vd_kick(d, 0);
	assert_true(vd_wait_used(d, 0, &e, 5000));
	assert_int_equal(*(uint8_t *)vd_gpa(d, st, 1), VIRTIO_BLK_S_OK);
	assert_memory_equal(vd_gpa(d, data, 11), "hello, disk", 11);
}

static void test_status_in_data_buffer(void **state)
{
	struct fixture *f = *state;
	struct vd *d = f->d;
	uint64_t hdr = vd_alloc(d, 16), data = vd_alloc(d, 513);
	uint32_t type = VIRTIO_BLK_T_IN;
	uint64_t sector = 1;
	struct vd_buf bufs[2] = {{hdr, 16, false}, {data, 513, true}};
	struct virtq_used_elem e;

	memcpy(vd_gpa(d, hdr, 4), &type, 4);
	memcpy(vd_gpa(d, hdr + 8, 8), &sector, 8);
	vd_submit(d, 0, bufs, 2);
	vd_kick(d, 0);
	assert_true(vd_wait_used(d, 0, &e, 5000));
	assert_int_equal(*(uint8_t *)vd_gpa(d, data + 512, 1), VIRTIO_BLK_S_OK);
	assert_memory_equal(vd_gpa(d, data, 11), "hello, disk", 11);
}

static void test_no_status_byte(void **state)
{
	struct fixture *f = *state;
	struct vd *d = f->d;
	uint64_t hdr = vd_alloc(d, 16);
	struct vd_buf b = {hdr, 16, false};
	struct virtq_used_elem e;

	vd_submit(d, 0, &b, 1);
	vd_kick(d, 0);
	assert_true(vd_wait_used(d, 0, &e, 5000));
	assert_int_equal(e.len, 0);
	assert_int_equal(vd_status(d) & VIRTIO_STATUS_DEVICE_NEEDS_RESET, 0);
}

static void test_short_header(void **state)
{
	struct fixture *f = *state;
	struct vd *d = f->d;
	uint64_t hdr = vd_alloc(d, 16), st = vd_alloc(d, 1);
	struct vd_buf bufs[2] = {{hdr, 8, false}, {st, 1, true}};
	struct virtq_used_elem e;

	vd_submit(d, 0, bufs, 2);
	vd_kick(d, 0);
	assert_true(vd_wait_used(d, 0, &e, 5000));
	assert_int_equal(*(uint8_t *)vd_gpa(d, st, 1), VIRTIO_BLK_S_IOERR);
}

static uint64_t allocated_bytes(int fd)
{
	struct stat st;

	assert_int_equal(fstat(fd, &st), 0);
	return (uint64_t)st.st_blocks * 512;
}

static struct blk_result blk_zeroes(struct vd *d, uint32_t type, uint64_t sector, uint32_t nr,
                                    uint32_t flags)
{
	uint64_t seg = vd_alloc(d, 16);
	uint8_t *s = vd_gpa(d, seg, 16);

	memcpy(s, &sector, 8);
	memcpy(s + 8, &nr, 4);
	memcpy(s + 12, &flags, 4);
	return blk_request(d, type, 0, seg, 16, false);
}

static void test_discard_and_write_zeroes(void **state)
{
	struct fixture *f = *state;
	struct vd *d = f->d;
	uint64_t w = vd_alloc(d, 65536), rd = vd_alloc(d, 65536);
	uint8_t zero[65536] = {0};
	uint64_t before;

	memset(vd_gpa(d, w, 65536), 0x5a, 65536);
	assert_int_equal(blk_request(d, VIRTIO_BLK_T_OUT, 1024, w, 65536, false).status, 0);
	assert_int_equal(blk_request(d, VIRTIO_BLK_T_OUT, 2048, w, 65536, false).status, 0);
	assert_int_equal(blk_request(d, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false).status, 0);
	before = allocated_bytes(f->fd);
	assert_true(before >= 2 * 65536);

	/* Discard punches a hole: the image gets sparser and reads zeroes. */
	assert_int_equal(blk_zeroes(d, VIRTIO_BLK_T_DISCARD, 1024, 128, 0).status, 0);
	assert_true(allocated_bytes(f->fd) <= before - 65536);
	assert_int_equal(blk_request(d, VIRTIO_BLK_T_IN, 1024, rd, 65536, true).status, 0);
	assert_memory_equal(vd_gpa(d, rd, 65536), zero, 65536);

	/* Write-zeroes (no unmap) zeroes the range. */
	assert_int_equal(blk_zeroes(d, VIRTIO_BLK_T_WRITE_ZEROES, 2048, 64, 0).status, 0);
	assert_int_equal(blk_request(d, VIRTIO_BLK_T_IN, 2048, rd, 65536, true).status, 0);
	assert_memory_equal(vd_gpa(d, rd, 32768), zero, 32768);
	assert_int_equal(((uint8_t *)vd_gpa(d, rd, 65536))[32768], 0x5a);
	/* With unmap allowed. */
	assert_int_equal(blk_zeroes(d, VIRTIO_BLK_T_WRITE_ZEROES, 2048 + 64, 64,
	                            VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP)
	                     .status,
	                 0);
	assert_int_equal(blk_request(d, VIRTIO_BLK_T_IN, 2048, rd, 65536, true).status, 0);
	assert_memory_equal(vd_gpa(d, rd, 65536), zero, 65536);

	/* Unmap on a discard and unknown flags are unsupported; out of range is an error. */
	assert_int_equal(blk_zeroes(d, VIRTIO_BLK_T_DISCARD, 0, 8, 1).status, VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(blk_zeroes(d, VIRTIO_BLK_T_WRITE_ZEROES, 0, 8, 4).status,
	                 VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(blk_zeroes(d, VIRTIO_BLK_T_DISCARD, IMG_SIZE / 512 - 4, 8, 0).status,
	                 VIRTIO_BLK_S_IOERR);
	/*
	 * No sectors at all is nothing to do, for discard as for write-zeroes
	 * (fallocate() refuses a zero length: found by fuzz_virtio_blk).
	 */
	assert_int_equal(blk_zeroes(d, VIRTIO_BLK_T_DISCARD, 8, 0, 0).status, VIRTIO_BLK_S_OK);
	assert_int_equal(blk_zeroes(d, VIRTIO_BLK_T_WRITE_ZEROES, 8, 0, 0).status, VIRTIO_BLK_S_OK);
	assert_int_equal(blk_zeroes(d, VIRTIO_BLK_T_DISCARD, IMG_SIZE / 512, 0, 0).status,
	                 VIRTIO_BLK_S_OK);
	assert_int_equal(blk_zeroes(d, VIRTIO_BLK_T_DISCARD, IMG_SIZE / 512 + 1, 0, 0).status,
	                 VIRTIO_BLK_S_IOERR);
	/* The file keeps its size. */
	{
		struct stat st;

		assert_int_equal(fstat(f->fd, &st), 0);
		assert_int_equal(st.st_size, IMG_SIZE);
	}
}

static void test_many_in_flight(void **state)
{
	struct fixture *f = *state;
	struct vd *d = f->d;
	enum { N = 80 }; /* 240 descriptors of 256 */
	uint64_t bufs[N], st[N];
	struct virtq_used_elem e;

	for (int i = 0; i < N; i++) {
		bufs[i] = vd_alloc(d, 4096);
		memset(vd_gpa(d, bufs[i], 4096), i + 1, 4096);
		st[i] = blk_start(d, VIRTIO_BLK_T_OUT, (uint64_t)i * 8, bufs[i], 4096, false);
	}
	vd_kick(d, 0);
	for (int i = 0; i < N; i++)
		assert_true(vd_wait_used(d, 0, &e, 5000));
	for (int i = 0; i < N; i++)
		assert_int_equal(*(uint8_t *)vd_gpa(d, st[i], 1), VIRTIO_BLK_S_OK);
	for (int i = 0; i < N; i++) {
		memset(vd_gpa(d, bufs[i], 4096), 0, 4096);
		st[i] = blk_start(d, VIRTIO_BLK_T_IN, (uint64_t)i * 8, bufs[i], 4096, true);
	}
	vd_kick(d, 0);
	for (int i = 0; i < N; i++)
		assert_true(vd_wait_used(d, 0, &e, 5000));
	for (int i = 0; i < N; i++) {
		uint8_t *p = vd_gpa(d, bufs[i], 4096);

		assert_int_equal(*(uint8_t *)vd_gpa(d, st[i], 1), VIRTIO_BLK_S_OK);
		assert_int_equal(p[0], i + 1);
		assert_int_equal(p[4095], i + 1);
	}
}

/* The image's byte at @off after fill_image(). */
static uint8_t image_byte(uint64_t off)
{
	return (uint8_t)((off >> 9) * 31 + (off & 511));
}

static void fill_image(struct fixture *f, uint64_t len)
{
	static uint8_t chunk[65536];

	for (uint64_t off = 0; off < len; off += sizeof(chunk)) {
		for (size_t i = 0; i < sizeof(chunk); i++)
			chunk[i] = image_byte(off + i);
		assert_int_equal(pwrite(f->fd, chunk, sizeof(chunk), (off_t)off), sizeof(chunk));
	}
}

static void expect_image_bytes(struct vd *d, uint64_t gpa, uint64_t disk_off, size_t len)
{
	const uint8_t *p = vd_gpa(d, gpa, len);

	for (size_t i = 0; i < len; i++)
		if (p[i] != image_byte(disk_off + i))
			fail_msg("byte %zu of the read at %llu: 0x%02x, want 0x%02x", i,
			         (unsigned long long)disk_off, p[i], image_byte(disk_off + i));
}

struct merge_req {
	uint32_t type;
	uint64_t gpa, disk_off;
	uint32_t len;
	uint8_t want_status;
	uint16_t head;
	uint64_t status_gpa;
	bool done;
};

static struct merge_req mreq(uint32_t type, uint64_t gpa, uint64_t disk_off, uint32_t len,
                             uint8_t want_status)
{
	return (struct merge_req){
	    .type = type, .gpa = gpa, .disk_off = disk_off, .len = len, .want_status = want_status};
}

/* Make @r available (not kicked), remembering its head. */
static void merge_start(struct vd *d, struct merge_req *r)
{
	r->head = d->q[0].next_desc;
	r->status_gpa =
	    blk_start(d, r->type, r->disk_off / 512, r->gpa, r->len, r->type == VIRTIO_BLK_T_IN);
}

/* Kick, then wait for all @n of @rs: each once, with its status and used length. */
static void merge_finish(struct vd *d, struct merge_req *rs, int n)
{
	struct virtq_used_elem e;

	vd_kick(d, 0);
	for (int i = 0; i < n; i++) {
		int k;

		assert_true(vd_wait_used(d, 0, &e, 5000));
		for (k = 0; k < n && (rs[k].head != e.id || rs[k].done); k++)
			;
		assert_true(k < n);
		rs[k].done = true;
		assert_int_equal(*(uint8_t *)vd_gpa(d, rs[k].status_gpa, 1), rs[k].want_status);
		if (rs[k].want_status != VIRTIO_BLK_S_OK)
			assert_int_equal(e.len, 1);
		else
			assert_int_equal(e.len, rs[k].type == VIRTIO_BLK_T_IN ? rs[k].len + 1 : 1);
	}
}

/*
 * Adjacent reads and writes made available together are merged into runs
 * (blk.c); each request still gets its own data, status and used length.
 * 40 reads of 32 KiB back to back into one guest area (1.25 MiB: more than
 * one run), 4 continuing them into separate buffers, a read of the disk's
 * last 4 KiB followed by one continuing past the end (which fails alone);
 * then read, write, read at adjacent sectors (a change of direction ends a
 * run) and the write found in the image.
 */
static void test_merged_runs(void **state)
{
	struct fixture *f = *state;
	struct vd *d = f->d;
	enum { NBIG = 40, BIG = 32768, NSMALL = 4, SMALL = 4096 };
	struct merge_req rs[NBIG + NSMALL + 2], mixed[3];
	uint64_t area = vd_alloc(d, NBIG * BIG), last = IMG_SIZE - SMALL;
	uint8_t host[SMALL];
	int n = 0;

	fill_image(f, 2ULL << 20);
	for (int i = 0; i < NBIG; i++)
		rs[n++] = mreq(VIRTIO_BLK_T_IN, area + (uint64_t)i * BIG, (uint64_t)i * BIG, BIG,
		               VIRTIO_BLK_S_OK);
	for (int i = 0; i < NSMALL; i++)
		rs[n++] = mreq(VIRTIO_BLK_T_IN, vd_alloc(d, SMALL + 512),
		               (uint64_t)NBIG * BIG + (uint64_t)i * SMALL, SMALL, VIRTIO_BLK_S_OK);
	rs[n++] = mreq(VIRTIO_BLK_T_IN, vd_alloc(d, SMALL), last, SMALL, VIRTIO_BLK_S_OK);
	rs[n++] = mreq(VIRTIO_BLK_T_IN, vd_alloc(d, 512), IMG_SIZE, 512, VIRTIO_BLK_S_IOERR);
	for (int i = 0; i < n; i++)
		merge_start(d, &rs[i]);
	merge_finish(d, rs, n);
	for (int i = 0; i < n - 2; i++)
		expect_image_bytes(d, rs[i].gpa, rs[i].disk_off, rs[i].len);
	/* fill_image() wrote only the first 2 MiB: the disk's end reads as zeroes. */
	memset(host, 0, sizeof(host));
	assert_memory_equal(vd_gpa(d, rs[n - 2].gpa, SMALL), host, SMALL);

	if (f->readonly)
		return;
	mixed[0] = mreq(VIRTIO_BLK_T_IN, vd_alloc(d, SMALL), 0, SMALL, VIRTIO_BLK_S_OK);
	mixed[1] = mreq(VIRTIO_BLK_T_OUT, vd_alloc(d, SMALL), SMALL, SMALL, VIRTIO_BLK_S_OK);
	mixed[2] = mreq(VIRTIO_BLK_T_IN, vd_alloc(d, SMALL), 2 * SMALL, SMALL, VIRTIO_BLK_S_OK);
	memset(vd_gpa(d, mixed[1].gpa, SMALL), 0xa5, SMALL);
	for (int i = 0; i < 3; i++)
		merge_start(d, &mixed[i]);
	merge_finish(d, mixed, 3);
	expect_image_bytes(d, mixed[0].gpa, 0, SMALL);
	expect_image_bytes(d, mixed[2].gpa, 2 * SMALL, SMALL);
	assert_int_equal(pread(f->fd, host, SMALL, SMALL), SMALL);
	assert_memory_equal(host, vd_gpa(d, mixed[1].gpa, SMALL), SMALL);
}

static void test_reset_with_io_in_flight(void **state)
{
	struct fixture *f = *state;
	struct vd *d = f->d;

	for (int i = 0; i < 40; i++)
		blk_start(d, VIRTIO_BLK_T_OUT, (uint64_t)i * 128, vd_alloc(d, 65536), 65536, false);
	vd_kick(d, 0);
	usleep(200);
	vd_set_status(d, 0); /* drains before returning */
	assert_int_equal(vd_status(d), 0);
	/* And the device comes back. */
	memset(&d->q[0], 0, sizeof(d->q[0]));
	vd_bring_up(d, 0, 1, QSIZE);
	assert_int_equal(blk_request(d, VIRTIO_BLK_T_IN, 1, vd_alloc(d, 512), 512, true).status, 0);
}

static void test_malformed_chain(void **state)
{
	struct fixture *f = *state;
	struct vd *d = f->d;
	uint16_t head;
	uint64_t hdr = vd_alloc(d, 16);
	struct vd_buf b = {hdr, 16, false};

	head = vd_submit(d, 0, &b, 1);
	d->q[0].desc[head].addr = 0xfee00000; /* the local APIC, not RAM */
	d->q[0].desc[head].flags = VIRTQ_DESC_F_NEXT;
	d->q[0].desc[head].next = head;
	vd_kick(d, 0);
	for (int i = 0; i < 2000 && !(vd_status(d) & VIRTIO_STATUS_DEVICE_NEEDS_RESET); i++)
		usleep(1000);
	assert_true(vd_status(d) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
}

static void test_readonly_refuses_writes(void **state)
{
	struct fixture *f = *state;
	struct vd *d = f->d;
	uint64_t w = vd_alloc(d, 512), rd = vd_alloc(d, 512);
	char host[11];

	memset(vd_gpa(d, w, 512), 0x77, 512);
	assert_int_equal(blk_request(d, VIRTIO_BLK_T_OUT, 1, w, 512, false).status,
	                 VIRTIO_BLK_S_IOERR);
	assert_int_equal(blk_zeroes(d, VIRTIO_BLK_T_DISCARD, 0, 8, 0).status, VIRTIO_BLK_S_IOERR);
	assert_int_equal(blk_zeroes(d, VIRTIO_BLK_T_WRITE_ZEROES, 0, 8, 0).status,
	                 VIRTIO_BLK_S_IOERR);
	/* Reads and flushes work; the image is untouched. */
	assert_int_equal(blk_request(d, VIRTIO_BLK_T_IN, 1, rd, 512, true).status, 0);
	assert_memory_equal(vd_gpa(d, rd, 11), "hello, disk", 11);
	assert_int_equal(blk_request(d, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false).status, 0);
	assert_int_equal(pread(f->fd, host, sizeof(host), 512), sizeof(host));
	assert_memory_equal(host, "hello, disk", 11);
}

static void test_image_locked(void **state)
{
	struct fixture *f = *state;
	struct disk *other;

	/* A second writer (another VM) cannot open the image while it is in use. */
	assert_true(disk_open(f->path, false, DISK_ENGINE_THREADS, &other) < 0);
}

/* ------------------------------------------------------------- save/restore */

#define SR_WRITES 32
#define SR_LEN 65536

static unsigned int disk_inflight(struct virtio_blk *blk)
{
	unsigned int n;

	virtio_device_lock(virtio_blk_vdev(blk));
	n = virtio_blk_disk(blk)->inflight;
	virtio_device_unlock(virtio_blk_vdev(blk));
	return n;
}

static void expect_on_disk(struct fixture *f, uint64_t sector, uint8_t pattern, size_t len)
{
	uint8_t *buf = malloc(len);

	assert_non_null(buf);
	assert_int_equal(pread(f->fd, buf, len, (off_t)(sector * 512)), (ssize_t)len);
	for (size_t i = 0; i < len; i += 512)
		if (buf[i] != pattern || buf[i + 511] != pattern)
			fail_msg("sector %llu: 0x%02x, not 0x%02x",
			         (unsigned long long)(sector + i / 512), buf[i], pattern);
	free(buf);
}

/* The fixture's device and transport replaced by new ones on @path (its image). */
static struct vd *reopen(struct fixture *f, const char *path, const char *serial)
{
	struct virtio_blk_params p = {
	    .path = path, .readonly = f->readonly, .engine = f->engine, .serial = serial};

	vd_destroy(f->d);
	virtio_blk_destroy(f->blk);
	assert_int_equal(virtio_blk_create(&p, &f->blk), 0);
	f->d = vd_create_at(virtio_blk_vdev(f->blk), true, 0, false);
	vd_set_guest_stopped(f->d, true);
	return f->d;
}

static struct timespec sr_now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t;
}

static void test_save_restore_write_once(void **state)
{
	struct fixture *f = *state;
	struct vd *d = f->d;
	uint64_t st[SR_WRITES + 1], late, rd;
	uint16_t heads_seen[SR_WRITES + 1];
	struct virtq_used_elem e;
	struct vd_saved s;
	unsigned int msi, seen_in_flight = 0;

	/* Without VIRTIO_BLK_F_FLUSH each write is made durable before it completes: slower. */
	vd_bring_up(d, VIRTIO_BIT(VIRTIO_F_RING_INDIRECT_DESC), 1, QSIZE);
	for (int i = 0; i < SR_WRITES; i++) {
		uint64_t b = vd_alloc(d, SR_LEN);

		memset(vd_gpa(d, b, SR_LEN), i + 1, SR_LEN);
		st[i] =
		    blk_start(d, VIRTIO_BLK_T_OUT, (uint64_t)i * (SR_LEN / 512), b, SR_LEN, false);
	}
	vd_kick(d, 0);
	/*
	 * Catch the writes on the disk (each is in flight for a millisecond or
	 * so, its fsync): for up to 5 s of wall time, not a number of spins, so
	 * that an I/O thread a loaded host schedules late is still waited for.
	 */
	for (struct timespec t0 = sr_now(), t = t0;
	     !seen_in_flight && used_idx_of(d) != SR_WRITES && t.tv_sec - t0.tv_sec < 5;
	     t = sr_now())
		seen_in_flight = disk_inflight(f->blk);
	msi = vd_msi_count(d);
	assert_int_equal(virtio_pci_quiesce(d->vp), 0);
	/*
	 * Quiesced: every write taken is done, on the disk, used, its interrupt
	 * sent. On a loaded host this thread may not run while the writes are on
	 * the disk: the in-flight case is then not seen in this run (said), the
	 * exactly-once checks below hold either way.
	 */
	if (!seen_in_flight)
		print_message("note: no write was caught in flight in this run\n");
	assert_int_equal(disk_inflight(f->blk), 0);
	assert_int_equal(used_idx_of(d), SR_WRITES);
	if (seen_in_flight)
		assert_true(vd_msi_count(d) > msi);
	for (int i = 0; i < SR_WRITES; i++) {
		assert_true(vd_wait_used(d, 0, &e, 0));
		heads_seen[i] = (uint16_t)e.id;
		assert_int_equal(*(uint8_t *)vd_gpa(d, st[i], 1), VIRTIO_BLK_S_OK);
	}
	/* A write made available (and kicked) while quiesced: not taken. */
	late = vd_alloc(d, 8192);
	memset(vd_gpa(d, late, 8192), 0xab, 8192);
	st[SR_WRITES] = blk_start(d, VIRTIO_BLK_T_OUT, 6000, late, 8192, false);
	vd_kick(d, 0);
	usleep(50 * 1000);
	assert_int_equal(used_idx_of(d), SR_WRITES);
	vd_save(d, &s);

	/* A new process: the same image, a new device, the guest moved over. */
	d = reopen(f, f->path, SERIAL);
	vd_load_guest(d, &s);
	vd_restore(d, &s);
	usleep(20 * 1000);
	assert_int_equal(used_idx_of(d), SR_WRITES); /* nothing before the guest runs */
	vd_set_guest_stopped(d, false);
	assert_true(vd_wait_used(d, 0, &e, 5000));
	heads_seen[SR_WRITES] = (uint16_t)e.id;
	assert_int_equal(*(uint8_t *)vd_gpa(d, st[SR_WRITES], 1), VIRTIO_BLK_S_OK);
	assert_true(vd_wait_msi(d, 1, 2000) >= 1);
	usleep(100 * 1000);
	/* Exactly once each: 33 used entries, 33 different chains, the data in the image. */
	assert_int_equal(used_idx_of(d), SR_WRITES + 1);
	for (int i = 0; i <= SR_WRITES; i++)
		for (int j = 0; j < i; j++)
			assert_int_not_equal(heads_seen[i], heads_seen[j]);
	for (int i = 0; i < SR_WRITES; i++)
		expect_on_disk(f, (uint64_t)i * (SR_LEN / 512), (uint8_t)(i + 1), SR_LEN);
	expect_on_disk(f, 6000, 0xab, 8192);
	/* And the restored device goes on serving requests. */
	rd = vd_alloc(d, 4096);
	{
		struct blk_result r = blk_request(d, VIRTIO_BLK_T_IN, 6000, rd, 4096, true);

		assert_int_equal(r.status, VIRTIO_BLK_S_OK);
		assert_int_equal(((uint8_t *)vd_gpa(d, rd, 4096))[4095], 0xab);
	}
	vd_saved_release(&s);
}

static void test_restore_refused_on_another_image(void **state)
{
	struct fixture *f = *state;
	char other[64], why[160];
	struct vd_saved s;
	struct vd *d;
	int fd;

	vd_save(f->d, &s);
	snprintf(other, sizeof(other), "/tmp/nestvm-test-blk2.XXXXXX");
	fd = mkstemp(other);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, IMG_SIZE / 2), 0);
	close(fd);
	d = reopen(f, other, SERIAL);
	vd_load_guest(d, &s);
	assert_int_equal(vd_restore_bytes(d, s.state.buf, s.state.len, why, sizeof(why)), -EBADMSG);
	assert_non_null(strstr(why, "not the same image"));
	d = reopen(f, f->path, "another serial");
	assert_int_equal(vd_restore_bytes(d, s.state.buf, s.state.len, why, sizeof(why)), -EBADMSG);
	assert_non_null(strstr(why, "serial"));
	d = reopen(f, f->path, SERIAL);
	assert_int_equal(vd_restore_bytes(d, s.state.buf, s.state.len, why, sizeof(why)), 0);
	unlink(other);
	vd_saved_release(&s);
}

#define BLK_TESTS(setup_fn)                                                                        \
	cmocka_unit_test_setup_teardown(test_config, setup_fn, teardown),                          \
	    cmocka_unit_test_setup_teardown(test_read, setup_fn, teardown),                        \
	    cmocka_unit_test_setup_teardown(test_write_read_back, setup_fn, teardown),             \
	    cmocka_unit_test_setup_teardown(test_out_of_range, setup_fn, teardown),                \
	    cmocka_unit_test_setup_teardown(test_zero_length_transfer, setup_fn, teardown),        \
	    cmocka_unit_test_setup_teardown(test_get_id_and_unsupported, setup_fn, teardown),      \
	    cmocka_unit_test_setup_teardown(test_split_header, setup_fn, teardown),                \
	    cmocka_unit_test_setup_teardown(test_status_in_data_buffer, setup_fn, teardown),       \
	    cmocka_unit_test_setup_teardown(test_no_status_byte, setup_fn, teardown),              \
	    cmocka_unit_test_setup_teardown(test_short_header, setup_fn, teardown),                \
	    cmocka_unit_test_setup_teardown(test_discard_and_write_zeroes, setup_fn, teardown),    \
	    cmocka_unit_test_setup_teardown(test_many_in_flight, setup_fn, teardown),              \
	    cmocka_unit_test_setup_teardown(test_merged_runs, setup_fn, teardown),                 \
	    cmocka_unit_test_setup_teardown(test_reset_with_io_in_flight, setup_fn, teardown),     \
	    cmocka_unit_test_setup_teardown(test_malformed_chain, setup_fn, teardown),             \
	    cmocka_unit_test_setup_teardown(test_image_locked, setup_fn, teardown),                \
	    cmocka_unit_test_setup_teardown(test_save_restore_write_once, setup_fn, teardown)

int main(void)
{
	const struct CMUnitTest uring[] = {BLK_TESTS(setup_uring)};
	const struct CMUnitTest threads[] = {BLK_TESTS(setup_threads)};
	const struct CMUnitTest readonly[] = {
	    cmocka_unit_test_setup_teardown(test_config, setup_readonly, teardown),
	    cmocka_unit_test_setup_teardown(test_readonly_refuses_writes, setup_readonly, teardown),
	    cmocka_unit_test_setup_teardown(test_read, setup_readonly, teardown),
	    cmocka_unit_test_setup_teardown(test_merged_runs, setup_readonly, teardown),
	    cmocka_unit_test_setup_teardown(test_restore_refused_on_another_image, setup_threads,
	                                    teardown),
	};
	char path[] = "/tmp/nestvm-test-uring.XXXXXX";
	int fd = mkstemp(path), failed = 0;
	struct disk *probe = NULL;

	/* io_uring may be missing (no liburing, old kernel, or forbidden by sysctl). */
	if (fd >= 0 && ftruncate(fd, 4096) == 0 &&
	    disk_open(path, false, DISK_ENGINE_URING, &probe) == 0)
		failed += cmocka_run_group_tests_name("virtio_blk io_uring", uring, NULL, NULL);
	else
		printf("[  SKIPPED ] virtio_blk io_uring: io_uring is not available here\n");
	disk_close(probe);
	if (fd >= 0) {
		close(fd);
		unlink(path);
	}
	failed += cmocka_run_group_tests_name("virtio_blk threads", threads, NULL, NULL);
	failed += cmocka_run_group_tests_name("virtio_blk read-only", readonly, NULL, NULL);
	return failed;
}
