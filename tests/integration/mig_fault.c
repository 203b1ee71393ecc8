/* SPDX-License-Identifier: MIT */
/*
 * mig_fault: faults for tests/integration/migrate.sh, on loopback TCP.
 *
 *   mig_fault relay LPORT TPORT RULE   accept one connection on 127.0.0.1:LPORT,
 *                                      connect to 127.0.0.1:TPORT, and pass bytes
 *                                      both ways until RULE fires
 *   mig_fault garbage PORT N           connect and send N pseudo-random bytes
 *   mig_fault hello PORT               send a well-formed HELLO0, then garbage
 *
 * The relay reads the stream's frame headers (docs/migration.md: they are in
 * the clear, only authenticated) to cut at a given moment. RULE:
 *   none           pass everything
 *   bytes:N        cut after N bytes from the source
 *   frame:T:K      cut just before the K-th frame of type T from the source
 *                  (T: a number or PAGES, PASS, STATE, GO...)
 *   dframe:T:K     the same for frames from the destination (READY, RUNNING)
 *   flip:N         flip one bit of the source's byte N and go on
 *   stall:N        after N bytes from the source, take nothing more from it
 *                  (its sends block), until it hangs up
 *   rate:N         pass everything, the source's bytes at N bytes/s at most
 * It prints what it did on stderr ("cut before frame GO #1 at byte 123").
 */
#define _GNU_SOURCE /* POLLRDHUP */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HELLO0 48 /* source's greeting, then its 32-byte proof */
#define HELLO1 80 /* destination's greeting */
#define PROOF 32
#define HDR 8
#define TAG 16 /* AES-256-GCM (protocol version 2) */
#define VERSION 2

static const char *const names[] = {"",      "HELLO",     "ACCEPT", "PAGES", "PASS",
                                    "STATE", "STATE_END", "READY",  "GO",    "RUNNING",
                                    "ERROR", "PASS_ACK"};

/* One direction of the stream, parsed as it goes. */
struct dir {
	uint64_t total;	   /* bytes passed */
	uint64_t skip;	   /* bytes left of the greeting, or of the current frame */
	uint8_t hdr[HDR];
	unsigned int hdr_len;
	unsigned int count[16]; /* frames seen per type */
};

struct rule {
	enum { R_NONE, R_BYTES, R_FRAME, R_DFRAME, R_FLIP, R_STALL, R_RATE } kind;
	uint64_t n;
	unsigned int type, k;
};

static unsigned int type_of(const char *s)
{
	for (unsigned int i = 1; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(s, names[i]))
			return i;
	return (unsigned int)atoi(s);
}

static int listen_on(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 1) < 0) {
		perror("mig_fault: listen");
		exit(1);
	}
	return fd;
}

static int connect_to(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		perror("mig_fault: connect");
		exit(1);
	}
	return fd;
}

/*
 * How many of @n bytes at @p may pass before the rule fires (n if none);
 * *@fire says it fired. Frame boundaries are tracked as bytes go by.
 */
