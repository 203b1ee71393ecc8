/* SPDX-License-Identifier: MIT */
#ifndef NESTVM_DEVICES_LEGACY_RTC_H
#define NESTVM_DEVICES_LEGACY_RTC_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

/*
 * A Motorola MC146818A-compatible real-time clock and CMOS RAM, at ports
 * 0x70 (index, write-only; bit 7 is the NMI mask, ignored) and 0x71 (data).
 *
 * The clock registers are computed from the host's UTC clock at each read,
 * plus an offset the guest sets by writing them (hwclock --systohc): while
 * register B's SET bit is 1 the clock fields hold what the guest wrote, and
 * clearing SET starts the clock from them. Register B's DM bit selects
 * binary or BCD, its 24/12 bit the hour format. Register A's UIP bit always
 * reads 0, register C (interrupt flags) reads 0 and register D reads VRT
 * (valid RAM and time). There are no interrupts: no periodic, alarm or
 * update-ended interrupt is ever raised.
 *
 * CMOS byte RTC_REG_CENTURY (0x32, the IBM AT convention) holds the century
 * in the current format, so a FADT may point its CENTURY field at it. The
 * other bytes up to 0x7f are plain RAM.
 *
 * Locking: one mutex; the handler may run on any vCPU thread.
 */

#define RTC_PORT_LEN 2 /* index, data */
#define RTC_CMOS_SIZE 128

/* Register indices (MC146818A datasheet, Figure 4 "Address Map"). */
#define RTC_REG_SECONDS 0x00
#define RTC_REG_SECONDS_ALARM 0x01
#define RTC_REG_MINUTES 0x02
#define RTC_REG_MINUTES_ALARM 0x03
#define RTC_REG_HOURS 0x04
#define RTC_REG_HOURS_ALARM 0x05
#define RTC_REG_DAY_OF_WEEK 0x06 /* 1 = Sunday */
#define RTC_REG_DAY_OF_MONTH 0x07
#define RTC_REG_MONTH 0x08
#define RTC_REG_YEAR 0x09
#define RTC_REG_A 0x0a
#define RTC_REG_B 0x0b
#define RTC_REG_C 0x0c
#define RTC_REG_D 0x0d
#define RTC_REG_CENTURY 0x32

#define RTC_INDEX_MASK 0x7f
#define RTC_INDEX_NMI_DISABLE 0x80

#define RTC_A_UIP 0x80
#define RTC_A_DEFAULT 0x26 /* 32.768 kHz time base, 1024 Hz periodic rate */
#define RTC_B_DSE 0x01     /* daylight saving enable */
#define RTC_B_24H 0x02
#define RTC_B_DM_BINARY 0x04
#define RTC_B_SQWE 0x08
#define RTC_B_UIE 0x10
#define RTC_B_AIE 0x20
#define RTC_B_PIE 0x40
#define RTC_B_SET 0x80
#define RTC_B_DEFAULT RTC_B_24H
#define RTC_D_VRT 0x80
#define RTC_HOURS_PM 0x80 /* 12-hour mode */

/* Guest-visible state, plain data for save/restore. */
struct rtc_state {
	uint8_t index;
	uint8_t cmos[RTC_CMOS_SIZE]; /* clock fields are meaningful only while B.SET is 1 */
	int64_t offset;              /* guest clock minus host clock, seconds */
};

struct rtc_config {
	/* Optional clock (UTC seconds); NULL uses time(). For tests. */
	time_t (*now)(void *opaque);
	void *now_opaque;
};

struct rtc;

/* rtc_create - a clock in 24-hour BCD mode. @cfg may be NULL. Returns 0 or -ENOMEM. */
int rtc_create(const struct rtc_config *cfg, struct rtc **out) __attribute__((warn_unused_result));

/* rtc_destroy - free the device; NULL is a no-op. */
void rtc_destroy(struct rtc *rtc);

/*
 * rtc_io - bus handler for ports 0x70-0x71; register it with
 * bus_add_range(pio, PORT_RTC, RTC_PORT_LEN, rtc_io, rtc, ...). A wider
 * access is split into byte accesses; bytes past 0x71 read 0xff.
 */
void rtc_io(void *opaque, uint64_t offset, void *data, uint32_t len, bool is_write);

/*
 * rtc_cmos_set - preset a CMOS RAM byte (firmware-style data such as memory
 * sizes). Returns 0, or -EINVAL for the clock and status registers
 * (0x00-0x0d), RTC_REG_CENTURY and indices past 0x7f.
 */
int rtc_cmos_set(struct rtc *rtc, unsigned int index, uint8_t value)
    __attribute__((warn_unused_result));

/* rtc_save - copy the guest-visible state into @state. */
void rtc_save(struct rtc *rtc, struct rtc_state *state);

/* rtc_restore - replace the state after checking it. Returns 0 or -EINVAL. */
int rtc_restore(struct rtc *rtc, const struct rtc_state *state) __attribute__((warn_unused_result));

/*
 * The clock as a device of the lifecycle layer (core/device.h); dev is a
 * struct rtc *. No threads. State version 1 is
 *
 *   u8 index register, 128 bytes CMOS RAM (registers 0x00-0x0d included)
 *   s64 the guest clock minus the host's UTC clock, in seconds
 *
 * Saving the offset from the host's wall clock rather than the time keeps
 * the guest's clock in step with real time across a save and restore, as
 * QEMU's RTC does (its default clock=host): a guest restored an hour later
 * reads a time an hour later, as it would after a host suspend. While
 * register B's SET bit is 1 the clock fields in the CMOS bytes are what the
 * guest wrote, and they are restored as such. reset() is the chip's RESET
 * pin: interrupt enables off, time and RAM kept.
 */
struct device_ops;
extern const struct device_ops rtc_device_ops;

#endif
