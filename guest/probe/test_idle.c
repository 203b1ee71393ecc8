/* SPDX-License-Identifier: MIT */
/*
 * test=idle: a guest that stays up until something outside ends it, for the
 * VM manager's lifecycle tests (start, pause, stop, console).
 *
 *   test=idle               prints one line, then halts with interrupts off:
 *                           no host CPU is used; only the monitor ends it.
 *   test=idle button=on     enables the ACPI power button event (PM1_EN.
 *                           PWRBTN_EN, ACPI 6.5 §4.8.3.1), so the monitor sees
 *                           an OSPM listening, and powers off (S5, as
 *                           test=poweroff does) once PM1_STS.PWRBTN_STS is set.
 *   test=idle button=ignore enables the event too, but never acts on it: a
 *                           guest that listens and does not power off.
 *   test=idle echo=on       echoes console input back, one line at a time, as
 *                           "probe: echo: <line>".
 *   test=idle fill=on       first writes every word of RAM above the probe
 *                           (as test=mem does, with no zero word) and prints
 *                           how much, so that a save has all of memory to
 *                           write (bench/snapshot.sh); then idles as above.
 *
 * With button=on or echo=on the probe polls: it has no interrupt handlers,
 * so it busy-waits at CPL3 (natively, even where CPL0 is emulated) between
 * two looks at the ports, and uses a host CPU while it runs.
 */
#include "probe.h"

/* FADT PM1a_EVT_BLK (ACPI 6.5 §5.2.9, Table 5.9); PM1_EN follows PM1_STS. */
#define FADT_PM1A_EVT_BLK 56
#define PM1_STS_PWRBTN (1u << 8)
#define PM1_EN_PWRBTN (1u << 8)
#define PM1_EN_OFFSET 2

#define UART_RBR 0
#define UART_LSR 5
#define UART_LSR_DR 0x01

#define IDLE_SPIN 2000000 /* CPL3 loop iterations between polls, ~2 ms natively */
#define IDLE_LINE_MAX 120
#define IDLE_FILL_PATTERN 0x3c96a5e85a17c3e9ULL /* XOR an address: never 0 in RAM */

static uint16_t idle_pm1_evt_port(void)
{
	const struct acpi_header *fadt = acpi_find_table("FACP");
	uint32_t port;

	if (!fadt || fadt->length < FADT_PM1A_EVT_BLK + 4)
		return 0;
	port = *(const uint32_t *)((const uint8_t *)fadt + FADT_PM1A_EVT_BLK);
	return port <= 0xffff ? port : 0;
}

static void idle_spin(void)
{
	for (volatile uint32_t i = 0; i < IDLE_SPIN; i++)
		;
}

/* fill=on: every word of RAM above the probe image written once; bytes written, or 0 on failure. */
static uint64_t idle_fill(void)
{
	uint64_t floor = (uintptr_t)__image_end, filled = 0;

	for (unsigned int i = 0; i < boot.nr_ram; i++) {
		uint64_t base = boot.ram[i].base > floor ? boot.ram[i].base : floor;
		uint64_t end = boot.ram[i].end & ~7ULL;

		base = (base + 7) & ~7ULL;
		if (base >= end)
			continue;
		if (end > 4 * GIB && paging_map_high(base > 4 * GIB ? base : 4 * GIB, end) < 0)
			return 0;
		for (uint64_t a = base; a < end; a += 8)
			*(volatile uint64_t *)(uintptr_t)a = a ^ IDLE_FILL_PATTERN;
		filled += end - base;
	}
	return filled;
}

/* Read what the console has; print a line once it ends. */
static void idle_echo_poll(char *line, unsigned int *len)
{
	for (int n = 0; n < 64 && (inb(PORT_COM1 + UART_LSR) & UART_LSR_DR); n++) {
		char c = inb(PORT_COM1 + UART_RBR);

		if (c == '\r' || c == '\n') {
			if (*len) {
				line[*len] = '\0';
				printf("probe: echo: %s\n", line);
			}
			*len = 0;
		} else if (*len < IDLE_LINE_MAX && c >= ' ' && c < 0x7f) {
			line[(*len)++] = c;
		}
	}
}

int test_idle(void)
{
	const char *button = param_get("button"), *echo = param_get("echo");
	const char *fill = param_get("fill");
	bool want_button = button && strcmp(button, "on") == 0;
	bool ignore_button = button && strcmp(button, "ignore") == 0;
	bool want_echo = echo && strcmp(echo, "on") == 0;
	uint16_t pm1 = 0;
	char line[IDLE_LINE_MAX + 1];
	unsigned int len = 0;

	if (fill && strcmp(fill, "on") == 0) {
		uint64_t filled = idle_fill();

		if (!filled)
			return probe_fail("fill=on: no RAM above the probe, or out of page tables");
		printf("probe: test=idle: filled %lu MiB\n", filled / MIB);
	}
	if (want_button || ignore_button) {
		pm1 = idle_pm1_evt_port();
		if (!pm1)
			return probe_fail("button=on: no PM1a event block in the FADT");
		outw(pm1, PM1_STS_PWRBTN); /* write 1 to clear a stale press */
		outw(pm1 + PM1_EN_OFFSET, inw(pm1 + PM1_EN_OFFSET) | PM1_EN_PWRBTN);
	}
	printf("probe: test=idle: up (button=%s echo=%s)\n",
	       want_button     ? "on"
	       : ignore_button ? "ignore"
	                       : "off",
	       want_echo ? "on" : "off");
	if (!want_button && !want_echo)
		probe_syscall(SYS_HALT, 0, 0);
	for (;;) {
		if (want_button && (inw(pm1) & PM1_STS_PWRBTN)) {
			printf("probe: test=idle: power button pressed, powering off\n");
			return test_poweroff();
		}
		if (want_echo)
			idle_echo_poll(line, &len);
		idle_spin();
	}
}
