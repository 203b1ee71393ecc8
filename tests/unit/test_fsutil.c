/* SPDX-License-Identifier: MIT */
/*
 * Unit tests: core/fsutil, the files and UNIX sockets nestvm creates or
 * reads (issue 9 rows 2, 4, 5, 6, 8), in a fresh directory under /tmp. The
 * cases with "another user" need root (they use uid/gid 65534, nobody) and
 * are skipped otherwise. An alarm guards every case: an open that blocks
 * fails the test instead of hanging it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "core/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define NOBODY 65534
#define CASE_TIMEOUT_S 10

static char dir[64];
static pid_t child = -1; /* a helper process of the current case, killed in teardown */

static const char *at(const char *name)
{
	static char buf[4][128];
	static unsigned int next;
	char *b = buf[next++ % 4];

	snprintf(b, sizeof(buf[0]), "%s/%s", dir, name);
	return b;
}

static void put(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static off_t size_of(const char *path)
{
	struct stat st;

	assert_int_equal(lstat(path, &st), 0);
	return st.st_size;
}

static void on_alarm(int sig)
{
	(void)sig;
	static const char msg[] = "test_fsutil: a case blocked for 10 s\n";

	if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0)
		_exit(3);
	_exit(2);
}

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/nestvm-test-fsutil.XXXXXX");
	assert_non_null(mkdtemp(dir));
	signal(SIGALRM, on_alarm);
	alarm(CASE_TIMEOUT_S);
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	alarm(0);
	if (child > 0) {
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
		child = -1;
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

/* A plain bound socket at @path, listening if @live, else closed (stale). */
static int raw_socket(const char *path, bool live)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	if (!live) {
		close(fd);
		return -1;
	}
	assert_int_equal(listen(fd, 4), 0);
	return fd;
}

static bool can_connect(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

/* ---- fs_create_file ---- */

static void test_create_new(void **state)
{
	mode_t old = umask(0);
	struct stat st;
	int fd;

	(void)state;
	fd = fs_create_file(at("new"), 0600, FS_TRUNC);
	umask(old);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "abc", 3), 3);
	assert_false(fcntl(fd, F_GETFL) & O_NONBLOCK);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	close(fd);
	assert_int_equal(lstat(at("new"), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600); /* the mode asked for, not the umask's */
	assert_int_equal(st.st_size, 3);
}

static void test_create_existing_own(void **state)
{
	int fd;

	(void)state;
	put(at("log"), "previous run\n");
	fd = fs_create_file(at("log"), 0644, FS_APPEND);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "x", 1), 1);
	close(fd);
	assert_int_equal(size_of(at("log")), 14); /* appended */
	fd = fs_create_file(at("log"), 0644, FS_TRUNC | FS_APPEND);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(size_of(at("log")), 0); /* ours: emptied */
}

/* Row 2: --console file:PATH through another user's symlink. */
static void test_create_symlink_refused(void **state)
{
	(void)state;
	put(at("victim"), "precious\n");
	assert_int_equal(symlink(at("victim"), at("c.log")), 0);
	assert_int_equal(fs_create_file(at("c.log"), 0644, FS_TRUNC), -ELOOP);
	assert_int_equal(size_of(at("victim")), 9);
	/* A dangling symlink must not create its target either. */
	assert_int_equal(symlink(at("target"), at("dangling")), 0);
	assert_int_equal(fs_create_file(at("dangling"), 0644, FS_TRUNC), -ELOOP);
	assert_int_equal(access(at("target"), F_OK), -1);
}

static void test_create_hardlink_refused(void **state)
{
	(void)state;
	put(at("victim"), "precious\n");
	assert_int_equal(link(at("victim"), at("c.log")), 0);
	assert_int_equal(fs_create_file(at("c.log"), 0644, FS_TRUNC), -EPERM);
	assert_int_equal(size_of(at("victim")), 9);
}

static void test_create_foreign_refused(void **state)
{
	(void)state;
	if (geteuid() != 0)
		skip(); /* needs root to give a file to another user */
	put(at("theirs"), "their data\n");
	assert_int_equal(chown(at("theirs"), NOBODY, NOBODY), 0);
	assert_int_equal(fs_create_file(at("theirs"), 0644, FS_TRUNC), -EPERM);
	assert_int_equal(size_of(at("theirs")), 11);
}

static void test_create_special_refused(void **state)
{
	(void)state;
	/* A FIFO without a reader: refused at once, not waited on. */
	assert_int_equal(mkfifo(at("fifo"), 0600), 0);
	assert_int_equal(fs_create_file(at("fifo"), 0644, FS_TRUNC), -EEXIST);
	assert_int_equal(mkdir(at("dir"), 0700), 0);
	assert_int_equal(fs_create_file(at("dir"), 0644, FS_TRUNC), -EEXIST);
	assert_int_equal(fs_create_file("/dev/null", 0644, 0), -EEXIST);
	assert_int_equal(fs_create_file(at("missing/x"), 0644, 0), -ENOENT);
}

