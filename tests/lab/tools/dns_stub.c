// SPDX-License-Identifier: MIT
/*
 * dns_stub ADDR NAME IPV4 - the lab's name server (busybox has none): answers
 * UDP queries on ADDR port 53 for one name, with one A record; AAAA and
 * other types for that name get an empty answer, other names NXDOMAIN. A NAT
 * switch's libslirp forwards its guests' queries to 10.0.2.3 to the lab's
 * /etc/resolv.conf, which names this server (tests/lab/scenarios/net.sh).
 * Runs until killed; a malformed query gets no answer.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#define DNS_HDR 12
#define TYPE_A 1
#define CLASS_IN 1

/* The query's name as "a.b.c" into @out; the offset after it, or 0 if malformed. */
static size_t qname(const uint8_t *q, size_t len, char *out, size_t cap)
{
	size_t at = DNS_HDR, o = 0;

	while (at < len && q[at]) {
		size_t l = q[at++];

		if (l > 63 || at + l > len || o + l + 2 > cap)
			return 0;
		if (o)
			out[o++] = '.';
		memcpy(out + o, q + at, l);
		o += l;
		at += l;
	}
	if (at >= len)
		return 0;
	out[o] = '\0';
	return at + 1;
}

int main(int argc, char **argv)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(53)};
	struct in_addr ip;
	int fd;

	if (argc != 4 || inet_pton(AF_INET, argv[1], &sa.sin_addr) != 1 ||
	    inet_pton(AF_INET, argv[3], &ip) != 1) {
		fprintf(stderr, "usage: dns_stub ADDR NAME IPV4\n");
		return 2;
	}
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		perror("dns_stub");
		return 1;
	}
	for (;;) {
		uint8_t q[512], r[512 + 16];
		char name[256];
		struct sockaddr_in from;
		socklen_t fl = sizeof(from);
		ssize_t n = recvfrom(fd, q, sizeof(q), 0, (struct sockaddr *)&from, &fl);
		size_t end, rl;
		uint16_t type;
		bool ours;

		if (n < DNS_HDR || (q[2] & 0x80) || q[4] != 0 || q[5] != 1)
			continue; /* not a query with one question */
		end = qname(q, (size_t)n, name, sizeof(name));
		if (!end || end + 4 > (size_t)n)
			continue;
		type = (uint16_t)(q[end] << 8 | q[end + 1]);
		ours = !strcasecmp(name, argv[2]);
		rl = end + 4;
		memcpy(r, q, rl);
		r[2] = 0x80 | (q[2] & 0x01); /* QR, RD as asked */
		r[3] = 0x80 | (ours ? 0 : 3); /* RA; NXDOMAIN for another name */
		memset(r + 6, 0, 6);           /* no answers yet, no others */
		if (ours && type == TYPE_A) {
			static const uint8_t rr[] = {0xc0, DNS_HDR, 0, TYPE_A, 0, CLASS_IN,
			                             0, 0, 0, 60, 0, 4};

			memcpy(r + rl, rr, sizeof(rr));
			memcpy(r + rl + sizeof(rr), &ip, 4);
			rl += sizeof(rr) + 4;
			r[7] = 1;
		}
		sendto(fd, r, rl, 0, (struct sockaddr *)&from, fl);
	}
}
