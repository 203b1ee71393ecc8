/* SPDX-License-Identifier: MIT */
/*
 * test=vmmcall [iterations=N]: the cost of a hypercall from this guest to
 * the hypervisor under it (L0), for comparison with test=svm's L2 VMMCALL
 * handled by the probe as L1 (and test=vmx's L2 VMCALL).
 *
 * Runs N hypercalls at CPL0 — VMMCALL on AMD, VMCALL on Intel (AMD APM
 * vol. 3, VMMCALL; Intel SDM vol. 2B, VMCALL) — with RAX = a number that
 * KVM does not know (KVM answers -KVM_ENOSYS, -1000; any answer will do),
 * and prints the average and fastest round trip. SKIP if the instruction
 * raises #UD (a hypervisor that does not take hypercalls this way), and on
 * a PVM-style hypervisor unless force=on (see cpl3_cpuid_passes_through()).
 */
#include "probe.h"
#include "hv.h"

#define HC_UNKNOWN 0x7e57 /* no KVM_HC_* (include/uapi/linux/kvm_para.h) */

static bool use_vmmcall;

/* CPL0: one hypercall; FAULT_NONE and *ret, or the vector it raised. */
static long hypercall_cpl0(uint64_t nr, uint64_t *ret)
{
	uint64_t rax = nr;
	long vector = FAULT_NONE;

	if (use_vmmcall)
		__asm__ volatile("1: vmmcall\n\t"
		                 "jmp 3f\n"
		                 "2: movq %%rax, %1\n"
		                 "3:\n\t" EX_TABLE("1b", "2b")
		                 : "+a"(rax), "+r"(vector)
		                 :
		                 : "memory");
	else
		__asm__ volatile("1: vmcall\n\t"
		                 "jmp 3f\n"
		                 "2: movq %%rax, %1\n"
		                 "3:\n\t" EX_TABLE("1b", "2b")
		                 : "+a"(rax), "+r"(vector)
		                 :
		                 : "memory");
	*ret = rax;
	return vector;
}

struct vmmcall_probe {
	long vector;
	uint64_t ret;
};

static long vmmcall_probe_cpl0(long arg)
{
	struct vmmcall_probe *p = (struct vmmcall_probe *)arg;

	p->vector = hypercall_cpl0(HC_UNKNOWN, &p->ret);
	return 0;
}

/* CPL0: rt->iterations hypercalls, each timed. */
static long vmmcall_round_trips_cpl0(long arg)
{
	struct hv_round_trip *rt = (struct hv_round_trip *)arg;
	uint64_t start = rdtsc(), t0, t1, ret;

	for (rt->done = 0; rt->done < rt->iterations; rt->done++) {
		t0 = rdtsc();
		if (hypercall_cpl0(HC_UNKNOWN, &ret) != FAULT_NONE)
			break;
		t1 = rdtsc();
		hv_round_trip_add(rt, t1 - t0);
	}
	rt->total = rdtsc() - start;
	return 0;
}

/*
 * Whether CPUID at CPL3 reaches the CPU under the hypervisor (test=cpuid
 * notes the same). KVM's PVM mode does that, and its instruction emulator
 * answers a VMMCALL at the guest's CPL0 by patching the instruction and
 * running it again, forever (kvm_pvm on the development machines).
 */
static bool cpl3_cpuid_passes_through(void)
{
	struct cpuid_regs l0 = cpuid(0, 0), l1 = cpuid(1, 0);
	struct cpuid_regs r0 = cpuid_raw(0, 0), r1 = cpuid_raw(1, 0);

	return memcmp(&l0, &r0, sizeof(l0)) != 0 || l1.eax != r1.eax || l1.ecx != r1.ecx;
}

int test_vmmcall(void)
{
	enum hv_vendor vendor = hv_vendor();
	const char *insn;
	struct vmmcall_probe p;
	struct hv_round_trip rt = {0};
	uint64_t iterations;
	char timing[128];

	if (!hv_param_iterations(&iterations) || iterations == 0)
		return probe_fail("bad iterations=%s (1 or more)", param_get("iterations"));
	use_vmmcall = vendor != HV_VENDOR_INTEL;
	insn = use_vmmcall ? "vmmcall" : "vmcall";
	if (cpl3_cpuid_passes_through() &&
	    !(param_get("force") && !strcmp(param_get("force"), "on")))
		return probe_skip(
		    "CPUID at CPL3 is not intercepted: a PVM-style hypervisor (kvm_pvm), "
		    "whose emulation of a guest's %s never returns; force=on runs it",
		    insn);
	cpl0_call(vmmcall_probe_cpl0, (long)&p);
	if (p.vector == EXC_UD)
		return probe_skip("%s raises #UD here: the hypervisor takes no hypercalls", insn);
	if (p.vector != FAULT_NONE)
		return probe_fail("%s raised vector %ld", insn, p.vector);
	printf("probe: vmmcall: %s CPU, %s with rax 0x%x returns rax 0x%lx (%ld)\n",
	       hv_vendor_name(vendor), insn, HC_UNKNOWN, p.ret, (long)p.ret);

	rt.iterations = iterations;
	cpl0_call(vmmcall_round_trips_cpl0, (long)&rt);
	if (rt.done < rt.iterations)
		return probe_fail("%s %lu faulted", insn, rt.done + 1);
	hv_round_trip_report("vmmcall", use_vmmcall ? "l1 vmmcall" : "l1 vmcall", &rt, timing,
	                     sizeof(timing));
	return probe_pass("%s", timing);
}
