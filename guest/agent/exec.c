/* SPDX-License-Identifier: MIT */
/*
 * EXEC: run a command for the host (docs/agent.md, "EXEC"). The command gets
 * its own session and process group (setsid), pipes or a pseudo-terminal for
 * stdin/stdout/stderr, the user, directory and environment asked for, and
 * never a shell unless its argv names one (execvp, no sh -c).
 *
 * Then one poll loop until it has exited and its output is all sent:
 *   host -> command   STDIN frames buffered (at most the window we announced)
 *                     and written as the command reads; CREDIT as it does
 *   command -> host   read only while the host's credit lasts, so a host
 *                     that stops reading stops the command's output
 *   SIGNAL, RESIZE    at once, whatever the data does
 *   timeout           SIGTERM to the group, SIGKILL AGENT_KILL_GRACE_MS later
 *   host gone         SIGHUP to the group, SIGKILL after the grace
 */
#include "agent.h"
#include "core/clock.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#define AGENT_MAX_GROUPS 64
#define AGENT_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

extern char **environ;

/* Who the command runs as. */
struct agent_user {
	uid_t uid;
	gid_t gid;
	bool change; /* not the agent's own user */
	char name[64];
	char home[256];
	char shell[256];
	gid_t groups[AGENT_MAX_GROUPS];
	int ngroups;
};

/* What the child reports through its close-on-exec pipe when it cannot exec. */
struct agent_child_err {
	int err;
	int stage; /* 0 setup, 1 user, 2 cwd, 3 exec */
};

struct agent_run {
	struct agent_conn *c;
	const struct agent_opts *o;
	pid_t pid;
	int sfd;
	int in_fd, out_fd, err_fd;
	bool pty;
	/* Host -> command. */
	uint8_t *in;
	size_t in_off, in_len;
	uint32_t in_outstanding; /* received and not yet credited back */
	uint32_t in_done;        /* consumed since the last CREDIT */
	bool in_eof;             /* the host sent EOF */
	bool in_dropping;        /* the command closed its stdin: discard */
	/* Command -> host. */
	uint32_t out_credit, host_window;
	int64_t out_idle_since;
	/* The end. */
	bool exited, timed_out;
	int wstatus, last_signal;
	int64_t deadline, kill_at;
};

/* ---------------------------------------------------------------- user */

/* The /etc/passwd entry of @name (or of @uid when @name is NULL), read without NSS. */
static bool agent_pw_find(const char *name, uid_t uid, struct agent_user *u)
{
	FILE *f = fopen("/etc/passwd", "re");
	struct passwd *pw;
	bool found = false;

	if (!f)
		return false;
	while (!found && (pw = fgetpwent(f))) {
		if (name ? strcmp(pw->pw_name, name) != 0 : pw->pw_uid != uid)
			continue;
		u->uid = pw->pw_uid;
		u->gid = pw->pw_gid;
		snprintf(u->name, sizeof(u->name), "%s", pw->pw_name);
		snprintf(u->home, sizeof(u->home), "%s", pw->pw_dir);
		snprintf(u->shell, sizeof(u->shell), "%s", pw->pw_shell);
		found = true;
	}
	fclose(f);
	return found;
}

/* The supplementary groups of @u from /etc/group, its primary group first. */
static void agent_groups_find(struct agent_user *u)
{
	FILE *f = fopen("/etc/group", "re");
	struct group *g;

	u->groups[0] = u->gid;
	u->ngroups = 1;
	if (!f || !u->name[0]) {
		if (f)
			fclose(f);
		return;
	}
	while ((g = fgetgrent(f)) && u->ngroups < AGENT_MAX_GROUPS) {
		for (char **m = g->gr_mem; m && *m; m++) {
			if (!strcmp(*m, u->name) && g->gr_gid != u->gid) {
				u->groups[u->ngroups++] = g->gr_gid;
				break;
			}
		}
	}
	fclose(f);
}

