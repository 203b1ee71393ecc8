/* SPDX-License-Identifier: MIT */
#ifndef NESTVM_ARCH_X86_REGS_H
#define NESTVM_ARCH_X86_REGS_H

#include "arch/x86/boot.h"

#include <linux/kvm.h>
#include <stdbool.h>

/*
 * regs_boot_init - the boot vCPU's registers for @info's entry mode.
 * @sregs should hold what KVM_GET_SREGS returned (APIC base and the like
 * are kept); segments, control registers and EFER are overwritten.
 */
void regs_boot_init(const struct boot_info *info, struct kvm_regs *regs, struct kvm_sregs *sregs);

/* regs_format - one-line-per-group dump of a vCPU's state, for crash reports. */
void regs_format(const struct kvm_regs *regs, const struct kvm_sregs *sregs, char *buf, size_t len);

/* Initial MSR values for every vCPU; returns 0 or -errno. */
int msr_policy_init_vcpu(int vcpu_fd) __attribute__((warn_unused_result));

#define X86_CR0_PE (1ULL << 0)
#define X86_CR0_ET (1ULL << 4)
#define X86_CR0_PG (1ULL << 31)
#define X86_CR4_PAE (1ULL << 5)
#define X86_EFER_LME (1ULL << 8)
#define X86_EFER_LMA (1ULL << 10)
#define X86_EFER_SVME (1ULL << 12)
#define X86_CR4_VMXE (1ULL << 13)
#define X86_RFLAGS_RESERVED1 (1ULL << 1)
#define X86_RESET_RIP 0xfff0ULL		 /* Intel SDM vol. 3A §9.1.4 */
#define X86_RESET_CS_BASE 0xffff0000ULL

#define MSR_IA32_MISC_ENABLE 0x1a0
#define MSR_IA32_MISC_ENABLE_FAST_STRING (1ULL << 0)
#define MSR_MTRR_DEF_TYPE 0x2ff
#define MSR_MTRR_DEF_TYPE_E (1ULL << 11)
#define MTRR_TYPE_WRBACK 6

#endif
