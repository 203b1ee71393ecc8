/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the split virtqueue (devices/virtio/virtqueue.c) on
 * arbitrary guest memory. The input's first bytes choose the queue's
 * configuration (size, ring addresses, negotiated ring features, iov room);
 * the rest is the guest's RAM, rings and buffers included. The device side
 * then does what a device does: start the queue, pop every chain, touch each
 * buffer, push, ask whether to notify, re-enable notifications.
 *
 * Whatever the guest wrote, virtq_pop() must return a chain whose every
 * buffer lies inside guest RAM, or 0, or -EIO; never read or write outside
 * the rings and buffers. Guest RAM is an mmap, which ASan does not guard,
 * so each iov is checked against the mapping here.
 */
#include "devices/virtio/virtqueue.h"
#include "core/log.h"
#include "devices/virtio/virtio.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_MEM (256ULL << 10)
#define FUZZ_HDR 32
#define FUZZ_MAX_POPS 512

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t get64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

/* Mostly addresses inside RAM (so rings start), sometimes anything at all. */
static uint64_t pick_gpa(uint64_t raw, bool wild)
{
	return wild ? raw : raw % (FUZZ_MEM + 0x100);
}

static void check_iov(const struct guest_mem *mem, const struct iovec *iov)
{
	const uint8_t *lo = mem->regions[0].host, *hi = lo + mem->regions[0].size;
	const uint8_t *p = iov->iov_base;

	if (iov->iov_len == 0 || p < lo || p > hi || iov->iov_len > (size_t)(hi - p))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct guest_mem mem;
	static struct iovec iov[VIRTQ_SPLIT_MAX_SIZE];
	struct virtq vq;
	struct virtq_req req = {.iov = iov};
	uint8_t *ram;
	uint8_t flags;
	unsigned int pops = 0;
	uint64_t sum = 0;

	if (!mem.nr_regions) {
		log_set_level(LOG_NONE);
		if (guest_mem_init(&mem, FUZZ_MEM, 0) < 0)
			abort();
	}
	if (size < FUZZ_HDR)
		return 0;
	ram = guest_mem_ptr(&mem, 0, FUZZ_MEM);
	if (!ram)
		abort();
	memset(ram, 0, FUZZ_MEM);
	memcpy(ram, data + FUZZ_HDR,
	       size - FUZZ_HDR < FUZZ_MEM ? size - FUZZ_HDR : (size_t)FUZZ_MEM);

	flags = data[1];
	virtq_init(&vq, (uint16_t)(1U << (data[0] % 16)));
	if (flags & 0x40) /* the driver picks a smaller (or bogus) size */
		vq.size = (uint16_t)(data[0] << 8 | data[2]);
	vq.desc_gpa = pick_gpa(get64(data + 8), flags & 0x04);
	vq.avail_gpa = pick_gpa(get64(data + 16), flags & 0x08);
	vq.used_gpa = pick_gpa(get64(data + 24), flags & 0x10);
	/* Sometimes less iov room than the queue size, as a device may give. */
	req.cap = (flags & 0x20) ? (unsigned int)(data[3] % 8) : VIRTQ_SPLIT_MAX_SIZE;
	if (virtq_start(&vq, &mem, flags & 0x01, flags & 0x02) < 0)
		return 0;

	for (;;) {
		int r = virtq_pop(&vq, &req);

		if (r < 0) {
			if (!vq.broken || virtq_pop(&vq, &req) != 0)
				abort();
			break;
		}
		if (r == 0) {
			if (!virtq_enable_notify(&vq))
				break;
			if (++pops > FUZZ_MAX_POPS)
				break;
			continue;
		}
		if (req.head >= vq.size || req.nr_out + req.nr_in > req.cap)
			abort();
		for (unsigned int i = 0; i < req.nr_out + req.nr_in; i++) {
			check_iov(&mem, &iov[i]);
			if (i < req.nr_out)
				sum += ((uint8_t *)iov[i].iov_base)[iov[i].iov_len - 1];
			else
				memset(iov[i].iov_base, 0xa5, iov[i].iov_len);
		}
		virtq_push(&vq, req.head, (uint32_t)req.in_len);
		(void)virtq_should_notify(&vq);
		if (++pops > FUZZ_MAX_POPS)
			break;
	}
	return (int)(sum & 0);
}
