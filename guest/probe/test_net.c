/* SPDX-License-Identifier: MIT */
/*
 * test=net: a polled virtio-net driver (virtio 1.2 §5.1) at CPL3, on the
 * probe's virtio PCI driver (virtio.c), and traffic between two probe VMs
 * on one switch. Parameters:
 *
 *   nic=N       the Nth virtio-net function (default 0)
 *   role=send   wait for the peer's READY, send count frames; with echo=1
 *               also receive each one back and check it
 *   role=recv   post receive buffers, say READY (every 200 ms until data
 *               comes), receive count frames and check each; with echo=1
 *               send each back
 *   role=hostile  malformed transmit chains (hostile_cases[]): each must
 *               end in DEVICE_NEEDS_RESET, and the device must send again
 *               after the driver resets it (one good frame per case)
 *   count=N     frames (default 1000); size=BYTES each (60 to 1514,
 *               default 1000)
 *   csum=0      compute the UDP checksums here instead of leaving them to
 *               be completed (VIRTIO_NET_F_CSUM, NEEDS_CSUM)
 *   spoof=1     send from 02:99:99:99:99:99 rather than the adapter's MAC
 *   ready=0     role=send starts at once, not waiting for a peer's READY
 *               (a sender alone on a switch, e.g. for its spoofing guard)
 *   lossy=1     the switch may drop frames (nestvm's does when a port's queue
 *               is full): a gap in the sequence is counted as lost, not
 *               wrong; the sender ends with END frames, and the run passes
 *               with no frame corrupt or out of order and at least 90% through
 *   linger=MS   stay on the switch MS milliseconds after the result, so
 *               that the switch's counters for the port can be read
 *   bench=1     a benchmark instead of a check (bench/net.sh): frames
 *               carry magic and sequence number only (no UDP checksum, no
 *               pattern), the receiver counts them and times them with the
 *               TSC from the first to the last, nothing is echoed; the
 *               sender sends to the MAC its peer's READY came from, for
 *               seconds=S (default 2) or count frames, whichever ends first,
 *               then END frames; the receiver ends on END or after 2 s
 *               without data. Each prints one "probe: bench: net ..." line.
 *   dst=A.B.C.D with bench=1 and role=send: UDP to that address, port
 *               dport=N (5001) from src=A.B.C.D (10.0.2.15), to the MAC
 *               52:55:A:B:C:D (libslirp's gateway), not waiting for a
 *               READY: a guest sending to the host through NAT
 *
 * Frames are Ethernet/IPv4/UDP broadcasts carrying a magic, a sequence
 * number and a pattern derived from both. A receiver checks the UDP
 * checksum (which the device completes: the probe does not negotiate
 * VIRTIO_NET_F_GUEST_CSUM, unless gcsum=1, when it completes it itself),
 * the pattern and the order. Receive buffers are 1024 bytes, so a full
 * frame takes two of them (VIRTIO_NET_F_MRG_RXBUF).
 */
#include "virtio.h"

#define VIRTIO_ID_NET 1
#define NET_F_CSUM 0
#define NET_F_GUEST_CSUM 1
#define NET_F_MTU 3
#define NET_F_MAC 5
#define NET_F_MRG_RXBUF 15
#define NET_F_STATUS 16
#define NET_S_LINK_UP 1
#define NET_HDR_F_NEEDS_CSUM 1
#define NET_HDR 12

#define Q_RX 0
#define Q_TX 1
#define QSIZE 128
#define RXBUF 1024
#define TXBUF (NET_HDR + 1536)
#define FRAME_MIN 60
#define FRAME_MAX 1514
#define UDP_OFF 34
#define PAYLOAD_OFF 42
#define MAGIC_DATA 0x4154414eU  /* "NATA" little-endian */
#define MAGIC_READY 0x2159445eU /* "^DY!" */
#define MAGIC_END 0x21444e45U   /* "END!" */
#define END_FRAMES 3
#define KICK_BATCH 16      /* buffers made available per notification (each one is a VM exit) */
#define QUIET_US 500000ULL /* lossy echo: no more echoes for this long ends the wait */
#define TIMEOUT_US 20000000ULL
#define TX_STATUS_US 1000ULL /* a full transmit ring reads the device status this often */
#define READY_EVERY_US 200000ULL

struct net_hdr {
	uint8_t flags;
	uint8_t gso_type;
	uint16_t hdr_len;
	uint16_t gso_size;
	uint16_t csum_start;
	uint16_t csum_offset;
	uint16_t num_buffers;
};

struct net {
	struct vdev d;
	struct vq rx, tx;
	uint8_t mac[6];
	uint8_t src[6]; /* what frames are sent from */
	bool offload;   /* leave UDP checksums to the receiver's side */
	bool drain;     /* read what arrives while waiting for transmit room (role=send) */
	uint64_t sent, completed;
	uint64_t full, full_us; /* times the transmit ring was found full, and the wait for room */
	uint64_t got, bad, misordered, lost, echoed;
	bool lossy;                            /* lossy=1 */
	bool end_seen;                         /* the sender's END arrived */
	uint64_t last_rx_us;                   /* when the last data frame arrived */
	unsigned int tx_unkicked, rx_unkicked; /* buffers made available since the last kick */
	uint64_t next_seq;
};

