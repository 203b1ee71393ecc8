/* SPDX-License-Identifier: MIT */
/*
 * Unit tests: the CPUID policy and the nested exposure switch, on CPUID
 * tables shaped like KVM_GET_SUPPORTED_CPUID of an AMD EPYC host and an Intel
 * Xeon host with nesting enabled (the relevant leaves only).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "arch/x86/cpuid.h"
#include "arch/x86/nested.h"
#include "kvm/kvm.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define IDX KVM_CPUID_FLAG_SIGNIFCANT_INDEX

static const struct kvm_cpuid_entry2 amd_host[] = {
    {.function = 0, .eax = 0x10, .ebx = 0x68747541, .ecx = 0x444d4163, .edx = 0x69746e65},
    {.function = 1, .eax = 0x00a00f11, .ebx = 0x00000800, .ecx = 0xf6d83203, .edx = 0x178bfbff},
    {.function = 0x40000000, .eax = 0x40000001, .ebx = 0x4b4d564b, .ecx = 0x564b4d56, .edx = 0x4d},
    {.function = 0x40000001, .eax = 0x01007afb},
    {.function = 0x80000000, .eax = 0x80000021},
    {.function = 0x80000001, .ecx = 0x75c237ff, .edx = 0x2fd3fbff}, /* SVM, TOPOEXT set */
    {.function = 0x80000008, .eax = 0x3030, .ecx = 0x0000703f},
    {.function = 0x8000000a, .eax = 0x1, .ebx = 0x8000, .edx = 0x0001b6bf}, /* NP, NRIPS... */
    {.function = 0x8000001e, .ebx = 0x100, .ecx = 0x0},
};

static const struct kvm_cpuid_entry2 intel_host[] = {
    {.function = 0, .eax = 0x1b, .ebx = 0x756e6547, .ecx = 0x6c65746e, .edx = 0x49656e69},
    {.function = 1, .eax = 0x000606a6, .ebx = 0x00000800, .ecx = 0xfffa3223, .edx = 0x0f8bfbff},
    {.function = 4, .index = 0, .flags = IDX, .eax = 0x1c004121},
    {.function = 4, .index = 3, .flags = IDX, .eax = 0x1c03c163},
    {.function = 0xb, .index = 0, .flags = IDX, .eax = 1, .ebx = 2, .ecx = 0x100},
    {.function = 0xb, .index = 1, .flags = IDX, .eax = 7, .ebx = 64, .ecx = 0x201},
    {.function = 0x80000000, .eax = 0x80000008},
    {.function = 0x80000001, .ecx = 0x121, .edx = 0x2c100800},
    {.function = 0x80000008, .eax = 0x3030},
};

static const struct kvm_cpuid_entry2 no_virt_host[] = {
    {.function = 0, .eax = 0x10, .ebx = 0x68747541, .ecx = 0x444d4163, .edx = 0x69746e65},
    {.function = 1, .ecx = 0x80000000},
    {.function = 0x80000001, .ecx = 0x1},
};

static struct kvm_cpuid2 *table(const struct kvm_cpuid_entry2 *e, unsigned int n)
{
	struct kvm_cpuid2 *c = kvm_cpuid_alloc(n);

	assert_non_null(c);
	memcpy(c->entries, e, n * sizeof(*e));
	return c;
}

#define TABLE(x) table(x, sizeof(x) / sizeof(x[0]))

static void test_amd_nested_off(void **state)
{
	struct kvm_cpuid2 *host = TABLE(amd_host), *c;
	struct cpuid_config cfg = {.nr_cpus = 4, .nested = false};

	(void)state;
	assert_int_equal(cpuid_vendor(host), CPU_VENDOR_AMD);
	assert_int_equal(cpuid_policy_build(host, &cfg, &c), 0);
	assert_false(cpuid_find(c, 0x80000001, 0)->ecx & CPUID_80000001_ECX_SVM);
	assert_int_equal(cpuid_find(c, 0x8000000a, 0)->eax, 0);
	assert_int_equal(cpuid_find(c, 0x8000000a, 0)->edx, 0);
	assert_true(cpuid_find(c, 1, 0)->ecx & CPUID_1_ECX_HYPERVISOR);
	assert_int_equal((cpuid_find(c, 1, 0)->ebx >> 16) & 0xff, 4);
	assert_true(cpuid_find(c, 1, 0)->edx & CPUID_1_EDX_HTT);
	/* 80000008h: 4 cores, 2 APIC-id bits; no 8000001Eh, no TOPOEXT. */
	assert_int_equal(cpuid_find(c, 0x80000008, 0)->ecx & 0xff, 3);
	assert_int_equal((cpuid_find(c, 0x80000008, 0)->ecx >> 12) & 0xf, 2);
	assert_null(cpuid_find(c, 0x8000001e, 0));
	assert_false(cpuid_find(c, 0x80000001, 0)->ecx & CPUID_80000001_ECX_TOPOEXT);
	/* The KVM signature leaf survives. */
	assert_int_equal(cpuid_find(c, CPUID_LEAF_KVM_SIGNATURE, 0)->ebx, 0x4b4d564b);
	/* The host table is untouched. */
	assert_true(cpuid_find(host, 0x80000001, 0)->ecx & CPUID_80000001_ECX_SVM);

	cpuid_policy_set_apic_id(c, 3);
	assert_int_equal(cpuid_find(c, 1, 0)->ebx >> 24, 3);
	free(c);
	free(host);
}

