/* SPDX-License-Identifier: MIT */
/*
 * `nestvm set`: change a VM's definition (Hyper-V's Set-VM, Set-VMProcessor,
 * Set-VMMemory, Add-VMHardDiskDrive, ...).
 *
 * Hyper-V's rules for a VM's settings: the vCPU count, the memory size,
 * nested virtualization and the devices change only while the VM is off; the
 * kernel, initrd and command line may change at any time and apply at the
 * next start. Values are read by the parsers `new` and `run` use
 * (cli_def_option()). A device added gets the first free PCI slot; the
 * others keep theirs, whatever is removed or added.
 */
#include "cli/cli.h"
#include "cli/cli_vm.h"
#include "cli/opts_virtio.h"
#include "core/exit_status.h"
#include "manager/store_snap.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SET_NR_OPTS (CLI_DEF_END - CLI_DEF_KERNEL)
#define SET_BIT(opt) (1u << ((opt)-CLI_DEF_KERNEL))

/* `set`'s own options, after the CLI_DEF_* ones it shares with `new` and `run`. */
enum { SET_OPT_REMOVE_DISK = CLI_DEF_END, SET_OPT_REMOVE_PORT, SET_OPT_REMOVE_NIC };

static const char set_usage[] =
    "usage: nestvm set NAME [options]\n"
    "\n"
    "Change a VM's settings. As in Hyper-V, the processors, memory, nesting and\n"
    "devices change only while the VM is off; --kernel, --initrd and --cmdline may\n"
    "change at any time and apply at the next start. Values are written as for\n"
    "'nestvm new' and 'nestvm run'. A device added gets the first free PCI slot;\n"
    "no other device moves.\n"
    "\n"
    "  --cpus N                 vCPUs, 1 to 254                    (VM off)\n"
    "  --memory SIZE            RAM, e.g. 1G                       (VM off)\n"
    "  --nested on|off          expose AMD-V/VT-x                  (VM off)\n"
    "  --hugepages on|off       transparent huge pages for RAM     (VM off)\n"
    "  --pit on|off             in-kernel i8254 timer              (VM off)\n"
    "  --cpu-affinity LIST|none\n"
    "                           host CPUs for its threads: 0-3,6   (VM off)\n"
    "  --disk, --add-disk PATH[,readonly][,io=auto|uring|threads]\n"
    "                           add a disk image                   (VM off)\n"
    "  --remove-disk PATH       remove a disk                      (VM off)\n"
    "  --rng on|off             virtio-rng                         (VM off)\n"
    "  --vsock CID[,socket=PATH]|none\n"
    "                           set or remove virtio-vsock         (VM off)\n"
    "  --virtio-console PATH|none\n"
    "                           hvc0's socket, or none             (VM off)\n"
    "  --console-port, --add-console-port NAME,socket=PATH\n"
    "                           add a named console port           (VM off)\n"
    "  --remove-console-port NAME                                  (VM off)\n"
    "  --nic, --add-nic switch=NAME[,mac=MAC][,mac-spoofing=on|off]\n"
    "        [,dhcp-guard=on|off][,router-guard=on|off]\n"
    "                           add a network adapter              (VM off)\n"
    "  --remove-nic MAC         remove a NIC                       (VM off)\n"
    "  --kernel PATH            kernel image\n"
    "  --initrd PATH|none       initial ramdisk, or none\n"
    "  --cmdline STRING         kernel command line\n";

/*
 * The changes `set` was asked for. @want holds the values of the CLI_DEF_*
 * options in @seen (the disks and ports in it are to be added), spelled as
 * @spelled says; the rest are removals.
 */
struct set_request {
	struct vm_def want;
	unsigned int seen;             /* SET_BIT(CLI_DEF_*) */
	char spelled[SET_NR_OPTS][24]; /* "--add-disk" */
	bool clear_initrd, clear_vsock, clear_hvc;
	const char *remove_disk[STORE_MAX_DISKS];
	const char *remove_port[STORE_MAX_CONSOLE_PORTS];
	const char *remove_nic[STORE_MAX_NICS];
	unsigned int nr_remove_disk, nr_remove_port, nr_remove_nic;
};

/* Whether option @opt was given; its spelling ("--add-disk") for messages. */
static bool set_seen(const struct set_request *req, int opt, const char **offending)
{
	if (!(req->seen & SET_BIT(opt)))
		return false;
	if (offending)
		*offending = req->spelled[opt - CLI_DEF_KERNEL];
	return true;
}

