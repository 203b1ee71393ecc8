/* SPDX-License-Identifier: MIT */
#ifndef NESTVM_NET_NETPORT_H
#define NESTVM_NET_NETPORT_H

/*
 * The link between a VM's network adapter (virtio-net, in the monitor) and a
 * switch port (the switch process, src/switch/): one connected
 * SOCK_SEQPACKET UNIX socket per adapter, to the switch's ports.sock
 * (mode 0600 in the switch's own directory, $NESTVM_HOME/.switches/NAME/).
 *
 * 1. The adapter side sends one hello message, a JSON object (at most
 *    NETPORT_HELLO_MAX bytes) that describes the adapter:
 *      {"netport": 1, "vm": "NAME", "adapter": 0, "mac": "52:54:00:12:34:56",
 *       "mac_spoofing": false, "dhcp_guard": true, "router_guard": true}
 *    The switch trusts it: only the switch's owner can connect (socket mode
 *    and SO_PEERCRED), and the monitor, not the guest, writes it.
 * 2. The switch answers with one JSON message: {"ok": true, "port": N} or
 *    {"error": "why"}; after an error it closes the socket.
 * 3. Then every message, in both directions, is one frame: a struct
 *    netport_hdr followed by an Ethernet frame (destination MAC first, no
 *    FCS) of NETPORT_FRAME_MIN to NETPORT_FRAME_MAX bytes. A message that
 *    breaks these rules is dropped and counted by its receiver, never
 *    trusted.
 * 4. Batches: an adapter may add "batch": N (1 to NETPORT_BATCH_MAX) to its
 *    hello, the most frames it takes in one message; a switch that batches
 *    answers with "batch": M (1 to NETPORT_BATCH_MAX), the most it takes. Once both said
 *    so, every message in both directions is a batch: one or more records,
 *    each a little-endian uint32_t length L, then L bytes that are a
 *    message of step 3 (header and frame), then zero padding to a multiple
 *    of 4 bytes (the last record's padding may be left off). A batch holds
 *    at most the receiver's count of records and NETPORT_BATCH_BYTES bytes,
 *    or one record alone when a record is longer than that. An old switch
 *    refuses the "batch" field (unknown fields are refused): the adapter
 *    then joins again without it; an old adapter does not ask. Why: per
 *    frame, the time goes to the kernel's work per message (README,
 *    "virtio-net" under "Benchmark"). The batch's framing is checked by
 *    netport_batch_next(); a record that breaks it ends the message (the
 *    records before it stand), each record's content is checked as a
 *    message of step 3.
 *
 * Checksum offload: a sender that leaves a TCP/UDP checksum to be done sets
 * NETPORT_F_NEEDS_CSUM with csum_start and csum_offset (virtio-net's
 * meaning: the 16-bit one's-complement sum from csum_start to the end of the
 * frame goes at csum_start + csum_offset, the field holding the
 * pseudo-header sum). A receiver that needs a full checksum (a guest that
 * did not negotiate VIRTIO_NET_F_GUEST_CSUM, NAT, a tap) completes it with
 * netport_csum_complete(). Other header fields are zero.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NETPORT_VERSION 1
#define NETPORT_HELLO_MAX 1024
#define NETPORT_FRAME_MIN 14                /* an Ethernet header */
#define NETPORT_FRAME_MAX (65535 + 14 + 4) /* MTU 65535, the header and a VLAN tag */
#define NETPORT_F_NEEDS_CSUM 0x01

struct netport_hdr {
	uint8_t flags;        /* NETPORT_F_* */
	uint8_t reserved0;    /* zero */
	uint16_t csum_start;  /* little-endian, as in struct virtio_net_hdr */
	uint16_t csum_offset; /* little-endian */
	uint16_t reserved1;   /* zero */
};

#define NETPORT_MSG_MAX (sizeof(struct netport_hdr) + NETPORT_FRAME_MAX)

/* A batch's record header, as sent (little-endian), followed by the frame. */
struct netport_rec {
	uint32_t len; /* the header's and the frame's bytes */
	struct netport_hdr hdr;
};

