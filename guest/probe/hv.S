/* SPDX-License-Identifier: MIT */
/*
 * Assembly of the probe's hypervisor tests (hv.h): CPL0 instructions that
 * may fault, the L1's world switches (SVM: AMD APM vol. 2 §15.5; VMX: Intel
 * SDM vol. 3C ch. 26-28) and the L2 guest's code.
 */
#include "arch.h"
#include "hv.h"

/* A fault at \from resumes at \to with RAX = vector (head.S, exception_common). */
.macro EX_ENTRY from, to
	.pushsection .ex_table, "a"
	.balign	8
	.quad	\from, \to
	.popsection
.endm

	.text
/* long hv_rdmsr_safe_cpl0(uint32_t msr, uint64_t *value) */
	.globl	hv_rdmsr_safe_cpl0
hv_rdmsr_safe_cpl0:
	movl	%edi, %ecx
1:	rdmsr
	movl	%eax, %eax
	shlq	$32, %rdx
	orq	%rdx, %rax
	movq	%rax, (%rsi)
	movq	$FAULT_NONE, %rax
2:	ret
	EX_ENTRY 1b, 2b

/* long hv_wrmsr_safe_cpl0(uint32_t msr, uint64_t value) */
	.globl	hv_wrmsr_safe_cpl0
hv_wrmsr_safe_cpl0:
	movl	%edi, %ecx
	movl	%esi, %eax
	movq	%rsi, %rdx
	shrq	$32, %rdx
1:	wrmsr
	movq	$FAULT_NONE, %rax
2:	ret
	EX_ENTRY 1b, 2b

/* long hv_write_cr0_safe_cpl0(long value) */
	.globl	hv_write_cr0_safe_cpl0
hv_write_cr0_safe_cpl0:
1:	movq	%rdi, %cr0
	movq	$FAULT_NONE, %rax
2:	ret
	EX_ENTRY 1b, 2b

/* long hv_write_cr4_safe_cpl0(long value) */
	.globl	hv_write_cr4_safe_cpl0
hv_write_cr4_safe_cpl0:
1:	movq	%rdi, %cr4
	movq	$FAULT_NONE, %rax
2:	ret
	EX_ENTRY 1b, 2b

.macro PUSH_CALLEE_SAVED
	pushq	%rbp
	pushq	%rbx
	pushq	%r12
	pushq	%r13
	pushq	%r14
	pushq	%r15
.endm

.macro POP_CALLEE_SAVED
	popq	%r15
	popq	%r14
	popq	%r13
	popq	%r12
	popq	%rbx
	popq	%rbp
.endm

/* Load the guest's registers from struct hv_gprs at \g, \g itself last. */
.macro LOAD_GUEST_GPRS g, skip_rax
	.if \skip_rax == 0
	movq	HV_GPR_RAX(\g), %rax
	.endif
	movq	HV_GPR_RBX(\g), %rbx
	movq	HV_GPR_RCX(\g), %rcx
	movq	HV_GPR_RDX(\g), %rdx
	.ifnc \g, %rsi
	movq	HV_GPR_RSI(\g), %rsi
	.endif
	.ifnc \g, %rdi
	movq	HV_GPR_RDI(\g), %rdi
	.endif
	movq	HV_GPR_RBP(\g), %rbp
	movq	HV_GPR_R8(\g), %r8
	movq	HV_GPR_R9(\g), %r9
	movq	HV_GPR_R10(\g), %r10
	movq	HV_GPR_R11(\g), %r11
	movq	HV_GPR_R12(\g), %r12
	movq	HV_GPR_R13(\g), %r13
	movq	HV_GPR_R14(\g), %r14
	movq	HV_GPR_R15(\g), %r15
	.ifc \g, %rsi
	movq	HV_GPR_RSI(\g), %rsi
	.endif
	.ifc \g, %rdi
	movq	HV_GPR_RDI(\g), %rdi
	.endif
.endm

/* Store the guest's registers to struct hv_gprs at \g, except \g itself. */
.macro STORE_GUEST_GPRS g, skip_rax
	.if \skip_rax == 0
	movq	%rax, HV_GPR_RAX(\g)
	.endif
	movq	%rbx, HV_GPR_RBX(\g)
	movq	%rcx, HV_GPR_RCX(\g)
	movq	%rdx, HV_GPR_RDX(\g)
	.ifnc \g, %rsi
	movq	%rsi, HV_GPR_RSI(\g)
	.endif
	.ifnc \g, %rdi
	movq	%rdi, HV_GPR_RDI(\g)
	.endif
	movq	%rbp, HV_GPR_RBP(\g)
	movq	%r8, HV_GPR_R8(\g)
	movq	%r9, HV_GPR_R9(\g)
	movq	%r10, HV_GPR_R10(\g)
	movq	%r11, HV_GPR_R11(\g)
	movq	%r12, HV_GPR_R12(\g)
	movq	%r13, HV_GPR_R13(\g)
	movq	%r14, HV_GPR_R14(\g)
	movq	%r15, HV_GPR_R15(\g)
.endm

