/* SPDX-License-Identifier: MIT */
/*
 * `nestvm nested ...`: readiness of this host for nested virtualization
 * (status), and of one VM with its host (enable, Hyper-V's Enable-NestedVm).
 */
#include "arch/x86/nested_host.h"
#include "cli/cli.h"
#include "cli/cli_vm.h"
#include "core/exit_status.h"
#include "core/vm_limits.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char nested_usage[] =
	"usage: nestvm nested status [--json] [--kvm PATH]\n"
	"       nestvm nested enable NAME [--yes] [--kvm PATH]\n"
	"\n"
	"status:\n"
	"Check whether this host can run VMs that run their own VMs: CPU support for\n"
	"VT-x/AMD-V and EPT/NPT, /dev/kvm, the KVM module and its nested parameter,\n"
	"what KVM offers guests, KVM_CAP_NESTED_STATE, free memory, and whether this\n"
	"host is itself a VM. One line per check with a fix for each failure.\n"
	"Exit status 0 if nesting works here, 1 if not.\n"
	"\n"
	"enable: check whether VM NAME can run its own VMs: nesting exposed to it, at\n"
	"least 2 vCPUs, at least 1 GiB of memory, and this host able to nest. Prints\n"
	"what is wrong. With --yes, fixes what it can on a VM that is off (nesting on,\n"
	"2 vCPUs, 1 GiB); refuses on a running VM. Exit status 0 if the VM and the\n"
	"host are ready, 1 if not.\n";

static const char *const nested_result_names[] = {
	[NESTED_CHECK_PASS] = "pass",
	[NESTED_CHECK_FAIL] = "fail",
	[NESTED_CHECK_INFO] = "info",
	[NESTED_CHECK_WARN] = "warn",
};

static void nested_print_json(const struct nested_host_report *r)
{
	json_t *root = json_object(), *checks = json_array();
	char *text;

	for (unsigned int i = 0; i < r->nr_checks; i++) {
		const struct nested_check *c = &r->checks[i];
		json_t *o = json_pack("{s:s, s:s, s:s}", "name", c->name, "result",
				      nested_result_names[c->result], "detail", c->detail);

		if (c->hint[0])
			json_object_set_new(o, "fix", json_string(c->hint));
		json_array_append_new(checks, o);
	}
	json_object_set_new(root, "nesting_available", json_boolean(r->can_nest));
	json_object_set_new(root, "checks", checks);
	text = json_dumps(root, JSON_INDENT(2));
	if (text)
		puts(text);
	free(text);
	json_decref(root);
}

static void nested_print_text(const struct nested_host_report *r)
{
	printf("nested virtualization on this host: %s\n",
	       r->can_nest ? "available" : "NOT available");
	for (unsigned int i = 0; i < r->nr_checks; i++) {
		const struct nested_check *c = &r->checks[i];
		const char *tag = c->result == NESTED_CHECK_PASS   ? "PASS"
				  : c->result == NESTED_CHECK_FAIL ? "FAIL"
				  : c->result == NESTED_CHECK_WARN ? "WARN"
								   : "INFO";

		printf("  [%s] %-13s %s\n", tag, c->name, c->detail);
		if (c->hint[0])
			printf("         %-13s fix: %s\n", "", c->hint);
	}
}

static int nested_status(int argc, char **argv)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'},
		{"kvm", required_argument, NULL, 'k'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *kvm_path = "/dev/kvm";
	struct nested_host_facts facts;
	struct nested_host_report report;
	int opt, json = 0;

	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'j':
			json = 1;
			break;
		case 'k':
			kvm_path = optarg;
			break;
		case 'h':
			fputs(nested_usage, stdout);
			return 0;
		default:
			fprintf(stderr, "nestvm nested status: unknown option '%s'; see --help\n",
				argv[optind - 1]);
			return NESTVM_EXIT_USAGE;
		}
	}
	nested_host_gather(&facts, "", kvm_path);
	nested_host_evaluate(&facts, &report);
	if (json)
		nested_print_json(&report);
	else
		nested_print_text(&report);
	return report.can_nest ? 0 : 1;
}

