// SPDX-License-Identifier: MIT
/*
 * switch_peer: plays VM adapters on a nestvm switch for
 * tests/integration/switch.sh. It speaks netport.h by itself (hello, then
 * an 8-byte header and a frame per message), so that the switch is tested
 * against the documented protocol, not against nestvm's own client code.
 *
 *   switch_peer forward PORTS.SOCK      3 adapters: flooding, learning, no hairpin
 *   switch_peer guards PORTS.SOCK N     N spoofed frames, 5 DHCP offers, 5 router
 *                                       advertisements, 5 malformed messages from a
 *                                       guarded adapter: none reaches the other port
 *   switch_peer stuck PORTS.SOCK N      a peer that never reads, N broadcasts: the
 *                                       switch keeps forwarding to the others
 *   switch_peer dhcp PORTS.SOCK MAC     DISCOVER/OFFER/REQUEST/ACK; prints the address
 *   switch_peer syn PORTS.SOCK MAC IP GW HOSTPORT GUESTPORT
 *                                       a fake guest at IP behind NAT: the host connects
 *                                       to 127.0.0.1:HOSTPORT, the SYN must reach IP:GUESTPORT,
 *                                       the tool answers it, and data flows host -> guest
 *   switch_peer dns PORTS.SOCK MAC IP GW DNS NAME
 *                                       a fake guest's DNS question to the NAT's DNS address
 *   switch_peer dns-server ADDR SECONDS a DNS server on 127.0.0.1:53 answering ADDR
 *   switch_peer api CONTROL.SOCK LINE   one request to a switch's control socket; prints the reply
 *   switch_peer pipeline CONTROL.SOCK LINE N MS
 *                                       N copies of a request in one go to any control
 *                                       socket (a VM monitor's too), reading nothing
 *                                       until MS ms after the last: prints how many
 *                                       replies came and how many were ok
 *   switch_peer hostile PORTS.SOCK      silent adapters, bad hellos: refused, the switch lives on
 *   switch_peer lo-up                   bring up lo (in a fresh network namespace)
 *   switch_peer bench PORTS.SOCK SECONDS SIZE
 *                                       frames/s and Gbit/s from one adapter to another
 *   switch_peer hold PORTS.SOCK VM MAC SECONDS
 *                                       an adapter that stays connected (until killed)
 *   switch_peer outbound PORTS.SOCK MAC IP GW
 *                                       a fake guest at IP connects out through NAT to
 *                                       GW (the host's loopback), where the tool listens
 *   switch_peer runlock LOCKFILE MS     hold a switch's run lock for MS ms without its
 *                                       ports socket: a switch another monitor is starting
 *   switch_peer arp PORTS.SOCK MAC IP TARGET
 *                                       ARP for TARGET (the host on an internal switch)
 *   switch_peer download PORTS.SOCK MAC IP GW HOSTPORT GUESTPORT SECONDS
 *                                       as syn, then the host writes for SECONDS and the
 *                                       fake guest acknowledges every segment: bytes and
 *                                       frames/s received through the NAT (a benchmark)
 *
 * Prints "ok: ..." / "FAIL: ..." lines; exits 0 when all passed.
 */
#define _GNU_SOURCE /* F_OFD_SETLK */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define HDR 8
#define MAXMSG (HDR + 65535 + 18)

static int failures;

#define CHECK(cond, ...)                                                                           \
	do {                                                                                       \
		if (cond) {                                                                        \
			printf("ok: ");                                                            \
		} else {                                                                           \
			printf("FAIL: ");                                                          \
			failures++;                                                                \
		}                                                                                  \
		printf(__VA_ARGS__);                                                               \
		printf("\n");                                                                      \
		fflush(stdout);                                                                    \
	} while (0)

static void die(const char *what)
{
	fprintf(stderr, "switch_peer: %s: %s\n", what, strerror(errno));
	exit(2);
}

static void mac_parse(const char *s, uint8_t m[6])
{
	unsigned int b[6];

	if (sscanf(s, "%x:%x:%x:%x:%x:%x", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]) != 6) {
		fprintf(stderr, "switch_peer: bad MAC %s\n", s);
		exit(2);
	}
	for (int i = 0; i < 6; i++)
		m[i] = (uint8_t)b[i];
}

static uint32_t ip_parse(const char *s)
{
	struct in_addr a;

	if (inet_pton(AF_INET, s, &a) != 1) {
		fprintf(stderr, "switch_peer: bad address %s\n", s);
		exit(2);
	}
	return ntohl(a.s_addr);
}

/* Connect an adapter; returns the socket (the switch's port number printed). */
static int adapter(const char *path, const char *vm, const uint8_t mac[6], int spoofing)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char hello[256], reply[256];
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	ssize_t n;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		die("connect");
	n = snprintf(hello, sizeof(hello),
	             "{\"netport\":1,\"vm\":\"%s\",\"adapter\":0,\"mac\":"
	             "\"%02x:%02x:%02x:%02x:%02x:%02x\",\"mac_spoofing\":%s}",
	             vm, mac[0], mac[1], mac[2], mac[3], mac[4], mac[5], spoofing ? "true" : "false");
	if (send(fd, hello, (size_t)n, 0) != n)
		die("send hello");
	n = recv(fd, reply, sizeof(reply) - 1, 0);
	if (n <= 0)
		die("hello reply");
	reply[n] = 0;
	if (!strstr(reply, "\"ok\"")) {
		fprintf(stderr, "switch_peer: refused: %s\n", reply);
		exit(2);
	}
	return fd;
}

static void send_frame(int fd, const uint8_t *frame, size_t len)
{
	uint8_t msg[MAXMSG] = {0};

	memcpy(msg + HDR, frame, len);
	if (send(fd, msg, HDR + len, 0) != (ssize_t)(HDR + len))
		die("send frame");
}

/* Wait up to @ms for a frame; its length (without the header) or -1. */
static int recv_frame(int fd, uint8_t *frame, int ms)
{
	uint8_t msg[MAXMSG];
	struct pollfd p = {.fd = fd, .events = POLLIN};
	ssize_t n;

	if (poll(&p, 1, ms) <= 0)
		return -1;
	n = recv(fd, msg, sizeof(msg), MSG_DONTWAIT);
	if (n < HDR)
		return -1;
	memcpy(frame, msg + HDR, (size_t)n - HDR);
	return (int)n - HDR;
}

/* Frames with this ethertype are the tool's own test frames (IEEE's local experimental). */
#define ETH_TEST 0x88b5

static size_t eth(uint8_t *f, const uint8_t *dst, const uint8_t *src, uint16_t type)
{
	memcpy(f, dst, 6);
	memcpy(f + 6, src, 6);
	f[12] = (uint8_t)(type >> 8);
	f[13] = (uint8_t)type;
	return 14;
}

