/* SPDX-License-Identifier: MIT */
#ifndef NESTVM_SNAPSHOT_MIGRATE_STREAM_H
#define NESTVM_SNAPSHOT_MIGRATE_STREAM_H

/*
 * The live migration stream (docs/migration.md): one connection between the
 * source monitor and the destination, authenticated with a secret both ends
 * were given, then carrying framed, typed messages sealed with AES-256-GCM.
 *
 * Handshake (mutual challenge-response, HMAC-SHA256 keyed with the secret;
 * fixed-size messages, no framing yet):
 *
 *   source -> dest  HELLO0  "NESTVMMG", le32 version, le32 0, nonce Ns (32)
 *   dest -> source  HELLO1  "NESTVMMG", le32 version, le32 0, nonce Nd (32),
 *                           Pd = HMAC(secret, "nestvm-migrate-2 dest" Ns Nd)
 *   source -> dest  HELLO2  Ps = HMAC(secret, "nestvm-migrate-2 source" Ns Nd)
 *
 * The destination proves first, so a source given the wrong secret (or
 * talking to an impostor) learns it before it sends anything of the VM;
 * the labels differ, so neither proof can be reflected as the other. Each
 * direction then has its own key, K = HMAC(secret, "nestvm-migrate-2 key
 * s2d" | "... d2s", Ns, Nd), fresh for every connection.
 *
 * A frame: le16 type, le16 flags (0), le32 length, the payload (at most
 * MIG_FRAME_MAX bytes) encrypted with AES-256-GCM under K, then its 16-byte
 * tag; the header is the additional authenticated data and the 96-bit nonce
 * is le64 seq, le32 0, seq counting the frames of that direction from 0
 * (never sent, and never repeated under one key: each connection and
 * direction has its own). One pass over the payload copies, encrypts and
 * authenticates it, which is why GCM and not a MAC over a copy (HMAC-SHA256
 * was two thirds of the source's CPU): with AES-NI and PCLMULQDQ it runs
 * at several GB/s. A frame that is corrupt, truncated, replayed, reordered
 * or forged fails its tag; the type, the flags and the length are checked
 * before the payload is read (a type known and allowed in that direction,
 * the length within the type's bounds), so nothing is buffered on the word
 * of an unchecked header. The receiver sees a payload only after its tag
 * matched.
 *
 * Every read and write has a timeout and may be cut short by a cancel
 * eventfd. Errors come back as -errno with a sentence in conn->error;
 * once an error happened the connection is broken and every later call
 * fails with it.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define MIG_MAGIC "NESTVMMG" /* 8 bytes, no NUL */
#define MIG_PROTO_VERSION 2  /* 2: AES-256-GCM frames, PASS_ACK */
#define MIG_NONCE_SIZE 32
#define MIG_PROOF_SIZE 32 /* HMAC-SHA256: the handshake's proofs */
#define MIG_TAG_SIZE 16   /* AES-256-GCM: each frame's tag */
#define MIG_KEY_SIZE 32
#define MIG_SECRET_MIN 16u /* bytes of a secret file */
#define MIG_SECRET_MAX 4096u
#define MIG_HELLO0_SIZE (8 + 4 + 4 + MIG_NONCE_SIZE)
#define MIG_HELLO1_SIZE (8 + 4 + 4 + MIG_NONCE_SIZE + MIG_PROOF_SIZE)
#define MIG_HELLO2_SIZE MIG_PROOF_SIZE

#define MIG_PAGE_SIZE 4096u
#define MIG_PAGES_MAX 256u   /* pages in one PAGES frame: 1 MiB */
#define MIG_PAGES_HEADER 16u /* le64 gpa, le32 count, le32 flags */
#define MIG_PAGES_F_ZERO 1u  /* the pages are zero: no data follows */
#define MIG_FRAME_HEADER 8u
#define MIG_FRAME_MAX (MIG_PAGES_HEADER + MIG_PAGES_MAX * MIG_PAGE_SIZE)
#define MIG_DEF_MAX 65536u /* bytes of the definition (vm.json) in HELLO */
#define MIG_ERROR_TEXT_MAX 255u

