/* SPDX-License-Identifier: MIT */
/*
 * VM lifecycle: create the KVM VM, memory, devices and vCPUs; run the vCPU
 * threads; stop them all through one path.
 *
 * Stopping: whoever wants the VM to end (a vCPU exit handler, a device, a
 * signal) calls vm_request_stop(). The first caller's status wins; the main
 * thread, waiting in sigwaitinfo(), then sets immediate_exit on every vCPU and
 * kicks each thread in KVM_RUN with SIGUSR1 so that KVM_RUN returns, and joins
 * them.
 */
#include "core/vm.h"

#include "arch/x86/cpuid.h"
#include "arch/x86/layout.h"
#include "arch/x86/nested_host.h"
#include "arch/x86/regs.h"
#include "core/exit_status.h"
#include "core/log.h"
#include "core/machine.h"
#include "core/sandbox.h"
#include "core/vm_limits.h"
#include "devices/legacy/acpi_pm.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static void vm_kick_handler(int sig)
{
	(void)sig;
}

void vm_request_stop(struct vm *vm, int status, const char *why)
{
	int expected = -1;

	if (atomic_compare_exchange_strong(&vm->exit_status, &expected, status)) {
		log_info("stopping: %s (exit status %d)", why, status);
		atomic_store(&vm->stopping, true);
		/* Parked vCPUs and a waiting vm_pause() must see the stop too. */
		pthread_mutex_lock(&vm->lock);
		pthread_cond_broadcast(&vm->cond);
		pthread_mutex_unlock(&vm->lock);
		pthread_kill(vm->main_thread, SIG_VM_STOPPED);
	}
}

const char *vm_stop_cause(struct vm *vm)
{
	int status = atomic_load(&vm->exit_status);

	switch (status) {
	case -1:
		return "is running";
	case NESTVM_EXIT_POWEROFF:
		return "powered off";
	case NESTVM_EXIT_REBOOT:
		return "asked for a reset";
	case NESTVM_EXIT_CRASH:
		return "crashed";
	case NESTVM_EXIT_ERROR:
		return "stopped on an error";
	default:
		return status > NESTVM_EXIT_SIGNAL_BASE ? "was killed" : "ended";
	}
}

/* Make every vCPU leave KVM_RUN soon: immediate_exit plus a signal. */
static void vm_kick_vcpus(struct vm *vm)
{
	for (unsigned int i = 0; i < vm->nr_vcpus; i++) {
		if (vm->vcpus[i].run)
			vm->vcpus[i].run->immediate_exit = 1;
	}
	/* Those stores before the in_run loads below (x86 reorders a store after a load). */
	atomic_thread_fence(memory_order_seq_cst);
	/*
	 * The signal only for a thread in KVM_RUN: one outside it finds
	 * immediate_exit set when it enters. Not kicking the others spares the
	 * thread whose guest stopped the VM, on its way out, a wait: glibc's
	 * pthread_kill() holds the lock that the thread's exit takes.
	 */
	for (unsigned int i = 0; i < vm->nr_vcpus; i++) {
		if (vm->vcpus[i].started && atomic_load(&vm->vcpus[i].in_run))
			pthread_kill(vm->vcpus[i].thread, SIG_VCPU_KICK);
	}
}

/*
 * The pause handshake, vCPU side. immediate_exit is cleared here under the
 * lock, and vm_pause() sets it under the same lock before it kicks: a pause
 * requested after this vCPU left the park either finds immediate_exit set
 * when KVM_RUN starts or interrupts KVM_RUN with the kick. Clearing it after
 * the unlock (as before) could undo a new pause's request, and a halted guest
 * then kept the vCPU in KVM_RUN for good while vm_pause() waited.
 */
void vcpu_park_if_requested(struct vcpu *vcpu)
{
	struct vm *vm = vcpu->vm;

	pthread_mutex_lock(&vm->lock);
	if (vm->pause_requested && !atomic_load(&vm->stopping)) {
		vm->nr_parked++;
		pthread_cond_broadcast(&vm->cond);
		while (vm->pause_requested && !atomic_load(&vm->stopping))
			pthread_cond_wait(&vm->cond, &vm->lock);
		vm->nr_parked--;
	}
	/* A stop sets immediate_exit without the lock, but the loop checks stopping next. */
	if (!atomic_load(&vm->stopping))
		vcpu->run->immediate_exit = 0;
	pthread_mutex_unlock(&vm->lock);
}

/* Absolute CLOCK_MONOTONIC time @ms from now (vm->cond waits on that clock). */
static struct timespec vm_deadline(unsigned int ms)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	t.tv_sec += ms / 1000;
	t.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (t.tv_nsec >= 1000000000L) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000L;
	}
	return t;
}

