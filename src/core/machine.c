/* SPDX-License-Identifier: MIT */
/*
 * The nestvm x86 machine: a PC-like set of legacy devices on the port bus,
 * a PCI host bridge with ECAM, and ACPI tables that describe them.
 * Addresses and ports come from arch/x86/layout.h.
 */
#include "core/machine.h"

#include "arch/x86/acpi.h"
#include "arch/x86/layout.h"
#include "backends/console_in.h"
#include "core/exit_status.h"
#include "core/fsutil.h"
#include "core/irq.h"
#include "core/device.h"
#include "core/log.h"
#include "devices/legacy/acpi_pm.h"
#include "devices/legacy/i8042.h"
#include "devices/legacy/rtc.h"
#include "devices/legacy/uart_16550.h"
#include "devices/pci/pci_host.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

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

/* Register a device range; a failure here is a layout bug, so say which. */
static int machine_add(struct bus *bus, uint64_t base, uint64_t len, bus_io_fn fn, void *opaque,
		       const char *name)
{
	int r = bus_add_range(bus, base, len, fn, opaque, name);

	if (r < 0)
		log_error("cannot place device %s at 0x%llx: %s", name, (unsigned long long)base,
			  strerror(-r));
	return r;
}

/* Drive a GSI of the in-kernel IOAPIC/PIC (KVM_IRQ_LINE). */
static void machine_irq_set(void *opaque, unsigned int gsi, int level)
{
	struct vm *vm = opaque;
	struct kvm_irq_level irq = {.irq = gsi, .level = level};

	if (kvm_ioctl(vm->fd, KVM_IRQ_LINE, &irq) < 0)
		log_debug("KVM_IRQ_LINE gsi %u failed", gsi);
}

static void machine_i8042_reset(void *opaque)
{
	vm_request_stop(opaque, NESTVM_EXIT_REBOOT, "guest requested a reset (i8042)");
}

/* PM1a_CNT.SLP_EN: S5 is power off; nestvm implements no other sleep state. */
static void machine_acpi_sleep(void *opaque, unsigned int slp_typ)
{
	if (slp_typ == ACPI_S5_SLP_TYP)
		vm_request_stop(opaque, NESTVM_EXIT_POWEROFF, "guest powered off (ACPI S5)");
	else
		log_warn("guest asked for ACPI sleep type %u, which nestvm does not support",
			 slp_typ);
}

static void machine_uart_rx_ready(void *opaque)
{
	struct vm *vm = opaque;
	uint64_t one = 1;

	if (write(vm->console_wake_fd, &one, sizeof(one)) < 0)
		log_debug("console wake-up lost");
}

/*
 * COM1 and its input, two devices: "com1", the UART, then "console-in", the
 * thread that copies stdin (or console_in_fd) into it, registered after it
 * so that the list destroys (joins) it first. console-in exists without
 * input too (no thread), so that the device list does not depend on the
 * console's kind. vm->console_wake_fd is the eventfd the thread polls; the
 * UART writes it when its FIFO has room again.
 */
static int machine_create_console(struct vm *vm)
{
	struct irq_line irq = {.set = machine_irq_set, .opaque = vm, .gsi = IRQ_COM1};
	struct uart_16550_config cfg = {.out_fd = -1, .irq = &irq};
	struct uart_16550 *uart;
	struct console_in *ci;
	int in_fd = -1, r;

	switch (vm->cfg.console) {
	case VM_CONSOLE_STDIO:
		cfg.out_fd = STDOUT_FILENO;
		in_fd = STDIN_FILENO;
		break;
	case VM_CONSOLE_FILE:
		/* Emptied only if it is ours: never through a symlink or into another's file. */
		r = fs_create_file(vm->cfg.console_path, 0644, FS_TRUNC | FS_APPEND);
		if (r < 0) {
			log_error("console file '%s': %s", vm->cfg.console_path, fs_strerror(r));
			return r;
		}
		vm->console_fd = r;
		cfg.out_fd = vm->console_fd;
		break;
	case VM_CONSOLE_FD:
		cfg.out_fd = vm->cfg.console_out_fd;
		in_fd = vm->cfg.console_in_fd;
		break;
	case VM_CONSOLE_NONE:
		break;
	}
	if (in_fd >= 0) {
		vm->console_wake_fd = eventfd(0, EFD_CLOEXEC);
		if (vm->console_wake_fd < 0)
			return -errno;
		cfg.rx_ready = machine_uart_rx_ready;
		cfg.rx_ready_opaque = vm;
	}
	r = uart_16550_create(&cfg, &uart);
	if (r == 0)
		r = device_register(&vm->devices, "com1", &uart_16550_device_ops, uart);
	if (r < 0)
		return r;
	vm->uart = uart;
	r = console_in_create(uart, in_fd, vm->console_wake_fd, &ci);
	if (r == 0)
		r = device_register(&vm->devices, "console-in", &console_in_device_ops, ci);
	if (r == 0)
		r = machine_add(&vm->pio, PORT_COM1, UART_16550_NR_REGS, uart_16550_io, uart,
				"com1");
	return r;
}

/* The i8042 at 0x60/0x64: its reset line reboots the VM. */
static int machine_create_i8042(struct vm *vm)
{
	struct irq_line kbd = {.set = machine_irq_set, .opaque = vm, .gsi = IRQ_I8042_KBD};
	struct i8042_config cfg = {
		.reset = machine_i8042_reset, .reset_opaque = vm, .kbd_irq = &kbd};
	struct i8042 *kbc;
	int r;

	r = i8042_create(&cfg, &kbc);
	if (r == 0)
		r = device_register(&vm->devices, "i8042", &i8042_device_ops, kbc);
	if (r < 0)
		return r;
	vm->i8042 = kbc;
	r = machine_add(&vm->pio, PORT_I8042_DATA, I8042_DATA_PORT_LEN, i8042_data_io, kbc,
			"i8042");
	if (r == 0)
		r = machine_add(&vm->pio, PORT_I8042_CMD, I8042_CMD_PORT_LEN, i8042_cmd_io, kbc,
				"i8042");
	return r;
}

