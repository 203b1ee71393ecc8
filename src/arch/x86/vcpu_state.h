/* SPDX-License-Identifier: MIT */
#ifndef NESTVM_ARCH_X86_VCPU_STATE_H
#define NESTVM_ARCH_X86_VCPU_STATE_H

#include "snapshot/format.h"

#include <linux/kvm.h>
#include <stdbool.h>
#include <stdint.h>

/*
 * Everything KVM holds for an x86 vCPU and for the VM, saved into plain
 * structs and restored from them, and the snapshot sections they serialize
 * into (docs/snapshot.md). Section numbers below are those of KVM's
 * Documentation/virt/kvm/api.rst (Linux 6.x).
 *
 * Save (vcpu_state_save), with the vCPU stopped outside KVM_RUN:
 *   0. complete a pending PIO/MMIO/MSR exit: KVM_RUN with immediate_exit = 1
 *      (api.rst §5, the note after KVM_EXIT_MMIO: such an operation is only
 *      complete, and the guest state consistent, after re-entering KVM_RUN);
 *   1. MP_STATE first (§4.38): KVM_GET_MP_STATE runs the LAPIC's pending
 *      INIT/SIPI processing, which changes registers and LAPIC state;
 *   2. REGS (§4.11), SREGS2 (§4.131) or SREGS (§4.13), XSAVE2 (§4.134) with
 *      the size KVM_CHECK_EXTENSION(KVM_CAP_XSAVE2) gives on the VM fd, or
 *      XSAVE (§4.42) or FPU (§4.22), XCRS (§4.44), LAPIC (§4.57), DEBUGREGS
 *      (§4.33), MSRs (§4.18: KVM_GET_MSR_INDEX_LIST, §4.3, plus HSAVE_PA,
 *      filtered to those KVM_GET_MSRS returns), CPUID (KVM_GET_CPUID2);
 *   3. NESTED (§4.114) into a buffer of KVM_CHECK_EXTENSION
 *      (KVM_CAP_NESTED_STATE) bytes, whatever the vCPU's mode: Linux 6.1's
 *      svm_get_nested_state() checks a smaller buffer against the 128-byte
 *      header only and then writes the 4 KiB VMCB past it while an L2 runs;
 *      a header-only result is kept too, as it carries GIF on SVM;
 *   4. VCPU_EVENTS (§4.31) last, as Firecracker does: the GETs above can
 *      still change pending-event state.
 *
 * Restore (vcpu_state_restore), into a vCPU that has never run:
 *   CPUID (KVM_SET_CPUID2, §4.20 caveats: before the first KVM_RUN; it also
 *   decides which CR4/EFER bits, MSRs and XSAVE components are valid, so it
 *   comes before all the rest) -> IA32_FEATURE_CONTROL (Intel: CR4.VMXE
 *   needs it, as QEMU does) -> SREGS/SREGS2 (EFER.SVME, CR4.VMXE, APIC base)
 *   -> NESTED (needs EFER.SVME / VMXON state from SREGS) -> REGS -> XSAVE ->
 *   XCRS -> LAPIC (after SREGS: its ID format follows the APIC base's x2APIC
 *   bit) -> MSRs, TSC first and TSC_DEADLINE last (the deadline is relative
 *   to the TSC and ignored unless the LAPIC timer is already in TSC-deadline
 *   mode), KVM's async-PF interrupt MSR before its enable MSR -> VCPU_EVENTS
 *   (+NMI_PENDING, SIPI_VECTOR) -> MP_STATE -> DEBUGREGS. This is QEMU's
 *   kvm_arch_put_registers() order with the LAPIC moved where Firecracker
 *   and the KVM selftests' vcpu_load_state() need it.
 *
 * VM-wide (vm_kvm_state_*): KVM_GET/SET_IRQCHIP (§4.26/4.27) for PIC
 * master, PIC slave and IOAPIC, KVM_GET/SET_PIT2, KVM_GET/SET_CLOCK
 * (§4.29/4.30). Restore the irqchip and PIT before the vCPUs and the clock
 * after them, just before the VM runs again.
 */

