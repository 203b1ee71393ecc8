/* SPDX-License-Identifier: MIT */
/*
 * Per-thread seccomp filters for the monitor (sandbox.h).
 *
 * Each kind's filter is an allowlist: every call not listed traps (SIGSYS),
 * and the handler names the thread and the call on stderr before it ends the
 * process. ioctl() is allowed by request number, mmap()/mprotect() never with
 * PROT_EXEC, tgkill() only at this process with the signals nestvm sends,
 * socket() and connect() only in vsock's thread and only for AF_UNIX (the
 * guest's connections to the host side), clone() only for a child process
 * (the main thread's teardown child), never a thread or a namespace.
 *
 * The programs are compiled once, in sandbox_init(), and installed with the
 * seccomp() system call by each thread itself: nothing is allocated in a
 * thread that confines itself, and libseccomp's state is never shared
 * between threads.
 *
 * Or they were compiled when nestvm was built (SANDBOX_BPF_PREBUILT, the
 * Makefile's default with libseccomp): this file built with SANDBOX_GEN is a
 * program that compiles every kind's filter with libseccomp and prints them,
 * with the system call names for the SIGSYS line, as sandbox_bpf.h. The
 * monitor then neither loads nor calls libseccomp: compiling six filters
 * was about 2 ms of a 5.7 ms start-up (bench/boot.sh, test=exit). At start
 * a prebuilt program is only adapted to the environment: NESTVM_SANDBOX=log
 * turns its trap into a log, a kernel before 4.14 kills the thread where
 * it cannot kill the process (a foreign ABI).
 *
 * Sanitizer builds add what the ASan/LSan runtimes do at exit or in a report
 * (LeakSanitizer stops the world with clone() and ptrace(), the symbolizer is
 * a child process): the production filters do not have these.
 */
#include "core/sandbox.h"

#include "core/log.h"

#include <errno.h>
#include <linux/fs.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifdef HAVE_LIBSECCOMP
#include <linux/filter.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/kvm.h>
#include <malloc.h>
#include <linux/landlock.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#endif

/* Compiling the filters with libseccomp: at start-up, or in the generator. */
#if defined(HAVE_LIBSECCOMP) && (!defined(SANDBOX_BPF_PREBUILT) || defined(SANDBOX_GEN))
#define SANDBOX_COMPILE 1
#include <seccomp.h>
#endif

#if defined(__SANITIZE_ADDRESS__)
#define SANDBOX_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANDBOX_SANITIZER 1
#endif
#endif

/* The self-test trigger exists only in sanitizer and debug builds. */
#if defined(SANDBOX_SANITIZER) || defined(NESTVM_DEBUG)
#define SANDBOX_SELFTEST 1
#endif

#ifndef SYS_SECCOMP
#define SYS_SECCOMP 1 /* siginfo si_code of a seccomp SIGSYS (asm-generic/siginfo.h) */
#endif

#define SANDBOX_MAX_NR 512 /* syscall numbers named in the forbidden-call line */

/*
 * tgkill() is allowed only at this process: the generator compiles the rule
 * with this stand-in for the pid (above any pid_max, and no ioctl number
 * nestvm allows), and sandbox_load_prebuilt() puts getpid() in its place.
 */
#define SANDBOX_PID_MARK 0x7e5a1d00U

#if defined(SANDBOX_BPF_PREBUILT) && !defined(SANDBOX_GEN)
#include "sandbox_bpf.h" /* generated: sandbox_bpf_prog, _len, _names */
#endif

/* Landlock access rights by ABI version (Debian 12's headers stop at REFER). */
#define SANDBOX_LL_V1 ((1ULL << 13) - 1)  /* EXECUTE .. MAKE_SYM */
#define SANDBOX_LL_REFER (1ULL << 13)     /* ABI 2 */
#define SANDBOX_LL_TRUNCATE (1ULL << 14)  /* ABI 3 */
#define SANDBOX_LL_IOCTL_DEV (1ULL << 15) /* ABI 5 */

static struct {
	bool seccomp;    /* filters built; threads confine themselves */
	bool log_only;   /* NESTVM_SANDBOX=log: forbidden calls go on, logged by the kernel */
	int landlock_fd; /* ruleset for vCPU and device threads; -1: no Landlock */
	int landlock_abi;
	bool landlock_files; /* sandbox_restrict_files() done */
#ifdef HAVE_LIBSECCOMP
	struct sock_fprog prog[SANDBOX_NR_KINDS];
#endif
	const char *names[SANDBOX_MAX_NR];
	int selftest; /* a kind, or -1 */
	atomic_bool selftest_done;
} sandbox = {.selftest = -1, .landlock_fd = -1};

void sandbox_get_state(struct sandbox_state *out)
{
	out->seccomp = sandbox.seccomp;
	out->landlock = sandbox.seccomp && sandbox.landlock_fd >= 0;
	out->landlock_files = sandbox.landlock_files;
}

#define SANDBOX_SECCOMP_ON                                                                         \
	"seccomp on (per-thread filters: main, control, vcpu, device, vsock, migrate)"

