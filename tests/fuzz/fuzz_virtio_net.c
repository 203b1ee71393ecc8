/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: virtio-net (devices/virtio/net.c) through the virtio
 * PCI transport, the fuzzer playing both the guest's driver and the switch
 * on the other end of the port (a SOCK_SEQPACKET socketpair). The input
 * chooses the adapter (MTU 1500 or 65520), the negotiated features (CSUM,
 * GUEST_CSUM, MRG_RXBUF, event index, indirect descriptors) and queue size,
 * then steps: transmit chains (header fields, frame lengths around the MTU
 * and the Ethernet minimum, buffers split anywhere, a writable buffer
 * where none belongs), receive buffers (sizes, splits, a readable one),
 * messages from the switch (well-formed frames with or without a checksum
 * request, in range or not, and garbage), configuration reads and resets.
 *
 * Checks, besides ASan/UBSan: a malformed transmit chain or header sets
 * DEVICE_NEEDS_RESET and a good one never does; every good chain comes
 * back once, its frame on the socket whole (netport header as net.h says)
 * if its length is allowed and not at all otherwise; every received frame
 * the guest sees is, in order, one the switch sent (others were dropped),
 * whole, within its chains, with num_buffers right and the checksum
 * completed unless GUEST_CSUM passed the request on.
 */
#include "devices/virtio/net.h"
#include "fuzz_virtio.h"
#include "net/netport.h"

#include <sys/socket.h>

#define MAX_STEPS 64
#define MAX_RX 128      /* receive chains tracked per input */
#define MAX_EXPECT 16   /* frames the switch sent that the guest has not seen */
#define BIG_FRAME 70000 /* past NETPORT_FRAME_MAX */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct adapter {
	struct virtio_net *net;
	struct fz f;
	int peer;
	unsigned int mtu;
};

static struct adapter adapters[2];
static const uint8_t fz_mac[6] = {0x02, 0x4e, 0x56, 0x0f, 0x0f, 0x01};

struct rx_chain {
	uint64_t gpa;
	uint32_t len;
	bool bad; /* a readable buffer, or too short for the header */
};

static struct rx_chain rx[MAX_RX];
static unsigned int nr_rx;

struct expect {
	uint8_t *frame; /* as the guest should see it (checksum completed where it must be) */
	size_t len;
	struct netport_hdr nh;
};

static struct expect expect[MAX_EXPECT];
static unsigned int nr_expect;
static uint8_t msg[BIG_FRAME + 16];
static uint8_t frame_in[BIG_FRAME];

static void setup_once(void)
{
	log_set_level(getenv("FZ_LOG") ? LOG_DEBUG : LOG_NONE);
	for (unsigned int i = 0; i < 2; i++) {
		struct adapter *a = &adapters[i];
		struct virtio_net_params p = {.mtu = i ? VIRTIO_NET_MTU_MAX : 1500};
		int sv[2];

		FZ_CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0);
		memcpy(p.mac, fz_mac, 6);
		p.fd = sv[0];
		a->peer = sv[1];
		a->mtu = p.mtu;
		FZ_CHECK(virtio_net_create(&p, &a->net) == 0);
		fz_create(&a->f, virtio_net_vdev(a->net));
		FZ_CHECK(virtio_net_start(a->net) == 0);
	}
}

static void expect_clear(void)
{
	for (unsigned int i = 0; i < nr_expect; i++)
		free(expect[i].frame);
	nr_expect = 0;
}

static void expect_pop(unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		free(expect[i].frame);
	memmove(expect, expect + n, (nr_expect - n) * sizeof(expect[0]));
	nr_expect -= n;
}

/* Read and drop whatever the device sent to the switch. */
static void peer_drain(struct adapter *a)
{
	while (recv(a->peer, msg, sizeof(msg), MSG_DONTWAIT) >= 0)
		;
}

