/* SPDX-License-Identifier: MIT */
#ifndef NESTVM_DEVICES_PCI_PCI_HOST_H
#define NESTVM_DEVICES_PCI_PCI_HOST_H

#include <stdbool.h>
#include <stdint.h>

#include "core/bus.h"

/*
 * PCI bus 0 behind a host bridge, reachable two ways:
 *
 *  - Configuration mechanism #1 (PCI Local Bus Specification 3.0 §3.2.2.3.2):
 *    a 32-bit write to 0xCF8 selects enable (bit 31), bus (23:16), device
 *    (15:11), function (10:8) and dword register (7:2); accesses of any width
 *    to 0xCFC-0xCFF then reach the selected dword's bytes. Only a 32-bit
 *    access at 0xCF8 is the address register; byte and word accesses to
 *    0xCF8-0xCFB belong to other devices (0xCF9 is the reset control
 *    register, forwarded to cfg->cf9_io).
 *  - ECAM (PCI Express Base Specification 6.0 §7.2.2), bus 0 only: the
 *    function's 4 KiB configuration space is at offset dev<<15 | fn<<12.
 *
 * Function 00:00.0 is the host bridge (8086:29c0, class 060000, type 0
 * header, no BARs). A function nobody registered reads all ones and ignores
 * writes, as a master abort does.
 *
 * Devices embed a struct pci_device: a 4 KiB configuration space with a
 * write mask (bits the guest may change) and a write-1-to-clear mask, so
 * read-only identification, BAR sizing (write all ones, read back the size
 * mask) and the status register all follow from the masks without device
 * code. Optional ops let a device refresh registers before a read, react
 * after a write (BAR moved, command register changed) and serve accesses to
 * its memory BARs, which the host routes from the MMIO window by the BARs'
 * current addresses (so the bus, fixed once vCPUs run, need not change).
 *
 * Locking: the host has one mutex for the address register and every
 * configuration access, held while the config_read/config_write ops run;
 * those ops must not call back into pci_host_*(). bar_io is called without
 * it. Once a device is added, the guest changes its config[] under that
 * mutex at any time: device code running elsewhere (bar_io, a queue thread)
 * should read it through pci_host_config_read() or keep its own copy of
 * what it needs, taken in config_write.
 */

#define PCI_CFG_SPACE_SIZE 256      /* conventional PCI */
#define PCI_CFG_SPACE_EXP_SIZE 4096 /* PCI Express extended */
#define PCI_NUM_BARS 6
#define PCI_MAX_DEVICES 32
#define PCI_MAX_FUNCTIONS 8
#define PCI_DEVFN(dev, fn) ((uint16_t)((((dev)&0x1f) << 3) | ((fn)&0x07)))
#define PCI_DEVFN_DEV(devfn) (((devfn) >> 3) & 0x1f)
#define PCI_DEVFN_FN(devfn) ((devfn)&0x07)
#define PCI_DEVFN_AUTO 0xffff /* pci_host_add_device picks the first free slot */

/* Type 0 configuration header (PCI 3.0 §6.1). */
#define PCI_CFG_VENDOR_ID 0x00
#define PCI_CFG_DEVICE_ID 0x02
#define PCI_CFG_COMMAND 0x04
#define PCI_CFG_STATUS 0x06
#define PCI_CFG_REVISION_ID 0x08
#define PCI_CFG_CLASS_PROG 0x09
#define PCI_CFG_CLASS_DEVICE 0x0a
#define PCI_CFG_CACHE_LINE_SIZE 0x0c
#define PCI_CFG_LATENCY_TIMER 0x0d
#define PCI_CFG_HEADER_TYPE 0x0e
#define PCI_CFG_BIST 0x0f
#define PCI_CFG_BAR0 0x10
#define PCI_CFG_SUBSYSTEM_VENDOR_ID 0x2c
#define PCI_CFG_SUBSYSTEM_ID 0x2e
#define PCI_CFG_ROM_ADDRESS 0x30
#define PCI_CFG_CAPABILITY_LIST 0x34
#define PCI_CFG_INTERRUPT_LINE 0x3c
#define PCI_CFG_INTERRUPT_PIN 0x3d
#define PCI_CFG_HEADER_END 0x40 /* capabilities start here */

#define PCI_HEADER_TYPE_NORMAL 0x00
#define PCI_HEADER_TYPE_MULTIFUNCTION 0x80

#define PCI_CMD_IO 0x0001
#define PCI_CMD_MEMORY 0x0002
#define PCI_CMD_MASTER 0x0004
#define PCI_CMD_PARITY 0x0040
#define PCI_CMD_SERR 0x0100
#define PCI_CMD_INTX_DISABLE 0x0400

#define PCI_STS_INTERRUPT 0x0008
#define PCI_STS_CAP_LIST 0x0010
#define PCI_STS_W1C 0xf900 /* parity, target/master aborts, SERR, parity error */

