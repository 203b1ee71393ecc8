/* SPDX-License-Identifier: MIT */
#ifndef PROBE_PROBE_H
#define PROBE_PROBE_H

/*
 * The probe guest: a freestanding x86-64 test kernel for nestvm. One boot
 * runs one test, named by `test=<name>` on the command line, prints
 * `probe: test=<name>: PASS|FAIL|SKIP <details>` on COM1 and writes the
 * status (PROBE_PASS/FAIL/SKIP) to the debug-exit port.
 *
 * All C code runs at CPL3 (see arch.h), except the exception report and
 * syscall_dispatch(), which run at CPL0.
 */

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arch.h"
#include "arch/x86/layout.h"
#include "core/exit_status.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIB ((uint64_t)1 << 20)
#define GIB ((uint64_t)1 << 30)

/*
 * Port I/O. The pio_*() functions are the instructions themselves, for CPL0
 * code; inb()..outl() go through probe_syscall() unless io_direct is set (by the
 * CPL0 exception report, which must not use it).
 */
extern bool io_direct;

/* Run SYS_* `nr` at CPL0: ud2 is the probe's system call (head.S, ud_entry). */
static inline long probe_syscall(long nr, long a, long b)
{
	long ret;
	__asm__ volatile("ud2"
	                 : "=a"(ret), "+D"(nr), "+S"(a), "+d"(b)
	                 :
	                 : "rcx", "r8", "r9", "r10", "r11", "memory");
	return ret;
}

#define PIO_FUNCTIONS(sfx, type, reg)                                                              \
	static inline void pio_out##sfx(uint16_t port, type v)                                     \
	{                                                                                          \
		__asm__ volatile("out" #sfx " %0, %1" : : "a"(v), "Nd"(port));                     \
	}                                                                                          \
	static inline type pio_in##sfx(uint16_t port)                                              \
	{                                                                                          \
		type v;                                                                            \
		__asm__ volatile("in" #sfx " %1, %0" : "=a"(v) : "Nd"(port));                      \
		return v;                                                                          \
	}                                                                                          \
	static inline void out##sfx(uint16_t port, type v)                                         \
	{                                                                                          \
		if (io_direct)                                                                     \
			pio_out##sfx(port, v);                                                     \
		else                                                                               \
			probe_syscall(SYS_OUT##reg, port, v);                                      \
	}                                                                                          \
	static inline type in##sfx(uint16_t port)                                                  \
	{                                                                                          \
		return io_direct ? pio_in##sfx(port) : (type)probe_syscall(SYS_IN##reg, port, 0);  \
	}

PIO_FUNCTIONS(b, uint8_t, B)
PIO_FUNCTIONS(w, uint16_t, W)
PIO_FUNCTIONS(l, uint32_t, L)

/*
 * CPUID. cpuid_raw() is the instruction; cpuid() runs it at CPL0, since
 * KVM's PVM mode lets CPUID at CPL3 reach the host CPU unintercepted.
 */
struct cpuid_regs {
	uint32_t eax, ebx, ecx, edx;
};

static inline struct cpuid_regs cpuid_raw(uint32_t leaf, uint32_t subleaf)
{
	struct cpuid_regs r;
	__asm__ volatile("cpuid"
	                 : "=a"(r.eax), "=b"(r.ebx), "=c"(r.ecx), "=d"(r.edx)
	                 : "a"(leaf), "c"(subleaf));
	return r;
}

static inline struct cpuid_regs cpuid(uint32_t leaf, uint32_t subleaf)
{
	struct cpuid_regs r;

	if (io_direct)
		return cpuid_raw(leaf, subleaf);
	probe_syscall(SYS_CPUID, (uint64_t)subleaf << 32 | leaf, (long)&r);
	return r;
}

static inline uint32_t mmio_read32(uint64_t addr)
{
	return *(volatile uint32_t *)(uintptr_t)addr;
}

static inline void mmio_write32(uint64_t addr, uint32_t v)
{
	*(volatile uint32_t *)(uintptr_t)addr = v;
}

static inline void cpu_relax(void)
{
	__asm__ volatile("pause" ::: "memory");
}

/* The 64-bit TSS (Intel SDM vol. 3A §8.7): the stack for CPL3 -> CPL0. */
struct tss64 {
	uint32_t reserved0;
	uint64_t rsp[3];
	uint64_t reserved1;
	uint64_t ist[7];
	uint64_t reserved2;
	uint16_t reserved3;
	uint16_t iomap_base;
} __attribute__((packed));

/* What the boot protocol told us, copied out of the loader's structures. */
#define BOOT_RAM_MAX 64
#define BOOT_CMDLINE_MAX 4096

struct mem_range {
	uint64_t base, end; /* [base, end) */
};

struct boot_info {
	const char *protocol; /* "pvh" or "linux" */
	char cmdline[BOOT_CMDLINE_MAX];
	struct mem_range ram[BOOT_RAM_MAX];
	unsigned int nr_ram;
	unsigned int nr_map; /* memory map entries of all types */
	uint64_t rsdp;       /* 0 when the loader gave none */
};

extern struct boot_info boot;
extern char __image_start[], __image_end[];

/* lib.c: console, formatting, strings, command line parameters, delays. */
void uart_init(void);
void uart_write(const char *s, size_t n);
void uart_write_cpl0(const char *s, size_t n);
int vformat(char *buf, size_t size, const char *fmt, va_list ap);
int format(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strcmp(const char *a, const char *b);
void params_init(char *cmdline);
const char *param_get(const char *key);
bool param_u64(const char *key, uint64_t *out);
void delay_us(uint32_t us);

/* main.c: test results and exit. */
int probe_pass(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int probe_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int probe_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
__attribute__((noreturn)) void probe_exit(int status);
int paging_map_high(uint64_t base, uint64_t end);

/* test_smp.c: starting the APs (see arch.h, AP_SLOTS). */
struct smp_cpus {
	uint32_t bsp;       /* the BSP's local APIC ID */
	unsigned int count; /* CPUs in the MADT, the BSP included; all of them started */
};

/* Runs at CPL3 on an AP, with its slot (0 .. AP_SLOTS - 1); must not return. */
typedef void (*ap_entry_fn)(void *arg, unsigned int slot);

int smp_start(ap_entry_fn entry, void *arg, struct smp_cpus *cpus);

/* acpi.c */
struct acpi_header {
	char signature[4];
	uint32_t length;
	uint8_t revision;
	uint8_t checksum;
	char oem_id[6];
	char oem_table_id[8];
	uint32_t oem_revision;
	uint32_t creator_id;
	uint32_t creator_revision;
} __attribute__((packed));

const struct acpi_header *acpi_find_table(const char *signature);
uint16_t acpi_pm_timer_port(bool *ext32);

/* One function per test, each returning PROBE_PASS/FAIL/SKIP. */
int test_cpuid(void);
int test_mem(void);
int test_smp(void);
int test_uart(void);
int test_pci(void);
int test_poweroff(void);
int test_reboot(void);
int test_triplefault(void);
int test_idle(void);
int test_svm(void);
int test_vmx(void);
int test_vmmcall(void);
int test_memgen(void);

#endif
