/* SPDX-License-Identifier: MIT */
#include "kvm/kvm.h"

#include "core/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

/* The KVM API version every kernel since 2.6.22 reports. */
#define KVM_API_VERSION_EXPECTED 12
/* More than any CPU KVM supports lists; KVM says -E2BIG if too small. */

int kvm_ioctl(int fd, unsigned long req, void *arg)
{
	int r;

	do
		r = ioctl(fd, req, arg);
	while (r < 0 && errno == EINTR && req != KVM_RUN);
	return r < 0 ? -errno : r;
}

int kvm_sys_open(struct kvm_sys *sys, const char *path)
{
	struct stat st;
	int r;

	/*
	 * O_NONBLOCK: a FIFO given as --kvm must fail, not hang the open. A
	 * jailed monitor gets the descriptor it kept (core/fsutil.h).
	 */
	r = fs_reopen(path, O_RDWR | O_NONBLOCK | O_NOCTTY);
	sys->fd = r < 0 ? -1 : r;
	if (r < 0)
		return r;
	if (fstat(sys->fd, &st) < 0 || !S_ISCHR(st.st_mode)) {
		r = -ENODEV;
		goto err;
	}
	r = fcntl(sys->fd, F_GETFL);
	if (r < 0 || fcntl(sys->fd, F_SETFL, r & ~O_NONBLOCK) < 0) {
		r = -errno;
		goto err;
	}
	r = kvm_ioctl(sys->fd, KVM_GET_API_VERSION, NULL);
	if (r != KVM_API_VERSION_EXPECTED) {
		r = r < 0 ? r : -ENOTSUP;
		goto err;
	}
	r = kvm_ioctl(sys->fd, KVM_GET_VCPU_MMAP_SIZE, NULL);
	if (r < 0)
		goto err;
	sys->vcpu_mmap_size = r;
	return 0;
err:
	close(sys->fd);
	sys->fd = -1;
	return r;
}

void kvm_sys_close(struct kvm_sys *sys)
{
	if (sys->fd >= 0)
		close(sys->fd);
	sys->fd = -1;
}

int kvm_check_cap(int fd, long cap)
{
	int r = ioctl(fd, KVM_CHECK_EXTENSION, cap);

	return r < 0 ? 0 : r;
}

struct kvm_cpuid2 *kvm_cpuid_alloc(unsigned int nent)
{
	struct kvm_cpuid2 *c =
	    calloc(1, sizeof(*c) + (size_t)nent * sizeof(struct kvm_cpuid_entry2));

	if (c)
		c->nent = nent;
	return c;
}

/*
 * The first answer per KVM device is kept for the process: the question costs
 * ~0.3-0.5 ms where the host is itself a guest, and a restore asks it twice
 * (the snapshot's CPU check, then the new VM's CPUID).
 */
static pthread_mutex_t cpuid_lock = PTHREAD_MUTEX_INITIALIZER;
static struct kvm_cpuid2 *cpuid_cached;
static dev_t cpuid_cached_rdev;

/* Fill @table from the kept answer (1) or from KVM (0); @st: the device's. */
static int cpuid_fill(int kvm_fd, struct kvm_cpuid2 *table, struct stat *st)
{
	int r;

	if (fstat(kvm_fd, st) < 0)
		return -errno;
	pthread_mutex_lock(&cpuid_lock);
	if (cpuid_cached && cpuid_cached_rdev == st->st_rdev && table->nent >= cpuid_cached->nent) {
		table->nent = cpuid_cached->nent;
		memcpy(table->entries, cpuid_cached->entries,
		       (size_t)table->nent * sizeof(table->entries[0]));
		pthread_mutex_unlock(&cpuid_lock);
		return 1;
	}
	pthread_mutex_unlock(&cpuid_lock);
	r = kvm_ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, table);
	return r < 0 ? r : 0;
}

int kvm_supported_cpuid_fill(int kvm_fd, struct kvm_cpuid2 *table)
{
	struct stat st;
	int r = cpuid_fill(kvm_fd, table, &st);

	return r < 0 ? r : 0;
}

int kvm_get_supported_cpuid(const struct kvm_sys *sys, struct kvm_cpuid2 **out)
{
	struct kvm_cpuid2 *c = kvm_cpuid_alloc(KVM_MAX_CPUID_ENTRIES), *keep;
	struct stat st;
	int r;

	if (!c)
		return -ENOMEM;
	r = cpuid_fill(sys->fd, c, &st);
	if (r < 0) {
		free(c);
		return r;
	}
	/* KVM's answer is kept for the next question (a copy: the caller frees its own). */
	if (r == 0 && S_ISCHR(st.st_mode) && (keep = kvm_cpuid_alloc(c->nent)) != NULL) {
		memcpy(keep->entries, c->entries, (size_t)c->nent * sizeof(c->entries[0]));
		pthread_mutex_lock(&cpuid_lock);
		free(cpuid_cached);
		cpuid_cached = keep;
		cpuid_cached_rdev = st.st_rdev;
		pthread_mutex_unlock(&cpuid_lock);
	}
	*out = c;
	return 0;
}
