/* SPDX-License-Identifier: MIT */
/* The live migration stream: handshake, frames, addresses (snapshot/migrate_stream.h). */
#include "snapshot/migrate_stream.h"

#include "core/sandbox.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define MIG_DEFAULT_TIMEOUT_MS 30000
#define MIG_LABEL_DEST "nestvm-migrate-2 dest"
#define MIG_LABEL_SOURCE "nestvm-migrate-2 source"
#define MIG_LABEL_S2D "nestvm-migrate-2 key s2d"
#define MIG_LABEL_D2S "nestvm-migrate-2 key d2s"
#define MIG_IV_SIZE 12 /* GCM's 96-bit nonce: le64 seq, le32 0 */

/* HMAC-SHA256, for the handshake's proofs and the session keys. */
struct mig_mac {
	EVP_MAC *mac;
	EVP_MAC_CTX *ctx;
};

/* AES-256-GCM keyed once for one direction of one connection. */
struct mig_aead {
	EVP_CIPHER_CTX *ctx;
	bool encrypt;
};

/* Which end may send each type, and its payload bounds. */
struct mig_msg_desc {
	const char *name;
	bool from_source;
	uint32_t min_len, max_len;
};

static const struct mig_msg_desc mig_msgs[MIG_MSG_MAX + 1] = {
    [MIG_MSG_HELLO] = {"HELLO", true, MIG_HELLO_FIXED, MIG_HELLO_FIXED + MIG_DEF_MAX},
    [MIG_MSG_ACCEPT] = {"ACCEPT", false, 0, 0},
    [MIG_MSG_PAGES] = {"PAGES", true, MIG_PAGES_HEADER, MIG_FRAME_MAX},
    [MIG_MSG_PASS] = {"PASS", true, MIG_PASS_SIZE, MIG_PASS_SIZE},
    [MIG_MSG_STATE] = {"STATE", true, 1, MIG_FRAME_MAX},
    [MIG_MSG_STATE_END] = {"STATE_END", true, MIG_STATE_END_SIZE, MIG_STATE_END_SIZE},
    [MIG_MSG_READY] = {"READY", false, 0, 0},
    [MIG_MSG_GO] = {"GO", true, 0, 0},
    [MIG_MSG_RUNNING] = {"RUNNING", false, 0, 0},
    [MIG_MSG_ERROR] = {"ERROR", true, 4, 4 + MIG_ERROR_TEXT_MAX},
    [MIG_MSG_PASS_ACK] = {"PASS_ACK", false, MIG_PASS_ACK_SIZE, MIG_PASS_ACK_SIZE},
};

const char *mig_msg_name(unsigned int type)
{
	return type && type <= MIG_MSG_MAX ? mig_msgs[type].name : "unknown";
}

