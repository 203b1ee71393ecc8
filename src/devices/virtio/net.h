/* SPDX-License-Identifier: MIT */
#ifndef NESTVM_DEVICES_VIRTIO_NET_H
#define NESTVM_DEVICES_VIRTIO_NET_H

#include "devices/virtio/virtio_pci.h"

/*
 * virtio-net (virtio 1.2 §5.1), one receive/transmit queue pair, with its
 * wire a switch port: a connected SOCK_SEQPACKET socket carrying one frame
 * per message (net/netport.h). The monitor connects it (switch_link.h) and
 * hands it over; the device only reads and writes frames.
 *
 *   transmit (guest -> port): each chain is a struct virtio_net_hdr then a
 *     frame, sent as one message (netport header + frame) straight from
 *     guest memory, a batch of chains per sendmmsg(). A checksum the guest
 *     left (VIRTIO_NET_HDR_F_NEEDS_CSUM, with VIRTIO_NET_F_CSUM) travels as
 *     NETPORT_F_NEEDS_CSUM for the receiver to complete. When the socket is
 *     full the chains not sent wait (held, EPOLLOUT) and nothing more is
 *     taken from the queue.
 *   receive (port -> guest): messages are read into the device's buffers,
 *     a batch per recvmmsg(); each is checked, its checksum completed
 *     unless the guest negotiated VIRTIO_NET_F_GUEST_CSUM (then NEEDS_CSUM
 *     is passed on), and written into one receive chain or, with
 *     VIRTIO_NET_F_MRG_RXBUF, as many as it takes (num_buffers). The socket
 *     is read only while the guest has receive buffers posted: an empty
 *     receive queue stops the reads (the rest of a batch waits in the
 *     device), and the switch sees the back-pressure.
 *   notifications: while the device works through a queue the guest's are
 *     off (VIRTQ_USED_F_NO_NOTIFY without EVENT_IDX), back on once it finds
 *     the queue empty: a guest that keeps it busy does not exit to notify.
 *
 * Hostile guest: a transmit chain with device-writable buffers, a header
 * that does not fit, unknown header flags, GSO (never offered), or a
 * checksum request outside the frame, and a receive chain with readable
 * buffers or room for less than the header, are malformed: the device asks
 * for a reset (DEVICE_NEEDS_RESET) and nothing else is affected. A frame
 * longer than the MTU allows or shorter than an Ethernet header is dropped
 * and counted. Frames from the port that break netport.h's rules, that
 * exceed the MTU, or that fit in no receive buffer (without MRG_RXBUF, in
 * the one chain) are dropped and counted too.
 *
 * The link is up while the port is connected (VIRTIO_NET_S_LINK_UP); when
 * the switch goes away the device says so with a configuration change and
 * drops what the guest sends.
 *
 * Lifecycle: the device's own state is its configuration (MAC, MTU), saved
 * so that a restore onto another adapter is refused. The connection is not
 * state: a restored VM's adapter is a new device, connected to its switch
 * as it was created. Chains the device holds (a frame waiting for socket
 * room, receive buffers taken for a frame not yet complete) are reported
 * through ops->held and taken again after a restore. Frames still in the
 * device's buffers when a device is restored or reset are dropped and
 * counted (rx_dropped_lifecycle).
 */

#define VIRTIO_NET_QUEUE_SIZE 256
#define VIRTIO_NET_MTU_MIN 68
#define VIRTIO_NET_MTU_MAX 65520
#define VIRTIO_NET_MTU_DEFAULT 1500

/* Feature bits (§5.1.3). */
#define VIRTIO_NET_F_CSUM 0
#define VIRTIO_NET_F_GUEST_CSUM 1
#define VIRTIO_NET_F_MTU 3
#define VIRTIO_NET_F_MAC 5
#define VIRTIO_NET_F_MRG_RXBUF 15
#define VIRTIO_NET_F_STATUS 16

/* Device configuration layout (§5.1.4). */
#define VIRTIO_NET_CFG_MAC 0
#define VIRTIO_NET_CFG_STATUS 6
#define VIRTIO_NET_CFG_MAX_PAIRS 8
#define VIRTIO_NET_CFG_MTU 10
#define VIRTIO_NET_CFG_SIZE 12
#define VIRTIO_NET_S_LINK_UP 1

/* struct virtio_net_hdr (§5.1.6), with num_buffers: 12 bytes under VERSION_1. */
#define VIRTIO_NET_HDR_F_NEEDS_CSUM 1
#define VIRTIO_NET_HDR_F_DATA_VALID 2
#define VIRTIO_NET_HDR_GSO_NONE 0

struct virtio_net_hdr {
	uint8_t flags;
	uint8_t gso_type;
	uint16_t hdr_len;
	uint16_t gso_size;
	uint16_t csum_start;
	uint16_t csum_offset;
	uint16_t num_buffers;
};

#define VIRTIO_NET_HDR_SIZE 12

enum { VIRTIO_NET_Q_RX, VIRTIO_NET_Q_TX };

struct virtio_net_params {
	uint8_t mac[6];
	unsigned int mtu; /* VIRTIO_NET_MTU_MIN..MAX; 0: VIRTIO_NET_MTU_DEFAULT */
	int fd;           /* the connected port socket (taken, even on failure), or -1: no link */
	unsigned int
	    batch;        /* @fd's switch takes batches of this many frames (netport.h); 0: none */
	const char *name; /* "virtio-net0", for messages (copied); NULL: "virtio-net" */
};

/* What the device counted; read under the device lock (virtio_net_get_stats()). */
struct virtio_net_stats {
	uint64_t tx_frames, tx_bytes;
	uint64_t tx_dropped; /* too short or long, or no link */
	uint64_t rx_frames, rx_bytes;
	uint64_t rx_dropped_bad;  /* broke netport.h's rules, or a checksum request out of range */
	uint64_t rx_dropped_mtu;  /* longer than the MTU */
	uint64_t rx_dropped_room; /* fit in no receive buffer the guest posted */
	uint64_t rx_dropped_lifecycle; /* in the device's buffer at a reset or restore */
	uint64_t resets_asked;         /* malformed rings or headers */
	bool link_up;
};

struct virtio_net;

/*
 * virtio_net_create - the device for @params (the fd is the device's from
 * here on). Returns 0, -EINVAL (an MTU out of range, a multicast MAC) or
 * -ENOMEM.
 */
int virtio_net_create(const struct virtio_net_params *params, struct virtio_net **out)
    __attribute__((warn_unused_result));

/* virtio_net_vdev - the virtio device, for virtio_pci_create(). */
struct virtio_device *virtio_net_vdev(struct virtio_net *net);

/*
 * virtio_net_start - start watching the port (needs the transport, so
 * after virtio_pci_create()). Returns 0 or -errno.
 */
int virtio_net_start(struct virtio_net *net) __attribute__((warn_unused_result));

/*
 * virtio_net_attach - put the adapter on another port: @fd (a connected
 * port socket, taken; -1: none) replaces the current one, which is closed.
 * The link goes up (or down) with a configuration change; a frame waiting
 * for room is sent on the new port. For a switch that came back or another
 * switch while the VM runs. From any thread but the device's own; takes
 * the device lock.
 */
void virtio_net_attach(struct virtio_net *net, int fd);

/* virtio_net_get_stats - a copy of the counters (takes the device lock). */
void virtio_net_get_stats(struct virtio_net *net, struct virtio_net_stats *out);

/* virtio_net_destroy - close the port and free; NULL is a no-op. */
void virtio_net_destroy(struct virtio_net *net);

#endif
