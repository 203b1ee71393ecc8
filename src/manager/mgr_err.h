/* SPDX-License-Identifier: MIT */
#ifndef NESTVM_MANAGER_MGR_ERR_H
#define NESTVM_MANAGER_MGR_ERR_H

/*
 * The VM manager's error messages (implemented in store.c): functions that
 * fail return -errno and put a message for the user in a struct mgr_err,
 * naming the VM, the file and the field concerned.
 */

#include <stddef.h>

/* An error message for the user: what failed, where, and what to do. */
struct mgr_err {
	char msg[2048];
};

/* mgr_err_set - format a message into @err (NULL is allowed); returns @code. */
int mgr_err_set(struct mgr_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * mgr_escape - @s for a message: control characters, DEL, bytes above 0x7f
 * and '\\' as \xHH / \\\\, so that a name cannot drive the user's terminal.
 * Truncated to fit @len; returns @buf.
 */
const char *mgr_escape(const char *s, char *buf, size_t len);

#endif
