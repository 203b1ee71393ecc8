/* SPDX-License-Identifier: MIT */
/*
 * The host's end of PUT and GET (host.h, docs/agent.md). A file got from the
 * guest is written to a new temporary file next to its target (O_EXCL, so
 * no symbolic link or someone else's file is followed) and renamed over the
 * target when complete, as the agent does with a file put.
 */
#include "agent/host.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HOST_FILE_MS 60000 /* the agent's answers during a transfer */

/* The agent's ERROR (or anything unexpected) as @err; returns -errno. */
static int host_file_error(struct agent_host *h, const struct agent_frame *f, const char *what,
                           struct mgr_err *err)
{
	struct agent_error e;

	if (f->type == AGENT_ERROR && agent_parse_error(f, &e) == 0)
		return mgr_err_set(err, -(e.code > 0 ? e.code : EPROTO), "%s: %s", h->what, e.msg);
	return mgr_err_set(err, -EPROTO, "%s: %s: unexpected %s frame from the agent", h->what,
	                   what, agent_type_name(f->type));
}

static int host_recv(struct agent_host *h, struct agent_frame *f, const char *what,
                     struct mgr_err *err)
{
	int r = agent_conn_recv(&h->c, f, HOST_FILE_MS);

	if (r > 0)
		return 0;
	if (r == 0)
		r = -ECONNRESET;
	return mgr_err_set(err, r, "%s: %s: %s", h->what, what,
	                   r == -ECONNRESET  ? "the agent closed the connection"
	                   : r == -ETIMEDOUT ? "the agent stopped answering"
	                                     : strerror(-r));
}

/* A frame during a PUT: CREDIT adds to *@credit; an ERROR (or anything else) ends it. */
static int host_put_frame(struct agent_host *h, const struct agent_frame *f, uint32_t *credit,
                          struct mgr_err *err)
{
	uint32_t v;

	if (f->type != AGENT_CREDIT || agent_parse_u32(f, &v) < 0 || v > h->window - *credit)
		return host_file_error(h, f, "PUT", err);
	*credit += v;
	return 0;
}

/* Take what the agent sent during a PUT; wait for credit while *@credit is 0. */
static int host_put_frames(struct agent_host *h, uint32_t *credit, struct mgr_err *err)
{
	struct agent_frame f;
	ssize_t n;
	int r;

	for (;;) {
		while ((r = agent_conn_next(&h->c, &f)) > 0) {
			r = host_put_frame(h, &f, credit, err);
			if (r < 0)
				return r;
		}
		if (r < 0)
			return mgr_err_set(err, r, "%s: malformed frame from the agent", h->what);
		n = agent_conn_fill(&h->c);
		if (n > 0)
			continue;
		if (n == 0)
			return mgr_err_set(err, -ECONNRESET, "%s: the agent closed the connection",
			                   h->what);
		if (n != -EAGAIN)
			return mgr_err_set(err, (int)n, "%s: %s", h->what, strerror((int)-n));
		if (*credit)
			return 0;
		r = host_recv(h, &f, "PUT", err);
		if (r == 0)
			r = host_put_frame(h, &f, credit, err);
		if (r < 0)
			return r;
	}
}

int agent_host_put(struct agent_host *h, int fd, unsigned int mode, uint64_t size,
                   const char *remote, const char *name, struct mgr_err *err)
{
	struct agent_file_req req = {
	    .path = remote, .name = name, .mode = mode & 0777, .size = size};
	uint8_t *buf = malloc(AGENT_DATA_MAX);
	uint32_t credit = h->window;
	uint64_t sent = 0, got;
	struct agent_frame f;
	int r;

	if (!buf)
		return mgr_err_set(err, -ENOMEM, "out of memory");
	r = agent_msg_file_req(&h->c.tx, AGENT_PUT, &req);
	while (r == 0) {
		size_t want;
		ssize_t n;

		r = host_put_frames(h, &credit, err);
		if (r < 0)
			break;
		want = credit < AGENT_DATA_MAX ? credit : AGENT_DATA_MAX;
		n = read(fd, buf, want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = mgr_err_set(err, -errno, "reading the local file: %s", strerror(errno));
			break;
		}
		if (n > 0 && sent + (uint64_t)n > size) {
			r = mgr_err_set(err, -EFBIG, "the local file grew while it was copied");
			break;
		}
		r = agent_msg_data(&h->c.tx, AGENT_DATA, buf, (size_t)n);
		if (r < 0 || n == 0)
			break;
		sent += (uint64_t)n;
		credit -= (uint32_t)n;
		r = agent_conn_flush(&h->c);
		if (r == -EAGAIN)
			r = 0;
		else if (r < 0)
			r = mgr_err_set(err, r, "%s: sending: %s", h->what, strerror(-r));
	}
	free(buf);
	if (r < 0)
		return r;
	if (sent != size)
		return mgr_err_set(err, -EIO, "the local file shrank while it was copied");
	/* The agent's CREDITs may come before its answer. */
	do
		r = host_recv(h, &f, "PUT", err);
	while (r == 0 && f.type == AGENT_CREDIT);
	if (r < 0)
		return r;
	if (agent_parse_ok(&f, &got) < 0)
		return host_file_error(h, &f, "PUT", err);
	if (got != size)
		return mgr_err_set(err, -EIO, "%s: the agent wrote %llu bytes of %llu", h->what,
		                   (unsigned long long)got, (unsigned long long)size);
	return 0;
}

