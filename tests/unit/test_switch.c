/* SPDX-License-Identifier: MIT */
/*
 * Unit tests: the switch's MAC table (learning, ageing, the cap), its
 * forwarding core (flooding, learned unicast, no hairpin, congestion), the
 * port guards and their counters, the frame parser, switch definitions,
 * the netport batch framing and the hello's "batch" field.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "switch/fdb.h"
#include "switch/frame.h"
#include "switch/swcore.h"
#include "switch/switch_def.h"

#include "switch_test_frames.h"

#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t mac_a[6] = {0x02, 0, 0, 0, 0, 0xa};
static const uint8_t mac_b[6] = {0x02, 0, 0, 0, 0, 0xb};
static const uint8_t mac_c[6] = {0x02, 0, 0, 0, 0, 0xc};

/* ---- the MAC table ---- */

static void test_fdb_learn_and_age(void **state)
{
	struct fdb t;

	(void)state;
	assert_int_equal(fdb_init(&t, 16, 1000), 0);
	assert_int_equal(fdb_lookup(&t, mac_a, 0), -1);
	fdb_learn(&t, mac_a, 3, 0);
	fdb_learn(&t, mac_b, 4, 0);
	assert_int_equal(fdb_lookup(&t, mac_a, 500), 3);
	assert_int_equal(fdb_lookup(&t, mac_b, 500), 4);
	/* A MAC that moves follows its last frame. */
	fdb_learn(&t, mac_a, 5, 600);
	assert_int_equal(fdb_lookup(&t, mac_a, 700), 5);
	assert_int_equal(t.count, 2);
	/* Ageing: B (seen at 0) is gone after 1000 ms; A (at 600) is not yet. */
	assert_int_equal(fdb_lookup(&t, mac_b, 1001), -1);
	assert_int_equal(fdb_lookup(&t, mac_a, 1500), 5);
	assert_int_equal(fdb_age(&t, 1601), 1);
	assert_int_equal(t.count, 0);
	/* A group address is never learned. */
	fdb_learn(&t, tf_bcast, 1, 0);
	assert_int_equal(t.count, 0);
	fdb_destroy(&t);
}

static void test_fdb_cap_and_forget(void **state)
{
	uint8_t mac[6] = {0x02, 0, 0, 0, 0, 0};
	struct fdb t;

	(void)state;
	assert_int_equal(fdb_init(&t, 8, FDB_AGEING_MS), 0);
	for (int i = 0; i < 100; i++) {
		mac[5] = (uint8_t)i;
		fdb_learn(&t, mac, (unsigned int)(i % 3), i);
		assert_true(t.count <= 8);
	}
	/* The newest 8 are kept, the oldest forgotten. */
	mac[5] = 99;
	assert_int_equal(fdb_lookup(&t, mac, 100), 99 % 3);
	mac[5] = 91;
	assert_int_equal(fdb_lookup(&t, mac, 100), -1);
	mac[5] = 92;
	assert_int_equal(fdb_lookup(&t, mac, 100), 92 % 3);
	fdb_forget_port(&t, 0);
	for (int i = 92; i < 100; i++) {
		mac[5] = (uint8_t)i;
		assert_int_equal(fdb_lookup(&t, mac, 100), i % 3 == 0 ? -1 : i % 3);
	}
	fdb_destroy(&t);
}

/* ---- the forwarding core ---- */

#define MAX_SENT 64

struct sent {
	unsigned int port;
	size_t len;
	struct netport_hdr hdr;
	uint8_t frame[256];
};

static struct sent sent[MAX_SENT];
static unsigned int nr_sent;
static int send_result[SW_MAX_PORTS];

static int fake_send(struct sw_port *p, const struct netport_hdr *hdr, const uint8_t *frame,
                     size_t len)
{
	unsigned int port = (unsigned int)(uintptr_t)p->opaque;

	if (send_result[port])
		return send_result[port];
	if (nr_sent < MAX_SENT) {
		sent[nr_sent].port = port;
		sent[nr_sent].len = len;
		sent[nr_sent].hdr = *hdr;
		memcpy(sent[nr_sent].frame, frame, len < 256 ? len : 256);
		nr_sent++;
	}
	return 0;
}

