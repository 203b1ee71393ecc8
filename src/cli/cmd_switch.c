// SPDX-License-Identifier: MIT
/*
 * `nestvm switch`: virtual switches as managed objects (Hyper-V's
 * New-VMSwitch, Get-VMSwitch, Remove-VMSwitch): new, list, show, start,
 * stop, remove, and the hidden `switch serve` that runs one (src/switch/).
 */
#include "cli/cli.h"
#include "cli/cli_vm.h"
#include "core/exit_status.h"
#include "manager/jail.h"
#include "switch/switch_store.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SWITCH_STOP_WAIT_MS 5000

static const char switch_usage[] =
    "usage: nestvm switch COMMAND ...\n"
    "\n"
    "  new NAME --type private|internal|nat [--subnet CIDR] [--tap DEVICE]\n"
    "           [--forward tcp|udp:[HOSTADDR:]HOSTPORT:GUESTIP:GUESTPORT ...]\n"
    "                      define a switch (it starts when the first VM connects)\n"
    "  list [--json]       the switches, their state and connected ports\n"
    "  show NAME [--json]  a switch's ports, counters, MAC table and DHCP leases\n"
    "  start NAME          start a switch's process now\n"
    "  stop NAME [--force] stop it (--force: even with VMs connected)\n"
    "  remove NAME [--force]\n"
    "                      delete a switch (--force: even with VMs connected)\n"
    "  link NAME [VM]      join it as a VM adapter would (starting it if needed), and leave\n"
    "\n"
    "Types: private (VMs reach each other only), internal (and the host, on a tap\n"
    "device at the subnet's first address, with DHCP; without --subnet a bare tap\n"
    "for a bridge; needs CAP_NET_ADMIN), nat (and the\n"
    "host's networks through NAT, unprivileged: gateway .2, DNS .3, DHCP from .15;\n"
    "default subnet 10.0.2.0/24). A forward's HOSTADDR defaults to 127.0.0.1.\n";

static int sw_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sw_err(const char *fmt, ...)
{
	char msg[2200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return cli_vm_error("switch", "%s", msg);
}

/* Open the VM store and its switch store; -1 on success, else an exit status. */
static int sw_open(bool create, struct store *sws)
{
	struct mgr_err err;
	struct store st;
	int r;

	r = create ? store_open(&st, NULL, &err) : store_open_existing(&st, NULL, &err);
	if (r == 0)
		r = switch_store_open(st.home, sws, create, &err);
	if (r < 0)
		return sw_err("%s", err.msg);
	return -1;
}

static const char *sw_home(const struct store *sws, char *buf, size_t len)
{
	const char *slash;

	snprintf(buf, len, "%s", sws->home);
	slash = strrchr(buf, '/');
	if (slash)
		buf[slash - buf] = '\0';
	return buf;
}

static int sw_new(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"type", required_argument, NULL, 't'}, {"subnet", required_argument, NULL, 's'},
	    {"tap", required_argument, NULL, 'T'},  {"forward", required_argument, NULL, 'f'},
	    {"help", no_argument, NULL, 'h'},       {NULL, 0, NULL, 0},
	};
	struct switch_def d = {0};
	bool have_type = false;
	struct mgr_err err;
	struct store sws;
	int opt, r;

	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'h':
			fputs(switch_usage, stdout);
			return 0;
		case 't':
			if (switch_type_parse(optarg, &d.type) < 0)
				return cli_vm_usage("switch new",
				                    "--type is private, internal or nat");
			have_type = true;
			break;
		case 's':
			if (switch_subnet_parse(optarg, &d.net, &d.prefix) < 0)
				return cli_vm_usage("switch new",
				                    "--subnet '%s' is not A.B.C.D/N (N 8 to "
				                    "30, no host bits)",
				                    optarg);
			break;
		case 'T':
			if (strlen(optarg) > SWITCH_TAP_MAX)
				return cli_vm_usage("switch new", "--tap: at most %d characters",
				                    SWITCH_TAP_MAX);
			strcpy(d.tap, optarg);
			break;
		case 'f':
			if (d.nr_forwards == SWITCH_MAX_FORWARDS)
				return cli_vm_usage("switch new", "at most %d --forward",
				                    SWITCH_MAX_FORWARDS);
			if (switch_forward_parse(optarg, &d.forwards[d.nr_forwards++]) < 0)
				return cli_vm_usage("switch new",
				                    "--forward '%s' is not "
				                    "tcp|udp:[HOSTADDR:]HOSTPORT:GUESTIP:GUESTPORT",
				                    optarg);
			break;
		default:
			return cli_vm_usage("switch new", "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind != argc - 1)
		return cli_vm_usage("switch new", "give one switch NAME");
	if (!have_type)
		return cli_vm_usage("switch new", "--type private|internal|nat is required");
	if (strlen(argv[optind]) > SWITCH_NAME_MAX || store_check_name(argv[optind], NULL) < 0)
		return cli_vm_usage("switch new",
		                    "invalid switch name: 1 to %d letters, digits, '.', '_', '-'",
		                    SWITCH_NAME_MAX);
	strcpy(d.name, argv[optind]);
	r = sw_open(true, &sws);
	if (r >= 0)
		return r;
	if (switch_store_create(&sws, &d, &err) < 0)
		return sw_err("%s", err.msg);
	printf("switch '%s' (%s) created; it starts when a VM connects ('nestvm switch start "
	       "%s' starts it now)\n",
	       d.name, switch_type_name(d.type), d.name);
	return 0;
}