int vm_pause(struct vm *vm)
{
	struct timespec deadline = vm_deadline(VM_PAUSE_TIMEOUT_MS);
	int r = 0;

	pthread_mutex_lock(&vm->lock);
	vm->pause_requested = true;
	/* Before vm_run() the vCPU threads park as soon as they start. */
	if (vm->running) {
		vm_kick_vcpus(vm);
		while (vm->nr_parked < vm->nr_vcpus && !atomic_load(&vm->stopping) && r == 0)
			r = -pthread_cond_timedwait(&vm->cond, &vm->lock, &deadline);
	}
	if (atomic_load(&vm->stopping)) {
		r = -ESHUTDOWN;
	} else if (r == -ETIMEDOUT) {
		/* Give up cleanly: let the vCPUs that did park run again. */
		log_error("pause: %u of %u vCPUs parked within %u ms; resuming the others",
		          vm->nr_parked, vm->nr_vcpus, VM_PAUSE_TIMEOUT_MS);
		vm->pause_requested = false;
		pthread_cond_broadcast(&vm->cond);
	}
	pthread_mutex_unlock(&vm->lock);
	return r;
}

int vm_resume(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	vm->pause_requested = false;
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	return 0;
}

int vm_quiesce(struct vm *vm)
{
	int r = 0;

	pthread_mutex_lock(&vm->quiesce_lock);
	if (!vm->quiesced) {
		r = vm_pause(vm);
		if (r == 0) {
			r = device_list_quiesce(&vm->devices);
			if (r < 0)
				vm_resume(vm);
		}
		vm->quiesced = r == 0;
	}
	pthread_mutex_unlock(&vm->quiesce_lock);
	return r;
}

void vm_unquiesce(struct vm *vm)
{
	pthread_mutex_lock(&vm->quiesce_lock);
	if (vm->quiesced) {
		device_list_resume(&vm->devices);
		vm_resume(vm);
		vm->quiesced = false;
	}
	pthread_mutex_unlock(&vm->quiesce_lock);
}

bool vm_is_quiesced(struct vm *vm)
{
	bool q;

	pthread_mutex_lock(&vm->quiesce_lock);
	q = vm->quiesced;
	pthread_mutex_unlock(&vm->quiesce_lock);
	return q;
}

bool vm_is_paused(struct vm *vm)
{
	bool paused;

	pthread_mutex_lock(&vm->lock);
	paused = vm->pause_requested;
	pthread_mutex_unlock(&vm->lock);
	return paused;
}

/*
 * Reads one vCPU's nested-virtualization bits into @out. @ns is a buffer of
 * vm->nested_state_size bytes: KVM_GET_NESTED_STATE on SVM (Linux 6.1,
 * svm_get_nested_state()) checks the caller's size against the header only,
 * then writes the 4 KiB VMCB after it while the vCPU runs an L2, and only
 * then fails with E2BIG. A header-sized buffer gets overrun in the kernel,
 * where no sanitizer sees it; the full size KVM_CAP_NESTED_STATE reports
 * never is.
 */
static int vm_vcpu_guest_hv(struct vm *vm, struct vcpu *vcpu, struct kvm_nested_state *ns,
                            struct vm_guest_hv *out)
{
	struct kvm_sregs sregs;
	int r;

	r = kvm_ioctl(vcpu->fd, KVM_GET_SREGS, &sregs);
	if (r < 0)
		return r;
	out->vcpus_svme += !!(sregs.efer & X86_EFER_SVME);
	out->vcpus_vmxe += !!(sregs.cr4 & X86_CR4_VMXE);
	if (!ns)
		return 0;
	memset(ns, 0, (size_t)vm->nested_state_size);
	ns->size = (uint32_t)vm->nested_state_size;
	if (kvm_ioctl(vcpu->fd, KVM_GET_NESTED_STATE, ns) == 0)
		out->vcpus_guest_mode += !!(ns->flags & KVM_STATE_NESTED_GUEST_MODE);
	return 0;
}

int vm_guest_hypervisor(struct vm *vm, struct vm_guest_hv *out)
{
	struct kvm_nested_state *ns = NULL;
	struct timespec now;
	bool was_paused;
	int r = 0;

	memset(out, 0, sizeof(*out));
	/* Without --nested on, KVM refuses EFER.SVME and CR4.VMXE: nothing to look at. */
	if (!vm->cfg.nested)
		return 0;
	/* A recent sample answers without parking the guest again. */
	clock_gettime(CLOCK_MONOTONIC, &now);
	pthread_mutex_lock(&vm->lock);
	if (vm->guest_hv_valid && (now.tv_sec - vm->guest_hv_time.tv_sec) * 1000 +
	                                  (now.tv_nsec - vm->guest_hv_time.tv_nsec) / 1000000 <
	                              VM_GUEST_HV_MAX_AGE_MS) {
		*out = vm->guest_hv;
		pthread_mutex_unlock(&vm->lock);
		return 0;
	}
	pthread_mutex_unlock(&vm->lock);

	if (vm->nested_state_size >= (int)sizeof(*ns)) {
		ns = calloc(1, (size_t)vm->nested_state_size);
		if (!ns)
			return -ENOMEM;
	}
	was_paused = vm_is_paused(vm);
	if (!was_paused) {
		r = vm_pause(vm);
		if (r < 0)
			goto out;
	}
	for (unsigned int i = 0; i < vm->nr_vcpus && r == 0; i++)
		r = vm_vcpu_guest_hv(vm, &vm->vcpus[i], ns, out);
	if (!was_paused)
		vm_resume(vm);
	out->active = out->vcpus_svme || out->vcpus_vmxe || out->vcpus_guest_mode;
	if (r == 0) {
		pthread_mutex_lock(&vm->lock);
		vm->guest_hv = *out;
		vm->guest_hv_time = now;
		vm->guest_hv_valid = true;
		pthread_mutex_unlock(&vm->lock);
	}
out:
	free(ns);
	return r;
}

