/* SPDX-License-Identifier: MIT */
/*
 * The monitor's jail (jail.h): a uid of the VM's own, a mount namespace with
 * only the VM's files, no privileges. Linux mount_namespaces(7),
 * pivot_root(2), credentials(7).
 */
#include "manager/jail.h"

#include "core/fsutil.h"
#include "core/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/*
 * Sanitizer builds: LeakSanitizer, at exit, reads /proc/PID/task and
 * ptrace()s the monitor's threads: those get a /proc in the jail and a
 * dumpable monitor. Production builds have neither.
 */
#if defined(__SANITIZE_ADDRESS__)
#define JAIL_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define JAIL_SANITIZER 1
#endif
#endif

#define JAIL_TREE_DEPTH 8
#define JAIL_MS                                                                                    \
	(MS_NOSUID | MS_NODEV |                                                                    \
	 MS_NOEXEC) /* on every mount of the jail */ /* directories below the VM's:                \
	                                                checkpoints/NAME/disks */
#define JAIL_TMPFS_OPTS "mode=0755,size=64k,nr_inodes=256"

bool jail_wanted(struct jail *j)
{
	const char *env = getenv("NESTVM_JAIL");

	if (geteuid() != 0) {
		snprintf(j->off_reason, sizeof(j->off_reason), "not started as root");
		return false;
	}
	if (env && !strcmp(env, "off")) {
		snprintf(j->off_reason, sizeof(j->off_reason), "turned off (NESTVM_JAIL=off)");
		return false;
	}
	return true;
}

int jail_uid_range(uid_t *first, unsigned int *count)
{
	const char *env = getenv("NESTVM_JAIL_UIDS");
	unsigned long a, b;
	char *end;

	*first = JAIL_UIDS_DEFAULT_FIRST;
	*count = JAIL_UIDS_DEFAULT_COUNT;
	if (!env || !*env)
		return 0;
	errno = 0;
	a = strtoul(env, &end, 10);
	if (errno || end == env || *end != '-')
		return -EINVAL;
	env = end + 1;
	b = strtoul(env, &end, 10);
	/* Never root's or a system user's; never past uid_t's range or (uid_t)-1. */
	if (errno || end == env || *end || a < 1000 || b < a || b >= 0xffffffffUL)
		return -EINVAL;
	*first = (uid_t)a;
	*count = (unsigned int)(b - a + 1);
	return 0;
}

bool jail_uid_trusted(uid_t uid)
{
	unsigned int count;
	uid_t first;

	return jail_uid_range(&first, &count) == 0 && uid >= first && uid - first < count;
}

/* HOME/.jail, made if missing, checked like the store (root's, writable by no one else). */
static int jail_dir_open(const struct store *st, struct mgr_err *err)
{
	char path[STORE_PATH_MAX + 8];
	struct stat sb;
	int fd, r;

	snprintf(path, sizeof(path), "%s/%s", st->home, JAIL_DIR);
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return mgr_err_set(err, -errno, "cannot make '%s': %s", path, strerror(errno));
	fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return mgr_err_set(err, -errno, "'%s': %s", path, strerror(errno));
	if (fstat(fd, &sb) < 0)
		r = mgr_err_set(err, -errno, "'%s': %s", path, strerror(errno));
	else if (sb.st_uid != geteuid() || (sb.st_mode & 022))
		r = mgr_err_set(err, -EPERM,
		                "'%s' is not root's alone (uid %u, mode %04o): remove it", path,
		                (unsigned int)sb.st_uid, (unsigned int)(sb.st_mode & 07777));
	else
		r = 0;
	if (r < 0) {
		close(fd);
		return r;
	}
	return fd;
}

/* The target of the record @link in @dfd, NUL-terminated, or "" if there is none. */
static void jail_record_read(int dfd, const char *link, char *buf, size_t len)
{
	ssize_t n = readlinkat(dfd, link, buf, len - 1);

	buf[n > 0 ? n : 0] = '\0';
}

/*
 * The uid recorded as @key (HOME/.jail/KEY -> UID, and uid-UID -> @owner),
 * or the first free one of the range, reserved for @owner (jail.h).
 */
static int jail_uid_reserve(const struct store *st, const char *key, const char *owner, uid_t *uid,
                            struct mgr_err *err)
{
	char uid_link[32], target[STORE_NAME_MAX + 16];
	unsigned int count;
	uid_t first;
	int dfd, r = -EAGAIN;

