/* SPDX-License-Identifier: MIT */
/*
 * The VM configuration schema (vm_def.h): vm.json parsed and formatted, the
 * validator, PCI slot assignment, and the translation into the vm_config
 * that core/vm.c runs.
 *
 * A definition file is user-editable and therefore untrusted: every field is
 * checked for type and range, unknown fields are refused (a typo must not be
 * silently ignored), and each error names the file and the field. A
 * definition built in code is judged by the same parser: vm_def_validate()
 * formats it and parses the result.
 */
#include "manager/vm_def.h"

#include "core/vm.h"
#include "core/vm_limits.h"
#include "manager/store.h"
#include "net/netport.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

_Static_assert(STORE_MAX_DISKS <= VM_MAX_DISKS, "a definition may list more disks than a VM takes");
_Static_assert(STORE_MAX_CONSOLE_PORTS <= VM_MAX_CONSOLE_PORTS,
               "a definition may list more console ports than a VM takes");
_Static_assert(STORE_MAX_NICS <= VM_MAX_NICS, "a definition may list more NICs than a VM takes");

/* Every PCI device a definition can hold: the disks, rng, vsock, virtio-console, the NICs. */
#define VM_DEF_MAX_PCI (STORE_MAX_DISKS + 3 + STORE_MAX_NICS)
#define VM_DEF_OWNER_LEN 32

/* Which field holds each PCI slot, while a definition is parsed. */
struct def_slots {
	char owner[VM_DEF_PCI_SLOT_MAX + 1][VM_DEF_OWNER_LEN];
};

static const char *const def_io_names[] = {
    [DISK_ENGINE_AUTO] = "auto",
    [DISK_ENGINE_URING] = "uring",
    [DISK_ENGINE_THREADS] = "threads",
};

void vm_def_init(struct vm_def *def)
{
	memset(def, 0, sizeof(*def));
	def->cpus = 1;
	def->memory_mib = 512;
	def->hugepages = true;
	def->pit = true;
}

bool vm_def_has_console(const struct vm_def *def)
{
	return def->console.socket || def->console.nr_ports;
}

/* ---- parsing ---- */

/* A short rendering of a JSON value for "got ..." in messages. */
static void def_describe(const json_t *v, char *buf, size_t len)
{
	char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);

	snprintf(buf, len, "%s", s ? s : "?");
	if (s && strlen(s) >= len && len > 4)
		strcpy(buf + len - 4, "...");
	free(s);
}

