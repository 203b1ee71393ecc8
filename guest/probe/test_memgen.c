/* SPDX-License-Identifier: MIT */
/*
 * test=memgen [passes=N] [cpus=N] [disk=on]: a guest whose memory and CPU
 * state a save/restore must keep exactly, after the guest of QEMU's
 * migration test (a loop incrementing a byte in every page), made stronger.
 *
 * vCPU 0 (the BSP) walks every 4 KiB page of RAM above the probe's image
 * and its own arena (the vCPUs' tables, the disk read buffer), below and
 * above 4 GiB. Pass P (1..N) first checks that the first and the last 8
 * bytes of the page hold the marker of pass P - 1 (0 before pass 1: fresh
 * RAM), then writes the marker of pass P into both; a last pass only
 * checks for pass N. The marker (page_marker()) is the pass number and the
 * page's frame number, so a page lost, torn (one end older than the other),
 * stale or moved to another address by a save/restore between two passes
 * FAILs the test with its address and what it held.
 *
 * Every other vCPU (started as test=smp does, see smp_start()) runs a
 * deterministic chain at CPL3 (memgen_chain.h), MEMGEN_AP_ROUNDS steps per
 * pass, the BSP MEMGEN_BSP_ROUNDS steps after each of its passes. At the
 * end the BSP combines their values and prints
 *
 *     probe: test=memgen: result=0x<16 hex digits> passes=N
 *
 * which depends on passes=N and the vCPU count only: an uninterrupted run
 * and a saved and restored one must print the same line, and memgen-expect
 * (memgen_expect.c) computes it on the host. `probe: memgen: pass P/N`
 * lines every tenth of the passes show how far a run has come.
 *
 * disk=on also keeps a write stream going on virtio-blk disk 0 between
 * chunks of the walk (memgen_disk.c, memgen.h), each request checked to
 * complete exactly once, every sector read back at the end.
 */
#include "probe.h"
#include "hv.h"
#include "memgen.h"
#include "memgen_chain.h"

#define MEMGEN_PASSES_DEFAULT 8000
#define MEMGEN_PASSES_MAX (((uint64_t)1 << 24) - 1) /* what a marker holds */
#define MEMGEN_CPUS_MAX (AP_SLOTS + 1)
#define PAGE_SIZE ((uint64_t)4096)
#define PAGE_WORDS (PAGE_SIZE / 8)
#define MARKER_PASS_SHIFT 40 /* pass << 40 | page frame number */
#define CHUNK_BYTES MIB      /* the walk polls the disk this often */
#define PROGRESS_STEPS 10
#define AP_WAIT_NOTE_CYCLES (1ULL << 35) /* ~10 s at 3 GHz: say what is missing */

/*
 * inject=KIND: after the middle pass, damage one page the way a broken
 * save/restore would, to show that the next pass catches it (the FAIL must
 * name that page): zero (lost), torn (last 8 bytes a pass older), stale
 * (both a pass older), moved (holding the next page's markers).
 */
enum memgen_inject { INJECT_NONE, INJECT_ZERO, INJECT_TORN, INJECT_STALE, INJECT_MOVED };

static const char *const inject_names[] = {
    [INJECT_NONE] = "none",   [INJECT_ZERO] = "zero",   [INJECT_TORN] = "torn",
    [INJECT_STALE] = "stale", [INJECT_MOVED] = "moved",
};

/* One vCPU's part, on cache lines of its own. */
struct memgen_vcpu {
	struct memgen_chain chain;
	uint64_t value;         /* memgen_chain_value() at the end */
	volatile uint64_t pass; /* passes done */
	volatile uint32_t done; /* value is final */
} __attribute__((aligned(64)));

/* The run, shared with the APs (ap_entry_fn's argument). */
struct memgen {
	volatile uint32_t go; /* the fields below are set: APs may start */
	uint64_t passes;
	unsigned int cpus;
	uint64_t *tables; /* cpus * MEMGEN_TABLE_WORDS words */
	struct mem_range walk[BOOT_RAM_MAX];
	unsigned int nr_walk;
	uint64_t pages, floor;    /* pages walked, the lowest address walked */
	struct memgen_disk *disk; /* NULL without disk=on */
	enum memgen_inject inject;
	bool clear; /* clear=on: zero the markers before pass 1 rather than expect zeroed RAM */
	struct memgen_vcpu vcpu[MEMGEN_CPUS_MAX];
};

/* A page that did not hold what it should have. */
struct memgen_fault {
	uint64_t page, first, last, want;
};

/* What the first and last 8 bytes of @page hold after pass @pass. */
static inline uint64_t page_marker(uint64_t pass, uint64_t page)
{
	return pass ? pass << MARKER_PASS_SHIFT | page / PAGE_SIZE : 0;
}

