/* SPDX-License-Identifier: MIT */
#ifndef NESTVM_MANAGER_PROTOCOL_H
#define NESTVM_MANAGER_PROTOCOL_H

/*
 * The control protocol between a monitor and its clients (docs/api.md): on
 * the VM's Unix socket, each request is one line of JSON, answered by one
 * line of JSON, in order.
 *
 *   -> {"id": 7, "cmd": "stop", "timeout": 30, "force": true}
 *   <- {"ok": true, "id": 7, "result": {...}}
 *   <- {"ok": false, "id": 7, "error": {"code": "wrong-state", "message": "..."}}
 *
 * Everything a client sends is untrusted: api_request_parse() turns a line
 * into a validated struct api_request or an error for the reply, and never
 * fails in any other way; the framer bounds a line to API_MAX_LINE bytes.
 * After a successful "console" request the connection carries raw serial
 * console bytes in both directions instead.
 */

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define API_VERSION 1
#define API_MAX_LINE 65536 /* a request line, newline included */
#define API_MAX_ID_LEN 128
#define API_MAX_STOP_TIMEOUT 86400 /* seconds */
#define API_MAX_NICS 8               /* nic-connect: "nic" below this (VM_MAX_NICS) */

/* Error codes of an error reply. */
#define API_ERR_PARSE "parse-error"         /* not JSON */
#define API_ERR_INVALID "invalid-request"   /* JSON, but not a valid request */
#define API_ERR_UNKNOWN "unknown-command"   /* no such "cmd" */
#define API_ERR_TOO_LONG "request-too-long" /* the line exceeded API_MAX_LINE */
#define API_ERR_STATE "wrong-state"         /* not possible in the VM's current state */
#define API_ERR_BUSY "busy"                 /* e.g. the console is attached elsewhere */
#define API_ERR_INTERNAL "internal-error"   /* the monitor failed to do it */
#define API_ERR_IDLE "idle-timeout"         /* no complete request in time: closing */
#define API_ERR_FAILED "failed"             /* tried and failed (a full disk); nothing changed */

/* The states a VM is reported in. */
enum api_state {
	API_STATE_OFF,
	API_STATE_STARTING,
	API_STATE_RUNNING,
	API_STATE_PAUSED,
	API_STATE_STOPPING,
	API_STATE_CRASHED,
	API_STATE_SAVED, /* off, with a saved state that `start` carries on from */
};

enum api_cmd {
	API_CMD_STATUS,
	API_CMD_PAUSE,
	API_CMD_RESUME,
	API_CMD_STOP,
	API_CMD_KILL,
	API_CMD_CONSOLE,
	API_CMD_SAVE,
	API_CMD_CHECKPOINT,
	API_CMD_MIGRATE,
	API_CMD_MIGRATE_CANCEL,
	API_CMD_NIC_CONNECT,
};

#define API_MIGRATE_TO_MAX 160	       /* "tcp:[v6]:port" or "unix:" and a sun_path */
#define API_MAX_DOWNTIME_MS 60000      /* migrate: "downtime" */
#define API_MAX_MIGRATE_TIMEOUT 86400  /* migrate: "timeout", seconds */

struct api_request {
	enum api_cmd cmd;
	json_t *id;             /* the request's "id" (string or integer), or NULL; owned */
	unsigned int timeout_s; /* stop: seconds to wait for the guest, 0 = no limit */
	bool force;             /* stop: kill the VM if it is still up after timeout_s */
	bool replay;            /* console: send the recent output first */
	bool progress;          /* save, checkpoint: send progress lines before the reply */
	char name[65];          /* checkpoint: its name ("" = one made of the time) */
	char to[API_MIGRATE_TO_MAX];   /* migrate: "tcp:HOST:PORT" or "unix:PATH" (required) */
	char *secret_file;             /* migrate: an absolute path (required); owned */
	unsigned int downtime_ms;      /* migrate: 0 = the default */
	unsigned int migrate_timeout_s; /* migrate: 0 = the default */
	unsigned int nic;               /* nic-connect: the adapter */
	char switch_name[65];           /* nic-connect: "" = none (the port socket comes with it) */
};

