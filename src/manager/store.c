/* SPDX-License-Identifier: MIT */
/*
 * The VM store (see store.h): paths, atomic writes, the per-VM locks, and the
 * runtime and exit records a monitor leaves. What a definition holds and how
 * it is judged is manager/vm_def.c's.
 */
#include "manager/store.h"
#include "manager/jail.h"

#include "core/fsutil.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define STORE_DEF_FILE "vm.json"
#define STORE_LOCK_FILE "lock"
#define STORE_RUNTIME_FILE "runtime.json"
#define STORE_EXIT_FILE "last-exit.json"
#define STORE_LOCK_POLL_MS 20
#define STORE_TAIL_BYTES 65536
/* The longest name of a file in a VM's directory (store.h). */
#define STORE_LONGEST_FILE "last-exit.json"

int mgr_err_set(struct mgr_err *err, int code, const char *fmt, ...)
{
	va_list ap;

	if (err) {
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		va_end(ap);
	}
	return code;
}

/* mkdir -p, the last component with @mode. */
static int store_mkdirs(const char *path, mode_t mode)
{
	char buf[STORE_PATH_MAX];
	size_t len = strlen(path);

	if (len >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, len + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static int store_default_home(char *buf, size_t len)
{
	const char *xdg = getenv("XDG_DATA_HOME"), *home = getenv("HOME");
	int n;

	if (geteuid() == 0)
		n = snprintf(buf, len, "/var/lib/nestvm");
	else if (xdg && xdg[0] == '/')
		n = snprintf(buf, len, "%s/nestvm", xdg);
	else if (home && home[0] == '/')
		n = snprintf(buf, len, "%s/.local/share/nestvm", home);
	else
		return -ENOENT;
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

const char *mgr_escape(const char *s, char *buf, size_t len)
{
	size_t o = 0;

	if (!len)
		return buf;
	for (; s && *s && o + 1 < len; s++) {
		unsigned char c = (unsigned char)*s;

		if (c >= 0x20 && c < 0x7f && c != '\\') {
			buf[o++] = (char)c;
			continue;
		}
		if (o + 5 > len)
			break;
		o += snprintf(buf + o, len - o, c == '\\' ? "\\\\" : "\\x%02x", c);
	}
	buf[o] = '\0';
	return buf;
}

int store_check_owner(const struct stat *sb, const char *path, bool dir, struct mgr_err *err)
{
	uid_t me = geteuid();

	/* Root's store: a jailed monitor's files are its VM's user's (manager/jail.h). */
	if (sb->st_uid != me && sb->st_uid != 0 && !(me == 0 && jail_uid_trusted(sb->st_uid)))
		return mgr_err_set(err, -EPERM,
		                   "'%s' is owned by uid %u, not by you (uid %u) or root: nestvm "
		                   "does not trust a VM store another user controls; fix: chown "
		                   "%u '%s' (or use another NESTVM_HOME)",
		                   path, (unsigned int)sb->st_uid, (unsigned int)me,
		                   (unsigned int)me, path);
	if (sb->st_mode & (S_IWGRP | S_IWOTH))
		return mgr_err_set(err, -EPERM,
		                   "'%s' is writable by other users (mode %04o): nestvm does not "
		                   "trust a VM store others can change; fix: chmod go-w '%s'",
		                   path, (unsigned int)(sb->st_mode & 07777), path);
	if (!dir && !S_ISREG(sb->st_mode))
		return mgr_err_set(err, -EPERM,
		                   "'%s' is not a regular file; nestvm uses only "
		                   "regular files in its store: remove it",
		                   path);
	if (!dir && sb->st_nlink > 1)
		return mgr_err_set(err, -EPERM,
		                   "'%s' has %u hard links; a file in the VM store has one: "
		                   "remove it",
		                   path, (unsigned int)sb->st_nlink);
	return 0;
}

/*
 * The directories above the store: another user who can write one of them
 * (without the sticky bit, as /tmp has) could put a store of their own in
 * its place.
 */
static int store_check_ancestors(const char *home, struct mgr_err *err)
{
	char buf[STORE_PATH_MAX];
	struct stat sb;
	char *slash;

	snprintf(buf, sizeof(buf), "%s", home);
	while ((slash = strrchr(buf, '/'))) {
		slash[slash == buf ? 1 : 0] = '\0';
		if (lstat(buf, &sb) < 0)
			return mgr_err_set(err, -errno, "'%s': %s", buf, strerror(errno));
		if (sb.st_uid != 0 && sb.st_uid != geteuid())
			return mgr_err_set(
			    err, -EPERM,
			    "'%s', above the VM store '%s', is owned by uid %u, who "
			    "could replace the store; use a NESTVM_HOME in a directory "
			    "of yours or root's",
			    buf, home, (unsigned int)sb.st_uid);
		if ((sb.st_mode & (S_IWGRP | S_IWOTH)) && !(sb.st_mode & S_ISVTX))
			return mgr_err_set(
			    err, -EPERM,
			    "'%s', above the VM store '%s', is writable by other users "
			    "(mode %04o), who could replace the store; fix: chmod go-w "
			    "'%s' (or chmod +t), or use another NESTVM_HOME",
			    buf, home, (unsigned int)(sb.st_mode & 07777), buf);
		if (!strcmp(buf, "/"))
			break;
	}
	return 0;
}

static int store_open_home(struct store *st, const char *home, bool create, struct mgr_err *err)
{
	char want[STORE_PATH_MAX];
	struct stat sb;
	int fd, r;

	if (!home || !*home)
		home = getenv("NESTVM_HOME");
	if (home && *home) {
		if (strlen(home) >= sizeof(want))
			return mgr_err_set(err, -ENAMETOOLONG, "NESTVM_HOME is too long");
		strcpy(want, home);
	} else if (store_default_home(want, sizeof(want)) < 0) {
		return mgr_err_set(err, -ENOENT,
		                   "cannot tell where VMs live: set NESTVM_HOME (or HOME)");
	}
	if (create) {
		r = store_mkdirs(want, 0700);
		if (r < 0)
			return mgr_err_set(err, r, "cannot create the VM store '%s': %s", want,
			                   strerror(-r));
	}
	/* Absolute from here on: the monitor and socket paths depend on it. */
	if (!realpath(want, st->home)) {
		if (errno == ENOENT && !create)
			return mgr_err_set(err, -ENOENT, "there is no VM store at '%s' yet", want);
		return mgr_err_set(err, -errno, "VM store '%s': %s", want, strerror(errno));
	}
	fd = open(st->home, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return mgr_err_set(err, -errno, "VM store '%s': %s", st->home, strerror(errno));
	r = fstat(fd, &sb) < 0
	        ? mgr_err_set(err, -errno, "VM store '%s': %s", st->home, strerror(errno))
	        : store_check_owner(&sb, st->home, true, err);
	close(fd);
	if (r == 0)
		r = store_check_ancestors(st->home, err);
	/* Root talks to its jailed monitors' sockets (vsock.sock): their users' (jail.h). */
	if (r == 0 && geteuid() == 0) {
		uid_t first;
		unsigned int count;

		if (jail_uid_range(&first, &count) == 0)
			fs_trust_uids(first, count);
	}
	return r;
}

int store_open(struct store *st, const char *home, struct mgr_err *err)
{
	return store_open_home(st, home, true, err);
}

int store_open_existing(struct store *st, const char *home, struct mgr_err *err)
{
	return store_open_home(st, home, false, err);
}

int store_check_name(const char *name, struct mgr_err *err)
{
	size_t len = name ? strlen(name) : 0;

	if (len == 0 || len > STORE_NAME_MAX || !isalnum((unsigned char)name[0]))
		goto bad;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = name[i];

		if (!(isalnum(c) || c == '.' || c == '_' || c == '-') || c >= 0x80)
			goto bad;
	}
	return 0;
bad:;
	char shown[96];

	/* Control characters would reach the user's terminal: escape them. */
	return mgr_err_set(err, -EINVAL,
	                   "invalid VM name '%s': use 1 to %d letters, digits, '.', '_' or "
	                   "'-', starting with a letter or digit",
	                   mgr_escape(name, shown, sizeof(shown)), STORE_NAME_MAX);
}

int store_path(const struct store *st, const char *name, const char *file, char *buf, size_t len)
{
	int n = file ? snprintf(buf, len, "%s/%s/%s", st->home, name, file)
	             : snprintf(buf, len, "%s/%s", st->home, name);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int store_vsock_default(const struct store *st, const char *name, char *buf, size_t len,
                        struct mgr_err *err)
{
	char dir[STORE_PATH_MAX];
	int r;

	if (store_path(st, name, NULL, dir, sizeof(dir)) < 0 ||
	    store_path(st, name, STORE_VSOCK_SOCKET, buf, len) < 0)
		return mgr_err_set(err, -ENAMETOOLONG, "VM store path too long");
	/* Guests reach PATH_PORT sockets next to it: nobody else may place one there. */
	r = fs_private_dir(dir);
	if (r < 0)
		return mgr_err_set(
		    err, r,
		    "cannot put the vsock socket in '%s': %s; give --vsock "
		    "CID,socket=PATH (nestvm set %s --vsock ...)",
		    dir, r == -EPERM ? "another user could write to it" : fs_strerror(r), name);
	return 0;
}

/* ---- files ---- */

int store_vm_dir(const struct store *st, const char *name, struct mgr_err *err)
{
	char dir[STORE_PATH_MAX];
	struct stat sb;
	int fd, r;

	if (store_check_name(name, err) < 0)
		return -EINVAL;
	if (store_path(st, name, NULL, dir, sizeof(dir)) < 0)
		return mgr_err_set(err, -ENAMETOOLONG, "VM store path too long");
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT)
		return mgr_err_set(err, -ENOENT, "no VM named '%s' (see 'nestvm list')", name);
	if (fd < 0 && (errno == ELOOP || errno == ENOTDIR))
		return mgr_err_set(err, -ENOTDIR,
		                   "'%s' is not a directory (a symbolic link?): nestvm follows "
		                   "no links in its store; remove it",
		                   dir);
	if (fd < 0)
		return mgr_err_set(err, -errno, "'%s': %s", dir, strerror(errno));
	r = fstat(fd, &sb) < 0 ? mgr_err_set(err, -errno, "'%s': %s", dir, strerror(errno))
	                       : store_check_owner(&sb, dir, true, err);
	if (r < 0) {
		close(fd);
		return r;
	}
	return fd;
}

int store_openat(int dirfd, const char *dir, const char *file, int flags, struct mgr_err *err)
{
	char path[STORE_PATH_MAX + 64];
	struct stat sb;
	int fd, fl, r;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	/* O_NONBLOCK: a FIFO put in the file's place must not hang the open. */
	fd = openat(dirfd, file,
	            (flags & ~O_TRUNC) | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, 0600);
	if (fd < 0 && errno == ELOOP)
		return mgr_err_set(err, -ELOOP,
		                   "'%s' is a symbolic link: nestvm follows no links in its store; "
		                   "remove it",
		                   path);
	if (fd < 0 && errno == ENXIO)
		return mgr_err_set(err, -EPERM,
		                   "'%s' is not a regular file; nestvm uses only regular files in "
		                   "its store: remove it",
		                   path);
	if (fd < 0)
		return mgr_err_set(err, -errno, "cannot open '%s': %s", path, strerror(errno));
	r = fstat(fd, &sb) < 0 ? mgr_err_set(err, -errno, "'%s': %s", path, strerror(errno))
	                       : store_check_owner(&sb, path, false, err);
	/* Truncated only once it is known to be ours. */
	if (r == 0 && (flags & O_TRUNC) && ftruncate(fd, 0) < 0)
		r = mgr_err_set(err, -errno, "cannot truncate '%s': %s", path, strerror(errno));
	if (r == 0 && !(flags & O_NONBLOCK) &&
	    ((fl = fcntl(fd, F_GETFL)) < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0))
		r = mgr_err_set(err, -errno, "'%s': %s", path, strerror(errno));
	if (r < 0) {
		close(fd);
		return r;
	}
	return fd;
}

int store_vm_open(const struct store *st, const char *name, const char *file, int flags,
                  struct mgr_err *err)
{
	char dir[STORE_PATH_MAX];
	int dfd, fd;

	dfd = store_vm_dir(st, name, err);
	if (dfd < 0)
		return dfd;
	if (store_path(st, name, NULL, dir, sizeof(dir)) < 0)
		dir[0] = '\0'; /* store_vm_dir() built it already */
	fd = store_openat(dfd, dir, file, flags, err);
	close(dfd);
	return fd;
}

/*
 * Write @data to a new temporary file in @dirfd, then rename it over @file;
 * @durable: fsync the file and the directory, so it survives a crash of the
 * machine (not needed for runtime.json, which describes a live monitor and
 * changes on every pause and resume).
 */
static int store_write_file_at(int dirfd, const char *file, const char *data, size_t len,
                               bool durable)
{
	char tmp[NAME_MAX + 1];
	unsigned int rnd = 0;
	size_t done = 0;
	int fd, r = 0;

	/* Unique per writer, without a counter shared between threads. */
	if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd))
		rnd = (unsigned int)(uintptr_t)&rnd ^ (unsigned int)time(NULL);
	if (snprintf(tmp, sizeof(tmp), "%s.tmp-%d-%08x", file, (int)getpid(), rnd) >=
	    (int)sizeof(tmp))
		return -ENAMETOOLONG;
	/* O_EXCL and O_NOFOLLOW: never a file or link someone left there. */
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	while (done < len) {
		ssize_t n = write(fd, data + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = n < 0 ? -errno : -EIO;
			break;
		}
		done += n;
	}
	if (r == 0 && durable && fsync(fd) < 0)
		r = -errno;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	/* rename() replaces a link at @file; it does not follow it. */
	if (r == 0 && renameat(dirfd, tmp, dirfd, file) < 0)
		r = -errno;
	if (r < 0) {
		unlinkat(dirfd, tmp, 0);
		return r;
	}
	/* The rename itself must survive a crash: fsync the directory. */
	return durable && fsync(dirfd) < 0 ? -errno : 0;
}

int store_write_atomic_at(int dirfd, const char *file, const char *data, size_t len)
{
	return store_write_file_at(dirfd, file, data, len, true);
}

int store_write_atomic(const char *path, const char *data, size_t len)
{
	char dir[STORE_PATH_MAX];
	const char *slash = strrchr(path, '/');
	int dfd, r;

	if (!slash || (size_t)(slash - path) >= sizeof(dir))
		return -EINVAL;
	memcpy(dir, path, slash - path);
	dir[slash == path ? 1 : slash - path] = '\0';
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	r = store_write_atomic_at(dfd, slash + 1, data, len);
	close(dfd);
	return r;
}

/* Read all of @fd (a regular file of at most @max bytes), NUL-terminated. */
static int store_read_fd(int fd, size_t max, char **data, size_t *len)
{
	struct stat sb;
	char *buf = NULL;
	size_t done = 0;
	int r = 0;

	if (fstat(fd, &sb) < 0)
		return -errno;
	if (!S_ISREG(sb.st_mode))
		return -EINVAL;
	if ((uint64_t)sb.st_size > max)
		return -EFBIG;
	buf = malloc(max + 1);
	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t n = read(fd, buf + done, max - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			goto out;
		}
		if (n == 0)
			break;
		done += n;
		if (done == max) {
			char c;

			/* Grew past @max since the fstat(). */
			if (read(fd, &c, 1) == 1) {
				r = -EFBIG;
				goto out;
			}
			break;
		}
	}
	buf[done] = '\0';
	*data = buf;
	*len = done;
	buf = NULL;
out:
	free(buf);
	return r;
}