const char *sandbox_describe(void)
{
	if (!sandbox.seccomp)
		return "seccomp off, landlock off";
	if (sandbox.landlock_fd < 0)
		return SANDBOX_SECCOMP_ON ", landlock off (not in this kernel)";
	if (sandbox.landlock_files)
		return SANDBOX_SECCOMP_ON ", landlock on (vcpu and device threads open no file, "
		                          "main and control threads only the VM's directory)";
	return SANDBOX_SECCOMP_ON ", landlock on (vcpu and device threads open no file)";
}

/* sandbox_thread_create(): what the new thread runs, and its creator's wait. */
struct sandbox_start {
	void *(*fn)(void *);
	void *arg;
	sem_t confined;
};
static __thread struct sandbox_start *sandbox_starting;

/* The creator may go on: this thread is confined (or never will be, or the sandbox is off). */
static void sandbox_started(void)
{
	struct sandbox_start *s = sandbox_starting;

	if (s) {
		sandbox_starting = NULL;
		sem_post(&s->confined); /* s is the creator's: gone once it wakes */
	}
}

static void *sandbox_thread_main(void *p)
{
	struct sandbox_start *s = p;
	void *(*fn)(void *) = s->fn;
	void *arg = s->arg, *ret;

	sandbox_starting = s;
	ret = fn(arg);
	sandbox_started(); /* one that ended without confining itself */
	return ret;
}

int sandbox_thread_create(pthread_t *thread, void *(*fn)(void *), void *arg)
{
	struct sandbox_start s = {.fn = fn, .arg = arg};
	int r;

	if (sem_init(&s.confined, 0, 0) < 0)
		return errno;
	r = pthread_create(thread, NULL, sandbox_thread_main, &s);
	if (r == 0)
		while (sem_wait(&s.confined) < 0 && errno == EINTR)
			;
	sem_destroy(&s.confined);
	return r;
}

#ifdef HAVE_LIBSECCOMP

static const char *const sandbox_kind_names[SANDBOX_NR_KINDS] = {
    [SANDBOX_MAIN] = "main",     [SANDBOX_CONTROL] = "control", [SANDBOX_VCPU] = "vcpu",
    [SANDBOX_DEVICE] = "device", [SANDBOX_VSOCK] = "vsock",     [SANDBOX_MIGRATE] = "migrate",
    [SANDBOX_SWITCH] = "switch",
};

/* The calling thread's name and kind, for the SIGSYS handler. */
static __thread char sandbox_thread_name[24] = "?";
static __thread int sandbox_thread_kind = -1;
static __thread pid_t sandbox_thread_tid;

/* ---- the SIGSYS handler: async-signal-safe, write() and _exit() only ---- */

static size_t sandbox_put(char *buf, size_t len, size_t at, const char *s)
{
	while (*s && at + 1 < len)
		buf[at++] = *s++;
	return at;
}

static size_t sandbox_put_int(char *buf, size_t len, size_t at, long v)
{
	char digits[24];
	int n = 0;
	unsigned long u = v < 0 ? -(unsigned long)v : (unsigned long)v;

	do {
		digits[n++] = (char)('0' + u % 10);
		u /= 10;
	} while (u && n < (int)sizeof(digits));
	if (v < 0 && at + 1 < len)
		buf[at++] = '-';
	while (n > 0 && at + 1 < len)
		buf[at++] = digits[--n];
	return at;
}

static void sandbox_sigsys(int sig, siginfo_t *si, void *uctx)
{
	char line[256];
	size_t n = 0;
	int nr = si->si_syscall;
	const char *name =
	    nr >= 0 && nr < SANDBOX_MAX_NR && sandbox.names[nr] ? sandbox.names[nr] : "unknown";

	(void)sig;
	(void)uctx;
	n = sandbox_put(line, sizeof(line), n, "nestvm: seccomp: thread ");
	n = sandbox_put(line, sizeof(line), n, sandbox_thread_name);
	n = sandbox_put(line, sizeof(line), n, " (");
	n = sandbox_put(line, sizeof(line), n,
	                sandbox_thread_kind >= 0 ? sandbox_kind_names[sandbox_thread_kind] : "?");
	n = sandbox_put(line, sizeof(line), n, ", tid ");
	n = sandbox_put_int(line, sizeof(line), n, sandbox_thread_tid);
	if (si->si_code == SYS_SECCOMP) {
		n = sandbox_put(line, sizeof(line), n, ") made forbidden syscall ");
		n = sandbox_put_int(line, sizeof(line), n, nr);
		n = sandbox_put(line, sizeof(line), n, " (");
		n = sandbox_put(line, sizeof(line), n, name);
		n = sandbox_put(line, sizeof(line), n, ")");
	} else {
		n = sandbox_put(line, sizeof(line), n, ") received SIGSYS from outside");
	}
	n = sandbox_put(line, sizeof(line), n,
	                sandbox_thread_kind == SANDBOX_SWITCH
	                    ? "; the switch ends (exit status 159)\n"
	                    : "; the monitor ends (exit status 159)\n");
	if (write(STDERR_FILENO, line, n) < 0)
		n = 0;
	_exit(SANDBOX_EXIT_STATUS);
}

/* ---- building the filters ---- */

#ifdef SANDBOX_COMPILE

