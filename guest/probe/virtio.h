/* SPDX-License-Identifier: MIT */
#ifndef PROBE_VIRTIO_H
#define PROBE_VIRTIO_H

/*
 * A minimal virtio 1.x PCI driver for the probe (virtio 1.2 §4.1, §2.7):
 * enough to drive a virtio-blk function with one split virtqueue, polled,
 * without interrupts (MSI-X stays off), entirely at CPL3 (MMIO to the BAR
 * and the rings in RAM need no privilege; configuration space goes through
 * port 0xcf8/0xcfc, one system call per access).
 *
 * The constants are the driver's own copy of the specification's, not the
 * monitor's headers: a wrong constant on one side must not hide the same
 * mistake on the other.
 *
 * Used by test=virtio-blk, test=virtio-hostile (which also builds rings by
 * hand, so the queue's areas are exposed), test=virtio-bench and test=net
 * (virtio-net, two queues).
 */

#include "probe.h"

#define VIRTIO_VENDOR 0x1af4
#define VIRTIO_DEVICE_MODERN_BASE 0x1040 /* + device id (§4.1.2) */
#define VIRTIO_ID_BLK 2

/* Device status (§2.1). */
#define VIRTIO_S_ACKNOWLEDGE 0x01
#define VIRTIO_S_DRIVER 0x02
#define VIRTIO_S_DRIVER_OK 0x04
#define VIRTIO_S_FEATURES_OK 0x08
#define VIRTIO_S_NEEDS_RESET 0x40
#define VIRTIO_S_FAILED 0x80

/* Feature bits (§6, §5.2.3). */
#define VIRTIO_F_INDIRECT_DESC 28
#define VIRTIO_F_EVENT_IDX 29
#define VIRTIO_F_VERSION_1 32
#define VIRTIO_BLK_F_RO 5
#define VIRTIO_BLK_F_FLUSH 9
#define VIRTIO_FEATURE(b) (1ULL << (b))

/* Split virtqueue layout (§2.7). */
#define VRING_DESC_F_NEXT 1
#define VRING_DESC_F_WRITE 2
#define VRING_DESC_F_INDIRECT 4
#define VRING_AVAIL_F_NO_INTERRUPT 1
#define VRING_USED_F_NO_NOTIFY 1
#define VRING_MAX 256 /* the most this driver uses */

struct vring_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct vring_avail {
	uint16_t flags;
	uint16_t idx;
	uint16_t ring[]; /* then used_event */
};

struct vring_used_elem {
	uint32_t id;
	uint32_t len;
};

struct vring_used {
	uint16_t flags;
	uint16_t idx;
	struct vring_used_elem ring[]; /* then avail_event */
};

/* virtio-blk requests (§5.2.6). */
#define VIRTIO_BLK_T_IN 0
#define VIRTIO_BLK_T_OUT 1
#define VIRTIO_BLK_T_FLUSH 4
#define VIRTIO_BLK_T_GET_ID 8
#define VIRTIO_BLK_S_OK 0
#define VIRTIO_BLK_S_IOERR 1
#define VIRTIO_BLK_S_UNSUPP 2
#define VIRTIO_BLK_ID_BYTES 20
#define VIRTIO_BLK_SECTOR 512

struct virtio_blk_hdr {
	uint32_t type;
	uint32_t reserved;
	uint64_t sector;
};

/* One virtio PCI function on bus 0 and where its register regions are. */
struct vdev {
	uint8_t devfn; /* device << 3 | function */
	uint16_t device_id;
	uint64_t common, isr, device, notify; /* addresses of the regions */
	uint32_t notify_mult;
	uint64_t features; /* offered by the device */
	uint64_t acked;    /* negotiated */
};

/* One split virtqueue, in memory the driver owns. */
struct vq {
	uint16_t size;
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint64_t notify_addr;
	uint16_t avail_idx; /* the driver's next avail.idx */
	uint16_t last_used; /* used entries consumed */
};

