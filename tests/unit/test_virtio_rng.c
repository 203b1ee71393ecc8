/* SPDX-License-Identifier: MIT */
/*
 * Unit tests: virtio-rng through the virtio PCI transport (no KVM); save and
 * restore into a new device: a request made available while quiesced is
 * served once by the restored device, a device waiting for a reset stays so.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "devices/virtio/rng.h"
#include "virtio_test_driver.h"

struct fixture {
	struct virtio_rng *rng;
	struct vd *d;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(virtio_rng_create(&f->rng), 0);
	f->d = vd_create(virtio_rng_vdev(f->rng), true);
	vd_bring_up(f->d, VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX), 1, VIRTIO_RNG_QUEUE_SIZE);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	vd_destroy(f->d);
	virtio_rng_destroy(f->rng);
	free(f);
	return 0;
}

static void test_identity(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(vd_cfg_read(f->d, PCI_CFG_DEVICE_ID, 2), 0x1044);
	assert_int_equal(vd_read(f->d, VIRTIO_PCI_COMMON_NUMQ, 2), 1);
}

static void test_fills_buffers(void **state)
{
	struct fixture *f = *state;
	struct vd *d = f->d;
	uint64_t a = vd_alloc(d, 64), b = vd_alloc(d, 64);
	struct vd_buf bufs[2] = {{a, 32, true}, {b, 64, true}};
	struct virtq_used_elem e;
	unsigned int zeros = 0;

	vd_submit(d, 0, bufs, 2);
	vd_kick(d, 0);
	assert_true(vd_wait_used(d, 0, &e, 2000));
	assert_int_equal(e.len, 96);
	for (int i = 0; i < 64; i++)
		zeros += ((uint8_t *)vd_gpa(d, b, 64))[i] == 0;
	assert_true(zeros < 8);
	assert_true(vd_wait_msi(d, 1, 2000) >= 1);
}

static void test_large_request_capped(void **state)
{
	struct fixture *f = *state;
	struct vd *d = f->d;
	struct vd_buf b = {vd_alloc(d, 1 << 20), 1 << 20, true};
	struct virtq_used_elem e;

	vd_submit(d, 0, &b, 1);
	vd_kick(d, 0);
	assert_true(vd_wait_used(d, 0, &e, 2000));
	assert_int_equal(e.len, VIRTIO_RNG_MAX_REQUEST);
}

static void test_readable_buffer_needs_reset(void **state)
{
	struct fixture *f = *state;
	struct vd *d = f->d;
	struct vd_buf b = {vd_alloc(d, 16), 16, false};

	vd_submit(d, 0, &b, 1);
	vd_kick(d, 0);
	for (int i = 0; i < 2000 && !(vd_status(d) & VIRTIO_STATUS_DEVICE_NEEDS_RESET); i++)
		usleep(1000);
	assert_true(vd_status(d) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
}

static struct vd *restore_into_new(struct fixture *f, struct vd_saved *s)
{
	vd_destroy(f->d);
	virtio_rng_destroy(f->rng);
	assert_int_equal(virtio_rng_create(&f->rng), 0);
	f->d = vd_create_at(virtio_rng_vdev(f->rng), true, 0, false);
	vd_load_guest(f->d, s);
	vd_restore(f->d, s);
	return f->d;
}

static void test_save_restore(void **state)
{
	struct fixture *f = *state;
	struct vd *d = f->d;
	struct vd_buf b = {vd_alloc(d, 64), 64, true};
	struct virtq_used_elem e;
	struct vd_saved s;
	uint16_t head;

	vd_submit(d, 0, &b, 1);
	vd_kick(d, 0);
	assert_true(vd_wait_used(d, 0, &e, 2000));
	assert_int_equal(virtio_pci_quiesce(d->vp), 0);
	memset(vd_gpa(d, b.gpa, 64), 0, 64);
	/* used_event (event idx): an interrupt once the used index passes 1. */
	d->q[0].avail->ring[VIRTIO_RNG_QUEUE_SIZE] = 1;
	head = vd_submit(d, 0, &b, 1);
	vd_kick(d, 0);
	vd_save(d, &s);
	d = restore_into_new(f, &s);
	assert_true(vd_wait_used(d, 0, &e, 2000));
	assert_int_equal(e.id, head);
	assert_int_equal(e.len, 64);
	assert_true(vd_wait_msi(d, 1, 2000) >= 1);
	usleep(50 * 1000);
	assert_int_equal(d->q[0].used->idx, 2); /* once */
	vd_submit(d, 0, &b, 1);
	vd_kick(d, 0);
	assert_true(vd_wait_used(d, 0, &e, 2000));
	vd_saved_release(&s);
}

static void test_save_restore_needs_reset(void **state)
{
	struct fixture *f = *state;
	struct vd *d = f->d;
	struct vd_buf bad = {vd_alloc(d, 16), 16, false}, good = {vd_alloc(d, 16), 16, true};
	struct virtq_used_elem e;
	struct vd_saved s;

	vd_submit(d, 0, &bad, 1);
	vd_kick(d, 0);
	for (int i = 0; i < 2000 && !(vd_status(d) & VIRTIO_STATUS_DEVICE_NEEDS_RESET); i++)
		usleep(1000);
	vd_save(d, &s);
	d = restore_into_new(f, &s);
	assert_true(vd_status(d) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	vd_submit(d, 0, &good, 1);
	vd_kick(d, 0);
	usleep(50 * 1000);
	assert_int_equal(d->q[0].used->idx, 0); /* still broken */
	vd_bring_up(d, VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX), 1, VIRTIO_RNG_QUEUE_SIZE);
	vd_submit(d, 0, &good, 1);
	vd_kick(d, 0);
	assert_true(vd_wait_used(d, 0, &e, 2000));
	vd_saved_release(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_identity, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_fills_buffers, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_large_request_capped, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_readable_buffer_needs_reset, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_save_restore, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_save_restore_needs_reset, setup, teardown),
	};

	return cmocka_run_group_tests_name("virtio_rng", tests, NULL, NULL);
}
