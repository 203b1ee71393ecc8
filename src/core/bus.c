/* SPDX-License-Identifier: MIT */
#include "core/bus.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int bus_add_range(struct bus *bus, uint64_t base, uint64_t len, bus_io_fn fn, void *opaque,
                  const char *name)
{
	size_t i;

	if (len == 0 || base + len < base || !fn)
		return -EINVAL;
	for (i = 0; i < bus->nr; i++) {
		const struct bus_range *r = &bus->ranges[i];

		if (base < r->base + r->len && r->base < base + len)
			return -EEXIST;
	}
	if (bus->nr == bus->cap) {
		size_t cap = bus->cap ? bus->cap * 2 : 16;
		struct bus_range *n = realloc(bus->ranges, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		bus->ranges = n;
		bus->cap = cap;
	}
	for (i = bus->nr; i > 0 && bus->ranges[i - 1].base > base; i--)
		bus->ranges[i] = bus->ranges[i - 1];
	bus->ranges[i] = (struct bus_range){base, len, fn, opaque, name};
	bus->nr++;
	return 0;
}

const struct bus_range *bus_find(const struct bus *bus, uint64_t addr, uint32_t len)
{
	size_t lo = 0, hi = bus->nr;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct bus_range *r = &bus->ranges[mid];

		if (addr < r->base)
			hi = mid;
		else if (addr - r->base >= r->len)
			lo = mid + 1;
		else
			return (addr - r->base) + len <= r->len ? r : NULL;
	}
	return NULL;
}

bool bus_dispatch(const struct bus *bus, uint64_t addr, void *data, uint32_t len, bool is_write)
{
	const struct bus_range *r = bus_find(bus, addr, len);

	if (!r) {
		if (!is_write)
			memset(data, 0xff, len);
		return false;
	}
	r->fn(r->opaque, addr - r->base, data, len, is_write);
	return true;
}

void bus_destroy(struct bus *bus)
{
	free(bus->ranges);
	memset(bus, 0, sizeof(*bus));
}