static int def_fail(struct mgr_err *err, const char *file, const char *field, const json_t *got,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int def_fail(struct mgr_err *err, const char *file, const char *field, const json_t *got,
                    const char *fmt, ...)
{
	char what[256], gotbuf[64] = "";
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (got)
		def_describe(got, gotbuf, sizeof(gotbuf));
	return mgr_err_set(err, -EINVAL, "%s: field '%s': %s%s%s", file, field, what,
	                   got ? ", got " : "", gotbuf);
}

static int def_get_uint(const json_t *v, const char *file, const char *field, uint64_t min,
                        uint64_t max, uint64_t *out, struct mgr_err *err)
{
	json_int_t x;

	if (!json_is_integer(v))
		return def_fail(err, file, field, v, "expected an integer from %llu to %llu",
		                (unsigned long long)min, (unsigned long long)max);
	x = json_integer_value(v);
	if (x < 0 || (uint64_t)x < min || (uint64_t)x > max)
		return def_fail(err, file, field, v, "expected an integer from %llu to %llu",
		                (unsigned long long)min, (unsigned long long)max);
	*out = (uint64_t)x;
	return 0;
}

static int def_get_bool(const json_t *v, const char *file, const char *field, bool *out,
                        struct mgr_err *err)
{
	if (!json_is_boolean(v))
		return def_fail(err, file, field, v, "expected true or false");
	*out = json_is_true(v);
	return 0;
}

/* A string of printable characters (a path may hold any byte but control characters). */
static int def_get_str(const json_t *v, const char *file, const char *field, bool path,
                       bool nullable, char **out, struct mgr_err *err)
{
	const char *s;
	size_t len;

	if (nullable && json_is_null(v)) {
		*out = NULL;
		return 0;
	}
	if (!json_is_string(v))
		return def_fail(err, file, field, v, "expected a string%s",
		                nullable ? " or null" : "");
	s = json_string_value(v);
	len = json_string_length(v);
	if (len == 0 && path)
		return def_fail(err, file, field, NULL, "empty path");
	if (len >= STORE_PATH_MAX || strlen(s) != len)
		return def_fail(err, file, field, NULL, "too long or holds a NUL byte");
	if (path && s[0] != '/')
		return def_fail(err, file, field, v, "expected an absolute path");
	for (size_t i = 0; i < len; i++) {
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return def_fail(err, file, field, NULL, "holds a control character");
	}
	*out = strdup(s);
	return *out ? 0 : mgr_err_set(err, -ENOMEM, "out of memory");
}

static bool def_mac_valid(const char *s)
{
	if (strlen(s) != STORE_MAC_LEN)
		return false;
	for (int i = 0; i < STORE_MAC_LEN; i++) {
		if (i % 3 == 2 ? s[i] != ':' : !isxdigit((unsigned char)s[i]))
			return false;
	}
	/* A unicast address: bit 0 of the first octet clear. */
	return (strtoul(s, NULL, 16) & 1) == 0;
}

/*
 * A device's "pci_slot": a device number on bus 0 that no other device of the
 * definition has. @owner ("disks[1]", "rng") is what a later claim names.
 */
static int def_get_slot(const json_t *v, const char *file, const char *field, const char *owner,
                        struct def_slots *slots, unsigned int *out, struct mgr_err *err)
{
	uint64_t n = 0;
	int r;

	r = def_get_uint(v, file, field, VM_DEF_PCI_SLOT_MIN, VM_DEF_PCI_SLOT_MAX, &n, err);
	if (r < 0)
		return r;
	if (slots->owner[n][0])
		return def_fail(err, file, field, v, "PCI slot %llu is %s's already",
		                (unsigned long long)n, slots->owner[n]);
	snprintf(slots->owner[n], sizeof(slots->owner[n]), "%s", owner);
	*out = (unsigned int)n;
	return 0;
}

static int def_get_io(const json_t *v, const char *file, const char *field, enum disk_engine *out,
                      struct mgr_err *err)
{
	const char *s = json_string_value(v);

	for (size_t i = 0; s && i < sizeof(def_io_names) / sizeof(def_io_names[0]); i++) {
		if (!strcmp(s, def_io_names[i])) {
			*out = (enum disk_engine)i;
			return 0;
		}
	}
	return def_fail(err, file, field, v, "expected \"auto\", \"uring\" or \"threads\"");
}

static int def_parse_disks(const json_t *a, const char *file, struct vm_def *def,
                           struct def_slots *slots, struct mgr_err *err)
{
	char field[64], owner[VM_DEF_OWNER_LEN];
	size_t i;
	json_t *d;

	if (!json_is_array(a))
		return def_fail(err, file, "disks", a, "expected an array");
	if (json_array_size(a) > STORE_MAX_DISKS)
		return def_fail(err, file, "disks", NULL, "at most %d disks", STORE_MAX_DISKS);
	json_array_foreach(a, i, d)
	{
		struct vm_disk *disk = &def->disks[def->nr_disks];
		const char *key;
		json_t *v;
		int r;

		snprintf(field, sizeof(field), "disks[%zu]", i);
		snprintf(owner, sizeof(owner), "disks[%u]", (unsigned int)i);
		if (!json_is_object(d))
			return def_fail(err, file, field, d, "expected an object {\"path\": ...}");
		def->nr_disks++;
		json_object_foreach(d, key, v)
		{
			snprintf(field, sizeof(field), "disks[%zu].%.20s", i, key);
			if (!strcmp(key, "path"))
				r = def_get_str(v, file, field, true, false, &disk->path, err);
			else if (!strcmp(key, "readonly"))
				r = def_get_bool(v, file, field, &disk->readonly, err);
			else if (!strcmp(key, "io"))
				r = def_get_io(v, file, field, &disk->io, err);
			else if (!strcmp(key, "pci_slot"))
				r = def_get_slot(v, file, field, owner, slots, &disk->pci_slot,
				                 err);
			else
				r = def_fail(err, file, field, NULL,
				             "unknown field (known: path, readonly, io, pci_slot)");
			if (r < 0)
				return r;
		}
		if (!disk->path) {
			snprintf(field, sizeof(field), "disks[%zu].path", i);
			return def_fail(err, file, field, NULL, "missing");
		}
	}
	return 0;
}

/* One NIC's field @key. */
static int def_parse_nic_field(const char *key, const json_t *v, const char *file,
                               const char *field, const char *owner, struct vm_nic *nic,
                               struct def_slots *slots, struct mgr_err *err)
{
	int r;

	if (!strcmp(key, "mac")) {
		if (!json_is_string(v) || !def_mac_valid(json_string_value(v)))
			return def_fail(
			    err, file, field, v,
			    "expected a unicast MAC address like \"02:00:00:12:34:56\"");
		strcpy(nic->mac, json_string_value(v));
		return 0;
	}
	/* "network" is what format 1 and 2 called the switch. */
	if (!strcmp(key, "switch") || !strcmp(key, "network")) {
		if (nic->network)
			return def_fail(err, file, field, NULL,
			                "the switch is given already ('network' is its old name)");
		r = def_get_str(v, file, field, false, true, &nic->network, err);
		if (r == 0 && nic->network && store_check_name(nic->network, NULL) < 0)
			r = def_fail(err, file, field, v,
			             "expected a switch name (letters, digits, '.', '_', '-')");
		return r;
	}
	if (!strcmp(key, "mac_spoofing"))
		return def_get_bool(v, file, field, &nic->mac_spoofing, err);
	if (!strcmp(key, "dhcp_guard"))
		return def_get_bool(v, file, field, &nic->dhcp_guard, err);
	if (!strcmp(key, "router_guard"))
		return def_get_bool(v, file, field, &nic->router_guard, err);
	if (!strcmp(key, "mtu")) {
		uint64_t mtu = 0;

		r = def_get_uint(v, file, field, VM_DEF_MTU_MIN, VM_DEF_MTU_MAX, &mtu, err);
		nic->mtu = (unsigned int)mtu;
		return r;
	}
	if (!strcmp(key, "pci_slot"))
		return def_get_slot(v, file, field, owner, slots, &nic->pci_slot, err);
	return def_fail(err, file, field, NULL,
	                "unknown field (known: mac, switch, mac_spoofing, dhcp_guard, "
	                "router_guard, mtu, pci_slot)");
}

static int def_parse_nics(const json_t *a, const char *file, struct vm_def *def,
                          struct def_slots *slots, struct mgr_err *err)
{
	char field[64], owner[VM_DEF_OWNER_LEN];
	size_t i;
	json_t *n;

	if (!json_is_array(a))
		return def_fail(err, file, "nics", a, "expected an array");
	if (json_array_size(a) > STORE_MAX_NICS)
		return def_fail(err, file, "nics", NULL, "at most %d NICs", STORE_MAX_NICS);
	json_array_foreach(a, i, n)
	{
		struct vm_nic *nic = &def->nics[def->nr_nics];
		const char *key;
		json_t *v;
		int r;

		snprintf(field, sizeof(field), "nics[%zu]", i);
		snprintf(owner, sizeof(owner), "nics[%u]", (unsigned int)i);
		if (!json_is_object(n))
			return def_fail(err, file, field, n, "expected an object {\"mac\": ...}");
		vm_def_init_nic(nic);
		def->nr_nics++;
		json_object_foreach(n, key, v)
		{
			snprintf(field, sizeof(field), "nics[%zu].%.20s", i, key);
			r = def_parse_nic_field(key, v, file, field, owner, nic, slots, err);
			if (r < 0)
				return r;
		}
		if (!nic->mac[0]) {
			snprintf(field, sizeof(field), "nics[%zu].mac", i);
			return def_fail(err, file, field, NULL, "missing");
		}
		for (unsigned int j = 0; j + 1 < def->nr_nics; j++) {
			if (!strcasecmp(def->nics[j].mac, nic->mac)) {
				snprintf(field, sizeof(field), "nics[%zu].mac", i);
				return def_fail(err, file, field, NULL,
				                "%s is the MAC of nics[%u] already", nic->mac, j);
			}
		}
	}
	return 0;
}

/* "rng": null (none) or {"pci_slot": N}. */
static int def_parse_rng(const json_t *o, const char *file, struct vm_def *def,
                         struct def_slots *slots, struct mgr_err *err)
{
	const char *key;
	json_t *v;
	int r;

	if (json_is_null(o))
		return 0;
	if (!json_is_object(o))
		return def_fail(err, file, "rng", o,
		                "expected null or an object {\"pci_slot\": N}");
	def->rng.enabled = true;
	json_object_foreach((json_t *)o, key, v)
	{
		if (!strcmp(key, "pci_slot"))
			r = def_get_slot(v, file, "rng.pci_slot", "rng", slots, &def->rng.pci_slot,
			                 err);
		else
			r = def_fail(err, file, "rng", NULL,
			             "unknown field '%.20s' (known: pci_slot)", key);
		if (r < 0)
			return r;
	}
	return 0;
}

/* "vsock": null (none) or {"cid": N, "socket": PATH or null, "pci_slot": N}. */
static int def_parse_vsock(const json_t *o, const char *file, struct vm_def *def,
                           struct def_slots *slots, struct mgr_err *err)
{
	const char *key;
	uint64_t cid;
	json_t *v;
	int r;

	if (json_is_null(o))
		return 0;
	if (!json_is_object(o))
		return def_fail(err, file, "vsock", o,
		                "expected null or an object {\"cid\": N, ...}");
	json_object_foreach((json_t *)o, key, v)
	{
		if (!strcmp(key, "cid")) {
			r = def_get_uint(v, file, "vsock.cid", VM_DEF_VSOCK_CID_MIN,
			                 VM_DEF_VSOCK_CID_MAX, &cid, err);
			def->vsock.cid = (uint32_t)cid;
		} else if (!strcmp(key, "socket")) {
			r = def_get_str(v, file, "vsock.socket", true, true, &def->vsock.socket,
			                err);
		} else if (!strcmp(key, "pci_slot")) {
			r = def_get_slot(v, file, "vsock.pci_slot", "vsock", slots,
			                 &def->vsock.pci_slot, err);
		} else {
			r = def_fail(err, file, "vsock", NULL,
			             "unknown field '%.20s' (known: cid, socket, pci_slot)", key);
		}
		if (r < 0)
			return r;
	}
	if (!def->vsock.cid)
		return def_fail(err, file, "vsock.cid", NULL, "missing");
	return 0;
}

static int def_parse_ports(const json_t *a, const char *file, struct vm_def *def,
                           struct mgr_err *err)
{
	struct vm_def_console *con = &def->console;
	char field[64];
	size_t i;
	json_t *p;

	if (!json_is_array(a))
		return def_fail(err, file, "virtio_console.ports", a, "expected an array");
	if (json_array_size(a) > STORE_MAX_CONSOLE_PORTS)
		return def_fail(err, file, "virtio_console.ports", NULL, "at most %d ports",
		                STORE_MAX_CONSOLE_PORTS);
	json_array_foreach(a, i, p)
	{
		struct vm_def_port *port = &con->ports[con->nr_ports];
		const char *key;
		json_t *v;
		int r;

		snprintf(field, sizeof(field), "virtio_console.ports[%zu]", i);
		if (!json_is_object(p))
			return def_fail(err, file, field, p,
			                "expected an object {\"name\": ..., \"socket\": ...}");
		con->nr_ports++;
		json_object_foreach(p, key, v)
		{
			snprintf(field, sizeof(field), "virtio_console.ports[%zu].%.20s", i, key);
			if (!strcmp(key, "name")) {
				r = def_get_str(v, file, field, false, false, &port->name, err);
				if (r == 0 &&
				    (!port->name[0] || strlen(port->name) > VM_DEF_PORT_NAME_MAX))
					r = def_fail(err, file, field, v, "expected 1 to %d bytes",
					             VM_DEF_PORT_NAME_MAX);
			} else if (!strcmp(key, "socket")) {
				r = def_get_str(v, file, field, true, false, &port->socket, err);
			} else {
				r = def_fail(err, file, field, NULL,
				             "unknown field (known: name, socket)");
			}
			if (r < 0)
				return r;
		}
		snprintf(field, sizeof(field), "virtio_console.ports[%zu].%s", i,
		         !port->name ? "name" : "socket");
		if (!port->name || !port->socket)
			return def_fail(err, file, field, NULL, "missing");
		for (unsigned int j = 0; j + 1 < con->nr_ports; j++) {
			if (!strcmp(con->ports[j].name, port->name)) {
				snprintf(field, sizeof(field), "virtio_console.ports[%zu].name", i);
				return def_fail(err, file, field, NULL,
				                "\"%s\" is the name of ports[%u] already",
				                port->name, j);
			}
		}
	}
	return 0;
}

/*
 * "virtio_console": null (none) or {"socket": PATH or null, "ports": [...],
 * "pci_slot": N}, with hvc0's socket, a port, or both.
 */
static int def_parse_console(const json_t *o, const char *file, struct vm_def *def,
                             struct def_slots *slots, struct mgr_err *err)
{
	const char *key;
	json_t *v;
	int r;

	if (json_is_null(o))
		return 0;
	if (!json_is_object(o))
		return def_fail(err, file, "virtio_console", o,
		                "expected null or an object {\"socket\": ..., \"ports\": [...]}");
	json_object_foreach((json_t *)o, key, v)
	{
		if (!strcmp(key, "socket"))
			r = def_get_str(v, file, "virtio_console.socket", true, true,
			                &def->console.socket, err);
		else if (!strcmp(key, "ports"))
			r = def_parse_ports(v, file, def, err);
		else if (!strcmp(key, "pci_slot"))
			r = def_get_slot(v, file, "virtio_console.pci_slot", "virtio_console",
			                 slots, &def->console.pci_slot, err);
		else
			r = def_fail(err, file, "virtio_console", NULL,
			             "unknown field '%.20s' (known: socket, ports, pci_slot)", key);
		if (r < 0)
			return r;
	}
	if (!vm_def_has_console(def))
		return def_fail(err, file, "virtio_console", NULL,
		                "expected a socket (hvc0), ports, or both; null for no device");
	return 0;
}

/* cpus and memory_mib, judged by core/vm_limits.h as `--cpus` and `--memory` are. */
static int def_parse_size(const char *key, const json_t *v, const char *file, struct vm_def *def,
                          struct mgr_err *err)
{
	char why[VM_LIMITS_WHY_LEN];
	uint64_t n = 0;
	int r;

	if (!strcmp(key, "cpus")) {
		r = def_get_uint(v, file, key, VM_MIN_CPUS, VM_MAX_CPUS, &n, err);
		if (r == 0 && vm_limits_check_cpus(n, why, sizeof(why)) < 0)
			r = def_fail(err, file, key, v, "%s", why);
		def->cpus = n;
		return r;
	}
	/* Judged as `new --memory` judges it, not first by KVM at start. */
	if (!json_is_integer(v))
		return def_fail(err, file, key, v, "expected a whole number of MiB");
	if (vm_limits_check_memory_mib(json_integer_value(v) < 0 ? 0
	                                                         : (uint64_t)json_integer_value(v),
	                               why, sizeof(why)) < 0)
		return def_fail(err, file, key, v, "%s", why);
	def->memory_mib = (uint64_t)json_integer_value(v);
	return 0;
}

/* One top-level field. */
static int def_parse_field(const char *key, const json_t *v, const char *file, struct vm_def *def,
                           struct def_slots *slots, struct mgr_err *err)
{
	uint64_t n = 0;
	int r;

	if (!strcmp(key, "format")) {
		r = def_get_uint(v, file, key, 1, INT_MAX, &n, err);
		if (r == 0 && n > STORE_FORMAT)
			r = def_fail(err, file, key, v,
			             "format %llu is newer than this nestvm reads (%d)",
			             (unsigned long long)n, STORE_FORMAT);
		return r;
	}
	if (!strcmp(key, "name")) {
		if (!json_is_string(v) || store_check_name(json_string_value(v), NULL) < 0)
			return def_fail(err, file, key, v, "expected a VM name");
		strcpy(def->name, json_string_value(v));
		return 0;
	}
	if (!strcmp(key, "cpus") || !strcmp(key, "memory_mib"))
		return def_parse_size(key, v, file, def, err);
	if (!strcmp(key, "nested"))
		return def_get_bool(v, file, key, &def->nested, err);
	if (!strcmp(key, "hugepages"))
		return def_get_bool(v, file, key, &def->hugepages, err);
	if (!strcmp(key, "pit"))
		return def_get_bool(v, file, key, &def->pit, err);
	if (!strcmp(key, "cpu_affinity")) {
		char why[VM_LIMITS_WHY_LEN];
		int r;

		if (!json_is_string(v) && !json_is_null(v))
			return def_fail(err, file, key, v, "expected a list of host CPUs or null");
		r = vm_def_set_affinity(def, json_string_value(v), why, sizeof(why));
		if (r == -EINVAL)
			return def_fail(err, file, key, v, "%s", why);
		return r < 0 ? mgr_err_set(err, r, "out of memory") : 0;
	}
	if (!strcmp(key, "kernel"))
		return def_get_str(v, file, key, true, false, &def->kernel, err);
	if (!strcmp(key, "initrd"))
		return def_get_str(v, file, key, true, true, &def->initrd, err);
	if (!strcmp(key, "cmdline"))
		return def_get_str(v, file, key, false, true, &def->cmdline, err);
	if (!strcmp(key, "disks"))
		return def_parse_disks(v, file, def, slots, err);
	if (!strcmp(key, "nics"))
		return def_parse_nics(v, file, def, slots, err);
	if (!strcmp(key, "rng"))
		return def_parse_rng(v, file, def, slots, err);
	if (!strcmp(key, "vsock"))
		return def_parse_vsock(v, file, def, slots, err);
	if (!strcmp(key, "virtio_console"))
		return def_parse_console(v, file, def, slots, err);

	char field[64];

	snprintf(field, sizeof(field), "%.40s", key);
	return def_fail(err, file, field, NULL,
	                "unknown field (known: name, cpus, memory_mib, nested, hugepages, pit, "
	                "cpu_affinity, kernel, initrd, cmdline, disks, nics, rng, vsock, "
	                "virtio_console)");
}

static int def_parse_object(const json_t *root, const char *file, struct vm_def *def,
                            struct mgr_err *err)
{
	bool have_cpus = false, have_memory = false;
	struct def_slots slots;
	const char *key;
	json_t *v;
	int r;

	if (!json_is_object(root))
		return mgr_err_set(err, -EINVAL, "%s: expected a JSON object at the top level",
		                   file);
	memset(&slots, 0, sizeof(slots));
	json_object_foreach((json_t *)root, key, v)
	{
		r = def_parse_field(key, v, file, def, &slots, err);
		if (r < 0)
			return r;
		have_cpus |= !strcmp(key, "cpus");
		have_memory |= !strcmp(key, "memory_mib");
	}
	if (!def->name[0])
		return def_fail(err, file, "name", NULL, "missing");
	if (!have_cpus)
		return def_fail(err, file, "cpus", NULL, "missing");
	if (!have_memory)
		return def_fail(err, file, "memory_mib", NULL, "missing");
	if (!def->kernel)
		return def_fail(err, file, "kernel", NULL, "missing");
	/* A format 1 file, or a device added by hand: the slots today's machine gives. */
	if (vm_def_assign_slots(def) < 0)
		return def_fail(err, file, "disks", NULL, "no free PCI slot on bus 0");
	return 0;
}

int vm_def_parse(const char *text, size_t len, const char *file, struct vm_def *def,
                 struct mgr_err *err)
{
	json_error_t jerr;
	json_t *root;
	int r;

	memset(def, 0, sizeof(*def));
	/* What a definition that does not say gets: as every VM ran before format 2. */
	def->hugepages = true;
	def->pit = true;
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		memset(def, 0, sizeof(*def));
		return mgr_err_set(err, -EINVAL, "%s:%d:%d: not valid JSON: %s", file, jerr.line,
		                   jerr.column, jerr.text);
	}
	r = def_parse_object(root, file, def, err);
	json_decref(root);
	if (r < 0)
		vm_def_clear(def);
	return r;
}

