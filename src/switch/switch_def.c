// SPDX-License-Identifier: MIT
/* Switch definitions (switch_def.h). */
#include "switch/switch_def.h"

#include "manager/store.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const switch_type_names[] = {
    [SWITCH_PRIVATE] = "private",
    [SWITCH_INTERNAL] = "internal",
    [SWITCH_NAT] = "nat",
};

const char *switch_type_name(enum switch_type t)
{
	return (unsigned int)t < 3 ? switch_type_names[t] : "?";
}

int switch_type_parse(const char *s, enum switch_type *t)
{
	for (unsigned int i = 0; i < 3; i++)
		if (!strcmp(s, switch_type_names[i])) {
			*t = (enum switch_type)i;
			return 0;
		}
	return -EINVAL;
}

static int switch_ip_parse(const char *s, uint32_t *ip)
{
	struct in_addr in;

	if (inet_pton(AF_INET, s, &in) != 1)
		return -EINVAL;
	*ip = ntohl(in.s_addr);
	return 0;
}

static void switch_ip_format(uint32_t ip, char *buf, size_t len)
{
	struct in_addr in = {.s_addr = htonl(ip)};

	if (!inet_ntop(AF_INET, &in, buf, (socklen_t)len))
		snprintf(buf, len, "?");
}

int switch_subnet_parse(const char *s, uint32_t *net, unsigned int *prefix)
{
	char addr[INET_ADDRSTRLEN];
	const char *slash = strchr(s, '/');
	unsigned long n;
	char *end;

	if (!slash || (size_t)(slash - s) >= sizeof(addr) || !slash[1])
		return -EINVAL;
	memcpy(addr, s, slash - s);
	addr[slash - s] = '\0';
	n = strtoul(slash + 1, &end, 10);
	if (*end || n < 8 || n > 30 || switch_ip_parse(addr, net) < 0)
		return -EINVAL;
	if (*net & ~(~0u << (32 - n)))
		return -EINVAL; /* host bits set: "10.0.2.5/24" is not a subnet */
	if (!*net)
		return -EINVAL; /* 0.0.0.0/N is "this network" (and 0 means none here) */
	*prefix = (unsigned int)n;
	return 0;
}

static int switch_port_parse(const char *s, uint16_t *port)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);

	if (!*s || *end || v == 0 || v > 65535)
		return -EINVAL;
	*port = (uint16_t)v;
	return 0;
}

int switch_forward_parse(const char *s, struct switch_forward *f)
{
	char buf[128], *part[5];
	unsigned int n = 0;

	memset(f, 0, sizeof(*f));
	if (strlen(s) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, s);
	for (char *p = buf, *c; n < 5; p = c + 1) {
		part[n++] = p;
		c = strchr(p, ':');
		if (!c)
			break;
		*c = '\0';
		if (n == 5)
			return -EINVAL;
	}
	if (n != 4 && n != 5)
		return -EINVAL;
	if (!strcmp(part[0], "udp"))
		f->udp = true;
	else if (strcmp(part[0], "tcp"))
		return -EINVAL;
	f->host_addr = 0x7f000001u;
	if (n == 5 && switch_ip_parse(part[1], &f->host_addr) < 0)
		return -EINVAL;
	if (switch_port_parse(part[n - 3], &f->host_port) < 0 ||
	    switch_ip_parse(part[n - 2], &f->guest_ip) < 0 ||
	    switch_port_parse(part[n - 1], &f->guest_port) < 0)
		return -EINVAL;
	return 0;
}

void switch_forward_format(const struct switch_forward *f, char *buf, size_t len)
{
	char h[INET_ADDRSTRLEN], g[INET_ADDRSTRLEN];

	switch_ip_format(f->host_addr, h, sizeof(h));
	switch_ip_format(f->guest_ip, g, sizeof(g));
	snprintf(buf, len, "%s:%s:%u:%s:%u", f->udp ? "udp" : "tcp", h, f->host_port, g,
	         f->guest_port);
}

