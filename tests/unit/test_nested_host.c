/* SPDX-License-Identifier: MIT */
/* Unit tests: the host readiness report for nested virtualization. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "arch/x86/nested_host.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct nested_check *find(const struct nested_host_report *r, const char *name)
{
	for (unsigned int i = 0; i < r->nr_checks; i++)
		if (!strcmp(r->checks[i].name, name))
			return &r->checks[i];
	fail_msg("no check named %s", name);
	return NULL;
}

/* An AMD host whose KVM nests: everything passes. */
static const struct nested_host_facts amd_ready = {
    .cpu_vendor = "AuthenticAMD",
    .cpu_model = "AMD EPYC",
    .cpu_svm = true,
    .cpu_npt = true,
    .kvm_present = true,
    .kvm_writable = true,
    .kvm_module = "kvm_amd",
    .kvm_nested_param = 1,
    .kvm_queried = true,
    .kvm_offers_svm = true,
    .nested_state_size = 4224,
    .mem_available = 8ULL << 30,
    .is_vm = false,
};

static void test_amd_ready(void **state)
{
	struct nested_host_report r;

	(void)state;
	nested_host_evaluate(&amd_ready, &r);
	assert_true(r.can_nest);
	for (unsigned int i = 0; i < r.nr_checks; i++)
		assert_int_not_equal(r.checks[i].result, NESTED_CHECK_FAIL);
	assert_non_null(strstr(find(&r, "slat")->detail, "NPT"));
	assert_non_null(strstr(find(&r, "kvm-cpuid")->detail, "SVM"));
}

/* This development machine: a VM whose KVM is kvm_pvm. */
static void test_pvm_host(void **state)
{
	struct nested_host_facts f = amd_ready;
	struct nested_host_report r;
	const struct nested_check *c;

	(void)state;
	f.cpu_svm = f.cpu_npt = false;
	strcpy(f.kvm_module, "kvm_pvm");
	f.kvm_nested_param = -1;
	f.kvm_offers_svm = false;
	f.nested_state_size = 0;
	f.is_vm = true;
	strcpy(f.hypervisor, "KVMKVMKVM");
	nested_host_evaluate(&f, &r);
	assert_false(r.can_nest);
	c = find(&r, "kvm-module");
	assert_int_equal(c->result, NESTED_CHECK_FAIL);
	assert_non_null(strstr(c->detail, "kvm_pvm"));
	assert_non_null(strstr(c->hint, "kvm_pvm"));
	assert_int_equal(find(&r, "nested-state")->result, NESTED_CHECK_FAIL);
	assert_int_equal(find(&r, "host-is-vm")->result, NESTED_CHECK_INFO);
	assert_non_null(strstr(find(&r, "host-is-vm")->detail, "PVM"));
	/* The CPU check tells a VM's owner to expose VT-x/AMD-V from outside. */
	assert_non_null(strstr(find(&r, "cpu")->hint, "ExposeVirtualizationExtensions"));
}

/* Intel with kvm_intel loaded nested=0 and too little memory. */
static void test_intel_nested_param_off(void **state)
{
	struct nested_host_facts f = {
	    .cpu_vendor = "GenuineIntel",
	    .cpu_vmx = true,
	    .cpu_ept = true,
	    .kvm_present = true,
	    .kvm_writable = true,
	    .kvm_module = "kvm_intel",
	    .kvm_nested_param = 0,
	    .kvm_queried = true,
	    .kvm_offers_vmx = false,
	    .nested_state_size = 8192,
	    .mem_available = 128ULL << 20, /* below NESTED_HOST_MIN_MEMORY */
	};
	struct nested_host_report r;
	const struct nested_check *c;

	(void)state;
	nested_host_evaluate(&f, &r);
	assert_false(r.can_nest);
	c = find(&r, "kvm-module");
	assert_int_equal(c->result, NESTED_CHECK_FAIL);
	assert_non_null(strstr(c->hint, "options kvm_intel nested=1"));
	assert_int_equal(find(&r, "slat")->result, NESTED_CHECK_PASS);
	assert_non_null(strstr(find(&r, "slat")->detail, "EPT"));
	assert_int_equal(find(&r, "memory")->result, NESTED_CHECK_FAIL);
	assert_int_equal(find(&r, "kvm-cpuid")->result, NESTED_CHECK_FAIL);
}