#define PCI_BAR_SPACE_IO 0x01
#define PCI_BAR_MEM_TYPE_64 0x04
#define PCI_BAR_MEM_PREFETCH 0x08
#define PCI_BAR_MEM_ADDR_MASK (~0xfULL)
#define PCI_BAR_IO_ADDR_MASK (~0x3ULL)

#define PCI_HOST_BRIDGE_VENDOR 0x8086
#define PCI_HOST_BRIDGE_DEVICE 0x29c0
#define PCI_HOST_BRIDGE_CLASS 0x060000

/* Configuration mechanism #1 address register (0xCF8). */
#define PCI_CONFIG_ADDR_ENABLE 0x80000000U
#define PCI_CONFIG_ADDR_MASK 0x80fffffcU /* enable, bus, devfn, dword register */
#define PCI_CONFIG_PORT_LEN 4            /* 0xCF8-0xCFB and 0xCFC-0xCFF */

enum pci_bar_type {
	PCI_BAR_UNUSED = 0,
	PCI_BAR_IO,
	PCI_BAR_MEM32,
	PCI_BAR_MEM64, /* takes this BAR and the next one */
};

struct pci_bar {
	enum pci_bar_type type;
	uint64_t size;
};

struct pci_device;

struct pci_device_ops {
	/* Before the guest reads [reg, reg + len): refresh dynamic registers. */
	void (*config_read)(struct pci_device *dev, uint32_t reg, uint32_t len);
	/* After a guest write to [reg, reg + len) went through the masks. */
	void (*config_write)(struct pci_device *dev, uint32_t reg, uint32_t len);
	/* A guest access to memory BAR @bar at @offset (see pci_host_mmio_io). */
	void (*bar_io)(struct pci_device *dev, unsigned int bar, uint64_t offset, void *data,
	               uint32_t len, bool is_write);
};

/*
 * A PCI function. Set it up with pci_device_init() and the pci_device_set_*
 * helpers, then hand it to pci_host_add_device(); it must outlive the host.
 * Each ops hook sees accesses that stay within one dword.
 */
struct pci_device {
	uint8_t config[PCI_CFG_SPACE_EXP_SIZE];
	uint8_t wmask[PCI_CFG_SPACE_EXP_SIZE];   /* 1 = guest-writable bit */
	uint8_t w1cmask[PCI_CFG_SPACE_EXP_SIZE]; /* 1 = write-1-to-clear bit */
	struct pci_bar bars[PCI_NUM_BARS];
	const struct pci_device_ops *ops; /* may be NULL */
	void *opaque;                     /* the owner's */
	const char *name;
	uint16_t devfn;    /* PCI_DEVFN(dev, fn), or PCI_DEVFN_AUTO before adding */
	uint16_t next_cap; /* where pci_device_add_capability() puts the next one */
};

/* Little-endian helpers for code that fills a configuration space. */
static inline uint16_t pci_cfg_get16(const uint8_t *cfg, uint32_t reg)
{
	return (uint16_t)(cfg[reg] | cfg[reg + 1] << 8);
}

static inline uint32_t pci_cfg_get32(const uint8_t *cfg, uint32_t reg)
{
	return (uint32_t)pci_cfg_get16(cfg, reg) | (uint32_t)pci_cfg_get16(cfg, reg + 2) << 16;
}

static inline void pci_cfg_set16(uint8_t *cfg, uint32_t reg, uint16_t v)
{
	cfg[reg] = (uint8_t)v;
	cfg[reg + 1] = (uint8_t)(v >> 8);
}

static inline void pci_cfg_set32(uint8_t *cfg, uint32_t reg, uint32_t v)
{
	pci_cfg_set16(cfg, reg, (uint16_t)v);
	pci_cfg_set16(cfg, reg + 2, (uint16_t)(v >> 16));
}

/*
 * pci_device_init - zero @dev and fill a type 0 header: IDs, class code
 * (base << 16 | sub << 8 | prog-if) and revision read-only; command (I/O,
 * memory, bus master, parity, SERR, INTx disable), cache line size, latency
 * timer and interrupt line writable; the status error bits write-1-to-clear.
 */
void pci_device_init(struct pci_device *dev, uint16_t vendor, uint16_t device, uint32_t class_code,
                     uint8_t revision);

/* pci_device_set_subsystem - the read-only subsystem vendor and device IDs. */
void pci_device_set_subsystem(struct pci_device *dev, uint16_t vendor, uint16_t device);

/*
 * pci_device_set_bar - declare BAR @bar of @type and @size bytes (a power of
 * two; at least 16 for memory, 4 to 256 for I/O; 32-bit memory at most
 * 2 GiB). A 64-bit BAR also takes BAR @bar + 1. Sets the read-only type bits
 * and the write mask that makes all-ones read back as the size mask.
 * Returns 0 or -EINVAL.
 */
int pci_device_set_bar(struct pci_device *dev, unsigned int bar, enum pci_bar_type type,
                       uint64_t size, bool prefetchable) __attribute__((warn_unused_result));