static uint8_t rx_bufs[QSIZE][RXBUF] __attribute__((aligned(64)));
static uint8_t tx_bufs[QSIZE][TXBUF] __attribute__((aligned(64)));
static uint8_t frame_in[FRAME_MAX + 64];

static uint32_t csum_add(uint32_t sum, const uint8_t *p, size_t len)
{
	for (; len >= 2; p += 2, len -= 2)
		sum += (uint32_t)p[0] << 8 | p[1];
	if (len)
		sum += (uint32_t)p[0] << 8;
	return sum;
}

static uint16_t csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* The UDP pseudo-header's sum (RFC 768) of the IPv4 frame @f. */
static uint32_t udp_pseudo(const uint8_t *f, uint16_t udp_len)
{
	return csum_add(0, f + 26, 8) + 17 + udp_len;
}

static uint8_t pattern(uint32_t seq, size_t i)
{
	return (uint8_t)(seq * 31 + i * 7);
}

/*
 * Build frame @seq of @len bytes with @magic into @f. With @offload the UDP
 * checksum holds the pseudo-header sum and *@partial is set.
 */
static void build_frame(const struct net *n, uint8_t *f, size_t len, uint32_t magic, uint32_t seq,
                        bool *partial)
{
	static const uint8_t ip[8] = {10, 0, 0, 1, 10, 0, 0, 2};
	uint16_t udp_len = (uint16_t)(len - UDP_OFF);
	uint32_t pseudo;

	memset(f, 0xff, 6);
	memcpy(f + 6, n->src, 6);
	put16(f + 12, 0x0800);
	memset(f + 14, 0, 20);
	f[14] = 0x45;
	put16(f + 16, (uint16_t)(len - 14));
	put16(f + 18, (uint16_t)seq);
	f[22] = 64;
	f[23] = 17;
	memcpy(f + 26, ip, 8);
	put16(f + 24, (uint16_t)~csum_fold(csum_add(0, f + 14, 20)));
	put16(f + UDP_OFF, 4000);
	put16(f + UDP_OFF + 2, 4001);
	put16(f + UDP_OFF + 4, udp_len);
	put16(f + UDP_OFF + 6, 0);
	memcpy(f + PAYLOAD_OFF, &magic, 4);
	memcpy(f + PAYLOAD_OFF + 4, &seq, 4);
	for (size_t i = PAYLOAD_OFF + 8; i < len; i++)
		f[i] = pattern(seq, i);
	pseudo = udp_pseudo(f, udp_len);
	*partial = n->offload;
	if (n->offload) {
		put16(f + UDP_OFF + 6, csum_fold(pseudo));
	} else {
		uint16_t c = (uint16_t)~csum_fold(csum_add(pseudo, f + UDP_OFF, udp_len));

		put16(f + UDP_OFF + 6, c ? c : 0xffff);
	}
}

/* Check a received frame; returns its magic (0: not ours or corrupt, counted) and *@seq. */
static uint32_t check_frame(struct net *n, const uint8_t *f, size_t len, uint32_t *seq)
{
	uint32_t magic;
	uint16_t udp_len;

	if (len < PAYLOAD_OFF + 8 || get16(f + 12) != 0x0800 || f[23] != 17)
		return 0; /* not one of ours (the switch may flood others) */
	udp_len = get16(f + UDP_OFF + 4);
	memcpy(&magic, f + PAYLOAD_OFF, 4);
	memcpy(seq, f + PAYLOAD_OFF + 4, 4);
	if (magic != MAGIC_DATA && magic != MAGIC_READY && magic != MAGIC_END)
		return 0;
	if (udp_len != len - UDP_OFF ||
	    csum_fold(csum_add(udp_pseudo(f, udp_len), f + UDP_OFF, udp_len)) != 0xffff) {
		n->bad++;
		return 0;
	}
	for (size_t i = PAYLOAD_OFF + 8; i < len; i++) {
		if (f[i] != pattern(*seq, i)) {
			n->bad++;
			return 0;
		}
	}
	return magic;
}

/* ---------------------------------------------------------------- the device */

