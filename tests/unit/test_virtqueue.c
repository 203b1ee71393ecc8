/* SPDX-License-Identifier: MIT */
/*
 * Unit tests: split virtqueues on synthetic rings in a guest memory of our
 * own (no KVM): well-formed chains, direct and indirect; every malformed
 * ring the device must refuse (loops, out-of-range indices and addresses,
 * overflowing lengths, oversized chains, bad indirect tables); notification
 * suppression with and without event idx; index wrap-around; iov helpers;
 * the saved state of a queue: round trip, its checks, its bytes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "devices/virtio/virtqueue.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MEM_SIZE (16ULL << 20)
#define DESC_GPA 0x10000ULL
#define AVAIL_GPA 0x20000ULL
#define USED_GPA 0x30000ULL
#define TABLE_GPA 0x40000ULL /* indirect tables */
#define BUF_GPA 0x100000ULL
#define QSIZE 8

struct fixture {
	struct guest_mem mem;
	struct virtq vq;
	struct iovec iov[64];
	struct virtq_req req;
	uint16_t avail_idx;
};

static void *gpa(struct fixture *f, uint64_t addr, uint64_t len)
{
	void *p = guest_mem_ptr(&f->mem, addr, len);

	assert_non_null(p);
	return p;
}

static struct virtq_desc *desc(struct fixture *f, unsigned int i)
{
	return (struct virtq_desc *)gpa(f, DESC_GPA, VIRTQ_DESC_SIZE(QSIZE)) + i;
}

static struct virtq_avail *avail(struct fixture *f)
{
	return gpa(f, AVAIL_GPA, VIRTQ_AVAIL_SIZE(QSIZE));
}

static struct virtq_used *used(struct fixture *f)
{
	return gpa(f, USED_GPA, VIRTQ_USED_SIZE(QSIZE));
}

static void set_desc(struct virtq_desc *d, uint64_t addr, uint32_t len, uint16_t flags,
                     uint16_t next)
{
	*d = (struct virtq_desc){.addr = addr, .len = len, .flags = flags, .next = next};
}

/* The driver makes chain @head available. */
static void offer(struct fixture *f, uint16_t head)
{
	avail(f)->ring[f->avail_idx % QSIZE] = head;
	f->avail_idx++;
	avail(f)->idx = f->avail_idx;
}

static int setup_features(void **state, bool event_idx, bool indirect)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(guest_mem_init(&f->mem, MEM_SIZE, 0), 0);
	memset(gpa(f, 0, 0x200000), 0, 0x200000);
	virtq_init(&f->vq, QSIZE);
	f->vq.desc_gpa = DESC_GPA;
	f->vq.avail_gpa = AVAIL_GPA;
	f->vq.used_gpa = USED_GPA;
	assert_int_equal(virtq_start(&f->vq, &f->mem, event_idx, indirect), 0);
	f->req.iov = f->iov;
	f->req.cap = 64;
	*state = f;
	return 0;
}

static int setup(void **state)
{
	return setup_features(state, false, true);
}

static int setup_event_idx(void **state)
{
	return setup_features(state, true, true);
}

static int setup_no_indirect(void **state)
{
	return setup_features(state, false, false);
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	guest_mem_destroy(&f->mem);
	free(f);
	return 0;
}

static void test_empty(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(virtq_pop(&f->vq, &f->req), 0);
	assert_false(virtq_has_avail(&f->vq));
}

static void test_simple_chain(void **state)
{
	struct fixture *f = *state;

	set_desc(desc(f, 0), BUF_GPA, 16, VIRTQ_DESC_F_NEXT, 3);
	set_desc(desc(f, 3), BUF_GPA + 0x1000, 100, VIRTQ_DESC_F_NEXT, 5);
	set_desc(desc(f, 5), BUF_GPA + 0x2000, 1, VIRTQ_DESC_F_WRITE, 0);
	offer(f, 0);
	assert_true(virtq_has_avail(&f->vq));
	assert_int_equal(virtq_pop(&f->vq, &f->req), 1);
	assert_int_equal(f->req.head, 0);
	assert_int_equal(f->req.nr_out, 2);
	assert_int_equal(f->req.nr_in, 1);
	assert_int_equal(f->req.out_len, 116);
	assert_int_equal(f->req.in_len, 1);
	assert_ptr_equal(f->iov[0].iov_base, gpa(f, BUF_GPA, 16));
	assert_int_equal(f->iov[1].iov_len, 100);
	assert_ptr_equal(f->iov[2].iov_base, gpa(f, BUF_GPA + 0x2000, 1));
	assert_int_equal(virtq_pop(&f->vq, &f->req), 0);

	virtq_push(&f->vq, 0, 1);
	assert_int_equal(used(f)->idx, 1);
	assert_int_equal(used(f)->ring[0].id, 0);
	assert_int_equal(used(f)->ring[0].len, 1);
}

