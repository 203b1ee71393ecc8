/* SPDX-License-Identifier: MIT */
#ifndef NESTVM_ARCH_X86_NESTED_H
#define NESTVM_ARCH_X86_NESTED_H

#include <linux/kvm.h>
#include <stdbool.h>

/*
 * "Expose virtualization extensions": whether a guest sees VMX (Intel SDM
 * vol. 3C ch. 23) or SVM (AMD APM vol. 2 ch. 15). Off by default.
 */

/*
 * nested_cpuid_apply - with @on false, hide VMX (CPUID.1:ECX[5]), SVM
 * (CPUID.80000001h:ECX[2]) and zero the SVM feature leaf 8000000Ah, whatever
 * the host allows. With @on true keep what KVM offers; returns -ENOTSUP if
 * KVM offers neither VMX nor SVM (the host cannot nest).
 */
int nested_cpuid_apply(struct kvm_cpuid2 *c, bool on) __attribute__((warn_unused_result));

#endif
