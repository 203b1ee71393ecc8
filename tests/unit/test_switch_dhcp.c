/* SPDX-License-Identifier: MIT */
/*
 * Unit tests: the switch's DHCP server (switch/dhcp.c): allocation from the
 * pool, a stable address per MAC (also through leases.json), NAK for a
 * wrong address, pool exhaustion and reuse, malformed requests, and the
 * switch core answering a port's request on that port only.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "switch/dhcp.h"
#include "switch/swcore.h"

#include "switch_test_frames.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NET 0x0a000200u /* 10.0.2.0/24 */
#define GW (NET | 2)
#define DNS (NET | 3)
#define T0 1700000000

static const uint8_t server_mac[6] = {0x52, 0x55, 10, 0, 2, 2};

/* A DHCP request frame of @type from @mac into @f (600 bytes); its length. */
static size_t request(uint8_t *f, const uint8_t mac[6], int type, uint32_t req_ip,
                      uint32_t server_id)
{
	size_t n = tf_udp4(f, tf_bcast, mac, UDP_PORT_BOOTPC, UDP_PORT_BOOTPS, 300);
	uint8_t *b = f + n - 300, *o = b + DHCP_FIXED_LEN + 4;

	b[0] = 1;
	b[1] = 1;
	b[2] = 6;
	frame_put32(b + 4, 0x12345678);
	memcpy(b + 28, mac, 6);
	frame_put32(b + DHCP_FIXED_LEN, DHCP_MAGIC);
	*o++ = 53;
	*o++ = 1;
	*o++ = (uint8_t)type;
	if (req_ip) {
		*o++ = 50;
		*o++ = 4;
		frame_put32(o, req_ip);
		o += 4;
	}
	if (server_id) {
		*o++ = 54;
		*o++ = 4;
		frame_put32(o, server_id);
		o += 4;
	}
	*o = 255;
	return n;
}

struct reply {
	int type;
	uint32_t yiaddr, server_id, mask, router, dns;
};

/* Parse a reply frame the way a client would; checks its IPv4 and UDP checksums. */
static void parse_reply(const uint8_t *f, int len, const uint8_t client[6], struct reply *r)
{
	const uint8_t *ip = f + 14, *udp = ip + 20, *b = udp + 8;
	uint16_t ulen = frame_be16(udp + 4);
	uint32_t sum;

	memset(r, 0, sizeof(*r));
	assert_true(len >= 14 + 20 + 8 + DHCP_FIXED_LEN + 4);
	assert_memory_equal(f, client, 6);
	assert_memory_equal(f + 6, server_mac, 6);
	assert_int_equal(netport_csum_fold(netport_csum_add(0, ip, 20)), 0xffff);
	assert_int_equal(frame_be16(udp), 67);
	assert_int_equal(frame_be16(udp + 2), 68);
	assert_int_equal(14 + 20 + ulen, len);
	sum = netport_csum_add(0, ip + 12, 8) + IP_PROTO_UDP + ulen;
	assert_int_equal(netport_csum_fold(netport_csum_add(sum, udp, ulen)), 0xffff);
	assert_int_equal(b[0], 2);
	assert_int_equal(frame_be32(b + 4), 0x12345678);
	assert_int_equal(frame_be32(b + DHCP_FIXED_LEN), DHCP_MAGIC);
	r->yiaddr = frame_be32(b + 16);
	for (int i = DHCP_FIXED_LEN + 4; i + 1 < ulen - 8 && b[i] != 255; i += 2 + b[i + 1]) {
		uint32_t v = b[i + 1] == 4 ? frame_be32(b + i + 2) : 0;

		switch (b[i]) {
		case 53:
			r->type = b[i + 2];
			break;
		case 54:
			r->server_id = v;
			break;
		case 1:
			r->mask = v;
			break;
		case 3:
			r->router = v;
			break;
		case 6:
			r->dns = v;
			break;
		}
	}
}

static struct dhcp_server *new_server(uint32_t last)
{
	struct dhcp_server *s = malloc(sizeof(*s));

	assert_non_null(s);
	assert_int_equal(
	    dhcp_server_init(s, NET, 24, GW, GW, DNS, NET | 15, NET | last, server_mac), 0);
	return s;
}

