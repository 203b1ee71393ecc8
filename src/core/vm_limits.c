/* SPDX-License-Identifier: MIT */
/* The limits of a VM's size (vm_limits.h): one parser, one set of messages. */
#include "core/vm_limits.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define VM_LIMITS_MIB (1ULL << 20)

static int vm_limits_why(int code, char *why, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int vm_limits_why(int code, char *why, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (why && len) {
		va_start(ap, fmt);
		vsnprintf(why, len, fmt, ap);
		va_end(ap);
	}
	return code;
}

int vm_limits_parse_size(const char *arg, uint64_t *bytes)
{
	unsigned long long v;
	unsigned int shift = 20; /* a bare number is MiB */
	char *end;

	if (!arg || !isdigit((unsigned char)*arg))
		return -EINVAL;
	errno = 0;
	v = strtoull(arg, &end, 10);
	if (errno || v == 0)
		return -EINVAL;
	switch (toupper((unsigned char)*end)) {
	case '\0':
		break;
	case 'K':
		shift = 10;
		break;
	case 'M':
		shift = 20;
		break;
	case 'G':
		shift = 30;
		break;
	case 'T':
		shift = 40;
		break;
	default:
		return -EINVAL;
	}
	if (*end) {
		end++;
		/* "M", "MB", "MiB" */
		if (!strcasecmp(end, "iB") || !strcasecmp(end, "B"))
			end += strlen(end);
		if (*end)
			return -EINVAL;
	}
	if (v > (~0ULL >> shift))
		return -EINVAL;
	*bytes = (uint64_t)v << shift;
	return 0;
}

uint64_t vm_limits_host_memory_mib(void)
{
	long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGE_SIZE);

	return pages > 0 && size > 0 ? ((uint64_t)pages * (uint64_t)size) >> 20 : 0;
}

int vm_limits_check_memory_mib(uint64_t mib, char *why, size_t len)
{
	uint64_t host = vm_limits_host_memory_mib();

	if (mib < VM_MIN_MEMORY_MIB)
		return vm_limits_why(-ERANGE, why, len,
		                     "%llu MiB is too small; a VM needs at least %d MiB",
		                     (unsigned long long)mib, VM_MIN_MEMORY_MIB);
	if (host && mib > host)
		return vm_limits_why(-ERANGE, why, len,
		                     "%llu MiB is more than this host's %llu MiB",
		                     (unsigned long long)mib, (unsigned long long)host);
	if (mib > VM_MAX_MEMORY_MIB)
		return vm_limits_why(
		    -ERANGE, why, len, "%llu MiB is more than nestvm's limit of %llu MiB",
		    (unsigned long long)mib, (unsigned long long)VM_MAX_MEMORY_MIB);
	return 0;
}

int vm_limits_parse_memory(const char *arg, uint64_t *mib, char *why, size_t len)
{
	uint64_t bytes;

	if (vm_limits_parse_size(arg, &bytes) < 0)
		return vm_limits_why(-EINVAL, why, len,
		                     "give a size like 512M or 4G (a bare number is MiB)");
	if (bytes & (VM_LIMITS_MIB - 1))
		return vm_limits_why(-EINVAL, why, len, "give a whole number of MiB");
	*mib = bytes >> 20;
	return vm_limits_check_memory_mib(*mib, why, len);
}

int vm_limits_parse_affinity(const char *arg, cpu_set_t *set, char *why, size_t len)
{
	static const char syntax[] = "give host CPUs as a list like 1 or 0-3,6";
	cpu_set_t s;
	const char *p = arg;

	CPU_ZERO(&s);
	if (!arg || !*arg)
		return vm_limits_why(-EINVAL, why, len, "%s", syntax);
	for (;;) {
		unsigned long lo, hi;
		char *end;

		if (!isdigit((unsigned char)*p))
			return vm_limits_why(-EINVAL, why, len, "%s", syntax);
		errno = 0;
		lo = hi = strtoul(p, &end, 10);
		if (!errno && *end == '-' && isdigit((unsigned char)end[1]))
			hi = strtoul(end + 1, &end, 10);
		if (errno || (*end && *end != ','))
			return vm_limits_why(-EINVAL, why, len, "%s", syntax);
		if (lo > hi)
			return vm_limits_why(-EINVAL, why, len, "%lu-%lu: a range is low-high", lo,
			                     hi);
		if (hi >= CPU_SETSIZE)
			return vm_limits_why(-EINVAL, why, len, "host CPU %lu: at most %d", hi,
			                     CPU_SETSIZE - 1);
		for (unsigned long c = lo; c <= hi; c++)
			CPU_SET(c, &s);
		if (!*end)
			break;
		p = end + 1;
	}
	if (set)
		*set = s;
	return 0;
}

void vm_limits_format_affinity(const cpu_set_t *set, char *buf, size_t len)
{
	size_t o = 0;

	if (len)
		buf[0] = 0;
	for (int c = 0; c < CPU_SETSIZE && o < len; c++) {
		int hi = c;

		if (!CPU_ISSET(c, set))
			continue;
		while (hi + 1 < CPU_SETSIZE && CPU_ISSET(hi + 1, set))
			hi++;
		o += (size_t)snprintf(buf + o, len - o, hi > c ? "%s%d-%d" : "%s%d", o ? "," : "", c,
		                      hi);
		c = hi;
	}
}

int vm_limits_check_cpus(uint64_t cpus, char *why, size_t len)
{
	if (cpus < VM_MIN_CPUS || cpus > VM_MAX_CPUS)
		return vm_limits_why(-ERANGE, why, len, "give a number of vCPUs from %d to %d",
		                     VM_MIN_CPUS, VM_MAX_CPUS);
	return 0;
}

int vm_limits_parse_cpus(const char *arg, unsigned int *cpus, char *why, size_t len)
{
	unsigned long long v;
	char *end;

	if (!arg || !isdigit((unsigned char)*arg))
		return vm_limits_why(-EINVAL, why, len, "give a number of vCPUs from %d to %d",
		                     VM_MIN_CPUS, VM_MAX_CPUS);
	errno = 0;
	v = strtoull(arg, &end, 10);
	if (errno || *end)
		return vm_limits_why(-EINVAL, why, len, "give a number of vCPUs from %d to %d",
		                     VM_MIN_CPUS, VM_MAX_CPUS);
	if (vm_limits_check_cpus(v, why, len) < 0)
		return -ERANGE;
	*cpus = (unsigned int)v;
	return 0;
}
