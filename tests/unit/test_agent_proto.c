/* SPDX-License-Identifier: MIT */
/*
 * Unit tests: the guest agent's frames (src/agent/proto.c) and the buffered
 * connection (src/agent/conn.c): every message round trip, and the
 * malformed headers and payloads each decoder must refuse.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "agent/conn.h"
#include "agent/proto.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* The one frame in @b, parsed. */
static void one_frame(struct agent_buf *b, struct agent_frame *f)
{
	ssize_t n = agent_frame_parse(b->data, b->len, AGENT_FRAME_MAX, f);

	assert_int_equal(n, (ssize_t)b->len);
}

static void test_header(void **state)
{
	uint8_t h[AGENT_FRAME_HDR + 4] = {4, 0, 0, 0, AGENT_SIGNAL, 0, 0, 0, 2, 0, 0, 0};
	struct agent_frame f;
	uint32_t v;

	(void)state;
	for (size_t n = 0; n < sizeof(h); n++)
		assert_int_equal(agent_frame_parse(h, n, AGENT_FRAME_MAX, &f), 0);
	assert_int_equal(agent_frame_parse(h, sizeof(h), AGENT_FRAME_MAX, &f), sizeof(h));
	assert_int_equal(f.type, AGENT_SIGNAL);
	assert_int_equal(agent_parse_u32(&f, &v), 0);
	assert_int_equal(v, 2);
	h[5] = 1; /* flags */
	assert_int_equal(agent_frame_parse(h, sizeof(h), AGENT_FRAME_MAX, &f), -EPROTO);
	h[5] = 0;
	h[7] = 0x80; /* reserved */
	assert_int_equal(agent_frame_parse(h, sizeof(h), AGENT_FRAME_MAX, &f), -EPROTO);
	h[7] = 0;
	h[4] = 0x7f; /* no such type */
	assert_int_equal(agent_frame_parse(h, sizeof(h), AGENT_FRAME_MAX, &f), -EPROTO);
	h[4] = AGENT_STDOUT;
	/* Too long is refused from the header alone, before the payload arrives. */
	h[0] = 0x01, h[1] = 0x00, h[2] = 0x04, h[3] = 0x00; /* 256 KiB + 1 */
	assert_int_equal(agent_frame_parse(h, AGENT_FRAME_HDR, AGENT_FRAME_MAX, &f), -EMSGSIZE);
	h[0] = 0x05, h[1] = 0, h[2] = 0;
	assert_int_equal(agent_frame_parse(h, AGENT_FRAME_HDR, 4, &f), -EMSGSIZE);
	h[0] = 0xff, h[1] = 0xff, h[2] = 0xff, h[3] = 0xff;
	assert_int_equal(agent_frame_parse(h, AGENT_FRAME_HDR, AGENT_FRAME_MAX, &f), -EMSGSIZE);
}

static void test_hello(void **state)
{
	struct agent_hello a = {1, 3, AGENT_WINDOW}, b, c = {2, 2, AGENT_WINDOW_MIN};
	struct agent_buf buf;
	struct agent_frame f;

	(void)state;
	agent_buf_init(&buf);
	assert_int_equal(agent_msg_hello(&buf, &a), 0);
	one_frame(&buf, &f);
	assert_int_equal(f.len, 12);
	assert_int_equal(agent_parse_hello(&f, &b), 0);
	assert_int_equal(b.version_min, 1);
	assert_int_equal(b.version_max, 3);
	assert_int_equal(b.window, AGENT_WINDOW);
	assert_int_equal(agent_version_pick(&a, &c), 2);
	c.version_min = c.version_max = 4;
	assert_int_equal(agent_version_pick(&a, &c), 0);
	/* A later version's longer HELLO still reads. */
	f.len = 16;
	assert_int_equal(agent_parse_hello(&f, &b), 0);
	f.len = 11;
	assert_int_equal(agent_parse_hello(&f, &b), -EPROTO);
	((uint8_t *)buf.data)[AGENT_FRAME_HDR] ^= 1; /* magic */
	f.len = 12;
	assert_int_equal(agent_parse_hello(&f, &b), -EPROTO);
	agent_buf_free(&buf);
	/* Windows out of range, versions backwards. */
	for (int i = 0; i < 3; i++) {
		struct agent_hello bad[] = {{1, 1, AGENT_WINDOW_MIN - 1},
		                            {1, 1, AGENT_WINDOW_MAX + 1},
		                            {2, 1, AGENT_WINDOW}};

		agent_buf_init(&buf);
		assert_int_equal(agent_msg_hello(&buf, &bad[i]), 0);
		one_frame(&buf, &f);
		assert_int_equal(agent_parse_hello(&f, &b), -EPROTO);
		agent_buf_free(&buf);
	}
}

