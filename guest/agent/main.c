/* SPDX-License-Identifier: MIT */
/*
 * nestvm-agent: listen, check the peer, fork a session per connection
 * (agent.h, docs/agent.md).
 *
 *   nestvm-agent [--port N] [--nestvm PATH] [--max-sessions N] [-v]
 *   nestvm-agent --unix PATH ...     tests only: a UNIX socket (mode 0600,
 *                                    peers of the agent's own user) instead
 *                                    of vsock; with --vsock-connect it also
 *                                    plays a VM's vsock socket (README,
 *                                    "vsock from the host"): "CONNECT PORT"
 *                                    first, answered "OK 1"
 *
 * The main process only accepts: a peer that is not the host (vsock CID 2;
 * on --unix, a process of another user) is closed at once, and so is one
 * past --max-sessions (after an ERROR saying so). Each session is a child
 * process, so a session that fails, hangs or gets garbage never stops the
 * others or the listener.
 */
#include "agent.h"
#include "core/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/vm_sockets.h>

static const char agent_usage[] =
    "usage: nestvm-agent [--port N] [--nestvm PATH] [--max-sessions N] [-v]\n"
    "       nestvm-agent --unix PATH [...]   (tests: a UNIX socket instead of vsock)\n"
    "\n"
    "The guest agent of nestvm exec and nestvm cp: listens on vsock port N\n"
    "(default 1000) for the host (CID 2) only; see nestvm's docs/agent.md.\n";

void agent_log(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "nestvm-agent[%d]: %s\n", (int)getpid(), msg);
}

static int agent_parse_args(int argc, char **argv, struct agent_opts *o)
{
	*o = (struct agent_opts){.port = AGENT_VSOCK_PORT, .max_sessions = AGENT_MAX_SESSIONS};
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		char *end;

		if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
			o->verbose++;
			continue;
		}
		if (!strcmp(a, "--vsock-connect")) {
			o->vsock_connect = true;
			continue;
		}
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			fputs(agent_usage, stdout);
			exit(0);
		}
		if (!v)
			return -EINVAL;
		i++;
		if (!strcmp(a, "--unix")) {
			o->unix_path = v;
		} else if (!strcmp(a, "--nestvm")) {
			o->nestvm = v;
		} else if (!strcmp(a, "--port") || !strcmp(a, "--max-sessions")) {
			unsigned long n;

			errno = 0;
			n = strtoul(v, &end, 10);
			if (errno || *end || !n || n > 0xffffffffUL || v[0] == '-')
				return -EINVAL;
			if (a[2] == 'p')
				o->port = (unsigned int)n;
			else
				o->max_sessions = n > 4096 ? 4096 : (unsigned int)n;
		} else {
			return -EINVAL;
		}
	}
	return 0;
}

/* The listening socket: vsock port @o->port on any CID, or --unix PATH. */
static int agent_listen(const struct agent_opts *o)
{
	struct sockaddr_vm sa = {
	    .svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = o->port};
	int fd;

	if (o->unix_path)
		return unix_listen(o->unix_path, 0600, 64);
	fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 64) < 0) {
		int r = -errno;

		close(fd);
		return r;
	}
	return fd;
}

/* Is the peer of @fd the host? vsock: CID 2; --unix: a process of our own user. */
static bool agent_peer_ok(int fd, const struct agent_opts *o, char *who, size_t len)
{
	if (o->unix_path) {
		struct ucred cred;
		socklen_t sl = sizeof(cred);

		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &sl) < 0)
			return false;
		snprintf(who, len, "uid %u pid %d", (unsigned int)cred.uid, (int)cred.pid);
		return cred.uid == geteuid();
	} else {
		struct sockaddr_vm sa;
		socklen_t sl = sizeof(sa);

		if (getpeername(fd, (struct sockaddr *)&sa, &sl) < 0 || sa.svm_family != AF_VSOCK)
			return false;
		snprintf(who, len, "CID %u port %u", sa.svm_cid, sa.svm_port);
		return sa.svm_cid == AGENT_HOST_CID;
	}
}

