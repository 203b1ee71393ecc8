/* SPDX-License-Identifier: MIT */
/*
 * Control-protocol client and VM state resolution (client.h). Every reply
 * is read with a deadline: a hung monitor makes a command report "not
 * answering", never hang the CLI.
 */
#include "manager/client.h"
#include "manager/store_snap.h"

#include "core/clock.h"
#include "core/exit_status.h"
#include "core/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CLIENT_SOCKET_FILE "control.sock"

int client_socket_addr(const struct store *st, const char *name, struct sockaddr_un *sa,
                       socklen_t *len, int *dirfd)
{
	char path[STORE_PATH_MAX];
	int n;

	*dirfd = -1;
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (store_path(st, name, CLIENT_SOCKET_FILE, path, sizeof(path)) < 0)
		return -ENAMETOOLONG;
	if (strlen(path) < sizeof(sa->sun_path)) {
		strcpy(sa->sun_path, path);
	} else {
		/* Too long for sun_path: reach the directory through a descriptor. */
		if (store_path(st, name, NULL, path, sizeof(path)) < 0)
			return -ENAMETOOLONG;
		*dirfd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (*dirfd < 0)
			return -errno;
		n = snprintf(sa->sun_path, sizeof(sa->sun_path), "/proc/self/fd/%d/%s", *dirfd,
		             CLIENT_SOCKET_FILE);
		if (n < 0 || (size_t)n >= sizeof(sa->sun_path)) {
			close(*dirfd);
			*dirfd = -1;
			return -ENAMETOOLONG;
		}
	}
	*len = sizeof(*sa);
	return 0;
}

int client_connect(const struct store *st, const char *name, struct client *c, struct mgr_err *err)
{
	struct sockaddr_un sa;
	socklen_t len = 0;
	int dirfd, r;

	c->fd = -1;
	c->in = NULL;
	c->pass_fds = NULL;
	c->nr_pass_fds = 0;
	r = client_socket_addr(st, name, &sa, &len, &dirfd);
	if (r < 0)
		return mgr_err_set(err, r, "VM '%s': control socket path: %s", name, strerror(-r));
	/* Only a socket of ours with a listener of ours: no one else's monitor gets commands. */
	r = unix_connect_owned(sa.sun_path, SOCK_CLOEXEC);
	if (r < 0)
		goto out;
	c->fd = r;
	r = 0;
	c->in = malloc(sizeof(*c->in));
	if (!c->in) {
		r = -ENOMEM;
		goto out;
	}
	api_framer_init(c->in);
out:
	if (dirfd >= 0)
		close(dirfd);
	if (r < 0) {
		client_close(c);
		mgr_err_set(err, r, "VM '%s': no monitor answers on its control socket: %s", name,
		            fs_strerror(r));
	}
	return r;
}

void client_close(struct client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	free(c->in);
	c->in = NULL;
}

static int client_send_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		buf += n;
		len -= n;
	}
	return 0;
}

/* The first bytes of a request, with c->pass_fds attached; then plain sends. */
static int client_send_request(struct client *c, const char *buf, size_t len)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * 4)];
	} ctl;
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
	struct cmsghdr *cm;
	ssize_t n;

	if (!c->nr_pass_fds)
		return client_send_all(c->fd, buf, len);
	if (c->nr_pass_fds > 4)
		return -EINVAL;
	memset(&ctl, 0, sizeof(ctl));
	msg.msg_control = ctl.buf;
	msg.msg_controllen = CMSG_SPACE(sizeof(int) * c->nr_pass_fds);
	cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int) * c->nr_pass_fds);
	memcpy(CMSG_DATA(cm), c->pass_fds, sizeof(int) * c->nr_pass_fds);
	do
		n = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	c->pass_fds = NULL;
	c->nr_pass_fds = 0;
	return client_send_all(c->fd, buf + n, len - (size_t)n);
}

/* Wait for readable data until @deadline; 0, -ETIMEDOUT or -errno. */
static int client_wait_readable(int fd, int64_t deadline)
{
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int64_t left = deadline - mono_ms();
		int r;

		if (left <= 0)
			return -ETIMEDOUT;
		r = poll(&p, 1, left > 60000 ? 60000 : (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r > 0)
			return 0;
	}
}

