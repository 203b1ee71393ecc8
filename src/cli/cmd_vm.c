/* SPDX-License-Identifier: MIT */
/*
 * The VM manager's definition commands: `nestvm new`, `list`, `show` and
 * `remove` (Hyper-V's New-VM, Get-VM, Remove-VM; `set` is cmd_set.c), and
 * the helpers the other manager commands share (cli_vm.h).
 */
#include "cli/cli.h"
#include "cli/cli_vm.h"
#include "cli/opts_virtio.h"
#include "backends/disk.h"
#include "core/exit_status.h"
#include "core/vm_limits.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CLI_VM_LOG_LINES 10

/* ---- shared helpers (cli_vm.h) ---- */

/*
 * "nestvm CMD: message" on stderr. Messages quote arguments and file
 * contents, which may hold control characters: those are printed as \xHH,
 * so that nothing but nestvm's own line breaks reaches the terminal.
 */
static void cli_vm_vprint(const char *cmd, const char *tail, const char *fmt, va_list ap)
{
	char msg[4096], out[8192];
	size_t o = 0;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	for (const unsigned char *p = (const unsigned char *)msg; *p && o + 5 < sizeof(out); p++) {
		if ((*p < 0x20 && *p != '\n' && *p != '\t') || *p == 0x7f)
			o += snprintf(out + o, sizeof(out) - o, "\\x%02x", *p);
		else
			out[o++] = (char)*p;
	}
	out[o] = '\0';
	fprintf(stderr, "nestvm %s: %s%s\n", cmd, out, tail);
}

int cli_vm_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	cli_vm_vprint(cmd, "", fmt, ap);
	va_end(ap);
	return NESTVM_EXIT_ERROR;
}

int cli_vm_usage(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	cli_vm_vprint(cmd, "; see --help", fmt, ap);
	va_end(ap);
	return NESTVM_EXIT_USAGE;
}

int cli_vm_name_arg(const char *cmd, int argc, char **argv, const char **name)
{
	struct mgr_err err;

	if (optind >= argc)
		return cli_vm_usage(cmd, "give the VM's NAME");
	if (optind + 1 < argc)
		return cli_vm_usage(cmd, "unexpected argument '%s'", argv[optind + 1]);
	/* A name that can never be valid is bad usage (2), whichever the command. */
	if (store_check_name(argv[optind], &err) < 0)
		return cli_vm_usage(cmd, "%s", err.msg);
	*name = argv[optind];
	return -1;
}

int cli_vm_parse(int argc, char **argv, const char *usage, const char **name)
{
	static const struct option opts[] = {
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int opt;

	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (opt == 'h') {
			fputs(usage, stdout);
			return 0;
		}
		return cli_vm_usage(argv[0], "unknown option '%s'", argv[optind - 1]);
	}
	return cli_vm_name_arg(argv[0], argc, argv, name);
}

int cli_vm_open_store(const char *cmd, struct store *st)
{
	struct mgr_err err;
	int r;

	/* Only `new` and `receive` create the store; the others look at what is there. */
	r = strcmp(cmd, "new") && strcmp(cmd, "receive") ? store_open_existing(st, NULL, &err)
	                                                 : store_open(st, NULL, &err);
	if (r == -ENOENT)
		return cli_vm_error(cmd, "%s: there are no VMs ('nestvm new' creates one)",
		                    err.msg);
	if (r < 0)
		return cli_vm_error(cmd, "%s", err.msg);
	return -1;
}

bool cli_vm_is_up(enum api_state state)
{
	return state == API_STATE_STARTING || state == API_STATE_RUNNING ||
	       state == API_STATE_PAUSED || state == API_STATE_STOPPING;
}

int cli_vm_lock_off(const char *cmd, const struct store *st, const char *name, const char *what)
{
	struct vm_status vs;
	struct mgr_err err;
	int fd;

	fd = store_lock_acquire(st, name, STORE_LOCK_RUN, 0, &err);
	if (fd >= 0)
		return fd;
	if (fd != -EBUSY) {
		cli_vm_error(cmd, "%s", err.msg);
		return -1;
	}
	if (client_vm_status(st, name, &vs, &err) == 0 && cli_vm_is_up(vs.state)) {
		cli_vm_error(cmd, "VM '%s' is %s: %s only while it is off (nestvm stop %s)", name,
		             api_state_name(vs.state), what, name);
		client_vm_status_clear(&vs);
		return -1;
	}
	client_vm_status_clear(&vs);
	/* Off, but another command holds the lock for a moment. */
	fd = store_lock_acquire(st, name, STORE_LOCK_RUN, 3000, &err);
	if (fd < 0)
		cli_vm_error(cmd, "%s", err.msg);
	return fd;
}

