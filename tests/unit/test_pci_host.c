/* SPDX-License-Identifier: MIT */
/* Unit tests: PCI host bridge, CF8/CFC and ECAM config access, BAR sizing, MMIO routing. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "arch/x86/layout.h"
#include "devices/pci/pci_host.h"

#include "device_state_test.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct fixture {
	struct pci_host *host;
	int cf9_writes;
	uint8_t cf9_last;
};

static void cf9_io(void *opaque, uint64_t offset, void *data, uint32_t len, bool is_write)
{
	struct fixture *f = opaque;

	assert_int_equal(offset, 0);
	assert_int_equal(len, 1);
	if (is_write) {
		f->cf9_writes++;
		f->cf9_last = *(uint8_t *)data;
	} else {
		*(uint8_t *)data = 0x02;
	}
}

static struct fixture *fixture_new(void)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct pci_host_config cfg = {.cf9_io = cf9_io, .mmio_base = LAYOUT_PCI_MMIO32};

	assert_non_null(f);
	cfg.cf9_opaque = f;
	assert_int_equal(pci_host_create(&cfg, &f->host), 0);
	return f;
}

static void fixture_free(struct fixture *f)
{
	pci_host_destroy(f->host);
	free(f);
}

static void cf8_write(struct fixture *f, uint32_t v)
{
	uint8_t b[4];

	pci_cfg_set32(b, 0, v);
	pci_host_cf8_io(f->host, 0, b, 4, true);
}

static uint32_t cf8_read(struct fixture *f)
{
	uint8_t b[4] = {0};

	pci_host_cf8_io(f->host, 0, b, 4, false);
	return pci_cfg_get32(b, 0);
}

static uint32_t conf1_addr(unsigned int bus, unsigned int devfn, unsigned int reg)
{
	return PCI_CONFIG_ADDR_ENABLE | bus << 16 | devfn << 8 | (reg & 0xfc);
}

/* Read @len bytes at @reg of bus 0 @devfn through CF8/CFC. */
static uint32_t conf1_read(struct fixture *f, unsigned int devfn, unsigned int reg, uint32_t len)
{
	uint8_t b[4] = {0};

	cf8_write(f, conf1_addr(0, devfn, reg));
	pci_host_cfc_io(f->host, reg & 3, b, len, false);
	return len == 1 ? b[0] : len == 2 ? pci_cfg_get16(b, 0) : pci_cfg_get32(b, 0);
}

static void conf1_write(struct fixture *f, unsigned int devfn, unsigned int reg, uint32_t len,
                        uint32_t v)
{
	uint8_t b[4];

	pci_cfg_set32(b, 0, v);
	cf8_write(f, conf1_addr(0, devfn, reg));
	pci_host_cfc_io(f->host, reg & 3, b, len, true);
}

static uint64_t ecam_off(unsigned int devfn, unsigned int reg)
{
	return (uint64_t)devfn << 12 | reg;
}

static uint32_t ecam_read(struct fixture *f, unsigned int devfn, unsigned int reg, uint32_t len)
{
	uint8_t b[8] = {0};

	pci_host_ecam_io(f->host, ecam_off(devfn, reg), b, len, false);
	return len == 1 ? b[0] : len == 2 ? pci_cfg_get16(b, 0) : pci_cfg_get32(b, 0);
}

static void ecam_write(struct fixture *f, unsigned int devfn, unsigned int reg, uint32_t len,
                       uint32_t v)
{
	uint8_t b[4];

	pci_cfg_set32(b, 0, v);
	pci_host_ecam_io(f->host, ecam_off(devfn, reg), b, len, true);
}

static void test_address_register(void **state)
{
	struct fixture *f = fixture_new();
	uint8_t b[4] = {0x01, 0, 0, 0};

	(void)state;
	/* Linux pci_check_type1(): a byte at 0xCFB, then 0x80000000 must read back. */
	pci_host_cf8_io(f->host, 3, b, 1, true);
	cf8_write(f, 0x80000000);
	assert_int_equal(cf8_read(f), 0x80000000);
	/* Reserved bits 30:24 and 1:0 read 0. */
	cf8_write(f, 0xffffffff);
	assert_int_equal(cf8_read(f), PCI_CONFIG_ADDR_MASK);
	/* Byte and word accesses to 0xCF8-0xCFB are not the address register. */
	pci_host_cf8_io(f->host, 0, b, 1, false);
	assert_int_equal(b[0], 0xff);
	pci_host_cf8_io(f->host, 2, b, 2, false);
	assert_int_equal(b[0], 0xff);
	assert_int_equal(b[1], 0xff);
	b[0] = 0;
	pci_host_cf8_io(f->host, 0, b, 1, true);
	assert_int_equal(cf8_read(f), PCI_CONFIG_ADDR_MASK);
	/* 0xCF9 goes to the reset control register. */
	b[0] = 0x06;
	pci_host_cf8_io(f->host, 1, b, 1, true);
	assert_int_equal(f->cf9_writes, 1);
	assert_int_equal(f->cf9_last, 0x06);
	pci_host_cf8_io(f->host, 1, b, 1, false);
	assert_int_equal(b[0], 0x02);
	fixture_free(f);
}

