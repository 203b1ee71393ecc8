/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: virtio-blk requests (devices/virtio/blk.c) through the
 * virtio PCI transport, the fuzzer playing the guest's driver. The input
 * chooses the disk (read-write on the thread pool or io_uring, or
 * read-only), the negotiated features and queue size, then batches of
 * requests: type (read, write, flush, get-id, discard, write-zeroes, or any
 * number), sector, length (whole sectors or not), header cut short, no
 * status byte, extra bytes, descriptors split anywhere, direct or indirect;
 * between batches, configuration reads, device resets and a malformed chain.
 *
 * Checks, besides ASan/UBSan: every chain comes back once, with the status
 * this file predicts from the request (the rules of blk.h), the used length
 * the spec asks for, the serial for get-id, and what the disk holds for a
 * read (a model of the image, zeroed for each input; sectors written by two
 * requests of one batch become unknown). Disk images live in a per-process
 * temporary directory and are unlinked once open.
 */
#include "devices/virtio/blk.h"
#include "fuzz_virtio.h"

#include <fcntl.h>
#include <sched.h>

#define RW_SIZE (64 * 1024 + 300) /* not a whole number of sectors: 128 of them */
#define RO_SIZE (32 * 1024)
#define MAX_SIZE RW_SIZE
#define MAX_BATCH 32
#define MAX_STEPS 48
#define SERIAL "fuzz-serial-0123456789" /* longer than the 20 bytes sent */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { DISK_RW_THREADS, DISK_RW_URING, DISK_RO, NR_DISKS };

struct disk_slot {
	struct virtio_blk *blk;
	struct fz f; /* its transport, kept from input to input (each input resets the device) */
	bool readonly;
	uint64_t size;
	uint64_t capacity; /* sectors */
};

static struct disk_slot disks[NR_DISKS];
static uint8_t model[MAX_SIZE];        /* what the image holds */
static bool known[MAX_SIZE / 512 + 1]; /* by sector: whether model[] is certain */

struct req {
	uint32_t type;
	uint64_t sector;
	uint64_t out_len, in_len; /* readable and writable bytes */
	uint64_t wgpa;            /* the writable bytes, contiguous in guest memory */
	uint64_t rgpa;
	uint64_t seg_sector;
	uint32_t seg_num, seg_flags;
	int expect; /* status, or -1: OK or IOERR both acceptable */
	bool done;
	struct virtq_used_elem used;
};

static struct req reqs[MAX_BATCH];

static void disk_setup(struct disk_slot *s, const char *dir, const char *name, bool readonly,
                       uint64_t size, enum disk_engine engine)
{
	char path[512];
	struct virtio_blk_params p = {
	    .path = path, .readonly = readonly, .engine = engine, .serial = SERIAL};
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	FZ_CHECK(fd >= 0);
	if (readonly) {
		uint8_t buf[RO_SIZE];

		for (size_t i = 0; i < sizeof(buf); i++)
			buf[i] = (uint8_t)(i * 7 + i / 512);
		FZ_CHECK(write(fd, buf, sizeof(buf)) == (ssize_t)sizeof(buf));
	}
	FZ_CHECK(ftruncate(fd, (off_t)size) == 0);
	close(fd);
	if (virtio_blk_create(&p, &s->blk) < 0 && engine == DISK_ENGINE_URING) {
		p.engine = DISK_ENGINE_THREADS; /* io_uring not allowed here */
		FZ_CHECK(virtio_blk_create(&p, &s->blk) == 0);
	}
	FZ_CHECK(s->blk);
	unlink(path);
	s->readonly = readonly;
	s->size = size;
	s->capacity = size / 512;
}