/*
 * Pass @pass over the pages of [base, end): check each holds the marker of
 * pass - 1, then (unless @check_only) write the marker of @pass. Returns
 * true, or false with the first bad page in @f.
 */
static bool walk_chunk(uint64_t base, uint64_t end, uint64_t pass, bool check_only,
                       struct memgen_fault *f)
{
	for (uint64_t a = base; a < end; a += PAGE_SIZE) {
		volatile uint64_t *w = (volatile uint64_t *)(uintptr_t)a;
		uint64_t want = page_marker(pass - 1, a), first = w[0], last = w[PAGE_WORDS - 1];

		if (first != want || last != want) {
			*f = (struct memgen_fault){a, first, last, want};
			return false;
		}
		if (check_only)
			continue;
		w[0] = page_marker(pass, a);
		w[PAGE_WORDS - 1] = page_marker(pass, a);
	}
	return true;
}

/*
 * FAIL naming the page, what its two ends held (decoded into pass and page)
 * and what they should have held. Pass N + 1 is the final, check-only pass.
 */
static int memgen_fault_report(const struct memgen_fault *f, uint64_t pass)
{
	return probe_fail("page 0x%lx before pass %lu: first/last 8 bytes 0x%016lx/0x%016lx "
	                  "(pass %lu/%lu, page 0x%lx/0x%lx), expected 0x%016lx (pass %lu)",
	                  f->page, pass, f->first, f->last, f->first >> MARKER_PASS_SHIFT,
	                  f->last >> MARKER_PASS_SHIFT,
	                  (f->first & (((uint64_t)1 << MARKER_PASS_SHIFT) - 1)) * PAGE_SIZE,
	                  (f->last & (((uint64_t)1 << MARKER_PASS_SHIFT) - 1)) * PAGE_SIZE, f->want,
	                  pass - 1);
}

/* One pass over every page, polling the disk between chunks. PROBE_PASS or the FAIL printed. */
static int memgen_pass(struct memgen *mg, uint64_t pass, bool check_only)
{
	struct memgen_fault f;

	for (unsigned int i = 0; i < mg->nr_walk; i++) {
		for (uint64_t a = mg->walk[i].base; a < mg->walk[i].end; a += CHUNK_BYTES) {
			uint64_t end =
			    mg->walk[i].end - a < CHUNK_BYTES ? mg->walk[i].end : a + CHUNK_BYTES;

			if (!walk_chunk(a, end, pass, check_only, &f))
				return memgen_fault_report(&f, pass);
			if (mg->disk && memgen_disk_poll(mg->disk) < 0)
				return probe_fail("disk, pass %lu: %s", pass, mg->disk->why);
		}
	}
	return PROBE_PASS;
}

/* Damage the middle page of the first range after pass @pass (inject=KIND). */
static void memgen_inject(const struct memgen *mg, uint64_t pass)
{
	const struct mem_range *r = &mg->walk[0];
	uint64_t page = r->base + (r->end - r->base) / PAGE_SIZE / 2 * PAGE_SIZE;
	volatile uint64_t *w = (volatile uint64_t *)(uintptr_t)page;
	volatile uint64_t *next = (volatile uint64_t *)(uintptr_t)(page + PAGE_SIZE);

	printf("probe: memgen: inject=%s at page 0x%lx after pass %lu\n", inject_names[mg->inject],
	       page, pass);
	switch (mg->inject) {
	case INJECT_NONE:
		break;
	case INJECT_ZERO:
		w[0] = 0;
		w[PAGE_WORDS - 1] = 0;
		break;
	case INJECT_TORN:
		w[PAGE_WORDS - 1] = page_marker(pass - 1, page);
		break;
	case INJECT_STALE:
		w[0] = page_marker(pass - 1, page);
		w[PAGE_WORDS - 1] = page_marker(pass - 1, page);
		break;
	case INJECT_MOVED:
		w[0] = next[0];
		w[PAGE_WORDS - 1] = next[PAGE_WORDS - 1];
		break;
	}
}

/* An AP's part, at CPL3: its chain, passes * MEMGEN_AP_ROUNDS steps; then halt. */
__attribute__((noreturn)) static void memgen_ap(void *arg, unsigned int slot)
{
	struct memgen *mg = arg;
	struct memgen_vcpu *v = &mg->vcpu[slot + 1];

	while (!mg->go)
		cpu_relax();
	if (slot + 1 < mg->cpus) {
		memgen_chain_init(&v->chain, mg->tables + (slot + 1) * MEMGEN_TABLE_WORDS, slot + 1,
		                  mg->passes);
		for (uint64_t p = 1; p <= mg->passes; p++) {
			memgen_chain_run(&v->chain, MEMGEN_AP_ROUNDS);
			v->pass = p;
		}
		v->value = memgen_chain_value(&v->chain);
		__atomic_store_n(&v->done, 1, __ATOMIC_RELEASE);
	}
	probe_syscall(SYS_HALT, 0, 0);
	__builtin_unreachable();
}

