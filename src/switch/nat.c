// SPDX-License-Identifier: MIT
/*
 * A NAT switch's uplink: libslirp (uplink.h). libslirp is a user-mode
 * TCP/IP stack: what the guests send to the gateway's MAC it carries on
 * through ordinary sockets of this process, so NAT needs no privilege.
 * It runs in the switch's single thread: its sockets join the switch's
 * poll set, its timers the loop's timeout.
 */
#include "switch/uplink.h"

#include "core/clock.h"
#include "core/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int switch_pollset_add(struct switch_pollset *ps, int fd, short events, int owner)
{
	if (ps->n == ps->cap) {
		unsigned int cap = ps->cap ? ps->cap * 2 : 64;
		struct pollfd *fds = realloc(ps->fds, cap * sizeof(*fds));
		int *own;

		if (!fds)
			return -1;
		ps->fds = fds;
		own = realloc(ps->owner, cap * sizeof(*own));
		if (!own)
			return -1;
		ps->owner = own;
		ps->cap = cap;
	}
	ps->fds[ps->n] = (struct pollfd){.fd = fd, .events = events};
	ps->owner[ps->n] = owner;
	return (int)ps->n++;
}

#ifdef HAVE_LIBSLIRP
#include <dlfcn.h>
#include <slirp/libslirp.h>
#include <time.h>

/*
 * libslirp (and glib with it) is loaded by the NAT switch's process only,
 * when it starts: linked into nestvm, every VM monitor's start paid for
 * mapping and relocating them (~0.5 ms of CPU, README "Start-up").
 */
static struct {
	void *dl;
	Slirp *(*new_)(const SlirpConfig *cfg, const SlirpCb *callbacks, void *opaque);
	void (*cleanup)(Slirp *slirp);
	void (*input)(Slirp *slirp, const uint8_t *pkt, int pkt_len);
	void (*pollfds_fill)(Slirp *slirp, uint32_t *timeout, SlirpAddPollCb add_poll,
	                     void *opaque);
	void (*pollfds_poll)(Slirp *slirp, int select_error, SlirpGetREventsCb get_revents,
	                     void *opaque);
	void (*handle_timer)(Slirp *slirp, SlirpTimerId id, void *cb_opaque);
	int (*add_hostfwd)(Slirp *slirp, int is_udp, struct in_addr host_addr, int host_port,
	                   struct in_addr guest_addr, int guest_port);
	const char *(*version_string)(void);
} nat_lib;

#define NAT_LIB "libslirp.so.0"

static int nat_lib_load(char *why, size_t why_size)
{
	struct {
		const char *name;
		void **fn;
	} syms[] = {
	    {"slirp_new", (void **)&nat_lib.new_},
	    {"slirp_cleanup", (void **)&nat_lib.cleanup},
	    {"slirp_input", (void **)&nat_lib.input},
	    {"slirp_pollfds_fill", (void **)&nat_lib.pollfds_fill},
	    {"slirp_pollfds_poll", (void **)&nat_lib.pollfds_poll},
	    {"slirp_handle_timer", (void **)&nat_lib.handle_timer},
	    {"slirp_add_hostfwd", (void **)&nat_lib.add_hostfwd},
	    {"slirp_version_string", (void **)&nat_lib.version_string},
	};

	if (nat_lib.dl)
		return 0;
	nat_lib.dl = dlopen(NAT_LIB, RTLD_NOW | RTLD_LOCAL);
	if (!nat_lib.dl) {
		snprintf(why, why_size, "a NAT switch needs %s (Debian: libslirp0): %s", NAT_LIB,
		         dlerror());
		return -ENOENT;
	}
	for (size_t i = 0; i < sizeof(syms) / sizeof(syms[0]); i++) {
		*syms[i].fn = dlsym(nat_lib.dl, syms[i].name);
		if (!*syms[i].fn) {
			snprintf(why, why_size, "%s has no %s", NAT_LIB, syms[i].name);
			dlclose(nat_lib.dl);
			nat_lib.dl = NULL;
			return -ENOENT;
		}
	}
	return 0;
}

