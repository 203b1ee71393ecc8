/* SPDX-License-Identifier: MIT */
#ifndef NESTVM_SNAPSHOT_FORMAT_H
#define NESTVM_SNAPSHOT_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The nestvm snapshot state file (docs/snapshot.md): a header, a sequence of
 * typed sections, and a trailer. Guest memory is not in this file (it lives
 * in a separate sparse file), so every size here is small and bounded.
 *
 *   header   32 bytes: magic "NESTVMSS", format version, header size,
 *            vCPU count, flags, header CRC32C
 *   section  32-byte section header (type, instance, version, flags, length,
 *            payload CRC32C, header CRC32C), then the payload, then zero
 *            padding to a multiple of 8 bytes
 *   trailer  16 bytes: magic "NESTVMSE", section count, CRC32C of every
 *            byte of the file before this field
 *
 * All integers are little-endian. CRC32C is the Castagnoli CRC (iSCSI,
 * RFC 3720 appendix B.4; polynomial 0x1EDC6F41, reflected).
 *
 * The reader checks everything (sizes, bounds, every checksum, the format
 * and section versions, duplicate, stray and missing sections) before the
 * caller gets a single section, and explains what is wrong in one sentence.
 */

#define SNAP_MAGIC "NESTVMSS"         /* 8 bytes, no NUL */
#define SNAP_TRAILER_MAGIC "NESTVMSE" /* 8 bytes, no NUL */
#define SNAP_FORMAT_VERSION 1
#define SNAP_HEADER_SIZE 32
#define SNAP_SECTION_HEADER_SIZE 32
#define SNAP_TRAILER_SIZE 16
#define SNAP_ALIGN 8

/* Bounds on what a reader accepts (and a writer produces). */
#define SNAP_MAX_FILE_SIZE (64ULL << 20)
#define SNAP_MAX_SECTION_SIZE (16ULL << 20)
#define SNAP_MAX_SECTIONS 65536
#define SNAP_MAX_VCPUS 1024

/* Section flags (in the file). */
#define SNAP_SECTION_F_OPTIONAL (1u << 0) /* a reader that does not know the type may skip it */
#define SNAP_SECTION_F_KNOWN SNAP_SECTION_F_OPTIONAL

/* Section type flags (in a schema). */
#define SNAP_TYPE_PER_VCPU (1u << 0) /* one instance per vCPU: instances 0..nr_vcpus-1 */
#define SNAP_TYPE_REQUIRED (1u << 1) /* every instance must be present */
#define SNAP_TYPE_ANY_SET (1u << 2)  /* any subset of instances; the decoder asks for each */

/*
 * What a reader knows about one section type. A type's instances are either
 * one per vCPU (SNAP_TYPE_PER_VCPU) or 0..max_instances-1. Present
 * instances form a complete set: all of them or, unless SNAP_TYPE_REQUIRED,
 * none (with SNAP_TYPE_ANY_SET, any of them: the decoder knows which it
 * needs). The payload layout is chosen by the section version, in
 * [min_version, max_version]; its length must lie in [min_len, max_len]
 * (the decoder of the type checks the exact length of each version).
 */
struct snap_section_type {
	uint32_t type;
	const char *name;
	unsigned int flags;
	uint32_t max_instances; /* ignored with SNAP_TYPE_PER_VCPU */
	uint32_t min_version, max_version;
	uint64_t min_len, max_len;
};

struct snap_schema {
	const struct snap_section_type *types;
	unsigned int nr_types;
};

/* One section of a parsed snapshot; data points into the reader's buffer. */
struct snap_section {
	uint32_t type;
	uint32_t instance;
	uint32_t version;
	uint32_t flags;
	uint64_t offset; /* of its section header in the file */
	uint64_t length;
	const uint8_t *data;
	const struct snap_section_type *desc; /* NULL: unknown optional section */
};

#define SNAP_ERROR_MAX 256

struct snap_reader {
	char name[128]; /* the file's name, for messages */
	uint8_t *buf;   /* the whole file, owned */
	size_t size;
	uint32_t nr_vcpus;
	struct snap_section *sections;
	unsigned int nr_sections;
	char error[SNAP_ERROR_MAX]; /* why the last call failed */
};

/* crc32c - update @crc (start with 0) over @len bytes; the final value needs no inversion. */
uint32_t crc32c(uint32_t crc, const void *data, size_t len);

/*
 * snap_reader_parse - validate the snapshot in @buf (@size bytes) against
 * @schema and, if it is sound, index its sections. @name (the file name) is
 * used in messages. The reader keeps its own copy of @buf. Returns 0, or
 * -EBADMSG (corrupt, truncated or incomplete), -EPROTONOSUPPORT (a format,
 * section version or section type this nestvm does not know), -EFBIG
 * (over a bound), -ENOMEM; r->error says what is wrong. On failure @r holds
 * nothing to release, but snap_reader_release() is harmless.
 */
int snap_reader_parse(struct snap_reader *r, const void *buf, size_t size,
                      const struct snap_schema *schema, const char *name)
    __attribute__((warn_unused_result));

/*
 * snap_reader_read_fd - read the file @fd (from offset 0, at most
 * SNAP_MAX_FILE_SIZE bytes) and snap_reader_parse() it. The fd is not
 * closed. Same returns, plus -errno of a failed read.
 */
int snap_reader_read_fd(struct snap_reader *r, int fd, const struct snap_schema *schema,
                        const char *name) __attribute__((warn_unused_result));

/* snap_reader_find - the section (@type, @instance), or NULL. */
const struct snap_section *snap_reader_find(const struct snap_reader *r, uint32_t type,
                                            uint32_t instance);

/*
 * snap_reader_fail - set r->error to "snapshot NAME: " and the message, for
 * decoders that find a section unsound; returns @err.
 */
int snap_reader_fail(struct snap_reader *r, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* snap_reader_release - free what the reader holds; twice is harmless. */
void snap_reader_release(struct snap_reader *r);

/*
 * snap_section_name - "vcpu 1 regs" or "clock" for error messages, from the
 * schema's name for @type (or "type 0x...").
 */
void snap_section_name(const struct snap_section_type *desc, uint32_t type, uint32_t instance,
                       char *buf, size_t len);

/*
 * The writer: streams a snapshot to @fd with write(2) only (no seeks), so
 * @fd may be a pipe. Creating the file atomically (a temporary name, fsync,
 * rename) is the caller's job. A write error is sticky: later calls return
 * it again.
 */
struct snap_writer {
	int fd;
	uint32_t crc;    /* over everything written so far */
	uint64_t offset; /* bytes written */
	uint32_t nr_sections;
	int error;
};

/* snap_writer_begin - write the header for @nr_vcpus vCPUs. Returns 0 or -errno. */
int snap_writer_begin(struct snap_writer *w, int fd, uint32_t nr_vcpus)
    __attribute__((warn_unused_result));

/*
 * snap_writer_add - append one section. Returns 0, -EFBIG if it would cross
 * SNAP_MAX_SECTION_SIZE, SNAP_MAX_SECTIONS or SNAP_MAX_FILE_SIZE, -EINVAL on
 * unknown flags, or -errno of write(2).
 */
int snap_writer_add(struct snap_writer *w, uint32_t type, uint32_t instance, uint32_t version,
                    uint32_t flags, const void *data, uint64_t len)
    __attribute__((warn_unused_result));

/* snap_writer_finish - write the trailer. Returns 0 or -errno. */
int snap_writer_finish(struct snap_writer *w) __attribute__((warn_unused_result));

#endif