int store_read_file(const char *path, size_t max, char **data, size_t *len)
{
	int fd, r;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	r = store_read_fd(fd, max, data, len);
	close(fd);
	return r;
}

void store_log_tail(const char *path, unsigned int lines, char *buf, size_t len)
{
	char chunk[STORE_TAIL_BYTES + 1];
	struct stat sb;
	const char *start;
	ssize_t n;
	off_t off;
	int fd;

	if (len == 0)
		return;
	buf[0] = '\0';
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return;
	if (fstat(fd, &sb) < 0) {
		close(fd);
		return;
	}
	off = sb.st_size > STORE_TAIL_BYTES ? sb.st_size - STORE_TAIL_BYTES : 0;
	n = pread(fd, chunk, STORE_TAIL_BYTES, off);
	close(fd);
	if (n <= 0)
		return;
	chunk[n] = '\0';
	while (n > 0 && chunk[n - 1] == '\n')
		chunk[--n] = '\0';
	start = chunk + n;
	for (unsigned int seen = 0; start > chunk; start--) {
		if (start[-1] == '\n' && ++seen == lines)
			break;
	}
	/* Keep the end if it does not fit. */
	if (strlen(start) >= len)
		start += strlen(start) - (len - 1);
	snprintf(buf, len, "%s", start);
}

