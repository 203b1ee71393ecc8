/* SPDX-License-Identifier: MIT */
#ifndef NESTVM_CLI_OPTS_VIRTIO_H
#define NESTVM_CLI_OPTS_VIRTIO_H

#include "core/vm.h"

/*
 * Parsers for `nestvm run`'s virtio device options. Words are separated by
 * single commas; ",," stands for a comma inside a word (as in QEMU), so a
 * path may hold commas: "a,,b.img,ro" is the disk "a,b.img", read-only.
 * Each splits its argument in place, so the strings it stores point into
 * @arg, which must outlive the configuration (argv does); on an error @arg
 * is left as it was given, for the message. -ENOMEM if a copy fails.
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
