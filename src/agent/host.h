/* SPDX-License-Identifier: MIT */
#ifndef NESTVM_AGENT_HOST_H
#define NESTVM_AGENT_HOST_H

/*
 * The host side of the guest agent (docs/agent.md): reaching a VM's agent
 * through its vsock socket ("CONNECT PORT", README "vsock from the host"),
 * through the agents of the VMs above it (RELAY), and running EXEC, PUT and
 * GET sessions on it. `nestvm exec`, `nestvm cp` and `nestvm agent-relay`
 * (src/cli/cmd_exec.c) are thin layers over this.
 */

#include "agent/conn.h"
#include "manager/mgr_err.h"

#include <stdint.h>

#define AGENT_HOST_HELLO_MS 30000   /* the agent's HELLO, a relay's answer */
#define AGENT_HOST_EXIT_ERROR 255   /* nestvm exec: the agent could not be reached or was lost */
#define AGENT_HOST_EXIT_TIMEOUT 124 /* nestvm exec --timeout ran out (as timeout(1)) */
#define AGENT_HOST_MAX_LEVELS 8

/* Where the agent is: one of the first three, then the VMs to relay to. */
struct agent_target {
	const char *agent_socket; /* tests: the agent's own UNIX socket (nestvm-agent --unix) */
	const char *vsock_socket; /* a VM's vsock socket (nestvm run --vsock CID,socket=PATH) */
	const char *vms;     /* "NAME[/NAME...]": the first a managed VM unless a socket is given */
	uint32_t port;       /* the agents' vsock port */
	unsigned int wait_s; /* keep trying this long while the first agent does not answer */
};

/* A greeted agent connection. */
struct agent_host {
	struct agent_conn c;
	uint32_t window; /* the agent's data window */
	char what[160];  /* "VM 'l1/l2'", for messages */
	/* What agent_host_exec() moved, for `nestvm exec --stats`. */
	uint64_t bytes_in, bytes_out; /* stdin sent; stdout and stderr received */
	int64_t first_out_ms;         /* mono_ms() of the first output byte, or 0 */
};

/*
 * agent_host_open - connect to the agent @t names and greet it, relaying
 * through every level. 0 with @h ready (agent_host_close() it), or -errno
 * with @err saying what failed and what to do.
 */
int agent_host_open(const struct agent_target *t, struct agent_host *h, struct mgr_err *err)
    __attribute__((warn_unused_result));

/* agent_host_close - end the connection; a closed or zeroed @h is a no-op. */
void agent_host_close(struct agent_host *h);

/*
 * agent_host_dial_vm - a byte stream to vsock port @port of the managed VM
 * NAME (its definition's vsock socket, "CONNECT", "OK"). Returns the socket
 * or -errno with @err set (-ECONNREFUSED: nothing listens on that port).
 */
int agent_host_dial_vm(const char *name, uint32_t port, struct mgr_err *err)
    __attribute__((warn_unused_result));

/*
 * agent_host_exec - run @req (argv, env, ... ) on @h: stdin from ours,
 * its stdout and stderr to ours, our SIGINT, SIGTERM, SIGQUIT and (with a
 * pty) window size changes to it, a hangup ends it; with @req->pty and a
 * terminal on stdin, that terminal is raw meanwhile. Returns the exit status
 * for nestvm exec (the command's; 128+N for signal N; 124 timed out; 126,
 * 127 could not run, with @err set), or -errno with @err set.
 */
int agent_host_exec(struct agent_host *h, const struct agent_exec *req, struct mgr_err *err)
    __attribute__((warn_unused_result));

/*
 * agent_host_put - copy the open regular file @fd (@st_mode, @size) to
 * @remote in the guest (into it, as @name, when it is a directory).
 * 0 or -errno with @err set.
 */
int agent_host_put(struct agent_host *h, int fd, unsigned int mode, uint64_t size,
                   const char *remote, const char *name, struct mgr_err *err)
    __attribute__((warn_unused_result));

/*
 * agent_host_get - copy the guest's file @remote to @local (into it when it
 * is a directory), through a temporary file renamed into place when
 * complete. 0 or -errno with @err set.
 */
int agent_host_get(struct agent_host *h, const char *remote, const char *local, struct mgr_err *err)
    __attribute__((warn_unused_result));

/*
 * agent_host_relay - `nestvm agent-relay NAME` inside a guest, run by its
 * agent for a RELAY request with the connection on @in and @out: reach
 * NAME's agent, answer OK (or ERROR, then return 1), then copy bytes both
 * ways until both sides are done. Returns the exit status.
 */
int agent_host_relay(const char *name, uint32_t port, int in, int out);

#endif