/*
 * agent_user_resolve - @spec (NULL: the agent's own user, else a name,
 * "UID" or "UID:GID") into @u. 0, or -ENOENT (no such user) / -EPERM (the
 * agent is not root and @spec is someone else) / -EINVAL.
 */
static int agent_user_resolve(const char *spec, struct agent_user *u)
{
	uid_t me = geteuid();
	char *end;

	memset(u, 0, sizeof(*u));
	if (!spec) {
		if (!agent_pw_find(NULL, me, u)) {
			u->uid = me;
			u->gid = getegid();
			snprintf(u->home, sizeof(u->home), "/");
		}
		return 0;
	}
	if (spec[0] >= '0' && spec[0] <= '9') {
		unsigned long uid = strtoul(spec, &end, 10), gid;

		if (uid > 0x7fffffffUL || (*end && *end != ':'))
			return -EINVAL;
		if (!agent_pw_find(NULL, (uid_t)uid, u)) {
			u->uid = (uid_t)uid;
			u->gid = (gid_t)uid;
			snprintf(u->home, sizeof(u->home), "/");
		}
		if (*end == ':') {
			gid = strtoul(end + 1, &end, 10);
			if (*end || gid > 0x7fffffffUL)
				return -EINVAL;
			u->gid = (gid_t)gid;
		}
	} else if (!agent_pw_find(spec, 0, u)) {
		return -ENOENT;
	}
	agent_groups_find(u);
	u->change = true;
	if (me != 0 && u->uid != me)
		return -EPERM;
	return 0;
}

/* ---------------------------------------------------------- environment */

/* Put "KEY=VALUE" @s into @env (@n entries), replacing an entry with the same KEY. */
static void agent_env_set(char **env, unsigned int *n, char *s)
{
	size_t klen = strcspn(s, "=") + 1;

	for (unsigned int i = 0; i < *n; i++) {
		if (!strncmp(env[i], s, klen)) {
			env[i] = s;
			return;
		}
	}
	env[(*n)++] = s;
}

/* The environment the command gets, and room for the entries the agent makes. */
struct agent_env {
	char **env;
	char own[5][320];
};

/*
 * The command's environment: PATH, HOME, USER, LOGNAME, SHELL (what a login
 * would give; nothing of the agent's own), TERM=xterm with a pty, then what
 * the request sets. 0 or -ENOMEM; free @ev->env.
 */
static int agent_env_build(const struct agent_exec *e, const struct agent_user *u,
                           struct agent_env *ev)
{
	unsigned int n = 0, k = 0;

	ev->env = calloc(e->envc + 8, sizeof(*ev->env));
	if (!ev->env)
		return -ENOMEM;
	ev->env[n++] = (char *)"PATH=" AGENT_DEFAULT_PATH;
	snprintf(ev->own[k], sizeof(ev->own[k]), "HOME=%s", u->home[0] ? u->home : "/");
	ev->env[n++] = ev->own[k++];
	if (u->name[0]) {
		snprintf(ev->own[k], sizeof(ev->own[k]), "USER=%s", u->name);
		ev->env[n++] = ev->own[k++];
		snprintf(ev->own[k], sizeof(ev->own[k]), "LOGNAME=%s", u->name);
		ev->env[n++] = ev->own[k++];
	}
	if (u->shell[0]) {
		snprintf(ev->own[k], sizeof(ev->own[k]), "SHELL=%s", u->shell);
		ev->env[n++] = ev->own[k++];
	}
	if (e->pty)
		ev->env[n++] = (char *)"TERM=xterm";
	for (unsigned int i = 0; i < e->envc; i++)
		agent_env_set(ev->env, &n, (char *)e->envp[i]);
	ev->env[n] = NULL;
	return 0;
}

/* ---------------------------------------------------------------- child */

static void agent_child_fail(int rfd, int stage)
{
	struct agent_child_err ce = {errno, stage};

	if (write(rfd, &ce, sizeof(ce)) < 0) {
		/* The parent is gone: nothing to tell. */
	}
	_exit(127);
}