static int net_up(struct net *n, uint64_t extra, const char **why)
{
	uint64_t want = VIRTIO_FEATURE(NET_F_MAC) | VIRTIO_FEATURE(NET_F_STATUS) |
	                VIRTIO_FEATURE(NET_F_MTU) | VIRTIO_FEATURE(NET_F_MRG_RXBUF) | extra;

	if (virtio_negotiate(&n->d, want, why) < 0)
		return -1;
	*why = "the device lacks MAC, STATUS or MRG_RXBUF";
	if ((n->d.acked & (VIRTIO_FEATURE(NET_F_MAC) | VIRTIO_FEATURE(NET_F_STATUS) |
	                   VIRTIO_FEATURE(NET_F_MRG_RXBUF))) !=
	    (VIRTIO_FEATURE(NET_F_MAC) | VIRTIO_FEATURE(NET_F_STATUS) |
	     VIRTIO_FEATURE(NET_F_MRG_RXBUF)))
		return -1;
	*why = "queues smaller than 128";
	if (virtio_queue_start(&n->d, Q_RX, &n->rx, 0, QSIZE) < 0 ||
	    virtio_queue_start(&n->d, Q_TX, &n->tx, 1, QSIZE) < 0)
		return -1;
	virtio_set_status(&n->d, VIRTIO_S_ACKNOWLEDGE | VIRTIO_S_DRIVER | VIRTIO_S_FEATURES_OK |
	                             VIRTIO_S_DRIVER_OK);
	*why = "the device refused DRIVER_OK or needs a reset";
	if ((virtio_status(&n->d) &
	     (VIRTIO_S_DRIVER_OK | VIRTIO_S_NEEDS_RESET | VIRTIO_S_FAILED)) != VIRTIO_S_DRIVER_OK)
		return -1;
	for (uint16_t i = 0; i < QSIZE; i++) {
		n->rx.desc[i] =
		    (struct vring_desc){(uintptr_t)rx_bufs[i], RXBUF, VRING_DESC_F_WRITE, 0};
		vq_publish(&n->rx, i);
	}
	vq_kick(&n->rx);
	n->sent = n->completed = 0;
	n->full = n->full_us = 0;
	n->tx_unkicked = n->rx_unkicked = 0;
	return 0;
}

static uint16_t cfg16(const struct net *n, unsigned int off)
{
	return *(volatile uint16_t *)(uintptr_t)(n->d.device + off);
}

/* Take back transmitted chains; true if a slot is free. */
static bool tx_reap(struct net *n)
{
	struct vring_used_elem e;

	while (vq_get_used(&n->tx, &e))
		n->completed++;
	return n->sent - n->completed < QSIZE;
}

static void rx_poll(struct net *n, bool echo, bool *ready);

/* Notify the transmit queue of what was queued since the last notification. */
static void tx_flush(struct net *n)
{
	if (n->tx_unkicked) {
		vq_kick(&n->tx);
		n->tx_unkicked = 0;
	}
}

/*
 * Queue @f (@len bytes) for transmission; false if the ring stayed full.
 * A sender reads meanwhile (echoes could otherwise fill the switch both
 * ways); a receiver that echoes does not, since reading makes it send.
 */
static bool tx_frame(struct net *n, const uint8_t *f, size_t len, bool partial)
{
	uint64_t now, end = 0, next_status = 0;
	uint16_t slot;
	struct net_hdr *h;

	/*
	 * The used ring is in memory; the status is a register, and each read
	 * of it an exit to the VMM (~10 us of host CPU, taken from the device
	 * and the switch that are emptying this ring). So it is read every
	 * TX_STATUS_US while the ring stays full, not on every spin: a driver
	 * waiting for room has no reason to ask more often.
	 */
	while (!tx_reap(n)) {
		bool ready;

		tx_flush(n);
		now = virtio_now_us();
		if (!end) {
			end = now + TIMEOUT_US;
			next_status = now + TX_STATUS_US;
		}
		if (now > end)
			return false;
		if (now >= next_status) {
			if (virtio_status(&n->d) & VIRTIO_S_NEEDS_RESET)
				return false;
			next_status = now + TX_STATUS_US;
		}
		if (n->drain)
			rx_poll(n, false, &ready);
		cpu_relax();
	}
	if (end) {
		n->full++;
		n->full_us += virtio_now_us() + TIMEOUT_US - end;
	}
	slot = (uint16_t)(n->sent % QSIZE);
	h = (struct net_hdr *)tx_bufs[slot];
	*h = (struct net_hdr){0};
	if (partial) {
		h->flags = NET_HDR_F_NEEDS_CSUM;
		h->csum_start = UDP_OFF;
		h->csum_offset = 6;
	}
	memcpy(tx_bufs[slot] + NET_HDR, f, len);
	n->tx.desc[slot] =
	    (struct vring_desc){(uintptr_t)tx_bufs[slot], (uint32_t)(NET_HDR + len), 0, 0};
	vq_publish(&n->tx, slot);
	if (++n->tx_unkicked >= KICK_BATCH)
		tx_flush(n);
	n->sent++;
	return true;
}

/* Give receive buffer @id back to the device. */
static void rx_repost(struct net *n, uint32_t id)
{
	vq_publish(&n->rx, (uint16_t)id);
	if (++n->rx_unkicked >= KICK_BATCH) {
		vq_kick(&n->rx);
		n->rx_unkicked = 0;
	}
}

