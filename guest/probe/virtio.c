/* SPDX-License-Identifier: MIT */
/*
 * The probe's virtio PCI driver (see virtio.h): finding a function on bus
 * 0, its vendor capabilities (virtio 1.2 §4.1.4), BAR placement, reset and
 * feature negotiation (§3.1.1), one split virtqueue (§2.7) polled at CPL3,
 * and virtio-blk requests (§5.2.6).
 */
#include "virtio.h"
#include "hv.h"

#define PCI_CONFIG_ENABLE (1u << 31)
#define PCI_VENDOR_DEVICE 0x00
#define PCI_COMMAND 0x04
#define PCI_STATUS 0x06
#define PCI_HEADER_TYPE 0x0e
#define PCI_BAR0 0x10
#define PCI_CAP_PTR 0x34
#define PCI_CMD_MEMORY 0x0002
#define PCI_CMD_MASTER 0x0004
#define PCI_STATUS_CAP_LIST 0x0010
#define PCI_HEADER_MULTIFUNCTION 0x80
#define PCI_BAR_IO 0x1
#define PCI_BAR_TYPE_MASK 0x6
#define PCI_BAR_TYPE_64 0x4
#define PCI_BAR_MEM_MASK (~0xfULL)
#define PCI_CAP_ID_VNDR 0x09
#define PCI_CAPS_MAX 48 /* a bound on the capability walk */

/* struct virtio_pci_cap (§4.1.4). */
#define VCAP_CFG_TYPE 3
#define VCAP_BAR 4
#define VCAP_OFFSET 8
#define VCAP_LENGTH 12
#define VCAP_NOTIFY_MULT 16
#define VCAP_COMMON 1
#define VCAP_NOTIFY 2
#define VCAP_ISR 3
#define VCAP_DEVICE 4

/* struct virtio_pci_common_cfg (§4.1.4.3). */
#define COMMON_DFSELECT 0x00
#define COMMON_DF 0x04
#define COMMON_GFSELECT 0x08
#define COMMON_GF 0x0c
#define COMMON_MSIX 0x10
#define COMMON_STATUS 0x14
#define COMMON_Q_SELECT 0x16
#define COMMON_Q_SIZE 0x18
#define COMMON_Q_MSIX 0x1a
#define COMMON_Q_ENABLE 0x1c
#define COMMON_Q_NOFF 0x1e
#define COMMON_Q_DESC 0x20
#define COMMON_Q_AVAIL 0x28
#define COMMON_Q_USED 0x30
#define VIRTIO_NO_VECTOR 0xffff

/*
 * Where the probe places a BAR firmware left unassigned: the top half of
 * nestvm's 32-bit window (nestvm assigns from its bottom), and below the
 * firmware's usual places under QEMU.
 */
#define BAR_POOL_BASE 0xd0000000ULL
#define BAR_POOL_END 0xe0000000ULL

#define RESET_TIMEOUT_US 1000000
#define STATUS_POLL_US 20 /* how often vq_wait() reads the device status */

/* ------------------------------------------------------------------ time */

uint64_t virtio_tsc_khz(void)
{
	static uint64_t khz;

	if (!khz) {
		khz = hv_clock()->tsc_khz;
		if (!khz)
			khz = 3000000;
	}
	return khz;
}

uint64_t virtio_now_us(void)
{
	return rdtsc() * 1000 / virtio_tsc_khz();
}

/* ------------------------------------------------------ configuration space */

static uint32_t cfg_addr(uint8_t devfn, unsigned int reg)
{
	return PCI_CONFIG_ENABLE | (uint32_t)devfn << 8 | (reg & 0xfc);
}

static uint32_t cfg_read32(uint8_t devfn, unsigned int reg)
{
	outl(PORT_PCI_CONFIG_ADDR, cfg_addr(devfn, reg));
	return inl(PORT_PCI_CONFIG_DATA);
}

static uint8_t cfg_read8(uint8_t devfn, unsigned int reg)
{
	return cfg_read32(devfn, reg) >> (8 * (reg & 3));
}

static uint16_t cfg_read16(uint8_t devfn, unsigned int reg)
{
	return cfg_read32(devfn, reg) >> (8 * (reg & 2));
}