/* ---- fs_open_input ---- */

/* Row 8: a FIFO (or anything but a file or block device) as kernel, initrd or disk. */
static void test_open_input(void **state)
{
	struct stat st;
	int fd;

	(void)state;
	put(at("kernel"), "bzImage");
	fd = fs_open_input(at("kernel"), O_RDONLY, &st);
	assert_true(fd >= 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_size, 7);
	assert_false(fcntl(fd, F_GETFL) & O_NONBLOCK); /* blocking again */
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	close(fd);
	fd = fs_open_input(at("kernel"), O_RDWR, NULL);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "X", 1), 1);
	close(fd);
	/* A symlink the user names is followed. */
	assert_int_equal(symlink(at("kernel"), at("link")), 0);
	fd = fs_open_input(at("link"), O_RDONLY, NULL);
	assert_true(fd >= 0);
	close(fd);

	assert_int_equal(mkfifo(at("fifo"), 0600), 0);
	assert_int_equal(fs_open_input(at("fifo"), O_RDONLY, NULL), -EINVAL);
	assert_int_equal(fs_open_input(at("fifo"), O_RDWR, NULL), -EINVAL);
	assert_int_equal(fs_open_input(dir, O_RDONLY, NULL), -EINVAL);
	assert_int_equal(fs_open_input("/dev/null", O_RDONLY, NULL), -EINVAL);
	assert_int_equal(fs_open_input(at("missing"), O_RDONLY, NULL), -ENOENT);
	raw_socket(at("sock"), false);
	assert_true(fs_open_input(at("sock"), O_RDONLY, NULL) < 0);
}

/* ---- fs_private_dir ---- */

