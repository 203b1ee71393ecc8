/* SPDX-License-Identifier: MIT */
#ifndef NESTVM_AGENT_PROTO_H
#define NESTVM_AGENT_PROTO_H

/*
 * The guest agent's protocol (docs/agent.md): the one implementation of its
 * frames, used by the host side (`nestvm exec`, `nestvm cp`, src/agent/host.c)
 * and compiled into the guest agent (guest/agent/), so it depends on libc only.
 *
 * A connection carries one session: HELLO both ways, then one request (EXEC,
 * PUT, GET or RELAY) and what belongs to it. Every frame is an 8-byte header,
 * little-endian,
 *
 *   u32 length    of the payload, at most AGENT_FRAME_MAX
 *   u8  type      enum agent_type
 *   u8  flags     0
 *   u16 reserved  0
 *
 * then the payload. Requests with optional parts (EXEC, PUT, GET, RELAY) are
 * a list of fields, each "u16 tag, u32 length, value", strings with their
 * NUL; the other payloads have a fixed layout (below, per type). A receiver
 * refuses a frame it does not expect, a header with flags, an unknown type
 * and anything longer than its cap, and ends the connection: nothing in a
 * frame is trusted before its decoder below has checked it.
 *
 * Flow control: each side announces in its HELLO how many bytes of data
 * (STDIN, STDOUT, STDERR and DATA payloads) it accepts before it grants more
 * with CREDIT frames; a sender never has more than that in flight. So a
 * receiver's buffers are bounded, and control frames (SIGNAL, RESIZE) are
 * never stuck behind data the other side cannot take yet.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define AGENT_MAGIC 0x4741564eU /* "NVAG" in a little-endian u32 */
#define AGENT_VERSION 1         /* the newest version this code speaks */
#define AGENT_VERSION_MIN 1     /* the oldest */
#define AGENT_VSOCK_PORT 1000   /* a privileged vsock port: only root in the guest can listen */
#define AGENT_HOST_CID 2        /* VMADDR_CID_HOST: the only peer the agent serves */

#define AGENT_FRAME_HDR 8
#define AGENT_FRAME_MAX (256 * 1024) /* payload of any frame */
#define AGENT_DATA_MAX (64 * 1024)   /* payload of one data frame */
#define AGENT_WINDOW (1024 * 1024)   /* the data window each side announces */
#define AGENT_WINDOW_MIN AGENT_DATA_MAX
#define AGENT_WINDOW_MAX (16 * 1024 * 1024)
#define AGENT_MAX_ARGS 4096
#define AGENT_MAX_ENV 1024
#define AGENT_MSG_MAX 1024 /* an ERROR's message */

enum agent_type {
	/* Both ways. */
	AGENT_HELLO = 0x01,  /* u32 magic, u16 version min, u16 max, u32 window (12 bytes; later
	                      * versions may append fields) */
	AGENT_CREDIT = 0x02, /* u32 bytes of data the sender may now send more */
	AGENT_DATA = 0x03,   /* file contents (PUT, GET); empty: the end */
	/* Host to agent. */
	AGENT_EXEC = 0x10,   /* fields AGENT_F_ARG.., below */
	AGENT_STDIN = 0x11,  /* bytes for the command's stdin; empty: EOF */
	AGENT_SIGNAL = 0x12, /* u32 signal number */
	AGENT_RESIZE = 0x13, /* u16 rows, u16 cols */
	AGENT_PUT = 0x14,    /* fields PATH, NAME, MODE, SIZE; then DATA frames */
	AGENT_GET = 0x15,    /* field PATH */
	AGENT_RELAY = 0x16,  /* field VM: carry this connection on to that VM's agent */
	/* Agent to host. */
	AGENT_STARTED = 0x20, /* u32 pid: the command runs */
	AGENT_STDOUT = 0x21,  /* output; empty: EOF */
	AGENT_STDERR = 0x22,
	AGENT_EXIT = 0x23,  /* u32 how (enum agent_exit_how), i32 code */
	AGENT_ERROR = 0x24, /* u32 errno, u32 exit status (EXEC that could not run: 126,
	                     * 127; else 0), a message with its NUL; the session ends */
	AGENT_FILE = 0x25,  /* GET: u32 mode, u64 size; DATA frames follow */
	AGENT_OK = 0x26,    /* PUT, GET, RELAY done: u64 bytes (0 for RELAY) */
};

