/* SPDX-License-Identifier: MIT */
/*
 * virtio-vsock (virtio 1.2 §5.10) with the host side on UNIX sockets. See
 * vsock.h for the protocol seen from the host.
 *
 * Each stream connection pairs a guest (CID, port) with a host port (CID 2)
 * and a UNIX socket. Everything runs on the device's I/O thread:
 *
 *   tx queue (guest -> device): packets for a connection; a payload goes into
 *     the connection's buffer (at most VSOCK_CONN_BUF bytes, the credit the
 *     device advertises) and from there to the UNIX socket as it accepts it.
 *   rx queue (device -> guest): data read from the UNIX socket, at most as
 *     much as the guest's credit allows, read straight into the guest's
 *     receive buffer; and control packets (responses, resets, shutdowns,
 *     credit updates), which wait in a bounded queue when the guest has
 *     posted no receive buffers.
 *
 * A UNIX socket is watched for input only while its data could be delivered
 * (connection established, guest credit left, receive buffers posted), so a
 * guest that stops reading stops the host side too, and nothing spins.
 */
#include "devices/virtio/vsock.h"

#include "core/fsutil.h"
#include "core/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define VSOCK_CONN_BUF (64 * 1024) /* guest -> host buffer and advertised credit */
#define VSOCK_MAX_PKT (64 * 1024)  /* payload of one packet, either way */
#define VSOCK_MAX_CONNS 256
#define VSOCK_PENDING_MAX 256
#define VSOCK_CMD_MAX 64 /* "CONNECT <port>\n" */
#define VSOCK_LOCAL_PORT_FIRST 0x40000000U
#define VSOCK_PCI_CLASS 0x078000 /* simple communication controller, other */

enum vsock_state {
	VSOCK_HOST_CMD,    /* host connected, its CONNECT line not yet read */
	VSOCK_CONNECTING,  /* REQUEST sent to the guest, waiting for RESPONSE */
	VSOCK_ESTABLISHED, /* data flows */
	VSOCK_HOST_CLOSED, /* the host side is gone; waiting for the guest's RST */
};

struct vsock_conn {
	struct vsock_conn *next;
	int fd; /* -1 once the host side is closed */
	enum vsock_state state;
	uint32_t local_port; /* CID 2 side */
	uint32_t peer_port;  /* guest side */
	uint32_t events;     /* what the fd is watched for */
	bool watched;
	char cmd[VSOCK_CMD_MAX + 1]; /* VSOCK_HOST_CMD: the line so far */
	unsigned int cmd_len;

	/* Guest -> host: a ring of VSOCK_CONN_BUF bytes. */
	uint8_t *txbuf;
	uint32_t tx_head;
	uint32_t tx_len;
	uint32_t fwd_cnt;      /* guest bytes passed on to the host */
	uint32_t fwd_cnt_sent; /* fwd_cnt the guest last heard of */

	/* Host -> guest. */
	uint32_t rx_cnt; /* bytes sent to the guest */
	uint32_t peer_buf_alloc;
	uint32_t peer_fwd_cnt;
	bool host_eof;        /* the host sends no more */
	bool guest_no_send;   /* SHUTDOWN F_SEND from the guest */
	bool guest_no_recv;   /* SHUTDOWN F_RECEIVE from the guest */
	bool host_write_shut; /* shutdown(SHUT_WR) done */
};

struct virtio_vsock {
	struct virtio_device vdev;
	struct virtq vqs[3];
	uint8_t config[VIRTIO_VSOCK_CFG_SIZE];
	uint64_t guest_cid;
	char *path;
	int listen_fd;
	bool started;

	struct vsock_conn *conns;
	unsigned int nr_conns;
	uint32_t next_local_port;

	struct virtio_vsock_hdr pending[VSOCK_PENDING_MAX]; /* control packets for the guest */
	unsigned int pending_head;
	unsigned int pending_len;
	bool rx_starved; /* the guest has no receive buffer posted */
	bool rx_pushed;
	bool tx_pushed;
	bool reset_event; /* restored: TRANSPORT_RESET owed to the guest */

	struct iovec rx_iov[VIRTIO_VSOCK_QUEUE_SIZE];
	struct iovec tx_iov[VIRTIO_VSOCK_QUEUE_SIZE];
	struct iovec data_iov[VIRTIO_VSOCK_QUEUE_SIZE];
	struct iovec event_iov[VIRTIO_VSOCK_QUEUE_SIZE];
};

enum { VSOCK_Q_RX, VSOCK_Q_TX, VSOCK_Q_EVENT };

static void vs_conn_io(struct virtio_device *vdev, int fd, uint32_t revents, void *arg);

