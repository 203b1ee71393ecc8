/* SPDX-License-Identifier: MIT */
/*
 * The snapshot state file: writer and validating reader (format.h,
 * docs/snapshot.md). The reader trusts nothing in the file: every length is
 * checked against what is left before it is used, every checksum before the
 * bytes it covers are interpreted, and the schema (types, versions, lengths,
 * instances) before the caller sees a section.
 */
#include "snapshot/format.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- CRC32C (Castagnoli), reflected polynomial 0x82F63B78 ---- */

static uint32_t crc32c_table[8][256];
static pthread_once_t crc32c_once = PTHREAD_ONCE_INIT;

static void crc32c_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1)));
		crc32c_table[0][i] = c;
	}
	/* Slicing-by-8 tables: table[k][i] is table[0] applied k more bytes on. */
	for (uint32_t i = 0; i < 256; i++)
		for (int k = 1; k < 8; k++)
			crc32c_table[k][i] = (crc32c_table[k - 1][i] >> 8) ^
			                     crc32c_table[0][crc32c_table[k - 1][i] & 0xff];
}

uint32_t crc32c(uint32_t crc, const void *data, size_t len)
{
	const uint8_t *p = data;

	pthread_once(&crc32c_once, crc32c_init);
	crc = ~crc;
	while (len >= 8) {
		uint32_t lo, hi;

		memcpy(&lo, p, 4);
		memcpy(&hi, p + 4, 4);
		lo ^= crc;
		crc = crc32c_table[7][lo & 0xff] ^ crc32c_table[6][(lo >> 8) & 0xff] ^
		      crc32c_table[5][(lo >> 16) & 0xff] ^ crc32c_table[4][lo >> 24] ^
		      crc32c_table[3][hi & 0xff] ^ crc32c_table[2][(hi >> 8) & 0xff] ^
		      crc32c_table[1][(hi >> 16) & 0xff] ^ crc32c_table[0][hi >> 24];
		p += 8;
		len -= 8;
	}
	while (len--)
		crc = (crc >> 8) ^ crc32c_table[0][(crc ^ *p++) & 0xff];
	return ~crc;
}

/* ---- little-endian fields (x86 is little-endian; memcpy keeps it alignment-safe) ---- */

static uint32_t get32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

static void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

static void put64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

/*
 * Header (32 bytes):   0 magic[8]  8 u32 format_version  12 u32 header_size
 *                      16 u32 nr_vcpus  20 u32 flags  24 u32 reserved
 *                      28 u32 crc32c(bytes 0..27)
 * Section header:      0 u32 type  4 u32 instance  8 u32 version  12 u32 flags
 *                      16 u64 length  24 u32 payload crc32c
 *                      28 u32 crc32c(bytes 0..27)
 * Trailer (16 bytes):  0 magic[8]  8 u32 nr_sections
 *                      12 u32 crc32c(every byte of the file before this field)
 */
#define HDR_OFF_VERSION 8
#define HDR_OFF_SIZE 12
#define HDR_OFF_NR_VCPUS 16
#define HDR_OFF_FLAGS 20
#define HDR_OFF_CRC 28
#define SEC_OFF_TYPE 0
#define SEC_OFF_INSTANCE 4
#define SEC_OFF_VERSION 8
#define SEC_OFF_FLAGS 12
#define SEC_OFF_LENGTH 16
#define SEC_OFF_PCRC 24
#define SEC_OFF_HCRC 28
#define TRL_OFF_NR 8
#define TRL_OFF_CRC 12

static uint64_t snap_pad(uint64_t len)
{
	return (SNAP_ALIGN - (len % SNAP_ALIGN)) % SNAP_ALIGN;
}

/* ---- writer ---- */

static int snap_writer_out(struct snap_writer *w, const void *data, size_t len)
{
	const uint8_t *p = data;

	if (w->error)
		return w->error;
	w->crc = crc32c(w->crc, data, len);
	while (len) {
		ssize_t n = write(w->fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			/* A full disk may show as a short write and then ENOSPC; both fail. */
			w->error = n < 0 ? -errno : -ENOSPC;
			return w->error;
		}
		p += n;
		len -= (size_t)n;
		w->offset += (uint64_t)n;
	}
	return 0;
}

