/* SPDX-License-Identifier: MIT */
/*
 * What the probe's hypervisor tests share (hv.h): the CPU vendor, the L1's
 * own control registers, the L2's expected result, and timing: the TSC
 * frequency, measured against the ACPI PM timer (ACPI 6.5 §4.8.3.3), and
 * the report of a hypercall round trip.
 */
#include "probe.h"
#include "hv.h"

#define PM_TIMER_HZ 3579545ULL
#define PM_CAL_TICKS (PM_TIMER_HZ / 20) /* 50 ms */
#define PM_CAL_STUCK 1000000            /* equal reads in a row: the timer is stuck */
#define HV_ITERATIONS_DEFAULT 1000
#define HV_ITERATIONS_MAX 10000000
#define PAT_POWER_ON 0x0007040600070406ULL /* SDM vol. 3A §12.12.4 */
#define CPUID_LEAF_TSC 0x15
#define CPUID_LEAF_FREQ 0x16
#define CPUID_LEAF_HV_TIMING 0x40000010 /* VMware/KVM: EAX = TSC kHz */

enum hv_vendor hv_vendor(void)
{
	struct cpuid_regs r = cpuid(0, 0);

	if (r.ebx == 0x68747541 && r.edx == 0x69746e65 && r.ecx == 0x444d4163)
		return HV_VENDOR_AMD; /* "AuthenticAMD" */
	if (r.ebx == 0x6f677948 && r.edx == 0x6e65476e && r.ecx == 0x656e6975)
		return HV_VENDOR_AMD; /* "HygonGenuine" */
	if (r.ebx == 0x756e6547 && r.edx == 0x49656e69 && r.ecx == 0x6c65746e)
		return HV_VENDOR_INTEL; /* "GenuineIntel" */
	return HV_VENDOR_OTHER;
}

const char *hv_vendor_name(enum hv_vendor v)
{
	return v == HV_VENDOR_AMD ? "AMD" : v == HV_VENDOR_INTEL ? "Intel" : "unknown-vendor";
}

static long hv_cpu_state_cpl0(long arg)
{
	struct hv_cpu_state *s = (struct hv_cpu_state *)arg;

	__asm__ volatile("mov %%cr0, %0" : "=r"(s->cr0));
	__asm__ volatile("mov %%cr3, %0" : "=r"(s->cr3));
	__asm__ volatile("mov %%cr4, %0" : "=r"(s->cr4));
	__asm__ volatile("mov %%dr6, %0" : "=r"(s->dr6));
	__asm__ volatile("mov %%dr7, %0" : "=r"(s->dr7));
	__asm__ volatile("sgdt %0" : "=m"(s->gdtr));
	__asm__ volatile("sidt %0" : "=m"(s->idtr));
	if (hv_rdmsr_safe_cpl0(MSR_EFER, &s->efer) != FAULT_NONE)
		return -1;
	if (hv_rdmsr_safe_cpl0(MSR_IA32_PAT, &s->pat) != FAULT_NONE)
		s->pat = PAT_POWER_ON;
	return 0;
}

/* The L1's control and debug registers, EFER, PAT, GDTR, IDTR and TSS base. */
void hv_cpu_state_read(struct hv_cpu_state *s)
{
	const uint8_t *d;

	memset(s, 0, sizeof(*s));
	cpl0_call(hv_cpu_state_cpl0, (long)s);
	/* A 16-byte system descriptor: base 15:0, 23:16, 31:24, 63:32 (SDM vol. 3A §8.2.3). */
	d = (const uint8_t *)(uintptr_t)(s->gdtr.base + SEL_TSS);
	s->tr_base = (uint64_t)d[2] | (uint64_t)d[3] << 8 | (uint64_t)d[4] << 16 |
	             (uint64_t)d[7] << 24 | (uint64_t) * (const uint32_t *)(d + 8) << 32;
}

static uint64_t xorshift64(uint64_t x)
{
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return x;
}

