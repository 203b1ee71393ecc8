/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the restore() of the legacy devices and the PCI host
 * (core/device.h) on arbitrary saved state, as a snapshot file would bring
 * it. The first byte picks the device (and, for the PCI host, whether slot
 * 0 holds a second function); the rest is the state, restored into a
 * freshly created device as device_list_restore() does it.
 *
 * Checks, besides ASan/UBSan: a refused state comes with -EBADMSG and a
 * reason and leaves the device as it was; an accepted one raised no
 * interrupt, saves back to exactly the same bytes (the format has one
 * spelling per state; the PM timer's count aside, which runs), restores
 * into a second device too, and leaves a device that the guest can then
 * drive (every register read, some written) and reset without harm.
 */
#include "core/device.h"
#include "core/log.h"
#include "devices/legacy/acpi_pm.h"
#include "devices/legacy/i8042.h"
#include "devices/legacy/rtc.h"
#include "devices/legacy/uart_16550.h"
#include "devices/pci/pci_host.h"
#include "fuzz_common.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { DEV_UART, DEV_I8042, DEV_RTC, DEV_ACPI_PM, DEV_PCI_HOST, DEV_NR };

static const struct device_ops *const dev_ops[DEV_NR] = {
    &uart_16550_device_ops, &i8042_device_ops,    &rtc_device_ops,
    &acpi_pm_device_ops,    &pci_host_device_ops,
};

/* Bytes of a saved state that must come back unchanged: all but the PM timer's count. */
static size_t stable_len(unsigned int which, size_t len)
{
	return which == DEV_ACPI_PM && len >= 6 ? 6 : len;
}

struct target {
	unsigned int which;
	void *dev;
	struct pci_device fn1; /* slot 0 function 1, in the PCI host variant */
	unsigned int irq_calls;
};

static void irq_set(void *opaque, unsigned int gsi, int level)
{
	struct target *t = opaque;

	FZ_CHECK(gsi < 16 && (level == 0 || level == 1));
	t->irq_calls++;
}

static time_t fixed_now(void *opaque)
{
	(void)opaque;
	return 1700000000; /* runs are repeatable */
}

static void target_create(struct target *t, unsigned int which, bool second_fn)
{
	struct irq_line line = {.set = irq_set, .opaque = t, .gsi = 4};
	struct uart_16550_config uc = {.out_fd = -1, .irq = &line};
	struct i8042_config kc = {.kbd_irq = &line};
	struct rtc_config rc = {.now = fixed_now};
	struct acpi_pm_config pc = {.sci = &line};
	struct pci_host_config hc = {.mmio_base = 0xc0000000};
	struct uart_16550 *uart;
	struct i8042 *kbc;
	struct rtc *rtc;
	struct acpi_pm *pm;
	struct pci_host *host;

	memset(t, 0, sizeof(*t));
	t->which = which;
	switch (which) {
	case DEV_UART:
		FZ_CHECK(uart_16550_create(&uc, &uart) == 0);
		t->dev = uart;
		break;
	case DEV_I8042:
		FZ_CHECK(i8042_create(&kc, &kbc) == 0);
		t->dev = kbc;
		break;
	case DEV_RTC:
		FZ_CHECK(rtc_create(&rc, &rtc) == 0);
		t->dev = rtc;
		break;
	case DEV_ACPI_PM:
		FZ_CHECK(acpi_pm_create(&pc, &pm) == 0);
		t->dev = pm;
		break;
	default:
		FZ_CHECK(pci_host_create(&hc, &host) == 0);
		t->dev = host;
		if (second_fn) {
			pci_device_init(&t->fn1, 0x1234, 0x0001, 0xff0000, 0);
			t->fn1.devfn = PCI_DEVFN(0, 1);
			FZ_CHECK(pci_host_add_device(host, &t->fn1) == 0);
		}
		break;
	}
}

static void target_save(struct target *t, struct dev_state *out)
{
	memset(out, 0, sizeof(*out));
	FZ_CHECK(dev_ops[t->which]->save(t->dev, out) == 0 && out->error == 0);
}

/* As device_restore_one(): restore, then no bytes may be left over. */
static int target_restore(struct target *t, const uint8_t *buf, size_t len, char *why)
{
	struct dev_state_in in;
	int r;

	dsi_init(&in, buf, len);
	r = dev_ops[t->which]->restore(t->dev, &in, dev_ops[t->which]->version);
	if (r == 0)
		r = dsi_finish(&in);
	memcpy(why, in.why, sizeof(in.why));
	return r;
}

/* The guest at work on the restored device: every register read, a few written. */
static void target_drive(struct target *t)
{
	uint8_t b[4];

	switch (t->which) {
	case DEV_UART:
		for (unsigned int round = 0; round < 2; round++) {
			for (uint64_t reg = 0; reg < UART_16550_NR_REGS; reg++)
				uart_16550_io(t->dev, reg, b, 1, false);
			for (unsigned int i = 0; i < UART_16550_FIFO_SIZE + 1; i++)
				uart_16550_io(t->dev, UART_REG_RBR, b, 1, false);
			uart_16550_receive(t->dev, "in", 2);
			b[0] = UART_MCR_LOOP | UART_MCR_OUT2;
			uart_16550_io(t->dev, UART_REG_MCR, b, 1, true);
			b[0] = 'x';
			uart_16550_io(t->dev, UART_REG_THR, b, 1, true);
		}
		break;
	case DEV_I8042:
		for (unsigned int i = 0; i < I8042_KBD_QUEUE_SIZE + 2; i++) {
			i8042_cmd_io(t->dev, 0, b, 1, false);
			i8042_data_io(t->dev, 0, b, 1, false);
		}
		b[0] = 0x55; /* the data byte of whatever command was pending */
		i8042_data_io(t->dev, 0, b, 1, true);
		b[0] = I8042_CMD_READ_RAM;
		i8042_cmd_io(t->dev, 0, b, 1, true);
		i8042_data_io(t->dev, 0, b, 1, false);
		break;
	case DEV_RTC:
		rtc_io(t->dev, 1, b, 1, false); /* at the restored index */
		for (unsigned int i = 0; i < RTC_CMOS_SIZE; i++) {
			b[0] = (uint8_t)i;
			rtc_io(t->dev, 0, b, 1, true);
			rtc_io(t->dev, 1, b, 1, false);
		}
		b[0] = RTC_REG_B;
		rtc_io(t->dev, 0, b, 1, true);
		b[0] = RTC_B_24H; /* SET cleared: the clock starts from the fields */
		rtc_io(t->dev, 1, b, 1, true);
		break;
	case DEV_ACPI_PM:
		acpi_pm_evt_io(t->dev, 0, b, 4, false);
		acpi_pm_cnt_io(t->dev, 0, b, 2, false);
		acpi_pm_tmr_io(t->dev, 0, b, 4, false);
		memset(b, 0xff, sizeof(b));
		acpi_pm_evt_io(t->dev, 0, b, 2, true); /* clear every status bit */
		break;
	default:
		pci_host_cfc_io(t->dev, 0, b, 4, false); /* at the restored address */
		for (uint32_t reg = 0; reg < PCI_CFG_SPACE_SIZE; reg += 4)
			(void)pci_host_config_read(t->dev, 0, reg, 4);
		pci_host_config_write(t->dev, 0, PCI_CFG_COMMAND, 4, 0xffffffff);
		break;
	}
}

static void target_destroy(struct target *t)
{
	dev_ops[t->which]->destroy(t->dev);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct target t, again;
	struct dev_state before, after;
	char why[sizeof(((struct dev_state_in *)0)->why)];
	unsigned int which;
	bool second_fn;
	int r;

	if (size < 1)
		return 0;
	log_set_level(LOG_NONE);
	which = data[0] % DEV_NR;
	second_fn = data[0] / DEV_NR & 1;
	data++;
	size--;

	target_create(&t, which, second_fn);
	target_save(&t, &before);
	r = target_restore(&t, data, size, why);
	FZ_CHECK(t.irq_calls == 0); /* a restore raises nothing, accepted or not */
	target_save(&t, &after);
	if (r < 0) {
		FZ_CHECK(r == -EBADMSG && why[0] != '\0');
		FZ_CHECK(before.len == after.len &&
		         !memcmp(before.buf, after.buf, stable_len(which, before.len)));
	} else {
		FZ_CHECK(after.len == size && !memcmp(after.buf, data, stable_len(which, size)));
		/* The same bytes into a second device: accepted the same. */
		target_create(&again, which, second_fn);
		FZ_CHECK(target_restore(&again, after.buf, after.len, why) == 0);
		FZ_CHECK(again.irq_calls == 0);
		target_destroy(&again);
		target_drive(&t);
		dev_ops[which]->reset(t.dev);
		target_drive(&t);
	}
	ds_release(&before);
	ds_release(&after);
	target_destroy(&t);
	return 0;
}