static void cfg_write32(uint8_t devfn, unsigned int reg, uint32_t v)
{
	outl(PORT_PCI_CONFIG_ADDR, cfg_addr(devfn, reg));
	outl(PORT_PCI_CONFIG_DATA, v);
}

static void cfg_write16(uint8_t devfn, unsigned int reg, uint16_t v)
{
	outl(PORT_PCI_CONFIG_ADDR, cfg_addr(devfn, reg));
	outw(PORT_PCI_CONFIG_DATA + (reg & 2), v);
}

/*
 * The address of memory BAR @bar, placing it (PCI 3.0 §6.2.5.1: write all
 * ones, read the size back) if firmware did not. 0 for an I/O or absent BAR.
 */
static uint64_t bar_address(uint8_t devfn, unsigned int bar)
{
	static uint64_t pool_next = BAR_POOL_BASE;
	unsigned int reg = PCI_BAR0 + 4 * bar;
	uint32_t lo = cfg_read32(devfn, reg), hi = 0, size_lo, size_hi = 0xffffffff;
	bool is64 = (lo & PCI_BAR_TYPE_MASK) == PCI_BAR_TYPE_64;
	uint64_t addr, size;

	if (lo & PCI_BAR_IO)
		return 0;
	if (is64 && bar < 5)
		hi = cfg_read32(devfn, reg + 4);
	addr = ((uint64_t)hi << 32 | lo) & PCI_BAR_MEM_MASK;
	if (addr)
		return addr;
	cfg_write32(devfn, reg, 0xffffffff);
	size_lo = cfg_read32(devfn, reg);
	if (is64) {
		cfg_write32(devfn, reg + 4, 0xffffffff);
		size_hi = cfg_read32(devfn, reg + 4);
	}
	size = ~(((uint64_t)size_hi << 32 | size_lo) & PCI_BAR_MEM_MASK) + 1;
	if (!size || size > BAR_POOL_END - BAR_POOL_BASE)
		return 0;
	addr = (pool_next + size - 1) & ~(size - 1);
	if (addr + size > BAR_POOL_END)
		return 0;
	pool_next = addr + size;
	cfg_write32(devfn, reg, (uint32_t)addr);
	if (is64)
		cfg_write32(devfn, reg + 4, 0);
	printf("probe: virtio: 00:%02x.%u BAR%u was unassigned; placed at 0x%lx (%lu KiB)\n",
	       devfn >> 3, devfn & 7, bar, addr, size >> 10);
	return addr;
}

/* Walk @devfn's vendor capabilities into @d. */
static int virtio_read_caps(struct vdev *d, const char **why)
{
	uint64_t bars[6] = {0};
	bool have[6] = {false};
	unsigned int n = 0;
	uint8_t cap;

	*why = "no capability list";
	if (!(cfg_read16(d->devfn, PCI_STATUS) & PCI_STATUS_CAP_LIST))
		return -1;
	for (cap = cfg_read8(d->devfn, PCI_CAP_PTR) & 0xfc; cap && n < PCI_CAPS_MAX;
	     cap = cfg_read8(d->devfn, cap + 1) & 0xfc, n++) {
		uint8_t type, bar;
		uint64_t *where, base;

		if (cfg_read8(d->devfn, cap) != PCI_CAP_ID_VNDR)
			continue;
		type = cfg_read8(d->devfn, cap + VCAP_CFG_TYPE);
		bar = cfg_read8(d->devfn, cap + VCAP_BAR);
		switch (type) {
		case VCAP_COMMON:
			where = &d->common;
			break;
		case VCAP_NOTIFY:
			where = &d->notify;
			break;
		case VCAP_ISR:
			where = &d->isr;
			break;
		case VCAP_DEVICE:
			where = &d->device;
			break;
		default:
			continue;
		}
		if (*where || bar > 5) /* the first of each type counts (§4.1.4) */
			continue;
		if (!have[bar]) {
			bars[bar] = bar_address(d->devfn, bar);
			have[bar] = true;
		}
		base = bars[bar];
		if (!base)
			continue;
		*where = base + cfg_read32(d->devfn, cap + VCAP_OFFSET);
		if (type == VCAP_NOTIFY)
			d->notify_mult = cfg_read32(d->devfn, cap + VCAP_NOTIFY_MULT);
	}
	*why = "missing common, notify or device configuration capability";
	if (!d->common || !d->notify || !d->device)
		return -1;
	/* BARs above 4 GiB (QEMU's 64-bit one may be) need page tables. */
	for (unsigned int b = 0; b < 6; b++) {
		*why = "cannot map a BAR above 4 GiB";
		if (bars[b] >= 4 * GIB && paging_map_high(bars[b], bars[b] + 2 * MIB) < 0)
			return -1;
	}
	cfg_write16(d->devfn, PCI_COMMAND,
	            cfg_read16(d->devfn, PCI_COMMAND) | PCI_CMD_MEMORY | PCI_CMD_MASTER);
	return 0;
}