static void test_exec_round_trip(void **state)
{
	struct agent_exec *e = calloc(2, sizeof(*e)), *d = e + 1;
	struct agent_buf buf;
	struct agent_frame f;

	(void)state;
	e->argv[e->argc++] = "sh";
	e->argv[e->argc++] = "-c";
	e->argv[e->argc++] = "";
	e->envp[e->envc++] = "A=1";
	e->envp[e->envc++] = "B==";
	e->cwd = "/tmp";
	e->user = "1000:100";
	e->pty = true;
	e->rows = 50;
	e->cols = 132;
	e->timeout_s = 70000;
	agent_buf_init(&buf);
	assert_int_equal(agent_msg_exec(&buf, e), 0);
	one_frame(&buf, &f);
	assert_int_equal(agent_parse_exec(&f, d), 0);
	assert_int_equal(d->argc, 3);
	assert_string_equal(d->argv[0], "sh");
	assert_string_equal(d->argv[2], "");
	assert_null(d->argv[3]);
	assert_int_equal(d->envc, 2);
	assert_string_equal(d->envp[1], "B==");
	assert_null(d->envp[2]);
	assert_string_equal(d->cwd, "/tmp");
	assert_string_equal(d->user, "1000:100");
	assert_true(d->pty);
	assert_int_equal(d->rows, 50);
	assert_int_equal(d->cols, 132);
	assert_int_equal(d->timeout_s, 70000);
	/* Every shorter payload is refused or a valid prefix of fields. */
	for (uint32_t n = 0; n < f.len; n++) {
		struct agent_frame t = f;
		int r;

		t.len = n;
		r = agent_parse_exec(&t, d);
		assert_true(r == -EPROTO || (r == 0 && d->argc >= 1));
	}
	agent_buf_free(&buf);
	free(e);
}

/* An EXEC frame of the raw fields @p (@n bytes). */
static int parse_raw_exec(const void *p, size_t n, struct agent_exec *d)
{
	struct agent_frame f = {AGENT_EXEC, (uint32_t)n, p};

	return agent_parse_exec(&f, d);
}

#define FIELD(tag, len) (tag), 0, (len), 0, 0, 0

