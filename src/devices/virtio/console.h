/* SPDX-License-Identifier: MIT */
#ifndef NESTVM_DEVICES_VIRTIO_CONSOLE_H
#define NESTVM_DEVICES_VIRTIO_CONSOLE_H

#include "devices/virtio/virtio_pci.h"

/*
 * virtio-console (virtio 1.2 §5.3) with multiple ports: port 0 is a console
 * (the guest's /dev/hvc0, a second console next to COM1) and ports 1..N are
 * named generic ports (/dev/vportNpM, named in
 * /sys/class/virtio-ports/.../name; udev links /dev/virtio-ports/NAME).
 *
 * Each port with a backend listens on a UNIX socket; one host program at a
 * time may connect (a second is turned away). What the guest writes goes to
 * that program; what it writes comes out in the guest. For the named ports
 * the guest sees the connection as the port's host side opening and closing
 * (VIRTIO_CONSOLE_PORT_OPEN), so its writes wait for a reader. The console
 * port never makes the guest wait (Linux polls its output buffers): output
 * nobody can take right now is dropped.
 *
 * VIRTIO_CONSOLE_F_EMERG_WRITE is offered: a byte written to emerg_wr goes
 * to port 0. A malformed queue sets needs-reset; a malformed control message
 * is ignored.
 *
 * Save and restore (virtio_pci.h, "Lifecycle"): the guest's side of each
 * port (ready, open) and the control messages not yet delivered are saved;
 * host programs are not, they stay with the old process. Once a restored
 * guest runs it hears which host sides changed (PORT_OPEN), and a transmit
 * chain that was being written to a slow program is taken again from the
 * ring, whole, for whichever program is connected then.
 */

#define VIRTIO_CONSOLE_MAX_NAMED 8
#define VIRTIO_CONSOLE_QUEUE_SIZE 64
#define VIRTIO_CONSOLE_NAME_MAX 64

/* Feature bits (§5.3.3). */
#define VIRTIO_CONSOLE_F_SIZE 0
#define VIRTIO_CONSOLE_F_MULTIPORT 1
#define VIRTIO_CONSOLE_F_EMERG_WRITE 2

/* Control events (§5.3.6.2). */
#define VIRTIO_CONSOLE_DEVICE_READY 0
#define VIRTIO_CONSOLE_DEVICE_ADD 1
#define VIRTIO_CONSOLE_DEVICE_REMOVE 2
#define VIRTIO_CONSOLE_PORT_READY 3
#define VIRTIO_CONSOLE_CONSOLE_PORT 4
#define VIRTIO_CONSOLE_RESIZE 5
#define VIRTIO_CONSOLE_PORT_OPEN 6
#define VIRTIO_CONSOLE_PORT_NAME 7

/* struct virtio_console_config (§5.3.4). */
#define VIRTIO_CONSOLE_CFG_COLS 0
#define VIRTIO_CONSOLE_CFG_ROWS 2
#define VIRTIO_CONSOLE_CFG_MAX_NR_PORTS 4
#define VIRTIO_CONSOLE_CFG_EMERG_WR 8
#define VIRTIO_CONSOLE_CFG_SIZE 12

struct virtio_console_control {
	uint32_t id;
	uint16_t event;
	uint16_t value;
} __attribute__((packed));

struct virtio_console_port_params {
	const char *name;   /* named ports only: at most VIRTIO_CONSOLE_NAME_MAX bytes */
	const char *socket; /* UNIX socket the host side listens on; NULL: none */
};

struct virtio_console_params {
	struct virtio_console_port_params console; /* port 0 (name unused) */
	struct virtio_console_port_params ports[VIRTIO_CONSOLE_MAX_NAMED];
	unsigned int nr_ports; /* named ports */
};

struct virtio_console;

/* virtio_console_create - the device and its listening sockets. Returns 0 or -errno (logged). */
int virtio_console_create(const struct virtio_console_params *params, struct virtio_console **out)
    __attribute__((warn_unused_result));

/* virtio_console_vdev - the virtio device, for virtio_pci_create(). */
struct virtio_device *virtio_console_vdev(struct virtio_console *con);

/* virtio_console_start - start accepting host programs (after virtio_pci_create()). */
int virtio_console_start(struct virtio_console *con) __attribute__((warn_unused_result));

/* virtio_console_destroy - close everything, remove the sockets, free; NULL is a no-op. */
void virtio_console_destroy(struct virtio_console *con);

#endif