/* The running switch's status (NULL: not running). */
static json_t *sw_status(const struct store *sws, const char *name)
{
	json_t *req = json_pack("{s:s}", "cmd", "status"), *res;
	struct mgr_err err;

	if (!switch_store_running(sws, name)) {
		json_decref(req);
		return NULL;
	}
	res = switch_request(sws, name, req, &err);
	json_decref(req);
	return res;
}

static unsigned int sw_vm_ports(json_t *status)
{
	unsigned int n = 0;
	size_t i;
	json_t *p;

	json_array_foreach(json_object_get(status, "ports"), i, p)
	{
		n += !strcmp(json_string_value(json_object_get(p, "kind")) ?: "", "vm");
	}
	return n;
}

static int sw_list(int argc, char **argv)
{
	char(*names)[STORE_NAME_MAX + 1] = NULL;
	bool json = argc == 2 && !strcmp(argv[1], "--json");
	json_t *all = json_array();
	struct mgr_err err;
	struct store sws;
	int n;

	if (argc > 2 || (argc == 2 && !json))
		return cli_vm_usage("switch list", "only --json");
	if (sw_open(false, &sws) >= 0 || (n = store_list(&sws, &names, &err)) < 0) {
		/* No store or no switches yet: an empty list. */
		if (json)
			printf("[]\n");
		json_decref(all);
		return 0;
	}
	if (!json)
		printf("%-20s %-9s %-18s %-8s %s\n", "NAME", "TYPE", "SUBNET", "STATE", "PORTS");
	for (int i = 0; i < n; i++) {
		struct switch_def d;
		json_t *st;
		char subnet[40] = "-";

		if (switch_store_load(&sws, names[i], &d, &err) < 0) {
			if (json)
				json_array_append_new(all, json_pack("{s:s, s:s}", "name", names[i],
				                                     "error", err.msg));
			else
				printf("%-20s broken: %s\n", names[i], err.msg);
			continue;
		}
		if (d.net) {
			struct in_addr in = {.s_addr = htonl(d.net)};
			char ip[INET_ADDRSTRLEN];

			inet_ntop(AF_INET, &in, ip, sizeof(ip));
			snprintf(subnet, sizeof(subnet), "%s/%u", ip, d.prefix);
		}
		st = sw_status(&sws, names[i]);
		if (json)
			json_array_append_new(
			    all, json_pack("{s:s, s:s, s:s, s:b, s:i}", "name", d.name, "type",
			                   switch_type_name(d.type), "subnet", subnet, "running",
			                   st != NULL, "ports", (int)sw_vm_ports(st)));
		else
			printf("%-20s %-9s %-18s %-8s %u\n", d.name, switch_type_name(d.type),
			       subnet, st ? "running" : "stopped", sw_vm_ports(st));
		json_decref(st);
	}
	if (json) {
		char *t = json_dumps(all, JSON_INDENT(2));

		printf("%s\n", t ? t : "[]");
		free(t);
	}
	json_decref(all);
	free(names);
	return 0;
}

