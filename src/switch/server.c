// SPDX-License-Identifier: MIT
/*
 * The switch process (`nestvm switch serve NAME`, switch_store.h): one
 * thread, one poll() loop over the ports socket, the adapters' sockets, the
 * control socket and its clients, the uplink (tap, or libslirp's sockets),
 * and a signalfd. Nothing it does blocks: every socket is non-blocking, a
 * peer that does not read loses frames (counted), a peer that does not send
 * its hello in time is dropped.
 */
#include "core/clock.h"
#include "core/fsutil.h"
#include "core/log.h"
#include "manager/protocol.h"
#include "switch/confine.h"
#include "switch/frame.h"
#include "switch/swcore.h"
#include "switch/switch_api.h"
#include "switch/switch_store.h"
#include "switch/uplink.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define SWD_MAX_PENDING 8
#define SWD_HELLO_TIMEOUT_MS 5000
#define SWD_MAX_CLIENTS 8
#define SWD_CLIENT_IDLE_MS 10000
#define SWD_CLIENT_LINE_MAX 65536
#define SWD_BATCH 64    /* frames read from the tap per turn: fairness between ports */
#define SWD_RX_BATCH 32 /* messages per recvmmsg() from a port */
#define SWD_RX_ROUNDS 2 /* recvmmsg() calls per port per turn */
#define SWD_AGE_EVERY_MS 10000
#define SWD_LEASES_EVERY_MS 1000
#define SWD_PORT_SNDBUF (1 << 20)

/* Who handles a poll entry. */
enum {
	SWD_OWN_SIGNAL = -1,
	SWD_OWN_PORTS_LISTEN = -2,
	SWD_OWN_CONTROL_LISTEN = -3,
	SWD_OWN_TAP = -4,
	SWD_OWN_NAT = -5,
	SWD_OWN_PENDING = 1000, /* + index */
	SWD_OWN_CLIENT = 2000,  /* + index */
	                        /* 0..SW_MAX_PORTS-1: a port */
};

struct swd_pending {
	int fd; /* -1: free */
	int64_t deadline_ms;
};

struct swd_client {
	int fd; /* -1: free */
	char in[SWD_CLIENT_LINE_MAX];
	size_t in_len;
	struct api_outbox out; /* replies not sent yet */
	bool in_ended;         /* it shut its side: closed once out is sent */
	int64_t last_ms;
};

#define SWD_TXQ 64            /* frames queued for one VM port */
#define SWD_TXBUF (256 << 10) /* copies of frames queued from elsewhere than rx[] */

/*
 * Frames queued for one VM port, sent with one sendmmsg(): one message
 * each, or batches of up to the port's count (netport.h, step 4). Entry
 * i's buffers are iov[first[i]] to iov[first[i + 1]]: its record header,
 * the frame, the padding.
 */
struct swd_txq {
	unsigned int n, niov;
	struct netport_rec rec[SWD_TXQ];
	size_t size[SWD_TXQ]; /* its bytes on the wire (a batch's record, padding included) */
	unsigned int first[SWD_TXQ + 1];
	struct iovec iov[3 * SWD_TXQ];
	struct mmsghdr mm[SWD_TXQ];
	unsigned int mfirst[SWD_TXQ + 1]; /* message k: entries mfirst[k] to mfirst[k + 1] */
};

struct swd {
	struct store sws;
	const char *name;
	struct switch_def def;
	struct sw_core core;
	struct dhcp_server dhcp;
	struct switch_nat *nat;
	struct switch_confinement conf;
	int ports_fd, control_fd, tap_fd, sig_fd;
	int dir_fd; /* its directory: the way in once it runs as its own user (confine.h) */
	struct swd_pending pending[SWD_MAX_PENDING];
	struct swd_client clients[SWD_MAX_CLIENTS];
	struct switch_pollset ps;
	char ports_path[STORE_PATH_MAX], control_path[STORE_PATH_MAX];
	char leases_path[STORE_PATH_MAX], runtime_path[STORE_PATH_MAX], dir[STORE_PATH_MAX];
	int64_t started, next_age_ms, leases_saved_ms;
	bool quit;
	uint8_t buf[NETPORT_MSG_MAX + 1];                    /* the tap's frames */
	uint8_t rx[SWD_RX_BATCH][NETPORT_BATCH_MSG_MAX + 1]; /* the ports' messages (2 MiB) */
	struct swd_txq txq[SW_MAX_PORTS];                    /* frames for each port */
	uint8_t txbuf[SWD_TXBUF]; /* queued frames of the uplink and the DHCP server */
	size_t txbuf_used;
};

static void swd_ip(uint32_t ip, char buf[INET_ADDRSTRLEN])
{
	struct in_addr in = {.s_addr = htonl(ip)};

	inet_ntop(AF_INET, &in, buf, INET_ADDRSTRLEN);
}

/* ---- port transmit ---- */

/*
 * Send @p's queued messages with sendmmsg(). They were counted as sent when
 * queued: those the socket does not take now are counted as congested
 * instead; any other error breaks the port (its owner closes it).
 */
