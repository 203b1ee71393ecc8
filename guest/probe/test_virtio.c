/* SPDX-License-Identifier: MIT */
/*
 * test=virtio-blk: the virtio PCI transport and virtio-blk's data path with
 * the probe's own driver (virtio.c). Parameters: disk=N (the Nth virtio-blk
 * function, default 0), capacity=SECTORS (expected capacity), id=STRING
 * (expected GET_ID answer), readonly=1 (the disk must offer VIRTIO_BLK_F_RO
 * and fail every write with IOERR; nothing is written), strict=0 (step 2
 * only notes a device that accepts features it did not offer, as QEMU
 * does; the specification does not forbid that).
 *
 *  1. capacity from the device configuration (§5.2.4);
 *  2. negotiation: a feature the device does not offer, or no VERSION_1,
 *     leaves FEATURES_OK clear (§3.1.1, §6.1);
 *  3. 4 KiB of a pattern written to sector 8 and to the last 4 KiB, read
 *     back, compared; flush; GET_ID;
 *  4. a read at sector = capacity gives IOERR, type 99 UNSUPP;
 *  5. with VIRTIO_F_INDIRECT_DESC: a write through an indirect table, and a
 *     chain exactly as long as the queue (boundary, must work).
 * The pattern is 128 times the 32 bytes "nestvm probe virtio-blk pattern\n",
 * so that tests/integration/virtio_probe.sh can check the image afterwards.
 *
 * test=virtio-hostile: malformed requests on disk 0 (see hostile_cases[]);
 * each must end in DEVICE_NEEDS_RESET or in that request failing, the VM
 * must go on, disk 1 must keep working throughout, and disk 0 must work
 * again after a reset.
 */
#include "virtio.h"

#define PATTERN "nestvm probe virtio-blk pattern\n"
#define SECTOR_PATTERN 8
#define QSIZE 16
#define HOSTILE_QSIZE 8
#define HOSTILE_TIMEOUT_US 1000000
#define SETTLE_US 5000
#define T_UNKNOWN 99

static uint8_t buf_w[4096] __attribute__((aligned(4096)));
static uint8_t buf_r[4096] __attribute__((aligned(4096)));

static void fill_pattern(uint8_t *b, size_t n, uint8_t salt)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(PATTERN[i % 32] ^ salt);
}

static uint64_t blk_capacity(const struct vdev *d)
{
	return virtio_device_cfg32(d, 0) | (uint64_t)virtio_device_cfg32(d, 4) << 32;
}

static const char *blk_status_name(int s)
{
	switch (s) {
	case VIRTIO_BLK_S_OK:
		return "OK";
	case VIRTIO_BLK_S_IOERR:
		return "IOERR";
	case VIRTIO_BLK_S_UNSUPP:
		return "UNSUPP";
	case VQ_NEEDS_RESET:
		return "NEEDS_RESET";
	case VQ_TIMEOUT:
		return "timeout";
	default:
		return "other";
	}
}

/* Write buf_w (salted) to @sector, read it back into buf_r, compare. 0 or -1 with *why. */
static int blk_roundtrip(struct vdev *d, struct vq *vq, uint64_t sector, uint8_t salt, char *why,
                         size_t size)
{
	int s;

	fill_pattern(buf_w, sizeof(buf_w), salt);
	s = blk_rw(d, vq, VIRTIO_BLK_T_OUT, sector, buf_w, sizeof(buf_w));
	if (s != VIRTIO_BLK_S_OK) {
		format(why, size, "write of sector %lu: %s (%d)", sector, blk_status_name(s), s);
		return -1;
	}
	memset(buf_r, 0, sizeof(buf_r));
	s = blk_rw(d, vq, VIRTIO_BLK_T_IN, sector, buf_r, sizeof(buf_r));
	if (s != VIRTIO_BLK_S_OK) {
		format(why, size, "read of sector %lu: %s (%d)", sector, blk_status_name(s), s);
		return -1;
	}
	if (memcmp(buf_w, buf_r, sizeof(buf_w)) != 0) {
		format(why, size, "sector %lu reads back different data", sector);
		return -1;
	}
	return 0;
}

/* Negotiation must refuse @bad (a driver feature set the device must not accept). */
static bool features_refused(struct vdev *d, uint64_t bad)
{
	const char *why;

	if (virtio_negotiate(d, 0, &why) < 0 && virtio_reset(d) < 0)
		return false;
	virtio_reset(d);
	virtio_set_status(d, VIRTIO_S_ACKNOWLEDGE | VIRTIO_S_DRIVER);
	*(volatile uint32_t *)(uintptr_t)(d->common + 0x08) = 0;
	*(volatile uint32_t *)(uintptr_t)(d->common + 0x0c) = (uint32_t)bad;
	*(volatile uint32_t *)(uintptr_t)(d->common + 0x08) = 1;
	*(volatile uint32_t *)(uintptr_t)(d->common + 0x0c) = (uint32_t)(bad >> 32);
	virtio_set_status(d, VIRTIO_S_ACKNOWLEDGE | VIRTIO_S_DRIVER | VIRTIO_S_FEATURES_OK);
	return !(virtio_status(d) & VIRTIO_S_FEATURES_OK);
}