static int add_vm(struct sw_core *sw, const uint8_t *mac, bool spoofing)
{
	struct netport_hello h = {.adapter = 0, .dhcp_guard = true, .router_guard = true};
	int n;

	memcpy(h.mac, mac, 6);
	h.mac_spoofing = spoofing;
	snprintf(h.vm, sizeof(h.vm), "vm%02x", mac[5]);
	n = sw_port_add(sw, 1, &h, fake_send, NULL);
	assert_true(n > 0);
	sw->ports[n].opaque = (void *)(uintptr_t)n;
	return n;
}

static int setup_core(void **state)
{
	struct sw_core *sw = calloc(1, sizeof(*sw));

	assert_non_null(sw);
	assert_int_equal(sw_core_init(sw, 64, 1000), 0);
	nr_sent = 0;
	memset(send_result, 0, sizeof(send_result));
	*state = sw;
	return 0;
}

static int teardown_core(void **state)
{
	sw_core_destroy(*state);
	free(*state);
	return 0;
}

/* Send a 60-byte test frame from port @in with @src to @dst. */
static void input(struct sw_core *sw, int in, const uint8_t *dst, const uint8_t *src, int64_t now)
{
	uint8_t f[60] = {0}, msg[80];

	tf_eth(f, dst, src, 0x88b5);
	sw_input_msg(sw, (unsigned int)in, msg, tf_msg(msg, f, sizeof(f)), now);
}

static bool sent_to(unsigned int port)
{
	for (unsigned int i = 0; i < nr_sent; i++)
		if (sent[i].port == port)
			return true;
	return false;
}

static void test_flood_learn_hairpin(void **state)
{
	struct sw_core *sw = *state;
	int a = add_vm(sw, mac_a, false), b = add_vm(sw, mac_b, false), c = add_vm(sw, mac_c, true);

	/* A broadcast floods to everyone but its sender. */
	input(sw, a, tf_bcast, mac_a, 0);
	assert_int_equal(nr_sent, 2);
	assert_true(sent_to(b) && sent_to(c) && !sent_to(a));
	/* Unknown unicast floods too; then B's reply goes to A only (learned). */
	nr_sent = 0;
	input(sw, a, mac_b, mac_a, 1);
	assert_int_equal(nr_sent, 2);
	nr_sent = 0;
	input(sw, b, mac_a, mac_b, 2);
	assert_int_equal(nr_sent, 1);
	assert_int_equal(sent[0].port, a);
	/* C (spoofing allowed) sends as a MAC behind it; frames to that MAC go to C only. */
	{
		const uint8_t l2[6] = {0x02, 0, 0, 0, 0x22, 0x22};

		nr_sent = 0;
		input(sw, c, tf_bcast, l2, 3);
		assert_int_equal(nr_sent, 2);
		nr_sent = 0;
		input(sw, a, l2, mac_a, 4);
		assert_int_equal(nr_sent, 1);
		assert_int_equal(sent[0].port, c);
		/* No hairpin: C sending to a MAC learned on C goes nowhere. */
		nr_sent = 0;
		input(sw, c, l2, mac_c, 5);
		assert_int_equal(nr_sent, 0);
	}
	/* After ageing (1000 ms here), A is unknown again: flooded. */
	nr_sent = 0;
	input(sw, b, mac_a, mac_b, 2000);
	assert_int_equal(nr_sent, 2);
	/* Counters: A sent 3 frames in, received B's and C's. */
	assert_int_equal(sw->ports[a].c.frames_in, 3);
	assert_int_equal(sw->ports[a].c.bytes_in, 180);
	assert_true(sw->ports[a].c.frames_out >= 3);
	/* A port that leaves takes its MACs along. */
	sw_port_remove(sw, (unsigned int)c);
	nr_sent = 0;
	input(sw, a, (const uint8_t[]){0x02, 0, 0, 0, 0x22, 0x22}, mac_a, 2001);
	assert_int_equal(nr_sent, 1); /* flooded to B, the only one left */
}

static void test_congestion_and_broken(void **state)
{
	struct sw_core *sw = *state;
	int a = add_vm(sw, mac_a, false), b = add_vm(sw, mac_b, false),
	    c = add_vm(sw, mac_c, false);

	send_result[b] = -EAGAIN;
	send_result[c] = -EPIPE;
	input(sw, a, tf_bcast, mac_a, 0);
	input(sw, a, tf_bcast, mac_a, 0);
	assert_int_equal(sw->ports[b].c.drop_congested, 2);
	assert_int_equal(sw->ports[b].c.frames_out, 0);
	assert_true(sw->ports[c].broken);
	assert_int_equal(sw->ports[c].c.drop_congested, 0);
}