int snap_writer_begin(struct snap_writer *w, int fd, uint32_t nr_vcpus)
{
	uint8_t h[SNAP_HEADER_SIZE] = {0};

	*w = (struct snap_writer){.fd = fd};
	if (nr_vcpus == 0 || nr_vcpus > SNAP_MAX_VCPUS)
		return w->error = -EINVAL;
	memcpy(h, SNAP_MAGIC, 8);
	put32(h + HDR_OFF_VERSION, SNAP_FORMAT_VERSION);
	put32(h + HDR_OFF_SIZE, SNAP_HEADER_SIZE);
	put32(h + HDR_OFF_NR_VCPUS, nr_vcpus);
	put32(h + HDR_OFF_CRC, crc32c(0, h, HDR_OFF_CRC));
	return snap_writer_out(w, h, sizeof(h));
}

int snap_writer_add(struct snap_writer *w, uint32_t type, uint32_t instance, uint32_t version,
                    uint32_t flags, const void *data, uint64_t len)
{
	static const uint8_t zeros[SNAP_ALIGN];
	uint8_t h[SNAP_SECTION_HEADER_SIZE] = {0};
	uint64_t total = SNAP_SECTION_HEADER_SIZE + len + snap_pad(len);
	int r;

	if (w->error)
		return w->error;
	if (flags & ~SNAP_SECTION_F_KNOWN)
		return -EINVAL;
	if (len > SNAP_MAX_SECTION_SIZE || w->nr_sections >= SNAP_MAX_SECTIONS ||
	    w->offset + total + SNAP_TRAILER_SIZE > SNAP_MAX_FILE_SIZE)
		return -EFBIG;
	put32(h + SEC_OFF_TYPE, type);
	put32(h + SEC_OFF_INSTANCE, instance);
	put32(h + SEC_OFF_VERSION, version);
	put32(h + SEC_OFF_FLAGS, flags);
	put64(h + SEC_OFF_LENGTH, len);
	put32(h + SEC_OFF_PCRC, crc32c(0, data, (size_t)len));
	put32(h + SEC_OFF_HCRC, crc32c(0, h, SEC_OFF_HCRC));
	r = snap_writer_out(w, h, sizeof(h));
	if (r == 0 && len)
		r = snap_writer_out(w, data, (size_t)len);
	if (r == 0 && snap_pad(len))
		r = snap_writer_out(w, zeros, (size_t)snap_pad(len));
	if (r == 0)
		w->nr_sections++;
	return r;
}

int snap_writer_finish(struct snap_writer *w)
{
	uint8_t t[SNAP_TRAILER_SIZE];
	int r;

	memcpy(t, SNAP_TRAILER_MAGIC, 8);
	put32(t + TRL_OFF_NR, w->nr_sections);
	r = snap_writer_out(w, t, TRL_OFF_CRC);
	if (r < 0)
		return r;
	put32(t + TRL_OFF_CRC, w->crc);
	return snap_writer_out(w, t + TRL_OFF_CRC, 4);
}

/* ---- reader ---- */

static int snap_vfail(struct snap_reader *r, int err, const char *fmt, va_list ap)
{
	int n = snprintf(r->error, sizeof(r->error), "snapshot %s: ", r->name);

	if (n < 0 || (size_t)n >= sizeof(r->error))
		n = 0;
	vsnprintf(r->error + n, sizeof(r->error) - (size_t)n, fmt, ap);
	return err;
}

int snap_reader_fail(struct snap_reader *r, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	err = snap_vfail(r, err, fmt, ap);
	va_end(ap);
	return err;
}

/* The parser's own messages; @name is unused (r->name holds it). */
#define snap_fail(r, err, name, ...) ((void)(name), snap_reader_fail((r), (err), __VA_ARGS__))

void snap_section_name(const struct snap_section_type *desc, uint32_t type, uint32_t instance,
                       char *buf, size_t len)
{
	const char *n = desc ? desc->name : NULL;

	if (!n) {
		snprintf(buf, len, "type 0x%x instance %u", type, instance);
		return;
	}
	if (desc && (desc->flags & SNAP_TYPE_PER_VCPU))
		snprintf(buf, len, "vcpu %u %s", instance, n);
	else if (desc && desc->max_instances <= 1)
		snprintf(buf, len, "%s", n);
	else
		snprintf(buf, len, "%s %u", n, instance);
}

static const struct snap_section_type *snap_schema_find(const struct snap_schema *s, uint32_t type)
{
	for (unsigned int i = 0; i < s->nr_types; i++)
		if (s->types[i].type == type)
			return &s->types[i];
	return NULL;
}

void snap_reader_release(struct snap_reader *r)
{
	/* name and error stay: a caller may still report them. */
	free(r->buf);
	free(r->sections);
	r->buf = NULL;
	r->sections = NULL;
	r->size = 0;
	r->nr_sections = 0;
}