static void swd_txq_flush(struct swd *s, unsigned int num)
{
	struct swd_txq *q = &s->txq[num];
	struct sw_port *p = &s->core.ports[num];
	unsigned int batch = p->hello.batch, nm = 0, sent = 0;

	/* Group the entries into messages: one each, or batches within the port's limits. */
	for (unsigned int i = 0; i < q->n;) {
		unsigned int j = i + 1;
		size_t bytes = q->size[i];

		while (batch && j < q->n && j - i < batch &&
		       bytes + q->size[j] <= NETPORT_BATCH_BYTES)
			bytes += q->size[j++];
		q->mm[nm] = (struct mmsghdr){.msg_hdr = {.msg_iov = &q->iov[q->first[i]],
		                                         .msg_iovlen = q->first[j] - q->first[i]}};
		q->mfirst[nm++] = i;
		i = j;
	}
	q->mfirst[nm] = q->n;
	while (sent < nm) {
		int r = sendmmsg(p->fd, q->mm + sent, nm - sent, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (r > 0) {
			sent += (unsigned int)r;
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno != EAGAIN && errno != ENOBUFS)
			p->broken = true;
		break;
	}
	for (unsigned int i = q->mfirst[sent]; i < q->n; i++) {
		p->c.frames_out--;
		p->c.bytes_out -= q->iov[q->first[i] + 1].iov_len;
		if (!p->broken)
			p->c.drop_congested++;
	}
	q->n = q->niov = 0;
}

/* Send every port's queue; then nothing refers to s->txbuf any more. */
static void swd_txq_flush_all(struct swd *s)
{
	for (unsigned int i = 1; i < SW_MAX_PORTS; i++)
		if (s->txq[i].n && s->core.ports[i].used)
			swd_txq_flush(s, i);
	s->txbuf_used = 0;
}

/*
 * To a VM port: queued, to go with the port's next sendmmsg() (in
 * batches, for a port that takes them). A frame in the ports' receive
 * buffers (s->rx, stable until the next recvmmsg(), before which the
 * queues are flushed) is queued where it is; the others (the uplink's
 * frames, DHCP replies) are copied into s->txbuf first: libslirp hands
 * over a TCP window's segments, the tap SWD_BATCH frames, in one turn,
 * which went as a system call and a message each. The loop flushes every
 * queue at the end of its turn.
 */
static int swd_send_vm(struct sw_port *p, const struct netport_hdr *hdr, const uint8_t *frame,
                       size_t len)
{
	static const uint8_t pad[3];
	struct swd *s = p->opaque;
	unsigned int num = (unsigned int)(p - s->core.ports);
	struct swd_txq *q = &s->txq[num];
	const uint8_t *rx = (const uint8_t *)s->rx;
	bool batch = p->hello.batch != 0;
	size_t msg_len = sizeof(*hdr) + len;
	size_t padding = netport_rec_size(msg_len) - NETPORT_REC_HDR - msg_len;
	struct netport_rec *wire;

	if (!(frame >= rx && frame < rx + sizeof(s->rx))) {
		/* len <= NETPORT_FRAME_MAX, far less than the buffer. */
		if (len > sizeof(s->txbuf) - s->txbuf_used)
			swd_txq_flush_all(s);
		memcpy(s->txbuf + s->txbuf_used, frame, len);
		frame = s->txbuf + s->txbuf_used;
		s->txbuf_used += len;
	}
	if (q->n == SWD_TXQ)
		swd_txq_flush(s, num);
	if (p->broken)
		return -EPIPE;
	wire = &q->rec[q->n];
	*wire = (struct netport_rec){.len = htole32((uint32_t)msg_len), .hdr = *hdr};
	wire->hdr.csum_start = htole16(hdr->csum_start);
	wire->hdr.csum_offset = htole16(hdr->csum_offset);
	q->first[q->n] = q->niov;
	q->iov[q->niov++] = batch ? (struct iovec){wire, sizeof(*wire)}
	                          : (struct iovec){&wire->hdr, sizeof(wire->hdr)};
	q->iov[q->niov++] = (struct iovec){(void *)frame, len};
	if (batch && padding)
		q->iov[q->niov++] = (struct iovec){(void *)pad, padding};
	q->size[q->n] = batch ? netport_rec_size(msg_len) : msg_len;
	q->n++;
	q->first[q->n] = q->niov;
	return 0;
}

static int swd_send_tap(struct sw_port *p, const struct netport_hdr *hdr, const uint8_t *frame,
                        size_t len)
{
	(void)hdr; /* checksums were completed by the core for the uplink */
	if (write(p->fd, frame, len) < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : errno == EIO ? -EAGAIN : -errno;
	return 0;
}

static int swd_send_nat(struct sw_port *p, const struct netport_hdr *hdr, const uint8_t *frame,
                        size_t len)
{
	(void)hdr;
	switch_nat_input(p->opaque, frame, len);
	return 0;
}

static void swd_nat_rx(void *opaque, const uint8_t *frame, size_t len)
{
	struct swd *s = opaque;

	sw_input_uplink(&s->core, frame, len, mono_ms());
}

/* ---- ports ---- */

static void swd_port_close(struct swd *s, unsigned int num, const char *why)
{
	struct sw_port *p = &s->core.ports[num];
	char mac[18];

	netport_mac_format(p->hello.mac, mac);
	log_info("port %u (VM '%s' adapter %u, %s) disconnected: %s", num, p->hello.vm,
	         p->hello.adapter, mac, why);
	close(p->fd);
	s->txq[num].n = s->txq[num].niov = 0;
	sw_port_remove(&s->core, num);
}

static void swd_pending_close(struct swd_pending *pd)
{
	close(pd->fd);
	pd->fd = -1;
}

/* Answer a hello (netport.h step 2). */
static void swd_hello_reply(int fd, const char *error, int port, bool batch)
{
	char buf[512];
	json_t *o = error   ? json_pack("{s:s}", "error", error)
	            : batch ? json_pack("{s:b, s:i, s:i}", "ok", 1, "port", port, "batch",
	                                NETPORT_BATCH_MAX)
	                    : json_pack("{s:b, s:i}", "ok", 1, "port", port);
	size_t n = o ? json_dumpb(o, buf, sizeof(buf), JSON_COMPACT) : 0;

	json_decref(o);
	if (n > 0 && n <= sizeof(buf))
		(void)!send(fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL);
}

/*
 * Refuse a connection whose hello was not read: read what it sent first, or
 * closing with unread data makes the kernel report ECONNRESET to the peer
 * instead of the reason (AF_UNIX), then answer and close.
 */
static void swd_refuse(int fd, const char *why)
{
	char buf[NETPORT_HELLO_MAX];

	for (int i = 0; i < 4 && recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0; i++)
		;
	swd_hello_reply(fd, why, -1, false);
	close(fd);
}

static void swd_pending_read(struct swd *s, struct swd_pending *pd)
{
	char buf[NETPORT_HELLO_MAX + 1], why[256], mac[18];
	struct netport_hello h;
	struct msghdr msg;
	struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf)};
	ssize_t n;
	int num;

	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	n = recvmsg(pd->fd, &msg, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		swd_pending_close(pd);
		return;
	}
	if ((msg.msg_flags & MSG_TRUNC) || n > NETPORT_HELLO_MAX) {
		swd_hello_reply(pd->fd, "hello too long", -1, false);
		swd_pending_close(pd);
		return;
	}
	if (netport_hello_parse(buf, (size_t)n, &h, why, sizeof(why)) < 0) {
		log_warn("an adapter's hello was refused: %s", why);
		swd_hello_reply(pd->fd, why, -1, false);
		swd_pending_close(pd);
		return;
	}
	netport_mac_format(h.mac, mac);
	num = sw_port_find_mac(&s->core, h.mac);
	if (num >= 0) {
		snprintf(why, sizeof(why), "MAC %s is already on this switch (port %d, VM '%s')",
		         mac, num, s->core.ports[num].hello.vm);
		swd_hello_reply(pd->fd, why, -1, false);
		swd_pending_close(pd);
		return;
	}
	for (unsigned int i = 1; i < SW_MAX_PORTS; i++)
		if (s->core.ports[i].used && !strcmp(s->core.ports[i].hello.vm, h.vm) &&
		    s->core.ports[i].hello.adapter == h.adapter) {
			snprintf(why, sizeof(why),
			         "VM '%s' adapter %u is already connected (port %u)", h.vm,
			         h.adapter, i);
			swd_hello_reply(pd->fd, why, -1, false);
			swd_pending_close(pd);
			return;
		}
	s->core.wall_now = time(NULL);
	num = sw_port_add(&s->core, 1, &h, swd_send_vm, s);
	if (num < 0) {
		swd_hello_reply(pd->fd, "the switch has no free port", -1, false);
		swd_pending_close(pd);
		return;
	}
	s->core.ports[num].fd = pd->fd;
	pd->fd = -1;
	swd_hello_reply(s->core.ports[num].fd, NULL, num, h.batch != 0);
	log_info("port %d: VM '%s' adapter %u, %s%s%s%s%s", num, h.vm, h.adapter, mac,
	         h.batch ? ", batches" : "", h.mac_spoofing ? ", MAC spoofing allowed" : "",
	         h.dhcp_guard ? "" : ", no DHCP guard", h.router_guard ? "" : ", no router guard");
}

