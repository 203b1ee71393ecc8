/* SPDX-License-Identifier: MIT */
#ifndef NESTVM_DEVICES_LEGACY_ACPI_PM_H
#define NESTVM_DEVICES_LEGACY_ACPI_PM_H

#include <stdbool.h>
#include <stdint.h>

#include "core/irq.h"

/*
 * The ACPI fixed-hardware power management registers (ACPI 6.5 §4.8.3) of a
 * full (not hardware-reduced) platform, as three register blocks:
 *
 *   PM1a_EVT_BLK  4 bytes: PM1_STS (write 1 to clear), then PM1_EN
 *   PM1a_CNT_BLK  2 bytes: PM1_CNT; SCI_EN reads 1, SLP_EN starts a sleep
 *   PM_TMR_BLK    4 bytes: 24-bit free-running counter at 3.579545 MHz
 *
 * The only event source is the power button: acpi_pm_press_power_button()
 * sets PM1_STS.PWRBTN_STS, and the SCI (a level-triggered line) is asserted
 * while any status bit is set together with its enable bit. Writing
 * PM1_CNT with SLP_EN set calls the sleep callback with SLP_TYP; the DSDT's
 * \_S5 package says which type means soft-off (ACPI_S5_SLP_TYP).
 *
 * Not modelled: TMR_STS (the timer never interrupts; FADT.TMR_VAL_EXT is 0),
 * GBL_STS, RTC_STS, WAK_STS, and the PM1b blocks.
 *
 * Locking: one mutex. The irq_line's set() is called with it held; the sleep
 * callback without it.
 */

#define ACPI_PM1_EVT_BLK_LEN 4
#define ACPI_PM1_CNT_BLK_LEN 2
#define ACPI_PM_TMR_BLK_LEN 4

/* PM1 status and enable bits (§4.8.3.1, Tables 4.16 and 4.17). */
#define ACPI_PM1_TMR_STS 0x0001
#define ACPI_PM1_BM_STS 0x0010
#define ACPI_PM1_GBL_STS 0x0020
#define ACPI_PM1_PWRBTN_STS 0x0100
#define ACPI_PM1_SLPBTN_STS 0x0200
#define ACPI_PM1_RTC_STS 0x0400
#define ACPI_PM1_PCIEXP_WAKE_STS 0x4000
#define ACPI_PM1_WAK_STS 0x8000

#define ACPI_PM1_TMR_EN 0x0001
#define ACPI_PM1_GBL_EN 0x0020
#define ACPI_PM1_PWRBTN_EN 0x0100
#define ACPI_PM1_SLPBTN_EN 0x0200
#define ACPI_PM1_RTC_EN 0x0400
#define ACPI_PM1_PCIEXP_WAKE_DIS 0x4000
#define ACPI_PM1_EN_MASK                                                                           \
	(ACPI_PM1_TMR_EN | ACPI_PM1_GBL_EN | ACPI_PM1_PWRBTN_EN | ACPI_PM1_SLPBTN_EN |             \
	 ACPI_PM1_RTC_EN | ACPI_PM1_PCIEXP_WAKE_DIS)

/* PM1 control bits (§4.8.3.2.1, Table 4.18). */
#define ACPI_PM1_CNT_SCI_EN 0x0001
#define ACPI_PM1_CNT_BM_RLD 0x0002
#define ACPI_PM1_CNT_GBL_RLS 0x0004
#define ACPI_PM1_CNT_SLP_TYP_SHIFT 10
#define ACPI_PM1_CNT_SLP_TYP_MASK 0x1c00
#define ACPI_PM1_CNT_SLP_EN 0x2000

#define ACPI_PM_TIMER_HZ 3579545ULL
#define ACPI_PM_TIMER_MASK 0xffffffU

/* Guest-visible state, plain data for save/restore. */
struct acpi_pm_state {
	uint16_t sts;
	uint16_t en;
	uint16_t cnt; /* BM_RLD and SLP_TYP as last written */
	uint32_t tmr; /* timer value when saved; it keeps counting from there */
};

struct acpi_pm_config {
	/* The SCI (FADT SCI_INT); copied. NULL for none. */
	const struct irq_line *sci;
	/* Called without the lock when the guest sets SLP_EN; @slp_typ is 0-7. */
	void (*sleep)(void *opaque, unsigned int slp_typ);
	void *opaque;
};

struct acpi_pm;

/* acpi_pm_create - registers in their reset state. Returns 0, -EINVAL or -ENOMEM. */
int acpi_pm_create(const struct acpi_pm_config *cfg, struct acpi_pm **out)
    __attribute__((warn_unused_result));

/* acpi_pm_destroy - free the device; NULL is a no-op. */
void acpi_pm_destroy(struct acpi_pm *pm);

/*
 * Bus handlers, one per register block; register them with
 *   bus_add_range(pio, PORT_ACPI_PM1A_EVT, ACPI_PM1_EVT_BLK_LEN, acpi_pm_evt_io, pm, ...)
 *   bus_add_range(pio, PORT_ACPI_PM1A_CNT, ACPI_PM1_CNT_BLK_LEN, acpi_pm_cnt_io, pm, ...)
 *   bus_add_range(pio, PORT_ACPI_PM_TMR, ACPI_PM_TMR_BLK_LEN, acpi_pm_tmr_io, pm, ...)
 * Any width at any offset works byte lane by byte lane; bytes past the end
 * of a block read 0xff and ignore writes.
 */
void acpi_pm_evt_io(void *opaque, uint64_t offset, void *data, uint32_t len, bool is_write);
void acpi_pm_cnt_io(void *opaque, uint64_t offset, void *data, uint32_t len, bool is_write);
void acpi_pm_tmr_io(void *opaque, uint64_t offset, void *data, uint32_t len, bool is_write);

/*
 * acpi_pm_press_power_button - set PWRBTN_STS and, if the guest enabled
 * PWRBTN_EN, assert the SCI. Safe from any thread. Returns true if the
 * guest has the power button event enabled (an OSPM is listening).
 */
bool acpi_pm_press_power_button(struct acpi_pm *pm);

/* acpi_pm_timer_read - the PM timer's current 24-bit value. */
uint32_t acpi_pm_timer_read(struct acpi_pm *pm);

/* acpi_pm_save - copy the guest-visible state into @state. */
void acpi_pm_save(struct acpi_pm *pm, struct acpi_pm_state *state);

/* acpi_pm_restore - replace the state after checking it. Returns 0 or -EINVAL. */
int acpi_pm_restore(struct acpi_pm *pm, const struct acpi_pm_state *state)
    __attribute__((warn_unused_result));

/*
 * The PM registers as a device of the lifecycle layer (core/device.h); dev
 * is a struct acpi_pm *. No threads. State version 1 is
 *
 *   u16 PM1_STS, u16 PM1_EN, u16 PM1_CNT (BM_RLD and SLP_TYP), u32 PM timer
 *
 * The timer is saved as the count it showed; a restored timer counts on
 * from there on the restoring host's monotonic clock, so what the guest
 * reads after the restore follows on from what it read before, however long
 * the VM stayed saved and whatever the new host's uptime.
 * restore() leaves the SCI alone; reset() clears PM1 status, enable and
 * control, and the timer runs on.
 */
struct device_ops;
extern const struct device_ops acpi_pm_device_ops;

#endif
