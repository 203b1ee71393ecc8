/* SPDX-License-Identifier: MIT */
#ifndef NESTVM_SWITCH_CONFINE_H
#define NESTVM_SWITCH_CONFINE_H

/*
 * A switch process's confinement (switch/confine.c). The switch parses
 * every frame its guests send and hands NAT traffic to libslirp: a bug in
 * either gives the guest the switch's rights. So, as the monitor does
 * (core/sandbox.h, manager/jail.h), once it holds what it needs (its lock,
 * switch.log, ports.sock and control.sock listening, the tap made and
 * configured, libslirp loaded with its port forwards listening, the leases
 * read), the switch, still single-threaded:
 *
 *  1. started as root: gives its own directory to a uid of its own from the
 *     jail range (HOME/.jail/switch-NAME, jail.h) and becomes that user and
 *     group, with no supplementary group and no capability (the tap's and
 *     the sockets' descriptors keep working);
 *  2. sets no_new_privs;
 *  3. Landlock (where the kernel has it): files may be opened, made,
 *     renamed and removed only in its directory (leases.json, runtime.json,
 *     its sockets at exit), /etc/resolv.conf only read (a NAT switch's DNS
 *     forwarding), nothing executed;
 *  4. seccomp: SANDBOX_SWITCH's allow-list (core/sandbox.c); a forbidden
 *     call ends the switch with one line in switch.log naming it.
 *
 * NESTVM_JAIL=off keeps the starter's user, NESTVM_SANDBOX=off skips 3 and
 * 4 (for debugging), as for a monitor.
 */

#include "manager/store.h"

#include <jansson.h>
#include <stdbool.h>
#include <sys/types.h>

struct switch_confinement {
	uid_t owner;       /* the starter's effective uid: its adapters and API clients have it */
	bool seccomp;      /* SANDBOX_SWITCH's filter */
	bool landlock;     /* files only in its directory */
	bool no_new_privs; /* set */
	bool user;         /* runs as uid/gid of the jail range, without capabilities */
	uid_t uid;         /* the uid it runs as */
	gid_t gid;
	char user_off[96]; /* why not (user false): "not started as root", ... */
};

/*
 * switch_confine - steps 1 to 4 above for switch @name whose directory is
 * @dir, of the VM store at @home (its .jail records); @nat: it runs
 * libslirp (resolv.conf readable). The calling thread must be the
 * process's only one. Fills @c. 0, or -errno after a log line: the switch
 * must then not run.
 */
int switch_confine(const char *home, const char *name, const char *dir, bool nat,
                   struct switch_confinement *c) __attribute__((warn_unused_result));

/* switch_confine_json - @c as the API's status shows it ("sandbox", docs/api.md). */
json_t *switch_confine_json(const struct switch_confinement *c);

#endif