static void test_spoof_guard(void **state)
{
	struct sw_core *sw = *state;
	int a = add_vm(sw, mac_a, false), b = add_vm(sw, mac_b, false);
	uint8_t spoof[6] = {0x02, 0, 0, 0x99, 0, 0};

	for (int i = 0; i < 10000; i++) {
		spoof[5] = (uint8_t)i;
		spoof[4] = (uint8_t)(i >> 8);
		input(sw, a, tf_bcast, spoof, i);
	}
	assert_int_equal(nr_sent, 0);
	assert_int_equal(sw->ports[a].c.drop_spoofed_mac, 10000);
	assert_int_equal(sw->ports[a].c.frames_in, 0);
	assert_int_equal(sw->fdb.count, 0); /* nothing learned from a spoofed frame */
	/* Spoofing B's own MAC does not steal B's frames. */
	input(sw, a, tf_bcast, mac_b, 0);
	input(sw, b, tf_bcast, mac_b, 0);
	nr_sent = 0;
	input(sw, a, mac_b, mac_a, 1);
	assert_int_equal(nr_sent, 1);
	assert_int_equal(sent[0].port, b);
}

static void test_dhcp_and_router_guards(void **state)
{
	struct sw_core *sw = *state;
	int a = add_vm(sw, mac_a, false), b = add_vm(sw, mac_b, false);
	uint8_t f[512], msg[600];
	size_t n;

	/* A DHCP server message (UDP from 67) and a DHCPv6 one are dropped... */
	n = tf_udp4(f, tf_bcast, mac_a, UDP_PORT_BOOTPS, UDP_PORT_BOOTPC, 240);
	sw_input_msg(sw, (unsigned int)a, msg, tf_msg(msg, f, n), 0);
	assert_int_equal(sw->ports[a].c.drop_dhcp_guard, 1);
	/* ... a client's (from 68) passes. */
	n = tf_udp4(f, tf_bcast, mac_a, UDP_PORT_BOOTPC, UDP_PORT_BOOTPS, 240);
	sw_input_msg(sw, (unsigned int)a, msg, tf_msg(msg, f, n), 0);
	assert_int_equal(nr_sent, 1);
	/* Router advertisements and redirects, also behind extension headers. */
	n = tf_icmp6(f, mac_a, ICMPV6_ROUTER_ADVERT, 0);
	sw_input_msg(sw, (unsigned int)a, msg, tf_msg(msg, f, n), 0);
	n = tf_icmp6(f, mac_a, ICMPV6_REDIRECT, 0);
	sw_input_msg(sw, (unsigned int)a, msg, tf_msg(msg, f, n), 0);
	n = tf_icmp6(f, mac_a, ICMPV6_ROUTER_ADVERT, 3);
	sw_input_msg(sw, (unsigned int)a, msg, tf_msg(msg, f, n), 0);
	assert_int_equal(sw->ports[a].c.drop_router_guard, 3);
	/* A chain longer than the parser walks is refused, not let through. */
	n = tf_icmp6(f, mac_a, ICMPV6_ROUTER_ADVERT, FRAME_IPV6_MAX_EXT + 1);
	sw_input_msg(sw, (unsigned int)a, msg, tf_msg(msg, f, n), 0);
	assert_int_equal(sw->ports[a].c.drop_malformed, 1);
	/* A router solicitation (133) is a host's: it passes. */
	nr_sent = 0;
	n = tf_icmp6(f, mac_a, 133, 1);
	sw_input_msg(sw, (unsigned int)a, msg, tf_msg(msg, f, n), 0);
	assert_int_equal(nr_sent, 1);
	/* With the guards off (an L1 that routes or serves DHCP), both pass. */
	sw->ports[b].hello.dhcp_guard = false;
	sw->ports[b].hello.router_guard = false;
	nr_sent = 0;
	n = tf_udp4(f, tf_bcast, mac_b, UDP_PORT_BOOTPS, UDP_PORT_BOOTPC, 240);
	sw_input_msg(sw, (unsigned int)b, msg, tf_msg(msg, f, n), 0);
	n = tf_icmp6(f, mac_b, ICMPV6_ROUTER_ADVERT, 0);
	sw_input_msg(sw, (unsigned int)b, msg, tf_msg(msg, f, n), 0);
	assert_int_equal(nr_sent, 2);
	assert_int_equal(sw->ports[b].c.drop_dhcp_guard + sw->ports[b].c.drop_router_guard, 0);
}

