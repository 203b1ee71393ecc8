/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: virtio-console with multiple ports
 * (devices/virtio/console.c) through the virtio PCI transport. Three ports:
 * the console (port 0) and "alpha" (port 1) with a host socket each, and
 * "beta" (port 2) with none. The input is a sequence of actions:
 *
 *   guest: control messages on the control transmit queue (port id, event,
 *          value mostly sensible, sometimes anything; short or long
 *          buffers), data on a port's transmit queue, receive buffers on a
 *          port's or the control receive queue, emergency writes and
 *          configuration reads, a device reset with or without MULTIPORT;
 *   host:  connect to a port's socket (a second program is turned away),
 *          write, read, close;
 *
 * each followed by fz_settle(). Checks: control messages from the device
 * are well formed (a known port, an event the device may send, the right
 * name); nothing reaches a named port's receive queue unless MULTIPORT is on
 * and the guest opened that port; what a port's receive queue gets is,
 * chunk by chunk, what a host program wrote to that port's socket, in
 * order; every used length fits its buffer. Sockets live in a per-process
 * temporary directory, removed at exit.
 */
#include "devices/virtio/console.h"
#include "fuzz_virtio.h"

#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>

#define NR_PORTS 3
#define NR_QUEUES (2 * (NR_PORTS + 1))
#define CTRL_RX 2
#define CTRL_TX 3
#define MAX_STEPS 64
#define MAX_SESSIONS 8
#define SENT_MAX (64 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const names[NR_PORTS] = {NULL, "alpha", "beta"};
static char sock_path[2][300];

struct session {
	int fd;
	uint8_t *sent;
	uint32_t sent_len;
	uint32_t recv_off; /* how much of it the guest got */
};

struct port {
	struct session s[MAX_SESSIONS];
	unsigned int nr, cur; /* sessions so far; the one the guest's data comes from now */
	bool opened;          /* the guest opened it since the last reset */
};

static struct port ports[NR_PORTS];
static bool multiport;

static unsigned int rxq(unsigned int port)
{
	return port == 0 ? 0 : 2 + 2 * port;
}

static void setup_once(void)
{
	const char *dir = fz_tmpdir("console");

	log_set_level(LOG_NONE);
	signal(SIGPIPE, SIG_IGN);
	snprintf(sock_path[0], sizeof(sock_path[0]), "%s/console", dir);
	snprintf(sock_path[1], sizeof(sock_path[1]), "%s/alpha", dir);
}

/* A chunk the guest received on @port: the next bytes of one of the host's sessions. */
static void check_rx_data(unsigned int port, const uint8_t *buf, uint32_t n)
{
	struct port *p = &ports[port];

	FZ_CHECK(port == 0 || (multiport && p->opened));
	if (n == 0)
		return;
	for (unsigned int j = p->cur; j < p->nr; j++) {
		struct session *s = &p->s[j];

		if (!s->sent || s->recv_off + n > s->sent_len ||
		    memcmp(buf, s->sent + s->recv_off, n))
			continue;
		s->recv_off += n;
		p->cur = j;
		return;
	}
	/* Past what we record, nothing is checked. */
	for (unsigned int j = p->cur; j < p->nr; j++)
		if (p->s[j].sent_len > SENT_MAX)
			return;
	fprintf(stderr, "console port %u: the guest got %u bytes no host program wrote\n", port, n);
	abort();
}

static void check_ctrl(const uint8_t *buf, uint32_t len)
{
	struct virtio_console_control c;

	FZ_CHECK(multiport && len >= sizeof(c));
	memcpy(&c, buf, sizeof(c));
	FZ_CHECK(c.id < NR_PORTS);
	switch (c.event) {
	case VIRTIO_CONSOLE_DEVICE_ADD:
		FZ_CHECK(len == sizeof(c));
		break;
	case VIRTIO_CONSOLE_CONSOLE_PORT:
		FZ_CHECK(c.id == 0 && c.value == 1 && len == sizeof(c));
		break;
	case VIRTIO_CONSOLE_PORT_OPEN:
		FZ_CHECK(c.value <= 1 && len == sizeof(c));
		break;
	case VIRTIO_CONSOLE_PORT_NAME:
		FZ_CHECK(c.id != 0 && len == sizeof(c) + strlen(names[c.id]) &&
		         !memcmp(buf + sizeof(c), names[c.id], strlen(names[c.id])));
		break;
	default:
		FZ_CHECK(!"an event the device does not send");
	}
}

