/* SPDX-License-Identifier: MIT */
/*
 * Live migration, the destination's side (snapshot/migrate.h). Everything
 * that arrives is hostile until checked: the stream layer checks each
 * frame's header and tag, the sink each payload (page addresses against
 * guest RAM, the state's size and CRC), the snapshot reader the state file
 * (docs/snapshot.md), and the machine is checked against this host and
 * the configuration before a VM is built.
 */
#include "snapshot/migrate.h"

#include "core/clock.h"
#include "core/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

/* How far the prefault thread runs ahead of the first pass's pages. */
#define PREFAULT_AHEAD (4u << 20)

#define MIGRATE_GO_TIMEOUT_MS 30000

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le64(const uint8_t *p)
{
	return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

/* ---- the sink: frames into RAM and the state buffer ---- */

static int sink_pages(struct migrate_sink *s, const uint8_t *p, size_t len, char *why,
                      size_t why_len)
{
	uint64_t gpa = get_le64(p);
	uint32_t count = get_le32(p + 8), flags = get_le32(p + 12);
	bool zero = flags & MIG_PAGES_F_ZERO;
	uint8_t *host;

	if (s->state_len || s->state_done) {
		snprintf(why, why_len, "pages after the state");
		return -EPROTO;
	}
	if (flags & ~MIG_PAGES_F_ZERO || count == 0 || count > MIG_PAGES_MAX) {
		snprintf(why, why_len, "PAGES with %u pages, flags 0x%x", count, flags);
		return -EPROTO;
	}
	if (len != MIG_PAGES_HEADER + (zero ? 0 : (size_t)count * MIG_PAGE_SIZE)) {
		snprintf(why, why_len, "PAGES of %u pages in %zu bytes", count, len);
		return -EPROTO;
	}
	host = gpa % MIG_PAGE_SIZE ? NULL
	                           : guest_mem_ptr(s->mem, gpa, (uint64_t)count * MIG_PAGE_SIZE);
	if (!host) {
		snprintf(why, why_len, "PAGES at 0x%llx (%u pages): not in guest RAM",
		         (unsigned long long)gpa, count);
		return -EPROTO;
	}
	if (zero)
		memset(host, 0, (size_t)count * MIG_PAGE_SIZE);
	else
		memcpy(host, p + MIG_PAGES_HEADER, (size_t)count * MIG_PAGE_SIZE);
	s->pages += count;
	return 0;
}

static int sink_state(struct migrate_sink *s, const uint8_t *p, size_t len, char *why,
                      size_t why_len)
{
	if (s->state_done || len > SNAP_MAX_FILE_SIZE - s->state_len) {
		snprintf(why, why_len, "state %s", s->state_done ? "after its end" : "too large");
		return -EPROTO;
	}
	if (s->state_len + len > s->state_cap) {
		size_t cap = s->state_cap ? s->state_cap : (1u << 20);
		uint8_t *n;

		while (cap < s->state_len + len)
			cap *= 2;
		if (cap > SNAP_MAX_FILE_SIZE)
			cap = SNAP_MAX_FILE_SIZE;
		n = realloc(s->state, cap);
		if (!n) {
			snprintf(why, why_len, "out of memory for the state");
			return -ENOMEM;
		}
		s->state = n;
		s->state_cap = cap;
	}
	memcpy(s->state + s->state_len, p, len);
	s->state_len += len;
	return 0;
}

int migrate_sink_frame(struct migrate_sink *s, enum mig_msg type, const uint8_t *p, size_t len,
                       char *why, size_t why_len)
{
	switch (type) {
	case MIG_MSG_PAGES:
		if (len < MIG_PAGES_HEADER)
			break;
		return sink_pages(s, p, len, why, why_len);
	case MIG_MSG_PASS:
		if (len != MIG_PASS_SIZE || s->state_len || s->state_done)
			break;
		s->pass = get_le32(p);
		return 0;
	case MIG_MSG_STATE:
		return sink_state(s, p, len, why, why_len);
	case MIG_MSG_STATE_END:
		if (len != MIG_STATE_END_SIZE || s->state_done)
			break;
		if (get_le64(p) != s->state_len ||
		    get_le32(p + 8) != crc32c(0, s->state, s->state_len)) {
			snprintf(why, why_len,
			         "the state does not match its end (%zu bytes received, "
			         "%llu announced, or its CRC)",
			         s->state_len, (unsigned long long)get_le64(p));
			return -EPROTO;
		}
		s->state_done = true;
		return 1;
	default:
		break;
	}
	snprintf(why, why_len, "an unexpected %s frame of %zu bytes", mig_msg_name(type), len);
	return -EPROTO;
}

void migrate_sink_release(struct migrate_sink *s)
{
	free(s->state);
	s->state = NULL;
	s->state_len = s->state_cap = 0;
}

/* ---- faulting RAM in ahead of the first pass ---- */

/*
 * A fresh page of guest RAM costs its first write a page fault, and the
 * kernel zeroes it (clear_page: half the destination's CPU in the first
 * pass, more where the host must back the memory first). The first pass
 * sends pages in ascending order, mostly in long runs, so a second thread
 * faults in the next PREFAULT_AHEAD bytes after the last page written,
 * with MADV_POPULATE_WRITE (which never changes what a page holds), while
 * the receiving thread reads and decrypts the next frames. It runs only
 * during the first pass and never more than PREFAULT_AHEAD past a page the
 * source sent: what a sparse guest does not use stays unallocated, but for
 * that much after each run of its pages.
 */
struct prefault {
	struct guest_mem *mem;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint64_t want; /* fault in RAM offsets up to here */
	uint64_t done; /* faulted in, or given up on, up to here */
	bool quit, started;
};

static void *prefault_thread(void *arg)
{
	struct prefault *pf = arg;

	pthread_mutex_lock(&pf->lock);
	while (!pf->quit) {
		uint64_t from, to;

		if (pf->done >= pf->want) {
			pthread_cond_wait(&pf->cond, &pf->lock);
			continue;
		}
		from = pf->done;
		to = pf->want;
		pthread_mutex_unlock(&pf->lock);
		/* Best effort: a kernel without it, or no memory, is only slower. */
		(void)madvise(pf->mem->ram + from, to - from, MADV_POPULATE_WRITE);
		pthread_mutex_lock(&pf->lock);
		if (pf->done < to)
			pf->done = to;
	}
	pthread_mutex_unlock(&pf->lock);
	return NULL;
}

static void prefault_start(struct prefault *pf, struct guest_mem *mem)
{
	memset(pf, 0, sizeof(*pf));
	pf->mem = mem;
	pthread_mutex_init(&pf->lock, NULL);
	pthread_cond_init(&pf->cond, NULL);
	pf->started = pthread_create(&pf->thread, NULL, prefault_thread, pf) == 0;
	if (!pf->started)
		log_debug("migration: no prefault thread; the first pass faults RAM in itself");
}

/* Pages up to RAM offset @end were just written: fault in what follows. */
static void prefault_after(struct prefault *pf, uint64_t end)
{
	uint64_t to = end + PREFAULT_AHEAD;

	if (!pf->started)
		return;
	if (to > pf->mem->ram_size)
		to = pf->mem->ram_size;
	pthread_mutex_lock(&pf->lock);
	/* Behind what was written (a new run) starts from there; the written part is in. */
	if (pf->done < end)
		pf->done = end;
	if (to > pf->want) {
		pf->want = to;
		pthread_cond_signal(&pf->cond);
	}
	pthread_mutex_unlock(&pf->lock);
}

static void prefault_stop(struct prefault *pf)
{
	if (!pf->started)
		return;
	pthread_mutex_lock(&pf->lock);
	pf->quit = true;
	pthread_cond_signal(&pf->cond);
	pthread_mutex_unlock(&pf->lock);
	pthread_join(pf->thread, NULL);
	pthread_cond_destroy(&pf->cond);
	pthread_mutex_destroy(&pf->lock);
	pf->started = false;
}

/* ---- accepting ---- */

/* One connection: handshake, then HELLO. 0, or -errno with @why. */
static int dest_greet(struct migrate_dest *d, int fd, const uint8_t *secret, size_t len,
                      int cancel_fd, char *why, size_t why_len)
{
	enum mig_msg t;
	const uint8_t *p;
	size_t n;
	int r = mig_conn_init(&d->conn, fd, NULL, NULL, false);

	if (r < 0) {
		close(fd);
		snprintf(why, why_len, "out of memory");
		return r;
	}
	d->conn.cancel_fd = cancel_fd;
	d->conn.timeout_ms = MIGRATE_GO_TIMEOUT_MS;
	r = mig_handshake(&d->conn, secret, len);
	if (r == 0)
		r = mig_recv(&d->conn, &t, &p, &n);
	if (r < 0) {
		snprintf(why, why_len, "%s", d->conn.error);
		return r;
	}
	if (t != MIG_MSG_HELLO) {
		snprintf(why, why_len, "the source began with %s, not HELLO", mig_msg_name(t));
		return -EPROTO;
	}
	r = mig_hello_decode(p, n, &d->hello, why, why_len);
	if (r < 0)
		return r;
	d->def = malloc(d->hello.def_len + 1);
	if (!d->def) {
		snprintf(why, why_len, "out of memory");
		return -ENOMEM;
	}
	memcpy(d->def, d->hello.def, d->hello.def_len);
	d->def[d->hello.def_len] = 0;
	d->hello.def = d->def;
	return 0;
}

int migrate_dest_accept(int lfd, const uint8_t *secret, size_t len, int timeout_ms, int cancel_fd,
                        void (*refused)(void *opaque, const char *why), void *opaque,
                        struct migrate_dest *d, char *why, size_t why_len)
{
	int64_t deadline = timeout_ms < 0 ? -1 : mono_ms() + timeout_ms;

	memset(d, 0, sizeof(*d));
	d->conn.fd = -1;
	for (;;) {
		int left =
		    deadline < 0 ? -1 : (int)(deadline - mono_ms() > 0 ? deadline - mono_ms() : 0);
		int fd = mig_accept(lfd, left, cancel_fd, d->peer, sizeof(d->peer)), r;
		char reason[256];

		if (fd < 0) {
			snprintf(why, why_len, "%s",
			         fd == -ETIMEDOUT   ? "no source connected in time"
			         : fd == -ECANCELED ? "cancelled"
			                            : strerror(-fd));
			return fd;
		}
		r = dest_greet(d, fd, secret, len, cancel_fd, reason, sizeof(reason));
		if (r == 0) {
			d->started_ms = mono_ms();
			return 0;
		}
		/* One source that cannot prove itself does not end the wait for the real one. */
		if (refused) {
			char line[448];

			snprintf(line, sizeof(line), "refused a connection from %s: %s", d->peer,
			         reason);
			refused(opaque, line);
		}
		migrate_dest_release(d);
		if (r == -ECANCELED) {
			snprintf(why, why_len, "cancelled");
			return r;
		}
	}
}

int migrate_dest_check_hello(const struct migrate_dest *d, const char *kvm_path,
                             const struct vm_config *cfg, char *why, size_t len)
{
	struct snapshot_machine m = {
	    .ram_size = d->hello.ram_size,
	    .nr_vcpus = d->hello.nr_vcpus,
	    .nested = d->hello.nested,
	    .cpu_signature = d->hello.cpu_signature,
	};
	struct vm_snapshot s = {.machine = m, .memory_fd = -1};
	int r;

	memcpy(m.cpu_vendor, d->hello.cpu_vendor, sizeof(m.cpu_vendor));
	r = vm_snapshot_check_cpu(&m, kvm_path, "the VM", "running", why, len);
	if (r == 0 && cfg) {
		s.machine = m;
		r = vm_snapshot_check_config(&s, cfg, why, len);
	}
	return r;
}

int migrate_dest_answer(struct migrate_dest *d, int err, const char *msg)
{
	if (err) {
		mig_send_error(&d->conn, err, msg);
		return 0;
	}
	return mig_send(&d->conn, MIG_MSG_ACCEPT, NULL, 0);
}

/* ---- receiving ---- */

/* Memory and state until STATE_END: 0 with @s complete, or -errno with @why. */
static int dest_fill_frames(struct migrate_dest *d, struct migrate_sink *s, struct prefault *pf,
                            void (*progress)(void *opaque, const struct migrate_dest *d),
                            void *opaque, char *why, size_t len)
{
	for (;;) {
		enum mig_msg t;
		const uint8_t *p;
		size_t n;
		int r = mig_recv(&d->conn, &t, &p, &n);

		if (r < 0) {
			snprintf(why, len, "%s", d->conn.error);
			return r;
		}
		r = migrate_sink_frame(s, t, p, n, why, len);
		d->pages = s->pages;
		if (r < 0)
			return r;
		if (t == MIG_MSG_PAGES && s->pass == 0) {
			/* Accepted: the range lies in RAM (sink_pages() checked it). */
			uint8_t *host = guest_mem_ptr(s->mem, get_le64(p), MIG_PAGE_SIZE);

			if (host)
				prefault_after(pf, (uint64_t)(host - s->mem->ram) +
				                       (uint64_t)get_le32(p + 8) * MIG_PAGE_SIZE);
		}
		if (t == MIG_MSG_PASS) {
			prefault_stop(pf);
			uint8_t ack[MIG_PASS_ACK_SIZE];

			/* Every page before it is in RAM: the source judges the pass now. */
			d->pass = s->pass;
			put_le32(ack, s->pass);
			r = mig_send(&d->conn, MIG_MSG_PASS_ACK, ack, sizeof(ack));
			if (r < 0) {
				snprintf(why, len, "%s", d->conn.error);
				return r;
			}
			if (progress)
				progress(opaque, d);
		}
		if (r == 1)
			return 0;
	}
}

static int dest_fill(struct migrate_dest *d, struct migrate_sink *s,
                     void (*progress)(void *opaque, const struct migrate_dest *d), void *opaque,
                     char *why, size_t len)
{
	struct prefault pf;
	int r;

	prefault_start(&pf, s->mem);
	r = dest_fill_frames(d, s, &pf, progress, opaque, why, len);
	prefault_stop(&pf);
	return r;
}

/* The state as a snapshot: parsed, and the machine it names is the one announced. */
static int dest_state(struct migrate_dest *d, struct migrate_sink *s, const char *kvm_path,
                      const struct vm_config *cfg, struct vm_snapshot *snap, char *why, size_t len)
{
	const struct snapshot_machine *m = &snap->machine;
	int r = vm_snapshot_parse(&snap->reader, s->state, s->state_len, "the migrated state",
	                          &snap->machine);

	if (r < 0) {
		snprintf(why, len, "%s", snap->reader.error);
		return r;
	}
	if (m->ram_size != d->hello.ram_size || m->nr_vcpus != d->hello.nr_vcpus ||
	    m->nested != d->hello.nested || strcmp(m->cpu_vendor, d->hello.cpu_vendor) ||
	    m->cpu_signature != d->hello.cpu_signature) {
		snprintf(why, len, "the state describes another machine than the one announced");
		return -EPROTO;
	}
	r = vm_snapshot_check_cpu(m, kvm_path, "the VM", "running", why, len);
	if (r == 0)
		r = vm_snapshot_check_config(snap, cfg, why, len);
	return r;
}

int migrate_dest_receive(struct migrate_dest *d, const struct vm_config *cfg, const char *kvm_path,
                         void (*progress)(void *opaque, const struct migrate_dest *d), void *opaque,
                         struct vm **out, char *why, size_t len)
{
	struct guest_mem mem;
	struct migrate_sink s = {.mem = &mem};
	struct vm_snapshot snap = {.memory_fd = -1};
	struct vm_restore rs = {.memory_fd = -1, .ram = &mem};
	struct vm *vm = NULL;
	enum mig_msg t;
	const uint8_t *p;
	size_t n;
	int r;

	*out = NULL;
	r = guest_mem_init(&mem, d->hello.ram_size, cfg->hugepages);
	if (r < 0) {
		snprintf(why, len, "cannot reserve %llu MiB of guest memory: %s",
		         (unsigned long long)(d->hello.ram_size >> 20), strerror(-r));
		mig_send_error(&d->conn, -r, why);
		return r;
	}
	/*
	 * The VM around that RAM now, the pages going into it: its memory
	 * slots and irqchip cost KVM's grace periods here, not in the downtime.
	 */
	r = vm_create_incoming(cfg, &rs, &vm);
	if (r < 0)
		snprintf(why, len, "cannot build the VM: %s", rs.why);
	/* The VM owns the RAM now, or it went with the failed build. */
	if (rs.ram && rs.ram->mapping)
		guest_mem_destroy(&mem);
	if (r == 0) {
		s.mem = &vm->mem;
		r = dest_fill(d, &s, progress, opaque, why, len);
	}
	if (r == 0)
		r = dest_state(d, &s, kvm_path, cfg, &snap, why, len);
	if (r == 0) {
		rs.state = &snap.reader;
		r = vm_finish_restored(vm, &rs);
		if (r < 0) {
			vm = NULL; /* destroyed */
			snprintf(why, len, "cannot restore the VM: %s", rs.why);
		}
	}
	snap_reader_release(&snap.reader);
	migrate_sink_release(&s);
	if (r == 0)
		r = mig_send(&d->conn, MIG_MSG_READY, NULL, 0);
	if (r == 0) {
		d->conn.timeout_ms = MIGRATE_GO_TIMEOUT_MS;
		r = mig_recv(&d->conn, &t, &p, &n);
		if (r == 0 && t != MIG_MSG_GO)
			r = -EPROTO;
		if (r < 0)
			snprintf(why, len, "%s",
			         d->conn.err ? d->conn.error
			                     : "the source sent something else than GO");
	}
	if (r < 0) {
		mig_send_error(&d->conn, -r, why);
		vm_destroy(vm);
		return r;
	}
	*out = vm;
	return 0;
}

void migrate_dest_running(struct migrate_dest *d)
{
	if (mig_send(&d->conn, MIG_MSG_RUNNING, NULL, 0) < 0)
		log_warn("migration: the source did not hear that the VM runs here (%s); it stays "
		         "paused there",
		         d->conn.error);
}

void migrate_dest_release(struct migrate_dest *d)
{
	if (d->conn.tx || d->conn.fd >= 0)
		mig_conn_release(&d->conn);
	free(d->def);
	d->def = NULL;
}
