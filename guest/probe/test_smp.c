/* SPDX-License-Identifier: MIT */
/*
 * test=smp [cpus=N]: start every processor the MADT lists.
 *
 * Counts the enabled local APICs in the MADT (ACPI 6.5 §5.2.12), copies the
 * real-mode trampoline from head.S to AP_TRAMPOLINE and sends each AP
 * INIT, SIPI, SIPI through the xAPIC ICR (Intel SDM vol. 3A §8.4.4.1,
 * §10.6.1). Each AP enters long mode, sets its local APIC ID in ap_seen,
 * checks that CPUID.1 reports the same initial APIC ID, counts itself in
 * ap_count and halts. PASS when every AP checked in with a consistent ID,
 * and their number plus the BSP equals cpus=N if given.
 *
 * smp_start() is that start-up for other tests too (test=memgen): given an
 * entry function, each AP then runs it at CPL3 in a slot of its own.
 */
#include "probe.h"

#define MADT_LAPIC_ADDR 36
#define MADT_ENTRIES 44
#define MADT_TYPE_LAPIC 0
#define MADT_TYPE_LAPIC_OVERRIDE 5
#define MADT_TYPE_X2APIC 9
#define MADT_LAPIC_ENABLED (1u << 0)

#define APIC_SVR 0xf0
#define APIC_SVR_ENABLE (1u << 8)
#define APIC_SPURIOUS_VECTOR 0xff
#define APIC_ICR_LO 0x300
#define APIC_ICR_HI 0x310
#define APIC_ICR_INIT 0x500
#define APIC_ICR_STARTUP 0x600
#define APIC_ICR_BUSY (1u << 12)
#define APIC_ICR_ASSERT (1u << 14)
#define APIC_ICR_LEVEL (1u << 15)

#define CPUS_MAX 256
#define AP_WAIT_MS 2000

/* Written by APs at CPL0 (head.S, ap_start64). */
volatile uint32_t ap_count, ap_cpuid_mismatch, ap_slot_next;
volatile uint32_t ap_seen[CPUS_MAX / 32];
extern char ap_trampoline[], ap_trampoline_end[];

/* Read by APs at CPL0 (head.S, ap_start64): what they run at CPL3, and where. */
ap_entry_fn ap_user_entry;
void *ap_user_arg;
static struct tss64 ap_tss[AP_SLOTS] __attribute__((aligned(16)));
extern uint64_t gdt_ap_tss[2 * AP_SLOTS];
extern char ap_kstacks[];

#define TSS64_DESC_LIMIT 0x67        /* sizeof(struct tss64) - 1 */
#define TSS64_DESC_AVAILABLE 0x89ULL /* P, DPL 0, type 9: available 64-bit TSS */

static uint64_t lapic;

static bool apic_icr_send(uint8_t dest, uint32_t cmd)
{
	mmio_write32(lapic + APIC_ICR_HI, (uint32_t)dest << 24);
	mmio_write32(lapic + APIC_ICR_LO, cmd);
	for (int i = 0; i < 1000; i++) {
		if (!(mmio_read32(lapic + APIC_ICR_LO) & APIC_ICR_BUSY))
			return true;
		delay_us(10);
	}
	return false;
}

/* Enabled APIC IDs from the MADT into ids[]; returns their number or -1. */
static int madt_read(const struct acpi_header *madt, uint32_t *ids, int max)
{
	const uint8_t *p = (const uint8_t *)madt;
	uint32_t off = MADT_ENTRIES;
	int n = 0;

	lapic = *(const uint32_t *)(p + MADT_LAPIC_ADDR);
	while (off + 2 <= madt->length) {
		uint8_t type = p[off], len = p[off + 1];
		uint32_t id, flags;

		if (len < 2 || off + len > madt->length)
			return -1;
		if (type == MADT_TYPE_LAPIC && len >= 8) {
			id = p[off + 3];
			flags = *(const uint32_t *)(p + off + 4);
		} else if (type == MADT_TYPE_X2APIC && len >= 16) {
			id = *(const uint32_t *)(p + off + 4);
			flags = *(const uint32_t *)(p + off + 8);
		} else {
			if (type == MADT_TYPE_LAPIC_OVERRIDE && len >= 12)
				lapic = *(const uint64_t *)(p + off + 4);
			off += len;
			continue;
		}
		off += len;
		if (!(flags & MADT_LAPIC_ENABLED))
			continue;
		if (n == max)
			return -1;
		ids[n++] = id;
	}
	return n;
}

static bool ap_checked_in(uint32_t id)
{
	return ap_seen[id / 32] & (1u << (id % 32));
}

/*
 * Give AP slot @slot its TSS, whose RSP0 is the slot's kernel stack, and
 * that TSS's 16-byte descriptor in the GDT (Intel SDM vol. 3A §8.2.3).
 */
static void ap_slot_init(unsigned int slot)
{
	uint64_t base = (uintptr_t)&ap_tss[slot];

	ap_tss[slot] = (struct tss64){
	    .rsp = {(uintptr_t)ap_kstacks + ((uint64_t)(slot + 1) << AP_KSTACK_SHIFT)},
	    .iomap_base = sizeof(struct tss64),
	};
	gdt_ap_tss[2 * slot] = TSS64_DESC_LIMIT | (base & 0xffffff) << 16 |
	                       TSS64_DESC_AVAILABLE << 40 | (base >> 24 & 0xff) << 56;
	gdt_ap_tss[2 * slot + 1] = base >> 32;
}

