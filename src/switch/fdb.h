/* SPDX-License-Identifier: MIT */
#ifndef NESTVM_SWITCH_FDB_H
#define NESTVM_SWITCH_FDB_H

/*
 * The switch's MAC table (forwarding database, IEEE 802.1Q §8.8): which
 * port a unicast MAC was last seen on. Entries age out FDB_AGEING_MS after
 * the last frame from that MAC; the table holds at most its capacity, and a
 * full table forgets its oldest entry for a new one, so a guest that sends
 * from a million MACs costs the others flooding, never memory.
 * Times are milliseconds of a monotonic clock, passed in (testable).
 */

#include <stdbool.h>
#include <stdint.h>

#define FDB_AGEING_MS (300 * 1000)
#define FDB_DEFAULT_CAPACITY 4096
#define FDB_BUCKETS 1024 /* a power of two */
#define FDB_NONE UINT32_MAX

struct fdb_entry {
	uint8_t mac[6];
	bool used;
	unsigned int port;
	int64_t seen_ms;
	uint32_t next; /* the bucket's chain, or the free list */
};

struct fdb {
	struct fdb_entry *entries;
	uint32_t capacity, count, free_head;
	int64_t ageing_ms;
	uint32_t buckets[FDB_BUCKETS];
};

/* fdb_init - a table of @capacity entries ageing after @ageing_ms; 0 or -ENOMEM. */
int fdb_init(struct fdb *t, uint32_t capacity, int64_t ageing_ms)
    __attribute__((warn_unused_result));
void fdb_destroy(struct fdb *t);

/* fdb_learn - @mac (unicast) was seen on @port at @now_ms. */
void fdb_learn(struct fdb *t, const uint8_t mac[6], unsigned int port, int64_t now_ms);

/* fdb_lookup - the port @mac lives on, or -1 if unknown or aged out. */
int fdb_lookup(struct fdb *t, const uint8_t mac[6], int64_t now_ms);

/* fdb_forget_port - drop every entry of @port (it went away). */
void fdb_forget_port(struct fdb *t, unsigned int port);

/* fdb_age - drop the entries older than the ageing time; returns how many. */
unsigned int fdb_age(struct fdb *t, int64_t now_ms);

#endif
