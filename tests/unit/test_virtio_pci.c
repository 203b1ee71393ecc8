/* SPDX-License-Identifier: MIT */
/*
 * Unit tests: the virtio PCI transport with a dummy device (no KVM):
 * capabilities, BAR sizing, feature negotiation that refuses features not
 * offered, queue setup, notifications (MMIO and ioeventfd) reaching the
 * device's I/O thread, MSI-X delivery with masking and pending bits,
 * needs-reset, device reset, the PCI configuration access window; the
 * lifecycle: quiesce parks the device and resume catches up, save and
 * restore into a new device (registers, MSI-X, queues, ioeventfds moved to
 * the restored BAR, nothing done before the guest runs), held chains taken
 * again exactly once, corrupt states refused with a reason, reset, and the
 * device list driving it all.
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
	/* Queue 0 in hold mode: chains are popped and kept, not returned. */
	bool hold;
	bool report_held;     /* ops->held tells the transport about them */
	unsigned int nr_held; /* under the device lock */
	unsigned int destroyed;
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
	if (dm->hold && q == 0) {
		while (virtq_pop(&vdev->vqs[q], &req) > 0)
			dm->nr_held++;
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
	struct dummy *dm = container_of(vdev, struct dummy, vdev);

	dm->resets++;
	dm->nr_held = 0;
}

static unsigned int dummy_held(struct virtio_device *vdev, unsigned int q)
{
	struct dummy *dm = container_of(vdev, struct dummy, vdev);

	return q == 0 && dm->report_held ? dm->nr_held : 0;
}

static void dummy_destroy(struct virtio_device *vdev)
{
	container_of(vdev, struct dummy, vdev)->destroyed++;
}

static const struct virtio_device_ops dummy_ops = {
    .config_read = dummy_config_read,
    .config_write = dummy_config_write,
    .activate = dummy_activate,
    .queue_notify = dummy_queue_notify,
    .reset = dummy_reset,
    .held = dummy_held,
    .destroy = dummy_destroy,
};

struct fixture {
	struct dummy dm;
	struct vd *d;
	struct dummy dm2; /* the device a state is restored into */
	struct vd *d2;
};

static void dummy_init(struct dummy *dm)
{
	memset(dm, 0, sizeof(*dm));
	for (unsigned int q = 0; q < DUMMY_QUEUES; q++)
		virtq_init(&dm->vqs[q], DUMMY_QSIZE);
	dm->vdev = (struct virtio_device){
	    .ops = &dummy_ops,
	    .name = "virtio-dummy",
	    .device_id = 42,
	    .class_code = 0xff0000,
	    .features = VIRTIO_BIT(DUMMY_FEATURE) | VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX),
	    .config_size = DUMMY_CONFIG_SIZE,
	    .nr_queues = DUMMY_QUEUES,
	    .vqs = dm->vqs,
	};
	memcpy(dm->config, "nestvm!", 8);
}

static int setup_common(void **state, bool ioeventfd)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	dummy_init(&f->dm);
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

	if (f->d)
		vd_destroy(f->d);
	if (f->d2)
		vd_destroy(f->d2);
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
	unsigned int before, n1;
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
	/*
	 * No queue is processed until the reset. Queue 1 may have been once
	 * already, by DRIVER_OK's look at every queue (vp_driver_ok()) when the
	 * device thread got to it before queue 0's kick: not since NEEDS_RESET.
	 */
	n1 = notified(f, 1);
	vd_kick(d, 1);
	usleep(20000);
	assert_int_equal(notified(f, 1), n1);
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

/* ---------------------------------------------------------------- lifecycle */

/* Offsets in a dummy's saved state (virtio_pci.h, "Lifecycle"): 3 vectors, 2 queues. */
#define NV (DUMMY_QUEUES + 1)
#define ST_DEVICE_ID 0
#define ST_STATUS 6
#define ST_CFGVEC 23
#define ST_CONFIG 29
#define ST_MSIX (ST_CONFIG + PCI_CFG_SPACE_SIZE)
#define ST_PBA (ST_MSIX + NV * PCI_MSIX_ENTRY_SIZE)
#define ST_QUEUE(q) (ST_PBA + 8 + 39 * (q))
#define STQ_SIZE 0
#define STQ_STARTED 2
#define STQ_DESC 6
#define STQ_LAST_AVAIL 31
#define STQ_VECTOR 37
#define ST_LEN ST_QUEUE(DUMMY_QUEUES)

