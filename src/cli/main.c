/* SPDX-License-Identifier: MIT */
/* nestvm: the command table and dispatch. */
#include "cli/cli.h"
#include "core/exit_status.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

#define NESTVM_VERSION "0.1.0"

static int cmd_version(int argc, char **argv);
static int cmd_help(int argc, char **argv);

static const struct cli_command cli_commands[] = {
	{"run", "run one VM in the foreground until its guest powers off", cmd_run},
	{"new", "define a VM (kernel, vCPUs, memory, nesting, disks, NICs)", cmd_new},
	{"list", "list the VMs with their state and whether a guest runs a hypervisor", cmd_list},
	{"show", "show a VM's state, settings and files", cmd_show},
	{"set", "change a VM's settings (vCPUs, memory, nesting only while off)", cmd_set},
	{"start", "start a VM in a detached monitor", cmd_start},
	{"stop", "press a VM's power button and wait; --force turns it off", cmd_stop},
	{"kill", "turn a VM off at once", cmd_kill},
	{"pause", "pause a running VM's vCPUs", cmd_pause},
	{"resume", "resume a paused VM", cmd_resume},
	{"save", "save a running VM's state to disk and stop it; start resumes it", cmd_save},
	{"checkpoint", "take, list, restore or remove a VM's checkpoints", cmd_checkpoint},
	{"migrate", "move a running VM, live, to another nestvm (receive there)", cmd_migrate},
	{"receive", "wait for a VM migrating here, and run it", cmd_receive},
	{"console", "attach to a running VM's serial console (Ctrl-] detaches)", cmd_console},
	{"exec", "run a command in a running VM through its agent (vsock, no network)", cmd_exec},
	{"cp", "copy a file into or out of a running VM through its agent", cmd_cp},
	{"remove", "delete a VM that is off", cmd_remove},
	{"switch", "virtual switches: new, list, show, start, stop, remove", cmd_switch},
	{"connect", "put a VM's network adapter on a switch, running or off", cmd_connect},
	{"disconnect", "take a VM's network adapter off its switch", cmd_disconnect},
	{"nested", "nested virtualization: 'nested status' checks this host, "
		   "'nested enable NAME' a VM",
	 cmd_nested},
	{"version", "print nestvm's version", cmd_version},
	{"help", "list the commands", cmd_help},
};

#define NR_COMMANDS (sizeof(cli_commands) / sizeof(cli_commands[0]))

/* Internal commands, not listed by `nestvm help`. */
static const struct cli_command cli_hidden_commands[] = {
	{"monitor", "the monitor process 'start' spawns", cmd_monitor},
	{"api", "send raw control-protocol requests to a VM's monitor", cmd_api},
	{"agent-relay", "run by a guest's agent: carry a connection on to a VM's agent",
	 cmd_agent_relay},
};

#define NR_HIDDEN_COMMANDS (sizeof(cli_hidden_commands) / sizeof(cli_hidden_commands[0]))

static int cmd_version(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	printf("nestvm %s\n", NESTVM_VERSION);
	return 0;
}

static int cmd_help(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	printf("usage: nestvm COMMAND [options]   (nestvm COMMAND --help for details)\n\n"
	       "commands:\n");
	for (unsigned int i = 0; i < NR_COMMANDS; i++)
		printf("  %-10s %s\n", cli_commands[i].name, cli_commands[i].summary);
	return 0;
}

int main(int argc, char **argv)
{
	/* A console reader that went away must not kill the VM: the UART sees EPIPE. */
	signal(SIGPIPE, SIG_IGN);
	if (argc < 2) {
		cmd_help(0, NULL);
		return NESTVM_EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))
		return cmd_help(0, NULL);
	if (!strcmp(argv[1], "--version"))
		return cmd_version(0, NULL);
	for (unsigned int i = 0; i < NR_COMMANDS; i++) {
		if (!strcmp(argv[1], cli_commands[i].name))
			return cli_commands[i].fn(argc - 1, argv + 1);
	}
	for (unsigned int i = 0; i < NR_HIDDEN_COMMANDS; i++) {
		if (!strcmp(argv[1], cli_hidden_commands[i].name))
			return cli_hidden_commands[i].fn(argc - 1, argv + 1);
	}
	fprintf(stderr, "nestvm: unknown command '%s'; try 'nestvm help'\n", argv[1]);
	return NESTVM_EXIT_USAGE;
}