	if (jail_uid_range(&first, &count) < 0)
		return mgr_err_set(err, -EINVAL,
		                   "NESTVM_JAIL_UIDS='%s': give FIRST-LAST, two uids from 1000 up",
		                   getenv("NESTVM_JAIL_UIDS"));
	dfd = jail_dir_open(st, err);
	if (dfd < 0)
		return dfd;
	/* The uid it had: both records agree. */
	jail_record_read(dfd, key, target, sizeof(target));
	if (target[0]) {
		char *end;
		unsigned long u = strtoul(target, &end, 10);
		/* Before the next read reuses target (an owner longer than the digits hid their
		 * end). */
		bool number = !*end;

		snprintf(uid_link, sizeof(uid_link), "uid-%lu", u);
		jail_record_read(dfd, uid_link, target, sizeof(target));
		if (number && u >= first && u - first < count && !strcmp(target, owner)) {
			*uid = (uid_t)u;
			close(dfd);
			return 0;
		}
		/* A record from another range, or half of one: start afresh. */
		unlinkat(dfd, key, 0);
	}
	for (unsigned int i = 0; i < count; i++) {
		char num[16];

		snprintf(uid_link, sizeof(uid_link), "uid-%u", (unsigned int)(first + i));
		/* symlinkat() is the reservation: it fails with EEXIST if the uid is taken. */
		if (symlinkat(owner, dfd, uid_link) < 0) {
			if (errno == EEXIST)
				continue;
			r = mgr_err_set(err, -errno, "cannot reserve a jail uid for '%s': %s",
			                owner, strerror(errno));
			break;
		}
		snprintf(num, sizeof(num), "%u", (unsigned int)(first + i));
		if (symlinkat(num, dfd, key) < 0) {
			r = mgr_err_set(err, -errno, "cannot record the jail uid of '%s': %s",
			                owner, strerror(errno));
			unlinkat(dfd, uid_link, 0);
			break;
		}
		*uid = first + i;
		r = 0;
		break;
	}
	if (r == -EAGAIN)
		r = mgr_err_set(err, -ENOSPC,
		                "all %u jail uids from %u are taken (NESTVM_JAIL_UIDS widens the "
		                "range)",
		                count, (unsigned int)first);
	close(dfd);
	return r;
}

/* Forget the uid recorded as @key for @owner. */
static void jail_uid_forget(const struct store *st, const char *key, const char *owner)
{
	char path[STORE_PATH_MAX + 8], target[32];
	int dfd;

	snprintf(path, sizeof(path), "%s/%s", st->home, JAIL_DIR);
	dfd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0)
		return;
	jail_record_read(dfd, key, target, sizeof(target));
	if (target[0] && strlen(target) < 16) {
		char uid_link[48], found[STORE_NAME_MAX + 16];

		snprintf(uid_link, sizeof(uid_link), "uid-%s", target);
		jail_record_read(dfd, uid_link, found, sizeof(found));
		if (!strcmp(found, owner))
			unlinkat(dfd, uid_link, 0);
	}
	unlinkat(dfd, key, 0);
	close(dfd);
}

int jail_uid_get(const struct store *st, const char *name, uid_t *uid, struct mgr_err *err)
{
	char vm_link[STORE_NAME_MAX + 8];

	snprintf(vm_link, sizeof(vm_link), "vm-%s", name);
	return jail_uid_reserve(st, vm_link, name, uid, err);
}

void jail_uid_release(const struct store *st, const char *name)
{
	char vm_link[STORE_NAME_MAX + 8];

	snprintf(vm_link, sizeof(vm_link), "vm-%s", name);
	jail_uid_forget(st, vm_link, name);
}

/*
 * A switch's records: switch-NAME -> UID and uid-UID -> .switches/NAME, an
 * owner no VM name can be (a VM name has no '/'), so a VM and a switch of
 * the same name never share a uid.
 */
int jail_switch_uid_get(const struct store *st, const char *name, uid_t *uid, struct mgr_err *err)
{
	char link[STORE_NAME_MAX + 8], owner[STORE_NAME_MAX + 16];

	snprintf(link, sizeof(link), "switch-%s", name);
	snprintf(owner, sizeof(owner), ".switches/%s", name);
	return jail_uid_reserve(st, link, owner, uid, err);
}

void jail_switch_uid_release(const struct store *st, const char *name)
{
	char link[STORE_NAME_MAX + 8], owner[STORE_NAME_MAX + 16];

	snprintf(link, sizeof(link), "switch-%s", name);
	snprintf(owner, sizeof(owner), ".switches/%s", name);
	jail_uid_forget(st, link, owner);
}

/*
 * Give directory @fd, and every directory below it (not through links), to
 * @uid:@gid: the monitor makes, renames and removes files in them. Files
 * keep their owner; a directory's owner may replace them.
 */
