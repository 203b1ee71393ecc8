/* SPDX-License-Identifier: MIT */
#include "arch/x86/cpuid.h"

#include "arch/x86/nested.h"
#include "kvm/kvm.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Extra entries cpuid_policy_build may add (topology sub-leaves, KVM leaves). */
#define CPUID_POLICY_SPARE 8

struct kvm_cpuid_entry2 *cpuid_find(struct kvm_cpuid2 *c, uint32_t function, uint32_t index)
{
	for (uint32_t i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];

		if (e->function != function)
			continue;
		if (!(e->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) || e->index == index)
			return e;
	}
	return NULL;
}

enum cpu_vendor cpuid_vendor(struct kvm_cpuid2 *c)
{
	struct kvm_cpuid_entry2 *e = cpuid_find(c, 0, 0);
	char v[12];

	if (!e)
		return CPU_VENDOR_OTHER;
	memcpy(v, &e->ebx, 4);
	memcpy(v + 4, &e->edx, 4);
	memcpy(v + 8, &e->ecx, 4);
	if (!memcmp(v, "GenuineIntel", 12))
		return CPU_VENDOR_INTEL;
	if (!memcmp(v, "AuthenticAMD", 12) || !memcmp(v, "HygonGenuine", 12))
		return CPU_VENDOR_AMD;
	return CPU_VENDOR_OTHER;
}

/* Bits needed to number @n items (ceil(log2(n))). */
static uint32_t cpuid_order(uint32_t n)
{
	uint32_t bits = 0;

	while ((1u << bits) < n)
		bits++;
	return bits;
}

static void cpuid_remove(struct kvm_cpuid2 *c, uint32_t function)
{
	uint32_t i = 0;

	while (i < c->nent) {
		if (c->entries[i].function == function) {
			c->entries[i] = c->entries[c->nent - 1];
			c->nent--;
		} else {
			i++;
		}
	}
}

static struct kvm_cpuid_entry2 *cpuid_add(struct kvm_cpuid2 *c, uint32_t cap, uint32_t function,
                                          uint32_t index, uint32_t flags)
{
	struct kvm_cpuid_entry2 *e;

	if (c->nent >= cap)
		return NULL;
	e = &c->entries[c->nent++];
	memset(e, 0, sizeof(*e));
	e->function = function;
	e->index = index;
	e->flags = flags;
	return e;
}

/*
 * Leaf 0xB (and 0x1F): x2APIC topology, Intel SDM vol. 2A "CPUID—Extended
 * Topology Enumeration Leaf". Level 0 is SMT (one thread per core), level 1
 * the cores of the one package. EDX (the x2APIC id) is set per vCPU.
 */
static void cpuid_build_topology(struct kvm_cpuid2 *c, uint32_t cap, uint32_t leaf,
                                 uint32_t nr_cpus)
{
	struct kvm_cpuid_entry2 *e;
	const uint32_t flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX;

	cpuid_remove(c, leaf);
	e = cpuid_add(c, cap, leaf, 0, flags);
	if (e) {
		e->eax = 0;
		e->ebx = 1;
		e->ecx = CPUID_TOPO_LEVEL_SMT << 8;
	}
	e = cpuid_add(c, cap, leaf, 1, flags);
	if (e) {
		e->eax = cpuid_order(nr_cpus);
		e->ebx = nr_cpus;
		e->ecx = (CPUID_TOPO_LEVEL_CORE << 8) | 1;
	}
	e = cpuid_add(c, cap, leaf, 2, flags);
	if (e)
		e->ecx = 2;
}

int cpuid_policy_build(const struct kvm_cpuid2 *supported, const struct cpuid_config *cfg,
                       struct kvm_cpuid2 **out)
{
	uint32_t cap = supported->nent + CPUID_POLICY_SPARE;
	struct kvm_cpuid2 *c = kvm_cpuid_alloc(cap);
	struct kvm_cpuid_entry2 *e;
	uint32_t n = cfg->nr_cpus;
	int r;

	if (!c)
		return -ENOMEM;
	if (n == 0 || n > 255) {
		r = -EINVAL;
		goto err;
	}
	memcpy(c->entries, supported->entries, supported->nent * sizeof(c->entries[0]));
	c->nent = supported->nent;

