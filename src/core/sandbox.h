/* SPDX-License-Identifier: MIT */
#ifndef NESTVM_CORE_SANDBOX_H
#define NESTVM_CORE_SANDBOX_H

/*
 * The monitor's sandbox: a seccomp filter per thread kind (core/sandbox.c).
 *
 * sandbox_init() runs in the main thread before any thread of the VM exists:
 * it compiles one BPF program per kind with libseccomp and installs the
 * SIGSYS handler. Each thread then confines itself with sandbox_enter() as it
 * starts, before it touches anything the guest controls: vCPU threads before
 * their first KVM_RUN, device threads before their event loop, the monitor's
 * control thread at its start, and the main thread last, once it has created
 * the vCPU threads (a thread inherits its creator's filters and a new filter
 * only narrows them, so the main thread's broader filter goes on after it has
 * created every other thread).
 *
 * A forbidden system call traps: the handler writes one line naming the
 * thread and the call to stderr ("nestvm: seccomp: thread virtio-rng (device,
 * tid 1234) made forbidden syscall 135 (personality)") and ends the process
 * with SANDBOX_EXIT_STATUS, as SCMP_ACT_KILL_PROCESS would, but with a reason.
 *
 * Where the kernel has Landlock, vCPU and device threads are also denied
 * every file-system access (open, create, remove, execute); the descriptors
 * opened during setup keep working. A managed monitor's main thread, before
 * it creates any other, limits itself and so every later thread to the VM's
 * own directory (sandbox_restrict_files()).
 *
 * `nestvm run --sandbox off` or NESTVM_SANDBOX=off in the environment turn it
 * off, for debugging. Without libseccomp at build time, or without seccomp
 * filters in the kernel, the monitor runs unconfined and says so.
 */

#include <pthread.h>
#include <stdbool.h>

enum sandbox_kind {
	SANDBOX_MAIN,    /* the main thread, after it has created the vCPU threads */
	SANDBOX_CONTROL, /* the managed monitor's control thread (same filter as main) */
	SANDBOX_VCPU,    /* KVM_RUN and what the exit handlers (device emulation) need */
	SANDBOX_DEVICE,  /* device I/O threads, disk workers, console input */
	SANDBOX_VSOCK,   /* virtio-vsock's I/O thread: a device that also connects to
	                    the host's UNIX sockets (socket(AF_UNIX), connect) */
	SANDBOX_MIGRATE, /* the managed monitor's live migration thread: the main set, plus
	                    TCP and UNIX sockets it connects, KVM's dirty log, the throttle's
	                    timers and a memfd for the state */
	SANDBOX_SWITCH,  /* a switch's process (`nestvm switch serve`, src/switch/): its one
	                    thread forwards frames, answers DHCP and runs libslirp's NAT
	                    (AF_INET/AF_INET6 sockets), writes its leases; no KVM */
	SANDBOX_NR_KINDS,
};

/* The exit status of a process (monitor or switch) ended by a forbidden system call: 128 + SIGSYS.
 */
#define SANDBOX_EXIT_STATUS 159

/* Which protections are in force (for `nestvm show` and the debug log). */
struct sandbox_state {
	bool seccomp; /* every thread of the VM runs under its kind's filter */
	bool
	    landlock; /* vCPU and device threads open no file (Landlock, where the kernel has it) */
	bool landlock_files; /* every thread limited to sandbox_restrict_files()'s directories */
};

/*
 * sandbox_init - prepare the filters (main thread, before any VM thread
 * exists). @enabled false (or NESTVM_SANDBOX=off) leaves every thread
 * unconfined. Where seccomp is unavailable, logs a warning and returns 0
 * with the sandbox off. Returns 0, or -errno if the filters cannot be built.
 */
int sandbox_init(bool enabled) __attribute__((warn_unused_result));

/*
 * sandbox_enter - confine the calling thread with the filter of @kind; @name
 * names the thread in the forbidden-call line (and its comm, except for the
 * main and control threads). A no-op while the sandbox is off. A thread that
 * cannot be confined ends the process (exit status 1) with a log line: the
 * monitor never runs a guest half-sandboxed.
 */
void sandbox_enter(enum sandbox_kind kind, const char *name);

/*
 * sandbox_thread_create - pthread_create() of a thread that confines itself
 * (sandbox_enter() before anything else), returning only once it has: no
 * thread of a monitor is seen unconfined once its creator goes on, so a
 * 'start' that says the VM runs means every thread of it is confined (a
 * busy host once left 4 new disk workers unfiltered for that moment).
 * Returns 0 or an errno value, as pthread_create().
 */
int sandbox_thread_create(pthread_t *thread, void *(*fn)(void *), void *arg)
    __attribute__((warn_unused_result));

/*
 * sandbox_restrict_files - Landlock for the calling thread and every thread
 * it creates afterwards: files may be opened, created, renamed and removed
 * only beneath @dirs (NULL-terminated, absolute), the existing files
 * @read_files (NULL-terminated, or NULL; one missing is skipped) only read,
 * and nothing executed
 * (sanitizer builds may still read and execute anything: a report's
 * symbolizer). Descriptors opened before (core/fsutil.h's fs_preopen())
 * keep working. Call it in the main thread before it creates any other:
 * vCPU and device threads then stack their own, narrower ruleset on it.
 * A no-op returning 0 while the sandbox is off or without Landlock.
 * Returns 0 or -errno.
 */
int sandbox_restrict_files(const char *const *dirs, const char *const *read_files)
    __attribute__((warn_unused_result));

/* sandbox_get_state - what sandbox_init() turned on. */
void sandbox_get_state(struct sandbox_state *out);

/* sandbox_describe - one line for logs: "seccomp on, landlock off". */
const char *sandbox_describe(void);

#endif
