// SPDX-License-Identifier: MIT
/*
 * ptwalk PID CR3 VA... - walks a nestvm guest's 4-level page tables as they
 * are in its memory, read from outside through /proc/PID/mem, for each
 * virtual address: every level's entry, then the guest-physical address or
 * the level whose entry is not present. The guest's RAM is found in
 * /proc/PID/smaps (find_ram), laid out as src/arch/x86/layout.h says.
 *
 * For the lab's own L1 triple fault (tests/lab/README.md, "lab.sh"): the
 * lab KVM's kprobe gives the L1's CR3 at the fault, nestvm holds the VM
 * (NESTVM_SHUTDOWN_HOLD) and this reads whether the L1's page tables really
 * map the RIP and the IDT that the emulated CPU found unmapped.
 * Exit status: 0 walked (whatever it found), 1 could not read the guest.
 */
#include "arch/x86/layout.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SZ_2M (UINT64_C(2) << 20)
#define PTE_P UINT64_C(0x1)
#define PTE_PS UINT64_C(0x80)
#define PTE_ADDR UINT64_C(0x000ffffffffff000)

static int mem_fd = -1;
static uint64_t ram_hva, ram_size;

/*
 * Guest RAM (src/core/guest_mem.c), the largest of: an anonymous mapping
 * advised MADV_HUGEPAGE ("hg" in smaps' VmFlags), RAM but its first 2 MiB;
 * a file's private writable mapping (a VM restored from a snapshot maps its
 * memory file over RAM), all of RAM.
 */
static bool find_ram(const char *pid)
{
	char path[64], line[512];
	uint64_t lo = 0, hi = 0, best = 0;
	bool file = false, writable = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%s/smaps", pid);
	f = fopen(path, "r");
	if (!f) {
		perror(path);
		return false;
	}
	while (fgets(line, sizeof(line), f)) {
		uint64_t l, h;
		char perms[8];
		int n = 0, got;

		got = sscanf(line, "%" SCNx64 "-%" SCNx64 " %7s %*s %*s %*s%n", &l, &h, perms, &n);
		if (got == 3 && n) {
			const char *rest = line + n + strspn(line + n, " ");

			lo = l;
			hi = h;
			writable = strncmp(perms, "rw-p", 4) == 0;
			file = *rest == '/';
			continue;
		}
		if (strncmp(line, "VmFlags:", 8) != 0 || !writable)
			continue;
		if (file && hi - lo > best) {
			best = hi - lo;
			ram_hva = lo;
		} else if (!file && strstr(line, " hg") && hi - lo + SZ_2M > best) {
			best = hi - lo + SZ_2M;
			ram_hva = lo - SZ_2M;
		}
	}
	fclose(f);
	if (best < 2 * SZ_2M) {
		fprintf(stderr, "ptwalk: no guest RAM in %s\n", path);
		return false;
	}
	ram_size = best;
	return true;
}

/* The guest-physical 8 bytes at @gpa; false if outside RAM or unreadable. */
static bool read_gpa(uint64_t gpa, uint64_t *val)
{
	uint64_t low = ram_size < LAYOUT_LOWMEM_MAX ? ram_size : LAYOUT_LOWMEM_MAX, off;

	if (gpa + 8 <= low)
		off = gpa;
	else if (gpa >= LAYOUT_HIGHMEM_BASE && gpa + 8 - LAYOUT_HIGHMEM_BASE <= ram_size - low)
		off = low + (gpa - LAYOUT_HIGHMEM_BASE);
	else
		return false;
	return pread(mem_fd, val, 8, (off_t)(ram_hva + off)) == 8;
}

static void walk(uint64_t cr3, uint64_t va)
{
	static const char *const names[] = {"pml4e", "pdpte", "pde", "pte"};
	uint64_t table = cr3 & PTE_ADDR, e;

	printf("va 0x%016" PRIx64 ":", va);
	for (int level = 0; level < 4; level++) {
		unsigned int shift = 39 - 9 * level, idx = (va >> shift) & 511;

		if (!read_gpa(table + idx * 8, &e)) {
			printf(" %s[%u] at gpa 0x%" PRIx64 " outside RAM\n", names[level], idx,
			       table + idx * 8);
			return;
		}
		printf(" %s[%u]=0x%" PRIx64, names[level], idx, e);
		if (!(e & PTE_P)) {
			printf(" -> not present\n");
			return;
		}
		if (level == 3 || (level > 0 && (e & PTE_PS))) {
			uint64_t mask = (UINT64_C(1) << shift) - 1;

			printf(" -> gpa 0x%" PRIx64 "\n", ((e & PTE_ADDR) & ~mask) | (va & mask));
			return;
		}
		table = e & PTE_ADDR;
	}
}

int main(int argc, char **argv)
{
	char path[64];
	uint64_t cr3, e;
	unsigned int present = 0;

	if (argc < 4) {
		fprintf(stderr, "usage: ptwalk PID CR3 VA...\n");
		return 2;
	}
	if (!find_ram(argv[1]))
		return 1;
	snprintf(path, sizeof(path), "/proc/%s/mem", argv[1]);
	mem_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (mem_fd < 0) {
		perror(path);
		return 1;
	}
	cr3 = strtoull(argv[2], NULL, 16);
	/* How full the top level is: a zeroed or overwritten page shows here. */
	for (unsigned int i = 0; i < 512; i++) {
		if (!read_gpa((cr3 & PTE_ADDR) + i * 8, &e)) {
			fprintf(stderr,
			        "ptwalk: CR3 0x%" PRIx64 " is outside the guest's %" PRIu64
			        " MiB of RAM\n",
			        cr3, ram_size >> 20);
			return 1;
		}
		present += e & PTE_P;
	}
	printf("guest RAM %" PRIu64 " MiB at 0x%" PRIx64 "; cr3 0x%" PRIx64
	       ": %u of 512 top-level entries present\n",
	       ram_size >> 20, ram_hva, cr3, present);
	for (int i = 3; i < argc; i++)
		walk(cr3, strtoull(argv[i], NULL, 16));
	return 0;
}
