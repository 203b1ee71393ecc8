// SPDX-License-Identifier: MIT
/*
 * The host's end of bench/net.sh's "VM to host" figures: counts the UDP
 * datagrams that arrive on 127.0.0.1:PORT (where libslirp, of nestvm's NAT
 * switch or of QEMU's -netdev user, delivers what a guest sends to the
 * gateway 10.0.2.2) and times them from the first to the last.
 *
 *   udp_sink PORT [IDLE_MS [MAX_SECONDS]]
 *
 * Prints "sink: listening on 127.0.0.1:PORT" once bound, and, when no
 * datagram came for IDLE_MS (500) after the first one or MAX_SECONDS (60)
 * have passed,
 *
 *   sink: packets=N bytes=N us=N pps=N mbps=N
 *
 * where the rates count the N - 1 intervals between the first and the last
 * datagram, and bytes are UDP payload bytes. Exit 1 if nothing came.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define DGRAM_MAX 65536

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

int main(int argc, char **argv)
{
	static char bufs[BATCH][DGRAM_MAX];
	struct mmsghdr msgs[BATCH];
	struct iovec iov[BATCH];
	struct sockaddr_in sa = {.sin_family = AF_INET};
	uint64_t packets = 0, bytes = 0, first = 0, last = 0, deadline;
	int idle_ms, fd, rcvbuf = 8 << 20;

	if (argc < 2 || argc > 4) {
		fprintf(stderr, "usage: udp_sink PORT [IDLE_MS [MAX_SECONDS]]\n");
		return 2;
	}
	idle_ms = argc > 2 ? atoi(argv[2]) : 500;
	deadline = now_us() + (uint64_t)(argc > 3 ? atoi(argv[3]) : 60) * 1000000;
	sa.sin_port = htons((uint16_t)atoi(argv[1]));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "udp_sink: cannot bind 127.0.0.1:%s: %s\n", argv[1], strerror(errno));
		return 2;
	}
	/* Up to net.core.rmem_max: a burst the sink is late for should not be what is measured. */
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	for (int i = 0; i < BATCH; i++) {
		iov[i] = (struct iovec){bufs[i], DGRAM_MAX};
		msgs[i] = (struct mmsghdr){.msg_hdr = {.msg_iov = &iov[i], .msg_iovlen = 1}};
	}
	printf("sink: listening on 127.0.0.1:%s\n", argv[1]);
	fflush(stdout);
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		uint64_t t = now_us();
		int n;

		if (t >= deadline || (packets && t - last >= (uint64_t)idle_ms * 1000))
			break;
		if (poll(&p, 1, 50) < 0 && errno != EINTR)
			break;
		while ((n = recvmmsg(fd, msgs, BATCH, 0, NULL)) > 0) {
			last = now_us();
			if (!packets)
				first = last;
			packets += (uint64_t)n;
			for (int i = 0; i < n; i++)
				bytes += msgs[i].msg_len;
		}
	}
	close(fd);
	if (!packets) {
		printf("sink: nothing came\n");
		return 1;
	}
	printf("sink: packets=%llu bytes=%llu us=%llu pps=%llu mbps=%llu\n",
	       (unsigned long long)packets, (unsigned long long)bytes,
	       (unsigned long long)(last - first),
	       (unsigned long long)(last > first ? (packets - 1) * 1000000 / (last - first) : 0),
	       (unsigned long long)(last > first ? bytes * 8 / (last - first) : 0));
	return 0;
}
