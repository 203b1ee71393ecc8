/* SPDX-License-Identifier: MIT */
/*
 * Unit tests: the live migration stream (snapshot/migrate_stream.h,
 * migrate_net.h): the handshake with the right and wrong secrets and with
 * an impostor, frames over a socket, and a captured stream of frames that
 * is flipped bit by bit, truncated at every length, reordered, replayed,
 * and given headers out of bounds: each must be refused, and no frame may
 * come out changed. Then HELLO's decoder, secret files, addresses,
 * listening sockets and the session handed from one process to another.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "snapshot/migrate_net.h"
#include "snapshot/migrate_stream.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static const uint8_t secret_a[] = "correct horse battery staple, 32";
static const uint8_t secret_b[] = "another secret, also long enough";

/* ---- a byte buffer as a stream ---- */

struct membuf {
	uint8_t *buf;
	size_t len, cap, pos;
};

static ssize_t mem_read(void *opaque, void *buf, size_t len)
{
	struct membuf *m = opaque;
	size_t n = m->len - m->pos < len ? m->len - m->pos : len;

	memcpy(buf, m->buf + m->pos, n);
	m->pos += n;
	return (ssize_t)n;
}

static ssize_t mem_write(void *opaque, const void *buf, size_t len)
{
	struct membuf *m = opaque;

	if (m->len + len > m->cap) {
		m->cap = (m->len + len) * 2;
		m->buf = realloc(m->buf, m->cap);
		assert_non_null(m->buf);
	}
	memcpy(m->buf + m->len, buf, len);
	m->len += len;
	return (ssize_t)len;
}

static const struct mig_io_ops mem_ops = {mem_read, mem_write};

static const uint8_t key_s2d[MIG_KEY_SIZE] = {1, 2, 3};
static const uint8_t key_d2s[MIG_KEY_SIZE] = {4, 5, 6};

/* Three frames from a source, as bytes; the offsets where each starts. */
static void capture(struct membuf *m, size_t start[4])
{
	struct mig_conn c;
	uint8_t pages[MIG_PAGES_HEADER + 64] = {0};
	uint8_t pass[MIG_PASS_SIZE] = {7};

	memset(m, 0, sizeof(*m));
	assert_int_equal(mig_conn_init(&c, -1, &mem_ops, m, true), 0);
	assert_int_equal(mig_conn_set_keys(&c, key_s2d, key_d2s), 0);
	memset(pages + MIG_PAGES_HEADER, 0x5a, 64);
	start[0] = m->len;
	assert_int_equal(mig_send(&c, MIG_MSG_PAGES, pages, sizeof(pages)), 0);
	start[1] = m->len;
	assert_int_equal(mig_send(&c, MIG_MSG_PASS, pass, sizeof(pass)), 0);
	start[2] = m->len;
	assert_int_equal(mig_send(&c, MIG_MSG_GO, NULL, 0), 0);
	start[3] = m->len;
	mig_conn_release(&c);
}

/* Read frames from @m as the destination; returns how many came intact, and the error. */
static int drain(struct membuf *m, int *err)
{
	struct mig_conn c;
	static const enum mig_msg want[] = {MIG_MSG_PAGES, MIG_MSG_PASS, MIG_MSG_GO};
	static const size_t want_len[] = {MIG_PAGES_HEADER + 64, MIG_PASS_SIZE, 0};
	int n = 0;

	m->pos = 0;
	assert_int_equal(mig_conn_init(&c, -1, &mem_ops, m, false), 0);
	assert_int_equal(mig_conn_set_keys(&c, key_s2d, key_d2s), 0);
	*err = 0;
	for (;;) {
		enum mig_msg t;
		const uint8_t *p;
		size_t len;
		int r = mig_recv(&c, &t, &p, &len);

		if (r < 0) {
			*err = r;
			break;
		}
		/* What is accepted is exactly what was sent, in order. */
		assert_true(n < 3);
		assert_int_equal(t, want[n]);
		assert_int_equal(len, want_len[n]);
		if (t == MIG_MSG_PAGES)
			assert_int_equal(p[MIG_PAGES_HEADER + 63], 0x5a);
		n++;
	}
	mig_conn_release(&c);
	return n;
}

