/* SPDX-License-Identifier: MIT */
/* Unit tests: 16550A UART registers, FIFO, interrupts, loopback and output. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "devices/legacy/uart_16550.h"

#include "device_state_test.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct fake_irq {
	int level;
	int calls;
	int raises;
	unsigned int gsi;
};

static void fake_irq_set(void *opaque, unsigned int gsi, int level)
{
	struct fake_irq *f = opaque;

	f->level = level;
	f->gsi = gsi;
	f->calls++;
	if (level)
		f->raises++;
}

struct fixture {
	struct uart_16550 *uart;
	struct fake_irq irq;
	struct irq_line line;
	int pipe[2];
	int rx_ready_calls;
};

static void rx_ready(void *opaque)
{
	struct fixture *f = opaque;

	f->rx_ready_calls++;
}

static struct fixture *fixture_new(bool with_pipe)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct uart_16550_config cfg = {0};

	assert_non_null(f);
	f->pipe[0] = f->pipe[1] = -1;
	if (with_pipe)
		assert_int_equal(pipe2(f->pipe, O_NONBLOCK), 0);
	f->line = (struct irq_line){.set = fake_irq_set, .opaque = &f->irq, .gsi = 4};
	cfg.out_fd = f->pipe[1];
	cfg.irq = &f->line;
	cfg.rx_ready = rx_ready;
	cfg.rx_ready_opaque = f;
	assert_int_equal(uart_16550_create(&cfg, &f->uart), 0);
	return f;
}

static void fixture_free(struct fixture *f)
{
	uart_16550_destroy(f->uart);
	if (f->pipe[0] >= 0)
		close(f->pipe[0]);
	if (f->pipe[1] >= 0)
		close(f->pipe[1]);
	free(f);
}

static void out8(struct uart_16550 *u, unsigned int reg, uint8_t val)
{
	uart_16550_io(u, reg, &val, 1, true);
}

static uint8_t in8(struct uart_16550 *u, unsigned int reg)
{
	uint8_t val = 0;

	uart_16550_io(u, reg, &val, 1, false);
	return val;
}

static double now_sec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_reset_state(void **state)
{
	struct fixture *f = fixture_new(false);

	(void)state;
	assert_int_equal(in8(f->uart, UART_REG_IER), 0);
	assert_int_equal(in8(f->uart, UART_REG_IIR), UART_IIR_NO_INT);
	assert_int_equal(in8(f->uart, UART_REG_LCR), 0);
	assert_int_equal(in8(f->uart, UART_REG_MCR), 0);
	assert_int_equal(in8(f->uart, UART_REG_LSR), UART_LSR_THRE | UART_LSR_TEMT);
	assert_int_equal(in8(f->uart, UART_REG_MSR), UART_MSR_DCD | UART_MSR_DSR | UART_MSR_CTS);
	out8(f->uart, UART_REG_SCR, 0xa5);
	assert_int_equal(in8(f->uart, UART_REG_SCR), 0xa5);
	/* IER bits 4-7 and MCR bits 5-7 do not exist on a 16550A. */
	out8(f->uart, UART_REG_IER, 0xff);
	assert_int_equal(in8(f->uart, UART_REG_IER), 0x0f);
	out8(f->uart, UART_REG_MCR, 0xe0);
	assert_int_equal(in8(f->uart, UART_REG_MCR), 0);
	assert_int_equal(f->irq.calls, 0);
	fixture_free(f);
}

static void test_divisor_latch(void **state)
{
	struct fixture *f = fixture_new(true);
	char buf[8];

	(void)state;
	out8(f->uart, UART_REG_IER, UART_IER_RDI);
	out8(f->uart, UART_REG_LCR, UART_LCR_DLAB | 0x03);
	out8(f->uart, UART_REG_DLL, 0x0c); /* 9600 baud */
	out8(f->uart, UART_REG_DLM, 0x01);
	assert_int_equal(in8(f->uart, UART_REG_DLL), 0x0c);
	assert_int_equal(in8(f->uart, UART_REG_DLM), 0x01);
	assert_int_equal(read(f->pipe[0], buf, sizeof(buf)), -1); /* nothing transmitted */
	assert_int_equal(errno, EAGAIN);

	out8(f->uart, UART_REG_LCR, 0x03);
	assert_int_equal(in8(f->uart, UART_REG_LCR), 0x03);
	assert_int_equal(in8(f->uart, UART_REG_IER), UART_IER_RDI); /* not DLM */
	out8(f->uart, UART_REG_THR, 'Z');
	assert_int_equal(read(f->pipe[0], buf, sizeof(buf)), 1);
	assert_int_equal(buf[0], 'Z');
	out8(f->uart, UART_REG_LCR, UART_LCR_DLAB);
	assert_int_equal(in8(f->uart, UART_REG_DLL), 0x0c); /* THR write left DLL alone */
	fixture_free(f);
}