static void test_private_dir(void **state)
{
	mode_t old = umask(0);
	struct stat st;
	int r;

	(void)state;
	r = fs_private_dir(at("run"));
	umask(old);
	assert_int_equal(r, 0);
	assert_int_equal(lstat(at("run"), &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0700);
	assert_int_equal(fs_private_dir(at("run")), 0); /* again: fine */

	assert_int_equal(mkdir(at("open"), 0700), 0);
	assert_int_equal(chmod(at("open"), 0777), 0);
	assert_int_equal(fs_private_dir(at("open")), -EPERM);
	assert_int_equal(symlink(at("run"), at("link")), 0);
	assert_int_equal(fs_private_dir(at("link")), -ELOOP);
	put(at("file"), "x");
	assert_int_equal(fs_private_dir(at("file")), -ENOTDIR);
	/* A parent anyone may write to (not sticky): someone could swap the directory. */
	assert_int_equal(chmod(at("open"), 0777), 0);
	assert_int_equal(fs_private_dir(at("open/sub")), -EPERM);
	assert_int_equal(chmod(at("open"), 01777), 0);
	assert_int_equal(fs_private_dir(at("open/sub")), 0);
	if (geteuid() == 0) {
		assert_int_equal(mkdir(at("theirs"), 0700), 0);
		assert_int_equal(chown(at("theirs"), NOBODY, NOBODY), 0);
		assert_int_equal(fs_private_dir(at("theirs")), -EPERM);
	}
}

/* ---- unix_listen ---- */

/* Row 5: the mode is explicit, whatever the umask. */
static void test_listen_mode(void **state)
{
	mode_t old = umask(0);
	struct stat st;
	int fd;

	(void)state;
	fd = unix_listen(at("vc.sock"), 0600, 4);
	umask(old);
	assert_true(fd >= 0);
	assert_int_equal(lstat(at("vc.sock"), &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
	assert_true(can_connect(at("vc.sock")));
	close(fd);
}

/* Row 6: a live socket is left alone; the same path twice is refused. */
static void test_listen_live_kept(void **state)
{
	int live, fd;

	(void)state;
	live = raw_socket(at("live.sock"), true);
	assert_int_equal(unix_listen(at("live.sock"), 0600, 4), -EADDRINUSE);
	assert_true(can_connect(at("live.sock"))); /* still the service's */
	close(live);

	fd = unix_listen(at("twice.sock"), 0600, 4);
	assert_true(fd >= 0);
	assert_int_equal(unix_listen(at("twice.sock"), 0600, 4), -EADDRINUSE);
	close(fd);
}

static void test_listen_stale_replaced(void **state)
{
	int fd;

	(void)state;
	raw_socket(at("stale.sock"), false); /* a nestvm that died */
	fd = unix_listen(at("stale.sock"), 0600, 4);
	assert_true(fd >= 0);
	assert_true(can_connect(at("stale.sock")));
	close(fd);
}

static void test_listen_other_files_kept(void **state)
{
	(void)state;
	put(at("file.sock"), "data");
	assert_int_equal(unix_listen(at("file.sock"), 0600, 4), -EEXIST);
	assert_int_equal(size_of(at("file.sock")), 4);
	raw_socket(at("real.sock"), false);
	assert_int_equal(symlink(at("real.sock"), at("link.sock")), 0);
	assert_int_equal(unix_listen(at("link.sock"), 0600, 4), -ELOOP);
	assert_int_equal(access(at("real.sock"), F_OK), 0);
	assert_int_equal(mkfifo(at("fifo.sock"), 0600), 0);
	assert_int_equal(unix_listen(at("fifo.sock"), 0600, 4), -EEXIST);
	if (geteuid() == 0) {
		/* Another user's stale socket is theirs to remove. */
		raw_socket(at("theirs.sock"), false);
		assert_int_equal(chown(at("theirs.sock"), NOBODY, NOBODY), 0);
		assert_int_equal(unix_listen(at("theirs.sock"), 0600, 4), -EPERM);
		assert_int_equal(access(at("theirs.sock"), F_OK), 0);
	}
	assert_int_equal(unix_listen(at("missing/x.sock"), 0600, 4), -ENOENT);
}

static void test_listen_long_path(void **state)
{
	char path[200];

	(void)state;
	memset(path, 'a', sizeof(path) - 1);
	path[0] = '/';
	path[sizeof(path) - 1] = '\0';
	assert_int_equal(unix_listen(path, 0600, 4), -ENAMETOOLONG);
	assert_int_equal(unix_connect_owned(path, 0), -ENAMETOOLONG);
}

/* ---- unix_connect_owned ---- */

static void test_connect_owned(void **state)
{
	int lfd, fd;

	(void)state;
	lfd = unix_listen(at("own.sock"), 0600, 4);
	assert_true(lfd >= 0);
	fd = unix_connect_owned(at("own.sock"), SOCK_NONBLOCK | SOCK_CLOEXEC);
	assert_true(fd >= 0);
	assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
	close(fd);
	assert_int_equal(symlink(at("own.sock"), at("link.sock")), 0);
	assert_int_equal(unix_connect_owned(at("link.sock"), SOCK_CLOEXEC), -ELOOP);
	put(at("file"), "x");
	assert_int_equal(unix_connect_owned(at("file"), SOCK_CLOEXEC), -ENOTSOCK);
	assert_int_equal(unix_connect_owned(at("none.sock"), SOCK_CLOEXEC), -ENOENT);
	raw_socket(at("stale.sock"), false);
	assert_int_equal(unix_connect_owned(at("stale.sock"), SOCK_CLOEXEC), -ECONNREFUSED);
	close(lfd);
}

/* Row 4: a listener of another user must not receive the guest's connections. */
static void test_connect_foreign_refused(void **state)
{
	int lfd, ready[2];
	char c;

	(void)state;
	if (geteuid() != 0)
		skip(); /* needs root to act as another user */
	lfd = raw_socket(at("theirs.sock"), true);
	assert_int_equal(chown(at("theirs.sock"), NOBODY, NOBODY), 0);
	assert_int_equal(unix_connect_owned(at("theirs.sock"), SOCK_CLOEXEC), -EPERM);
	close(lfd);

	/* A file owned by us but a listener that runs as nobody: SO_PEERCRED tells. */
	assert_int_equal(chmod(dir, 0711), 0); /* nobody may pass through */
	assert_int_equal(mkdir(at("pub"), 0777), 0);
	assert_int_equal(chmod(at("pub"), 0777), 0);
	assert_int_equal(pipe(ready), 0);
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		struct sockaddr_un sa = {.sun_family = AF_UNIX};
		int fd;

		close(ready[0]);
		/* setuid() clears the death signal: ask for it afterwards. */
		if (setgid(NOBODY) < 0 || setuid(NOBODY) < 0 ||
		    prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() == 1)
			_exit(1);
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/pub/spoof.sock", dir);
		if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4) < 0)
			_exit(1);
		if (write(ready[1], "r", 1) != 1)
			_exit(1);
		pause(); /* killed by teardown, or when the test dies */
		_exit(0);
	}
	close(ready[1]);
	assert_int_equal(read(ready[0], &c, 1), 1);
	close(ready[0]);
	assert_int_equal(chown(at("pub/spoof.sock"), 0, 0), 0);
	assert_int_equal(unix_connect_owned(at("pub/spoof.sock"), SOCK_CLOEXEC), -EPERM);
}

