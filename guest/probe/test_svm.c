/* SPDX-License-Identifier: MIT */
/*
 * test=svm [nested=on|off] [npt=on|off] [iterations=N] [l2work=N]: the probe
 * as an AMD-V (SVM) L1 hypervisor (AMD APM vol. 2 ch. 15).
 *
 * nested=off: PASS if SVM is hidden: CPUID.80000001h:ECX[2] clear and
 * setting EFER.SVME raises #GP.
 *
 * Otherwise, with SVM offered: VM_HSAVE_PA, EFER.SVME, one VMCB for a
 * 64-bit L2 (hv.h has its protocol) that intercepts exceptions, CPUID, HLT,
 * I/O (permission map: every port), MSRs (permission map: every MSR),
 * shutdown and the SVM instructions, ASID 1, and nested paging when
 * CPUID 8000000Ah:EDX[0] offers it (npt=off runs the L2 on the L1's own page
 * tables instead). The nested page table maps the first GiB 1:1 except one
 * page: the L2's buffer is at a "decoy" guest-physical page that nCR3 maps
 * to another page, so the test sees that the translation was used. Every
 * #VMEXIT is checked against the exit expected next; anything else FAILs
 * with its exit code and EXITINFO. Then the cost of an L2 VMMCALL handled
 * by L1 (VMRUN, the L2's VMMCALL, #VMEXIT; RIP advanced between round
 * trips) over N round trips after 16 unmeasured ones (hv_round_trip_report()).
 *
 * l2work=N: before the round trips, N more rounds of the L2's work, each
 * seeded with the result of the one before (svm_l2work()): an L2 that
 * computes for long with few exits, whose end result depends on every
 * round, for the lab's save/restore tests of a guest hypervisor.
 *
 * Without SVM: SKIP (FAIL with nested=on, which says SVM must be there).
 */
#include "probe.h"
#include "hv.h"

#define CPUID_80000001_ECX_SVM (1u << 2)
#define CPUID_SVM_FEATURES 0x8000000a
#define CPUID_8000000A_EDX_NP (1u << 0)
#define CPUID_8000000A_EDX_NRIPS (1u << 3)
#define CPUID_8000000A_EDX_VMCB_CLEAN (1u << 5)
#define VM_CR_SVMDIS (1u << 4)

/* VMCB control area intercept words (APM vol. 2, appendix B, Table B-1). */
#define SVM_INTERCEPT_CPUID (1u << 18) /* word at 0x00c */
#define SVM_INTERCEPT_HLT (1u << 24)
#define SVM_INTERCEPT_IOIO_PROT (1u << 27)
#define SVM_INTERCEPT_MSR_PROT (1u << 28)
#define SVM_INTERCEPT_SHUTDOWN (1u << 31)
#define SVM_INTERCEPT_VMRUN (1u << 0) /* word at 0x010 */
#define SVM_INTERCEPT_VMMCALL (1u << 1)
#define SVM_INTERCEPT_VMLOAD (1u << 2)
#define SVM_INTERCEPT_VMSAVE (1u << 3)
#define SVM_INTERCEPT_STGI (1u << 4)
#define SVM_INTERCEPT_CLGI (1u << 5)
#define SVM_NESTED_CTL_NP_ENABLE (1u << 0)
#define SVM_TLB_CONTROL_FLUSH_ALL 1
#define SVM_CLEAN_ALL 0x7ff /* §15.15.3: intercepts ... LBR, bits 0-10 */

/* Exit codes (APM vol. 2, appendix C). */
#define SVM_EXIT_EXCP_BASE 0x040
#define SVM_EXIT_INTR 0x060
#define SVM_EXIT_NMI 0x061
#define SVM_EXIT_CPUID 0x072
#define SVM_EXIT_HLT 0x078
#define SVM_EXIT_IOIO 0x07b
#define SVM_EXIT_MSR 0x07c
#define SVM_EXIT_SHUTDOWN 0x07f
#define SVM_EXIT_VMRUN 0x080
#define SVM_EXIT_VMMCALL 0x081
#define SVM_EXIT_NPF 0x400
#define SVM_EXIT_INVALID ((uint64_t)-1)

