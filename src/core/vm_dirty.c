/* SPDX-License-Identifier: MIT */
/*
 * What live migration needs of a running VM (core/vm.h): the pages written
 * since the last look, and a brake on vCPUs that write faster than the
 * link carries.
 *
 * Dirty pages come from two places. KVM logs the guest's own writes (and
 * its own, to kvmclock and the like) per memory slot once the slot has
 * KVM_MEM_LOG_DIRTY_PAGES (api.rst §4.35); KVM_GET_DIRTY_LOG (§4.8) returns
 * the slot's bitmap and clears it, write-protecting the pages again, so
 * each call sees the writes since the previous one. Writes nestvm's devices
 * make through host pointers (virtio rings and buffers) bypass the MMU and
 * are in no KVM log: the devices mark them in guest_mem's own bitmap.
 *
 * The throttle is QEMU's auto-converge done with a timer per vCPU thread
 * (SIGEV_THREAD_ID, the kick signal): every VM_THROTTLE_PERIOD_US it
 * pulls the vCPU out of KVM_RUN, and the thread sleeps its share of the
 * period before it enters again.
 */
#include "core/log.h"
#include "core/vm.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define VM_THROTTLE_MAX_SLEEP_NS 500000000LL /* half a second: a pause waits no longer */

/* Set (or clear) KVM_MEM_LOG_DIRTY_PAGES on every slot; vm_add_memory()'s slots. */
static int vm_dirty_set_slots(struct vm *vm, bool on)
{
	for (unsigned int i = 0; i < vm->mem.nr_regions; i++) {
		struct kvm_userspace_memory_region region = {
		    .slot = i,
		    .flags = on ? KVM_MEM_LOG_DIRTY_PAGES : 0,
		    .guest_phys_addr = vm->mem.regions[i].gpa,
		    .memory_size = vm->mem.regions[i].size,
		    .userspace_addr = (uintptr_t)vm->mem.regions[i].host,
		};
		int r = kvm_ioctl(vm->fd, KVM_SET_USER_MEMORY_REGION, &region);

		if (r < 0) {
			log_error("cannot turn KVM's dirty log %s on memory slot %u: %s",
			          on ? "on" : "off", i, strerror(-r));
			return r;
		}
	}
	return 0;
}

int vm_dirty_log_start(struct vm *vm)
{
	int r;

	if (vm->dirty_logging)
		return 0;
	r = guest_mem_dirty_start(&vm->mem);
	if (r < 0)
		return r;
	r = vm_dirty_set_slots(vm, true);
	if (r < 0) {
		if (vm_dirty_set_slots(vm, false) < 0)
			log_warn("KVM's dirty log stays on for part of the memory");
		guest_mem_dirty_stop(&vm->mem);
		return r;
	}
	vm->dirty_logging = true;
	return 0;
}

void vm_dirty_log_stop(struct vm *vm)
{
	if (!vm->dirty_logging)
		return;
	if (vm_dirty_set_slots(vm, false) < 0)
		log_warn("KVM's dirty log stays on; the guest runs a little slower");
	guest_mem_dirty_stop(&vm->mem);
	vm->dirty_logging = false;
}

int vm_dirty_log_collect(struct vm *vm, unsigned long *bitmap)
{
	const size_t bits = GUEST_MEM_BITS_PER_WORD;
	unsigned long *slot_bits = NULL;
	int r = 0;

	for (unsigned int i = 0; i < vm->mem.nr_regions && r == 0; i++) {
		const struct guest_mem_region *reg = &vm->mem.regions[i];
		uint64_t pages = reg->size / GUEST_MEM_PAGE_SIZE;
		uint64_t first = (uint64_t)(reg->host - vm->mem.ram) / GUEST_MEM_PAGE_SIZE;
		/* KVM's bitmap: one bit per page of the slot, in 64-bit words. */
		size_t words = (size_t)((pages + 63) / 64) * (64 / bits);
		struct kvm_dirty_log log = {.slot = i};

		free(slot_bits);
		slot_bits = calloc(words ? words : 1, sizeof(*slot_bits));
		if (!slot_bits)
			return -ENOMEM;
		log.dirty_bitmap = slot_bits;
		r = kvm_ioctl(vm->fd, KVM_GET_DIRTY_LOG, &log);
		if (r < 0) {
			log_error("KVM_GET_DIRTY_LOG on memory slot %u: %s", i, strerror(-r));
			break;
		}
		if (first % bits == 0) {
			for (size_t w = 0; w < (size_t)((pages + bits - 1) / bits); w++)
				bitmap[first / bits + w] |= slot_bits[w];
		} else {
			for (uint64_t p = 0; p < pages; p++) {
				if (slot_bits[p / bits] & (1UL << (p % bits)))
					bitmap[(first + p) / bits] |= 1UL << ((first + p) % bits);
			}
		}
	}
	free(slot_bits);
	if (r == 0)
		guest_mem_dirty_take(&vm->mem, bitmap);
	return r;
}

