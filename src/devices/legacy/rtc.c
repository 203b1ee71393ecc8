/* SPDX-License-Identifier: MIT */
/*
 * MC146818A real-time clock and CMOS RAM, computed from the host clock.
 * Register behaviour: Motorola MC146818A datasheet, "Registers" and
 * "Time, Calendar and Alarm Locations". See rtc.h for the model.
 */
#include "devices/legacy/rtc.h"

#include "core/device.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/*
 * Bound on the guest-set clock offset accepted by rtc_restore(): far beyond
 * any year the registers can express (about 2^40 s is 35,000 years), small
 * enough that host time plus offset cannot overflow.
 */
#define RTC_MAX_OFFSET (1LL << 40)

struct rtc {
	pthread_mutex_t lock;
	struct rtc_state s;
	time_t (*now)(void *opaque);
	void *now_opaque;
};

static time_t rtc_host_now(const struct rtc *r)
{
	return r->now ? r->now(r->now_opaque) : time(NULL);
}

static bool rtc_binary(const struct rtc_state *s)
{
	return s->cmos[RTC_REG_B] & RTC_B_DM_BINARY;
}

static uint8_t rtc_encode(const struct rtc_state *s, unsigned int v)
{
	if (rtc_binary(s))
		return (uint8_t)v;
	return (uint8_t)((((v / 10) % 10) << 4) | (v % 10));
}

/* Guest-written BCD may hold nibbles above 9; decode them arithmetically anyway. */
static unsigned int rtc_decode(const struct rtc_state *s, uint8_t v)
{
	if (rtc_binary(s))
		return v;
	return (unsigned int)(v >> 4) * 10 + (v & 0x0f);
}

static bool rtc_clock_reg(unsigned int idx)
{
	switch (idx) {
	case RTC_REG_SECONDS:
	case RTC_REG_MINUTES:
	case RTC_REG_HOURS:
	case RTC_REG_DAY_OF_WEEK:
	case RTC_REG_DAY_OF_MONTH:
	case RTC_REG_MONTH:
	case RTC_REG_YEAR:
	case RTC_REG_CENTURY:
		return true;
	default:
		return false;
	}
}

/* rtc_fill_clock - write guest time @t into the clock fields in the current format. */
static void rtc_fill_clock(struct rtc_state *s, time_t t)
{
	struct tm tm;
	unsigned int year, hour;
	uint8_t *c = s->cmos;

	if (!gmtime_r(&t, &tm) || tm.tm_year < -1900) {
		t = 0;
		gmtime_r(&t, &tm);
	}
	year = (unsigned int)(tm.tm_year + 1900);
	c[RTC_REG_SECONDS] = rtc_encode(s, (unsigned int)tm.tm_sec);
	c[RTC_REG_MINUTES] = rtc_encode(s, (unsigned int)tm.tm_min);
	hour = (unsigned int)tm.tm_hour;
	if (c[RTC_REG_B] & RTC_B_24H) {
		c[RTC_REG_HOURS] = rtc_encode(s, hour);
	} else {
		unsigned int h12 = hour % 12 ? hour % 12 : 12;

		c[RTC_REG_HOURS] = (uint8_t)(rtc_encode(s, h12) | (hour >= 12 ? RTC_HOURS_PM : 0));
	}
	c[RTC_REG_DAY_OF_WEEK] = rtc_encode(s, (unsigned int)tm.tm_wday + 1);
	c[RTC_REG_DAY_OF_MONTH] = rtc_encode(s, (unsigned int)tm.tm_mday);
	c[RTC_REG_MONTH] = rtc_encode(s, (unsigned int)tm.tm_mon + 1);
	c[RTC_REG_YEAR] = rtc_encode(s, year % 100);
	c[RTC_REG_CENTURY] = rtc_encode(s, (year / 100) & 0xff);
}

/*
 * rtc_commit_clock - start the clock from the fields the guest wrote. Odd
 * values (day 0, month 14) are normalised by timegm() the way a date
 * library would; the day of week is derived, not read.
 */