/* A batch message from port @num: its records, each as a message (netport.h, step 4). */
static void swd_port_batch(struct swd *s, unsigned int num, uint8_t *msg, size_t len)
{
	const uint8_t *rec;
	unsigned int count = 0;
	size_t off = 0, rec_len;
	int64_t now = mono_ms();
	int r;

	for (;;) {
		r = netport_batch_next(msg, len, &off, &count, NETPORT_BATCH_MAX, &rec, &rec_len);
		if (r <= 0 || !s->core.ports[num].used)
			break;
		sw_input_msg(&s->core, num, (uint8_t *)rec, rec_len, now);
	}
	if (r < 0 && s->core.ports[num].used)
		sw_count_malformed(&s->core, num);
}

/*
 * Up to SWD_RX_ROUNDS * SWD_RX_BATCH messages from port @num, SWD_RX_BATCH
 * per recvmmsg(): the switch's time goes to system calls, one per frame
 * received is the half of them that batching removes.
 */
static void swd_port_read(struct swd *s, unsigned int num)
{
	struct sw_port *p = &s->core.ports[num];
	struct mmsghdr mm[SWD_RX_BATCH];
	struct iovec iov[SWD_RX_BATCH];

	for (int round = 0; round < SWD_RX_ROUNDS && p->used && !p->broken; round++) {
		int n;

		for (int i = 0; i < SWD_RX_BATCH; i++) {
			iov[i] = (struct iovec){.iov_base = s->rx[i], .iov_len = sizeof(s->rx[i])};
			mm[i] = (struct mmsghdr){.msg_hdr = {.msg_iov = &iov[i], .msg_iovlen = 1}};
		}
		n = recvmmsg(p->fd, mm, SWD_RX_BATCH, MSG_DONTWAIT, NULL);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n < 0) {
			swd_port_close(s, num, strerror(errno));
			return;
		}
		for (int i = 0; i < n && p->used; i++) {
			/* SOCK_SEQPACKET: 0 bytes is the end (and an empty message is no frame). */
			if (mm[i].msg_len == 0) {
				swd_txq_flush_all(s);
				swd_port_close(s, num, "closed by the adapter");
				return;
			}
			if (mm[i].msg_hdr.msg_flags & MSG_TRUNC)
				sw_count_malformed(&s->core, num);
			else if (p->hello.batch)
				swd_port_batch(s, num, s->rx[i], mm[i].msg_len);
			else
				sw_input_msg(&s->core, num, s->rx[i], mm[i].msg_len, mono_ms());
		}
		/* Before s->rx is reused. */
		swd_txq_flush_all(s);
		if (n < SWD_RX_BATCH)
			return;
	}
}

