/* SPDX-License-Identifier: MIT */
/*
 * Split virtqueues, device side (virtio 1.2 §2.7). See virtqueue.h for the
 * layout and for the rules that keep a hostile guest from hurting the
 * monitor.
 */
#include "devices/virtio/virtqueue.h"

#include "devices/virtio/virtio.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* Virtio structures are little endian; nestvm runs only on x86-64. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "virtio rings are little endian");
_Static_assert(sizeof(struct virtq_desc) == 16, "virtq_desc layout");
_Static_assert(sizeof(struct virtq_used_elem) == 8, "virtq_used_elem layout");

static bool is_pow2(uint32_t v)
{
	return v && !(v & (v - 1));
}

void virtq_init(struct virtq *vq, uint16_t max_size)
{
	memset(vq, 0, sizeof(*vq));
	vq->max_size = max_size;
	vq->size = max_size;
}

void virtq_reset(struct virtq *vq)
{
	virtq_init(vq, vq->max_size);
}

int virtq_start(struct virtq *vq, const struct guest_mem *mem, bool event_idx, bool indirect)
{
	uint16_t n = vq->size;

	vq->started = false;
	if (!is_pow2(n) || n > vq->max_size || n > VIRTQ_SPLIT_MAX_SIZE)
		return -EINVAL;
	if (vq->desc_gpa % VIRTQ_DESC_ALIGN || vq->avail_gpa % VIRTQ_AVAIL_ALIGN ||
	    vq->used_gpa % VIRTQ_USED_ALIGN)
		return -EINVAL;
	vq->desc = guest_mem_ptr(mem, vq->desc_gpa, VIRTQ_DESC_SIZE(n));
	vq->avail = guest_mem_ptr(mem, vq->avail_gpa, VIRTQ_AVAIL_SIZE(n));
	vq->used = guest_mem_ptr(mem, vq->used_gpa, VIRTQ_USED_SIZE(n));
	if (!vq->desc || !vq->avail || !vq->used) {
		vq->desc = NULL;
		vq->avail = NULL;
		vq->used = NULL;
		return -EINVAL;
	}
	vq->mem = mem;
	vq->event_idx = event_idx;
	vq->indirect = indirect;
	vq->broken = false;
	/* Both indices start at 0 after a reset (§2.7.6, §2.7.8). */
	vq->used_idx = 0;
	vq->last_avail = 0;
	vq->signalled_valid = false;
	vq->started = true;
	return 0;
}

/* Index into the used ring's trailing avail_event / the avail ring's used_event. */
static uint16_t *virtq_used_event(struct virtq *vq)
{
	return &vq->avail->ring[vq->size];
}

static uint16_t *virtq_avail_event(struct virtq *vq)
{
	return (uint16_t *)&vq->used->ring[vq->size];
}

static uint16_t virtq_load_avail_idx(struct virtq *vq)
{
	/* Acquire: the ring slots and descriptors written before idx are visible. */
	return __atomic_load_n(&vq->avail->idx, __ATOMIC_ACQUIRE);
}

static int virtq_fail(struct virtq *vq)
{
	vq->broken = true;
	return -EIO;
}

/*
 * Add the buffer of descriptor @d (a private copy) to @req. Readable
 * buffers must all come before writable ones (§2.7.4.2).
 */
static int virtq_add_buffer(struct virtq *vq, struct virtq_req *req, const struct virtq_desc *d)
{
	bool writable = d->flags & VIRTQ_DESC_F_WRITE;
	void *p;

	if (!writable && req->nr_in)
		return -EIO;
	if (d->len == 0)
		return 0;
	p = guest_mem_ptr(vq->mem, d->addr, d->len);
	if (!p)
		return -EIO;
	if (req->nr_out + req->nr_in >= req->cap)
		return -EIO;
	req->iov[req->nr_out + req->nr_in] = (struct iovec){.iov_base = p, .iov_len = d->len};
	if (writable) {
		req->nr_in++;
		req->in_len += d->len;
	} else {
		req->nr_out++;
		req->out_len += d->len;
	}
	return 0;
}

