/* SPDX-License-Identifier: MIT */
/*
 * The host's end of EXEC (host.h, docs/agent.md): our stdin to the command
 * within the agent's credit, its stdout and stderr to ours within the credit
 * we give, our signals to it. One poll loop; our own stdin and stdout stay
 * blocking (their file descriptions may be shared with the shell), so
 * output is written in pieces a POLLOUT guarantees room for.
 */
#include "agent/host.h"
#include "core/clock.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#define HOST_PIPE_CHUNK 4096 /* PIPE_BUF: what a pipe reported writable takes without blocking */
#define HOST_HANGUP_MS 1000  /* after a hangup: time to tell the agent */
#define HOST_TERM_MS 3000    /* after our SIGTERM: time the command has to end */

/* One of the command's output streams on its way to ours. */
struct host_out {
	int fd;
	bool chunked; /* not a regular file: write HOST_PIPE_CHUNK at a time */
	uint8_t *buf;
	size_t off, len;
	bool eof;
	bool broken; /* our side is gone (EPIPE): dropped from now on */
};

struct host_run {
	struct agent_host *h;
	const struct agent_exec *req;
	struct mgr_err *err;
	int sfd;
	bool tty; /* our terminal on stdin, made raw */
	bool started, stdin_open;
	bool closed;            /* the agent closed the connection (after EXIT: fine) */
	uint32_t credit;        /* stdin bytes the agent still takes */
	uint32_t outstanding;   /* output received and not yet credited back */
	uint32_t done;          /* output written since the last CREDIT */
	struct host_out out[2]; /* stdout, stderr */
	bool have_exit;
	struct agent_exit exit;
	int status;         /* >= 0: end with it */
	int64_t give_up_at; /* after a SIGTERM: end then, whatever the command does */
};

static int host_fail(struct host_run *x, int r, const char *what)
{
	return mgr_err_set(x->err, r, "%s: %s: %s", x->h->what, what, strerror(-r));
}

/* An output frame: append to its stream's buffer (the credit we gave bounds it). */
static int host_on_output(struct host_run *x, struct host_out *o, const struct agent_frame *f)
{
	if (o->eof)
		return -EPROTO;
	if (!f->len) {
		o->eof = true;
		return 0;
	}
	if (f->len > AGENT_WINDOW - x->outstanding)
		return -EPROTO;
	x->outstanding += f->len;
	x->h->bytes_out += f->len;
	if (!x->h->first_out_ms)
		x->h->first_out_ms = mono_ms();
	if (o->broken) {
		x->done += f->len;
		return 0;
	}
	if (o->len + f->len > AGENT_WINDOW) {
		memmove(o->buf, o->buf + o->off, o->len - o->off);
		o->len -= o->off;
		o->off = 0;
	}
	memcpy(o->buf + o->len, f->payload, f->len);
	o->len += f->len;
	return 0;
}

/* An ERROR from the agent: a command that could not run (126, 127), or a failed session. */
static int host_on_error(struct host_run *x, const struct agent_frame *f)
{
	struct agent_error e;

	if (agent_parse_error(f, &e) < 0)
		return -EPROTO;
	mgr_err_set(x->err, -EREMOTEIO, "%s: %s", x->h->what, e.msg);
	x->status = !x->started && e.status ? (int)e.status : AGENT_HOST_EXIT_ERROR;
	return 0;
}

static int host_on_frame(struct host_run *x, const struct agent_frame *f)
{
	uint32_t v;

	switch (f->type) {
	case AGENT_STARTED:
		if (x->started || agent_parse_u32(f, &v) < 0)
			return -EPROTO;
		x->started = true;
		return 0;
	case AGENT_STDOUT:
	case AGENT_STDERR:
		return x->started ? host_on_output(x, &x->out[f->type == AGENT_STDERR], f)
		                  : -EPROTO;
	case AGENT_CREDIT:
		if (agent_parse_u32(f, &v) < 0 || v > x->h->window - x->credit)
			return -EPROTO;
		x->credit += v;
		return 0;
	case AGENT_EXIT:
		if (!x->started || x->have_exit || agent_parse_exit(f, &x->exit) < 0)
			return -EPROTO;
		x->have_exit = true;
		return 0;
	case AGENT_ERROR:
		return host_on_error(x, f);
	default:
		return -EPROTO;
	}
}

/* Read from the agent and act on each frame; -ECONNRESET when it closed. */
static int host_from_agent(struct host_run *x)
{
	struct agent_frame f;
	ssize_t n;
	int r;

	for (;;) {
		while ((r = agent_conn_next(&x->h->c, &f)) > 0) {
			r = host_on_frame(x, &f);
			if (r < 0 || x->status >= 0)
				return r;
		}
		if (r < 0)
			return r;
		n = agent_conn_fill(&x->h->c);
		if (n == -EAGAIN)
			return 0;
		if (n <= 0 && x->have_exit) {
			/* Done; a reset only says it did not read our last CREDIT. */
			x->closed = true;
			return 0;
		}
		if (n <= 0)
			return n ? (int)n : -ECONNRESET;
	}
}

