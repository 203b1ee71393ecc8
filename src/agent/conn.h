/* SPDX-License-Identifier: MIT */
#ifndef NESTVM_AGENT_CONN_H
#define NESTVM_AGENT_CONN_H

/*
 * One agent connection (proto.h) over a non-blocking stream socket: frames
 * read into a bounded buffer and parsed one at a time, frames to send queued
 * in an agent_buf and written as the socket takes them. Shared by nestvm and
 * the guest agent; libc only. Not thread-safe: one owner drives it.
 */

#include "agent/proto.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct agent_conn {
	int fd;
	uint8_t *rx;
	size_t rx_len, rx_off, rx_cap;
	struct agent_buf tx;
	size_t tx_off;      /* bytes of @tx already sent */
	uint32_t frame_max; /* the largest payload accepted */
};

/*
 * agent_conn_init - wrap @fd (taken: agent_conn_destroy() closes it), made
 * non-blocking. Returns 0 or -ENOMEM (the caller still owns @fd then).
 */
int agent_conn_init(struct agent_conn *c, int fd) __attribute__((warn_unused_result));

/* agent_conn_destroy - close the socket and free the buffers; a destroyed or zeroed conn is a
 * no-op. */
void agent_conn_destroy(struct agent_conn *c);

/*
 * agent_conn_fill - one read() into the receive buffer. Returns the bytes
 * read (> 0), 0 at EOF, -EAGAIN when nothing is there, -ENOBUFS when the
 * buffer holds a whole frame's worth not yet parsed, or -errno.
 */
ssize_t agent_conn_fill(struct agent_conn *c) __attribute__((warn_unused_result));

/*
 * agent_conn_next - the next complete frame received: 1 with @f set (its
 * payload valid until the next call on @c), 0 if none is complete yet, or
 * -EPROTO / -EMSGSIZE (agent_frame_parse) for a frame to refuse.
 */
int agent_conn_next(struct agent_conn *c, struct agent_frame *f)
    __attribute__((warn_unused_result));

/* agent_conn_flush - write what is queued: 0 when all is out, -EAGAIN if some is left, -errno. */
int agent_conn_flush(struct agent_conn *c) __attribute__((warn_unused_result));

/* agent_conn_queued - bytes queued to send. */
size_t agent_conn_queued(const struct agent_conn *c);

/*
 * agent_conn_recv - wait up to @timeout_ms (< 0: no limit) for the next
 * frame, flushing what is queued meanwhile. 1 with @f set, 0 at EOF,
 * -ETIMEDOUT, or an error as above.
 */
int agent_conn_recv(struct agent_conn *c, struct agent_frame *f, int timeout_ms)
    __attribute__((warn_unused_result));

/* agent_conn_send_all - flush everything queued, waiting up to @timeout_ms; 0 or -errno. */
int agent_conn_send_all(struct agent_conn *c, int timeout_ms) __attribute__((warn_unused_result));

#endif
