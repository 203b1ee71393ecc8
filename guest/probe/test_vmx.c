/* SPDX-License-Identifier: MIT */
/*
 * test=vmx [nested=on|off] [ept=on|off] [iterations=N]: the probe as a VT-x
 * L1 hypervisor (Intel SDM vol. 3C ch. 24-29, vol. 3D appendix A-C); the
 * counterpart of test=svm.
 *
 * nested=off: PASS if VMX is hidden: CPUID.1:ECX[5] clear and setting
 * CR4.VMXE raises #GP (IA32_VMX_BASIC is read too, for information).
 *
 * Otherwise, with VMX offered: IA32_FEATURE_CONTROL locked with VMXON
 * outside SMX allowed, CR0/CR4 adjusted to IA32_VMX_CR{0,4}_FIXED{0,1}
 * (CR4.VMXE among them), a VMXON region and a VMCS with the revision from
 * IA32_VMX_BASIC, VMXON, VMCLEAR, VMPTRLD, then the controls — each
 * computed from its capability MSR (the TRUE_* ones when IA32_VMX_BASIC[55]
 * says so) as (wanted | allowed-0) & allowed-1, a wanted bit the CPU does
 * not allow failing the test — and the host and guest state. The L2 is the
 * same 64-bit code as test=svm's (hv.h), ending with VMCALL; it runs with
 * every exception, HLT, I/O (bitmaps: every port) and MSR (bitmap: every
 * MSR) causing a VM exit, and with EPT when the CPU offers 4-level EPT with
 * write-back memory and 2 MiB pages (ept=off: on the L1's page tables). The
 * EPT maps the first GiB 1:1 except the L2's buffer page (the decoy, as in
 * test=svm). Each exit is checked; VMLAUNCH, then VMRESUME; the round trip
 * of an L2 VMCALL is timed as for SVM; VMCLEAR and VMXOFF at the end.
 *
 * On AMD: SKIP (VT-x is Intel's). Without VMX: SKIP, or FAIL with nested=on.
 *
 * Not yet run anywhere: the development machines' KVM (kvm_pvm) offers no
 * VMX, QEMU's TCG does not emulate VT-x, and the lab is AMD. Written against
 * the SDM; expect a first run on an Intel host with nested VMX to need fixes.
 */
#include "probe.h"
#include "hv.h"

#define CPUID_1_ECX_VMX (1u << 5)

#define FEATURE_CONTROL_LOCKED (1u << 0)
#define FEATURE_CONTROL_VMXON_OUTSIDE_SMX (1u << 2)

/* Capability MSRs (SDM vol. 3D, appendix A). */
#define MSR_IA32_VMX_PINBASED_CTLS 0x481
#define MSR_IA32_VMX_PROCBASED_CTLS 0x482
#define MSR_IA32_VMX_EXIT_CTLS 0x483
#define MSR_IA32_VMX_ENTRY_CTLS 0x484
#define MSR_IA32_VMX_CR0_FIXED0 0x486
#define MSR_IA32_VMX_CR0_FIXED1 0x487
#define MSR_IA32_VMX_CR4_FIXED0 0x488
#define MSR_IA32_VMX_CR4_FIXED1 0x489
#define MSR_IA32_VMX_PROCBASED_CTLS2 0x48b
#define MSR_IA32_VMX_EPT_VPID_CAP 0x48c
#define MSR_IA32_VMX_TRUE_PINBASED_CTLS 0x48d
#define MSR_IA32_VMX_TRUE_PROCBASED_CTLS 0x48e
#define MSR_IA32_VMX_TRUE_EXIT_CTLS 0x48f
#define MSR_IA32_VMX_TRUE_ENTRY_CTLS 0x490

#define VMX_BASIC_REVISION(b) ((uint32_t)(b)&0x7fffffff)
#define VMX_BASIC_SIZE(b) ((uint32_t)((b) >> 32) & 0x1fff)
#define VMX_BASIC_MEMTYPE(b) ((uint32_t)((b) >> 50) & 0xf)
#define VMX_BASIC_TRUE_CTLS (1ULL << 55)

#define EPT_CAP_WALK_4 (1ULL << 6)
#define EPT_CAP_WB (1ULL << 14)
#define EPT_CAP_2MB (1ULL << 16)

/* Execution, exit and entry controls (SDM vol. 3C §25.6-25.8). */
#define PROC_HLT_EXITING (1u << 7)
#define PROC_USE_IO_BITMAPS (1u << 25)
#define PROC_USE_MSR_BITMAPS (1u << 28)
#define PROC_ACTIVATE_SECONDARY (1u << 31)
#define PROC2_ENABLE_EPT (1u << 1)
#define EXIT_HOST_ADDR_SPACE_SIZE (1u << 9)
#define EXIT_SAVE_EFER (1u << 20)
#define EXIT_LOAD_EFER (1u << 21)
#define ENTRY_IA32E_MODE_GUEST (1u << 9)
#define ENTRY_LOAD_EFER (1u << 15)

