/* SPDX-License-Identifier: MIT */
/*
 * Unit tests: virtio-console through the virtio PCI transport (no KVM), the
 * test playing the guest's driver on synthetic rings and the host programs
 * on the ports' UNIX sockets: the multiport control protocol, a console port
 * and a named port with data both ways, host programs coming and going,
 * emergency write, a single-port driver; save and restore into a new
 * device: a transmit chain held for a slow host program goes, whole and
 * once, to the new process's program, the guest hears that the old one is
 * gone, pending control messages survive, corrupt ones are refused.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "devices/virtio/console.h"
#include "virtio_test_driver.h"

#include <poll.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/un.h>

#define QSIZE 64
#define NAME "org.nestvm.test"
#define CTRL_BUF 128
#define DATA_BUF 256
enum { Q_RX0 = 0, Q_TX0 = 1, Q_CRX = 2, Q_CTX = 3, Q_RX1 = 4, Q_TX1 = 5 };

struct fixture {
	char con_path[64], port_path[64];
	struct virtio_console *con;
	struct vd *d;
	uint64_t buf_gpa[8][QSIZE]; /* receive buffers by queue and head */
};

static void post(struct fixture *f, unsigned int q, uint32_t size)
{
	uint64_t g = vd_alloc(f->d, size);
	struct vd_buf b = {g, size, true};

	f->buf_gpa[q][vd_submit(f->d, q, &b, 1)] = g;
}

static void post_many(struct fixture *f, unsigned int q, unsigned int n, uint32_t size)
{
	for (unsigned int i = 0; i < n; i++)
		post(f, q, size);
	vd_kick(f->d, q);
}

/* Next used buffer on receive queue @q: its bytes into @out; re-posted. Returns the length. */
static int take(struct fixture *f, unsigned int q, void *out, size_t max, int ms)
{
	struct virtq_used_elem e;
	uint64_t g;

	if (!vd_wait_used(f->d, q, &e, ms))
		return -1;
	g = f->buf_gpa[q][e.id];
	assert_true(e.len <= max);
	memcpy(out, vd_gpa(f->d, g, e.len ? e.len : 1), e.len);
	{
		struct vd_buf b = {g, q == Q_CRX ? CTRL_BUF : DATA_BUF, true};

		f->buf_gpa[q][vd_submit(f->d, q, &b, 1)] = g;
		vd_kick(f->d, q);
	}
	return (int)e.len;
}

static void send_ctrl(struct fixture *f, uint32_t id, uint16_t event, uint16_t value)
{
	struct virtio_console_control c = {.id = id, .event = event, .value = value};
	uint64_t g = vd_alloc(f->d, sizeof(c));
	struct vd_buf b = {g, sizeof(c), false};
	struct virtq_used_elem e;

	memcpy(vd_gpa(f->d, g, sizeof(c)), &c, sizeof(c));
	vd_submit(f->d, Q_CTX, &b, 1);
	vd_kick(f->d, Q_CTX);
	assert_true(vd_wait_used(f->d, Q_CTX, &e, 2000));
}

static void send_data(struct fixture *f, unsigned int q, const char *s)
{
	uint64_t g = vd_alloc(f->d, strlen(s));
	struct vd_buf b = {g, (uint32_t)strlen(s), false};
	struct virtq_used_elem e;

	memcpy(vd_gpa(f->d, g, strlen(s)), s, strlen(s));
	vd_submit(f->d, q, &b, 1);
	vd_kick(f->d, q);
	assert_true(vd_wait_used(f->d, q, &e, 2000));
	assert_int_equal(e.len, 0);
}

static void expect_ctrl(struct fixture *f, uint32_t id, uint16_t event, uint16_t value,
                        const char *name)
{
	uint8_t buf[CTRL_BUF];
	struct virtio_console_control c;
	int n = take(f, Q_CRX, buf, sizeof(buf), 2000);

	assert_true(n >= (int)sizeof(c));
	memcpy(&c, buf, sizeof(c));
	assert_int_equal(c.id, id);
	assert_int_equal(c.event, event);
	assert_int_equal(c.value, value);
	if (name) {
		assert_int_equal(n - (int)sizeof(c), strlen(name));
		assert_memory_equal(buf + sizeof(c), name, strlen(name));
	}
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

static ssize_t host_read(int fd, void *buf, size_t len, int ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};

	if (poll(&p, 1, ms) <= 0)
		return -1;
	return read(fd, buf, len);
}