/* Field tags of EXEC, PUT, GET and RELAY. */
enum agent_tag {
	AGENT_F_ARG = 1,     /* string; repeated, at least one: argv */
	AGENT_F_ENV = 2,     /* "KEY=VALUE"; repeated */
	AGENT_F_CWD = 3,     /* string */
	AGENT_F_USER = 4,    /* a name, or UID[:GID] */
	AGENT_F_PTY = 5,     /* u16 rows, u16 cols: run on a pseudo-terminal */
	AGENT_F_TIMEOUT = 6, /* u32 seconds */
	AGENT_F_PATH = 7,    /* string */
	AGENT_F_NAME = 8,    /* PUT: the file's name, used when PATH is a directory */
	AGENT_F_MODE = 9,    /* u32 permission bits */
	AGENT_F_SIZE = 10,   /* u64 */
	AGENT_F_VM = 11,     /* RELAY: "NAME" */
};

enum agent_exit_how {
	AGENT_EXITED = 0,   /* code: the exit status */
	AGENT_SIGNALED = 1, /* code: the signal number */
	AGENT_TIMEDOUT = 2, /* killed after the request's timeout; code: the signal */
};

/* A frame as parsed: @payload points into the caller's buffer. */
struct agent_frame {
	uint8_t type;
	uint32_t len;
	const uint8_t *payload;
};

struct agent_hello {
	uint16_t version_min;
	uint16_t version_max;
	uint32_t window;
};

/* EXEC, decoded: the strings point into the frame (valid while it is). */
struct agent_exec {
	const char *argv[AGENT_MAX_ARGS + 1]; /* NULL-terminated */
	unsigned int argc;
	const char *envp[AGENT_MAX_ENV + 1]; /* NULL-terminated */
	unsigned int envc;
	const char *cwd;  /* NULL: the user's home directory */
	const char *user; /* NULL: the agent's own user */
	bool pty;
	uint16_t rows, cols;
	uint32_t timeout_s; /* 0: none */
};

/* PUT, GET and RELAY, decoded; strings point into the frame. */
struct agent_file_req {
	const char *path; /* PUT, GET */
	const char *name; /* PUT: may be NULL */
	uint32_t mode;    /* PUT */
	uint64_t size;    /* PUT */
	const char *vm;   /* RELAY */
};

struct agent_error {
	int code;            /* an errno value */
	unsigned int status; /* 0, or the exit status for an EXEC that could not run */
	char msg[AGENT_MSG_MAX];
};

struct agent_exit {
	uint32_t how; /* enum agent_exit_how */
	int32_t code;
};

/*
 * An output buffer of frames. Errors are sticky: after one, nothing more is
 * added and agent_frame_end() returns it, so a message is built without a
 * check per field.
 */
struct agent_buf {
	uint8_t *data;
	size_t len, cap;
	size_t frame; /* offset of the frame being built */
	bool open;
	int err; /* 0, -ENOMEM, -E2BIG */
};

void agent_buf_init(struct agent_buf *b);
void agent_buf_free(struct agent_buf *b);
/* agent_buf_consume - drop the first @n bytes (sent). */
void agent_buf_consume(struct agent_buf *b, size_t n);

/* agent_frame_begin - start a frame of @type at the end of @b. */
void agent_frame_begin(struct agent_buf *b, enum agent_type type);
void agent_put_u16(struct agent_buf *b, uint16_t v);
void agent_put_u32(struct agent_buf *b, uint32_t v);
void agent_put_u64(struct agent_buf *b, uint64_t v);
void agent_put_bytes(struct agent_buf *b, const void *p, size_t n);
/* agent_put_field - one field: tag, length, @n bytes of @p. */
void agent_put_field(struct agent_buf *b, enum agent_tag tag, const void *p, size_t n);
/* agent_put_str - a string field, with its NUL. */
void agent_put_str(struct agent_buf *b, enum agent_tag tag, const char *s);
/*
 * agent_frame_end - finish the frame (its length). Returns 0, or the first
 * error since agent_frame_begin: -E2BIG (payload over AGENT_FRAME_MAX), -ENOMEM;
 * a failed frame is removed from @b.
 */
int agent_frame_end(struct agent_buf *b) __attribute__((warn_unused_result));

