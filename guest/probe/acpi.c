/* SPDX-License-Identifier: MIT */
/*
 * Finding ACPI tables (ACPI 6.5 §5.2): the RSDP from the boot information or
 * the BIOS areas, then the XSDT (or RSDT) and a table by signature. Tables
 * must lie below 4 GiB, where the probe's identity map is static.
 */
#include "probe.h"

struct acpi_rsdp {
	char signature[8]; /* "RSD PTR " */
	uint8_t checksum;  /* over the first 20 bytes */
	char oem_id[6];
	uint8_t revision; /* 0: ACPI 1.0, RSDT only; 2: XSDT */
	uint32_t rsdt;
	uint32_t length;
	uint64_t xsdt;
	uint8_t ext_checksum; /* over `length` bytes */
	uint8_t reserved[3];
} __attribute__((packed));

#define BDA_EBDA_SEGMENT 0x40e
#define BIOS_AREA 0xe0000
#define BIOS_AREA_END 0x100000

/* FADT fields (ACPI 6.5 §5.2.9, Table 5.9). */
#define FADT_FLAGS 112
#define FADT_FLAG_TMR_VAL_EXT (1u << 8)
#define FADT_PM_TMR_BLK 76
#define FADT_X_PM_TMR_BLK 208
#define GAS_SPACE_IO 1

static uint8_t acpi_sum(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint8_t s = 0;

	while (n--)
		s += *b++;
	return s;
}

static const struct acpi_rsdp *rsdp_check(uint64_t addr)
{
	const struct acpi_rsdp *r = (const void *)(uintptr_t)addr;

	if (memcmp(r->signature, "RSD PTR ", 8) != 0 || acpi_sum(r, 20) != 0)
		return NULL;
	if (r->revision >= 2 && (r->length < sizeof(*r) || acpi_sum(r, r->length) != 0))
		return NULL;
	return r;
}

static const struct acpi_rsdp *rsdp_scan(uint64_t start, uint64_t end)
{
	for (uint64_t a = start; a + sizeof(struct acpi_rsdp) <= end; a += 16)
		if (rsdp_check(a))
			return rsdp_check(a);
	return NULL;
}

/* The RSDP the loader passed, else one in the EBDA's first KiB or 0xe0000-0xfffff. */
static const struct acpi_rsdp *rsdp_find(void)
{
	const struct acpi_rsdp *r = NULL;
	uint16_t ebda_segment = *(volatile uint16_t *)BDA_EBDA_SEGMENT;
	uint64_t ebda = (uint64_t)ebda_segment << 4;

	if (boot.rsdp && boot.rsdp < 4 * GIB)
		r = rsdp_check(boot.rsdp);
	if (!r && ebda >= 0x80000 && ebda < 0xa0000)
		r = rsdp_scan(ebda, ebda + 1024);
	if (!r)
		r = rsdp_scan(BIOS_AREA, BIOS_AREA_END);
	return r;
}

static const struct acpi_header *table_check(uint64_t addr)
{
	const struct acpi_header *h = (const void *)(uintptr_t)addr;

	if (addr == 0 || addr >= 4 * GIB || h->length < sizeof(*h) || addr + h->length > 4 * GIB ||
	    acpi_sum(h, h->length) != 0)
		return NULL;
	return h;
}

/*
 * The first table with `signature` listed in the XSDT (RSDT for ACPI 1.0),
 * with a valid checksum; "DSDT" is found through the FADT. NULL if none.
 */
const struct acpi_header *acpi_find_table(const char *signature)
{
	const struct acpi_rsdp *r = rsdp_find();
	const struct acpi_header *root;
	unsigned int entry_size;

	if (!r)
		return NULL;
	if (memcmp(signature, "DSDT", 4) == 0) {
		const struct acpi_header *fadt = acpi_find_table("FACP");
		const uint8_t *f = (const void *)fadt;
		uint64_t dsdt = 0;

		if (!fadt)
			return NULL;
		if (fadt->length >= 148)
			dsdt = *(const uint64_t *)(f + 140); /* X_DSDT */
		if (!dsdt)
			dsdt = *(const uint32_t *)(f + 40); /* DSDT */
		return table_check(dsdt);
	}
	if (r->revision >= 2 && r->xsdt) {
		root = table_check(r->xsdt);
		entry_size = 8;
	} else {
		root = table_check(r->rsdt);
		entry_size = 4;
	}
	if (!root)
		return NULL;
	const uint8_t *e = (const uint8_t *)(root + 1);
	unsigned int n = (root->length - sizeof(*root)) / entry_size;
	for (unsigned int i = 0; i < n; i++) {
		uint64_t addr = entry_size == 8 ? *(const uint64_t *)(e + 8 * i)
		                                : *(const uint32_t *)(e + 4 * i);
		const struct acpi_header *h = table_check(addr);

		if (h && memcmp(h->signature, signature, 4) == 0)
			return h;
	}
	return NULL;
}

/* The FADT's PM timer I/O port (0 if none); *ext32 set for a 32-bit counter. */
uint16_t acpi_pm_timer_port(bool *ext32)
{
	const struct acpi_header *fadt = acpi_find_table("FACP");
	const uint8_t *f = (const void *)fadt;
	uint32_t port;

	*ext32 = false;
	if (!fadt || fadt->length < FADT_PM_TMR_BLK + 4)
		return 0;
	port = *(const uint32_t *)(f + FADT_PM_TMR_BLK);
	if (!port && fadt->length >= FADT_X_PM_TMR_BLK + 12 && f[FADT_X_PM_TMR_BLK] == GAS_SPACE_IO)
		port = *(const uint32_t *)(f + FADT_X_PM_TMR_BLK + 4);
	if (fadt->length >= FADT_FLAGS + 4)
		*ext32 = *(const uint32_t *)(f + FADT_FLAGS) & FADT_FLAG_TMR_VAL_EXT;
	return port <= 0xffff ? port : 0;
}