/* EXITINFO1 of SVM_EXIT_IOIO (§15.10.2). */
#define SVM_IOIO_TYPE_IN (1u << 0)
#define SVM_IOIO_STR (1u << 2)
#define SVM_IOIO_REP (1u << 3)
#define SVM_IOIO_SZ32 (1u << 6)
#define SVM_IOIO_PORT_SHIFT 16

/* Segment attributes, descriptor bits 40-47 and 52-55 packed (§15.5.1). */
#define SVM_ATTR_CODE64 0xa9b /* G, L, P, S, type 0xb: execute/read, accessed */
#define SVM_ATTR_DATA 0xc93   /* G, D/B, P, S, type 3: read/write, accessed */
#define SVM_ATTR_TSS64_BUSY 0x08b

#define VMMCALL_LEN 3
#define HLT_LEN 1
#define IOPM_SIZE (3 * 4096)
#define MSRPM_SIZE (2 * 4096)
#define SVM_EXITS_MAX 5
#define SVM_L2WORK_MAX 100000
#define SVM_L2WORK_BLOCKS 16 /* hv_l2_expect() calls per l2work round */

struct vmcb_seg {
	uint16_t selector;
	uint16_t attrib;
	uint32_t limit;
	uint64_t base;
} __attribute__((packed));

/* APM vol. 2, appendix B: the control area at 0, the state save area at 0x400. */
struct vmcb {
	uint32_t intercept_cr;         /* 0x000 */
	uint32_t intercept_dr;         /* 0x004 */
	uint32_t intercept_exceptions; /* 0x008 */
	uint32_t intercept_misc1;      /* 0x00c */
	uint32_t intercept_misc2;      /* 0x010 */
	uint8_t reserved0[0x040 - 0x014];
	uint64_t iopm_base_pa;  /* 0x040 */
	uint64_t msrpm_base_pa; /* 0x048 */
	uint64_t tsc_offset;    /* 0x050 */
	uint32_t asid;          /* 0x058 */
	uint8_t tlb_control;    /* 0x05c */
	uint8_t reserved1[3];
	uint64_t int_ctl;       /* 0x060 */
	uint64_t int_state;     /* 0x068 */
	uint64_t exit_code;     /* 0x070 */
	uint64_t exit_info1;    /* 0x078 */
	uint64_t exit_info2;    /* 0x080 */
	uint64_t exit_int_info; /* 0x088 */
	uint64_t nested_ctl;    /* 0x090 */
	uint64_t avic_bar;      /* 0x098 */
	uint64_t ghcb_pa;       /* 0x0a0 */
	uint64_t event_inj;     /* 0x0a8 */
	uint64_t nested_cr3;    /* 0x0b0 */
	uint64_t virt_ext;      /* 0x0b8 */
	uint32_t clean;         /* 0x0c0 */
	uint32_t reserved2;
	uint64_t next_rip; /* 0x0c8 */
	uint8_t insn_len;  /* 0x0d0 */
	uint8_t insn_bytes[15];
	uint8_t reserved3[0x400 - 0x0e0];
	/* State save area. */
	struct vmcb_seg es, cs, ss, ds, fs, gs, gdtr, ldtr, idtr, tr; /* 0x400 */
	uint8_t reserved4[0x4cb - 0x4a0];
	uint8_t cpl; /* 0x4cb */
	uint32_t reserved5;
	uint64_t efer; /* 0x4d0 */
	uint8_t reserved6[0x548 - 0x4d8];
	uint64_t cr4;    /* 0x548 */
	uint64_t cr3;    /* 0x550 */
	uint64_t cr0;    /* 0x558 */
	uint64_t dr7;    /* 0x560 */
	uint64_t dr6;    /* 0x568 */
	uint64_t rflags; /* 0x570 */
	uint64_t rip;    /* 0x578 */
	uint8_t reserved7[0x5d8 - 0x580];
	uint64_t rsp; /* 0x5d8 */
	uint8_t reserved8[0x5f8 - 0x5e0];
	uint64_t rax;            /* 0x5f8 */
	uint64_t star;           /* 0x600 */
	uint64_t lstar;          /* 0x608 */
	uint64_t cstar;          /* 0x610 */
	uint64_t sfmask;         /* 0x618 */
	uint64_t kernel_gs_base; /* 0x620 */
	uint64_t sysenter_cs;    /* 0x628 */
	uint64_t sysenter_esp;   /* 0x630 */
	uint64_t sysenter_eip;   /* 0x638 */
	uint64_t cr2;            /* 0x640 */
	uint8_t reserved9[0x668 - 0x648];
	uint64_t g_pat;  /* 0x668 */
	uint64_t dbgctl; /* 0x670 */
	uint8_t reserved10[0x1000 - 0x678];
} __attribute__((packed));