/* The VM's size and switches; each changed one needs the VM off. */
static void set_apply_scalars(const struct set_request *req, struct vm_def *def,
                              const char **offending)
{
	const struct vm_def *w = &req->want;
	const char *opt;

	if (set_seen(req, CLI_DEF_CPUS, &opt) && w->cpus != def->cpus) {
		def->cpus = w->cpus;
		*offending = opt;
	}
	if (set_seen(req, CLI_DEF_MEMORY, &opt) && w->memory_mib != def->memory_mib) {
		def->memory_mib = w->memory_mib;
		*offending = opt;
	}
	if (set_seen(req, CLI_DEF_NESTED, &opt) && w->nested != def->nested) {
		def->nested = w->nested;
		*offending = opt;
	}
	if (set_seen(req, CLI_DEF_HUGEPAGES, &opt) && w->hugepages != def->hugepages) {
		def->hugepages = w->hugepages;
		*offending = opt;
	}
	if (set_seen(req, CLI_DEF_PIT, &opt) && w->pit != def->pit) {
		def->pit = w->pit;
		*offending = opt;
	}
	if (set_seen(req, CLI_DEF_CPU_AFFINITY, &opt) &&
	    strcmp(w->cpu_affinity ? w->cpu_affinity : "", def->cpu_affinity ? def->cpu_affinity : "")) {
		/* Already checked, so only memory can fail; then the old value stays. */
		if (vm_def_set_affinity(def, w->cpu_affinity, NULL, 0) == 0)
			*offending = opt;
	}
}

static int set_remove_devices(const char *cmd, const struct set_request *req, struct vm_def *def,
                              const char **offending)
{
	for (unsigned int i = 0; i < req->nr_remove_disk; i++) {
		char abs[PATH_MAX];
		const char *p = realpath(req->remove_disk[i], abs) ? abs : req->remove_disk[i];
		unsigned int j;

		for (j = 0; j < def->nr_disks && strcmp(def->disks[j].path, p); j++)
			;
		if (j == def->nr_disks)
			return cli_vm_usage(cmd, "--remove-disk '%s': VM '%s' has no such disk",
			                    req->remove_disk[i], def->name);
		vm_def_remove_disk(def, j);
		*offending = "--remove-disk";
	}
	for (unsigned int i = 0; i < req->nr_remove_port; i++) {
		unsigned int j;

		for (j = 0; j < def->console.nr_ports &&
		            strcmp(def->console.ports[j].name, req->remove_port[i]);
		     j++)
			;
		if (j == def->console.nr_ports)
			return cli_vm_usage(cmd,
			                    "--remove-console-port '%s': VM '%s' has no such port",
			                    req->remove_port[i], def->name);
		vm_def_remove_port(def, j);
		*offending = "--remove-console-port";
	}
	for (unsigned int i = 0; i < req->nr_remove_nic; i++) {
		unsigned int j;

		for (j = 0; j < def->nr_nics && strcasecmp(def->nics[j].mac, req->remove_nic[i]);
		     j++)
			;
		if (j == def->nr_nics)
			return cli_vm_usage(cmd, "--remove-nic '%s': VM '%s' has no such NIC",
			                    req->remove_nic[i], def->name);
		free(def->nics[j].network);
		memmove(&def->nics[j], &def->nics[j + 1],
		        (def->nr_nics - j - 1) * sizeof(def->nics[0]));
		def->nr_nics--;
		memset(&def->nics[def->nr_nics], 0, sizeof(def->nics[0]));
		*offending = "--remove-nic";
	}
	return -1;
}