/* The console with its two ports on @f's sockets, on a transport at @bar (0: unassigned). */
static void create_console(struct fixture *f, uint64_t bar)
{
	struct virtio_console_params p = {.nr_ports = 1};

	p.console.socket = f->con_path;
	p.ports[0].name = NAME;
	p.ports[0].socket = f->port_path;
	assert_int_equal(virtio_console_create(&p, &f->con), 0);
	f->d = vd_create_at(virtio_console_vdev(f->con), true, bar, bar != 0);
	assert_int_equal(virtio_console_start(f->con), 0);
}

static int setup_common(void **state, bool multiport)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->con_path, sizeof(f->con_path), "/tmp/nestvm-test-hvc.%d", (int)getpid());
	snprintf(f->port_path, sizeof(f->port_path), "/tmp/nestvm-test-port.%d", (int)getpid());
	create_console(f, VD_BAR);
	if (multiport) {
		vd_bring_up(f->d, VIRTIO_BIT(VIRTIO_CONSOLE_F_MULTIPORT), 6, QSIZE);
		post_many(f, Q_CRX, 16, CTRL_BUF);
		post_many(f, Q_RX1, 8, DATA_BUF);
	} else {
		vd_bring_up(f->d, 0, 2, QSIZE);
	}
	post_many(f, Q_RX0, 8, DATA_BUF);
	*state = f;
	return 0;
}

static int setup(void **state)
{
	return setup_common(state, true);
}

static int setup_single(void **state)
{
	return setup_common(state, false);
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	vd_destroy(f->d);
	virtio_console_destroy(f->con);
	assert_int_equal(access(f->con_path, F_OK), -1);
	free(f);
	return 0;
}

/* The driver's side of bringing up both ports. */
static void handshake(struct fixture *f)
{
	send_ctrl(f, 0, VIRTIO_CONSOLE_DEVICE_READY, 1);
	expect_ctrl(f, 0, VIRTIO_CONSOLE_DEVICE_ADD, 0, NULL);
	expect_ctrl(f, 1, VIRTIO_CONSOLE_DEVICE_ADD, 0, NULL);
	send_ctrl(f, 0, VIRTIO_CONSOLE_PORT_READY, 1);
	expect_ctrl(f, 0, VIRTIO_CONSOLE_CONSOLE_PORT, 1, NULL);
	expect_ctrl(f, 0, VIRTIO_CONSOLE_PORT_OPEN, 1, NULL);
	send_ctrl(f, 0, VIRTIO_CONSOLE_PORT_OPEN, 1);
	send_ctrl(f, 1, VIRTIO_CONSOLE_PORT_READY, 1);
	expect_ctrl(f, 1, VIRTIO_CONSOLE_PORT_NAME, 0, NAME);
	expect_ctrl(f, 1, VIRTIO_CONSOLE_PORT_OPEN, 0, NULL); /* no host program yet */
}

static void test_config(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(vd_cfg_read(f->d, PCI_CFG_DEVICE_ID, 2), 0x1043);
	assert_int_equal(vd_read(f->d, VIRTIO_PCI_DEVICE_OFF + VIRTIO_CONSOLE_CFG_MAX_NR_PORTS, 4),
	                 2);
	assert_int_equal(vd_read(f->d, VIRTIO_PCI_COMMON_NUMQ, 2), 6);
}

static void test_console_port(void **state)
{
	struct fixture *f = *state;
	char buf[DATA_BUF] = {0};
	int fd;

	handshake(f);
	fd = host_connect(f->con_path);
	usleep(20000);
	send_data(f, Q_TX0, "login: ");
	assert_int_equal(host_read(fd, buf, sizeof(buf), 2000), 7);
	assert_string_equal(buf, "login: ");
	assert_int_equal(write(fd, "root\n", 5), 5);
	memset(buf, 0, sizeof(buf));
	assert_int_equal(take(f, Q_RX0, buf, sizeof(buf), 2000), 5);
	assert_string_equal(buf, "root\n");
	/* Emergency write: one byte straight to port 0's host side. */
	vd_write(f->d, VIRTIO_PCI_DEVICE_OFF + VIRTIO_CONSOLE_CFG_EMERG_WR, 4, '!');
	assert_int_equal(host_read(fd, buf, 1, 2000), 1);
	assert_int_equal(buf[0], '!');
	close(fd);
	/* Without a host program the console's output is dropped, not held. */
	usleep(20000);
	send_data(f, Q_TX0, "nobody listens");
}

