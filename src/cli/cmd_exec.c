/* SPDX-License-Identifier: MIT */
/*
 * `nestvm exec` and `nestvm cp`: commands and files into a guest through its
 * agent over vsock, without a network (Hyper-V's PowerShell Direct), and
 * through the levels: NAME/NAME2 reaches VM NAME2 run by the nestvm inside
 * VM NAME. The hidden `nestvm agent-relay NAME` is what a guest's agent runs
 * for that (docs/agent.md). The sessions themselves are src/agent/host*.c.
 */
#include "agent/host.h"
#include "cli/cli.h"
#include "core/clock.h"
#include "core/exit_status.h"
#include "core/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char exec_usage[] =
    "usage: nestvm exec [options] NAME[/NAME...] [--] COMMAND [ARG...]\n"
    "       nestvm exec [options] --vsock-socket PATH [NAME[/NAME...] --] COMMAND [ARG...]\n"
    "\n"
    "Run COMMAND in a running VM through its agent (nestvm-agent on vsock), without\n"
    "a network; L1/L2 runs it in VM L2 of the nestvm inside VM L1. COMMAND is run\n"
    "as given (no shell unless it is one). stdin goes to it, its stdout and stderr\n"
    "come back apart; Ctrl-C (SIGINT), SIGTERM and SIGQUIT are passed on; a hangup\n"
    "ends it. The VM needs a vsock device (nestvm new/set --vsock CID).\n"
    "\n"
    "  -t, --tty            run on a pseudo-terminal (interactive programs); a local\n"
    "                       terminal is raw meanwhile, so Ctrl-C reaches the command\n"
    "  -e, --env KEY=VALUE  set a variable (KEY alone: its value here); repeatable\n"
    "  -u, --user USER      a user name or UID[:GID] (default: the agent's, root)\n"
    "  -w, --cwd DIR        working directory (default: the user's home)\n"
    "      --timeout S      kill the command after S seconds (exit status 124)\n"
    "      --wait S         keep trying S seconds while the agent does not answer yet\n"
    "      --port N         the agent's vsock port (default 1000)\n"
    "      --vsock-socket PATH  the VM's vsock socket: a `nestvm run --vsock\n"
    "                       CID,socket=PATH` VM; NAME/... are then VMs inside it\n"
    "      --stats          at the end, one line on stderr: time to connect, to the\n"
    "                       first output byte, bytes each way and the rate\n"
    "\n"
    "Exit status: the command's; 128+N if a signal N ended it; 124 timed out; 126\n"
    "it could not run, 127 not found; 255 the agent could not be reached or was\n"
    "lost; 2 bad usage.\n";

static const char cp_usage[] =
    "usage: nestvm cp [options] NAME[/NAME...]:PATH LOCAL\n"
    "       nestvm cp [options] LOCAL NAME[/NAME...]:PATH\n"
    "\n"
    "Copy a regular file out of or into a running VM through its agent. When the\n"
    "target is a directory the file keeps its name. The new file replaces the\n"
    "old one only once complete (a temporary file renamed). An argument is in a\n"
    "VM when it has a ':' after a VM name; write ./a:b for a local file 'a:b'.\n"
    "With --vsock-socket the VM itself is written ':PATH'.\n"
    "\n"
    "      --wait S, --port N, --vsock-socket PATH   as for nestvm exec\n"
    "\n"
    "Exit status: 0 copied, 1 failed (the message says why), 2 bad usage.\n";

enum {
	OPT_TIMEOUT = 0x100,
	OPT_WAIT,
	OPT_PORT,
	OPT_VSOCK_SOCKET,
	OPT_AGENT_SOCKET,
	OPT_STATS,
};

