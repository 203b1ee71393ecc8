/* SPDX-License-Identifier: MIT */
/*
 * Unit tests: the device lifecycle layer (src/core/device.c) with fake
 * devices: registration, the order of quiesce, resume, reset and destroy,
 * a quiesce that fails, the little-endian state buffers, and a save and
 * restore through a real snapshot file (written to a memfd and a pipe,
 * parsed with device_section_type) including every refusal the restore
 * must make with a reason.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "core/device.h"
#include "core/log.h"
#include "snapshot/format.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* What the fake devices did, in order: "q:b" quiesce of b, "r:", "x:" reset, "d:" destroy. */
struct trace {
	char ev[256][48];
	unsigned int n;
};

struct fake {
	char name[DEVICE_NAME_MAX + 8];
	struct trace *trace;
	int quiesce_err;
	int extra; /* save() writes this many bytes more (or fewer, if negative) */
	/* The state. */
	uint8_t a;
	uint16_t b;
	uint32_t c;
	uint64_t d;
	bool e;
	uint8_t blob[5];
};

static void trace_add(struct fake *f, const char *what)
{
	struct trace *t = f->trace;

	assert_true(t->n < 256);
	snprintf(t->ev[t->n++], sizeof(t->ev[0]), "%s:%s", what, f->name);
}

static int fake_quiesce(void *dev)
{
	struct fake *f = dev;

	trace_add(f, f->quiesce_err ? "Q" : "q");
	return f->quiesce_err;
}

static void fake_resume(void *dev)
{
	trace_add(dev, "r");
}

static void fake_reset(void *dev)
{
	trace_add(dev, "x");
}

static void fake_destroy(void *dev)
{
	trace_add(dev, "d");
}

static int fake_save(void *dev, struct dev_state *out)
{
	struct fake *f = dev;

	ds_put_u8(out, f->a);
	ds_put_u16(out, f->b);
	ds_put_u32(out, f->c);
	ds_put_u64(out, f->d);
	ds_put_bool(out, f->e);
	ds_put_bytes(out, f->blob,
	             f->extra < 0 ? sizeof(f->blob) + (size_t)f->extra : sizeof(f->blob));
	for (int i = 0; i < f->extra; i++)
		ds_put_u8(out, 0xee);
	return 0;
}

static int fake_restore(void *dev, struct dev_state_in *in, uint32_t version)
{
	struct fake *f = dev;

	assert_true(version >= 1);
	f->a = dsi_get_u8(in);
	f->b = dsi_get_u16(in);
	f->c = dsi_get_u32(in);
	f->d = dsi_get_u64(in);
	f->e = dsi_get_bool(in);
	dsi_get_bytes(in, f->blob, sizeof(f->blob));
	if (!dsi_check(in, f->a != 0xbd, "a holds the bad value %#x", f->a))
		return -EBADMSG;
	return 0;
}

static const struct device_ops fake_ops = {
    .kind = "fake",
    .version = 1,
    .quiesce = fake_quiesce,
    .resume = fake_resume,
    .reset = fake_reset,
    .save = fake_save,
    .restore = fake_restore,
    .destroy = fake_destroy,
};

static const struct device_ops fake_ops_v2 = {
    .kind = "fake",
    .version = 2,
    .save = fake_save,
    .restore = fake_restore,
    .destroy = fake_destroy,
};

/* A device without state (as console-in): no save, no restore. */
static const struct device_ops stateless_ops = {
    .kind = "stateless",
    .version = 1,
    .quiesce = fake_quiesce,
    .resume = fake_resume,
    .destroy = fake_destroy,
};

static void fake_init(struct fake *f, struct trace *t, const char *name, unsigned int seed)
{
	memset(f, 0, sizeof(*f));
	snprintf(f->name, sizeof(f->name), "%s", name);
	f->trace = t;
	f->a = (uint8_t)(0x10 + seed);
	f->b = (uint16_t)(0x2000 + seed);
	f->c = 0x30000000u + seed;
	f->d = 0x4000000000000000ULL + seed;
	f->e = seed & 1;
	for (unsigned int i = 0; i < sizeof(f->blob); i++)
		f->blob[i] = (uint8_t)(seed * 7 + i);
}

