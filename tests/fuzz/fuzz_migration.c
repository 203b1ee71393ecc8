/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the destination's side of the live migration stream
 * (snapshot/migrate_stream.h, snapshot/migrate.h), which reads whatever a
 * network peer sends. The first byte picks how the rest is used:
 *
 *   0  raw bytes into the handshake: only a source that knows the secret
 *      gets through, so anything else must be refused;
 *   1  records (u8 type, le16 length, payload) sealed into frames with the
 *      session's keys and sequence numbers, as a source that knows the
 *      secret would send them: the destination's frame checks, HELLO and
 *      its definition (vm_def_parse()), and the sink (pages into a small
 *      guest RAM, each address checked; the state bounded and closed by
 *      STATE_END; the state parsed as a snapshot) must each accept or
 *      refuse with a reason, and nothing lands outside guest RAM;
 *   2  raw bytes into a keyed connection: without the keys no frame may be
 *      accepted.
 */
#include "core/guest_mem.h"
#include "manager/vm_def.h"
#include "snapshot/migrate.h"
#include "snapshot/migrate_stream.h"
#include "snapshot/vm_snapshot.h"

#include "fuzz_common.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_RAM (4u << 20)

struct membuf {
	uint8_t *buf;
	size_t len, cap, pos;
};

/* What a connection reads from, and where what it writes goes (nowhere if out is NULL). */
struct duplex {
	struct membuf *in, *out;
};

static ssize_t mem_read(void *opaque, void *buf, size_t len)
{
	struct membuf *m = ((struct duplex *)opaque)->in;
	size_t n = m->len - m->pos < len ? m->len - m->pos : len;

	memcpy(buf, m->buf + m->pos, n);
	m->pos += n;
	return (ssize_t)n;
}

static ssize_t mem_write(void *opaque, const void *buf, size_t len)
{
	struct membuf *m = ((struct duplex *)opaque)->out;

	if (!m) /* what the destination answers goes nowhere */
		return (ssize_t)len;
	if (m->len + len > m->cap) {
		size_t cap = (m->len + len) * 2;
		uint8_t *n = realloc(m->buf, cap);

		FZ_CHECK(n);
		m->buf = n;
		m->cap = cap;
	}
	memcpy(m->buf + m->len, buf, len);
	m->len += len;
	return (ssize_t)len;
}

static const struct mig_io_ops mem_ops = {mem_read, mem_write};
static const uint8_t key_s2d[MIG_KEY_SIZE] = {0x6e, 0x76};
static const uint8_t key_d2s[MIG_KEY_SIZE] = {0x6d, 0x67};

/* Mode 0: the handshake on arbitrary bytes refuses, unless it got a valid proof (it cannot). */
static void fuzz_handshake(const uint8_t *data, size_t size)
{
	static const uint8_t secret[] = "fuzzing secret, 32 bytes long!!";
	struct membuf in = {(uint8_t *)data, size, size, 0};
	struct duplex io = {&in, NULL};
	struct mig_conn c;
	int r;

	FZ_CHECK(mig_conn_init(&c, -1, &mem_ops, &io, false) == 0);
	r = mig_handshake(&c, secret, sizeof(secret) - 1);
	FZ_CHECK(r < 0 && c.error[0]);
	mig_conn_release(&c);
}

/* Seal mode 1's records into frames as the source would. */
static void fuzz_seal(const uint8_t *data, size_t size, struct membuf *out)
{
	struct duplex io = {NULL, out};
	struct mig_conn s;
	size_t off = 0;

	FZ_CHECK(mig_conn_init(&s, -1, &mem_ops, &io, true) == 0);
	FZ_CHECK(mig_conn_set_keys(&s, key_s2d, key_d2s) == 0);
	while (size - off >= 3) {
		uint8_t type = data[off];
		size_t len = (size_t)data[off + 1] | (size_t)data[off + 2] << 8;
		char why[160];

		off += 3;
		if (len > size - off)
			len = size - off;
		/* Only what passes the header checks can be sent; the rest is the unit tests'. */
		if (mig_frame_header_check(type, 0, (uint32_t)len, false, why, sizeof(why)) == 0)
			FZ_CHECK(mig_send(&s, (enum mig_msg)type, data + off, len) == 0);
		off += len;
	}
	mig_conn_release(&s);
}

