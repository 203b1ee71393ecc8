/* SPDX-License-Identifier: MIT */
/*
 * fake_switch DIR STATS: a stand-in for a nestvm switch, for tests/integration/net.sh.
 * It listens on DIR/ports.sock (SOCK_SEQPACKET, mode 0600) as the adapter
 * link of src/net/netport.h expects, answers each adapter's hello with
 * {"ok": true, "port": N} (at most two ports at a time), and forwards every
 * message from one port to the other unchanged. Nothing is learnt or
 * guarded: it is the wire, so that the test sees what the adapters send.
 *
 * It counts, per port (cumulative over reconnections): the frames and
 * bytes received, those with NETPORT_F_NEEDS_CSUM, those whose source MAC
 * is not the one the hello gave ("spoofed"), malformed messages, and frames
 * dropped because no other port was connected. The counts go to STATS,
 * rewritten at every connection, disconnection and at exit (SIGTERM,
 * SIGINT), as lines
 *   port N vm NAME mac MAC connections C frames F bytes B partial P spoofed S bad X dropped D up U
 * (U: 1 while the port is connected).
 *
 * Never blocks on one port: a message for a port whose socket is full waits
 * (one per direction) and its source is not read meanwhile, so back-pressure
 * travels from the receiver to the sender as it would through a switch.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define HDR 8
#define FRAME_MIN 14
#define MSG_MAX (HDR + 65535 + 14 + 4)
#define PORTS 2

struct port {
	int fd;
	char vm[64];
	char mac[18];
	uint8_t mac_bytes[6];
	unsigned long connections, frames, bytes, partial, spoofed, bad, dropped;
	uint8_t *pending; /* a message for this port */
	size_t pending_len;
};

static struct port ports[PORTS];
static volatile sig_atomic_t stop;
static const char *stats_path;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void write_stats(void)
{
	char tmp[4096];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", stats_path);
	f = fopen(tmp, "w");
	if (!f)
		return;
	for (int i = 0; i < PORTS; i++) {
		struct port *p = &ports[i];

		fprintf(f,
		        "port %d vm %s mac %s connections %lu frames %lu bytes %lu partial %lu "
		        "spoofed %lu bad %lu dropped %lu up %d\n",
		        i, p->vm[0] ? p->vm : "-", p->mac[0] ? p->mac : "-", p->connections,
		        p->frames, p->bytes, p->partial, p->spoofed, p->bad, p->dropped,
		        p->fd >= 0);
	}
	fclose(f);
	rename(tmp, stats_path);
}

/* The string value of "key" in a flat JSON object, good enough for the hello. */
static void json_str(const char *msg, const char *key, char *out, size_t len)
{
	char pat[64];
	const char *p, *e;

	out[0] = '\0';
	snprintf(pat, sizeof(pat), "\"%s\"", key);
	p = strstr(msg, pat);
	if (!p || !(p = strchr(p + strlen(pat), '"')))
		return;
	e = strchr(++p, '"');
	if (!e || (size_t)(e - p) >= len)
		return;
	memcpy(out, p, (size_t)(e - p));
	out[e - p] = '\0';
}

static void port_close(struct port *p)
{
	close(p->fd);
	p->fd = -1;
	p->pending_len = 0;
	write_stats();
}

