/* SPDX-License-Identifier: MIT */
/* Unit tests: MC146818 RTC clock registers, formats, status registers, CMOS RAM. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "devices/legacy/rtc.h"

#include "device_state_test.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct fixture {
	struct rtc *rtc;
	time_t now;
};

static time_t fake_now(void *opaque)
{
	return ((struct fixture *)opaque)->now;
}

/* 2024-02-29 13:45:56 UTC, a Thursday. */
static time_t test_time(void)
{
	struct tm tm = {
	    .tm_year = 124, .tm_mon = 1, .tm_mday = 29, .tm_hour = 13, .tm_min = 45, .tm_sec = 56};

	return timegm(&tm);
}

static struct fixture *fixture_new(void)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct rtc_config cfg = {.now = fake_now};

	assert_non_null(f);
	cfg.now_opaque = f;
	f->now = test_time();
	assert_int_equal(rtc_create(&cfg, &f->rtc), 0);
	return f;
}

static void fixture_free(struct fixture *f)
{
	rtc_destroy(f->rtc);
	free(f);
}

static uint8_t cmos_read(struct fixture *f, uint8_t idx)
{
	uint8_t v = 0;

	rtc_io(f->rtc, 0, &idx, 1, true);
	rtc_io(f->rtc, 1, &v, 1, false);
	return v;
}

static void cmos_write(struct fixture *f, uint8_t idx, uint8_t val)
{
	rtc_io(f->rtc, 0, &idx, 1, true);
	rtc_io(f->rtc, 1, &val, 1, true);
}

static void test_bcd_time(void **state)
{
	struct fixture *f = fixture_new();

	(void)state;
	assert_int_equal(cmos_read(f, RTC_REG_B), RTC_B_24H);
	assert_int_equal(cmos_read(f, RTC_REG_SECONDS), 0x56);
	assert_int_equal(cmos_read(f, RTC_REG_MINUTES), 0x45);
	assert_int_equal(cmos_read(f, RTC_REG_HOURS), 0x13);
	assert_int_equal(cmos_read(f, RTC_REG_DAY_OF_WEEK), 5);
	assert_int_equal(cmos_read(f, RTC_REG_DAY_OF_MONTH), 0x29);
	assert_int_equal(cmos_read(f, RTC_REG_MONTH), 0x02);
	assert_int_equal(cmos_read(f, RTC_REG_YEAR), 0x24);
	assert_int_equal(cmos_read(f, RTC_REG_CENTURY), 0x20);
	/* The clock follows the host clock at every read. */
	f->now += 5;
	assert_int_equal(cmos_read(f, RTC_REG_SECONDS), 0x01);
	assert_int_equal(cmos_read(f, RTC_REG_MINUTES), 0x46);
	fixture_free(f);
}

static void test_binary_and_12h(void **state)
{
	struct fixture *f = fixture_new();

	(void)state;
	cmos_write(f, RTC_REG_B, RTC_B_24H | RTC_B_DM_BINARY);
	assert_int_equal(cmos_read(f, RTC_REG_SECONDS), 56);
	assert_int_equal(cmos_read(f, RTC_REG_MINUTES), 45);
	assert_int_equal(cmos_read(f, RTC_REG_HOURS), 13);
	assert_int_equal(cmos_read(f, RTC_REG_DAY_OF_MONTH), 29);
	assert_int_equal(cmos_read(f, RTC_REG_MONTH), 2);
	assert_int_equal(cmos_read(f, RTC_REG_YEAR), 24);
	assert_int_equal(cmos_read(f, RTC_REG_CENTURY), 20);

	cmos_write(f, RTC_REG_B, RTC_B_DM_BINARY); /* 12-hour, binary */
	assert_int_equal(cmos_read(f, RTC_REG_HOURS), RTC_HOURS_PM | 1);
	cmos_write(f, RTC_REG_B, 0); /* 12-hour, BCD */
	assert_int_equal(cmos_read(f, RTC_REG_HOURS), RTC_HOURS_PM | 0x01);
	f->now -= 13 * 3600; /* 00:45: 12 AM */
	assert_int_equal(cmos_read(f, RTC_REG_HOURS), 0x12);
	f->now += 12 * 3600; /* 12:45: 12 PM */
	assert_int_equal(cmos_read(f, RTC_REG_HOURS), RTC_HOURS_PM | 0x12);
	f->now += 9 * 3600 + 15 * 60; /* 22:00: 10 PM */
	assert_int_equal(cmos_read(f, RTC_REG_HOURS), RTC_HOURS_PM | 0x10);
	fixture_free(f);
}