static struct virtio_blk_hdr ind_hdr;
static volatile uint8_t ind_status;
static struct vring_desc ind_table[VRING_MAX] __attribute__((aligned(16)));

/*
 * A write of buf_w to @sector through an indirect table of @n descriptors:
 * header, the data cut into n - 2 pieces, status. Returns the status or a
 * negative enum vq_wait.
 */
static int blk_write_indirect(struct vdev *d, struct vq *vq, uint64_t sector, unsigned int n)
{
	unsigned int pieces = n - 2, i;
	uint32_t piece = sizeof(buf_w) / pieces; /* pieces need not be whole sectors */
	uint32_t done = 0;
	struct vring_used_elem e;
	enum vq_wait w;

	ind_hdr = (struct virtio_blk_hdr){.type = VIRTIO_BLK_T_OUT, .sector = sector};
	ind_status = 0xff;
	ind_table[0] =
	    (struct vring_desc){(uintptr_t)&ind_hdr, sizeof(ind_hdr), VRING_DESC_F_NEXT, 1};
	for (i = 1; i <= pieces; i++) {
		uint32_t len = i == pieces ? sizeof(buf_w) - done : piece;

		ind_table[i] = (struct vring_desc){(uintptr_t)buf_w + done, len, VRING_DESC_F_NEXT,
		                                   (uint16_t)(i + 1)};
		done += len;
	}
	ind_table[i] = (struct vring_desc){(uintptr_t)&ind_status, 1, VRING_DESC_F_WRITE, 0};
	vq->desc[0] = (struct vring_desc){(uintptr_t)ind_table, n * sizeof(struct vring_desc),
	                                  VRING_DESC_F_INDIRECT, 0};
	vq_publish(vq, 0);
	vq_kick(vq);
	w = vq_wait(d, vq, &e, 5000000);
	return w == VQ_USED ? ind_status : w;
}

