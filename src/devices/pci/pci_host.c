/* SPDX-License-Identifier: MIT */
/*
 * PCI bus 0: host bridge, configuration mechanism #1, ECAM, and routing of
 * the MMIO window to memory BARs. See pci_host.h.
 */
#include "devices/pci/pci_host.h"

#include "core/device.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define PCI_NR_DEVFN (PCI_MAX_DEVICES * PCI_MAX_FUNCTIONS)
#define PCI_CAP_ID_OFF 0
#define PCI_CAP_NEXT_OFF 1
#define PCI_CAP_MAX_CHAIN 48 /* (256 - 64) / 4: a longer chain must have a loop */

/* ECAM offset fields (PCIe 6.0 §7.2.2, Table 7-1). */
#define ECAM_BUS_SHIFT 20
#define ECAM_DEVFN_SHIFT 12
#define ECAM_REG_MASK 0xfff

/* Mechanism #1 address fields. */
#define CONFIG_ADDR_BUS(a) (((a) >> 16) & 0xff)
#define CONFIG_ADDR_DEVFN(a) (((a) >> 8) & 0xff)
#define CONFIG_ADDR_REG(a) ((a)&0xfc)

#define PCI_CF9_OFFSET 1 /* 0xCF9 within the 0xCF8 range */

struct pci_host {
	pthread_mutex_t lock;
	uint32_t config_addr;
	struct pci_device *devs[PCI_NR_DEVFN];
	struct pci_device bridge;

	bus_io_fn cf9_io;
	void *cf9_opaque;
	uint64_t mmio_base;
};

static bool is_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

void pci_device_init(struct pci_device *dev, uint16_t vendor, uint16_t device, uint32_t class_code,
                     uint8_t revision)
{
	memset(dev, 0, sizeof(*dev));
	pci_cfg_set16(dev->config, PCI_CFG_VENDOR_ID, vendor);
	pci_cfg_set16(dev->config, PCI_CFG_DEVICE_ID, device);
	dev->config[PCI_CFG_REVISION_ID] = revision;
	dev->config[PCI_CFG_CLASS_PROG] = (uint8_t)class_code;
	pci_cfg_set16(dev->config, PCI_CFG_CLASS_DEVICE, (uint16_t)(class_code >> 8));
	dev->config[PCI_CFG_HEADER_TYPE] = PCI_HEADER_TYPE_NORMAL;

	pci_cfg_set16(dev->wmask, PCI_CFG_COMMAND,
	              PCI_CMD_IO | PCI_CMD_MEMORY | PCI_CMD_MASTER | PCI_CMD_PARITY | PCI_CMD_SERR |
	                  PCI_CMD_INTX_DISABLE);
	pci_cfg_set16(dev->w1cmask, PCI_CFG_STATUS, PCI_STS_W1C);
	dev->wmask[PCI_CFG_CACHE_LINE_SIZE] = 0xff;
	dev->wmask[PCI_CFG_LATENCY_TIMER] = 0xff;
	dev->wmask[PCI_CFG_INTERRUPT_LINE] = 0xff;
	dev->devfn = PCI_DEVFN_AUTO;
	dev->next_cap = PCI_CFG_HEADER_END;
}

void pci_device_set_subsystem(struct pci_device *dev, uint16_t vendor, uint16_t device)
{
	pci_cfg_set16(dev->config, PCI_CFG_SUBSYSTEM_VENDOR_ID, vendor);
	pci_cfg_set16(dev->config, PCI_CFG_SUBSYSTEM_ID, device);
}

static bool pci_bar_is_upper_half(const struct pci_device *dev, unsigned int bar)
{
	return bar > 0 && dev->bars[bar - 1].type == PCI_BAR_MEM64;
}

