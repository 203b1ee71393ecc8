/* SPDX-License-Identifier: MIT */
/*
 * minkvm: the smallest complete KVM monitor, the floor under nestvm's
 * start-up time on a given host. It creates a VM with one memory slot and
 * one vCPU, runs three real-mode instructions (`mov $0, %al; out %al, $0xf4;
 * hlt`) and exits with the value written to the debug-exit port 0xf4, as
 * nestvm does with the probe guest's test=exit.
 *
 * Options add the pieces of a real monitor one at a time, so that
 * bench/boot.sh (and a person with strace or perf) can tell what each one
 * costs on this host's KVM:
 *
 *   --memory MIB     size of the memory slot (default 2; the bench uses 256)
 *   --irqchip        KVM_CREATE_IRQCHIP, after the memory slot (as nestvm)
 *   --split-irqchip  KVM_ENABLE_CAP(KVM_CAP_SPLIT_IRQCHIP) instead: local
 *                    APICs in the kernel, PIC and IOAPIC left to userspace
 *   --pit            KVM_CREATE_PIT2 (needs --irqchip: with the split irqchip
 *                    KVM refuses it with ENOENT)
 *   --no-reinject    KVM_REINJECT_CONTROL(pit_reinject = 0) after the PIT
 *   --expedite       after the irqchip and PIT, add a 4 KiB memory slot; its
 *                    synchronize_srcu_expedited() hurries the SRCU grace
 *                    period that the irqchip's I/O-bus registrations started
 *   --thread         run the vCPU in a second thread and join it (as nestvm)
 *   --linger MS      sleep MS milliseconds before the teardown (a guest that
 *                    runs that long)
 *   --no-close       exit without closing the VM: exit_group() tears it down
 *   --detach         fork a child that inherits the VM file descriptors and
 *                    waits for this process to end, close ours and exit: the
 *                    teardown happens in the child, after this process ended
 *   --timing         print, on stderr, how long each step took (µs)
 *
 * Exit status: the value written to port 0xf4 (0); 1 when a KVM call fails
 * (the message names it); 2 for a bad command line.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PORT_DEBUG_EXIT 0xf4
#define CODE_GPA 0x1000
#define MIB (1024UL * 1024UL)
#define TSS_GPA 0xfffbd000UL
#define EXPEDITE_SLOT_GPA 0xfff00000UL /* above any --memory the bench uses */
#define IOAPIC_PINS 24
#define X86_EFLAGS_FIXED 0x2

/* mov $0, %al; out %al, $0xf4; hlt (real mode, CS:IP = 0:0x1000) */
static const uint8_t guest_code[] = {0xb0, 0x00, 0xe6, PORT_DEBUG_EXIT, 0xf4};

struct minkvm_opts {
	unsigned long mem_mib, linger_ms;
	bool irqchip, split_irqchip, pit, no_reinject, expedite, thread, no_close, detach;
	bool timing;
};

struct minkvm {
	int vcpu_fd;
	struct kvm_run *run;
	int status;
	bool timing;
	struct timespec last;
};

/* With --timing, prints the time since the previous step. */
static void minkvm_step(struct minkvm *m, const char *what)
{
	struct timespec now;

	if (!m->timing)
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	fprintf(stderr, "minkvm: %-32s %9.1f us\n", what,
	        (double)(now.tv_sec - m->last.tv_sec) * 1e6 +
	            (double)(now.tv_nsec - m->last.tv_nsec) / 1e3);
	m->last = now;
}

static int fail(const char *what)
{
	fprintf(stderr, "minkvm: %s: %s\n", what, strerror(errno));
	return 1;
}

/* Runs the vCPU until the guest writes the debug-exit port. */
static void *minkvm_vcpu_loop(void *arg)
{
	struct minkvm *m = arg;

	for (;;) {
		if (ioctl(m->vcpu_fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR)
				continue;
			perror("minkvm: KVM_RUN");
			m->status = -1;
			return NULL;
		}
		if (m->run->exit_reason == KVM_EXIT_IO && m->run->io.port == PORT_DEBUG_EXIT &&
		    m->run->io.direction == KVM_EXIT_IO_OUT) {
			m->status = *((uint8_t *)m->run + m->run->io.data_offset);
			return NULL;
		}
		fprintf(stderr, "minkvm: unexpected exit reason %u\n", m->run->exit_reason);
		m->status = -1;
		return NULL;
	}
}

