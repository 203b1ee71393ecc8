/* SPDX-License-Identifier: MIT */
/*
 * A monitor's live migrations (monitor_internal.h, snapshot/migrate.h).
 *
 * Away from here: `migrate` is taken by the control thread, which reads
 * the secret file (the worker has no business with files), and run by a
 * worker thread the main thread creates before the VM runs, confined by
 * its own seccomp filter (SANDBOX_MIGRATE: the main thread's set plus
 * sockets, KVM's dirty log and the throttle's timers). The worker reports
 * through an eventfd; only the control thread writes to clients, so the
 * progress lines and the reply go out from there, to the client that
 * asked if it is still connected. status and migrate-cancel answer
 * throughout.
 *
 * Here from elsewhere: a monitor started by `nestvm receive` gets the
 * authenticated connection and its session (monitor_receive()), and
 * builds its VM from the stream instead of booting one.
 */
#include "manager/monitor_internal.h"

#include "core/exit_status.h"
#include "core/sandbox.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static void mig_wake(int fd)
{
	uint64_t one = 1;

	if (write(fd, &one, sizeof(one)) < 0)
		log_debug("migration: an eventfd wake-up was lost");
}

static void mig_drain(int fd)
{
	uint64_t n;

	while (read(fd, &n, sizeof(n)) > 0)
		;
}

/* Worker: the source's progress, handed to the control thread. */
static void mig_progress(void *opaque, const struct migrate_stats *st)
{
	struct monitor *m = opaque;

	pthread_mutex_lock(&m->lock);
	m->mig.stats = *st;
	m->mig.progress_news = true;
	pthread_mutex_unlock(&m->lock);
	mig_wake(m->mig.event_fd);
}

/* Worker: one migration, start to end, and what its outcome does to the VM. */
static void mig_job(struct monitor *m)
{
	struct monitor_migration *g = &m->mig;
	struct migrate_source_params p = {
	    .to = g->addr,
	    .secret = g->secret,
	    .secret_len = g->secret_len,
	    .downtime_ms = g->downtime_ms,
	    .timeout_s = g->timeout_s,
	    .def = g->def,
	    .def_len = strlen(g->def),
	    .cancel_fd = g->cancel_fd,
	    .connected = g->connected,
	    .conn_fd = g->conn_fd,
	    .progress = mig_progress,
	    .opaque = m,
	};
	struct migrate_stats st;
	enum migrate_outcome out;
	const char *result;
	char why[512];

	monitor_log(m, "migration to %s: starting (downtime target %u ms, timeout %u s)", g->to,
	            p.downtime_ms, p.timeout_s);
	out = migrate_source_run(m->vm, &p, &st, why, sizeof(why));
	pthread_mutex_lock(&m->lock);
	g->connected = false; /* taken */
	g->conn_fd = -1;
	pthread_mutex_unlock(&m->lock);
	switch (out) {
	case MIGRATE_COMPLETED:
		result = "completed";
		monitor_log(m,
		            "migration to %s: completed in %llu ms, %llu MiB sent in %u passes, "
		            "the VM stopped here for %llu ms until it ran there",
		            g->to, (unsigned long long)st.elapsed_ms,
		            (unsigned long long)(st.bytes_sent >> 20), st.pass,
		            (unsigned long long)st.downtime_ms);
		pthread_mutex_lock(&m->lock);
		snprintf(m->stop_reason, sizeof(m->stop_reason), "migrated to %s", g->to);
		pthread_mutex_unlock(&m->lock);
		/* Stopping before the outcome is out: no second migrate is taken. */
		monitor_set_state(m, API_STATE_STOPPING);
		break;
	case MIGRATE_UNCERTAIN:
		result = "uncertain";
		log_error("migration to %s: %s", g->to, why);
		monitor_set_state(m, API_STATE_PAUSED);
		break;
	default:
		result = st.error == -ECANCELED ? "cancelled" : "failed";
		if (st.error == -ESHUTDOWN)
			monitor_log(m, "migration to %s: %s", g->to, why);
		else
			monitor_log(m, "migration to %s: %s; the VM runs on here", g->to, why);
		break;
	}
	pthread_mutex_lock(&m->lock);
	explicit_bzero(g->secret, sizeof(g->secret));
	g->secret_len = 0;
	g->stats = st;
	g->result = result;
	snprintf(g->error, sizeof(g->error), "%s", out == MIGRATE_COMPLETED ? "" : why);
	g->active = false;
	g->done_news = true;
	pthread_mutex_unlock(&m->lock);
	mig_wake(g->event_fd);
	/*
	 * Only once the outcome is out: the VM's end stops the control thread,
	 * whose last act is to send it (monitor_migrate_events()), so the
	 * client that asked hears "migrated" before the connection closes.
	 */
	if (out == MIGRATE_COMPLETED)
		vm_request_stop(m->vm, NESTVM_EXIT_SIGNAL_BASE + SIGKILL, "migrated");
}

