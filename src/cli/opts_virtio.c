/* SPDX-License-Identifier: MIT */
/*
 * `nestvm run` options for virtio devices: --disk, --vsock, --console-port.
 * See opts_virtio.h. Words are separated by single commas; ",," is a comma
 * inside a word, as in QEMU, so that any path can be given.
 */
#include "cli/opts_virtio.h"

#include "backends/disk.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The words of an argument being split in place, and its original for errors. */
struct opts_split {
	char *arg;
	char *next; /* NULL after the last word */
	char *orig; /* a copy of @arg as given */
};

static int opts_begin(struct opts_split *sp, char *arg)
{
	sp->arg = arg;
	sp->next = arg;
	sp->orig = strdup(arg);
	return sp->orig ? 0 : -ENOMEM;
}

/*
 * The next word, NUL-terminated in place with ",," turned into ",", or NULL
 * after the last. The unescaped word never outgrows its escaped form, so
 * writing it in place does not reach the words still to come.
 */
static char *opts_word(struct opts_split *sp)
{
	char *r = sp->next, *w = sp->next, *word = sp->next;

	if (!r)
		return NULL;
	for (;;) {
		if (r[0] == ',' && r[1] == ',') {
			*w++ = ',';
			r += 2;
			continue;
		}
		if (r[0] == ',' || r[0] == '\0') {
			sp->next = r[0] ? r + 1 : NULL;
			*w = '\0';
			return word;
		}
		*w++ = *r++;
	}
}

/* Leave the argument as it was given, so that an error message can quote it. */
static int opts_fail(struct opts_split *sp)
{
	strcpy(sp->arg, sp->orig);
	free(sp->orig);
	sp->orig = NULL;
	return -EINVAL;
}

static int opts_done(struct opts_split *sp)
{
	free(sp->orig);
	sp->orig = NULL;
	return 0;
}

int cli_parse_disk(char *arg, struct vm_disk_config *out)
{
	struct opts_split sp;
	char *word;

	memset(out, 0, sizeof(*out));
	out->engine = DISK_ENGINE_AUTO;
	if (opts_begin(&sp, arg) < 0)
		return -ENOMEM;
	word = opts_word(&sp);
	if (!word || !word[0])
		return opts_fail(&sp);
	out->path = word;
	while ((word = opts_word(&sp))) {
		if (!strcmp(word, "readonly") || !strcmp(word, "ro"))
			out->readonly = true;
		else if (!strcmp(word, "io=auto"))
			out->engine = DISK_ENGINE_AUTO;
		else if (!strcmp(word, "io=uring") || !strcmp(word, "io=io_uring"))
			out->engine = DISK_ENGINE_URING;
		else if (!strcmp(word, "io=threads"))
			out->engine = DISK_ENGINE_THREADS;
		else
			return opts_fail(&sp);
	}
	return opts_done(&sp);
}

int cli_parse_vsock(char *arg, uint32_t *cid, const char **socket)
{
	struct opts_split sp;
	char *word, *end;
	unsigned long v;

	*cid = 0;
	*socket = NULL;
	if (arg[0] < '0' || arg[0] > '9')
		return -EINVAL;
	if (opts_begin(&sp, arg) < 0)
		return -ENOMEM;
	word = opts_word(&sp);
	errno = 0;
	v = strtoul(word, &end, 10);
	/* 0, 1 and 2 are reserved (2 is the host), and so is 0xffffffff (§5.10.4). */
	if (errno || *end || v < 3 || v >= 0xffffffffUL)
		return opts_fail(&sp);
	*cid = (uint32_t)v;
	while ((word = opts_word(&sp))) {
		if (!strncmp(word, "socket=", 7) && word[7])
			*socket = word + 7;
		else
			return opts_fail(&sp);
	}
	return opts_done(&sp);
}

int cli_parse_console_port(char *arg, struct vm_console_port *out)
{
	struct opts_split sp;
	char *word;

	memset(out, 0, sizeof(*out));
	if (opts_begin(&sp, arg) < 0)
		return -ENOMEM;
	word = opts_word(&sp);
	if (!word || !word[0] || strlen(word) > 64)
		return opts_fail(&sp);
	out->name = word;
	while ((word = opts_word(&sp))) {
		if (!strncmp(word, "socket=", 7) && word[7])
			out->socket = word + 7;
		else
			return opts_fail(&sp);
	}
	if (!out->socket)
		return opts_fail(&sp);
	return opts_done(&sp);
}