/* ---- VMs ---- */

int store_create(const struct store *st, const struct vm_def *def, struct mgr_err *err)
{
	char dir[STORE_PATH_MAX], file[STORE_PATH_MAX];
	char *text;
	int r, dfd;

	r = store_check_name(def->name, err);
	if (r < 0)
		return r;
	r = vm_def_validate(def, err);
	if (r < 0)
		return r;
	if (store_path(st, def->name, NULL, dir, sizeof(dir)) < 0)
		return mgr_err_set(err, -ENAMETOOLONG, "VM store path too long");
	/* Every file the VM will have must be reachable, not only vm.json. */
	if (store_path(st, def->name, STORE_LONGEST_FILE, file, sizeof(file)) < 0)
		return mgr_err_set(err, -ENAMETOOLONG,
		                   "VM '%s': its files would not fit in a path of %d bytes (%s): "
		                   "use a shorter NESTVM_HOME or VM name; the store is '%s'",
		                   def->name, STORE_PATH_MAX - 1, strerror(ENAMETOOLONG), st->home);
	if (store_path(st, def->name, STORE_DEF_FILE, file, sizeof(file)) < 0)
		return -ENAMETOOLONG; /* shorter than STORE_LONGEST_FILE: cannot happen */
	/* mkdir is the atomic step: of two racing `new`s, one gets EEXIST. */
	if (mkdir(dir, 0700) < 0) {
		if (errno == EEXIST)
			return mgr_err_set(err, -EEXIST, "a VM named '%s' already exists",
			                   def->name);
		return mgr_err_set(err, -errno, "cannot create '%s': %s", dir, strerror(errno));
	}
	dfd = store_vm_dir(st, def->name, err);
	if (dfd < 0) {
		rmdir(dir);
		return dfd;
	}
	text = vm_def_format(def);
	r = text ? store_write_atomic_at(dfd, STORE_DEF_FILE, text, strlen(text)) : -ENOMEM;
	free(text);
	close(dfd);
	if (r < 0) {
		rmdir(dir);
		return mgr_err_set(err, r, "cannot write '%s': %s", file, strerror(-r));
	}
	return 0;
}