static void trace_expect(struct trace *t, const char *const *want, unsigned int n)
{
	if (t->n != n)
		print_error("expected %u events, got %u\n", n, t->n);
	assert_int_equal(t->n, n);
	for (unsigned int i = 0; i < n; i++)
		assert_string_equal(t->ev[i], want[i]);
	t->n = 0;
}

static void test_register_find(void **state)
{
	struct device_list dl = {0};
	struct trace t = {0};
	struct fake f[DEVICE_LIST_MAX + 3];
	char name[64];

	(void)state;
	log_set_level(LOG_NONE);
	fake_init(&f[0], &t, "com1", 0);
	assert_int_equal(device_register(&dl, "com1", &fake_ops, &f[0]), 0);
	assert_ptr_equal(device_find(&dl, "com1")->dev, &f[0]);
	assert_ptr_equal(device_find(&dl, "com1")->ops, &fake_ops);
	assert_null(device_find(&dl, "com2"));
	assert_null(device_find(&dl, "com"));

	/* A taken name: refused, and the device it came with is destroyed. */
	fake_init(&f[1], &t, "dup", 1);
	assert_int_equal(device_register(&dl, "com1", &fake_ops, &f[1]), -EEXIST);
	trace_expect(&t, (const char *const[]){"d:dup"}, 1);
	assert_ptr_equal(device_find(&dl, "com1")->dev, &f[0]);

	/* 31 bytes fit (with the NUL), 32 do not. */
	memset(name, 'n', sizeof(name));
	name[DEVICE_NAME_MAX - 1] = 0;
	fake_init(&f[2], &t, "long", 2);
	assert_int_equal(device_register(&dl, name, &fake_ops, &f[2]), 0);
	assert_non_null(device_find(&dl, name));
	name[DEVICE_NAME_MAX - 1] = 'n';
	name[DEVICE_NAME_MAX] = 0;
	fake_init(&f[3], &t, "toolong", 3);
	assert_int_equal(device_register(&dl, name, &fake_ops, &f[3]), -ENAMETOOLONG);
	trace_expect(&t, (const char *const[]){"d:toolong"}, 1);
	assert_int_equal(dl.nr, 2);

	/* Full. */
	for (unsigned int i = 2; i < DEVICE_LIST_MAX; i++) {
		snprintf(name, sizeof(name), "dev%u", i);
		fake_init(&f[i + 2], &t, name, i);
		assert_int_equal(device_register(&dl, name, &fake_ops, &f[i + 2]), 0);
	}
	fake_init(&f[DEVICE_LIST_MAX + 2], &t, "extra", 9);
	assert_int_equal(device_register(&dl, "extra", &fake_ops, &f[DEVICE_LIST_MAX + 2]),
	                 -ENOSPC);
	trace_expect(&t, (const char *const[]){"d:extra"}, 1);
	assert_int_equal(dl.nr, DEVICE_LIST_MAX);

	/* Destroyed last registered first, and the list is empty after. */
	device_list_destroy(&dl);
	assert_int_equal(dl.nr, 0);
	assert_int_equal(t.n, DEVICE_LIST_MAX);
	assert_string_equal(t.ev[0], "d:dev63");
	assert_string_equal(t.ev[DEVICE_LIST_MAX - 1], "d:com1");
	device_list_destroy(&dl); /* twice is harmless */
	log_set_level(LOG_INFO);
}

