/* SPDX-License-Identifier: MIT */
#include "core/guest_mem.h"

#include "arch/x86/layout.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define SZ_2M 0x200000ULL

int guest_mem_init(struct guest_mem *mem, uint64_t ram_size, int hugepages)
{
	uint64_t low = ram_size < LAYOUT_LOWMEM_MAX ? ram_size : LAYOUT_LOWMEM_MAX;
	size_t map_size;
	uint8_t *base, *aligned;

	memset(mem, 0, sizeof(*mem));
	mem->file_fd = -1;
	if (ram_size == 0 || ram_size > (1ULL << 46))
		return -EINVAL;
	/* Over-allocate by 2 MiB so guest RAM starts on a huge-page boundary. */
	map_size = ram_size + SZ_2M;
	base = mmap(NULL, map_size, PROT_READ | PROT_WRITE,
	            MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (base == MAP_FAILED)
		return -errno;
	aligned = (uint8_t *)(((uintptr_t)base + SZ_2M - 1) & ~(uintptr_t)(SZ_2M - 1));
	/*
	 * Huge pages cut the nested page faults a guest takes when nestvm runs
	 * inside another VM; the first 2 MiB stay small pages so that a tiny
	 * guest does not pay 2 MiB of RSS for its boot page.
	 */
	if (hugepages && ram_size > SZ_2M)
		madvise(aligned + SZ_2M, ram_size - SZ_2M, MADV_HUGEPAGE);
	mem->mapping = base;
	mem->mapping_size = map_size;
	mem->ram_size = ram_size;
	mem->ram = aligned;
	mem->regions[0] = (struct guest_mem_region){0, low, aligned};
	mem->nr_regions = 1;
	if (ram_size > low) {
		mem->regions[1] =
		    (struct guest_mem_region){LAYOUT_HIGHMEM_BASE, ram_size - low, aligned + low};
		mem->nr_regions = 2;
	}
	return 0;
}

int guest_mem_map_file(struct guest_mem *mem, int fd)
{
	int dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	void *p;

	if (dup_fd < 0)
		return -errno;
	p = mmap(mem->ram, mem->ram_size, PROT_READ | PROT_WRITE,
	         MAP_PRIVATE | MAP_FIXED | MAP_NORESERVE, fd, 0);
	if (p == MAP_FAILED) {
		int r = -errno;

		close(dup_fd);
		return r;
	}
	mem->file_backed = true;
	mem->file_fd = dup_fd;
	return 0;
}

void guest_mem_destroy(struct guest_mem *mem)
{
	if (mem->mapping)
		munmap(mem->mapping, mem->mapping_size);
	if (mem->file_backed && mem->file_fd >= 0)
		close(mem->file_fd);
	free(mem->dirty);
	memset(mem, 0, sizeof(*mem));
}

void *guest_mem_ptr(const struct guest_mem *mem, uint64_t gpa, uint64_t len)
{
	unsigned int i;

	if (gpa + len < gpa)
		return NULL;
	for (i = 0; i < mem->nr_regions; i++) {
		const struct guest_mem_region *r = &mem->regions[i];

		if (gpa >= r->gpa && gpa - r->gpa <= r->size && len <= r->size - (gpa - r->gpa))
			return r->host + (gpa - r->gpa);
	}
	return NULL;
}

uint64_t guest_mem_lowmem_end(const struct guest_mem *mem)
{
	return mem->nr_regions ? mem->regions[0].size : 0;
}

uint64_t guest_mem_pages(const struct guest_mem *mem)
{
	return mem->ram_size / GUEST_MEM_PAGE_SIZE;
}

size_t guest_mem_dirty_words(const struct guest_mem *mem)
{
	return (size_t)((guest_mem_pages(mem) + GUEST_MEM_BITS_PER_WORD - 1) /
	                GUEST_MEM_BITS_PER_WORD);
}

uint64_t guest_mem_ram_gpa(const struct guest_mem *mem, uint64_t off)
{
	for (unsigned int i = 0; i < mem->nr_regions; i++) {
		const struct guest_mem_region *r = &mem->regions[i];
		uint64_t start = (uint64_t)(r->host - mem->ram);

		if (off >= start && off - start < r->size)
			return r->gpa + (off - start);
	}
	return ~0ULL;
}

int guest_mem_dirty_start(struct guest_mem *mem)
{
	size_t words = guest_mem_dirty_words(mem);

	if (!mem->dirty) {
		mem->dirty = calloc(words, sizeof(*mem->dirty));
		if (!mem->dirty)
			return -ENOMEM;
	} else {
		for (size_t i = 0; i < words; i++)
			__atomic_store_n(&mem->dirty[i], 0, __ATOMIC_RELAXED);
	}
	/* Release: a device that sees marking on sees the bitmap. */
	__atomic_store_n(&mem->dirty_on, true, __ATOMIC_RELEASE);
	return 0;
}

void guest_mem_dirty_stop(struct guest_mem *mem)
{
	__atomic_store_n(&mem->dirty_on, false, __ATOMIC_RELEASE);
}

void guest_mem_mark_dirty(const struct guest_mem *mem, const void *host, uint64_t len)
{
	uint64_t off, first, last;

	if (!__atomic_load_n(&mem->dirty_on, __ATOMIC_ACQUIRE) || !len)
		return;
	if ((const uint8_t *)host < mem->ram)
		return;
	off = (uint64_t)((const uint8_t *)host - mem->ram);
	if (off >= mem->ram_size || len > mem->ram_size - off)
		return;
	first = off / GUEST_MEM_PAGE_SIZE;
	last = (off + len - 1) / GUEST_MEM_PAGE_SIZE;
	/* Release: the device's writes to the page before the bit the migration reads. */
	for (uint64_t p = first; p <= last; p++)
		__atomic_fetch_or(&mem->dirty[p / GUEST_MEM_BITS_PER_WORD],
		                  1UL << (p % GUEST_MEM_BITS_PER_WORD), __ATOMIC_RELEASE);
}

void guest_mem_dirty_take(struct guest_mem *mem, unsigned long *bitmap)
{
	size_t words = guest_mem_dirty_words(mem);

	if (!mem->dirty)
		return;
	for (size_t i = 0; i < words; i++) {
		if (__atomic_load_n(&mem->dirty[i], __ATOMIC_RELAXED))
			bitmap[i] |= __atomic_exchange_n(&mem->dirty[i], 0, __ATOMIC_ACQUIRE);
	}
}