#define NETPORT_BATCH_MAX 64             /* records in a batch */
#define NETPORT_BATCH_BYTES (64 * 1024) /* a batch's size, unless one record alone is longer */
#define NETPORT_REC_HDR 4                /* a record's length field: netport_rec.len */
/* The longest batch message: the longest record alone, or a full one. */
#define NETPORT_BATCH_MSG_MAX                                                                      \
	(NETPORT_REC_HDR + NETPORT_MSG_MAX + 3 > NETPORT_BATCH_BYTES                               \
	     ? NETPORT_REC_HDR + NETPORT_MSG_MAX + 3                                               \
	     : NETPORT_BATCH_BYTES)

/* netport_rec_size - the bytes a record of a message of @len bytes takes, padding included. */
static inline size_t netport_rec_size(size_t len)
{
	return (NETPORT_REC_HDR + len + 3) & ~(size_t)3;
}

/* An adapter as the hello message describes it. */
struct netport_hello {
	char vm[65];     /* the VM's name, as the store allows (a foreground VM: "run-PID") */
	unsigned int adapter;
	uint8_t mac[6];
	bool mac_spoofing; /* frames from other source MACs pass */
	bool dhcp_guard;   /* DHCP server messages from this port are dropped */
	bool router_guard; /* IPv6 router advertisements/redirects from this port are dropped */
	unsigned int batch; /* frames per message it takes (step 4); 0: one, no batches */
};

/*
 * netport_hello_format - write @h as a hello message into @buf (@size bytes,
 * at least NETPORT_HELLO_MAX). Returns its length or -ENOSPC.
 */
int netport_hello_format(const struct netport_hello *h, char *buf, size_t size);

/*
 * netport_hello_parse - parse a hello message of @len bytes (not
 * NUL-terminated) into @h. Unknown fields are refused, like missing ones
 * (mac_spoofing, dhcp_guard and router_guard default to false, true, true).
 * Returns 0, or -EINVAL with a reason in @why (@why_size bytes).
 */
int netport_hello_parse(const void *msg, size_t len, struct netport_hello *h, char *why,
                        size_t why_size);

/*
 * netport_batch_next - the next record of a batch message @msg of @len
 * bytes, at *@off (0 for the first; moved past it): *@rec and *@rec_len
 * are its message of step 3 (not checked here). *@count is the records
 * taken so far, at most @max. Returns 1, 0 at the end, or -EINVAL for a
 * record that breaks the framing (a length of zero or past the end,
 * longer than NETPORT_MSG_MAX, more than @max records, an empty batch):
 * the rest of the message is to be dropped.
 */
int netport_batch_next(const uint8_t *msg, size_t len, size_t *off, unsigned int *count,
                       unsigned int max, const uint8_t **rec, size_t *rec_len);

/* netport_mac_parse - "52:54:00:12:34:56" into @mac. Returns 0 or -EINVAL. */
int netport_mac_parse(const char *s, uint8_t mac[6]);

/* netport_mac_format - @mac as "52:54:00:12:34:56" into @buf (18 bytes). */
void netport_mac_format(const uint8_t mac[6], char buf[18]);

/*
 * netport_mac_derive - a stable locally administered unicast MAC for
 * adapter @adapter of VM @vm (52:54:00 is QEMU's; nestvm uses 02:4e:56
 * followed by 3 bytes of a hash of both).
 */
void netport_mac_derive(const char *vm, unsigned int adapter, uint8_t mac[6]);

/*
 * netport_csum_complete - fill in the checksum of a frame sent with
 * NETPORT_F_NEEDS_CSUM: the one's-complement sum of frame[start..len) is
 * stored at frame[start + offset]. Returns 0, or -EINVAL when start or
 * offset do not fit in @len (the frame is then left alone).
 */
int netport_csum_complete(uint8_t *frame, size_t len, uint16_t start, uint16_t offset);

/* netport_csum - the one's-complement sum of @len bytes, folded, not inverted, added to @sum. */
uint32_t netport_csum_add(uint32_t sum, const void *data, size_t len);
uint16_t netport_csum_fold(uint32_t sum);

#endif