bool vm_power_button(struct vm *vm)
{
	return vm->pm && acpi_pm_press_power_button(vm->pm);
}

static int vm_add_memory(struct vm *vm)
{
	for (unsigned int i = 0; i < vm->mem.nr_regions; i++) {
		struct kvm_userspace_memory_region region = {
		    .slot = i,
		    .guest_phys_addr = vm->mem.regions[i].gpa,
		    .memory_size = vm->mem.regions[i].size,
		    .userspace_addr = (uintptr_t)vm->mem.regions[i].host,
		};
		int r = kvm_ioctl(vm->fd, KVM_SET_USER_MEMORY_REGION, &region);

		if (r < 0) {
			log_error("cannot give %llu MiB of memory to KVM: %s",
			          (unsigned long long)(region.memory_size >> 20), strerror(-r));
			return r;
		}
	}
	return 0;
}

/*
 * The in-kernel PIC, IOAPIC and PIT. Created after the memory slots: on some
 * hosts every memslot change made after the irqchip exists waits for an SRCU
 * grace period (several ms each).
 */
static int vm_create_irqchip(struct vm *vm)
{
	struct kvm_pit_config pit = {.flags = 0};
	int r;

	r = kvm_ioctl(vm->fd, KVM_CREATE_IRQCHIP, NULL);
	if (r == 0 && vm->cfg.pit)
		r = kvm_ioctl(vm->fd, KVM_CREATE_PIT2, &pit);
	if (r < 0)
		log_error("cannot create the in-kernel interrupt controllers: %s", strerror(-r));
	return r;
}

static int vm_create_vcpu(struct vm *vm, unsigned int id, bool boot)
{
	struct vcpu *vcpu = &vm->vcpus[id];
	struct kvm_cpuid2 *cpuid;
	int r;

	vcpu->vm = vm;
	vcpu->id = id;
	vcpu->fd = kvm_ioctl(vm->fd, KVM_CREATE_VCPU, (void *)(uintptr_t)id);
	if (vcpu->fd < 0) {
		r = vcpu->fd;
		log_error("cannot create vCPU %u: %s", id, strerror(-r));
		return r;
	}
	vcpu->run =
	    mmap(NULL, vm->sys.vcpu_mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu->fd, 0);
	if (vcpu->run == MAP_FAILED) {
		vcpu->run = NULL;
		return -errno;
	}
	/* Each vCPU gets the VM's CPUID with its own APIC id patched in. */
	cpuid = kvm_cpuid_alloc(vm->cpuid->nent);
	if (!cpuid)
		return -ENOMEM;
	memcpy(cpuid->entries, vm->cpuid->entries, vm->cpuid->nent * sizeof(cpuid->entries[0]));
	cpuid_policy_set_apic_id(cpuid, id);
	r = kvm_ioctl(vcpu->fd, KVM_SET_CPUID2, cpuid);
	free(cpuid);
	if (r < 0) {
		log_error("vCPU %u: KVM_SET_CPUID2 failed: %s", id, strerror(-r));
		return r;
	}
	r = msr_policy_init_vcpu(vcpu->fd);
	if (r < 0)
		log_warn("vCPU %u: initial MSRs not set: %s", id, strerror(-r));
	if (vm->vmx_msrs.nr) {
		struct kvm_msrs *m = calloc(1, sizeof(*m) + sizeof(vm->vmx_msrs.entries));

		if (!m)
			return -ENOMEM;
		m->nmsrs = vm->vmx_msrs.nr;
		memcpy(m->entries, vm->vmx_msrs.entries, m->nmsrs * sizeof(m->entries[0]));
		r = kvm_ioctl(vcpu->fd, KVM_SET_MSRS, m);
		free(m);
		if (r != (int)vm->vmx_msrs.nr) {
			log_error("vCPU %u: KVM refused VMX capability MSRs (%d of %u set)", id, r,
			          vm->vmx_msrs.nr);
			return r < 0 ? r : -EINVAL;
		}
	}
	/* Only the boot vCPU gets registers; the others wait for INIT/SIPI in KVM. */
	if (id == 0 && boot) {
		struct kvm_regs regs;
		struct kvm_sregs sregs;

		r = kvm_ioctl(vcpu->fd, KVM_GET_SREGS, &sregs);
		if (r < 0)
			return r;
		regs_boot_init(&vm->boot, &regs, &sregs);
		r = kvm_ioctl(vcpu->fd, KVM_SET_SREGS, &sregs);
		if (r == 0)
			r = kvm_ioctl(vcpu->fd, KVM_SET_REGS, &regs);
		if (r < 0) {
			log_error("vCPU 0: cannot set boot registers: %s", strerror(-r));
			return r;
		}
	}
	return 0;
}

