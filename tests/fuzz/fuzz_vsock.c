/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: virtio-vsock (devices/virtio/vsock.c) through the virtio
 * PCI transport. The fuzzer plays the guest's driver and the host programs:
 * the input is a sequence of actions
 *
 *   guest: post receive buffers (any size, some too small for a header);
 *          send a packet on the tx queue: header fields mostly sensible
 *          (this guest's CID, the host's, known ports, an open connection)
 *          and sometimes anything, credit fields honest or not, a payload
 *          whose length matches the header or not, split over descriptors;
 *          reset the device;
 *   host:  connect to the VM's socket and send "CONNECT <port>" (or junk),
 *          write, read, half-close or close a connection, accept the
 *          device's connections on the listeners PATH_1000 and PATH_1001;
 *
 * each followed by fz_settle() (every event the action caused is handled).
 * The connection state machine, credit accounting and the pending control
 * packet queue all run off these.
 *
 * Checks: every packet the device puts in a receive buffer is well formed
 * (CIDs, type, op, length matching the used length); on a connection whose
 * every packet from the guest carried honest credit (fwd_cnt = what it
 * received), the device never sends more than that credit allows; and on a
 * connection a host program opened, what the guest receives is exactly what
 * that program wrote, in order. Sockets live in a per-process temporary
 * directory, removed at exit.
 */
#include "devices/virtio/vsock.h"
#include "fuzz_virtio.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>

#define GUEST_CID 3
#define MAX_SOCKS 16
#define MAX_KEYS 64
#define MAX_STEPS 64
#define SENT_MAX (256 * 1024)
#define HOST_PORT_A 1000
#define HOST_PORT_B 1001
#define HOST_PORT_NONE 1002 /* nobody listens */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { Q_RX, Q_TX, Q_EVENT };

struct sock {
	int fd;
	bool host_init;    /* we connected with CONNECT; else accepted from the device */
	bool awaiting_ok;  /* host_init: the device's "OK <port>" not read yet */
	uint32_t req_port; /* host_init: the guest port asked for */
	char line[32];
	unsigned int line_len;
	uint8_t *sent; /* host_init: bytes written after the CONNECT line */
	uint32_t sent_len;
};

struct key {
	bool used;
	uint32_t local, peer; /* host (CID 2) port, guest port */
	bool dishonest;       /* the guest sent made-up credit on it */
	bool credit_seen;
	uint64_t allowed;  /* most the device may have sent in this connection */
	uint32_t rx_total; /* data received in the current connection */
	int sock;          /* the host program's socket (host-initiated), or -1 */
};

static char dev_path[300];
static char listen_path[2][300];
static int listen_fd[2] = {-1, -1};

static struct sock socks[MAX_SOCKS];
static unsigned int nr_socks;
static struct key keys[MAX_KEYS];
static uint32_t guest_buf_alloc;

static struct key *key_get(uint32_t local, uint32_t peer, bool create)
{
	struct key *free_k = NULL;

	for (unsigned int i = 0; i < MAX_KEYS; i++) {
		if (keys[i].used && keys[i].local == local && keys[i].peer == peer)
			return &keys[i];
		if (!keys[i].used && !free_k)
			free_k = &keys[i];
	}
	if (!create || !free_k)
		return NULL;
	*free_k = (struct key){.used = true, .local = local, .peer = peer, .sock = -1};
	return free_k;
}

static void setup_once(void)
{
	const char *dir = fz_tmpdir("vsock");

	log_set_level(LOG_NONE);
	signal(SIGPIPE, SIG_IGN);
	snprintf(dev_path, sizeof(dev_path), "%s/v", dir);
	for (int i = 0; i < 2; i++) {
		struct sockaddr_un sa = {.sun_family = AF_UNIX};

		snprintf(listen_path[i], sizeof(listen_path[i]), "%s_%u", dev_path,
		         i ? HOST_PORT_B : HOST_PORT_A);
		FZ_CHECK(strlen(listen_path[i]) < sizeof(sa.sun_path));
		strcpy(sa.sun_path, listen_path[i]);
		listen_fd[i] = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		FZ_CHECK(listen_fd[i] >= 0);
		FZ_CHECK(bind(listen_fd[i], (struct sockaddr *)&sa, sizeof(sa)) == 0);
		FZ_CHECK(listen(listen_fd[i], 512) == 0);
	}
}

