/* SPDX-License-Identifier: MIT */
#ifndef NESTVM_ARCH_X86_NESTED_H
#define NESTVM_ARCH_X86_NESTED_H

#include <linux/kvm.h>
#include <stdbool.h>
#include <stdint.h>

/*
 * "Expose virtualization extensions": whether a guest sees VMX (Intel SDM
 * vol. 3C ch. 23) or SVM (AMD APM vol. 2 ch. 15). Off by default.
 */

/*
 * nested_cpuid_apply - with @on false, hide VMX (CPUID.1:ECX[5]), SVM
 * (CPUID.80000001h:ECX[2]) and zero the SVM feature leaf 8000000Ah, whatever
 * the host allows. With @on true keep what KVM offers; returns -ENOTSUP if
 * KVM offers neither VMX nor SVM (the host cannot nest).
 */
int nested_cpuid_apply(struct kvm_cpuid2 *c, bool on) __attribute__((warn_unused_result));

/* Intel SDM vol. 3D appendix A: the VMX capability MSRs. */
#define MSR_IA32_VMX_BASIC 0x480
#define MSR_IA32_VMX_PROCBASED_CTLS3 0x492
#define NESTED_VMX_MSR_MAX (MSR_IA32_VMX_PROCBASED_CTLS3 - MSR_IA32_VMX_BASIC + 1)

/* The VMX capability MSR values a VM with nesting on gets on every vCPU. */
struct nested_vmx_msrs {
	unsigned int nr;
	struct kvm_msr_entry entries[NESTED_VMX_MSR_MAX];
};

/*
 * nested_vmx_msrs_select - keep the VMX capability MSRs (0x480-0x492) out of
 * KVM's feature-MSR list @indices (KVM_GET_MSR_FEATURE_INDEX_LIST). Returns
 * how many were kept in @out (values not yet read).
 */
unsigned int nested_vmx_msrs_select(const uint32_t *indices, unsigned int n,
                                    struct nested_vmx_msrs *out);

/*
 * nested_vmx_msrs_read - on an Intel host with nesting on: read KVM's VMX
 * capability MSRs from the system fd (KVM_GET_MSRS), so each vCPU gets the
 * same EPT/VPID/unrestricted-guest set as the CPUID it is given. Leaves
 * @out empty elsewhere. Returns 0 or -errno.
 */
int nested_vmx_msrs_read(int kvm_fd, struct nested_vmx_msrs *out)
    __attribute__((warn_unused_result));

#endif
