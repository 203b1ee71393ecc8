/* SPDX-License-Identifier: MIT */
#ifndef NESTVM_SWITCH_DHCP_H
#define NESTVM_SWITCH_DHCP_H

/*
 * The switch's DHCP server (RFC 2131, options RFC 2132), for NAT and
 * internal switches: a stable address per MAC. A MAC keeps its address
 * for as long as the switch exists (leases.json, across switch restarts);
 * only when the pool is exhausted does a new MAC take the address of the
 * MAC seen least recently, and only one not seen for a lease time.
 *
 * It answers DISCOVER (OFFER), REQUEST (ACK or NAK), and ignores the rest
 * (RELEASE and DECLINE keep the binding: the address stays the MAC's).
 * Replies go to the client's MAC with IPv4 destination 255.255.255.255
 * (RFC 2131 §4.1 allows it, and every client accepts it before it has an
 * address). Addresses are host byte order here.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DHCP_MAX_LEASES 1024
#define DHCP_LEASE_TIME_S 3600
#define DHCP_FIXED_LEN 236 /* op .. file, before the magic cookie */
#define DHCP_MAGIC 0x63825363u
#define DHCP_REPLY_MAX 600 /* Ethernet + IPv4 + UDP + BOOTP + our options */

enum dhcp_msg_type {
	DHCP_DISCOVER = 1,
	DHCP_OFFER = 2,
	DHCP_REQUEST = 3,
	DHCP_DECLINE = 4,
	DHCP_ACK = 5,
	DHCP_NAK = 6,
	DHCP_RELEASE = 7,
	DHCP_INFORM = 8,
};

struct dhcp_lease {
	uint8_t mac[6];
	uint32_t ip;
	int64_t seen; /* seconds since the epoch of its last DISCOVER or REQUEST */
};

struct dhcp_server {
	uint32_t net, mask;            /* the subnet */
	uint32_t server_ip;            /* ours (also the server identifier) */
	uint32_t router, dns;          /* 0: not offered */
	uint32_t pool_start, pool_end; /* inclusive */
	uint8_t server_mac[6];
	struct dhcp_lease leases[DHCP_MAX_LEASES];
	unsigned int nr_leases;
	bool dirty; /* leases changed since the last dhcp_leases_format() */
};

/* A DHCP message as dhcp_msg_parse() reads it (BOOTP fields, the options we use). */
struct dhcp_msg {
	uint8_t op, htype, hlen;
	uint32_t xid, ciaddr;
	uint16_t flags;
	uint8_t chaddr[6];
	int type;           /* option 53, 0 if missing */
	uint32_t req_ip;    /* option 50, 0 if missing */
	uint32_t server_id; /* option 54, 0 if missing */
};

/*
 * dhcp_server_init - a server for @net/@prefix (8..30) at @server_ip with
 * MAC @server_mac, handing out @pool_start..@pool_end. Returns 0 or -EINVAL.
 */
int dhcp_server_init(struct dhcp_server *s, uint32_t net, unsigned int prefix, uint32_t server_ip,
                     uint32_t router, uint32_t dns, uint32_t pool_start, uint32_t pool_end,
                     const uint8_t server_mac[6]) __attribute__((warn_unused_result));

/*
 * dhcp_msg_parse - the BOOTP message of @len bytes (a UDP payload). Options
 * are read within the message only, each bounded, overload (52) ignored.
 * Returns 0 or -EINVAL (not a DHCP request from an Ethernet client).
 */
int dhcp_msg_parse(const uint8_t *p, size_t len, struct dhcp_msg *m)
    __attribute__((warn_unused_result));

/*
 * dhcp_frame_is_request - is the Ethernet frame @f (@len bytes) an IPv4
 * UDP message to port 67, the server's? Then *@off and *@plen give its
 * UDP payload.
 */
bool dhcp_frame_is_request(const uint8_t *f, size_t len, size_t *off, size_t *plen);

/*
 * dhcp_server_handle - answer the DHCP request frame @f from a client at
 * @now (seconds): the reply frame goes into @reply (DHCP_REPLY_MAX bytes).
 * Returns its length, 0 for no reply, or -EINVAL for a malformed request.
 */
int dhcp_server_handle(struct dhcp_server *s, const uint8_t *f, size_t len, int64_t now,
                       uint8_t *reply) __attribute__((warn_unused_result));

/* dhcp_lease_find - the lease of @mac, or NULL. */
const struct dhcp_lease *dhcp_lease_find(const struct dhcp_server *s, const uint8_t mac[6]);

/* dhcp_leases_format - the leases as leases.json text (malloc'd), or NULL. Clears dirty. */
char *dhcp_leases_format(struct dhcp_server *s);

/*
 * dhcp_leases_parse - add the leases of leases.json text to @s: entries
 * that are malformed, outside the pool, of a multicast MAC, or repeat a
 * MAC or an address are skipped (the file is ours, but may be hand-edited
 * or from a switch whose subnet changed). Returns the number loaded, or
 * -EINVAL if the text is not a leases object at all.
 */
int dhcp_leases_parse(struct dhcp_server *s, const char *text, size_t len)
    __attribute__((warn_unused_result));

#endif