static size_t scan(struct dir *d, const uint8_t *p, size_t n, const struct rule *r,
                   bool from_source, bool *fire)
{
	size_t i = 0;

	*fire = false;
	if (from_source && r->kind == R_BYTES && d->total + n > r->n) {
		*fire = true;
		return r->n > d->total ? (size_t)(r->n - d->total) : 0;
	}
	while (i < n) {
		if (d->skip) {
			uint64_t take = d->skip < n - i ? d->skip : n - i;

			d->skip -= take;
			i += (size_t)take;
			continue;
		}
		d->hdr[d->hdr_len++] = p[i];
		if (d->hdr_len == HDR) {
			unsigned int t = d->hdr[0] | d->hdr[1] << 8;
			uint32_t len = (uint32_t)d->hdr[4] | (uint32_t)d->hdr[5] << 8 |
			               (uint32_t)d->hdr[6] << 16 | (uint32_t)d->hdr[7] << 24;

			d->hdr_len = 0;
			d->skip = (uint64_t)len + TAG;
			if (t < 16)
				d->count[t]++;
			if (((r->kind == R_FRAME && from_source) || (r->kind == R_DFRAME && !from_source)) &&
			    t == r->type && d->count[t] == r->k) {
				*fire = true;
				/* Cut before this frame: its header's first byte is where it began. */
				return i + 1 >= HDR ? i + 1 - HDR : 0;
			}
		}
		i++;
	}
	return n;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Hold back until @total bytes are due at @rate bytes/s since the first call. */
static void pace(uint64_t total, uint64_t rate)
{
	static double start;
	double due;

	if (!start)
		start = now_s();
	due = start + (double)total / (double)rate - now_s();
	if (due > 0)
		usleep((useconds_t)(due * 1e6));
}

static int relay(int lport, int tport, const struct rule *r)
{
	int l = listen_on(lport), s, d;
	struct dir ds = {.skip = HELLO0 + PROOF}, dd = {.skip = HELLO1};

	s = accept(l, NULL, NULL);
	if (s < 0) {
		perror("mig_fault: accept");
		return 1;
	}
	d = connect_to(tport);
	for (;;) {
		bool stalled = r->kind == R_STALL && ds.total >= r->n;
		static bool said;

		if (stalled && !said) {
			fprintf(stderr, "mig_fault: stalling at %llu bytes\n",
			        (unsigned long long)ds.total);
			said = true;
		}
		struct pollfd pf[2] = {{.fd = s, .events = stalled ? POLLRDHUP : POLLIN},
		                       {.fd = d, .events = POLLIN}};
		uint8_t buf[65536];

		if (poll(pf, 2, -1) < 0 && errno != EINTR)
			break;
		for (int k = 0; k < 2; k++) {
			bool from_source = k == 0, fire;
			int in = from_source ? s : d, out = from_source ? d : s;
			struct dir *st = from_source ? &ds : &dd;
			ssize_t n;
			size_t pass;

			if (!(pf[k].revents & (POLLIN | POLLHUP | POLLERR | POLLRDHUP)))
				continue;
			if (from_source && stalled) {
				fprintf(stderr, "mig_fault: the source hung up, stalled at %llu bytes\n",
				        (unsigned long long)ds.total);
				return 0;
			}
			n = read(in, buf, from_source && r->kind == R_STALL && r->n - st->total < sizeof(buf)
			                      ? (size_t)(r->n - st->total)
			                      : sizeof(buf));
			if (n <= 0) {
				fprintf(stderr, "mig_fault: the %s closed after %llu bytes\n",
				        from_source ? "source" : "destination",
				        (unsigned long long)st->total);
				return 0;
			}
			if (from_source && r->kind == R_FLIP && st->total <= r->n &&
			    r->n < st->total + (uint64_t)n) {
				buf[r->n - st->total] ^= 0x10;
				fprintf(stderr, "mig_fault: flipped a bit of byte %llu\n",
				        (unsigned long long)r->n);
			}
			pass = scan(st, buf, (size_t)n, r, from_source, &fire);
			if (pass && write(out, buf, pass) != (ssize_t)pass)
				return 0;
			st->total += pass;
			if (from_source && r->kind == R_RATE)
				pace(st->total, r->n);
			if (fire) {
				if (r->kind == R_BYTES)
					fprintf(stderr, "mig_fault: cut after %llu bytes\n",
					        (unsigned long long)st->total);
				else
					fprintf(stderr, "mig_fault: cut before %s #%u from the %s at byte %llu\n",
					        r->type < sizeof(names) / sizeof(names[0]) ? names[r->type] : "?", r->k,
					        from_source ? "source" : "destination",
					        (unsigned long long)st->total);
				shutdown(s, SHUT_RDWR);
				shutdown(d, SHUT_RDWR);
				close(s);
				close(d);
				return 0;
			}
		}
	}
	return 0;
}

static int garbage(int port, long n, bool hello)
{
	int fd = connect_to(port);
	uint8_t buf[4096];
	uint32_t x = 0x12345678;

	if (hello) {
		uint8_t h[HELLO0] = "NESTVMMG";

		h[8] = VERSION;
		if (write(fd, h, sizeof(h)) != sizeof(h))
			return 1;
		/* The destination's greeting, then a proof that is not one. */
		if (read(fd, buf, HELLO1) <= 0)
			return 0;
	}
	while (n > 0) {
		size_t k = n < (long)sizeof(buf) ? (size_t)n : sizeof(buf);

		for (size_t i = 0; i < k; i++) {
			x ^= x << 13;
			x ^= x >> 17;
			x ^= x << 5;
			buf[i] = (uint8_t)x;
		}
		if (write(fd, buf, k) != (ssize_t)k)
			break;
		n -= (long)k;
	}
	/* Wait for the other end to hang up on us. */
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	struct rule r = {R_NONE, 0, 0, 0};

	if (argc == 5 && !strcmp(argv[1], "relay")) {
		const char *spec = argv[4];

		if (!strncmp(spec, "bytes:", 6)) {
			r.kind = R_BYTES;
			r.n = strtoull(spec + 6, NULL, 0);
		} else if (!strncmp(spec, "rate:", 5)) {
			r.kind = R_RATE;
			r.n = strtoull(spec + 5, NULL, 0);
		} else if (!strncmp(spec, "stall:", 6)) {
			r.kind = R_STALL;
			r.n = strtoull(spec + 6, NULL, 0);
		} else if (!strncmp(spec, "flip:", 5)) {
			r.kind = R_FLIP;
			r.n = strtoull(spec + 5, NULL, 0);
		} else if (!strncmp(spec, "frame:", 6) || !strncmp(spec, "dframe:", 7)) {
			char t[32];
			const char *p = strchr(spec, ':') + 1, *c = strchr(p, ':');

			r.kind = spec[0] == 'd' ? R_DFRAME : R_FRAME;
			if (!c || (size_t)(c - p) >= sizeof(t))
				return 2;
			memcpy(t, p, (size_t)(c - p));
			t[c - p] = 0;
			r.type = type_of(t);
			r.k = (unsigned int)atoi(c + 1);
		} else if (strcmp(spec, "none")) {
			return 2;
		}
		return relay(atoi(argv[2]), atoi(argv[3]), &r);
	}
	if (argc == 4 && !strcmp(argv[1], "garbage"))
		return garbage(atoi(argv[2]), atol(argv[3]), false);
	if (argc == 3 && !strcmp(argv[1], "hello"))
		return garbage(atoi(argv[2]), 1 << 20, true);
	fprintf(stderr, "usage: mig_fault relay LPORT TPORT RULE | garbage PORT N | hello PORT\n");
	return 2;
}
