/* SPDX-License-Identifier: MIT */
/*
 * memwarm: touch MiB of fresh anonymous memory (transparent huge pages
 * asked for, as guest RAM is), then free it, so that the next processes
 * to take memory get pages the hypervisor below this machine backs already.
 *
 *   memwarm MiB
 *
 * Why (bench/migrate.sh): on a virtual machine with free page reporting
 * (virtio-balloon; "Free page reporting enabled" in dmesg) the kernel
 * hands free memory back to the host a few seconds after it was freed,
 * and the first touch of such a page then costs a fault in the host and
 * its zeroing there: on the development VM 1-3 s per GiB instead of
 * ~0.13 s. A migration's destination fills fresh memory, so whichever
 * monitor happened to run just after another one had freed its memory
 * was several times faster. Memory freed just now is taken first (reported
 * pages go to the tail of the free lists), so warming right before each
 * migration gives both monitors the same, warm, start. On a host without
 * page reporting it only costs the touch.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define PAGE 4096ul

int main(int argc, char **argv)
{
	unsigned long mib;
	size_t len;
	char *end, *p;

	if (argc != 2 || (mib = strtoul(argv[1], &end, 10)) == 0 || *end || mib > (1ul << 20)) {
		fprintf(stderr, "usage: memwarm MiB (1 to 1048576)\n");
		return 2;
	}
	len = mib << 20;
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
	         -1, 0);
	if (p == MAP_FAILED) {
		fprintf(stderr, "memwarm: mmap of %lu MiB: %s\n", mib, strerror(errno));
		return 1;
	}
	/* Advice only: without THP the pages come 4 KiB at a time, warm all the same. */
	(void)madvise(p, len, MADV_HUGEPAGE);
	for (size_t off = 0; off < len; off += PAGE)
		((volatile char *)p)[off] = 1;
	munmap(p, len);
	return 0;
}
