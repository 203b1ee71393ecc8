/* SPDX-License-Identifier: MIT */
#ifndef NESTVM_NET_SWITCH_LINK_H
#define NESTVM_NET_SWITCH_LINK_H

/*
 * How an adapter finds and joins a switch (netport.h): the switch NAME of
 * the store at @home lives in @home/.switches/NAME/, its ports at
 * @home/.switches/NAME/ports.sock.
 */

#include "net/netport.h"

#include <stddef.h>

#define SWITCH_DIR ".switches"
#define SWITCH_PORTS_SOCKET "ports.sock"

/*
 * switch_link_connect - connect adapter @h to switch @name in the store at
 * @home (the store's directory, already opened and checked): start the
 * switch if it is not running, connect a SOCK_SEQPACKET socket to its
 * ports.sock (only one owned by this user: unix_connect_owned_type()), send
 * the hello and read the answer. Returns the connected, blocking,
 * close-on-exec socket with the switch's port number in *@port, or -errno
 * with the reason in @why. Batches (netport.h, step 4): @h->batch is the
 * frames per message the adapter takes (0: it takes no batches), and on
 * return the switch's count (0: one frame per message, both ways). A switch
 * that refuses a hello that asks for batches (an old one) is asked again
 * without.
 */
int switch_link_connect(const char *home, const char *name, struct netport_hello *h,
                        unsigned int *port, char *why, size_t why_size)
    __attribute__((warn_unused_result));

#endif