/* Whole messages, appended to @b; 0 or -errno as agent_frame_end(). */
int agent_msg_hello(struct agent_buf *b, const struct agent_hello *h)
    __attribute__((warn_unused_result));
int agent_msg_u32(struct agent_buf *b, enum agent_type type, uint32_t v)
    __attribute__((warn_unused_result));
int agent_msg_data(struct agent_buf *b, enum agent_type type, const void *p, size_t n)
    __attribute__((warn_unused_result));
int agent_msg_resize(struct agent_buf *b, uint16_t rows, uint16_t cols)
    __attribute__((warn_unused_result));
int agent_msg_exit(struct agent_buf *b, const struct agent_exit *x)
    __attribute__((warn_unused_result));
int agent_msg_error(struct agent_buf *b, int code, const char *fmt, ...)
    __attribute__((warn_unused_result, format(printf, 3, 4)));
/* agent_msg_notrun - the ERROR for an EXEC whose command could not run (@status 126 or 127). */
int agent_msg_notrun(struct agent_buf *b, int code, unsigned int status, const char *fmt, ...)
    __attribute__((warn_unused_result, format(printf, 4, 5)));
int agent_msg_file(struct agent_buf *b, uint32_t mode, uint64_t size)
    __attribute__((warn_unused_result));
int agent_msg_ok(struct agent_buf *b, uint64_t bytes) __attribute__((warn_unused_result));
int agent_msg_exec(struct agent_buf *b, const struct agent_exec *e)
    __attribute__((warn_unused_result));
/* agent_msg_file_req - PUT, GET or RELAY (@type) with the fields of @r that type has. */
int agent_msg_file_req(struct agent_buf *b, enum agent_type type, const struct agent_file_req *r)
    __attribute__((warn_unused_result));

/*
 * agent_frame_parse - the frame at the start of @buf (@len bytes). Returns
 * the bytes it takes (header and payload, > 0) with @f filled, 0 if @buf
 * holds only part of it, -EPROTO for a bad header (flags, reserved bits, an
 * unknown type) or -EMSGSIZE for a payload over @max.
 */
ssize_t agent_frame_parse(const uint8_t *buf, size_t len, uint32_t max, struct agent_frame *f)
    __attribute__((warn_unused_result));

/* Decoders of one frame's payload: 0, or -EPROTO when it is malformed. */
int agent_parse_hello(const struct agent_frame *f, struct agent_hello *h)
    __attribute__((warn_unused_result));
int agent_parse_u32(const struct agent_frame *f, uint32_t *v) __attribute__((warn_unused_result));
int agent_parse_resize(const struct agent_frame *f, uint16_t *rows, uint16_t *cols)
    __attribute__((warn_unused_result));
int agent_parse_exit(const struct agent_frame *f, struct agent_exit *x)
    __attribute__((warn_unused_result));
/*
 * agent_parse_error - ERROR into @e; control characters in the message are
 * replaced by '?', so that a guest cannot drive the host's terminal with it.
 */
int agent_parse_error(const struct agent_frame *f, struct agent_error *e)
    __attribute__((warn_unused_result));
int agent_parse_file(const struct agent_frame *f, uint32_t *mode, uint64_t *size)
    __attribute__((warn_unused_result));
int agent_parse_ok(const struct agent_frame *f, uint64_t *bytes)
    __attribute__((warn_unused_result));
/*
 * agent_parse_exec - EXEC into @e: at least one ARG, at most AGENT_MAX_ARGS
 * and AGENT_MAX_ENV; every ENV "KEY=VALUE" with a non-empty KEY; strings
 * NUL-terminated with no NUL inside; no field twice but ARG and ENV; no
 * unknown field. -EPROTO otherwise, -E2BIG for too many ARG or ENV.
 */
int agent_parse_exec(const struct agent_frame *f, struct agent_exec *e)
    __attribute__((warn_unused_result));
/* agent_parse_file_req - PUT (PATH required), GET (PATH), RELAY (VM), as agent_parse_exec. */
int agent_parse_file_req(const struct agent_frame *f, struct agent_file_req *r)
    __attribute__((warn_unused_result));

/* agent_type_name - "EXEC", ... for messages; "?" for an unknown type. */
const char *agent_type_name(uint8_t type);

/* agent_version_pick - the version both HELLOs allow, or 0 if none. */
unsigned int agent_version_pick(const struct agent_hello *a, const struct agent_hello *b);

#endif