static void test_quiesce_resume_order(void **state)
{
	struct device_list dl = {0};
	struct trace t = {0};
	struct fake a, b, c;

	(void)state;
	fake_init(&a, &t, "a", 1);
	fake_init(&b, &t, "b", 2);
	fake_init(&c, &t, "c", 3);
	assert_int_equal(device_register(&dl, "a", &fake_ops, &a), 0);
	assert_int_equal(device_register(&dl, "s", &stateless_ops, &b), 0);
	assert_int_equal(device_register(&dl, "c", &fake_ops, &c), 0);

	assert_int_equal(device_list_quiesce(&dl), 0);
	trace_expect(&t, (const char *const[]){"q:c", "q:b", "q:a"}, 3);
	for (unsigned int i = 0; i < dl.nr; i++)
		assert_true(dl.devs[i].quiesced);
	/* Already quiesced: nothing happens again. */
	assert_int_equal(device_list_quiesce(&dl), 0);
	assert_int_equal(t.n, 0);
	device_list_resume(&dl);
	trace_expect(&t, (const char *const[]){"r:a", "r:b", "r:c"}, 3);
	device_list_resume(&dl); /* nothing is quiesced: nothing happens */
	assert_int_equal(t.n, 0);

	device_list_reset(&dl); /* first registered first; the stateless one has no reset */
	trace_expect(&t, (const char *const[]){"x:a", "x:c"}, 2);

	device_list_destroy(&dl);
	trace_expect(&t, (const char *const[]){"d:c", "d:b", "d:a"}, 3);
}

static void test_quiesce_rollback(void **state)
{
	struct device_list dl = {0};
	struct trace t = {0};
	struct fake a, b, c;

	(void)state;
	log_set_level(LOG_NONE);
	fake_init(&a, &t, "a", 1);
	fake_init(&b, &t, "b", 2);
	fake_init(&c, &t, "c", 3);
	b.quiesce_err = -EIO;
	assert_int_equal(device_register(&dl, "a", &fake_ops, &a), 0);
	assert_int_equal(device_register(&dl, "b", &fake_ops, &b), 0);
	assert_int_equal(device_register(&dl, "c", &fake_ops, &c), 0);

	/* c quiesces, b fails: c is resumed, a never quiesced. */
	assert_int_equal(device_list_quiesce(&dl), -EIO);
	trace_expect(&t, (const char *const[]){"q:c", "Q:b", "r:c"}, 3);
	for (unsigned int i = 0; i < dl.nr; i++)
		assert_false(dl.devs[i].quiesced);

	b.quiesce_err = 0;
	assert_int_equal(device_list_quiesce(&dl), 0);
	trace_expect(&t, (const char *const[]){"q:c", "q:b", "q:a"}, 3);
	device_list_resume(&dl);
	trace_expect(&t, (const char *const[]){"r:a", "r:b", "r:c"}, 3);
	device_list_destroy(&dl);
	log_set_level(LOG_INFO);
}

