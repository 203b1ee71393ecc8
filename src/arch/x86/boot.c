/* SPDX-License-Identifier: MIT */
#include "arch/x86/boot.h"

#include "arch/x86/layout.h"
#include "core/fsutil.h"
#include "core/log.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define PAGE_SIZE 4096ULL
#define SZ_1M 0x100000ULL
#define SZ_2M 0x200000ULL
#define ALIGN_DOWN(x, a) ((x) & ~((uint64_t)(a)-1))
#define ALIGN_UP(x, a) ALIGN_DOWN((x) + (a)-1, a)

/*
 * Offsets into boot_params ("the zero page") and its embedded setup header,
 * Documentation/arch/x86/zero-page.rst and boot.rst.
 */
#define BP_ACPI_RSDP_ADDR 0x070
#define BP_EXT_RAMDISK_IMAGE 0x0c0
#define BP_EXT_RAMDISK_SIZE 0x0c4
#define BP_EXT_CMD_LINE_PTR 0x0c8
#define BP_E820_ENTRIES 0x1e8
#define BP_HDR 0x1f1 /* setup header starts here, same offset as in the file */
#define BP_E820_TABLE 0x2d0
#define BP_E820_MAX 128

#define HDR_SETUP_SECTS 0x1f1
#define HDR_VID_MODE 0x1fa
#define HDR_BOOT_FLAG 0x1fe
#define HDR_JUMP 0x200
#define HDR_HEADER 0x202
#define HDR_VERSION 0x206
#define HDR_TYPE_OF_LOADER 0x210
#define HDR_LOADFLAGS 0x211
#define HDR_RAMDISK_IMAGE 0x218
#define HDR_RAMDISK_SIZE 0x21c
#define HDR_CMD_LINE_PTR 0x228
#define HDR_INITRD_ADDR_MAX 0x22c
#define HDR_RELOCATABLE 0x234
#define HDR_XLOADFLAGS 0x236
#define HDR_CMDLINE_SIZE 0x238
#define HDR_PREF_ADDRESS 0x258
#define HDR_INIT_SIZE 0x260
#define HDR_END_MIN 0x268

#define BOOT_FLAG_MAGIC 0xaa55
#define HDR_MAGIC 0x53726448     /* "HdrS" */
#define BOOT_PROTOCOL_MIN 0x020c /* first version with xloadflags */
#define LOADFLAGS_LOADED_HIGH 0x01
#define XLF_KERNEL_64 0x01
#define LOADER_TYPE_UNDEFINED 0xff
#define VID_MODE_NORMAL 0xffff
#define LINUX_LOAD_PHYSICAL_ADDR 0x1000000ULL /* where a relocatable kernel runs */
#define ZERO_PAGE_SIZE 0x1000

/* PVH: Xen public headers, arch-x86/hvm/start_info.h and elfnote.h. */
#define XEN_ELFNOTE_PHYS32_ENTRY 18
#define HVM_START_MAGIC 0x336ec578
#define HVM_START_INFO_VERSION 1
#define PVH_MODLIST_OFFSET 0x40
#define PVH_MEMMAP_OFFSET 0x80

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
};

struct hvm_modlist_entry {
	uint64_t paddr;
	uint64_t size;
	uint64_t cmdline_paddr;
	uint64_t reserved;
};

struct hvm_memmap_table_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
	uint32_t reserved;
};

/* A read-only view of a whole file. */
struct mapped_file {
	const uint8_t *data;
	size_t size;
};

static int file_map(const char *what, const char *path, struct mapped_file *f)
{
	struct stat st;
	int fd, r = 0;

	f->data = NULL;
	f->size = 0;
	/* Never blocks: a FIFO is refused, not waited on. */
	fd = fs_open_input(path, O_RDONLY, &st);
	if (fd < 0) {
		log_error("%s '%s': %s", what, path,
		          fd == -EINVAL ? "not a regular file" : fs_strerror(fd));
		return fd;
	}
	if (!S_ISREG(st.st_mode)) {
		log_error("%s '%s': not a regular file", what, path);
		r = -EINVAL;
		goto out;
	}
	if (st.st_size == 0) {
		log_error("%s '%s': file is empty", what, path);
		r = -ENOEXEC;
		goto out;
	}
	f->data = mmap(NULL, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (f->data == MAP_FAILED) {
		r = -errno;
		f->data = NULL;
		log_error("%s '%s': cannot map: %s", what, path, strerror(errno));
		goto out;
	}
	f->size = st.st_size;
out:
	close(fd);
	return r;
}

static void file_unmap(struct mapped_file *f)
{
	if (f->data)
		munmap((void *)f->data, f->size);
	f->data = NULL;
}

static uint16_t get16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, sizeof(v));
}

