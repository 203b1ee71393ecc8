/* SPDX-License-Identifier: MIT */
#ifndef NESTVM_CLI_CLI_VM_H
#define NESTVM_CLI_CLI_VM_H

/*
 * Helpers shared by the VM manager's command files (cmd_vm.c, cmd_set.c,
 * cmd_power.c, cmd_console.c, cmd_nested.c), implemented in cmd_vm.c. Each prints its own
 * error as "nestvm CMD: ..." and returns the exit status to use, so command
 * code reads as a sequence of steps.
 *
 * Exit statuses of the manager's commands: 0 done, 1 failed (the message
 * says why: no such VM, wrong state, broken definition, ...), 2 bad usage.
 */

#include "manager/client.h"
#include "manager/store.h"

#include <getopt.h>

/* Minimum memory `nested enable --yes` gives a VM that will run its own VMs. */
#define CLI_VM_NESTED_MIN_MEMORY_MIB 1024
#define CLI_VM_NESTED_MIN_CPUS 2

/*
 * cli_vm_error - print "nestvm @cmd: <message>" to stderr, control characters
 * but line breaks escaped as \xHH; returns NESTVM_EXIT_ERROR.
 */
int cli_vm_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* cli_vm_usage - print "nestvm @cmd: <message>; see --help"; returns NESTVM_EXIT_USAGE. */
int cli_vm_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * cli_vm_parse - the usual parse of `nestvm CMD [--help] NAME` for commands
 * without options of their own: returns -1 and sets *@name, or an exit
 * status to return (0 after --help).
 */
int cli_vm_parse(int argc, char **argv, const char *usage, const char **name);

/*
 * cli_vm_name_arg - after getopt: exactly one valid NAME (store_check_name)
 * must remain. Returns -1 and sets *@name, or NESTVM_EXIT_USAGE after
 * printing why.
 */
int cli_vm_name_arg(const char *cmd, int argc, char **argv, const char **name);

/*
 * cli_vm_open_store - open the store, which only @cmd "new" creates; -1 on
 * success, else an exit status (1: no store, or one nestvm does not trust).
 */
int cli_vm_open_store(const char *cmd, struct store *st);

/*
 * cli_vm_lock_off - take NAME's run lock, which proves the VM is off, for a
 * change that needs it off. @what completes "VM 'x' is running: @what only
 * while it is off" ("--cpus can be changed"). Returns
 * the lock descriptor, or -1 after printing why not (the VM runs: which
 * state, and how to stop it).
 */
int cli_vm_lock_off(const char *cmd, const struct store *st, const char *name, const char *what);

/*
 * cli_vm_def_option - cli_def_option() (opts_virtio.h) with CLI_DEF_RESOLVE,
 * for `new` and `set`: -1, or an exit status after printing why not.
 */
int cli_vm_def_option(const char *cmd, struct vm_def *def, int opt, const char *arg);


/*
 * cli_vm_connect - connect @c to NAME's monitor, which must be up (give it a
 * moment if a `start` is still spawning it). Returns -1 when connected, or
 * an exit status after saying why not (0 if @off_ok and the VM is off).
 */
int cli_vm_connect(const char *cmd, const struct store *st, const char *name, struct client *c,
                   bool off_ok);

/* cli_vm_report_off - after the monitor closed the connection: wait for it, say how the VM ended. */
int cli_vm_report_off(const char *cmd, const struct store *st, const char *name);

/* cli_vm_is_up - the VM has a live monitor (starting, running, paused, stopping). */
bool cli_vm_is_up(enum api_state state);

#endif