static size_t test_frame(uint8_t *f, const uint8_t *dst, const uint8_t *src, int tag)
{
	size_t n = eth(f, dst, src, ETH_TEST);

	memset(f + n, 0, 46);
	f[n] = (uint8_t)tag;
	return n + 46;
}

/* Drain @fd; return how many test frames with @tag arrived within @ms. */
static int count_tag(int fd, int tag, int ms)
{
	uint8_t f[MAXMSG];
	int n, got = 0;

	while ((n = recv_frame(fd, f, ms)) >= 0)
		if (n >= 15 && f[12] == (ETH_TEST >> 8) && f[13] == (ETH_TEST & 0xff) && f[14] == tag)
			got++;
	return got;
}

/*
 * A counter of the port of VM @vm from the switch's status (the control
 * socket next to @ports_path): the number after the first "@key": in the
 * "counters" after "vm":"@vm" in the compact JSON reply. -1 if not found.
 */
static long long status_counter(const char *ports_path, const char *vm, const char *key)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	static char buf[1 << 20];
	char pat[128], *p;
	const char *slash = strrchr(ports_path, '/');
	size_t got = 0;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ssize_t n;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%.*s/control.sock",
	         (int)(slash ? slash - ports_path : 1), slash ? ports_path : ".");
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		die("connect to control.sock");
	if (send(fd, "{\"cmd\":\"status\"}\n", 17, 0) != 17)
		die("send status");
	while (got < sizeof(buf) - 1 && (n = recv(fd, buf + got, sizeof(buf) - 1 - got, 0)) > 0) {
		got += (size_t)n;
		if (buf[got - 1] == '\n')
			break;
	}
	close(fd);
	buf[got] = 0;
	snprintf(pat, sizeof(pat), "\"vm\":\"%s\"", vm);
	p = strstr(buf, pat);
	p = p ? strstr(p, "\"counters\":") : NULL; /* not the hello's "dhcp_guard":true */
	snprintf(pat, sizeof(pat), "\"%s\":", key);
	p = p ? strstr(p, pat) : NULL;
	return p ? atoll(p + strlen(pat)) : -1;
}

static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
static const uint8_t mac_a[6] = {0x02, 0, 0, 0, 0, 0xa};
static const uint8_t mac_b[6] = {0x02, 0, 0, 0, 0, 0xb};
static const uint8_t mac_c[6] = {0x02, 0, 0, 0, 0, 0xc};

static int do_forward(const char *path)
{
	int a = adapter(path, "vma", mac_a, 0), b = adapter(path, "vmb", mac_b, 0),
	    c = adapter(path, "vmc", mac_c, 0);
	uint8_t f[128], unknown[6] = {0x02, 0, 0, 0, 0, 0xee};
	size_t n;
	int ga, gb, gc;

	n = test_frame(f, bcast, mac_a, 1);
	send_frame(a, f, n);
	gb = count_tag(b, 1, 300);
	gc = count_tag(c, 1, 100);
	ga = count_tag(a, 1, 100);
	CHECK(gb == 1 && gc == 1 && ga == 0, "broadcast from A reaches B and C, not A (%d %d %d)", ga,
	      gb, gc);
	n = test_frame(f, mac_a, mac_b, 2);
	send_frame(b, f, n);
	ga = count_tag(a, 2, 300);
	gc = count_tag(c, 2, 100);
	CHECK(ga == 1 && gc == 0, "B to A (A learned): only A gets it (A %d, C %d)", ga, gc);
	n = test_frame(f, mac_b, mac_a, 3);
	send_frame(a, f, n);
	gb = count_tag(b, 3, 300);
	gc = count_tag(c, 3, 100);
	CHECK(gb == 1 && gc == 0, "A to B (B learned): only B gets it (B %d, C %d)", gb, gc);
	n = test_frame(f, unknown, mac_c, 4);
	send_frame(c, f, n);
	ga = count_tag(a, 4, 300);
	gb = count_tag(b, 4, 100);
	gc = count_tag(c, 4, 100);
	CHECK(ga == 1 && gb == 1 && gc == 0, "C to an unknown MAC floods to A and B, not C (%d %d %d)",
	      ga, gb, gc);
	/* 1000 frames A -> B, all arrive, in order. */
	{
		int got = 0, order = 1;
		uint8_t r[MAXMSG];

		for (int i = 0; i < 1000; i++) {
			n = test_frame(f, mac_b, mac_a, 5);
			f[15] = (uint8_t)(i >> 8);
			f[16] = (uint8_t)i;
			send_frame(a, f, n);
			if (i % 100 == 99)
				while (recv_frame(b, r, 0) >= 0) {
					order &= r[15] == (uint8_t)(got >> 8) && r[16] == (uint8_t)got;
					got++;
				}
		}
		while (recv_frame(b, r, 300) >= 0) {
			order &= r[15] == (uint8_t)(got >> 8) && r[16] == (uint8_t)got;
			got++;
		}
		CHECK(got == 1000 && order, "1000 frames A to B: %d arrived, in order: %s", got,
		      order ? "yes" : "no");
	}
	close(a);
	close(b);
	close(c);
	return failures ? 1 : 0;
}

