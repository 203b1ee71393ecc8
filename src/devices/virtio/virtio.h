/* SPDX-License-Identifier: MIT */
#ifndef NESTVM_DEVICES_VIRTIO_VIRTIO_H
#define NESTVM_DEVICES_VIRTIO_VIRTIO_H

/*
 * Constants of the virtio 1.2 specification shared by the transport and the
 * devices (virtio 1.2 §2 "Basic Facilities of a Virtio Device", §5 "Device
 * Types"). Only the modern (1.x) interface exists in nestvm: a device always
 * offers VIRTIO_F_VERSION_1 and a driver that does not accept it cannot set
 * FEATURES_OK.
 */

/* Device status field (§2.1). */
#define VIRTIO_STATUS_ACKNOWLEDGE 0x01
#define VIRTIO_STATUS_DRIVER 0x02
#define VIRTIO_STATUS_DRIVER_OK 0x04
#define VIRTIO_STATUS_FEATURES_OK 0x08
#define VIRTIO_STATUS_DEVICE_NEEDS_RESET 0x40
#define VIRTIO_STATUS_FAILED 0x80

/* Reserved feature bits (§6). */
#define VIRTIO_F_RING_INDIRECT_DESC 28
#define VIRTIO_F_RING_EVENT_IDX 29
#define VIRTIO_F_VERSION_1 32
#define VIRTIO_F_ACCESS_PLATFORM 33
#define VIRTIO_F_RING_PACKED 34
#define VIRTIO_F_IN_ORDER 35
#define VIRTIO_F_NOTIFICATION_DATA 38

#define VIRTIO_BIT(n) (1ULL << (n))

/* Device IDs (§5). */
#define VIRTIO_ID_NET 1
#define VIRTIO_ID_BLOCK 2
#define VIRTIO_ID_CONSOLE 3
#define VIRTIO_ID_RNG 4
#define VIRTIO_ID_VSOCK 19

/* The largest split virtqueue (§2.7: Queue Size is a power of 2, at most 32768). */
#define VIRTQ_SPLIT_MAX_SIZE 32768

#endif