static void test_malformed(void **state)
{
	struct sw_core *sw = *state;
	int a = add_vm(sw, mac_a, false);
	uint8_t f[128] = {0}, msg[160];
	size_t n;

	add_vm(sw, mac_b, false);
	tf_eth(f, tf_bcast, mac_a, 0x88b5);
	/* Shorter than a header and an Ethernet header. */
	sw_input_msg(sw, (unsigned int)a, msg, tf_msg(msg, f, 13), 0);
	/* Unknown flags, reserved fields set. */
	n = tf_msg(msg, f, 60);
	msg[0] = 0x80;
	sw_input_msg(sw, (unsigned int)a, msg, n, 0);
	n = tf_msg(msg, f, 60);
	msg[6] = 1;
	sw_input_msg(sw, (unsigned int)a, msg, n, 0);
	/* A checksum request beyond the frame. */
	n = tf_msg(msg, f, 60);
	msg[0] = NETPORT_F_NEEDS_CSUM;
	msg[2] = 58;
	msg[4] = 1;
	sw_input_msg(sw, (unsigned int)a, msg, n, 0);
	/* A checksum to complete that would land on the source MAC, after the guards. */
	n = tf_msg(msg, f, 60);
	msg[0] = NETPORT_F_NEEDS_CSUM;
	msg[2] = 1;
	msg[4] = 6;
	sw_input_msg(sw, (unsigned int)a, msg, n, 0);
	/* ... or on a UDP source port (to make it 67 past the DHCP guard). */
	n = tf_udp4(f, tf_bcast, mac_a, 1234, 5678, 8);
	n = tf_msg(msg, f, n);
	msg[0] = NETPORT_F_NEEDS_CSUM;
	msg[2] = 34;
	msg[4] = 0;
	sw_input_msg(sw, (unsigned int)a, msg, n, 0);
	tf_eth(f, tf_bcast, mac_a, 0x88b5);
	/* A group address as the source (A's own, with the group bit). */
	tf_eth(f, tf_bcast, (const uint8_t[]){0x03, 0, 0, 0, 0, 0xa}, 0x88b5);
	sw_input_msg(sw, (unsigned int)a, msg, tf_msg(msg, f, 60), 0);
	/* An IPv4 header that claims more than the frame has. */
	n = tf_eth(f, tf_bcast, mac_a, ETH_TYPE_IPV4);
	tf_ipv4(f + n, IP_PROTO_UDP, 1, 2, 500);
	sw_input_msg(sw, (unsigned int)a, msg, tf_msg(msg, f, n + 40), 0);
	/* A first fragment too short to hold the UDP ports (RFC 1858). */
	tf_ipv4(f + n, IP_PROTO_UDP, 1, 2, 4);
	f[n + 6] = 0x20; /* MF */
	sw_input_msg(sw, (unsigned int)a, msg, tf_msg(msg, f, n + 24), 0);
	assert_int_equal(sw->ports[a].c.drop_malformed, 9);
	assert_int_equal(nr_sent, 0);
	/* A message longer than netport.h allows. */
	sw_input_msg(sw, (unsigned int)a, msg, NETPORT_MSG_MAX + 1, 0);
	assert_int_equal(sw->ports[a].c.drop_malformed, 10);
}

