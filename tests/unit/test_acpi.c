/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the ACPI tables (arch/x86/acpi.c). The tables are read back
 * the way a guest would, from the RSDP at offset 0 through the XSDT, with
 * field offsets taken from ACPI 6.4 §5.2 rather than from acpi.c's structs.
 * If iasl (acpica-tools) is installed, the DSDT is also disassembled and
 * recompiled with it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "arch/x86/acpi.h"
#include "arch/x86/layout.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ACPI 6.4 §5.2.5.3 RSDP */
#define RSDP_CHECKSUM_LEN 20
#define RSDP_REVISION 15
#define RSDP_RSDT_ADDRESS 16
#define RSDP_LENGTH 20
#define RSDP_XSDT_ADDRESS 24
#define RSDP_SIZE 36

/* §5.2.6 table header */
#define HDR_LENGTH 4
#define HDR_REVISION 8
#define HDR_OEM_ID 10
#define HDR_SIZE 36

/* §5.2.9 FADT */
#define FADT_FIRMWARE_CTRL 36
#define FADT_DSDT 40
#define FADT_SCI_INT 46
#define FADT_SMI_CMD 48
#define FADT_ACPI_ENABLE 52
#define FADT_ACPI_DISABLE 53
#define FADT_PM1A_EVT_BLK 56
#define FADT_PM1A_CNT_BLK 64
#define FADT_PM_TMR_BLK 76
#define FADT_PM1_EVT_LEN 88
#define FADT_PM1_CNT_LEN 89
#define FADT_PM_TMR_LEN 91
#define FADT_IAPC_BOOT_ARCH 109
#define FADT_FLAGS 112
#define FADT_RESET_REG 116
#define FADT_RESET_VALUE 128
#define FADT_X_FIRMWARE_CTRL 132
#define FADT_X_DSDT 140
#define FADT_X_PM1A_EVT_BLK 148
#define FADT_X_PM1A_CNT_BLK 172
#define FADT_X_PM_TMR_BLK 208
#define FADT_SIZE 276

#define FADT_F_WBINVD (1u << 0)
#define FADT_F_PROC_C1 (1u << 2)
#define FADT_F_SLP_BUTTON (1u << 5)
#define FADT_F_RESET_REG_SUP (1u << 10)
#define FADT_F_HW_REDUCED_ACPI (1u << 20)
#define IAPC_LEGACY_DEVICES (1u << 0)
#define IAPC_8042 (1u << 1)
#define IAPC_VGA_NOT_PRESENT (1u << 2)

/* §5.2.3.2 GAS */
#define GAS_SPACE_ID 0
#define GAS_BIT_WIDTH 1
#define GAS_ADDRESS 4
#define GAS_SYSTEM_IO 1

/* §5.2.10 FACS */
#define FACS_SIZE 64

/* §5.2.12 MADT */
#define MADT_LAPIC_ADDRESS 36
#define MADT_FLAGS 40
#define MADT_ENTRIES 44
#define MADT_PCAT_COMPAT 1u
#define MADT_LOCAL_APIC 0
#define MADT_IO_APIC 1
#define MADT_OVERRIDE 2
#define MADT_LOCAL_APIC_NMI 4

/* PCI Firmware 3.2 §4.1.2 MCFG */
#define MCFG_BASE 44
#define MCFG_SEGMENT 52
#define MCFG_START_BUS 54
#define MCFG_END_BUS 55
#define MCFG_SIZE 60

#define MMIO64_BASE 0x8000000000ULL
#define MMIO64_SIZE 0x4000000000ULL

static uint8_t acpi_mem[LAYOUT_ACPI_SIZE];

/* A built set of tables, as the guest sees them at gpa. */
struct tables {
	const uint8_t *buf;
	size_t len;
	uint64_t gpa;
};

static uint64_t le(const uint8_t *p, size_t n)
{
	uint64_t v = 0;

	while (n--)
		v = v << 8 | p[n];
	return v;
}

static uint8_t sum(const uint8_t *p, size_t n)
{
	uint8_t s = 0;

	while (n--)
		s += *p++;
	return s;
}

static struct acpi_config config(unsigned int nr_cpus)
{
	return (struct acpi_config){
	    .nr_cpus = nr_cpus,
	    .ecam_base = LAYOUT_PCI_ECAM,
	    .ecam_end_bus = 0,
	    .mmio32_base = LAYOUT_PCI_MMIO32,
	    .mmio32_size = LAYOUT_PCI_MMIO32_SIZE,
	    .mmio64_base = MMIO64_BASE,
	    .mmio64_size = MMIO64_SIZE,
	};
}