/* VMCS field encodings (SDM vol. 3D, appendix B). */
enum vmcs_field {
	GUEST_ES_SELECTOR = 0x0800,
	GUEST_CS_SELECTOR = 0x0802,
	GUEST_SS_SELECTOR = 0x0804,
	GUEST_DS_SELECTOR = 0x0806,
	GUEST_FS_SELECTOR = 0x0808,
	GUEST_GS_SELECTOR = 0x080a,
	GUEST_LDTR_SELECTOR = 0x080c,
	GUEST_TR_SELECTOR = 0x080e,
	HOST_ES_SELECTOR = 0x0c00,
	HOST_CS_SELECTOR = 0x0c02,
	HOST_SS_SELECTOR = 0x0c04,
	HOST_DS_SELECTOR = 0x0c06,
	HOST_FS_SELECTOR = 0x0c08,
	HOST_GS_SELECTOR = 0x0c0a,
	HOST_TR_SELECTOR = 0x0c0c,
	IO_BITMAP_A = 0x2000,
	IO_BITMAP_B = 0x2002,
	MSR_BITMAP = 0x2004,
	VM_EXIT_MSR_STORE_ADDR = 0x2006,
	VM_EXIT_MSR_LOAD_ADDR = 0x2008,
	VM_ENTRY_MSR_LOAD_ADDR = 0x200a,
	TSC_OFFSET = 0x2010,
	EPT_POINTER = 0x201a,
	GUEST_PHYSICAL_ADDRESS = 0x2400,
	VMCS_LINK_POINTER = 0x2800,
	GUEST_IA32_DEBUGCTL = 0x2802,
	GUEST_IA32_EFER = 0x2806,
	HOST_IA32_EFER = 0x2c02,
	PIN_BASED_VM_EXEC_CONTROL = 0x4000,
	CPU_BASED_VM_EXEC_CONTROL = 0x4002,
	EXCEPTION_BITMAP = 0x4004,
	PAGE_FAULT_ERROR_CODE_MASK = 0x4006,
	PAGE_FAULT_ERROR_CODE_MATCH = 0x4008,
	CR3_TARGET_COUNT = 0x400a,
	VM_EXIT_CONTROLS = 0x400c,
	VM_EXIT_MSR_STORE_COUNT = 0x400e,
	VM_EXIT_MSR_LOAD_COUNT = 0x4010,
	VM_ENTRY_CONTROLS = 0x4012,
	VM_ENTRY_MSR_LOAD_COUNT = 0x4014,
	VM_ENTRY_INTR_INFO = 0x4016,
	SECONDARY_VM_EXEC_CONTROL = 0x401e,
	VM_INSTRUCTION_ERROR = 0x4400,
	VM_EXIT_REASON = 0x4402,
	VM_EXIT_INTR_INFO = 0x4404,
	VM_EXIT_INTR_ERROR_CODE = 0x4406,
	VM_EXIT_INSTRUCTION_LEN = 0x440c,
	GUEST_ES_LIMIT = 0x4800,
	GUEST_CS_LIMIT = 0x4802,
	GUEST_SS_LIMIT = 0x4804,
	GUEST_DS_LIMIT = 0x4806,
	GUEST_FS_LIMIT = 0x4808,
	GUEST_GS_LIMIT = 0x480a,
	GUEST_LDTR_LIMIT = 0x480c,
	GUEST_TR_LIMIT = 0x480e,
	GUEST_GDTR_LIMIT = 0x4810,
	GUEST_IDTR_LIMIT = 0x4812,
	GUEST_ES_AR = 0x4814,
	GUEST_CS_AR = 0x4816,
	GUEST_SS_AR = 0x4818,
	GUEST_DS_AR = 0x481a,
	GUEST_FS_AR = 0x481c,
	GUEST_GS_AR = 0x481e,
	GUEST_LDTR_AR = 0x4820,
	GUEST_TR_AR = 0x4822,
	GUEST_INTERRUPTIBILITY = 0x4824,
	GUEST_ACTIVITY_STATE = 0x4826,
	GUEST_SYSENTER_CS = 0x482a,
	HOST_IA32_SYSENTER_CS = 0x4c00,
	CR0_GUEST_HOST_MASK = 0x6000,
	CR4_GUEST_HOST_MASK = 0x6002,
	CR0_READ_SHADOW = 0x6004,
	CR4_READ_SHADOW = 0x6006,
	EXIT_QUALIFICATION = 0x6400,
	GUEST_CR0 = 0x6800,
	GUEST_CR3 = 0x6802,
	GUEST_CR4 = 0x6804,
	GUEST_ES_BASE = 0x6806,
	GUEST_CS_BASE = 0x6808,
	GUEST_SS_BASE = 0x680a,
	GUEST_DS_BASE = 0x680c,
	GUEST_FS_BASE = 0x680e,
	GUEST_GS_BASE = 0x6810,
	GUEST_LDTR_BASE = 0x6812,
	GUEST_TR_BASE = 0x6814,
	GUEST_GDTR_BASE = 0x6816,
	GUEST_IDTR_BASE = 0x6818,
	GUEST_DR7 = 0x681a,
	GUEST_RSP = 0x681c,
	GUEST_RIP = 0x681e,
	GUEST_RFLAGS = 0x6820,
	GUEST_PENDING_DBG_EXCEPTIONS = 0x6822,
	GUEST_SYSENTER_ESP = 0x6824,
	GUEST_SYSENTER_EIP = 0x6826,
	HOST_CR0 = 0x6c00,
	HOST_CR3 = 0x6c02,
	HOST_CR4 = 0x6c04,
	HOST_FS_BASE = 0x6c06,
	HOST_GS_BASE = 0x6c08,
	HOST_TR_BASE = 0x6c0a,
	HOST_GDTR_BASE = 0x6c0c,
	HOST_IDTR_BASE = 0x6c0e,
	HOST_IA32_SYSENTER_ESP = 0x6c10,
	HOST_IA32_SYSENTER_EIP = 0x6c12,
	HOST_RSP = VMCS_HOST_RSP,
	HOST_RIP = 0x6c16,
};

/* Basic exit reasons (SDM vol. 3D, appendix C). */
#define EXIT_REASON_EXCEPTION_NMI 0
#define EXIT_REASON_EXTERNAL_INTERRUPT 1
#define EXIT_REASON_TRIPLE_FAULT 2
#define EXIT_REASON_CPUID 10
#define EXIT_REASON_HLT 12
#define EXIT_REASON_VMCALL 18
#define EXIT_REASON_IO_INSTRUCTION 30
#define EXIT_REASON_MSR_READ 31
#define EXIT_REASON_MSR_WRITE 32
#define EXIT_REASON_INVALID_STATE 33
#define EXIT_REASON_MSR_LOAD_FAIL 34
#define EXIT_REASON_EPT_VIOLATION 48
#define EXIT_REASON_EPT_MISCONFIG 49
#define EXIT_REASON_ENTRY_FAILED (1u << 31)

/* I/O exit qualification (SDM vol. 3C §28.2.1, Table 28-5). */
#define IO_QUAL_SIZE_4 3
#define IO_QUAL_IN (1u << 3)
#define IO_QUAL_STRING (1u << 4)
#define IO_QUAL_PORT_SHIFT 16

/* Access rights (SDM vol. 3C §25.4.1, Table 25-2). */
#define VMX_AR_CODE64 0xa09b /* G, L, P, S, type 0xb */
#define VMX_AR_DATA 0xc093   /* G, D/B, P, S, type 3 */
#define VMX_AR_TSS64_BUSY 0x008b
#define VMX_AR_UNUSABLE (1u << 16)

/* EPT entries (SDM vol. 3C §29.3.2). */
#define EPT_RWX 0x7
#define EPT_MEMTYPE_WB (6u << 3)
#define EPT_LARGE (1u << 7)
#define EPTP_MEMTYPE_WB 6
#define EPTP_WALK_4 (3u << 3)

#define VMX_EXITS_MAX 5
#define VMCS_FIELDS_MAX 96

/* The pages the L1 gives the CPU, and the L2's memory (as in test_svm.c). */
static struct vmx_memory {
	uint32_t vmxon[1024];
	uint32_t vmcs[1024];
	uint8_t io_bitmap[2 * 4096]; /* A: ports 0-0x7fff, B: 0x8000-0xffff */
	uint8_t msr_bitmap[4096];
	uint64_t ept_pml4[512], ept_pdpt[512], ept_pd[512], ept_pt[512];
	uint64_t buf[HV_L2_BUF_QWORDS];
	uint64_t decoy[HV_L2_BUF_QWORDS];
	uint8_t l2_stack[4096];
} mem __attribute__((aligned(4096)));