/* What a polled request ended with. */
enum vq_wait {
	VQ_USED = 0,         /* the device returned a chain */
	VQ_NEEDS_RESET = -1, /* the device set DEVICE_NEEDS_RESET */
	VQ_TIMEOUT = -2,     /* neither within the time limit */
};

/*
 * virtio_find - the @index'th (from 0) virtio function with device id
 * @id on bus 0: map its capabilities' regions (programming BARs firmware
 * left at 0, enabling memory decoding and bus mastering). Returns 0, or -1
 * with *why set.
 */
int virtio_find(unsigned int id, unsigned int index, struct vdev *d, const char **why);

/* Register accessors for the common configuration (§4.1.4.3), natural widths. */
uint8_t virtio_status(const struct vdev *d);
void virtio_set_status(struct vdev *d, uint8_t s);
uint32_t virtio_device_cfg32(const struct vdev *d, unsigned int off);

/*
 * virtio_reset - write status 0 and wait (bounded) until it reads 0
 * (§2.4.1, §4.1.4.3.2). Returns 0, -1 if the device never finished.
 */
int virtio_reset(struct vdev *d);

/*
 * virtio_negotiate - reset, ACKNOWLEDGE, DRIVER, accept the offered subset
 * of @want | VERSION_1, FEATURES_OK and read it back (§3.1.1 steps 1-6).
 * Returns 0, or -1 with *why set.
 */
int virtio_negotiate(struct vdev *d, uint64_t want, const char **why);

/*
 * virtio_queue_setup - select queue 0, give it @size entries and the three
 * areas (guest-physical = virtual addresses), no MSI-X vector, enable it.
 * Nothing is checked: the hostile test passes bad values on purpose.
 * vq_init() lays out @vq in the driver's own memory for queue @slot (0..3).
 */
void virtio_queue_setup(struct vdev *d, struct vq *vq, uint16_t size, uint64_t desc, uint64_t avail,
                        uint64_t used);
int vq_init(struct vq *vq, unsigned int slot, uint16_t size);

/*
 * virtio_queue_start - queue @q of @size entries laid out in slot @slot
 * (vq_init()), set up and enabled as virtio_queue_setup() does. Returns 0,
 * or -1 if the device's queue is smaller or the slot does not exist.
 */
int virtio_queue_start(struct vdev *d, uint16_t q, struct vq *vq, unsigned int slot, uint16_t size);

/*
 * virtio_start - negotiate @want, set up queue 0 of @size entries in slot
 * @slot and set DRIVER_OK. Returns 0, or -1 with *why set.
 */
int virtio_start(struct vdev *d, struct vq *vq, unsigned int slot, uint16_t size, uint64_t want,
                 const char **why);

/* vq_publish - make head @head available (without notifying). */
void vq_publish(struct vq *vq, uint16_t head);

/* vq_kick - notify the device, unless it asked not to be (used.flags NO_NOTIFY). */
void vq_kick(struct vq *vq);
/* vq_notify - notify the device unconditionally. */
void vq_notify(struct vq *vq);

/* vq_get_used - the next used element, or false if there is none yet. */
bool vq_get_used(struct vq *vq, struct vring_used_elem *e);

/*
 * vq_wait - poll for a used element or DEVICE_NEEDS_RESET for at most
 * @timeout_us. *e receives the element on VQ_USED.
 */
enum vq_wait vq_wait(struct vdev *d, struct vq *vq, struct vring_used_elem *e, uint64_t timeout_us);

/*
 * blk_rw - one virtio-blk request of @type on @sector with @len bytes of
 * @buf (none for flush), as a three-descriptor chain at descriptors 0..2
 * (or two without data), waited for. Returns the status byte (0..255), or
 * a negative enum vq_wait.
 */
int blk_rw(struct vdev *d, struct vq *vq, uint32_t type, uint64_t sector, void *buf, uint32_t len);

/* Time: TSC and its frequency (hv_clock(); 3 GHz assumed when unknown). */
uint64_t virtio_tsc_khz(void);
uint64_t virtio_now_us(void);

int test_virtio_blk(void);
int test_virtio_hostile(void);
int test_virtio_bench(void);
int test_net(void);

#endif