int virtio_find(unsigned int id, unsigned int index, struct vdev *d, const char **why)
{
	unsigned int seen = 0;

	memset(d, 0, sizeof(*d));
	for (unsigned int dev = 0; dev < 32; dev++) {
		for (unsigned int fn = 0; fn < 8; fn++) {
			uint8_t devfn = dev << 3 | fn;
			uint32_t ids = cfg_read32(devfn, PCI_VENDOR_DEVICE);

			if ((ids & 0xffff) == 0xffff) {
				if (fn == 0)
					break;
				continue;
			}
			if ((ids & 0xffff) == VIRTIO_VENDOR &&
			    ids >> 16 == VIRTIO_DEVICE_MODERN_BASE + id && seen++ == index) {
				d->devfn = devfn;
				d->device_id = ids >> 16;
				return virtio_read_caps(d, why);
			}
			if (fn == 0 &&
			    !(cfg_read8(devfn, PCI_HEADER_TYPE) & PCI_HEADER_MULTIFUNCTION))
				break;
		}
	}
	*why = "no such virtio function on bus 0";
	return -1;
}

/* ------------------------------------------------------ common registers */

#define REG8(a) (*(volatile uint8_t *)(uintptr_t)(a))
#define REG16(a) (*(volatile uint16_t *)(uintptr_t)(a))
#define REG32(a) (*(volatile uint32_t *)(uintptr_t)(a))

static inline void barrier(void)
{
	__asm__ volatile("" ::: "memory");
}

static inline void mb(void)
{
	__asm__ volatile("mfence" ::: "memory");
}

uint8_t virtio_status(const struct vdev *d)
{
	return REG8(d->common + COMMON_STATUS);
}

void virtio_set_status(struct vdev *d, uint8_t s)
{
	REG8(d->common + COMMON_STATUS) = s;
}

uint32_t virtio_device_cfg32(const struct vdev *d, unsigned int off)
{
	return REG32(d->device + off);
}

int virtio_reset(struct vdev *d)
{
	uint64_t end;

	virtio_set_status(d, 0);
	end = virtio_now_us() + RESET_TIMEOUT_US;
	while (virtio_status(d) != 0)
		if (virtio_now_us() > end)
			return -1;
	return 0;
}

int virtio_negotiate(struct vdev *d, uint64_t want, const char **why)
{
	uint64_t offered;

	*why = "reset did not complete";
	if (virtio_reset(d) < 0)
		return -1;
	virtio_set_status(d, VIRTIO_S_ACKNOWLEDGE);
	virtio_set_status(d, VIRTIO_S_ACKNOWLEDGE | VIRTIO_S_DRIVER);
	REG32(d->common + COMMON_DFSELECT) = 0;
	offered = REG32(d->common + COMMON_DF);
	REG32(d->common + COMMON_DFSELECT) = 1;
	offered |= (uint64_t)REG32(d->common + COMMON_DF) << 32;
	d->features = offered;
	*why = "the device does not offer VIRTIO_F_VERSION_1";
	if (!(offered & VIRTIO_FEATURE(VIRTIO_F_VERSION_1)))
		return -1;
	d->acked = offered & (want | VIRTIO_FEATURE(VIRTIO_F_VERSION_1));
	REG32(d->common + COMMON_GFSELECT) = 0;
	REG32(d->common + COMMON_GF) = (uint32_t)d->acked;
	REG32(d->common + COMMON_GFSELECT) = 1;
	REG32(d->common + COMMON_GF) = (uint32_t)(d->acked >> 32);
	virtio_set_status(d, VIRTIO_S_ACKNOWLEDGE | VIRTIO_S_DRIVER | VIRTIO_S_FEATURES_OK);
	*why = "FEATURES_OK did not stick";
	if (!(virtio_status(d) & VIRTIO_S_FEATURES_OK))
		return -1;
	return 0;
}

