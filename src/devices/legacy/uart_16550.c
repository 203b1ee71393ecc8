/* SPDX-License-Identifier: MIT */
/*
 * 16550A UART. Register semantics follow the National Semiconductor PC16550D
 * datasheet (June 1995), sections 8.1-8.10; see uart_16550.h for the model.
 */
#include "devices/legacy/uart_16550.h"

#include "core/device.h"
#include "core/log.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A write loop that keeps hitting EAGAIN after poll() said POLLOUT gives up. */
#define UART_OUTPUT_MAX_RETRIES 8

/* MSR status bits when nothing is looped back: a connected, ready modem. */
#define UART_MSR_IDLE (UART_MSR_DCD | UART_MSR_DSR | UART_MSR_CTS)

struct uart_16550 {
	pthread_mutex_t lock;
	struct uart_16550_state s;

	struct irq_line irq;
	bool has_irq;
	bool irq_level;

	int out_fd;
	bool out_stalled;
	bool out_error_logged;

	bool rx_wanted; /* the input side is waiting for room */
	void (*rx_ready)(void *opaque);
	void *rx_ready_opaque;
};

static unsigned int uart_rx_capacity(const struct uart_16550_state *s)
{
	return (s->fcr & UART_FCR_ENABLE_FIFO) ? UART_16550_FIFO_SIZE : 1;
}

static unsigned int uart_rx_trigger(const struct uart_16550_state *s)
{
	static const unsigned int levels[4] = {1, 4, 8, 14};

	if (!(s->fcr & UART_FCR_ENABLE_FIFO))
		return 1;
	return levels[(s->fcr & UART_FCR_TRIGGER_MASK) >> 6];
}

static size_t uart_rx_room_locked(const struct uart_16550 *u)
{
	if (u->s.mcr & UART_MCR_LOOP)
		return 0;
	return uart_rx_capacity(&u->s) - u->s.rx_count;
}

static bool uart_rx_push(struct uart_16550 *u, uint8_t byte)
{
	struct uart_16550_state *s = &u->s;

	if (s->rx_count >= uart_rx_capacity(s))
		return false;
	s->rx_fifo[(s->rx_head + s->rx_count) % UART_16550_FIFO_SIZE] = byte;
	s->rx_count++;
	return true;
}

static uint8_t uart_rx_pop(struct uart_16550 *u)
{
	struct uart_16550_state *s = &u->s;
	uint8_t byte;

	if (s->rx_count == 0)
		return 0;
	byte = s->rx_fifo[s->rx_head];
	s->rx_head = (s->rx_head + 1) % UART_16550_FIFO_SIZE;
	s->rx_count--;
	return byte;
}

static void uart_rx_clear(struct uart_16550 *u)
{
	u->s.rx_head = 0;
	u->s.rx_count = 0;
}

/*
 * uart_iir_id - the highest-priority pending interrupt (datasheet Table IV),
 * or UART_IIR_NO_INT.
 */
static uint8_t uart_iir_id(const struct uart_16550_state *s)
{
	if ((s->ier & UART_IER_RLSI) && (s->lsr & UART_LSR_ERRORS))
		return UART_IIR_RLSI;
	if ((s->ier & UART_IER_RDI) && s->rx_count) {
		if ((s->fcr & UART_FCR_ENABLE_FIFO) && s->rx_count < uart_rx_trigger(s))
			return UART_IIR_CTI;
		return UART_IIR_RDI;
	}
	if ((s->ier & UART_IER_THRI) && s->thre_pending)
		return UART_IIR_THRI;
	if ((s->ier & UART_IER_MSI) && (s->msr & UART_MSR_DELTAS))
		return UART_IIR_MSI;
	return UART_IIR_NO_INT;
}

/* uart_irq_level - the line's level for @s: an interrupt pending and OUT2 set. */
static bool uart_irq_level(const struct uart_16550_state *s)
{
	return uart_iir_id(s) != UART_IIR_NO_INT && (s->mcr & UART_MCR_OUT2);
}

