/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the framing of a netport batch message (net/netport.c,
 * netport_batch_next(), netport.h step 4), as the switch and the virtio-net
 * adapter take it from a peer. Whatever the message, the parser must
 * neither crash nor read out of bounds (the message is copied into a
 * buffer of its exact size), and:
 *
 *   - every record lies within the message, after its 4-byte length, at a
 *     4-byte aligned offset, of 1 to NETPORT_MSG_MAX bytes;
 *   - the records are taken in order, each where the one before ends
 *     (padding included), at most the receiver's count of them;
 *   - a message that parses to its end is exactly its records re-encoded
 *     (the last one's padding may be left off);
 *   - each record fed to the switch's core (as server.c does) is counted
 *     exactly once on its port, and a broken framing once more.
 *
 * The first byte is the receiver's count (1 to NETPORT_BATCH_MAX); the rest
 * is the message. Seeds: tests/fuzz/seeds/fuzz_netport_batch/.
 */
#include "fuzz_common.h"
#include "net/netport.h"
#include "switch/swcore.h"

#include <endian.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t mac_a[6] = {0x02, 0x4e, 0x56, 0, 0, 1};

static int drop_send(struct sw_port *p, const struct netport_hdr *hdr, const uint8_t *frame,
                     size_t len)
{
	(void)p;
	(void)hdr;
	FZ_CHECK(len >= NETPORT_FRAME_MIN && len <= NETPORT_FRAME_MAX);
	(void)frame;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct sw_core sw;
	struct netport_hello h = {.dhcp_guard = true, .router_guard = true};
	const uint8_t *rec;
	unsigned int max, count = 0;
	size_t len, off = 0, rec_len, end = 0;
	uint8_t *msg;
	int r;

	if (size < 1 || size - 1 > NETPORT_BATCH_MSG_MAX)
		return 0;
	max = 1 + data[0] % NETPORT_BATCH_MAX;
	len = size - 1;
	msg = malloc(len ? len : 1);
	FZ_CHECK(msg != NULL);
	memcpy(msg, data + 1, len);
	FZ_CHECK(sw_core_init(&sw, 64, FDB_AGEING_MS) == 0);
	memcpy(h.mac, mac_a, 6);
	FZ_CHECK(sw_port_add(&sw, 1, &h, drop_send, NULL) == 1);
	while ((r = netport_batch_next(msg, len, &off, &count, max, &rec, &rec_len)) > 0) {
		size_t at = (size_t)(rec - msg);
		uint32_t l;
		uint64_t before = sw_counters_seen(&sw.ports[1].c);

		FZ_CHECK(at == end + NETPORT_REC_HDR && at % 4 == 0);
		FZ_CHECK(rec_len >= 1 && rec_len <= NETPORT_MSG_MAX && at + rec_len <= len);
		memcpy(&l, msg + end, 4);
		FZ_CHECK(le32toh(l) == rec_len);
		FZ_CHECK(count <= max);
		/* Past the padding, which only the last record may leave off. */
		FZ_CHECK(off == end + netport_rec_size(rec_len) ||
		         (off == len && end + netport_rec_size(rec_len) > len));
		end = off;
		/* The switch's core: one count per record, whatever is in it (server.c). */
		sw_input_msg(&sw, 1, (uint8_t *)rec, rec_len, (int64_t)count * 1000);
		FZ_CHECK(sw_counters_seen(&sw.ports[1].c) == before + 1);
	}
	FZ_CHECK(r == 0 || r == -EINVAL);
	if (r == 0)
		FZ_CHECK(end == len && count >= 1);
	if (r < 0) {
		uint64_t before = sw_counters_seen(&sw.ports[1].c);

		sw_count_malformed(&sw, 1);
		FZ_CHECK(sw_counters_seen(&sw.ports[1].c) == before + 1);
	}
	sw_core_destroy(&sw);
	free(msg);
	return 0;
}
