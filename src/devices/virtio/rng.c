/* SPDX-License-Identifier: MIT */
/* virtio-rng (virtio 1.2 §5.4): guest buffers filled from getrandom(2). See rng.h. */
#include "devices/virtio/rng.h"

#include "core/log.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/random.h>

#define RNG_PCI_CLASS 0x00ff00 /* "unclassified device", as QEMU's virtio-rng */

struct virtio_rng {
	struct virtio_device vdev;
	struct virtq vq;
	struct iovec iov[VIRTIO_RNG_QUEUE_SIZE];
};

/* Fill @len bytes of the writable buffers; returns how many were filled. */
static uint32_t rng_fill(const struct iovec *iov, unsigned int cnt, uint32_t len)
{
	uint32_t done = 0;

	for (unsigned int i = 0; i < cnt && done < len; i++) {
		size_t want = iov[i].iov_len < len - done ? iov[i].iov_len : len - done;
		size_t got = 0;

		while (got < want) {
			ssize_t n = getrandom((uint8_t *)iov[i].iov_base + got, want - got, 0);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return done + (uint32_t)got;
			got += (size_t)n;
		}
		done += (uint32_t)got;
	}
	return done;
}

static void rng_queue_notify(struct virtio_device *vdev, unsigned int q)
{
	struct virtio_rng *rng = container_of(vdev, struct virtio_rng, vdev);
	struct virtq_req req = {.iov = rng->iov, .cap = VIRTIO_RNG_QUEUE_SIZE};
	bool pushed = false;
	int r;

	(void)q;
	do {
		while ((r = virtq_pop(&rng->vq, &req)) > 0) {
			uint32_t want;

			if (req.nr_out) {
				r = -EIO;
				break;
			}
			want = req.in_len < VIRTIO_RNG_MAX_REQUEST ? (uint32_t)req.in_len
			                                           : VIRTIO_RNG_MAX_REQUEST;
			virtq_push(&rng->vq, req.head, rng_fill(req.iov, req.nr_in, want));
			virtq_mark_written(&rng->vq, &req);
			pushed = true;
		}
		if (r < 0) {
			virtio_device_set_needs_reset(vdev, "malformed entropy request");
			break;
		}
	} while (virtq_enable_notify(&rng->vq));
	if (pushed)
		virtio_device_notify_queue(vdev, 0);
}

static void rng_destroy(struct virtio_device *vdev)
{
	virtio_rng_destroy(container_of(vdev, struct virtio_rng, vdev));
}

/* Requests are done within queue_notify: nothing to finish, no state beyond the transport's. */
static const struct virtio_device_ops virtio_rng_ops = {
    .queue_notify = rng_queue_notify,
    .destroy = rng_destroy,
};

int virtio_rng_create(struct virtio_rng **out)
{
	struct virtio_rng *rng = calloc(1, sizeof(*rng));

	*out = NULL;
	if (!rng)
		return -ENOMEM;
	virtq_init(&rng->vq, VIRTIO_RNG_QUEUE_SIZE);
	rng->vdev = (struct virtio_device){
	    .ops = &virtio_rng_ops,
	    .name = "virtio-rng",
	    .device_id = VIRTIO_ID_RNG,
	    .class_code = RNG_PCI_CLASS,
	    .features =
	        VIRTIO_BIT(VIRTIO_F_RING_INDIRECT_DESC) | VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX),
	    .nr_queues = 1,
	    .vqs = &rng->vq,
	};
	*out = rng;
	return 0;
}

struct virtio_device *virtio_rng_vdev(struct virtio_rng *rng)
{
	return &rng->vdev;
}

void virtio_rng_destroy(struct virtio_rng *rng)
{
	free(rng);
}