static struct tables build(const struct acpi_config *cfg)
{
	ssize_t n;

	memset(acpi_mem, 0xa5, sizeof(acpi_mem));
	n = acpi_build(acpi_mem, sizeof(acpi_mem), LAYOUT_ACPI, cfg);
	assert_true(n > 0);
	assert_true((size_t)n <= sizeof(acpi_mem));
	return (struct tables){acpi_mem, (size_t)n, LAYOUT_ACPI};
}

/* at - the bytes at guest-physical [addr, addr + len), or NULL if not all within the tables. */
static const uint8_t *at(const struct tables *t, uint64_t addr, uint64_t len)
{
	if (addr < t->gpa || addr - t->gpa > t->len || len > t->len - (addr - t->gpa))
		return NULL;
	return t->buf + (addr - t->gpa);
}

/* table_at - a checked table: header and whole length inside the tables, signature @sig. */
static const uint8_t *table_at(const struct tables *t, uint64_t addr, const char *sig)
{
	const uint8_t *h = at(t, addr, HDR_SIZE);

	assert_non_null(h);
	assert_memory_equal(h, sig, 4);
	assert_non_null(at(t, addr, le(h + HDR_LENGTH, 4)));
	return h;
}

static const uint8_t *rsdp(const struct tables *t)
{
	const uint8_t *r = t->buf;

	assert_true(t->len >= RSDP_SIZE);
	assert_int_equal(t->gpa % 16, 0);
	assert_memory_equal(r, "RSD PTR ", 8);
	assert_int_equal(r[RSDP_REVISION], 2);
	assert_int_equal(le(r + RSDP_LENGTH, 4), RSDP_SIZE);
	return r;
}

/* find_table - follow RSDP -> XSDT to the one table with signature @sig; NULL if none. */
static const uint8_t *find_table(const struct tables *t, const char *sig)
{
	const uint8_t *xsdt = table_at(t, le(rsdp(t) + RSDP_XSDT_ADDRESS, 8), "XSDT");
	size_t i, nr = (le(xsdt + HDR_LENGTH, 4) - HDR_SIZE) / 8;
	const uint8_t *found = NULL;

	for (i = 0; i < nr; i++) {
		uint64_t addr = le(xsdt + HDR_SIZE + 8 * i, 8);
		const uint8_t *h = at(t, addr, HDR_SIZE);

		assert_non_null(h);
		if (memcmp(h, sig, 4) == 0) {
			assert_null(found);
			found = table_at(t, addr, sig);
		}
	}
	return found;
}

static const uint8_t *find_dsdt(const struct tables *t)
{
	const uint8_t *fadt = find_table(t, "FACP");

	assert_non_null(fadt);
	return table_at(t, le(fadt + FADT_X_DSDT, 8), "DSDT");
}

static void assert_table_checksum(const uint8_t *table)
{
	assert_int_equal(sum(table, le(table + HDR_LENGTH, 4)), 0);
}

static void test_checksums(void **state)
{
	struct acpi_config cfg = config(4);
	struct tables t = build(&cfg);
	const uint8_t *r = rsdp(&t), *fadt = find_table(&t, "FACP");
	const char *sigs[] = {"FACP", "APIC", "MCFG"};
	size_t i;

	(void)state;
	assert_int_equal(sum(r, RSDP_CHECKSUM_LEN), 0);
	assert_int_equal(sum(r, RSDP_SIZE), 0); /* extended checksum */
	assert_memory_equal(r + 9, "NESTVM", 6);
	assert_table_checksum(table_at(&t, le(r + RSDP_XSDT_ADDRESS, 8), "XSDT"));
	assert_table_checksum(table_at(&t, le(r + RSDP_RSDT_ADDRESS, 4), "RSDT"));
	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		const uint8_t *table = find_table(&t, sigs[i]);

		assert_non_null(table);
		assert_table_checksum(table);
		assert_memory_equal(table + HDR_OEM_ID, "NESTVM", 6);
	}
	assert_table_checksum(find_dsdt(&t));
	/* The FACS has no checksum (§5.2.10); it must be 64-byte aligned. */
	assert_int_equal(le(fadt + FADT_X_FIRMWARE_CTRL, 8) % 64, 0);
}

