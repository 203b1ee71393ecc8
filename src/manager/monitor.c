/* SPDX-License-Identifier: MIT */
/*
 * The monitor process (monitor.h): runs one VM, serves its control socket
 * and its serial console, and records what happened in the store.
 *
 * Threads: the main thread creates the VM and sits in vm_run(); the control
 * thread polls the listening socket, the clients, the UART's output pipe, a
 * timerfd (the stop deadline) and an eventfd (quit), and calls vm_pause(),
 * vm_power_button() and friends, which core/vm.h makes safe from any thread.
 * The state is under m->lock; only the main thread creates and destroys the
 * VM, before the control thread may use it and after it has been joined.
 *
 * Client input is hostile: a malformed request gets an error reply, a
 * client that does not read its replies is dropped, and nothing a client
 * sends can stop the VM except the documented commands.
 */
#include "manager/monitor.h"
#include "manager/monitor_internal.h"

#include "core/clock.h"
#include "core/exit_status.h"
#include "core/fsutil.h"
#include "core/log.h"
#include "core/machine.h"
#include "core/sandbox.h"
#include "core/vm.h"
#include "devices/virtio/net.h"
#include "manager/client.h"
#include "manager/protocol.h"
#include "manager/store_snap.h"
#include "snapshot/migrate_stream.h"
#include "snapshot/vm_snapshot.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/*
 * Move NAME/@file to @file.1 (replacing it) and open a new, empty @file, if
 * @fd (an open descriptor of @file) holds more than @max bytes. Returns the
 * new descriptor, @fd itself if nothing was done, or -errno.
 */
static int monitor_rotate(const struct store *st, const char *name, const char *file, int fd,
                          uint64_t max)
{
	char old[64], dir[STORE_PATH_MAX];
	struct stat sb, now;
	struct mgr_err err;
	int dfd, nfd = -1;

	if (fstat(fd, &sb) < 0 || (uint64_t)sb.st_size <= max)
		return fd;
	dfd = store_vm_dir(st, name, &err);
	if (dfd < 0)
		return dfd;
	if (store_path(st, name, NULL, dir, sizeof(dir)) < 0)
		dir[0] = '\0';
	snprintf(old, sizeof(old), "%s.1", file);
	/* Only the file @fd is: not one put in its place since. */
	if (fstatat(dfd, file, &now, AT_SYMLINK_NOFOLLOW) == 0 && now.st_ino == sb.st_ino &&
	    now.st_dev == sb.st_dev && renameat(dfd, file, dfd, old) == 0)
		nfd = store_openat(dfd, dir, file, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, &err);
	close(dfd);
	return nfd;
}


/*
 * monitor.log is our stdout and stderr (monitor_spawn): past MONITOR_LOG_MAX
 * it moves to monitor.log.1 and a new one takes its place. Not when run by
 * hand with stderr elsewhere. At most once a second.
 */
static void monitor_log_rotate(struct monitor *m)
{
	int64_t now = mono_ms();
	int fd;

	if (now - m->log_checked_ms < 1000)
		return;
	m->log_checked_ms = now;
	if (m->log_fd < 0)
		return;
	fd = monitor_rotate(m->st, m->name, "monitor.log", m->log_fd, MONITOR_LOG_MAX);
	if (fd == m->log_fd || fd < 0)
		return;
	fflush(stdout);
	fflush(stderr);
	if (dup2(fd, STDOUT_FILENO) < 0 || dup2(fd, STDERR_FILENO) < 0)
		log_warn("monitor.log: cannot switch to the new file: %s", strerror(errno));
	close(m->log_fd);
	m->log_fd = fd;
}

/* Set the state and mirror it into runtime.json for clients that cannot reach us. */
void monitor_set_state(struct monitor *m, enum api_state state)
{
	struct store_runtime rt = {.pid = getpid(), .started = m->started};

	pthread_mutex_lock(&m->lock);
	m->state = state;
	pthread_mutex_unlock(&m->lock);
	snprintf(rt.state, sizeof(rt.state), "%s", api_state_name(state));
	if (store_runtime_write(m->st, m->name, &rt) < 0)
		log_warn("cannot update runtime.json; 'nestvm list' may show a stale state");
}

enum api_state monitor_get_state(struct monitor *m)
{
	enum api_state s;

	pthread_mutex_lock(&m->lock);
	s = m->state;
	pthread_mutex_unlock(&m->lock);
	return s;
}

/* End the VM from the monitor's side; the first reason wins, as the status does. */
static void monitor_kill_vm(struct monitor *m, const char *reason)
{
	pthread_mutex_lock(&m->lock);
	if (!m->stop_reason[0])
		snprintf(m->stop_reason, sizeof(m->stop_reason), "%s", reason);
	pthread_mutex_unlock(&m->lock);
	monitor_log(m, "%s", reason);
	vm_request_stop(m->vm, NESTVM_EXIT_SIGNAL_BASE + SIGKILL, reason);
	monitor_set_state(m, API_STATE_STOPPING);
}

/* ---- console ---- */

/* Close the descriptors a client passed that no request took. */
static void monitor_client_drop_fds(struct monitor_client *cl)
{
	for (unsigned int i = 0; i < cl->nr_fds; i++) {
		if (cl->fds[i] >= 0)
			close(cl->fds[i]);
	}
	cl->nr_fds = 0;
}

static void monitor_client_close(struct monitor_client *cl)
{
	if (cl->fd >= 0)
		close(cl->fd);
	free(cl->in);
	api_outbox_clear(&cl->out);
	cl->fd = -1;
	cl->in = NULL;
	cl->in_ended = false;
	cl->console = false;
	cl->awaits_end = false;
	cl->awaits_migration = false;
	cl->pending_len = 0;
	monitor_client_drop_fds(cl);
}

static struct monitor_client *monitor_console_client(struct monitor *m)
{
	for (unsigned int i = 0; i < MONITOR_MAX_CLIENTS; i++) {
		if (m->clients[i].fd >= 0 && m->clients[i].console)
			return &m->clients[i];
	}
	return NULL;
}

/* Send @cl's waiting replies as far as its socket takes them; -EPIPE: gone (closed). */
static int monitor_client_flush(struct monitor_client *cl)
{
	if (api_outbox_send(&cl->out, cl->fd) < 0) {
		monitor_client_close(cl);
		return -EPIPE;
	}
	return 0;
}

/* Send without blocking; a console reader that cannot keep up loses output. */
static void monitor_console_send(struct monitor_client *cl, const char *buf, size_t len)
{
	/* The console's reply first: output behind it waits for nothing. */
	if (cl->out.len && (monitor_client_flush(cl) < 0 || cl->out.len))
		return;
	while (len) {
		ssize_t n = send(cl->fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			monitor_client_close(cl);
			return;
		}
		buf += n;
		len -= n;
	}
}

static void monitor_console_log_rotate(struct monitor *m)
{
	int fd = monitor_rotate(m->st, m->name, "console.log", m->con_log_fd, 0);

	if (fd == m->con_log_fd)
		return;
	close(m->con_log_fd);
	m->con_log_fd = fd < 0 ? -1 : fd;
	m->con_log_size = 0;
	if (fd < 0)
		log_warn("console log: cannot start a new console.log: %s; console output is "
		         "no longer kept",
		         strerror(-fd));
}

