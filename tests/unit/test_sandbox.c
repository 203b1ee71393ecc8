/* SPDX-License-Identifier: MIT */
/*
 * Unit tests: the per-thread seccomp filters (core/sandbox.c). A filter
 * cannot be taken off, so each case runs in a forked child: sandbox_init(),
 * one thread that confines itself with a kind's filter and makes some calls,
 * then the child's exit status (159 for a forbidden call) and its stderr.
 * Skipped where the build has no libseccomp or the kernel no seccomp.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "core/sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct child_case {
	enum sandbox_kind kind;
	bool enabled;
	void (*fn)(void);
};

static const struct child_case *current;

static void *child_thread(void *arg)
{
	(void)arg;
	sandbox_enter(current->kind, "tester");
	current->fn();
	return NULL;
}

/* Run @c in a child; returns its exit status (or 1000 + signal), stderr in @err. */
static int run_child(const struct child_case *c, char *err, size_t len)
{
	int pipefd[2], status;
	ssize_t n, got = 0;
	pid_t pid;

	assert_int_equal(pipe(pipefd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		pthread_t t;
		struct sandbox_state st;

		dup2(pipefd[1], STDERR_FILENO);
		close(pipefd[0]);
		current = c;
		if (sandbox_init(c->enabled) < 0)
			_exit(2);
		sandbox_get_state(&st);
		if (st.seccomp != c->enabled)
			_exit(3);
		if (pthread_create(&t, NULL, child_thread, NULL) != 0)
			_exit(4);
		pthread_join(t, NULL);
		_exit(0);
	}
	close(pipefd[1]);
	while (got + 1 < (ssize_t)len && (n = read(pipefd[0], err + got, len - 1 - got)) > 0)
		got += n;
	err[got] = '\0';
	close(pipefd[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 1000 + WTERMSIG(status);
}

/* Is there anything to test? (an unconfined child reports seccomp off) */
static bool have_protection(bool landlock)
{
	struct sandbox_state st;
	int status;
	pid_t pid = fork();

	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		dup2(null, STDERR_FILENO);
		if (sandbox_init(true) < 0)
			_exit(2);
		sandbox_get_state(&st);
		_exit((landlock ? st.landlock : st.seccomp) ? 0 : 1);
	}
	return pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
	       WEXITSTATUS(status) == 0;
}

#define REQUIRE_SECCOMP()                                                                          \
	do {                                                                                       \
		if (!have_protection(false))                                                       \
			skip();                                                                    \
	} while (0)

/* ---- what the threads do ---- */

/*
 * The RTC's gmtime_r() in a vCPU thread: libc's time-zone set-up (it reads
 * /etc/localtime) must be done already. Only a build without ASan, whose
 * filters have no openat, would see that go wrong.
 */
static void do_gmtime(void)
{
	time_t now = time(NULL);
	struct tm tm;
	struct timespec ts;

	if (!gmtime_r(&now, &tm) || clock_gettime(CLOCK_MONOTONIC, &ts) < 0)
		_exit(5);
}

static void do_open(void)
{
	open("/dev/null", O_RDONLY);
}

/* unlink: refused to devices in every build (ASan builds let openat through). */
static void do_unlink(void)
{
	syscall(SYS_unlink, "/nonexistent/nestvm-sandbox-test");
}

/* KVM_RUN is allowed to a vCPU thread (EBADF here); KVM_CREATE_VM is not. */
static void do_ioctls(void)
{
	if (ioctl(-1, KVM_RUN, 0) != -1 || errno != EBADF)
		_exit(6);
	ioctl(-1, KVM_CREATE_VM, 0);
}

static void do_mmap_exec(void)
{
	void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		_exit(7);
	munmap(p, 4096);
	mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
}

static void do_sockets(void)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		_exit(8);
	close(fd);
	socket(AF_INET, SOCK_STREAM, 0);
}

/* Landlock: a device thread opens no file for writing (ASan builds let openat through). */
static void do_open_write(void)
{
	int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);

	_exit(fd < 0 && errno == EACCES ? 42 : 43);
}

/* ---- cases ---- */

static void test_vcpu_gmtime_allowed(void **state)
{
	const struct child_case c = {SANDBOX_VCPU, true, do_gmtime};
	char err[1024];

	(void)state;
	REQUIRE_SECCOMP();
	assert_int_equal(run_child(&c, err, sizeof(err)), 0);
	assert_null(strstr(err, "seccomp:"));
}

static void test_device_unlink_forbidden(void **state)
{
	const struct child_case c = {SANDBOX_DEVICE, true, do_unlink};
	char err[1024];

	(void)state;
	REQUIRE_SECCOMP();
	assert_int_equal(run_child(&c, err, sizeof(err)), SANDBOX_EXIT_STATUS);
	assert_non_null(strstr(err, "nestvm: seccomp: thread tester (device, tid "));
	assert_non_null(strstr(err, ") made forbidden syscall 87 (unlink)"));
}

static void test_vcpu_ioctl_by_number(void **state)
{
	const struct child_case c = {SANDBOX_VCPU, true, do_ioctls};
	char err[1024];

	(void)state;
	REQUIRE_SECCOMP();
	assert_int_equal(run_child(&c, err, sizeof(err)), SANDBOX_EXIT_STATUS);
	assert_non_null(strstr(err, "(vcpu, tid "));
	assert_non_null(strstr(err, "made forbidden syscall 16 (ioctl)"));
}

