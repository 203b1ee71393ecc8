/* SPDX-License-Identifier: MIT */
/*
 * PUT and GET: files into and out of the guest (docs/agent.md). A file put
 * is written to a temporary file next to its target and renamed over it
 * once complete and synced, so a transfer cut short leaves the old file (or
 * none), never half of one. Data moves under the same credit as EXEC's.
 */
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A name PUT may add to a directory: one path component, not "." or "..". */
static bool agent_name_ok(const char *s)
{
	return s && s[0] && !strchr(s, '/') && strcmp(s, ".") && strcmp(s, "..");
}

static int agent_put_fail(struct agent_conn *c, int r, const char *what, const char *path)
{
	int s = agent_send(c, agent_msg_error(&c->tx, -r, "%s '%s': %s", what, path, strerror(-r)));

	return s < 0 ? s : r;
}

/* Write all of @len bytes at @p to @fd; 0 or -errno. */
static int agent_write_all(int fd, const uint8_t *p, size_t len)
{
	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Receive DATA frames into @fd until the empty one; *@total counts the bytes. */
static int agent_put_receive(struct agent_conn *c, int fd, uint64_t *total)
{
	uint32_t outstanding = 0, done = 0;
	struct agent_frame f;
	int r;

	for (;;) {
		r = agent_conn_recv(c, &f, -1);
		if (r <= 0)
			return r ? r : -ECONNRESET;
		if (f.type != AGENT_DATA)
			return -EPROTO;
		if (!f.len)
			return 0;
		if (f.len > AGENT_WINDOW - outstanding)
			return -EPROTO;
		outstanding += f.len;
		r = agent_write_all(fd, f.payload, f.len);
		if (r < 0)
			return r;
		*total += f.len;
		done += f.len;
		if (done >= AGENT_WINDOW / 4) {
			outstanding -= done;
			r = agent_msg_u32(&c->tx, AGENT_CREDIT, done);
			done = 0;
			if (r < 0)
				return r;
		}
	}
}

int agent_file_put(struct agent_conn *c, const struct agent_file_req *req, uint32_t host_window)
{
	char target[PATH_MAX], tmp[PATH_MAX], dirbuf[PATH_MAX], basebuf[PATH_MAX];
	uint64_t total = 0;
	struct stat st;
	int fd, r, n;

	(void)host_window;
	if (stat(req->path, &st) == 0 && S_ISDIR(st.st_mode)) {
		if (!agent_name_ok(req->name))
			return agent_put_fail(c, -EISDIR, "PUT: no file name for the directory",
			                      req->path);
		n = snprintf(target, sizeof(target), "%s/%s", req->path, req->name);
	} else {
		n = snprintf(target, sizeof(target), "%s", req->path);
	}
	if (n < 0 || (size_t)n >= sizeof(target))
		return agent_put_fail(c, -ENAMETOOLONG, "PUT", req->path);
	snprintf(dirbuf, sizeof(dirbuf), "%s", target);
	snprintf(basebuf, sizeof(basebuf), "%s", target);
	n = snprintf(tmp, sizeof(tmp), "%s/.%s.nestvm-XXXXXX", dirname(dirbuf), basename(basebuf));
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return agent_put_fail(c, -ENAMETOOLONG, "PUT", target);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return agent_put_fail(c, -errno, "cannot create a file next to", target);
	r = agent_put_receive(c, fd, &total);
	if (r == 0 && total != req->size)
		r = -EPIPE;
	if (r == 0 && (fchmod(fd, req->mode & 0777) < 0 || fsync(fd) < 0))
		r = -errno;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && rename(tmp, target) < 0)
		r = -errno;
	if (r < 0) {
		unlink(tmp);
		if (r == -ECONNRESET)
			return r;
		if (r == -EPIPE) {
			int s = agent_send(
			    c, agent_msg_error(&c->tx, EPIPE,
			                       "PUT '%s': %llu bytes received, %llu announced",
			                       target, (unsigned long long)total,
			                       (unsigned long long)req->size));

			return s < 0 ? s : r;
		}
		if (r == -EPROTO || r == -EMSGSIZE)
			return agent_refuse_frame(c, r);
		return agent_put_fail(c, r, "PUT", target);
	}
	return agent_send(c, agent_msg_ok(&c->tx, total));
}

/* One CREDIT frame from the host: 0, or -EPROTO for anything else or too much. */
static int agent_get_on_frame(const struct agent_frame *f, uint32_t *credit, uint32_t window)
{
	uint32_t v;

	if (f->type != AGENT_CREDIT || agent_parse_u32(f, &v) < 0 || v > window - *credit)
		return -EPROTO;
	*credit += v;
	return 0;
}

/* Take in the CREDIT frames the host has sent; wait for one while @credit is 0. */
static int agent_get_credit(struct agent_conn *c, uint32_t *credit, uint32_t window)
{
	struct agent_frame f;
	ssize_t n;
	int r;

	for (;;) {
		while ((r = agent_conn_next(c, &f)) > 0) {
			r = agent_get_on_frame(&f, credit, window);
			if (r < 0)
				return r;
		}
		if (r < 0)
			return r;
		n = agent_conn_fill(c);
		if (n > 0)
			continue;
		if (n == 0)
			return -ECONNRESET;
		if (n != -EAGAIN)
			return (int)n;
		if (*credit)
			return 0;
		/* Out of credit: send what is queued and wait for the host. */
		r = agent_conn_recv(c, &f, -1);
		if (r <= 0)
			return r ? r : -ECONNRESET;
		r = agent_get_on_frame(&f, credit, window);
		if (r < 0)
			return r;
	}
}

int agent_file_get(struct agent_conn *c, const struct agent_file_req *req, uint32_t host_window)
{
	uint8_t buf[AGENT_DATA_MAX];
	uint32_t credit = host_window;
	uint64_t total = 0;
	struct stat st;
	int fd, r;

	fd = open(req->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return agent_put_fail(c, -errno, "GET", req->path);
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return agent_put_fail(c, S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL,
		                      "GET: not a regular file:", req->path);
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	r = agent_msg_file(&c->tx, st.st_mode & 07777, (uint64_t)st.st_size);
	while (r == 0) {
		ssize_t n;

		r = agent_get_credit(c, &credit, host_window);
		if (r < 0)
			break;
		n = read(fd, buf, credit < sizeof(buf) ? credit : sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			break;
		}
		r = agent_msg_data(&c->tx, AGENT_DATA, buf, (size_t)n);
		if (n == 0 || r < 0)
			break;
		credit -= (uint32_t)n;
		total += (uint64_t)n;
		r = agent_conn_flush(c);
		r = r == -EAGAIN ? 0 : r;
	}
	close(fd);
	if (r == 0)
		return agent_send(c, agent_msg_ok(&c->tx, total));
	if (r == -EPROTO || r == -EMSGSIZE)
		return agent_refuse_frame(c, r);
	if (r == -ECONNRESET || r == -EPIPE)
		return r;
	return agent_put_fail(c, r, "GET", req->path);
}
