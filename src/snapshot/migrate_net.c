/* SPDX-License-Identifier: MIT */
/* Where a migration stream goes, and the secret it is keyed with (snapshot/migrate_net.h). */
#include "snapshot/migrate_net.h"

#include "core/clock.h"
#include "core/fsutil.h"
#include "snapshot/migrate_stream.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* ---- the secret ---- */

int mig_secret_read_fd(int fd, const char *path, uid_t owner, uint8_t *buf, size_t cap, char *why,
                       size_t why_len)
{
	struct stat st;
	ssize_t n;
	size_t got = 0;
	int r = 0;

	if (fstat(fd, &st) < 0) {
		r = -errno;
		snprintf(why, why_len, "secret file '%s': %s", path, strerror(-r));
	} else if (!S_ISREG(st.st_mode)) {
		r = -EINVAL;
		snprintf(why, why_len, "secret file '%s': not a regular file", path);
	} else if (st.st_uid != owner) {
		r = -EPERM;
		snprintf(why, why_len, "secret file '%s' is owned by uid %u, not by you (uid %u)",
		         path, (unsigned int)st.st_uid, (unsigned int)owner);
	} else if (st.st_mode & 077) {
		r = -EPERM;
		snprintf(why, why_len,
		         "secret file '%s' can be read or written by others (mode %04o): "
		         "chmod 600 '%s'",
		         path, (unsigned int)(st.st_mode & 07777), path);
	} else if (st.st_size < MIG_SECRET_MIN || st.st_size > MIG_SECRET_MAX ||
	           (size_t)st.st_size > cap) {
		r = -EINVAL;
		snprintf(why, why_len,
		         "secret file '%s' holds %lld bytes; give %u to %u "
		         "(e.g. head -c 32 /dev/urandom | base64 >FILE)",
		         path, (long long)st.st_size, MIG_SECRET_MIN, MIG_SECRET_MAX);
	}
	while (r == 0 && got < (size_t)st.st_size) {
		n = pread(fd, buf + got, (size_t)st.st_size - got, (off_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = n < 0 ? -errno : -EIO;
			snprintf(why, why_len, "secret file '%s': %s", path,
			         n < 0 ? strerror(errno) : "it shrank while being read");
			break;
		}
		got += (size_t)n;
	}
	if (r < 0) {
		explicit_bzero(buf, got);
		return r;
	}
	return (int)got;
}

int mig_secret_read(const char *path, uint8_t *buf, size_t cap, char *why, size_t why_len)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY), r;

	if (fd < 0) {
		r = -errno;
		snprintf(why, why_len, "secret file '%s': %s", path,
		         r == -ELOOP ? "a symbolic link (give the file itself)" : strerror(-r));
		return r;
	}
	r = mig_secret_read_fd(fd, path, geteuid(), buf, cap, why, why_len);
	close(fd);
	return r;
}

/* ---- addresses ---- */

int mig_addr_parse(const char *s, bool resolve, struct mig_addr *a, char *why, size_t why_len)
{
	char host[256];
	const char *hs, *colon;
	unsigned long port;
	char *end;
	size_t hl;

	memset(a, 0, sizeof(*a));
	if (!strncmp(s, "unix:", 5)) {
		a->is_unix = true;
		if (s[5] != '/') {
			snprintf(why, why_len, "'%s': a UNIX socket path must be absolute", s);
			return -EINVAL;
		}
		if (strlen(s + 5) >= sizeof(a->path)) {
			snprintf(why, why_len,
			         "'%s': the path is longer than a UNIX socket takes "
			         "(%zu bytes)",
			         s, sizeof(a->path) - 1);
			return -EINVAL;
		}
		strcpy(a->path, s + 5);
		return 0;
	}
	if (strncmp(s, "tcp:", 4) != 0) {
		snprintf(why, why_len, "'%s': give tcp:HOST:PORT or unix:PATH", s);
		return -EINVAL;
	}
	hs = s + 4;
	if (*hs == '[') {
		const char *close = strchr(hs, ']');

		if (!close || close[1] != ':') {
			snprintf(why, why_len,
			         "'%s': an IPv6 address goes in brackets: "
			         "tcp:[::1]:PORT",
			         s);
			return -EINVAL;
		}
		hl = (size_t)(close - hs - 1);
		hs++;
		colon = close + 1;
	} else {
		colon = strrchr(hs, ':');
		if (!colon) {
			snprintf(why, why_len, "'%s': no port (tcp:HOST:PORT)", s);
			return -EINVAL;
		}
		hl = (size_t)(colon - hs);
	}
	if (hl == 0 || hl >= sizeof(host)) {
		snprintf(why, why_len, "'%s': no host", s);
		return -EINVAL;
	}
	memcpy(host, hs, hl);
	host[hl] = 0;
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (!colon[1] || *end || errno || port > 65535) {
		snprintf(why, why_len, "'%s': the port must be a number from 0 to 65535", s);
		return -EINVAL;
	}
	{
		struct sockaddr_in *in4 = (struct sockaddr_in *)&a->sa;
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&a->sa;

		if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
			in4->sin_family = AF_INET;
			in4->sin_port = htons((uint16_t)port);
			a->sa_len = sizeof(*in4);
			return 0;
		}
		if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
			in6->sin6_family = AF_INET6;
			in6->sin6_port = htons((uint16_t)port);
			a->sa_len = sizeof(*in6);
			return 0;
		}
	}
	if (resolve) {
		struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
		int e = getaddrinfo(host, NULL, &hints, &res);

		if (e == 0 && res && res->ai_addrlen <= sizeof(a->sa)) {
			memcpy(&a->sa, res->ai_addr, res->ai_addrlen);
			a->sa_len = res->ai_addrlen;
			if (a->sa.ss_family == AF_INET)
				((struct sockaddr_in *)&a->sa)->sin_port = htons((uint16_t)port);
			else
				((struct sockaddr_in6 *)&a->sa)->sin6_port = htons((uint16_t)port);
			freeaddrinfo(res);
			return 0;
		}
		if (res)
			freeaddrinfo(res);
		snprintf(why, why_len, "'%s': cannot resolve '%s': %s", s, host,
		         e ? gai_strerror(e) : "no address");
		return -EINVAL;
	}
	snprintf(why, why_len, "'%s': give a numeric address (the command line resolves names)", s);
	return -EINVAL;
}

