/* SPDX-License-Identifier: MIT */
#ifndef NESTVM_SNAPSHOT_VM_SNAPSHOT_H
#define NESTVM_SNAPSHOT_VM_SNAPSHOT_H

#include "core/vm.h"
#include "snapshot/format.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * A whole VM saved into a directory (docs/snapshot.md):
 *
 *   state   the state file (snapshot/format.h): a "machine" section, then
 *           every device's sections in device-list order (core/device.h),
 *           the KVM state and each vCPU's nested state included
 *   memory  guest RAM, ram_size bytes in gpa order, sparse: pages that are
 *           zero are holes
 *
 * Both files are written once and never changed afterwards, so they may be
 * hard-linked between a checkpoint and a saved state, and a restored VM maps
 * its memory file privately (copy-on-write) instead of reading it: restore
 * costs the pages the guest touches, not the size of its RAM. The caller
 * makes the directory (a temporary one, renamed into place when complete)
 * and adds the definition (vm.json) to it.
 */

#define SNAPSHOT_STATE_FILE "state"
#define SNAPSHOT_MEMORY_FILE "memory"
#define SNAPSHOT_SEC_MACHINE 0x001

/* What the "machine" section records, checked before anything is built. */
struct snapshot_machine {
	uint64_t ram_size;
	uint32_t nr_vcpus;
	bool nested;
	uint32_t nr_devices;
	char cpu_vendor[13];  /* CPUID leaf 0 of the host's KVM */
	uint32_t cpu_signature; /* CPUID.1:EAX: family, model, stepping */
};

/* Called as a save goes: @phase "state" or "memory", @done of @total bytes. */
struct snapshot_progress {
	void (*fn)(void *opaque, const char *phase, uint64_t done, uint64_t total);
	void *opaque;
};

/*
 * vm_snapshot_quiesce - vm_quiesce() at a moment no vCPU is half-way
 * through entering its nested guest (KVM_STATE_NESTED_RUN_PENDING: Linux
 * 6.1's nested SVM does not save that moment right): if one is, let the
 * VM run for a millisecond and try again, up to 100 times. 0 or -errno
 * (-EAGAIN: it never settled), with the VM running again on failure.
 */
int vm_snapshot_quiesce(struct vm *vm) __attribute__((warn_unused_result));

/*
 * vm_snapshot_save - write the quiesced @vm's state and memory into the
 * directory @dirfd (files created there, fsync'd; the directory too).
 * Returns 0 or -errno with the reason in @why; a full disk is an error,
 * never a short file.
 */
int vm_snapshot_save(struct vm *vm, int dirfd, const struct snapshot_progress *progress,
                     char *why, size_t len) __attribute__((warn_unused_result));

/*
 * vm_snapshot_machine - what the machine section of @vm's state says: RAM,
 * vCPUs, nesting, devices, and this host's CPU as its KVM shows it
 * (vendor, signature). 0 or -errno.
 */
int vm_snapshot_machine(struct vm *vm, struct snapshot_machine *m)
    __attribute__((warn_unused_result));

/*
 * vm_snapshot_write_state - the quiesced @vm's state file (the machine
 * section, then every device's) into @fd with write(2), then fsync.
 * vm_snapshot_save() writes it into a directory; a live migration into a
 * memfd it sends. 0 or -errno.
 */
int vm_snapshot_write_state(struct vm *vm, int fd) __attribute__((warn_unused_result));

/*
 * vm_snapshot_data_pages - mark in @vec (a byte per page) the pages of RAM
 * [@off, @off + @len) (page-aligned, @len at most VM_SNAPSHOT_SCAN_CHUNK)
 * that may hold data: those with memory of their own, in RAM or swapped
 * out (/proc/self/pagemap, open as @pagemap_fd; -1: every page), and for a
 * file-backed RAM those its file has data for. The others read as zero, and
 * reading a hole of a file-backed RAM would allocate it. What a save and a
 * live migration's first pass read.
 */
#define VM_SNAPSHOT_SCAN_CHUNK (2u << 20)
void vm_snapshot_data_pages(const struct vm *vm, int pagemap_fd, uint64_t off, uint64_t len,
                            unsigned char *vec);

/*
 * vm_snapshot_check_cpu - was @m (of the VM @name, "saved" or "migrated"
 * as @verb says) taken on this host's CPU model (@kvm_path is asked)?
 * 0, or -EXDEV with both sides named in @why, or -errno.
 */
int vm_snapshot_check_cpu(const struct snapshot_machine *m, const char *kvm_path,
                          const char *name, const char *verb, char *why, size_t len)
    __attribute__((warn_unused_result));

/* An opened snapshot: its state parsed and checked, its memory file open. */
struct vm_snapshot {
	struct snap_reader reader;
	struct snapshot_machine machine;
	int memory_fd;
};

/*
 * vm_snapshot_open - open and check the snapshot in @dirfd: every section
 * sound, a memory file of the right size, saved on this CPU model (@kvm_path
 * is asked for it). @name is the directory for messages. Returns 0, or
 * -errno with the reason in @why (nothing to close then).
 */
int vm_snapshot_open(int dirfd, const char *name, const char *kvm_path, struct vm_snapshot *s,
                     char *why, size_t len) __attribute__((warn_unused_result));

/*
 * vm_snapshot_check_config - does @cfg describe the machine @s was saved
 * from (vCPUs, memory, nesting)? 0 or -EINVAL with the reason in @why.
 */
int vm_snapshot_check_config(const struct vm_snapshot *s, const struct vm_config *cfg, char *why,
                             size_t len) __attribute__((warn_unused_result));

/*
 * vm_snapshot_restore - build the VM of @cfg in @s's state
 * (vm_create_restored()). Returns 0 or -errno with the reason in @why.
 */
int vm_snapshot_restore(struct vm_snapshot *s, const struct vm_config *cfg, struct vm **out,
                        char *why, size_t len) __attribute__((warn_unused_result));

/* vm_snapshot_close - release @s; twice is harmless. */
void vm_snapshot_close(struct vm_snapshot *s);

/*
 * vm_snapshot_parse - snap_reader_parse() with the schema of a VM snapshot,
 * then decode the machine section into @m. For the fuzz target and
 * vm_snapshot_open(). Returns 0 or -errno with r->error set.
 */
int vm_snapshot_parse(struct snap_reader *r, const void *buf, size_t size, const char *name,
                      struct snapshot_machine *m) __attribute__((warn_unused_result));

#endif
