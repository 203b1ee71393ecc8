/* SPDX-License-Identifier: MIT */
/* Unit tests: bzImage and PVH ELF loading, e820, page tables, boot registers. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "arch/x86/boot.h"
#include "arch/x86/layout.h"
#include "arch/x86/regs.h"
#include "core/log.h"

#include <elf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MEM_SIZE (64ULL << 20)
#define PAYLOAD_SIZE 4096

struct fixture {
	struct guest_mem mem;
	char dir[64];
	char kernel[96];
	char initrd[96];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	log_set_level(getenv("TEST_VERBOSE")
	                  ? LOG_DEBUG
	                  : LOG_NONE); /* the failures below are expected: keep quiet */
	strcpy(f->dir, "/tmp/nestvm-test-boot-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->kernel, sizeof(f->kernel), "%s/kernel", f->dir);
	snprintf(f->initrd, sizeof(f->initrd), "%s/initrd", f->dir);
	if (guest_mem_init(&f->mem, MEM_SIZE, 0) < 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	unlink(f->kernel);
	unlink(f->initrd);
	rmdir(f->dir);
	guest_mem_destroy(&f->mem);
	free(f);
	return 0;
}

static void write_file(const char *path, const void *data, size_t len)
{
	FILE *fp = fopen(path, "wb");

	assert_non_null(fp);
	assert_int_equal(fwrite(data, 1, len, fp), len);
	fclose(fp);
}

/* A minimal bzImage: one setup sector after the boot sector, then a payload. */
static size_t make_bzimage(uint8_t *img, uint16_t version, uint8_t xloadflags)
{
	size_t len = 2 * 512 + PAYLOAD_SIZE;

	memset(img, 0, len);
	img[0x1f1] = 1; /* setup_sects */
	img[0x1fe] = 0x55;
	img[0x1ff] = 0xaa;
	img[0x200] = 0xeb;
	img[0x201] = 0x66; /* header ends at 0x268 */
	memcpy(img + 0x202, "HdrS", 4);
	memcpy(img + 0x206, &version, 2);
	img[0x211] = 0x01; /* LOADED_HIGH */
	memcpy(img + 0x22c, &(uint32_t){0x37ffffff}, 4);
	img[0x236] = xloadflags;
	memcpy(img + 0x238, &(uint32_t){255}, 4);
	memcpy(img + 0x260, &(uint32_t){0x20000}, 4);
	for (int i = 0; i < PAYLOAD_SIZE; i++)
		img[1024 + i] = (uint8_t)(i * 7);
	return len;
}

static void test_bzimage_64bit_entry(void **state)
{
	struct fixture *f = *state;
	static uint8_t img[2 * 512 + PAYLOAD_SIZE];
	uint8_t initrd[10000];
	struct boot_info info;
	struct boot_config cfg = {f->kernel, f->initrd, "console=ttyS0 quiet", 0xe0000};
	uint8_t *zp;
	uint32_t v32;

	write_file(f->kernel, img, make_bzimage(img, 0x020f, 1));
	for (size_t i = 0; i < sizeof(initrd); i++)
		initrd[i] = (uint8_t)i;
	write_file(f->initrd, initrd, sizeof(initrd));
	assert_int_equal(boot_load(&f->mem, &cfg, &info), 0);
	assert_int_equal(info.mode, BOOT_ENTRY_LONG64);
	assert_int_equal(info.entry, LAYOUT_KERNEL + 0x200);
	assert_int_equal(info.info_gpa, LAYOUT_ZERO_PAGE);
	assert_memory_equal(guest_mem_ptr(&f->mem, LAYOUT_KERNEL, PAYLOAD_SIZE), img + 1024,
	                    PAYLOAD_SIZE);

	zp = guest_mem_ptr(&f->mem, LAYOUT_ZERO_PAGE, 4096);
	assert_memory_equal(zp + 0x202, "HdrS", 4);
	assert_int_equal(zp[0x210], 0xff); /* type_of_loader */
	memcpy(&v32, zp + 0x228, 4);
	assert_int_equal(v32, LAYOUT_CMDLINE);
	assert_string_equal((char *)guest_mem_ptr(&f->mem, LAYOUT_CMDLINE, 1),
	                    "console=ttyS0 quiet");
	assert_int_equal(*(uint64_t *)(zp + 0x70), 0xe0000); /* acpi_rsdp_addr */

	/* Initrd: page aligned, at the top of RAM, after the kernel, content intact. */
	memcpy(&v32, zp + 0x218, 4);
	assert_int_equal(v32, info.initrd_gpa);
	assert_int_equal(info.initrd_gpa % 4096, 0);
	assert_true(info.initrd_gpa >= info.kernel_end);
	assert_true(info.initrd_gpa + sizeof(initrd) <= MEM_SIZE);
	assert_true(info.initrd_gpa + sizeof(initrd) > MEM_SIZE - 8192);
	memcpy(&v32, zp + 0x21c, 4);
	assert_int_equal(v32, sizeof(initrd));
	assert_memory_equal(guest_mem_ptr(&f->mem, info.initrd_gpa, sizeof(initrd)), initrd,
	                    sizeof(initrd));

	/* e820: RAM from 1 MiB to the end of memory, the ACPI area reserved. */
	assert_true(zp[0x1e8] >= 4);
	{
		struct e820_entry e[8];
		bool ram = false, acpi = false;

		memcpy(e, zp + 0x2d0, zp[0x1e8] * sizeof(e[0]));
		for (int i = 0; i < zp[0x1e8]; i++) {
			ram |= e[i].type == E820_RAM && e[i].addr == LAYOUT_KERNEL &&
			       e[i].addr + e[i].size == MEM_SIZE;
			acpi |= e[i].type == E820_RESERVED && e[i].addr == LAYOUT_ACPI;
		}
		assert_true(ram);
		assert_true(acpi);
	}
	/* Identity page tables: PML4 -> PDPT -> 2 MiB pages. */
	{
		uint64_t *pml4 = guest_mem_ptr(&f->mem, LAYOUT_PAGE_TABLES, 4096);
		uint64_t *pd = guest_mem_ptr(&f->mem, LAYOUT_PAGE_TABLES + 2 * 4096, 4 * 4096);

		assert_int_equal(pml4[0] & ~0xfffULL, LAYOUT_PAGE_TABLES + 4096);
		assert_int_equal(pd[3] & ~0xfffULL, 3 * 0x200000ULL);
		assert_true(pd[3] & 0x80);
		assert_int_equal(pd[2047] & ~0xfffULL, 2047 * 0x200000ULL);
	}
}

static void test_bzimage_rejects(void **state)
{
	struct fixture *f = *state;
	static uint8_t img[2 * 512 + PAYLOAD_SIZE];
	struct boot_info info;
	struct boot_config cfg = {f->kernel, NULL, NULL, 0xe0000};
	char longline[400];
	size_t len;

	/* Protocol too old, no 64-bit entry, truncated, overlong command line. */
	write_file(f->kernel, img, make_bzimage(img, 0x0204, 1));
	assert_int_equal(boot_load(&f->mem, &cfg, &info), -ENOEXEC);
	write_file(f->kernel, img, make_bzimage(img, 0x020f, 0));
	assert_int_equal(boot_load(&f->mem, &cfg, &info), -ENOEXEC);
	len = make_bzimage(img, 0x020f, 1);
	img[0x1f1] = 200;
	write_file(f->kernel, img, len);
	assert_int_equal(boot_load(&f->mem, &cfg, &info), -ENOEXEC);
	write_file(f->kernel, img, make_bzimage(img, 0x020f, 1));
	memset(longline, 'a', sizeof(longline) - 1);
	longline[sizeof(longline) - 1] = 0;
	cfg.cmdline = longline;
	assert_int_equal(boot_load(&f->mem, &cfg, &info), -E2BIG);
	cfg.cmdline = NULL;

	/* An initrd larger than guest memory. */
	write_file(f->initrd, "x", 1);
	assert_int_equal(truncate(f->initrd, MEM_SIZE), 0);
	cfg.initrd_path = f->initrd;
	assert_int_equal(boot_load(&f->mem, &cfg, &info), -E2BIG);
	cfg.initrd_path = "/nonexistent/initrd";
	assert_int_equal(boot_load(&f->mem, &cfg, &info), -ENOENT);
	cfg.initrd_path = NULL;

	/* Not a kernel, empty, missing, a directory. */
	write_file(f->kernel, "#!/bin/sh\necho hello\n", 21);
	assert_int_equal(boot_load(&f->mem, &cfg, &info), -ENOEXEC);
	write_file(f->kernel, "", 0);
	assert_int_equal(boot_load(&f->mem, &cfg, &info), -ENOEXEC);
	cfg.kernel_path = "/nonexistent/vmlinuz";
	assert_int_equal(boot_load(&f->mem, &cfg, &info), -ENOENT);
	cfg.kernel_path = f->dir;
	assert_int_equal(boot_load(&f->mem, &cfg, &info), -EINVAL);
}

/* An ELF64 with one PT_LOAD at @paddr and, if @note, a Xen PVH entry note. */
static size_t make_elf(uint8_t *buf, uint64_t paddr, bool note, uint64_t filesz_override)
{
	Elf64_Ehdr eh = {0};
	Elf64_Phdr ph[2] = {0};
	const size_t ph_off = sizeof(eh), note_off = ph_off + sizeof(ph), code_off = 0x200;
	uint32_t nhdr[3] = {4, 4, 18};
	uint32_t entry = (uint32_t)paddr + 0x10;

	memset(buf, 0, 0x400);
	memcpy(eh.e_ident, ELFMAG, SELFMAG);
	eh.e_ident[EI_CLASS] = ELFCLASS64;
	eh.e_ident[EI_DATA] = ELFDATA2LSB;
	eh.e_machine = EM_X86_64;
	eh.e_phoff = ph_off;
	eh.e_phentsize = sizeof(Elf64_Phdr);
	eh.e_phnum = 2;
	ph[0].p_type = PT_LOAD;
	ph[0].p_offset = code_off;
	ph[0].p_paddr = paddr;
	ph[0].p_filesz = filesz_override ? filesz_override : 0x200;
	ph[0].p_memsz = 0x1000;
	ph[1].p_type = note ? PT_NOTE : PT_NULL;
	ph[1].p_offset = note_off;
	ph[1].p_filesz = 20;
	memcpy(buf, &eh, sizeof(eh));
	memcpy(buf + ph_off, ph, sizeof(ph));
	memcpy(buf + note_off, nhdr, sizeof(nhdr));
	memcpy(buf + note_off + 12, "Xen", 4);
	memcpy(buf + note_off + 16, &entry, 4);
	memset(buf + code_off, 0x90, 0x200);
	return 0x400;
}

static void test_elf_pvh(void **state)
{
	struct fixture *f = *state;
	uint8_t img[0x400];
	struct boot_info info;
	struct boot_config cfg = {f->kernel, f->initrd, "test=exit", 0xe0000};
	uint32_t *si;
	uint64_t memmap, modlist, *mod;

	write_file(f->kernel, img, make_elf(img, 0x100000, true, 0));
	write_file(f->initrd, "INITRD", 6);
	assert_int_equal(boot_load(&f->mem, &cfg, &info), 0);
	assert_int_equal(info.mode, BOOT_ENTRY_PVH32);
	assert_int_equal(info.entry, 0x100010);
	assert_int_equal(info.info_gpa, LAYOUT_PVH_START_INFO);
	si = guest_mem_ptr(&f->mem, LAYOUT_PVH_START_INFO, 64);
	assert_int_equal(si[0], 0x336ec578);
	assert_int_equal(si[3], 1); /* nr_modules */
	assert_int_equal(*(uint64_t *)(si + 6), LAYOUT_CMDLINE);
	assert_int_equal(*(uint64_t *)(si + 8), 0xe0000);
	memmap = *(uint64_t *)(si + 10);
	assert_true(si[12] >= 4); /* memmap_entries */
	assert_non_null(guest_mem_ptr(&f->mem, memmap, si[12] * 24));
	modlist = *(uint64_t *)(si + 4);
	mod = guest_mem_ptr(&f->mem, modlist, 32);
	assert_int_equal(mod[0], info.initrd_gpa);
	assert_int_equal(mod[1], 6);
	assert_memory_equal(guest_mem_ptr(&f->mem, mod[0], 6), "INITRD", 6);

	/* No PVH note; a segment outside RAM; a segment past the end of the file. */
	cfg.initrd_path = NULL;
	write_file(f->kernel, img, make_elf(img, 0x100000, false, 0));
	assert_int_equal(boot_load(&f->mem, &cfg, &info), -ENOEXEC);
	write_file(f->kernel, img, make_elf(img, 1ULL << 30, true, 0));
	assert_int_equal(boot_load(&f->mem, &cfg, &info), -E2BIG);
	write_file(f->kernel, img, make_elf(img, 0x100000, true, 0x10000));
	assert_int_equal(boot_load(&f->mem, &cfg, &info), -ENOEXEC);
	/* Truncated in the middle of the program headers. */
	write_file(f->kernel, img, make_elf(img, 0x100000, true, 0));
	write_file(f->kernel, img, 80);
	assert_int_equal(boot_load(&f->mem, &cfg, &info), -ENOEXEC);
}

static void test_boot_registers(void **state)
{
	struct boot_info lm = {.mode = BOOT_ENTRY_LONG64, .entry = 0x100200, .info_gpa = 0x7000};
	struct boot_info pvh = {.mode = BOOT_ENTRY_PVH32, .entry = 0x1000000, .info_gpa = 0x6000};
	struct kvm_regs regs;
	struct kvm_sregs sregs = {0};

	(void)state;
	regs_boot_init(&lm, &regs, &sregs);
	assert_int_equal(regs.rip, 0x100200);
	assert_int_equal(regs.rsi, 0x7000);
	assert_int_equal(sregs.cs.l, 1);
	assert_int_equal(sregs.cs.selector, BOOT_GDT_CS64);
	assert_int_equal(sregs.ds.selector, BOOT_GDT_DS);
	assert_true(sregs.cr0 & X86_CR0_PG);
	assert_true(sregs.efer & X86_EFER_LMA);
	assert_int_equal(sregs.cr3, LAYOUT_PAGE_TABLES);

	regs_boot_init(&pvh, &regs, &sregs);
	assert_int_equal(regs.rip, 0x1000000);
	assert_int_equal(regs.rbx, 0x6000);
	assert_int_equal(sregs.cs.l, 0);
	assert_int_equal(sregs.cs.db, 1);
	assert_false(sregs.cr0 & X86_CR0_PG);
	assert_true(sregs.cr0 & X86_CR0_PE);
	assert_int_equal(sregs.efer, 0);
}

static void test_e820_highmem(void **state)
{
	struct guest_mem mem;
	struct e820_entry map[E820_MAX_ENTRIES];
	unsigned int n;
	uint64_t ram = 0;

	(void)state;
	assert_int_equal(guest_mem_init(&mem, 4ULL << 30, 0), 0);
	n = boot_build_e820(&mem, map, E820_MAX_ENTRIES);
	for (unsigned int i = 0; i < n; i++) {
		if (map[i].type == E820_RAM)
			ram += map[i].size;
		/* Nothing may claim the PCI hole as RAM. */
		if (map[i].type == E820_RAM)
			assert_false(map[i].addr < LAYOUT_HIGHMEM_BASE &&
			             map[i].addr + map[i].size > LAYOUT_LOWMEM_MAX);
	}
	/* All RAM but the 0x9fc00-0x100000 hole is described. */
	assert_int_equal(ram, (4ULL << 30) - (LAYOUT_KERNEL - LAYOUT_EBDA));
	assert_int_equal(map[n - 1].addr, LAYOUT_HIGHMEM_BASE);
	assert_int_equal(boot_build_e820(&mem, map, 2), 2);
	guest_mem_destroy(&mem);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_bzimage_64bit_entry, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bzimage_rejects, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_elf_pvh, setup, teardown),
	    cmocka_unit_test(test_boot_registers),
	    cmocka_unit_test(test_e820_highmem),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
