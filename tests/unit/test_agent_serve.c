/* SPDX-License-Identifier: MIT */
/*
 * The guest agent under hostile and careless clients: the real binary
 * (build/asan/nestvm-agent, or $NESTVM_AGENT) in its test mode on a UNIX
 * socket, driven with raw frames. Garbage, oversized frames, a wrong magic
 * or version, requests out of order, stdin past the window, connections
 * that say nothing, more sessions than allowed, another user: each is
 * refused (an ERROR frame where one can be sent, else a close) and the agent
 * goes on serving: after each case a real EXEC must still work. Skipped when
 * the agent binary is not built.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "agent/conn.h"
#include "agent/proto.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_SESSIONS 6
#define WAIT_MS 10000

static char dir[64], sock[96];
static pid_t agent = -1;

static int connect_agent(void)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	memcpy(sa.sun_path, sock, strlen(sock) + 1);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

/* Read frames on @c until one of @type (returned 1) or EOF (0) within WAIT_MS. */
static int wait_for(struct agent_conn *c, uint8_t type, struct agent_frame *f)
{
	for (;;) {
		int r = agent_conn_recv(c, f, WAIT_MS);

		if (r <= 0) {
			assert_true(r == 0 || r == -ECONNRESET);
			return 0;
		}
		if (f->type == type)
			return 1;
	}
}

/* A full session: HELLO, EXEC "echo served", its output and EXIT 0. */
static void assert_serves(void)
{
	struct agent_hello h = {AGENT_VERSION_MIN, AGENT_VERSION, AGENT_WINDOW};
	struct agent_exec *e = calloc(1, sizeof(*e));
	char out[64] = "";
	struct agent_conn c;
	struct agent_frame f;
	struct agent_exit x = {9, 9};
	size_t n = 0;

	assert_int_equal(agent_conn_init(&c, connect_agent()), 0);
	e->argv[e->argc++] = "echo";
	e->argv[e->argc++] = "served";
	assert_int_equal(agent_msg_hello(&c.tx, &h), 0);
	assert_int_equal(agent_msg_exec(&c.tx, e), 0);
	assert_int_equal(wait_for(&c, AGENT_HELLO, &f), 1);
	for (;;) {
		assert_int_equal(agent_conn_recv(&c, &f, WAIT_MS), 1);
		if (f.type == AGENT_STDOUT && f.len && n + f.len < sizeof(out)) {
			memcpy(out + n, f.payload, f.len);
			n += f.len;
		}
		if (f.type == AGENT_EXIT) {
			assert_int_equal(agent_parse_exit(&f, &x), 0);
			break;
		}
	}
	assert_string_equal(out, "served\n");
	assert_int_equal(x.how, AGENT_EXITED);
	assert_int_equal(x.code, 0);
	agent_conn_destroy(&c);
	free(e);
	/* And the listener itself is alive. */
	assert_int_equal(waitpid(agent, NULL, WNOHANG), 0);
}

/* Send @len bytes of @p on a new connection; expect an ERROR with @code (0: any) or a close. */
static void assert_refused(const void *p, size_t len, int code)
{
	struct agent_conn c;
	struct agent_frame f;
	struct agent_error e;

	assert_int_equal(agent_conn_init(&c, connect_agent()), 0);
	assert_int_equal(send(c.fd, p, len, MSG_NOSIGNAL), (ssize_t)len);
	if (wait_for(&c, AGENT_ERROR, &f)) {
		assert_int_equal(agent_parse_error(&f, &e), 0);
		if (code)
			assert_int_equal(e.code, code);
		/* Then the agent closes. */
		assert_int_equal(wait_for(&c, AGENT_HELLO, &f), 0);
	} else {
		assert_int_equal(code, 0);
	}
	agent_conn_destroy(&c);
}