int store_load(const struct store *st, const char *name, struct vm_def *def, struct mgr_err *err)
{
	char file[STORE_PATH_MAX];
	char *text;
	size_t len;
	int r, fd;

	memset(def, 0, sizeof(*def));
	r = store_check_name(name, err);
	if (r < 0)
		return r;
	if (store_path(st, name, STORE_DEF_FILE, file, sizeof(file)) < 0)
		return mgr_err_set(err, -ENAMETOOLONG, "VM store path too long");
	fd = store_vm_dir(st, name, err);
	if (fd < 0)
		return fd;
	r = fd;
	fd = openat(r, STORE_DEF_FILE, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	close(r);
	if (fd < 0 && errno == ENOENT)
		return mgr_err_set(err, -EINVAL,
		                   "%s: missing: VM '%s' has no definition (restore it or "
		                   "'nestvm remove %s')",
		                   file, name, name);
	if (fd < 0)
		return mgr_err_set(err, errno == ELOOP ? -EINVAL : -errno, "%s: cannot read: %s",
		                   file,
		                   errno == ELOOP ? "a symbolic link (nestvm follows no links in "
		                                    "its store)"
		                                  : strerror(errno));
	{
		struct stat sb;

		r = fstat(fd, &sb) < 0 ? -errno : store_check_owner(&sb, file, false, err);
		/* A definition names the host files root opens for the VM: root's or yours only. */
		if (r == 0 && sb.st_uid != 0 && sb.st_uid != geteuid())
			r = mgr_err_set(err, -EPERM,
			                "%s is owned by uid %u (the VM's jail user?), not by you or "
			                "root: nestvm does not take a definition from it; restore "
			                "one of yours (chown 0 after checking it)",
			                file, (unsigned int)sb.st_uid);
		if (r < 0) {
			close(fd);
			return r == -EPERM ? r : mgr_err_set(err, r, "%s: %s", file, strerror(-r));
		}
	}
	r = store_read_fd(fd, STORE_MAX_FILE, &text, &len);
	close(fd);
	if (r < 0)
		return mgr_err_set(err, r == -EFBIG ? -EINVAL : r, "%s: cannot read: %s", file,
		                   r == -EFBIG ? "larger than 1 MiB" : strerror(-r));
	r = vm_def_parse(text, len, file, def, err);
	free(text);
	if (r == 0 && strcmp(def->name, name)) {
		mgr_err_set(err, -EINVAL,
		            "%s: field 'name': \"%s\" does not match the VM's directory '%s'", file,
		            def->name, name);
		vm_def_clear(def);
		r = -EINVAL;
	}
	return r;
}

int store_save(const struct store *st, const struct vm_def *def, struct mgr_err *err)
{
	char file[STORE_PATH_MAX];
	char *text;
	int r, dfd;

	r = vm_def_validate(def, err);
	if (r < 0)
		return r;
	if (store_path(st, def->name, STORE_DEF_FILE, file, sizeof(file)) < 0)
		return mgr_err_set(err, -ENAMETOOLONG, "VM store path too long");
	dfd = store_vm_dir(st, def->name, err);
	if (dfd < 0)
		return dfd;
	text = vm_def_format(def);
	r = text ? store_write_atomic_at(dfd, STORE_DEF_FILE, text, strlen(text)) : -ENOMEM;
	free(text);
	close(dfd);
	if (r < 0)
		return mgr_err_set(err, r, "cannot write '%s': %s", file, strerror(-r));
	return 0;
}

static int store_name_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

int store_list(const struct store *st, char (**names)[STORE_NAME_MAX + 1], struct mgr_err *err)
{
	char(*v)[STORE_NAME_MAX + 1] = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	DIR *d;

	d = opendir(st->home);
	if (!d)
		return mgr_err_set(err, -errno, "cannot read the VM store '%s': %s", st->home,
		                   strerror(errno));
	while ((de = readdir(d))) {
		struct stat sb;

		if (store_check_name(de->d_name, NULL) < 0)
			continue; /* ".", "..", a VM being removed, stray files */
		if (fstatat(dirfd(d), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISDIR(sb.st_mode))
			continue;
		if (n == cap) {
			char(*nv)[STORE_NAME_MAX + 1];

			cap = cap ? cap * 2 : 16;
			nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				free(v);
				closedir(d);
				return mgr_err_set(err, -ENOMEM, "out of memory");
			}
			v = nv;
		}
		/* store_check_name() bounded the length. */
		memcpy(v[n++], de->d_name, strlen(de->d_name) + 1);
	}
	closedir(d);
	if (n)
		qsort(v, n, sizeof(v[0]), store_name_cmp);
	*names = v;
	return (int)n;
}

static int store_remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)ftw;
	if (flag == FTW_DP)
		return rmdir(path) < 0 ? -1 : 0;
	return unlink(path) < 0 && errno != ENOENT ? -1 : 0;
}