static bool bring_up(struct adapter *a, struct fz_in *in)
{
	uint8_t fsel = fz_u8(in);
	uint64_t feat = VIRTIO_BIT(VIRTIO_NET_F_MAC) | VIRTIO_BIT(VIRTIO_NET_F_STATUS) |
	                VIRTIO_BIT(VIRTIO_NET_F_MTU);

	if (fsel & 1)
		feat |= VIRTIO_BIT(VIRTIO_NET_F_CSUM);
	if (fsel & 2)
		feat |= VIRTIO_BIT(VIRTIO_NET_F_GUEST_CSUM);
	if (fsel & 4)
		feat |= VIRTIO_BIT(VIRTIO_NET_F_MRG_RXBUF);
	if (fsel & 8)
		feat |= VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX);
	if (fsel & 16)
		feat |= VIRTIO_BIT(VIRTIO_F_RING_INDIRECT_DESC);
	/* Frames the switch sent to the device before are dropped while it has no driver. */
	fz_set_status(&a->f, 0);
	fz_settle(&a->f);
	peer_drain(a);
	nr_rx = 0;
	expect_clear();
	/* At least 16 entries: an indirect chain of FZ_CHAIN_MAX buffers stays within the size. */
	return fz_bring_up(&a->f, feat, 2, (uint16_t)(16U << ((fsel >> 5) % 5)));
}

static bool has(struct adapter *a, unsigned int bit)
{
	return a->f.vdev->acked & VIRTIO_BIT(bit);
}

/* A transmit chain from the input; checks what the device made of it. */
static bool step_tx(struct adapter *a, struct fz_in *in, bool indirect)
{
	uint8_t sel = fz_u8(in), lsel = fz_u8(in);
	struct virtio_net_hdr h = {0};
	size_t max = a->mtu + 18, len;
	struct fz_buf bufs[FZ_CHAIN_MAX];
	unsigned int n = 0;
	uint32_t hdr_len = VIRTIO_NET_HDR_SIZE;
	bool bad = false, write_buf = (sel & 0xe0) == 0xe0;
	struct virtq_used_elem e;
	uint64_t cookie, gpa;
	uint8_t *p;
	ssize_t got;

	switch (lsel % 6) {
	case 0:
		len = 14 + fz_u8(in);
		break;
	case 1:
		len = max - 2 + fz_u8(in) % 5;
		break;
	case 2:
		len = fz_u8(in) % 14;
		break;
	case 3:
		len = fz_u16(in) % 9000;
		break;
	case 4:
		len = a->mtu > 1500 ? 60000 + fz_u16(in) % 6000 : 1514;
		break;
	default:
		len = 60;
		break;
	}
	if (sel & 1)
		h.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
	if ((sel & 0x06) == 0x06)
		h.flags = fz_u8(in);
	if ((sel & 0x18) == 0x18)
		h.gso_type = fz_u8(in);
	h.csum_start = (sel & 0x20) ? fz_u16(in) : (uint16_t)(len > 40 ? 34 : 0);
	h.csum_offset = (sel & 0x40) ? fz_u16(in) : 6;
	if ((sel & 0x90) == 0x90)
		hdr_len = fz_u8(in) % VIRTIO_NET_HDR_SIZE; /* cut short */
	gpa = fz_alloc(&a->f, hdr_len + len);
	if (!gpa)
		return false;
	p = fz_gpa(&a->f, gpa, hdr_len + len);
	memcpy(p, &h, hdr_len);
	for (size_t i = 0; i < len; i++)
		p[hdr_len + i] = (uint8_t)(i * 11 + sel);
	/* Nothing after a short header: those bytes would be read as the rest of it. */
	if (hdr_len < VIRTIO_NET_HDR_SIZE)
		len = 0;
	if (hdr_len + len)
		n = fz_split(in, gpa, (uint32_t)(hdr_len + len), false, bufs, FZ_CHAIN_MAX - 1);
	if (write_buf) {
		uint64_t w = fz_alloc(&a->f, 16);

		if (!w)
			return false;
		bufs[n++] = (struct fz_buf){w, 16, true};
	}
	if (n == 0)
		return true;
	bad = write_buf || hdr_len < VIRTIO_NET_HDR_SIZE ||
	      (h.flags & ~VIRTIO_NET_HDR_F_NEEDS_CSUM) || h.gso_type ||
	      ((h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) &&
	       (!has(a, VIRTIO_NET_F_CSUM) || (size_t)h.csum_start + h.csum_offset + 2 > len));
	if (fz_submit(&a->f, 1, bufs, n, indirect && (sel & 0x08), 1) < 0)
		return false;
	fz_kick(&a->f, 1);
	fz_settle(&a->f);
	if (bad) {
		FZ_CHECK(fz_needs_reset(&a->f));
		return bring_up(a, in);
	}
	FZ_CHECK(!fz_needs_reset(&a->f));
	FZ_CHECK(fz_used(&a->f, 1, &e, &cookie) && e.len == 0);
	got = recv(a->peer, msg, sizeof(msg), MSG_DONTWAIT);
	if (len < 14 || len > max) {
		FZ_CHECK(got < 0);
		return true;
	}
	FZ_CHECK(got == (ssize_t)(sizeof(struct netport_hdr) + len));
	{
		struct netport_hdr nh;

		memcpy(&nh, msg, sizeof(nh));
		FZ_CHECK(nh.flags == (h.flags ? NETPORT_F_NEEDS_CSUM : 0));
		FZ_CHECK(!h.flags ||
		         (nh.csum_start == h.csum_start && nh.csum_offset == h.csum_offset));
		FZ_CHECK(!nh.reserved0 && !nh.reserved1);
	}
	FZ_CHECK(memcmp(msg + sizeof(struct netport_hdr), p + hdr_len, len) == 0);
	return true;
}

