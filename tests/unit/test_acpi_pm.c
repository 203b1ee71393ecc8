/* SPDX-License-Identifier: MIT */
/* Unit tests: ACPI PM1 event/control blocks, power button SCI, PM timer. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "arch/x86/layout.h"
#include "devices/legacy/acpi_pm.h"

#include "device_state_test.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct fixture {
	struct acpi_pm *pm;
	struct irq_line sci;
	int sci_level;
	int sci_calls;
	int sleeps;
	unsigned int slp_typ;
};

static void on_sci(void *opaque, unsigned int gsi, int level)
{
	struct fixture *f = opaque;

	assert_int_equal(gsi, IRQ_ACPI_SCI);
	f->sci_level = level;
	f->sci_calls++;
}

static void on_sleep(void *opaque, unsigned int slp_typ)
{
	struct fixture *f = opaque;

	f->sleeps++;
	f->slp_typ = slp_typ;
}

static struct fixture *fixture_new(void)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct acpi_pm_config cfg = {0};

	assert_non_null(f);
	f->sci = (struct irq_line){.set = on_sci, .opaque = f, .gsi = IRQ_ACPI_SCI};
	cfg.sci = &f->sci;
	cfg.sleep = on_sleep;
	cfg.opaque = f;
	assert_int_equal(acpi_pm_create(&cfg, &f->pm), 0);
	return f;
}

static void fixture_free(struct fixture *f)
{
	acpi_pm_destroy(f->pm);
	free(f);
}

typedef void (*pm_io_fn)(void *opaque, uint64_t offset, void *data, uint32_t len, bool is_write);

static uint16_t rd16(struct fixture *f, pm_io_fn fn, uint64_t off)
{
	uint8_t b[2] = {0};

	fn(f->pm, off, b, 2, false);
	return (uint16_t)(b[0] | b[1] << 8);
}

static void wr16(struct fixture *f, pm_io_fn fn, uint64_t off, uint16_t v)
{
	uint8_t b[2] = {(uint8_t)v, (uint8_t)(v >> 8)};

	fn(f->pm, off, b, 2, true);
}

static uint32_t rd32(struct fixture *f, pm_io_fn fn, uint64_t off)
{
	uint8_t b[4] = {0};

	fn(f->pm, off, b, 4, false);
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static void test_control_sleep(void **state)
{
	struct fixture *f = fixture_new();
	uint16_t s5 = ACPI_S5_SLP_TYP << ACPI_PM1_CNT_SLP_TYP_SHIFT;
	uint8_t hi;

	(void)state;
	assert_int_equal(rd16(f, acpi_pm_cnt_io, 0), ACPI_PM1_CNT_SCI_EN);
	/* Linux writes SLP_TYP first, then SLP_TYP | SLP_EN. */
	wr16(f, acpi_pm_cnt_io, 0, s5 | ACPI_PM1_CNT_SCI_EN);
	assert_int_equal(f->sleeps, 0);
	assert_int_equal(rd16(f, acpi_pm_cnt_io, 0), s5 | ACPI_PM1_CNT_SCI_EN);
	wr16(f, acpi_pm_cnt_io, 0, s5 | ACPI_PM1_CNT_SLP_EN);
	assert_int_equal(f->sleeps, 1);
	assert_int_equal(f->slp_typ, ACPI_S5_SLP_TYP);
	/* SLP_EN and GBL_RLS are write-only, SCI_EN cannot be cleared. */
	assert_int_equal(rd16(f, acpi_pm_cnt_io, 0), s5 | ACPI_PM1_CNT_SCI_EN);
	wr16(f, acpi_pm_cnt_io, 0, ACPI_PM1_CNT_GBL_RLS | ACPI_PM1_CNT_BM_RLD);
	assert_int_equal(rd16(f, acpi_pm_cnt_io, 0), ACPI_PM1_CNT_BM_RLD | ACPI_PM1_CNT_SCI_EN);
	assert_int_equal(f->sleeps, 1);
	/* A byte write to the high half carries SLP_EN and SLP_TYP on its own. */
	hi = (uint8_t)((3 << ACPI_PM1_CNT_SLP_TYP_SHIFT | ACPI_PM1_CNT_SLP_EN) >> 8);
	acpi_pm_cnt_io(f->pm, 1, &hi, 1, true);
	assert_int_equal(f->sleeps, 2);
	assert_int_equal(f->slp_typ, 3);
	/* A byte write to the low half never sleeps. */
	hi = 0xff;
	acpi_pm_cnt_io(f->pm, 0, &hi, 1, true);
	assert_int_equal(f->sleeps, 2);
	fixture_free(f);
}

