/* SPDX-License-Identifier: MIT */
/*
 * Regression tests for the VM manager's hardening (issue 9): the store
 * trusts only what its user owns and no one else can write, and follows no
 * links (row 3); the monitor closes descriptors it inherits (row 7); sizes
 * and vCPU counts are judged by one parser (row 10); names are escaped in
 * messages, `list` creates no store, and a VM whose files cannot all be
 * written is refused by `new` (row 11).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "core/vm_limits.h"
#include "manager/monitor.h"
#include "manager/store.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define OTHER_UID 65534 /* nobody */

struct fixture {
	char dir[64]; /* a fresh temporary directory, mode 0700 */
	char home[128];
	struct store st;
};

static int fixture_setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct mgr_err err;

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/nestvm-test-hard.XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->home, sizeof(f->home), "%s/home", f->dir);
	if (store_open(&f->st, f->home, &err) < 0) {
		fprintf(stderr, "store_open: %s\n", err.msg);
		return -1;
	}
	*state = f;
	return 0;
}

static int fixture_teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[256];
	int r;

	snprintf(cmd, sizeof(cmd), "chmod -R u+rwx '%s' 2>/dev/null; rm -rf '%s'", f->dir, f->dir);
	r = system(cmd);
	free(f);
	return r == 0 ? 0 : -1;
}

static void make_def(struct vm_def *def, const char *name)
{
	memset(def, 0, sizeof(*def));
	snprintf(def->name, sizeof(def->name), "%s", name);
	def->cpus = 1;
	def->memory_mib = 64;
	assert_int_equal(vm_def_set_str(&def->kernel, "/boot/k"), 0);
}

static void expect_msg(const struct mgr_err *err, const char *want)
{
	if (!strstr(err->msg, want))
		fail_msg("error '%s' lacks '%s'", err->msg, want);
}

/* Row 3: a home that others can write is refused, naming the path and the fix. */
static void test_store_home_writable_by_others(void **state)
{
	struct fixture *f = *state;
	struct mgr_err err = {{0}};
	struct store st;

	assert_int_equal(chmod(f->home, 0777), 0);
	assert_int_equal(store_open(&st, f->home, &err), -EPERM);
	expect_msg(&err, f->home);
	expect_msg(&err, "writable by other users (mode 0777)");
	expect_msg(&err, "chmod go-w");
	assert_int_equal(store_open_existing(&st, f->home, &err), -EPERM);
	assert_int_equal(chmod(f->home, 0770), 0); /* the group is others too */
	assert_int_equal(store_open(&st, f->home, &err), -EPERM);
	assert_int_equal(chmod(f->home, 0700), 0);
	assert_int_equal(store_open(&st, f->home, &err), 0);
}

/* Row 3: a directory above the store that others can write, without the sticky bit. */
static void test_store_parent_writable_by_others(void **state)
{
	struct fixture *f = *state;
	struct mgr_err err = {{0}};
	char home[160];
	struct store st;

	snprintf(home, sizeof(home), "%s/home/sub/store", f->dir);
	assert_int_equal(mkdir(home, 0700) < 0 && errno == ENOENT, 1);
	snprintf(home, sizeof(home), "%s/home/sub", f->dir);
	assert_int_equal(mkdir(home, 0777), 0);
	assert_int_equal(chmod(home, 0777), 0);
	snprintf(home, sizeof(home), "%s/home/sub/store", f->dir);
	assert_int_equal(store_open(&st, home, &err), -EPERM);
	expect_msg(&err, "above the VM store");
	expect_msg(&err, "chmod go-w");
	/* Sticky, as /tmp is: nobody else can move the store away. */
	snprintf(home, sizeof(home), "%s/home/sub", f->dir);
	assert_int_equal(chmod(home, 01777), 0);
	snprintf(home, sizeof(home), "%s/home/sub/store", f->dir);
	assert_int_equal(store_open(&st, home, &err), 0);
}