/* One line of `nested enable`'s VM report, in nested status's layout. */
static void nested_print_vm_check(const char *name, bool pass, const char *detail,
				  const char *fix)
{
	printf("  [%s] %-13s %s\n", pass ? "PASS" : "FAIL", name, detail);
	if (!pass && fix[0])
		printf("         %-13s fix: %s\n", "", fix);
}

/* The VM's side of nesting; returns the number of failing checks. */
static int nested_check_vm(const struct vm_def *def, const char *state, uint64_t host_mib)
{
	char detail[160], fix[160];
	int fails = 0;

	printf("VM '%s' (%s):\n", def->name, state);
	snprintf(fix, sizeof(fix), "nestvm set %s --nested on", def->name);
	nested_print_vm_check("nested", def->nested,
			      def->nested ? "on: VT-x/AMD-V exposed to the guest"
					  : "off: the guest sees neither VT-x nor AMD-V",
			      fix);
	fails += !def->nested;
	snprintf(detail, sizeof(detail), "%u vCPU%s%s", def->cpus, def->cpus == 1 ? "" : "s",
		 def->cpus < CLI_VM_NESTED_MIN_CPUS
			 ? "; a guest that runs its own VMs needs at least 2"
			 : "");
	snprintf(fix, sizeof(fix), "nestvm set %s --cpus %d", def->name, CLI_VM_NESTED_MIN_CPUS);
	nested_print_vm_check("cpus", def->cpus >= CLI_VM_NESTED_MIN_CPUS, detail, fix);
	fails += def->cpus < CLI_VM_NESTED_MIN_CPUS;
	snprintf(detail, sizeof(detail), "%llu MiB%s", (unsigned long long)def->memory_mib,
		 def->memory_mib < CLI_VM_NESTED_MIN_MEMORY_MIB
			 ? "; at least 1024 MiB for the guest and its own VMs"
			 : "");
	snprintf(fix, sizeof(fix), "nestvm set %s --memory %dM", def->name,
		 CLI_VM_NESTED_MIN_MEMORY_MIB);
	nested_print_vm_check("memory", def->memory_mib >= CLI_VM_NESTED_MIN_MEMORY_MIB, detail,
			      fix);
	fails += def->memory_mib < CLI_VM_NESTED_MIN_MEMORY_MIB;
	if (host_mib && def->memory_mib > host_mib) {
		snprintf(detail, sizeof(detail), "%llu MiB is more than this host's %llu MiB",
			 (unsigned long long)def->memory_mib, (unsigned long long)host_mib);
		nested_print_vm_check("host-memory", false, detail, "give the VM less memory");
		fails++;
	}
	return fails;
}

/* --yes: nesting on, 2 vCPUs, 1 GiB, on a VM that is off. */
static int nested_fix_vm(const struct store *st, const char *name)
{
	struct vm_def def;
	struct mgr_err err;
	uint64_t host_mib = vm_limits_host_memory_mib();
	int def_fd, run_fd, r = NESTVM_EXIT_ERROR;
	bool changed = false;

	def_fd = store_lock_acquire(st, name, STORE_LOCK_DEF, 5000, &err);
	if (def_fd < 0)
		return cli_vm_error("nested enable", "%s", err.msg);
	run_fd = cli_vm_lock_off("nested enable", st, name, "nesting can be enabled");
	if (run_fd < 0)
		goto out;
	if (store_load(st, name, &def, &err) < 0) {
		cli_vm_error("nested enable", "%s", err.msg);
		goto out;
	}
	printf("fixing VM '%s':", name);
	if (!def.nested) {
		def.nested = true;
		changed = true;
		printf(" nested off -> on;");
	}
	if (def.cpus < CLI_VM_NESTED_MIN_CPUS) {
		printf(" cpus %u -> %d;", def.cpus, CLI_VM_NESTED_MIN_CPUS);
		def.cpus = CLI_VM_NESTED_MIN_CPUS;
		changed = true;
	}
	if (def.memory_mib < CLI_VM_NESTED_MIN_MEMORY_MIB &&
	    (!host_mib || host_mib >= CLI_VM_NESTED_MIN_MEMORY_MIB)) {
		printf(" memory %llu -> %d MiB;", (unsigned long long)def.memory_mib,
		       CLI_VM_NESTED_MIN_MEMORY_MIB);
		def.memory_mib = CLI_VM_NESTED_MIN_MEMORY_MIB;
		changed = true;
	}
	printf("%s\n", changed ? "" : " nothing to change");
	if (changed && store_save(st, &def, &err) < 0)
		cli_vm_error("nested enable", "%s", err.msg);
	else
		r = 0;
	vm_def_clear(&def);
out:
	store_lock_release(run_fd);
	store_lock_release(def_fd);
	return r;
}

