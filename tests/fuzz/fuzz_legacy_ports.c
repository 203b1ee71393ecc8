/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the legacy devices a guest reaches with port I/O and
 * the PCI host's configuration mechanisms: UART 16550 (COM1), RTC/CMOS,
 * i8042, ACPI PM1 event/control and PM timer, the PCI host's CF8/CFC (and
 * the CF9 reset register inside it), ECAM and the MMIO window that routes
 * BAR accesses. They sit on a port I/O bus and an MMIO bus as
 * core/machine.c places them, and the input is a sequence of records
 *
 *   kind (1 byte), address (2 or 4), size selector (1), value (4)
 *
 * each one access (read or write, 1/2/4/8 bytes, mostly at the devices'
 * ports, sometimes anywhere), or host-side input to the UART, a power
 * button press, or a save/restore of the devices' state (the guest-visible
 * state a migration would carry: a round trip must be accepted and change
 * nothing; a restore of arbitrary bytes must be refused or accepted whole).
 *
 * One PCI function besides the host bridge: a device with a 32-bit and a
 * 64-bit memory BAR, an I/O BAR and a capability, whose BAR accesses are
 * checked to arrive inside the BAR. Everything is created for each input.
 */
#include "arch/x86/layout.h"
#include "core/bus.h"
#include "core/log.h"
#include "devices/legacy/acpi_pm.h"
#include "devices/legacy/i8042.h"
#include "devices/legacy/rtc.h"
#include "devices/legacy/uart_16550.h"
#include "devices/pci/pci_host.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_RECORDS 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);   \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

struct machine {
	struct bus pio, mmio;
	struct uart_16550 *uart;
	struct rtc *rtc;
	struct i8042 *kbc;
	struct acpi_pm *pm;
	struct pci_host *host;
	struct pci_device dev;
	unsigned int resets, sleeps, cf9_writes;
	int irq_level[16];
};

static void irq_set(void *opaque, unsigned int gsi, int level)
{
	struct machine *m = opaque;

	CHECK(gsi < 16 && (level == 0 || level == 1));
	m->irq_level[gsi] = level;
}

static void kbc_reset(void *opaque)
{
	((struct machine *)opaque)->resets++;
}

static void pm_sleep(void *opaque, unsigned int slp_typ)
{
	CHECK(slp_typ < 8);
	((struct machine *)opaque)->sleeps++;
}

static void cf9_io(void *opaque, uint64_t offset, void *data, uint32_t len, bool is_write)
{
	CHECK(offset == 0 && len == 1);
	if (is_write)
		((struct machine *)opaque)->cf9_writes++;
	else
		*(uint8_t *)data = 0;
}

static time_t fixed_now(void *opaque)
{
	(void)opaque;
	return 1700000000; /* a fixed clock: runs are repeatable */
}

/* The test function's BARs: every access must arrive inside the BAR it names. */
static uint8_t bar_regs[6][256];

static void dev_bar_io(struct pci_device *dev, unsigned int bar, uint64_t offset, void *data,
                       uint32_t len, bool is_write)
{
	CHECK(bar < PCI_NUM_BARS && dev->bars[bar].type != PCI_BAR_UNUSED);
	CHECK(len >= 1 && len <= 8 && offset < dev->bars[bar].size &&
	      len <= dev->bars[bar].size - offset);
	if (is_write)
		memcpy(&bar_regs[bar][offset % 248], data, len);
	else
		memcpy(data, &bar_regs[bar][offset % 248], len);
}

static const struct pci_device_ops dev_ops = {.bar_io = dev_bar_io};

