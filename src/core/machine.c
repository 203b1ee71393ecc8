/* SPDX-License-Identifier: MIT */
/*
 * The nestvm x86 machine: a PC-like set of legacy devices on the port bus,
 * a PCI host bridge with ECAM, and ACPI tables that describe them.
 * Addresses and ports come from arch/x86/layout.h.
 */
#include "core/machine.h"

#include "arch/x86/acpi.h"
#include "arch/x86/layout.h"
#include "core/exit_status.h"
#include "core/log.h"

#include <errno.h>
#include <string.h>

/* FADT reset register value and the bit of port 0xCF9 that resets the CPU. */
#define RESET_CF9_CPU_RESET 0x04

/* Debug exit: a 32-bit write ends the VM with the value as exit status. */
static void machine_debug_exit_io(void *opaque, uint64_t offset, void *data, uint32_t len,
				  bool is_write)
{
	struct vm *vm = opaque;
	uint32_t value = 0;

	(void)offset;
	if (!is_write) {
		memset(data, 0, len);
		return;
	}
	memcpy(&value, data, len < sizeof(value) ? len : sizeof(value));
	vm_request_stop(vm, value & 0xff, "guest wrote to the debug-exit port");
}

static void machine_reset_io(void *opaque, uint64_t offset, void *data, uint32_t len,
			     bool is_write)
{
	struct vm *vm = opaque;

	(void)offset;
	if (!is_write) {
		memset(data, 0, len);
		return;
	}
	if (*(uint8_t *)data & RESET_CF9_CPU_RESET)
		vm_request_stop(vm, NESTVM_EXIT_REBOOT, "guest requested a reset (port 0xcf9)");
}

/* Port 0x80 (POST codes, I/O delay): accepted and ignored. */
static void machine_ignore_io(void *opaque, uint64_t offset, void *data, uint32_t len,
			      bool is_write)
{
	(void)opaque;
	(void)offset;
	if (!is_write)
		memset(data, 0xff, len);
}

uint64_t machine_write_acpi(struct vm *vm)
{
	struct acpi_config cfg = {
		.nr_cpus = vm->cfg.cpus,
		.ecam_base = LAYOUT_PCI_ECAM,
		.ecam_end_bus = 0,
		.mmio32_base = LAYOUT_PCI_MMIO32,
		.mmio32_size = LAYOUT_PCI_MMIO32_SIZE,
	};
	void *buf = guest_mem_ptr(&vm->mem, LAYOUT_ACPI, LAYOUT_ACPI_SIZE);
	ssize_t n;

	if (!buf)
		return 0;
	n = acpi_build(buf, LAYOUT_ACPI_SIZE, LAYOUT_ACPI, &cfg);
	if (n < 0) {
		log_error("cannot build ACPI tables: %s", strerror((int)-n));
		return 0;
	}
	return LAYOUT_ACPI;
}

int machine_create_devices(struct vm *vm)
{
	int r;

	r = bus_add_range(&vm->pio, PORT_DEBUG_EXIT, 4, machine_debug_exit_io, vm, "debug-exit");
	if (r == 0)
		r = bus_add_range(&vm->pio, PORT_RESET, 1, machine_reset_io, vm, "reset");
	if (r == 0)
		r = bus_add_range(&vm->pio, PORT_POST, 1, machine_ignore_io, vm, "post");
	if (r < 0)
		log_error("cannot register devices: %s", strerror(-r));
	return r;
}

void machine_destroy_devices(struct vm *vm)
{
	(void)vm;
}