static int usage(void)
{
	fprintf(stderr, "usage: minkvm [--memory MIB] [--irqchip | --split-irqchip] [--pit] "
	                "[--no-reinject] [--expedite] [--thread] [--linger MS] "
	                "[--no-close | --detach] [--timing]\n");
	return 2;
}

static int parse_opts(int argc, char **argv, struct minkvm_opts *o)
{
	*o = (struct minkvm_opts){.mem_mib = 2};
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--memory") == 0 && i + 1 < argc)
			o->mem_mib = strtoul(argv[++i], NULL, 0);
		else if (strcmp(a, "--linger") == 0 && i + 1 < argc)
			o->linger_ms = strtoul(argv[++i], NULL, 0);
		else if (strcmp(a, "--irqchip") == 0)
			o->irqchip = true;
		else if (strcmp(a, "--split-irqchip") == 0)
			o->split_irqchip = true;
		else if (strcmp(a, "--pit") == 0)
			o->pit = true;
		else if (strcmp(a, "--no-reinject") == 0)
			o->no_reinject = true;
		else if (strcmp(a, "--expedite") == 0)
			o->expedite = true;
		else if (strcmp(a, "--thread") == 0)
			o->thread = true;
		else if (strcmp(a, "--no-close") == 0)
			o->no_close = true;
		else if (strcmp(a, "--detach") == 0)
			o->detach = true;
		else if (strcmp(a, "--timing") == 0)
			o->timing = true;
		else
			return -1;
	}
	if (o->mem_mib < 1 || o->mem_mib > 3072 || (o->irqchip && o->split_irqchip) ||
	    (o->pit && !o->irqchip) || (o->no_reinject && !o->pit) || (o->no_close && o->detach))
		return -1;
	return 0;
}