/*
 * Walk the indirect table that descriptor @d points to (§2.7.5.3). @budget
 * is how many buffer descriptors the chain may still use; it is decreased.
 */
static int virtq_walk_indirect(struct virtq *vq, struct virtq_req *req, const struct virtq_desc *d,
                               unsigned int *budget)
{
	const uint8_t *table;
	uint32_t n, i = 0;

	if (!vq->indirect || (d->flags & VIRTQ_DESC_F_NEXT) || d->len == 0 ||
	    d->len % sizeof(struct virtq_desc))
		return -EIO;
	n = d->len / sizeof(struct virtq_desc);
	if (n > vq->size)
		return -EIO;
	table = guest_mem_ptr(vq->mem, d->addr, d->len);
	if (!table)
		return -EIO;
	for (;;) {
		struct virtq_desc e;

		if (*budget == 0)
			return -EIO;
		(*budget)--;
		/* The table need not be aligned: copy it byte-wise. */
		memcpy(&e, table + (size_t)i * sizeof(e), sizeof(e));
		if (e.flags & VIRTQ_DESC_F_INDIRECT)
			return -EIO;
		if (virtq_add_buffer(vq, req, &e) < 0)
			return -EIO;
		if (!(e.flags & VIRTQ_DESC_F_NEXT))
			return 0;
		if (e.next >= n)
			return -EIO;
		i = e.next;
	}
}

int virtq_pop(struct virtq *vq, struct virtq_req *req)
{
	unsigned int budget = vq->size;
	uint16_t avail_idx, head, i;

	req->nr_out = req->nr_in = 0;
	req->out_len = req->in_len = 0;
	if (!vq->started || vq->broken)
		return 0;
	avail_idx = virtq_load_avail_idx(vq);
	if (avail_idx == vq->last_avail)
		return 0;
	/* The driver cannot have more than size chains outstanding (§2.7.13). */
	if ((uint16_t)(avail_idx - vq->last_avail) > vq->size)
		return virtq_fail(vq);
	head = __atomic_load_n(&vq->avail->ring[vq->last_avail & (vq->size - 1)], __ATOMIC_RELAXED);
	if (head >= vq->size)
		return virtq_fail(vq);
	req->head = head;
	i = head;
	for (;;) {
		struct virtq_desc d;

		memcpy(&d, &vq->desc[i], sizeof(d));
		if (d.flags & VIRTQ_DESC_F_INDIRECT) {
			/* An indirect descriptor ends the chain: it may not have NEXT. */
			if (virtq_walk_indirect(vq, req, &d, &budget) < 0)
				return virtq_fail(vq);
			break;
		}
		if (budget == 0)
			return virtq_fail(vq);
		budget--;
		if (virtq_add_buffer(vq, req, &d) < 0)
			return virtq_fail(vq);
		if (!(d.flags & VIRTQ_DESC_F_NEXT))
			break;
		if (d.next >= vq->size)
			return virtq_fail(vq);
		i = d.next;
	}
	vq->last_avail++;
	return 1;
}

void virtq_push(struct virtq *vq, uint16_t head, uint32_t len)
{
	struct virtq_used_elem *e;

	if (!vq->started)
		return;
	e = &vq->used->ring[vq->used_idx & (vq->size - 1)];
	__atomic_store_n(&e->id, head, __ATOMIC_RELAXED);
	__atomic_store_n(&e->len, len, __ATOMIC_RELAXED);
	vq->used_idx++;
	/* Release: the element (and the data written to the buffers) before idx. */
	__atomic_store_n(&vq->used->idx, vq->used_idx, __ATOMIC_RELEASE);
	guest_mem_mark_dirty(vq->mem, vq->used, VIRTQ_USED_SIZE(vq->size));
}

void virtq_mark_written(const struct virtq *vq, const struct virtq_req *req)
{
	for (unsigned int i = req->nr_out; i < req->nr_out + req->nr_in; i++)
		guest_mem_mark_dirty(vq->mem, req->iov[i].iov_base, req->iov[i].iov_len);
}

