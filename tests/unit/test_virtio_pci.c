/* SPDX-License-Identifier: MIT */
/*
 * Unit tests: the virtio PCI transport with a dummy device (no KVM):
 * capabilities, BAR sizing, feature negotiation that refuses features not
 * offered, queue setup, notifications (MMIO and ioeventfd) reaching the
 * device's I/O thread, MSI-X delivery with masking and pending bits,
 * needs-reset, device reset, the PCI configuration access window.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "virtio_test_driver.h"

#define DUMMY_QUEUES 2
#define DUMMY_QSIZE 16
#define DUMMY_CONFIG_SIZE 8
#define DUMMY_FEATURE 3

struct dummy {
	struct virtio_device vdev;
	struct virtq vqs[DUMMY_QUEUES];
	uint8_t config[DUMMY_CONFIG_SIZE];
	unsigned int notified[DUMMY_QUEUES]; /* under the device lock */
	unsigned int resets;
	unsigned int activations;
	bool break_on_notify;
	struct iovec iov[DUMMY_QSIZE];
};

static void dummy_config_read(struct virtio_device *vdev, uint32_t off, void *data, uint32_t len)
{
	memcpy(data, container_of(vdev, struct dummy, vdev)->config + off, len);
}

static void dummy_config_write(struct virtio_device *vdev, uint32_t off, const void *data,
                               uint32_t len)
{
	memcpy(container_of(vdev, struct dummy, vdev)->config + off, data, len);
}

static int dummy_activate(struct virtio_device *vdev)
{
	container_of(vdev, struct dummy, vdev)->activations++;
	return 0;
}

/* Echo device: every chain is returned with its writable length used. */
static void dummy_queue_notify(struct virtio_device *vdev, unsigned int q)
{
	struct dummy *dm = container_of(vdev, struct dummy, vdev);
	struct virtq_req req = {.iov = dm->iov, .cap = DUMMY_QSIZE};
	bool pushed = false;
	int r;

	dm->notified[q]++;
	if (dm->break_on_notify) {
		virtio_device_set_needs_reset(vdev, "test: broken on purpose");
		return;
	}
	while ((r = virtq_pop(&vdev->vqs[q], &req)) > 0) {
		virtq_push(&vdev->vqs[q], req.head, (uint32_t)req.in_len);
		pushed = true;
	}
	if (r < 0)
		virtio_device_set_needs_reset(vdev, "test: malformed ring");
	if (pushed)
		virtio_device_notify_queue(vdev, q);
}

static void dummy_reset(struct virtio_device *vdev)
{
	container_of(vdev, struct dummy, vdev)->resets++;
}

static const struct virtio_device_ops dummy_ops = {
    .config_read = dummy_config_read,
    .config_write = dummy_config_write,
    .activate = dummy_activate,
    .queue_notify = dummy_queue_notify,
    .reset = dummy_reset,
};

struct fixture {
	struct dummy dm;
	struct vd *d;
};

static int setup_common(void **state, bool ioeventfd)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	for (unsigned int q = 0; q < DUMMY_QUEUES; q++)
		virtq_init(&f->dm.vqs[q], DUMMY_QSIZE);
	f->dm.vdev = (struct virtio_device){
	    .ops = &dummy_ops,
	    .name = "virtio-dummy",
	    .device_id = 42,
	    .class_code = 0xff0000,
	    .features = VIRTIO_BIT(DUMMY_FEATURE) | VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX),
	    .config_size = DUMMY_CONFIG_SIZE,
	    .nr_queues = DUMMY_QUEUES,
	    .vqs = f->dm.vqs,
	};
	memcpy(f->dm.config, "nestvm!", 8);
	f->d = vd_create(&f->dm.vdev, ioeventfd);
	*state = f;
	return 0;
}

static int setup(void **state)
{
	return setup_common(state, false);
}

