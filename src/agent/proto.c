/* SPDX-License-Identifier: MIT */
/*
 * The guest agent's frames (proto.h, docs/agent.md): building and parsing.
 * Shared by nestvm and the guest agent; libc only. Every decoder works on a
 * frame agent_frame_parse() has already bounded, reads each byte at most
 * once through the bounded readers below, and refuses rather than guesses.
 */
#include "agent/proto.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ building */

void agent_buf_init(struct agent_buf *b)
{
	memset(b, 0, sizeof(*b));
}

void agent_buf_free(struct agent_buf *b)
{
	free(b->data);
	agent_buf_init(b);
}

void agent_buf_consume(struct agent_buf *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
}

static void agent_buf_reserve(struct agent_buf *b, size_t n)
{
	size_t cap;
	uint8_t *p;

	if (b->err)
		return;
	if (b->open && b->len + n - b->frame - AGENT_FRAME_HDR > AGENT_FRAME_MAX) {
		b->err = -E2BIG;
		return;
	}
	if (b->len + n <= b->cap)
		return;
	cap = b->cap ? b->cap : 4096;
	while (cap < b->len + n)
		cap *= 2;
	p = realloc(b->data, cap);
	if (!p) {
		b->err = -ENOMEM;
		return;
	}
	b->data = p;
	b->cap = cap;
}

void agent_put_bytes(struct agent_buf *b, const void *p, size_t n)
{
	if (n > AGENT_FRAME_MAX) {
		b->err = b->err ? b->err : -E2BIG;
		return;
	}
	agent_buf_reserve(b, n);
	if (b->err)
		return;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
}

void agent_put_u16(struct agent_buf *b, uint16_t v)
{
	uint8_t le[2] = {(uint8_t)v, (uint8_t)(v >> 8)};

	agent_put_bytes(b, le, sizeof(le));
}

void agent_put_u32(struct agent_buf *b, uint32_t v)
{
	uint8_t le[4];

	for (int i = 0; i < 4; i++)
		le[i] = (uint8_t)(v >> (8 * i));
	agent_put_bytes(b, le, sizeof(le));
}

void agent_put_u64(struct agent_buf *b, uint64_t v)
{
	agent_put_u32(b, (uint32_t)v);
	agent_put_u32(b, (uint32_t)(v >> 32));
}

void agent_frame_begin(struct agent_buf *b, enum agent_type type)
{
	uint8_t hdr[AGENT_FRAME_HDR] = {0, 0, 0, 0, (uint8_t)type, 0, 0, 0};

	if (b->err)
		return;
	b->open = false;
	b->frame = b->len;
	agent_put_bytes(b, hdr, sizeof(hdr));
	b->open = true;
}

void agent_put_field(struct agent_buf *b, enum agent_tag tag, const void *p, size_t n)
{
	if (n > AGENT_FRAME_MAX) {
		b->err = b->err ? b->err : -E2BIG;
		return;
	}
	agent_put_u16(b, (uint16_t)tag);
	agent_put_u32(b, (uint32_t)n);
	agent_put_bytes(b, p, n);
}

void agent_put_str(struct agent_buf *b, enum agent_tag tag, const char *s)
{
	agent_put_field(b, tag, s, strlen(s) + 1);
}

int agent_frame_end(struct agent_buf *b)
{
	int r = b->err;

	if (!b->open && !r)
		r = -EINVAL;
	if (r) {
		/* Drop the partial frame; the next one starts clean. */
		if (b->open)
			b->len = b->frame;
		b->err = 0;
		b->open = false;
		return r;
	}
	{
		uint32_t len = (uint32_t)(b->len - b->frame - AGENT_FRAME_HDR);

		for (int i = 0; i < 4; i++)
			b->data[b->frame + i] = (uint8_t)(len >> (8 * i));
	}
	b->open = false;
	return 0;
}

int agent_msg_hello(struct agent_buf *b, const struct agent_hello *h)
{
	agent_frame_begin(b, AGENT_HELLO);
	agent_put_u32(b, AGENT_MAGIC);
	agent_put_u16(b, h->version_min);
	agent_put_u16(b, h->version_max);
	agent_put_u32(b, h->window);
	return agent_frame_end(b);
}

int agent_msg_u32(struct agent_buf *b, enum agent_type type, uint32_t v)
{
	agent_frame_begin(b, type);
	agent_put_u32(b, v);
	return agent_frame_end(b);
}

int agent_msg_data(struct agent_buf *b, enum agent_type type, const void *p, size_t n)
{
	if (n > AGENT_DATA_MAX)
		return -E2BIG;
	agent_frame_begin(b, type);
	agent_put_bytes(b, p, n);
	return agent_frame_end(b);
}