/* UART output: to console.log, the replay ring and the attached console. */
static void monitor_console_output(struct monitor *m)
{
	char buf[4096];
	struct monitor_client *cl;

	for (;;) {
		ssize_t n = read(m->con_out[0], buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		if (m->con_log_fd >= 0) {
			if (write(m->con_log_fd, buf, n) == n)
				m->con_log_size += n;
			if (m->con_log_size > MONITOR_CONSOLE_LOG_MAX)
				monitor_console_log_rotate(m);
		}
		for (ssize_t i = 0; i < n; i++) {
			m->ring[(m->ring_head + m->ring_len) % MONITOR_CONSOLE_RING] = buf[i];
			if (m->ring_len < MONITOR_CONSOLE_RING)
				m->ring_len++;
			else
				m->ring_head = (m->ring_head + 1) % MONITOR_CONSOLE_RING;
		}
		cl = monitor_console_client(m);
		if (cl)
			monitor_console_send(cl, buf, n);
	}
}

/* Console input: hand what is pending to the UART's input pipe. */
static void monitor_console_input_flush(struct monitor *m, struct monitor_client *cl)
{
	while (cl->pending_len) {
		ssize_t n = write(m->con_in[1], cl->pending, cl->pending_len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return; /* full: poll for POLLOUT */
		memmove(cl->pending, cl->pending + n, cl->pending_len - n);
		cl->pending_len -= n;
	}
}

static void monitor_console_input(struct monitor *m, struct monitor_client *cl, const char *buf,
                                  size_t len)
{
	size_t room = sizeof(cl->pending) - cl->pending_len;

	if (len > room)
		len = room; /* the caller only reads while there is room */
	memcpy(cl->pending + cl->pending_len, buf, len);
	cl->pending_len += len;
	monitor_console_input_flush(m, cl);
}

/* ---- requests ---- */

int monitor_reply(struct monitor_client *cl, char *line)
{
	int r;

	if (!line)
		return -ENOMEM;
	/* Behind what waits, and sent as far as the socket takes it now. */
	r = api_outbox_add(&cl->out, line, strlen(line));
	free(line);
	if (r < 0) {
		log_warn("a control client left %zu bytes of replies unread: disconnected",
		         cl->out.len);
		monitor_client_close(cl);
		return r;
	}
	return monitor_client_flush(cl);
}

/* The NICs as they run: each adapter's link and counters (devices/virtio/net.h). */
static json_t *monitor_nics(struct monitor *m)
{
	json_t *a = json_array();

	for (unsigned int i = 0; a && i < m->def.nr_nics; i++) {
		const struct vm_nic *n = &m->def.nics[i];
		struct virtio_net_stats s;
		json_t *tx, *rx;

		if (machine_nic_stats(m->vm, i, &s) < 0)
			break;
		tx = json_pack("{s:I, s:I, s:I}", "frames", (json_int_t)s.tx_frames, "bytes",
		               (json_int_t)s.tx_bytes, "dropped", (json_int_t)s.tx_dropped);
		rx = json_pack(
		    "{s:I, s:I, s:{s:I, s:I, s:I, s:I}}", "frames", (json_int_t)s.rx_frames,
		    "bytes", (json_int_t)s.rx_bytes, "dropped", "malformed",
		    (json_int_t)s.rx_dropped_bad, "mtu", (json_int_t)s.rx_dropped_mtu, "no_buffer",
		    (json_int_t)s.rx_dropped_room, "reset", (json_int_t)s.rx_dropped_lifecycle);
		json_array_append_new(a,
		                      json_pack("{s:s, s:s?, s:b, s:o?, s:o?, s:I}", "mac", n->mac,
		                                "switch", n->network, "link", s.link_up, "tx", tx,
		                                "rx", rx, "resets", (json_int_t)s.resets_asked));
	}
	return a;
}

static json_t *monitor_status(struct monitor *m, enum api_state state)
{
	json_t *res, *hv = json_null();
	struct vm_guest_hv g;
	struct sandbox_state sb;

	/*
	 * Not while a migration runs: its thread quiesces the VM on its own, and
	 * a sample's pause and resume must not cross that (it would resume the
	 * vCPUs in the middle of the switch-over).
	 */
	if ((state == API_STATE_RUNNING || state == API_STATE_PAUSED ||
	     state == API_STATE_STOPPING) &&
	    !monitor_migrating(m) && vm_guest_hypervisor(m->vm, &g) == 0)
		hv = json_pack("{s:b, s:i, s:i, s:i}", "active", g.active, "vcpus_svme",
		               (int)g.vcpus_svme, "vcpus_vmxe", (int)g.vcpus_vmxe,
		               "vcpus_guest_mode", (int)g.vcpus_guest_mode);
	res = json_pack("{s:i, s:s, s:s, s:i, s:I, s:i, s:I, s:b, s:o, s:b}", "api_version",
	                API_VERSION, "name", m->name, "state", api_state_name(state), "pid",
	                (int)getpid(), "uptime_s", (json_int_t)(time(NULL) - m->started), "cpus",
	                (int)m->def.cpus, "memory_mib", (json_int_t)m->def.memory_mib, "nested",
	                m->def.nested, "guest_hypervisor", hv ? hv : json_null(),
	                "console_attached", monitor_console_client(m) != NULL);
	sandbox_get_state(&sb);
	if (res)
		json_object_set_new(res, "sandbox",
		                    json_pack("{s:b, s:b, s:b}", "seccomp", sb.seccomp, "landlock",
		                              sb.landlock, "landlock_files", sb.landlock_files));
	if (res && m->jail.active)
		json_object_set_new(res, "jail",
		                    json_pack("{s:b, s:I, s:I, s:b, s:s, s:b}", "active", true, "uid",
		                              (json_int_t)m->jail.uid, "gid", (json_int_t)m->jail.gid,
		                              "mount_namespace", true, "root",
		                              m->jail.pivoted ? "pivot_root" : "chroot",
		                              "no_new_privs", true));
	else if (res)
		json_object_set_new(res, "jail", json_pack("{s:b, s:s}", "active", false, "reason",
		                                           m->jail.off_reason));
	if (res)
		json_object_set_new(res, "migration", monitor_migrate_status(m));
	/* The devices exist in these states, as for guest_hypervisor above. */
	if (res && m->def.nr_nics &&
	    (state == API_STATE_RUNNING || state == API_STATE_PAUSED ||
	     state == API_STATE_STOPPING))
		json_object_set_new(res, "nics", monitor_nics(m));
	pthread_mutex_lock(&m->lock);
	if (res && m->incoming.active)
		json_object_set_new(res, "incoming",
		                    json_pack("{s:s, s:i, s:I}", "from", m->incoming.from, "pass",
		                              (int)m->incoming.pass, "received_bytes",
		                              (json_int_t)(m->incoming.pages * MIG_PAGE_SIZE)));
	pthread_mutex_unlock(&m->lock);
	return res;
}

static void monitor_arm_stop_timer(struct monitor *m, unsigned int seconds)
{
	struct itimerspec its = {.it_value = {.tv_sec = seconds}};

	if (timerfd_settime(m->timer_fd, 0, &its, NULL) < 0)
		log_warn("cannot arm the stop timer: %s", strerror(errno));
}

static char *monitor_do_stop(struct monitor *m, const struct api_request *req, enum api_state state)
{
	const char *button;

	if (state == API_STATE_PAUSED && !req->force)
		return api_reply_error(req->id, API_ERR_STATE,
		                       "the VM is paused and its guest cannot react to the power "
		                       "button: resume it first, or stop it with force");
	if (state == API_STATE_PAUSED) {
		monitor_kill_vm(m, "forced off while paused (stop --force)");
		return api_reply_ok(req->id, json_pack("{s:s, s:s}", "power_button", "not-pressed",
		                                       "action", "killed"));
	}
	button = vm_power_button(m->vm) ? "pressed" : "ignored";
	monitor_log(m, "power button %s (timeout %u s, force %s)", button, req->timeout_s,
	            req->force ? "yes" : "no");
	if (!strcmp(button, "ignored")) {
		/* No OSPM listens: waiting is pointless. */
		if (req->force) {
			monitor_kill_vm(m, "forced off: the guest does not listen for the ACPI "
			                   "power button (stop --force)");
			return api_reply_ok(req->id, json_pack("{s:s, s:s}", "power_button", button,
			                                       "action", "killed"));
		}
		return api_reply_ok(
		    req->id, json_pack("{s:s, s:s}", "power_button", button, "action", "none"));
	}
	if (req->force && req->timeout_s == 0) {
		monitor_kill_vm(m, "forced off at once (stop --force --timeout 0)");
		return api_reply_ok(
		    req->id, json_pack("{s:s, s:s}", "power_button", button, "action", "killed"));
	}
	m->stop_force = req->force;
	m->stop_timeout = req->timeout_s;
	if (req->timeout_s)
		monitor_arm_stop_timer(m, req->timeout_s);
	monitor_set_state(m, API_STATE_STOPPING);
	return api_reply_ok(req->id,
	                    json_pack("{s:s, s:s}", "power_button", button, "action", "waiting"));
}

/* The stop deadline passed with the guest still up. */
static void monitor_stop_deadline(struct monitor *m)
{
	uint64_t expirations;
	char reason[160];

	if (read(m->timer_fd, &expirations, sizeof(expirations)) < 0)
		return;
	if (monitor_get_state(m) != API_STATE_STOPPING)
		return;
	if (m->stop_force) {
		snprintf(reason, sizeof(reason),
		         "forced off: the guest did not power off within %u s of the power button",
		         m->stop_timeout);
		monitor_kill_vm(m, reason);
	} else {
		monitor_log(m,
		            "the guest did not power off within %u s of the power button; "
		            "it keeps running",
		            m->stop_timeout);
		monitor_set_state(m, API_STATE_RUNNING);
	}
}

/* Progress of a save or checkpoint, as lines to the client that asked for them. */
struct monitor_progress {
	struct monitor_client *cl;
	json_t *id;
	const char *op;
};

static void monitor_progress_line(void *opaque, const char *phase, uint64_t done, uint64_t total)
{
	struct monitor_progress *p = opaque;
	json_t *line;
	char *text;

	if (p->cl->fd < 0)
		return;
	line = json_pack("{s:{s:s, s:s, s:I, s:I}}", "progress", "op", p->op, "phase", phase,
	                 "done", (json_int_t)done, "total", (json_int_t)total);
	if (line && p->id)
		json_object_set(line, "id", p->id);
	text = line ? json_dumps(line, JSON_COMPACT) : NULL;
	json_decref(line);
	if (text) {
		char *nl = realloc(text, strlen(text) + 2);

		if (nl) {
			strcat(nl, "\n");
			(void)monitor_reply(p->cl, nl);
		} else {
			free(text);
		}
	}
}

/*
 * save and checkpoint: quiesce the VM, write its state, memory and
 * definition (and for a checkpoint its disks) into the store, put it in
 * place. A save then ends the VM; a checkpoint lets it run on, unless the
 * user had paused it. Returns the reply.
 */
static char *monitor_do_snapshot(struct monitor *m, struct monitor_client *cl,
                                 const struct api_request *req, enum api_state state)
{
	bool save = req->cmd == API_CMD_SAVE, was_paused = state == API_STATE_PAUSED;
	struct monitor_progress mp = {cl, req->id, save ? "save" : "checkpoint"};
	struct snapshot_progress progress = {req->progress ? monitor_progress_line : NULL, &mp};
	struct store_snap_tmp t = {.vm_fd = -1, .fd = -1};
	char dest[STORE_CHECKPOINT_NAME_MAX + 16], cp[STORE_CHECKPOINT_NAME_MAX + 1];
	char why[384] = "";
	struct mgr_err err = {""};
	struct timespec t0, t1;
	int64_t ms;
	int r;

	if (state != API_STATE_RUNNING && state != API_STATE_PAUSED)
		return api_reply_error(req->id, API_ERR_STATE, "only a running or paused VM can be saved");
	if (save) {
		snprintf(dest, sizeof(dest), "%s", STORE_SAVED);
	} else {
		time_t now = time(NULL);
		struct tm tm;

		if (req->name[0])
			snprintf(cp, sizeof(cp), "%s", req->name);
		else
			strftime(cp, sizeof(cp), "%Y%m%d-%H%M%S", gmtime_r(&now, &tm));
		if (store_check_checkpoint_name(cp, &err) < 0)
			return api_reply_error(req->id, API_ERR_INVALID, err.msg);
		snprintf(dest, sizeof(dest), "%s/%s", STORE_CHECKPOINTS, cp);
		r = store_snap_open(m->st, m->name, cp, &err);
		if (r >= 0) {
			close(r);
			snprintf(why, sizeof(why), "checkpoint '%s' exists: remove it first, or give "
			         "another name", cp);
			return api_reply_error(req->id, API_ERR_STATE, why);
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	r = vm_snapshot_quiesce(m->vm);
	if (r < 0)
		return api_reply_error(req->id, API_ERR_STATE,
		                       r == -ETIMEDOUT ? "the VM did not stop in time; it keeps running"
		                                       : "the VM could not be quiesced; it keeps running");
	r = store_snap_begin(m->st, m->name, &t, &err);
	if (r == 0) {
		r = vm_snapshot_save(m->vm, t.fd, &progress, why, sizeof(why));
		if (r < 0)
			mgr_err_set(&err, r, "%s", why);
	}
	if (r == 0)
		r = store_snap_write_def(&t, &m->def, &err);
	if (r == 0 && !save)
		r = store_snap_copy_disks(&t, &m->def, &err);
	if (r == 0)
		r = store_snap_commit(&t, dest, &err);
	else if (t.vm_fd >= 0)
		store_snap_abort(&t);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	if (r < 0) {
		monitor_log(m, "%s failed: %s", mp.op, err.msg);
		if (!was_paused)
			vm_unquiesce(m->vm);
		return api_reply_error(req->id, API_ERR_FAILED, err.msg);
	}
	if (save) {
		monitor_log(m, "saved in %lld ms", (long long)ms);
		pthread_mutex_lock(&m->lock);
		snprintf(m->stop_reason, sizeof(m->stop_reason), "saved (nestvm save)");
		pthread_mutex_unlock(&m->lock);
		vm_request_stop(m->vm, NESTVM_EXIT_SIGNAL_BASE + SIGKILL, "saved");
		monitor_set_state(m, API_STATE_STOPPING);
		cl->awaits_end = true;
		return api_reply_ok(req->id, json_pack("{s:s, s:I}", "state", "saved", "ms",
		                                       (json_int_t)ms));
	}
	if (!was_paused)
		vm_unquiesce(m->vm);
	monitor_log(m, "checkpoint '%s' taken in %lld ms", cp, (long long)ms);
	return api_reply_ok(req->id, json_pack("{s:s, s:I}", "checkpoint", cp, "ms", (json_int_t)ms));
}

/* One request line; returns the reply line (malloc'd). */
/*
 * nic-connect: NIC req->nic onto the port socket that came with the request
 * (`nestvm connect` joined the switch for us: this monitor may be jailed),
 * or onto none. The definition follows, so a save names the new switch.
 */
static char *monitor_do_nic_connect(struct monitor *m, struct monitor_client *cl,
                                    const struct api_request *req)
{
	char *name = NULL, *old;
	int fd = -1;

	if (req->nic >= m->def.nr_nics || req->nic >= m->vm->cfg.nr_nics)
		return api_reply_error(req->id, API_ERR_INVALID, "the VM has no such NIC");
	if (req->switch_name[0]) {
		if (cl->nr_fds < 1 || cl->fds[0] < 0)
			return api_reply_error(req->id, API_ERR_INVALID,
			                       "nic-connect to a switch takes the port socket with "
			                       "the request (SCM_RIGHTS; nestvm connect does this)");
		name = strdup(req->switch_name);
		if (!name)
			return api_reply_error(req->id, API_ERR_INTERNAL, "out of memory");
		fd = cl->fds[0];
		cl->fds[0] = -1; /* taken */
	}
	if (machine_nic_attach(m->vm, req->nic, fd) < 0) {
		if (fd >= 0)
			close(fd);
		free(name);
		return api_reply_error(req->id, API_ERR_INVALID, "the VM has no such NIC");
	}
	pthread_mutex_lock(&m->lock);
	old = m->def.nics[req->nic].network;
	m->def.nics[req->nic].network = name;
	m->vm->cfg.nics[req->nic].switch_name = name;
	pthread_mutex_unlock(&m->lock);
	free(old);
	monitor_log(m, "NIC %u: %s%s%s", req->nic, name ? "on switch '" : "on no switch",
	            name ? name : "", name ? "'" : "");
	return api_reply_ok(req->id, json_pack("{s:i, s:s?}", "nic", (int)req->nic, "switch", name));
}

static char *monitor_request(struct monitor *m, struct monitor_client *cl, const char *line,
                             size_t len)
{
	enum api_state state = monitor_get_state(m);
	struct api_request req;
	struct api_error aerr;
	struct timespec t0, t1;
	char *reply;
	char msg[160];
	int r;

	if (api_request_parse(line, len, &req, &aerr) < 0) {
		reply = api_reply_error(req.id, aerr.code, aerr.message);
		api_request_clear(&req);
		return reply;
	}
	/* Killed before the VM exists: it will not run. */
	if (req.cmd == API_CMD_KILL && state == API_STATE_STARTING) {
		pthread_mutex_lock(&m->lock);
		m->abort_start = true;
		snprintf(m->stop_reason, sizeof(m->stop_reason), "killed while starting");
		if (m->incoming.cancel_fd >= 0 &&
		    write(m->incoming.cancel_fd, &(uint64_t){1}, sizeof(uint64_t)) < 0)
			log_debug("the incoming migration missed the kill");
		pthread_mutex_unlock(&m->lock);
		cl->awaits_end = true;
		reply = api_reply_ok(req.id, json_pack("{s:s}", "action", "killed"));
		api_request_clear(&req);
		return reply;
	}
	/* Before the VM exists, and while it ends, only status makes sense. */
	if (req.cmd != API_CMD_STATUS &&
	    (state == API_STATE_STARTING || state == API_STATE_OFF ||
	     (state == API_STATE_STOPPING && req.cmd != API_CMD_STOP && req.cmd != API_CMD_KILL &&
	      req.cmd != API_CMD_CONSOLE))) {
		snprintf(msg, sizeof(msg), "'%s' is not possible while the VM is %s",
		         api_cmd_name(req.cmd), api_state_name(state));
		reply = api_reply_error(req.id, API_ERR_STATE, msg);
		api_request_clear(&req);
		return reply;
	}
	/* A migration under way has the VM: what would pause, save or move it again waits. */
	if ((req.cmd == API_CMD_PAUSE || req.cmd == API_CMD_RESUME || req.cmd == API_CMD_SAVE ||
	     req.cmd == API_CMD_CHECKPOINT || req.cmd == API_CMD_MIGRATE) &&
	    monitor_migrating(m)) {
		snprintf(msg, sizeof(msg),
		         "'%s' is not possible while the VM migrates (nestvm migrate --cancel %s)",
		         api_cmd_name(req.cmd), m->name);
		reply = api_reply_error(req.id, API_ERR_STATE, msg);
		api_request_clear(&req);
		return reply;
	}
	switch (req.cmd) {
	case API_CMD_MIGRATE:
		reply = monitor_do_migrate(m, cl, &req, state);
		if (!reply) {
			/* The reply comes when it is over (monitor_migrate_events()). */
			api_request_clear(&req);
			return NULL;
		}
		break;
	case API_CMD_MIGRATE_CANCEL:
		reply = monitor_do_migrate_cancel(m, &req);
		break;
	case API_CMD_NIC_CONNECT:
		reply = monitor_do_nic_connect(m, cl, &req);
		break;
	case API_CMD_STATUS:
		reply = api_reply_ok(req.id, monitor_status(m, state));
		break;
	case API_CMD_PAUSE:
		if (state == API_STATE_PAUSED) {
			reply = api_reply_ok(req.id, json_pack("{s:s}", "state", "paused"));
			break;
		}
		clock_gettime(CLOCK_MONOTONIC, &t0);
		r = vm_quiesce(m->vm);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if (r < 0) {
			reply = api_reply_error(req.id, API_ERR_STATE,
			                        r == -ETIMEDOUT ? "the VM did not stop in time; "
			                                          "it keeps running"
			                                        : "the VM is stopping");
			break;
		}
		monitor_set_state(m, API_STATE_PAUSED);
		monitor_log(m, "paused");
		/* How long parking the vCPUs and devices took: the pause latency. */
		reply = api_reply_ok(req.id, json_pack("{s:s, s:I}", "state", "paused", "quiesce_us",
		                                       (json_int_t)((t1.tv_sec - t0.tv_sec) * 1000000 +
		                                                    (t1.tv_nsec - t0.tv_nsec) / 1000)));
		break;
	case API_CMD_RESUME:
		if (state == API_STATE_PAUSED) {
			vm_unquiesce(m->vm);
			monitor_set_state(m, API_STATE_RUNNING);
			monitor_log(m, "resumed");
		}
		reply = api_reply_ok(req.id, json_pack("{s:s}", "state", "running"));
		break;
	case API_CMD_STOP:
		reply = monitor_do_stop(m, &req, state);
		break;
	case API_CMD_SAVE:
	case API_CMD_CHECKPOINT:
		reply = monitor_do_snapshot(m, cl, &req, state);
		break;
	case API_CMD_KILL:
		monitor_kill_vm(m, "killed (nestvm kill)");
		reply = api_reply_ok(req.id, json_pack("{s:s}", "action", "killed"));
		break;
	case API_CMD_CONSOLE:
		if (monitor_console_client(m)) {
			reply = api_reply_error(req.id, API_ERR_BUSY,
			                        "another client has the console attached");
			break;
		}
		reply = api_reply_ok(
		    req.id, json_pack("{s:i}", "replay_bytes", req.replay ? (int)m->ring_len : 0));
		if (monitor_reply(cl, reply) < 0) {
			reply = NULL;
			break;
		}
		cl->console = true;
		if (req.replay) {
			size_t first = MONITOR_CONSOLE_RING - m->ring_head;

			if (first > m->ring_len)
				first = m->ring_len;
			monitor_console_send(cl, m->ring + m->ring_head, first);
			if (cl->fd >= 0)
				monitor_console_send(cl, m->ring, m->ring_len - first);
		}
		reply = NULL; /* already sent */
		break;
	default:
		reply = api_reply_error(req.id, API_ERR_INTERNAL, "unhandled command");
		break;
	}
	/* Such a client waits for the VM to end: the idle timeout is not for it. */
	if (req.cmd == API_CMD_KILL ||
	    (req.cmd == API_CMD_STOP && monitor_get_state(m) == API_STATE_STOPPING))
		cl->awaits_end = true;
	api_request_clear(&req);
	if (!reply && !cl->console && cl->fd >= 0)
		reply = api_reply_error(NULL, API_ERR_INTERNAL, "out of memory");
	return reply;
}

/*
 * recv() of a request, and the descriptors passed with it (SCM_RIGHTS, at
 * most MONITOR_CLIENT_FDS: more are closed, and MSG_CMSG_CLOEXEC keeps them
 * from any child). They stay with the client until its next request line
 * is complete, which may take more than one read.
 */
static ssize_t monitor_client_recv(struct monitor_client *cl, char *buf, size_t len)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * 8)];
	} ctl;
	struct iovec iov = {.iov_base = buf, .iov_len = len};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
	                     .msg_controllen = sizeof(ctl.buf)};
	ssize_t n = recvmsg(cl->fd, &msg, MSG_CMSG_CLOEXEC);

	if (n < 0)
		return n;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
		size_t nfd;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < nfd; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
			if (cl->nr_fds < MONITOR_CLIENT_FDS)
				cl->fds[cl->nr_fds++] = fd;
			else
				close(fd);
		}
	}
	return n;
}

