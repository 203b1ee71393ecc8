/* SPDX-License-Identifier: MIT */
/*
 * The tests that end the VM from inside: test=poweroff (ACPI S5), test=reboot
 * [method=kbd|cf9|acpi] and test=triplefault [fault=ud|pf|cr3]. Each FAILs if the VM is still
 * running afterwards.
 */
#include "probe.h"

/* FADT fields (ACPI 6.5 §5.2.9, Table 5.9) and PM1 control (§4.8.3.2.1). */
#define FADT_PM1A_CNT_BLK 64
#define FADT_FLAGS 112
#define FADT_FLAG_RESET_REG_SUP (1u << 10)
#define FADT_RESET_REG 116
#define FADT_RESET_VALUE 128
#define FADT_X_PM1A_CNT_BLK 172
#define GAS_SPACE_IO 1
#define PM1_CNT_SLP_TYP_SHIFT 10
#define PM1_CNT_SLP_TYP_MASK (7u << 10)
#define PM1_CNT_SLP_EN (1u << 13)

/* AML opcodes (ACPI 6.5 §20.2). */
#define AML_NAME_OP 0x08
#define AML_PACKAGE_OP 0x12
#define AML_BYTE_PREFIX 0x0a
#define AML_ZERO_OP 0x00
#define AML_ONE_OP 0x01
#define AML_ROOT_CHAR '\\'

#define I8042_STATUS_INPUT_FULL 0x02
#define I8042_CMD_PULSE_RESET 0xfe
#define CF9_SYS_RST 0x02
#define CF9_RST_CPU 0x04
#define STILL_RUNNING_US 200000

/*
 * SLP_TYPa of `Name(_S5, Package() {a, ...})` in the DSDT, or -1. A real
 * AML interpreter is overkill: the package is a constant in every firmware
 * the probe meets.
 */
static int dsdt_s5_slp_typ(void)
{
	const struct acpi_header *dsdt = acpi_find_table("DSDT");
	const uint8_t *p, *end;

	if (!dsdt)
		return -1;
	p = (const uint8_t *)(dsdt + 1);
	end = (const uint8_t *)dsdt + dsdt->length;
	for (; p + 8 < end; p++) {
		if (memcmp(p, "_S5_", 4) != 0)
			continue;
		if (!(p[-1] == AML_NAME_OP || (p[-1] == AML_ROOT_CHAR && p[-2] == AML_NAME_OP)))
			continue;
		const uint8_t *q = p + 4;
		if (*q++ != AML_PACKAGE_OP)
			continue;
		q += 1 + ((*q >> 6) & 3); /* PkgLength */
		q++;                      /* NumElements */
		if (q + 1 >= end)
			return -1;
		if (q[0] == AML_BYTE_PREFIX)
			return q[1] & 7;
		if (q[0] == AML_ZERO_OP || q[0] == AML_ONE_OP)
			return q[0];
		return -1;
	}
	return -1;
}

int test_poweroff(void)
{
	const struct acpi_header *fadt = acpi_find_table("FACP");
	const uint8_t *f = (const uint8_t *)fadt;
	uint32_t port;
	int slp_typ = dsdt_s5_slp_typ();
	const char *from = "\\_S5";
	uint16_t val;

	if (!fadt)
		return probe_fail("no FADT (ACPI \"FACP\" table) found");
	port = *(const uint32_t *)(f + FADT_PM1A_CNT_BLK);
	if (!port && fadt->length >= FADT_X_PM1A_CNT_BLK + 12 &&
	    f[FADT_X_PM1A_CNT_BLK] == GAS_SPACE_IO)
		port = *(const uint32_t *)(f + FADT_X_PM1A_CNT_BLK + 4);
	if (!port || port > 0xffff)
		return probe_fail("FADT has no PM1a control port");
	if (slp_typ < 0) {
		slp_typ = ACPI_S5_SLP_TYP;
		from = "default, no \\_S5 package in the DSDT";
	}
	val =
	    (inw(port) & ~PM1_CNT_SLP_TYP_MASK) | slp_typ << PM1_CNT_SLP_TYP_SHIFT | PM1_CNT_SLP_EN;
	printf("probe: test=poweroff: writing 0x%04x to PM1a_CNT port 0x%x (SLP_TYP %d from "
	       "%s)\n",
	       val, port, slp_typ, from);
	outw(port, val);
	delay_us(STILL_RUNNING_US);
	return probe_fail("still running after S5 request");
}

int test_reboot(void)
{
	const char *method = param_get("method");

	if (!method || strcmp(method, "kbd") == 0) {
		for (int i = 0; i < 100000 && (inb(PORT_I8042_CMD) & I8042_STATUS_INPUT_FULL); i++)
			;
		printf("probe: test=reboot: writing 0x%02x to port 0x%x\n", I8042_CMD_PULSE_RESET,
		       PORT_I8042_CMD);
		outb(PORT_I8042_CMD, I8042_CMD_PULSE_RESET);
	} else if (strcmp(method, "cf9") == 0) {
		printf("probe: test=reboot: writing 0x%02x to port 0x%x\n",
		       CF9_SYS_RST | CF9_RST_CPU, PORT_RESET);
		outb(PORT_RESET, CF9_SYS_RST);
		outb(PORT_RESET, CF9_SYS_RST | CF9_RST_CPU);
	} else if (strcmp(method, "acpi") == 0) {
		const struct acpi_header *fadt = acpi_find_table("FACP");
		const uint8_t *f = (const uint8_t *)fadt;

		if (!fadt || fadt->length < FADT_RESET_VALUE + 1)
			return probe_fail("no FADT with a reset register");
		if (!(*(const uint32_t *)(f + FADT_FLAGS) & FADT_FLAG_RESET_REG_SUP))
			return probe_fail("FADT flags lack RESET_REG_SUP");
		if (f[FADT_RESET_REG] != GAS_SPACE_IO)
			return probe_fail("FADT reset register is in address space %u, not I/O",
			                  f[FADT_RESET_REG]);
		uint64_t port = *(const uint64_t *)(f + FADT_RESET_REG + 4);
		printf("probe: test=reboot: writing 0x%02x to FADT reset port 0x%lx\n",
		       f[FADT_RESET_VALUE], port);
		outb(port, f[FADT_RESET_VALUE]);
	} else {
		return probe_fail("unknown method=%s (kbd, cf9 or acpi)", method);
	}
	delay_us(STILL_RUNNING_US);
	return probe_fail("still running after the reset request");
}

int test_triplefault(void)
{
	const char *fault = param_get("fault");

	if (fault && strcmp(fault, "pf") == 0) {
		printf("probe: test=triplefault fault=pf: an OUT, then a #PF through an unmapped IDT\n");
		probe_syscall(SYS_TRIPLEFAULT, 1, 0);
	} else if (fault && strcmp(fault, "cr3") == 0) {
		printf("probe: test=triplefault fault=cr3: an OUT, then CR3 outside RAM\n");
		probe_syscall(SYS_TRIPLEFAULT, 2, 0);
	} else if (fault && strcmp(fault, "ud") != 0) {
		return probe_fail("unknown fault=%s (ud, pf or cr3)", fault);
	}
	printf("probe: test=triplefault: loading an empty IDT and raising #UD\n");
	probe_syscall(SYS_TRIPLEFAULT, 0, 0);
	return probe_fail("still running after the triple fault");
}