_Static_assert(sizeof(struct vmcb) == 4096, "VMCB is one page");
_Static_assert(__builtin_offsetof(struct vmcb, exit_code) == 0x070, "VMCB layout");
_Static_assert(__builtin_offsetof(struct vmcb, nested_cr3) == 0x0b0, "VMCB layout");
_Static_assert(__builtin_offsetof(struct vmcb, next_rip) == 0x0c8, "VMCB layout");
_Static_assert(__builtin_offsetof(struct vmcb, tr) == 0x490, "VMCB layout");
_Static_assert(__builtin_offsetof(struct vmcb, cpl) == 0x4cb, "VMCB layout");
_Static_assert(__builtin_offsetof(struct vmcb, efer) == 0x4d0, "VMCB layout");
_Static_assert(__builtin_offsetof(struct vmcb, cr4) == 0x548, "VMCB layout");
_Static_assert(__builtin_offsetof(struct vmcb, rip) == 0x578, "VMCB layout");
_Static_assert(__builtin_offsetof(struct vmcb, rsp) == 0x5d8, "VMCB layout");
_Static_assert(__builtin_offsetof(struct vmcb, rax) == 0x5f8, "VMCB layout");
_Static_assert(__builtin_offsetof(struct vmcb, cr2) == 0x640, "VMCB layout");
_Static_assert(__builtin_offsetof(struct vmcb, g_pat) == 0x668, "VMCB layout");

/*
 * Everything the L1 gives the hardware, page-aligned: the VMCB, the host
 * save area (VM_HSAVE_PA), the page VMSAVE keeps the L1's own hidden state
 * in, the permission maps, the nested page table, and the L2's memory.
 */
static struct svm_memory {
	struct vmcb vmcb;
	uint8_t hsave[4096];
	uint8_t host_state[4096];
	uint8_t iopm[IOPM_SIZE];
	uint8_t msrpm[MSRPM_SIZE];
	uint64_t npt_pml4[512], npt_pdpt[512], npt_pd[512], npt_pt[512];
	uint64_t buf[HV_L2_BUF_QWORDS];   /* what the L2 writes... */
	uint64_t decoy[HV_L2_BUF_QWORDS]; /* ...at this guest-physical page, with NPT */
	uint8_t l2_stack[4096];
} mem __attribute__((aligned(4096)));

static struct hv_gprs l2_gprs;
static uint64_t expect_buf[HV_L2_BUF_QWORDS];
static bool has_nrips;

#define PA(p) ((uint64_t)(uintptr_t)(p))
#define DECOY_BYTE 0xa5

/* CPL0: one VMRUN of the VMCB. */
static long svm_run_cpl0(long unused)
{
	(void)unused;
	svm_vmrun_cpl0(PA(&mem.vmcb), &l2_gprs, PA(mem.host_state));
	return 0;
}

/* CPL0: rt->iterations round trips of the L2's VMMCALL loop (hv_l2_svm_loop). */
static long svm_round_trips_cpl0(long arg)
{
	struct hv_round_trip *rt = (struct hv_round_trip *)arg;
	struct vmcb *v = &mem.vmcb;
	uint64_t start = rdtsc(), t0, t1;

	for (rt->done = 0; rt->done < rt->iterations; rt->done++) {
		t0 = rdtsc();
		svm_vmrun_cpl0(PA(v), &l2_gprs, PA(mem.host_state));
		t1 = rdtsc();
		if (v->exit_code != SVM_EXIT_VMMCALL)
			break;
		v->rip = has_nrips ? v->next_rip : v->rip + VMMCALL_LEN;
		v->clean = SVM_CLEAN_ALL; /* only RIP changed, which is never cached */
		v->tlb_control = 0;
		hv_round_trip_add(rt, t1 - t0);
	}
	rt->total = rdtsc() - start;
	return 0;
}