int vm_def_validate(const struct vm_def *def, struct mgr_err *err)
{
	char *text = vm_def_format(def);
	struct vm_def copy;
	int r;

	if (!text)
		return mgr_err_set(err, -EINVAL,
		                   "definition: a path or string that is not valid UTF-8 cannot be "
		                   "kept (or out of memory)");
	r = vm_def_parse(text, strlen(text), "definition", &copy, err);
	free(text);
	vm_def_clear(&copy);
	return r;
}

/* ---- PCI slots ---- */

/* The slot of each PCI device of @def, in the order slots are assigned; returns the count. */
static unsigned int def_pci_slots(struct vm_def *def, unsigned int *slots[VM_DEF_MAX_PCI])
{
	unsigned int n = 0;

	for (unsigned int i = 0; i < def->nr_disks && i < STORE_MAX_DISKS; i++)
		slots[n++] = &def->disks[i].pci_slot;
	if (def->rng.enabled)
		slots[n++] = &def->rng.pci_slot;
	if (def->vsock.cid)
		slots[n++] = &def->vsock.pci_slot;
	if (vm_def_has_console(def))
		slots[n++] = &def->console.pci_slot;
	for (unsigned int i = 0; i < def->nr_nics && i < STORE_MAX_NICS; i++)
		slots[n++] = &def->nics[i].pci_slot;
	return n;
}