static void test_zero_length_buffers_skipped(void **state)
{
	struct fixture *f = *state;

	set_desc(desc(f, 0), BUF_GPA, 0, VIRTQ_DESC_F_NEXT, 1);
	set_desc(desc(f, 1), BUF_GPA, 8, VIRTQ_DESC_F_NEXT, 2);
	set_desc(desc(f, 2), 0xdeadbeef000ULL, 0, VIRTQ_DESC_F_WRITE, 0);
	offer(f, 0);
	assert_int_equal(virtq_pop(&f->vq, &f->req), 1);
	assert_int_equal(f->req.nr_out, 1);
	assert_int_equal(f->req.nr_in, 0);
}

static void expect_broken(struct fixture *f)
{
	assert_int_equal(virtq_pop(&f->vq, &f->req), -EIO);
	assert_true(f->vq.broken);
	/* A broken queue pops nothing more and asks for no notifications. */
	assert_int_equal(virtq_pop(&f->vq, &f->req), 0);
	assert_false(virtq_enable_notify(&f->vq));
}

static void test_loop(void **state)
{
	struct fixture *f = *state;

	set_desc(desc(f, 0), BUF_GPA, 8, VIRTQ_DESC_F_NEXT, 1);
	set_desc(desc(f, 1), BUF_GPA, 8, VIRTQ_DESC_F_NEXT, 0);
	offer(f, 0);
	expect_broken(f);
}

static void test_self_loop(void **state)
{
	struct fixture *f = *state;

	set_desc(desc(f, 2), BUF_GPA, 8, VIRTQ_DESC_F_NEXT, 2);
	offer(f, 2);
	expect_broken(f);
}

static void test_head_out_of_range(void **state)
{
	struct fixture *f = *state;

	offer(f, QSIZE);
	expect_broken(f);
}

static void test_next_out_of_range(void **state)
{
	struct fixture *f = *state;

	set_desc(desc(f, 0), BUF_GPA, 8, VIRTQ_DESC_F_NEXT, 0xffff);
	offer(f, 0);
	expect_broken(f);
}

static void test_avail_idx_runs_ahead(void **state)
{
	struct fixture *f = *state;

	set_desc(desc(f, 0), BUF_GPA, 8, 0, 0);
	avail(f)->idx = QSIZE + 1;
	expect_broken(f);
}

static void test_buffer_out_of_ram(void **state)
{
	struct fixture *f = *state;

	set_desc(desc(f, 0), MEM_SIZE - 4, 8, 0, 0);
	offer(f, 0);
	expect_broken(f);
}

static void test_buffer_in_mmio_hole(void **state)
{
	struct fixture *f = *state;

	set_desc(desc(f, 0), 0xfee00000ULL, 4, VIRTQ_DESC_F_WRITE, 0);
	offer(f, 0);
	expect_broken(f);
}

static void test_address_wraps(void **state)
{
	struct fixture *f = *state;

	set_desc(desc(f, 0), UINT64_MAX - 7, 16, 0, 0);
	offer(f, 0);
	expect_broken(f);
}

