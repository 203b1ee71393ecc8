/* SPDX-License-Identifier: MIT */
/*
 * Unit tests: virtio-net through the virtio PCI transport, the test playing
 * the guest's driver on synthetic rings and the switch on the other end of
 * a socketpair(AF_UNIX, SOCK_SEQPACKET) (no KVM): frames sent and received
 * intact, mergeable receive buffers, checksum offload passed through or
 * completed, back-pressure when the guest posts no buffers, MTU limits,
 * malformed rings and headers resetting only the device that saw them,
 * link down when the switch goes, a save/restore round trip into a new
 * device on a new port, and batches (netport.h, step 4) both ways, with
 * malformed ones.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "devices/virtio/net.h"
#include "net/netport.h"
#include "virtio_test_driver.h"

#include <endian.h>
#include <poll.h>
#include <sys/socket.h>

#define QSIZE 256
#define HDR VIRTIO_NET_HDR_SIZE

enum { Q_RX = VIRTIO_NET_Q_RX, Q_TX = VIRTIO_NET_Q_TX };

struct fixture {
	struct virtio_net *net;
	struct vd *d;
	int peer;               /* the switch's end */
	uint64_t rx_gpa[QSIZE]; /* by descriptor head */
	uint32_t rx_size[QSIZE];
};

static const uint8_t test_mac[6] = {0x02, 0x4e, 0x56, 0x01, 0x02, 0x03};

static struct fixture *fixture_new_batch(unsigned int mtu, uint64_t features, unsigned int batch)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct virtio_net_params p = {.mtu = mtu, .batch = batch};
	int sv[2];

	assert_non_null(f);
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	memcpy(p.mac, test_mac, 6);
	p.fd = sv[0];
	f->peer = sv[1];
	assert_int_equal(virtio_net_create(&p, &f->net), 0);
	f->d = vd_create(virtio_net_vdev(f->net), true);
	assert_int_equal(virtio_net_start(f->net), 0);
	vd_bring_up(f->d, features, 2, QSIZE);
	return f;
}

static struct fixture *fixture_new(unsigned int mtu, uint64_t features)
{
	return fixture_new_batch(mtu, features, 0);
}

static void fixture_free(struct fixture *f)
{
	vd_destroy(f->d);
	virtio_net_destroy(f->net);
	if (f->peer >= 0)
		close(f->peer);
	free(f);
}

static uint16_t cfg16(struct fixture *f, uint32_t off)
{
	return (uint16_t)vd_read(f->d, VIRTIO_PCI_DEVICE_OFF + off, 2);
}

static void post_rx(struct fixture *f, unsigned int n, uint32_t size)
{
	for (unsigned int i = 0; i < n; i++) {
		struct vd_buf b = {vd_alloc(f->d, size), size, true};
		uint16_t head = vd_submit(f->d, Q_RX, &b, 1);

		f->rx_gpa[head] = b.gpa;
		f->rx_size[head] = size;
	}
	vd_kick(f->d, Q_RX);
}

static void fill_frame(uint8_t *fr, size_t len, unsigned int seed)
{
	static const uint8_t dst[6] = {0x02, 0, 0, 0, 0, 9};

	memcpy(fr, dst, 6);
	memcpy(fr + 6, test_mac, 6);
	fr[12] = 0x88; /* a local experimental EtherType */
	fr[13] = 0xb5;
	for (size_t i = 14; i < len; i++)
		fr[i] = (uint8_t)(i * 7 + seed);
}

/* The guest sends @frame (header in its own buffer, the frame in two). Not waited for. */
static void guest_tx(struct fixture *f, const struct virtio_net_hdr *h, const uint8_t *frame,
                     size_t len)
{
	size_t half = len / 2;
	uint64_t hg = vd_alloc(f->d, HDR), a = vd_alloc(f->d, half), b = vd_alloc(f->d, len - half);
	struct vd_buf bufs[3] = {
	    {hg, HDR, false}, {a, (uint32_t)half, false}, {b, (uint32_t)(len - half), false}};

	memcpy(vd_gpa(f->d, hg, HDR), h, HDR);
	memcpy(vd_gpa(f->d, a, half ? half : 1), frame, half);
	memcpy(vd_gpa(f->d, b, len - half), frame + half, len - half);
	if (!half)
		bufs[1] = bufs[2];
	vd_submit(f->d, Q_TX, bufs, half ? 3 : 2);
	vd_kick(f->d, Q_TX);
}

/* The switch reads one message within @ms; returns its length or -1. */
static ssize_t peer_recv(struct fixture *f, void *buf, size_t len, int ms)
{
	struct pollfd p = {.fd = f->peer, .events = POLLIN};

	if (poll(&p, 1, ms) != 1)
		return -1;
	return recv(f->peer, buf, len, MSG_DONTWAIT);
}

static void peer_send(struct fixture *f, const struct netport_hdr *nh, const uint8_t *frame,
                      size_t len)
{
	struct iovec iov[2] = {{(void *)nh, sizeof(*nh)}, {(void *)frame, len}};
	struct msghdr msg = {.msg_iov = iov, .msg_iovlen = 2};

	assert_int_equal(sendmsg(f->peer, &msg, 0), (ssize_t)(sizeof(*nh) + len));
}