/* ---------------------------------------------------------------- queues */

/* Ring memory for up to four queues: descriptors, avail ring, used ring, a page each. */
#define VQ_SLOTS 4
static uint8_t vq_mem[VQ_SLOTS][3][4096] __attribute__((aligned(4096)));

int vq_init(struct vq *vq, unsigned int slot, uint16_t size)
{
	if (slot >= VQ_SLOTS || size > VRING_MAX)
		return -1;
	memset(vq_mem[slot], 0, sizeof(vq_mem[slot]));
	*vq = (struct vq){
	    .size = size,
	    .desc = (struct vring_desc *)vq_mem[slot][0],
	    .avail = (struct vring_avail *)vq_mem[slot][1],
	    .used = (struct vring_used *)vq_mem[slot][2],
	};
	return 0;
}

static void queue_setup_at(struct vdev *d, uint16_t q, struct vq *vq, uint16_t size, uint64_t desc,
                           uint64_t avail, uint64_t used)
{
	uint16_t noff;

	REG16(d->common + COMMON_Q_SELECT) = q;
	REG16(d->common + COMMON_Q_SIZE) = size;
	REG32(d->common + COMMON_Q_DESC) = (uint32_t)desc;
	REG32(d->common + COMMON_Q_DESC + 4) = (uint32_t)(desc >> 32);
	REG32(d->common + COMMON_Q_AVAIL) = (uint32_t)avail;
	REG32(d->common + COMMON_Q_AVAIL + 4) = (uint32_t)(avail >> 32);
	REG32(d->common + COMMON_Q_USED) = (uint32_t)used;
	REG32(d->common + COMMON_Q_USED + 4) = (uint32_t)(used >> 32);
	REG16(d->common + COMMON_Q_MSIX) = VIRTIO_NO_VECTOR;
	REG16(d->common + COMMON_MSIX) = VIRTIO_NO_VECTOR;
	noff = REG16(d->common + COMMON_Q_NOFF);
	vq->notify_addr = d->notify + (uint64_t)noff * d->notify_mult;
	/* Polling: no interrupts wanted (§2.7.10). */
	vq->avail->flags = VRING_AVAIL_F_NO_INTERRUPT;
	REG16(d->common + COMMON_Q_ENABLE) = 1;
}

void virtio_queue_setup(struct vdev *d, struct vq *vq, uint16_t size, uint64_t desc, uint64_t avail,
                        uint64_t used)
{
	queue_setup_at(d, 0, vq, size, desc, avail, used);
}

int virtio_queue_start(struct vdev *d, uint16_t q, struct vq *vq, unsigned int slot, uint16_t size)
{
	REG16(d->common + COMMON_Q_SELECT) = q;
	if (REG16(d->common + COMMON_Q_SIZE) < size || vq_init(vq, slot, size) < 0)
		return -1;
	queue_setup_at(d, q, vq, size, (uintptr_t)vq->desc, (uintptr_t)vq->avail,
	               (uintptr_t)vq->used);
	return 0;
}