/* Row 3: a VM directory or file owned by another user (needs root to set up). */
static void test_store_owned_by_another_user(void **state)
{
	struct fixture *f = *state;
	struct mgr_err err = {{0}};
	char path[256];
	struct vm_def def, got;
	struct store st;

	if (geteuid() != 0) {
		print_message("skipped: chown to another user needs root\n");
		return;
	}
	make_def(&def, "vm1");
	assert_int_equal(store_create(&f->st, &def, &err), 0);
	snprintf(path, sizeof(path), "%s/vm1", f->home);
	assert_int_equal(chown(path, OTHER_UID, OTHER_UID), 0);
	assert_int_equal(store_load(&f->st, "vm1", &got, &err), -EPERM);
	expect_msg(&err, "owned by uid 65534");
	expect_msg(&err, "chown 0");
	assert_int_equal(store_lock_acquire(&f->st, "vm1", STORE_LOCK_RUN, 0, &err), -EPERM);
	assert_int_equal(chown(path, 0, 0), 0);
	snprintf(path, sizeof(path), "%s/vm1/vm.json", f->home);
	assert_int_equal(chown(path, OTHER_UID, OTHER_UID), 0);
	assert_int_equal(store_load(&f->st, "vm1", &got, &err), -EPERM);
	expect_msg(&err, "vm.json' is owned by uid 65534");
	assert_int_equal(chown(path, 0, 0), 0);
	assert_int_equal(store_load(&f->st, "vm1", &got, &err), 0);
	vm_def_clear(&got);
	/* The home itself. */
	assert_int_equal(chown(f->home, OTHER_UID, OTHER_UID), 0);
	assert_int_equal(store_open(&st, f->home, &err), -EPERM);
	expect_msg(&err, "owned by uid 65534");
	assert_int_equal(chown(f->home, 0, 0), 0);
	vm_def_clear(&def);
}

/* Row 3: files in the store are never opened through a link, nor block on a FIFO. */
static void test_store_no_links_no_fifos(void **state)
{
	struct fixture *f = *state;
	struct mgr_err err = {{0}};
	char path[256], victim[256];
	struct vm_def def, got;
	struct stat sb;
	int fd;

	make_def(&def, "vm1");
	assert_int_equal(store_create(&f->st, &def, &err), 0);
	snprintf(victim, sizeof(victim), "%s/victim", f->dir);
	fd = open(victim, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "precious\n", 9), 9);
	close(fd);
	/* console.log as a link to someone's file: refused, the file untouched. */
	snprintf(path, sizeof(path), "%s/vm1/console.log", f->home);
	assert_int_equal(symlink(victim, path), 0);
	fd = store_vm_open(&f->st, "vm1", "console.log", O_WRONLY | O_CREAT | O_TRUNC | O_APPEND,
	                   &err);
	assert_int_equal(fd, -ELOOP);
	expect_msg(&err, "symbolic link");
	assert_int_equal(stat(victim, &sb), 0);
	assert_int_equal(sb.st_size, 9);
	/* A FIFO in its place: an error at once, not a hang. */
	snprintf(path, sizeof(path), "%s/vm1/monitor.log", f->home);
	assert_int_equal(mkfifo(path, 0600), 0);
	fd = store_vm_open(&f->st, "vm1", "monitor.log", O_WRONLY | O_CREAT | O_APPEND, &err);
	assert_true(fd < 0);
	/* vm.json as a link: the definition is refused. */
	snprintf(path, sizeof(path), "%s/vm1/vm.json", f->home);
	assert_int_equal(rename(path, victim), 0);
	assert_int_equal(symlink(victim, path), 0);
	assert_int_equal(store_load(&f->st, "vm1", &got, &err), -EINVAL);
	expect_msg(&err, "symbolic link");
	/* A VM directory that is a link. */
	snprintf(path, sizeof(path), "%s/vm2", f->home);
	assert_int_equal(symlink(f->dir, path), 0);
	assert_int_equal(store_load(&f->st, "vm2", &got, &err), -ENOTDIR);
	/* A file with a second hard link (to someone's file) is refused too. */
	snprintf(path, sizeof(path), "%s/vm1/lock", f->home);
	unlink(path);
	assert_int_equal(link(victim, path), 0);
	assert_true(store_lock_acquire(&f->st, "vm1", STORE_LOCK_RUN, 0, &err) < 0);
	expect_msg(&err, "hard links");
	vm_def_clear(&def);
}

/* Row 11: `list` and the other commands but `new` find no store rather than make one. */
static void test_store_open_existing(void **state)
{
	struct fixture *f = *state;
	struct mgr_err err = {{0}};
	char home[160];
	struct stat sb;
	struct store st;

	snprintf(home, sizeof(home), "%s/none", f->dir);
	assert_int_equal(store_open_existing(&st, home, &err), -ENOENT);
	assert_int_equal(stat(home, &sb), -1);
	assert_int_equal(store_open(&st, home, &err), 0);
	assert_int_equal(stat(home, &sb), 0);
	assert_int_equal(store_open_existing(&st, home, &err), 0);
}

/* Row 11: control characters in a name are escaped in the message. */
static void test_name_escaped(void **state)
{
	struct mgr_err err = {{0}};
	char buf[32];

	(void)state;
	assert_int_equal(store_check_name("a\033]0;owned\007b", &err), -EINVAL);
	assert_null(strchr(err.msg, '\033'));
	assert_null(strchr(err.msg, '\007'));
	expect_msg(&err, "'a\\x1b]0;owned\\x07b'");
	assert_string_equal(mgr_escape("x\ny\\\x7f\xc3", buf, sizeof(buf)),
	                    "x\\x0ay\\\\\\x7f\\xc3");
	/* Truncated, never a half escape. */
	assert_string_equal(mgr_escape("\001\001\001", buf, 8), "\\x01");
}