static void test_exec_malformed(void **state)
{
	static const uint8_t no_arg[] = {FIELD(AGENT_F_CWD, 2), '/', 0};
	static const uint8_t empty_cmd[] = {FIELD(AGENT_F_ARG, 1), 0};
	static const uint8_t no_nul[] = {FIELD(AGENT_F_ARG, 2), 's', 'h'};
	static const uint8_t inner_nul[] = {FIELD(AGENT_F_ARG, 4), 's', 0, 'h', 0};
	static const uint8_t zero_len[] = {FIELD(AGENT_F_ARG, 0)};
	static const uint8_t env_no_eq[] = {FIELD(AGENT_F_ARG, 3), 's', 'h', 0,
	                                    FIELD(AGENT_F_ENV, 2), 'A', 0};
	static const uint8_t env_eq_first[] = {FIELD(AGENT_F_ARG, 3), 's', 'h', 0,
	                                       FIELD(AGENT_F_ENV, 3), '=', 'A', 0};
	static const uint8_t two_cwd[] = {
	    FIELD(AGENT_F_ARG, 3), 's', 'h', 0, FIELD(AGENT_F_CWD, 2), '/', 0,
	    FIELD(AGENT_F_CWD, 2), '/', 0};
	static const uint8_t two_pty[] = {FIELD(AGENT_F_ARG, 3),
	                                  's',
	                                  'h',
	                                  0,
	                                  FIELD(AGENT_F_PTY, 4),
	                                  1,
	                                  0,
	                                  1,
	                                  0,
	                                  FIELD(AGENT_F_PTY, 4),
	                                  1,
	                                  0,
	                                  1,
	                                  0};
	static const uint8_t pty_short[] = {FIELD(AGENT_F_ARG, 3), 's', 'h', 0,
	                                    FIELD(AGENT_F_PTY, 3), 1,   0,   1};
	static const uint8_t unknown[] = {FIELD(AGENT_F_ARG, 3), 's', 'h', 0, FIELD(99, 0)};
	static const uint8_t big_tag[] = {
	    FIELD(AGENT_F_ARG, 3), 's', 'h', 0, 0x00, 0x80, 0, 0, 0, 0};
	static const uint8_t overrun[] = {FIELD(AGENT_F_ARG, 30), 's', 'h', 0};
	static const uint8_t half_hdr[] = {FIELD(AGENT_F_ARG, 3), 's', 'h', 0, 1, 0, 0};
	static const uint8_t empty_user[] = {FIELD(AGENT_F_ARG, 3),  's', 'h', 0,
	                                     FIELD(AGENT_F_USER, 1), 0};
	static const struct {
		const uint8_t *p;
		size_t n;
	} bad[] = {
	    {no_arg, sizeof(no_arg)},
	    {empty_cmd, sizeof(empty_cmd)},
	    {no_nul, sizeof(no_nul)},
	    {inner_nul, sizeof(inner_nul)},
	    {zero_len, sizeof(zero_len)},
	    {env_no_eq, sizeof(env_no_eq)},
	    {env_eq_first, sizeof(env_eq_first)},
	    {two_cwd, sizeof(two_cwd)},
	    {two_pty, sizeof(two_pty)},
	    {pty_short, sizeof(pty_short)},
	    {unknown, sizeof(unknown)},
	    {big_tag, sizeof(big_tag)},
	    {overrun, sizeof(overrun)},
	    {half_hdr, sizeof(half_hdr)},
	    {empty_user, sizeof(empty_user)},
	    {NULL, 0},
	};
	struct agent_exec *d = malloc(sizeof(*d));
	struct agent_frame f = {AGENT_STDIN, 0, NULL};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(parse_raw_exec(bad[i].p, bad[i].n, d), -EPROTO);
	assert_int_equal(agent_parse_exec(&f, d), -EPROTO); /* not an EXEC */
	free(d);
}

static void test_exec_limits(void **state)
{
	size_t n = (AGENT_MAX_ARGS + 1) * 8;
	uint8_t *p = malloc(n);
	struct agent_exec *d = malloc(sizeof(*d));

	(void)state;
	for (size_t i = 0; i < AGENT_MAX_ARGS + 1; i++) {
		uint8_t f[8] = {FIELD(AGENT_F_ARG, 2), 'x', 0};

		memcpy(p + i * 8, f, 8);
	}
	assert_int_equal(parse_raw_exec(p, n - 8, d), 0);
	assert_int_equal(d->argc, AGENT_MAX_ARGS);
	assert_int_equal(parse_raw_exec(p, n, d), -E2BIG);
	free(p);
	free(d);
}

static void test_buf_too_big(void **state)
{
	struct agent_exec *e = calloc(1, sizeof(*e));
	size_t big = AGENT_FRAME_MAX / 2;
	char *s = malloc(big);
	struct agent_buf buf;
	struct agent_frame f;

	(void)state;
	memset(s, 'a', big - 1);
	s[big - 1] = '\0';
	agent_buf_init(&buf);
	assert_int_equal(agent_msg_u32(&buf, AGENT_CREDIT, 7), 0);
	e->argv[e->argc++] = s;
	e->argv[e->argc++] = s;
	e->argv[e->argc++] = s;
	assert_int_equal(agent_msg_exec(&buf, e), -E2BIG);
	/* The frame before is intact and alone, and the buffer works on. */
	one_frame(&buf, &f);
	assert_int_equal(f.type, AGENT_CREDIT);
	e->argc = 1;
	assert_int_equal(agent_msg_exec(&buf, e), 0);
	assert_int_equal(agent_msg_data(&buf, AGENT_STDOUT, s, AGENT_DATA_MAX + 1), -E2BIG);
	agent_buf_free(&buf);
	free(s);
	free(e);
}