#define PA(p) ((uint64_t)(uintptr_t)(p))
#define DECOY_BYTE 0xa5

/* What VMX setup does at CPL0, and how far it got. */
enum vmx_step {
	STEP_CR0,
	STEP_CR4,
	STEP_VMXON,
	STEP_VMCLEAR,
	STEP_VMPTRLD,
	STEP_VMWRITE,
	STEP_DONE,
};

struct vmx_setup {
	uint64_t cr0, cr4;
	unsigned int nr_fields;
	struct {
		uint32_t field;
		uint64_t value;
	} fields[VMCS_FIELDS_MAX];
	/* Results. */
	enum vmx_step step; /* the one that failed, or STEP_DONE */
	long vector;        /* the step's exception, or FAULT_NONE */
	uint64_t vm_error;  /* VM_INSTRUCTION_ERROR after a VMfailValid */
};

/* One entry into the L2 and what its exit said. */
struct vmx_vcpu {
	bool launched;
	uint64_t set_rip; /* not 0: VMWRITE GUEST_RIP first */
	long entry;       /* vmx_enter_cpl0(): 0, or 1/2 VMfailInvalid/Valid */
	uint64_t vm_error;
	uint64_t reason, qual, insn_len, rip, intr_info, intr_error, gpa;
};

static struct hv_gprs l2_gprs;
static struct vmx_vcpu vcpu;
static uint64_t expect_buf[HV_L2_BUF_QWORDS];
extern char vmx_exit_cpl0[];

/* VMX instructions; true on success (CF = ZF = 0, SDM vol. 3C §31.2). */
static inline bool vmwrite(uint64_t field, uint64_t value)
{
	bool ok;

	__asm__ volatile("vmwrite %2, %1; seta %0"
	                 : "=qm"(ok)
	                 : "r"(field), "rm"(value)
	                 : "cc", "memory");
	return ok;
}

static inline uint64_t vmread(uint64_t field)
{
	uint64_t value = 0;

	__asm__ volatile("vmread %1, %0" : "+rm"(value) : "r"(field) : "cc");
	return value;
}