static uint16_t csum(const void *data, size_t len, uint32_t sum)
{
	const uint8_t *p = data;

	for (; len > 1; p += 2, len -= 2)
		sum += (uint32_t)p[0] << 8 | p[1];
	if (len)
		sum += (uint32_t)p[0] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* An IPv4 header at @ip for @plen payload bytes of @proto. */
static void ipv4(uint8_t *ip, uint8_t proto, uint32_t src, uint32_t dst, size_t plen)
{
	uint16_t c;

	memset(ip, 0, 20);
	ip[0] = 0x45;
	ip[2] = (uint8_t)((20 + plen) >> 8);
	ip[3] = (uint8_t)(20 + plen);
	ip[8] = 64;
	ip[9] = proto;
	for (int i = 0; i < 4; i++) {
		ip[12 + i] = (uint8_t)(src >> (24 - 8 * i));
		ip[16 + i] = (uint8_t)(dst >> (24 - 8 * i));
	}
	c = csum(ip, 20, 0);
	ip[10] = (uint8_t)(c >> 8);
	ip[11] = (uint8_t)c;
}

static int do_guards(const char *path, int count)
{
	int a = adapter(path, "guarded", mac_a, 0), b = adapter(path, "watcher", mac_b, 0);
	uint8_t f[512], spoof[6] = {0x02, 0, 0, 0, 0, 0};
	int got, tag = 7;
	size_t n;

	for (int i = 0; i < count; i++) {
		spoof[3] = (uint8_t)(i >> 8);
		spoof[4] = (uint8_t)i;
		spoof[5] = 0x55;
		n = test_frame(f, bcast, spoof, tag);
		send_frame(a, f, n);
		if (i % 200 == 199)
			(void)count_tag(b, tag, 0); /* keep B's socket drained */
	}
	got = count_tag(b, tag, 500);
	CHECK(got == 0, "%d spoofed frames from a guarded adapter: %d reached the other port", count,
	      got);
	/* DHCP offers (UDP 67 -> 68) and router advertisements from A's own MAC. */
	for (int i = 0; i < 5; i++) {
		n = eth(f, bcast, mac_a, 0x0800);
		ipv4(f + n, 17, 0x0a000001, 0xffffffff, 8 + 240);
		memset(f + n + 20, 0, 8 + 240);
		f[n + 20 + 1] = 67;
		f[n + 20 + 3] = 68;
		f[n + 20 + 4] = (uint8_t)((8 + 240) >> 8);
		f[n + 20 + 5] = (uint8_t)(8 + 240);
		send_frame(a, f, n + 20 + 8 + 240);
	}
	for (int i = 0; i < 5; i++) {
		n = eth(f, (const uint8_t[]){0x33, 0x33, 0, 0, 0, 1}, mac_a, 0x86dd);
		memset(f + n, 0, 40 + 16);
		f[n] = 0x60;
		f[n + 5] = 16; /* payload length */
		f[n + 6] = 58; /* ICMPv6 */
		f[n + 7] = 255;
		f[n + 40] = 134; /* router advertisement */
		send_frame(a, f, n + 40 + 16);
	}
	/* Malformed: a header alone, a bad reserved field, an IPv4 header that lies, a group source. */
	{
		uint8_t msg[128] = {0};

		send(a, msg, HDR, 0);
		msg[1] = 1;
		test_frame(msg + HDR, bcast, mac_a, tag);
		send(a, msg, HDR + 60, 0);
		n = eth(f, bcast, mac_a, 0x0800);
		ipv4(f + n, 17, 1, 2, 1000); /* says 1020 bytes, has 40 */
		send_frame(a, f, n + 40);
		n = test_frame(f, bcast, bcast, tag);
		send_frame(a, f, n);
		send(a, msg, 3, 0);
	}
	got = 0;
	{
		uint8_t r[MAXMSG];

		while (recv_frame(b, r, 500) >= 0)
			got++;
	}
	CHECK(got == 0, "DHCP offers, router advertisements, malformed messages: %d reached the "
	                "other port",
	      got);
	/* And the guarded adapter's own frames still pass. */
	n = test_frame(f, bcast, mac_a, 9);
	send_frame(a, f, n);
	got = count_tag(b, 9, 500);
	CHECK(got == 1, "a frame from the adapter's own MAC passes (%d)", got);
	{
		long long sp = status_counter(path, "guarded", "spoofed_mac"),
		          dh = status_counter(path, "guarded", "dhcp_guard"),
		          ro = status_counter(path, "guarded", "router_guard"),
		          ma = status_counter(path, "guarded", "malformed"),
		          in = status_counter(path, "guarded", "frames_in");

		CHECK(sp == count, "the port counted %lld spoofed frames of %d", sp, count);
		CHECK(dh == 5 && ro == 5, "the port counted %lld DHCP guard and %lld router guard "
		                          "drops of 5 each",
		      dh, ro);
		CHECK(ma == 5, "the port counted %lld malformed messages of 5", ma);
		CHECK(in == 1, "the port counted %lld frame in (its one good frame)", in);
	}
	close(a);
	close(b);
	return failures ? 1 : 0;
}

static int do_stuck(const char *path, int count)
{
	int stuck = adapter(path, "stuck", mac_c, 0), a = adapter(path, "sender", mac_a, 0),
	    b = adapter(path, "reader", mac_b, 0);
	uint8_t f[1600];
	int got = 0;
	size_t n;

	for (int i = 0; i < count; i++) {
		uint8_t r[MAXMSG];

		n = test_frame(f, bcast, mac_a, 11);
		memset(f + 60, 0xab, 1400);
		send_frame(a, f, n + 1400);
		/* Paced by the reader, so that only the stuck peer's buffer fills. */
		got += recv_frame(b, r, 1000) >= 0;
	}
	got += count_tag(b, 11, 300);
	CHECK(got == count, "%d broadcasts while a peer never reads: the reader got %d", count, got);
	{
		long long cs = status_counter(path, "stuck", "congested"),
		          cr = status_counter(path, "reader", "congested");

		CHECK(cs > 0 && cr == 0, "frames the stuck peer could not take are counted on its port "
		                         "(%lld), none on the reader's (%lld)",
		      cs, cr);
	}
	n = test_frame(f, mac_b, mac_a, 12);
	send_frame(a, f, n);
	CHECK(count_tag(b, 12, 500) == 1, "the switch still forwards unicast afterwards");
	close(stuck);
	close(a);
	close(b);
	return failures ? 1 : 0;
}

/* A DHCP client message of @type into @f; its length. */
static size_t dhcp_msg(uint8_t *f, const uint8_t mac[6], int type, uint32_t xid, uint32_t req,
                       uint32_t server)
{
	size_t n = eth(f, bcast, mac, 0x0800), blen = 300;
	uint8_t *u = f + n + 20, *b = u + 8, *o;
	uint16_t c;
	uint32_t sum = 0;

	memset(u, 0, 8 + blen);
	b[0] = 1;
	b[1] = 1;
	b[2] = 6;
	b[4] = (uint8_t)(xid >> 24);
	b[5] = (uint8_t)(xid >> 16);
	b[6] = (uint8_t)(xid >> 8);
	b[7] = (uint8_t)xid;
	memcpy(b + 28, mac, 6);
	b[236] = 99;
	b[237] = 130;
	b[238] = 83;
	b[239] = 99;
	o = b + 240;
	*o++ = 53;
	*o++ = 1;
	*o++ = (uint8_t)type;
	if (req) {
		*o++ = 50;
		*o++ = 4;
		for (int i = 0; i < 4; i++)
			*o++ = (uint8_t)(req >> (24 - 8 * i));
	}
	if (server) {
		*o++ = 54;
		*o++ = 4;
		for (int i = 0; i < 4; i++)
			*o++ = (uint8_t)(server >> (24 - 8 * i));
	}
	*o++ = 255;
	u[1] = 68;
	u[3] = 67;
	u[4] = (uint8_t)((8 + blen) >> 8);
	u[5] = (uint8_t)(8 + blen);
	ipv4(f + n, 17, 0, 0xffffffff, 8 + blen);
	/* UDP checksum over the pseudo-header. */
	sum = 0xffff + 0xffff + 17 + 8 + (uint32_t)blen;
	c = csum(u, 8 + blen, sum);
	u[6] = (uint8_t)(c >> 8);
	u[7] = (uint8_t)c;
	return n + 20 + 8 + blen;
}

/* Wait for a DHCP reply of @type to @xid; its yiaddr and server id. */
static int dhcp_wait(int fd, int type, uint32_t xid, uint32_t *yiaddr, uint32_t *server)
{
	uint8_t f[MAXMSG];
	int n;

	while ((n = recv_frame(fd, f, 2000)) >= 0) {
		uint8_t *b = f + 14 + 20 + 8;
		int t = 0;

		if (n < 14 + 20 + 8 + 240 || f[23] != 17 || f[14 + 20 + 1] != 67)
			continue;
		if (((uint32_t)b[4] << 24 | (uint32_t)b[5] << 16 | (uint32_t)b[6] << 8 | b[7]) != xid)
			continue;
		for (int i = 240; i + 2 < n - 42 && b[i] != 255; i += b[i] ? 2 + b[i + 1] : 1) {
			if (b[i] == 53)
				t = b[i + 2];
			if (b[i] == 54)
				*server = (uint32_t)b[i + 2] << 24 | (uint32_t)b[i + 3] << 16 |
				          (uint32_t)b[i + 4] << 8 | b[i + 5];
		}
		*yiaddr = (uint32_t)b[16] << 24 | (uint32_t)b[17] << 16 | (uint32_t)b[18] << 8 | b[19];
		if (t == type)
			return 0;
	}
	return -1;
}

static int do_dhcp(const char *path, const char *mac_s)
{
	uint8_t mac[6], f[600];
	uint32_t offer = 0, ack = 0, server = 0, xid = (uint32_t)time(NULL);
	char vm[32], ip[INET_ADDRSTRLEN];
	struct in_addr in;
	int fd;

	mac_parse(mac_s, mac);
	snprintf(vm, sizeof(vm), "dhcp-%02x%02x", mac[4], mac[5]);
	fd = adapter(path, vm, mac, 0);
	send_frame(fd, f, dhcp_msg(f, mac, 1, xid, 0, 0));
	CHECK(dhcp_wait(fd, 2, xid, &offer, &server) == 0 && offer, "DISCOVER -> OFFER");
	send_frame(fd, f, dhcp_msg(f, mac, 3, xid, offer, server));
	CHECK(dhcp_wait(fd, 5, xid, &ack, &server) == 0 && ack == offer, "REQUEST -> ACK");
	/* A REQUEST for another address is refused (NAK). */
	send_frame(fd, f, dhcp_msg(f, mac, 3, xid + 1, offer ^ 1, server));
	CHECK(dhcp_wait(fd, 6, xid + 1, &ack, &server) == 0, "REQUEST for another address -> NAK");
	in.s_addr = htonl(offer);
	inet_ntop(AF_INET, &in, ip, sizeof(ip));
	printf("address %s\n", ip);
	close(fd);
	return failures ? 1 : 0;
}

/* Answer ARP requests for @ip; returns 1 if the frame was one. */
static int arp_answer(int fd, const uint8_t *f, int n, const uint8_t mac[6], uint32_t ip)
{
	uint8_t r[64];
	size_t k;

	if (n < 42 || f[12] != 0x08 || f[13] != 0x06 || f[21] != 1)
		return 0;
	if (((uint32_t)f[38] << 24 | (uint32_t)f[39] << 16 | (uint32_t)f[40] << 8 | f[41]) != ip)
		return 1;
	k = eth(r, f + 6, mac, 0x0806);
	memcpy(r + k, f + 14, 8);
	r[k + 7] = 2; /* reply */
	memcpy(r + k + 8, mac, 6);
	memcpy(r + k + 14, f + 38, 4);
	memcpy(r + k + 18, f + 22, 10);
	memset(r + k + 28, 0, 60 - k - 28);
	send_frame(fd, r, 60);
	return 1;
}

static size_t arp_request(uint8_t *f, const uint8_t mac[6], uint32_t ip, uint32_t target)
{
	size_t k = eth(f, bcast, mac, 0x0806);

	memcpy(f + k, (const uint8_t[]){0, 1, 8, 0, 6, 4, 0, 1}, 8);
	memcpy(f + k + 8, mac, 6);
	for (int i = 0; i < 4; i++) {
		f[k + 14 + i] = (uint8_t)(ip >> (24 - 8 * i));
		f[k + 24 + i] = (uint8_t)(target >> (24 - 8 * i));
	}
	memset(f + k + 18, 0, 6);
	memset(f + k + 28, 0, 60 - k - 28);
	return 60;
}

static int do_arp(const char *path, const char *mac_s, const char *ip_s, const char *target_s)
{
	uint8_t mac[6], f[MAXMSG];
	uint32_t ip = ip_parse(ip_s), target = ip_parse(target_s);
	int fd, n, found = 0;

	mac_parse(mac_s, mac);
	fd = adapter(path, "arp", mac, 0);
	for (int tries = 0; tries < 3 && !found; tries++) {
		send_frame(fd, f, arp_request(f, mac, ip, target));
		while (!found && (n = recv_frame(fd, f, 1000)) >= 0) {
			if (n >= 42 && f[12] == 0x08 && f[13] == 0x06 && f[21] == 2 &&
			    !memcmp(f + 28, (uint8_t[]){(uint8_t)(target >> 24), (uint8_t)(target >> 16),
			                                (uint8_t)(target >> 8), (uint8_t)target},
			            4))
				found = 1;
			else
				arp_answer(fd, f, n, mac, ip);
		}
	}
	CHECK(found, "ARP for %s answered through the switch (%02x:%02x:%02x:%02x:%02x:%02x)",
	      target_s, f[22], f[23], f[24], f[25], f[26], f[27]);
	close(fd);
	return failures ? 1 : 0;
}

/* A TCP segment from @src:sport to @dst:dport into @f (after Ethernet); the frame's length. */
static size_t tcp_seg_data(uint8_t *f, const uint8_t *dmac, const uint8_t *smac, uint32_t src,
                           uint32_t dst, uint16_t sport, uint16_t dport, uint32_t seq,
                           uint32_t ack, uint8_t flags, const char *data)
{
	size_t dlen = data ? strlen(data) : 0;
	size_t n = eth(f, dmac, smac, 0x0800);
	uint8_t *t = f + n + 20;
	uint32_t sum = 0;
	uint16_t c;

	memset(t, 0, 20);
	t[0] = (uint8_t)(sport >> 8);
	t[1] = (uint8_t)sport;
	t[2] = (uint8_t)(dport >> 8);
	t[3] = (uint8_t)dport;
	for (int i = 0; i < 4; i++) {
		t[4 + i] = (uint8_t)(seq >> (24 - 8 * i));
		t[8 + i] = (uint8_t)(ack >> (24 - 8 * i));
	}
	t[12] = 5 << 4;
	t[13] = flags;
	t[14] = 0xff;
	t[15] = 0xff;
	memcpy(t + 20, data ? data : "", dlen);
	ipv4(f + n, 6, src, dst, 20 + dlen);
	sum = (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff) + 6 + 20 + (uint32_t)dlen;
	c = csum(t, 20 + dlen, sum);
	t[16] = (uint8_t)(c >> 8);
	t[17] = (uint8_t)c;
	return n + 40 + dlen;
}

static size_t tcp_seg(uint8_t *f, const uint8_t *dmac, const uint8_t *smac, uint32_t src,
                      uint32_t dst, uint16_t sport, uint16_t dport, uint32_t seq, uint32_t ack,
                      uint8_t flags)
{
	return tcp_seg_data(f, dmac, smac, src, dst, sport, dport, seq, ack, flags, NULL);
}

/* The TCP segment in frame @f (@n bytes) from @src to @ip:@dport, if it is one: its header. */
static const uint8_t *tcp_of(const uint8_t *f, int n, uint32_t ip, uint16_t dport, int *dlen)
{
	const uint8_t *t = f + 14 + (f[14] & 0xf) * 4;

	if (n < 54 || f[12] != 8 || f[13] != 0 || f[23] != 6)
		return NULL;
	if (((uint32_t)f[30] << 24 | (uint32_t)f[31] << 16 | (uint32_t)f[32] << 8 | f[33]) != ip ||
	    (uint16_t)(t[2] << 8 | t[3]) != dport)
		return NULL;
	*dlen = (f[16] << 8 | f[17]) - (f[14] & 0xf) * 4 - (t[12] >> 4) * 4;
	return t;
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/*
 * A fake guest behind NAT connects out to the gateway's address, which
 * libslirp maps to the host's loopback, where the tool itself listens: SYN,
 * SYN-ACK, data both ways.
 */
static int do_outbound(char **argv)
{
	uint8_t mac[6], f[MAXMSG], r[256], gwmac[6];
	uint32_t ip = ip_parse(argv[4]), gw = ip_parse(argv[5]), seq = 5000, peer = 0;
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
	socklen_t sl = sizeof(sa);
	time_t until = time(NULL) + 10;
	int fd, ls, conn = -1, n, dlen, state = 0;
	uint16_t port;
	const uint8_t *t;

	mac_parse(argv[3], mac);
	ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (ls < 0 || bind(ls, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(ls, 1) < 0 ||
	    getsockname(ls, (struct sockaddr *)&sa, &sl) < 0)
		die("listen on loopback");
	port = ntohs(sa.sin_port);
	fd = adapter(argv[2], "outbound", mac, 0);
	send_frame(fd, f, arp_request(f, mac, ip, gw));
	while (state == 0 && time(NULL) < until && (n = recv_frame(fd, f, 1000)) >= 0)
		if (n >= 42 && f[12] == 8 && f[13] == 6 && f[21] == 2) {
			memcpy(gwmac, f + 22, 6);
			state = 1;
		}
	CHECK(state == 1, "the NAT gateway %s answers ARP", argv[5]);
	if (state != 1)
		return 1;
	send_frame(fd, r, tcp_seg(r, gwmac, mac, ip, gw, 40000, port, seq, 0, 0x02));
	while (time(NULL) < until && state < 5) {
		if (conn < 0 && (conn = accept(ls, NULL, NULL)) >= 0)
			CHECK(1, "the host's listener on 127.0.0.1:%u accepted the NAT's connection", port);
		if (conn >= 0 && state == 3) {
			char buf[16] = {0};

			if (recv(conn, buf, sizeof(buf) - 1, MSG_DONTWAIT) > 0) {
				CHECK(!strcmp(buf, "hello"), "the guest's data reached the host: '%s'", buf);
				send(conn, "world", 5, MSG_NOSIGNAL);
				state = 4;
			}
		}
		if ((n = recv_frame(fd, f, 100)) < 0)
			continue;
		if (arp_answer(fd, f, n, mac, ip))
			continue;
		t = tcp_of(f, n, ip, 40000, &dlen);
		if (!t)
			continue;
		if (state == 1 && (t[13] & 0x12) == 0x12 && be32(t + 8) == seq + 1) {
			CHECK(1, "SYN to %s:%u answered with a SYN-ACK", argv[5], port);
			peer = be32(t + 4) + 1;
			seq++;
			send_frame(fd, r, tcp_seg(r, gwmac, mac, ip, gw, 40000, port, seq, peer, 0x10));
			send_frame(fd, r, tcp_seg_data(r, gwmac, mac, ip, gw, 40000, port, seq, peer,
			                               0x18, "hello"));
			seq += 5;
			state = 3;
		} else if (state == 4 && dlen == 5 && !memcmp(t + (t[12] >> 4) * 4, "world", 5)) {
			state = 5; /* the host's reply came back through the NAT */
		}
	}
	CHECK(state == 5, "the host's reply reached the guest (state %d)", state);
	if (conn >= 0)
		close(conn);
	close(ls);
	close(fd);
	return failures ? 1 : 0;
}

static int do_syn(char **argv)
{
	uint8_t mac[6], f[MAXMSG], gwmac[6] = {0};
	uint32_t ip = ip_parse(argv[4]), gw = ip_parse(argv[5]), peer_seq = 0, my_seq = 1000;
	int host_port = atoi(argv[6]), guest_port = atoi(argv[7]), fd, hs, n, state = 0;
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)host_port)};
	time_t until = time(NULL) + 15;
	uint16_t peer_port = 0;

	mac_parse(argv[3], mac);
	fd = adapter(argv[2], "fakeguest", mac, 0);
	/* Tell the NAT where we are: an ARP request for the gateway. */
	send_frame(fd, f, arp_request(f, mac, ip, gw));
	sa.sin_addr.s_addr = htonl(0x7f000001);
	hs = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (hs < 0 || (connect(hs, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS))
		die("connect to the forwarded port");
	while (time(NULL) < until && state < 3) {
		if ((n = recv_frame(fd, f, 200)) < 0)
			continue;
		if (arp_answer(fd, f, n, mac, ip)) {
			if (f[21] == 2)
				memcpy(gwmac, f + 6, 6);
			continue;
		}
		if (n < 54 || f[12] != 8 || f[13] != 0 || f[23] != 6)
			continue;
		{
			uint8_t *t = f + 14 + (f[14] & 0xf) * 4;
			uint16_t dport = (uint16_t)(t[2] << 8 | t[3]);
			uint32_t seq = (uint32_t)t[4] << 24 | (uint32_t)t[5] << 16 | (uint32_t)t[6] << 8 | t[7];
			uint32_t dst = (uint32_t)f[30] << 24 | (uint32_t)f[31] << 16 | (uint32_t)f[32] << 8 | f[33];
			uint32_t src = (uint32_t)f[26] << 24 | (uint32_t)f[27] << 16 | (uint32_t)f[28] << 8 | f[29];
			int iplen = f[16] << 8 | f[17], hl = (t[12] >> 4) * 4;
			int dlen = iplen - (f[14] & 0xf) * 4 - hl;
			uint8_t r[128];

			if (dst != ip || dport != guest_port)
				continue;
			memcpy(gwmac, f + 6, 6);
			if ((t[13] & 0x02) && state == 0) { /* SYN */
				CHECK(1, "the host's connection to port %d arrives as a SYN to %s:%d",
				      host_port, argv[4], guest_port);
				peer_port = (uint16_t)(t[0] << 8 | t[1]);
				peer_seq = seq + 1;
				send_frame(fd, r, tcp_seg(r, gwmac, mac, ip, src, (uint16_t)guest_port,
				                          peer_port, my_seq, peer_seq, 0x12));
				my_seq++;
				state = 1;
				continue;
			}
			if (state >= 1 && dlen > 0) {
				char data[64] = {0};

				memcpy(data, t + hl, dlen < 63 ? (size_t)dlen : 63);
				CHECK(!strcmp(data, "ping"), "data from the host reaches the guest: '%s'",
				      data);
				peer_seq = seq + (uint32_t)dlen;
				send_frame(fd, r, tcp_seg(r, gwmac, mac, ip, src, (uint16_t)guest_port,
				                          peer_port, my_seq, peer_seq, 0x10));
				state = 3;
				continue;
			}
			if (state == 1 && (t[13] & 0x10)) {
				/* The handshake is done: the host writes. */
				state = 2;
			}
		}
		if (state >= 1 && state < 3) {
			struct pollfd p = {.fd = hs, .events = POLLOUT};
			static int sent;

			if (!sent && poll(&p, 1, 0) == 1 && send(hs, "ping", 4, MSG_NOSIGNAL) == 4)
				sent = 1;
		}
	}
	CHECK(state >= 1, "a SYN arrived at the fake guest");
	CHECK(state == 3, "the data arrived at the fake guest");
	close(hs);
	close(fd);
	return failures ? 1 : 0;
}

/*
 * A bulk download through NAT: the host's connection to the forwarded port
 * is accepted by the fake guest at IP:GUESTPORT, then the host writes for
 * @secs seconds while the fake guest acknowledges each segment in order
 * (a 64 KiB window, no scaling). libslirp sends the guest a window's
 * segments in one turn: what the switch's batches to a VM are for. The
 * stream's byte k is k % 251, checked as it arrives.
 */
static int do_download(char **argv)
{
	static uint8_t chunk[65536];
	uint8_t mac[6], f[MAXMSG], r[128], gwmac[6] = {0};
	uint32_t ip = ip_parse(argv[4]), peer_seq = 0, my_seq = 1000, peer_ip = 0;
	int host_port = atoi(argv[6]), guest_port = atoi(argv[7]), secs = atoi(argv[8]);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)host_port)};
	struct timespec t0 = {0}, t1;
	long long bytes = 0, frames = 0, written = 0, bad = 0;
	uint16_t peer_port = 0;
	int fd, hs, state = 0;
	double el = 0;

	mac_parse(argv[3], mac);
	fd = adapter(argv[2], "download", mac, 0);
	send_frame(fd, f, arp_request(f, mac, ip, ip_parse(argv[5])));
	sa.sin_addr.s_addr = htonl(0x7f000001);
	hs = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (hs < 0 || (connect(hs, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS))
		die("connect to the forwarded port");
	for (;;) {
		struct pollfd p[2] = {{.fd = fd, .events = POLLIN},
		                      {.fd = hs, .events = state == 2 ? POLLOUT : 0}};
		const uint8_t *t;
		int n, dlen;

		clock_gettime(CLOCK_MONOTONIC, &t1);
		if (state == 2)
			el = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
		if (state == 2 && el >= secs)
			break;
		if (poll(p, 2, 2000) <= 0)
			break;
		if (p[1].revents & POLLOUT) {
			ssize_t w;

			for (size_t i = 0; i < sizeof(chunk); i++)
				chunk[i] = (uint8_t)((written + (long long)i) % 251);
			w = send(hs, chunk, sizeof(chunk), MSG_DONTWAIT | MSG_NOSIGNAL);
			written += w > 0 ? w : 0;
		}
		if (!(p[0].revents & POLLIN))
			continue;
		n = (int)recv(fd, f, sizeof(f), MSG_DONTWAIT);
		if (n < HDR)
			continue;
		n -= HDR;
		memmove(f, f + HDR, (size_t)n);
		if (arp_answer(fd, f, n, mac, ip) ||
		    !(t = tcp_of(f, n, ip, (uint16_t)guest_port, &dlen)))
			continue;
		if ((t[13] & 0x02) && state == 0) { /* SYN: answered with SYN-ACK */
			memcpy(gwmac, f + 6, 6);
			peer_ip = be32(f + 26);
			peer_port = (uint16_t)(t[0] << 8 | t[1]);
			peer_seq = be32(t + 4) + 1;
			send_frame(fd, r,
			           tcp_seg(r, gwmac, mac, ip, peer_ip, (uint16_t)guest_port,
			                   peer_port, my_seq++, peer_seq, 0x12));
			state = 1;
			continue;
		}
		if (state == 1 && (t[13] & 0x10)) {
			state = 2; /* the handshake is done: the host writes */
			clock_gettime(CLOCK_MONOTONIC, &t0);
		}
		if (state == 2 && dlen > 0) {
			if (be32(t + 4) == peer_seq) {
				const uint8_t *d = t + (t[12] >> 4) * 4;

				for (int i = 0; i < dlen; i++)
					bad += d[i] != (uint8_t)((bytes + i) % 251);
				peer_seq += (uint32_t)dlen;
				bytes += dlen;
				frames++;
			}
			send_frame(fd, r,
			           tcp_seg(r, gwmac, mac, ip, peer_ip, (uint16_t)guest_port,
			                   peer_port, my_seq, peer_seq, 0x10));
		}
	}
	CHECK(bytes >= 1000000,
	      "download: %lld bytes in %lld segments in %.1f s: %.1f MB/s, %.0f frames/s", bytes,
	      frames, el, el > 0 ? bytes / el / 1e6 : 0, el > 0 ? frames / el : 0);
	CHECK(!bad, "download: every byte as the host wrote it (%lld wrong)", bad);
	close(hs);
	close(fd);
	return failures ? 1 : 0;
}

