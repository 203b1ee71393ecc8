/* SPDX-License-Identifier: MIT */
#ifndef NESTVM_SWITCH_SWITCH_DEF_H
#define NESTVM_SWITCH_SWITCH_DEF_H

/*
 * A switch's definition ($NESTVM_HOME/.switches/NAME/switch.json):
 *
 *   {"name": "lan", "type": "nat", "subnet": "10.0.2.0/24",
 *    "forwards": ["tcp:127.0.0.1:8080:10.0.2.15:80"]}
 *   {"name": "hostnet", "type": "internal", "subnet": "10.77.0.0/24", "tap": "nestvm-hostnet"}
 *   {"name": "back", "type": "private"}
 *
 * private: no addresses, no subnet. internal: a subnet (required), the host
 * at its first address on a tap device, a DHCP server there too. nat: a
 * subnet (default 10.0.2.0/24, as QEMU's user networking), gateway .2, DNS
 * .3, DHCP from .15, port forwards.
 */

#include "manager/mgr_err.h"

#include <stdbool.h>
#include <stdint.h>

#define SWITCH_NAME_MAX 64
#define SWITCH_TAP_MAX 15 /* IFNAMSIZ - 1 */
#define SWITCH_MAX_FORWARDS 32
#define SWITCH_NAT_DEFAULT_NET 0x0a000200u /* 10.0.2.0 */
#define SWITCH_NAT_DEFAULT_PREFIX 24
#define SWITCH_NAT_GATEWAY 2 /* host part of the gateway's address */
#define SWITCH_NAT_DNS 3
#define SWITCH_DHCP_FIRST 15 /* host part of the first address DHCP hands out */

enum switch_type { SWITCH_PRIVATE, SWITCH_INTERNAL, SWITCH_NAT };

/* A port forward of a NAT switch: host_addr:host_port -> guest_ip:guest_port. */
struct switch_forward {
	bool udp;
	uint32_t host_addr; /* host byte order; default 127.0.0.1 */
	uint16_t host_port;
	uint32_t guest_ip;
	uint16_t guest_port;
};

struct switch_def {
	char name[SWITCH_NAME_MAX + 1];
	enum switch_type type;
	uint32_t net;                 /* host byte order; 0 for a private switch */
	unsigned int prefix;          /* 8..30 */
	char tap[SWITCH_TAP_MAX + 1]; /* internal: the host's device */
	struct switch_forward forwards[SWITCH_MAX_FORWARDS];
	unsigned int nr_forwards;
};

const char *switch_type_name(enum switch_type t);
/* switch_type_parse - "private", "internal", "nat"; 0 or -EINVAL. */
int switch_type_parse(const char *s, enum switch_type *t) __attribute__((warn_unused_result));

/* switch_subnet_parse - "A.B.C.D/N" (N 8..30, no host bits set, not 0.0.0.0); 0 or -EINVAL. */
int switch_subnet_parse(const char *s, uint32_t *net, unsigned int *prefix)
    __attribute__((warn_unused_result));

/* switch_forward_parse - "tcp|udp:[HOSTADDR:]HOSTPORT:GUESTIP:GUESTPORT"; 0 or -EINVAL. */
int switch_forward_parse(const char *s, struct switch_forward *f)
    __attribute__((warn_unused_result));
/* switch_forward_format - the canonical text of @f (with the host address) into @buf. */
void switch_forward_format(const struct switch_forward *f, char *buf, size_t len);

/* switch_tap_default - the tap device name of internal switch @name: nestvm-NAME, or nv-HASH. */
void switch_tap_default(const char *name, char tap[SWITCH_TAP_MAX + 1]);

/*
 * switch_def_validate - the rules above: a subnet for internal (for nat, 0
 * is replaced by the default), none for private; forwards only on nat, to
 * guest addresses in the subnet other than the gateway's and DNS's; a tap
 * name only on internal (default filled in). 0 or -EINVAL with @err set.
 */
int switch_def_validate(struct switch_def *d, struct mgr_err *err)
    __attribute__((warn_unused_result));

/* switch_def_format - @d as switch.json text (malloc'd) or NULL. */
char *switch_def_format(const struct switch_def *d);

/*
 * switch_def_parse - switch.json text (@file names it in messages) into @d,
 * validated; unknown fields are refused. 0 or -EINVAL with @err set.
 */
int switch_def_parse(const char *text, size_t len, const char *file, struct switch_def *d,
                     struct mgr_err *err) __attribute__((warn_unused_result));

/* switch_addr - host part @host of the switch's subnet (host byte order). */
static inline uint32_t switch_addr(const struct switch_def *d, uint32_t host)
{
	return d->net | host;
}

#endif
