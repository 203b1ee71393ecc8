/* SPDX-License-Identifier: MIT */
#ifndef NESTVM_CORE_GUEST_MEM_H
#define NESTVM_CORE_GUEST_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Guest RAM: up to two regions (below the PCI hole and above 4 GiB), each one
 * anonymous mapping. Memory is mapped lazily: nothing is touched or zeroed
 * until the guest or a loader writes to it.
 */

#define GUEST_MEM_MAX_REGIONS 2

struct guest_mem_region {
	uint64_t gpa;
	uint64_t size;
	uint8_t *host;
};

struct guest_mem {
	struct guest_mem_region regions[GUEST_MEM_MAX_REGIONS];
	unsigned int nr_regions;
	uint64_t ram_size; /* total bytes of RAM */
	void *mapping;     /* the one host mapping that backs all regions */
	size_t mapping_size;
	uint8_t *ram;      /* regions[0].host: all RAM, ram_size bytes, in gpa order */
	bool file_backed;  /* RAM is a private mapping of a snapshot's memory file */
	int file_fd;       /* file_backed: that file, for its holes (-1 otherwise) */
};

/*
 * guest_mem_init - reserve @ram_size bytes of guest RAM laid out around the
 * PCI hole (see arch/x86/layout.h). @hugepages asks the kernel for
 * transparent huge pages above the first 2 MiB. Returns 0 or -errno.
 */
int guest_mem_init(struct guest_mem *mem, uint64_t ram_size, int hugepages)
    __attribute__((warn_unused_result));

/*
 * guest_mem_map_file - replace all of guest RAM by a private, copy-on-write
 * mapping of @fd (ram_size bytes, RAM in gpa order as guest_mem.ram holds
 * it): pages are read from the file when first touched, and guest writes
 * never reach it. Before the memory is given to KVM. The caller keeps @fd;
 * the mapping holds its own reference, and guest_mem.file_fd a duplicate
 * (closed by guest_mem_destroy()) through which a save finds the file's
 * holes. Returns 0 or -errno.
 */
int guest_mem_map_file(struct guest_mem *mem, int fd) __attribute__((warn_unused_result));

/* guest_mem_destroy - unmap guest RAM; safe on a zeroed or destroyed struct. */
void guest_mem_destroy(struct guest_mem *mem);

/*
 * guest_mem_ptr - the host address of guest-physical [gpa, gpa + len), or
 * NULL if any byte of it is not RAM or the range wraps. The only way the
 * monitor should reach guest memory.
 */
void *guest_mem_ptr(const struct guest_mem *mem, uint64_t gpa, uint64_t len);

/* guest_mem_lowmem_end - end of the RAM region that starts at 0. */
uint64_t guest_mem_lowmem_end(const struct guest_mem *mem);

#endif