/* A frame that needs its checksum done gets it before it leaves for the uplink. */
static void test_csum_for_uplink(void **state)
{
	struct sw_core *sw = *state;
	int a = add_vm(sw, mac_a, false);
	uint8_t f[128], msg[160];
	struct netport_hdr hdr = {.flags = NETPORT_F_NEEDS_CSUM};
	size_t n;
	uint32_t sum;

	assert_int_equal(sw_port_add(sw, SW_UPLINK, NULL, fake_send, (void *)(uintptr_t)0), 0);
	add_vm(sw, mac_b, false);
	n = tf_udp4(f, tf_bcast, mac_a, 1234, 5678, 21);
	memset(f + n - 21, 0x5a, 21);
	/* The pseudo-header sum in the field, as a guest with offload leaves it. */
	sum = netport_csum_add(0, f + 26, 8) + IP_PROTO_UDP + 29;
	frame_put16(f + 40, netport_csum_fold(sum));
	hdr.csum_start = 34;
	hdr.csum_offset = 6;
	memcpy(msg, &hdr, sizeof(hdr));
	memcpy(msg + sizeof(hdr), f, n);
	sw_input_msg(sw, (unsigned int)a, msg, sizeof(hdr) + n, 0);
	assert_int_equal(nr_sent, 2);
	for (unsigned int i = 0; i < nr_sent; i++) {
		const uint8_t *u = sent[i].frame + 34;

		assert_int_equal(sent[i].hdr.flags, 0);
		/* A correct UDP checksum sums, with the pseudo-header, to 0xffff. */
		sum = netport_csum_add(0, sent[i].frame + 26, 8) + IP_PROTO_UDP + 29;
		assert_int_equal(netport_csum_fold(netport_csum_add(sum, u, 29)), 0xffff);
	}
}

/*
 * Frames to the uplink's own MACs go there from the first on, though the
 * uplink never sent anything (a guest sending UDP to the host through
 * NAT), and not to the other VMs; a VM that may spoof MACs cannot take
 * such a MAC over.
 */
static void test_uplink_macs(void **state)
{
	struct sw_core *sw = *state;
	const uint8_t gw[6] = {0x52, 0x55, 10, 0, 2, 2}, dns[6] = {0x52, 0x55, 10, 0, 2, 3};
	int a = add_vm(sw, mac_a, false), b = add_vm(sw, mac_b, false), c = add_vm(sw, mac_c, true);

	assert_int_equal(sw_port_add(sw, SW_UPLINK, NULL, fake_send, (void *)(uintptr_t)0), 0);
	/* Unknown: flooded, the uplink too (no MAC of its own known yet). */
	input(sw, a, gw, mac_a, 0);
	assert_int_equal(nr_sent, 3);
	assert_int_equal(sw_uplink_add_mac(sw, gw), 0);
	assert_int_equal(sw_uplink_add_mac(sw, dns), 0);
	for (int i = 0; i < 3; i++) {
		nr_sent = 0;
		input(sw, a, i == 2 ? dns : gw, mac_a, 1 + i);
		assert_int_equal(nr_sent, 1);
		assert_int_equal(sent[0].port, SW_UPLINK);
	}
	/* C sends as the gateway: not learned on C; the gateway's frames still go up. */
	nr_sent = 0;
	input(sw, c, tf_bcast, gw, 10);
	nr_sent = 0;
	input(sw, b, gw, mac_b, 11);
	assert_int_equal(nr_sent, 1);
	assert_int_equal(sent[0].port, SW_UPLINK);
	assert_int_equal(fdb_lookup(&sw->fdb, gw, 11), -1);
	/* Long after (the ageing time here is 1000 ms): still the uplink's. */
	nr_sent = 0;
	input(sw, b, gw, mac_b, 100000);
	assert_int_equal(nr_sent, 1);
	assert_int_equal(sent[0].port, SW_UPLINK);
	/* Without the uplink, the MAC is an ordinary unknown one: flooded. */
	sw_port_remove(sw, SW_UPLINK);
	nr_sent = 0;
	input(sw, b, gw, mac_b, 100001);
	assert_int_equal(nr_sent, 2);
	assert_false(sent_to(SW_UPLINK));
	for (int i = 2; i < SW_UPLINK_MACS; i++)
		assert_int_equal(sw_uplink_add_mac(sw, gw), 0);
	assert_int_equal(sw_uplink_add_mac(sw, gw), -ENOSPC);
}

/* ---- the frame parser ---- */