static void test_power_button_sci(void **state)
{
	struct fixture *f = fixture_new();

	(void)state;
	assert_int_equal(rd32(f, acpi_pm_evt_io, 0), 0);
	/* Not enabled: status set, no SCI. */
	assert_false(acpi_pm_press_power_button(f->pm));
	assert_int_equal(rd16(f, acpi_pm_evt_io, 0), ACPI_PM1_PWRBTN_STS);
	assert_int_equal(f->sci_calls, 0);
	/* Enabling it with the status still set raises the SCI. */
	wr16(f, acpi_pm_evt_io, 2, ACPI_PM1_PWRBTN_EN);
	assert_int_equal(rd16(f, acpi_pm_evt_io, 2), ACPI_PM1_PWRBTN_EN);
	assert_int_equal(f->sci_level, 1);
	/* Writing 0 clears nothing; writing 1 clears the bit and drops the SCI. */
	wr16(f, acpi_pm_evt_io, 0, 0);
	assert_int_equal(rd16(f, acpi_pm_evt_io, 0), ACPI_PM1_PWRBTN_STS);
	wr16(f, acpi_pm_evt_io, 0, (uint16_t)~ACPI_PM1_PWRBTN_STS);
	assert_int_equal(rd16(f, acpi_pm_evt_io, 0), ACPI_PM1_PWRBTN_STS);
	assert_int_equal(f->sci_level, 1);
	wr16(f, acpi_pm_evt_io, 0, ACPI_PM1_PWRBTN_STS);
	assert_int_equal(rd16(f, acpi_pm_evt_io, 0), 0);
	assert_int_equal(f->sci_level, 0);
	assert_int_equal(f->sci_calls, 2);

	/* Enabled: a press raises it at once. */
	assert_true(acpi_pm_press_power_button(f->pm));
	assert_int_equal(f->sci_level, 1);
	assert_true(acpi_pm_press_power_button(f->pm)); /* no second edge needed */
	assert_int_equal(f->sci_calls, 3);
	/* Byte write-1-to-clear on the high byte of PM1_STS. */
	{
		uint8_t b = ACPI_PM1_PWRBTN_STS >> 8;

		acpi_pm_evt_io(f->pm, 1, &b, 1, true);
	}
	assert_int_equal(f->sci_level, 0);
	/* Disabling the event with status set drops the SCI too. */
	acpi_pm_press_power_button(f->pm);
	assert_int_equal(f->sci_level, 1);
	wr16(f, acpi_pm_evt_io, 2, 0);
	assert_int_equal(f->sci_level, 0);
	fixture_free(f);
}

static void test_enable_mask_and_dword_access(void **state)
{
	struct fixture *f = fixture_new();
	uint8_t b[4] = {0xff, 0xff, 0xff, 0xff};

	(void)state;
	wr16(f, acpi_pm_evt_io, 2, 0xffff);
	assert_int_equal(rd16(f, acpi_pm_evt_io, 2), ACPI_PM1_EN_MASK);
	acpi_pm_press_power_button(f->pm);
	/* One dword access covers status (low) and enable (high). */
	assert_int_equal(rd32(f, acpi_pm_evt_io, 0),
	                 ACPI_PM1_PWRBTN_STS | (uint32_t)ACPI_PM1_EN_MASK << 16);
	b[2] = 0;
	b[3] = 0;
	acpi_pm_evt_io(f->pm, 0, b, 4, true); /* clear all status, disable all */
	assert_int_equal(rd32(f, acpi_pm_evt_io, 0), 0);
	assert_int_equal(f->sci_level, 0);
	fixture_free(f);
}