#define NAT_MAX_TIMERS 8
#define NAT_LOG_BURST 10

struct nat_timer {
	bool used;
	int64_t expire_ms; /* -1: not armed */
	SlirpTimerId id;
	void *cb_opaque;
	SlirpTimerCb cb; /* the older timer_new() interface */
};

struct switch_nat {
	Slirp *slirp;
	switch_nat_rx_fn rx;
	void *opaque;
	uint8_t mac[6], dns_mac[6];
	struct nat_timer timers[NAT_MAX_TIMERS];
	struct switch_pollset *ps; /* during fill and poll */
	int owner;
	int64_t log_window; /* seconds: the minute nat_guest_error() counts in */
	unsigned int log_count, log_suppressed;
};

static int64_t nat_clock_ns(void *opaque)
{
	(void)opaque;
	return mono_ns();
}

static ssize_t nat_send_packet(const void *buf, size_t len, void *opaque)
{
	struct switch_nat *n = opaque;

	n->rx(n->opaque, buf, len);
	return (ssize_t)len;
}

/* A guest that libslirp finds at fault: logged, at most NAT_LOG_BURST lines a minute. */
static void nat_guest_error(const char *msg, void *opaque)
{
	struct switch_nat *n = opaque;
	int64_t now = nat_clock_ns(NULL) / 1000000000;

	if (now - n->log_window >= 60) {
		if (n->log_suppressed)
			log_warn("NAT: %u more refused packets not logged", n->log_suppressed);
		n->log_window = now;
		n->log_count = n->log_suppressed = 0;
	}
	if (n->log_count++ < NAT_LOG_BURST)
		log_warn("NAT: a guest's packet was refused: %s", msg);
	else
		n->log_suppressed++;
}

static struct nat_timer *nat_timer_alloc(struct switch_nat *n)
{
	for (unsigned int i = 0; i < NAT_MAX_TIMERS; i++)
		if (!n->timers[i].used) {
			n->timers[i] = (struct nat_timer){.used = true, .expire_ms = -1};
			return &n->timers[i];
		}
	return NULL;
}

static void *nat_timer_new(SlirpTimerCb cb, void *cb_opaque, void *opaque)
{
	struct nat_timer *t = nat_timer_alloc(opaque);

	if (t) {
		t->cb = cb;
		t->cb_opaque = cb_opaque;
	}
	return t;
}

static void *nat_timer_new_opaque(SlirpTimerId id, void *cb_opaque, void *opaque)
{
	struct nat_timer *t = nat_timer_alloc(opaque);

	if (t) {
		t->id = id;
		t->cb_opaque = cb_opaque;
	}
	return t;
}

static void nat_timer_free(void *timer, void *opaque)
{
	(void)opaque;
	if (timer)
		((struct nat_timer *)timer)->used = false;
}

static void nat_timer_mod(void *timer, int64_t expire_ms, void *opaque)
{
	(void)opaque;
	if (timer)
		((struct nat_timer *)timer)->expire_ms = expire_ms;
}

static void nat_poll_fd_noop(int fd, void *opaque)
{
	(void)fd;
	(void)opaque;
}

static void nat_notify_noop(void *opaque)
{
	(void)opaque;
}

static const SlirpCb nat_callbacks = {
    .send_packet = nat_send_packet,
    .guest_error = nat_guest_error,
    .clock_get_ns = nat_clock_ns,
    .timer_new = nat_timer_new,
    .timer_free = nat_timer_free,
    .timer_mod = nat_timer_mod,
    .register_poll_fd = nat_poll_fd_noop,
    .unregister_poll_fd = nat_poll_fd_noop,
    .notify = nat_notify_noop,
    .timer_new_opaque = nat_timer_new_opaque,
};

