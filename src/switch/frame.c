// SPDX-License-Identifier: MIT
/* The switch's frame parser (frame.h). */
#include "switch/frame.h"

#include <errno.h>
#include <string.h>

#define IPV4_MIN_HDR 20
#define IPV6_HDR 40
#define IPV4_FRAG_OFFSET_MASK 0x1fff
#define ARP_FIXED 8

/* The UDP/TCP ports or the ICMPv6 type at l4_off, once the L4 header is known. */
static void frame_parse_l4(const uint8_t *f, struct frame_info *fi)
{
	const uint8_t *l4 = f + fi->l4_off;

	switch (fi->l4_proto) {
	case IP_PROTO_UDP:
	case IP_PROTO_TCP:
		/* A first fragment too small for the ports hides them: RFC 1858's tiny fragments.
		 */
		if (fi->l4_len < (fi->l4_proto == IP_PROTO_UDP ? 8u : 20u)) {
			fi->l3_bad = true;
			return;
		}
		fi->have_ports = true;
		fi->sport = frame_be16(l4);
		fi->dport = frame_be16(l4 + 2);
		fi->guard_end = fi->l4_off + 4;
		break;
	case IP_PROTO_ICMPV6:
		if (fi->l4_len < 4) {
			fi->l3_bad = true;
			return;
		}
		fi->have_icmp6 = true;
		fi->icmp6_type = l4[0];
		fi->guard_end = fi->l4_off + 1;
		break;
	}
}

static void frame_parse_ipv4(const uint8_t *f, size_t len, struct frame_info *fi)
{
	const uint8_t *ip = f + fi->l3_off;
	size_t avail = len - fi->l3_off;
	unsigned int ihl, total;
	uint16_t frag;

	if (avail < IPV4_MIN_HDR || (ip[0] >> 4) != 4) {
		fi->l3_bad = true;
		return;
	}
	ihl = (ip[0] & 0xf) * 4u;
	total = frame_be16(ip + 2);
	/* Ethernet pads short frames: more bytes than total are fine, fewer are not. */
	if (ihl < IPV4_MIN_HDR || total < ihl || total > avail) {
		fi->l3_bad = true;
		return;
	}
	fi->guard_end = fi->l3_off + ihl;
	frag = frame_be16(ip + 6);
	if (frag & IPV4_FRAG_OFFSET_MASK)
		return; /* a later fragment: no L4 header here */
	fi->l4_proto = ip[9];
	fi->l4_off = fi->l3_off + ihl;
	fi->l4_len = total - ihl;
	frame_parse_l4(f, fi);
}

static void frame_parse_ipv6(const uint8_t *f, size_t len, struct frame_info *fi)
{
	const uint8_t *ip = f + fi->l3_off;
	size_t avail = len - fi->l3_off;
	unsigned int off, end, payload;
	uint8_t nh;

	if (avail < IPV6_HDR || (ip[0] >> 4) != 6) {
		fi->l3_bad = true;
		return;
	}
	payload = frame_be16(ip + 4);
	/* A payload length of 0 means a jumbogram (RFC 2675): never on Ethernet. */
	if (payload == 0 || IPV6_HDR + payload > avail) {
		fi->l3_bad = true;
		return;
	}
	nh = ip[6];
	off = fi->l3_off + IPV6_HDR;
	fi->guard_end = off;
	end = fi->l3_off + IPV6_HDR + payload;
	for (int i = 0;; i++) {
		unsigned int hlen;

		if (nh != IPV6_NH_HOPOPTS && nh != IPV6_NH_ROUTING && nh != IPV6_NH_FRAGMENT &&
		    nh != IPV6_NH_DSTOPTS)
			break;
		/* RFC 7112: the whole header chain is in the first fragment, or we refuse it. */
		if (i == FRAME_IPV6_MAX_EXT || end - off < 8) {
			fi->l3_bad = true;
			return;
		}
		if (nh == IPV6_NH_FRAGMENT) {
			if (frame_be16(f + off + 2) & 0xfff8)
				return; /* a later fragment */
			hlen = 8;
		} else {
			hlen = (f[off + 1] + 1u) * 8;
			if (hlen > end - off) {
				fi->l3_bad = true;
				return;
			}
		}
		nh = f[off];
		off += hlen;
		fi->guard_end = off;
	}
	if (nh == IPV6_NH_NONE)
		return;
	fi->l4_proto = nh;
	fi->l4_off = off;
	fi->l4_len = end - off;
	frame_parse_l4(f, fi);
}

static void frame_parse_arp(size_t len, const uint8_t *f, struct frame_info *fi)
{
	size_t avail = len - fi->l3_off;
	const uint8_t *a = f + fi->l3_off;

	if (avail < ARP_FIXED || avail < ARP_FIXED + 2u * (a[4] + a[5]))
		fi->l3_bad = true;
}

int frame_parse(const uint8_t *f, size_t len, struct frame_info *fi)
{
	unsigned int off = 12;

	memset(fi, 0, sizeof(*fi));
	if (len < ETH_HDR_LEN)
		return -EINVAL;
	fi->dst = f;
	fi->src = f + 6;
	fi->ethertype = frame_be16(f + 12);
	for (int tags = 0;
	     tags < 2 && (fi->ethertype == ETH_TYPE_VLAN || fi->ethertype == ETH_TYPE_QINQ);
	     tags++) {
		off += 4;
		if (len < off + 2u) {
			fi->l3_bad = true;
			fi->l3_off = (unsigned int)len;
			return 0;
		}
		fi->ethertype = frame_be16(f + off);
	}
	fi->l3_off = off + 2;
	fi->guard_end = fi->l3_off;
	switch (fi->ethertype) {
	case ETH_TYPE_IPV4:
		frame_parse_ipv4(f, len, fi);
		break;
	case ETH_TYPE_IPV6:
		frame_parse_ipv6(f, len, fi);
		break;
	case ETH_TYPE_ARP:
		frame_parse_arp(len, f, fi);
		break;
	case ETH_TYPE_VLAN:
	case ETH_TYPE_QINQ:
		fi->l3_bad = true; /* a third tag: nobody sends that but to hide a header */
		break;
	}
	return 0;
}

bool frame_is_dhcp_server(const struct frame_info *fi)
{
	if (!fi->have_ports || fi->l4_proto != IP_PROTO_UDP)
		return false;
	if (fi->ethertype == ETH_TYPE_IPV4)
		return fi->sport == UDP_PORT_BOOTPS;
	return fi->ethertype == ETH_TYPE_IPV6 && fi->sport == UDP_PORT_DHCP6_SERVER;
}

bool frame_is_router_msg(const struct frame_info *fi)
{
	return fi->ethertype == ETH_TYPE_IPV6 && fi->have_icmp6 &&
	       (fi->icmp6_type == ICMPV6_ROUTER_ADVERT || fi->icmp6_type == ICMPV6_REDIRECT);
}
