/* SPDX-License-Identifier: MIT */
/*
 * `nestvm console NAME`: attach the terminal to a running VM's serial console
 * through its monitor (Hyper-V's VMConnect, virsh console); Ctrl-] detaches.
 * And the hidden `nestvm api NAME`: raw request lines from stdin to the
 * control socket, replies to stdout, for scripts and for testing the
 * protocol (docs/api.md).
 */
#include "cli/cli.h"
#include "cli/cli_vm.h"
#include "core/exit_status.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#define CONSOLE_DETACH_KEY 0x1d /* Ctrl-] */

static const char console_usage[] =
    "usage: nestvm console NAME [--no-replay]\n"
    "\n"
    "Attach to a running VM's serial console (COM1): what the guest prints\n"
    "appears here, what you type goes to the guest. Detach with Ctrl-]; the VM\n"
    "keeps running. The recent output (up to 16 KiB) is shown first unless\n"
    "--no-replay. One client at a time. Without a terminal on stdin, end of\n"
    "input detaches; the exit status is 0 when detached or when the VM ended.\n";

static int console_write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -errno;
		buf += n;
		len -= n;
	}
	return 0;
}

/* Copy between the terminal and the socket until detach, EOF or the VM ends. */
static int console_relay(int sock, bool tty, const char *name)
{
	bool stdin_open = true;
	char buf[4096];

	for (;;) {
		struct pollfd fds[2] = {
		    {.fd = sock, .events = POLLIN},
		    {.fd = stdin_open ? STDIN_FILENO : -1, .events = POLLIN},
		};
		ssize_t n;

		if (poll(fds, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (fds[0].revents) {
			n = recv(sock, buf, sizeof(buf), 0);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				fprintf(stderr, "%s[VM '%s' stopped; console closed]\n",
				        tty ? "\r\n" : "", name);
				return 0;
			}
			if (console_write_all(STDOUT_FILENO, buf, n) < 0)
				return 0; /* nobody reads our output: detach */
		}
		if (fds[1].revents) {
			n = read(STDIN_FILENO, buf, sizeof(buf));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return 0; /* end of input detaches */
			if (tty) {
				char *k = memchr(buf, CONSOLE_DETACH_KEY, n);

				if (k) {
					if (k > buf && console_write_all(sock, buf, k - buf) < 0)
						return 0;
					fprintf(stderr, "\r\n[detached from VM '%s']\r\n", name);
					return 0;
				}
			}
			if (console_write_all(sock, buf, n) < 0)
				return 0;
		}
	}
}

int cmd_console(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"no-replay", no_argument, NULL, 'n'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct termios saved, raw;
	const char *name = NULL;
	struct mgr_err err;
	json_t *res = NULL;
	struct client c;
	struct store st;
	int opt, replay = 1, r;
	bool tty;

	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (opt == 'n') {
			replay = 0;
		} else if (opt == 'h') {
			fputs(console_usage, stdout);
			return 0;
		} else {
			return cli_vm_usage("console", "unknown option '%s'", argv[optind - 1]);
		}
	}
	r = cli_vm_name_arg("console", argc, argv, &name);
	if (r < 0)
		r = cli_vm_open_store("console", &st);
	if (r >= 0)
		return r;
	if (store_check_name(name, &err) < 0)
		return cli_vm_error("console", "%s", err.msg);
	if (client_connect(&st, name, &c, &err) < 0) {
		struct vm_status vs;

		if (client_vm_status(&st, name, &vs, &err) < 0)
			return cli_vm_error("console", "%s", err.msg);
		r = cli_vm_error("console", "VM '%s' is %s, not running", name,
		                 api_state_name(vs.state));
		client_vm_status_clear(&vs);
		return r;
	}
	if (client_call(&c, "console", json_pack("{s:b}", "replay", replay), CLIENT_TIMEOUT_MS,
	                &res, &err) < 0) {
		client_close(&c);
		return cli_vm_error("console", "VM '%s': %s", name, err.msg);
	}
	json_decref(res);
	tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved) == 0;
	if (tty) {
		fprintf(stderr, "[attached to the console of VM '%s'; detach with Ctrl-]]\r\n",
		        name);
		raw = saved;
		cfmakeraw(&raw);
		/* Keep output processing: a guest that ends lines with a bare \n stays readable. */
		raw.c_oflag |= OPOST;
		tcsetattr(STDIN_FILENO, TCSANOW, &raw);
	}
	/* Anything the monitor sent right after the reply is console output. */
	{
		const char *rest;
		size_t len = api_framer_pending(c.in, &rest);

		r = len ? console_write_all(STDOUT_FILENO, rest, len) : 0;
	}
	if (r == 0)
		r = console_relay(c.fd, tty, name);
	if (tty)
		tcsetattr(STDIN_FILENO, TCSANOW, &saved);
	client_close(&c);
	return r < 0 ? NESTVM_EXIT_ERROR : 0;
}

static const char api_usage[] =
    "usage: nestvm api NAME < requests\n"
    "\n"
    "Send request lines from stdin to VM NAME's control socket as they are, and\n"
    "print the monitor's replies (docs/api.md). For scripts and debugging.\n";

/*
 * Copy stdin to the socket and the socket to stdout at once: a monitor
 * stops reading requests while its replies wait for us. Returns 0, or the
 * errno of a failed send (EPIPE: the monitor closed before stdin ended).
 */
static int api_relay(int sock)
{
	char in[8192], out[8192];
	size_t in_len = 0, in_off = 0;
	bool stdin_open = true, sock_open = true;

	while (sock_open) {
		struct pollfd fds[2] = {
		    {.fd = sock, .events = POLLIN | (in_off < in_len ? POLLOUT : 0)},
		    {.fd = stdin_open && in_off == in_len ? STDIN_FILENO : -1, .events = POLLIN},
		};
		ssize_t n;

		if (poll(fds, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return errno;
		}
		if (fds[1].revents) {
			n = read(STDIN_FILENO, in, sizeof(in));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				/* All of stdin sent: the monitor answers each line, then sees our EOF. */
				stdin_open = false;
				shutdown(sock, SHUT_WR);
			} else {
				in_len = (size_t)n;
				in_off = 0;
			}
		}
		if ((fds[0].revents & POLLOUT) && in_off < in_len) {
			n = send(sock, in + in_off, in_len - in_off, MSG_DONTWAIT | MSG_NOSIGNAL);
			if (n < 0 && errno != EINTR && errno != EAGAIN)
				return errno;
			in_off += n > 0 ? (size_t)n : 0;
		}
		/* Whatever the monitor says, also when it closes on us (why: an idle-timeout line). */
		if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			n = recv(sock, out, sizeof(out), MSG_DONTWAIT);
			if (n < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (n <= 0 || console_write_all(STDOUT_FILENO, out, n) < 0)
				sock_open = false;
		}
	}
	/* It closed before our input ended: what was left was not sent. */
	return stdin_open || in_off < in_len ? EPIPE : 0;
}

int cmd_api(int argc, char **argv)
{
	const char *name = NULL;
	struct mgr_err err;
	struct client c;
	struct store st;
	int r;

	r = cli_vm_parse(argc, argv, api_usage, &name);
	if (r < 0)
		r = cli_vm_open_store("api", &st);
	if (r >= 0)
		return r;
	if (store_check_name(name, &err) < 0 || client_connect(&st, name, &c, &err) < 0)
		return cli_vm_error("api", "%s", err.msg);
	r = api_relay(c.fd);
	client_close(&c);
	if (r)
		return cli_vm_error("api", "sending to the monitor: %s", strerror(r));
	return 0;
}
