/* SPDX-License-Identifier: MIT */
/*
 * test=pci: enumerate bus 0 through configuration mechanism #1 (ports
 * 0xcf8/0xcfc, PCI Local Bus 3.0 §3.2.2.3.2), print every function, and
 * require a host bridge (class 06 00) at 00:00.0. If the MCFG table
 * (PCI Firmware 3.2 §4.1.2) gives an ECAM window for bus 0, 00:00.0's IDs
 * read through it must match.
 */
#include "probe.h"

#define PCI_CONFIG_ENABLE (1u << 31)
#define PCI_VENDOR_DEVICE 0x00
#define PCI_CLASS_REVISION 0x08
#define PCI_HEADER_TYPE 0x0c /* byte 2 of this dword */
#define PCI_HEADER_MULTIFUNCTION 0x80
#define PCI_CLASS_HOST_BRIDGE 0x0600
#define PCI_NO_DEVICE 0xffff

#define MCFG_ENTRIES 44
#define MCFG_ENTRY_SIZE 16

static uint32_t pci_read(unsigned int dev, unsigned int fn, unsigned int reg)
{
	outl(PORT_PCI_CONFIG_ADDR, PCI_CONFIG_ENABLE | dev << 11 | fn << 8 | (reg & 0xfc));
	return inl(PORT_PCI_CONFIG_DATA);
}

/* 00:00.0's vendor/device through ECAM, or 0 with *why set if there is none. */
static uint32_t ecam_read_id(const char **why, uint64_t *base_out)
{
	const struct acpi_header *mcfg = acpi_find_table("MCFG");
	const uint8_t *p = (const uint8_t *)mcfg;

	*why = "no MCFG table";
	if (!mcfg)
		return 0;
	*why = "no MCFG entry for segment 0 bus 0";
	for (uint32_t off = MCFG_ENTRIES; off + MCFG_ENTRY_SIZE <= mcfg->length;
	     off += MCFG_ENTRY_SIZE) {
		uint64_t base = *(const uint64_t *)(p + off);
		uint16_t segment = *(const uint16_t *)(p + off + 8);
		uint8_t start_bus = p[off + 10];

		if (segment != 0 || start_bus != 0)
			continue;
		*base_out = base;
		if (base + MIB > 4 * GIB && paging_map_high(base, base + MIB) < 0) {
			*why = "cannot map the ECAM window";
			return 0;
		}
		*why = NULL;
		return mmio_read32(base);
	}
	return 0;
}

int test_pci(void)
{
	uint32_t id0 = 0, class0 = 0, ecam_id;
	unsigned int functions = 0;
	const char *why;
	uint64_t ecam = 0;

	for (unsigned int dev = 0; dev < 32; dev++) {
		for (unsigned int fn = 0; fn < 8; fn++) {
			uint32_t id = pci_read(dev, fn, PCI_VENDOR_DEVICE);
			uint32_t class = pci_read(dev, fn, PCI_CLASS_REVISION) >> 8;

			if ((id & 0xffff) == PCI_NO_DEVICE) {
				if (fn == 0)
					break;
				continue;
			}
			printf("probe: pci: 00:%02x.%u %04x:%04x class %06x\n", dev, fn,
			       id & 0xffff, id >> 16, class);
			functions++;
			if (dev == 0 && fn == 0) {
				id0 = id;
				class0 = class;
			}
			if (fn == 0 &&
			    !((pci_read(dev, 0, PCI_HEADER_TYPE) >> 16) & PCI_HEADER_MULTIFUNCTION))
				break;
		}
	}
	if (functions == 0)
		return probe_fail("no PCI function answers on bus 0");
	if ((class0 >> 8) != PCI_CLASS_HOST_BRIDGE)
		return probe_fail("00:00.0 is class %06x, not a host bridge (0600xx)", class0);

	ecam_id = ecam_read_id(&why, &ecam);
	if (why) {
		printf("probe: pci: ECAM not checked: %s\n", why);
		return probe_pass("%u functions on bus 0, host bridge %04x:%04x at 00:00.0",
		                  functions, id0 & 0xffff, id0 >> 16);
	}
	if (ecam_id != id0)
		return probe_fail("00:00.0 reads %04x:%04x through ECAM at 0x%lx but %04x:%04x "
		                  "through port 0xcf8",
		                  ecam_id & 0xffff, ecam_id >> 16, ecam, id0 & 0xffff, id0 >> 16);
	return probe_pass("%u functions on bus 0, host bridge %04x:%04x at 00:00.0, ECAM at "
	                  "0x%lx agrees",
	                  functions, id0 & 0xffff, id0 >> 16, ecam);
}