/* DISCOVER and REQUEST for @mac at @now; returns the ACKed address (0: none). */
static uint32_t lease(struct dhcp_server *s, const uint8_t mac[6], uint32_t want, int64_t now)
{
	uint8_t f[600], out[DHCP_REPLY_MAX];
	struct reply r;
	int n;

	n = dhcp_server_handle(s, f, request(f, mac, DHCP_DISCOVER, want, 0), now, out);
	if (n == 0)
		return 0;
	assert_true(n > 0);
	parse_reply(out, n, mac, &r);
	assert_int_equal(r.type, DHCP_OFFER);
	assert_int_equal(r.server_id, GW);
	assert_int_equal(r.mask, 0xffffff00);
	assert_int_equal(r.router, GW);
	assert_int_equal(r.dns, DNS);
	n = dhcp_server_handle(s, f, request(f, mac, DHCP_REQUEST, r.yiaddr, GW), now, out);
	assert_true(n > 0);
	parse_reply(out, n, mac, &r);
	assert_int_equal(r.type, DHCP_ACK);
	return r.yiaddr;
}

static void test_allocation_and_stability(void **state)
{
	struct dhcp_server *s = new_server(254), *t;
	uint8_t m1[6] = {2, 0, 0, 0, 0, 1}, m2[6] = {2, 0, 0, 0, 0, 2}, m3[6] = {2, 0, 0, 0, 0, 3};
	char *text;

	(void)state;
	assert_int_equal(lease(s, m1, 0, T0), NET | 15);
	assert_int_equal(lease(s, m2, 0, T0), NET | 16);
	/* The same MAC again, and later: the same address. */
	assert_int_equal(lease(s, m1, 0, T0 + 100000), NET | 15);
	/* A free requested address is honoured; a taken one is not. */
	assert_int_equal(lease(s, m3, NET | 100, T0), NET | 100);
	assert_int_equal(dhcp_lease_find(s, m3)->ip, NET | 100);
	/* leases.json survives a restart: a new server with the file gives the same. */
	assert_true(s->dirty);
	text = dhcp_leases_format(s);
	assert_non_null(text);
	assert_false(s->dirty);
	t = new_server(254);
	assert_int_equal(dhcp_leases_parse(t, text, strlen(text)), 3);
	assert_int_equal(lease(t, m2, 0, T0 + 5), NET | 16);
	assert_int_equal(lease(t, m3, 0, T0 + 5), NET | 100);
	free(text);
	free(t);
	free(s);
}

static void test_nak_and_other_server(void **state)
{
	struct dhcp_server *s = new_server(254);
	uint8_t m1[6] = {2, 0, 0, 0, 0, 1}, f[600], out[DHCP_REPLY_MAX];
	struct reply r;
	int n;

	(void)state;
	assert_int_equal(lease(s, m1, 0, T0), NET | 15);
	/* A REQUEST for another address (a client from another network) gets a NAK. */
	n = dhcp_server_handle(s, f, request(f, m1, DHCP_REQUEST, NET | 77, 0), T0, out);
	assert_true(n > 0);
	parse_reply(out, n, m1, &r);
	assert_int_equal(r.type, DHCP_NAK);
	assert_int_equal(r.yiaddr, 0);
	/* A REQUEST naming another server is none of ours: no answer. */
	n = dhcp_server_handle(s, f, request(f, m1, DHCP_REQUEST, NET | 15, NET | 9), T0, out);
	assert_int_equal(n, 0);
	/* RELEASE keeps the binding: the MAC's address stays its own. */
	n = dhcp_server_handle(s, f, request(f, m1, DHCP_RELEASE, 0, GW), T0, out);
	assert_int_equal(n, 0);
	assert_int_equal(lease(s, m1, 0, T0), NET | 15);
	free(s);
}

static void test_pool_exhaustion(void **state)
{
	struct dhcp_server *s = new_server(17); /* .15 to .17 */
	uint8_t m[6] = {2, 0, 0, 0, 0, 0};

	(void)state;
	for (int i = 1; i <= 3; i++) {
		m[5] = (uint8_t)i;
		assert_int_equal(lease(s, m, 0, T0 + i), NET | (14 + i));
	}
	/* Full: a fourth MAC gets nothing while the others are recent... */
	m[5] = 4;
	assert_int_equal(lease(s, m, 0, T0 + 10), 0);
	/* ... and the address of the one seen least recently once it is a lease time old. */
	assert_int_equal(lease(s, m, 0, T0 + 1 + DHCP_LEASE_TIME_S + 1), NET | 15);
	m[5] = 1;
	assert_null(dhcp_lease_find(s, m));
	free(s);
}