/*
 * Row 11: `new` refuses a VM one of whose files would not fit in a path
 * (before, vm.json fitted and `start` failed to write runtime.json).
 */
static void test_store_create_path_room(void **state)
{
	struct fixture *f = *state;
	struct mgr_err err = {{0}};
	char *home = malloc(STORE_PATH_MAX);
	char name[STORE_NAME_MAX + 1];
	struct vm_def def;
	struct store st;
	size_t len;

	assert_non_null(home);
	snprintf(home, STORE_PATH_MAX, "%s", f->dir);
	/* A home of 4046 bytes: "HOME/NAME/vm.json" is 4095 with a 40-byte NAME. */
	while ((len = strlen(home)) < 4046) {
		size_t add = 4046 - len - 1;

		if (add > 255)
			add = 200;
		home[len] = '/';
		memset(home + len + 1, 'd', add);
		home[len + 1 + add] = '\0';
		assert_true(mkdir(home, 0700) == 0 || errno == EEXIST);
	}
	assert_int_equal(store_open(&st, home, &err), 0);
	len = strlen(st.home);
	assert_int_equal(len, 4046);
	memset(name, 'n', sizeof(name));
	name[40] = '\0';
	make_def(&def, name);
	assert_int_equal(store_create(&st, &def, &err), -ENAMETOOLONG);
	expect_msg(&err, "File name too long");
	expect_msg(&err, "shorter NESTVM_HOME");
	/* With room for last-exit.json, it is created and its records can be written. */
	def.name[strlen(def.name) - 7] = '\0';
	assert_int_equal(store_create(&st, &def, &err), 0);
	{
		struct store_runtime rt = {.pid = 1, .started = 2, .state = "running"};

		assert_int_equal(store_runtime_write(&st, def.name, &rt), 0);
		assert_int_equal(store_exit_write(&st, def.name, &(struct store_exit){.status = 0}),
		                 0);
	}
	vm_def_clear(&def);
	free(home);
}

/* Row 10: one parser for sizes and vCPU counts, the limits judged when parsed. */
static void test_limits(void **state)
{
	char why[VM_LIMITS_WHY_LEN];
	unsigned int cpus;
	uint64_t mib;

	(void)state;
	assert_int_equal(vm_limits_parse_memory("512M", &mib, why, sizeof(why)), 0);
	assert_int_equal(mib, 512);
	assert_int_equal(vm_limits_parse_memory("16384K", &mib, why, sizeof(why)), 0);
	assert_int_equal(mib, 16);
	assert_int_equal(vm_limits_parse_memory("64", &mib, why, sizeof(why)), 0);
	assert_int_equal(mib, 64);
	/* What KVM refused with EINVAL at start, `run` now refuses as `new` does. */
	assert_int_equal(vm_limits_parse_memory("16385K", &mib, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "whole number of MiB"));
	assert_int_equal(vm_limits_parse_memory("15M", &mib, why, sizeof(why)), -ERANGE);
	assert_non_null(strstr(why, "at least 16 MiB"));
	assert_int_equal(vm_limits_parse_memory("64T", &mib, why, sizeof(why)), -ERANGE);
	assert_non_null(strstr(why, "more than this host's"));
	assert_int_equal(vm_limits_parse_memory("4X", &mib, why, sizeof(why)), -EINVAL);
	assert_int_equal(vm_limits_check_memory_mib(VM_MAX_MEMORY_MIB, why, sizeof(why)), -ERANGE);
	assert_int_equal(vm_limits_parse_cpus("254", &cpus, why, sizeof(why)), 0);
	assert_int_equal(cpus, 254);
	assert_int_equal(vm_limits_parse_cpus("255", &cpus, why, sizeof(why)), -ERANGE);
	assert_non_null(strstr(why, "from 1 to 254"));
	assert_int_equal(vm_limits_parse_cpus("0", &cpus, why, sizeof(why)), -ERANGE);
	assert_int_equal(vm_limits_parse_cpus("2x", &cpus, why, sizeof(why)), -EINVAL);
	assert_int_equal(vm_limits_parse_cpus("99999999999999999999", &cpus, why, sizeof(why)),
	                 -EINVAL);
}