static void put16(uint8_t *b, size_t off, uint16_t v)
{
	memcpy(b + off, &v, 2);
}

static void put64(uint8_t *b, size_t off, uint64_t v)
{
	memcpy(b + off, &v, 8);
}

/* A second dummy on its own transport, BAR0 unassigned and not decoding, guest stopped. */
static struct vd *second_device(struct fixture *f, bool ioeventfd)
{
	dummy_init(&f->dm2);
	f->d2 = vd_create_at(&f->dm2.vdev, ioeventfd, 0, false);
	vd_set_guest_stopped(f->d2, true);
	return f->d2;
}

static uint16_t used_idx(struct vd *d, unsigned int q)
{
	return __atomic_load_n(&d->q[q].used->idx, __ATOMIC_ACQUIRE);
}

static void test_quiesce_parks_resume_catches_up(void **state)
{
	struct fixture *f = *state;
	struct vd *d = f->d;
	struct vd_buf b = {.gpa = vd_alloc(d, 16), .len = 16, .write = true};
	struct virtq_used_elem e;
	unsigned int n;

	vd_bring_up(d, 0, DUMMY_QUEUES, DUMMY_QSIZE);
	assert_int_equal(virtio_pci_quiesce(d->vp), 0);
	n = notified(f, 1); /* DRIVER_OK's own look at the queues may be in */
	vd_submit(d, 1, &b, 1);
	vd_kick(d, 1);
	usleep(50 * 1000);
	assert_int_equal(notified(f, 1), n); /* parked: the kick waits */
	assert_int_equal(used_idx(d, 1), 0);
	assert_int_equal(vd_msi_count(d), 0);
	virtio_pci_resume(d->vp);
	assert_true(vd_wait_used(d, 1, &e, 2000));
	assert_int_equal(e.len, 16);
	/* Quiesce and resume again: still fine. */
	assert_int_equal(virtio_pci_quiesce(d->vp), 0);
	virtio_pci_resume(d->vp);
	vd_submit(d, 1, &b, 1);
	vd_kick(d, 1);
	assert_true(vd_wait_used(d, 1, &e, 2000));
}