static void test_device_mmap_exec_forbidden(void **state)
{
	const struct child_case c = {SANDBOX_DEVICE, true, do_mmap_exec};
	char err[1024];

	(void)state;
	REQUIRE_SECCOMP();
	assert_int_equal(run_child(&c, err, sizeof(err)), SANDBOX_EXIT_STATUS);
	assert_non_null(strstr(err, "made forbidden syscall 9 (mmap)"));
}

/* Other device threads open no socket at all. */
static void do_unix_socket(void)
{
	socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
}

static void test_device_no_socket(void **state)
{
	const struct child_case c = {SANDBOX_DEVICE, true, do_unix_socket};
	char err[1024];

	(void)state;
	REQUIRE_SECCOMP();
	assert_int_equal(run_child(&c, err, sizeof(err)), SANDBOX_EXIT_STATUS);
	assert_non_null(strstr(err, "(device, tid "));
	assert_non_null(strstr(err, "made forbidden syscall 41 (socket)"));
}

static void test_vsock_unix_sockets_only(void **state)
{
	const struct child_case c = {SANDBOX_VSOCK, true, do_sockets};
	char err[1024];

	(void)state;
	REQUIRE_SECCOMP();
	assert_int_equal(run_child(&c, err, sizeof(err)), SANDBOX_EXIT_STATUS);
	assert_non_null(strstr(err, "made forbidden syscall 41 (socket)"));
}

/*
 * The switch (src/switch/confine.c): libslirp's IPv4/IPv6 sockets, FIONREAD
 * and socket options; then an AF_UNIX socket, which it never opens.
 */
static void do_switch_sockets(void)
{
	int n, fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	int fd6 = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || ioctl(fd, FIONREAD, &n) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &(int){65536}, sizeof(int)) < 0)
		_exit(8);
	close(fd);
	if (fd6 >= 0)
		close(fd6);
	socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
}

static void test_switch_inet_sockets_only(void **state)
{
	const struct child_case c = {SANDBOX_SWITCH, true, do_switch_sockets};
	char err[1024];

	(void)state;
	REQUIRE_SECCOMP();
	assert_int_equal(run_child(&c, err, sizeof(err)), SANDBOX_EXIT_STATUS);
	assert_non_null(strstr(err, "nestvm: seccomp: thread tester (switch, tid "));
	assert_non_null(strstr(err, "made forbidden syscall 41 (socket); the switch ends"));
}

/* No listening socket of its own: a guest that took the switch over opens no port. */
static void do_switch_listen(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		_exit(8);
	listen(fd, 1);
}

static void test_switch_no_listen(void **state)
{
	const struct child_case c = {SANDBOX_SWITCH, true, do_switch_listen};
	char err[1024];

	(void)state;
	REQUIRE_SECCOMP();
	assert_int_equal(run_child(&c, err, sizeof(err)), SANDBOX_EXIT_STATUS);
	assert_non_null(strstr(err, "made forbidden syscall 50 (listen)"));
}

/* Nor another ioctl than FIONREAD. */
static void do_switch_ioctl(void)
{
	struct winsize ws;

	ioctl(STDERR_FILENO, TIOCGWINSZ, &ws);
}

static void test_switch_ioctl_fionread_only(void **state)
{
	const struct child_case c = {SANDBOX_SWITCH, true, do_switch_ioctl};
	char err[1024];

	(void)state;
	REQUIRE_SECCOMP();
	assert_int_equal(run_child(&c, err, sizeof(err)), SANDBOX_EXIT_STATUS);
	assert_non_null(strstr(err, "made forbidden syscall 16 (ioctl)"));
}

static void test_device_landlock_no_write(void **state)
{
	const struct child_case c = {SANDBOX_DEVICE, true, do_open_write};
	char err[1024];

	(void)state;
#ifndef __SANITIZE_ADDRESS__
	skip(); /* seccomp traps openat before Landlock sees it */
#endif
	if (!have_protection(true))
		skip();
	assert_int_equal(run_child(&c, err, sizeof(err)), 42);
}

static void test_main_may_open_files(void **state)
{
	const struct child_case c = {SANDBOX_MAIN, true, do_open};
	char err[1024];

	(void)state;
	REQUIRE_SECCOMP();
	assert_int_equal(run_child(&c, err, sizeof(err)), 0);
}

static void test_off_allows_everything(void **state)
{
	const struct child_case c = {SANDBOX_DEVICE, false, do_open};
	char err[1024];
	int status;
	pid_t pid;

	(void)state;
	assert_int_equal(run_child(&c, err, sizeof(err)), 0);
	/* NESTVM_SANDBOX=off wins over sandbox_init(true). */
	assert_int_equal(setenv("NESTVM_SANDBOX", "off", 1), 0);
	pid = fork();
	if (pid == 0) {
		struct sandbox_state st;

		if (sandbox_init(true) < 0)
			_exit(2);
		sandbox_get_state(&st);
		_exit(st.seccomp ? 1 : 0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	unsetenv("NESTVM_SANDBOX");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_vcpu_gmtime_allowed),
	    cmocka_unit_test(test_device_unlink_forbidden),
	    cmocka_unit_test(test_vcpu_ioctl_by_number),
	    cmocka_unit_test(test_device_mmap_exec_forbidden),
	    cmocka_unit_test(test_device_no_socket),
	    cmocka_unit_test(test_vsock_unix_sockets_only),
	    cmocka_unit_test(test_switch_inet_sockets_only),
	    cmocka_unit_test(test_switch_no_listen),
	    cmocka_unit_test(test_switch_ioctl_fionread_only),
	    cmocka_unit_test(test_device_landlock_no_write),
	    cmocka_unit_test(test_main_may_open_files),
	    cmocka_unit_test(test_off_allows_everything),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
