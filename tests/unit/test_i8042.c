/* SPDX-License-Identifier: MIT */
/* Unit tests: i8042 keyboard controller commands, keyboard replies, reset. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "devices/legacy/i8042.h"

#include "device_state_test.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct fixture {
	struct i8042 *kbc;
	int resets;
	int irq_level;
	int irq_raises;
	int irq_calls;
	struct irq_line line;
};

static void on_reset(void *opaque)
{
	struct fixture *f = opaque;

	f->resets++;
}

static void on_irq(void *opaque, unsigned int gsi, int level)
{
	struct fixture *f = opaque;

	assert_int_equal(gsi, 1);
	f->irq_level = level;
	f->irq_calls++;
	if (level)
		f->irq_raises++;
}

static struct fixture *fixture_new(bool with_irq)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct i8042_config cfg = {0};

	assert_non_null(f);
	f->line = (struct irq_line){.set = on_irq, .opaque = f, .gsi = 1};
	cfg.reset = on_reset;
	cfg.reset_opaque = f;
	cfg.kbd_irq = with_irq ? &f->line : NULL;
	assert_int_equal(i8042_create(&cfg, &f->kbc), 0);
	return f;
}

static void fixture_free(struct fixture *f)
{
	i8042_destroy(f->kbc);
	free(f);
}

static uint8_t status(struct fixture *f)
{
	uint8_t v = 0;

	i8042_cmd_io(f->kbc, 0, &v, 1, false);
	return v;
}

static void command(struct fixture *f, uint8_t cmd)
{
	i8042_cmd_io(f->kbc, 0, &cmd, 1, true);
}

static void write_data(struct fixture *f, uint8_t val)
{
	i8042_data_io(f->kbc, 0, &val, 1, true);
}

static uint8_t read_data(struct fixture *f)
{
	uint8_t v = 0;

	i8042_data_io(f->kbc, 0, &v, 1, false);
	return v;
}

/* Like Linux's i8042_command(): returns the reply, asserting there is one. */
static uint8_t command_reply(struct fixture *f, uint8_t cmd)
{
	command(f, cmd);
	assert_true(status(f) & I8042_STR_OBF);
	return read_data(f);
}

static void test_status_and_ctr(void **state)
{
	struct fixture *f = fixture_new(false);
	uint8_t ctr;

	(void)state;
	/* Not inhibited, system flag set, nothing to read, never busy. */
	assert_int_equal(status(f), I8042_STR_KEYLOCK | I8042_STR_SYSFLAG);
	ctr = command_reply(f, I8042_CMD_READ_RAM);
	assert_int_equal(ctr,
	                 I8042_CTR_XLATE | I8042_CTR_AUXDIS | I8042_CTR_SYSFLAG | I8042_CTR_KBDINT);
	assert_int_equal(status(f) & I8042_STR_OBF, 0);
	assert_true(status(f) & I8042_STR_CMDDAT);

	command(f, I8042_CMD_WRITE_RAM);
	write_data(f, 0x74);
	assert_int_equal(status(f) & (I8042_STR_OBF | I8042_STR_IBF | I8042_STR_CMDDAT), 0);
	assert_int_equal(command_reply(f, I8042_CMD_READ_RAM), 0x74);
	/* Other RAM bytes through 0x21-0x3f / 0x61-0x7f. */
	command(f, I8042_CMD_WRITE_RAM + 5);
	write_data(f, 0x99);
	assert_int_equal(command_reply(f, I8042_CMD_READ_RAM + 5), 0x99);
	assert_int_equal(command_reply(f, I8042_CMD_READ_RAM), 0x74);
	/* Clearing the system flag in the CTR clears it in the status register. */
	command(f, I8042_CMD_WRITE_RAM);
	write_data(f, 0x00);
	assert_int_equal(status(f) & I8042_STR_SYSFLAG, 0);
	fixture_free(f);
}

static void test_self_tests_and_port_enables(void **state)
{
	struct fixture *f = fixture_new(false);

	(void)state;
	assert_int_equal(command_reply(f, I8042_CMD_SELF_TEST), I8042_SELF_TEST_OK);
	assert_int_equal(command_reply(f, I8042_CMD_KBD_TEST), I8042_KBD_TEST_OK);

	command(f, I8042_CMD_KBD_DISABLE);
	assert_true(command_reply(f, I8042_CMD_READ_RAM) & I8042_CTR_KBDDIS);
	command(f, I8042_CMD_KBD_ENABLE);
	assert_false(command_reply(f, I8042_CMD_READ_RAM) & I8042_CTR_KBDDIS);
	command(f, I8042_CMD_AUX_ENABLE);
	assert_false(command_reply(f, I8042_CMD_READ_RAM) & I8042_CTR_AUXDIS);
	command(f, I8042_CMD_AUX_DISABLE);
	assert_true(command_reply(f, I8042_CMD_READ_RAM) & I8042_CTR_AUXDIS);
	/* Unknown commands are ignored and leave nothing to read. */
	command(f, 0xc8);
	assert_int_equal(status(f) & I8042_STR_OBF, 0);
	assert_int_equal(f->resets, 0);
	fixture_free(f);
}

