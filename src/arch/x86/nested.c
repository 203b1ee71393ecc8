/* SPDX-License-Identifier: MIT */
#include "arch/x86/nested.h"

#include "arch/x86/cpuid.h"

#include "kvm/kvm.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

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

unsigned int nested_vmx_msrs_select(const uint32_t *indices, unsigned int n,
                                    struct nested_vmx_msrs *out)
{
	memset(out, 0, sizeof(*out));
	for (unsigned int i = 0; i < n && out->nr < NESTED_VMX_MSR_MAX; i++) {
		if (indices[i] >= MSR_IA32_VMX_BASIC && indices[i] <= MSR_IA32_VMX_PROCBASED_CTLS3)
			out->entries[out->nr++].index = indices[i];
	}
	return out->nr;
}

int nested_vmx_msrs_read(int kvm_fd, struct nested_vmx_msrs *out)
{
	struct kvm_msr_list probe = {.nmsrs = 0}, *list;
	struct kvm_msrs *msrs;
	int r;

	memset(out, 0, sizeof(*out));
	/* The first call fails with E2BIG and says how many there are. */
	r = kvm_ioctl(kvm_fd, KVM_GET_MSR_FEATURE_INDEX_LIST, &probe);
	if (r < 0 && r != -E2BIG)
		return r == -EINVAL || r == -ENOTTY ? 0 : r;
	list = calloc(1, sizeof(*list) + probe.nmsrs * sizeof(list->indices[0]));
	if (!list)
		return -ENOMEM;
	list->nmsrs = probe.nmsrs;
	r = kvm_ioctl(kvm_fd, KVM_GET_MSR_FEATURE_INDEX_LIST, list);
	if (r == 0)
		nested_vmx_msrs_select(list->indices, list->nmsrs, out);
	free(list);
	if (r < 0 || out->nr == 0)
		return r;
	msrs = calloc(1, sizeof(*msrs) + out->nr * sizeof(msrs->entries[0]));
	if (!msrs)
		return -ENOMEM;
	msrs->nmsrs = out->nr;
	memcpy(msrs->entries, out->entries, out->nr * sizeof(out->entries[0]));
	r = kvm_ioctl(kvm_fd, KVM_GET_MSRS, msrs);
	if (r >= 0) {
		/* KVM stops at the first MSR it cannot read: keep what it returned. */
		out->nr = (unsigned int)r;
		memcpy(out->entries, msrs->entries, out->nr * sizeof(out->entries[0]));
		r = 0;
	}
	free(msrs);
	return r;
}
