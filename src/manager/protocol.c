/* SPDX-License-Identifier: MIT */
/*
 * The control protocol (protocol.h, docs/api.md): request validation, reply
 * encoding, and line framing. No I/O here, so the whole parser can be fuzzed
 * (tests/fuzz/fuzz_api.c) and unit-tested.
 */
#include "manager/protocol.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static const char *const api_state_names[] = {
    [API_STATE_OFF] = "off",           [API_STATE_STARTING] = "starting",
    [API_STATE_RUNNING] = "running",   [API_STATE_PAUSED] = "paused",
    [API_STATE_STOPPING] = "stopping", [API_STATE_CRASHED] = "crashed",
    [API_STATE_SAVED] = "saved",
};

#define API_NR_STATES (sizeof(api_state_names) / sizeof(api_state_names[0]))

/* What each command accepts besides "id" and "cmd". */
struct api_cmd_desc {
	const char *name;
	const char *fields[6];
};

static const struct api_cmd_desc api_cmds[] = {
    [API_CMD_STATUS] = {"status", {NULL}}, [API_CMD_PAUSE] = {"pause", {NULL}},
    [API_CMD_RESUME] = {"resume", {NULL}}, [API_CMD_STOP] = {"stop", {"timeout", "force", NULL}},
    [API_CMD_KILL] = {"kill", {NULL}},     [API_CMD_CONSOLE] = {"console", {"replay", NULL}},
    [API_CMD_SAVE] = {"save", {"progress", NULL}},
    [API_CMD_CHECKPOINT] = {"checkpoint", {"name", "progress", NULL}},
    [API_CMD_MIGRATE] = {"migrate", {"to", "secret_file", "downtime", "timeout", "progress", NULL}},
    [API_CMD_MIGRATE_CANCEL] = {"migrate-cancel", {NULL}},
    [API_CMD_NIC_CONNECT] = {"nic-connect", {"nic", "switch", NULL}},
};

#define API_NR_CMDS (sizeof(api_cmds) / sizeof(api_cmds[0]))

const char *api_state_name(enum api_state state)
{
	return (unsigned int)state < API_NR_STATES ? api_state_names[state] : "unknown";
}

int api_state_parse(const char *name)
{
	for (unsigned int i = 0; name && i < API_NR_STATES; i++) {
		if (!strcmp(name, api_state_names[i]))
			return (int)i;
	}
	return -1;
}

const char *api_cmd_name(enum api_cmd cmd)
{
	return (unsigned int)cmd < API_NR_CMDS ? api_cmds[cmd].name : "unknown";
}