void switch_tap_default(const char *name, char tap[SWITCH_TAP_MAX + 1])
{
	uint32_t h = 2166136261u;

	if (strlen("nestvm-") + strlen(name) <= SWITCH_TAP_MAX) {
		snprintf(tap, SWITCH_TAP_MAX + 1, "nestvm-%s", name);
		return;
	}
	for (const char *p = name; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	snprintf(tap, SWITCH_TAP_MAX + 1, "nestvm-%08x", h);
}

static bool switch_tap_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > SWITCH_TAP_MAX || !strcmp(s, ".") || !strcmp(s, ".."))
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '-' || *s == '_' || *s == '.'))
			return false;
	return true;
}

int switch_def_validate(struct switch_def *d, struct mgr_err *err)
{
	uint32_t mask;

	if (store_check_name(d->name, NULL) < 0)
		return mgr_err_set(err, -EINVAL,
		                   "invalid switch name: use 1 to %d letters, digits, '.', '_' or "
		                   "'-', starting with a letter or digit",
		                   SWITCH_NAME_MAX);
	if ((unsigned int)d->type > SWITCH_NAT)
		return mgr_err_set(err, -EINVAL, "unknown switch type");
	if (d->type == SWITCH_NAT && !d->net) {
		d->net = SWITCH_NAT_DEFAULT_NET;
		d->prefix = SWITCH_NAT_DEFAULT_PREFIX;
	}
	if (!d->net && d->prefix)
		return mgr_err_set(err, -EINVAL, "the subnet must not be 0.0.0.0");
	if (d->type == SWITCH_PRIVATE && d->net)
		return mgr_err_set(err, -EINVAL,
		                   "a private switch has no subnet: its VMs pick their own "
		                   "addresses (no DHCP, no host); use --type internal or nat");
	if (d->net && (d->prefix < 8 || d->prefix > 30 || (d->net & ~(~0u << (32 - d->prefix)))))
		return mgr_err_set(err, -EINVAL,
		                   "the subnet must be A.B.C.D/N, N from 8 to 30, "
		                   "without host bits");
	/* .15 upwards must exist for DHCP: a /28 has 14 hosts. */
	if (d->net && d->prefix > 27)
		return mgr_err_set(err, -EINVAL,
		                   "the subnet is too small: at most /27 (DHCP hands "
		                   "out addresses from .%d)",
		                   SWITCH_DHCP_FIRST);
	if (d->type != SWITCH_INTERNAL && d->tap[0])
		return mgr_err_set(err, -EINVAL, "only an internal switch has a tap device");
	if (d->type == SWITCH_INTERNAL && !d->tap[0])
		switch_tap_default(d->name, d->tap);
	if (d->tap[0] && !switch_tap_valid(d->tap))
		return mgr_err_set(
		    err, -EINVAL, "invalid tap device name: 1 to %d letters, digits, '-', '_', '.'",
		    SWITCH_TAP_MAX);
	if (d->nr_forwards && d->type != SWITCH_NAT)
		return mgr_err_set(err, -EINVAL, "only a NAT switch has port forwards");
	if (d->nr_forwards > SWITCH_MAX_FORWARDS)
		return mgr_err_set(err, -EINVAL, "at most %d port forwards", SWITCH_MAX_FORWARDS);
	mask = d->net ? ~0u << (32 - d->prefix) : 0;
	for (unsigned int i = 0; i < d->nr_forwards; i++) {
		const struct switch_forward *f = &d->forwards[i];
		uint32_t host = f->guest_ip & ~mask;
		char text[96];

		switch_forward_format(f, text, sizeof(text));
		if ((f->guest_ip & mask) != d->net || host == 0 || host == ~mask ||
		    host == SWITCH_NAT_GATEWAY || host == SWITCH_NAT_DNS)
			return mgr_err_set(
			    err, -EINVAL,
			    "port forward %s: the guest address must be a VM's address "
			    "in the switch's subnet",
			    text);
		for (unsigned int j = 0; j < i; j++)
			if (d->forwards[j].udp == f->udp &&
			    d->forwards[j].host_port == f->host_port &&
			    d->forwards[j].host_addr == f->host_addr)
				return mgr_err_set(
				    err, -EINVAL,
				    "port forward %s: the host port is forwarded twice", text);
	}
	return 0;
}