static void test_host_bridge_ids(void **state)
{
	struct fixture *f = fixture_new();

	(void)state;
	assert_int_equal(conf1_read(f, 0, PCI_CFG_VENDOR_ID, 4),
	                 PCI_HOST_BRIDGE_DEVICE << 16 | PCI_HOST_BRIDGE_VENDOR);
	assert_int_equal(conf1_read(f, 0, PCI_CFG_REVISION_ID, 4) >> 8, PCI_HOST_BRIDGE_CLASS);
	assert_int_equal(conf1_read(f, 0, PCI_CFG_CLASS_DEVICE, 2), 0x0600);
	assert_int_equal(conf1_read(f, 0, PCI_CFG_HEADER_TYPE, 1), PCI_HEADER_TYPE_NORMAL);
	/* Byte and word accesses at every offset of the dword. */
	assert_int_equal(conf1_read(f, 0, 0, 1), 0x86);
	assert_int_equal(conf1_read(f, 0, 1, 1), 0x80);
	assert_int_equal(conf1_read(f, 0, 2, 1), 0xc0);
	assert_int_equal(conf1_read(f, 0, 3, 1), 0x29);
	assert_int_equal(conf1_read(f, 0, 2, 2), 0x29c0);
	assert_int_equal(conf1_read(f, 0, PCI_CFG_CLASS_DEVICE + 1, 1), 0x06);
	/* IDs are read-only; the command register is not. */
	conf1_write(f, 0, PCI_CFG_VENDOR_ID, 4, 0x12345678);
	assert_int_equal(conf1_read(f, 0, PCI_CFG_VENDOR_ID, 2), PCI_HOST_BRIDGE_VENDOR);
	conf1_write(f, 0, PCI_CFG_COMMAND, 2, PCI_CMD_MEMORY | PCI_CMD_IO | 0x8000);
	assert_int_equal(conf1_read(f, 0, PCI_CFG_COMMAND, 2), PCI_CMD_MEMORY | PCI_CMD_IO);
	/* No BARs: sizing reads 0. */
	conf1_write(f, 0, PCI_CFG_BAR0, 4, 0xffffffff);
	assert_int_equal(conf1_read(f, 0, PCI_CFG_BAR0, 4), 0);
	/* Through the direct API too. */
	assert_int_equal(pci_host_config_read(f->host, 0, PCI_CFG_DEVICE_ID, 2),
	                 PCI_HOST_BRIDGE_DEVICE);
	assert_int_equal(pci_host_config_read(f->host, 0, 3, 2), 0xffff); /* crosses a dword */
	fixture_free(f);
}

static void test_absent_functions(void **state)
{
	struct fixture *f = fixture_new();
	uint8_t b[4] = {0};
	unsigned int devfn;

	(void)state;
	for (devfn = 1; devfn < 256; devfn++)
		assert_int_equal(conf1_read(f, devfn, 0, 4), 0xffffffff);
	assert_int_equal(conf1_read(f, PCI_DEVFN(3, 0), 2, 2), 0xffff);
	assert_int_equal(conf1_read(f, PCI_DEVFN(3, 0), 3, 1), 0xff);
	/* Another bus. */
	cf8_write(f, conf1_addr(1, 0, 0));
	pci_host_cfc_io(f->host, 0, b, 4, false);
	assert_int_equal(pci_cfg_get32(b, 0), 0xffffffff);
	/* Enable bit clear: nothing reaches config space. */
	cf8_write(f, conf1_addr(0, 0, 0) & ~PCI_CONFIG_ADDR_ENABLE);
	pci_host_cfc_io(f->host, 0, b, 4, false);
	assert_int_equal(pci_cfg_get32(b, 0), 0xffffffff);
	/* Writes to absent functions are dropped without harm. */
	conf1_write(f, PCI_DEVFN(5, 2), PCI_CFG_COMMAND, 2, 0xffff);
	ecam_write(f, PCI_DEVFN(31, 7), 0xffc, 4, 0xffffffff);
	assert_int_equal(ecam_read(f, PCI_DEVFN(31, 7), 0, 4), 0xffffffff);
	fixture_free(f);
}