/* Credit written output back in batches. */
static int host_credit(struct host_run *x)
{
	bool idle = x->out[0].off == x->out[0].len && x->out[1].off == x->out[1].len;
	uint32_t d = x->done;

	if (!d || (d < AGENT_WINDOW / 4 && !idle))
		return 0;
	x->done = 0;
	x->outstanding -= d;
	return agent_msg_u32(&x->h->c.tx, AGENT_CREDIT, d);
}

/* Write buffered output to our stdout or stderr. */
static int host_to_output(struct host_run *x, struct host_out *o)
{
	size_t len = o->len - o->off;
	ssize_t n;

	if (o->chunked && len > HOST_PIPE_CHUNK)
		len = HOST_PIPE_CHUNK;
	n = write(o->fd, o->buf + o->off, len);
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return 0;
	if (n < 0) {
		/* Nobody reads our output any more: drop it, and let the session end. */
		n = (ssize_t)(o->len - o->off);
		o->broken = true;
		if (x->status < 0 && o == &x->out[0])
			x->status = 128 + SIGPIPE;
	}
	o->off += (size_t)n;
	if (o->off == o->len)
		o->off = o->len = 0;
	x->done += (uint32_t)n;
	return host_credit(x);
}

/* Our stdin to the command, within the agent's credit. */
static int host_from_stdin(struct host_run *x)
{
	uint8_t buf[AGENT_DATA_MAX];
	size_t want = x->credit < sizeof(buf) ? x->credit : sizeof(buf);
	ssize_t n = read(STDIN_FILENO, buf, want);

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return 0;
	if (n <= 0) {
		x->stdin_open = false;
		if (n < 0 && errno == EIO) {
			/* Our terminal is gone: as a hangup. */
			x->status = 128 + SIGHUP;
			return agent_msg_u32(&x->h->c.tx, AGENT_SIGNAL, SIGHUP);
		}
		return agent_msg_data(&x->h->c.tx, AGENT_STDIN, NULL, 0);
	}
	x->credit -= (uint32_t)n;
	x->h->bytes_in += (uint64_t)n;
	return agent_msg_data(&x->h->c.tx, AGENT_STDIN, buf, (size_t)n);
}

static void host_winsize(uint16_t *rows, uint16_t *cols)
{
	struct winsize ws;

	*rows = 24;
	*cols = 80;
	if ((ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0 ||
	     ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0) &&
	    ws.ws_row && ws.ws_col) {
		*rows = ws.ws_row;
		*cols = ws.ws_col;
	}
}

/* Our signals: forwarded; a hangup ends the session. */
static int host_on_signals(struct host_run *x)
{
	struct signalfd_siginfo si;
	int r = 0;

	while (r == 0 && read(x->sfd, &si, sizeof(si)) == sizeof(si)) {
		int sig = (int)si.ssi_signo;

		if (sig == SIGWINCH) {
			uint16_t rows, cols;

			if (!x->req->pty)
				continue;
			host_winsize(&rows, &cols);
			r = agent_msg_resize(&x->h->c.tx, rows, cols);
			continue;
		}
		r = agent_msg_u32(&x->h->c.tx, AGENT_SIGNAL, (uint32_t)sig);
		if (sig == SIGHUP)
			x->status = 128 + SIGHUP;
		/* We are asked to end: the command gets the signal and a moment to end too. */
		if (sig == SIGTERM && !x->give_up_at)
			x->give_up_at = mono_ms() + HOST_TERM_MS;
	}
	return r;
}

/* Done: the command's EXIT is in and its output is out (or has nowhere to go). */
static bool host_done(const struct host_run *x)
{
	for (int i = 0; i < 2; i++)
		if (!x->out[i].broken && x->out[i].off < x->out[i].len)
			return false;
	return x->have_exit;
}

