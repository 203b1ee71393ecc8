/* SPDX-License-Identifier: MIT */
/*
 * virtio-console with multiple ports (virtio 1.2 §5.3), each port's host
 * side a UNIX socket. See console.h.
 *
 * Queues: 0/1 port 0 receive/transmit, 2/3 control receive/transmit, then
 * 4 + 2(p-1) / 5 + 2(p-1) for port p. The control protocol (§5.3.6.2): the
 * driver says DEVICE_READY, the device announces each port (DEVICE_ADD), the
 * driver answers PORT_READY, the device then names the port (PORT_NAME) or
 * makes it a console (CONSOLE_PORT) and says whether its host side is open
 * (PORT_OPEN); the driver reports the guest side opening and closing.
 *
 * Host clients are watched edge-triggered: every event drains what can be
 * moved now, and whatever stopped a transfer (no receive buffer, the guest
 * has not opened the port, a full socket) retries it when that changes.
 */
#include "devices/virtio/console.h"

#include "core/fsutil.h"
#include "core/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define CON_PORTS (1 + VIRTIO_CONSOLE_MAX_NAMED)
#define CON_QUEUES (2 * (CON_PORTS + 1))
#define CON_CTRL_RX 2
#define CON_CTRL_TX 3
#define CON_CTRL_PENDING 64
#define CON_PCI_CLASS 0x078000 /* simple communication controller, other */
#define CON_CLIENT_EVENTS (EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET)

struct con_ctrl_msg {
	struct virtio_console_control c;
	char name[VIRTIO_CONSOLE_NAME_MAX];
	uint8_t name_len;
};

struct con_port {
	struct virtio_console *con;
	unsigned int id;
	bool is_console;
	char name[VIRTIO_CONSOLE_NAME_MAX + 1];
	char *path;
	int listen_fd;
	int client_fd;

	bool guest_ready;        /* PORT_READY seen */
	bool guest_open;         /* the guest has the port open */
	bool host_open_restored; /* restored: the host side the guest last heard of */

	/* A transmit chain being written to the client. */
	bool tx_busy;
	struct virtq_req tx;
	uint64_t tx_off;
	struct iovec tx_iov[VIRTIO_CONSOLE_QUEUE_SIZE];
	struct iovec out_iov[VIRTIO_CONSOLE_QUEUE_SIZE];
	struct iovec rx_iov[VIRTIO_CONSOLE_QUEUE_SIZE];
};

struct virtio_console {
	struct virtio_device vdev;
	struct virtq vqs[CON_QUEUES];
	uint8_t config[VIRTIO_CONSOLE_CFG_SIZE];
	struct con_port ports[CON_PORTS];
	unsigned int nr_ports; /* port 0 and the named ones */
	struct con_ctrl_msg ctrl[CON_CTRL_PENDING];
	unsigned int ctrl_head;
	unsigned int ctrl_len;
	struct iovec ctrl_iov[VIRTIO_CONSOLE_QUEUE_SIZE];
	uint64_t notify;      /* bit per queue with something pushed */
	bool restart_pending; /* restored; the guest has not run since (host_open_restored) */
};

static unsigned int con_rxq(unsigned int port)
{
	return port == 0 ? 0 : 2 + 2 * port;
}

static bool con_multiport(const struct virtio_console *con)
{
	return virtio_device_has(&con->vdev, VIRTIO_CONSOLE_F_MULTIPORT);
}

static void con_push(struct virtio_console *con, unsigned int q, uint16_t head, uint32_t len)
{
	virtq_push(&con->vqs[q], head, len);
	con->notify |= 1ULL << q;
}

static void con_notify(struct virtio_console *con)
{
	for (unsigned int q = 0; q < CON_QUEUES && con->notify; q++) {
		if (con->notify & (1ULL << q)) {
			con->notify &= ~(1ULL << q);
			virtio_device_notify_queue(&con->vdev, q);
		}
	}
}

/* ---------------------------------------------------------- control */