static void test_frame_parse(void **state)
{
	uint8_t f[256] = {0};
	struct frame_info fi;
	size_t n;

	(void)state;
	assert_int_equal(frame_parse(f, 13, &fi), -EINVAL);
	/* Two VLAN tags, then IPv4/UDP. */
	n = tf_eth(f, tf_bcast, mac_a, ETH_TYPE_QINQ);
	frame_put16(f + n, 5);
	frame_put16(f + n + 2, ETH_TYPE_VLAN);
	frame_put16(f + n + 4, 7);
	frame_put16(f + n + 6, ETH_TYPE_IPV4);
	tf_ipv4(f + n + 8, IP_PROTO_UDP, 1, 2, 8);
	frame_put16(f + n + 28, UDP_PORT_BOOTPS);
	frame_put16(f + n + 30, UDP_PORT_BOOTPC);
	assert_int_equal(frame_parse(f, n + 36, &fi), 0);
	assert_false(fi.l3_bad);
	assert_int_equal(fi.ethertype, ETH_TYPE_IPV4);
	assert_int_equal(fi.l3_off, 22);
	assert_true(frame_is_dhcp_server(&fi));
	/* A third tag is refused. */
	frame_put16(f + n + 6, ETH_TYPE_VLAN);
	assert_int_equal(frame_parse(f, n + 36, &fi), 0);
	assert_true(fi.l3_bad);
	/* A later IPv4 fragment has no ports: not a DHCP message, not malformed. */
	n = tf_udp4(f, tf_bcast, mac_a, UDP_PORT_BOOTPS, 68, 8);
	frame_put16(f + 20, 0x0010);
	assert_int_equal(frame_parse(f, n, &fi), 0);
	assert_false(fi.l3_bad);
	assert_false(fi.have_ports);
	/* IHL below 5. */
	n = tf_udp4(f, tf_bcast, mac_a, 1, 2, 8);
	f[14] = 0x44;
	assert_int_equal(frame_parse(f, n, &fi), 0);
	assert_true(fi.l3_bad);
	/* IPv6: a jumbogram (payload length 0) and a later fragment. */
	n = tf_icmp6(f, mac_a, ICMPV6_ROUTER_ADVERT, 0);
	frame_put16(f + 18, 0);
	assert_int_equal(frame_parse(f, n, &fi), 0);
	assert_true(fi.l3_bad);
	n = tf_icmp6(f, mac_a, ICMPV6_ROUTER_ADVERT, 1);
	f[14 + 6] = IPV6_NH_FRAGMENT;
	frame_put16(f + 14 + 40 + 2, 8); /* offset 1 */
	assert_int_equal(frame_parse(f, n, &fi), 0);
	assert_false(fi.l3_bad);
	assert_false(frame_is_router_msg(&fi));
	/* ARP: 28 bytes for Ethernet/IPv4, fewer is broken. */
	n = tf_eth(f, tf_bcast, mac_a, ETH_TYPE_ARP);
	memcpy(f + n, (const uint8_t[]){0, 1, 8, 0, 6, 4, 0, 1}, 8);
	assert_int_equal(frame_parse(f, n + 28, &fi), 0);
	assert_false(fi.l3_bad);
	assert_int_equal(frame_parse(f, n + 27, &fi), 0);
	assert_true(fi.l3_bad);
}

/* ---- definitions ---- */

