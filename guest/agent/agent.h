/* SPDX-License-Identifier: MIT */
#ifndef NESTVM_GUEST_AGENT_H
#define NESTVM_GUEST_AGENT_H

/*
 * nestvm-agent, the guest agent (docs/agent.md): a static Linux program that
 * listens on vsock port AGENT_VSOCK_PORT, serves the host (CID 2) only, and
 * runs each connection as a session in a process of its own: main.c accepts
 * and forks, session.c greets and dispatches the request, exec.c runs a
 * command, files.c puts and gets files, and a RELAY request becomes the
 * guest's own `nestvm agent-relay VM` (session.c). The frames are
 * src/agent/proto.c, shared with nestvm.
 */

#include "agent/conn.h"

#include <stdbool.h>
#include <stdint.h>

#define AGENT_HANDSHAKE_MS 10000 /* HELLO and the request must come this soon */
#define AGENT_MAX_SESSIONS 64
#define AGENT_KILL_GRACE_MS 2000 /* SIGTERM (or SIGHUP) to SIGKILL */
#define AGENT_DRAIN_IDLE_MS 1000 /* after the command exits: output idle this long ends it */
#define AGENT_LINGER_MS 2000     /* after the last frame: waiting for the host to close */

struct agent_opts {
	unsigned int port;     /* vsock port */
	const char *unix_path; /* tests: listen on this UNIX socket instead of vsock */
	bool vsock_connect; /* tests, with unix_path: answer "CONNECT PORT" as a VM's vsock socket
	                       does */
	const char *nestvm; /* the nestvm a RELAY runs; NULL: "nestvm" on PATH */
	unsigned int max_sessions;
	int verbose;
};

/* agent_log - "nestvm-agent[pid]: ..." on stderr. */
void agent_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * agent_session - serve the connection @fd (taken) to its end: HELLO, one
 * request, its answer. Runs in the session's own process; returns the exit
 * status for it (0 served, 1 refused or failed).
 */
int agent_session(int fd, const struct agent_opts *o);

/* agent_exec_run - run EXEC @req on @c to the command's end (exec.c); 0 or -errno. */
int agent_exec_run(struct agent_conn *c, const struct agent_exec *req, uint32_t host_window,
                   const struct agent_opts *o);

/* agent_file_put, agent_file_get - PUT and GET (files.c); 0 or -errno (an ERROR was sent). */
int agent_file_put(struct agent_conn *c, const struct agent_file_req *req, uint32_t host_window);
int agent_file_get(struct agent_conn *c, const struct agent_file_req *req, uint32_t host_window);

/* agent_refuse_frame - for -EPROTO/-EMSGSIZE from agent_conn_*, tell the host why; returns @r. */
int agent_refuse_frame(struct agent_conn *c, int r);

/* agent_send - queue a message built by @r (0 or -errno) and send it all; 0 or -errno. */
int agent_send(struct agent_conn *c, int r);

#endif