static void rtc_commit_clock(struct rtc *r)
{
	struct rtc_state *s = &r->s;
	const uint8_t *c = s->cmos;
	struct tm tm = {0};
	unsigned int hour;
	time_t t;

	tm.tm_sec = (int)rtc_decode(s, c[RTC_REG_SECONDS]);
	tm.tm_min = (int)rtc_decode(s, c[RTC_REG_MINUTES]);
	if (c[RTC_REG_B] & RTC_B_24H) {
		hour = rtc_decode(s, c[RTC_REG_HOURS]);
	} else {
		hour = rtc_decode(s, c[RTC_REG_HOURS] & ~RTC_HOURS_PM) % 12;
		if (c[RTC_REG_HOURS] & RTC_HOURS_PM)
			hour += 12;
	}
	tm.tm_hour = (int)hour;
	tm.tm_mday = (int)rtc_decode(s, c[RTC_REG_DAY_OF_MONTH]);
	tm.tm_mon = (int)rtc_decode(s, c[RTC_REG_MONTH]) - 1;
	tm.tm_year =
	    (int)(rtc_decode(s, c[RTC_REG_CENTURY]) * 100 + rtc_decode(s, c[RTC_REG_YEAR])) - 1900;
	errno = 0;
	t = timegm(&tm);
	if (t == (time_t)-1 && errno)
		return; /* not representable: keep the clock running as it was */
	s->offset = (int64_t)t - (int64_t)rtc_host_now(r);
}

static uint8_t rtc_read_reg(struct rtc *r, unsigned int idx)
{
	struct rtc_state *s = &r->s;

	if (rtc_clock_reg(idx)) {
		if (!(s->cmos[RTC_REG_B] & RTC_B_SET))
			rtc_fill_clock(s, (time_t)(rtc_host_now(r) + s->offset));
		return s->cmos[idx];
	}
	switch (idx) {
	case RTC_REG_A:
		return s->cmos[RTC_REG_A] & (uint8_t)~RTC_A_UIP; /* never mid-update */
	case RTC_REG_C:
		return 0; /* no interrupt flags: no interrupts */
	case RTC_REG_D:
		return RTC_D_VRT;
	default:
		return s->cmos[idx];
	}
}

static void rtc_write_reg(struct rtc *r, unsigned int idx, uint8_t val)
{
	struct rtc_state *s = &r->s;
	uint8_t old;

	if (rtc_clock_reg(idx)) {
		if (s->cmos[RTC_REG_B] & RTC_B_SET) {
			s->cmos[idx] = val;
			return;
		}
		/* A running clock takes the new field and keeps counting from it. */
		rtc_fill_clock(s, (time_t)(rtc_host_now(r) + s->offset));
		s->cmos[idx] = val;
		rtc_commit_clock(r);
		return;
	}
	switch (idx) {
	case RTC_REG_A:
		s->cmos[RTC_REG_A] = val & (uint8_t)~RTC_A_UIP;
		break;
	case RTC_REG_B:
		old = s->cmos[RTC_REG_B];
		if (!(old & RTC_B_SET) && (val & RTC_B_SET))
			rtc_fill_clock(s, (time_t)(rtc_host_now(r) + s->offset));
		if (val & RTC_B_SET)
			val &= (uint8_t)~RTC_B_UIE; /* SET clears UIE */
		s->cmos[RTC_REG_B] = val;
		if ((old & RTC_B_SET) && !(val & RTC_B_SET))
			rtc_commit_clock(r);
		break;
	case RTC_REG_C:
	case RTC_REG_D:
		break; /* read-only */
	default:
		s->cmos[idx] = val;
		break;
	}
}

void rtc_io(void *opaque, uint64_t offset, void *data, uint32_t len, bool is_write)
{
	struct rtc *r = opaque;
	uint8_t *bytes = data;
	uint32_t i;

	pthread_mutex_lock(&r->lock);
	for (i = 0; i < len; i++) {
		uint64_t port = offset + i;

		if (port < offset) {
			if (!is_write)
				bytes[i] = 0xff; /* wrapped around: not this device */
		} else if (port == 0 && is_write) {
			/* Bit 7 masks NMIs on a PC; there is nothing to mask here. */
			r->s.index = bytes[i] & RTC_INDEX_MASK;
		} else if (port == 1 && is_write) {
			rtc_write_reg(r, r->s.index, bytes[i]);
		} else if (port == 1) {
			bytes[i] = rtc_read_reg(r, r->s.index);
		} else if (!is_write) {
			bytes[i] = 0xff; /* the index port is write-only */
		}
	}
	pthread_mutex_unlock(&r->lock);
}

int rtc_cmos_set(struct rtc *rtc, unsigned int index, uint8_t value)
{
	if (index <= RTC_REG_D || index == RTC_REG_CENTURY || index >= RTC_CMOS_SIZE)
		return -EINVAL;
	pthread_mutex_lock(&rtc->lock);
	rtc->s.cmos[index] = value;
	pthread_mutex_unlock(&rtc->lock);
	return 0;
}