/* --nested on where KVM cannot nest: say which readiness checks fail and how to fix them. */
static void vm_explain_no_nesting(struct vm *vm)
{
	struct nested_host_facts facts;
	struct nested_host_report report;

	log_error("--nested on: this host's KVM offers neither VT-x nor AMD-V to guests; "
	          "the VM cannot start with nesting on. Failing checks:");
	nested_host_gather(&facts, "", vm->cfg.kvm_path);
	nested_host_evaluate(&facts, &report);
	for (unsigned int i = 0; i < report.nr_checks; i++) {
		const struct nested_check *c = &report.checks[i];

		if (c->result == NESTED_CHECK_FAIL)
			log_error("  %s: %s; fix: %s", c->name, c->detail, c->hint);
	}
}

/*
 * KVM_GET_SUPPORTED_CPUID on a helper thread. KVM runs the host's CPUID for
 * every leaf it reports, and where the host is itself a guest each CPUID
 * traps to the hypervisor below (~5 us on the development machine: ~0.25 ms
 * for its 56 entries, the largest single step of a start). The main thread
 * creates the VM, its memory slot, irqchip and PIT meanwhile, and joins the
 * helper before anything needs the CPUID. The helper makes that one ioctl on
 * /dev/kvm and ends, before any guest code runs; it does not confine itself
 * (installing a seccomp filter costs more than the ioctl).
 */
#define VM_CPUID_PROBE_STACK (64 * 1024)

struct vm_cpuid_probe {
	int kvm_fd;
	pthread_t thread;
	bool started;
	struct kvm_cpuid2 *table; /* KVM_MAX_CPUID_ENTRIES; NULL: nothing started */
	int r;
};

static void *vm_cpuid_probe_run(void *arg)
{
	struct vm_cpuid_probe *p = arg;

	p->r = kvm_supported_cpuid_fill(p->kvm_fd, p->table);
	return NULL;
}

/*
 * Start the probe. The table is allocated here: a malloc() on the helper
 * would give it a heap (arena) of its own, 0.1 MiB more RSS. Without a
 * thread or memory, vm_cpuid_probe_wait() does it all itself.
 */
static void vm_cpuid_probe_start(struct vm_cpuid_probe *p, const struct kvm_sys *sys)
{
	pthread_attr_t attr;

	p->kvm_fd = sys->fd;
	p->table = kvm_cpuid_alloc(KVM_MAX_CPUID_ENTRIES);
	if (!p->table || pthread_attr_init(&attr) != 0)
		return;
	pthread_attr_setstacksize(&attr, VM_CPUID_PROBE_STACK);
	p->started = pthread_create(&p->thread, &attr, vm_cpuid_probe_run, p) == 0;
	pthread_attr_destroy(&attr);
}

/*
 * Its result: 0 with @out (the caller frees it), or -errno. A started
 * probe must be waited for before its kvm_sys closes.
 */
static int vm_cpuid_probe_wait(struct vm_cpuid_probe *p, struct kvm_cpuid2 **out)
{
	if (p->started)
		pthread_join(p->thread, NULL);
	else if (p->table)
		vm_cpuid_probe_run(p);
	else
		p->r = -ENOMEM;
	p->started = false;
	if (p->r < 0) {
		free(p->table);
		p->table = NULL;
	}
	*out = p->table;
	p->table = NULL;
	return p->r;
}

/* Open /dev/kvm, create the VM, and start the CPUID probe (vm_build_cpuid() ends it). */
static int vm_create_kvm(struct vm *vm, struct vm_cpuid_probe *probe)
{
	int r, max_vcpus;

	r = kvm_sys_open(&vm->sys, vm->cfg.kvm_path);
	if (r < 0) {
		log_error("cannot open %s: %s%s", vm->cfg.kvm_path, strerror(-r),
		          r == -ENOENT   ? " (is the kvm module loaded?)"
		          : r == -EACCES ? " (add yourself to the kvm group or run as root)"
		          : r == -ENODEV ? " (not the KVM character device)"
		                         : "");
		return r;
	}
	if (!kvm_check_cap(vm->sys.fd, KVM_CAP_IMMEDIATE_EXIT) ||
	    !kvm_check_cap(vm->sys.fd, KVM_CAP_IRQCHIP)) {
		log_error("this KVM lacks KVM_CAP_IMMEDIATE_EXIT or KVM_CAP_IRQCHIP (Linux >= 4.11 "
		          "needed)");
		return -ENOTSUP;
	}
	vm->nested_state_size = kvm_check_cap(vm->sys.fd, KVM_CAP_NESTED_STATE);
	max_vcpus = kvm_check_cap(vm->sys.fd, KVM_CAP_MAX_VCPUS);
	if (max_vcpus > 0 && vm->cfg.cpus > (unsigned int)max_vcpus) {
		log_error("--cpus %u: this host's KVM allows at most %d vCPUs", vm->cfg.cpus,
		          max_vcpus);
		return -EINVAL;
	}
	vm_cpuid_probe_start(probe, &vm->sys);
	vm->fd = kvm_ioctl(vm->sys.fd, KVM_CREATE_VM, NULL);
	if (vm->fd < 0) {
		log_error("KVM_CREATE_VM failed: %s", strerror(-vm->fd));
		return vm->fd;
	}
	r = vcpu_state_caps_probe(vm->sys.fd, vm->fd, &vm->state_caps);
	if (r < 0)
		log_warn("cannot tell what KVM can save: %s; this VM cannot be saved",
		         strerror(-r));
	/* Needed by VMX for real-mode emulation; harmless elsewhere. */
	if (kvm_ioctl(vm->fd, KVM_SET_TSS_ADDR, (void *)(uintptr_t)LAYOUT_KVM_TSS) < 0)
		log_debug("KVM_SET_TSS_ADDR not supported");
	return 0;
}