/*
 * The next received frame into frame_in, if one is there: its length, 0 if
 * none, -1 if it came malformed (counted).
 */
static long rx_frame(struct net *n)
{
	struct vring_used_elem e;
	struct net_hdr h;
	size_t at = 0;
	long r;

	if (!vq_get_used(&n->rx, &e))
		return 0;
	if (e.id >= QSIZE || e.len < NET_HDR || e.len > RXBUF) {
		n->bad++;
		return -1;
	}
	memcpy(&h, rx_bufs[e.id], NET_HDR);
	memcpy(frame_in, rx_bufs[e.id] + NET_HDR, e.len - NET_HDR);
	at = e.len - NET_HDR;
	rx_repost(n, e.id);
	for (unsigned int k = 1; k < h.num_buffers; k++) {
		enum vq_wait w = vq_wait(&n->d, &n->rx, &e, 1000000);

		if (w != VQ_USED || e.id >= QSIZE || e.len > RXBUF ||
		    at + e.len > sizeof(frame_in)) {
			n->bad++;
			return -1;
		}
		memcpy(frame_in + at, rx_bufs[e.id], e.len);
		at += e.len;
		rx_repost(n, e.id);
	}
	r = (long)at;
	if (h.num_buffers == 0) {
		n->bad++;
		return -1;
	}
	/* gcsum=1: the device left the checksum to us. */
	if (h.flags & NET_HDR_F_NEEDS_CSUM) {
		if ((size_t)h.csum_start + h.csum_offset + 2 > at) {
			n->bad++;
			return -1;
		}
		put16(
		    frame_in + h.csum_start + h.csum_offset,
		    (uint16_t)~csum_fold(csum_add(0, frame_in + h.csum_start, at - h.csum_start)));
	}
	return r;
}

/* ---------------------------------------------------------------- the roles */

static uint8_t frame_out[FRAME_MAX];

static int send_one(struct net *n, uint32_t magic, uint32_t seq, size_t size)
{
	bool partial;

	build_frame(n, frame_out, size, magic, seq, &partial);
	return tx_frame(n, frame_out, size, partial) ? 0 : -1;
}

/* Handle what has arrived: count data (and echo it back), note READY. */
static void rx_poll(struct net *n, bool echo, bool *ready)
{
	long len;

	while ((len = rx_frame(n)) != 0) {
		uint32_t seq, magic;

		if (len < 0)
			continue;
		magic = check_frame(n, frame_in, (size_t)len, &seq);
		if (magic == MAGIC_READY) {
			*ready = true;
			continue;
		}
		if (magic == MAGIC_END)
			n->end_seen = true;
		if (magic != MAGIC_DATA)
			continue;
		/* Earlier than expected: duplicated or reordered; later: frames lost. */
		if (seq < n->next_seq) {
			n->misordered++;
		} else {
			n->lost += seq - n->next_seq;
			n->next_seq = seq + 1;
		}
		n->got++;
		n->last_rx_us = virtio_now_us();
		/*
		 * Back to its sender, from this adapter (a switch guarding
		 * against spoofing would drop it otherwise); the checksum is
		 * whole now and does not cover the MACs.
		 */
		if (echo) {
			memcpy(frame_in, frame_in + 6, 6);
			memcpy(frame_in + 6, n->src, 6);
			if (tx_frame(n, frame_in, (size_t)len, false))
				n->echoed++;
		}
	}
	if (n->rx_unkicked) {
		vq_kick(&n->rx);
		n->rx_unkicked = 0;
	}
	tx_flush(n);
}

/* Whether the frames that came through make a pass (see lossy=1 at the top). */
static bool net_good(const struct net *n, uint64_t count)
{
	if (n->bad || n->misordered)
		return false;
	return n->lossy ? n->got * 10 >= count * 9 : n->got == count && !n->lost;
}