static void test_named_port(void **state)
{
	struct fixture *f = *state;
	char buf[DATA_BUF] = {0};
	int fd, other;

	handshake(f);
	fd = host_connect(f->port_path);
	expect_ctrl(f, 1, VIRTIO_CONSOLE_PORT_OPEN, 1, NULL);
	/* A second host program is turned away. */
	other = host_connect(f->port_path);
	assert_int_equal(host_read(other, buf, 1, 2000), 0);
	close(other);
	/* Input waits until the guest opens the port. */
	assert_int_equal(write(fd, "early", 5), 5);
	assert_int_equal(take(f, Q_RX1, buf, sizeof(buf), 100), -1);
	send_ctrl(f, 1, VIRTIO_CONSOLE_PORT_OPEN, 1);
	assert_int_equal(take(f, Q_RX1, buf, sizeof(buf), 2000), 5);
	assert_memory_equal(buf, "early", 5);
	send_data(f, Q_TX1, "from the guest");
	memset(buf, 0, sizeof(buf));
	assert_int_equal(host_read(fd, buf, sizeof(buf), 2000), 14);
	assert_string_equal(buf, "from the guest");
	/* The host program leaves: the guest is told. */
	close(fd);
	expect_ctrl(f, 1, VIRTIO_CONSOLE_PORT_OPEN, 0, NULL);
	/* And a new one can come. */
	fd = host_connect(f->port_path);
	expect_ctrl(f, 1, VIRTIO_CONSOLE_PORT_OPEN, 1, NULL);
	close(fd);
}

static void test_bad_control(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[CTRL_BUF];

	/* Unknown port, unknown event, short message: ignored. */
	send_ctrl(f, 77, VIRTIO_CONSOLE_PORT_READY, 1);
	send_ctrl(f, 0, 99, 1);
	{
		uint64_t g = vd_alloc(f->d, 3);
		struct vd_buf b = {g, 3, false};
		struct virtq_used_elem e;

		vd_submit(f->d, Q_CTX, &b, 1);
		vd_kick(f->d, Q_CTX);
		assert_true(vd_wait_used(f->d, Q_CTX, &e, 2000));
	}
	assert_int_equal(take(f, Q_CRX, buf, sizeof(buf), 100), -1);
	assert_int_equal(vd_status(f->d) & VIRTIO_STATUS_DEVICE_NEEDS_RESET, 0);
	handshake(f);
}

static void test_single_port(void **state)
{
	struct fixture *f = *state;
	char buf[DATA_BUF] = {0};
	int fd = host_connect(f->con_path);

	usleep(20000);
	send_data(f, Q_TX0, "hvc0");
	assert_int_equal(host_read(fd, buf, sizeof(buf), 2000), 4);
	assert_int_equal(write(fd, "x", 1), 1);
	assert_int_equal(take(f, Q_RX0, buf, sizeof(buf), 2000), 1);
	close(fd);
}

static void test_create_checks(void **state)
{
	struct virtio_console *con;
	struct virtio_console_params p = {.nr_ports = 1};

	(void)state;
	p.ports[0].name = "";
	assert_int_equal(virtio_console_create(&p, &con), -EINVAL);
	p.nr_ports = VIRTIO_CONSOLE_MAX_NAMED + 1;
	assert_int_equal(virtio_console_create(&p, &con), -EINVAL);
	p.nr_ports = 1;
	p.ports[0].name = "x";
	p.ports[0].socket = "/nonexistent-dir/sock";
	assert_true(virtio_console_create(&p, &con) < 0);
}

/* ------------------------------------------------------------- save/restore */

#define BIG (1 << 20) /* more than a UNIX socket buffers */

/* A new process: a new console on the same sockets, the guest moved over, restored. */
static void restore_into_new(struct fixture *f, struct vd_saved *s, bool guest_stopped)
{
	vd_destroy(f->d);
	virtio_console_destroy(f->con);
	create_console(f, 0);
	vd_set_guest_stopped(f->d, guest_stopped);
	vd_load_guest(f->d, s);
	vd_restore(f->d, s);
}