static uint64_t sw_u(json_t *o, const char *k)
{
	return (uint64_t)json_integer_value(json_object_get(o, k));
}

/* One row of `switch show`'s port table: a port's counters (docs/api.md). */
static void show_counters(const char *port, const char *who, const char *mac, const char *guards,
                          json_t *c)
{
	json_t *dr = json_object_get(c, "drops");

	printf("  %-4s %-24s %-17s %-8s %10llu %12llu %10llu %12llu  %llu/%llu/%llu/%llu/%llu\n",
	       port, who, mac, guards, (unsigned long long)sw_u(c, "frames_in"),
	       (unsigned long long)sw_u(c, "bytes_in"), (unsigned long long)sw_u(c, "frames_out"),
	       (unsigned long long)sw_u(c, "bytes_out"), (unsigned long long)sw_u(dr, "spoofed_mac"),
	       (unsigned long long)sw_u(dr, "dhcp_guard"),
	       (unsigned long long)sw_u(dr, "router_guard"),
	       (unsigned long long)sw_u(dr, "malformed"), (unsigned long long)sw_u(dr, "congested"));
}

/* "on", "off", or "?" for a field the switch did not send (-1). */
static const char *sw_onoff(int v)
{
	return v < 0 ? "?" : v ? "on" : "off";
}

/* The switch process's protections (switch/confine.h); an older switch tells none. */
static void sw_show_sandbox(json_t *sb)
{
	int seccomp = -1, landlock = -1, nnp = -1, own = 0;
	json_int_t uid = -1, gid = -1;
	const char *why = NULL;

	if (!sb) {
		printf("sandbox: ? (this switch does not say)\n");
		return;
	}
	json_unpack(sb, "{s?b, s?b, s?b, s?b, s?I, s?I, s?s}", "seccomp", &seccomp, "landlock",
	            &landlock, "no_new_privs", &nnp, "own_user", &own, "uid", &uid, "gid", &gid,
	            "user_reason", &why);
	printf("sandbox: seccomp %s, landlock %s, no_new_privs %s\n", sw_onoff(seccomp),
	       landlock > 0 ? "on (files: the switch's directory)" : sw_onoff(landlock),
	       sw_onoff(nnp));
	if (own)
		printf("user: %lld, group %lld (its own), no capabilities\n", (long long)uid,
		       (long long)gid);
	else
		printf("user: %lld, not its own%s%s%s\n", (long long)uid, why ? " (" : "",
		       why ? why : "", why ? ")" : "");
}