static void uart_update_irq(struct uart_16550 *u)
{
	bool level = uart_irq_level(&u->s);

	if (level == u->irq_level)
		return;
	u->irq_level = level;
	if (u->has_irq)
		irq_line_set(&u->irq, level);
}

/*
 * uart_output_wait - wait until out_fd accepts a byte: up to
 * UART_16550_OUTPUT_STALL_MS normally, not at all once output has stalled.
 */
static bool uart_output_wait(struct uart_16550 *u)
{
	struct pollfd pfd = {.fd = u->out_fd, .events = POLLOUT};
	int timeout = u->out_stalled ? 0 : UART_16550_OUTPUT_STALL_MS;
	int r;

	do {
		r = poll(&pfd, 1, timeout);
	} while (r < 0 && errno == EINTR);
	if (r > 0)
		return true; /* writable, or an error that write() will report */
	if (r == 0 && !u->out_stalled)
		log_debug("uart: output fd not writable for %d ms, dropping output",
		          UART_16550_OUTPUT_STALL_MS);
	u->out_stalled = true;
	return false;
}

/*
 * uart_output - write @len bytes to out_fd without blocking the vCPU for
 * long: poll first (the fd may be blocking), finish short writes, and drop
 * what a stalled or broken fd does not take.
 */
static void uart_output(struct uart_16550 *u, const uint8_t *buf, size_t len)
{
	unsigned int retries = 0;

	if (u->out_fd < 0)
		return;
	while (len > 0) {
		ssize_t n;

		if (!uart_output_wait(u))
			return;
		n = write(u->out_fd, buf, len);
		if (n > 0) {
			buf += n;
			len -= (size_t)n;
			u->out_stalled = false;
			continue;
		}
		if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) &&
		    ++retries < UART_OUTPUT_MAX_RETRIES)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			u->out_stalled = true;
			return;
		}
		if (!u->out_error_logged) {
			log_warn("uart: cannot write console output: %s; output is dropped",
			         n < 0 ? strerror(errno) : "short write");
			u->out_error_logged = true;
		}
		return;
	}
}

/* uart_msr_status - MSR bits 4-7: the MCR outputs in loopback, else idle lines. */
static uint8_t uart_msr_status(uint8_t mcr)
{
	uint8_t st = 0;

	if (!(mcr & UART_MCR_LOOP))
		return UART_MSR_IDLE;
	/* Datasheet 8.6, MCR bit 4: DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD. */
	if (mcr & UART_MCR_DTR)
		st |= UART_MSR_DSR;
	if (mcr & UART_MCR_RTS)
		st |= UART_MSR_CTS;
	if (mcr & UART_MCR_OUT1)
		st |= UART_MSR_RI;
	if (mcr & UART_MCR_OUT2)
		st |= UART_MSR_DCD;
	return st;
}

static void uart_set_msr_status(struct uart_16550_state *s, uint8_t st)
{
	uint8_t old = s->msr & ~UART_MSR_DELTAS;
	uint8_t delta = 0;

	if ((old ^ st) & UART_MSR_CTS)
		delta |= UART_MSR_DCTS;
	if ((old ^ st) & UART_MSR_DSR)
		delta |= UART_MSR_DDSR;
	if ((old & UART_MSR_RI) && !(st & UART_MSR_RI)) /* trailing edge only */
		delta |= UART_MSR_TERI;
	if ((old ^ st) & UART_MSR_DCD)
		delta |= UART_MSR_DDCD;
	s->msr = (uint8_t)((s->msr & UART_MSR_DELTAS) | delta | st);
}

/* Returns true if the input side should be told there is room. */
static bool uart_rx_room_appeared(struct uart_16550 *u)
{
	if (!u->rx_wanted || uart_rx_room_locked(u) == 0)
		return false;
	u->rx_wanted = false;
	return true;
}

static void uart_write_thr(struct uart_16550 *u, uint8_t byte)
{
	struct uart_16550_state *s = &u->s;

	s->thre_pending = 0;
	if (s->mcr & UART_MCR_LOOP) {
		/* The transmitter shift register feeds the receiver (8.6). */
		if (!uart_rx_push(u, byte))
			s->lsr |= UART_LSR_OE;
	} else {
		uart_output(u, &byte, 1);
	}
	/* The byte left at once: THR is empty again. */
	s->thre_pending = 1;
}