/* The guest's CPUID from the probe's result, and for nested VMX, KVM's VMX MSRs. */
static int vm_build_cpuid(struct vm *vm, struct vm_cpuid_probe *probe)
{
	struct kvm_cpuid2 *supported = NULL;
	struct cpuid_config cc = {
	    .nr_cpus = vm->cfg.cpus,
	    .nested = vm->cfg.nested,
	    .tsc_deadline = kvm_check_cap(vm->sys.fd, KVM_CAP_TSC_DEADLINE_TIMER) > 0,
	};
	int r = vm_cpuid_probe_wait(probe, &supported);

	if (r < 0) {
		log_error("KVM_GET_SUPPORTED_CPUID failed: %s", strerror(-r));
		return r;
	}
	r = cpuid_policy_build(supported, &cc, &vm->cpuid);
	free(supported);
	if (r == -ENOTSUP) {
		vm_explain_no_nesting(vm);
		return r;
	}
	if (r < 0) {
		log_error("cannot build the guest CPUID: %s", strerror(-r));
		return r;
	}
	if (vm->cfg.nested && cpuid_vendor(vm->cpuid) == CPU_VENDOR_INTEL) {
		r = nested_vmx_msrs_read(vm->sys.fd, &vm->vmx_msrs);
		if (r < 0)
			log_error("cannot read KVM's VMX capability MSRs: %s", strerror(-r));
	}
	return r;
}

/*
 * Put the calling thread on the host CPUs cfg->cpu_affinity names, before
 * the VM's threads exist: they inherit it. CPUs this process may not run on
 * (the host has none such) are left out with a warning; none left is an
 * error, said in @rs's why (a restore) or logged.
 */
static int vm_set_affinity(const struct vm_config *cfg, struct vm_restore *rs)
{
	char text[VM_LIMITS_WHY_LEN], asked[VM_LIMITS_WHY_LEN], why[3 * VM_LIMITS_WHY_LEN];
	cpu_set_t want, have, both;

	if (!cfg->cpu_affinity)
		return 0;
	if (vm_limits_parse_affinity(cfg->cpu_affinity, &want, text, sizeof(text)) < 0) {
		snprintf(why, sizeof(why), "cpu affinity '%s': %s", cfg->cpu_affinity, text);
		goto fail;
	}
	vm_limits_format_affinity(&want, asked, sizeof(asked));
	if (sched_getaffinity(0, sizeof(have), &have) < 0) {
		snprintf(why, sizeof(why), "cpu affinity %s: %s", asked, strerror(errno));
		goto fail;
	}
	CPU_AND(&both, &want, &have);
	vm_limits_format_affinity(&have, text, sizeof(text));
	if (!CPU_COUNT(&both)) {
		snprintf(why, sizeof(why),
		         "cpu affinity %s: none of these host CPUs is one it may run on (%s)", asked,
		         text);
		goto fail;
	}
	if (!CPU_EQUAL(&both, &want)) {
		vm_limits_format_affinity(&both, text, sizeof(text));
		log_warn("cpu affinity %s: runs on host CPUs %s, the others are not this host's or "
		         "not this process's to use",
		         asked, text);
	}
	if (sched_setaffinity(0, sizeof(both), &both) == 0)
		return 0;
	snprintf(why, sizeof(why), "cpu affinity %s: %s", asked, strerror(errno));
fail:
	if (rs)
		snprintf(rs->why, sizeof(rs->why), "%.*s", (int)sizeof(rs->why) - 1, why);
	else
		log_error("%s", why);
	return -EINVAL;
}

/*
 * vm_build_base - the first half of vm_build(): the KVM VM, its RAM in
 * memory slots, the irqchip and PIT. Nothing of it depends on a saved
 * state. 0, or -errno with the VM destroyed.
 */