static void *mig_thread(void *arg)
{
	struct monitor *m = arg;

	sandbox_enter(SANDBOX_MIGRATE, "migrate");
	pthread_mutex_lock(&m->lock);
	for (;;) {
		while (!m->mig.pending && !m->mig.quit)
			pthread_cond_wait(&m->mig.cond, &m->lock);
		if (m->mig.quit)
			break;
		m->mig.pending = false;
		pthread_mutex_unlock(&m->lock);
		mig_drain(m->mig.cancel_fd); /* a cancel that came too late for the last one */
		mig_job(m);
		pthread_mutex_lock(&m->lock);
	}
	pthread_mutex_unlock(&m->lock);
	return NULL;
}

int monitor_migrate_init(struct monitor *m)
{
	struct monitor_migration *g = &m->mig;

	g->cancel_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	g->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (g->cancel_fd < 0 || g->event_fd < 0)
		return -errno;
	pthread_cond_init(&g->cond, NULL);
	if (sandbox_thread_create(&g->thread, mig_thread, m) != 0)
		return -EAGAIN;
	g->thread_started = true;
	return 0;
}

void monitor_migrate_stop(struct monitor *m)
{
	struct monitor_migration *g = &m->mig;

	if (g->thread_started) {
		pthread_mutex_lock(&m->lock);
		g->quit = true;
		pthread_cond_broadcast(&g->cond);
		pthread_mutex_unlock(&m->lock);
		mig_wake(g->cancel_fd);
		pthread_join(g->thread, NULL);
		pthread_cond_destroy(&g->cond);
		g->thread_started = false;
	}
}

void monitor_migrate_fini(struct monitor *m)
{
	struct monitor_migration *g = &m->mig;

	monitor_migrate_stop(m);
	/* The control thread is gone too by now: nothing reads these any more. */
	if (g->cancel_fd >= 0)
		close(g->cancel_fd);
	if (g->event_fd >= 0)
		close(g->event_fd);
	g->cancel_fd = g->event_fd = -1;
	if (g->connected)
		close(g->conn_fd); /* a job that never ran */
	g->connected = false;
	free(g->def);
	g->def = NULL;
	json_decref(g->id);
	g->id = NULL;
}

bool monitor_migrating(struct monitor *m)
{
	bool active;

	pthread_mutex_lock(&m->lock);
	active = m->mig.active;
	pthread_mutex_unlock(&m->lock);
	return active;
}