/*
 * What the L2 (hv.S, L2_WORK) computes from `seed`: its result, and in
 * buf[HV_L2_BUF_QWORDS] what it leaves in its buffer.
 */
uint64_t hv_l2_expect(uint64_t seed, uint64_t *buf)
{
	uint64_t x = seed, sum = 0;

	for (uint32_t i = 0; i < HV_L2_ITERATIONS; i++) {
		x = xorshift64(x);
		sum += x;
	}
	for (uint32_t i = 0; i < HV_L2_BUF_QWORDS; i++) {
		x = xorshift64(x);
		buf[i] = x;
	}
	for (uint32_t i = 0; i < HV_L2_BUF_QWORDS; i++)
		sum = (sum << 1 | sum >> 63) ^ buf[i];
	return sum;
}

/* `iterations=N` for the round-trip loops (default 1000; 0 skips them). */
bool hv_param_iterations(uint64_t *n)
{
	*n = HV_ITERATIONS_DEFAULT;
	if (!param_get("iterations"))
		return true;
	return param_u64("iterations", n) && *n <= HV_ITERATIONS_MAX;
}

struct pm_calibration {
	uint16_t port;
	uint32_t mask;
	uint64_t tsc;     /* TSC cycles over... */
	uint32_t elapsed; /* ...this many PM timer ticks */
};

/* The next PM timer value different from `t`, or `t` if the timer is stuck. */
static uint32_t pm_next_tick(const struct pm_calibration *c, uint32_t t)
{
	uint32_t now = t;

	for (unsigned int n = 0; n < PM_CAL_STUCK && now == t; n++)
		now = pio_inl(c->port) & c->mask;
	return now;
}

/* CPL0, so that both ends read the TSC the way the timed loops do. */
static long hv_pm_calibrate_cpl0(long arg)
{
	struct pm_calibration *c = (struct pm_calibration *)arg;
	uint32_t t0 = pio_inl(c->port) & c->mask, t;
	uint64_t tsc0;

	t = pm_next_tick(c, t0); /* start on a tick */
	if (t == t0)
		return -1;
	tsc0 = rdtsc();
	t0 = t;
	while (((t - t0) & c->mask) < PM_CAL_TICKS) {
		uint32_t next = pm_next_tick(c, t);

		if (next == t)
			return -1;
		t = next;
	}
	c->tsc = rdtsc() - tsc0;
	c->elapsed = (t - t0) & c->mask;
	return 0;
}

/*
 * The TSC frequency: measured against the FADT's PM timer over 50 ms, else
 * from CPUID leaf 0x15 (crystal ratio), the hypervisor timing leaf
 * 0x40000010 or leaf 0x16 (base MHz). Measured once.
 */
const struct hv_clock *hv_clock(void)
{
	static struct hv_clock clock;
	static bool done;
	struct pm_calibration cal = {0};
	bool ext;

	if (done)
		return &clock;
	done = true;
	clock.source = "none";
	cal.port = acpi_pm_timer_port(&ext);
	cal.mask = ext ? 0xffffffffu : 0xffffffu;
	if (cal.port && cpl0_call(hv_pm_calibrate_cpl0, (long)&cal) == 0 && cal.elapsed) {
		clock.tsc_khz = cal.tsc * PM_TIMER_HZ / ((uint64_t)cal.elapsed * 1000);
		clock.source = "ACPI PM timer";
		return &clock;
	}
	uint32_t max = cpuid(0, 0).eax, hv_max = 0;
	if (cpuid(1, 0).ecx & (1u << 31))
		hv_max = cpuid(0x40000000, 0).eax;
	if (max >= CPUID_LEAF_TSC) {
		struct cpuid_regs r = cpuid(CPUID_LEAF_TSC, 0);

		if (r.eax && r.ebx && r.ecx) {
			clock.tsc_khz = (uint64_t)r.ecx * r.ebx / r.eax / 1000;
			clock.source = "CPUID 0x15";
			return &clock;
		}
	}
	if (hv_max >= CPUID_LEAF_HV_TIMING && cpuid(CPUID_LEAF_HV_TIMING, 0).eax) {
		clock.tsc_khz = cpuid(CPUID_LEAF_HV_TIMING, 0).eax;
		clock.source = "CPUID 0x40000010";
		return &clock;
	}
	if (max >= CPUID_LEAF_FREQ && (cpuid(CPUID_LEAF_FREQ, 0).eax & 0xffff)) {
		clock.tsc_khz = (uint64_t)(cpuid(CPUID_LEAF_FREQ, 0).eax & 0xffff) * 1000;
		clock.source = "CPUID 0x16";
	}
	return &clock;
}

