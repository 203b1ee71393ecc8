/* SPDX-License-Identifier: MIT */
/*
 * Entry points and CPL0 code of the probe guest.
 *
 * Three ways in, all converging on probe_main() at CPL3:
 *   payload + 0x000  startup_32: Linux 32-bit boot protocol (ESI = boot_params)
 *   payload + 0x200  startup_64: Linux 64-bit boot protocol (RSI = boot_params)
 *   pvh_entry        PVH, named by the Xen ELF note (EBX = hvm_start_info)
 * plus ap_trampoline, the real-mode code the smp test copies below 1 MiB.
 *
 * CPL0 code may be emulated one instruction at a time, so it is kept to
 * about fifty instructions: the page tables are static (.data), the IDT
 * entries and the TSS are filled in later at CPL3 (the whole address space
 * is user-accessible), and `test=exit` at the start of the command line is
 * answered before anything else.
 */
#include "arch.h"
#include "arch/x86/layout.h"

/*
 * If the command line at %eax starts with "test=exit" followed by a space or
 * its end, report PASS on the debug-exit port right away.
 */
.macro FAST_EXIT
	testl	%eax, %eax
	jz	1f
	cmpl	$0x74736574, (%eax)		/* "test" */
	jne	1f
	cmpl	$0x6978653d, 4(%eax)		/* "=exi" */
	jne	1f
	cmpb	$'t', 8(%eax)
	jne	1f
	testb	$0xdf, 9(%eax)			/* NUL or space */
	jnz	1f
	movl	$FAST_EXIT_STATUS, %eax
	outl	%eax, $PORT_DEBUG_EXIT
2:	cli
	hlt
	jmp	2b
1:
.endm

	.section .head, "ax"
	.code32
	.globl	startup_32
startup_32:
	movl	BP_CMD_LINE_PTR(%esi), %eax
	FAST_EXIT
	movl	$BOOT_LINUX, %edi
	jmp	enter_long_mode

	.org	0x200
	.code64
	.globl	startup_64
startup_64:
	movl	BP_CMD_LINE_PTR(%rsi), %eax
	FAST_EXIT
	movl	$BOOT_LINUX, %edi
	jmp	start64

	.code32
	.globl	pvh_entry
pvh_entry:
	movl	PVH_CMDLINE(%ebx), %eax
	FAST_EXIT
	movl	%ebx, %esi
	movl	$BOOT_PVH, %edi
	/* fall through */

/*
 * From 32-bit protected mode with paging off to 64-bit mode on the static
 * identity map. Keeps ESI (boot info) and EDI (boot path).
 */
enter_long_mode:
	lgdt	gdt_ptr
	movl	%cr4, %eax
	orl	$CR4_PAE, %eax
	movl	%eax, %cr4
	movl	$pml4, %eax
	movl	%eax, %cr3
	movl	$MSR_EFER, %ecx
	rdmsr
	orl	$EFER_LME, %eax
	wrmsr
	movl	%cr0, %eax
	orl	$(CR0_PG | CR0_PE), %eax
	movl	%eax, %cr0
	cmpl	$BOOT_AP, %edi
	je	1f
	ljmp	$SEL_KCODE64, $start64
1:	ljmp	$SEL_KCODE64, $ap_start64

	.code64
/* Boot processor in 64-bit mode: load our GDT, page tables, TSS and IDT. */
start64:
	movq	$kstack_top, %rsp
	movl	%esi, %esi			/* upper halves are undefined after */
	movl	%edi, %edi			/* a 32-bit entry */
	lgdt	gdt_ptr
	pushq	$SEL_KCODE64
	pushq	$1f
	lretq