/* Every thread: memory, locks, signals between nestvm's own threads, time, exit. */
/* clang-format off */
static const char *const sandbox_base[] = {
    "read", "write", "readv", "writev", "close", "futex", "exit", "exit_group", "rt_sigreturn",
    "rt_sigprocmask", "restart_syscall", "madvise", "munmap", "mremap", "brk", "clock_gettime",
    "clock_nanosleep", "nanosleep", "gettimeofday", "time", "getpid", "gettid", "sched_yield",
    "poll", "ppoll",
    /* malloc() asks for the CPU count when a thread needs a 9th arena (many vCPUs). */
    "sched_getaffinity", NULL,
};
/* clang-format on */

/* vCPU threads: the exit handlers emulate devices (UART output, virtio registers). */
static const char *const sandbox_vcpu[] = {"epoll_ctl", NULL};

/* Device threads: image I/O, eventfds, epoll, accepted UNIX sockets, entropy. */
/* clang-format off */
static const char *const sandbox_device[] = {
    "pread64", "pwrite64", "preadv", "pwritev", "preadv2", "pwritev2", "fdatasync", "fsync",
    "fallocate", "io_uring_enter", "epoll_wait", "epoll_pwait", "epoll_pwait2", "epoll_ctl",
    "accept4", "accept", "recvfrom", "sendto", "recvmsg", "sendmsg", "recvmmsg", "sendmmsg",
    "shutdown", "getsockopt", "fcntl", "getrandom", "lseek", NULL,
};
/* clang-format on */

/*
 * vsock's thread, on top of the device set: before it connects to the
 * host's PATH_PORT it checks the socket's owner (unix_connect_owned():
 * lstat() is newfstatat here, then geteuid()). Landlock does not cover
 * stat() or connect(); the owner check is what keeps other users out.
 */
static const char *const sandbox_vsock[] = {"newfstatat", "lstat", "geteuid", NULL};

/* The main and control threads: teardown, the store's files, the control socket. */
/* clang-format off */
static const char *const sandbox_main[] = {
    "pread64", "pwrite64", "preadv", "pwritev", "fdatasync", "fsync", "epoll_wait",
    "epoll_pwait", "epoll_ctl", "accept4", "accept", "recvfrom", "sendto", "recvmsg",
    "sendmsg", "shutdown", "getsockopt", "fcntl", "getrandom", "lseek", "openat", "open",
    "fstat", "newfstatat", "statx", "stat", "lstat", "access", "faccessat", "faccessat2",
    "ftruncate", "rename", "renameat", "renameat2", "unlink", "unlinkat", "mkdir", "mkdirat",
    "chmod", "fchmod", "fchmodat", "flock", "dup", "dup2", "dup3", "pipe2", "getdents64",
    "timerfd_settime", "timerfd_gettime", "eventfd2", "rt_sigtimedwait", "rt_sigpending",
    "wait4", "waitid", "umask", "getuid", "geteuid", "getgid", "getegid", "getcwd", "uname",
    "sysinfo", "prlimit64", "set_robust_list", "sched_getaffinity",
    /* save and checkpoint: hard links, sparse copies */
    "linkat", "copy_file_range",
    /* vm_destroy(): a throttle timer a migration left (it should not) */
    "timer_delete",
    /* vm_destroy_at_exit()'s child: every descriptor but the VM's */
    "close_range", NULL,
};
/* clang-format on */

/*
 * The migration thread, on top of the main set: it connects the stream
 * (TCP or UNIX; unix_connect_owned() checks the socket's owner), arms the
 * throttle's per-vCPU timers, and writes the state file into a memfd.
 */
/* clang-format off */
static const char *const sandbox_migrate[] = {
    "connect", "setsockopt", "getsockname", "getpeername", "timer_create", "timer_settime",
    "timer_delete", "memfd_create", NULL,
};
/* clang-format on */

/*
 * A switch's process (src/switch/server.c), one thread: its ports' and
 * control clients' UNIX sockets, the tap's reads and writes, the leases
 * and runtime.json written atomically in its directory (Landlock keeps
 * every open there), and libslirp's NAT: a socket per guest connection
 * (AF_INET/AF_INET6 only, below), connected, its options and addresses
 * read, and /etc/resolv.conf stat()ed and read for DNS forwarding.
 * Measured with strace over tests/integration/switch.sh (what a switch did
 * after its sandbox line: poll, recvmmsg, sendmmsg, accept4, close, write,
 * getsockopt, recvfrom, sendto, getpid, setsockopt, recvmsg, sendmsg,
 * unlinkat, fsync, munmap, read, openat, renameat, getrandom, mmap, fcntl,
 * socket, shutdown, getpeername, newfstatat, ioctl FIONREAD, connect,
 * accept, exit_group) and tests/lab/lab.sh net; the rest are their
 * siblings (stat, rename, ...). No bind() or listen(): port forwards
 * listen from before the filter, libslirp's outgoing sockets bind
 * implicitly.
 */
/* clang-format off */
static const char *const sandbox_switch[] = {
    "recvmmsg", "sendmmsg", "recvfrom", "sendto", "recvmsg", "sendmsg", "accept4", "accept",
    "getsockopt", "setsockopt", "shutdown", "getsockname", "getpeername", "connect", "fcntl", "getrandom", "openat", "open", "fstat", "newfstatat", "statx", "stat", "lstat",
    "fsync", "fdatasync", "rename", "renameat", "renameat2", "unlink", "unlinkat", "fchmod",
    "lseek", "getuid", "geteuid", "getgid", "getegid", NULL,
};
/* clang-format on */

