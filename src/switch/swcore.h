/* SPDX-License-Identifier: MIT */
#ifndef NESTVM_SWITCH_SWCORE_H
#define NESTVM_SWITCH_SWCORE_H

/*
 * The forwarding core of a switch, without sockets (testable): ports, the
 * MAC table, the port guards, the DHCP server, and per-port counters.
 *
 * Port 0 is the uplink (the host's tap of an internal switch, libslirp of
 * a NAT switch; unused on a private switch). Ports 1..SW_MAX_PORTS-1 are
 * VM adapters (netport.h), whose frames pass the guards first, in this
 * order, each drop counted on the port:
 *
 *   malformed     the message breaks netport.h (size, header), a source MAC
 *                 that is a group address, an ARP/IP header that lies, a
 *                 checksum to complete that would land in the headers the
 *                 guards read
 *   spoofed_mac   the source MAC is not the adapter's (unless mac_spoofing)
 *   dhcp_guard    a DHCP/DHCPv6 server message (unless the guard is off)
 *   router_guard  an ICMPv6 router advertisement or redirect (idem)
 *
 * Then the source MAC is learned on the port, a DHCP request is answered by
 * the switch's DHCP server (if it has one) and goes no further, and the
 * frame goes to the uplink if its destination is one of the uplink's own
 * MACs (sw_uplink_add_mac()), else to the port its destination MAC was
 * learned on, or to every other port (flooding) if it is a group address
 * or unknown. Never back to
 * its own port (no hairpin). A port that cannot take a frame now (its
 * socket buffer is full) loses it: counted as "congested" on that port;
 * the switch never waits for a peer.
 */

#include "net/netport.h"
#include "switch/dhcp.h"
#include "switch/fdb.h"

#include <stdbool.h>
#include <stdint.h>

#define SW_MAX_PORTS 64
#define SW_UPLINK 0
#define SW_UPLINK_MACS 4

struct sw_counters {
	uint64_t frames_in, bytes_in;   /* from the port into the switch, past the guards */
	uint64_t frames_out, bytes_out; /* from the switch to the port */
	uint64_t drop_malformed, drop_spoofed_mac, drop_dhcp_guard, drop_router_guard;
	uint64_t drop_congested; /* frames for this port it could not take */
};

/* sw_counters_seen - the port's messages the switch took in: passed the guards or dropped there. */
static inline uint64_t sw_counters_seen(const struct sw_counters *c)
{
	return c->frames_in + c->drop_malformed + c->drop_spoofed_mac + c->drop_dhcp_guard +
	       c->drop_router_guard;
}

struct sw_port;

/*
 * A port's transmit: hand the frame (with @hdr, a netport header in host
 * byte order, meaningful to VM ports) to the peer without blocking. Returns 0, -EAGAIN when the
 * peer cannot take it now, or another -errno (the peer is gone).
 */
typedef int (*sw_port_send_fn)(struct sw_port *p, const struct netport_hdr *hdr,
                               const uint8_t *frame, size_t len);

struct sw_port {
	bool used;
	bool uplink;                /* port 0: no guards, wants complete checksums */
	bool broken;                /* a send failed with other than -EAGAIN: the owner closes it */
	struct netport_hello hello; /* VM ports */
	struct sw_counters c;
	sw_port_send_fn send;
	void *opaque;  /* the owner's */
	int fd;        /* the owner's */
	int64_t since; /* connected at, seconds since the epoch */
};

struct sw_core {
	struct sw_port ports[SW_MAX_PORTS];
	struct fdb fdb;
	struct sw_counters departed; /* what ports that have left counted */
	struct dhcp_server *dhcp; /* NULL: no DHCP server on this switch */
	int64_t wall_now;         /* seconds since the epoch, for DHCP leases; set by the owner */
	/* The uplink's own MACs: sw_uplink_add_mac(). */
	uint8_t uplink_macs[SW_UPLINK_MACS][6];
	unsigned int nr_uplink_macs;
};

/* sw_core_init - an empty switch with a MAC table of @fdb_capacity; 0 or -errno. */
int sw_core_init(struct sw_core *sw, uint32_t fdb_capacity, int64_t ageing_ms)
    __attribute__((warn_unused_result));
void sw_core_destroy(struct sw_core *sw);

/* sw_core_totals - every port's counters since the switch started, ports that left included. */
void sw_core_totals(const struct sw_core *sw, struct sw_counters *t);

/*
 * sw_port_add - take port @num (SW_UPLINK for the uplink, else 0 picks the
 * lowest free VM port) with @send. Returns the port number or -ENOSPC.
 */
int sw_port_add(struct sw_core *sw, unsigned int num, const struct netport_hello *hello,
                sw_port_send_fn send, void *opaque) __attribute__((warn_unused_result));

/*
 * sw_uplink_add_mac - @mac is the uplink's own (a NAT's gateway or DNS
 * server, a tap's): frames to it go to the uplink without a lookup. The
 * MAC table learns such a MAC only from traffic out of the uplink and
 * forgets it after the ageing time: libslirp never sends to a guest that
 * only sends to it (UDP to the host), whose every frame was flooded to
 * every VM on the switch; and a VM allowed to spoof MACs could take it over.
 * Never learned on a VM port. Returns 0 or -ENOSPC (SW_UPLINK_MACS).
 */
int sw_uplink_add_mac(struct sw_core *sw, const uint8_t mac[6]) __attribute__((warn_unused_result));

/* sw_port_remove - free port @num and forget its MACs. */
void sw_port_remove(struct sw_core *sw, unsigned int num);

/*
 * sw_port_find_mac - a VM port whose adapter has @mac, or -1. A second
 * adapter with a MAC already on the switch is refused (it would steal the
 * first one's frames).
 */
int sw_port_find_mac(const struct sw_core *sw, const uint8_t mac[6]);

/*
 * sw_input_msg - a message of @len bytes from VM port @num: a netport
 * header and a frame (netport.h), which may be modified (checksum
 * completion). @now_ms: a monotonic clock.
 */
void sw_input_msg(struct sw_core *sw, unsigned int num, uint8_t *msg, size_t len, int64_t now_ms);

/* sw_input_uplink - a frame (no netport header, complete checksums) from the uplink. */
void sw_input_uplink(struct sw_core *sw, const uint8_t *frame, size_t len, int64_t now_ms);

/* sw_count_malformed - a message from port @num too broken to reach sw_input_msg (truncated). */
void sw_count_malformed(struct sw_core *sw, unsigned int num);

#endif
