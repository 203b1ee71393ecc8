/* SPDX-License-Identifier: MIT */
#ifndef NESTVM_SWITCH_FRAME_H
#define NESTVM_SWITCH_FRAME_H

/*
 * What the switch reads in an Ethernet frame: its addresses, at most two
 * VLAN tags (802.1Q, 802.1ad), and for the port guards the IPv4 or IPv6
 * header (IPv6 extension headers walked up to FRAME_IPV6_MAX_EXT), the UDP
 * ports, the ICMPv6 type. Every field comes from a guest and is checked
 * against the frame's length before it is read; nothing is written.
 *
 * RFC 791 (IPv4), RFC 8200 §4 (IPv6 extension headers), RFC 768 (UDP),
 * RFC 4861 §4.2 and §4.5 (router advertisement, redirect), RFC 826 (ARP).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ETH_HDR_LEN 14
#define ETH_TYPE_IPV4 0x0800
#define ETH_TYPE_ARP 0x0806
#define ETH_TYPE_VLAN 0x8100
#define ETH_TYPE_QINQ 0x88a8
#define ETH_TYPE_IPV6 0x86dd

#define IP_PROTO_TCP 6
#define IP_PROTO_UDP 17
#define IP_PROTO_ICMPV6 58
#define IPV6_NH_HOPOPTS 0
#define IPV6_NH_ROUTING 43
#define IPV6_NH_FRAGMENT 44
#define IPV6_NH_DSTOPTS 60
#define IPV6_NH_NONE 59
#define FRAME_IPV6_MAX_EXT 8

#define UDP_PORT_BOOTPS 67 /* DHCP server */
#define UDP_PORT_BOOTPC 68 /* DHCP client */
#define UDP_PORT_DHCP6_CLIENT 546
#define UDP_PORT_DHCP6_SERVER 547
#define ICMPV6_ROUTER_ADVERT 134
#define ICMPV6_REDIRECT 137

/* What frame_parse() found. Offsets are from the frame's first byte. */
struct frame_info {
	const uint8_t *dst, *src;
	uint16_t ethertype;  /* after the VLAN tags */
	unsigned int l3_off; /* where the ARP/IP header starts */
	bool l3_bad;         /* an ARP/IPv4/IPv6 header that does not fit or lies about its size */
	uint8_t l4_proto;    /* IP_PROTO_*, 0 when unknown (a later fragment, no header) */
	unsigned int l4_off;
	unsigned int l4_len; /* bytes from l4_off to the end of the IP payload */
	bool have_ports;     /* sport/dport are valid (UDP or TCP header present) */
	uint16_t sport, dport;
	bool have_icmp6;
	uint8_t icmp6_type;
	/*
	 * The end of the bytes the switch decides on (addresses, L3 headers,
	 * ports, ICMPv6 type): a checksum that a port asks the switch to
	 * complete must be written past it, or completing it would change a
	 * frame after the guards passed it.
	 */
	unsigned int guard_end;
};

/*
 * frame_parse - parse the @len bytes at @f. Returns 0, or -EINVAL for a
 * frame shorter than an Ethernet header (then @fi is zeroed). A frame
 * whose layer 3 header is broken parses with l3_bad set.
 */
int frame_parse(const uint8_t *f, size_t len, struct frame_info *fi)
    __attribute__((warn_unused_result));

/* frame_is_dhcp_server - a DHCP (UDP from port 67) or DHCPv6 (from 547) server message. */
bool frame_is_dhcp_server(const struct frame_info *fi);

/* frame_is_router_msg - an ICMPv6 router advertisement or redirect. */
bool frame_is_router_msg(const struct frame_info *fi);

/* frame_mac_is_multicast - the group bit (also set in broadcast). */
static inline bool frame_mac_is_multicast(const uint8_t *mac)
{
	return mac[0] & 1;
}

static inline uint16_t frame_be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t frame_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void frame_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void frame_put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

#endif