/* Write all of @len bytes to @fd. */
static int host_write_all(int fd, const uint8_t *p, size_t len)
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

/* The local file to write: @local, or @local/basename(@remote) for a directory. */
static int host_get_target(const char *remote, const char *local, char *target, size_t len)
{
	char rb[PATH_MAX];
	struct stat st;
	int n;

	if (stat(local, &st) == 0 && S_ISDIR(st.st_mode)) {
		snprintf(rb, sizeof(rb), "%s", remote);
		n = snprintf(target, len, "%s/%s", local, basename(rb));
	} else {
		n = snprintf(target, len, "%s", local);
	}
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* Receive DATA into @fd until the empty one, crediting as we write. */
static int host_get_receive(struct agent_host *h, int fd, uint64_t *total, struct mgr_err *err)
{
	uint32_t outstanding = 0, done = 0;
	struct agent_frame f;
	int r;

	for (;;) {
		r = host_recv(h, &f, "GET", err);
		if (r < 0)
			return r;
		if (f.type != AGENT_DATA)
			return host_file_error(h, &f, "GET", err);
		if (!f.len)
			return 0;
		if (f.len > AGENT_WINDOW - outstanding)
			return mgr_err_set(err, -EPROTO, "%s: the agent overran its credit",
			                   h->what);
		outstanding += f.len;
		r = host_write_all(fd, f.payload, f.len);
		if (r < 0)
			return mgr_err_set(err, r, "writing the local file: %s", strerror(-r));
		*total += f.len;
		done += f.len;
		if (done >= AGENT_WINDOW / 4) {
			r = agent_msg_u32(&h->c.tx, AGENT_CREDIT, done);
			if (r < 0)
				return mgr_err_set(err, r, "out of memory");
			outstanding -= done;
			done = 0;
		}
	}
}

int agent_host_get(struct agent_host *h, const char *remote, const char *local, struct mgr_err *err)
{
	char target[PATH_MAX], tmp[PATH_MAX], db[PATH_MAX], bb[PATH_MAX];
	struct agent_file_req req = {.path = remote};
	uint64_t size, total = 0, ok;
	struct agent_frame f;
	mode_t mask;
	uint32_t mode;
	int fd, r, n;

	if (host_get_target(remote, local, target, sizeof(target)) < 0)
		return mgr_err_set(err, -ENAMETOOLONG, "'%s': path too long", local);
	snprintf(db, sizeof(db), "%s", target);
	snprintf(bb, sizeof(bb), "%s", target);
	n = snprintf(tmp, sizeof(tmp), "%s/.%s.nestvm-XXXXXX", dirname(db), basename(bb));
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return mgr_err_set(err, -ENAMETOOLONG, "'%s': path too long", target);
	r = agent_msg_file_req(&h->c.tx, AGENT_GET, &req);
	if (r == 0)
		r = host_recv(h, &f, "GET", err);
	if (r < 0)
		return r;
	if (agent_parse_file(&f, &mode, &size) < 0)
		return host_file_error(h, &f, "GET", err);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return mgr_err_set(err, -errno, "cannot create a file next to '%s': %s", target,
		                   strerror(errno));
	r = host_get_receive(h, fd, &total, err);
	if (r == 0)
		r = host_recv(h, &f, "GET", err);
	if (r == 0 && (agent_parse_ok(&f, &ok) < 0 || ok != total))
		r = host_file_error(h, &f, "GET", err);
	mask = umask(0);
	umask(mask);
	if (r == 0 && fchmod(fd, (mode & 0777) & ~mask) < 0)
		r = mgr_err_set(err, -errno, "'%s': %s", tmp, strerror(errno));
	if (close(fd) < 0 && r == 0)
		r = mgr_err_set(err, -errno, "'%s': %s", tmp, strerror(errno));
	if (r == 0 && rename(tmp, target) < 0)
		r = mgr_err_set(err, -errno, "cannot put the file at '%s': %s", target,
		                strerror(errno));
	if (r < 0)
		unlink(tmp);
	return r;
}