static void test_amd_nested_on(void **state)
{
	struct kvm_cpuid2 *host = TABLE(amd_host), *c;
	struct cpuid_config cfg = {.nr_cpus = 1, .nested = true};

	(void)state;
	assert_int_equal(cpuid_policy_build(host, &cfg, &c), 0);
	assert_true(cpuid_find(c, 0x80000001, 0)->ecx & CPUID_80000001_ECX_SVM);
	assert_int_equal(cpuid_find(c, 0x8000000a, 0)->edx, 0x0001b6bf);
	assert_false(cpuid_find(c, 1, 0)->edx & CPUID_1_EDX_HTT);
	assert_false(cpuid_find(c, 1, 0)->ecx & CPUID_1_ECX_VMX);
	free(c);
	free(host);
}

/* The TSC-deadline timer is offered when the in-kernel LAPIC has it, never otherwise. */
static void test_tsc_deadline(void **state)
{
	struct kvm_cpuid2 *host = TABLE(amd_host), *c;
	struct cpuid_config cfg = {.nr_cpus = 1, .tsc_deadline = true};

	(void)state;
	assert_false(cpuid_find(host, 1, 0)->ecx & CPUID_1_ECX_TSC_DEADLINE);
	assert_int_equal(cpuid_policy_build(host, &cfg, &c), 0);
	assert_true(cpuid_find(c, 1, 0)->ecx & CPUID_1_ECX_TSC_DEADLINE);
	free(c);
	cpuid_find(host, 1, 0)->ecx |= CPUID_1_ECX_TSC_DEADLINE;
	cfg.tsc_deadline = false;
	assert_int_equal(cpuid_policy_build(host, &cfg, &c), 0);
	assert_false(cpuid_find(c, 1, 0)->ecx & CPUID_1_ECX_TSC_DEADLINE);
	free(c);
	free(host);
}

static void test_intel_topology_and_vmx(void **state)
{
	struct kvm_cpuid2 *host = TABLE(intel_host), *c;
	struct cpuid_config cfg = {.nr_cpus = 6, .nested = false};
	struct kvm_cpuid_entry2 *e;

	(void)state;
	assert_int_equal(cpuid_vendor(host), CPU_VENDOR_INTEL);
	assert_int_equal(cpuid_policy_build(host, &cfg, &c), 0);
	assert_false(cpuid_find(c, 1, 0)->ecx & CPUID_1_ECX_VMX);
	e = cpuid_find(c, 0xb, 0);
	assert_int_equal(e->ebx, 1);
	assert_int_equal((e->ecx >> 8) & 0xff, CPUID_TOPO_LEVEL_SMT);
	e = cpuid_find(c, 0xb, 1);
	assert_int_equal(e->ebx, 6);
	assert_int_equal(e->eax, 3); /* ceil(log2(6)) */
	assert_int_equal((e->ecx >> 8) & 0xff, CPUID_TOPO_LEVEL_CORE);
	assert_int_equal(cpuid_find(c, 0xb, 2)->ebx, 0);
	/* Leaf 4: cores per package - 1 in EAX[31:26]; the L3 is shared by all 6. */
	assert_int_equal(cpuid_find(c, 4, 0)->eax >> 26, 5);
	assert_int_equal((cpuid_find(c, 4, 0)->eax >> 14) & 0xfff, 0);
	assert_int_equal((cpuid_find(c, 4, 3)->eax >> 14) & 0xfff, 5);
	/* KVM leaves added when the host table lacks them. */
	assert_non_null(cpuid_find(c, CPUID_LEAF_KVM_SIGNATURE, 0));
	cpuid_policy_set_apic_id(c, 5);
	assert_int_equal(cpuid_find(c, 0xb, 1)->edx, 5);
	assert_int_equal(cpuid_find(c, 0xb, 0)->edx, 5);
	free(c);

	cfg.nested = true;
	assert_int_equal(cpuid_policy_build(host, &cfg, &c), 0);
	assert_true(cpuid_find(c, 1, 0)->ecx & CPUID_1_ECX_VMX);
	free(c);
	free(host);
}

static void test_host_without_virt(void **state)
{
	struct kvm_cpuid2 *host = TABLE(no_virt_host), *c = NULL;
	struct cpuid_config cfg = {.nr_cpus = 2, .nested = true};

	(void)state;
	assert_int_equal(cpuid_policy_build(host, &cfg, &c), -ENOTSUP);
	cfg.nested = false;
	assert_int_equal(cpuid_policy_build(host, &cfg, &c), 0);
	free(c);
	cfg.nr_cpus = 0;
	assert_int_equal(cpuid_policy_build(host, &cfg, &c), -EINVAL);
	cfg.nr_cpus = 256;
	assert_int_equal(cpuid_policy_build(host, &cfg, &c), -EINVAL);
	free(host);
}

/* Only the VMX capability MSRs (0x480-0x492) of KVM's feature-MSR list are kept. */
static void test_vmx_msr_selection(void **state)
{
	const uint32_t features[] = {0x10a, 0x480, 0x481, 0x48b, 0x48c,
	                             0x491, 0x492, 0x493, 0x345, 0xc0011029};
	struct nested_vmx_msrs m;

	(void)state;
	assert_int_equal(nested_vmx_msrs_select(features, 10, &m), 6);
	assert_int_equal(m.entries[0].index, 0x480);
	assert_int_equal(m.entries[5].index, 0x492);
	assert_int_equal(nested_vmx_msrs_select(features, 1, &m), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_amd_nested_off),         cmocka_unit_test(test_amd_nested_on),
	    cmocka_unit_test(test_intel_topology_and_vmx), cmocka_unit_test(test_host_without_virt),
	    cmocka_unit_test(test_vmx_msr_selection),      cmocka_unit_test(test_tsc_deadline),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