static void test_status_registers(void **state)
{
	struct fixture *f = fixture_new();

	(void)state;
	assert_int_equal(cmos_read(f, RTC_REG_A), RTC_A_DEFAULT);
	cmos_write(f, RTC_REG_A, 0xff);
	assert_int_equal(cmos_read(f, RTC_REG_A), 0x7f); /* UIP never set */
	assert_int_equal(cmos_read(f, RTC_REG_C), 0);
	assert_int_equal(cmos_read(f, RTC_REG_D), RTC_D_VRT);
	cmos_write(f, RTC_REG_D, 0);
	cmos_write(f, RTC_REG_C, 0xff);
	assert_int_equal(cmos_read(f, RTC_REG_D), RTC_D_VRT);
	assert_int_equal(cmos_read(f, RTC_REG_C), 0);
	/* Bit 7 of the index is the NMI mask, not part of the index. */
	assert_int_equal(cmos_read(f, RTC_INDEX_NMI_DISABLE | RTC_REG_D), RTC_D_VRT);
	assert_int_equal(cmos_read(f, RTC_INDEX_NMI_DISABLE | RTC_REG_SECONDS), 0x56);
	fixture_free(f);
}

static void test_cmos_ram(void **state)
{
	struct fixture *f = fixture_new();
	uint8_t idx;

	(void)state;
	for (idx = 0x0e; idx < RTC_CMOS_SIZE; idx++)
		if (idx != RTC_REG_CENTURY)
			cmos_write(f, idx, (uint8_t)(idx ^ 0x5a));
	for (idx = 0x0e; idx < RTC_CMOS_SIZE; idx++)
		if (idx != RTC_REG_CENTURY)
			assert_int_equal(cmos_read(f, idx), idx ^ 0x5a);
	/* Alarm registers are plain storage too. */
	cmos_write(f, RTC_REG_HOURS_ALARM, 0xc0);
	assert_int_equal(cmos_read(f, RTC_REG_HOURS_ALARM), 0xc0);

	assert_int_equal(rtc_cmos_set(f->rtc, 0x15, 0x80), 0);
	assert_int_equal(cmos_read(f, 0x15), 0x80);
	assert_int_equal(rtc_cmos_set(f->rtc, RTC_REG_SECONDS, 0), -EINVAL);
	assert_int_equal(rtc_cmos_set(f->rtc, RTC_REG_D, 0), -EINVAL);
	assert_int_equal(rtc_cmos_set(f->rtc, RTC_REG_CENTURY, 0), -EINVAL);
	assert_int_equal(rtc_cmos_set(f->rtc, RTC_CMOS_SIZE, 0), -EINVAL);
	fixture_free(f);
}