static int setup_ioeventfd(void **state)
{
	return setup_common(state, true);
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	vd_destroy(f->d);
	free(f);
	return 0;
}

static unsigned int notified(struct fixture *f, unsigned int q)
{
	unsigned int n;

	virtio_device_lock(&f->dm.vdev);
	n = f->dm.notified[q];
	virtio_device_unlock(&f->dm.vdev);
	return n;
}

/* Find the vendor capability of cfg_type @type; 0 if none. */
static uint32_t find_vcap(struct vd *d, uint8_t type)
{
	uint32_t p = vd_cfg_read(d, PCI_CFG_CAPABILITY_LIST, 1);

	for (int n = 0; p && n < 48; n++, p = vd_cfg_read(d, p + 1, 1))
		if (vd_cfg_read(d, p, 1) == PCI_CAP_ID_VNDR && vd_cfg_read(d, p + 3, 1) == type)
			return p;
	return 0;
}

static void test_identity_and_caps(void **state)
{
	struct fixture *f = *state;
	struct vd *d = f->d;
	static const struct {
		uint8_t type;
		uint32_t offset, length;
	} want[] = {
	    {VIRTIO_PCI_CAP_COMMON_CFG, VIRTIO_PCI_COMMON_OFF, VIRTIO_PCI_COMMON_CFG_SIZE},
	    {VIRTIO_PCI_CAP_ISR_CFG, VIRTIO_PCI_ISR_OFF, 1},
	    {VIRTIO_PCI_CAP_DEVICE_CFG, VIRTIO_PCI_DEVICE_OFF, DUMMY_CONFIG_SIZE},
	    {VIRTIO_PCI_CAP_NOTIFY_CFG, VIRTIO_PCI_NOTIFY_OFF, DUMMY_QUEUES * 4},
	};
	uint32_t p;

	assert_int_equal(vd_cfg_read(d, PCI_CFG_VENDOR_ID, 2), VIRTIO_PCI_VENDOR_ID);
	assert_int_equal(vd_cfg_read(d, PCI_CFG_DEVICE_ID, 2), 0x1040 + 42);
	assert_int_equal(vd_cfg_read(d, PCI_CFG_REVISION_ID, 1), 1);
	assert_int_equal(vd_cfg_read(d, PCI_CFG_INTERRUPT_PIN, 1), 0);
	assert_true(vd_cfg_read(d, PCI_CFG_STATUS, 2) & PCI_STS_CAP_LIST);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		p = find_vcap(d, want[i].type);
		assert_true(p >= PCI_CFG_HEADER_END);
		assert_int_equal(vd_cfg_read(d, p + 4, 1), 0); /* BAR0 */
		assert_int_equal(vd_cfg_read(d, p + 8, 4), want[i].offset);
		assert_int_equal(vd_cfg_read(d, p + 12, 4), want[i].length);
	}
	p = find_vcap(d, VIRTIO_PCI_CAP_NOTIFY_CFG);
	assert_int_equal(vd_cfg_read(d, p + 2, 1), 20);
	assert_int_equal(vd_cfg_read(d, p + 16, 4), VIRTIO_PCI_NOTIFY_MULTIPLIER);
	assert_true(find_vcap(d, VIRTIO_PCI_CAP_PCI_CFG) != 0);

	/* MSI-X: one vector per queue plus config, table and PBA in BAR0. */
	for (p = vd_cfg_read(d, PCI_CFG_CAPABILITY_LIST, 1); p; p = vd_cfg_read(d, p + 1, 1))
		if (vd_cfg_read(d, p, 1) == PCI_CAP_ID_MSIX)
			break;
	assert_true(p != 0);
	assert_int_equal(vd_cfg_read(d, p + 2, 2) & PCI_MSIX_FLAGS_QSIZE, DUMMY_QUEUES);
	assert_int_equal(vd_cfg_read(d, p + 4, 4), VIRTIO_PCI_MSIX_TABLE_OFF);
	assert_int_equal(vd_cfg_read(d, p + 8, 4), VIRTIO_PCI_MSIX_PBA_OFF);
}