static void test_ecam_matches_conf1(void **state)
{
	struct fixture *f = fixture_new();
	struct pci_device dev;
	unsigned int reg;

	(void)state;
	pci_device_init(&dev, 0x1af4, 0x1041, 0x010000, 1);
	dev.devfn = PCI_DEVFN(2, 0);
	assert_int_equal(pci_host_add_device(f->host, &dev), 0);
	for (reg = 0; reg < PCI_CFG_SPACE_SIZE; reg += 4) {
		assert_int_equal(ecam_read(f, 0, reg, 4), conf1_read(f, 0, reg, 4));
		assert_int_equal(ecam_read(f, PCI_DEVFN(2, 0), reg, 4),
		                 conf1_read(f, PCI_DEVFN(2, 0), reg, 4));
		assert_int_equal(ecam_read(f, PCI_DEVFN(2, 0), reg + 1, 2),
		                 conf1_read(f, PCI_DEVFN(2, 0), reg + 1, 2));
	}
	/* A write through one mechanism is seen through the other. */
	ecam_write(f, PCI_DEVFN(2, 0), PCI_CFG_INTERRUPT_LINE, 1, 11);
	assert_int_equal(conf1_read(f, PCI_DEVFN(2, 0), PCI_CFG_INTERRUPT_LINE, 1), 11);
	/* Extended space exists only through ECAM; it is zero for this device. */
	assert_int_equal(ecam_read(f, PCI_DEVFN(2, 0), 0x100, 4), 0);
	/* Status error bits are write-1-to-clear. */
	dev.config[PCI_CFG_STATUS + 1] = 0xf9;
	ecam_write(f, PCI_DEVFN(2, 0), PCI_CFG_STATUS, 2, 0x0100);
	assert_int_equal(ecam_read(f, PCI_DEVFN(2, 0), PCI_CFG_STATUS, 2), 0xf800);
	ecam_write(f, PCI_DEVFN(2, 0), PCI_CFG_STATUS, 2, 0xffff);
	assert_int_equal(ecam_read(f, PCI_DEVFN(2, 0), PCI_CFG_STATUS, 2), 0);
	fixture_free(f);
}

struct write_log {
	int writes;
	int reads;
	uint32_t reg, len;
};

static void log_config_write(struct pci_device *dev, uint32_t reg, uint32_t len)
{
	struct write_log *log = dev->opaque;

	log->writes++;
	log->reg = reg;
	log->len = len;
}

static void log_config_read(struct pci_device *dev, uint32_t reg, uint32_t len)
{
	struct write_log *log = dev->opaque;

	(void)reg;
	(void)len;
	log->reads++;
	dev->config[0x40] = (uint8_t)log->reads; /* a "dynamic" register */
}

