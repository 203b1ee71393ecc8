/* SPDX-License-Identifier: MIT */
/*
 * The VM manager's power commands: `nestvm start`, `stop`, `kill`, `pause`,
 * `resume` (Hyper-V's Start-VM, Stop-VM, Stop-VM -TurnOff, Suspend-VM,
 * Resume-VM), and the hidden `nestvm monitor` that `start` spawns. Each is a
 * thin client of the monitor's control socket (docs/api.md).
 */
#include "cli/cli.h"
#include "cli/cli_vm.h"
#include "core/exit_status.h"
#include "manager/monitor.h"
#include "manager/store_snap.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define STOP_DEFAULT_TIMEOUT 60
#define STOP_GRACE_MS 2000       /* past the timeout, for the monitor to act on it */
#define STOP_EXTRA_WAIT_MS 15000 /* then, with --force: the monitor's own teardown */
#define KILL_WAIT_MS 15000
#define LOCK_FREE_WAIT_MS 5000
#define START_CONNECT_WAIT_MS 5000

static const char start_usage[] =
    "usage: nestvm start [--discard-saved] [--paused] [--jail on|off] NAME\n"
    "\n"
    "Start a VM that is off (or crashed): spawn its monitor, detached, and wait\n"
    "until the VM runs. A saved VM carries on from its saved state. The serial\n"
    "console is kept in console.log and reachable with 'nestvm console NAME';\n"
    "the monitor logs to monitor.log.\n"
    "\n"
    "  --discard-saved   delete the saved state first and boot afresh\n"
    "  --paused          build (or restore) the VM but keep it paused before its\n"
    "                    first instruction; 'nestvm resume' lets it run\n"
    "  --jail on|off     started as root, the monitor drops to the VM's own user in\n"
    "                    a mount namespace of its own (default on; off only for\n"
    "                    debugging, as NESTVM_JAIL=off)\n";

int cmd_start(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"discard-saved", no_argument, NULL, 'd'},
	    {"paused", no_argument, NULL, 'p'},
	    {"jail", required_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	bool discard = false, paused = false;
	int jail = -1;
	int opt;
	const char *name = NULL;
	struct store_runtime rt = {0};
	struct vm_status vs;
	struct vm_def def;
	struct mgr_err err;
	struct store st;
	pid_t pid;
	int r, fd;

	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (opt == 'h') {
			fputs(start_usage, stdout);
			return 0;
		}
		if (opt == 'd')
			discard = true;
		else if (opt == 'p')
			paused = true;
		else if (opt == 'j' && cli_parse_on_off(optarg, &jail) < 0)
			return cli_vm_usage("start", "--jail '%s': give on or off", optarg);
		else if (opt != 'j')
			return cli_vm_usage("start", "unknown option '%s'", argv[optind - 1]);
	}
	/* The monitor reads it (manager/jail.h), as it reads NESTVM_SANDBOX. */
	if (jail >= 0 && setenv("NESTVM_JAIL", jail ? "on" : "off", 1) < 0)
		return cli_vm_error("start", "cannot set NESTVM_JAIL: %s", strerror(errno));
	r = cli_vm_name_arg("start", argc, argv, &name);
	if (r < 0)
		r = cli_vm_open_store("start", &st);
	if (r >= 0)
		return r;
	/* A broken definition is reported here, naming the file and the field. */
	if (store_load(&st, name, &def, &err) < 0)
		return cli_vm_error("start", "%s", err.msg);
	vm_def_clear(&def);
	fd = store_lock_acquire(&st, name, STORE_LOCK_RUN, 0, &err);
	if (fd == -EBUSY) {
		if (client_vm_status(&st, name, &vs, &err) == 0 && cli_vm_is_up(vs.state)) {
			r = cli_vm_error("start", "VM '%s' is already %s", name,
			                 api_state_name(vs.state));
			client_vm_status_clear(&vs);
			return r;
		}
		client_vm_status_clear(&vs);
		fd = store_lock_acquire(&st, name, STORE_LOCK_RUN, 3000, &err);
	}
	if (fd < 0) {
		/* Lost a race with another `start`: say what it started. */
		if (fd == -EBUSY && client_vm_status(&st, name, &vs, &err) == 0 &&
		    cli_vm_is_up(vs.state)) {
			r = cli_vm_error("start", "VM '%s' is already %s", name,
			                 api_state_name(vs.state));
			client_vm_status_clear(&vs);
			return r;
		}
		return cli_vm_error("start", "%s", err.msg);
	}
	if (discard && store_saved_remove(&st, name, &err) < 0) {
		store_lock_release(fd);
		return cli_vm_error("start", "%s", err.msg);
	}
	/* "starting" from now on, for anyone who looks before the monitor runs. */
	rt.started = time(NULL);
	snprintf(rt.state, sizeof(rt.state), "starting");
	r = store_runtime_write(&st, name, &rt);
	if (r < 0) {
		store_lock_release(fd);
		return cli_vm_error("start", "cannot write VM '%s''s runtime record: %s", name,
		                    strerror(-r));
	}
	r = monitor_spawn(&st, name, fd, paused, &pid, &err);
	if (r < 0) {
		struct store_runtime now;

		/* A monitor that never got to run leaves our record behind: drop it. */
		if (store_runtime_read(&st, name, &now) == 0 && now.pid == 0)
			store_runtime_clear(&st, name);
		store_lock_release(fd);
		return cli_vm_error("start", "%s", err.msg);
	}
	store_lock_release(fd);
	printf("started VM '%s'%s (monitor pid %d); console: nestvm console %s\n", name,
	       paused ? ", paused" : "", (int)pid, name);
	return 0;
}

