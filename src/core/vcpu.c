/* SPDX-License-Identifier: MIT */
/*
 * The vCPU run loop: KVM_RUN, then dispatch the exit through a table indexed
 * by kvm_run.exit_reason. Handlers return 0 to re-enter the guest or a
 * negative value to stop this vCPU (after calling vm_request_stop()).
 */
#include "arch/x86/regs.h"
#include "core/exit_status.h"
#include "core/log.h"
#include "core/sandbox.h"
#include "core/vm.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

typedef int (*vcpu_exit_fn)(struct vcpu *vcpu);

static void vcpu_report_crash(struct vcpu *vcpu, const char *what)
{
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	char dump[1024] = "(registers unavailable)";

	const char *note = "";

	if (kvm_ioctl(vcpu->fd, KVM_GET_REGS, &regs) == 0 &&
	    kvm_ioctl(vcpu->fd, KVM_GET_SREGS, &sregs) == 0) {
		regs_format(&regs, &sregs, dump, sizeof(dump));
		/* On AMD, KVM re-initialises the VMCB on a shutdown intercept. */
		if (regs.rip == X86_RESET_RIP && sregs.cs.base == X86_RESET_CS_BASE)
			note = "\n  (this is the reset state: the host's KVM reset the vCPU on "
			       "shutdown, as on AMD; the faulting state is lost)";
	}
	log_error("vCPU %u: %s\n  %s%s", vcpu->id, what, dump, note);
	vm_request_stop(vcpu->vm, NESTVM_EXIT_CRASH, what);
}

/* Port I/O, possibly a string instruction: count accesses of size bytes each. */
static int vcpu_exit_io(struct vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	bool is_write = run->io.direction == KVM_EXIT_IO_OUT;

	for (uint32_t i = 0; i < run->io.count; i++, data += run->io.size)
		bus_dispatch(&vcpu->vm->pio, run->io.port, data, run->io.size, is_write);
	return 0;
}

static int vcpu_exit_mmio(struct vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;
	uint32_t len = run->mmio.len <= 8 ? run->mmio.len : 8;

	bus_dispatch(&vcpu->vm->mmio, run->mmio.phys_addr, run->mmio.data, len, run->mmio.is_write);
	return 0;
}

/*
 * NESTVM_SHUTDOWN_HOLD=SECS (1 to 600): on a triple fault, keep the VM and
 * its memory for SECS seconds before stopping it, for a debugger or
 * /proc/PID/mem to read its page tables. The vCPU's registers are lost by
 * then on AMD (above); the lab takes the L1's CR3 from its kprobe on its own
 * KVM and walks the L1's page tables here (tests/lab/README.md, "lab.sh").
 */
static void vcpu_shutdown_hold(struct vcpu *vcpu)
{
	const char *env = getenv("NESTVM_SHUTDOWN_HOLD");
	char *end;
	unsigned long secs;

	if (!env || !*env)
		return;
	secs = strtoul(env, &end, 10);
	if (*end || secs == 0 || secs > 600) {
		log_warn("NESTVM_SHUTDOWN_HOLD=%s: not a number of seconds from 1 to 600; "
		         "not holding",
		         env);
		return;
	}
	log_warn("vCPU %u: triple fault: holding the VM for %lu s (NESTVM_SHUTDOWN_HOLD)", vcpu->id,
	         secs);
	sleep((unsigned int)secs);
}

static int vcpu_exit_shutdown(struct vcpu *vcpu)
{
	vcpu_shutdown_hold(vcpu);
	vcpu_report_crash(vcpu, "triple fault: the guest shut down the CPU (KVM_EXIT_SHUTDOWN)");
	return -1;
}

static int vcpu_exit_system_event(struct vcpu *vcpu)
{
	switch (vcpu->run->system_event.type) {
	case KVM_SYSTEM_EVENT_SHUTDOWN:
		vm_request_stop(vcpu->vm, NESTVM_EXIT_POWEROFF, "guest powered off");
		return -1;
	case KVM_SYSTEM_EVENT_RESET:
		vm_request_stop(vcpu->vm, NESTVM_EXIT_REBOOT, "guest requested a reset");
		return -1;
	default:
		vcpu_report_crash(vcpu, "guest crashed (KVM system event)");
		return -1;
	}
}