static void test_switch_def(void **state)
{
	struct switch_def d = {0}, e;
	struct switch_forward f;
	struct mgr_err err;
	char *text, buf[96];

	(void)state;
	assert_int_equal(switch_forward_parse("tcp:8080:10.0.2.15:80", &f), 0);
	assert_int_equal(f.host_addr, 0x7f000001);
	switch_forward_format(&f, buf, sizeof(buf));
	assert_string_equal(buf, "tcp:127.0.0.1:8080:10.0.2.15:80");
	assert_int_equal(switch_forward_parse("udp:0.0.0.0:53:10.0.2.20:53", &f), 0);
	assert_true(f.udp);
	assert_int_equal(f.host_addr, 0);
	assert_int_equal(switch_forward_parse("tcp:0:10.0.2.15:80", &f), -EINVAL);
	assert_int_equal(switch_forward_parse("sctp:1:10.0.2.15:80", &f), -EINVAL);
	assert_int_equal(switch_forward_parse("tcp:1:2:3:4:5", &f), -EINVAL);
	assert_int_equal(switch_forward_parse("tcp:1:10.0.2.15:80:", &f), -EINVAL);
	assert_int_equal(switch_subnet_parse("10.0.2.0/24", &d.net, &d.prefix), 0);
	assert_int_equal(switch_subnet_parse("10.0.2.1/24", &d.net, &d.prefix), -EINVAL);
	assert_int_equal(switch_subnet_parse("10.0.0.0/7", &d.net, &d.prefix), -EINVAL);
	assert_int_equal(switch_subnet_parse("10.0.0.0/", &d.net, &d.prefix), -EINVAL);
	/* Found by fuzz_switch_dhcp: 0.0.0.0/28 read as "no subnet" with a prefix. */
	assert_int_equal(switch_subnet_parse("0.0.0.0/24", &d.net, &d.prefix), -EINVAL);
	/* A NAT switch gets the default subnet; its forwards must point into it. */
	memset(&d, 0, sizeof(d));
	strcpy(d.name, "lan");
	d.type = SWITCH_NAT;
	assert_int_equal(switch_forward_parse("tcp:8080:10.0.2.15:80", &d.forwards[0]), 0);
	d.nr_forwards = 1;
	assert_int_equal(switch_def_validate(&d, &err), 0);
	assert_int_equal(d.net, SWITCH_NAT_DEFAULT_NET);
	text = switch_def_format(&d);
	assert_non_null(text);
	assert_int_equal(switch_def_parse(text, strlen(text), "t", &e, &err), 0);
	assert_memory_equal(&d, &e, sizeof(d));
	free(text);
	assert_int_equal(switch_forward_parse("tcp:8081:10.0.2.2:80", &d.forwards[1]), 0);
	d.nr_forwards = 2;
	assert_int_equal(switch_def_validate(&d, &err), -EINVAL); /* the gateway */
	d.forwards[1].guest_ip = 0x0a000210;
	d.forwards[1].host_port = 8080;
	assert_int_equal(switch_def_validate(&d, &err), -EINVAL); /* the host port twice */
	/* Internal: without a subnet a bare tap (for a bridge); the tap name defaults. */
	memset(&d, 0, sizeof(d));
	strcpy(d.name, "a-rather-long-switch-name");
	d.type = SWITCH_INTERNAL;
	assert_int_equal(switch_def_validate(&d, &err), 0);
	d.net = 0x0a4d0000;
	d.prefix = 24;
	assert_int_equal(switch_def_validate(&d, &err), 0);
	assert_true(strlen(d.tap) <= SWITCH_TAP_MAX && !strncmp(d.tap, "nestvm-", 7));
	strcpy(d.tap, "bad/name");
	assert_int_equal(switch_def_validate(&d, &err), -EINVAL);
	/* switch.json: unknown fields and wrong types refused. */
#define PARSE(text) switch_def_parse(text, strlen(text), "t", &e, &err)
	assert_int_equal(PARSE("{\"name\":\"x\",\"type\":\"private\",\"frob\":1}"), -EINVAL);
	assert_non_null(strstr(err.msg, "unknown field 'frob'"));
	assert_int_equal(PARSE("{\"name\":\"x\",\"type\":\"hub\"}"), -EINVAL);
	assert_int_equal(PARSE("{\"name\":\"x\"}"), -EINVAL);
	assert_int_equal(PARSE("{\"name\":\"x\",\"type\":\"private\",\"subnet\":\"10.0.0.0/24\"}"),
	                 -EINVAL);
	assert_int_equal(PARSE("{\"name\":\"x\",\"type\":\"nat\",\"forwards\":[\"tcp:1\"]}"),
	                 -EINVAL);
	assert_int_equal(PARSE("{\"name\":\"x\",\"type\":\"private\"}"), 0);
#undef PARSE
}

/* ---- netport batches (netport.h, step 4) ---- */

static size_t put_rec(uint8_t *buf, size_t off, uint32_t len)
{
	uint32_t l = htole32(len);

	memcpy(buf + off, &l, 4);
	memset(buf + off + 4, 0x5a, len);
	return off + netport_rec_size(len);
}

/* Take every record of @msg (at most @max); returns how many, -1 if the framing broke. */
static int take_all(const uint8_t *msg, size_t len, unsigned int max)
{
	const uint8_t *rec;
	size_t off = 0, rec_len;
	unsigned int count = 0;
	int r;

	while ((r = netport_batch_next(msg, len, &off, &count, max, &rec, &rec_len)) > 0) {
		assert_true(rec >= msg + 4 && rec + rec_len <= msg + len);
		assert_true(((uintptr_t)(rec - msg)) % 4 == 0);
	}
	return r < 0 ? -1 : (int)count;
}

