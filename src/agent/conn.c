/* SPDX-License-Identifier: MIT */
/* One agent connection: buffered frames over a non-blocking socket (conn.h). */
#include "agent/conn.h"
#include "core/clock.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int agent_conn_init(struct agent_conn *c, int fd)
{
	int fl = fcntl(fd, F_GETFL);

	memset(c, 0, sizeof(*c));
	c->fd = -1;
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	c->rx_cap = AGENT_FRAME_HDR + AGENT_FRAME_MAX;
	c->rx = malloc(c->rx_cap);
	if (!c->rx)
		return -ENOMEM;
	agent_buf_init(&c->tx);
	c->frame_max = AGENT_FRAME_MAX;
	c->fd = fd;
	return 0;
}

void agent_conn_destroy(struct agent_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	free(c->rx);
	c->rx = NULL;
	c->rx_len = c->rx_off = 0;
	agent_buf_free(&c->tx);
}

ssize_t agent_conn_fill(struct agent_conn *c)
{
	ssize_t n;

	/* Move the unparsed rest to the front: frames handed out before are done with. */
	if (c->rx_off) {
		memmove(c->rx, c->rx + c->rx_off, c->rx_len - c->rx_off);
		c->rx_len -= c->rx_off;
		c->rx_off = 0;
	}
	if (c->rx_len == c->rx_cap)
		return -ENOBUFS;
	do
		n = read(c->fd, c->rx + c->rx_len, c->rx_cap - c->rx_len);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	c->rx_len += (size_t)n;
	return n;
}

int agent_conn_next(struct agent_conn *c, struct agent_frame *f)
{
	ssize_t n = agent_frame_parse(c->rx + c->rx_off, c->rx_len - c->rx_off, c->frame_max, f);

	if (n <= 0)
		return (int)n;
	c->rx_off += (size_t)n;
	return 1;
}

int agent_conn_flush(struct agent_conn *c)
{
	int r = 0;

	while (c->tx_off < c->tx.len) {
		ssize_t n =
		    send(c->fd, c->tx.data + c->tx_off, c->tx.len - c->tx_off, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = errno == EWOULDBLOCK ? -EAGAIN : -errno;
			break;
		}
		c->tx_off += (size_t)n;
	}
	/* Compact now and then, not after every partial send. */
	if (c->tx_off == c->tx.len || (c->tx_off > AGENT_DATA_MAX && c->tx_off > c->tx.len / 2)) {
		agent_buf_consume(&c->tx, c->tx_off);
		c->tx_off = 0;
	}
	return r;
}

size_t agent_conn_queued(const struct agent_conn *c)
{
	return c->tx.len - c->tx_off;
}

/* Wait for @events on the socket until @deadline (< 0: none); 0 or -ETIMEDOUT/-errno. */
static int agent_conn_wait(struct agent_conn *c, short events, int64_t deadline)
{
	for (;;) {
		struct pollfd p = {.fd = c->fd, .events = events};
		int64_t left = deadline < 0 ? -1 : deadline - mono_ms();
		int r;

		if (deadline >= 0 && left <= 0)
			return -ETIMEDOUT;
		r = poll(&p, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r > 0)
			return 0;
	}
}

int agent_conn_recv(struct agent_conn *c, struct agent_frame *f, int timeout_ms)
{
	int64_t deadline = timeout_ms < 0 ? -1 : mono_ms() + timeout_ms;

	for (;;) {
		ssize_t n;
		int r = agent_conn_next(c, f);

		if (r)
			return r;
		r = agent_conn_flush(c);
		if (r < 0 && r != -EAGAIN) {
			/*
			 * The peer closed its end: what it sent before is still to
			 * be read (its last answer, then EOF). What we queued is lost.
			 */
			c->tx.len = c->tx_off = 0;
		}
		n = agent_conn_fill(c);
		if (n == 0)
			return 0;
		if (n > 0)
			continue;
		if (n != -EAGAIN)
			return (int)n;
		r = agent_conn_wait(c, POLLIN | (agent_conn_queued(c) ? POLLOUT : 0), deadline);
		if (r < 0)
			return r;
	}
}

int agent_conn_send_all(struct agent_conn *c, int timeout_ms)
{
	int64_t deadline = timeout_ms < 0 ? -1 : mono_ms() + timeout_ms;

	for (;;) {
		int r = agent_conn_flush(c);

		if (r != -EAGAIN)
			return r;
		r = agent_conn_wait(c, POLLOUT, deadline);
		if (r < 0)
			return r;
	}
}
