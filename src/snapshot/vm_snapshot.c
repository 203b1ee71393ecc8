/* SPDX-License-Identifier: MIT */
/* Saving a VM into a directory and building one back from it (snapshot/vm_snapshot.h). */
#include "snapshot/vm_snapshot.h"

#include "arch/x86/vcpu_state.h"
#include "core/device.h"
#include "core/fsutil.h"
#include "core/log.h"
#include "kvm/kvm.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PAGE_SIZE_4K 4096u
#define SCAN_CHUNK (2u << 20)        /* pagemap and zero-scan granule */
#define PAGEMAP_PRESENT (1ull << 63) /* Documentation/admin-guide/mm/pagemap.rst */
#define PAGEMAP_SWAPPED (1ull << 62)
#define WRITE_RUN_MAX (8u << 20)     /* largest single pwrite() */
#define PROGRESS_STEP (64ull << 20)  /* report every this many bytes */
#define QUIESCE_TRIES 100

static const struct snap_section_type machine_section_type = {
    .type = SNAPSHOT_SEC_MACHINE,
    .name = "machine",
    .flags = SNAP_TYPE_REQUIRED,
    .max_instances = 1,
    .min_version = 1,
    .max_version = 1,
    .min_len = 8 + 4 + 1 + 4 + 12 + 4,
    .max_len = 8 + 4 + 1 + 4 + 12 + 4,
};

/* The schema of a VM snapshot: the machine, the KVM state's types, the devices'. */
static struct snap_section_type schema_types[64];
static struct snap_schema schema;
static pthread_once_t schema_once = PTHREAD_ONCE_INIT;

static void schema_build(void)
{
	unsigned int n = 0;

	schema_types[n++] = machine_section_type;
	for (unsigned int i = 0; i < vcpu_state_nr_section_types && n < 63; i++)
		schema_types[n++] = vcpu_state_section_types[i];
	schema_types[n++] = device_section_type;
	schema = (struct snap_schema){schema_types, n};
}

static const struct snap_schema *vm_snapshot_schema(void)
{
	pthread_once(&schema_once, schema_build);
	return &schema;
}

/* The host's CPU as its KVM shows it: vendor (leaf 0) and signature (leaf 1 EAX). */
static int host_cpu(struct kvm_sys *sys, struct snapshot_machine *m)
{
	struct kvm_cpuid2 *c = NULL;
	int r = kvm_get_supported_cpuid(sys, &c);

	if (r < 0)
		return r;
	for (uint32_t i = 0; i < c->nent; i++) {
		const struct kvm_cpuid_entry2 *e = &c->entries[i];

		if (e->function == 0) {
			memcpy(m->cpu_vendor, &e->ebx, 4);
			memcpy(m->cpu_vendor + 4, &e->edx, 4);
			memcpy(m->cpu_vendor + 8, &e->ecx, 4);
			m->cpu_vendor[12] = 0;
		} else if (e->function == 1) {
			m->cpu_signature = e->eax;
		}
	}
	free(c);
	return 0;
}

static int machine_write(struct snap_writer *w, const struct snapshot_machine *m)
{
	struct dev_state s = {0};
	int r;

	ds_put_u64(&s, m->ram_size);
	ds_put_u32(&s, m->nr_vcpus);
	ds_put_bool(&s, m->nested);
	ds_put_u32(&s, m->nr_devices);
	ds_put_bytes(&s, m->cpu_vendor, 12);
	ds_put_u32(&s, m->cpu_signature);
	r = s.error ? s.error
	            : snap_writer_add(w, SNAPSHOT_SEC_MACHINE, 0, 1, 0, s.buf, s.len);
	ds_release(&s);
	return r;
}