static bool set_str_eq(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

/* --rng, --vsock, --virtio-console: set, changed (keeping the slot) or removed. */
static int set_apply_single(const char *cmd, const struct set_request *req, struct vm_def *def,
                            const char **offending)
{
	const struct vm_def *w = &req->want;
	const char *opt;

	if (set_seen(req, CLI_DEF_RNG, &opt) && w->rng.enabled != def->rng.enabled) {
		def->rng.enabled = w->rng.enabled;
		def->rng.pci_slot = 0;
		*offending = opt;
	}
	if (req->clear_vsock && def->vsock.cid) {
		free(def->vsock.socket);
		memset(&def->vsock, 0, sizeof(def->vsock));
		*offending = "--vsock";
	}
	if (set_seen(req, CLI_DEF_VSOCK, &opt) &&
	    (w->vsock.cid != def->vsock.cid || !set_str_eq(w->vsock.socket, def->vsock.socket))) {
		if (vm_def_set_str(&def->vsock.socket, w->vsock.socket) < 0)
			return cli_vm_error(cmd, "out of memory");
		def->vsock.cid = w->vsock.cid;
		*offending = opt;
	}
	if (req->clear_hvc && def->console.socket) {
		free(def->console.socket);
		def->console.socket = NULL;
		if (!vm_def_has_console(def))
			def->console.pci_slot = 0;
		*offending = "--virtio-console";
	}
	if (set_seen(req, CLI_DEF_VIRTIO_CONSOLE, &opt) &&
	    !set_str_eq(w->console.socket, def->console.socket)) {
		if (vm_def_set_str(&def->console.socket, w->console.socket) < 0)
			return cli_vm_error(cmd, "out of memory");
		*offending = opt;
	}
	return -1;
}

static int set_add_devices(const char *cmd, const struct set_request *req, struct vm_def *def,
                           const char **offending)
{
	const struct vm_def *w = &req->want;
	const char *opt = NULL;

	for (unsigned int i = 0; i < w->nr_disks; i++) {
		set_seen(req, CLI_DEF_DISK, &opt);
		if (def->nr_disks == STORE_MAX_DISKS)
			return cli_vm_usage(cmd, "at most %d disks", STORE_MAX_DISKS);
		for (unsigned int j = 0; j < def->nr_disks; j++) {
			if (!strcmp(def->disks[j].path, w->disks[i].path))
				return cli_vm_usage(cmd, "%s '%s': the VM already has it", opt,
				                    w->disks[i].path);
		}
		def->disks[def->nr_disks] = w->disks[i];
		def->disks[def->nr_disks].pci_slot = 0;
		def->disks[def->nr_disks].path = strdup(w->disks[i].path);
		if (!def->disks[def->nr_disks++].path)
			return cli_vm_error(cmd, "out of memory");
		*offending = opt;
	}
	for (unsigned int i = 0; i < w->console.nr_ports; i++) {
		struct vm_def_port *p = &def->console.ports[def->console.nr_ports];

		set_seen(req, CLI_DEF_CONSOLE_PORT, &opt);
		if (def->console.nr_ports == STORE_MAX_CONSOLE_PORTS)
			return cli_vm_usage(cmd, "at most %d console ports",
			                    STORE_MAX_CONSOLE_PORTS);
		for (unsigned int j = 0; j < def->console.nr_ports; j++) {
			if (!strcmp(def->console.ports[j].name, w->console.ports[i].name))
				return cli_vm_usage(cmd, "%s: the VM has a port named '%s' already",
				                    opt, w->console.ports[i].name);
		}
		def->console.nr_ports++;
		if (vm_def_set_str(&p->name, w->console.ports[i].name) < 0 ||
		    vm_def_set_str(&p->socket, w->console.ports[i].socket) < 0)
			return cli_vm_error(cmd, "out of memory");
		*offending = opt;
	}
	for (unsigned int i = 0; i < w->nr_nics; i++) {
		struct vm_nic *n = &def->nics[def->nr_nics];

		set_seen(req, CLI_DEF_NIC, &opt);
		if (def->nr_nics == STORE_MAX_NICS)
			return cli_vm_usage(cmd, "at most %d NICs", STORE_MAX_NICS);
		for (unsigned int j = 0; w->nics[i].mac[0] && j < def->nr_nics; j++) {
			if (!strcasecmp(def->nics[j].mac, w->nics[i].mac))
				return cli_vm_usage(cmd, "%s: the VM has a NIC with MAC %s already",
				                    opt, w->nics[i].mac);
		}
		*n = w->nics[i];
		n->network = NULL;
		n->pci_slot = 0;
		def->nr_nics++;
		if (vm_def_set_str(&n->network, w->nics[i].network) < 0)
			return cli_vm_error(cmd, "out of memory");
		*offending = opt;
	}
	return -1;
}

/*
 * Apply @req to @def: removals first, so that what is added may take a
 * freed slot, then new slots for what has none. Says in @offending which
 * change needs the VM off, if any. Returns -1 or an exit status.
 */
static int set_apply(const char *cmd, const struct set_request *req, struct vm_def *def,
                     const char **offending)
{
	const struct vm_def *w = &req->want;
	unsigned int vsock_slot = def->vsock.pci_slot, console_slot = def->console.pci_slot;
	int r;

	*offending = NULL;
	set_apply_scalars(req, def, offending);
	r = set_remove_devices(cmd, req, def, offending);
	if (r < 0)
		r = set_apply_single(cmd, req, def, offending);
	if (r < 0)
		r = set_add_devices(cmd, req, def, offending);
	if (r >= 0)
		return r;
	/*
	 * A device there before and after this command is the same device, even
	 * if it was emptied on the way (its last port removed as hvc0 was given).
	 */
	if (def->vsock.cid && !def->vsock.pci_slot)
		def->vsock.pci_slot = vsock_slot;
	if (vm_def_has_console(def) && !def->console.pci_slot)
		def->console.pci_slot = console_slot;
	if (vm_def_assign_slots(def) < 0)
		return cli_vm_usage(cmd, "too many devices for PCI bus 0");
	vm_def_assign_macs(def);
	if ((set_seen(req, CLI_DEF_KERNEL, NULL) && vm_def_set_str(&def->kernel, w->kernel) < 0) ||
	    (set_seen(req, CLI_DEF_INITRD, NULL) && vm_def_set_str(&def->initrd, w->initrd) < 0) ||
	    (req->clear_initrd && vm_def_set_str(&def->initrd, NULL) < 0) ||
	    (set_seen(req, CLI_DEF_CMDLINE, NULL) && vm_def_set_str(&def->cmdline, w->cmdline) < 0))
		return cli_vm_error(cmd, "out of memory");
	return -1;
}

/* A removal, remembered by name; -1 or an exit status. */
static int set_remember(const char *opt, const char *arg, const char **list, unsigned int *n,
                        unsigned int max)
{
	if (*n == max)
		return cli_vm_usage("set", "too many %s", opt);
	list[(*n)++] = arg;
	return -1;
}

/* One option, spelled @name ("add-disk"), with its argument @arg; -1 or an exit status. */
static int set_option(struct set_request *req, int opt, const char *name, const char *arg)
{
	if (opt == CLI_DEF_INITRD && !strcmp(arg, "none")) {
		req->clear_initrd = true;
		return -1;
	}
	if (opt == CLI_DEF_VSOCK && !strcmp(arg, "none")) {
		req->clear_vsock = true;
		return -1;
	}
	if (opt == CLI_DEF_VIRTIO_CONSOLE && !strcmp(arg, "none")) {
		req->clear_hvc = true;
		return -1;
	}
	if (opt >= CLI_DEF_KERNEL && opt < CLI_DEF_END) {
		req->seen |= SET_BIT(opt);
		snprintf(req->spelled[opt - CLI_DEF_KERNEL], sizeof(req->spelled[0]), "--%s", name);
		return cli_vm_def_option("set", &req->want, opt, arg);
	}
	switch (opt) {
	case SET_OPT_REMOVE_DISK:
		return set_remember("--remove-disk", arg, req->remove_disk, &req->nr_remove_disk,
		                    STORE_MAX_DISKS);
	case SET_OPT_REMOVE_PORT:
		return set_remember("--remove-console-port", arg, req->remove_port,
		                    &req->nr_remove_port, STORE_MAX_CONSOLE_PORTS);
	case SET_OPT_REMOVE_NIC:
		return set_remember("--remove-nic", arg, req->remove_nic, &req->nr_remove_nic,
		                    STORE_MAX_NICS);
	}
	return cli_vm_usage("set", "unknown option '--%s'", name);
}

static int set_parse(int argc, char **argv, struct set_request *req)
{
	static const struct option opts[] = {
	    {"cpus", required_argument, NULL, CLI_DEF_CPUS},
	    {"memory", required_argument, NULL, CLI_DEF_MEMORY},
	    {"nested", required_argument, NULL, CLI_DEF_NESTED},
	    {"hugepages", required_argument, NULL, CLI_DEF_HUGEPAGES},
	    {"pit", required_argument, NULL, CLI_DEF_PIT},
	    {"cpu-affinity", required_argument, NULL, CLI_DEF_CPU_AFFINITY},
	    {"kernel", required_argument, NULL, CLI_DEF_KERNEL},
	    {"initrd", required_argument, NULL, CLI_DEF_INITRD},
	    {"cmdline", required_argument, NULL, CLI_DEF_CMDLINE},
	    {"disk", required_argument, NULL, CLI_DEF_DISK},
	    {"add-disk", required_argument, NULL, CLI_DEF_DISK},
	    {"remove-disk", required_argument, NULL, SET_OPT_REMOVE_DISK},
	    /* on|off here: `new --rng` turns it on, `set` can also turn it off. */
	    {"rng", required_argument, NULL, CLI_DEF_RNG},
	    {"vsock", required_argument, NULL, CLI_DEF_VSOCK},
	    {"virtio-console", required_argument, NULL, CLI_DEF_VIRTIO_CONSOLE},
	    {"console-port", required_argument, NULL, CLI_DEF_CONSOLE_PORT},
	    {"add-console-port", required_argument, NULL, CLI_DEF_CONSOLE_PORT},
	    {"remove-console-port", required_argument, NULL, SET_OPT_REMOVE_PORT},
	    {"nic", required_argument, NULL, CLI_DEF_NIC},
	    {"add-nic", required_argument, NULL, CLI_DEF_NIC},
	    {"remove-nic", required_argument, NULL, SET_OPT_REMOVE_NIC},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int opt, idx, r = -1, changes = 0;

	optind = 1;
	opterr = 0;
	for (idx = -1; r < 0 && (opt = getopt_long(argc, argv, "h", opts, &idx)) != -1; idx = -1) {
		if (opt == 'h') {
			fputs(set_usage, stdout);
			return 0;
		}
		if (opt == '?' || opt == ':' || idx < 0)
			return cli_vm_usage("set", "unknown or incomplete option '%s'",
			                    argv[optind - 1]);
		r = set_option(req, opt, opts[idx].name, optarg);
		changes++;
	}
	if (r < 0 && !changes)
		r = cli_vm_usage("set", "nothing to change");
	return r;
}

int cmd_set(int argc, char **argv)
{
	struct set_request req;
	struct vm_def def = {0};
	char what[64];
	const char *name = NULL, *offending;
	struct mgr_err err;
	struct store st;
	int r, def_fd = -1, run_fd = -1;
	bool up = false;

	memset(&req, 0, sizeof(req));
	r = set_parse(argc, argv, &req);
	if (r < 0)
		r = cli_vm_name_arg("set", argc, argv, &name);
	if (r < 0)
		r = cli_vm_open_store("set", &st);
	if (r >= 0)
		goto out;
	def_fd = store_lock_acquire(&st, name, STORE_LOCK_DEF, 5000, &err);
	if (def_fd < 0) {
		r = cli_vm_error("set", "%s", err.msg);
		goto out;
	}
	if (store_load(&st, name, &def, &err) < 0) {
		r = cli_vm_error("set", "%s", err.msg);
		goto out;
	}
	r = set_apply("set", &req, &def, &offending);
	if (r >= 0)
		goto out;
	if (offending) {
		snprintf(what, sizeof(what), "%s can be changed", offending);
		run_fd = cli_vm_lock_off("set", &st, name, what);
		if (run_fd < 0) {
			r = NESTVM_EXIT_ERROR;
			goto out;
		}
		/* The saved state is of the machine as it is: it must restore into the same. */
		if (store_has_saved(&st, name)) {
			r = cli_vm_error("set",
			                 "VM '%s' is saved: %s only after it has run again, or with its "
			                 "saved state discarded (nestvm start --discard-saved %s)",
			                 name, what, name);
			goto out;
		}
	} else {
		up = store_lock_held(&st, name, STORE_LOCK_RUN) > 0;
	}
	if (store_save(&st, &def, &err) < 0) {
		r = cli_vm_error("set", "%s", err.msg);
		goto out;
	}
	printf("VM '%s': cpus %u, memory %llu MiB, nested %s, %u disk(s), %u NIC(s)%s%s%s%s\n",
	       name, def.cpus, (unsigned long long)def.memory_mib, def.nested ? "on" : "off",
	       def.nr_disks, def.nr_nics, def.rng.enabled ? ", rng" : "",
	       def.vsock.cid ? ", vsock" : "", vm_def_has_console(&def) ? ", virtio-console" : "",
	       up ? "; the kernel, initrd and cmdline apply at the next start" : "");
	r = 0;
out:
	store_lock_release(run_fd);
	store_lock_release(def_fd);
	vm_def_clear(&def);
	vm_def_clear(&req.want);
	return r;
}