int pci_device_set_bar(struct pci_device *dev, unsigned int bar, enum pci_bar_type type,
                       uint64_t size, bool prefetchable)
{
	uint32_t reg = PCI_CFG_BAR0 + 4 * bar;
	uint64_t mask = ~(size - 1);
	uint32_t flags = 0;

	if (bar >= PCI_NUM_BARS || pci_bar_is_upper_half(dev, bar) ||
	    dev->bars[bar].type == PCI_BAR_MEM64)
		return -EINVAL;
	switch (type) {
	case PCI_BAR_IO:
		if (!is_pow2(size) || size < 4 || size > 256 || prefetchable)
			return -EINVAL;
		flags = PCI_BAR_SPACE_IO;
		mask &= PCI_BAR_IO_ADDR_MASK;
		break;
	case PCI_BAR_MEM32:
		if (!is_pow2(size) || size < 16 || size > (1ULL << 31))
			return -EINVAL;
		flags = prefetchable ? PCI_BAR_MEM_PREFETCH : 0;
		mask &= PCI_BAR_MEM_ADDR_MASK;
		break;
	case PCI_BAR_MEM64:
		if (!is_pow2(size) || size < 16 || size > (1ULL << 63) || bar + 1 >= PCI_NUM_BARS ||
		    dev->bars[bar + 1].type != PCI_BAR_UNUSED)
			return -EINVAL;
		flags = PCI_BAR_MEM_TYPE_64 | (prefetchable ? PCI_BAR_MEM_PREFETCH : 0);
		mask &= PCI_BAR_MEM_ADDR_MASK;
		break;
	case PCI_BAR_UNUSED:
		size = 0;
		mask = 0;
		break;
	default:
		return -EINVAL;
	}
	/* Writable address bits above the size; the type bits below are fixed. */
	pci_cfg_set32(dev->config, reg, flags);
	pci_cfg_set32(dev->wmask, reg, (uint32_t)mask);
	pci_cfg_set32(dev->w1cmask, reg, 0);
	if (type == PCI_BAR_MEM64) {
		pci_cfg_set32(dev->config, reg + 4, 0);
		pci_cfg_set32(dev->wmask, reg + 4, (uint32_t)(mask >> 32));
		pci_cfg_set32(dev->w1cmask, reg + 4, 0);
	}
	dev->bars[bar].type = type;
	dev->bars[bar].size = size;
	return 0;
}

uint64_t pci_device_bar_address(const struct pci_device *dev, unsigned int bar)
{
	uint32_t reg = PCI_CFG_BAR0 + 4 * bar;
	uint64_t lo;

	if (bar >= PCI_NUM_BARS)
		return 0;
	lo = pci_cfg_get32(dev->config, reg);
	switch (dev->bars[bar].type) {
	case PCI_BAR_IO:
		return lo & PCI_BAR_IO_ADDR_MASK;
	case PCI_BAR_MEM32:
		return lo & PCI_BAR_MEM_ADDR_MASK;
	case PCI_BAR_MEM64:
		return (lo & PCI_BAR_MEM_ADDR_MASK) | (uint64_t)pci_cfg_get32(dev->config, reg + 4)
		                                          << 32;
	default:
		return 0;
	}
}

static void pci_cfg_merge32(struct pci_device *dev, uint32_t reg, uint32_t val)
{
	uint32_t wm = pci_cfg_get32(dev->wmask, reg);

	pci_cfg_set32(dev->config, reg, (pci_cfg_get32(dev->config, reg) & ~wm) | (val & wm));
}

void pci_device_set_bar_address(struct pci_device *dev, unsigned int bar, uint64_t addr)
{
	uint32_t reg = PCI_CFG_BAR0 + 4 * bar;

	if (bar >= PCI_NUM_BARS || dev->bars[bar].type == PCI_BAR_UNUSED)
		return;
	pci_cfg_merge32(dev, reg, (uint32_t)addr);
	if (dev->bars[bar].type == PCI_BAR_MEM64)
		pci_cfg_merge32(dev, reg + 4, (uint32_t)(addr >> 32));
}