/* The RSDT lists the same tables as the XSDT, with 32-bit pointers. */
static void test_rsdt_matches_xsdt(void **state)
{
	struct acpi_config cfg = config(2);
	struct tables t = build(&cfg);
	const uint8_t *r = rsdp(&t);
	const uint8_t *xsdt = table_at(&t, le(r + RSDP_XSDT_ADDRESS, 8), "XSDT");
	const uint8_t *rsdt = table_at(&t, le(r + RSDP_RSDT_ADDRESS, 4), "RSDT");
	size_t i, nr = (le(xsdt + HDR_LENGTH, 4) - HDR_SIZE) / 8;

	(void)state;
	assert_int_equal(nr, 3);
	assert_int_equal(le(rsdt + HDR_LENGTH, 4), HDR_SIZE + 4 * nr);
	for (i = 0; i < nr; i++)
		assert_int_equal(le(rsdt + HDR_SIZE + 4 * i, 4), le(xsdt + HDR_SIZE + 8 * i, 8));
}

static void assert_gas_io(const uint8_t *gas, uint16_t port, unsigned int bits)
{
	assert_int_equal(gas[GAS_SPACE_ID], GAS_SYSTEM_IO);
	assert_int_equal(gas[GAS_BIT_WIDTH], bits);
	assert_int_equal(le(gas + GAS_ADDRESS, 8), port);
}

static void test_fadt(void **state)
{
	struct acpi_config cfg = config(2);
	struct tables t = build(&cfg);
	const uint8_t *f = find_table(&t, "FACP"), *facs;
	uint32_t flags;

	(void)state;
	assert_non_null(f);
	assert_int_equal(f[HDR_REVISION], 6);
	assert_int_equal(le(f + HDR_LENGTH, 4), FADT_SIZE);

	facs = at(&t, le(f + FADT_X_FIRMWARE_CTRL, 8), FACS_SIZE);
	assert_non_null(facs);
	assert_memory_equal(facs, "FACS", 4);
	assert_int_equal(le(facs + 4, 4), FACS_SIZE);
	assert_int_equal(le(f + FADT_FIRMWARE_CTRL, 4), le(f + FADT_X_FIRMWARE_CTRL, 8));
	table_at(&t, le(f + FADT_X_DSDT, 8), "DSDT");
	assert_int_equal(le(f + FADT_DSDT, 4), le(f + FADT_X_DSDT, 8));

	assert_int_equal(le(f + FADT_SCI_INT, 2), IRQ_ACPI_SCI);
	assert_int_equal(le(f + FADT_SMI_CMD, 4), 0);
	assert_int_equal(f[FADT_ACPI_ENABLE], 0);
	assert_int_equal(f[FADT_ACPI_DISABLE], 0);

	assert_int_equal(le(f + FADT_PM1A_EVT_BLK, 4), PORT_ACPI_PM1A_EVT);
	assert_int_equal(f[FADT_PM1_EVT_LEN], 4);
	assert_int_equal(le(f + FADT_PM1A_CNT_BLK, 4), PORT_ACPI_PM1A_CNT);
	assert_int_equal(f[FADT_PM1_CNT_LEN], 2);
	assert_int_equal(le(f + FADT_PM_TMR_BLK, 4), PORT_ACPI_PM_TMR);
	assert_int_equal(f[FADT_PM_TMR_LEN], 4);
	assert_gas_io(f + FADT_X_PM1A_EVT_BLK, PORT_ACPI_PM1A_EVT, 32);
	assert_gas_io(f + FADT_X_PM1A_CNT_BLK, PORT_ACPI_PM1A_CNT, 16);
	assert_gas_io(f + FADT_X_PM_TMR_BLK, PORT_ACPI_PM_TMR, 32);

	assert_gas_io(f + FADT_RESET_REG, PORT_RESET, 8);
	assert_int_equal(f[FADT_RESET_VALUE], 0x06);

	flags = (uint32_t)le(f + FADT_FLAGS, 4);
	assert_true(flags & FADT_F_RESET_REG_SUP);
	assert_true(flags & FADT_F_WBINVD);
	assert_true(flags & FADT_F_PROC_C1);
	assert_true(flags & FADT_F_SLP_BUTTON);
	assert_false(flags & FADT_F_HW_REDUCED_ACPI);
	assert_int_equal(le(f + FADT_IAPC_BOOT_ARCH, 2),
	                 IAPC_LEGACY_DEVICES | IAPC_8042 | IAPC_VGA_NOT_PRESENT);
}