static void uart_write_ier(struct uart_16550_state *s, uint8_t val)
{
	val &= UART_IER_MASK;
	/*
	 * Enabling the THRE interrupt while THR is empty raises it. Linux's
	 * 8250 startup checks exactly this (IER=THRI, IER=0, IER=THRI) to
	 * decide whether the UART has the "THRE not re-asserted" bug.
	 */
	if ((val & UART_IER_THRI) && !(s->ier & UART_IER_THRI))
		s->thre_pending = 1;
	s->ier = val;
}

static void uart_write_fcr(struct uart_16550 *u, uint8_t val)
{
	struct uart_16550_state *s = &u->s;
	bool was_enabled = s->fcr & UART_FCR_ENABLE_FIFO;

	if (!(val & UART_FCR_ENABLE_FIFO)) {
		/* Changing FCR bit 0 resets the FIFOs; other bits need bit 0 set (8.5). */
		if (was_enabled)
			uart_rx_clear(u);
		s->fcr = 0;
		return;
	}
	if (!was_enabled || (val & UART_FCR_CLEAR_RCVR))
		uart_rx_clear(u);
	s->fcr = val & (UART_FCR_ENABLE_FIFO | UART_FCR_DMA_SELECT | UART_FCR_TRIGGER_MASK);
}

static void uart_write_mcr(struct uart_16550 *u, uint8_t val)
{
	struct uart_16550_state *s = &u->s;

	s->mcr = val & UART_MCR_MASK;
	uart_set_msr_status(s, uart_msr_status(s->mcr));
}

static void uart_write_reg(struct uart_16550 *u, unsigned int reg, uint8_t val)
{
	struct uart_16550_state *s = &u->s;
	bool dlab = s->lcr & UART_LCR_DLAB;

	switch (reg) {
	case UART_REG_THR:
		if (dlab)
			s->dll = val;
		else
			uart_write_thr(u, val);
		break;
	case UART_REG_IER:
		if (dlab)
			s->dlm = val;
		else
			uart_write_ier(s, val);
		break;
	case UART_REG_FCR:
		uart_write_fcr(u, val);
		break;
	case UART_REG_LCR:
		s->lcr = val;
		break;
	case UART_REG_MCR:
		uart_write_mcr(u, val);
		break;
	case UART_REG_SCR:
		s->scr = val;
		break;
	default:
		/* LSR and MSR writes are factory-test only (8.4, 8.7): ignored. */
		break;
	}
}

static uint8_t uart_read_reg(struct uart_16550 *u, unsigned int reg)
{
	struct uart_16550_state *s = &u->s;
	bool dlab = s->lcr & UART_LCR_DLAB;
	uint8_t val, id;

	switch (reg) {
	case UART_REG_RBR:
		return dlab ? s->dll : uart_rx_pop(u);
	case UART_REG_IER:
		return dlab ? s->dlm : s->ier;
	case UART_REG_IIR:
		id = uart_iir_id(s);
		/* Reading IIR while it reports THRE clears that interrupt (Table IV). */
		if (id == UART_IIR_THRI)
			s->thre_pending = 0;
		if (s->fcr & UART_FCR_ENABLE_FIFO)
			id |= UART_IIR_FIFO_ENABLED;
		return id;
	case UART_REG_LCR:
		return s->lcr;
	case UART_REG_MCR:
		return s->mcr;
	case UART_REG_LSR:
		val = (uint8_t)(s->lsr | UART_LSR_THRE | UART_LSR_TEMT);
		if (s->rx_count)
			val |= UART_LSR_DR;
		s->lsr &= (uint8_t)~UART_LSR_ERRORS; /* error bits clear on read (8.4) */
		return val;
	case UART_REG_MSR:
		val = s->msr;
		s->msr &= (uint8_t)~UART_MSR_DELTAS;
		return val;
	case UART_REG_SCR:
		return s->scr;
	default:
		return 0xff;
	}
}