/* Wait for the next used receive chain; returns its guest address, its length in *@len. */
static uint8_t *rx_used(struct fixture *f, uint32_t *len, int ms)
{
	struct virtq_used_elem e;

	if (!vd_wait_used(f->d, Q_RX, &e, ms))
		return NULL;
	*len = e.len;
	assert_true(e.len <= f->rx_size[e.id]);
	return vd_gpa(f->d, f->rx_gpa[e.id], f->rx_size[e.id]);
}

static struct virtio_net_stats stats(struct fixture *f)
{
	struct virtio_net_stats s;

	virtio_net_get_stats(f->net, &s);
	return s;
}

#define BASE_FEATURES                                                                              \
	(VIRTIO_BIT(VIRTIO_NET_F_MAC) | VIRTIO_BIT(VIRTIO_NET_F_STATUS) |                          \
	 VIRTIO_BIT(VIRTIO_NET_F_MTU) | VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX))
#define MRG VIRTIO_BIT(VIRTIO_NET_F_MRG_RXBUF)

static void test_config(void **state)
{
	struct fixture *f = fixture_new(9000, BASE_FEATURES);
	uint64_t offered = vd_device_features(f->d);

	(void)state;
	for (unsigned int i = 0; i < 6; i++)
		assert_int_equal(vd_read(f->d, VIRTIO_PCI_DEVICE_OFF + i, 1), test_mac[i]);
	assert_int_equal(cfg16(f, VIRTIO_NET_CFG_STATUS), VIRTIO_NET_S_LINK_UP);
	assert_int_equal(cfg16(f, VIRTIO_NET_CFG_MTU), 9000);
	assert_int_equal(cfg16(f, VIRTIO_NET_CFG_MAX_PAIRS), 1);
	assert_true(offered & VIRTIO_BIT(VIRTIO_NET_F_CSUM));
	assert_true(offered & VIRTIO_BIT(VIRTIO_NET_F_GUEST_CSUM));
	assert_true(offered & VIRTIO_BIT(VIRTIO_NET_F_MRG_RXBUF));
	assert_true(offered & VIRTIO_BIT(VIRTIO_F_VERSION_1));
	fixture_free(f);
}

/* Frames of many sizes go out whole and in order; each chain comes back. */
static void test_tx_frames(void **state)
{
	struct fixture *f = fixture_new(1500, BASE_FEATURES);
	static const size_t sizes[] = {14, 60, 61, 1000, 1514, 1518};
	uint8_t frame[2000], got[2100];
	struct virtio_net_hdr h = {0};

	(void)state;
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		struct virtq_used_elem e;
		struct netport_hdr nh;
		ssize_t n;

		fill_frame(frame, sizes[i], (unsigned int)i);
		guest_tx(f, &h, frame, sizes[i]);
		n = peer_recv(f, got, sizeof(got), 2000);
		assert_int_equal(n, (ssize_t)(sizeof(nh) + sizes[i]));
		memcpy(&nh, got, sizeof(nh));
		assert_int_equal(nh.flags, 0);
		assert_memory_equal(got + sizeof(nh), frame, sizes[i]);
		assert_true(vd_wait_used(f->d, Q_TX, &e, 2000));
		assert_int_equal(e.len, 0);
	}
	assert_int_equal(stats(f).tx_frames, 6);
	assert_int_equal(stats(f).tx_dropped, 0);
	fixture_free(f);
}

/* NEEDS_CSUM travels to the switch as NETPORT_F_NEEDS_CSUM, start and offset kept. */
static void test_tx_csum(void **state)
{
	struct fixture *f = fixture_new(1500, BASE_FEATURES | VIRTIO_BIT(VIRTIO_NET_F_CSUM));
	struct virtio_net_hdr h = {
	    .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM, .csum_start = 34, .csum_offset = 6};
	uint8_t frame[100], got[200];
	struct netport_hdr nh;

	(void)state;
	fill_frame(frame, sizeof(frame), 1);
	guest_tx(f, &h, frame, sizeof(frame));
	assert_int_equal(peer_recv(f, got, sizeof(got), 2000), (ssize_t)(sizeof(nh) + 100));
	memcpy(&nh, got, sizeof(nh));
	assert_int_equal(nh.flags, NETPORT_F_NEEDS_CSUM);
	assert_int_equal(nh.csum_start, 34);
	assert_int_equal(nh.csum_offset, 6);
	fixture_free(f);
}