static void setup_once(void)
{
	const char *dir = fz_tmpdir("blk");

	log_set_level(LOG_NONE);
	disk_setup(&disks[DISK_RW_THREADS], dir, "rw-threads.img", false, RW_SIZE,
	           DISK_ENGINE_THREADS);
	disk_setup(&disks[DISK_RW_URING], dir, "rw-uring.img", false, RW_SIZE, DISK_ENGINE_URING);
	disk_setup(&disks[DISK_RO], dir, "ro.img", true, RO_SIZE, DISK_ENGINE_THREADS);
	fz_rm_tmpdir(); /* the images are open and unlinked: nothing is left behind */
	for (unsigned int i = 0; i < NR_DISKS; i++)
		fz_create(&disks[i].f, virtio_blk_vdev(disks[i].blk));
}

/* The model for the input's disk: a zeroed read-write image, or the read-only pattern. */
static void model_reset(struct disk_slot *s)
{
	struct disk *d = virtio_blk_disk(s->blk);

	if (s->readonly) {
		for (size_t i = 0; i < RO_SIZE; i++)
			model[i] = (uint8_t)(i * 7 + i / 512);
	} else {
		FZ_CHECK(ftruncate(d->fd, 0) == 0 && ftruncate(d->fd, (off_t)s->size) == 0);
		memset(model, 0, sizeof(model));
	}
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		known[i] = true;
}

static bool range_ok(const struct disk_slot *s, uint64_t sector, uint64_t bytes)
{
	return !(bytes & 511) && sector <= s->capacity && (bytes >> 9) <= s->capacity - sector;
}

/* What blk.c must answer (see blk.h), or -1 where the disk decides. */
static int predict(const struct disk_slot *s, const struct req *r, uint64_t hdr_bytes)
{
	if (hdr_bytes < 16)
		return VIRTIO_BLK_S_IOERR;
	switch (r->type) {
	case VIRTIO_BLK_T_IN:
		return range_ok(s, r->sector, r->in_len - 1) ? VIRTIO_BLK_S_OK : VIRTIO_BLK_S_IOERR;
	case VIRTIO_BLK_T_OUT:
		return !s->readonly && range_ok(s, r->sector, r->out_len - 16) ? VIRTIO_BLK_S_OK
		                                                               : VIRTIO_BLK_S_IOERR;
	case VIRTIO_BLK_T_FLUSH:
		return s->readonly ? -1 : VIRTIO_BLK_S_OK;
	case VIRTIO_BLK_T_GET_ID:
		return VIRTIO_BLK_S_OK;
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		if (s->readonly || r->out_len != 32)
			return VIRTIO_BLK_S_IOERR;
		if ((r->seg_flags & ~VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) ||
		    (r->type == VIRTIO_BLK_T_DISCARD && r->seg_flags))
			return VIRTIO_BLK_S_UNSUPP;
		if (r->seg_num > (1U << 22) ||
		    !range_ok(s, r->seg_sector, (uint64_t)r->seg_num << 9))
			return VIRTIO_BLK_S_IOERR;
		return VIRTIO_BLK_S_OK;
	default:
		return VIRTIO_BLK_S_UNSUPP;
	}
}

static const uint32_t type_table[] = {
    VIRTIO_BLK_T_IN,    VIRTIO_BLK_T_IN,     VIRTIO_BLK_T_OUT,     VIRTIO_BLK_T_OUT,
    VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_DISCARD, VIRTIO_BLK_T_WRITE_ZEROES,
};