static const struct option exec_opts[] = {
    {"tty", no_argument, NULL, 't'},
    {"env", required_argument, NULL, 'e'},
    {"user", required_argument, NULL, 'u'},
    {"cwd", required_argument, NULL, 'w'},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"wait", required_argument, NULL, OPT_WAIT},
    {"port", required_argument, NULL, OPT_PORT},
    {"vsock-socket", required_argument, NULL, OPT_VSOCK_SOCKET},
    {"agent-socket", required_argument, NULL, OPT_AGENT_SOCKET}, /* tests: nestvm-agent --unix */
    {"stats", no_argument, NULL, OPT_STATS},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static int exec_usage_error(const char *cmd, const char *fmt, const char *arg)
{
	fprintf(stderr, "nestvm %s: ", cmd);
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "; see --help\n");
	return NESTVM_EXIT_USAGE;
}

/* The options exec and cp share; 0, 1 if not one of them, or an exit status. */
static int exec_common_opt(const char *cmd, int opt, struct agent_target *t)
{
	unsigned long v;

	switch (opt) {
	case OPT_WAIT:
		if (cli_parse_uint(optarg, 0, 86400, &v) < 0)
			return exec_usage_error(cmd, "--wait '%s': seconds from 0 to 86400",
			                        optarg);
		t->wait_s = (unsigned int)v;
		return 0;
	case OPT_PORT:
		if (cli_parse_uint(optarg, 1, 0xfffffffeUL, &v) < 0)
			return exec_usage_error(cmd, "--port '%s': a vsock port", optarg);
		t->port = (uint32_t)v;
		return 0;
	case OPT_VSOCK_SOCKET:
		t->vsock_socket = optarg;
		return 0;
	case OPT_AGENT_SOCKET:
		t->agent_socket = optarg;
		return 0;
	default:
		return 1;
	}
}

/* --env KEY=VALUE, or KEY for its value here. Every entry is malloc'd (exec_env_free). */
static int exec_env_opt(struct agent_exec *e, const char *arg)
{
	const char *v = getenv(arg);
	char *s;

	if (!arg[0] || arg[0] == '=')
		return exec_usage_error("exec", "--env '%s': KEY=VALUE or KEY", arg);
	if (e->envc == AGENT_MAX_ENV)
		return exec_usage_error("exec", "--env '%s': too many variables", arg);
	if (!strchr(arg, '=') && !v)
		return -1; /* not set here: not set there */
	if (strchr(arg, '=') ? !(s = strdup(arg)) : asprintf(&s, "%s=%s", arg, v) < 0)
		return NESTVM_EXIT_ERROR;
	e->envp[e->envc++] = s;
	return -1;
}

static void exec_env_free(struct agent_exec *e)
{
	for (unsigned int i = 0; i < e->envc; i++)
		free((char *)e->envp[i]);
}

static int exec_parse_opts(int argc, char **argv, struct agent_exec *e, struct agent_target *t,
                           bool *stats)
{
	unsigned long v;
	int opt, r;

	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "+te:u:w:h", exec_opts, NULL)) != -1) {
		switch (opt) {
		case 't':
			e->pty = true;
			break;
		case 'e':
			r = exec_env_opt(e, optarg);
			if (r >= 0)
				return r;
			break;
		case 'u':
			e->user = optarg;
			break;
		case 'w':
			e->cwd = optarg;
			break;
		case OPT_TIMEOUT:
			if (cli_parse_uint(optarg, 1, 0xffffffffUL, &v) < 0)
				return exec_usage_error(
				    "exec", "--timeout '%s': seconds, at least 1", optarg);
			e->timeout_s = (uint32_t)v;
			break;
		case OPT_STATS:
			*stats = true;
			break;
		case 'h':
			fputs(exec_usage, stdout);
			return 0;
		default:
			r = exec_common_opt("exec", opt, t);
			if (r == 1)
				return exec_usage_error("exec", "unknown option '%s'",
				                        argv[optind - 1]);
			if (r)
				return r;
		}
	}
	return -1;
}

/*
 * The target and the command after the options. Without a socket option the
 * first word is the target; with one, a target must be followed by "--".
 */