static int machine_read(struct snap_reader *r, struct snapshot_machine *m)
{
	const struct snap_section *s = snap_reader_find(r, SNAPSHOT_SEC_MACHINE, 0);
	struct dev_state_in in;

	if (!s)
		return snap_reader_fail(r, -EBADMSG, "it has no machine section");
	dsi_init(&in, s->data, s->length);
	memset(m, 0, sizeof(*m));
	m->ram_size = dsi_get_u64(&in);
	m->nr_vcpus = dsi_get_u32(&in);
	m->nested = dsi_get_bool(&in);
	m->nr_devices = dsi_get_u32(&in);
	dsi_get_bytes(&in, m->cpu_vendor, 12);
	m->cpu_signature = dsi_get_u32(&in);
	dsi_check(&in, m->nr_vcpus == r->nr_vcpus, "it names %u vCPUs, its header %u",
	          m->nr_vcpus, r->nr_vcpus);
	dsi_check(&in, m->ram_size && !(m->ram_size & (PAGE_SIZE_4K - 1)),
	          "its memory size %llu is not a whole number of pages",
	          (unsigned long long)m->ram_size);
	dsi_check(&in, m->nr_devices <= DEVICE_LIST_MAX, "it has %u devices", m->nr_devices);
	if (dsi_finish(&in) < 0)
		return snap_reader_fail(r, -EBADMSG, "machine section: %s", in.why);
	return 0;
}

int vm_snapshot_parse(struct snap_reader *r, const void *buf, size_t size, const char *name,
                      struct snapshot_machine *m)
{
	int err = snap_reader_parse(r, buf, size, vm_snapshot_schema(), name);

	if (err == 0)
		err = machine_read(r, m);
	return err;
}

/* KVM_STATE_NESTED_RUN_PENDING on any vCPU: a VMRUN the saved state would not redo right. */
static bool vm_nested_run_pending(struct vm *vm)
{
	struct kvm_nested_state *ns;
	bool pending = false;

	if (!vm->cfg.nested || vm->nested_state_size < (int)sizeof(*ns))
		return false;
	ns = calloc(1, (size_t)vm->nested_state_size);
	if (!ns)
		return false;
	for (unsigned int i = 0; i < vm->nr_vcpus && !pending; i++) {
		memset(ns, 0, sizeof(*ns));
		ns->size = (uint32_t)vm->nested_state_size;
		if (kvm_ioctl(vm->vcpus[i].fd, KVM_GET_NESTED_STATE, ns) == 0)
			pending = ns->flags & KVM_STATE_NESTED_RUN_PENDING;
	}
	free(ns);
	return pending;
}

int vm_snapshot_quiesce(struct vm *vm)
{
	const struct timespec ms = {0, 1000000};

	for (int i = 0; i < QUIESCE_TRIES; i++) {
		int r = vm_quiesce(vm);

		if (r < 0)
			return r;
		if (!vm_nested_run_pending(vm))
			return 0;
		vm_unquiesce(vm);
		nanosleep(&ms, NULL);
	}
	log_error("a vCPU stayed in the middle of entering its nested guest; not saved");
	return -EAGAIN;
}

static void progress_report(const struct snapshot_progress *p, const char *phase, uint64_t done,
                            uint64_t total)
{
	if (p && p->fn)
		p->fn(p->opaque, phase, done, total);
}

static bool page_is_zero(const uint8_t *p)
{
	uint64_t first;

	memcpy(&first, p, sizeof(first));
	return first == 0 && memcmp(p, p + 8, PAGE_SIZE_4K - 8) == 0;
}

static int write_all_at(int fd, const uint8_t *p, size_t len, uint64_t off)
{
	while (len) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ENOSPC;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

/*
 * Marks in @vec (a byte per page of [off, off + len)) the pages the file @fd
 * holds data for (lseek() SEEK_DATA/SEEK_HOLE). A file system that cannot
 * tell holes reports the whole file as data.
 */
static void file_data_pages(int fd, uint64_t off, uint64_t len, unsigned char *vec)
{
	uint64_t pos = off, end = off + len;

	while (pos < end) {
		off_t data = lseek(fd, (off_t)pos, SEEK_DATA), hole;

		if (data < 0 && errno == ENXIO)
			return; /* no data from pos to the end of the file */
		if (data < 0) {
			memset(vec + (pos - off) / PAGE_SIZE_4K, 1, (end - pos) / PAGE_SIZE_4K);
			return;
		}
		if ((uint64_t)data >= end)
			return;
		hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0 || (uint64_t)hole > end)
			hole = (off_t)end;
		for (uint64_t p = (uint64_t)data & ~(uint64_t)(PAGE_SIZE_4K - 1); p < (uint64_t)hole;
		     p += PAGE_SIZE_4K)
			vec[(p - off) / PAGE_SIZE_4K] = 1;
		pos = (uint64_t)hole;
	}
}