/* Message types; the direction each may travel in is checked on receipt. */
enum mig_msg {
	MIG_MSG_HELLO = 1,     /* s->d: the machine and its definition */
	MIG_MSG_ACCEPT = 2,    /* d->s: the destination takes the VM */
	MIG_MSG_PAGES = 3,     /* s->d: guest pages (or a run of zero pages) */
	MIG_MSG_PASS = 4,      /* s->d: the end of one pass over memory */
	MIG_MSG_STATE = 5,     /* s->d: a chunk of the state file (docs/snapshot.md) */
	MIG_MSG_STATE_END = 6, /* s->d: the state is complete: le64 size, le32 crc32c */
	MIG_MSG_READY = 7,     /* d->s: restored and checked, waiting for GO */
	MIG_MSG_GO = 8,        /* s->d: run it; the source will not */
	MIG_MSG_RUNNING = 9,   /* d->s: it runs */
	MIG_MSG_ERROR = 10,    /* either: le32 errno, then a message */
	MIG_MSG_PASS_ACK = 11, /* d->s: every page up to that PASS is in RAM here */
	MIG_MSG_MAX = MIG_MSG_PASS_ACK,
};

/* The machine the source sends in HELLO (the state file's machine section, in advance). */
struct mig_hello {
	uint32_t page_size;
	uint64_t ram_size;
	uint32_t nr_vcpus;
	bool nested;
	char cpu_vendor[13];
	uint32_t cpu_signature;
	const uint8_t *def; /* the definition (vm.json), def_len bytes; not NUL-terminated */
	uint32_t def_len;
};
#define MIG_HELLO_FIXED (4 + 8 + 4 + 1 + 3 + 12 + 4 + 4)

/* PASS: le32 pass, le32 throttle percent, le64 pages sent so far, le64 pages sent in this pass. */
#define MIG_PASS_SIZE 24u
/* STATE_END: le64 size of the state file, le32 its crc32c. */
#define MIG_STATE_END_SIZE 12u
/* PASS_ACK: le32 the pass. */
#define MIG_PASS_ACK_SIZE 4u

/* How a stream moves its bytes: a socket (io NULL) or, for tests and the fuzzer, anything. */
struct mig_io_ops {
	/* Up to @len bytes: n > 0, 0 at end of stream, or -errno. */
	ssize_t (*read)(void *opaque, void *buf, size_t len);
	/* Up to @len bytes: n > 0 or -errno. */
	ssize_t (*write)(void *opaque, const void *buf, size_t len);
};

struct mig_aead; /* an AES-256-GCM context, keyed once */

struct mig_conn {
	int fd; /* the socket (non-blocking), or -1 with io set */
	const struct mig_io_ops *io;
	void *io_opaque;
	int cancel_fd;  /* an eventfd that, once readable, cuts every wait short; or -1 */
	int timeout_ms; /* how long a read or write may make no progress */
	bool is_source;
	bool keyed; /* the handshake is done */
	struct mig_aead *aead_tx, *aead_rx;
	uint8_t key_s2d[MIG_KEY_SIZE], key_d2s[MIG_KEY_SIZE]; /* for mig_conn_export() */
	uint64_t seq_tx, seq_rx;
	uint64_t bytes_tx, bytes_rx; /* on the wire, handshake included */
	uint64_t wait_us[2];         /* waiting for the peer: [0] to read, [1] to write */
	uint8_t *tx;                 /* a frame being built: header, payload, tag */
	uint8_t *rx;                 /* the payload and tag of the last frame received */
	int err;                     /* sticky: the first error */
	char error[256];             /* and its sentence */
};

/*
 * mig_conn_init - a connection over the socket @fd (taken: closed by
 * mig_conn_release(); made non-blocking here) or, with @io, over @io_opaque.
 * @is_source: which end this is. Returns 0 or -ENOMEM.
 */
int mig_conn_init(struct mig_conn *c, int fd, const struct mig_io_ops *io, void *io_opaque,
                  bool is_source) __attribute__((warn_unused_result));

/* mig_conn_release - free and close; twice is harmless. */
void mig_conn_release(struct mig_conn *c);

/*
 * mig_crypto_load - load libcrypto (OpenSSL 3: AES-256-GCM, HMAC-SHA256),
 * which nestvm does not link; mig_handshake() and mig_conn_set_keys() call
 * it, a managed monitor calls it before sandbox_init() (a confined thread
 * cannot load code; it is refused then, not tried). Returns 0 (also when
 * already loaded), -ENOENT (no such library, or not OpenSSL 3) or -ENOSYS
 * (the sandbox is set up); mig_crypto_error() then says why. Main thread,
 * before any other thread uses the stream.
 */
int mig_crypto_load(void) __attribute__((warn_unused_result));
const char *mig_crypto_error(void);