void uart_16550_io(void *opaque, uint64_t offset, void *data, uint32_t len, bool is_write)
{
	struct uart_16550 *u = opaque;
	uint8_t *bytes = data;
	bool notify;
	uint32_t i;

	pthread_mutex_lock(&u->lock);
	for (i = 0; i < len; i++) {
		uint64_t reg = offset + i;

		if (reg < offset || reg >= UART_16550_NR_REGS) {
			if (!is_write)
				bytes[i] = 0xff;
			continue;
		}
		if (is_write)
			uart_write_reg(u, (unsigned int)reg, bytes[i]);
		else
			bytes[i] = uart_read_reg(u, (unsigned int)reg);
	}
	uart_update_irq(u);
	notify = uart_rx_room_appeared(u);
	pthread_mutex_unlock(&u->lock);

	if (notify && u->rx_ready)
		u->rx_ready(u->rx_ready_opaque);
}

size_t uart_16550_receive(struct uart_16550 *uart, const void *buf, size_t len)
{
	const uint8_t *bytes = buf;
	size_t n = 0;

	pthread_mutex_lock(&uart->lock);
	if (!(uart->s.mcr & UART_MCR_LOOP)) {
		while (n < len && uart_rx_push(uart, bytes[n]))
			n++;
	}
	if (n < len)
		uart->rx_wanted = true;
	uart_update_irq(uart);
	pthread_mutex_unlock(&uart->lock);
	return n;
}

size_t uart_16550_rx_room(struct uart_16550 *uart)
{
	size_t room;

	pthread_mutex_lock(&uart->lock);
	room = uart_rx_room_locked(uart);
	if (room == 0)
		uart->rx_wanted = true;
	pthread_mutex_unlock(&uart->lock);
	return room;
}

static void uart_reset_state(struct uart_16550_state *s)
{
	memset(s, 0, sizeof(*s));
	s->msr = UART_MSR_IDLE;
}

int uart_16550_create(const struct uart_16550_config *cfg, struct uart_16550 **out)
{
	struct uart_16550 *u;
	int r;

	*out = NULL;
	if (!cfg)
		return -EINVAL;
	u = calloc(1, sizeof(*u));
	if (!u)
		return -ENOMEM;
	r = pthread_mutex_init(&u->lock, NULL);
	if (r) {
		free(u);
		return -r;
	}
	uart_reset_state(&u->s);
	if (cfg->irq) {
		u->irq = *cfg->irq;
		u->has_irq = true;
	}
	u->out_fd = cfg->out_fd < 0 ? -1 : cfg->out_fd;
	u->rx_ready = cfg->rx_ready;
	u->rx_ready_opaque = cfg->rx_ready_opaque;
	*out = u;
	return 0;
}

void uart_16550_destroy(struct uart_16550 *uart)
{
	if (!uart)
		return;
	pthread_mutex_destroy(&uart->lock);
	free(uart);
}

void uart_16550_save(struct uart_16550 *uart, struct uart_16550_state *state)
{
	pthread_mutex_lock(&uart->lock);
	*state = uart->s;
	pthread_mutex_unlock(&uart->lock);
}

/* uart_state_problem - why @s is not a state this UART can be in, or NULL. */
static const char *uart_state_problem(const struct uart_16550_state *s)
{
	if (s->ier & ~UART_IER_MASK)
		return "IER has reserved bits set";
	if (s->mcr & ~UART_MCR_MASK)
		return "MCR has reserved bits set";
	if (s->lsr & ~UART_LSR_ERRORS)
		return "LSR holds more than its error bits";
	if (s->thre_pending > 1)
		return "the THR-empty flag is neither 0 nor 1";
	if (s->fcr & ~(UART_FCR_ENABLE_FIFO | UART_FCR_DMA_SELECT | UART_FCR_TRIGGER_MASK))
		return "FCR holds bits that are write-only";
	if (!(s->fcr & UART_FCR_ENABLE_FIFO) && s->fcr)
		return "FCR holds FIFO settings with the FIFOs off";
	if (s->rx_head >= UART_16550_FIFO_SIZE)
		return "the RX FIFO's head is out of range";
	if (s->rx_count > uart_rx_capacity(s))
		return "the RX FIFO holds more bytes than it has room for";
	/* In loopback the status bits mirror MCR; otherwise the lines are idle. */
	if ((s->msr & ~UART_MSR_DELTAS) != uart_msr_status(s->mcr))
		return "MSR's line status disagrees with MCR";
	return NULL;
}

