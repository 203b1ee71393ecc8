/* SPDX-License-Identifier: MIT */
/*
 * One session of nestvm-agent, in its own process: the HELLO exchange (the
 * version both sides speak, the host's data window), one request, and its
 * answer (docs/agent.md). Anything unexpected ends the session with an
 * ERROR frame; the listener never sees it.
 */
#include "agent.h"
#include "core/clock.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int agent_send(struct agent_conn *c, int r)
{
	if (r < 0)
		return r;
	return agent_conn_send_all(c, AGENT_HANDSHAKE_MS);
}

int agent_refuse_frame(struct agent_conn *c, int r)
{
	int s = 0;

	if (r == -EMSGSIZE)
		s = agent_send(c, agent_msg_error(&c->tx, EMSGSIZE, "frame larger than %u bytes",
		                                  (unsigned int)AGENT_FRAME_MAX));
	else if (r == -EPROTO)
		s = agent_send(c, agent_msg_error(&c->tx, EPROTO, "malformed frame"));
	(void)s; /* the session ends either way */
	return r;
}

/* A VM name as nestvm's store takes it: [A-Za-z0-9][A-Za-z0-9._-]{0,63}. */
static bool agent_vm_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (!n || n > 64 || s[0] == '.' || s[0] == '-' || s[0] == '_')
		return false;
	return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

/*
 * RELAY: this guest's own nestvm carries the connection on to its VM
 * @req->vm (`nestvm agent-relay VM`, with the connection as its stdin and
 * stdout): it answers OK or ERROR itself, then copies bytes both ways, and
 * the host speaks to that VM's agent from then on. Returns only on failure.
 */
static int agent_relay(struct agent_conn *c, const struct agent_file_req *req,
                       const struct agent_opts *o)
{
	const char *nestvm = o->nestvm ? o->nestvm : "nestvm";
	char *argv[] = {(char *)"nestvm", (char *)"agent-relay", (char *)req->vm, NULL};
	int fl, r;

	if (!agent_vm_name_ok(req->vm))
		return agent_send(c, agent_msg_error(&c->tx, EINVAL, "RELAY: invalid VM name"));
	/* The host waits for the answer before it sends more: anything here is a broken client. */
	if (c->rx_len > c->rx_off)
		return agent_send(c, agent_msg_error(&c->tx, EPROTO,
		                                     "RELAY: data sent before the relay's answer"));
	fl = fcntl(c->fd, F_GETFL);
	if (fl < 0 || fcntl(c->fd, F_SETFL, fl & ~O_NONBLOCK) < 0 || dup2(c->fd, 0) < 0 ||
	    dup2(c->fd, 1) < 0) {
		r = -errno;
		return agent_send(c, agent_msg_error(&c->tx, -r, "RELAY: %s", strerror(-r)));
	}
	if (o->verbose)
		agent_log("relay to VM '%s' through %s", req->vm, nestvm);
	execvp(nestvm, argv);
	r = -errno;
	agent_log("relay: cannot run %s: %s", nestvm, strerror(-r));
	fcntl(c->fd, F_SETFL, fl);
	return agent_send(
	    c, agent_msg_error(&c->tx, -r, "RELAY: this guest cannot run '%s' to reach VM '%s': %s",
	                       nestvm, req->vm, strerror(-r)));
}

/* The request after HELLO: EXEC, PUT, GET or RELAY. */
static int agent_dispatch(struct agent_conn *c, const struct agent_frame *f, uint32_t window,
                          const struct agent_opts *o)
{
	struct agent_file_req fr;
	struct agent_exec *e;
	int r;

	switch (f->type) {
	case AGENT_EXEC:
		e = malloc(sizeof(*e));
		if (!e)
			return agent_send(c, agent_msg_error(&c->tx, ENOMEM, "out of memory"));
		r = agent_parse_exec(f, e);
		if (r < 0)
			r = agent_send(c, agent_msg_error(&c->tx, -r, "malformed EXEC request"));
		else
			r = agent_exec_run(c, e, window, o);
		free(e);
		return r;
	case AGENT_PUT:
	case AGENT_GET:
	case AGENT_RELAY:
		if (agent_parse_file_req(f, &fr) < 0)
			return agent_send(c, agent_msg_error(&c->tx, EPROTO, "malformed %s request",
			                                     agent_type_name(f->type)));
		if (f->type == AGENT_PUT)
			return agent_file_put(c, &fr, window);
		if (f->type == AGENT_GET)
			return agent_file_get(c, &fr, window);
		return agent_relay(c, &fr, o);
	default:
		return agent_send(c, agent_msg_error(&c->tx, EPROTO, "expected a request, got %s",
		                                     agent_type_name(f->type)));
	}
}