static void test_bar_sizing(void **state)
{
	struct fixture *f = *state;
	struct vd *d = f->d;

	assert_int_equal(vd_cfg_read(d, PCI_CFG_BAR0, 4), VD_BAR);
	vd_cfg_write(d, PCI_CFG_BAR0, 4, 0xffffffff);
	assert_int_equal(vd_cfg_read(d, PCI_CFG_BAR0, 4), (uint32_t) ~(VIRTIO_PCI_BAR_SIZE - 1));
	vd_cfg_write(d, PCI_CFG_BAR0, 4, VD_BAR);
	assert_int_equal(vd_read(d, VIRTIO_PCI_COMMON_NUMQ, 2), DUMMY_QUEUES);
	/* With memory decoding off, the BAR answers nothing. */
	vd_cfg_write(d, PCI_CFG_COMMAND, 2, 0);
	assert_int_equal(vd_read(d, VIRTIO_PCI_COMMON_NUMQ, 2), 0xffff);
}

static void test_features(void **state)
{
	struct fixture *f = *state;
	struct vd *d = f->d;
	uint64_t offered = vd_device_features(d);

	assert_int_equal(offered, VIRTIO_BIT(DUMMY_FEATURE) | VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX) |
	                              VIRTIO_BIT(VIRTIO_F_VERSION_1));
	/* A feature not offered: FEATURES_OK is refused. */
	assert_false(vd_negotiate(d, offered | VIRTIO_BIT(7)));
	assert_false(vd_negotiate(d, offered | VIRTIO_BIT(VIRTIO_F_RING_PACKED)));
	/* Without VERSION_1 (a legacy driver): refused. */
	assert_false(vd_negotiate(d, VIRTIO_BIT(DUMMY_FEATURE)));
	/* A subset: accepted, and acked holds exactly that. */
	assert_true(vd_negotiate(d, VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(DUMMY_FEATURE)));
	assert_int_equal(f->dm.vdev.acked,
	                 VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(DUMMY_FEATURE));
	/* After FEATURES_OK the driver's features are frozen. */
	vd_write_features(d, offered);
	assert_int_equal(f->dm.vdev.acked,
	                 VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(DUMMY_FEATURE));
	vd_write(d, VIRTIO_PCI_COMMON_GFSELECT, 4, 0);
	assert_int_equal(vd_read(d, VIRTIO_PCI_COMMON_GF, 4), VIRTIO_BIT(DUMMY_FEATURE));
	/* Selecting a feature word past the second reads zero. */
	vd_write(d, VIRTIO_PCI_COMMON_DFSELECT, 4, 7);
	assert_int_equal(vd_read(d, VIRTIO_PCI_COMMON_DF, 4), 0);
}

static void test_driver_ok_needs_features_ok(void **state)
{
	struct fixture *f = *state;
	struct vd *d = f->d;

	vd_set_status(d, 0);
	vd_set_status(d,
	              VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_DRIVER_OK);
	assert_int_equal(vd_status(d) & VIRTIO_STATUS_DRIVER_OK, 0);
	assert_int_equal(f->dm.activations, 0);
}