/*
 * void svm_vmrun_cpl0(uint64_t vmcb_pa, struct hv_gprs *gprs, uint64_t host_save_pa)
 *
 * One entry into the L2 and back (APM vol. 2 §15.5, §15.17): with GIF
 * clear, VMSAVE the L1's hidden state (FS, GS, TR, LDTR, KernelGSBase,
 * STAR/LSTAR/CSTAR/SFMASK, SYSENTER) to host_save_pa, VMLOAD the L2's from
 * its VMCB, load the L2's registers that the VMCB does not hold (all but
 * RAX, RSP, RIP), VMRUN. After the #VMEXIT, which restores the L1's RAX,
 * RSP, RIP, control registers and segments from VM_HSAVE_PA, the same in
 * reverse. The exit code and the L2's RAX, RSP and RIP are in the VMCB.
 */
	.globl	svm_vmrun_cpl0
svm_vmrun_cpl0:
	PUSH_CALLEE_SAVED
	pushq	%rdx				/* 16(%rsp): host save area */
	pushq	%rdi				/* 8(%rsp): VMCB */
	pushq	%rsi				/* (%rsp): guest registers */
	clgi
	movq	%rdx, %rax
	vmsave	%rax
	movq	%rdi, %rax
	vmload	%rax
	LOAD_GUEST_GPRS %rsi, 1
	vmrun	%rax
	xchgq	%rsi, (%rsp)			/* guest RSI on the stack */
	STORE_GUEST_GPRS %rsi, 1
	popq	HV_GPR_RSI(%rsi)
	vmsave	%rax				/* RAX = VMCB again */
	popq	%rax
	popq	%rax
	vmload	%rax				/* the L1's hidden state */
	stgi
	POP_CALLEE_SAVED
	ret

/*
 * long vmx_enter_cpl0(struct hv_gprs *gprs, long launched)
 *
 * VMLAUNCH (launched == 0) or VMRESUME the current VMCS with the guest's
 * registers from gprs (SDM vol. 3C §26, §27.5). HOST_RSP points at the
 * saved gprs pointer, HOST_RIP is vmx_exit_cpl0, which stores the guest's
 * registers and returns 0 from here. A VM-entry that fails as an
 * instruction (VMfailInvalid: CF, VMfailValid: ZF) returns 1 or 2 at once.
 */
	.globl	vmx_enter_cpl0
vmx_enter_cpl0:
	PUSH_CALLEE_SAVED
	pushq	%rdi				/* (%rsp): guest registers */
	movq	$VMCS_HOST_RSP, %rax
	vmwrite	%rsp, %rax
	jna	1f
	testq	%rsi, %rsi			/* flags survive the movs below */
	LOAD_GUEST_GPRS %rdi, 0
	jnz	2f
	vmlaunch
	jmp	1f
2:	vmresume
1:	movl	$1, %eax
	jc	3f
	movl	$2, %eax
3:	addq	$8, %rsp
	POP_CALLEE_SAVED
	ret

	.globl	vmx_exit_cpl0
vmx_exit_cpl0:
	pushq	%rdi				/* guest RDI */
	movq	8(%rsp), %rdi
	STORE_GUEST_GPRS %rdi, 0
	popq	HV_GPR_RDI(%rdi)
	addq	$8, %rsp
	xorl	%eax, %eax
	POP_CALLEE_SAVED
	ret

/*
 * The L2 guest (hv.h has the protocol): 64-bit code at CPL0, entered with
 * RDI = its buffer. Uses RAX, RCX, RDX, RSI, R8.
 */
.macro XORSHIFT64				/* RAX = next xorshift64 state */
	movq	%rax, %r8
	shlq	$13, %r8
	xorq	%r8, %rax
	movq	%rax, %r8
	shrq	$7, %r8
	xorq	%r8, %rax
	movq	%rax, %r8
	shlq	$17, %r8
	xorq	%r8, %rax
.endm

.macro L2_WORK hypercall
	movw	$HV_L2_PORT_SEED, %dx
	inl	%dx, %eax
	xorl	%esi, %esi
	movl	$HV_L2_ITERATIONS, %ecx
1:	XORSHIFT64
	addq	%rax, %rsi
	decl	%ecx
	jnz	1b
	xorl	%ecx, %ecx
2:	XORSHIFT64
	movq	%rax, (%rdi,%rcx,8)
	incl	%ecx
	cmpl	$HV_L2_BUF_QWORDS, %ecx
	jb	2b
	xorl	%ecx, %ecx
3:	rolq	$1, %rsi
	xorq	(%rdi,%rcx,8), %rsi
	incl	%ecx
	cmpl	$HV_L2_BUF_QWORDS, %ecx
	jb	3b
	movw	$HV_L2_PORT_RESULT, %dx
	movl	%esi, %eax
	outl	%eax, %dx
	movq	%rsi, %rax
	shrq	$32, %rax
	outl	%eax, %dx
	hlt
	movabsq	$HV_L2_DONE, %rax
	\hypercall
	ud2					/* L1 does not resume it here */
.endm

	.balign	16
	.globl	hv_l2_svm_work
hv_l2_svm_work:
	L2_WORK	vmmcall

	.balign	16
	.globl	hv_l2_svm_loop
hv_l2_svm_loop:
	vmmcall
	jmp	hv_l2_svm_loop

	.balign	16
	.globl	hv_l2_vmx_work
hv_l2_vmx_work:
	L2_WORK	vmcall

	.balign	16
	.globl	hv_l2_vmx_loop
hv_l2_vmx_loop:
	vmcall
	jmp	hv_l2_vmx_loop

	.section .note.GNU-stack, "", @progbits