int test_virtio_blk(void)
{
	struct vdev d;
	struct vq vq;
	const char *why, *want_id = param_get("id");
	uint64_t index = 0, want_cap, cap, bad = 0;
	bool readonly = param_get("readonly") && strcmp(param_get("readonly"), "0") != 0;
	/* The specification lets a device accept more than it offered; nestvm does not. */
	bool strict = !param_get("strict") || strcmp(param_get("strict"), "0") != 0;
	char id[VIRTIO_BLK_ID_BYTES + 1] = {0};
	char msg[160];
	int s;

	param_u64("disk", &index);
	if (virtio_find(VIRTIO_ID_BLK, index, &d, &why) < 0)
		return probe_fail("virtio-blk %lu: %s", index, why);
	printf("probe: virtio-blk: 00:%02x.%u common 0x%lx notify 0x%lx (x%u) device 0x%lx\n",
	       d.devfn >> 3, d.devfn & 7, d.common, d.notify, d.notify_mult, d.device);

	/* 1. Capacity. */
	cap = blk_capacity(&d);
	if (param_u64("capacity", &want_cap) && cap != want_cap)
		return probe_fail("capacity %lu sectors, expected %lu", cap, want_cap);
	if (cap < 2 * SECTOR_PATTERN + 8)
		return probe_fail("capacity %lu sectors is too small for the test", cap);

	/* 2. Negotiation refuses a feature not offered, and a driver without VERSION_1. */
	if (virtio_negotiate(&d, ~0ULL, &why) < 0)
		return probe_fail("negotiation: %s", why);
	printf("probe: virtio-blk: capacity %lu sectors, features offered 0x%lx\n", cap,
	       d.features);
	while (bad < 64 && (d.features & VIRTIO_FEATURE(bad)))
		bad++;
	if (bad < 64 && !features_refused(&d, d.features | VIRTIO_FEATURE(bad))) {
		if (strict)
			return probe_fail(
			    "FEATURES_OK accepted with feature bit %lu, never offered", bad);
		printf("probe: virtio-blk: note: FEATURES_OK accepted with feature bit %lu, never "
		       "offered\n",
		       bad);
	}
	if (!features_refused(&d, d.features & ~VIRTIO_FEATURE(VIRTIO_F_VERSION_1))) {
		if (strict)
			return probe_fail("FEATURES_OK accepted without VIRTIO_F_VERSION_1");
		printf(
		    "probe: virtio-blk: note: FEATURES_OK accepted without VIRTIO_F_VERSION_1\n");
	}
	if (readonly != !!(d.features & VIRTIO_FEATURE(VIRTIO_BLK_F_RO)))
		return probe_fail("VIRTIO_BLK_F_RO is %s, expected %s",
		                  d.features & VIRTIO_FEATURE(VIRTIO_BLK_F_RO) ? "offered"
		                                                               : "absent",
		                  readonly ? "offered" : "absent");

	if (virtio_start(&d, &vq, 0, QSIZE,
	                 VIRTIO_FEATURE(VIRTIO_F_INDIRECT_DESC) |
	                     VIRTIO_FEATURE(VIRTIO_BLK_F_FLUSH),
	                 &why) < 0)
		return probe_fail("start: %s (status 0x%x)", why, virtio_status(&d));

	/* 3. Data path. */
	if (readonly) {
		fill_pattern(buf_w, sizeof(buf_w), 0);
		s = blk_rw(&d, &vq, VIRTIO_BLK_T_OUT, SECTOR_PATTERN, buf_w, sizeof(buf_w));
		if (s != VIRTIO_BLK_S_IOERR)
			return probe_fail("a write to the read-only disk ended %s (%d), not IOERR",
			                  blk_status_name(s), s);
		s = blk_rw(&d, &vq, VIRTIO_BLK_T_IN, SECTOR_PATTERN, buf_r, sizeof(buf_r));
		if (s != VIRTIO_BLK_S_OK)
			return probe_fail("a read from the read-only disk ended %s (%d)",
			                  blk_status_name(s), s);
	} else {
		if (blk_roundtrip(&d, &vq, cap - 8, 0x20, msg, sizeof(msg)) < 0 ||
		    blk_roundtrip(&d, &vq, SECTOR_PATTERN, 0, msg, sizeof(msg)) < 0)
			return probe_fail("%s", msg);
	}
	if (d.acked & VIRTIO_FEATURE(VIRTIO_BLK_F_FLUSH)) {
		s = blk_rw(&d, &vq, VIRTIO_BLK_T_FLUSH, 0, NULL, 0);
		if (s != VIRTIO_BLK_S_OK)
			return probe_fail("flush ended %s (%d)", blk_status_name(s), s);
	}
	memset(buf_r, 0, sizeof(buf_r));
	s = blk_rw(&d, &vq, VIRTIO_BLK_T_GET_ID, 0, buf_r, VIRTIO_BLK_ID_BYTES);
	if (s != VIRTIO_BLK_S_OK)
		return probe_fail("get-id ended %s (%d)", blk_status_name(s), s);
	memcpy(id, buf_r, VIRTIO_BLK_ID_BYTES);
	if (want_id && strcmp(id, want_id) != 0)
		return probe_fail("get-id answered \"%s\", expected \"%s\"", id, want_id);

	/* 4. Requests the device must fail, without a reset. */
	s = blk_rw(&d, &vq, VIRTIO_BLK_T_IN, cap, buf_r, VIRTIO_BLK_SECTOR);
	if (s != VIRTIO_BLK_S_IOERR)
		return probe_fail("a read at sector %lu (= capacity) ended %s (%d), not IOERR", cap,
		                  blk_status_name(s), s);
	s = blk_rw(&d, &vq, T_UNKNOWN, 0, buf_r, VIRTIO_BLK_SECTOR);
	if (s != VIRTIO_BLK_S_UNSUPP)
		return probe_fail("request type %u ended %s (%d), not UNSUPP", T_UNKNOWN,
		                  blk_status_name(s), s);

	/* 5. Indirect descriptors: a short table, and one exactly as long as the queue. */
	if (!readonly && (d.acked & VIRTIO_FEATURE(VIRTIO_F_INDIRECT_DESC))) {
		fill_pattern(buf_w, sizeof(buf_w), 0x40);
		s = blk_write_indirect(&d, &vq, 2 * SECTOR_PATTERN, 3);
		if (s != VIRTIO_BLK_S_OK)
			return probe_fail("indirect write (3 descriptors) ended %s (%d)",
			                  blk_status_name(s), s);
		fill_pattern(buf_w, sizeof(buf_w), 0x41);
		s = blk_write_indirect(&d, &vq, 2 * SECTOR_PATTERN, QSIZE);
		if (s != VIRTIO_BLK_S_OK)
			return probe_fail(
			    "indirect write of %u descriptors (= queue size) ended %s (%d)", QSIZE,
			    blk_status_name(s), s);
		s = blk_rw(&d, &vq, VIRTIO_BLK_T_IN, 2 * SECTOR_PATTERN, buf_r, sizeof(buf_r));
		if (s != VIRTIO_BLK_S_OK || memcmp(buf_r, buf_w, sizeof(buf_w)) != 0)
			return probe_fail("the indirect write does not read back (%s)",
			                  blk_status_name(s));
	}
	if (virtio_status(&d) !=
	    (VIRTIO_S_ACKNOWLEDGE | VIRTIO_S_DRIVER | VIRTIO_S_FEATURES_OK | VIRTIO_S_DRIVER_OK))
		return probe_fail("device status 0x%x after the requests", virtio_status(&d));
	virtio_reset(&d);
	return probe_pass("capacity %lu sectors, id \"%s\", %s, indirect %s", cap, id,
	                  readonly ? "read-only: write refused with IOERR"
	                           : "write/read/flush ok, past-end IOERR, unknown type UNSUPP",
	                  d.acked & VIRTIO_FEATURE(VIRTIO_F_INDIRECT_DESC) ? "ok" : "not offered");
}

