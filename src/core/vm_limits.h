/* SPDX-License-Identifier: MIT */
#ifndef NESTVM_CORE_VM_LIMITS_H
#define NESTVM_CORE_VM_LIMITS_H

/*
 * The limits of a VM's size, in one place for every way a VM is described:
 * `nestvm run`'s options, `new` and `set`'s options, and the definition
 * loader (vm.json). A value is judged when it is parsed, never first by KVM
 * at start. Each function returns 0, or -EINVAL (not a size / number) or
 * -ERANGE (out of the limits), and then puts the reason into @why
 * ("not a whole number of MiB"), which the caller prefixes with where the
 * value came from ("--memory '16385K': ", "vm.json: field 'memory_mib': ").
 */

#include <sched.h>
#include <stddef.h>
#include <stdint.h>

#define VM_MIN_CPUS 1
#define VM_MAX_CPUS 254 /* ACPI_MAX_CPUS: local APIC ids in the MADT */
#define VM_MIN_MEMORY_MIB 16
#define VM_MAX_MEMORY_MIB (16ULL << 20) /* 16 TiB */
#define VM_LIMITS_WHY_LEN 128

/*
 * vm_limits_parse_size - "512M", "4G", "1024K", "2T" (also "MB", "MiB") or a
 * bare number of MiB, into bytes; no check of the limits. 0 or -EINVAL.
 */
int vm_limits_parse_size(const char *arg, uint64_t *bytes) __attribute__((warn_unused_result));

/*
 * vm_limits_parse_memory - a guest RAM size as a user writes it, into MiB:
 * a size (vm_limits_parse_size) that is a whole number of MiB, within
 * vm_limits_check_memory_mib(). 0, -EINVAL or -ERANGE with @why set.
 */
int vm_limits_parse_memory(const char *arg, uint64_t *mib, char *why, size_t len)
    __attribute__((warn_unused_result));

/*
 * vm_limits_check_memory_mib - VM_MIN_MEMORY_MIB to the smaller of this
 * host's RAM and VM_MAX_MEMORY_MIB. 0 or -ERANGE with @why set.
 */
int vm_limits_check_memory_mib(uint64_t mib, char *why, size_t len)
    __attribute__((warn_unused_result));

/* vm_limits_parse_cpus - a decimal vCPU count within vm_limits_check_cpus(); 0 or -EINVAL/-ERANGE.
 */
int vm_limits_parse_cpus(const char *arg, unsigned int *cpus, char *why, size_t len)
    __attribute__((warn_unused_result));

/* vm_limits_check_cpus - VM_MIN_CPUS to VM_MAX_CPUS; 0 or -ERANGE with @why set. */
int vm_limits_check_cpus(uint64_t cpus, char *why, size_t len) __attribute__((warn_unused_result));

/*
 * vm_limits_parse_affinity - host CPUs for a VM's threads, as taskset -c
 * writes them: "1", "0-3,6" (numbers below CPU_SETSIZE, ranges low-high),
 * into @set (may be NULL: a check only). 0 or -EINVAL with @why set.
 * vm_limits_format_affinity() writes @set back so ("0-3,6").
 */
int vm_limits_parse_affinity(const char *arg, cpu_set_t *set, char *why, size_t len)
    __attribute__((warn_unused_result));
void vm_limits_format_affinity(const cpu_set_t *set, char *buf, size_t len);

/* vm_limits_host_memory_mib - this host's RAM in MiB, 0 if unknown. */
uint64_t vm_limits_host_memory_mib(void);

#endif