/* Kept from before a jail: later opens of the path get the same file, checks and all. */
static void test_preopen(void **state)
{
	char buf[8] = "";
	struct stat st;
	int fd;

	(void)state;
	put(at("kernel"), "kernel");
	assert_int_equal(mkfifo(at("fifo"), 0600), 0);
	assert_int_equal(fs_preopen(at("fifo"), O_RDONLY), -EINVAL);
	/* The error is kept too: a later open says what it was, whatever the path is now. */
	assert_int_equal(unlink(at("fifo")), 0);
	put(at("fifo"), "now a file");
	assert_int_equal(fs_open_input(at("fifo"), O_RDONLY, NULL), -EINVAL);
	assert_int_equal(fs_reopen(at("fifo"), O_RDONLY), -EINVAL);
	assert_int_equal(fs_preopen(at("kernel"), O_RDONLY), 0);
	assert_int_equal(fs_preopen(at("kernel"), O_RDONLY), 0); /* kept once */
	/* Gone from the path (as outside a jail's namespace): still there for nestvm. */
	assert_int_equal(rename(at("kernel"), at("moved")), 0);
	fd = fs_open_input(at("kernel"), O_RDONLY, &st);
	assert_true(fd >= 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(pread(fd, buf, 6, 0), 6);
	assert_string_equal(buf, "kernel");
	close(fd);
	fd = fs_reopen(at("kernel"), O_RDONLY);
	assert_true(fd >= 0);
	close(fd);
	/* Read-only kept: a read-write open goes to the path, which is gone. */
	assert_int_equal(fs_open_input(at("kernel"), O_RDWR, NULL), -ENOENT);
	/* A character device or /proc file: FS_PREOPEN_ANY (here a regular file). */
	put(at("any"), "x");
	assert_int_equal(fs_preopen(at("any"), O_RDWR | FS_PREOPEN_ANY), 0);
	assert_int_equal(unlink(at("any")), 0);
	fd = fs_reopen(at("any"), O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(fcntl(fd, F_GETFL) & (O_ACCMODE | O_NONBLOCK), O_RDWR);
	close(fd);
}

/* A listener made before a jail serves the later unix_listen() of its path. */
static void test_prelisten(void **state)
{
	int lfd, cfd, afd;

	(void)state;
	assert_int_equal(fs_prelisten(at("pre.sock"), SOCK_STREAM, 0600, 4), 0);
	lfd = unix_listen(at("pre.sock"), 0600, 4);
	assert_true(lfd >= 0);
	cfd = unix_connect_owned(at("pre.sock"), SOCK_CLOEXEC);
	assert_true(cfd >= 0);
	afd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	assert_true(afd >= 0);
	close(afd);
	close(cfd);
	close(lfd);
	/* Another type at the same path is not the kept one. */
	assert_int_equal(unix_listen_type(at("pre.sock"), SOCK_SEQPACKET, 0600, 4), -EEXIST);
}

/* fs_trust_uids(): a jailed monitor's socket, owned by its VM's uid, for root's nestvm. */
static void test_trust_uids(void **state)
{
	const uid_t jailed = 65533;
	int lfd, fd;

	(void)state;
	if (geteuid() != 0)
		skip(); /* needs root to give the socket away */
	lfd = unix_listen(at("jailed.sock"), 0600, 4);
	assert_true(lfd >= 0);
	assert_int_equal(chown(at("jailed.sock"), jailed, jailed), 0);
	assert_int_equal(unix_connect_owned(at("jailed.sock"), SOCK_CLOEXEC), -EPERM);
	assert_false(fs_uid_trusted(jailed));
	fs_trust_uids(jailed, 1);
	assert_true(fs_uid_trusted(jailed));
	assert_false(fs_uid_trusted(jailed + 1));
	fd = unix_connect_owned(at("jailed.sock"), SOCK_CLOEXEC);
	assert_true(fd >= 0);
	close(fd);
	close(lfd);
}

static void test_strerror(void **state)
{
	(void)state;
	assert_non_null(strstr(fs_strerror(-ELOOP), "symbolic link"));
	assert_non_null(strstr(fs_strerror(-EINVAL), "not a regular file or block device"));
	assert_non_null(strstr(fs_strerror(-EADDRINUSE), "listening"));
	assert_string_equal(fs_strerror(-ENOENT), strerror(ENOENT));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_create_new, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_create_existing_own, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_create_symlink_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_create_hardlink_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_create_foreign_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_create_special_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_open_input, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_private_dir, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_listen_mode, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_listen_live_kept, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_listen_stale_replaced, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_listen_other_files_kept, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_listen_long_path, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_connect_owned, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_connect_foreign_refused, setup, teardown),
	    cmocka_unit_test(test_strerror),
	    cmocka_unit_test_setup_teardown(test_preopen, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_prelisten, setup, teardown),
	    /* Last: the trust it adds lasts for the process. */
	    cmocka_unit_test_setup_teardown(test_trust_uids, setup, teardown),
	};

	return cmocka_run_group_tests_name("fsutil", tests, NULL, NULL);
}