/* ---- option values shared by new and set ---- */

int cli_vm_def_option(const char *cmd, struct vm_def *def, int opt, const char *arg)
{
	struct mgr_err err;
	int r = cli_def_option(def, opt, arg, CLI_DEF_RESOLVE, &err);

	if (r == -ENOMEM)
		return cli_vm_error(cmd, "%s", err.msg);
	if (r < 0)
		return cli_vm_usage(cmd, "%s", err.msg);
	return -1;
}

/* ---- new ---- */

static const char new_usage[] =
    "usage: nestvm new NAME --kernel PATH [options]\n"
    "\n"
    "Define a VM (it starts off; see 'nestvm start'). Its definition is kept in\n"
    "$NESTVM_HOME/NAME/vm.json. The options that say what the VM is are those of\n"
    "'nestvm run' and mean the same.\n"
    "\n"
    "  --kernel PATH        kernel image (required): bzImage or PVH ELF\n" CLI_DEF_OPTIONS_HELP
    "                       (--vsock's default socket: vsock.sock in the VM's directory)\n"
    "\n"
    "Each PCI device gets the first free slot on bus 0 (disks, rng, vsock,\n"
    "virtio-console, NICs in that order) and keeps it: 'nestvm set' never moves it.\n"
    "A NIC's MAC, given or derived, is recorded too.\n"
    "NAME: 1 to 64 letters, digits, '.', '_', '-', starting with a letter or digit.\n";

