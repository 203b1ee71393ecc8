/* SPDX-License-Identifier: MIT */
/* The device lifecycle layer (core/device.h): the device list and state buffers. */
#include "core/device.h"

#include "core/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const struct snap_section_type device_section_type = {
    .type = DEVICE_SEC_STATE,
    .name = "device",
    .flags = SNAP_TYPE_ANY_SET,
    .max_instances = DEVICE_LIST_MAX,
    .min_version = 1,
    .max_version = UINT32_MAX,
    .min_len = DEVICE_NAME_MAX,
    .max_len = DEVICE_NAME_MAX + DEVICE_STATE_MAX,
};

int device_register(struct device_list *dl, const char *name, const struct device_ops *ops,
                    void *dev)
{
	struct device *d;
	int r = 0;

	if (strlen(name) >= DEVICE_NAME_MAX)
		r = -ENAMETOOLONG;
	else if (device_find(dl, name))
		r = -EEXIST;
	else if (dl->nr == DEVICE_LIST_MAX)
		r = -ENOSPC;
	if (r < 0) {
		log_error("cannot add device '%s': %s", name, strerror(-r));
		if (ops->destroy)
			ops->destroy(dev);
		return r;
	}
	d = &dl->devs[dl->nr++];
	memset(d, 0, sizeof(*d));
	snprintf(d->name, sizeof(d->name), "%s", name);
	d->ops = ops;
	d->dev = dev;
	return 0;
}

struct device *device_find(struct device_list *dl, const char *name)
{
	for (unsigned int i = 0; i < dl->nr; i++) {
		if (strcmp(dl->devs[i].name, name) == 0)
			return &dl->devs[i];
	}
	return NULL;
}

void device_list_resume(struct device_list *dl)
{
	for (unsigned int i = 0; i < dl->nr; i++) {
		struct device *d = &dl->devs[i];

		if (!d->quiesced)
			continue;
		if (d->ops->resume)
			d->ops->resume(d->dev);
		d->quiesced = false;
	}
}

int device_list_quiesce(struct device_list *dl)
{
	for (unsigned int i = dl->nr; i-- > 0;) {
		struct device *d = &dl->devs[i];
		int r;

		if (d->quiesced)
			continue;
		r = d->ops->quiesce ? d->ops->quiesce(d->dev) : 0;
		if (r < 0) {
			log_error("cannot quiesce device '%s': %s", d->name, strerror(-r));
			device_list_resume(dl);
			return r;
		}
		d->quiesced = true;
	}
	return 0;
}

void device_list_reset(struct device_list *dl)
{
	for (unsigned int i = 0; i < dl->nr; i++) {
		if (dl->devs[i].ops->reset)
			dl->devs[i].ops->reset(dl->devs[i].dev);
	}
}

/* One device's state as a DEVICE section: its name, NUL-padded, then its bytes. */
static int device_save_one(struct device *d, unsigned int index, struct snap_writer *w)
{
	struct dev_state s = {0};
	char name[DEVICE_NAME_MAX] = {0};
	int r;

	if (d->ops->save_sections)
		return d->ops->save_sections(d->dev, w);
	if (!d->ops->save)
		return 0;
	memcpy(name, d->name, strlen(d->name));
	ds_put_bytes(&s, name, sizeof(name));
	r = d->ops->save(d->dev, &s);
	if (r == 0 && s.error)
		r = s.error;
	if (r == 0 && s.len > DEVICE_NAME_MAX + DEVICE_STATE_MAX)
		r = -EFBIG;
	if (r == 0)
		r = snap_writer_add(w, DEVICE_SEC_STATE, index, d->ops->version, 0, s.buf, s.len);
	ds_release(&s);
	return r;
}

int device_list_save(struct device_list *dl, struct snap_writer *w)
{
	for (unsigned int i = 0; i < dl->nr; i++) {
		int r = device_save_one(&dl->devs[i], i, w);

		if (r < 0) {
			log_error("cannot save device '%s': %s", dl->devs[i].name, strerror(-r));
			return r;
		}
	}
	return 0;
}

/* Every byte after the name's NUL is NUL too. */
static bool device_name_padded(const char *name)
{
	for (size_t i = strlen(name); i < DEVICE_NAME_MAX; i++) {
		if (name[i])
			return false;
	}
	return true;
}

static int device_restore_one(struct device *d, unsigned int index, struct snap_reader *r,
                              char *why, size_t len)
{
	const struct snap_section *s;
	struct dev_state_in in;
	char name[DEVICE_NAME_MAX];
	int err;

	if (d->ops->restore_sections) {
		err = d->ops->restore_sections(d->dev, r);
		if (err < 0)
			snprintf(why, len, "%s", r->error[0] ? r->error : strerror(-err));
		return err;
	}
	if (!d->ops->restore)
		return 0;
	s = snap_reader_find(r, DEVICE_SEC_STATE, index);
	if (!s) {
		snprintf(why, len, "it has no state for device %u ('%s'): saved with another "
		         "configuration", index, d->name);
		return -EBADMSG;
	}
	memcpy(name, s->data, sizeof(name));
	/* Exactly the name, NUL-padded: no junk after it. */
	if (memchr(name, 0, sizeof(name)) == NULL || strcmp(name, d->name) != 0 ||
	    !device_name_padded(name)) {
		name[sizeof(name) - 1] = 0;
		snprintf(why, len, "its device %u is '%.31s' where this configuration has '%s'",
		         index, name, d->name);
		return -EBADMSG;
	}
	if (s->version > d->ops->version) {
		snprintf(why, len, "device '%s': state version %u is newer than this nestvm's (%u)",
		         d->name, s->version, d->ops->version);
		return -EPROTONOSUPPORT;
	}
	dsi_init(&in, s->data + DEVICE_NAME_MAX, s->length - DEVICE_NAME_MAX);
	err = d->ops->restore(d->dev, &in, s->version);
	if (err == 0)
		err = dsi_finish(&in);
	if (err < 0)
		snprintf(why, len, "device '%s': %s", d->name,
		         in.why[0] ? in.why : strerror(-err));
	return err;
}

