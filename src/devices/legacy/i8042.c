/* SPDX-License-Identifier: MIT */
/*
 * Minimal 8042 keyboard controller with a silent PS/2 keyboard behind it.
 * Command set: IBM PC AT Technical Reference, "Keyboard Controller"; the
 * keyboard's command set: IBM PS/2 Hardware Interface Technical Reference,
 * "Keyboard and Auxiliary Device Controller". See i8042.h for the model.
 */
#include "devices/legacy/i8042.h"

#include "core/device.h"
#include "core/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* The command byte firmware leaves behind: translated keyboard on IRQ 1, no aux. */
#define I8042_CTR_DEFAULT                                                                          \
	(I8042_CTR_XLATE | I8042_CTR_AUXDIS | I8042_CTR_SYSFLAG | I8042_CTR_KBDINT)
#define I8042_OUTPORT_DEFAULT (I8042_OUTPORT_RESET | I8042_OUTPORT_A20)
#define PS2_KBD_SCANSET_2 0x02

struct i8042 {
	pthread_mutex_t lock;
	struct i8042_state s;

	struct irq_line kbd_irq;
	bool has_kbd_irq;
	bool irq_level;

	void (*reset)(void *opaque);
	void *reset_opaque;
};

static bool i8042_kbd_enabled(const struct i8042_state *s)
{
	return !(s->ram[0] & I8042_CTR_KBDDIS);
}

static bool i8042_obf(const struct i8042_state *s)
{
	return s->ctl_out_valid || (s->kbd_count && i8042_kbd_enabled(s));
}

static void i8042_set_irq(struct i8042 *k, bool level)
{
	if (level == k->irq_level)
		return;
	k->irq_level = level;
	if (k->has_kbd_irq)
		irq_line_set(&k->kbd_irq, level);
}

/*
 * The 8042 drives IRQ 1 from OBF when CTR.KBDINT is set; it never holds aux
 * data, so IRQ 12 never fires and is not modelled.
 */
static bool i8042_irq_level(const struct i8042_state *s)
{
	return (s->ram[0] & I8042_CTR_KBDINT) && i8042_obf(s);
}

static void i8042_update_irq(struct i8042 *k)
{
	i8042_set_irq(k, i8042_irq_level(&k->s));
}

static uint8_t i8042_status(const struct i8042_state *s)
{
	uint8_t st = I8042_STR_KEYLOCK | s->cmddat;

	if (s->ram[0] & I8042_CTR_SYSFLAG)
		st |= I8042_STR_SYSFLAG;
	if (i8042_obf(s))
		st |= I8042_STR_OBF;
	return st;
}

/*
 * A controller reply goes into the output buffer ahead of keyboard bytes
 * and replaces an unread earlier reply: a new command aborts the old one.
 */
static void i8042_reply(struct i8042_state *s, uint8_t val)
{
	s->ctl_out = val;
	s->ctl_out_valid = 1;
}

static void i8042_kbd_push(struct i8042_state *s, uint8_t val)
{
	if (s->kbd_count >= I8042_KBD_QUEUE_SIZE)
		return; /* keyboard buffer overrun: the byte is lost */
	s->kbd_queue[(s->kbd_head + s->kbd_count) % I8042_KBD_QUEUE_SIZE] = val;
	s->kbd_count++;
}

static uint8_t i8042_kbd_pop(struct i8042_state *s)
{
	uint8_t val = s->kbd_queue[s->kbd_head];

	s->kbd_head = (s->kbd_head + 1) % I8042_KBD_QUEUE_SIZE;
	s->kbd_count--;
	return val;
}

