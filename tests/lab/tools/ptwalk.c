// SPDX-License-Identifier: MIT
/*
 * ptwalk [-n NCR3] PID CR3 VA... - walks a nestvm guest's 4-level page tables as they
 * are in its memory, read from outside through /proc/PID/mem, for each
 * virtual address: every level's entry, then the guest-physical address or
 * the level whose entry is not present. The guest's RAM is found in
 * /proc/PID/smaps (find_ram), laid out as src/arch/x86/layout.h says.
 *
 * For the lab's own L1 triple fault (tests/lab/README.md, "lab.sh"): the
 * lab KVM's kprobe gives the L1's CR3 at the fault, nestvm holds the VM
 * (NESTVM_SHUTDOWN_HOLD) and this reads whether the L1's page tables really
 * map the RIP and the IDT that the emulated CPU found unmapped.
 *
 * With -n, the guest's nested page table (host-physical root NCR3, from the
 * VMCB) is walked too, through /proc/kcore, for each guest page-table page
 * the walk reads: the host page it maps that page to, against the one
 * nestvm's own mapping holds (/proc/PID/pagemap). Different pages mean the
 * CPU read the guest's page tables from a page nestvm no longer has.
 * Exit status: 0 walked (whatever it found), 1 could not read the guest.
 */
#include "arch/x86/layout.h"

#include <elf.h>
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

static int mem_fd = -1, pagemap_fd = -1, kcore_fd = -1;
static uint64_t ram_hva, ram_size, ncr3;
static Elf64_Phdr kcore_ph[64];
static unsigned int kcore_nph;

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

/* The host-virtual address of guest-physical @gpa; 0 if outside RAM. */
static uint64_t gpa_hva(uint64_t gpa)
{
	uint64_t low = ram_size < LAYOUT_LOWMEM_MAX ? ram_size : LAYOUT_LOWMEM_MAX;

	if (gpa + 8 <= low)
		return ram_hva + gpa;
	if (gpa >= LAYOUT_HIGHMEM_BASE && gpa + 8 - LAYOUT_HIGHMEM_BASE <= ram_size - low)
		return ram_hva + low + (gpa - LAYOUT_HIGHMEM_BASE);
	return 0;
}

/* The guest-physical 8 bytes at @gpa; false if outside RAM or unreadable. */
static bool read_gpa(uint64_t gpa, uint64_t *val)
{
	uint64_t hva = gpa_hva(gpa);

	return hva && pread(mem_fd, val, 8, (off_t)hva) == 8;
}

/* The host-physical 8 bytes at @pa, through /proc/kcore's RAM segments. */
static bool read_hpa(uint64_t pa, uint64_t *val)
{
	for (unsigned int i = 0; i < kcore_nph; i++) {
		const Elf64_Phdr *ph = &kcore_ph[i];

		if (ph->p_type == PT_LOAD && ph->p_paddr != UINT64_MAX && pa >= ph->p_paddr &&
		    pa + 8 <= ph->p_paddr + ph->p_memsz)
			return pread(kcore_fd, val, 8,
			             (off_t)(ph->p_offset + (pa - ph->p_paddr))) == 8;
	}
	return false;
}

static bool kcore_open(void)
{
	Elf64_Ehdr eh;

	kcore_fd = open("/proc/kcore", O_RDONLY | O_CLOEXEC);
	if (kcore_fd < 0 || pread(kcore_fd, &eh, sizeof(eh), 0) != sizeof(eh) ||
	    memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_phentsize != sizeof(Elf64_Phdr))
		return false;
	kcore_nph = eh.e_phnum < 64 ? eh.e_phnum : 64;
	return pread(kcore_fd, kcore_ph, kcore_nph * sizeof(Elf64_Phdr), (off_t)eh.e_phoff) ==
	       (ssize_t)(kcore_nph * sizeof(Elf64_Phdr));
}

/* The host page frame the nested page table maps @gpa to; 0 if none. */
static uint64_t npt_pfn(uint64_t gpa)
{
	uint64_t table = ncr3 & PTE_ADDR, e;

	for (int level = 0; level < 4; level++) {
		unsigned int shift = 39 - 9 * level;

		if (!read_hpa(table + ((gpa >> shift) & 511) * 8, &e) || !(e & PTE_P))
			return 0;
		if (level == 3 || (level > 0 && (e & PTE_PS))) {
			uint64_t mask = (UINT64_C(1) << shift) - 1;

			return (((e & PTE_ADDR) & ~mask) | (gpa & mask)) >> 12;
		}
		table = e & PTE_ADDR;
	}
	return 0;
}

/* The host page frame nestvm's mapping holds for @gpa; 0 if none. */
static uint64_t hva_pfn(uint64_t gpa)
{
	uint64_t hva = gpa_hva(gpa), e;

	if (!hva || pread(pagemap_fd, &e, 8, (off_t)(hva / 4096 * 8)) != 8 || !(e >> 63))
		return 0;
	return e & ((UINT64_C(1) << 55) - 1);
}

/* With -n: where the NPT and nestvm put the guest page-table page at @gpa. */
static void npt_compare(const char *what, uint64_t gpa)
{
	uint64_t n, h;

	if (kcore_fd < 0)
		return;
	n = npt_pfn(gpa);
	h = hva_pfn(gpa);
	printf(" [%s page: host pfn 0x%" PRIx64 " in the NPT, 0x%" PRIx64 " in nestvm's: %s]", what,
	       n, h, n == h ? "same" : "DIFFERENT");
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
		npt_compare(names[level], table);
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

	if (argc > 2 && strcmp(argv[1], "-n") == 0) {
		ncr3 = strtoull(argv[2], NULL, 16);
		argv += 2;
		argc -= 2;
	}
	if (argc < 4) {
		fprintf(stderr, "usage: ptwalk [-n NCR3] PID CR3 VA...\n");
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
	if (ncr3) {
		snprintf(path, sizeof(path), "/proc/%s/pagemap", argv[1]);
		pagemap_fd = open(path, O_RDONLY | O_CLOEXEC);
		if (pagemap_fd < 0 || !kcore_open()) {
			fprintf(stderr, "ptwalk: no nested walk: cannot read %s or /proc/kcore\n",
			        path);
			if (kcore_fd >= 0)
				close(kcore_fd);
			kcore_fd = -1;
		}
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