static void test_malformed_requests(void **state)
{
	struct dhcp_server *s = new_server(254);
	uint8_t m1[6] = {2, 0, 0, 0, 0, 1}, f[600], out[DHCP_REPLY_MAX];
	size_t n = request(f, m1, DHCP_DISCOVER, 0, 0);
	struct dhcp_msg msg;

	(void)state;
	/* chaddr must be the frame's source: no asking on another's behalf. */
	f[14 + 20 + 8 + 28 + 5] = 9;
	assert_int_equal(dhcp_server_handle(s, f, n, T0, out), -EINVAL);
	n = request(f, m1, DHCP_DISCOVER, 0, 0);
	/* A bad magic cookie, a BOOTP reply, an option that runs off the end. */
	f[14 + 20 + 8 + DHCP_FIXED_LEN] = 0;
	assert_int_equal(dhcp_server_handle(s, f, n, T0, out), -EINVAL);
	n = request(f, m1, DHCP_DISCOVER, 0, 0);
	f[14 + 20 + 8] = 2;
	assert_int_equal(dhcp_server_handle(s, f, n, T0, out), -EINVAL);
	n = request(f, m1, DHCP_DISCOVER, 0, 0);
	assert_int_equal(dhcp_msg_parse(f + 42, n - 42, &msg), 0);
	f[42 + DHCP_FIXED_LEN + 4 + 3] = 50;
	f[42 + DHCP_FIXED_LEN + 4 + 4] = 200;
	assert_int_equal(dhcp_msg_parse(f + 42, DHCP_FIXED_LEN + 4 + 10, &msg), -EINVAL);
	/* Too short to be BOOTP. */
	assert_int_equal(dhcp_msg_parse(f + 42, DHCP_FIXED_LEN, &msg), -EINVAL);
	/* leases.json that is not one, or with bad entries skipped. */
	assert_int_equal(dhcp_leases_parse(s, "[]", 2), -EINVAL);
	{
		const char *text =
		    "{\"leases\":[{\"mac\":\"02:00:00:00:00:01\",\"ip\":\"10.0.2.20\"},"
		    "{\"mac\":\"02:00:00:00:00:02\",\"ip\":\"10.0.2.20\"},"
		    "{\"mac\":\"03:00:00:00:00:03\",\"ip\":\"10.0.2.21\"},"
		    "{\"mac\":\"02:00:00:00:00:04\",\"ip\":\"10.0.3.1\"},"
		    "{\"mac\":\"02:00:00:00:00:05\",\"ip\":7},"
		    "{\"mac\":\"02:00:00:00:00:06\",\"ip\":\"10.0.2.22\"}]}";

		assert_int_equal(dhcp_leases_parse(s, text, strlen(text)), 2);
	}
	free(s);
}

/* ---- the switch answers a port's request on that port only ---- */

static unsigned int sends[SW_MAX_PORTS];
static uint8_t last[DHCP_REPLY_MAX];
static int last_len;

static int fake_send(struct sw_port *p, const struct netport_hdr *hdr, const uint8_t *frame,
                     size_t len)
{
	(void)hdr;
	sends[(uintptr_t)p->opaque]++;
	memcpy(last, frame, len < sizeof(last) ? len : sizeof(last));
	last_len = (int)len;
	return 0;
}

static void test_switch_serves_dhcp(void **state)
{
	struct dhcp_server *s = new_server(254);
	struct netport_hello h = {.dhcp_guard = true, .router_guard = true};
	uint8_t m1[6] = {2, 0, 0, 0, 0, 1}, m2[6] = {2, 0, 0, 0, 0, 2}, f[600], msg[700];
	struct sw_core sw;
	struct reply r;
	int a, b;

	(void)state;
	assert_int_equal(sw_core_init(&sw, 64, FDB_AGEING_MS), 0);
	sw.dhcp = s;
	sw.wall_now = T0;
	assert_int_equal(sw_port_add(&sw, SW_UPLINK, NULL, fake_send, (void *)0), 0);
	memcpy(h.mac, m1, 6);
	a = sw_port_add(&sw, 1, &h, fake_send, (void *)1);
	memcpy(h.mac, m2, 6);
	b = sw_port_add(&sw, 1, &h, fake_send, (void *)2);
	assert_int_equal(a, 1);
	assert_int_equal(b, 2);
	sw_input_msg(&sw, 1, msg, tf_msg(msg, f, request(f, m1, DHCP_DISCOVER, 0, 0)), 0);
	assert_int_equal(sends[0] + sends[2], 0); /* not flooded: not to the NAT, not to B */
	assert_int_equal(sends[1], 1);
	parse_reply(last, last_len, m1, &r);
	assert_int_equal(r.type, DHCP_OFFER);
	assert_int_equal(r.yiaddr, NET | 15);
	sw_core_destroy(&sw);
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_allocation_and_stability),
	    cmocka_unit_test(test_nak_and_other_server),
	    cmocka_unit_test(test_pool_exhaustion),
	    cmocka_unit_test(test_malformed_requests),
	    cmocka_unit_test(test_switch_serves_dhcp),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