/* Build request @r from the input and make it available; false if the queue or memory is full. */
static bool build_req(struct fz *f, struct fz_in *in, const struct disk_slot *s, struct req *r,
                      unsigned int cookie, bool indirect_ok)
{
	uint8_t tsel = fz_u8(in), flags = fz_u8(in), ssel = fz_u8(in);
	uint64_t hdr_bytes = 16, data_len;
	uint8_t hdr[16] = {0}, *rp;
	struct fz_buf bufs[FZ_CHAIN_MAX];
	unsigned int n = 0, half = FZ_CHAIN_MAX / 2;

	memset(r, 0, sizeof(*r));
	r->type = tsel >= 0xf8 ? fz_u32(in) : type_table[tsel % 8];
	r->sector = (ssel & 0x80) ? fz_u64(in) : ssel % (s->capacity + 2);
	data_len = (uint64_t)(fz_u8(in) % 9) * 512;
	if (flags & 0x01)
		data_len += 1 + fz_u16(in) % 511; /* not whole sectors */
	if (flags & 0x02)
		hdr_bytes = fz_u8(in) % 16; /* header cut short */

	/* Readable part: header, then data (write) or one segment (discard, write-zeroes). */
	r->out_len = hdr_bytes;
	if (r->type == VIRTIO_BLK_T_OUT)
		r->out_len += data_len;
	if (r->type == VIRTIO_BLK_T_DISCARD || r->type == VIRTIO_BLK_T_WRITE_ZEROES) {
		uint8_t nsel = fz_u8(in);

		r->seg_sector = (nsel & 0x80) ? fz_u64(in) : fz_u8(in) % (s->capacity + 2);
		r->seg_num = (nsel & 0x40) ? fz_u32(in) : nsel % 17;
		r->seg_flags = (nsel & 0x20) ? fz_u32(in) : (nsel >> 3) & 1;
		r->out_len += 16;
		if (flags & 0x04)
			r->out_len += fz_u8(in) % 24; /* more than one segment's worth */
	} else if (flags & 0x04 && r->type != VIRTIO_BLK_T_OUT) {
		r->out_len += fz_u8(in) % 64; /* bytes the device ignores */
	}
	if (hdr_bytes < 16)
		r->out_len = hdr_bytes; /* nothing after a short header (it would be read as one) */
	/* Writable part: data (read), the id (get-id), then the status byte. */
	if (flags & 0x08) {
		r->in_len = 0; /* no status byte at all */
	} else if (r->type == VIRTIO_BLK_T_IN) {
		r->in_len = data_len + 1;
	} else if (r->type == VIRTIO_BLK_T_GET_ID) {
		r->in_len = 1 + fz_u8(in) % 40;
	} else {
		r->in_len = 1 + ((flags & 0x10) ? fz_u8(in) % 16 : 0);
	}

	r->rgpa = fz_alloc(f, r->out_len);
	r->wgpa = fz_alloc(f, r->in_len);
	if (f->out_of_memory)
		return false;
	rp = fz_gpa(f, r->rgpa, r->out_len);
	memcpy(hdr, &r->type, 4);
	memcpy(hdr + 8, &r->sector, 8);
	memcpy(rp, hdr, hdr_bytes);
	if (r->out_len > hdr_bytes && hdr_bytes == 16) {
		uint8_t seg[16];

		memcpy(seg, &r->seg_sector, 8);
		memcpy(seg + 8, &r->seg_num, 4);
		memcpy(seg + 12, &r->seg_flags, 4);
		if (r->type == VIRTIO_BLK_T_DISCARD || r->type == VIRTIO_BLK_T_WRITE_ZEROES)
			memcpy(rp + hdr_bytes, seg, 16);
		else if (r->type == VIRTIO_BLK_T_OUT)
			for (uint64_t i = 0; i < r->out_len - hdr_bytes; i++)
				rp[hdr_bytes + i] =
				    (uint8_t)(i * 13 + cookie * 31 + (flags & 0xe0));
	}
	if (r->in_len)
		memset(fz_gpa(f, r->wgpa, r->in_len), 0xee, r->in_len);
	if (r->out_len)
		n = fz_split(in, r->rgpa, (uint32_t)r->out_len, false, bufs, half);
	if (r->in_len)
		n += fz_split(in, r->wgpa, (uint32_t)r->in_len, true, bufs + n, half);
	if (n == 0)
		return true; /* an empty chain is not a request; skip it */
	r->expect = r->in_len ? predict(s, r, hdr_bytes) : VIRTIO_BLK_S_OK;
	return fz_submit(f, 0, bufs, n, indirect_ok && (flags & 0x20), cookie) >= 0;
}

