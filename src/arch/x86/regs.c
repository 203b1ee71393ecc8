/* SPDX-License-Identifier: MIT */
#include "arch/x86/regs.h"

#include "arch/x86/layout.h"
#include "kvm/kvm.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A flat segment: base 0, limit 4 GiB (Intel SDM vol. 3A §3.4.5). */
static struct kvm_segment regs_flat_segment(uint16_t selector, uint8_t type, bool code64)
{
	return (struct kvm_segment){
	    .base = 0,
	    .limit = 0xffffffff,
	    .selector = selector,
	    .type = type,
	    .present = 1,
	    .dpl = 0,
	    .db = code64 ? 0 : 1,
	    .s = 1,
	    .l = code64 ? 1 : 0,
	    .g = 1,
	};
}

void regs_boot_init(const struct boot_info *info, struct kvm_regs *regs, struct kvm_sregs *sregs)
{
	const uint8_t type_code = 0xb, type_data = 0x3, type_tss_busy = 0xb;
	bool long64 = info->mode == BOOT_ENTRY_LONG64;
	struct kvm_segment data = regs_flat_segment(BOOT_GDT_DS, type_data, false);

	memset(regs, 0, sizeof(*regs));
	regs->rflags = X86_RFLAGS_RESERVED1;
	regs->rip = info->entry;
	if (long64) {
		regs->rsi = info->info_gpa; /* boot_params */
		regs->rsp = BOOT_STACK_TOP;
		regs->rbp = BOOT_STACK_TOP;
	} else {
		regs->rbx = info->info_gpa; /* hvm_start_info */
	}

	sregs->cs = long64 ? regs_flat_segment(BOOT_GDT_CS64, type_code, true)
	                   : regs_flat_segment(BOOT_GDT_CS32, type_code, false);
	sregs->ds = sregs->es = sregs->fs = sregs->gs = sregs->ss = data;
	sregs->tr = (struct kvm_segment){
	    .selector = BOOT_GDT_TSS, .limit = 0x67, .type = type_tss_busy, .present = 1};
	sregs->gdt.base = LAYOUT_GDT;
	sregs->gdt.limit = BOOT_GDT_ENTRIES * 8 - 1;
	sregs->idt.base = 0;
	sregs->idt.limit = 0;
	sregs->cr0 = X86_CR0_PE | X86_CR0_ET;
	sregs->cr4 = 0;
	sregs->efer = 0;
	if (long64) {
		sregs->cr0 |= X86_CR0_PG;
		sregs->cr3 = LAYOUT_PAGE_TABLES;
		sregs->cr4 = X86_CR4_PAE;
		sregs->efer = X86_EFER_LME | X86_EFER_LMA;
	}
}

void regs_format(const struct kvm_regs *r, const struct kvm_sregs *s, char *buf, size_t len)
{
	snprintf(buf, len,
	         "RIP=%016llx RSP=%016llx RFLAGS=%08llx\n"
	         "  RAX=%016llx RBX=%016llx RCX=%016llx RDX=%016llx\n"
	         "  RSI=%016llx RDI=%016llx RBP=%016llx\n"
	         "  CS=%04x(base %llx l=%u db=%u) SS=%04x CR0=%llx CR2=%llx CR3=%llx CR4=%llx "
	         "EFER=%llx\n"
	         "  GDT=%llx/%x IDT=%llx/%x",
	         r->rip, r->rsp, r->rflags, r->rax, r->rbx, r->rcx, r->rdx, r->rsi, r->rdi, r->rbp,
	         s->cs.selector, s->cs.base, s->cs.l, s->cs.db, s->ss.selector, s->cr0, s->cr2,
	         s->cr3, s->cr4, s->efer, s->gdt.base, s->gdt.limit, s->idt.base, s->idt.limit);
}

int msr_policy_init_vcpu(int vcpu_fd)
{
	static const struct kvm_msr_entry init[] = {
	    {.index = MSR_IA32_MISC_ENABLE, .data = MSR_IA32_MISC_ENABLE_FAST_STRING},
	    /* MTRRs on, everything write-back: what firmware leaves for Linux. */
	    {.index = MSR_MTRR_DEF_TYPE, .data = MSR_MTRR_DEF_TYPE_E | MTRR_TYPE_WRBACK},
	};
	const unsigned int n = sizeof(init) / sizeof(init[0]);
	struct kvm_msrs *msrs = calloc(1, sizeof(*msrs) + sizeof(init));
	int r;

	if (!msrs)
		return -ENOMEM;
	msrs->nmsrs = n;
	memcpy(msrs->entries, init, sizeof(init));
	r = kvm_ioctl(vcpu_fd, KVM_SET_MSRS, msrs);
	free(msrs);
	/* KVM returns how many it set; a host lacking one of them is not fatal. */
	return r < 0 ? r : 0;
}