static int jail_chown_dirs(int fd, uid_t uid, gid_t gid, int depth)
{
	struct dirent *e;
	DIR *d;
	int r = 0;

	if (fchown(fd, uid, gid) < 0)
		return -errno;
	if (depth == 0)
		return 0;
	fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (fd < 0 || !(d = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return -errno;
	}
	while (r == 0 && (e = readdir(d))) {
		int sub;

		if ((e->d_type != DT_DIR && e->d_type != DT_UNKNOWN) || !strcmp(e->d_name, ".") ||
		    !strcmp(e->d_name, ".."))
			continue;
		sub = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub < 0)
			continue; /* gone, or not a directory after all */
		r = jail_chown_dirs(sub, uid, gid, depth - 1);
		close(sub);
	}
	closedir(d);
	return r;
}

/* mkdir -p @path (absolute) below the current directory, mode 0755. */
static int jail_mkdirs(const char *path)
{
	char buf[PATH_MAX];

	if (snprintf(buf, sizeof(buf), ".%s", path) >= (int)sizeof(buf))
		return -ENAMETOOLONG;
	for (char *p = buf + 2; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		/* chmod: the monitor's umask (077) would keep the jail's user out. */
		if ((mkdir(buf, 0755) < 0 && errno != EEXIST) || chmod(buf, 0755) < 0)
			return -errno;
		*p = '/';
	}
	return (mkdir(buf, 0755) < 0 && errno != EEXIST) || chmod(buf, 0755) < 0 ? -errno : 0;
}

/* Bind the directory @src_fd at @path (absolute) in the new root, the current directory. */
static int jail_bind(int src_fd, const char *path)
{
	char src[40], dst[PATH_MAX];
	int r = jail_mkdirs(path);

	if (r < 0)
		return r;
	snprintf(src, sizeof(src), "/proc/self/fd/%d", src_fd);
	if (snprintf(dst, sizeof(dst), ".%s", path) >= (int)sizeof(dst))
		return -ENAMETOOLONG;
	/* A bind mount takes its flags in a second step, the remount. */
	if (mount(src, dst, NULL, MS_BIND, NULL) < 0 ||
	    mount(NULL, dst, NULL, MS_REMOUNT | MS_BIND | JAIL_MS, NULL) < 0)
		return -errno;
	return 0;
}

/*
 * Step 2: a private mount namespace whose root is a tmpfs holding @dirs at
 * their paths. The tmpfs is mounted over @dirs[0], the VM's directory,
 * which is ours and hides nothing the jail needs: it is bound back from a
 * descriptor opened just before (in the new namespace: a bind mount's
 * source must be in the caller's).
 */
static int jail_mount(const char *const *dirs, unsigned int n, bool *pivoted, struct mgr_err *err)
{
	unsigned long ms = JAIL_MS;
	int fds[JAIL_MAX_DIRS];
	unsigned int nfds = 0;
	bool mounted = false;
	int r = 0;

	if (unshare(CLONE_NEWNS) < 0)
		return mgr_err_set(err, -errno, "jail: unshare(CLONE_NEWNS): %s", strerror(errno));
	/* Nothing we mount from here on reaches the host's namespace. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return mgr_err_set(err, -errno, "jail: cannot make the mounts private: %s",
		                   strerror(errno));
	for (; nfds < n; nfds++) {
		fds[nfds] = open(dirs[nfds], O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (fds[nfds] < 0) {
			r = mgr_err_set(err, -errno, "jail: '%s': %s", dirs[nfds], strerror(errno));
			goto out;
		}
	}
	if (mount("nestvm-jail", dirs[0], "tmpfs", ms, JAIL_TMPFS_OPTS) < 0) {
		r = mgr_err_set(err, -errno, "jail: cannot mount its root (tmpfs) on '%s': %s",
		                dirs[0], strerror(errno));
		goto out;
	}
	mounted = true;
	if (chdir(dirs[0]) < 0) {
		r = mgr_err_set(err, -errno, "jail: '%s': %s", dirs[0], strerror(errno));
		goto out;
	}
	for (unsigned int i = 0; i < n && r == 0; i++) {
		r = jail_bind(fds[i], dirs[i]);
		if (r < 0)
			mgr_err_set(err, r, "jail: cannot bind '%s' into it: %s", dirs[i],
			            strerror(-r));
	}
#ifdef JAIL_SANITIZER
	if (r == 0 && (jail_mkdirs("/proc") < 0 || mount("proc", "./proc", "proc", ms, NULL) < 0))
		r = mgr_err_set(err, -errno, "jail: cannot mount /proc (sanitizer build): %s",
		                strerror(errno));
#endif
	if (r < 0)
		goto out;
	/*
	 * pivot_root(".", "."): the tmpfs becomes the root, the old root sits
	 * on top of it until detached. An initramfs root cannot be pivoted
	 * (EINVAL): there chroot, which a process without CAP_SYS_CHROOT cannot
	 * leave.
	 */
	*pivoted = syscall(SYS_pivot_root, ".", ".") == 0;
	if (*pivoted && umount2(".", MNT_DETACH) < 0)
		r = mgr_err_set(err, -errno, "jail: cannot detach the old root: %s",
		                strerror(errno));
	else if (!*pivoted && (errno != EINVAL || chroot(".") < 0))
		r = mgr_err_set(err, -errno, "jail: cannot enter its root: %s", strerror(errno));
	if (r < 0)
		goto out;
	mounted = false; /* the root now: never undone */
	if (chdir("/") < 0)
		r = mgr_err_set(err, -errno, "jail: chdir /: %s", strerror(errno));
	/* Its own root read-only: the jail's user writes only in the bound directories. */
	else if (mount(NULL, "/", NULL, MS_REMOUNT | MS_RDONLY | ms, NULL) < 0)
		r = mgr_err_set(err, -errno, "jail: cannot make its root read-only: %s",
		                strerror(errno));
out:
	/* A failure before the switch leaves the VM's directory visible, for the records. */
	if (mounted && (chdir("/") < 0 || umount2(dirs[0], MNT_DETACH) < 0))
		log_warn("jail: cannot undo the tmpfs on '%s': %s", dirs[0], strerror(errno));
	for (unsigned int i = 0; i < nfds; i++)
		close(fds[i]);
	return r;
}