static void test_state_buffers(void **state)
{
	static const uint8_t want[] = {0xab, 0x34, 0x12, 0x78, 0x56, 0x34, 0x12, 0x08, 0x07, 0x06,
	                               0x05, 0x04, 0x03, 0x02, 0x01, 0x01, 0x00, 'x',  'y'};
	struct dev_state s = {0};
	struct dev_state_in in;
	uint8_t two[2] = {0};
	uint8_t *big;

	(void)state;
	ds_put_u8(&s, 0xab);
	ds_put_u16(&s, 0x1234);
	ds_put_u32(&s, 0x12345678);
	ds_put_u64(&s, 0x0102030405060708ULL);
	ds_put_bool(&s, true);
	ds_put_bool(&s, false);
	ds_put_bytes(&s, "xy", 2);
	assert_int_equal(s.error, 0);
	assert_int_equal(s.len, sizeof(want));
	assert_memory_equal(s.buf, want, sizeof(want)); /* little-endian whatever the host */

	dsi_init(&in, s.buf, s.len);
	assert_int_equal(dsi_get_u8(&in), 0xab);
	assert_int_equal(dsi_get_u16(&in), 0x1234);
	assert_int_equal(dsi_get_u32(&in), 0x12345678);
	assert_true(dsi_get_u64(&in) == 0x0102030405060708ULL);
	assert_true(dsi_get_bool(&in));
	assert_false(dsi_get_bool(&in));
	dsi_get_bytes(&in, two, 2);
	assert_memory_equal(two, "xy", 2);
	assert_false(in.bad);
	assert_int_equal(dsi_finish(&in), 0);

	/* Past the end: zeros, a reason, and the first reason stays. */
	dsi_init(&in, s.buf, 3);
	assert_int_equal(dsi_get_u8(&in), 0xab);
	assert_int_equal(dsi_get_u32(&in), 0);
	assert_true(in.bad);
	assert_non_null(strstr(in.why, "ends early"));
	assert_false(dsi_check(&in, false, "a later reason"));
	assert_null(strstr(in.why, "later"));
	memset(two, 0x55, sizeof(two));
	dsi_get_bytes(&in, two, 2);
	assert_int_equal(two[0], 0);
	assert_int_equal(dsi_finish(&in), -EBADMSG);

	/* A flag byte other than 0 or 1. */
	dsi_init(&in, "\x02", 1);
	dsi_get_bool(&in);
	assert_true(in.bad);
	assert_non_null(strstr(in.why, "flag holds 2"));

	/* dsi_check: true passes, false fails with the reason. */
	dsi_init(&in, "ab", 2);
	assert_true(dsi_check(&in, true, "never"));
	assert_false(dsi_check(&in, false, "count %u too big", 17u));
	assert_string_equal(in.why, "count 17 too big");
	assert_int_equal(dsi_finish(&in), -EBADMSG);

	/* Left-over bytes. */
	dsi_init(&in, "abc", 3);
	dsi_get_u8(&in);
	assert_int_equal(dsi_finish(&in), -EBADMSG);
	assert_non_null(strstr(in.why, "2 bytes of its state are left over"));

	/* A state past the bound fails the buffer, stickily. */
	big = calloc(1, DEVICE_STATE_MAX + DEVICE_NAME_MAX);
	assert_non_null(big);
	ds_put_bytes(&s, big, DEVICE_STATE_MAX + DEVICE_NAME_MAX);
	assert_int_equal(s.error, -EFBIG);
	ds_put_u8(&s, 1);
	assert_int_equal(s.error, -EFBIG);
	assert_int_equal(s.len, sizeof(want));
	free(big);
	ds_release(&s);
	assert_null(s.buf);
	assert_int_equal(s.len, 0);
}

/* ---- save and restore through a snapshot file ---- */

static const struct snap_schema device_schema = {&device_section_type, 1};

struct blob {
	uint8_t *data;
	size_t size;
};

/* Save @dl into a snapshot on a memfd and read the bytes back. */
static int save_to_blob(struct device_list *dl, struct blob *b)
{
	struct snap_writer w;
	int fd = memfd_create("device-test", MFD_CLOEXEC);
	off_t end;
	int r;

	assert_true(fd >= 0);
	assert_int_equal(snap_writer_begin(&w, fd, 1), 0);
	r = device_list_save(dl, &w);
	if (r == 0)
		r = snap_writer_finish(&w);
	if (r < 0) {
		close(fd);
		return r;
	}
	end = lseek(fd, 0, SEEK_END);
	assert_true(end > 0);
	b->size = (size_t)end;
	b->data = malloc(b->size);
	assert_non_null(b->data);
	assert_int_equal(pread(fd, b->data, b->size, 0), (ssize_t)b->size);
	close(fd);
	return 0;
}

/* Parse @b with the device schema and restore @dl from it; the reason goes to @why. */
static int restore_from_blob(struct device_list *dl, const struct blob *b, char *why, size_t len)
{
	struct snap_reader r;
	int err;

	why[0] = 0;
	err = snap_reader_parse(&r, b->data, b->size, &device_schema, "test.snap");
	if (err < 0) {
		snprintf(why, len, "%s", r.error);
		return err;
	}
	err = device_list_restore(dl, &r, why, len);
	snap_reader_release(&r);
	return err;
}