static void put64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, sizeof(v));
}

unsigned int boot_build_e820(const struct guest_mem *mem, struct e820_entry *map, unsigned int max)
{
	const struct e820_entry all[] = {
	    {0, LAYOUT_EBDA, E820_RAM},
	    {LAYOUT_EBDA, 0xa0000 - LAYOUT_EBDA, E820_RESERVED},
	    {LAYOUT_ACPI, LAYOUT_ACPI_SIZE, E820_RESERVED},
	    {LAYOUT_KERNEL, guest_mem_lowmem_end(mem) - LAYOUT_KERNEL, E820_RAM},
	    {LAYOUT_PCI_ECAM, LAYOUT_PCI_ECAM_SIZE, E820_RESERVED},
	};
	unsigned int n = 0;

	for (unsigned int i = 0; i < sizeof(all) / sizeof(all[0]) && n < max; i++)
		map[n++] = all[i];
	for (unsigned int i = 1; i < mem->nr_regions && n < max; i++)
		map[n++] = (struct e820_entry){mem->regions[i].gpa, mem->regions[i].size, E820_RAM};
	return n;
}

int boot_setup_page_tables(struct guest_mem *mem)
{
	/* PML4, PDPT, then four page directories of 2 MiB pages: 4 GiB. */
	const uint64_t pml4_gpa = LAYOUT_PAGE_TABLES, pdpt_gpa = pml4_gpa + PAGE_SIZE,
	               pd_gpa = pdpt_gpa + PAGE_SIZE;
	const uint64_t present_rw = 0x3, page_size = 0x80;
	uint64_t *pml4 = guest_mem_ptr(mem, pml4_gpa, PAGE_SIZE);
	uint64_t *pdpt = guest_mem_ptr(mem, pdpt_gpa, PAGE_SIZE);
	uint64_t *pd = guest_mem_ptr(mem, pd_gpa, 4 * PAGE_SIZE);
	uint64_t *gdt = guest_mem_ptr(mem, LAYOUT_GDT, BOOT_GDT_ENTRIES * 8);

	if (!pml4 || !pdpt || !pd || !gdt)
		return -EFAULT;
	pml4[0] = pdpt_gpa | present_rw;
	for (int i = 0; i < 4; i++)
		pdpt[i] = (pd_gpa + i * PAGE_SIZE) | present_rw;
	for (int i = 0; i < 4 * 512; i++)
		pd[i] = ((uint64_t)i * SZ_2M) | present_rw | page_size;

	/* Flat descriptors, Intel SDM vol. 3A §3.4.5. */
	gdt[0] = 0;
	gdt[1] = 0;
	gdt[BOOT_GDT_CS64 / 8] = 0x00af9b000000ffffULL; /* 64-bit code, L=1 */
	gdt[BOOT_GDT_DS / 8] = 0x00cf93000000ffffULL;   /* 4 GiB data */
	gdt[BOOT_GDT_TSS / 8] = 0x00008b0000000067ULL;  /* busy TSS */
	gdt[BOOT_GDT_CS32 / 8] = 0x00cf9b000000ffffULL; /* 32-bit code, D=1 */
	return 0;
}

/*
 * Place the initrd as high in low RAM as it fits, below @limit and above
 * @floor, then read it straight into guest memory.
 */
static int boot_load_initrd(struct guest_mem *mem, const char *path, uint64_t floor, uint64_t limit,
                            struct boot_info *info)
{
	struct stat st;
	uint64_t gpa, size, done = 0;
	uint8_t *dst;
	int fd, r = 0;

	fd = fs_open_input(path, O_RDONLY, &st);
	if (fd < 0) {
		log_error("initrd '%s': %s", path,
		          fd == -EINVAL ? "not a regular file" : fs_strerror(fd));
		return fd;
	}
	if (!S_ISREG(st.st_mode)) {
		log_error("initrd '%s': not a regular file", path);
		r = -EINVAL;
		goto out;
	}
	size = st.st_size;
	if (limit > guest_mem_lowmem_end(mem))
		limit = guest_mem_lowmem_end(mem);
	floor = ALIGN_UP(floor, PAGE_SIZE);
	if (size > limit || ALIGN_DOWN(limit - size, PAGE_SIZE) < floor) {
		log_error("initrd '%s' (%llu MiB) does not fit in guest memory below %llu MiB "
		          "after the kernel; give the VM more memory",
		          path, (unsigned long long)(size >> 20),
		          (unsigned long long)(limit >> 20));
		r = -E2BIG;
		goto out;
	}
	gpa = ALIGN_DOWN(limit - size, PAGE_SIZE);
	dst = guest_mem_ptr(mem, gpa, size);
	if (!dst) {
		r = -EFAULT;
		goto out;
	}
	while (done < size) {
		ssize_t n = pread(fd, dst + done, size - done, done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = n < 0 ? -errno : -EIO;
			log_error("initrd '%s': read failed", path);
			goto out;
		}
		done += n;
	}
	info->initrd_gpa = gpa;
	info->initrd_size = size;
out:
	close(fd);
	return r;
}