/* vring_need_event (§2.7.10): has new_idx passed event since old? */
static bool virtq_need_event(uint16_t event, uint16_t new_idx, uint16_t old)
{
	return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old);
}

bool virtq_should_notify(struct virtq *vq)
{
	uint16_t old, event;
	bool valid;

	if (!vq->started)
		return false;
	/* The used idx store must be visible before we read the driver's wishes. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (!vq->event_idx)
		return !(__atomic_load_n(&vq->avail->flags, __ATOMIC_RELAXED) &
		         VIRTQ_AVAIL_F_NO_INTERRUPT);
	old = vq->signalled_used;
	valid = vq->signalled_valid;
	vq->signalled_used = vq->used_idx;
	vq->signalled_valid = true;
	if (!valid)
		return true;
	event = __atomic_load_n(virtq_used_event(vq), __ATOMIC_RELAXED);
	return virtq_need_event(event, vq->used_idx, old);
}

bool virtq_enable_notify(struct virtq *vq)
{
	if (!vq->started || vq->broken)
		return false;
	if (vq->event_idx)
		__atomic_store_n(virtq_avail_event(vq), vq->last_avail, __ATOMIC_RELAXED);
	else
		__atomic_store_n(&vq->used->flags, 0, __ATOMIC_RELAXED);
	guest_mem_mark_dirty(vq->mem, vq->used, VIRTQ_USED_SIZE(vq->size));
	/* Our flag/event store before the re-read of avail.idx (§2.7.10 race). */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return virtq_load_avail_idx(vq) != vq->last_avail;
}

void virtq_disable_notify(struct virtq *vq)
{
	if (vq->started && !vq->event_idx) {
		__atomic_store_n(&vq->used->flags, VIRTQ_USED_F_NO_NOTIFY, __ATOMIC_RELAXED);
		guest_mem_mark_dirty(vq->mem, vq->used, VIRTQ_USED_SIZE(vq->size));
	}
}

bool virtq_has_avail(struct virtq *vq)
{
	return vq->started && !vq->broken && virtq_load_avail_idx(vq) != vq->last_avail;
}

void virtq_save(const struct virtq *vq, struct virtq_state *st)
{
	*st = (struct virtq_state){
	    .size = vq->size,
	    .started = vq->started,
	    .broken = vq->broken,
	    .event_idx = vq->event_idx,
	    .indirect = vq->indirect,
	    .desc_gpa = vq->desc_gpa,
	    .avail_gpa = vq->avail_gpa,
	    .used_gpa = vq->used_gpa,
	    .last_avail = vq->last_avail,
	    .used_idx = vq->used_idx,
	    .signalled_used = vq->signalled_used,
	    .signalled_valid = vq->signalled_valid,
	};
}

int virtq_restore(struct virtq *vq, const struct guest_mem *mem, const struct virtq_state *st,
                  char *why, size_t why_len)
{
	struct virtq q;

	/* A stopped queue's size is whatever the driver wrote: checked when it starts. */
	if (st->started && st->size > vq->max_size) {
		snprintf(why, why_len, "size %u is above the device's %u", st->size, vq->max_size);
		return -EINVAL;
	}
	virtq_init(&q, vq->max_size);
	q.size = st->size;
	q.desc_gpa = st->desc_gpa;
	q.avail_gpa = st->avail_gpa;
	q.used_gpa = st->used_gpa;
	if (!st->started) {
		/* What virtq_reset() and the driver's register writes can leave. */
		if (st->broken || st->event_idx || st->indirect || st->last_avail || st->used_idx ||
		    st->signalled_used || st->signalled_valid) {
			snprintf(why, why_len, "it is not enabled but has ring state");
			return -EINVAL;
		}
		*vq = q;
		return 0;
	}
	if (virtq_start(&q, mem, st->event_idx, st->indirect) < 0) {
		snprintf(why, why_len,
		         "size %u or its rings (0x%llx, 0x%llx, 0x%llx) are not a valid queue in "
		         "guest memory",
		         st->size, (unsigned long long)st->desc_gpa,
		         (unsigned long long)st->avail_gpa, (unsigned long long)st->used_gpa);
		return -EINVAL;
	}
	if ((uint16_t)(st->last_avail - st->used_idx) > st->size) {
		snprintf(why, why_len, "%u chains in flight in a queue of %u",
		         (uint16_t)(st->last_avail - st->used_idx), st->size);
		return -EINVAL;
	}
	q.broken = st->broken;
	q.last_avail = st->last_avail;
	q.used_idx = st->used_idx;
	q.signalled_used = st->signalled_used;
	q.signalled_valid = st->signalled_valid;
	*vq = q;
	return 0;
}