static void check_madt(unsigned int nr_cpus)
{
	struct acpi_config cfg = config(nr_cpus);
	struct tables t = build(&cfg);
	const uint8_t *m = find_table(&t, "APIC"), *p, *end;
	uint8_t seen[256] = {0};
	unsigned int nr_lapics = 0, nr_ioapics = 0, nr_nmis = 0, ioapic_id = 0;
	int sci_override = 0;

	assert_non_null(m);
	assert_int_equal(le(m + MADT_LAPIC_ADDRESS, 4), LAYOUT_LAPIC);
	assert_true(le(m + MADT_FLAGS, 4) & MADT_PCAT_COMPAT);
	end = m + le(m + HDR_LENGTH, 4);
	for (p = m + MADT_ENTRIES; p < end; p += p[1]) {
		assert_true(p + 2 <= end);
		assert_true(p[1] >= 2 && p + p[1] <= end);
		switch (p[0]) {
		case MADT_LOCAL_APIC:
			assert_int_equal(p[1], 8);
			assert_true(le(p + 4, 4) & 1); /* enabled */
			assert_true(p[3] < nr_cpus);
			assert_int_equal(seen[p[3]]++, 0);
			assert_int_equal(p[2], p[3]); /* processor UID = APIC id */
			nr_lapics++;
			break;
		case MADT_IO_APIC:
			assert_int_equal(p[1], 12);
			ioapic_id = p[2];
			assert_int_equal(le(p + 4, 4), LAYOUT_IOAPIC);
			assert_int_equal(le(p + 8, 4), 0);
			nr_ioapics++;
			break;
		case MADT_OVERRIDE:
			assert_int_equal(p[1], 10);
			assert_int_equal(p[2], 0);     /* ISA */
			assert_int_not_equal(p[3], 0); /* no IRQ0 -> GSI2 */
			if (p[3] == IRQ_ACPI_SCI) {
				assert_int_equal(le(p + 4, 4), IRQ_ACPI_SCI);
				assert_int_equal(le(p + 8, 2), 0x000d); /* active high, level */
				sci_override++;
			}
			break;
		case MADT_LOCAL_APIC_NMI:
			assert_int_equal(p[1], 6);
			assert_int_equal(p[2], 0xff); /* all processors */
			assert_int_equal(p[5], 1);    /* LINT1 */
			nr_nmis++;
			break;
		default:
			fail_msg("unexpected MADT entry type %u", p[0]);
		}
	}
	assert_ptr_equal(p, end);
	assert_int_equal(nr_lapics, nr_cpus);
	assert_int_equal(nr_ioapics, 1);
	assert_int_equal(sci_override, 1);
	assert_int_equal(nr_nmis, 1);
	assert_true(ioapic_id != 0xff);
	assert_int_equal(seen[ioapic_id], 0); /* no CPU has the I/O APIC's id */
}

static void test_madt_1(void **state)
{
	(void)state;
	check_madt(1);
}

static void test_madt_2(void **state)
{
	(void)state;
	check_madt(2);
}

static void test_madt_64(void **state)
{
	(void)state;
	check_madt(64);
}

static void test_madt_max(void **state)
{
	(void)state;
	check_madt(ACPI_MAX_CPUS);
}

/* One ACPI0007 processor device per CPU. */
static void test_dsdt_cpus(void **state)
{
	static const unsigned int counts[] = {1, 3, ACPI_MAX_CPUS};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
		struct acpi_config cfg = config(counts[i]);
		struct tables t = build(&cfg);
		const uint8_t *d = find_dsdt(&t), *p = d, *end = d + le(d + HDR_LENGTH, 4);
		unsigned int n = 0;

		while ((p = memmem(p, (size_t)(end - p), "ACPI0007", 8))) {
			n++;
			p += 8;
		}
		assert_int_equal(n, counts[i]);
	}
}

static void test_cpu_limits(void **state)
{
	static const unsigned int bad[] = {0, ACPI_MAX_CPUS + 1, 255, 256, UINT32_MAX};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct acpi_config cfg = config(bad[i]);

		assert_int_equal(acpi_build(acpi_mem, sizeof(acpi_mem), LAYOUT_ACPI, &cfg),
		                 -EINVAL);
	}
}

