/* SPDX-License-Identifier: MIT */
/*
 * nestvm-vsock: the two ends of a vsock round trip for tests, one static
 * binary for inside a Linux guest (AF_VSOCK) and for the host (nestvm's
 * UNIX-socket side of virtio-vsock, src/devices/virtio/vsock.h).
 *
 *   nestvm-vsock serve PORT               guest: accept one connection on
 *                                         vsock PORT and echo it until EOF
 *   nestvm-vsock send CID PORT BYTES      guest: connect to CID:PORT (2 is the
 *                                         host), send BYTES, read them back
 *   nestvm-vsock host-serve PATH          host: the same echo on UNIX socket
 *                                         PATH (a guest connecting to host
 *                                         port P reaches SOCKET_P)
 *   nestvm-vsock host-send SOCKET PORT BYTES
 *                                         host: "CONNECT PORT" through the
 *                                         VM's SOCKET, then as send
 *   nestvm-vsock host-chat SOCKET TEXT    host: connect to a UNIX socket (a
 *                                         virtio-console port's; retried for
 *                                         60 s until it exists), write TEXT,
 *                                         copy what comes back to stdout
 *                                         until EOF
 *
 * The sender writes a pattern and reads the echo at the same time (poll), so
 * any size works; it checks every byte and prints one line,
 * "vsock-ok bytes=N ms=T MBps=R", or "vsock-fail: why" (exit status 1).
 * Everything gives up after 120 s (SIGALRM).
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <linux/vm_sockets.h>

#define TIMEOUT_S 120

static int fail(const char *what)
{
	printf("vsock-fail: %s: %s\n", what, errno ? strerror(errno) : "unexpected data");
	fflush(stdout);
	return 1;
}

static uint8_t pattern(uint64_t i)
{
	return (uint8_t)(i * 131 + (i >> 11));
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Echo everything read on @fd back to it until EOF. */
static int echo(int fd)
{
	char buf[65536];

	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf)), off = 0;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return fail("read");
		if (n == 0)
			break;
		while (off < n) {
			ssize_t w = write(fd, buf + off, (size_t)(n - off));

			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				return fail("write");
			off += w;
		}
	}
	close(fd);
	printf("vsock-echo-done\n");
	return 0;
}

/* Send @bytes of the pattern on @fd while reading and checking the echo. */
static int round_trip(int fd, uint64_t bytes)
{
	uint64_t sent = 0, got = 0;
	uint8_t out[65536], in[65536];
	double t0 = now_ms(), ms;

	while (got < bytes) {
		struct pollfd p = {.fd = fd, .events = POLLIN | (sent < bytes ? POLLOUT : 0)};

		if (poll(&p, 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			return fail("poll");
		}
		if ((p.revents & POLLOUT) && sent < bytes) {
			size_t n = bytes - sent < sizeof(out) ? (size_t)(bytes - sent) : sizeof(out);
			ssize_t w;

			for (size_t i = 0; i < n; i++)
				out[i] = pattern(sent + i);
			w = write(fd, out, n);
			if (w < 0 && errno != EAGAIN && errno != EINTR)
				return fail("write");
			if (w > 0)
				sent += (uint64_t)w;
			if (sent == bytes)
				shutdown(fd, SHUT_WR);
		}
		if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n = read(fd, in, sizeof(in));

			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (n < 0)
				return fail("read");
			if (n == 0) {
				errno = 0;
				printf("vsock-fail: EOF after %llu of %llu bytes\n",
				       (unsigned long long)got, (unsigned long long)bytes);
				return 1;
			}
			for (ssize_t i = 0; i < n; i++) {
				if (in[i] != pattern(got + (uint64_t)i)) {
					errno = 0;
					printf("vsock-fail: byte %llu differs\n",
					       (unsigned long long)(got + (uint64_t)i));
					return 1;
				}
			}
			got += (uint64_t)n;
		}
	}
	ms = now_ms() - t0;
	printf("vsock-ok bytes=%llu ms=%.1f MBps=%.2f\n", (unsigned long long)bytes, ms,
	       ms > 0 ? bytes / 1e3 / ms : 0.0);
	close(fd);
	return 0;
}

static int unix_addr(const char *path, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa->sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(sa->sun_path, path);
	return 0;
}