static int role_send(struct net *n, uint64_t count, size_t size, bool echo, bool wait_ready)
{
	uint64_t end = virtio_now_us() + TIMEOUT_US, start;
	bool ready = !wait_ready;

	while (!ready) {
		rx_poll(n, false, &ready);
		if (virtio_now_us() > end)
			return probe_fail("no READY from the peer in %llu s",
			                  (unsigned long long)(TIMEOUT_US / 1000000));
		cpu_relax();
	}
	start = virtio_now_us();
	n->drain = echo;
	for (uint64_t i = 0; i < count; i++) {
		if (send_one(n, MAGIC_DATA, (uint32_t)i, size) < 0)
			return probe_fail("transmit ring stuck after %llu frames (status 0x%x)",
			                  (unsigned long long)i, virtio_status(&n->d));
		if (echo)
			rx_poll(n, false, &ready);
	}
	for (unsigned int i = 0; n->lossy && i < END_FRAMES; i++)
		if (send_one(n, MAGIC_END, (uint32_t)count, FRAME_MIN) < 0)
			return probe_fail("cannot send END (status 0x%x)", virtio_status(&n->d));
	tx_flush(n);
	end = virtio_now_us() + TIMEOUT_US;
	n->last_rx_us = virtio_now_us();
	while ((n->completed < n->sent || (echo && n->got < count)) && virtio_now_us() < end) {
		if (n->lossy && n->completed == n->sent &&
		    virtio_now_us() - n->last_rx_us > QUIET_US)
			break; /* the rest of the echoes were dropped */
		tx_reap(n);
		if (echo)
			rx_poll(n, false, &ready);
		cpu_relax();
	}
	printf("probe: net: sent %llu frames of %lu bytes in %llu us, %llu echoed back, %llu bad, "
	       "%llu out of order, %llu lost\n",
	       (unsigned long long)count, (unsigned long)size,
	       (unsigned long long)(virtio_now_us() - start), (unsigned long long)n->got,
	       (unsigned long long)n->bad, (unsigned long long)n->misordered,
	       (unsigned long long)n->lost);
	if (n->completed < n->sent)
		return probe_fail("%llu of %llu frames never completed",
		                  (unsigned long long)(n->sent - n->completed),
		                  (unsigned long long)n->sent);
	if (echo && !net_good(n, count))
		return probe_fail("echo: %llu of %llu back, %llu bad, %llu out of order",
		                  (unsigned long long)n->got, (unsigned long long)count,
		                  (unsigned long long)n->bad, (unsigned long long)n->misordered);
	if (echo && n->lossy)
		return probe_pass("sent %llu frames, %llu echoed back intact (%llu lost)",
		                  (unsigned long long)count, (unsigned long long)n->got,
		                  (unsigned long long)(count - n->got));
	return probe_pass("sent %llu frames%s", (unsigned long long)count,
	                  echo ? ", all echoed back intact" : "");
}

/*
 * A receiver announces itself until its first frame: READY every
 * READY_EVERY_US. Returns false when it cannot be sent.
 */
static bool ready_due(struct net *n, uint64_t now, uint64_t *next_ready)
{
	if (now < *next_ready)
		return true;
	if (send_one(n, MAGIC_READY, 0, FRAME_MIN) < 0)
		return false;
	*next_ready = now + READY_EVERY_US;
	tx_flush(n);
	return true;
}

static int role_recv(struct net *n, uint64_t count, bool echo)
{
	uint64_t end, next_ready = 0;
	bool ready = false;

	/*
	 * The time limit counts from the last frame, not from the start: on a
	 * busy host the sender's checksums alone can take longer than it.
	 */
	n->last_rx_us = virtio_now_us();
	while (n->got < count && !n->end_seen && virtio_now_us() - n->last_rx_us < TIMEOUT_US) {
		uint64_t now = virtio_now_us();

		if (!n->got && !ready_due(n, now, &next_ready))
			return probe_fail("cannot send READY (status 0x%x)", virtio_status(&n->d));
		rx_poll(n, echo, &ready);
		tx_reap(n);
		cpu_relax();
	}
	end = virtio_now_us() + TIMEOUT_US;
	while (n->completed < n->sent && virtio_now_us() < end)
		tx_reap(n);
	printf("probe: net: received %llu of %llu frames, %llu bad, %llu out of order, %llu lost, "
	       "%llu echoed\n",
	       (unsigned long long)n->got, (unsigned long long)count, (unsigned long long)n->bad,
	       (unsigned long long)n->misordered, (unsigned long long)n->lost,
	       (unsigned long long)n->echoed);
	if (!net_good(n, count))
		return probe_fail("received %llu of %llu frames, %llu bad, %llu out of order",
		                  (unsigned long long)n->got, (unsigned long long)count,
		                  (unsigned long long)n->bad, (unsigned long long)n->misordered);
	if (echo && n->echoed != n->got)
		return probe_fail("echoed %llu of %llu", (unsigned long long)n->echoed,
		                  (unsigned long long)n->got);
	if (n->lossy)
		return probe_pass("received %llu of %llu frames intact (%llu lost)%s",
		                  (unsigned long long)n->got, (unsigned long long)count,
		                  (unsigned long long)(count - n->got),
		                  echo ? " and echoed them" : "");
	return probe_pass("received %llu frames intact%s", (unsigned long long)count,
	                  echo ? " and echoed them" : "");
}

/* ---------------------------------------------------------------- hostile */

static uint8_t hostile_buf[256] __attribute__((aligned(64)));

