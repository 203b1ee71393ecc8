/* SPDX-License-Identifier: MIT */
/*
 * The options that say what a VM is, shared by `nestvm run`, `new` and `set`
 * (opts_virtio.h): cli_def_option() applies one to a struct vm_def, on top
 * of the parsers of the virtio devices' option syntax (--disk, --vsock,
 * --console-port), where words are separated by single commas and ",," is a
 * comma inside a word, as in QEMU, so that any path can be given.
 */
#include "cli/opts_virtio.h"

#include "backends/disk.h"
#include "cli/cli.h"
#include "core/vm_limits.h"
#include "manager/store.h"
#include "net/netport.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* The words of an argument being split in place, and its original for errors. */
struct opts_split {
	char *arg;
	char *next; /* NULL after the last word */
	char *orig; /* a copy of @arg as given */
};

static int opts_begin(struct opts_split *sp, char *arg)
{
	sp->arg = arg;
	sp->next = arg;
	sp->orig = strdup(arg);
	return sp->orig ? 0 : -ENOMEM;
}

/*
 * The next word, NUL-terminated in place with ",," turned into ",", or NULL
 * after the last. The unescaped word never outgrows its escaped form, so
 * writing it in place does not reach the words still to come.
 */
static char *opts_word(struct opts_split *sp)
{
	char *r = sp->next, *w = sp->next, *word = sp->next;

	if (!r)
		return NULL;
	for (;;) {
		if (r[0] == ',' && r[1] == ',') {
			*w++ = ',';
			r += 2;
			continue;
		}
		if (r[0] == ',' || r[0] == '\0') {
			sp->next = r[0] ? r + 1 : NULL;
			*w = '\0';
			return word;
		}
		*w++ = *r++;
	}
}

/* Leave the argument as it was given, so that an error message can quote it. */
static int opts_fail(struct opts_split *sp)
{
	strcpy(sp->arg, sp->orig);
	free(sp->orig);
	sp->orig = NULL;
	return -EINVAL;
}

static int opts_done(struct opts_split *sp)
{
	free(sp->orig);
	sp->orig = NULL;
	return 0;
}

int cli_parse_disk(char *arg, struct vm_disk_config *out)
{
	struct opts_split sp;
	char *word;

	memset(out, 0, sizeof(*out));
	out->engine = DISK_ENGINE_AUTO;
	if (opts_begin(&sp, arg) < 0)
		return -ENOMEM;
	word = opts_word(&sp);
	if (!word || !word[0])
		return opts_fail(&sp);
	out->path = word;
	while ((word = opts_word(&sp))) {
		if (!strcmp(word, "readonly") || !strcmp(word, "ro"))
			out->readonly = true;
		else if (!strcmp(word, "io=auto"))
			out->engine = DISK_ENGINE_AUTO;
		else if (!strcmp(word, "io=uring") || !strcmp(word, "io=io_uring"))
			out->engine = DISK_ENGINE_URING;
		else if (!strcmp(word, "io=threads"))
			out->engine = DISK_ENGINE_THREADS;
		else
			return opts_fail(&sp);
	}
	return opts_done(&sp);
}

int cli_parse_vsock(char *arg, uint32_t *cid, const char **socket)
{
	struct opts_split sp;
	char *word, *end;
	unsigned long v;

	*cid = 0;
	*socket = NULL;
	if (arg[0] < '0' || arg[0] > '9')
		return -EINVAL;
	if (opts_begin(&sp, arg) < 0)
		return -ENOMEM;
	word = opts_word(&sp);
	errno = 0;
	v = strtoul(word, &end, 10);
	/* 0, 1 and 2 are reserved (2 is the host), and so is 0xffffffff (§5.10.4). */
	if (errno || *end || v < 3 || v >= 0xffffffffUL)
		return opts_fail(&sp);
	*cid = (uint32_t)v;
	while ((word = opts_word(&sp))) {
		if (!strncmp(word, "socket=", 7) && word[7])
			*socket = word + 7;
		else
			return opts_fail(&sp);
	}
	return opts_done(&sp);
}

