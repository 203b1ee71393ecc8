/* SPDX-License-Identifier: MIT */
#ifndef NESTVM_CORE_CLOCK_H
#define NESTVM_CORE_CLOCK_H

/*
 * CLOCK_MONOTONIC in milliseconds, microseconds and nanoseconds: for
 * deadlines, timeouts and the durations nestvm reports. Never the wall clock
 * (which can jump).
 */
#include <stdint.h>
#include <time.h>

static inline int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline int64_t mono_us(void)
{
	return mono_ns() / 1000;
}

static inline int64_t mono_ms(void)
{
	return mono_ns() / 1000000;
}

#endif
