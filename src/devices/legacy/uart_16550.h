/* SPDX-License-Identifier: MIT */
#ifndef NESTVM_DEVICES_LEGACY_UART_16550_H
#define NESTVM_DEVICES_LEGACY_UART_16550_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/irq.h"

/*
 * A National Semiconductor PC16550D-compatible UART ("16550A"), as the PC's
 * COM ports are. The guest sees eight byte-wide registers; the divisor latch
 * (DLL/DLM) overlays RBR/THR and IER while LCR.DLAB is set.
 *
 * Transmission is instantaneous: a byte written to THR goes straight to the
 * output fd, so LSR.THRE and LSR.TEMT always read 1 and the THR-empty
 * interrupt is re-armed after every write. Received bytes wait in a 16-byte
 * RX FIFO (one byte when FCR.FIFO_ENABLE is clear) until the guest reads RBR.
 *
 * Interrupts follow the datasheet's IIR priorities (receiver line status,
 * then received data / character timeout, then THR empty, then modem
 * status). The interrupt line is a level: it is asserted while IIR shows a
 * pending interrupt and MCR.OUT2 is set (on a PC, OUT2 gates the UART's
 * interrupt onto the ISA bus, and Linux's 8250 driver sets it for that
 * reason), and deasserted otherwise. Because the ISA IRQ is edge-triggered
 * at the interrupt controller, the device only calls the line on changes.
 *
 * The character timeout interrupt is reported at once whenever the FIFO holds
 * fewer bytes than the trigger level: there is no baud-rate timing to wait for.
 *
 * Locking: the device has one mutex. uart_16550_io() runs on vCPU threads,
 * uart_16550_receive() on an input thread; both take it. The irq_line's set()
 * is called with the mutex held and must not call back into the device.
 */

/* Register offsets from the base port (PC16550D datasheet, Table II). */
#define UART_16550_NR_REGS 8
#define UART_REG_RBR 0 /* read, DLAB=0: receiver buffer */
#define UART_REG_THR 0 /* write, DLAB=0: transmitter holding */
#define UART_REG_DLL 0 /* DLAB=1: divisor latch, low byte */
#define UART_REG_IER 1 /* DLAB=0: interrupt enable */
#define UART_REG_DLM 1 /* DLAB=1: divisor latch, high byte */
#define UART_REG_IIR 2 /* read: interrupt identification */
#define UART_REG_FCR 2 /* write: FIFO control */
#define UART_REG_LCR 3 /* line control */
#define UART_REG_MCR 4 /* modem control */
#define UART_REG_LSR 5 /* line status */
#define UART_REG_MSR 6 /* modem status */
#define UART_REG_SCR 7 /* scratch */

#define UART_IER_RDI 0x01  /* received data available */
#define UART_IER_THRI 0x02 /* transmitter holding register empty */
#define UART_IER_RLSI 0x04 /* receiver line status */
#define UART_IER_MSI 0x08  /* modem status */
#define UART_IER_MASK 0x0f /* bits 4-7 are always 0 on a 16550A */

#define UART_IIR_NO_INT 0x01
#define UART_IIR_ID_MASK 0x0e
#define UART_IIR_MSI 0x00
#define UART_IIR_THRI 0x02
#define UART_IIR_RDI 0x04
#define UART_IIR_RLSI 0x06
#define UART_IIR_CTI 0x0c          /* character timeout */
#define UART_IIR_FIFO_ENABLED 0xc0 /* both bits set: 16550A with working FIFOs */

#define UART_FCR_ENABLE_FIFO 0x01
#define UART_FCR_CLEAR_RCVR 0x02
#define UART_FCR_CLEAR_XMIT 0x04
#define UART_FCR_DMA_SELECT 0x08
#define UART_FCR_TRIGGER_MASK 0xc0
#define UART_FCR_TRIGGER_1 0x00
#define UART_FCR_TRIGGER_4 0x40
#define UART_FCR_TRIGGER_8 0x80
#define UART_FCR_TRIGGER_14 0xc0

#define UART_LCR_DLAB 0x80

#define UART_MCR_DTR 0x01
#define UART_MCR_RTS 0x02
#define UART_MCR_OUT1 0x04
#define UART_MCR_OUT2 0x08
#define UART_MCR_LOOP 0x10
#define UART_MCR_MASK 0x1f /* bits 5-7 are always 0 on a 16550A */

#define UART_LSR_DR 0x01   /* data ready */
#define UART_LSR_OE 0x02   /* overrun error */
#define UART_LSR_PE 0x04   /* parity error */
#define UART_LSR_FE 0x08   /* framing error */
#define UART_LSR_BI 0x10   /* break interrupt */
#define UART_LSR_THRE 0x20 /* THR empty */
#define UART_LSR_TEMT 0x40 /* transmitter empty */
#define UART_LSR_FIFOE 0x80
#define UART_LSR_ERRORS (UART_LSR_OE | UART_LSR_PE | UART_LSR_FE | UART_LSR_BI)