static void swd_accept(struct swd *s)
{
	for (;;) {
		struct ucred cred;
		socklen_t cl = sizeof(cred);
		struct swd_pending *slot = NULL;
		int fd = accept4(s->ports_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0)
			return;
		/*
		 * The socket is 0600 in a private directory; a peer of another uid
		 * cannot be. The starter's uid: the switch may run as its own since.
		 */
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0 ||
		    cred.uid != s->conf.owner) {
			close(fd);
			continue;
		}
		for (unsigned int i = 0; i < SWD_MAX_PENDING && !slot; i++)
			if (s->pending[i].fd < 0)
				slot = &s->pending[i];
		if (!slot) {
			swd_refuse(fd, "too many adapters connecting at once");
			continue;
		}
		/* Room for a few 64 KiB frames (the kernel caps it at net.core.wmem_max). */
		(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &(int){SWD_PORT_SNDBUF}, sizeof(int));
		slot->fd = fd;
		slot->deadline_ms = mono_ms() + SWD_HELLO_TIMEOUT_MS;
	}
}

/* ---- uplink ---- */

static void swd_tap_read(struct swd *s)
{
	for (int i = 0; i < SWD_BATCH; i++) {
		ssize_t n = read(s->tap_fd, s->buf, sizeof(s->buf));

		if (n <= 0)
			return;
		sw_input_uplink(&s->core, s->buf, (size_t)n, mono_ms());
	}
}

/* ---- the control API (docs/api.md, "Switches") ---- */

static json_t *swd_counters(const struct sw_counters *c)
{
	return json_pack(
	    "{s:I, s:I, s:I, s:I, s:{s:I, s:I, s:I, s:I, s:I}}", "frames_in",
	    (json_int_t)c->frames_in, "bytes_in", (json_int_t)c->bytes_in, "frames_out",
	    (json_int_t)c->frames_out, "bytes_out", (json_int_t)c->bytes_out, "drops",
	    "spoofed_mac", (json_int_t)c->drop_spoofed_mac, "dhcp_guard",
	    (json_int_t)c->drop_dhcp_guard, "router_guard", (json_int_t)c->drop_router_guard,
	    "malformed", (json_int_t)c->drop_malformed, "congested", (json_int_t)c->drop_congested);
}

static json_t *swd_status(struct swd *s)
{
	json_t *o, *ports = json_array(), *macs = json_array(), *leases = json_array();
	int64_t now = mono_ms();
	struct sw_counters totals;

	for (unsigned int i = 0; i < SW_MAX_PORTS; i++) {
		const struct sw_port *p = &s->core.ports[i];
		char mac[18];

		if (!p->used)
			continue;
		if (p->uplink) {
			json_array_append_new(ports,
			                      json_pack("{s:i, s:s, s:o}", "port", 0, "kind",
			                                s->def.type == SWITCH_NAT ? "nat" : "host",
			                                "counters", swd_counters(&p->c)));
			continue;
		}
		netport_mac_format(p->hello.mac, mac);
		json_array_append_new(
		    ports,
		    json_pack("{s:i, s:s, s:s, s:i, s:s, s:b, s:b, s:b, s:I, s:o}", "port", i,
		              "kind", "vm", "vm", p->hello.vm, "adapter", (int)p->hello.adapter,
		              "mac", mac, "mac_spoofing", p->hello.mac_spoofing, "dhcp_guard",
		              p->hello.dhcp_guard, "router_guard", p->hello.router_guard,
		              "connected", (json_int_t)p->since, "counters", swd_counters(&p->c)));
	}
	for (uint32_t i = 0; i < s->core.fdb.capacity; i++) {
		const struct fdb_entry *e = &s->core.fdb.entries[i];
		char mac[18];

		if (!e->used || now - e->seen_ms > s->core.fdb.ageing_ms)
			continue;
		netport_mac_format(e->mac, mac);
		json_array_append_new(macs,
		                      json_pack("{s:s, s:i, s:I}", "mac", mac, "port", (int)e->port,
		                                "age_s", (json_int_t)((now - e->seen_ms) / 1000)));
	}
	for (unsigned int i = 0; s->core.dhcp && i < s->dhcp.nr_leases; i++) {
		char mac[18], ip[INET_ADDRSTRLEN];

		netport_mac_format(s->dhcp.leases[i].mac, mac);
		swd_ip(s->dhcp.leases[i].ip, ip);
		json_array_append_new(leases,
		                      json_pack("{s:s, s:s, s:I}", "mac", mac, "ip", ip, "seen",
		                                (json_int_t)s->dhcp.leases[i].seen));
	}
	sw_core_totals(&s->core, &totals);
	o = json_pack("{s:s, s:s, s:i, s:I, s:o, s:o, s:o, s:i, s:o}", "name", s->def.name, "type",
	              switch_type_name(s->def.type), "pid", (int)getpid(), "started",
	              (json_int_t)s->started, "totals", swd_counters(&totals), "ports", ports,
	              "mac_table", macs, "mac_table_capacity", (int)s->core.fdb.capacity, "leases",
	              leases);
	if (o && s->def.net) {
		char ip[INET_ADDRSTRLEN], subnet[40];

		swd_ip(s->def.net, ip);
		snprintf(subnet, sizeof(subnet), "%s/%u", ip, s->def.prefix);
		json_object_set_new(o, "subnet", json_string(subnet));
	}
	if (o && s->def.tap[0])
		json_object_set_new(o, "tap", json_string(s->def.tap));
	if (o)
		json_object_set_new(o, "sandbox", switch_confine_json(&s->conf));
	return o;
}

