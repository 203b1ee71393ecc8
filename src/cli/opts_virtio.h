/* SPDX-License-Identifier: MIT */
#ifndef NESTVM_CLI_OPTS_VIRTIO_H
#define NESTVM_CLI_OPTS_VIRTIO_H

#include "core/vm.h"

/*
 * Parsers for `nestvm run`'s virtio device options. Each splits its
 * argument in place (commas become NULs), so the strings it stores point into
 * @arg, which must outlive the configuration (argv does).
 */

/*
 * cli_parse_disk - "PATH[,readonly][,io=auto|uring|threads]" (--disk) into
 * @out. Returns 0 or -EINVAL (empty path, unknown word).
 */
int cli_parse_disk(char *arg, struct vm_disk_config *out) __attribute__((warn_unused_result));

/*
 * cli_parse_vsock - "CID[,socket=PATH]" (--vsock): a guest CID from 3 to
 * 0xfffffffe, and the host-side socket. Returns 0 or -EINVAL.
 */
int cli_parse_vsock(char *arg, uint32_t *cid, const char **socket)
    __attribute__((warn_unused_result));

/*
 * cli_parse_console_port - "NAME,socket=PATH" (--console-port): a named
 * virtio-console port, NAME 1 to 64 bytes. Returns 0 or -EINVAL.
 */
int cli_parse_console_port(char *arg, struct vm_console_port *out)
	__attribute__((warn_unused_result));

#endif