static void test_mcfg(void **state)
{
	static const uint8_t end_buses[] = {0, 3};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(end_buses) / sizeof(end_buses[0]); i++) {
		struct acpi_config cfg = config(1);
		struct tables t;
		const uint8_t *m, *d;
		uint8_t reserve[12] = {0x86, 0x09, 0x00, 0x01}; /* Memory32Fixed (ReadWrite, ...) */
		uint32_t len = ((uint32_t)end_buses[i] + 1) << 20;

		cfg.ecam_end_bus = end_buses[i];
		t = build(&cfg);
		m = find_table(&t, "MCFG");
		assert_non_null(m);
		assert_int_equal(le(m + HDR_LENGTH, 4), MCFG_SIZE);
		assert_int_equal(le(m + MCFG_BASE, 8), LAYOUT_PCI_ECAM);
		assert_int_equal(le(m + MCFG_SEGMENT, 2), 0);
		assert_int_equal(m[MCFG_START_BUS], 0);
		assert_int_equal(m[MCFG_END_BUS], end_buses[i]);

		/* The DSDT reserves the same range as a motherboard resource. */
		d = find_dsdt(&t);
		memcpy(reserve + 4, &(uint32_t){LAYOUT_PCI_ECAM}, 4);
		memcpy(reserve + 8, &len, 4);
		assert_non_null(memmem(d, le(d + HDR_LENGTH, 4), reserve, sizeof(reserve)));
		assert_non_null(
		    memmem(d, le(d + HDR_LENGTH, 4), "\x08_HID\x0c\x41\xd0\x0c\x02", 10));
	}
}

/* Name (_S5, Package (4) { SLP_TYP, SLP_TYP, Zero, Zero }) at the root. */
static void test_dsdt_s5(void **state)
{
	_Static_assert(ACPI_S5_SLP_TYP > 1 && ACPI_S5_SLP_TYP <= 0xff, "BytePrefix encoding");
	const uint8_t s5[] = {
	    0x08, '_',
	    'S',  '5',
	    '_', /* NameOp _S5_ */
	    0x12, 0x08,
	    0x04, /* PackageOp, PkgLength, NumElements */
	    0x0a, ACPI_S5_SLP_TYP,
	    0x0a, ACPI_S5_SLP_TYP, /* BytePrefix values */
	    0x00, 0x00,            /* ZeroOp ZeroOp */
	};
	struct acpi_config cfg = config(1);
	struct tables t = build(&cfg);
	const uint8_t *d = find_dsdt(&t);

	(void)state;
	/* The first object after the header, so it is in the root scope. */
	assert_memory_equal(d + HDR_SIZE, s5, sizeof(s5));
}

/* The root bridge's _HID, _CID and its _CRS windows, encoded per §6.4.3.5. */
static void test_dsdt_pci0(void **state)
{
	static const uint8_t hid[] = {0x08, '_', 'H', 'I', 'D', 0x0c, 0x41, 0xd0, 0x0a, 0x08};
	static const uint8_t cid[] = {0x08, '_', 'C', 'I', 'D', 0x0c, 0x41, 0xd0, 0x0a, 0x03};
	static const uint8_t bus[] = {0x88, 0x0d, 0x00, 0x02, 0x0c, 0x00, 0, 0,
	                              0,    0,    3,    0,    0,    0,    4, 0}; /* buses 0-3 */
	static const uint8_t io_lo[] = {0x88, 0x0d, 0x00, 0x01, 0x0c, 0x03, 0,    0,
	                                0x00, 0x00, 0xf7, 0x0c, 0,    0,    0xf8, 0x0c};
	static const uint8_t io_hi[] = {0x88, 0x0d, 0x00, 0x01, 0x0c, 0x03, 0,    0,
	                                0x00, 0x0d, 0xff, 0xff, 0,    0,    0x00, 0xf3};
	static const uint8_t mem32[] = {0x87, 0x17, 0x00, 0x00, 0x0c, 0x01, 0,    0,    0,
	                                0,    0x00, 0x00, 0x00, 0xc0, 0xff, 0xff, 0xff, 0xdf,
	                                0,    0,    0,    0,    0x00, 0x00, 0x00, 0x20};
	static const uint8_t qword_mem[] = {0x8a, 0x2b, 0x00, 0x00}; /* QWordMemory */
	struct acpi_config cfg = config(1);
	struct tables t;
	const uint8_t *d, *p;
	size_t len;

	(void)state;
	cfg.ecam_end_bus = 3;
	t = build(&cfg);
	d = find_dsdt(&t);
	len = le(d + HDR_LENGTH, 4);
	assert_non_null(memmem(d, len, hid, sizeof(hid)));
	assert_non_null(memmem(d, len, cid, sizeof(cid)));
	assert_non_null(memmem(d, len, bus, sizeof(bus)));
	assert_non_null(memmem(d, len, io_lo, sizeof(io_lo)));
	assert_non_null(memmem(d, len, io_hi, sizeof(io_hi)));
	assert_non_null(memmem(d, len, mem32, sizeof(mem32)));
	p = memmem(d, len, qword_mem, sizeof(qword_mem));
	assert_non_null(p);
	assert_int_equal(le(p + 14, 8), MMIO64_BASE);
	assert_int_equal(le(p + 22, 8), MMIO64_BASE + MMIO64_SIZE - 1);
	assert_int_equal(le(p + 38, 8), MMIO64_SIZE);

	/* No 64-bit window: no QWord descriptor at all. */
	cfg.mmio64_size = 0;
	t = build(&cfg);
	d = find_dsdt(&t);
	assert_null(memmem(d, le(d + HDR_LENGTH, 4), qword_mem, sizeof(qword_mem)));
}