/* Build an Ethernet/IPv4/UDP frame whose UDP checksum holds the pseudo-header sum. */
static size_t udp_frame(uint8_t *fr, size_t payload, uint16_t *want)
{
	size_t len = 14 + 20 + 8 + payload;
	uint32_t pseudo;

	fill_frame(fr, len, 3);
	fr[12] = 0x08;
	fr[13] = 0x00;
	memset(fr + 14, 0, 28);
	fr[14] = 0x45;
	fr[23] = 17; /* UDP */
	memcpy(fr + 26, (uint8_t[]){10, 0, 0, 1, 10, 0, 0, 2}, 8);
	fr[34] = 0x12, fr[35] = 0x34, fr[36] = 0x00, fr[37] = 0x35;
	fr[38] = (uint8_t)((8 + payload) >> 8), fr[39] = (uint8_t)(8 + payload);
	/* The reference: the whole checksum over pseudo-header, header and payload. */
	pseudo = netport_csum_add(0, fr + 26, 8) + 17 + (uint32_t)(8 + payload);
	*want = (uint16_t)~netport_csum_fold(netport_csum_add(pseudo, fr + 34, 8 + payload));
	if (*want == 0)
		*want = 0xffff;
	/* What a sender offloading it leaves: the folded pseudo-header sum. */
	fr[40] = (uint8_t)(netport_csum_fold(pseudo) >> 8);
	fr[41] = (uint8_t)netport_csum_fold(pseudo);
	return len;
}

/* Without GUEST_CSUM the device completes the checksum; with it, passes the request on. */
static void test_rx_csum(void **state)
{
	struct netport_hdr nh = {.flags = NETPORT_F_NEEDS_CSUM, .csum_start = 34, .csum_offset = 6};
	uint8_t fr[1500];
	uint16_t want;
	size_t len = udp_frame(fr, 333, &want);

	(void)state;
	for (int guest_csum = 0; guest_csum < 2; guest_csum++) {
		struct fixture *f = fixture_new(
		    1500, BASE_FEATURES | (guest_csum ? VIRTIO_BIT(VIRTIO_NET_F_GUEST_CSUM) : 0));
		struct virtio_net_hdr h;
		uint32_t used;
		uint8_t *b;

		post_rx(f, 4, 2048);
		peer_send(f, &nh, fr, len);
		b = rx_used(f, &used, 2000);
		assert_non_null(b);
		assert_int_equal(used, HDR + len);
		memcpy(&h, b, HDR);
		assert_int_equal(h.num_buffers, 1);
		if (guest_csum) {
			assert_int_equal(h.flags, VIRTIO_NET_HDR_F_NEEDS_CSUM);
			assert_int_equal(h.csum_start, 34);
			assert_int_equal(h.csum_offset, 6);
			assert_memory_equal(b + HDR, fr, len);
		} else {
			assert_int_equal(h.flags, 0);
			assert_int_equal(b[HDR + 40] << 8 | b[HDR + 41], want);
			assert_memory_equal(b + HDR, fr, 40);
			assert_memory_equal(b + HDR + 42, fr + 42, len - 42);
		}
		/* A request outside the frame is dropped, not trusted. */
		nh.csum_start = (uint16_t)(len - 1);
		peer_send(f, &nh, fr, len);
		nh.csum_start = 34;
		for (int i = 0; i < 200 && !stats(f).rx_dropped_bad; i++)
			usleep(1000);
		assert_int_equal(stats(f).rx_dropped_bad, 1);
		fixture_free(f);
	}
}

/* With MRG_RXBUF a frame spreads over as many chains as it takes (num_buffers). */
static void test_rx_mergeable(void **state)
{
	struct fixture *f = fixture_new(VIRTIO_NET_MTU_MAX, BASE_FEATURES | MRG);
	static const size_t sizes[] = {3000, 60, 65520 + 14};
	struct netport_hdr nh = {0};
	static uint8_t fr[70000], got[70000];

	(void)state;
	post_rx(f, 80, 1024);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t len = sizes[i], at = 0;
		unsigned int want = (unsigned int)((HDR + len + 1023) / 1024), nbuf = 0;

		fill_frame(fr, len, (unsigned int)i);
		peer_send(f, &nh, fr, len);
		for (unsigned int k = 0; k < want; k++) {
			uint32_t used;
			uint8_t *b = rx_used(f, &used, 2000);

			assert_non_null(b);
			if (k == 0) {
				struct virtio_net_hdr h;

				memcpy(&h, b, HDR);
				nbuf = h.num_buffers;
				assert_int_equal(nbuf, want);
				memcpy(got, b + HDR, used - HDR);
				at = used - HDR;
			} else {
				memcpy(got + at, b, used);
				at += used;
			}
		}
		assert_int_equal(at, len);
		assert_memory_equal(got, fr, len);
		if (i == 1)
			post_rx(f, 80, 1024); /* enough for the 64 KiB frame */
	}
	assert_int_equal(stats(f).rx_frames, 3);
	fixture_free(f);
}

/* Without MRG_RXBUF a frame must fit one chain: a larger one is dropped, the chain kept. */
static void test_rx_single_buffer(void **state)
{
	struct fixture *f = fixture_new(9000, BASE_FEATURES);
	struct netport_hdr nh = {0};
	uint8_t fr[4000];
	uint32_t used;
	uint8_t *b;

	(void)state;
	post_rx(f, 1, 2048);
	fill_frame(fr, 3000, 5);
	peer_send(f, &nh, fr, 3000);
	fill_frame(fr, 1500, 6);
	peer_send(f, &nh, fr, 1500);
	b = rx_used(f, &used, 2000);
	assert_non_null(b);
	assert_int_equal(used, HDR + 1500);
	assert_memory_equal(b + HDR, fr, 1500);
	assert_int_equal(stats(f).rx_dropped_room, 1);
	fixture_free(f);
}