int pci_device_add_capability(struct pci_device *dev, uint8_t cap_id, uint8_t len)
{
	uint32_t off = dev->next_cap < PCI_CFG_HEADER_END ? PCI_CFG_HEADER_END : dev->next_cap;
	uint32_t link = PCI_CFG_CAPABILITY_LIST;
	unsigned int n;

	if (len < 2)
		return -EINVAL;
	if (off + len > PCI_CFG_SPACE_SIZE)
		return -ENOSPC;
	/* Find the last next-pointer of the chain, bounded in case it was hand-edited. */
	for (n = 0; dev->config[link] && n < PCI_CAP_MAX_CHAIN; n++)
		link = dev->config[link] + PCI_CAP_NEXT_OFF;
	if (dev->config[link])
		return -EINVAL;
	memset(dev->config + off, 0, len);
	memset(dev->wmask + off, 0, len);
	memset(dev->w1cmask + off, 0, len);
	dev->config[off + PCI_CAP_ID_OFF] = cap_id;
	dev->config[link] = (uint8_t)off;
	dev->config[PCI_CFG_STATUS] |= PCI_STS_CAP_LIST;
	dev->next_cap = (uint16_t)((off + len + 3) & ~3U);
	return (int)off;
}

/*
 * pci_cfg_access_locked - one access that stays within a dword of @dev's
 * configuration space (NULL: an absent function). Host lock held.
 */
static void pci_cfg_access_locked(struct pci_device *dev, uint32_t reg, uint8_t *data, uint32_t len,
                                  bool is_write)
{
	const struct pci_device_ops *ops;
	uint32_t i;

	if (!dev || reg >= PCI_CFG_SPACE_EXP_SIZE || len > PCI_CFG_SPACE_EXP_SIZE - reg) {
		if (!is_write)
			memset(data, 0xff, len);
		return;
	}
	ops = dev->ops;
	if (!is_write) {
		if (ops && ops->config_read)
			ops->config_read(dev, reg, len);
		memcpy(data, dev->config + reg, len);
		return;
	}
	for (i = 0; i < len; i++) {
		uint32_t r = reg + i;
		uint8_t v = data[i];

		dev->config[r] = (uint8_t)((dev->config[r] & ~dev->wmask[r]) | (v & dev->wmask[r]));
		dev->config[r] &= (uint8_t) ~(v & dev->w1cmask[r]);
	}
	if (ops && ops->config_write)
		ops->config_write(dev, reg, len);
}

static struct pci_device *pci_host_lookup(struct pci_host *h, unsigned int bus, unsigned int devfn)
{
	if (bus != 0 || devfn >= PCI_NR_DEVFN)
		return NULL;
	return h->devs[devfn];
}

/* Split an access into pieces that each stay within one dword. */
static void pci_host_access(struct pci_host *h, unsigned int devfn, uint32_t reg, uint8_t *data,
                            uint32_t len, bool is_write)
{
	while (len > 0) {
		uint32_t chunk = 4 - (reg & 3);

		if (chunk > len)
			chunk = len;
		pthread_mutex_lock(&h->lock);
		pci_cfg_access_locked(pci_host_lookup(h, 0, devfn), reg, data, chunk, is_write);
		pthread_mutex_unlock(&h->lock);
		reg += chunk;
		data += chunk;
		len -= chunk;
	}
}

uint32_t pci_host_config_read(struct pci_host *host, unsigned int devfn, uint32_t reg, uint32_t len)
{
	uint8_t buf[4] = {0};
	uint32_t ones = len >= 4 ? 0xffffffffU : (1U << (8 * len)) - 1;

	if ((len != 1 && len != 2 && len != 4) || (reg & 3) + len > 4)
		return ones;
	pci_host_access(host, devfn, reg, buf, len, false);
	return pci_cfg_get32(buf, 0) & ones;
}