int agent_msg_resize(struct agent_buf *b, uint16_t rows, uint16_t cols)
{
	agent_frame_begin(b, AGENT_RESIZE);
	agent_put_u16(b, rows);
	agent_put_u16(b, cols);
	return agent_frame_end(b);
}

int agent_msg_exit(struct agent_buf *b, const struct agent_exit *x)
{
	agent_frame_begin(b, AGENT_EXIT);
	agent_put_u32(b, x->how);
	agent_put_u32(b, (uint32_t)x->code);
	return agent_frame_end(b);
}

static int agent_msg_verror(struct agent_buf *b, int code, unsigned int status, const char *fmt,
                            va_list ap)
{
	char msg[AGENT_MSG_MAX];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	agent_frame_begin(b, AGENT_ERROR);
	agent_put_u32(b, (uint32_t)code);
	agent_put_u32(b, status);
	agent_put_bytes(b, msg, strlen(msg) + 1);
	return agent_frame_end(b);
}

int agent_msg_error(struct agent_buf *b, int code, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = agent_msg_verror(b, code, 0, fmt, ap);
	va_end(ap);
	return r;
}

int agent_msg_notrun(struct agent_buf *b, int code, unsigned int status, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = agent_msg_verror(b, code, status, fmt, ap);
	va_end(ap);
	return r;
}

int agent_msg_file(struct agent_buf *b, uint32_t mode, uint64_t size)
{
	agent_frame_begin(b, AGENT_FILE);
	agent_put_u32(b, mode);
	agent_put_u64(b, size);
	return agent_frame_end(b);
}

int agent_msg_ok(struct agent_buf *b, uint64_t bytes)
{
	agent_frame_begin(b, AGENT_OK);
	agent_put_u64(b, bytes);
	return agent_frame_end(b);
}

int agent_msg_exec(struct agent_buf *b, const struct agent_exec *e)
{
	if (!e->argc || e->argc > AGENT_MAX_ARGS || e->envc > AGENT_MAX_ENV)
		return -E2BIG;
	agent_frame_begin(b, AGENT_EXEC);
	for (unsigned int i = 0; i < e->argc; i++)
		agent_put_str(b, AGENT_F_ARG, e->argv[i]);
	for (unsigned int i = 0; i < e->envc; i++)
		agent_put_str(b, AGENT_F_ENV, e->envp[i]);
	if (e->cwd)
		agent_put_str(b, AGENT_F_CWD, e->cwd);
	if (e->user)
		agent_put_str(b, AGENT_F_USER, e->user);
	if (e->pty) {
		uint8_t ws[4] = {(uint8_t)e->rows, (uint8_t)(e->rows >> 8), (uint8_t)e->cols,
		                 (uint8_t)(e->cols >> 8)};

		agent_put_field(b, AGENT_F_PTY, ws, sizeof(ws));
	}
	if (e->timeout_s) {
		uint8_t t[4];

		for (int i = 0; i < 4; i++)
			t[i] = (uint8_t)(e->timeout_s >> (8 * i));
		agent_put_field(b, AGENT_F_TIMEOUT, t, sizeof(t));
	}
	return agent_frame_end(b);
}

int agent_msg_file_req(struct agent_buf *b, enum agent_type type, const struct agent_file_req *r)
{
	agent_frame_begin(b, type);
	if (type == AGENT_RELAY) {
		agent_put_str(b, AGENT_F_VM, r->vm ? r->vm : "");
	} else {
		agent_put_str(b, AGENT_F_PATH, r->path ? r->path : "");
		if (type == AGENT_PUT) {
			uint8_t v[12];

			if (r->name)
				agent_put_str(b, AGENT_F_NAME, r->name);
			for (int i = 0; i < 4; i++)
				v[i] = (uint8_t)(r->mode >> (8 * i));
			for (int i = 0; i < 8; i++)
				v[4 + i] = (uint8_t)(r->size >> (8 * i));
			agent_put_field(b, AGENT_F_MODE, v, 4);
			agent_put_field(b, AGENT_F_SIZE, v + 4, 8);
		}
	}
	return agent_frame_end(b);
}

