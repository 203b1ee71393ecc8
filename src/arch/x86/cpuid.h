/* SPDX-License-Identifier: MIT */
#ifndef NESTVM_ARCH_X86_CPUID_H
#define NESTVM_ARCH_X86_CPUID_H

#include <linux/kvm.h>
#include <stdbool.h>
#include <stdint.h>

/*
 * The CPUID a nestvm guest sees: KVM_GET_SUPPORTED_CPUID, then adjusted so
 * that topology matches --cpus, the hypervisor leaves are present and the
 * virtualization extensions are exposed only when asked (see nested.h).
 * Bit names follow Intel SDM vol. 2A (CPUID) and AMD APM vol. 3 appendix E.
 */

#define CPUID_1_ECX_VMX (1u << 5)
#define CPUID_1_ECX_X2APIC (1u << 21)
#define CPUID_1_ECX_TSC_DEADLINE (1u << 24)
#define CPUID_1_ECX_HYPERVISOR (1u << 31)
#define CPUID_1_EDX_HTT (1u << 28)
#define CPUID_80000001_ECX_CMP_LEGACY (1u << 1)
#define CPUID_80000001_ECX_SVM (1u << 2)
#define CPUID_80000001_ECX_TOPOEXT (1u << 22)

#define CPUID_LEAF_TOPOLOGY 0xb
#define CPUID_LEAF_TOPOLOGY_V2 0x1f
#define CPUID_LEAF_KVM_SIGNATURE 0x40000000
#define CPUID_LEAF_KVM_FEATURES 0x40000001
#define CPUID_LEAF_SVM 0x8000000a
#define CPUID_LEAF_AMD_TOPOLOGY 0x8000001e

/* Leaf 0xB/0x1F level types (ECX[15:8]). */
#define CPUID_TOPO_LEVEL_SMT 1
#define CPUID_TOPO_LEVEL_CORE 2

enum cpu_vendor { CPU_VENDOR_OTHER, CPU_VENDOR_INTEL, CPU_VENDOR_AMD };

struct cpuid_config {
	unsigned int nr_cpus; /* one package, nr_cpus cores, one thread each */
	bool nested;          /* expose VMX/SVM (nested.c decides how) */
	bool tsc_deadline;    /* the in-kernel LAPIC has the TSC-deadline timer */
};

/* cpuid_find - the entry for (function, index), or NULL. */
struct kvm_cpuid_entry2 *cpuid_find(struct kvm_cpuid2 *c, uint32_t function, uint32_t index);

/* cpuid_vendor - the vendor named by leaf 0. */
enum cpu_vendor cpuid_vendor(struct kvm_cpuid2 *c);

/*
 * cpuid_policy_build - derive the VM-wide CPUID from KVM's supported table.
 * Returns a new malloc'd table in *out, or -errno. @supported is not changed.
 */
int cpuid_policy_build(const struct kvm_cpuid2 *supported, const struct cpuid_config *cfg,
                       struct kvm_cpuid2 **out) __attribute__((warn_unused_result));

/* cpuid_policy_set_apic_id - patch the per-vCPU APIC id fields in place. */
void cpuid_policy_set_apic_id(struct kvm_cpuid2 *c, uint32_t apic_id);

#endif