/*
 * In the child: its own session, the standard descriptors, the user, the
 * directory, the environment, exec. Reports a failure on @rfd.
 */
static void agent_child(const struct agent_exec *e, const struct agent_user *u, char **env,
                        int fds[3], const char *slave, int rfd)
{
	const char *cwd = e->cwd;
	sigset_t none;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (int s = 1; s < NSIG; s++)
		signal(s, SIG_DFL);
	if (setsid() < 0)
		agent_child_fail(rfd, 0);
	if (slave) {
		int fd = open(slave, O_RDWR);

		if (fd < 0 || ioctl(fd, TIOCSCTTY, 0) < 0)
			agent_child_fail(rfd, 0);
		fds[0] = fds[1] = fds[2] = fd;
	}
	for (int i = 0; i < 3; i++) {
		if (dup2(fds[i], i) < 0)
			agent_child_fail(rfd, 0);
	}
	if (u->change && (setgroups((size_t)u->ngroups, u->groups) < 0 || setgid(u->gid) < 0 ||
	                  setuid(u->uid) < 0))
		agent_child_fail(rfd, 1);
	if (!cwd)
		cwd = u->home[0] && access(u->home, X_OK) == 0 ? u->home : "/";
	if (chdir(cwd) < 0)
		agent_child_fail(rfd, 2);
	environ = env;
	execvp(e->argv[0], (char *const *)e->argv);
	agent_child_fail(rfd, 3);
}

/* ----------------------------------------------------------------- run */

static int agent_queue(struct agent_run *x, int r)
{
	if (r < 0)
		return r;
	/* The host's credit bounds data; control frames are few. Anything more is a bug. */
	return agent_conn_queued(x->c) > x->host_window + 2 * AGENT_FRAME_MAX ? -ENOBUFS : 0;
}

/* Send @sig to the command: the terminal's foreground group with a pty, else its group. */
static void agent_signal(struct agent_run *x, int sig)
{
	pid_t pg = -1;

	if (x->exited)
		return;
	if (x->pty && x->out_fd >= 0 && ioctl(x->out_fd, TIOCGPGRP, &pg) == 0 && pg > 0 &&
	    kill(-pg, sig) == 0)
		return;
	kill(-x->pid, sig);
}

/* Written or dropped @n bytes of stdin: credit them back in batches. */
static int agent_stdin_done(struct agent_run *x, uint32_t n)
{
	x->in_done += n;
	if (x->in_done >= AGENT_WINDOW / 4 || (x->in_done && x->in_off == x->in_len)) {
		uint32_t d = x->in_done;

		x->in_done = 0;
		x->in_outstanding -= d;
		return agent_queue(x, agent_msg_u32(&x->c->tx, AGENT_CREDIT, d));
	}
	return 0;
}

static void agent_stdin_close(struct agent_run *x)
{
	if (x->pty || x->in_fd < 0)
		return;
	close(x->in_fd);
	x->in_fd = -1;
}

/*
 * The host's stdin ended and all of it is written: close the pipe, or type
 * VEOF on a pty, which ends a read at the start of a line in canonical mode.
 * A program that reads its terminal raw (readline, an editor) gets nothing:
 * it sees the end when the host's user types it.
 */
static void agent_stdin_eof(struct agent_run *x)
{
	struct termios t;

	if (!x->pty || x->in_fd < 0) {
		agent_stdin_close(x);
		return;
	}
	if (tcgetattr(x->in_fd, &t) == 0 && (t.c_lflag & ICANON) &&
	    write(x->in_fd, &t.c_cc[VEOF], 1) < 0) {
		/* The terminal is gone: the command ends anyway. */
	}
}

