/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: a switch port's messages (switch/swcore.c, frame.c,
 * dhcp.c). Whatever an adapter sends — any netport header, any Ethernet
 * frame with any VLAN tags, ARP, IPv4/IPv6 headers and extension chains,
 * UDP, ICMPv6, DHCP — the switch must neither crash nor read out of bounds,
 * and:
 *
 *   - every message is counted exactly once on its port: as a frame in, or
 *     as one of the drops (malformed, spoofed MAC, DHCP guard, router guard);
 *   - a frame the guards let through from a guarded port is not a DHCP
 *     server message, not a router advertisement or redirect, and comes
 *     from the adapter's own MAC;
 *   - nothing goes back to the port it came from;
 *   - with the uplink's MAC known (mode bit 4), a VM's frame to it goes to
 *     the uplink alone;
 *   - a DHCP answer is well formed: to the asking MAC, from the server,
 *     with good IPv4 and UDP checksums.
 *
 * The first byte picks the port's settings; the rest is a sequence of
 * messages, each a little-endian 16-bit length and that many bytes.
 * Seeds: tests/fuzz/seeds/fuzz_switch_frame/.
 */
#include "fuzz_common.h"
#include "switch/frame.h"
#include "switch/swcore.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t mac_a[6] = {0x02, 0x4e, 0x56, 0, 0, 1};
static const uint8_t mac_b[6] = {0x02, 0x4e, 0x56, 0, 0, 2};
static const uint8_t server_mac[6] = {0x52, 0x55, 10, 0, 2, 2};
static unsigned int current_in;
static bool guard_dhcp, guard_router, spoofing, uplink_known;

static int check_send(struct sw_port *p, const struct netport_hdr *hdr, const uint8_t *frame,
                      size_t len)
{
	unsigned int port = (unsigned int)(uintptr_t)p->opaque;
	struct frame_info fi;

	(void)hdr;
	FZ_CHECK(len >= NETPORT_FRAME_MIN && len <= NETPORT_FRAME_MAX);
	FZ_CHECK(frame_parse(frame, len, &fi) == 0);
	/* Only the switch's DHCP server answers on the asking port. */
	if (port == current_in) {
		FZ_CHECK(port == 1 && !memcmp(frame + 6, server_mac, 6));
		uint32_t sum;
		const uint8_t *ip = frame + 14, *udp = ip + 20;
		uint16_t ulen = frame_be16(udp + 4);

		/* To the asker: the adapter, or a MAC behind it when it may spoof (an L1's L2s). */
		FZ_CHECK(spoofing ? !(frame[0] & 1) : !memcmp(frame, mac_a, 6));
		FZ_CHECK(netport_csum_fold(netport_csum_add(0, ip, 20)) == 0xffff);
		sum = netport_csum_add(0, ip + 12, 8) + IP_PROTO_UDP + ulen;
		FZ_CHECK(netport_csum_fold(netport_csum_add(sum, udp, ulen)) == 0xffff);
		FZ_CHECK(fi.sport == UDP_PORT_BOOTPS && fi.dport == UDP_PORT_BOOTPC);
		return 0;
	}
	/* The guards hold for what a guarded port sends on. */
	if (current_in == 1) {
		FZ_CHECK(!uplink_known || port == 0 || memcmp(frame, server_mac, 6));
		FZ_CHECK(!guard_dhcp || !frame_is_dhcp_server(&fi));
		FZ_CHECK(!guard_router || !frame_is_router_msg(&fi));
		FZ_CHECK(spoofing || !memcmp(fi.src, mac_a, 6));
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct sw_core sw;
	static struct dhcp_server dhcp;
	static uint8_t msg[NETPORT_MSG_MAX];
	struct netport_hello h = {.adapter = 0};
	uint8_t mode;

	if (size < 1)
		return 0;
	mode = data[0];
	data++;
	size--;
	FZ_CHECK(sw_core_init(&sw, 64, FDB_AGEING_MS) == 0);
	FZ_CHECK(dhcp_server_init(&dhcp, 0x0a000200, 24, 0x0a000202, 0x0a000202, 0x0a000203,
	                          0x0a00020f, 0x0a0002fe, server_mac) == 0);
	if (mode & 1)
		sw.dhcp = &dhcp;
	sw.wall_now = 1700000000;
	FZ_CHECK(sw_port_add(&sw, SW_UPLINK, NULL, check_send, (void *)(uintptr_t)0) == 0);
	uplink_known = mode & 16;
	if (uplink_known)
		FZ_CHECK(sw_uplink_add_mac(&sw, server_mac) == 0);
	h.mac_spoofing = spoofing = mode & 2;
	h.dhcp_guard = guard_dhcp = !(mode & 4);
	h.router_guard = guard_router = !(mode & 8);
	memcpy(h.mac, mac_a, 6);
	FZ_CHECK(sw_port_add(&sw, 1, &h, check_send, (void *)(uintptr_t)1) == 1);
	memcpy(h.mac, mac_b, 6);
	h.mac_spoofing = true;
	FZ_CHECK(sw_port_add(&sw, 1, &h, check_send, (void *)(uintptr_t)2) == 2);
	for (int64_t now = 0; size >= 2; now += 1000) {
		size_t len = (size_t)(data[0] | data[1] << 8);
		uint64_t before = sw_counters_seen(&sw.ports[1].c), in = sw.ports[1].c.frames_in;
		struct frame_info fi;

		data += 2;
		size -= 2;
		if (len > size)
			len = size;
		memcpy(msg, data, len);
		/* Every other message comes from the uplink, to fill the MAC table. */
		if (now % 3000 == 2000) {
			current_in = 0;
			sw_input_uplink(&sw, msg, len, now);
		} else {
			current_in = 1;
			sw_input_msg(&sw, 1, msg, len, now);
			FZ_CHECK(sw_counters_seen(&sw.ports[1].c) == before + 1);
			/* What got in passed the guards (the message as sent: @data). */
			if (sw.ports[1].c.frames_in == in + 1) {
				FZ_CHECK(len >= 8 && frame_parse(data + 8, len - 8, &fi) == 0);
				FZ_CHECK(!fi.l3_bad && !(fi.src[0] & 1));
				FZ_CHECK(!guard_dhcp || !frame_is_dhcp_server(&fi));
				FZ_CHECK(!guard_router || !frame_is_router_msg(&fi));
				FZ_CHECK(spoofing || !memcmp(fi.src, mac_a, 6));
			}
		}
		data += len;
		size -= len;
	}
	sw_core_destroy(&sw);
	return 0;
}