static void test_save_restore(void **state)
{
	struct fixture *f = *state;
	struct vd *d = f->d, *d2;
	struct vd_buf b = {.gpa = vd_alloc(d, 32), .len = 32, .write = true};
	struct virtq_used_elem e;
	struct vd_saved s;
	uint16_t head;

	vd_bring_up(d, VIRTIO_BIT(DUMMY_FEATURE), DUMMY_QUEUES, 8);
	vd_cfg_write(d, PCI_CFG_INTERRUPT_LINE, 1, 11);
	/* Queue 1's vector masked: its interrupt stays pending. */
	vd_write(d, VIRTIO_PCI_MSIX_TABLE_OFF + 2 * PCI_MSIX_ENTRY_SIZE + 12, 4, 1);
	vd_submit(d, 1, &b, 1);
	vd_kick(d, 1);
	assert_true(vd_wait_used(d, 1, &e, 2000));
	usleep(10 * 1000);
	assert_int_equal(vd_read(d, VIRTIO_PCI_MSIX_PBA_OFF, 8), 1 << 2);
	vd_write(d, VIRTIO_PCI_COMMON_DFSELECT, 4, 1);
	vd_write(d, VIRTIO_PCI_COMMON_Q_SELECT, 2, 1);
	vd_save(d, &s);
	assert_int_equal(s.state.len, ST_LEN);

	d2 = second_device(f, true);
	assert_int_equal(d2->nr_ioeventfd, 0);
	vd_load_guest(d2, &s);
	vd_restore(d2, &s);
	/* The ioeventfds moved to the restored BAR0; nothing was sent. */
	assert_int_equal(d2->nr_ioeventfd, DUMMY_QUEUES);
	for (unsigned int i = 0; i < d2->nr_ioeventfd; i++)
		assert_true(d2->ioeventfd[i].gpa == VD_BAR + VIRTIO_PCI_NOTIFY_OFF ||
		            d2->ioeventfd[i].gpa == VD_BAR + VIRTIO_PCI_NOTIFY_OFF + 4);
	assert_int_equal(vd_msi_count(d2), 0);
	/* What the driver reads back is what it left. */
	assert_int_equal(vd_cfg_read(d2, PCI_CFG_BAR0, 4), VD_BAR);
	assert_int_equal(vd_cfg_read(d2, PCI_CFG_INTERRUPT_LINE, 1), 11);
	assert_int_equal(vd_status(d2), VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
	                                    VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
	assert_int_equal(f->dm2.vdev.acked,
	                 VIRTIO_BIT(DUMMY_FEATURE) | VIRTIO_BIT(VIRTIO_F_VERSION_1));
	assert_int_equal(vd_read(d2, VIRTIO_PCI_COMMON_DFSELECT, 4), 1);
	assert_int_equal(vd_read(d2, VIRTIO_PCI_COMMON_Q_SELECT, 2), 1);
	assert_int_equal(vd_read(d2, VIRTIO_PCI_COMMON_Q_SIZE, 2), 8);
	assert_int_equal(vd_read(d2, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 1);
	assert_int_equal(vd_read(d2, VIRTIO_PCI_COMMON_Q_MSIX, 2), 2);
	assert_int_equal(vd_read(d2, VIRTIO_PCI_COMMON_Q_DESCLO, 4), VD_RING_GPA + 0x10000);
	assert_int_equal(vd_read(d2, VIRTIO_PCI_COMMON_MSIX, 2), 0);
	assert_int_equal(vd_read(d2, VIRTIO_PCI_MSIX_TABLE_OFF + PCI_MSIX_ENTRY_SIZE, 4),
	                 0xfee00000U | 1 << 12);
	assert_int_equal(vd_read(d2, VIRTIO_PCI_MSIX_PBA_OFF, 8), 1 << 2);
	assert_int_equal(f->dm2.vqs[1].last_avail, 1);
	assert_int_equal(f->dm2.vqs[1].used_idx, 1);
	assert_int_equal(f->dm2.activations, 1); /* started again, as the driver had */

	/* Before the guest runs, a notification waits... */
	head = vd_submit(d2, 0, &b, 1);
	vd_kick(d2, 0);
	usleep(50 * 1000);
	assert_int_equal(used_idx(d2, 0), 0);
	assert_int_equal(vd_msi_count(d2), 0);
	/* ... and is served once it does, with the restored vector. */
	vd_set_guest_stopped(d2, false);
	assert_true(vd_wait_used(d2, 0, &e, 2000));
	assert_int_equal(e.id, head);
	assert_true(vd_wait_msi(d2, 1, 2000) >= 1);
	pthread_mutex_lock(&d2->lock);
	assert_int_equal(d2->msi[0].addr, 0xfee00000U | 1 << 12);
	assert_int_equal(d2->msi[0].data, 0x41);
	pthread_mutex_unlock(&d2->lock);
	/* Unmasking vector 2 delivers what was pending at the save. */
	vd_write(d2, VIRTIO_PCI_MSIX_TABLE_OFF + 2 * PCI_MSIX_ENTRY_SIZE + 12, 4, 0);
	assert_true(vd_wait_msi(d2, 2, 2000) >= 2);
	pthread_mutex_lock(&d2->lock);
	assert_int_equal(d2->msi[1].data, 0x42);
	pthread_mutex_unlock(&d2->lock);
	virtio_pci_resume(d->vp);
	vd_saved_release(&s);
}

/* A chain the device holds over a save is taken again, once, by the restored device. */
static void test_held_chain_taken_again_once(void **state)
{
	struct fixture *f = *state;
	struct vd *d = f->d, *d2;
	struct vd_buf b = {.gpa = vd_alloc(d, 24), .len = 24, .write = true};
	struct dev_state busy = {0};
	struct virtq_used_elem e;
	struct vd_saved s;
	uint16_t head;

	vd_bring_up(d, 0, DUMMY_QUEUES, DUMMY_QSIZE);
	virtio_device_lock(&f->dm.vdev);
	f->dm.hold = true;
	virtio_device_unlock(&f->dm.vdev);
	head = vd_submit(d, 0, &b, 1);
	vd_kick(d, 0);
	for (int i = 0; i < 2000 && notified(f, 0) == 0; i++)
		usleep(1000);
	/* Not reported as held: a chain in flight, the save is refused. */
	assert_int_equal(virtio_pci_quiesce(d->vp), 0);
	assert_int_equal(virtio_pci_save(d->vp, &busy), -EBUSY);
	ds_release(&busy);
	virtio_pci_resume(d->vp);
	virtio_device_lock(&f->dm.vdev);
	assert_int_equal(f->dm.nr_held, 1);
	f->dm.report_held = true;
	virtio_device_unlock(&f->dm.vdev);
	vd_save(d, &s);

	d2 = second_device(f, false);
	vd_load_guest(d2, &s);
	vd_restore(d2, &s);
	assert_int_equal(f->dm2.vqs[0].last_avail, 0);
	vd_set_guest_stopped(d2, false);
	assert_true(vd_wait_used(d2, 0, &e, 2000));
	assert_int_equal(e.id, head);
	assert_int_equal(e.len, 24);
	usleep(50 * 1000);
	assert_int_equal(used_idx(d2, 0), 1);
	virtio_pci_resume(d->vp);
	vd_saved_release(&s);
}

/* Each corruption of a good state is refused with a reason; the device stays usable. */
static void test_restore_refuses_corrupt_states(void **state)
{
	struct fixture *f = *state;
	struct vd *d = f->d, *d2;
	struct vd_buf b = {.gpa = vd_alloc(d, 8), .len = 8, .write = true};
	struct virtq_used_elem e;
	struct vd_saved s;
	uint8_t *bad;
	char why[160];
	static const struct {
		size_t off;
		unsigned int len;
		uint64_t val;
		const char *why;
	} cases[] = {
	    {ST_DEVICE_ID, 2, 43, "another configuration"},
	    {ST_STATUS, 1, 0x2f, "unknown bits"},
	    {ST_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER_OK, "without"},
	    {ST_CFGVEC, 2, NV, "out of range"},
	    {ST_CONFIG + PCI_CFG_VENDOR_ID, 2, 0x8086, "another device"},
	    {ST_PBA, 8, 1 << NV, "pending"},
	    {ST_QUEUE(0) + STQ_SIZE, 2, 2 * DUMMY_QSIZE, "above"},
	    {ST_QUEUE(0) + STQ_SIZE, 2, 12, "not a valid queue"},
	    {ST_QUEUE(1) + STQ_STARTED, 1, 2, "flag"},
	    {ST_QUEUE(1) + STQ_DESC, 8, VD_MEM_SIZE, "not a valid queue"},
	    {ST_QUEUE(1) + STQ_LAST_AVAIL, 2, 3, "in flight"},
	    {ST_QUEUE(1) + STQ_VECTOR, 2, 0x1234, "out of range"},
	};

	vd_bring_up(d, 0, DUMMY_QUEUES, DUMMY_QSIZE);
	vd_submit(d, 1, &b, 1);
	vd_kick(d, 1);
	assert_true(vd_wait_used(d, 1, &e, 2000));
	vd_save(d, &s);
	d2 = second_device(f, true);
	vd_load_guest(d2, &s);
	bad = malloc(s.state.len + 1);
	assert_non_null(bad);

	for (size_t len = 0; len < s.state.len; len++) {
		assert_int_equal(vd_restore_bytes(d2, s.state.buf, len, why, sizeof(why)),
		                 -EBADMSG);
		assert_true(why[0] != 0);
	}
	memcpy(bad, s.state.buf, s.state.len);
	bad[s.state.len] = 0;
	assert_int_equal(vd_restore_bytes(d2, bad, s.state.len + 1, why, sizeof(why)), -EBADMSG);
	assert_non_null(strstr(why, "left over"));
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memcpy(bad, s.state.buf, s.state.len);
		memcpy(bad + cases[i].off, &cases[i].val, cases[i].len);
		assert_int_equal(vd_restore_bytes(d2, bad, s.state.len, why, sizeof(why)),
		                 -EBADMSG);
		if (!strstr(why, cases[i].why))
			fail_msg("case %zu: '%s' does not say '%s'", i, why, cases[i].why);
		assert_int_equal(f->dm2.vdev.status, 0);
		assert_int_equal(d2->nr_ioeventfd, 0);
	}
	{
		struct dev_state_in in;

		dsi_init(&in, s.state.buf, s.state.len);
		assert_int_equal(virtio_pci_restore(d2->vp, &in, 2), -EBADMSG);
		assert_non_null(strstr(in.why, "version"));
	}
	/* Not used by a driver that reset the device: accepted as it is. */
	memcpy(bad, s.state.buf, s.state.len);
	put16(bad, ST_CFGVEC, VIRTIO_MSI_NO_VECTOR);
	put64(bad, ST_PBA, 0);
	assert_int_equal(vd_restore_bytes(d2, bad, s.state.len, why, sizeof(why)), 0);
	/* The good state, after all that: the device works. */
	vd_restore(d2, &s);
	vd_set_guest_stopped(d2, false);
	vd_submit(d2, 1, &b, 1);
	vd_kick(d2, 1);
	assert_true(vd_wait_used(d2, 1, &e, 2000));
	assert_int_equal(e.len, 8);
	free(bad);
	virtio_pci_resume(d->vp);
	vd_saved_release(&s);
}

static void test_lifecycle_reset(void **state)
{
	struct fixture *f = *state;
	struct vd *d = f->d;
	struct vd_buf b = {.gpa = vd_alloc(d, 8), .len = 8, .write = true};
	struct virtq_used_elem e;

	vd_bring_up(d, 0, DUMMY_QUEUES, DUMMY_QSIZE);
	vd_cfg_write(d, PCI_CFG_INTERRUPT_LINE, 1, 9);
	assert_int_equal(d->nr_ioeventfd, DUMMY_QUEUES);
	virtio_pci_reset(d->vp);
	/* The function is as created: decoding off, MSI-X off, BAR0 where firmware put it. */
	assert_int_equal(vd_cfg_read(d, PCI_CFG_COMMAND, 2), 0);
	assert_int_equal(vd_cfg_read(d, PCI_CFG_INTERRUPT_LINE, 1), 0);
	assert_int_equal(vd_cfg_read(d, PCI_CFG_BAR0, 4), VD_BAR);
	assert_int_equal(d->nr_ioeventfd, 0);
	assert_int_equal(f->dm.vdev.status, 0);
	assert_false(f->dm.vqs[0].started);
	/* And it comes up again like a new one. */
	vd_cfg_write(d, PCI_CFG_COMMAND, 2, PCI_CMD_MEMORY | PCI_CMD_MASTER);
	vd_bring_up(d, 0, DUMMY_QUEUES, DUMMY_QSIZE);
	vd_submit(d, 0, &b, 1);
	vd_kick(d, 0);
	assert_true(vd_wait_used(d, 0, &e, 2000));
}

/* Through the device list: quiesce, resume, and a destroy that frees the model too. */
static void test_device_list(void **state)
{
	struct fixture *f = *state;
	struct device_list dl = {0};

	vd_bring_up(f->d, 0, DUMMY_QUEUES, DUMMY_QSIZE);
	assert_int_equal(device_register(&dl, "virtio-dummy", &virtio_pci_device_ops, f->d->vp), 0);
	assert_int_equal(device_list_quiesce(&dl), 0);
	assert_true(dl.devs[0].quiesced);
	device_list_resume(&dl);
	assert_false(dl.devs[0].quiesced);
	device_list_destroy(&dl);
	assert_int_equal(f->dm.destroyed, 1);
	f->d->vp = NULL; /* gone with the list */
	virtio_pci_device_ops.destroy(NULL);
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
	    cmocka_unit_test_setup_teardown(test_quiesce_parks_resume_catches_up, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_save_restore, setup_ioeventfd, teardown),
	    cmocka_unit_test_setup_teardown(test_held_chain_taken_again_once, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_restore_refuses_corrupt_states, setup_ioeventfd,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_lifecycle_reset, setup_ioeventfd, teardown),
	    cmocka_unit_test_setup_teardown(test_device_list, setup, teardown),
	};

	return cmocka_run_group_tests_name("virtio_pci", tests, NULL, NULL);
}