static int exec_parse_words(int argc, char **argv, struct agent_exec *e, struct agent_target *t)
{
	bool socket = t->agent_socket || t->vsock_socket;
	int i = optind;

	if (socket && i > 1 && !strcmp(argv[i - 1], "--")) {
		/* getopt took the "--": the rest is the command. */
	} else if (i < argc && (!socket || (i + 1 < argc && !strcmp(argv[i + 1], "--")))) {
		t->vms = argv[i++];
		if (i < argc && !strcmp(argv[i], "--"))
			i++;
	}
	if (!socket && !t->vms)
		return exec_usage_error("exec", "%s", "no VM named");
	if (i >= argc)
		return exec_usage_error("exec", "%s", "no command given");
	if (argc - i > AGENT_MAX_ARGS)
		return exec_usage_error("exec", "%s", "too many arguments");
	for (; i < argc; i++)
		e->argv[e->argc++] = argv[i];
	e->argv[e->argc] = NULL;
	e->envp[e->envc] = NULL;
	if (!e->argv[0][0])
		return exec_usage_error("exec", "%s", "empty command");
	return -1;
}

/* --stats: one line about the session, for measurements. */
static void exec_print_stats(const struct agent_host *h, int64_t t0, int64_t t_open)
{
	int64_t t_end = mono_ms(), ms = t_end - t0;
	uint64_t bytes = h->bytes_in + h->bytes_out;

	fprintf(stderr,
	        "nestvm exec: stats connect_ms=%lld first_byte_ms=%lld total_ms=%lld "
	        "bytes_in=%llu bytes_out=%llu MBps=%.2f\n",
	        (long long)(t_open - t0),
	        h->first_out_ms ? (long long)(h->first_out_ms - t0) : -1LL, (long long)ms,
	        (unsigned long long)h->bytes_in, (unsigned long long)h->bytes_out,
	        ms > 0 ? (double)bytes / 1e3 / (double)ms : 0.0);
}

int cmd_exec(int argc, char **argv)
{
	struct agent_target t = {.port = AGENT_VSOCK_PORT};
	struct agent_exec *e = calloc(1, sizeof(*e));
	int64_t t0 = mono_ms(), t_open;
	struct agent_host h;
	struct mgr_err err;
	bool stats = false;
	int r;

	if (!e)
		return NESTVM_EXIT_ERROR;
	r = exec_parse_opts(argc, argv, e, &t, &stats);
	if (r < 0)
		r = exec_parse_words(argc, argv, e, &t);
	if (r >= 0)
		goto out;
	if (e->pty && getenv("TERM")) {
		/* The terminal type of ours, unless --env set one. */
		bool set = false;

		for (unsigned int i = 0; i < e->envc; i++)
			set |= !strncmp(e->envp[i], "TERM=", 5);
		if (!set && exec_env_opt(e, "TERM") >= 0) {
			r = NESTVM_EXIT_USAGE;
			goto out;
		}
	}
	if (agent_host_open(&t, &h, &err) < 0) {
		fprintf(stderr, "nestvm exec: %s\n", err.msg);
		r = AGENT_HOST_EXIT_ERROR;
		goto out;
	}
	t_open = mono_ms();
	r = agent_host_exec(&h, e, &err);
	if (stats)
		exec_print_stats(&h, t0, t_open);
	if (r < 0 || err.msg[0])
		fprintf(stderr, "%snestvm exec: %s\n", e->pty && isatty(STDERR_FILENO) ? "\r" : "",
		        err.msg);
	if (r < 0)
		r = AGENT_HOST_EXIT_ERROR;
	agent_host_close(&h);
out:
	exec_env_free(e);
	free(e);
	return r;
}

/* ------------------------------------------------------------------ cp */

/* Is @arg "NAME[/NAME...]:PATH" (or ":PATH" with @socket)? Then split it. */
static bool cp_remote(char *arg, bool socket, char **vms, char **path)
{
	char *colon = strchr(arg, ':');
	size_t n;

	if (!colon || arg[0] == '/' || arg[0] == '.')
		return false;
	n = (size_t)(colon - arg);
	if ((!n && !socket) || strspn(arg, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	                                   "0123456789._-/") < n)
		return false;
	*colon = '\0';
	*vms = arg;
	*path = colon + 1;
	return true;
}