static int vm_build_base(const struct vm_config *cfg, struct vm_restore *rs, struct vm **out)
{
	struct vm *vm = calloc(1, sizeof(*vm));
	struct vm_cpuid_probe probe = {0};
	pthread_condattr_t ca;
	int r;

	if (!vm)
		return -ENOMEM;
	vm->cfg = *cfg;
	vm->fd = -1;
	vm->sys.fd = -1;
	vm->console_fd = -1;
	vm->console_wake_fd = -1;
	vm->main_thread = pthread_self();
	atomic_init(&vm->exit_status, -1);
	atomic_init(&vm->stopping, false);
	atomic_init(&vm->throttle_pct, 0);
	pthread_mutex_init(&vm->lock, NULL);
	pthread_mutex_init(&vm->quiesce_lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&vm->cond, &ca);
	pthread_condattr_destroy(&ca);

	r = vm_set_affinity(cfg, rs);
	if (r < 0)
		goto err;
	r = vm_create_kvm(vm, &probe);
	if (r < 0)
		goto err;
	if (rs && rs->ram) {
		/* A migration's RAM, filled from the stream: the VM takes it over. */
		if (rs->ram->ram_size != cfg->memory) {
			r = -EINVAL;
			snprintf(rs->why, sizeof(rs->why), "its RAM holds %llu bytes, not %llu",
			         (unsigned long long)rs->ram->ram_size,
			         (unsigned long long)cfg->memory);
			goto err;
		}
		vm->mem = *rs->ram;
		memset(rs->ram, 0, sizeof(*rs->ram));
	} else {
		r = guest_mem_init(&vm->mem, cfg->memory, cfg->hugepages && !rs);
		if (r < 0) {
			log_error("cannot reserve %llu MiB of guest memory: %s",
			          (unsigned long long)(cfg->memory >> 20), strerror(-r));
			goto err;
		}
	}
	if (rs && !rs->ram) {
		r = guest_mem_map_file(&vm->mem, rs->memory_fd);
		if (r < 0) {
			snprintf(rs->why, sizeof(rs->why), "cannot map its memory file: %s",
			         strerror(-r));
			goto err;
		}
	}
	r = vm_add_memory(vm);
	if (r == 0)
		r = vm_create_irqchip(vm);
	if (r == 0)
		r = vm_build_cpuid(vm, &probe);
	if (r == 0)
		r = vm_state_register_early(vm);
	if (r < 0)
		goto err;
	*out = vm;
	return 0;
err:
	/* A probe still running uses /dev/kvm's descriptor: it ends before the VM goes. */
	if (probe.started)
		pthread_join(probe.thread, NULL);
	free(probe.table);
	if (rs && !rs->why[0])
		snprintf(rs->why, sizeof(rs->why), "cannot build its VM: %s", strerror(-r));
	vm_destroy(vm);
	return r;
}

/*
 * vm_build_rest - the second half: the kernel (booting, @rs NULL), the
 * devices, the vCPUs, and @rs's state. 0, or -errno with the VM destroyed.
 */
static int vm_build_rest(struct vm *vm, struct vm_restore *rs)
{
	const struct vm_config *cfg = &vm->cfg;
	struct boot_config bc;
	int r;

	if (!rs) {
		bc = (struct boot_config){
		    .kernel_path = cfg->kernel,
		    .initrd_path = cfg->initrd,
		    .cmdline = cfg->cmdline,
		    .rsdp_gpa = machine_write_acpi(vm),
		};
		if (!bc.rsdp_gpa) {
			r = -ENOSPC;
			log_error("cannot build ACPI tables");
			goto err;
		}
		r = boot_load(&vm->mem, &bc, &vm->boot);
		if (r < 0)
			goto err;
	}
	r = machine_create_devices(vm);
	if (r < 0)
		goto err;
	vm->vcpus = calloc(cfg->cpus, sizeof(*vm->vcpus));
	if (!vm->vcpus) {
		r = -ENOMEM;
		goto err;
	}
	for (unsigned int i = 0; i < cfg->cpus; i++) {
		vm->vcpus[i].fd = -1;
		vm->nr_vcpus++;
		r = vm_create_vcpu(vm, i, !rs);
		if (r < 0)
			goto err;
	}
	r = vm_state_register_late(vm);
	if (r == 0 && rs)
		r = device_list_restore(&vm->devices, rs->state, rs->why, sizeof(rs->why));
	if (r < 0)
		goto err;
	return 0;
err:
	if (rs && !rs->why[0])
		snprintf(rs->why, sizeof(rs->why), "cannot build its VM: %s", strerror(-r));
	vm_destroy(vm);
	return r;
}

/*
 * vm_build - vm_create() and vm_create_restored(): the same VM either way,
 * booting @cfg's kernel (@rs NULL) or loaded with @rs's state.
 */
static int vm_build(const struct vm_config *cfg, struct vm_restore *rs, struct vm **out)
{
	struct vm *vm;
	int r = vm_build_base(cfg, rs, &vm);

	if (r == 0)
		r = vm_build_rest(vm, rs);
	if (r == 0)
		*out = vm;
	return r;
}