static void expect_restore_error(struct device_list *dl, const struct blob *b, int err,
                                 const char *fragment)
{
	char why[256];
	int got = restore_from_blob(dl, b, why, sizeof(why));

	if (got != err || !strstr(why, fragment))
		print_error("expected %d \"%s\", got %d \"%s\"\n", err, fragment, got, why);
	assert_int_equal(got, err);
	assert_non_null(strstr(why, fragment));
}

/* Three devices, the middle one without state, as com1, console-in, i8042. */
struct setup {
	struct device_list dl;
	struct trace t;
	struct fake f[3];
};

static void setup_init(struct setup *s, const char *const names[3], unsigned int seed,
                       const struct device_ops *first_ops)
{
	memset(s, 0, sizeof(*s));
	for (unsigned int i = 0; i < 3; i++) {
		fake_init(&s->f[i], &s->t, names[i], seed + i);
		assert_int_equal(
		    device_register(&s->dl, names[i],
		                    i == 1 ? &stateless_ops : (i == 0 ? first_ops : &fake_ops),
		                    &s->f[i]),
		    0);
	}
}

static const char *const names[3] = {"com1", "console-in", "i8042"};

static void assert_fake_equal(const struct fake *x, const struct fake *y)
{
	assert_int_equal(x->a, y->a);
	assert_int_equal(x->b, y->b);
	assert_int_equal(x->c, y->c);
	assert_true(x->d == y->d);
	assert_int_equal(x->e, y->e);
	assert_memory_equal(x->blob, y->blob, sizeof(x->blob));
}

static void test_save_restore_round_trip(void **state)
{
	struct setup *src = calloc(1, sizeof(*src)), *dst = calloc(1, sizeof(*dst));
	struct blob b;
	struct snap_reader r;
	const struct snap_section *sec;
	char why[256];

	(void)state;
	assert_non_null(src);
	assert_non_null(dst);
	setup_init(src, names, 1, &fake_ops);
	setup_init(dst, names, 50, &fake_ops);
	assert_int_equal(save_to_blob(&src->dl, &b), 0);

	/* One section per device with state, its instance the device's index. */
	assert_int_equal(snap_reader_parse(&r, b.data, b.size, &device_schema, "t"), 0);
	assert_int_equal(r.nr_sections, 2);
	sec = snap_reader_find(&r, DEVICE_SEC_STATE, 0);
	assert_non_null(sec);
	assert_int_equal(sec->version, 1);
	assert_string_equal((const char *)sec->data, "com1");
	assert_int_equal(sec->length, DEVICE_NAME_MAX + 21); /* 1 + 2 + 4 + 8 + 1 + 5 */
	for (unsigned int i = 4; i < DEVICE_NAME_MAX; i++)
		assert_int_equal(sec->data[i], 0); /* NUL-padded name */
	assert_null(snap_reader_find(&r, DEVICE_SEC_STATE, 1));
	assert_non_null(snap_reader_find(&r, DEVICE_SEC_STATE, 2));
	snap_reader_release(&r);

	assert_int_equal(restore_from_blob(&dst->dl, &b, why, sizeof(why)), 0);
	assert_fake_equal(&dst->f[0], &src->f[0]);
	assert_fake_equal(&dst->f[2], &src->f[2]);
	assert_int_equal(dst->f[1].a, 50 + 0x10 + 1); /* stateless: untouched */

	free(b.data);
	device_list_destroy(&src->dl);
	device_list_destroy(&dst->dl);
	free(src);
	free(dst);
}

/* The writer streams: a pipe works as well as a file. */
struct pipe_reader {
	int fd;
	struct blob b;
};

