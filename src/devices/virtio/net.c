/* SPDX-License-Identifier: MIT */
/*
 * virtio-net (virtio 1.2 §5.1) on a switch port (net/netport.h). See net.h.
 *
 * Everything runs on the device's I/O thread, under the device lock: the
 * transmit queue's notifications, the receive queue's (new buffers), and the
 * port socket's readiness. The socket is watched for input while the guest
 * has receive buffers (or no driver is running, when frames are read and
 * dropped as a NIC that is down drops them) and no frame read is waiting
 * in the device, and for output only while transmit chains wait for room.
 *
 * Receive chains are taken from the queue only as a frame needs them and,
 * when the queue runs dry in the middle of a frame, kept (rx_held, in the
 * order popped) with the frame in the device's buffer until the guest posts
 * more. So a frame is written only once all the chains it needs are in
 * hand, and the chains the device holds are always its most recent pops
 * (ops->held). Transmit chains likewise: a batch is sent in the order
 * popped, and the chains that wait for room are its last.
 *
 * The system calls are batched (recvmmsg, sendmmsg, NET_RX_MMSG and
 * NET_TX_MMSG messages): per frame, the device's time went mostly to
 * entering the kernel (README, "virtio-net" under "Benchmark"). With a
 * switch that takes them, the messages are batches of frames too
 * (netport.h, step 4): the kernel's work per message was what was left.
 */
#include "devices/virtio/net.h"

#include "core/log.h"
#include "net/netport.h"

#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define NET_PCI_CLASS 0x020000 /* network controller, Ethernet */
#define NET_RX_CHAIN_IOV 64    /* buffers of one receive chain (Linux's big packets use 19) */
#define NET_RX_BATCH 64        /* frames read per socket event, so transmit gets its turn */
#define NET_RX_MMSG 32         /* messages per recvmmsg() */
#define NET_RX_MMSG_BATCHES 2  /* batch messages per recvmmsg(): up to 128 frames */
#define NET_TX_BATCH 256       /* frames sent per notification, so receive gets its turn */
#define NET_TX_MMSG 32         /* messages per sendmmsg() */
#define NET_TX_IOV (2 * VIRTIO_NET_QUEUE_SIZE) /* a batch's chains' buffers: two of the longest */
#define NET_VLAN_LEN 4

struct net_rx_chain {
	struct virtq_req req;
	struct iovec iov[NET_RX_CHAIN_IOV];
};

/* A transmit chain taken from the queue and its message (or record of a batch). */
struct net_tx_msg {
	struct virtq_req req;
	struct netport_rec rec;       /* .len: batches only */
	unsigned int iov_first, niov; /* its buffers in tx_msg: header, frame, padding */
	uint32_t flen;                /* the frame's bytes */
	size_t size;                  /* on the wire: a record with its padding in a batch */
	bool drop;                    /* given back unsent (counted) */
};

struct virtio_net {
	struct virtio_device vdev;
	struct virtq vqs[2];
	uint8_t config[VIRTIO_NET_CFG_SIZE];
	uint8_t mac[6];
	uint16_t mtu;
	char name[DEVICE_NAME_MAX];
	int fd;
	uint32_t events; /* what fd is watched for */
	bool watched;
	bool started;

	/*
	 * Transmit: a batch of chains taken from the queue, sent with
	 * sendmmsg(); those from tx_sent on wait for socket room (held).
	 */
	struct net_tx_msg tx[NET_TX_MMSG];
	struct mmsghdr tx_mm[NET_TX_MMSG];
	unsigned int tx_mfirst[NET_TX_MMSG + 1];           /* message k: chains from tx_mfirst[k] */
	struct iovec tx_iov[NET_TX_IOV];                   /* the chains' buffers */
	struct iovec tx_msg[NET_TX_IOV + 2 * NET_TX_MMSG]; /* each chain: header, frame, padding */
	unsigned int tx_n, tx_sent;
	unsigned int batch; /* the switch takes batches of this many frames; 0: no batches */

