/* SPDX-License-Identifier: MIT */
/*
 * test=cpuid [nested=on|off] [cpus=N]: what the monitor's CPUID policy shows
 * a guest (Intel SDM vol. 2A, CPUID; AMD APM vol. 3, appendix E).
 *
 * Checks the hypervisor bit; that leaf 1, leaf 0xB and the local APIC agree
 * on the boot processor's APIC ID; with nested=off that neither VMX nor SVM
 * is offered, with nested=on that one of them is; with cpus=N that leaf 1
 * and leaf 0xB describe one package of N logical processors.
 */
#include "probe.h"

#define CPUID_1_ECX_VMX (1u << 5)
#define CPUID_1_ECX_HYPERVISOR (1u << 31)
#define CPUID_1_EDX_APIC (1u << 9)
#define CPUID_1_EDX_HTT (1u << 28)
#define CPUID_80000001_ECX_SVM (1u << 2)
#define CPUID_B_LEVELS_MAX 8

static void regs_to_str(char *s, uint32_t a, uint32_t b, uint32_t c)
{
	memcpy(s, &a, 4);
	memcpy(s + 4, &b, 4);
	memcpy(s + 8, &c, 4);
	s[12] = '\0';
	for (int i = 0; i < 12; i++)
		if (s[i] && (s[i] < 0x20 || s[i] > 0x7e))
			s[i] = '?';
}

/*
 * Leaf 1 and leaf 0xB against each other, the local APIC and, if `cpus` is
 * not 0, an expected count of logical processors.
 */
static int check_topology(uint32_t max_leaf, uint64_t cpus, char *why, size_t size)
{
	struct cpuid_regs l1 = cpuid(1, 0);
	unsigned int apic_id = l1.ebx >> 24;
	unsigned int count1 = (l1.edx & CPUID_1_EDX_HTT) ? (l1.ebx >> 16) & 0xff : 1;
	unsigned int levels = 0, last_shift = 0, pkg = 0;
	unsigned int lapic_id = mmio_read32(XAPIC_BASE + XAPIC_ID) >> 24;

	printf("probe: cpuid: leaf 1: HTT %u, logical count %u, APIC ID %u; local APIC ID %u\n",
	       !!(l1.edx & CPUID_1_EDX_HTT), count1, apic_id, lapic_id);
	if ((l1.edx & CPUID_1_EDX_APIC) && lapic_id != apic_id) {
		format(why, size, "leaf 1 APIC ID %u != local APIC ID register %u", apic_id,
		       lapic_id);
		return PROBE_FAIL;
	}
	if (max_leaf >= 0xb && cpuid(0xb, 0).ebx != 0) {
		for (unsigned int i = 0; i < CPUID_B_LEVELS_MAX; i++) {
			struct cpuid_regs r = cpuid(0xb, i);
			unsigned int type = (r.ecx >> 8) & 0xff, shift = r.eax & 0x1f;

			if (type == 0)
				break;
			printf(
			    "probe: cpuid: leaf 0xb.%u: type %u shift %u count %u x2APIC ID %u\n",
			    i, type, shift, r.ebx & 0xffff, r.edx);
			if (shift < last_shift) {
				format(why, size, "leaf 0xb level %u shift %u below level %u's %u",
				       i, shift, i - 1, last_shift);
				return PROBE_FAIL;
			}
			if ((r.edx & 0xff) != apic_id && r.edx < 256) {
				format(why, size, "leaf 0xb x2APIC ID %u != leaf 1 APIC ID %u",
				       r.edx, apic_id);
				return PROBE_FAIL;
			}
			last_shift = shift;
			pkg = r.ebx & 0xffff;
			levels++;
		}
		if (levels && (1u << last_shift) < pkg) {
			format(why, size, "leaf 0xb: %u processors do not fit in %u ID bits", pkg,
			       last_shift);
			return PROBE_FAIL;
		}
		if (levels && cpus && pkg != cpus) {
			format(why, size, "leaf 0xb counts %u processors per package, cpus=%lu",
			       pkg, cpus);
			return PROBE_FAIL;
		}
	}
	if (cpus > 1 && count1 < cpus) {
		format(why, size, "leaf 1 addresses %u logical processors, cpus=%lu", count1, cpus);
		return PROBE_FAIL;
	}
	if (levels && count1 < pkg && pkg > 1) {
		format(why, size, "leaf 1 count %u below leaf 0xb's %u", count1, pkg);
		return PROBE_FAIL;
	}
	format(why, size, "topology: leaf 1 count %u, leaf 0xb %s%u per package", count1,
	       levels ? "" : "absent, ", levels ? pkg : 0);
	return PROBE_PASS;
}

int test_cpuid(void)
{
	struct cpuid_regs r = cpuid(0, 0);
	uint32_t max_leaf = r.eax, max_ext = cpuid(0x80000000, 0).eax;
	struct cpuid_regs l1 = cpuid(1, 0);
	bool hv = l1.ecx & CPUID_1_ECX_HYPERVISOR, vmx = l1.ecx & CPUID_1_ECX_VMX, svm = false;
	const char *nested = param_get("nested");
	char vendor[13], hv_sig[13] = "", topo[160] = "";
	uint32_t hv_max = 0;
	uint64_t cpus = 0;

	regs_to_str(vendor, r.ebx, r.edx, r.ecx);
	if (max_ext >= 0x80000001)
		svm = cpuid(0x80000001, 0).ecx & CPUID_80000001_ECX_SVM;
	if (hv) {
		struct cpuid_regs h = cpuid(0x40000000, 0);

		hv_max = h.eax;
		regs_to_str(hv_sig, h.ebx, h.ecx, h.edx);
	}
	printf("probe: cpuid: vendor \"%s\", max leaf 0x%x, max extended 0x%x, family/model/"
	       "stepping 0x%x\n",
	       vendor, max_leaf, max_ext, l1.eax);
	printf("probe: cpuid: hypervisor bit %u, 0x40000000: \"%s\" max 0x%x, VMX %u, SVM %u\n", hv,
	       hv_sig, hv_max, vmx, svm);
	struct cpuid_regs raw0 = cpuid_raw(0, 0), raw1 = cpuid_raw(1, 0);
	if (memcmp(&r, &raw0, sizeof(r)) != 0 || raw1.eax != l1.eax || raw1.ecx != l1.ecx)
		printf("probe: cpuid: note: CPUID at CPL3 answers differently (not intercepted); "
		       "the probe uses CPUID at CPL0\n");

	if (!hv)
		return probe_fail("hypervisor bit (CPUID.1:ECX[31]) clear");
	if (nested && strcmp(nested, "off") == 0 && (vmx || svm))
		return probe_fail("nested=off but VMX %u SVM %u offered", vmx, svm);
	if (nested && strcmp(nested, "on") == 0 && !vmx && !svm)
		return probe_fail("nested=on but neither VMX nor SVM offered");
	if (param_get("cpus") && !param_u64("cpus", &cpus))
		return probe_fail("bad cpus=%s", param_get("cpus"));
	if (check_topology(max_leaf, cpus, topo, sizeof(topo)) != PROBE_PASS)
		return probe_fail("%s", topo);
	return probe_pass("vendor %s, hypervisor \"%s\", VMX %u SVM %u%s%s", vendor, hv_sig, vmx,
	                  svm, topo[0] ? ", " : "", topo);
}
