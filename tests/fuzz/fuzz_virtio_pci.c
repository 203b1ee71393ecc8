/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the virtio PCI transport (devices/virtio/virtio_pci.c)
 * as the guest's driver (or a hostile guest) reaches it: BAR0 accesses of
 * any width at any offset (common configuration, ISR, device
 * configuration, notify, MSI-X table and PBA), PCI configuration space
 * reads and writes (command register, BAR0 moves, the MSI-X capability,
 * the VIRTIO_PCI_CAP_PCI_CFG window), and, to make the queues do
 * something, "set up queue q properly" and "make a chain available"
 * records, plus the device model's own calls (configuration changed,
 * needs-reset, kick). The device is a model of this file's with four
 * queues and 24 bytes of configuration; each input gets a new transport.
 *
 * Checks, besides ASan/UBSan: the transport keeps its contract with the
 * device model (config accesses inside config_size; activate only after
 * FEATURES_OK with offered features; queue_notify only for a started,
 * unbroken queue of a live device; every popped buffer inside guest RAM),
 * and the status the driver reads back never shows DRIVER_OK without
 * FEATURES_OK, the device's identity does not change.
 */
#include "fuzz_virtio.h"

#define NQ 4
#define CFG_SIZE 24
#define MAX_RECORDS 512
#define DUMMY_FEATURES                                                                             \
	(VIRTIO_BIT(0) | VIRTIO_BIT(1) | VIRTIO_BIT(5) | VIRTIO_BIT(VIRTIO_F_RING_INDIRECT_DESC) | \
	 VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX))

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct dummy {
	struct virtio_device vdev;
	struct virtq vqs[NQ];
	uint8_t config[CFG_SIZE];
	struct iovec iov[256];
	bool fail_activate;
	unsigned int activations, notifies, resets;
};

static struct dummy dev;

static void d_config_read(struct virtio_device *vdev, uint32_t off, void *data, uint32_t len)
{
	FZ_CHECK(vdev == &dev.vdev && len >= 1 && off < CFG_SIZE && len <= CFG_SIZE - off);
	memcpy(data, dev.config + off, len);
}

static void d_config_write(struct virtio_device *vdev, uint32_t off, const void *data, uint32_t len)
{
	FZ_CHECK(vdev == &dev.vdev && len >= 1 && off < CFG_SIZE && len <= CFG_SIZE - off);
	if (off >= 8) /* the first 8 bytes are read-only */
		memcpy(dev.config + off, data, len);
}

static int d_activate(struct virtio_device *vdev)
{
	FZ_CHECK(vdev->status & VIRTIO_STATUS_FEATURES_OK);
	FZ_CHECK(!(vdev->acked & ~(DUMMY_FEATURES | VIRTIO_BIT(VIRTIO_F_VERSION_1))));
	FZ_CHECK(vdev->acked & VIRTIO_BIT(VIRTIO_F_VERSION_1));
	dev.activations++;
	return dev.fail_activate ? -EIO : 0;
}

static void d_queue_notify(struct virtio_device *vdev, unsigned int q)
{
	const struct guest_mem *mem = fz_guest_mem();
	struct virtq *vq;
	struct virtq_req req = {.iov = dev.iov, .cap = 256};
	int r;

	FZ_CHECK(q < NQ && virtio_device_is_live(vdev));
	vq = &vdev->vqs[q];
	FZ_CHECK(vq->started && !vq->broken);
	dev.notifies++;
	for (int n = 0; n < 512 && (r = virtq_pop(vq, &req)) > 0; n++) {
		const uint8_t *lo = mem->regions[0].host, *hi = lo + mem->regions[0].size;

		for (unsigned int i = 0; i < req.nr_out + req.nr_in; i++) {
			const uint8_t *p = dev.iov[i].iov_base;

			FZ_CHECK(p >= lo && p < hi && dev.iov[i].iov_len <= (size_t)(hi - p));
			if (i >= req.nr_out)
				memset(dev.iov[i].iov_base, 0x5a, dev.iov[i].iov_len);
		}
		virtq_push(vq, req.head, (uint32_t)req.in_len);
		virtio_device_notify_queue(vdev, q);
	}
	if (vq->broken)
		virtio_device_set_needs_reset(vdev, "malformed queue");
}

static void d_reset(struct virtio_device *vdev)
{
	(void)vdev;
	dev.resets++;
}

static const struct virtio_device_ops dummy_ops = {
    .config_read = d_config_read,
    .config_write = d_config_write,
    .activate = d_activate,
    .queue_notify = d_queue_notify,
    .reset = d_reset,
};

static void dummy_init(void)
{
	static const uint16_t max[NQ] = {8, 16, 32, 256};

	memset(&dev, 0, sizeof(dev));
	for (unsigned int q = 0; q < NQ; q++)
		virtq_init(&dev.vqs[q], max[q]);
	for (unsigned int i = 0; i < CFG_SIZE; i++)
		dev.config[i] = (uint8_t)(i * 3);
	dev.vdev = (struct virtio_device){
	    .ops = &dummy_ops,
	    .name = "fuzz-dummy",
	    .device_id = 0x1f,
	    .class_code = 0xff0000,
	    .features = DUMMY_FEATURES,
	    .config_size = CFG_SIZE,
	    .nr_queues = NQ,
	    .vqs = dev.vqs,
	};
}