	/*
	 * Receive: messages read from the port, up to NET_RX_MMSG with one
	 * system call; the first not yet delivered (pending), and the chains
	 * taken for it.
	 */
	uint8_t *rxbufs;                /* NET_RX_MMSG slots of rx_slot bytes, or batch slots */
	size_t rx_slot;                 /* a netport header and the longest frame the MTU allows */
	uint32_t rx_size[NET_RX_MMSG];  /* each message's size before truncation; 0: the end */
	unsigned int rx_next, rx_count; /* messages rx_next..rx_count-1 are still to be looked at */
	bool rx_batches;                /* they are batches (read with batch set) */
	const uint8_t *rx_msg;          /* the batch whose records are being taken; NULL: none */
	size_t rx_msg_len, rx_msg_off;
	unsigned int rx_msg_count;
	uint8_t *rxbuf;               /* the pending message: one of the slots */
	size_t rx_len;                /* bytes of the pending message; 0: none */
	struct net_rx_chain *rx_held; /* a ring of VIRTIO_NET_QUEUE_SIZE */
	unsigned int rx_head, rx_nheld;
	bool rx_starved; /* the guest posted no buffer the last time one was wanted */
	bool rx_pushed, tx_pushed;

	struct virtio_net_stats stats;
};

static void net_port_io(struct virtio_device *vdev, int fd, uint32_t revents, void *arg);
static void net_tx_drop_held(struct virtio_net *net);

static bool net_live(const struct virtio_net *net)
{
	return virtio_device_is_live(&net->vdev);
}

/* The longest frame the MTU allows: the Ethernet header, a VLAN tag, @mtu of payload. */
static size_t net_frame_max(const struct virtio_net *net)
{
	return (size_t)net->mtu + NETPORT_FRAME_MIN + NET_VLAN_LEN;
}

/* A receive slot for one message: the header and the longest frame, 4-byte aligned. */
static size_t net_rx_frame_slot(unsigned int mtu)
{
	return (sizeof(struct netport_hdr) + mtu + NETPORT_FRAME_MIN + NET_VLAN_LEN + 3) &
	       ~(size_t)3;
}

/* A receive slot for a batch (records are 4-byte aligned from its start). */
static size_t net_rx_batch_slot(void)
{
	return (NETPORT_BATCH_MSG_MAX + 3) & ~(size_t)3;
}

/* ------------------------------------------------------------ the port */

/* Watch the port for what the device can take now (nothing: not at all, see vsock.c). */
static void net_update_watch(struct virtio_net *net)
{
	uint32_t ev = 0;

	if (net->fd < 0 || !net->started)
		return;
	if (!net_live(net) ||
	    (!net->rx_starved && !net->rx_len && !net->rx_msg && net->rx_next == net->rx_count))
		ev |= EPOLLIN;
	if (net->tx_n > net->tx_sent)
		ev |= EPOLLOUT;
	if (net->watched && ev == net->events)
		return;
	if (!ev) {
		if (net->watched)
			virtio_device_unwatch(&net->vdev, net->fd);
		net->watched = false;
		return;
	}
	if (virtio_device_watch(&net->vdev, net->fd, ev, net_port_io, net) == 0) {
		net->watched = true;
		net->events = ev;
	}
}

static void net_set_link(struct virtio_net *net, bool up)
{
	uint16_t status = up ? VIRTIO_NET_S_LINK_UP : 0;

	net->stats.link_up = up;
	if (pci_cfg_get16(net->config, VIRTIO_NET_CFG_STATUS) == status)
		return;
	pci_cfg_set16(net->config, VIRTIO_NET_CFG_STATUS, status);
	if (net->vdev.transport)
		virtio_device_config_changed(&net->vdev);
}

/* The switch went away (or broke the protocol for good): the link is down. */
static void net_link_down(struct virtio_net *net, const char *why)
{
	if (net->fd < 0)
		return;
	log_warn("%s: link down: %s", net->vdev.name, why);
	if (net->watched)
		virtio_device_unwatch(&net->vdev, net->fd);
	net->watched = false;
	close(net->fd);
	net->fd = -1;
	net_tx_drop_held(net);
	net_set_link(net, false);
}

static void net_notify(struct virtio_net *net)
{
	if (net->rx_pushed)
		virtio_device_notify_queue(&net->vdev, VIRTIO_NET_Q_RX);
	if (net->tx_pushed)
		virtio_device_notify_queue(&net->vdev, VIRTIO_NET_Q_TX);
	net->rx_pushed = net->tx_pushed = false;
}

static void net_needs_reset(struct virtio_net *net, const char *why)
{
	net->stats.resets_asked++;
	virtio_device_set_needs_reset(&net->vdev, why);
}

/* ------------------------------------------------------------ transmit */

/* How many chains of the batch wait for socket room (the batch's last pops). */
static unsigned int net_tx_held(const struct virtio_net *net)
{
	return net->tx_n - net->tx_sent;
}