/* Sections are kept sorted by (type, instance) once validated. */
static int snap_section_cmp(const void *a, const void *b)
{
	const struct snap_section *x = a, *y = b;

	if (x->type != y->type)
		return x->type < y->type ? -1 : 1;
	if (x->instance != y->instance)
		return x->instance < y->instance ? -1 : 1;
	return 0;
}

const struct snap_section *snap_reader_find(const struct snap_reader *r, uint32_t type,
                                            uint32_t instance)
{
	struct snap_section key = {.type = type, .instance = instance};

	if (!r->nr_sections)
		return NULL;
	return bsearch(&key, r->sections, r->nr_sections, sizeof(key), snap_section_cmp);
}

/* The header: magic, then its own checksum, then what it says. */
static int snap_check_header(struct snap_reader *r, const uint8_t *b, size_t size, const char *name)
{
	uint32_t version, hsize, flags;

	if (size < 8 || memcmp(b, SNAP_MAGIC, 8) != 0)
		return snap_fail(r, -EBADMSG, name, "not a nestvm snapshot (no \"%s\" magic)",
		                 SNAP_MAGIC);
	if (size < SNAP_HEADER_SIZE + SNAP_TRAILER_SIZE)
		return snap_fail(r, -EBADMSG, name,
		                 "truncated: %zu bytes, less than a header "
		                 "and a trailer",
		                 size);
	if (get32(b + HDR_OFF_CRC) != crc32c(0, b, HDR_OFF_CRC))
		return snap_fail(r, -EBADMSG, name, "header checksum mismatch (corrupt file)");
	version = get32(b + HDR_OFF_VERSION);
	hsize = get32(b + HDR_OFF_SIZE);
	flags = get32(b + HDR_OFF_FLAGS);
	if (version != SNAP_FORMAT_VERSION)
		return snap_fail(r, -EPROTONOSUPPORT, name,
		                 "format version %u is %s than this nestvm reads (%u)", version,
		                 version > SNAP_FORMAT_VERSION ? "newer" : "other",
		                 SNAP_FORMAT_VERSION);
	if (hsize != SNAP_HEADER_SIZE || flags != 0 || get32(b + 24) != 0)
		return snap_fail(r, -EBADMSG, name, "bad header (size %u, flags 0x%x)", hsize,
		                 flags);
	r->nr_vcpus = get32(b + HDR_OFF_NR_VCPUS);
	if (r->nr_vcpus == 0 || r->nr_vcpus > SNAP_MAX_VCPUS)
		return snap_fail(r, -EBADMSG, name, "bad vCPU count %u (1 to %u)", r->nr_vcpus,
		                 SNAP_MAX_VCPUS);
	return 0;
}

/* Walk the sections between header and trailer; every byte is accounted for. */
static int snap_walk_sections(struct snap_reader *r, const struct snap_schema *schema,
                              const char *name)
{
	const uint8_t *b = r->buf;
	uint64_t end = r->size - SNAP_TRAILER_SIZE;
	uint64_t off = SNAP_HEADER_SIZE;
	uint32_t declared = get32(b + end + TRL_OFF_NR);
	char sname[64];

	unsigned int cap = 0;

	while (off < end) {
		const uint8_t *h = b + off;
		struct snap_section *s;
		uint64_t left = end - off;

		if (r->nr_sections == cap) {
			struct snap_section *ns;

			if (cap == SNAP_MAX_SECTIONS)
				return snap_fail(r, -EFBIG, name, "more than %u sections",
				                 SNAP_MAX_SECTIONS);
			cap = cap ? cap * 2 : 32;
			ns = realloc(r->sections, cap * sizeof(*ns));
			if (!ns)
				return snap_fail(r, -ENOMEM, name, "out of memory");
			r->sections = ns;
		}
		s = &r->sections[r->nr_sections];
		memset(s, 0, sizeof(*s));
		if (left < SNAP_SECTION_HEADER_SIZE)
			return snap_fail(r, -EBADMSG, name,
			                 "truncated section header at offset "
			                 "%llu",
			                 (unsigned long long)off);
		if (get32(h + SEC_OFF_HCRC) != crc32c(0, h, SEC_OFF_HCRC))
			return snap_fail(r, -EBADMSG, name,
			                 "section header #%u at offset %llu: "
			                 "checksum mismatch (corrupt file)",
			                 r->nr_sections + 1, (unsigned long long)off);
		s->type = get32(h + SEC_OFF_TYPE);
		s->instance = get32(h + SEC_OFF_INSTANCE);
		s->version = get32(h + SEC_OFF_VERSION);
		s->flags = get32(h + SEC_OFF_FLAGS);
		s->length = get64(h + SEC_OFF_LENGTH);
		s->offset = off;
		s->desc = snap_schema_find(schema, s->type);
		snap_section_name(s->desc, s->type, s->instance, sname, sizeof(sname));
		if (s->length > SNAP_MAX_SECTION_SIZE)
			return snap_fail(r, -EFBIG, name,
			                 "section '%s': length %llu over the "
			                 "limit of %llu",
			                 sname, (unsigned long long)s->length,
			                 (unsigned long long)SNAP_MAX_SECTION_SIZE);
		left -= SNAP_SECTION_HEADER_SIZE;
		if (s->length + snap_pad(s->length) > left)
			return snap_fail(r, -EBADMSG, name,
			                 "section '%s': length %llu runs past "
			                 "the end of the file (truncated?)",
			                 sname, (unsigned long long)s->length);
		s->data = h + SNAP_SECTION_HEADER_SIZE;
		if (get32(h + SEC_OFF_PCRC) != crc32c(0, s->data, (size_t)s->length))
			return snap_fail(r, -EBADMSG, name, "section '%s' checksum mismatch",
			                 sname);
		for (uint64_t i = 0; i < snap_pad(s->length); i++)
			if (s->data[s->length + i])
				return snap_fail(r, -EBADMSG, name,
				                 "section '%s': non-zero "
				                 "padding",
				                 sname);
		if (s->flags & ~SNAP_SECTION_F_KNOWN)
			return snap_fail(r, -EPROTONOSUPPORT, name,
			                 "section '%s': unknown flags "
			                 "0x%x (written by a newer nestvm?)",
			                 sname, s->flags);
		off += SNAP_SECTION_HEADER_SIZE + s->length + snap_pad(s->length);
		r->nr_sections++;
	}
	if (r->nr_sections != declared)
		return snap_fail(r, -EBADMSG, name, "%u sections found, the trailer declares %u",
		                 r->nr_sections, declared);
	return 0;
}