/* One request line into one reply line (malloc'd, with its newline). */
static char *swd_request(struct swd *s, const char *line, size_t len)
{
	struct switch_api_req req;
	json_t *result = NULL;
	char *text;

	switch_api_parse(line, len, &req);
	if (!req.code && req.cmd == SWITCH_API_STATUS) {
		result = swd_status(s);
	} else if (!req.code && req.cmd == SWITCH_API_STOP) {
		unsigned int n = 0;

		for (unsigned int i = 1; i < SW_MAX_PORTS; i++)
			n += s->core.ports[i].used;
		result = json_pack("{s:i}", "ports_disconnected", (int)n);
		s->quit = true;
		log_info("stopping: asked through the control socket (%u ports connected)", n);
	}
	text = switch_api_reply(&req, result);
	switch_api_req_clear(&req);
	return text;
}

static void swd_client_close(struct swd_client *c)
{
	close(c->fd);
	api_outbox_clear(&c->out);
	c->fd = -1;
	c->in_len = 0;
	c->in_ended = false;
}

static void swd_client_flush(struct swd_client *c)
{
	if (api_outbox_send(&c->out, c->fd) < 0 || (c->in_ended && !c->out.len))
		swd_client_close(c);
}

static void swd_client_queue(struct swd_client *c, const char *text)
{
	if (api_outbox_add(&c->out, text, strlen(text)) < 0)
		swd_client_close(c); /* it does not read its replies */
}

/*
 * Answer the complete lines in c->in until the replies back up past what
 * the socket takes (api_outbox_held()): the rest waits for POLLOUT.
 */
static void swd_client_requests(struct swd *s, struct swd_client *c)
{
	char *nl;

	while (c->fd >= 0 && (nl = memchr(c->in, '\n', c->in_len))) {
		size_t len = (size_t)(nl - c->in) + 1;
		char *reply;

		if (api_outbox_held(&c->out)) {
			swd_client_flush(c);
			if (c->fd < 0 || api_outbox_held(&c->out))
				return;
		}
		reply = swd_request(s, c->in, len - 1);

		if (reply)
			swd_client_queue(c, reply);
		free(reply);
		if (c->fd < 0)
			return;
		memmove(c->in, c->in + len, c->in_len - len);
		c->in_len -= len;
	}
}

static void swd_client_read(struct swd *s, struct swd_client *c)
{
	ssize_t n = recv(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len, MSG_DONTWAIT);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n == 0 && c->out.len) {
		c->in_ended = true; /* its last replies first */
		return;
	}
	if (n <= 0) {
		swd_client_close(c);
		return;
	}
	c->in_len += (size_t)n;
	c->last_ms = mono_ms();
	swd_client_requests(s, c);
	/* Full, and not of lines that wait for their turn: one line too long. */
	if (c->fd >= 0 && c->in_len == sizeof(c->in) && !memchr(c->in, '\n', c->in_len)) {
		swd_client_queue(c, "{\"ok\":false,\"error\":{\"code\":\"request-too-long\","
		                    "\"message\":\"a request is at most 65535 bytes\"}}\n");
		c->in_ended = true;
		c->in_len = 0;
	}
	if (c->fd >= 0)
		swd_client_flush(c);
}

static void swd_control_accept(struct swd *s)
{
	for (;;) {
		struct swd_client *slot = NULL, *idle = NULL;
		int fd = accept4(s->control_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct ucred cred;
		socklen_t cl = sizeof(cred);

		if (fd < 0)
			return;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0 ||
		    cred.uid != s->conf.owner) {
			close(fd);
			continue;
		}
		for (unsigned int i = 0; i < SWD_MAX_CLIENTS && !slot; i++) {
			struct swd_client *c = &s->clients[i];

			if (c->fd < 0)
				slot = c;
			else if (!idle || c->last_ms < idle->last_ms)
				idle = c;
		}
		/* All taken: the longest idle makes room, so `switch stop` gets through. */
		if (!slot) {
			swd_client_close(idle);
			slot = idle;
		}
		slot->fd = fd;
		slot->last_ms = mono_ms();
	}
}

/* ---- set-up, the loop, tear-down ---- */