/* i8042_kbd_write - a byte sent to the keyboard: answer it like a PS/2 keyboard. */
static void i8042_kbd_write(struct i8042_state *s, uint8_t val)
{
	uint8_t cmd = s->kbd_pending_cmd;

	if (cmd) {
		/* The parameter byte of SET_LEDS, SCANSET or SET_REP. */
		s->kbd_pending_cmd = 0;
		i8042_kbd_push(s, PS2_KBD_REPLY_ACK);
		if (cmd == PS2_KBD_CMD_SCANSET && val == 0)
			i8042_kbd_push(s, PS2_KBD_SCANSET_2);
		return;
	}
	switch (val) {
	case PS2_KBD_CMD_SET_LEDS:
	case PS2_KBD_CMD_SCANSET:
	case PS2_KBD_CMD_SET_REP:
		i8042_kbd_push(s, PS2_KBD_REPLY_ACK);
		s->kbd_pending_cmd = val;
		break;
	case PS2_KBD_CMD_ECHO:
		i8042_kbd_push(s, PS2_KBD_CMD_ECHO);
		break;
	case PS2_KBD_CMD_GET_ID:
		i8042_kbd_push(s, PS2_KBD_REPLY_ACK);
		i8042_kbd_push(s, PS2_KBD_ID_0);
		i8042_kbd_push(s, PS2_KBD_ID_1);
		break;
	case PS2_KBD_CMD_RESET:
		s->kbd_head = 0;
		s->kbd_count = 0;
		i8042_kbd_push(s, PS2_KBD_REPLY_ACK);
		i8042_kbd_push(s, PS2_KBD_REPLY_BAT_OK);
		break;
	default:
		/* 0xf4-0xfe (enable, defaults, scan-set-3 modes, resend): acknowledged. */
		if (val >= PS2_KBD_CMD_ENABLE)
			i8042_kbd_push(s, PS2_KBD_REPLY_ACK);
		else
			i8042_kbd_push(s, PS2_KBD_REPLY_RESEND);
		break;
	}
}

/* Returns true if the write asks for a CPU reset. */
static bool i8042_write_outport(struct i8042_state *s, uint8_t val)
{
	s->outport = val;
	return !(val & I8042_OUTPORT_RESET);
}

/* i8042_data_byte - a data byte: a controller command's parameter or keyboard data. */
static bool i8042_data_byte(struct i8042_state *s, uint8_t val)
{
	uint8_t cmd = s->pending_cmd;
	bool reset = false;

	s->cmddat = 0;
	s->pending_cmd = 0;
	if (cmd >= I8042_CMD_WRITE_RAM && cmd < I8042_CMD_WRITE_RAM + I8042_RAM_SIZE) {
		s->ram[cmd - I8042_CMD_WRITE_RAM] = val;
		return false;
	}
	switch (cmd) {
	case I8042_CMD_WRITE_OUTPORT:
		reset = i8042_write_outport(s, val);
		break;
	case I8042_CMD_KBD_LOOP:
		i8042_reply(s, val); /* appears as keyboard data */
		break;
	case I8042_CMD_AUX_LOOP:
		/* No aux port: the byte comes back as keyboard data (no AUXDATA flag). */
		i8042_reply(s, val);
		break;
	case I8042_CMD_AUX_SEND:
		break; /* no aux device to send to */
	default:
		i8042_kbd_write(s, val);
		break;
	}
	return reset;
}

/* i8042_command - a byte written to port 0x64. Returns true for a CPU reset. */
static bool i8042_command(struct i8042_state *s, uint8_t cmd)
{
	s->cmddat = I8042_STR_CMDDAT;
	s->pending_cmd = 0;
	s->ctl_out_valid = 0;

	if (cmd >= I8042_CMD_READ_RAM && cmd < I8042_CMD_READ_RAM + I8042_RAM_SIZE) {
		i8042_reply(s, s->ram[cmd - I8042_CMD_READ_RAM]);
		return false;
	}
	if (cmd >= I8042_CMD_WRITE_RAM && cmd < I8042_CMD_WRITE_RAM + I8042_RAM_SIZE) {
		s->pending_cmd = cmd;
		return false;
	}
	if (cmd >= I8042_CMD_PULSE) {
		/* Bits 0-3 select output port lines to pulse low; bit 0 is reset. */
		return !(cmd & I8042_OUTPORT_RESET);
	}
	switch (cmd) {
	case I8042_CMD_AUX_DISABLE:
		s->ram[0] |= I8042_CTR_AUXDIS;
		break;
	case I8042_CMD_AUX_ENABLE:
		s->ram[0] &= (uint8_t)~I8042_CTR_AUXDIS;
		break;
	case I8042_CMD_AUX_TEST:
		i8042_reply(s, I8042_AUX_TEST_CLOCK_HIGH);
		break;
	case I8042_CMD_SELF_TEST:
		s->ram[0] |= I8042_CTR_SYSFLAG;
		i8042_reply(s, I8042_SELF_TEST_OK);
		break;
	case I8042_CMD_KBD_TEST:
		i8042_reply(s, I8042_KBD_TEST_OK);
		break;
	case I8042_CMD_KBD_DISABLE:
		s->ram[0] |= I8042_CTR_KBDDIS;
		break;
	case I8042_CMD_KBD_ENABLE:
		s->ram[0] &= (uint8_t)~I8042_CTR_KBDDIS;
		break;
	case I8042_CMD_READ_OUTPORT:
		i8042_reply(s, s->outport);
		break;
	case I8042_CMD_WRITE_OUTPORT:
	case I8042_CMD_KBD_LOOP:
	case I8042_CMD_AUX_LOOP:
	case I8042_CMD_AUX_SEND:
		s->pending_cmd = cmd;
		break;
	case I8042_CMD_A20_DISABLE:
		s->outport &= (uint8_t)~I8042_OUTPORT_A20;
		break;
	case I8042_CMD_A20_ENABLE:
		s->outport |= I8042_OUTPORT_A20;
		break;
	default:
		log_debug("i8042: ignoring unsupported command %#04x", cmd);
		break;
	}
	return false;
}