#ifdef SANDBOX_SANITIZER
/* What the ASan/UBSan/LSan runtimes do in a report and at exit (sanitizer builds only). */
/* clang-format off */
static const char *const sandbox_sanitizer[] = {
    "sigaltstack", "rt_sigaction", "prctl", "openat", "open", "readlink", "readlinkat",
    "getdents64", "getdents", "fstat", "newfstatat", "lseek", "clone", "clone3", "ptrace",
    "wait4", "waitid", "kill", "tgkill", "tkill", "sched_getaffinity", "getrlimit",
    "prlimit64", "setrlimit", "pipe", "pipe2", "dup", "dup2", "dup3", "execve", "mincore",
    "uname", "getppid", "getuid", "geteuid", "process_vm_readv", "close_range", "msync",
    "getcwd", "pread64", "set_robust_list", "rseq", "arch_prctl", "sched_getparam",
    "sched_getscheduler", "membarrier", NULL,
};
/* clang-format on */
#endif

/* clang-format off */
static const unsigned long sandbox_vcpu_ioctls[] = {
    KVM_RUN, KVM_GET_REGS, KVM_GET_SREGS, KVM_IRQ_LINE, KVM_IRQ_LINE_STATUS, KVM_SIGNAL_MSI,
    KVM_IOEVENTFD, 0,
};
/* clang-format on */

/* clang-format off */
static const unsigned long sandbox_device_ioctls[] = {
    KVM_SIGNAL_MSI, KVM_IRQ_LINE, KVM_IRQ_LINE_STATUS, 0,
};
/* clang-format on */

/* clang-format off */
static const unsigned long sandbox_migrate_ioctls[] = {
    KVM_GET_DIRTY_LOG, KVM_SET_USER_MEMORY_REGION, 0,
};
/* clang-format on */

/* clang-format off */
static const unsigned long sandbox_main_ioctls[] = {
    KVM_GET_REGS, KVM_GET_SREGS, KVM_GET_NESTED_STATE, KVM_IOEVENTFD, KVM_SIGNAL_MSI,
    KVM_IRQ_LINE, KVM_IRQ_LINE_STATUS, TCGETS, TIOCGWINSZ,
    /* save and checkpoint (snapshot/vm_snapshot.c): read the KVM state, reflink disks */
    KVM_GET_MP_STATE, KVM_GET_SREGS2, KVM_GET_XSAVE, KVM_GET_XSAVE2, KVM_GET_FPU,
    KVM_GET_XCRS, KVM_GET_LAPIC, KVM_GET_VCPU_EVENTS, KVM_GET_DEBUGREGS, KVM_GET_MSRS,
    KVM_GET_CPUID2, KVM_GET_IRQCHIP, KVM_GET_PIT2, KVM_GET_CLOCK, KVM_GET_SUPPORTED_CPUID,
    FICLONE, 0,
};
/* clang-format on */

static int sandbox_allow_names(scmp_filter_ctx ctx, const char *const *names)
{
	for (; *names; names++) {
		int nr = seccomp_syscall_resolve_name(*names);
		int r;

		if (nr == __NR_SCMP_ERROR)
			continue; /* not a system call on this architecture */
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
		if (r < 0 && r != -EEXIST) {
			log_error("seccomp: cannot allow %s: %s", *names, strerror(-r));
			return r;
		}
	}
	return 0;
}

static int sandbox_allow_ioctls(scmp_filter_ctx ctx, const unsigned long *reqs)
{
	for (; *reqs; reqs++) {
		int r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
		                         SCMP_A1(SCMP_CMP_EQ, (scmp_datum_t)*reqs, 0));

		if (r < 0)
			return r;
	}
	return 0;
}

static __attribute__((unused)) pid_t sandbox_pid(void)
{
#ifdef SANDBOX_GEN
	return (pid_t)SANDBOX_PID_MARK;
#else
	return getpid();
#endif
}

/* The rules with argument checks that several kinds share. */
static int sandbox_allow_common(scmp_filter_ctx ctx, enum sandbox_kind kind)
{
	static const int signals[] = {SIGUSR1, SIGUSR2, SIGABRT};
	int r;

	r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1,
	                     SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
	if (r == 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1,
		                     SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
#ifndef SANDBOX_SANITIZER
	/* pthread_kill() between nestvm's threads: vCPU kicks, stop requests, abort(). */
	for (unsigned int i = 0; i < sizeof(signals) / sizeof(signals[0]) && r == 0; i++)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 2,
		                     SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)sandbox_pid(), 0),
		                     SCMP_A2(SCMP_CMP_EQ, (scmp_datum_t)signals[i], 0));
#else
	(void)signals;
