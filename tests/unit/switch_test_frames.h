/* SPDX-License-Identifier: MIT */
/* Frame builders for the switch's unit tests (test_switch*.c). */
#ifndef NESTVM_TESTS_SWITCH_TEST_FRAMES_H
#define NESTVM_TESTS_SWITCH_TEST_FRAMES_H

#include "net/netport.h"
#include "switch/frame.h"

#include <string.h>

static const uint8_t tf_bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

/* An Ethernet header; returns 14. */
static inline size_t tf_eth(uint8_t *f, const uint8_t *dst, const uint8_t *src, uint16_t type)
{
	memcpy(f, dst, 6);
	memcpy(f + 6, src, 6);
	frame_put16(f + 12, type);
	return ETH_HDR_LEN;
}

/* A 20-byte IPv4 header for @plen payload bytes of @proto, checksummed. */
static inline void tf_ipv4(uint8_t *ip, uint8_t proto, uint32_t src, uint32_t dst, size_t plen)
{
	memset(ip, 0, 20);
	ip[0] = 0x45;
	frame_put16(ip + 2, (uint16_t)(20 + plen));
	ip[8] = 64;
	ip[9] = proto;
	frame_put32(ip + 12, src);
	frame_put32(ip + 16, dst);
	frame_put16(ip + 10, (uint16_t)~netport_csum_fold(netport_csum_add(0, ip, 20)));
}

/* An Ethernet+IPv4+UDP frame from @sport to @dport with @plen zero bytes; its length. */
static inline size_t tf_udp4(uint8_t *f, const uint8_t *dst, const uint8_t *src, uint16_t sport,
                             uint16_t dport, size_t plen)
{
	size_t n = tf_eth(f, dst, src, ETH_TYPE_IPV4);

	tf_ipv4(f + n, IP_PROTO_UDP, 0x0a000001, 0xffffffff, 8 + plen);
	memset(f + n + 20, 0, 8 + plen);
	frame_put16(f + n + 20, sport);
	frame_put16(f + n + 22, dport);
	frame_put16(f + n + 24, (uint16_t)(8 + plen));
	return n + 20 + 8 + plen;
}

/*
 * An Ethernet+IPv6 frame carrying ICMPv6 @type, after @ext hop-by-hop
 * option headers (8 bytes each); its length.
 */
static inline size_t tf_icmp6(uint8_t *f, const uint8_t *src, uint8_t type, int ext)
{
	static const uint8_t all_nodes[6] = {0x33, 0x33, 0, 0, 0, 1};
	size_t n = tf_eth(f, all_nodes, src, ETH_TYPE_IPV6), plen = (size_t)ext * 8 + 16;
	uint8_t *ip = f + n, *p = ip + 40;

	memset(ip, 0, 40 + plen);
	ip[0] = 0x60;
	frame_put16(ip + 4, (uint16_t)plen);
	ip[6] = ext ? IPV6_NH_HOPOPTS : IP_PROTO_ICMPV6;
	ip[7] = 255;
	for (int i = 0; i < ext; i++, p += 8)
		p[0] = i + 1 < ext ? IPV6_NH_HOPOPTS : IP_PROTO_ICMPV6;
	p[0] = type;
	return n + 40 + plen;
}

/* A netport message (zero header) holding frame @f of @len bytes, into @msg; its length. */
static inline size_t tf_msg(uint8_t *msg, const uint8_t *f, size_t len)
{
	memset(msg, 0, sizeof(struct netport_hdr));
	memcpy(msg + sizeof(struct netport_hdr), f, len);
	return sizeof(struct netport_hdr) + len;
}

#endif