static void con_ctrl_flush(struct virtio_console *con)
{
	struct virtq *vq = &con->vqs[CON_CTRL_RX];
	struct virtq_req req = {.iov = con->ctrl_iov, .cap = VIRTIO_CONSOLE_QUEUE_SIZE};

	while (con->ctrl_len) {
		const struct con_ctrl_msg *m = &con->ctrl[con->ctrl_head];
		int r = virtq_pop(vq, &req);

		if (r == 0 && virtq_enable_notify(vq))
			continue;
		if (r == 0)
			return;
		if (r < 0 || req.nr_out || req.in_len < sizeof(m->c) + m->name_len) {
			virtio_device_set_needs_reset(&con->vdev,
			                              "malformed console control queue");
			return;
		}
		iov_from_buf(req.iov, req.nr_in, 0, &m->c, sizeof(m->c));
		iov_from_buf(req.iov, req.nr_in, sizeof(m->c), m->name, m->name_len);
		con_push(con, CON_CTRL_RX, req.head, (uint32_t)(sizeof(m->c) + m->name_len));
		virtq_mark_written(vq, &req);
		con->ctrl_head = (con->ctrl_head + 1) % CON_CTRL_PENDING;
		con->ctrl_len--;
	}
}

static void con_ctrl_send(struct virtio_console *con, uint32_t id, uint16_t event, uint16_t value,
                          const char *name)
{
	struct con_ctrl_msg *m;

	if (!con_multiport(con) || !virtio_device_is_live(&con->vdev))
		return;
	if (con->ctrl_len == CON_CTRL_PENDING) {
		log_debug("virtio-console: control queue full, event %u dropped", event);
		return;
	}
	m = &con->ctrl[(con->ctrl_head + con->ctrl_len) % CON_CTRL_PENDING];
	m->c = (struct virtio_console_control){.id = id, .event = event, .value = value};
	m->name_len = name ? (uint8_t)strnlen(name, VIRTIO_CONSOLE_NAME_MAX) : 0;
	if (m->name_len)
		memcpy(m->name, name, m->name_len);
	con->ctrl_len++;
	con_ctrl_flush(con);
}

static void con_port_rx(struct con_port *p);
static void con_port_tx(struct con_port *p);

/* The host side of @p: open iff a program is connected (the console port always is). */
static void con_send_host_state(struct con_port *p)
{
	if (p->guest_ready)
		con_ctrl_send(p->con, p->id, VIRTIO_CONSOLE_PORT_OPEN,
		              p->is_console || p->client_fd >= 0, NULL);
}

/* One message from the driver (§5.3.6.2). Malformed ones are ignored. */
static void con_ctrl_handle(struct virtio_console *con, const struct virtio_console_control *c)
{
	struct con_port *p = c->id < con->nr_ports ? &con->ports[c->id] : NULL;

	switch (c->event) {
	case VIRTIO_CONSOLE_DEVICE_READY:
		if (c->value != 1)
			break;
		for (unsigned int i = 0; i < con->nr_ports; i++)
			con_ctrl_send(con, i, VIRTIO_CONSOLE_DEVICE_ADD, 0, NULL);
		break;
	case VIRTIO_CONSOLE_PORT_READY:
		if (!p || c->value != 1 || p->guest_ready)
			break;
		p->guest_ready = true;
		if (p->is_console)
			con_ctrl_send(con, p->id, VIRTIO_CONSOLE_CONSOLE_PORT, 1, NULL);
		else
			con_ctrl_send(con, p->id, VIRTIO_CONSOLE_PORT_NAME, 0, p->name);
		con_send_host_state(p);
		break;
	case VIRTIO_CONSOLE_PORT_OPEN:
		if (!p)
			break;
		p->guest_open = c->value != 0;
		if (p->guest_open)
			con_port_rx(p);
		break;
	default:
		break;
	}
}

static void con_ctrl_tx(struct virtio_console *con)
{
	struct virtq *vq = &con->vqs[CON_CTRL_TX];
	struct virtq_req req = {.iov = con->ctrl_iov, .cap = VIRTIO_CONSOLE_QUEUE_SIZE};
	int r;

	do {
		while ((r = virtq_pop(vq, &req)) > 0) {
			struct virtio_console_control c;

			if (iov_to_buf(req.iov, req.nr_out, 0, &c, sizeof(c)) == sizeof(c))
				con_ctrl_handle(con, &c);
			con_push(con, CON_CTRL_TX, req.head, 0);
		}
		if (r < 0) {
			virtio_device_set_needs_reset(&con->vdev,
			                              "malformed console control queue");
			return;
		}
	} while (virtq_enable_notify(vq));
}