static void *pipe_drain(void *arg)
{
	struct pipe_reader *p = arg;
	size_t cap = 0;
	ssize_t n;

	do {
		if (p->b.size == cap) {
			cap = cap ? 2 * cap : 4096;
			p->b.data = realloc(p->b.data, cap);
			assert_non_null(p->b.data);
		}
		n = read(p->fd, p->b.data + p->b.size, cap - p->b.size);
		if (n > 0)
			p->b.size += (size_t)n;
	} while (n > 0);
	return NULL;
}

static void test_save_through_pipe(void **state)
{
	struct setup *src = calloc(1, sizeof(*src)), *dst = calloc(1, sizeof(*dst));
	struct pipe_reader p = {0};
	struct snap_writer w;
	pthread_t th;
	int fds[2];
	char why[256];

	(void)state;
	assert_non_null(src);
	assert_non_null(dst);
	setup_init(src, names, 7, &fake_ops);
	setup_init(dst, names, 90, &fake_ops);
	assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
	p.fd = fds[0];
	assert_int_equal(pthread_create(&th, NULL, pipe_drain, &p), 0);
	assert_int_equal(snap_writer_begin(&w, fds[1], 1), 0);
	assert_int_equal(device_list_save(&src->dl, &w), 0);
	assert_int_equal(snap_writer_finish(&w), 0);
	close(fds[1]);
	assert_int_equal(pthread_join(th, NULL), 0);
	close(fds[0]);

	assert_int_equal(restore_from_blob(&dst->dl, &p.b, why, sizeof(why)), 0);
	assert_fake_equal(&dst->f[0], &src->f[0]);
	assert_fake_equal(&dst->f[2], &src->f[2]);
	free(p.b.data);
	device_list_destroy(&src->dl);
	device_list_destroy(&dst->dl);
	free(src);
	free(dst);
}