/* Give back the chains of the batch not sent, dropped (the link is gone or the device reset). */
static void net_tx_drop_held(struct virtio_net *net)
{
	for (unsigned int i = net->tx_sent; i < net->tx_n; i++) {
		virtq_push(&net->vqs[VIRTIO_NET_Q_TX], net->tx[i].req.head, 0);
		net->stats.tx_dropped++;
		net->tx_pushed = true;
	}
	net->tx_n = net->tx_sent = 0;
}

/*
 * Send the batch in order, a run of messages per sendmmsg(), and give the
 * chains back. Returns 1 when all went (or were dropped), 0 when the
 * socket is full (the rest stays held), -1 when the link went down.
 */
static int net_tx_flush(struct virtio_net *net)
{
	struct virtq *vq = &net->vqs[VIRTIO_NET_Q_TX];

	while (net->tx_sent < net->tx_n) {
		unsigned int first = net->tx_sent, i = first, nm = 0;
		int r;

		if (net->tx[first].drop) {
			virtq_push(vq, net->tx[first].req.head, 0);
			net->tx_pushed = true;
			net->stats.tx_dropped++;
			net->tx_sent++;
			continue;
		}
		/* The run of chains to send: one message each, or batches the switch takes. */
		while (i < net->tx_n && !net->tx[i].drop) {
			unsigned int j = i + 1;
			size_t bytes = net->tx[i].size;

			while (net->batch && j < net->tx_n && !net->tx[j].drop &&
			       j - i < net->batch && bytes + net->tx[j].size <= NETPORT_BATCH_BYTES)
				bytes += net->tx[j++].size;
			net->tx_mm[nm] = (struct mmsghdr){
			    .msg_hdr = {.msg_iov = net->tx_msg + net->tx[i].iov_first,
			                .msg_iovlen = net->tx[j - 1].iov_first +
			                              net->tx[j - 1].niov - net->tx[i].iov_first}};
			net->tx_mfirst[nm++] = i;
			i = j;
		}
		net->tx_mfirst[nm] = i;
		r = sendmmsg(net->fd, net->tx_mm, nm, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (r < 0 && (errno == EAGAIN || errno == ENOBUFS || errno == EINTR))
			return 0;
		if (r < 0 && errno == EMSGSIZE) {
			net->tx[first].drop = true; /* too big for the socket: this one only */
			continue;
		}
		if (r < 0) {
			net_link_down(net, strerror(errno));
			return -1;
		}
		for (i = first; i < net->tx_mfirst[r]; i++) {
			virtq_push(vq, net->tx[i].req.head, 0);
			net->stats.tx_frames++;
			net->stats.tx_bytes += net->tx[i].flen;
		}
		net->tx_pushed = true;
		net->tx_sent = net->tx_mfirst[r];
	}
	net->tx_n = net->tx_sent = 0;
	return 1;
}

/*
 * Check the chain just popped into batch entry @m and build its message or
 * record (its buffers from tx_msg at *@msg_used). Returns 1 to send, 0 to
 * drop (counted when it is given back), -EIO malformed.
 */
static int net_tx_prepare(struct virtio_net *net, struct net_tx_msg *m, unsigned int *msg_used)
{
	static const uint8_t pad[3];
	struct virtq_req *req = &m->req;
	struct iovec *out = net->tx_msg + *msg_used;
	struct virtio_net_hdr h;
	uint64_t len;
	int cnt;

	if (req->nr_in || req->out_len < VIRTIO_NET_HDR_SIZE ||
	    iov_to_buf(req->iov, req->nr_out, 0, &h, VIRTIO_NET_HDR_SIZE) != VIRTIO_NET_HDR_SIZE)
		return -EIO;
	if ((h.flags & ~VIRTIO_NET_HDR_F_NEEDS_CSUM) || h.gso_type != VIRTIO_NET_HDR_GSO_NONE)
		return -EIO;
	len = req->out_len - VIRTIO_NET_HDR_SIZE;
	if ((h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) &&
	    (!virtio_device_has(&net->vdev, VIRTIO_NET_F_CSUM) ||
	     (uint64_t)h.csum_start + h.csum_offset + 2 > len))
		return -EIO;
	if (len < NETPORT_FRAME_MIN || len > net_frame_max(net) || net->fd < 0)
		return 0;
	/* The slice lies in the chain: as many iovecs as it has, or fewer; room was checked. */
	cnt = iov_slice(req->iov, req->nr_out, VIRTIO_NET_HDR_SIZE, len, out + 1, req->nr_out);
	if (cnt < 0)
		return -EIO;
	m->rec = (struct netport_rec){.len = htole32((uint32_t)(sizeof(m->rec.hdr) + len))};
	if (h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
		m->rec.hdr.flags = NETPORT_F_NEEDS_CSUM;
		m->rec.hdr.csum_start = h.csum_start;
		m->rec.hdr.csum_offset = h.csum_offset;
	}
	m->flen = (uint32_t)len;
	m->iov_first = *msg_used;
	m->niov = (unsigned int)cnt + 1;
	if (net->batch) {
		size_t padding;

		m->size = netport_rec_size(sizeof(m->rec.hdr) + len);
		padding = m->size - NETPORT_REC_HDR - sizeof(m->rec.hdr) - len;
		out[0] = (struct iovec){&m->rec, sizeof(m->rec)};
		if (padding)
			out[m->niov++] = (struct iovec){(void *)pad, padding};
	} else {
		m->size = sizeof(m->rec.hdr) + len;
		out[0] = (struct iovec){&m->rec.hdr, sizeof(m->rec.hdr)};
	}
	*msg_used += m->niov;
	return 1;
}

/*
 * Take chains from the queue into a new batch, NET_TX_MMSG at most, while
 * the buffers have room for another chain of the longest kind. Returns the
 * chains taken, or -EIO (malformed: the device asked for its reset).
 * *@empty: the queue was found empty (notifications are back on).
 */
static int net_tx_fill(struct virtio_net *net, bool *empty)
{
	struct virtq *vq = &net->vqs[VIRTIO_NET_Q_TX];
	unsigned int iov_used = 0, msg_used = 0;

	*empty = false;
	while (net->tx_n < NET_TX_MMSG && iov_used + VIRTIO_NET_QUEUE_SIZE <= NET_TX_IOV) {
		struct net_tx_msg *m = &net->tx[net->tx_n];
		int r;

		m->req =
		    (struct virtq_req){.iov = net->tx_iov + iov_used, .cap = VIRTIO_NET_QUEUE_SIZE};
		r = virtq_pop(vq, &m->req);
		if (r == 0) {
			if (virtq_enable_notify(vq)) {
				virtq_disable_notify(vq);
				continue;
			}
			*empty = true;
			break;
		}
		if (r > 0)
			r = net_tx_prepare(net, m, &msg_used);
		if (r < 0) {
			net_needs_reset(net, "malformed transmit queue or header");
			return -EIO;
		}
		iov_used += m->req.nr_out + m->req.nr_in;
		m->drop = r == 0;
		net->tx_n++;
	}
	return (int)net->tx_n;
}

/*
 * Send what the guest queued until the queue is empty or the socket full,
 * or NET_TX_BATCH frames went: then the thread kicks itself, so that the
 * port's input gets its turn against a guest that never stops sending.
 */
static void net_process_tx(struct virtio_net *net)
{
	struct virtq *vq = &net->vqs[VIRTIO_NET_Q_TX];
	unsigned int taken = 0;

	if (net_tx_held(net) && net_tx_flush(net) == 0)
		return; /* EPOLLOUT brings us back */
	/*
	 * The guest need not notify while the device works through the queue:
	 * notifications come back on when it finds the queue empty. A full
	 * socket or the batch's end leave them off (EPOLLOUT, or the kick).
	 */
	virtq_disable_notify(vq);
	for (;;) {
		bool empty;
		int n;

		if (taken >= NET_TX_BATCH) {
			virtio_device_kick(&net->vdev, VIRTIO_NET_Q_TX);
			return;
		}
		n = net_tx_fill(net, &empty);
		taken += n > 0 ? (unsigned int)n : 0;
		/* A malformed chain was not taken: what came before it goes, as it would have. */
		if (net_tx_flush(net) == 0 || n <= 0 || empty)
			return;
	}
}

/* ------------------------------------------------------------ receive */

static struct net_rx_chain *net_rx_chain(struct virtio_net *net, unsigned int k)
{
	return &net->rx_held[(net->rx_head + k) % VIRTIO_NET_QUEUE_SIZE];
}

/*
 * Take one more receive chain. Returns 1, 0 when the queue is empty
 * (rx_starved set), -EIO after asking for a reset.
 */
static int net_rx_take(struct virtio_net *net)
{
	struct virtq *vq = &net->vqs[VIRTIO_NET_Q_RX];
	struct net_rx_chain *c;
	int r;

	if (net->rx_nheld >= vq->size)
		return 0;
	c = net_rx_chain(net, net->rx_nheld);
	c->req = (struct virtq_req){.iov = c->iov, .cap = NET_RX_CHAIN_IOV};
	r = virtq_pop(vq, &c->req);
	if (r == 0 && virtq_enable_notify(vq)) {
		r = virtq_pop(vq, &c->req);
		if (r != 0)
			virtq_disable_notify(vq);
	}
	if (r == 0) {
		net->rx_starved = true;
		return 0;
	}
	if (r > 0 && (c->req.nr_out || c->req.in_len < VIRTIO_NET_HDR_SIZE))
		r = -EIO;
	if (r < 0) {
		net_needs_reset(net, "malformed receive queue");
		return -EIO;
	}
	net->rx_nheld++;
	return 1;
}

/* Write the pending frame into the first @n held chains and give them back. */
static void net_rx_write(struct virtio_net *net, unsigned int n)
{
	const struct netport_hdr *nh = (const struct netport_hdr *)net->rxbuf;
	const uint8_t *frame = net->rxbuf + sizeof(*nh);
	size_t len = net->rx_len - sizeof(*nh), done = 0;
	struct virtio_net_hdr h = {.num_buffers = (uint16_t)n};

	if (nh->flags & NETPORT_F_NEEDS_CSUM) {
		h.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
		h.csum_start = nh->csum_start;
		h.csum_offset = nh->csum_offset;
	}
	for (unsigned int k = 0; k < n; k++) {
		struct net_rx_chain *c = net_rx_chain(net, 0);
		const struct iovec *iov = c->req.iov + c->req.nr_out;
		size_t off = 0, room = c->req.in_len > UINT32_MAX ? UINT32_MAX : c->req.in_len;
		size_t put;

		if (k == 0) {
			iov_from_buf(iov, c->req.nr_in, 0, &h, VIRTIO_NET_HDR_SIZE);
			off = VIRTIO_NET_HDR_SIZE;
		}
		put = room - off < len - done ? room - off : len - done;
		iov_from_buf(iov, c->req.nr_in, off, frame + done, put);
		done += put;
		virtq_push(&net->vqs[VIRTIO_NET_Q_RX], c->req.head, (uint32_t)(off + put));
		virtq_mark_written(&net->vqs[VIRTIO_NET_Q_RX], &c->req);
		net->rx_head = (net->rx_head + 1) % VIRTIO_NET_QUEUE_SIZE;
		net->rx_nheld--;
	}
	net->rx_pushed = true;
	net->stats.rx_frames++;
	net->stats.rx_bytes += len;
}

/*
 * Deliver the pending frame: take chains until it fits (one chain without
 * MRG_RXBUF). Returns true when it is done with (delivered or dropped),
 * false when it waits for buffers (or the device for a reset).
 */
static bool net_rx_deliver(struct virtio_net *net)
{
	bool mrg = virtio_device_has(&net->vdev, VIRTIO_NET_F_MRG_RXBUF);
	uint64_t need = VIRTIO_NET_HDR_SIZE + net->rx_len - sizeof(struct netport_hdr);
	uint64_t have = 0;
	unsigned int n = 0;

	for (;;) {
		if (n == net->rx_nheld) {
			int r = net_rx_take(net);

			if (r < 0)
				return false;
			if (r == 0 && !net->rx_starved)
				break; /* every chain the queue can hold is taken: too small */
			if (r == 0)
				return false;
		}
		have += net_rx_chain(net, n)->req.in_len;
		n++;
		if (have >= need)
			break;
		if (!mrg)
			break;
	}
	if (have < need) {
		/* The chains stay held for the next frame. */
		net->stats.rx_dropped_room++;
		net->rx_len = 0;
		return true;
	}
	net_rx_write(net, n);
	net->rx_len = 0;
	return true;
}

/* Check the message of @n bytes just read (the size before truncation); true to deliver. */
static bool net_rx_check(struct virtio_net *net, size_t n)
{
	struct netport_hdr *nh = (struct netport_hdr *)net->rxbuf;
	size_t len;

	if (n > NETPORT_MSG_MAX || n < sizeof(*nh) + NETPORT_FRAME_MIN ||
	    (nh->flags & ~NETPORT_F_NEEDS_CSUM) || nh->reserved0 || nh->reserved1) {
		net->stats.rx_dropped_bad++;
		return false;
	}
	len = n - sizeof(*nh);
	if (len > net_frame_max(net)) {
		net->stats.rx_dropped_mtu++;
		return false;
	}
	if (nh->flags & NETPORT_F_NEEDS_CSUM) {
		if ((size_t)nh->csum_start + nh->csum_offset + 2 > len) {
			net->stats.rx_dropped_bad++;
			return false;
		}
		if (!virtio_device_has(&net->vdev, VIRTIO_NET_F_GUEST_CSUM)) {
			if (netport_csum_complete(net->rxbuf + sizeof(*nh), len, nh->csum_start,
			                          nh->csum_offset) < 0) {
				net->stats.rx_dropped_bad++;
				return false;
			}
			*nh = (struct netport_hdr){0};
		}
	}
	return true;
}

/*
 * Deliver the pending message, then the rest of the batch read, while the
 * guest takes them. A device waiting for its reset (or not started) drops,
 * and never spins on, input: the pending message as a lifecycle drop, the
 * others as a NIC that is down drops them.
 */
static void net_rx_drain(struct virtio_net *net)
{
	bool live = net_live(net);

	for (;;) {
		uint32_t size;

		if (net->rx_len && !live) {
			net->stats.rx_dropped_lifecycle++;
			net->rx_len = 0;
		}
		if (net->rx_len && (!net_rx_deliver(net) || !net_live(net)))
			return; /* no buffers yet, or a malformed ring: it waits for its reset */
		if (net->rx_msg) {
			const uint8_t *rec;
			size_t rec_len;
			int r = netport_batch_next(net->rx_msg, net->rx_msg_len, &net->rx_msg_off,
			                           &net->rx_msg_count, NETPORT_BATCH_MAX, &rec,
			                           &rec_len);

			if (r <= 0) {
				/* The end, or framing broken: the rest of the batch is dropped. */
				net->stats.rx_dropped_bad += r < 0;
				net->rx_msg = NULL;
				continue;
			}
			/* Records are 4-byte aligned in a slot: the header may be read in place. */
			net->rxbuf = (uint8_t *)rec;
			if (!live)
				net->stats.rx_dropped_room++;
			else if (net_rx_check(net, rec_len))
				net->rx_len = rec_len;
			continue;
		}
		if (net->rx_next == net->rx_count)
			return;
		net->rxbuf = net->rxbufs + net->rx_next * net->rx_slot;
		size = net->rx_size[net->rx_next++];
		if (size == 0) {
			/* SOCK_SEQPACKET: 0 bytes is the end (and an empty message is no frame). */
			net->rx_next = net->rx_count;
			net_link_down(net, "the switch closed the port");
			return;
		}
		if (net->rx_batches) {
			if (size > net->rx_slot) {
				net->stats.rx_dropped_bad++; /* truncated */
				continue;
			}
			net->rx_msg = net->rxbuf;
			net->rx_msg_len = size;
			net->rx_msg_off = 0;
			net->rx_msg_count = 0;
			continue;
		}
		if (!live)
			net->stats.rx_dropped_room++; /* no driver: the NIC is down */
		else if (net_rx_check(net, size))
			net->rx_len = size;
	}
}

/* Read a batch of messages from the port. Returns how many (0: none, or the link went down). */
static int net_rx_read(struct virtio_net *net)
{
	struct mmsghdr mm[NET_RX_MMSG];
	struct iovec iov[NET_RX_MMSG];
	unsigned int nr;
	int n;

	/* Batches: fewer, larger slots (the buffer has room for both, see create). */
	net->rx_batches = net->batch != 0;
	net->rx_slot = net->rx_batches ? net_rx_batch_slot() : net_rx_frame_slot(net->mtu);
	nr = net->rx_batches ? NET_RX_MMSG_BATCHES : NET_RX_MMSG;
	for (unsigned int i = 0; i < nr; i++) {
		iov[i] = (struct iovec){net->rxbufs + i * net->rx_slot, net->rx_slot};
		mm[i] = (struct mmsghdr){.msg_hdr = {.msg_iov = &iov[i], .msg_iovlen = 1}};
	}
	/* MSG_TRUNC: msg_len is the message's size, so an oversized one is told apart. */
	n = recvmmsg(net->fd, mm, nr, MSG_DONTWAIT | MSG_TRUNC, NULL);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n < 0) {
		net_link_down(net, strerror(errno));
		return 0;
	}
	for (int i = 0; i < n; i++)
		net->rx_size[i] = mm[i].msg_len;
	net->rx_next = 0;
	net->rx_count = (unsigned int)n;
	return n;
}