/* ---------------------------------------------------------- packets out */

static uint32_t vs_peer_credit(const struct vsock_conn *c)
{
	uint32_t in_flight = c->rx_cnt - c->peer_fwd_cnt;

	return in_flight >= c->peer_buf_alloc ? 0 : c->peer_buf_alloc - in_flight;
}

static void vs_hdr_fill(struct virtio_vsock *vs, struct virtio_vsock_hdr *h, uint32_t local,
                        uint32_t peer, uint16_t op, uint32_t flags, struct vsock_conn *c)
{
	*h = (struct virtio_vsock_hdr){
	    .src_cid = VIRTIO_VSOCK_HOST_CID,
	    .dst_cid = vs->guest_cid,
	    .src_port = local,
	    .dst_port = peer,
	    .type = VIRTIO_VSOCK_TYPE_STREAM,
	    .op = op,
	    .flags = flags,
	    .buf_alloc = VSOCK_CONN_BUF,
	    .fwd_cnt = c ? c->fwd_cnt : 0,
	};
	if (c)
		c->fwd_cnt_sent = c->fwd_cnt;
}

/*
 * Pop a receive buffer able to hold a header. Returns 1, 0 if none is
 * posted (rx_starved is set), or -EIO after setting needs-reset.
 */
static int vs_rx_pop(struct virtio_vsock *vs, struct virtq_req *req)
{
	struct virtq *vq = &vs->vqs[VSOCK_Q_RX];
	int r;

	*req = (struct virtq_req){.iov = vs->rx_iov, .cap = VIRTIO_VSOCK_QUEUE_SIZE};
	r = virtq_pop(vq, req);
	if (r == 0 && virtq_enable_notify(vq))
		r = virtq_pop(vq, req);
	if (r == 0) {
		vs->rx_starved = true;
		return 0;
	}
	if (r > 0 && (req->nr_out || req->in_len < VIRTIO_VSOCK_HDR_SIZE))
		r = -EIO;
	if (r < 0) {
		virtio_device_set_needs_reset(&vs->vdev, "malformed vsock receive queue");
		return -EIO;
	}
	return 1;
}

/* Deliver a control packet now if a receive buffer is posted and nothing waits before it. */
static void vs_send(struct virtio_vsock *vs, const struct virtio_vsock_hdr *h)
{
	struct virtq_req req;

	if (!vs->pending_len && !vs->rx_starved && vs_rx_pop(vs, &req) > 0) {
		iov_from_buf(req.iov, req.nr_in, 0, h, sizeof(*h));
		virtq_push(&vs->vqs[VSOCK_Q_RX], req.head, sizeof(*h));
		virtq_mark_written(&vs->vqs[VSOCK_Q_RX], &req);
		vs->rx_pushed = true;
		return;
	}
	if (vs->pending_len == VSOCK_PENDING_MAX) {
		/* Cannot happen: the tx loop stops before the queue can fill. */
		log_debug("virtio-vsock: control packet queue full, op %u dropped", h->op);
		return;
	}
	vs->pending[(vs->pending_head + vs->pending_len) % VSOCK_PENDING_MAX] = *h;
	vs->pending_len++;
}

static void vs_send_op(struct virtio_vsock *vs, struct vsock_conn *c, uint16_t op, uint32_t flags)
{
	struct virtio_vsock_hdr h;

	vs_hdr_fill(vs, &h, c->local_port, c->peer_port, op, flags, c);
	vs_send(vs, &h);
}

/* Answer a packet that belongs to no connection with a reset (never a reset with a reset). */
static void vs_send_rst_to(struct virtio_vsock *vs, const struct virtio_vsock_hdr *in)
{
	struct virtio_vsock_hdr h;

	if (in->op == VIRTIO_VSOCK_OP_RST)
		return;
	vs_hdr_fill(vs, &h, in->dst_port, in->src_port, VIRTIO_VSOCK_OP_RST, 0, NULL);
	vs_send(vs, &h);
}

static void vs_flush_pending(struct virtio_vsock *vs)
{
	struct virtq_req req;

	while (vs->pending_len && vs_rx_pop(vs, &req) > 0) {
		const struct virtio_vsock_hdr *h = &vs->pending[vs->pending_head];

		iov_from_buf(req.iov, req.nr_in, 0, h, sizeof(*h));
		virtq_push(&vs->vqs[VSOCK_Q_RX], req.head, sizeof(*h));
		virtq_mark_written(&vs->vqs[VSOCK_Q_RX], &req);
		vs->rx_pushed = true;
		vs->pending_head = (vs->pending_head + 1) % VSOCK_PENDING_MAX;
		vs->pending_len--;
	}
}