static void write_at(const char *root, const char *path, const char *text)
{
	char full[512], dir[512], *slash;
	FILE *fp;

	snprintf(full, sizeof(full), "%s%s", root, path);
	snprintf(dir, sizeof(dir), "%s", full);
	for (slash = dir + strlen(root) + 1; (slash = strchr(slash, '/')); slash++) {
		*slash = '\0';
		mkdir(dir, 0755);
		*slash = '/';
	}
	fp = fopen(full, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
}

/*
 * Transparent huge pages off (as Linux sets them on a host under 512 MiB, a
 * small L1): nesting works, so a warning with the fix, not a failure.
 */
static void test_thp_never_warns(void **state)
{
	struct nested_host_facts f = amd_ready;
	struct nested_host_report r;
	const struct nested_check *c;

	(void)state;
	strcpy(f.thp, "never");
	nested_host_evaluate(&f, &r);
	assert_true(r.can_nest);
	c = find(&r, "huge-pages");
	assert_int_equal(c->result, NESTED_CHECK_WARN);
	assert_non_null(strstr(c->detail, "never"));
	assert_non_null(strstr(c->hint, "madvise > /sys/kernel/mm/transparent_hugepage/enabled"));
	strcpy(f.thp, "madvise");
	nested_host_evaluate(&f, &r);
	c = find(&r, "huge-pages");
	assert_int_equal(c->result, NESTED_CHECK_PASS);
	assert_string_equal(c->hint, "");
}

/* gather() reads /proc and /sys under a fake root; no /dev/kvm there. */
static void test_gather_fake_root(void **state)
{
	char root[] = "/tmp/nestvm-test-nested-XXXXXX", cmd[600];
	struct nested_host_facts f;
	struct nested_host_report r;

	(void)state;
	assert_non_null(mkdtemp(root));
	write_at(root, "/proc/cpuinfo",
	         "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\n"
	         "flags\t\t: fpu vme svm npt nrip_save\n\n");
	write_at(root, "/proc/meminfo", "MemTotal: 4000000 kB\nMemAvailable: 2097152 kB\n");
	write_at(root, "/sys/module/kvm_amd/parameters/nested", "1\n");
	write_at(root, "/sys/kernel/mm/transparent_hugepage/enabled", "always madvise [never]\n");
	nested_host_gather(&f, root, "/dev/kvm");
	assert_string_equal(f.thp, "never");
	assert_string_equal(f.cpu_vendor, "AuthenticAMD");
	assert_string_equal(f.cpu_model, "AMD EPYC 7B13");
	assert_true(f.cpu_svm);
	assert_true(f.cpu_npt);
	assert_false(f.cpu_vmx);
	assert_string_equal(f.kvm_module, "kvm_amd");
	assert_int_equal(f.kvm_nested_param, 1);
	assert_false(f.kvm_present);
	assert_int_equal(f.mem_available, 2ULL << 30);
	nested_host_evaluate(&f, &r);
	assert_false(r.can_nest);
	assert_int_equal(find(&r, "kvm-device")->result, NESTED_CHECK_FAIL);
	assert_int_equal(find(&r, "kvm-module")->result, NESTED_CHECK_PASS);
	assert_int_equal(find(&r, "huge-pages")->result, NESTED_CHECK_WARN);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_amd_ready),
	    cmocka_unit_test(test_pvm_host),
	    cmocka_unit_test(test_intel_nested_param_off),
	    cmocka_unit_test(test_thp_never_warns),
	    cmocka_unit_test(test_gather_fake_root),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