/* Make one malformed transmit chain of case @c at descriptor 0. */
static const char *hostile_case(struct net *n, unsigned int c)
{
	struct net_hdr *h = (struct net_hdr *)hostile_buf;
	struct vring_desc *d = n->tx.desc;

	memset(hostile_buf, 0, sizeof(hostile_buf));
	build_frame(n, hostile_buf + NET_HDR, 100, MAGIC_DATA, 0, &(bool){false});
	*h = (struct net_hdr){0};
	switch (c) {
	case 0:
		d[0] = (struct vring_desc){(uintptr_t)hostile_buf, NET_HDR + 100,
		                           VRING_DESC_F_WRITE, 0};
		return "a device-writable buffer in a transmit chain";
	case 1:
		d[0] = (struct vring_desc){(uintptr_t)hostile_buf, NET_HDR - 2, 0, 0};
		return "a header cut short";
	case 2:
		h->gso_type = 1;
		d[0] = (struct vring_desc){(uintptr_t)hostile_buf, NET_HDR + 100, 0, 0};
		return "GSO, never offered";
	case 3:
		d[0] = (struct vring_desc){0xfff000000000ULL, NET_HDR + 100, 0, 0};
		return "a buffer outside guest RAM";
	case 4:
		d[0] = (struct vring_desc){(uintptr_t)hostile_buf, NET_HDR, VRING_DESC_F_NEXT, 0};
		return "a chain that loops on itself";
	default:
		h->flags = NET_HDR_F_NEEDS_CSUM;
		h->csum_start = 90;
		h->csum_offset = 20;
		d[0] = (struct vring_desc){(uintptr_t)hostile_buf, NET_HDR + 100, 0, 0};
		return "a checksum request past the frame's end";
	}
}

#define HOSTILE_CASES 6

static int role_hostile(struct net *n, size_t size)
{
	const char *why;

	for (unsigned int c = 0; c < HOSTILE_CASES; c++) {
		struct vring_used_elem e;
		const char *what = hostile_case(n, c);
		enum vq_wait w;

		vq_publish(&n->tx, 0);
		vq_notify(&n->tx);
		w = vq_wait(&n->d, &n->tx, &e, 2000000);
		if (w != VQ_NEEDS_RESET)
			return probe_fail("%s: %s, not DEVICE_NEEDS_RESET", what,
			                  w == VQ_USED ? "the device used it" : "nothing happened");
		printf("probe: net: %s: DEVICE_NEEDS_RESET\n", what);
		if (net_up(n, n->offload ? VIRTIO_FEATURE(NET_F_CSUM) : 0, &why) < 0)
			return probe_fail("%s: the device does not come back after a reset: %s",
			                  what, why);
		if (send_one(n, MAGIC_DATA, c, size) < 0)
			return probe_fail("%s: cannot send after the reset", what);
		tx_flush(n);
		w = VQ_TIMEOUT;
		for (uint64_t end = virtio_now_us() + 2000000; virtio_now_us() < end;) {
			tx_reap(n);
			if (n->completed == n->sent) {
				w = VQ_USED;
				break;
			}
		}
		if (w != VQ_USED)
			return probe_fail("%s: a good frame after the reset never completed", what);
	}
	return probe_pass("%u malformed transmit chains each reset the device; it sent again after "
	                  "each reset",
	                  HOSTILE_CASES);
}

/* ---------------------------------------------------------------- bench=1 */

#define BENCH_QUIET_US 2000000ULL /* only when the END frames were dropped too */

struct bench_target {
	uint8_t mac[6];
	uint8_t src_ip[4], dst_ip[4];
	uint16_t dport;
};

/* Parse dotted-quad @text into @ip; false if it is not one. */
static bool bench_parse_ip(const char *text, uint8_t ip[4])
{
	for (unsigned int i = 0; i < 4; i++) {
		unsigned int v = 0, digits = 0;

		while (*text >= '0' && *text <= '9' && digits < 4) {
			v = v * 10 + (unsigned int)(*text++ - '0');
			digits++;
		}
		if (!digits || v > 255 || *text != (i == 3 ? '\0' : '.'))
			return false;
		ip[i] = (uint8_t)v;
		text++;
	}
	return true;
}

/* A bench frame of @len bytes to @t into @f: seq at PAYLOAD_OFF + 4, UDP checksum 0 (none). */
static void bench_build(const struct net *n, uint8_t *f, size_t len, const struct bench_target *t)
{
	memset(f, 0, len);
	memcpy(f, t->mac, 6);
	memcpy(f + 6, n->src, 6);
	put16(f + 12, 0x0800);
	f[14] = 0x45;
	put16(f + 16, (uint16_t)(len - 14));
	f[22] = 64;
	f[23] = 17;
	memcpy(f + 26, t->src_ip, 4);
	memcpy(f + 30, t->dst_ip, 4);
	put16(f + 24, (uint16_t)~csum_fold(csum_add(0, f + 14, 20)));
	put16(f + UDP_OFF, 4000);
	put16(f + UDP_OFF + 2, t->dport);
	put16(f + UDP_OFF + 4, (uint16_t)(len - UDP_OFF));
	memcpy(f + PAYLOAD_OFF, &(uint32_t){MAGIC_DATA}, 4);
}

