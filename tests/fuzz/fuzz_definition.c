/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the VM definition loader (manager/vm_def.c, store.c). A vm.json
 * may be edited by hand, so whatever it holds, loading it must give a valid
 * definition or an error message, never crash or leak. The input is written
 * as NAME/vm.json of a store in a per-process temporary directory and
 * loaded with store_load(), as every nestvm command does; then:
 *
 *   - store_load() and vm_def_parse() on the same bytes agree: both accept
 *     (and the name must be the directory's) with the same result, or the
 *     load fails; a refusal comes with a message;
 *   - what is accepted has a distinct PCI slot for every device;
 *   - what is accepted passes vm_def_validate(), and survives a round trip
 *     through store_save() and store_load() unchanged, and through
 *     vm_def_format() and vm_def_parse().
 *
 * Seeds: tests/fuzz/seeds/fuzz_definition/.
 */
#include "core/log.h"
#include "fuzz_common.h"
#include "manager/store.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>

#define VM_NAME "fuzzvm"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool str_eq(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

static bool def_equal(const struct vm_def *a, const struct vm_def *b)
{
	if (strcmp(a->name, b->name) || a->cpus != b->cpus || a->memory_mib != b->memory_mib ||
	    a->nested != b->nested || !str_eq(a->kernel, b->kernel) ||
	    !str_eq(a->initrd, b->initrd) || !str_eq(a->cmdline, b->cmdline) ||
	    a->nr_disks != b->nr_disks || a->nr_nics != b->nr_nics)
		return false;
	if (a->hugepages != b->hugepages || a->pit != b->pit || a->rng.enabled != b->rng.enabled ||
	    a->rng.pci_slot != b->rng.pci_slot || a->vsock.cid != b->vsock.cid ||
	    !str_eq(a->vsock.socket, b->vsock.socket) || a->vsock.pci_slot != b->vsock.pci_slot ||
	    !str_eq(a->console.socket, b->console.socket) ||
	    a->console.nr_ports != b->console.nr_ports || a->console.pci_slot != b->console.pci_slot)
		return false;
	for (unsigned int i = 0; i < a->nr_disks; i++)
		if (!str_eq(a->disks[i].path, b->disks[i].path) ||
		    a->disks[i].readonly != b->disks[i].readonly || a->disks[i].io != b->disks[i].io ||
		    a->disks[i].pci_slot != b->disks[i].pci_slot)
			return false;
	for (unsigned int i = 0; i < a->nr_nics; i++)
		if (strcmp(a->nics[i].mac, b->nics[i].mac) ||
		    !str_eq(a->nics[i].network, b->nics[i].network))
			return false;
	for (unsigned int i = 0; i < a->console.nr_ports; i++)
		if (!str_eq(a->console.ports[i].name, b->console.ports[i].name) ||
		    !str_eq(a->console.ports[i].socket, b->console.ports[i].socket))
			return false;
	return true;
}

/* Every device of an accepted definition is at its own slot of bus 0. */
static void check_slots(const struct vm_def *def)
{
	unsigned int slots[STORE_MAX_DISKS + 3], n = 0;

	for (unsigned int i = 0; i < def->nr_disks; i++)
		slots[n++] = def->disks[i].pci_slot;
	if (def->rng.enabled)
		slots[n++] = def->rng.pci_slot;
	if (def->vsock.cid)
		slots[n++] = def->vsock.pci_slot;
	if (vm_def_has_console(def))
		slots[n++] = def->console.pci_slot;
	for (unsigned int i = 0; i < n; i++) {
		FZ_CHECK(slots[i] >= VM_DEF_PCI_SLOT_MIN && slots[i] <= VM_DEF_PCI_SLOT_MAX);
		for (unsigned int j = 0; j < i; j++)
			FZ_CHECK(slots[i] != slots[j]);
	}
}

static void check_message(const struct mgr_err *err)
{
	FZ_CHECK(memchr(err->msg, '\0', sizeof(err->msg)) && err->msg[0]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct store st;
	static char file[STORE_PATH_MAX];
	struct vm_def parsed, loaded, again;
	struct mgr_err err;
	int rp, rl, fd;
	char *text;

	if (!file[0]) {
		char dir[STORE_PATH_MAX];

		log_set_level(LOG_NONE);
		FZ_CHECK(store_open(&st, fz_tmpdir("definition"), &err) == 0);
		FZ_CHECK(store_path(&st, VM_NAME, NULL, dir, sizeof(dir)) == 0);
		FZ_CHECK(mkdir(dir, 0700) == 0);
		FZ_CHECK(store_path(&st, VM_NAME, "vm.json", file, sizeof(file)) == 0);
	}
	fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	FZ_CHECK(fd >= 0);
	FZ_CHECK(write(fd, data, size) == (ssize_t)size);
	close(fd);

	memset(&err, 0, sizeof(err));
	rp = vm_def_parse((const char *)data, size, file, &parsed, &err);
	if (rp < 0) {
		FZ_CHECK(rp == -EINVAL);
		check_message(&err);
	}
	memset(&err, 0, sizeof(err));
	rl = store_load(&st, VM_NAME, &loaded, &err);
	if (rl < 0) {
		FZ_CHECK(rl == -EINVAL);
		check_message(&err);
		FZ_CHECK(rp < 0 || strcmp(parsed.name, VM_NAME));
		vm_def_clear(&parsed);
		return 0;
	}
	FZ_CHECK(rp == 0 && def_equal(&parsed, &loaded));
	check_slots(&loaded);
	FZ_CHECK(vm_def_validate(&loaded, &err) == 0);

	/* Saved and loaded back, it is the same definition. */
	FZ_CHECK(store_save(&st, &loaded, &err) == 0);
	FZ_CHECK(store_load(&st, VM_NAME, &again, &err) == 0);
	FZ_CHECK(def_equal(&loaded, &again));
	vm_def_clear(&again);

	/* And through the formatter alone. */
	text = vm_def_format(&loaded);
	FZ_CHECK(text);
	FZ_CHECK(vm_def_parse(text, strlen(text), "formatted", &again, &err) == 0);
	FZ_CHECK(def_equal(&loaded, &again));
	free(text);
	vm_def_clear(&again);
	vm_def_clear(&loaded);
	vm_def_clear(&parsed);
	return 0;
}
