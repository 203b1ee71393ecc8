/* SPDX-License-Identifier: MIT */
#ifndef NESTVM_MANAGER_MONITOR_H
#define NESTVM_MANAGER_MONITOR_H

/*
 * The monitor: one detached process per running VM (`nestvm monitor NAME`,
 * spawned by `nestvm start`). Its main thread runs the VM (vm_run); a
 * control thread serves the control socket (protocol.h, docs/api.md) and
 * the serial console: it copies the UART's output into console.log, a ring
 * of recent output, and the attached console client, and the client's input
 * into the UART.
 *
 * The monitor holds the VM's STORE_LOCK_RUN for its whole life, keeps
 * runtime.json up to date (starting, running, stopping), writes
 * last-exit.json when the VM ends, and logs to monitor.log (its stderr).
 */

#include "manager/store.h"

#include <stdbool.h>
#include <sys/types.h>

/* Console output kept for a newly attached console ("replay"). */
#define MONITOR_CONSOLE_RING 16384
/* console.log is rotated to console.log.1 when it grows past this. */
#define MONITOR_CONSOLE_LOG_MAX (8 << 20)
/* monitor.log is moved to monitor.log.1 when it grows past this (at start, or while running). */
#define MONITOR_LOG_MAX (1 << 20)
#define MONITOR_MAX_CLIENTS 16
/*
 * A control client that sends no complete request for this long is
 * disconnected, unless it has the console attached or waits for the VM to
 * end (after kill, or stop with the guest powering off). When all
 * MONITOR_MAX_CLIENTS slots are taken, a new client takes the slot of the
 * longest-idle one, so that `nestvm kill` always gets through.
 */
#define MONITOR_IDLE_TIMEOUT_MS 10000
/* How long `start` waits for a new monitor to report that its VM runs. */
#define MONITOR_START_TIMEOUT_MS 60000

/*
 * An incoming live migration a monitor carries on (`nestvm receive` did the
 * handshake, read HELLO, and accepted): the connection, and a file holding
 * the session (mig_conn_export()), le32 HELLO's length and HELLO.
 * Its ready line is then "ok PID" once the VM runs here, or "error WHY".
 */
struct monitor_incoming {
	int conn_fd;	  /* taken */
	int session_fd;	  /* read, then closed */
	const char *from; /* the source's address, for messages */
	bool created;	  /* `receive` created the VM: a failure removes it again */
};

/*
 * monitor_run - be the monitor of VM @name: run it until it ends. @lock_fd
 * is a descriptor already holding STORE_LOCK_RUN (from `start`), or -1 to
 * take the lock here. @ready_fd, if not -1, gets "ok\n" once the VM runs and
 * the control socket listens, or is closed without it if the VM cannot start.
 * With @in (not NULL), the VM comes from an incoming migration instead of a
 * boot or a saved state. Returns the VM's exit status (core/exit_status.h).
 */
int monitor_run(const struct store *st, const char *name, int lock_fd, int ready_fd, bool paused,
                const struct monitor_incoming *in);

/*
 * monitor_spawn - start a detached monitor for @name: a grandchild of this
 * process in its own session, stdin from /dev/null, stdout and stderr
 * appended to monitor.log. @lock_fd holds STORE_LOCK_RUN and is handed to
 * the monitor (this process may close its copy afterwards). Waits until the
 * monitor reports the VM running. Returns 0 and the monitor's pid, or -errno
 * with the reason in @err, including the monitor's own log lines.
 */
int monitor_spawn(const struct store *st, const char *name, int lock_fd, bool paused, pid_t *pid,
                  struct mgr_err *err) __attribute__((warn_unused_result));

/*
 * monitor_spawn_incoming - monitor_spawn() for `nestvm receive`: the monitor
 * carries on the incoming migration @in (its descriptors are handed over;
 * the caller may close its copies afterwards). Waits, without a time
 * limit, until the VM runs here, or returns the monitor's reason in @err.
 */
int monitor_spawn_incoming(const struct store *st, const char *name, int lock_fd,
                           const struct monitor_incoming *in, pid_t *pid, struct mgr_err *err)
    __attribute__((warn_unused_result));

/*
 * monitor_close_fds - close every descriptor from @from up, except the @n in
 * @keep: what a process that inherits descriptors it does not know about
 * (a pipe the caller's shell holds open, say) must not keep. close_range(),
 * or a walk of /proc/self/fd where the kernel lacks it. Returns 0 or -errno.
 */
int monitor_close_fds(int from, const int *keep, unsigned int n)
    __attribute__((warn_unused_result));

#endif