static void test_thr_output_to_pipe(void **state)
{
	struct fixture *f = fixture_new(true);
	const char *msg = "hello, nestvm\n";
	char buf[64] = {0};
	size_t i;

	(void)state;
	for (i = 0; i < strlen(msg); i++) {
		out8(f->uart, UART_REG_THR, (uint8_t)msg[i]);
		assert_true(in8(f->uart, UART_REG_LSR) & UART_LSR_THRE);
	}
	assert_int_equal(read(f->pipe[0], buf, sizeof(buf)), strlen(msg));
	assert_string_equal(buf, msg);
	fixture_free(f);
}

static void test_output_discarded(void **state)
{
	struct uart_16550_config cfg = {.out_fd = -1};
	struct uart_16550 *u;

	(void)state;
	assert_int_equal(uart_16550_create(&cfg, &u), 0);
	out8(u, UART_REG_THR, 'x');
	assert_int_equal(in8(u, UART_REG_LSR), UART_LSR_THRE | UART_LSR_TEMT);
	uart_16550_destroy(u);
	uart_16550_destroy(NULL);
	assert_int_equal(uart_16550_create(NULL, &u), -EINVAL);
}

static void fill_pipe(int fd)
{
	char junk[4096];
	int flags = fcntl(fd, F_GETFL);

	memset(junk, 'j', sizeof(junk));
	fcntl(fd, F_SETFL, flags | O_NONBLOCK);
	while (write(fd, junk, sizeof(junk)) > 0)
		;
	while (write(fd, junk, 1) > 0)
		;
	fcntl(fd, F_SETFL, flags);
}

static void drain_pipe(int fd)
{
	char junk[4096];

	while (read(fd, junk, sizeof(junk)) > 0)
		;
}

/* A reader that stops reading must not hang the vCPU, whether the fd blocks or not. */
static void check_stall(struct fixture *f)
{
	double t0, t1, t2;
	char c = 0;

	fill_pipe(f->pipe[1]);
	t0 = now_sec();
	out8(f->uart, UART_REG_THR, 'a'); /* waits up to the stall timeout, then drops */
	t1 = now_sec();
	out8(f->uart, UART_REG_THR, 'b'); /* already stalled: no wait */
	t2 = now_sec();
	assert_true(t1 - t0 < 2.0);
	assert_true(t2 - t1 < 0.05);

	drain_pipe(f->pipe[0]);
	out8(f->uart, UART_REG_THR, 'c'); /* the reader is back */
	assert_int_equal(read(f->pipe[0], &c, 1), 1);
	assert_int_equal(c, 'c');
}

static void test_output_stall_nonblocking(void **state)
{
	struct fixture *f = fixture_new(true);

	(void)state;
	check_stall(f);
	fixture_free(f);
}

static void test_output_stall_blocking(void **state)
{
	struct fixture *f = fixture_new(true);

	(void)state;
	/* Make both ends blocking: a plain write() would hang forever. */
	fcntl(f->pipe[1], F_SETFL, fcntl(f->pipe[1], F_GETFL) & ~O_NONBLOCK);
	check_stall(f);
	fixture_free(f);
}

static void test_output_reader_gone(void **state)
{
	struct fixture *f = fixture_new(true);

	(void)state;
	close(f->pipe[0]);
	f->pipe[0] = -1;
	out8(f->uart, UART_REG_THR, 'x'); /* EPIPE: logged once, dropped */
	out8(f->uart, UART_REG_THR, 'y');
	assert_int_equal(in8(f->uart, UART_REG_LSR), UART_LSR_THRE | UART_LSR_TEMT);
	fixture_free(f);
}

/* Linux 8250 serial8250_do_startup: THRE must be re-asserted on IER 0 -> THRI. */
static void test_thre_interrupt(void **state)
{
	struct fixture *f = fixture_new(false);

	(void)state;
	out8(f->uart, UART_REG_MCR, UART_MCR_OUT2);
	out8(f->uart, UART_REG_IER, UART_IER_THRI);
	assert_int_equal(f->irq.level, 1);
	assert_int_equal(in8(f->uart, UART_REG_IIR), UART_IIR_THRI);
	/* Reading IIR while it reports THRE cleared it. */
	assert_int_equal(f->irq.level, 0);
	assert_int_equal(in8(f->uart, UART_REG_IIR), UART_IIR_NO_INT);
	out8(f->uart, UART_REG_IER, 0);
	out8(f->uart, UART_REG_IER, UART_IER_THRI);
	assert_int_equal(in8(f->uart, UART_REG_IIR), UART_IIR_THRI);
	/* Writing THR clears it, and the byte leaving at once raises it again. */
	out8(f->uart, UART_REG_THR, 'x');
	assert_int_equal(f->irq.level, 1);
	assert_int_equal(in8(f->uart, UART_REG_IIR), UART_IIR_THRI);
	/* Rewriting IER with THRI still set is not an enable edge. */
	out8(f->uart, UART_REG_IER, UART_IER_THRI);
	assert_int_equal(in8(f->uart, UART_REG_IIR), UART_IIR_NO_INT);
	fixture_free(f);
}