char *monitor_do_migrate(struct monitor *m, struct monitor_client *cl,
                         const struct api_request *req, enum api_state state)
{
	struct monitor_migration *g = &m->mig;
	uint8_t secret[MIG_SECRET_MAX];
	struct mig_addr addr;
	char why[512], *def;
	int n;

	why[0] = 0;
	if (!g->thread_started)
		return api_reply_error(req->id, API_ERR_STATE,
		                       "this monitor cannot migrate its VM");
	if (monitor_migrating(m))
		return api_reply_error(req->id, API_ERR_STATE,
		                       "a migration of this VM is already under way");
	if (state != API_STATE_RUNNING)
		return api_reply_error(
		    req->id, API_ERR_STATE,
		    "only a running VM migrates (a paused one: resume it first)");
	if (mig_addr_parse(req->to, false, &addr, why, sizeof(why)) < 0)
		return api_reply_error(req->id, API_ERR_INVALID, why);
	/*
	 * `nestvm migrate` passes the secret file open, and a UNIX stream
	 * connected: a jailed monitor sees neither path, and Landlock keeps
	 * any monitor out of files beyond its VM's directory. The file must be
	 * the client's own, as it must be the monitor's user's otherwise.
	 */
	if (cl->nr_fds >= 1) {
		struct ucred peer;
		socklen_t plen = sizeof(peer);

		n = getsockopt(cl->fd, SOL_SOCKET, SO_PEERCRED, &peer, &plen) < 0
		        ? -errno
		        : mig_secret_read_fd(cl->fds[0], req->secret_file, peer.uid, secret,
		                             sizeof(secret), why, sizeof(why));
		if (n < 0 && why[0] == 0)
			snprintf(why, sizeof(why), "who sent the secret: %s", strerror(-n));
	} else {
		n = mig_secret_read(req->secret_file, secret, sizeof(secret), why, sizeof(why));
	}
	if (n < 0)
		return api_reply_error(req->id, API_ERR_FAILED, why);
	def = vm_def_format(&m->def);
	if (!def) {
		explicit_bzero(secret, sizeof(secret));
		return api_reply_error(req->id, API_ERR_INTERNAL, "out of memory");
	}
	pthread_mutex_lock(&m->lock);
	mig_addr_format(&addr, g->to, sizeof(g->to));
	g->addr = addr;
	if (g->connected)
		close(g->conn_fd);
	g->connected = cl->nr_fds >= 2 && addr.is_unix;
	g->conn_fd = g->connected ? cl->fds[1] : -1;
	if (g->connected)
		cl->fds[1] = -1; /* taken */
	memcpy(g->secret, secret, (size_t)n);
	g->secret_len = (size_t)n;
	g->downtime_ms = req->downtime_ms ? req->downtime_ms : MIGRATE_DEFAULT_DOWNTIME_MS;
	g->timeout_s = req->migrate_timeout_s ? req->migrate_timeout_s : MIGRATE_DEFAULT_TIMEOUT_S;
	free(g->def);
	g->def = def;
	memset(&g->stats, 0, sizeof(g->stats));
	g->stats.phase = "connecting";
	g->result = NULL;
	g->error[0] = 0;
	g->client = (int)(cl - m->clients);
	g->client_gen = cl->gen;
	json_decref(g->id);
	g->id = req->id ? json_deep_copy(req->id) : NULL;
	g->progress = req->progress;
	g->progress_news = g->done_news = false;
	g->had_one = g->active = g->pending = true;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&m->lock);
	explicit_bzero(secret, sizeof(secret));
	cl->awaits_migration = true;
	return NULL;
}

char *monitor_do_migrate_cancel(struct monitor *m, const struct api_request *req)
{
	if (!monitor_migrating(m))
		return api_reply_error(req->id, API_ERR_STATE, "no migration is under way");
	mig_wake(m->mig.cancel_fd);
	monitor_log(m, "migration: cancel requested");
	return api_reply_ok(req->id, json_pack("{s:b}", "cancelling", 1));
}

static json_t *mig_stats_json(const struct migrate_stats *st)
{
	return json_pack(
	    "{s:s, s:i, s:I, s:I, s:I, s:I, s:I, s:i, s:I}", "phase",
	    st->phase ? st->phase : "connecting", "pass", (int)st->pass, "bytes_sent",
	    (json_int_t)st->bytes_sent, "remaining_bytes", (json_int_t)st->remaining_bytes,
	    "dirty_rate", (json_int_t)st->dirty_rate, "bandwidth", (json_int_t)st->bandwidth,
	    "expected_downtime_ms",
	    (json_int_t)(st->expected_downtime_ms > 86400000 ? 86400000 : st->expected_downtime_ms),
	    "throttle", (int)st->throttle, "elapsed_ms", (json_int_t)st->elapsed_ms);
}

