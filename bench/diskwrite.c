/* SPDX-License-Identifier: MIT */
/*
 * diskwrite: the disk's write speed for bench/snapshot.sh, in the pattern a
 * nestvm save writes the memory file of a fully written guest: a new file,
 * O_DIRECT, 8 MiB pwrite()s (WRITE_RUN_MAX in snapshot/vm_snapshot.c) at
 * increasing offsets from memory backed by transparent huge pages, then
 * fsync(). The source matters: O_DIRECT from 4 KiB pages (dd's buffer)
 * reached about half the speed on the development host, where each page is
 * one more segment of the request. One buffer is written again and again,
 * where a save reads each page of guest RAM once: if anything, this is
 * faster than a save can be.
 *
 *   diskwrite FILE MiB
 *
 * Prints nothing; exits 0 when all was written and synced (time it with
 * bench/runstat), 1 with a message otherwise. FILE must not exist.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define CHUNK (8u << 20)
#define HUGE_PAGE (2u << 20)
#define FILL_BYTE 0x5a

static int fail(const char *what, const char *file)
{
	fprintf(stderr, "diskwrite: %s %s: %s\n", what, file, strerror(errno));
	return 1;
}

int main(int argc, char **argv)
{
	unsigned long mib;
	uint8_t *map, *buf;
	char *end;
	int fd;

	if (argc != 3 || (mib = strtoul(argv[2], &end, 10)) == 0 || *end || mib > (1ul << 30)) {
		fprintf(stderr, "usage: diskwrite FILE MiB\n");
		return 1;
	}
	/* One huge page more, to start on a huge page boundary. */
	map = mmap(NULL, CHUNK + HUGE_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
	           0);
	if (map == MAP_FAILED)
		return fail("mmap for", argv[1]);
	buf = (uint8_t *)(((uintptr_t)map + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
	madvise(buf, CHUNK, MADV_HUGEPAGE);
	memset(buf, FILL_BYTE, CHUNK);
	fd = open(argv[1], O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_DIRECT | O_CLOEXEC, 0600);
	if (fd < 0)
		return fail("cannot create", argv[1]);
	for (uint64_t off = 0, size = (uint64_t)mib << 20; off < size; off += CHUNK) {
		size_t len = size - off < CHUNK ? (size_t)(size - off) : CHUNK;
		ssize_t n = pwrite(fd, buf, len, (off_t)off);

		if (n != (ssize_t)len) {
			if (n >= 0)
				errno = EIO; /* short: the disk is full */
			return fail("cannot write", argv[1]);
		}
	}
	if (fsync(fd) < 0)
		return fail("cannot sync", argv[1]);
	close(fd);
	return 0;
}
