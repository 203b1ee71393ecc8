// SPDX-License-Identifier: MIT
/* Switches in the store, spawning a switch, and its control client (switch_store.h). */
#include "switch/switch_store.h"

#include "core/fsutil.h"
#include "manager/monitor.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SWITCH_REQUEST_TIMEOUT_MS 5000
#define SWITCH_REPLY_MAX (16 << 20)

int switch_store_open(const char *home, struct store *sws, bool create, struct mgr_err *err)
{
	int n, r;

	memset(sws, 0, sizeof(*sws));
	n = snprintf(sws->home, sizeof(sws->home), "%s/%s", home, SWITCH_DIR);

	if (n < 0 || (size_t)n >= sizeof(sws->home))
		return mgr_err_set(err, -ENAMETOOLONG, "the switch store path is too long");
	if (!create && access(sws->home, F_OK) < 0 && errno == ENOENT)
		return mgr_err_set(err, -ENOENT, "there are no switches yet ('nestvm switch new')");
	/* Adapters connect to sockets in there: nobody else may place one. */
	r = fs_private_dir(sws->home);
	if (r < 0)
		return mgr_err_set(err, r, "the switch store '%s': %s", sws->home,
		                   r == -EPERM ? "another user could write to it" : fs_strerror(r));
	return 0;
}

int switch_store_dir(const struct store *sws, const char *name, struct mgr_err *err)
{
	char dir[STORE_PATH_MAX];
	struct stat sb;

	if (store_check_name(name, NULL) < 0)
		return mgr_err_set(err, -EINVAL, "invalid switch name");
	if (store_path(sws, name, NULL, dir, sizeof(dir)) < 0)
		return mgr_err_set(err, -ENAMETOOLONG, "the switch store path is too long");
	if (lstat(dir, &sb) < 0 && errno == ENOENT)
		return mgr_err_set(err, -ENOENT, "no switch named '%s' (see 'nestvm switch list')",
		                   name);
	return store_vm_dir(sws, name, err);
}

int switch_store_create(const struct store *sws, struct switch_def *d, struct mgr_err *err)
{
	char dir[STORE_PATH_MAX], file[STORE_PATH_MAX];
	char *text;
	int r;

	r = switch_def_validate(d, err);
	if (r < 0)
		return r;
	if (store_path(sws, d->name, NULL, dir, sizeof(dir)) < 0 ||
	    store_path(sws, d->name, SWITCH_CONTROL_SOCKET, file, sizeof(file)) < 0 ||
	    strlen(file) >= 108 /* sun_path */)
		return mgr_err_set(err, -ENAMETOOLONG,
		                   "switch '%s': its sockets would not fit in a socket path (108 "
		                   "bytes); use a shorter NESTVM_HOME or switch name",
		                   d->name);
	if (store_path(sws, d->name, SWITCH_DEF_FILE, file, sizeof(file)) < 0)
		return -ENAMETOOLONG; /* shorter than control.sock's: cannot happen */
	/* mkdir is the atomic step: of two racing `switch new`s, one gets EEXIST. */
	if (mkdir(dir, 0700) < 0)
		return errno == EEXIST ? mgr_err_set(err, -EEXIST,
		                                     "a switch named '%s' already exists", d->name)
		                       : mgr_err_set(err, -errno, "cannot create '%s': %s", dir,
		                                     strerror(errno));
	text = switch_def_format(d);
	r = text ? store_write_atomic(file, text, strlen(text)) : -ENOMEM;
	free(text);
	if (r < 0) {
		rmdir(dir);
		return mgr_err_set(err, r, "cannot write '%s': %s", file, strerror(-r));
	}
	return 0;
}