/* Wait until every chain of the batch is back (polling the used ring, as a driver would). */
static void wait_batch(struct fz *f, unsigned int nr)
{
	unsigned int done = 0;
	struct virtq_used_elem e;
	uint64_t cookie;

	for (unsigned int i = 0; i < nr; i++)
		done += reqs[i].out_len + reqs[i].in_len == 0; /* never made available */
	for (int i = 0; i < 400000; i++) {
		while (fz_used(f, 0, &e, &cookie)) {
			FZ_CHECK(cookie < nr && !reqs[cookie].done);
			reqs[cookie].done = true;
			reqs[cookie].used = e;
			done++;
		}
		if (done == nr)
			return;
		if (i > 1000 && fz_needs_reset(f))
			return; /* cannot happen with these chains: the caller stops */
		if (i < 64)
			sched_yield();
		else
			usleep(25);
	}
	fprintf(stderr, "virtio-blk: %u of %u requests never completed\n", nr - done, nr);
	abort();
}

static bool overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

/* Byte range a request writes to the disk, if any. */
static bool write_range(const struct req *r, uint64_t *off, uint64_t *len)
{
	if (r->type == VIRTIO_BLK_T_OUT) {
		*off = r->sector << 9;
		*len = r->out_len - 16;
		return true;
	}
	if (r->type == VIRTIO_BLK_T_DISCARD || r->type == VIRTIO_BLK_T_WRITE_ZEROES) {
		*off = r->seg_sector << 9;
		*len = (uint64_t)r->seg_num << 9;
		return true;
	}
	return false;
}

static void check_batch(struct fz *f, const struct disk_slot *s, unsigned int nr)
{
	uint8_t *buf;

	for (unsigned int i = 0; i < nr; i++) {
		struct req *r = &reqs[i];
		uint8_t status;
		uint64_t woff, wlen;
		bool racy = false;

		if (!r->done || r->out_len + r->in_len == 0)
			continue;
		if (r->in_len == 0) {
			FZ_CHECK(r->used.len == 0); /* returned untouched */
			continue;
		}
		status = *(uint8_t *)fz_gpa(f, r->wgpa + r->in_len - 1, 1);
		if (r->expect >= 0) {
			if (status != r->expect)
				fprintf(stderr,
				        "type %u sector %llu out %llu in %llu: status %u, expected "
				        "%d\n",
				        r->type, (unsigned long long)r->sector,
				        (unsigned long long)r->out_len,
				        (unsigned long long)r->in_len, status, r->expect);
			FZ_CHECK(status == r->expect);
		} else {
			FZ_CHECK(status == VIRTIO_BLK_S_OK || status == VIRTIO_BLK_S_IOERR);
		}
		if (status != VIRTIO_BLK_S_OK) {
			FZ_CHECK(r->used.len == 1);
			continue;
		}
		buf = fz_gpa(f, r->wgpa, r->in_len);
		switch (r->type) {
		case VIRTIO_BLK_T_IN:
			FZ_CHECK(r->used.len == r->in_len);
			for (unsigned int j = 0; j < nr; j++)
				if (reqs[j].done && write_range(&reqs[j], &woff, &wlen) &&
				    overlaps(woff, wlen, r->sector << 9, r->in_len - 1))
					racy = true;
			for (uint64_t b = 0; !racy && b < r->in_len - 1; b++) {
				uint64_t at = (r->sector << 9) + b;

				if (known[at >> 9] && buf[b] != model[at]) {
					fprintf(stderr,
					        "read of sector %llu: byte %llu is 0x%02x, not "
					        "0x%02x\n",
					        (unsigned long long)r->sector,
					        (unsigned long long)b, buf[b], model[at]);
					abort();
				}
			}
			break;
		case VIRTIO_BLK_T_GET_ID: {
			uint64_t n = r->in_len - 1 < VIRTIO_BLK_ID_BYTES ? r->in_len - 1
			                                                 : VIRTIO_BLK_ID_BYTES;

			FZ_CHECK(r->used.len == n + 1);
			FZ_CHECK(memcmp(buf, SERIAL, n) == 0);
			break;
		}
		default:
			FZ_CHECK(r->used.len == 1);
			break;
		}
	}
	/* The model: what this batch wrote (a sector two requests wrote is unknown). */
	for (unsigned int i = 0; i < nr; i++) {
		struct req *r = &reqs[i];
		uint64_t off, len;
		bool twice = false;
		uint8_t *src;

		if (!r->done || !r->in_len || !write_range(r, &off, &len) ||
		    *(uint8_t *)fz_gpa(f, r->wgpa + r->in_len - 1, 1) != VIRTIO_BLK_S_OK)
			continue;
		for (unsigned int j = 0; j < nr; j++) {
			uint64_t o2, l2;

			if (j != i && reqs[j].done && write_range(&reqs[j], &o2, &l2) &&
			    overlaps(off, len, o2, l2))
				twice = true;
		}
		src = r->type == VIRTIO_BLK_T_OUT ? fz_gpa(f, r->rgpa + 16, len) : NULL;
		for (uint64_t b = 0; b < len; b++)
			model[off + b] = src ? src[b] : 0;
		for (uint64_t sec = off >> 9; sec < (off + len) >> 9; sec++)
			known[sec] =
			    !twice && r->type != VIRTIO_BLK_T_DISCARD; /* a hole is a hint */
	}
}