/* -------------------------------------------------------------- ports */

static void con_client_close(struct con_port *p)
{
	if (p->client_fd < 0)
		return;
	virtio_device_unwatch(&p->con->vdev, p->client_fd);
	close(p->client_fd);
	p->client_fd = -1;
	con_send_host_state(p);
}

/* Whether the guest takes input on @p now. */
static bool con_port_receiving(const struct con_port *p)
{
	return virtio_device_is_live(&p->con->vdev) &&
	       (p->is_console || p->guest_open || !con_multiport(p->con)) &&
	       (p->id == 0 || con_multiport(p->con));
}

/* Host -> guest: move what the client sent into receive buffers. */
static void con_port_rx(struct con_port *p)
{
	struct virtio_console *con = p->con;
	unsigned int q = con_rxq(p->id);
	struct virtq *vq = &con->vqs[q];

	while (p->client_fd >= 0 && con_port_receiving(p)) {
		struct virtq_req req = {.iov = p->rx_iov, .cap = VIRTIO_CONSOLE_QUEUE_SIZE};
		uint8_t peek;
		ssize_t n = recv(p->client_fd, &peek, 1, MSG_PEEK | MSG_DONTWAIT);
		int r;

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			con_client_close(p); /* the host program left */
			return;
		}
		r = virtq_pop(vq, &req);
		if (r == 0 && virtq_enable_notify(vq))
			continue;
		if (r == 0)
			return; /* retried when the guest posts buffers */
		if (r < 0 || req.nr_out) {
			virtio_device_set_needs_reset(&con->vdev,
			                              "malformed console receive queue");
			return;
		}
		n = readv(p->client_fd, req.iov, (int)req.nr_in);
		con_push(con, q, req.head, n > 0 ? (uint32_t)n : 0);
		virtq_mark_written(vq, &req);
	}
}

/* Guest -> host: write transmit chains to the client (or drop them if there is none). */
static void con_port_tx(struct con_port *p)
{
	struct virtio_console *con = p->con;
	unsigned int q = con_rxq(p->id) + 1;
	struct virtq *vq = &con->vqs[q];

	for (;;) {
		int cnt, r;
		ssize_t n;

		if (!p->tx_busy) {
			p->tx =
			    (struct virtq_req){.iov = p->tx_iov, .cap = VIRTIO_CONSOLE_QUEUE_SIZE};
			r = virtq_pop(vq, &p->tx);
			if (r == 0 && virtq_enable_notify(vq))
				continue;
			if (r == 0)
				return;
			if (r < 0) {
				virtio_device_set_needs_reset(&con->vdev,
				                              "malformed console transmit queue");
				return;
			}
			p->tx_busy = true;
			p->tx_off = 0;
		}
		cnt = iov_slice(p->tx.iov, p->tx.nr_out, p->tx_off, p->tx.out_len - p->tx_off,
		                p->out_iov, VIRTIO_CONSOLE_QUEUE_SIZE);
		n = 0;
		if (p->client_fd >= 0 && cnt > 0) {
			n = writev(p->client_fd, p->out_iov, cnt);
			if (n < 0 && errno == EAGAIN && !p->is_console)
				return; /* resumed on EPOLLOUT */
			if (n < 0 && errno != EAGAIN && errno != EINTR)
				con_client_close(p);
		}
		if (n > 0)
			p->tx_off += (uint64_t)n;
		/* Done, nobody to give it to, or the console that must not wait: return it. */
		if (p->tx_off >= p->tx.out_len || p->client_fd < 0 || p->is_console || cnt <= 0) {
			con_push(con, q, p->tx.head, 0);
			p->tx_busy = false;
		}
	}
}

static void con_client_io(struct virtio_device *vdev, int fd, uint32_t revents, void *arg)
{
	struct con_port *p = arg;

	(void)vdev;
	(void)fd;
	if (revents & EPOLLOUT)
		con_port_tx(p);
	if (revents & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
		con_port_rx(p);
		/* A client gone while the guest takes no input: notice it anyway. */
		if (p->client_fd >= 0 && (revents & (EPOLLHUP | EPOLLERR)))
			con_client_close(p);
	}
	con_notify(p->con);
}