int cli_parse_console_port(char *arg, struct vm_console_port *out)
{
	struct opts_split sp;
	char *word;

	memset(out, 0, sizeof(*out));
	if (opts_begin(&sp, arg) < 0)
		return -ENOMEM;
	word = opts_word(&sp);
	if (!word || !word[0] || strlen(word) > 64)
		return opts_fail(&sp);
	out->name = word;
	while ((word = opts_word(&sp))) {
		if (!strncmp(word, "socket=", 7) && word[7])
			out->socket = word + 7;
		else
			return opts_fail(&sp);
	}
	if (!out->socket)
		return opts_fail(&sp);
	return opts_done(&sp);
}

/* "on" or "off" after @prefix ("dhcp-guard="); false if @word is not that. */
static bool opts_flag(const char *word, const char *prefix, bool *out)
{
	size_t n = strlen(prefix);

	if (strncmp(word, prefix, n))
		return false;
	if (!strcmp(word + n, "on"))
		*out = true;
	else if (!strcmp(word + n, "off"))
		*out = false;
	else
		return false;
	return true;
}

int cli_parse_nic(char *arg, struct cli_nic *out)
{
	struct opts_split sp;
	char *word;

	*out = (struct cli_nic){.dhcp_guard = true, .router_guard = true};
	if (opts_begin(&sp, arg) < 0)
		return -ENOMEM;
	while ((word = opts_word(&sp))) {
		if (!strncmp(word, "switch=", 7) && word[7])
			out->switch_name = word + 7;
		else if (!strncmp(word, "mac=", 4) && word[4])
			out->mac = word + 4;
		else if (!strncmp(word, "mtu=", 4) && word[4])
			out->mtu = word + 4;
		else if (!opts_flag(word, "mac-spoofing=", &out->mac_spoofing) &&
		         !opts_flag(word, "dhcp-guard=", &out->dhcp_guard) &&
		         !opts_flag(word, "router-guard=", &out->router_guard))
			return opts_fail(&sp);
	}
	if (!out->switch_name)
		return opts_fail(&sp);
	return opts_done(&sp);
}

/* ---- the options, applied to a definition ---- */

/* An option's name for messages: "--disk". */
static const char *const def_opt_names[CLI_DEF_END - CLI_DEF_KERNEL] = {
    [CLI_DEF_KERNEL - CLI_DEF_KERNEL] = "--kernel",
    [CLI_DEF_INITRD - CLI_DEF_KERNEL] = "--initrd",
    [CLI_DEF_CMDLINE - CLI_DEF_KERNEL] = "--cmdline",
    [CLI_DEF_CPUS - CLI_DEF_KERNEL] = "--cpus",
    [CLI_DEF_MEMORY - CLI_DEF_KERNEL] = "--memory",
    [CLI_DEF_NESTED - CLI_DEF_KERNEL] = "--nested",
    [CLI_DEF_HUGEPAGES - CLI_DEF_KERNEL] = "--hugepages",
    [CLI_DEF_PIT - CLI_DEF_KERNEL] = "--pit",
    [CLI_DEF_CPU_AFFINITY - CLI_DEF_KERNEL] = "--cpu-affinity",
    [CLI_DEF_DISK - CLI_DEF_KERNEL] = "--disk",
    [CLI_DEF_RNG - CLI_DEF_KERNEL] = "--rng",
    [CLI_DEF_VSOCK - CLI_DEF_KERNEL] = "--vsock",
    [CLI_DEF_VIRTIO_CONSOLE - CLI_DEF_KERNEL] = "--virtio-console",
    [CLI_DEF_CONSOLE_PORT - CLI_DEF_KERNEL] = "--console-port",
    [CLI_DEF_NIC - CLI_DEF_KERNEL] = "--nic",
};

/*
 * @path made absolute into *@out (owned): with @resolve, by realpath() of an
 * existing regular file or block device; otherwise by prefixing the working
 * directory, for a file that need not exist yet (a socket) or that the VM's
 * creation checks (`run`'s kernel and disks, whose errors are its own).
 */
static int def_path(const char *opt, const char *arg, const char *path, bool resolve, char **out,
                    struct mgr_err *err)
{
	char abs[PATH_MAX], cwd[PATH_MAX];
	struct stat sb;
	int n;

