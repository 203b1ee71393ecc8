/* SPDX-License-Identifier: MIT */
/*
 * The probe's C entry: copy the boot information, pick the test named on the
 * command line, run it, report its status on the debug-exit port. Also the
 * CPU tables filled at CPL3 (IDT, TSS), the CPL0 exception and syscall
 * handlers, and the mapping of RAM above 4 GiB.
 */
#include "probe.h"
#include "hv.h"
#include "virtio.h"

struct idt_gate {
	uint16_t offset0;
	uint16_t selector;
	uint8_t ist;
	uint8_t type; /* P | DPL | gate type */
	uint16_t offset1;
	uint32_t offset2;
	uint32_t reserved;
} __attribute__((packed));

#define IDT_INTERRUPT_GATE 0x8e

_Static_assert(FAST_EXIT_STATUS == PROBE_PASS, "head.S reports test=exit wrongly");

/* The CPU's frame under the vector and error code pushed by exc_stubs. */
struct exc_frame {
	uint64_t vector, error, rip, cs, rflags, rsp, ss;
};

/* hvm_start_info and its memory map (Xen public/arch-x86/hvm/start_info.h). */
struct hvm_start_info {
	uint32_t magic;
	uint32_t version;
	uint32_t flags;
	uint32_t nr_modules;
	uint64_t modlist_paddr;
	uint64_t cmdline_paddr;
	uint64_t rsdp_paddr;
	uint64_t memmap_paddr;
	uint32_t memmap_entries;
	uint32_t reserved;
} __attribute__((packed));

struct hvm_memmap_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
	uint32_t reserved;
} __attribute__((packed));

struct e820_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
} __attribute__((packed));

#define MEMMAP_RAM 1

/* Referenced by head.S. */
struct tss64 tss __attribute__((aligned(16)));
struct idt_gate idt[256] __attribute__((aligned(16)));
extern char exc_stubs[], kstack_top[], __bss_start[], __bss_end[];
extern uint64_t pdpt[512];
void halt_forever(void) __attribute__((noreturn));
void triple_fault(void) __attribute__((noreturn));
void triple_fault_pf(void) __attribute__((noreturn));
void triple_fault_cr3(void) __attribute__((noreturn));
void flush_tlb(void);

struct boot_info boot;
bool io_direct;
static const char *test_name = "?";

/* Page directories for RAM above 4 GiB when 1 GiB pages are missing. */
#define PD_POOL 16
static uint64_t pd_pool[PD_POOL][512] __attribute__((aligned(4096)));
static unsigned int pd_used;

static void idt_set(unsigned int vector, const void *handler, uint8_t type)
{
	uint64_t h = (uint64_t)(uintptr_t)handler;

	idt[vector] = (struct idt_gate){
	    .offset0 = h & 0xffff,
	    .selector = SEL_KCODE64,
	    .type = type,
	    .offset1 = (h >> 16) & 0xffff,
	    .offset2 = h >> 32,
	};
}

/* Fill the TSS stack for CPL3 -> CPL0 and the 32 exception gates. */
static void cpu_tables_init(void)
{
	tss.rsp[0] = (uint64_t)(uintptr_t)kstack_top;
	tss.iomap_base = sizeof(tss);
	for (unsigned int v = 0; v < 32; v++)
		idt_set(v, exc_stubs + 16 * v, IDT_INTERRUPT_GATE);
}

/* Add a memory map entry; RAM entries are kept sorted by base. */
static void boot_add_range(uint64_t addr, uint64_t size, uint32_t type)
{
	unsigned int i;

	boot.nr_map++;
	if (type != MEMMAP_RAM || size == 0 || boot.nr_ram == BOOT_RAM_MAX)
		return;
	for (i = boot.nr_ram; i > 0 && boot.ram[i - 1].base > addr; i--)
		boot.ram[i] = boot.ram[i - 1];
	boot.ram[i] = (struct mem_range){addr, addr + size};
	boot.nr_ram++;
}

