/* SPDX-License-Identifier: MIT */
#ifndef PROBE_ARCH_H
#define PROBE_ARCH_H

/*
 * x86-64 constants shared by the probe's assembly (head.S) and its C code.
 *
 * The probe runs in one identity-mapped address space where every page is
 * user-accessible. CPL0 only loads the GDT, page tables, TSS and IDT register,
 * then drops to CPL3: on hosts that emulate CPL0 code instruction by
 * instruction, everything else (parsing, formatting, memory tests, MMIO)
 * runs natively at CPL3. Port I/O and the other privileged operations go
 * through a system call: `ud2`, whose #UD handler runs the call at CPL0.
 * (IOPL 3 would avoid the calls, and SYSCALL or `int $n` would be the usual
 * gates, but KVM's PVM mode honours none of them for a guest that is not
 * PVM-aware; it does deliver exceptions.)
 */

#define PROBE_LOAD_ADDR 0x100000 /* payload / ELF load address */

/* Boot paths, passed to probe_main() (and used by the AP path). */
#define BOOT_LINUX 1 /* Linux boot protocol, ESI/RSI = boot_params */
#define BOOT_PVH 2   /* PVH, EBX = hvm_start_info */
#define BOOT_AP 3    /* application processor started by the smp test */

/* GDT selectors. */
#define SEL_KCODE64 0x08
#define SEL_KDATA 0x10
#define SEL_UCODE32 0x18 /* unused */
#define SEL_UDATA 0x20
#define SEL_UCODE64 0x28
#define SEL_KCODE32 0x30
#define SEL_TSS 0x38
#define SEL_AP_TSS 0x48 /* AP slot N's TSS: SEL_AP_TSS + 16 * N */

/* Control registers and MSRs (Intel SDM vol. 3A §2.5, §2.2.1). */
#define CR0_PE (1 << 0)
#define CR0_PG (1 << 31)
#define CR4_PAE (1 << 5)
#define MSR_EFER 0xc0000080
#define EFER_LME (1 << 8)
#define RFLAGS_IF (1 << 9)
#define RFLAGS_FIXED (1 << 1)

/* Page table entry bits (SDM vol. 3A §4.5). */
#define PTE_P (1 << 0)
#define PTE_RW (1 << 1)
#define PTE_US (1 << 2)
#define PTE_PWT (1 << 3)
#define PTE_PCD (1 << 4)
#define PTE_PS (1 << 7)

/* Offsets into boot_params (Linux Documentation/arch/x86/zero-page.rst). */
#define BP_ACPI_RSDP_ADDR 0x070
#define BP_EXT_CMD_LINE_PTR 0x0c8
#define BP_E820_ENTRIES 0x1e8
#define BP_CMD_LINE_PTR 0x228
#define BP_E820_TABLE 0x2d0
#define BP_E820_MAX 128

/* Offsets into struct hvm_start_info (Xen public/arch-x86/hvm/start_info.h). */
#define PVH_MAGIC_VALUE 0x336ec578
#define PVH_CMDLINE 24

/*
 * The local APIC at its architectural default base (which QEMU and nestvm
 * keep), and its ID register; the APs read it before the MADT is at hand.
 */
#define XAPIC_BASE 0xfee00000
#define XAPIC_ID 0x20

/* Page the AP trampoline is copied to; the SIPI vector is its page number. */
#define AP_TRAMPOLINE 0x8000

/*
 * APs that run C code at CPL3 (smp_start() with an entry function) take a
 * slot each, in the order they check in: a TSS (its descriptor at
 * SEL_AP_TSS + 16 * slot) and a kernel and a user stack of their own. APs
 * past AP_SLOTS check in and halt.
 */
#define AP_SLOTS 16
#define AP_KSTACK_SHIFT 12 /* 4 KiB: exceptions and system calls */
#define AP_USTACK_SHIFT 13 /* 8 KiB */

/*
 * PROBE_PASS (core/exit_status.h), which head.S writes for test=exit; that
 * header has C in it, so the assembler gets this copy, checked in main.c.
 */
#define FAST_EXIT_STATUS 0

/* System call numbers (RDI), see syscall_dispatch(). */
#define SYS_HALT 1        /* cli; hlt forever */
#define SYS_FLUSH_TLB 2   /* reload CR3 */
#define SYS_TRIPLEFAULT 3 /* load an empty IDT and fault; a 1: triple_fault_pf, 2: _cr3 */
#define SYS_WRITE 4       /* console output: RSI = buffer, RDX = length */
#define SYS_INB 5         /* RSI = port; returns the value */
#define SYS_INW 6
#define SYS_INL 7
#define SYS_OUTB 8 /* RSI = port, RDX = value */
#define SYS_OUTW 9
#define SYS_OUTL 10
#define SYS_CPUID 11 /* RSI = subleaf << 32 | leaf, RDX = struct cpuid_regs * */
#define SYS_RDMSR 12 /* RSI = MSR, RDX = uint64_t *; returns FAULT_NONE or the vector */
#define SYS_WRMSR 13 /* RSI = MSR, RDX = value; returns FAULT_NONE or the vector */
#define SYS_CALL 14  /* RSI = long (*)(long), RDX = its argument; returns its value */

/*
 * What a CPL0 instruction listed in the exception table (head.S, __ex_table)
 * returns in RAX when it did not fault; when it faults, execution resumes at
 * the entry's fixup with RAX = the exception vector.
 */
#define FAULT_NONE (-1)

#endif
