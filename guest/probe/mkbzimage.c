// SPDX-License-Identifier: MIT
/*
 * mkbzimage: wrap the probe ELF into a Linux boot protocol image (bzImage).
 *
 *   mkbzimage <probe.elf> <setup.bin> <probe.bzImage>
 *
 * Layout (Linux Documentation/arch/x86/boot.rst): one boot sector holding the
 * setup header at 0x1f1, one setup sector (setup_sects = 1) whose code,
 * setup.bin, starts at 0x280 behind a jump at 0x200, then the flat
 * protected-mode payload: the ELF's PT_LOAD segments from PROBE_LOAD_ADDR
 * on, so that the 32-bit entry is at payload + 0 and the 64-bit one at
 * payload + 0x200. The payload is not relocatable and not compressed.
 */
#include <elf.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch.h"

#define SETUP_SECTS 1
#define SECTOR 512
#define SETUP_SIZE ((SETUP_SECTS + 1) * SECTOR)
#define SETUP_CODE 0x280
#define PAYLOAD_MAX (64u << 20)

/* Setup header offsets in the image (boot.rst, "The real-mode kernel header"). */
#define HDR_SETUP_SECTS 0x1f1
#define HDR_SYSSIZE 0x1f4
#define HDR_VID_MODE 0x1fa
#define HDR_BOOT_FLAG 0x1fe
#define HDR_JUMP 0x200
#define HDR_HEADER 0x202
#define HDR_VERSION 0x206
#define HDR_KERNEL_VERSION 0x20e
#define HDR_LOADFLAGS 0x211
#define HDR_CODE32_START 0x214
#define HDR_INITRD_ADDR_MAX 0x22c
#define HDR_KERNEL_ALIGNMENT 0x230
#define HDR_RELOCATABLE 0x234
#define HDR_MIN_ALIGNMENT 0x235
#define HDR_XLOADFLAGS 0x236
#define HDR_CMDLINE_SIZE 0x238
#define HDR_PREF_ADDRESS 0x258
#define HDR_INIT_SIZE 0x260
#define HDR_END 0x268 /* end of the 2.14 header */

#define BOOT_FLAG 0xaa55
#define HEADER_MAGIC 0x53726448 /* "HdrS" */
#define BOOT_PROTOCOL 0x020e    /* 2.14: acpi_rsdp_addr */
#define VID_MODE_NORMAL 0xffff
#define LOADED_HIGH 0x01
#define XLF_KERNEL_64 0x01
#define CMDLINE_SIZE (4096 - 1)
#define VERSION_STRING "nestvm probe"

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = v;
	p[1] = v >> 8;
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, v);
	put16(p + 2, v >> 16);
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, v);
	put32(p + 4, v >> 32);
}

/* Read all of `path` into a malloc'd buffer; returns NULL with a message. */
static uint8_t *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	long n;

	if (!f) {
		fprintf(stderr, "mkbzimage: %s: %s\n", path, strerror(errno));
		return NULL;
	}
	if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0)
		goto fail;
	buf = malloc(n ? n : 1);
	if (!buf || fread(buf, 1, n, f) != (size_t)n)
		goto fail;
	fclose(f);
	*len = n;
	return buf;
fail:
	fprintf(stderr, "mkbzimage: cannot read %s\n", path);
	free(buf);
	fclose(f);
	return NULL;
}

/*
 * Flatten the PT_LOAD segments of `elf` into `payload` (PAYLOAD_MAX bytes,
 * zeroed), starting at PROBE_LOAD_ADDR. Returns 0 and the file size and the
 * memory size (with .bss), or -1 with a message.
 */