static uint8_t i8042_read_data(struct i8042 *k)
{
	struct i8042_state *s = &k->s;
	uint8_t val = s->last_out;

	if (s->ctl_out_valid) {
		val = s->ctl_out;
		s->ctl_out_valid = 0;
	} else if (s->kbd_count && i8042_kbd_enabled(s)) {
		val = i8042_kbd_pop(s);
	}
	s->last_out = val;
	/*
	 * OBF drops when the byte is read and rises again for the next one:
	 * give the edge-triggered IRQ 1 that falling edge.
	 */
	i8042_set_irq(k, false);
	return val;
}

/* i8042_access - one byte at @port_cmd ? 0x64 : 0x60. Returns true for a reset. */
static bool i8042_access(struct i8042 *k, bool port_cmd, uint64_t offset, void *data, uint32_t len,
                         bool is_write)
{
	uint8_t *bytes = data;
	bool reset = false;

	if (len == 0)
		return false;
	if (!is_write)
		memset(bytes, 0xff, len);
	if (offset != 0)
		return false; /* not this one-byte port */

	pthread_mutex_lock(&k->lock);
	if (port_cmd && is_write)
		reset = i8042_command(&k->s, bytes[0]);
	else if (port_cmd)
		bytes[0] = i8042_status(&k->s);
	else if (is_write)
		reset = i8042_data_byte(&k->s, bytes[0]);
	else
		bytes[0] = i8042_read_data(k);
	i8042_update_irq(k);
	pthread_mutex_unlock(&k->lock);
	return reset;
}

static void i8042_do_reset(struct i8042 *k)
{
	log_debug("i8042: guest pulsed the CPU reset line");
	if (k->reset)
		k->reset(k->reset_opaque);
}

void i8042_data_io(void *opaque, uint64_t offset, void *data, uint32_t len, bool is_write)
{
	struct i8042 *k = opaque;

	if (i8042_access(k, false, offset, data, len, is_write))
		i8042_do_reset(k);
}

void i8042_cmd_io(void *opaque, uint64_t offset, void *data, uint32_t len, bool is_write)
{
	struct i8042 *k = opaque;

	if (i8042_access(k, true, offset, data, len, is_write))
		i8042_do_reset(k);
}

/* i8042_reset_state - the controller as firmware leaves it (see i8042_create). */
static void i8042_reset_state(struct i8042_state *s)
{
	memset(s, 0, sizeof(*s));
	s->ram[0] = I8042_CTR_DEFAULT;
	s->outport = I8042_OUTPORT_DEFAULT;
}

int i8042_create(const struct i8042_config *cfg, struct i8042 **out)
{
	struct i8042 *k;
	int r;

	*out = NULL;
	if (!cfg)
		return -EINVAL;
	k = calloc(1, sizeof(*k));
	if (!k)
		return -ENOMEM;
	r = pthread_mutex_init(&k->lock, NULL);
	if (r) {
		free(k);
		return -r;
	}
	i8042_reset_state(&k->s);
	if (cfg->kbd_irq) {
		k->kbd_irq = *cfg->kbd_irq;
		k->has_kbd_irq = true;
	}
	k->reset = cfg->reset;
	k->reset_opaque = cfg->reset_opaque;
	*out = k;
	return 0;
}

void i8042_destroy(struct i8042 *kbc)
{
	if (!kbc)
		return;
	pthread_mutex_destroy(&kbc->lock);
	free(kbc);
}

void i8042_save(struct i8042 *kbc, struct i8042_state *state)
{
	pthread_mutex_lock(&kbc->lock);
	*state = kbc->s;
	pthread_mutex_unlock(&kbc->lock);
}

