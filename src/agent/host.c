/* SPDX-License-Identifier: MIT */
/*
 * Reaching a guest's agent from the host (host.h): the VM's vsock socket and
 * its "CONNECT PORT" handshake (src/devices/virtio/vsock.h), HELLO, and one
 * RELAY per level below. And the relay's other end, `nestvm agent-relay`,
 * which does the same one level down and then copies bytes.
 */
#include "agent/host.h"

#include "core/clock.h"
#include "core/fsutil.h"
#include "manager/client.h"
#include "manager/store.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define AGENT_CONNECT_MS 10000 /* the vsock device's answer to CONNECT */
#define AGENT_RETRY_MS 250     /* --wait: between attempts */

/*
 * Connect to the UNIX socket @path (ours, with a listener of ours). A path
 * too long for sun_path goes through /proc/self/fd/N of its directory.
 */
static int agent_unix_connect(const char *path)
{
	char dir[STORE_PATH_MAX], alt[sizeof(((struct sockaddr_un *)0)->sun_path)];
	const char *slash = strrchr(path, '/');
	int dfd, r, n;

	if (strlen(path) < sizeof(alt) || !slash || (size_t)(slash - path) >= sizeof(dir))
		return unix_connect_owned(path, SOCK_CLOEXEC);
	memcpy(dir, path, (size_t)(slash - path));
	dir[slash - path] = '\0';
	dfd = open(dir[0] ? dir : "/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	n = snprintf(alt, sizeof(alt), "/proc/self/fd/%d/%s", dfd, slash + 1);
	r = n < 0 || (size_t)n >= sizeof(alt) ? -ENAMETOOLONG
	                                      : unix_connect_owned(alt, SOCK_CLOEXEC);
	close(dfd);
	return r;
}

/* Read the vsock device's one-line answer to CONNECT into @line; 0, -ECONNREFUSED, -ETIMEDOUT. */
static int agent_read_answer(int fd, char *line, size_t len)
{
	int64_t end = mono_ms() + AGENT_CONNECT_MS;
	size_t n = 0;

	/* Byte by byte: the guest's stream starts right after the newline. */
	while (n < len - 1) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int64_t left = end - mono_ms();
		ssize_t r;

		if (left <= 0)
			return -ETIMEDOUT;
		if (poll(&p, 1, (int)left) < 0 && errno != EINTR)
			return -errno;
		r = read(fd, line + n, 1);
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r <= 0)
			return -ECONNREFUSED;
		if (line[n++] == '\n')
			break;
	}
	line[n] = '\0';
	return 0;
}

/* "CONNECT @port" through the vsock socket @path; the socket, or -errno with @err set. */
static int agent_dial_socket(const char *path, uint32_t port, const char *what, struct mgr_err *err)
{
	char line[64];
	int fd, r, n;

	fd = agent_unix_connect(path);
	if (fd < 0)
		return mgr_err_set(err, fd, "%s: cannot connect to its vsock socket '%s': %s", what,
		                   path, fs_strerror(fd));
	n = snprintf(line, sizeof(line), "CONNECT %u\n", port);
	if (write(fd, line, (size_t)n) != n) {
		/*
		 * EPIPE: the device closed the connection before reading it, as a
		 * reset would: the guest's side is not ready (--wait tries again).
		 */
		r = errno == EPIPE ? -ECONNRESET : -errno;
		goto fail;
	}
	r = agent_read_answer(fd, line, sizeof(line));
	/* "ERROR": the guest has not set the device up (yet): no vsock driver. */
	if (r == 0 && !strcmp(line, "ERROR\n"))
		r = -ENOTCONN;
	else if (r == 0 && strncmp(line, "OK ", 3))
		r = -EPROTO;
	if (r == 0)
		return fd;
fail:
	close(fd);
	if (r == -ECONNREFUSED)
		return mgr_err_set(err, r,
		                   "%s: nothing listens on vsock port %u in the guest (is "
		                   "nestvm-agent running there? docs/agent.md)",
		                   what, port);
	if (r == -ENOTCONN)
		return mgr_err_set(err, r,
		                   "%s: the guest has not set up its vsock device (yet): is its "
		                   "vsock driver loaded (vmw_vsock_virtio_transport)?",
		                   what);
	if (r == -ETIMEDOUT)
		return mgr_err_set(err, r,
		                   "%s: the guest did not answer a vsock connection to port %u "
		                   "within %d s (does it have the vsock driver loaded?)",
		                   what, port, AGENT_CONNECT_MS / 1000);
	return mgr_err_set(err, r, "%s: vsock connection to port %u: %s", what, port,
	                   r == -EPROTO ? "unexpected answer from the vsock device" : strerror(-r));
}