/* Host CPU lists (--cpu-affinity, vm.json's cpu_affinity): taskset -c's syntax, written back. */
static void test_affinity(void **state)
{
	static const struct {
		const char *in, *out;
	} good[] = {
	    {"1", "1"},
	    {"0-3,6", "0-3,6"},
	    {"6,0-3", "0-3,6"},
	    {"2,1,0,5,4", "0-2,4-5"},
	    {"1023", "1023"},
	};
	static const char *const bad[] = {
	    "", "-1", "1-", "a", "1,,2", "1,", ",1", "3-1", "1024", "0-1024", "1 2", "1-2-3",
	    "99999999999999999999999",
	};
	char why[VM_LIMITS_WHY_LEN], text[64];
	cpu_set_t set;

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		assert_int_equal(vm_limits_parse_affinity(good[i].in, &set, why, sizeof(why)), 0);
		vm_limits_format_affinity(&set, text, sizeof(text));
		assert_string_equal(text, good[i].out);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why[0] = 0;
		assert_int_equal(vm_limits_parse_affinity(bad[i], &set, why, sizeof(why)), -EINVAL);
		assert_true(why[0] != 0);
	}
	assert_int_equal(vm_limits_parse_affinity("3-1", NULL, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "low-high"));
}

/* Row 10: vm.json's memory_mib is judged by the same limits, when it is read. */
static void test_def_memory_judged_at_load(void **state)
{
	static const char tmpl[] = "{\"name\": \"m\", \"cpus\": %s, \"memory_mib\": %s, "
	                           "\"kernel\": \"/k\"}";
	struct mgr_err err = {{0}};
	struct vm_def def;
	char text[256];

	(void)state;
	snprintf(text, sizeof(text), tmpl, "1", "16777216"); /* 16 TiB: more than this host */
	assert_int_equal(vm_def_parse(text, strlen(text), "/x/vm.json", &def, &err), -EINVAL);
	expect_msg(&err, "/x/vm.json: field 'memory_mib': 16777216 MiB is more than this host's");
	snprintf(text, sizeof(text), tmpl, "1", "15");
	assert_int_equal(vm_def_parse(text, strlen(text), "/x/vm.json", &def, &err), -EINVAL);
	expect_msg(&err, "at least 16 MiB");
	snprintf(text, sizeof(text), tmpl, "1", "-5");
	assert_int_equal(vm_def_parse(text, strlen(text), "/x/vm.json", &def, &err), -EINVAL);
	snprintf(text, sizeof(text), tmpl, "1", "\"1G\"");
	assert_int_equal(vm_def_parse(text, strlen(text), "/x/vm.json", &def, &err), -EINVAL);
	expect_msg(&err, "whole number of MiB");
	snprintf(text, sizeof(text), tmpl, "255", "64");
	assert_int_equal(vm_def_parse(text, strlen(text), "/x/vm.json", &def, &err), -EINVAL);
	expect_msg(&err, "field 'cpus'");
	snprintf(text, sizeof(text), tmpl, "2", "64");
	assert_int_equal(vm_def_parse(text, strlen(text), "/x/vm.json", &def, &err), 0);
	vm_def_clear(&def);
}

/* Row 7: everything but the kept descriptors is closed. */
static void test_close_fds(void **state)
{
	int p[2], q[2], status;
	pid_t pid;

	(void)state;
	assert_int_equal(pipe(p), 0);
	assert_int_equal(pipe(q), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int high = dup2(p[1], 200), keep[] = {q[0], 150}, bad = 0;

		if (high != 200 || dup2(p[0], 150) != 150)
			_exit(10);
		if (monitor_close_fds(3, keep, 2) < 0)
			_exit(11);
		/* Kept: q[0] and 150; gone: p[0], p[1], q[1], 200. */
		bad |= fcntl(q[0], F_GETFD) < 0;
		bad |= fcntl(150, F_GETFD) < 0;
		bad |= (fcntl(p[0], F_GETFD) >= 0) << 1;
		bad |= (fcntl(p[1], F_GETFD) >= 0) << 2;
		bad |= (fcntl(q[1], F_GETFD) >= 0) << 3;
		bad |= (fcntl(200, F_GETFD) >= 0) << 4;
		bad |= fcntl(STDERR_FILENO, F_GETFD) < 0;
		_exit(bad);
	}
	close(p[0]);
	close(p[1]);
	close(q[0]);
	close(q[1]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_store_home_writable_by_others, fixture_setup,
	                                    fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_store_parent_writable_by_others, fixture_setup,
	                                    fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_store_owned_by_another_user, fixture_setup,
	                                    fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_store_no_links_no_fifos, fixture_setup,
	                                    fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_store_open_existing, fixture_setup,
	                                    fixture_teardown),
	    cmocka_unit_test(test_name_escaped),
	    cmocka_unit_test_setup_teardown(test_store_create_path_room, fixture_setup,
	                                    fixture_teardown),
	    cmocka_unit_test(test_limits),
	    cmocka_unit_test(test_affinity),
	    cmocka_unit_test(test_def_memory_judged_at_load),
	    cmocka_unit_test(test_close_fds),
	};

	return cmocka_run_group_tests_name("manager_hardening", tests, NULL, NULL);
}