void virtq_state_put(struct dev_state *out, const struct virtq_state *st)
{
	ds_put_u16(out, st->size);
	ds_put_bool(out, st->started);
	ds_put_bool(out, st->broken);
	ds_put_bool(out, st->event_idx);
	ds_put_bool(out, st->indirect);
	ds_put_u64(out, st->desc_gpa);
	ds_put_u64(out, st->avail_gpa);
	ds_put_u64(out, st->used_gpa);
	ds_put_u16(out, st->last_avail);
	ds_put_u16(out, st->used_idx);
	ds_put_u16(out, st->signalled_used);
	ds_put_bool(out, st->signalled_valid);
}

void virtq_state_get(struct dev_state_in *in, struct virtq_state *st)
{
	st->size = dsi_get_u16(in);
	st->started = dsi_get_bool(in);
	st->broken = dsi_get_bool(in);
	st->event_idx = dsi_get_bool(in);
	st->indirect = dsi_get_bool(in);
	st->desc_gpa = dsi_get_u64(in);
	st->avail_gpa = dsi_get_u64(in);
	st->used_gpa = dsi_get_u64(in);
	st->last_avail = dsi_get_u16(in);
	st->used_idx = dsi_get_u16(in);
	st->signalled_used = dsi_get_u16(in);
	st->signalled_valid = dsi_get_bool(in);
}

size_t iov_to_buf(const struct iovec *iov, unsigned int cnt, size_t offset, void *buf, size_t len)
{
	size_t done = 0;

	for (unsigned int i = 0; i < cnt && done < len; i++) {
		size_t n;

		if (offset >= iov[i].iov_len) {
			offset -= iov[i].iov_len;
			continue;
		}
		n = iov[i].iov_len - offset;
		if (n > len - done)
			n = len - done;
		memcpy((uint8_t *)buf + done, (uint8_t *)iov[i].iov_base + offset, n);
		done += n;
		offset = 0;
	}
	return done;
}

size_t iov_from_buf(const struct iovec *iov, unsigned int cnt, size_t offset, const void *buf,
                    size_t len)
{
	size_t done = 0;

	for (unsigned int i = 0; i < cnt && done < len; i++) {
		size_t n;

		if (offset >= iov[i].iov_len) {
			offset -= iov[i].iov_len;
			continue;
		}
		n = iov[i].iov_len - offset;
		if (n > len - done)
			n = len - done;
		memcpy((uint8_t *)iov[i].iov_base + offset, (const uint8_t *)buf + done, n);
		done += n;
		offset = 0;
	}
	return done;
}

uint64_t iov_length(const struct iovec *iov, unsigned int cnt)
{
	uint64_t total = 0;

	for (unsigned int i = 0; i < cnt; i++)
		total += iov[i].iov_len;
	return total;
}

int iov_slice(const struct iovec *iov, unsigned int cnt, size_t offset, size_t len,
              struct iovec *out, unsigned int cap)
{
	unsigned int n = 0;

	for (unsigned int i = 0; i < cnt && len > 0; i++) {
		size_t take;

		if (offset >= iov[i].iov_len) {
			offset -= iov[i].iov_len;
			continue;
		}
		if (n >= cap)
			return -1;
		take = iov[i].iov_len - offset;
		if (take > len)
			take = len;
		out[n++] = (struct iovec){.iov_base = (uint8_t *)iov[i].iov_base + offset,
		                          .iov_len = take};
		len -= take;
		offset = 0;
	}
	return len ? -1 : (int)n;
}