static uint32_t tmr_diff(uint32_t a, uint32_t b)
{
	return (b - a) & ACPI_PM_TIMER_MASK;
}

static void test_pm_timer(void **state)
{
	struct fixture *f = fixture_new();
	struct timespec ts = {.tv_nsec = 20 * 1000 * 1000};
	uint32_t t0, t1, d;
	uint8_t b[8];

	(void)state;
	t0 = rd32(f, acpi_pm_tmr_io, 0);
	assert_int_equal(t0 & ~ACPI_PM_TIMER_MASK, 0);
	nanosleep(&ts, NULL);
	t1 = rd32(f, acpi_pm_tmr_io, 0);
	d = tmr_diff(t0, t1);
	/* 20 ms is 71591 ticks; allow for a slow, loaded machine. */
	assert_true(d >= 71000);
	assert_true(d < ACPI_PM_TIMER_HZ * 2);
	assert_int_equal(t1 & ~ACPI_PM_TIMER_MASK, 0);
	/* Monotonic across reads, through the helper too. */
	assert_true(tmr_diff(t1, acpi_pm_timer_read(f->pm)) < ACPI_PM_TIMER_HZ);
	/* Writes are ignored; bytes past the block read 0xff; byte 3 is always 0. */
	memset(b, 0, sizeof(b));
	acpi_pm_tmr_io(f->pm, 0, b, 4, true);
	acpi_pm_tmr_io(f->pm, 2, b, 8, false);
	assert_int_equal(b[1], 0);
	for (int i = 2; i < 8; i++)
		assert_int_equal(b[i], 0xff);
	fixture_free(f);
}

static void test_odd_accesses(void **state)
{
	struct fixture *f = fixture_new();
	pm_io_fn fns[] = {acpi_pm_evt_io, acpi_pm_cnt_io, acpi_pm_tmr_io};
	uint8_t b[8];
	uint32_t len, off;
	size_t i;

	(void)state;
	for (i = 0; i < 3; i++)
		for (len = 1; len <= 8; len *= 2)
			for (off = 0; off < 8; off++) {
				memset(b, 0, sizeof(b)); /* never SLP_EN */
				fns[i](f->pm, off, b, len, true);
				fns[i](f->pm, off, b, len, false);
			}
	memset(b, 0, sizeof(b));
	acpi_pm_cnt_io(f->pm, 0, b, 8, false);
	assert_int_equal(b[0], ACPI_PM1_CNT_SCI_EN);
	assert_int_equal(b[2], 0xff);
	acpi_pm_evt_io(f->pm, UINT64_MAX, b, 8, false);
	assert_int_equal(b[0], 0xff);
	assert_int_equal(b[1], 0xff); /* wrapped to offset 0: still not ours */
	memset(b, 0xff, sizeof(b));
	acpi_pm_cnt_io(f->pm, UINT64_MAX, b, 8, true); /* wraps: must not sleep */
	assert_int_equal(f->sleeps, 0);
	fixture_free(f);
}

