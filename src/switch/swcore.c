// SPDX-License-Identifier: MIT
/* The switch's forwarding core (swcore.h). */
#include "switch/swcore.h"

#include "switch/frame.h"

#include <endian.h>
#include <errno.h>
#include <string.h>

int sw_core_init(struct sw_core *sw, uint32_t fdb_capacity, int64_t ageing_ms)
{
	memset(sw, 0, sizeof(*sw));
	for (unsigned int i = 0; i < SW_MAX_PORTS; i++)
		sw->ports[i].fd = -1;
	return fdb_init(&sw->fdb, fdb_capacity, ageing_ms);
}

void sw_core_destroy(struct sw_core *sw)
{
	fdb_destroy(&sw->fdb);
}

int sw_port_add(struct sw_core *sw, unsigned int num, const struct netport_hello *hello,
                sw_port_send_fn send, void *opaque)
{
	struct sw_port *p;

	if (num == SW_UPLINK && !hello) {
		if (sw->ports[SW_UPLINK].used)
			return -EBUSY;
	} else {
		for (num = 1; num < SW_MAX_PORTS && sw->ports[num].used; num++)
			;
		if (num == SW_MAX_PORTS)
			return -ENOSPC;
	}
	p = &sw->ports[num];
	memset(p, 0, sizeof(*p));
	p->used = true;
	p->uplink = num == SW_UPLINK;
	if (hello)
		p->hello = *hello;
	p->send = send;
	p->opaque = opaque;
	p->fd = -1;
	p->since = sw->wall_now;
	return (int)num;
}

int sw_uplink_add_mac(struct sw_core *sw, const uint8_t mac[6])
{
	if (sw->nr_uplink_macs == SW_UPLINK_MACS)
		return -ENOSPC;
	memcpy(sw->uplink_macs[sw->nr_uplink_macs++], mac, 6);
	return 0;
}

/* Whether @mac is one of the uplink's own (and the uplink is there). */
static bool sw_uplink_owns(const struct sw_core *sw, const uint8_t *mac)
{
	if (!sw->ports[SW_UPLINK].used)
		return false;
	for (unsigned int i = 0; i < sw->nr_uplink_macs; i++)
		if (!memcmp(sw->uplink_macs[i], mac, 6))
			return true;
	return false;
}

static void counters_add(struct sw_counters *t, const struct sw_counters *c)
{
	t->frames_in += c->frames_in;
	t->bytes_in += c->bytes_in;
	t->frames_out += c->frames_out;
	t->bytes_out += c->bytes_out;
	t->drop_malformed += c->drop_malformed;
	t->drop_spoofed_mac += c->drop_spoofed_mac;
	t->drop_dhcp_guard += c->drop_dhcp_guard;
	t->drop_router_guard += c->drop_router_guard;
	t->drop_congested += c->drop_congested;
}

void sw_core_totals(const struct sw_core *sw, struct sw_counters *t)
{
	*t = sw->departed;
	for (unsigned int i = 0; i < SW_MAX_PORTS; i++)
		if (sw->ports[i].used)
			counters_add(t, &sw->ports[i].c);
}

void sw_port_remove(struct sw_core *sw, unsigned int num)
{
	if (num >= SW_MAX_PORTS || !sw->ports[num].used)
		return;
	fdb_forget_port(&sw->fdb, num);
	counters_add(&sw->departed, &sw->ports[num].c);
	memset(&sw->ports[num], 0, sizeof(sw->ports[num]));
	sw->ports[num].fd = -1;
}

int sw_port_find_mac(const struct sw_core *sw, const uint8_t mac[6])
{
	for (unsigned int i = 1; i < SW_MAX_PORTS; i++)
		if (sw->ports[i].used && !memcmp(sw->ports[i].hello.mac, mac, 6))
			return (int)i;
	return -1;
}

void sw_count_malformed(struct sw_core *sw, unsigned int num)
{
	if (num < SW_MAX_PORTS)
		sw->ports[num].c.drop_malformed++;
}

/* Hand a frame to port @num and count what happened. */
static void sw_deliver(struct sw_core *sw, unsigned int num, const struct netport_hdr *hdr,
                       const uint8_t *frame, size_t len)
{
	struct sw_port *p = &sw->ports[num];
	int r;

	if (!p->used || p->broken)
		return;
	r = p->send(p, hdr, frame, len);
	if (r == 0) {
		p->c.frames_out++;
		p->c.bytes_out += len;
	} else if (r == -EAGAIN || r == -ENOBUFS) {
		p->c.drop_congested++;
	} else {
		p->broken = true;
	}
}

/*
 * Forward a frame that came in on port @in: to its learned port, or to
 * every other one. The uplink wants complete checksums: a frame that goes
 * there gets its checksum done first, and then goes to everyone complete.
 */