int agent_host_dial_vm(const char *name, uint32_t port, struct mgr_err *err)
{
	char path[STORE_PATH_MAX], what[96];
	struct vm_status vs;
	struct vm_def def;
	struct store st;
	int r;

	snprintf(what, sizeof(what), "VM '%s'", name);
	r = store_check_name(name, err);
	if (r == 0)
		r = store_open_existing(&st, NULL, err);
	if (r == 0)
		r = store_load(&st, name, &def, err);
	if (r < 0)
		return r;
	if (!def.vsock.cid) {
		vm_def_clear(&def);
		return mgr_err_set(err, -ENODEV,
		                   "VM '%s' has no vsock device, which nestvm exec and cp need: "
		                   "nestvm set %s --vsock CID (while it is off)",
		                   name, name);
	}
	if (def.vsock.socket)
		r = snprintf(path, sizeof(path), "%s", def.vsock.socket) >= (int)sizeof(path)
		        ? -ENAMETOOLONG
		        : 0;
	else
		r = store_path(&st, name, STORE_VSOCK_SOCKET, path, sizeof(path));
	vm_def_clear(&def);
	if (r < 0)
		return mgr_err_set(err, r, "VM '%s': vsock socket path too long", name);
	r = agent_dial_socket(path, port, what, err);
	/* Not running is the usual reason there is no socket: say so. */
	if ((r == -ENOENT || r == -ECONNREFUSED) && client_vm_status(&st, name, &vs, NULL) == 0) {
		bool up = vs.state == API_STATE_RUNNING || vs.state == API_STATE_PAUSED;

		client_vm_status_clear(&vs);
		if (!up)
			return mgr_err_set(err, -ENOTCONN,
			                   "VM '%s' is %s, not running (nestvm start %s)", name,
			                   api_state_name(vs.state), name);
	}
	return r;
}

/* Send our HELLO and take the agent's. */
static int agent_host_greet(struct agent_host *h, struct mgr_err *err)
{
	struct agent_hello mine = {AGENT_VERSION_MIN, AGENT_VERSION, AGENT_WINDOW}, theirs;
	struct agent_frame f;
	struct agent_error e;
	int r;

	r = agent_msg_hello(&h->c.tx, &mine);
	if (r == 0)
		r = agent_conn_recv(&h->c, &f, AGENT_HOST_HELLO_MS);
	if (r == 0)
		return mgr_err_set(err, -ECONNRESET, "%s: the agent closed the connection",
		                   h->what);
	if (r < 0)
		return mgr_err_set(err, r, "%s: no HELLO from the agent: %s", h->what,
		                   r == -ETIMEDOUT ? "it did not answer" : strerror(-r));
	if (f.type == AGENT_ERROR && agent_parse_error(&f, &e) == 0)
		return mgr_err_set(err, -(e.code > 0 ? e.code : EPROTO),
		                   "%s: the agent refused: %s", h->what, e.msg);
	if (agent_parse_hello(&f, &theirs) < 0 || agent_version_pick(&mine, &theirs) == 0 ||
	    theirs.version_min != theirs.version_max)
		return mgr_err_set(
		    err, -EPROTO,
		    "%s: the agent does not speak this nestvm's protocol (version %u)", h->what,
		    AGENT_VERSION);
	h->window = theirs.window;
	return 0;
}