static const char *svm_exit_name(uint64_t code)
{
	static const struct {
		uint64_t code;
		const char *name;
	} names[] = {
	    {SVM_EXIT_INTR, "INTR"},
	    {SVM_EXIT_NMI, "NMI"},
	    {SVM_EXIT_CPUID, "CPUID"},
	    {SVM_EXIT_HLT, "HLT"},
	    {SVM_EXIT_IOIO, "IOIO"},
	    {SVM_EXIT_MSR, "MSR"},
	    {SVM_EXIT_SHUTDOWN, "SHUTDOWN"},
	    {SVM_EXIT_VMRUN, "VMRUN"},
	    {SVM_EXIT_VMMCALL, "VMMCALL"},
	    {SVM_EXIT_NPF, "NPF"},
	    {SVM_EXIT_INVALID, "INVALID (VMRUN refused the VMCB)"},
	};
	static const char *const excp[32] = {
	    "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "#9",  "#TS",
	    "#NP", "#SS", "#GP", "#PF", "#15", "#MF", "#AC", "#MC", "#XM", "#VE", "#CP",
	};

	if (code >= SVM_EXIT_EXCP_BASE && code < SVM_EXIT_EXCP_BASE + 32)
		return excp[code - SVM_EXIT_EXCP_BASE] ? excp[code - SVM_EXIT_EXCP_BASE] : "#exc";
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (names[i].code == code)
			return names[i].name;
	return "?";
}

/* FAIL for an exit that is not the one expected. */
static int svm_unexpected(unsigned int n, uint64_t want)
{
	const struct vmcb *v = &mem.vmcb;

	return probe_fail("exit %u: code 0x%lx (%s), expected 0x%lx (%s); EXITINFO1 0x%lx "
	                  "EXITINFO2 0x%lx EXITINTINFO 0x%lx, L2 rip 0x%lx",
	                  n, v->exit_code, svm_exit_name(v->exit_code), want, svm_exit_name(want),
	                  v->exit_info1, v->exit_info2, v->exit_int_info, v->rip);
}

/*
 * Nested page table: the first GiB 1:1 with 2 MiB pages, except that the
 * 2 MiB around the decoy page is mapped with 4 KiB pages and the decoy page
 * goes to mem.buf. Nested page walks are user accesses (§15.25.5): U/S set
 * at every level.
 */
static void svm_npt_build(void)
{
	const uint64_t f = PTE_P | PTE_RW | PTE_US;
	uint64_t decoy = PA(mem.decoy), region = decoy & ~(2 * MIB - 1);

	mem.npt_pml4[0] = PA(mem.npt_pdpt) | f;
	mem.npt_pdpt[0] = PA(mem.npt_pd) | f;
	for (unsigned int i = 0; i < 512; i++)
		mem.npt_pd[i] = (uint64_t)i * 2 * MIB | f | PTE_PS;
	for (unsigned int i = 0; i < 512; i++)
		mem.npt_pt[i] = (region + (uint64_t)i * 4096) | f;
	mem.npt_pt[(decoy - region) / 4096] = PA(mem.buf) | f;
	mem.npt_pd[region / (2 * MIB)] = PA(mem.npt_pt) | f;
}

static void svm_seg(struct vmcb_seg *s, uint16_t sel, uint16_t attrib, uint32_t limit,
                    uint64_t base)
{
	*s = (struct vmcb_seg){.selector = sel, .attrib = attrib, .limit = limit, .base = base};
}

/*
 * A VMCB for a 64-bit L2 at CPL0 entering at `rip` with RDI = `rdi`, on the
 * L1's control registers and page tables (the guest-physical identity map
 * under nested paging).
 */