/* No receive buffers: frames wait in the socket, and arrive in order once buffers come. */
static void test_rx_backpressure(void **state)
{
	struct fixture *f = fixture_new(1500, BASE_FEATURES | MRG);
	struct netport_hdr nh = {0};
	uint8_t fr[200];
	uint32_t used;

	(void)state;
	for (unsigned int i = 0; i < 5; i++) {
		fill_frame(fr, 100 + i, i);
		peer_send(f, &nh, fr, 100 + i);
	}
	{
		/* Waiting for buffers costs nothing: the socket is not watched meanwhile. */
		struct timespec a, b;

		usleep(20000);
		clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a);
		usleep(100000);
		clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b);
		assert_true((b.tv_sec - a.tv_sec) * 1000000000L + (b.tv_nsec - a.tv_nsec) <
		            30000000L);
	}
	assert_int_equal(stats(f).rx_frames, 0);
	assert_int_equal(stats(f).rx_dropped_room, 0);
	post_rx(f, 8, 2048);
	for (unsigned int i = 0; i < 5; i++) {
		uint8_t *b = rx_used(f, &used, 2000);

		assert_non_null(b);
		fill_frame(fr, 100 + i, i);
		assert_int_equal(used, HDR + 100 + i);
		assert_memory_equal(b + HDR, fr, 100 + i);
	}
	fixture_free(f);
}

/*
 * Bursts, without EVENT_IDX (notifications turned off and on through the
 * used ring's flags): more frames than one recvmmsg()/sendmmsg() batch, the
 * guest's receive buffers running out in the middle of a batch read, and
 * everything arriving once, in order, nothing dropped.
 */
static void test_burst(void **state)
{
	struct fixture *f =
	    fixture_new(1500, (BASE_FEATURES & ~VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX)) | MRG);
	struct netport_hdr nh = {0};
	struct virtio_net_hdr h = {0};
	uint8_t fr[300], got[400];
	unsigned int nr = 100, first = 30;
	uint32_t used;

	(void)state;
	for (unsigned int i = 0; i < nr; i++) {
		fill_frame(fr, 60 + i, i);
		peer_send(f, &nh, fr, 60 + i);
	}
	post_rx(f, first, 2048);
	for (unsigned int i = 0; i < nr; i++) {
		uint8_t *b;

		if (i == first)
			post_rx(f, nr - first, 2048);
		b = rx_used(f, &used, 2000);
		assert_non_null(b);
		fill_frame(fr, 60 + i, i);
		assert_int_equal(used, HDR + 60 + i);
		assert_memory_equal(b + HDR, fr, 60 + i);
	}
	assert_int_equal(stats(f).rx_frames, nr);
	assert_int_equal(stats(f).rx_dropped_room, 0);

	/* 40 chains of 3 descriptors at a time: the ring has 256 descriptors. */
	for (unsigned int i = 0; i < nr; i++) {
		struct virtq_used_elem e;

		if (i % 40 == 0)
			for (unsigned int k = i; k < i + 40 && k < nr; k++) {
				fill_frame(fr, 60 + k, k + 1);
				guest_tx(f, &h, fr, 60 + k);
			}
		assert_int_equal(peer_recv(f, got, sizeof(got), 2000),
		                 (ssize_t)(sizeof(nh) + 60 + i));
		fill_frame(fr, 60 + i, i + 1);
		assert_memory_equal(got + sizeof(nh), fr, 60 + i);
		assert_true(vd_wait_used(f->d, Q_TX, &e, 2000));
	}
	assert_int_equal(stats(f).tx_frames, nr);
	assert_int_equal(stats(f).tx_dropped, 0);
	fixture_free(f);
}

/* MTU limits: creation bounds, and frames past the MTU dropped either way. */
static void test_mtu(void **state)
{
	struct virtio_net_params p = {.mtu = VIRTIO_NET_MTU_MAX + 1, .fd = -1};
	struct virtio_net *net;
	struct virtio_net_hdr h = {0};
	struct netport_hdr nh = {0};
	uint8_t fr[2000], got[2100];
	struct fixture *f;
	struct virtq_used_elem e;
	uint32_t used;

	(void)state;
	assert_int_equal(virtio_net_create(&p, &net), -EINVAL);
	p.mtu = VIRTIO_NET_MTU_MIN - 1;
	assert_int_equal(virtio_net_create(&p, &net), -EINVAL);
	p.mtu = VIRTIO_NET_MTU_MAX;
	p.mac[0] = 1; /* multicast */
	assert_int_equal(virtio_net_create(&p, &net), -EINVAL);

	f = fixture_new(1500, BASE_FEATURES | MRG);
	fill_frame(fr, 1519, 1);
	guest_tx(f, &h, fr, 1519); /* 1500 + header + VLAN tag + 1: dropped */
	assert_true(vd_wait_used(f->d, Q_TX, &e, 2000));
	guest_tx(f, &h, fr, 13); /* shorter than an Ethernet header */
	assert_true(vd_wait_used(f->d, Q_TX, &e, 2000));
	guest_tx(f, &h, fr, 1518);
	assert_int_equal(peer_recv(f, got, sizeof(got), 2000), (ssize_t)(sizeof(nh) + 1518));
	assert_int_equal(stats(f).tx_dropped, 2);

	post_rx(f, 4, 2048);
	peer_send(f, &nh, fr, 1519);
	peer_send(f, &nh, fr, 1518);
	assert_non_null(rx_used(f, &used, 2000));
	assert_int_equal(used, HDR + 1518);
	assert_int_equal(stats(f).rx_dropped_mtu, 1);
	fixture_free(f);
}