/* STDIN from the host. */
static int agent_on_stdin(struct agent_run *x, const struct agent_frame *f)
{
	if (x->in_eof)
		return -EPROTO;
	if (!f->len) {
		x->in_eof = true;
		if (x->in_off == x->in_len)
			agent_stdin_eof(x);
		return 0;
	}
	if (f->len > AGENT_WINDOW - x->in_outstanding)
		return -EPROTO; /* more than we allowed */
	x->in_outstanding += f->len;
	if (x->in_dropping || x->in_fd < 0)
		return agent_stdin_done(x, f->len);
	if (x->in_len + f->len > AGENT_WINDOW) {
		memmove(x->in, x->in + x->in_off, x->in_len - x->in_off);
		x->in_len -= x->in_off;
		x->in_off = 0;
	}
	memcpy(x->in + x->in_len, f->payload, f->len);
	x->in_len += f->len;
	return 0;
}

/* One frame from the host during EXEC. */
static int agent_on_frame(struct agent_run *x, const struct agent_frame *f)
{
	uint16_t rows, cols;
	uint32_t v;

	switch (f->type) {
	case AGENT_STDIN:
		return agent_on_stdin(x, f);
	case AGENT_SIGNAL:
		if (agent_parse_u32(f, &v) < 0 || v < 1 || v >= NSIG)
			return -EPROTO;
		agent_signal(x, (int)v);
		return 0;
	case AGENT_RESIZE:
		if (agent_parse_resize(f, &rows, &cols) < 0)
			return -EPROTO;
		if (x->pty && x->out_fd >= 0) {
			struct winsize ws = {.ws_row = rows, .ws_col = cols};

			ioctl(x->out_fd, TIOCSWINSZ, &ws);
		}
		return 0;
	case AGENT_CREDIT:
		if (agent_parse_u32(f, &v) < 0 || v > x->host_window - x->out_credit)
			return -EPROTO;
		x->out_credit += v;
		return 0;
	default:
		return -EPROTO;
	}
}

/* Read what the host sent and act on every complete frame. 0, or -errno (host gone: -ECONNRESET).
 */
static int agent_from_host(struct agent_run *x)
{
	struct agent_frame f;
	ssize_t n;
	int r;

	for (;;) {
		while ((r = agent_conn_next(x->c, &f)) > 0) {
			r = agent_on_frame(x, &f);
			if (r < 0)
				return r;
		}
		if (r < 0)
			return r;
		n = agent_conn_fill(x->c);
		if (n == -EAGAIN)
			return 0;
		if (n == 0)
			return -ECONNRESET;
		if (n < 0)
			return (int)n;
	}
}

/* Write buffered stdin to the command. */
static int agent_to_stdin(struct agent_run *x)
{
	ssize_t n = write(x->in_fd, x->in + x->in_off, x->in_len - x->in_off);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n < 0) {
		/* The command closed its stdin (EPIPE), or the terminal is gone: drop the rest. */
		uint32_t left = (uint32_t)(x->in_len - x->in_off);

		x->in_off = x->in_len = 0;
		x->in_dropping = true;
		agent_stdin_close(x);
		return agent_stdin_done(x, left);
	}
	x->in_off += (size_t)n;
	if (x->in_off == x->in_len) {
		x->in_off = x->in_len = 0;
		if (x->in_eof)
			agent_stdin_eof(x);
	}
	return agent_stdin_done(x, (uint32_t)n);
}

/* Read the command's output on *@fd as far as the host's credit goes. */
static int agent_from_output(struct agent_run *x, int *fd, enum agent_type type)
{
	uint8_t buf[AGENT_DATA_MAX];
	size_t want = x->out_credit < sizeof(buf) ? x->out_credit : sizeof(buf);
	ssize_t n = read(*fd, buf, want);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	x->out_idle_since = mono_ms();
	if (n <= 0) {
		/* EOF; EIO on a pty whose every slave is closed. */
		close(*fd);
		*fd = -1;
		if (x->pty)
			x->in_fd = -1;
		return agent_queue(x, agent_msg_data(&x->c->tx, type, NULL, 0));
	}
	x->out_credit -= (uint32_t)n;
	return agent_queue(x, agent_msg_data(&x->c->tx, type, buf, (size_t)n));
}

