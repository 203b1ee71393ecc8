/* SPDX-License-Identifier: MIT */
/* The serial console's input thread, a device of its own; see console_in.h. */
#include "backends/console_in.h"

#include "core/device.h"
#include "core/log.h"
#include "core/sandbox.h"
#include "devices/legacy/uart_16550.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CONSOLE_IN_BUF 64
/* How long quiesce waits for the thread to say it is parked (see console_in_quiesce). */
#define CONSOLE_IN_PARK_TIMEOUT_S 1

struct console_in {
	struct uart_16550 *uart;
	int in_fd;
	int wake_fd;
	pthread_t thread;
	bool started;

	pthread_mutex_t lock; /* guards the flags below, and every byte put into the UART */
	pthread_cond_t cond;
	bool park;    /* quiesced: no byte goes into the UART */
	bool parked;  /* the thread is waiting in console_in_wait_unparked() */
	bool stop;    /* destroy: the thread ends */
	bool running; /* the thread has not ended */
};

static void console_in_wake(struct console_in *ci)
{
	uint64_t one = 1;

	if (write(ci->wake_fd, &one, sizeof(one)) < 0)
		log_debug("console input: wake-up lost");
}

/* console_in_wait_unparked - wait while quiesced; false once the thread is to end. */
static bool console_in_wait_unparked(struct console_in *ci)
{
	bool stop;

	pthread_mutex_lock(&ci->lock);
	while (ci->park && !ci->stop) {
		ci->parked = true;
		pthread_cond_broadcast(&ci->cond);
		pthread_cond_wait(&ci->cond, &ci->lock);
	}
	ci->parked = false;
	stop = ci->stop;
	pthread_mutex_unlock(&ci->lock);
	return !stop;
}

/*
 * console_in_deliver - put @len bytes into the UART unless quiesced; returns
 * how many it took. Under the lock, so quiesce cannot slip in between its
 * check and the UART.
 */
static size_t console_in_deliver(struct console_in *ci, const uint8_t *buf, size_t len)
{
	size_t n = 0;

	pthread_mutex_lock(&ci->lock);
	if (!ci->park)
		n = uart_16550_receive(ci->uart, buf, len);
	pthread_mutex_unlock(&ci->lock);
	return n;
}

/*
 * The thread: read what the FIFO has room for, deliver it, and wait on the
 * wake-up alone while bytes are left over (the FIFO filled up, loopback, or
 * a quiesce came between the read and the delivery).
 */
static void *console_in_thread(void *arg)
{
	struct console_in *ci = arg;
	uint8_t buf[CONSOLE_IN_BUF];
	size_t head = 0, len = 0; /* buf[head, len): read from the host, not yet in the UART */

	sandbox_enter(SANDBOX_DEVICE, "console-in");
	while (console_in_wait_unparked(ci)) {
		struct pollfd fds[2] = {
		    {.fd = ci->wake_fd, .events = POLLIN},
		    {.fd = ci->in_fd, .events = POLLIN},
		};
		size_t room = 0;
		uint64_t v;
		ssize_t n;

		if (head < len)
			head += console_in_deliver(ci, buf + head, len - head);
		if (head == len) {
			head = len = 0;
			room = uart_16550_rx_room(ci->uart);
		}
		if (poll(fds, room ? 2 : 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if ((fds[0].revents & POLLIN) && read(ci->wake_fd, &v, sizeof(v)) < 0 &&
		    errno != EINTR)
			break;
		if (!room || !(fds[1].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		n = read(ci->in_fd, buf, room < sizeof(buf) ? room : sizeof(buf));
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			break; /* EOF, or the input is gone */
		len = (size_t)n;
	}
	pthread_mutex_lock(&ci->lock);
	ci->running = false;
	pthread_cond_broadcast(&ci->cond);
	pthread_mutex_unlock(&ci->lock);
	return NULL;
}

int console_in_create(struct uart_16550 *uart, int in_fd, int wake_fd, struct console_in **out)
{
	struct console_in *ci;
	pthread_condattr_t ca;
	int r;

	*out = NULL;
	if (!uart || (in_fd >= 0 && wake_fd < 0))
		return -EINVAL;
	ci = calloc(1, sizeof(*ci));
	if (!ci)
		return -ENOMEM;
	r = pthread_mutex_init(&ci->lock, NULL);
	if (r) {
		free(ci);
		return -r;
	}
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	r = pthread_cond_init(&ci->cond, &ca);
	pthread_condattr_destroy(&ca);
	if (r) {
		pthread_mutex_destroy(&ci->lock);
		free(ci);
		return -r;
	}
	ci->uart = uart;
	ci->in_fd = in_fd;
	ci->wake_fd = wake_fd;
	if (in_fd >= 0) {
		ci->running = true;
		r = sandbox_thread_create(&ci->thread, console_in_thread, ci);
		if (r == 0) {
			ci->started = true;
		} else {
			ci->running = false;
			log_warn("no console input: cannot start the input thread: %s",
			         strerror(r));
		}
	}
	*out = ci;
	return 0;
}

void console_in_destroy(struct console_in *ci)
{
	if (!ci)
		return;
	if (ci->started) {
		pthread_mutex_lock(&ci->lock);
		ci->stop = true;
		pthread_cond_broadcast(&ci->cond);
		pthread_mutex_unlock(&ci->lock);
		console_in_wake(ci);
		pthread_join(ci->thread, NULL);
	}
	pthread_cond_destroy(&ci->cond);
	pthread_mutex_destroy(&ci->lock);
	free(ci);
}

/* ---- the device lifecycle (core/device.h) ---- */

/*
 * Setting park under the lock is what keeps bytes out of the UART. The wait
 * that follows only lets the thread get to its parking place; it is bounded
 * because a read() of a terminal that another process drained after poll()
 * may block, and then the thread parks when that read returns.
 */
static int console_in_quiesce(void *dev)
{
	struct console_in *ci = dev;
	struct timespec deadline;
	int err = 0;

	pthread_mutex_lock(&ci->lock);
	ci->park = true;
	pthread_mutex_unlock(&ci->lock);
	if (!ci->started)
		return 0;
	console_in_wake(ci);
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += CONSOLE_IN_PARK_TIMEOUT_S;
	pthread_mutex_lock(&ci->lock);
	while (ci->running && !ci->parked && err == 0)
		err = pthread_cond_timedwait(&ci->cond, &ci->lock, &deadline);
	if (ci->running && !ci->parked)
		log_debug("console input: the thread is in a read; it parks when that returns");
	pthread_mutex_unlock(&ci->lock);
	return 0;
}

static void console_in_resume(void *dev)
{
	struct console_in *ci = dev;

	pthread_mutex_lock(&ci->lock);
	ci->park = false;
	pthread_cond_broadcast(&ci->cond);
	pthread_mutex_unlock(&ci->lock);
}

static void console_in_device_destroy(void *dev)
{
	console_in_destroy(dev);
}

const struct device_ops console_in_device_ops = {
    .kind = "console-in",
    .version = 1,
    .quiesce = console_in_quiesce,
    .resume = console_in_resume,
    .destroy = console_in_device_destroy,
};
