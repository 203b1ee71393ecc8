/* SPDX-License-Identifier: MIT */
#ifndef NESTVM_DEVICES_VIRTIO_RNG_H
#define NESTVM_DEVICES_VIRTIO_RNG_H

#include "devices/virtio/virtio_pci.h"

/*
 * virtio-rng, the entropy device (virtio 1.2 §5.4): one request queue whose
 * device-writable buffers the device fills from getrandom(2). Linux's
 * virtio-rng driver makes it a source of /dev/hwrng.
 *
 * At most VIRTIO_RNG_MAX_REQUEST bytes go into one request (the rest of a
 * larger buffer is left alone and the used length says so), and a request
 * with readable buffers is malformed: the device asks for a reset.
 */

#define VIRTIO_RNG_QUEUE_SIZE 64
#define VIRTIO_RNG_MAX_REQUEST (64 * 1024)

struct virtio_rng;

/* virtio_rng_create - the device. Returns 0 or -ENOMEM. */
int virtio_rng_create(struct virtio_rng **out) __attribute__((warn_unused_result));

/* virtio_rng_vdev - the virtio device, for virtio_pci_create(). */
struct virtio_device *virtio_rng_vdev(struct virtio_rng *rng);

/* virtio_rng_destroy - free (after the transport); NULL is a no-op. */
void virtio_rng_destroy(struct virtio_rng *rng);

#endif