1:	movl	$SEL_KDATA, %eax
	movw	%ax, %ds
	movw	%ax, %es
	movw	%ax, %ss
	movw	%ax, %fs
	movw	%ax, %gs
	movq	$pml4, %rax
	movq	%rax, %cr3

	movl	$tss, %eax			/* TSS base into its descriptor */
	movw	%ax, gdt_tss + 2
	shrl	$16, %eax
	movb	%al, gdt_tss + 4
	movb	%ah, gdt_tss + 7
	movl	$SEL_TSS, %eax
	ltr	%ax
	lidt	idt_ptr

	/* probe_main(boot path, boot info) at CPL3, interrupts off. */
	pushq	$(SEL_UDATA | 3)
	pushq	$(ustack_top - 8)
	pushq	$RFLAGS_FIXED
	pushq	$(SEL_UCODE64 | 3)
	pushq	$probe_main
	iretq

/*
 * An AP checks in: sets its local APIC ID in ap_seen, counts a CPUID.1
 * initial APIC ID that differs from it in ap_cpuid_mismatch, counts itself
 * in ap_count. Then it halts, unless smp_start() set ap_user_entry: then it
 * takes the next slot (below AP_SLOTS, else it halts), loads the slot's
 * TSS and the IDT, and calls ap_user_entry(ap_user_arg, slot) at CPL3 on
 * the slot's user stack, interrupts off. The entry must not return; its
 * system calls and exceptions run on the slot's kernel stack.
 */
ap_start64:
	movl	$(XAPIC_BASE + XAPIC_ID), %eax
	movl	(%rax), %esi
	shrl	$24, %esi
	lock btsl %esi, ap_seen
	movl	$1, %eax
	cpuid
	shrl	$24, %ebx
	cmpl	%ebx, %esi
	je	1f
	lock incl ap_cpuid_mismatch
1:	lock incl ap_count
	movq	ap_user_entry, %rbx
	testq	%rbx, %rbx
	jz	2f
	movl	$1, %ecx
	lock xaddl %ecx, ap_slot_next
	cmpl	$AP_SLOTS, %ecx
	jae	2f
	movl	%ecx, %eax
	shll	$4, %eax
	addl	$SEL_AP_TSS, %eax
	ltr	%ax
	lidt	idt_ptr
	leal	1(%ecx), %eax
	shll	$AP_KSTACK_SHIFT, %eax
	leaq	ap_kstacks(%rax), %rsp
	leal	1(%ecx), %eax
	shll	$AP_USTACK_SHIFT, %eax
	leaq	(ap_ustacks - 8)(%rax), %rdx
	pushq	$(SEL_UDATA | 3)
	pushq	%rdx
	pushq	$RFLAGS_FIXED
	pushq	$(SEL_UCODE64 | 3)
	pushq	%rbx
	movq	ap_user_arg, %rdi
	movl	%ecx, %esi
	iretq
2:	cli
	hlt
	jmp	2b

	.text
/*
 * The system call: `ud2` at CPL3 with RDI = SYS_* number, RSI and RDX =
 * arguments, result in RAX (see probe_syscall()). Entered from the #UD stub
 * with vector, error code and the CPU's frame on the stack; any other #UD
 * is reported as an exception. A #UD rather than SYSCALL or `int $n`: KVM's
 * PVM mode delivers exceptions from CPL3 to a guest that is not PVM-aware,
 * but not SYSCALL (it stays at CPL3) or software interrupts (it injects #UD).
 */
ud_entry:
	testb	$3, 24(%rsp)			/* CS: from CPL3? */
	jz	exception_common
	movq	16(%rsp), %rax			/* RIP: at a ud2? */
	cmpw	$0x0b0f, (%rax)
	jne	exception_common
	addq	$2, 16(%rsp)			/* return behind it */
	subq	$8, %rsp			/* 7 words on the stack: realign */
	call	syscall_dispatch
	addq	$24, %rsp
	iretq

	.globl	halt_forever
halt_forever:
	cli
	hlt
	jmp	halt_forever

	.globl	flush_tlb
flush_tlb:
	movq	%cr3, %rax
	movq	%rax, %cr3
	ret

