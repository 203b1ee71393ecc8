// SPDX-License-Identifier: MIT
/* An adapter joins a switch (switch_link.h). */
#include "net/switch_link.h"

#include "core/clock.h"
#include "core/fsutil.h"
#include "switch/switch_store.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define SWITCH_LINK_TIMEOUT_S 5
#define LINK_RETRY_MS 10
/*
 * What the adapter may have in flight to the switch (the kernel caps it at
 * net.core.wmem_max). The default (~208 KiB) holds ~80 full-size frames: a
 * switch that waits a few ms for a CPU on a busy host then stops the guest
 * sending, where the switch's own side of the port already has 1 MiB.
 */
#define SWITCH_LINK_SNDBUF (1 << 20)

/* The switch's answer to the hello: {"ok":true,"port":N} or {"error":"..."}. */
static int link_answer(int fd, unsigned int *port, unsigned int *batch, char *why,
                       size_t why_size)
{
	char buf[NETPORT_HELLO_MAX];
	json_t *o, *v;
	ssize_t n;
	int r = -EPROTO;

	n = recv(fd, buf, sizeof(buf), 0);
	if (n <= 0) {
		r = n < 0 ? -errno : -ECONNRESET;
		snprintf(why, why_size, "no answer from the switch: %s", strerror(-r));
		return r;
	}
	o = json_loadb(buf, (size_t)n, 0, NULL);
	if (o && (v = json_object_get(o, "error")) && json_is_string(v)) {
		snprintf(why, why_size, "the switch refused the adapter: %.200s",
		         json_string_value(v));
		r = -ECONNREFUSED;
	} else if (o && json_is_true(json_object_get(o, "ok")) &&
	           json_is_integer(v = json_object_get(o, "port")) && json_integer_value(v) >= 0) {
		*port = (unsigned int)json_integer_value(v);
		r = 0;
		v = json_object_get(o, "batch");
		if (!*batch || !v) {
			*batch = 0;
		} else if (json_is_integer(v) && json_integer_value(v) >= 1 &&
		           json_integer_value(v) <= NETPORT_BATCH_MAX) {
			*batch = (unsigned int)json_integer_value(v);
		} else {
			snprintf(why, why_size, "the switch's batch is not understood");
			r = -EPROTO;
		}
	} else {
		snprintf(why, why_size, "the switch's answer is not understood");
	}
	json_decref(o);
	return r;
}

static int link_join(const char *home, const char *name, struct netport_hello *h,
                     unsigned int *port, char *why, size_t why_size)
{
	struct timeval tv = { .tv_sec = SWITCH_LINK_TIMEOUT_S };
	char path[4096], hello[NETPORT_HELLO_MAX];
	int64_t deadline;
	int fd, n, r;

	if (snprintf(path, sizeof(path), "%s/%s/%s/%s", home, SWITCH_DIR, name,
	             SWITCH_PORTS_SOCKET) >= (int)sizeof(path)) {
		snprintf(why, why_size, "switch '%s': path too long", name);
		return -ENAMETOOLONG;
	}
	n = netport_hello_format(h, hello, sizeof(hello));
	if (n < 0) {
		snprintf(why, why_size, "switch '%s': hello too long", name);
		return n;
	}
	/*
	 * Not running (no socket, or a stale one): start it and connect again.
	 * A switch that another VM's monitor is starting at the same time holds
	 * its run lock before it has its socket, and switch_spawn() then
	 * returns at once: try again until it listens, or until that start
	 * failed and the lock is free, when this one starts it.
	 */
	deadline = mono_ms() + SWITCH_START_TIMEOUT_MS;
	for (;;) {
		struct mgr_err err;
		pid_t pid;

		fd = unix_connect_owned_type(path, SOCK_SEQPACKET, SOCK_CLOEXEC);
		if ((fd != -ENOENT && fd != -ECONNREFUSED) || mono_ms() > deadline)
			break;
		r = switch_spawn(home, name, &pid, &err);
		if (r < 0) {
			snprintf(why, why_size, "%s", err.msg);
			return r;
		}
		if (!pid)
			usleep(LINK_RETRY_MS * 1000);
	}
	if (fd < 0) {
		snprintf(why, why_size, "switch '%s' (%s): %s", name, path, fs_strerror(fd));
		return fd;
	}
	/* A switch that accepts but never answers must not hang the monitor. */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0) {
		r = -errno;
		snprintf(why, why_size, "switch '%s': %s", name, strerror(errno));
		goto err;
	}
	if (send(fd, hello, (size_t)n, MSG_NOSIGNAL) != n) {
		r = -errno;
		snprintf(why, why_size, "switch '%s': cannot send the hello: %s", name,
		         strerror(errno));
		goto err;
	}
	r = link_answer(fd, port, &h->batch, why, why_size);
	if (r < 0)
		goto err;
	tv.tv_sec = 0;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &(int){SWITCH_LINK_SNDBUF}, sizeof(int)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0) {
		r = -errno;
		goto err;
	}
	return fd;
err:
	close(fd);
	return r;
}

int switch_link_connect(const char *home, const char *name, struct netport_hello *h,
                        unsigned int *port, char *why, size_t why_size)
{
	int fd = link_join(home, name, h, port, why, why_size);

	/* An old switch refuses the "batch" field: one frame per message then. */
	if (fd == -ECONNREFUSED && h->batch) {
		h->batch = 0;
		fd = link_join(home, name, h, port, why, why_size);
	}
	return fd;
}