static int setup(void **state)
{
	const char *bin =
	    getenv("NESTVM_AGENT") ? getenv("NESTVM_AGENT") : "build/asan/nestvm-agent";

	(void)state;
	if (access(bin, X_OK) != 0)
		return 0; /* each test skips */
	mkdir("build", 0755);
	snprintf(dir, sizeof(dir), "build/agent-serve.XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(sock, sizeof(sock), "%s/agent.sock", dir);
	agent = fork();
	assert_true(agent >= 0);
	if (agent == 0) {
		char max[16];

		snprintf(max, sizeof(max), "%d", MAX_SESSIONS);
		execl(bin, bin, "--unix", sock, "--max-sessions", max, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 200 && access(sock, F_OK) != 0; i++)
		usleep(20000);
	assert_int_equal(access(sock, F_OK), 0);
	return 0;
}

static int teardown(void **state)
{
	char cmd[320];
	int st = 0;

	(void)state;
	if (agent > 0) {
		kill(agent, SIGTERM);
		waitpid(agent, &st, 0);
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			return -1;
	}
	/* The agent ended by our SIGTERM, cleanly (no sanitizer exit status). */
	return agent > 0 && !(WIFEXITED(st) && WEXITSTATUS(st) == 0) ? -1 : 0;
}

#define NEED_AGENT()                                                                               \
	do {                                                                                       \
		if (agent <= 0)                                                                    \
			skip();                                                                    \
	} while (0)

static void test_serves(void **state)
{
	(void)state;
	NEED_AGENT();
	assert_serves();
}

static void test_garbage(void **state)
{
	uint8_t junk[4096];

	(void)state;
	NEED_AGENT();
	srand(7);
	for (int round = 0; round < 20; round++) {
		for (size_t i = 0; i < sizeof(junk); i++)
			junk[i] = (uint8_t)rand();
		if (round % 2)
			junk[5] = junk[6] = junk[7] = 0; /* a header that parses further */
		assert_refused(junk, (size_t)(rand() % (int)sizeof(junk)) + 1, 0);
	}
	assert_refused("GET / HTTP/1.0\r\n\r\n", 18, EPROTO);
	assert_serves();
}

static void test_oversized(void **state)
{
	static const uint8_t big[AGENT_FRAME_HDR] = {0x01, 0x00, 0x04, 0x00, AGENT_HELLO, 0, 0, 0};
	static const uint8_t huge[AGENT_FRAME_HDR] = {0xff, 0xff, 0xff, 0xff, AGENT_EXEC, 0, 0, 0};

	(void)state;
	NEED_AGENT();
	assert_refused(big, sizeof(big), EMSGSIZE);
	assert_refused(huge, sizeof(huge), EMSGSIZE);
	assert_serves();
}

static void test_bad_hello(void **state)
{
	struct agent_hello future = {7, 9, AGENT_WINDOW}, tiny = {1, 1, 16};
	struct agent_buf b;

	(void)state;
	NEED_AGENT();
	agent_buf_init(&b);
	assert_int_equal(agent_msg_hello(&b, &future), 0);
	assert_refused(b.data, b.len, EPROTONOSUPPORT);
	b.len = 0;
	assert_int_equal(agent_msg_hello(&b, &tiny), 0);
	assert_refused(b.data, b.len, EPROTO);
	b.len = 0;
	assert_int_equal(agent_msg_u32(&b, AGENT_SIGNAL, 9), 0); /* no HELLO first */
	assert_refused(b.data, b.len, EPROTO);
	agent_buf_free(&b);
	assert_serves();
}

static void test_bad_requests(void **state)
{
	struct agent_hello h = {AGENT_VERSION_MIN, AGENT_VERSION, AGENT_WINDOW};
	static const uint8_t no_arg[] = {AGENT_F_CWD, 0, 2, 0, 0, 0, '/', 0};
	struct agent_file_req relay = {.vm = "../etc"};
	struct agent_buf b;

	(void)state;
	NEED_AGENT();
	agent_buf_init(&b);
	assert_int_equal(agent_msg_hello(&b, &h), 0);
	assert_int_equal(agent_msg_u32(&b, AGENT_CREDIT, 5), 0); /* not a request */
	assert_refused(b.data, b.len, EPROTO);
	b.len = 0;
	assert_int_equal(agent_msg_hello(&b, &h), 0);
	agent_frame_begin(&b, AGENT_EXEC);
	agent_put_bytes(&b, no_arg, sizeof(no_arg));
	assert_int_equal(agent_frame_end(&b), 0);
	assert_refused(b.data, b.len, EPROTO);
	b.len = 0;
	assert_int_equal(agent_msg_hello(&b, &h), 0);
	assert_int_equal(agent_msg_file_req(&b, AGENT_RELAY, &relay), 0);
	assert_refused(b.data, b.len, EINVAL);
	agent_buf_free(&b);
	assert_serves();
}

/* stdin beyond the window the agent announced ends the session, and the command with it. */
static void test_stdin_overrun(void **state)
{
	struct agent_hello h = {AGENT_VERSION_MIN, AGENT_VERSION, AGENT_WINDOW};
	struct agent_exec *e = calloc(1, sizeof(*e));
	uint8_t *chunk = calloc(1, AGENT_DATA_MAX);
	struct agent_conn c;
	struct agent_frame f;
	struct agent_error err;
	bool refused = false;

	(void)state;
	NEED_AGENT();
	assert_int_equal(agent_conn_init(&c, connect_agent()), 0);
	e->argv[e->argc++] = "sleep";
	e->argv[e->argc++] = "30"; /* never reads its stdin */
	assert_int_equal(agent_msg_hello(&c.tx, &h), 0);
	assert_int_equal(agent_msg_exec(&c.tx, e), 0);
	assert_int_equal(wait_for(&c, AGENT_STARTED, &f), 1);
	for (int i = 0; i <= AGENT_WINDOW / AGENT_DATA_MAX; i++)
		assert_int_equal(agent_msg_data(&c.tx, AGENT_STDIN, chunk, AGENT_DATA_MAX), 0);
	for (;;) {
		int r = agent_conn_recv(&c, &f, WAIT_MS);

		assert_true(r >= 0 || r == -ECONNRESET || r == -EPIPE);
		if (r <= 0)
			break;
		if (f.type == AGENT_ERROR) {
			assert_int_equal(agent_parse_error(&f, &err), 0);
			refused = err.code == EPROTO;
		}
		assert_true(f.type != AGENT_EXIT);
	}
	assert_true(refused);
	agent_conn_destroy(&c);
	free(chunk);
	free(e);
	assert_serves();
}

/*
 * Wait up to 5 s until the agent has @n sessions (child processes, from
 * /proc/PID/task/PID/children; where the kernel lacks it, a pause instead).
 */
static void wait_sessions(int n)
{
	char path[64], buf[4096];

	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)agent, (int)agent);
	for (int i = 0; i < 500; i++) {
		FILE *f = fopen(path, "re");
		int count = 0;

		if (!f) {
			usleep(500000);
			return;
		}
		while (fscanf(f, "%4095s", buf) == 1)
			count++;
		fclose(f);
		if (count == n)
			return;
		usleep(10000);
	}
	fail_msg("the agent did not get to %d sessions", n);
}