static int boot_write_cmdline(struct guest_mem *mem, const char *cmdline, uint64_t max_len)
{
	size_t len = cmdline ? strlen(cmdline) : 0;
	char *dst;

	if (max_len > LAYOUT_CMDLINE_MAX - 1)
		max_len = LAYOUT_CMDLINE_MAX - 1;
	if (len > max_len) {
		log_error("kernel command line is %zu bytes; this kernel accepts at most %llu", len,
		          (unsigned long long)max_len);
		return -E2BIG;
	}
	dst = guest_mem_ptr(mem, LAYOUT_CMDLINE, len + 1);
	if (!dst)
		return -EFAULT;
	memcpy(dst, cmdline ? cmdline : "", len);
	dst[len] = '\0';
	return 0;
}

/* Linux bzImage through the 64-bit entry point. */
static int boot_load_bzimage(struct guest_mem *mem, const struct boot_config *cfg,
                             const struct mapped_file *k, struct boot_info *info)
{
	const uint8_t *f = k->data;
	struct e820_entry e820[E820_MAX_ENTRIES];
	unsigned int setup_sects, nr_e820;
	uint64_t payload_off, payload_size, need_end, hdr_end, initrd_max;
	uint16_t version;
	uint8_t *zp, *dst;
	int r;

	version = get16(f + HDR_VERSION);
	if (version < BOOT_PROTOCOL_MIN || k->size < HDR_END_MIN) {
		log_error(
		    "kernel '%s': boot protocol %u.%02u is too old; nestvm needs 2.12 or later",
		    cfg->kernel_path, version >> 8, version & 0xff);
		return -ENOEXEC;
	}
	if (!(f[HDR_XLOADFLAGS] & XLF_KERNEL_64) || !(f[HDR_LOADFLAGS] & LOADFLAGS_LOADED_HIGH)) {
		log_error("kernel '%s': bzImage has no 64-bit entry point", cfg->kernel_path);
		return -ENOEXEC;
	}
	setup_sects = f[HDR_SETUP_SECTS] ? f[HDR_SETUP_SECTS] : 4;
	payload_off = (setup_sects + 1) * 512ULL;
	if (payload_off >= k->size) {
		log_error("kernel '%s': truncated (no protected-mode payload)", cfg->kernel_path);
		return -ENOEXEC;
	}
	payload_size = k->size - payload_off;

	/* The kernel needs init_size bytes where it runs: 1 MiB, or 16 MiB if relocatable. */
	need_end = LAYOUT_KERNEL + payload_size;
	if (LAYOUT_KERNEL + get32(f + HDR_INIT_SIZE) > need_end)
		need_end = LAYOUT_KERNEL + get32(f + HDR_INIT_SIZE);
	if (f[HDR_RELOCATABLE] && get64(f + HDR_PREF_ADDRESS) >= LAYOUT_KERNEL &&
	    get64(f + HDR_PREF_ADDRESS) + get32(f + HDR_INIT_SIZE) > need_end)
		need_end = get64(f + HDR_PREF_ADDRESS) + get32(f + HDR_INIT_SIZE);
	if (need_end > guest_mem_lowmem_end(mem)) {
		log_error(
		    "kernel '%s' needs %llu MiB of memory to decompress and run; give the VM more",
		    cfg->kernel_path, (unsigned long long)((need_end + SZ_1M - 1) >> 20));
		return -E2BIG;
	}
	dst = guest_mem_ptr(mem, LAYOUT_KERNEL, payload_size);
	zp = guest_mem_ptr(mem, LAYOUT_ZERO_PAGE, ZERO_PAGE_SIZE);
	if (!dst || !zp)
		return -EFAULT;
	memcpy(dst, f + payload_off, payload_size);

	/* boot_params: zero, then the setup header exactly as the file has it. */
	memset(zp, 0, ZERO_PAGE_SIZE);
	hdr_end = HDR_HEADER + f[HDR_JUMP + 1];
	if (hdr_end > k->size)
		hdr_end = k->size;
	if (hdr_end > BP_E820_TABLE)
		hdr_end = BP_E820_TABLE;
	memcpy(zp + BP_HDR, f + BP_HDR, hdr_end - BP_HDR);
	zp[HDR_TYPE_OF_LOADER] = LOADER_TYPE_UNDEFINED;
	memcpy(zp + HDR_VID_MODE, &(uint16_t){VID_MODE_NORMAL}, 2);

	r = boot_write_cmdline(mem, cfg->cmdline, get32(f + HDR_CMDLINE_SIZE));
	if (r < 0)
		return r;
	put32(zp + HDR_CMD_LINE_PTR, (uint32_t)LAYOUT_CMDLINE);
	put32(zp + BP_EXT_CMD_LINE_PTR, (uint32_t)(LAYOUT_CMDLINE >> 32));

	info->kernel_end = need_end;
	if (cfg->initrd_path) {
		initrd_max = (uint64_t)get32(f + HDR_INITRD_ADDR_MAX) + 1;
		r = boot_load_initrd(mem, cfg->initrd_path, need_end, initrd_max, info);
		if (r < 0)
			return r;
		put32(zp + HDR_RAMDISK_IMAGE, (uint32_t)info->initrd_gpa);
		put32(zp + HDR_RAMDISK_SIZE, (uint32_t)info->initrd_size);
		put32(zp + BP_EXT_RAMDISK_IMAGE, (uint32_t)(info->initrd_gpa >> 32));
		put32(zp + BP_EXT_RAMDISK_SIZE, (uint32_t)(info->initrd_size >> 32));
	}
	put64(zp + BP_ACPI_RSDP_ADDR, cfg->rsdp_gpa);
	nr_e820 = boot_build_e820(mem, e820, E820_MAX_ENTRIES);
	zp[BP_E820_ENTRIES] = (uint8_t)nr_e820;
	memcpy(zp + BP_E820_TABLE, e820, nr_e820 * sizeof(e820[0]));

	info->mode = BOOT_ENTRY_LONG64;
	info->entry = LAYOUT_KERNEL + 0x200;
	info->info_gpa = LAYOUT_ZERO_PAGE;
	return 0;
}