/* Receive chains from the input, made available. */
static bool step_post(struct adapter *a, struct fz_in *in, bool indirect)
{
	unsigned int count = 1 + fz_u8(in) % 8;

	for (unsigned int i = 0; i < count && nr_rx < MAX_RX; i++) {
		uint8_t sel = fz_u8(in);
		uint32_t len = sel & 0x80 ? 12 + fz_u16(in) % 4096 : 1526;
		struct fz_buf bufs[FZ_CHAIN_MAX];
		struct rx_chain *c = &rx[nr_rx];
		unsigned int n;

		if ((sel & 0x60) == 0x60)
			len = fz_u8(in) % 12; /* too short for the header */
		if ((sel & 0x1f) == 0x1f && a->mtu > 1500)
			len = 66000; /* one chain for the largest frame */
		c->gpa = fz_alloc(&a->f, len);
		if (!c->gpa)
			return false;
		c->len = len;
		n = fz_split(in, c->gpa, len, true, bufs, 4);
		if (n == 0)
			continue;
		c->bad = len < VIRTIO_NET_HDR_SIZE;
		if ((sel & 0x0c) == 0x0c) {
			bufs[0].write = false; /* the device would have to read it */
			c->bad = true;
		}
		if (fz_submit(&a->f, 0, bufs, n, indirect && (sel & 0x10), nr_rx) < 0)
			return true;
		nr_rx++;
	}
	fz_kick(&a->f, 0);
	fz_settle(&a->f);
	return true;
}

/* A message from the switch; well-formed frames are expected, in order. */
static void step_send(struct adapter *a, struct fz_in *in)
{
	uint8_t sel = fz_u8(in);
	struct netport_hdr nh = {0};
	size_t len, max = a->mtu + 18;
	bool good = true;

	switch (sel % 5) {
	case 0:
		len = 14 + fz_u8(in);
		break;
	case 1:
		len = max - 2 + fz_u8(in) % 5;
		break;
	case 2:
		len = fz_u16(in) % 4000;
		break;
	case 3:
		len = a->mtu > 1500 ? 60000 + fz_u16(in) % 6000 : 1500;
		break;
	default:
		len = 60;
		break;
	}
	if (sel & 0x08) {
		nh.flags = NETPORT_F_NEEDS_CSUM;
		nh.csum_start = (sel & 0x10) ? fz_u16(in) : (uint16_t)(len > 40 ? 34 : 0);
		nh.csum_offset = (sel & 0x20) ? fz_u16(in) : 6;
	}
	if ((sel & 0xc0) == 0xc0) {
		nh.flags = fz_u8(in);
		nh.reserved1 = fz_u8(in) & 1;
	}
	good = len >= 14 && len <= max && !(nh.flags & ~NETPORT_F_NEEDS_CSUM) && !nh.reserved1 &&
	       (!(nh.flags & NETPORT_F_NEEDS_CSUM) ||
	        (size_t)nh.csum_start + nh.csum_offset + 2 <= len);
	if (good && nr_expect == MAX_EXPECT)
		return; /* too many to follow: nothing more until the guest catches up */
	memcpy(msg, &nh, sizeof(nh));
	for (size_t i = 0; i < len; i++)
		msg[sizeof(nh) + i] = (uint8_t)(i * 5 + sel);
	if (send(a->peer, msg, sizeof(nh) + len, MSG_DONTWAIT) < 0)
		return; /* the device's socket is full: it has no buffers */
	if (good) {
		struct expect *x = &expect[nr_expect];

		x->frame = malloc(len);
		FZ_CHECK(x->frame);
		memcpy(x->frame, msg + sizeof(nh), len);
		x->len = len;
		x->nh = nh;
		if ((nh.flags & NETPORT_F_NEEDS_CSUM) && !has(a, VIRTIO_NET_F_GUEST_CSUM)) {
			FZ_CHECK(netport_csum_complete(x->frame, len, nh.csum_start,
			                               nh.csum_offset) == 0);
			x->nh = (struct netport_hdr){0};
		}
		nr_expect++;
	}
	fz_settle(&a->f);
}