static void drain_used(struct fz *f)
{
	struct virtq_used_elem e;
	uint64_t cookie;

	for (unsigned int q = 0; q < NR_QUEUES; q++) {
		while (fz_used(f, q, &e, &cookie)) {
			uint64_t gpa = cookie >> 20;
			uint32_t size = (uint32_t)(cookie & 0xfffff);

			FZ_CHECK(e.len <= size);
			if (q == CTRL_RX)
				check_ctrl(fz_gpa(f, gpa, size), e.len);
			else if (q & 1)
				FZ_CHECK(e.len == 0); /* transmit queues */
			else
				check_rx_data(q == 0 ? 0 : (q - 2) / 2, fz_gpa(f, gpa, size),
				              e.len);
		}
	}
}

static void settle(struct fz *f)
{
	fz_settle(f);
	drain_used(f);
}

/* A buffer of @size bytes (from the input if @fill) as up to 4 descriptors on @q. */
static void submit(struct fz *f, struct fz_in *in, unsigned int q, uint32_t size, bool write,
                   bool fill, bool indirect)
{
	uint64_t gpa;
	struct fz_buf b[4];
	unsigned int nb;

	if (size == 0)
		size = 1;
	gpa = fz_alloc(f, size);
	if (!gpa)
		return;
	if (fill)
		fz_take(in, fz_gpa(f, gpa, size), size);
	nb = fz_split(in, gpa, size, write, b, 4);
	fz_submit(f, q, b, nb, indirect && virtio_device_has(f->vdev, VIRTIO_F_RING_INDIRECT_DESC),
	          gpa << 20 | size);
}

static void post_rx(struct fz *f, struct fz_in *in)
{
	uint8_t sel = fz_u8(in);
	unsigned int q = sel % 4 == 3 ? CTRL_RX : rxq(sel % 4);
	unsigned int n = 1 + (sel >> 2) % 8;

	for (unsigned int i = 0; i < n; i++)
		submit(f, in, q, 1 + fz_u8(in) % (q == CTRL_RX ? 80 : 256), true, false,
		       sel & 0x80);
	fz_kick(f, q);
}

static void send_ctrl(struct fz *f, struct fz_in *in)
{
	uint8_t sel = fz_u8(in);
	struct virtio_console_control c = {
	    .id = (sel & 0x80) ? fz_u32(in) : sel % (NR_PORTS + 1),
	    .event = (sel & 0x40) ? fz_u16(in) : fz_u8(in) % 9,
	    .value = (sel & 0x20) ? fz_u16(in) : 1,
	};
	uint32_t len = sizeof(c);
	uint64_t gpa;
	struct fz_buf b[4];
	unsigned int nb;

	if (c.event == VIRTIO_CONSOLE_PORT_OPEN && !(sel & 0x20))
		c.value = fz_u8(in) & 1;
	if (sel & 0x10)
		len = fz_u8(in) % 16; /* short or long */
	gpa = fz_alloc(f, len ? len : 1);
	if (!gpa)
		return;
	memcpy(fz_gpa(f, gpa, len < sizeof(c) ? 1 : sizeof(c)), &c,
	       len < sizeof(c) ? len : sizeof(c));
	nb = len ? fz_split(in, gpa, len, false, b, 4) : 0;
	if (!nb) {
		b[0] = (struct fz_buf){gpa, 0, false};
		nb = 1;
	}
	/* What the device takes from a message it can read whole. */
	if (len >= sizeof(c) && c.id < NR_PORTS && c.event == VIRTIO_CONSOLE_PORT_OPEN && c.value)
		ports[c.id].opened = true;
	if (fz_submit(f, CTRL_TX, b, nb,
	              sel & 0x08 && virtio_device_has(f->vdev, VIRTIO_F_RING_INDIRECT_DESC),
	              gpa << 20 | 1) >= 0)
		fz_kick(f, CTRL_TX);
}

static void send_data(struct fz *f, struct fz_in *in)
{
	uint8_t sel = fz_u8(in);
	unsigned int q = rxq(sel % NR_PORTS) + 1;

	submit(f, in, q, 1 + fz_u8(in) % 512, false, true, sel & 0x80);
	fz_kick(f, q);
}

static void host_connect(struct fz_in *in)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	unsigned int port = fz_u8(in) % 2;
	struct port *p = &ports[port];
	int fd;

	if (p->nr == MAX_SESSIONS)
		return;
	strcpy(sa.sun_path, sock_path[port]);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	FZ_CHECK(fd >= 0);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return;
	}
	p->s[p->nr++] = (struct session){.fd = fd};
}

/* The newest session of a port still open on our side, or NULL. */
static struct session *pick_session(struct fz_in *in)
{
	struct port *p = &ports[fz_u8(in) % 2];