/* hwclock --systohc: SET, write every field, clear SET; the clock runs from there. */
static void test_set_time(void **state)
{
	struct fixture *f = fixture_new();

	(void)state;
	cmos_write(f, RTC_REG_B, RTC_B_24H | RTC_B_SET | RTC_B_UIE);
	assert_int_equal(cmos_read(f, RTC_REG_B), RTC_B_24H | RTC_B_SET); /* SET clears UIE */
	cmos_write(f, RTC_REG_SECONDS, 0x00);
	cmos_write(f, RTC_REG_MINUTES, 0x00);
	cmos_write(f, RTC_REG_HOURS, 0x23);
	cmos_write(f, RTC_REG_DAY_OF_MONTH, 0x31); /* written before the month: no normalising */
	cmos_write(f, RTC_REG_MONTH, 0x01);
	cmos_write(f, RTC_REG_YEAR, 0x30);
	cmos_write(f, RTC_REG_CENTURY, 0x20);
	f->now += 100; /* frozen while SET */
	assert_int_equal(cmos_read(f, RTC_REG_SECONDS), 0x00);
	cmos_write(f, RTC_REG_B, RTC_B_24H);
	f->now += 61;
	assert_int_equal(cmos_read(f, RTC_REG_SECONDS), 0x01);
	assert_int_equal(cmos_read(f, RTC_REG_MINUTES), 0x01);
	assert_int_equal(cmos_read(f, RTC_REG_HOURS), 0x23);
	assert_int_equal(cmos_read(f, RTC_REG_DAY_OF_MONTH), 0x31);
	assert_int_equal(cmos_read(f, RTC_REG_MONTH), 0x01);
	assert_int_equal(cmos_read(f, RTC_REG_YEAR), 0x30);
	assert_int_equal(cmos_read(f, RTC_REG_DAY_OF_WEEK), 5); /* 2030-01-31 is a Thursday */

	/* A single field written while running. */
	cmos_write(f, RTC_REG_YEAR, 0x31);
	assert_int_equal(cmos_read(f, RTC_REG_YEAR), 0x31);
	assert_int_equal(cmos_read(f, RTC_REG_MINUTES), 0x01);

	/* Garbage in every field: normalised, never a crash. */
	cmos_write(f, RTC_REG_B, RTC_B_SET);
	for (uint8_t idx = 0; idx <= RTC_REG_YEAR; idx++)
		cmos_write(f, idx, 0xff);
	cmos_write(f, RTC_REG_CENTURY, 0xff);
	cmos_write(f, RTC_REG_B, RTC_B_DM_BINARY);
	cmos_read(f, RTC_REG_YEAR);
	cmos_write(f, RTC_REG_B, RTC_B_SET | RTC_B_DM_BINARY);
	cmos_write(f, RTC_REG_CENTURY, 0);
	cmos_write(f, RTC_REG_YEAR, 0);
	cmos_write(f, RTC_REG_MONTH, 0);
	cmos_write(f, RTC_REG_DAY_OF_MONTH, 0);
	cmos_write(f, RTC_REG_B, RTC_B_24H);
	cmos_read(f, RTC_REG_YEAR);
	fixture_free(f);
}

static void test_port_accesses(void **state)
{
	struct fixture *f = fixture_new();
	uint8_t buf[8];
	uint32_t len, off;

	(void)state;
	/* The index port is write-only. */
	memset(buf, 0, sizeof(buf));
	rtc_io(f->rtc, 0, buf, 1, false);
	assert_int_equal(buf[0], 0xff);
	/* A 16-bit write sets the index then writes the data: outw(0x70, val << 8 | idx). */
	buf[0] = 0x40;
	buf[1] = 0x99;
	rtc_io(f->rtc, 0, buf, 2, true);
	assert_int_equal(cmos_read(f, 0x40), 0x99);
	/* A 16-bit read returns 0xff, then the selected register. */
	rtc_io(f->rtc, 0, buf, 2, false);
	assert_int_equal(buf[0], 0xff);
	assert_int_equal(buf[1], 0x99);
	rtc_io(f->rtc, 1, buf, 8, false);
	assert_int_equal(buf[0], 0x99);
	for (int i = 1; i < 8; i++)
		assert_int_equal(buf[i], 0xff);
	for (len = 1; len <= 8; len *= 2)
		for (off = 0; off < 4; off++) {
			memset(buf, 0xc3, sizeof(buf));
			rtc_io(f->rtc, off, buf, len, true);
			rtc_io(f->rtc, off, buf, len, false);
		}
	rtc_io(f->rtc, UINT64_MAX, buf, 8, false);
	assert_int_equal(buf[1], 0xff);
	fixture_free(f);
}