static void monitor_client_requests(struct monitor *m, struct monitor_client *cl);

/* Bytes from a client: requests, or console input once it attached. */
static void monitor_client_read(struct monitor *m, struct monitor_client *cl)
{
	char *where;
	size_t space;
	ssize_t n;

	if (cl->console) {
		char buf[MONITOR_CONSOLE_PENDING];
		size_t room = sizeof(cl->pending) - cl->pending_len;

		n = recv(cl->fd, buf, room < sizeof(buf) ? room : sizeof(buf), 0);
		if (n <= 0) {
			if (n == 0 || (errno != EINTR && errno != EAGAIN))
				monitor_client_close(cl);
			return;
		}
		monitor_console_input(m, cl, buf, n);
		return;
	}
	space = api_framer_space(cl->in, &where);
	n = monitor_client_recv(cl, where, space);
	if (n == 0 && cl->out.len) {
		cl->in_ended = true; /* its last replies first */
		return;
	}
	if (n <= 0) {
		if (n == 0 || (errno != EINTR && errno != EAGAIN))
			monitor_client_close(cl);
		return;
	}
	api_framer_commit(cl->in, n);
	monitor_client_requests(m, cl);
}

/*
 * Answer the complete request lines read from @cl, until its replies back
 * up (api_outbox_held()): the rest waits until they are sent.
 */
