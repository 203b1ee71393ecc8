// SPDX-License-Identifier: MIT
/*
 * nestvm connect / disconnect: move a VM's network adapter to another switch,
 * or off every switch, while it runs or while it is off (Hyper-V's
 * Connect-VMNetworkAdapter). vm.json keeps the choice. For a running VM this
 * command joins the switch itself (starting it if needed: the monitor may
 * be jailed and sandboxed, it cannot) and hands the port socket to the
 * monitor with the request ("nic-connect", docs/api.md).
 */
#include "cli/cli.h"
#include "cli/cli_vm.h"
#include "core/exit_status.h"
#include "manager/client.h"
#include "manager/store.h"
#include "manager/store_snap.h"
#include "net/netport.h"
#include "net/switch_link.h"
#include "switch/switch_store.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NIC_CALL_TIMEOUT_MS 10000

static const char nic_usage[] =
    "usage: nestvm connect NAME SWITCH [--nic N]\n"
    "       nestvm disconnect NAME [--nic N]\n"
    "\n"
    "Put network adapter N (default 0) of VM NAME on switch SWITCH, or on none\n"
    "(its link goes down). Works while the VM runs (the guest sees its link\n"
    "go down and up) and while it is off; not while it is saved. vm.json keeps\n"
    "the change.\n";

/* Join @sw as adapter @n of @def would, for a running VM: the port socket, or -1 (said why). */
static int nic_join(const struct store *st, const struct vm_def *def, unsigned int n,
                    const char *sw)
{
	const struct vm_nic *nic = &def->nics[n];
	struct netport_hello h = {
	    .adapter = n,
	    .mac_spoofing = nic->mac_spoofing,
	    .dhcp_guard = nic->dhcp_guard,
	    .router_guard = nic->router_guard,
	};
	unsigned int port;
	char why[256];
	int fd;

	snprintf(h.vm, sizeof(h.vm), "%s", def->name);
	if (netport_mac_parse(nic->mac, h.mac) < 0) {
		cli_vm_error("connect", "VM '%s': NIC %u has no MAC in vm.json", def->name, n);
		return -1;
	}
	fd = switch_link_connect(st->home, sw, &h, &port, why, sizeof(why));
	if (fd < 0)
		cli_vm_error("connect", "VM '%s', NIC %u: cannot join %s", def->name, n, why);
	return fd;
}

/*
 * The VM has a monitor to tell: not one that is only letting go of its run
 * lock as it ends (a guest that powered off a moment ago), whose VM is off.
 */
static bool nic_vm_up(const struct store *st, const char *name)
{
	struct vm_status vs;
	struct mgr_err err;
	bool up;

	if (client_vm_status(st, name, &vs, &err) < 0)
		return store_lock_held(st, name, STORE_LOCK_RUN) > 0;
	up = cli_vm_is_up(vs.state);
	client_vm_status_clear(&vs);
	return up;
}

/* Tell NAME's monitor: adapter @n now on @fd (switch @sw), or on none (-1, NULL). */
static int nic_tell_monitor(const struct store *st, const char *name, unsigned int n,
                            const char *sw, int fd)
{
	struct client c;
	struct mgr_err err;
	json_t *res = NULL;
	int r;

	r = cli_vm_connect(sw ? "connect" : "disconnect", st, name, &c, false);
	if (r >= 0)
		return r;
	if (fd >= 0) {
		c.pass_fds = &fd;
		c.nr_pass_fds = 1;
	}
	r = client_call(&c, "nic-connect", json_pack("{s:i, s:s?}", "nic", (int)n, "switch", sw),
	                NIC_CALL_TIMEOUT_MS, &res, &err);
	json_decref(res);
	client_close(&c);
	if (r < 0)
		return cli_vm_error(sw ? "connect" : "disconnect", "VM '%s': %s", name, err.msg);
	return -1;
}

