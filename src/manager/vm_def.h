/* SPDX-License-Identifier: MIT */
#ifndef NESTVM_MANAGER_VM_DEF_H
#define NESTVM_MANAGER_VM_DEF_H

/*
 * What a VM is: its one configuration schema, struct vm_def, for every way
 * a VM is described. `nestvm run` builds one from its options, `new` and
 * `set` from theirs (the same option parsers, cli/opts_virtio.h), and a
 * managed VM keeps one as NAME/vm.json (docs/api.md). Each is judged by the
 * same validator, vm_def_validate(), and turned into what core/vm.h runs by
 * the same translation, vm_def_to_config(); only the per-run plumbing (where
 * the serial console goes, the KVM device) is the caller's.
 *
 * Every PCI device has a slot (its device number on bus 0) recorded when it
 * is added: vm_def_assign_slots() gives a device without one the first free
 * slot, in a fixed order (disks, rng, vsock, virtio-console, NICs), so that a
 * device keeps its guest-visible address when others are removed or added.
 * A definition without slots (`run`, a format 1 vm.json) gets the slots
 * today's machine gives: 00:01.0 onwards in that order.
 */

#include "backends/disk.h"
#include "core/vm_limits.h"
#include "manager/mgr_err.h"

#include <stdbool.h>
#include <stdint.h>

#define STORE_NAME_MAX 64
#define STORE_PATH_MAX 4096
#define STORE_MAX_CPUS VM_MAX_CPUS /* core/vm_limits.h judges cpus and memory_mib */
#define STORE_MIN_MEMORY_MIB VM_MIN_MEMORY_MIB
#define STORE_MAX_MEMORY_MIB VM_MAX_MEMORY_MIB
#define STORE_MAX_DISKS 8 /* VM_MAX_DISKS */
#define STORE_MAX_NICS 8
#define STORE_MAX_CONSOLE_PORTS 8 /* VM_MAX_CONSOLE_PORTS */
#define STORE_MAC_LEN 17          /* "xx:xx:xx:xx:xx:xx" */

/*
 * The format written into vm.json. 2 added hugepages, pit, the disks' io and
 * pci_slot, rng, vsock and virtio_console; 3 the NICs' switch, guards and
 * pci_slot; 4 cpu_affinity. A format 1 file reads as it always ran (hugepages and pit on,
 * disks from 00:01.0 in order); a NIC of an older file gets the guards'
 * defaults and the first free slot.
 */
#define STORE_FORMAT 4

/* PCI device numbers a device may have on bus 0: 0 is the host bridge's. */
#define VM_DEF_PCI_SLOT_MIN 1
#define VM_DEF_PCI_SLOT_MAX 31
#define VM_DEF_PORT_NAME_MAX 64 /* VIRTIO_CONSOLE_NAME_MAX */
#define VM_DEF_VSOCK_CID_MIN 3  /* 0-2 are reserved, 2 is the host (virtio 1.2 §5.10.4) */
#define VM_DEF_VSOCK_CID_MAX 0xfffffffeU
#define VM_DEF_MTU_MIN 68 /* VIRTIO_NET_MTU_MIN: IPv4's minimum */
#define VM_DEF_MTU_MAX 65520
#define VM_DEF_MTU_DEFAULT 1500

struct vm_config;

struct vm_disk {
	char *path; /* absolute */
	bool readonly;
	enum disk_engine io;
	unsigned int pci_slot; /* 0 until vm_def_assign_slots() */
};

/*
 * A network adapter (--nic switch=NAME[,mac=MAC][,mtu=N][,mac-spoofing=on|off]
 * [,dhcp-guard=on|off][,router-guard=on|off]): virtio-net on a port of
 * switch NAME (net/switch_link.h). vm.json calls the switch "switch"; a
 * format 1 or 2 file's "network" reads as the same.
 */
struct vm_nic {
	char mac[STORE_MAC_LEN + 1]; /* "": not given yet (vm_def_assign_macs()) */
	char *network;               /* the switch's name; NULL: no switch, the link is down */
	bool mac_spoofing;           /* frames from other source MACs pass (default off) */
	bool dhcp_guard;             /* DHCP server messages from the VM dropped (default on) */
	bool router_guard;           /* IPv6 router advertisements dropped (default on) */
	unsigned int mtu;            /* VM_DEF_MTU_MIN..VM_DEF_MTU_MAX (default 1500) */
	unsigned int pci_slot;
};

/* virtio-rng (--rng). */
struct vm_def_rng {
	bool enabled;
	unsigned int pci_slot;
};

/* virtio-vsock (--vsock CID[,socket=PATH]). */
struct vm_def_vsock {
	uint32_t cid; /* 0: no vsock device */
	char *socket; /* absolute, or NULL: the caller's default (vm_def_to_config) */
	unsigned int pci_slot;
};

/* A named virtio-console port (--console-port NAME,socket=PATH). */
struct vm_def_port {
	char *name;   /* 1 to VM_DEF_PORT_NAME_MAX bytes, no control characters */
	char *socket; /* absolute */
};