static void test_frames_intact(void **state)
{
	struct membuf m;
	size_t start[4];
	int err;

	(void)state;
	capture(&m, start);
	assert_int_equal(drain(&m, &err), 3);
	assert_int_equal(err, -ECONNRESET); /* the end of the stream after GO */
	free(m.buf);
}

/* A frame gathered from pieces arrives as one payload, and nothing of it crosses in the clear. */
static void test_frames_pieces(void **state)
{
	static uint8_t page[2 * MIG_PAGE_SIZE];
	uint8_t hdr[MIG_PAGES_HEADER] = {0, 0x10, 0, 0, 0, 0, 0, 0, 2};
	struct mig_piece pieces[] = {{hdr, sizeof(hdr)}, {page, sizeof(page)}};
	struct membuf m = {0};
	struct mig_conn s, d;
	enum mig_msg t;
	const uint8_t *p;
	size_t len;

	(void)state;
	memset(page, 0x5a, sizeof(page));
	assert_int_equal(mig_conn_init(&s, -1, &mem_ops, &m, true), 0);
	assert_int_equal(mig_conn_set_keys(&s, key_s2d, key_d2s), 0);
	assert_int_equal(mig_sendv(&s, MIG_MSG_PAGES, pieces, 2), 0);
	assert_int_equal(m.len, MIG_FRAME_HEADER + sizeof(hdr) + sizeof(page) + MIG_TAG_SIZE);
	assert_null(memmem(m.buf, m.len, page, 64));
	assert_int_equal(mig_conn_init(&d, -1, &mem_ops, &m, false), 0);
	assert_int_equal(mig_conn_set_keys(&d, key_s2d, key_d2s), 0);
	assert_int_equal(mig_recv(&d, &t, &p, &len), 0);
	assert_int_equal(t, MIG_MSG_PAGES);
	assert_int_equal(len, sizeof(hdr) + sizeof(page));
	assert_memory_equal(p, hdr, sizeof(hdr));
	assert_memory_equal(p + sizeof(hdr), page, sizeof(page));
	mig_conn_release(&s);
	mig_conn_release(&d);
	free(m.buf);
}

static void test_frames_bit_flips(void **state)
{
	struct membuf m;
	size_t start[4];
	int err;

	(void)state;
	capture(&m, start);
	for (size_t i = 0; i < m.len; i++) {
		for (int bit = 0; bit < 8; bit++) {
			int n;

			m.buf[i] ^= (uint8_t)(1u << bit);
			n = drain(&m, &err);
			m.buf[i] ^= (uint8_t)(1u << bit);
			/* The frame holding the flipped bit, and none after it, is refused. */
			for (int f = 0; f < 3; f++) {
				if (i >= start[f] && i < start[f + 1])
					assert_int_equal(n, f);
			}
			assert_true(err == -EBADMSG || err == -EPROTO || err == -ECONNRESET);
		}
	}
	free(m.buf);
}

static void test_frames_truncated(void **state)
{
	struct membuf m;
	size_t start[4], full;
	int err;

	(void)state;
	capture(&m, start);
	full = m.len;
	for (size_t len = 0; len < full; len++) {
		int n;

		m.len = len;
		n = drain(&m, &err);
		assert_int_equal(err, -ECONNRESET);
		/* A frame cut anywhere is not delivered. */
		for (int f = 0; f < 3; f++) {
			if (len >= start[f] && len < start[f + 1])
				assert_int_equal(n, f);
		}
	}
	free(m.buf);
}

static void test_frames_reordered_replayed(void **state)
{
	struct membuf m, x = {0};
	size_t start[4];
	int err;

	(void)state;
	capture(&m, start);
	/* Frame 1 before frame 0. */
	mem_write(&x, m.buf + start[1], start[2] - start[1]);
	mem_write(&x, m.buf + start[0], start[1] - start[0]);
	assert_int_equal(drain(&x, &err), 0);
	assert_int_equal(err, -EBADMSG);
	/* Frame 0 twice. */
	x.len = 0;
	mem_write(&x, m.buf + start[0], start[1] - start[0]);
	mem_write(&x, m.buf + start[0], start[1] - start[0]);
	assert_int_equal(drain(&x, &err), 1);
	assert_int_equal(err, -EBADMSG);
	/* Frame 1 dropped. */
	x.len = 0;
	mem_write(&x, m.buf + start[0], start[1] - start[0]);
	mem_write(&x, m.buf + start[2], start[3] - start[2]);
	assert_int_equal(drain(&x, &err), 1);
	assert_int_equal(err, -EBADMSG);
	free(x.buf);
	free(m.buf);
}