static void vs_notify(struct virtio_vsock *vs)
{
	if (vs->rx_pushed)
		virtio_device_notify_queue(&vs->vdev, VSOCK_Q_RX);
	if (vs->tx_pushed)
		virtio_device_notify_queue(&vs->vdev, VSOCK_Q_TX);
	vs->rx_pushed = vs->tx_pushed = false;
}

/* ------------------------------------------------------ connections */

/* What the connection's fd should be watched for now. */
static uint32_t vs_conn_wanted(const struct virtio_vsock *vs, const struct vsock_conn *c)
{
	uint32_t ev = 0;

	if (c->fd < 0)
		return 0;
	if (c->state == VSOCK_HOST_CMD)
		ev |= EPOLLIN;
	/* While the guest has not answered: notice a host program that gives up. */
	if (c->state == VSOCK_CONNECTING)
		ev |= EPOLLRDHUP;
	if (c->state == VSOCK_ESTABLISHED && !c->host_eof && !c->guest_no_recv && !vs->rx_starved &&
	    !vs->pending_len && vs_peer_credit(c) > 0)
		ev |= EPOLLIN;
	if (c->tx_len)
		ev |= EPOLLOUT;
	return ev;
}

/*
 * Watch the fd for what is wanted now, or not at all: a hung-up socket reports
 * EPOLLHUP whatever it is watched for, and would spin while it cannot be read.
 */
static void vs_conn_update(struct virtio_vsock *vs, struct vsock_conn *c)
{
	uint32_t ev = vs_conn_wanted(vs, c);

	if (c->fd < 0 || (c->watched && ev == c->events))
		return;
	if (!ev) {
		if (c->watched)
			virtio_device_unwatch(&vs->vdev, c->fd);
		c->watched = false;
		return;
	}
	if (virtio_device_watch(&vs->vdev, c->fd, ev, vs_conn_io, c) == 0) {
		c->watched = true;
		c->events = ev;
	}
}

static void vs_update_all(struct virtio_vsock *vs)
{
	for (struct vsock_conn *c = vs->conns; c; c = c->next)
		vs_conn_update(vs, c);
}

static struct vsock_conn *vs_conn_find(struct virtio_vsock *vs, uint32_t local, uint32_t peer)
{
	for (struct vsock_conn *c = vs->conns; c; c = c->next)
		if (c->local_port == local && c->peer_port == peer && c->state != VSOCK_HOST_CMD)
			return c;
	return NULL;
}

/* A new connection around @fd (owned from here on); NULL if the table is full. */
static struct vsock_conn *vs_conn_new(struct virtio_vsock *vs, int fd, enum vsock_state state)
{
	struct vsock_conn *c;

	if (vs->nr_conns >= VSOCK_MAX_CONNS || !(c = calloc(1, sizeof(*c)))) {
		close(fd);
		return NULL;
	}
	c->txbuf = malloc(VSOCK_CONN_BUF);
	if (!c->txbuf) {
		free(c);
		close(fd);
		return NULL;
	}
	c->fd = fd;
	c->state = state;
	c->next = vs->conns;
	vs->conns = c;
	vs->nr_conns++;
	return c;
}

static void vs_conn_close_fd(struct virtio_vsock *vs, struct vsock_conn *c)
{
	if (c->fd < 0)
		return;
	if (c->watched)
		virtio_device_unwatch(&vs->vdev, c->fd);
	c->watched = false;
	close(c->fd);
	c->fd = -1;
}

static void vs_conn_free(struct virtio_vsock *vs, struct vsock_conn *c)
{
	for (struct vsock_conn **p = &vs->conns; *p; p = &(*p)->next) {
		if (*p == c) {
			*p = c->next;
			break;
		}
	}
	vs_conn_close_fd(vs, c);
	vs->nr_conns--;
	free(c->txbuf);
	free(c);
}

/* Abort: tell the guest (unless it is the one resetting) and forget the connection. */
static void vs_conn_reset(struct virtio_vsock *vs, struct vsock_conn *c, bool tell_guest)
{
	if (tell_guest && c->state != VSOCK_HOST_CMD)
		vs_send_op(vs, c, VIRTIO_VSOCK_OP_RST, 0);
	vs_conn_free(vs, c);
}

/*
 * The host side went away for good: shut the guest's side and wait for its
 * RST. Returns false if @c was freed (it was not established yet).
 */