int store_remove(const struct store *st, const char *name, struct mgr_err *err)
{
	char dir[STORE_PATH_MAX], trash[STORE_PATH_MAX];
	int n;

	if (store_check_name(name, err) < 0)
		return -EINVAL;
	if (store_path(st, name, NULL, dir, sizeof(dir)) < 0)
		return mgr_err_set(err, -ENAMETOOLONG, "VM store path too long");
	n = snprintf(trash, sizeof(trash), "%s/.removing-%s-%d", st->home, name, (int)getpid());
	if (n < 0 || (size_t)n >= sizeof(trash))
		return mgr_err_set(err, -ENAMETOOLONG, "VM store path too long");
	if (rename(dir, trash) < 0) {
		if (errno == ENOENT)
			return mgr_err_set(err, -ENOENT, "no VM named '%s'", name);
		return mgr_err_set(err, -errno, "cannot remove '%s': %s", dir, strerror(errno));
	}
	jail_uid_release(st, name);
	if (nftw(trash, store_remove_entry, 16, FTW_DEPTH | FTW_PHYS) < 0)
		return mgr_err_set(err, -errno,
		                   "VM '%s' is gone, but '%s' could not be deleted: %s", name,
		                   trash, strerror(errno));
	return 0;
}

/* ---- locks ---- */

