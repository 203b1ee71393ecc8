/* SPDX-License-Identifier: MIT */
/*
 * Unit tests: the snapshot state file format (src/snapshot/format.c) and the
 * x86 KVM state sections (src/arch/x86/vcpu_state.c) without KVM. Every
 * truncation and every single-bit flip of a snapshot must be refused, with a
 * message that names what is wrong.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "arch/x86/vcpu_state.h"
#include "snapshot/format.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

enum { T_REGS = 1, T_OPT = 2, T_CLOCK = 3, T_CHIP = 4, T_UNKNOWN = 99 };

static const struct snap_section_type test_types[] = {
    {T_REGS, "regs", SNAP_TYPE_PER_VCPU | SNAP_TYPE_REQUIRED, 0, 1, 2, 8, 64},
    {T_OPT, "opt", SNAP_TYPE_PER_VCPU, 0, 1, 1, 0, 64},
    {T_CLOCK, "clock", SNAP_TYPE_REQUIRED, 1, 1, 1, 8, 8},
    {T_CHIP, "chip", 0, 3, 1, 1, 1, 100},
};
static const struct snap_schema test_schema = {test_types, 4};

#define NAME "test.snap"

/* What a writer wrote to a memfd, read back. */
struct blob {
	uint8_t *data;
	size_t size;
};

static void blob_from_fd(int fd, struct blob *b)
{
	off_t end = lseek(fd, 0, SEEK_END);

	assert_true(end > 0);
	b->size = (size_t)end;
	b->data = malloc(b->size);
	assert_non_null(b->data);
	assert_int_equal(pread(fd, b->data, b->size, 0), (ssize_t)b->size);
	close(fd);
}

static int new_memfd(void)
{
	int fd = memfd_create("snap", MFD_CLOEXEC);

	assert_true(fd >= 0);
	return fd;
}

/* A valid snapshot: 2 vCPUs, regs and opt for both, clock, 3 chips. */
static void write_sample(struct blob *b, bool skip_opt1, bool dup_clock)
{
	struct snap_writer w;
	uint64_t regs[2][4] = {{1, 2, 3, 4}, {5, 6, 7, 8}};
	uint64_t clock = 0x1122334455667788ULL;
	const char *opt = "optional!"; /* 9 bytes: padded */
	int fd = new_memfd();

	assert_int_equal(snap_writer_begin(&w, fd, 2), 0);
	for (uint32_t i = 0; i < 2; i++) {
		assert_int_equal(snap_writer_add(&w, T_REGS, i, 1, 0, regs[i], sizeof(regs[i])), 0);
		if (!(skip_opt1 && i == 1))
			assert_int_equal(snap_writer_add(&w, T_OPT, i, 1, 0, opt, strlen(opt)), 0);
	}
	assert_int_equal(snap_writer_add(&w, T_CLOCK, 0, 1, 0, &clock, sizeof(clock)), 0);
	if (dup_clock)
		assert_int_equal(snap_writer_add(&w, T_CLOCK, 0, 1, 0, &clock, sizeof(clock)), 0);
	for (uint32_t i = 0; i < 3; i++)
		assert_int_equal(snap_writer_add(&w, T_CHIP, i, 1, 0, "c", 1), 0);
	assert_int_equal(snap_writer_finish(&w), 0);
	blob_from_fd(fd, b);
}

/* Re-seal a blob after a deliberate edit, so only the edit itself is wrong. */
static void fix_crcs(uint8_t *d, size_t size, uint64_t section_off)
{
	uint32_t c;

	c = crc32c(0, d, 28);
	memcpy(d + 28, &c, 4);
	if (section_off) {
		c = crc32c(0, d + section_off, 28);
		memcpy(d + section_off + 28, &c, 4);
	}
	c = crc32c(0, d, size - 4);
	memcpy(d + size - 4, &c, 4);
}

static int parse(const struct blob *b, size_t size, struct snap_reader *r)
{
	return snap_reader_parse(r, b->data, size, &test_schema, NAME);
}

