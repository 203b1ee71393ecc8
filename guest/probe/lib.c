/* SPDX-License-Identifier: MIT */
/*
 * Small runtime for the probe: polled COM1 output, a printf subset
 * (%c %s %d %u %x %p, with l/ll/z, '0' flag and width), the string
 * functions the compiler may call, command line parameters and delays.
 */
#include "probe.h"

#define UART_THR 0
#define UART_IER 1
#define UART_DLL 0
#define UART_DLM 1
#define UART_FCR 2
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define UART_LCR_8N1 0x03
#define UART_LCR_DLAB 0x80
#define UART_FCR_ENABLE_CLEAR 0x07
#define UART_MCR_DTR_RTS 0x03
#define UART_LSR_THRE 0x20
#define UART_POLL_MAX 100000 /* give up waiting on a broken UART */
#define UART_FIFO_SIZE 16     /* a 16550A's transmit FIFO */

/* 115200 8N1, FIFOs on, no interrupts (16550 datasheet, register map). */
void uart_init(void)
{
	outb(PORT_COM1 + UART_IER, 0);
	outb(PORT_COM1 + UART_LCR, UART_LCR_DLAB);
	outb(PORT_COM1 + UART_DLL, 1);
	outb(PORT_COM1 + UART_DLM, 0);
	outb(PORT_COM1 + UART_LCR, UART_LCR_8N1);
	outb(PORT_COM1 + UART_FCR, UART_FCR_ENABLE_CLEAR);
	outb(PORT_COM1 + UART_MCR, UART_MCR_DTR_RTS);
}

/*
 * CPL0: polled output of n bytes. With the FIFOs on (uart_init), THRE says
 * the transmit FIFO is empty: 16 bytes go in per look at LSR, not one.
 * Every IN and OUT here is an exit, and under a guest hypervisor each is a
 * re-entry of the L1 by the lab's KVM, where the lab's own L1 triple fault
 * strikes (tests/lab/README.md).
 */
void uart_write_cpl0(const char *s, size_t n)
{
	while (n) {
		for (int i = 0; i < UART_POLL_MAX; i++)
			if (pio_inb(PORT_COM1 + UART_LSR) & UART_LSR_THRE)
				break;
		for (int k = 0; k < UART_FIFO_SIZE && n; k++, n--)
			pio_outb(PORT_COM1 + UART_THR, *s++);
	}
}

/* One system call per string rather than two per character. */
void uart_write(const char *s, size_t n)
{
	if (io_direct)
		uart_write_cpl0(s, n);
	else
		probe_syscall(SYS_WRITE, (long)s, (long)n);
}

struct out {
	char *buf;
	size_t size, len; /* len counts what would have been written */
};

static void out_char(struct out *o, char c)
{
	if (o->len + 1 < o->size)
		o->buf[o->len] = c;
	o->len++;
}

