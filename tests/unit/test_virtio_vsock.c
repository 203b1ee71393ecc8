/* SPDX-License-Identifier: MIT */
/*
 * Unit tests: virtio-vsock through the virtio PCI transport, the test
 * playing the guest's vsock driver on synthetic rings and the host programs
 * on real UNIX sockets (no KVM): host-initiated and guest-initiated
 * connections with data both ways, half-close and close, refused
 * connections, flow control by credit, bad commands, hostile packets,
 * device reset, control packets waiting for receive buffers; quiesce holds
 * host data back until resume; a restore into a new device starts with no
 * connections and, once the guest runs, sends one TRANSPORT_RESET event.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "devices/virtio/vsock.h"
#include "virtio_test_driver.h"

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/un.h>

#define GUEST_CID 3
#define QSIZE 128
#define RX_BUFS 16
#define RX_BUF_SIZE (VIRTIO_VSOCK_HDR_SIZE + 4096)
#define GUEST_BUF_ALLOC 65536

enum { Q_RX, Q_TX, Q_EVENT };

struct fixture {
	char path[64];
	struct virtio_vsock *vs;
	struct vd *d;
	uint64_t rx_gpa[QSIZE]; /* by descriptor head */
	uint32_t guest_fwd_cnt;
};

static void post_rx(struct fixture *f, uint64_t gpa)
{
	struct vd_buf b = {gpa, RX_BUF_SIZE, true};
	uint16_t head = vd_submit(f->d, Q_RX, &b, 1);

	f->rx_gpa[head] = gpa;
}

static void post_rx_buffers(struct fixture *f, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		post_rx(f, vd_alloc(f->d, RX_BUF_SIZE));
	vd_kick(f->d, Q_RX);
}

static int setup_common(void **state, bool rx_buffers)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct virtio_vsock_params p = {.guest_cid = GUEST_CID};

	assert_non_null(f);
	snprintf(f->path, sizeof(f->path), "/tmp/nestvm-test-vsock.%d", (int)getpid());
	p.socket = f->path;
	assert_int_equal(virtio_vsock_create(&p, &f->vs), 0);
	f->d = vd_create(virtio_vsock_vdev(f->vs), true);
	assert_int_equal(virtio_vsock_start(f->vs), 0);
	vd_bring_up(f->d, VIRTIO_BIT(VIRTIO_VSOCK_F_STREAM) | VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX),
	            3, QSIZE);
	if (rx_buffers)
		post_rx_buffers(f, RX_BUFS);
	*state = f;
	return 0;
}

static int setup(void **state)
{
	return setup_common(state, true);
}

static int setup_no_rx(void **state)
{
	return setup_common(state, false);
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	vd_destroy(f->d);
	virtio_vsock_destroy(f->vs);
	assert_int_equal(access(f->path, F_OK), -1); /* the socket is removed */
	free(f);
	return 0;
}

/* The guest sends a packet on the tx queue and waits until the device took it. */
static void guest_send(struct fixture *f, uint32_t src_port, uint32_t dst_port, uint16_t op,
                       uint32_t flags, const void *data, uint32_t len, uint64_t src_cid)
{
	struct virtio_vsock_hdr h = {
	    .src_cid = src_cid,
	    .dst_cid = VIRTIO_VSOCK_HOST_CID,
	    .src_port = src_port,
	    .dst_port = dst_port,
	    .len = len,
	    .type = VIRTIO_VSOCK_TYPE_STREAM,
	    .op = op,
	    .flags = flags,
	    .buf_alloc = GUEST_BUF_ALLOC,
	    .fwd_cnt = f->guest_fwd_cnt,
	};
	uint64_t hg = vd_alloc(f->d, sizeof(h)), dg = vd_alloc(f->d, len);
	struct vd_buf bufs[2] = {{hg, sizeof(h), false}, {dg, len, false}};
	struct virtq_used_elem e;

	memcpy(vd_gpa(f->d, hg, sizeof(h)), &h, sizeof(h));
	if (len)
		memcpy(vd_gpa(f->d, dg, len), data, len);
	vd_submit(f->d, Q_TX, bufs, len ? 2 : 1);
	vd_kick(f->d, Q_TX);
	assert_true(vd_wait_used(f->d, Q_TX, &e, 2000));
}