static void test_frame_headers(void **state)
{
	char why[160];

	(void)state;
	/* Type, direction, flags and each type's bounds. */
	assert_int_equal(
	    mig_frame_header_check(MIG_MSG_PAGES, 0, MIG_PAGES_HEADER, false, why, sizeof(why)), 0);
	assert_int_equal(mig_frame_header_check(0, 0, 0, false, why, sizeof(why)), -EPROTO);
	assert_int_equal(mig_frame_header_check(MIG_MSG_MAX + 1, 0, 0, false, why, sizeof(why)),
	                 -EPROTO);
	assert_non_null(strstr(why, "unknown type"));
	assert_int_equal(mig_frame_header_check(MIG_MSG_READY, 0, 0, false, why, sizeof(why)),
	                 -EPROTO);
	assert_non_null(strstr(why, "only the destination sends"));
	assert_int_equal(mig_frame_header_check(MIG_MSG_GO, 0, 0, true, why, sizeof(why)), -EPROTO);
	assert_int_equal(mig_frame_header_check(MIG_MSG_GO, 1, 0, false, why, sizeof(why)),
	                 -EPROTO);
	assert_int_equal(mig_frame_header_check(MIG_MSG_GO, 0, 1, false, why, sizeof(why)),
	                 -EPROTO);
	assert_int_equal(
	    mig_frame_header_check(MIG_MSG_PAGES, 0, MIG_FRAME_MAX + 1, false, why, sizeof(why)),
	    -EPROTO);
	assert_int_equal(
	    mig_frame_header_check(MIG_MSG_PAGES, 0, MIG_PAGES_HEADER - 1, false, why, sizeof(why)),
	    -EPROTO);
	assert_int_equal(mig_frame_header_check(MIG_MSG_ERROR, 0, 4, true, why, sizeof(why)), 0);
	assert_int_equal(mig_frame_header_check(MIG_MSG_ERROR, 0, 4, false, why, sizeof(why)), 0);
	assert_int_equal(
	    mig_frame_header_check(MIG_MSG_PASS, 0, MIG_PASS_SIZE + 1, false, why, sizeof(why)),
	    -EPROTO);
}

/* A 4 GiB length in a header is refused before anything is read (or allocated) for it. */
static void test_frame_huge_length(void **state)
{
	struct membuf m = {0};
	uint8_t hdr[8] = {MIG_MSG_PAGES, 0, 0, 0, 0xff, 0xff, 0xff, 0xff};
	struct mig_conn c;
	enum mig_msg t;
	const uint8_t *p;
	size_t len;

	(void)state;
	mem_write(&m, hdr, sizeof(hdr));
	assert_int_equal(mig_conn_init(&c, -1, &mem_ops, &m, false), 0);
	assert_int_equal(mig_conn_set_keys(&c, key_s2d, key_d2s), 0);
	assert_int_equal(mig_recv(&c, &t, &p, &len), -EPROTO);
	assert_non_null(strstr(c.error, "PAGES frame of 4294967295 bytes"));
	assert_int_equal(m.pos, sizeof(hdr));
	/* Errors are sticky. */
	assert_int_equal(mig_recv(&c, &t, &p, &len), -EPROTO);
	mig_conn_release(&c);
	free(m.buf);
}

static void test_error_frame(void **state)
{
	struct membuf m = {0};
	struct mig_conn s, d;
	enum mig_msg t;
	const uint8_t *p;
	size_t len;

	(void)state;
	assert_int_equal(mig_conn_init(&d, -1, &mem_ops, &m, false), 0);
	assert_int_equal(mig_conn_set_keys(&d, key_s2d, key_d2s), 0);
	mig_send_error(&d, EXDEV, "another CPU\x1b[2J model");
	assert_int_equal(mig_conn_init(&s, -1, &mem_ops, &m, true), 0);
	assert_int_equal(mig_conn_set_keys(&s, key_s2d, key_d2s), 0);
	assert_int_equal(mig_recv(&s, &t, &p, &len), -EREMOTEIO);
	/* The peer's text is quoted, never its control characters. */
	assert_string_equal(s.error, "the destination: another CPU?[2J model");
	mig_conn_release(&s);
	mig_conn_release(&d);
	free(m.buf);
}

