/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the kernel loader (bzImage setup header, ELF program
 * headers and PVH notes) on arbitrary files. A kernel image is untrusted
 * input: whatever it holds, boot_load() must return an error or load it
 * inside guest memory, never read or write out of bounds.
 */
#include "arch/x86/boot.h"
#include "core/log.h"
#include "fuzz_common.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define FUZZ_MEM (64ULL << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct guest_mem mem;
	static char path[512];
	struct boot_config cfg = {.cmdline = "console=ttyS0", .rsdp_gpa = 0xe0000};
	struct boot_info info;
	FILE *fp;

	if (!mem.nr_regions) {
		log_set_level(LOG_NONE);
		if (guest_mem_init(&mem, FUZZ_MEM, 0) < 0)
			abort();
		snprintf(path, sizeof(path), "%s/kernel", fz_tmpdir("boot"));
	}
	fp = fopen(path, "wb");
	if (!fp)
		abort();
	fwrite(data, 1, size, fp);
	fclose(fp);
	cfg.kernel_path = path;
	if (boot_load(&mem, &cfg, &info) == 0) {
		/* A loaded kernel's entry and boot info must lie in guest RAM. */
		if (!guest_mem_ptr(&mem, info.info_gpa, 1) || info.kernel_end > FUZZ_MEM)
			abort();
	}
	return 0;
}
