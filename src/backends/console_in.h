/* SPDX-License-Identifier: MIT */
#ifndef NESTVM_BACKENDS_CONSOLE_IN_H
#define NESTVM_BACKENDS_CONSOLE_IN_H

#include <stdbool.h>

/*
 * The serial console's input: a thread that copies a host descriptor (the
 * monitor's stdin, or a descriptor the caller owns) into a UART's receive
 * FIFO, as fast as the guest drains it. It polls the input and a wake-up
 * eventfd, which the UART's rx_ready callback writes when the FIFO has room
 * again; quiesce and destroy write it too. It ends by itself at EOF.
 *
 * It is a device of the lifecycle layer (core/device.h) with no state of
 * its own, registered right after its UART so that the list destroys it
 * (joining the thread) before the UART:
 *
 *   quiesce  parks the thread: from its return until resume, no byte goes
 *            into the UART (bytes already read from the host wait in the
 *            device and go in after resume, in order)
 *   resume   unparks it
 *   destroy  stops and joins the thread
 *
 * A console without input (in_fd -1) is the same device without a thread,
 * so that the list, and so a snapshot's device indices, do not depend on
 * where the console goes.
 */

struct uart_16550;
struct console_in;

/*
 * console_in_create - start copying @in_fd (not owned; -1: no input) into
 * @uart, waking on @wake_fd (an eventfd, not owned; it must outlive the
 * device). Returns 0 and sets *@out, or -errno. A thread that cannot be
 * started is logged and leaves a device without input.
 */
int console_in_create(struct uart_16550 *uart, int in_fd, int wake_fd, struct console_in **out)
    __attribute__((warn_unused_result));

/* console_in_destroy - stop and join the thread, free the device; NULL is a no-op. */
void console_in_destroy(struct console_in *ci);

struct device_ops;
extern const struct device_ops console_in_device_ops;

#endif