/*
 * End the connection gently: no more from us, then read (and drop) what the
 * host still sends until it closes, for at most AGENT_LINGER_MS. Closing
 * with unread data would reset the connection, and the host could lose the
 * last frames we sent.
 */
static void agent_linger(struct agent_conn *c)
{
	int64_t end = mono_ms() + AGENT_LINGER_MS;
	uint8_t buf[4096];

	if (shutdown(c->fd, SHUT_WR) < 0)
		return;
	for (;;) {
		struct pollfd p = {.fd = c->fd, .events = POLLIN};
		int64_t left = end - mono_ms();

		if (left <= 0 || poll(&p, 1, (int)left) <= 0 || read(c->fd, buf, sizeof(buf)) <= 0)
			return;
	}
}

/*
 * Tests (--unix --vsock-connect): read "CONNECT PORT\n" as nestvm's vsock
 * device does and answer "OK 1\n" for our port; 0, or -ECONNREFUSED.
 */
static int agent_fake_vsock(int fd, const struct agent_opts *o)
{
	char line[64], want[32];
	size_t n = 0;

	while (n < sizeof(line) - 1) {
		struct pollfd p = {.fd = fd, .events = POLLIN};

		if (poll(&p, 1, AGENT_HANDSHAKE_MS) <= 0 || read(fd, line + n, 1) != 1)
			return -ECONNREFUSED;
		if (line[n++] == '\n')
			break;
	}
	line[n] = '\0';
	snprintf(want, sizeof(want), "CONNECT %u\n", o->port);
	if (strcmp(line, want) || write(fd, "OK 1\n", 5) != 5)
		return -ECONNREFUSED;
	return 0;
}

int agent_session(int fd, const struct agent_opts *o)
{
	struct agent_hello h, mine = {AGENT_VERSION_MIN, AGENT_VERSION, AGENT_WINDOW};
	struct agent_conn c;
	struct agent_frame f;
	unsigned int v;
	int r;

	if ((o->vsock_connect && agent_fake_vsock(fd, o) < 0) || agent_conn_init(&c, fd) < 0) {
		close(fd);
		return 1;
	}
	r = agent_conn_recv(&c, &f, AGENT_HANDSHAKE_MS);
	if (r <= 0) {
		if (o->verbose)
			agent_log("no HELLO: %s", r ? strerror(-r) : "connection closed");
		r = agent_refuse_frame(&c, r ? r : -ECONNRESET);
		goto out;
	}
	if (agent_parse_hello(&f, &h) < 0) {
		r = agent_send(&c, agent_msg_error(&c.tx, EPROTO, "expected a HELLO frame, got %s",
		                                   agent_type_name(f.type)));
		r = r ? r : -EPROTO;
		goto out;
	}
	v = agent_version_pick(&h, &mine);
	if (!v) {
		r = agent_send(&c,
		               agent_msg_error(&c.tx, EPROTONOSUPPORT,
		                               "protocol versions %u-%u: this agent speaks %u-%u",
		                               h.version_min, h.version_max, mine.version_min,
		                               mine.version_max));
		r = r ? r : -EPROTONOSUPPORT;
		goto out;
	}
	mine.version_min = mine.version_max = (uint16_t)v;
	r = agent_send(&c, agent_msg_hello(&c.tx, &mine));
	if (r < 0)
		goto out;
	r = agent_conn_recv(&c, &f, AGENT_HANDSHAKE_MS);
	if (r <= 0) {
		if (o->verbose)
			agent_log("no request: %s", r ? strerror(-r) : "connection closed");
		r = agent_refuse_frame(&c, r ? r : -ECONNRESET);
		goto out;
	}
	r = agent_dispatch(&c, &f, h.window, o);
out:
	if (r == 0)
		agent_linger(&c);
	if (r < 0 && r != -ETIMEDOUT && o->verbose)
		agent_log("session ended: %s", strerror(-r));
	agent_conn_destroy(&c);
	return r < 0 ? 1 : 0;
}