static void test_iir_priorities(void **state)
{
	struct fixture *f = fixture_new(false);
	uint8_t v;

	(void)state;
	out8(f->uart, UART_REG_FCR, UART_FCR_ENABLE_FIFO | UART_FCR_TRIGGER_1);
	/* Fill the FIFO by loopback, then overrun it to get a line status error. */
	out8(f->uart, UART_REG_MCR, UART_MCR_LOOP | UART_MCR_OUT2);
	for (v = 0; v < UART_16550_FIFO_SIZE + 1; v++)
		out8(f->uart, UART_REG_THR, v);
	out8(f->uart, UART_REG_MCR, UART_MCR_OUT2);
	in8(f->uart, UART_REG_MSR); /* clear the loopback deltas */
	out8(f->uart, UART_REG_IER, UART_IER_RDI | UART_IER_THRI | UART_IER_RLSI | UART_IER_MSI);

	assert_int_equal(in8(f->uart, UART_REG_IIR), UART_IIR_FIFO_ENABLED | UART_IIR_RLSI);
	v = in8(f->uart, UART_REG_LSR);
	assert_int_equal(v, UART_LSR_OE | UART_LSR_DR | UART_LSR_THRE | UART_LSR_TEMT);
	assert_int_equal(in8(f->uart, UART_REG_LSR) & UART_LSR_OE, 0); /* cleared by the read */

	assert_int_equal(in8(f->uart, UART_REG_IIR), UART_IIR_FIFO_ENABLED | UART_IIR_RDI);
	for (v = 0; v < UART_16550_FIFO_SIZE; v++)
		assert_int_equal(in8(f->uart, UART_REG_RBR), v); /* the 17th byte was lost */
	assert_int_equal(in8(f->uart, UART_REG_LSR) & UART_LSR_DR, 0);

	assert_int_equal(in8(f->uart, UART_REG_IIR), UART_IIR_FIFO_ENABLED | UART_IIR_THRI);
	assert_int_equal(f->irq.level, 0); /* the IIR read cleared THRE */
	assert_int_equal(in8(f->uart, UART_REG_IIR), UART_IIR_FIFO_ENABLED | UART_IIR_NO_INT);

	/* Modem status comes last: a delta from toggling loopback with DTR. */
	out8(f->uart, UART_REG_MCR, UART_MCR_OUT2 | UART_MCR_LOOP | UART_MCR_DTR);
	assert_int_equal(in8(f->uart, UART_REG_IIR), UART_IIR_FIFO_ENABLED | UART_IIR_MSI);
	assert_int_equal(f->irq.level, 1);
	assert_true(in8(f->uart, UART_REG_MSR) & UART_MSR_DELTAS);
	assert_int_equal(in8(f->uart, UART_REG_IIR), UART_IIR_FIFO_ENABLED | UART_IIR_NO_INT);
	assert_int_equal(f->irq.level, 0);
	fixture_free(f);
}

static void test_rx_fifo(void **state)
{
	struct fixture *f = fixture_new(false);
	uint8_t in[20];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)('a' + i);
	/* FIFOs off: a single holding register. */
	assert_int_equal(uart_16550_rx_room(f->uart), 1);
	assert_int_equal(uart_16550_receive(f->uart, in, 3), 1);
	assert_int_equal(in8(f->uart, UART_REG_LSR) & UART_LSR_DR, UART_LSR_DR);
	assert_int_equal(in8(f->uart, UART_REG_RBR), 'a');
	assert_int_equal(in8(f->uart, UART_REG_LSR) & UART_LSR_DR, 0);
	assert_int_equal(f->rx_ready_calls, 1); /* room after a short receive */

	out8(f->uart, UART_REG_FCR, UART_FCR_ENABLE_FIFO | UART_FCR_CLEAR_RCVR);
	assert_int_equal(in8(f->uart, UART_REG_IIR) & UART_IIR_FIFO_ENABLED, UART_IIR_FIFO_ENABLED);
	assert_int_equal(uart_16550_rx_room(f->uart), UART_16550_FIFO_SIZE);
	assert_int_equal(uart_16550_receive(f->uart, in, sizeof(in)), UART_16550_FIFO_SIZE);
	assert_int_equal(uart_16550_rx_room(f->uart), 0);
	assert_int_equal(uart_16550_receive(f->uart, in, 1), 0);
	assert_int_equal(in8(f->uart, UART_REG_LSR) & (UART_LSR_DR | UART_LSR_OE), UART_LSR_DR);
	assert_int_equal(in8(f->uart, UART_REG_RBR), 'a');
	assert_int_equal(f->rx_ready_calls, 2);
	assert_int_equal(uart_16550_receive(f->uart, in + 16, 4), 1);
	for (i = 1; i < 17; i++)
		assert_int_equal(in8(f->uart, UART_REG_RBR), in[i]);
	assert_int_equal(in8(f->uart, UART_REG_LSR) & UART_LSR_DR, 0);

	/* FCR clear-receiver empties it; disabling the FIFO does too. */
	assert_int_equal(uart_16550_receive(f->uart, in, 5), 5);
	out8(f->uart, UART_REG_FCR, UART_FCR_ENABLE_FIFO | UART_FCR_CLEAR_RCVR);
	assert_int_equal(in8(f->uart, UART_REG_LSR) & UART_LSR_DR, 0);
	assert_int_equal(uart_16550_receive(f->uart, in, 5), 5);
	out8(f->uart, UART_REG_FCR, 0);
	assert_int_equal(in8(f->uart, UART_REG_LSR) & UART_LSR_DR, 0);
	assert_int_equal(in8(f->uart, UART_REG_IIR) & UART_IIR_FIFO_ENABLED, 0);
	fixture_free(f);
}