static void expect_error(const struct blob *b, int err, const char *fragment)
{
	struct snap_reader r;
	int got = parse(b, b->size, &r);

	if (got != err || !strstr(r.error, fragment))
		print_error("expected %d \"%s\", got %d \"%s\"\n", err, fragment, got, r.error);
	assert_int_equal(got, err);
	assert_non_null(strstr(r.error, fragment));
	assert_non_null(strstr(r.error, "snapshot " NAME ": "));
	assert_null(r.sections);
	snap_reader_release(&r);
}

static void test_crc32c_vector(void **state)
{
	(void)state;
	/* RFC 3720 B.4 check value of "123456789". */
	assert_int_equal(crc32c(0, "123456789", 9), 0xe3069283);
	/* Chaining equals one pass; the 8-byte path equals the byte path. */
	assert_int_equal(crc32c(crc32c(0, "1234", 4), "56789", 5), 0xe3069283);
	assert_int_equal(crc32c(0, NULL, 0), 0);
}

static void test_round_trip(void **state)
{
	struct blob b;
	struct snap_reader r;
	const struct snap_section *s;
	uint64_t v;

	(void)state;
	write_sample(&b, false, false);
	assert_int_equal(b.size % 8, 0);
	assert_int_equal(parse(&b, b.size, &r), 0);
	assert_int_equal(r.nr_vcpus, 2);
	assert_int_equal(r.nr_sections, 8);
	s = snap_reader_find(&r, T_REGS, 1);
	assert_non_null(s);
	assert_int_equal(s->length, 32);
	memcpy(&v, s->data + 8, 8);
	assert_int_equal(v, 6);
	s = snap_reader_find(&r, T_OPT, 0);
	assert_non_null(s);
	assert_memory_equal(s->data, "optional!", 9);
	s = snap_reader_find(&r, T_CLOCK, 0);
	memcpy(&v, s->data, 8);
	assert_int_equal(v, 0x1122334455667788ULL);
	assert_null(snap_reader_find(&r, T_CLOCK, 1));
	snap_reader_release(&r);
	snap_reader_release(&r);

	/* A snapshot without the optional set at all is fine too. */
	{
		struct snap_writer w;
		int fd = new_memfd();
		uint64_t x = 0;

		assert_int_equal(snap_writer_begin(&w, fd, 1), 0);
		assert_int_equal(snap_writer_add(&w, T_REGS, 0, 2, 0, &x, 8), 0);
		assert_int_equal(snap_writer_add(&w, T_CLOCK, 0, 1, 0, &x, 8), 0);
		assert_int_equal(snap_writer_finish(&w), 0);
		assert_int_equal(snap_reader_read_fd(&r, fd, &test_schema, NAME), 0);
		assert_int_equal(r.nr_sections, 2);
		snap_reader_release(&r);
		close(fd);
	}
	free(b.data);
}

static void test_truncated(void **state)
{
	struct blob b;
	struct snap_reader r;

	(void)state;
	write_sample(&b, false, false);
	for (size_t n = 0; n < b.size; n++) {
		int err = parse(&b, n, &r);

		if (err == 0)
			print_error("a snapshot cut to %zu of %zu bytes was accepted\n", n, b.size);
		assert_true(err < 0);
		assert_non_null(strstr(r.error, "snapshot " NAME ": "));
		snap_reader_release(&r);
	}
	/* A cut inside a section says so. */
	b.size -= 24;
	memcpy(b.data + b.size - 16, "NESTVMSE", 8); /* a forged end marker */
	expect_error(&b, -EBADMSG, "truncated");
	free(b.data);
}