static int swd_leases_save(struct swd *s)
{
	char *text = dhcp_leases_format(&s->dhcp);
	int r = text ? store_write_atomic_at(s->dir_fd, SWITCH_LEASES_FILE, text, strlen(text))
	             : -ENOMEM;

	free(text);
	if (r < 0) {
		s->dhcp.dirty = true;
		log_warn("cannot write %s: %s (retrying)", s->leases_path, strerror(-r));
	}
	s->leases_saved_ms = mono_ms();
	return r;
}

static void swd_leases_load(struct swd *s)
{
	struct mgr_err err;
	char *text = NULL;
	size_t len;
	int r = switch_store_read(&s->sws, s->name, SWITCH_LEASES_FILE, &text, &len, &err);

	if (r == -ENOENT)
		return;
	if (r < 0) {
		log_warn("%s: starting with no leases", err.msg);
		return;
	}
	r = dhcp_leases_parse(&s->dhcp, text, len);
	free(text);
	if (r < 0)
		log_warn("%s: not a leases file: starting with no leases", s->leases_path);
	else
		log_info("DHCP: %d leases from %s", r, s->leases_path);
}

/* The uplink and the DHCP server of an internal or NAT switch. */
static int swd_uplink(struct swd *s)
{
	char why[512];
	uint8_t mac[6], dns_mac[6];
	uint32_t router = 0, dns = 0, server;
	int r;

	if (s->def.type == SWITCH_PRIVATE)
		return 0;
	if (s->def.type == SWITCH_INTERNAL) {
		r = switch_tap_open(&s->def, mac, why, sizeof(why));
		if (r < 0) {
			log_error("%s", why);
			return r;
		}
		s->tap_fd = r;
		r = sw_port_add(&s->core, SW_UPLINK, NULL, swd_send_tap, NULL);
		s->core.ports[SW_UPLINK].fd = s->tap_fd;
		if (r >= 0)
			r = sw_uplink_add_mac(&s->core, mac);
		if (!s->def.net)
			return r < 0 ? r : 0; /* a bare tap: no address, no DHCP */
		server = switch_addr(&s->def, 1);
	} else {
		r = switch_nat_create(&s->nat, &s->def, swd_nat_rx, s, why, sizeof(why));
		if (r < 0) {
			log_error("%s", why);
			return r;
		}
		switch_nat_mac(s->nat, mac);
		switch_nat_dns_mac(s->nat, dns_mac);
		r = sw_port_add(&s->core, SW_UPLINK, NULL, swd_send_nat, s->nat);
		if (r >= 0)
			r = sw_uplink_add_mac(&s->core, mac);
		if (r >= 0)
			r = sw_uplink_add_mac(&s->core, dns_mac);
		server = router = switch_addr(&s->def, SWITCH_NAT_GATEWAY);
		dns = switch_addr(&s->def, SWITCH_NAT_DNS);
	}
	if (r < 0)
		return r;
	r = dhcp_server_init(&s->dhcp, s->def.net, s->def.prefix, server, router, dns,
	                     switch_addr(&s->def, SWITCH_DHCP_FIRST),
	                     switch_addr(&s->def, ~(~0u << (32 - s->def.prefix)) - 1), mac);
	if (r < 0) {
		log_error("DHCP: the subnet does not fit a server");
		return r;
	}
	s->core.dhcp = &s->dhcp;
	swd_leases_load(s);
	return 0;
}

static int swd_setup(struct swd *s)
{
	sigset_t set;
	int r;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	s->sig_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (s->sig_fd < 0)
		return -errno;
	r = sw_core_init(&s->core, FDB_DEFAULT_CAPACITY, FDB_AGEING_MS);
	if (r < 0)
		return r;
	s->core.wall_now = time(NULL);
	r = swd_uplink(s);
	if (r < 0)
		return r;
	s->ports_fd = unix_listen_type(s->ports_path, SOCK_SEQPACKET, 0600, 64);
	if (s->ports_fd < 0) {
		log_error("cannot listen on %s: %s", s->ports_path, fs_strerror(s->ports_fd));
		return s->ports_fd;
	}
	s->control_fd = unix_listen(s->control_path, 0600, 16);
	if (s->control_fd < 0) {
		log_error("cannot listen on %s: %s", s->control_path, fs_strerror(s->control_fd));
		return s->control_fd;
	}
	return 0;
}

static void swd_build_pollset(struct swd *s, int *timeout_ms)
{
	int64_t now = mono_ms();

	s->ps.n = 0;
	switch_pollset_add(&s->ps, s->sig_fd, POLLIN, SWD_OWN_SIGNAL);
	switch_pollset_add(&s->ps, s->ports_fd, POLLIN, SWD_OWN_PORTS_LISTEN);
	switch_pollset_add(&s->ps, s->control_fd, POLLIN, SWD_OWN_CONTROL_LISTEN);
	if (s->tap_fd >= 0)
		switch_pollset_add(&s->ps, s->tap_fd, POLLIN, SWD_OWN_TAP);
	*timeout_ms = (int)(s->next_age_ms > now ? s->next_age_ms - now : 0);
	for (unsigned int i = 0; i < SWD_MAX_PENDING; i++) {
		if (s->pending[i].fd < 0)
			continue;
		switch_pollset_add(&s->ps, s->pending[i].fd, POLLIN, SWD_OWN_PENDING + (int)i);
		if (s->pending[i].deadline_ms - now < *timeout_ms)
			*timeout_ms =
			    (int)(s->pending[i].deadline_ms > now ? s->pending[i].deadline_ms - now
			                                          : 0);
	}
	for (unsigned int i = 1; i < SW_MAX_PORTS; i++)
		if (s->core.ports[i].used)
			switch_pollset_add(&s->ps, s->core.ports[i].fd, POLLIN, (int)i);
	for (unsigned int i = 0; i < SWD_MAX_CLIENTS; i++)
		if (s->clients[i].fd >= 0)
			switch_pollset_add(&s->ps, s->clients[i].fd,
			                   (api_outbox_held(&s->clients[i].out) ||
			                            s->clients[i].in_ended
			                        ? 0
			                        : POLLIN) |
			                       (s->clients[i].out.len ? POLLOUT : 0),
			                   SWD_OWN_CLIENT + (int)i);
	if (s->dhcp.dirty && *timeout_ms > SWD_LEASES_EVERY_MS)
		*timeout_ms = SWD_LEASES_EVERY_MS;
	if (s->nat)
		switch_nat_fill(s->nat, &s->ps, SWD_OWN_NAT, timeout_ms);
}