int cli_vm_connect(const char *cmd, const struct store *st, const char *name, struct client *c,
                   bool off_ok)
{
	struct vm_status vs;
	struct mgr_err err;
	int r;

	r = client_vm_status(st, name, &vs, &err);
	if (r < 0)
		return cli_vm_error(cmd, "%s", err.msg);
	if (!cli_vm_is_up(vs.state)) {
		client_vm_status_clear(&vs);
		if (off_ok) {
			printf("VM '%s' is already %s\n", name, api_state_name(vs.state));
			return 0;
		}
		return cli_vm_error(cmd, "VM '%s' is %s, not running", name,
		                    api_state_name(vs.state));
	}
	client_vm_status_clear(&vs);
	/* A `start` may not have got its monitor listening yet: give it a moment. */
	for (int waited = 0; client_connect(st, name, c, &err) < 0; waited += 50) {
		if (waited >= START_CONNECT_WAIT_MS ||
		    store_lock_held(st, name, STORE_LOCK_RUN) <= 0)
			return cli_vm_error(cmd, "%s", err.msg);
		usleep(50000);
	}
	return -1;
}

int cli_vm_report_off(const char *cmd, const struct store *st, const char *name)
{
	struct vm_status vs;
	struct mgr_err err;

	for (int waited = 0; waited < LOCK_FREE_WAIT_MS; waited += 20) {
		if (store_lock_held(st, name, STORE_LOCK_RUN) == 0)
			break;
		usleep(20000);
	}
	if (client_vm_status(st, name, &vs, &err) < 0)
		return cli_vm_error(cmd, "%s", err.msg);
	printf("VM '%s' is %s", name, api_state_name(vs.state));
	if (vs.have_exit)
		printf(": %s", vs.last_exit.reason);
	printf("\n");
	client_vm_status_clear(&vs);
	return 0;
}

static const char stop_usage[] =
    "usage: nestvm stop NAME [--timeout SECONDS] [--force]\n"
    "\n"
    "Press the VM's ACPI power button and wait until the guest powers off.\n"
    "\n"
    "  --timeout SECONDS   how long to wait (default 60; 0 waits forever, or with\n"
    "                      --force does not wait)\n"
    "  --force             turn the VM off if it is still up after the timeout, or\n"
    "                      at once if the guest does not listen for the power button\n"
    "\n"
    "Without --force, a guest that does not listen for the power button (no ACPI\n"
    "OS enabled it) or does not power off in time keeps running, and the exit\n"
    "status is 1. 'nestvm kill' turns a VM off at once.\n";