/* ------------------------------------------------------------ hostile */

/* Outcomes, as bits, so that a case can allow more than one. */
enum {
	OUT_NEEDS_RESET = 1 << 0, /* DEVICE_NEEDS_RESET set */
	OUT_IOERR = 1 << 1,       /* the request came back with IOERR */
	OUT_OK = 1 << 2,          /* the request came back with OK */
	OUT_UNTOUCHED = 1 << 3,   /* came back without a status byte written */
	OUT_UNSUPP = 1 << 4,      /* came back UNSUPP */
	OUT_NOTHING = 1 << 5,     /* nothing within the time limit, no reset needed */
};

struct hostile {
	struct vdev *d;
	struct vq *vq;
	uint64_t ram_end; /* end of the RAM range below 4 GiB that holds the probe */
};

static struct virtio_blk_hdr h_hdr;
static volatile uint8_t h_status;
static uint8_t h_data[4096] __attribute__((aligned(4096)));
static struct vring_desc h_table[2 * VRING_MAX] __attribute__((aligned(16)));

#define D(addr, len, flags, next) ((struct vring_desc){(uintptr_t)(addr), (len), (flags), (next)})
#define HDR(t) (h_hdr = (struct virtio_blk_hdr){.type = (t), .sector = 8})
#define NEXT VRING_DESC_F_NEXT
#define WRITE VRING_DESC_F_WRITE
#define INDIRECT VRING_DESC_F_INDIRECT

/* header -> data (device-writable, read) -> status, at descriptors 0..2. */
static void good_read_chain(struct vq *vq)
{
	HDR(VIRTIO_BLK_T_IN);
	vq->desc[0] = D(&h_hdr, sizeof(h_hdr), NEXT, 1);
	vq->desc[1] = D(h_data, 4096, NEXT | WRITE, 2);
	vq->desc[2] = D(&h_status, 1, WRITE, 0);
}

static int c_loop(struct hostile *h)
{
	good_read_chain(h->vq);
	h->vq->desc[2] = D(&h_status, 1, NEXT | WRITE, 0); /* 0 -> 1 -> 2 -> 0 */
	vq_publish(h->vq, 0);
	return 0;
}

static int c_self_loop(struct hostile *h)
{
	HDR(VIRTIO_BLK_T_IN);
	h->vq->desc[0] = D(&h_hdr, sizeof(h_hdr), NEXT, 0);
	vq_publish(h->vq, 0);
	return 0;
}

static int c_head_range(struct hostile *h)
{
	good_read_chain(h->vq);
	vq_publish(h->vq, h->vq->size);
	return 0;
}

static int c_next_range(struct hostile *h)
{
	good_read_chain(h->vq);
	h->vq->desc[1].next = 0xffff;
	vq_publish(h->vq, 0);
	return 0;
}

static int c_avail_jump(struct hostile *h)
{
	good_read_chain(h->vq);
	for (unsigned int i = 0; i < h->vq->size; i++)
		h->vq->avail->ring[i] = 0;
	h->vq->avail_idx = h->vq->size + 1;
	__atomic_store_n(&h->vq->avail->idx, h->vq->avail_idx, __ATOMIC_RELEASE);
	return 0;
}

static int data_at(struct hostile *h, uint64_t addr, uint32_t len)
{
	good_read_chain(h->vq);
	h->vq->desc[1] = D(addr, len, NEXT | WRITE, 2);
	vq_publish(h->vq, 0);
	return 0;
}

static int c_addr_lapic(struct hostile *h)
{
	return data_at(h, 0xfee00000, 4096);
}

static int c_addr_own_bar(struct hostile *h)
{
	return data_at(h, h->d->common & ~0xfffULL, 4096);
}

static int c_addr_wrap(struct hostile *h)
{
	return data_at(h, ~0ULL - 15, 32);
}

static int c_addr_ram_end(struct hostile *h)
{
	return data_at(h, h->ram_end - 2048, 4096);
}

static int c_addr_huge(struct hostile *h)
{
	return data_at(h, 1ULL << 52, 4096);
}

