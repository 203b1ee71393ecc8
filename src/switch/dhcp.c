// SPDX-License-Identifier: MIT
/* The switch's DHCP server (dhcp.h). */
#include "switch/dhcp.h"

#include "net/netport.h"
#include "switch/frame.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define BOOTP_REQUEST 1
#define BOOTP_REPLY 2
#define BOOTP_HTYPE_ETHER 1
#define BOOTP_MIN_LEN 300 /* RFC 1542 §2.1: some clients drop shorter replies */
#define DHCP_OPT_PAD 0
#define DHCP_OPT_MASK 1
#define DHCP_OPT_ROUTER 3
#define DHCP_OPT_DNS 6
#define DHCP_OPT_REQ_IP 50
#define DHCP_OPT_LEASE 51
#define DHCP_OPT_TYPE 53
#define DHCP_OPT_SERVER_ID 54
#define DHCP_OPT_END 255
#define IPV4_HDR 20
#define UDP_HDR 8

int dhcp_server_init(struct dhcp_server *s, uint32_t net, unsigned int prefix, uint32_t server_ip,
                     uint32_t router, uint32_t dns, uint32_t pool_start, uint32_t pool_end,
                     const uint8_t server_mac[6])
{
	memset(s, 0, sizeof(*s));
	if (prefix < 8 || prefix > 30)
		return -EINVAL;
	s->mask = ~0u << (32 - prefix);
	s->net = net & s->mask;
	if ((server_ip & s->mask) != s->net || (pool_start & s->mask) != s->net ||
	    (pool_end & s->mask) != s->net || pool_start > pool_end ||
	    (server_ip >= pool_start && server_ip <= pool_end))
		return -EINVAL;
	s->server_ip = server_ip;
	s->router = router;
	s->dns = dns;
	s->pool_start = pool_start;
	s->pool_end = pool_end;
	memcpy(s->server_mac, server_mac, 6);
	return 0;
}

bool dhcp_frame_is_request(const uint8_t *f, size_t len, size_t *off, size_t *plen)
{
	struct frame_info fi;

	if (frame_parse(f, len, &fi) < 0 || fi.l3_bad || fi.ethertype != ETH_TYPE_IPV4 ||
	    !fi.have_ports || fi.l4_proto != IP_PROTO_UDP || fi.dport != UDP_PORT_BOOTPS)
		return false;
	*off = fi.l4_off + UDP_HDR;
	*plen = fi.l4_len - UDP_HDR;
	return true;
}

int dhcp_msg_parse(const uint8_t *p, size_t len, struct dhcp_msg *m)
{
	size_t i = DHCP_FIXED_LEN + 4;

	memset(m, 0, sizeof(*m));
	if (len < DHCP_FIXED_LEN + 4 || frame_be32(p + DHCP_FIXED_LEN) != DHCP_MAGIC)
		return -EINVAL;
	m->op = p[0];
	m->htype = p[1];
	m->hlen = p[2];
	if (m->op != BOOTP_REQUEST || m->htype != BOOTP_HTYPE_ETHER || m->hlen != 6)
		return -EINVAL;
	m->xid = frame_be32(p + 4);
	m->flags = frame_be16(p + 10);
	m->ciaddr = frame_be32(p + 12);
	memcpy(m->chaddr, p + 28, 6);
	while (i < len) {
		uint8_t code = p[i], olen;

		if (code == DHCP_OPT_END)
			break;
		if (code == DHCP_OPT_PAD) {
			i++;
			continue;
		}
		if (i + 2 > len || i + 2 + p[i + 1] > len)
			return -EINVAL;
		olen = p[i + 1];
		if (code == DHCP_OPT_TYPE && olen == 1)
			m->type = p[i + 2];
		else if (code == DHCP_OPT_REQ_IP && olen == 4)
			m->req_ip = frame_be32(p + i + 2);
		else if (code == DHCP_OPT_SERVER_ID && olen == 4)
			m->server_id = frame_be32(p + i + 2);
		i += 2u + olen;
	}
	return m->type ? 0 : -EINVAL;
}

const struct dhcp_lease *dhcp_lease_find(const struct dhcp_server *s, const uint8_t mac[6])
{
	for (unsigned int i = 0; i < s->nr_leases; i++)
		if (!memcmp(s->leases[i].mac, mac, 6))
			return &s->leases[i];
	return NULL;
}

static bool dhcp_ip_taken(const struct dhcp_server *s, uint32_t ip)
{
	for (unsigned int i = 0; i < s->nr_leases; i++)
		if (s->leases[i].ip == ip)
			return true;
	return false;
}