static void sw_show_text(const struct switch_def *d, json_t *st)
{
	size_t i;
	json_t *e;

	printf("switch '%s': %s", d->name, switch_type_name(d->type));
	if (d->net) {
		char ip[INET_ADDRSTRLEN];
		struct in_addr in = {.s_addr = htonl(d->net)};

		inet_ntop(AF_INET, &in, ip, sizeof(ip));
		printf(", subnet %s/%u", ip, d->prefix);
		if (d->type == SWITCH_NAT)
			printf(" (gateway .%d, DNS .%d, DHCP from .%d)", SWITCH_NAT_GATEWAY,
			       SWITCH_NAT_DNS, SWITCH_DHCP_FIRST);
		else
			printf(" (the host .1, DHCP from .%d)", SWITCH_DHCP_FIRST);
	}
	if (d->tap[0])
		printf(", host on tap '%s'", d->tap);
	printf("\n");
	for (unsigned int k = 0; k < d->nr_forwards; k++) {
		char text[96];

		switch_forward_format(&d->forwards[k], text, sizeof(text));
		printf("forward: %s\n", text);
	}
	if (!st) {
		printf("state: stopped\n");
		return;
	}
	printf("state: running (pid %d)\n", (int)sw_u(st, "pid"));
	sw_show_sandbox(json_object_get(st, "sandbox"));
	printf("ports:\n  %-4s %-24s %-17s %-8s %10s %12s %10s %12s  %s\n", "PORT", "VM/ADAPTER",
	       "MAC", "GUARDS", "FRAMES-IN", "BYTES-IN", "FRAMES-OUT", "BYTES-OUT",
	       "DROPS spoofed/dhcp/router/malformed/congested");
	json_array_foreach(json_object_get(st, "ports"), i, e)
	{
		const char *kind = json_string_value(json_object_get(e, "kind")) ?: "?";
		char who[80], guards[16], port[16];

		if (!strcmp(kind, "vm")) {
			snprintf(who, sizeof(who), "%s/%d",
			         json_string_value(json_object_get(e, "vm")) ?: "?",
			         (int)sw_u(e, "adapter"));
			snprintf(guards, sizeof(guards), "%s%s%s",
			         json_is_true(json_object_get(e, "mac_spoofing")) ? "-" : "M",
			         json_is_true(json_object_get(e, "dhcp_guard")) ? "D" : "-",
			         json_is_true(json_object_get(e, "router_guard")) ? "R" : "-");
		} else {
			snprintf(who, sizeof(who), "(%s)", kind);
			snprintf(guards, sizeof(guards), "-");
		}
		snprintf(port, sizeof(port), "%d", (int)sw_u(e, "port"));
		show_counters(port, who, json_string_value(json_object_get(e, "mac")) ?: "-", guards,
		              json_object_get(e, "counters"));
	}
	show_counters("all", "(since the switch started)", "", "", json_object_get(st, "totals"));
	printf("  (guards: M MAC spoofing guard, D DHCP guard, R router guard)\n");
	printf("MAC table (%zu of %d):\n", json_array_size(json_object_get(st, "mac_table")),
	       (int)sw_u(st, "mac_table_capacity"));
	json_array_foreach(json_object_get(st, "mac_table"), i, e)
	{
		printf("  %s  port %d  %llu s ago\n",
		       json_string_value(json_object_get(e, "mac")) ?: "?", (int)sw_u(e, "port"),
		       (unsigned long long)sw_u(e, "age_s"));
	}
	if (json_array_size(json_object_get(st, "leases")))
		printf("DHCP leases:\n");
	json_array_foreach(json_object_get(st, "leases"), i, e)
	{
		printf("  %s  %s\n", json_string_value(json_object_get(e, "mac")) ?: "?",
		       json_string_value(json_object_get(e, "ip")) ?: "?");
	}
}

static int sw_show(int argc, char **argv)
{
	bool json = false;
	const char *name = NULL;
	struct switch_def d;
	struct mgr_err err;
	struct store sws;
	json_t *st;
	int r;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			json = true;
		else if (!name && argv[i][0] != '-')
			name = argv[i];
		else
			return cli_vm_usage("switch show",
			                    "usage: nestvm switch show NAME [--json]");
	}
	if (!name)
		return cli_vm_usage("switch show", "give a switch NAME");
	r = sw_open(false, &sws);
	if (r >= 0)
		return r;
	if (switch_store_load(&sws, name, &d, &err) < 0)
		return sw_err("%s", err.msg);
	st = sw_status(&sws, name);
	if (json) {
		char *def = switch_def_format(&d), *t;
		json_t *o = json_pack("{s:o, s:b, s:o}", "definition",
		                      def ? json_loads(def, 0, NULL) : json_null(), "running",
		                      st != NULL, "status", st ? json_incref(st) : json_null());

		free(def);
		t = o ? json_dumps(o, JSON_INDENT(2)) : NULL;
		printf("%s\n", t ? t : "{}");
		free(t);
		json_decref(o);
	} else {
		sw_show_text(&d, st);
	}
	json_decref(st);
	return 0;
}

