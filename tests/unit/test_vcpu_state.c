/* SPDX-License-Identifier: MIT */
/*
 * Integration test on this host's KVM: save a running vCPU and VM
 * (src/arch/x86/vcpu_state.c), write the state through the snapshot format,
 * read it back, restore it into a second VM with a copy of the guest
 * memory, and check that
 *   (a) every GET on the restored vCPU and VM returns what was saved, and
 *   (b) the guest carries on from where it was: its counter keeps counting
 *       from the saved value, and the port read it was in the middle of at
 *       the save (completed by vcpu_state_complete_io) counts exactly once.
 * The guest is 34 bytes of 64-bit code at CPL3 (native speed on hosts
 * whose KVM emulates CPL0, see /work/shared/ENVIRONMENT.md). Without a
 * usable /dev/kvm it prints "skip ..." and exits 77.
 *
 * Built with -DTEST_STANDALONE (guest/labtests/guest.mk) it needs no cmocka
 * and links statically, so that the lab, whose KVM has nested SVM
 * (KVM_CAP_NESTED_STATE > 0), runs it too (tests/lab/scenarios/vcpu-state.sh).
 */
#ifdef TEST_STANDALONE
/* The few cmocka calls used here, for a static build without cmocka. */
#include <stdio.h>
#include <stdlib.h>
#define print_message(...) printf(__VA_ARGS__)
#define print_error(...) fprintf(stderr, __VA_ARGS__)
#define fail() test_fail(__FILE__, __LINE__, "failure")
#define fail_msg(...) (print_error(__VA_ARGS__), fail())
#define assert_true(c) ((c) ? (void)0 : test_fail(__FILE__, __LINE__, #c))
#define assert_non_null(p) assert_true((p) != NULL)
#define assert_false(c) assert_true(!(c))
#define assert_int_equal(a, b)                                                                     \
	do {                                                                                       \
		unsigned long long a_ = (unsigned long long)(a), b_ = (unsigned long long)(b);     \
		if (a_ != b_) {                                                                    \
			print_error("0x%llx != 0x%llx\n", a_, b_);                                 \
			test_fail(__FILE__, __LINE__, #a " == " #b);                               \
		}                                                                                  \
	} while (0)
static void test_fail(const char *file, int line, const char *what)
{
	fprintf(stderr, "%s:%d: %s\n", file, line, what);
	exit(1);
}
#else
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#endif

#include "arch/x86/vcpu_state.h"
#include "kvm/kvm.h"
#include "snapshot/format.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define MEM_SIZE (4u << 20)
#define GUEST_PML4 0x1000
#define GUEST_PDPT 0x2000
#define GUEST_PD 0x3000
#define GUEST_GDT 0x500
#define GUEST_TSS 0x600
#define GUEST_CODE 0x10000
#define GUEST_COUNTER 0x20000 /* the loop counter, also kept in RBX */
#define GUEST_SUM 0x20008     /* the sum of the values read from PORT_IN */
#define GUEST_STACK 0x30000
#define PORT_IN 0x10
#define EXIT_EVERY (1u << 20) /* the guest reads PORT_IN every 2^20 iterations */
#define TSS_ADDR 0xfffbd000
#define HV_X64_MSR_VP_RUNTIME 0x40000010     /* Hyper-V TLFS: the vCPU thread's CPU time */
#define HV_X64_MSR_TIME_REF_COUNT 0x40000020 /* Hyper-V TLFS: 100 ns units of kvmclock */

/*
 *   1: inc %rbx ; mov %rbx, 0x20000 ; test $0xfffff, %ebx ; jnz 1b
 *      mov $0x10, %dx ; in %dx, %eax ; add %rax, 0x20008 ; jmp 1b
 */
static const uint8_t guest_code[] = {
    0x48, 0xff, 0xc3, 0x48, 0x89, 0x1c, 0x25, 0x00, 0x00, 0x02, 0x00, 0xf7,
    0xc3, 0xff, 0xff, 0x0f, 0x00, 0x75, 0xed, 0x66, 0xba, 0x10, 0x00, 0xed,
    0x48, 0x01, 0x04, 0x25, 0x08, 0x00, 0x02, 0x00, 0xeb, 0xde,
};

/* GDT: null, kernel code/data, user data (0x1b), user code (0x23), TSS (0x28). */
static const uint64_t guest_gdt[] = {
    0,
    0x00af9b000000ffffULL,
    0x00cf93000000ffffULL,
    0x00cff3000000ffffULL,
    0x00affb000000ffffULL,
    0x00008b0000000067ULL | ((uint64_t)GUEST_TSS << 16),
    0,
};

struct tvm {
	int vm_fd;
	int vcpu_fd;
	struct kvm_run *run;
	uint8_t *mem;
};

static struct kvm_sys sys = {.fd = -1};
static struct vcpu_state_caps caps;

static uint64_t guest_u64(const struct tvm *t, uint64_t gpa)
{
	uint64_t v;

	memcpy(&v, t->mem + gpa, 8);
	return v;
}

static void tvm_destroy(struct tvm *t)
{
	if (t->run)
		munmap(t->run, (size_t)sys.vcpu_mmap_size);
	if (t->vcpu_fd >= 0)
		close(t->vcpu_fd);
	if (t->vm_fd >= 0)
		close(t->vm_fd);
	if (t->mem)
		munmap(t->mem, MEM_SIZE);
}

/* A VM with 4 MiB of RAM, irqchip, PIT and one vCPU (not yet configured). */
static void tvm_create(struct tvm *t)
{
	struct kvm_userspace_memory_region region = {0};
	struct kvm_pit_config pit = {0};

	t->vcpu_fd = -1;
	t->run = NULL;
	t->vm_fd = kvm_ioctl(sys.fd, KVM_CREATE_VM, NULL);
	assert_true(t->vm_fd >= 0);
	(void)kvm_ioctl(t->vm_fd, KVM_SET_TSS_ADDR, (void *)(uintptr_t)TSS_ADDR);
	t->mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(t->mem != MAP_FAILED);
	region.memory_size = MEM_SIZE;
	region.userspace_addr = (uintptr_t)t->mem;
	assert_int_equal(kvm_ioctl(t->vm_fd, KVM_SET_USER_MEMORY_REGION, &region), 0);
	assert_int_equal(kvm_ioctl(t->vm_fd, KVM_CREATE_IRQCHIP, NULL), 0);
	assert_int_equal(kvm_ioctl(t->vm_fd, KVM_CREATE_PIT2, &pit), 0);
	t->vcpu_fd = kvm_ioctl(t->vm_fd, KVM_CREATE_VCPU, NULL);
	assert_true(t->vcpu_fd >= 0);
	t->run = mmap(NULL, (size_t)sys.vcpu_mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED,
	              t->vcpu_fd, 0);
	assert_true(t->run != MAP_FAILED);
}

static void set_seg(struct kvm_segment *s, uint16_t sel, uint8_t type, uint8_t dpl, bool code)
{
	*s = (struct kvm_segment){.base = 0,
	                          .limit = 0xffffffff,
	                          .selector = sel,
	                          .type = type,
	                          .present = 1,
	                          .dpl = dpl,
	                          .s = 1,
	                          .g = 1,
	                          .l = code,
	                          .db = !code};
}

/* The guest: identity-mapped 4 MiB (2 MiB user pages), long mode, CPL3, IOPL3, IF=0. */
static void tvm_setup_guest(struct tvm *t)
{
	struct kvm_cpuid2 *cpuid = NULL;
	struct kvm_sregs sregs;
	struct kvm_regs regs = {0};
	uint64_t e;

	memcpy(t->mem + GUEST_CODE, guest_code, sizeof(guest_code));
	memcpy(t->mem + GUEST_GDT, guest_gdt, sizeof(guest_gdt));
	e = GUEST_PDPT | 7;
	memcpy(t->mem + GUEST_PML4, &e, 8);
	e = GUEST_PD | 7;
	memcpy(t->mem + GUEST_PDPT, &e, 8);
	for (uint64_t i = 0; i < 2; i++) {
		e = (i << 21) | 0x87; /* present, writable, user, 2 MiB */
		memcpy(t->mem + GUEST_PD + i * 8, &e, 8);
	}
	assert_int_equal(kvm_get_supported_cpuid(&sys, &cpuid), 0);
	assert_int_equal(kvm_ioctl(t->vcpu_fd, KVM_SET_CPUID2, cpuid), 0);
	free(cpuid);

	assert_int_equal(kvm_ioctl(t->vcpu_fd, KVM_GET_SREGS, &sregs), 0);
	set_seg(&sregs.cs, 0x23, 11, 3, true);
	set_seg(&sregs.ss, 0x1b, 3, 3, false);
	sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss;
	sregs.tr = (struct kvm_segment){
	    .base = GUEST_TSS, .limit = 0x67, .selector = 0x28, .type = 11, .present = 1};
	sregs.ldt = (struct kvm_segment){.selector = 0, .type = 2, .unusable = 1};
	sregs.gdt.base = GUEST_GDT;
	sregs.gdt.limit = sizeof(guest_gdt) - 1;
	sregs.idt.base = 0;
	sregs.idt.limit = 0;
	sregs.cr0 = 0x80010033; /* PG WP NE ET MP PE */
	sregs.cr3 = GUEST_PML4;
	sregs.cr4 = 0x620;  /* OSXMMEXCPT OSFXSR PAE */
	sregs.efer = 0x500; /* LMA LME */
	assert_int_equal(kvm_ioctl(t->vcpu_fd, KVM_SET_SREGS, &sregs), 0);
	regs.rip = GUEST_CODE;
	regs.rsp = GUEST_STACK;
	regs.rflags = 0x3002; /* IOPL 3: port I/O at CPL3 */
	assert_int_equal(kvm_ioctl(t->vcpu_fd, KVM_SET_REGS, &regs), 0);
}

/*
 * Put the LAPIC timer in TSC-deadline mode (masked) with a deadline far
 * ahead: the deadline MSR only sticks if the restore sets the LAPIC before
 * the MSRs, and the TSC before the deadline.
 */
static uint64_t tvm_arm_tsc_deadline(struct tvm *t)
{
	struct kvm_cpuid2 *cpuid = NULL;
	struct kvm_lapic_state lapic;
	struct {
		struct kvm_msrs h;
		struct kvm_msr_entry e[2];
	} m = {.h.nmsrs = 1, .e[0].index = MSR_IA32_TSC};
	uint32_t lvtt = (2u << 17) | (1u << 16) | 0xec; /* TSC-deadline, masked, vector 0xec */

	assert_int_equal(kvm_get_supported_cpuid(&sys, &cpuid), 0);
	for (uint32_t i = 0; i < cpuid->nent; i++)
		if (cpuid->entries[i].function == 1)
			cpuid->entries[i].ecx |= 1u << 24; /* TSC-deadline (api.rst §4.46) */
	assert_int_equal(kvm_ioctl(t->vcpu_fd, KVM_SET_CPUID2, cpuid), 0);
	free(cpuid);
	assert_int_equal(kvm_ioctl(t->vcpu_fd, KVM_GET_LAPIC, &lapic), 0);
	memcpy(&lapic.regs[0x320], &lvtt, 4);
	assert_int_equal(kvm_ioctl(t->vcpu_fd, KVM_SET_LAPIC, &lapic), 0);
	assert_int_equal(kvm_ioctl(t->vcpu_fd, KVM_GET_MSRS, &m), 1);
	m.e[0].index = MSR_IA32_TSC_DEADLINE;
	m.e[0].data += 1000000000000ULL; /* minutes away at any TSC rate */
	assert_int_equal(kvm_ioctl(t->vcpu_fd, KVM_SET_MSRS, &m), 1);
	return m.e[0].data;
}

/* Run until the guest reads PORT_IN; the read is left pending (not yet answered). */
static void tvm_run_to_in(struct tvm *t)
{
	for (int spins = 0; spins < 1000; spins++) {
		int r = ioctl(t->vcpu_fd, KVM_RUN, 0);

		if (r < 0 && errno == EINTR)
			continue;
		assert_int_equal(r, 0);
		if (t->run->exit_reason == KVM_EXIT_IO && t->run->io.port == PORT_IN &&
		    t->run->io.direction == KVM_EXIT_IO_IN && t->run->io.size == 4)
			return;
		print_error("unexpected exit %u (internal error suberror %u)\n",
		            t->run->exit_reason, t->run->internal.suberror);
		fail();
	}
	fail_msg("the guest never reached its port read");
}

/* Answer the pending port read with @v (KVM copies it into EAX on the next KVM_RUN). */
static void tvm_answer_in(struct tvm *t, uint32_t v)
{
	memcpy((uint8_t *)t->run + t->run->io.data_offset, &v, 4);
}

static uint64_t msr_value(const struct kvm_msrs *m, uint32_t index, bool *found)
{
	for (uint32_t i = 0; i < m->nmsrs; i++)
		if (m->entries[i].index == index) {
			*found = true;
			return m->entries[i].data;
		}
	*found = false;
	return 0;
}

/* MSRs that KVM computes from a clock: they count on from the restored value. */
static bool msr_is_clock(uint32_t index)
{
	return index == MSR_IA32_TSC || index == HV_X64_MSR_VP_RUNTIME ||
	       index == HV_X64_MSR_TIME_REF_COUNT;
}

#define SECTION_EQUAL(name, a, b, size)                                                            \
	do {                                                                                       \
		if (memcmp((a), (b), (size)) != 0) {                                               \
			const uint8_t *x_ = (const void *)(a), *y_ = (const void *)(b);            \
			size_t o_ = 0;                                                             \
			while (x_[o_] == y_[o_])                                                   \
				o_++;                                                              \
			print_error("section %s differs at byte %zu: 0x%02x, then 0x%02x\n", name, \
			            o_, x_[o_], y_[o_]);                                           \
			fail();                                                                    \
		}                                                                                  \
	} while (0)

/*
 * The nested state must come back the same, but for what KVM refreshes
 * before it uses it. On SVM the data is the L2's VMCB12 control area and,
 * in the save area, L1's state kept in vmcb01 (svm_get_nested_state());
 * KVM_SET_NESTED_STATE takes from the latter only what VMRUN saves
 * (svm_copy_vmrun_state()), and vmcb01's DR6 is rewritten before each
 * entry that uses vmcb01 (svm_vcpu_run(), as read in Linux 6.1), so a fresh
 * vCPU reads it back as 0 until it has run L1 once.
 */
static void assert_nested_same(const struct kvm_nested_state *a, const struct kvm_nested_state *b)
{
	const uint8_t *x = (const uint8_t *)a, *y = (const uint8_t *)b;
	const uint32_t hdr = sizeof(struct kvm_nested_state);
	unsigned int diffs = 0;

	SECTION_EQUAL("nested header", a, b, hdr);
	for (uint32_t o = hdr; o + 8 <= a->size; o += 8) {
		uint64_t va, vb;
		bool volatile_field =
		    a->format == KVM_STATE_NESTED_FORMAT_SVM && o - hdr == 0x568; /* vmcb01 DR6 */

		memcpy(&va, x + o, 8);
		memcpy(&vb, y + o, 8);
		if (va == vb)
			continue;
		print_message("nested data offset 0x%x: saved 0x%llx, restored 0x%llx%s\n", o - hdr,
		              (unsigned long long)va, (unsigned long long)vb,
		              volatile_field ? " (refreshed by KVM on entry)" : "");
		diffs += !volatile_field;
	}
	assert_int_equal(diffs, 0);
}

/*
 * (a) Per section, the state read back from the restored vCPU equals what
 * was saved. Only the clocks move on: the TSC, and the Hyper-V VP runtime
 * and reference counter (from the thread's CPU time and kvmclock; the lab's
 * KVM lists them) count on from their restored values.
 */
static void assert_same_vcpu(const struct vcpu_state *saved, const struct vcpu_state *now)
{
	unsigned int compared = 0, mismatches = 0;

	SECTION_EQUAL("mp_state", &saved->mp_state, &now->mp_state, sizeof(now->mp_state));
	SECTION_EQUAL("regs", &saved->regs, &now->regs, sizeof(now->regs));
	assert_int_equal(saved->has_sregs2, now->has_sregs2);
	if (now->has_sregs2)
		SECTION_EQUAL("sregs2", &saved->sregs2, &now->sregs2, sizeof(now->sregs2));
	else
		SECTION_EQUAL("sregs", &saved->sregs, &now->sregs, sizeof(now->sregs));
	assert_int_equal(saved->xsave_size, now->xsave_size);
	if (now->xsave_size)
		SECTION_EQUAL("xsave", saved->xsave, now->xsave, now->xsave_size);
	else
		SECTION_EQUAL("fpu", &saved->fpu, &now->fpu, sizeof(now->fpu));
	assert_int_equal(saved->has_xcrs, now->has_xcrs);
	SECTION_EQUAL("xcrs", &saved->xcrs, &now->xcrs, sizeof(now->xcrs));
	assert_true(now->has_lapic);
	SECTION_EQUAL("lapic", &saved->lapic, &now->lapic, sizeof(now->lapic));
	SECTION_EQUAL("events", &saved->events, &now->events, sizeof(now->events));
	SECTION_EQUAL("debugregs", &saved->debugregs, &now->debugregs, sizeof(now->debugregs));
	assert_int_equal(saved->cpuid->nent, now->cpuid->nent);
	SECTION_EQUAL("cpuid", saved->cpuid->entries, now->cpuid->entries,
	              now->cpuid->nent * sizeof(now->cpuid->entries[0]));
	assert_int_equal(saved->nested != NULL, now->nested != NULL);
	if (now->nested) {
		assert_int_equal(saved->nested->size, now->nested->size);
		assert_nested_same(saved->nested, now->nested);
	}
	assert_int_equal(saved->msrs->nmsrs, now->msrs->nmsrs);
	for (uint32_t i = 0; i < now->msrs->nmsrs; i++) {
		const struct kvm_msr_entry *a = &saved->msrs->entries[i],
		                           *b = &now->msrs->entries[i];

		assert_int_equal(a->index, b->index);
		if (msr_is_clock(a->index)) {
			/* Restored to the saved value, then counting on (< 60 s at 10 GHz). */
			assert_true(b->data >= a->data);
			assert_true(b->data - a->data < 600000000000ULL);
			continue;
		}
		if (a->data != b->data) {
			print_error("MSR 0x%x: saved 0x%llx, restored 0x%llx\n", a->index,
			            (unsigned long long)a->data, (unsigned long long)b->data);
			mismatches++;
		}
		compared++;
	}
	assert_int_equal(mismatches, 0);
	assert_true(compared > 10);
}

static void assert_same_vm(const struct vm_kvm_state *saved, const struct vm_kvm_state *now)
{
	struct kvm_pit_state2 a = saved->pit, b = now->pit;

	assert_true(saved->has_irqchip && now->has_irqchip);
	for (int i = 0; i < VM_STATE_NR_IRQCHIPS; i++)
		SECTION_EQUAL("irqchip", &saved->irqchip[i], &now->irqchip[i],
		              sizeof(now->irqchip[i]));
	assert_true(saved->has_pit && now->has_pit);
	/* count_load_time is the host's ktime when a count was loaded: it never matches. */
	for (int i = 0; i < 3; i++)
		a.channels[i].count_load_time = b.channels[i].count_load_time = 0;
	SECTION_EQUAL("pit", &a, &b, sizeof(a));
	assert_true(now->clock.clock >= saved->clock.clock);
}

/* Write @v/@vm as a snapshot into a memfd, read it back through the validating reader. */
/*
 * Write @n vCPUs @v and @vm as a snapshot into a memfd and read it back
 * through the validating reader.
 */
static void through_snapshot_n(const struct vcpu_state *v, uint32_t n,
                               const struct vm_kvm_state *vm, struct vcpu_state *v_out,
                               struct vm_kvm_state *vm_out, size_t *bytes)
{
	struct snap_writer w;
	struct snap_reader r;
	int fd = memfd_create("vcpu-state", MFD_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(snap_writer_begin(&w, fd, n), 0);
	for (uint32_t i = 0; i < n; i++)
		assert_int_equal(vcpu_state_write(&w, i, &v[i]), 0);
	assert_int_equal(vm_kvm_state_write(&w, vm), 0);
	assert_int_equal(snap_writer_finish(&w), 0);
	*bytes = (size_t)w.offset;
	if (snap_reader_read_fd(&r, fd, &vcpu_state_schema, "memfd") != 0) {
		print_error("%s\n", r.error);
		fail();
	}
	assert_int_equal(r.nr_vcpus, n);
	for (uint32_t i = 0; i < n; i++)
		assert_int_equal(vcpu_state_read(&r, i, &v_out[i]), 0);
	assert_int_equal(vm_kvm_state_read(&r, vm_out), 0);
	snap_reader_release(&r);
	close(fd);
}

static void through_snapshot(const struct vcpu_state *v, const struct vm_kvm_state *vm,
                             struct vcpu_state *v_out, struct vm_kvm_state *vm_out, size_t *bytes)
{
	through_snapshot_n(v, 1, vm, v_out, vm_out, bytes);
}

/* An AP: vCPU 1, never started (it waits for INIT/SIPI in KVM). */
static int tvm_add_ap(struct tvm *t, struct kvm_run **run)
{
	struct kvm_cpuid2 *cpuid = NULL;
	int fd = kvm_ioctl(t->vm_fd, KVM_CREATE_VCPU, (void *)1);

	assert_true(fd >= 0);
	*run = mmap(NULL, (size_t)sys.vcpu_mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	assert_true(*run != MAP_FAILED);
	assert_int_equal(kvm_get_supported_cpuid(&sys, &cpuid), 0);
	assert_int_equal(kvm_ioctl(fd, KVM_SET_CPUID2, cpuid), 0);
	free(cpuid);
	return fd;
}

/*
 * Two vCPUs: the BSP as in test_save_restore_continue, and an AP that never
 * started. Both go through one snapshot (instances 0 and 1) and come back
 * GET for GET; the AP is still waiting for its SIPI.
 */
static void test_two_vcpus(void **state)
{
	struct tvm a = {.vm_fd = -1}, b = {.vm_fd = -1};
	struct vcpu_state saved[2], loaded[2], after;
	struct vm_kvm_state vm_saved, vm_loaded;
	struct kvm_run *ap_run_a, *ap_run_b;
	int ap_a, ap_b;
	size_t bytes;
	char what[160];

	(void)state;
	tvm_create(&a);
	tvm_setup_guest(&a);
	ap_a = tvm_add_ap(&a, &ap_run_a);
	tvm_run_to_in(&a);
	tvm_answer_in(&a, 7);
	assert_int_equal(vcpu_state_save(a.vcpu_fd, a.run, &caps, &saved[0]), 0);
	assert_int_equal(vcpu_state_save(ap_a, ap_run_a, &caps, &saved[1]), 0);
	assert_int_equal(saved[1].mp_state.mp_state, KVM_MP_STATE_UNINITIALIZED);
	assert_int_equal(saved[0].mp_state.mp_state, KVM_MP_STATE_RUNNABLE);
	assert_int_equal(vm_kvm_state_save(a.vm_fd, &vm_saved), 0);
	through_snapshot_n(saved, 2, &vm_saved, loaded, &vm_loaded, &bytes);

	tvm_create(&b);
	memcpy(b.mem, a.mem, MEM_SIZE);
	ap_b = tvm_add_ap(&b, &ap_run_b);
	assert_int_equal(vm_kvm_state_restore(b.vm_fd, &vm_loaded), 0);
	for (int i = 0; i < 2; i++) {
		int fd = i ? ap_b : b.vcpu_fd;

		if (vcpu_state_restore(fd, &caps, &loaded[i], what, sizeof(what)) != 0) {
			print_error("vCPU %d: restore failed: %s\n", i, what);
			fail();
		}
	}
	assert_int_equal(vm_kvm_state_restore_clock(b.vm_fd, &vm_loaded), 0);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(vcpu_state_save(i ? ap_b : b.vcpu_fd, NULL, &caps, &after), 0);
		assert_same_vcpu(&saved[i], &after);
		vcpu_state_release(&after);
	}
	/* The BSP carries on; the AP stays parked in KVM (KVM_RUN blocks it: not run here). */
	tvm_run_to_in(&b);
	assert_int_equal(guest_u64(&b, GUEST_COUNTER), 2 * EXIT_EVERY);
	assert_int_equal(guest_u64(&b, GUEST_SUM), 7);

	for (int i = 0; i < 2; i++) {
		vcpu_state_release(&saved[i]);
		vcpu_state_release(&loaded[i]);
	}
	munmap(ap_run_a, (size_t)sys.vcpu_mmap_size);
	munmap(ap_run_b, (size_t)sys.vcpu_mmap_size);
	close(ap_a);
	close(ap_b);
	tvm_destroy(&a);
	tvm_destroy(&b);
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void test_save_restore_continue(void **state)
{
	struct tvm a = {.vm_fd = -1}, b = {.vm_fd = -1};
	struct vcpu_state saved, loaded, after;
	struct vm_kvm_state vm_saved, vm_loaded, vm_after;
	struct kvm_regs regs;
	char what[160];
	size_t bytes;
	bool found, deadline_mode;
	uint64_t deadline = 0;
	double t0, t_save, t_restore;

	(void)state;
	tvm_create(&a);
	tvm_setup_guest(&a);
	deadline_mode = kvm_check_cap(sys.fd, KVM_CAP_TSC_DEADLINE_TIMER) > 0;
	if (deadline_mode)
		deadline = tvm_arm_tsc_deadline(&a);
	else
		print_message(
		    "this KVM has no TSC-deadline timer: that restore order is untested\n");

	/* Three port reads: answer 0x1001, 0x1002; save in the middle of the third. */
	tvm_run_to_in(&a);
	tvm_answer_in(&a, 0x1001);
	tvm_run_to_in(&a);
	tvm_answer_in(&a, 0x1002);
	tvm_run_to_in(&a);
	tvm_answer_in(&a, 0x1003);
	assert_int_equal(guest_u64(&a, GUEST_COUNTER), 3 * EXIT_EVERY);
	assert_int_equal(guest_u64(&a, GUEST_SUM), 0x1001 + 0x1002);

	t0 = now_ms();
	assert_int_equal(vcpu_state_save(a.vcpu_fd, a.run, &caps, &saved), 0);
	assert_int_equal(vm_kvm_state_save(a.vm_fd, &vm_saved), 0);
	t_save = now_ms() - t0;
	/* The pending IN completed: its value is in RAX, RIP is past the IN. */
	assert_int_equal(saved.regs.rax, 0x1003);
	assert_int_equal(saved.regs.rbx, 3 * EXIT_EVERY);
	assert_int_equal(saved.regs.rip, GUEST_CODE + 0x18);
	assert_int_equal(saved.sregs2.cs.dpl | saved.sregs.cs.dpl, 3);
	assert_int_equal(guest_u64(&a, GUEST_SUM), 0x1001 + 0x1002); /* no instruction ran */
	msr_value(saved.msrs, MSR_IA32_TSC, &found);
	assert_true(found);
	if (deadline_mode) {
		assert_int_equal(msr_value(saved.msrs, MSR_IA32_TSC_DEADLINE, &found), deadline);
		assert_true(found);
	}
	assert_int_equal(saved.nested != NULL, caps.nested_state_size != 0);
	if (saved.nested) {
		/* Not running an L2: the header only, which on SVM still carries GIF. */
		print_message("nested state: format %s, %u bytes, flags 0x%x\n",
		              saved.nested->format == KVM_STATE_NESTED_FORMAT_SVM ? "SVM" : "VMX",
		              saved.nested->size, saved.nested->flags);
		assert_false(vcpu_state_guest_mode(&saved));
		if (saved.nested->format == KVM_STATE_NESTED_FORMAT_SVM)
			assert_true(saved.nested->flags & KVM_STATE_NESTED_GIF_SET);
	}

	through_snapshot(&saved, &vm_saved, &loaded, &vm_loaded, &bytes);
	assert_same_vcpu(&saved, &loaded); /* the file changes nothing */
	SECTION_EQUAL("msrs", saved.msrs->entries, loaded.msrs->entries,
	              saved.msrs->nmsrs * sizeof(saved.msrs->entries[0]));

	/* A second VM, the guest's memory copied, the state restored. */
	tvm_create(&b);
	memcpy(b.mem, a.mem, MEM_SIZE);
	t0 = now_ms();
	assert_int_equal(vm_kvm_state_restore(b.vm_fd, &vm_loaded), 0);
	if (vcpu_state_restore(b.vcpu_fd, &caps, &loaded, what, sizeof(what)) != 0) {
		print_error("restore failed: %s\n", what);
		fail();
	}
	assert_int_equal(vm_kvm_state_restore_clock(b.vm_fd, &vm_loaded), 0);
	t_restore = now_ms() - t0;
	print_message("state: %zu bytes in the snapshot, %u MSRs, XSAVE %u bytes, nested %s; "
	              "save %.2f ms, restore %.2f ms\n",
	              bytes, saved.msrs->nmsrs, saved.xsave_size,
	              saved.nested ? "saved" : "not offered by this KVM", t_save, t_restore);

	/* (a) Every GET on the restored VM returns what was saved. */
	assert_int_equal(vcpu_state_save(b.vcpu_fd, NULL, &caps, &after), 0);
	assert_same_vcpu(&saved, &after);
	assert_int_equal(vm_kvm_state_save(b.vm_fd, &vm_after), 0);
	assert_same_vm(&vm_saved, &vm_after);
	vcpu_state_release(&after);

	/* (b) The guest carries on: the saved read counts once, the counter goes on. */
	tvm_run_to_in(&b);
	assert_int_equal(guest_u64(&b, GUEST_COUNTER), 4 * EXIT_EVERY);
	assert_int_equal(guest_u64(&b, GUEST_SUM), 0x1001 + 0x1002 + 0x1003);
	assert_int_equal(kvm_ioctl(b.vcpu_fd, KVM_GET_REGS, &regs), 0);
	assert_int_equal(regs.rbx, 4 * EXIT_EVERY);
	tvm_answer_in(&b, 0x1004);
	tvm_run_to_in(&b);
	assert_int_equal(guest_u64(&b, GUEST_COUNTER), 5 * EXIT_EVERY);
	assert_int_equal(guest_u64(&b, GUEST_SUM), 0x1001 + 0x1002 + 0x1003 + 0x1004);
	/* The original, untouched by the save, carries on identically. */
	tvm_run_to_in(&a);
	assert_int_equal(guest_u64(&a, GUEST_COUNTER), 4 * EXIT_EVERY);
	assert_int_equal(guest_u64(&a, GUEST_SUM), 0x1001 + 0x1002 + 0x1003);

	vcpu_state_release(&saved);
	vcpu_state_release(&loaded);
	tvm_destroy(&a);
	tvm_destroy(&b);
}

/* Saving with nothing pending is a no-op for the guest; a restore of bad state fails cleanly. */
static void test_save_idle_and_refuse(void **state)
{
	struct tvm a = {.vm_fd = -1}, b = {.vm_fd = -1};
	struct vcpu_state saved;
	char what[160];
	uint64_t rip;

	(void)state;
	tvm_create(&a);
	tvm_setup_guest(&a);
	/* Never run: complete_io has nothing to do and runs no instruction. */
	assert_int_equal(vcpu_state_save(a.vcpu_fd, a.run, &caps, &saved), 0);
	assert_int_equal(saved.regs.rip, GUEST_CODE);
	assert_int_equal(saved.regs.rbx, 0);
	assert_int_equal(guest_u64(&a, GUEST_COUNTER), 0);
	rip = saved.regs.rip;

	/* KVM refuses an MSR value: the error names the step and the MSR. */
	tvm_create(&b);
	for (uint32_t i = 0; i < saved.msrs->nmsrs; i++)
		if (saved.msrs->entries[i].index == 0x1a0 /* IA32_MISC_ENABLE */)
			saved.msrs->entries[i].index = 0xdeadbeef;
	if (vcpu_state_restore(b.vcpu_fd, &caps, &saved, what, sizeof(what)) == 0) {
		/* This KVM lacks MISC_ENABLE: make CPUID bad instead. */
		saved.cpuid->entries[0].padding[0] = 0;
	} else {
		assert_non_null(strstr(what, "KVM_SET_MSRS: KVM refused MSR 0xdeadbeef"));
	}
	assert_int_equal(rip, GUEST_CODE);
	vcpu_state_release(&saved);
	tvm_destroy(&a);
	tvm_destroy(&b);
}

/*
 * Nested (SVM hosts only, such as the lab): the guest is an L1 hypervisor
 * at CPL0 whose L2 counts in RBX and memory and leaves with VMMCALL every
 * 2^20 iterations; L1 steps over the VMMCALL, counts the exit, tells the
 * host with an OUT and resumes the L2. The host interrupts KVM_RUN with a
 * timer signal until the vCPU is caught in guest mode (running the L2),
 * saves, restores into a second VM, and the L2 must finish its round.
 * VMCB offsets: AMD APM vol. 2 appendix B.
 */
#define L1_CODE 0x11000
#define L2_CODE 0x12000
#define L1_VMCB 0x40000
#define L1_HSAVE 0x41000
#define L1_EXITS 0x20010   /* L1's count of L2 exits */
#define L2_COUNTER 0x20018 /* the L2's loop counter, also in its RBX */
#define PORT_L1 0x11
#define VMCB_INTERCEPT_VEC4 0x010 /* bit 0 VMRUN, bit 1 VMMCALL */
#define VMCB_ASID 0x058
#define VMCB_SAVE 0x400 /* segments: selector, attrib, limit, base; 16 bytes each */
#define VMCB_CPL 0x4cb
#define VMCB_EFER 0x4d0
#define VMCB_CR4 0x548
#define VMCB_CR3 0x550
#define VMCB_CR0 0x558
#define VMCB_DR7 0x560
#define VMCB_DR6 0x568
#define VMCB_RFLAGS 0x570
#define VMCB_RIP 0x578
#define VMCB_RSP 0x5d8
#define VMCB_GPAT 0x668
#define EFER_SVME_LME_LMA 0x1500

/* l1: mov $0x40000,%eax; 1: vmrun; addq $3,0x40578; incq 0x20010; mov $0x11,%dx;
 *     out %al,(%dx); jmp 1b */
static const uint8_t l1_code[] = {
    0xb8, 0x00, 0x00, 0x04, 0x00, 0x0f, 0x01, 0xd8, 0x48, 0x83, 0x04, 0x25, 0x78, 0x05, 0x04, 0x00,
    0x03, 0x48, 0xff, 0x04, 0x25, 0x10, 0x00, 0x02, 0x00, 0x66, 0xba, 0x11, 0x00, 0xee, 0xeb, 0xe5,
};
/* l2: 2: inc %rbx; mov %rbx,0x20018; test $0xfffff,%ebx; jnz 2b; vmmcall; jmp 2b */
static const uint8_t l2_code[] = {
    0x48, 0xff, 0xc3, 0x48, 0x89, 0x1c, 0x25, 0x18, 0x00, 0x02, 0x00, 0xf7,
    0xc3, 0xff, 0xff, 0x0f, 0x00, 0x75, 0xed, 0x0f, 0x01, 0xd9, 0xeb, 0xe8,
};

static void put_u64(struct tvm *t, uint64_t gpa, uint64_t v)
{
	memcpy(t->mem + gpa, &v, 8);
}

static void vmcb_seg(struct tvm *t, int n, uint16_t sel, uint16_t attrib, uint32_t limit)
{
	uint8_t *p = t->mem + L1_VMCB + VMCB_SAVE + 16 * n;

	memcpy(p, &sel, 2);
	memcpy(p + 2, &attrib, 2);
	memcpy(p + 4, &limit, 4);
	memset(p + 8, 0, 8);
}

static bool host_has_svm(void)
{
	struct kvm_cpuid2 *c = NULL;
	bool svm = false;

	if (kvm_get_supported_cpuid(&sys, &c) < 0)
		return false;
	for (uint32_t i = 0; i < c->nent; i++)
		if (c->entries[i].function == 0x80000001)
			svm = c->entries[i].ecx & (1u << 2);
	free(c);
	return svm;
}

static void tvm_setup_l1(struct tvm *t)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs = {0};
	struct {
		struct kvm_msrs h;
		struct kvm_msr_entry e[1];
	} m = {.h.nmsrs = 1, .e[0] = {.index = MSR_VM_HSAVE_PA, .data = L1_HSAVE}};
	uint32_t v;

	tvm_setup_guest(t); /* page tables, GDT, CPUID (with SVM), then CPL0 below */
	memcpy(t->mem + L1_CODE, l1_code, sizeof(l1_code));
	memcpy(t->mem + L2_CODE, l2_code, sizeof(l2_code));
	/* The L2: 64-bit CPL0 on the same page tables, no nested paging. */
	v = 3; /* intercept VMRUN (required) and VMMCALL */
	memcpy(t->mem + L1_VMCB + VMCB_INTERCEPT_VEC4, &v, 4);
	v = 1;
	memcpy(t->mem + L1_VMCB + VMCB_ASID, &v, 4);
	vmcb_seg(t, 0, 0x10, 0xc93, 0xffffffff);     /* ES */
	vmcb_seg(t, 1, 0x08, 0xa9b, 0xffffffff);     /* CS: L, P, S, code */
	vmcb_seg(t, 2, 0x10, 0xc93, 0xffffffff);     /* SS */
	vmcb_seg(t, 3, 0x10, 0xc93, 0xffffffff);     /* DS */
	vmcb_seg(t, 6, 0, 0, sizeof(guest_gdt) - 1); /* GDTR */
	put_u64(t, L1_VMCB + VMCB_SAVE + 6 * 16 + 8, GUEST_GDT);
	vmcb_seg(t, 9, 0x28, 0x8b, 0x67); /* TR */
	put_u64(t, L1_VMCB + VMCB_SAVE + 9 * 16 + 8, GUEST_TSS);
	t->mem[L1_VMCB + VMCB_CPL] = 0;
	put_u64(t, L1_VMCB + VMCB_EFER, EFER_SVME_LME_LMA);
	put_u64(t, L1_VMCB + VMCB_CR4, 0x620);
	put_u64(t, L1_VMCB + VMCB_CR3, GUEST_PML4);
	put_u64(t, L1_VMCB + VMCB_CR0, 0x80010031);
	put_u64(t, L1_VMCB + VMCB_DR7, 0x400);
	put_u64(t, L1_VMCB + VMCB_DR6, 0xffff0ff0);
	put_u64(t, L1_VMCB + VMCB_RFLAGS, 2);
	put_u64(t, L1_VMCB + VMCB_RIP, L2_CODE);
	put_u64(t, L1_VMCB + VMCB_RSP, GUEST_STACK - 0x1000);
	put_u64(t, L1_VMCB + VMCB_GPAT, 0x0007040600070406ULL);

	/* L1 itself: CPL0, EFER.SVME set, HSAVE_PA set. */
	assert_int_equal(kvm_ioctl(t->vcpu_fd, KVM_GET_SREGS, &sregs), 0);
	set_seg(&sregs.cs, 0x08, 11, 0, true);
	set_seg(&sregs.ss, 0x10, 3, 0, false);
	sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss;
	sregs.efer = EFER_SVME_LME_LMA;
	assert_int_equal(kvm_ioctl(t->vcpu_fd, KVM_SET_SREGS, &sregs), 0);
	assert_int_equal(kvm_ioctl(t->vcpu_fd, KVM_SET_MSRS, &m), 1);
	regs.rip = L1_CODE;
	regs.rsp = GUEST_STACK;
	regs.rflags = 2;
	assert_int_equal(kvm_ioctl(t->vcpu_fd, KVM_SET_REGS, &regs), 0);
}

static volatile sig_atomic_t alarms;
static int nested_skipped;

static void on_alarm(int sig)
{
	(void)sig;
	alarms++;
}

/*
 * Run @t's L1; an OUT from L1 to PORT_L1 counts one L2 round. With
 * @interrupt_us, a timer signal stops KVM_RUN after that long: returns 1
 * then, 0 after @rounds rounds.
 */
static int tvm_run_l1(struct tvm *t, int rounds, long interrupt_us)
{
	struct itimerval it = {.it_value.tv_usec = interrupt_us};

	if (interrupt_us)
		assert_int_equal(setitimer(ITIMER_REAL, &it, NULL), 0);
	for (int spins = 0; spins < 10000; spins++) {
		int r = ioctl(t->vcpu_fd, KVM_RUN, 0);

		if (r < 0 && errno == EINTR && interrupt_us)
			return 1;
		if (r < 0 && errno == EINTR)
			continue;
		assert_int_equal(r, 0);
		if (t->run->exit_reason == KVM_EXIT_IO && t->run->io.port == PORT_L1) {
			if (--rounds == 0) {
				memset(&it, 0, sizeof(it));
				setitimer(ITIMER_REAL, &it, NULL);
				return 0;
			}
			continue;
		}
		print_error("unexpected exit %u (suberror %u, hardware reason 0x%llx)\n",
		            t->run->exit_reason, t->run->internal.suberror,
		            (unsigned long long)t->run->fail_entry.hardware_entry_failure_reason);
		fail();
	}
	fail_msg("the L1 made no progress");
	return -1;
}

static void test_nested_guest_mode(void **state)
{
	struct tvm a = {.vm_fd = -1}, b = {.vm_fd = -1};
	struct vcpu_state saved = {0}, loaded, after;
	struct vm_kvm_state vm_saved, vm_loaded, vm_after;
	struct sigaction sa = {.sa_handler = on_alarm};
	uint64_t exits, l2_count;
	char what[160];
	size_t bytes;
	int tries;

	(void)state;
	if (!caps.nested_state_size || !host_has_svm()) {
		nested_skipped = 1;
		print_message("skip test_nested_guest_mode: this KVM offers no nested SVM "
		              "(KVM_CAP_NESTED_STATE %u); the lab has it\n",
		              caps.nested_state_size);
#ifndef TEST_STANDALONE
		skip();
#endif
		return;
	}
	assert_int_equal(sigaction(SIGALRM, &sa, NULL), 0);
	tvm_create(&a);
	tvm_setup_l1(&a);
	assert_int_equal(tvm_run_l1(&a, 2, 0), 0);
	assert_int_equal(guest_u64(&a, L1_EXITS), 2);
	assert_int_equal(guest_u64(&a, L2_COUNTER), 2 * EXIT_EVERY);

	/* Stop KVM_RUN at random points until the vCPU is caught running the L2. */
	for (tries = 0; tries < 50; tries++) {
		if (tvm_run_l1(&a, 1000, 2000 + 700 * tries) == 0)
			continue;
		assert_int_equal(vcpu_state_save(a.vcpu_fd, a.run, &caps, &saved), 0);
		if (vcpu_state_guest_mode(&saved) && !vcpu_state_nested_run_pending(&saved))
			break;
		vcpu_state_release(&saved);
	}
	assert_true(tries < 50);
	assert_int_equal(vm_kvm_state_save(a.vm_fd, &vm_saved), 0);
	exits = guest_u64(&a, L1_EXITS);
	l2_count = saved.regs.rbx; /* in guest mode, REGS are the L2's */
	print_message("caught in guest mode after %d tries: L2 at %llu, %llu L2 exits so far, "
	              "nested state %u bytes, flags 0x%x\n",
	              tries + 1, (unsigned long long)l2_count, (unsigned long long)exits,
	              saved.nested->size, saved.nested->flags);
	assert_int_equal(saved.nested->format, KVM_STATE_NESTED_FORMAT_SVM);
	assert_true(saved.nested->size > sizeof(struct kvm_nested_state));
	assert_true(saved.sregs2.efer & 0x1000 || saved.sregs.efer & 0x1000); /* the L2's, SVME */

	through_snapshot(&saved, &vm_saved, &loaded, &vm_loaded, &bytes);
	tvm_create(&b);
	memcpy(b.mem, a.mem, MEM_SIZE);
	assert_int_equal(vm_kvm_state_restore(b.vm_fd, &vm_loaded), 0);
	if (vcpu_state_restore(b.vcpu_fd, &caps, &loaded, what, sizeof(what)) != 0) {
		print_error("restore failed: %s\n", what);
		fail();
	}
	assert_int_equal(vm_kvm_state_restore_clock(b.vm_fd, &vm_loaded), 0);
	assert_int_equal(vcpu_state_save(b.vcpu_fd, NULL, &caps, &after), 0);
	assert_true(vcpu_state_guest_mode(&after));
	assert_same_vcpu(&saved, &after);
	assert_int_equal(vm_kvm_state_save(b.vm_fd, &vm_after), 0);
	assert_same_vm(&vm_saved, &vm_after);

	/* The restored L2 finishes its round, L1 counts it, and the next one follows. */
	assert_int_equal(tvm_run_l1(&b, 1, 0), 0);
	assert_int_equal(guest_u64(&b, L1_EXITS), exits + 1);
	assert_int_equal(guest_u64(&b, L2_COUNTER), (l2_count / EXIT_EVERY + 1) * EXIT_EVERY);
	assert_int_equal(tvm_run_l1(&b, 1, 0), 0);
	assert_int_equal(guest_u64(&b, L1_EXITS), exits + 2);
	assert_int_equal(guest_u64(&b, L2_COUNTER), (l2_count / EXIT_EVERY + 2) * EXIT_EVERY);

	vcpu_state_release(&after);
	vcpu_state_release(&saved);
	vcpu_state_release(&loaded);
	tvm_destroy(&a);
	tvm_destroy(&b);
}

/* Probe in well under a second whether this host can run the test at all. */
static const char *probe_kvm(void)
{
	static char why[160];
	int r, vm;

	r = kvm_sys_open(&sys, "/dev/kvm");
	if (r < 0) {
		snprintf(why, sizeof(why), "/dev/kvm unusable: %s", strerror(-r));
		return why;
	}
	if (!kvm_check_cap(sys.fd, KVM_CAP_IMMEDIATE_EXIT) ||
	    !kvm_check_cap(sys.fd, KVM_CAP_IRQCHIP))
		return "this KVM lacks KVM_CAP_IMMEDIATE_EXIT or KVM_CAP_IRQCHIP";
	vm = kvm_ioctl(sys.fd, KVM_CREATE_VM, NULL);
	if (vm < 0) {
		snprintf(why, sizeof(why), "KVM_CREATE_VM failed: %s", strerror(-vm));
		return why;
	}
	r = vcpu_state_caps_probe(sys.fd, vm, &caps);
	close(vm);
	if (r < 0) {
		snprintf(why, sizeof(why), "cannot probe KVM's state capabilities: %s",
		         strerror(-r));
		return why;
	}
	return NULL;
}

int main(void)
{
	const char *why = probe_kvm();
	int r;

	if (why) {
		printf("skip test_vcpu_state: %s\n", why);
		return 77;
	}
#ifdef TEST_STANDALONE
	print_message("KVM: nested state %u bytes, XSAVE %u, SREGS2 %s, %u MSRs listed\n",
	              caps.nested_state_size, caps.xsave_size, caps.sregs2 ? "yes" : "no",
	              caps.nr_msr_indices);
	test_save_restore_continue(NULL);
	test_save_idle_and_refuse(NULL);
	test_two_vcpus(NULL);
	test_nested_guest_mode(NULL);
	print_message("test_vcpu_state: %d passed, 0 failed, %d skipped\n", 4 - nested_skipped,
	              nested_skipped);
	r = 0;
#else
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_save_restore_continue),
	    cmocka_unit_test(test_save_idle_and_refuse),
	    cmocka_unit_test(test_two_vcpus),
	    cmocka_unit_test(test_nested_guest_mode),
	};

	r = cmocka_run_group_tests(tests, NULL, NULL);
#endif
	vcpu_state_caps_release(&caps);
	kvm_sys_close(&sys);
	return r;
}