#endif
	/* The migration stream: TCP (IPv4 or IPv6) or UNIX, nothing else. */
	for (int i = 0; r == 0 && kind == SANDBOX_MIGRATE && i < 3; i++)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
		                     SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)(i == 0   ? AF_INET
		                                                         : i == 1 ? AF_INET6
		                                                                  : AF_UNIX),
		                             0));
	/* libslirp's sockets: IPv4 and IPv6 (ICMP too: SOCK_DGRAM, IPPROTO_ICMP). */
	for (int i = 0; r == 0 && kind == SANDBOX_SWITCH && i < 2; i++)
		r = seccomp_rule_add(
		    ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
		    SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)(i == 0 ? AF_INET : AF_INET6), 0));
	/* libslirp asks how much a UDP socket holds (FIONREAD) before it reads it. */
	if (r == 0 && kind == SANDBOX_SWITCH)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
		                     SCMP_A1(SCMP_CMP_EQ, (scmp_datum_t)FIONREAD, 0));
	/* Only vsock opens connections: the guest's to PATH_PORT on the host. */
	if (r == 0 && kind == SANDBOX_VSOCK)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(connect), 0);
	if (r == 0 && kind == SANDBOX_VSOCK)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
		                     SCMP_A0(SCMP_CMP_EQ, AF_UNIX, 0));
#ifndef SANDBOX_SANITIZER
	/*
	 * A child process only, sharing this one's memory or not (the teardown
	 * child of vm_destroy_at_exit() does, and inherits this filter): no
	 * threads, no namespaces.
	 */
	for (int i = 0; r == 0 && (kind == SANDBOX_MAIN || kind == SANDBOX_CONTROL) && i < 2; i++)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
		                     SCMP_A0(SCMP_CMP_MASKED_EQ,
		                             CLONE_THREAD | CLONE_VM | CLONE_NEWNS | CLONE_NEWUSER |
		                                 CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC |
		                                 CLONE_NEWUTS | CLONE_NEWCGROUP,
		                             i == 0 ? 0 : CLONE_VM));
#endif
	return r;
}

/* Compile @kind's filter into sandbox.prog[kind]. */
static int sandbox_build(enum sandbox_kind kind)
{
	scmp_filter_ctx ctx = seccomp_init(sandbox.log_only ? SCMP_ACT_LOG : SCMP_ACT_TRAP);
	struct sock_filter *insns = NULL;
	struct stat st;
	int fd = -1, r;

	if (!ctx)
		return -ENOMEM;
	/* Each thread sets no_new_privs itself; a foreign ABI ends the process. */
	r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
	/* KILL_PROCESS needs Linux 4.14; before it, the calling thread dies. */
	if (r == 0 && seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS) < 0)
		r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL);
	if (r == 0)
		r = sandbox_allow_names(ctx, sandbox_base);
	if (r == 0)
		r = sandbox_allow_common(ctx, kind);
	if (r == 0) {
		switch (kind) {
		case SANDBOX_MAIN:
		case SANDBOX_CONTROL:
		case SANDBOX_MIGRATE:
			r = sandbox_allow_names(ctx, sandbox_main);
			if (r == 0)
				r = sandbox_allow_ioctls(ctx, sandbox_main_ioctls);
			if (r == 0 && kind == SANDBOX_MIGRATE)
				r = sandbox_allow_names(ctx, sandbox_migrate);
			if (r == 0 && kind == SANDBOX_MIGRATE)
				r = sandbox_allow_ioctls(ctx, sandbox_migrate_ioctls);
			break;
		case SANDBOX_SWITCH:
			r = sandbox_allow_names(ctx, sandbox_switch);
			break;
		case SANDBOX_VCPU:
			r = sandbox_allow_names(ctx, sandbox_vcpu);
			if (r == 0)
				r = sandbox_allow_ioctls(ctx, sandbox_vcpu_ioctls);
			break;
		case SANDBOX_DEVICE:
		case SANDBOX_VSOCK:
		case SANDBOX_NR_KINDS:
			r = sandbox_allow_names(ctx, sandbox_device);
			if (r == 0 && kind == SANDBOX_VSOCK)
				r = sandbox_allow_names(ctx, sandbox_vsock);
			if (r == 0)
				r = sandbox_allow_ioctls(ctx, sandbox_device_ioctls);
			break;
		}
	}
#ifdef SANDBOX_SANITIZER
	if (r == 0)
		r = sandbox_allow_names(ctx, sandbox_sanitizer);
#endif
	/* libseccomp 2.5 exports to a descriptor only: a memfd, read back. */
	if (r == 0) {
		fd = memfd_create("nestvm-seccomp", MFD_CLOEXEC);
		r = fd < 0 ? -errno : seccomp_export_bpf(ctx, fd);
	}
	if (r == 0 && fstat(fd, &st) < 0)
		r = -errno;
	if (r == 0 && (st.st_size <= 0 || st.st_size % sizeof(*insns) ||
	               st.st_size / sizeof(*insns) > BPF_MAXINSNS))
		r = -E2BIG;
	if (r == 0 && !(insns = malloc((size_t)st.st_size)))
		r = -ENOMEM;
	if (r == 0 && pread(fd, insns, (size_t)st.st_size, 0) != st.st_size)
		r = -EIO;
	if (r == 0) {
		sandbox.prog[kind].filter = insns;
		sandbox.prog[kind].len = (unsigned short)(st.st_size / sizeof(*insns));
		insns = NULL;
	}
	free(insns);
	if (fd >= 0)
		close(fd);
	seccomp_release(ctx);
	if (r < 0)
		log_error("seccomp: cannot build the %s threads' filter: %s",
		          sandbox_kind_names[kind], strerror(-r));
	return r;
}