static void guest_send_op(struct fixture *f, uint32_t src_port, uint32_t dst_port, uint16_t op,
                          uint32_t flags)
{
	guest_send(f, src_port, dst_port, op, flags, NULL, 0, GUEST_CID);
}

/* The guest receives the next packet (header into @h, payload into @data); re-posts the buffer. */
static bool guest_recv(struct fixture *f, struct virtio_vsock_hdr *h, void *data, size_t max,
                       int ms)
{
	struct virtq_used_elem e;
	uint64_t gpa;

	if (!vd_wait_used(f->d, Q_RX, &e, ms))
		return false;
	gpa = f->rx_gpa[e.id];
	assert_true(e.len >= sizeof(*h));
	memcpy(h, vd_gpa(f->d, gpa, sizeof(*h)), sizeof(*h));
	assert_int_equal(e.len, sizeof(*h) + h->len);
	assert_true(h->len <= max);
	if (h->len)
		memcpy(data, vd_gpa(f->d, gpa + sizeof(*h), h->len), h->len);
	assert_int_equal(h->src_cid, VIRTIO_VSOCK_HOST_CID);
	assert_int_equal(h->dst_cid, GUEST_CID);
	assert_int_equal(h->type, VIRTIO_VSOCK_TYPE_STREAM);
	post_rx(f, gpa);
	vd_kick(f->d, Q_RX);
	return true;
}

static void expect_op(struct fixture *f, uint16_t op, struct virtio_vsock_hdr *h)
{
	uint8_t buf[4096];

	assert_true(guest_recv(f, h, buf, sizeof(buf), 2000));
	assert_int_equal(h->op, op);
}

static int host_connect(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

static int host_listen(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	unlink(path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 4), 0);
	return fd;
}