/*
 * How fast the switch forwards between two adapters: A sends frames of
 * @size bytes to B (learned) for @secs seconds, as fast as its socket takes
 * them, while a child process reads B. Prints frames/s and Gbit/s received.
 */
static int do_bench(const char *path, int secs, int size)
{
	int a = adapter(path, "bench-a", mac_a, 0), b = adapter(path, "bench-b", mac_b, 0);
	uint8_t f[MAXMSG];
	int p[2];
	pid_t child;
	struct timespec t0, t1;
	long long got = 0, sent = 0;
	double el;

	if (size < 60 || size > 65535 || pipe(p) < 0)
		return 2;
	/* B announces itself, so that A's frames are unicast to it. */
	send_frame(b, f, test_frame(f, bcast, mac_b, 1));
	(void)count_tag(a, 1, 200);
	child = fork();
	if (child == 0) {
		struct timeval tv = {.tv_sec = 1};

		setsockopt(b, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		while (recv(b, f, sizeof(f), 0) > 0)
			got++;
		if (write(p[1], &got, sizeof(got)) < 0)
			_exit(1);
		_exit(0);
	}
	memset(f, 0, sizeof(f));
	test_frame(f + HDR, mac_b, mac_a, 2);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		for (int i = 0; i < 256; i++)
			if (send(a, f, HDR + (size_t)size, 0) > 0)
				sent++;
		clock_gettime(CLOCK_MONOTONIC, &t1);
		el = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	} while (el < secs);
	if (read(p[0], &got, sizeof(got)) != sizeof(got))
		got = -1;
	printf("bench: %d-byte frames for %.1f s: sent %lld, received %lld: %.0f frames/s, "
	       "%.2f Gbit/s\n",
	       size, el, sent, got, got / el, got * size * 8 / el / 1e9);
	close(a);
	close(b);
	return 0;
}