static int store_lock_op(int fd, int cmd, enum store_lock_kind kind, short type, struct flock *out)
{
	struct flock fl = {
	    .l_type = type,
	    .l_whence = SEEK_SET,
	    .l_start = kind,
	    .l_len = 1,
	    .l_pid = 0, /* required for OFD locks */
	};
	int r = fcntl(fd, cmd, &fl);

	if (out)
		*out = fl;
	if (r < 0)
		return errno == EAGAIN || errno == EACCES ? -EBUSY : -errno;
	return 0;
}

int store_lock_take(int fd, enum store_lock_kind kind)
{
	return store_lock_op(fd, F_OFD_SETLK, kind, F_WRLCK, NULL);
}

int store_lock_acquire(const struct store *st, const char *name, enum store_lock_kind kind,
                       int timeout_ms, struct mgr_err *err)
{
	char path[STORE_PATH_MAX];
	struct stat a, b;
	int fd, r, waited = 0;

	if (store_check_name(name, err) < 0)
		return -EINVAL;
	if (store_path(st, name, STORE_LOCK_FILE, path, sizeof(path)) < 0)
		return mgr_err_set(err, -ENAMETOOLONG, "VM store path too long");
	fd = store_vm_open(st, name, STORE_LOCK_FILE, O_RDWR | O_CREAT, err);
	if (fd < 0)
		return fd;
	for (;;) {
		r = store_lock_take(fd, kind);
		if (r != -EBUSY || waited >= timeout_ms)
			break;
		usleep(STORE_LOCK_POLL_MS * 1000);
		waited += STORE_LOCK_POLL_MS;
	}
	if (r < 0) {
		close(fd);
		return mgr_err_set(err, r, "VM '%s' is busy: %s", name,
		                   r == -EBUSY ? "another nestvm command holds it" : strerror(-r));
	}
	/* A `remove` may have taken the directory away while we waited. */
	if (fstat(fd, &a) < 0 || stat(path, &b) < 0 || a.st_ino != b.st_ino ||
	    a.st_dev != b.st_dev) {
		close(fd);
		return mgr_err_set(err, -ENOENT, "no VM named '%s' (it was just removed)", name);
	}
	return fd;
}

