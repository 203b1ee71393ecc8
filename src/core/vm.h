/* SPDX-License-Identifier: MIT */
#ifndef NESTVM_CORE_VM_H
#define NESTVM_CORE_VM_H

#include "arch/x86/boot.h"
#include "arch/x86/nested.h"
#include "arch/x86/vcpu_state.h"
#include "core/bus.h"
#include "core/device.h"
#include "core/guest_mem.h"
#include "kvm/kvm.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

/* Signals: SIG_VCPU_KICK makes KVM_RUN return; SIG_VM_STOPPED wakes the main thread. */
#define SIG_VCPU_KICK SIGUSR1
#define SIG_VM_STOPPED SIGUSR2

struct uart_16550;
struct i8042;
struct rtc;
struct acpi_pm;
struct pci_host;
struct machine_virtio;

#define VM_MAX_DISKS 8	       /* --disk */
#define VM_MAX_CONSOLE_PORTS 8 /* --console-port */
#define VM_MAX_NICS 8	       /* --nic */

/*
 * Where COM1 goes: the monitor's stdin/stdout, a file (output only), nowhere,
 * or two descriptors the caller owns (VM_CONSOLE_FD: output is written to
 * console_out_fd, input read from console_in_fd until EOF; -1 for none).
 */
enum vm_console { VM_CONSOLE_STDIO, VM_CONSOLE_FILE, VM_CONSOLE_NONE, VM_CONSOLE_FD };

struct vm_config {
	const char *kernel;
	const char *initrd;
	const char *cmdline;
	unsigned int cpus;
	uint64_t memory; /* bytes */
	bool nested;
	bool hugepages;
	bool pit; /* in-kernel i8254 PIT */
	const char *cpu_affinity; /* host CPUs for the VM's threads (vm_limits.h); NULL: any */
	enum vm_console console;
	const char *console_path; /* VM_CONSOLE_FILE */
	int console_in_fd;	  /* VM_CONSOLE_FD; not owned */
	int console_out_fd;	  /* VM_CONSOLE_FD; not owned */
	const char *kvm_path;	  /* default /dev/kvm */

	/*
	 * Virtio devices on PCI (core/machine_virtio.c). Each *pci_slot is the
	 * device's number on bus 0 (1 to 31), or 0 for the first free one in
	 * creation order (disks, rng, vsock, console, NICs); manager/vm_def.c's
	 * vm_def_to_config() always gives them.
	 */
	struct vm_disk_config {
		const char *path;
		bool readonly;
		int engine; /* enum disk_engine (backends/disk.h): 0 auto */
		unsigned int pci_slot;
	} disks[VM_MAX_DISKS];
	unsigned int nr_disks;
	bool rng;		  /* --rng */
	uint32_t vsock_cid;	  /* --vsock CID; 0: no vsock device */
	const char *vsock_socket; /* its host-side UNIX socket (required with vsock_cid) */
	const char *hvc_socket;	  /* --virtio-console PATH: hvc0 on this UNIX socket */
	struct vm_console_port {
		const char *name;
		const char *socket;
	} console_ports[VM_MAX_CONSOLE_PORTS]; /* --console-port NAME,socket=PATH */
	unsigned int nr_console_ports;
	unsigned int rng_pci_slot;
	unsigned int vsock_pci_slot;
	unsigned int console_pci_slot; /* the virtio-console device: hvc0 and the ports */
	/* --nic: virtio-net devices, each on a port of a switch (net/switch_link.h). */
	struct vm_nic_config {
		const char *switch_name; /* NULL: no switch, the link is down */
		uint8_t mac[6];
		bool mac_spoofing, dhcp_guard, router_guard;
		unsigned int mtu; /* 0: the device's default (1500) */
		unsigned int pci_slot;
		bool connected; /* @fd is its switch port, joined beforehand (machine_nics_connect) */
		int fd;
		unsigned int batch; /* @fd's batches (netport.h): the switch's count, 0: none */
	} nics[VM_MAX_NICS];
	unsigned int nr_nics;
	const char *vm_name;	 /* what the NICs tell their switches ("run-PID" for `run`) */
	const char *switch_home; /* the store whose .switches/ the NICs' switches are in */
};

