/* SPDX-License-Identifier: MIT */
#include "arch/x86/nested.h"

#include "arch/x86/cpuid.h"

#include <errno.h>

int nested_cpuid_apply(struct kvm_cpuid2 *c, bool on)
{
	struct kvm_cpuid_entry2 *leaf1 = cpuid_find(c, 1, 0);
	struct kvm_cpuid_entry2 *ext1 = cpuid_find(c, 0x80000001, 0);
	struct kvm_cpuid_entry2 *svm = cpuid_find(c, CPUID_LEAF_SVM, 0);
	bool has_vmx = leaf1 && (leaf1->ecx & CPUID_1_ECX_VMX);
	bool has_svm = ext1 && (ext1->ecx & CPUID_80000001_ECX_SVM);

	if (on)
		return has_vmx || has_svm ? 0 : -ENOTSUP;
	if (leaf1)
		leaf1->ecx &= ~CPUID_1_ECX_VMX;
	if (ext1)
		ext1->ecx &= ~CPUID_80000001_ECX_SVM;
	if (svm)
		svm->eax = svm->ebx = svm->ecx = svm->edx = 0;
	return 0;
}