/* The magic of bench frame @f (0: not one) and its *@seq. */
static uint32_t bench_check(const uint8_t *f, size_t len, uint32_t *seq)
{
	uint32_t magic;

	if (len < PAYLOAD_OFF + 8 || get16(f + 12) != 0x0800 || f[23] != 17)
		return 0;
	memcpy(&magic, f + PAYLOAD_OFF, 4);
	memcpy(seq, f + PAYLOAD_OFF + 4, 4);
	return magic == MAGIC_DATA || magic == MAGIC_READY || magic == MAGIC_END ? magic : 0;
}

static void bench_print(const char *role, size_t size, uint64_t frames, uint64_t lost, uint64_t us)
{
	uint64_t pps = us ? frames * 1000000 / us : 0;

	printf("probe: bench: net role=%s size=%lu frames=%llu lost=%llu us=%llu pps=%llu "
	       "mbps=%llu\n",
	       role, (unsigned long)size, (unsigned long long)frames, (unsigned long long)lost,
	       (unsigned long long)us, (unsigned long long)pps,
	       (unsigned long long)(us ? frames * size * 8 / us : 0));
}

static int bench_send(struct net *n, uint64_t count, size_t size, uint64_t seconds,
                      const char *dst, uint64_t dport, const char *src)
{
	struct bench_target t = {.src_ip = {10, 0, 0, 1}, .dst_ip = {10, 0, 0, 2},
	                         .dport = (uint16_t)dport};
	uint64_t end = virtio_now_us() + TIMEOUT_US, start, stop, i;

	if (dst) {
		if (!bench_parse_ip(dst, t.dst_ip) || !bench_parse_ip(src, t.src_ip))
			return probe_fail("dst=%s src=%s: give A.B.C.D", dst, src);
		t.mac[0] = 0x52;
		t.mac[1] = 0x55;
		memcpy(t.mac + 2, t.dst_ip, 4);
	} else {
		/* The receiver's MAC, from its READY: unicast, as between real VMs. */
		bool ready = false;

		while (!ready) {
			long len = rx_frame(n);
			uint32_t seq;

			if (len > 0 && bench_check(frame_in, (size_t)len, &seq) == MAGIC_READY) {
				memcpy(t.mac, frame_in + 6, 6);
				ready = true;
			}
			if (n->rx_unkicked) {
				vq_kick(&n->rx);
				n->rx_unkicked = 0;
			}
			if (virtio_now_us() > end)
				return probe_fail("no READY from the peer in %llu s",
				                  (unsigned long long)(TIMEOUT_US / 1000000));
		}
	}
	bench_build(n, frame_out, size, &t);
	start = virtio_now_us();
	stop = start + seconds * 1000000;
	for (i = 0; i < count && (i % 64 || virtio_now_us() < stop); i++) {
		memcpy(frame_out + PAYLOAD_OFF + 4, &(uint32_t){(uint32_t)i}, 4);
		if (!tx_frame(n, frame_out, size, false))
			return probe_fail("transmit ring stuck after %llu frames (status 0x%x)",
			                  (unsigned long long)i, virtio_status(&n->d));
	}
	tx_flush(n);
	end = virtio_now_us() + TIMEOUT_US;
	while (n->completed < n->sent && virtio_now_us() < end)
		tx_reap(n);
	bench_print("send", size, i, 0, virtio_now_us() - start);
	/* Whether the device (full ring, waiting) or the guest itself set the pace. */
	printf("probe: bench: net role=send ring full %llu times, %llu us waiting for room\n",
	       (unsigned long long)n->full, (unsigned long long)n->full_us);
	/* The host's sink ends on its own, after a quiet while. */
	bench_build(n, frame_out, FRAME_MIN, &t);
	memcpy(frame_out + PAYLOAD_OFF, &(uint32_t){MAGIC_END}, 4);
	for (unsigned int k = 0; !dst && k < END_FRAMES; k++)
		if (!tx_frame(n, frame_out, FRAME_MIN, false))
			return probe_fail("cannot send END (status 0x%x)", virtio_status(&n->d));
	tx_flush(n);
	end = virtio_now_us() + TIMEOUT_US;
	while (n->completed < n->sent && virtio_now_us() < end)
		tx_reap(n);
	if (n->completed < n->sent)
		return probe_fail("%llu frames never completed",
		                  (unsigned long long)(n->sent - n->completed));
	return probe_pass("bench: sent %llu frames of %lu bytes", (unsigned long long)i,
	                  (unsigned long)size);
}