	if (!path[0])
		return mgr_err_set(err, -EINVAL, "%s '%s': give a path", opt, arg);
	if (resolve) {
		if (!realpath(path, abs) || stat(abs, &sb) < 0)
			return mgr_err_set(err, -EINVAL, "%s '%s': %s", opt, path, strerror(errno));
		if (!S_ISREG(sb.st_mode) && !S_ISBLK(sb.st_mode))
			return mgr_err_set(err, -EINVAL, "%s '%s': not a regular file", opt, path);
	} else if (path[0] == '/') {
		n = snprintf(abs, sizeof(abs), "%s", path);
		if (n < 0 || (size_t)n >= sizeof(abs))
			return mgr_err_set(err, -EINVAL, "%s '%s': path too long", opt, arg);
	} else {
		if (!getcwd(cwd, sizeof(cwd)))
			return mgr_err_set(err, -EINVAL,
			                   "%s '%s': cannot tell the working directory: %s", opt,
			                   arg, strerror(errno));
		n = snprintf(abs, sizeof(abs), "%s/%s", strcmp(cwd, "/") ? cwd : "", path);
		if (n < 0 || (size_t)n >= sizeof(abs))
			return mgr_err_set(err, -EINVAL, "%s '%s': path too long", opt, arg);
	}
	if (vm_def_set_str(out, abs) < 0)
		return mgr_err_set(err, -ENOMEM, "out of memory");
	return 0;
}

/* A writable copy of @arg for the in-place parsers. */
static char *def_copy(const char *arg, struct mgr_err *err)
{
	char *copy = strdup(arg);

	if (!copy)
		mgr_err_set(err, -ENOMEM, "out of memory");
	return copy;
}

static int def_disk(struct vm_def *def, const char *arg, unsigned int flags, struct mgr_err *err)
{
	struct vm_disk_config cfg;
	struct vm_disk *d;
	char *copy;
	int r;

	if (def->nr_disks == STORE_MAX_DISKS)
		return mgr_err_set(err, -EINVAL, "--disk '%s': at most %d disks", arg,
		                   STORE_MAX_DISKS);
	copy = def_copy(arg, err);
	if (!copy)
		return -ENOMEM;
	r = cli_parse_disk(copy, &cfg);
	if (r < 0) {
		mgr_err_set(err, r,
		            "--disk '%s': give PATH[,readonly][,io=auto|uring|threads] (a comma in "
		            "PATH is written ,,)",
		            arg);
		goto out;
	}
	d = &def->disks[def->nr_disks];
	r = def_path("--disk", arg, cfg.path, flags & CLI_DEF_RESOLVE, &d->path, err);
	if (r < 0)
		goto out;
	for (unsigned int i = 0; i < def->nr_disks; i++) {
		if (!strcmp(def->disks[i].path, d->path)) {
			r = mgr_err_set(err, -EINVAL, "--disk '%s': the VM already has this disk",
			                arg);
			free(d->path);
			d->path = NULL;
			goto out;
		}
	}
	d->readonly = cfg.readonly;
	d->io = (enum disk_engine)cfg.engine;
	d->pci_slot = 0;
	def->nr_disks++;
out:
	free(copy);
	return r;
}

static int def_vsock(struct vm_def *def, const char *arg, struct mgr_err *err)
{
	const char *socket;
	uint32_t cid;
	char *copy;
	int r;

	copy = def_copy(arg, err);
	if (!copy)
		return -ENOMEM;
	r = cli_parse_vsock(copy, &cid, &socket);
	if (r < 0)
		r = mgr_err_set(err, r, "--vsock '%s': give CID[,socket=PATH], CID from %u to %u",
		                arg, VM_DEF_VSOCK_CID_MIN, VM_DEF_VSOCK_CID_MAX);
	else if (socket)
		r = def_path("--vsock", arg, socket, false, &def->vsock.socket, err);
	else
		r = vm_def_set_str(&def->vsock.socket, NULL);
	/* A vsock device that was there keeps its slot. */
	if (r == 0)
		def->vsock.cid = cid;
	free(copy);
	return r;
}

