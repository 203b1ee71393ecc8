/* SPDX-License-Identifier: MIT */
#ifndef NESTVM_CORE_LOG_H
#define NESTVM_CORE_LOG_H

#include <stdbool.h>

/*
 * One logger for the whole monitor. Messages go to stderr with a level and
 * an optional per-VM prefix ("nestvm[name]: error: ..."), and with a UTC
 * timestamp first when turned on (the manager's monitor.log).
 */

enum log_level { LOG_NONE = -1, LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* log_set_level - messages above @level are dropped. */
void log_set_level(enum log_level level);
/* log_set_prefix - set the per-VM prefix (copied); NULL restores "nestvm". */
void log_set_prefix(const char *prefix);
/* log_set_timestamps - start every line with "YYYY-MM-DDTHH:MM:SSZ ". */
void log_set_timestamps(bool on);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* log_event - a lifecycle line without a level, never filtered ("VM started"). */
void log_event(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