static void test_bar_sizing(void **state)
{
	static const struct pci_device_ops ops = {
	    .config_write = log_config_write,
	    .config_read = log_config_read,
	};
	struct fixture *f = fixture_new();
	struct pci_device dev;
	struct write_log log = {0};
	unsigned int d;

	(void)state;
	pci_device_init(&dev, 0x1af4, 0x1042, 0x010000, 1);
	dev.ops = &ops;
	dev.opaque = &log;
	assert_int_equal(pci_device_set_bar(&dev, 0, PCI_BAR_MEM32, 0x1000, false), 0);
	assert_int_equal(pci_device_set_bar(&dev, 1, PCI_BAR_IO, 0x20, false), 0);
	assert_int_equal(pci_device_set_bar(&dev, 2, PCI_BAR_MEM64, 0x4000, true), 0);
	assert_int_equal(pci_device_set_bar(&dev, 4, PCI_BAR_MEM64, 8ULL << 30, true), 0);
	/* Invalid BARs. */
	assert_int_equal(pci_device_set_bar(&dev, 3, PCI_BAR_MEM32, 0x1000, false), -EINVAL);
	assert_int_equal(pci_device_set_bar(&dev, 5, PCI_BAR_MEM64, 0x1000, false), -EINVAL);
	assert_int_equal(pci_device_set_bar(&dev, 6, PCI_BAR_MEM32, 0x1000, false), -EINVAL);
	assert_int_equal(pci_device_set_bar(&dev, 0, PCI_BAR_MEM32, 0x1800, false), -EINVAL);
	assert_int_equal(pci_device_set_bar(&dev, 1, PCI_BAR_IO, 0x1000, false), -EINVAL);
	assert_int_equal(pci_host_add_device(f->host, &dev), 0);
	assert_int_equal(dev.devfn, PCI_DEVFN(1, 0)); /* the first free slot */
	d = dev.devfn;

	/* Linux __pci_read_base(): save, write all ones, read the mask, restore. */
	assert_int_equal(conf1_read(f, d, PCI_CFG_BAR0, 4), 0);
	conf1_write(f, d, PCI_CFG_BAR0, 4, 0xffffffff);
	assert_int_equal(conf1_read(f, d, PCI_CFG_BAR0, 4), 0xfffff000);
	assert_int_equal(log.writes, 1);
	assert_int_equal(log.reg, PCI_CFG_BAR0);
	assert_int_equal(log.len, 4);

	conf1_write(f, d, PCI_CFG_BAR0 + 4, 4, 0xffffffff);
	assert_int_equal(conf1_read(f, d, PCI_CFG_BAR0 + 4, 4), 0xffffffe0 | PCI_BAR_SPACE_IO);

	assert_int_equal(conf1_read(f, d, PCI_CFG_BAR0 + 8, 4),
	                 PCI_BAR_MEM_TYPE_64 | PCI_BAR_MEM_PREFETCH);
	conf1_write(f, d, PCI_CFG_BAR0 + 8, 4, 0xffffffff);
	conf1_write(f, d, PCI_CFG_BAR0 + 12, 4, 0xffffffff);
	assert_int_equal(conf1_read(f, d, PCI_CFG_BAR0 + 8, 4),
	                 0xffffc000 | PCI_BAR_MEM_TYPE_64 | PCI_BAR_MEM_PREFETCH);
	assert_int_equal(conf1_read(f, d, PCI_CFG_BAR0 + 12, 4), 0xffffffff);

	/* An 8 GiB BAR: no writable bits in the low dword, the size in the high one. */
	ecam_write(f, d, PCI_CFG_BAR0 + 16, 4, 0xffffffff);
	ecam_write(f, d, PCI_CFG_BAR0 + 20, 4, 0xffffffff);
	assert_int_equal(ecam_read(f, d, PCI_CFG_BAR0 + 16, 4),
	                 PCI_BAR_MEM_TYPE_64 | PCI_BAR_MEM_PREFETCH);
	assert_int_equal(ecam_read(f, d, PCI_CFG_BAR0 + 20, 4), 0xfffffffe);

	/* Program addresses; unaligned low bits are dropped. */
	conf1_write(f, d, PCI_CFG_BAR0, 4, 0xc0001234);
	assert_int_equal(conf1_read(f, d, PCI_CFG_BAR0, 4), 0xc0001000);
	conf1_write(f, d, PCI_CFG_BAR0 + 8, 4, 0xc0104000);
	conf1_write(f, d, PCI_CFG_BAR0 + 12, 4, 0x1);
	assert_int_equal(pci_device_bar_address(&dev, 0), 0xc0001000);
	assert_int_equal(pci_device_bar_address(&dev, 2), 0x1c0104000ULL);
	/* Byte writes into a BAR work lane by lane. */
	conf1_write(f, d, PCI_CFG_BAR0 + 3, 1, 0xd0);
	assert_int_equal(pci_device_bar_address(&dev, 0), 0xd0001000);
	/* The read hook runs before the bytes are copied out. */
	{
		uint32_t v = conf1_read(f, d, 0x40, 1);

		assert_true(log.reads > 0);
		assert_int_equal(v, log.reads);
	}
	/* Unused BARs read 0 and keep 0. */
	pci_device_set_bar_address(&dev, 5, 0x1234);
	fixture_free(f);
}