static void sock_close(unsigned int i)
{
	close(socks[i].fd);
	free(socks[i].sent);
	for (unsigned int k = 0; k < MAX_KEYS; k++)
		if (keys[k].used && keys[k].sock == (int)i)
			keys[k].sock = -1;
	socks[i] = socks[--nr_socks];
	for (unsigned int k = 0; k < MAX_KEYS; k++)
		if (keys[k].used && keys[k].sock == (int)nr_socks)
			keys[k].sock = (int)i;
}

static void sock_add(int fd, bool host_init, uint32_t port)
{
	if (nr_socks == MAX_SOCKS) {
		close(fd);
		return;
	}
	socks[nr_socks++] = (struct sock){
	    .fd = fd, .host_init = host_init, .awaiting_ok = host_init, .req_port = port};
}

/* Take every connection the device made to the listeners. */
static void accept_all(void)
{
	for (int i = 0; i < 2; i++) {
		int fd;

		while ((fd = accept4(listen_fd[i], NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0)
			sock_add(fd, false, 0);
	}
}

/* Host programs waiting for the device's answer to CONNECT: bind them to their connection. */
static void read_ok_lines(void)
{
	for (unsigned int i = 0; i < nr_socks; i++) {
		struct sock *s = &socks[i];

		while (s->awaiting_ok) {
			char ch;
			ssize_t n = recv(s->fd, &ch, 1, MSG_DONTWAIT);
			unsigned int port;

			if (n < 0)
				break; /* nothing yet */
			if (n == 0 || s->line_len + 1 >= sizeof(s->line)) {
				s->awaiting_ok = false; /* refused: closed, or "ERROR" */
				break;
			}
			if (ch != '\n') {
				s->line[s->line_len++] = ch;
				continue;
			}
			s->line[s->line_len] = '\0';
			s->awaiting_ok = false;
			if (sscanf(s->line, "OK %u", &port) == 1) {
				struct key *k = key_get(port, s->req_port, true);

				if (k)
					k->sock = (int)i;
			} else {
				FZ_CHECK(!strcmp(s->line, "ERROR"));
			}
		}
	}
}

/* One packet the device gave the guest. */
static void check_rx(struct fz *f, uint64_t gpa, uint32_t bufsize, uint32_t len)
{
	struct virtio_vsock_hdr h;
	struct key *k;

	if (len == 0)
		return; /* a buffer returned unused */
	FZ_CHECK(len >= sizeof(h) && len <= bufsize);
	memcpy(&h, fz_gpa(f, gpa, sizeof(h)), sizeof(h));
	FZ_CHECK(h.src_cid == VIRTIO_VSOCK_HOST_CID && h.dst_cid == GUEST_CID);
	FZ_CHECK(h.type == VIRTIO_VSOCK_TYPE_STREAM && h.buf_alloc == 64 * 1024);
	FZ_CHECK(h.op >= VIRTIO_VSOCK_OP_REQUEST && h.op <= VIRTIO_VSOCK_OP_CREDIT_UPDATE &&
	         h.op != VIRTIO_VSOCK_OP_CREDIT_REQUEST);
	if (h.op != VIRTIO_VSOCK_OP_RW) {
		FZ_CHECK(h.len == 0 && len == sizeof(h));
	} else {
		FZ_CHECK(h.len > 0 && h.len == len - sizeof(h) && h.len <= 64 * 1024);
	}
	k = key_get(h.src_port, h.dst_port, true);
	if (!k)
		return;
	switch (h.op) {
	case VIRTIO_VSOCK_OP_REQUEST:  /* a new connection from a host program */
	case VIRTIO_VSOCK_OP_RESPONSE: /* the guest's connection was accepted */
	case VIRTIO_VSOCK_OP_RST:
		k->rx_total = 0;
		break;
	case VIRTIO_VSOCK_OP_RW:
		if (!k->dishonest) {
			uint64_t allowed = k->credit_seen ? k->allowed : 0;

			if ((uint64_t)k->rx_total + h.len > allowed) {
				fprintf(stderr,
				        "vsock: %u bytes sent past the guest's credit (%llu)\n",
				        k->rx_total + h.len, (unsigned long long)allowed);
				abort();
			}
		}
		if (k->sock >= 0) {
			struct sock *s = &socks[k->sock];

			if (s->sent && (uint64_t)k->rx_total + h.len <= s->sent_len)
				FZ_CHECK(!memcmp(fz_gpa(f, gpa + sizeof(h), h.len),
				                 s->sent + k->rx_total, h.len));
			else if ((uint64_t)k->rx_total + h.len <= SENT_MAX)
				FZ_CHECK(!"the guest got bytes the host program never wrote");
		}
		k->rx_total += h.len;
		break;
	default:
		break;
	}
}

static void drain_used(struct fz *f)
{
	struct virtq_used_elem e;
	uint64_t cookie;

	while (fz_used(f, Q_RX, &e, &cookie))
		check_rx(f, cookie >> 20, (uint32_t)(cookie & 0xfffff), e.len);
	while (fz_used(f, Q_TX, &e, &cookie))
		FZ_CHECK(e.len == 0);
}

static void settle(struct fz *f)
{
	fz_settle(f);
	read_ok_lines();
	drain_used(f);
}

static void post_rx(struct fz *f, struct fz_in *in)
{
	unsigned int n = 1 + fz_u8(in) % 8;
	uint8_t sel = fz_u8(in);

	for (unsigned int i = 0; i < n; i++) {
		uint32_t size;
		uint64_t gpa;
		struct fz_buf b[4];
		unsigned int nb;

		switch (sel % 8) {
		case 0:
			size = sizeof(struct virtio_vsock_hdr);
			break;
		case 1:
			size = fz_u8(in) % 44; /* too small: a malformed receive queue */
			break;
		case 2:
			size = sizeof(struct virtio_vsock_hdr) + 64 * 1024 + fz_u8(in);
			break;
		default:
			size = sizeof(struct virtio_vsock_hdr) + 1 + fz_u16(in) % 4096;
			break;
		}
		if (size == 0)
			size = 1;
		gpa = fz_alloc(f, size);
		if (!gpa)
			return;
		nb = fz_split(in, gpa, size, true, b, 4);
		if (fz_submit(f, Q_RX, b, nb,
		              (sel & 0x80) &&
		                  virtio_device_has(f->vdev, VIRTIO_F_RING_INDIRECT_DESC),
		              gpa << 20 | size) < 0)
			break;
	}
	fz_kick(f, Q_RX);
}

static uint32_t pick_guest_port(struct fz_in *in, uint8_t sel)
{
	static const uint32_t p[] = {1024, 1025, 1026};

	return sel < 3 ? p[sel] : fz_u32(in);
}

static void send_tx(struct fz *f, struct fz_in *in)
{
	struct virtio_vsock_hdr h = {0};
	uint8_t m = fz_u8(in), ports = fz_u8(in);
	uint32_t plen = 0, total;
	uint64_t gpa;
	struct fz_buf b[8];
	unsigned int nb;
	struct key *k;

	h.src_cid = (m & 1) ? fz_u64(in) : GUEST_CID;
	h.dst_cid = (m & 2) ? fz_u64(in) : VIRTIO_VSOCK_HOST_CID;
	h.type = (m & 4) ? fz_u16(in) : VIRTIO_VSOCK_TYPE_STREAM;
	h.op = fz_u8(in) % 9;
	h.flags = (m & 8) ? fz_u32(in) : fz_u8(in) % 4;
	if ((ports & 0xc0) == 0xc0) {
		/* An existing connection (as the device named it), e.g. to answer a REQUEST. */
		unsigned int used = 0, want;

		k = NULL;
		for (unsigned int i = 0; i < MAX_KEYS; i++)
			used += keys[i].used;
		want = used ? (ports & 0x3f) % used : 0;
		for (unsigned int i = 0; i < MAX_KEYS && used && !k; i++)
			if (keys[i].used && want-- == 0)
				k = &keys[i];
		h.src_port = k ? k->peer : 1024;
		h.dst_port = k ? k->local : HOST_PORT_A;
	} else {
		static const uint32_t hp[] = {HOST_PORT_A, HOST_PORT_B, HOST_PORT_NONE};

		h.src_port = pick_guest_port(in, ports & 3);
		h.dst_port = (ports >> 2) % 4 < 3 ? hp[(ports >> 2) % 4] : fz_u32(in);
	}
	if (h.op == VIRTIO_VSOCK_OP_RW || (m & 0x40))
		plen = (m & 0x80) ? fz_u16(in) + 4096U : fz_u16(in) % 2048;
	h.len = (m & 0x10) ? fz_u32(in) : plen;
	k = key_get(h.dst_port, h.src_port, true);
	if (m & 0x20) {
		h.buf_alloc = fz_u32(in);
		h.fwd_cnt = fz_u32(in);
		if (k)
			k->dishonest = true;
	} else {
		h.buf_alloc = guest_buf_alloc;
		h.fwd_cnt = k ? k->rx_total : 0;
		if (k && h.src_cid == GUEST_CID && h.dst_cid == VIRTIO_VSOCK_HOST_CID) {
			uint64_t a = (uint64_t)h.fwd_cnt + h.buf_alloc;

			if (!k->credit_seen || a > k->allowed)
				k->allowed = a;
			k->credit_seen = true;
		}
	}
	total = (uint32_t)sizeof(h) + plen;
	gpa = fz_alloc(f, total);
	if (!gpa)
		return;
	memcpy(fz_gpa(f, gpa, sizeof(h)), &h, sizeof(h));
	fz_take(in, fz_gpa(f, gpa + sizeof(h), plen ? plen : 1), plen);
	nb = fz_split(in, gpa, total, false, b, 8);
	if (fz_submit(f, Q_TX, b, nb,
	              (m & 0x10) && virtio_device_has(f->vdev, VIRTIO_F_RING_INDIRECT_DESC),
	              0) >= 0)
		fz_kick(f, Q_TX);
}

static void host_connect(struct fz_in *in)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	uint8_t sel = fz_u8(in);
	uint32_t port = (sel & 0x80) ? fz_u32(in) : 1024 + sel % 3;
	char line[64];
	int fd, n;

	if (nr_socks == MAX_SOCKS)
		return;
	strcpy(sa.sun_path, dev_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	FZ_CHECK(fd >= 0);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return;
	}
	if (sel & 0x40) {
		n = (int)fz_take(in, line, 1 + fz_u8(in) % 63); /* whatever the program says */
		port = UINT32_MAX;                              /* not bound: no check on it */
	} else {
		n = snprintf(line, sizeof(line), (sel & 0x20) ? "CONNECT %u\r\n" : "CONNECT %u\n",
		             port);
	}
	if (send(fd, line, (size_t)n, MSG_NOSIGNAL) != n) {
		close(fd);
		return;
	}
	sock_add(fd, true, port);
	if (port == UINT32_MAX)
		socks[nr_socks - 1].awaiting_ok = false;
}

static void host_write(struct fz_in *in)
{
	struct sock *s;
	uint8_t buf[4096];
	size_t n;
	ssize_t w;

	if (!nr_socks)
		return;
	s = &socks[fz_u8(in) % nr_socks];
	n = 1 + fz_u8(in) * 16U;
	for (size_t i = 0; i < n; i++)
		buf[i] = (uint8_t)(s->sent_len + i * 3 + (s->fd << 4));
	w = send(s->fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (w <= 0 || !s->host_init)
		return;
	if (!s->sent)
		s->sent = malloc(SENT_MAX);
	if (s->sent && s->sent_len + (size_t)w <= SENT_MAX)
		memcpy(s->sent + s->sent_len, buf, (size_t)w);
	s->sent_len += (uint32_t)w;
}

static void host_read(struct fz_in *in)
{
	uint8_t buf[8192];

	if (!nr_socks)
		return;
	(void)!recv(socks[fz_u8(in) % nr_socks].fd, buf, sizeof(buf), MSG_DONTWAIT);
}

static void host_close(struct fz_in *in)
{
	unsigned int i;
	uint8_t how;

	if (!nr_socks)
		return;
	i = fz_u8(in) % nr_socks;
	how = fz_u8(in) % 3;
	if (how == 0)
		sock_close(i);
	else
		shutdown(socks[i].fd, how == 1 ? SHUT_WR : SHUT_RD);
}

static bool bring_up(struct fz *f, struct fz_in *in)
{
	uint8_t s = fz_u8(in);
	uint64_t feat = VIRTIO_BIT(VIRTIO_VSOCK_F_STREAM);

	if (s & 1)
		feat |= VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX);
	if (s & 2)
		feat |= VIRTIO_BIT(VIRTIO_F_RING_INDIRECT_DESC);
	for (unsigned int k = 0; k < MAX_KEYS; k++)
		keys[k].rx_total = 0; /* the reset drops every connection */
	return fz_bring_up(f, feat, 3, (uint16_t)(16U << ((s >> 2) % 4)));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool init;
	struct fz_in in = {data, size};
	struct virtio_vsock_params p = {.guest_cid = GUEST_CID, .socket = dev_path};
	struct virtio_vsock *vs;
	struct fz f;
	uint8_t b;

	if (!init) {
		setup_once();
		init = true;
	}
	memset(keys, 0, sizeof(keys));
	nr_socks = 0;
	b = fz_u8(&in);
	guest_buf_alloc = b & 0x80 ? fz_u32(&in) : (b & 0x40 ? 4096 : 65536);
	FZ_CHECK(virtio_vsock_create(&p, &vs) == 0);
	fz_create(&f, virtio_vsock_vdev(vs));
	FZ_CHECK(virtio_vsock_start(vs) == 0);
	FZ_CHECK(bring_up(&f, &in));
	for (int step = 0; step < MAX_STEPS && !fz_in_empty(&in) && !f.out_of_memory; step++) {
		switch (fz_u8(&in) % 12) {
		case 0:
		case 1:
			post_rx(&f, &in);
			break;
		case 2:
		case 3:
		case 4:
			send_tx(&f, &in);
			break;
		case 5:
			host_connect(&in);
			break;
		case 6:
			host_write(&in);
			break;
		case 7:
			host_read(&in);
			break;
		case 8:
			host_close(&in);
			break;
		case 9:
			accept_all();
			break;
		case 10:
			FZ_CHECK(fz_read(&f, VIRTIO_PCI_DEVICE_OFF, 8) == GUEST_CID);
			fz_kick(&f, fz_u8(&in) % 4); /* the event queue, or none */
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
	virtio_vsock_destroy(vs);
	while (nr_socks)
		sock_close(nr_socks - 1);
	accept_all(); /* the device's connections to the listeners, then closed */
	while (nr_socks)
		sock_close(nr_socks - 1);
	return 0;
}