static void machine_build(struct machine *m, int null_fd)
{
	static struct irq_line lines[16];
	struct uart_16550_config uc = {.out_fd = null_fd, .irq = &lines[4]};
	struct rtc_config rc = {.now = fixed_now};
	struct i8042_config kc = {.reset = kbc_reset, .reset_opaque = m, .kbd_irq = &lines[1]};
	struct acpi_pm_config pc = {.sci = &lines[9], .sleep = pm_sleep, .opaque = m};
	struct pci_host_config hc = {
	    .cf9_io = cf9_io, .cf9_opaque = m, .mmio_base = LAYOUT_PCI_MMIO32};
	int cap;

	memset(m, 0, sizeof(*m));
	for (unsigned int i = 0; i < 16; i++)
		lines[i] = (struct irq_line){.set = irq_set, .opaque = m, .gsi = i};
	CHECK(uart_16550_create(&uc, &m->uart) == 0);
	CHECK(rtc_create(&rc, &m->rtc) == 0);
	CHECK(i8042_create(&kc, &m->kbc) == 0);
	CHECK(acpi_pm_create(&pc, &m->pm) == 0);
	CHECK(pci_host_create(&hc, &m->host) == 0);

	pci_device_init(&m->dev, 0x1234, 0x5678, 0xff0000, 1);
	m->dev.ops = &dev_ops;
	m->dev.devfn = PCI_DEVFN(3, 0);
	CHECK(pci_device_set_bar(&m->dev, 0, PCI_BAR_MEM32, 4096, false) == 0);
	CHECK(pci_device_set_bar(&m->dev, 2, PCI_BAR_MEM64, 1 << 16, true) == 0);
	CHECK(pci_device_set_bar(&m->dev, 4, PCI_BAR_IO, 32, false) == 0);
	pci_device_set_bar_address(&m->dev, 0, LAYOUT_PCI_MMIO32 + 0x10000);
	pci_device_set_bar_address(&m->dev, 2, LAYOUT_PCI_MMIO32 + 0x20000);
	cap = pci_device_add_capability(&m->dev, 0x09, 16);
	CHECK(cap >= 0x40);
	memset(m->dev.wmask + cap + 4, 0xff, 8); /* a few guest-writable bytes */
	CHECK(pci_host_add_device(m->host, &m->dev) == 0);

	CHECK(bus_add_range(&m->pio, PORT_COM1, UART_16550_NR_REGS, uart_16550_io, m->uart,
	                    "com1") == 0);
	CHECK(bus_add_range(&m->pio, PORT_RTC, 2, rtc_io, m->rtc, "rtc") == 0);
	CHECK(bus_add_range(&m->pio, PORT_I8042_DATA, 1, i8042_data_io, m->kbc, "i8042") == 0);
	CHECK(bus_add_range(&m->pio, PORT_I8042_CMD, 1, i8042_cmd_io, m->kbc, "i8042") == 0);
	CHECK(bus_add_range(&m->pio, PORT_ACPI_PM1A_EVT, ACPI_PM1_EVT_BLK_LEN, acpi_pm_evt_io,
	                    m->pm, "pm1a-evt") == 0);
	CHECK(bus_add_range(&m->pio, PORT_ACPI_PM1A_CNT, ACPI_PM1_CNT_BLK_LEN, acpi_pm_cnt_io,
	                    m->pm, "pm1a-cnt") == 0);
	CHECK(bus_add_range(&m->pio, PORT_ACPI_PM_TMR, ACPI_PM_TMR_BLK_LEN, acpi_pm_tmr_io, m->pm,
	                    "pm-tmr") == 0);
	CHECK(bus_add_range(&m->pio, PORT_PCI_CONFIG_ADDR, PCI_CONFIG_PORT_LEN, pci_host_cf8_io,
	                    m->host, "pci-addr") == 0);
	CHECK(bus_add_range(&m->pio, PORT_PCI_CONFIG_DATA, PCI_CONFIG_PORT_LEN, pci_host_cfc_io,
	                    m->host, "pci-data") == 0);
	CHECK(bus_add_range(&m->mmio, LAYOUT_PCI_ECAM, LAYOUT_PCI_ECAM_SIZE, pci_host_ecam_io,
	                    m->host, "ecam") == 0);
	CHECK(bus_add_range(&m->mmio, LAYOUT_PCI_MMIO32, LAYOUT_PCI_MMIO32_SIZE, pci_host_mmio_io,
	                    m->host, "pci-mmio") == 0);
}