int cmd_new(int argc, char **argv)
{
	static const struct option opts[] = {
	    CLI_DEF_OPTIONS,
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *name = NULL;
	struct mgr_err err;
	struct vm_def def;
	struct store st;
	int opt, r = -1;

	vm_def_init(&def);
	optind = 1;
	opterr = 0;
	while (r < 0 && (opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (opt >= CLI_DEF_KERNEL && opt < CLI_DEF_END) {
			r = cli_vm_def_option("new", &def, opt, optarg);
		} else if (opt == 'h') {
			fputs(new_usage, stdout);
			r = 0;
		} else {
			r = cli_vm_usage("new", "unknown or incomplete option '%s'",
			                 argv[optind - 1]);
		}
	}
	if (r < 0)
		r = cli_vm_name_arg("new", argc, argv, &name);
	if (r < 0 && !def.kernel)
		r = cli_vm_usage("new", "--kernel PATH is required");
	if (r < 0 && vm_def_assign_slots(&def) < 0)
		r = cli_vm_usage("new", "too many devices for PCI bus 0");
	if (r < 0)
		r = cli_vm_open_store("new", &st);
	if (r >= 0)
		goto out;
	snprintf(def.name, sizeof(def.name), "%s", name);
	vm_def_assign_macs(&def);
	if (store_create(&st, &def, &err) < 0) {
		r = cli_vm_error("new", "%s", err.msg);
		goto out;
	}
	printf("created VM '%s': %u vCPU%s, %llu MiB, nested %s, kernel %s\n", def.name, def.cpus,
	       def.cpus == 1 ? "" : "s", (unsigned long long)def.memory_mib,
	       def.nested ? "on" : "off", def.kernel);
	r = 0;
out:
	vm_def_clear(&def);
	return r;
}

/* ---- list and show ---- */

static void cli_vm_format_memory(uint64_t mib, char *buf, size_t len)
{
	if (mib >= 1024 && mib % 1024 == 0)
		snprintf(buf, len, "%llu GiB", (unsigned long long)(mib >> 10));
	else
		snprintf(buf, len, "%llu MiB", (unsigned long long)mib);
}

/* "yes (SVM on 1 of 2 vCPUs)", "no", "-" (not running), "?" (could not read). */
static void cli_vm_format_hv(const struct vm_status *vs, bool verbose, char *buf, size_t len)
{
	unsigned int cpus = 0;

	if (!vs->live || vs->state == API_STATE_STARTING) {
		snprintf(buf, len, "-");
		return;
	}
	if (!vs->hv_known) {
		snprintf(buf, len, "?");
		return;
	}
	if (!verbose || !vs->hv_active) {
		snprintf(buf, len, "%s", vs->hv_active ? "yes" : "no");
		return;
	}
	json_unpack(vs->info, "{s?i}", "cpus", &cpus);
	snprintf(buf, len,
	         "yes (EFER.SVME on %u, CR4.VMXE on %u, running a nested guest on %u of %u vCPUs)",
	         vs->hv_svme, vs->hv_vmxe, vs->hv_guest_mode, cpus);
}

static const char list_usage[] =
    "usage: nestvm list [--json]\n"
    "\n"
    "List the VMs: name, state (off, starting, running, paused, stopping,\n"
    "crashed), vCPUs, memory, whether nesting is exposed, and whether the guest\n"
    "is running its own hypervisor (EFER.SVME or CR4.VMXE set on a vCPU, or a\n"
    "vCPU in nested guest mode; read from a running VM without disturbing it).\n"
    "A VM whose definition is broken is listed with '?' and the error on stderr.\n";

struct list_row {
	char name[STORE_NAME_MAX + 1];
	const char *state;
	char cpus[16], memory[24], nested[8], hv[16];
};

/* One VM's row; for a running VM the values are the monitor's (what runs). */
static json_t *cli_vm_list_one(const struct store *st, const char *name, struct list_row *row)
{
	struct vm_def def;
	struct vm_status vs;
	struct mgr_err err;
	int dr, cpus = 0, nested = 0;
	json_int_t memory = 0;
	json_t *obj = NULL;

	snprintf(row->name, sizeof(row->name), "%s", name);
	dr = store_load(st, name, &def, &err);
	if (dr < 0)
		fprintf(stderr, "nestvm list: %s\n", err.msg);
	if (client_vm_status(st, name, &vs, &err) < 0) {
		fprintf(stderr, "nestvm list: %s\n", err.msg);
		vs.state = API_STATE_OFF;
		vs.info = NULL;
		vs.live = false;
	}
	row->state = api_state_name(vs.state);
	if (vs.live) {
		json_unpack(vs.info, "{s:i, s:I, s:b}", "cpus", &cpus, "memory_mib", &memory,
		            "nested", &nested);
	} else if (dr == 0) {
		cpus = def.cpus;
		memory = (json_int_t)def.memory_mib;
		nested = def.nested;
	}
	if (vs.live || dr == 0) {
		snprintf(row->cpus, sizeof(row->cpus), "%d", cpus);
		cli_vm_format_memory(memory, row->memory, sizeof(row->memory));
		snprintf(row->nested, sizeof(row->nested), "%s", nested ? "on" : "off");
		obj = json_pack("{s:s, s:s, s:i, s:I, s:b}", "name", name, "state", row->state,
		                "cpus", cpus, "memory_mib", memory, "nested", nested);
	} else {
		strcpy(row->cpus, "?");
		strcpy(row->memory, "?");
		strcpy(row->nested, "?");
		obj = json_pack("{s:s, s:s, s:s}", "name", name, "state", row->state, "error",
		                err.msg);
	}
	cli_vm_format_hv(&vs, false, row->hv, sizeof(row->hv));
	if (obj)
		json_object_set_new(obj, "guest_hypervisor",
		                    vs.live && vs.hv_known ? json_boolean(vs.hv_active)
		                                           : json_null());
	vm_def_clear(&def);
	client_vm_status_clear(&vs);
	return obj;
}

int cmd_list(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	char(*names)[STORE_NAME_MAX + 1] = NULL;
	struct list_row *rows = NULL;
	json_t *all = NULL;
	struct mgr_err err;
	struct store st;
	int opt, json = 0, n, r;

	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (opt == 'j') {
			json = 1;
		} else if (opt == 'h') {
			fputs(list_usage, stdout);
			return 0;
		} else {
			return cli_vm_usage("list", "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return cli_vm_usage("list", "unexpected argument '%s'", argv[optind]);
	/* No store yet is no VMs, and `list` does not create one. */
	r = store_open_existing(&st, NULL, &err);
	if (r < 0 && r != -ENOENT)
		return cli_vm_error("list", "%s", err.msg);
	n = r == -ENOENT ? 0 : store_list(&st, &names, &err);
	if (n < 0)
		return cli_vm_error("list", "%s", err.msg);
	rows = calloc(n ? n : 1, sizeof(*rows));
	all = json_array();
	if (!rows || !all) {
		r = cli_vm_error("list", "out of memory");
		goto out;
	}
	for (int i = 0; i < n; i++)
		json_array_append_new(all, cli_vm_list_one(&st, names[i], &rows[i]));
	if (json) {
		char *text = json_dumps(all, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

		if (text)
			puts(text);
		free(text);
	} else {
		int w = 4;

		for (int i = 0; i < n; i++) {
			if ((int)strlen(rows[i].name) > w)
				w = strlen(rows[i].name);
		}
		printf("%-*s  %-8s  %4s  %-9s  %-6s  %s\n", w, "NAME", "STATE", "CPUS", "MEMORY",
		       "NESTED", "GUEST-HV");
		for (int i = 0; i < n; i++)
			printf("%-*s  %-8s  %4s  %-9s  %-6s  %s\n", w, rows[i].name, rows[i].state,
			       rows[i].cpus, rows[i].memory, rows[i].nested, rows[i].hv);
	}
	r = 0;
out:
	json_decref(all);
	free(rows);
	free(names);
	return r;
}

static const char show_usage[] =
    "usage: nestvm show NAME [--json]\n"
    "\n"
    "Show a VM: its state (with the monitor's pid and uptime, or how its last run\n"
    "ended), whether its guest runs a hypervisor, its settings, and where its\n"
    "files are. A crashed VM's last monitor log lines are shown too.\n";

static void cli_vm_format_time(int64_t t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t <= 0 || !gmtime_r(&tt, &tm) || !strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm))
		snprintf(buf, len, "?");
}

/*
 * The devices of @def, each PCI device with its address on bus 0, which
 * stays what it is as long as the device is defined.
 */
/* A running VM's adapters: link and counters, as its monitor reports them. */
static void cli_vm_show_nics(const struct vm_status *vs)
{
	json_t *nics = json_object_get(vs->info, "nics"), *n;
	size_t i;

	json_array_foreach(nics, i, n)
	{
		json_int_t txf = 0, txd = 0, rxf = 0, bad = 0, mtu = 0, room = 0, reset = 0;
		int link = 0;

		json_unpack(n, "{s?b, s?{s?I, s?I}, s?{s?I, s?{s?I, s?I, s?I, s?I}}}", "link",
		            &link, "tx", "frames", &txf, "dropped", &txd, "rx", "frames", &rxf,
		            "dropped", "malformed", &bad, "mtu", &mtu, "no_buffer", &room, "reset",
		            &reset);
		printf(
		    "nic %zu link:   %s, sent %lld (dropped %lld), received %lld (dropped: "
		    "%lld malformed, %lld over the MTU, %lld without a buffer, %lld at a reset)\n",
		    i, link ? "up" : "down", (long long)txf, (long long)txd, (long long)rxf,
		    (long long)bad, (long long)mtu, (long long)room, (long long)reset);
	}
}

static void cli_vm_show_devices(const struct store *st, const struct vm_def *def)
{
	const struct vm_def_console *con = &def->console;
	char sock[STORE_PATH_MAX];

	for (unsigned int i = 0; i < def->nr_disks; i++)
		printf("disk %u:       %s%s at 00:%02x.0, io %s\n", i, def->disks[i].path,
		       def->disks[i].readonly ? " (read-only)" : "", def->disks[i].pci_slot,
		       def->disks[i].io == DISK_ENGINE_URING     ? "uring"
		       : def->disks[i].io == DISK_ENGINE_THREADS ? "threads"
		                                                 : "auto");
	for (unsigned int i = 0; i < def->nr_nics; i++) {
		const struct vm_nic *n = &def->nics[i];

		printf("nic %u:        %s %s%s, mac-spoofing %s, dhcp-guard %s, router-guard %s at "
		       "00:%02x.0\n",
		       i, n->mac, n->network ? "switch " : "no switch",
		       n->network ? n->network : "", n->mac_spoofing ? "on" : "off",
		       n->dhcp_guard ? "on" : "off", n->router_guard ? "on" : "off", n->pci_slot);
	}
	if (def->rng.enabled)
		printf("rng:          virtio-rng at 00:%02x.0\n", def->rng.pci_slot);
	if (def->vsock.cid) {
		if (def->vsock.socket)
			snprintf(sock, sizeof(sock), "%s", def->vsock.socket);
		else if (store_path(st, def->name, STORE_VSOCK_SOCKET, sock, sizeof(sock)) < 0)
			snprintf(sock, sizeof(sock), "?");
		printf("vsock:        CID %u, socket %s%s at 00:%02x.0\n", def->vsock.cid, sock,
		       def->vsock.socket ? "" : " (default)", def->vsock.pci_slot);
	}
	if (vm_def_has_console(def))
		printf("virtio-console: hvc0 %s, %u port%s at 00:%02x.0\n",
		       con->socket ? con->socket : "not connected", con->nr_ports,
		       con->nr_ports == 1 ? "" : "s", con->pci_slot);
	for (unsigned int i = 0; i < con->nr_ports; i++)
		printf("port %u:       %s on %s\n", i, con->ports[i].name, con->ports[i].socket);
	if (!def->nr_disks && !def->nr_nics && !def->rng.enabled && !def->vsock.cid &&
	    !vm_def_has_console(def))
		printf("devices:      (none)\n");
}

static void cli_vm_show_text(const struct store *st, const char *name, const struct vm_def *def,
                             bool def_ok, const struct vm_status *vs)
{
	char buf[512], path[STORE_PATH_MAX];
	json_int_t uptime = 0;

	printf("name:         %s\n", name);
	printf("state:        %s", api_state_name(vs->state));
	if (vs->live) {
		json_unpack(vs->info, "{s?I}", "uptime_s", &uptime);
		printf(" (monitor pid %d, up %llds)", (int)vs->pid, (long long)uptime);
	}
	printf("\n");
	if (vs->note[0])
		printf("note:         %s\n", vs->note);
	cli_vm_format_hv(vs, true, buf, sizeof(buf));
	printf("guest hypervisor: %s\n", vs->live ? buf : "- (not running)");
	if (vs->live) {
		int seccomp = -1, landlock = -1, files = 0, jail = 0;
		json_int_t uid = -1, gid = -1;
		const char *root = "?", *why = NULL;

		/* The monitor's protections (core/sandbox.h, manager/jail.h); older ones tell less. */
		json_unpack(vs->info, "{s?{s?b, s?b, s?b}}", "sandbox", "seccomp", &seccomp, "landlock",
		            &landlock, "landlock_files", &files);
		printf("sandbox:      seccomp %s, landlock %s\n",
		       seccomp < 0 ? "?" : seccomp ? "on" : "off",
		       landlock < 0 ? "?"
		       : !landlock ? "off"
		       : files     ? "on (vcpu and device threads: no files; main and control: "
		                     "the VM's directory)"
		                   : "on (vcpu and device threads: no files)");
		json_unpack(vs->info, "{s?{s?b, s?I, s?I, s?s, s?s}}", "jail", "active", &jail, "uid",
		            &uid, "gid", &gid, "root", &root, "reason", &why);
		if (jail)
			printf("jail:         user %lld, group %lld, own mount namespace (%s), "
			       "no_new_privs\n",
			       (long long)uid, (long long)gid, root);
		else
			printf("jail:         off%s%s%s\n", why ? " (" : "", why ? why : "", why ? ")" : "");
		cli_vm_show_nics(vs);
	}
	if (def_ok) {
		char mem[24];

		cli_vm_format_memory(def->memory_mib, mem, sizeof(mem));
		printf("cpus:         %u\n", def->cpus);
		printf("memory:       %s\n", mem);
		printf("nested:       %s\n", def->nested ? "on" : "off");
		printf("hugepages:    %s\n", def->hugepages ? "on" : "off");
		printf("pit:          %s\n", def->pit ? "on" : "off");
		printf("cpu affinity: %s\n", def->cpu_affinity ? def->cpu_affinity : "any");
		printf("kernel:       %s\n", def->kernel);
		printf("initrd:       %s\n", def->initrd ? def->initrd : "-");
		printf("cmdline:      %s\n", def->cmdline ? def->cmdline : "");
		cli_vm_show_devices(st, def);
	}
	if (vs->have_exit) {
		cli_vm_format_time(vs->last_exit.at, buf, sizeof(buf));
		printf("last exit:    %s: %s (status %d)\n", buf, vs->last_exit.reason,
		       vs->last_exit.status);
	}
	if (store_path(st, name, NULL, path, sizeof(path)) == 0) {
		printf("definition:   %s/vm.json\n", path);
		printf("console log:  %s/console.log\n", path);
		printf("monitor log:  %s/monitor.log\n", path);
	}
	if (vs->state == API_STATE_CRASHED ||
	    (vs->have_exit && vs->last_exit.start_failed && vs->state == API_STATE_OFF)) {
		char tail[4096], *from;

		if (store_path(st, name, "monitor.log", path, sizeof(path)) == 0) {
			store_log_tail(path, CLI_VM_LOG_LINES, tail, sizeof(tail));
			/* Only the last run's lines: from its "monitor pid N starting" on. */
			from = strstr(tail, ": monitor pid ");
			while (from && strstr(from + 1, ": monitor pid "))
				from = strstr(from + 1, ": monitor pid ");
			while (from && from > tail && from[-1] != '\n')
				from--;
			printf("last monitor log lines:\n");
			for (char *line = strtok(from ? from : tail, "\n"); line;
			     line = strtok(NULL, "\n"))
				printf("  %s\n", line);
		}
	}
}

static void cli_vm_show_json(const struct store *st, const char *name, const struct vm_def *def,
                             bool def_ok, const char *def_err, const struct vm_status *vs)
{
	json_t *root = json_pack("{s:s, s:s}", "name", name, "state", api_state_name(vs->state));
	char *text, path[STORE_PATH_MAX];

	if (!root)
		return;
	if (vs->note[0])
		json_object_set_new(root, "note", json_string(vs->note));
	if (vs->live)
		json_object_set(root, "monitor", vs->info);
	json_object_set_new(root, "guest_hypervisor",
	                    vs->live && vs->hv_known
	                        ? json_pack("{s:b, s:i, s:i, s:i}", "active", vs->hv_active,
	                                    "vcpus_svme", vs->hv_svme, "vcpus_vmxe", vs->hv_vmxe,
	                                    "vcpus_guest_mode", vs->hv_guest_mode)
	                        : json_null());
	if (def_ok) {
		char *d = vm_def_format(def);

		json_object_set_new(root, "definition", d ? json_loads(d, 0, NULL) : json_null());
		free(d);
	} else {
		json_object_set_new(root, "definition_error", json_string(def_err));
	}
	if (vs->have_exit)
		json_object_set_new(
		    root, "last_exit",
		    json_pack("{s:i, s:I, s:s, s:b, s:b}", "status", vs->last_exit.status, "at",
		              (json_int_t)vs->last_exit.at, "reason", vs->last_exit.reason,
		              "crashed", vs->last_exit.crashed, "start_failed",
		              vs->last_exit.start_failed));
	if (store_path(st, name, NULL, path, sizeof(path)) == 0)
		json_object_set_new(root, "directory", json_string(path));
	text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	if (text)
		puts(text);
	free(text);
	json_decref(root);
}

int cmd_show(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *name = NULL;
	struct vm_status vs;
	struct mgr_err err, derr;
	struct vm_def def;
	struct store st;
	int opt, json = 0, r, dr;

	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (opt == 'j') {
			json = 1;
		} else if (opt == 'h') {
			fputs(show_usage, stdout);
			return 0;
		} else {
			return cli_vm_usage("show", "unknown option '%s'", argv[optind - 1]);
		}
	}
	r = cli_vm_name_arg("show", argc, argv, &name);
	if (r < 0)
		r = cli_vm_open_store("show", &st);
	if (r >= 0)
		return r;
	if (client_vm_status(&st, name, &vs, &err) < 0)
		return cli_vm_error("show", "%s", err.msg);
	dr = store_load(&st, name, &def, &derr);
	if (json)
		cli_vm_show_json(&st, name, &def, dr == 0, derr.msg, &vs);
	else
		cli_vm_show_text(&st, name, &def, dr == 0, &vs);
	if (dr < 0)
		fprintf(stderr, "nestvm show: %s\n", derr.msg);
	vm_def_clear(&def);
	client_vm_status_clear(&vs);
	return dr < 0 ? NESTVM_EXIT_ERROR : 0;
}

/* ---- remove ---- */

static const char remove_usage[] =
    "usage: nestvm remove NAME\n"
    "\n"
    "Delete a VM that is off: its definition, logs and console log. Disk images\n"
    "named in the definition are not touched.\n";

int cmd_remove(int argc, char **argv)
{
	const char *name = NULL;
	struct mgr_err err;
	struct store st;
	int r, def_fd = -1, run_fd = -1;

	r = cli_vm_parse(argc, argv, remove_usage, &name);
	if (r < 0)
		r = cli_vm_open_store("remove", &st);
	if (r >= 0)
		return r;
	def_fd = store_lock_acquire(&st, name, STORE_LOCK_DEF, 5000, &err);
	if (def_fd < 0)
		return cli_vm_error("remove", "%s", err.msg);
	run_fd = cli_vm_lock_off("remove", &st, name, "it can be removed");
	if (run_fd < 0) {
		r = NESTVM_EXIT_ERROR;
	} else if (store_remove(&st, name, &err) < 0) {
		r = cli_vm_error("remove", "%s", err.msg);
	} else {
		printf("removed VM '%s'\n", name);
		r = 0;
	}
	store_lock_release(run_fd);
	store_lock_release(def_fd);
	return r;
}