static bool bring_up(struct fz *f, struct fz_in *in, bool *indirect)
{
	uint8_t fsel = fz_u8(in);
	uint64_t feat = VIRTIO_BIT(VIRTIO_BLK_F_SEG_MAX) | VIRTIO_BIT(VIRTIO_BLK_F_BLK_SIZE);

	if (fsel & 1)
		feat |= VIRTIO_BIT(VIRTIO_BLK_F_FLUSH);
	if (fsel & 2)
		feat |= VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX);
	if (fsel & 4)
		feat |= VIRTIO_BIT(VIRTIO_F_RING_INDIRECT_DESC);
	*indirect = fsel & 4;
	return fz_bring_up(f, feat, 1, (uint16_t)(16U << ((fsel >> 3) % 5)));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool init;
	struct fz_in in = {data, size};
	struct disk_slot *s;
	struct fz *f;
	bool indirect;

	if (!init) {
		setup_once();
		init = true;
	}
	s = &disks[fz_u8(&in) % NR_DISKS];
	f = &s->f;
	fz_set_status(f, 0); /* nothing in flight from here on */
	f->buf_next = FZ_BUF_GPA;
	f->out_of_memory = false;
	model_reset(s);
	if (!bring_up(f, &in, &indirect))
		abort();
	for (int step = 0; step < MAX_STEPS && !fz_in_empty(&in) && !f->out_of_memory; step++) {
		uint8_t op = fz_u8(&in);

		if (op < 0xe0) {
			unsigned int nr = 1 + op % MAX_BATCH, built = 0;

			memset(reqs, 0, sizeof(reqs));
			while (built < nr && build_req(f, &in, s, &reqs[built], built, indirect))
				built++;
			fz_kick(f, 0);
			wait_batch(f, built);
			check_batch(f, s, built);
			if (fz_needs_reset(f))
				break; /* cannot happen with well-formed chains */
		} else if (op < 0xf0) {
			uint32_t off = fz_u8(&in) % (VIRTIO_BLK_CFG_SIZE + 4);
			uint32_t len = 1U << (fz_u8(&in) % 4);
			uint64_t v = fz_read(f, VIRTIO_PCI_DEVICE_OFF + off, len);

			if (off == VIRTIO_BLK_CFG_CAPACITY && len == 8)
				FZ_CHECK(v == s->capacity);
		} else if (op < 0xf8) {
			if (!bring_up(f, &in, &indirect))
				abort();
		} else {
			/* A malformed chain (a writable buffer before a readable one): needs-reset.
			 */
			struct fz_buf b[2] = {{fz_alloc(f, 16), 16, true},
			                      {fz_alloc(f, 16), 16, false}};

			if (f->out_of_memory || fz_submit(f, 0, b, 2, false, 0) < 0)
				break;
			fz_kick(f, 0);
			fz_settle(f);
			FZ_CHECK(fz_needs_reset(f));
			if (!bring_up(f, &in, &indirect))
				abort();
		}
	}
	fz_set_status(f, 0);
	return 0;
}
