/* SPDX-License-Identifier: MIT */
#ifndef NESTVM_ARCH_X86_NESTED_HOST_H
#define NESTVM_ARCH_X86_NESTED_HOST_H

#include <stdbool.h>
#include <stdint.h>

/*
 * Host readiness for nested virtualization — nestvm's Get-NestedVirtStatus.
 * nested_host_gather() reads the facts (CPU flags, /dev/kvm, the KVM module
 * and its `nested` parameter, KVM's supported CPUID, KVM_CAP_NESTED_STATE,
 * memory, whether the host is itself a VM); nested_host_evaluate() turns
 * facts into checks, and is pure so it can be tested on recorded hosts.
 */

#define NESTED_HOST_STR 64

struct nested_host_facts {
	char cpu_vendor[NESTED_HOST_STR]; /* "AuthenticAMD", "GenuineIntel" */
	char cpu_model[NESTED_HOST_STR];
	bool cpu_vmx, cpu_svm; /* /proc/cpuinfo flags */
	bool cpu_ept, cpu_npt;
	bool kvm_present, kvm_writable;
	char kvm_module[NESTED_HOST_STR]; /* kvm_intel, kvm_amd, kvm_pvm, ... or "" */
	int kvm_nested_param;             /* 1 on, 0 off, -1 no such parameter */
	bool kvm_queried;                 /* the ioctls below ran */
	bool kvm_offers_vmx, kvm_offers_svm;
	int nested_state_size;            /* KVM_CAP_NESTED_STATE */
	uint64_t mem_available;           /* bytes, MemAvailable */
	bool is_vm;                       /* CPUID.1:ECX[31] */
	char hypervisor[NESTED_HOST_STR]; /* leaf 0x40000000 signature, or "" */
	char thp[NESTED_HOST_STR];        /* transparent huge pages: "always", "madvise",
	                                     "never", or "" if unknown */
};

/* WARN: nesting works, but slower than it could; the check has a fix. */
enum nested_check_result { NESTED_CHECK_PASS, NESTED_CHECK_FAIL, NESTED_CHECK_INFO, NESTED_CHECK_WARN };

#define NESTED_HOST_MAX_CHECKS 12

struct nested_check {
	const char *name;
	enum nested_check_result result;
	char detail[160];
	char hint[320]; /* what to do about a failure; "" if nothing */
};

struct nested_host_report {
	struct nested_check checks[NESTED_HOST_MAX_CHECKS];
	unsigned int nr_checks;
	bool can_nest; /* every check passed */
};

/* Memory below which even small nested guests (an L1 with a few L2s) will not fit. */
#define NESTED_HOST_MIN_MEMORY (256ULL << 20)

/*
 * nested_host_gather - read the facts of this host. @root prefixes /proc,
 * /sys and /dev paths ("" for the real ones); @kvm_path is the KVM device.
 */
void nested_host_gather(struct nested_host_facts *f, const char *root, const char *kvm_path);

/* nested_host_evaluate - the checks, one per line of the report. */
void nested_host_evaluate(const struct nested_host_facts *f, struct nested_host_report *out);

#endif