/* Timers: ageing, hello deadlines, idle control clients, leases to save. */
static void swd_timers(struct swd *s)
{
	int64_t now = mono_ms();

	if (now >= s->next_age_ms) {
		fdb_age(&s->core.fdb, now);
		s->next_age_ms = now + SWD_AGE_EVERY_MS;
	}
	for (unsigned int i = 0; i < SWD_MAX_PENDING; i++)
		if (s->pending[i].fd >= 0 && now >= s->pending[i].deadline_ms) {
			swd_hello_reply(s->pending[i].fd, "no hello in time", -1, false);
			swd_pending_close(&s->pending[i]);
		}
	for (unsigned int i = 0; i < SWD_MAX_CLIENTS; i++)
		if (s->clients[i].fd >= 0 && now - s->clients[i].last_ms > SWD_CLIENT_IDLE_MS)
			swd_client_close(&s->clients[i]);
	if (s->dhcp.dirty && now - s->leases_saved_ms >= SWD_LEASES_EVERY_MS)
		(void)swd_leases_save(s);
	for (unsigned int i = 1; i < SW_MAX_PORTS; i++)
		if (s->core.ports[i].used && s->core.ports[i].broken)
			swd_port_close(s, i, "sending to it failed");
}

static void swd_loop(struct swd *s)
{
	while (!s->quit) {
		int timeout, n;

		s->core.wall_now = time(NULL);
		swd_build_pollset(s, &timeout);
		n = poll(s->ps.fds, s->ps.n, timeout);
		if (n < 0 && errno != EINTR) {
			log_error("poll: %s", strerror(errno));
			return;
		}
		s->core.wall_now = time(NULL);
		if (s->nat)
			switch_nat_poll(s->nat, &s->ps, n < 0);
		for (unsigned int i = 0; n > 0 && i < s->ps.n; i++) {
			short re = s->ps.fds[i].revents;
			int own = s->ps.owner[i];

			if (!re)
				continue;
			if (own == SWD_OWN_SIGNAL) {
				struct signalfd_siginfo si;

				if (read(s->sig_fd, &si, sizeof(si)) == sizeof(si)) {
					log_info("stopping: signal %u", si.ssi_signo);
					s->quit = true;
				}
			} else if (own == SWD_OWN_TAP) {
				swd_tap_read(s);
			} else if (own >= SWD_OWN_CLIENT &&
			           own < SWD_OWN_CLIENT + SWD_MAX_CLIENTS) {
				struct swd_client *c = &s->clients[own - SWD_OWN_CLIENT];

				bool held = api_outbox_held(&c->out);

				if (c->fd >= 0 && (re & POLLOUT))
					swd_client_flush(c);
				/* The lines read before its replies backed up. */
				if (c->fd >= 0 && held && !api_outbox_held(&c->out)) {
					swd_client_requests(s, c);
					swd_client_flush(c);
				}
				if (c->fd >= 0 && (re & (POLLIN | POLLHUP | POLLERR)))
					swd_client_read(s, c);
			} else if (own >= SWD_OWN_PENDING &&
			           own < SWD_OWN_PENDING + SWD_MAX_PENDING) {
				struct swd_pending *pd = &s->pending[own - SWD_OWN_PENDING];

				if (pd->fd >= 0)
					swd_pending_read(s, pd);
			} else if (own >= 0 && own < SW_MAX_PORTS) {
				if (s->core.ports[own].used)
					swd_port_read(s, (unsigned int)own);
			}
		}
		/* What the turn queued (the uplink's frames, replies), before the poll. */
		swd_txq_flush_all(s);
		/* Listeners last: a slot freed above is not reused within this pass. */
		for (unsigned int i = 0; n > 0 && i < s->ps.n; i++) {
			if (!s->ps.fds[i].revents)
				continue;
			if (s->ps.owner[i] == SWD_OWN_PORTS_LISTEN)
				swd_accept(s);
			else if (s->ps.owner[i] == SWD_OWN_CONTROL_LISTEN)
				swd_control_accept(s);
		}
		swd_timers(s);
	}
}

