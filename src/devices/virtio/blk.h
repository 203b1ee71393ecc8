/* SPDX-License-Identifier: MIT */
#ifndef NESTVM_DEVICES_VIRTIO_BLK_H
#define NESTVM_DEVICES_VIRTIO_BLK_H

#include "backends/disk.h"
#include "devices/virtio/virtio_pci.h"

/*
 * virtio-blk (virtio 1.2 §5.2) on a raw image: read, write, flush, get-id,
 * discard and write-zeroes (as holes and zero ranges in the image file).
 * One request queue of VIRTIO_BLK_QUEUE_SIZE entries; requests are handed to
 * the disk's I/O engine (io_uring or the thread pool) from the device's I/O
 * thread and completed there when the engine reports them.
 *
 * A read-only disk offers VIRTIO_BLK_F_RO and answers any write, discard or
 * write-zeroes with VIRTIO_BLK_S_IOERR. A request that is malformed in
 * itself (header too short, data not a whole number of sectors, beyond the
 * end of the disk) fails with IOERR; a malformed ring sets needs-reset.
 *
 * Save and restore (virtio_pci.h, "Lifecycle"): a quiesce waits, on the
 * device's I/O thread, until every request taken from the queue is done on
 * the disk, in the used ring and interrupted for; requests the guest made
 * available meanwhile stay in the ring for the resumed or restored device.
 * So nothing is in flight in a saved state and no request runs twice. The
 * device's own saved state is its capacity, read-only flag and serial: a
 * restore onto another image is refused.
 */

#define VIRTIO_BLK_QUEUE_SIZE 256
#define VIRTIO_BLK_ID_BYTES 20

/* Feature bits (§5.2.3). */
#define VIRTIO_BLK_F_SIZE_MAX 1
#define VIRTIO_BLK_F_SEG_MAX 2
#define VIRTIO_BLK_F_GEOMETRY 4
#define VIRTIO_BLK_F_RO 5
#define VIRTIO_BLK_F_BLK_SIZE 6
#define VIRTIO_BLK_F_FLUSH 9
#define VIRTIO_BLK_F_TOPOLOGY 10
#define VIRTIO_BLK_F_CONFIG_WCE 11
#define VIRTIO_BLK_F_MQ 12
#define VIRTIO_BLK_F_DISCARD 13
#define VIRTIO_BLK_F_WRITE_ZEROES 14

/* Request types and status values (§5.2.6). */
#define VIRTIO_BLK_T_IN 0
#define VIRTIO_BLK_T_OUT 1
#define VIRTIO_BLK_T_FLUSH 4
#define VIRTIO_BLK_T_GET_ID 8
#define VIRTIO_BLK_T_DISCARD 11
#define VIRTIO_BLK_T_WRITE_ZEROES 13
#define VIRTIO_BLK_S_OK 0
#define VIRTIO_BLK_S_IOERR 1
#define VIRTIO_BLK_S_UNSUPP 2
#define VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP 1

/* struct virtio_blk_config offsets (§5.2.4). */
#define VIRTIO_BLK_CFG_CAPACITY 0
#define VIRTIO_BLK_CFG_SEG_MAX 12
#define VIRTIO_BLK_CFG_BLK_SIZE 20
#define VIRTIO_BLK_CFG_MAX_DISCARD_SECTORS 36
#define VIRTIO_BLK_CFG_MAX_DISCARD_SEG 40
#define VIRTIO_BLK_CFG_DISCARD_ALIGNMENT 44
#define VIRTIO_BLK_CFG_MAX_WRITE_ZEROES_SECTORS 48
#define VIRTIO_BLK_CFG_MAX_WRITE_ZEROES_SEG 52
#define VIRTIO_BLK_CFG_WRITE_ZEROES_MAY_UNMAP 56
#define VIRTIO_BLK_CFG_SIZE 60

struct virtio_blk;

struct virtio_blk_params {
	const char *path;
	bool readonly;
	enum disk_engine engine;
	const char *serial; /* GET_ID answer, at most 20 bytes used; NULL: "nestvm" */
};

/* virtio_blk_create - open the image and build the device. Returns 0 or -errno (logged). */
int virtio_blk_create(const struct virtio_blk_params *params, struct virtio_blk **out)
    __attribute__((warn_unused_result));

/* virtio_blk_vdev - the virtio device, for virtio_pci_create(). */
struct virtio_device *virtio_blk_vdev(struct virtio_blk *blk);

/* virtio_blk_disk - the backing image (for tests and messages). */
struct disk *virtio_blk_disk(struct virtio_blk *blk);

/*
 * virtio_blk_close_disk - drain, flush and close the image once the transport
 * is stopped (virtio_pci_stop()), so that its lock goes with it; the device
 * itself stays until virtio_blk_destroy(). Idempotent.
 */
void virtio_blk_close_disk(struct virtio_blk *blk);

/*
 * virtio_blk_destroy - close the image (after draining and flushing) and
 * free. Destroy the transport first. NULL is a no-op.
 */
void virtio_blk_destroy(struct virtio_blk *blk);

#endif
