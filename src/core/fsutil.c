/* SPDX-License-Identifier: MIT */
/* Files and UNIX sockets a user names, opened safely (see fsutil.h). */
#include "core/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define FS_CREATE_TRIES 4 /* a file that comes and goes while we look */
#define FS_PREOPEN_MAX 16 /* /dev/kvm, kernel, initrd, disks, /proc/self/pagemap */

static int fs_clear_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

/* Filled by the main thread before other threads exist; read-only afterwards. */
static struct fs_preopened {
	char path[PATH_MAX];
	int fd; /* or -errno: the open failed, and later ones say so (the path may be gone) */
	int accmode;
} fs_preopened[FS_PREOPEN_MAX];
static unsigned int fs_nr_preopened;

/* Listeners made before the jail (fs_prelisten()): path and type, as for fs_preopened. */
static struct fs_prelistener {
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int type;
	int fd;
} fs_prelisteners[FS_PREOPEN_MAX];
static unsigned int fs_nr_prelisteners;

static struct {
	uid_t first;
	unsigned int count;
} fs_trusted[FS_TRUSTED_MAX];
static unsigned int fs_nr_trusted;

void fs_trust_uids(uid_t uid, unsigned int count)
{
	if (fs_nr_trusted < FS_TRUSTED_MAX && count)
		fs_trusted[fs_nr_trusted++] = (typeof(fs_trusted[0])){uid, count};
}

int fs_uid_trusted(uid_t uid)
{
	if (uid == geteuid())
		return 1;
	for (unsigned int i = 0; i < fs_nr_trusted; i++) {
		if (uid >= fs_trusted[i].first && uid - fs_trusted[i].first < fs_trusted[i].count)
			return 1;
	}
	return 0;
}

/* The kept descriptor of @path that @flags' access mode allows, or NULL. */
static const struct fs_preopened *fs_preopened_find(const char *path, int flags)
{
	int want = flags & O_ACCMODE;

	for (unsigned int i = 0; i < fs_nr_preopened; i++) {
		const struct fs_preopened *p = &fs_preopened[i];

		if (!strcmp(p->path, path) && (want == O_RDONLY || p->accmode == O_RDWR))
			return p;
	}
	return NULL;
}

/*
 * fs_preopened_find()'s descriptor, duplicated, or the error its open had;
 * *@kept false (and -ENOENT) if @path was not opened beforehand.
 */
static int fs_preopened_dup(const char *path, int flags, bool *kept)
{
	const struct fs_preopened *p = fs_preopened_find(path, flags);
	int fd;

	*kept = p != NULL;
	if (!p)
		return -ENOENT;
	if (p->fd < 0)
		return p->fd;
	fd = fcntl(p->fd, F_DUPFD_CLOEXEC, 3);
	return fd < 0 ? -errno : fd;
}