static void test_rx_interrupt_and_trigger(void **state)
{
	struct fixture *f = fixture_new(false);
	uint8_t in[8] = "01234567";

	(void)state;
	out8(f->uart, UART_REG_FCR, UART_FCR_ENABLE_FIFO | UART_FCR_TRIGGER_8);
	out8(f->uart, UART_REG_IER, UART_IER_RDI);
	/* OUT2 clear: the interrupt is pending in IIR but not on the line. */
	assert_int_equal(uart_16550_receive(f->uart, in, 3), 3);
	assert_int_equal(f->irq.calls, 0);
	assert_int_equal(in8(f->uart, UART_REG_IIR), UART_IIR_FIFO_ENABLED | UART_IIR_CTI);
	out8(f->uart, UART_REG_MCR, UART_MCR_OUT2 | UART_MCR_DTR | UART_MCR_RTS);
	assert_int_equal(f->irq.level, 1);
	assert_int_equal(f->irq.gsi, 4);
	assert_int_equal(uart_16550_receive(f->uart, in + 3, 5), 5);
	assert_int_equal(in8(f->uart, UART_REG_IIR), UART_IIR_FIFO_ENABLED | UART_IIR_RDI);
	assert_int_equal(f->irq.calls, 1); /* still asserted: no new call */
	while (in8(f->uart, UART_REG_LSR) & UART_LSR_DR)
		in8(f->uart, UART_REG_RBR);
	assert_int_equal(f->irq.level, 0);
	assert_int_equal(f->irq.calls, 2);
	/* Dropping OUT2 deasserts a pending interrupt. */
	assert_int_equal(uart_16550_receive(f->uart, in, 1), 1);
	assert_int_equal(f->irq.level, 1);
	out8(f->uart, UART_REG_MCR, 0);
	assert_int_equal(f->irq.level, 0);
	fixture_free(f);
}

static void test_loopback(void **state)
{
	struct fixture *f = fixture_new(true);
	char c;

	(void)state;
	out8(f->uart, UART_REG_MCR, UART_MCR_LOOP | UART_MCR_OUT2 | UART_MCR_RTS);
	/* RTS -> CTS, OUT2 -> DCD; DTR and OUT1 low, so DSR and RI low. */
	assert_int_equal(in8(f->uart, UART_REG_MSR) & 0xf0, UART_MSR_CTS | UART_MSR_DCD);
	out8(f->uart, UART_REG_MCR, UART_MCR_LOOP | UART_MCR_DTR | UART_MCR_OUT1);
	assert_int_equal(in8(f->uart, UART_REG_MSR), UART_MSR_DSR | UART_MSR_RI | UART_MSR_DDSR |
	                                                 UART_MSR_DCTS | UART_MSR_DDCD);
	out8(f->uart, UART_REG_MCR, UART_MCR_LOOP | UART_MCR_DTR);
	assert_int_equal(in8(f->uart, UART_REG_MSR), UART_MSR_DSR | UART_MSR_TERI);

	out8(f->uart, UART_REG_THR, 'L');
	assert_int_equal(read(f->pipe[0], &c, 1), -1); /* not transmitted */
	assert_int_equal(in8(f->uart, UART_REG_LSR) & UART_LSR_DR, UART_LSR_DR);
	assert_int_equal(in8(f->uart, UART_REG_RBR), 'L');
	/* The serial input is disconnected in loopback. */
	assert_int_equal(uart_16550_rx_room(f->uart), 0);
	assert_int_equal(uart_16550_receive(f->uart, "x", 1), 0);
	assert_int_equal(f->rx_ready_calls, 0);
	out8(f->uart, UART_REG_MCR, 0);
	assert_int_equal(f->rx_ready_calls, 1);
	assert_int_equal(in8(f->uart, UART_REG_MSR) & 0xf0,
	                 UART_MSR_DCD | UART_MSR_DSR | UART_MSR_CTS);
	assert_int_equal(uart_16550_receive(f->uart, "x", 1), 1);
	fixture_free(f);
}

/*
 * The register sequence Linux's 8250 autoconfig() and autoconfig_16550a()
 * use to tell a 16550A from its relatives (drivers/tty/serial/8250/8250_port.c).
 */
