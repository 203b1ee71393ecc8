/* SPDX-License-Identifier: MIT */
/* `nestvm run`: one VM in the foreground. */
#include "arch/x86/acpi.h"
#include "cli/cli.h"
#include "cli/opts_virtio.h"
#include "core/exit_status.h"
#include "core/fsutil.h"
#include "core/log.h"
#include "core/sandbox.h"
#include "core/vm.h"
#include "core/vm_limits.h"
#include "manager/store.h"
#include "manager/store_snap.h"
#include "snapshot/migrate.h"
#include "snapshot/vm_snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

_Static_assert(VM_MAX_CPUS == ACPI_MAX_CPUS, "the vCPU limit is the MADT's");

static const char run_usage[] =
    "usage: nestvm run --kernel PATH [options]\n"
    "       nestvm run --restore DIR [--console WHERE] [--kvm PATH] [--sandbox on|off]\n"
    "       nestvm run --incoming tcp:HOST:PORT|unix:PATH --secret-file FILE [--console WHERE]\n"
    "                  [--kvm PATH] [--sandbox on|off]\n"
    "\n"
    "Boot a kernel (Linux bzImage, or an ELF vmlinux with a PVH entry) in a new VM\n"
    "and run it in the foreground until the guest powers off. The options that say\n"
    "what the VM is are those of 'nestvm new' and mean the same.\n"
    "\n"
    "  --kernel PATH        kernel image (required)\n" CLI_DEF_OPTIONS_HELP
    "                       (--vsock's default socket: $XDG_RUNTIME_DIR/nestvm/vsock-CID.sock,\n"
    "                       else .run/vsock-CID.sock in the VM store; a socket of this\n"
    "                       user only)\n"
    "  --restore DIR        carry on from the snapshot in DIR (a VM's saved/ or\n"
    "                       checkpoints/CP/ directory): the VM is the one it records\n"
    "  --incoming ADDR      wait on ADDR for a VM migrating here ('nestvm migrate NAME\n"
    "                       --to ADDR' on the source) and run it: the VM is the one\n"
    "                       that comes (tcp:HOST:PORT, or unix:PATH in a directory only\n"
    "                       you control)\n"
    "  --secret-file FILE   with --incoming: the secret both ends were given\n"
    "  --console WHERE      serial console: stdio (default), none, file:PATH\n"
    "  --kvm PATH           KVM device (default /dev/kvm)\n"
    "  --sandbox on|off     seccomp filters on the monitor's threads (default on; off\n"
    "                       only for debugging)\n"
    "  -v, --verbose        say what the monitor does; twice for debug output\n"
    "\n"
    "Exit status: 0 guest powered off, 1 error, 2 usage, 3 guest reset, 4 guest\n"
    "crashed (triple fault), 128+N killed by signal N; a value the guest writes to\n"
    "the debug-exit port 0xf4 is returned as is.\n";

static int run_usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, "nestvm run: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n");
	return NESTVM_EXIT_USAGE;
}

/*
 * The default host socket of --vsock CID: in $XDG_RUNTIME_DIR/nestvm, else in
 * .run in the VM store (NESTVM_HOME or its default, as `new` would use), both
 * directories only this user controls; never in /tmp, where anyone could take
 * the name first or listen on PATH_PORT. Returns 0 or -errno, having said why.
 */
static int run_default_vsock_path(uint32_t cid, char *buf, size_t len)
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	char dir[STORE_PATH_MAX];
	struct mgr_err err;
	struct store st;
	int n, r;

	if (xdg && xdg[0] == '/') {
		n = snprintf(dir, sizeof(dir), "%s/nestvm", xdg);
	} else {
		r = store_open(&st, NULL, &err);
		if (r < 0) {
			fprintf(stderr, "nestvm run: --vsock: %s; or give socket=PATH\n", err.msg);
			return r;
		}
		n = snprintf(dir, sizeof(dir), "%s/.run", st.home);
	}
	r = n < 0 || (size_t)n >= sizeof(dir) ? -ENAMETOOLONG : fs_private_dir(dir);
	if (r < 0) {
		fprintf(
		    stderr,
		    "nestvm run: --vsock: cannot use '%s' for its socket: %s; give socket=PATH\n",
		    dir, r == -EPERM ? "another user could write to it" : fs_strerror(r));
		return r;
	}
	n = snprintf(buf, len, "%s/vsock-%u.sock", dir, cid);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* What `run` takes besides the definition: the per-run plumbing. */