void pci_host_config_write(struct pci_host *host, unsigned int devfn, uint32_t reg, uint32_t len,
                           uint32_t val)
{
	uint8_t buf[4] = {(uint8_t)val, (uint8_t)(val >> 8), (uint8_t)(val >> 16),
	                  (uint8_t)(val >> 24)};

	if ((len != 1 && len != 2 && len != 4) || (reg & 3) + len > 4)
		return;
	pci_host_access(host, devfn, reg, buf, len, true);
}

void pci_host_cf8_io(void *opaque, uint64_t offset, void *data, uint32_t len, bool is_write)
{
	struct pci_host *h = opaque;
	uint8_t *bytes = data;

	if (offset == 0 && len == 4) {
		pthread_mutex_lock(&h->lock);
		if (is_write)
			h->config_addr = pci_cfg_get32(bytes, 0) & PCI_CONFIG_ADDR_MASK;
		else
			pci_cfg_set32(bytes, 0, h->config_addr);
		pthread_mutex_unlock(&h->lock);
		return;
	}
	if (offset == PCI_CF9_OFFSET && len == 1 && h->cf9_io) {
		h->cf9_io(h->cf9_opaque, 0, data, 1, is_write);
		return;
	}
	/* Narrower accesses are not the address register (PCI 3.0 §3.2.2.3.2). */
	if (!is_write)
		memset(data, 0xff, len);
}

void pci_host_cfc_io(void *opaque, uint64_t offset, void *data, uint32_t len, bool is_write)
{
	struct pci_host *h = opaque;
	uint8_t *bytes = data;
	uint32_t addr, n;

	if (!is_write)
		memset(data, 0xff, len);
	if (offset >= PCI_CONFIG_PORT_LEN)
		return;
	n = len < PCI_CONFIG_PORT_LEN - offset ? len : (uint32_t)(PCI_CONFIG_PORT_LEN - offset);

	pthread_mutex_lock(&h->lock);
	addr = h->config_addr;
	if (addr & PCI_CONFIG_ADDR_ENABLE)
		pci_cfg_access_locked(
		    pci_host_lookup(h, CONFIG_ADDR_BUS(addr), CONFIG_ADDR_DEVFN(addr)),
		    CONFIG_ADDR_REG(addr) + (uint32_t)offset, bytes, n, is_write);
	pthread_mutex_unlock(&h->lock);
}

void pci_host_ecam_io(void *opaque, uint64_t offset, void *data, uint32_t len, bool is_write)
{
	struct pci_host *h = opaque;
	uint8_t *bytes = data;
	uint32_t i = 0;

	while (i < len) {
		uint64_t pos = offset + i;
		uint32_t reg = (uint32_t)(pos & ECAM_REG_MASK);
		uint32_t chunk = 4 - (reg & 3);
		uint64_t bus = pos >> ECAM_BUS_SHIFT;
		unsigned int devfn = (unsigned int)(pos >> ECAM_DEVFN_SHIFT) & 0xff;

		if (pos < offset) { /* wrapped: nothing there */
			if (!is_write)
				memset(bytes + i, 0xff, len - i);
			return;
		}
		if (chunk > len - i)
			chunk = len - i;
		pthread_mutex_lock(&h->lock);
		pci_cfg_access_locked(bus == 0 ? pci_host_lookup(h, 0, devfn) : NULL, reg,
		                      bytes + i, chunk, is_write);
		pthread_mutex_unlock(&h->lock);
		i += chunk;
	}
}