/*
 * What the guest's own hypervisor is doing, per vCPU: EFER.SVME or CR4.VMXE
 * set (a hypervisor is loaded), and, where KVM reports nested state, whether
 * the vCPU is currently running a nested guest.
 */
struct vm_guest_hv {
	unsigned int vcpus_svme;      /* vCPUs with EFER.SVME */
	unsigned int vcpus_vmxe;      /* vCPUs with CR4.VMXE */
	unsigned int vcpus_guest_mode; /* vCPUs in guest mode (running an L2) */
	bool active;		      /* any of the above */
};

struct vcpu {
	struct vm *vm;
	unsigned int id;
	int fd;
	struct kvm_run *run;
	pthread_t thread;
	bool started;
	atomic_bool in_run;	 /* its thread is in KVM_RUN, or about to enter it */
	pid_t tid;		 /* its thread's, once running (atomic) */
	timer_t throttle_timer;	 /* kicks it while throttled (vm_set_throttle()) */
	bool throttle_timer_set; /* the timer exists */
	int64_t throttle_mark_ns; /* its thread's: when it last went back to the guest */
};

/*
 * A running VM. Created in one go by vm_create(); vm_run() starts the vCPU
 * threads and returns when the VM has stopped, with the exit status.
 */
struct vm {
	struct vm_config cfg;
	struct kvm_sys sys;
	int fd;
	struct guest_mem mem;
	struct bus pio;
	struct bus mmio;
	struct kvm_cpuid2 *cpuid;
	int nested_state_size;		 /* KVM_CAP_NESTED_STATE, 0 if none */
	struct vcpu_state_caps state_caps; /* what KVM can save and restore */
	struct nested_vmx_msrs vmx_msrs; /* --nested on, Intel: VMX capability MSRs */
	struct boot_info boot;
	struct vcpu *vcpus;
	unsigned int nr_vcpus;

	/*
	 * Every device, KVM state included, in creation order (core/device.h):
	 * they are saved, restored, quiesced and destroyed through this list.
	 * The typed pointers below are for the machine's own wiring only.
	 */
	struct device_list devices;
	struct uart_16550 *uart;
	struct i8042 *i8042;
	struct rtc *rtc;
	struct acpi_pm *pm;
	struct pci_host *pci;
	struct machine_virtio *virtio; /* core/machine_virtio.c */
	int console_fd;	     /* --console file:PATH */
	int console_wake_fd; /* eventfd of the console-in device: UART room, park or stop */

	pthread_t main_thread;
	atomic_bool stopping;

	/* Pause handshake: vm_pause() waits until every vCPU thread is parked. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool pause_requested; /* under lock */
	bool quiesced;	      /* vm_quiesce() done, devices included; under quiesce_lock */
	pthread_mutex_t quiesce_lock; /* serializes vm_quiesce() and vm_unquiesce() */
	unsigned int nr_parked; /* under lock */
	bool running;		/* vCPU threads exist; under lock */
	struct vm_guest_hv guest_hv;	/* last vm_guest_hypervisor() sample; under lock */
	struct timespec guest_hv_time; /* when it was taken (CLOCK_MONOTONIC) */
	bool guest_hv_valid;
	atomic_int exit_status; /* -1 until the first stop request */

	/* Live migration (core/vm_dirty.c): dirty logging on, vCPU throttle in percent. */
	bool dirty_logging;
	atomic_uint throttle_pct;
};

/* vm_create - build the VM described by @cfg. Errors are logged; returns 0 or -errno. */
int vm_create(const struct vm_config *cfg, struct vm **out) __attribute__((warn_unused_result));