int vm_def_assign_slots(struct vm_def *def)
{
	bool used[VM_DEF_PCI_SLOT_MAX + 1] = {[0] = true};
	unsigned int *slots[VM_DEF_MAX_PCI];
	unsigned int n = def_pci_slots(def, slots), next = VM_DEF_PCI_SLOT_MIN;

	for (unsigned int i = 0; i < n; i++) {
		if (*slots[i] <= VM_DEF_PCI_SLOT_MAX)
			used[*slots[i]] = true;
	}
	for (unsigned int i = 0; i < n; i++) {
		if (*slots[i])
			continue;
		while (next <= VM_DEF_PCI_SLOT_MAX && used[next])
			next++;
		if (next > VM_DEF_PCI_SLOT_MAX)
			return -ENOSPC;
		*slots[i] = next;
		used[next] = true;
	}
	return 0;
}

void vm_def_init_nic(struct vm_nic *nic)
{
	memset(nic, 0, sizeof(*nic));
	nic->dhcp_guard = true;
	nic->router_guard = true;
	nic->mtu = VM_DEF_MTU_DEFAULT;
}

void vm_def_assign_macs(struct vm_def *def)
{
	for (unsigned int i = 0; i < def->nr_nics && i < STORE_MAX_NICS; i++) {
		struct vm_nic *nic = &def->nics[i];

		/* Another index where a NIC given its MAC by hand has this one's. */
		for (unsigned int idx = i; !nic->mac[0]; idx += STORE_MAX_NICS) {
			uint8_t mac[6];

			netport_mac_derive(def->name, idx, mac);
			netport_mac_format(mac, nic->mac);
			for (unsigned int j = 0; j < def->nr_nics; j++) {
				if (j != i && !strcasecmp(def->nics[j].mac, nic->mac)) {
					nic->mac[0] = '\0';
					break;
				}
			}
		}
	}
}