int store_lock_held(const struct store *st, const char *name, enum store_lock_kind kind)
{
	char path[STORE_PATH_MAX];
	struct flock fl;
	int fd, r;

	if (store_path(st, name, STORE_LOCK_FILE, path, sizeof(path)) < 0)
		return -ENAMETOOLONG;
	fd = open(path, O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	r = store_lock_op(fd, F_OFD_GETLK, kind, F_WRLCK, &fl);
	close(fd);
	if (r < 0)
		return r;
	return fl.l_type != F_UNLCK;
}

void store_lock_release(int fd)
{
	/* Closing the only descriptor of the description drops its OFD locks. */
	if (fd >= 0)
		close(fd);
}

/* ---- runtime and exit records ---- */

static int store_record_write(const struct store *st, const char *name, const char *file,
                              json_t *obj, bool durable)
{
	char *text;
	int r, dfd;

	if (!obj)
		return -ENOMEM;
	text = json_dumps(obj, JSON_COMPACT);
	json_decref(obj);
	if (!text)
		return -ENOMEM;
	dfd = store_vm_dir(st, name, NULL);
	r = dfd < 0 ? dfd : store_write_file_at(dfd, file, text, strlen(text), durable);
	if (dfd >= 0)
		close(dfd);
	free(text);
	return r;
}

static json_t *store_record_read(const struct store *st, const char *name, const char *file, int *r)
{
	json_t *obj;
	char *text = NULL;
	size_t len;
	int fd;

	fd = store_vm_open(st, name, file, O_RDONLY, NULL);
	if (fd < 0) {
		*r = fd;
		return NULL;
	}
	*r = store_read_fd(fd, STORE_MAX_FILE, &text, &len);
	close(fd);
	if (*r < 0)
		return NULL;
	obj = json_loadb(text, len, 0, NULL);
	free(text);
	if (!json_is_object(obj)) {
		json_decref(obj);
		*r = -EINVAL;
		return NULL;
	}
	return obj;
}

int store_runtime_write(const struct store *st, const char *name, const struct store_runtime *rt)
{
	return store_record_write(st, name, STORE_RUNTIME_FILE,
	                          json_pack("{s:i, s:I, s:s}", "pid", (int)rt->pid, "started",
	                                    (json_int_t)rt->started, "state", rt->state),
	                          false);
}

int store_runtime_read(const struct store *st, const char *name, struct store_runtime *rt)
{
	json_t *obj = NULL;
	json_int_t started = 0;
	const char *state = "";
	int pid = 0, r;

	memset(rt, 0, sizeof(*rt));
	obj = store_record_read(st, name, STORE_RUNTIME_FILE, &r);
	if (!obj)
		return r;
	/* Hand-edited or torn: keep what parses. */
	if (json_unpack(obj, "{s?i, s?I, s?s}", "pid", &pid, "started", &started, "state", &state) <
	    0)
		r = -EINVAL;
	rt->pid = pid;
	rt->started = started;
	snprintf(rt->state, sizeof(rt->state), "%s", state);
	json_decref(obj);
	return r;
}

void store_runtime_clear(const struct store *st, const char *name)
{
	char path[STORE_PATH_MAX];

	if (store_path(st, name, STORE_RUNTIME_FILE, path, sizeof(path)) == 0)
		unlink(path);
}

void store_exit_clear(const struct store *st, const char *name)
{
	char path[STORE_PATH_MAX];

	if (store_path(st, name, STORE_EXIT_FILE, path, sizeof(path)) == 0)
		unlink(path);
}

int store_exit_write(const struct store *st, const char *name, const struct store_exit *ex)
{
	return store_record_write(st, name, STORE_EXIT_FILE,
	                          json_pack("{s:i, s:I, s:b, s:b, s:s}", "status", ex->status, "at",
	                                    (json_int_t)ex->at, "crashed", ex->crashed,
	                                    "start_failed", ex->start_failed, "reason",
	                                    ex->reason),
	                          true);
}

int store_exit_read(const struct store *st, const char *name, struct store_exit *ex)
{
	json_t *obj;
	json_int_t at = 0;
	const char *reason = "";
	int status = 0, crashed = 0, start_failed = 0, r;

	memset(ex, 0, sizeof(*ex));
	obj = store_record_read(st, name, STORE_EXIT_FILE, &r);
	if (!obj)
		return r;
	if (json_unpack(obj, "{s?i, s?I, s?b, s?b, s?s}", "status", &status, "at", &at, "crashed",
	                &crashed, "start_failed", &start_failed, "reason", &reason) < 0)
		r = -EINVAL;
	ex->status = status;
	ex->at = at;
	ex->crashed = crashed;
	ex->start_failed = start_failed;
	snprintf(ex->reason, sizeof(ex->reason), "%s", reason);
	json_decref(obj);
	return r;
}