int virtio_start(struct vdev *d, struct vq *vq, unsigned int slot, uint16_t size, uint64_t want,
                 const char **why)
{
	uint16_t max;

	if (virtio_negotiate(d, want, why) < 0)
		return -1;
	REG16(d->common + COMMON_Q_SELECT) = 0;
	max = REG16(d->common + COMMON_Q_SIZE);
	*why = "queue 0 is smaller than asked for";
	if (max < size || vq_init(vq, slot, size) < 0)
		return -1;
	virtio_queue_setup(d, vq, size, (uintptr_t)vq->desc, (uintptr_t)vq->avail,
	                   (uintptr_t)vq->used);
	virtio_set_status(d, VIRTIO_S_ACKNOWLEDGE | VIRTIO_S_DRIVER | VIRTIO_S_FEATURES_OK |
	                         VIRTIO_S_DRIVER_OK);
	*why = "the device refused DRIVER_OK or needs a reset";
	if ((virtio_status(d) & (VIRTIO_S_DRIVER_OK | VIRTIO_S_NEEDS_RESET | VIRTIO_S_FAILED)) !=
	    VIRTIO_S_DRIVER_OK)
		return -1;
	return 0;
}

void vq_publish(struct vq *vq, uint16_t head)
{
	vq->avail->ring[vq->avail_idx % vq->size] = head;
	barrier(); /* the slot before the index (x86 keeps stores in order) */
	vq->avail_idx++;
	__atomic_store_n(&vq->avail->idx, vq->avail_idx, __ATOMIC_RELEASE);
}

void vq_notify(struct vq *vq)
{
	/* 16-bit write: nestvm's ioeventfd (and QEMU's) match that width. */
	REG16(vq->notify_addr) = 0;
}

void vq_kick(struct vq *vq)
{
	mb(); /* avail.idx visible before we read the device's flags (§2.7.13.4) */
	if (!(__atomic_load_n(&vq->used->flags, __ATOMIC_ACQUIRE) & VRING_USED_F_NO_NOTIFY))
		vq_notify(vq);
}

bool vq_get_used(struct vq *vq, struct vring_used_elem *e)
{
	if (__atomic_load_n(&vq->used->idx, __ATOMIC_ACQUIRE) == vq->last_used)
		return false;
	*e = vq->used->ring[vq->last_used % vq->size];
	vq->last_used++;
	return true;
}

enum vq_wait vq_wait(struct vdev *d, struct vq *vq, struct vring_used_elem *e, uint64_t timeout_us)
{
	uint64_t now = virtio_now_us(), end = now + timeout_us, next_status = now + STATUS_POLL_US;

	for (;;) {
		if (vq_get_used(vq, e))
			return VQ_USED;
		now = virtio_now_us();
		if (now >= next_status) {
			if (virtio_status(d) & VIRTIO_S_NEEDS_RESET)
				return vq_get_used(vq, e) ? VQ_USED : VQ_NEEDS_RESET;
			next_status = now + STATUS_POLL_US;
		}
		if (now > end)
			return VQ_TIMEOUT;
		cpu_relax();
	}
}

/* ------------------------------------------------------------- virtio-blk */

#define BLK_TIMEOUT_US 5000000

static struct virtio_blk_hdr rw_hdr;
static volatile uint8_t rw_status;

int blk_rw(struct vdev *d, struct vq *vq, uint32_t type, uint64_t sector, void *buf, uint32_t len)
{
	struct vring_used_elem e;
	uint16_t n = 0;
	enum vq_wait w;

	rw_hdr = (struct virtio_blk_hdr){.type = type, .sector = sector};
	rw_status = 0xff;
	vq->desc[n] = (struct vring_desc){(uintptr_t)&rw_hdr, sizeof(rw_hdr), VRING_DESC_F_NEXT,
	                                  (uint16_t)(n + 1)};
	n++;
	if (len) {
		uint16_t w_flag = type == VIRTIO_BLK_T_OUT ? 0 : VRING_DESC_F_WRITE;

		vq->desc[n] = (struct vring_desc){
		    (uintptr_t)buf, len, (uint16_t)(VRING_DESC_F_NEXT | w_flag), (uint16_t)(n + 1)};
		n++;
	}
	vq->desc[n] = (struct vring_desc){(uintptr_t)&rw_status, 1, VRING_DESC_F_WRITE, 0};
	vq_publish(vq, 0);
	vq_kick(vq);
	w = vq_wait(d, vq, &e, BLK_TIMEOUT_US);
	if (w != VQ_USED)
		return w;
	return rw_status;
}