#define VMX_PTR_INSN(name)                                                                         \
	static inline bool name(uint64_t pa)                                                       \
	{                                                                                          \
		bool ok;                                                                           \
		__asm__ volatile(#name " %1; seta %0" : "=qm"(ok) : "m"(pa) : "cc", "memory");     \
		return ok;                                                                         \
	}
VMX_PTR_INSN(vmclear)
VMX_PTR_INSN(vmptrld)

/* VMXON may fault (#GP: FEATURE_CONTROL, CR0/CR4 fixed bits; #UD: no CR4.VMXE). */
static long vmxon_safe(uint64_t pa, bool *ok)
{
	long vector = FAULT_NONE;
	uint8_t success = 0;

	__asm__ volatile("1: vmxon %2\n\t"
	                 "seta %1\n\t"
	                 "jmp 3f\n"
	                 "2: movq %%rax, %0\n"
	                 "3:\n\t" EX_TABLE("1b", "2b")
	                 : "+r"(vector), "+qm"(success)
	                 : "m"(pa)
	                 : "rax", "cc", "memory");
	*ok = success;
	return vector;
}

/* CPL0: CR0, CR4, VMXON, VMCLEAR, VMPTRLD, then every VMCS field. */
static long vmx_setup_cpl0(long arg)
{
	struct vmx_setup *s = (struct vmx_setup *)arg;
	bool ok;

	s->vector = FAULT_NONE;
	s->step = STEP_CR0;
	if ((s->vector = hv_write_cr0_safe_cpl0(s->cr0)) != FAULT_NONE)
		return -1;
	s->step = STEP_CR4;
	if ((s->vector = hv_write_cr4_safe_cpl0(s->cr4)) != FAULT_NONE)
		return -1;
	s->step = STEP_VMXON;
	if ((s->vector = vmxon_safe(PA(mem.vmxon), &ok)) != FAULT_NONE || !ok)
		return -1;
	s->step = STEP_VMCLEAR;
	if (!vmclear(PA(mem.vmcs)))
		return -1;
	s->step = STEP_VMPTRLD;
	if (!vmptrld(PA(mem.vmcs)))
		return -1;
	for (s->step = STEP_VMWRITE; s->nr_fields; s->nr_fields--) {
		unsigned int i = s->nr_fields - 1;

		if (!vmwrite(s->fields[i].field, s->fields[i].value)) {
			s->vm_error = vmread(VM_INSTRUCTION_ERROR);
			return -1;
		}
	}
	s->step = STEP_DONE;
	return 0;
}

/* CPL0: VMCLEAR, VMXOFF, and CR4 back to `arg`. */
static long vmx_teardown_cpl0(long arg)
{
	vmclear(PA(mem.vmcs));
	__asm__ volatile("vmxoff" ::: "cc", "memory");
	return hv_write_cr4_safe_cpl0(arg);
}

/* CPL0: fetch what the last exit reported. */
static void vmx_read_exit(struct vmx_vcpu *v)
{
	if (v->entry != 0) {
		v->vm_error = v->entry == 2 ? vmread(VM_INSTRUCTION_ERROR) : 0;
		return;
	}
	v->launched = true;
	v->reason = vmread(VM_EXIT_REASON);
	v->qual = vmread(EXIT_QUALIFICATION);
	v->insn_len = vmread(VM_EXIT_INSTRUCTION_LEN);
	v->rip = vmread(GUEST_RIP);
	v->intr_info = vmread(VM_EXIT_INTR_INFO);
	v->intr_error = vmread(VM_EXIT_INTR_ERROR_CODE);
	if ((v->reason & 0xffff) == EXIT_REASON_EPT_VIOLATION ||
	    (v->reason & 0xffff) == EXIT_REASON_EPT_MISCONFIG)
		v->gpa = vmread(GUEST_PHYSICAL_ADDRESS);
}

/* CPL0: one VMLAUNCH/VMRESUME of the current VMCS. */
static long vmx_run_cpl0(long unused)
{
	(void)unused;
	if (vcpu.set_rip && !vmwrite(GUEST_RIP, vcpu.set_rip)) {
		vcpu.entry = 2;
		vcpu.vm_error = vmread(VM_INSTRUCTION_ERROR);
		return 0;
	}
	vcpu.set_rip = 0;
	vcpu.entry = vmx_enter_cpl0(&l2_gprs, vcpu.launched);
	vmx_read_exit(&vcpu);
	return 0;
}

/* CPL0: rt->iterations round trips of the L2's VMCALL loop (hv_l2_vmx_loop). */
static long vmx_round_trips_cpl0(long arg)
{
	struct hv_round_trip *rt = (struct hv_round_trip *)arg;
	uint64_t start, t0, t1;

	rt->done = 0;
	vcpu.entry = 0;
	if (vcpu.set_rip && !vmwrite(GUEST_RIP, vcpu.set_rip)) {
		vcpu.entry = 2;
		vcpu.vm_error = vmread(VM_INSTRUCTION_ERROR);
		return 0;
	}
	vcpu.set_rip = 0;
	start = rdtsc();
	for (; rt->done < rt->iterations; rt->done++) {
		t0 = rdtsc();
		vcpu.entry = vmx_enter_cpl0(&l2_gprs, vcpu.launched);
		t1 = rdtsc();
		if (vcpu.entry != 0 || vmread(VM_EXIT_REASON) != EXIT_REASON_VMCALL)
			break;
		vcpu.launched = true;
		if (!vmwrite(GUEST_RIP, vmread(GUEST_RIP) + vmread(VM_EXIT_INSTRUCTION_LEN))) {
			vcpu.entry = 2;
			break;
		}
		hv_round_trip_add(rt, t1 - t0);
	}
	rt->total = rdtsc() - start;
	vmx_read_exit(&vcpu);
	return 0;
}

static const char *vmx_exit_name(uint64_t reason)
{
	switch (reason & 0xffff) {
	case EXIT_REASON_EXCEPTION_NMI:
		return "exception or NMI";
	case EXIT_REASON_EXTERNAL_INTERRUPT:
		return "external interrupt";
	case EXIT_REASON_TRIPLE_FAULT:
		return "triple fault";
	case EXIT_REASON_CPUID:
		return "CPUID";
	case EXIT_REASON_HLT:
		return "HLT";
	case EXIT_REASON_VMCALL:
		return "VMCALL";
	case EXIT_REASON_IO_INSTRUCTION:
		return "I/O instruction";
	case EXIT_REASON_MSR_READ:
		return "RDMSR";
	case EXIT_REASON_MSR_WRITE:
		return "WRMSR";
	case EXIT_REASON_INVALID_STATE:
		return "VM-entry failure: invalid guest state";
	case EXIT_REASON_MSR_LOAD_FAIL:
		return "VM-entry failure: MSR loading";
	case EXIT_REASON_EPT_VIOLATION:
		return "EPT violation";
	case EXIT_REASON_EPT_MISCONFIG:
		return "EPT misconfiguration";
	}
	return "?";
}

/* SDM vol. 3C §31.4, VM-instruction error numbers. */
static const char *vmx_error_name(uint64_t e)
{
	static const char *const names[] = {
	    [2] = "VMCLEAR with invalid physical address",
	    [3] = "VMCLEAR with VMXON pointer",
	    [4] = "VMLAUNCH with non-clear VMCS",
	    [5] = "VMRESUME with non-launched VMCS",
	    [7] = "VM entry with invalid control field(s)",
	    [8] = "VM entry with invalid host-state field(s)",
	    [9] = "VMPTRLD with invalid physical address",
	    [10] = "VMPTRLD with VMXON pointer",
	    [11] = "VMPTRLD with incorrect VMCS revision identifier",
	    [12] = "VMREAD/VMWRITE of an unsupported VMCS component",
	    [13] = "VMWRITE to a read-only VMCS component",
	    [15] = "VMXON in VMX root operation",
	    [26] = "VM entry with events blocked by MOV SS",
	};

	return e < ARRAY_SIZE(names) && names[e] ? names[e] : "?";
}

/* FAIL for an entry that failed or an exit that is not the one expected. */
static int vmx_unexpected(unsigned int n, uint32_t want)
{
	const struct vmx_vcpu *v = &vcpu;

	if (v->entry == 1)
		return probe_fail("entry %u: VM%s failed: VMfailInvalid (no current VMCS)", n,
		                  v->launched ? "RESUME" : "LAUNCH");
	if (v->entry == 2)
		return probe_fail("entry %u: VM%s failed: VM-instruction error %lu (%s)", n,
		                  v->launched ? "RESUME" : "LAUNCH", v->vm_error,
		                  vmx_error_name(v->vm_error));
	return probe_fail("exit %u: reason 0x%lx (%s), expected %u (%s); qualification 0x%lx, "
	                  "interruption info 0x%lx error 0x%lx, guest-physical 0x%lx, L2 rip 0x%lx",
	                  n, v->reason, vmx_exit_name(v->reason), want, vmx_exit_name(want),
	                  v->qual, v->intr_info, v->intr_error, v->gpa, v->rip);
}

/*
 * Run the L2's work (hv.h) and check each exit, as svm_run_work() does.
 */
static int vmx_run_work(uint64_t seed, uint64_t *result)
{
	static const uint32_t want[VMX_EXITS_MAX] = {
	    EXIT_REASON_IO_INSTRUCTION, EXIT_REASON_IO_INSTRUCTION, EXIT_REASON_IO_INSTRUCTION,
	    EXIT_REASON_HLT, EXIT_REASON_VMCALL};
	const uint64_t io_in =
	    IO_QUAL_SIZE_4 | IO_QUAL_IN | (uint64_t)HV_L2_PORT_SEED << IO_QUAL_PORT_SHIFT;
	const uint64_t io_out = IO_QUAL_SIZE_4 | (uint64_t)HV_L2_PORT_RESULT << IO_QUAL_PORT_SHIFT;
	uint64_t lo = 0, hi = 0;

	for (unsigned int n = 0; n < VMX_EXITS_MAX; n++) {
		cpl0_call(vmx_run_cpl0, 0);
		if (vcpu.entry != 0 || vcpu.reason != want[n])
			return vmx_unexpected(n + 1, want[n]);
		switch (n) {
		case 0:
			if ((vcpu.qual & 0xffff007f) != io_in)
				return probe_fail("exit 1: I/O qualification 0x%lx, expected 0x%lx "
				                  "(IN dword from port 0x%x)",
				                  vcpu.qual, io_in, HV_L2_PORT_SEED);
			l2_gprs.rax = seed; /* IN EAX zero-extends into RAX */
			break;
		case 1:
		case 2:
			if ((vcpu.qual & 0xffff007f) != io_out)
				return probe_fail(
				    "exit %u: I/O qualification 0x%lx, expected 0x%lx "
				    "(OUT dword to port 0x%x)",
				    n + 1, vcpu.qual, io_out, HV_L2_PORT_RESULT);
			*(n == 1 ? &lo : &hi) = l2_gprs.rax & 0xffffffff;
			break;
		case 4:
			if (l2_gprs.rax != HV_L2_DONE)
				return probe_fail("exit 5: VMCALL with rax 0x%lx, expected 0x%llx",
				                  l2_gprs.rax, HV_L2_DONE);
			break;
		}
		printf("probe: vmx: exit %u: %s, qualification 0x%lx, instruction length %lu\n",
		       n + 1, vmx_exit_name(vcpu.reason), vcpu.qual, vcpu.insn_len);
		vcpu.set_rip = vcpu.rip + vcpu.insn_len;
	}
	*result = hi << 32 | lo;
	return PROBE_PASS;
}

/* nested=off: VMX must be hidden and CR4.VMXE refused. */
static int vmx_check_hidden(bool vmx)
{
	struct hv_cpu_state cpu;
	uint64_t basic;
	long r;

	if (vmx)
		return probe_fail("nested=off, but CPUID.1:ECX[5] (VMX) is set");
	hv_cpu_state_read(&cpu);
	r = cpl0_call(hv_write_cr4_safe_cpl0, (long)(cpu.cr4 | CR4_VMXE));
	if (r == FAULT_NONE) {
		cpl0_call(hv_write_cr4_safe_cpl0, (long)cpu.cr4);
		return probe_fail("setting CR4.VMXE (CR4 0x%lx) raised no #GP although VMX is "
		                  "hidden",
		                  cpu.cr4);
	}
	if (r != EXC_GP)
		return probe_fail("setting CR4.VMXE raised vector %ld, expected #GP (13)", r);
	r = rdmsr_safe(MSR_IA32_VMX_BASIC, &basic);
	printf("probe: vmx: CPUID.1:ECX[5] clear; mov CR4 0x%lx | VMXE: #GP; rdmsr "
	       "IA32_VMX_BASIC: %s\n",
	       cpu.cr4,
	       r == EXC_GP       ? "#GP"
	       : r == FAULT_NONE ? "no fault"
	                         : "other fault");
	return probe_pass("VMX hidden: CPUID.1:ECX[5] clear, setting CR4.VMXE raises #GP");
}

struct vmx_caps {
	uint64_t basic, pin, proc, proc2, exit, entry, ept;
	uint64_t cr0_fixed0, cr0_fixed1, cr4_fixed0, cr4_fixed1;
};

/* The capability MSRs; PROBE_PASS, or PROBE_FAIL naming one that faulted. */
static int vmx_caps_read(struct vmx_caps *c)
{
	bool true_ctls;

	memset(c, 0, sizeof(*c));
	if (rdmsr_safe(MSR_IA32_VMX_BASIC, &c->basic) != FAULT_NONE)
		return probe_fail("rdmsr IA32_VMX_BASIC (0x%x) faulted", MSR_IA32_VMX_BASIC);
	true_ctls = c->basic & VMX_BASIC_TRUE_CTLS;
	const struct {
		uint32_t msr;
		uint64_t *value;
	} list[] = {
	    {true_ctls ? MSR_IA32_VMX_TRUE_PINBASED_CTLS : MSR_IA32_VMX_PINBASED_CTLS, &c->pin},
	    {true_ctls ? MSR_IA32_VMX_TRUE_PROCBASED_CTLS : MSR_IA32_VMX_PROCBASED_CTLS, &c->proc},
	    {true_ctls ? MSR_IA32_VMX_TRUE_EXIT_CTLS : MSR_IA32_VMX_EXIT_CTLS, &c->exit},
	    {true_ctls ? MSR_IA32_VMX_TRUE_ENTRY_CTLS : MSR_IA32_VMX_ENTRY_CTLS, &c->entry},
	    {MSR_IA32_VMX_CR0_FIXED0, &c->cr0_fixed0},
	    {MSR_IA32_VMX_CR0_FIXED1, &c->cr0_fixed1},
	    {MSR_IA32_VMX_CR4_FIXED0, &c->cr4_fixed0},
	    {MSR_IA32_VMX_CR4_FIXED1, &c->cr4_fixed1},
	};
	for (size_t i = 0; i < ARRAY_SIZE(list); i++)
		if (rdmsr_safe(list[i].msr, list[i].value) != FAULT_NONE)
			return probe_fail("rdmsr 0x%x faulted", list[i].msr);
	/* Allowed-1 bit 31 of the processor-based controls: secondary controls exist. */
	if ((c->proc >> 32) & PROC_ACTIVATE_SECONDARY) {
		if (rdmsr_safe(MSR_IA32_VMX_PROCBASED_CTLS2, &c->proc2) != FAULT_NONE)
			return probe_fail("rdmsr IA32_VMX_PROCBASED_CTLS2 faulted");
		if (((c->proc2 >> 32) & PROC2_ENABLE_EPT) &&
		    rdmsr_safe(MSR_IA32_VMX_EPT_VPID_CAP, &c->ept) != FAULT_NONE)
			return probe_fail("rdmsr IA32_VMX_EPT_VPID_CAP faulted");
	}
	return PROBE_PASS;
}

/*
 * A control value from its capability MSR (SDM vol. 3D §A.3-A.5): the
 * allowed-0 settings (low half, bits that must be 1) and allowed-1 settings
 * (high half, bits that may be 1). *missing gets the wanted bits not allowed.
 */
static uint32_t vmx_control(uint64_t cap, uint32_t want, uint32_t *missing)
{
	uint32_t v = (want | (uint32_t)cap) & (uint32_t)(cap >> 32);

	*missing = want & ~v;
	return v;
}

/* EPT over the first GiB, 1:1 but for the decoy page (see svm_npt_build()). */
static uint64_t vmx_ept_build(void)
{
	const uint64_t leaf = EPT_RWX | EPT_MEMTYPE_WB;
	uint64_t decoy = PA(mem.decoy), region = decoy & ~(2 * MIB - 1);

	mem.ept_pml4[0] = PA(mem.ept_pdpt) | EPT_RWX;
	mem.ept_pdpt[0] = PA(mem.ept_pd) | EPT_RWX;
	for (unsigned int i = 0; i < 512; i++)
		mem.ept_pd[i] = (uint64_t)i * 2 * MIB | leaf | EPT_LARGE;
	for (unsigned int i = 0; i < 512; i++)
		mem.ept_pt[i] = (region + (uint64_t)i * 4096) | leaf;
	mem.ept_pt[(decoy - region) / 4096] = PA(mem.buf) | leaf;
	mem.ept_pd[region / (2 * MIB)] = PA(mem.ept_pt) | EPT_RWX;
	return PA(mem.ept_pml4) | EPTP_WALK_4 | EPTP_MEMTYPE_WB;
}

static void vmcs_set(struct vmx_setup *s, uint32_t field, uint64_t value)
{
	if (s->nr_fields < VMCS_FIELDS_MAX)
		s->fields[s->nr_fields++] = (typeof(s->fields[0])){field, value};
}

struct vmx_controls {
	uint32_t pin, proc, proc2, exit, entry;
	uint64_t eptp; /* 0 without EPT */
};

/* Controls, host state and guest state for an L2 entering at `rip` with RDI = `rdi`. */
static void vmx_vmcs_fields(struct vmx_setup *s, const struct vmx_controls *ctl,
                            const struct hv_cpu_state *cpu, void *rip, uint64_t rdi)
{
	static const struct {
		uint32_t sel, limit, ar, base;
	} segs[] = {
	    {GUEST_ES_SELECTOR, GUEST_ES_LIMIT, GUEST_ES_AR, GUEST_ES_BASE},
	    {GUEST_SS_SELECTOR, GUEST_SS_LIMIT, GUEST_SS_AR, GUEST_SS_BASE},
	    {GUEST_DS_SELECTOR, GUEST_DS_LIMIT, GUEST_DS_AR, GUEST_DS_BASE},
	    {GUEST_FS_SELECTOR, GUEST_FS_LIMIT, GUEST_FS_AR, GUEST_FS_BASE},
	    {GUEST_GS_SELECTOR, GUEST_GS_LIMIT, GUEST_GS_AR, GUEST_GS_BASE},
	};

	s->nr_fields = 0;
	/* Controls. */
	vmcs_set(s, PIN_BASED_VM_EXEC_CONTROL, ctl->pin);
	vmcs_set(s, CPU_BASED_VM_EXEC_CONTROL, ctl->proc);
	if (ctl->proc & PROC_ACTIVATE_SECONDARY)
		vmcs_set(s, SECONDARY_VM_EXEC_CONTROL, ctl->proc2);
	vmcs_set(s, VM_EXIT_CONTROLS, ctl->exit);
	vmcs_set(s, VM_ENTRY_CONTROLS, ctl->entry);
	vmcs_set(s, EXCEPTION_BITMAP, 0xffffffff);
	vmcs_set(s, PAGE_FAULT_ERROR_CODE_MASK, 0);
	vmcs_set(s, PAGE_FAULT_ERROR_CODE_MATCH, 0);
	vmcs_set(s, CR3_TARGET_COUNT, 0);
	vmcs_set(s, VM_EXIT_MSR_STORE_COUNT, 0);
	vmcs_set(s, VM_EXIT_MSR_LOAD_COUNT, 0);
	vmcs_set(s, VM_ENTRY_MSR_LOAD_COUNT, 0);
	vmcs_set(s, VM_ENTRY_INTR_INFO, 0);
	vmcs_set(s, IO_BITMAP_A, PA(mem.io_bitmap));
	vmcs_set(s, IO_BITMAP_B, PA(mem.io_bitmap + 4096));
	vmcs_set(s, MSR_BITMAP, PA(mem.msr_bitmap));
	vmcs_set(s, TSC_OFFSET, 0);
	if (ctl->eptp)
		vmcs_set(s, EPT_POINTER, ctl->eptp);
	/* The L2 owns CR0 and CR4 but for VMXE, which reads as 0. */
	vmcs_set(s, CR0_GUEST_HOST_MASK, 0);
	vmcs_set(s, CR0_READ_SHADOW, cpu->cr0);
	vmcs_set(s, CR4_GUEST_HOST_MASK, CR4_VMXE);
	vmcs_set(s, CR4_READ_SHADOW, cpu->cr4 & ~(uint64_t)CR4_VMXE);
	vmcs_set(s, VMCS_LINK_POINTER, ~0ULL);

	/* Host state: the L1 as it is at CPL0, resuming in vmx_exit_cpl0. */
	vmcs_set(s, HOST_CR0, cpu->cr0);
	vmcs_set(s, HOST_CR3, cpu->cr3);
	vmcs_set(s, HOST_CR4, cpu->cr4);
	vmcs_set(s, HOST_CS_SELECTOR, SEL_KCODE64);
	vmcs_set(s, HOST_SS_SELECTOR, SEL_KDATA);
	vmcs_set(s, HOST_DS_SELECTOR, SEL_KDATA);
	vmcs_set(s, HOST_ES_SELECTOR, SEL_KDATA);
	vmcs_set(s, HOST_FS_SELECTOR, SEL_KDATA);
	vmcs_set(s, HOST_GS_SELECTOR, SEL_KDATA);
	vmcs_set(s, HOST_TR_SELECTOR, SEL_TSS);
	vmcs_set(s, HOST_FS_BASE, 0);
	vmcs_set(s, HOST_GS_BASE, 0);
	vmcs_set(s, HOST_TR_BASE, cpu->tr_base);
	vmcs_set(s, HOST_GDTR_BASE, cpu->gdtr.base);
	vmcs_set(s, HOST_IDTR_BASE, cpu->idtr.base);
	vmcs_set(s, HOST_IA32_SYSENTER_CS, 0);
	vmcs_set(s, HOST_IA32_SYSENTER_ESP, 0);
	vmcs_set(s, HOST_IA32_SYSENTER_EIP, 0);
	if (ctl->exit & EXIT_LOAD_EFER)
		vmcs_set(s, HOST_IA32_EFER, cpu->efer);
	vmcs_set(s, HOST_RIP, PA(vmx_exit_cpl0));

	/* Guest state: 64-bit at CPL0 on the L1's control registers. */
	vmcs_set(s, GUEST_CR0, cpu->cr0);
	vmcs_set(s, GUEST_CR3, cpu->cr3);
	vmcs_set(s, GUEST_CR4, cpu->cr4);
	vmcs_set(s, GUEST_DR7, 0x400);
	vmcs_set(s, GUEST_IA32_DEBUGCTL, 0);
	if (ctl->entry & ENTRY_LOAD_EFER)
		vmcs_set(s, GUEST_IA32_EFER, cpu->efer);
	vmcs_set(s, GUEST_CS_SELECTOR, SEL_KCODE64);
	vmcs_set(s, GUEST_CS_LIMIT, 0xffffffff);
	vmcs_set(s, GUEST_CS_AR, VMX_AR_CODE64);
	vmcs_set(s, GUEST_CS_BASE, 0);
	for (size_t i = 0; i < ARRAY_SIZE(segs); i++) {
		vmcs_set(s, segs[i].sel, SEL_KDATA);
		vmcs_set(s, segs[i].limit, 0xffffffff);
		vmcs_set(s, segs[i].ar, VMX_AR_DATA);
		vmcs_set(s, segs[i].base, 0);
	}
	vmcs_set(s, GUEST_LDTR_SELECTOR, 0);
	vmcs_set(s, GUEST_LDTR_LIMIT, 0);
	vmcs_set(s, GUEST_LDTR_AR, VMX_AR_UNUSABLE);
	vmcs_set(s, GUEST_LDTR_BASE, 0);
	vmcs_set(s, GUEST_TR_SELECTOR, SEL_TSS);
	vmcs_set(s, GUEST_TR_LIMIT, TSS64_LIMIT);
	vmcs_set(s, GUEST_TR_AR, VMX_AR_TSS64_BUSY);
	vmcs_set(s, GUEST_TR_BASE, cpu->tr_base);
	vmcs_set(s, GUEST_GDTR_BASE, cpu->gdtr.base);
	vmcs_set(s, GUEST_GDTR_LIMIT, cpu->gdtr.limit);
	vmcs_set(s, GUEST_IDTR_BASE, cpu->idtr.base);
	vmcs_set(s, GUEST_IDTR_LIMIT, cpu->idtr.limit);
	vmcs_set(s, GUEST_SYSENTER_CS, 0);
	vmcs_set(s, GUEST_SYSENTER_ESP, 0);
	vmcs_set(s, GUEST_SYSENTER_EIP, 0);
	vmcs_set(s, GUEST_INTERRUPTIBILITY, 0);
	vmcs_set(s, GUEST_ACTIVITY_STATE, 0);
	vmcs_set(s, GUEST_PENDING_DBG_EXCEPTIONS, 0);
	vmcs_set(s, GUEST_RFLAGS, RFLAGS_FIXED);
	vmcs_set(s, GUEST_RSP, PA(mem.l2_stack + sizeof(mem.l2_stack)));
	vmcs_set(s, GUEST_RIP, PA(rip));
	memset(&l2_gprs, 0, sizeof(l2_gprs));
	l2_gprs.rdi = rdi;
}

/*
 * Controls from the capabilities; PROBE_PASS, or PROBE_FAIL naming a
 * wanted control the CPU does not allow.
 */
static int vmx_controls_pick(const struct vmx_caps *c, bool want_ept, struct vmx_controls *ctl)
{
	uint32_t missing, optional;

	memset(ctl, 0, sizeof(*ctl));
	ctl->pin = vmx_control(c->pin, 0, &missing);
	ctl->proc = vmx_control(c->proc,
	                        PROC_HLT_EXITING | PROC_USE_IO_BITMAPS | PROC_USE_MSR_BITMAPS |
	                            (want_ept ? PROC_ACTIVATE_SECONDARY : 0),
	                        &missing);
	if (missing)
		return probe_fail(
		    "processor-based controls 0x%x not allowed (IA32_VMX_PROCBASED_CTLS "
		    "0x%lx)",
		    missing, c->proc);
	if (ctl->proc & PROC_ACTIVATE_SECONDARY) {
		ctl->proc2 = vmx_control(c->proc2, want_ept ? PROC2_ENABLE_EPT : 0, &missing);
		if (missing)
			return probe_fail("secondary controls 0x%x not allowed (0x%lx)", missing,
			                  c->proc2);
		if (ctl->proc2 & PROC2_ENABLE_EPT)
			ctl->eptp = vmx_ept_build();
	}
	optional = (uint32_t)(c->exit >> 32) & (EXIT_SAVE_EFER | EXIT_LOAD_EFER);
	ctl->exit = vmx_control(c->exit, EXIT_HOST_ADDR_SPACE_SIZE | optional, &missing);
	if (missing)
		return probe_fail("VM-exit controls 0x%x not allowed (0x%lx)", missing, c->exit);
	optional = (uint32_t)(c->entry >> 32) & ENTRY_LOAD_EFER;
	ctl->entry = vmx_control(c->entry, ENTRY_IA32E_MODE_GUEST | optional, &missing);
	if (missing)
		return probe_fail("VM-entry controls 0x%x not allowed (0x%lx)", missing, c->entry);
	return PROBE_PASS;
}

static int vmx_setup_failed(const struct vmx_setup *s)
{
	static const char *const steps[] = {
	    [STEP_CR0] = "mov CR0",     [STEP_CR4] = "mov CR4 (VMXE)", [STEP_VMXON] = "VMXON",
	    [STEP_VMCLEAR] = "VMCLEAR", [STEP_VMPTRLD] = "VMPTRLD",    [STEP_VMWRITE] = "VMWRITE",
	};

	if (s->vector != FAULT_NONE)
		return probe_fail("%s raised vector %ld (CR0 0x%lx, CR4 0x%lx)", steps[s->step],
		                  s->vector, s->cr0, s->cr4);
	if (s->step == STEP_VMWRITE)
		return probe_fail("VMWRITE of field 0x%x = 0x%lx failed: VM-instruction error %lu "
		                  "(%s)",
		                  s->fields[s->nr_fields - 1].field,
		                  s->fields[s->nr_fields - 1].value, s->vm_error,
		                  vmx_error_name(s->vm_error));
	return probe_fail("%s failed (VMfail)", steps[s->step]);
}

/* IA32_FEATURE_CONTROL must allow VMXON outside SMX, locked (SDM vol. 3C §24.7). */
static int vmx_feature_control(void)
{
	const uint64_t need = FEATURE_CONTROL_LOCKED | FEATURE_CONTROL_VMXON_OUTSIDE_SMX;
	uint64_t fc = 0;

	if (rdmsr_safe(MSR_IA32_FEATURE_CONTROL, &fc) != FAULT_NONE)
		return probe_fail("rdmsr IA32_FEATURE_CONTROL faulted");
	if ((fc & need) == need)
		return PROBE_PASS;
	if (fc & FEATURE_CONTROL_LOCKED)
		return probe_fail("IA32_FEATURE_CONTROL 0x%lx is locked without VMXON outside SMX",
		                  fc);
	if (wrmsr_safe(MSR_IA32_FEATURE_CONTROL, fc | need) != FAULT_NONE)
		return probe_fail("wrmsr IA32_FEATURE_CONTROL 0x%lx faulted", fc | need);
	return PROBE_PASS;
}

static struct vmx_setup setup;

int test_vmx(void)
{
	const char *nested = param_get("nested"), *ept_param = param_get("ept");
	bool off = nested && strcmp(nested, "off") == 0, on = nested && strcmp(nested, "on") == 0;
	bool vmx = cpuid(1, 0).ecx & CPUID_1_ECX_VMX, want_ept;
	enum hv_vendor vendor = hv_vendor();
	struct vmx_caps caps;
	struct vmx_controls ctl;
	struct hv_cpu_state cpu;
	struct hv_round_trip rt = {0};
	uint64_t result = 0, expect, iterations, cr4_before;
	char timing[128] = "";
	int r;

	if (off)
		return vmx_check_hidden(vmx);
	if (vendor == HV_VENDOR_AMD)
		return probe_skip("AMD CPU: no VT-x (test=svm is its counterpart)");
	if (!vmx && on)
		return probe_fail("nested=on, but CPUID.1:ECX[5] (VMX) is clear");
	if (!vmx)
		return probe_skip("VMX not offered (CPUID.1:ECX[5] clear); nestvm --nested on "
		                  "offers it on a VT-x host");
	if (!hv_param_iterations(&iterations))
		return probe_fail("bad iterations=%s", param_get("iterations"));

	if ((r = vmx_caps_read(&caps)) != PROBE_PASS)
		return r;
	want_ept = (caps.ept & (EPT_CAP_WALK_4 | EPT_CAP_WB | EPT_CAP_2MB)) ==
	               (EPT_CAP_WALK_4 | EPT_CAP_WB | EPT_CAP_2MB) &&
	           !(ept_param && strcmp(ept_param, "off") == 0);
	printf("probe: vmx: IA32_VMX_BASIC 0x%lx: revision 0x%x, region %u bytes, memory type "
	       "%u, true controls %s; EPT %s (caps 0x%lx)\n",
	       caps.basic, VMX_BASIC_REVISION(caps.basic), VMX_BASIC_SIZE(caps.basic),
	       VMX_BASIC_MEMTYPE(caps.basic), caps.basic & VMX_BASIC_TRUE_CTLS ? "yes" : "no",
	       want_ept ? "used" : "not used", caps.ept);
	if (ept_param && strcmp(ept_param, "on") == 0 && !want_ept)
		return probe_fail("ept=on, but the CPU offers no 4-level write-back EPT with 2 MiB "
		                  "pages");
	if (VMX_BASIC_SIZE(caps.basic) > 4096 || VMX_BASIC_SIZE(caps.basic) == 0)
		return probe_fail("VMCS region size %u", VMX_BASIC_SIZE(caps.basic));
	if ((r = vmx_feature_control()) != PROBE_PASS)
		return r;
	if ((r = vmx_controls_pick(&caps, want_ept, &ctl)) != PROBE_PASS)
		return r;
	printf("probe: vmx: controls: pin 0x%x, processor 0x%x, secondary 0x%x, exit 0x%x, entry "
	       "0x%x\n",
	       ctl.pin, ctl.proc, ctl.proc2, ctl.exit, ctl.entry);

	hv_cpu_state_read(&cpu);
	cr4_before = cpu.cr4;
	cpu.cr0 = (cpu.cr0 | caps.cr0_fixed0) & caps.cr0_fixed1;
	cpu.cr4 = (cpu.cr4 | caps.cr4_fixed0 | CR4_VMXE) & caps.cr4_fixed1;
	if (!(cpu.cr4 & CR4_VMXE))
		return probe_fail("IA32_VMX_CR4_FIXED1 0x%lx does not allow CR4.VMXE",
		                  caps.cr4_fixed1);
	memset(mem.io_bitmap, 0xff, sizeof(mem.io_bitmap));
	memset(mem.msr_bitmap, 0xff, sizeof(mem.msr_bitmap));
	memset(mem.decoy, DECOY_BYTE, sizeof(mem.decoy));
	memset(mem.buf, 0, sizeof(mem.buf));
	mem.vmxon[0] = VMX_BASIC_REVISION(caps.basic);
	mem.vmcs[0] = VMX_BASIC_REVISION(caps.basic);
	expect = hv_l2_expect(HV_L2_SEED, expect_buf);

	setup.cr0 = cpu.cr0;
	setup.cr4 = cpu.cr4;
	vmx_vmcs_fields(&setup, &ctl, &cpu, hv_l2_vmx_work, ctl.eptp ? PA(mem.decoy) : PA(mem.buf));
	cpl0_call(vmx_setup_cpl0, (long)&setup);
	if (setup.step != STEP_DONE) {
		r = vmx_setup_failed(&setup);
		if (setup.step > STEP_VMXON)
			cpl0_call(vmx_teardown_cpl0, (long)cr4_before);
		else if (setup.step == STEP_VMXON)
			cpl0_call(hv_write_cr4_safe_cpl0, (long)cr4_before);
		return r;
	}
	printf("probe: vmx: VMXON, VMCS loaded; L2: 64-bit at CPL0, %s\n",
	       ctl.eptp ? "EPT (its buffer at a remapped guest-physical page)"
	                : "on the L1's page tables (no EPT)");
	vcpu = (struct vmx_vcpu){0};
	r = vmx_run_work(HV_L2_SEED, &result);
	if (r == PROBE_PASS && result != expect)
		r = probe_fail("L2 result 0x%lx, expected 0x%lx", result, expect);
	for (unsigned int i = 0; r == PROBE_PASS && i < HV_L2_BUF_QWORDS; i++)
		if (mem.buf[i] != expect_buf[i])
			r = probe_fail("L2 buffer word %u: 0x%lx, expected 0x%lx", i, mem.buf[i],
			               expect_buf[i]);
	for (unsigned int i = 0; r == PROBE_PASS && ctl.eptp && i < sizeof(mem.decoy); i++)
		if (((uint8_t *)mem.decoy)[i] != DECOY_BYTE)
			r = probe_fail("the decoy page changed at byte %u: EPT was not used", i);

	if (r == PROBE_PASS)
		printf("probe: vmx: L2 result 0x%lx as expected, buffer as expected\n", result);
	if (r == PROBE_PASS && iterations) {
		const uint64_t warmup = 16;

		/* The same VMCS, launched: only the entry point and registers change. */
		memset(&l2_gprs, 0, sizeof(l2_gprs));
		vcpu.set_rip = PA(hv_l2_vmx_loop);
		rt.iterations = warmup;
		cpl0_call(vmx_round_trips_cpl0, (long)&rt);
		if (rt.done == warmup) {
			rt = (struct hv_round_trip){.iterations = iterations};
			cpl0_call(vmx_round_trips_cpl0, (long)&rt);
		}
		if (rt.done < rt.iterations)
			r = vmx_unexpected(rt.done + 1, EXIT_REASON_VMCALL);
		else
			hv_round_trip_report("vmx", "l2 vmcall", &rt, timing, sizeof(timing));
	}
	cpl0_call(vmx_teardown_cpl0, (long)cr4_before);
	if (r != PROBE_PASS)
		return r;
	return probe_pass("L2 ran (%s, %u exits as expected)%s%s", ctl.eptp ? "EPT" : "no EPT",
	                  VMX_EXITS_MAX, timing[0] ? "; " : "", timing);
}