int fs_preopen(const char *path, int flags)
{
	struct fs_preopened *p = &fs_preopened[fs_nr_preopened];
	int fd, r;

	if (fs_preopened_find(path, flags & ~FS_PREOPEN_ANY) || !path[0])
		return 0; /* already kept (a disk given twice is refused later, as before) */
	if (fs_nr_preopened == FS_PREOPEN_MAX)
		return -ENFILE;
	if (strlen(path) >= sizeof(p->path))
		return -ENAMETOOLONG;
	if (flags & FS_PREOPEN_ANY) {
		flags &= ~FS_PREOPEN_ANY;
		fd = open(path, flags | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
		r = fd < 0 ? -errno : fs_clear_nonblock(fd);
		if (r < 0 && fd >= 0)
			close(fd);
		if (r < 0)
			fd = r;
	} else {
		fd = fs_open_input(path, flags, NULL);
	}
	/* A failure is kept too: the later open reports it, as it would have. */
	snprintf(p->path, sizeof(p->path), "%s", path);
	p->fd = fd;
	p->accmode = flags & O_ACCMODE;
	fs_nr_preopened++;
	return fd < 0 ? fd : 0;
}

int fs_prelisten(const char *path, int type, mode_t mode, int backlog)
{
	struct fs_prelistener *p = &fs_prelisteners[fs_nr_prelisteners];
	int fd;

	if (fs_nr_prelisteners == FS_PREOPEN_MAX)
		return -ENFILE;
	if (strlen(path) >= sizeof(p->path))
		return -ENAMETOOLONG;
	fd = unix_listen_type(path, type, mode, backlog);
	if (fd < 0)
		return fd;
	snprintf(p->path, sizeof(p->path), "%s", path);
	p->type = type;
	p->fd = fd;
	fs_nr_prelisteners++;
	return 0;
}

/* A duplicate of the listener fs_prelisten() made for @path, or -ENOENT. */
static int fs_prelistener_dup(const char *path, int type)
{
	for (unsigned int i = 0; i < fs_nr_prelisteners; i++) {
		const struct fs_prelistener *p = &fs_prelisteners[i];

		if (p->type == type && !strcmp(p->path, path)) {
			int fd = fcntl(p->fd, F_DUPFD_CLOEXEC, 3);

			return fd < 0 ? -errno : fd;
		}
	}
	return -ENOENT;
}

int fs_reopen(const char *path, int flags)
{
	bool kept;
	int fd = fs_preopened_dup(path, flags, &kept);

	if (kept)
		return fd;
	fd = open(path, flags | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

/* May nestvm write into this existing file? 0 or -errno (fsutil.h). */
static int fs_check_writable(const struct stat *st)
{
	if (S_ISLNK(st->st_mode))
		return -ELOOP;
	if (!S_ISREG(st->st_mode))
		return -EEXIST;
	/* A second link may be another user's file hard-linked here. */
	if (st->st_uid != geteuid() || st->st_nlink != 1)
		return -EPERM;
	return 0;
}

/* Open an existing @path that lstat() said is @want; -ENOENT if it went away. */
static int fs_open_existing(const char *path, const struct stat *want, unsigned int flags)
{
	struct stat st;
	int fd, r;

	r = fs_check_writable(want);
	if (r < 0)
		return r;
	/* O_NONBLOCK: a FIFO swapped in after the lstat() must not hang us. */
	fd = open(path, O_WRONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC |
	                    (flags & FS_APPEND ? O_APPEND : 0));
	if (fd < 0)
		return errno == ENXIO ? -EEXIST : -errno;
	/* Check the file we opened, not the name: it may have been replaced meanwhile. */
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto err;
	}
	r = fs_check_writable(&st);
	if (r < 0)
		goto err;
	if (st.st_dev != want->st_dev || st.st_ino != want->st_ino) {
		r = -EAGAIN;
		goto err;
	}
	if ((flags & FS_TRUNC) && ftruncate(fd, 0) < 0) {
		r = -errno;
		goto err;
	}
	return fd;
err:
	close(fd);
	return r;
}

int fs_create_file(const char *path, mode_t mode, unsigned int flags)
{
	int oflags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC |
	             (flags & FS_APPEND ? O_APPEND : 0);
	struct stat st;
	int fd, r = -EAGAIN;

	for (int i = 0; i < FS_CREATE_TRIES && r == -EAGAIN; i++) {
		/* O_EXCL never follows a symlink: a new file is ours alone. */
		fd = open(path, oflags, mode);
		if (fd >= 0) {
			r = fs_clear_nonblock(fd);
			if (r < 0) {
				close(fd);
				return r;
			}
			return fd;
		}
		if (errno != EEXIST)
			return -errno;
		if (lstat(path, &st) < 0) {
			r = errno == ENOENT ? -EAGAIN : -errno;
			continue;
		}
		r = fs_open_existing(path, &st, flags);
		if (r == -ENOENT)
			r = -EAGAIN;
	}
	if (r < 0)
		return r;
	fd = r;
	r = fs_clear_nonblock(fd);
	if (r < 0) {
		close(fd);
		return r;
	}
	return fd;
}

int fs_open_input(const char *path, int flags, struct stat *st)
{
	struct stat sb;
	bool kept;
	int fd, r;

	if (!st)
		st = &sb;
	/* Kept from before a privilege drop: checked when it was opened (or failed then). */
	fd = fs_preopened_dup(path, flags, &kept);
	if (kept && fd < 0)
		return fd;
	if (kept) {
		if (fstat(fd, st) < 0) {
			r = -errno;
			close(fd);
			return r;
		}
		return fd;
	}
	/* O_NONBLOCK: opening a FIFO without a writer must not wait for one. */
	fd = open(path, flags | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, st) < 0) {
		r = -errno;
		goto err;
	}
	if (!S_ISREG(st->st_mode) && !S_ISBLK(st->st_mode)) {
		r = -EINVAL;
		goto err;
	}
	r = fs_clear_nonblock(fd);
	if (r < 0)
		goto err;
	return fd;
err:
	close(fd);
	return r;
}

int fs_private_dir(const char *path)
{
	char parent[PATH_MAX];
	const char *slash;
	struct stat st;
	size_t len;

	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return -errno;
	if (lstat(path, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return S_ISLNK(st.st_mode) ? -ELOOP : -ENOTDIR;
	if (!fs_uid_trusted(st.st_uid) || (st.st_mode & (S_IWGRP | S_IWOTH)))
		return -EPERM;
	/* Whoever may rename entries in the parent can swap this directory. */
	slash = strrchr(path, '/');
	if (!slash)
		return 0;
	len = slash == path ? 1 : (size_t)(slash - path);
	if (len >= sizeof(parent))
		return -ENAMETOOLONG;
	memcpy(parent, path, len);
	parent[len] = '\0';
	if (stat(parent, &st) < 0)
		return -errno;
	if ((st.st_uid != geteuid() && st.st_uid != 0) ||
	    ((st.st_mode & (S_IWGRP | S_IWOTH)) && !(st.st_mode & S_ISVTX)))
		return -EPERM;
	return 0;
}

static int unix_addr(const char *path, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (!path || !*path)
		return -EINVAL;
	if (strlen(path) >= sizeof(sa->sun_path))
		return -ENAMETOOLONG;
	strcpy(sa->sun_path, path);
	return 0;
}

/*
 * Make room at @path for a new socket: nothing there, or a stale socket of
 * ours that is removed. Anything else stays as it is.
 */
static int unix_clear_stale(const struct sockaddr_un *sa, int type)
{
	struct stat st;
	int fd, r;

	if (lstat(sa->sun_path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return S_ISLNK(st.st_mode) ? -ELOOP : -EEXIST;
	if (st.st_uid != geteuid())
		return -EPERM;
	fd = socket(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	r = connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0 ? -errno : 0;
	close(fd);
	switch (r) {
	case 0:
	case -EAGAIN: /* alive, its backlog full */
		return -EADDRINUSE;
	case -ECONNREFUSED:
		/* Nobody listens: left by a nestvm that died. */
		return unlink(sa->sun_path) < 0 && errno != ENOENT ? -errno : 0;
	default:
		return -EEXIST;
	}
}

int unix_listen_type(const char *path, int type, mode_t mode, int backlog)
{
	struct sockaddr_un sa;
	int fd, r;

	fd = fs_prelistener_dup(path, type);
	if (fd != -ENOENT)
		return fd;
	r = unix_addr(path, &sa);
	if (r < 0)
		return r;
	r = unix_clear_stale(&sa, type);
	if (r < 0)
		return r;
	fd = socket(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/*
	 * bind() creates the file with the socket inode's mode less the umask:
	 * set it first, so the socket is never reachable by more than @mode allows.
	 */
	if (fchmod(fd, mode) < 0) {
		r = -errno;
		goto err;
	}
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		/* Someone else's file appeared since the check: not ours to remove. */
		r = -errno;
		goto err;
	}
	if (listen(fd, backlog) < 0) {
		r = -errno;
		unlink(sa.sun_path);
		goto err;
	}
	return fd;
err:
	close(fd);
	return r;
}

int unix_connect_owned_type(const char *path, int type, int sock_flags)
{
	struct sockaddr_un sa;
	struct ucred cred;
	socklen_t len = sizeof(cred);
	struct stat st;
	int fd, r;

	r = unix_addr(path, &sa);
	if (r < 0)
		return r;
	if (lstat(path, &st) < 0)
		return -errno;
	if (!S_ISSOCK(st.st_mode))
		return S_ISLNK(st.st_mode) ? -ELOOP : -ENOTSOCK;
	if (!fs_uid_trusted(st.st_uid))
		return -EPERM;
	fd = socket(AF_UNIX, type | sock_flags, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = -errno;
		goto err;
	}
	/* The file may have been swapped since the lstat(): ask who listens. */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
		r = -errno;
		goto err;
	}
	if (!fs_uid_trusted(cred.uid)) {
		r = -EPERM;
		goto err;
	}
	return fd;
err:
	close(fd);
	return r;
}

int unix_listen(const char *path, mode_t mode, int backlog)
{
	return unix_listen_type(path, SOCK_STREAM, mode, backlog);
}

int unix_connect_owned(const char *path, int sock_flags)
{
	return unix_connect_owned_type(path, SOCK_STREAM, sock_flags);
}

const char *fs_strerror(int err)
{
	switch (err) {
	case -ELOOP:
		return "a symbolic link, which nestvm does not follow";
	case -EEXIST:
		return "exists and is not nestvm's to replace (remove it, or choose another path)";
	case -EPERM:
		return "belongs to another user or has other hard links; refused";
	case -EINVAL:
		return "not a regular file or block device";
	case -EADDRINUSE:
		return "a program is listening on it";
	case -ENOTSOCK:
		return "not a socket";
	default:
		return strerror(-err);
	}
}

/* Copy @len bytes at @off of @in into @out at the same offset. */
static int fs_copy_range(int in, int out, off_t off, off_t len)
{
	char buf[65536];

	while (len > 0) {
		loff_t ioff = off, ooff = off;
		ssize_t n = copy_file_range(in, &ioff, out, &ooff, (size_t)len, 0);

		/* Across file systems on old kernels, or where it is not supported. */
		if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS ||
		              errno == EOPNOTSUPP || errno == EPERM)) {
			n = pread(in, buf, (size_t)len < sizeof(buf) ? (size_t)len : sizeof(buf), off);
			if (n > 0 && pwrite(out, buf, (size_t)n, off) != n)
				return errno ? -errno : -EIO;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO; /* the file shrank under us */
		off += n;
		len -= n;
	}
	return 0;
}

int fs_copy_sparse(int in, int out)
{
	struct stat sb;
	off_t off = 0, data, hole;
	int r;

	if (fstat(in, &sb) < 0)
		return -errno;
	if (ioctl(out, FICLONE, in) == 0)
		return fsync(out) < 0 ? -errno : 0;
	if (ftruncate(out, 0) < 0 || ftruncate(out, sb.st_size) < 0)
		return -errno;
	while (off < sb.st_size) {
		data = lseek(in, off, SEEK_DATA);
		if (data < 0 && errno == ENXIO)
			break; /* only a hole is left */
		if (data < 0)
			return -errno;
		hole = lseek(in, data, SEEK_HOLE);
		if (hole < 0)
			return -errno;
		if (hole > sb.st_size)
			hole = sb.st_size;
		r = fs_copy_range(in, out, data, hole - data);
		if (r < 0)
			return r;
		off = hole;
	}
	return fsync(out) < 0 ? -errno : 0;
}