static void nat_addr_mac(uint32_t ip, uint8_t mac[6])
{
	mac[0] = 0x52;
	mac[1] = 0x55;
	mac[2] = (uint8_t)(ip >> 24);
	mac[3] = (uint8_t)(ip >> 16);
	mac[4] = (uint8_t)(ip >> 8);
	mac[5] = (uint8_t)ip;
}

int switch_nat_create(struct switch_nat **out, const struct switch_def *d, switch_nat_rx_fn rx,
                      void *opaque, char *why, size_t why_size)
{
	uint32_t mask = ~0u << (32 - d->prefix), gw = switch_addr(d, SWITCH_NAT_GATEWAY);
	SlirpConfig cfg = {
	    .version = 4,
	    .in_enabled = true,
	    .vnetwork = {.s_addr = htonl(d->net)},
	    .vnetmask = {.s_addr = htonl(mask)},
	    .vhost = {.s_addr = htonl(gw)},
	    .vdhcp_start = {.s_addr = htonl(switch_addr(d, SWITCH_DHCP_FIRST))},
	    .vnameserver = {.s_addr = htonl(switch_addr(d, SWITCH_NAT_DNS))},
	    .vhostname = "nestvm",
	    .disable_dhcp = true, /* the switch's own server gives stable leases (dhcp.h) */
	};
	struct switch_nat *n;
	int r = nat_lib_load(why, why_size);

	if (r < 0)
		return r;
	n = calloc(1, sizeof(*n));
	if (!n) {
		snprintf(why, why_size, "out of memory");
		return -ENOMEM;
	}
	n->rx = rx;
	n->opaque = opaque;
	n->slirp = nat_lib.new_(&cfg, &nat_callbacks, n);
	if (!n->slirp) {
		free(n);
		snprintf(why, why_size, "libslirp refused the configuration");
		return -EINVAL;
	}
	for (unsigned int i = 0; i < d->nr_forwards; i++) {
		const struct switch_forward *f = &d->forwards[i];
		struct in_addr host = {.s_addr = htonl(f->host_addr)};
		struct in_addr guest = {.s_addr = htonl(f->guest_ip)};
		char text[96];

		if (nat_lib.add_hostfwd(n->slirp, f->udp, host, f->host_port, guest, f->guest_port) <
		    0) {
			switch_forward_format(f, text, sizeof(text));
			snprintf(why, why_size,
			         "port forward %s: cannot listen on the host's port (in use?)",
			         text);
			switch_nat_destroy(n);
			return -EADDRINUSE;
		}
	}
	/* libslirp's MACs: 52:55 and the IPv4 address asked for (its special_ethaddr). */
	nat_addr_mac(gw, n->mac);
	nat_addr_mac(switch_addr(d, SWITCH_NAT_DNS), n->dns_mac);
	log_info("NAT: libslirp %s, gateway %u.%u.%u.%u", nat_lib.version_string(), gw >> 24,
	         (gw >> 16) & 0xff, (gw >> 8) & 0xff, gw & 0xff);
	*out = n;
	return 0;
}

void switch_nat_destroy(struct switch_nat *n)
{
	if (!n)
		return;
	if (n->slirp)
		nat_lib.cleanup(n->slirp);
	free(n);
}

void switch_nat_mac(const struct switch_nat *n, uint8_t mac[6])
{
	memcpy(mac, n->mac, 6);
}

void switch_nat_dns_mac(const struct switch_nat *n, uint8_t mac[6])
{
	memcpy(mac, n->dns_mac, 6);
}

void switch_nat_input(struct switch_nat *n, const uint8_t *frame, size_t len)
{
	nat_lib.input(n->slirp, frame, (int)len);
}

static int nat_add_poll(int fd, int events, void *opaque)
{
	struct switch_nat *n = opaque;
	short ev = (short)((events & SLIRP_POLL_IN ? POLLIN : 0) |
	                   (events & SLIRP_POLL_OUT ? POLLOUT : 0) |
	                   (events & SLIRP_POLL_PRI ? POLLPRI : 0));

	return switch_pollset_add(n->ps, fd, ev, n->owner);
}

