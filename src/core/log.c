/* SPDX-License-Identifier: MIT */
#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static enum log_level log_max_level = LOG_WARN;
static char log_prefix[96] = "nestvm";
static bool log_timestamps;

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
	snprintf(log_prefix, sizeof(log_prefix), "%s", prefix ? prefix : "nestvm");
}

void log_set_timestamps(bool on)
{
	log_timestamps = on;
}

/* One line, written with one call so that lines from several threads do not interleave. */
static void log_write(const char *level, const char *fmt, va_list ap)
{
	char when[32] = "", line[1024];

	if (log_timestamps) {
		time_t now = time(NULL);
		struct tm tm;

		gmtime_r(&now, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ ", &tm);
	}
	vsnprintf(line, sizeof(line), fmt, ap);
	fprintf(stderr, "%s%s: %s%s%s\n", when, log_prefix, level ? level : "", level ? ": " : "",
		line);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	if (level > log_max_level)
		return;
	va_start(ap, fmt);
	log_write(log_level_names[level], fmt, ap);
	va_end(ap);
}

void log_event(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_write(NULL, fmt, ap);
	va_end(ap);
}