/* Connections that say nothing (or half a header) do not stop the others. */
static void test_half_open_and_limit(void **state)
{
	int idle[MAX_SESSIONS];
	struct agent_conn c;
	struct agent_frame f;
	struct agent_error e;

	(void)state;
	NEED_AGENT();
	for (int i = 0; i < MAX_SESSIONS - 1; i++) {
		idle[i] = connect_agent();
		if (i % 2)
			assert_int_equal(send(idle[i], "\x0c\x00", 2, MSG_NOSIGNAL), 2);
	}
	wait_sessions(MAX_SESSIONS - 1);
	assert_serves(); /* the last free session */
	wait_sessions(MAX_SESSIONS - 1);
	idle[MAX_SESSIONS - 1] = connect_agent();
	wait_sessions(MAX_SESSIONS);
	/* All taken: the next one is told so and closed. */
	assert_int_equal(agent_conn_init(&c, connect_agent()), 0);
	assert_int_equal(wait_for(&c, AGENT_ERROR, &f), 1);
	assert_int_equal(agent_parse_error(&f, &e), 0);
	assert_int_equal(e.code, EBUSY);
	agent_conn_destroy(&c);
	for (int i = 0; i < MAX_SESSIONS; i++)
		close(idle[i]);
	/* Their sessions see the close, end and are reaped: serving again. */
	wait_sessions(0);
	assert_serves();
}

/* As root: a process of another user is closed without a word. */
static void test_other_user(void **state)
{
	pid_t pid;
	int st;

	(void)state;
	NEED_AGENT();
	if (geteuid() != 0)
		skip();
	assert_int_equal(chmod(dir, 0711), 0);
	assert_int_equal(chmod(sock, 0666), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct agent_hello h = {AGENT_VERSION_MIN, AGENT_VERSION, AGENT_WINDOW};
		struct agent_buf b;
		char buf[64];
		int fd;

		if (setgid(65534) < 0 || setuid(65534) < 0)
			_exit(2);
		fd = connect_agent();
		agent_buf_init(&b);
		if (agent_msg_hello(&b, &h) < 0 ||
		    send(fd, b.data, b.len, MSG_NOSIGNAL) != (ssize_t)b.len) {
			/* closed already: as refused */
		}
		_exit(read(fd, buf, sizeof(buf)) <= 0 ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	assert_int_equal(chmod(sock, 0600), 0);
	assert_serves();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_serves),
	    cmocka_unit_test(test_garbage),
	    cmocka_unit_test(test_oversized),
	    cmocka_unit_test(test_bad_hello),
	    cmocka_unit_test(test_bad_requests),
	    cmocka_unit_test(test_stdin_overrun),
	    cmocka_unit_test(test_half_open_and_limit),
	    cmocka_unit_test(test_other_user),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, setup, teardown);
}