static void test_linux_autoconfig_16550a(void **state)
{
	struct fixture *f = fixture_new(false);
	struct uart_16550 *u = f->uart;
	uint8_t save_ier, scratch2, scratch3, status1, status2, save_lcr, save_mcr;

	(void)state;
	/* Existence test through IER. */
	save_ier = in8(u, UART_REG_IER);
	out8(u, UART_REG_IER, 0);
	scratch2 = in8(u, UART_REG_IER) & 0x0f;
	out8(u, UART_REG_IER, 0x0f);
	scratch3 = in8(u, UART_REG_IER) & 0x0f;
	out8(u, UART_REG_IER, save_ier);
	assert_int_equal(scratch2, 0);
	assert_int_equal(scratch3, 0x0f);

	save_mcr = in8(u, UART_REG_MCR);
	save_lcr = in8(u, UART_REG_LCR);
	/* Loopback check: MSR status must be 0x90 with LOOP | OUT2 | RTS. */
	out8(u, UART_REG_MCR, UART_MCR_LOOP | 0x0a);
	status1 = in8(u, UART_REG_MSR) & 0xf0;
	out8(u, UART_REG_MCR, save_mcr);
	assert_int_equal(status1, 0x90);

	/* EFR probe with LCR=0xBF, then the FIFO test. */
	out8(u, UART_REG_LCR, 0xbf);
	out8(u, UART_REG_FCR, 0); /* EFR on 16650s, FCR here */
	out8(u, UART_REG_LCR, 0);
	out8(u, UART_REG_FCR, UART_FCR_ENABLE_FIFO);
	assert_int_equal(in8(u, UART_REG_IIR) >> 6, 3); /* -> autoconfig_16550a */

	/* Not a 16650: IIR (EFR on those) reads non-zero with LCR=0x80 and 0xBF. */
	out8(u, UART_REG_LCR, 0x80);
	assert_int_not_equal(in8(u, UART_REG_IIR), 0);
	out8(u, UART_REG_LCR, 0xbf);
	assert_int_not_equal(in8(u, UART_REG_IIR), 0);
	/* Not an NS16550 SuperIO: "EXCR1" (IIR) bit 4 does not follow MCR.LOOP. */
	out8(u, UART_REG_LCR, 0);
	status1 = in8(u, UART_REG_MCR);
	out8(u, UART_REG_LCR, 0xe0);
	status2 = in8(u, UART_REG_IIR);
	assert_int_equal((status1 ^ status2) & UART_MCR_LOOP, 0);
	out8(u, UART_REG_LCR, 0);
	out8(u, UART_REG_MCR, status1 ^ UART_MCR_LOOP);
	out8(u, UART_REG_LCR, 0xe0);
	status2 = in8(u, UART_REG_IIR);
	out8(u, UART_REG_LCR, 0);
	out8(u, UART_REG_MCR, status1);
	assert_int_equal((status1 ^ status2) & UART_MCR_LOOP, 0);
	/* Not a TI16750: no 64-byte FIFO bit (IIR bit 5), with or without DLAB. */
	out8(u, UART_REG_FCR, UART_FCR_ENABLE_FIFO | 0x20);
	status1 = in8(u, UART_REG_IIR) & 0xe0;
	out8(u, UART_REG_FCR, UART_FCR_ENABLE_FIFO);
	out8(u, UART_REG_LCR, 0x80);
	out8(u, UART_REG_FCR, UART_FCR_ENABLE_FIFO | 0x20);
	status2 = in8(u, UART_REG_IIR) & 0xe0;
	out8(u, UART_REG_FCR, UART_FCR_ENABLE_FIFO);
	out8(u, UART_REG_LCR, 0);
	assert_int_equal(status1, 0xc0);
	assert_int_equal(status2, 0xc0);
	/* Not an XScale: IER bit 6 (UUE) does not stick. */
	out8(u, UART_REG_IER, 0x40);
	assert_int_equal(in8(u, UART_REG_IER) & 0x40, 0);
	out8(u, UART_REG_IER, 0);
	out8(u, UART_REG_LCR, save_lcr);
	/* And the scratch register works. */
	out8(u, UART_REG_SCR, 0x5a);
	assert_int_equal(in8(u, UART_REG_SCR), 0x5a);
	assert_int_not_equal(in8(u, UART_REG_LSR), 0xff);
	fixture_free(f);
}

static void test_wide_and_odd_accesses(void **state)
{
	struct fixture *f = fixture_new(false);
	uint8_t buf[8];
	uint32_t len, off;

	(void)state;
	out8(f->uart, UART_REG_SCR, 0x77);
	/* A 4-byte read at 4 reads MCR, LSR, MSR, SCR in turn. */
	memset(buf, 0, sizeof(buf));
	uart_16550_io(f->uart, 4, buf, 4, false);
	assert_int_equal(buf[0], 0);
	assert_int_equal(buf[1], UART_LSR_THRE | UART_LSR_TEMT);
	assert_int_equal(buf[2], UART_MSR_DCD | UART_MSR_DSR | UART_MSR_CTS);
	assert_int_equal(buf[3], 0x77);
	/* Bytes past the registers read 0xff, and writes there do nothing. */
	uart_16550_io(f->uart, 6, buf, 8, false);
	assert_int_equal(buf[1], 0x77);
	for (int i = 2; i < 8; i++)
		assert_int_equal(buf[i], 0xff);
	uart_16550_io(f->uart, UINT64_MAX - 2, buf, 8, false);
	assert_int_equal(buf[0], 0xff);
	memset(buf, 0xff, sizeof(buf));
	uart_16550_io(f->uart, 100, buf, 8, true);
	uart_16550_io(f->uart, UINT64_MAX, buf, 8, true);
	/* Every width at every offset, read and write, does not crash. */
	for (len = 1; len <= 8; len *= 2)
		for (off = 0; off < UART_16550_NR_REGS; off++) {
			memset(buf, 0xa5, sizeof(buf));
			uart_16550_io(f->uart, off, buf, len, true);
			uart_16550_io(f->uart, off, buf, len, false);
		}
	uart_16550_io(f->uart, 0, buf, 0, false);
	fixture_free(f);
}