static void test_save_restore_ports(void **state)
{
	struct fixture *f = *state;
	struct virtq_used_elem e;
	struct vd_buf b;
	struct vd_saved s;
	uint8_t *buf = malloc(BIG);
	size_t got = 0;
	int old, fd;
	uint16_t head;

	assert_non_null(buf);
	handshake(f);
	old = host_connect(f->port_path);
	expect_ctrl(f, 1, VIRTIO_CONSOLE_PORT_OPEN, 1, NULL);
	send_ctrl(f, 1, VIRTIO_CONSOLE_PORT_OPEN, 1);
	/* A chain too big for the socket: the device holds it, partly written. */
	b = (struct vd_buf){vd_alloc(f->d, BIG), BIG, false};
	for (size_t i = 0; i < BIG; i++)
		((uint8_t *)vd_gpa(f->d, b.gpa, BIG))[i] = (uint8_t)(i % 251);
	head = vd_submit(f->d, Q_TX1, &b, 1);
	vd_kick(f->d, Q_TX1);
	assert_true(host_read(old, buf, 1, 2000) == 1);
	usleep(20000);
	assert_int_equal(f->d->q[Q_TX1].used->idx, 0);
	vd_save(f->d, &s);
	close(old);

	restore_into_new(f, &s, true);
	fd = host_connect(f->port_path); /* waits until the guest runs */
	usleep(20000);
	assert_int_equal(f->d->q[Q_TX1].used->idx, 0);
	vd_set_guest_stopped(f->d, false);
	/* The guest hears that its old host program left, then that a new one came. */
	expect_ctrl(f, 1, VIRTIO_CONSOLE_PORT_OPEN, 0, NULL);
	expect_ctrl(f, 1, VIRTIO_CONSOLE_PORT_OPEN, 1, NULL);
	/* The new program gets the whole chain, and the chain comes back once. */
	while (got < BIG) {
		ssize_t n = host_read(fd, buf + got, BIG - got, 2000);

		assert_true(n > 0);
		got += (size_t)n;
	}
	for (size_t i = 0; i < BIG; i++)
		if (buf[i] != (uint8_t)(i % 251))
			fail_msg("byte %zu differs", i);
	assert_true(vd_wait_used(f->d, Q_TX1, &e, 2000));
	assert_int_equal(e.id, head);
	assert_int_equal(host_read(fd, buf, 1, 50), -1);
	assert_int_equal(f->d->q[Q_TX1].used->idx, 1);
	/* Both ports work on: the guest's open port takes input, the console output. */
	assert_int_equal(write(fd, "hi", 2), 2);
	assert_int_equal(take(f, Q_RX1, buf, DATA_BUF, 2000), 2);
	assert_memory_equal(buf, "hi", 2);
	send_data(f, Q_TX0, "console");
	close(fd);
	free(buf);
	vd_saved_release(&s);
}

static void test_save_restore_pending_control(void **state)
{
	struct fixture *f = *state;
	struct vd_saved s;
	uint8_t *bad;
	char why[160];

	/* The driver again, with no control receive buffers posted this time. */
	vd_bring_up(f->d, VIRTIO_BIT(VIRTIO_CONSOLE_F_MULTIPORT), 6, QSIZE);
	send_ctrl(f, 0, VIRTIO_CONSOLE_DEVICE_READY, 1);
	vd_save(f->d, &s);

	restore_into_new(f, &s, true);
	/* Two DEVICE_ADD of 9 bytes each end the state: corrupt them. */
	bad = malloc(s.state.len);
	assert_non_null(bad);
	memcpy(bad, s.state.buf, s.state.len);
	bad[s.state.len - 18 + 4] = 99; /* the first one's event */
	assert_int_equal(vd_restore_bytes(f->d, bad, s.state.len, why, sizeof(why)), -EBADMSG);
	assert_non_null(strstr(why, "control message"));
	memcpy(bad, s.state.buf, s.state.len);
	bad[s.state.len - 19] = 65; /* how many */
	assert_int_equal(vd_restore_bytes(f->d, bad, s.state.len, why, sizeof(why)), -EBADMSG);
	free(bad);
	vd_restore(f->d, &s);
	vd_set_guest_stopped(f->d, false);
	post_many(f, Q_CRX, 4, CTRL_BUF);
	expect_ctrl(f, 0, VIRTIO_CONSOLE_DEVICE_ADD, 0, NULL);
	expect_ctrl(f, 1, VIRTIO_CONSOLE_DEVICE_ADD, 0, NULL);
	{
		uint8_t buf[CTRL_BUF];

		assert_int_equal(take(f, Q_CRX, buf, sizeof(buf), 100), -1);
	}
	vd_saved_release(&s);
}

/* Restored, saved again before the guest ran, restored: the guest still hears the news. */
static void test_save_before_the_guest_runs(void **state)
{
	struct fixture *f = *state;
	struct vd_saved s, s2;
	int old;

	handshake(f);
	old = host_connect(f->port_path);
	expect_ctrl(f, 1, VIRTIO_CONSOLE_PORT_OPEN, 1, NULL);
	vd_save(f->d, &s);
	close(old);
	restore_into_new(f, &s, true);
	vd_save(f->d, &s2);
	restore_into_new(f, &s2, false);
	expect_ctrl(f, 1, VIRTIO_CONSOLE_PORT_OPEN, 0, NULL);
	vd_saved_release(&s);
	vd_saved_release(&s2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_config, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_console_port, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_named_port, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_control, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_single_port, setup_single, teardown),
	    cmocka_unit_test_setup_teardown(test_save_restore_ports, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_save_restore_pending_control, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_save_before_the_guest_runs, setup, teardown),
	    cmocka_unit_test(test_create_checks),
	};

	return cmocka_run_group_tests_name("virtio_console", tests, NULL, NULL);
}