static void test_batch_framing(void **state)
{
	static uint8_t msg[NETPORT_BATCH_MSG_MAX + 64];
	size_t off;

	(void)state;
	/* Good: records of every padding, the last one's padding left off or not. */
	off = 0;
	for (uint32_t len = 22; len < 26; len++)
		off = put_rec(msg, off, len);
	assert_int_equal(take_all(msg, off, 64), 4);
	assert_int_equal(take_all(msg, off - 1, 64), 4); /* 25 bytes: 3 of padding, 1 left off */
	/* The largest record alone. */
	off = put_rec(msg, 0, NETPORT_MSG_MAX);
	assert_true(off <= NETPORT_BATCH_MSG_MAX);
	assert_int_equal(take_all(msg, off, 1), 1);
	/* Empty. */
	assert_int_equal(take_all(msg, 0, 64), -1);
	/* A truncated length field. */
	off = put_rec(msg, 0, 30);
	assert_int_equal(take_all(msg, off + 3, 64), -1);
	/* A length past the end. */
	assert_int_equal(take_all(msg, off - 3, 64), -1);
	/* Zero length. */
	memset(msg, 0, 8);
	assert_int_equal(take_all(msg, 8, 64), -1);
	/* Longer than a message may be (and a length with its top bit, no wrap). */
	put_rec(msg, 0, 10);
	memcpy(msg, &(uint32_t){htole32(NETPORT_MSG_MAX + 1)}, 4);
	assert_int_equal(take_all(msg, sizeof(msg), 64), -1);
	memcpy(msg, &(uint32_t){htole32(0xfffffffc)}, 4);
	assert_int_equal(take_all(msg, sizeof(msg), 64), -1);
	/* Too many: the max stands, one more does not. */
	off = 0;
	for (int i = 0; i < 5; i++)
		off = put_rec(msg, off, 22);
	assert_int_equal(take_all(msg, off, 5), 5);
	assert_int_equal(take_all(msg, off, 4), -1);
}

static void test_hello_batch(void **state)
{
	struct netport_hello h = {.vm = "a", .mac = {2, 0, 0, 0, 0, 1}}, g;
	char buf[NETPORT_HELLO_MAX], why[128];
	const char *bad[] = {"0", "65", "-1", "\"8\"", "1.5", "true"};
	int n;

	(void)state;
	/* Not asked: no field, which an old switch would refuse. */
	n = netport_hello_format(&h, buf, sizeof(buf));
	assert_true(n > 0);
	assert_null(memmem(buf, (size_t)n, "batch", 5));
	assert_int_equal(netport_hello_parse(buf, (size_t)n, &g, why, sizeof(why)), 0);
	assert_int_equal(g.batch, 0);
	h.batch = NETPORT_BATCH_MAX;
	n = netport_hello_format(&h, buf, sizeof(buf));
	assert_int_equal(netport_hello_parse(buf, (size_t)n, &g, why, sizeof(why)), 0);
	assert_int_equal(g.batch, NETPORT_BATCH_MAX);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		n = snprintf(buf, sizeof(buf),
		             "{\"netport\":1,\"vm\":\"a\",\"adapter\":0,"
		             "\"mac\":\"02:00:00:00:00:01\",\"batch\":%s}",
		             bad[i]);
		assert_int_equal(netport_hello_parse(buf, (size_t)n, &g, why, sizeof(why)),
		                 -EINVAL);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fdb_learn_and_age),
	    cmocka_unit_test(test_fdb_cap_and_forget),
	    cmocka_unit_test_setup_teardown(test_flood_learn_hairpin, setup_core, teardown_core),
	    cmocka_unit_test_setup_teardown(test_congestion_and_broken, setup_core, teardown_core),
	    cmocka_unit_test_setup_teardown(test_spoof_guard, setup_core, teardown_core),
	    cmocka_unit_test_setup_teardown(test_dhcp_and_router_guards, setup_core, teardown_core),
	    cmocka_unit_test_setup_teardown(test_malformed, setup_core, teardown_core),
	    cmocka_unit_test_setup_teardown(test_csum_for_uplink, setup_core, teardown_core),
	    cmocka_unit_test_setup_teardown(test_uplink_macs, setup_core, teardown_core),
	    cmocka_unit_test(test_frame_parse),
	    cmocka_unit_test(test_switch_def),
	    cmocka_unit_test(test_batch_framing),
	    cmocka_unit_test(test_hello_batch),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