static void test_reset_line(void **state)
{
	struct fixture *f = fixture_new(false);

	(void)state;
	command(f, I8042_CMD_RESET);
	assert_int_equal(f->resets, 1);
	/* Pulse commands that leave bit 0 alone do not reset. */
	command(f, 0xff);
	command(f, 0xfd);
	assert_int_equal(f->resets, 1);
	/* Writing the output port with bit 0 clear holds the CPU in reset. */
	assert_int_equal(command_reply(f, I8042_CMD_READ_OUTPORT),
	                 I8042_OUTPORT_RESET | I8042_OUTPORT_A20);
	command(f, I8042_CMD_WRITE_OUTPORT);
	write_data(f, I8042_OUTPORT_RESET);
	assert_int_equal(f->resets, 1);
	assert_int_equal(command_reply(f, I8042_CMD_READ_OUTPORT), I8042_OUTPORT_RESET);
	command(f, I8042_CMD_A20_ENABLE);
	assert_int_equal(command_reply(f, I8042_CMD_READ_OUTPORT),
	                 I8042_OUTPORT_RESET | I8042_OUTPORT_A20);
	command(f, I8042_CMD_WRITE_OUTPORT);
	write_data(f, 0xfe);
	assert_int_equal(f->resets, 2);
	fixture_free(f);
}

/*
 * Linux's i8042 probe: controller check, CTR setup, then i8042_check_aux().
 * It must conclude "no AUX port" without waiting for a timeout: every
 * command that expects a reply must find OBF set straight away.
 */
static void test_linux_probe_no_aux(void **state)
{
	struct fixture *f = fixture_new(true);
	uint8_t ctr, st, param;

	(void)state;
	assert_int_equal(status(f) & I8042_STR_OBF, 0); /* i8042_flush: nothing */
	assert_int_equal(command_reply(f, I8042_CMD_SELF_TEST), I8042_SELF_TEST_OK);
	ctr = command_reply(f, I8042_CMD_READ_RAM);
	assert_int_equal(command_reply(f, I8042_CMD_READ_RAM), ctr); /* stable */
	assert_true(status(f) & I8042_STR_KEYLOCK); /* no "Keylock active" warning */
	ctr = (uint8_t)((ctr | I8042_CTR_KBDDIS) & ~I8042_CTR_KBDINT);
	command(f, I8042_CMD_WRITE_RAM);
	write_data(f, ctr);

	/* AUX_LOOP: the byte comes back, but not flagged as aux data: "auxerr". */
	command(f, I8042_CMD_AUX_LOOP);
	write_data(f, 0x5a);
	st = status(f);
	assert_true(st & I8042_STR_OBF);
	assert_false(st & I8042_STR_AUXDATA);
	/* AUX_TEST: Linux reads the reply; 0x02 (clock stuck) means no port. */
	param = command_reply(f, I8042_CMD_AUX_TEST);
	assert_int_not_equal(param, 0);
	assert_int_not_equal(param, 0xfa);
	assert_int_not_equal(param, 0xff);
	assert_int_equal(status(f) & I8042_STR_OBF, 0);

	/* i8042_enable_kbd_port. */
	ctr = (uint8_t)((ctr & ~I8042_CTR_KBDDIS) | I8042_CTR_KBDINT);
	command(f, I8042_CMD_WRITE_RAM);
	write_data(f, ctr);
	assert_int_equal(f->irq_level, 0);
	assert_int_equal(f->resets, 0);
	fixture_free(f);
}