/*
 * Marks in @vec (a byte per page of [addr, addr + len), len <= SCAN_CHUNK)
 * the pages that have memory of their own, in RAM or swapped out, from
 * /proc/self/pagemap (@pagemap_fd). mincore() would not do: it says "not in
 * RAM" of a swapped-out page, which would then be saved as zero. Returns 0,
 * or -errno when it cannot tell (the caller then reads every page).
 */
static int mapped_pages(int pagemap_fd, const uint8_t *addr, uint64_t len, unsigned char *vec)
{
	uint64_t entries[SCAN_CHUNK / PAGE_SIZE_4K];
	size_t n = (size_t)(len / PAGE_SIZE_4K);
	off_t at = (off_t)((uintptr_t)addr / PAGE_SIZE_4K * sizeof(entries[0]));
	ssize_t got;

	if (pagemap_fd < 0)
		return -EBADF;
	got = pread(pagemap_fd, entries, n * sizeof(entries[0]), at);
	if (got != (ssize_t)(n * sizeof(entries[0])))
		return got < 0 ? -errno : -EIO;
	for (size_t i = 0; i < n; i++)
		vec[i] = (entries[i] & (PAGEMAP_PRESENT | PAGEMAP_SWAPPED)) != 0;
	return 0;
}

void vm_snapshot_data_pages(const struct vm *vm, int pagemap_fd, uint64_t off, uint64_t len,
                            unsigned char *vec)
{
	if (mapped_pages(pagemap_fd, vm->mem.ram + off, len, vec) < 0)
		memset(vec, 1, len / PAGE_SIZE_4K);
	else if (vm->mem.file_backed)
		file_data_pages(vm->mem.file_fd, off, len, vec);
}

/*
 * Guest RAM into @fd: a sparse file of ram_size bytes whose non-zero pages
 * are written. Only pages that may hold data are read: those with memory of
 * their own (mapped_pages()) and, for a file-backed RAM (a restored VM),
 * those its file has data for, which may have left the page cache.
 * A hole of the file the guest never wrote to is not read: through the
 * private mapping that would allocate the page in the file (on tmpfs, past
 * the file system's size: SIGBUS, and the monitor dies mid-save).
 * A run of non-zero pages goes on across scan chunks, up to WRITE_RUN_MAX a
 * write: with O_DIRECT, 8 MiB writes were 10-20% faster than 2 MiB ones on
 * the development host.
 */
static int memory_write(struct vm *vm, int fd, const struct snapshot_progress *p)
{
	const uint8_t *ram = vm->mem.ram;
	uint64_t size = vm->mem.ram_size, next_report = 0, run_start = 0, run_len = 0;
	unsigned char vec[SCAN_CHUNK / PAGE_SIZE_4K];
	int pagemap = fs_reopen("/proc/self/pagemap", O_RDONLY), r;

	if (pagemap < 0)
		log_debug("no /proc/self/pagemap (%s): every page of RAM is read", strerror(errno));
	if (ftruncate(fd, (off_t)size) < 0) {
		r = -errno;
		goto out;
	}
	for (uint64_t off = 0; off < size; off += SCAN_CHUNK) {
		uint64_t chunk = size - off < SCAN_CHUNK ? size - off : SCAN_CHUNK;
		unsigned int pages = (unsigned int)(chunk / PAGE_SIZE_4K);

		vm_snapshot_data_pages(vm, pagemap, off, chunk, vec);
		for (unsigned int i = 0; i < pages; i++) {
			uint64_t at = off + (uint64_t)i * PAGE_SIZE_4K;
			bool data = (vec[i] & 1) && !page_is_zero(ram + at);

			/* A run is contiguous: a page without data ends it. */
			if (data && run_len && run_len < WRITE_RUN_MAX) {
				run_len += PAGE_SIZE_4K;
				continue;
			}
			if (run_len) {
				r = write_all_at(fd, ram + run_start, run_len, run_start);
				if (r < 0)
					goto out;
			}
			run_start = at;
			run_len = data ? PAGE_SIZE_4K : 0;
		}
		if (off + chunk >= next_report || off + chunk == size) {
			progress_report(p, "memory", off + chunk, size);
			next_report = off + chunk + PROGRESS_STEP;
		}
	}
	r = run_len ? write_all_at(fd, ram + run_start, run_len, run_start) : 0;
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
out:
	if (pagemap >= 0)
		close(pagemap);
	return r;
}

