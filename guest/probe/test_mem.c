/* SPDX-License-Identifier: MIT */
/*
 * test=mem [mem_mb=N]: the boot memory map against the RAM that is there.
 *
 * Sums the RAM ranges of the memory map (PVH memmap or e820), compares the
 * sum with mem_mb=N, then writes every 8-byte word of RAM above the probe
 * image (below and above 4 GiB) with a value derived from its address and
 * reads it all back, which catches missing, read-only and aliased memory.
 * Runs at CPL3, at native speed.
 */
#include "probe.h"

/* Legacy holes (EBDA, VGA, BIOS) and firmware reservations stay below this. */
#define MEM_SLACK (4 * MIB)
#define MEM_PATTERN 0x5a17c3e9a5e83c96ULL

struct mem_error {
	uint64_t count, addr, got, want;
};

static void mem_fill(uint64_t base, uint64_t end)
{
	for (uint64_t a = base; a < end; a += 8)
		*(volatile uint64_t *)(uintptr_t)a = a ^ MEM_PATTERN;
}

static void mem_verify(uint64_t base, uint64_t end, struct mem_error *e)
{
	for (uint64_t a = base; a < end; a += 8) {
		uint64_t v = *(volatile uint64_t *)(uintptr_t)a;

		if (v == (a ^ MEM_PATTERN))
			continue;
		if (e->count++ == 0) {
			e->addr = a;
			e->got = v;
			e->want = a ^ MEM_PATTERN;
		}
	}
}

int test_mem(void)
{
	uint64_t floor = (uintptr_t)__image_end, total = 0, checked = 0, mem_mb;
	struct mem_error err = {0};

	for (unsigned int i = 0; i < boot.nr_ram; i++) {
		const struct mem_range *r = &boot.ram[i];

		printf("probe: mem: RAM [0x%09lx, 0x%09lx) %lu KiB\n", r->base, r->end,
		       (r->end - r->base) >> 10);
		total += r->end - r->base;
	}
	printf("probe: mem: %u map entries, %u RAM ranges, %lu KiB RAM (%lu MiB)\n", boot.nr_map,
	       boot.nr_ram, total >> 10, (total + MIB - 1) / MIB);
	if (boot.nr_ram == 0)
		return probe_fail("no RAM in the boot memory map");
	if (param_get("mem_mb")) {
		if (!param_u64("mem_mb", &mem_mb))
			return probe_fail("bad mem_mb=%s", param_get("mem_mb"));
		if (total > mem_mb * MIB || total + MEM_SLACK < mem_mb * MIB)
			return probe_fail("memory map has %lu KiB of RAM, mem_mb=%lu wants "
			                  "%lu KiB minus at most %lu KiB of holes",
			                  total >> 10, mem_mb, mem_mb << 10, MEM_SLACK >> 10);
	}

	for (unsigned int i = 0; i < boot.nr_ram; i++) {
		uint64_t base = boot.ram[i].base > floor ? boot.ram[i].base : floor;
		uint64_t end = boot.ram[i].end & ~7ULL;

		base = (base + 7) & ~7ULL;
		if (base >= end)
			continue;
		if (end > 4 * GIB && paging_map_high(base > 4 * GIB ? base : 4 * GIB, end) < 0)
			return probe_fail("cannot map RAM [0x%lx, 0x%lx): out of page tables", base,
			                  end);
		mem_fill(base, end);
		mem_verify(base, end, &err);
		checked += end - base;
		if (err.count)
			return probe_fail("%lu bad words in [0x%lx, 0x%lx), first at 0x%lx: read "
			                  "0x%016lx, wrote 0x%016lx",
			                  err.count, base, end, err.addr, err.got, err.want);
	}
	return probe_pass("%lu KiB RAM in the map, %lu MiB checked above the probe (0x%lx)",
	                  total >> 10, checked / MIB, floor);
}
