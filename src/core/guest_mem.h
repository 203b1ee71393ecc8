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

	/*
	 * Pages nestvm's own devices wrote through host pointers while a live
	 * migration runs (KVM's dirty log sees only the guest's writes): one
	 * bit per page of ram, set atomically by guest_mem_mark_dirty(), taken
	 * by guest_mem_dirty_take(). Allocated on the first
	 * guest_mem_dirty_start() and kept until guest_mem_destroy(), so a
	 * device thread never marks into freed memory.
	 */
	unsigned long *dirty;
	bool dirty_on; /* atomic: marking is on */
};

#define GUEST_MEM_PAGE_SIZE 4096ULL
#define GUEST_MEM_BITS_PER_WORD (8 * sizeof(unsigned long))

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

/* guest_mem_pages - pages of RAM; guest_mem_dirty_words - words of a bitmap over them. */
uint64_t guest_mem_pages(const struct guest_mem *mem);
size_t guest_mem_dirty_words(const struct guest_mem *mem);

/*
 * guest_mem_ram_gpa - the guest-physical address of byte @off of ram (RAM
 * in gpa order, across the PCI hole); @off < ram_size.
 */
uint64_t guest_mem_ram_gpa(const struct guest_mem *mem, uint64_t off);

/*
 * guest_mem_dirty_start - clear the device-dirty bitmap and start marking
 * (allocating the bitmap the first time). 0 or -ENOMEM.
 * guest_mem_dirty_stop - stop marking; the bitmap stays allocated.
 */
int guest_mem_dirty_start(struct guest_mem *mem) __attribute__((warn_unused_result));
void guest_mem_dirty_stop(struct guest_mem *mem);

/*
 * guest_mem_mark_dirty - a device wrote [@host, @host + @len) of guest RAM
 * (a pointer guest_mem_ptr() gave): mark its pages, if marking is on.
 * Call it after the write. Cheap when off (one atomic load); any thread.
 */
void guest_mem_mark_dirty(const struct guest_mem *mem, const void *host, uint64_t len);

/*
 * guest_mem_dirty_take - OR the marked pages into @bitmap (one bit per page
 * of ram, guest_mem_dirty_words() words) and clear them, word by word
 * atomically: a page marked meanwhile is either taken now or left for next
 * time, never lost.
 */
void guest_mem_dirty_take(struct guest_mem *mem, unsigned long *bitmap);

/* guest_mem_lowmem_end - end of the RAM region that starts at 0. */
uint64_t guest_mem_lowmem_end(const struct guest_mem *mem);

#endif
