/* SPDX-License-Identifier: MIT */
#ifndef NESTVM_MANAGER_STORE_H
#define NESTVM_MANAGER_STORE_H

/*
 * The VM store: one directory per VM under $NESTVM_HOME (default
 * /var/lib/nestvm for root, $XDG_DATA_HOME/nestvm or ~/.local/share/nestvm
 * otherwise):
 *
 *   NAME/vm.json         the definition (struct vm_def), written atomically
 *   NAME/lock            the VM's locks (see below)
 *   NAME/control.sock    the monitor's control socket (docs/api.md), mode 0600
 *   NAME/runtime.json    while a monitor runs: its pid, start time, state
 *   NAME/last-exit.json  how the last run ended
 *   NAME/monitor.log     the monitor's log, appended to on every start; moved
 *                        to monitor.log.1 past MONITOR_LOG_MAX (monitor.h)
 *   NAME/console.log     the serial console of the current or last run
 *   NAME/vsock.sock      the vsock device's host socket, unless vm.json names
 *                        another (and NAME/vsock.sock_PORT, where host
 *                        programs listen for the guest's connections)
 *
 * Locks are open file description locks (fcntl F_OFD_SETLK) on two bytes of
 * NAME/lock. The kernel drops them when the last descriptor goes, so a
 * monitor that dies leaves no stale lock, and unlike flock() they can be
 * tested without taking them (F_OFD_GETLK), so `list` never gets in the way
 * of a `start`:
 *
 *   STORE_LOCK_RUN  held by the monitor for as long as it runs (and by the
 *                   `start` that spawns it, which passes it on), and briefly
 *                   by commands that need the VM off (set, remove).
 *   STORE_LOCK_DEF  held while a command reads, changes and writes vm.json.
 *
 * The store is trusted only if it, its VM directories and their files are
 * owned by the user (or root) and writable by no one else (store_open,
 * store_vm_dir); files in it are opened relative to the VM's directory,
 * never through a symbolic link, never blocking (store_openat).
 *
 * Lock order: DEF before RUN. Errors come back as -errno with a message in a
 * struct mgr_err naming the VM, the file and the field concerned.
 */

#include "manager/mgr_err.h"
#include "manager/vm_def.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define STORE_MAX_FILE (1 << 20)        /* a definition or state file larger than this is broken */
#define STORE_VSOCK_SOCKET "vsock.sock" /* a managed VM's default vsock socket */

struct stat;

struct store {
	char home[STORE_PATH_MAX];
};

enum store_lock_kind { STORE_LOCK_RUN = 0, STORE_LOCK_DEF = 1 };

/* The runtime record of a monitor (NAME/runtime.json). */
struct store_runtime {
	pid_t pid;       /* 0 while `start` is still spawning it */
	int64_t started; /* seconds since the epoch */
	char state[16];  /* "starting", "running", "stopping" */
};

/* How a run ended (NAME/last-exit.json). */
struct store_exit {
	int status;        /* the monitor's exit status (core/exit_status.h) */
	int64_t at;        /* seconds since the epoch */
	bool crashed;      /* the guest crashed or the monitor failed while running */
	bool start_failed; /* the VM never ran */
	char reason[256];
};

/*
 * store_open - use @home, or $NESTVM_HOME, or the default; create it (0700)
 * if missing. The store must be owned by this user (or root) and writable by
 * no one else, and so must the directories above it unless they are sticky
 * (as /tmp is): otherwise -EPERM, with the path and the chmod/chown that
 * fixes it in @err. Returns 0 or -errno.
 */
int store_open(struct store *st, const char *home, struct mgr_err *err)
    __attribute__((warn_unused_result));

/* store_open_existing - store_open() without creating it: -ENOENT if there is none. */
int store_open_existing(struct store *st, const char *home, struct mgr_err *err)
    __attribute__((warn_unused_result));

/*
 * store_check_owner - what the store trusts: @sb (of @path) is owned by this
 * user or root, writable by no one else, and unless @dir a regular file with
 * one link. 0 or -EPERM with the fix in @err.
 */
int store_check_owner(const struct stat *sb, const char *path, bool dir, struct mgr_err *err)
    __attribute__((warn_unused_result));

/*
 * store_vm_dir - open NAME's directory (O_DIRECTORY, O_NOFOLLOW, O_CLOEXEC)
 * and check it with store_check_owner(). Returns the descriptor, or -ENOENT
 * (no such VM), -ENOTDIR (a link), -EPERM (not trusted), with @err set.
 */
int store_vm_dir(const struct store *st, const char *name, struct mgr_err *err)
    __attribute__((warn_unused_result));

/*
 * store_openat - open @file in the directory @dirfd (named @dir in
 * messages) the way the store opens its files: never through a symbolic
 * link (O_NOFOLLOW), never blocking on a FIFO (O_NONBLOCK, cleared
 * afterwards unless @flags has it), O_CLOEXEC, mode 0600 if created, and
 * only a file store_check_owner() accepts; O_TRUNC is applied after the
 * check. Returns the descriptor or -errno with @err set.
 */
int store_openat(int dirfd, const char *dir, const char *file, int flags, struct mgr_err *err)
    __attribute__((warn_unused_result));