static int elf_flatten(const uint8_t *elf, size_t len, uint8_t *payload, size_t *file_size,
                       size_t *mem_size)
{
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)elf;

	if (len < sizeof(*eh) || memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 ||
	    eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_machine != EM_X86_64 ||
	    eh->e_phentsize != sizeof(Elf64_Phdr) ||
	    eh->e_phoff + (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr) > len) {
		fprintf(stderr, "mkbzimage: not an x86-64 ELF64 executable\n");
		return -1;
	}
	*file_size = *mem_size = 0;
	for (unsigned int i = 0; i < eh->e_phnum; i++) {
		const Elf64_Phdr *ph = (const Elf64_Phdr *)(elf + eh->e_phoff) + i;

		if (ph->p_type != PT_LOAD || ph->p_memsz == 0)
			continue;
		if (ph->p_paddr < PROBE_LOAD_ADDR || ph->p_filesz > ph->p_memsz ||
		    ph->p_paddr + ph->p_memsz > PROBE_LOAD_ADDR + (uint64_t)PAYLOAD_MAX ||
		    ph->p_offset + ph->p_filesz > len) {
			fprintf(stderr, "mkbzimage: segment %u outside [0x%x, +%u MiB)\n", i,
			        PROBE_LOAD_ADDR, PAYLOAD_MAX >> 20);
			return -1;
		}
		uint64_t off = ph->p_paddr - PROBE_LOAD_ADDR;
		memcpy(payload + off, elf + ph->p_offset, ph->p_filesz);
		if (ph->p_filesz && off + ph->p_filesz > *file_size)
			*file_size = off + ph->p_filesz;
		if (off + ph->p_memsz > *mem_size)
			*mem_size = off + ph->p_memsz;
	}
	if (*file_size <= 0x200) {
		fprintf(stderr, "mkbzimage: no 64-bit entry at payload + 0x200\n");
		return -1;
	}
	return 0;
}

static void setup_header(uint8_t *s, size_t payload_size, size_t mem_size)
{
	s[HDR_SETUP_SECTS] = SETUP_SECTS;
	put32(s + HDR_SYSSIZE, (payload_size + 15) / 16);
	put16(s + HDR_VID_MODE, VID_MODE_NORMAL);
	put16(s + HDR_BOOT_FLAG, BOOT_FLAG);
	s[HDR_JUMP] = 0xeb; /* jmp short SETUP_CODE */
	s[HDR_JUMP + 1] = SETUP_CODE - (HDR_JUMP + 2);
	put32(s + HDR_HEADER, HEADER_MAGIC);
	put16(s + HDR_VERSION, BOOT_PROTOCOL);
	put16(s + HDR_KERNEL_VERSION, HDR_END - 0x200);
	s[HDR_LOADFLAGS] = LOADED_HIGH;
	put32(s + HDR_CODE32_START, PROBE_LOAD_ADDR);
	put32(s + HDR_INITRD_ADDR_MAX, 0x7fffffff);
	put32(s + HDR_KERNEL_ALIGNMENT, 0x1000);
	s[HDR_RELOCATABLE] = 0;
	s[HDR_MIN_ALIGNMENT] = 12;
	put16(s + HDR_XLOADFLAGS, XLF_KERNEL_64);
	put32(s + HDR_CMDLINE_SIZE, CMDLINE_SIZE);
	put64(s + HDR_PREF_ADDRESS, PROBE_LOAD_ADDR);
	put32(s + HDR_INIT_SIZE, (mem_size + 0xfff) & ~0xfffu);
	memcpy(s + HDR_END, VERSION_STRING, sizeof(VERSION_STRING));
}

int main(int argc, char **argv)
{
	uint8_t setup[SETUP_SIZE] = {0};
	uint8_t *elf = NULL, *code = NULL, *payload = NULL;
	size_t elf_len, code_len, file_size, mem_size, padded;
	FILE *out = NULL;
	int ret = 1;

	if (argc != 4) {
		fprintf(stderr, "usage: mkbzimage <probe.elf> <setup.bin> <probe.bzImage>\n");
		return 2;
	}
	elf = read_file(argv[1], &elf_len);
	code = read_file(argv[2], &code_len);
	payload = calloc(1, PAYLOAD_MAX);
	if (!elf || !code || !payload)
		goto out;
	if (code_len > SETUP_SIZE - SETUP_CODE) {
		fprintf(stderr, "mkbzimage: %s is %zu bytes, room for %d\n", argv[2], code_len,
		        SETUP_SIZE - SETUP_CODE);
		goto out;
	}
	if (elf_flatten(elf, elf_len, payload, &file_size, &mem_size) < 0)
		goto out;
	memcpy(setup + SETUP_CODE, code, code_len);
	setup_header(setup, file_size, mem_size);

	padded = (file_size + 15) & ~(size_t)15;
	out = fopen(argv[3], "wb");
	if (!out || fwrite(setup, 1, sizeof(setup), out) != sizeof(setup) ||
	    fwrite(payload, 1, padded, out) != padded) {
		fprintf(stderr, "mkbzimage: cannot write %s\n", argv[3]);
		goto out;
	}
	ret = 0;
out:
	if (out && fclose(out) != 0)
		ret = 1;
	if (ret && out)
		remove(argv[3]);
	free(elf);
	free(code);
	free(payload);
	return ret;
}
