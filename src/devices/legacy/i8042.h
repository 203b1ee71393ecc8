/* SPDX-License-Identifier: MIT */
#ifndef NESTVM_DEVICES_LEGACY_I8042_H
#define NESTVM_DEVICES_LEGACY_I8042_H

#include <stdbool.h>
#include <stdint.h>

#include "core/irq.h"

/*
 * A minimal Intel 8042 keyboard controller, as found at ports 0x60 (data)
 * and 0x64 (status on read, command on write) of every PC. It exists so that
 * guests which probe it find a well-behaved controller, and so that the
 * classic reset (command 0xFE, pulse the CPU reset line) reaches the monitor.
 *
 * What is modelled:
 *  - the status register, the 32-byte controller RAM whose byte 0 is the
 *    command byte (CTR), read with 0x20-0x3F and written with 0x60-0x7F;
 *  - self test (0xAA -> 0x55), keyboard interface test (0xAB -> 0x00), and
 *    enable/disable of the keyboard (0xAE/0xAD) and aux (0xA8/0xA7) ports;
 *  - the output port (0xD0/0xD1; bit 0 clear resets the CPU), A20 commands
 *    (0xDD/0xDF), and the pulse commands 0xF0-0xFF (bit 0 clear resets);
 *  - a PS/2 keyboard that answers commands (ACK, reset -> 0xAA, identify ->
 *    0xAB 0x83, echo) but never sends keystrokes, so that Linux's atkbd
 *    probe completes at once instead of timing out; its replies raise the
 *    optional keyboard IRQ line (IRQ 1) when CTR.KBDINT is set;
 *  - no aux (mouse) port: the aux loopback (0xD3) replies without the aux
 *    flag and the aux interface test (0xA9) reports a stuck clock line,
 *    which Linux's i8042 driver takes as "no AUX port" without waiting.
 *
 * Nothing is scan-code translated (there are no keystrokes to translate).
 *
 * Locking: one mutex, taken by both port handlers. The irq_line's set() is
 * called with it held; the reset callback is called without it.
 */

#define I8042_DATA_PORT_LEN 1
#define I8042_CMD_PORT_LEN 1

/* Status register (read from port 0x64). */
#define I8042_STR_OBF 0x01     /* output buffer full */
#define I8042_STR_IBF 0x02     /* input buffer full: never, commands complete at once */
#define I8042_STR_SYSFLAG 0x04 /* system flag, mirrors CTR bit 2 */
#define I8042_STR_CMDDAT 0x08  /* last write was to the command port */
#define I8042_STR_KEYLOCK 0x10 /* 1 = keyboard not inhibited */
#define I8042_STR_AUXDATA 0x20 /* output buffer holds aux data */
#define I8042_STR_TIMEOUT 0x40
#define I8042_STR_PARITY 0x80

/* Command byte (controller RAM byte 0). */
#define I8042_CTR_KBDINT 0x01
#define I8042_CTR_AUXINT 0x02
#define I8042_CTR_SYSFLAG 0x04
#define I8042_CTR_IGNKEYLOCK 0x08
#define I8042_CTR_KBDDIS 0x10
#define I8042_CTR_AUXDIS 0x20
#define I8042_CTR_XLATE 0x40

/* Controller commands (written to port 0x64). */
#define I8042_CMD_READ_RAM 0x20  /* 0x20-0x3f: read RAM byte (cmd & 0x1f) */
#define I8042_CMD_WRITE_RAM 0x60 /* 0x60-0x7f: write RAM byte (cmd & 0x1f) */
#define I8042_CMD_AUX_DISABLE 0xa7
#define I8042_CMD_AUX_ENABLE 0xa8
#define I8042_CMD_AUX_TEST 0xa9
#define I8042_CMD_SELF_TEST 0xaa
#define I8042_CMD_KBD_TEST 0xab
#define I8042_CMD_KBD_DISABLE 0xad
#define I8042_CMD_KBD_ENABLE 0xae
#define I8042_CMD_READ_OUTPORT 0xd0
#define I8042_CMD_WRITE_OUTPORT 0xd1
#define I8042_CMD_KBD_LOOP 0xd2
#define I8042_CMD_AUX_LOOP 0xd3
#define I8042_CMD_AUX_SEND 0xd4
#define I8042_CMD_A20_DISABLE 0xdd
#define I8042_CMD_A20_ENABLE 0xdf
#define I8042_CMD_PULSE 0xf0 /* 0xf0-0xff: pulse output port bits 0-3 that are 0 */
#define I8042_CMD_RESET 0xfe /* pulse bit 0: CPU reset */

