/* SPDX-License-Identifier: MIT */
#ifndef NESTVM_CORE_BUS_H
#define NESTVM_CORE_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * An address-space bus: the port I/O space and the MMIO space of a VM each
 * have one. Devices register non-overlapping ranges before the vCPUs start;
 * afterwards the bus is read-only, so dispatch needs no lock. Each device
 * serialises its own state.
 *
 * A handler gets the offset into its range, the access width (1, 2, 4 or 8)
 * and a buffer in guest byte order (little endian). On a read it fills @data.
 */
typedef void (*bus_io_fn)(void *opaque, uint64_t offset, void *data, uint32_t len, bool is_write);

struct bus_range {
	uint64_t base;
	uint64_t len;
	bus_io_fn fn;
	void *opaque;
	const char *name;
};

struct bus {
	struct bus_range *ranges; /* sorted by base */
	size_t nr;
	size_t cap;
};

/*
 * bus_add_range - register [base, base + len) for a device.
 * Returns 0, -EINVAL for an empty or wrapping range, -EEXIST if it overlaps
 * a registered range, -ENOMEM.
 */
int bus_add_range(struct bus *bus, uint64_t base, uint64_t len, bus_io_fn fn, void *opaque,
                  const char *name) __attribute__((warn_unused_result));

/* bus_find - the range holding [addr, addr + len), or NULL. */
const struct bus_range *bus_find(const struct bus *bus, uint64_t addr, uint32_t len);

/*
 * bus_dispatch - route one access. Returns true if a device handled it;
 * false (and, for a read, @data filled with 0xff) when nothing is there.
 */
bool bus_dispatch(const struct bus *bus, uint64_t addr, void *data, uint32_t len, bool is_write);

/* bus_destroy - free the range table (not the devices). */
void bus_destroy(struct bus *bus);

#endif