/* ---- the handshake over a socket pair ---- */

struct peer {
	int fd;
	const uint8_t *secret;
	size_t len;
	int r;
	char error[256];
	enum mig_msg got;
};

static void *dest_thread(void *arg)
{
	struct peer *p = arg;
	struct mig_conn c;
	const uint8_t *payload;
	size_t len;

	if (mig_conn_init(&c, p->fd, NULL, NULL, false) < 0) {
		p->r = -ENOMEM;
		return NULL;
	}
	c.timeout_ms = 5000;
	p->r = mig_handshake(&c, p->secret, p->len);
	if (p->r == 0)
		p->r = mig_recv(&c, &p->got, &payload, &len);
	if (p->r == 0)
		p->r = mig_send(&c, MIG_MSG_ACCEPT, NULL, 0);
	snprintf(p->error, sizeof(p->error), "%s", c.error);
	mig_conn_release(&c);
	return NULL;
}

/* The source's side with @src, the destination's with @dst: the source's result. */
static int handshake_pair(const uint8_t *src, const uint8_t *dst, struct peer *d, char *err,
                          size_t err_len)
{
	int sv[2];
	pthread_t th;
	struct mig_conn c;
	enum mig_msg t;
	const uint8_t *payload;
	size_t len;
	uint8_t hello[MIG_HELLO_FIXED + 2];
	int r;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	*d = (struct peer){.fd = sv[1], .secret = dst, .len = 32};
	assert_int_equal(pthread_create(&th, NULL, dest_thread, d), 0);
	assert_int_equal(mig_conn_init(&c, sv[0], NULL, NULL, true), 0);
	c.timeout_ms = 5000;
	r = mig_handshake(&c, src, 32);
	memset(hello, 0, sizeof(hello));
	if (r == 0)
		r = mig_send(&c, MIG_MSG_HELLO, hello, sizeof(hello));
	if (r == 0)
		r = mig_recv(&c, &t, &payload, &len);
	if (r == 0)
		assert_int_equal(t, MIG_MSG_ACCEPT);
	snprintf(err, err_len, "%s", c.error);
	mig_conn_release(&c);
	pthread_join(th, NULL);
	return r;
}

static void test_handshake(void **state)
{
	struct peer d;
	char err[256];

	(void)state;
	assert_int_equal(handshake_pair(secret_a, secret_a, &d, err, sizeof(err)), 0);
	assert_int_equal(d.r, 0);
	assert_int_equal(d.got, MIG_MSG_HELLO);
	/* A different secret: the source learns it first, and says so. */
	assert_int_equal(handshake_pair(secret_a, secret_b, &d, err, sizeof(err)), -EACCES);
	assert_non_null(strstr(err, "does not know the secret"));
	assert_true(d.r < 0);
}

/* A source that does not know the secret: its proof is refused. */
static void test_handshake_impostor(void **state)
{
	int sv[2];
	pthread_t th;
	struct peer d;
	uint8_t h0[MIG_HELLO0_SIZE] = "NESTVMMG", h1[MIG_HELLO1_SIZE], proof[MIG_PROOF_SIZE] = {0};

	(void)state;
	h0[8] = MIG_PROTO_VERSION;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	d = (struct peer){.fd = sv[1], .secret = secret_a, .len = 32};
	assert_int_equal(pthread_create(&th, NULL, dest_thread, &d), 0);
	assert_int_equal(write(sv[0], h0, sizeof(h0)), sizeof(h0));
	assert_int_equal(read(sv[0], h1, sizeof(h1)), sizeof(h1));
	assert_memory_equal(h1, "NESTVMMG", 8);
	assert_int_equal(write(sv[0], proof, sizeof(proof)), sizeof(proof));
	pthread_join(th, NULL);
	close(sv[0]);
	assert_int_equal(d.r, -EACCES);
	assert_non_null(strstr(d.error, "the source does not know the secret"));
}