static void agent_reap(struct agent_run *x)
{
	struct signalfd_siginfo si;
	int st;

	while (read(x->sfd, &si, sizeof(si)) == sizeof(si))
		;
	if (!x->exited && waitpid(x->pid, &st, WNOHANG) == x->pid) {
		x->exited = true;
		x->wstatus = st;
		x->out_idle_since = mono_ms();
	}
}

/* The timeout and the SIGKILL after it. */
static void agent_timers(struct agent_run *x, int64_t now)
{
	if (x->exited)
		return;
	if (x->deadline && now >= x->deadline && !x->timed_out) {
		x->timed_out = true;
		x->last_signal = SIGTERM;
		kill(-x->pid, SIGTERM);
		kill(-x->pid, SIGCONT);
		x->kill_at = now + AGENT_KILL_GRACE_MS;
	}
	if (x->kill_at && now >= x->kill_at) {
		x->last_signal = SIGKILL;
		kill(-x->pid, SIGKILL);
		x->kill_at = 0;
	}
}

/* The command has exited and its output is done (or idle for AGENT_DRAIN_IDLE_MS). */
static bool agent_finished(struct agent_run *x, int64_t now)
{
	if (!x->exited)
		return false;
	if (x->out_fd < 0 && x->err_fd < 0)
		return true;
	/* A background process may hold the output open for good: end once it is idle. */
	if (x->out_credit == 0)
		x->out_idle_since = now;
	return now - x->out_idle_since >= AGENT_DRAIN_IDLE_MS;
}

static int agent_poll_timeout(const struct agent_run *x, int64_t now)
{
	int64_t t = -1, next[3] = {x->timed_out ? 0 : x->deadline, x->kill_at,
	                           x->exited ? x->out_idle_since + AGENT_DRAIN_IDLE_MS : 0};

	for (int i = 0; i < 3; i++) {
		if (next[i] && (t < 0 || next[i] - now < t))
			t = next[i] - now;
	}
	return t < 0 ? -1 : t < 1 ? 1 : (int)t;
}

/* The host went away: hang the command up, and kill it if it lingers. */
static void agent_hangup(struct agent_run *x)
{
	int64_t end = mono_ms() + AGENT_KILL_GRACE_MS;

	agent_signal(x, SIGHUP);
	kill(-x->pid, SIGHUP);
	kill(-x->pid, SIGCONT);
	while (!x->exited && mono_ms() < end) {
		struct pollfd p = {.fd = x->sfd, .events = POLLIN};

		poll(&p, 1, 100);
		agent_reap(x);
	}
	if (!x->exited) {
		kill(-x->pid, SIGKILL);
		waitpid(x->pid, NULL, 0);
	}
}

/* The EXIT frame for how the command ended. */
static int agent_send_exit(struct agent_run *x)
{
	struct agent_exit e = {AGENT_EXITED, 0};

	if (x->timed_out) {
		e.how = AGENT_TIMEDOUT;
		e.code = WIFSIGNALED(x->wstatus) ? WTERMSIG(x->wstatus) : x->last_signal;
	} else if (WIFSIGNALED(x->wstatus)) {
		e.how = AGENT_SIGNALED;
		e.code = WTERMSIG(x->wstatus);
	} else {
		e.code = WEXITSTATUS(x->wstatus);
	}
	if (x->o->verbose)
		agent_log("command %d ended: %s %d", (int)x->pid,
		          e.how == AGENT_EXITED ? "status" : "signal", e.code);
	return agent_send(x->c, agent_msg_exit(&x->c->tx, &e));
}