/* store_vm_open - store_openat() on @file in NAME's directory (store_vm_dir()). */
int store_vm_open(const struct store *st, const char *name, const char *file, int flags,
                  struct mgr_err *err) __attribute__((warn_unused_result));

/* store_check_name - [A-Za-z0-9][A-Za-z0-9._-]{0,63}; 0 or -EINVAL. */
int store_check_name(const char *name, struct mgr_err *err) __attribute__((warn_unused_result));

/* store_path - "@home/@name/@file" (@file may be NULL) into @buf; 0 or -ENAMETOOLONG. */
int store_path(const struct store *st, const char *name, const char *file, char *buf, size_t len)
    __attribute__((warn_unused_result));

/*
 * store_vsock_default - "@home/NAME/vsock.sock" into @buf, the host socket of
 * a managed VM's vsock device when its definition names none, once NAME's
 * directory is known to be one only this user controls (fs_private_dir()).
 * 0, or -errno with @err set.
 */
int store_vsock_default(const struct store *st, const char *name, char *buf, size_t len,
                        struct mgr_err *err) __attribute__((warn_unused_result));

/* store_create - make NAME/ and its vm.json; -EEXIST if the VM exists. */
int store_create(const struct store *st, const struct vm_def *def, struct mgr_err *err)
    __attribute__((warn_unused_result));

/* store_load - read NAME/vm.json; -ENOENT if there is no such VM, -EINVAL if broken. */
int store_load(const struct store *st, const char *name, struct vm_def *def, struct mgr_err *err)
    __attribute__((warn_unused_result));

/* store_save - replace NAME/vm.json atomically. Caller holds STORE_LOCK_DEF. */
int store_save(const struct store *st, const struct vm_def *def, struct mgr_err *err)
    __attribute__((warn_unused_result));

/*
 * store_list - the names of the VMs (directories with a valid name), sorted,
 * as one malloc'd array of STORE_NAME_MAX + 1 byte strings. Returns the count
 * or -errno.
 */
int store_list(const struct store *st, char (**names)[STORE_NAME_MAX + 1], struct mgr_err *err)
    __attribute__((warn_unused_result));

/*
 * store_remove - delete NAME/ and everything in it. The caller holds both
 * locks. The directory is first renamed out of the way, so a concurrent
 * command sees either the whole VM or none.
 */
int store_remove(const struct store *st, const char *name, struct mgr_err *err)
    __attribute__((warn_unused_result));

/*
 * store_lock_acquire - take @kind of NAME's lock, waiting up to @timeout_ms
 * (0: try once). Returns the descriptor holding the lock (O_CLOEXEC), or
 * -EBUSY if it is held elsewhere, -ENOENT if the VM does not exist (or was
 * removed while waiting).
 */
int store_lock_acquire(const struct store *st, const char *name, enum store_lock_kind kind,
                       int timeout_ms, struct mgr_err *err) __attribute__((warn_unused_result));

/* store_lock_take - take @kind on an already open lock descriptor; 0 or -EBUSY. */
int store_lock_take(int fd, enum store_lock_kind kind) __attribute__((warn_unused_result));

/* store_lock_held - 1 if another descriptor holds @kind of NAME's lock, 0 if not, or -errno. */
int store_lock_held(const struct store *st, const char *name, enum store_lock_kind kind);

/* store_lock_release - drop @kind and close @fd; a negative @fd is a no-op. */
void store_lock_release(int fd);

/* Runtime and exit records; the reads return -ENOENT when there is none. */
int store_runtime_write(const struct store *st, const char *name, const struct store_runtime *rt)
    __attribute__((warn_unused_result));
int store_runtime_read(const struct store *st, const char *name, struct store_runtime *rt)
    __attribute__((warn_unused_result));
void store_runtime_clear(const struct store *st, const char *name);
int store_exit_write(const struct store *st, const char *name, const struct store_exit *ex)
    __attribute__((warn_unused_result));
int store_exit_read(const struct store *st, const char *name, struct store_exit *ex)
    __attribute__((warn_unused_result));
void store_exit_clear(const struct store *st, const char *name);

/*
 * store_write_atomic - write @len bytes to a temporary file next to @path
 * (created with O_EXCL | O_NOFOLLOW, relative to the directory), fsync it,
 * rename it over @path and fsync the directory. Mode 0600.
 */
int store_write_atomic(const char *path, const char *data, size_t len)
    __attribute__((warn_unused_result));

/*
 * store_write_atomic_at - the same for @file in the directory @dirfd: a
 * switch that runs as its own user reaches its directory only through the
 * descriptor it opened before (switch/confine.h).
 */
int store_write_atomic_at(int dirfd, const char *file, const char *data, size_t len)
    __attribute__((warn_unused_result));

/*
 * store_read_file - read a whole regular file of at most @max bytes,
 * NUL-terminated, not through a symbolic link; 0 or -errno.
 */
int store_read_file(const char *path, size_t max, char **data, size_t *len)
    __attribute__((warn_unused_result));

/*
 * store_log_tail - the last @lines lines of @path into @buf (at most @len
 * bytes, NUL-terminated); "" if the file is missing.
 */
void store_log_tail(const char *path, unsigned int lines, char *buf, size_t len);

#endif