static void boot_copy_cmdline(uint64_t paddr)
{
	const char *s = (const char *)(uintptr_t)paddr;
	size_t n = 0;

	if (paddr == 0 || paddr >= 4 * GIB)
		return;
	while (n < BOOT_CMDLINE_MAX - 1 && s[n]) {
		boot.cmdline[n] = s[n];
		n++;
	}
	boot.cmdline[n] = '\0';
}

static bool boot_read_pvh(uint64_t info)
{
	const struct hvm_start_info *si = (const void *)(uintptr_t)info;

	boot.protocol = "pvh";
	if (si->magic != PVH_MAGIC_VALUE)
		return false;
	boot_copy_cmdline(si->cmdline_paddr);
	boot.rsdp = si->rsdp_paddr;
	if (si->version >= 1 && si->memmap_paddr && si->memmap_paddr < 4 * GIB) {
		const struct hvm_memmap_entry *m = (const void *)(uintptr_t)si->memmap_paddr;

		for (uint32_t i = 0; i < si->memmap_entries && i < 1024; i++)
			boot_add_range(m[i].addr, m[i].size, m[i].type);
	}
	return true;
}

static bool boot_read_linux(uint64_t info)
{
	const uint8_t *bp = (const void *)(uintptr_t)info;
	const struct e820_entry *e820 = (const void *)(bp + BP_E820_TABLE);
	unsigned int n = bp[BP_E820_ENTRIES];
	uint64_t cmdline_hi = *(const uint32_t *)(bp + BP_EXT_CMD_LINE_PTR);

	boot.protocol = "linux";
	boot_copy_cmdline(*(const uint32_t *)(bp + BP_CMD_LINE_PTR) | cmdline_hi << 32);
	boot.rsdp = *(const uint64_t *)(bp + BP_ACPI_RSDP_ADDR);
	for (unsigned int i = 0; i < n && i < BP_E820_MAX; i++)
		boot_add_range(e820[i].addr, e820[i].size, e820[i].type);
	return true;
}

/*
 * Map [base, end) above 4 GiB 1:1, with 1 GiB pages if the CPU has them,
 * else 2 MiB pages from pd_pool. Returns 0, or -1 if it ran out of tables.
 */
int paging_map_high(uint64_t base, uint64_t end)
{
	static int has_1g = -1;
	const uint64_t flags = PTE_P | PTE_RW | PTE_US;

	if (has_1g < 0)
		has_1g = cpuid(0x80000000, 0).eax >= 0x80000001 &&
		         (cpuid(0x80000001, 0).edx & (1u << 26));
	for (uint64_t a = base & ~(GIB - 1); a < end; a += GIB) {
		unsigned int i = a / GIB;

		if (i >= 512)
			return -1;
		if (pdpt[i] & PTE_P)
			continue;
		if (has_1g) {
			pdpt[i] = a | flags | PTE_PS;
			continue;
		}
		if (pd_used == PD_POOL)
			return -1;
		uint64_t *pd = pd_pool[pd_used++];
		for (unsigned int j = 0; j < 512; j++)
			pd[j] = (a + j * 2 * MIB) | flags | PTE_PS;
		pdpt[i] = (uint64_t)(uintptr_t)pd | flags;
	}
	probe_syscall(SYS_FLUSH_TLB, 0, 0);
	return 0;
}

static int probe_result(int status, const char *fmt, va_list ap)
{
	static const char *const names[] = {
	    [PROBE_PASS] = "PASS", [PROBE_FAIL] = "FAIL", [PROBE_SKIP] = "SKIP"};
	char msg[256];

	vformat(msg, sizeof(msg), fmt, ap);
	printf("probe: test=%s: %s %s\n", test_name, names[status], msg);
	return status;
}

/* Print the test's result line; return the status for the caller to pass on. */
int probe_pass(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = probe_result(PROBE_PASS, fmt, ap);
	va_end(ap);
	return r;
}

int probe_fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = probe_result(PROBE_FAIL, fmt, ap);
	va_end(ap);
	return r;
}

int probe_skip(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = probe_result(PROBE_SKIP, fmt, ap);
	va_end(ap);
	return r;
}

/* End the VM with `status`; halt if the debug-exit port does not. */
void probe_exit(int status)
{
	outl(PORT_DEBUG_EXIT, status);
	probe_syscall(SYS_HALT, 0, 0);
	__builtin_unreachable();
}