#define I8042_SELF_TEST_OK 0x55
#define I8042_KBD_TEST_OK 0x00
#define I8042_AUX_TEST_CLOCK_HIGH 0x02 /* "clock line stuck high": nothing attached */

#define I8042_OUTPORT_RESET 0x01 /* 0 = CPU held in reset */
#define I8042_OUTPORT_A20 0x02

/* PS/2 keyboard commands and replies (written to port 0x60). */
#define PS2_KBD_CMD_SET_LEDS 0xed
#define PS2_KBD_CMD_ECHO 0xee
#define PS2_KBD_CMD_SCANSET 0xf0
#define PS2_KBD_CMD_GET_ID 0xf2
#define PS2_KBD_CMD_SET_REP 0xf3
#define PS2_KBD_CMD_ENABLE 0xf4
#define PS2_KBD_CMD_RESET_DIS 0xf5
#define PS2_KBD_CMD_RESET_DEF 0xf6
#define PS2_KBD_CMD_RESEND 0xfe
#define PS2_KBD_CMD_RESET 0xff
#define PS2_KBD_REPLY_ACK 0xfa
#define PS2_KBD_REPLY_RESEND 0xfe
#define PS2_KBD_REPLY_BAT_OK 0xaa
#define PS2_KBD_ID_0 0xab
#define PS2_KBD_ID_1 0x83

#define I8042_RAM_SIZE 32
#define I8042_KBD_QUEUE_SIZE 16

/* Guest-visible state, plain data for save/restore. */
struct i8042_state {
	uint8_t ram[I8042_RAM_SIZE]; /* ram[0] is the command byte */
	uint8_t outport;
	uint8_t cmddat;      /* I8042_STR_CMDDAT or 0 */
	uint8_t pending_cmd; /* controller command waiting for its data byte, or 0 */
	uint8_t ctl_out_valid;
	uint8_t ctl_out; /* the reply to a controller command */
	uint8_t last_out;
	uint8_t kbd_pending_cmd; /* keyboard command waiting for its parameter, or 0 */
	uint8_t kbd_head;
	uint8_t kbd_count;
	uint8_t kbd_queue[I8042_KBD_QUEUE_SIZE];
};

struct i8042_config {
	/* Called (without the device lock) when the guest pulses the reset line. */
	void (*reset)(void *opaque);
	void *reset_opaque;
	/* Optional keyboard interrupt (ISA IRQ 1); copied. NULL for none. */
	const struct irq_line *kbd_irq;
};

struct i8042;

/*
 * i8042_create - a controller as firmware leaves it: self test passed,
 * translation on, keyboard enabled with its interrupt, aux disabled.
 * Returns 0 and sets *@out, or -EINVAL, -ENOMEM.
 */
int i8042_create(const struct i8042_config *cfg, struct i8042 **out)
    __attribute__((warn_unused_result));

/* i8042_destroy - free the controller; NULL is a no-op. */
void i8042_destroy(struct i8042 *kbc);

/*
 * i8042_data_io, i8042_cmd_io - bus handlers for the two ports; register
 *   bus_add_range(pio, PORT_I8042_DATA, I8042_DATA_PORT_LEN, i8042_data_io, kbc, ...)
 *   bus_add_range(pio, PORT_I8042_CMD, I8042_CMD_PORT_LEN, i8042_cmd_io, kbc, ...)
 * Only the first byte of an access reaches the port; other bytes read 0xff.
 */
void i8042_data_io(void *opaque, uint64_t offset, void *data, uint32_t len, bool is_write);
void i8042_cmd_io(void *opaque, uint64_t offset, void *data, uint32_t len, bool is_write);

/* i8042_save - copy the guest-visible state into @state. */
void i8042_save(struct i8042 *kbc, struct i8042_state *state);

/*
 * i8042_restore - replace the state with @state after checking it, and
 * update the keyboard interrupt. Returns 0 or -EINVAL (device unchanged).
 */
int i8042_restore(struct i8042 *kbc, const struct i8042_state *state)
    __attribute__((warn_unused_result));

/*
 * The controller as a device of the lifecycle layer (core/device.h); dev is
 * a struct i8042 *. No threads. State version 1 is
 *
 *   32 bytes controller RAM (byte 0: the command byte)
 *   u8 output port, u8 STR.CMDDAT (0 or 1), u8 pending controller command
 *   u8 reply valid (0 or 1), u8 reply, u8 last byte read from port 0x60
 *   u8 pending keyboard command
 *   u8 keyboard queue count, then that many bytes, oldest first
 *
 * restore() refuses what i8042_restore() refuses, with a reason, and leaves
 * the keyboard line alone; reset() puts back the controller as created.
 */
struct device_ops;
extern const struct device_ops i8042_device_ops;

#endif
