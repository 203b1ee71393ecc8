/* SPDX-License-Identifier: MIT */
/*
 * virtio-blk benchmark without a guest: a minimal polling-free virtio driver
 * in this process plays the guest against nestvm's virtio-blk device, its
 * PCI transport and disk engine, exactly as they run in a VM (device I/O
 * thread, eventfd notifications, MSI-X interrupts), only that the "guest"
 * rings live in memory of this process and a notification is a write to
 * the queue's eventfd, as KVM's ioeventfd would do it. Interrupts wake the
 * driver through an eventfd.
 *
 * It measures 4 KiB sequential and random reads and writes at queue depth 1
 * and 32 on a raw image, and the same patterns done directly on the image
 * file by this process (pread/pwrite at depth 1; io_uring with 32 in flight
 * at depth 32, when liburing is built in), and prints IOPS, MB/s and the
 * ratio nestvm/direct. The image is written in full first, so both sides
 * read from the page cache: what is measured is the cost of the virtio
 * path, not of the disk.
 *
 * What it cannot show: the guest's exits (a notification is a VM exit and
 * an interrupt an injection); those are added by the probe guest's CPL3
 * driver on KVM, and QEMU's virtio-blk needs such a guest driver too.
 *
 * usage: virtio_blk_bench [-s SECONDS] [-m MiB] [-e uring|threads] IMAGE
 */
#include "backends/disk.h"
#include "core/log.h"
#include "devices/virtio/blk.h"
#include "devices/virtio/virtio_pci.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>
#ifdef HAVE_LIBURING
#include <liburing.h>
#endif

#define BS 4096
#define QSIZE 256
#define MAXQD 32
#define MEM (64ULL << 20)
#define RING_GPA 0x100000ULL
#define BUF_GPA 0x200000ULL

struct bench {
	struct guest_mem mem;
	struct virtio_blk *blk;
	struct virtio_pci *vp;
	struct pci_device *pci;
	int irq_fd;
	struct virtq_desc *desc;
	struct virtq_avail *avail;
	struct virtq_used *used;
	uint16_t avail_idx, last_used;
	uint64_t sectors;
	unsigned int seed;
};

static int bench_msi(void *opaque, uint64_t addr, uint32_t data)
{
	struct bench *b = opaque;
	uint64_t one = 1;

	(void)addr;
	(void)data;
	return write(b->irq_fd, &one, sizeof(one)) < 0 ? -errno : 0;
}

static void reg_write(struct bench *b, uint32_t off, uint32_t len, uint64_t v)
{
	uint8_t buf[8];

	memcpy(buf, &v, sizeof(buf));
	virtio_pci_bar_io(b->pci, 0, off, buf, len, true);
}

static uint64_t reg_read(struct bench *b, uint32_t off, uint32_t len)
{
	uint8_t buf[8] = {0};
	uint64_t v = 0;

	virtio_pci_bar_io(b->pci, 0, off, buf, len, false);
	memcpy(&v, buf, len);
	return v;
}

static void *gpa(struct bench *b, uint64_t addr, uint64_t len)
{
	void *p = guest_mem_ptr(&b->mem, addr, len);

	if (!p) {
		fprintf(stderr, "bench: bad gpa\n");
		exit(1);
	}
	return p;
}