static void swd_teardown(struct swd *s)
{
	if (s->dhcp.dirty)
		(void)swd_leases_save(s);
	for (unsigned int i = 1; i < SW_MAX_PORTS; i++)
		if (s->core.ports[i].used)
			swd_port_close(s, i, "the switch stops");
	for (unsigned int i = 0; i < SWD_MAX_PENDING; i++)
		if (s->pending[i].fd >= 0)
			swd_pending_close(&s->pending[i]);
	for (unsigned int i = 0; i < SWD_MAX_CLIENTS; i++) {
		if (s->clients[i].fd >= 0) {
			swd_client_flush(&s->clients[i]);
			if (s->clients[i].fd >= 0)
				swd_client_close(&s->clients[i]);
		}
	}
	if (s->ports_fd >= 0) {
		unlinkat(s->dir_fd, SWITCH_PORTS_SOCKET, 0);
		close(s->ports_fd);
	}
	if (s->control_fd >= 0) {
		unlinkat(s->dir_fd, SWITCH_CONTROL_SOCKET, 0);
		close(s->control_fd);
	}
	if (s->tap_fd >= 0)
		close(s->tap_fd);
	if (s->sig_fd >= 0)
		close(s->sig_fd);
	switch_nat_destroy(s->nat);
	sw_core_destroy(&s->core);
	free(s->ps.fds);
	free(s->ps.owner);
	unlinkat(s->dir_fd, SWITCH_RUNTIME_FILE, 0);
}

/* runtime.json: {"pid": N, "started": T}, for `switch list` and tests' clean-up. */
static void swd_runtime_write(struct swd *s)
{
	json_t *o =
	    json_pack("{s:i, s:I}", "pid", (int)getpid(), "started", (json_int_t)s->started);
	char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;

	json_decref(o);
	if (!text || store_write_atomic_at(s->dir_fd, SWITCH_RUNTIME_FILE, text, strlen(text)) < 0)
		log_warn("cannot write %s", s->runtime_path);
	free(text);
}

static void swd_ready(int *ready_fd, const char *line)
{
	if (*ready_fd < 0)
		return;
	(void)!write(*ready_fd, line, strlen(line));
	close(*ready_fd);
	*ready_fd = -1;
}

int switch_serve(const char *home, const char *name, int ready_fd)
{
	struct mgr_err err;
	struct swd *s = calloc(1, sizeof(*s));
	int lock_fd = -1, status = 1;
	char line[64];

	log_set_timestamps(true);
	log_set_level(LOG_INFO); /* port connections are worth a line in switch.log */
	snprintf(line, sizeof(line), "switch[%s]", name);
	log_set_prefix(line);
	if (!s) {
		log_error("out of memory");
		goto out;
	}
	s->ports_fd = s->control_fd = s->tap_fd = s->sig_fd = s->dir_fd = -1;
	for (unsigned int i = 0; i < SWD_MAX_PENDING; i++)
		s->pending[i].fd = -1;
	for (unsigned int i = 0; i < SWD_MAX_CLIENTS; i++)
		s->clients[i].fd = -1;
	s->name = name;
	if (switch_store_open(home, &s->sws, false, &err) < 0) {
		log_error("%s", err.msg);
		goto out;
	}
	lock_fd = switch_store_lock(&s->sws, name, &err);
	if (lock_fd == -EBUSY) {
		swd_ready(&ready_fd, "running\n");
		status = 0;
		goto out;
	}
	/* Under the lock: the definition as it is now, not as the spawner saw it. */
	if (lock_fd < 0 || switch_store_load(&s->sws, name, &s->def, &err) < 0) {
		log_error("%s", err.msg);
		goto out;
	}
	if (store_path(&s->sws, name, SWITCH_PORTS_SOCKET, s->ports_path, sizeof(s->ports_path)) <
	        0 ||
	    store_path(&s->sws, name, SWITCH_CONTROL_SOCKET, s->control_path,
	               sizeof(s->control_path)) < 0 ||
	    store_path(&s->sws, name, SWITCH_LEASES_FILE, s->leases_path, sizeof(s->leases_path)) <
	        0 ||
	    store_path(&s->sws, name, SWITCH_RUNTIME_FILE, s->runtime_path,
	               sizeof(s->runtime_path)) < 0 ||
	    store_path(&s->sws, name, NULL, s->dir, sizeof(s->dir)) < 0) {
		log_error("the switch store path is too long");
		goto out;
	}
	s->dir_fd = switch_store_dir(&s->sws, name, &err);
	if (s->dir_fd < 0) {
		log_error("%s", err.msg);
		goto out;
	}
	s->started = time(NULL);
	s->conf.owner = geteuid();
	if (swd_setup(s) < 0)
		goto teardown;
	/* Everything is open: from here on the guests' frames are parsed (confine.h). */
	if (switch_confine(home, name, s->dir, s->def.type == SWITCH_NAT, &s->conf) < 0)
		goto teardown;
	swd_runtime_write(s);
	log_event("switch '%s' (%s) started, pid %d", name, switch_type_name(s->def.type),
	          (int)getpid());
	snprintf(line, sizeof(line), "ok %d\n", (int)getpid());
	swd_ready(&ready_fd, line);
	s->next_age_ms = mono_ms() + SWD_AGE_EVERY_MS;
	swd_loop(s);
	status = 0;
	log_event("switch '%s' stopped", name);
teardown:
	swd_teardown(s);
out:
	/* The lock first: a start right after this refused one must find the switch stopped. */
	store_lock_release(lock_fd);
	swd_ready(&ready_fd, "error\n");
	if (s && s->dir_fd >= 0)
		close(s->dir_fd);
	free(s);
	return status;
}
