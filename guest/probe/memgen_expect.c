/* SPDX-License-Identifier: MIT */
/*
 * memgen-expect PASSES CPUS: the line test=memgen must print for a run of
 * PASSES passes on CPUS vCPUs (guest/probe/test_memgen.c), computed on the
 * host with the guest's own chain (memgen_chain.h):
 *
 *     result=0x<16 hex digits> passes=PASSES
 *
 * tests/integration/probe.sh compares it with the guest's result line.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "arch.h"
#include "memgen_chain.h"

#define CPUS_MAX (AP_SLOTS + 1) /* test_memgen.c's MEMGEN_CPUS_MAX */

static int parse(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 0);

	if (!*s || *end || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

int main(int argc, char **argv)
{
	static uint64_t tables[CPUS_MAX][MEMGEN_TABLE_WORDS];
	uint64_t passes, cpus, values[CPUS_MAX];

	if (argc != 3 || parse(argv[1], 1, (1ULL << 24) - 1, &passes) < 0 ||
	    parse(argv[2], 1, CPUS_MAX, &cpus) < 0) {
		fprintf(stderr,
		        "usage: memgen-expect PASSES CPUS (PASSES 1..16777215, CPUS 1..%d)\n",
		        CPUS_MAX);
		return 2;
	}
	for (uint64_t v = 0; v < cpus; v++) {
		struct memgen_chain c;

		memgen_chain_init(&c, tables[v], v, passes);
		for (uint64_t p = 0; p < passes; p++)
			memgen_chain_run(&c, v ? MEMGEN_AP_ROUNDS : MEMGEN_BSP_ROUNDS);
		values[v] = memgen_chain_value(&c);
	}
	printf("result=0x%016" PRIx64 " passes=%" PRIu64 "\n", memgen_result(passes, cpus, values),
	       passes);
	return 0;
}