/* Step 3: no groups, the VM's gid and uid, no way back (jail.h). */
int jail_drop(uid_t uid, gid_t gid, struct mgr_err *err)
{
	uid_t ru, eu, su;
	gid_t rg, eg, sg;

	/*
	 * The raw calls: glibc's wrappers would signal every thread to follow
	 * (there is none yet, and a thread under seccomp must not be asked).
	 */
	if (syscall(SYS_setgroups, 0, NULL) < 0 || syscall(SYS_setresgid, gid, gid, gid) < 0 ||
	    syscall(SYS_setresuid, uid, uid, uid) < 0)
		return mgr_err_set(err, -errno, "jail: cannot become uid %u gid %u: %s",
		                   (unsigned int)uid, (unsigned int)gid, strerror(errno));
	if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0 || ru != uid ||
	    eu != uid || su != uid || rg != gid || eg != gid || sg != gid ||
	    getgroups(0, NULL) != 0 || syscall(SYS_setresuid, 0, 0, 0) == 0)
		return mgr_err_set(err, -EPERM, "jail: the privilege drop did not hold");
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return mgr_err_set(err, -errno, "jail: no_new_privs: %s", strerror(errno));
#ifdef JAIL_SANITIZER
	prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
#endif
	return 0;
}

int jail_open_pagemap(void)
{
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct caps[2], lowered[2];
	int r, r2 = 0;

	if (geteuid() != 0 || syscall(SYS_capget, &hdr, caps) < 0)
		return fs_preopen("/proc/self/pagemap", O_RDONLY | FS_PREOPEN_ANY);
	memcpy(lowered, caps, sizeof(caps));
	lowered[CAP_TO_INDEX(CAP_SYS_ADMIN)].effective &= ~CAP_TO_MASK(CAP_SYS_ADMIN);
	if (syscall(SYS_capset, &hdr, lowered) < 0)
		return -errno;
	r = fs_preopen("/proc/self/pagemap", O_RDONLY | FS_PREOPEN_ANY);
	if (syscall(SYS_capset, &hdr, caps) < 0)
		r2 = -errno;
	return r < 0 ? r : r2;
}

int jail_enter(const struct store *st, const char *name, struct jail *j, struct mgr_err *err)
{
	const char *dirs[2];
	char vm_dir[STORE_PATH_MAX];
	uid_t starter = geteuid();
	int r, vm_fd;

	memset(j, 0, sizeof(*j));
	if (store_path(st, name, NULL, vm_dir, sizeof(vm_dir)) < 0)
		return mgr_err_set(err, -ENAMETOOLONG, "VM store path too long");
	r = jail_uid_get(st, name, &j->uid, err);
	if (r < 0)
		return r;
	j->gid = (gid_t)j->uid;
	vm_fd = store_vm_dir(st, name, err);
	if (vm_fd < 0)
		return vm_fd;
	/* Step 1. */
	r = jail_chown_dirs(vm_fd, j->uid, j->gid, JAIL_TREE_DEPTH);
	close(vm_fd);
	if (r < 0)
		return mgr_err_set(err, r, "jail: cannot give '%s' to uid %u: %s", vm_dir,
		                   (unsigned int)j->uid, strerror(-r));
	dirs[0] = vm_dir;
	dirs[1] = NULL;
	r = jail_mount(dirs, 1, &j->pivoted, err);
	if (r == 0)
		r = jail_drop(j->uid, j->gid, err);
	if (r < 0)
		return r;
	/* The sockets of the user who started it (`nestvm exec`'s ports, migration). */
	fs_trust_uids(starter, 1);
	j->active = true;
	return 0;
}