/* pci_device_bar_address - the address BAR @bar holds now (0 if unused). */
uint64_t pci_device_bar_address(const struct pci_device *dev, unsigned int bar);

/*
 * pci_device_set_bar_address - program BAR @bar as firmware would (the low
 * bits of @addr below the BAR's size are dropped). Call before adding the
 * device, or through the host lock via pci_host_config_write().
 */
void pci_device_set_bar_address(struct pci_device *dev, unsigned int bar, uint64_t addr);

/*
 * pci_device_add_capability - append a capability of @len bytes (at least 2,
 * for the ID and next pointer) with ID @cap_id to the list at 0x34, setting
 * STATUS.CAP_LIST. Its body starts zeroed and read-only: set config[] and
 * wmask[] for it afterwards. Returns its dword-aligned offset (>= 0x40) or
 * -EINVAL / -ENOSPC.
 */
int pci_device_add_capability(struct pci_device *dev, uint8_t cap_id, uint8_t len)
    __attribute__((warn_unused_result));

struct pci_host_config {
	/*
	 * Byte accesses to 0xCF9 (the reset control register, the FADT's
	 * RESET_REG) are forwarded here with offset 0, since 0xCF9 lies inside
	 * the 0xCF8 range. NULL: reads 0xff, writes ignored.
	 */
	bus_io_fn cf9_io;
	void *cf9_opaque;
	/* Guest-physical base of the window pci_host_mmio_io() serves. */
	uint64_t mmio_base;
};

struct pci_host;

/* pci_host_create - bus 0 with only the host bridge. Returns 0, -EINVAL or -ENOMEM. */
int pci_host_create(const struct pci_host_config *cfg, struct pci_host **out)
    __attribute__((warn_unused_result));

/* pci_host_destroy - free the host (not the added devices); NULL is a no-op. */
void pci_host_destroy(struct pci_host *host);

/*
 * pci_host_add_device - put @dev on bus 0 at dev->devfn, or at function 0
 * of the first free device number if that is PCI_DEVFN_AUTO (dev->devfn is
 * then updated). Sets the multi-function header bit of function 0 when a
 * slot holds more than one function. Returns 0, -EINVAL, -EEXIST (devfn
 * taken) or -ENOSPC (bus full).
 */
int pci_host_add_device(struct pci_host *host, struct pci_device *dev)
    __attribute__((warn_unused_result));

/*
 * pci_host_config_read, pci_host_config_write - a configuration access to
 * bus 0 @devfn as the guest would make it (masks and ops apply), for the
 * monitor and tests. @len is 1, 2 or 4 within one dword; anything else, or
 * an absent function, reads all ones.
 */
uint32_t pci_host_config_read(struct pci_host *host, unsigned int devfn, uint32_t reg,
                              uint32_t len);
void pci_host_config_write(struct pci_host *host, unsigned int devfn, uint32_t reg, uint32_t len,
                           uint32_t val);

/*
 * Bus handlers:
 *   bus_add_range(pio, PORT_PCI_CONFIG_ADDR, PCI_CONFIG_PORT_LEN, pci_host_cf8_io, host, ...)
 *   bus_add_range(pio, PORT_PCI_CONFIG_DATA, PCI_CONFIG_PORT_LEN, pci_host_cfc_io, host, ...)
 *   bus_add_range(mmio, LAYOUT_PCI_ECAM, LAYOUT_PCI_ECAM_SIZE, pci_host_ecam_io, host, ...)
 *   bus_add_range(mmio, cfg->mmio_base, window size, pci_host_mmio_io, host, ...)
 * The last routes an access to the memory BAR that covers it, if the
 * function has COMMAND.MEMORY set, to that device's ops->bar_io; elsewhere
 * reads are all ones.
 */
void pci_host_cf8_io(void *opaque, uint64_t offset, void *data, uint32_t len, bool is_write);
void pci_host_cfc_io(void *opaque, uint64_t offset, void *data, uint32_t len, bool is_write);
void pci_host_ecam_io(void *opaque, uint64_t offset, void *data, uint32_t len, bool is_write);
void pci_host_mmio_io(void *opaque, uint64_t offset, void *data, uint32_t len, bool is_write);

/*
 * The host as a device of the lifecycle layer (core/device.h); dev is a
 * struct pci_host *. Its state is its own: the other functions on the bus
 * are devices of their own, saved and restored by their owners (the
 * virtio PCI transports), and the MMIO routing follows from their BARs.
 * No threads. State version 1 is
 *
 *   u32 the 0xCF8 address register
 *   256 bytes the host bridge's configuration space (all of it that is not
 *       zero and read-only)
 *
 * restore() refuses a bridge whose read-only bits (IDs, class, header type,
 * BAR types) differ from this one's: the guest saw another bridge. reset()
 * clears the address register and puts the bridge's header back.
 */
struct device_ops;
extern const struct device_ops pci_host_device_ops;

#endif