/* virtio-console: hvc0 (--virtio-console PATH) and the named ports, one device. */
struct vm_def_console {
	char *socket; /* hvc0's socket, absolute; NULL: hvc0 not connected */
	struct vm_def_port ports[STORE_MAX_CONSOLE_PORTS];
	unsigned int nr_ports;
	unsigned int pci_slot;
};

/* A VM definition: what vm.json holds. Strings are owned (vm_def_clear). */
struct vm_def {
	char name[STORE_NAME_MAX + 1];
	unsigned int cpus;
	uint64_t memory_mib;
	bool nested;
	bool hugepages; /* transparent huge pages for guest RAM */
	bool pit;       /* in-kernel i8254 */
	char *cpu_affinity; /* host CPUs for its threads, as vm_limits_format_affinity() writes; NULL: any */
	char *kernel;   /* absolute path */
	char *initrd;   /* absolute path or NULL */
	char *cmdline;  /* NULL: empty */
	struct vm_disk disks[STORE_MAX_DISKS];
	unsigned int nr_disks;
	struct vm_nic nics[STORE_MAX_NICS];
	unsigned int nr_nics;
	struct vm_def_rng rng;
	struct vm_def_vsock vsock;
	struct vm_def_console console;
};

/* vm_def_init - an empty definition with the defaults (1 vCPU, 512 MiB, hugepages and pit on). */
void vm_def_init(struct vm_def *def);

/* vm_def_has_console - whether @def has the virtio-console device (hvc0 or a port). */
bool vm_def_has_console(const struct vm_def *def);

/*
 * vm_def_parse - parse and validate a definition. @file names the source in
 * messages ("…/vm.json: field 'cpus': …"). Missing optional fields take
 * their defaults, and devices without a PCI slot get one
 * (vm_def_assign_slots()). On error *@def is left cleared. Returns 0 or
 * -EINVAL.
 */
int vm_def_parse(const char *text, size_t len, const char *file, struct vm_def *def,
                 struct mgr_err *err) __attribute__((warn_unused_result));

/*
 * vm_def_validate - the rules vm_def_parse() applies, for a definition built
 * in code; the message names the field ("definition: field 'vsock.cid': …").
 * Every device must have its slot already (vm_def_assign_slots()).
 */
int vm_def_validate(const struct vm_def *def, struct mgr_err *err)
    __attribute__((warn_unused_result));

/*
 * vm_def_assign_slots - give each PCI device of @def without a slot the
 * lowest free one, devices taken in the order disks, rng, vsock,
 * virtio-console, NICs; slots already given are kept. 0, or -ENOSPC if bus 0
 * is full.
 */
int vm_def_assign_slots(struct vm_def *def) __attribute__((warn_unused_result));

/*
 * vm_def_assign_macs - give each NIC of @def without a MAC the one
 * netport_mac_derive() makes of the VM's name and the NIC's index (another
 * index if that one is taken). `new` and `set` record it, so it never
 * changes afterwards.
 */
void vm_def_assign_macs(struct vm_def *def);

/* vm_def_init_nic - a NIC with the defaults (dhcp and router guards on, MTU 1500). */
void vm_def_init_nic(struct vm_nic *nic);

/* vm_def_format - the definition as indented JSON (malloc'd), or NULL. */
char *vm_def_format(const struct vm_def *def);

/*
 * vm_def_set_affinity - cpu_affinity from a host CPU list (vm_limits.h),
 * kept as vm_limits_format_affinity() writes it; NULL clears it. 0,
 * -EINVAL (not such a list: why, when not NULL, says what is wrong) or
 * -ENOMEM. On an error cpu_affinity stays as it was.
 */
int vm_def_set_affinity(struct vm_def *def, const char *list, char *why, size_t why_len)
    __attribute__((warn_unused_result));

/* vm_def_set_str - replace an owned string (@value NULL clears it); 0 or -ENOMEM. */
int vm_def_set_str(char **field, const char *value) __attribute__((warn_unused_result));

/* vm_def_remove_disk - drop disk @i (its strings freed); the others keep their slots. */
void vm_def_remove_disk(struct vm_def *def, unsigned int i);

/* vm_def_remove_port - drop console port @i; the device keeps its slot while it has a port or hvc0.
 */
void vm_def_remove_port(struct vm_def *def, unsigned int i);

/* vm_def_clear - free the strings and zero @def. */
void vm_def_clear(struct vm_def *def);

/*
 * vm_def_to_config - the struct vm_config (core/vm.h) that runs @def, a
 * definition vm_def_validate() accepts: every device at its recorded slot.
 * @cfg points into @def, which must outlive it. @vsock_default is the vsock
 * host socket when @def names none (`run`: in $XDG_RUNTIME_DIR, a managed
 * VM: in its directory, store_vsock_default()); it may be NULL when there is
 * no vsock device. The per-run plumbing is left for the caller to set: the
 * serial console (VM_CONSOLE_NONE here), kvm_path ("/dev/kvm") and the
 * store the NICs' switches live in (switch_home, NULL here).
 * Returns 0 or -EINVAL with @err set.
 */
int vm_def_to_config(const struct vm_def *def, const char *vsock_default, struct vm_config *cfg,
                     struct mgr_err *err) __attribute__((warn_unused_result));

#endif