static void con_accept(struct virtio_device *vdev, int fd, uint32_t revents, void *arg)
{
	struct con_port *p = arg;
	int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	(void)revents;
	if (cfd < 0)
		return;
	if (p->client_fd >= 0) {
		close(cfd); /* one host program per port */
		return;
	}
	if (virtio_device_watch(vdev, cfd, CON_CLIENT_EVENTS, con_client_io, p) < 0) {
		close(cfd);
		return;
	}
	p->client_fd = cfd;
	con_send_host_state(p);
	con_port_rx(p);
	con_port_tx(p);
	con_notify(p->con);
}

/* ------------------------------------------------------------ device */

static void con_queue_notify(struct virtio_device *vdev, unsigned int q)
{
	struct virtio_console *con = container_of(vdev, struct virtio_console, vdev);

	if (q == CON_CTRL_RX) {
		con_ctrl_flush(con);
	} else if (q == CON_CTRL_TX) {
		con_ctrl_tx(con);
	} else {
		unsigned int port = q < 2 ? 0 : (q - 2) / 2;

		if (port < con->nr_ports && (q & 1))
			con_port_tx(&con->ports[port]);
		else if (port < con->nr_ports)
			con_port_rx(&con->ports[port]);
	}
	con_notify(con);
}

static int con_activate(struct virtio_device *vdev)
{
	struct virtio_console *con = container_of(vdev, struct virtio_console, vdev);

	/* Without multiport, port 0 is all there is, ready and open. */
	if (!con_multiport(con))
		con->ports[0].guest_ready = con->ports[0].guest_open = true;
	return 0;
}

static void con_reset(struct virtio_device *vdev)
{
	struct virtio_console *con = container_of(vdev, struct virtio_console, vdev);

	for (unsigned int i = 0; i < con->nr_ports; i++) {
		con->ports[i].guest_ready = false;
		con->ports[i].guest_open = false;
		con->ports[i].host_open_restored = false;
		con->ports[i].tx_busy = false;
	}
	con->ctrl_head = con->ctrl_len = 0;
	con->notify = 0;
	con->restart_pending = false;
}

static void con_config_read(struct virtio_device *vdev, uint32_t offset, void *data, uint32_t len)
{
	memcpy(data, container_of(vdev, struct virtio_console, vdev)->config + offset, len);
}

/* emerg_wr (§5.3.5): one byte for port 0's host side, whatever state the device is in. */
static void con_config_write(struct virtio_device *vdev, uint32_t offset, const void *data,
                             uint32_t len)
{
	struct virtio_console *con = container_of(vdev, struct virtio_console, vdev);

	if (offset == VIRTIO_CONSOLE_CFG_EMERG_WR && len >= 1 && con->ports[0].client_fd >= 0 &&
	    write(con->ports[0].client_fd, data, 1) < 0)
		log_debug("virtio-console: emergency write lost");
}

/* ---------------------------------------------------------- lifecycle */

/* The host side the guest hears of for @p (con_send_host_state()). */
static bool con_host_open(const struct con_port *p)
{
	return p->is_console || p->client_fd >= 0;
}

/*
 * A transmit chain being written to a slow host program stays popped over
 * a quiesce; a restore takes it again from the ring, and its data goes to
 * whichever program is connected then (the old one is gone with the old
 * process).
 */
static unsigned int con_held(struct virtio_device *vdev, unsigned int q)
{
	struct virtio_console *con = container_of(vdev, struct virtio_console, vdev);

	for (unsigned int i = 0; i < con->nr_ports; i++)
		if (con_rxq(i) + 1 == q)
			return con->ports[i].tx_busy ? 1 : 0;
	return 0;
}

/*
 * Saved: u8 ports; per port guest_ready, guest_open, the host side the
 * guest last heard of (bools); u8 pending control messages, each u32 id,
 * u16 event, u16 value, u8 name length, the name. Host connections cannot
 * be saved: the restored device has its own.
 */