static void test_restore_refusals(void **state)
{
	static const char *const other[3] = {"com1", "console-in", "rtc"};
	static const char *const fewer[2] = {"com1", "console-in"};
	struct setup *src = calloc(1, sizeof(*src)), *dst = calloc(1, sizeof(*dst));
	struct blob b;

	(void)state;
	assert_non_null(src);
	assert_non_null(dst);
	log_set_level(LOG_NONE);

	/* Another device at the same index. */
	setup_init(src, names, 1, &fake_ops);
	assert_int_equal(save_to_blob(&src->dl, &b), 0);
	setup_init(dst, other, 1, &fake_ops);
	expect_restore_error(&dst->dl, &b, -EBADMSG,
	                     "its device 2 is 'i8042' where this configuration has 'rtc'");
	device_list_destroy(&dst->dl);

	/* A configuration with fewer devices. */
	memset(dst, 0, sizeof(*dst));
	for (unsigned int i = 0; i < 2; i++) {
		fake_init(&dst->f[i], &dst->t, fewer[i], i);
		assert_int_equal(
		    device_register(&dst->dl, fewer[i], i ? &stateless_ops : &fake_ops, &dst->f[i]),
		    0);
	}
	expect_restore_error(&dst->dl, &b, -EBADMSG, "which this configuration");
	device_list_destroy(&dst->dl);
	free(b.data);
	device_list_destroy(&src->dl);

	/* A configuration with more: the snapshot lacks a state. */
	setup_init(src, names, 1, &fake_ops);
	src->dl.nr = 2; /* saved without i8042 */
	assert_int_equal(save_to_blob(&src->dl, &b), 0);
	src->dl.nr = 3;
	setup_init(dst, names, 1, &fake_ops);
	expect_restore_error(&dst->dl, &b, -EBADMSG, "no state for device 2 ('i8042')");
	device_list_destroy(&dst->dl);
	free(b.data);
	device_list_destroy(&src->dl);

	/* A state version newer than this nestvm's. */
	setup_init(src, names, 1, &fake_ops_v2);
	assert_int_equal(save_to_blob(&src->dl, &b), 0);
	setup_init(dst, names, 1, &fake_ops);
	expect_restore_error(&dst->dl, &b, -EPROTONOSUPPORT,
	                     "device 'com1': state version 2 is newer than this nestvm's (1)");
	device_list_destroy(&dst->dl);
	free(b.data);
	device_list_destroy(&src->dl);

	/* Bytes left over, the state cut short, a value restore() refuses. */
	setup_init(src, names, 1, &fake_ops);
	src->f[2].extra = 3;
	assert_int_equal(save_to_blob(&src->dl, &b), 0);
	setup_init(dst, names, 1, &fake_ops);
	expect_restore_error(&dst->dl, &b, -EBADMSG,
	                     "device 'i8042': 3 bytes of its state are left over");
	device_list_destroy(&dst->dl);
	free(b.data);
	src->f[2].extra = -2;
	assert_int_equal(save_to_blob(&src->dl, &b), 0);
	setup_init(dst, names, 1, &fake_ops);
	expect_restore_error(&dst->dl, &b, -EBADMSG, "device 'i8042': its state ends early");
	device_list_destroy(&dst->dl);
	free(b.data);
	src->f[2].extra = 0;
	src->f[0].a = 0xbd;
	assert_int_equal(save_to_blob(&src->dl, &b), 0);
	setup_init(dst, names, 1, &fake_ops);
	expect_restore_error(&dst->dl, &b, -EBADMSG, "device 'com1': a holds the bad value 0xbd");
	device_list_destroy(&dst->dl);
	free(b.data);
	device_list_destroy(&src->dl);

	/* A section shorter than a name: the schema refuses it before any device sees it. */
	{
		struct snap_writer w;
		int fd = memfd_create("short", MFD_CLOEXEC);
		off_t end;

		assert_true(fd >= 0);
		assert_int_equal(snap_writer_begin(&w, fd, 1), 0);
		assert_int_equal(snap_writer_add(&w, DEVICE_SEC_STATE, 0, 1, 0, "com1", 5), 0);
		assert_int_equal(snap_writer_finish(&w), 0);
		end = lseek(fd, 0, SEEK_END);
		b.size = (size_t)end;
		b.data = malloc(b.size);
		assert_non_null(b.data);
		assert_int_equal(pread(fd, b.data, b.size, 0), (ssize_t)b.size);
		close(fd);
		setup_init(dst, names, 1, &fake_ops);
		expect_restore_error(&dst->dl, &b, -EBADMSG, "device 0");
		device_list_destroy(&dst->dl);
		free(b.data);
	}
	log_set_level(LOG_INFO);
	free(src);
	free(dst);
}

/* A save() past DEVICE_STATE_MAX fails the save, naming no partial section. */
static int huge_save(void *dev, struct dev_state *out)
{
	static uint8_t chunk[4096];

	(void)dev;
	for (unsigned int i = 0; i <= DEVICE_STATE_MAX / sizeof(chunk); i++)
		ds_put_bytes(out, chunk, sizeof(chunk));
	return 0;
}

static void test_save_too_big(void **state)
{
	static const struct device_ops huge_ops = {.kind = "huge", .version = 1, .save = huge_save};
	struct device_list dl = {0};
	struct blob b = {0};

	(void)state;
	log_set_level(LOG_NONE);
	assert_int_equal(device_register(&dl, "huge", &huge_ops, NULL), 0);
	assert_int_equal(save_to_blob(&dl, &b), -EFBIG);
	assert_null(b.data);
	device_list_destroy(&dl);
	log_set_level(LOG_INFO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_register_find),
	    cmocka_unit_test(test_quiesce_resume_order),
	    cmocka_unit_test(test_quiesce_rollback),
	    cmocka_unit_test(test_state_buffers),
	    cmocka_unit_test(test_save_restore_round_trip),
	    cmocka_unit_test(test_save_through_pipe),
	    cmocka_unit_test(test_restore_refusals),
	    cmocka_unit_test(test_save_too_big),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