/*
 * uart_load - replace the state with the checked @state. With @drive the
 * interrupt line follows the new state; without, only the device's idea of
 * the line's level does (a restore: the irqchip's saved state holds it).
 */
static void uart_load(struct uart_16550 *u, const struct uart_16550_state *state, bool drive)
{
	bool notify;

	pthread_mutex_lock(&u->lock);
	u->s = *state;
	if (drive)
		uart_update_irq(u);
	else
		u->irq_level = uart_irq_level(&u->s);
	notify = uart_rx_room_appeared(u);
	pthread_mutex_unlock(&u->lock);
	if (notify && u->rx_ready)
		u->rx_ready(u->rx_ready_opaque);
}

int uart_16550_restore(struct uart_16550 *uart, const struct uart_16550_state *state)
{
	if (uart_state_problem(state))
		return -EINVAL;
	uart_load(uart, state, true);
	return 0;
}

/* ---- the device lifecycle (core/device.h) ---- */

/* State version 1, byte by byte (see uart_16550.h). */
static int uart_16550_device_save(void *dev, struct dev_state *out)
{
	struct uart_16550_state s;

	uart_16550_save(dev, &s);
	ds_put_u8(out, s.ier);
	ds_put_u8(out, s.lcr);
	ds_put_u8(out, s.mcr);
	ds_put_u8(out, s.lsr);
	ds_put_u8(out, s.msr);
	ds_put_u8(out, s.scr);
	ds_put_u8(out, s.dll);
	ds_put_u8(out, s.dlm);
	ds_put_u8(out, s.fcr);
	ds_put_bool(out, s.thre_pending);
	ds_put_u8(out, s.rx_count);
	for (unsigned int i = 0; i < s.rx_count; i++)
		ds_put_u8(out, s.rx_fifo[(s.rx_head + i) % UART_16550_FIFO_SIZE]);
	return 0;
}

static int uart_16550_device_restore(void *dev, struct dev_state_in *in, uint32_t version)
{
	struct uart_16550_state s;
	const char *why;
	int r;

	(void)version; /* 1, the only one so far */
	memset(&s, 0, sizeof(s));
	s.ier = dsi_get_u8(in);
	s.lcr = dsi_get_u8(in);
	s.mcr = dsi_get_u8(in);
	s.lsr = dsi_get_u8(in);
	s.msr = dsi_get_u8(in);
	s.scr = dsi_get_u8(in);
	s.dll = dsi_get_u8(in);
	s.dlm = dsi_get_u8(in);
	s.fcr = dsi_get_u8(in);
	s.thre_pending = dsi_get_bool(in);
	s.rx_count = dsi_get_u8(in);
	if (!dsi_check(in, s.rx_count <= UART_16550_FIFO_SIZE,
	               "its RX FIFO holds %u bytes, more than %u", s.rx_count,
	               UART_16550_FIFO_SIZE))
		return -EBADMSG;
	dsi_get_bytes(in, s.rx_fifo, s.rx_count);
	why = uart_state_problem(&s);
	dsi_check(in, !why, "%s", why ? why : "");
	r = dsi_finish(in);
	if (r < 0)
		return r;
	uart_load(dev, &s, false);
	return 0;
}

/* A guest reset: registers as at power-on; the line follows (down). */
static void uart_16550_device_reset(void *dev)
{
	struct uart_16550_state s;

	uart_reset_state(&s);
	uart_load(dev, &s, true);
}

static void uart_16550_device_destroy(void *dev)
{
	uart_16550_destroy(dev);
}

const struct device_ops uart_16550_device_ops = {
    .kind = "uart-16550",
    .version = 1,
    .reset = uart_16550_device_reset,
    .save = uart_16550_device_save,
    .restore = uart_16550_device_restore,
    .destroy = uart_16550_device_destroy,
};