static bool dhcp_in_pool(const struct dhcp_server *s, uint32_t ip)
{
	return ip >= s->pool_start && ip <= s->pool_end;
}

/*
 * The lease of @mac, made if needed: @want if it is free, else the pool's
 * first free address, else the address of the lease seen least recently if
 * that is older than a lease time. NULL when the pool is all in use.
 */
static struct dhcp_lease *dhcp_lease_get(struct dhcp_server *s, const uint8_t mac[6], uint32_t want,
                                         int64_t now)
{
	struct dhcp_lease *l = (struct dhcp_lease *)dhcp_lease_find(s, mac);
	uint32_t ip = 0;

	if (l)
		return l;
	if (want && dhcp_in_pool(s, want) && !dhcp_ip_taken(s, want))
		ip = want;
	for (uint32_t a = s->pool_start; !ip && a <= s->pool_end && a != 0; a++)
		if (!dhcp_ip_taken(s, a))
			ip = a;
	if (ip && s->nr_leases < DHCP_MAX_LEASES) {
		l = &s->leases[s->nr_leases++];
	} else {
		struct dhcp_lease *old = NULL;

		for (unsigned int i = 0; i < s->nr_leases; i++)
			if (!old || s->leases[i].seen < old->seen)
				old = &s->leases[i];
		if (!old || now - old->seen < DHCP_LEASE_TIME_S)
			return NULL;
		l = old;
		ip = old->ip;
	}
	memcpy(l->mac, mac, 6);
	l->ip = ip;
	l->seen = now;
	s->dirty = true;
	return l;
}

static uint8_t *dhcp_opt32(uint8_t *o, uint8_t code, uint32_t v)
{
	o[0] = code;
	o[1] = 4;
	frame_put32(o + 2, v);
	return o + 6;
}

/* Build the reply of @type to @m offering @yiaddr into @reply; returns its length. */
static int dhcp_reply(const struct dhcp_server *s, const struct dhcp_msg *m, int type,
                      uint32_t yiaddr, uint8_t *reply)
{
	uint8_t *ip = reply + ETH_HDR_LEN, *udp = ip + IPV4_HDR, *b = udp + UDP_HDR, *o;
	uint32_t dst = m->ciaddr && type == DHCP_ACK ? m->ciaddr : 0xffffffffu, sum;
	size_t blen, ulen;

	memset(reply, 0, DHCP_REPLY_MAX);
	memcpy(reply, m->chaddr, 6);
	memcpy(reply + 6, s->server_mac, 6);
	frame_put16(reply + 12, ETH_TYPE_IPV4);
	b[0] = BOOTP_REPLY;
	b[1] = BOOTP_HTYPE_ETHER;
	b[2] = 6;
	frame_put32(b + 4, m->xid);
	frame_put16(b + 10, m->flags);
	if (type != DHCP_NAK) {
		frame_put32(b + 12, m->ciaddr);
		frame_put32(b + 16, yiaddr);
	}
	memcpy(b + 28, m->chaddr, 6);
	frame_put32(b + DHCP_FIXED_LEN, DHCP_MAGIC);
	o = b + DHCP_FIXED_LEN + 4;
	*o++ = DHCP_OPT_TYPE;
	*o++ = 1;
	*o++ = (uint8_t)type;
	o = dhcp_opt32(o, DHCP_OPT_SERVER_ID, s->server_ip);
	if (type != DHCP_NAK) {
		o = dhcp_opt32(o, DHCP_OPT_LEASE, DHCP_LEASE_TIME_S);
		o = dhcp_opt32(o, DHCP_OPT_MASK, s->mask);
		if (s->router)
			o = dhcp_opt32(o, DHCP_OPT_ROUTER, s->router);
		if (s->dns)
			o = dhcp_opt32(o, DHCP_OPT_DNS, s->dns);
	}
	*o++ = DHCP_OPT_END;
	blen = (size_t)(o - b) < BOOTP_MIN_LEN ? BOOTP_MIN_LEN : (size_t)(o - b);
	ulen = UDP_HDR + blen;
	ip[0] = 0x45;
	frame_put16(ip + 2, (uint16_t)(IPV4_HDR + ulen));
	ip[8] = 64;
	ip[9] = IP_PROTO_UDP;
	frame_put32(ip + 12, s->server_ip);
	frame_put32(ip + 16, dst);
	frame_put16(ip + 10, (uint16_t)~netport_csum_fold(netport_csum_add(0, ip, IPV4_HDR)));
	frame_put16(udp, UDP_PORT_BOOTPS);
	frame_put16(udp + 2, UDP_PORT_BOOTPC);
	frame_put16(udp + 4, (uint16_t)ulen);
	/* The pseudo-header (RFC 768): addresses, protocol, length. */
	sum = netport_csum_add(0, ip + 12, 8);
	sum += IP_PROTO_UDP + (uint32_t)ulen;
	sum = netport_csum_add(sum, udp, ulen);
	frame_put16(udp + 6, (uint16_t)~netport_csum_fold(sum) ?: 0xffff);
	return (int)(ETH_HDR_LEN + IPV4_HDR + ulen);
}