int cmd_stop(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"timeout", required_argument, NULL, 't'},
	    {"force", no_argument, NULL, 'f'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	unsigned long timeout = STOP_DEFAULT_TIMEOUT;
	const char *name = NULL, *button = "", *action = "";
	json_t *args, *res = NULL;
	struct mgr_err err;
	struct client c;
	struct store st;
	int opt, force = 0, r;

	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "fh", opts, NULL)) != -1) {
		switch (opt) {
		case 't':
			if (cli_parse_uint(optarg, 0, 86400, &timeout) < 0)
				return cli_vm_usage(
				    "stop", "--timeout '%s': give seconds, 0 to 86400", optarg);
			break;
		case 'f':
			force = 1;
			break;
		case 'h':
			fputs(stop_usage, stdout);
			return 0;
		default:
			return cli_vm_usage("stop", "unknown or incomplete option '%s'",
			                    argv[optind - 1]);
		}
	}
	r = cli_vm_name_arg("stop", argc, argv, &name);
	if (r < 0)
		r = cli_vm_open_store("stop", &st);
	if (r < 0)
		r = cli_vm_connect("stop", &st, name, &c, true);
	if (r >= 0)
		return r;
	args = json_pack("{s:i, s:b}", "timeout", (int)timeout, "force", force);
	if (client_call(&c, "stop", args, CLIENT_TIMEOUT_MS, &res, &err) < 0) {
		client_close(&c);
		return cli_vm_error("stop", "VM '%s': %s", name, err.msg);
	}
	json_unpack(res, "{s?s, s?s}", "power_button", &button, "action", &action);
	if (!strcmp(action, "none")) {
		r = cli_vm_error("stop",
		                 "VM '%s': the guest does not listen for the ACPI power button (no "
		                 "ACPI OS enabled it), so it keeps running; turn it off with "
		                 "'nestvm stop --force %s' or 'nestvm kill %s'",
		                 name, name, name);
		goto out;
	}
	if (!strcmp(action, "waiting"))
		printf("pressed the power button of VM '%s'; waiting %s%lus for the guest to power "
		       "off\n",
		       name, timeout ? "up to " : "", timeout);
	fflush(stdout);
	/* The monitor acts on the deadline itself: wait a little past it. */
	r = client_wait_closed(&c, timeout ? (int)timeout * 1000 + STOP_GRACE_MS : INT32_MAX);
	if (r < 0 && force)
		r = client_wait_closed(&c, STOP_EXTRA_WAIT_MS);
	if (r < 0 && !force) {
		r = cli_vm_error("stop",
		                 "VM '%s': the guest did not power off within %lus and keeps "
		                 "running; use --force or 'nestvm kill %s'",
		                 name, timeout, name);
		goto out;
	}
	if (r < 0) {
		r = cli_vm_error("stop", "VM '%s': the monitor did not end the VM", name);
		goto out;
	}
	r = cli_vm_report_off("stop", &st, name);
out:
	json_decref(res);
	client_close(&c);
	return r;
}

static const char kill_usage[] =
    "usage: nestvm kill NAME\n"
    "\n"
    "Turn a VM off at once, like pulling the plug (Stop-VM -TurnOff).\n";

int cmd_kill(int argc, char **argv)
{
	const char *name = NULL;
	struct mgr_err err;
	json_t *res = NULL;
	struct client c;
	struct store st;
	int r;

	r = cli_vm_parse(argc, argv, kill_usage, &name);
	if (r < 0)
		r = cli_vm_open_store("kill", &st);
	if (r < 0)
		r = cli_vm_connect("kill", &st, name, &c, true);
	if (r >= 0)
		return r;
	if (client_call(&c, "kill", NULL, CLIENT_TIMEOUT_MS, &res, &err) < 0)
		r = cli_vm_error("kill", "VM '%s': %s", name, err.msg);
	else if (client_wait_closed(&c, KILL_WAIT_MS) < 0)
		r = cli_vm_error("kill", "VM '%s': the monitor did not end the VM", name);
	else
		r = cli_vm_report_off("kill", &st, name);
	json_decref(res);
	client_close(&c);
	return r;
}

static int power_simple(int argc, char **argv, const char *usage, const char *cmd, const char *done)
{
	const char *name = NULL;
	struct mgr_err err;
	json_t *res = NULL;
	struct client c;
	struct store st;
	int r;

	r = cli_vm_parse(argc, argv, usage, &name);
	if (r < 0)
		r = cli_vm_open_store(cmd, &st);
	if (r < 0)
		r = cli_vm_connect(cmd, &st, name, &c, false);
	if (r >= 0)
		return r;
	if (client_call(&c, cmd, NULL, CLIENT_TIMEOUT_MS, &res, &err) < 0) {
		r = cli_vm_error(cmd, "VM '%s': %s", name, err.msg);
	} else {
		printf("VM '%s' is %s\n", name, done);
		r = 0;
	}
	json_decref(res);
	client_close(&c);
	return r;
}

