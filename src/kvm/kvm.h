/* SPDX-License-Identifier: MIT */
#ifndef NESTVM_KVM_KVM_H
#define NESTVM_KVM_KVM_H

#include <linux/kvm.h>
#include <stdint.h>

/*
 * Thin wrappers around the KVM ioctls (Documentation/virt/kvm/api.rst).
 * Every function returns 0 (or a non-negative value) or a negative errno.
 */

struct kvm_sys {
	int fd;             /* /dev/kvm */
	int vcpu_mmap_size; /* size of struct kvm_run mapping */
};

/* kvm_sys_open - open /dev/kvm and check the API version is 12. */
int kvm_sys_open(struct kvm_sys *sys, const char *path) __attribute__((warn_unused_result));
void kvm_sys_close(struct kvm_sys *sys);

/* kvm_check_cap - KVM_CHECK_EXTENSION on @fd (system or VM fd); 0 if absent. */
int kvm_check_cap(int fd, long cap);

/* Room for KVM_GET_SUPPORTED_CPUID's table (Linux reports well under 100 entries). */
#define KVM_MAX_CPUID_ENTRIES 256

/*
 * kvm_get_supported_cpuid - KVM_GET_SUPPORTED_CPUID into a malloc'd table the
 * caller frees. Returns 0 or -errno.
 */
int kvm_get_supported_cpuid(const struct kvm_sys *sys, struct kvm_cpuid2 **out)
    __attribute__((warn_unused_result));
/*
 * kvm_supported_cpuid_fill - KVM_GET_SUPPORTED_CPUID into @table (nent: its
 * room), from the answer kvm_get_supported_cpuid() kept for this device if
 * there is one: no allocation, for a thread that must not have a heap of its
 * own.
 */
int kvm_supported_cpuid_fill(int kvm_fd, struct kvm_cpuid2 *table)
    __attribute__((warn_unused_result));

/* kvm_cpuid_alloc - a zeroed kvm_cpuid2 with room for @nent entries. */
struct kvm_cpuid2 *kvm_cpuid_alloc(unsigned int nent);

/* kvm_ioctl - ioctl() returning -errno on failure, retrying EINTR for non-RUN calls. */
int kvm_ioctl(int fd, unsigned long req, void *arg);

#endif
