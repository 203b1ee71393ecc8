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

#include <sys/types.h>

/* Console output kept for a newly attached console ("replay"). */
#define MONITOR_CONSOLE_RING 16384
/* console.log is rotated to console.log.1 when it grows past this. */
#define MONITOR_CONSOLE_LOG_MAX (8 << 20)
#define MONITOR_MAX_CLIENTS 16
/* How long `start` waits for a new monitor to report that its VM runs. */
#define MONITOR_START_TIMEOUT_MS 60000

/*
 * monitor_run - be the monitor of VM @name: run it until it ends. @lock_fd
 * is a descriptor already holding STORE_LOCK_RUN (from `start`), or -1 to
 * take the lock here. @ready_fd, if not -1, gets "ok\n" once the VM runs and
 * the control socket listens, or is closed without it if the VM cannot start.
 * Returns the VM's exit status (core/exit_status.h).
 */
int monitor_run(const struct store *st, const char *name, int lock_fd, int ready_fd);

/*
 * monitor_spawn - start a detached monitor for @name: a grandchild of this
 * process in its own session, stdin from /dev/null, stdout and stderr
 * appended to monitor.log. @lock_fd holds STORE_LOCK_RUN and is handed to
 * the monitor (this process may close its copy afterwards). Waits until the
 * monitor reports the VM running. Returns 0 and the monitor's pid, or -errno
 * with the reason in @err, including the monitor's own log lines.
 */
int monitor_spawn(const struct store *st, const char *name, int lock_fd, pid_t *pid,
                  struct mgr_err *err) __attribute__((warn_unused_result));

#endif