/* BAR0 offsets worth hitting: every register region, and a little around each. */
static uint32_t pick_bar_off(uint8_t sel, uint16_t raw)
{
	switch (sel % 8) {
	case 0:
	case 1:
		return VIRTIO_PCI_COMMON_OFF + raw % (VIRTIO_PCI_COMMON_CFG_SIZE + 8);
	case 2:
		return VIRTIO_PCI_ISR_OFF + raw % 8;
	case 3:
		return VIRTIO_PCI_DEVICE_OFF + raw % (CFG_SIZE + 8);
	case 4:
		return VIRTIO_PCI_NOTIFY_OFF + raw % (4 * (NQ + 2));
	case 5:
		return VIRTIO_PCI_MSIX_TABLE_OFF + raw % (PCI_MSIX_ENTRY_SIZE * (NQ + 2));
	case 6:
		return VIRTIO_PCI_MSIX_PBA_OFF + raw % 16;
	default:
		return raw; /* anywhere, past the BAR's end too */
	}
}

/* fz_bring_up() without its checks: the guest may have moved BAR0 or turned decoding off. */
static void start_driver(struct fz *f, uint64_t features, unsigned int nq, uint16_t qsize)
{
	if (!fz_negotiate(f, features | VIRTIO_BIT(VIRTIO_F_VERSION_1)))
		return;
	fz_msix_enable(f, nq + 1);
	fz_write(f, VIRTIO_PCI_COMMON_MSIX, 2, 0);
	for (unsigned int q = 0; q < nq; q++)
		fz_setup_queue(f, q, qsize, (uint16_t)(q + 1));
	fz_set_status(f, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
	                     VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
}

static void check_status(struct fz *f)
{
	uint8_t st = fz_status(f);

	if (st & VIRTIO_STATUS_DRIVER_OK)
		FZ_CHECK(st & VIRTIO_STATUS_FEATURES_OK);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool init;
	struct fz_in in = {data, size};
	struct fz f;
	unsigned int records = 0;

	if (!init) {
		log_set_level(LOG_NONE);
		init = true;
	}
	dummy_init();
	dev.fail_activate = fz_u8(&in) == 0xa5;
	fz_create(&f, &dev.vdev);
	while (!fz_in_empty(&in) && records++ < MAX_RECORDS && !f.out_of_memory) {
		uint8_t kind = fz_u8(&in), sz = fz_u8(&in);
		uint32_t len = 1U << (sz & 3);
		bool is_write = sz & 0x80;
		uint64_t v;

		switch (kind % 10) {
		case 0:
		case 1:
		case 2:
		case 3: { /* BAR0, through the host's MMIO window */
			uint32_t off = pick_bar_off(kind >> 4, fz_u16(&in));

			if (is_write) {
				fz_write(&f, off, len, fz_u64(&in));
				fz_barrier(&f);
			} else {
				(void)fz_read(&f, off, len);
			}
			break;
		}
		case 4:
		case 5: { /* configuration space: mostly the header and capabilities */
			uint16_t reg = fz_u16(&in);

			reg = (sz & 0x40) ? reg % PCI_CFG_SPACE_EXP_SIZE : reg % 0x100;
			if (len == 8)
				len = 4;
			if (is_write) {
				fz_cfg_write(&f, reg & ~(len - 1), len, fz_u32(&in));
				fz_barrier(&f);
			} else {
				(void)fz_cfg_read(&f, reg & ~(len - 1), len);
			}
			break;
		}
		case 6: { /* a proper queue setup */
			unsigned int q = (sz >> 2) % NQ;
			uint16_t qs = (uint16_t)(1U << ((sz >> 4) % 9));

			if (qs > dev.vqs[q].max_size)
				qs = dev.vqs[q].max_size;
			fz_setup_queue(&f, q, qs, (uint16_t)(fz_u8(&in) % (NQ + 2)));
			fz_barrier(&f);
			break;
		}
		case 7: { /* a chain on a queue set up that way, kicked */
			unsigned int q = (sz >> 2) % NQ;
			struct fz_buf b[8];
			uint32_t rl = fz_u8(&in), wl = fz_u8(&in);
			uint64_t g = fz_alloc(&f, rl + wl + 1);
			unsigned int n = 0;

			if (!g)
				break;
			if (rl)
				n = fz_split(&in, g, rl, false, b, 4);
			if (wl)
				n += fz_split(&in, g + rl, wl, true, b + n, 4);
			if (n && fz_submit(&f, q, b, n, sz & 0x40, 0) >= 0) {
				fz_kick(&f, q);
				fz_barrier(&f);
			}
			break;
		}
		case 8: /* the device model's own calls */
			virtio_device_lock(&dev.vdev);
			if (sz % 3 == 0)
				virtio_device_config_changed(&dev.vdev);
			else if (sz % 3 == 1)
				virtio_device_set_needs_reset(&dev.vdev, "fuzz");
			virtio_device_unlock(&dev.vdev);
			if (sz % 3 == 2)
				virtio_device_kick(&dev.vdev, (sz >> 2) % (NQ + 1));
			fz_barrier(&f);
			break;
		default: /* the usual driver start (features from the input), or a reset */
			v = fz_u64(&in);
			if (sz & 1)
				start_driver(&f, v & (DUMMY_FEATURES | 0xff), (sz >> 1) % NQ,
				             (uint16_t)(8U >> ((sz >> 4) % 4)));
			else
				fz_set_status(&f, 0);
			fz_barrier(&f);
			break;
		}
		check_status(&f);
	}
	/* The identity is read-only whatever the guest wrote. */
	FZ_CHECK(fz_cfg_read(&f, PCI_CFG_VENDOR_ID, 2) == VIRTIO_PCI_VENDOR_ID);
	FZ_CHECK(fz_cfg_read(&f, PCI_CFG_DEVICE_ID, 2) == VIRTIO_PCI_DEVICE_ID_BASE + 0x1f);
	fz_destroy(&f);
	return 0;
}