/* atkbd_probe: GET ID, then SET LEDS; each byte raises IRQ 1. */
static void test_keyboard_replies(void **state)
{
	struct fixture *f = fixture_new(true);
	static const uint8_t id[] = {PS2_KBD_REPLY_ACK, PS2_KBD_ID_0, PS2_KBD_ID_1};
	size_t i;

	(void)state;
	write_data(f, PS2_KBD_CMD_GET_ID);
	for (i = 0; i < sizeof(id); i++) {
		assert_int_equal(f->irq_level, 1);
		assert_int_equal(f->irq_raises, (int)i + 1); /* a fresh edge per byte */
		assert_int_equal(status(f) & (I8042_STR_OBF | I8042_STR_AUXDATA), I8042_STR_OBF);
		assert_int_equal(read_data(f), id[i]);
	}
	assert_int_equal(f->irq_level, 0);
	assert_int_equal(status(f) & I8042_STR_OBF, 0);

	write_data(f, PS2_KBD_CMD_SET_LEDS);
	assert_int_equal(read_data(f), PS2_KBD_REPLY_ACK);
	write_data(f, 0x07);
	assert_int_equal(read_data(f), PS2_KBD_REPLY_ACK);
	write_data(f, PS2_KBD_CMD_SCANSET);
	assert_int_equal(read_data(f), PS2_KBD_REPLY_ACK);
	write_data(f, 0);
	assert_int_equal(read_data(f), PS2_KBD_REPLY_ACK);
	assert_int_equal(read_data(f), 2);
	write_data(f, PS2_KBD_CMD_RESET);
	assert_int_equal(read_data(f), PS2_KBD_REPLY_ACK);
	assert_int_equal(read_data(f), PS2_KBD_REPLY_BAT_OK);
	write_data(f, PS2_KBD_CMD_ECHO);
	assert_int_equal(read_data(f), PS2_KBD_CMD_ECHO);
	write_data(f, PS2_KBD_CMD_ENABLE);
	assert_int_equal(read_data(f), PS2_KBD_REPLY_ACK);
	write_data(f, 0x42); /* not a command */
	assert_int_equal(read_data(f), PS2_KBD_REPLY_RESEND);
	/* An empty output buffer reads the last byte again. */
	assert_int_equal(read_data(f), PS2_KBD_REPLY_RESEND);
	assert_int_equal(f->irq_level, 0);

	/* No interrupt while CTR.KBDINT is clear, one as soon as it is set. */
	command(f, I8042_CMD_WRITE_RAM);
	write_data(f, I8042_CTR_XLATE | I8042_CTR_SYSFLAG);
	write_data(f, PS2_KBD_CMD_ECHO);
	assert_int_equal(f->irq_level, 0);
	command(f, I8042_CMD_WRITE_RAM);
	write_data(f, I8042_CTR_XLATE | I8042_CTR_SYSFLAG | I8042_CTR_KBDINT);
	assert_int_equal(f->irq_level, 1);
	assert_int_equal(read_data(f), PS2_KBD_CMD_ECHO);
	fixture_free(f);
}

static void test_disabled_keyboard_holds_data(void **state)
{
	struct fixture *f = fixture_new(true);
	int i;

	(void)state;
	command(f, I8042_CMD_KBD_DISABLE);
	write_data(f, PS2_KBD_CMD_ECHO);
	assert_int_equal(status(f) & I8042_STR_OBF, 0);
	assert_int_equal(f->irq_level, 0);
	/* A controller reply still gets through. */
	assert_int_equal(command_reply(f, I8042_CMD_KBD_TEST), 0);
	command(f, I8042_CMD_KBD_ENABLE);
	assert_true(status(f) & I8042_STR_OBF);
	assert_int_equal(read_data(f), PS2_KBD_CMD_ECHO);
	/* Flooding the keyboard drops bytes past its buffer, nothing worse. */
	for (i = 0; i < 100; i++)
		write_data(f, PS2_KBD_CMD_GET_ID);
	for (i = 0; i < I8042_KBD_QUEUE_SIZE; i++)
		read_data(f);
	assert_int_equal(status(f) & I8042_STR_OBF, 0);
	fixture_free(f);
}

static void test_odd_accesses(void **state)
{
	struct fixture *f = fixture_new(false);
	uint8_t buf[8];
	uint32_t len, off;

	(void)state;
	command(f, I8042_CMD_SELF_TEST);
	/* Only byte 0 is the port; the rest read 0xff and the reply stays. */
	memset(buf, 0, sizeof(buf));
	i8042_data_io(f->kbc, 1, buf, 1, false);
	assert_int_equal(buf[0], 0xff);
	i8042_data_io(f->kbc, 0, buf, 4, false);
	assert_int_equal(buf[0], I8042_SELF_TEST_OK);
	assert_int_equal(buf[1], 0xff);
	assert_int_equal(buf[3], 0xff);
	memset(buf, 0xfe, sizeof(buf));
	i8042_cmd_io(f->kbc, 3, buf, 8, true); /* not the port: no reset */
	assert_int_equal(f->resets, 0);
	for (len = 1; len <= 8; len *= 2)
		for (off = 0; off < 4; off++) {
			memset(buf, 0x5a, sizeof(buf));
			i8042_data_io(f->kbc, off, buf, len, true);
			i8042_data_io(f->kbc, off, buf, len, false);
			i8042_cmd_io(f->kbc, off, buf, len, false);
		}
	i8042_cmd_io(f->kbc, 0, buf, 0, true);
	assert_int_equal(f->resets, 0);
	fixture_free(f);
}