static void svm_vmcb_init(const struct hv_cpu_state *cpu, bool npt, void *rip, uint64_t rdi)
{
	struct vmcb *v = &mem.vmcb;

	memset(v, 0, sizeof(*v));
	v->intercept_exceptions = 0xffffffff;
	v->intercept_misc1 = SVM_INTERCEPT_CPUID | SVM_INTERCEPT_HLT | SVM_INTERCEPT_IOIO_PROT |
	                     SVM_INTERCEPT_MSR_PROT | SVM_INTERCEPT_SHUTDOWN;
	v->intercept_misc2 = SVM_INTERCEPT_VMRUN | SVM_INTERCEPT_VMMCALL | SVM_INTERCEPT_VMLOAD |
	                     SVM_INTERCEPT_VMSAVE | SVM_INTERCEPT_STGI | SVM_INTERCEPT_CLGI;
	v->iopm_base_pa = PA(mem.iopm);
	v->msrpm_base_pa = PA(mem.msrpm);
	v->asid = 1;
	v->tlb_control = SVM_TLB_CONTROL_FLUSH_ALL;
	if (npt) {
		v->nested_ctl = SVM_NESTED_CTL_NP_ENABLE;
		v->nested_cr3 = PA(mem.npt_pml4);
	}

	svm_seg(&v->cs, SEL_KCODE64, SVM_ATTR_CODE64, 0xffffffff, 0);
	svm_seg(&v->ss, SEL_KDATA, SVM_ATTR_DATA, 0xffffffff, 0);
	svm_seg(&v->ds, SEL_KDATA, SVM_ATTR_DATA, 0xffffffff, 0);
	svm_seg(&v->es, SEL_KDATA, SVM_ATTR_DATA, 0xffffffff, 0);
	svm_seg(&v->fs, SEL_KDATA, SVM_ATTR_DATA, 0xffffffff, 0);
	svm_seg(&v->gs, SEL_KDATA, SVM_ATTR_DATA, 0xffffffff, 0);
	svm_seg(&v->tr, SEL_TSS, SVM_ATTR_TSS64_BUSY, TSS64_LIMIT, cpu->tr_base);
	svm_seg(&v->gdtr, 0, 0, cpu->gdtr.limit, cpu->gdtr.base);
	svm_seg(&v->idtr, 0, 0, cpu->idtr.limit, cpu->idtr.base);
	v->cpl = 0;
	v->efer = cpu->efer | EFER_SVME;
	v->cr0 = cpu->cr0;
	v->cr3 = cpu->cr3;
	v->cr4 = cpu->cr4;
	v->dr6 = cpu->dr6;
	v->dr7 = cpu->dr7;
	v->g_pat = cpu->pat;
	v->rflags = RFLAGS_FIXED;
	v->rip = PA(rip);
	v->rsp = PA(mem.l2_stack + sizeof(mem.l2_stack));
	memset(&l2_gprs, 0, sizeof(l2_gprs));
	l2_gprs.rdi = rdi;
}

/* The next RIP after an intercepted instruction of `len` bytes (NRIPS, §15.7.1). */
static uint64_t svm_next_rip(unsigned int len)
{
	return has_nrips ? mem.vmcb.next_rip : mem.vmcb.rip + len;
}

/*
 * Run the L2's work (hv.h) and check each exit, printing each one unless
 * @quiet. Returns PROBE_PASS with the L2's result in *result, or
 * PROBE_FAIL after printing why.
 */
static int svm_run_work(uint64_t seed, uint64_t *result, bool quiet)
{
	struct vmcb *v = &mem.vmcb;
	static const uint64_t want[SVM_EXITS_MAX] = {SVM_EXIT_IOIO, SVM_EXIT_IOIO, SVM_EXIT_IOIO,
	                                             SVM_EXIT_HLT, SVM_EXIT_VMMCALL};
	const uint64_t io_in =
	    SVM_IOIO_TYPE_IN | SVM_IOIO_SZ32 | (uint64_t)HV_L2_PORT_SEED << SVM_IOIO_PORT_SHIFT;
	const uint64_t io_out = SVM_IOIO_SZ32 | (uint64_t)HV_L2_PORT_RESULT << SVM_IOIO_PORT_SHIFT;
	uint64_t lo = 0, hi = 0;

	for (unsigned int n = 0; n < SVM_EXITS_MAX; n++) {
		cpl0_call(svm_run_cpl0, 0);
		if (v->exit_code != want[n])
			return svm_unexpected(n + 1, want[n]);
		switch (n) {
		case 0:
			if ((v->exit_info1 & 0xffff007f) != io_in)
				return probe_fail(
				    "exit 1: IOIO EXITINFO1 0x%lx, expected 0x%lx (IN "
				    "dword from port 0x%x)",
				    v->exit_info1, io_in, HV_L2_PORT_SEED);
			v->rax = seed; /* IN EAX zero-extends into RAX */
			v->rip = v->exit_info2;
			break;
		case 1:
		case 2:
			if ((v->exit_info1 & 0xffff007f) != io_out)
				return probe_fail(
				    "exit %u: IOIO EXITINFO1 0x%lx, expected 0x%lx (OUT "
				    "dword to port 0x%x)",
				    n + 1, v->exit_info1, io_out, HV_L2_PORT_RESULT);
			*(n == 1 ? &lo : &hi) = v->rax & 0xffffffff;
			v->rip = v->exit_info2;
			break;
		case 3:
			if (has_nrips && v->next_rip != v->rip + HLT_LEN)
				return probe_fail("exit 4: HLT at 0x%lx, but next_rip 0x%lx",
				                  v->rip, v->next_rip);
			v->rip = svm_next_rip(HLT_LEN);
			break;
		case 4:
			if (v->rax != HV_L2_DONE)
				return probe_fail("exit 5: VMMCALL with rax 0x%lx, expected 0x%llx",
				                  v->rax, HV_L2_DONE);
			break;
		}
		if (!quiet)
			printf("probe: svm: exit %u: %s, EXITINFO1 0x%lx, EXITINFO2 0x%lx, next "
			       "rip 0x%lx\n",
			       n + 1, svm_exit_name(v->exit_code), v->exit_info1, v->exit_info2,
			       has_nrips ? v->next_rip : 0);
		v->clean = SVM_CLEAN_ALL;
		v->tlb_control = 0;
	}
	*result = hi << 32 | lo;
	return PROBE_PASS;
}