/* A saved state to build a VM from, instead of booting a kernel (snapshot/vm_snapshot.h). */
struct vm_restore {
	int memory_fd;		  /* RAM, mapped private (guest_mem_map_file()), or -1: */
	struct guest_mem *ram;	  /* RAM already filled (a live migration's); taken, even on failure */
	struct snap_reader *state; /* every device's state, KVM's included */
	char why[320];		  /* why vm_create_restored() failed */
};

/*
 * vm_create_restored - build the VM of @cfg (the configuration it was saved
 * with) in the state @rs holds: no kernel is loaded, no firmware table
 * written; each device is created as for a boot, then restored in list
 * order. Returns 0 or -errno with the reason in rs->why.
 */
int vm_create_restored(const struct vm_config *cfg, struct vm_restore *rs, struct vm **out)
	__attribute__((warn_unused_result));

/*
 * vm_create_incoming, vm_finish_restored - vm_create_restored() in two
 * steps, for a live migration's destination: the first builds what needs
 * no saved state (the KVM VM, rs->ram in its memory slots, the irqchip and
 * PIT) before memory arrives; the second, once the state is there, the
 * devices and vCPUs in the state rs->state holds. The KVM calls of the
 * first wait for SRCU grace periods (milliseconds each, more on a busy
 * host), which the guest would otherwise spend stopped. Each returns 0 or
 * -errno with the reason in rs->why; a failed vm_finish_restored() has
 * destroyed @vm.
 */
int vm_create_incoming(const struct vm_config *cfg, struct vm_restore *rs, struct vm **out)
	__attribute__((warn_unused_result));
int vm_finish_restored(struct vm *vm, struct vm_restore *rs) __attribute__((warn_unused_result));

/*
 * vm_state_register_early, vm_state_register_late - put the KVM state in the
 * device list (core/vm_state.c): the irqchip and PIT before the machine's
 * devices, the vCPUs and the clock after them. 0 or -errno.
 */
int vm_state_register_early(struct vm *vm) __attribute__((warn_unused_result));
int vm_state_register_late(struct vm *vm) __attribute__((warn_unused_result));

/*
 * vm_run - run the VM until the guest powers off or resets, a vCPU fails,
 * or SIGINT/SIGTERM arrives. Returns a nestvm_exit_status. @confined, if
 * not NULL, is called with @arg once every thread of the VM exists and the
 * calling one has confined itself: the moment to say the VM runs.
 */
int vm_run(struct vm *vm, void (*confined)(void *arg), void *arg);

/*
 * vm_request_stop - ask every vCPU to stop; the first request's @status
 * wins. Safe from any thread.
 */
void vm_request_stop(struct vm *vm, int status, const char *why);

/*
 * vm_stop_cause - why a stopping VM stops, for a sentence ("the VM %s"):
 * "powered off", "crashed", ... from the first stop request's status.
 */
const char *vm_stop_cause(struct vm *vm);

/* How long vm_pause() waits for the vCPUs to park before it gives up. */
#define VM_PAUSE_TIMEOUT_MS 2000

/*
 * vm_pause - stop every vCPU outside KVM_RUN and keep it there; returns when
 * all are parked (0), -ESHUTDOWN if the VM is stopping, or -ETIMEDOUT (the
 * VM runs on) if they did not all park within VM_PAUSE_TIMEOUT_MS. Idempotent.
 * vm_resume - let them run again. Both are safe from any thread but a vCPU's.
 */
int vm_pause(struct vm *vm) __attribute__((warn_unused_result));
int vm_resume(struct vm *vm);
bool vm_is_paused(struct vm *vm);

/*
 * vm_quiesce - the VM-wide quiesce: park the vCPUs (vm_pause()), then every
 * device (device_list_quiesce(): device threads parked, disks drained).
 * Nothing changes guest memory or device state until vm_unquiesce(). Both
 * are idempotent; the user's `pause` is a quiesce. Returns 0, or an error of
 * vm_pause() or of a device, with everything running again.
 */
