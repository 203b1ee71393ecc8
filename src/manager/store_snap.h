/* SPDX-License-Identifier: MIT */
#ifndef NESTVM_MANAGER_STORE_SNAP_H
#define NESTVM_MANAGER_STORE_SNAP_H

/*
 * Saved states and checkpoints in the VM store (manager/store.h):
 *
 *   NAME/saved/              the saved state `nestvm start` carries on from:
 *       state, memory        snapshot/vm_snapshot.h
 *       vm.json              the definition it was saved with
 *   NAME/checkpoints/CP/     one checkpoint:
 *       state, memory        only if the VM was running (or paused)
 *       vm.json              the definition at that moment
 *       disks/N.img          disk N's contents (reflink or sparse copy)
 *   NAME/.snap-tmp/          the one being written; a leftover of a monitor
 *                            killed half-way is removed by the next one
 *
 * A snapshot is written into .snap-tmp and renamed into place only once
 * complete and synced, so a crash or a full disk leaves the previous saved
 * state and every checkpoint as they were. Snapshot files are never changed
 * once written: a saved state made from a checkpoint shares its files (hard
 * links). Every operation here needs the VM's run lock (held by its
 * monitor, or by the command acting on an off VM), which serializes them.
 */

#include "manager/store.h"

#include <stdbool.h>
#include <stdint.h>

#define STORE_SAVED "saved"
#define STORE_CHECKPOINTS "checkpoints"
#define STORE_SNAP_TMP ".snap-tmp"
#define STORE_CHECKPOINT_NAME_MAX 64
#define STORE_MAX_CHECKPOINTS 256

/* A snapshot being written. */
struct store_snap_tmp {
	int vm_fd; /* NAME/ */
	int fd;	   /* NAME/.snap-tmp/ */
	char vm_dir[STORE_PATH_MAX];
};

/*
 * store_snap_begin - remove what an interrupted snapshot left, then create
 * an empty NAME/.snap-tmp (0700) for a new one. Returns 0 or -errno.
 */
int store_snap_begin(const struct store *st, const char *name, struct store_snap_tmp *t,
                     struct mgr_err *err) __attribute__((warn_unused_result));

/* store_snap_write_def - @def as vm.json in the snapshot. 0 or -errno. */
int store_snap_write_def(struct store_snap_tmp *t, const struct vm_def *def, struct mgr_err *err)
    __attribute__((warn_unused_result));

/*
 * store_snap_copy_disks - each disk of @def into disks/N.img (fs_copy_sparse),
 * with the VM quiesced or off. 0 or -errno.
 */
int store_snap_copy_disks(struct store_snap_tmp *t, const struct vm_def *def, struct mgr_err *err)
    __attribute__((warn_unused_result));

/*
 * store_snap_commit - put the finished snapshot at @dest ("saved" or
 * "checkpoints/CP"), atomically replacing one that is there. On failure the
 * old one is intact and the new one removed. Closes @t. 0 or -errno.
 */
int store_snap_commit(struct store_snap_tmp *t, const char *dest, struct mgr_err *err)
    __attribute__((warn_unused_result));

/* store_snap_abort - remove the unfinished snapshot and close @t. */
void store_snap_abort(struct store_snap_tmp *t);

/*
 * store_snap_open - the directory of the saved state (@cp NULL) or of
 * checkpoint @cp, for reading: O_DIRECTORY, no symlink followed, checked
 * owner. Returns a descriptor or -errno (-ENOENT: there is none).
 */
int store_snap_open(const struct store *st, const char *name, const char *cp, struct mgr_err *err)
    __attribute__((warn_unused_result));

/* store_snap_read_def - the definition (vm.json) in the snapshot directory @fd. 0 or -errno. */
int store_snap_read_def(int fd, const char *what, struct vm_def *def, struct mgr_err *err)
    __attribute__((warn_unused_result));

/*
 * store_snap_def_trusted - may the definition @snap, read from the snapshot
 * directory @fd, be used for a VM whose vm.json says @cur? Yes if its file
 * is yours or root's; one a jailed monitor wrote (its VM's user's,
 * manager/jail.h) only if it names the same host files (kernel, initrd,
 * disks, sockets) and networks as @cur: a monitor taken over by its guest must not make
 * root open another file for it. 0 or -EPERM with @err set.
 */
int store_snap_def_trusted(int fd, const char *what, const struct vm_def *snap,
                           const struct vm_def *cur, struct mgr_err *err)
    __attribute__((warn_unused_result));

/* store_has_saved - NAME has a saved state. */
bool store_has_saved(const struct store *st, const char *name);

/* store_saved_remove - discard NAME's saved state (none: 0). 0 or -errno. */
int store_saved_remove(const struct store *st, const char *name, struct mgr_err *err)
    __attribute__((warn_unused_result));

/* store_check_checkpoint_name - like a VM name. 0 or -EINVAL. */
int store_check_checkpoint_name(const char *cp, struct mgr_err *err)
    __attribute__((warn_unused_result));

struct store_checkpoint {
	char name[STORE_CHECKPOINT_NAME_MAX + 1];
	int64_t created;    /* seconds since the epoch */
	bool running;	    /* it has a memory and device state (taken while running) */
	uint64_t bytes;	    /* space its files take */
};

/*
 * store_checkpoint_list - NAME's checkpoints, oldest first, into a
 * malloc'd array (free()). Returns their number or -errno.
 */
int store_checkpoint_list(const struct store *st, const char *name, struct store_checkpoint **out,
                          struct mgr_err *err) __attribute__((warn_unused_result));

/* store_checkpoint_remove - delete checkpoint @cp. 0 or -errno (-ENOENT). */
int store_checkpoint_remove(const struct store *st, const char *name, const char *cp,
                            struct mgr_err *err) __attribute__((warn_unused_result));

/*
 * store_checkpoint_apply - make the off VM NAME what checkpoint @cp
 * recorded: its disks' contents copied back over the disk images, its
 * definition as vm.json, and its state (if it has one) as the saved state
 * that `start` carries on from; without one, any saved state goes. On
 * failure part of it may have been applied; applying again completes it.
 * Returns 0 or -errno.
 */
int store_checkpoint_apply(const struct store *st, const char *name, const char *cp,
                           struct mgr_err *err) __attribute__((warn_unused_result));

#endif