static int agent_loop(struct agent_run *x)
{
	for (;;) {
		int64_t now = mono_ms();
		struct pollfd p[5] = {
		    {.fd = x->c->fd, .events = POLLIN | (agent_conn_queued(x->c) ? POLLOUT : 0)},
		    {.fd = x->sfd, .events = POLLIN},
		    {.fd = x->out_credit ? x->out_fd : -1, .events = POLLIN},
		    {.fd = x->out_credit ? x->err_fd : -1, .events = POLLIN},
		    {.fd = x->in_off < x->in_len ? x->in_fd : -1, .events = POLLOUT},
		};
		int r;

		agent_timers(x, now);
		if (agent_finished(x, now))
			return 0;
		if (poll(p, 5, agent_poll_timeout(x, now)) < 0 && errno != EINTR)
			return -errno;
		if (p[1].revents)
			agent_reap(x);
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			r = agent_from_host(x);
			if (r < 0)
				return r;
		}
		r = agent_conn_flush(x->c);
		if (r < 0 && r != -EAGAIN)
			return r;
		if (p[2].revents && x->out_fd >= 0 && x->out_credit) {
			r = agent_from_output(x, &x->out_fd, AGENT_STDOUT);
			if (r < 0)
				return r;
		}
		if (p[3].revents && x->err_fd >= 0 && x->out_credit) {
			r = agent_from_output(x, &x->err_fd, AGENT_STDERR);
			if (r < 0)
				return r;
		}
		if (p[4].revents && x->in_fd >= 0) {
			r = agent_to_stdin(x);
			if (r < 0)
				return r;
		}
	}
}

/* The command's end of pipes (@child) and ours (@mine), or a pty (@slave set). */
static int agent_stdio(const struct agent_exec *e, int child[3], int mine[3], char *slave,
                       size_t len)
{
	if (e->pty) {
		struct winsize ws = {.ws_row = e->rows ? e->rows : 24,
		                     .ws_col = e->cols ? e->cols : 80};
		int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);

		if (m < 0)
			return -errno;
		if (grantpt(m) < 0 || unlockpt(m) < 0 || ptsname_r(m, slave, len) != 0) {
			int r = -errno;

			close(m);
			return r;
		}
		ioctl(m, TIOCSWINSZ, &ws);
		mine[0] = mine[1] = m;
		mine[2] = -1;
		return 0;
	}
	for (int i = 0; i < 3; i++) {
		int p[2];

		if (pipe2(p, O_CLOEXEC) < 0)
			return -errno;
		child[i] = i ? p[1] : p[0];
		mine[i] = i ? p[0] : p[1];
	}
	slave[0] = '\0';
	return 0;
}

static const char *const agent_stage_names[] = {"cannot set up the command",
                                                "cannot become the user",
                                                "cannot change to the directory", "cannot run"};