/* The MADT's CPUs into ids[]: PROBE_PASS, or the FAIL/SKIP result printed. */
static int smp_find_cpus(uint32_t *ids, struct smp_cpus *cpus)
{
	const struct acpi_header *madt = acpi_find_table("APIC");
	bool bsp_listed = false;
	int n;

	if (!madt)
		return probe_fail("no MADT (ACPI \"APIC\" table) found");
	n = madt_read(madt, ids, CPUS_MAX);
	if (n <= 0)
		return probe_fail("malformed MADT or no enabled processor in it");
	if (lapic != XAPIC_BASE)
		return probe_skip("local APIC at 0x%lx, the probe's APs expect 0x%x", lapic,
		                  XAPIC_BASE);
	cpus->bsp = mmio_read32(lapic + XAPIC_ID) >> 24;
	cpus->count = n;
	if (cpuid(1, 0).ebx >> 24 != cpus->bsp)
		return probe_fail("the BSP's CPUID.1 APIC ID %u differs from its local APIC ID %u",
		                  cpuid(1, 0).ebx >> 24, cpus->bsp);
	printf("probe: smp: MADT lists %d enabled CPUs, local APIC at 0x%lx, BSP APIC ID %u\n", n,
	       lapic, cpus->bsp);
	for (int i = 0; i < n; i++)
		bsp_listed |= ids[i] == cpus->bsp;
	if (!bsp_listed)
		return probe_fail("the BSP's APIC ID %u is not in the MADT", cpus->bsp);
	for (int i = 0; i < n; i++)
		if (ids[i] > 255)
			return probe_skip("APIC ID %u needs x2APIC, which the probe does not use",
			                  ids[i]);
	return PROBE_PASS;
}

/*
 * smp_start - start every AP the MADT lists (INIT, SIPI, SIPI) and wait
 * until all have checked in with a consistent APIC ID. With @entry, each AP
 * then takes a slot and runs entry(@arg, slot) at CPL3 (head.S,
 * ap_start64); without, it halts. Fills @cpus. Returns PROBE_PASS, or the
 * FAIL/SKIP result after printing it. Call it once per boot.
 */
int smp_start(ap_entry_fn entry, void *arg, struct smp_cpus *cpus)
{
	static uint32_t ids[CPUS_MAX];
	uint32_t missing = 0, bsp;
	unsigned int n;
	int r;

	*cpus = (struct smp_cpus){0};
	r = smp_find_cpus(ids, cpus);
	if (r != PROBE_PASS)
		return r;
	n = cpus->count;
	bsp = cpus->bsp;
	if (entry) {
		for (unsigned int slot = 0; slot < AP_SLOTS; slot++)
			ap_slot_init(slot);
		ap_user_arg = arg;
		ap_user_entry = entry;
	}

	memcpy((void *)AP_TRAMPOLINE, ap_trampoline,
	       (uintptr_t)ap_trampoline_end - (uintptr_t)ap_trampoline);
	mmio_write32(lapic + APIC_SVR, APIC_SVR_ENABLE | APIC_SPURIOUS_VECTOR);
	for (unsigned int i = 0; i < n; i++) {
		if (ids[i] == bsp)
			continue;
		if (!apic_icr_send(ids[i], APIC_ICR_INIT | APIC_ICR_LEVEL | APIC_ICR_ASSERT) ||
		    !apic_icr_send(ids[i], APIC_ICR_INIT | APIC_ICR_LEVEL))
			return probe_fail("INIT to APIC ID %u never left the ICR", ids[i]);
	}
	delay_us(10000);
	for (int sipi = 0; sipi < 2; sipi++) {
		for (unsigned int i = 0; i < n; i++)
			if (ids[i] != bsp && !ap_checked_in(ids[i]) &&
			    !apic_icr_send(ids[i], APIC_ICR_STARTUP | (AP_TRAMPOLINE >> 12)))
				return probe_fail("SIPI to APIC ID %u never left the ICR", ids[i]);
		delay_us(200);
	}
	for (int ms = 0; ms < AP_WAIT_MS && ap_count < n - 1; ms++)
		delay_us(1000);

	for (unsigned int i = 0; i < n; i++)
		if (ids[i] != bsp && !ap_checked_in(ids[i])) {
			printf("probe: smp: APIC ID %u did not check in\n", ids[i]);
			missing++;
		}
	if (missing || ap_count != n - 1)
		return probe_fail("%u of %u APs checked in (%u missing)", ap_count, n - 1, missing);
	if (ap_cpuid_mismatch)
		return probe_fail("%u of %u APs report a CPUID.1 APIC ID other than their local "
		                  "APIC ID",
		                  ap_cpuid_mismatch, ap_count);
	return PROBE_PASS;
}

int test_smp(void)
{
	struct smp_cpus cpus;
	uint64_t want = 0;
	int r;

	if (param_get("cpus") && !param_u64("cpus", &want))
		return probe_fail("bad cpus=%s", param_get("cpus"));
	r = smp_start(NULL, NULL, &cpus);
	if (r != PROBE_PASS)
		return r;
	if (want && want != cpus.count)
		return probe_fail("%u CPUs running, cpus=%lu", cpus.count, want);
	return probe_pass("%u CPUs: the BSP (APIC ID %u) and %u APs checked in", cpus.count,
	                  cpus.bsp, ap_count);
}