/* i8042_state_problem - why @s is not a state this controller can be in, or NULL. */
static const char *i8042_state_problem(const struct i8042_state *s)
{
	uint8_t c = s->pending_cmd, k = s->kbd_pending_cmd;

	if (c && !(c >= I8042_CMD_WRITE_RAM && c < I8042_CMD_WRITE_RAM + I8042_RAM_SIZE) &&
	    !(c >= I8042_CMD_WRITE_OUTPORT && c <= I8042_CMD_AUX_SEND))
		return "the pending controller command takes no data byte";
	if (k && k != PS2_KBD_CMD_SET_LEDS && k != PS2_KBD_CMD_SCANSET && k != PS2_KBD_CMD_SET_REP)
		return "the pending keyboard command takes no parameter";
	if (s->cmddat & ~I8042_STR_CMDDAT)
		return "the command/data flag holds other status bits";
	if (s->ctl_out_valid > 1)
		return "the reply-valid flag is neither 0 nor 1";
	if (s->kbd_head >= I8042_KBD_QUEUE_SIZE || s->kbd_count > I8042_KBD_QUEUE_SIZE)
		return "the keyboard queue's head or count is out of range";
	return NULL;
}

/* i8042_load - replace the state with the checked @state; see uart_load(). */
static void i8042_load(struct i8042 *k, const struct i8042_state *state, bool drive)
{
	pthread_mutex_lock(&k->lock);
	k->s = *state;
	if (drive)
		i8042_update_irq(k);
	else
		k->irq_level = i8042_irq_level(&k->s);
	pthread_mutex_unlock(&k->lock);
}

int i8042_restore(struct i8042 *kbc, const struct i8042_state *state)
{
	if (i8042_state_problem(state))
		return -EINVAL;
	i8042_load(kbc, state, true);
	return 0;
}

/* ---- the device lifecycle (core/device.h) ---- */

/* State version 1, byte by byte (see i8042.h). */
static int i8042_device_save(void *dev, struct dev_state *out)
{
	struct i8042_state s;

	i8042_save(dev, &s);
	ds_put_bytes(out, s.ram, sizeof(s.ram));
	ds_put_u8(out, s.outport);
	ds_put_bool(out, s.cmddat);
	ds_put_u8(out, s.pending_cmd);
	ds_put_bool(out, s.ctl_out_valid);
	ds_put_u8(out, s.ctl_out);
	ds_put_u8(out, s.last_out);
	ds_put_u8(out, s.kbd_pending_cmd);
	ds_put_u8(out, s.kbd_count);
	for (unsigned int i = 0; i < s.kbd_count; i++)
		ds_put_u8(out, s.kbd_queue[(s.kbd_head + i) % I8042_KBD_QUEUE_SIZE]);
	return 0;
}

static int i8042_device_restore(void *dev, struct dev_state_in *in, uint32_t version)
{
	struct i8042_state s;
	const char *why;
	int r;

	(void)version; /* 1, the only one so far */
	memset(&s, 0, sizeof(s));
	dsi_get_bytes(in, s.ram, sizeof(s.ram));
	s.outport = dsi_get_u8(in);
	s.cmddat = dsi_get_bool(in) ? I8042_STR_CMDDAT : 0;
	s.pending_cmd = dsi_get_u8(in);
	s.ctl_out_valid = dsi_get_bool(in);
	s.ctl_out = dsi_get_u8(in);
	s.last_out = dsi_get_u8(in);
	s.kbd_pending_cmd = dsi_get_u8(in);
	s.kbd_count = dsi_get_u8(in);
	if (!dsi_check(in, s.kbd_count <= I8042_KBD_QUEUE_SIZE,
	               "its keyboard queue holds %u bytes, more than %u", s.kbd_count,
	               I8042_KBD_QUEUE_SIZE))
		return -EBADMSG;
	dsi_get_bytes(in, s.kbd_queue, s.kbd_count);
	why = i8042_state_problem(&s);
	dsi_check(in, !why, "%s", why ? why : "");
	r = dsi_finish(in);
	if (r < 0)
		return r;
	i8042_load(dev, &s, false);
	return 0;
}

/* A guest reset: the controller as firmware leaves it; the line follows (down). */
static void i8042_device_reset(void *dev)
{
	struct i8042_state s;

	i8042_reset_state(&s);
	i8042_load(dev, &s, true);
}

static void i8042_device_destroy(void *dev)
{
	i8042_destroy(dev);
}

const struct device_ops i8042_device_ops = {
    .kind = "i8042",
    .version = 1,
    .reset = i8042_device_reset,
    .save = i8042_device_save,
    .restore = i8042_device_restore,
    .destroy = i8042_device_destroy,
};
