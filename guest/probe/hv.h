/* SPDX-License-Identifier: MIT */
#ifndef PROBE_HV_H
#define PROBE_HV_H

/*
 * The probe as a tiny L1 hypervisor: what test=svm, test=vmx and
 * test=vmmcall share (hv.c, hv.S).
 *
 * The L1 side is split by privilege. Decisions, checks and printing run at
 * CPL3 like the rest of the probe; the instructions that need CPL0 (MSRs,
 * control registers, VMRUN, VMX instructions) run in small functions called
 * through SYS_CALL, which must not print or use probe_syscall() (a ud2 at
 * CPL0 is an exception, not a system call): they fill in structures that
 * CPL3 code reads afterwards. Names of such functions end in _cpl0.
 *
 * The L2 guest is 64-bit code in hv.S, run at CPL0 on the L1's identity
 * map (or an L1-built nested page table / EPT over it). It talks to L1 only
 * through intercepted instructions, in this order:
 *
 *   IN  eax, HV_L2_PORT_SEED    L1 answers with the seed
 *   ... HV_L2_ITERATIONS xorshift64 steps, summed; the next
 *       HV_L2_BUF_QWORDS states written to the buffer at RDI, then read back
 *       and folded into the sum (hv_l2_expect() does the same in C)
 *   OUT HV_L2_PORT_RESULT, eax  low half of the result
 *   OUT HV_L2_PORT_RESULT, eax  high half
 *   HLT
 *   VMMCALL / VMCALL            with RAX = HV_L2_DONE
 */

#define HV_L2_PORT_SEED 0x5e1d /* made-up ports, intercepted by L1 */
#define HV_L2_PORT_RESULT 0x5e5d
#define HV_L2_ITERATIONS 1000000
#define HV_L2_BUF_QWORDS 512         /* one page */
#define HV_L2_DONE 0x4c32646f6e65ULL /* "L2done" */
#define HV_L2_SEED 0x2545f4914f6cdd1dULL

/* struct hv_gprs, for hv.S: the guest's general registers. */
#define HV_GPR_RAX 0
#define HV_GPR_RBX 8
#define HV_GPR_RCX 16
#define HV_GPR_RDX 24
#define HV_GPR_RSI 32
#define HV_GPR_RDI 40
#define HV_GPR_RBP 48
#define HV_GPR_R8 56
#define HV_GPR_R9 64
#define HV_GPR_R10 72
#define HV_GPR_R11 80
#define HV_GPR_R12 88
#define HV_GPR_R13 96
#define HV_GPR_R14 104
#define HV_GPR_R15 112

/* VMCS field encodings hv.S needs (Intel SDM vol. 3D, appendix B). */
#define VMCS_HOST_RSP 0x6c14

/* MSRs (AMD APM vol. 2 §15.30, Intel SDM vol. 4). */
#define MSR_IA32_FEATURE_CONTROL 0x3a
#define MSR_IA32_PAT 0x277
#define MSR_IA32_VMX_BASIC 0x480
#define MSR_VM_CR 0xc0010114
#define MSR_VM_HSAVE_PA 0xc0010117
#define EFER_SVME (1 << 12)
#define CR0_NE (1 << 5)
#define CR4_VMXE (1 << 13)

#ifndef __ASSEMBLER__
#include "probe.h"

/*
 * Exception table entry for inline assembly: a fault at label `from`
 * resumes at label `to` with RAX = the vector (head.S, exception_common).
 */
#define EX_TABLE(from, to)                                                                         \
	".pushsection .ex_table, \"a\"\n\t.balign 8\n\t.quad " from ", " to "\n\t.popsection\n\t"

#define EXC_UD 6
#define EXC_GP 13

struct hv_gprs {
	uint64_t rax, rbx, rcx, rdx, rsi, rdi, rbp;
	uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
};

struct hv_dtr {
	uint16_t limit;
	uint64_t base;
} __attribute__((packed));

/* The L1's own state, which L2 and the host-state areas start from. */
struct hv_cpu_state {
	uint64_t cr0, cr3, cr4, efer, pat, dr6, dr7;
	struct hv_dtr gdtr, idtr;
	uint64_t tr_base; /* from the TSS descriptor at SEL_TSS */
};

#define TSS64_LIMIT 0x67

/* A TSC frequency and where it came from. */
struct hv_clock {
	uint64_t tsc_khz; /* 0: unknown, report cycles only */
	const char *source;
};

/*
 * A hypercall loop's round trips, in TSC cycles; the first HV_SAMPLES_MAX
 * single round trips are kept (in hv.c) for the median.
 */
struct hv_round_trip {
	uint64_t iterations; /* asked for */
	uint64_t done;       /* round trips that came back as expected */
	uint64_t total;      /* the whole loop, L1's work between round trips included */
	uint64_t min;        /* the fastest round trip */
	uint64_t nr_samples;
};

#define HV_SAMPLES_MAX 16384

enum hv_vendor { HV_VENDOR_OTHER, HV_VENDOR_AMD, HV_VENDOR_INTEL };

/*
 * hv.S. The *_safe_cpl0 functions return FAULT_NONE, or the vector of the
 * exception the instruction raised (EXC_GP).
 */
long hv_rdmsr_safe_cpl0(uint32_t msr, uint64_t *value);
long hv_wrmsr_safe_cpl0(uint32_t msr, uint64_t value);
long hv_write_cr0_safe_cpl0(long value);
long hv_write_cr4_safe_cpl0(long value);
/* VMLOAD/VMRUN/VMSAVE of one L2 entry; host_save_pa takes the L1's VMSAVE state. */
void svm_vmrun_cpl0(uint64_t vmcb_pa, struct hv_gprs *gprs, uint64_t host_save_pa);
/* VMLAUNCH (launched 0) or VMRESUME: 0 after a VM exit, 1 VMfailInvalid, 2 VMfailValid. */
long vmx_enter_cpl0(struct hv_gprs *gprs, long launched);
/* The L2 guest: the work described above, and an endless hypercall loop. */
extern char hv_l2_svm_work[], hv_l2_svm_loop[], hv_l2_vmx_work[], hv_l2_vmx_loop[];

/* Run fn(arg) at CPL0; see the rules above. */
static inline long cpl0_call(long (*fn)(long), long arg)
{
	return probe_syscall(SYS_CALL, (long)fn, arg);
}

/* MSR access from CPL3; FAULT_NONE, or the vector of the fault (EXC_GP). */
static inline int rdmsr_safe(uint32_t msr, uint64_t *value)
{
	return (int)probe_syscall(SYS_RDMSR, msr, (long)value);
}

static inline int wrmsr_safe(uint32_t msr, uint64_t value)
{
	return (int)probe_syscall(SYS_WRMSR, msr, (long)value);
}

static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;

	__asm__ volatile("lfence; rdtsc" : "=a"(lo), "=d"(hi)::"memory");
	return (uint64_t)hi << 32 | lo;
}

/* hv.c */
enum hv_vendor hv_vendor(void);
const char *hv_vendor_name(enum hv_vendor v);
void hv_cpu_state_read(struct hv_cpu_state *s);
uint64_t hv_l2_expect(uint64_t seed, uint64_t *buf);
bool hv_param_iterations(uint64_t *n);
const struct hv_clock *hv_clock(void);
void hv_round_trip_add(struct hv_round_trip *rt, uint64_t cycles);
void hv_round_trip_report(const char *test, const char *what, const struct hv_round_trip *rt,
                          char *summary, size_t size);

#endif /* __ASSEMBLER__ */
#endif