/* Per section: a known type, a known version, a plausible length, a valid instance. */
static int snap_check_section(struct snap_reader *r, const struct snap_section *s, const char *name)
{
	const struct snap_section_type *d = s->desc;
	char sname[64];
	uint32_t n;

	snap_section_name(d, s->type, s->instance, sname, sizeof(sname));
	if (!d) {
		if (s->flags & SNAP_SECTION_F_OPTIONAL)
			return 0;
		return snap_fail(r, -EPROTONOSUPPORT, name,
		                 "section '%s' is of a kind this "
		                 "nestvm does not know (written by a newer nestvm?)",
		                 sname);
	}
	if (s->version < d->min_version || s->version > d->max_version)
		return snap_fail(r, -EPROTONOSUPPORT, name,
		                 "section '%s': version %u not "
		                 "supported (this nestvm reads %u to %u)",
		                 sname, s->version, d->min_version, d->max_version);
	if (s->length < d->min_len || s->length > d->max_len)
		return snap_fail(r, -EBADMSG, name, "section '%s': length %llu outside %llu..%llu",
		                 sname, (unsigned long long)s->length,
		                 (unsigned long long)d->min_len, (unsigned long long)d->max_len);
	n = (d->flags & SNAP_TYPE_PER_VCPU) ? r->nr_vcpus : d->max_instances;
	if (s->instance >= n)
		return snap_fail(r, -EBADMSG, name,
		                 "section '%s': instance %u out of range "
		                 "(%u %s)",
		                 sname, s->instance, n,
		                 (d->flags & SNAP_TYPE_PER_VCPU) ? "vCPUs" : "instances");
	return 0;
}

/*
 * Across sections: no duplicates, and each type's instances complete
 * (all of them, or none for a type that is not required).
 */
static int snap_check_sets(struct snap_reader *r, const struct snap_schema *schema,
                           const char *name)
{
	char sname[64];

	if (r->nr_sections)
		qsort(r->sections, r->nr_sections, sizeof(r->sections[0]), snap_section_cmp);
	for (unsigned int i = 1; i < r->nr_sections; i++) {
		const struct snap_section *a = &r->sections[i - 1], *b = &r->sections[i];

		if (snap_section_cmp(a, b) == 0) {
			snap_section_name(a->desc, a->type, a->instance, sname, sizeof(sname));
			return snap_fail(r, -EBADMSG, name, "section '%s' appears twice", sname);
		}
	}
	for (unsigned int t = 0; t < schema->nr_types; t++) {
		const struct snap_section_type *d = &schema->types[t];
		uint32_t n = (d->flags & SNAP_TYPE_PER_VCPU) ? r->nr_vcpus : d->max_instances;
		uint32_t present = 0, missing = UINT32_MAX;

		if (d->flags & SNAP_TYPE_ANY_SET)
			continue;
		/* No duplicates and no strays, so counting is enough to find a gap. */
		for (uint32_t k = 0; k < n; k++) {
			if (snap_reader_find(r, d->type, k))
				present++;
			else if (missing == UINT32_MAX)
				missing = k;
		}
		if (present == n || (present == 0 && !(d->flags & SNAP_TYPE_REQUIRED)))
			continue;
		snap_section_name(d, d->type, missing, sname, sizeof(sname));
		return snap_fail(r, -EBADMSG, name, "section '%s' is missing", sname);
	}
	return 0;
}