static int vcpu_exit_internal_error(struct vcpu *vcpu)
{
	char what[128];

	snprintf(what, sizeof(what), "KVM internal error, suberror %u",
	         vcpu->run->internal.suberror);
	vcpu_report_crash(vcpu, what);
	return -1;
}

static int vcpu_exit_fail_entry(struct vcpu *vcpu)
{
	char what[128];

	snprintf(what, sizeof(what), "VM entry failed, hardware reason 0x%llx",
	         (unsigned long long)vcpu->run->fail_entry.hardware_entry_failure_reason);
	vcpu_report_crash(vcpu, what);
	return -1;
}

static int vcpu_exit_hlt(struct vcpu *vcpu)
{
	/* With the in-kernel LAPIC, HLT never leaves KVM; if it does, the guest is dead. */
	vcpu_report_crash(vcpu, "guest halted with no way to wake up (KVM_EXIT_HLT)");
	return -1;
}

static int vcpu_exit_intr(struct vcpu *vcpu)
{
	(void)vcpu;
	return 0;
}

static const vcpu_exit_fn vcpu_exit_handlers[] = {
    [KVM_EXIT_IO] = vcpu_exit_io,
    [KVM_EXIT_MMIO] = vcpu_exit_mmio,
    [KVM_EXIT_HLT] = vcpu_exit_hlt,
    [KVM_EXIT_SHUTDOWN] = vcpu_exit_shutdown,
    [KVM_EXIT_FAIL_ENTRY] = vcpu_exit_fail_entry,
    [KVM_EXIT_INTERNAL_ERROR] = vcpu_exit_internal_error,
    [KVM_EXIT_SYSTEM_EVENT] = vcpu_exit_system_event,
    [KVM_EXIT_INTR] = vcpu_exit_intr,
};

void *vcpu_thread(void *arg)
{
	struct vcpu *vcpu = arg;
	struct vm *vm = vcpu->vm;
	sigset_t kick;
	char name[16];

	sigemptyset(&kick);
	sigaddset(&kick, SIG_VCPU_KICK);
	pthread_sigmask(SIG_UNBLOCK, &kick, NULL);
	/* Confined before the guest's first instruction on this vCPU. */
	snprintf(name, sizeof(name), "vcpu%u", vcpu->id);
	/* For the throttle's timer (core/vm_dirty.c), which signals this thread. */
	__atomic_store_n(&vcpu->tid, (pid_t)syscall(SYS_gettid), __ATOMIC_RELEASE);
	sandbox_enter(SANDBOX_VCPU, name);
	/* A VM paused before it started (vm_pause() before vm_run()) parks here. */
	vcpu_park_if_requested(vcpu);
	while (!atomic_load(&vm->stopping)) {
		uint32_t reason;
		vcpu_exit_fn fn;
		int r;

		/* Seen by vm_kick_vcpus() after it set immediate_exit (seq_cst both). */
		atomic_store(&vcpu->in_run, true);
		r = ioctl(vcpu->fd, KVM_RUN, 0);
		atomic_store(&vcpu->in_run, false);
		if (r < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				vcpu_park_if_requested(vcpu);
				vcpu_throttle(vcpu);
				continue;
			}
			log_error("vCPU %u: KVM_RUN failed: %s", vcpu->id, strerror(errno));
			vm_request_stop(vm, NESTVM_EXIT_ERROR, "KVM_RUN failed");
			break;
		}
		reason = vcpu->run->exit_reason;
		fn = reason < sizeof(vcpu_exit_handlers) / sizeof(vcpu_exit_handlers[0])
		         ? vcpu_exit_handlers[reason]
		         : NULL;
		if (!fn) {
			char what[64];

			snprintf(what, sizeof(what), "unexpected exit reason %u", reason);
			vcpu_report_crash(vcpu, what);
			break;
		}
		if (fn(vcpu) < 0)
			break;
	}
	return NULL;
}