static void put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t get_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_le64(const uint8_t *p)
{
	return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

/* Record the first error (sticky) with its sentence; returns @err. */
static int mig_fail(struct mig_conn *c, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int mig_fail(struct mig_conn *c, int err, const char *fmt, ...)
{
	va_list ap;

	if (c->err)
		return c->err;
	c->err = err;
	va_start(ap, fmt);
	vsnprintf(c->error, sizeof(c->error), fmt, ap);
	va_end(ap);
	return err;
}

/* ---- libcrypto, loaded when a migration needs it ---- */

/*
 * Linked, libcrypto cost every start of the monitor ~1 ms of CPU, 137 page
 * faults and 1.4 MiB of RSS (its relocations: an empty program linked with
 * it, 0.54 -> 1.52 ms task-clock), for the migrations alone. So its
 * functions are looked up with dlopen()/dlsym() when the first migration
 * needs them: in the handshake of `run --incoming` and `nestvm receive`
 * (before the sandbox), and by a managed monitor before sandbox_init(), as
 * a migration may come at any time and the filters refuse dlopen()'s code
 * mappings. The table names each function once; each pointer has the type
 * of the header's declaration.
 */
#define MIG_LIBCRYPTO "libcrypto.so.3" /* the OpenSSL 3 ABI, whose headers we build with */

#define MIG_OSSL_FUNCS(X)                                                                          \
	X(EVP_MAC_fetch)                                                                           \
	X(EVP_MAC_free)                                                                            \
	X(EVP_MAC_CTX_new)                                                                         \
	X(EVP_MAC_CTX_free)                                                                        \
	X(EVP_MAC_init)                                                                            \
	X(EVP_MAC_update)                                                                          \
	X(EVP_MAC_final)                                                                           \
	X(OSSL_PARAM_construct_utf8_string)                                                        \
	X(OSSL_PARAM_construct_end)                                                                \
	X(EVP_CIPHER_CTX_new)                                                                      \
	X(EVP_CIPHER_CTX_free)                                                                     \
	X(EVP_CIPHER_CTX_ctrl)                                                                     \
	X(EVP_aes_256_gcm)                                                                         \
	X(EVP_CipherInit_ex)                                                                       \
	X(EVP_CipherUpdate)                                                                        \
	X(EVP_CipherFinal_ex)

#define MIG_OSSL_MEMBER(f) __typeof__(f) *f;
static struct {
	MIG_OSSL_FUNCS(MIG_OSSL_MEMBER)
	bool loaded; /* never unloaded */
	char error[200];
} ossl;

int mig_crypto_load(void)
{
	struct sandbox_state sb;
	const char *missing = NULL;
	void *lib;

	if (ossl.loaded)
		return 0;
	/* dlopen() maps code: a confined thread's filter would end the process. */
	sandbox_get_state(&sb);
	if (sb.seccomp) {
		snprintf(
		    ossl.error, sizeof(ossl.error),
		    "%s (AES-256-GCM, HMAC-SHA256) was not loaded before the sandbox was set up",
		    MIG_LIBCRYPTO);
		return -ENOSYS;
	}
	lib = dlopen(MIG_LIBCRYPTO, RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		snprintf(ossl.error, sizeof(ossl.error), "cannot load %s (install OpenSSL 3): %s",
		         MIG_LIBCRYPTO, dlerror());
		return -ENOENT;
	}
	/* POSIX's sanctioned way of storing dlsym()'s result in a function pointer. */
#define MIG_OSSL_LOOKUP(f)                                                                         \
	if (!(*(void **)&ossl.f = dlsym(lib, #f)) && !missing)                                     \
		missing = #f;
	MIG_OSSL_FUNCS(MIG_OSSL_LOOKUP)
#undef MIG_OSSL_LOOKUP
	if (missing) {
		snprintf(ossl.error, sizeof(ossl.error), "%s has no %s (not OpenSSL 3?)",
		         MIG_LIBCRYPTO, missing);
		dlclose(lib);
		return -ENOENT;
	}
	ossl.loaded = true;
	return 0;
}

const char *mig_crypto_error(void)
{
	return ossl.error[0] ? ossl.error : "no error";
}

/* Constant-time comparison of two tags: the time must not say where they differ. */
static bool mig_tag_equal(const uint8_t *a, const uint8_t *b, size_t n)
{
	volatile uint8_t diff = 0;

	for (size_t i = 0; i < n; i++)
		diff |= a[i] ^ b[i];
	return diff == 0;
}

/* ---- HMAC-SHA256 ---- */

static void mig_mac_free(struct mig_mac *m)
{
	if (!m)
		return;
	ossl.EVP_MAC_CTX_free(m->ctx);
	ossl.EVP_MAC_free(m->mac);
	free(m);
}

static struct mig_mac *mig_mac_new(const uint8_t *key, size_t len)
{
	char digest[] = "SHA256";
	OSSL_PARAM params[] = {
	    ossl.OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
	    ossl.OSSL_PARAM_construct_end(),
	};
	struct mig_mac *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	m->mac = ossl.EVP_MAC_fetch(NULL, "HMAC", NULL);
	m->ctx = m->mac ? ossl.EVP_MAC_CTX_new(m->mac) : NULL;
	if (!m->ctx || !ossl.EVP_MAC_init(m->ctx, key, len, params)) {
		mig_mac_free(m);
		return NULL;
	}
	return m;
}

/* HMAC over the concatenation of @n parts; the context keeps its key. */
static int mig_mac_parts(struct mig_mac *m, const void *const *parts, const size_t *lens,
                         unsigned int n, uint8_t out[MIG_PROOF_SIZE])
{
	size_t outl = 0;

	if (!ossl.EVP_MAC_init(m->ctx, NULL, 0, NULL))
		return -EIO;
	for (unsigned int i = 0; i < n; i++) {
		if (lens[i] && !ossl.EVP_MAC_update(m->ctx, parts[i], lens[i]))
			return -EIO;
	}
	if (!ossl.EVP_MAC_final(m->ctx, out, &outl, MIG_PROOF_SIZE) || outl != MIG_PROOF_SIZE)
		return -EIO;
	return 0;
}

/* HMAC(secret, label Ns Nd): the proofs and the session keys. */
static int mig_derive(const uint8_t *secret, size_t len, const char *label,
                      const uint8_t ns[MIG_NONCE_SIZE], const uint8_t nd[MIG_NONCE_SIZE],
                      uint8_t out[MIG_PROOF_SIZE])
{
	struct mig_mac *m = mig_mac_new(secret, len);
	const void *parts[] = {label, ns, nd};
	const size_t lens[] = {strlen(label), MIG_NONCE_SIZE, MIG_NONCE_SIZE};
	int r;

	if (!m)
		return -ENOMEM;
	r = mig_mac_parts(m, parts, lens, 3, out);
	mig_mac_free(m);
	return r;
}

/* ---- AES-256-GCM ---- */

static void mig_aead_free(struct mig_aead *a)
{
	if (!a)
		return;
	ossl.EVP_CIPHER_CTX_free(a->ctx);
	free(a);
}

/* A context for one direction, keyed with @key (MIG_KEY_SIZE bytes); NULL if OpenSSL fails. */
static struct mig_aead *mig_aead_new(const uint8_t *key, bool encrypt)
{
	struct mig_aead *a = calloc(1, sizeof(*a));
	int ok;

	if (!a)
		return NULL;
	a->encrypt = encrypt;
	a->ctx = ossl.EVP_CIPHER_CTX_new();
	ok = a->ctx != NULL;
	/* The key schedule once; each frame then sets only its nonce. */
	if (ok)
		ok = ossl.EVP_CipherInit_ex(a->ctx, ossl.EVP_aes_256_gcm(), NULL, NULL, NULL,
		                            encrypt);
	if (ok)
		ok = ossl.EVP_CIPHER_CTX_ctrl(a->ctx, EVP_CTRL_GCM_SET_IVLEN, MIG_IV_SIZE, NULL);
	if (ok)
		ok = ossl.EVP_CipherInit_ex(a->ctx, NULL, NULL, key, NULL, encrypt);
	if (!ok) {
		mig_aead_free(a);
		return NULL;
	}
	return a;
}

/* Start frame @seq: its nonce, then the 8-byte header @hdr as additional data. */
static bool mig_aead_begin(struct mig_aead *a, uint64_t seq, const uint8_t *hdr)
{
	uint8_t iv[MIG_IV_SIZE] = {0};
	int outl;

	for (int i = 0; i < 8; i++)
		iv[i] = (uint8_t)(seq >> (8 * i));
	return ossl.EVP_CipherInit_ex(a->ctx, NULL, NULL, NULL, iv, a->encrypt) == 1 &&
	       ossl.EVP_CipherUpdate(a->ctx, NULL, &outl, hdr, MIG_FRAME_HEADER) == 1;
}

/* @len bytes of @in through the cipher into @out (the same buffer is fine). */
static bool mig_aead_update(struct mig_aead *a, uint8_t *out, const uint8_t *in, size_t len)
{
	while (len) {
		int n = len > (1u << 30) ? 1 << 30 : (int)len, outl = 0;

		if (ossl.EVP_CipherUpdate(a->ctx, out, &outl, in, n) != 1 || outl != n)
			return false;
		out += n;
		in += n;
		len -= (size_t)n;
	}
	return true;
}

/* The sealing end writes the tag to @tag; the opening end checks it. */
static bool mig_aead_finish(struct mig_aead *a, uint8_t tag[MIG_TAG_SIZE])
{
	uint8_t none[16];
	int outl = 0;

	if (!a->encrypt &&
	    ossl.EVP_CIPHER_CTX_ctrl(a->ctx, EVP_CTRL_GCM_SET_TAG, MIG_TAG_SIZE, tag) != 1)
		return false;
	if (ossl.EVP_CipherFinal_ex(a->ctx, none, &outl) != 1)
		return false;
	return !a->encrypt ||
	       ossl.EVP_CIPHER_CTX_ctrl(a->ctx, EVP_CTRL_GCM_GET_TAG, MIG_TAG_SIZE, tag) == 1;
}

/* ---- moving bytes ---- */

/* Wait until @fd is ready for @events, the cancel eventfd fires, or the timeout passes. */
static int mig_wait(struct mig_conn *c, short events)
{
	struct pollfd p[2] = {{.fd = c->fd, .events = events},
	                      {.fd = c->cancel_fd, .events = POLLIN}};

	struct timespec t0, t1;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		int n = poll(p, c->cancel_fd >= 0 ? 2 : 1, c->timeout_ms);

		clock_gettime(CLOCK_MONOTONIC, &t1);
		c->wait_us[events == POLLOUT] += (uint64_t)((t1.tv_sec - t0.tv_sec) * 1000000 +
		                                            (t1.tv_nsec - t0.tv_nsec) / 1000);
		t0 = t1;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ETIMEDOUT;
		if (c->cancel_fd >= 0 && (p[1].revents & POLLIN))
			return -ECANCELED;
		return 0;
	}
}

static const char *mig_io_what(int err)
{
	switch (err) {
	case -ETIMEDOUT:
		return "the other end sent nothing in time";
	case -ECANCELED:
		return "cancelled";
	case -ECONNRESET:
	case -EPIPE:
		return "the connection was cut";
	default:
		return strerror(-err);
	}
}

static int mig_write_all(struct mig_conn *c, const uint8_t *p, size_t len)
{
	while (len) {
		ssize_t n;

		if (c->io) {
			n = c->io->write(c->io_opaque, p, len);
		} else {
			n = send(c->fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (n < 0)
				n = -errno;
		}
		if (n == -EINTR)
			continue;
		if (n == -EAGAIN || n == -EWOULDBLOCK) {
			int r = mig_wait(c, POLLOUT);

			if (r < 0)
				return mig_fail(c, r, "sending: %s", mig_io_what(r));
			continue;
		}
		if (n <= 0)
			return mig_fail(c, n ? (int)n : -EPIPE, "sending: %s",
			                mig_io_what(n ? (int)n : -EPIPE));
		p += n;
		len -= (size_t)n;
		c->bytes_tx += (uint64_t)n;
	}
	return 0;
}

/* Exactly @len bytes; the end of the stream in the middle is an error (truncated). */
static int mig_read_all(struct mig_conn *c, uint8_t *p, size_t len, const char *what)
{
	while (len) {
		ssize_t n;

		if (c->io) {
			n = c->io->read(c->io_opaque, p, len);
		} else {
			n = recv(c->fd, p, len, MSG_DONTWAIT);
			if (n < 0)
				n = -errno;
		}
		if (n == -EINTR)
			continue;
		if (n == -EAGAIN || n == -EWOULDBLOCK) {
			int r = mig_wait(c, POLLIN);

			if (r < 0)
				return mig_fail(c, r, "receiving %s: %s", what, mig_io_what(r));
			continue;
		}
		if (n == 0)
			return mig_fail(c, -ECONNRESET,
			                "receiving %s: the stream ended (the connection was cut)",
			                what);
		if (n < 0)
			return mig_fail(c, (int)n, "receiving %s: %s", what, mig_io_what((int)n));
		p += n;
		len -= (size_t)n;
		c->bytes_rx += (uint64_t)n;
	}
	return 0;
}

/* ---- the connection ---- */

int mig_conn_init(struct mig_conn *c, int fd, const struct mig_io_ops *io, void *io_opaque,
                  bool is_source)
{
	memset(c, 0, sizeof(*c));
	c->fd = fd;
	c->io = io;
	c->io_opaque = io_opaque;
	c->cancel_fd = -1;
	c->timeout_ms = MIG_DEFAULT_TIMEOUT_MS;
	c->is_source = is_source;
	c->tx = malloc(MIG_FRAME_HEADER + MIG_FRAME_MAX + MIG_TAG_SIZE);
	c->rx = malloc(MIG_FRAME_MAX + MIG_TAG_SIZE);
	if (!c->tx || !c->rx) {
		mig_conn_release(c);
		return -ENOMEM;
	}
	if (fd >= 0 && !io) {
		int fl = fcntl(fd, F_GETFL), one = 1;

		if (fl >= 0)
			(void)fcntl(fd, F_SETFL, fl | O_NONBLOCK);
		/* Small control frames (READY, GO) must not wait for Nagle. */
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	return 0;
}

void mig_conn_release(struct mig_conn *c)
{
	explicit_bzero(c->key_s2d, sizeof(c->key_s2d));
	explicit_bzero(c->key_d2s, sizeof(c->key_d2s));
	mig_aead_free(c->aead_tx);
	mig_aead_free(c->aead_rx);
	c->aead_tx = c->aead_rx = NULL;
	free(c->tx);
	free(c->rx);
	c->tx = c->rx = NULL;
	if (c->fd >= 0 && !c->io) {
		/*
		 * A broken stream is reset, not closed gracefully: data still queued
		 * to a peer that stopped reading would otherwise hold the FIN back.
		 */
		struct linger lg = {.l_onoff = 1, .l_linger = 0};

		if (c->err)
			(void)setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		close(c->fd);
	}
	c->fd = -1;
	c->keyed = false;
}

int mig_conn_set_keys(struct mig_conn *c, const uint8_t s2d[MIG_KEY_SIZE],
                      const uint8_t d2s[MIG_KEY_SIZE])
{
	if (mig_crypto_load() < 0)
		return mig_fail(c, -ENOSYS, "%s", mig_crypto_error());
	mig_aead_free(c->aead_tx);
	mig_aead_free(c->aead_rx);
	c->aead_tx = mig_aead_new(c->is_source ? s2d : d2s, true);
	c->aead_rx = mig_aead_new(c->is_source ? d2s : s2d, false);
	if (!c->aead_tx || !c->aead_rx)
		return mig_fail(c, -ENOMEM, "cannot set up AES-256-GCM (OpenSSL)");
	memcpy(c->key_s2d, s2d, MIG_KEY_SIZE);
	memcpy(c->key_d2s, d2s, MIG_KEY_SIZE);
	c->seq_tx = c->seq_rx = 0;
	c->keyed = true;
	return 0;
}

#define MIG_SESSION_MAGIC "NVMSESS1"

void mig_conn_export(const struct mig_conn *c, uint8_t out[MIG_SESSION_SIZE])
{
	memcpy(out, MIG_SESSION_MAGIC, 8);
	put_le32(out + 8, c->is_source);
	put_le64(out + 12, c->seq_tx);
	put_le64(out + 20, c->seq_rx);
	memcpy(out + 28, c->key_s2d, MIG_KEY_SIZE);
	memcpy(out + 28 + MIG_KEY_SIZE, c->key_d2s, MIG_KEY_SIZE);
}

int mig_conn_import(struct mig_conn *c, const uint8_t in[MIG_SESSION_SIZE])
{
	int r;

	if (memcmp(in, MIG_SESSION_MAGIC, 8) != 0 || get_le32(in + 8) != (uint32_t)c->is_source)
		return mig_fail(c, -EINVAL, "not a migration session of this end");
	r = mig_conn_set_keys(c, in + 28, in + 28 + MIG_KEY_SIZE);
	if (r < 0)
		return r;
	c->seq_tx = get_le64(in + 12);
	c->seq_rx = get_le64(in + 20);
	return 0;
}

/* The fixed start of HELLO0 and HELLO1. */
static void mig_hello_head(uint8_t *p)
{
	memcpy(p, MIG_MAGIC, 8);
	put_le32(p + 8, MIG_PROTO_VERSION);
	put_le32(p + 12, 0);
}

/* Is @p the start of a HELLO0/HELLO1 of our version? 0 or -EPROTO. */
static int mig_hello_head_check(struct mig_conn *c, const uint8_t *p, const char *who)
{
	uint32_t version = get_le32(p + 8);

	if (memcmp(p, MIG_MAGIC, 8) != 0)
		return mig_fail(c, -EPROTO, "%s did not answer as a nestvm migration stream", who);
	if (version != MIG_PROTO_VERSION)
		return mig_fail(c, -EPROTO,
		                "%s speaks migration protocol version %u, this nestvm %u (%s "
		                "nestvm there): both ends need the same version",
		                who, version, MIG_PROTO_VERSION,
		                version < MIG_PROTO_VERSION ? "an older" : "a newer");
	if (get_le32(p + 12) != 0)
		return mig_fail(c, -EPROTO, "%s sent flags this nestvm does not know", who);
	return 0;
}

static int mig_keys(struct mig_conn *c, const uint8_t *secret, size_t len, const uint8_t *ns,
                    const uint8_t *nd)
{
	uint8_t s2d[MIG_KEY_SIZE], d2s[MIG_KEY_SIZE];
	int r = mig_derive(secret, len, MIG_LABEL_S2D, ns, nd, s2d);

	if (r == 0)
		r = mig_derive(secret, len, MIG_LABEL_D2S, ns, nd, d2s);
	if (r == 0)
		r = mig_conn_set_keys(c, s2d, d2s);
	explicit_bzero(s2d, sizeof(s2d));
	explicit_bzero(d2s, sizeof(d2s));
	return r < 0 ? mig_fail(c, r, "cannot derive the session keys") : 0;
}

static int mig_handshake_source(struct mig_conn *c, const uint8_t *secret, size_t len)
{
	uint8_t h0[MIG_HELLO0_SIZE], h1[MIG_HELLO1_SIZE], proof[MIG_PROOF_SIZE];
	const uint8_t *ns = h0 + 16, *nd = h1 + 16;
	int r;

	mig_hello_head(h0);
	if (getrandom(h0 + 16, MIG_NONCE_SIZE, 0) != MIG_NONCE_SIZE)
		return mig_fail(c, -EIO, "getrandom: %s", strerror(errno));
	r = mig_write_all(c, h0, sizeof(h0));
	if (r == 0)
		r = mig_read_all(c, h1, sizeof(h1), "the destination's greeting");
	if (r == 0)
		r = mig_hello_head_check(c, h1, "the destination");
	if (r == 0 && mig_derive(secret, len, MIG_LABEL_DEST, ns, nd, proof) < 0)
		r = mig_fail(c, -EIO, "HMAC-SHA256 failed (OpenSSL)");
	if (r == 0 && !mig_tag_equal(proof, h1 + 16 + MIG_NONCE_SIZE, MIG_PROOF_SIZE))
		r = mig_fail(c, -EACCES,
		             "the destination does not know the secret (a different secret file?)");
	if (r == 0 && mig_derive(secret, len, MIG_LABEL_SOURCE, ns, nd, proof) < 0)
		r = mig_fail(c, -EIO, "HMAC-SHA256 failed (OpenSSL)");
	if (r == 0)
		r = mig_write_all(c, proof, sizeof(proof));
	if (r == 0)
		r = mig_keys(c, secret, len, ns, nd);
	explicit_bzero(proof, sizeof(proof));
	return r;
}

static int mig_handshake_dest(struct mig_conn *c, const uint8_t *secret, size_t len)
{
	uint8_t h0[MIG_HELLO0_SIZE], h1[MIG_HELLO1_SIZE], proof[MIG_PROOF_SIZE],
	    want[MIG_PROOF_SIZE];
	const uint8_t *ns = h0 + 16, *nd = h1 + 16;
	int r = mig_read_all(c, h0, sizeof(h0), "the source's greeting");

	if (r == 0)
		r = mig_hello_head_check(c, h0, "the source");
	if (r == -EPROTO && !memcmp(h0, MIG_MAGIC, 8) && get_le32(h0 + 8) != MIG_PROTO_VERSION) {
		/* Tell a source of another version which one this is (best effort). */
		memset(h1, 0, sizeof(h1));
		mig_hello_head(h1);
		(void)mig_write_all(c, h1, sizeof(h1));
	}
	if (r < 0)
		return r;
	mig_hello_head(h1);
	if (r == 0 && getrandom(h1 + 16, MIG_NONCE_SIZE, 0) != MIG_NONCE_SIZE)
		r = mig_fail(c, -EIO, "getrandom: %s", strerror(errno));
	if (r == 0 && mig_derive(secret, len, MIG_LABEL_DEST, ns, nd, h1 + 16 + MIG_NONCE_SIZE) < 0)
		r = mig_fail(c, -EIO, "HMAC-SHA256 failed (OpenSSL)");
	if (r == 0)
		r = mig_write_all(c, h1, sizeof(h1));
	if (r == 0)
		r = mig_read_all(c, proof, sizeof(proof), "the source's proof");
	if (r == 0 && mig_derive(secret, len, MIG_LABEL_SOURCE, ns, nd, want) < 0)
		r = mig_fail(c, -EIO, "HMAC-SHA256 failed (OpenSSL)");
	if (r == 0 && !mig_tag_equal(proof, want, MIG_PROOF_SIZE))
		r = mig_fail(c, -EACCES, "the source does not know the secret");
	if (r == 0)
		r = mig_keys(c, secret, len, ns, nd);
	explicit_bzero(want, sizeof(want));
	return r;
}

int mig_handshake(struct mig_conn *c, const uint8_t *secret, size_t len)
{
	if (c->err)
		return c->err;
	if (len < MIG_SECRET_MIN || len > MIG_SECRET_MAX)
		return mig_fail(c, -EINVAL, "the secret must be %u to %u bytes", MIG_SECRET_MIN,
		                MIG_SECRET_MAX);
	if (mig_crypto_load() < 0)
		return mig_fail(c, -ENOSYS, "%s", mig_crypto_error());
	return c->is_source ? mig_handshake_source(c, secret, len)
	                    : mig_handshake_dest(c, secret, len);
}

/* ---- frames ---- */

int mig_frame_header_check(uint16_t type, uint16_t flags, uint32_t len, bool at_source, char *why,
                           size_t why_len)
{
	const struct mig_msg_desc *d;

	if (type == 0 || type > MIG_MSG_MAX) {
		snprintf(why, why_len, "a frame of unknown type %u", type);
		return -EPROTO;
	}
	d = &mig_msgs[type];
	if (d->from_source == at_source && type != MIG_MSG_ERROR) {
		snprintf(why, why_len, "a %s frame, which only the %s sends", d->name,
		         d->from_source ? "source" : "destination");
		return -EPROTO;
	}
	if (flags) {
		snprintf(why, why_len, "a %s frame with unknown flags 0x%x", d->name, flags);
		return -EPROTO;
	}
	if (len < d->min_len || len > d->max_len) {
		snprintf(why, why_len, "a %s frame of %u bytes (%u to %u allowed)", d->name, len,
		         d->min_len, d->max_len);
		return -EPROTO;
	}
	return 0;
}

uint8_t *mig_frame_payload(struct mig_conn *c)
{
	return c->tx + MIG_FRAME_HEADER;
}

/* Seal @n pieces (NULL: the payload is in place already) as frame @type of @len bytes and send it.
 */
static int mig_seal_send(struct mig_conn *c, enum mig_msg type, const struct mig_piece *pieces,
                         unsigned int n, size_t len)
{
	uint8_t *out = c->tx + MIG_FRAME_HEADER;
	char why[128];
	bool ok;
	int r;

	if (c->err)
		return c->err;
	if (!c->keyed)
		return mig_fail(c, -EPROTO, "a frame before the handshake");
	/* What we send must pass the other end's checks: catch our own bugs here. */
	r = mig_frame_header_check((uint16_t)type, 0, (uint32_t)len, !c->is_source, why,
	                           sizeof(why));
	if (r < 0 || len > MIG_FRAME_MAX)
		return mig_fail(c, -EINVAL, "internal error: %s", why);
	put_le16(c->tx, (uint16_t)type);
	put_le16(c->tx + 2, 0);
	put_le32(c->tx + 4, (uint32_t)len);
	ok = mig_aead_begin(c->aead_tx, c->seq_tx, c->tx);
	if (!pieces) {
		ok = ok && mig_aead_update(c->aead_tx, out, out, len);
	} else {
		for (unsigned int i = 0; i < n && ok; i++) {
			ok = mig_aead_update(c->aead_tx, out, pieces[i].p, pieces[i].len);
			out += pieces[i].len;
		}
	}
	if (!ok || !mig_aead_finish(c->aead_tx, c->tx + MIG_FRAME_HEADER + len))
		return mig_fail(c, -EIO, "AES-256-GCM failed (OpenSSL)");
	r = mig_write_all(c, c->tx, MIG_FRAME_HEADER + len + MIG_TAG_SIZE);
	if (r == 0)
		c->seq_tx++;
	return r;
}

int mig_send_built(struct mig_conn *c, enum mig_msg type, size_t len)
{
	return mig_seal_send(c, type, NULL, 0, len);
}

int mig_sendv(struct mig_conn *c, enum mig_msg type, const struct mig_piece *pieces, unsigned int n)
{
	size_t len = 0;

	for (unsigned int i = 0; i < n; i++) {
		if (pieces[i].len > MIG_FRAME_MAX - len)
			return mig_fail(c, -EINVAL, "internal error: a frame of more than %u bytes",
			                MIG_FRAME_MAX);
		len += pieces[i].len;
	}
	return mig_seal_send(c, type, pieces, n, len);
}

int mig_send(struct mig_conn *c, enum mig_msg type, const void *payload, size_t len)
{
	struct mig_piece one = {payload, len};

	return mig_sendv(c, type, &one, len ? 1 : 0);
}

void mig_send_error(struct mig_conn *c, int code, const char *msg)
{
	uint8_t *p = mig_frame_payload(c);
	size_t n = 0;

	if (c->err || !c->keyed || (c->fd < 0 && !c->io))
		return;
	put_le32(p, (uint32_t)(code < 0 ? -code : code));
	for (; msg && msg[n] && n < MIG_ERROR_TEXT_MAX; n++)
		p[4 + n] = (uint8_t)msg[n];
	if (mig_send_built(c, MIG_MSG_ERROR, 4 + n) < 0)
		return; /* the other end is gone: nothing more to tell it */
}

/* An ERROR frame's text, made safe to print: printable ASCII only. */
static void mig_error_text(const uint8_t *p, size_t len, char *out, size_t cap)
{
	size_t n = 0;

	for (size_t i = 0; i < len && n + 1 < cap; i++)
		out[n++] = p[i] >= 0x20 && p[i] < 0x7f ? (char)p[i] : '?';
	out[n] = 0;
}

int mig_recv(struct mig_conn *c, enum mig_msg *type, const uint8_t **payload, size_t *len)
{
	uint8_t hdr[MIG_FRAME_HEADER];
	uint16_t t, flags;
	uint32_t n;
	char why[160], text[MIG_ERROR_TEXT_MAX + 1];
	int r;

	if (c->err)
		return c->err;
	if (!c->keyed)
		return mig_fail(c, -EPROTO, "a frame before the handshake");
	r = mig_read_all(c, hdr, sizeof(hdr), "a frame");
	if (r < 0)
		return r;
	t = get_le16(hdr);
	flags = get_le16(hdr + 2);
	n = get_le32(hdr + 4);
	if (mig_frame_header_check(t, flags, n, c->is_source, why, sizeof(why)) < 0)
		return mig_fail(c, -EPROTO, "frame %llu: %s", (unsigned long long)c->seq_rx, why);
	r = mig_read_all(c, c->rx, (size_t)n + MIG_TAG_SIZE, mig_msgs[t].name);
	if (r < 0)
		return r;
	/* Decrypted in place; nothing of it leaves here unless the tag matches. */
	if (!mig_aead_begin(c->aead_rx, c->seq_rx, hdr) ||
	    !mig_aead_update(c->aead_rx, c->rx, c->rx, n) ||
	    !mig_aead_finish(c->aead_rx, c->rx + n))
		return mig_fail(c, -EBADMSG,
		                "frame %llu (%s): authentication failed (corrupt, forged, replayed "
		                "or out of order)",
		                (unsigned long long)c->seq_rx, mig_msgs[t].name);
	c->seq_rx++;
	if (t == MIG_MSG_ERROR) {
		mig_error_text(c->rx + 4, n - 4, text, sizeof(text));
		return mig_fail(c, -EREMOTEIO, "the %s: %s",
		                c->is_source ? "destination" : "source", text);
	}
	*type = (enum mig_msg)t;
	*payload = c->rx;
	*len = n;
	return 0;
}

/* ---- HELLO ---- */

size_t mig_hello_encode(const struct mig_hello *h, uint8_t *p)
{
	put_le32(p, h->page_size);
	put_le64(p + 4, h->ram_size);
	put_le32(p + 12, h->nr_vcpus);
	p[16] = h->nested;
	memset(p + 17, 0, 3);
	memcpy(p + 20, h->cpu_vendor, 12);
	put_le32(p + 32, h->cpu_signature);
	put_le32(p + 36, h->def_len);
	memcpy(p + MIG_HELLO_FIXED, h->def, h->def_len);
	return MIG_HELLO_FIXED + h->def_len;
}

int mig_hello_decode(const uint8_t *p, size_t len, struct mig_hello *h, char *why, size_t why_len)
{
	memset(h, 0, sizeof(*h));
	if (len < MIG_HELLO_FIXED) {
		snprintf(why, why_len, "HELLO of %zu bytes", len);
		return -EPROTO;
	}
	h->page_size = get_le32(p);
	h->ram_size = get_le64(p + 4);
	h->nr_vcpus = get_le32(p + 12);
	h->nested = p[16];
	memcpy(h->cpu_vendor, p + 20, 12);
	h->cpu_signature = get_le32(p + 32);
	h->def_len = get_le32(p + 36);
	h->def = p + MIG_HELLO_FIXED;
	if (h->page_size != MIG_PAGE_SIZE) {
		snprintf(why, why_len, "HELLO: page size %u (this nestvm: %u)", h->page_size,
		         MIG_PAGE_SIZE);
		return -EPROTO;
	}
	if (!h->ram_size || h->ram_size % MIG_PAGE_SIZE || h->ram_size > (1ULL << 46)) {
		snprintf(why, why_len, "HELLO: RAM size %llu", (unsigned long long)h->ram_size);
		return -EPROTO;
	}
	if (h->nr_vcpus < 1 || h->nr_vcpus > 1024) {
		snprintf(why, why_len, "HELLO: %u vCPUs", h->nr_vcpus);
		return -EPROTO;
	}
	if (p[16] > 1 || p[17] || p[18] || p[19]) {
		snprintf(why, why_len, "HELLO: a nesting flag of %u", p[16]);
		return -EPROTO;
	}
	for (int i = 0; i < 12; i++) {
		if (h->cpu_vendor[i] < 0x20 || h->cpu_vendor[i] > 0x7e) {
			snprintf(why, why_len, "HELLO: a CPU vendor that is not printable");
			return -EPROTO;
		}
	}
	if (h->def_len == 0 || h->def_len > MIG_DEF_MAX || h->def_len != len - MIG_HELLO_FIXED) {
		snprintf(why, why_len, "HELLO: a definition of %u bytes in %zu", h->def_len,
		         len - MIG_HELLO_FIXED);
		return -EPROTO;
	}
	return 0;
}