static void test_error_exit_file(void **state)
{
	struct agent_error e;
	struct agent_exit x = {AGENT_SIGNALED, 9}, y;
	struct agent_buf buf;
	struct agent_frame f;
	uint64_t size, ok;
	uint32_t mode;

	(void)state;
	agent_buf_init(&buf);
	assert_int_equal(agent_msg_notrun(&buf, 2, 127, "cannot run '%s'\x1b[2J\n", "x"), 0);
	one_frame(&buf, &f);
	assert_int_equal(agent_parse_error(&f, &e), 0);
	assert_int_equal(e.code, 2);
	assert_int_equal(e.status, 127);
	assert_string_equal(e.msg, "cannot run 'x'?[2J?"); /* no terminal control */
	buf.data[AGENT_FRAME_HDR + 4] = 0x00;
	buf.data[AGENT_FRAME_HDR + 5] = 0x01; /* status 256 */
	assert_int_equal(agent_parse_error(&f, &e), -EPROTO);
	buf.len = 0;
	assert_int_equal(agent_msg_exit(&buf, &x), 0);
	one_frame(&buf, &f);
	assert_int_equal(agent_parse_exit(&f, &y), 0);
	assert_int_equal(y.how, AGENT_SIGNALED);
	assert_int_equal(y.code, 9);
	buf.len = 0;
	x.code = 0; /* signal 0 */
	assert_int_equal(agent_msg_exit(&buf, &x), 0);
	one_frame(&buf, &f);
	assert_int_equal(agent_parse_exit(&f, &y), -EPROTO);
	buf.len = 0;
	x = (struct agent_exit){AGENT_EXITED, 256};
	assert_int_equal(agent_msg_exit(&buf, &x), 0);
	one_frame(&buf, &f);
	assert_int_equal(agent_parse_exit(&f, &y), -EPROTO);
	buf.len = 0;
	assert_int_equal(agent_msg_file(&buf, 0755, 1ULL << 40), 0);
	one_frame(&buf, &f);
	assert_int_equal(agent_parse_file(&f, &mode, &size), 0);
	assert_int_equal(mode, 0755);
	assert_true(size == 1ULL << 40);
	buf.len = 0;
	assert_int_equal(agent_msg_ok(&buf, 12345), 0);
	one_frame(&buf, &f);
	assert_int_equal(agent_parse_ok(&f, &ok), 0);
	assert_int_equal(ok, 12345);
	f.len = 7;
	assert_int_equal(agent_parse_ok(&f, &ok), -EPROTO);
	agent_buf_free(&buf);
}

static void test_file_requests(void **state)
{
	struct agent_file_req r = {.path = "/tmp/x", .name = "x", .mode = 0640, .size = 5}, d;
	struct agent_buf buf;
	struct agent_frame f;

	(void)state;
	agent_buf_init(&buf);
	assert_int_equal(agent_msg_file_req(&buf, AGENT_PUT, &r), 0);
	one_frame(&buf, &f);
	assert_int_equal(agent_parse_file_req(&f, &d), 0);
	assert_string_equal(d.path, "/tmp/x");
	assert_string_equal(d.name, "x");
	assert_int_equal(d.mode, 0640);
	assert_int_equal(d.size, 5);
	/* A PUT's fields are no GET's. */
	buf.data[4] = AGENT_GET;
	one_frame(&buf, &f);
	assert_int_equal(agent_parse_file_req(&f, &d), -EPROTO);
	buf.len = 0;
	assert_int_equal(agent_msg_file_req(&buf, AGENT_GET, &r), 0);
	one_frame(&buf, &f);
	assert_int_equal(agent_parse_file_req(&f, &d), 0);
	assert_string_equal(d.path, "/tmp/x");
	assert_null(d.name);
	buf.len = 0;
	r.vm = "l2";
	assert_int_equal(agent_msg_file_req(&buf, AGENT_RELAY, &r), 0);
	one_frame(&buf, &f);
	assert_int_equal(agent_parse_file_req(&f, &d), 0);
	assert_string_equal(d.vm, "l2");
	buf.len = 0;
	r.vm = "";
	assert_int_equal(agent_msg_file_req(&buf, AGENT_RELAY, &r), 0);
	one_frame(&buf, &f);
	assert_int_equal(agent_parse_file_req(&f, &d), -EPROTO);
	buf.len = 0;
	r.mode = 010000; /* not permission bits */
	assert_int_equal(agent_msg_file_req(&buf, AGENT_PUT, &r), 0);
	one_frame(&buf, &f);
	assert_int_equal(agent_parse_file_req(&f, &d), -EPROTO);
	agent_buf_free(&buf);
}