/* RELAY to @vm through the agent of @h, then greet the agent there. */
static int agent_host_relay_to(struct agent_host *h, const char *vm, struct mgr_err *err)
{
	struct agent_file_req req = {.vm = vm};
	struct agent_frame f;
	struct agent_error e;
	size_t n = strlen(h->what);
	uint64_t ok;
	int r;

	r = agent_msg_file_req(&h->c.tx, AGENT_RELAY, &req);
	if (r == 0)
		r = agent_conn_recv(&h->c, &f, AGENT_HOST_HELLO_MS);
	if (r <= 0)
		return mgr_err_set(err, r ? r : -ECONNRESET, "%s: no answer to the relay to '%s'",
		                   h->what, vm);
	if (f.type == AGENT_ERROR && agent_parse_error(&f, &e) == 0)
		return mgr_err_set(err, -(e.code > 0 ? e.code : EPROTO), "%s: relay to '%s': %s",
		                   h->what, vm, e.msg);
	if (agent_parse_ok(&f, &ok) < 0)
		return mgr_err_set(err, -EPROTO, "%s: unexpected %s after RELAY", h->what,
		                   agent_type_name(f.type));
	/* "VM 'l1'" becomes "VM 'l1/l2'". */
	if (n > 1 && h->what[n - 1] == '\'')
		snprintf(h->what + n - 1, sizeof(h->what) - n + 1, "/%s'", vm);
	return agent_host_greet(h, err);
}

/* The first level: a socket given, or the first VM of @t->vms. */
static int agent_host_first(const struct agent_target *t, char *first, struct agent_host *h,
                            struct mgr_err *err)
{
	int fd;

	if (t->agent_socket) {
		snprintf(h->what, sizeof(h->what), "agent socket '%s'", t->agent_socket);
		fd = agent_unix_connect(t->agent_socket);
		if (fd < 0)
			return mgr_err_set(err, fd, "%s: %s", h->what, fs_strerror(fd));
	} else if (t->vsock_socket) {
		snprintf(h->what, sizeof(h->what), "VM at '%s'", t->vsock_socket);
		fd = agent_dial_socket(t->vsock_socket, t->port, h->what, err);
	} else {
		snprintf(h->what, sizeof(h->what), "VM '%s'", first);
		fd = agent_host_dial_vm(first, t->port, err);
	}
	if (fd < 0)
		return fd;
	if (agent_conn_init(&h->c, fd) < 0) {
		close(fd);
		return mgr_err_set(err, -ENOMEM, "out of memory");
	}
	return agent_host_greet(h, err);
}

int agent_host_open(const struct agent_target *t, struct agent_host *h, struct mgr_err *err)
{
	int64_t end = mono_ms() + (int64_t)t->wait_s * 1000;
	char vms[1024], *levels[AGENT_HOST_MAX_LEVELS], *save = NULL;
	bool socket = t->agent_socket || t->vsock_socket;
	unsigned int n = 0;
	int r;

	memset(h, 0, sizeof(*h));
	h->c.fd = -1;
	if (snprintf(vms, sizeof(vms), "%s", t->vms ? t->vms : "") >= (int)sizeof(vms))
		return mgr_err_set(err, -ENAMETOOLONG, "VM path too long");
	for (char *s = strtok_r(vms, "/", &save); s; s = strtok_r(NULL, "/", &save)) {
		if (n == AGENT_HOST_MAX_LEVELS)
			return mgr_err_set(err, -E2BIG, "more than %d levels of VMs",
			                   AGENT_HOST_MAX_LEVELS);
		r = store_check_name(s, err);
		if (r < 0)
			return r;
		levels[n++] = s;
	}
	if (!socket && !n)
		return mgr_err_set(err, -EINVAL, "no VM named");
	/* --wait covers every level: an L2 whose L1 answers may still be booting. */
	for (;;) {
		r = agent_host_first(t, socket ? NULL : levels[0], h, err);
		for (unsigned int i = socket ? 0 : 1; r == 0 && i < n; i++)
			r = agent_host_relay_to(h, levels[i], err);
		if (r == 0)
			return 0;
		agent_host_close(h);
		if (mono_ms() >= end || (r != -ECONNREFUSED && r != -ENOENT && r != -ETIMEDOUT &&
		                         r != -ECONNRESET && r != -ENOTCONN))
			return r;
		usleep(AGENT_RETRY_MS * 1000);
	}
}