static void test_save_restore(void **state)
{
	struct fixture *f = fixture_new(), *g = fixture_new();
	struct acpi_pm_state s, bad;
	struct acpi_pm *none;

	(void)state;
	wr16(f, acpi_pm_evt_io, 2, ACPI_PM1_PWRBTN_EN);
	acpi_pm_press_power_button(f->pm);
	wr16(f, acpi_pm_cnt_io, 0, ACPI_S5_SLP_TYP << ACPI_PM1_CNT_SLP_TYP_SHIFT);
	acpi_pm_save(f->pm, &s);
	assert_int_equal(acpi_pm_restore(g->pm, &s), 0);
	assert_int_equal(g->sci_level, 1);
	assert_int_equal(rd16(g, acpi_pm_cnt_io, 0),
	                 ACPI_S5_SLP_TYP << ACPI_PM1_CNT_SLP_TYP_SHIFT | ACPI_PM1_CNT_SCI_EN);
	/* The timer continues from the saved value. */
	assert_true(tmr_diff(s.tmr, acpi_pm_timer_read(g->pm)) < ACPI_PM_TIMER_HZ);
	bad = s;
	bad.tmr = 0x1000000;
	assert_int_equal(acpi_pm_restore(g->pm, &bad), -EINVAL);
	bad = s;
	bad.cnt = ACPI_PM1_CNT_SLP_EN;
	assert_int_equal(acpi_pm_restore(g->pm, &bad), -EINVAL);
	bad = s;
	bad.en = 0x8000;
	assert_int_equal(acpi_pm_restore(g->pm, &bad), -EINVAL);
	fixture_free(f);
	fixture_free(g);
	acpi_pm_destroy(NULL);
	assert_int_equal(acpi_pm_create(NULL, &none), -EINVAL);
}

/* The power button pressed with its event enabled (SCI up), and SLP_TYP and BM_RLD set. */
static void pm_busy_state(struct fixture *f)
{
	wr16(f, acpi_pm_evt_io, 2, ACPI_PM1_PWRBTN_EN | ACPI_PM1_RTC_EN);
	acpi_pm_press_power_button(f->pm);
	wr16(f, acpi_pm_cnt_io, 0,
	     5 << ACPI_PM1_CNT_SLP_TYP_SHIFT | ACPI_PM1_CNT_BM_RLD | ACPI_PM1_CNT_SCI_EN);
}

static void test_device_save_restore(void **state)
{
	const struct device_ops *ops = &acpi_pm_device_ops;
	struct fixture *f = fixture_new(), *g = fixture_new();
	struct dev_state s;
	uint32_t saved, t;
	char why[160];

	(void)state;
	pm_busy_state(f);
	assert_int_equal(f->sci_level, 1);
	dst_save(ops, f->pm, &s);
	assert_int_equal(s.len, 2 + 2 + 2 + 4);
	saved = (uint32_t)s.buf[6] | (uint32_t)s.buf[7] << 8 | (uint32_t)s.buf[8] << 16 |
	        (uint32_t)s.buf[9] << 24;

	assert_int_equal(dst_restore(ops, g->pm, s.buf, s.len, why, sizeof(why)), 0);
	assert_int_equal(g->sci_calls, 0); /* a restore raises nothing */
	for (uint64_t off = 0; off < ACPI_PM1_EVT_BLK_LEN; off += 2)
		assert_int_equal(rd16(g, acpi_pm_evt_io, off), rd16(f, acpi_pm_evt_io, off));
	assert_int_equal(rd16(g, acpi_pm_cnt_io, 0), rd16(f, acpi_pm_cnt_io, 0));
	/* The timer counts on from the saved count (not from the new host's uptime). */
	t = rd32(g, acpi_pm_tmr_io, 0);
	assert_true(tmr_diff(saved, t) < ACPI_PM_TIMER_HZ / 4);
	assert_true(tmr_diff(t, rd32(g, acpi_pm_tmr_io, 0)) < ACPI_PM_TIMER_HZ / 4);
	/* The restored device knows the SCI is up: clearing the status lowers it. */
	wr16(g, acpi_pm_evt_io, 0, ACPI_PM1_PWRBTN_STS);
	assert_int_equal(g->sci_calls, 1);
	assert_int_equal(g->sci_level, 0);
	ds_release(&s);

	/* Whatever count was saved, even one about to wrap. */
	{
		uint8_t near_wrap[10] = {0, 0, 0, 0, 0, 0, 0xf0, 0xff, 0xff, 0};

		assert_int_equal(
		    dst_restore(ops, g->pm, near_wrap, sizeof(near_wrap), why, sizeof(why)), 0);
		assert_true(tmr_diff(0xfffff0, acpi_pm_timer_read(g->pm)) < ACPI_PM_TIMER_HZ / 4);
		assert_int_equal(rd16(g, acpi_pm_evt_io, 2), 0);
	}

	/* A guest reset: PM1 registers cleared, SCI down, the timer runs on. */
	pm_busy_state(g);
	assert_int_equal(g->sci_level, 1);
	t = acpi_pm_timer_read(g->pm);
	ops->reset(g->pm);
	assert_int_equal(g->sci_level, 0);
	assert_int_equal(rd16(g, acpi_pm_evt_io, 0), 0);
	assert_int_equal(rd16(g, acpi_pm_evt_io, 2), 0);
	assert_int_equal(rd16(g, acpi_pm_cnt_io, 0), ACPI_PM1_CNT_SCI_EN);
	assert_true(tmr_diff(t, acpi_pm_timer_read(g->pm)) < ACPI_PM_TIMER_HZ / 4);
	fixture_free(f);
	fixture_free(g);
}