#endif /* SANDBOX_COMPILE */

#ifdef SANDBOX_BPF_PREBUILT
/*
 * Kind @kind's prebuilt program, as sandbox_build() would have made it here:
 * this process's pid in the tgkill() rule, the default action LOG instead
 * of TRAP with NESTVM_SANDBOX=log, and a foreign ABI killing the thread
 * where the kernel cannot kill the process.
 */
static int sandbox_load_prebuilt(enum sandbox_kind kind)
{
	unsigned short len = sandbox_bpf_len[kind];
	bool kill_process = syscall(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0,
	                            &(uint32_t){SECCOMP_RET_KILL_PROCESS}) == 0;
	struct sock_filter *insns = malloc(len * sizeof(*insns));

	if (!insns)
		return -ENOMEM;
	memcpy(insns, sandbox_bpf_prog[kind], len * sizeof(*insns));
	for (unsigned short i = 0; i < len; i++) {
		struct sock_filter *f = &insns[i];

		if (f->code == (BPF_JMP | BPF_JEQ | BPF_K) && f->k == SANDBOX_PID_MARK)
			f->k = (uint32_t)getpid();
		if (f->code != (BPF_RET | BPF_K))
			continue;
		if (sandbox.log_only && f->k == SECCOMP_RET_TRAP)
			f->k = SECCOMP_RET_LOG;
		if (!kill_process && f->k == SECCOMP_RET_KILL_PROCESS)
			f->k = SECCOMP_RET_KILL_THREAD;
	}
	sandbox.prog[kind] = (struct sock_fprog){len, insns};
	return 0;
}
#endif

/* Is seccomp filtering there at all? PR_GET_SECCOMP fails without CONFIG_SECCOMP. */
static bool sandbox_kernel_has_seccomp(void)
{
	return prctl(PR_GET_SECCOMP, 0, 0, 0, 0) >= 0 &&
	       (syscall(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &(uint32_t){SECCOMP_RET_TRAP}) ==
	            0 ||
	        errno != EINVAL);
}

/* The rights the kernel's Landlock ABI @abi knows. */
static uint64_t sandbox_landlock_rights(int abi)
{
	uint64_t rights = SANDBOX_LL_V1;

	if (abi >= 2)
		rights |= SANDBOX_LL_REFER;
	if (abi >= 3)
		rights |= SANDBOX_LL_TRUNCATE;
	if (abi >= 5)
		rights |= SANDBOX_LL_IOCTL_DEV;
	return rights;
}

/*
 * The Landlock ruleset of the threads the guest drives: every file-system
 * right the kernel knows is handled and none granted, so a vCPU or device
 * thread opens, creates, removes or executes nothing (descriptors opened
 * during setup keep working). Sanitizer builds may read and execute (a
 * report reads /proc/self/maps and runs the symbolizer). -ENOTSUP without
 * Landlock.
 */
static int sandbox_landlock_build(void)
{
	struct landlock_ruleset_attr attr = {0};
	int abi =
	    (int)syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
	int fd;

	if (abi < 1)
		return -ENOTSUP;
	attr.handled_access_fs = sandbox_landlock_rights(abi);
	fd = (int)syscall(SYS_landlock_create_ruleset, &attr, sizeof(attr), 0);
	if (fd < 0)
		return -errno;
#ifdef SANDBOX_SANITIZER
	{
		struct landlock_path_beneath_attr rule = {
		    .allowed_access = LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR |
		                      LANDLOCK_ACCESS_FS_EXECUTE,
		    .parent_fd = open("/", O_PATH | O_CLOEXEC),
		};

		if (rule.parent_fd < 0 ||
		    syscall(SYS_landlock_add_rule, fd, LANDLOCK_RULE_PATH_BENEATH, &rule, 0) < 0) {
			int r = -errno;

			if (rule.parent_fd >= 0)
				close(rule.parent_fd);
			close(fd);
			return r;
		}
		close(rule.parent_fd);
	}
#endif
	sandbox.landlock_abi = abi;
	return fd;
}

static int sandbox_landlock_allow(int ruleset, const char *dir, uint64_t rights)
{
	struct landlock_path_beneath_attr rule = {
	    .allowed_access = rights,
	    .parent_fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC),
	};
	int r = 0;

	if (rule.parent_fd < 0)
		return -errno;
	if (syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &rule, 0) < 0)
		r = -errno;
	close(rule.parent_fd);
	return r;
}

static int sandbox_install(enum sandbox_kind kind)
{
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -errno;
	/* Landlock first: the seccomp filters do not allow landlock_restrict_self(). */
	if (sandbox.landlock_fd >= 0 &&
	    (kind == SANDBOX_VCPU || kind == SANDBOX_DEVICE || kind == SANDBOX_VSOCK) &&
	    syscall(SYS_landlock_restrict_self, sandbox.landlock_fd, 0) < 0)
		return -errno;
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &sandbox.prog[kind]) < 0)
		return -errno;
	return 0;
}

static void sandbox_read_selftest(void)
{
#ifdef SANDBOX_SELFTEST
	const char *want = getenv("NESTVM_SANDBOX_SELFTEST");

	for (int k = 0; want && k < SANDBOX_NR_KINDS; k++) {
		if (!strcmp(want, sandbox_kind_names[k])) {
			sandbox.selftest = k;
			log_warn("sandbox self-test: the first %s thread will make a forbidden "
			         "system call",
			         want);
		}
	}
#endif
}