/* ---- the throttle ---- */

static void vm_throttle_timers_delete(struct vm *vm)
{
	for (unsigned int i = 0; i < vm->nr_vcpus; i++) {
		struct vcpu *v = &vm->vcpus[i];

		if (v->throttle_timer_set)
			timer_delete(v->throttle_timer);
		v->throttle_timer_set = false;
	}
}

/* One timer per vCPU thread, delivering the kick signal to that thread. */
static int vm_throttle_timers_create(struct vm *vm)
{
	for (unsigned int i = 0; i < vm->nr_vcpus; i++) {
		struct vcpu *v = &vm->vcpus[i];
		pid_t tid = __atomic_load_n(&v->tid, __ATOMIC_ACQUIRE);
		struct sigevent sev = {
		    .sigev_notify = SIGEV_THREAD_ID,
		    .sigev_signo = SIG_VCPU_KICK,
		};

		if (v->throttle_timer_set)
			continue;
		if (!tid)
			return -ESRCH; /* its thread is not running yet */
		sev._sigev_un._tid = tid;
		if (timer_create(CLOCK_MONOTONIC, &sev, &v->throttle_timer) < 0)
			return -errno;
		v->throttle_timer_set = true;
	}
	return 0;
}

int vm_set_throttle(struct vm *vm, unsigned int pct)
{
	struct itimerspec its = {0};
	int r;

	if (pct > VM_THROTTLE_MAX)
		pct = VM_THROTTLE_MAX;
	if (pct == 0) {
		atomic_store(&vm->throttle_pct, 0);
		vm_throttle_timers_delete(vm);
		return 0;
	}
	r = vm_throttle_timers_create(vm);
	if (r < 0) {
		vm_throttle_timers_delete(vm);
		return r;
	}
	atomic_store(&vm->throttle_pct, pct);
	its.it_value.tv_nsec = VM_THROTTLE_PERIOD_US * 1000L;
	its.it_interval = its.it_value;
	for (unsigned int i = 0; i < vm->nr_vcpus; i++) {
		if (timer_settime(vm->vcpus[i].throttle_timer, 0, &its, NULL) < 0) {
			r = -errno;
			atomic_store(&vm->throttle_pct, 0);
			vm_throttle_timers_delete(vm);
			return r;
		}
	}
	return 0;
}

static int64_t throttle_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/*
 * The sleep is proportional to the time run since the last one, not a share
 * of the timer's period: a kick that lands while the thread sleeps is lost
 * (the sleep goes on to its deadline), and a fixed share would then let the
 * vCPU run a whole period free, capping any throttle near 50%.
 */
void vcpu_throttle(struct vcpu *vcpu)
{
	struct vm *vm = vcpu->vm;
	unsigned int pct = atomic_load(&vm->throttle_pct);
	int64_t now = throttle_now_ns(), sleep_ns;
	struct timespec until;

	if (!pct || atomic_load(&vm->stopping)) {
		vcpu->throttle_mark_ns = 0;
		return;
	}
	if (vcpu->throttle_mark_ns) {
		sleep_ns = (now - vcpu->throttle_mark_ns) * pct / (100 - pct);
		if (sleep_ns > VM_THROTTLE_MAX_SLEEP_NS)
			sleep_ns = VM_THROTTLE_MAX_SLEEP_NS;
		now += sleep_ns;
		until.tv_sec = now / 1000000000LL;
		until.tv_nsec = now % 1000000000LL;
		/* Cut short by a stop or a pause (the quiesce of a switch-over). */
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, NULL) == EINTR &&
		       !atomic_load(&vm->stopping) && !vm_is_paused(vm))
			;
	}
	vcpu->throttle_mark_ns = throttle_now_ns();
}