int rtc_create(const struct rtc_config *cfg, struct rtc **out)
{
	struct rtc *r;
	int err;

	*out = NULL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	err = pthread_mutex_init(&r->lock, NULL);
	if (err) {
		free(r);
		return -err;
	}
	r->s.cmos[RTC_REG_A] = RTC_A_DEFAULT;
	r->s.cmos[RTC_REG_B] = RTC_B_DEFAULT;
	r->s.cmos[RTC_REG_D] = RTC_D_VRT;
	if (cfg) {
		r->now = cfg->now;
		r->now_opaque = cfg->now_opaque;
	}
	*out = r;
	return 0;
}

void rtc_destroy(struct rtc *rtc)
{
	if (!rtc)
		return;
	pthread_mutex_destroy(&rtc->lock);
	free(rtc);
}

void rtc_save(struct rtc *rtc, struct rtc_state *state)
{
	pthread_mutex_lock(&rtc->lock);
	*state = rtc->s;
	pthread_mutex_unlock(&rtc->lock);
}

/* rtc_state_problem - why @s is not a state this clock can be in, or NULL. */
static const char *rtc_state_problem(const struct rtc_state *s)
{
	if (s->index >= RTC_CMOS_SIZE)
		return "the index register is past the CMOS RAM";
	if (s->cmos[RTC_REG_A] & RTC_A_UIP)
		return "register A holds the read-only UIP bit";
	if (s->offset > RTC_MAX_OFFSET || s->offset < -RTC_MAX_OFFSET)
		return "the clock is more than 2^40 seconds away from the host's";
	return NULL;
}

int rtc_restore(struct rtc *rtc, const struct rtc_state *state)
{
	if (rtc_state_problem(state))
		return -EINVAL;
	pthread_mutex_lock(&rtc->lock);
	rtc->s = *state;
	pthread_mutex_unlock(&rtc->lock);
	return 0;
}

/* ---- the device lifecycle (core/device.h) ---- */

/* State version 1, byte by byte (see rtc.h). */
static int rtc_device_save(void *dev, struct dev_state *out)
{
	struct rtc_state s;

	rtc_save(dev, &s);
	ds_put_u8(out, s.index);
	ds_put_bytes(out, s.cmos, sizeof(s.cmos));
	ds_put_u64(out, (uint64_t)s.offset);
	return 0;
}

static int rtc_device_restore(void *dev, struct dev_state_in *in, uint32_t version)
{
	struct rtc *rtc = dev;
	struct rtc_state s;
	const char *why;
	int r;

	(void)version; /* 1, the only one so far */
	memset(&s, 0, sizeof(s));
	s.index = dsi_get_u8(in);
	dsi_get_bytes(in, s.cmos, sizeof(s.cmos));
	s.offset = (int64_t)dsi_get_u64(in);
	why = rtc_state_problem(&s);
	dsi_check(in, !why, "%s", why ? why : "");
	/* Registers C and D ignore writes: they hold what rtc_create() put there. */
	dsi_check(in, s.cmos[RTC_REG_C] == 0 && s.cmos[RTC_REG_D] == RTC_D_VRT,
	          "registers C and D hold 0x%02x and 0x%02x, not 0 and 0x%02x", s.cmos[RTC_REG_C],
	          s.cmos[RTC_REG_D], RTC_D_VRT);
	r = dsi_finish(in);
	if (r < 0)
		return r;
	pthread_mutex_lock(&rtc->lock);
	rtc->s = s;
	pthread_mutex_unlock(&rtc->lock);
	return 0;
}

/*
 * A guest reset reaches the MC146818A's RESET pin, which clears PIE, AIE,
 * UIE and SQWE in register B and the flags in register C (datasheet,
 * "RESET"); the time, the calendar and the RAM stay, as on battery.
 */
static void rtc_device_reset(void *dev)
{
	struct rtc *r = dev;

	pthread_mutex_lock(&r->lock);
	r->s.cmos[RTC_REG_B] &= (uint8_t) ~(RTC_B_PIE | RTC_B_AIE | RTC_B_UIE | RTC_B_SQWE);
	pthread_mutex_unlock(&r->lock);
}

static void rtc_device_destroy(void *dev)
{
	rtc_destroy(dev);
}

const struct device_ops rtc_device_ops = {
    .kind = "mc146818-rtc",
    .version = 1,
    .reset = rtc_device_reset,
    .save = rtc_device_save,
    .restore = rtc_device_restore,
    .destroy = rtc_device_destroy,
};