static void test_set_bar_address_and_caps(void **state)
{
	struct pci_device dev;
	int off1, off2;

	(void)state;
	pci_device_init(&dev, 0x1af4, 0x1043, 0x078000, 1);
	pci_device_set_subsystem(&dev, 0x1af4, 0x0003);
	assert_int_equal(pci_cfg_get16(dev.config, PCI_CFG_SUBSYSTEM_ID), 0x0003);
	assert_int_equal(pci_device_set_bar(&dev, 0, PCI_BAR_MEM64, 0x100000, false), 0);
	pci_device_set_bar_address(&dev, 0, 0x812345678ULL);
	assert_int_equal(pci_device_bar_address(&dev, 0), 0x812300000ULL);
	assert_int_equal(pci_device_bar_address(&dev, 1), 0); /* upper half */
	assert_int_equal(pci_device_set_bar(&dev, 1, PCI_BAR_MEM32, 0x1000, false), -EINVAL);

	off1 = pci_device_add_capability(&dev, 0x09, 16);
	off2 = pci_device_add_capability(&dev, 0x11, 12);
	assert_int_equal(off1, 0x40);
	assert_int_equal(off2, 0x50);
	assert_int_equal(dev.config[PCI_CFG_CAPABILITY_LIST], 0x40);
	assert_int_equal(dev.config[0x40], 0x09);
	assert_int_equal(dev.config[0x41], 0x50);
	assert_int_equal(dev.config[0x50], 0x11);
	assert_int_equal(dev.config[0x51], 0);
	assert_true(dev.config[PCI_CFG_STATUS] & PCI_STS_CAP_LIST);
	assert_int_equal(pci_device_add_capability(&dev, 0x05, 1), -EINVAL);
	assert_int_equal(pci_device_add_capability(&dev, 0x05, 200), -ENOSPC);
	/* A hand-made loop in the chain is refused, not followed forever. */
	dev.config[0x51] = 0x40;
	assert_int_equal(pci_device_add_capability(&dev, 0x05, 4), -EINVAL);
}

static void test_add_device_errors(void **state)
{
	struct fixture *f = fixture_new();
	struct pci_device a, b, c, many[32];
	int i, added = 0, r = 0;

	(void)state;
	pci_device_init(&a, 1, 1, 0, 0);
	pci_device_init(&b, 1, 2, 0, 0);
	pci_device_init(&c, 1, 3, 0, 0);
	a.devfn = PCI_DEVFN(0, 0);
	assert_int_equal(pci_host_add_device(f->host, &a), -EEXIST); /* the host bridge */
	a.devfn = PCI_DEVFN(4, 0);
	assert_int_equal(pci_host_add_device(f->host, &a), 0);
	b.devfn = PCI_DEVFN(4, 0);
	assert_int_equal(pci_host_add_device(f->host, &b), -EEXIST);
	b.devfn = PCI_DEVFN(4, 3);
	assert_int_equal(pci_host_add_device(f->host, &b), 0);
	/* Function 0 now says the slot is multi-function. */
	assert_int_equal(conf1_read(f, PCI_DEVFN(4, 0), PCI_CFG_HEADER_TYPE, 1),
	                 PCI_HEADER_TYPE_MULTIFUNCTION);
	assert_int_equal(conf1_read(f, PCI_DEVFN(4, 3), PCI_CFG_DEVICE_ID, 2), 2);
	c.devfn = 300;
	assert_int_equal(pci_host_add_device(f->host, &c), -EINVAL);
	assert_int_equal(pci_host_add_device(f->host, NULL), -EINVAL);
	/* Fill the bus. */
	for (i = 0; i < 32 && r == 0; i++) {
		pci_device_init(&many[i], 1, (uint16_t)(10 + i), 0, 0);
		r = pci_host_add_device(f->host, &many[i]);
		if (r == 0)
			added++;
	}
	assert_int_equal(r, -ENOSPC);
	assert_int_equal(added, 30); /* slots 1-3 and 5-31 */
	fixture_free(f);
	pci_host_destroy(NULL);
}

struct bar_log {
	unsigned int bar;
	uint64_t offset;
	uint32_t len;
	bool is_write;
	int calls;
};

static void log_bar_io(struct pci_device *dev, unsigned int bar, uint64_t offset, void *data,
                       uint32_t len, bool is_write)
{
	struct bar_log *log = dev->opaque;

	log->bar = bar;
	log->offset = offset;
	log->len = len;
	log->is_write = is_write;
	log->calls++;
	if (!is_write)
		memset(data, 0x42, len);
}