/*
 * Write the memory file past the page cache (O_DIRECT) where the file
 * system allows: guest RAM is page-aligned and every write is whole pages at
 * page offsets, so the disk reads straight from guest memory. Buffered, each
 * page was first copied into a new page-cache page, ~2 s of CPU per GiB on
 * the development host, which left a save CPU-bound at a fraction of the
 * disk's speed (bench/snapshot.sh), and a saved VM's memory a second time in
 * host RAM. A restore reads the pages the guest touches from the disk.
 */
static void memory_file_direct(int fd)
{
	int flags = fcntl(fd, F_GETFL);

	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_DIRECT) < 0)
		log_debug("the memory file goes through the page cache: %s", strerror(errno));
}

static int create_file(int dirfd, const char *name)
{
	int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);

	return fd < 0 ? -errno : fd;
}

int vm_snapshot_machine(struct vm *vm, struct snapshot_machine *m)
{
	*m = (struct snapshot_machine){
	    .ram_size = vm->mem.ram_size,
	    .nr_vcpus = vm->nr_vcpus,
	    .nested = vm->cfg.nested,
	    .nr_devices = vm->devices.nr,
	};
	return host_cpu(&vm->sys, m);
}

int vm_snapshot_write_state(struct vm *vm, int fd)
{
	struct snapshot_machine m;
	struct snap_writer w;
	int r = vm_snapshot_machine(vm, &m);

	if (r == 0)
		r = snap_writer_begin(&w, fd, vm->nr_vcpus);
	if (r == 0)
		r = machine_write(&w, &m);
	if (r == 0)
		r = device_list_save(&vm->devices, &w);
	if (r == 0)
		r = snap_writer_finish(&w);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	return r;
}

int vm_snapshot_save(struct vm *vm, int dirfd, const struct snapshot_progress *progress,
                     char *why, size_t len)
{
	int fd, r;

	fd = create_file(dirfd, SNAPSHOT_STATE_FILE);
	r = fd < 0 ? fd : vm_snapshot_write_state(vm, fd);
	if (fd >= 0)
		close(fd);
	if (r < 0) {
		snprintf(why, len, "cannot write its state: %s", strerror(-r));
		return r;
	}
	progress_report(progress, "state", 1, 1);
	fd = create_file(dirfd, SNAPSHOT_MEMORY_FILE);
	if (fd >= 0)
		memory_file_direct(fd);
	r = fd < 0 ? fd : memory_write(vm, fd, progress);
	if (fd >= 0)
		close(fd);
	if (r < 0) {
		snprintf(why, len, "cannot write its memory: %s", strerror(-r));
		return r;
	}
	if (fsync(dirfd) < 0) {
		r = -errno;
		snprintf(why, len, "cannot sync its directory: %s", strerror(-r));
	}
	return r;
}

