/* SPDX-License-Identifier: MIT */
/*
 * Real-mode setup code of probe.bzImage, for loaders that run it (QEMU's
 * -kernel with a bzImage). Placed at file offset 0x280 by mkbzimage and
 * entered through the jump at 0x200, so it runs at IP 0x80 with CS = zero
 * page segment + 0x20 and DS = ES = SS = the zero page segment (Linux boot
 * protocol, "Running the kernel"). Since this code sits where the zero
 * page's e820 table would be, it builds boot_params 4 KiB further up: a copy
 * of the loader's first 0x280 bytes (header, command line pointer) and the
 * e820 table from the BIOS. Then it enters 32-bit protected mode and jumps
 * to hdr.code32_start with ESI = boot_params: the 32-bit boot protocol that
 * startup_32 in head.S expects. Loaders that use the 64-bit entry never
 * run it.
 */
#include "arch.h"

#define BP_CODE32_START 0x214
#define E820_SMAP 0x534d4150
#define E820_ENTRY_SIZE 20
#define SETUP_CS_OFFSET 0x200	/* CS base minus DS base */
#define SETUP_CODE 0x280	/* where mkbzimage puts this code */
#define BOOT_PARAMS 0x1000	/* our boot_params, from DS; below the loader's stack */
#define FLAT_CODE32 0x08
#define FLAT_DATA 0x10

	.code16
	.text
	.globl	setup_start
setup_start:
	cli
	cld
	xorw	%si, %si			/* copy the header ... */
	movw	$BOOT_PARAMS, %di
	movw	$SETUP_CODE / 2, %cx
	rep movsw
	xorw	%ax, %ax			/* ... and clear the rest */
	movw	$(4096 - SETUP_CODE) / 2, %cx
	rep stosw

	xorl	%ebx, %ebx			/* e820 continuation */
	movw	$BOOT_PARAMS + BP_E820_TABLE, %di
	xorw	%bp, %bp			/* entries */
1:	movl	$0xe820, %eax
	movl	$E820_SMAP, %edx
	movl	$E820_ENTRY_SIZE, %ecx
	int	$0x15
	jc	2f
	cmpl	$E820_SMAP, %eax
	jne	2f
	addw	$E820_ENTRY_SIZE, %di
	incw	%bp
	testl	%ebx, %ebx
	jz	2f
	cmpw	$BP_E820_MAX, %bp
	jb	1b
2:	movw	%bp, %ax
	movb	%al, BOOT_PARAMS + BP_E820_ENTRIES

	xorl	%ebx, %ebx			/* EBX = linear address of DS */
	movw	%ds, %bx
	shll	$4, %ebx
	leal	BOOT_PARAMS(%ebx), %esi
	leal	SETUP_CS_OFFSET + setup_gdt(%ebx), %eax
	movl	%eax, %cs:setup_gdtr + 2
	lgdtl	%cs:setup_gdtr
	movl	BP_CODE32_START, %eax
	movl	%eax, %cs:setup_jump

	movl	%cr0, %eax
	orl	$CR0_PE, %eax
	movl	%eax, %cr0
	movw	$FLAT_DATA, %ax
	movw	%ax, %ds
	movw	%ax, %es
	movw	%ax, %fs
	movw	%ax, %gs
	movw	%ax, %ss
	ljmpl	*%cs:setup_jump

	.balign	8
setup_gdt:
	.quad	0
	.quad	0x00cf9a000000ffff		/* FLAT_CODE32 */
	.quad	0x00cf92000000ffff		/* FLAT_DATA */
setup_gdtr:
	.word	3 * 8 - 1
	.long	0
setup_jump:
	.long	0
	.word	FLAT_CODE32

	.section .note.GNU-stack, "", @progbits