static int nat_get_revents(int idx, void *opaque)
{
	struct switch_nat *n = opaque;
	short r;

	if (idx < 0 || (unsigned int)idx >= n->ps->n)
		return 0;
	r = n->ps->fds[idx].revents;
	return (r & POLLIN ? SLIRP_POLL_IN : 0) | (r & POLLOUT ? SLIRP_POLL_OUT : 0) |
	       (r & POLLPRI ? SLIRP_POLL_PRI : 0) | (r & POLLERR ? SLIRP_POLL_ERR : 0) |
	       (r & POLLHUP ? SLIRP_POLL_HUP : 0);
}

void switch_nat_fill(struct switch_nat *n, struct switch_pollset *ps, int owner, int *timeout_ms)
{
	uint32_t t = *timeout_ms < 0 ? UINT32_MAX : (uint32_t)*timeout_ms;
	int64_t now = nat_clock_ns(NULL) / 1000000;

	n->ps = ps;
	n->owner = owner;
	nat_lib.pollfds_fill(n->slirp, &t, nat_add_poll, n);
	for (unsigned int i = 0; i < NAT_MAX_TIMERS; i++) {
		const struct nat_timer *tm = &n->timers[i];

		if (tm->used && tm->expire_ms >= 0) {
			int64_t left = tm->expire_ms > now ? tm->expire_ms - now : 0;

			if (left < (int64_t)t)
				t = (uint32_t)left;
		}
	}
	*timeout_ms = t == UINT32_MAX ? -1 : (int)(t > 1000000 ? 1000000 : t);
}

void switch_nat_poll(struct switch_nat *n, struct switch_pollset *ps, bool poll_failed)
{
	int64_t now = nat_clock_ns(NULL) / 1000000;

	n->ps = ps;
	nat_lib.pollfds_poll(n->slirp, poll_failed, nat_get_revents, n);
	for (unsigned int i = 0; i < NAT_MAX_TIMERS; i++) {
		struct nat_timer *tm = &n->timers[i];

		if (!tm->used || tm->expire_ms < 0 || tm->expire_ms > now)
			continue;
		tm->expire_ms = -1;
		if (tm->cb)
			tm->cb(tm->cb_opaque);
		else
			nat_lib.handle_timer(n->slirp, tm->id, tm->cb_opaque);
	}
}

#else /* !HAVE_LIBSLIRP */

struct switch_nat {
	int unused;
};

int switch_nat_create(struct switch_nat **out, const struct switch_def *d, switch_nat_rx_fn rx,
                      void *opaque, char *why, size_t why_size)
{
	(void)d;
	(void)rx;
	(void)opaque;
	*out = NULL;
	snprintf(why, why_size,
	         "this nestvm was built without libslirp, which NAT switches need (the static "
	         "build never has it; otherwise install libslirp-dev and libglib2.0-dev, "
	         "scripts/install-deps.sh, and rebuild)");
	return -ENOTSUP;
}

void switch_nat_destroy(struct switch_nat *n)
{
	(void)n;
}

void switch_nat_mac(const struct switch_nat *n, uint8_t mac[6])
{
	(void)n;
	memset(mac, 0, 6);
}

void switch_nat_dns_mac(const struct switch_nat *n, uint8_t mac[6])
{
	(void)n;
	memset(mac, 0, 6);
}

void switch_nat_input(struct switch_nat *n, const uint8_t *frame, size_t len)
{
	(void)n;
	(void)frame;
	(void)len;
}

void switch_nat_fill(struct switch_nat *n, struct switch_pollset *ps, int owner, int *timeout_ms)
{
	(void)n;
	(void)ps;
	(void)owner;
	(void)timeout_ms;
}

void switch_nat_poll(struct switch_nat *n, struct switch_pollset *ps, bool poll_failed)
{
	(void)n;
	(void)ps;
	(void)poll_failed;
}

#endif