/* Read exactly @len bytes within @ms (or until EOF: returns what was read). */
static ssize_t host_read(int fd, void *buf, size_t len, int ms)
{
	size_t got = 0;

	while (got < len) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t n;

		if (poll(&p, 1, ms) <= 0)
			break;
		n = read(fd, (char *)buf + got, len - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

static void host_write(int fd, const char *s)
{
	assert_int_equal(write(fd, s, strlen(s)), (ssize_t)strlen(s));
}

/* Host connects to guest port @port; the guest accepts. Returns the host fd; *local = host port. */
static int connect_from_host(struct fixture *f, uint32_t port, uint32_t *local)
{
	struct virtio_vsock_hdr h;
	char ok[32] = {0}, want[32];
	int fd = host_connect(f->path);

	host_write(fd, "CONNECT ");
	usleep(10000); /* the command may arrive in pieces */
	snprintf(want, sizeof(want), "%u\n", port);
	host_write(fd, want);
	expect_op(f, VIRTIO_VSOCK_OP_REQUEST, &h);
	assert_int_equal(h.dst_port, port);
	*local = h.src_port;
	guest_send_op(f, port, *local, VIRTIO_VSOCK_OP_RESPONSE, 0);
	snprintf(want, sizeof(want), "OK %u\n", *local);
	assert_int_equal(host_read(fd, ok, strlen(want), 2000), (ssize_t)strlen(want));
	assert_string_equal(ok, want);
	return fd;
}

static void test_identity(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(vd_cfg_read(f->d, PCI_CFG_DEVICE_ID, 2), 0x1040 + 19);
	assert_int_equal(vd_read(f->d, VIRTIO_PCI_DEVICE_OFF, 4), GUEST_CID);
	assert_int_equal(vd_read(f->d, VIRTIO_PCI_DEVICE_OFF + 4, 4), 0);
	assert_int_equal(vd_read(f->d, VIRTIO_PCI_COMMON_NUMQ, 2), 3);
}

static void test_host_to_guest(void **state)
{
	struct fixture *f = *state;
	struct virtio_vsock_hdr h;
	uint8_t buf[4096];
	char got[8] = {0};
	uint32_t local;
	int fd = connect_from_host(f, 1234, &local);

	host_write(fd, "ping");
	assert_true(guest_recv(f, &h, buf, sizeof(buf), 2000));
	assert_int_equal(h.op, VIRTIO_VSOCK_OP_RW);
	assert_int_equal(h.len, 4);
	assert_memory_equal(buf, "ping", 4);
	assert_int_equal(h.src_port, local);
	assert_int_equal(h.dst_port, 1234);
	assert_int_equal(h.buf_alloc, 65536);
	f->guest_fwd_cnt += 4;

	guest_send(f, 1234, local, VIRTIO_VSOCK_OP_RW, 0, "pong", 4, GUEST_CID);
	assert_int_equal(host_read(fd, got, 4, 2000), 4);
	assert_string_equal(got, "pong");

	/* The host half-closes: the guest hears SHUTDOWN F_SEND. */
	shutdown(fd, SHUT_WR);
	expect_op(f, VIRTIO_VSOCK_OP_SHUTDOWN, &h);
	assert_int_equal(h.flags, VIRTIO_VSOCK_SHUTDOWN_F_SEND);
	/* The guest can still send; then it closes and gets the device's RST. */
	guest_send(f, 1234, local, VIRTIO_VSOCK_OP_RW, 0, "bye", 3, GUEST_CID);
	guest_send_op(f, 1234, local, VIRTIO_VSOCK_OP_SHUTDOWN,
	              VIRTIO_VSOCK_SHUTDOWN_F_SEND | VIRTIO_VSOCK_SHUTDOWN_F_RECEIVE);
	expect_op(f, VIRTIO_VSOCK_OP_RST, &h);
	memset(got, 0, sizeof(got));
	assert_int_equal(host_read(fd, got, 8, 2000), 3); /* "bye", then EOF */
	assert_string_equal(got, "bye");
	close(fd);
}

static void test_data_right_after_connect(void **state)
{
	struct fixture *f = *state;
	struct virtio_vsock_hdr h;
	uint8_t buf[4096];
	char ok[32] = {0};
	int fd = host_connect(f->path);

	/* The line and the first data in one write: the data must not be eaten. */
	host_write(fd, "CONNECT 42\nearly");
	expect_op(f, VIRTIO_VSOCK_OP_REQUEST, &h);
	guest_send_op(f, 42, h.src_port, VIRTIO_VSOCK_OP_RESPONSE, 0);
	assert_true(host_read(fd, ok, 3, 2000) == 3);
	assert_memory_equal(ok, "OK ", 3);
	assert_true(guest_recv(f, &h, buf, sizeof(buf), 2000));
	assert_int_equal(h.op, VIRTIO_VSOCK_OP_RW);
	assert_int_equal(h.len, 5);
	assert_memory_equal(buf, "early", 5);
	close(fd);
}

static void test_guest_refuses(void **state)
{
	struct fixture *f = *state;
	struct virtio_vsock_hdr h;
	char buf[8];
	int fd = host_connect(f->path);

	host_write(fd, "CONNECT 99\n");
	expect_op(f, VIRTIO_VSOCK_OP_REQUEST, &h);
	guest_send_op(f, 99, h.src_port, VIRTIO_VSOCK_OP_RST, 0);
	assert_int_equal(host_read(fd, buf, sizeof(buf), 2000), 0); /* closed, no OK */
	close(fd);
}

static void test_host_gives_up(void **state)
{
	struct fixture *f = *state;
	struct virtio_vsock_hdr h;
	uint32_t local;
	int fd = host_connect(f->path);

	/* The guest does not answer the request; the host program leaves: the guest hears RST. */
	host_write(fd, "CONNECT 98\n");
	expect_op(f, VIRTIO_VSOCK_OP_REQUEST, &h);
	local = h.src_port;
	close(fd);
	expect_op(f, VIRTIO_VSOCK_OP_RST, &h);
	assert_int_equal(h.src_port, local);
	assert_int_equal(h.dst_port, 98);
	/* A late RESPONSE now gets a reset, not a crash. */
	guest_send_op(f, 98, local, VIRTIO_VSOCK_OP_RESPONSE, 0);
	expect_op(f, VIRTIO_VSOCK_OP_RST, &h);
}

static void test_bad_command(void **state)
{
	struct fixture *f = *state;
	char buf[16] = {0};
	int fd = host_connect(f->path);

	host_write(fd, "HELLO 5\n");
	assert_int_equal(host_read(fd, buf, sizeof(buf), 2000), 6);
	assert_string_equal(buf, "ERROR\n");
	close(fd);
	fd = host_connect(f->path);
	host_write(fd, "CONNECT 99999999999\n");
	memset(buf, 0, sizeof(buf));
	assert_int_equal(host_read(fd, buf, sizeof(buf), 2000), 6);
	close(fd);
	/*
	 * A line longer than any command: dropped. The device may close the
	 * connection before all of it is written, so a write may fail (EPIPE,
	 * ECONNRESET; SIGPIPE is ignored in main()); what counts is that the
	 * host reads nothing but the end of the connection.
	 */
	fd = host_connect(f->path);
	for (int i = 0; i < 10; i++)
		if (write(fd, "CONNECTCONNECT", 14) < 0)
			break;
	assert_int_equal(host_read(fd, buf, sizeof(buf), 2000), 0);
	close(fd);
}

static void test_guest_to_host(void **state)
{
	struct fixture *f = *state;
	char path[80], got[8] = {0};
	struct virtio_vsock_hdr h;
	uint8_t buf[4096];
	int lfd, fd;

	snprintf(path, sizeof(path), "%s_5000", f->path);
	lfd = host_listen(path);
	guest_send_op(f, 777, 5000, VIRTIO_VSOCK_OP_REQUEST, 0);
	expect_op(f, VIRTIO_VSOCK_OP_RESPONSE, &h);
	assert_int_equal(h.src_port, 5000);
	assert_int_equal(h.dst_port, 777);
	fd = accept(lfd, NULL, NULL);
	assert_true(fd >= 0);

	guest_send(f, 777, 5000, VIRTIO_VSOCK_OP_RW, 0, "hello", 5, GUEST_CID);
	assert_int_equal(host_read(fd, got, 5, 2000), 5);
	assert_string_equal(got, "hello");
	host_write(fd, "world");
	assert_true(guest_recv(f, &h, buf, sizeof(buf), 2000));
	assert_int_equal(h.op, VIRTIO_VSOCK_OP_RW);
	assert_memory_equal(buf, "world", 5);

	/* The host program exits: the guest hears that nothing more comes, then a full shutdown. */
	close(fd);
	expect_op(f, VIRTIO_VSOCK_OP_SHUTDOWN, &h);
	if (h.flags != (VIRTIO_VSOCK_SHUTDOWN_F_SEND | VIRTIO_VSOCK_SHUTDOWN_F_RECEIVE)) {
		assert_int_equal(h.flags, VIRTIO_VSOCK_SHUTDOWN_F_SEND);
		expect_op(f, VIRTIO_VSOCK_OP_SHUTDOWN, &h);
		assert_int_equal(h.flags,
		                 VIRTIO_VSOCK_SHUTDOWN_F_SEND | VIRTIO_VSOCK_SHUTDOWN_F_RECEIVE);
	}
	guest_send_op(f, 777, 5000, VIRTIO_VSOCK_OP_RST, 0);
	/* The connection is gone: a packet for it now gets a reset. */
	guest_send(f, 777, 5000, VIRTIO_VSOCK_OP_RW, 0, "x", 1, GUEST_CID);
	expect_op(f, VIRTIO_VSOCK_OP_RST, &h);
	close(lfd);
	unlink(path);
}

static void test_guest_connect_refused(void **state)
{
	struct fixture *f = *state;
	struct virtio_vsock_hdr h;

	guest_send_op(f, 778, 6000, VIRTIO_VSOCK_OP_REQUEST, 0);
	expect_op(f, VIRTIO_VSOCK_OP_RST, &h);
	assert_int_equal(h.src_port, 6000);
	assert_int_equal(h.dst_port, 778);
}

/*
 * Issue 9 row 4: PATH_PORT that another user's program listens on, or a
 * symlink, is not where the guest's connections go.
 */
static void test_guest_connect_not_ours(void **state)
{
	struct fixture *f = *state;
	char path[80], real[80];
	struct virtio_vsock_hdr h;
	int lfd;

	/* A symlink (even to a socket of ours) is not followed. */
	snprintf(real, sizeof(real), "%s.real", f->path);
	snprintf(path, sizeof(path), "%s_6001", f->path);
	lfd = host_listen(real);
	unlink(path);
	assert_int_equal(symlink(real, path), 0);
	guest_send_op(f, 779, 6001, VIRTIO_VSOCK_OP_REQUEST, 0);
	expect_op(f, VIRTIO_VSOCK_OP_RST, &h);
	assert_int_equal(h.src_port, 6001);
	unlink(path);
	close(lfd);
	unlink(real);
	if (geteuid() != 0)
		return; /* giving the socket to another user needs root */
	snprintf(path, sizeof(path), "%s_6002", f->path);
	lfd = host_listen(path);
	assert_int_equal(chown(path, 65534, 65534), 0); /* nobody's */
	guest_send_op(f, 780, 6002, VIRTIO_VSOCK_OP_REQUEST, 0);
	expect_op(f, VIRTIO_VSOCK_OP_RST, &h);
	assert_int_equal(h.src_port, 6002);
	close(lfd);
	unlink(path);
}

static void test_credit(void **state)
{
	struct fixture *f = *state;
	struct virtio_vsock_hdr h;
	uint8_t buf[4096], big[1000];
	uint32_t local, total = 0;
	int fd = connect_from_host(f, 1300, &local);

	/* The guest says it has room for 100 bytes only. */
	memset(big, 'z', sizeof(big));
	{
		struct virtio_vsock_hdr u = {
		    .src_cid = GUEST_CID,
		    .dst_cid = 2,
		    .src_port = 1300,
		    .dst_port = local,
		    .type = VIRTIO_VSOCK_TYPE_STREAM,
		    .op = VIRTIO_VSOCK_OP_CREDIT_UPDATE,
		    .buf_alloc = 100,
		};
		uint64_t g = vd_alloc(f->d, sizeof(u));
		struct vd_buf b = {g, sizeof(u), false};
		struct virtq_used_elem e;

		memcpy(vd_gpa(f->d, g, sizeof(u)), &u, sizeof(u));
		vd_submit(f->d, Q_TX, &b, 1);
		vd_kick(f->d, Q_TX);
		assert_true(vd_wait_used(f->d, Q_TX, &e, 2000));
	}
	assert_int_equal(write(fd, big, sizeof(big)), sizeof(big));
	while (guest_recv(f, &h, buf, sizeof(buf), 200)) {
		assert_int_equal(h.op, VIRTIO_VSOCK_OP_RW);
		total += h.len;
	}
	assert_int_equal(total, 100);
	/* The guest consumed it and says so: more flows. */
	{
		struct virtio_vsock_hdr u = {
		    .src_cid = GUEST_CID,
		    .dst_cid = 2,
		    .src_port = 1300,
		    .dst_port = local,
		    .type = VIRTIO_VSOCK_TYPE_STREAM,
		    .op = VIRTIO_VSOCK_OP_CREDIT_UPDATE,
		    .buf_alloc = 100000,
		    .fwd_cnt = 100,
		};
		uint64_t g = vd_alloc(f->d, sizeof(u));
		struct vd_buf b = {g, sizeof(u), false};
		struct virtq_used_elem e;

		memcpy(vd_gpa(f->d, g, sizeof(u)), &u, sizeof(u));
		vd_submit(f->d, Q_TX, &b, 1);
		vd_kick(f->d, Q_TX);
		assert_true(vd_wait_used(f->d, Q_TX, &e, 2000));
	}
	while (total < sizeof(big) && guest_recv(f, &h, buf, sizeof(buf), 2000))
		total += h.len;
	assert_int_equal(total, sizeof(big));
	close(fd);
}

static void test_guest_overruns_credit(void **state)
{
	struct fixture *f = *state;
	struct virtio_vsock_hdr h;
	uint8_t *chunk = calloc(1, 60000), buf[4096];
	bool reset = false;
	uint32_t local;
	int fd = connect_from_host(f, 1400, &local);

	/*
	 * The host reads nothing and the guest ignores the device's credit:
	 * once the host socket and the device's 64 KiB are full, the
	 * connection is reset.
	 */
	assert_non_null(chunk);
	for (int i = 0; i < 200 && !reset; i++) {
		guest_send(f, 1400, local, VIRTIO_VSOCK_OP_RW, 0, chunk, 60000, GUEST_CID);
		while (!reset && guest_recv(f, &h, buf, sizeof(buf), 5)) {
			assert_true(h.op == VIRTIO_VSOCK_OP_CREDIT_UPDATE ||
			            h.op == VIRTIO_VSOCK_OP_RST);
			reset = h.op == VIRTIO_VSOCK_OP_RST;
		}
	}
	assert_true(reset);
	free(chunk);
	close(fd);
}

static void test_hostile_packets(void **state)
{
	struct fixture *f = *state;
	struct virtio_vsock_hdr h;
	uint8_t buf[64];
	struct virtq_used_elem e;

	/* Another CID as source: dropped, no answer. */
	guest_send(f, 1, 2, VIRTIO_VSOCK_OP_REQUEST, 0, NULL, 0, 99);
	assert_false(guest_recv(f, &h, buf, sizeof(buf), 50));
	/* A packet for no connection: RST. */
	guest_send(f, 1, 2, VIRTIO_VSOCK_OP_RW, 0, "abc", 3, GUEST_CID);
	expect_op(f, VIRTIO_VSOCK_OP_RST, &h);
	/* A header shorter than 44 bytes: dropped, the device goes on. */
	{
		uint64_t g = vd_alloc(f->d, 20);
		struct vd_buf b = {g, 20, false};

		vd_submit(f->d, Q_TX, &b, 1);
		vd_kick(f->d, Q_TX);
		assert_true(vd_wait_used(f->d, Q_TX, &e, 2000));
	}
	/* len larger than the payload there: RST. */
	{
		struct virtio_vsock_hdr bad = {.src_cid = GUEST_CID,
		                               .dst_cid = 2,
		                               .src_port = 5,
		                               .dst_port = 6,
		                               .len = 1000,
		                               .type = VIRTIO_VSOCK_TYPE_STREAM,
		                               .op = VIRTIO_VSOCK_OP_RW};
		uint64_t g = vd_alloc(f->d, sizeof(bad));
		struct vd_buf b = {g, sizeof(bad), false};

		memcpy(vd_gpa(f->d, g, sizeof(bad)), &bad, sizeof(bad));
		vd_submit(f->d, Q_TX, &b, 1);
		vd_kick(f->d, Q_TX);
		assert_true(vd_wait_used(f->d, Q_TX, &e, 2000));
		expect_op(f, VIRTIO_VSOCK_OP_RST, &h);
	}
	/* A seqpacket (type 2) request: RST. */
	{
		struct virtio_vsock_hdr sp = {.src_cid = GUEST_CID,
		                              .dst_cid = 2,
		                              .src_port = 5,
		                              .dst_port = 7,
		                              .type = 2,
		                              .op = VIRTIO_VSOCK_OP_REQUEST};
		uint64_t g = vd_alloc(f->d, sizeof(sp));
		struct vd_buf b = {g, sizeof(sp), false};

		memcpy(vd_gpa(f->d, g, sizeof(sp)), &sp, sizeof(sp));
		vd_submit(f->d, Q_TX, &b, 1);
		vd_kick(f->d, Q_TX);
		assert_true(vd_wait_used(f->d, Q_TX, &e, 2000));
		expect_op(f, VIRTIO_VSOCK_OP_RST, &h);
	}
	assert_int_equal(vd_status(f->d) & VIRTIO_STATUS_DEVICE_NEEDS_RESET, 0);
}

static void test_reset_closes_connections(void **state)
{
	struct fixture *f = *state;
	uint32_t local;
	char buf[8];
	int fd = connect_from_host(f, 1500, &local);

	vd_set_status(f->d, 0);
	assert_int_equal(host_read(fd, buf, sizeof(buf), 2000), 0);
	close(fd);
	/* While the driver is gone, host connections are turned away. */
	fd = host_connect(f->path);
	host_write(fd, "CONNECT 1\n");
	assert_int_equal(host_read(fd, buf, 6, 2000), 6);
	close(fd);
}

static void test_controls_wait_for_rx_buffers(void **state)
{
	struct fixture *f = *state;
	struct virtio_vsock_hdr h;

	/* No receive buffers: the RSTs for three refused connections wait. */
	for (uint32_t p = 0; p < 3; p++)
		guest_send_op(f, 900 + p, 7000 + p, VIRTIO_VSOCK_OP_REQUEST, 0);
	usleep(20000);
	post_rx_buffers(f, RX_BUFS);
	for (uint32_t p = 0; p < 3; p++) {
		expect_op(f, VIRTIO_VSOCK_OP_RST, &h);
		assert_int_equal(h.dst_port, 900 + p);
	}
}

static void test_create_checks(void **state)
{
	struct virtio_vsock *vs;
	struct virtio_vsock_params p = {.guest_cid = 2, .socket = "/tmp/x"};
	char longpath[200];

	(void)state;
	assert_int_equal(virtio_vsock_create(&p, &vs), -EINVAL);
	p.guest_cid = UINT32_MAX;
	assert_int_equal(virtio_vsock_create(&p, &vs), -EINVAL);
	memset(longpath, 'a', sizeof(longpath) - 1);
	longpath[sizeof(longpath) - 1] = '\0';
	p.guest_cid = 3;
	p.socket = longpath;
	assert_int_equal(virtio_vsock_create(&p, &vs), -ENAMETOOLONG);
	p.socket = "/nonexistent-dir/sock";
	assert_true(virtio_vsock_create(&p, &vs) < 0);
}

/* ------------------------------------------------------------- save/restore */

static void post_event(struct fixture *f)
{
	struct vd_buf b = {vd_alloc(f->d, VIRTIO_VSOCK_EVENT_SIZE), VIRTIO_VSOCK_EVENT_SIZE, true};

	vd_submit(f->d, Q_EVENT, &b, 1);
	vd_kick(f->d, Q_EVENT);
}

static void expect_transport_reset(struct fixture *f)
{
	struct virtq_used_elem e;
	struct vd_queue *q = &f->d->q[Q_EVENT];
	uint32_t id;

	assert_true(vd_wait_used(f->d, Q_EVENT, &e, 2000));
	assert_int_equal(e.len, VIRTIO_VSOCK_EVENT_SIZE);
	memcpy(&id, vd_gpa(f->d, q->desc[e.id].addr, 4), 4);
	assert_int_equal(id, VIRTIO_VSOCK_EVENT_TRANSPORT_RESET);
}

/* A new process: a new device on the same socket, the guest moved over, restored. */
static void restore_into_new(struct fixture *f, struct vd_saved *s)
{
	struct virtio_vsock_params p = {.guest_cid = GUEST_CID, .socket = f->path};

	vd_destroy(f->d);
	virtio_vsock_destroy(f->vs);
	assert_int_equal(virtio_vsock_create(&p, &f->vs), 0);
	f->d = vd_create_at(virtio_vsock_vdev(f->vs), true, 0, false);
	vd_set_guest_stopped(f->d, true);
	assert_int_equal(virtio_vsock_start(f->vs), 0);
	vd_load_guest(f->d, s);
	vd_restore(f->d, s);
}

static void test_quiesce_save_restore(void **state)
{
	struct fixture *f = *state;
	struct virtio_vsock_hdr h;
	struct vd_saved s;
	struct dev_state early = {0};
	uint8_t buf[4096];
	uint16_t rx_used;
	uint32_t local;
	int fd = connect_from_host(f, 1234, &local), fd2;

	post_event(f);
	post_event(f);
	/* Quiesced: what the host sends waits in its socket. */
	assert_int_equal(virtio_pci_quiesce(f->d->vp), 0);
	rx_used = f->d->q[Q_RX].used->idx;
	host_write(fd, "late");
	usleep(50000);
	assert_int_equal(f->d->q[Q_RX].used->idx, rx_used);
	assert_int_equal(virtio_pci_save(f->d->vp, &early), 0);
	virtio_pci_resume(f->d->vp);
	assert_true(guest_recv(f, &h, buf, sizeof(buf), 2000));
	assert_int_equal(h.op, VIRTIO_VSOCK_OP_RW);
	assert_memory_equal(buf, "late", 4);
	ds_release(&early);
	f->guest_fwd_cnt += 4;

	vd_save(f->d, &s);
	restore_into_new(f, &s);
	assert_int_equal(host_read(fd, buf, 1, 2000), 0); /* the old process is gone */
	close(fd);
	usleep(20000);
	assert_int_equal(f->d->q[Q_EVENT].used->idx, 0); /* not before the guest runs */
	vd_set_guest_stopped(f->d, false);
	expect_transport_reset(f);
	usleep(50000);
	assert_int_equal(f->d->q[Q_EVENT].used->idx, 1); /* once */
	/* The old connection is unknown to the new device: reset. */
	guest_send(f, 1234, local, VIRTIO_VSOCK_OP_RW, 0, "x", 1, GUEST_CID);
	expect_op(f, VIRTIO_VSOCK_OP_RST, &h);
	/* New connections work. */
	f->guest_fwd_cnt = 0; /* a new connection's count */
	fd2 = connect_from_host(f, 5678, &local);
	host_write(fd2, "new");
	assert_true(guest_recv(f, &h, buf, sizeof(buf), 2000));
	assert_memory_equal(buf, "new", 3);
	close(fd2);
	vd_saved_release(&s);
}

static void test_reset_event_waits_for_a_buffer(void **state)
{
	struct fixture *f = *state;
	struct vd_saved s;

	vd_save(f->d, &s);
	restore_into_new(f, &s);
	vd_set_guest_stopped(f->d, false);
	usleep(50000);
	assert_int_equal(f->d->q[Q_EVENT].used->idx, 0);
	post_event(f);
	expect_transport_reset(f);
	vd_saved_release(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_identity, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_host_to_guest, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_data_right_after_connect, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_guest_refuses, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_host_gives_up, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_command, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_guest_to_host, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_guest_connect_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_guest_connect_not_ours, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_credit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_guest_overruns_credit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_hostile_packets, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reset_closes_connections, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_controls_wait_for_rx_buffers, setup_no_rx,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_quiesce_save_restore, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reset_event_waits_for_a_buffer, setup, teardown),
	    cmocka_unit_test(test_create_checks),
	};

	/* A write to a connection the device closed must fail, not kill the test. */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests_name("virtio_vsock", tests, NULL, NULL);
}