	e = cpuid_find(c, 1, 0);
	if (e) {
		e->ecx |= CPUID_1_ECX_HYPERVISOR;
		/*
		 * KVM_GET_SUPPORTED_CPUID leaves the TSC-deadline timer out: KVM's
		 * LAPIC emulates it whatever the host has (KVM_CAP_TSC_DEADLINE_TIMER).
		 * Offered, a Linux guest skips calibrating its LAPIC timer against
		 * the PIT (100 ms of ticks, 1.3 s of an L2's boot in the lab).
		 */
		if (cfg->tsc_deadline)
			e->ecx |= CPUID_1_ECX_TSC_DEADLINE;
		else
			e->ecx &= ~CPUID_1_ECX_TSC_DEADLINE;
		e->ebx = (e->ebx & 0x0000ffff) | (n << 16);
		if (n > 1)
			e->edx |= CPUID_1_EDX_HTT;
		else
			e->edx &= ~CPUID_1_EDX_HTT;
	}
	/* Leaf 4 (Intel deterministic cache parameters): EAX[31:26] = cores - 1. */
	for (uint32_t i = 0; i < c->nent; i++) {
		e = &c->entries[i];
		if (e->function != 4)
			continue;
		e->eax &= 0x3ff;
		e->eax |= (n - 1) << 26;
		/* Caches at level 3 are shared by the package, the rest per core. */
		if (((e->eax >> 5) & 7) == 3)
			e->eax |= (n - 1) << 14;
	}
	if (cpuid_find(c, CPUID_LEAF_TOPOLOGY, 0) || cpuid_vendor(c) == CPU_VENDOR_INTEL)
		cpuid_build_topology(c, cap, CPUID_LEAF_TOPOLOGY, n);
	if (cpuid_find(c, CPUID_LEAF_TOPOLOGY_V2, 0))
		cpuid_build_topology(c, cap, CPUID_LEAF_TOPOLOGY_V2, n);

	/* AMD: 80000008h ECX[7:0] = cores - 1, [15:12] = APIC id bits for the core. */
	e = cpuid_find(c, 0x80000008, 0);
	if (e && cpuid_vendor(c) == CPU_VENDOR_AMD)
		e->ecx = (e->ecx & ~0xf0ffu) | (cpuid_order(n) << 12) | (n - 1);
	e = cpuid_find(c, 0x80000001, 0);
	if (e) {
		/* Leaf 8000001Eh would describe compute units; keep the topology in 80000008h. */
		e->ecx &= ~CPUID_80000001_ECX_TOPOEXT;
		if (n > 1 && cpuid_vendor(c) == CPU_VENDOR_AMD)
			e->ecx |= CPUID_80000001_ECX_CMP_LEGACY;
		else
			e->ecx &= ~CPUID_80000001_ECX_CMP_LEGACY;
	}
	cpuid_remove(c, CPUID_LEAF_AMD_TOPOLOGY);

	/* KVM's signature leaf: kvm-clock and the paravirt features live here. */
	if (!cpuid_find(c, CPUID_LEAF_KVM_SIGNATURE, 0)) {
		e = cpuid_add(c, cap, CPUID_LEAF_KVM_SIGNATURE, 0, 0);
		if (e) {
			e->eax = CPUID_LEAF_KVM_FEATURES;
			memcpy(&e->ebx, "KVMK", 4);
			memcpy(&e->ecx, "VMKV", 4);
			memcpy(&e->edx, "M\0\0\0", 4);
		}
	}

	r = nested_cpuid_apply(c, cfg->nested);
	if (r < 0)
		goto err;
	*out = c;
	return 0;
err:
	free(c);
	return r;
}

void cpuid_policy_set_apic_id(struct kvm_cpuid2 *c, uint32_t apic_id)
{
	for (uint32_t i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];

		if (e->function == 1)
			e->ebx = (e->ebx & 0x00ffffff) | (apic_id << 24);
		else if (e->function == CPUID_LEAF_TOPOLOGY ||
		         e->function == CPUID_LEAF_TOPOLOGY_V2)
			e->edx = apic_id;
	}
}
