/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the guest agent's frames (src/agent/proto.c, conn.c), as
 * both ends read them. The input is a byte stream from a peer:
 *
 *   the first byte picks a frame cap and how the stream is cut into reads;
 *   the rest is split into frames by agent_frame_parse(), and each frame is
 *   given to every decoder either end has (HELLO, EXEC, PUT/GET/RELAY, the
 *   u32 ones, RESIZE on the agent's side; EXIT, ERROR, FILE, OK on the
 *   host's), whatever its type;
 *   the same stream also goes through an agent_conn over a socketpair, in
 *   pieces, and must give the same frames.
 *
 * Checks: a frame never reaches past the input or over its cap; every
 * string a decoder returns is NUL-terminated inside the frame; what a
 * decoder accepts, the builder writes back into a frame that decodes to the
 * same thing; an ERROR's message has no control characters.
 */
#include "agent/conn.h"
#include "agent/proto.h"
#include "fuzz_common.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* @s lies in the frame's payload and ends with a NUL there. */
static void fz_check_str(const struct agent_frame *f, const char *s)
{
	const uint8_t *p = (const uint8_t *)s;

	if (!s)
		return;
	FZ_CHECK(p >= f->payload && p < f->payload + f->len);
	FZ_CHECK(memchr(p, '\0', (size_t)(f->payload + f->len - p)) != NULL);
}

/* A decoded EXEC built again decodes to the same request. */
static void fz_exec(const struct agent_frame *f, struct agent_exec *e, struct agent_exec *e2)
{
	struct agent_buf b;
	struct agent_frame g;

	if (agent_parse_exec(f, e) < 0)
		return;
	FZ_CHECK(e->argc >= 1 && e->argc <= AGENT_MAX_ARGS && e->argv[e->argc] == NULL);
	FZ_CHECK(e->envc <= AGENT_MAX_ENV && e->envp[e->envc] == NULL);
	for (unsigned int i = 0; i < e->argc; i++)
		fz_check_str(f, e->argv[i]);
	for (unsigned int i = 0; i < e->envc; i++) {
		fz_check_str(f, e->envp[i]);
		FZ_CHECK(e->envp[i][0] != '=' && strchr(e->envp[i], '='));
	}
	fz_check_str(f, e->cwd);
	fz_check_str(f, e->user);
	agent_buf_init(&b);
	FZ_CHECK(agent_msg_exec(&b, e) == 0);
	FZ_CHECK(agent_frame_parse(b.data, b.len, AGENT_FRAME_MAX, &g) == (ssize_t)b.len);
	FZ_CHECK(agent_parse_exec(&g, e2) == 0);
	FZ_CHECK(e2->argc == e->argc && e2->envc == e->envc && e2->pty == e->pty);
	FZ_CHECK(e2->timeout_s == e->timeout_s &&
	         (!e->pty || (e2->rows == e->rows && e2->cols == e->cols)));
	for (unsigned int i = 0; i < e->argc; i++)
		FZ_CHECK(!strcmp(e->argv[i], e2->argv[i]));
	for (unsigned int i = 0; i < e->envc; i++)
		FZ_CHECK(!strcmp(e->envp[i], e2->envp[i]));
	FZ_CHECK(!e->cwd == !e2->cwd && (!e->cwd || !strcmp(e->cwd, e2->cwd)));
	FZ_CHECK(!e->user == !e2->user && (!e->user || !strcmp(e->user, e2->user)));
	agent_buf_free(&b);
}

static void fz_file_req(const struct agent_frame *f)
{
	struct agent_file_req r, r2;
	struct agent_buf b;
	struct agent_frame g;

	if (agent_parse_file_req(f, &r) < 0)
		return;
	fz_check_str(f, r.path);
	fz_check_str(f, r.name);
	fz_check_str(f, r.vm);
	FZ_CHECK(f->type == AGENT_RELAY ? r.vm && r.vm[0] : r.path && r.path[0]);
	agent_buf_init(&b);
	FZ_CHECK(agent_msg_file_req(&b, f->type, &r) == 0);
	FZ_CHECK(agent_frame_parse(b.data, b.len, AGENT_FRAME_MAX, &g) == (ssize_t)b.len);
	FZ_CHECK(agent_parse_file_req(&g, &r2) == 0);
	FZ_CHECK(r2.mode == r.mode && r2.size == r.size);
	FZ_CHECK(!r.path == !r2.path && (!r.path || !strcmp(r.path, r2.path)));
	FZ_CHECK(!r.name == !r2.name && (!r.name || !strcmp(r.name, r2.name)));
	FZ_CHECK(!r.vm == !r2.vm && (!r.vm || !strcmp(r.vm, r2.vm)));
	agent_buf_free(&b);
}

/* Every decoder on @f. */
static void fz_decode(const struct agent_frame *f, struct agent_exec *e, struct agent_exec *e2)
{
	struct agent_hello h;
	struct agent_exit x;
	struct agent_error err;
	uint16_t rows, cols;
	uint64_t u64;
	uint32_t u32;

	if (agent_parse_hello(f, &h) == 0)
		FZ_CHECK(h.version_min <= h.version_max && h.window >= AGENT_WINDOW_MIN &&
		         h.window <= AGENT_WINDOW_MAX);
	if (agent_parse_u32(f, &u32) == 0)
		FZ_CHECK(f->len == 4);
	if (agent_parse_resize(f, &rows, &cols) == 0)
		FZ_CHECK(f->type == AGENT_RESIZE);
	if (agent_parse_exit(f, &x) == 0)
		FZ_CHECK(x.how <= AGENT_TIMEDOUT && x.code >= 0 && x.code <= 255);
	if (agent_parse_error(f, &err) == 0) {
		FZ_CHECK(strlen(err.msg) < AGENT_MSG_MAX && err.status <= 255);
		for (const char *p = err.msg; *p; p++)
			FZ_CHECK((unsigned char)*p >= 0x20 && *p != 0x7f);
	}
	if (agent_parse_file(f, &u32, &u64) == 0)
		FZ_CHECK(f->len == 12);
	if (agent_parse_ok(f, &u64) == 0)
		FZ_CHECK(f->len == 8);
	fz_exec(f, e, e2);
	fz_file_req(f);
}

/* The same stream through an agent_conn in pieces of @step bytes: the same frames. */
static void fz_conn(const uint8_t *data, size_t size, uint32_t cap, size_t step, size_t frames,
                    const uint8_t *types)
{
	struct agent_conn c;
	struct agent_frame f;
	size_t off = 0, seen = 0;
	int sv[2], r = 0;

	FZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	FZ_CHECK(agent_conn_init(&c, sv[0]) == 0);
	c.frame_max = cap;
	while (off < size && r >= 0) {
		size_t n = size - off < step ? size - off : step;

		FZ_CHECK(write(sv[1], data + off, n) == (ssize_t)n);
		off += n;
		while (agent_conn_fill(&c) > 0)
			;
		while ((r = agent_conn_next(&c, &f)) > 0) {
			FZ_CHECK(seen < frames && f.type == types[seen]);
			seen++;
		}
	}
	if (r >= 0)
		FZ_CHECK(seen == frames);
	close(sv[1]);
	agent_conn_destroy(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct agent_exec *e, *e2;
	static const uint32_t caps[4] = {AGENT_FRAME_MAX, AGENT_DATA_MAX, 64, 0};
	uint8_t types[512];
	size_t off = 0, frames = 0, step;
	uint32_t cap;

	if (!e) {
		e = malloc(sizeof(*e));
		e2 = malloc(sizeof(*e2));
		FZ_CHECK(e && e2);
	}
	if (size < 1)
		return 0;
	cap = caps[data[0] & 3];
	step = (size_t)(data[0] >> 2) * 7 + 1;
	data++;
	size--;
	while (off < size) {
		struct agent_frame f;
		ssize_t n = agent_frame_parse(data + off, size - off, cap, &f);

		if (n <= 0)
			break;
		FZ_CHECK((size_t)n <= size - off && f.len <= cap &&
		         f.len + AGENT_FRAME_HDR == (size_t)n);
		FZ_CHECK(f.payload == data + off + AGENT_FRAME_HDR);
		fz_decode(&f, e, e2);
		if (frames < sizeof(types))
			types[frames] = f.type;
		frames++;
		off += (size_t)n;
	}
	if (frames <= sizeof(types) && size <= 1 << 20)
		fz_conn(data, size, cap, step, frames, types);
	return 0;
}
