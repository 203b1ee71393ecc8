/* SPDX-License-Identifier: MIT */
#ifndef NESTVM_CORE_MACHINE_H
#define NESTVM_CORE_MACHINE_H

#include "core/vm.h"

/*
 * The machine model: which devices sit at which ports and addresses
 * (arch/x86/layout.h), and the firmware tables describing them.
 */

/* machine_create_devices - create and register the devices; 0 or -errno. */
int machine_create_devices(struct vm *vm) __attribute__((warn_unused_result));

/* machine_write_acpi - build the ACPI tables at LAYOUT_ACPI; returns the RSDP address or 0. */
uint64_t machine_write_acpi(struct vm *vm);

/*
 * machine_stop_devices - stop every device thread that reads or writes guest
 * memory and close the disk images; before guest memory goes away.
 */
void machine_stop_devices(struct vm *vm);

/*
 * machine_create_virtio, machine_stop_virtio, machine_destroy_virtio - the
 * virtio PCI devices of vm->cfg (core/machine_virtio.c).
 */
int machine_create_virtio(struct vm *vm) __attribute__((warn_unused_result));
void machine_stop_virtio(struct vm *vm);
void machine_destroy_virtio(struct vm *vm);

/*
 * machine_disks_lock - a live migration hands the disk images over: with
 * @take false (the VM quiesced) flush each and drop its lock so that the
 * destination may open it; with @take true take them back (the migration
 * failed). 0 or the first error (-EBUSY: in use elsewhere).
 */
int machine_disks_lock(struct vm *vm, bool take) __attribute__((warn_unused_result));

struct virtio_net_stats;

/*
 * machine_nics_connect - join every NIC of @cfg to its switch now (starting
 * the switch if it is not running), for a caller about to give up the
 * rights that takes (the jailed monitor); the machine then uses these ports.
 * Returns 0 or -errno (logged).
 */
int machine_nics_connect(struct vm_config *cfg) __attribute__((warn_unused_result));

/*
 * machine_nic_attach - put NIC @i on the port socket @fd (taken; -1: none,
 * the link goes down), closing its current one (virtio_net_attach()).
 * -ENOENT if there is no such NIC (@fd is then not taken).
 */
int machine_nic_attach(struct vm *vm, unsigned int i, int fd);

/*
 * machine_nic_stats - the counters and link state of NIC @i (vm->cfg.nics[i])
 * into @out. 0, or -ENOENT when the VM has no such NIC (or its devices are
 * gone). Any thread; takes that device's lock.
 */
int machine_nic_stats(struct vm *vm, unsigned int i, struct virtio_net_stats *out)
    __attribute__((warn_unused_result));

/* machine_destroy_devices - free what machine_create_devices made. */
void machine_destroy_devices(struct vm *vm);

#endif