static const char pause_usage[] =
    "usage: nestvm pause NAME\n"
    "\n"
    "Stop a running VM's vCPUs where they are (Suspend-VM); its memory and devices\n"
    "stay as they are. 'nestvm resume' lets it go on.\n";

int cmd_pause(int argc, char **argv)
{
	return power_simple(argc, argv, pause_usage, "pause", "paused");
}

static const char resume_usage[] = "usage: nestvm resume NAME\n"
                                   "\n"
                                   "Let a paused VM's vCPUs run again (Resume-VM).\n";

int cmd_resume(int argc, char **argv)
{
	return power_simple(argc, argv, resume_usage, "resume", "running");
}

static const char monitor_usage[] =
    "usage: nestvm monitor [--home DIR] [--lock-fd N] [--ready-fd N] [--paused]\n"
    "                      [--incoming-fd N --session-fd N [--incoming-from ADDR] [--created]] NAME\n"
    "\n"
    "Internal: the monitor process of VM NAME, which 'nestvm start' spawns\n"
    "detached ('nestvm receive' too, handing over an incoming migration).\n"
    "Run by hand it stays in the foreground (logging to stderr) until\n"
    "the VM ends, and its exit status is the VM's, as for 'nestvm run'.\n";

int cmd_monitor(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"home", required_argument, NULL, 'H'},
	    {"lock-fd", required_argument, NULL, 'l'},
	    {"ready-fd", required_argument, NULL, 'r'},
	    {"paused", no_argument, NULL, 'p'},
	    {"incoming-fd", required_argument, NULL, 'i'},
	    {"session-fd", required_argument, NULL, 's'},
	    {"incoming-from", required_argument, NULL, 'f'},
	    {"created", no_argument, NULL, 'c'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *home = NULL, *name = NULL;
	unsigned long lock_fd = ~0UL, ready_fd = ~0UL, in_fd = ~0UL, session_fd = ~0UL;
	struct monitor_incoming in = {.conn_fd = -1, .session_fd = -1};
	bool paused = false;
	struct mgr_err err;
	struct store st;
	int opt, r;

	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'H':
			home = optarg;
			break;
		case 'l':
			if (cli_parse_uint(optarg, 0, 65535, &lock_fd) < 0)
				return cli_vm_usage("monitor", "--lock-fd '%s'", optarg);
			break;
		case 'r':
			if (cli_parse_uint(optarg, 0, 65535, &ready_fd) < 0)
				return cli_vm_usage("monitor", "--ready-fd '%s'", optarg);
			break;
		case 'p':
			paused = true;
			break;
		case 'i':
			if (cli_parse_uint(optarg, 0, 65535, &in_fd) < 0)
				return cli_vm_usage("monitor", "--incoming-fd '%s'", optarg);
			break;
		case 's':
			if (cli_parse_uint(optarg, 0, 65535, &session_fd) < 0)
				return cli_vm_usage("monitor", "--session-fd '%s'", optarg);
			break;
		case 'f':
			in.from = optarg;
			break;
		case 'c':
			in.created = true;
			break;
		case 'h':
			fputs(monitor_usage, stdout);
			return 0;
		default:
			return cli_vm_usage("monitor", "unknown or incomplete option '%s'",
			                    argv[optind - 1]);
		}
	}
	r = cli_vm_name_arg("monitor", argc, argv, &name);
	if (r >= 0)
		return r;
	if (store_open_existing(&st, home, &err) < 0) {
		if (ready_fd != ~0UL)
			close((int)ready_fd);
		return cli_vm_error("monitor", "%s", err.msg);
	}
	if ((in_fd == ~0UL) != (session_fd == ~0UL))
		return cli_vm_usage("monitor", "--incoming-fd and --session-fd go together");
	in.conn_fd = (int)in_fd;
	in.session_fd = (int)session_fd;
	return monitor_run(&st, name, lock_fd == ~0UL ? -1 : (int)lock_fd,
	                   ready_fd == ~0UL ? -1 : (int)ready_fd, paused,
	                   in_fd == ~0UL ? NULL : &in);
}