static int c_status_in_mmio(struct hostile *h)
{
	good_read_chain(h->vq);
	h->vq->desc[2] = D(0xfee00000, 1, WRITE, 0);
	vq_publish(h->vq, 0);
	return 0;
}

static int c_readable_after_writable(struct hostile *h)
{
	good_read_chain(h->vq);
	h->vq->desc[2] = D(&h_status, 1, 0, 0); /* a readable buffer after a writable one */
	vq_publish(h->vq, 0);
	return 0;
}

/* The descriptor at 0 points at h_table with @n entries (filled by the caller). */
static int indirect_at(struct hostile *h, uint64_t addr, uint32_t len, uint16_t flags)
{
	h->vq->desc[0] = D(addr, len, INDIRECT | flags, flags & NEXT ? 1 : 0);
	h->vq->desc[1] = D(&h_status, 1, WRITE, 0);
	vq_publish(h->vq, 0);
	return 0;
}

/* A valid indirect read of @n descriptors in h_table: header, n - 2 data pieces, status. */
static void table_read(unsigned int n)
{
	HDR(VIRTIO_BLK_T_IN);
	h_table[0] = D(&h_hdr, sizeof(h_hdr), NEXT, 1);
	for (unsigned int i = 1; i < n - 1; i++)
		h_table[i] = D(h_data + (i - 1) * 16, 16, NEXT | WRITE, i + 1);
	h_table[n - 1] = D(&h_status, 1, WRITE, 0);
	/* n - 2 pieces of 16 bytes are not whole sectors; fine for these cases. */
}

static int c_ind_too_long(struct hostile *h)
{
	table_read(h->vq->size + 1);
	return indirect_at(h, (uintptr_t)h_table, (h->vq->size + 1) * 16, 0);
}

static int c_direct_plus_indirect(struct hostile *h)
{
	/* 1 direct + an indirect table of size: a chain of size + 1 descriptors. */
	table_read(h->vq->size);
	HDR(VIRTIO_BLK_T_IN);
	h->vq->desc[0] = D(&h_hdr, sizeof(h_hdr), NEXT, 1);
	h->vq->desc[1] = D(h_table, h->vq->size * 16, INDIRECT, 0);
	vq_publish(h->vq, 0);
	return 0;
}

static int c_ind_range(struct hostile *h)
{
	table_read(3);
	return indirect_at(h, 0xfee00000, 48, 0);
}

static int c_ind_wrap(struct hostile *h)
{
	table_read(3);
	return indirect_at(h, ~0ULL - 31, 48, 0);
}

static int c_ind_nested(struct hostile *h)
{
	table_read(3);
	memcpy(h_table + 8, h_table, 3 * sizeof(h_table[0]));
	h_table[1] = D(h_table + 8, 48, INDIRECT, 0); /* an indirect table inside one */
	return indirect_at(h, (uintptr_t)h_table, 48, 0);
}

static int c_ind_next(struct hostile *h)
{
	table_read(3);
	return indirect_at(h, (uintptr_t)h_table, 48, NEXT);
}

static int c_ind_len_odd(struct hostile *h)
{
	table_read(3);
	return indirect_at(h, (uintptr_t)h_table, 40, 0);
}

static int c_ind_len_zero(struct hostile *h)
{
	table_read(3);
	return indirect_at(h, (uintptr_t)h_table, 0, 0);
}

static int c_ind_loop(struct hostile *h)
{
	table_read(3);
	h_table[2].flags |= NEXT;
	h_table[2].next = 0;
	return indirect_at(h, (uintptr_t)h_table, 48, 0);
}

static int c_ind_next_range(struct hostile *h)
{
	table_read(3);
	h_table[1].next = 3;
	return indirect_at(h, (uintptr_t)h_table, 48, 0);
}

/*
 * A write whose data lengths sum to 2^32 + 4096: 0x80000000 + 0x80000000 +
 * 0x1000, all inside RAM (two overlapping 2 GiB buffers). Summed in 32 bits
 * it would look like one 4 KiB page.
 */
static int c_len_wrap(struct hostile *h)
{
	const uint64_t base = 0x10000000, big = 0x80000000;

	if (h->ram_end < base + big)
		return -1;
	HDR(VIRTIO_BLK_T_OUT);
	h->vq->desc[0] = D(&h_hdr, sizeof(h_hdr), NEXT, 1);
	h->vq->desc[1] = D(base, (uint32_t)big, NEXT, 2);
	h->vq->desc[2] = D(base, (uint32_t)big, NEXT, 3);
	h->vq->desc[3] = D(h_data, 4096, NEXT, 4);
	h->vq->desc[4] = D(&h_status, 1, WRITE, 0);
	vq_publish(h->vq, 0);
	return 0;
}

static int c_len_max(struct hostile *h)
{
	/* One 4 GiB - 1 descriptor for a read: too big for RAM below 4 GiB. */
	return data_at(h, 0x10000000, 0xffffffff);
}