/* Frames written a byte at a time come out whole; a bad header ends it. */
static void test_conn_reassembly(void **state)
{
	struct agent_conn c;
	struct agent_buf buf;
	struct agent_frame f;
	int sv[2], got = 0;
	uint32_t v;

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(agent_conn_init(&c, sv[0]), 0);
	agent_buf_init(&buf);
	for (uint32_t i = 0; i < 50; i++)
		assert_int_equal(agent_msg_u32(&buf, AGENT_CREDIT, i), 0);
	assert_int_equal(agent_msg_data(&buf, AGENT_STDOUT, "hello", 5), 0);
	for (size_t i = 0; i < buf.len; i++) {
		assert_int_equal(write(sv[1], buf.data + i, 1), 1);
		assert_true(agent_conn_fill(&c) == 1);
		while (agent_conn_next(&c, &f) == 1) {
			if (got < 50) {
				assert_int_equal(f.type, AGENT_CREDIT);
				assert_int_equal(agent_parse_u32(&f, &v), 0);
				assert_int_equal(v, (uint32_t)got);
			} else {
				assert_int_equal(f.type, AGENT_STDOUT);
				assert_memory_equal(f.payload, "hello", 5);
			}
			got++;
		}
	}
	assert_int_equal(got, 51);
	assert_int_equal(agent_conn_fill(&c), -EAGAIN);
	/* A queued answer goes out. */
	assert_int_equal(agent_msg_u32(&c.tx, AGENT_SIGNAL, 2), 0);
	assert_int_equal(agent_conn_send_all(&c, 1000), 0);
	assert_int_equal(read(sv[1], buf.data, 64), 12);
	/* An oversized header is refused as soon as it is in. */
	assert_int_equal(write(sv[1], "\xff\xff\xff\x00\x21\x00\x00\x00", 8), 8);
	assert_int_equal(agent_conn_recv(&c, &f, 1000), -EMSGSIZE);
	close(sv[1]);
	agent_conn_destroy(&c);
	agent_conn_destroy(&c); /* twice is harmless */
	agent_buf_free(&buf);
}

static void test_conn_eof_timeout(void **state)
{
	struct agent_conn c;
	struct agent_frame f;
	int sv[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(agent_conn_init(&c, sv[0]), 0);
	assert_int_equal(agent_conn_recv(&c, &f, 50), -ETIMEDOUT);
	assert_int_equal(write(sv[1], "\x04\x00\x00", 3), 3); /* half a header, then EOF */
	close(sv[1]);
	assert_int_equal(agent_conn_recv(&c, &f, 1000), 0);
	agent_conn_destroy(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_header),          cmocka_unit_test(test_hello),
	    cmocka_unit_test(test_exec_round_trip), cmocka_unit_test(test_exec_malformed),
	    cmocka_unit_test(test_exec_limits),     cmocka_unit_test(test_buf_too_big),
	    cmocka_unit_test(test_error_exit_file), cmocka_unit_test(test_file_requests),
	    cmocka_unit_test(test_conn_reassembly), cmocka_unit_test(test_conn_eof_timeout),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