static int def_console_port(struct vm_def *def, const char *arg, struct mgr_err *err)
{
	struct vm_def_console *con = &def->console;
	struct vm_console_port port;
	struct vm_def_port *p;
	char *copy;
	int r;

	if (con->nr_ports == STORE_MAX_CONSOLE_PORTS)
		return mgr_err_set(err, -EINVAL, "--console-port '%s': at most %d ports", arg,
		                   STORE_MAX_CONSOLE_PORTS);
	copy = def_copy(arg, err);
	if (!copy)
		return -ENOMEM;
	r = cli_parse_console_port(copy, &port);
	if (r < 0) {
		mgr_err_set(err, r,
		            "--console-port '%s': give NAME,socket=PATH (NAME 1 to %d bytes)", arg,
		            VM_DEF_PORT_NAME_MAX);
		goto out;
	}
	for (unsigned int i = 0; i < con->nr_ports; i++) {
		if (!strcmp(con->ports[i].name, port.name)) {
			r = mgr_err_set(err, -EINVAL,
			                "--console-port '%s': the VM has a port named '%s' already",
			                arg, port.name);
			goto out;
		}
	}
	p = &con->ports[con->nr_ports];
	r = def_path("--console-port", arg, port.socket, false, &p->socket, err);
	if (r == 0 && vm_def_set_str(&p->name, port.name) < 0)
		r = mgr_err_set(err, -ENOMEM, "out of memory");
	if (r < 0) {
		free(p->socket);
		free(p->name);
		memset(p, 0, sizeof(*p));
		goto out;
	}
	con->nr_ports++;
out:
	free(copy);
	return r;
}