#endif /* HAVE_LIBSECCOMP */

int sandbox_init(bool enabled)
{
	const char *env = getenv("NESTVM_SANDBOX");

	sandbox.seccomp = false;
	if (env && !strcmp(env, "off"))
		enabled = false;
	sandbox.log_only = env && !strcmp(env, "log");
	if (!enabled) {
		log_debug("sandbox: %s (turned off)", sandbox_describe());
		return 0;
	}
#ifndef HAVE_LIBSECCOMP
	log_warn("sandbox: this nestvm was built without libseccomp; the monitor runs "
	         "unconfined");
	return 0;
#else
	struct sigaction sa = {.sa_sigaction = sandbox_sigsys, .sa_flags = SA_SIGINFO};

	if (!sandbox_kernel_has_seccomp()) {
		log_warn(
		    "sandbox: this kernel has no seccomp filters; the monitor runs unconfined");
		return 0;
	}
	for (int k = 0; k < SANDBOX_NR_KINDS; k++) {
		int r;

		if (sandbox.prog[k].filter)
			continue; /* built by an earlier call */
#ifdef SANDBOX_BPF_PREBUILT
		r = sandbox_load_prebuilt(k);
#else
		r = sandbox_build(k);
#endif
		if (r < 0)
			return r;
	}
	for (int nr = 0; nr < SANDBOX_MAX_NR; nr++) {
#ifdef SANDBOX_BPF_PREBUILT
		sandbox.names[nr] = sandbox_bpf_names[nr];
#else
		if (!sandbox.names[nr])
			sandbox.names[nr] = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
#endif
	}
	if (sandbox.landlock_fd < 0) {
		int fd = sandbox_landlock_build();

		if (fd >= 0)
			sandbox.landlock_fd = fd;
		else
			log_debug("sandbox: no Landlock: %s", strerror(-fd));
	}
	/*
	 * What libc initialises lazily, from files, happens now: the first
	 * gmtime_r() (the RTC, monitor.log's timestamps) reads /etc/localtime.
	 */
	tzset();
	/*
	 * glibc shrinks a thread's malloc heap after large frees, and the first
	 * time reads /proc/sys/vm/overcommit_memory to decide how: an openat()
	 * that a device thread's filter forbids (vsock's, with many host
	 * connections coming and going). A trim threshold no heap reaches: heaps
	 * are never shrunk, only unmapped whole when empty.
	 */
	mallopt(M_TRIM_THRESHOLD, INT_MAX);
	sigfillset(&sa.sa_mask);
	if (sigaction(SIGSYS, &sa, NULL) < 0)
		return -errno;
	sandbox_read_selftest();
	sandbox.seccomp = true;
	log_debug("sandbox: %s", sandbox_describe());
	log_debug("sandbox: BPF instructions: main %u, control %u, vcpu %u, device %u, vsock %u, "
	          "migrate %u, switch %u",
	          sandbox.prog[SANDBOX_MAIN].len, sandbox.prog[SANDBOX_CONTROL].len,
	          sandbox.prog[SANDBOX_VCPU].len, sandbox.prog[SANDBOX_DEVICE].len,
	          sandbox.prog[SANDBOX_VSOCK].len, sandbox.prog[SANDBOX_MIGRATE].len,
	          sandbox.prog[SANDBOX_SWITCH].len);
	if (sandbox.log_only)
		log_warn("sandbox: NESTVM_SANDBOX=log: forbidden system calls are allowed and "
		         "logged by the kernel (dmesg), not stopped");
	return 0;
#endif
}