static void machine_free(struct machine *m)
{
	bus_destroy(&m->pio);
	bus_destroy(&m->mmio);
	uart_16550_destroy(m->uart);
	rtc_destroy(m->rtc);
	i8042_destroy(m->kbc);
	acpi_pm_destroy(m->pm);
	pci_host_destroy(m->host);
}

/* Ports worth hitting: every register of every device, and the bytes around them. */
static const uint16_t ports[] = {
    0x60,  0x61,  0x64,  0x70,  0x71,  0x72,  0x3f8, 0x3f9, 0x3fa, 0x3fb, 0x3fc, 0x3fd,
    0x3fe, 0x3ff, 0x600, 0x601, 0x602, 0x603, 0x604, 0x605, 0x606, 0x608, 0x609, 0x60a,
    0x60b, 0xcf8, 0xcf9, 0xcfa, 0xcfb, 0xcfc, 0xcfd, 0xcfe, 0xcff, 0x3f7,
};

static uint32_t get(const uint8_t *p, unsigned int n)
{
	uint32_t v = 0;

	for (unsigned int i = 0; i < n; i++)
		v |= (uint32_t)p[i] << (8 * i);
	return v;
}

/* A save/restore round trip must be accepted and leave the state as it was. */
static void check_round_trip(struct machine *m)
{
	struct uart_16550_state us, us2;
	struct rtc_state rs, rs2;
	struct i8042_state ks, ks2;
	struct acpi_pm_state ps, ps2;

	memset(&us, 0, sizeof(us));
	memset(&us2, 0, sizeof(us2));
	memset(&rs, 0, sizeof(rs));
	memset(&rs2, 0, sizeof(rs2));
	memset(&ks, 0, sizeof(ks));
	memset(&ks2, 0, sizeof(ks2));
	memset(&ps, 0, sizeof(ps));
	memset(&ps2, 0, sizeof(ps2));
	uart_16550_save(m->uart, &us);
	CHECK(uart_16550_restore(m->uart, &us) == 0);
	uart_16550_save(m->uart, &us2);
	CHECK(!memcmp(&us, &us2, sizeof(us)));
	rtc_save(m->rtc, &rs);
	CHECK(rtc_restore(m->rtc, &rs) == 0);
	rtc_save(m->rtc, &rs2);
	CHECK(!memcmp(&rs, &rs2, sizeof(rs)));
	i8042_save(m->kbc, &ks);
	CHECK(i8042_restore(m->kbc, &ks) == 0);
	i8042_save(m->kbc, &ks2);
	CHECK(!memcmp(&ks, &ks2, sizeof(ks)));
	acpi_pm_save(m->pm, &ps);
	CHECK(acpi_pm_restore(m->pm, &ps) == 0);
	acpi_pm_save(m->pm, &ps2);
	CHECK(ps.sts == ps2.sts && ps.en == ps2.en && ps.cnt == ps2.cnt);
}

