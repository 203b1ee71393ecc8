/* SPDX-License-Identifier: MIT */
#ifndef NESTVM_ARCH_X86_ACPI_H
#define NESTVM_ARCH_X86_ACPI_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * The ACPI tables of a nestvm VM (ACPI 6.4, chapter 5.2).
 *
 * acpi_build() writes every table into one buffer that the monitor copies to
 * guest-physical LAYOUT_ACPI. The RSDP sits at offset 0, so Linux finds it
 * both through boot_params.acpi_rsdp_addr / hvm_start_info.rsdp_paddr and
 * by scanning 0xE0000-0xFFFFF on a 16-byte boundary. From there:
 *
 *   RSDP -> XSDT (and RSDT) -> FADT -> FACS
 *                                   -> DSDT  (\_S5, \_SB.PCI0, CPUs, COM1)
 *                           -> MADT (local APICs, I/O APIC, overrides)
 *                           -> MCFG (PCI ECAM)
 *
 * The tables describe the fixed platform of arch/x86/layout.h: the ACPI PM
 * registers at PORT_ACPI_PM1A_*, the SCI on IRQ_ACPI_SCI, the reset register
 * at PORT_RESET, the in-kernel I/O APIC and local APICs. Only what varies
 * between VMs is in struct acpi_config.
 */

/*
 * The MADT's Processor Local APIC structure holds an 8-bit APIC id and 0xff
 * is the broadcast id, so xAPIC ids run 0..254; the I/O APIC takes the id
 * after the last CPU, which leaves 254 CPUs. (More would need x2APIC
 * structures, ACPI 6.4 §5.2.12.12, and interrupt remapping.)
 */
#define ACPI_MAX_CPUS 254

struct acpi_config {
	unsigned int nr_cpus; /* local APIC ids 0..nr_cpus-1; 1..ACPI_MAX_CPUS */
	uint64_t ecam_base;   /* PCI ECAM of bus 0 (LAYOUT_PCI_ECAM), 1 MiB aligned */
	uint8_t ecam_end_bus; /* last bus the ECAM covers; 1 MiB of ECAM per bus */
	uint64_t mmio32_base; /* PCI BAR window below 4 GiB (LAYOUT_PCI_MMIO32) */
	uint64_t mmio32_size; /* 0 = none */
	uint64_t mmio64_base; /* PCI BAR window above 4 GiB */
	uint64_t mmio64_size; /* 0 = none */
};

/*
 * acpi_build - write the ACPI tables for @cfg into @buf.
 * @buf:  where to build; only the first (returned) bytes are written.
 * @size: bytes available at @buf.
 * @gpa:  guest-physical address @buf will be copied to; 16-byte aligned,
 *        and [gpa, gpa + size) must lie below 4 GiB (the RSDT and the FADT's
 *        32-bit pointers need it).
 * @cfg:  the VM's CPUs and PCI windows.
 *
 * The RSDP is at offset 0. Returns the number of bytes used, -EINVAL for a
 * bad @gpa, @size or @cfg, or -ENOSPC if the tables do not fit in @size (no
 * byte past @size is ever written).
 */
ssize_t acpi_build(void *buf, size_t size, uint64_t gpa, const struct acpi_config *cfg)
	__attribute__((warn_unused_result));

#endif
