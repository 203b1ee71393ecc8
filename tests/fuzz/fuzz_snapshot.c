/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the snapshot state file reader and the x86 KVM state
 * decoders on arbitrary bytes. A snapshot is untrusted input: whatever it
 * holds, parsing must fail with a message or yield sections that lie inside
 * the file, and what decodes must write back into a snapshot that parses
 * again. The same bytes go through the whole-VM schema too (the machine
 * section and the devices' sections, snapshot/vm_snapshot.h), whose
 * refusals must explain themselves as well. Each input is tried twice: as it is (the checksums must catch
 * damage) and with every checksum recomputed (so that the fuzzer reaches the
 * bounds, schema and decoder checks behind them).
 */
#include "arch/x86/vcpu_state.h"
#include "snapshot/format.h"
#include "snapshot/vm_snapshot.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Write what decoded back out and parse it again: it must be accepted. */
static void fuzz_rewrite(struct vcpu_state *v, uint32_t n, const struct vm_kvm_state *vm)
{
	static int fd = -1;
	struct snap_writer w;
	struct snap_reader r;
	uint32_t i;

	if (fd < 0)
		fd = memfd_create("fuzz-snapshot", MFD_CLOEXEC);
	if (fd < 0 || ftruncate(fd, 0) < 0 || lseek(fd, 0, SEEK_SET) < 0)
		abort();
	if (snap_writer_begin(&w, fd, n) < 0)
		abort();
	for (i = 0; i < n; i++)
		if (vcpu_state_write(&w, i, &v[i]) < 0)
			abort();
	if (vm_kvm_state_write(&w, vm) < 0 || snap_writer_finish(&w) < 0)
		abort();
	if (snap_reader_read_fd(&r, fd, &vcpu_state_schema, "rewrite") < 0) {
		fprintf(stderr, "%s\n", r.error);
		abort();
	}
	snap_reader_release(&r);
}

static void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

/* Recompute every CRC a well-formed writer would have written, as far as the layout goes. */
static void fuzz_reseal(uint8_t *b, size_t size)
{
	uint64_t off = SNAP_HEADER_SIZE, end, len;

	if (size < SNAP_HEADER_SIZE + SNAP_TRAILER_SIZE)
		return;
	put32(b + 28, crc32c(0, b, 28));
	end = size - SNAP_TRAILER_SIZE;
	while (end - off >= SNAP_SECTION_HEADER_SIZE) {
		memcpy(&len, b + off + 16, 8);
		if (len > end - off - SNAP_SECTION_HEADER_SIZE)
			break;
		put32(b + off + 24, crc32c(0, b + off + SNAP_SECTION_HEADER_SIZE, (size_t)len));
		put32(b + off + 28, crc32c(0, b + off, 28));
		off +=
		    SNAP_SECTION_HEADER_SIZE + len + (SNAP_ALIGN - len % SNAP_ALIGN) % SNAP_ALIGN;
		if (off > end)
			break;
	}
	put32(b + size - 4, crc32c(0, b, size - 4));
}

/* The whole-VM schema: a refusal explains itself; what parses has its machine decoded. */
static void fuzz_vm(const uint8_t *data, size_t size)
{
	struct snapshot_machine m;
	struct snap_reader r;

	if (vm_snapshot_parse(&r, data, size, "fuzz", &m) < 0) {
		if (strncmp(r.error, "snapshot fuzz: ", 15) != 0 || !r.error[15])
			abort();
	} else if (m.nr_vcpus != r.nr_vcpus || !m.ram_size || m.nr_devices > DEVICE_LIST_MAX) {
		abort();
	}
	snap_reader_release(&r);
}

static void fuzz_one(const uint8_t *data, size_t size)
{
	struct snap_reader r;
	struct vcpu_state *v;
	struct vm_kvm_state vm;
	uint32_t n = 0;
	int err;

	fuzz_vm(data, size);
	err = snap_reader_parse(&r, data, size, &vcpu_state_schema, "fuzz");
	if (err) {
		/* Every refusal explains itself. */
		if (strncmp(r.error, "snapshot fuzz: ", 15) != 0 || !r.error[15])
			abort();
		snap_reader_release(&r);
		return;
	}
	for (uint32_t i = 0; i < r.nr_sections; i++) {
		const struct snap_section *s = &r.sections[i];

		if (s->data < r.buf || s->data + s->length > r.buf + r.size)
			abort();
	}
	v = calloc(r.nr_vcpus, sizeof(*v));
	if (!v)
		abort();
	for (; n < r.nr_vcpus; n++)
		if (vcpu_state_read(&r, n, &v[n]) < 0)
			break;
	if (n == r.nr_vcpus && vm_kvm_state_read(&r, &vm) == 0)
		fuzz_rewrite(v, n, &vm);
	for (uint32_t i = 0; i < n; i++)
		vcpu_state_release(&v[i]);
	free(v);
	snap_reader_release(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *copy;

	fuzz_one(data, size);
	if (size > SNAP_MAX_FILE_SIZE)
		return 0;
	copy = malloc(size ? size : 1);
	if (!copy)
		abort();
	memcpy(copy, data, size);
	fuzz_reseal(copy, size);
	fuzz_one(copy, size);
	free(copy);
	return 0;
}