static void test_save_restore(void **state)
{
	struct fixture *f = fixture_new(), *g = fixture_new();
	struct rtc_state s, bad;

	(void)state;
	cmos_write(f, RTC_REG_YEAR, 0x99); /* offset the clock by 75 years */
	cmos_write(f, 0x50, 0xab);
	rtc_save(f->rtc, &s);
	assert_int_equal(rtc_restore(g->rtc, &s), 0);
	assert_int_equal(cmos_read(g, RTC_REG_YEAR), 0x99);
	assert_int_equal(cmos_read(g, 0x50), 0xab);
	bad = s;
	bad.index = 0x80;
	assert_int_equal(rtc_restore(g->rtc, &bad), -EINVAL);
	bad = s;
	bad.offset = INT64_MAX;
	assert_int_equal(rtc_restore(g->rtc, &bad), -EINVAL);
	bad = s;
	bad.cmos[RTC_REG_A] |= RTC_A_UIP;
	assert_int_equal(rtc_restore(g->rtc, &bad), -EINVAL);
	fixture_free(f);
	fixture_free(g);
	rtc_destroy(NULL);
}

/* The data port at the current index, as a guest that set it earlier reads it. */
static uint8_t data_read(struct fixture *f)
{
	uint8_t v = 0;

	rtc_io(f->rtc, 1, &v, 1, false);
	return v;
}

/*
 * A clock the guest set (binary, 24-hour, with interrupt enables that a
 * reset clears), a RAM byte, and the index left at that byte.
 */
static void rtc_busy_state(struct fixture *f)
{
	cmos_write(f, RTC_REG_B, RTC_B_SET | RTC_B_24H | RTC_B_DM_BINARY);
	cmos_write(f, RTC_REG_SECONDS, 5);
	cmos_write(f, RTC_REG_MINUTES, 4);
	cmos_write(f, RTC_REG_HOURS, 3);
	cmos_write(f, RTC_REG_DAY_OF_MONTH, 2);
	cmos_write(f, RTC_REG_MONTH, 1);
	cmos_write(f, RTC_REG_YEAR, 30);
	cmos_write(f, RTC_REG_CENTURY, 20);
	cmos_write(f, RTC_REG_B, RTC_B_24H | RTC_B_DM_BINARY | RTC_B_PIE | RTC_B_SQWE);
	cmos_write(f, 0x40, 0x99);
}

static void test_device_save_restore(void **state)
{
	const struct device_ops *ops = &rtc_device_ops;
	struct fixture *f = fixture_new(), *g = fixture_new();
	struct dev_state s, s2;
	char why[160];

	(void)state;
	rtc_busy_state(f);
	dst_save(ops, f->rtc, &s);
	assert_int_equal(s.len, 1 + RTC_CMOS_SIZE + 8);
	assert_int_equal(s.buf[0], 0x40);

	/* Restored an hour later (on the host's clock): the guest's clock went on too. */
	g->now = f->now + 3600;
	assert_int_equal(dst_restore(ops, g->rtc, s.buf, s.len, why, sizeof(why)), 0);
	dst_save(ops, g->rtc, &s2);
	assert_memory_equal(s2.buf, s.buf, s.len);
	ds_release(&s2);
	assert_int_equal(data_read(g), 0x99); /* the index came along */
	assert_int_equal(cmos_read(g, RTC_REG_SECONDS), 5);
	assert_int_equal(cmos_read(g, RTC_REG_MINUTES), 4);
	assert_int_equal(cmos_read(g, RTC_REG_HOURS), 4);
	assert_int_equal(cmos_read(g, RTC_REG_DAY_OF_MONTH), 2);
	assert_int_equal(cmos_read(g, RTC_REG_YEAR), 30);
	assert_int_equal(cmos_read(g, RTC_REG_CENTURY), 20);
	/* And it reads as f does at the same host time, every byte of it. */
	f->now = g->now;
	for (unsigned int i = 0; i < RTC_CMOS_SIZE; i++)
		assert_int_equal(cmos_read(g, (uint8_t)i), cmos_read(f, (uint8_t)i));
	ds_release(&s);

	/* Saved while the guest holds SET: the fields it wrote stay frozen. */
	cmos_write(f, RTC_REG_B, RTC_B_SET | RTC_B_24H);
	cmos_write(f, RTC_REG_MINUTES, 0x59);
	dst_save(ops, f->rtc, &s);
	g->now += 86400;
	assert_int_equal(dst_restore(ops, g->rtc, s.buf, s.len, why, sizeof(why)), 0);
	assert_int_equal(cmos_read(g, RTC_REG_MINUTES), 0x59);
	assert_int_equal(cmos_read(g, RTC_REG_SECONDS), cmos_read(f, RTC_REG_SECONDS));
	ds_release(&s);

	/* A guest reset: RESET clears the interrupt enables, the clock and RAM stay. */
	rtc_busy_state(g);
	ops->reset(g->rtc);
	assert_int_equal(cmos_read(g, RTC_REG_B), RTC_B_24H | RTC_B_DM_BINARY);
	assert_int_equal(cmos_read(g, RTC_REG_MINUTES), 4);
	assert_int_equal(cmos_read(g, RTC_REG_YEAR), 30);
	assert_int_equal(cmos_read(g, 0x40), 0x99);
	fixture_free(f);
	fixture_free(g);
}