int switch_store_read(const struct store *sws, const char *name, const char *file, char **text,
                      size_t *len, struct mgr_err *err)
{
	char dir[STORE_PATH_MAX];
	size_t cap = 4096, got = 0;
	char *buf = NULL;
	int dfd, fd, r = 0;

	*text = NULL;
	*len = 0;
	dfd = switch_store_dir(sws, name, err);
	if (dfd < 0)
		return dfd;
	if (store_path(sws, name, NULL, dir, sizeof(dir)) < 0)
		dir[0] = '\0';
	/* Not through a link, not a FIFO, only the user's own regular file (store.h). */
	fd = store_openat(dfd, dir, file, O_RDONLY, err);
	close(dfd);
	if (fd < 0)
		return fd;
	/*
	 * Root's switch runs as a user of the jail range (switch/confine.h), who
	 * owns the directory and could replace switch.json: a definition names
	 * the tap root makes, so only root's or yours is taken (as vm.json).
	 */
	if (!strcmp(file, SWITCH_DEF_FILE)) {
		struct stat sb;

		if (fstat(fd, &sb) < 0)
			r = mgr_err_set(err, -errno, "%s/%s: %s", dir, file, strerror(errno));
		else if (sb.st_uid != 0 && sb.st_uid != geteuid())
			r = mgr_err_set(err, -EPERM,
			                "%s/%s is owned by uid %u (the switch's user?), not by you "
			                "or root: nestvm does not take a definition from it",
			                dir, file, (unsigned int)sb.st_uid);
		if (r < 0) {
			close(fd);
			return r;
		}
	}
	for (;;) {
		ssize_t n;

		if (got + 1 >= cap || !buf) {
			char *nb = cap <= STORE_MAX_FILE ? realloc(buf, cap *= 2) : NULL;

			if (!nb) {
				r = mgr_err_set(err, buf ? -EFBIG : -ENOMEM,
				                "%s/%s: larger than 1 MiB", dir, file);
				break;
			}
			buf = nb;
		}
		n = read(fd, buf + got, cap - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = mgr_err_set(err, -errno, "%s/%s: %s", dir, file, strerror(errno));
			break;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	if (r < 0) {
		free(buf);
		return r;
	}
	buf[got] = '\0';
	*text = buf;
	*len = got;
	return 0;
}

int switch_store_load(const struct store *sws, const char *name, struct switch_def *d,
                      struct mgr_err *err)
{
	char file[STORE_PATH_MAX], *text = NULL;
	size_t len;
	int r;

	/* "No such switch" first, then "no definition" for a directory without one. */
	r = switch_store_dir(sws, name, err);
	if (r < 0)
		return r;
	close(r);
	if (store_path(sws, name, SWITCH_DEF_FILE, file, sizeof(file)) < 0)
		return mgr_err_set(err, -ENAMETOOLONG, "the switch store path is too long");
	r = switch_store_read(sws, name, SWITCH_DEF_FILE, &text, &len, err);
	if (r == -ENOENT)
		return mgr_err_set(err, -EINVAL,
		                   "%s: missing: switch '%s' has no definition "
		                   "('nestvm switch remove %s')",
		                   file, name, name);
	if (r < 0)
		return r;
	r = switch_def_parse(text, len, file, d, err);
	free(text);
	if (r == 0 && strcmp(d->name, name))
		r = mgr_err_set(err, -EINVAL, "%s: field 'name' does not match the directory '%s'",
		                file, name);
	return r;
}

int switch_store_lock(const struct store *sws, const char *name, struct mgr_err *err)
{
	int fd = store_lock_acquire(sws, name, STORE_LOCK_RUN, 0, err);

	if (fd == -EBUSY)
		mgr_err_set(err, -EBUSY, "switch '%s' is running (or being removed)", name);
	return fd;
}

int switch_store_running(const struct store *sws, const char *name)
{
	return store_lock_held(sws, name, STORE_LOCK_RUN) > 0;
}

/* ---- spawning ---- */

/* Keep one old log: switch.log.1. Returns the log's descriptor (O_APPEND) or -errno. */
static int switch_log_open(const struct store *sws, const char *name, struct mgr_err *err)
{
	char dir[STORE_PATH_MAX];
	struct stat sb;
	int dfd, fd;

	dfd = switch_store_dir(sws, name, err);
	if (dfd < 0)
		return dfd;
	if (store_path(sws, name, NULL, dir, sizeof(dir)) < 0)
		dir[0] = '\0';
	fd = store_openat(dfd, dir, SWITCH_LOG_FILE, O_WRONLY | O_CREAT | O_APPEND, err);
	if (fd >= 0 && fstat(fd, &sb) == 0 && sb.st_size > SWITCH_LOG_MAX &&
	    renameat(dfd, SWITCH_LOG_FILE, dfd, SWITCH_LOG_FILE ".1") == 0) {
		close(fd);
		fd = store_openat(dfd, dir, SWITCH_LOG_FILE, O_WRONLY | O_CREAT | O_APPEND, err);
	}
	close(dfd);
	return fd;
}

/* The grandchild: become `nestvm switch serve`. Never returns. */
static void switch_exec(const char *exe, const char *home, const char *name, int ready_fd,
                        int log_fd)
{
	char ready_arg[16];
	char *argv[] = {"nestvm",     "switch",  "serve", "--home",     (char *)home,
	                "--ready-fd", ready_arg, "--",    (char *)name, NULL};
	int null = open("/dev/null", O_RDONLY | O_CLOEXEC);

	if (null < 0 || dup2(null, STDIN_FILENO) < 0 || dup2(log_fd, STDOUT_FILENO) < 0 ||
	    dup2(log_fd, STDERR_FILENO) < 0)
		_exit(127);
	/* Nothing of the caller's (a monitor's disks and sockets) goes on to the switch. */
	if (monitor_close_fds(STDERR_FILENO + 1, &ready_fd, 1) < 0 ||
	    fcntl(ready_fd, F_SETFD, 0) < 0)
		_exit(127);
	snprintf(ready_arg, sizeof(ready_arg), "%d", ready_fd);
	execv(exe, argv);
	_exit(127);
}

int switch_spawn(const char *home, const char *name, pid_t *pid, struct mgr_err *err)
{
	char exe[PATH_MAX], msg[128] = "", log[STORE_PATH_MAX], tail[1024];
	int ready[2] = {-1, -1}, log_fd, r = 0;
	struct switch_def d;
	struct store sws = {0};
	size_t got = 0;
	ssize_t len;
	pid_t child;

	*pid = 0;
	r = switch_store_open(home, &sws, false, err);
	if (r < 0)
		return r;
	/* A switch that is not defined, or whose definition is broken, is not started. */
	r = switch_store_load(&sws, name, &d, err);
	if (r < 0)
		return r;
	if (switch_store_running(&sws, name))
		return 0;
	len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (len < 0)
		return mgr_err_set(err, -errno, "cannot find the nestvm binary: %s",
		                   strerror(errno));
	exe[len] = '\0';
	log_fd = switch_log_open(&sws, name, err);
	if (log_fd < 0)
		return log_fd;
	if (pipe2(ready, O_CLOEXEC) < 0) {
		r = mgr_err_set(err, -errno, "pipe: %s", strerror(errno));
		goto out;
	}
	child = fork();
	if (child < 0) {
		r = mgr_err_set(err, -errno, "fork: %s", strerror(errno));
		goto out;
	}
	if (child == 0) {
		/* Own session, then fork again: the switch is no one's child and outlives VMs. */
		if (setsid() < 0)
			_exit(127);
		child = fork();
		if (child == 0)
			switch_exec(exe, home, name, ready[1], log_fd);
		_exit(child < 0 ? 127 : 0);
	}
	close(ready[1]);
	ready[1] = -1;
	while (waitpid(child, NULL, 0) < 0 && errno == EINTR)
		;
	for (;;) {
		struct pollfd p = {.fd = ready[0], .events = POLLIN};
		int pr = poll(&p, 1, SWITCH_START_TIMEOUT_MS);

		if (pr < 0 && errno == EINTR)
			continue;
		if (pr <= 0) {
			r = -ETIMEDOUT;
			break;
		}
		len = read(ready[0], msg + got, sizeof(msg) - 1 - got);
		if (len < 0 && errno == EINTR)
			continue;
		if (len <= 0)
			break;
		got += (size_t)len;
		msg[got] = '\0';
		if (strchr(msg, '\n') || got == sizeof(msg) - 1)
			break;
	}
	if (r == 0 && !strncmp(msg, "ok ", 3)) {
		*pid = (pid_t)atoi(msg + 3);
		goto out;
	}
	if (r == 0 && !strcmp(msg, "running\n"))
		goto out; /* another spawner won the race: that one is the switch */
	if (store_path(&sws, name, SWITCH_LOG_FILE, log, sizeof(log)) < 0)
		log[0] = '\0';
	store_log_tail(log, 4, tail, sizeof(tail));
	r = mgr_err_set(err, r == -ETIMEDOUT ? -ETIMEDOUT : -EIO,
	                "switch '%s' did not start%s; the end of %s:\n%s", name,
	                r == -ETIMEDOUT ? " within 10 s" : "", log, tail[0] ? tail : "(nothing)");
out:
	if (ready[0] >= 0)
		close(ready[0]);
	close(log_fd);
	return r;
}

/* ---- the control client ---- */

json_t *switch_request(const struct store *sws, const char *name, json_t *req, struct mgr_err *err)
{
	char path[STORE_PATH_MAX], *text, *buf = NULL;
	size_t got = 0, cap = 0;
	json_t *reply = NULL, *result = NULL;
	int fd, r;

	if (store_path(sws, name, SWITCH_CONTROL_SOCKET, path, sizeof(path)) < 0) {
		mgr_err_set(err, -ENAMETOOLONG, "the switch store path is too long");
		return NULL;
	}
	fd = unix_connect_owned(path, SOCK_CLOEXEC);
	if (fd < 0) {
		mgr_err_set(err, fd, "switch '%s' is not running (%s: %s)", name, path,
		            fs_strerror(fd));
		return NULL;
	}
	text = json_dumps(req, JSON_COMPACT);
	r = text ? 0 : -ENOMEM;
	if (r == 0) {
		size_t n = strlen(text);

		text[n] = '\n'; /* json_dumps's NUL becomes the line's end */
		r = send(fd, text, n + 1, MSG_NOSIGNAL) == (ssize_t)(n + 1) ? 0 : -EIO;
		free(text);
	}
	while (r == 0) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t n;

		if (got + 65536 > cap) {
			char *nb;

			cap = cap ? cap * 2 : 262144;
			nb = cap <= SWITCH_REPLY_MAX ? realloc(buf, cap + 1) : NULL;
			if (!nb) {
				r = -EFBIG;
				break;
			}
			buf = nb;
		}
		if (poll(&p, 1, SWITCH_REQUEST_TIMEOUT_MS) <= 0) {
			r = -ETIMEDOUT;
			break;
		}
		n = recv(fd, buf + got, cap - got, 0);
		if (n <= 0) {
			r = n < 0 ? -errno : -ECONNRESET;
			break;
		}
		got += (size_t)n;
		if (memchr(buf + got - n, '\n', (size_t)n))
			break;
	}
	close(fd);
	if (r < 0) {
		free(buf);
		mgr_err_set(err, r, "switch '%s': no answer: %s", name, strerror(-r));
		return NULL;
	}
	reply = json_loadb(buf, got, 0, NULL);
	free(buf);
	if (json_is_true(json_object_get(reply, "ok"))) {
		result = json_incref(json_object_get(reply, "result"));
	} else {
		const char *m =
		    json_string_value(json_object_get(json_object_get(reply, "error"), "message"));

		mgr_err_set(err, -EIO, "switch '%s': %s", name, m ? m : "bad reply");
	}
	json_decref(reply);
	return result;
}