static int con_save(struct virtio_device *vdev, struct dev_state *out)
{
	struct virtio_console *con = container_of(vdev, struct virtio_console, vdev);

	ds_put_u8(out, (uint8_t)con->nr_ports);
	for (unsigned int i = 0; i < con->nr_ports; i++) {
		const struct con_port *p = &con->ports[i];

		ds_put_bool(out, p->guest_ready);
		ds_put_bool(out, p->guest_open);
		/* Restored and not run yet: the guest still believes what it was told before. */
		ds_put_bool(out, con->restart_pending ? p->host_open_restored : con_host_open(p));
	}
	ds_put_u8(out, (uint8_t)con->ctrl_len);
	for (unsigned int i = 0; i < con->ctrl_len; i++) {
		const struct con_ctrl_msg *m = &con->ctrl[(con->ctrl_head + i) % CON_CTRL_PENDING];

		ds_put_u32(out, m->c.id);
		ds_put_u16(out, m->c.event);
		ds_put_u16(out, m->c.value);
		ds_put_u8(out, m->name_len);
		ds_put_bytes(out, m->name, m->name_len);
	}
	return 0;
}

/* One pending control message, as con_ctrl_send() could have queued it. */
static void con_read_ctrl(struct virtio_console *con, struct dev_state_in *in,
                          struct con_ctrl_msg *m)
{
	m->c.id = dsi_get_u32(in);
	m->c.event = dsi_get_u16(in);
	m->c.value = dsi_get_u16(in);
	m->name_len = dsi_get_u8(in);
	dsi_check(in,
	          m->c.id < con->nr_ports && m->c.event <= VIRTIO_CONSOLE_PORT_NAME &&
	              m->name_len <= VIRTIO_CONSOLE_NAME_MAX,
	          "a control message (port %u, event %u, name of %u bytes) is not one the "
	          "device sends",
	          m->c.id, m->c.event, m->name_len);
	dsi_get_bytes(in, m->name, in->bad ? 0 : m->name_len);
}

static int con_restore(struct virtio_device *vdev, struct dev_state_in *in, uint32_t version)
{
	struct virtio_console *con = container_of(vdev, struct virtio_console, vdev);
	bool flags[CON_PORTS][3] = {{false}};
	struct con_ctrl_msg *ctrl = calloc(CON_CTRL_PENDING, sizeof(*ctrl));
	unsigned int nr = dsi_get_u8(in), nctrl;

	(void)version;
	if (!ctrl)
		return -ENOMEM;
	dsi_check(in, nr == con->nr_ports, "it had %u ports, this one has %u", nr, con->nr_ports);
	for (unsigned int i = 0; i < con->nr_ports && !in->bad; i++)
		for (unsigned int k = 0; k < 3; k++)
			flags[i][k] = dsi_get_bool(in);
	nctrl = dsi_get_u8(in);
	dsi_check(in, nctrl <= CON_CTRL_PENDING, "%u control messages pending, at most %u", nctrl,
	          CON_CTRL_PENDING);
	for (unsigned int i = 0; i < nctrl && !in->bad; i++)
		con_read_ctrl(con, in, &ctrl[i]);
	if (!virtio_state_end(in)) {
		free(ctrl);
		return -EBADMSG;
	}
	for (unsigned int i = 0; i < con->nr_ports; i++) {
		con->ports[i].guest_ready = flags[i][0];
		con->ports[i].guest_open = flags[i][1];
		con->ports[i].host_open_restored = flags[i][2];
	}
	memcpy(con->ctrl, ctrl, nctrl * sizeof(*ctrl));
	con->ctrl_head = 0;
	con->ctrl_len = nctrl;
	con->restart_pending = true;
	free(ctrl);
	return 0;
}

/*
 * The guest runs again: tell it about host sides that changed with the new
 * process (programs connected before are gone). The queues, pending
 * control messages among them, are looked at next.
 */
static void con_restarted(struct virtio_device *vdev)
{
	struct virtio_console *con = container_of(vdev, struct virtio_console, vdev);

	con->restart_pending = false;
	if (!virtio_device_is_live(vdev))
		return;
	for (unsigned int i = 0; i < con->nr_ports; i++) {
		struct con_port *p = &con->ports[i];

		if (p->guest_ready && p->host_open_restored != con_host_open(p))
			con_send_host_state(p);
	}
	con_notify(con);
}

static void con_destroy(struct virtio_device *vdev)
{
	virtio_console_destroy(container_of(vdev, struct virtio_console, vdev));
}