static void test_save_restore(void **state)
{
	struct fixture *f = fixture_new(false);
	struct uart_16550_state s, s2, bad;

	(void)state;
	out8(f->uart, UART_REG_FCR, UART_FCR_ENABLE_FIFO | UART_FCR_TRIGGER_4);
	out8(f->uart, UART_REG_IER, UART_IER_RDI);
	out8(f->uart, UART_REG_MCR, UART_MCR_OUT2);
	out8(f->uart, UART_REG_LCR, 0x1b);
	out8(f->uart, UART_REG_SCR, 0x42);
	assert_int_equal(uart_16550_receive(f->uart, "abc", 3), 3);
	uart_16550_save(f->uart, &s);

	{
		struct fixture *g = fixture_new(false);

		assert_int_equal(uart_16550_restore(g->uart, &s), 0);
		assert_int_equal(g->irq.level, 1); /* CTI pending, OUT2 set */
		uart_16550_save(g->uart, &s2);
		assert_memory_equal(&s, &s2, sizeof(s));
		assert_int_equal(in8(g->uart, UART_REG_RBR), 'a');
		assert_int_equal(in8(g->uart, UART_REG_SCR), 0x42);

		bad = s;
		bad.rx_count = UART_16550_FIFO_SIZE + 1;
		assert_int_equal(uart_16550_restore(g->uart, &bad), -EINVAL);
		bad = s;
		bad.rx_head = UART_16550_FIFO_SIZE;
		assert_int_equal(uart_16550_restore(g->uart, &bad), -EINVAL);
		bad = s;
		bad.ier = 0xf0;
		assert_int_equal(uart_16550_restore(g->uart, &bad), -EINVAL);
		bad = s;
		bad.fcr = 0;
		bad.rx_count = 2; /* two bytes in a one-byte holding register */
		assert_int_equal(uart_16550_restore(g->uart, &bad), -EINVAL);
		assert_int_equal(in8(g->uart, UART_REG_RBR), 'b'); /* unchanged */
		fixture_free(g);
	}
	fixture_free(f);
}

/*
 * A UART with a bit of everything: FIFOs on with trigger 4, an overrun from
 * loopback, bytes read out of the FIFO (its head moved), modem status deltas
 * from leaving loopback, every interrupt enabled, a divisor, a word format
 * and a scratch byte.
 */
static void uart_busy_state(struct uart_16550 *u)
{
	out8(u, UART_REG_FCR, UART_FCR_ENABLE_FIFO | UART_FCR_TRIGGER_4);
	out8(u, UART_REG_MCR, UART_MCR_LOOP | UART_MCR_OUT2 | UART_MCR_RTS);
	for (unsigned int i = 0; i < UART_16550_FIFO_SIZE + 1; i++)
		out8(u, UART_REG_THR, (uint8_t)('a' + i));
	for (unsigned int i = 0; i < 3; i++)
		in8(u, UART_REG_RBR);
	out8(u, UART_REG_MCR, UART_MCR_OUT2 | UART_MCR_DTR);
	out8(u, UART_REG_IER, UART_IER_RDI | UART_IER_THRI | UART_IER_RLSI | UART_IER_MSI);
	out8(u, UART_REG_LCR, UART_LCR_DLAB);
	out8(u, UART_REG_DLL, 0x0c);
	out8(u, UART_REG_DLM, 0x01);
	out8(u, UART_REG_LCR, 0x1b);
	out8(u, UART_REG_SCR, 0x5a);
}

