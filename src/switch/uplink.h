/* SPDX-License-Identifier: MIT */
#ifndef NESTVM_SWITCH_UPLINK_H
#define NESTVM_SWITCH_UPLINK_H

/*
 * A switch's uplink (port 0): the host's tap device of an internal switch
 * (tap.c), libslirp's NAT of a NAT switch (nat.c). Both hand the switch
 * complete Ethernet frames without a netport header.
 */

#include "switch/switch_def.h"

#include <poll.h>
#include <stddef.h>
#include <stdint.h>

/* ---- tap (internal switches) ---- */

/*
 * switch_tap_open - create tap device @d->tap (IFF_TAP | IFF_NO_PI,
 * non-blocking), give it the subnet's first address and bring it up; its
 * MAC in @mac. Needs CAP_NET_ADMIN. Returns the descriptor or -errno with
 * what is missing in @why.
 */
int switch_tap_open(const struct switch_def *d, uint8_t mac[6], char *why, size_t why_size)
    __attribute__((warn_unused_result));

/* ---- NAT (libslirp) ---- */

struct switch_nat;

/* Frames from the NAT to the switch. */
typedef void (*switch_nat_rx_fn)(void *opaque, const uint8_t *frame, size_t len);

/* The poll set the switch's loop builds; the NAT adds its sockets to it. */
struct switch_pollset {
	struct pollfd *fds;
	unsigned int n, cap;
	int *owner; /* per entry: who handles it (the switch's own codes) */
};

/* switch_pollset_add - append @fd with @events for @owner; the index, or -1 (no memory). */
int switch_pollset_add(struct switch_pollset *ps, int fd, short events, int owner);

/*
 * switch_nat_create - a libslirp instance for NAT switch @d: gateway .2, DNS
 * .3 (forwarded to the host's resolver), slirp's own DHCP off (the switch
 * has its own, dhcp.h), IPv4 only, the port forwards. Returns 0 or -errno
 * with why in @why (-ENOTSUP: nestvm was built without libslirp).
 */
int switch_nat_create(struct switch_nat **out, const struct switch_def *d, switch_nat_rx_fn rx,
                      void *opaque, char *why, size_t why_size) __attribute__((warn_unused_result));
void switch_nat_destroy(struct switch_nat *n);

/* switch_nat_mac - the gateway's MAC (the DHCP server's). */
void switch_nat_mac(const struct switch_nat *n, uint8_t mac[6]);

/* switch_nat_dns_mac - the MAC libslirp answers ARP for the DNS address with. */
void switch_nat_dns_mac(const struct switch_nat *n, uint8_t mac[6]);

/* switch_nat_input - a frame from the switch to the NAT. */
void switch_nat_input(struct switch_nat *n, const uint8_t *frame, size_t len);

/* switch_nat_fill - add the NAT's sockets to @ps (owner @owner), lower *@timeout_ms to its timers'.
 */
void switch_nat_fill(struct switch_nat *n, struct switch_pollset *ps, int owner, int *timeout_ms);

/* switch_nat_poll - after poll(): let the NAT serve its sockets and timers. */
void switch_nat_poll(struct switch_nat *n, struct switch_pollset *ps, bool poll_failed);

#endif
