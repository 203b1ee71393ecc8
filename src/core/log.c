/* SPDX-License-Identifier: MIT */
#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>

static enum log_level log_max_level = LOG_WARN;
static const char *log_prefix = "nestvm";

static const char *const log_level_names[] = {
    [LOG_ERROR] = "error",
    [LOG_WARN] = "warning",
    [LOG_INFO] = "info",
    [LOG_DEBUG] = "debug",
};

void log_set_level(enum log_level level)
{
	log_max_level = level;
}

void log_set_prefix(const char *prefix)
{
	log_prefix = prefix ? prefix : "nestvm";
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	if (level > log_max_level)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* One write per message so lines from vCPU threads do not interleave. */
	fprintf(stderr, "%s: %s: %s\n", log_prefix, log_level_names[level], line);
}