int vm_snapshot_check_cpu(const struct snapshot_machine *m, const char *kvm_path,
                          const char *name, const char *verb, char *why, size_t len)
{
	struct snapshot_machine host = {0};
	struct kvm_sys sys = {.fd = -1};
	int r = kvm_sys_open(&sys, kvm_path);

	if (r == 0)
		r = host_cpu(&sys, &host);
	kvm_sys_close(&sys);
	if (r < 0) {
		snprintf(why, len, "cannot ask %s about this CPU: %s", kvm_path, strerror(-r));
		return r;
	}
	if (strcmp(host.cpu_vendor, m->cpu_vendor) != 0 ||
	    host.cpu_signature != m->cpu_signature) {
		snprintf(why, len,
		         "%s was %s on another CPU model (%.12s, signature 0x%x); this host has "
		         "%s, signature 0x%x",
		         name, verb, m->cpu_vendor, m->cpu_signature, host.cpu_vendor,
		         host.cpu_signature);
		return -EXDEV;
	}
	return 0;
}

int vm_snapshot_open(int dirfd, const char *name, const char *kvm_path, struct vm_snapshot *s,
                     char *why, size_t len)
{
	struct stat sb;
	int fd, r;

	memset(s, 0, sizeof(*s));
	s->memory_fd = -1;
	fd = openat(dirfd, SNAPSHOT_STATE_FILE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		r = -errno;
		snprintf(why, len, "%s: no state file: %s", name, strerror(-r));
		return r;
	}
	r = fstat(fd, &sb) < 0 ? -errno : S_ISREG(sb.st_mode) ? 0 : -EINVAL;
	if (r == 0)
		r = snap_reader_read_fd(&s->reader, fd, vm_snapshot_schema(), name);
	close(fd);
	if (r == 0)
		r = machine_read(&s->reader, &s->machine);
	if (r < 0) {
		snprintf(why, len, "%s", s->reader.error[0] ? s->reader.error : strerror(-r));
		goto fail;
	}
	s->memory_fd = openat(dirfd, SNAPSHOT_MEMORY_FILE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (s->memory_fd < 0 || fstat(s->memory_fd, &sb) < 0) {
		r = -errno;
		snprintf(why, len, "%s: cannot open its memory file: %s", name, strerror(-r));
		goto fail;
	}
	if (!S_ISREG(sb.st_mode) || (uint64_t)sb.st_size != s->machine.ram_size) {
		r = -EBADMSG;
		snprintf(why, len, "%s: its memory file holds %lld bytes, the state says %llu", name,
		         (long long)sb.st_size, (unsigned long long)s->machine.ram_size);
		goto fail;
	}
	r = vm_snapshot_check_cpu(&s->machine, kvm_path, name, "saved", why, len);
	if (r < 0)
		goto fail;
	return 0;
fail:
	vm_snapshot_close(s);
	return r;
}

int vm_snapshot_check_config(const struct vm_snapshot *s, const struct vm_config *cfg, char *why,
                             size_t len)
{
	const struct snapshot_machine *m = &s->machine;

	if (m->nr_vcpus != cfg->cpus)
		snprintf(why, len, "it was saved with %u vCPUs, the configuration has %u", m->nr_vcpus,
		         cfg->cpus);
	else if (m->ram_size != cfg->memory)
		snprintf(why, len, "it was saved with %llu MiB of memory, the configuration has %llu",
		         (unsigned long long)(m->ram_size >> 20),
		         (unsigned long long)(cfg->memory >> 20));
	else if (m->nested != cfg->nested)
		snprintf(why, len, "it was saved with nesting %s, the configuration has it %s",
		         m->nested ? "on" : "off", cfg->nested ? "on" : "off");
	else
		return 0;
	return -EINVAL;
}

int vm_snapshot_restore(struct vm_snapshot *s, const struct vm_config *cfg, struct vm **out,
                        char *why, size_t len)
{
	struct vm_restore rs = {.memory_fd = s->memory_fd, .state = &s->reader};
	int r = vm_snapshot_check_config(s, cfg, why, len);

	if (r < 0)
		return r;
	r = vm_create_restored(cfg, &rs, out);
	if (r < 0)
		snprintf(why, len, "%s", rs.why);
	return r;
}

void vm_snapshot_close(struct vm_snapshot *s)
{
	snap_reader_release(&s->reader);
	if (s->memory_fd >= 0)
		close(s->memory_fd);
	s->memory_fd = -1;
}
