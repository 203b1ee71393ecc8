/* SPDX-License-Identifier: MIT */
/*
 * Unit tests: manager/jail's uid range and per-VM uid records (HOME/.jail),
 * in a fresh store under build/test-tmp (run from the source tree). Entering
 * the jail itself needs root and a VM: tests/integration/jail.sh.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "manager/jail.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static struct store st;

static int setup(void **state)
{
	(void)state;
	mkdir("build", 0755);
	mkdir("build/test-tmp", 0755);
	snprintf(st.home, sizeof(st.home), "build/test-tmp/jail-unit.XXXXXX");
	assert_non_null(mkdtemp(st.home));
	unsetenv("NESTVM_JAIL_UIDS");
	return 0;
}

static int teardown(void **state)
{
	char cmd[STORE_PATH_MAX + 16];

	(void)state;
	unsetenv("NESTVM_JAIL_UIDS");
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", st.home);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static void test_range(void **state)
{
	static const char *const bad[] = {"",     "abc",   "999-2000",   "3000-2000",
	                                  "2000", "2000-", "2000-3000x", "1000-4294967295"};
	unsigned int count;
	uid_t first;

	(void)state;
	assert_int_equal(jail_uid_range(&first, &count), 0);
	assert_int_equal(first, JAIL_UIDS_DEFAULT_FIRST);
	assert_int_equal(count, JAIL_UIDS_DEFAULT_COUNT);
	assert_true(jail_uid_trusted(JAIL_UIDS_DEFAULT_FIRST));
	assert_false(jail_uid_trusted(0));
	assert_false(jail_uid_trusted(JAIL_UIDS_DEFAULT_FIRST + JAIL_UIDS_DEFAULT_COUNT));
	setenv("NESTVM_JAIL_UIDS", "2000-2009", 1);
	assert_int_equal(jail_uid_range(&first, &count), 0);
	assert_int_equal(first, 2000);
	assert_int_equal(count, 10);
	assert_true(jail_uid_trusted(2009));
	assert_false(jail_uid_trusted(2010));
	for (unsigned int i = 1; i < sizeof(bad) / sizeof(bad[0]); i++) {
		setenv("NESTVM_JAIL_UIDS", bad[i], 1);
		assert_int_equal(jail_uid_range(&first, &count), -EINVAL);
		assert_false(jail_uid_trusted(2000));
	}
}

static void test_uid_records(void **state)
{
	struct mgr_err err;
	uid_t a, b, again;
	char target[32];
	ssize_t n;

	(void)state;
	setenv("NESTVM_JAIL_UIDS", "5000-5001", 1);
	assert_int_equal(jail_uid_get(&st, "a", &a, &err), 0);
	assert_int_equal(jail_uid_get(&st, "b", &b, &err), 0);
	assert_int_not_equal(a, b);
	assert_true(a >= 5000 && a <= 5001 && b >= 5000 && b <= 5001);
	/* Kept across starts. */
	assert_int_equal(jail_uid_get(&st, "a", &again, &err), 0);
	assert_int_equal(again, a);
	/* The range is full. */
	assert_int_equal(jail_uid_get(&st, "c", &again, &err), -ENOSPC);
	assert_non_null(strstr(err.msg, "NESTVM_JAIL_UIDS"));
	/* Removing a VM frees its uid for the next. */
	jail_uid_release(&st, "a");
	assert_int_equal(jail_uid_get(&st, "c", &again, &err), 0);
	assert_int_equal(again, a);
	/* Half a record (the uid taken by another VM): the VM gets another uid. */
	{
		char path[STORE_PATH_MAX + 32];

		jail_uid_release(&st, "b");
		snprintf(path, sizeof(path), "%s/%s/vm-d", st.home, JAIL_DIR);
		snprintf(target, sizeof(target), "%u", (unsigned int)a); /* c's */
		assert_int_equal(symlink(target, path), 0);
		assert_int_equal(jail_uid_get(&st, "d", &again, &err), 0);
		assert_int_equal(again, b);
		n = readlink(path, target, sizeof(target) - 1);
		assert_true(n > 0);
		target[n] = 0;
		assert_int_equal(strtoul(target, NULL, 10), b);
	}
}

/*
 * A name longer than its uid's digits keeps its uid (the check once read the
 * digits' end after the owner's name overwrote it), and a switch's records
 * are its own: a switch and a VM of the same name get two uids, and freeing
 * one leaves the other's.
 */
static void test_long_names_and_switches(void **state)
{
	struct mgr_err err;
	uid_t vm, again, sw, sw_again;

	(void)state;
	setenv("NESTVM_JAIL_UIDS", "5000-5009", 1);
	assert_int_equal(jail_uid_get(&st, "a-long-vm-name", &vm, &err), 0);
	assert_int_equal(jail_uid_get(&st, "a-long-vm-name", &again, &err), 0);
	assert_int_equal(again, vm);
	assert_int_equal(jail_switch_uid_get(&st, "a-long-vm-name", &sw, &err), 0);
	assert_int_not_equal(sw, vm);
	assert_int_equal(jail_switch_uid_get(&st, "a-long-vm-name", &sw_again, &err), 0);
	assert_int_equal(sw_again, sw);
	jail_uid_release(&st, "a-long-vm-name");
	assert_int_equal(jail_switch_uid_get(&st, "a-long-vm-name", &sw_again, &err), 0);
	assert_int_equal(sw_again, sw);
	jail_switch_uid_release(&st, "a-long-vm-name");
	/* Both free: the next VM takes the lowest. */
	assert_int_equal(jail_uid_get(&st, "next", &again, &err), 0);
	assert_int_equal(again, 5000);
}

/* HOME/.jail must be the store owner's alone. */
static void test_records_dir_checked(void **state)
{
	char path[STORE_PATH_MAX + 32];
	struct mgr_err err;
	uid_t u;

	(void)state;
	snprintf(path, sizeof(path), "%s/%s", st.home, JAIL_DIR);
	assert_int_equal(mkdir(path, 0700), 0);
	assert_int_equal(chmod(path, 0777), 0);
	assert_int_equal(jail_uid_get(&st, "a", &u, &err), -EPERM);
	assert_non_null(strstr(err.msg, "remove it"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_range, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_uid_records, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_long_names_and_switches, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_records_dir_checked, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