/* Read the same registers of @f and @g in the same order: the guest must see no difference. */
static void uart_compare_reads(struct fixture *f, struct fixture *g)
{
	static const unsigned int regs[] = {UART_REG_IIR, UART_REG_LSR, UART_REG_MSR, UART_REG_IER,
	                                    UART_REG_LCR, UART_REG_MCR, UART_REG_SCR, UART_REG_IIR,
	                                    UART_REG_LSR, UART_REG_MSR, UART_REG_IIR};

	for (unsigned int i = 0; i < sizeof(regs) / sizeof(regs[0]); i++)
		assert_int_equal(in8(g->uart, regs[i]), in8(f->uart, regs[i]));
	out8(f->uart, UART_REG_LCR, 0x1b | UART_LCR_DLAB);
	out8(g->uart, UART_REG_LCR, 0x1b | UART_LCR_DLAB);
	assert_int_equal(in8(g->uart, UART_REG_DLL), in8(f->uart, UART_REG_DLL));
	assert_int_equal(in8(g->uart, UART_REG_DLM), in8(f->uart, UART_REG_DLM));
	out8(f->uart, UART_REG_LCR, 0x1b);
	out8(g->uart, UART_REG_LCR, 0x1b);
	/* The FIFO, byte for byte, then empty on both. */
	for (unsigned int i = 0; i < UART_16550_FIFO_SIZE + 2; i++) {
		uint8_t lsr = in8(f->uart, UART_REG_LSR);

		assert_int_equal(in8(g->uart, UART_REG_LSR), lsr);
		assert_int_equal(in8(g->uart, UART_REG_IIR), in8(f->uart, UART_REG_IIR));
		assert_int_equal(in8(g->uart, UART_REG_RBR), in8(f->uart, UART_REG_RBR));
	}
	assert_int_equal(g->irq.level, f->irq.level);
}

static void test_device_save_restore(void **state)
{
	const struct device_ops *ops = &uart_16550_device_ops;
	struct fixture *f = fixture_new(false), *g = fixture_new(false);
	struct dev_state s, s2;
	char why[160];

	(void)state;
	uart_busy_state(f->uart);
	assert_int_equal(f->irq.level, 1);
	dst_save(ops, f->uart, &s);
	/* 9 registers, the THRE flag, the count and 13 bytes. */
	assert_int_equal(s.len, 9 + 1 + 1 + 13);
	assert_int_equal(s.buf[10], 13);
	assert_int_equal(s.buf[11], 'a' + 3); /* oldest first */

	assert_int_equal(dst_restore(ops, g->uart, s.buf, s.len, why, sizeof(why)), 0);
	assert_int_equal(g->irq.calls, 0); /* a restore raises nothing */
	dst_save(ops, g->uart, &s2);
	assert_int_equal(s2.len, s.len);
	assert_memory_equal(s2.buf, s.buf, s.len);
	ds_release(&s2);

	/* The restored UART knows its line is up: draining it lowers the line. */
	uart_compare_reads(f, g);
	assert_int_equal(g->irq.level, 0);
	assert_int_equal(g->irq.calls, 1);
	ds_release(&s);

	/* A guest reset: power-on registers, the line down. */
	uart_busy_state(g->uart);
	assert_int_equal(g->irq.level, 1);
	ops->reset(g->uart);
	assert_int_equal(g->irq.level, 0);
	assert_int_equal(in8(g->uart, UART_REG_IER), 0);
	assert_int_equal(in8(g->uart, UART_REG_IIR), UART_IIR_NO_INT);
	assert_int_equal(in8(g->uart, UART_REG_LCR), 0);
	assert_int_equal(in8(g->uart, UART_REG_LSR), UART_LSR_THRE | UART_LSR_TEMT);
	assert_int_equal(in8(g->uart, UART_REG_MSR), UART_MSR_DCD | UART_MSR_DSR | UART_MSR_CTS);
	assert_int_equal(in8(g->uart, UART_REG_SCR), 0);
	fixture_free(f);
	fixture_free(g);
}

/* Restore @s with byte @off set to @val: refused for @why, @g unchanged. */
static void uart_expect_bad_byte(struct fixture *g, const struct dev_state *s, size_t off,
                                 uint8_t val, const char *why)
{
	uint8_t buf[64];

	assert_true(s->len <= sizeof(buf));
	memcpy(buf, s->buf, s->len);
	buf[off] = val;
	dst_expect_refused(&uart_16550_device_ops, g->uart, buf, s->len, why, SIZE_MAX);
}