static void rtc_expect_bad(struct fixture *g, const struct dev_state *s, size_t off,
                           const void *val, size_t len, const char *why)
{
	uint8_t buf[1 + RTC_CMOS_SIZE + 8];

	assert_int_equal(s->len, sizeof(buf));
	memcpy(buf, s->buf, sizeof(buf));
	memcpy(buf + off, val, len);
	dst_expect_refused(&rtc_device_ops, g->rtc, buf, sizeof(buf), why, SIZE_MAX);
}

static void test_device_restore_refused(void **state)
{
	const struct device_ops *ops = &rtc_device_ops;
	struct fixture *f = fixture_new(), *g = fixture_new();
	/* Little-endian offsets of +2^41 s and -2^41 s. */
	static const uint8_t far_ahead[8] = {0, 0, 0, 0, 0, 2, 0, 0};
	static const uint8_t far_behind[8] = {0, 0, 0, 0, 0, 0xfe, 0xff, 0xff};
	struct dev_state s;

	(void)state;
	rtc_busy_state(f);
	dst_save(ops, f->rtc, &s);
	cmos_write(g, 0x41, 0x17); /* g's own state */

	dst_expect_exact(ops, g->rtc, &s, SIZE_MAX);
	rtc_expect_bad(g, &s, 0, "\x80", 1, "index register is past the CMOS RAM");
	rtc_expect_bad(g, &s, 1 + RTC_REG_A, "\xa6", 1, "UIP");
	rtc_expect_bad(g, &s, 1 + RTC_REG_C, "\x10", 1, "registers C and D hold 0x10");
	rtc_expect_bad(g, &s, 1 + RTC_REG_D, "\x00", 1, "registers C and D");
	rtc_expect_bad(g, &s, 1 + RTC_CMOS_SIZE, far_ahead, 8, "2^40 seconds");
	rtc_expect_bad(g, &s, 1 + RTC_CMOS_SIZE, far_behind, 8, "2^40 seconds");
	assert_int_equal(cmos_read(g, 0x41), 0x17);
	ds_release(&s);
	fixture_free(f);
	fixture_free(g);
}

/* Without a clock hook the host's time() is used. */
static void test_host_clock(void **state)
{
	struct rtc *rtc;
	uint8_t idx = RTC_REG_CENTURY, v = 0;

	(void)state;
	assert_int_equal(rtc_create(NULL, &rtc), 0);
	rtc_io(rtc, 0, &idx, 1, true);
	rtc_io(rtc, 1, &v, 1, false);
	assert_int_equal(v, 0x20);
	rtc_destroy(rtc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bcd_time),
	    cmocka_unit_test(test_binary_and_12h),
	    cmocka_unit_test(test_status_registers),
	    cmocka_unit_test(test_cmos_ram),
	    cmocka_unit_test(test_set_time),
	    cmocka_unit_test(test_port_accesses),
	    cmocka_unit_test(test_save_restore),
	    cmocka_unit_test(test_host_clock),
	    cmocka_unit_test(test_device_save_restore),
	    cmocka_unit_test(test_device_restore_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