static void test_mmio_routing(void **state)
{
	static const struct pci_device_ops ops = {.bar_io = log_bar_io};
	struct fixture *f = fixture_new();
	struct pci_device dev;
	struct bar_log log = {0};
	uint8_t b[8];

	(void)state;
	pci_device_init(&dev, 0x1af4, 0x1041, 0x020000, 1);
	dev.ops = &ops;
	dev.opaque = &log;
	assert_int_equal(pci_device_set_bar(&dev, 0, PCI_BAR_MEM32, 0x1000, false), 0);
	assert_int_equal(pci_device_set_bar(&dev, 2, PCI_BAR_MEM64, 0x4000, false), 0);
	assert_int_equal(pci_host_add_device(f->host, &dev), 0);
	conf1_write(f, dev.devfn, PCI_CFG_BAR0, 4, (uint32_t)LAYOUT_PCI_MMIO32 + 0x10000);
	conf1_write(f, dev.devfn, PCI_CFG_BAR0 + 8, 4, (uint32_t)LAYOUT_PCI_MMIO32 + 0x20000);

	/* Memory decoding off: nothing there. */
	pci_host_mmio_io(f->host, 0x10000, b, 4, false);
	assert_int_equal(pci_cfg_get32(b, 0), 0xffffffff);
	assert_int_equal(log.calls, 0);

	conf1_write(f, dev.devfn, PCI_CFG_COMMAND, 2, PCI_CMD_MEMORY);
	pci_host_mmio_io(f->host, 0x10008, b, 4, false);
	assert_int_equal(log.calls, 1);
	assert_int_equal(log.bar, 0);
	assert_int_equal(log.offset, 8);
	assert_int_equal(b[0], 0x42);
	pci_host_mmio_io(f->host, 0x23ff8, b, 8, true);
	assert_int_equal(log.calls, 2);
	assert_int_equal(log.bar, 2);
	assert_int_equal(log.offset, 0x3ff8);
	assert_true(log.is_write);
	/* Straddling the end of a BAR, or outside every BAR: not routed. */
	pci_host_mmio_io(f->host, 0x10ffc, b, 8, false);
	pci_host_mmio_io(f->host, 0x30000, b, 4, false);
	assert_int_equal(log.calls, 2);
	assert_int_equal(b[0], 0xff);
	/* Move BAR 0: the old address goes dead, the new one works. */
	conf1_write(f, dev.devfn, PCI_CFG_BAR0, 4, (uint32_t)LAYOUT_PCI_MMIO32 + 0x50000);
	pci_host_mmio_io(f->host, 0x10000, b, 4, false);
	assert_int_equal(log.calls, 2);
	pci_host_mmio_io(f->host, 0x50000, b, 4, false);
	assert_int_equal(log.calls, 3);
	pci_host_mmio_io(f->host, UINT64_MAX, b, 8, false);
	assert_int_equal(log.calls, 3);
	fixture_free(f);
}

static void test_odd_accesses(void **state)
{
	struct fixture *f = fixture_new();
	struct pci_device dev;
	uint8_t b[8];
	uint64_t offs[] = {
	    0,     1,          2,       3,       5,        0xffc,          0xffd,
	    0xfff, 0x1000 - 2, 0xfffff, 0xffffc, 0x100000, UINT64_MAX - 3, UINT64_MAX};
	uint32_t len;
	size_t i;

	(void)state;
	pci_device_init(&dev, 0x1af4, 0x1041, 0x020000, 1);
	assert_int_equal(pci_device_set_bar(&dev, 0, PCI_BAR_MEM32, 0x1000, false), 0);
	dev.devfn = PCI_DEVFN(0, 1);
	assert_int_equal(pci_host_add_device(f->host, &dev), 0);
	for (len = 1; len <= 8; len *= 2)
		for (i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
			memset(b, 0xff, sizeof(b));
			pci_host_ecam_io(f->host, offs[i], b, len, true);
			pci_host_ecam_io(f->host, offs[i], b, len, false);
			pci_host_cfc_io(f->host, offs[i] & 7, b, len, false);
			pci_host_cfc_io(f->host, offs[i] & 7, b, len, true);
			pci_host_cf8_io(f->host, offs[i] & 3, b, len, false);
			pci_host_mmio_io(f->host, offs[i], b, len, false);
		}
	/* An 8-byte ECAM read crossing from the bridge into function 1. */
	pci_host_ecam_io(f->host, 0xffc, b, 8, false);
	assert_int_equal(pci_cfg_get32(b, 4), 0x10411af4);
	/* A read past the 4 bytes of CFC fills 0xff. */
	cf8_write(f, conf1_addr(0, 0, 0));
	pci_host_cfc_io(f->host, 2, b, 4, false);
	assert_int_equal(pci_cfg_get16(b, 0), PCI_HOST_BRIDGE_DEVICE);
	assert_int_equal(pci_cfg_get16(b, 2), 0xffff);
	fixture_free(f);
}