/*
 * The L2 of l2work: the exits of hv_l2_svm_work (hv.h: IN of the seed, OUT
 * of the result's two halves, HLT, VMMCALL with HV_L2_DONE), but in between
 * SVM_L2WORK_BLOCKS blocks of the L2's work, chained: hv_l2_expect() itself,
 * run by the L2 at CPL0 on its buffer at RDI. Entered as if called, on the
 * L2's stack; never returns.
 */
static void __attribute__((noreturn)) svm_l2_chain(uint64_t *buf)
{
	uint64_t x;

	/* L1 puts the whole 64-bit seed in RAX (svm_run_work()). */
	__asm__ volatile("inl %%dx, %%eax" : "=a"(x) : "d"(HV_L2_PORT_SEED));
	for (unsigned int i = 0; i < SVM_L2WORK_BLOCKS; i++)
		x = hv_l2_expect(x, buf);
	__asm__ volatile("outl %%eax, %%dx" : : "a"((uint32_t)x), "d"(HV_L2_PORT_RESULT));
	__asm__ volatile("outl %%eax, %%dx" : : "a"((uint32_t)(x >> 32)), "d"(HV_L2_PORT_RESULT));
	__asm__ volatile("hlt");
	__asm__ volatile("vmmcall" : : "a"(HV_L2_DONE));
	for (;;)
		__asm__ volatile("ud2"); /* L1 does not resume it here */
}

/*
 * l2work=N: N rounds of svm_l2_chain(), round R seeded with the result of
 * round R - 1 (round 0's is @seed), each on a fresh VMCB, so that the L2
 * computes for long between few exits. "round R/N" after each round
 * shows from outside how far the L2 has come (a restored
 * checkpoint sets it back). Then the same chain computed at CPL3 must give
 * the L2's last result and buffer; prints "probe: svm: l2work=N
 * result=0x..." (the same for every run with the same N and seed).
 */
static int svm_l2work(const struct hv_cpu_state *cpu, bool npt, uint64_t rounds, uint64_t seed)
{
	uint64_t x = seed, expect = seed, buf_pa = npt ? PA(mem.decoy) : PA(mem.buf);
	int r;

	printf("probe: svm: l2work: %lu rounds of %u x %u xorshift64 steps in the L2\n", rounds,
	       SVM_L2WORK_BLOCKS, HV_L2_ITERATIONS);
	for (uint64_t i = 1; i <= rounds; i++) {
		svm_vmcb_init(cpu, npt, (void *)svm_l2_chain, buf_pa);
		mem.vmcb.rsp -= 8; /* where a call would have put its return address */
		if ((r = svm_run_work(x, &x, true)) != PROBE_PASS) {
			printf("probe: svm: l2work: round %lu of %lu failed\n", i, rounds);
			return r;
		}
		printf("round %lu/%lu\n", i, rounds); /* short: each byte an exit */
	}
	printf("probe: svm: l2work: the L2 is done; checking its chain at CPL3\n");
	for (uint64_t i = 0; i < rounds * SVM_L2WORK_BLOCKS; i++)
		expect = hv_l2_expect(expect, expect_buf);
	if (x != expect)
		return probe_fail("l2work=%lu: the L2's last result 0x%lx, expected 0x%lx", rounds, x,
		                  expect);
	for (unsigned int i = 0; i < HV_L2_BUF_QWORDS; i++)
		if (mem.buf[i] != expect_buf[i])
			return probe_fail("l2work=%lu: L2 buffer word %u: 0x%lx, expected 0x%lx",
			                  rounds, i, mem.buf[i], expect_buf[i]);
	printf("probe: svm: l2work=%lu result=0x%016lx\n", rounds, x);
	return PROBE_PASS;
}