int client_call(struct client *c, const char *cmd, json_t *args, int timeout_ms, json_t **result,
                struct mgr_err *err)
{
	return client_call_progress(c, cmd, args, timeout_ms, NULL, NULL, result, err);
}

/* A {"progress": {...}} line: handed to @fn, which restarts the reply's timeout. */
static bool client_progress_line(const char *line, size_t len, client_progress_fn fn,
                                 void *opaque)
{
	json_t *root, *p;
	bool is_progress = false;

	if (!fn)
		return false;
	root = json_loadb(line, len, 0, NULL);
	p = json_object_get(root, "progress");
	if (json_is_object(p)) {
		fn(opaque, p);
		is_progress = true;
	}
	json_decref(root);
	return is_progress;
}

int client_call_progress(struct client *c, const char *cmd, json_t *args, int timeout_ms,
                         client_progress_fn fn, void *opaque, json_t **result, struct mgr_err *err)
{
	int64_t deadline = mono_ms() + timeout_ms;
	json_t *req = args ? args : json_object();
	struct api_error aerr;
	char *text = NULL;
	int r;

	*result = NULL;
	if (!req)
		return mgr_err_set(err, -ENOMEM, "out of memory");
	/* "cmd" first, for people reading the socket with strace. */
	json_t *obj = json_pack("{s:s}", "cmd", cmd);
	if (obj)
		json_object_update(obj, req);
	json_decref(req);
	if (obj)
		text = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(obj);
	if (text) {
		/* One send, the newline included. */
		size_t len = strlen(text);
		char *line = malloc(len + 2);

		if (line) {
			memcpy(line, text, len);
			memcpy(line + len, "\n", 2);
		}
		free(text);
		text = line;
	}
	if (!text)
		return mgr_err_set(err, -ENOMEM, "out of memory");
	r = client_send_request(c, text, strlen(text));
	free(text);
	if (r < 0)
		return mgr_err_set(err, r, "cannot send '%s' to the monitor: %s", cmd,
		                   strerror(-r));
	for (;;) {
		const char *line;
		size_t len, space;
		char *where;
		ssize_t n;

		switch (api_framer_next(c->in, &line, &len)) {
		case API_FRAME_LINE:
			if (client_progress_line(line, len, fn, opaque)) {
				deadline = mono_ms() + timeout_ms;
				continue;
			}
			r = api_reply_parse(line, len, result, &aerr);
			if (r == -EREMOTEIO)
				return mgr_err_set(err, r, "%s", aerr.message);
			if (r < 0)
				return mgr_err_set(err, r, "'%s': %s", cmd, aerr.message);
			return 0;
		case API_FRAME_TOO_LONG:
			return mgr_err_set(err, -EPROTO, "'%s': the monitor's reply is too long",
			                   cmd);
		case API_FRAME_NONE:
			break;
		}
		r = client_wait_readable(c->fd, deadline);
		if (r < 0)
			return mgr_err_set(err, r, "'%s': the monitor did not answer within %d s",
			                   cmd, timeout_ms / 1000);
		space = api_framer_space(c->in, &where);
		n = recv(c->fd, where, space, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return mgr_err_set(err, n < 0 ? -errno : -ECONNRESET,
			                   "'%s': the monitor closed the connection", cmd);
		api_framer_commit(c->in, n);
	}
}

int client_wait_closed(struct client *c, int timeout_ms)
{
	int64_t deadline = mono_ms() + timeout_ms;
	char buf[4096];

	for (;;) {
		ssize_t n;

		if (client_wait_readable(c->fd, deadline) < 0)
			return -ETIMEDOUT;
		n = recv(c->fd, buf, sizeof(buf), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return 0;
	}
}

const char *client_exit_describe(int status, char *buf, size_t len)
{
	switch (status) {
	case NESTVM_EXIT_POWEROFF:
		return "the guest powered off";
	case NESTVM_EXIT_ERROR:
		return "the monitor failed (see monitor.log)";
	case NESTVM_EXIT_REBOOT:
		return "the guest reset (a reboot ends the VM)";
	case NESTVM_EXIT_CRASH:
		return "the guest crashed (see monitor.log)";
	case NESTVM_EXIT_SIGNAL_BASE + SIGKILL:
		return "killed";
	case NESTVM_EXIT_SIGNAL_BASE + SIGTERM:
		return "the monitor got SIGTERM";
	case NESTVM_EXIT_SIGNAL_BASE + SIGINT:
		return "the monitor got SIGINT";
	default:
		snprintf(buf, len, "the guest wrote %d to the debug-exit port", status);
		return buf;
	}
}

/* Fill the guest-hypervisor fields from a status result. */
static void client_status_hv(struct vm_status *out)
{
	json_t *hv = json_object_get(out->info, "guest_hypervisor");
	int active = 0, svme = 0, vmxe = 0, gm = 0;

	if (!json_is_object(hv) ||
	    json_unpack(hv, "{s:b, s:i, s:i, s:i}", "active", &active, "vcpus_svme", &svme,
	                "vcpus_vmxe", &vmxe, "vcpus_guest_mode", &gm) < 0)
		return;
	out->hv_known = true;
	out->hv_active = active;
	out->hv_svme = svme;
	out->hv_vmxe = vmxe;
	out->hv_guest_mode = gm;
}

/* The VM is not running: off, or crashed if its last run says so. */
static void client_status_ended(const struct store *st, const char *name, struct vm_status *out)
{
	out->state = API_STATE_OFF;
	out->have_exit = store_exit_read(st, name, &out->last_exit) == 0;
	if (out->have_exit && out->last_exit.crashed)
		out->state = API_STATE_CRASHED;
	else if (store_has_saved(st, name))
		out->state = API_STATE_SAVED;
}

/* The lock is held but the monitor did not answer: trust runtime.json. */
static void client_status_silent(const struct store *st, const char *name, struct vm_status *out,
                                 const char *why)
{
	struct store_runtime rt;
	int s;

	if (store_runtime_read(st, name, &rt) < 0) {
		client_status_ended(st, name, out);
		return;
	}
	s = api_state_parse(rt.state);
	out->state = s < 0 ? API_STATE_STARTING : (enum api_state)s;
	out->pid = rt.pid;
	if (out->state == API_STATE_RUNNING)
		snprintf(out->note, sizeof(out->note),
		         "the monitor (pid %d) is not answering: %.160s", (int)rt.pid, why);
}

int client_vm_status(const struct store *st, const char *name, struct vm_status *out,
                     struct mgr_err *err)
{
	struct store_runtime rt;
	struct mgr_err cerr;
	struct client c;
	int held, r;

	memset(out, 0, sizeof(*out));
	if (store_check_name(name, err) < 0)
		return -EINVAL;
	/* A VM directory the store does not trust is an error, not a state. */
	r = store_vm_dir(st, name, err);
	if (r < 0)
		return r;
	close(r);
	held = store_lock_held(st, name, STORE_LOCK_RUN);
	if (held < 0)
		return mgr_err_set(err, held, "VM '%s': cannot test its lock: %s", name,
		                   strerror(-held));
	if (!held) {
		if (store_runtime_read(st, name, &rt) == -ENOENT) {
			client_status_ended(st, name, out);
			return 0;
		}
		/* A `start` may have taken the lock since: look again. */
		if (store_lock_held(st, name, STORE_LOCK_RUN) == 0) {
			client_status_ended(st, name, out);
			out->state = API_STATE_CRASHED;
			if (rt.pid)
				snprintf(out->note, sizeof(out->note),
				         "the monitor (pid %d) died without recording why; see "
				         "monitor.log",
				         (int)rt.pid);
			else
				snprintf(out->note, sizeof(out->note),
				         "'nestvm start' was interrupted before the monitor ran");
			return 0;
		}
	}
	r = client_connect(st, name, &c, &cerr);
	if (r == 0) {
		r = client_call(&c, "status", NULL, CLIENT_TIMEOUT_MS, &out->info, &cerr);
		client_close(&c);
	}
	if (r < 0) {
		client_status_silent(st, name, out, cerr.msg);
		return 0;
	}
	{
		const char *state = NULL;
		int pid = 0, s;

		json_unpack(out->info, "{s?s, s?i}", "state", &state, "pid", &pid);
		s = api_state_parse(state);
		out->state = s < 0 ? API_STATE_RUNNING : (enum api_state)s;
		out->pid = pid;
		out->live = true;
	}
	out->have_exit = store_exit_read(st, name, &out->last_exit) == 0;
	client_status_hv(out);
	return 0;
}

void client_vm_status_clear(struct vm_status *s)
{
	json_decref(s->info);
	s->info = NULL;
}