static int cmd_serve(unsigned int port)
{
	struct sockaddr_vm sa = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = port};
	int lfd = socket(AF_VSOCK, SOCK_STREAM, 0), fd;

	if (lfd < 0)
		return fail("socket(AF_VSOCK)");
	if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 1) < 0)
		return fail("bind/listen");
	printf("vsock-listening port=%u\n", port);
	fflush(stdout);
	fd = accept(lfd, NULL, NULL);
	if (fd < 0)
		return fail("accept");
	close(lfd);
	return echo(fd);
}

static int cmd_send(unsigned int cid, unsigned int port, uint64_t bytes)
{
	struct sockaddr_vm sa = {.svm_family = AF_VSOCK, .svm_cid = cid, .svm_port = port};
	int fd = socket(AF_VSOCK, SOCK_STREAM, 0);

	if (fd < 0)
		return fail("socket(AF_VSOCK)");
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return fail("connect");
	return round_trip(fd, bytes);
}

static int cmd_host_serve(const char *path)
{
	struct sockaddr_un sa;
	int lfd = socket(AF_UNIX, SOCK_STREAM, 0), fd;

	if (lfd < 0 || unix_addr(path, &sa) < 0)
		return fail("socket");
	unlink(path);
	if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 1) < 0)
		return fail("bind/listen");
	printf("vsock-listening path=%s\n", path);
	fflush(stdout);
	fd = accept(lfd, NULL, NULL);
	if (fd < 0)
		return fail("accept");
	close(lfd);
	unlink(path);
	return echo(fd);
}

static int cmd_host_send(const char *path, unsigned int port, uint64_t bytes)
{
	struct sockaddr_un sa;
	char line[64];
	size_t n = 0;
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	if (fd < 0 || unix_addr(path, &sa) < 0)
		return fail("socket");
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return fail("connect to the VM's socket");
	snprintf(line, sizeof(line), "CONNECT %u\n", port);
	if (write(fd, line, strlen(line)) != (ssize_t)strlen(line))
		return fail("write CONNECT");
	/* The answer, byte by byte: the stream starts right after its newline. */
	while (n < sizeof(line) - 1) {
		ssize_t r = read(fd, line + n, 1);

		if (r <= 0) {
			errno = r < 0 ? errno : ECONNREFUSED;
			return fail("no OK from the VM (guest not listening?)");
		}
		if (line[n++] == '\n')
			break;
	}
	line[n] = '\0';
	if (strncmp(line, "OK ", 3)) {
		errno = 0;
		printf("vsock-fail: the VM answered %s", line);
		return 1;
	}
	return round_trip(fd, bytes);
}

static int cmd_host_chat(const char *path, const char *text)
{
	struct sockaddr_un sa;
	char buf[4096];
	int fd = -1;

	if (unix_addr(path, &sa) < 0)
		return fail("socket path");
	for (int i = 0; i < 600; i++) {
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		if (fd < 0)
			return fail("socket");
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			break;
		close(fd);
		fd = -1;
		usleep(100000);
	}
	if (fd < 0)
		return fail("connect");
	if (*text && write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		return fail("write");
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (write(STDOUT_FILENO, buf, (size_t)n) != n)
			return fail("stdout");
	}
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	alarm(TIMEOUT_S);
	if (argc == 3 && !strcmp(argv[1], "serve"))
		return cmd_serve((unsigned int)strtoul(argv[2], NULL, 10));
	if (argc == 5 && !strcmp(argv[1], "send"))
		return cmd_send((unsigned int)strtoul(argv[2], NULL, 10),
				(unsigned int)strtoul(argv[3], NULL, 10), strtoull(argv[4], NULL, 10));
	if (argc == 3 && !strcmp(argv[1], "host-serve"))
		return cmd_host_serve(argv[2]);
	if (argc == 5 && !strcmp(argv[1], "host-send"))
		return cmd_host_send(argv[2], (unsigned int)strtoul(argv[3], NULL, 10),
				     strtoull(argv[4], NULL, 10));
	if (argc == 4 && !strcmp(argv[1], "host-chat"))
		return cmd_host_chat(argv[2], argv[3]);
	fprintf(stderr, "usage: nestvm-vsock serve PORT | send CID PORT BYTES | host-serve PATH |\n"
			"                    host-send SOCKET PORT BYTES | host-chat SOCKET TEXT\n");
	return 2;
}