struct api_error {
	const char *code; /* API_ERR_* */
	char message[256];
};

/* api_state_name - "off", "starting", ...; api_state_parse - the reverse, or -1. */
const char *api_state_name(enum api_state state);
int api_state_parse(const char *name);

/* api_cmd_name - "status", "pause", ... */
const char *api_cmd_name(enum api_cmd cmd);

/*
 * api_request_parse - validate one request line (@len bytes, not
 * NUL-terminated, any content). Returns 0 and fills @req, or -EINVAL and
 * fills @err; either way @req->id is set if the request carried a valid id,
 * so the reply can echo it, and the caller must api_request_clear() @req.
 */
int api_request_parse(const char *line, size_t len, struct api_request *req, struct api_error *err)
    __attribute__((warn_unused_result));

/* api_request_clear - release what api_request_parse() stored. */
void api_request_clear(struct api_request *req);

/*
 * api_reply_ok / api_reply_error - one reply line, newline-terminated,
 * malloc'd (NULL on allocation failure). api_reply_ok() takes @result
 * (NULL for an empty object).
 */
char *api_reply_ok(const json_t *id, json_t *result);
char *api_reply_error(const json_t *id, const char *code, const char *message);

/*
 * api_reply_parse - a client reading a reply line. Returns 0 and a new
 * reference to the result object, or -EPROTO (not a reply) or -EREMOTEIO
 * (an error reply; its code and message in @err).
 */
int api_reply_parse(const char *line, size_t len, json_t **result, struct api_error *err)
    __attribute__((warn_unused_result));

/*
 * Line framing for a byte stream. Read into api_framer_space(), report with
 * api_framer_commit(), then take lines with api_framer_next() until it
 * returns API_FRAME_NONE. A line longer than API_MAX_LINE is dropped whole,
 * reported once as API_FRAME_TOO_LONG.
 */
enum api_frame { API_FRAME_NONE, API_FRAME_LINE, API_FRAME_TOO_LONG };

struct api_framer {
	char buf[API_MAX_LINE];
	size_t start;    /* first byte not yet returned */
	size_t len;      /* bytes in buf */
	size_t scanned;  /* bytes after start known to hold no newline */
	bool discarding; /* inside a too-long line */
};

void api_framer_init(struct api_framer *f);
size_t api_framer_space(struct api_framer *f, char **where);
void api_framer_commit(struct api_framer *f, size_t n);
/* api_framer_next - the next line without its newline (a trailing CR is kept). */
enum api_frame api_framer_next(struct api_framer *f, const char **line, size_t *len);
/* api_framer_pending - bytes buffered after the last line (e.g. console input). */
size_t api_framer_pending(const struct api_framer *f, const char **data);

/*
 * The other way: reply lines a client's socket has not taken yet, in order.
 * A client may send many requests before it reads (pipelining); while
 * api_outbox_held() the server reads no further requests from it, and a
 * client that leaves API_OUTBOX_MAX bytes unread is not reading at all.
 */
#define API_OUTBOX_HOLD (64 * 1024)
#define API_OUTBOX_MAX (16 * 1024 * 1024)

struct api_outbox {
	char *buf;
	size_t len;
};

/* api_outbox_add - queue @len bytes: 0, -E2BIG (past API_OUTBOX_MAX) or -ENOMEM. */
int api_outbox_add(struct api_outbox *o, const char *data, size_t len)
    __attribute__((warn_unused_result));
/* api_outbox_send - send what @fd takes without blocking: 0, or -EPIPE (the client is gone). */
int api_outbox_send(struct api_outbox *o, int fd) __attribute__((warn_unused_result));
bool api_outbox_held(const struct api_outbox *o);
void api_outbox_clear(struct api_outbox *o);

#endif