int vm_create(const struct vm_config *cfg, struct vm **out)
{
	return vm_build(cfg, NULL, out);
}

int vm_create_restored(const struct vm_config *cfg, struct vm_restore *rs, struct vm **out)
{
	rs->why[0] = 0;
	return vm_build(cfg, rs, out);
}

int vm_create_incoming(const struct vm_config *cfg, struct vm_restore *rs, struct vm **out)
{
	rs->why[0] = 0;
	return vm_build_base(cfg, rs, out);
}

int vm_finish_restored(struct vm *vm, struct vm_restore *rs)
{
	rs->why[0] = 0;
	return vm_build_rest(vm, rs);
}

int vm_run(struct vm *vm, void (*confined)(void *arg), void *arg)
{
	sigset_t stop_set;
	struct sigaction sa = {.sa_handler = vm_kick_handler};
	int r, status;

	/* Every thread blocks the stop signals; the main thread waits for them. */
	sigemptyset(&stop_set);
	sigaddset(&stop_set, SIGINT);
	sigaddset(&stop_set, SIGTERM);
	sigaddset(&stop_set, SIG_VM_STOPPED);
	sigaddset(&stop_set, SIG_VCPU_KICK);
	pthread_sigmask(SIG_BLOCK, &stop_set, NULL);
	sigaction(SIG_VCPU_KICK, &sa, NULL);
	vm->main_thread = pthread_self();

	pthread_mutex_lock(&vm->lock);
	vm->running = true;
	for (unsigned int i = 0; i < vm->nr_vcpus; i++) {
		r = sandbox_thread_create(&vm->vcpus[i].thread, vcpu_thread, &vm->vcpus[i]);
		if (r != 0) {
			log_error("cannot start vCPU %u thread: %s", i, strerror(r));
			vm_request_stop(vm, NESTVM_EXIT_ERROR, "thread creation failed");
			break;
		}
		vm->vcpus[i].started = true;
	}
	pthread_mutex_unlock(&vm->lock);
	/* Last: every other thread of the VM exists now and has confined itself. */
	sandbox_enter(SANDBOX_MAIN, "main");
	if (confined)
		confined(arg);
	/* vCPU threads inherit the mask; they unblock the kick signal themselves. */
	sigdelset(&stop_set, SIG_VCPU_KICK);

	while (!atomic_load(&vm->stopping)) {
		siginfo_t si;
		int sig = sigwaitinfo(&stop_set, &si);

		if (sig == SIGINT || sig == SIGTERM)
			vm_request_stop(vm, NESTVM_EXIT_SIGNAL_BASE + sig,
			                sig == SIGINT ? "interrupted (SIGINT)"
			                              : "terminated (SIGTERM)");
	}
	vm_kick_vcpus(vm);
	for (unsigned int i = 0; i < vm->nr_vcpus; i++) {
		if (vm->vcpus[i].started)
			pthread_join(vm->vcpus[i].thread, NULL);
		vm->vcpus[i].started = false;
	}
	pthread_mutex_lock(&vm->lock);
	vm->running = false;
	pthread_mutex_unlock(&vm->lock);
	status = atomic_load(&vm->exit_status);
	return status < 0 ? NESTVM_EXIT_ERROR : status;
}

/*
 * The teardown child of vm_destroy_at_exit(). It shares the monitor's memory
 * (CLONE_VM: a fork() copied the page tables and then took copy-on-write
 * faults in both processes, 0.1-0.6 ms of a 4 ms start-up on this host), so
 * it runs on a stack of its own that outlives the monitor's threads, with
 * every signal blocked, and makes system calls only: it runs with the
 * monitor's TLS, so no libc state of its own (a failed call sets the
 * monitor's errno, which no longer matters then).
 */
#define VM_TEARDOWN_STACK_SIZE 16384
static uint8_t vm_teardown_stack[VM_TEARDOWN_STACK_SIZE] __attribute__((aligned(16)));
static int vm_teardown_pipe[2]; /* written before the clone(), only read after */
/*
 * What the child closes: every descriptor but the VM's, its vCPUs' and the
 * pipe's read end, as ranges for close_range() (sorted, set before the
 * clone()). A copy of a listening socket (a console port, the control
 * socket) or of a log would otherwise outlive the monitor for as long as the
 * kernel takes to tear the VM down, and a new monitor could not take the path.
 */
#define VM_TEARDOWN_KEEP_MAX 300
static struct {
	unsigned int lo, hi;
} vm_teardown_close[VM_TEARDOWN_KEEP_MAX + 1];
static unsigned int vm_teardown_nclose;

