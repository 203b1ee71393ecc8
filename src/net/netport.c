// SPDX-License-Identifier: MIT
/* The adapter-to-switch link: hello messages, MACs, checksums (netport.h). */
#include "net/netport.h"

#include <endian.h>
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int hello_fail(char *why, size_t why_size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, why_size, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

int netport_mac_parse(const char *s, uint8_t mac[6])
{
	unsigned int b[6];
	char end;

	if (strlen(s) != 17 ||
	    sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5],
	           &end) != 6)
		return -EINVAL;
	for (int i = 0; i < 6; i++) {
		if (s[i * 3 + 2] != ':' && i < 5)
			return -EINVAL;
		mac[i] = (uint8_t)b[i];
	}
	return 0;
}

void netport_mac_format(const uint8_t mac[6], char buf[18])
{
	snprintf(buf, 18, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4],
	         mac[5]);
}

void netport_mac_derive(const char *vm, unsigned int adapter, uint8_t mac[6])
{
	uint32_t h = 2166136261u; /* FNV-1a */

	for (const char *p = vm; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	h = (h ^ (adapter & 0xff)) * 16777619u;
	mac[0] = 0x02; /* locally administered, unicast */
	mac[1] = 0x4e;
	mac[2] = 0x56;
	mac[3] = (uint8_t)(h >> 16);
	mac[4] = (uint8_t)(h >> 8);
	mac[5] = (uint8_t)h;
}

int netport_hello_format(const struct netport_hello *h, char *buf, size_t size)
{
	char mac[18];
	json_t *o;
	size_t n;

	netport_mac_format(h->mac, mac);
	o = json_pack("{s:i, s:s, s:i, s:s, s:b, s:b, s:b}", "netport", NETPORT_VERSION, "vm",
	              h->vm, "adapter", (int)h->adapter, "mac", mac, "mac_spoofing",
	              h->mac_spoofing, "dhcp_guard", h->dhcp_guard, "router_guard",
	              h->router_guard);
	if (!o)
		return -ENOMEM;
	/* Only when asked: an old switch refuses the field (netport.h, step 4). */
	if (h->batch && json_object_set_new(o, "batch", json_integer(h->batch)) < 0) {
		json_decref(o);
		return -ENOMEM;
	}
	n = json_dumpb(o, buf, size, JSON_COMPACT);
	json_decref(o);
	if (n == 0 || n > size || n > NETPORT_HELLO_MAX)
		return -ENOSPC;
	return (int)n;
}

int netport_hello_parse(const void *msg, size_t len, struct netport_hello *h, char *why,
                        size_t why_size)
{
	json_error_t jerr;
	const char *key;
	json_t *o, *v;
	int r = 0;
	bool have_version = false, have_vm = false, have_adapter = false, have_mac = false;

	memset(h, 0, sizeof(*h));
	h->dhcp_guard = true;
	h->router_guard = true;
	if (len > NETPORT_HELLO_MAX)
		return hello_fail(why, why_size, "hello of %zu bytes (at most %d)", len,
		                  NETPORT_HELLO_MAX);
	o = json_loadb(msg, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!o)
		return hello_fail(why, why_size, "hello is not JSON: %s", jerr.text);
	if (!json_is_object(o)) {
		json_decref(o);
		return hello_fail(why, why_size, "hello is not a JSON object");
	}
	json_object_foreach(o, key, v)
	{
		if (!strcmp(key, "netport")) {
			if (!json_is_integer(v) || json_integer_value(v) != NETPORT_VERSION)
				r = hello_fail(why, why_size, "unsupported netport version");
			have_version = true;
		} else if (!strcmp(key, "vm")) {
			const char *s = json_string_value(v);
			if (!s || !*s || strlen(s) >= sizeof(h->vm))
				r = hello_fail(why, why_size, "'vm' must be a name of 1 to %zu bytes",
				               sizeof(h->vm) - 1);
			else
				strcpy(h->vm, s);
			for (const char *p = s; r == 0 && p && *p; p++)
				if ((unsigned char)*p < 0x20 || *p == 0x7f)
					r = hello_fail(why, why_size, "'vm' has a control character");
			have_vm = true;
		} else if (!strcmp(key, "adapter")) {
			if (!json_is_integer(v) || json_integer_value(v) < 0 ||
			    json_integer_value(v) > 255)
				r = hello_fail(why, why_size, "'adapter' must be 0 to 255");
			else
				h->adapter = (unsigned int)json_integer_value(v);
			have_adapter = true;
		} else if (!strcmp(key, "mac")) {
			const char *s = json_string_value(v);
			if (!s || netport_mac_parse(s, h->mac) < 0 || (h->mac[0] & 1))
				r = hello_fail(why, why_size, "'mac' must be a unicast MAC address");
			have_mac = true;
		} else if (!strcmp(key, "mac_spoofing") || !strcmp(key, "dhcp_guard") ||
		           !strcmp(key, "router_guard")) {
			bool *b = key[0] == 'm' ? &h->mac_spoofing :
			          key[0] == 'd' ? &h->dhcp_guard : &h->router_guard;
			if (!json_is_boolean(v))
				r = hello_fail(why, why_size, "'%s' must be true or false", key);
			else
				*b = json_is_true(v);
		} else if (!strcmp(key, "batch")) {
			if (!json_is_integer(v) || json_integer_value(v) < 1 ||
			    json_integer_value(v) > NETPORT_BATCH_MAX)
				r = hello_fail(why, why_size, "'batch' must be 1 to %d",
				               NETPORT_BATCH_MAX);
			else
				h->batch = (unsigned int)json_integer_value(v);
		} else {
			r = hello_fail(why, why_size, "unknown field '%.32s'", key);
		}
		if (r < 0)
			break;
	}
	json_decref(o);
	if (r == 0 && !(have_version && have_vm && have_adapter && have_mac))
		r = hello_fail(why, why_size, "hello lacks %s",
		               !have_version ? "'netport'" :
		               !have_vm      ? "'vm'" :
		               !have_adapter ? "'adapter'" : "'mac'");
	return r;
}

int netport_batch_next(const uint8_t *msg, size_t len, size_t *off, unsigned int *count,
                       unsigned int max, const uint8_t **rec, size_t *rec_len)
{
	uint32_t l;

	if (*off >= len)
		return *count ? 0 : -EINVAL; /* an empty batch is no batch */
	if (len - *off < NETPORT_REC_HDR || *count >= max)
		return -EINVAL;
	memcpy(&l, msg + *off, sizeof(l));
	l = le32toh(l);
	if (l == 0 || l > NETPORT_MSG_MAX || l > len - *off - NETPORT_REC_HDR)
		return -EINVAL;
	*rec = msg + *off + NETPORT_REC_HDR;
	*rec_len = l;
	/* The padding, which the last record may leave off. */
	*off += netport_rec_size(l) < len - *off ? netport_rec_size(l) : len - *off;
	(*count)++;
	return 1;
}

uint32_t netport_csum_add(uint32_t sum, const void *data, size_t len)
{
	const uint8_t *p = data;
	uint64_t s = sum;

	for (; len >= 2; p += 2, len -= 2)
		s += (uint32_t)p[0] << 8 | p[1];
	if (len)
		s += (uint32_t)p[0] << 8;
	while (s >> 32)
		s = (s & 0xffffffffu) + (s >> 32);
	return (uint32_t)s;
}

uint16_t netport_csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

int netport_csum_complete(uint8_t *frame, size_t len, uint16_t start, uint16_t offset)
{
	uint16_t c;

	if ((size_t)start + offset + 2 > len)
		return -EINVAL;
	c = (uint16_t)~netport_csum_fold(netport_csum_add(0, frame + start, len - start));
	if (c == 0)
		c = 0xffff; /* UDP: 0 means "no checksum" (RFC 768) */
	frame[start + offset] = (uint8_t)(c >> 8);
	frame[start + offset + 1] = (uint8_t)c;
	return 0;
}