	for (unsigned int j = p->nr; j-- > 0;)
		if (p->s[j].fd >= 0)
			return &p->s[j];
	return NULL;
}

static void host_write(struct fz_in *in)
{
	struct session *s = pick_session(in);
	uint8_t buf[2048];
	size_t n = 1 + fz_u8(in) * 8U;
	ssize_t w;

	if (!s)
		return;
	for (size_t i = 0; i < n; i++)
		buf[i] = (uint8_t)(s->sent_len + i * 5 + (s->fd << 3));
	w = send(s->fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (w <= 0)
		return;
	if (!s->sent)
		s->sent = malloc(SENT_MAX);
	if (s->sent && s->sent_len + (size_t)w <= SENT_MAX)
		memcpy(s->sent + s->sent_len, buf, (size_t)w);
	s->sent_len += (uint32_t)w;
}

static void host_read_close(struct fz_in *in, bool close_it)
{
	struct session *s = pick_session(in);
	uint8_t buf[4096];

	if (!s)
		return;
	if (!close_it) {
		(void)!recv(s->fd, buf, sizeof(buf), MSG_DONTWAIT);
		return;
	}
	close(s->fd);
	s->fd = -1;
}

static bool bring_up(struct fz *f, struct fz_in *in)
{
	uint8_t s = fz_u8(in);
	uint64_t feat = 0;

	multiport = !(s & 1);
	if (multiport)
		feat |= VIRTIO_BIT(VIRTIO_CONSOLE_F_MULTIPORT);
	if (s & 2)
		feat |= VIRTIO_BIT(VIRTIO_CONSOLE_F_EMERG_WRITE);
	if (s & 4)
		feat |= VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX);
	if (s & 8)
		feat |= VIRTIO_BIT(VIRTIO_F_RING_INDIRECT_DESC);
	for (unsigned int i = 0; i < NR_PORTS; i++)
		ports[i].opened = false;
	return fz_bring_up(f, feat, NR_QUEUES, (uint16_t)(8U << ((s >> 4) % 4)));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool init;
	struct fz_in in = {data, size};
	struct virtio_console_params p = {
	    .console = {.socket = sock_path[0]},
	    .ports = {{.name = "alpha", .socket = sock_path[1]}, {.name = "beta"}},
	    .nr_ports = 2,
	};
	struct virtio_console *con;
	struct fz f;

	if (!init) {
		setup_once();
		init = true;
	}
	memset(ports, 0, sizeof(ports));
	FZ_CHECK(virtio_console_create(&p, &con) == 0);
	fz_create(&f, virtio_console_vdev(con));
	FZ_CHECK(virtio_console_start(con) == 0);
	FZ_CHECK(bring_up(&f, &in));
	for (int step = 0; step < MAX_STEPS && !fz_in_empty(&in) && !f.out_of_memory; step++) {
		switch (fz_u8(&in) % 11) {
		case 0:
		case 1:
			post_rx(&f, &in);
			break;
		case 2:
		case 3:
			send_ctrl(&f, &in);
			break;
		case 4:
			send_data(&f, &in);
			break;
		case 5:
			host_connect(&in);
			break;
		case 6:
			host_write(&in);
			break;
		case 7:
			host_read_close(&in, fz_u8(&in) & 1);
			break;
		case 8: {
			uint8_t c = fz_u8(&in);

			fz_write(&f, VIRTIO_PCI_DEVICE_OFF + VIRTIO_CONSOLE_CFG_EMERG_WR + c % 4,
			         1U << (c >> 6), fz_u32(&in));
			FZ_CHECK(fz_read(&f,
			                 VIRTIO_PCI_DEVICE_OFF + VIRTIO_CONSOLE_CFG_MAX_NR_PORTS,
			                 4) == NR_PORTS);
			break;
		}
		case 9:
			fz_kick(&f, fz_u8(&in) % (NR_QUEUES + 1));
			break;
		default:
			if (fz_needs_reset(&f) || (fz_u8(&in) & 1)) {
				settle(&f);
				FZ_CHECK(bring_up(&f, &in));
			}
			break;
		}
		settle(&f);
	}
	fz_destroy(&f);
	virtio_console_destroy(con);
	for (unsigned int i = 0; i < NR_PORTS; i++) {
		for (unsigned int j = 0; j < ports[i].nr; j++) {
			if (ports[i].s[j].fd >= 0)
				close(ports[i].s[j].fd);
			free(ports[i].s[j].sent);
		}
	}
	return 0;
}