static void monitor_client_requests(struct monitor *m, struct monitor_client *cl)
{
	while (cl->fd >= 0 && !cl->console && !api_outbox_held(&cl->out)) {
		const char *line, *rest;
		size_t len;
		char *reply;

		switch (api_framer_next(cl->in, &line, &len)) {
		case API_FRAME_NONE:
			return;
		case API_FRAME_TOO_LONG:
			reply = api_reply_error(NULL, API_ERR_TOO_LONG,
			                        "a request line is at most 65535 bytes");
			monitor_reply(cl, reply);
			continue;
		case API_FRAME_LINE:
			cl->active_ms = mono_ms();
			reply = monitor_request(m, cl, line, len);
			/* Descriptors go with the request they came in (or before the end of). */
			monitor_client_drop_fds(cl);
			if (reply)
				monitor_reply(cl, reply);
			if (cl->fd >= 0 && cl->console) {
				/* What followed the console request is console input. */
				len = api_framer_pending(cl->in, &rest);
				if (len > sizeof(cl->pending))
					len = sizeof(cl->pending);
				monitor_console_input(m, cl, rest, len);
			}
			continue;
		}
	}
}

/* Tell a client why it is being disconnected (best effort), and close it. */
static void monitor_client_drop(struct monitor_client *cl, const char *code, const char *why)
{
	char *reply = api_reply_error(NULL, code, why);

	if (reply && send(cl->fd, reply, strlen(reply), MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		log_debug("could not tell a client why it is disconnected");
	free(reply);
	monitor_client_close(cl);
}

/*
 * All slots taken: the slot of the client idle longest, preferring one that
 * is not waiting for the VM to end; never the console's. NULL if none.
 */
static struct monitor_client *monitor_client_victim(struct monitor *m)
{
	struct monitor_client *best = NULL;

	for (unsigned int i = 0; i < MONITOR_MAX_CLIENTS; i++) {
		struct monitor_client *cl = &m->clients[i];

		if (cl->fd < 0 || cl->console)
			continue;
		if (!best || (best->awaits_end && !cl->awaits_end) ||
		    (best->awaits_end == cl->awaits_end && cl->active_ms < best->active_ms))
			best = cl;
	}
	return best;
}

/* Disconnect the clients that sent no complete request within MONITOR_IDLE_TIMEOUT_MS. */
static void monitor_clients_expire(struct monitor *m)
{
	int64_t now = mono_ms();

	for (unsigned int i = 0; i < MONITOR_MAX_CLIENTS; i++) {
		struct monitor_client *cl = &m->clients[i];

		if (cl->fd >= 0 && !cl->console && !cl->awaits_end && !cl->awaits_migration &&
		    now - cl->active_ms >= MONITOR_IDLE_TIMEOUT_MS)
			monitor_client_drop(cl, API_ERR_IDLE,
			                    "no complete request within 10 s: disconnected");
	}
}

static void monitor_accept(struct monitor *m)
{
	struct monitor_client *cl = NULL;
	int fd = accept4(m->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

	if (fd < 0)
		return;
	for (unsigned int i = 0; i < MONITOR_MAX_CLIENTS && !cl; i++) {
		if (m->clients[i].fd < 0)
			cl = &m->clients[i];
	}
	/* Full: the newcomer may be the owner's `kill`; the longest-idle client makes room. */
	if (!cl) {
		cl = monitor_client_victim(m);
		if (cl)
			monitor_client_drop(cl, API_ERR_BUSY,
			                    "too many clients connected: the longest idle one is "
			                    "disconnected to let a new one in");
	}
	if (cl) {
		cl->in = malloc(sizeof(*cl->in));
		if (cl->in) {
			api_framer_init(cl->in);
			cl->fd = fd;
			cl->gen++;
			cl->console = false;
			cl->awaits_end = false;
			cl->awaits_migration = false;
			cl->pending_len = 0;
			cl->active_ms = mono_ms();
			return;
		}
	}
	char *reply = api_reply_error(NULL, API_ERR_BUSY, "too many clients connected");

	if (reply && send(fd, reply, strlen(reply), MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		log_debug("could not tell a client it was refused");
	free(reply);
	close(fd);
}

/*
 * Sanitizer and debug builds: NESTVM_JAIL_SELFTEST=PATH makes the control
 * thread, confined, try to open PATH for reading, then for writing, and log
 * what happened
 * (tests/integration/jail.sh): in the jail a host file is not there, under
 * Landlock alone it is refused.
 */
static void monitor_jail_selftest(void)
{
#if defined(__SANITIZE_ADDRESS__) || defined(NESTVM_DEBUG)
	const char *path = getenv("NESTVM_JAIL_SELFTEST");
	int fd;

	if (!path)
		return;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	log_warn("jail self-test: the control thread opens '%s': %s", path,
	         fd >= 0 ? "opened" : strerror(errno));
	if (fd >= 0)
		close(fd);
	/* Sanitizer builds may read anything under Landlock (a report's symbolizer): write too. */
	fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW);
	log_warn("jail self-test: the control thread opens '%s' for writing: %s", path,
	         fd >= 0 ? "opened" : strerror(errno));
	if (fd >= 0)
		close(fd);
#endif
}

/* The control thread: everything but running the VM. */
static void *monitor_control_thread(void *arg)
{
	enum { P_WAKE, P_LISTEN, P_CONSOLE, P_TIMER, P_CONIN, P_MIGRATE, P_FIXED };
	struct pollfd fds[P_FIXED + MONITOR_MAX_CLIENTS];
	int owner[P_FIXED + MONITOR_MAX_CLIENTS];
	struct monitor *m = arg;

	sandbox_enter(SANDBOX_CONTROL, "control");
	monitor_jail_selftest();
	while (!atomic_load(&m->quit)) {
		struct monitor_client *con = monitor_console_client(m);
		unsigned int n = P_FIXED;

		fds[P_WAKE] = (struct pollfd){.fd = m->wake_fd, .events = POLLIN};
		fds[P_LISTEN] = (struct pollfd){.fd = m->listen_fd, .events = POLLIN};
		fds[P_CONSOLE] = (struct pollfd){.fd = m->con_out[0], .events = POLLIN};
		fds[P_TIMER] = (struct pollfd){.fd = m->timer_fd, .events = POLLIN};
		fds[P_CONIN] = (struct pollfd){.fd = con && con->pending_len ? m->con_in[1] : -1,
		                               .events = POLLOUT};
		fds[P_MIGRATE] = (struct pollfd){.fd = m->mig.event_fd, .events = POLLIN};
		for (unsigned int i = 0; i < MONITOR_MAX_CLIENTS; i++) {
			struct monitor_client *cl = &m->clients[i];

			/*
			 * A console client with a full input buffer waits for the
			 * UART; a client whose replies back up, until they are sent.
			 */
			if (cl->fd < 0)
				continue;
			fds[n] = (struct pollfd){.fd = cl->fd, .events = cl->out.len ? POLLOUT : 0};
			if (!(cl->console && cl->pending_len == sizeof(cl->pending)) &&
			    !api_outbox_held(&cl->out) && !cl->in_ended)
				fds[n].events |= POLLIN;
			if (fds[n].events)
				owner[n++] = i;
		}
		/* Wake at least once a second: idle clients, monitor.log's size. */
		if (poll(fds, n, 1000) < 0) {
			if (errno == EINTR)
				continue;
			log_error("control thread: poll failed: %s", strerror(errno));
			break;
		}
		if (fds[P_CONSOLE].revents)
			monitor_console_output(m);
		if (fds[P_TIMER].revents & POLLIN)
			monitor_stop_deadline(m);
		if (fds[P_MIGRATE].revents & POLLIN)
			monitor_migrate_events(m);
		if (con && (fds[P_CONIN].revents & (POLLOUT | POLLERR)))
			monitor_console_input_flush(m, con);
		for (unsigned int i = P_FIXED; i < n; i++) {
			struct monitor_client *cl = &m->clients[owner[i]];
			bool held = api_outbox_held(&cl->out);

			if (cl->fd >= 0 && (fds[i].revents & POLLOUT) &&
			    monitor_client_flush(cl) == 0 && held && !api_outbox_held(&cl->out))
				monitor_client_requests(m, cl); /* the lines read before */
			if (cl->fd >= 0 && cl->in_ended && !cl->out.len)
				monitor_client_close(cl);
			if (cl->fd >= 0 && (fds[i].revents & ~POLLOUT))
				monitor_client_read(m, cl);
		}
		if (fds[P_LISTEN].revents & POLLIN)
			monitor_accept(m);
		monitor_clients_expire(m);
		monitor_log_rotate(m);
	}
	/* The vCPUs are gone: whatever the guest printed last goes to the log. */
	monitor_console_output(m);
	/* A migration that completed ended the VM: its client hears so before the close. */
	monitor_migrate_events(m);
	return NULL;
}

/* ---- setup and teardown ---- */

static int monitor_listen(struct monitor *m)
{
	struct sockaddr_un sa;
	socklen_t len = 0;
	int dirfd, r;

	if (store_path(m->st, m->name, "control.sock", m->sock_path, sizeof(m->sock_path)) < 0)
		return -ENAMETOOLONG;
	r = client_socket_addr(m->st, m->name, &sa, &len, &dirfd);
	if (r < 0)
		return r;
	/* We hold the run lock: a stale socket here is a dead monitor's, anything else stays. */
	r = unix_listen(sa.sun_path, 0600, MONITOR_MAX_CLIENTS);
	if (r >= 0) {
		m->listen_fd = r;
		r = 0;
	}
	if (dirfd >= 0)
		close(dirfd);
	if (r < 0)
		log_error("control socket '%s': %s", m->sock_path, fs_strerror(r));
	return r;
}

static int monitor_open_console(struct monitor *m)
{
	struct mgr_err err;

	if (store_path(m->st, m->name, "console.log", m->con_log_path, sizeof(m->con_log_path)) < 0)
		return -ENAMETOOLONG;
	/* Not through a link, not someone else's file, truncated only once checked. */
	m->con_log_fd = store_vm_open(m->st, m->name, "console.log",
	                              O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, &err);
	if (m->con_log_fd < 0) {
		log_error("console log: %s", err.msg);
		return m->con_log_fd;
	}
	if (pipe2(m->con_out, O_CLOEXEC) < 0 || pipe2(m->con_in, O_CLOEXEC) < 0)
		return -errno;
	/* A roomy pipe, so a busy control thread rarely makes the UART drop output. */
	if (fcntl(m->con_out[1], F_SETPIPE_SZ, MONITOR_CONSOLE_PIPE_SIZE) < 0)
		log_debug("console pipe keeps its default size");
	if (fcntl(m->con_out[0], F_SETFL, O_NONBLOCK) < 0 ||
	    fcntl(m->con_in[1], F_SETFL, O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

static void monitor_close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void monitor_stop_thread(struct monitor *m)
{
	uint64_t one = 1;

	if (!m->thread_started)
		return;
	atomic_store(&m->quit, true);
	if (write(m->wake_fd, &one, sizeof(one)) < 0)
		log_debug("control thread wake-up lost");
	pthread_join(m->thread, NULL);
	m->thread_started = false;
}

static void monitor_teardown(struct monitor *m)
{
	monitor_stop_thread(m);
	for (unsigned int i = 0; i < MONITOR_MAX_CLIENTS; i++)
		monitor_client_close(&m->clients[i]);
	if (m->listen_fd >= 0)
		unlink(m->sock_path);
	monitor_close_fd(&m->listen_fd);
	monitor_close_fd(&m->wake_fd);
	monitor_close_fd(&m->timer_fd);
	monitor_close_fd(&m->con_log_fd);
	/* Not the ready pipe: it closes after the run lock goes (monitor_run's end). */
	monitor_close_fd(&m->log_fd);
}

static void monitor_record_exit(struct monitor *m, int status, bool start_failed)
{
	struct store_exit ex = {.status = status, .at = time(NULL), .start_failed = start_failed};
	char buf[96];

	ex.crashed = !start_failed && (status == NESTVM_EXIT_CRASH || status == NESTVM_EXIT_ERROR);
	pthread_mutex_lock(&m->lock);
	if (start_failed)
		snprintf(ex.reason, sizeof(ex.reason), "the VM could not start (see monitor.log)");
	else if (status == NESTVM_EXIT_SIGNAL_BASE + SIGKILL && m->stop_reason[0])
		snprintf(ex.reason, sizeof(ex.reason), "%s", m->stop_reason);
	else
		snprintf(ex.reason, sizeof(ex.reason), "%s",
		         client_exit_describe(status, buf, sizeof(buf)));
	pthread_mutex_unlock(&m->lock);
	if (store_exit_write(m->st, m->name, &ex) < 0)
		log_warn("cannot write last-exit.json");
	monitor_log(m, "VM ended: %s (exit status %d)", ex.reason, status);
}

static void monitor_block_signals(void)
{
	sigset_t set;

	/* Before any thread exists, so only vm_run()'s sigwaitinfo() sees these. */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIG_VCPU_KICK);
	sigaddset(&set, SIG_VM_STOPPED);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGHUP, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
}

int monitor_close_fds(int from, const int *keep, unsigned int n)
{
	unsigned int lo = (unsigned int)from;
	struct dirent *de;
	DIR *d;

	/* The gaps between the kept descriptors, in order; close_range() needs lo <= hi. */
	for (;;) {
		unsigned int hi = ~0U;

		for (unsigned int i = 0; i < n; i++) {
			if (keep[i] >= 0 && (unsigned int)keep[i] >= lo &&
			    (unsigned int)keep[i] - 1 < hi)
				hi = (unsigned int)keep[i] - 1;
		}
		if (hi != ~0U && hi + 1 == lo) { /* @lo itself is kept */
			lo++;
			continue;
		}
		if (close_range(lo, hi, 0) < 0)
			break; /* ENOSYS (before Linux 5.9): walk /proc/self/fd */
		if (hi == ~0U)
			return 0;
		lo = hi + 2;
	}
	d = opendir("/proc/self/fd");
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		char *end;
		long fd = strtol(de->d_name, &end, 10);
		bool kept = false;

		if (*end || end == de->d_name || fd < from || fd == dirfd(d))
			continue;
		for (unsigned int i = 0; i < n; i++)
			kept |= keep[i] == fd;
		if (!kept)
			close((int)fd);
	}
	closedir(d);
	return 0;
}

/* Is our stderr NAME/monitor.log (as monitor_spawn arranges)? Then it may rotate. */
static void monitor_find_log(struct monitor *m)
{
	struct stat err_sb, log_sb;
	int dfd = store_vm_dir(m->st, m->name, NULL);

	if (dfd < 0)
		return;
	if (fstat(STDERR_FILENO, &err_sb) == 0 &&
	    fstatat(dfd, "monitor.log", &log_sb, AT_SYMLINK_NOFOLLOW) == 0 &&
	    err_sb.st_ino == log_sb.st_ino && err_sb.st_dev == log_sb.st_dev)
		m->log_fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, STDERR_FILENO + 1);
	close(dfd);
}

/* Tell the starting command the VM runs: called by vm_run() once it is confined. */
static void monitor_ready(void *arg)
{
	struct monitor *m = arg;
	char msg[32];
	int n = snprintf(msg, sizeof(msg), "ok %d\n", (int)getpid());

	if (m->ready_fd >= 0 && write(m->ready_fd, msg, n) != n)
		log_debug("the starting command is gone");
	monitor_close_fd(&m->ready_fd);
}

/*
 * A saved state to start from: its snapshot opened and checked into @snap,
 * its definition (the one it was saved with) in m->def. 0 or -errno.
 */
static int monitor_open_saved(struct monitor *m, struct vm_snapshot *snap, struct mgr_err *err)
{
	struct vm_def def = {0};
	char why[384];
	int fd, r;

	fd = store_snap_open(m->st, m->name, NULL, err);
	if (fd < 0)
		return fd;
	r = store_snap_read_def(fd, "the saved state's vm.json", &def, err);
	if (r == 0)
		r = store_snap_def_trusted(fd, "the saved state's vm.json", &def, &m->def, err);
	if (r == 0) {
		r = vm_snapshot_open(fd, "the saved state", "/dev/kvm", snap, why, sizeof(why));
		if (r < 0)
			mgr_err_set(err, r, "cannot start from the saved state: %s; it is kept "
			            "(nestvm start --discard-saved starts the VM afresh)", why);
	}
	close(fd);
	if (r < 0) {
		vm_def_clear(&def);
		return r;
	}
	vm_def_clear(&m->def);
	m->def = def;
	return 0;
}

/* An incoming migration's monitor says how it ended on the ready pipe: "error WHY". */
static void monitor_ready_error(struct monitor *m, const char *why)
{
	char line[600];
	int n = snprintf(line, sizeof(line), "error %s\n", why);

	if (m->ready_fd >= 0 && n > 0 && write(m->ready_fd, line, (size_t)n) != n)
		log_debug("the receiving command is gone");
}

/*
 * Build m->vm as @cfg says: from the incoming migration @in, from the saved
 * state @snap (then spent), or by booting. 0 or -errno, having logged why.
 */
static int monitor_build_vm(struct monitor *m, const struct monitor_incoming *in,
                            struct vm_snapshot *snap, const struct vm_config *cfg, int64_t open_us)
{
	struct mgr_err err;
	int64_t t0, t1, t2;
	char why[512];
	int r;

	if (in) {
		r = monitor_receive(m, in, cfg, why, sizeof(why));
		if (r < 0) {
			log_error("migration from %s failed: %s", in->from ? in->from : "?", why);
			monitor_ready_error(m, why);
		}
		return r;
	}
	if (snap->memory_fd < 0)
		return vm_create(cfg, &m->vm);
	t0 = mono_us();
	r = vm_snapshot_restore(snap, cfg, &m->vm, why, sizeof(why));
	t1 = mono_us();
	vm_snapshot_close(snap);
	if (r < 0) {
		log_error("cannot restore the saved state: %s; it is kept (nestvm start "
		          "--discard-saved starts the VM afresh)", why);
		return r;
	}
	/* It runs now: the saved state is spent (its memory stays mapped). */
	if (store_saved_remove(m->st, m->name, &err) < 0)
		log_warn("%s", err.msg);
	t2 = mono_us();
	monitor_log(m,
	            "restored from the saved state in %.2f ms (opening and checking it "
	            "%.2f ms, building the VM %.2f ms, removing it %.2f ms)",
	            (double)(open_us + t2 - t0) / 1000, (double)open_us / 1000,
	            (double)(t1 - t0) / 1000, (double)(t2 - t1) / 1000);
	return 0;
}

/* A VM `receive` created for a migration that failed goes again: nothing is left behind. */
static void monitor_remove_created(struct monitor *m)
{
	struct mgr_err err;
	int def;

	/* The store is out of a jailed monitor's reach: `nestvm receive` removes it once we end. */
	if (m->jail.active)
		return;
	def = store_lock_acquire(m->st, m->name, STORE_LOCK_DEF, 5000, &err);
	if (def < 0 || store_remove(m->st, m->name, &err) < 0)
		log_warn("the VM created for the migration stays: %s", err.msg);
	store_lock_release(def);
}

/* The moment the VM first runs here, for a migration's downtime (CLOCK_REALTIME). */
static void monitor_log_first_run(struct monitor *m)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	monitor_log(m, "migration: the VM runs here from %lld.%06ld (CLOCK_REALTIME)",
	            (long long)ts.tv_sec, ts.tv_nsec / 1000);
}

/* Add the directory of socket @path to @dirs unless the VM's directory @vm_dir holds it. */
static void monitor_add_socket_dir(const char *path, const char *vm_dir, const char **dirs,
                                   char (*bufs)[STORE_PATH_MAX], unsigned int *n)
{
	size_t vlen = strlen(vm_dir);
	char *slash;

	if (!path || *n >= JAIL_MAX_DIRS - 1)
		return;
	snprintf(bufs[*n], STORE_PATH_MAX, "%s", path);
	slash = strrchr(bufs[*n], '/');
	if (!slash || slash == bufs[*n])
		return; /* relative, or in "/": not bound, and the device says why it fails */
	*slash = '\0';
	if (!strncmp(bufs[*n], vm_dir, vlen) && (bufs[*n][vlen] == '\0' || bufs[*n][vlen] == '/'))
		return;
	for (unsigned int i = 0; i < *n; i++) {
		if (!strcmp(dirs[i], bufs[*n]))
			return;
	}
	dirs[*n] = bufs[*n];
	(*n)++;
}

/*
 * One image as two disks: a second open of a kept disk shares the first's
 * open file, and so its lock, which would no longer keep them apart (each
 * disk's own open did). 0, or -EBUSY logged.
 */
static int monitor_check_disks_distinct(const struct vm_config *cfg)
{
	struct stat sb[VM_MAX_DISKS];
	bool known[VM_MAX_DISKS] = {false};

	for (unsigned int i = 0; i < cfg->nr_disks; i++) {
		int fd = fs_open_input(cfg->disks[i].path, O_RDONLY, &sb[i]);

		if (fd < 0)
			continue; /* its own open says why */
		close(fd);
		known[i] = true;
		for (unsigned int j = 0; j < i; j++) {
			if (known[j] && sb[j].st_dev == sb[i].st_dev && sb[j].st_ino == sb[i].st_ino) {
				log_error("disk '%s': the same image as disk %u; give each image once",
				          cfg->disks[i].path, j);
				return -EBUSY;
			}
		}
	}
	return 0;
}

/*
 * Before the first thread (monitor_run): keep the descriptors the VM needs
 * (core/fsutil.h's fs_preopen()), enter the jail when started as root
 * (manager/jail.h), then limit this thread, and so every later one, to the
 * VM's directory and those of its sockets (Landlock). 0 or -errno, logged.
 */
static int monitor_confine(struct monitor *m, const struct vm_config *cfg)
{
	static char bufs[JAIL_MAX_DIRS][STORE_PATH_MAX];
	const char *dirs[JAIL_MAX_DIRS + 1] = {0}, *all[JAIL_MAX_DIRS + 2] = {0};
	char vm_dir[STORE_PATH_MAX];
	unsigned int n = 0;
	struct mgr_err err;
	int r;

	if (store_path(m->st, m->name, NULL, vm_dir, sizeof(vm_dir)) < 0)
		return -ENAMETOOLONG;
	/*
	 * A file that cannot be opened now is left to the code that opens it,
	 * which says why (a kernel a restore does not need, say).
	 */
	if (fs_preopen(cfg->kvm_path, O_RDWR | FS_PREOPEN_ANY) < 0)
		log_debug("jail: %s not opened beforehand", cfg->kvm_path);
	if (fs_preopen(cfg->kernel, O_RDONLY) < 0)
		log_debug("jail: kernel '%s' not opened beforehand", cfg->kernel);
	if (cfg->initrd && fs_preopen(cfg->initrd, O_RDONLY) < 0)
		log_debug("jail: initrd '%s' not opened beforehand", cfg->initrd);
	for (unsigned int i = 0; i < cfg->nr_disks; i++) {
		if (fs_preopen(cfg->disks[i].path, cfg->disks[i].readonly ? O_RDONLY : O_RDWR) < 0)
			log_debug("jail: disk '%s' not opened beforehand", cfg->disks[i].path);
	}
	r = monitor_check_disks_distinct(cfg);
	if (r < 0)
		return r;
	/* save and live migration skip never-touched pages with it (no /proc in the jail). */
	if (jail_open_pagemap() < 0)
		log_debug("no /proc/self/pagemap");
	/*
	 * The device sockets, made now: a jailed monitor could not make one in
	 * a directory of root's. Their directories stay out of the jail (a
	 * guest's connections to PATH_PORT reach only the VM's directory
	 * there), but in Landlock's rules, so that an unjailed monitor removes
	 * them at exit.
	 */
	if (cfg->vsock_socket && fs_prelisten(cfg->vsock_socket, SOCK_STREAM, 0600, 64) < 0)
		log_debug("jail: vsock socket not made beforehand");
	if (cfg->hvc_socket && fs_prelisten(cfg->hvc_socket, SOCK_STREAM, 0600, 4) < 0)
		log_debug("jail: hvc0 socket not made beforehand");
	for (unsigned int i = 0; i < cfg->nr_console_ports; i++) {
		if (fs_prelisten(cfg->console_ports[i].socket, SOCK_STREAM, 0600, 4) < 0)
			log_debug("jail: console port socket not made beforehand");
	}
	monitor_add_socket_dir(cfg->vsock_socket, vm_dir, dirs, bufs, &n);
	monitor_add_socket_dir(cfg->hvc_socket, vm_dir, dirs, bufs, &n);
	for (unsigned int i = 0; i < cfg->nr_console_ports; i++)
		monitor_add_socket_dir(cfg->console_ports[i].socket, vm_dir, dirs, bufs, &n);
	if (jail_wanted(&m->jail)) {
		r = jail_enter(m->st, m->name, &m->jail, &err);
		if (r < 0) {
			log_error("%s (nestvm start --jail off runs it unjailed)", err.msg);
			return r;
		}
		monitor_log(m, "jail: uid %u gid %u, own mount namespace (%s), no_new_privs",
		            (unsigned int)m->jail.uid, (unsigned int)m->jail.gid,
		            m->jail.pivoted ? "pivot_root" : "chroot");
	} else {
		monitor_log(m, "jail: off (%s)", m->jail.off_reason);
	}
	all[0] = vm_dir;
	for (unsigned int i = 0; i < n && !m->jail.active; i++)
		all[i + 1] = dirs[i]; /* not in the jail's tree */
	r = sandbox_restrict_files(all, NULL);
	if (r < 0)
		log_error("landlock: cannot limit the monitor to '%s': %s", vm_dir, strerror(-r));
	return r;
}

int monitor_run(const struct store *st, const char *name, int lock_fd, int ready_fd, bool paused,
                const struct monitor_incoming *in)
{
	struct monitor *m;
	struct mgr_err err;
	struct vm_config cfg;
	struct vm_snapshot snap = {.memory_fd = -1};
	char prefix[STORE_NAME_MAX + 16], vsock_path[STORE_PATH_MAX] = "";
	int64_t open_us = 0; /* opening and checking the saved state (bench/snapshot.sh) */
	int r, status = NESTVM_EXIT_ERROR;

	umask(077);
	/*
	 * Whatever the caller left open (a pipe a shell waits on to close, say)
	 * is not ours to keep: only the lock and the ready pipe go on.
	 */
	{
		const int keep[] = {lock_fd, ready_fd, in ? in->conn_fd : -1,
		                    in ? in->session_fd : -1};

		r = monitor_close_fds(STDERR_FILENO + 1, keep, 4);
		if (r < 0)
			log_warn("cannot close inherited descriptors: %s", strerror(-r));
	}
	monitor_block_signals();
	m = calloc(1, sizeof(*m));
	if (!m) {
		if (ready_fd >= 0)
			close(ready_fd);
		return NESTVM_EXIT_ERROR;
	}
	m->st = st;
	m->name = name;
	m->ready_fd = ready_fd;
	m->listen_fd = m->wake_fd = m->timer_fd = m->con_log_fd = m->log_fd = -1;
	m->mig.cancel_fd = m->mig.event_fd = m->mig.client = m->mig.conn_fd = -1;
	m->incoming.cancel_fd = -1;
	m->con_out[0] = m->con_out[1] = m->con_in[0] = m->con_in[1] = -1;
	for (unsigned int i = 0; i < MONITOR_MAX_CLIENTS; i++)
		m->clients[i].fd = -1;
	pthread_mutex_init(&m->lock, NULL);
	m->started = time(NULL);
	snprintf(prefix, sizeof(prefix), "nestvm[%s]", name);
	log_set_prefix(prefix);
	log_set_timestamps(true);
	log_set_level(LOG_INFO);

	if (lock_fd >= 0) {
		/* Inherited from `start`: the same open file description already holds it. */
		r = store_lock_take(lock_fd, STORE_LOCK_RUN);
		if (r == 0 && fcntl(lock_fd, F_SETFD, FD_CLOEXEC) < 0)
			r = -errno;
		m->lock_fd = lock_fd;
	} else {
		r = store_lock_acquire(st, name, STORE_LOCK_RUN, 0, &err);
		m->lock_fd = r;
		if (r < 0)
			log_error("%s", r == -EBUSY ? "the VM is already running" : err.msg);
	}
	if (r < 0) {
		m->lock_fd = -1;
		goto out;
	}
	monitor_find_log(m);
	monitor_log(m, "monitor pid %d starting", (int)getpid());
	/* A migration, in or out, may come at any time; a confined thread cannot load code. */
	if (mig_crypto_load() < 0)
		monitor_log(m, "migrations will fail: %s", mig_crypto_error());
	/* Before the first thread: each confines itself as it starts (core/sandbox.h). */
	if (sandbox_init(true) < 0)
		goto failed;
	monitor_log(m, "sandbox: %s", sandbox_describe());
	/* A new run: the last one's record would only mislead (a crash leaves none). */
	store_exit_clear(st, name);
	monitor_set_state(m, API_STATE_STARTING);
	r = store_load(st, name, &m->def, &err);
	if (r == 0 && !in && store_has_saved(st, name)) {
		open_us = mono_us();
		r = monitor_open_saved(m, &snap, &err);
		open_us = mono_us() - open_us;
	}
	if (r < 0) {
		log_error("%s", err.msg);
		goto failed;
	}
	m->wake_fd = eventfd(0, EFD_CLOEXEC);
	m->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (m->wake_fd < 0 || m->timer_fd < 0) {
		log_error("cannot create the monitor's event descriptors: %s", strerror(errno));
		goto failed;
	}
	r = monitor_open_console(m);
	if (r == 0)
		r = monitor_listen(m);
	if (r < 0)
		goto failed;
	/* The definition says what the VM is; the console is this monitor's plumbing. */
	if (m->def.vsock.cid && !m->def.vsock.socket &&
	    store_vsock_default(st, name, vsock_path, sizeof(vsock_path), &err) < 0) {
		log_error("%s", err.msg);
		goto failed;
	}
	if (vm_def_to_config(&m->def, vsock_path[0] ? vsock_path : NULL, &cfg, &err) < 0) {
		log_error("%s", err.msg);
		goto failed;
	}
	cfg.console = VM_CONSOLE_FD;
	cfg.console_in_fd = m->con_in[0];
	cfg.console_out_fd = m->con_out[1];
	cfg.switch_home = st->home;
	/* The NICs join their switches (which may start them) while the store is in reach. */
	if (machine_nics_connect(&cfg) < 0)
		goto failed;
	/* The last step as root, before the first thread. */
	if (monitor_confine(m, &cfg) < 0)
		goto failed;
	/* The migration worker confines itself as it starts, like the control thread. */
	if (monitor_migrate_init(m) < 0)
		log_warn("cannot start the migration thread: this VM cannot migrate away");
	if (sandbox_thread_create(&m->thread, monitor_control_thread, m) != 0) {
		log_error("cannot start the control thread");
		goto failed;
	}
	m->thread_started = true;
	monitor_log(m, "creating the VM: %u vCPU(s), %llu MiB, nested %s, kernel %s", cfg.cpus,
	            (unsigned long long)m->def.memory_mib, cfg.nested ? "on" : "off", cfg.kernel);
	r = monitor_build_vm(m, in, &snap, &cfg, open_us);
	if (r < 0)
		goto failed;
	pthread_mutex_lock(&m->lock);
	if (!m->abort_start)
		m->state = API_STATE_RUNNING;
	pthread_mutex_unlock(&m->lock);
	/* --paused: parked before the first instruction (the vCPU threads park as they start). */
	if (paused && monitor_get_state(m) == API_STATE_RUNNING && vm_quiesce(m->vm) == 0) {
		monitor_set_state(m, API_STATE_PAUSED);
		monitor_log(m, "paused before it runs (start --paused)");
		status = vm_run(m->vm, monitor_ready, m);
	} else if (monitor_get_state(m) == API_STATE_RUNNING) {
		monitor_set_state(m, API_STATE_RUNNING);
		monitor_log(m, "running");
		if (in)
			monitor_log_first_run(m);
		status = vm_run(m->vm, monitor_ready, m);
	} else {
		monitor_log(m, "killed while starting: the VM does not run");
		status = NESTVM_EXIT_SIGNAL_BASE + SIGKILL;
	}

	monitor_set_state(m, API_STATE_STOPPING);
	/*
	 * A migration of a VM that ended on its own (powered off, crashed) ends
	 * now, before the control thread: it still has to tell the client that
	 * asked, and the destination, that nothing was migrated.
	 */
	monitor_migrate_stop(m);
	monitor_record_exit(m, status, false);
	monitor_teardown(m);
	goto out;
failed:
	vm_snapshot_close(&snap);
	monitor_record_exit(m, NESTVM_EXIT_ERROR, true);
	monitor_teardown(m);
	status = NESTVM_EXIT_ERROR;
	if (in && in->created)
		monitor_remove_created(m);
out:
	/* The VM stopped (or never ran): a migration of it ends before it goes. */
	monitor_migrate_fini(m);
	store_runtime_clear(st, name);
	/*
	 * Before vm_destroy_at_exit()'s child copies the fd table: the copy would
	 * hold the lock. And before the ready pipe closes: a 'start' that sees it
	 * close (the VM could not start) and asks at once must find the VM off,
	 * not a held lock and no runtime record ("starting"). The disk images'
	 * locks go before it: a 'start' right after a 'save' (which waits for
	 * this lock only) found a disk still locked when this monitor was
	 * slower to get to vm_destroy_at_exit() than the next to its disks.
	 */
	if (m->vm)
		machine_stop_devices(m->vm);
	store_lock_release(m->lock_fd);
	monitor_close_fd(&m->ready_fd);
	if (m->vm)
		vm_destroy_at_exit(m->vm);
	monitor_close_fd(&m->con_out[0]);
	monitor_close_fd(&m->con_out[1]);
	monitor_close_fd(&m->con_in[0]);
	monitor_close_fd(&m->con_in[1]);
	vm_def_clear(&m->def);
	pthread_mutex_destroy(&m->lock);
	free(m);
	return status;
}

/* ---- spawning ---- */

/* The monitor's log lines since @offset, indented, for an error message. */
static void monitor_log_since(const char *path, off_t offset, char *buf, size_t len)
{
	char text[2048];
	ssize_t n = -1;
	size_t out = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);

	buf[0] = '\0';
	if (fd >= 0) {
		struct stat sb;

		/* The last 2 KiB of what this start wrote. */
		if (fstat(fd, &sb) == 0 && sb.st_size - offset > (off_t)sizeof(text) - 1)
			offset = sb.st_size - (sizeof(text) - 1);
		n = pread(fd, text, sizeof(text) - 1, offset);
		close(fd);
	}
	if (n <= 0)
		return;
	text[n] = '\0';
	for (char *line = strtok(text, "\n"); line && out + 8 < len; line = strtok(NULL, "\n")) {
		int w = snprintf(buf + out, len - out, "\n  %s", line);

		if (w < 0)
			break;
		out += (size_t)w < len - out ? (size_t)w : len - out - 1;
	}
}

/* In the grandchild: become the monitor. Never returns. */
static void monitor_exec(const struct store *st, const char *name, const char *exe, int lock_fd,
                         int ready_fd, int log_fd, bool paused,
                         const struct monitor_incoming *in)
{
	char lock_arg[16], ready_arg[16], in_arg[16], session_arg[16];
	char *argv[24] = {"nestvm", "monitor", "--home", (char *)st->home, "--lock-fd", lock_arg,
	                  "--ready-fd", ready_arg};
	const int keep[] = {lock_fd, ready_fd, in ? in->conn_fd : -1, in ? in->session_fd : -1};
	int null = open("/dev/null", O_RDONLY | O_CLOEXEC), n = 8;

	if (null < 0 || dup2(null, STDIN_FILENO) < 0 || dup2(log_fd, STDOUT_FILENO) < 0 ||
	    dup2(log_fd, STDERR_FILENO) < 0)
		_exit(127);
	/*
	 * Only these descriptors go on to the monitor: not even those the
	 * caller of `nestvm start` opened without O_CLOEXEC (`7>&1`).
	 */
	if (monitor_close_fds(STDERR_FILENO + 1, keep, 4) < 0 || fcntl(lock_fd, F_SETFD, 0) < 0 ||
	    fcntl(ready_fd, F_SETFD, 0) < 0)
		_exit(127);
	snprintf(lock_arg, sizeof(lock_arg), "%d", lock_fd);
	snprintf(ready_arg, sizeof(ready_arg), "%d", ready_fd);
	if (paused)
		argv[n++] = "--paused";
	if (in) {
		if (fcntl(in->conn_fd, F_SETFD, 0) < 0 || fcntl(in->session_fd, F_SETFD, 0) < 0)
			_exit(127);
		snprintf(in_arg, sizeof(in_arg), "%d", in->conn_fd);
		snprintf(session_arg, sizeof(session_arg), "%d", in->session_fd);
		argv[n++] = "--incoming-fd";
		argv[n++] = in_arg;
		argv[n++] = "--session-fd";
		argv[n++] = session_arg;
		if (in->from) {
			argv[n++] = "--incoming-from";
			argv[n++] = (char *)in->from;
		}
		if (in->created)
			argv[n++] = "--created";
	}
	argv[n++] = "--";
	argv[n++] = (char *)name;
	argv[n] = NULL;
	execv(exe, argv);
	fprintf(stderr, "nestvm[%s]: cannot run the monitor '%s': %s\n", name, exe,
	        strerror(errno));
	_exit(127);
}

static int monitor_spawn_ex(const struct store *st, const char *name, int lock_fd, bool paused,
                            const struct monitor_incoming *in, pid_t *pid, struct mgr_err *err);

int monitor_spawn(const struct store *st, const char *name, int lock_fd, bool paused, pid_t *pid,
                  struct mgr_err *err)
{
	return monitor_spawn_ex(st, name, lock_fd, paused, NULL, pid, err);
}

int monitor_spawn_incoming(const struct store *st, const char *name, int lock_fd,
                           const struct monitor_incoming *in, pid_t *pid, struct mgr_err *err)
{
	return monitor_spawn_ex(st, name, lock_fd, false, in, pid, err);
}

/* monitor_spawn() and monitor_spawn_incoming(): the spawn, and the wait for the ready line. */
static int monitor_spawn_ex(const struct store *st, const char *name, int lock_fd, bool paused,
                            const struct monitor_incoming *in, pid_t *pid, struct mgr_err *err)
{
	char exe[PATH_MAX], log_path[STORE_PATH_MAX], msg[640] = "", lines[1800];
	int ready[2] = {-1, -1}, log_fd = -1, r = 0;
	size_t got = 0;
	ssize_t len;
	off_t offset;
	pid_t child;

	*pid = 0;
	len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (len < 0)
		return mgr_err_set(err, -errno, "cannot find the nestvm binary: %s",
		                   strerror(errno));
	exe[len] = '\0';
	if (store_path(st, name, "monitor.log", log_path, sizeof(log_path)) < 0)
		return mgr_err_set(err, -ENAMETOOLONG, "VM store path too long");
	log_fd = store_vm_open(st, name, "monitor.log", O_WRONLY | O_CREAT | O_APPEND, err);
	if (log_fd < 0)
		return log_fd;
	/* One old log is kept: monitor.log.1. */
	r = monitor_rotate(st, name, "monitor.log", log_fd, MONITOR_LOG_MAX);
	if (r < 0) {
		close(log_fd);
		return mgr_err_set(err, r, "cannot start a new '%s': %s", log_path, strerror(-r));
	}
	if (r != log_fd) {
		close(log_fd);
		log_fd = r;
	}
	r = 0;
	offset = lseek(log_fd, 0, SEEK_END);
	if (pipe2(ready, O_CLOEXEC) < 0) {
		r = mgr_err_set(err, -errno, "pipe: %s", strerror(errno));
		goto out;
	}
	child = fork();
	if (child < 0) {
		r = mgr_err_set(err, -errno, "fork: %s", strerror(errno));
		goto out;
	}
	if (child == 0) {
		/* Own session, then fork again: the monitor is no one's child and has no tty. */
		if (setsid() < 0)
			_exit(127);
		child = fork();
		if (child == 0)
			monitor_exec(st, name, exe, lock_fd, ready[1], log_fd, paused, in);
		_exit(child < 0 ? 127 : 0);
	}
	close(ready[1]);
	ready[1] = -1;
	while (waitpid(child, NULL, 0) < 0 && errno == EINTR)
		;
	/*
	 * "ok PID\n" once the VM runs; EOF without it if it could not start. An
	 * incoming migration takes as long as the source needs (its monitor
	 * gives up on a silent stream by itself) and may say "error WHY\n".
	 */
	for (;;) {
		struct pollfd p = {.fd = ready[0], .events = POLLIN};
		int pr = poll(&p, 1, in ? -1 : MONITOR_START_TIMEOUT_MS);

		if (pr < 0 && errno == EINTR)
			continue;
		if (pr <= 0) {
			r = -ETIMEDOUT;
			break;
		}
		len = read(ready[0], msg + got, sizeof(msg) - 1 - got);
		if (len < 0 && errno == EINTR)
			continue;
		if (len <= 0)
			break;
		got += len;
		msg[got] = '\0';
		if (strchr(msg, '\n') || got == sizeof(msg) - 1)
			break;
	}
	if (r == 0 && !strncmp(msg, "ok ", 3)) {
		*pid = (pid_t)atoi(msg + 3);
		goto out;
	}
	if (r == 0 && in && !strncmp(msg, "error ", 6)) {
		char *nl = strchr(msg, '\n');

		if (nl)
			*nl = 0;
		r = mgr_err_set(err, -EIO, "%s", msg + 6);
		goto out;
	}
	monitor_log_since(log_path, offset, lines, sizeof(lines));
	r = mgr_err_set(err, r == -ETIMEDOUT ? -ETIMEDOUT : -EIO,
	                "VM '%s' did not start%s; from %s:%s", name,
	                r == -ETIMEDOUT ? " within 60 s" : "", log_path,
	                lines[0] ? lines : " (nothing logged)");
out:
	if (ready[0] >= 0)
		close(ready[0]);
	if (ready[1] >= 0)
		close(ready[1]);
	close(log_fd);
	return r;
}