static uint32_t samples[HV_SAMPLES_MAX];

/* CPL0 or CPL3: count one round trip of `cycles` (sample, minimum). */
void hv_round_trip_add(struct hv_round_trip *rt, uint64_t cycles)
{
	if (rt->min == 0 || cycles < rt->min)
		rt->min = cycles;
	if (rt->nr_samples < HV_SAMPLES_MAX)
		samples[rt->nr_samples++] = cycles > UINT32_MAX ? UINT32_MAX : (uint32_t)cycles;
}

/* The median of a[0..n), n > 0 (quickselect, three-way partition; reorders a). */
static uint32_t median(uint32_t *a, size_t n)
{
	long lo = 0, hi = (long)n - 1, k = (long)n / 2;

	while (lo < hi) {
		uint32_t pivot = a[lo + (hi - lo) / 2], t;
		long lt = lo, i = lo, gt = hi;

		while (i <= gt) { /* [lo, lt) < pivot, [lt, i) == pivot, (gt, hi] > pivot */
			if (a[i] < pivot) {
				t = a[lt], a[lt] = a[i], a[i] = t;
				lt++, i++;
			} else if (a[i] > pivot) {
				t = a[gt], a[gt] = a[i], a[i] = t;
				gt--;
			} else {
				i++;
			}
		}
		if (k < lt)
			hi = lt - 1;
		else if (k > gt)
			lo = gt + 1;
		else
			return pivot;
	}
	return a[k];
}

static uint64_t cycles_to_ns(uint64_t cycles, uint64_t khz)
{
	return cycles * 1000000 / khz;
}

/*
 * Print "probe: TEST: WHAT round trip N ns (I iterations; median of S; mean
 * M ns, min F ns; median C cycles, TSC K kHz from SOURCE)", N being the
 * median (cycles only, without a TSC frequency), and put "WHAT round trip
 * N ns (I iterations)" in summary. The median and minimum are of single
 * round trips; the mean is the whole loop over the iterations.
 */
void hv_round_trip_report(const char *test, const char *what, const struct hv_round_trip *rt,
                          char *summary, size_t size)
{
	const struct hv_clock *clk = hv_clock();
	uint64_t mean = rt->total / (rt->done ? rt->done : 1);
	uint64_t med = rt->nr_samples ? median(samples, rt->nr_samples) : mean;
	uint64_t khz = clk->tsc_khz;

	if (khz) {
		printf("probe: %s: %s round trip %lu ns (%lu iterations; median of %lu; mean %lu "
		       "ns, min %lu ns; median %lu cycles, TSC %lu kHz from %s)\n",
		       test, what, cycles_to_ns(med, khz), rt->done, rt->nr_samples,
		       cycles_to_ns(mean, khz), cycles_to_ns(rt->min, khz), med, khz, clk->source);
		format(summary, size, "%s round trip %lu ns (%lu iterations)", what,
		       cycles_to_ns(med, khz), rt->done);
	} else {
		printf("probe: %s: %s round trip %lu cycles (%lu iterations; median of %lu; mean "
		       "%lu, min %lu cycles; TSC frequency unknown)\n",
		       test, what, med, rt->done, rt->nr_samples, mean, rt->min);
		format(summary, size, "%s round trip %lu cycles (%lu iterations)", what, med,
		       rt->done);
	}
}