/* ------------------------------------------------------------- parsing */

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint64_t le64(const uint8_t *p)
{
	return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

const char *agent_type_name(uint8_t type)
{
	switch (type) {
	case AGENT_HELLO:
		return "HELLO";
	case AGENT_CREDIT:
		return "CREDIT";
	case AGENT_DATA:
		return "DATA";
	case AGENT_EXEC:
		return "EXEC";
	case AGENT_STDIN:
		return "STDIN";
	case AGENT_SIGNAL:
		return "SIGNAL";
	case AGENT_RESIZE:
		return "RESIZE";
	case AGENT_PUT:
		return "PUT";
	case AGENT_GET:
		return "GET";
	case AGENT_RELAY:
		return "RELAY";
	case AGENT_STARTED:
		return "STARTED";
	case AGENT_STDOUT:
		return "STDOUT";
	case AGENT_STDERR:
		return "STDERR";
	case AGENT_EXIT:
		return "EXIT";
	case AGENT_ERROR:
		return "ERROR";
	case AGENT_FILE:
		return "FILE";
	case AGENT_OK:
		return "OK";
	default:
		return "?";
	}
}

ssize_t agent_frame_parse(const uint8_t *buf, size_t len, uint32_t max, struct agent_frame *f)
{
	uint32_t plen;

	if (len < AGENT_FRAME_HDR)
		return 0;
	plen = le32(buf);
	if (buf[5] || buf[6] || buf[7] || !strcmp(agent_type_name(buf[4]), "?"))
		return -EPROTO;
	if (plen > max || plen > AGENT_FRAME_MAX)
		return -EMSGSIZE;
	if (len - AGENT_FRAME_HDR < plen)
		return 0;
	f->type = buf[4];
	f->len = plen;
	f->payload = buf + AGENT_FRAME_HDR;
	return (ssize_t)(AGENT_FRAME_HDR + plen);
}

int agent_parse_hello(const struct agent_frame *f, struct agent_hello *h)
{
	if (f->type != AGENT_HELLO || f->len < 12 || le32(f->payload) != AGENT_MAGIC)
		return -EPROTO;
	h->version_min = le16(f->payload + 4);
	h->version_max = le16(f->payload + 6);
	h->window = le32(f->payload + 8);
	if (!h->version_min || h->version_min > h->version_max || h->window < AGENT_WINDOW_MIN ||
	    h->window > AGENT_WINDOW_MAX)
		return -EPROTO;
	return 0;
}

unsigned int agent_version_pick(const struct agent_hello *a, const struct agent_hello *b)
{
	unsigned int lo = a->version_min > b->version_min ? a->version_min : b->version_min;
	unsigned int hi = a->version_max < b->version_max ? a->version_max : b->version_max;

	return lo <= hi ? hi : 0;
}

int agent_parse_u32(const struct agent_frame *f, uint32_t *v)
{
	if (f->len != 4)
		return -EPROTO;
	*v = le32(f->payload);
	return 0;
}

int agent_parse_resize(const struct agent_frame *f, uint16_t *rows, uint16_t *cols)
{
	if (f->type != AGENT_RESIZE || f->len != 4)
		return -EPROTO;
	*rows = le16(f->payload);
	*cols = le16(f->payload + 2);
	return 0;
}

int agent_parse_exit(const struct agent_frame *f, struct agent_exit *x)
{
	if (f->type != AGENT_EXIT || f->len != 8)
		return -EPROTO;
	x->how = le32(f->payload);
	x->code = (int32_t)le32(f->payload + 4);
	if (x->how > AGENT_TIMEDOUT || x->code < 0 || x->code > 255)
		return -EPROTO;
	if (x->how != AGENT_EXITED && (x->code < 1 || x->code > 64))
		return -EPROTO;
	return 0;
}

int agent_parse_error(const struct agent_frame *f, struct agent_error *e)
{
	size_t n;

	if (f->type != AGENT_ERROR || f->len < 9 || f->len > 8 + AGENT_MSG_MAX ||
	    f->payload[f->len - 1] != '\0')
		return -EPROTO;
	e->code = (int)le32(f->payload);
	e->status = le32(f->payload + 4);
	n = strnlen((const char *)f->payload + 8, f->len - 8);
	if (n != f->len - 9 || e->code < 0 || e->code > 4095 || e->status > 255)
		return -EPROTO;
	memcpy(e->msg, f->payload + 8, n + 1);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)e->msg[i] < 0x20 || e->msg[i] == 0x7f)
			e->msg[i] = '?';
	return 0;
}

int agent_parse_file(const struct agent_frame *f, uint32_t *mode, uint64_t *size)
{
	if (f->type != AGENT_FILE || f->len != 12)
		return -EPROTO;
	*mode = le32(f->payload);
	*size = le64(f->payload + 4);
	return 0;
}

int agent_parse_ok(const struct agent_frame *f, uint64_t *bytes)
{
	if (f->type != AGENT_OK || f->len != 8)
		return -EPROTO;
	*bytes = le64(f->payload);
	return 0;
}

/* A walk over the fields of a frame. */
struct agent_fields {
	const uint8_t *p, *end;
};