__attribute__((no_sanitize_address)) static int vm_teardown_child(void *arg)
{
	int null = (int)syscall(SYS_openat, AT_FDCWD, "/dev/null", O_RDWR);
	char c;

	(void)arg;
	/* Hold the VM until the parent is gone (the pipe's write end closes), then let it go. */
	syscall(SYS_close, vm_teardown_pipe[1]);
	if (null >= 0) {
		/* Not the caller's stdout: a `$(nestvm run ...)` would wait for this child. */
		syscall(SYS_dup2, null, STDIN_FILENO);
		syscall(SYS_dup2, null, STDOUT_FILENO);
		syscall(SYS_dup2, null, STDERR_FILENO);
	}
	/* null among them, once copied: it is none of those kept. */
	for (unsigned int i = 0; i < vm_teardown_nclose; i++)
		syscall(SYS_close_range, vm_teardown_close[i].lo, vm_teardown_close[i].hi, 0);
	syscall(SYS_read, vm_teardown_pipe[0], &c, 1); /* no signal can interrupt it */
	syscall(SYS_exit, 0);
	return 0;
}

static int vm_fd_cmp(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

/* Set vm_teardown_close for the child: the gaps between the descriptors it keeps. */
static void vm_teardown_ranges(const struct vm *vm)
{
	int keep[VM_TEARDOWN_KEEP_MAX];
	unsigned int n = 0, lo = STDERR_FILENO + 1;

	vm_teardown_nclose = 0;
	if (vm->nr_vcpus + 2 > VM_TEARDOWN_KEEP_MAX)
		return; /* more than any VM has: close nothing, as before */
	keep[n++] = vm_teardown_pipe[0];
	keep[n++] = vm->fd;
	for (unsigned int i = 0; i < vm->nr_vcpus; i++)
		if (vm->vcpus[i].fd >= 0)
			keep[n++] = vm->vcpus[i].fd;
	qsort(keep, n, sizeof(keep[0]), vm_fd_cmp);
	for (unsigned int i = 0; i < n; i++) {
		if (keep[i] < (int)lo)
			continue;
		if ((unsigned int)keep[i] > lo)
			vm_teardown_close[vm_teardown_nclose++] =
			    (typeof(vm_teardown_close[0])){lo, (unsigned int)keep[i] - 1};
		lo = (unsigned int)keep[i] + 1;
	}
	vm_teardown_close[vm_teardown_nclose++] = (typeof(vm_teardown_close[0])){lo, ~0u};
}

void vm_destroy_at_exit(struct vm *vm)
{
	sigset_t all, old;
	pid_t pid;

	if (!vm)
		return;
	/* Everything but the KVM file descriptors goes now. */
	for (unsigned int i = 0; i < vm->nr_vcpus; i++) {
		if (vm->vcpus[i].run)
			munmap(vm->vcpus[i].run, vm->sys.vcpu_mmap_size);
		vm->vcpus[i].run = NULL;
	}
	/* Device threads stop and disk images close before the clone below. */
	machine_stop_devices(vm);
	if (pipe2(vm_teardown_pipe, O_CLOEXEC) < 0)
		goto sync;
	vm_teardown_ranges(vm);
	/* The child starts with every signal blocked: no handler may run on shared memory. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pid = clone(vm_teardown_child, vm_teardown_stack + sizeof(vm_teardown_stack),
	            CLONE_VM | SIGCHLD, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (pid < 0) {
		close(vm_teardown_pipe[0]);
		close(vm_teardown_pipe[1]);
		goto sync;
	}
	/* Parent: the write end closes when this process exits. */
	close(vm_teardown_pipe[0]);
	for (unsigned int i = 0; i < vm->nr_vcpus; i++) {
		if (vm->vcpus[i].fd >= 0)
			close(vm->vcpus[i].fd);
		vm->vcpus[i].fd = -1;
	}
	close(vm->fd);
	vm->fd = -1;
	kvm_sys_close(&vm->sys);
	/*
	 * Guest RAM is not unmapped here either: the child's exit does it, with
	 * the address space it shares (~0.1 ms for 256 MiB of which the probe
	 * touched 50 pages; more with more memory touched).
	 */
	vm->mem.mapping = NULL;
sync:
	vm_destroy(vm);
}

void vm_destroy(struct vm *vm)
{
	if (!vm)
		return;
	/* A migration leaves no throttle behind, but a timer must never outlive its vCPU. */
	if (vm->vcpus && vm_set_throttle(vm, 0) < 0)
		log_debug("throttle timers not deleted");
	for (unsigned int i = 0; i < vm->nr_vcpus; i++) {
		if (vm->vcpus[i].run)
			munmap(vm->vcpus[i].run, vm->sys.vcpu_mmap_size);
		if (vm->vcpus[i].fd >= 0)
			close(vm->vcpus[i].fd);
	}
	free(vm->vcpus);
	machine_destroy_devices(vm);
	bus_destroy(&vm->pio);
	bus_destroy(&vm->mmio);
	guest_mem_destroy(&vm->mem);
	free(vm->cpuid);
	vcpu_state_caps_release(&vm->state_caps);
	if (vm->fd >= 0)
		close(vm->fd);
	kvm_sys_close(&vm->sys);
	pthread_mutex_destroy(&vm->quiesce_lock);
	pthread_mutex_destroy(&vm->lock);
	pthread_cond_destroy(&vm->cond);
	free(vm);
}