int vm_quiesce(struct vm *vm) __attribute__((warn_unused_result));
void vm_unquiesce(struct vm *vm);
bool vm_is_quiesced(struct vm *vm);

/* A vm_guest_hypervisor() sample younger than this is reused. */
#define VM_GUEST_HV_MAX_AGE_MS 1000

/*
 * vm_guest_hypervisor - sample @out. With nesting off there is nothing to
 * sample and nothing is paused. Otherwise parks the vCPUs for the few
 * microseconds the register reads take (unless already paused), at most once
 * per VM_GUEST_HV_MAX_AGE_MS; callers in between get the last sample.
 */
int vm_guest_hypervisor(struct vm *vm, struct vm_guest_hv *out)
	__attribute__((warn_unused_result));

/*
 * vm_power_button - press the ACPI power button. Returns true if the guest
 * listens for it (an OSPM enabled the event), false otherwise.
 */
bool vm_power_button(struct vm *vm);

/* vcpu_park_if_requested - a vCPU thread's side of the pause handshake. */
void vcpu_park_if_requested(struct vcpu *vcpu);

/* vm_destroy - free everything; NULL is a no-op. */
void vm_destroy(struct vm *vm);

/*
 * vm_destroy_at_exit - like vm_destroy(), for a process about to exit: frees
 * the monitor's own state now, but leaves the kernel's teardown of the KVM VM
 * (tens of ms of SRCU grace periods for the in-kernel irqchip and PIT on some
 * hosts) and the unmapping of guest RAM to a short-lived child that shares
 * this process's memory and outlives it by that long. The caller must exit
 * soon after; its exit status is not delayed.
 */
void vm_destroy_at_exit(struct vm *vm);

/*
 * Dirty page tracking for live migration (core/vm_dirty.c). Guest RAM is
 * tracked in pages of GUEST_MEM_PAGE_SIZE, numbered by their offset in
 * vm->mem.ram (RAM in gpa order across the PCI hole).
 *
 * vm_dirty_log_start - turn on KVM's dirty log on every memory slot
 * (KVM_MEM_LOG_DIRTY_PAGES) and the device-dirty bitmap
 * (guest_mem_dirty_start()). 0 or -errno, with both off again on failure.
 * vm_dirty_log_stop - turn both off; safe when off.
 * vm_dirty_log_collect - the pages written since the last collect (or the
 * start), the guest's (KVM_GET_DIRTY_LOG, which also write-protects them
 * again) merged with the devices', ORed into @bitmap (guest_mem_dirty_words()
 * words): pages collected before and not sent yet stay in it. 0 or -errno.
 */
int vm_dirty_log_start(struct vm *vm) __attribute__((warn_unused_result));
void vm_dirty_log_stop(struct vm *vm);
int vm_dirty_log_collect(struct vm *vm, unsigned long *bitmap) __attribute__((warn_unused_result));

/*
 * vm_set_throttle - let each vCPU run only (100 - @pct)% of the time: a
 * timer per vCPU thread kicks it out of KVM_RUN every VM_THROTTLE_PERIOD_US,
 * and the thread then sleeps in proportion to how long it ran since it last
 * slept (vcpu_throttle()). 0 stops and deletes the timers. Returns 0 or
 * -errno (nothing changed). Not thread-safe against itself: one migration
 * at a time calls it.
 */
#define VM_THROTTLE_PERIOD_US 1000
#define VM_THROTTLE_MAX 99
int vm_set_throttle(struct vm *vm, unsigned int pct) __attribute__((warn_unused_result));

/* vcpu_throttle - a vCPU thread back from KVM_RUN with EINTR: sleep its share if throttled. */
void vcpu_throttle(struct vcpu *vcpu);

/* vcpu_thread - a vCPU's run loop (core/vcpu.c). */
void *vcpu_thread(void *arg);

#endif