#define PCI_STATE_LEN (4 + PCI_CFG_SPACE_SIZE)

/*
 * What a guest leaves in the host: the bridge's writable registers set, a
 * status error bit (as if a master abort had been seen), and the address
 * register pointing at the bridge's command register.
 */
static void pci_busy_state(struct fixture *f)
{
	conf1_write(f, 0, PCI_CFG_COMMAND, 2, PCI_CMD_MEMORY | PCI_CMD_MASTER | PCI_CMD_SERR);
	conf1_write(f, 0, PCI_CFG_CACHE_LINE_SIZE, 1, 0x10);
	conf1_write(f, 0, PCI_CFG_LATENCY_TIMER, 1, 0x40);
	conf1_write(f, 0, PCI_CFG_INTERRUPT_LINE, 1, 0x0b);
	cf8_write(f, conf1_addr(0, 0, PCI_CFG_COMMAND));
}

static void test_device_save_restore(void **state)
{
	const struct device_ops *ops = &pci_host_device_ops;
	struct fixture *f = fixture_new(), *g = fixture_new();
	struct pci_device fn_f, fn_g;
	struct dev_state s, s2;
	uint8_t b[4];
	char why[160];

	(void)state;
	/* A function of another owner on both buses: not the host's to save. */
	pci_device_init(&fn_f, 0x1af4, 0x1042, 0x010000, 1);
	pci_device_init(&fn_g, 0x1af4, 0x1042, 0x010000, 1);
	fn_f.devfn = fn_g.devfn = PCI_DEVFN(1, 0);
	assert_int_equal(pci_host_add_device(f->host, &fn_f), 0);
	assert_int_equal(pci_host_add_device(g->host, &fn_g), 0);
	ecam_write(f, PCI_DEVFN(1, 0), PCI_CFG_COMMAND, 2, PCI_CMD_IO);

	pci_busy_state(f);
	dst_save(ops, f->host, &s);
	assert_int_equal(s.len, PCI_STATE_LEN);
	/* Set a status error bit by hand, as hardware would, and restore that. */
	s.buf[4 + PCI_CFG_STATUS + 1] |= 0x20; /* received master abort, W1C */
	assert_int_equal(dst_restore(ops, g->host, s.buf, s.len, why, sizeof(why)), 0);

	/* The address register first (the helpers below rewrite it). */
	assert_int_equal(cf8_read(g), cf8_read(f));
	pci_host_cfc_io(g->host, 0, b, 2, false);
	assert_int_equal(pci_cfg_get16(b, 0), PCI_CMD_MEMORY | PCI_CMD_MASTER | PCI_CMD_SERR);
	for (unsigned int reg = 0; reg < PCI_CFG_SPACE_EXP_SIZE; reg += 4) {
		uint32_t want = ecam_read(f, 0, reg, 4);

		if (reg == PCI_CFG_COMMAND)
			want |= 0x20000000; /* the status bit set above */
		assert_int_equal(ecam_read(g, 0, reg, 4), want);
	}
	/* The guest clears the error bit as on hardware. */
	ecam_write(g, 0, PCI_CFG_STATUS, 2, 0x2000);
	assert_int_equal(ecam_read(g, 0, PCI_CFG_STATUS, 2), 0);
	/* The other function is as its owner left it on g. */
	assert_int_equal(ecam_read(g, PCI_DEVFN(1, 0), PCI_CFG_COMMAND, 2), 0);
	ds_release(&s);

	/* A round trip is exact. */
	pci_busy_state(g);
	dst_save(ops, g->host, &s);
	assert_int_equal(dst_restore(ops, g->host, s.buf, s.len, why, sizeof(why)), 0);
	dst_save(ops, g->host, &s2);
	assert_memory_equal(s.buf, s2.buf, PCI_STATE_LEN);
	ds_release(&s);
	ds_release(&s2);

	/* A guest reset: no address, the bridge's header as at power-on, IDs intact. */
	ops->reset(g->host);
	assert_int_equal(cf8_read(g), 0);
	assert_int_equal(ecam_read(g, 0, PCI_CFG_COMMAND, 4), 0);
	assert_int_equal(ecam_read(g, 0, PCI_CFG_CACHE_LINE_SIZE, 4), 0);
	assert_int_equal(ecam_read(g, 0, PCI_CFG_INTERRUPT_LINE, 1), 0);
	assert_int_equal(ecam_read(g, 0, PCI_CFG_VENDOR_ID, 4),
	                 PCI_HOST_BRIDGE_DEVICE << 16 | PCI_HOST_BRIDGE_VENDOR);
	assert_int_equal(ecam_read(g, 0, PCI_CFG_REVISION_ID, 4) >> 8, PCI_HOST_BRIDGE_CLASS);
	fixture_free(f);
	fixture_free(g);
}

