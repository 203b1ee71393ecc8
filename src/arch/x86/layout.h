/* SPDX-License-Identifier: MIT */
#ifndef NESTVM_ARCH_X86_LAYOUT_H
#define NESTVM_ARCH_X86_LAYOUT_H

/*
 * The guest-physical and port layout of a nestvm x86-64 VM.
 *
 * RAM runs from 0 up to min(size, LAYOUT_LOWMEM_MAX); the rest of RAM is
 * placed at LAYOUT_HIGHMEM_BASE (4 GiB). Between them sits the PCI hole: a
 * 32-bit MMIO window for device BARs, the PCI ECAM and the interrupt
 * controllers.
 *
 *   0x00000000  real-mode IVT / BDA (RAM, left alone)
 *   0x00000500  GDT used for the 64-bit and PVH entries
 *   0x00006000  PVH hvm_start_info, then its memory map
 *   0x00007000  Linux boot_params ("zero page")
 *   0x00009000  identity page tables (PML4, PDPT, PDs for the first 4 GiB)
 *   0x00020000  kernel command line (up to LAYOUT_CMDLINE_MAX bytes)
 *   0x0009fc00  EBDA (reserved)
 *   0x000e0000  ACPI tables, RSDP first (reserved)
 *   0x00100000  kernel image
 *   ...         initrd, as high in low RAM as it fits
 *   0xc0000000  PCI 32-bit MMIO window (BARs)
 *   0xe0000000  PCI ECAM, bus 0 (MCFG)
 *   0xfec00000  IOAPIC (in-kernel)
 *   0xfee00000  local APIC (in-kernel)
 *   0x100000000 high RAM
 */

#define LAYOUT_GDT 0x500ULL
#define LAYOUT_PVH_START_INFO 0x6000ULL
#define LAYOUT_ZERO_PAGE 0x7000ULL
#define LAYOUT_PAGE_TABLES 0x9000ULL
#define LAYOUT_CMDLINE 0x20000ULL
#define LAYOUT_CMDLINE_MAX 0x10000ULL
#define LAYOUT_EBDA 0x9fc00ULL
#define LAYOUT_ACPI 0xe0000ULL
#define LAYOUT_ACPI_SIZE 0x20000ULL
#define LAYOUT_KERNEL 0x100000ULL

#define LAYOUT_LOWMEM_MAX 0xc0000000ULL
#define LAYOUT_PCI_MMIO32 0xc0000000ULL
#define LAYOUT_PCI_MMIO32_SIZE 0x20000000ULL
#define LAYOUT_PCI_ECAM 0xe0000000ULL
#define LAYOUT_PCI_ECAM_SIZE 0x100000ULL /* bus 0: 32 devices x 8 functions x 4 KiB */
#define LAYOUT_IOAPIC 0xfec00000ULL
#define LAYOUT_LAPIC 0xfee00000ULL
#define LAYOUT_HIGHMEM_BASE 0x100000000ULL
/* KVM on Intel needs three pages for a real-mode TSS and one identity map page. */
#define LAYOUT_KVM_TSS 0xfffbd000ULL
#define LAYOUT_KVM_IDENTITY_MAP 0xfffbc000ULL

/* Port I/O. */
#define PORT_I8042_DATA 0x60
#define PORT_I8042_CMD 0x64
#define PORT_RTC 0x70 /* index 0x70, data 0x71 */
#define PORT_POST 0x80
#define PORT_DEBUG_EXIT 0xf4 /* 4 bytes: a write ends the VM, value = exit status */
#define PORT_COM1 0x3f8
#define PORT_ACPI_PM1A_EVT 0x600 /* 4 bytes: status, enable */
#define PORT_ACPI_PM1A_CNT 0x604 /* 2 bytes */
#define PORT_ACPI_PM_TMR 0x608   /* 4 bytes */
#define PORT_PCI_CONFIG_ADDR 0xcf8
#define PORT_PCI_CONFIG_DATA 0xcfc
#define PORT_RESET 0xcf9 /* FADT reset register: write 0x06 */

/* Legacy IRQ (= GSI) numbers. */
#define IRQ_I8042_KBD 1
#define IRQ_COM1 4
#define IRQ_ACPI_SCI 9

/* CMOS byte where the RTC keeps the century (FADT CENTURY). */
#define RTC_CMOS_CENTURY 0x32

/* Sleep type nestvm puts in the DSDT's \_S5 package; PM1a_CNT.SLP_TYP. */
#define ACPI_S5_SLP_TYP 5

#endif