static void out_number(struct out *o, uint64_t v, unsigned int base, bool neg, int width, char pad)
{
	char tmp[24];
	int n = 0;

	do {
		tmp[n++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	if (neg)
		width--;
	if (neg && pad == '0')
		out_char(o, '-');
	for (; width > n; width--)
		out_char(o, pad);
	if (neg && pad != '0')
		out_char(o, '-');
	while (n)
		out_char(o, tmp[--n]);
}

/* Format into buf (always NUL-terminated); returns the untruncated length. */
int vformat(char *buf, size_t size, const char *fmt, va_list ap)
{
	struct out o = {buf, size, 0};

	for (; *fmt; fmt++) {
		char pad = ' ';
		int width = 0, lng = 0;

		if (*fmt != '%') {
			out_char(&o, *fmt);
			continue;
		}
		fmt++;
		if (*fmt == '0')
			pad = '0', fmt++;
		while (*fmt >= '0' && *fmt <= '9')
			width = width * 10 + (*fmt++ - '0');
		while (*fmt == 'l' || *fmt == 'z')
			lng++, fmt++;
		switch (*fmt) {
		case 'c':
			out_char(&o, (char)va_arg(ap, int));
			break;
		case 's': {
			const char *s = va_arg(ap, const char *);
			int n = s ? (int)strlen(s) : 6;

			for (; width > n; width--)
				out_char(&o, ' ');
			for (s = s ? s : "(null)"; *s; s++)
				out_char(&o, *s);
			break;
		}
		case 'd':
		case 'i': {
			int64_t v = lng ? va_arg(ap, int64_t) : va_arg(ap, int);

			out_number(&o, v < 0 ? -(uint64_t)v : (uint64_t)v, 10, v < 0, width, pad);
			break;
		}
		case 'u':
		case 'x': {
			uint64_t v = lng ? va_arg(ap, uint64_t) : va_arg(ap, unsigned int);

			out_number(&o, v, *fmt == 'u' ? 10 : 16, false, width, pad);
			break;
		}
		case 'p':
			out_char(&o, '0');
			out_char(&o, 'x');
			out_number(&o, (uintptr_t)va_arg(ap, void *), 16, false, width, pad);
			break;
		case '%':
			out_char(&o, '%');
			break;
		default: /* unknown conversion or end of string */
			out_char(&o, '%');
			if (!*fmt)
				fmt--;
			else
				out_char(&o, *fmt);
		}
	}
	if (size)
		buf[o.len < size ? o.len : size - 1] = '\0';
	return (int)o.len;
}

int format(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vformat(buf, size, fmt, ap);
	va_end(ap);
	return n;
}

/* Lines longer than the buffer are cut. */
void printf(const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	int n;

	va_start(ap, fmt);
	n = vformat(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	uart_write(buf, n < (int)sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

/*
 * String instructions, as a kernel's own: the byte loops they replace cost
 * test=net's sender ~1 us of a 1514-byte frame's copy into its transmit
 * buffer, enough to make the guest what paces a fast device (README,
 * "virtio-net"). Never on MMIO: only ordinary memory is copied here.
 */
void *memset(void *d, int c, size_t n)
{
	void *p = d;

	__asm__ volatile("rep stosb" : "+D"(p), "+c"(n) : "a"(c) : "memory");
	return d;
}

void *memcpy(void *d, const void *s, size_t n)
{
	void *p = d;

	__asm__ volatile("rep movsb" : "+D"(p), "+S"(s), "+c"(n) : : "memory");
	return d;
}

int memcmp(const void *a, const void *b, size_t n)
{
	const unsigned char *p = a, *q = b;

	for (; n; n--, p++, q++)
		if (*p != *q)
			return *p - *q;
	return 0;
}

size_t strlen(const char *s)
{
	size_t n = 0;

	while (s[n])
		n++;
	return n;
}

int strcmp(const char *a, const char *b)
{
	while (*a && *a == *b)
		a++, b++;
	return (unsigned char)*a - (unsigned char)*b;
}

/* The command line split into words, "key=value" or "flag". */
#define PARAMS_MAX 64
static char param_buf[BOOT_CMDLINE_MAX];
static const char *params[PARAMS_MAX];
static unsigned int nr_params;

void params_init(char *cmdline)
{
	char *p = param_buf;

	memcpy(param_buf, cmdline, BOOT_CMDLINE_MAX);
	param_buf[BOOT_CMDLINE_MAX - 1] = '\0';
	while (*p && nr_params < PARAMS_MAX) {
		while (*p == ' ')
			*p++ = '\0';
		if (!*p)
			break;
		params[nr_params++] = p;
		while (*p && *p != ' ')
			p++;
	}
	while (*p) /* words past PARAMS_MAX are ignored */
		*p++ = '\0';
}

/* The value of the last `key=value` on the command line ("" for `key`), or NULL. */
const char *param_get(const char *key)
{
	size_t n = strlen(key);
	const char *val = NULL;

	for (unsigned int i = 0; i < nr_params; i++) {
		const char *w = params[i];

		if (memcmp(w, key, n) != 0)
			continue;
		if (w[n] == '=')
			val = w + n + 1;
		else if (w[n] == '\0')
			val = "";
	}
	return val;
}

/* Parse a decimal or 0x-prefixed parameter; false if absent or malformed. */
bool param_u64(const char *key, uint64_t *out)
{
	const char *s = param_get(key);
	unsigned int base = 10;
	uint64_t v = 0;

	if (!s || !*s)
		return false;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
		base = 16, s += 2;
	if (!*s)
		return false;
	for (; *s; s++) {
		unsigned int d;

		if (*s >= '0' && *s <= '9')
			d = *s - '0';
		else if (base == 16 && (*s | 0x20) >= 'a' && (*s | 0x20) <= 'f')
			d = (*s | 0x20) - 'a' + 10;
		else
			return false;
		v = v * base + d;
	}
	*out = v;
	return true;
}

#define PM_TIMER_HZ 3579545ULL /* ACPI 6.5 §4.8.3.3 */

/*
 * Busy-wait at least `us` microseconds on the ACPI PM timer, or without
 * one on port 0x80 reads, each of which takes a microsecond or more.
 */
void delay_us(uint32_t us)
{
	static int have = -1;
	static uint16_t port;
	static uint32_t mask;

	if (have < 0) {
		bool ext;

		port = acpi_pm_timer_port(&ext);
		mask = ext ? 0xffffffffu : 0xffffffu;
		have = port != 0;
	}
	if (!have) {
		while (us--)
			inb(PORT_POST);
		return;
	}
	uint64_t ticks = us * PM_TIMER_HZ / 1000000 + 1;
	uint32_t start = inl(port) & mask;
	while (((inl(port) - start) & mask) < ticks)
		cpu_relax();
}