static void pci_expect_bad(struct fixture *g, const struct dev_state *s, size_t off, uint8_t val,
                           const char *why)
{
	uint8_t buf[PCI_STATE_LEN];

	memcpy(buf, s->buf, sizeof(buf));
	buf[off] = val;
	dst_expect_refused(&pci_host_device_ops, g->host, buf, sizeof(buf), why, SIZE_MAX);
}

static void test_device_restore_refused(void **state)
{
	const struct device_ops *ops = &pci_host_device_ops;
	struct fixture *f = fixture_new(), *g = fixture_new(), *h = fixture_new();
	struct pci_device fn1;
	struct dev_state s;

	(void)state;
	pci_busy_state(f);
	dst_save(ops, f->host, &s);
	assert_int_equal(s.len, PCI_STATE_LEN);
	ecam_write(g, 0, PCI_CFG_LATENCY_TIMER, 1, 0x77); /* g's own state */
	cf8_write(g, conf1_addr(0, PCI_DEVFN(2, 1), 0x40));

	dst_expect_exact(ops, g->host, &s, SIZE_MAX);
	pci_expect_bad(g, &s, 0, 0x01, "config address register holds 0x80000001");
	pci_expect_bad(g, &s, 3, 0x81, "bits 30:24 or 1:0 set");
	pci_expect_bad(g, &s, 4 + PCI_CFG_VENDOR_ID, 0x87,
	               "the host bridge's read-only config byte 0 is 0x87, not 0x86");
	pci_expect_bad(g, &s, 4 + PCI_CFG_CLASS_DEVICE + 1, 0x01, "read-only config byte 0xb");
	pci_expect_bad(g, &s, 4 + PCI_CFG_BAR0, 0xf0, "read-only config byte 0x10");
	pci_expect_bad(g, &s, 4 + 0xff, 0x01, "read-only config byte 0xff");
	/* Command bit 3 (special cycles) is not writable on this bridge. */
	pci_expect_bad(g, &s, 4 + PCI_CFG_COMMAND, 0x08 | 0x06, "read-only config byte 0x4");
	assert_int_equal(ecam_read(g, 0, PCI_CFG_LATENCY_TIMER, 1), 0x77);
	assert_int_equal(cf8_read(g), conf1_addr(0, PCI_DEVFN(2, 1), 0x40));

	/* A host whose slot 0 has a second function: its bridge says multi-function. */
	pci_device_init(&fn1, 0x1234, 1, 0xff0000, 0);
	fn1.devfn = PCI_DEVFN(0, 1);
	assert_int_equal(pci_host_add_device(h->host, &fn1), 0);
	pci_expect_bad(h, &s, 4 + PCI_CFG_HEADER_TYPE, 0,
	               "read-only config byte 0xe is 0x00, not 0x80");
	ops->reset(h->host); /* and keeps saying it after a reset */
	assert_int_equal(ecam_read(h, 0, PCI_CFG_HEADER_TYPE, 1), PCI_HEADER_TYPE_MULTIFUNCTION);
	ds_release(&s);
	fixture_free(f);
	fixture_free(g);
	fixture_free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_address_register),
	    cmocka_unit_test(test_host_bridge_ids),
	    cmocka_unit_test(test_absent_functions),
	    cmocka_unit_test(test_ecam_matches_conf1),
	    cmocka_unit_test(test_bar_sizing),
	    cmocka_unit_test(test_set_bar_address_and_caps),
	    cmocka_unit_test(test_add_device_errors),
	    cmocka_unit_test(test_mmio_routing),
	    cmocka_unit_test(test_odd_accesses),
	    cmocka_unit_test(test_device_save_restore),
	    cmocka_unit_test(test_device_restore_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