/* Tell the host the command could not run (@status 126 or 127); returns -@err. */
static int agent_notrun(struct agent_run *x, int err, unsigned int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int agent_notrun(struct agent_run *x, int err, unsigned int status, const char *fmt, ...)
{
	char msg[AGENT_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (agent_send(x->c, agent_msg_notrun(&x->c->tx, err, status, "%s", msg)) < 0) {
		/* The host is gone: nobody to tell. */
	}
	return -err;
}

/* Wait for the child's exec: 0, or its failure reported to the host and -errno. */
static int agent_spawn_wait(struct agent_run *x, const struct agent_exec *e, int rfd)
{
	struct agent_child_err ce;
	ssize_t n;

	do
		n = read(rfd, &ce, sizeof(ce));
	while (n < 0 && errno == EINTR);
	if (n != sizeof(ce))
		return 0; /* closed by the exec */
	waitpid(x->pid, NULL, 0);
	/* As a shell says: 127 for a command not found, 126 for the rest. */
	return agent_notrun(x, ce.err, ce.stage == 3 && ce.err == ENOENT ? 127 : 126, "%s '%s': %s",
	                    agent_stage_names[ce.stage & 3],
	                    ce.stage == 2 ? (e->cwd ? e->cwd : "~") : e->argv[0], strerror(ce.err));
}

/* Fork and exec the command; 0 with x->pid and its descriptors set, or an ERROR sent and -errno. */
static int agent_spawn(struct agent_run *x, const struct agent_exec *e)
{
	int child[3] = {-1, -1, -1}, mine[3] = {-1, -1, -1}, rp[2] = {-1, -1}, r;
	struct agent_env ev = {NULL};
	struct agent_user u;
	char slave[128];

	r = agent_user_resolve(e->user, &u);
	if (r < 0)
		return agent_notrun(x, -r, 126, "user '%s': %s", e->user,
		                    r == -ENOENT ? "no such user in /etc/passwd" : strerror(-r));
	r = agent_env_build(e, &u, &ev);
	if (r == 0)
		r = agent_stdio(e, child, mine, slave, sizeof(slave));
	if (r == 0 && pipe2(rp, O_CLOEXEC) < 0)
		r = -errno;
	if (r == 0) {
		x->pid = fork();
		if (x->pid == 0)
			agent_child(e, &u, ev.env, child, e->pty ? slave : NULL, rp[1]);
		if (x->pid < 0)
			r = -errno;
	}
	for (int i = 0; i < 3; i++)
		if (child[i] >= 0)
			close(child[i]);
	if (rp[1] >= 0)
		close(rp[1]);
	if (r == 0)
		r = agent_spawn_wait(x, e, rp[0]);
	else
		r = agent_notrun(x, -r, 126, "cannot start the command: %s", strerror(-r));
	if (rp[0] >= 0)
		close(rp[0]);
	free(ev.env);
	if (r < 0) {
		for (int i = 0; i < 3; i++)
			if (mine[i] >= 0 && (i == 0 || mine[i] != mine[0]))
				close(mine[i]);
		return r;
	}
	x->in_fd = mine[0];
	x->out_fd = mine[1];
	x->err_fd = mine[2];
	x->pty = e->pty;
	for (int i = 0; i < 3; i++)
		if (mine[i] >= 0)
			fcntl(mine[i], F_SETFL, fcntl(mine[i], F_GETFL) | O_NONBLOCK);
	return 0;
}

int agent_exec_run(struct agent_conn *c, const struct agent_exec *req, uint32_t host_window,
                   const struct agent_opts *o)
{
	struct agent_run x = {.c = c,
	                      .o = o,
	                      .sfd = -1,
	                      .in_fd = -1,
	                      .out_fd = -1,
	                      .err_fd = -1,
	                      .out_credit = host_window,
	                      .host_window = host_window};
	sigset_t mask, old;
	int r;

	x.in = malloc(AGENT_WINDOW);
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigprocmask(SIG_BLOCK, &mask, &old);
	x.sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (!x.in || x.sfd < 0) {
		r = agent_send(c, agent_msg_error(&c->tx, ENOMEM, "cannot set up the session"));
		r = r < 0 ? r : -ENOMEM;
		goto out;
	}
	r = agent_spawn(&x, req);
	if (r < 0)
		goto out;
	if (o->verbose)
		agent_log("command %d: %s%s", (int)x.pid, req->argv[0], req->pty ? " (pty)" : "");
	if (req->timeout_s)
		x.deadline = mono_ms() + (int64_t)req->timeout_s * 1000;
	r = agent_queue(&x, agent_msg_u32(&c->tx, AGENT_STARTED, (uint32_t)x.pid));
	if (r == 0)
		r = agent_loop(&x);
	if (r == 0) {
		r = agent_send_exit(&x);
	} else {
		if (o->verbose)
			agent_log("command %d: %s; hanging it up", (int)x.pid, strerror(-r));
		agent_refuse_frame(c, r);
		agent_hangup(&x);
	}
out:
	if (x.in_fd >= 0 && x.in_fd != x.out_fd)
		close(x.in_fd);
	if (x.out_fd >= 0)
		close(x.out_fd);
	if (x.err_fd >= 0)
		close(x.err_fd);
	if (x.sfd >= 0)
		close(x.sfd);
	sigprocmask(SIG_SETMASK, &old, NULL);
	free(x.in);
	return r;
}