static int host_loop(struct host_run *x)
{
	struct agent_conn *c = &x->h->c;
	int r;

	for (;;) {
		struct pollfd p[5] = {
		    {.fd = x->closed ? -1 : c->fd,
		     .events = POLLIN | (agent_conn_queued(c) ? POLLOUT : 0)},
		    {.fd = x->sfd, .events = POLLIN},
		    {.fd = x->started && x->stdin_open && !x->have_exit && x->credit ? STDIN_FILENO
		                                                                     : -1,
		     .events = POLLIN},
		    {.fd = x->out[0].off < x->out[0].len ? x->out[0].fd : -1, .events = POLLOUT},
		    {.fd = x->out[1].off < x->out[1].len ? x->out[1].fd : -1, .events = POLLOUT},
		};

		int timeout = -1;

		if (x->give_up_at) {
			int64_t left = x->give_up_at - mono_ms();

			if (left <= 0)
				x->status = 128 + SIGTERM;
			timeout = left <= 0 ? 0 : (int)left;
		}
		if (x->status >= 0 || host_done(x))
			return 0;
		if (poll(p, 5, timeout) < 0 && errno != EINTR)
			return host_fail(x, -errno, "poll");
		r = p[1].revents ? host_on_signals(x) : 0;
		if (r == 0 && (p[0].revents & (POLLIN | POLLHUP | POLLERR)))
			r = host_from_agent(x);
		if (r == 0 && p[2].revents)
			r = host_from_stdin(x);
		for (int i = 0; i < 2 && r == 0; i++)
			if (p[3 + i].revents)
				r = host_to_output(x, &x->out[i]);
		if (r == 0 && !x->closed) {
			r = agent_conn_flush(c);
			r = r == -EAGAIN || (r == -EPIPE && x->have_exit) ? 0 : r;
		}
		if (r == -ECONNRESET || r == -EPIPE)
			return mgr_err_set(
			    x->err, r,
			    "%s: the connection to the agent was lost before the command "
			    "ended",
			    x->h->what);
		if (r == -EPROTO || r == -EMSGSIZE)
			return mgr_err_set(x->err, r, "%s: malformed frame from the agent",
			                   x->h->what);
		if (r < 0)
			return host_fail(x, r, "session");
	}
}

/* The exit status for how the command ended. */
static int host_status(struct host_run *x)
{
	if (x->status >= 0)
		return x->status;
	switch (x->exit.how) {
	case AGENT_EXITED:
		return x->exit.code;
	case AGENT_SIGNALED:
		return 128 + x->exit.code;
	default:
		mgr_err_set(x->err, -ETIMEDOUT,
		            "%s: the command timed out after %u s and was killed", x->h->what,
		            x->req->timeout_s);
		return AGENT_HOST_EXIT_TIMEOUT;
	}
}

/* Signals to forward, blocked and read from a signalfd while the session runs. */
static void host_signal_set(sigset_t *set)
{
	static const int sigs[] = {SIGINT, SIGTERM, SIGQUIT, SIGHUP, SIGWINCH, SIGUSR1, SIGUSR2};

	sigemptyset(set);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaddset(set, sigs[i]);
}

int agent_host_exec(struct agent_host *h, const struct agent_exec *req, struct mgr_err *err)
{
	struct host_run x = {.h = h,
	                     .req = req,
	                     .err = err,
	                     .sfd = -1,
	                     .stdin_open = true,
	                     .credit = h->window,
	                     .status = -1};
	struct agent_exec *sent = NULL;
	struct termios saved, raw;
	sigset_t set, old;
	int r;

	err->msg[0] = '\0';
	host_signal_set(&set);
	sigprocmask(SIG_BLOCK, &set, &old);
	x.sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	for (int i = 0; i < 2; i++) {
		struct stat st;

		x.out[i].fd = i ? STDERR_FILENO : STDOUT_FILENO;
		x.out[i].chunked = fstat(x.out[i].fd, &st) < 0 || !S_ISREG(st.st_mode);
		x.out[i].buf = malloc(AGENT_WINDOW);
	}
	sent = malloc(sizeof(*sent));
	if (x.sfd < 0 || !x.out[0].buf || !x.out[1].buf || !sent) {
		r = mgr_err_set(err, -ENOMEM, "cannot set up the session");
		goto out;
	}
	*sent = *req;
	if (req->pty)
		host_winsize(&sent->rows, &sent->cols);
	r = agent_msg_exec(&h->c.tx, sent);
	if (r < 0) {
		r = mgr_err_set(err, r,
		                "the command and its environment are too large (at most %u "
		                "bytes, %u arguments)",
		                (unsigned int)AGENT_FRAME_MAX, (unsigned int)AGENT_MAX_ARGS);
		goto out;
	}
	x.tty = req->pty && isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved) == 0;
	if (x.tty) {
		raw = saved;
		cfmakeraw(&raw);
		tcsetattr(STDIN_FILENO, TCSADRAIN, &raw);
	}
	r = host_loop(&x);
	if (r == 0 && (x.status == 128 + SIGHUP || x.status == 128 + SIGTERM)) {
		/* Hung up or told to end: tell the agent (the signal is queued), then leave. */
		if (agent_conn_send_all(&h->c, HOST_HANGUP_MS) < 0) {
			/* The agent hangs the command up when the connection closes anyway. */
		}
	}
	if (r == 0)
		r = host_status(&x);
	if (x.tty)
		tcsetattr(STDIN_FILENO, TCSADRAIN, &saved);
out:
	if (x.sfd >= 0)
		close(x.sfd);
	sigprocmask(SIG_SETMASK, &old, NULL);
	free(x.out[0].buf);
	free(x.out[1].buf);
	free(sent);
	return r;
}
