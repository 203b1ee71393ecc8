/* SPDX-License-Identifier: MIT */
#ifndef PROBE_MEMGEN_CHAIN_H
#define PROBE_MEMGEN_CHAIN_H

/*
 * The deterministic work of test=memgen's vCPUs (test_memgen.c), shared
 * with the host program that computes the result a run must print
 * (memgen_expect.c), so it needs nothing but <stdint.h>.
 *
 * Every vCPU v (0 the BSP, slot + 1 an AP) runs one chain: an xorshift64
 * generator x (Marsaglia 2003, 13/7/17) that walks a table of
 * MEMGEN_TABLE_WORDS words in RAM, adding to the word it lands on, and an
 * accumulator h that multiplies in every word it wrote. Each step depends
 * on the one before, on registers and on the table, so a vCPU whose
 * registers or table pages a save/restore got wrong ends with another
 * value. The chain runs `rounds` steps per pass of the memory walk:
 * MEMGEN_AP_ROUNDS on an AP, MEMGEN_BSP_ROUNDS on the BSP, between passes.
 * The result folds in passes, the vCPU count and each vCPU's final value,
 * so it depends on nothing else (not on RAM size, timing or disk=on).
 */

#include <stdint.h>

#define MEMGEN_TABLE_WORDS 2048           /* 16 KiB per vCPU */
#define MEMGEN_TABLE_SHIFT 53             /* 64 - log2(MEMGEN_TABLE_WORDS) */
#define MEMGEN_AP_ROUNDS 50000            /* steps per pass on an AP */
#define MEMGEN_BSP_ROUNDS 5000            /* steps per pass on the BSP */
#define MEMGEN_SEED 0x6d656d67656e2121ULL /* "memgen!!" */
#define MEMGEN_GOLDEN 0x9e3779b97f4a7c15ULL

struct memgen_chain {
	uint64_t x, h;
	uint64_t *table; /* MEMGEN_TABLE_WORDS words */
};

/* splitmix64's finaliser (Steele, Lea, Flood 2014): a 64-bit bijective mix. */
static inline uint64_t memgen_mix(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Seed vCPU @vcpu's chain for a run of @passes and fill its @table. */
static inline void memgen_chain_init(struct memgen_chain *c, uint64_t *table, uint64_t vcpu,
                                     uint64_t passes)
{
	c->x = memgen_mix(MEMGEN_SEED ^ vcpu << 40 ^ passes) | 1; /* xorshift needs x != 0 */
	c->h = memgen_mix(c->x);
	c->table = table;
	for (uint64_t i = 0; i < MEMGEN_TABLE_WORDS; i++)
		table[i] = memgen_mix(c->h + i);
}

/* @rounds steps of the chain. */
static inline void memgen_chain_run(struct memgen_chain *c, uint64_t rounds)
{
	uint64_t x = c->x, h = c->h;
	volatile uint64_t *t = c->table; /* every step goes through memory */

	for (uint64_t r = 0; r < rounds; r++) {
		uint64_t i, v;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		i = x >> MEMGEN_TABLE_SHIFT;
		v = t[i] + (x ^ h);
		t[i] = v;
		h = (h ^ v) * MEMGEN_GOLDEN;
	}
	c->x = x;
	c->h = h;
}

/* The chain's final value: its state and its whole table. */
static inline uint64_t memgen_chain_value(const struct memgen_chain *c)
{
	uint64_t v = memgen_mix(c->x ^ c->h);

	for (uint64_t i = 0; i < MEMGEN_TABLE_WORDS; i++)
		v = memgen_mix(v ^ c->table[i]);
	return v;
}

/* The run's result from each vCPU's value, BSP first. */
static inline uint64_t memgen_result(uint64_t passes, uint64_t cpus, const uint64_t *values)
{
	uint64_t r = memgen_mix(MEMGEN_SEED ^ passes ^ cpus << 48);

	for (uint64_t v = 0; v < cpus; v++)
		r = memgen_mix(r ^ values[v]);
	return r;
}

#endif
