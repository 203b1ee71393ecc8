/* SPDX-License-Identifier: MIT */
/*
 * test=uart: COM1 in loopback mode (16550D datasheet, MCR bit 4): bytes
 * written to THR must come back in RBR with LSR.DR set. Also reports, without
 * failing on them, the modem lines looped back into MSR and the scratch
 * register. Prints nothing while in loopback, since output would loop too.
 */
#include "probe.h"

#define UART_RBR 0
#define UART_THR 0
#define UART_MCR 4
#define UART_LSR 5
#define UART_MSR 6
#define UART_SCR 7
#define UART_MCR_OUTPUTS 0x0f /* DTR, RTS, OUT1, OUT2 */
#define UART_MCR_LOOP 0x10
#define UART_LSR_DR 0x01
#define UART_LSR_THRE 0x20
#define UART_LSR_TEMT 0x40
#define UART_MSR_INPUTS 0xf0 /* CTS, DSR, RI, DCD */
#define UART_POLL_MAX 100000
#define UART_RX_DRAIN_MAX 64

static bool uart_wait(uint8_t lsr_bits)
{
	for (int i = 0; i < UART_POLL_MAX; i++)
		if ((inb(PORT_COM1 + UART_LSR) & lsr_bits) == lsr_bits)
			return true;
	return false;
}

static void uart_drain_rx(void)
{
	for (int i = 0; i < UART_RX_DRAIN_MAX && (inb(PORT_COM1 + UART_LSR) & UART_LSR_DR); i++)
		inb(PORT_COM1 + UART_RBR);
}

int test_uart(void)
{
	static const uint8_t pattern[] = {0x55, 0xaa, 0x00, 0xff, 'p', 'r', 'o', 'b', 'e', '\n'};
	uint8_t mcr, msr_on, msr_off, scr_a, scr_b, got = 0;
	unsigned int ok = 0;
	const char *err = NULL;

	uart_wait(UART_LSR_THRE | UART_LSR_TEMT); /* let earlier output leave */
	mcr = inb(PORT_COM1 + UART_MCR);
	outb(PORT_COM1 + UART_MCR, UART_MCR_LOOP | UART_MCR_OUTPUTS);
	msr_on = inb(PORT_COM1 + UART_MSR) & UART_MSR_INPUTS;
	outb(PORT_COM1 + UART_MCR, UART_MCR_LOOP);
	msr_off = inb(PORT_COM1 + UART_MSR) & UART_MSR_INPUTS;
	uart_drain_rx();
	for (; ok < sizeof(pattern); ok++) {
		if (!uart_wait(UART_LSR_THRE)) {
			err = "THR never became empty";
			break;
		}
		outb(PORT_COM1 + UART_THR, pattern[ok]);
		if (!uart_wait(UART_LSR_DR)) {
			err = "LSR.DR never set";
			break;
		}
		got = inb(PORT_COM1 + UART_RBR);
		if (got != pattern[ok]) {
			err = "wrong byte";
			break;
		}
	}
	outb(PORT_COM1 + UART_MCR, mcr);
	uart_drain_rx();
	outb(PORT_COM1 + UART_SCR, 0xa5);
	scr_a = inb(PORT_COM1 + UART_SCR);
	outb(PORT_COM1 + UART_SCR, 0x5a);
	scr_b = inb(PORT_COM1 + UART_SCR);

	printf("probe: uart: MCR was 0x%02x; loopback MSR inputs 0x%02x with outputs on (want "
	       "0xf0), 0x%02x off (want 0x00); scratch %s\n",
	       mcr, msr_on, msr_off, scr_a == 0xa5 && scr_b == 0x5a ? "ok" : "broken");
	if (err)
		return probe_fail("loopback byte %u (0x%02x): %s%s", ok, pattern[ok], err,
		                  got != pattern[ok] ? ", read something else" : "");
	return probe_pass("%u bytes looped back", ok);
}