static int c_sector_wrap(struct hostile *h)
{
	good_read_chain(h->vq);
	h_hdr.sector = ~0ULL - 3; /* sector + 8 wraps */
	vq_publish(h->vq, 0);
	return 0;
}

static int c_no_status(struct hostile *h)
{
	HDR(VIRTIO_BLK_T_OUT);
	h->vq->desc[0] = D(&h_hdr, sizeof(h_hdr), NEXT, 1);
	h->vq->desc[1] = D(h_data, 4096, 0, 0);
	vq_publish(h->vq, 0);
	return 0;
}

static int c_short_header(struct hostile *h)
{
	good_read_chain(h->vq);
	h->vq->desc[0].len = 8;
	vq_publish(h->vq, 0);
	return 0;
}

static int c_odd_data(struct hostile *h)
{
	return data_at(h, (uintptr_t)h_data, 100);
}

/* A read whose data lands on the queue's own avail ring (and the index in it). */
static int c_dma_onto_ring(struct hostile *h)
{
	memset(h_data, 0xee, sizeof(h_data));
	return data_at(h, (uintptr_t)h->vq->avail, 4096);
}

static int c_notify_bogus_queue(struct hostile *h)
{
	*(volatile uint16_t *)(uintptr_t)(h->d->notify + 5 * h->d->notify_mult) = 5;
	*(volatile uint16_t *)(uintptr_t)(h->d->notify + 1000 * h->d->notify_mult) = 0;
	return 0;
}

static const struct hostile_case {
	const char *name;
	int (*build)(struct hostile *h); /* NULL: a queue configuration case */
	unsigned int allowed;
	uint16_t qsize; /* queue configuration cases: the size written */
	uint64_t qdesc; /* ... and the descriptor table address (0: the driver's own) */
	uint64_t qused; /* ... the used ring address (0: the driver's own; 1: RAM end - 8) */
} hostile_cases[] = {
    {"descriptor loop 0->1->2->0", c_loop, OUT_NEEDS_RESET, 0, 0, 0},
    {"descriptor pointing at itself", c_self_loop, OUT_NEEDS_RESET, 0, 0, 0},
    {"head index = queue size", c_head_range, OUT_NEEDS_RESET, 0, 0, 0},
    {"next index 0xffff", c_next_range, OUT_NEEDS_RESET, 0, 0, 0},
    {"avail.idx size+1 ahead", c_avail_jump, OUT_NEEDS_RESET, 0, 0, 0},
    {"buffer at the local APIC 0xfee00000", c_addr_lapic, OUT_NEEDS_RESET, 0, 0, 0},
    {"buffer in the device's own BAR", c_addr_own_bar, OUT_NEEDS_RESET, 0, 0, 0},
    {"buffer at 2^64-16, len 32 (wraps)", c_addr_wrap, OUT_NEEDS_RESET, 0, 0, 0},
    {"buffer across the end of RAM", c_addr_ram_end, OUT_NEEDS_RESET, 0, 0, 0},
    {"buffer at 2^52", c_addr_huge, OUT_NEEDS_RESET, 0, 0, 0},
    {"status byte at the local APIC", c_status_in_mmio, OUT_NEEDS_RESET, 0, 0, 0},
    {"readable descriptor after a writable one", c_readable_after_writable, OUT_NEEDS_RESET, 0, 0,
     0},
    {"indirect table of queue size + 1", c_ind_too_long, OUT_NEEDS_RESET, 0, 0, 0},
    {"direct + indirect chain of queue size + 1", c_direct_plus_indirect, OUT_NEEDS_RESET, 0, 0, 0},
    {"indirect table at 0xfee00000", c_ind_range, OUT_NEEDS_RESET, 0, 0, 0},
    {"indirect table at 2^64-32 (wraps)", c_ind_wrap, OUT_NEEDS_RESET, 0, 0, 0},
    {"nested indirect table", c_ind_nested, OUT_NEEDS_RESET, 0, 0, 0},
    {"indirect descriptor with NEXT", c_ind_next, OUT_NEEDS_RESET, 0, 0, 0},
    {"indirect table length 40 (not 16n)", c_ind_len_odd, OUT_NEEDS_RESET, 0, 0, 0},
    {"indirect table length 0", c_ind_len_zero, OUT_NEEDS_RESET, 0, 0, 0},
    {"loop inside an indirect table", c_ind_loop, OUT_NEEDS_RESET, 0, 0, 0},
    {"next out of an indirect table", c_ind_next_range, OUT_NEEDS_RESET, 0, 0, 0},
    {"write lengths summing to 2^32 + 4096", c_len_wrap, OUT_NEEDS_RESET | OUT_IOERR, 0, 0, 0},
    {"one buffer of 4 GiB - 1", c_len_max, OUT_NEEDS_RESET | OUT_IOERR, 0, 0, 0},
    {"sector 2^64-4 (end wraps)", c_sector_wrap, OUT_NEEDS_RESET | OUT_IOERR, 0, 0, 0},
    {"header of 8 bytes", c_short_header, OUT_NEEDS_RESET | OUT_IOERR, 0, 0, 0},
    {"read of 100 bytes (not whole sectors)", c_odd_data, OUT_NEEDS_RESET | OUT_IOERR, 0, 0, 0},
    {"no writable status byte", c_no_status, OUT_NEEDS_RESET | OUT_UNTOUCHED | OUT_IOERR, 0, 0, 0},
    {"read DMA onto the queue's own avail ring", c_dma_onto_ring,
     OUT_NEEDS_RESET | OUT_OK | OUT_IOERR, 0, 0, 0},
    {"notify of queues 5 and 1000 (absent)", c_notify_bogus_queue, OUT_NOTHING, 0, 0, 0},
    {"queue size 12 (not a power of 2)", NULL, OUT_NEEDS_RESET, 12, 0, 0},
    {"queue size 0", NULL, OUT_NEEDS_RESET, 0, 0, 0},
    {"queue size 512 (above the maximum)", NULL, OUT_NEEDS_RESET, 512, 0, 0},
    {"descriptor table in the PCI hole", NULL, OUT_NEEDS_RESET, HOSTILE_QSIZE, 0xc0000000, 0},
    {"descriptor table misaligned (+8)", NULL, OUT_NEEDS_RESET, HOSTILE_QSIZE, 8, 0},
    {"used ring across the end of RAM", NULL, OUT_NEEDS_RESET, HOSTILE_QSIZE, 0, 1},
};