int sandbox_restrict_files(const char *const *dirs, const char *const *read_files)
{
#ifdef HAVE_LIBSECCOMP
	struct landlock_ruleset_attr attr = {0};
	uint64_t rights;
	int fd, r = 0;

	if (!sandbox.seccomp || sandbox.landlock_fd < 0 || sandbox.log_only)
		return 0;
	rights = sandbox_landlock_rights(sandbox.landlock_abi);
	attr.handled_access_fs = rights;
	fd = (int)syscall(SYS_landlock_create_ruleset, &attr, sizeof(attr), 0);
	if (fd < 0)
		return -errno;
	/* Everything but running programs, beneath each directory. */
	for (unsigned int i = 0; dirs && dirs[i] && r == 0; i++) {
		r = sandbox_landlock_allow(fd, dirs[i], rights & ~LANDLOCK_ACCESS_FS_EXECUTE);
		if (r < 0)
			log_error("landlock: cannot allow '%s': %s", dirs[i], strerror(-r));
	}
	/* A rule on a file: Landlock allows it only the rights a file has (reading). */
	for (unsigned int i = 0; read_files && read_files[i] && r == 0; i++) {
		struct landlock_path_beneath_attr rule = {
		    .allowed_access = LANDLOCK_ACCESS_FS_READ_FILE,
		    .parent_fd = open(read_files[i], O_PATH | O_CLOEXEC),
		};

		if (rule.parent_fd < 0)
			continue; /* not there: nothing to read */
		if (syscall(SYS_landlock_add_rule, fd, LANDLOCK_RULE_PATH_BENEATH, &rule, 0) < 0) {
			r = -errno;
			log_error("landlock: cannot allow reading '%s': %s", read_files[i],
			          strerror(-r));
		}
		close(rule.parent_fd);
	}
#ifdef SANDBOX_SANITIZER
	if (r == 0)
		r = sandbox_landlock_allow(fd, "/",
		                           LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR |
		                               LANDLOCK_ACCESS_FS_EXECUTE);
#endif
	if (r == 0 && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		r = -errno;
	if (r == 0 && syscall(SYS_landlock_restrict_self, fd, 0) < 0)
		r = -errno;
	close(fd);
	if (r == 0)
		sandbox.landlock_files = true;
	return r;
#else
	(void)dirs;
	(void)read_files;
	return 0;
#endif
}

void sandbox_enter(enum sandbox_kind kind, const char *name)
{
#ifdef HAVE_LIBSECCOMP
	sigset_t sys;
	int r;

	if (!sandbox.seccomp || kind < 0 || kind >= SANDBOX_NR_KINDS) {
		sandbox_started();
		return;
	}
	snprintf(sandbox_thread_name, sizeof(sandbox_thread_name), "%s", name);
	sandbox_thread_kind = kind;
	sandbox_thread_tid = (pid_t)syscall(SYS_gettid);
	/* /proc/PID/task/TID/comm says which thread is which (the process keeps its name). */
	if (kind != SANDBOX_MAIN && kind != SANDBOX_CONTROL && kind != SANDBOX_SWITCH)
		prctl(PR_SET_NAME, sandbox_thread_name, 0, 0, 0);
	/* A blocked SIGSYS would kill the process without the handler's line. */
	sigemptyset(&sys);
	sigaddset(&sys, SIGSYS);
	pthread_sigmask(SIG_UNBLOCK, &sys, NULL);
	r = sandbox_install(kind);
	if (r < 0) {
		log_error("seccomp: cannot confine thread %s (%s): %s; the %s ends", name,
		          sandbox_kind_names[kind], strerror(-r),
		          kind == SANDBOX_SWITCH ? "switch" : "monitor");
		_exit(1);
	}
	if (sandbox.selftest == (int)kind && !atomic_exchange(&sandbox.selftest_done, true)) {
		log_warn("sandbox self-test: thread %s calls personality(), which no filter "
		         "allows",
		         name);
		syscall(SYS_personality, 0xffffffffUL);
		log_error("sandbox self-test: the forbidden call was not trapped");
	}
	sandbox_started();
#else
	(void)kind;
	(void)name;
	sandbox_started();
#endif
}

#if defined(SANDBOX_GEN) && defined(HAVE_LIBSECCOMP)
/*
 * The generator (see the top of this file): prints sandbox_bpf.h, every
 * kind's program as sandbox_build() compiles it with the default action
 * TRAP, and the name of every system call number below SANDBOX_MAX_NR.
 */
int main(void)
{
	unsigned int marks;

	printf("/* Generated by src/core/sandbox.c built with SANDBOX_GEN (libseccomp %u.%u.%u): "
	       "do not edit. */\n",
	       seccomp_version()->major, seccomp_version()->minor, seccomp_version()->micro);
	for (int k = 0; k < SANDBOX_NR_KINDS; k++) {
		if (sandbox_build(k) < 0)
			return 1;
		marks = 0;
		for (unsigned short i = 0; i < sandbox.prog[k].len; i++)
			marks += sandbox.prog[k].filter[i].k == SANDBOX_PID_MARK;
#ifndef SANDBOX_SANITIZER
		/* The stand-in pid must be there, and be nothing else. */
		if (marks == 0 || marks > 3) {
			fprintf(stderr, "sandbox-gen: %s: the pid stand-in appears %u times\n",
			        sandbox_kind_names[k], marks);
			return 1;
		}
#endif
		printf("static const struct sock_filter sandbox_bpf_%s[] = {\n",
		       sandbox_kind_names[k]);
		for (unsigned short i = 0; i < sandbox.prog[k].len; i++) {
			const struct sock_filter *f = &sandbox.prog[k].filter[i];

			printf("    {0x%04x, %u, %u, 0x%08x},\n", f->code, f->jt, f->jf, f->k);
		}
		printf("};\n");
	}
	printf("static const struct sock_filter *const sandbox_bpf_prog[SANDBOX_NR_KINDS] = {\n");
	for (int k = 0; k < SANDBOX_NR_KINDS; k++)
		printf("    sandbox_bpf_%s,\n", sandbox_kind_names[k]);
	printf("};\nstatic const unsigned short sandbox_bpf_len[SANDBOX_NR_KINDS] = {\n");
	for (int k = 0; k < SANDBOX_NR_KINDS; k++)
		printf("    %u,\n", sandbox.prog[k].len);
	printf("};\nstatic const char *const sandbox_bpf_names[SANDBOX_MAX_NR] = {\n");
	for (int nr = 0; nr < SANDBOX_MAX_NR; nr++) {
		char *name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);

		if (name)
			printf("    [%d] = \"%s\",\n", nr, name);
		free(name);
	}
	printf("};\n");
	return fflush(stdout) == 0 ? 0 : 1;
}
#endif