/* nested=off: SVM must be hidden and EFER.SVME refused. */
static int svm_check_hidden(bool svm)
{
	uint64_t efer, after;
	int r;

	if (svm)
		return probe_fail("nested=off, but CPUID.80000001h:ECX[2] (SVM) is set");
	if (rdmsr_safe(MSR_EFER, &efer) != FAULT_NONE)
		return probe_fail("reading EFER faulted");
	r = wrmsr_safe(MSR_EFER, efer | EFER_SVME);
	if (r == FAULT_NONE) {
		rdmsr_safe(MSR_EFER, &after);
		wrmsr_safe(MSR_EFER, efer);
		return probe_fail(
		    "setting EFER.SVME raised no #GP although SVM is hidden: EFER 0x%lx "
		    "-> 0x%lx (%s)",
		    efer, after, after & EFER_SVME ? "accepted" : "bit dropped silently");
	}
	if (r != EXC_GP)
		return probe_fail("setting EFER.SVME raised vector %d, expected #GP (13)", r);
	printf("probe: svm: CPUID.80000001h:ECX[2] clear; wrmsr EFER 0x%lx | SVME: #GP\n", efer);
	return probe_pass("SVM hidden: CPUID.80000001h:ECX[2] clear, setting EFER.SVME raises #GP");
}

/* EFER.SVME and VM_HSAVE_PA (§15.4, §15.30.4). */
static int svm_enable(uint64_t *efer)
{
	uint64_t vm_cr = 0;
	int r;

	if (rdmsr_safe(MSR_VM_CR, &vm_cr) == FAULT_NONE && (vm_cr & VM_CR_SVMDIS))
		return probe_fail("SVM is offered but VM_CR.SVMDIS is set (VM_CR 0x%lx)", vm_cr);
	if ((r = wrmsr_safe(MSR_VM_HSAVE_PA, PA(mem.hsave))) != FAULT_NONE)
		return probe_fail("wrmsr VM_HSAVE_PA 0x%lx: vector %d", PA(mem.hsave), r);
	if (rdmsr_safe(MSR_EFER, efer) != FAULT_NONE)
		return probe_fail("reading EFER faulted");
	if ((r = wrmsr_safe(MSR_EFER, *efer | EFER_SVME)) != FAULT_NONE)
		return probe_fail("setting EFER.SVME (EFER 0x%lx): vector %d", *efer, r);
	return PROBE_PASS;
}