static const char *outcome_name(unsigned int o)
{
	switch (o) {
	case OUT_NEEDS_RESET:
		return "needs-reset";
	case OUT_IOERR:
		return "ioerr";
	case OUT_OK:
		return "ok";
	case OUT_UNTOUCHED:
		return "returned-untouched";
	case OUT_UNSUPP:
		return "unsupp";
	case OUT_NOTHING:
		return "nothing";
	default:
		return "?";
	}
}

/* A queue configuration case: negotiate, write the bad queue, enable, look at the status. */
static unsigned int hostile_queue_case(struct hostile *h, const struct hostile_case *c)
{
	const char *why;
	struct vq *vq = h->vq;
	uint64_t desc = (uintptr_t)vq->desc, used = (uintptr_t)vq->used;

	if (virtio_negotiate(h->d, VIRTIO_FEATURE(VIRTIO_F_INDIRECT_DESC), &why) < 0)
		return 0;
	if (c->qdesc > 0x1000)
		desc = c->qdesc;
	else
		desc += c->qdesc;
	if (c->qused == 1)
		used = h->ram_end - 8;
	virtio_queue_setup(h->d, vq, c->qsize, desc, (uintptr_t)vq->avail, used);
	if (virtio_status(h->d) & VIRTIO_S_NEEDS_RESET)
		return OUT_NEEDS_RESET;
	virtio_set_status(h->d, virtio_status(h->d) | VIRTIO_S_DRIVER_OK);
	return virtio_status(h->d) & VIRTIO_S_NEEDS_RESET ? OUT_NEEDS_RESET : OUT_NOTHING;
}

/* Run one ring case on a freshly started disk 0; its outcome bit, or 0 on a setup failure. */
static unsigned int hostile_ring_case(struct hostile *h, const struct hostile_case *c,
                                      bool *skipped)
{
	struct vring_used_elem e;
	const char *why;
	enum vq_wait w;

	if (virtio_start(h->d, h->vq, 0, HOSTILE_QSIZE, VIRTIO_FEATURE(VIRTIO_F_INDIRECT_DESC),
	                 &why) < 0) {
		printf("probe: virtio-hostile: disk 0 does not start: %s\n", why);
		return 0;
	}
	h_status = 0xff;
	if (c->build(h) < 0) {
		*skipped = true;
		return 0;
	}
	vq_notify(h->vq);
	w = vq_wait(h->d, h->vq, &e, HOSTILE_TIMEOUT_US);
	if (w == VQ_NEEDS_RESET)
		return OUT_NEEDS_RESET;
	if (w == VQ_TIMEOUT)
		return virtio_status(h->d) & VIRTIO_S_NEEDS_RESET ? OUT_NEEDS_RESET : OUT_NOTHING;
	switch (h_status) {
	case VIRTIO_BLK_S_OK:
		return OUT_OK;
	case VIRTIO_BLK_S_IOERR:
		return OUT_IOERR;
	case VIRTIO_BLK_S_UNSUPP:
		return OUT_UNSUPP;
	case 0xff:
		return OUT_UNTOUCHED;
	default:
		return OUT_OK;
	}
}

