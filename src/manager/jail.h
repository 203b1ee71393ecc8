/* SPDX-License-Identifier: MIT */
#ifndef NESTVM_MANAGER_JAIL_H
#define NESTVM_MANAGER_JAIL_H

/*
 * The jail of a managed VM's monitor (manager/jail.c): what Firecracker's
 * jailer does, done by the monitor itself. A monitor started as root, once
 * it holds every descriptor it needs as root (the run lock, monitor.log,
 * console.log, the control socket, /dev/kvm, kernel, initrd, disks,
 * /proc/self/pagemap: core/fsutil.h's fs_preopen()), and before its first
 * thread exists:
 *
 *  1. gives the VM's directory, and every directory in it, to the VM's own
 *     user: a uid of its own from the jail range (JAIL_UIDS_DEFAULT, or
 *     NESTVM_JAIL_UIDS=FIRST-LAST), recorded in the store as
 *     HOME/.jail/vm-NAME -> UID and HOME/.jail/uid-UID -> NAME (symbolic
 *     links: each made at once or not at all, so two starts never share a
 *     uid), kept while the VM exists, so its files stay its own across runs;
 *  2. enters a mount namespace of its own whose root is an empty, read-only
 *     tmpfs holding only the VM's directory (bound at its usual path, so
 *     every store path still works): pivot_root, or chroot where the
 *     current root cannot be pivoted (an initramfs);
 *  3. drops its supplementary groups, then its gid and uid (real, effective
 *     and saved; with them every capability), and sets no_new_privs.
 *
 * Files the monitor writes afterwards (runtime.json, last-exit.json,
 * rotated logs, saved states, checkpoints, the vsock socket) belong to the
 * VM's user; root's nestvm trusts files owned by a uid of the jail range in
 * the VM directories (manager/store.c), but never a vm.json or lock file
 * (only root or the store's owner may write those) and never a saved
 * state's or checkpoint's definition that names other host files than the
 * VM's vm.json (store_snap.c): a monitor taken over by its guest may spoil
 * its own VM's records, not reach another VM's or the host's files.
 *
 * `nestvm start --jail off` or NESTVM_JAIL=off (a monitor takes it from the
 * environment of `nestvm start`) keep the monitor root, for debugging.
 */

#include "manager/mgr_err.h"
#include "manager/store.h"

#include <stdbool.h>
#include <sys/types.h>

/* 0x70000000..: above the container ranges systemd-nspawn hands out (docs: UIDS-GIDS). */
#define JAIL_UIDS_DEFAULT_FIRST 1879048192u
#define JAIL_UIDS_DEFAULT_COUNT 65536u
#define JAIL_DIR ".jail"
#define JAIL_MAX_DIRS 12 /* Landlock's: the VM directory and those of its sockets */

struct jail {
	bool active;  /* the monitor runs as uid/gid in its own mount namespace */
	bool pivoted; /* its root is the jail's by pivot_root (false: chroot) */
	uid_t uid;
	gid_t gid;
	char off_reason[96]; /* why not active: "not root", "NESTVM_JAIL=off" */
};

/* jail_wanted - jail this monitor? Root, and NESTVM_JAIL is not "off"; @j->off_reason if not. */
bool jail_wanted(struct jail *j);

/* jail_uid_range - the jail's uids: NESTVM_JAIL_UIDS (FIRST-LAST) or the default. 0 or -EINVAL. */
int jail_uid_range(uid_t *first, unsigned int *count) __attribute__((warn_unused_result));

/* jail_uid_trusted - @uid is in the jail range (the store of root trusts such files). */
bool jail_uid_trusted(uid_t uid);

/*
 * jail_uid_get - the uid of VM @name: the one it has, or the first free one
 * of the range, reserved for it. Needs root. 0, or -errno with @err set.
 */
int jail_uid_get(const struct store *st, const char *name, uid_t *uid, struct mgr_err *err)
    __attribute__((warn_unused_result));

/* jail_uid_release - forget VM @name's uid (it is being removed); quiet. */
void jail_uid_release(const struct store *st, const char *name);

/*
 * jail_switch_uid_get, jail_switch_uid_release - the same for switch @name
 * (src/switch/confine.c): its own uid of the range, recorded as
 * HOME/.jail/switch-NAME -> UID and uid-UID -> .switches/NAME.
 */
int jail_switch_uid_get(const struct store *st, const char *name, uid_t *uid, struct mgr_err *err)
    __attribute__((warn_unused_result));
void jail_switch_uid_release(const struct store *st, const char *name);

/*
 * jail_drop - step 3 below for the calling process (its only thread): no
 * supplementary groups, real, effective and saved gid @gid and uid @uid
 * (with them every capability), checked, and no_new_privs. 0, or -errno
 * with @err set.
 */
int jail_drop(uid_t uid, gid_t gid, struct mgr_err *err) __attribute__((warn_unused_result));

/*
 * jail_open_pagemap - fs_preopen() /proc/self/pagemap without
 * CAP_SYS_ADMIN in effect, so that it shows which pages are present but
 * never their physical addresses (the kernel decides at open time). 0 or
 * -errno.
 */
int jail_open_pagemap(void) __attribute__((warn_unused_result));

/*
 * jail_enter - steps 1 to 3 above for VM @name. The calling thread must be
 * the process's only one. 0 with @j filled, or -errno with @err set (the
 * monitor must then not run the VM).
 */
int jail_enter(const struct store *st, const char *name, struct jail *j, struct mgr_err *err)
    __attribute__((warn_unused_result));

#endif