/* CPL0: an unexpected exception ends the test with FAIL. */
void exception_report(const struct exc_frame *f)
{
	uint64_t cr2;

	__asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
	io_direct = true;
	printf("\nprobe: test=%s: FAIL exception %lu error 0x%lx at rip 0x%lx cpl %lu "
	       "rsp 0x%lx cr2 0x%lx\n",
	       test_name, f->vector, f->error, f->rip, f->cs & 3, f->rsp, cr2);
	pio_outl(PORT_DEBUG_EXIT, PROBE_FAIL);
	halt_forever();
}

/* CPL0: the system call handler, nr = SYS_* from arch.h. */
long syscall_dispatch(long nr, long a, long b)
{
	switch (nr) {
	case SYS_INB:
		return pio_inb(a);
	case SYS_INW:
		return pio_inw(a);
	case SYS_INL:
		return pio_inl(a);
	case SYS_OUTB:
		pio_outb(a, b);
		return 0;
	case SYS_OUTW:
		pio_outw(a, b);
		return 0;
	case SYS_OUTL:
		pio_outl(a, b);
		return 0;
	case SYS_WRITE:
		uart_write_cpl0((const char *)a, b);
		return 0;
	case SYS_CPUID:
		*(struct cpuid_regs *)b = cpuid_raw((uint32_t)a, (uint64_t)a >> 32);
		return 0;
	case SYS_HALT:
		halt_forever();
	case SYS_FLUSH_TLB:
		flush_tlb();
		return 0;
	case SYS_TRIPLEFAULT:
		if (a == 2)
			triple_fault_cr3();
		if (a)
			triple_fault_pf();
		triple_fault();
	case SYS_RDMSR:
		return hv_rdmsr_safe_cpl0(a, (uint64_t *)b);
	case SYS_WRMSR:
		return hv_wrmsr_safe_cpl0(a, b);
	case SYS_CALL:
		return ((long (*)(long))a)(b);
	}
	return -1;
}

static int test_exit(void)
{
	return probe_pass("late path (test=exit was not first on the command line)");
}

static const struct probe_test {
	const char *name;
	int (*run)(void);
} probe_tests[] = {
    {"exit", test_exit},         {"cpuid", test_cpuid},   {"mem", test_mem},
    {"smp", test_smp},           {"uart", test_uart},     {"pci", test_pci},
    {"poweroff", test_poweroff}, {"reboot", test_reboot}, {"triplefault", test_triplefault},
    {"idle", test_idle},         {"svm", test_svm},       {"vmx", test_vmx},
    {"vmmcall", test_vmmcall},   {"virtio-blk", test_virtio_blk},
    {"virtio-hostile", test_virtio_hostile}, {"virtio-bench", test_virtio_bench},
    {"memgen", test_memgen},     {"net", test_net},
};

/*
 * Entered from head.S at CPL3 with the boot path (BOOT_PVH or BOOT_LINUX)
 * and the physical address of the loader's boot information.
 */
__attribute__((noreturn)) void probe_main(uint32_t kind, uint64_t info)
{
	bool ok;

	memset(__bss_start, 0, (uintptr_t)__bss_end - (uintptr_t)__bss_start);
	cpu_tables_init();
	uart_init();
	ok = kind == BOOT_PVH ? boot_read_pvh(info) : boot_read_linux(info);
	printf("probe: boot %s, cmdline \"%s\"\n", boot.protocol, boot.cmdline);
	params_init(boot.cmdline);
	if (param_get("test"))
		test_name = param_get("test");
	if (!ok)
		probe_exit(probe_fail("bad boot information at 0x%lx", info));
	for (size_t i = 0; i < ARRAY_SIZE(probe_tests); i++)
		if (strcmp(probe_tests[i].name, test_name) == 0)
			probe_exit(probe_tests[i].run());
	probe_exit(probe_fail("unknown test; use test=exit|cpuid|mem|smp|uart|pci|poweroff|"
	                      "reboot|triplefault|idle|svm|vmx|vmmcall|virtio-blk|"
	                      "virtio-hostile|virtio-bench|memgen|net"));
}