/* The destination on sealed frames: HELLO first, then the sink until the state is complete. */
static void fuzz_destination(struct membuf *in, struct guest_mem *mem)
{
	struct migrate_sink sink = {.mem = mem};
	struct duplex io = {in, NULL};
	struct mig_conn d;
	bool hello = false;

	FZ_CHECK(mig_conn_init(&d, -1, &mem_ops, &io, false) == 0);
	FZ_CHECK(mig_conn_set_keys(&d, key_s2d, key_d2s) == 0);
	for (;;) {
		enum mig_msg t;
		const uint8_t *p;
		size_t len;
		char why[256] = "";
		int r = mig_recv(&d, &t, &p, &len);

		if (r < 0) {
			FZ_CHECK(d.error[0]);
			break;
		}
		FZ_CHECK(len <= MIG_FRAME_MAX);
		if (!hello) {
			struct mig_hello h;
			struct vm_def def;
			struct mgr_err err;

			if (t != MIG_MSG_HELLO ||
			    mig_hello_decode(p, len, &h, why, sizeof(why)) < 0)
				break;
			if (vm_def_parse((const char *)h.def, h.def_len, "fuzz", &def, &err) == 0)
				vm_def_clear(&def);
			else
				FZ_CHECK(err.msg[0]);
			hello = true;
			continue;
		}
		if (t == MIG_MSG_PAGES && len >= MIG_PAGES_HEADER) {
			uint64_t gpa;
			uint32_t count;

			memcpy(&gpa, p, 8);
			memcpy(&count, p + 8, 4);
			r = migrate_sink_frame(&sink, t, p, len, why, sizeof(why));
			/* Accepted pages lie in guest RAM. */
			FZ_CHECK(r < 0 || (gpa % MIG_PAGE_SIZE == 0 && count && gpa < FZ_RAM &&
			                   (uint64_t)count * MIG_PAGE_SIZE <= FZ_RAM - gpa));
		} else {
			r = migrate_sink_frame(&sink, t, p, len, why, sizeof(why));
		}
		FZ_CHECK(r >= 0 || why[0]);
		FZ_CHECK(sink.state_len <= SNAP_MAX_FILE_SIZE);
		if (r < 0)
			break;
		if (r == 1) {
			struct snap_reader sr;
			struct snapshot_machine m;

			FZ_CHECK(sink.state_done);
			if (vm_snapshot_parse(&sr, sink.state, sink.state_len, "fuzz", &m) == 0)
				snap_reader_release(&sr);
			else
				FZ_CHECK(sr.error[0]);
			break;
		}
	}
	migrate_sink_release(&sink);
	mig_conn_release(&d);
}

/* Mode 2: unsealed bytes into a keyed connection: nothing is accepted. */
static void fuzz_forged(const uint8_t *data, size_t size)
{
	struct membuf in = {(uint8_t *)data, size, size, 0};
	struct duplex io = {&in, NULL};
	struct mig_conn d;
	enum mig_msg t;
	const uint8_t *p;
	size_t len;

	FZ_CHECK(mig_conn_init(&d, -1, &mem_ops, &io, false) == 0);
	FZ_CHECK(mig_conn_set_keys(&d, key_s2d, key_d2s) == 0);
	FZ_CHECK(mig_recv(&d, &t, &p, &len) < 0);
	mig_conn_release(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct guest_mem mem;
	struct membuf sealed = {0};

	if (!mem.ram)
		FZ_CHECK(guest_mem_init(&mem, FZ_RAM, 0) == 0);
	if (size < 1)
		return 0;
	switch (data[0] % 3) {
	case 0:
		fuzz_handshake(data + 1, size - 1);
		break;
	case 1:
		sealed.buf = malloc(64);
		sealed.cap = 64;
		FZ_CHECK(sealed.buf);
		fuzz_seal(data + 1, size - 1, &sealed);
		fuzz_destination(&sealed, &mem);
		free(sealed.buf);
		break;
	default:
		fuzz_forged(data + 1, size - 1);
		break;
	}
	return 0;
}