/* Not a migration stream at all, and another protocol version. */
static void test_handshake_garbage(void **state)
{
	int sv[2];
	pthread_t th;
	struct peer d;
	uint8_t junk[MIG_HELLO0_SIZE], h0[MIG_HELLO0_SIZE] = "NESTVMMG\x09", h1[MIG_HELLO1_SIZE];

	(void)state;
	memset(junk, 'G', sizeof(junk));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	d = (struct peer){.fd = sv[1], .secret = secret_a, .len = 32};
	assert_int_equal(pthread_create(&th, NULL, dest_thread, &d), 0);
	assert_int_equal(write(sv[0], junk, sizeof(junk)), sizeof(junk));
	pthread_join(th, NULL);
	close(sv[0]);
	assert_int_equal(d.r, -EPROTO);
	assert_non_null(strstr(d.error, "not answer as a nestvm migration stream"));

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	d = (struct peer){.fd = sv[1], .secret = secret_a, .len = 32};
	assert_int_equal(pthread_create(&th, NULL, dest_thread, &d), 0);
	assert_int_equal(write(sv[0], h0, sizeof(h0)), sizeof(h0));
	/* It says which version it speaks before it gives up. */
	assert_int_equal(read(sv[0], h1, sizeof(h1)), sizeof(h1));
	assert_int_equal(h1[8], MIG_PROTO_VERSION);
	pthread_join(th, NULL);
	close(sv[0]);
	assert_int_equal(d.r, -EPROTO);
	assert_non_null(strstr(d.error, "version 9"));
	assert_non_null(strstr(d.error, "a newer nestvm there"));

	/* Version 1 (HMAC-SHA256 frames, no PASS_ACK): an older source, refused by name. */
	h0[8] = 1;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	d = (struct peer){.fd = sv[1], .secret = secret_a, .len = 32};
	assert_int_equal(pthread_create(&th, NULL, dest_thread, &d), 0);
	assert_int_equal(write(sv[0], h0, sizeof(h0)), sizeof(h0));
	assert_int_equal(read(sv[0], h1, sizeof(h1)), sizeof(h1));
	pthread_join(th, NULL);
	close(sv[0]);
	assert_int_equal(d.r, -EPROTO);
	assert_non_null(strstr(d.error, "the source speaks migration protocol version 1, this "
	                                "nestvm 2 (an older nestvm there)"));
}

/* The session carries on in a new connection (another process, in nestvm receive). */
static void test_session_handover(void **state)
{
	struct membuf m = {0};
	struct mig_conn s, d1, d2;
	uint8_t session[MIG_SESSION_SIZE];
	enum mig_msg t;
	const uint8_t *p;
	size_t len;

	(void)state;
	assert_int_equal(mig_conn_init(&s, -1, &mem_ops, &m, true), 0);
	assert_int_equal(mig_conn_set_keys(&s, key_s2d, key_d2s), 0);
	assert_int_equal(mig_send(&s, MIG_MSG_GO, NULL, 0), 0);
	assert_int_equal(mig_send(&s, MIG_MSG_GO, NULL, 0), 0);
	assert_int_equal(mig_conn_init(&d1, -1, &mem_ops, &m, false), 0);
	assert_int_equal(mig_conn_set_keys(&d1, key_s2d, key_d2s), 0);
	assert_int_equal(mig_recv(&d1, &t, &p, &len), 0);
	mig_conn_export(&d1, session);
	assert_int_equal(mig_conn_init(&d2, -1, &mem_ops, &m, false), 0);
	assert_int_equal(mig_conn_import(&d2, session), 0);
	assert_int_equal(mig_recv(&d2, &t, &p, &len), 0);
	assert_int_equal(t, MIG_MSG_GO);
	/* The source's end cannot take the destination's session. */
	assert_int_equal(mig_conn_import(&s, session), -EINVAL);
	mig_conn_release(&s);
	mig_conn_release(&d1);
	mig_conn_release(&d2);
	free(m.buf);
}