/*
 * Wait for every AP's value; say how far they were when the BSP got here
 * (timing, not part of the result), and which lag if it takes long.
 */
static void memgen_wait_aps(struct memgen *mg)
{
	uint64_t start = rdtsc(), lo = mg->passes, hi = 0;
	bool noted = false;

	for (unsigned int v = 1; v < mg->cpus; v++) {
		uint64_t p = mg->vcpu[v].pass;

		lo = p < lo ? p : lo;
		hi = p > hi ? p : hi;
	}
	if (mg->cpus > 1)
		printf("probe: memgen: the BSP's passes are done, the APs' at pass %lu..%lu\n", lo,
		       hi);

	for (unsigned int v = 1; v < mg->cpus; v++) {
		while (!__atomic_load_n(&mg->vcpu[v].done, __ATOMIC_ACQUIRE)) {
			cpu_relax();
			if (noted || rdtsc() - start < AP_WAIT_NOTE_CYCLES)
				continue;
			noted = true;
			for (unsigned int u = 1; u < mg->cpus; u++)
				printf("probe: memgen: waiting for vCPU %u: pass %lu/%lu%s\n", u,
				       mg->vcpu[u].pass, mg->passes,
				       mg->vcpu[u].done ? ", done" : "");
		}
	}
}

/*
 * Carve the arena (the vCPUs' tables, then the disk read buffer, in
 * *disk_buf) from the RAM just above the image and put the pages above it
 * in mg->walk. Returns PROBE_PASS or the FAIL printed.
 */