static void pm_expect_bad(struct fixture *g, const struct dev_state *s, size_t off, uint32_t val,
                          size_t len, const char *why)
{
	uint8_t buf[10];

	assert_int_equal(s->len, sizeof(buf));
	memcpy(buf, s->buf, sizeof(buf));
	for (size_t i = 0; i < len; i++)
		buf[off + i] = (uint8_t)(val >> (8 * i));
	/* The timer runs: compare the PM1 registers only. */
	dst_expect_refused(&acpi_pm_device_ops, g->pm, buf, sizeof(buf), why, 6);
}

static void test_device_restore_refused(void **state)
{
	const struct device_ops *ops = &acpi_pm_device_ops;
	struct fixture *f = fixture_new(), *g = fixture_new();
	struct dev_state s;

	(void)state;
	pm_busy_state(f);
	dst_save(ops, f->pm, &s);
	wr16(g, acpi_pm_evt_io, 2, ACPI_PM1_SLPBTN_EN); /* g's own state */

	dst_expect_exact(ops, g->pm, &s, 6);
	pm_expect_bad(g, &s, 0, ACPI_PM1_PWRBTN_STS | ACPI_PM1_TMR_STS, 2,
	              "PM1_STS holds a status bit that nothing here sets");
	pm_expect_bad(g, &s, 0, ACPI_PM1_WAK_STS, 2, "PM1_STS");
	pm_expect_bad(g, &s, 2, 0x8000, 2, "PM1_EN holds reserved bits");
	pm_expect_bad(g, &s, 4, ACPI_PM1_CNT_SLP_EN, 2, "PM1_CNT holds bits that are fixed");
	pm_expect_bad(g, &s, 4, ACPI_PM1_CNT_SCI_EN, 2, "PM1_CNT");
	pm_expect_bad(g, &s, 6, 0x1000000, 4, "more than 24 bits");
	assert_int_equal(rd16(g, acpi_pm_evt_io, 2), ACPI_PM1_SLPBTN_EN);
	assert_int_equal(g->sci_calls, 0);
	ds_release(&s);
	fixture_free(f);
	fixture_free(g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_control_sleep),
	    cmocka_unit_test(test_power_button_sci),
	    cmocka_unit_test(test_enable_mask_and_dword_access),
	    cmocka_unit_test(test_pm_timer),
	    cmocka_unit_test(test_odd_accesses),
	    cmocka_unit_test(test_save_restore),
	    cmocka_unit_test(test_device_save_restore),
	    cmocka_unit_test(test_device_restore_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