static int bench_recv(struct net *n, uint64_t count)
{
	uint64_t end = virtio_now_us() + TIMEOUT_US, next_ready = 0, first = 0, last = 0;
	uint64_t bytes = 0;
	size_t size = 0;

	while (n->got < count && !n->end_seen) {
		uint64_t now = virtio_now_us();
		long len;

		if (!n->got && !ready_due(n, now, &next_ready))
			return probe_fail("cannot send READY (status 0x%x)", virtio_status(&n->d));
		if (n->got ? now - last > BENCH_QUIET_US : now > end)
			break;
		while ((len = rx_frame(n)) != 0) {
			uint32_t seq, magic;

			if (len < 0)
				continue;
			magic = bench_check(frame_in, (size_t)len, &seq);
			if (magic == MAGIC_END)
				n->end_seen = true;
			if (magic != MAGIC_DATA)
				continue;
			last = virtio_now_us();
			if (!n->got++)
				first = last;
			if (seq < n->next_seq) {
				n->misordered++;
			} else {
				n->lost += seq - n->next_seq;
				n->next_seq = seq + 1;
			}
			bytes += (uint64_t)len;
			size = (size_t)len;
		}
		if (n->rx_unkicked) {
			vq_kick(&n->rx);
			n->rx_unkicked = 0;
		}
		tx_reap(n);
	}
	if (!n->got)
		return probe_fail("bench: no data in %llu s",
		                  (unsigned long long)(TIMEOUT_US / 1000000));
	/* From the first frame's arrival to the last's: n->got - 1 intervals. */
	bench_print("recv", size, n->got - 1, n->lost, last - first);
	return probe_pass("bench: received %llu frames (%llu bytes), %llu lost, %llu out of order",
	                  (unsigned long long)n->got, (unsigned long long)bytes,
	                  (unsigned long long)n->lost, (unsigned long long)n->misordered);
}

int test_net(void)
{
	static struct net n;
	uint64_t nic = 0, count = 1000, size = 1000, csum = 1, spoof = 0, echo = 0, gcsum = 0;
	uint64_t wait_ready = 1, linger = 0, lossy = 0;
	uint64_t bench = 0, seconds = 2, dport = 5001;
	int r;
	const char *role = param_get("role"), *why;
	uint64_t end;

	param_u64("nic", &nic);
	param_u64("count", &count);
	param_u64("size", &size);
	param_u64("csum", &csum);
	param_u64("spoof", &spoof);
	param_u64("echo", &echo);
	param_u64("gcsum", &gcsum);
	param_u64("ready", &wait_ready);
	param_u64("linger", &linger);
	param_u64("lossy", &lossy);
	param_u64("bench", &bench);
	param_u64("seconds", &seconds);
	param_u64("dport", &dport);
	if (bench && !param_get("count"))
		count = ~0ULL;
	if (!role)
		role = "send";
	if (size < FRAME_MIN || size > FRAME_MAX)
		return probe_fail("size=%lu: give 60 to 1514", (unsigned long)size);
	if (virtio_find(VIRTIO_ID_NET, (unsigned int)nic, &n.d, &why) < 0)
		return probe_fail("virtio-net %lu: %s", (unsigned long)nic, why);
	n.offload = csum;
	n.lossy = lossy;
	if (net_up(&n,
	           (csum ? VIRTIO_FEATURE(NET_F_CSUM) : 0) |
	               (gcsum ? VIRTIO_FEATURE(NET_F_GUEST_CSUM) : 0),
	           &why) < 0)
		return probe_fail("virtio-net %lu: %s", (unsigned long)nic, why);
	if (csum && !(n.d.acked & VIRTIO_FEATURE(NET_F_CSUM)))
		return probe_fail("the device does not offer VIRTIO_NET_F_CSUM");
	for (unsigned int i = 0; i < 6; i++)
		n.mac[i] = *(volatile uint8_t *)(uintptr_t)(n.d.device + i);
	memcpy(n.src, n.mac, 6);
	if (spoof)
		memcpy(n.src, (uint8_t[]){0x02, 0x99, 0x99, 0x99, 0x99, 0x99}, 6);
	end = virtio_now_us() + 1000000;
	while (!(cfg16(&n, 6) & NET_S_LINK_UP) && virtio_now_us() < end)
		cpu_relax();
	printf("probe: net: %02x:%02x:%02x:%02x:%02x:%02x, MTU %u, link %s, role %s\n", n.mac[0],
	       n.mac[1], n.mac[2], n.mac[3], n.mac[4], n.mac[5], cfg16(&n, 10),
	       cfg16(&n, 6) & NET_S_LINK_UP ? "up" : "down", role);
	if (!strcmp(role, "hostile"))
		return role_hostile(&n, size);
	if (!(cfg16(&n, 6) & NET_S_LINK_UP))
		return probe_fail("the link is down");
	if (bench && !strcmp(role, "send"))
		r = bench_send(&n, count, size, seconds, param_get("dst"), dport,
		               param_get("src") ? param_get("src") : "10.0.2.15");
	else if (bench && !strcmp(role, "recv"))
		r = bench_recv(&n, count);
	else if (!strcmp(role, "send"))
		r = role_send(&n, count, size, echo, wait_ready);
	else if (!strcmp(role, "recv"))
		r = role_recv(&n, count, echo);
	else
		return probe_fail("role=%s: give send, recv or hostile", role);
	for (end = virtio_now_us() + linger * 1000; virtio_now_us() < end;)
		cpu_relax();
	return r;
}