int test_svm(void)
{
	const char *nested = param_get("nested"), *npt_param = param_get("npt");
	bool off = nested && strcmp(nested, "off") == 0, on = nested && strcmp(nested, "on") == 0;
	enum hv_vendor vendor = hv_vendor();
	bool svm = false, npt;
	struct cpuid_regs f;
	struct hv_cpu_state cpu;
	struct hv_round_trip rt = {0};
	uint64_t efer, result = 0, expect, iterations, l2work = 0;
	char timing[128] = "";
	int r;

	if (cpuid(0x80000000, 0).eax >= 0x80000001)
		svm = cpuid(0x80000001, 0).ecx & CPUID_80000001_ECX_SVM;
	if (off)
		return svm_check_hidden(svm);
	if (!svm && vendor == HV_VENDOR_INTEL)
		return probe_skip("Intel CPU: no AMD-V (test=vmx is its counterpart)");
	if (!svm && on)
		return probe_fail("nested=on, but CPUID.80000001h:ECX[2] (SVM) is clear");
	if (!svm)
		return probe_skip("SVM not offered (CPUID.80000001h:ECX[2] clear); nestvm "
		                  "--nested on offers it on an AMD-V host");
	if (!hv_param_iterations(&iterations))
		return probe_fail("bad iterations=%s", param_get("iterations"));
	if (param_get("l2work") && (!param_u64("l2work", &l2work) || l2work > SVM_L2WORK_MAX))
		return probe_fail("bad l2work=%s (0 to %u)", param_get("l2work"), SVM_L2WORK_MAX);

	f = cpuid(CPUID_SVM_FEATURES, 0);
	has_nrips = f.edx & CPUID_8000000A_EDX_NRIPS;
	npt = f.edx & CPUID_8000000A_EDX_NP;
	printf("probe: svm: revision %u, %u ASIDs, nested paging %s, NRIPS %s, VMCB clean bits "
	       "%s\n",
	       f.eax & 0xff, f.ebx, npt ? "yes" : "no", has_nrips ? "yes" : "no",
	       f.edx & CPUID_8000000A_EDX_VMCB_CLEAN ? "yes" : "no");
	if (npt_param && strcmp(npt_param, "on") == 0 && !npt)
		return probe_fail("npt=on, but CPUID 8000000Ah:EDX[0] (NP) is clear");
	if (npt_param && strcmp(npt_param, "off") == 0)
		npt = false;

	if ((r = svm_enable(&efer)) != PROBE_PASS)
		return r;
	hv_cpu_state_read(&cpu);
	memset(mem.iopm, 0xff, sizeof(mem.iopm));
	memset(mem.msrpm, 0xff, sizeof(mem.msrpm));
	memset(mem.decoy, DECOY_BYTE, sizeof(mem.decoy));
	memset(mem.buf, 0, sizeof(mem.buf));
	if (npt)
		svm_npt_build();
	expect = hv_l2_expect(HV_L2_SEED, expect_buf);

	if (npt)
		printf("probe: svm: L2: 64-bit at CPL0, nested paging: nCR3 0x%lx, its buffer at "
		       "guest-physical 0x%lx -> 0x%lx\n",
		       PA(mem.npt_pml4), PA(mem.decoy), PA(mem.buf));
	else
		printf("probe: svm: L2: 64-bit at CPL0 on the L1's page tables (no nested paging), "
		       "its buffer at 0x%lx\n",
		       PA(mem.buf));
	svm_vmcb_init(&cpu, npt, hv_l2_svm_work, npt ? PA(mem.decoy) : PA(mem.buf));
	if ((r = svm_run_work(HV_L2_SEED, &result, false)) != PROBE_PASS)
		return r;
	if (result != expect)
		return probe_fail("L2 result 0x%lx, expected 0x%lx", result, expect);
	for (unsigned int i = 0; i < HV_L2_BUF_QWORDS; i++)
		if (mem.buf[i] != expect_buf[i])
			return probe_fail("L2 buffer word %u: 0x%lx, expected 0x%lx%s", i,
			                  mem.buf[i], expect_buf[i],
			                  npt ? " (nested paging did not map the decoy page)" : "");
	for (unsigned int i = 0; npt && i < sizeof(mem.decoy); i++)
		if (((uint8_t *)mem.decoy)[i] != DECOY_BYTE)
			return probe_fail("the decoy page changed at byte %u: the L2 wrote to its "
			                  "guest-physical page, not where nCR3 maps it",
			                  i);
	printf("probe: svm: L2 result 0x%lx as expected, buffer as expected\n", result);
	if (l2work && (r = svm_l2work(&cpu, npt, l2work, result)) != PROBE_PASS)
		return r;

	if (iterations) {
		const uint64_t warmup = 16;

		svm_vmcb_init(&cpu, npt, hv_l2_svm_loop, 0);
		rt.iterations = warmup;
		cpl0_call(svm_round_trips_cpl0, (long)&rt);
		if (rt.done == warmup) {
			rt = (struct hv_round_trip){.iterations = iterations};
			cpl0_call(svm_round_trips_cpl0, (long)&rt);
		}
		if (rt.done < rt.iterations)
			return svm_unexpected(rt.done + 1, SVM_EXIT_VMMCALL);
		hv_round_trip_report("svm", "l2 vmmcall", &rt, timing, sizeof(timing));
	}
	wrmsr_safe(MSR_EFER, efer);
	return probe_pass("L2 ran (%s, %u exits as expected)%s%s%s",
	                  npt ? "nested paging" : "no nested paging", SVM_EXITS_MAX,
	                  l2work ? "; l2work chain as expected" : "", timing[0] ? "; " : "",
	                  timing);
}