int main(int argc, char **argv)
{
	struct minkvm m = {.status = -1};
	struct minkvm_opts o;
	struct kvm_userspace_memory_region region;
	struct kvm_pit_config pit_config = {.flags = KVM_PIT_SPEAKER_DUMMY};
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	int kvm_fd, vm_fd, mmap_size;
	pthread_t tid;
	void *mem;

	if (parse_opts(argc, argv, &o) < 0)
		return usage();
	m.timing = o.timing;
	clock_gettime(CLOCK_MONOTONIC, &m.last);

	kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm_fd < 0)
		return fail("/dev/kvm");
	vm_fd = ioctl(kvm_fd, KVM_CREATE_VM, 0);
	if (vm_fd < 0)
		return fail("KVM_CREATE_VM");
	if (ioctl(vm_fd, KVM_SET_TSS_ADDR, TSS_GPA) < 0)
		return fail("KVM_SET_TSS_ADDR");
	minkvm_step(&m, "open + KVM_CREATE_VM");

	mem = mmap(NULL, o.mem_mib * MIB, PROT_READ | PROT_WRITE,
	           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mem == MAP_FAILED)
		return fail("mmap guest memory");
	memcpy((uint8_t *)mem + CODE_GPA, guest_code, sizeof(guest_code));
	region = (struct kvm_userspace_memory_region){
	    .slot = 0,
	    .memory_size = o.mem_mib * MIB,
	    .userspace_addr = (uintptr_t)mem,
	};
	if (ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0)
		return fail("KVM_SET_USER_MEMORY_REGION");
	minkvm_step(&m, "KVM_SET_USER_MEMORY_REGION");

	if (o.irqchip) {
		if (ioctl(vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
			return fail("KVM_CREATE_IRQCHIP");
		minkvm_step(&m, "KVM_CREATE_IRQCHIP");
	} else if (o.split_irqchip) {
		struct kvm_enable_cap cap = {.cap = KVM_CAP_SPLIT_IRQCHIP, .args = {IOAPIC_PINS}};

		if (ioctl(vm_fd, KVM_ENABLE_CAP, &cap) < 0)
			return fail("KVM_ENABLE_CAP(KVM_CAP_SPLIT_IRQCHIP)");
		minkvm_step(&m, "KVM_CAP_SPLIT_IRQCHIP");
	}
	if (o.pit) {
		if (ioctl(vm_fd, KVM_CREATE_PIT2, &pit_config) < 0)
			return fail("KVM_CREATE_PIT2");
		minkvm_step(&m, "KVM_CREATE_PIT2");
	}
	if (o.no_reinject) {
		struct kvm_reinject_control rc = {.pit_reinject = 0};

		if (ioctl(vm_fd, KVM_REINJECT_CONTROL, &rc) < 0)
			return fail("KVM_REINJECT_CONTROL");
		minkvm_step(&m, "KVM_REINJECT_CONTROL(0)");
	}
	if (o.expedite) {
		static uint8_t page[4096] __attribute__((aligned(4096)));

		region = (struct kvm_userspace_memory_region){
		    .slot = 1,
		    .guest_phys_addr = EXPEDITE_SLOT_GPA,
		    .memory_size = sizeof(page),
		    .userspace_addr = (uintptr_t)page,
		};
		if (ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0)
			return fail("KVM_SET_USER_MEMORY_REGION (expedite)");
		minkvm_step(&m, "second memory slot (expedite)");
	}

	m.vcpu_fd = ioctl(vm_fd, KVM_CREATE_VCPU, 0);
	if (m.vcpu_fd < 0)
		return fail("KVM_CREATE_VCPU");
	mmap_size = ioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (mmap_size < 0)
		return fail("KVM_GET_VCPU_MMAP_SIZE");
	m.run = mmap(NULL, (size_t)mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, m.vcpu_fd, 0);
	if (m.run == MAP_FAILED)
		return fail("mmap kvm_run");
	if (ioctl(m.vcpu_fd, KVM_GET_SREGS, &sregs) < 0)
		return fail("KVM_GET_SREGS");
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	if (ioctl(m.vcpu_fd, KVM_SET_SREGS, &sregs) < 0)
		return fail("KVM_SET_SREGS");
	memset(&regs, 0, sizeof(regs));
	regs.rip = CODE_GPA;
	regs.rflags = X86_EFLAGS_FIXED;
	if (ioctl(m.vcpu_fd, KVM_SET_REGS, &regs) < 0)
		return fail("KVM_SET_REGS");
	minkvm_step(&m, "KVM_CREATE_VCPU + registers");

	if (o.thread) {
		if (pthread_create(&tid, NULL, minkvm_vcpu_loop, &m) != 0)
			return fail("pthread_create");
		pthread_join(tid, NULL);
	} else {
		minkvm_vcpu_loop(&m);
	}
	minkvm_step(&m, o.thread ? "vCPU thread: KVM_RUN + join" : "KVM_RUN");
	if (m.status < 0)
		return 1;

	if (o.linger_ms) {
		struct timespec ts = {(time_t)(o.linger_ms / 1000),
		                      (long)(o.linger_ms % 1000) * 1000000L};

		nanosleep(&ts, NULL);
		minkvm_step(&m, "linger");
	}
	if (o.detach) {
		/*
		 * The child holds the last references to the VM and exits only
		 * when it reads EOF, that is when this process has exited: the
		 * kernel then tears the VM down in the child. Its stdio goes to
		 * /dev/null so that a caller reading our output is not kept
		 * waiting.
		 */
		int p[2], devnull;
		pid_t pid;
		char c;

		if (pipe(p) < 0)
			return fail("pipe");
		pid = fork();
		if (pid < 0)
			return fail("fork");
		if (pid == 0) {
			close(p[1]);
			devnull = open("/dev/null", O_RDWR);
			for (int fd = 0; fd <= 2 && devnull >= 0; fd++)
				dup2(devnull, fd);
			while (read(p[0], &c, 1) > 0)
				;
			_exit(0);
		}
		close(p[0]); /* p[1] stays open until we exit */
	}
	if (!o.no_close) {
		munmap(m.run, (size_t)mmap_size);
		close(m.vcpu_fd);
		munmap(mem, o.mem_mib * MIB);
		close(vm_fd);
		close(kvm_fd);
		minkvm_step(&m,
		            o.detach ? "fork + close (teardown detached)" : "close: VM teardown");
	}
	return m.status;
}
