/* SPDX-License-Identifier: MIT */
/* Saved states and checkpoints in the VM store (manager/store_snap.h). */
#include "manager/store_snap.h"

#include "core/fsutil.h"
#include "snapshot/vm_snapshot.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STORE_SNAP_OLD ".snap-old" /* a replaced snapshot on its way out */
#define STORE_SNAP_DEF "vm.json"
#define STORE_SNAP_DISKS "disks"
#define RMTREE_DEPTH 4

/* Remove @name in @parent, a file or a directory tree of ours; never follows a link. */
static int rmtree_at(int parent, const char *name, int depth)
{
	struct dirent *e;
	DIR *d;
	int fd, r = 0;

	if (unlinkat(parent, name, 0) == 0 || errno == ENOENT)
		return 0;
	if (errno != EISDIR && errno != EPERM)
		return -errno;
	if (depth == 0)
		return -ELOOP;
	fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	while (r == 0 && (e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			r = rmtree_at(dirfd(d), e->d_name, depth - 1);
	}
	closedir(d);
	if (r == 0 && unlinkat(parent, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		r = -errno;
	return r;
}

/* A new file @name in @dirfd holding @len bytes of @data, synced. */
static int write_new_file(int dirfd, const char *name, const char *data, size_t len)
{
	int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	int r = 0;

	if (fd < 0)
		return -errno;
	while (len && r == 0) {
		ssize_t n = write(fd, data, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			r = n < 0 ? -errno : -EIO;
		else
			data += n, len -= (size_t)n;
	}
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	close(fd);
	return r;
}

int store_snap_begin(const struct store *st, const char *name, struct store_snap_tmp *t,
                     struct mgr_err *err)
{
	int r;

	t->fd = -1;
	t->vm_fd = store_vm_dir(st, name, err);
	if (t->vm_fd < 0)
		return t->vm_fd;
	if (store_path(st, name, NULL, t->vm_dir, sizeof(t->vm_dir)) < 0)
		t->vm_dir[0] = 0;
	r = rmtree_at(t->vm_fd, STORE_SNAP_TMP, RMTREE_DEPTH);
	if (r == 0)
		r = rmtree_at(t->vm_fd, STORE_SNAP_OLD, RMTREE_DEPTH);
	if (r == 0 && mkdirat(t->vm_fd, STORE_SNAP_TMP, 0700) < 0)
		r = -errno;
	if (r == 0) {
		t->fd = openat(t->vm_fd, STORE_SNAP_TMP, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		                                             O_CLOEXEC);
		if (t->fd < 0)
			r = -errno;
	}
	if (r < 0) {
		close(t->vm_fd);
		t->vm_fd = -1;
		return mgr_err_set(err, r, "cannot make '%s/%s' for the snapshot: %s", t->vm_dir,
		                   STORE_SNAP_TMP, strerror(-r));
	}
	return 0;
}

int store_snap_write_def(struct store_snap_tmp *t, const struct vm_def *def, struct mgr_err *err)
{
	char *text = vm_def_format(def);
	int r = text ? write_new_file(t->fd, STORE_SNAP_DEF, text, strlen(text)) : -ENOMEM;

	free(text);
	if (r < 0)
		return mgr_err_set(err, r, "cannot write the snapshot's definition: %s", strerror(-r));
	return 0;
}

int store_snap_copy_disks(struct store_snap_tmp *t, const struct vm_def *def, struct mgr_err *err)
{
	int dfd, r = 0;

	if (def->nr_disks == 0)
		return 0;
	if (mkdirat(t->fd, STORE_SNAP_DISKS, 0700) < 0)
		return mgr_err_set(err, -errno, "cannot make the checkpoint's disks directory: %s",
		                   strerror(errno));
	dfd = openat(t->fd, STORE_SNAP_DISKS, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0)
		return mgr_err_set(err, -errno, "disks directory: %s", strerror(errno));
	for (unsigned int i = 0; i < def->nr_disks && r == 0; i++) {
		char file[32];
		int in, out;

		snprintf(file, sizeof(file), "%u.img", i);
		in = fs_open_input(def->disks[i].path, O_RDONLY, NULL);
		if (in < 0) {
			r = mgr_err_set(err, in, "disk '%s': %s", def->disks[i].path, fs_strerror(in));
			break;
		}
		out = openat(dfd, file, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		r = out < 0 ? -errno : fs_copy_sparse(in, out);
		if (out >= 0)
			close(out);
		close(in);
		if (r < 0)
			mgr_err_set(err, r, "cannot copy disk '%s': %s", def->disks[i].path,
			            strerror(-r));
	}
	if (r == 0 && fsync(dfd) < 0)
		r = mgr_err_set(err, -errno, "disks directory: %s", strerror(errno));
	close(dfd);
	return r;
}

static void snap_tmp_close(struct store_snap_tmp *t)
{
	if (t->fd >= 0)
		close(t->fd);
	if (t->vm_fd >= 0)
		close(t->vm_fd);
	t->fd = t->vm_fd = -1;
}

void store_snap_abort(struct store_snap_tmp *t)
{
	if (t->vm_fd >= 0)
		(void)rmtree_at(t->vm_fd, STORE_SNAP_TMP, RMTREE_DEPTH);
	snap_tmp_close(t);
}

int store_snap_commit(struct store_snap_tmp *t, const char *dest, struct mgr_err *err)
{
	const char *leaf = dest;
	int parent = t->vm_fd, r = 0;

	if (fsync(t->fd) < 0)
		r = -errno;
	if (r == 0 && strchr(dest, '/')) {
		if (mkdirat(t->vm_fd, STORE_CHECKPOINTS, 0700) < 0 && errno != EEXIST)
			r = -errno;
		parent = openat(t->vm_fd, STORE_CHECKPOINTS,
		                O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (r == 0 && parent < 0)
			r = -errno;
		leaf = strchr(dest, '/') + 1;
	}
	/* Into place if nothing is there, else swapped with the old one, which then goes. */
	if (r == 0 && renameat2(t->vm_fd, STORE_SNAP_TMP, parent, leaf, RENAME_NOREPLACE) < 0) {
		r = -errno;
		if (r == -EEXIST) {
			r = renameat2(t->vm_fd, STORE_SNAP_TMP, parent, leaf, RENAME_EXCHANGE) < 0
			        ? -errno
			        : 0;
			if (r == 0 && fsync(parent) < 0)
				r = -errno;
			if (r == 0)
				(void)rmtree_at(t->vm_fd, STORE_SNAP_TMP, RMTREE_DEPTH);
		}
	}
	if (r == 0 && fsync(parent) < 0)
		r = -errno;
	if (parent >= 0 && parent != t->vm_fd)
		close(parent);
	if (r < 0) {
		mgr_err_set(err, r, "cannot put the snapshot at '%s/%s': %s", t->vm_dir, dest,
		            strerror(-r));
		store_snap_abort(t);
		return r;
	}
	snap_tmp_close(t);
	return 0;
}

int store_snap_open(const struct store *st, const char *name, const char *cp, struct mgr_err *err)
{
	char rel[STORE_CHECKPOINT_NAME_MAX + 32], path[STORE_PATH_MAX + 256];
	struct stat sb;
	int vm_fd, fd, r;

	if (cp && store_check_checkpoint_name(cp, err) < 0)
		return -EINVAL;
	snprintf(rel, sizeof(rel), "%s%s%s", cp ? STORE_CHECKPOINTS : STORE_SAVED, cp ? "/" : "",
	         cp ? cp : "");
	vm_fd = store_vm_dir(st, name, err);
	if (vm_fd < 0)
		return vm_fd;
	snprintf(path, sizeof(path), "%s/%s/%s", st->home, name, rel);
	fd = openat(vm_fd, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	close(vm_fd);
	if (fd < 0 && errno == ENOENT)
		return mgr_err_set(err, -ENOENT, cp ? "VM '%s' has no checkpoint '%s'"
		                                    : "VM '%s' has no saved state%s",
		                   name, cp ? cp : "");
	if (fd < 0)
		return mgr_err_set(err, -errno, "'%s': %s", path, strerror(errno));
	r = fstat(fd, &sb) < 0 ? mgr_err_set(err, -errno, "'%s': %s", path, strerror(errno))
	                       : store_check_owner(&sb, path, true, err);
	if (r < 0) {
		close(fd);
		return r;
	}
	return fd;
}

bool store_has_saved(const struct store *st, const char *name)
{
	struct mgr_err err;
	struct stat sb;
	int fd = store_snap_open(st, name, NULL, &err);
	bool has;

	if (fd < 0)
		return false;
	has = fstatat(fd, SNAPSHOT_STATE_FILE, &sb, AT_SYMLINK_NOFOLLOW) == 0;
	close(fd);
	return has;
}

int store_saved_remove(const struct store *st, const char *name, struct mgr_err *err)
{
	int vm_fd = store_vm_dir(st, name, err), r;

	if (vm_fd < 0)
		return vm_fd;
	r = rmtree_at(vm_fd, STORE_SAVED, RMTREE_DEPTH);
	if (r == 0 && fsync(vm_fd) < 0)
		r = -errno;
	close(vm_fd);
	if (r < 0)
		return mgr_err_set(err, r, "cannot remove the saved state of '%s': %s", name,
		                   strerror(-r));
	return 0;
}

int store_check_checkpoint_name(const char *cp, struct mgr_err *err)
{
	size_t len = cp ? strlen(cp) : 0;
	char shown[96];

	if (len == 0 || len > STORE_CHECKPOINT_NAME_MAX || !isalnum((unsigned char)cp[0]))
		goto bad;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = cp[i];

		if (c >= 0x80 || !(isalnum(c) || c == '.' || c == '_' || c == '-'))
			goto bad;
	}
	return 0;
bad:
	return mgr_err_set(err, -EINVAL,
	                   "invalid checkpoint name '%s': use 1 to %d letters, digits, '.', '_' "
	                   "or '-', starting with a letter or digit",
	                   mgr_escape(cp ? cp : "", shown, sizeof(shown)), STORE_CHECKPOINT_NAME_MAX);
}

/* Bytes the files of directory @fd take, two levels deep (disks/). */
static uint64_t dir_bytes(int fd, int depth)
{
	uint64_t total = 0;
	struct dirent *e;
	int dup_fd = dup(fd);
	DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;

	if (!d) {
		if (dup_fd >= 0)
			close(dup_fd);
		return 0;
	}
	while ((e = readdir(d)) != NULL) {
		struct stat sb;

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
		    fstatat(dirfd(d), e->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (S_ISREG(sb.st_mode)) {
			total += (uint64_t)sb.st_blocks * 512;
		} else if (S_ISDIR(sb.st_mode) && depth > 0) {
			int sub = openat(dirfd(d), e->d_name,
			                 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

			if (sub >= 0) {
				total += dir_bytes(sub, depth - 1);
				close(sub);
			}
		}
	}
	closedir(d);
	return total;
}

static int checkpoint_cmp(const void *a, const void *b)
{
	const struct store_checkpoint *x = a, *y = b;

	if (x->created != y->created)
		return x->created < y->created ? -1 : 1;
	return strcmp(x->name, y->name);
}

int store_checkpoint_list(const struct store *st, const char *name, struct store_checkpoint **out,
                          struct mgr_err *err)
{
	struct store_checkpoint *cps = NULL;
	struct dirent *e;
	int vm_fd, fd, n = 0;
	DIR *d;

	*out = NULL;
	vm_fd = store_vm_dir(st, name, err);
	if (vm_fd < 0)
		return vm_fd;
	fd = openat(vm_fd, STORE_CHECKPOINTS, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	close(vm_fd);
	if (fd < 0 && errno == ENOENT)
		return 0;
	if (fd < 0)
		return mgr_err_set(err, -errno, "checkpoints of '%s': %s", name, strerror(errno));
	d = fdopendir(fd);
	cps = calloc(STORE_MAX_CHECKPOINTS, sizeof(*cps));
	if (!d || !cps) {
		if (d)
			closedir(d);
		else
			close(fd);
		free(cps);
		return mgr_err_set(err, -ENOMEM, "out of memory");
	}
	while ((e = readdir(d)) != NULL && n < STORE_MAX_CHECKPOINTS) {
		struct store_checkpoint *c = &cps[n];
		struct stat sb;
		int cfd;

		if (store_check_checkpoint_name(e->d_name, NULL) < 0)
			continue; /* ".", "..", and nothing of ours */
		cfd = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (cfd < 0)
			continue;
		if (fstatat(cfd, STORE_SNAP_DEF, &sb, AT_SYMLINK_NOFOLLOW) == 0) {
			memcpy(c->name, e->d_name, strlen(e->d_name) + 1); /* checked: fits */
			c->created = sb.st_mtim.tv_sec;
			c->running = fstatat(cfd, SNAPSHOT_STATE_FILE, &sb, AT_SYMLINK_NOFOLLOW) == 0;
			c->bytes = dir_bytes(cfd, 1);
			n++;
		}
		close(cfd);
	}
	closedir(d);
	qsort(cps, (size_t)n, sizeof(*cps), checkpoint_cmp);
	*out = cps;
	return n;
}

int store_checkpoint_remove(const struct store *st, const char *name, const char *cp,
                            struct mgr_err *err)
{
	int fd = store_snap_open(st, name, cp, err), parent, r;

	if (fd < 0)
		return fd;
	close(fd);
	parent = store_vm_dir(st, name, err);
	if (parent < 0)
		return parent;
	fd = openat(parent, STORE_CHECKPOINTS, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	close(parent);
	r = fd < 0 ? -errno : rmtree_at(fd, cp, RMTREE_DEPTH);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (fd >= 0)
		close(fd);
	if (r < 0)
		return mgr_err_set(err, r, "cannot remove checkpoint '%s' of '%s': %s", cp, name,
		                   strerror(-r));
	return 0;
}

int store_snap_read_def(int fd, const char *what, struct vm_def *def, struct mgr_err *err)
{
	char *buf = malloc(STORE_MAX_FILE + 1);
	size_t len = 0;
	int in = openat(fd, STORE_SNAP_DEF, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC), r;
	ssize_t n;

	if (in < 0 || !buf) {
		r = mgr_err_set(err, in < 0 ? -errno : -ENOMEM, "%s: no definition: %s", what,
		                in < 0 ? strerror(errno) : "out of memory");
		if (in >= 0)
			close(in);
		free(buf);
		return r;
	}
	while (len < STORE_MAX_FILE && (n = read(in, buf + len, STORE_MAX_FILE - len)) > 0)
		len += (size_t)n;
	close(in);
	buf[len] = 0;
	r = vm_def_parse(buf, len, what, def, err);
	free(buf);
	return r;
}

static bool snap_same_path(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

int store_snap_def_trusted(int fd, const char *what, const struct vm_def *snap,
                           const struct vm_def *cur, struct mgr_err *err)
{
	const char *field = NULL;
	struct stat sb;

	if (fstatat(fd, STORE_SNAP_DEF, &sb, AT_SYMLINK_NOFOLLOW) < 0)
		return mgr_err_set(err, -errno, "%s: %s", what, strerror(errno));
	if (sb.st_uid == 0 || sb.st_uid == geteuid())
		return 0;
	if (!snap_same_path(snap->kernel, cur->kernel))
		field = "kernel";
	else if (!snap_same_path(snap->initrd, cur->initrd))
		field = "initrd";
	else if (snap->nr_disks != cur->nr_disks)
		field = "disks";
	else if (snap->nr_nics != cur->nr_nics)
		field = "networks";
	else if (!snap_same_path(snap->vsock.socket, cur->vsock.socket))
		field = "vsock socket";
	else if (!snap_same_path(snap->console.socket, cur->console.socket) ||
	         snap->console.nr_ports != cur->console.nr_ports)
		field = "console sockets";
	for (unsigned int i = 0; !field && i < snap->nr_disks; i++) {
		if (!snap_same_path(snap->disks[i].path, cur->disks[i].path))
			field = "disks";
	}
	for (unsigned int i = 0; !field && i < snap->nr_nics; i++) {
		if (!snap_same_path(snap->nics[i].network, cur->nics[i].network))
			field = "networks";
	}
	for (unsigned int i = 0; !field && i < snap->console.nr_ports; i++) {
		if (!snap_same_path(snap->console.ports[i].socket, cur->console.ports[i].socket))
			field = "console sockets";
	}
	if (!field)
		return 0;
	return mgr_err_set(err, -EPERM,
	                   "%s was written by the VM's jailed monitor (uid %u) and names other "
	                   "host files (%s) than the VM's vm.json: refused",
	                   what, (unsigned int)sb.st_uid, field);
}

int store_checkpoint_apply(const struct store *st, const char *name, const char *cp,
                           struct mgr_err *err)
{
	static const char *const files[] = {SNAPSHOT_STATE_FILE, SNAPSHOT_MEMORY_FILE,
	                                    STORE_SNAP_DEF};
	struct vm_def def = {0};
	struct store_snap_tmp t = {.vm_fd = -1, .fd = -1};
	struct stat sb;
	int fd, dfd = -1, r;

	fd = store_snap_open(st, name, cp, err);
	if (fd < 0)
		return fd;
	r = store_snap_read_def(fd, cp, &def, err);
	if (r == 0) {
		struct vm_def cur;

		r = store_load(st, name, &cur, err);
		if (r == 0)
			r = store_snap_def_trusted(fd, cp, &def, &cur, err);
		vm_def_clear(&cur);
	}
	if (r == 0 && def.nr_disks)
		dfd = openat(fd, STORE_SNAP_DISKS, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (r == 0 && def.nr_disks && dfd < 0)
		r = mgr_err_set(err, -errno, "checkpoint '%s' has no disk copies: %s", cp,
		                strerror(errno));
	/* The disks first: a failure leaves the definition and saved state as they were. */
	for (unsigned int i = 0; r == 0 && i < def.nr_disks; i++) {
		char file[32];
		int in, out;

		snprintf(file, sizeof(file), "%u.img", i);
		in = openat(dfd, file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (in < 0) {
			r = mgr_err_set(err, -errno, "checkpoint '%s': disk copy %s: %s", cp, file,
			                strerror(errno));
			break;
		}
		out = fs_open_input(def.disks[i].path, O_RDWR, NULL);
		r = out < 0 ? out : fs_copy_sparse(in, out);
		if (r < 0)
			mgr_err_set(err, r, "cannot restore disk '%s': %s", def.disks[i].path,
			            out < 0 ? fs_strerror(r) : strerror(-r));
		if (out >= 0)
			close(out);
		close(in);
	}
	if (r == 0)
		r = store_save(st, &def, err);
	if (r == 0 && fstatat(fd, SNAPSHOT_STATE_FILE, &sb, AT_SYMLINK_NOFOLLOW) < 0) {
		r = store_saved_remove(st, name, err);
	} else if (r == 0) {
		r = store_snap_begin(st, name, &t, err);
		for (unsigned int i = 0; r == 0 && i < sizeof(files) / sizeof(files[0]); i++) {
			if (linkat(fd, files[i], t.fd, files[i], 0) < 0)
				r = mgr_err_set(err, -errno, "cannot link the checkpoint's %s: %s",
				                files[i], strerror(errno));
		}
		if (r == 0)
			r = store_snap_commit(&t, STORE_SAVED, err);
		else
			store_snap_abort(&t);
	}
	if (dfd >= 0)
		close(dfd);
	close(fd);
	vm_def_clear(&def);
	return r;
}