/* Find the PVH entry in an ELF PT_NOTE segment; 0 if absent. */
static uint64_t elf_find_pvh_entry(const uint8_t *note, uint64_t size)
{
	uint64_t off = 0;

	while (size - off >= 12) {
		uint32_t namesz = get32(note + off), descsz = get32(note + off + 4),
		         type = get32(note + off + 8);
		uint64_t name_off = off + 12, desc_off = name_off + ALIGN_UP((uint64_t)namesz, 4);
		uint64_t next = desc_off + ALIGN_UP((uint64_t)descsz, 4);

		if (desc_off > size || next > size)
			return 0;
		if (type == XEN_ELFNOTE_PHYS32_ENTRY && namesz == 4 &&
		    !memcmp(note + name_off, "Xen", 4)) {
			if (descsz == 8)
				return get64(note + desc_off);
			if (descsz == 4)
				return get32(note + desc_off);
		}
		off = next;
	}
	return 0;
}

/* ELF image (Linux vmlinux or the probe) through its PVH entry. */
static int boot_load_elf(struct guest_mem *mem, const struct boot_config *cfg,
                         const struct mapped_file *k, struct boot_info *info)
{
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)k->data;
	struct e820_entry e820[E820_MAX_ENTRIES];
	struct hvm_start_info *si;
	struct hvm_memmap_table_entry *mm;
	uint64_t entry = 0, kernel_end = 0;
	unsigned int nr_e820;
	int r;

	if (k->size < sizeof(*eh) || eh->e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh->e_machine != EM_X86_64) {
		log_error("kernel '%s': not a 64-bit x86 ELF image", cfg->kernel_path);
		return -ENOEXEC;
	}
	if (eh->e_phentsize != sizeof(Elf64_Phdr) || eh->e_phoff > k->size ||
	    (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr) > k->size - eh->e_phoff) {
		log_error("kernel '%s': truncated or corrupt ELF program headers",
		          cfg->kernel_path);
		return -ENOEXEC;
	}
	for (unsigned int i = 0; i < eh->e_phnum; i++) {
		Elf64_Phdr ph;
		uint8_t *dst;

		memcpy(&ph, k->data + eh->e_phoff + i * sizeof(ph), sizeof(ph));
		if (ph.p_type != PT_LOAD && ph.p_type != PT_NOTE)
			continue;
		if (ph.p_offset > k->size || ph.p_filesz > k->size - ph.p_offset ||
		    (ph.p_type == PT_LOAD && ph.p_filesz > ph.p_memsz)) {
			log_error("kernel '%s': truncated (segment %u extends past end of file)",
			          cfg->kernel_path, i);
			return -ENOEXEC;
		}
		if (ph.p_type == PT_NOTE) {
			if (!entry)
				entry = elf_find_pvh_entry(k->data + ph.p_offset, ph.p_filesz);
			continue;
		}
		dst = guest_mem_ptr(mem, ph.p_paddr, ph.p_memsz);
		if (!dst || ph.p_paddr < LAYOUT_KERNEL) {
			log_error("kernel '%s': segment at 0x%llx (%llu KiB) is outside guest RAM; "
			          "give the VM more memory",
			          cfg->kernel_path, (unsigned long long)ph.p_paddr,
			          (unsigned long long)(ph.p_memsz >> 10));
			return -E2BIG;
		}
		/* The rest up to p_memsz (.bss) is fresh anonymous memory: already zero. */
		memcpy(dst, k->data + ph.p_offset, ph.p_filesz);
		if (ph.p_paddr + ph.p_memsz > kernel_end)
			kernel_end = ph.p_paddr + ph.p_memsz;
	}
	if (!entry) {
		log_error("kernel '%s': ELF image has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY)",
		          cfg->kernel_path);
		return -ENOEXEC;
	}
	r = boot_write_cmdline(mem, cfg->cmdline, LAYOUT_CMDLINE_MAX - 1);
	if (r < 0)
		return r;
	si = guest_mem_ptr(mem, LAYOUT_PVH_START_INFO, PAGE_SIZE);
	if (!si)
		return -EFAULT;
	memset(si, 0, PAGE_SIZE);
	si->magic = HVM_START_MAGIC;
	si->version = HVM_START_INFO_VERSION;
	si->cmdline_paddr = LAYOUT_CMDLINE;
	si->rsdp_paddr = cfg->rsdp_gpa;
	info->kernel_end = kernel_end;
	if (cfg->initrd_path) {
		struct hvm_modlist_entry *mod;

		r = boot_load_initrd(mem, cfg->initrd_path, kernel_end, LAYOUT_LOWMEM_MAX, info);
		if (r < 0)
			return r;
		mod = (struct hvm_modlist_entry *)((uint8_t *)si + PVH_MODLIST_OFFSET);
		mod->paddr = info->initrd_gpa;
		mod->size = info->initrd_size;
		si->nr_modules = 1;
		si->modlist_paddr = LAYOUT_PVH_START_INFO + PVH_MODLIST_OFFSET;
	}
	nr_e820 = boot_build_e820(mem, e820, E820_MAX_ENTRIES);
	mm = (struct hvm_memmap_table_entry *)((uint8_t *)si + PVH_MEMMAP_OFFSET);
	for (unsigned int i = 0; i < nr_e820; i++)
		mm[i] =
		    (struct hvm_memmap_table_entry){e820[i].addr, e820[i].size, e820[i].type, 0};
	si->memmap_paddr = LAYOUT_PVH_START_INFO + PVH_MEMMAP_OFFSET;
	si->memmap_entries = nr_e820;

	info->mode = BOOT_ENTRY_PVH32;
	info->entry = entry;
	info->info_gpa = LAYOUT_PVH_START_INFO;
	return 0;
}

int boot_load(struct guest_mem *mem, const struct boot_config *cfg, struct boot_info *out)
{
	struct mapped_file k;
	int r;

	memset(out, 0, sizeof(*out));
	r = file_map("kernel", cfg->kernel_path, &k);
	if (r < 0)
		return r;
	if (k.size >= 4 && !memcmp(k.data, ELFMAG, SELFMAG)) {
		r = boot_load_elf(mem, cfg, &k, out);
	} else if (k.size > HDR_HEADER + 4 && get16(k.data + HDR_BOOT_FLAG) == BOOT_FLAG_MAGIC &&
	           get32(k.data + HDR_HEADER) == HDR_MAGIC) {
		r = boot_load_bzimage(mem, cfg, &k, out);
	} else {
		log_error("kernel '%s': not a kernel image (neither a bzImage nor an ELF vmlinux)",
		          cfg->kernel_path);
		r = -ENOEXEC;
	}
	if (r == 0)
		r = boot_setup_page_tables(mem);
	file_unmap(&k);
	return r;
}