json_t *monitor_migrate_status(struct monitor *m)
{
	struct monitor_migration *g = &m->mig;
	json_t *o = NULL;

	pthread_mutex_lock(&m->lock);
	if (g->had_one) {
		o = mig_stats_json(&g->stats);
		if (o) {
			json_object_set_new(o, "state",
			                    json_string(g->active ? "active" : g->result));
			json_object_set_new(o, "to", json_string(g->to));
			if (!g->active && g->result && !strcmp(g->result, "completed"))
				json_object_set_new(o, "downtime_ms",
				                    json_integer((json_int_t)g->stats.downtime_ms));
			if (g->error[0])
				json_object_set_new(o, "error", json_string(g->error));
		}
	}
	pthread_mutex_unlock(&m->lock);
	return o;
}

/* A line (@obj taken) to the client that asked, if it is still the one in its slot. */
static void mig_send_line(struct monitor *m, int slot, unsigned int gen, char *line)
{
	struct monitor_client *cl = slot >= 0 ? &m->clients[slot] : NULL;

	if (!line)
		return;
	if (!cl || cl->fd < 0 || cl->gen != gen || !cl->awaits_migration) {
		free(line);
		return;
	}
	(void)monitor_reply(cl, line);
}

void monitor_migrate_events(struct monitor *m)
{
	struct monitor_migration *g = &m->mig;
	struct migrate_stats st;
	bool progress, done;
	const char *result;
	char error[512], to[API_MIGRATE_TO_MAX];
	json_t *id;
	int slot;
	unsigned int gen;

	mig_drain(g->event_fd);
	pthread_mutex_lock(&m->lock);
	progress = g->progress_news && g->progress;
	done = g->done_news;
	g->progress_news = g->done_news = false;
	st = g->stats;
	result = g->result;
	snprintf(error, sizeof(error), "%s", g->error);
	snprintf(to, sizeof(to), "%s", g->to);
	id = g->id ? json_incref(g->id) : NULL;
	slot = g->client;
	gen = g->client_gen;
	pthread_mutex_unlock(&m->lock);
	if (progress && !done) {
		json_t *line = json_pack("{s:o}", "progress", mig_stats_json(&st));
		char *text;

		if (line) {
			json_object_set_new(json_object_get(line, "progress"), "op",
			                    json_string("migrate"));
			if (id)
				json_object_set(line, "id", id);
		}
		text = line ? json_dumps(line, JSON_COMPACT) : NULL;
		json_decref(line);
		if (text) {
			char *nl = realloc(text, strlen(text) + 2);

			if (nl)
				strcat(nl, "\n");
			else
				free(text);
			mig_send_line(m, slot, gen, nl);
		}
	}
	if (done) {
		char *reply;

		if (!strcmp(result, "completed"))
			reply = api_reply_ok(
			    id, json_pack("{s:s, s:s, s:I, s:I, s:I, s:i}", "state", "migrated",
			                  "to", to, "ms", (json_int_t)st.elapsed_ms, "downtime_ms",
			                  (json_int_t)st.downtime_ms, "bytes",
			                  (json_int_t)st.bytes_sent, "passes", (int)st.pass));
		else
			reply = api_reply_error(id, API_ERR_FAILED, error);
		if (slot >= 0 && m->clients[slot].fd >= 0 && m->clients[slot].gen == gen &&
		    m->clients[slot].awaits_migration) {
			struct monitor_client *cl = &m->clients[slot];

			(void)monitor_reply(cl, reply);
			if (cl->fd >= 0) {
				cl->awaits_migration = false;
				/* Its VM ends here: such a client waits for the close, as after
				 * save. */
				cl->awaits_end = !strcmp(result, "completed");
			}
		} else {
			free(reply);
		}
	}
	json_decref(id);
}

/* ---- receiving ---- */

static void mig_in_progress(void *opaque, const struct migrate_dest *d)
{
	struct monitor *m = opaque;

	pthread_mutex_lock(&m->lock);
	m->incoming.pass = d->pass;
	m->incoming.pages = d->pages;
	pthread_mutex_unlock(&m->lock);
}

