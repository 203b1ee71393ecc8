/* SPDX-License-Identifier: MIT */
#ifndef NESTVM_ARCH_X86_BOOT_H
#define NESTVM_ARCH_X86_BOOT_H

#include "core/guest_mem.h"

#include <stddef.h>
#include <stdint.h>

/*
 * Loading a kernel into guest memory and describing the machine to it.
 *
 * Two entries are supported, neither runs real-mode code:
 *  - a Linux bzImage through its 64-bit entry (Documentation/arch/x86/boot.rst,
 *    "64-bit Boot Protocol"): long mode, identity-mapped page tables, RSI =
 *    boot_params;
 *  - an ELF image with a PVH entry note (Xen's XEN_ELFNOTE_PHYS32_ENTRY, as
 *    Linux's vmlinux carries): 32-bit protected mode, paging off, EBX =
 *    hvm_start_info (xen/include/public/arch-x86/hvm/start_info.h).
 */

enum boot_entry_mode {
	BOOT_ENTRY_LONG64, /* bzImage 64-bit entry */
	BOOT_ENTRY_PVH32,  /* PVH: 32-bit protected mode */
};

struct boot_config {
	const char *kernel_path;
	const char *initrd_path; /* NULL: none */
	const char *cmdline;     /* NULL: empty */
	uint64_t rsdp_gpa;       /* ACPI RSDP for the guest */
};

struct boot_info {
	enum boot_entry_mode mode;
	uint64_t entry;      /* guest-physical entry point */
	uint64_t info_gpa;   /* boot_params or hvm_start_info */
	uint64_t kernel_end; /* end of the loaded image */
	uint64_t initrd_gpa, initrd_size;
};

/* e820 entry types (ACPI 6.5 §15 "System Address Map Interfaces"). */
#define E820_RAM 1
#define E820_RESERVED 2

struct e820_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
} __attribute__((packed));

#define E820_MAX_ENTRIES 8

/*
 * boot_build_e820 - the guest's memory map for @mem: RAM, the EBDA and ACPI
 * area reserved, the PCI ECAM reserved. Returns the number of entries.
 */
unsigned int boot_build_e820(const struct guest_mem *mem, struct e820_entry *map, unsigned int max);

/*
 * boot_load - load the kernel (format detected from its content), the
 * initrd and the command line into @mem and write the boot information.
 * Errors are logged with the file and the problem; returns 0 or -errno
 * (-ENOEXEC: not a kernel nestvm can boot, -E2BIG: does not fit).
 */
int boot_load(struct guest_mem *mem, const struct boot_config *cfg, struct boot_info *out)
    __attribute__((warn_unused_result));

/*
 * boot_setup_page_tables - identity-map the first 4 GiB with 2 MiB pages at
 * LAYOUT_PAGE_TABLES and write the boot GDT at LAYOUT_GDT. Returns 0 or
 * -EFAULT if guest memory is too small.
 */
int boot_setup_page_tables(struct guest_mem *mem) __attribute__((warn_unused_result));

/* GDT selectors the boot code loads (Linux's __BOOT_CS/__BOOT_DS). */
#define BOOT_GDT_CS64 0x10
#define BOOT_GDT_DS 0x18
#define BOOT_GDT_TSS 0x20
#define BOOT_GDT_CS32 0x28
#define BOOT_GDT_ENTRIES 6
#define BOOT_STACK_TOP 0x8ff0ULL

#endif