static int memgen_layout(struct memgen *mg, uint8_t **disk_buf)
{
	uint64_t arena = ((uintptr_t)__image_end + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
	uint64_t floor = arena + mg->cpus * MEMGEN_TABLE_WORDS * 8 + MEMGEN_DISK_READ_BYTES;
	bool arena_in_ram = false;

	for (unsigned int i = 0; i < boot.nr_ram; i++) {
		uint64_t base = boot.ram[i].base > floor ? boot.ram[i].base : floor;
		uint64_t end = boot.ram[i].end & ~(PAGE_SIZE - 1);

		arena_in_ram |= boot.ram[i].base <= arena && boot.ram[i].end >= floor;
		base = (base + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
		if (base >= end)
			continue;
		if (end > 4 * GIB && paging_map_high(base > 4 * GIB ? base : 4 * GIB, end) < 0)
			return probe_fail("cannot map RAM [0x%lx, 0x%lx): out of page tables", base,
			                  end);
		mg->walk[mg->nr_walk++] = (struct mem_range){base, end};
		mg->pages += (end - base) / PAGE_SIZE;
	}
	if (!arena_in_ram || !mg->pages)
		return probe_fail("no RAM for the arena [0x%lx, 0x%lx) and pages above it", arena,
		                  floor);
	if (mg->inject && mg->walk[0].end - mg->walk[0].base < 4 * PAGE_SIZE)
		return probe_fail("inject= needs 4 pages in the first RAM range walked");
	mg->floor = mg->walk[0].base;
	mg->tables = (uint64_t *)(uintptr_t)arena;
	*disk_buf = (uint8_t *)(uintptr_t)(floor - MEMGEN_DISK_READ_BYTES);
	return PROBE_PASS;
}

/* An on/off parameter into *@on (false when absent); false if malformed. */
static bool param_on_off(const char *key, bool *on)
{
	const char *v = param_get(key);

	*on = v && strcmp(v, "on") == 0;
	return !v || *on || strcmp(v, "off") == 0;
}

/* Parse passes=, cpus=, disk=, clear=, inject=. PROBE_PASS or the FAIL printed. */
static int memgen_params(struct memgen *mg, uint64_t *want_cpus, bool *disk)
{
	const char *inject = param_get("inject");

	mg->passes = MEMGEN_PASSES_DEFAULT;
	if (param_get("passes") && (!param_u64("passes", &mg->passes) || mg->passes == 0 ||
	                            mg->passes > MEMGEN_PASSES_MAX))
		return probe_fail("bad passes=%s (1 to %lu)", param_get("passes"),
		                  MEMGEN_PASSES_MAX);
	*want_cpus = 0;
	if (param_get("cpus") && !param_u64("cpus", want_cpus))
		return probe_fail("bad cpus=%s", param_get("cpus"));
	if (!param_on_off("disk", disk))
		return probe_fail("bad disk=%s (on or off)", param_get("disk"));
	if (!param_on_off("clear", &mg->clear))
		return probe_fail("bad clear=%s (on or off)", param_get("clear"));
	for (unsigned int i = 0; inject && i < ARRAY_SIZE(inject_names); i++)
		if (strcmp(inject, inject_names[i]) == 0) {
			mg->inject = i;
			inject = NULL;
		}
	if (inject)
		return probe_fail("bad inject=%s (none, zero, torn, stale or moved)", inject);
	return PROBE_PASS;
}

/* clear=on: zero every page's markers, for firmware that leaves RAM dirty (QEMU's). */
static void memgen_clear(const struct memgen *mg)
{
	for (unsigned int i = 0; i < mg->nr_walk; i++)
		for (uint64_t a = mg->walk[i].base; a < mg->walk[i].end; a += PAGE_SIZE) {
			volatile uint64_t *w = (volatile uint64_t *)(uintptr_t)a;

			w[0] = 0;
			w[PAGE_WORDS - 1] = 0;
		}
}

/* The passes, the final check, the BSP's chain between passes. PROBE_PASS or the FAIL printed. */
static int memgen_run_bsp(struct memgen *mg)
{
	struct memgen_vcpu *v = &mg->vcpu[0];
	uint64_t step = mg->passes / PROGRESS_STEPS ? mg->passes / PROGRESS_STEPS : 1;
	int r;

	memgen_chain_init(&v->chain, mg->tables, 0, mg->passes);
	if (mg->clear)
		memgen_clear(mg);
	for (uint64_t p = 1; p <= mg->passes; p++) {
		r = memgen_pass(mg, p, false);
		if (r != PROBE_PASS)
			return r;
		memgen_chain_run(&v->chain, MEMGEN_BSP_ROUNDS);
		v->pass = p;
		if (p % step == 0)
			printf("probe: memgen: pass %lu/%lu\n", p, mg->passes);
		if (mg->inject && p == (mg->passes + 1) / 2)
			memgen_inject(mg, p);
	}
	r = memgen_pass(mg, mg->passes + 1, true);
	if (r != PROBE_PASS)
		return r;
	v->value = memgen_chain_value(&v->chain);
	v->done = 1;
	return PROBE_PASS;
}

int test_memgen(void)
{
	static struct memgen mg;
	static struct memgen_disk disk;
	uint64_t values[MEMGEN_CPUS_MAX], want_cpus, result;
	struct smp_cpus cpus;
	uint8_t *disk_buf = NULL;
	bool disk_on = false;
	int r;

	r = memgen_params(&mg, &want_cpus, &disk_on);
	if (r != PROBE_PASS)
		return r;
	r = smp_start(memgen_ap, &mg, &cpus);
	if (r != PROBE_PASS)
		return r;
	if (cpus.count > MEMGEN_CPUS_MAX)
		return probe_skip("%u CPUs; memgen runs on %u at most", cpus.count,
		                  MEMGEN_CPUS_MAX);
	if (want_cpus && want_cpus != cpus.count)
		return probe_fail("%u CPUs running, cpus=%lu", cpus.count, want_cpus);
	mg.cpus = cpus.count;
	r = memgen_layout(&mg, &disk_buf);
	if (r != PROBE_PASS)
		return r;
	if (disk_on && memgen_disk_start(&disk) < 0)
		return probe_fail("disk: %s", disk.why);
	mg.disk = disk_on ? &disk : NULL;
	printf("probe: memgen: %lu passes over %lu pages (%lu KiB) from 0x%lx, %u vCPUs%s\n",
	       mg.passes, mg.pages, mg.pages * PAGE_SIZE >> 10, mg.floor, mg.cpus,
	       disk_on ? ", disk 0 writes" : "");
	__atomic_store_n(&mg.go, 1, __ATOMIC_RELEASE);

	r = memgen_run_bsp(&mg);
	if (r != PROBE_PASS)
		return r;
	memgen_wait_aps(&mg);
	for (unsigned int v = 0; v < mg.cpus; v++)
		values[v] = mg.vcpu[v].value;
	result = memgen_result(mg.passes, mg.cpus, values);
	printf("probe: test=memgen: result=0x%016lx passes=%lu\n", result, mg.passes);
	if (disk_on) {
		if (memgen_disk_finish(&disk, disk_buf) < 0)
			return probe_fail("disk: %s", disk.why);
		printf("probe: memgen: disk: %lu writes over %lu sectors, at most %u in flight, "
		       "each completed once, read back\n",
		       disk.submitted, disk.submitted < disk.span ? disk.submitted : disk.span,
		       disk.max_inflight);
	}
	return probe_pass("%lu passes over %lu MiB, %u vCPUs, result 0x%016lx%s", mg.passes,
	                  mg.pages * PAGE_SIZE / MIB, mg.cpus, result,
	                  disk_on ? ", disk writes each completed once" : "");
}
