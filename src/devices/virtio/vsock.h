/* SPDX-License-Identifier: MIT */
#ifndef NESTVM_DEVICES_VIRTIO_VSOCK_H
#define NESTVM_DEVICES_VIRTIO_VSOCK_H

#include "devices/virtio/virtio_pci.h"

/*
 * virtio-vsock (virtio 1.2 §5.10), emulated in the monitor: the guest's
 * AF_VSOCK stream sockets reach host programs through UNIX sockets, the way
 * Firecracker does it, so nothing in the host kernel (vhost-vsock) is
 * needed and each VM's sockets are its own.
 *
 *   host -> guest: a host program connects to the VM's socket PATH and
 *     writes "CONNECT <port>\n"; the device opens a connection to the
 *     guest's <port> (from host CID 2 and a local port of its choosing) and,
 *     once the guest accepts, answers "OK <local port>\n". From then on the
 *     UNIX connection carries the stream both ways. If the guest refuses,
 *     the UNIX connection is closed.
 *   guest -> host: a guest connecting to CID 2 port <port> reaches the UNIX
 *     socket "PATH_<port>" (which a host program listens on); no listener
 *     means the guest sees ECONNRESET.
 *
 * Flow control follows §5.10.6.3: the device advertises VSOCK_CONN_BUF bytes
 * of buffer per connection and never sends the guest more than its own
 * advertised credit; a guest that overruns the device's credit, or sends
 * packets for a CID other than its own, gets its connection reset.
 * Packets the device has to send when the guest has posted no receive
 * buffers wait in a bounded queue; while it is full the device stops taking
 * the guest's packets (the flow control of §5.10.6.1). A malformed ring sets
 * needs-reset; a malformed packet is dropped (with a reset of its
 * connection where there is one).
 *
 * Save and restore (virtio_pci.h, "Lifecycle"): connections live in this
 * process's sockets and cannot be restored. As QEMU's vhost-vsock does, a
 * restored device starts with none and, once the guest runs, sends
 * VIRTIO_VSOCK_EVENT_TRANSPORT_RESET on the event queue (as soon as the
 * driver has an event buffer posted): the guest then resets its sockets and
 * reads its CID again. The device has no state of its own to save.
 */

#define VIRTIO_VSOCK_HOST_CID 2
#define VIRTIO_VSOCK_QUEUE_SIZE 128
#define VIRTIO_VSOCK_CFG_SIZE 8 /* le64 guest_cid */

/* struct virtio_vsock_hdr (§5.10.6) and its constants. */
#define VIRTIO_VSOCK_HDR_SIZE 44
#define VIRTIO_VSOCK_TYPE_STREAM 1
#define VIRTIO_VSOCK_OP_REQUEST 1
#define VIRTIO_VSOCK_OP_RESPONSE 2
#define VIRTIO_VSOCK_OP_RST 3
#define VIRTIO_VSOCK_OP_SHUTDOWN 4
#define VIRTIO_VSOCK_OP_RW 5
#define VIRTIO_VSOCK_OP_CREDIT_UPDATE 6
#define VIRTIO_VSOCK_OP_CREDIT_REQUEST 7
#define VIRTIO_VSOCK_SHUTDOWN_F_RECEIVE 1
#define VIRTIO_VSOCK_SHUTDOWN_F_SEND 2
#define VIRTIO_VSOCK_F_STREAM 0

/* struct virtio_vsock_event (§5.10.6.7): le32 id. */
#define VIRTIO_VSOCK_EVENT_SIZE 4
#define VIRTIO_VSOCK_EVENT_TRANSPORT_RESET 0

struct virtio_vsock_hdr {
	uint64_t src_cid;
	uint64_t dst_cid;
	uint32_t src_port;
	uint32_t dst_port;
	uint32_t len;
	uint16_t type;
	uint16_t op;
	uint32_t flags;
	uint32_t buf_alloc;
	uint32_t fwd_cnt;
} __attribute__((packed));

struct virtio_vsock;

struct virtio_vsock_params {
	uint32_t guest_cid; /* 3 .. 0xfffffffe */
	const char *socket; /* the host side's UNIX socket path */
};

/*
 * virtio_vsock_create - the device, listening on params->socket (a stale
 * socket file there is replaced). Returns 0 or -errno (logged).
 */
int virtio_vsock_create(const struct virtio_vsock_params *params, struct virtio_vsock **out)
    __attribute__((warn_unused_result));

/* virtio_vsock_vdev - the virtio device, for virtio_pci_create(). */
struct virtio_device *virtio_vsock_vdev(struct virtio_vsock *vs);

/*
 * virtio_vsock_start - start accepting host connections (needs the
 * transport, so after virtio_pci_create()). Returns 0 or -errno.
 */
int virtio_vsock_start(struct virtio_vsock *vs) __attribute__((warn_unused_result));

/* virtio_vsock_destroy - close every connection, remove the socket, free; NULL is a no-op. */
void virtio_vsock_destroy(struct virtio_vsock *vs);

#endif