static bool vs_conn_host_gone(struct virtio_vsock *vs, struct vsock_conn *c)
{
	if (c->state != VSOCK_ESTABLISHED) {
		vs_conn_reset(vs, c, true);
		return false;
	}
	vs_conn_close_fd(vs, c);
	c->state = VSOCK_HOST_CLOSED;
	c->tx_len = 0;
	vs_send_op(vs, c, VIRTIO_VSOCK_OP_SHUTDOWN,
	           VIRTIO_VSOCK_SHUTDOWN_F_RECEIVE | VIRTIO_VSOCK_SHUTDOWN_F_SEND);
	return true;
}

/*
 * Pass buffered guest data to the host socket; finish a connection the guest
 * closed once its data is out. Returns false if @c was freed.
 */
static bool vs_conn_flush_tx(struct virtio_vsock *vs, struct vsock_conn *c)
{
	while (c->tx_len && c->fd >= 0) {
		uint32_t first = VSOCK_CONN_BUF - c->tx_head;
		struct iovec iov[2] = {
		    {c->txbuf + c->tx_head, c->tx_len < first ? c->tx_len : first},
		    {c->txbuf, c->tx_len > first ? c->tx_len - first : 0},
		};
		ssize_t n = writev(c->fd, iov, iov[1].iov_len ? 2 : 1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0)
			return vs_conn_host_gone(vs, c);
		c->tx_head = (c->tx_head + (uint32_t)n) % VSOCK_CONN_BUF;
		c->tx_len -= (uint32_t)n;
		c->fwd_cnt += (uint32_t)n;
	}
	/* The guest closed (SHUTDOWN both ways) and all it sent is out: our RST ends it. */
	if (c->guest_no_send && c->guest_no_recv && !c->tx_len) {
		vs_conn_reset(vs, c, true);
		return false;
	}
	/* Tell the guest about freed space before it can run out of credit. */
	if (c->state == VSOCK_ESTABLISHED && c->fwd_cnt - c->fwd_cnt_sent >= VSOCK_CONN_BUF / 4)
		vs_send_op(vs, c, VIRTIO_VSOCK_OP_CREDIT_UPDATE, 0);
	/* The guest sends no more and all it sent is out: pass the half-close on. */
	if (c->guest_no_send && !c->tx_len && c->fd >= 0 && !c->host_write_shut) {
		shutdown(c->fd, SHUT_WR);
		c->host_write_shut = true;
	}
	vs_conn_update(vs, c);
	return true;
}

/*
 * Read what the host sent into one receive buffer of the guest, as much as
 * its credit allows. Returns 1 if data went to the guest (try again), 0 when
 * nothing more can be done now, -1 if @c was freed.
 */