static void test_save_restore(void **state)
{
	struct fixture *f = fixture_new(true), *g = fixture_new(true);
	struct i8042_state s, s2, bad;

	(void)state;
	write_data(f, PS2_KBD_CMD_GET_ID);
	assert_int_equal(read_data(f), PS2_KBD_REPLY_ACK);
	command(f, I8042_CMD_WRITE_RAM + 3);
	i8042_save(f->kbc, &s);
	assert_int_equal(i8042_restore(g->kbc, &s), 0);
	assert_int_equal(g->irq_level, 1);
	i8042_save(g->kbc, &s2);
	assert_memory_equal(&s, &s2, sizeof(s));
	write_data(g, 0x33); /* completes the pending RAM write */
	assert_int_equal(read_data(g), PS2_KBD_ID_0);
	assert_int_equal(command_reply(g, I8042_CMD_READ_RAM + 3), 0x33);

	bad = s;
	bad.kbd_count = I8042_KBD_QUEUE_SIZE + 1;
	assert_int_equal(i8042_restore(g->kbc, &bad), -EINVAL);
	bad = s;
	bad.pending_cmd = I8042_CMD_SELF_TEST;
	assert_int_equal(i8042_restore(g->kbc, &bad), -EINVAL);
	bad = s;
	bad.kbd_pending_cmd = 0x12;
	assert_int_equal(i8042_restore(g->kbc, &bad), -EINVAL);
	fixture_free(f);
	fixture_free(g);
	i8042_destroy(NULL);
}

/*
 * A controller with a bit of everything: a RAM byte written, A20 off, the
 * keyboard queue partly read (its head moved) with a keyboard command
 * waiting for its parameter, and a controller reply waiting to be read.
 */
static void i8042_busy_state(struct fixture *f)
{
	command(f, I8042_CMD_WRITE_RAM + 5);
	write_data(f, 0x42);
	command(f, I8042_CMD_A20_DISABLE);
	write_data(f, PS2_KBD_CMD_GET_ID);
	write_data(f, PS2_KBD_CMD_GET_ID);
	assert_int_equal(read_data(f), PS2_KBD_REPLY_ACK);
	write_data(f, PS2_KBD_CMD_SET_LEDS);
	command(f, I8042_CMD_READ_RAM + 5);
}

/* Status and output buffer of @f and @g, read in lockstep, must agree. */
static void i8042_compare_reads(struct fixture *f, struct fixture *g, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++) {
		assert_int_equal(status(g), status(f));
		assert_int_equal(read_data(g), read_data(f));
		assert_int_equal(g->irq_level, f->irq_level);
	}
}