static void test_readable_after_writable(void **state)
{
	struct fixture *f = *state;

	set_desc(desc(f, 0), BUF_GPA, 8, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
	set_desc(desc(f, 1), BUF_GPA, 8, 0, 0);
	offer(f, 0);
	expect_broken(f);
}

static void test_chain_longer_than_cap(void **state)
{
	struct fixture *f = *state;

	f->req.cap = 2;
	for (unsigned int i = 0; i < 3; i++)
		set_desc(desc(f, i), BUF_GPA, 8, i < 2 ? VIRTQ_DESC_F_NEXT : 0, (uint16_t)(i + 1));
	offer(f, 0);
	expect_broken(f);
}

static void test_full_length_chain(void **state)
{
	struct fixture *f = *state;

	/* A chain of exactly Queue Size descriptors is legal. */
	for (unsigned int i = 0; i < QSIZE; i++)
		set_desc(desc(f, i), BUF_GPA + i * 16, 16, i < QSIZE - 1 ? VIRTQ_DESC_F_NEXT : 0,
		         (uint16_t)(i + 1));
	offer(f, 0);
	assert_int_equal(virtq_pop(&f->vq, &f->req), 1);
	assert_int_equal(f->req.nr_out, QSIZE);
	assert_int_equal(f->req.out_len, QSIZE * 16);
}

static struct virtq_desc *table(struct fixture *f, unsigned int i)
{
	return (struct virtq_desc *)gpa(f, TABLE_GPA, 0x1000) + i;
}

static void test_indirect(void **state)
{
	struct fixture *f = *state;

	set_desc(table(f, 0), BUF_GPA, 16, VIRTQ_DESC_F_NEXT, 2);
	set_desc(table(f, 2), BUF_GPA + 0x100, 512, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
	set_desc(table(f, 1), BUF_GPA + 0x400, 1, VIRTQ_DESC_F_WRITE, 0);
	/* A direct readable buffer first, then the table. */
	set_desc(desc(f, 4), BUF_GPA + 0x800, 4, VIRTQ_DESC_F_NEXT, 6);
	set_desc(desc(f, 6), TABLE_GPA, 3 * 16, VIRTQ_DESC_F_INDIRECT, 0);
	offer(f, 4);
	assert_int_equal(virtq_pop(&f->vq, &f->req), 1);
	assert_int_equal(f->req.head, 4);
	assert_int_equal(f->req.nr_out, 2);
	assert_int_equal(f->req.nr_in, 2);
	assert_int_equal(f->req.out_len, 20);
	assert_int_equal(f->req.in_len, 513);
}

static void test_indirect_unaligned_table(void **state)
{
	struct fixture *f = *state;
	struct virtq_desc d = {.addr = BUF_GPA, .len = 8, .flags = 0};

	memcpy((uint8_t *)gpa(f, TABLE_GPA + 3, 16), &d, sizeof(d));
	set_desc(desc(f, 0), TABLE_GPA + 3, 16, VIRTQ_DESC_F_INDIRECT, 0);
	offer(f, 0);
	assert_int_equal(virtq_pop(&f->vq, &f->req), 1);
	assert_int_equal(f->req.out_len, 8);
}

static void test_indirect_not_negotiated(void **state)
{
	struct fixture *f = *state;

	set_desc(table(f, 0), BUF_GPA, 16, 0, 0);
	set_desc(desc(f, 0), TABLE_GPA, 16, VIRTQ_DESC_F_INDIRECT, 0);
	offer(f, 0);
	expect_broken(f);
}

static void test_indirect_with_next(void **state)
{
	struct fixture *f = *state;

	set_desc(table(f, 0), BUF_GPA, 16, 0, 0);
	set_desc(desc(f, 0), TABLE_GPA, 16, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, 1);
	set_desc(desc(f, 1), BUF_GPA, 16, 0, 0);
	offer(f, 0);
	expect_broken(f);
}

static void test_indirect_nested(void **state)
{
	struct fixture *f = *state;

	set_desc(table(f, 0), TABLE_GPA + 0x100, 16, VIRTQ_DESC_F_INDIRECT, 0);
	set_desc(table(f, 16), BUF_GPA, 16, 0, 0);
	set_desc(desc(f, 0), TABLE_GPA, 16, VIRTQ_DESC_F_INDIRECT, 0);
	offer(f, 0);
	expect_broken(f);
}

static void test_indirect_bad_length(void **state)
{
	struct fixture *f = *state;

	set_desc(table(f, 0), BUF_GPA, 16, 0, 0);
	set_desc(desc(f, 0), TABLE_GPA, 17, VIRTQ_DESC_F_INDIRECT, 0);
	offer(f, 0);
	expect_broken(f);
}

static void test_indirect_empty(void **state)
{
	struct fixture *f = *state;

	set_desc(desc(f, 0), TABLE_GPA, 0, VIRTQ_DESC_F_INDIRECT, 0);
	offer(f, 0);
	expect_broken(f);
}

static void test_indirect_too_long(void **state)
{
	struct fixture *f = *state;

	/* More entries than the Queue Size, even if the chain is short. */
	set_desc(table(f, 0), BUF_GPA, 16, 0, 0);
	set_desc(desc(f, 0), TABLE_GPA, (QSIZE + 1) * 16, VIRTQ_DESC_F_INDIRECT, 0);
	offer(f, 0);
	expect_broken(f);
}

static void test_indirect_loop(void **state)
{
	struct fixture *f = *state;

	set_desc(table(f, 0), BUF_GPA, 16, VIRTQ_DESC_F_NEXT, 1);
	set_desc(table(f, 1), BUF_GPA, 16, VIRTQ_DESC_F_NEXT, 0);
	set_desc(desc(f, 0), TABLE_GPA, 2 * 16, VIRTQ_DESC_F_INDIRECT, 0);
	offer(f, 0);
	expect_broken(f);
}

static void test_indirect_next_out_of_table(void **state)
{
	struct fixture *f = *state;

	set_desc(table(f, 0), BUF_GPA, 16, VIRTQ_DESC_F_NEXT, 2);
	set_desc(table(f, 2), BUF_GPA, 16, 0, 0); /* outside the 2-entry table */
	set_desc(desc(f, 0), TABLE_GPA, 2 * 16, VIRTQ_DESC_F_INDIRECT, 0);
	offer(f, 0);
	expect_broken(f);
}

static void test_indirect_table_out_of_ram(void **state)
{
	struct fixture *f = *state;

	set_desc(desc(f, 0), MEM_SIZE - 16, 32, VIRTQ_DESC_F_INDIRECT, 0);
	offer(f, 0);
	expect_broken(f);
}

static void test_indirect_budget_shared(void **state)
{
	struct fixture *f = *state;

	/* QSIZE - 1 direct buffers, then a table of 2: QSIZE + 1 buffers in all. */
	for (unsigned int i = 0; i < QSIZE - 1; i++)
		set_desc(desc(f, i), BUF_GPA, 16, VIRTQ_DESC_F_NEXT, (uint16_t)(i + 1));
	set_desc(desc(f, QSIZE - 1), TABLE_GPA, 2 * 16, VIRTQ_DESC_F_INDIRECT, 0);
	set_desc(table(f, 0), BUF_GPA, 16, VIRTQ_DESC_F_NEXT, 1);
	set_desc(table(f, 1), BUF_GPA, 16, 0, 0);
	offer(f, 0);
	expect_broken(f);
}

static void test_start_checks(void **state)
{
	struct fixture *f = *state;
	struct virtq vq;

	virtq_init(&vq, 256);
	vq.desc_gpa = DESC_GPA;
	vq.avail_gpa = AVAIL_GPA;
	vq.used_gpa = USED_GPA;
	vq.size = 100; /* not a power of two */
	assert_int_equal(virtq_start(&vq, &f->mem, false, false), -EINVAL);
	vq.size = 512; /* more than offered */
	assert_int_equal(virtq_start(&vq, &f->mem, false, false), -EINVAL);
	vq.size = 0;
	assert_int_equal(virtq_start(&vq, &f->mem, false, false), -EINVAL);
	vq.size = 256;
	vq.desc_gpa = DESC_GPA + 8; /* descriptors are 16-byte aligned */
	assert_int_equal(virtq_start(&vq, &f->mem, false, false), -EINVAL);
	vq.desc_gpa = DESC_GPA;
	vq.avail_gpa = AVAIL_GPA + 1;
	assert_int_equal(virtq_start(&vq, &f->mem, false, false), -EINVAL);
	vq.avail_gpa = AVAIL_GPA;
	vq.used_gpa = USED_GPA + 2;
	assert_int_equal(virtq_start(&vq, &f->mem, false, false), -EINVAL);
	vq.used_gpa = MEM_SIZE - 8; /* the used ring runs past RAM */
	assert_int_equal(virtq_start(&vq, &f->mem, false, false), -EINVAL);
	vq.used_gpa = UINT64_MAX - 3;
	assert_int_equal(virtq_start(&vq, &f->mem, false, false), -EINVAL);
	assert_false(vq.started);
	assert_int_equal(virtq_pop(&vq, &f->req), 0);
	vq.used_gpa = USED_GPA;
	assert_int_equal(virtq_start(&vq, &f->mem, false, false), 0);
	assert_true(vq.started);
	virtq_reset(&vq);
	assert_false(vq.started);
	assert_int_equal(vq.size, 256);
	assert_int_equal(vq.desc_gpa, 0);
}

static void test_no_interrupt_flag(void **state)
{
	struct fixture *f = *state;

	set_desc(desc(f, 0), BUF_GPA, 8, VIRTQ_DESC_F_WRITE, 0);
	offer(f, 0);
	assert_int_equal(virtq_pop(&f->vq, &f->req), 1);
	virtq_push(&f->vq, 0, 8);
	assert_true(virtq_should_notify(&f->vq));
	avail(f)->flags = VIRTQ_AVAIL_F_NO_INTERRUPT;
	assert_false(virtq_should_notify(&f->vq));

	virtq_disable_notify(&f->vq);
	assert_int_equal(used(f)->flags, VIRTQ_USED_F_NO_NOTIFY);
	assert_false(virtq_enable_notify(&f->vq));
	assert_int_equal(used(f)->flags, 0);
	offer(f, 0);
	assert_true(virtq_enable_notify(&f->vq));
}

static void test_event_idx(void **state)
{
	struct fixture *f = *state;
	uint16_t *used_event = &avail(f)->ring[QSIZE];
	uint16_t *avail_event = (uint16_t *)&used(f)->ring[QSIZE];

	set_desc(desc(f, 0), BUF_GPA, 8, VIRTQ_DESC_F_WRITE, 0);
	set_desc(desc(f, 1), BUF_GPA, 8, VIRTQ_DESC_F_WRITE, 0);
	set_desc(desc(f, 2), BUF_GPA, 8, VIRTQ_DESC_F_WRITE, 0);
	offer(f, 0);
	offer(f, 1);
	offer(f, 2);
	for (int i = 0; i < 3; i++)
		assert_int_equal(virtq_pop(&f->vq, &f->req), 1);
	/* The driver wants an interrupt once used idx passes 1 (i.e. reaches 2). */
	*used_event = 1;
	virtq_push(&f->vq, 0, 8);
	assert_true(virtq_should_notify(&f->vq)); /* the first one always fires */
	virtq_push(&f->vq, 1, 8);
	assert_true(virtq_should_notify(&f->vq)); /* idx 1 -> 2 crosses used_event 1 */
	virtq_push(&f->vq, 2, 8);
	assert_false(virtq_should_notify(&f->vq)); /* 2 -> 3 does not */
	/* AVAIL_F_NO_INTERRUPT is ignored with event idx. */
	avail(f)->flags = VIRTQ_AVAIL_F_NO_INTERRUPT;
	*used_event = 3;
	offer(f, 0);
	assert_int_equal(virtq_pop(&f->vq, &f->req), 1);
	virtq_push(&f->vq, 0, 8);
	assert_true(virtq_should_notify(&f->vq));

	/* enable_notify publishes avail_event = the next slot the device will read. */
	assert_false(virtq_enable_notify(&f->vq));
	assert_int_equal(*avail_event, 4);
	virtq_disable_notify(&f->vq); /* no-op with event idx */
	assert_int_equal(used(f)->flags, 0);
}

static void test_index_wraparound(void **state)
{
	struct fixture *f = *state;

	set_desc(desc(f, 0), BUF_GPA, 8, VIRTQ_DESC_F_WRITE, 0);
	for (unsigned int i = 0; i < 70000; i++) {
		offer(f, 0);
		assert_int_equal(virtq_pop(&f->vq, &f->req), 1);
		virtq_push(&f->vq, 0, 8);
	}
	assert_int_equal(used(f)->idx, (uint16_t)70000);
	assert_int_equal(virtq_pop(&f->vq, &f->req), 0);
}

static void test_iov_helpers(void **state)
{
	uint8_t a[4] = {1, 2, 3, 4}, b[3] = {5, 6, 7}, out[8] = {0};
	struct iovec iov[2] = {{a, sizeof(a)}, {b, sizeof(b)}}, sl[2];
	int n;

	(void)state;
	assert_int_equal(iov_length(iov, 2), 7);
	assert_int_equal(iov_to_buf(iov, 2, 2, out, 4), 4);
	assert_memory_equal(out, ((uint8_t[]){3, 4, 5, 6}), 4);
	assert_int_equal(iov_to_buf(iov, 2, 5, out, 8), 2);
	assert_int_equal(iov_to_buf(iov, 2, 9, out, 8), 0);
	assert_int_equal(iov_from_buf(iov, 2, 3, ((uint8_t[]){9, 9}), 2), 2);
	assert_int_equal(a[3], 9);
	assert_int_equal(b[0], 9);

	n = iov_slice(iov, 2, 1, 5, sl, 2);
	assert_int_equal(n, 2);
	assert_ptr_equal(sl[0].iov_base, a + 1);
	assert_int_equal(sl[0].iov_len, 3);
	assert_int_equal(sl[1].iov_len, 2);
	assert_int_equal(iov_slice(iov, 2, 1, 7, sl, 2), -1); /* past the end */
	assert_int_equal(iov_slice(iov, 2, 1, 5, sl, 1), -1); /* needs two entries */
	assert_int_equal(iov_slice(iov, 2, 4, 0, sl, 2), 0);
}

static void test_state_round_trip(void **state)
{
	struct fixture *f = *state;
	struct virtq_state st;
	struct virtq q2;
	char why[120];

	/* Two chains taken, one returned. */
	set_desc(desc(f, 0), BUF_GPA, 16, VIRTQ_DESC_F_WRITE, 0);
	set_desc(desc(f, 1), BUF_GPA + 16, 16, VIRTQ_DESC_F_WRITE, 0);
	offer(f, 0);
	offer(f, 1);
	assert_int_equal(virtq_pop(&f->vq, &f->req), 1);
	virtq_push(&f->vq, 0, 16);
	assert_true(virtq_should_notify(&f->vq));
	virtq_save(&f->vq, &st);
	assert_true(st.started);
	assert_int_equal(st.last_avail, 1);
	assert_int_equal(st.used_idx, 1);

	virtq_init(&q2, QSIZE);
	assert_int_equal(virtq_restore(&q2, &f->mem, &st, why, sizeof(why)), 0);
	assert_true(q2.started);
	assert_ptr_equal(q2.desc, f->vq.desc);
	assert_int_equal(q2.last_avail, 1);
	assert_int_equal(q2.used_idx, 1);
	assert_int_equal(q2.signalled_used, f->vq.signalled_used);
	assert_int_equal(q2.signalled_valid, f->vq.signalled_valid);
	/* The restored queue goes on where the saved one was: chain 1 next. */
	assert_int_equal(virtq_pop(&q2, &f->req), 1);
	assert_int_equal(f->req.head, 1);
	virtq_push(&q2, 1, 16);
	assert_int_equal(used(f)->idx, 2);
	/* A stopped queue keeps only what the driver wrote, even a size it cannot start with. */
	virtq_init(&q2, QSIZE);
	q2.size = QSIZE * 4;
	virtq_save(&q2, &st);
	virtq_init(&q2, QSIZE);
	assert_int_equal(virtq_restore(&q2, &f->mem, &st, why, sizeof(why)), 0);
	assert_int_equal(q2.size, QSIZE * 4);
	q2.size = 4;
	q2.desc_gpa = 0x1234;
	virtq_save(&q2, &st);
	virtq_init(&q2, QSIZE);
	assert_int_equal(virtq_restore(&q2, &f->mem, &st, why, sizeof(why)), 0);
	assert_false(q2.started);
	assert_int_equal(q2.size, 4);
	assert_int_equal(q2.desc_gpa, 0x1234);
}

/* @st refused with a reason, @vq left as it was. */
static void expect_refused(struct fixture *f, const struct virtq_state *st, const char *why_part)
{
	struct virtq before = f->vq;
	char why[120] = "";

	assert_int_equal(virtq_restore(&f->vq, &f->mem, st, why, sizeof(why)), -EINVAL);
	if (!strstr(why, why_part))
		fail_msg("'%s' does not say '%s'", why, why_part);
	assert_memory_equal(&before, &f->vq, sizeof(before));
}

static void test_state_checks(void **state)
{
	struct fixture *f = *state;
	struct virtq_state good, st;

	virtq_save(&f->vq, &good);
	st = good;
	st.size = QSIZE * 2;
	expect_refused(f, &st, "above");
	st = good;
	st.size = 6;
	expect_refused(f, &st, "not a valid queue");
	st = good;
	st.desc_gpa = DESC_GPA + 8; /* unaligned */
	expect_refused(f, &st, "not a valid queue");
	st = good;
	st.used_gpa = MEM_SIZE - 8; /* runs past the end of RAM */
	expect_refused(f, &st, "not a valid queue");
	st = good;
	st.last_avail = (uint16_t)(st.used_idx + QSIZE + 1);
	expect_refused(f, &st, "in flight");
	st = good;
	st.started = false; /* but with ring state */
	st.last_avail = 3;
	st.used_idx = 3;
	expect_refused(f, &st, "not enabled");
	st = good;
	st.started = false;
	st.event_idx = false;
	st.indirect = false;
	st.signalled_valid = false;
	st.signalled_used = 0;
	st.broken = true;
	expect_refused(f, &st, "not enabled");
	/* At most size chains in flight, wrapping included, is fine. */
	st = good;
	st.used_idx = 0xfffe;
	st.last_avail = (uint16_t)(0xfffe + QSIZE);
	{
		char why[120];

		assert_int_equal(virtq_restore(&f->vq, &f->mem, &st, why, sizeof(why)), 0);
	}
}

static void test_state_bytes(void **state)
{
	struct fixture *f = *state;
	struct virtq_state st, back;
	struct dev_state out = {0};
	struct dev_state_in in;

	virtq_save(&f->vq, &st);
	st.last_avail = 0x1234;
	st.used_idx = 0x1230;
	st.signalled_used = 0x1111;
	st.signalled_valid = true;
	virtq_state_put(&out, &st);
	assert_int_equal(out.error, 0);
	dsi_init(&in, out.buf, out.len);
	memset(&back, 0xa5, sizeof(back));
	virtq_state_get(&in, &back);
	assert_int_equal(dsi_finish(&in), 0);
	assert_int_equal(back.size, st.size);
	assert_int_equal(back.started, st.started);
	assert_int_equal(back.desc_gpa, st.desc_gpa);
	assert_int_equal(back.avail_gpa, st.avail_gpa);
	assert_int_equal(back.used_gpa, st.used_gpa);
	assert_int_equal(back.last_avail, 0x1234);
	assert_int_equal(back.used_idx, 0x1230);
	assert_int_equal(back.signalled_used, 0x1111);
	assert_true(back.signalled_valid);
	/* Cut short, or a flag that is not 0 or 1: the reader fails. */
	for (size_t len = 0; len < out.len; len++) {
		dsi_init(&in, out.buf, len);
		virtq_state_get(&in, &back);
		assert_true(in.bad);
	}
	out.buf[2] = 2; /* started */
	dsi_init(&in, out.buf, out.len);
	virtq_state_get(&in, &back);
	assert_true(in.bad);
	ds_release(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_empty, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_simple_chain, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_zero_length_buffers_skipped, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_loop, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_self_loop, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_head_out_of_range, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_next_out_of_range, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_avail_idx_runs_ahead, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_buffer_out_of_ram, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_buffer_in_mmio_hole, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_address_wraps, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_readable_after_writable, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_chain_longer_than_cap, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_full_length_chain, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_indirect, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_indirect_unaligned_table, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_indirect_not_negotiated, setup_no_indirect,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_indirect_with_next, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_indirect_nested, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_indirect_bad_length, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_indirect_empty, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_indirect_too_long, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_indirect_loop, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_indirect_next_out_of_table, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_indirect_table_out_of_ram, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_indirect_budget_shared, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_start_checks, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_no_interrupt_flag, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_event_idx, setup_event_idx, teardown),
	    cmocka_unit_test_setup_teardown(test_state_round_trip, setup_event_idx, teardown),
	    cmocka_unit_test_setup_teardown(test_state_checks, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_state_bytes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_index_wraparound, setup, teardown),
	    cmocka_unit_test(test_iov_helpers),
	};

	return cmocka_run_group_tests_name("virtqueue", tests, NULL, NULL);
}