static void test_device_restore_refused(void **state)
{
	const struct device_ops *ops = &uart_16550_device_ops;
	struct fixture *f = fixture_new(false), *g = fixture_new(false);
	struct dev_state s;
	uint8_t buf[64];

	(void)state;
	uart_busy_state(f->uart);
	dst_save(ops, f->uart, &s);
	/* g holds a state of its own, which every refusal must leave as it is. */
	out8(g->uart, UART_REG_SCR, 0x77);
	out8(g->uart, UART_REG_FCR, UART_FCR_ENABLE_FIFO);
	assert_int_equal(uart_16550_receive(g->uart, "xy", 2), 2);

	dst_expect_exact(ops, g->uart, &s, SIZE_MAX);
	uart_expect_bad_byte(g, &s, 0, 0xf0, "IER has reserved bits");
	uart_expect_bad_byte(g, &s, 2, 0xe0, "MCR has reserved bits");
	uart_expect_bad_byte(g, &s, 3, UART_LSR_THRE, "LSR holds more than its error bits");
	uart_expect_bad_byte(g, &s, 4, 0, "MSR's line status disagrees with MCR");
	uart_expect_bad_byte(g, &s, 8, UART_FCR_ENABLE_FIFO | UART_FCR_CLEAR_RCVR,
	                     "FCR holds bits that are write-only");
	uart_expect_bad_byte(g, &s, 8, UART_FCR_TRIGGER_4, "FIFO settings with the FIFOs off");
	/* FIFOs off: one byte of room, and the state has 13. */
	uart_expect_bad_byte(g, &s, 8, 0, "more bytes than it has room for");
	uart_expect_bad_byte(g, &s, 9, 2, "a flag holds 2");
	/* Counts past the FIFO, whatever follows. */
	memcpy(buf, s.buf, s.len);
	buf[10] = UART_16550_FIFO_SIZE + 1;
	dst_expect_refused(ops, g->uart, buf, s.len, "RX FIFO holds 17 bytes, more than 16",
	                   SIZE_MAX);
	memset(buf + s.len, 0, sizeof(buf) - s.len);
	dst_expect_refused(ops, g->uart, buf, 11 + UART_16550_FIFO_SIZE + 1, "more than 16",
	                   SIZE_MAX);
	buf[10] = 0xff;
	dst_expect_refused(ops, g->uart, buf, sizeof(buf), "more than 16", SIZE_MAX);

	assert_int_equal(in8(g->uart, UART_REG_SCR), 0x77);
	assert_int_equal(in8(g->uart, UART_REG_RBR), 'x');
	assert_int_equal(g->irq.calls, 0);
	ds_release(&s);
	fixture_free(f);
	fixture_free(g);
}

/* The monitor's pattern: an input thread feeds receive(), waiting on rx_ready when full. */
#define STRESS_BYTES 100000

struct stress {
	struct uart_16550 *uart;
	int wake_fd;
};

static void stress_rx_ready(void *opaque)
{
	struct stress *st = opaque;
	uint64_t one = 1;

	assert_int_equal(write(st->wake_fd, &one, sizeof(one)), sizeof(one));
}

static void *stress_input(void *arg)
{
	struct stress *st = arg;
	uint8_t buf[64];
	size_t sent = 0;

	while (sent < STRESS_BYTES) {
		size_t room = uart_16550_rx_room(st->uart), i, n;
		uint64_t v;

		if (room == 0) {
			if (read(st->wake_fd, &v, sizeof(v)) != sizeof(v))
				return NULL;
			continue;
		}
		n = room < sizeof(buf) ? room : sizeof(buf);
		if (n > STRESS_BYTES - sent)
			n = STRESS_BYTES - sent;
		for (i = 0; i < n; i++)
			buf[i] = (uint8_t)(sent + i);
		sent += uart_16550_receive(st->uart, buf, n);
	}
	return NULL;
}

static void test_concurrent_receive(void **state)
{
	struct stress st = {0};
	struct uart_16550_config cfg = {.out_fd = -1, .rx_ready = stress_rx_ready};
	pthread_t thread;
	size_t got = 0;

	(void)state;
	st.wake_fd = eventfd(0, EFD_CLOEXEC);
	assert_true(st.wake_fd >= 0);
	cfg.rx_ready_opaque = &st;
	assert_int_equal(uart_16550_create(&cfg, &st.uart), 0);
	out8(st.uart, UART_REG_FCR, UART_FCR_ENABLE_FIFO);
	assert_int_equal(pthread_create(&thread, NULL, stress_input, &st), 0);
	/* The "guest": drain the FIFO in order, never seeing a lost or doubled byte. */
	while (got < STRESS_BYTES) {
		if (!(in8(st.uart, UART_REG_LSR) & UART_LSR_DR))
			continue;
		assert_int_equal(in8(st.uart, UART_REG_RBR), (uint8_t)got);
		got++;
	}
	assert_int_equal(pthread_join(thread, NULL), 0);
	assert_int_equal(in8(st.uart, UART_REG_LSR) & (UART_LSR_DR | UART_LSR_OE), 0);
	uart_16550_destroy(st.uart);
	close(st.wake_fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_reset_state),
	    cmocka_unit_test(test_divisor_latch),
	    cmocka_unit_test(test_thr_output_to_pipe),
	    cmocka_unit_test(test_output_discarded),
	    cmocka_unit_test(test_output_stall_nonblocking),
	    cmocka_unit_test(test_output_stall_blocking),
	    cmocka_unit_test(test_output_reader_gone),
	    cmocka_unit_test(test_thre_interrupt),
	    cmocka_unit_test(test_iir_priorities),
	    cmocka_unit_test(test_rx_fifo),
	    cmocka_unit_test(test_rx_interrupt_and_trigger),
	    cmocka_unit_test(test_loopback),
	    cmocka_unit_test(test_linux_autoconfig_16550a),
	    cmocka_unit_test(test_wide_and_odd_accesses),
	    cmocka_unit_test(test_save_restore),
	    cmocka_unit_test(test_device_save_restore),
	    cmocka_unit_test(test_device_restore_refused),
	    cmocka_unit_test(test_concurrent_receive),
	};

	/* The monitor ignores SIGPIPE; so does this test, for the EPIPE case. */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