char *switch_def_format(const struct switch_def *d)
{
	json_t *o = json_pack("{s:s, s:s}", "name", d->name, "type", switch_type_name(d->type));
	char *text;

	if (!o)
		return NULL;
	if (d->net) {
		char addr[INET_ADDRSTRLEN], subnet[32];

		switch_ip_format(d->net, addr, sizeof(addr));
		snprintf(subnet, sizeof(subnet), "%s/%u", addr, d->prefix);
		json_object_set_new(o, "subnet", json_string(subnet));
	}
	if (d->tap[0])
		json_object_set_new(o, "tap", json_string(d->tap));
	if (d->type == SWITCH_NAT) {
		json_t *a = json_array();

		for (unsigned int i = 0; a && i < d->nr_forwards; i++) {
			char text[96];

			switch_forward_format(&d->forwards[i], text, sizeof(text));
			json_array_append_new(a, json_string(text));
		}
		json_object_set_new(o, "forwards", a);
	}
	text = json_dumps(o, JSON_INDENT(2));
	json_decref(o);
	return text;
}

int switch_def_parse(const char *text, size_t len, const char *file, struct switch_def *d,
                     struct mgr_err *err)
{
	json_error_t jerr;
	const char *key;
	json_t *o, *v;
	int r = 0;
	bool have_type = false;

	memset(d, 0, sizeof(*d));
	o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_object(o)) {
		json_decref(o);
		return mgr_err_set(err, -EINVAL, "%s: not a JSON object%s%s", file, o ? "" : ": ",
		                   o ? "" : jerr.text);
	}
	json_object_foreach(o, key, v)
	{
		const char *s = json_string_value(v);

		if (!strcmp(key, "name")) {
			if (!s || strlen(s) > SWITCH_NAME_MAX)
				r = mgr_err_set(err, -EINVAL, "%s: field 'name': not a switch name",
				                file);
			else
				strcpy(d->name, s);
		} else if (!strcmp(key, "type")) {
			if (!s || switch_type_parse(s, &d->type) < 0)
				r = mgr_err_set(err, -EINVAL,
				                "%s: field 'type': private, internal or nat", file);
			have_type = true;
		} else if (!strcmp(key, "subnet")) {
			if (!s || switch_subnet_parse(s, &d->net, &d->prefix) < 0)
				r = mgr_err_set(err, -EINVAL, "%s: field 'subnet': not A.B.C.D/N",
				                file);
		} else if (!strcmp(key, "tap")) {
			if (!s || strlen(s) > SWITCH_TAP_MAX)
				r = mgr_err_set(err, -EINVAL, "%s: field 'tap': not a device name",
				                file);
			else
				strcpy(d->tap, s);
		} else if (!strcmp(key, "forwards")) {
			size_t i;
			json_t *e;

			if (!json_is_array(v) || json_array_size(v) > SWITCH_MAX_FORWARDS)
				r = mgr_err_set(err, -EINVAL,
				                "%s: field 'forwards': at most %d strings", file,
				                SWITCH_MAX_FORWARDS);
			json_array_foreach(v, i, e)
			{
				if (r < 0)
					break;
				if (!json_is_string(e) ||
				    switch_forward_parse(json_string_value(e),
				                         &d->forwards[d->nr_forwards++]) < 0)
					r = mgr_err_set(
					    err, -EINVAL,
					    "%s: field 'forwards': entry %zu is not "
					    "tcp|udp:[HOSTADDR:]HOSTPORT:GUESTIP:GUESTPORT",
					    file, i);
			}
		} else {
			r = mgr_err_set(err, -EINVAL, "%s: unknown field '%.32s'", file, key);
		}
		if (r < 0)
			break;
	}
	json_decref(o);
	if (r == 0 && (!d->name[0] || !have_type))
		r = mgr_err_set(err, -EINVAL, "%s: field '%s' is missing", file,
		                d->name[0] ? "type" : "name");
	if (r == 0) {
		struct mgr_err e2;

		r = switch_def_validate(d, &e2);
		if (r < 0)
			mgr_err_set(err, r, "%s: %s", file, e2.msg);
	}
	return r;
}