static int nested_enable(int argc, char **argv)
{
	static const struct option opts[] = {
		{"yes", no_argument, NULL, 'y'},
		{"kvm", required_argument, NULL, 'k'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *kvm_path = "/dev/kvm", *name = NULL;
	struct nested_host_facts facts;
	struct nested_host_report report;
	struct vm_status vs;
	struct mgr_err err;
	struct vm_def def;
	struct store st;
	int opt, yes = 0, r, fails;

	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "yh", opts, NULL)) != -1) {
		switch (opt) {
		case 'y':
			yes = 1;
			break;
		case 'k':
			kvm_path = optarg;
			break;
		case 'h':
			fputs(nested_usage, stdout);
			return 0;
		default:
			return cli_vm_usage("nested enable", "unknown option '%s'",
					    argv[optind - 1]);
		}
	}
	r = cli_vm_name_arg("nested enable", argc, argv, &name);
	if (r < 0)
		r = cli_vm_open_store("nested enable", &st);
	if (r >= 0)
		return r;
	if (store_load(&st, name, &def, &err) < 0)
		return cli_vm_error("nested enable", "%s", err.msg);
	if (client_vm_status(&st, name, &vs, &err) < 0) {
		vm_def_clear(&def);
		return cli_vm_error("nested enable", "%s", err.msg);
	}
	fails = nested_check_vm(&def, api_state_name(vs.state), vm_limits_host_memory_mib());
	if (vs.live && vs.hv_known)
		printf("  [INFO] %-13s %s\n", "guest-hv",
		       vs.hv_active ? "the guest is running a hypervisor now"
				    : "the guest is not running a hypervisor now");
	nested_host_gather(&facts, "", kvm_path);
	nested_host_evaluate(&facts, &report);
	nested_print_text(&report);
	vm_def_clear(&def);
	r = 0;
	if (fails && yes && cli_vm_is_up(vs.state))
		r = cli_vm_error("nested enable",
				 "VM '%s' is %s: its settings can be fixed only while it is off "
				 "(nestvm stop %s)",
				 name, api_state_name(vs.state), name);
	else if (fails && yes)
		r = nested_fix_vm(&st, name);
	else if (fails)
		printf("run 'nestvm nested enable %s --yes' to fix the VM's settings%s\n", name,
		       cli_vm_is_up(vs.state) ? " once it is off" : "");
	client_vm_status_clear(&vs);
	if (r)
		return r;
	if (!report.can_nest)
		printf("this host cannot run nested hypervisors: the VM %s, but its guest will "
		       "not get VT-x/AMD-V here\n",
		       fails && !yes ? "needs the fixes above" : "is set up");
	return (fails && !yes) || !report.can_nest ? 1 : 0;
}

int cmd_nested(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "status"))
		return nested_status(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "enable"))
		return nested_enable(argc - 1, argv + 1);
	if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		fputs(nested_usage, stdout);
		return 0;
	}
	fprintf(stderr, "%s", nested_usage);
	return NESTVM_EXIT_USAGE;
}