/* Refuse @fd politely (one ERROR, without waiting on the peer) and close it. */
static void agent_refuse(int fd, int code, const char *why)
{
	struct agent_buf b;

	agent_buf_init(&b);
	if (agent_msg_error(&b, code, "%s", why) == 0 &&
	    send(fd, b.data, b.len, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
		/* The peer is gone or not reading: nothing more to tell it. */
	}
	agent_buf_free(&b);
	close(fd);
}

/* Fork a session for @fd; returns its pid or -errno. */
static pid_t agent_fork_session(int fd, int lfd, int sfd, const sigset_t *old,
                                const struct agent_opts *o)
{
	pid_t pid = fork();

	if (pid != 0)
		return pid < 0 ? -errno : pid;
	close(lfd);
	close(sfd);
	sigprocmask(SIG_SETMASK, old, NULL);
	signal(SIGTERM, SIG_DFL);
	_exit(agent_session(fd, o));
}

/* Accept one connection on @lfd and hand it to a session. */
static void agent_accept(int lfd, int sfd, const sigset_t *old, const struct agent_opts *o,
                         unsigned int *sessions)
{
	char who[64] = "?";
	pid_t pid;
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

	if (fd < 0) {
		if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
			agent_log("accept: %s", strerror(errno));
		return;
	}
	if (!agent_peer_ok(fd, o, who, sizeof(who))) {
		agent_log("refused a connection from %s: only the host may connect", who);
		close(fd);
		return;
	}
	if (*sessions >= o->max_sessions) {
		agent_log("refused a connection from %s: %u sessions already", who, *sessions);
		agent_refuse(fd, EBUSY, "the agent runs its maximum number of sessions");
		return;
	}
	pid = agent_fork_session(fd, lfd, sfd, old, o);
	if (pid < 0) {
		agent_log("fork: %s", strerror((int)-pid));
		agent_refuse(fd, (int)-pid, "the agent cannot start a session");
		return;
	}
	(*sessions)++;
	if (o->verbose)
		agent_log("session %d for %s", (int)pid, who);
	close(fd);
}

int main(int argc, char **argv)
{
	struct agent_opts o;
	unsigned int sessions = 0;
	sigset_t mask, old;
	int lfd, sfd;

	if (agent_parse_args(argc, argv, &o) < 0 || (o.vsock_connect && !o.unix_path)) {
		fputs(agent_usage, stderr);
		return 2;
	}
	/* Sessions dup onto 0-2: they must not be a socket of ours. */
	for (int i = 0; i < 3; i++)
		if (fcntl(i, F_GETFD) < 0 && open("/dev/null", O_RDWR) < 0)
			return 1;
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, &old);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	lfd = agent_listen(&o);
	if (sfd < 0 || lfd < 0) {
		char where[32];

		snprintf(where, sizeof(where), "%u", o.port);
		agent_log("cannot listen on %s%s: %s", o.unix_path ? "UNIX socket " : "vsock port ",
		          o.unix_path ? o.unix_path : where, strerror(lfd < 0 ? -lfd : errno));
		return 1;
	}
	if (o.unix_path)
		agent_log("listening on UNIX socket %s", o.unix_path);
	else
		agent_log("listening on vsock port %u", o.port);
	for (;;) {
		struct pollfd p[2] = {{.fd = lfd, .events = POLLIN}, {.fd = sfd, .events = POLLIN}};
		struct signalfd_siginfo si;

		if (poll(p, 2, -1) < 0 && errno != EINTR) {
			agent_log("poll: %s", strerror(errno));
			break;
		}
		while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
			if (si.ssi_signo != SIGCHLD)
				goto out;
		}
		while (waitpid(-1, NULL, WNOHANG) > 0)
			sessions = sessions ? sessions - 1 : 0;
		if (p[0].revents & POLLIN)
			agent_accept(lfd, sfd, &old, &o, &sessions);
	}
out:
	if (o.unix_path)
		unlink(o.unix_path);
	close(lfd);
	return 0;
}