static int sw_start(int argc, char **argv)
{
	struct switch_def d;
	struct mgr_err err;
	struct store sws;
	char home[STORE_PATH_MAX];
	pid_t pid;
	int r;

	if (argc != 2 || argv[1][0] == '-')
		return cli_vm_usage("switch start", "usage: nestvm switch start NAME");
	r = sw_open(false, &sws);
	if (r >= 0)
		return r;
	if (switch_store_load(&sws, argv[1], &d, &err) < 0)
		return sw_err("%s", err.msg);
	if (switch_store_running(&sws, argv[1])) {
		printf("switch '%s' is already running\n", argv[1]);
		return 0;
	}
	if (switch_spawn(sw_home(&sws, home, sizeof(home)), argv[1], &pid, &err) < 0)
		return sw_err("%s", err.msg);
	if (pid)
		printf("started switch '%s' (pid %d)\n", argv[1], (int)pid);
	else
		printf("switch '%s' is already running\n", argv[1]);
	return 0;
}

/* Stop a running switch, refusing while VMs are connected unless @force. 0 or an exit status. */
static int sw_stop_running(const struct store *sws, const char *name, bool force, const char *cmd)
{
	json_t *st = sw_status(sws, name), *req, *res;
	struct mgr_err err;
	unsigned int n;

	if (!st)
		return 0;
	n = sw_vm_ports(st);
	if (n && !force) {
		char vms[512] = "";
		size_t i, o = 0;
		json_t *p;

		json_array_foreach(json_object_get(st, "ports"), i, p)
		{
			const char *vm = json_string_value(json_object_get(p, "vm"));

			if (vm && o < sizeof(vms))
				o += (size_t)snprintf(vms + o, sizeof(vms) - o, "%s'%s'",
				                      o ? ", " : "", vm);
		}
		json_decref(st);
		return cli_vm_error(cmd,
		                    "switch '%s' has %u VM adapter%s connected (VM %s): disconnect "
		                    "them, or --force cuts them off",
		                    name, n, n == 1 ? "" : "s", vms);
	}
	json_decref(st);
	req = json_pack("{s:s}", "cmd", "stop");
	res = switch_request(sws, name, req, &err);
	json_decref(req);
	json_decref(res);
	for (int waited = 0; switch_store_running(sws, name); waited += 20) {
		if (waited >= SWITCH_STOP_WAIT_MS)
			return cli_vm_error(cmd, "switch '%s' did not stop within %d s", name,
			                    SWITCH_STOP_WAIT_MS / 1000);
		usleep(20000);
	}
	return 0;
}