/* Connect a SOCK_SEQPACKET socket to @path, nothing sent. */
static int raw_connect(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		die("connect");
	return fd;
}

/* Send @hello (@len bytes, or its strlen if 0) on a new connection; the answer in @reply. */
static void hello_answer(const char *path, const char *hello, size_t len, char *reply, size_t size)
{
	int fd = raw_connect(path);
	struct timeval tv = {.tv_sec = 3};
	ssize_t n;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	send(fd, hello, len ? len : strlen(hello), MSG_NOSIGNAL);
	n = recv(fd, reply, size - 1, 0);
	reply[n > 0 ? n : 0] = 0;
	close(fd);
}

/*
 * Adapters that break the protocol before they are ports: silent ones that
 * fill every pending slot, hellos that are not JSON, too long, or lie; the
 * switch refuses each with a reason and a good adapter still gets in.
 */
static int do_hostile(const char *path)
{
	static char big[2000];
	char reply[512];
	int silent[12], fd;

	for (int i = 0; i < 12; i++)
		silent[i] = raw_connect(path);
	usleep(200000); /* the switch has taken them all */
	hello_answer(path, "{\"netport\":1", 0, reply, sizeof(reply));
	CHECK(strstr(reply, "error") != NULL, "with every hello slot taken, a new adapter is "
	                                      "answered, not left hanging: %s",
	      reply);
	for (int i = 0; i < 12; i++)
		close(silent[i]);
	usleep(100000);
	hello_answer(path, "not json", 0, reply, sizeof(reply));
	CHECK(strstr(reply, "not JSON") != NULL, "a hello that is not JSON: %s", reply);
	memset(big, ' ', sizeof(big));
	big[0] = '{';
	big[sizeof(big) - 1] = '}';
	hello_answer(path, big, sizeof(big), reply, sizeof(reply));
	CHECK(strstr(reply, "too long") != NULL, "a 2000-byte hello: %s", reply);
	hello_answer(path,
	             "{\"netport\":1,\"vm\":\"x\",\"adapter\":0,\"mac\":\"ff:ff:ff:ff:ff:ff\"}",
	             0, reply, sizeof(reply));
	CHECK(strstr(reply, "unicast") != NULL, "a broadcast MAC: %s", reply);
	hello_answer(path, "{\"netport\":1,\"vm\":\"x\",\"adapter\":0,\"mac\":\"02:00:00:00:00:0a\","
	                   "\"frob\":1}",
	             0, reply, sizeof(reply));
	CHECK(strstr(reply, "unknown field") != NULL, "an unknown field: %s", reply);
	fd = adapter(path, "good", mac_a, 0);
	hello_answer(path, "{\"netport\":1,\"vm\":\"y\",\"adapter\":0,\"mac\":\"02:00:00:00:00:0a\"}",
	             0, reply, sizeof(reply));
	CHECK(strstr(reply, "already on this switch") != NULL, "a second adapter with a MAC in use: %s",
	      reply);
	CHECK(1, "a good adapter still gets a port");
	close(fd);
	return failures ? 1 : 0;
}