static int machine_create_rtc(struct vm *vm)
{
	struct rtc *rtc;
	int r;

	r = rtc_create(NULL, &rtc);
	if (r == 0)
		r = device_register(&vm->devices, "rtc", &rtc_device_ops, rtc);
	if (r < 0)
		return r;
	vm->rtc = rtc;
	return machine_add(&vm->pio, PORT_RTC, RTC_PORT_LEN, rtc_io, rtc, "rtc");
}

/* The ACPI PM1a event and control blocks and the PM timer; S5 powers off. */
static int machine_create_pm(struct vm *vm)
{
	struct irq_line sci = {.set = machine_irq_set, .opaque = vm, .gsi = IRQ_ACPI_SCI};
	struct acpi_pm_config cfg = {.sci = &sci, .sleep = machine_acpi_sleep, .opaque = vm};
	struct acpi_pm *pm;
	int r;

	r = acpi_pm_create(&cfg, &pm);
	if (r == 0)
		r = device_register(&vm->devices, "acpi-pm", &acpi_pm_device_ops, pm);
	if (r < 0)
		return r;
	vm->pm = pm;
	r = machine_add(&vm->pio, PORT_ACPI_PM1A_EVT, ACPI_PM1_EVT_BLK_LEN, acpi_pm_evt_io, pm,
			"pm1a-evt");
	if (r == 0)
		r = machine_add(&vm->pio, PORT_ACPI_PM1A_CNT, ACPI_PM1_CNT_BLK_LEN, acpi_pm_cnt_io,
				pm, "pm1a-cnt");
	if (r == 0)
		r = machine_add(&vm->pio, PORT_ACPI_PM_TMR, ACPI_PM_TMR_BLK_LEN, acpi_pm_tmr_io, pm,
				"pm-tmr");
	return r;
}

/*
 * PCI bus 0: configuration mechanism #1 (whose 0xCF8 range also holds the
 * 0xCF9 reset register), ECAM, and the 32-bit BAR window.
 */
static int machine_create_pci(struct vm *vm)
{
	struct pci_host_config cfg = {
		.cf9_io = machine_reset_io, .cf9_opaque = vm, .mmio_base = LAYOUT_PCI_MMIO32};
	struct pci_host *pci;
	int r;

	r = pci_host_create(&cfg, &pci);
	if (r == 0)
		r = device_register(&vm->devices, "pci-host", &pci_host_device_ops, pci);
	if (r < 0)
		return r;
	vm->pci = pci;
	r = machine_add(&vm->pio, PORT_PCI_CONFIG_ADDR, PCI_CONFIG_PORT_LEN, pci_host_cf8_io, pci,
			"pci-cf8");
	if (r == 0)
		r = machine_add(&vm->pio, PORT_PCI_CONFIG_DATA, PCI_CONFIG_PORT_LEN,
				pci_host_cfc_io, pci, "pci-cfc");
	if (r == 0)
		r = machine_add(&vm->mmio, LAYOUT_PCI_ECAM, LAYOUT_PCI_ECAM_SIZE, pci_host_ecam_io,
				pci, "pci-ecam");
	if (r == 0)
		r = machine_add(&vm->mmio, LAYOUT_PCI_MMIO32, LAYOUT_PCI_MMIO32_SIZE,
				pci_host_mmio_io, pci, "pci-mmio32");
	return r;
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

/*
 * Devices that have state or threads go into vm->devices in creation order
 * (com1, console-in, i8042, rtc, acpi-pm, pci-host, then the virtio
 * functions), which is the order their state is saved and restored in: keep
 * it stable, a snapshot's devices must match the list name for name.
 */
int machine_create_devices(struct vm *vm)
{
	int r;

	r = machine_create_console(vm);
	if (r == 0)
		r = machine_create_i8042(vm);
	if (r == 0)
		r = machine_create_rtc(vm);
	if (r == 0)
		r = machine_create_pm(vm);
	if (r == 0)
		r = machine_add(&vm->pio, PORT_DEBUG_EXIT, 4, machine_debug_exit_io, vm, "debug-exit");
	if (r == 0)
		r = machine_create_pci(vm);
	if (r == 0)
		r = machine_create_virtio(vm);
	if (r == 0)
		r = machine_add(&vm->pio, PORT_POST, 1, machine_ignore_io, vm, "post");
	return r;
}

void machine_stop_devices(struct vm *vm)
{
	machine_stop_virtio(vm);
}

void machine_destroy_devices(struct vm *vm)
{
	/*
	 * The list owns what is registered and destroys it last created first,
	 * so console-in (its thread joined) goes before the UART it feeds.
	 */
	device_list_destroy(&vm->devices);
	vm->uart = NULL;
	vm->i8042 = NULL;
	vm->rtc = NULL;
	vm->pm = NULL;
	vm->pci = NULL;
	/* The virtio functions went with the list; this frees machine_virtio's own record. */
	machine_destroy_virtio(vm);
	if (vm->console_wake_fd >= 0)
		close(vm->console_wake_fd);
	vm->console_wake_fd = -1;
	if (vm->console_fd >= 0)
		close(vm->console_fd);
	vm->console_fd = -1;
}