/* Triple fault: with an empty IDT the #UD becomes #GP, then #DF, then reset. */
	.globl	triple_fault
triple_fault:
	lidt	idt_empty
	ud2
	jmp	halt_forever

/*
 * A triple fault that ends as the lab's own L1 triple fault does
 * (tests/lab/README.md, "Snapshots"), for the test of the lab's guard
 * against it (tests/lab/scenarios/trace-lib.sh): an exit to user space (an
 * OUT to port 0x80), then at the very next instruction a #PF whose
 * delivery, through an IDT on a page that is not mapped, faults again:
 * #DF, whose delivery faults too, then shutdown.
 */
#define UNMAPPED 0x8000000000			/* PML4 entry 1: not present */
	.globl	triple_fault_pf
triple_fault_pf:
	lidt	idt_unmapped
	outb	%al, $0x80
	movabsq	UNMAPPED, %rax
	jmp	halt_forever

/*
 * The lab's other ending of that fault (tests/lab/scenarios/trace-lib.sh,
 * l1_npf_walk): an OUT, then CR3 loaded with a page outside the guest's RAM,
 * so that the next fetch walks page tables that are not memory.
 */
#define NOT_RAM 0x7f000000
	.globl	triple_fault_cr3
triple_fault_cr3:
	outb	%al, $0x80
	movq	$NOT_RAM, %rax
	movq	%rax, %cr3
	jmp	halt_forever

/*
 * Exception stubs, 16 bytes apart: vector N's handler is exc_stubs + 16 * N.
 * Each leaves vector, error code (0 if the CPU pushes none) and the CPU's
 * frame on the stack for exception_report().
 */
.macro EXC vec
	.balign	16
	.if (\vec != 8) && (\vec != 10) && (\vec != 11) && (\vec != 12) && \
	    (\vec != 13) && (\vec != 14) && (\vec != 17) && (\vec != 21) && \
	    (\vec != 29) && (\vec != 30)
	pushq	$0
	.endif
	pushq	$\vec
	.if \vec == 6
	jmp	ud_entry
	.else
	jmp	exception_common
	.endif
.endm

	.balign	16
	.globl	exc_stubs
exc_stubs:
	.irp	v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	EXC	\v
	.endr

/*
 * A fault at an instruction listed in the exception table (__ex_table: pairs
 * of instruction address and fixup address, EX_TABLE in hv.h) resumes at its
 * fixup with RAX = the vector; the other registers are kept. Anything else
 * is reported and ends the test. Stack: RDX, RCX, vector, error, CPU frame.
 */
exception_common:
	pushq	%rcx
	pushq	%rdx
	movq	32(%rsp), %rdx			/* the faulting RIP */
	movq	$__ex_table_start, %rcx
1:	cmpq	$__ex_table_end, %rcx
	jae	3f
	cmpq	(%rcx), %rdx
	je	2f
	addq	$16, %rcx
	jmp	1b
2:	movq	8(%rcx), %rdx
	movq	%rdx, 32(%rsp)			/* resume at the fixup */
	movq	16(%rsp), %rax			/* with RAX = vector */
	popq	%rdx
	popq	%rcx
	addq	$16, %rsp			/* vector and error code */
	iretq
3:	popq	%rdx
	popq	%rcx
	movq	%rsp, %rdi
	andq	$-16, %rsp
	call	exception_report
	jmp	halt_forever

/*
 * AP trampoline, copied to AP_TRAMPOLINE and entered in real mode at
 * CS:IP = (AP_TRAMPOLINE >> 4):0 by a SIPI. Only CS-relative references
 * inside the copy; the GDT and the 32-bit code stay in the image.
 */
	.code16
	.globl	ap_trampoline, ap_trampoline_end
ap_trampoline:
	cli
	lgdtl	%cs:(ap_gdt_ptr - ap_trampoline)
	movl	%cr0, %eax
	orl	$CR0_PE, %eax
	movl	%eax, %cr0
	ljmpl	$SEL_KCODE32, $ap_entry32
	.balign	4