static int nic_command(const char *cmd, int argc, char **argv)
{
	static const struct option opts[] = {{"nic", required_argument, NULL, 'n'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     {NULL, 0, NULL, 0}};
	bool connect = !strcmp(cmd, "connect");
	const char *name, *sw = NULL;
	struct vm_def def = {0};
	struct mgr_err err;
	struct store st;
	unsigned long n = 0;
	int opt, r, def_fd = -1, port_fd = -1;
	char *end;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'n':
			n = strtoul(optarg, &end, 10);
			if (!*optarg || *end || n >= STORE_MAX_NICS)
				return cli_vm_usage(cmd, "--nic '%s': an adapter number from 0 to %d",
				                    optarg, STORE_MAX_NICS - 1);
			break;
		case 'h':
			fputs(nic_usage, stdout);
			return 0;
		default:
			return cli_vm_usage(cmd, "unknown option");
		}
	}
	if (argc - optind != (connect ? 2 : 1))
		return cli_vm_usage(cmd, connect ? "give a VM and a switch" : "give a VM");
	if (connect) {
		sw = argv[optind + 1];
		if (store_check_name(sw, &err) < 0)
			return cli_vm_usage(cmd, "switch: %s", err.msg);
		argc--;
	}
	r = cli_vm_name_arg(cmd, argc, argv, &name);
	if (r < 0)
		r = cli_vm_open_store(cmd, &st);
	if (r >= 0)
		return r;
	def_fd = store_lock_acquire(&st, name, STORE_LOCK_DEF, 5000, &err);
	if (def_fd < 0) {
		r = cli_vm_error(cmd, "%s", err.msg);
		goto out;
	}
	if (store_load(&st, name, &def, &err) < 0) {
		r = cli_vm_error(cmd, "%s", err.msg);
		goto out;
	}
	if (sw) {
		struct store sws;
		int dfd = switch_store_open(st.home, &sws, false, &err);

		if (dfd >= 0)
			dfd = switch_store_dir(&sws, sw, &err);
		if (dfd < 0) {
			r = cli_vm_error(cmd, "no switch named '%s' (nestvm switch list)", sw);
			goto out;
		}
		close(dfd);
	}
	if (n >= def.nr_nics) {
		r = cli_vm_error(cmd, "VM '%s' has %u NIC(s): no NIC %lu", name, def.nr_nics, n);
		goto out;
	}
	/* A saved state restores onto the switches it was saved with. */
	if (store_has_saved(&st, name)) {
		r = cli_vm_error(cmd,
		                 "VM '%s' is saved: its NICs change only after it has run again, "
		                 "or with its saved state discarded (nestvm start --discard-saved %s)",
		                 name, name);
		goto out;
	}
	if (nic_vm_up(&st, name)) {
		if (sw) {
			port_fd = nic_join(&st, &def, (unsigned int)n, sw);
			if (port_fd < 0) {
				r = NESTVM_EXIT_ERROR;
				goto out;
			}
		}
		r = nic_tell_monitor(&st, name, (unsigned int)n, sw, port_fd);
		if (r >= 0)
			goto out;
	}
	free(def.nics[n].network);
	def.nics[n].network = sw ? strdup(sw) : NULL;
	if (sw && !def.nics[n].network) {
		r = cli_vm_error(cmd, "out of memory");
		goto out;
	}
	if (store_save(&st, &def, &err) < 0) {
		r = cli_vm_error(cmd, "%s", err.msg);
		goto out;
	}
	if (sw)
		printf("VM '%s': NIC %lu (%s) on switch '%s'\n", name, n, def.nics[n].mac, sw);
	else
		printf("VM '%s': NIC %lu (%s) on no switch; its link is down\n", name, n,
		       def.nics[n].mac);
	r = 0;
out:
	if (port_fd >= 0)
		close(port_fd);
	store_lock_release(def_fd);
	vm_def_clear(&def);
	return r;
}

int cmd_connect(int argc, char **argv)
{
	return nic_command("connect", argc, argv);
}

int cmd_disconnect(int argc, char **argv)
{
	return nic_command("disconnect", argc, argv);
}