static int api_fail(struct api_error *err, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int api_fail(struct api_error *err, const char *code, const char *fmt, ...)
{
	va_list ap;

	err->code = code;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* A key from the client, made safe to quote in a message. */
static void api_quote(const char *s, char *buf, size_t len)
{
	size_t n = 0;

	for (; *s && n + 1 < len; s++)
		buf[n++] = (*s >= 0x20 && *s < 0x7f) ? *s : '?';
	buf[n] = '\0';
}

static bool api_cmd_has_field(const struct api_cmd_desc *d, const char *key)
{
	for (unsigned int i = 0; d->fields[i]; i++) {
		if (!strcmp(d->fields[i], key))
			return true;
	}
	return false;
}

/* A string field without NUL bytes or control characters, shorter than @cap. */
static const char *api_string(json_t *v, size_t cap)
{
	const char *s = json_is_string(v) ? json_string_value(v) : NULL;

	if (!s || json_string_length(v) >= cap || strlen(s) != json_string_length(v))
		return NULL;
	for (const char *c = s; *c; c++) {
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			return NULL;
	}
	return s;
}

/* migrate's own fields: "to", "secret_file", "downtime", "timeout". */
static int api_parse_migrate_field(const char *key, json_t *v, struct api_request *req,
                                   struct api_error *err)
{
	const char *s;
	json_int_t n;

	if (!strcmp(key, "to")) {
		s = api_string(v, sizeof(req->to));
		if (!s || !*s)
			return api_fail(err, API_ERR_INVALID,
			                "'to' must be \"tcp:HOST:PORT\" or \"unix:PATH\" (at most %zu "
			                "bytes)",
			                sizeof(req->to) - 1);
		memcpy(req->to, s, strlen(s) + 1);
	} else if (!strcmp(key, "secret_file")) {
		s = api_string(v, 4096);
		if (!s || s[0] != '/')
			return api_fail(err, API_ERR_INVALID,
			                "'secret_file' must be an absolute path");
		free(req->secret_file);
		req->secret_file = strdup(s);
		if (!req->secret_file)
			return api_fail(err, API_ERR_INTERNAL, "out of memory");
	} else {
		bool dt = !strcmp(key, "downtime");
		json_int_t max = dt ? API_MAX_DOWNTIME_MS : API_MAX_MIGRATE_TIMEOUT;

		n = json_is_integer(v) ? json_integer_value(v) : -1;
		if (n < 1 || n > max)
			return api_fail(err, API_ERR_INVALID, "'%s' must be an integer from 1 to %lld (%s)",
			                key, (long long)max, dt ? "milliseconds" : "seconds");
		if (dt)
			req->downtime_ms = (unsigned int)n;
		else
			req->migrate_timeout_s = (unsigned int)n;
	}
	return 0;
}

static int api_parse_fields(json_t *root, struct api_request *req, struct api_error *err)
{
	const struct api_cmd_desc *d = &api_cmds[req->cmd];
	const char *key;
	char q[48];
	json_t *v;

	json_object_foreach(root, key, v)
	{
		if (!strcmp(key, "id") || !strcmp(key, "cmd"))
			continue;
		api_quote(key, q, sizeof(q));
		if (!api_cmd_has_field(d, key))
			return api_fail(err, API_ERR_INVALID, "unknown field '%s' for command '%s'",
			                q, d->name);
		if (req->cmd == API_CMD_MIGRATE && strcmp(key, "progress")) {
			if (api_parse_migrate_field(key, v, req, err) < 0)
				return -EINVAL;
		} else if (!strcmp(key, "timeout")) {
			json_int_t t = json_is_integer(v) ? json_integer_value(v) : -1;

			if (t < 0 || t > API_MAX_STOP_TIMEOUT)
				return api_fail(
				    err, API_ERR_INVALID,
				    "'timeout' must be an integer from 0 to %d (seconds)",
				    API_MAX_STOP_TIMEOUT);
			req->timeout_s = (unsigned int)t;
		} else if (!strcmp(key, "nic")) {
			json_int_t n = json_is_integer(v) ? json_integer_value(v) : -1;

			if (n < 0 || n >= API_MAX_NICS)
				return api_fail(err, API_ERR_INVALID,
				                "'nic' must be an integer from 0 to %d", API_MAX_NICS - 1);
			req->nic = (unsigned int)n;
		} else if (!strcmp(key, "switch")) {
			const char *n = json_is_string(v) ? json_string_value(v) : NULL;

			/* A name the store accepts, or null: none. */
			if (!json_is_null(v) && (!n || json_string_length(v) >= sizeof(req->switch_name) ||
			                         strlen(n) != json_string_length(v) || !*n))
				return api_fail(err, API_ERR_INVALID,
				                "'switch' must be a switch name or null");
			if (n)
				memcpy(req->switch_name, n, json_string_length(v) + 1);
		} else if (!strcmp(key, "name")) {
			const char *n = json_is_string(v) ? json_string_value(v) : NULL;

			/* Its characters are the store's to judge (store_check_checkpoint_name). */
			if (!n || json_string_length(v) >= sizeof(req->name) || strlen(n) != json_string_length(v))
				return api_fail(err, API_ERR_INVALID,
				                "'name' must be a string of at most %zu bytes",
				                sizeof(req->name) - 1);
			memcpy(req->name, n, json_string_length(v) + 1);
		} else {
			/* "force", "replay", "progress": booleans. */
			if (!json_is_boolean(v))
				return api_fail(err, API_ERR_INVALID, "'%s' must be true or false",
				                q);
			if (!strcmp(key, "force"))
				req->force = json_is_true(v);
			else if (!strcmp(key, "progress"))
				req->progress = json_is_true(v);
			else
				req->replay = json_is_true(v);
		}
	}
	return 0;
}

int api_request_parse(const char *line, size_t len, struct api_request *req, struct api_error *err)
{
	json_error_t jerr;
	json_t *root, *id, *cmd;
	const char *name;
	char q[48];
	int r = -EINVAL;

	memset(req, 0, sizeof(*req));
	err->code = API_ERR_INTERNAL;
	err->message[0] = '\0';
	/* A trailing CR (a client sending CRLF) is not part of the request. */
	if (len && line[len - 1] == '\r')
		len--;
	if (len >= API_MAX_LINE)
		return api_fail(err, API_ERR_TOO_LONG, "a request line is at most %d bytes",
		                API_MAX_LINE - 1);
	/* JSON_ALLOW_NUL is off: a NUL byte anywhere makes the request invalid JSON. */
	root = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return api_fail(err, API_ERR_PARSE, "not JSON (column %d): %s", jerr.column,
		                jerr.text);
	if (!json_is_object(root)) {
		api_fail(err, API_ERR_INVALID, "a request is a JSON object with a \"cmd\"");
		goto out;
	}
	id = json_object_get(root, "id");
	if (id) {
		if (!(json_is_integer(id) ||
		      (json_is_string(id) && json_string_length(id) <= API_MAX_ID_LEN))) {
			api_fail(err, API_ERR_INVALID,
			         "'id' must be an integer or a string of at most %d bytes",
			         API_MAX_ID_LEN);
			goto out;
		}
		req->id = json_deep_copy(id);
		if (!req->id) {
			api_fail(err, API_ERR_INTERNAL, "out of memory");
			goto out;
		}
	}
	cmd = json_object_get(root, "cmd");
	if (!json_is_string(cmd)) {
		api_fail(err, API_ERR_INVALID, "'cmd' is missing or not a string");
		goto out;
	}
	name = json_string_value(cmd);
	for (req->cmd = 0; req->cmd < API_NR_CMDS; req->cmd++) {
		if (!strcmp(name, api_cmds[req->cmd].name))
			break;
	}
	if (req->cmd == API_NR_CMDS || strlen(name) != json_string_length(cmd)) {
		api_quote(name, q, sizeof(q));
		api_fail(err, API_ERR_UNKNOWN,
		         "unknown command '%s' (known: status, pause, resume, stop, kill, console, "
		         "save, checkpoint, migrate, migrate-cancel, nic-connect)",
		         q);
		req->cmd = API_CMD_STATUS;
		goto out;
	}
	r = api_parse_fields(root, req, err);
	if (r == 0 && req->cmd == API_CMD_MIGRATE && (!req->to[0] || !req->secret_file))
		r = api_fail(err, API_ERR_INVALID, "'migrate' needs 'to' and 'secret_file'");
out:
	json_decref(root);
	return r;
}

void api_request_clear(struct api_request *req)
{
	json_decref(req->id);
	req->id = NULL;
	free(req->secret_file);
	req->secret_file = NULL;
}

/* Encode @obj (taken) as one line. */
static char *api_line(json_t *obj)
{
	char *text, *line;
	size_t len;

	if (!obj)
		return NULL;
	text = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(obj);
	if (!text)
		return NULL;
	len = strlen(text);
	line = realloc(text, len + 2);
	if (!line) {
		free(text);
		return NULL;
	}
	memcpy(line + len, "\n", 2);
	return line;
}

char *api_reply_ok(const json_t *id, json_t *result)
{
	json_t *obj = json_object();

	if (!result)
		result = json_object();
	if (!obj || !result) {
		json_decref(obj);
		json_decref(result);
		return NULL;
	}
	json_object_set_new(obj, "ok", json_true());
	if (id)
		json_object_set_new(obj, "id", json_deep_copy(id));
	json_object_set_new(obj, "result", result);
	return api_line(obj);
}

char *api_reply_error(const json_t *id, const char *code, const char *message)
{
	json_t *obj = json_object();

	if (!obj)
		return NULL;
	json_object_set_new(obj, "ok", json_false());
	if (id)
		json_object_set_new(obj, "id", json_deep_copy(id));
	json_object_set_new(obj, "error",
	                    json_pack("{s:s, s:s}", "code", code, "message", message));
	return api_line(obj);
}

int api_reply_parse(const char *line, size_t len, json_t **result, struct api_error *err)
{
	json_t *root = json_loadb(line, len, 0, NULL), *ok, *r;
	const char *code = API_ERR_INTERNAL, *message = "error reply without a message";
	int ret = -EPROTO;

	*result = NULL;
	err->code = API_ERR_INTERNAL;
	snprintf(err->message, sizeof(err->message),
	         "the monitor sent something that is not a reply");
	if (!json_is_object(root))
		goto out;
	ok = json_object_get(root, "ok");
	if (json_is_true(ok)) {
		r = json_object_get(root, "result");
		if (!json_is_object(r))
			goto out;
		*result = json_incref(r);
		ret = 0;
	} else if (json_is_false(ok)) {
		json_unpack(json_object_get(root, "error"), "{s?s, s?s}", "code", &code, "message",
		            &message);
		/* Known codes only: err->code must outlive the reply object. */
		static const char *const codes[] = {
		    API_ERR_PARSE, API_ERR_INVALID, API_ERR_UNKNOWN, API_ERR_TOO_LONG,
		    API_ERR_STATE, API_ERR_BUSY,    API_ERR_IDLE,     API_ERR_FAILED};
		for (unsigned int i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
			if (!strcmp(code, codes[i]))
				err->code = codes[i];
		}
		snprintf(err->message, sizeof(err->message), "%s", message);
		ret = -EREMOTEIO;
	}
out:
	json_decref(root);
	return ret;
}

/* ---- framing ---- */

void api_framer_init(struct api_framer *f)
{
	f->start = f->len = f->scanned = 0;
	f->discarding = false;
}

size_t api_framer_space(struct api_framer *f, char **where)
{
	if (f->start) {
		memmove(f->buf, f->buf + f->start, f->len - f->start);
		f->len -= f->start;
		f->start = 0;
	}
	*where = f->buf + f->len;
	return sizeof(f->buf) - f->len;
}

void api_framer_commit(struct api_framer *f, size_t n)
{
	if (n > sizeof(f->buf) - f->len)
		n = sizeof(f->buf) - f->len;
	f->len += n;
}

enum api_frame api_framer_next(struct api_framer *f, const char **line, size_t *len)
{
	for (;;) {
		char *from = f->buf + f->start + f->scanned;
		char *nl = memchr(from, '\n', f->len - f->start - f->scanned);

		if (nl) {
			size_t end = nl - f->buf;

			if (f->discarding) {
				/* The end of a too-long line: drop it, go on after it. */
				f->discarding = false;
				f->start = end + 1;
				f->scanned = 0;
				continue;
			}
			*line = f->buf + f->start;
			*len = end - f->start;
			f->start = end + 1;
			f->scanned = 0;
			return API_FRAME_LINE;
		}
		f->scanned = f->len - f->start;
		if (f->discarding) {
			f->start = f->len = f->scanned = 0;
			return API_FRAME_NONE;
		}
		if (f->len - f->start >= sizeof(f->buf)) {
			f->discarding = true;
			f->start = f->len = f->scanned = 0;
			return API_FRAME_TOO_LONG;
		}
		return API_FRAME_NONE;
	}
}

size_t api_framer_pending(const struct api_framer *f, const char **data)
{
	*data = f->buf + f->start;
	return f->len - f->start;
}

int api_outbox_add(struct api_outbox *o, const char *data, size_t len)
{
	char *buf;

	if (o->len + len > API_OUTBOX_MAX)
		return -E2BIG;
	buf = realloc(o->buf, o->len + len);
	if (!buf)
		return -ENOMEM;
	memcpy(buf + o->len, data, len);
	o->buf = buf;
	o->len += len;
	return 0;
}

int api_outbox_send(struct api_outbox *o, int fd)
{
	size_t done = 0;

	while (done < o->len) {
		ssize_t n = send(fd, o->buf + done, o->len - done, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0)
			return -EPIPE;
		done += (size_t)n;
	}
	if (done) {
		memmove(o->buf, o->buf + done, o->len - done);
		o->len -= done;
	}
	return 0;
}

bool api_outbox_held(const struct api_outbox *o)
{
	return o->len >= API_OUTBOX_HOLD;
}

void api_outbox_clear(struct api_outbox *o)
{
	free(o->buf);
	o->buf = NULL;
	o->len = 0;
}