/*
 * mig_handshake - authenticate the other end with @secret (@len bytes) and
 * key the connection: as the source or the destination (c->is_source).
 * Returns 0, -EACCES (the other end does not know the secret), -EPROTO (not
 * a nestvm migration stream, or another protocol version), -ENOSYS or
 * -ENOENT (no libcrypto: mig_crypto_load()), or an I/O error.
 */
int mig_handshake(struct mig_conn *c, const uint8_t *secret, size_t len)
    __attribute__((warn_unused_result));

/*
 * mig_conn_set_keys - key the connection without a handshake (unit tests
 * and the fuzzer): @s2d and @d2s are the two directions' keys.
 */
int mig_conn_set_keys(struct mig_conn *c, const uint8_t s2d[MIG_KEY_SIZE],
                      const uint8_t d2s[MIG_KEY_SIZE]) __attribute__((warn_unused_result));

/*
 * A keyed connection handed from one process to another (`nestvm receive`
 * authenticates and reads HELLO, the monitor it starts carries on):
 * mig_conn_export() writes the session (keys, sequence numbers, which end)
 * into @out; mig_conn_import() keys a connection made on the passed socket
 * with it. 0 or -EINVAL (not a session of this version, or of the other end).
 */
#define MIG_SESSION_SIZE (8 + 4 + 8 + 8 + 2 * MIG_KEY_SIZE)
void mig_conn_export(const struct mig_conn *c, uint8_t out[MIG_SESSION_SIZE]);
int mig_conn_import(struct mig_conn *c, const uint8_t in[MIG_SESSION_SIZE])
    __attribute__((warn_unused_result));

/* mig_frame_payload - where to build the payload of the next frame (MIG_FRAME_MAX bytes). */
uint8_t *mig_frame_payload(struct mig_conn *c);

/*
 * mig_send_built - send a frame of @type whose @len payload bytes are at
 * mig_frame_payload() (encrypted there, in place). mig_send - the same from
 * @payload. mig_sendv - from @n pieces (struct mig_piece), read once each
 * as they are encrypted into the frame: guest RAM goes out this way, a
 * guest writing it meanwhile changing what is sent, never the tag's match.
 * Returns 0 or -errno.
 */
struct mig_piece {
	const void *p;
	size_t len;
};
int mig_send_built(struct mig_conn *c, enum mig_msg type, size_t len)
    __attribute__((warn_unused_result));
int mig_send(struct mig_conn *c, enum mig_msg type, const void *payload, size_t len)
    __attribute__((warn_unused_result));
int mig_sendv(struct mig_conn *c, enum mig_msg type, const struct mig_piece *pieces, unsigned int n)
    __attribute__((warn_unused_result));

/* mig_send_error - an ERROR frame (@code a positive errno) saying @msg; best effort. */
void mig_send_error(struct mig_conn *c, int code, const char *msg);

/*
 * mig_recv - the next frame: its type, and its payload (valid until the
 * next call) of *@len bytes, authenticated. An ERROR frame from the other
 * end is returned as -EREMOTEIO with its message in c->error. Returns 0 or
 * -errno (-EBADMSG: a tag did not match; -EPROTO: a bad header).
 */
int mig_recv(struct mig_conn *c, enum mig_msg *type, const uint8_t **payload, size_t *len)
    __attribute__((warn_unused_result));

/*
 * mig_frame_header_check - is (@type, @flags, @len) a frame header the
 * receiving end (@at_source: the source receives) accepts? 0, or -EPROTO
 * with the reason in @why.
 */
int mig_frame_header_check(uint16_t type, uint16_t flags, uint32_t len, bool at_source, char *why,
                           size_t why_len) __attribute__((warn_unused_result));

/* mig_msg_name - "PAGES", ... for messages. */
const char *mig_msg_name(unsigned int type);

/*
 * HELLO's payload: mig_hello_encode() into @buf (at least MIG_HELLO_FIXED +
 * def_len bytes), returning its length; mig_hello_decode() checks every
 * field (page size, RAM a whole number of pages, vCPUs 1..1024, a printable
 * vendor, the definition's length) and points h->def into @p. 0 or -EPROTO
 * with @why.
 */
size_t mig_hello_encode(const struct mig_hello *h, uint8_t *buf);
int mig_hello_decode(const uint8_t *p, size_t len, struct mig_hello *h, char *why, size_t why_len)
    __attribute__((warn_unused_result));

#endif