static int def_nic(struct vm_def *def, const char *arg, struct mgr_err *err)
{
	struct cli_nic cn;
	struct vm_nic *nic;
	uint8_t mac[6];
	char *copy;
	int r;

	if (def->nr_nics == STORE_MAX_NICS)
		return mgr_err_set(err, -EINVAL, "--nic '%s': at most %d NICs", arg,
		                   STORE_MAX_NICS);
	copy = def_copy(arg, err);
	if (!copy)
		return -ENOMEM;
	r = cli_parse_nic(copy, &cn);
	if (r < 0) {
		mgr_err_set(err, r,
		            "--nic '%s': give switch=NAME[,mac=MAC][,mtu=N][,mac-spoofing=on|off]"
		            "[,dhcp-guard=on|off][,router-guard=on|off]",
		            arg);
		goto out;
	}
	if (store_check_name(cn.switch_name, NULL) < 0) {
		r = mgr_err_set(err, -EINVAL,
		                "--nic '%s': '%s' is not a switch name (letters, digits, '.', '_', "
		                "'-')",
		                arg, cn.switch_name);
		goto out;
	}
	if (cn.mac && (netport_mac_parse(cn.mac, mac) < 0 || (mac[0] & 1))) {
		r = mgr_err_set(err, -EINVAL,
		                "--nic '%s': '%s' is not a unicast MAC like 02:00:00:12:34:56", arg,
		                cn.mac);
		goto out;
	}
	nic = &def->nics[def->nr_nics];
	vm_def_init_nic(nic);
	if (cn.mtu) {
		char *end;
		unsigned long v;

		errno = 0;
		v = strtoul(cn.mtu, &end, 10);
		if (errno || *end || cn.mtu[0] < '0' || cn.mtu[0] > '9' || v < VM_DEF_MTU_MIN ||
		    v > VM_DEF_MTU_MAX) {
			r = mgr_err_set(err, -EINVAL, "--nic '%s': mtu=%s: give %d to %d", arg,
			                cn.mtu, VM_DEF_MTU_MIN, VM_DEF_MTU_MAX);
			goto out;
		}
		nic->mtu = (unsigned int)v;
	}
	if (cn.mac)
		netport_mac_format(mac, nic->mac);
	for (unsigned int i = 0; cn.mac && i < def->nr_nics; i++) {
		if (!strcasecmp(def->nics[i].mac, nic->mac)) {
			r = mgr_err_set(err, -EINVAL,
			                "--nic '%s': the VM has a NIC with MAC %s already", arg,
			                nic->mac);
			goto out;
		}
	}
	if (vm_def_set_str(&nic->network, cn.switch_name) < 0) {
		r = mgr_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	nic->mac_spoofing = cn.mac_spoofing;
	nic->dhcp_guard = cn.dhcp_guard;
	nic->router_guard = cn.router_guard;
	def->nr_nics++;
out:
	free(copy);
	return r;
}

/* --nested, --hugepages, --pit, and --rng's optional value. */
static int def_on_off(const char *opt, const char *arg, bool *out, struct mgr_err *err)
{
	int flag;

	if (cli_parse_on_off(arg, &flag) < 0)
		return mgr_err_set(err, -EINVAL, "%s '%s': give on or off", opt, arg);
	*out = flag;
	return 0;
}

int cli_def_option(struct vm_def *def, int opt, const char *arg, unsigned int flags,
                   struct mgr_err *err)
{
	char why[VM_LIMITS_WHY_LEN];
	bool resolve = flags & CLI_DEF_RESOLVE;
	const char *name;

	if (opt < CLI_DEF_KERNEL || opt >= CLI_DEF_END)
		return mgr_err_set(err, -EINVAL, "not an option of a VM's definition");
	name = def_opt_names[opt - CLI_DEF_KERNEL];
	if (!arg && opt != CLI_DEF_RNG)
		return mgr_err_set(err, -EINVAL, "%s needs a value", name);
	switch (opt) {
	case CLI_DEF_KERNEL:
		return def_path(name, arg, arg, resolve, &def->kernel, err);
	case CLI_DEF_INITRD:
		return def_path(name, arg, arg, resolve, &def->initrd, err);
	case CLI_DEF_CMDLINE:
		return vm_def_set_str(&def->cmdline, arg) < 0
		           ? mgr_err_set(err, -ENOMEM, "out of memory")
		           : 0;
	case CLI_DEF_CPUS:
		if (vm_limits_parse_cpus(arg, &def->cpus, why, sizeof(why)) < 0)
			return mgr_err_set(err, -EINVAL, "--cpus '%s': %s", arg, why);
		return 0;
	case CLI_DEF_MEMORY:
		if (vm_limits_parse_memory(arg, &def->memory_mib, why, sizeof(why)) < 0)
			return mgr_err_set(err, -EINVAL, "--memory '%s': %s", arg, why);
		return 0;
	case CLI_DEF_NESTED:
		return def_on_off(name, arg, &def->nested, err);
	case CLI_DEF_HUGEPAGES:
		return def_on_off(name, arg, &def->hugepages, err);
	case CLI_DEF_PIT:
		return def_on_off(name, arg, &def->pit, err);
	case CLI_DEF_CPU_AFFINITY: {
		int r;

		/* `set` takes none for any CPU. */
		if (!strcmp(arg, "none"))
			return vm_def_set_affinity(def, NULL, NULL, 0);
		r = vm_def_set_affinity(def, arg, why, sizeof(why));
		if (r == -EINVAL)
			return mgr_err_set(err, r, "--cpu-affinity '%s': %s", arg, why);
		return r < 0 ? mgr_err_set(err, r, "out of memory") : 0;
	}
	case CLI_DEF_DISK:
		return def_disk(def, arg, flags, err);
	case CLI_DEF_RNG: {
		bool on = true;

		if (arg && def_on_off(name, arg, &on, err) < 0)
			return -EINVAL;
		/* An rng that was there keeps its slot; one turned off gives it up. */
		if (!on)
			def->rng.pci_slot = 0;
		def->rng.enabled = on;
		return 0;
	}
	case CLI_DEF_VSOCK:
		return def_vsock(def, arg, err);
	case CLI_DEF_VIRTIO_CONSOLE:
		return def_path(name, arg, arg, false, &def->console.socket, err);
	case CLI_DEF_CONSOLE_PORT:
		return def_console_port(def, arg, err);
	case CLI_DEF_NIC:
		return def_nic(def, arg, err);
	}
	return mgr_err_set(err, -EINVAL, "not an option of a VM's definition");
}