/* Take the frames the guest got and match each with the next ones the switch sent. */
static void collect(struct adapter *a)
{
	struct virtq_used_elem e;
	uint64_t cookie;

	while (fz_used(&a->f, 0, &e, &cookie)) {
		struct virtio_net_hdr h;
		struct rx_chain *c = &rx[cookie];
		size_t at;
		unsigned int k;

		FZ_CHECK(cookie < nr_rx && !c->bad && e.len <= c->len && e.len >= sizeof(h));
		memcpy(&h, fz_gpa(&a->f, c->gpa, sizeof(h)), sizeof(h));
		FZ_CHECK(h.num_buffers >= 1);
		FZ_CHECK(h.num_buffers == 1 || has(a, VIRTIO_NET_F_MRG_RXBUF));
		at = e.len - sizeof(h);
		memcpy(frame_in, fz_gpa(&a->f, c->gpa + sizeof(h), at), at);
		for (unsigned int b = 1; b < h.num_buffers; b++) {
			FZ_CHECK(
			    fz_used(&a->f, 0, &e, &cookie)); /* a frame's chains come together */
			c = &rx[cookie];
			FZ_CHECK(cookie < nr_rx && !c->bad && e.len <= c->len && e.len > 0);
			FZ_CHECK(at + e.len <= sizeof(frame_in));
			memcpy(frame_in + at, fz_gpa(&a->f, c->gpa, e.len), e.len);
			at += e.len;
		}
		for (k = 0; k < nr_expect; k++)
			if (expect[k].len == at && !memcmp(expect[k].frame, frame_in, at))
				break;
		FZ_CHECK(k < nr_expect); /* a frame the switch never sent, or out of order */
		FZ_CHECK(h.flags == (expect[k].nh.flags ? VIRTIO_NET_HDR_F_NEEDS_CSUM : 0));
		FZ_CHECK(!h.flags || (h.csum_start == expect[k].nh.csum_start &&
		                      h.csum_offset == expect[k].nh.csum_offset));
		expect_pop(k + 1);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool init;
	struct fz_in in = {data, size};
	struct adapter *a;
	bool indirect;

	if (!init) {
		setup_once();
		init = true;
	}
	a = &adapters[fz_u8(&in) & 1];
	a->f.buf_next = FZ_BUF_GPA;
	a->f.out_of_memory = false;
	if (!bring_up(a, &in))
		abort();
	indirect = has(a, VIRTIO_F_RING_INDIRECT_DESC);
	for (int step = 0; step < MAX_STEPS && !fz_in_empty(&in) && !a->f.out_of_memory; step++) {
		uint8_t op = fz_u8(&in);
		bool ok = true;

		indirect =
		    has(a, VIRTIO_F_RING_INDIRECT_DESC); /* a step may have reset the device */

		if (op < 0x60) {
			ok = step_tx(a, &in, indirect);
		} else if (op < 0xa0) {
			ok = step_post(a, &in, indirect);
		} else if (op < 0xe0) {
			step_send(a, &in);
		} else if (op < 0xf0) {
			uint32_t off = fz_u8(&in) % VIRTIO_NET_CFG_SIZE;
			uint64_t v = fz_read(&a->f, VIRTIO_PCI_DEVICE_OFF + off, 1);

			if (off < 6)
				FZ_CHECK(v == fz_mac[off]);
			if (off == VIRTIO_NET_CFG_MTU)
				FZ_CHECK(fz_read(&a->f, VIRTIO_PCI_DEVICE_OFF + off, 2) == a->mtu);
		} else {
			ok = bring_up(a, &in);
			indirect = has(a, VIRTIO_F_RING_INDIRECT_DESC);
		}
		if (!ok)
			break;
		/* A receive chain the device had to read from asks for a reset: start over. */
		if (fz_needs_reset(&a->f)) {
			bool bad = false;

			for (unsigned int i = 0; i < nr_rx; i++)
				bad |= rx[i].bad;
			FZ_CHECK(bad);
			if (!bring_up(a, &in))
				break;
			indirect = has(a, VIRTIO_F_RING_INDIRECT_DESC);
			continue;
		}
		collect(a);
	}
	fz_set_status(&a->f, 0);
	fz_settle(&a->f);
	peer_drain(a);
	expect_clear();
	return 0;
}
