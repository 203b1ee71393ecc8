/* SPDX-License-Identifier: MIT */
/*
 * Unit tests: the console input device (src/backends/console_in.c): bytes
 * from a pipe reach the UART in order, nothing reaches it while the device
 * is quiesced (even with room in the FIFO and bytes waiting), resume lets
 * them through, and the thread ends on EOF and on destroy, parked or not.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "backends/console_in.h"
#include "core/device.h"
#include "devices/legacy/uart_16550.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

struct fixture {
	struct uart_16550 *uart;
	struct console_in *ci;
	int wake_fd;
	int pipe[2];
};

static void rx_ready(void *opaque)
{
	struct fixture *f = opaque;
	uint64_t one = 1;

	assert_int_equal(write(f->wake_fd, &one, sizeof(one)), sizeof(one));
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

static void sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};

	nanosleep(&ts, NULL);
}

/* A UART with FIFOs on (or off: a one-byte holding register) fed from a pipe. */
static struct fixture *fixture_new(bool fifo)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct uart_16550_config cfg = {.out_fd = -1, .rx_ready = rx_ready};

	assert_non_null(f);
	cfg.rx_ready_opaque = f;
	f->wake_fd = eventfd(0, EFD_CLOEXEC);
	assert_true(f->wake_fd >= 0);
	assert_int_equal(pipe2(f->pipe, O_CLOEXEC), 0);
	assert_int_equal(uart_16550_create(&cfg, &f->uart), 0);
	if (fifo)
		out8(f->uart, UART_REG_FCR, UART_FCR_ENABLE_FIFO);
	assert_int_equal(console_in_create(f->uart, f->pipe[0], f->wake_fd, &f->ci), 0);
	return f;
}

static void fixture_free(struct fixture *f)
{
	console_in_destroy(f->ci); /* before the UART it feeds */
	uart_16550_destroy(f->uart);
	close(f->pipe[0]);
	if (f->pipe[1] >= 0)
		close(f->pipe[1]);
	close(f->wake_fd);
	free(f);
}

static void send(struct fixture *f, const char *s)
{
	assert_int_equal(write(f->pipe[1], s, strlen(s)), (ssize_t)strlen(s));
}

/* The guest reads @want from the UART, byte by byte, within 5 s. */
static void expect_bytes(struct fixture *f, const char *want)
{
	double deadline = now_sec() + 5;

	for (size_t i = 0; want[i];) {
		if (in8(f->uart, UART_REG_LSR) & UART_LSR_DR) {
			assert_int_equal(in8(f->uart, UART_REG_RBR), (uint8_t)want[i]);
			i++;
			continue;
		}
		assert_true(now_sec() < deadline);
		sleep_ms(1);
	}
}

static void expect_nothing_for(struct fixture *f, long ms)
{
	sleep_ms(ms);
	assert_int_equal(in8(f->uart, UART_REG_LSR) & UART_LSR_DR, 0);
}

static void test_input_and_quiesce(void **state)
{
	const struct device_ops *ops = &console_in_device_ops;
	struct fixture *f = fixture_new(true);
	double t0;

	(void)state;
	send(f, "hello");
	expect_bytes(f, "hello");

	/* The thread sits in poll(): quiesce wakes and parks it at once. */
	t0 = now_sec();
	assert_int_equal(ops->quiesce(f->ci), 0);
	assert_true(now_sec() - t0 < 0.5);
	send(f, "abc");
	expect_nothing_for(f, 100);
	assert_int_equal(ops->quiesce(f->ci), 0); /* twice: still parked */
	expect_nothing_for(f, 20);
	ops->resume(f->ci);
	expect_bytes(f, "abc");

	/* Again, to see that parking is not a one-off. */
	assert_int_equal(ops->quiesce(f->ci), 0);
	send(f, "de");
	expect_nothing_for(f, 50);
	ops->resume(f->ci);
	expect_bytes(f, "de");
	fixture_free(f);
}

/*
 * One byte of room at a time (FIFOs off): reading RBR makes room and
 * wakes the thread through rx_ready; while quiesced that must not let the
 * next byte in.
 */
static void test_room_while_quiesced(void **state)
{
	const struct device_ops *ops = &console_in_device_ops;
	struct fixture *f = fixture_new(false);
	double deadline = now_sec() + 5;

	(void)state;
	send(f, "xyz");
	while (!(in8(f->uart, UART_REG_LSR) & UART_LSR_DR)) {
		assert_true(now_sec() < deadline);
		sleep_ms(1);
	}
	assert_int_equal(ops->quiesce(f->ci), 0);
	assert_int_equal(in8(f->uart, UART_REG_RBR), 'x'); /* room again: rx_ready fires */
	expect_nothing_for(f, 100);
	ops->resume(f->ci);
	expect_bytes(f, "yz");
	fixture_free(f);
}

static void test_destroy_parked(void **state)
{
	const struct device_ops *ops = &console_in_device_ops;
	struct fixture *f = fixture_new(true);

	(void)state;
	assert_int_equal(ops->quiesce(f->ci), 0);
	send(f, "lost");
	fixture_free(f); /* joins the parked thread */
}

/* At EOF the thread ends; quiesce, resume and destroy still work, without waiting. */
static void test_eof(void **state)
{
	const struct device_ops *ops = &console_in_device_ops;
	struct fixture *f = fixture_new(true);
	double t0;

	(void)state;
	send(f, "bye");
	close(f->pipe[1]);
	f->pipe[1] = -1;
	expect_bytes(f, "bye");
	sleep_ms(20);
	t0 = now_sec();
	assert_int_equal(ops->quiesce(f->ci), 0);
	assert_true(now_sec() - t0 < 0.5);
	ops->resume(f->ci);
	expect_nothing_for(f, 20);
	fixture_free(f);
}

static void test_no_input(void **state)
{
	const struct device_ops *ops = &console_in_device_ops;
	struct uart_16550_config cfg = {.out_fd = -1};
	struct uart_16550 *uart;
	struct console_in *ci;

	(void)state;
	assert_int_equal(uart_16550_create(&cfg, &uart), 0);
	assert_int_equal(console_in_create(uart, -1, -1, &ci), 0);
	assert_int_equal(ops->quiesce(ci), 0);
	ops->resume(ci);
	assert_null(ops->save);
	assert_null(ops->restore);
	console_in_destroy(ci);
	assert_int_equal(console_in_create(uart, 0, -1, &ci), -EINVAL);
	assert_null(ci);
	assert_int_equal(console_in_create(NULL, -1, -1, &ci), -EINVAL);
	console_in_destroy(NULL);
	uart_16550_destroy(uart);
}

/* As the machine has them: com1, then console-in; the list destroys console-in first. */
static void test_in_a_device_list(void **state)
{
	struct device_list dl = {0};
	struct fixture *f = fixture_new(true);

	(void)state;
	assert_int_equal(device_register(&dl, "com1", &uart_16550_device_ops, f->uart), 0);
	assert_int_equal(device_register(&dl, "console-in", &console_in_device_ops, f->ci), 0);
	assert_int_equal(device_list_quiesce(&dl), 0);
	send(f, "q");
	expect_nothing_for(f, 50);
	device_list_resume(&dl);
	expect_bytes(f, "q");
	send(f, "still feeding");
	device_list_destroy(&dl);
	f->ci = NULL;
	f->uart = NULL;
	fixture_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_input_and_quiesce), cmocka_unit_test(test_room_while_quiesced),
	    cmocka_unit_test(test_destroy_parked),    cmocka_unit_test(test_eof),
	    cmocka_unit_test(test_no_input),          cmocka_unit_test(test_in_a_device_list),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
