// SPDX-License-Identifier: MIT
/* The switch's MAC table (fdb.h): chained hash buckets over a fixed array. */
#include "switch/fdb.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static uint32_t fdb_hash(const uint8_t mac[6])
{
	uint32_t h = 2166136261u; /* FNV-1a */

	for (int i = 0; i < 6; i++)
		h = (h ^ mac[i]) * 16777619u;
	return h & (FDB_BUCKETS - 1);
}

int fdb_init(struct fdb *t, uint32_t capacity, int64_t ageing_ms)
{
	memset(t, 0, sizeof(*t));
	if (capacity == 0 || capacity >= FDB_NONE)
		return -EINVAL;
	t->entries = calloc(capacity, sizeof(*t->entries));
	if (!t->entries)
		return -ENOMEM;
	t->capacity = capacity;
	t->ageing_ms = ageing_ms;
	for (uint32_t i = 0; i < FDB_BUCKETS; i++)
		t->buckets[i] = FDB_NONE;
	for (uint32_t i = 0; i < capacity; i++)
		t->entries[i].next = i + 1 < capacity ? i + 1 : FDB_NONE;
	t->free_head = 0;
	return 0;
}

void fdb_destroy(struct fdb *t)
{
	free(t->entries);
	t->entries = NULL;
	t->capacity = t->count = 0;
}

static void fdb_unlink(struct fdb *t, uint32_t idx)
{
	struct fdb_entry *e = &t->entries[idx];
	uint32_t *p = &t->buckets[fdb_hash(e->mac)];

	while (*p != FDB_NONE && *p != idx)
		p = &t->entries[*p].next;
	if (*p == idx)
		*p = e->next;
	e->used = false;
	e->next = t->free_head;
	t->free_head = idx;
	t->count--;
}

static uint32_t fdb_find(struct fdb *t, const uint8_t mac[6])
{
	for (uint32_t i = t->buckets[fdb_hash(mac)]; i != FDB_NONE; i = t->entries[i].next)
		if (!memcmp(t->entries[i].mac, mac, 6))
			return i;
	return FDB_NONE;
}

void fdb_learn(struct fdb *t, const uint8_t mac[6], unsigned int port, int64_t now_ms)
{
	uint32_t idx = fdb_find(t, mac), b;
	struct fdb_entry *e;

	if (mac[0] & 1)
		return; /* a group address is never a source */
	if (idx != FDB_NONE) {
		t->entries[idx].port =
		    port; /* a VM that moved, or a spoofer: the last frame wins */
		t->entries[idx].seen_ms = now_ms;
		return;
	}
	if (t->free_head == FDB_NONE) {
		uint32_t oldest = 0;

		/* Full: only when someone floods new MACs, so an O(n) scan is fine. */
		for (uint32_t i = 1; i < t->capacity; i++)
			if (t->entries[i].seen_ms < t->entries[oldest].seen_ms)
				oldest = i;
		fdb_unlink(t, oldest);
	}
	idx = t->free_head;
	e = &t->entries[idx];
	t->free_head = e->next;
	memcpy(e->mac, mac, 6);
	e->used = true;
	e->port = port;
	e->seen_ms = now_ms;
	b = fdb_hash(mac);
	e->next = t->buckets[b];
	t->buckets[b] = idx;
	t->count++;
}

int fdb_lookup(struct fdb *t, const uint8_t mac[6], int64_t now_ms)
{
	uint32_t idx = fdb_find(t, mac);

	if (idx == FDB_NONE)
		return -1;
	if (now_ms - t->entries[idx].seen_ms > t->ageing_ms) {
		fdb_unlink(t, idx);
		return -1;
	}
	return (int)t->entries[idx].port;
}

void fdb_forget_port(struct fdb *t, unsigned int port)
{
	for (uint32_t i = 0; i < t->capacity; i++)
		if (t->entries[i].used && t->entries[i].port == port)
			fdb_unlink(t, i);
}

unsigned int fdb_age(struct fdb *t, int64_t now_ms)
{
	unsigned int n = 0;

	for (uint32_t i = 0; i < t->capacity; i++)
		if (t->entries[i].used && now_ms - t->entries[i].seen_ms > t->ageing_ms) {
			fdb_unlink(t, i);
			n++;
		}
	return n;
}