static const struct option cp_opts[] = {
    {"wait", required_argument, NULL, OPT_WAIT},
    {"port", required_argument, NULL, OPT_PORT},
    {"vsock-socket", required_argument, NULL, OPT_VSOCK_SOCKET},
    {"agent-socket", required_argument, NULL, OPT_AGENT_SOCKET},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* LOCAL to the guest: a regular file only (fs_open_input), its permission bits kept. */
static int cp_put(struct agent_host *h, const char *local, const char *remote, struct mgr_err *err)
{
	char lb[4096];
	struct stat st;
	int fd, r;

	fd = fs_open_input(local, O_RDONLY | O_CLOEXEC, &st);
	if (fd >= 0 && !S_ISREG(st.st_mode)) {
		close(fd);
		fd = -EINVAL;
	}
	if (fd < 0)
		return mgr_err_set(err, fd, "'%s': %s", local,
		                   fd == -EINVAL ? "not a regular file" : strerror(-fd));
	snprintf(lb, sizeof(lb), "%s", local);
	r = agent_host_put(h, fd, st.st_mode & 0777, (uint64_t)st.st_size, remote, basename(lb),
	                   err);
	close(fd);
	return r;
}

int cmd_cp(int argc, char **argv)
{
	struct agent_target t = {.port = AGENT_VSOCK_PORT};
	char *src_vms, *src_path, *dst_vms, *dst_path;
	bool src_remote, dst_remote, socket;
	struct agent_host h;
	struct mgr_err err;
	int opt, r;

	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "h", cp_opts, NULL)) != -1) {
		if (opt == 'h') {
			fputs(cp_usage, stdout);
			return 0;
		}
		r = exec_common_opt("cp", opt, &t);
		if (r == 1)
			return exec_usage_error("cp", "unknown option '%s'", argv[optind - 1]);
		if (r)
			return r;
	}
	if (argc - optind != 2)
		return exec_usage_error("cp", "%s", "give a source and a destination");
	socket = t.agent_socket || t.vsock_socket;
	src_remote = cp_remote(argv[optind], socket, &src_vms, &src_path);
	dst_remote = cp_remote(argv[optind + 1], socket, &dst_vms, &dst_path);
	if (src_remote == dst_remote)
		return exec_usage_error(
		    "cp", "%s", "one of source and destination must be in a VM (NAME:PATH)");
	t.vms = src_remote ? src_vms : dst_vms;
	if ((src_remote ? src_path : dst_path)[0] == '\0')
		return exec_usage_error("cp", "%s", "empty path in the VM");
	if (agent_host_open(&t, &h, &err) < 0) {
		fprintf(stderr, "nestvm cp: %s\n", err.msg);
		return NESTVM_EXIT_ERROR;
	}
	if (src_remote)
		r = agent_host_get(&h, src_path, argv[optind + 1], &err);
	else
		r = cp_put(&h, argv[optind], dst_path, &err);
	agent_host_close(&h);
	if (r < 0) {
		fprintf(stderr, "nestvm cp: %s\n", err.msg);
		return NESTVM_EXIT_ERROR;
	}
	return 0;
}

/* -------------------------------------------------------------- relay */

static const char relay_usage[] =
    "usage: nestvm agent-relay [--port N] NAME\n"
    "\n"
    "Run by nestvm-agent inside a VM for a RELAY request (docs/agent.md), with\n"
    "the host's connection as stdin and stdout: carry it on to the agent of\n"
    "this nestvm's VM NAME.\n";

int cmd_agent_relay(int argc, char **argv)
{
	struct agent_target t = {.port = AGENT_VSOCK_PORT};
	int opt, r;

	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "h", cp_opts, NULL)) != -1) {
		if (opt == 'h') {
			fputs(relay_usage, stdout);
			return 0;
		}
		r = opt == OPT_PORT ? exec_common_opt("agent-relay", opt, &t) : 1;
		if (r == 1)
			return exec_usage_error("agent-relay", "unknown option '%s'",
			                        argv[optind - 1]);
		if (r)
			return r;
	}
	if (argc - optind != 1)
		return exec_usage_error("agent-relay", "%s", "give one VM name");
	return agent_host_relay(argv[optind], t.port, STDIN_FILENO, STDOUT_FILENO);
}