int device_list_restore(struct device_list *dl, struct snap_reader *r, char *why, size_t len)
{
	for (unsigned int i = 0; i < dl->nr; i++) {
		int err = device_restore_one(&dl->devs[i], i, r, why, len);

		if (err < 0)
			return err;
	}
	/* A saved state no device here takes would be silently dropped: refuse. */
	for (unsigned int i = 0; i < r->nr_sections; i++) {
		const struct snap_section *s = &r->sections[i];

		if (s->type != DEVICE_SEC_STATE)
			continue;
		if (s->instance >= dl->nr || !dl->devs[s->instance].ops->restore) {
			snprintf(why, len, "it has state for device %u, which this configuration %s",
			         s->instance, s->instance >= dl->nr ? "lacks" : "keeps no state for");
			return -EBADMSG;
		}
	}
	return 0;
}

void device_list_destroy(struct device_list *dl)
{
	while (dl->nr > 0) {
		struct device *d = &dl->devs[--dl->nr];

		if (d->ops->destroy)
			d->ops->destroy(d->dev);
	}
}

/* ---- state buffers ---- */

static uint8_t *ds_room(struct dev_state *s, size_t n)
{
	if (s->error)
		return NULL;
	if (n > DEVICE_NAME_MAX + DEVICE_STATE_MAX - s->len) {
		s->error = -EFBIG;
		return NULL;
	}
	if (s->len + n > s->cap) {
		size_t cap = s->cap ? s->cap : 256;
		uint8_t *p;

		while (cap < s->len + n)
			cap *= 2;
		p = realloc(s->buf, cap);
		if (!p) {
			s->error = -ENOMEM;
			return NULL;
		}
		s->buf = p;
		s->cap = cap;
	}
	s->len += n;
	return s->buf + s->len - n;
}

/* Little-endian, byte by byte: the file's layout does not follow the host's. */
static void ds_put_le(struct dev_state *s, uint64_t v, unsigned int bytes)
{
	uint8_t *p = ds_room(s, bytes);

	for (unsigned int i = 0; p && i < bytes; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

void ds_put_u8(struct dev_state *s, uint8_t v) { ds_put_le(s, v, 1); }
void ds_put_u16(struct dev_state *s, uint16_t v) { ds_put_le(s, v, 2); }
void ds_put_u32(struct dev_state *s, uint32_t v) { ds_put_le(s, v, 4); }
void ds_put_u64(struct dev_state *s, uint64_t v) { ds_put_le(s, v, 8); }
void ds_put_bool(struct dev_state *s, bool v) { ds_put_le(s, v ? 1 : 0, 1); }

void ds_put_bytes(struct dev_state *s, const void *p, size_t len)
{
	uint8_t *dst = ds_room(s, len);

	if (dst && len)
		memcpy(dst, p, len);
}

void ds_release(struct dev_state *s)
{
	free(s->buf);
	memset(s, 0, sizeof(*s));
}

void dsi_init(struct dev_state_in *in, const void *buf, size_t len)
{
	memset(in, 0, sizeof(*in));
	in->buf = buf;
	in->len = len;
}

static const uint8_t *dsi_take(struct dev_state_in *in, size_t n)
{
	if (in->bad)
		return NULL;
	if (n > in->len - in->pos) {
		dsi_check(in, false, "its state ends early (%zu bytes)", in->len);
		return NULL;
	}
	in->pos += n;
	return in->buf + in->pos - n;
}

static uint64_t dsi_get_le(struct dev_state_in *in, unsigned int bytes)
{
	const uint8_t *p = dsi_take(in, bytes);
	uint64_t v = 0;

	for (unsigned int i = 0; p && i < bytes; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

uint8_t dsi_get_u8(struct dev_state_in *in) { return (uint8_t)dsi_get_le(in, 1); }
uint16_t dsi_get_u16(struct dev_state_in *in) { return (uint16_t)dsi_get_le(in, 2); }
uint32_t dsi_get_u32(struct dev_state_in *in) { return (uint32_t)dsi_get_le(in, 4); }
uint64_t dsi_get_u64(struct dev_state_in *in) { return dsi_get_le(in, 8); }

bool dsi_get_bool(struct dev_state_in *in)
{
	uint8_t v = dsi_get_u8(in);

	dsi_check(in, v <= 1, "a flag holds %u", v);
	return v == 1;
}

void dsi_get_bytes(struct dev_state_in *in, void *p, size_t len)
{
	const uint8_t *src = dsi_take(in, len);

	if (src)
		memcpy(p, src, len);
	else
		memset(p, 0, len);
}

bool dsi_check(struct dev_state_in *in, bool ok, const char *fmt, ...)
{
	va_list ap;

	if (ok || in->bad)
		return ok && !in->bad;
	in->bad = true;
	va_start(ap, fmt);
	vsnprintf(in->why, sizeof(in->why), fmt, ap);
	va_end(ap);
	return false;
}

int dsi_finish(struct dev_state_in *in)
{
	dsi_check(in, in->pos == in->len, "%zu bytes of its state are left over",
	          in->len - in->pos);
	return in->bad ? -EBADMSG : 0;
}