/*
 * Every size short of what the tables need fails with -ENOSPC and leaves
 * the bytes past @size alone; the exact size works and gives the same bytes.
 */
static void test_too_small(void **state)
{
	enum { GUARD = 256 };
	struct acpi_config cfg = config(8);
	struct tables t = build(&cfg);
	uint8_t *buf = malloc(t.len + GUARD);
	size_t size, i;

	(void)state;
	assert_non_null(buf);
	for (size = 0; size <= t.len; size++) {
		ssize_t ret;

		memset(buf, 0xa5, t.len + GUARD);
		ret = acpi_build(buf, size, LAYOUT_ACPI, &cfg);
		for (i = size; i < t.len + GUARD; i++)
			if (buf[i] != 0xa5)
				fail_msg("size %zu: byte %zu written", size, i);
		if (size < t.len)
			assert_int_equal(ret, -ENOSPC);
	}
	assert_int_equal(acpi_build(buf, t.len, LAYOUT_ACPI, &cfg), (ssize_t)t.len);
	assert_memory_equal(buf, t.buf, t.len);
	free(buf);
}

static void test_bad_arguments(void **state)
{
	struct acpi_config cfg = config(1);
	size_t size = sizeof(acpi_mem);

	(void)state;
	assert_int_equal(acpi_build(NULL, size, LAYOUT_ACPI, &cfg), -EINVAL);
	assert_int_equal(acpi_build(acpi_mem, size, LAYOUT_ACPI, NULL), -EINVAL);
	/* The RSDP must be 16-byte aligned, everything below 4 GiB. */
	assert_int_equal(acpi_build(acpi_mem, size, LAYOUT_ACPI + 8, &cfg), -EINVAL);
	assert_int_equal(acpi_build(acpi_mem, size, 0x100000000ULL, &cfg), -EINVAL);
	assert_int_equal(acpi_build(acpi_mem, size, 0x100000000ULL - 0x1000, &cfg), -EINVAL);
	assert_true(acpi_build(acpi_mem, size, 0x100000000ULL - size, &cfg) > 0);

	cfg.ecam_base = LAYOUT_PCI_ECAM + 0x1000;
	assert_int_equal(acpi_build(acpi_mem, size, LAYOUT_ACPI, &cfg), -EINVAL);
	cfg = config(1);
	cfg.ecam_base = 0xfff00000;
	cfg.ecam_end_bus = 1;
	assert_int_equal(acpi_build(acpi_mem, size, LAYOUT_ACPI, &cfg), -EINVAL);
	cfg = config(1);
	cfg.mmio32_base = 0xf0000000;
	cfg.mmio32_size = 0x20000000;
	assert_int_equal(acpi_build(acpi_mem, size, LAYOUT_ACPI, &cfg), -EINVAL);
	cfg = config(1);
	cfg.mmio64_base = UINT64_MAX - 0xfff;
	cfg.mmio64_size = 0x2000;
	assert_int_equal(acpi_build(acpi_mem, size, LAYOUT_ACPI, &cfg), -EINVAL);
	cfg.mmio64_size = 0x1000; /* ends exactly at 2^64 - 1 */
	assert_true(acpi_build(acpi_mem, size, LAYOUT_ACPI, &cfg) > 0);
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	int ok;

	if (!f)
		return -1;
	ok = fwrite(data, 1, len, f) == len;
	return fclose(f) == 0 && ok ? 0 : -1;
}

