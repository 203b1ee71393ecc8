/* SPDX-License-Identifier: MIT */
/* Unit tests: address-space bus, guest memory translation, option parsing. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "arch/x86/layout.h"
#include "cli/cli.h"
#include "core/bus.h"
#include "core/guest_mem.h"

#include <errno.h>
#include <string.h>

struct io_record {
	uint64_t offset;
	uint32_t len;
	bool is_write;
	int calls;
};

static void record_io(void *opaque, uint64_t offset, void *data, uint32_t len, bool is_write)
{
	struct io_record *rec = opaque;

	rec->offset = offset;
	rec->len = len;
	rec->is_write = is_write;
	rec->calls++;
	if (!is_write)
		memset(data, 0x5a, len);
}

static void test_bus_overlap_rejected(void **state)
{
	struct bus bus = {0};
	struct io_record rec = {0};

	(void)state;
	assert_int_equal(bus_add_range(&bus, 0x3f8, 8, record_io, &rec, "uart"), 0);
	assert_int_equal(bus_add_range(&bus, 0x3ff, 1, record_io, &rec, "x"), -EEXIST);
	assert_int_equal(bus_add_range(&bus, 0x3f0, 9, record_io, &rec, "x"), -EEXIST);
	assert_int_equal(bus_add_range(&bus, 0x3f0, 8, record_io, &rec, "below"), 0);
	assert_int_equal(bus_add_range(&bus, 0x400, 0, record_io, &rec, "empty"), -EINVAL);
	assert_int_equal(bus_add_range(&bus, ~0ULL, 2, record_io, &rec, "wrap"), -EINVAL);
	bus_destroy(&bus);
}

static void test_bus_dispatch(void **state)
{
	struct bus bus = {0};
	struct io_record a = {0}, b = {0};
	uint32_t v = 0;

	(void)state;
	for (int i = 0; i < 40; i++) /* force the table to grow */
		assert_int_equal(bus_add_range(&bus, 0x1000 + i * 0x10, 0x10, record_io, &b, "n"),
		                 0);
	assert_int_equal(bus_add_range(&bus, 0x3f8, 8, record_io, &a, "uart"), 0);
	assert_true(bus_dispatch(&bus, 0x3fa, &v, 1, false));
	assert_int_equal(a.offset, 2);
	assert_int_equal(v & 0xff, 0x5a);
	assert_true(bus_dispatch(&bus, 0x1234, &v, 4, true));
	assert_int_equal(b.offset, 4);
	assert_true(b.is_write);
	/* An access straddling the end of a range reaches nobody and reads all-ones. */
	v = 0;
	assert_false(bus_dispatch(&bus, 0x3fe, &v, 4, false));
	assert_int_equal(v, 0xffffffff);
	assert_false(bus_dispatch(&bus, 0x80, &v, 1, true));
	assert_int_equal(a.calls, 1);
	bus_destroy(&bus);
}

static void test_guest_mem_layout(void **state)
{
	struct guest_mem mem;

	(void)state;
	assert_int_equal(guest_mem_init(&mem, 256ULL << 20, 1), 0);
	assert_int_equal(mem.nr_regions, 1);
	assert_non_null(guest_mem_ptr(&mem, 0, 256ULL << 20));
	assert_null(guest_mem_ptr(&mem, 1, 256ULL << 20));
	assert_null(guest_mem_ptr(&mem, (256ULL << 20) - 4, 8));
	assert_non_null(guest_mem_ptr(&mem, (256ULL << 20) - 8, 8));
	assert_null(guest_mem_ptr(&mem, ~0ULL - 2, 8)); /* wraps */
	guest_mem_destroy(&mem);

	/* 4 GiB: 3 GiB below the PCI hole, 1 GiB above 4 GiB. */
	assert_int_equal(guest_mem_init(&mem, 4ULL << 30, 0), 0);
	assert_int_equal(mem.nr_regions, 2);
	assert_int_equal(guest_mem_lowmem_end(&mem), LAYOUT_LOWMEM_MAX);
	assert_null(guest_mem_ptr(&mem, LAYOUT_PCI_ECAM, 4));
	assert_null(guest_mem_ptr(&mem, LAYOUT_LOWMEM_MAX - 4, 8)); /* into the hole */
	assert_non_null(guest_mem_ptr(&mem, LAYOUT_HIGHMEM_BASE, 1ULL << 30));
	assert_null(guest_mem_ptr(&mem, LAYOUT_HIGHMEM_BASE, (1ULL << 30) + 1));
	guest_mem_destroy(&mem);
	guest_mem_destroy(&mem); /* twice is harmless */
	assert_int_equal(guest_mem_init(&mem, 0, 0), -EINVAL);
}

static void test_parse_size(void **state)
{
	uint64_t v;

	(void)state;
	assert_int_equal(cli_parse_size("512M", &v), 0);
	assert_int_equal(v, 512ULL << 20);
	assert_int_equal(cli_parse_size("4G", &v), 0);
	assert_int_equal(v, 4ULL << 30);
	assert_int_equal(cli_parse_size("4GiB", &v), 0);
	assert_int_equal(v, 4ULL << 30);
	assert_int_equal(cli_parse_size("256", &v), 0);
	assert_int_equal(v, 256ULL << 20);
	assert_int_equal(cli_parse_size("64k", &v), 0);
	assert_int_equal(v, 64ULL << 10);
	assert_int_equal(cli_parse_size("0", &v), -EINVAL);
	assert_int_equal(cli_parse_size("-1G", &v), -EINVAL);
	assert_int_equal(cli_parse_size("12X", &v), -EINVAL);
	assert_int_equal(cli_parse_size("1GG", &v), -EINVAL);
	assert_int_equal(cli_parse_size("99999999999999T", &v), -EINVAL);
	assert_int_equal(cli_parse_size("", &v), -EINVAL);
}

static void test_parse_uint_on_off(void **state)
{
	unsigned long n;
	int f;

	(void)state;
	assert_int_equal(cli_parse_uint("2", 1, 255, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(cli_parse_uint("0", 1, 255, &n), -ERANGE);
	assert_int_equal(cli_parse_uint("256", 1, 255, &n), -ERANGE);
	assert_int_equal(cli_parse_uint("2x", 1, 255, &n), -EINVAL);
	assert_int_equal(cli_parse_uint("-3", 1, 255, &n), -EINVAL);
	assert_int_equal(cli_parse_on_off("ON", &f), 0);
	assert_int_equal(f, 1);
	assert_int_equal(cli_parse_on_off("off", &f), 0);
	assert_int_equal(f, 0);
	assert_int_equal(cli_parse_on_off("maybe", &f), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bus_overlap_rejected), cmocka_unit_test(test_bus_dispatch),
	    cmocka_unit_test(test_guest_mem_layout),     cmocka_unit_test(test_parse_size),
	    cmocka_unit_test(test_parse_uint_on_off),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