static void sw_forward(struct sw_core *sw, unsigned int in, struct netport_hdr *hdr, uint8_t *frame,
                       size_t len, int64_t now_ms)
{
	int out = frame_mac_is_multicast(frame) ? -1
	          : sw_uplink_owns(sw, frame)   ? SW_UPLINK
	                                        : fdb_lookup(&sw->fdb, frame, now_ms);

	if (out == (int)in)
		return; /* the destination is behind the port it came from: no hairpin */
	if ((hdr->flags & NETPORT_F_NEEDS_CSUM) && (out == SW_UPLINK || out < 0) &&
	    sw->ports[SW_UPLINK].used && in != SW_UPLINK) {
		if (netport_csum_complete(frame, len, hdr->csum_start, hdr->csum_offset) < 0) {
			sw->ports[in].c.drop_malformed++;
			return;
		}
		memset(hdr, 0, sizeof(*hdr));
	}
	if (out >= 0) {
		sw_deliver(sw, (unsigned int)out, hdr, frame, len);
		return;
	}
	for (unsigned int i = 0; i < SW_MAX_PORTS; i++)
		if (i != in && sw->ports[i].used)
			sw_deliver(sw, i, hdr, frame, len);
}

/* The DHCP server's answer to a request from port @in, if the switch has a server. */
static bool sw_dhcp(struct sw_core *sw, unsigned int in, const uint8_t *frame, size_t len)
{
	static const struct netport_hdr none;
	uint8_t reply[DHCP_REPLY_MAX];
	size_t off, plen;
	int n;

	if (!sw->dhcp || !dhcp_frame_is_request(frame, len, &off, &plen))
		return false;
	n = dhcp_server_handle(sw->dhcp, frame, len, sw->wall_now, reply);
	if (n > 0)
		sw_deliver(sw, in, &none, reply, (size_t)n);
	return true; /* answered or not, a request for the switch's server goes nowhere else */
}

void sw_input_msg(struct sw_core *sw, unsigned int num, uint8_t *msg, size_t len, int64_t now_ms)
{
	struct sw_port *p = num < SW_MAX_PORTS ? &sw->ports[num] : NULL;
	struct netport_hdr hdr;
	struct frame_info fi;
	uint8_t *frame;
	size_t flen;

	if (!p || !p->used)
		return;
	if (len < sizeof(hdr) + NETPORT_FRAME_MIN || len > NETPORT_MSG_MAX) {
		p->c.drop_malformed++;
		return;
	}
	memcpy(&hdr, msg, sizeof(hdr));
	hdr.csum_start = le16toh(hdr.csum_start);
	hdr.csum_offset = le16toh(hdr.csum_offset);
	frame = msg + sizeof(hdr);
	flen = len - sizeof(hdr);
	/*
	 * A checksum to complete lies within the frame and past what the guards
	 * read: else completing it after the guards would rewrite a source MAC
	 * or a UDP port they passed (found by fuzz_switch_frame).
	 */
	if ((hdr.flags & ~NETPORT_F_NEEDS_CSUM) || hdr.reserved0 || hdr.reserved1 ||
	    frame_parse(frame, flen, &fi) < 0 || fi.l3_bad || frame_mac_is_multicast(fi.src) ||
	    ((hdr.flags & NETPORT_F_NEEDS_CSUM) &&
	     ((size_t)hdr.csum_start + hdr.csum_offset + 2 > flen ||
	      (size_t)hdr.csum_start + hdr.csum_offset < fi.guard_end))) {
		p->c.drop_malformed++;
		return;
	}
	if (!p->hello.mac_spoofing && memcmp(fi.src, p->hello.mac, 6)) {
		p->c.drop_spoofed_mac++;
		return;
	}
	if (p->hello.dhcp_guard && frame_is_dhcp_server(&fi)) {
		p->c.drop_dhcp_guard++;
		return;
	}
	if (p->hello.router_guard && frame_is_router_msg(&fi)) {
		p->c.drop_router_guard++;
		return;
	}
	p->c.frames_in++;
	p->c.bytes_in += flen;
	if (!sw_uplink_owns(sw, fi.src))
		fdb_learn(&sw->fdb, fi.src, num, now_ms);
	if (sw_dhcp(sw, num, frame, flen))
		return;
	sw_forward(sw, num, &hdr, frame, flen, now_ms);
}

void sw_input_uplink(struct sw_core *sw, const uint8_t *frame, size_t len, int64_t now_ms)
{
	struct netport_hdr none = {0};
	struct sw_port *p = &sw->ports[SW_UPLINK];

	if (!p->used)
		return;
	if (len < NETPORT_FRAME_MIN || len > NETPORT_FRAME_MAX) {
		p->c.drop_malformed++;
		return;
	}
	p->c.frames_in++;
	p->c.bytes_in += len;
	if (!frame_mac_is_multicast(frame + 6))
		fdb_learn(&sw->fdb, frame + 6, SW_UPLINK, now_ms);
	/* Without NETPORT_F_NEEDS_CSUM, sw_forward() never writes to the frame. */
	sw_forward(sw, SW_UPLINK, &none, (uint8_t *)frame, len, now_ms);
}