/* Next field: 1 (tag, value, length set), 0 at the end, -EPROTO if one overruns. */
static int agent_field_next(struct agent_fields *it, uint16_t *tag, const uint8_t **val,
                            uint32_t *len)
{
	size_t left = (size_t)(it->end - it->p);

	if (!left)
		return 0;
	if (left < 6)
		return -EPROTO;
	*tag = le16(it->p);
	*len = le32(it->p + 2);
	if (*len > left - 6)
		return -EPROTO;
	*val = it->p + 6;
	it->p += 6 + (size_t)*len;
	return 1;
}

/* A string field: NUL-terminated, no NUL inside. */
static const char *agent_field_str(const uint8_t *val, uint32_t len)
{
	if (!len || val[len - 1] != '\0' || memchr(val, '\0', len - 1))
		return NULL;
	return (const char *)val;
}

int agent_parse_exec(const struct agent_frame *f, struct agent_exec *e)
{
	struct agent_fields it = {f->payload, f->payload + f->len};
	const uint8_t *val;
	uint32_t len;
	uint16_t tag;
	unsigned int seen = 0;
	int r;

	if (f->type != AGENT_EXEC)
		return -EPROTO;
	memset(e, 0, sizeof(*e));
	while ((r = agent_field_next(&it, &tag, &val, &len)) > 0) {
		const char *s = NULL;

		if (tag == AGENT_F_ARG || tag == AGENT_F_ENV || tag == AGENT_F_CWD ||
		    tag == AGENT_F_USER) {
			s = agent_field_str(val, len);
			if (!s)
				return -EPROTO;
		} else if (tag < 32 && (seen & (1u << tag))) {
			return -EPROTO;
		}
		if (tag < 32)
			seen |= 1u << tag;
		switch (tag) {
		case AGENT_F_ARG:
			if (e->argc >= AGENT_MAX_ARGS)
				return -E2BIG;
			e->argv[e->argc++] = s;
			break;
		case AGENT_F_ENV:
			if (e->envc >= AGENT_MAX_ENV)
				return -E2BIG;
			if (s[0] == '=' || !strchr(s, '='))
				return -EPROTO;
			e->envp[e->envc++] = s;
			break;
		case AGENT_F_CWD:
			if (e->cwd)
				return -EPROTO;
			e->cwd = s;
			break;
		case AGENT_F_USER:
			if (e->user || !s[0])
				return -EPROTO;
			e->user = s;
			break;
		case AGENT_F_PTY:
			if (len != 4)
				return -EPROTO;
			e->pty = true;
			e->rows = le16(val);
			e->cols = le16(val + 2);
			break;
		case AGENT_F_TIMEOUT:
			if (len != 4)
				return -EPROTO;
			e->timeout_s = le32(val);
			break;
		default:
			return -EPROTO;
		}
	}
	if (r < 0 || !e->argc || !e->argv[0][0])
		return -EPROTO;
	e->argv[e->argc] = NULL;
	e->envp[e->envc] = NULL;
	return 0;
}

int agent_parse_file_req(const struct agent_frame *f, struct agent_file_req *r)
{
	struct agent_fields it = {f->payload, f->payload + f->len};
	bool have_mode = false, have_size = false;
	const uint8_t *val;
	uint32_t len;
	uint16_t tag;
	int n;

	if (f->type != AGENT_PUT && f->type != AGENT_GET && f->type != AGENT_RELAY)
		return -EPROTO;
	memset(r, 0, sizeof(*r));
	while ((n = agent_field_next(&it, &tag, &val, &len)) > 0) {
		const char *s = agent_field_str(val, len);

		if (tag == AGENT_F_PATH && f->type != AGENT_RELAY && s && s[0] && !r->path) {
			r->path = s;
		} else if (tag == AGENT_F_NAME && f->type == AGENT_PUT && s && s[0] && !r->name) {
			r->name = s;
		} else if (tag == AGENT_F_VM && f->type == AGENT_RELAY && s && s[0] && !r->vm) {
			r->vm = s;
		} else if (tag == AGENT_F_MODE && f->type == AGENT_PUT && len == 4 && !have_mode) {
			r->mode = le32(val);
			have_mode = true;
		} else if (tag == AGENT_F_SIZE && f->type == AGENT_PUT && len == 8 && !have_size) {
			r->size = le64(val);
			have_size = true;
		} else {
			return -EPROTO;
		}
	}
	if (n < 0 || (f->type == AGENT_RELAY ? !r->vm : !r->path))
		return -EPROTO;
	if (f->type == AGENT_PUT && (!have_mode || !have_size || (r->mode & ~07777u)))
		return -EPROTO;
	return 0;
}