void agent_host_close(struct agent_host *h)
{
	if (h->c.rx || h->c.fd >= 0)
		agent_conn_destroy(&h->c);
}

/* ---------------------------------------------------------------- relay */

/* Write all of @b to the blocking descriptor @fd. */
static int agent_write_buf(int fd, struct agent_buf *b)
{
	size_t off = 0;

	while (off < b->len) {
		ssize_t n = write(fd, b->data + off, b->len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -errno;
		off += (size_t)n;
	}
	return 0;
}

/* Copy both ways between @in/@out and @fd until each side has closed its direction. */
static int agent_splice(int in, int out, int fd)
{
	static const size_t cap = 65536;
	uint8_t *up = malloc(cap), *down = malloc(cap);
	size_t up_len = 0, down_len = 0;
	bool in_open = true, fd_open = true;
	int r = 0;

	if (!up || !down) {
		r = -ENOMEM;
		goto out;
	}
	while (in_open || fd_open || up_len || down_len) {
		struct pollfd p[3] = {
		    {.fd = in_open && !up_len ? in : -1, .events = POLLIN},
		    {.fd = fd,
		     .events = (fd_open && !down_len ? POLLIN : 0) | (up_len ? POLLOUT : 0)},
		    {.fd = down_len ? out : -1, .events = POLLOUT},
		};
		ssize_t n;

		if (!p[1].events)
			p[1].fd = -1;
		if (poll(p, 3, -1) < 0 && errno != EINTR) {
			r = -errno;
			break;
		}
		if (p[0].revents) {
			n = read(in, up, cap);
			if (n > 0) {
				up_len = (size_t)n;
			} else if (n == 0 || errno != EINTR) {
				in_open = false;
				shutdown(fd, SHUT_WR);
			}
		}
		if (p[1].revents & (POLLIN | POLLHUP | POLLERR) && fd_open && !down_len) {
			n = read(fd, down, cap);
			if (n > 0) {
				down_len = (size_t)n;
			} else if (n == 0 || errno != EINTR) {
				fd_open = false;
				shutdown(out, SHUT_WR);
			}
		}
		if (up_len && (p[1].revents & (POLLOUT | POLLERR))) {
			n = write(fd, up, up_len);
			if (n < 0 && errno != EINTR && errno != EAGAIN)
				break;
			if (n > 0) {
				memmove(up, up + n, up_len - (size_t)n);
				up_len -= (size_t)n;
			}
		}
		if (down_len && p[2].revents) {
			n = write(out, down, down_len);
			if (n < 0 && errno != EINTR && errno != EAGAIN)
				break;
			if (n > 0) {
				memmove(down, down + n, down_len - (size_t)n);
				down_len -= (size_t)n;
			}
		}
	}
out:
	free(up);
	free(down);
	return r;
}

int agent_host_relay(const char *name, uint32_t port, int in, int out)
{
	struct mgr_err err;
	struct agent_buf b;
	int fd, r;

	agent_buf_init(&b);
	fd = agent_host_dial_vm(name, port, &err);
	if (fd < 0)
		r = agent_msg_error(&b, -fd, "%s", err.msg);
	else
		r = agent_msg_ok(&b, 0);
	if (r == 0)
		r = agent_write_buf(out, &b);
	agent_buf_free(&b);
	if (fd < 0 || r < 0) {
		if (fd >= 0)
			close(fd);
		return 1;
	}
	r = agent_splice(in, out, fd);
	close(fd);
	return r < 0 ? 1 : 0;
}