static void accept_port(int lfd)
{
	char hello[1025], answer[64];
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC), slot = -1;
	unsigned int m[6];
	ssize_t n;

	if (fd < 0)
		return;
	n = recv(fd, hello, sizeof(hello) - 1, 0);
	for (int i = 0; i < PORTS && slot < 0; i++)
		if (ports[i].fd < 0)
			slot = i;
	if (n <= 0 || slot < 0 || hello[0] != '{' || !strstr(hello, "\"netport\"")) {
		static const char full[] = "{\"error\": \"no free port\"}";

		if (n > 0 && send(fd, full, sizeof(full) - 1, MSG_NOSIGNAL) < 0)
			perror("fake_switch: send");
		close(fd);
		return;
	}
	hello[n] = '\0';
	struct port *p = &ports[slot];

	json_str(hello, "vm", p->vm, sizeof(p->vm));
	json_str(hello, "mac", p->mac, sizeof(p->mac));
	if (sscanf(p->mac, "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) == 6)
		for (int i = 0; i < 6; i++)
			p->mac_bytes[i] = (uint8_t)m[i];
	n = snprintf(answer, sizeof(answer), "{\"ok\": true, \"port\": %d}", slot);
	if (send(fd, answer, (size_t)n, MSG_NOSIGNAL) != n) {
		close(fd);
		return;
	}
	p->fd = fd;
	p->connections++;
	write_stats();
	fprintf(stderr, "fake_switch: port %d: vm %s mac %s\n", slot, p->vm, p->mac);
}

/* Try to hand @p its pending message. */
static void flush(struct port *p)
{
	ssize_t n;

	if (!p->pending_len || p->fd < 0)
		return;
	n = send(p->fd, p->pending, p->pending_len, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (n >= 0 || (errno != EAGAIN && errno != ENOBUFS))
		p->pending_len = 0; /* sent, or the port is gone (its hangup is seen next) */
}

static void read_port(int i)
{
	struct port *p = &ports[i], *o = &ports[1 - i];
	ssize_t n = recv(p->fd, o->pending, MSG_MAX, MSG_DONTWAIT | MSG_TRUNC);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		port_close(p);
		return;
	}
	if (n > MSG_MAX || n < HDR + FRAME_MIN) {
		p->bad++;
		return;
	}
	p->frames++;
	p->bytes += (unsigned long)(n - HDR);
	if (o->pending[0] & 1)
		p->partial++;
	if (memcmp(o->pending + HDR + 6, p->mac_bytes, 6))
		p->spoofed++;
	if (o->fd < 0) {
		p->dropped++;
		return;
	}
	o->pending_len = (size_t)n;
	flush(o);
}

int main(int argc, char **argv)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct sigaction sig = {.sa_handler = on_signal};
	int lfd;

	if (argc != 3) {
		fprintf(stderr, "usage: fake_switch DIR STATS\n");
		return 2;
	}
	stats_path = argv[2];
	if (snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/ports.sock", argv[1]) >=
	    (int)sizeof(sa.sun_path)) {
		fprintf(stderr, "fake_switch: path too long\n");
		return 1;
	}
	sigaction(SIGTERM, &sig, NULL);
	sigaction(SIGINT, &sig, NULL);
	for (int i = 0; i < PORTS; i++) {
		ports[i].fd = -1;
		ports[i].pending = malloc(MSG_MAX);
		if (!ports[i].pending)
			return 1;
	}
	unlink(sa.sun_path);
	lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	umask(077);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 8) < 0) {
		perror("fake_switch: listen");
		return 1;
	}
	write_stats();
	while (!stop) {
		struct pollfd pfd[PORTS + 1] = {{.fd = lfd, .events = POLLIN}};

		for (int i = 0; i < PORTS; i++) {
			/* Read a port only while its message has somewhere to wait. */
			pfd[i + 1].events = (ports[1 - i].pending_len ? 0 : POLLIN) |
			                    (ports[i].pending_len ? POLLOUT : 0);
			/*
			 * Not watched at all meanwhile: a sender that has gone
			 * (POLLHUP, reported whatever the events) may still have
			 * frames queued here, read once there is room for them.
			 */
			pfd[i + 1].fd = pfd[i + 1].events ? ports[i].fd : -1;
		}
		if (poll(pfd, PORTS + 1, 200) < 0) {
			if (errno == EINTR)
				continue;
			perror("fake_switch: poll");
			break;
		}
		if (pfd[0].revents & POLLIN)
			accept_port(lfd);
		for (int i = 0; i < PORTS; i++) {
			short r = pfd[i + 1].revents;

			if (ports[i].fd < 0 || pfd[i + 1].fd != ports[i].fd)
				continue;
			if (r & POLLOUT)
				flush(&ports[i]);
			/* A port that hung up is read to its end (EOF) before it is closed. */
			if (ports[i].fd >= 0 && (r & (POLLIN | POLLHUP | POLLERR)) &&
			    !ports[1 - i].pending_len)
				read_port(i);
		}
	}
	write_stats();
	unlink(sa.sun_path);
	return 0;
}