/* The driver's bring-up: features, MSI-X, one queue, DRIVER_OK (virtio 1.2 §3.1). */
static void bench_bring_up(struct bench *b)
{
	uint64_t desc = RING_GPA, avail = RING_GPA + 0x8000, used = RING_GPA + 0xa000;
	uint8_t msix_ctl[2] = {0, PCI_MSIX_FLAGS_ENABLE >> 8};
	int cap;

	reg_write(b, VIRTIO_PCI_COMMON_STATUS, 1, 0);
	reg_write(b, VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	reg_write(b, VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
	reg_write(b, VIRTIO_PCI_COMMON_GF, 4, 1); /* VERSION_1 */
	reg_write(b, VIRTIO_PCI_COMMON_GFSELECT, 4, 0);
	reg_write(b, VIRTIO_PCI_COMMON_GF, 4, VIRTIO_BIT(VIRTIO_BLK_F_FLUSH));
	reg_write(b, VIRTIO_PCI_COMMON_STATUS, 1,
	          VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
	/* MSI-X on (the capability's control word), vector 1 unmasked for the queue. */
	for (cap = b->pci->config[PCI_CFG_CAPABILITY_LIST]; cap; cap = b->pci->config[cap + 1])
		if (b->pci->config[cap] == PCI_CAP_ID_MSIX)
			break;
	memcpy(b->pci->config + cap + PCI_MSIX_FLAGS, msix_ctl, 2);
	b->pci->ops->config_write(b->pci, (uint32_t)cap + PCI_MSIX_FLAGS, 2);
	reg_write(b, VIRTIO_PCI_MSIX_TABLE_OFF + 16 + 12, 4, 0);
	reg_write(b, VIRTIO_PCI_COMMON_Q_SELECT, 2, 0);
	reg_write(b, VIRTIO_PCI_COMMON_Q_SIZE, 2, QSIZE);
	reg_write(b, VIRTIO_PCI_COMMON_Q_DESCLO, 4, desc);
	reg_write(b, VIRTIO_PCI_COMMON_Q_AVAILLO, 4, avail);
	reg_write(b, VIRTIO_PCI_COMMON_Q_USEDLO, 4, used);
	reg_write(b, VIRTIO_PCI_COMMON_Q_MSIX, 2, 1);
	reg_write(b, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
	reg_write(b, VIRTIO_PCI_COMMON_STATUS, 1,
	          VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
	              VIRTIO_STATUS_DRIVER_OK);
	if (!(reg_read(b, VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_STATUS_DRIVER_OK)) {
		fprintf(stderr, "bench: the device did not come up\n");
		exit(1);
	}
	b->desc = gpa(b, desc, VIRTQ_DESC_SIZE(QSIZE));
	b->avail = gpa(b, avail, VIRTQ_AVAIL_SIZE(QSIZE));
	b->used = gpa(b, used, VIRTQ_USED_SIZE(QSIZE));
	/* Slot i's request: descriptors 3i..3i+2, header/data/status at fixed places. */
	for (unsigned int i = 0; i < MAXQD; i++) {
		uint64_t base = BUF_GPA + (uint64_t)i * 2 * BS;

		b->desc[3 * i] =
		    (struct virtq_desc){base, 16, VIRTQ_DESC_F_NEXT, (uint16_t)(3 * i + 1)};
		b->desc[3 * i + 1] =
		    (struct virtq_desc){base + BS, BS, VIRTQ_DESC_F_NEXT, (uint16_t)(3 * i + 2)};
		b->desc[3 * i + 2] = (struct virtq_desc){base + 64, 1, VIRTQ_DESC_F_WRITE, 0};
	}
}

static uint64_t pick_sector(struct bench *b, bool random, uint64_t n)
{
	uint64_t blocks = b->sectors / (BS / 512);

	return (random ? (uint64_t)rand_r(&b->seed) * 7919 % blocks : n % blocks) * (BS / 512);
}

/* Make request slot @i available for sector @sector. */
static void submit(struct bench *b, unsigned int i, bool write, uint64_t sector)
{
	uint8_t *hdr = gpa(b, BUF_GPA + (uint64_t)i * 2 * BS, 16);
	uint32_t type = write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN;

	memcpy(hdr, &type, 4);
	memcpy(hdr + 8, &sector, 8);
	b->desc[3 * i + 1].flags = (uint16_t)(VIRTQ_DESC_F_NEXT | (write ? 0 : VIRTQ_DESC_F_WRITE));
	b->avail->ring[b->avail_idx % QSIZE] = (uint16_t)(3 * i);
	__atomic_store_n(&b->avail->idx, ++b->avail_idx, __ATOMIC_RELEASE);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* nestvm's virtio-blk: keep @qd requests in flight for @secs; returns IOPS. */
static double run_virtio(struct bench *b, bool write, bool random, unsigned int qd, double secs)
{
	uint64_t done = 0, n = 0, v;
	double t0 = now_s(), t;

	for (unsigned int i = 0; i < qd; i++)
		submit(b, i, write, pick_sector(b, random, n++));
	reg_write(b, VIRTIO_PCI_NOTIFY_OFF, 2, 0);
	for (;;) {
		bool kick = false;
		uint16_t used_idx = __atomic_load_n(&b->used->idx, __ATOMIC_ACQUIRE);

		while (b->last_used != used_idx) {
			struct virtq_used_elem e = b->used->ring[b->last_used % QSIZE];
			uint8_t status = *(uint8_t *)gpa(b, BUF_GPA + (e.id / 3) * 2 * BS + 64, 1);

			if (status != VIRTIO_BLK_S_OK) {
				fprintf(stderr, "bench: request failed, status %u\n", status);
				exit(1);
			}
			b->last_used++;
			done++;
			if (now_s() - t0 < secs) {
				submit(b, e.id / 3, write, pick_sector(b, random, n++));
				kick = true;
			}
		}
		t = now_s() - t0;
		if (t >= secs && done == n)
			return done / t;
		if (kick)
			reg_write(b, VIRTIO_PCI_NOTIFY_OFF, 2, 0);
		/* Wait for the interrupt. */
		{
			struct pollfd p = {.fd = b->irq_fd, .events = POLLIN};

			if (__atomic_load_n(&b->used->idx, __ATOMIC_ACQUIRE) == b->last_used &&
			    poll(&p, 1, 1000) == 1 && read(b->irq_fd, &v, sizeof(v)) < 0)
				exit(1);
		}
	}
}

/* The same pattern on the file itself: pread/pwrite, or io_uring at depth > 1. */
static double run_direct(int fd, struct bench *b, bool write, bool random, unsigned int qd,
                         double secs)
{
	static uint8_t buf[MAXQD][BS] __attribute__((aligned(BS)));
	uint64_t done = 0, n = 0;
	double t0 = now_s(), t = 0;

	if (qd == 1) {
		while ((t = now_s() - t0) < secs) {
			off_t off = (off_t)pick_sector(b, random, n++) * 512;
			ssize_t r =
			    write ? pwrite(fd, buf[0], BS, off) : pread(fd, buf[0], BS, off);

			if (r != BS)
				exit(1);
			done++;
		}
		return done / t;
	}
#ifdef HAVE_LIBURING
	{
		struct io_uring ring;
		struct io_uring_cqe *cqe;
		uint64_t inflight = 0;

		if (io_uring_queue_init(MAXQD * 2, &ring, 0) < 0)
			return 0;
		for (;;) {
			t = now_s() - t0;
			while (inflight < qd && t < secs) {
				struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
				off_t off = (off_t)pick_sector(b, random, n) * 512;

				if (write)
					io_uring_prep_write(sqe, fd, buf[n % MAXQD], BS,
					                    (uint64_t)off);
				else
					io_uring_prep_read(sqe, fd, buf[n % MAXQD], BS,
					                   (uint64_t)off);
				n++;
				inflight++;
			}
			io_uring_submit(&ring);
			if (!inflight)
				break;
			if (io_uring_wait_cqe(&ring, &cqe) < 0 || cqe->res != BS)
				exit(1);
			io_uring_cqe_seen(&ring, cqe);
			inflight--;
			done++;
		}
		io_uring_queue_exit(&ring);
		return done / (now_s() - t0);
	}
#else
	return 0;
#endif
}

int main(int argc, char **argv)
{
	struct bench b = {.seed = 12345};
	struct virtio_blk_params p = {.engine = DISK_ENGINE_AUTO, .serial = "bench"};
	struct virtio_pci_config cfg = {.msi_send = bench_msi, .bar_addr = 0xc0000000ULL};
	double secs = 3;
	uint64_t mib = 256;
	int opt, fd;
	static const struct {
		const char *name;
		bool write, random;
	} modes[] = {
	    {"seq read", false, false},
	    {"rand read", false, true},
	    {"seq write", true, false},
	    {"rand write", true, true},
	};

	while ((opt = getopt(argc, argv, "s:m:e:")) != -1) {
		if (opt == 's')
			secs = atof(optarg);
		else if (opt == 'm')
			mib = strtoull(optarg, NULL, 10);
		else if (opt == 'e')
			p.engine =
			    !strcmp(optarg, "threads") ? DISK_ENGINE_THREADS : DISK_ENGINE_URING;
	}
	if (optind != argc - 1) {
		fprintf(stderr, "usage: %s [-s SECONDS] [-m MiB] [-e uring|threads] IMAGE\n",
		        argv[0]);
		return 2;
	}
	p.path = argv[optind];
	/* A fully written image, so that nothing is sparse and all of it is cached. */
	fd = open(p.path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0) {
		perror(p.path);
		return 1;
	}
	{
		static uint8_t chunk[1 << 20];

		memset(chunk, 0x5a, sizeof(chunk));
		for (uint64_t i = 0; i < mib; i++)
			if (write(fd, chunk, sizeof(chunk)) != sizeof(chunk))
				return 1;
		fsync(fd);
	}
	log_set_level(LOG_WARN);
	b.irq_fd = eventfd(0, EFD_CLOEXEC);
	if (guest_mem_init(&b.mem, MEM, 0) < 0 || b.irq_fd < 0)
		return 1;
	cfg.mem = &b.mem;
	cfg.opaque = &b;
	if (virtio_blk_create(&p, &b.blk) < 0 ||
	    virtio_pci_create(virtio_blk_vdev(b.blk), &cfg, &b.vp) < 0)
		return 1;
	b.pci = virtio_pci_device(b.vp);
	pci_cfg_set16(b.pci->config, PCI_CFG_COMMAND, PCI_CMD_MEMORY | PCI_CMD_MASTER);
	b.sectors = (mib << 20) / 512;
	bench_bring_up(&b);

	printf("virtio-blk, 4 KiB requests, %llu MiB image (page cache), %.0f s each, engine %s\n",
	       (unsigned long long)mib, secs, disk_engine_name(virtio_blk_disk(b.blk)));
	printf("%-11s %3s %12s %9s %12s %9s %7s\n", "pattern", "QD", "nestvm IOPS", "MB/s",
	       "direct IOPS", "MB/s", "ratio");
	for (unsigned int qd = 1; qd <= MAXQD; qd *= MAXQD) {
		for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
			double v = run_virtio(&b, modes[m].write, modes[m].random, qd, secs);
			double d = run_direct(fd, &b, modes[m].write, modes[m].random, qd, secs);

			printf("%-11s %3u %12.0f %9.1f %12.0f %9.1f %7.2f\n", modes[m].name, qd, v,
			       v * BS / 1e6, d, d * BS / 1e6, d > 0 ? v / d : 0);
		}
	}
	virtio_pci_destroy(b.vp);
	virtio_blk_destroy(b.blk);
	guest_mem_destroy(&b.mem);
	close(fd);
	return 0;
}