static void test_flipped_bits(void **state)
{
	struct blob b;
	struct snap_reader r;
	const struct snap_section *s;
	uint64_t off;

	(void)state;
	write_sample(&b, false, false);
	for (size_t bit = 0; bit < b.size * 8; bit++) {
		int err;

		b.data[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		err = parse(&b, b.size, &r);
		if (err == 0)
			print_error("bit %zu flipped was accepted\n", bit);
		assert_true(err < 0);
		snap_reader_release(&r);
		b.data[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	/* A flip in vCPU 1's regs payload names that section. */
	assert_int_equal(parse(&b, b.size, &r), 0);
	s = snap_reader_find(&r, T_REGS, 1);
	off = (uint64_t)(s->data - r.buf);
	snap_reader_release(&r);
	b.data[off + 3] ^= 0x10;
	expect_error(&b, -EBADMSG, "section 'vcpu 1 regs' checksum mismatch");
	b.data[off + 3] ^= 0x10;
	/* In the header. */
	b.data[17] ^= 1;
	expect_error(&b, -EBADMSG, "header checksum mismatch");
	b.data[17] ^= 1;
	/* In a section header. */
	b.data[off - 32 + 4] ^= 1;
	expect_error(&b, -EBADMSG, "section header #3");
	free(b.data);
}

static void test_wrong_version(void **state)
{
	struct blob b;
	uint32_t v = 2;

	(void)state;
	write_sample(&b, false, false);
	memcpy(b.data + 8, &v, 4);
	fix_crcs(b.data, b.size, 0);
	expect_error(&b, -EPROTONOSUPPORT, "format version 2 is newer than this nestvm reads (1)");
	free(b.data);

	/* A section version outside the schema's range. */
	write_sample(&b, false, false);
	v = 9;
	memcpy(b.data + 32 + 8, &v, 4); /* the first section: vcpu 0 regs */
	fix_crcs(b.data, b.size, 32);
	expect_error(&b, -EPROTONOSUPPORT, "section 'vcpu 0 regs': version 9 not supported");
	free(b.data);

	/* Not a snapshot at all. */
	write_sample(&b, false, false);
	memcpy(b.data, "\177ELF", 4);
	expect_error(&b, -EBADMSG, "not a nestvm snapshot");
	free(b.data);
}

static void test_oversize_length(void **state)
{
	struct blob b;
	uint64_t len = 1ULL << 40;

	(void)state;
	write_sample(&b, false, false);
	memcpy(b.data + 32 + 16, &len, 8);
	fix_crcs(b.data, b.size, 32);
	expect_error(&b, -EFBIG, "section 'vcpu 0 regs': length 1099511627776 over the limit");
	free(b.data);

	write_sample(&b, false, false);
	len = 4096; /* under the limit, past the end of the file */
	memcpy(b.data + 32 + 16, &len, 8);
	fix_crcs(b.data, b.size, 32);
	expect_error(&b, -EBADMSG, "runs past the end of the file");
	free(b.data);

	/* Within the file, outside the schema's bounds: a 100-byte chip 0 fits, 101 does not. */
	{
		struct snap_writer w;
		int fd = new_memfd();
		uint8_t big[101] = {0};
		uint64_t x = 0;

		assert_int_equal(snap_writer_begin(&w, fd, 1), 0);
		assert_int_equal(snap_writer_add(&w, T_REGS, 0, 1, 0, &x, 8), 0);
		assert_int_equal(snap_writer_add(&w, T_CLOCK, 0, 1, 0, &x, 8), 0);
		for (uint32_t i = 0; i < 3; i++)
			assert_int_equal(snap_writer_add(&w, T_CHIP, i, 1, 0, big, i ? 1 : 101), 0);
		assert_int_equal(snap_writer_finish(&w), 0);
		blob_from_fd(fd, &b);
		expect_error(&b, -EBADMSG, "section 'chip 0': length 101 outside 1..100");
		free(b.data);
	}
}

static void test_duplicate_and_missing(void **state)
{
	struct blob b;

	(void)state;
	write_sample(&b, false, true);
	expect_error(&b, -EBADMSG, "section 'clock' appears twice");
	free(b.data);

	/* The optional set is all-or-nothing: vCPU 1 lacks it. */
	write_sample(&b, true, false);
	expect_error(&b, -EBADMSG, "section 'vcpu 1 opt' is missing");
	free(b.data);

	/* A required section missing; an instance out of range; unknown types. */
	{
		struct snap_writer w;
		uint64_t x = 0;
		int fd;

		fd = new_memfd();
		assert_int_equal(snap_writer_begin(&w, fd, 2), 0);
		assert_int_equal(snap_writer_add(&w, T_REGS, 0, 1, 0, &x, 8), 0);
		assert_int_equal(snap_writer_add(&w, T_CLOCK, 0, 1, 0, &x, 8), 0);
		assert_int_equal(snap_writer_finish(&w), 0);
		blob_from_fd(fd, &b);
		expect_error(&b, -EBADMSG, "section 'vcpu 1 regs' is missing");
		free(b.data);

		fd = new_memfd();
		assert_int_equal(snap_writer_begin(&w, fd, 1), 0);
		assert_int_equal(snap_writer_add(&w, T_REGS, 0, 1, 0, &x, 8), 0);
		assert_int_equal(snap_writer_add(&w, T_REGS, 1, 1, 0, &x, 8), 0);
		assert_int_equal(snap_writer_add(&w, T_CLOCK, 0, 1, 0, &x, 8), 0);
		assert_int_equal(snap_writer_finish(&w), 0);
		blob_from_fd(fd, &b);
		expect_error(&b, -EBADMSG,
		             "section 'vcpu 1 regs': instance 1 out of range (1 vCPUs)");
		free(b.data);

		fd = new_memfd();
		assert_int_equal(snap_writer_begin(&w, fd, 1), 0);
		assert_int_equal(snap_writer_add(&w, T_REGS, 0, 1, 0, &x, 8), 0);
		assert_int_equal(snap_writer_add(&w, T_CLOCK, 0, 1, 0, &x, 8), 0);
		assert_int_equal(
		    snap_writer_add(&w, T_UNKNOWN, 0, 1, SNAP_SECTION_F_OPTIONAL, &x, 8), 0);
		assert_int_equal(snap_writer_finish(&w), 0);
		blob_from_fd(fd, &b);
		{
			struct snap_reader r;

			assert_int_equal(parse(&b, b.size, &r), 0); /* optional: skipped */
			snap_reader_release(&r);
		}
		b.data[b.size - 16 - 8 - 32 + 12] = 0; /* clear the OPTIONAL flag */
		fix_crcs(b.data, b.size, b.size - 16 - 8 - 32);
		expect_error(&b, -EPROTONOSUPPORT,
		             "section 'type 0x63 instance 0' is of a kind this nestvm "
		             "does not know");
		free(b.data);
	}
}

static void test_writer_limits(void **state)
{
	struct snap_writer w;
	int fd = open("/dev/full", O_WRONLY | O_CLOEXEC);
	uint64_t x = 0;

	(void)state;
	assert_int_equal(snap_writer_begin(&w, -1, 0), -EINVAL);
	if (fd >= 0) {
		/* A full disk fails the save, and keeps failing. */
		assert_int_equal(snap_writer_begin(&w, fd, 1), -ENOSPC);
		assert_int_equal(snap_writer_add(&w, T_REGS, 0, 1, 0, &x, 8), -ENOSPC);
		assert_int_equal(snap_writer_finish(&w), -ENOSPC);
		close(fd);
	}
	fd = new_memfd();
	assert_int_equal(snap_writer_begin(&w, fd, 1), 0);
	assert_int_equal(snap_writer_add(&w, T_REGS, 0, 1, 0x80, &x, 8), -EINVAL);
	assert_int_equal(snap_writer_add(&w, T_REGS, 0, 1, 0, &x, SNAP_MAX_SECTION_SIZE + 1),
	                 -EFBIG);
	close(fd);

	/* A file over the reader's limit is refused before it is read. */
	{
		struct snap_reader r;

		fd = new_memfd();
		assert_int_equal(ftruncate(fd, (off_t)SNAP_MAX_FILE_SIZE + 4096), 0);
		assert_int_equal(snap_reader_read_fd(&r, fd, &test_schema, NAME), -EFBIG);
		assert_non_null(strstr(r.error, "over the limit"));
		close(fd);
	}
}

/* ---- the x86 KVM state sections, without KVM ---- */

static void fake_vcpu(struct vcpu_state *st, uint32_t seed, bool nested)
{
	memset(st, 0, sizeof(*st));
	st->mp_state.mp_state = KVM_MP_STATE_RUNNABLE;
	st->regs.rip = 0x1000 + seed;
	st->regs.rax = seed;
	st->has_sregs2 = true;
	st->sregs2.efer = 0x500;
	st->sregs2.cr0 = 0x80000011;
	st->xsave_size = 4096 + 64 * seed;
	st->xsave = calloc(1, st->xsave_size);
	assert_non_null(st->xsave);
	memset(st->xsave, (int)seed, st->xsave_size);
	st->has_xcrs = true;
	st->xcrs.nr_xcrs = 1;
	st->xcrs.xcrs[0].value = 3;
	st->has_lapic = true;
	st->lapic.regs[0x23] = (char)seed; /* APIC ID */
	st->events.flags = KVM_VCPUEVENT_VALID_SHADOW;
	st->has_debugregs = true;
	st->debugregs.dr7 = 0x400;
	st->msrs = calloc(1, sizeof(*st->msrs) + 3 * sizeof(st->msrs->entries[0]));
	assert_non_null(st->msrs);
	st->msrs->nmsrs = 3;
	st->msrs->entries[0] = (struct kvm_msr_entry){.index = MSR_IA32_TSC, .data = 12345};
	st->msrs->entries[1] = (struct kvm_msr_entry){.index = MSR_IA32_TSC_DEADLINE, .data = 7};
	st->msrs->entries[2] = (struct kvm_msr_entry){.index = MSR_VM_HSAVE_PA, .data = 0x5000};
	st->cpuid = calloc(1, sizeof(*st->cpuid) + 2 * sizeof(st->cpuid->entries[0]));
	assert_non_null(st->cpuid);
	st->cpuid->nent = 2;
	st->cpuid->entries[1].function = 0x80000001;
	st->cpuid->entries[1].ecx = 1u << 2; /* SVM */
	if (nested) {
		/* A header-only SVM state: GIF and nothing else. */
		st->nested = calloc(1, sizeof(*st->nested));
		assert_non_null(st->nested);
		st->nested->format = KVM_STATE_NESTED_FORMAT_SVM;
		st->nested->size = sizeof(*st->nested);
		st->nested->flags = KVM_STATE_NESTED_GIF_SET;
	}
}

static void assert_vcpu_equal(const struct vcpu_state *a, const struct vcpu_state *b)
{
	assert_memory_equal(&a->mp_state, &b->mp_state, sizeof(a->mp_state));
	assert_memory_equal(&a->regs, &b->regs, sizeof(a->regs));
	assert_int_equal(a->has_sregs2, b->has_sregs2);
	assert_memory_equal(&a->sregs2, &b->sregs2, sizeof(a->sregs2));
	assert_int_equal(a->xsave_size, b->xsave_size);
	assert_memory_equal(a->xsave, b->xsave, a->xsave_size);
	assert_memory_equal(&a->xcrs, &b->xcrs, sizeof(a->xcrs));
	assert_memory_equal(&a->lapic, &b->lapic, sizeof(a->lapic));
	assert_memory_equal(&a->events, &b->events, sizeof(a->events));
	assert_memory_equal(&a->debugregs, &b->debugregs, sizeof(a->debugregs));
	assert_int_equal(a->msrs->nmsrs, b->msrs->nmsrs);
	assert_memory_equal(a->msrs->entries, b->msrs->entries,
	                    a->msrs->nmsrs * sizeof(a->msrs->entries[0]));
	assert_int_equal(a->cpuid->nent, b->cpuid->nent);
	assert_memory_equal(a->cpuid->entries, b->cpuid->entries,
	                    a->cpuid->nent * sizeof(a->cpuid->entries[0]));
	assert_int_equal(a->nested != NULL, b->nested != NULL);
	if (a->nested)
		assert_memory_equal(a->nested, b->nested, a->nested->size);
}

static void write_x86(struct blob *b, struct vcpu_state *v, struct vm_kvm_state *vm)
{
	struct snap_writer w;
	int fd = new_memfd();

	assert_int_equal(snap_writer_begin(&w, fd, 2), 0);
	for (uint32_t i = 0; i < 2; i++)
		assert_int_equal(vcpu_state_write(&w, i, &v[i]), 0);
	assert_int_equal(vm_kvm_state_write(&w, vm), 0);
	assert_int_equal(snap_writer_finish(&w), 0);
	blob_from_fd(fd, b);
}

static void test_x86_sections(void **state)
{
	struct vcpu_state v[2], got;
	struct vm_kvm_state vm = {0}, vgot;
	struct snap_reader r;
	struct blob b;
	uint64_t off;

	(void)state;
	fake_vcpu(&v[0], 1, true);
	fake_vcpu(&v[1], 2, true);
	vm.has_irqchip = true;
	for (uint32_t i = 0; i < VM_STATE_NR_IRQCHIPS; i++)
		vm.irqchip[i].chip_id = i;
	vm.irqchip[2].chip.ioapic.id = 7;
	vm.clock.clock = 123456789;
	write_x86(&b, v, &vm);

	assert_int_equal(snap_reader_parse(&r, b.data, b.size, &vcpu_state_schema, NAME), 0);
	for (uint32_t i = 0; i < 2; i++) {
		assert_int_equal(vcpu_state_read(&r, i, &got), 0);
		assert_vcpu_equal(&v[i], &got);
		assert_true(vcpu_state_guest_mode(&got) == false);
		vcpu_state_release(&got);
	}
	assert_int_equal(vcpu_state_read(&r, 2, &got), -EINVAL);
	assert_int_equal(vm_kvm_state_read(&r, &vgot), 0);
	assert_true(vgot.has_irqchip);
	assert_false(vgot.has_pit);
	assert_memory_equal(&vgot.irqchip, &vm.irqchip, sizeof(vm.irqchip));
	assert_int_equal(vgot.clock.clock, 123456789);

	/* A nested section whose size field disagrees with its length is refused. */
	off = (uint64_t)(snap_reader_find(&r, VCPU_SEC_NESTED, 1)->data - r.buf);
	snap_reader_release(&r);
	b.data[off + 4] ^= 1; /* kvm_nested_state.size */
	{
		uint32_t c = crc32c(0, b.data + off, sizeof(struct kvm_nested_state));

		memcpy(b.data + off - 8, &c, 4); /* payload CRC */
		c = crc32c(0, b.data + off - 32, 28);
		memcpy(b.data + off - 4, &c, 4);
		fix_crcs(b.data, b.size, 0);
	}
	assert_int_equal(snap_reader_parse(&r, b.data, b.size, &vcpu_state_schema, NAME), 0);
	assert_int_equal(vcpu_state_read(&r, 1, &got), -EBADMSG);
	assert_non_null(strstr(r.error, "section 'vcpu 1 nested': its size field does not match"));
	snap_reader_release(&r);
	free(b.data);

	/* Restore refuses state this KVM cannot take, before any ioctl. */
	{
		struct vcpu_state_caps caps = {.sregs2 = true,
		                               .xsave = true,
		                               .xsave_size = 4096,
		                               .xcrs = true,
		                               .debugregs = true};
		char why[160];

		assert_int_equal(vcpu_state_check(&v[0], &caps, why, sizeof(why)), -EOPNOTSUPP);
		assert_non_null(strstr(why, "XSAVE state has 4160 bytes, this KVM takes 4096"));
		caps.xsave_size = 8192;
		assert_int_equal(vcpu_state_check(&v[0], &caps, why, sizeof(why)), -EOPNOTSUPP);
		assert_non_null(strstr(why, "nested state"));
		caps.nested_state_size = 4224;
		assert_int_equal(vcpu_state_check(&v[0], &caps, why, sizeof(why)), 0);
		assert_int_equal(vcpu_state_restore(-1, &caps, &v[0], why, sizeof(why)), -EBADF);
		assert_non_null(strstr(why, "KVM_SET_CPUID2"));
	}
	vcpu_state_release(&v[0]);
	vcpu_state_release(&v[1]);
	vcpu_state_release(&v[1]);
	vcpu_state_release(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_crc32c_vector),
	    cmocka_unit_test(test_round_trip),
	    cmocka_unit_test(test_truncated),
	    cmocka_unit_test(test_flipped_bits),
	    cmocka_unit_test(test_wrong_version),
	    cmocka_unit_test(test_oversize_length),
	    cmocka_unit_test(test_duplicate_and_missing),
	    cmocka_unit_test(test_writer_limits),
	    cmocka_unit_test(test_x86_sections),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