/* pci_host_find_bar - the enabled memory BAR holding [gpa, gpa + len). Host lock held. */
static struct pci_device *pci_host_find_bar(struct pci_host *h, uint64_t gpa, uint32_t len,
                                            unsigned int *bar_out, uint64_t *off_out)
{
	unsigned int devfn, bar;

	for (devfn = 0; devfn < PCI_NR_DEVFN; devfn++) {
		struct pci_device *dev = h->devs[devfn];

		if (!dev || !(pci_cfg_get16(dev->config, PCI_CFG_COMMAND) & PCI_CMD_MEMORY))
			continue;
		for (bar = 0; bar < PCI_NUM_BARS; bar++) {
			enum pci_bar_type t = dev->bars[bar].type;
			uint64_t base, size = dev->bars[bar].size;

			if (t != PCI_BAR_MEM32 && t != PCI_BAR_MEM64)
				continue;
			base = pci_device_bar_address(dev, bar);
			/* Address 0 means unassigned; never route it. */
			if (!base || gpa < base || gpa - base >= size || len > size - (gpa - base))
				continue;
			*bar_out = bar;
			*off_out = gpa - base;
			return dev;
		}
	}
	return NULL;
}

void pci_host_mmio_io(void *opaque, uint64_t offset, void *data, uint32_t len, bool is_write)
{
	struct pci_host *h = opaque;
	struct pci_device *dev = NULL;
	uint64_t gpa = h->mmio_base + offset, off = 0;
	unsigned int bar = 0;

	if (gpa >= h->mmio_base) {
		pthread_mutex_lock(&h->lock);
		dev = pci_host_find_bar(h, gpa, len, &bar, &off);
		pthread_mutex_unlock(&h->lock);
	}
	/* Devices are never removed, so @dev stays valid without the lock. */
	if (dev && dev->ops && dev->ops->bar_io) {
		dev->ops->bar_io(dev, bar, off, data, len, is_write);
		return;
	}
	if (!is_write)
		memset(data, 0xff, len);
}

static void pci_host_update_multifunction(struct pci_host *h, unsigned int slot)
{
	struct pci_device *fn0 = h->devs[slot * PCI_MAX_FUNCTIONS];
	unsigned int fn;

	if (!fn0)
		return;
	for (fn = 1; fn < PCI_MAX_FUNCTIONS; fn++) {
		if (h->devs[slot * PCI_MAX_FUNCTIONS + fn]) {
			fn0->config[PCI_CFG_HEADER_TYPE] |= PCI_HEADER_TYPE_MULTIFUNCTION;
			return;
		}
	}
}

static bool pci_host_slot_free(const struct pci_host *h, unsigned int slot)
{
	unsigned int fn;

	for (fn = 0; fn < PCI_MAX_FUNCTIONS; fn++)
		if (h->devs[slot * PCI_MAX_FUNCTIONS + fn])
			return false;
	return true;
}

int pci_host_add_device(struct pci_host *host, struct pci_device *dev)
{
	unsigned int devfn, slot;
	int r = 0;

	if (!host || !dev || (dev->devfn != PCI_DEVFN_AUTO && dev->devfn >= PCI_NR_DEVFN))
		return -EINVAL;
	pthread_mutex_lock(&host->lock);
	if (dev->devfn == PCI_DEVFN_AUTO) {
		for (slot = 1; slot < PCI_MAX_DEVICES; slot++)
			if (pci_host_slot_free(host, slot))
				break;
		if (slot == PCI_MAX_DEVICES) {
			r = -ENOSPC;
			goto out;
		}
		devfn = PCI_DEVFN(slot, 0);
	} else {
		devfn = dev->devfn;
		if (host->devs[devfn]) {
			r = -EEXIST;
			goto out;
		}
	}
	host->devs[devfn] = dev;
	dev->devfn = (uint16_t)devfn;
	pci_host_update_multifunction(host, PCI_DEVFN_DEV(devfn));
out:
	pthread_mutex_unlock(&host->lock);
	return r;
}

/* pci_host_init_bridge - function 00:00.0 as at power-on. Host lock held or not yet shared. */
static void pci_host_init_bridge(struct pci_host *h)
{
	pci_device_init(&h->bridge, PCI_HOST_BRIDGE_VENDOR, PCI_HOST_BRIDGE_DEVICE,
	                PCI_HOST_BRIDGE_CLASS, 0);
	h->bridge.name = "host-bridge";
	h->bridge.devfn = PCI_DEVFN(0, 0);
	pci_host_update_multifunction(h, 0);
}