static int vs_conn_read_once(struct virtio_vsock *vs, struct vsock_conn *c)
{
	struct virtio_vsock_hdr h;
	struct virtq_req req;
	uint64_t room;
	uint32_t credit = vs_peer_credit(c);
	ssize_t n;
	int cnt;

	uint8_t peek;

	if (!credit || vs->pending_len)
		return 0;
	/* Take a receive buffer only for data or an end of file, never for nothing. */
	n = recv(c->fd, &peek, 1, MSG_PEEK | MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (vs_rx_pop(vs, &req) <= 0)
		return 0;
	room = req.in_len - VIRTIO_VSOCK_HDR_SIZE;
	if (room > credit)
		room = credit;
	if (room > VSOCK_MAX_PKT)
		room = VSOCK_MAX_PKT;
	cnt = iov_slice(req.iov, req.nr_in, VIRTIO_VSOCK_HDR_SIZE, room, vs->data_iov,
	                VIRTIO_VSOCK_QUEUE_SIZE);
	n = cnt > 0 ? readv(c->fd, vs->data_iov, cnt) : 0;
	if (cnt > 0 && n < 0 && (errno == EAGAIN || errno == EINTR)) {
		/* Nothing after all: return the buffer unused (the driver drops it). */
		virtq_push(&vs->vqs[VSOCK_Q_RX], req.head, 0);
		vs->rx_pushed = true;
		return 0;
	}
	if (n > 0) {
		vs_hdr_fill(vs, &h, c->local_port, c->peer_port, VIRTIO_VSOCK_OP_RW, 0, c);
		h.len = (uint32_t)n;
		c->rx_cnt += (uint32_t)n;
	} else if (n == 0 && cnt > 0) {
		/* End of file: the host will send nothing more. */
		vs_hdr_fill(vs, &h, c->local_port, c->peer_port, VIRTIO_VSOCK_OP_SHUTDOWN,
		            VIRTIO_VSOCK_SHUTDOWN_F_SEND, c);
		c->host_eof = true;
	} else {
		vs_hdr_fill(vs, &h, c->local_port, c->peer_port, VIRTIO_VSOCK_OP_RST, 0, c);
	}
	iov_from_buf(req.iov, req.nr_in, 0, &h, sizeof(h));
	virtq_push(&vs->vqs[VSOCK_Q_RX], req.head, (uint32_t)(sizeof(h) + (n > 0 ? n : 0)));
	virtq_mark_written(&vs->vqs[VSOCK_Q_RX], &req);
	vs->rx_pushed = true;
	if (h.op == VIRTIO_VSOCK_OP_RST) {
		vs_conn_free(vs, c);
		return -1;
	}
	return n > 0;
}

/*
 * "CONNECT <port>\n" from a host program, read a byte at a time so that
 * nothing after the line (stream data) is taken: then open a connection to
 * the guest's port.
 */
static void vs_conn_read_cmd(struct virtio_vsock *vs, struct vsock_conn *c)
{
	static const char err[] = "ERROR\n";
	unsigned long port = 0;
	char *end = NULL;
	bool ok;

	for (;;) {
		char ch;
		ssize_t n = recv(c->fd, &ch, 1, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0 || c->cmd_len == VSOCK_CMD_MAX) {
			vs_conn_free(vs, c); /* gone, or no command is that long */
			return;
		}
		if (ch == '\n')
			break;
		c->cmd[c->cmd_len++] = ch;
	}
	if (c->cmd_len && c->cmd[c->cmd_len - 1] == '\r')
		c->cmd_len--;
	c->cmd[c->cmd_len] = '\0';
	ok = !strncmp(c->cmd, "CONNECT ", 8) && c->cmd[8] >= '0' && c->cmd[8] <= '9';
	if (ok) {
		errno = 0;
		port = strtoul(c->cmd + 8, &end, 10);
		ok = !errno && !*end && port <= UINT32_MAX;
	}
	if (!ok || !virtio_device_is_live(&vs->vdev)) {
		if (write(c->fd, err, sizeof(err) - 1) < 0)
			log_debug("virtio-vsock: host client gone");
		vs_conn_free(vs, c);
		return;
	}
	/* A local port that no live connection to this guest port uses. */
	do {
		if (vs->next_local_port < VSOCK_LOCAL_PORT_FIRST)
			vs->next_local_port = VSOCK_LOCAL_PORT_FIRST;
		c->local_port = vs->next_local_port++;
	} while (vs_conn_find(vs, c->local_port, (uint32_t)port));
	c->peer_port = (uint32_t)port;
	c->state = VSOCK_CONNECTING;
	vs_send_op(vs, c, VIRTIO_VSOCK_OP_REQUEST, 0);
	vs_conn_update(vs, c);
}

static void vs_conn_io(struct virtio_device *vdev, int fd, uint32_t revents, void *arg)
{
	struct virtio_vsock *vs = container_of(vdev, struct virtio_vsock, vdev);
	struct vsock_conn *c = arg;

	(void)fd;
	if (c->state == VSOCK_HOST_CMD) {
		vs_conn_read_cmd(vs, c);
		goto out;
	}
	if (c->state == VSOCK_CONNECTING) {
		if (revents & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
			vs_conn_reset(vs, c, true);
		goto out;
	}
	if ((revents & EPOLLOUT) && !vs_conn_flush_tx(vs, c))
		goto out;
	if (c->fd < 0)
		goto out;
	if ((revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) && c->state == VSOCK_ESTABLISHED &&
	    !c->host_eof && !c->guest_no_recv) {
		int r = 1;

		for (int i = 0; i < 16 && r > 0; i++)
			r = vs_conn_read_once(vs, c);
		if (r < 0)
			goto out; /* freed on a read error */
	}
	/* Hung up with nothing left to read: the host is gone for good. */
	if ((revents & (EPOLLHUP | EPOLLERR)) &&
	    (c->host_eof || c->state != VSOCK_ESTABLISHED || c->guest_no_recv)) {
		vs_conn_host_gone(vs, c);
		goto out;
	}
	vs_conn_update(vs, c);
out:
	vs_notify(vs);
}

/* A host program connected to the VM's socket. */
static void vs_accept(struct virtio_device *vdev, int fd, uint32_t revents, void *arg)
{
	struct virtio_vsock *vs = arg;
	struct vsock_conn *c;
	int cfd;

	(void)vdev;
	(void)revents;
	cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (cfd < 0)
		return;
	c = vs_conn_new(vs, cfd, VSOCK_HOST_CMD);
	if (c)
		vs_conn_update(vs, c);
}

/* ------------------------------------------------------- packets in */

/* The guest connects to host port @h->dst_port: reach PATH_<port>. */
static void vs_guest_connect(struct virtio_vsock *vs, const struct virtio_vsock_hdr *h)
{
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct vsock_conn *c;
	int fd;

	if (vs_conn_find(vs, h->dst_port, h->src_port)) {
		vs_send_rst_to(vs, h);
		return;
	}
	snprintf(path, sizeof(path), "%s_%u", vs->path, h->dst_port);
	/* Only a listener of our own user may receive the guest's connections. */
	fd = unix_connect_owned(path, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0) {
		log_debug("virtio-vsock: guest connection to host port %u: %s", h->dst_port,
		          fs_strerror(fd));
		vs_send_rst_to(vs, h);
		return;
	}
	c = vs_conn_new(vs, fd, VSOCK_ESTABLISHED);
	if (!c) {
		vs_send_rst_to(vs, h);
		return;
	}
	c->local_port = h->dst_port;
	c->peer_port = h->src_port;
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	vs_send_op(vs, c, VIRTIO_VSOCK_OP_RESPONSE, 0);
	vs_conn_update(vs, c);
}

/* Payload of an RW packet into the connection's buffer. */
static void vs_guest_data(struct virtio_vsock *vs, struct vsock_conn *c,
                          const struct virtq_req *req, uint32_t len)
{
	uint32_t tail, first;

	if (c->state == VSOCK_HOST_CLOSED)
		return; /* nobody to give it to; the guest was told */
	/* More than the credit the device gave: a misbehaving guest. */
	if (c->state != VSOCK_ESTABLISHED || c->guest_no_send || len > VSOCK_CONN_BUF - c->tx_len) {
		vs_conn_reset(vs, c, true);
		return;
	}
	tail = (c->tx_head + c->tx_len) % VSOCK_CONN_BUF;
	first = VSOCK_CONN_BUF - tail < len ? VSOCK_CONN_BUF - tail : len;
	iov_to_buf(req->iov, req->nr_out, VIRTIO_VSOCK_HDR_SIZE, c->txbuf + tail, first);
	iov_to_buf(req->iov, req->nr_out, VIRTIO_VSOCK_HDR_SIZE + first, c->txbuf, len - first);
	c->tx_len += len;
	vs_conn_flush_tx(vs, c);
}

/*
 * SHUTDOWN from the guest: pass a half-close on to the host socket; a full
 * shutdown asks for the device's RST (§5.10.6.5), which vs_conn_flush_tx()
 * sends once the buffered data is out.
 */
static void vs_guest_shutdown(struct virtio_vsock *vs, struct vsock_conn *c, uint32_t flags)
{
	if (flags & VIRTIO_VSOCK_SHUTDOWN_F_SEND)
		c->guest_no_send = true;
	if (flags & VIRTIO_VSOCK_SHUTDOWN_F_RECEIVE)
		c->guest_no_recv = true;
	if (c->state != VSOCK_ESTABLISHED) {
		vs_conn_reset(vs, c, true);
		return;
	}
	vs_conn_flush_tx(vs, c);
}

/* One packet from the tx queue. */
static void vs_handle_tx(struct virtio_vsock *vs, const struct virtq_req *req)
{
	struct virtio_vsock_hdr h;
	struct vsock_conn *c;

	if (req->out_len < sizeof(h) ||
	    iov_to_buf(req->iov, req->nr_out, 0, &h, sizeof(h)) != sizeof(h))
		return; /* too short to answer: dropped */
	if (h.src_cid != vs->guest_cid || h.dst_cid != VIRTIO_VSOCK_HOST_CID)
		return; /* not from this guest or not for the host: dropped */
	if (h.type != VIRTIO_VSOCK_TYPE_STREAM || h.len > req->out_len - sizeof(h) ||
	    h.len > VSOCK_MAX_PKT) {
		c = vs_conn_find(vs, h.dst_port, h.src_port);
		if (c)
			vs_conn_reset(vs, c, true);
		else
			vs_send_rst_to(vs, &h);
		return;
	}
	c = vs_conn_find(vs, h.dst_port, h.src_port);
	if (h.op == VIRTIO_VSOCK_OP_REQUEST) {
		if (c)
			vs_conn_reset(vs, c, true);
		else
			vs_guest_connect(vs, &h);
		return;
	}
	if (!c) {
		vs_send_rst_to(vs, &h);
		return;
	}
	c->peer_buf_alloc = h.buf_alloc;
	c->peer_fwd_cnt = h.fwd_cnt;
	switch (h.op) {
	case VIRTIO_VSOCK_OP_RESPONSE:
		if (c->state != VSOCK_CONNECTING) {
			vs_conn_reset(vs, c, true);
			break;
		}
		c->state = VSOCK_ESTABLISHED;
		{
			char ok[32];
			int n = snprintf(ok, sizeof(ok), "OK %u\n", c->local_port);

			/* A fresh socket's buffer takes a few bytes; if not, the client is gone. */
			if (write(c->fd, ok, (size_t)n) != n) {
				vs_conn_reset(vs, c, true);
				break;
			}
		}
		vs_conn_update(vs, c);
		break;
	case VIRTIO_VSOCK_OP_RST:
		vs_conn_reset(vs, c, false);
		break;
	case VIRTIO_VSOCK_OP_SHUTDOWN:
		vs_guest_shutdown(vs, c, h.flags);
		break;
	case VIRTIO_VSOCK_OP_RW:
		vs_guest_data(vs, c, req, h.len);
		break;
	case VIRTIO_VSOCK_OP_CREDIT_REQUEST:
		vs_send_op(vs, c, VIRTIO_VSOCK_OP_CREDIT_UPDATE, 0);
		vs_conn_update(vs, c);
		break;
	case VIRTIO_VSOCK_OP_CREDIT_UPDATE:
		vs_conn_update(vs, c); /* more credit may let the host side be read again */
		break;
	default:
		vs_conn_reset(vs, c, true);
		break;
	}
}

static void vs_process_tx(struct virtio_vsock *vs)
{
	struct virtq *vq = &vs->vqs[VSOCK_Q_TX];
	struct virtq_req req = {.iov = vs->tx_iov, .cap = VIRTIO_VSOCK_QUEUE_SIZE};

	for (;;) {
		/* Each packet may need one reply: stop while the reply queue could overflow. */
		while (vs->pending_len < VSOCK_PENDING_MAX - 1) {
			int r = virtq_pop(vq, &req);

			if (r < 0) {
				virtio_device_set_needs_reset(&vs->vdev,
				                              "malformed vsock transmit queue");
				return;
			}
			if (r == 0)
				break;
			vs_handle_tx(vs, &req);
			virtq_push(vq, req.head, 0);
			vs->tx_pushed = true;
		}
		if (vs->pending_len >= VSOCK_PENDING_MAX - 1)
			break; /* resumed when the guest posts receive buffers */
		if (!virtq_enable_notify(vq))
			break;
	}
}

/* The owed TRANSPORT_RESET into the driver's next event buffer (§5.10.6.7). */
static void vs_send_event(struct virtio_vsock *vs)
{
	struct virtq *vq = &vs->vqs[VSOCK_Q_EVENT];
	struct virtq_req req = {.iov = vs->event_iov, .cap = VIRTIO_VSOCK_QUEUE_SIZE};
	uint32_t id = VIRTIO_VSOCK_EVENT_TRANSPORT_RESET;
	int r;

	if (!vs->reset_event)
		return;
	r = virtq_pop(vq, &req);
	if (r == 0 && virtq_enable_notify(vq))
		r = virtq_pop(vq, &req);
	if (r == 0)
		return; /* sent when the driver posts an event buffer */
	if (r < 0 || req.nr_out || req.in_len < VIRTIO_VSOCK_EVENT_SIZE) {
		virtio_device_set_needs_reset(&vs->vdev, "malformed vsock event queue");
		return;
	}
	iov_from_buf(req.iov, req.nr_in, 0, &id, sizeof(id));
	virtq_push(vq, req.head, VIRTIO_VSOCK_EVENT_SIZE);
	virtq_mark_written(vq, &req);
	vs->reset_event = false;
	virtio_device_notify_queue(&vs->vdev, VSOCK_Q_EVENT);
}

static void vs_queue_notify(struct virtio_device *vdev, unsigned int q)
{
	struct virtio_vsock *vs = container_of(vdev, struct virtio_vsock, vdev);

	if (q == VSOCK_Q_RX) {
		vs->rx_starved = false;
		vs_flush_pending(vs);
		vs_process_tx(vs);
		vs_update_all(vs);
	} else if (q == VSOCK_Q_TX) {
		vs_process_tx(vs);
		vs_update_all(vs);
	} else if (q == VSOCK_Q_EVENT) {
		vs_send_event(vs);
	}
	vs_notify(vs);
}

static void vs_reset(struct virtio_device *vdev)
{
	struct virtio_vsock *vs = container_of(vdev, struct virtio_vsock, vdev);

	while (vs->conns)
		vs_conn_free(vs, vs->conns);
	vs->pending_head = vs->pending_len = 0;
	vs->rx_starved = false;
	vs->rx_pushed = vs->tx_pushed = false;
	vs->reset_event = false;
}

/* Nothing of the device's own survives (see vsock.h): the transport reset connections. */
static int vs_restore(struct virtio_device *vdev, struct dev_state_in *in, uint32_t version)
{
	struct virtio_vsock *vs = container_of(vdev, struct virtio_vsock, vdev);

	(void)version;
	if (!virtio_state_end(in))
		return -EBADMSG;
	vs->reset_event = true;
	return 0;
}

static void vs_restarted(struct virtio_device *vdev)
{
	if (virtio_device_is_live(vdev))
		vs_send_event(container_of(vdev, struct virtio_vsock, vdev));
}

static void vs_destroy(struct virtio_device *vdev)
{
	virtio_vsock_destroy(container_of(vdev, struct virtio_vsock, vdev));
}

static void vs_config_read(struct virtio_device *vdev, uint32_t offset, void *data, uint32_t len)
{
	memcpy(data, container_of(vdev, struct virtio_vsock, vdev)->config + offset, len);
}

static const struct virtio_device_ops virtio_vsock_ops = {
    .config_read = vs_config_read,
    .queue_notify = vs_queue_notify,
    .reset = vs_reset,
    .restore = vs_restore,
    .restarted = vs_restarted,
    .destroy = vs_destroy,
};

int virtio_vsock_create(const struct virtio_vsock_params *params, struct virtio_vsock **out)
{
	struct sockaddr_un sa;
	struct virtio_vsock *vs;
	int r;

	*out = NULL;
	if (params->guest_cid <= VIRTIO_VSOCK_HOST_CID || params->guest_cid == UINT32_MAX ||
	    !params->socket)
		return -EINVAL;
	/* PATH_<port> must fit too. */
	if (strlen(params->socket) + 12 > sizeof(sa.sun_path)) {
		log_error("vsock socket path '%s' is too long (at most %zu bytes)", params->socket,
		          sizeof(sa.sun_path) - 12);
		return -ENAMETOOLONG;
	}
	vs = calloc(1, sizeof(*vs));
	if (!vs)
		return -ENOMEM;
	vs->listen_fd = -1;
	vs->guest_cid = params->guest_cid;
	vs->next_local_port = VSOCK_LOCAL_PORT_FIRST;
	pci_cfg_set32(vs->config, 0, params->guest_cid);
	vs->path = strdup(params->socket);
	if (!vs->path) {
		free(vs);
		return -ENOMEM;
	}
	/* Only a stale socket of ours is replaced; the file is mode 0600 whatever the umask. */
	r = unix_listen(params->socket, 0600, 64);
	if (r < 0) {
		log_error("vsock socket '%s': %s", params->socket, fs_strerror(r));
		free(vs->path);
		free(vs);
		return r;
	}
	vs->listen_fd = r;
	for (unsigned int q = 0; q < 3; q++)
		virtq_init(&vs->vqs[q], VIRTIO_VSOCK_QUEUE_SIZE);
	vs->vdev = (struct virtio_device){
	    .ops = &virtio_vsock_ops,
	    .name = "virtio-vsock",
	    .device_id = VIRTIO_ID_VSOCK,
	    .class_code = VSOCK_PCI_CLASS,
	    .features = VIRTIO_BIT(VIRTIO_VSOCK_F_STREAM) |
	                VIRTIO_BIT(VIRTIO_F_RING_INDIRECT_DESC) |
	                VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX),
	    .config_size = VIRTIO_VSOCK_CFG_SIZE,
	    .nr_queues = 3,
	    .vqs = vs->vqs,
	};
	*out = vs;
	return 0;
}

struct virtio_device *virtio_vsock_vdev(struct virtio_vsock *vs)
{
	return &vs->vdev;
}

int virtio_vsock_start(struct virtio_vsock *vs)
{
	int r;

	virtio_device_lock(&vs->vdev);
	r = virtio_device_watch(&vs->vdev, vs->listen_fd, EPOLLIN, vs_accept, vs);
	virtio_device_unlock(&vs->vdev);
	vs->started = r == 0;
	return r;
}

void virtio_vsock_destroy(struct virtio_vsock *vs)
{
	if (!vs)
		return;
	/* The transport is gone: its watches with it. */
	for (struct vsock_conn *c = vs->conns; c; c = c->next)
		c->watched = false;
	while (vs->conns)
		vs_conn_free(vs, vs->conns);
	if (vs->listen_fd >= 0) {
		close(vs->listen_fd);
		unlink(vs->path);
	}
	free(vs->path);
	free(vs);
}