static size_t read_file(const char *path, uint8_t *buf, size_t size)
{
	FILE *f = fopen(path, "rb");
	size_t n;

	if (!f)
		return 0;
	n = fread(buf, 1, size, f);
	fclose(f);
	return n;
}

/* run - run a shell command in @dir, output to @dir/log; dump the log if it fails. */
static int run(const char *dir, const char *cmd)
{
	char line[512];
	int status;

	snprintf(line, sizeof(line), "cd '%s' && %s >>log 2>&1", dir, cmd);
	status = system(line);
	if (status != 0) {
		snprintf(line, sizeof(line), "cat '%s/log' >&2", dir);
		if (system(line) != 0)
			print_error("cannot show %s/log\n", dir);
	}
	return status;
}

/*
 * With iasl available: the DSDT disassembles without errors, the listing
 * recompiles without errors or warnings, and to the same AML (the header
 * aside, which names iasl as the compiler). Every other table disassembles.
 */
static char iasl_dir[] = "/tmp/nestvm-test-acpi-XXXXXX";

/* Remove iasl's scratch directory even when an assertion ended the test. */
static int iasl_teardown(void **state)
{
	(void)state;
	if (strchr(iasl_dir, 'X') == NULL)
		nftw(iasl_dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
	return 0;
}

static void test_iasl(void **state)
{
	static uint8_t aml[LAYOUT_ACPI_SIZE];
	char *dir = iasl_dir;
	char path[256];
	struct acpi_config cfg = config(4);
	struct tables t;
	const uint8_t *d;
	const char *sigs[] = {"FACP", "APIC", "MCFG"};
	size_t i, len, n;

	(void)state;
	if (system("command -v iasl >/dev/null 2>&1") != 0) {
		print_message("iasl not found (Debian: acpica-tools); skipping the iasl check\n");
		skip();
	}
	t = build(&cfg);
	d = find_dsdt(&t);
	len = le(d + HDR_LENGTH, 4);
	assert_non_null(mkdtemp(dir));

	snprintf(path, sizeof(path), "%s/dsdt.dat", dir);
	assert_int_equal(write_file(path, d, len), 0);
	assert_int_equal(run(dir, "iasl -d dsdt.dat"), 0);
	assert_int_equal(run(dir, "iasl -oa -p re dsdt.dsl | grep -q ' 0 Errors, 0 Warnings'"), 0);
	snprintf(path, sizeof(path), "%s/re.aml", dir);
	n = read_file(path, aml, sizeof(aml));
	assert_int_equal(n, len);
	assert_memory_equal(aml + HDR_SIZE, d + HDR_SIZE, len - HDR_SIZE);

	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		const uint8_t *table = find_table(&t, sigs[i]);
		char cmd[64];

		snprintf(path, sizeof(path), "%s/%s.dat", dir, sigs[i]);
		assert_int_equal(write_file(path, table, le(table + HDR_LENGTH, 4)), 0);
		snprintf(cmd, sizeof(cmd), "iasl -d %s.dat", sigs[i]);
		assert_int_equal(run(dir, cmd), 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_checksums),  cmocka_unit_test(test_rsdt_matches_xsdt),
	    cmocka_unit_test(test_fadt),       cmocka_unit_test(test_madt_1),
	    cmocka_unit_test(test_madt_2),     cmocka_unit_test(test_madt_64),
	    cmocka_unit_test(test_madt_max),   cmocka_unit_test(test_dsdt_cpus),
	    cmocka_unit_test(test_cpu_limits), cmocka_unit_test(test_mcfg),
	    cmocka_unit_test(test_dsdt_s5),    cmocka_unit_test(test_dsdt_pci0),
	    cmocka_unit_test(test_too_small),  cmocka_unit_test(test_bad_arguments),
	    cmocka_unit_test_teardown(test_iasl, iasl_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