int pci_host_create(const struct pci_host_config *cfg, struct pci_host **out)
{
	struct pci_host *h;
	int r;

	*out = NULL;
	if (!cfg)
		return -EINVAL;
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	r = pthread_mutex_init(&h->lock, NULL);
	if (r) {
		free(h);
		return -r;
	}
	h->devs[0] = &h->bridge;
	pci_host_init_bridge(h);
	h->cf9_io = cfg->cf9_io;
	h->cf9_opaque = cfg->cf9_opaque;
	h->mmio_base = cfg->mmio_base;
	*out = h;
	return 0;
}

void pci_host_destroy(struct pci_host *host)
{
	if (!host)
		return;
	pthread_mutex_destroy(&host->lock);
	free(host);
}

/* ---- the device lifecycle (core/device.h) ---- */

/* State version 1 (see pci_host.h): the address register, then the bridge's header. */
static int pci_host_device_save(void *dev, struct dev_state *out)
{
	struct pci_host *h = dev;

	pthread_mutex_lock(&h->lock);
	ds_put_u32(out, h->config_addr);
	ds_put_bytes(out, h->bridge.config, PCI_CFG_SPACE_SIZE);
	pthread_mutex_unlock(&h->lock);
	return 0;
}

/*
 * pci_host_check_bridge - whether @config could be this host bridge's: only
 * bits the guest can write (or clear) may differ from what it holds now.
 */
static bool pci_host_check_bridge(struct pci_host *h, const uint8_t *config,
                                  struct dev_state_in *in)
{
	const struct pci_device *b = &h->bridge;

	for (unsigned int i = 0; i < PCI_CFG_SPACE_SIZE; i++) {
		uint8_t fixed = (uint8_t) ~(b->wmask[i] | b->w1cmask[i]);

		if ((config[i] ^ b->config[i]) & fixed)
			return dsi_check(in, false,
			                 "the host bridge's read-only config byte %#x is 0x%02x, "
			                 "not 0x%02x",
			                 i, config[i], b->config[i]);
	}
	return true;
}

static int pci_host_device_restore(void *dev, struct dev_state_in *in, uint32_t version)
{
	struct pci_host *h = dev;
	uint8_t config[PCI_CFG_SPACE_SIZE];
	uint32_t addr;
	int r;

	(void)version; /* 1, the only one so far */
	addr = dsi_get_u32(in);
	dsi_get_bytes(in, config, sizeof(config));
	dsi_check(in, !(addr & ~PCI_CONFIG_ADDR_MASK),
	          "the config address register holds %#x, with bits 30:24 or 1:0 set", addr);
	pthread_mutex_lock(&h->lock);
	if (!in->bad)
		pci_host_check_bridge(h, config, in);
	r = dsi_finish(in);
	if (r == 0) {
		h->config_addr = addr;
		memcpy(h->bridge.config, config, sizeof(config));
	}
	pthread_mutex_unlock(&h->lock);
	return r;
}

/* A guest reset: no address selected, the bridge's header as at power-on. */
static void pci_host_device_reset(void *dev)
{
	struct pci_host *h = dev;

	pthread_mutex_lock(&h->lock);
	h->config_addr = 0;
	pci_host_init_bridge(h);
	pthread_mutex_unlock(&h->lock);
}

static void pci_host_device_destroy(void *dev)
{
	pci_host_destroy(dev);
}

const struct device_ops pci_host_device_ops = {
    .kind = "pci-host",
    .version = 1,
    .reset = pci_host_device_reset,
    .save = pci_host_device_save,
    .restore = pci_host_device_restore,
    .destroy = pci_host_device_destroy,
};