static void test_hello(void **state)
{
	static const char def[] = "{\"name\": \"x\"}";
	struct mig_hello h = {.page_size = 4096,
	                      .ram_size = 64 << 20,
	                      .nr_vcpus = 2,
	                      .nested = true,
	                      .cpu_vendor = "AuthenticAMD",
	                      .cpu_signature = 0x830f10,
	                      .def = (const uint8_t *)def,
	                      .def_len = sizeof(def) - 1};
	uint8_t buf[MIG_HELLO_FIXED + sizeof(def)];
	struct mig_hello out;
	char why[160];
	size_t n = mig_hello_encode(&h, buf);

	(void)state;
	assert_int_equal(n, MIG_HELLO_FIXED + sizeof(def) - 1);
	assert_int_equal(mig_hello_decode(buf, n, &out, why, sizeof(why)), 0);
	assert_int_equal(out.ram_size, 64 << 20);
	assert_int_equal(out.nr_vcpus, 2);
	assert_true(out.nested);
	assert_string_equal(out.cpu_vendor, "AuthenticAMD");
	assert_int_equal(out.cpu_signature, 0x830f10);
	assert_memory_equal(out.def, def, out.def_len);
	/* Each field out of range is refused. */
	assert_int_equal(mig_hello_decode(buf, n - 1, &out, why, sizeof(why)), -EPROTO);
	assert_int_equal(mig_hello_decode(buf, MIG_HELLO_FIXED - 1, &out, why, sizeof(why)),
	                 -EPROTO);
	buf[4] = 1; /* RAM not a whole number of pages */
	assert_int_equal(mig_hello_decode(buf, n, &out, why, sizeof(why)), -EPROTO);
	buf[4] = 0;
	buf[16] = 2; /* nesting */
	assert_int_equal(mig_hello_decode(buf, n, &out, why, sizeof(why)), -EPROTO);
	buf[16] = 1;
	buf[20] = 0x1b; /* vendor */
	assert_int_equal(mig_hello_decode(buf, n, &out, why, sizeof(why)), -EPROTO);
	buf[20] = 'A';
	buf[12] = 0; /* vCPUs */
	assert_int_equal(mig_hello_decode(buf, n, &out, why, sizeof(why)), -EPROTO);
	buf[12] = 2;
	assert_int_equal(mig_hello_decode(buf, n, &out, why, sizeof(why)), 0);
}

/* ---- files and sockets, in a fresh directory ---- */

static char dir[64];

static int setup_dir(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/nestvm-test-mig.XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void write_file(const char *path, const char *data, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, strlen(data)), (ssize_t)strlen(data));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static void test_secret_file(void **state)
{
	char path[128], link[128], why[256];
	uint8_t buf[MIG_SECRET_MAX];

	(void)state;
	snprintf(path, sizeof(path), "%s/secret", dir);
	write_file(path, "0123456789abcdef0123456789abcdef", 0600);
	assert_int_equal(mig_secret_read(path, buf, sizeof(buf), why, sizeof(why)), 32);
	assert_memory_equal(buf, "0123456789abcdef", 16);
	assert_int_equal(chmod(path, 0640), 0);
	assert_int_equal(mig_secret_read(path, buf, sizeof(buf), why, sizeof(why)), -EPERM);
	assert_non_null(strstr(why, "chmod 600"));
	assert_int_equal(chmod(path, 0400), 0);
	assert_int_equal(mig_secret_read(path, buf, sizeof(buf), why, sizeof(why)), 32);
	snprintf(link, sizeof(link), "%s/link", dir);
	assert_int_equal(symlink(path, link), 0);
	assert_int_equal(mig_secret_read(link, buf, sizeof(buf), why, sizeof(why)), -ELOOP);
	assert_non_null(strstr(why, "symbolic link"));
	snprintf(path, sizeof(path), "%s/short", dir);
	write_file(path, "short", 0600);
	assert_int_equal(mig_secret_read(path, buf, sizeof(buf), why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "holds 5 bytes"));
	assert_int_equal(mig_secret_read(dir, buf, sizeof(buf), why, sizeof(why)), -EINVAL);
}