int dhcp_server_handle(struct dhcp_server *s, const uint8_t *f, size_t len, int64_t now,
                       uint8_t *reply)
{
	struct dhcp_lease *l;
	struct dhcp_msg m;
	size_t off, plen;
	uint32_t want;

	if (!dhcp_frame_is_request(f, len, &off, &plen) || dhcp_msg_parse(f + off, plen, &m) < 0)
		return -EINVAL;
	/* The hardware address must be the frame's: no asking on another's behalf. */
	if (memcmp(m.chaddr, f + 6, 6) || (m.chaddr[0] & 1))
		return -EINVAL;
	switch (m.type) {
	case DHCP_DISCOVER:
		l = dhcp_lease_get(s, m.chaddr, m.req_ip, now);
		if (!l)
			return 0; /* pool exhausted: silence, the client retries */
		l->seen = now;
		return dhcp_reply(s, &m, DHCP_OFFER, l->ip, reply);
	case DHCP_REQUEST:
		if (m.server_id && m.server_id != s->server_ip)
			return 0; /* it chose another server */
		want = m.req_ip ? m.req_ip : m.ciaddr;
		l = dhcp_lease_get(s, m.chaddr, want, now);
		if (!l || (want && want != l->ip))
			return dhcp_reply(s, &m, DHCP_NAK, 0, reply);
		if (now != l->seen)
			s->dirty = true;
		l->seen = now;
		return dhcp_reply(s, &m, DHCP_ACK, l->ip, reply);
	default:
		return 0;
	}
}

char *dhcp_leases_format(struct dhcp_server *s)
{
	json_t *o = json_object(), *a = json_array();
	char *text;

	if (!o || !a) {
		json_decref(o);
		json_decref(a);
		return NULL;
	}
	for (unsigned int i = 0; i < s->nr_leases; i++) {
		char mac[18], ip[INET_ADDRSTRLEN];
		struct in_addr in = {.s_addr = htonl(s->leases[i].ip)};

		netport_mac_format(s->leases[i].mac, mac);
		inet_ntop(AF_INET, &in, ip, sizeof(ip));
		json_array_append_new(a, json_pack("{s:s, s:s, s:I}", "mac", mac, "ip", ip, "seen",
		                                   (json_int_t)s->leases[i].seen));
	}
	json_object_set_new(o, "leases", a);
	text = json_dumps(o, JSON_INDENT(1));
	json_decref(o);
	if (text)
		s->dirty = false;
	return text;
}

int dhcp_leases_parse(struct dhcp_server *s, const char *text, size_t len)
{
	json_t *o = json_loadb(text, len, 0, NULL), *a, *e;
	size_t i;
	int n = 0;

	a = json_object_get(o, "leases");
	if (!json_is_array(a)) {
		json_decref(o);
		return -EINVAL;
	}
	json_array_foreach(a, i, e)
	{
		const char *mac_s = NULL, *ip_s = NULL;
		json_int_t seen = 0;
		struct in_addr in;
		uint8_t mac[6];
		uint32_t ip;

		if (s->nr_leases == DHCP_MAX_LEASES)
			break;
		if (json_unpack(e, "{s:s, s:s, s?I}", "mac", &mac_s, "ip", &ip_s, "seen", &seen) <
		        0 ||
		    netport_mac_parse(mac_s, mac) < 0 || (mac[0] & 1) ||
		    inet_pton(AF_INET, ip_s, &in) != 1)
			continue;
		ip = ntohl(in.s_addr);
		if (!dhcp_in_pool(s, ip) || dhcp_ip_taken(s, ip) || dhcp_lease_find(s, mac))
			continue;
		memcpy(s->leases[s->nr_leases].mac, mac, 6);
		s->leases[s->nr_leases].ip = ip;
		s->leases[s->nr_leases].seen = seen;
		s->nr_leases++;
		n++;
	}
	json_decref(o);
	return n;
}
