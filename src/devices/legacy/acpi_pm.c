/* SPDX-License-Identifier: MIT */
/*
 * ACPI PM1a event and control blocks and the PM timer (ACPI 6.5 §4.8.3).
 * See acpi_pm.h for what is modelled.
 */
#include "devices/legacy/acpi_pm.h"

#include "core/device.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Status bits that raise the SCI when enabled (and can ever be set here). */
#define ACPI_PM1_SCI_EVENTS (ACPI_PM1_PWRBTN_STS)
#define ACPI_PM1_CNT_STORED (ACPI_PM1_CNT_BM_RLD | ACPI_PM1_CNT_SLP_TYP_MASK)
#define NSEC_PER_SEC 1000000000ULL

struct acpi_pm {
	pthread_mutex_t lock;
	struct acpi_pm_state s;
	uint64_t tmr_base; /* timer ticks at which the guest-visible counter was 0 */

	struct irq_line sci;
	bool has_sci;
	bool sci_level;

	void (*sleep)(void *opaque, unsigned int slp_typ);
	void *opaque;
};

/* acpi_pm_ticks - CLOCK_MONOTONIC in PM timer ticks (3.579545 MHz). */
static uint64_t acpi_pm_ticks(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	/* Split so neither product overflows for any realistic uptime. */
	return (uint64_t)ts.tv_sec * ACPI_PM_TIMER_HZ +
	       (uint64_t)ts.tv_nsec * ACPI_PM_TIMER_HZ / NSEC_PER_SEC;
}

static uint32_t acpi_pm_timer_locked(const struct acpi_pm *pm)
{
	return (uint32_t)(acpi_pm_ticks() - pm->tmr_base) & ACPI_PM_TIMER_MASK;
}

static bool acpi_pm_sci_level(const struct acpi_pm_state *s)
{
	return s->sts & s->en & ACPI_PM1_SCI_EVENTS;
}

static void acpi_pm_update_sci(struct acpi_pm *pm)
{
	bool level = acpi_pm_sci_level(&pm->s);

	if (level == pm->sci_level)
		return;
	pm->sci_level = level;
	if (pm->has_sci)
		irq_line_set(&pm->sci, level);
}

static uint8_t lane(uint32_t v, unsigned int byte)
{
	return (uint8_t)(v >> (8 * byte));
}

void acpi_pm_evt_io(void *opaque, uint64_t offset, void *data, uint32_t len, bool is_write)
{
	struct acpi_pm *pm = opaque;
	uint8_t *bytes = data;
	uint32_t i;

	pthread_mutex_lock(&pm->lock);
	for (i = 0; i < len; i++) {
		uint64_t off = offset + i;
		unsigned int sh;

		if (off < offset || off >= ACPI_PM1_EVT_BLK_LEN) {
			if (!is_write)
				bytes[i] = 0xff;
			continue;
		}
		sh = 8 * (unsigned int)(off & 1);
		if (!is_write)
			bytes[i] = lane(off < 2 ? pm->s.sts : pm->s.en, (unsigned int)(off & 1));
		else if (off < 2)
			pm->s.sts &=
			    (uint16_t) ~((unsigned int)bytes[i] << sh); /* write 1 to clear */
		else
			pm->s.en = (uint16_t)((pm->s.en & ~(0xffu << sh)) |
			                      (((unsigned int)bytes[i] << sh) & ACPI_PM1_EN_MASK));
	}
	acpi_pm_update_sci(pm);
	pthread_mutex_unlock(&pm->lock);
}

void acpi_pm_cnt_io(void *opaque, uint64_t offset, void *data, uint32_t len, bool is_write)
{
	struct acpi_pm *pm = opaque;
	uint8_t *bytes = data;
	uint16_t val;
	bool sleep = false;
	unsigned int slp_typ = 0;
	uint32_t i;

	pthread_mutex_lock(&pm->lock);
	val = pm->s.cnt | ACPI_PM1_CNT_SCI_EN;
	for (i = 0; i < len; i++) {
		uint64_t off = offset + i;
		unsigned int sh;

		if (off < offset || off >= ACPI_PM1_CNT_BLK_LEN) {
			if (!is_write)
				bytes[i] = 0xff;
			continue;
		}
		sh = 8 * (unsigned int)off;
		if (!is_write) {
			bytes[i] = lane(val, (unsigned int)off);
			continue;
		}
		val = (uint16_t)((val & ~(0xffu << sh)) | ((unsigned int)bytes[i] << sh));
		/* SLP_EN is in the high byte; a write that sets it starts the sleep. */
		if (off == 1 && (val & ACPI_PM1_CNT_SLP_EN)) {
			sleep = true;
			slp_typ = (val & ACPI_PM1_CNT_SLP_TYP_MASK) >> ACPI_PM1_CNT_SLP_TYP_SHIFT;
		}
	}
	if (is_write)
		pm->s.cnt = val & ACPI_PM1_CNT_STORED; /* SCI_EN fixed, GBL_RLS/SLP_EN write-only */
	pthread_mutex_unlock(&pm->lock);

	if (sleep && pm->sleep)
		pm->sleep(pm->opaque, slp_typ);
}

void acpi_pm_tmr_io(void *opaque, uint64_t offset, void *data, uint32_t len, bool is_write)
{
	struct acpi_pm *pm = opaque;
	uint8_t *bytes = data;
	uint32_t val, i;

	if (is_write)
		return; /* read-only */
	pthread_mutex_lock(&pm->lock);
	val = acpi_pm_timer_locked(pm);
	pthread_mutex_unlock(&pm->lock);
	for (i = 0; i < len; i++) {
		uint64_t off = offset + i;

		if (off < offset || off >= ACPI_PM_TMR_BLK_LEN)
			bytes[i] = 0xff;
		else
			bytes[i] = lane(val, (unsigned int)off);
	}
}