static void wait_status(struct fixture *f, uint8_t bit)
{
	for (int i = 0; i < 2000 && !(vd_status(f->d) & bit); i++)
		usleep(1000);
	assert_true(vd_status(f->d) & bit);
}

/*
 * Malformed transmit chains and headers set DEVICE_NEEDS_RESET on that
 * device only; the other adapter goes on, and the reset device works again
 * after the driver resets it.
 */
static void test_malformed(void **state)
{
	struct fixture *f = fixture_new(1500, BASE_FEATURES);
	struct fixture *other = fixture_new(1500, BASE_FEATURES);
	uint8_t fr[100], got[200];
	struct virtio_net_hdr h = {0};

	(void)state;
	fill_frame(fr, sizeof(fr), 0);
	for (int c = 0; c < 5; c++) {
		uint64_t g = vd_alloc(f->d, 200);
		struct vd_buf bufs[2] = {{g, HDR, false}, {g + HDR, 100, true}};
		struct virtio_net_hdr bad = {0};

		switch (c) {
		case 0: /* a writable buffer in a transmit chain */
			break;
		case 1: /* a header cut short */
			bufs[0].len = HDR - 1;
			bufs[1].write = false;
			bufs[1].len = 0;
			break;
		case 2: /* GSO, never offered */
			bad.gso_type = 1;
			bufs[1].write = false;
			break;
		case 3: /* NEEDS_CSUM without VIRTIO_NET_F_CSUM */
			bad.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
			bufs[1].write = false;
			break;
		case 4: /* a descriptor outside guest memory */
			bufs[1].gpa = VD_MEM_SIZE - 10;
			bufs[1].write = false;
			break;
		}
		memcpy(vd_gpa(f->d, g, HDR), &bad, HDR);
		vd_submit(f->d, Q_TX, bufs, bufs[1].len ? 2 : 1);
		vd_kick(f->d, Q_TX);
		wait_status(f, VIRTIO_STATUS_DEVICE_NEEDS_RESET);

		/* The other adapter is untouched. */
		guest_tx(other, &h, fr, sizeof(fr));
		assert_int_equal(peer_recv(other, got, sizeof(got), 2000),
		                 (ssize_t)(sizeof(struct netport_hdr) + sizeof(fr)));
		assert_false(vd_status(other->d) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);

		/* The driver resets this one and it sends again. */
		vd_bring_up(f->d, BASE_FEATURES, 2, QSIZE);
		f->d->q[Q_RX].next_desc = 0;
		guest_tx(f, &h, fr, sizeof(fr));
		assert_int_equal(peer_recv(f, got, sizeof(got), 2000),
		                 (ssize_t)(sizeof(struct netport_hdr) + sizeof(fr)));
	}
	/* A receive chain the device would have to read from. */
	{
		struct vd_buf b = {vd_alloc(f->d, 2048), 2048, false};
		struct netport_hdr nh = {0};

		vd_submit(f->d, Q_RX, &b, 1);
		vd_kick(f->d, Q_RX);
		peer_send(f, &nh, fr, sizeof(fr));
		wait_status(f, VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	}
	assert_int_equal(stats(f).resets_asked, 6);
	assert_int_equal(stats(other).resets_asked, 0);
	fixture_free(other);
	fixture_free(f);
}

/* Frames that break netport.h's rules are dropped and counted. */
static void test_rx_bad_messages(void **state)
{
	struct fixture *f = fixture_new(1500, BASE_FEATURES);
	uint8_t msg[100] = {0};

	(void)state;
	post_rx(f, 4, 2048);
	assert_int_equal(send(f->peer, msg, 8 + 13, 0), 8 + 13); /* too short */
	msg[0] = 0x80;                                           /* unknown flag */
	assert_int_equal(send(f->peer, msg, sizeof(msg), 0), (ssize_t)sizeof(msg));
	msg[0] = 0;
	msg[1] = 1; /* reserved */
	assert_int_equal(send(f->peer, msg, sizeof(msg), 0), (ssize_t)sizeof(msg));
	for (int i = 0; i < 2000 && stats(f).rx_dropped_bad < 3; i++)
		usleep(1000);
	assert_int_equal(stats(f).rx_dropped_bad, 3);
	assert_int_equal(stats(f).rx_frames, 0);
	fixture_free(f);
}

/* The switch goes away: the link goes down with a configuration change, sends are dropped. */
static void test_link_down(void **state)
{
	struct fixture *f = fixture_new(1500, BASE_FEATURES);
	struct virtio_net_hdr h = {0};
	struct virtq_used_elem e;
	uint8_t fr[100];
	unsigned int msis = vd_msi_count(f->d);

	(void)state;
	post_rx(f, 2, 2048);
	close(f->peer);
	f->peer = -1;
	for (int i = 0; i < 2000 && cfg16(f, VIRTIO_NET_CFG_STATUS); i++)
		usleep(1000);
	assert_int_equal(cfg16(f, VIRTIO_NET_CFG_STATUS), 0);
	assert_true(vd_wait_msi(f->d, msis + 1, 2000) > msis);
	fill_frame(fr, sizeof(fr), 0);
	guest_tx(f, &h, fr, sizeof(fr));
	assert_true(vd_wait_used(f->d, Q_TX, &e, 2000));
	assert_int_equal(stats(f).tx_dropped, 1);
	assert_false(stats(f).link_up);
	fixture_free(f);
}

/* A new port for an adapter whose switch went away: the link comes back, frames flow. */
static void test_attach(void **state)
{
	struct fixture *f = fixture_new(1500, BASE_FEATURES);
	struct virtio_net_hdr h = {0};
	struct netport_hdr nh = {0};
	uint8_t fr[200], got[300];
	unsigned int msis;
	uint32_t used;
	uint8_t *b;
	int sv[2];

	(void)state;
	post_rx(f, 2, 2048);
	close(f->peer);
	for (int i = 0; i < 2000 && cfg16(f, VIRTIO_NET_CFG_STATUS); i++)
		usleep(1000);
	assert_int_equal(cfg16(f, VIRTIO_NET_CFG_STATUS), 0);
	msis = vd_msi_count(f->d);
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	virtio_net_attach(f->net, sv[0]);
	f->peer = sv[1];
	assert_int_equal(cfg16(f, VIRTIO_NET_CFG_STATUS), VIRTIO_NET_S_LINK_UP);
	assert_true(vd_wait_msi(f->d, msis + 1, 2000) > msis); /* the configuration change */
	fill_frame(fr, sizeof(fr), 4);
	guest_tx(f, &h, fr, sizeof(fr));
	assert_int_equal(peer_recv(f, got, sizeof(got), 2000), (ssize_t)(sizeof(nh) + sizeof(fr)));
	assert_memory_equal(got + sizeof(nh), fr, sizeof(fr));
	peer_send(f, &nh, fr, sizeof(fr));
	b = rx_used(f, &used, 2000);
	assert_non_null(b);
	assert_memory_equal(b + HDR, fr, sizeof(fr));
	/* Detached: link down, sends dropped. */
	virtio_net_attach(f->net, -1);
	assert_int_equal(cfg16(f, VIRTIO_NET_CFG_STATUS), 0);
	fixture_free(f);
}

/*
 * Save with receive buffers posted (one used) and restore into a new
 * device on a new port: the guest's remaining buffers are taken there,
 * and it sends. A restore onto another MAC is refused.
 */
static void test_save_restore(void **state)
{
	struct fixture *f = fixture_new(1500, BASE_FEATURES | MRG);
	struct fixture *g;
	struct virtio_net_params p = {.mtu = 1500};
	struct netport_hdr nh = {0};
	struct vd_saved s;
	uint8_t fr[1600], got[1700];
	uint32_t used;
	uint8_t *b;
	char why[160];
	int sv[2];

	(void)state;
	post_rx(f, 4, 2048);
	fill_frame(fr, 500, 9);
	peer_send(f, &nh, fr, 500);
	assert_non_null(rx_used(f, &used, 2000));
	vd_save(f->d, &s);
	virtio_pci_resume(f->d->vp);

	/* A device on another MAC refuses the state. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	p.fd = sv[0];
	memcpy(p.mac, test_mac, 6);
	p.mac[5] ^= 1;
	g = calloc(1, sizeof(*g));
	assert_non_null(g);
	assert_int_equal(virtio_net_create(&p, &g->net), 0);
	g->peer = sv[1];
	g->d = vd_create(virtio_net_vdev(g->net), true);
	assert_int_equal(virtio_net_start(g->net), 0);
	assert_int_equal(vd_restore_bytes(g->d, s.state.buf, s.state.len, why, sizeof(why)),
	                 -EBADMSG);
	assert_non_null(strstr(why, "MAC"));
	fixture_free(g);

	/* The same adapter, a new port: restored, it delivers into the saved guest's buffers. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	p.fd = sv[0];
	memcpy(p.mac, test_mac, 6);
	g = calloc(1, sizeof(*g));
	assert_non_null(g);
	assert_int_equal(virtio_net_create(&p, &g->net), 0);
	g->peer = sv[1];
	g->d = vd_create(virtio_net_vdev(g->net), true);
	assert_int_equal(virtio_net_start(g->net), 0);
	vd_set_guest_stopped(g->d, true);
	vd_load_guest(g->d, &s);
	memcpy(g->rx_gpa, f->rx_gpa, sizeof(g->rx_gpa));
	memcpy(g->rx_size, f->rx_size, sizeof(g->rx_size));
	vd_restore(g->d, &s);
	fill_frame(fr, 1400, 10);
	peer_send(g, &nh, fr, 1400);
	usleep(20000);
	assert_int_equal(stats(g).rx_frames, 0); /* the guest does not run yet */
	vd_set_guest_stopped(g->d, false);
	b = rx_used(g, &used, 3000);
	assert_non_null(b);
	assert_int_equal(used, HDR + 1400);
	assert_memory_equal(b + HDR, fr, 1400);
	{
		struct virtio_net_hdr h = {0};

		guest_tx(g, &h, fr, 1400);
		assert_int_equal(peer_recv(g, got, sizeof(got), 2000),
		                 (ssize_t)(sizeof(nh) + 1400));
	}
	vd_saved_release(&s);
	fixture_free(g);
	fixture_free(f);
}

/*
 * A transmit chain held for socket room at the save is saved as not taken:
 * the restored device on a new port sends it, then the rest, in order, and
 * nothing the old port got is sent twice.
 */
static void test_save_restore_held_tx(void **state)
{
	struct fixture *f = fixture_new(VIRTIO_NET_MTU_MAX, BASE_FEATURES);
	struct virtio_net_params p = {.mtu = VIRTIO_NET_MTU_MAX};
	struct virtio_net_hdr h = {0};
	static uint8_t fr[60000], got[60100];
	struct virtq_used_elem e;
	unsigned int sent = 0, nr = 8;
	struct fixture *g;
	struct vd_saved s;
	int sv[2];

	(void)state;
	for (unsigned int i = 0; i < nr; i++) {
		fill_frame(fr, sizeof(fr), i);
		guest_tx(f, &h, fr, sizeof(fr));
	}
	/* The socket takes a few 60 KB messages; the next chain waits for room. */
	while (vd_wait_used(f->d, Q_TX, &e, 200))
		sent++;
	assert_true(sent > 0 && sent < nr);
	vd_save(f->d, &s);
	virtio_pci_resume(f->d->vp);

	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	p.fd = sv[0];
	memcpy(p.mac, test_mac, 6);
	g = calloc(1, sizeof(*g));
	assert_non_null(g);
	assert_int_equal(virtio_net_create(&p, &g->net), 0);
	g->peer = sv[1];
	g->d = vd_create(virtio_net_vdev(g->net), true);
	assert_int_equal(virtio_net_start(g->net), 0);
	vd_load_guest(g->d, &s);
	vd_restore(g->d, &s);
	for (unsigned int i = sent; i < nr; i++) {
		ssize_t n = peer_recv(g, got, sizeof(got), 3000);

		assert_int_equal(n, (ssize_t)(sizeof(struct netport_hdr) + sizeof(fr)));
		fill_frame(fr, sizeof(fr), i);
		assert_memory_equal(got + sizeof(struct netport_hdr), fr, sizeof(fr));
	}
	assert_int_equal(peer_recv(g, got, sizeof(got), 100), -1);
	for (unsigned int i = sent; i < nr; i++)
		assert_true(vd_wait_used(g->d, Q_TX, &e, 2000));
	vd_saved_release(&s);
	fixture_free(g);
	fixture_free(f);
}

/* Append a record of @len bytes at @buf + *@off (header and frame, or raw with @nh NULL). */
static void batch_put(uint8_t *buf, size_t *off, const struct netport_hdr *nh, const void *data,
                      size_t len)
{
	uint32_t l = htole32((uint32_t)(len + (nh ? sizeof(*nh) : 0)));

	memcpy(buf + *off, &l, 4);
	if (nh)
		memcpy(buf + *off + 4, nh, sizeof(*nh));
	memcpy(buf + *off + 4 + (nh ? sizeof(*nh) : 0), data, len);
	*off += netport_rec_size(le32toh(l));
}

/* Batches both ways: frames of every padding, in order, the switch's count respected. */
static void test_batch(void **state)
{
	struct fixture *f = fixture_new_batch(1500, BASE_FEATURES | MRG, 8);
	struct netport_hdr nh = {0};
	struct virtio_net_hdr h = {0};
	static uint8_t msg[NETPORT_BATCH_MSG_MAX + 1];
	uint8_t fr[1600];
	unsigned int nr = 20, got = 0, msgs = 0;
	size_t off = 0;
	uint32_t used;

	(void)state;
	for (unsigned int i = 0; i < nr; i++) {
		fill_frame(fr, 60 + i, i);
		batch_put(msg, &off, &nh, fr, 60 + i);
	}
	assert_int_equal(send(f->peer, msg, off, 0), (ssize_t)off);
	/* A batch of one full-size frame, without its last record's padding. */
	off = 0;
	fill_frame(fr, 1514, 99);
	batch_put(msg, &off, &nh, fr, 1514);
	assert_int_equal(send(f->peer, msg, 4 + 8 + 1514, 0), 4 + 8 + 1514);
	post_rx(f, nr + 1, 2048);
	for (unsigned int i = 0; i <= nr; i++) {
		uint8_t *b = rx_used(f, &used, 2000);
		size_t len = i < nr ? 60 + i : 1514;

		assert_non_null(b);
		fill_frame(fr, len, i < nr ? i : 99);
		assert_int_equal(used, HDR + len);
		assert_memory_equal(b + HDR, fr, len);
	}
	assert_int_equal(stats(f).rx_frames, nr + 1);
	assert_int_equal(stats(f).rx_dropped_bad, 0);

	/* The guest's frames go in batches of at most 8. */
	for (unsigned int i = 0; i < nr; i++) {
		fill_frame(fr, 60 + i, i + 1);
		guest_tx(f, &h, fr, 60 + i);
	}
	while (got < nr) {
		ssize_t n = peer_recv(f, msg, sizeof(msg), 2000);
		const uint8_t *rec;
		size_t rec_len;
		unsigned int count = 0;
		int r;

		assert_true(n > 0);
		msgs++;
		off = 0;
		while ((r = netport_batch_next(msg, (size_t)n, &off, &count, 8, &rec, &rec_len)) >
		       0) {
			fill_frame(fr, 60 + got, got + 1);
			assert_int_equal(rec_len, sizeof(nh) + 60 + got);
			assert_memory_equal(rec + sizeof(nh), fr, 60 + got);
			got++;
		}
		assert_int_equal(r, 0);
	}
	assert_true(msgs >= 3); /* 20 frames, 8 at most per batch */
	assert_int_equal(stats(f).tx_frames, nr);
	fixture_free(f);
}

/* Malformed batches: the records before the break are delivered, the break counted once. */
static void test_batch_malformed(void **state)
{
	struct fixture *f = fixture_new_batch(1500, BASE_FEATURES, 8);
	struct netport_hdr nh = {0}, bad = {.reserved0 = 1};
	static uint8_t msg[NETPORT_BATCH_MSG_MAX + 16];
	uint8_t fr[200];
	uint32_t l;
	size_t off;

	(void)state;
	fill_frame(fr, 100, 1);
	/* A good record, then a length past the end. */
	off = 0;
	batch_put(msg, &off, &nh, fr, 100);
	l = htole32(200);
	memcpy(msg + off, &l, 4);
	assert_int_equal(send(f->peer, msg, off + 4 + 50, 0), (ssize_t)(off + 4 + 50));
	/* A zero length. */
	off = 0;
	l = 0;
	memcpy(msg, &l, 4);
	assert_int_equal(send(f->peer, msg, 16, 0), 16);
	/* A truncated record header (2 bytes of a length) after a good record. */
	off = 0;
	batch_put(msg, &off, &nh, fr, 100);
	assert_int_equal(send(f->peer, msg, off + 2, 0), (ssize_t)(off + 2));
	/* A record whose content breaks step 3: it alone is dropped. */
	off = 0;
	batch_put(msg, &off, &bad, fr, 100);
	batch_put(msg, &off, &nh, fr, 100);
	assert_int_equal(send(f->peer, msg, off, 0), (ssize_t)off);
	/* Too many records: the first NETPORT_BATCH_MAX stand. */
	off = 0;
	for (unsigned int i = 0; i <= NETPORT_BATCH_MAX; i++)
		batch_put(msg, &off, &nh, fr, 14);
	assert_int_equal(send(f->peer, msg, off, 0), (ssize_t)off);
	/* Longer than a batch may be: dropped whole. */
	memset(msg, 0, sizeof(msg));
	assert_int_equal(send(f->peer, msg, sizeof(msg), 0), (ssize_t)sizeof(msg));
	post_rx(f, 128, 2048);
	for (int i = 0; i < 3000 && stats(f).rx_dropped_bad < 6; i++)
		usleep(1000);
	usleep(20000);
	assert_int_equal(stats(f).rx_dropped_bad, 6);
	assert_int_equal(stats(f).rx_frames, 1 + 1 + 1 + NETPORT_BATCH_MAX);
	fixture_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_config),          cmocka_unit_test(test_tx_frames),
	    cmocka_unit_test(test_tx_csum),         cmocka_unit_test(test_rx_csum),
	    cmocka_unit_test(test_rx_mergeable),    cmocka_unit_test(test_rx_single_buffer),
	    cmocka_unit_test(test_rx_backpressure), cmocka_unit_test(test_mtu),
	    cmocka_unit_test(test_malformed),       cmocka_unit_test(test_rx_bad_messages),
	    cmocka_unit_test(test_link_down),       cmocka_unit_test(test_attach),
	    cmocka_unit_test(test_save_restore),    cmocka_unit_test(test_save_restore_held_tx),
	    cmocka_unit_test(test_burst),           cmocka_unit_test(test_batch),
	    cmocka_unit_test(test_batch_malformed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