void mig_addr_format(const struct mig_addr *a, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";

	if (a->is_unix) {
		snprintf(buf, len, "unix:%s", a->path);
	} else if (a->sa.ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&a->sa;

		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		snprintf(buf, len, "tcp:[%s]:%u", host, ntohs(in6->sin6_port));
	} else {
		const struct sockaddr_in *in4 = (const struct sockaddr_in *)&a->sa;

		inet_ntop(AF_INET, &in4->sin_addr, host, sizeof(host));
		snprintf(buf, len, "tcp:%s:%u", host, ntohs(in4->sin_port));
	}
}

/* poll() @fd for @events with a cancel eventfd; 0, -ETIMEDOUT or -ECANCELED. */
static int mig_poll_one(int fd, short events, int timeout_ms, int cancel_fd)
{
	struct pollfd p[2] = {{.fd = fd, .events = events}, {.fd = cancel_fd, .events = POLLIN}};

	for (;;) {
		int n = poll(p, cancel_fd >= 0 ? 2 : 1, timeout_ms);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ETIMEDOUT;
		if (cancel_fd >= 0 && (p[1].revents & POLLIN))
			return -ECANCELED;
		return 0;
	}
}

int mig_connect(const struct mig_addr *a, int timeout_ms, int cancel_fd, char *why, size_t why_len)
{
	char name[160];
	int64_t deadline = mono_ms() + timeout_ms;
	int fd, r, err = 0;
	socklen_t el = sizeof(err);

	mig_addr_format(a, name, sizeof(name));
	if (a->is_unix) {
		fd = unix_connect_owned(a->path, SOCK_CLOEXEC);
		if (fd < 0)
			snprintf(why, why_len, "cannot connect to %s: %s", name,
			         fd == -EPERM ? "the socket or its listener is not yours"
			                      : fs_strerror(fd));
		return fd;
	}
	fd = socket(a->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		r = -errno;
		snprintf(why, why_len, "socket: %s", strerror(-r));
		return r;
	}
	if (connect(fd, (const struct sockaddr *)&a->sa, a->sa_len) < 0 && errno != EINPROGRESS) {
		r = -errno;
		goto fail;
	}
	r = mig_poll_one(fd, POLLOUT, (int)(deadline - mono_ms() > 0 ? deadline - mono_ms() : 0),
	                 cancel_fd);
	if (r == 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
		r = -errno;
	if (r == 0 && err)
		r = -err;
	if (r == 0) {
		int fl = fcntl(fd, F_GETFL);

		if (fl >= 0)
			(void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
		return fd;
	}
fail:
	close(fd);
	snprintf(why, why_len, "cannot connect to %s: %s", name,
	         r == -ETIMEDOUT   ? "no answer in time"
	         : r == -ECANCELED ? "cancelled"
	                           : strerror(-r));
	return r;
}

int mig_listen(struct mig_addr *a, char *why, size_t why_len)
{
	char name[160], dir[sizeof(a->path)];
	int fd, one = 1, r;

	mig_addr_format(a, name, sizeof(name));
	if (a->is_unix) {
		char *slash;

		snprintf(dir, sizeof(dir), "%s", a->path);
		slash = strrchr(dir, '/');
		if (slash == dir)
			slash[1] = 0;
		else
			*slash = 0;
		r = fs_private_dir(dir);
		if (r < 0) {
			snprintf(why, why_len,
			         "%s: the socket must be in a directory only you control (not /tmp "
			         "itself): '%s': %s",
			         name, dir, r == -EPERM ? "others could reach it" : fs_strerror(r));
			return r;
		}
		fd = unix_listen(a->path, 0600, 1);
		if (fd < 0)
			snprintf(why, why_len, "cannot listen on %s: %s", name, fs_strerror(fd));
		return fd;
	}
	fd = socket(a->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		r = -errno;
		snprintf(why, why_len, "socket: %s", strerror(-r));
		return r;
	}
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)&a->sa, a->sa_len) < 0 || listen(fd, 4) < 0) {
		r = -errno;
		close(fd);
		snprintf(why, why_len, "cannot listen on %s: %s", name, strerror(-r));
		return r;
	}
	a->sa_len = sizeof(a->sa);
	if (getsockname(fd, (struct sockaddr *)&a->sa, &a->sa_len) < 0) {
		r = -errno;
		close(fd);
		snprintf(why, why_len, "getsockname: %s", strerror(-r));
		return r;
	}
	return fd;
}

int mig_accept(int lfd, int timeout_ms, int cancel_fd, char *peer, size_t peer_len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int fd, r;

	for (;;) {
		r = mig_poll_one(lfd, POLLIN, timeout_ms, cancel_fd);
		if (r < 0)
			return r;
		fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
		if (fd >= 0)
			break;
		if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
			return -errno;
	}
	if (ss.ss_family == AF_UNIX) {
		snprintf(peer, peer_len, "unix");
	} else {
		struct mig_addr a = {.sa = ss, .sa_len = sl};

		mig_addr_format(&a, peer, peer_len);
	}
	return fd;
}