static void test_addresses(void **state)
{
	struct mig_addr a;
	char why[256], out[160];

	(void)state;
	assert_int_equal(mig_addr_parse("tcp:127.0.0.1:4444", false, &a, why, sizeof(why)), 0);
	mig_addr_format(&a, out, sizeof(out));
	assert_string_equal(out, "tcp:127.0.0.1:4444");
	assert_int_equal(mig_addr_parse("tcp:[::1]:7", false, &a, why, sizeof(why)), 0);
	mig_addr_format(&a, out, sizeof(out));
	assert_string_equal(out, "tcp:[::1]:7");
	assert_int_equal(mig_addr_parse("unix:/run/x.sock", false, &a, why, sizeof(why)), 0);
	assert_true(a.is_unix);
	assert_string_equal(a.path, "/run/x.sock");
	assert_int_equal(mig_addr_parse("unix:x.sock", false, &a, why, sizeof(why)), -EINVAL);
	assert_int_equal(mig_addr_parse("tcp:127.0.0.1", false, &a, why, sizeof(why)), -EINVAL);
	assert_int_equal(mig_addr_parse("tcp:127.0.0.1:65536", false, &a, why, sizeof(why)),
	                 -EINVAL);
	assert_int_equal(mig_addr_parse("tcp:[::1:7", false, &a, why, sizeof(why)), -EINVAL);
	assert_int_equal(mig_addr_parse("udp:1.2.3.4:5", false, &a, why, sizeof(why)), -EINVAL);
	assert_int_equal(mig_addr_parse("tcp:localhost:5", false, &a, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "numeric"));
	assert_int_equal(mig_addr_parse("tcp:localhost:5", true, &a, why, sizeof(why)), 0);
}

static void test_listen_connect(void **state)
{
	struct mig_addr a;
	char why[256], peer[160], path[128];
	struct stat st;
	int lfd, cfd, afd;

	(void)state;
	/* A socket directly in /tmp is one others could reach first: refused. */
	assert_int_equal(
	    mig_addr_parse("unix:/tmp/nestvm-mig-test.sock", false, &a, why, sizeof(why)), 0);
	assert_true(mig_listen(&a, why, sizeof(why)) < 0);
	assert_non_null(strstr(why, "only you control"));
	/* In a private directory: mode 0600, and a connection goes through. */
	snprintf(path, sizeof(path), "unix:%s/m.sock", dir);
	assert_int_equal(mig_addr_parse(path, false, &a, why, sizeof(why)), 0);
	lfd = mig_listen(&a, why, sizeof(why));
	assert_true(lfd >= 0);
	assert_int_equal(stat(a.path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	cfd = mig_connect(&a, 1000, -1, why, sizeof(why));
	assert_true(cfd >= 0);
	afd = mig_accept(lfd, 1000, -1, peer, sizeof(peer));
	assert_true(afd >= 0);
	close(afd);
	close(cfd);
	close(lfd);
	/* TCP on loopback, port 0: the bound port comes back. */
	assert_int_equal(mig_addr_parse("tcp:127.0.0.1:0", false, &a, why, sizeof(why)), 0);
	lfd = mig_listen(&a, why, sizeof(why));
	assert_true(lfd >= 0);
	mig_addr_format(&a, peer, sizeof(peer));
	assert_string_not_equal(peer, "tcp:127.0.0.1:0");
	cfd = mig_connect(&a, 1000, -1, why, sizeof(why));
	assert_true(cfd >= 0);
	afd = mig_accept(lfd, 1000, -1, peer, sizeof(peer));
	assert_true(afd >= 0);
	assert_non_null(strstr(peer, "tcp:127.0.0.1:"));
	close(afd);
	close(cfd);
	/* Nobody connects: accept times out. */
	assert_int_equal(mig_accept(lfd, 50, -1, peer, sizeof(peer)), -ETIMEDOUT);
	close(lfd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_frames_intact),
	    cmocka_unit_test(test_frames_pieces),
	    cmocka_unit_test(test_frames_bit_flips),
	    cmocka_unit_test(test_frames_truncated),
	    cmocka_unit_test(test_frames_reordered_replayed),
	    cmocka_unit_test(test_frame_headers),
	    cmocka_unit_test(test_frame_huge_length),
	    cmocka_unit_test(test_error_frame),
	    cmocka_unit_test(test_handshake),
	    cmocka_unit_test(test_handshake_impostor),
	    cmocka_unit_test(test_handshake_garbage),
	    cmocka_unit_test(test_session_handover),
	    cmocka_unit_test(test_hello),
	    cmocka_unit_test_setup_teardown(test_secret_file, setup_dir, teardown_dir),
	    cmocka_unit_test(test_addresses),
	    cmocka_unit_test_setup_teardown(test_listen_connect, setup_dir, teardown_dir),
	};

	return cmocka_run_group_tests_name("migrate_stream", tests, NULL, NULL);
}