/* Send @line (and a newline) to a control socket; print the reply line. */
static int do_api(const char *path, const char *line)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	static char buf[1 << 20];
	struct timeval tv = {.tv_sec = 5};
	size_t got = 0;
	ssize_t n;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		die("connect");
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (send(fd, line, strlen(line), MSG_NOSIGNAL) < 0 || send(fd, "\n", 1, MSG_NOSIGNAL) < 0)
		die("send");
	while (got < sizeof(buf) - 1 && (n = recv(fd, buf + got, sizeof(buf) - 1 - got, 0)) > 0) {
		got += (size_t)n;
		if (buf[got - 1] == '\n')
			break;
	}
	buf[got] = 0;
	fputs(buf, stdout);
	close(fd);
	return got ? 0 : 1;
}

/*
 * @n copies of @line, written before anything is read (a client that reads
 * its replies late), then the replies until the server closes: "replies=R ok=K".
 */
static int do_pipeline(const char *path, const char *line, int n, int wait_ms)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct timeval tv = {.tv_sec = 20};
	size_t len = strlen(line), have = 0;
	long replies = 0, ok = 0;
	char *req = malloc((len + 1) * (size_t)n), buf[65536];
	ssize_t got;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (!req || fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		die("connect");
	for (int i = 0; i < n; i++) {
		memcpy(req + i * (len + 1), line, len);
		req[i * (len + 1) + len] = '\n';
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (send(fd, req, (len + 1) * (size_t)n, MSG_NOSIGNAL) != (ssize_t)((len + 1) * (size_t)n))
		die("send");
	shutdown(fd, SHUT_WR);
	usleep((useconds_t)wait_ms * 1000);
	/* Count whole lines; a line split across reads is counted where it ends. */
	while ((got = recv(fd, buf + have, sizeof(buf) - have - 1, 0)) > 0) {
		char *p = buf, *nl;

		have += (size_t)got;
		buf[have] = 0;
		while ((nl = memchr(p, '\n', have - (size_t)(p - buf)))) {
			*nl = 0;
			replies++;
			ok += strstr(p, "\"ok\":true") || strstr(p, "\"ok\": true");
			p = nl + 1;
		}
		have -= (size_t)(p - buf);
		memmove(buf, p, have);
	}
	printf("replies=%ld ok=%ld\n", replies, ok);
	free(req);
	close(fd);
	return 0;
}

/* Bring up "lo" in a fresh network namespace (no ip(8) needed). */
static int do_lo_up(void)
{
	struct ifreq ifr = {0};
	int s = socket(AF_INET, SOCK_DGRAM, 0);

	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		die("lo");
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
		die("lo up");
	close(s);
	return 0;
}

/* A DNS server on 127.0.0.1:53 answering every question with one A record @addr. */
static int do_dns_server(const char *addr, int secs)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(53)}, from;
	uint32_t a = ip_parse(addr);
	uint8_t q[512];
	int s = socket(AF_INET, SOCK_DGRAM, 0);
	time_t until = time(NULL) + secs;

	sa.sin_addr.s_addr = htonl(0x7f000001);
	if (s < 0 || bind(s, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		die("bind 127.0.0.1:53");
	printf("listening\n");
	while (time(NULL) < until) {
		struct pollfd p = {.fd = s, .events = POLLIN};
		socklen_t fl = sizeof(from);
		ssize_t n;

		if (poll(&p, 1, 200) <= 0)
			continue;
		n = recvfrom(s, q, sizeof(q) - 16, 0, (struct sockaddr *)&from, &fl);
		if (n < 12)
			continue;
		q[2] = 0x81; /* a response, recursion desired and available */
		q[3] = 0x80;
		q[7] = 1; /* one answer */
		memcpy(q + n, (const uint8_t[]){0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4}, 12);
		for (int i = 0; i < 4; i++)
			q[n + 12 + i] = (uint8_t)(a >> (24 - 8 * i));
		sendto(s, q, (size_t)n + 16, 0, (struct sockaddr *)&from, fl);
	}
	return 0;
}

/* A fake guest asks DNS server @dns (the NAT's .3) for @name's address. */
static int do_dns(char **argv)
{
	uint8_t mac[6], f[MAXMSG], r[512], *u, *d;
	uint32_t ip = ip_parse(argv[4]), gw = ip_parse(argv[5]), dns = ip_parse(argv[6]);
	const char *name = argv[7];
	size_t n, qlen = 12;
	int fd, got = 0, len;
	time_t until = time(NULL) + 10;

	mac_parse(argv[3], mac);
	fd = adapter(argv[2], "dnsguest", mac, 0);
	/* The gateway's MAC first (and the NAT learns ours). */
	send_frame(fd, f, arp_request(f, mac, ip, gw));
	while (!got && time(NULL) < until && (len = recv_frame(fd, f, 1000)) >= 0)
		if (len >= 42 && f[12] == 8 && f[13] == 6 && f[21] == 2) {
			memcpy(r, f + 22, 6);
			got = 1;
		}
	CHECK(got, "the NAT gateway answers ARP");
	if (!got)
		return 1;
	n = eth(f, r, mac, 0x0800);
	u = f + n + 20;
	d = u + 8;
	memset(d, 0, 12);
	d[0] = 0x12;
	d[1] = 0x34;
	d[2] = 0x01; /* recursion desired */
	d[5] = 1;    /* one question */
	for (const char *p = name, *dot; *p; p = dot + (*dot == '.')) {
		dot = strchr(p, '.');
		if (!dot)
			dot = p + strlen(p);
		d[qlen++] = (uint8_t)(dot - p);
		memcpy(d + qlen, p, (size_t)(dot - p));
		qlen += (size_t)(dot - p);
	}
	d[qlen++] = 0;
	memcpy(d + qlen, (const uint8_t[]){0, 1, 0, 1}, 4);
	qlen += 4;
	memset(u, 0, 8);
	u[0] = 0x14; /* source port 5353 */
	u[1] = 0xe9;
	u[3] = 53;
	u[4] = (uint8_t)((8 + qlen) >> 8);
	u[5] = (uint8_t)(8 + qlen); /* checksum 0: none (RFC 768) */
	ipv4(f + n, 17, ip, dns, 8 + qlen);
	send_frame(fd, f, n + 20 + 8 + qlen);
	got = 0;
	while (!got && time(NULL) < until && (len = recv_frame(fd, f, 1000)) >= 0) {
		if (arp_answer(fd, f, len, mac, ip))
			continue;
		if (len < 42 + 12 || f[12] != 8 || f[13] != 0 || f[23] != 17 || f[34] != 0 ||
		    f[35] != 53 || f[36] != 0x14 || f[37] != 0xe9)
			continue;
		d = f + 42;
		got = d[0] == 0x12 && d[1] == 0x34 && (d[2] & 0x80) && d[7] >= 1;
		if (got)
			printf("answer %u.%u.%u.%u\n", f[len - 4], f[len - 3], f[len - 2], f[len - 1]);
	}
	CHECK(got, "a DNS question to %s for %s is answered through the NAT", argv[6], name);
	close(fd);
	return failures ? 1 : 0;
}

/*
 * A switch that another monitor is still starting: its run lock (an OFD
 * write lock on byte 0 of LOCKFILE, STORE_LOCK_RUN in src/manager/store.h)
 * held for MS ms, and no ports socket. Prints "locked" once it holds it.
 */
static int do_runlock(const char *file, int ms)
{
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
	int fd = open(file, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

	if (fd < 0 || fcntl(fd, F_OFD_SETLK, &fl) < 0) {
		perror(file);
		return 1;
	}
	printf("locked\n");
	usleep((useconds_t)ms * 1000);
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc >= 3 && !strcmp(argv[1], "forward"))
		return do_forward(argv[2]);
	if (argc >= 4 && !strcmp(argv[1], "guards"))
		return do_guards(argv[2], atoi(argv[3]));
	if (argc >= 4 && !strcmp(argv[1], "stuck"))
		return do_stuck(argv[2], atoi(argv[3]));
	if (argc >= 4 && !strcmp(argv[1], "dhcp"))
		return do_dhcp(argv[2], argv[3]);
	if (argc >= 6 && !strcmp(argv[1], "arp"))
		return do_arp(argv[2], argv[3], argv[4], argv[5]);
	if (argc >= 6 && !strcmp(argv[1], "hold")) {
		uint8_t mac[6];
		int fd;

		mac_parse(argv[4], mac);
		fd = adapter(argv[2], argv[3], mac, 0);
		printf("connected\n");
		sleep((unsigned int)atoi(argv[5]));
		close(fd);
		return 0;
	}
	if (argc >= 4 && !strcmp(argv[1], "api"))
		return do_api(argv[2], argv[3]);
	if (argc >= 6 && !strcmp(argv[1], "pipeline"))
		return do_pipeline(argv[2], argv[3], atoi(argv[4]), atoi(argv[5]));
	if (argc >= 3 && !strcmp(argv[1], "hostile"))
		return do_hostile(argv[2]);
	if (argc >= 2 && !strcmp(argv[1], "lo-up"))
		return do_lo_up();
	if (argc >= 4 && !strcmp(argv[1], "dns-server"))
		return do_dns_server(argv[2], atoi(argv[3]));
	if (argc >= 8 && !strcmp(argv[1], "dns"))
		return do_dns(argv);
	if (argc >= 5 && !strcmp(argv[1], "bench"))
		return do_bench(argv[2], atoi(argv[3]), atoi(argv[4]));
	if (argc >= 6 && !strcmp(argv[1], "outbound"))
		return do_outbound(argv);
	if (argc >= 8 && !strcmp(argv[1], "syn"))
		return do_syn(argv);
	if (argc >= 9 && !strcmp(argv[1], "download"))
		return do_download(argv);
	if (argc >= 4 && !strcmp(argv[1], "runlock"))
		return do_runlock(argv[2], atoi(argv[3]));
	fprintf(stderr, "usage: see the head of tests/integration/switch_peer.c\n");
	return 2;
}
