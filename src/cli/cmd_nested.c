/* SPDX-License-Identifier: MIT */
/*
 * `nestvm nested ...`: readiness of this host for nested virtualization
 * (status). The per-VM `nested enable` comes with the VM manager.
 */
#include "arch/x86/nested_host.h"
#include "cli/cli.h"
#include "core/exit_status.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char nested_usage[] =
	"usage: nestvm nested status [--json] [--kvm PATH]\n"
	"\n"
	"Check whether this host can run VMs that run their own VMs: CPU support for\n"
	"VT-x/AMD-V and EPT/NPT, /dev/kvm, the KVM module and its nested parameter,\n"
	"what KVM offers guests, KVM_CAP_NESTED_STATE, free memory, and whether this\n"
	"host is itself a VM. One line per check with a fix for each failure.\n"
	"Exit status 0 if nesting works here, 1 if not.\n";

static const char *const nested_result_names[] = {
	[NESTED_CHECK_PASS] = "pass",
	[NESTED_CHECK_FAIL] = "fail",
	[NESTED_CHECK_INFO] = "info",
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

int cmd_nested(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "status"))
		return nested_status(argc - 1, argv + 1);
	if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		fputs(nested_usage, stdout);
		return 0;
	}
	fprintf(stderr, "%s", nested_usage);
	return NESTVM_EXIT_USAGE;
}