/* Restore state made of input bytes: refused (nothing changes) or taken. */
static void fuzz_restore(struct machine *m, unsigned int which, const uint8_t *p, size_t n)
{
	union {
		struct uart_16550_state u;
		struct rtc_state r;
		struct i8042_state k;
		struct acpi_pm_state a;
	} in, before, after;
	size_t len;
	int r;

	memset(&in, 0, sizeof(in));
	memset(&before, 0, sizeof(before));
	memset(&after, 0, sizeof(after));
	switch (which % 4) {
	case 0:
		len = sizeof(in.u);
		memcpy(&in, p, n < len ? n : len);
		uart_16550_save(m->uart, &before.u);
		r = uart_16550_restore(m->uart, &in.u);
		uart_16550_save(m->uart, &after.u);
		break;
	case 1:
		len = sizeof(in.r);
		memcpy(&in, p, n < len ? n : len);
		rtc_save(m->rtc, &before.r);
		r = rtc_restore(m->rtc, &in.r);
		rtc_save(m->rtc, &after.r);
		break;
	case 2:
		len = sizeof(in.k);
		memcpy(&in, p, n < len ? n : len);
		i8042_save(m->kbc, &before.k);
		r = i8042_restore(m->kbc, &in.k);
		i8042_save(m->kbc, &after.k);
		break;
	default:
		len = sizeof(in.a);
		memcpy(&in, p, n < len ? n : len);
		acpi_pm_save(m->pm, &before.a);
		r = acpi_pm_restore(m->pm, &in.a);
		acpi_pm_save(m->pm, &after.a);
		before.a.tmr = after.a.tmr = 0; /* the timer runs */
		break;
	}
	CHECK(r == 0 || r == -EINVAL);
	if (r < 0)
		CHECK(!memcmp(&before, &after, sizeof(before)));
	check_round_trip(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int null_fd = -1;
	struct machine m;
	size_t off = 0;
	unsigned int records = 0;

	if (null_fd < 0) {
		log_set_level(LOG_NONE);
		null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
		CHECK(null_fd >= 0);
	}
	machine_build(&m, null_fd);
	/* Records of 1 + 2 + 1 + 4 bytes. */
	while (off + 8 <= size && records++ < MAX_RECORDS) {
		const uint8_t *r = data + off;
		uint8_t kind = r[0], sz = r[3];
		uint32_t len = 1U << (sz & 3), value = get(r + 4, 4);
		bool is_write = sz & 0x80;
		uint8_t buf[8];

		off += 8;
		memset(buf, 0, sizeof(buf));
		memcpy(buf, &value, 4);
		if (len == 8 && is_write)
			memcpy(buf + 4, &value, 4);
		switch (kind % 8) {
		case 0:
		case 1:
		case 2: { /* port I/O at a device's port */
			uint16_t port = ports[get(r + 1, 1) % (sizeof(ports) / sizeof(ports[0]))];

			if (len == 8)
				len = 4;
			bus_dispatch(&m.pio, port + (r[2] & 3) * (kind == 2), buf, len, is_write);
			break;
		}
		case 3: /* port I/O anywhere */
			bus_dispatch(&m.pio, get(r + 1, 2), buf, len == 8 ? 4 : len, is_write);
			break;
		case 4: { /* ECAM: mostly the host bridge and the test function */
			uint32_t devfn =
			    (r[1] & 0x80) ? r[1] & 0x7f : ((r[1] & 1) ? PCI_DEVFN(3, 0) : 0);
			uint64_t a = LAYOUT_PCI_ECAM + ((uint64_t)devfn << 12) +
			             (get(r + 1, 2) >> 4) % PCI_CFG_SPACE_EXP_SIZE;

			bus_dispatch(&m.mmio, a, buf, len, is_write);
			break;
		}
		case 5: /* the MMIO window: the BARs and around them */
			bus_dispatch(&m.mmio, LAYOUT_PCI_MMIO32 + get(r + 1, 3) % 0x40000, buf, len,
			             is_write);
			break;
		case 6: /* host input on the serial line */
			uart_16550_receive(m.uart, r + 4, 1 + r[1] % 4);
			break;
		default:
			switch (r[1] % 4) {
			case 0:
				acpi_pm_press_power_button(m.pm);
				break;
			case 1:
				check_round_trip(&m);
				break;
			default: { /* a restore of the bytes that follow (consumed) */
				size_t n = size - off < 96 ? size - off : 96;

				fuzz_restore(&m, r[2], data + off, n);
				off += n;
				break;
			}
			}
			break;
		}
	}
	/* The host bridge is always there. */
	CHECK(pci_host_config_read(m.host, 0, PCI_CFG_VENDOR_ID, 2) == PCI_HOST_BRIDGE_VENDOR);
	check_round_trip(&m);
	machine_free(&m);
	return 0;
}