static void test_queue_setup(void **state)
{
	struct fixture *f = *state;
	struct vd *d = f->d;
	struct virtq *vq = &f->dm.vqs[1];

	assert_true(vd_negotiate(d, VIRTIO_BIT(VIRTIO_F_VERSION_1)));
	vd_write(d, VIRTIO_PCI_COMMON_Q_SELECT, 2, 1);
	assert_int_equal(vd_read(d, VIRTIO_PCI_COMMON_Q_SIZE, 2), DUMMY_QSIZE);
	assert_int_equal(vd_read(d, VIRTIO_PCI_COMMON_Q_NOFF, 2), 1);
	assert_int_equal(vd_read(d, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
	vd_setup_queue(d, 1, 8, 2);
	assert_true(vq->started);
	assert_int_equal(vq->size, 8);
	assert_int_equal(vd_read(d, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 1);
	assert_int_equal(vd_read(d, VIRTIO_PCI_COMMON_Q_MSIX, 2), 2);
	assert_int_equal(vd_read(d, VIRTIO_PCI_COMMON_Q_DESCLO, 4), VD_RING_GPA + 0x10000);
	/* An enabled queue's configuration cannot change under the device. */
	vd_write(d, VIRTIO_PCI_COMMON_Q_DESCLO, 4, 0x1000);
	vd_write(d, VIRTIO_PCI_COMMON_Q_SIZE, 2, 4);
	assert_int_equal(vq->desc_gpa, VD_RING_GPA + 0x10000);
	assert_int_equal(vq->size, 8);
	/* A 64-bit write sets both halves. */
	vd_write(d, VIRTIO_PCI_COMMON_Q_SELECT, 2, 0);
	vd_write(d, VIRTIO_PCI_COMMON_Q_DESCLO, 8, 0x123456789000ULL);
	assert_int_equal(f->dm.vqs[0].desc_gpa, 0x123456789000ULL);
	/* A queue that does not exist: size 0, writes ignored. */
	vd_write(d, VIRTIO_PCI_COMMON_Q_SELECT, 2, 9);
	assert_int_equal(vd_read(d, VIRTIO_PCI_COMMON_Q_SIZE, 2), 0);
	vd_write(d, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
	assert_int_equal(vd_read(d, VIRTIO_PCI_COMMON_Q_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
	/* Byte reads of the status and num_queues work too. */
	assert_int_equal(vd_read(d, VIRTIO_PCI_COMMON_NUMQ, 1), DUMMY_QUEUES);
	assert_int_equal(vd_read(d, VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_STATUS_FEATURES_OK,
	                 VIRTIO_STATUS_FEATURES_OK);
}

static void test_msix_vector_range(void **state)
{
	struct fixture *f = *state;
	struct vd *d = f->d;

	vd_write(d, VIRTIO_PCI_COMMON_MSIX, 2, DUMMY_QUEUES + 1); /* one past the last */
	assert_int_equal(vd_read(d, VIRTIO_PCI_COMMON_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
	vd_write(d, VIRTIO_PCI_COMMON_MSIX, 2, DUMMY_QUEUES);
	assert_int_equal(vd_read(d, VIRTIO_PCI_COMMON_MSIX, 2), DUMMY_QUEUES);
	vd_write(d, VIRTIO_PCI_COMMON_Q_SELECT, 2, 0);
	vd_write(d, VIRTIO_PCI_COMMON_Q_MSIX, 2, 0x1234);
	assert_int_equal(vd_read(d, VIRTIO_PCI_COMMON_Q_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
}

static void test_bad_queue_size_needs_reset(void **state)
{
	struct fixture *f = *state;
	struct vd *d = f->d;

	assert_true(vd_negotiate(d, VIRTIO_BIT(VIRTIO_F_VERSION_1)));
	vd_write(d, VIRTIO_PCI_COMMON_Q_SELECT, 2, 0);
	vd_write(d, VIRTIO_PCI_COMMON_Q_SIZE, 2, 12); /* not a power of two */
	vd_write(d, VIRTIO_PCI_COMMON_Q_DESCLO, 4, VD_RING_GPA);
	vd_write(d, VIRTIO_PCI_COMMON_Q_AVAILLO, 4, VD_RING_GPA + 0x8000);
	vd_write(d, VIRTIO_PCI_COMMON_Q_USEDLO, 4, VD_RING_GPA + 0xa000);
	vd_write(d, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
	assert_false(f->dm.vqs[0].started);
	assert_true(vd_status(d) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	/* The driver cannot clear NEEDS_RESET by writing the status... */
	vd_set_status(d, VIRTIO_STATUS_ACKNOWLEDGE);
	assert_true(vd_status(d) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	/* ... only by resetting. */
	vd_set_status(d, 0);
	assert_int_equal(vd_status(d), 0);
	assert_true(f->dm.resets >= 1);
}

static void test_ring_outside_ram_needs_reset(void **state)
{
	struct fixture *f = *state;
	struct vd *d = f->d;

	assert_true(vd_negotiate(d, VIRTIO_BIT(VIRTIO_F_VERSION_1)));
	vd_write(d, VIRTIO_PCI_COMMON_Q_SELECT, 2, 0);
	vd_write(d, VIRTIO_PCI_COMMON_Q_DESCLO, 4, 0xfee00000U);
	vd_write(d, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
	assert_false(f->dm.vqs[0].started);
	assert_true(vd_status(d) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
}

static void test_notify_and_msix(void **state)
{
	struct fixture *f = *state;
	struct vd *d = f->d;
	struct vd_buf b = {.gpa = vd_alloc(d, 64), .len = 64, .write = true};
	struct virtq_used_elem e;
	uint16_t head;

	vd_bring_up(d, 0, DUMMY_QUEUES, DUMMY_QSIZE);
	assert_int_equal(f->dm.activations, 1);
	head = vd_submit(d, 1, &b, 1);
	vd_kick(d, 1);
	assert_true(vd_wait_used(d, 1, &e, 2000));
	assert_int_equal(e.id, head);
	assert_int_equal(e.len, 64);
	assert_true(vd_wait_msi(d, 1, 2000) >= 1);
	pthread_mutex_lock(&d->lock);
	assert_int_equal(d->msi[d->nr_msi - 1].addr, 0xfee00000U | 2 << 12);
	assert_int_equal(d->msi[d->nr_msi - 1].data, 0x40 + 2);
	pthread_mutex_unlock(&d->lock);
	/* With MSI-X on, the ISR queue bit is not used. */
	assert_int_equal(vd_read(d, VIRTIO_PCI_ISR_OFF, 1), 0);
}

static void test_msix_mask_and_pending(void **state)
{
	struct fixture *f = *state;
	struct vd *d = f->d;
	struct vd_buf b = {.gpa = vd_alloc(d, 8), .len = 8, .write = true};
	struct virtq_used_elem e;
	uint32_t ctrl = VIRTIO_PCI_MSIX_TABLE_OFF + 1 * PCI_MSIX_ENTRY_SIZE + 12;
	unsigned int before;

	vd_bring_up(d, 0, DUMMY_QUEUES, DUMMY_QSIZE);
	vd_write(d, ctrl, 4, PCI_MSIX_ENTRY_CTRL_MASKBIT); /* mask queue 0's vector 1 */
	before = vd_msi_count(d);
	vd_submit(d, 0, &b, 1);
	vd_kick(d, 0);
	assert_true(vd_wait_used(d, 0, &e, 2000));
	usleep(20000);
	assert_int_equal(vd_msi_count(d), before);
	assert_int_equal(vd_read(d, VIRTIO_PCI_MSIX_PBA_OFF, 4), 1U << 1);
	/* Unmasking delivers the pending message and clears its bit. */
	vd_write(d, ctrl, 4, 0);
	assert_int_equal(vd_msi_count(d), before + 1);
	assert_int_equal(vd_read(d, VIRTIO_PCI_MSIX_PBA_OFF, 4), 0);
	/* The PBA is read-only. */
	vd_write(d, VIRTIO_PCI_MSIX_PBA_OFF, 4, 0xff);
	assert_int_equal(vd_read(d, VIRTIO_PCI_MSIX_PBA_OFF, 4), 0);
}

static void test_isr_without_msix(void **state)
{
	struct fixture *f = *state;
	struct vd *d = f->d;
	struct vd_buf b = {.gpa = vd_alloc(d, 8), .len = 8, .write = true};
	struct virtq_used_elem e;

	assert_true(vd_negotiate(d, VIRTIO_BIT(VIRTIO_F_VERSION_1)));
	vd_setup_queue(d, 0, DUMMY_QSIZE, VIRTIO_MSI_NO_VECTOR);
	vd_set_status(d, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
	                     VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
	vd_submit(d, 0, &b, 1);
	vd_kick(d, 0);
	assert_true(vd_wait_used(d, 0, &e, 2000));
	/* The push and the ISR update happen under the device lock, which vd_read takes. */
	assert_int_equal(vd_read(d, VIRTIO_PCI_ISR_OFF, 1), VIRTIO_PCI_ISR_QUEUE);
	assert_int_equal(vd_read(d, VIRTIO_PCI_ISR_OFF, 1), 0); /* read clears it */
	assert_int_equal(vd_msi_count(d), 0);
}

static void test_no_notify_before_driver_ok(void **state)
{
	struct fixture *f = *state;
	struct vd *d = f->d;
	struct vd_buf b = {.gpa = vd_alloc(d, 8), .len = 8, .write = true};
	struct virtq_used_elem e;

	assert_true(vd_negotiate(d, VIRTIO_BIT(VIRTIO_F_VERSION_1)));
	vd_setup_queue(d, 0, DUMMY_QSIZE, 1);
	vd_submit(d, 0, &b, 1);
	vd_kick(d, 0);
	usleep(20000);
	assert_int_equal(notified(f, 0), 0);
	/* DRIVER_OK looks at what was made available before it. */
	vd_set_status(d, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
	                     VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
	assert_true(vd_wait_used(d, 0, &e, 2000));
}

static void test_malformed_ring_needs_reset(void **state)
{
	struct fixture *f = *state;
	struct vd *d = f->d;
	struct vd_buf b = {.gpa = vd_alloc(d, 8), .len = 8, .write = true};
	unsigned int before;
	uint16_t head;

	vd_bring_up(d, 0, DUMMY_QUEUES, DUMMY_QSIZE);
	before = vd_msi_count(d);
	head = vd_submit(d, 0, &b, 1);
	/* A descriptor that loops on itself. */
	d->q[0].desc[head].flags = VIRTQ_DESC_F_NEXT;
	d->q[0].desc[head].next = head;
	vd_kick(d, 0);
	for (int i = 0; i < 2000 && !(vd_status(d) & VIRTIO_STATUS_DEVICE_NEEDS_RESET); i++)
		usleep(1000);
	assert_true(vd_status(d) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	/* The configuration-change interrupt (vector 0) was sent. */
	assert_true(vd_wait_msi(d, before + 1, 2000) >= before + 1);
	pthread_mutex_lock(&d->lock);
	assert_int_equal(d->msi[d->nr_msi - 1].data, 0x40);
	pthread_mutex_unlock(&d->lock);
	/* No queue is processed until the reset. */
	vd_kick(d, 1);
	usleep(20000);
	assert_int_equal(notified(f, 1), 0);
	/* After a reset the device works again. */
	vd_bring_up(d, 0, DUMMY_QUEUES, DUMMY_QSIZE);
	assert_int_equal(vd_status(d) & VIRTIO_STATUS_DEVICE_NEEDS_RESET, 0);
	d->q[0].next_desc = 0;
	d->q[0].avail_idx = 0;
	d->q[0].last_used = 0;
	vd_submit(d, 0, &b, 1);
	vd_kick(d, 0);
	{
		struct virtq_used_elem e;

		assert_true(vd_wait_used(d, 0, &e, 2000));
	}
}

static void test_reset_clears_state(void **state)
{
	struct fixture *f = *state;
	struct vd *d = f->d;

	vd_bring_up(d, 0, DUMMY_QUEUES, DUMMY_QSIZE);
	vd_set_status(d, 0);
	assert_int_equal(vd_status(d), 0);
	assert_false(f->dm.vqs[0].started);
	assert_int_equal(f->dm.vdev.acked, 0);
	vd_write(d, VIRTIO_PCI_COMMON_Q_SELECT, 2, 0);
	assert_int_equal(vd_read(d, VIRTIO_PCI_COMMON_Q_SIZE, 2), DUMMY_QSIZE);
	assert_int_equal(vd_read(d, VIRTIO_PCI_COMMON_Q_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
	assert_int_equal(vd_read(d, VIRTIO_PCI_COMMON_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
	assert_int_equal(vd_read(d, VIRTIO_PCI_COMMON_Q_DESCLO, 4), 0);
}

static void test_device_config(void **state)
{
	struct fixture *f = *state;
	struct vd *d = f->d;
	uint8_t gen = (uint8_t)vd_read(d, VIRTIO_PCI_COMMON_CFGGENERATION, 1);

	assert_int_equal(vd_read(d, VIRTIO_PCI_DEVICE_OFF, 4), 0x7473656e); /* "nest" */
	assert_int_equal(vd_read(d, VIRTIO_PCI_DEVICE_OFF + 6, 4), '!');    /* clipped at 8 */
	assert_int_equal(vd_read(d, VIRTIO_PCI_DEVICE_OFF + 8, 4), 0);
	vd_write(d, VIRTIO_PCI_DEVICE_OFF + 4, 2, 0x5858);
	assert_int_equal(f->dm.config[4], 'X');
	vd_write(d, VIRTIO_PCI_DEVICE_OFF + 100, 4, 0xffffffff); /* out of range: ignored */
	virtio_device_lock(&f->dm.vdev);
	virtio_device_config_changed(&f->dm.vdev);
	virtio_device_unlock(&f->dm.vdev);
	assert_int_equal((uint8_t)vd_read(d, VIRTIO_PCI_COMMON_CFGGENERATION, 1),
	                 (uint8_t)(gen + 1));
}

static void test_odd_accesses(void **state)
{
	struct fixture *f = *state;
	struct vd *d = f->d;

	/* Straddling two regions, past the BAR, unused regions: harmless. */
	assert_int_equal(vd_read(d, 0x0ffe, 4), 0);
	vd_write(d, 0x0ffe, 4, 0xffffffff);
	assert_int_equal(vd_read(d, 0x6000, 8), 0);
	vd_write(d, 0x7ff8, 8, ~0ULL);
	vd_write(d, VIRTIO_PCI_NOTIFY_OFF + 60 * 4, 2, 0); /* no such queue */
	vd_write(d, VIRTIO_PCI_MSIX_TABLE_OFF + 0x7f0, 4, 1);
	assert_int_equal(vd_read(d, VIRTIO_PCI_MSIX_TABLE_OFF + 0x7f0, 4), 0);
	/* A one-byte write into the middle of queue_desc merges. */
	vd_write(d, VIRTIO_PCI_COMMON_Q_SELECT, 2, 0);
	vd_write(d, VIRTIO_PCI_COMMON_Q_DESCLO, 4, 0x11223344);
	vd_write(d, VIRTIO_PCI_COMMON_Q_DESCLO + 1, 1, 0xaa);
	assert_int_equal(f->dm.vqs[0].desc_gpa, 0x1122aa44);
	/* num_queues is read-only. */
	vd_write(d, VIRTIO_PCI_COMMON_NUMQ, 2, 60);
	assert_int_equal(vd_read(d, VIRTIO_PCI_COMMON_NUMQ, 2), DUMMY_QUEUES);
}

static void test_pci_cfg_window(void **state)
{
	struct fixture *f = *state;
	struct vd *d = f->d;
	uint32_t cap = find_vcap(d, VIRTIO_PCI_CAP_PCI_CFG);

	assert_true(cap != 0);
	vd_cfg_write(d, cap + 4, 1, 0);                              /* bar */
	vd_cfg_write(d, cap + 8, 4, VIRTIO_PCI_COMMON_NUMQ);         /* offset */
	vd_cfg_write(d, cap + 12, 4, 2);                             /* length */
	assert_int_equal(vd_cfg_read(d, cap + 16, 2), DUMMY_QUEUES); /* pci_cfg_data */
	/* A write through the window: queue_select. */
	vd_cfg_write(d, cap + 8, 4, VIRTIO_PCI_COMMON_Q_SELECT);
	vd_cfg_write(d, cap + 16, 2, 1);
	assert_int_equal(vd_read(d, VIRTIO_PCI_COMMON_Q_SELECT, 2), 1);
	/* Bad lengths or BARs do nothing. */
	vd_cfg_write(d, cap + 12, 4, 3);
	vd_cfg_write(d, cap + 16, 4, 0);
	assert_int_equal(vd_read(d, VIRTIO_PCI_COMMON_Q_SELECT, 2), 1);
	vd_cfg_write(d, cap + 4, 1, 5);
	vd_cfg_write(d, cap + 12, 4, 2);
	vd_cfg_write(d, cap + 16, 2, 0);
	assert_int_equal(vd_read(d, VIRTIO_PCI_COMMON_Q_SELECT, 2), 1);
}

static void test_ioeventfd(void **state)
{
	struct fixture *f = *state;
	struct vd *d = f->d;
	struct vd_buf b = {.gpa = vd_alloc(d, 8), .len = 8, .write = true};
	struct virtq_used_elem e;

	/* Memory decoding on (vd_create): one ioeventfd per queue at its notify address. */
	assert_int_equal(d->nr_ioeventfd, DUMMY_QUEUES);
	for (unsigned int i = 0; i < d->nr_ioeventfd; i++)
		assert_true(d->ioeventfd[i].gpa == VD_BAR + VIRTIO_PCI_NOTIFY_OFF ||
		            d->ioeventfd[i].gpa == VD_BAR + VIRTIO_PCI_NOTIFY_OFF + 4);
	vd_bring_up(d, 0, DUMMY_QUEUES, DUMMY_QSIZE);
	vd_submit(d, 1, &b, 1);
	vd_kick(d, 1); /* through the eventfd */
	assert_true(vd_wait_used(d, 1, &e, 2000));
	/* Memory decoding off: unregistered; moved BAR: registered at the new place. */
	vd_cfg_write(d, PCI_CFG_COMMAND, 2, PCI_CMD_MASTER);
	assert_int_equal(d->nr_ioeventfd, 0);
	vd_cfg_write(d, PCI_CFG_BAR0, 4, VD_BAR + 0x100000);
	vd_cfg_write(d, PCI_CFG_COMMAND, 2, PCI_CMD_MASTER | PCI_CMD_MEMORY);
	assert_int_equal(d->nr_ioeventfd, DUMMY_QUEUES);
	for (unsigned int i = 0; i < d->nr_ioeventfd; i++)
		assert_true(d->ioeventfd[i].gpa >= VD_BAR + 0x100000 + VIRTIO_PCI_NOTIFY_OFF);
	vd_cfg_write(d, PCI_CFG_BAR0, 4, VD_BAR);
	assert_int_equal(d->nr_ioeventfd, DUMMY_QUEUES);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_identity_and_caps, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bar_sizing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_features, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_driver_ok_needs_features_ok, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_queue_setup, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_msix_vector_range, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_queue_size_needs_reset, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ring_outside_ram_needs_reset, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_notify_and_msix, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_msix_mask_and_pending, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_isr_without_msix, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_no_notify_before_driver_ok, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_malformed_ring_needs_reset, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reset_clears_state, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_device_config, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_odd_accesses, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pci_cfg_window, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ioeventfd, setup_ioeventfd, teardown),
	};

	return cmocka_run_group_tests_name("virtio_pci", tests, NULL, NULL);
}