static uint32_t mig_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The session and HELLO `receive` handed over (monitor.h), into @d. 0 or -errno with @why. */
static int mig_in_adopt(const struct monitor_incoming *in, struct migrate_dest *d, char *why,
                        size_t len)
{
	size_t cap = MIG_SESSION_SIZE + 4 + MIG_HELLO_FIXED + MIG_DEF_MAX, got = 0;
	uint8_t *buf = malloc(cap + 1);
	uint32_t hl;
	int r;

	if (!buf) {
		close(in->conn_fd);
		snprintf(why, len, "out of memory");
		return -ENOMEM;
	}
	for (;;) {
		ssize_t n = pread(in->session_fd, buf + got, cap + 1 - got, (off_t)got);

		if (n <= 0)
			break;
		got += (size_t)n;
	}
	r = mig_conn_init(&d->conn, in->conn_fd, NULL, NULL, false);
	if (r < 0) {
		close(in->conn_fd);
		snprintf(why, len, "out of memory");
		goto out;
	}
	hl = got >= MIG_SESSION_SIZE + 4 ? mig_le32(buf + MIG_SESSION_SIZE) : 0;
	r = got > cap || got != MIG_SESSION_SIZE + 4 + (size_t)hl ? -EINVAL : 0;
	if (r == 0)
		r = mig_conn_import(&d->conn, buf);
	if (r == 0)
		r = mig_hello_decode(buf + MIG_SESSION_SIZE + 4, hl, &d->hello, why, len);
	if (r < 0) {
		if (!why[0] || r == -EINVAL)
			snprintf(why, len, "the migration session handed over is not one");
		goto out;
	}
	d->def = malloc(d->hello.def_len + 1);
	if (!d->def) {
		r = -ENOMEM;
		snprintf(why, len, "out of memory");
		goto out;
	}
	memcpy(d->def, d->hello.def, d->hello.def_len);
	d->def[d->hello.def_len] = 0;
	d->hello.def = d->def;
out:
	explicit_bzero(buf, got < cap ? got : cap);
	free(buf);
	return r;
}

int monitor_receive(struct monitor *m, const struct monitor_incoming *in,
                    const struct vm_config *cfg, char *why, size_t len)
{
	struct migrate_dest d;
	int r;

	memset(&d, 0, sizeof(d));
	d.conn.fd = -1;
	why[0] = 0;
	r = mig_in_adopt(in, &d, why, len);
	close(in->session_fd);
	pthread_mutex_lock(&m->lock);
	m->incoming.active = true;
	m->incoming.cancel_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	d.conn.cancel_fd = m->incoming.cancel_fd;
	snprintf(m->incoming.from, sizeof(m->incoming.from), "%s", in->from ? in->from : "?");
	pthread_mutex_unlock(&m->lock);
	if (r == 0) {
		monitor_log(m, "migration from %s: receiving %llu MiB", m->incoming.from,
		            (unsigned long long)(d.hello.ram_size >> 20));
		r = migrate_dest_receive(&d, cfg, cfg->kvm_path ? cfg->kvm_path : "/dev/kvm",
		                         mig_in_progress, m, &m->vm, why, len);
	}
	pthread_mutex_lock(&m->lock);
	/* Killed after GO: the source hears no RUNNING and stays paused (docs/migration.md). */
	if (r == 0 && m->abort_start) {
		r = -ECANCELED;
		snprintf(why, len, "killed while receiving");
	}
	m->incoming.active = false;
	if (m->incoming.cancel_fd >= 0)
		close(m->incoming.cancel_fd);
	m->incoming.cancel_fd = -1;
	pthread_mutex_unlock(&m->lock);
	if (r == 0) {
		monitor_log(
		    m,
		    "migration from %s: %llu MiB received in %u passes (waiting on the link "
		    "%llu ms); GO",
		    m->incoming.from, (unsigned long long)(d.pages * MIG_PAGE_SIZE >> 20), d.pass,
		    (unsigned long long)((d.conn.wait_us[0] + d.conn.wait_us[1]) / 1000));
		migrate_dest_running(&d);
	} else if (m->vm) {
		vm_destroy(m->vm);
		m->vm = NULL;
	}
	migrate_dest_release(&d);
	return r;
}