/* ---- formatting ---- */

static json_t *def_format_disks(const struct vm_def *def)
{
	json_t *a = json_array();

	for (unsigned int i = 0; a && i < def->nr_disks; i++) {
		const struct vm_disk *d = &def->disks[i];
		unsigned int io =
		    d->io < sizeof(def_io_names) / sizeof(def_io_names[0]) ? d->io : 0;

		if (json_array_append_new(a,
		                          json_pack("{s:s?, s:b, s:s, s:i}", "path", d->path,
		                                    "readonly", d->readonly, "io", def_io_names[io],
		                                    "pci_slot", (int)d->pci_slot)) < 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

static json_t *def_format_nics(const struct vm_def *def)
{
	json_t *a = json_array();

	for (unsigned int i = 0; a && i < def->nr_nics; i++) {
		const struct vm_nic *n = &def->nics[i];

		if (json_array_append_new(
		        a, json_pack("{s:s, s:s?, s:b, s:b, s:b, s:i, s:i}", "mac", n->mac,
		                     "switch", n->network, "mac_spoofing", n->mac_spoofing,
		                     "dhcp_guard", n->dhcp_guard, "router_guard", n->router_guard,
		                     "mtu", (int)n->mtu, "pci_slot", (int)n->pci_slot)) < 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

static json_t *def_format_console(const struct vm_def *def)
{
	json_t *ports, *o;

	if (!vm_def_has_console(def))
		return json_null();
	ports = json_array();
	for (unsigned int i = 0; ports && i < def->console.nr_ports; i++) {
		if (json_array_append_new(ports, json_pack("{s:s?, s:s?}", "name",
		                                           def->console.ports[i].name, "socket",
		                                           def->console.ports[i].socket)) < 0) {
			json_decref(ports);
			return NULL;
		}
	}
	if (!ports)
		return NULL;
	o = json_pack("{s:s?, s:o, s:i}", "socket", def->console.socket, "ports", ports, "pci_slot",
	              (int)def->console.pci_slot);
	return o;
}

/* A trailing newline, as editors leave it. */
static char *def_dump(const json_t *root)
{
	char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER), *t;
	size_t len;

	if (!text)
		return NULL;
	len = strlen(text);
	t = realloc(text, len + 2);
	if (!t) {
		free(text);
		return NULL;
	}
	memcpy(t + len, "\n", 2);
	return t;
}

char *vm_def_format(const struct vm_def *def)
{
	char *text = NULL;
	json_t *root;
	int bad = 0;

	root = json_object();
	if (!root)
		return NULL;
	bad |= json_object_set_new(root, "format", json_integer(STORE_FORMAT));
	bad |= json_object_set_new(root, "name", json_string(def->name));
	bad |= json_object_set_new(root, "cpus", json_integer(def->cpus));
	bad |= json_object_set_new(root, "memory_mib", json_integer((json_int_t)def->memory_mib));
	bad |= json_object_set_new(root, "nested", json_boolean(def->nested));
	bad |= json_object_set_new(root, "hugepages", json_boolean(def->hugepages));
	bad |= json_object_set_new(root, "pit", json_boolean(def->pit));
	bad |= json_object_set_new(root, "cpu_affinity", def->cpu_affinity
	                                                     ? json_string(def->cpu_affinity)
	                                                     : json_null());
	bad |= json_object_set_new(root, "kernel",
	                           def->kernel ? json_string(def->kernel) : json_null());
	bad |= json_object_set_new(root, "initrd",
	                           def->initrd ? json_string(def->initrd) : json_null());
	bad |= json_object_set_new(root, "cmdline",
	                           def->cmdline ? json_string(def->cmdline) : json_null());
	bad |= json_object_set_new(root, "disks", def_format_disks(def));
	bad |= json_object_set_new(root, "nics", def_format_nics(def));
	bad |= json_object_set_new(root, "rng",
	                           def->rng.enabled
	                               ? json_pack("{s:i}", "pci_slot", (int)def->rng.pci_slot)
	                               : json_null());
	bad |= json_object_set_new(
	    root, "vsock",
	    def->vsock.cid
	        ? json_pack("{s:I, s:s?, s:i}", "cid", (json_int_t)def->vsock.cid, "socket",
	                    def->vsock.socket, "pci_slot", (int)def->vsock.pci_slot)
	        : json_null());
	bad |= json_object_set_new(root, "virtio_console", def_format_console(def));
	/* json_string() refuses a string that is not UTF-8: no text then, not a partial one. */
	if (!bad)
		text = def_dump(root);
	json_decref(root);
	return text;
}

/* ---- changing and freeing ---- */

int vm_def_set_str(char **field, const char *value)
{
	char *copy = NULL;

	if (value) {
		copy = strdup(value);
		if (!copy)
			return -ENOMEM;
	}
	free(*field);
	*field = copy;
	return 0;
}

void vm_def_remove_disk(struct vm_def *def, unsigned int i)
{
	if (i >= def->nr_disks)
		return;
	free(def->disks[i].path);
	memmove(&def->disks[i], &def->disks[i + 1],
	        (def->nr_disks - i - 1) * sizeof(def->disks[0]));
	def->nr_disks--;
	memset(&def->disks[def->nr_disks], 0, sizeof(def->disks[0]));
}

void vm_def_remove_port(struct vm_def *def, unsigned int i)
{
	struct vm_def_console *con = &def->console;

	if (i >= con->nr_ports)
		return;
	free(con->ports[i].name);
	free(con->ports[i].socket);
	memmove(&con->ports[i], &con->ports[i + 1],
	        (con->nr_ports - i - 1) * sizeof(con->ports[0]));
	con->nr_ports--;
	memset(&con->ports[con->nr_ports], 0, sizeof(con->ports[0]));
	if (!vm_def_has_console(def))
		con->pci_slot = 0;
}

int vm_def_set_affinity(struct vm_def *def, const char *list, char *why, size_t why_len)
{
	char text[VM_LIMITS_WHY_LEN];
	cpu_set_t set;
	char *copy = NULL;

	if (list) {
		if (vm_limits_parse_affinity(list, &set, why, why_len) < 0)
			return -EINVAL;
		vm_limits_format_affinity(&set, text, sizeof(text));
		copy = strdup(text);
		if (!copy)
			return -ENOMEM;
	}
	free(def->cpu_affinity);
	def->cpu_affinity = copy;
	return 0;
}

void vm_def_clear(struct vm_def *def)
{
	free(def->cpu_affinity);
	free(def->kernel);
	free(def->initrd);
	free(def->cmdline);
	for (unsigned int i = 0; i < def->nr_disks; i++)
		free(def->disks[i].path);
	for (unsigned int i = 0; i < def->nr_nics; i++)
		free(def->nics[i].network);
	free(def->vsock.socket);
	free(def->console.socket);
	for (unsigned int i = 0; i < def->console.nr_ports; i++) {
		free(def->console.ports[i].name);
		free(def->console.ports[i].socket);
	}
	memset(def, 0, sizeof(*def));
}

/* ---- the translation ---- */

int vm_def_to_config(const struct vm_def *def, const char *vsock_default, struct vm_config *cfg,
                     struct mgr_err *err)
{
	*cfg = (struct vm_config){
	    .kernel = def->kernel,
	    .initrd = def->initrd,
	    .cmdline = def->cmdline ? def->cmdline : "",
	    .cpus = def->cpus,
	    .memory = def->memory_mib << 20,
	    .nested = def->nested,
	    .hugepages = def->hugepages,
	    .pit = def->pit,
	    .cpu_affinity = def->cpu_affinity,
	    .console = VM_CONSOLE_NONE,
	    .console_in_fd = -1,
	    .console_out_fd = -1,
	    .kvm_path = "/dev/kvm",
	};
	if (def->nr_disks > STORE_MAX_DISKS || def->console.nr_ports > STORE_MAX_CONSOLE_PORTS ||
	    def->nr_nics > STORE_MAX_NICS)
		return mgr_err_set(err, -EINVAL, "VM '%s': too many devices", def->name);
	for (unsigned int i = 0; i < def->nr_disks; i++) {
		cfg->disks[i] = (struct vm_disk_config){
		    .path = def->disks[i].path,
		    .readonly = def->disks[i].readonly,
		    .engine = def->disks[i].io,
		    .pci_slot = def->disks[i].pci_slot,
		};
	}
	cfg->nr_disks = def->nr_disks;
	cfg->rng = def->rng.enabled;
	cfg->rng_pci_slot = def->rng.pci_slot;
	if (def->vsock.cid) {
		cfg->vsock_cid = def->vsock.cid;
		cfg->vsock_socket = def->vsock.socket ? def->vsock.socket : vsock_default;
		cfg->vsock_pci_slot = def->vsock.pci_slot;
		if (!cfg->vsock_socket)
			return mgr_err_set(err, -EINVAL,
			                   "vsock: no host socket for CID %u: give --vsock "
			                   "%u,socket=PATH",
			                   def->vsock.cid, def->vsock.cid);
	}
	cfg->hvc_socket = def->console.socket;
	for (unsigned int i = 0; i < def->console.nr_ports; i++) {
		cfg->console_ports[i].name = def->console.ports[i].name;
		cfg->console_ports[i].socket = def->console.ports[i].socket;
	}
	cfg->nr_console_ports = def->console.nr_ports;
	cfg->console_pci_slot = def->console.pci_slot;
	cfg->vm_name = def->name;
	for (unsigned int i = 0; i < def->nr_nics; i++) {
		const struct vm_nic *n = &def->nics[i];
		struct vm_nic_config *c = &cfg->nics[i];

		if (netport_mac_parse(n->mac, c->mac) < 0)
			return mgr_err_set(err, -EINVAL, "VM '%s': NIC %u has no MAC address",
			                   def->name, i);
		c->switch_name = n->network;
		c->mac_spoofing = n->mac_spoofing;
		c->dhcp_guard = n->dhcp_guard;
		c->router_guard = n->router_guard;
		c->mtu = n->mtu;
		c->pci_slot = n->pci_slot;
	}
	cfg->nr_nics = def->nr_nics;
	return 0;
}
