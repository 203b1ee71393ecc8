/* SPDX-License-Identifier: MIT */
#ifndef NESTVM_MANAGER_CLIENT_H
#define NESTVM_MANAGER_CLIENT_H

/*
 * The client side of the control protocol, and the one place that decides
 * what state a VM is in (client_vm_status), from the lock, the monitor's
 * answer, and the records the monitor leaves in the store:
 *
 *   lock free,  runtime.json present          crashed (the monitor died)
 *   lock free,  no runtime.json               off, or crashed if the last run
 *                                             ended in a guest crash or error
 *   lock held,  the monitor answers           what it says (starting, running,
 *                                             paused, stopping)
 *   lock held,  no answer, runtime.json       the state recorded there
 *   lock held,  no answer, no runtime.json    off (a command is changing it)
 */

#include "manager/protocol.h"
#include "manager/store.h"

#include <jansson.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#define CLIENT_TIMEOUT_MS 5000

struct client {
	int fd;
	struct api_framer *in;
	/*
	 * Descriptors to pass (SCM_RIGHTS) with the next request, then
	 * forgotten (not closed): what a monitor cannot open itself (a
	 * migrate's secret file and stream, manager/jail.h).
	 */
	const int *pass_fds;
	unsigned int nr_pass_fds;
};

/*
 * client_socket_addr - the control socket's address. Paths longer than
 * sun_path go through /proc/self/fd/N of the VM directory: *@dirfd is then
 * that descriptor, which the caller closes after bind()/connect(), else -1.
 */
int client_socket_addr(const struct store *st, const char *name, struct sockaddr_un *sa,
                       socklen_t *len, int *dirfd) __attribute__((warn_unused_result));

/* client_connect - connect to NAME's monitor; -ENOENT or -ECONNREFUSED if none runs. */
int client_connect(const struct store *st, const char *name, struct client *c, struct mgr_err *err)
    __attribute__((warn_unused_result));

/*
 * client_call - send {"cmd": @cmd, ...@args} (@args taken, may be NULL) and
 * wait up to @timeout_ms for the reply. Returns 0 and the result object,
 * -EREMOTEIO for an error reply (its message in @err), or -errno.
 */
int client_call(struct client *c, const char *cmd, json_t *args, int timeout_ms, json_t **result,
                struct mgr_err *err) __attribute__((warn_unused_result));

/*
 * client_call_progress - client_call() for a request sent with "progress":
 * true: each progress line before the reply goes to @fn with its
 * "progress" object, and restarts the @timeout_ms wait.
 */
typedef void (*client_progress_fn)(void *opaque, json_t *progress);
int client_call_progress(struct client *c, const char *cmd, json_t *args, int timeout_ms,
                         client_progress_fn fn, void *opaque, json_t **result, struct mgr_err *err)
    __attribute__((warn_unused_result));

/* client_wait_closed - wait until the monitor closes the connection; 0 or -ETIMEDOUT. */
int client_wait_closed(struct client *c, int timeout_ms) __attribute__((warn_unused_result));

/* client_close - close the connection; a closed client is a no-op. */
void client_close(struct client *c);

/* What is known about a VM's state; see the table above. */
struct vm_status {
	enum api_state state;
	bool live;      /* the monitor answered; @info holds its status */
	json_t *info;   /* the monitor's status result, or NULL */
	pid_t pid;      /* the monitor's pid, 0 if none */
	bool have_exit; /* @last_exit is valid */
	struct store_exit last_exit;
	bool hv_known; /* the guest-hypervisor fields below are valid */
	bool hv_active;
	unsigned int hv_svme, hv_vmxe, hv_guest_mode;
	char note[256]; /* why the state is what it is, when not obvious */
};

/* client_vm_status - NAME's state. Returns 0, or -ENOENT if there is no such VM. */
int client_vm_status(const struct store *st, const char *name, struct vm_status *out,
                     struct mgr_err *err) __attribute__((warn_unused_result));

/* client_vm_status_clear - release @s->info. */
void client_vm_status_clear(struct vm_status *s);

/* client_exit_describe - a sentence for an exit status ("the guest powered off"). */
const char *client_exit_describe(int status, char *buf, size_t len);

#endif