/* Section types (docs/snapshot.md): 0x1xx per vCPU, 0x2xx VM-wide. */
enum vcpu_state_section {
	VCPU_SEC_MP_STATE = 0x100,
	VCPU_SEC_REGS = 0x101,
	VCPU_SEC_SREGS = 0x102, /* v1 struct kvm_sregs, v2 struct kvm_sregs2 */
	VCPU_SEC_FPU = 0x103,   /* v1 struct kvm_fpu, v2 an XSAVE area (kvm_xsave) */
	VCPU_SEC_XCRS = 0x104,
	VCPU_SEC_LAPIC = 0x105,
	VCPU_SEC_EVENTS = 0x106,
	VCPU_SEC_DEBUGREGS = 0x107,
	VCPU_SEC_MSRS = 0x108,   /* struct kvm_msr_entry[] */
	VCPU_SEC_CPUID = 0x109,  /* struct kvm_cpuid_entry2[] */
	VCPU_SEC_NESTED = 0x10a, /* struct kvm_nested_state, as long as its size */
	VM_SEC_IRQCHIP = 0x200,  /* struct kvm_irqchip; instance = chip id */
	VM_SEC_PIT = 0x201,      /* struct kvm_pit_state2 */
	VM_SEC_CLOCK = 0x202,    /* struct kvm_clock_data */
};

#define VCPU_STATE_MAX_MSRS 1024
#define VCPU_STATE_MAX_CPUID 256
#define VCPU_STATE_MAX_XSAVE (1u << 20)
#define VCPU_STATE_MAX_NESTED (64u << 10)
#define VM_STATE_NR_IRQCHIPS 3 /* KVM_IRQCHIP_PIC_MASTER, _PIC_SLAVE, _IOAPIC */

#define MSR_IA32_TSC 0x10
#define MSR_IA32_FEATURE_CONTROL 0x3a
#define MSR_IA32_TSC_DEADLINE 0x6e0
#define MSR_VM_HSAVE_PA 0xc0010117 /* AMD APM vol. 2 §15.30.4 */
#define MSR_KVM_ASYNC_PF_EN 0x4b564d02
#define MSR_KVM_ASYNC_PF_INT 0x4b564d06

/* The snapshot schema of the sections above, for snap_reader_parse(). */
extern const struct snap_schema vcpu_state_schema;
extern const struct snap_section_type vcpu_state_section_types[];
extern const unsigned int vcpu_state_nr_section_types;

/* What this host's KVM offers for saving state; from vcpu_state_caps_probe(). */
struct vcpu_state_caps {
	bool sregs2;                /* KVM_CAP_SREGS2 */
	bool xsave;                 /* KVM_CAP_XSAVE */
	uint32_t xsave_size;        /* KVM_CAP_XSAVE2 on the VM fd (0: use KVM_GET_XSAVE) */
	bool xcrs;                  /* KVM_CAP_XCRS */
	bool debugregs;             /* KVM_CAP_DEBUGREGS */
	uint32_t nested_state_size; /* KVM_CAP_NESTED_STATE; 0: no nested state */
	uint32_t *msr_indices;      /* KVM_GET_MSR_INDEX_LIST plus HSAVE_PA */
	unsigned int nr_msr_indices;
};

/*
 * vcpu_state_caps_probe - fill @caps from the system fd @kvm_fd and the VM
 * fd @vm_fd. Returns 0 or -errno; vcpu_state_caps_release() frees it.
 */
int vcpu_state_caps_probe(int kvm_fd, int vm_fd, struct vcpu_state_caps *caps)
    __attribute__((warn_unused_result));
void vcpu_state_caps_release(struct vcpu_state_caps *caps);

/* One vCPU's KVM state. The pointers are malloc'd (vcpu_state_release()). */
struct vcpu_state {
	struct kvm_mp_state mp_state;
	struct kvm_regs regs;
	bool has_sregs2;
	struct kvm_sregs sregs;   /* without KVM_CAP_SREGS2 */
	struct kvm_sregs2 sregs2; /* with it */
	uint32_t xsave_size;      /* bytes in xsave; 0: fpu holds the state */
	struct kvm_xsave *xsave;
	struct kvm_fpu fpu;
	bool has_xcrs;
	struct kvm_xcrs xcrs;
	bool has_lapic; /* the VM has an in-kernel LAPIC */
	struct kvm_lapic_state lapic;
	struct kvm_vcpu_events events;
	bool has_debugregs;
	struct kvm_debugregs debugregs;
	struct kvm_msrs *msrs;
	struct kvm_cpuid2 *cpuid;
	struct kvm_nested_state *nested; /* NULL: KVM has no nested state; nested->size bytes */
};

/* The VM-wide KVM state. */
struct vm_kvm_state {
	bool has_irqchip;
	struct kvm_irqchip irqchip[VM_STATE_NR_IRQCHIPS];
	bool has_pit;
	struct kvm_pit_state2 pit;
	struct kvm_clock_data clock;
};