struct run_opts {
	enum vm_console console;
	const char *console_path; /* VM_CONSOLE_FILE */
	const char *kvm_path;
	const char *restore; /* --restore DIR */
	const char *incoming; /* --incoming ADDR */
	const char *secret_file;
	bool def_options;    /* a definition option was given */
	int sandbox;
	int verbose;
};

/* --console stdio|none|file:PATH */
static int run_console_arg(const char *arg, struct run_opts *ro)
{
	if (!strcmp(arg, "stdio")) {
		ro->console = VM_CONSOLE_STDIO;
	} else if (!strcmp(arg, "none")) {
		ro->console = VM_CONSOLE_NONE;
	} else if (!strncmp(arg, "file:", 5) && arg[5]) {
		ro->console = VM_CONSOLE_FILE;
		ro->console_path = arg + 5;
	} else {
		return run_usage_error("--console '%s': give stdio, none or file:PATH", arg);
	}
	return -1;
}

/*
 * The command line into @def (through cli_def_option(), as `new` reads it)
 * and @ro. Returns -1 to go on, or the exit status (0 after --help).
 */
static int run_parse(int argc, char **argv, struct vm_def *def, struct run_opts *ro)
{
	enum { OPT_CONSOLE = CLI_DEF_END, OPT_KVM, OPT_SANDBOX, OPT_RESTORE, OPT_INCOMING, OPT_SECRET };
	static const struct option opts[] = {
	    CLI_DEF_OPTIONS,
	    {"console", required_argument, NULL, OPT_CONSOLE},
	    {"kvm", required_argument, NULL, OPT_KVM},
	    {"sandbox", required_argument, NULL, OPT_SANDBOX},
	    {"restore", required_argument, NULL, OPT_RESTORE},
	    {"incoming", required_argument, NULL, OPT_INCOMING},
	    {"secret-file", required_argument, NULL, OPT_SECRET},
	    {"verbose", no_argument, NULL, 'v'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct mgr_err err;
	int opt, r = -1;

	optind = 1;
	opterr = 0;
	while (r < 0 && (opt = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
		if (opt >= CLI_DEF_KERNEL && opt < CLI_DEF_END) {
			ro->def_options = true;
			r = cli_def_option(def, opt, optarg, 0, &err);
			if (r < 0)
				r = r == -ENOMEM ? NESTVM_EXIT_ERROR
				                 : run_usage_error("%s", err.msg);
			else
				r = -1;
			continue;
		}
		switch (opt) {
		case OPT_CONSOLE:
			r = run_console_arg(optarg, ro);
			break;
		case OPT_KVM:
			ro->kvm_path = optarg;
			break;
		case OPT_RESTORE:
			ro->restore = optarg;
			break;
		case OPT_INCOMING:
			ro->incoming = optarg;
			break;
		case OPT_SECRET:
			ro->secret_file = optarg;
			break;
		case OPT_SANDBOX:
			if (cli_parse_on_off(optarg, &ro->sandbox) < 0)
				r = run_usage_error("--sandbox '%s': give on or off", optarg);
			break;
		case 'v':
			ro->verbose++;
			break;
		case 'h':
			fputs(run_usage, stdout);
			r = 0;
			break;
		default:
			r = run_usage_error("unknown or incomplete option '%s'; see --help",
			                    argv[optind - 1]);
			break;
		}
	}
	if (r < 0 && optind < argc)
		r = run_usage_error("unexpected argument '%s'; see --help", argv[optind]);
	if (r < 0 && ro->restore && ro->def_options)
		r = run_usage_error("%s", "--restore: the VM is the one the snapshot records; give no "
		                          "definition options");
	if (r < 0 && ro->incoming && (ro->def_options || ro->restore))
		r = run_usage_error("%s", "--incoming: the VM is the one that migrates here; give no "
		                          "definition options or --restore");
	if (r < 0 && !!ro->incoming != !!ro->secret_file)
		r = run_usage_error("%s", "--incoming and --secret-file go together");
	if (r < 0 && !ro->restore && !ro->incoming && !def->kernel)
		r = run_usage_error("%s", "--kernel PATH is required; see --help");
	return r;
}

/*
 * The VM @def describes, judged by vm_def_validate() as vm.json is, with
 * every device at the slot `new` would record, and @ro's plumbing. Returns
 * -1 with @cfg filled (pointing into @def and @vsock_path), or an exit status.
 */
static int run_config(struct vm_def *def, const struct run_opts *ro, char *vsock_path, size_t len,
                      char *switch_home, size_t home_len, struct vm_config *cfg)
{
	struct mgr_err err;

	if (vm_def_assign_slots(def) < 0)
		return run_usage_error("%s", "too many devices for PCI bus 0");
	/* Its switches know the VM by a name of its own: "run-PID" (MACs derive from it). */
	if (def->nr_nics && !strcmp(def->name, "run"))
		snprintf(def->name, sizeof(def->name), "run-%d", (int)getpid());
	vm_def_assign_macs(def);
	if (vm_def_validate(def, &err) < 0)
		return run_usage_error("%s", err.msg);
	if (def->vsock.cid && !def->vsock.socket &&
	    run_default_vsock_path(def->vsock.cid, vsock_path, len) < 0)
		return NESTVM_EXIT_ERROR;
	if (vm_def_to_config(def, vsock_path[0] ? vsock_path : NULL, cfg, &err) < 0) {
		fprintf(stderr, "nestvm run: %s\n", err.msg);
		return NESTVM_EXIT_ERROR;
	}
	cfg->console = ro->console;
	cfg->console_path = ro->console_path;
	cfg->kvm_path = ro->kvm_path;
	/* The switches are the store's (NESTVM_HOME or its default), as for managed VMs. */
	if (def->nr_nics) {
		struct store st;

		if (store_open(&st, NULL, &err) < 0) {
			fprintf(stderr, "nestvm run: --nic: %s\n", err.msg);
			return NESTVM_EXIT_ERROR;
		}
		snprintf(switch_home, home_len, "%s", st.home);
		cfg->switch_home = switch_home;
	}
	return -1;
}

/*
 * --restore DIR: the definition DIR holds into @def, and its snapshot opened
 * and checked into @snap. Returns -1, or an exit status having said why.
 */
static int run_open_snapshot(const struct run_opts *ro, struct vm_def *def,
                             struct vm_snapshot *snap)
{
	char why[384];
	struct mgr_err err;
	int fd = open(ro->restore, O_RDONLY | O_DIRECTORY | O_CLOEXEC), r;

	if (fd < 0) {
		fprintf(stderr, "nestvm run: --restore '%s': %s\n", ro->restore, strerror(errno));
		return NESTVM_EXIT_ERROR;
	}
	vm_def_clear(def);
	r = store_snap_read_def(fd, ro->restore, def, &err);
	if (r < 0) {
		close(fd);
		fprintf(stderr, "nestvm run: --restore: %s\n", err.msg);
		return NESTVM_EXIT_ERROR;
	}
	r = vm_snapshot_open(fd, ro->restore, ro->kvm_path, snap, why, sizeof(why));
	close(fd);
	if (r < 0) {
		fprintf(stderr, "nestvm run: --restore: %s\n", why);
		return NESTVM_EXIT_ERROR;
	}
	return -1;
}

static void run_refused(void *opaque, const char *why)
{
	(void)opaque;
	fprintf(stderr, "nestvm run: --incoming: %s; still waiting\n", why);
}

/*
 * --incoming ADDR: wait for a source that knows the secret, take the
 * definition it sends into @def (judged as vm.json is) and tell it whether
 * this host takes the machine. Returns -1 with @d accepted, or an exit
 * status having said why.
 */
static int run_incoming_accept(const struct run_opts *ro, struct vm_def *def,
                               struct migrate_dest *d)
{
	uint8_t secret[MIG_SECRET_MAX];
	struct mig_addr addr;
	struct mgr_err err;
	char why[512], where[200];
	int n, lfd, r;

	if (mig_addr_parse(ro->incoming, true, &addr, why, sizeof(why)) < 0)
		return run_usage_error("--incoming %s", why);
	n = mig_secret_read(ro->secret_file, secret, sizeof(secret), why, sizeof(why));
	if (n < 0) {
		fprintf(stderr, "nestvm run: %s\n", why);
		return NESTVM_EXIT_ERROR;
	}
	lfd = mig_listen(&addr, why, sizeof(why));
	if (lfd >= 0) {
		mig_addr_format(&addr, where, sizeof(where));
		fprintf(stderr, "nestvm run: waiting for a VM to migrate here on %s\n", where);
		r = migrate_dest_accept(lfd, secret, (size_t)n, -1, -1, run_refused, NULL, d, why,
		                        sizeof(why));
		close(lfd);
		if (addr.is_unix)
			unlink(addr.path);
	} else {
		r = lfd;
	}
	explicit_bzero(secret, sizeof(secret));
	if (r < 0) {
		fprintf(stderr, "nestvm run: --incoming: %s\n", why);
		return NESTVM_EXIT_ERROR;
	}
	vm_def_clear(def);
	if (vm_def_parse((const char *)d->def, d->hello.def_len, "the migrating VM's definition",
	                 def, &err) < 0) {
		mig_send_error(&d->conn, EINVAL, err.msg);
		fprintf(stderr, "nestvm run: --incoming: refused: %s\n", err.msg);
		return NESTVM_EXIT_ERROR;
	}
	return -1;
}

/* Receive the VM @cfg describes, and tell the source it runs here. -1, or an exit status. */
static int run_incoming_receive(struct migrate_dest *d, const struct vm_config *cfg,
                                struct vm **vm)
{
	struct timespec ts;
	char why[512];
	int r = migrate_dest_check_hello(d, cfg->kvm_path, cfg, why, sizeof(why));

	if (r < 0) {
		mig_send_error(&d->conn, -r, why);
		fprintf(stderr, "nestvm run: --incoming: refused: %s\n", why);
		return NESTVM_EXIT_ERROR;
	}
	r = migrate_dest_answer(d, 0, NULL);
	if (r == 0)
		r = migrate_dest_receive(d, cfg, cfg->kvm_path, NULL, NULL, vm, why, sizeof(why));
	else
		snprintf(why, sizeof(why), "%s", d->conn.error);
	if (r < 0) {
		fprintf(stderr, "nestvm run: --incoming: the migration failed: %s\n", why);
		return NESTVM_EXIT_ERROR;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	log_info("migration: the VM runs here from %lld.%06ld (CLOCK_REALTIME)",
	         (long long)ts.tv_sec, ts.tv_nsec / 1000);
	migrate_dest_running(d);
	return -1;
}

int cmd_run(int argc, char **argv)
{
	struct run_opts ro = {
	    .console = VM_CONSOLE_STDIO,
	    .kvm_path = "/dev/kvm",
	    .sandbox = 1,
	};
	char vsock_path[STORE_PATH_MAX] = "", switch_home[STORE_PATH_MAX] = "", why[384];
	struct vm_snapshot snap = {.memory_fd = -1};
	struct migrate_dest incoming = {.conn.fd = -1};
	struct vm_config cfg;
	struct vm_def def;
	struct vm *vm;
	int r;

	vm_def_init(&def);
	/* A definition has a name; a run's VM has none that anyone sees. */
	snprintf(def.name, sizeof(def.name), "run");
	r = run_parse(argc, argv, &def, &ro);
	if (r >= 0)
		goto out;
	log_set_level(ro.verbose >= 2 ? LOG_DEBUG : ro.verbose ? LOG_INFO : LOG_WARN);
	if (ro.restore) {
		r = run_open_snapshot(&ro, &def, &snap);
		if (r >= 0)
			goto out;
	}
	if (ro.incoming) {
		r = run_incoming_accept(&ro, &def, &incoming);
		if (r >= 0)
			goto out;
	}
	r = run_config(&def, &ro, vsock_path, sizeof(vsock_path), switch_home, sizeof(switch_home),
	               &cfg);
	if (r >= 0)
		goto out;
	/* Before vm_create() starts the first device thread. */
	r = NESTVM_EXIT_ERROR;
	if (sandbox_init(ro.sandbox) < 0)
		goto out;
	if (ro.restore && vm_snapshot_restore(&snap, &cfg, &vm, why, sizeof(why)) < 0) {
		fprintf(stderr, "nestvm run: --restore: %s\n", why);
		goto out;
	}
	if (ro.incoming) {
		r = run_incoming_receive(&incoming, &cfg, &vm);
		migrate_dest_release(&incoming);
		if (r >= 0)
			goto out;
	} else if (!ro.restore && vm_create(&cfg, &vm) < 0) {
		goto out;
	}
	vm_snapshot_close(&snap);
	r = vm_run(vm, NULL, NULL);
	vm_destroy_at_exit(vm);
out:
	vm_snapshot_close(&snap);
	/* A source still waiting for an answer hears why not, and keeps its VM. */
	mig_send_error(&incoming.conn, EIO, "the destination could not set the VM up");
	migrate_dest_release(&incoming);
	/* @cfg, and so the VM, pointed into it. */
	vm_def_clear(&def);
	return r;
}
