/* SPDX-License-Identifier: MIT */
#include "cli/cli.h"
#include "core/vm_limits.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int cli_parse_size(const char *s, uint64_t *out)
{
	return vm_limits_parse_size(s, out);
}

int cli_parse_uint(const char *s, unsigned long min, unsigned long max, unsigned long *out)
{
	unsigned long v;
	char *end;

	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end)
		return -EINVAL;
	if (v < min || v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

int cli_parse_on_off(const char *s, int *out)
{
	static const char *const on[] = {"on", "true", "yes", "1"};
	static const char *const off[] = {"off", "false", "no", "0"};

	for (unsigned int i = 0; s && i < 4; i++) {
		if (!strcasecmp(s, on[i])) {
			*out = 1;
			return 0;
		}
		if (!strcasecmp(s, off[i])) {
			*out = 0;
			return 0;
		}
	}
	return -EINVAL;
}