/*
 * vcpu_state_complete_io - finish an exit that KVM completes on the next
 * KVM_RUN (PIO/MMIO reads take the data the caller already put in @run) by
 * entering KVM_RUN with immediate_exit set: no guest instruction runs.
 * Call it on the vCPU's thread with the vCPU stopped; a no-op if nothing is
 * pending. Returns 0, -EAGAIN if completing it caused another exit the
 * caller must handle first (e.g. the next chunk of a string I/O), or -errno.
 */
int vcpu_state_complete_io(int vcpu_fd, struct kvm_run *run) __attribute__((warn_unused_result));

/*
 * vcpu_state_save - complete pending I/O (if @run is not NULL), then read
 * everything KVM holds for the vCPU into @out, in the order above. Returns
 * 0 or -errno (@out then holds nothing to release).
 */
int vcpu_state_save(int vcpu_fd, struct kvm_run *run, const struct vcpu_state_caps *caps,
                    struct vcpu_state *out) __attribute__((warn_unused_result));

/*
 * vcpu_state_check - can @st be restored with @caps? Returns 0 or
 * -EOPNOTSUPP with a sentence in @why. vcpu_state_restore() checks first.
 */
int vcpu_state_check(const struct vcpu_state *st, const struct vcpu_state_caps *caps, char *why,
                     size_t len) __attribute__((warn_unused_result));

/*
 * vcpu_state_restore - load @st into a vCPU that has not run yet, in the
 * order above. On failure @what (if not NULL) names the step. Returns 0 or
 * -errno; the vCPU is then in an undefined state and must be discarded.
 */
int vcpu_state_restore(int vcpu_fd, const struct vcpu_state_caps *caps, const struct vcpu_state *st,
                       char *what, size_t len) __attribute__((warn_unused_result));

/* vcpu_state_nested_run_pending - a VMRUN/VMLAUNCH is half done (KVM_STATE_NESTED_RUN_PENDING). */
bool vcpu_state_nested_run_pending(const struct vcpu_state *st);

/* vcpu_state_guest_mode - the vCPU was running an L2 (KVM_STATE_NESTED_GUEST_MODE). */
bool vcpu_state_guest_mode(const struct vcpu_state *st);

/*
 * vcpu_state_kvmclock_ctrl - KVM_KVMCLOCK_CTRL: tell the guest's kvmclock
 * it was paused (no soft-lockup reports). Returns 0, also when the guest
 * does not use kvmclock (-EINVAL from KVM), or -errno.
 */
int vcpu_state_kvmclock_ctrl(int vcpu_fd) __attribute__((warn_unused_result));

/* vcpu_state_release - free @st's buffers; NULL and twice are harmless. */
void vcpu_state_release(struct vcpu_state *st);

/* vcpu_state_write - @st as the sections of vCPU @index. Returns 0 or -errno. */
int vcpu_state_write(struct snap_writer *w, uint32_t index, const struct vcpu_state *st)
    __attribute__((warn_unused_result));

/*
 * vcpu_state_read - decode and check vCPU @index's sections from a parsed
 * snapshot into @out. Returns 0, or -EBADMSG / -ENOMEM with r->error set.
 */
int vcpu_state_read(struct snap_reader *r, uint32_t index, struct vcpu_state *out)
    __attribute__((warn_unused_result));

/* vm_kvm_state_save - irqchip (if any), PIT (if any) and clock. Returns 0 or -errno. */
int vm_kvm_state_save(int vm_fd, struct vm_kvm_state *out) __attribute__((warn_unused_result));

/* vm_kvm_state_restore - irqchip and PIT; before the vCPUs. Returns 0 or -errno. */
int vm_kvm_state_restore(int vm_fd, const struct vm_kvm_state *st)
    __attribute__((warn_unused_result));

/*
 * vm_kvm_state_restore_clock - KVM_SET_CLOCK to the saved kvmclock value
 * (no KVM_CLOCK_REALTIME: guest time stands still while saved, as its TSC
 * does); after the vCPUs. Returns 0 or -errno.
 */
int vm_kvm_state_restore_clock(int vm_fd, const struct vm_kvm_state *st)
    __attribute__((warn_unused_result));

int vm_kvm_state_write(struct snap_writer *w, const struct vm_kvm_state *st)
    __attribute__((warn_unused_result));
int vm_kvm_state_read(struct snap_reader *r, struct vm_kvm_state *out)
    __attribute__((warn_unused_result));

#endif