static int sw_stop_or_remove(int argc, char **argv, bool remove)
{
	const char *cmd = remove ? "switch remove" : "switch stop", *name = NULL;
	bool force = false;
	struct switch_def d;
	struct mgr_err err;
	struct store sws;
	int r, lock;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--force"))
			force = true;
		else if (!name && argv[i][0] != '-')
			name = argv[i];
		else
			return cli_vm_usage(cmd, "usage: nestvm %s NAME [--force]", cmd);
	}
	if (!name)
		return cli_vm_usage(cmd, "give a switch NAME");
	r = sw_open(false, &sws);
	if (r >= 0)
		return r;
	/* A broken definition does not keep a switch from being removed. */
	r = switch_store_load(&sws, name, &d, &err);
	if (r < 0 && (!remove || r == -ENOENT))
		return cli_vm_error(cmd, "%s", err.msg);
	r = sw_stop_running(&sws, name, force, cmd);
	if (r)
		return r;
	if (!remove) {
		printf("switch '%s' is stopped\n", name);
		return 0;
	}
	/* Held while removing: no adapter can start the switch meanwhile. */
	lock = switch_store_lock(&sws, name, &err);
	if (lock < 0)
		return cli_vm_error(cmd, "%s", err.msg);
	r = store_remove(&sws, name, &err);
	store_lock_release(lock);
	if (r < 0)
		return cli_vm_error(cmd, "%s", err.msg);
	if (geteuid() == 0) {
		struct store vms = {0};

		/* Its user of the jail range (switch/confine.h) goes with it. */
		sw_home(&sws, vms.home, sizeof(vms.home));
		jail_switch_uid_release(&vms, name);
	}
	printf("switch '%s' removed\n", name);
	return 0;
}

/*
 * `nestvm switch link NAME [VM]`: join switch NAME as adapter 0 of VM (default
 * "link-PID") the way a VM's adapter does (switch_link_connect(): starting
 * the switch if needed), print the port, and leave. For tests and for
 * checking a switch by hand.
 */
static int sw_link(int argc, char **argv)
{
	struct netport_hello h = {.dhcp_guard = true, .router_guard = true};
	char home[STORE_PATH_MAX], why[2200];
	struct store sws;
	unsigned int port;
	int r, fd;

	if (argc < 2 || argc > 3)
		return cli_vm_usage("switch link", "usage: nestvm switch link NAME [VM]");
	r = sw_open(false, &sws);
	if (r >= 0)
		return r;
	if (argc == 3)
		snprintf(h.vm, sizeof(h.vm), "%s", argv[2]);
	else
		snprintf(h.vm, sizeof(h.vm), "link-%d", (int)getpid());
	netport_mac_derive(h.vm, 0, h.mac);
	fd = switch_link_connect(sw_home(&sws, home, sizeof(home)), argv[1], &h, &port, why,
	                         sizeof(why));
	if (fd < 0)
		return sw_err("%s", why);
	printf("joined switch '%s' as port %u\n", argv[1], port);
	close(fd);
	return 0;
}

/* `nestvm switch serve --home HOME [--ready-fd N] -- NAME`: what switch_spawn() runs. */
static int sw_serve(int argc, char **argv)
{
	const char *home = NULL, *name = NULL;
	int ready = -1;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--home") && i + 1 < argc)
			home = argv[++i];
		else if (!strcmp(argv[i], "--ready-fd") && i + 1 < argc)
			ready = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--") && i + 2 == argc)
			name = argv[++i];
		else
			return cli_vm_usage("switch serve",
			                    "usage: nestvm switch serve --home HOME "
			                    "[--ready-fd N] -- NAME");
	}
	if (!home || !name)
		return cli_vm_usage("switch serve", "--home HOME and -- NAME are required");
	return switch_serve(home, name, ready);
}

int cmd_switch(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(int argc, char **argv);
	} subs[] = {
	    {"new", sw_new},     {"list", sw_list},   {"show", sw_show},
	    {"start", sw_start}, {"serve", sw_serve}, {"link", sw_link},
	};

	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
	    !strcmp(argv[1], "help")) {
		fputs(switch_usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? NESTVM_EXIT_USAGE : 0;
	}
	for (unsigned int i = 0; i < sizeof(subs) / sizeof(subs[0]); i++)
		if (!strcmp(argv[1], subs[i].name))
			return subs[i].fn(argc - 1, argv + 1);
	if (!strcmp(argv[1], "stop"))
		return sw_stop_or_remove(argc - 1, argv + 1, false);
	if (!strcmp(argv[1], "remove"))
		return sw_stop_or_remove(argc - 1, argv + 1, true);
	return cli_vm_usage("switch", "unknown command '%s'", argv[1]);
}
