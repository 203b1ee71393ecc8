/* SPDX-License-Identifier: MIT */
#ifndef NESTVM_SWITCH_SWITCH_STORE_H
#define NESTVM_SWITCH_SWITCH_STORE_H

/*
 * Switches in the VM store: $NESTVM_HOME/.switches/NAME/ (net/switch_link.h
 * names the directory and ports.sock), by the store's rules (store.h): the
 * directories and files are the user's, writable by no one else, opened
 * without following links; switch.json is replaced atomically.
 *
 *   NAME/switch.json   the definition (switch_def.h)
 *   NAME/lock          held (OFD lock, store.h's STORE_LOCK_RUN byte) by the
 *                      switch process for its whole life, and by `switch
 *                      remove` while it removes the switch
 *   NAME/ports.sock    SOCK_SEQPACKET, mode 0600: adapters (netport.h)
 *   NAME/control.sock  SOCK_STREAM, mode 0600: the JSON API (docs/api.md)
 *   NAME/runtime.json  {"pid": N, "started": T} while the switch runs
 *   NAME/switch.log    the switch's log (switch.log.1: the one before, past 1 MiB)
 *   NAME/leases.json   the DHCP server's leases (dhcp.h)
 *
 * The switches live in a store of their own (struct store with home =
 * $NESTVM_HOME/.switches), so that store.c's functions serve both; the
 * VM store lists no ".switches" (not a valid VM name).
 */

#include "manager/store.h"
#include "net/switch_link.h"
#include "switch/switch_def.h"

#include <jansson.h>

#define SWITCH_DEF_FILE "switch.json"
#define SWITCH_CONTROL_SOCKET "control.sock"
#define SWITCH_RUNTIME_FILE "runtime.json"
#define SWITCH_LOG_FILE "switch.log"
#define SWITCH_LEASES_FILE "leases.json"
#define SWITCH_LOCK_FILE "lock"
#define SWITCH_LOG_MAX (1 << 20)
/* How long a switch may take to start, from its spawn to its ports socket. */
#define SWITCH_START_TIMEOUT_MS 10000

/*
 * switch_store_open - @sws becomes the switch store of the VM store at
 * @home (an absolute path, already checked by store_open()); with @create,
 * the directory is made (0700) if missing. 0, or -errno with @err set
 * (-ENOENT: no switch was ever created, without @create).
 */
int switch_store_open(const char *home, struct store *sws, bool create, struct mgr_err *err)
    __attribute__((warn_unused_result));

/* switch_store_dir - open NAME's directory (store_vm_dir()); -ENOENT: "no switch named". */
int switch_store_dir(const struct store *sws, const char *name, struct mgr_err *err)
    __attribute__((warn_unused_result));

/* switch_store_create - make NAME/ and its switch.json (@d validated); -EEXIST if it exists. */
int switch_store_create(const struct store *sws, struct switch_def *d, struct mgr_err *err)
    __attribute__((warn_unused_result));

/*
 * switch_store_read - all of NAME/@file (at most STORE_MAX_FILE bytes,
 * NUL-terminated, malloc'd into *@text), opened by the store's rules
 * (store_openat()). 0, or -errno with @err set (-ENOENT: no such file).
 */
int switch_store_read(const struct store *sws, const char *name, const char *file, char **text,
                      size_t *len, struct mgr_err *err) __attribute__((warn_unused_result));

/* switch_store_load - read and validate NAME/switch.json. */
int switch_store_load(const struct store *sws, const char *name, struct switch_def *d,
                      struct mgr_err *err) __attribute__((warn_unused_result));

/*
 * switch_store_lock - take NAME's run lock without waiting: the descriptor,
 * -EBUSY while a switch process (or a `remove`) holds it, or -errno.
 */
int switch_store_lock(const struct store *sws, const char *name, struct mgr_err *err)
    __attribute__((warn_unused_result));

/* switch_store_running - 1 if NAME's switch process runs (holds the lock), else 0. */
int switch_store_running(const struct store *sws, const char *name);

/*
 * switch_spawn - start switch @name of the VM store at @home, detached
 * (`nestvm switch serve`, its own session, output to switch.log), unless
 * it runs already, and wait until it listens. 0 (*@pid: its pid, or 0 if it
 * was running) or -errno with the switch's own log lines in @err.
 */
int switch_spawn(const char *home, const char *name, pid_t *pid, struct mgr_err *err)
    __attribute__((warn_unused_result));

/*
 * switch_serve - be switch @name (`nestvm switch serve`): take its lock,
 * listen, forward until told to stop (the API's "stop", SIGTERM, SIGINT).
 * @ready_fd (-1: none) gets "ok PID\n" once it listens, or "running\n" if
 * another process is the switch already. Returns an exit status.
 */
int switch_serve(const char *home, const char *name, int ready_fd);

/*
 * switch_request - send one request @req (a JSON object, borrowed) to the
 * running switch's control socket and return its reply's "result" (new
 * reference), or NULL with why in @err (not running, an error reply).
 */
json_t *switch_request(const struct store *sws, const char *name, json_t *req, struct mgr_err *err);

#endif