/* Read frames from the port while the guest takes them, NET_RX_BATCH at most per event. */
static void net_rx_from_port(struct virtio_net *net)
{
	for (int i = 0; i < NET_RX_BATCH / NET_RX_MMSG; i++) {
		net_rx_drain(net);
		if (net->rx_len || net->rx_msg || net->rx_next < net->rx_count || net->fd < 0 ||
		    net->rx_starved || !net_rx_read(net))
			return;
	}
	net_rx_drain(net);
}

static void net_port_io(struct virtio_device *vdev, int fd, uint32_t revents, void *arg)
{
	struct virtio_net *net = arg;

	(void)vdev;
	(void)fd;
	if ((revents & EPOLLOUT) && net_tx_held(net) && net_live(net))
		net_process_tx(net);
	if (net->fd >= 0 && (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		net_rx_from_port(net);
	/* Hung up while not reading (the guest posted no buffers): the link is gone anyway. */
	if (net->fd >= 0 && (revents & (EPOLLHUP | EPOLLERR)) && !(net->events & EPOLLIN))
		net_link_down(net, "the switch closed the port");
	net_update_watch(net);
	net_notify(net);
}

/* ------------------------------------------------------------ virtio ops */

static void net_queue_notify(struct virtio_device *vdev, unsigned int q)
{
	struct virtio_net *net = container_of(vdev, struct virtio_net, vdev);

	if (q == VIRTIO_NET_Q_RX) {
		/* Buffers came: no more notifications until the device runs out again. */
		virtq_disable_notify(&net->vqs[VIRTIO_NET_Q_RX]);
		net->rx_starved = false;
		net_rx_drain(net);
	} else if (q == VIRTIO_NET_Q_TX) {
		net_process_tx(net);
	}
	net_update_watch(net);
	net_notify(net);
}

static int net_activate(struct virtio_device *vdev)
{
	struct virtio_net *net = container_of(vdev, struct virtio_net, vdev);

	/* Frames read while no driver ran were dropped; from now on they wait for buffers. */
	net->rx_starved = false;
	net_update_watch(net);
	return 0;
}

/* Forget the held chains (the driver's reset takes them back) and the pending frame. */
static void net_reset(struct virtio_device *vdev)
{
	struct virtio_net *net = container_of(vdev, struct virtio_net, vdev);

	/* A batch read counts as one. */
	net->stats.rx_dropped_lifecycle +=
	    (net->rx_len != 0) + (net->rx_msg != NULL) + net->rx_count - net->rx_next;
	net->rx_len = 0;
	net->rx_msg = NULL;
	net->rx_next = net->rx_count = 0;
	net->rx_head = net->rx_nheld = 0;
	net->tx_n = net->tx_sent = 0;
	net->rx_starved = false;
	net->rx_pushed = net->tx_pushed = false;
	net_update_watch(net);
}

static unsigned int net_held(struct virtio_device *vdev, unsigned int q)
{
	struct virtio_net *net = container_of(vdev, struct virtio_net, vdev);

	if (q == VIRTIO_NET_Q_RX)
		return net->rx_nheld;
	return q == VIRTIO_NET_Q_TX ? net_tx_held(net) : 0;
}

/*
 * The device's own state: its MAC and MTU, so that a restore onto another
 * adapter is refused rather than surprising the guest's driver.
 */
static int net_save(struct virtio_device *vdev, struct dev_state *out)
{
	struct virtio_net *net = container_of(vdev, struct virtio_net, vdev);

	ds_put_bytes(out, net->mac, sizeof(net->mac));
	ds_put_u16(out, net->mtu);
	return 0;
}

static int net_restore(struct virtio_device *vdev, struct dev_state_in *in, uint32_t version)
{
	struct virtio_net *net = container_of(vdev, struct virtio_net, vdev);
	uint8_t mac[6];
	uint16_t mtu;
	char a[18], b[18];

	(void)version;
	dsi_get_bytes(in, mac, sizeof(mac));
	mtu = dsi_get_u16(in);
	if (!in->bad) {
		netport_mac_format(mac, a);
		netport_mac_format(net->mac, b);
		dsi_check(in, memcmp(mac, net->mac, sizeof(mac)) == 0,
		          "the adapter had MAC %s, this one has %s", a, b);
		dsi_check(in, mtu == net->mtu, "the adapter had MTU %u, this one has %u", mtu,
		          net->mtu);
	}
	return virtio_state_end(in) ? 0 : -EBADMSG;
}

static void net_config_read(struct virtio_device *vdev, uint32_t offset, void *data, uint32_t len)
{
	memcpy(data, container_of(vdev, struct virtio_net, vdev)->config + offset, len);
}

static void net_destroy(struct virtio_device *vdev)
{
	virtio_net_destroy(container_of(vdev, struct virtio_net, vdev));
}

static const struct virtio_device_ops virtio_net_ops = {
    .config_read = net_config_read,
    .activate = net_activate,
    .queue_notify = net_queue_notify,
    .reset = net_reset,
    .held = net_held,
    .save = net_save,
    .restore = net_restore,
    .destroy = net_destroy,
};

int virtio_net_create(const struct virtio_net_params *params, struct virtio_net **out)
{
	unsigned int mtu = params->mtu ? params->mtu : VIRTIO_NET_MTU_DEFAULT;
	struct virtio_net *net;

	*out = NULL;
	if (mtu < VIRTIO_NET_MTU_MIN || mtu > VIRTIO_NET_MTU_MAX || (params->mac[0] & 1)) {
		if (params->fd >= 0)
			close(params->fd);
		return -EINVAL;
	}
	net = calloc(1, sizeof(*net));
	if (net) {
		size_t frames = NET_RX_MMSG * net_rx_frame_slot(mtu);
		size_t batches = NET_RX_MMSG_BATCHES * net_rx_batch_slot();

		net->rx_slot = net_rx_frame_slot(mtu);
		net->rxbufs = malloc(frames > batches ? frames : batches);
		net->rx_held = calloc(VIRTIO_NET_QUEUE_SIZE, sizeof(*net->rx_held));
	}
	if (!net || !net->rxbufs || !net->rx_held) {
		if (net) {
			free(net->rxbufs);
			free(net->rx_held);
		}
		free(net);
		if (params->fd >= 0)
			close(params->fd);
		return -ENOMEM;
	}
	net->fd = params->fd;
	net->batch = params->fd >= 0 ? params->batch : 0;
	snprintf(net->name, sizeof(net->name), "%s", params->name ? params->name : "virtio-net");
	net->mtu = (uint16_t)mtu;
	memcpy(net->mac, params->mac, sizeof(net->mac));
	memcpy(net->config + VIRTIO_NET_CFG_MAC, net->mac, sizeof(net->mac));
	pci_cfg_set16(net->config, VIRTIO_NET_CFG_MAX_PAIRS, 1);
	pci_cfg_set16(net->config, VIRTIO_NET_CFG_MTU, net->mtu);
	net_set_link(net, net->fd >= 0);
	for (unsigned int q = 0; q < 2; q++)
		virtq_init(&net->vqs[q], VIRTIO_NET_QUEUE_SIZE);
	net->vdev = (struct virtio_device){
	    .ops = &virtio_net_ops,
	    .name = net->name,
	    .device_id = VIRTIO_ID_NET,
	    .class_code = NET_PCI_CLASS,
	    .features = VIRTIO_BIT(VIRTIO_NET_F_CSUM) | VIRTIO_BIT(VIRTIO_NET_F_GUEST_CSUM) |
	                VIRTIO_BIT(VIRTIO_NET_F_MTU) | VIRTIO_BIT(VIRTIO_NET_F_MAC) |
	                VIRTIO_BIT(VIRTIO_NET_F_MRG_RXBUF) | VIRTIO_BIT(VIRTIO_NET_F_STATUS) |
	                VIRTIO_BIT(VIRTIO_F_RING_INDIRECT_DESC) |
	                VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX),
	    .config_size = VIRTIO_NET_CFG_SIZE,
	    .nr_queues = 2,
	    .vqs = net->vqs,
	};
	*out = net;
	return 0;
}

struct virtio_device *virtio_net_vdev(struct virtio_net *net)
{
	return &net->vdev;
}

int virtio_net_start(struct virtio_net *net)
{
	virtio_device_lock(&net->vdev);
	net->started = true;
	net_update_watch(net);
	virtio_device_unlock(&net->vdev);
	return net->fd < 0 || net->watched ? 0 : -ENOMEM;
}

void virtio_net_attach(struct virtio_net *net, int fd)
{
	virtio_device_lock(&net->vdev);
	if (net->fd >= 0) {
		if (net->watched)
			virtio_device_unwatch(&net->vdev, net->fd);
		net->watched = false;
		close(net->fd);
	}
	net->fd = fd;
	net->batch = 0; /* a port joined elsewhere (cmd_nic.c) asks for no batches */
	net_set_link(net, fd >= 0);
	if (fd < 0)
		net_tx_drop_held(net);
	net_update_watch(net);
	net_notify(net);
	virtio_device_unlock(&net->vdev);
}

void virtio_net_get_stats(struct virtio_net *net, struct virtio_net_stats *out)
{
	virtio_device_lock(&net->vdev);
	*out = net->stats;
	virtio_device_unlock(&net->vdev);
}

void virtio_net_destroy(struct virtio_net *net)
{
	if (!net)
		return;
	/* The transport is gone, and its watches with it. */
	if (net->fd >= 0)
		close(net->fd);
	free(net->rxbufs);
	free(net->rx_held);
	free(net);
}