uint32_t acpi_pm_timer_read(struct acpi_pm *pm)
{
	uint32_t val;

	pthread_mutex_lock(&pm->lock);
	val = acpi_pm_timer_locked(pm);
	pthread_mutex_unlock(&pm->lock);
	return val;
}

bool acpi_pm_press_power_button(struct acpi_pm *pm)
{
	bool enabled;

	pthread_mutex_lock(&pm->lock);
	pm->s.sts |= ACPI_PM1_PWRBTN_STS;
	enabled = pm->s.en & ACPI_PM1_PWRBTN_EN;
	acpi_pm_update_sci(pm);
	pthread_mutex_unlock(&pm->lock);
	return enabled;
}

int acpi_pm_create(const struct acpi_pm_config *cfg, struct acpi_pm **out)
{
	struct acpi_pm *pm;
	int r;

	*out = NULL;
	if (!cfg)
		return -EINVAL;
	pm = calloc(1, sizeof(*pm));
	if (!pm)
		return -ENOMEM;
	r = pthread_mutex_init(&pm->lock, NULL);
	if (r) {
		free(pm);
		return -r;
	}
	pm->tmr_base = acpi_pm_ticks();
	if (cfg->sci) {
		pm->sci = *cfg->sci;
		pm->has_sci = true;
	}
	pm->sleep = cfg->sleep;
	pm->opaque = cfg->opaque;
	*out = pm;
	return 0;
}

void acpi_pm_destroy(struct acpi_pm *pm)
{
	if (!pm)
		return;
	pthread_mutex_destroy(&pm->lock);
	free(pm);
}

void acpi_pm_save(struct acpi_pm *pm, struct acpi_pm_state *state)
{
	pthread_mutex_lock(&pm->lock);
	*state = pm->s;
	state->tmr = acpi_pm_timer_locked(pm);
	pthread_mutex_unlock(&pm->lock);
}

/* acpi_pm_state_problem - why @s is not a state these registers can be in, or NULL. */
static const char *acpi_pm_state_problem(const struct acpi_pm_state *s)
{
	if (s->sts & ~ACPI_PM1_SCI_EVENTS)
		return "PM1_STS holds a status bit that nothing here sets";
	if (s->en & ~ACPI_PM1_EN_MASK)
		return "PM1_EN holds reserved bits";
	if (s->cnt & ~ACPI_PM1_CNT_STORED)
		return "PM1_CNT holds bits that are fixed or write-only";
	if (s->tmr & ~ACPI_PM_TIMER_MASK)
		return "the PM timer holds more than 24 bits";
	return NULL;
}

/*
 * acpi_pm_load - replace the state with the checked @state; the timer goes
 * on counting from state->tmr. With @drive the SCI follows the new state;
 * without, only the device's idea of its level does (a restore).
 */
static void acpi_pm_load(struct acpi_pm *pm, const struct acpi_pm_state *state, bool drive)
{
	pthread_mutex_lock(&pm->lock);
	pm->s = *state;
	pm->tmr_base = acpi_pm_ticks() - state->tmr;
	if (drive)
		acpi_pm_update_sci(pm);
	else
		pm->sci_level = acpi_pm_sci_level(&pm->s);
	pthread_mutex_unlock(&pm->lock);
}

int acpi_pm_restore(struct acpi_pm *pm, const struct acpi_pm_state *state)
{
	if (acpi_pm_state_problem(state))
		return -EINVAL;
	acpi_pm_load(pm, state, true);
	return 0;
}

/* ---- the device lifecycle (core/device.h) ---- */

/* State version 1, byte by byte (see acpi_pm.h). */
static int acpi_pm_device_save(void *dev, struct dev_state *out)
{
	struct acpi_pm_state s;

	acpi_pm_save(dev, &s);
	ds_put_u16(out, s.sts);
	ds_put_u16(out, s.en);
	ds_put_u16(out, s.cnt);
	ds_put_u32(out, s.tmr);
	return 0;
}

static int acpi_pm_device_restore(void *dev, struct dev_state_in *in, uint32_t version)
{
	struct acpi_pm_state s;
	const char *why;
	int r;

	(void)version; /* 1, the only one so far */
	memset(&s, 0, sizeof(s));
	s.sts = dsi_get_u16(in);
	s.en = dsi_get_u16(in);
	s.cnt = dsi_get_u16(in);
	s.tmr = dsi_get_u32(in);
	why = acpi_pm_state_problem(&s);
	dsi_check(in, !why, "%s", why ? why : "");
	r = dsi_finish(in);
	if (r < 0)
		return r;
	acpi_pm_load(dev, &s, false);
	return 0;
}

/*
 * A guest reset: PM1 status, enable and control as at power-on (SCI down).
 * The timer is free-running (ACPI 6.5 §4.8.3.3) and runs on.
 */
static void acpi_pm_device_reset(void *dev)
{
	struct acpi_pm *pm = dev;

	pthread_mutex_lock(&pm->lock);
	pm->s.sts = 0;
	pm->s.en = 0;
	pm->s.cnt = 0;
	acpi_pm_update_sci(pm);
	pthread_mutex_unlock(&pm->lock);
}

static void acpi_pm_device_destroy(void *dev)
{
	acpi_pm_destroy(dev);
}

const struct device_ops acpi_pm_device_ops = {
    .kind = "acpi-pm",
    .version = 1,
    .reset = acpi_pm_device_reset,
    .save = acpi_pm_device_save,
    .restore = acpi_pm_device_restore,
    .destroy = acpi_pm_device_destroy,
};
