/* SPDX-License-Identifier: MIT */
#ifndef NESTVM_SNAPSHOT_MIGRATE_NET_H
#define NESTVM_SNAPSHOT_MIGRATE_NET_H

/*
 * The ends of a migration stream: the addresses it takes (TCP, or a UNIX
 * socket only the user can reach), connecting, listening and accepting
 * with timeouts and a cancel eventfd, and the per-migration secret read
 * from a file of the user's.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

/*
 * mig_secret_read - the secret in @path: a regular file of the caller's
 * (not a symbolic link), readable by no one else (mode 0600 or 0400), of
 * MIG_SECRET_MIN to MIG_SECRET_MAX bytes, used as it is. Returns its
 * length, or -errno with the reason (and the fix) in @why.
 */
int mig_secret_read(const char *path, uint8_t *buf, size_t cap, char *why, size_t why_len)
    __attribute__((warn_unused_result));

/*
 * mig_secret_read_fd - mig_secret_read() from the open file @fd (named
 * @path in messages), which must belong to @owner: the user whose `nestvm
 * migrate` passed it to a monitor that cannot open the file itself (jailed,
 * or under Landlock). @fd stays open.
 */
int mig_secret_read_fd(int fd, const char *path, uid_t owner, uint8_t *buf, size_t cap, char *why,
                       size_t why_len)
    __attribute__((warn_unused_result));

/* Where a stream goes: "tcp:HOST:PORT" (HOST an IPv4 or [IPv6] address) or "unix:PATH". */
struct mig_addr {
	bool is_unix;
	char path[108];             /* sun_path */
	struct sockaddr_storage sa; /* TCP */
	socklen_t sa_len;
};

/*
 * mig_addr_parse - parse @s; @resolve allows a host name (getaddrinfo(),
 * for the command line; the monitor takes numeric addresses only). A UNIX
 * path must be absolute. 0 or -EINVAL with the reason in @why.
 */
int mig_addr_parse(const char *s, bool resolve, struct mig_addr *a, char *why, size_t why_len)
    __attribute__((warn_unused_result));

/* mig_addr_format - back to "tcp:1.2.3.4:5" or "unix:/path" (numeric). */
void mig_addr_format(const struct mig_addr *a, char *buf, size_t len);

/*
 * mig_connect - connect to @a within @timeout_ms (a UNIX socket only if it
 * and its listener are the caller's: unix_connect_owned()). @cancel_fd as
 * in struct mig_conn. Returns the socket or -errno with @why.
 */
int mig_connect(const struct mig_addr *a, int timeout_ms, int cancel_fd, char *why, size_t why_len)
    __attribute__((warn_unused_result));

/*
 * mig_listen - listen on @a: TCP with SO_REUSEADDR; a UNIX socket of mode
 * 0600 in a directory only the caller controls (fs_private_dir(): never
 * /tmp itself). The bound address (a TCP port 0 is given one) goes back
 * into @a. Returns the listening socket (non-blocking) or -errno with @why.
 */
int mig_listen(struct mig_addr *a, char *why, size_t why_len) __attribute__((warn_unused_result));

/*
 * mig_accept - wait up to @timeout_ms (-1: forever) for a connection on
 * @lfd; @cancel_fd as above. Returns it (blocking mode unchanged,
 * close-on-exec) or -errno; @peer gets "tcp:1.2.3.4:5" or "unix".
 */
int mig_accept(int lfd, int timeout_ms, int cancel_fd, char *peer, size_t peer_len)
    __attribute__((warn_unused_result));

#endif
