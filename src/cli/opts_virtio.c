/* SPDX-License-Identifier: MIT */
/* `nestvm run` options for virtio devices: --disk, --vsock, --console-port. See opts_virtio.h. */
#include "cli/opts_virtio.h"

#include "backends/disk.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Undo the in-place split so that an error message can quote the argument. */
static int opts_fail(char *arg, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!arg[i])
			arg[i] = ',';
	return -EINVAL;
}

int cli_parse_disk(char *arg, struct vm_disk_config *out)
{
	size_t len = strlen(arg);
	char *save = NULL, *word;

	memset(out, 0, sizeof(*out));
	out->engine = DISK_ENGINE_AUTO;
	if (arg[0] == ',')
		return -EINVAL;
	word = strtok_r(arg, ",", &save);
	if (!word)
		return -EINVAL;
	out->path = word;
	while ((word = strtok_r(NULL, ",", &save))) {
		if (!strcmp(word, "readonly") || !strcmp(word, "ro"))
			out->readonly = true;
		else if (!strcmp(word, "io=auto"))
			out->engine = DISK_ENGINE_AUTO;
		else if (!strcmp(word, "io=uring") || !strcmp(word, "io=io_uring"))
			out->engine = DISK_ENGINE_URING;
		else if (!strcmp(word, "io=threads"))
			out->engine = DISK_ENGINE_THREADS;
		else
			return opts_fail(arg, len);
	}
	return 0;
}

int cli_parse_vsock(char *arg, uint32_t *cid, const char **socket)
{
	size_t len = strlen(arg);
	char *save = NULL, *word, *end;
	unsigned long v;

	*cid = 0;
	*socket = NULL;
	if (arg[0] < '0' || arg[0] > '9')
		return -EINVAL;
	word = strtok_r(arg, ",", &save);
	errno = 0;
	v = strtoul(word, &end, 10);
	/* 0, 1 and 2 are reserved (2 is the host), and so is 0xffffffff (§5.10.4). */
	if (errno || *end || v < 3 || v >= 0xffffffffUL)
		return opts_fail(arg, len);
	*cid = (uint32_t)v;
	while ((word = strtok_r(NULL, ",", &save))) {
		if (!strncmp(word, "socket=", 7) && word[7])
			*socket = word + 7;
		else
			return opts_fail(arg, len);
	}
	return 0;
}

int cli_parse_console_port(char *arg, struct vm_console_port *out)
{
	size_t len = strlen(arg);
	char *save = NULL, *word;

	memset(out, 0, sizeof(*out));
	if (arg[0] == ',')
		return -EINVAL;
	word = strtok_r(arg, ",", &save);
	if (!word || strlen(word) > 64)
		return opts_fail(arg, len);
	out->name = word;
	while ((word = strtok_r(NULL, ",", &save))) {
		if (!strncmp(word, "socket=", 7) && word[7])
			out->socket = word + 7;
		else
			return opts_fail(arg, len);
	}
	return out->socket ? 0 : opts_fail(arg, len);
}