#define UART_MSR_DCTS 0x01
#define UART_MSR_DDSR 0x02
#define UART_MSR_TERI 0x04
#define UART_MSR_DDCD 0x08
#define UART_MSR_DELTAS 0x0f
#define UART_MSR_CTS 0x10
#define UART_MSR_DSR 0x20
#define UART_MSR_RI 0x40
#define UART_MSR_DCD 0x80

#define UART_16550_FIFO_SIZE 16

/*
 * Output to a stuck reader: the device waits at most this long for the
 * output fd to accept a byte, then drops output without waiting until the
 * fd accepts a byte again.
 */
#define UART_16550_OUTPUT_STALL_MS 100

/*
 * The guest-visible state, plain data for save/restore. LSR keeps only the
 * sticky error bits; DR, THRE and TEMT are derived.
 */
struct uart_16550_state {
	uint8_t ier;
	uint8_t lcr;
	uint8_t mcr;
	uint8_t lsr;
	uint8_t msr;
	uint8_t scr;
	uint8_t dll;
	uint8_t dlm;
	uint8_t fcr; /* FIFO enable, DMA select and trigger bits as last set */
	uint8_t thre_pending;
	uint8_t rx_head;
	uint8_t rx_count;
	uint8_t rx_fifo[UART_16550_FIFO_SIZE];
};

struct uart_16550_config {
	/* Where transmitted bytes go; -1 discards them. Not owned by the device. */
	int out_fd;
	/* The interrupt line (copied); NULL for none. */
	const struct irq_line *irq;
	/*
	 * Optional: called when the RX FIFO has room again after
	 * uart_16550_receive() accepted less than it was given or
	 * uart_16550_rx_room() returned 0. Called from a vCPU thread without
	 * the device's mutex held; typically writes to an eventfd the input
	 * thread polls.
	 */
	void (*rx_ready)(void *opaque);
	void *rx_ready_opaque;
};

struct uart_16550;

/*
 * uart_16550_create - a UART in its reset state (DLAB clear, FIFOs off,
 * interrupts disabled, MSR showing DCD, DSR and CTS). Output writes never
 * block for longer than UART_16550_OUTPUT_STALL_MS (see above); the monitor
 * should ignore SIGPIPE so a closed pipe or socket reader is an error here,
 * not a signal. Returns 0 and sets *@out, or -EINVAL, -ENOMEM.
 */
int uart_16550_create(const struct uart_16550_config *cfg, struct uart_16550 **out)
    __attribute__((warn_unused_result));

/* uart_16550_destroy - free the device; NULL is a no-op. Does not close out_fd. */
void uart_16550_destroy(struct uart_16550 *uart);

/*
 * uart_16550_io - bus handler for the eight registers; register it with
 * bus_add_range(pio, PORT_COM1, UART_16550_NR_REGS, uart_16550_io, uart, ...).
 * A wider access is split into byte accesses at consecutive offsets, as the
 * ISA bus does for an 8-bit device; bytes past the last register read 0xff.
 */
void uart_16550_io(void *opaque, uint64_t offset, void *data, uint32_t len, bool is_write);

/*
 * uart_16550_receive - push host input into the RX FIFO and update the
 * interrupt. Returns how many bytes were accepted (0 when the FIFO is full
 * or the UART is in loopback mode, where the serial input is disconnected).
 * Bytes not accepted are the caller's to retry; see cfg->rx_ready.
 */
size_t uart_16550_receive(struct uart_16550 *uart, const void *buf, size_t len);

/*
 * uart_16550_rx_room - how many bytes uart_16550_receive() would accept now.
 * When it returns 0, cfg->rx_ready will be called once room appears.
 */
size_t uart_16550_rx_room(struct uart_16550 *uart);

/* uart_16550_save - copy the guest-visible state into @state. */
void uart_16550_save(struct uart_16550 *uart, struct uart_16550_state *state);

/*
 * uart_16550_restore - replace the guest-visible state with @state after
 * checking it (reserved bits clear, FIFO indices in range) and update the
 * interrupt line. Returns 0, or -EINVAL and leaves the device unchanged.
 */
int uart_16550_restore(struct uart_16550 *uart, const struct uart_16550_state *state)
    __attribute__((warn_unused_result));

/*
 * The UART as a device of the lifecycle layer (core/device.h); dev is a
 * struct uart_16550 *. It has no threads (the console input that feeds it
 * is a device of its own, backends/console_in.h). State version 1 is
 *
 *   u8 IER, LCR, MCR, LSR (error bits), MSR, SCR, DLL, DLM, FCR (as kept)
 *   u8 THR-empty interrupt pending (0 or 1)
 *   u8 RX FIFO count, then that many bytes, oldest first
 *
 * restore() refuses what uart_16550_restore() refuses, with a reason, and
 * leaves the line alone; reset() is a power-on reset of the registers.
 */
struct device_ops;
extern const struct device_ops uart_16550_device_ops;

#endif