/* The RAM range below 4 GiB that holds the probe image: its end. */
static uint64_t ram_end_low(void)
{
	for (unsigned int i = 0; i < boot.nr_ram; i++)
		if (boot.ram[i].base <= (uintptr_t)__image_start &&
		    (uintptr_t)__image_start < boot.ram[i].end)
			return boot.ram[i].end;
	return 0;
}

int test_virtio_hostile(void)
{
	struct vdev d0, d1;
	struct vq vq0, vq1;
	struct hostile h = {&d0, &vq0, ram_end_low()};
	unsigned int passed = 0, failed = 0, skipped = 0, needs_reset = 0, request_failed = 0;
	unsigned int nr_seen = 0;
	char msg[160];
	const char *why;

	if (virtio_find(VIRTIO_ID_BLK, 0, &d0, &why) < 0)
		return probe_fail("disk 0: %s", why);
	if (virtio_find(VIRTIO_ID_BLK, 1, &d1, &why) < 0)
		return probe_fail("disk 1 (give two --disk): %s", why);
	if (!h.ram_end)
		return probe_fail("no RAM range around the probe in the memory map");
	if (virtio_start(&d1, &vq1, 1, QSIZE, 0, &why) < 0)
		return probe_fail("disk 1 does not start: %s", why);
	if (virtio_start(&d0, &vq0, 0, HOSTILE_QSIZE, 0, &why) < 0)
		return probe_fail("disk 0 does not start: %s", why);
	if (blk_roundtrip(&d0, &vq0, SECTOR_PATTERN, 0, msg, sizeof(msg)) < 0 ||
	    blk_roundtrip(&d1, &vq1, SECTOR_PATTERN, 0, msg, sizeof(msg)) < 0)
		return probe_fail("before any bad request: %s", msg);

	for (size_t i = 0; i < ARRAY_SIZE(hostile_cases); i++) {
		const struct hostile_case *c = &hostile_cases[i];
		bool skip = false, ok;
		uint64_t settle_us;
		unsigned int out;
		const char *after = "";

		out = c->build ? hostile_ring_case(&h, c, &skip) : hostile_queue_case(&h, c);
		if (skip) {
			skipped++;
			printf("probe: virtio-hostile: case %zu skip: %s (needs more RAM)\n", i,
			       c->name);
			continue;
		}
		ok = out & c->allowed;
		needs_reset += out == OUT_NEEDS_RESET;
		/*
		 * Whether disk 0 asked for a reset by now, once it settled: a case
		 * may end its request and break the ring afterwards (DMA onto the
		 * ring). The integration test matches this with nestvm's warnings.
		 */
		settle_us = virtio_now_us() + SETTLE_US;
		while (virtio_now_us() < settle_us)
			cpu_relax();
		nr_seen += !!(virtio_status(&d0) & VIRTIO_S_NEEDS_RESET);
		request_failed += out == OUT_IOERR || out == OUT_UNTOUCHED;
		/* Disk 1 goes on, whatever disk 0 did. */
		if (blk_roundtrip(&d1, &vq1, SECTOR_PATTERN + 8 * (i + 1), (uint8_t)i, msg,
		                  sizeof(msg)) < 0) {
			ok = false;
			after = "; disk 1 broke: ";
		}
		/* Disk 0 works again after a reset. */
		else if (virtio_start(&d0, &vq0, 0, HOSTILE_QSIZE, 0, &why) < 0) {
			ok = false;
			format(msg, sizeof(msg), "%s (status 0x%x)", why, virtio_status(&d0));
			after = "; disk 0 does not restart: ";
		} else if (blk_roundtrip(&d0, &vq0, SECTOR_PATTERN, (uint8_t)i, msg, sizeof(msg)) <
		           0) {
			ok = false;
			after = "; disk 0 broken after the reset: ";
		} else {
			msg[0] = '\0';
		}
		printf("probe: virtio-hostile: case %zu %s: %s -> %s%s%s\n", i, ok ? "ok" : "FAIL",
		       c->name, outcome_name(out), after, after[0] ? msg : "");
		if (ok)
			passed++;
		else
			failed++;
	}
	virtio_reset(&d0);
	virtio_reset(&d1);
	printf("probe: virtio-hostile: cases=%u passed=%u failed=%u skipped=%u needs_reset=%u "
	       "request_failed=%u needs_reset_seen=%u\n",
	       passed + failed + skipped, passed, failed, skipped, needs_reset, request_failed,
	       nr_seen);
	if (failed)
		return probe_fail("%u of %u hostile cases misbehaved", failed, passed + failed);
	return probe_pass(
	    "%u hostile cases: %u needs-reset, %u failed requests, %u skipped; disk 1 "
	    "kept working, disk 0 recovered after each reset",
	    passed, needs_reset, request_failed, skipped);
}