int snap_reader_parse(struct snap_reader *r, const void *buf, size_t size,
                      const struct snap_schema *schema, const char *name)
{
	const uint8_t *b = buf;
	int err;

	*r = (struct snap_reader){0};
	snprintf(r->name, sizeof(r->name), "%s", name ? name : "(unnamed)");
	if (size > SNAP_MAX_FILE_SIZE)
		return snap_fail(r, -EFBIG, name, "%zu bytes, over the limit of %llu", size,
		                 (unsigned long long)SNAP_MAX_FILE_SIZE);
	err = snap_check_header(r, b, size, name);
	if (err)
		return err;
	if (memcmp(b + size - SNAP_TRAILER_SIZE, SNAP_TRAILER_MAGIC, 8) != 0)
		return snap_fail(r, -EBADMSG, name,
		                 "truncated or damaged: no end marker in the "
		                 "last %d bytes",
		                 SNAP_TRAILER_SIZE);
	r->buf = malloc(size);
	if (!r->buf)
		return snap_fail(r, -ENOMEM, name, "out of memory");
	memcpy(r->buf, b, size);
	r->size = size;
	err = snap_walk_sections(r, schema, name);
	/* The whole-file checksum also covers padding and the trailer's count. */
	if (!err && get32(r->buf + size - SNAP_TRAILER_SIZE + TRL_OFF_CRC) !=
	                crc32c(0, r->buf, size - SNAP_TRAILER_SIZE + TRL_OFF_CRC))
		err = snap_fail(r, -EBADMSG, name, "file checksum mismatch (corrupt file)");
	for (unsigned int i = 0; !err && i < r->nr_sections; i++)
		err = snap_check_section(r, &r->sections[i], name);
	if (!err)
		err = snap_check_sets(r, schema, name);
	if (err)
		snap_reader_release(r);
	return err;
}

int snap_reader_read_fd(struct snap_reader *r, int fd, const struct snap_schema *schema,
                        const char *name)
{
	struct stat st;
	uint8_t *buf;
	size_t got = 0, cap;
	int err;

	*r = (struct snap_reader){0};
	snprintf(r->name, sizeof(r->name), "%s", name ? name : "(unnamed)");
	if (fstat(fd, &st) < 0)
		return snap_fail(r, -errno, name, "%s", strerror(errno));
	if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > SNAP_MAX_FILE_SIZE)
		return snap_fail(r, -EFBIG, name, "%llu bytes, over the limit of %llu",
		                 (unsigned long long)st.st_size,
		                 (unsigned long long)SNAP_MAX_FILE_SIZE);
	/* One byte more than allowed, to tell "too big" from "exactly the limit". */
	cap = S_ISREG(st.st_mode) ? (size_t)st.st_size + 1 : (size_t)SNAP_MAX_FILE_SIZE + 1;
	buf = malloc(cap ? cap : 1);
	if (!buf)
		return snap_fail(r, -ENOMEM, name, "out of memory");
	for (;;) {
		ssize_t n = S_ISREG(st.st_mode) ? pread(fd, buf + got, cap - got, (off_t)got)
		                                : read(fd, buf + got, cap - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = -errno;
			free(buf);
			return snap_fail(r, err, name, "read failed: %s", strerror(-err));
		}
		if (n == 0)
			break;
		got += (size_t)n;
		if (got == cap) {
			if (cap > SNAP_MAX_FILE_SIZE) {
				free(buf);
				return snap_fail(r, -EFBIG, name, "over the limit of %llu bytes",
				                 (unsigned long long)SNAP_MAX_FILE_SIZE);
			}
			/* A regular file that grew under us: read on, up to the limit. */
			uint8_t *nb = realloc(buf, (size_t)SNAP_MAX_FILE_SIZE + 1);

			if (!nb) {
				free(buf);
				return snap_fail(r, -ENOMEM, name, "out of memory");
			}
			buf = nb;
			cap = (size_t)SNAP_MAX_FILE_SIZE + 1;
		}
	}
	err = snap_reader_parse(r, buf, got, schema, name);
	free(buf);
	return err;
}