ap_gdt_ptr:
	.word	gdt_end - gdt - 1
	.long	gdt
ap_trampoline_end:

	.code32
ap_entry32:
	movl	$SEL_KDATA, %eax
	movw	%ax, %ds
	movw	%ax, %es
	movw	%ax, %ss
	movl	$BOOT_AP, %edi
	jmp	enter_long_mode

	.data
	.balign	16
	.globl	gdt
gdt:
	.quad	0
	.quad	0x00af9a000000ffff		/* SEL_KCODE64 */
	.quad	0x00cf92000000ffff		/* SEL_KDATA */
	.quad	0x00cffa000000ffff		/* SEL_UCODE32 */
	.quad	0x00cff2000000ffff		/* SEL_UDATA */
	.quad	0x00affa000000ffff		/* SEL_UCODE64 */
	.quad	0x00cf9a000000ffff		/* SEL_KCODE32 */
gdt_tss:
	.quad	0x0000890000000067		/* SEL_TSS, base filled in */
	.quad	0
	.globl	gdt_ap_tss
gdt_ap_tss:					/* SEL_AP_TSS: filled in by smp_start() */
	.fill	2 * AP_SLOTS, 8, 0
gdt_end:

	.balign	8
gdt_ptr:
	.word	gdt_end - gdt - 1
	.quad	gdt
idt_ptr:
	.word	256 * 16 - 1
	.quad	idt
idt_empty:
	.word	0
	.quad	0
idt_unmapped:
	.word	256 * 16 - 1
	.quad	UNMAPPED

/*
 * Identity map of the first 4 GiB with 2 MiB pages, all user-accessible;
 * the fourth GiB (MMIO: PCI window, ECAM, APICs) uncached. RAM above 4 GiB
 * is mapped at run time by paging_map_high().
 */
	.balign	4096
	.globl	pml4, pdpt
pml4:
	.quad	pdpt + (PTE_P | PTE_RW | PTE_US)
	.fill	511, 8, 0
pdpt:
	.quad	pd + 0x0000 + (PTE_P | PTE_RW | PTE_US)
	.quad	pd + 0x1000 + (PTE_P | PTE_RW | PTE_US)
	.quad	pd + 0x2000 + (PTE_P | PTE_RW | PTE_US)
	.quad	pd + 0x3000 + (PTE_P | PTE_RW | PTE_US)
	.fill	508, 8, 0
pd:
	.set	addr, 0
	.rept	1536
	.quad	addr + (PTE_P | PTE_RW | PTE_US | PTE_PS)
	.set	addr, addr + 0x200000
	.endr
	.rept	512
	.quad	addr + (PTE_P | PTE_RW | PTE_US | PTE_PS | PTE_PCD | PTE_PWT)
	.set	addr, addr + 0x200000
	.endr

/* PVH entry note (Xen public/elfnote.h); 8-byte desc like Linux's vmlinux. */
	.section .note.Xen, "a", @note
	.balign	4
	.long	4				/* namesz */
	.long	8				/* descsz */
	.long	18				/* XEN_ELFNOTE_PHYS32_ENTRY */
	.asciz	"Xen"
	.balign	4
	.quad	pvh_entry

/* Stacks: not cleared at boot, not in the file. */
	.section .stack, "aw", @nobits
	.balign	4096
	.space	8192
	.globl	kstack_top
kstack_top:
	.space	16384
	.globl	ustack_top
ustack_top:
	.globl	ap_kstacks, ap_ustacks
ap_kstacks:					/* AP slot N's stack tops at */
	.space	AP_SLOTS << AP_KSTACK_SHIFT	/* ap_kstacks + (N + 1) << SHIFT */
ap_ustacks:
	.space	AP_SLOTS << AP_USTACK_SHIFT

	.section .note.GNU-stack, "", @progbits
