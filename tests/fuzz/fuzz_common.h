/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the libFuzzer targets: FZ_CHECK() and a per-process
 * temporary directory (fz_tmpdir), removed at exit and before FZ_CHECK()
 * aborts, so that a target writes nothing that outlives it.
 */
#ifndef NESTVM_TESTS_FUZZ_COMMON_H
#define NESTVM_TESTS_FUZZ_COMMON_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char fz_dir[256];

/* Remove @path and, if it is a directory, what it holds. */
static void fz_rm_tree(const char *path, int depth)
{
	DIR *d = depth < 8 ? opendir(path) : NULL;
	struct dirent *e;
	char p[1024];

	while (d && (e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
		if (e->d_type == DT_DIR)
			fz_rm_tree(p, depth + 1);
		else
			unlink(p);
	}
	if (d)
		closedir(d);
	rmdir(path);
}

static void fz_rm_tmpdir(void)
{
	if (!fz_dir[0])
		return;
	fz_rm_tree(fz_dir, 0);
	fz_dir[0] = '\0';
}

/* FZ_CHECK - abort (removing the temporary directory first) unless @cond. */
#define FZ_CHECK(cond)                                                                             \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);   \
			fz_rm_tmpdir();                                                            \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

/*
 * fz_tmpdir - this process's own directory, removed at exit: under $TMPDIR,
 * else /dev/shm (no disk syncs for the disk images), else /tmp.
 */
static inline const char *fz_tmpdir(const char *what)
{
	const char *base = getenv("TMPDIR");

	if (fz_dir[0])
		return fz_dir;
	if (!base || !*base)
		base = access("/dev/shm", W_OK | X_OK) == 0 ? "/dev/shm" : "/tmp";
	snprintf(fz_dir, sizeof(fz_dir), "%s/nestvm-fuzz-%s.XXXXXX", base, what);
	FZ_CHECK(mkdtemp(fz_dir));
	atexit(fz_rm_tmpdir);
	return fz_dir;
}

#endif
