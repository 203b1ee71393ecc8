/* SPDX-License-Identifier: MIT */
#ifndef NESTVM_CORE_FSUTIL_H
#define NESTVM_CORE_FSUTIL_H

/*
 * The one place where nestvm opens files and UNIX sockets that a user names,
 * so that a hostile local user cannot point nestvm at someone else's file
 * (issue 9, rows 2, 4, 5, 6, 8):
 *
 *  - files nestvm writes are created with O_EXCL, or, when they exist, opened
 *    with O_NOFOLLOW and written only if they are regular files with one link
 *    owned by the caller: no symlink or hard link leads nestvm to truncate
 *    another file;
 *  - files nestvm reads (kernel, initrd, disks) are opened with O_NONBLOCK, so
 *    a FIFO cannot make the open hang, and must be regular files or block
 *    devices;
 *  - listening sockets get an explicit mode before bind() (so the umask never
 *    widens it), and a path that exists is never unlinked unless it is a stale
 *    socket of ours (a socket owned by the caller that refuses connections);
 *  - nestvm connects only to sockets owned by the caller, whose listener runs
 *    as the caller (SO_PEERCRED).
 *
 * Every function returns a descriptor or 0 on success and -errno on failure;
 * fs_strerror() turns the codes these functions choose into a message.
 * Descriptors are close-on-exec.
 */

#include <sys/stat.h>
#include <sys/types.h>

/* fs_create_file flags. */
#define FS_TRUNC 0x1u  /* empty an existing file (one that passed the checks) */
#define FS_APPEND 0x2u /* open with O_APPEND */

/*
 * fs_create_file - open @path for writing, creating it with @mode (less the
 * umask) if it does not exist. An existing @path is opened only if it is not
 * a symlink (-ELOOP), is a regular file (-EEXIST otherwise) with one link,
 * owned by the effective user (-EPERM otherwise). Never blocks. Returns the
 * descriptor or -errno.
 */
int fs_create_file(const char *path, mode_t mode, unsigned int flags)
    __attribute__((warn_unused_result));

/*
 * fs_open_input - open an existing @path with @flags (O_RDONLY or O_RDWR,
 * plus any others) without blocking, for a file nestvm reads: a kernel, an
 * initrd, a disk image. Anything but a regular file or a block device
 * (FIFO, socket, character device, directory) is -EINVAL. Symlinks are
 * followed: the user named the input. @st (may be NULL) receives its stat.
 * The descriptor is blocking again on return. Returns it or -errno.
 */
int fs_open_input(const char *path, int flags, struct stat *st) __attribute__((warn_unused_result));

/*
 * fs_private_dir - create directory @path (mode 0700) if missing and check
 * that it is one the caller alone controls: a real directory (not a symlink)
 * owned by the effective user, writable by nobody else, inside a parent
 * owned by the caller or root that others cannot write to (unless sticky).
 * Returns 0, -ENOTDIR, -EPERM or another -errno.
 */
int fs_private_dir(const char *path) __attribute__((warn_unused_result));

/*
 * unix_listen - a listening SOCK_STREAM UNIX socket at @path (non-blocking,
 * close-on-exec), its file created with @mode (less the umask, never more).
 * A path that exists is -EEXIST unless it is a stale socket of ours: a
 * socket owned by the effective user whose connect() fails with
 * ECONNREFUSED, which is replaced; a live one is -EADDRINUSE. Returns the
 * descriptor or -errno (-ENAMETOOLONG for a path sun_path cannot hold).
 */
int unix_listen(const char *path, mode_t mode, int backlog) __attribute__((warn_unused_result));

/* unix_listen_type - unix_listen() for a socket of @type (SOCK_SEQPACKET, ...). */
int unix_listen_type(const char *path, int type, mode_t mode, int backlog)
    __attribute__((warn_unused_result));

/*
 * unix_connect_owned - connect a SOCK_STREAM UNIX socket (socket(2) flags
 * @sock_flags, e.g. SOCK_NONBLOCK | SOCK_CLOEXEC) to @path, only if @path is
 * a socket (not a symlink: -ELOOP; else -ENOTSOCK) owned by the effective
 * user and its listener runs as that user (-EPERM otherwise). Returns the
 * descriptor or -errno (-ENOENT, -ECONNREFUSED as connect() says).
 */
int unix_connect_owned(const char *path, int sock_flags) __attribute__((warn_unused_result));

/* unix_connect_owned_type - unix_connect_owned() for a socket of @type (SOCK_SEQPACKET, ...). */
int unix_connect_owned_type(const char *path, int type, int sock_flags)
    __attribute__((warn_unused_result));

/*
 * fs_copy_sparse - make the regular file @out a copy of @in: a reflink
 * (FICLONE: shared extents, instant) where the file system can, else the
 * data ranges only (SEEK_DATA/SEEK_HOLE, copy_file_range()), so holes stay
 * holes; @out ends up @in's size. Both descriptors stay open. 0 or -errno.
 */
int fs_copy_sparse(int in, int out) __attribute__((warn_unused_result));

/*
 * Descriptors opened before the monitor gives up access to the file system
 * (the jail's privilege drop, Landlock on the main thread: manager/jail.h):
 * fs_preopen() opens @path now, with fs_open_input()'s checks for a regular
 * file or block device, or as a character device (/dev/kvm) or a /proc file
 * when @flags has FS_PREOPEN_ANY; later opens of the same path by
 * fs_open_input() and fs_reopen() get a duplicate (sharing the file offset
 * and locks), or the error this open had (a FIFO's -EINVAL, not the jail's
 * -ENOENT). Main thread, before other threads exist; the table is read-only
 * afterwards. Returns 0 or -errno.
 */
#define FS_PREOPEN_ANY 0x40000000 /* not a kernel O_ flag: any file type */
int fs_preopen(const char *path, int flags) __attribute__((warn_unused_result));

/*
 * fs_prelisten - unix_listen_type() now, for a later unix_listen*() of the
 * same @path and @type, which then gets a duplicate: a listener made before
 * the jail, where the jail's user could not make it (a directory of
 * root's). Same thread rules as fs_preopen(). Returns 0 or -errno.
 */
int fs_prelisten(const char *path, int type, mode_t mode, int backlog)
    __attribute__((warn_unused_result));

/*
 * fs_reopen - a duplicate of the descriptor fs_preopen() kept for @path, if
 * one with access @flags allows (O_RDONLY is served by an O_RDWR one), else
 * open(@path, @flags | O_CLOEXEC). Returns the descriptor or -errno.
 */
int fs_reopen(const char *path, int flags) __attribute__((warn_unused_result));

/*
 * fs_trust_uid - sockets owned by @uid pass unix_connect_owned()'s owner
 * checks too (besides the effective user's): a jailed monitor's for the
 * user who started it, root's for the jail users of its VMs
 * (manager/jail.h). Up to FS_TRUSTED_MAX ranges; @count uids from @uid.
 */
#define FS_TRUSTED_MAX 4
void fs_trust_uids(uid_t uid, unsigned int count);

/* fs_uid_trusted - @uid is the effective user's or one fs_trust_uids() added. */
int fs_uid_trusted(uid_t uid);

/* fs_strerror - a message for @err (negative errno) as the functions above use it. */
const char *fs_strerror(int err);

#endif
