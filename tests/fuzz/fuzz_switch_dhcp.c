/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the switch's DHCP server (switch/dhcp.c) and the
 * files a switch reads (leases.json, switch.json) and the adapters' hello
 * (net/netport.c). Leases files and definitions may be edited by hand; a
 * hello comes from a monitor. Whatever the bytes:
 *
 *   - dhcp_server_handle() on a frame holding them as a DHCP request answers
 *     with a reply of at most DHCP_REPLY_MAX bytes, or nothing, and an
 *     address it offers is in the pool and the client's lease;
 *   - dhcp_leases_parse() loads only leases in the pool, one per MAC and
 *     per address, and its leases survive dhcp_leases_format() and back;
 *   - switch_def_parse() accepts only what switch_def_validate() accepts,
 *     and that survives switch_def_format() and back;
 *   - netport_hello_parse() gives a hello with a unicast MAC and a name, or
 *     a reason;
 *   - switch_api_parse() gives a command or an error code, and the reply is
 *     one line of JSON with the request's id.
 *
 * The first byte picks the parser (4 in its low 3 bits: the control API). Seeds:
 * tests/fuzz/seeds/fuzz_switch_dhcp/.
 */
#include "fuzz_common.h"
#include "net/netport.h"
#include "switch/dhcp.h"
#include "switch/frame.h"
#include "switch/switch_api.h"
#include "switch/switch_def.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t server_mac[6] = {0x52, 0x55, 10, 0, 2, 2};

static void init(struct dhcp_server *s)
{
	FZ_CHECK(dhcp_server_init(s, 0x0a000200, 24, 0x0a000202, 0x0a000202, 0x0a000203, 0x0a00020f,
	                          0x0a0002fe, server_mac) == 0);
}

static void fuzz_request(const uint8_t *data, size_t size)
{
	static struct dhcp_server s;
	static uint8_t f[2048], reply[DHCP_REPLY_MAX];
	size_t n = size > sizeof(f) - 42 ? sizeof(f) - 42 : size;
	uint8_t mac[6] = {2, 0, 0, 0, 0, 1};
	int r;

	init(&s);
	/* A valid Ethernet/IPv4/UDP wrapper around the bytes, so that they reach the parser. */
	memset(f, 0, 42);
	memset(f, 0xff, 6);
	if (n >= 34)
		memcpy(mac, data + 28, 6); /* the frame's source is the chaddr: allowed to ask */
	mac[0] &= 0xfe;
	memcpy(f + 6, mac, 6);
	frame_put16(f + 12, ETH_TYPE_IPV4);
	f[14] = 0x45;
	frame_put16(f + 16, (uint16_t)(20 + 8 + n));
	f[23] = IP_PROTO_UDP;
	frame_put16(f + 34, UDP_PORT_BOOTPC);
	frame_put16(f + 36, UDP_PORT_BOOTPS);
	frame_put16(f + 38, (uint16_t)(8 + n));
	memcpy(f + 42, data, n);
	for (int round = 0; round < 2; round++) {
		r = dhcp_server_handle(&s, f, 42 + n, 1700000000 + round, reply);
		FZ_CHECK(r >= -22 && r <= DHCP_REPLY_MAX);
		if (r > 0) {
			uint32_t yi = frame_be32(reply + 42 + 16);
			const struct dhcp_lease *l = dhcp_lease_find(&s, reply);

			FZ_CHECK(!memcmp(reply + 6, server_mac, 6));
			FZ_CHECK(yi == 0 || (yi >= s.pool_start && yi <= s.pool_end));
			FZ_CHECK(yi == 0 || (l && l->ip == yi));
		}
	}
}

static void fuzz_leases(const uint8_t *data, size_t size)
{
	static struct dhcp_server s, t;
	char *text;
	int n;

	init(&s);
	n = dhcp_leases_parse(&s, (const char *)data, size);
	FZ_CHECK(n == -22 || (n >= 0 && (unsigned int)n == s.nr_leases));
	for (unsigned int i = 0; i < s.nr_leases; i++) {
		FZ_CHECK(s.leases[i].ip >= s.pool_start && s.leases[i].ip <= s.pool_end);
		FZ_CHECK(!(s.leases[i].mac[0] & 1));
		for (unsigned int j = 0; j < i; j++)
			FZ_CHECK(s.leases[j].ip != s.leases[i].ip &&
			         memcmp(s.leases[j].mac, s.leases[i].mac, 6));
	}
	text = dhcp_leases_format(&s);
	FZ_CHECK(text);
	init(&t);
	FZ_CHECK(dhcp_leases_parse(&t, text, strlen(text)) == (int)s.nr_leases);
	FZ_CHECK(!memcmp(s.leases, t.leases, s.nr_leases * sizeof(s.leases[0])));
	free(text);
}

static void fuzz_def(const uint8_t *data, size_t size)
{
	struct switch_def d, e;
	struct mgr_err err;
	char *text;

	if (switch_def_parse((const char *)data, size, "fuzz", &d, &err) < 0) {
		FZ_CHECK(err.msg[0]);
		return;
	}
	e = d;
	FZ_CHECK(switch_def_validate(&e, &err) == 0);
	FZ_CHECK(!memcmp(&d, &e, sizeof(d)));
	text = switch_def_format(&d);
	FZ_CHECK(text);
	FZ_CHECK(switch_def_parse(text, strlen(text), "fuzz", &e, &err) == 0);
	FZ_CHECK(!memcmp(&d, &e, sizeof(d)));
	free(text);
}

static void fuzz_hello(const uint8_t *data, size_t size)
{
	struct netport_hello h;
	char why[256] = "";

	if (netport_hello_parse(data, size, &h, why, sizeof(why)) < 0) {
		FZ_CHECK(why[0]);
		return;
	}
	FZ_CHECK(h.vm[0] && !(h.mac[0] & 1) && h.adapter <= 255);
}

static void fuzz_api(const uint8_t *data, size_t size)
{
	struct switch_api_req req;
	json_t *reply, *result = NULL;
	char *text;
	size_t n;

	switch_api_parse((const char *)data, size, &req);
	FZ_CHECK(req.code ? req.why != NULL : req.cmd <= SWITCH_API_STOP);
	if (!req.code)
		result = json_pack("{s:s}", "echo", "x");
	text = switch_api_reply(&req, result);
	FZ_CHECK(text);
	/* One line: JSON, then the newline, nothing after it. */
	n = strlen(text);
	FZ_CHECK(n >= 2 && text[n - 1] == '\n' && !memchr(text, '\n', n - 1));
	reply = json_loadb(text, n - 1, 0, NULL);
	FZ_CHECK(json_is_object(reply));
	FZ_CHECK(json_is_boolean(json_object_get(reply, "ok")));
	FZ_CHECK(!req.id || json_equal(json_object_get(reply, "id"), req.id));
	json_decref(reply);
	free(text);
	switch_api_req_clear(&req);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if ((data[0] & 7) == 4) {
		fuzz_api(data + 1, size - 1);
		return 0;
	}
	switch (data[0] & 3) {
	case 0:
		fuzz_request(data + 1, size - 1);
		break;
	case 1:
		fuzz_leases(data + 1, size - 1);
		break;
	case 2:
		fuzz_def(data + 1, size - 1);
		break;
	default:
		fuzz_hello(data + 1, size - 1);
		break;
	}
	return 0;
}