static const struct virtio_device_ops virtio_console_ops = {
    .config_read = con_config_read,
    .config_write = con_config_write,
    .activate = con_activate,
    .queue_notify = con_queue_notify,
    .reset = con_reset,
    .held = con_held,
    .save = con_save,
    .restore = con_restore,
    .restarted = con_restarted,
    .destroy = con_destroy,
};

static int con_listen(struct con_port *p, const char *path)
{
	int r;

	/* Only a stale socket of ours is replaced; the file is mode 0600 whatever the umask. */
	r = unix_listen(path, 0600, 4);
	if (r < 0) {
		if (r == -ENAMETOOLONG)
			log_error("console socket path '%s' is too long", path);
		else
			log_error("console socket '%s': %s", path, fs_strerror(r));
		return r;
	}
	p->listen_fd = r;
	p->path = strdup(path);
	return p->path ? 0 : -ENOMEM;
}

int virtio_console_create(const struct virtio_console_params *params, struct virtio_console **out)
{
	struct virtio_console *con;
	int r = 0;

	*out = NULL;
	if (params->nr_ports > VIRTIO_CONSOLE_MAX_NAMED)
		return -EINVAL;
	for (unsigned int i = 0; i < params->nr_ports; i++) {
		const char *n = params->ports[i].name;

		if (!n || !*n || strlen(n) > VIRTIO_CONSOLE_NAME_MAX)
			return -EINVAL;
	}
	con = calloc(1, sizeof(*con));
	if (!con)
		return -ENOMEM;
	con->nr_ports = 1 + params->nr_ports;
	for (unsigned int i = 0; i < CON_PORTS; i++) {
		con->ports[i] = (struct con_port){
		    .con = con, .id = i, .listen_fd = -1, .client_fd = -1, .is_console = i == 0};
	}
	if (params->console.socket)
		r = con_listen(&con->ports[0], params->console.socket);
	for (unsigned int i = 0; i < params->nr_ports && r == 0; i++) {
		struct con_port *p = &con->ports[i + 1];

		strcpy(p->name, params->ports[i].name);
		if (params->ports[i].socket)
			r = con_listen(p, params->ports[i].socket);
	}
	if (r < 0) {
		virtio_console_destroy(con);
		return r;
	}
	for (unsigned int q = 0; q < CON_QUEUES; q++)
		virtq_init(&con->vqs[q], VIRTIO_CONSOLE_QUEUE_SIZE);
	pci_cfg_set32(con->config, VIRTIO_CONSOLE_CFG_MAX_NR_PORTS, con->nr_ports);
	con->vdev = (struct virtio_device){
	    .ops = &virtio_console_ops,
	    .name = "virtio-console",
	    .device_id = VIRTIO_ID_CONSOLE,
	    .class_code = CON_PCI_CLASS,
	    .features =
	        VIRTIO_BIT(VIRTIO_CONSOLE_F_MULTIPORT) | VIRTIO_BIT(VIRTIO_CONSOLE_F_EMERG_WRITE) |
	        VIRTIO_BIT(VIRTIO_F_RING_INDIRECT_DESC) | VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX),
	    .config_size = VIRTIO_CONSOLE_CFG_SIZE,
	    .nr_queues = 2 * (con->nr_ports + 1),
	    .vqs = con->vqs,
	};
	*out = con;
	return 0;
}

struct virtio_device *virtio_console_vdev(struct virtio_console *con)
{
	return &con->vdev;
}

int virtio_console_start(struct virtio_console *con)
{
	int r = 0;

	virtio_device_lock(&con->vdev);
	for (unsigned int i = 0; i < con->nr_ports && r == 0; i++) {
		struct con_port *p = &con->ports[i];

		if (p->listen_fd >= 0)
			r = virtio_device_watch(&con->vdev, p->listen_fd, EPOLLIN, con_accept, p);
	}
	virtio_device_unlock(&con->vdev);
	return r;
}

void virtio_console_destroy(struct virtio_console *con)
{
	if (!con)
		return;
	/* The transport (and its watches) is gone by now. */
	for (unsigned int i = 0; i < CON_PORTS; i++) {
		struct con_port *p = &con->ports[i];

		if (p->client_fd >= 0)
			close(p->client_fd);
		if (p->listen_fd >= 0) {
			close(p->listen_fd);
			unlink(p->path);
		}
		free(p->path);
	}
	free(con);
}