static void test_device_save_restore(void **state)
{
	const struct device_ops *ops = &i8042_device_ops;
	struct fixture *f = fixture_new(true), *g = fixture_new(true);
	struct dev_state s, s2;
	char why[160];
	int raised;

	(void)state;
	i8042_busy_state(f);
	raised = f->irq_raises;
	dst_save(ops, f->kbc, &s);
	/* RAM, 8 bytes of registers, the count and 6 queued bytes. */
	assert_int_equal(s.len, I8042_RAM_SIZE + 8 + 6);
	assert_int_equal(s.buf[I8042_RAM_SIZE + 7], 6);
	assert_int_equal(s.buf[I8042_RAM_SIZE + 8], PS2_KBD_ID_0); /* oldest first */

	assert_int_equal(dst_restore(ops, g->kbc, s.buf, s.len, why, sizeof(why)), 0);
	assert_int_equal(g->irq_calls, 0); /* a restore raises nothing */
	dst_save(ops, g->kbc, &s2);
	assert_int_equal(s2.len, s.len);
	assert_memory_equal(s2.buf, s.buf, s.len);
	ds_release(&s2);
	ds_release(&s);

	/* The reply, the queue, then the last byte again; then the LED parameter. */
	i8042_compare_reads(f, g, 8);
	write_data(f, 0x02);
	write_data(g, 0x02);
	i8042_compare_reads(f, g, 3);
	for (unsigned int i = 0; i < I8042_RAM_SIZE; i++)
		assert_int_equal(command_reply(g, (uint8_t)(I8042_CMD_READ_RAM + i)),
		                 command_reply(f, (uint8_t)(I8042_CMD_READ_RAM + i)));
	assert_int_equal(command_reply(g, I8042_CMD_READ_OUTPORT),
	                 command_reply(f, I8042_CMD_READ_OUTPORT));
	/* Every edge since the save, on both. */
	assert_true(g->irq_raises > 0);
	assert_int_equal(g->irq_raises, f->irq_raises - raised);

	/* A guest reset: the controller as created, nothing to read, the line down. */
	i8042_busy_state(g);
	assert_int_equal(g->irq_level, 1);
	ops->reset(g->kbc);
	assert_int_equal(g->irq_level, 0);
	assert_int_equal(status(g) & I8042_STR_OBF, 0);
	assert_int_equal(command_reply(g, I8042_CMD_READ_RAM),
	                 I8042_CTR_XLATE | I8042_CTR_AUXDIS | I8042_CTR_SYSFLAG | I8042_CTR_KBDINT);
	assert_int_equal(command_reply(g, I8042_CMD_READ_RAM + 5), 0);
	assert_int_equal(command_reply(g, I8042_CMD_READ_OUTPORT),
	                 I8042_OUTPORT_RESET | I8042_OUTPORT_A20);
	fixture_free(f);
	fixture_free(g);
}

static void i8042_expect_bad_byte(struct fixture *g, const struct dev_state *s, size_t off,
                                  uint8_t val, const char *why)
{
	uint8_t buf[128];

	assert_true(s->len <= sizeof(buf));
	memcpy(buf, s->buf, s->len);
	buf[off] = val;
	dst_expect_refused(&i8042_device_ops, g->kbc, buf, s->len, why, SIZE_MAX);
}

static void test_device_restore_refused(void **state)
{
	const struct device_ops *ops = &i8042_device_ops;
	struct fixture *f = fixture_new(true), *g = fixture_new(true);
	struct dev_state s;
	uint8_t buf[128];

	(void)state;
	i8042_busy_state(f);
	dst_save(ops, f->kbc, &s);
	write_data(g, PS2_KBD_CMD_ECHO); /* g's own state: one byte queued */
	g->irq_calls = 0;

	dst_expect_exact(ops, g->kbc, &s, SIZE_MAX);
	i8042_expect_bad_byte(g, &s, I8042_RAM_SIZE + 1, 2, "a flag holds 2");
	i8042_expect_bad_byte(g, &s, I8042_RAM_SIZE + 2, I8042_CMD_SELF_TEST,
	                      "pending controller command takes no data byte");
	i8042_expect_bad_byte(g, &s, I8042_RAM_SIZE + 3, 0x80, "a flag holds 128");
	i8042_expect_bad_byte(g, &s, I8042_RAM_SIZE + 6, PS2_KBD_CMD_GET_ID,
	                      "pending keyboard command takes no parameter");
	memset(buf, 0, sizeof(buf));
	memcpy(buf, s.buf, s.len);
	buf[I8042_RAM_SIZE + 7] = I8042_KBD_QUEUE_SIZE + 1;
	dst_expect_refused(ops, g->kbc, buf, I8042_RAM_SIZE + 8 + I8042_KBD_QUEUE_SIZE + 1,
	                   "keyboard queue holds 17 bytes, more than 16", SIZE_MAX);
	buf[I8042_RAM_SIZE + 7] = 0xff;
	dst_expect_refused(ops, g->kbc, buf, sizeof(buf), "more than 16", SIZE_MAX);

	assert_int_equal(g->irq_calls, 0);
	assert_int_equal(read_data(g), PS2_KBD_CMD_ECHO);
	ds_release(&s);
	fixture_free(f);
	fixture_free(g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_status_and_ctr),
	    cmocka_unit_test(test_self_tests_and_port_enables),
	    cmocka_unit_test(test_reset_line),
	    cmocka_unit_test(test_linux_probe_no_aux),
	    cmocka_unit_test(test_keyboard_replies),
	    cmocka_unit_test(test_disabled_keyboard_holds_data),
	    cmocka_unit_test(test_odd_accesses),
	    cmocka_unit_test(test_save_restore),
	    cmocka_unit_test(test_device_save_restore),
	    cmocka_unit_test(test_device_restore_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
