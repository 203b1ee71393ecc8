/* SPDX-License-Identifier: MIT */
/* Live migration, the source's side (snapshot/migrate.h). */
#include "snapshot/migrate.h"

#include "core/clock.h"
#include "core/fsutil.h"
#include "core/log.h"
#include "core/machine.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PROGRESS_STEP (64ull << 20)  /* a progress report every this many bytes sent */
#define MIGRATE_ACK_TIMEOUT_MS 30000 /* READY after the state, RUNNING after GO */
#define BITS GUEST_MEM_BITS_PER_WORD

struct msend {
	struct vm *vm;
	const struct migrate_source_params *p;
	struct mig_conn conn;
	struct migrate_stats *st;
	unsigned long *dirty; /* guest_mem_dirty_words() words */
	size_t words;
	/* The run of pages the next PAGES frame sends: contiguous in RAM and in guest addresses. */
	uint64_t run_gpa, run_off;
	uint32_t run_count;
	bool run_zero;
	int64_t start_ms, collect_ms;
	uint64_t wait0;   /* conn.wait_us at the start of the pass */
	size_t state_len; /* the state file's bytes, for the switch-over's log line */
	uint64_t next_report;
	char *why;
	size_t why_len;
};

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void report(struct msend *s)
{
	s->st->bytes_sent = s->conn.bytes_tx;
	s->st->elapsed_ms = (uint64_t)(mono_ms() - s->start_ms);
	s->st->throttle = atomic_load(&s->vm->throttle_pct);
	if (s->p->progress)
		s->p->progress(s->p->opaque, s->st);
}

/* Fail with a reason: the stream's own if it broke, else @fmt's. Returns @err. */
static int msend_fail(struct msend *s, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int msend_fail(struct msend *s, int err, const char *fmt, ...)
{
	char what[256];
	va_list ap;

	if (s->why[0])
		return err;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	/* The stream's own sentence, if it broke, says what happened; @fmt says when. */
	if (s->conn.err && s->conn.err != -EREMOTEIO) {
		snprintf(s->why, s->why_len, "%s: %s", what, s->conn.error);
		return s->conn.err;
	}
	snprintf(s->why, s->why_len, "%s", s->conn.err ? s->conn.error : what);
	return s->conn.err ? s->conn.err : err;
}

/* Cancelled, out of time, or the VM ending: a reason to stop the passes. */
static int msend_check(struct msend *s)
{
	struct pollfd pf = {.fd = s->p->cancel_fd, .events = POLLIN};

	if (s->p->cancel_fd >= 0 && poll(&pf, 1, 0) == 1)
		return msend_fail(s, -ECANCELED, "cancelled");
	if (atomic_load(&s->vm->stopping))
		return msend_fail(s, -ESHUTDOWN, "the VM stopped");
	if (mono_ms() - s->start_ms > (int64_t)s->p->timeout_s * 1000)
		return msend_fail(s, -ETIMEDOUT,
		                  "memory did not converge within %u s (the guest writes faster "
		                  "than the link carries, even throttled to %u%%); give a longer "
		                  "--timeout or a larger --downtime",
		                  s->p->timeout_s, atomic_load(&s->vm->throttle_pct));
	return 0;
}

static bool page_is_zero(const uint8_t *p)
{
	uint64_t first;

	memcpy(&first, p, sizeof(first));
	return first == 0 && memcmp(p, p + 8, MIG_PAGE_SIZE - 8) == 0;
}

/*
 * Send the run as one PAGES frame: its pages go from guest RAM straight
 * into the cipher, which writes the frame (the one copy); a guest writing
 * a page meanwhile changes what is sent, and the dirty log has the page
 * for the next pass.
 */
static int run_flush(struct msend *s)
{
	uint8_t hdr[MIG_PAGES_HEADER];
	struct mig_piece pieces[2] = {
	    {hdr, sizeof(hdr)},
	    {s->vm->mem.ram + s->run_off, (size_t)s->run_count * MIG_PAGE_SIZE},
	};
	int r;

	if (!s->run_count)
		return 0;
	put_le64(hdr, s->run_gpa);
	put_le32(hdr + 8, s->run_count);
	put_le32(hdr + 12, s->run_zero ? MIG_PAGES_F_ZERO : 0);
	r = mig_sendv(&s->conn, MIG_MSG_PAGES, pieces, s->run_zero ? 1 : 2);
	if (r < 0)
		return msend_fail(s, r, "sending pages");
	s->st->pages_sent += s->run_count;
	s->run_count = 0;
	if (s->conn.bytes_tx >= s->next_report) {
		s->next_report = s->conn.bytes_tx + PROGRESS_STEP;
		report(s);
	}
	return 0;
}

/*
 * Add page @off of RAM to the run. It is judged zero as it is now; if the
 * guest writes it before it is sent, the dirty log has it for the next
 * pass either way. @skip_zero in the first pass, where the destination's
 * RAM starts zeroed.
 */
static int page_add(struct msend *s, uint64_t off, bool skip_zero)
{
	uint64_t gpa = guest_mem_ram_gpa(&s->vm->mem, off);
	uint64_t next = (uint64_t)s->run_count * MIG_PAGE_SIZE;
	bool zero = page_is_zero(s->vm->mem.ram + off);
	int r;

	if (zero && skip_zero)
		return 0;
	if (s->run_count && (s->run_zero != zero || gpa != s->run_gpa + next ||
	                     off != s->run_off + next || s->run_count == MIG_PAGES_MAX)) {
		r = run_flush(s);
		if (r < 0)
			return r;
	}
	if (!s->run_count) {
		s->run_gpa = gpa;
		s->run_off = off;
		s->run_zero = zero;
	}
	s->run_count++;
	return 0;
}

/* The end of a pass: PASS with the pass's number and its pages. */
static int pass_end(struct msend *s, uint64_t pass_pages)
{
	uint8_t p[MIG_PASS_SIZE];
	int r = run_flush(s);

	if (r < 0)
		return r;
	put_le32(p, s->st->pass);
	put_le32(p + 4, atomic_load(&s->vm->throttle_pct));
	put_le64(p + 8, s->st->pages_sent);
	put_le64(p + 16, pass_pages);
	r = mig_send(&s->conn, MIG_MSG_PASS, p, sizeof(p));
	return r < 0 ? msend_fail(s, r, "sending") : 0;
}

/*
 * The first pass: every page that is not zero. Only pages that may hold
 * data are read (vm_snapshot_data_pages(), as a save does): untouched
 * memory is not, nor the holes of a restored VM's memory file.
 */
static int pass_full(struct msend *s)
{
	const struct guest_mem *mem = &s->vm->mem;
	unsigned char vec[VM_SNAPSHOT_SCAN_CHUNK / MIG_PAGE_SIZE];
	int pagemap = fs_reopen("/proc/self/pagemap", O_RDONLY), r = 0;

	for (uint64_t off = 0; off < mem->ram_size && r == 0; off += VM_SNAPSHOT_SCAN_CHUNK) {
		uint64_t left = mem->ram_size - off;
		uint64_t chunk = left < VM_SNAPSHOT_SCAN_CHUNK ? left : VM_SNAPSHOT_SCAN_CHUNK;
		unsigned int pages = (unsigned int)(chunk / MIG_PAGE_SIZE);

		r = msend_check(s);
		if (r < 0)
			break;
		vm_snapshot_data_pages(s->vm, pagemap, off, chunk, vec);
		for (unsigned int i = 0; i < pages && r == 0; i++) {
			if (vec[i] & 1)
				r = page_add(s, off + (uint64_t)i * MIG_PAGE_SIZE, true);
		}
	}
	if (pagemap >= 0)
		close(pagemap);
	return r;
}

/* A later pass: the pages in s->dirty, which it clears. */
static int pass_dirty(struct msend *s, bool check)
{
	int r;

	for (size_t w = 0; w < s->words; w++) {
		unsigned long bits = s->dirty[w];

		/* Taken: what a later collect adds comes on top (vm_dirty_log_collect() ORs). */
		s->dirty[w] = 0;

		if (check && w % 4096 == 0) {
			r = msend_check(s);
			if (r < 0)
				return r;
		}
		while (bits) {
			unsigned int b = (unsigned int)__builtin_ctzl(bits);

			bits &= bits - 1;
			r = page_add(s, ((uint64_t)w * BITS + b) * MIG_PAGE_SIZE, false);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

static uint64_t count_bits(const unsigned long *b, size_t words)
{
	uint64_t n = 0;

	for (size_t w = 0; w < words; w++)
		n += (uint64_t)__builtin_popcountl(b[w]);
	return n;
}

/* Collect the dirty pages and judge them: 0 and *@done when the rest fits the downtime. */
static int judge(struct msend *s, uint64_t pass_bytes, int64_t pass_ms, bool *done)
{
	int64_t now;
	uint64_t dirty;
	int r = vm_dirty_log_collect(s->vm, s->dirty);

	if (r < 0)
		return msend_fail(s, r, "cannot read the dirty log: %s", strerror(-r));
	now = mono_ms();
	dirty = count_bits(s->dirty, s->words) * MIG_PAGE_SIZE;
	/*
	 * The pass was acknowledged, so its bytes over its time (a round trip
	 * included) are a lower bound of what the link and the destination
	 * carry. A small pass is mostly that round trip: it replaces a
	 * measurement only when there is none yet (a guest with less than a
	 * MiB of data once needed a pass with nothing dirty to converge).
	 */
	if (pass_ms > 0 && (pass_bytes > (1u << 20) || (!s->st->bandwidth && pass_bytes)))
		s->st->bandwidth = pass_bytes * 1000 / (uint64_t)pass_ms;
	else if (pass_ms <= 0 && !s->st->bandwidth && pass_bytes)
		s->st->bandwidth = pass_bytes * 1000; /* within a millisecond */
	if (now > s->collect_ms)
		s->st->dirty_rate = dirty * 1000 / (uint64_t)(now - s->collect_ms);
	s->collect_ms = now;
	s->st->remaining_bytes = dirty;
	s->st->expected_downtime_ms =
	    s->st->bandwidth ? dirty * 1000 / s->st->bandwidth : (dirty ? UINT64_MAX / 2 : 0);
	/*
	 * Within the target, one more pass still pays while the last one left
	 * less than half of what it sent dirty: the guest runs during a pass
	 * and stands still during the last one, so a pass of D bytes now turns
	 * a stop of D into one of about D * D / sent. Down to a floor, and
	 * never beyond the passes the timeout allows.
	 */
	*done = s->st->expected_downtime_ms <= s->p->downtime_ms &&
	        (s->st->expected_downtime_ms <= MIGRATE_DOWNTIME_FLOOR_MS ||
	         dirty * 2 > pass_bytes || s->st->pass >= MIGRATE_EXTRA_PASSES_MAX);
	log_event("migration: pass %u: %llu KiB in %lld ms (waiting on the link %llu ms), %llu "
	          "MiB/s, then %llu KiB dirty (%llu MiB/s): ~%llu ms down",
	          s->st->pass, (unsigned long long)(pass_bytes >> 10), (long long)pass_ms,
	          (unsigned long long)((s->conn.wait_us[0] + s->conn.wait_us[1] - s->wait0) / 1000),
	          (unsigned long long)(s->st->bandwidth >> 20), (unsigned long long)(dirty >> 10),
	          (unsigned long long)(s->st->dirty_rate >> 20),
	          (unsigned long long)(s->st->expected_downtime_ms > 999999
	                                   ? 999999
	                                   : s->st->expected_downtime_ms));
	report(s);
	return 0;
}

/* The guest dirties faster than half the link: take more of its vCPU time. */
static void throttle_step(struct msend *s)
{
	unsigned int t = atomic_load(&s->vm->throttle_pct), next;

	if (s->st->pass < 2 || !s->st->bandwidth || s->st->dirty_rate * 2 < s->st->bandwidth ||
	    t >= VM_THROTTLE_MAX)
		return;
	next = t ? t + MIGRATE_THROTTLE_STEP : MIGRATE_THROTTLE_FIRST;
	if (next > VM_THROTTLE_MAX)
		next = VM_THROTTLE_MAX;
	if (vm_set_throttle(s->vm, next) < 0) {
		log_warn("migration: cannot throttle the vCPUs; it may not converge");
		return;
	}
	log_event("migration: pass %u: the guest writes %llu MiB/s, the link carries %llu MiB/s: "
	          "vCPUs throttled to %u%%",
	          s->st->pass, (unsigned long long)(s->st->dirty_rate >> 20),
	          (unsigned long long)(s->st->bandwidth >> 20), next);
}

/*
 * The next frame must be @want; anything else (an ERROR, the link gone)
 * fails. @payload (may be NULL) gets its payload, valid until the next frame.
 */
static int expect(struct msend *s, enum mig_msg want, int timeout_ms, const uint8_t **payload)
{
	enum mig_msg t;
	const uint8_t *p;
	size_t len;
	int r;

	s->conn.timeout_ms = timeout_ms;
	r = mig_recv(&s->conn, &t, &p, &len);
	if (r < 0)
		return msend_fail(s, r, "waiting for %s", mig_msg_name(want));
	if (t != want)
		return msend_fail(s, -EPROTO, "the destination sent %s instead of %s",
		                  mig_msg_name(t), mig_msg_name(want));
	if (payload)
		*payload = p;
	return 0;
}

/* The destination's PASS_ACK of the pass just sent: all of it is in its RAM. */
static int pass_acked(struct msend *s)
{
	const uint8_t *p;
	int r = expect(s, MIG_MSG_PASS_ACK, MIGRATE_ACK_TIMEOUT_MS, &p);

	if (r == 0 && get_le32(p) != s->st->pass)
		return msend_fail(s, -EPROTO, "the destination acknowledged pass %u, not %u",
		                  get_le32(p), s->st->pass);
	return r;
}

/* The pre-copy passes, until what is left fits the downtime. */
static int precopy(struct msend *s)
{
	bool done = false;
	int r;

	s->st->phase = "memory";
	for (s->st->pass = 1; !done; s->st->pass++) {
		uint64_t b0 = s->conn.bytes_tx, pages0 = s->st->pages_sent;
		int64_t t0 = mono_ms();

		s->wait0 = s->conn.wait_us[0] + s->conn.wait_us[1];
		r = s->st->pass == 1 ? pass_full(s) : pass_dirty(s, true);
		if (r == 0)
			r = run_flush(s);
		if (r == 0)
			r = pass_end(s, s->st->pages_sent - pages0);
		/*
		 * Judged once the destination has it all: the bandwidth is then
		 * what reached its RAM, not what the socket buffers took, and no
		 * pass is still on its way when the VM stops.
		 */
		if (r == 0)
			r = pass_acked(s);
		if (r == 0)
			r = judge(s, s->conn.bytes_tx - b0, mono_ms() - t0, &done);
		if (r == 0 && !done)
			r = msend_check(s);
		if (r < 0)
			return r;
		if (!done)
			throttle_step(s);
	}
	s->st->pass--;
	return 0;
}

/* The quiesced VM's state file, read back from a memfd. */
static int state_read(struct vm *vm, uint8_t **buf, size_t *len)
{
	int fd = memfd_create("nestvm-migrate-state", MFD_CLOEXEC), r;
	off_t size;

	*buf = NULL;
	if (fd < 0)
		return -errno;
	r = vm_snapshot_write_state(vm, fd);
	size = r == 0 ? lseek(fd, 0, SEEK_END) : -1;
	if (r == 0 && (size <= 0 || (uint64_t)size > SNAP_MAX_FILE_SIZE))
		r = size < 0 ? -errno : -EFBIG;
	if (r == 0 && !(*buf = malloc((size_t)size)))
		r = -ENOMEM;
	if (r == 0 && pread(fd, *buf, (size_t)size, 0) != size)
		r = -EIO;
	close(fd);
	if (r < 0) {
		free(*buf);
		*buf = NULL;
		return r;
	}
	*len = (size_t)size;
	return 0;
}

static int state_send(struct msend *s)
{
	uint8_t *state, end[MIG_STATE_END_SIZE];
	size_t len = 0;
	int r = state_read(s->vm, &state, &len);

	if (r < 0)
		return msend_fail(s, r, "cannot write the VM's state: %s", strerror(-r));
	for (size_t off = 0; off < len && r == 0; off += MIG_FRAME_MAX) {
		size_t n = len - off < MIG_FRAME_MAX ? len - off : MIG_FRAME_MAX;

		r = mig_send(&s->conn, MIG_MSG_STATE, state + off, n);
	}
	s->state_len = len;
	put_le64(end, len);
	put_le32(end + 8, crc32c(0, state, len));
	free(state);
	if (r == 0)
		r = mig_send(&s->conn, MIG_MSG_STATE_END, end, sizeof(end));
	return r < 0 ? msend_fail(s, r, "sending the state") : 0;
}

static void log_realtime(const char *what)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	log_event("migration: %s at %lld.%06ld (CLOCK_REALTIME)", what, (long long)ts.tv_sec,
	          ts.tv_nsec / 1000);
}

/*
 * The disk images back from the destination, which lets go of them when its
 * copy of the VM is discarded: it may take a moment to notice the failure.
 */
static int disks_take_back(struct vm *vm)
{
	const struct timespec step = {0, 100 * 1000000L};
	int r = -EBUSY;

	for (int i = 0; i < 50 && r == -EBUSY; i++) {
		r = machine_disks_lock(vm, true);
		if (r == -EBUSY)
			nanosleep(&step, NULL);
	}
	return r;
}

/*
 * Stop the VM, send what is left and the state, and hand over. Returns the
 * outcome; the VM runs again after a failure before GO.
 */
static enum migrate_outcome switchover(struct msend *s)
{
	bool disks_released = false;
	int64_t t0, t[5] = {0}; /* stopped, last pass sent, state sent, READY, RUNNING */
	uint64_t last_bytes = 0, pages0 = s->st->pages_sent;
	int r;

	s->st->phase = "switch-over";
	report(s);
	t0 = mono_ms();
	/* With the line below, the span in which the guest's last instruction here ran. */
	log_realtime("switch-over: stopping the VM");
	r = vm_snapshot_quiesce(s->vm);
	if (r < 0) {
		msend_fail(s, r, "the VM could not be stopped for the switch-over: %s",
		           strerror(-r));
		return MIGRATE_FAILED;
	}
	log_realtime("switch-over: the VM stopped here");
	t[0] = mono_ms();
	/* Shared storage: the destination opens the same images before GO. */
	disks_released = true;
	r = machine_disks_lock(s->vm, false);
	if (r < 0) {
		msend_fail(s, r, "cannot hand the disks over: %s", strerror(-r));
		goto resume;
	}
	s->st->pass++;
	r = vm_dirty_log_collect(s->vm, s->dirty);
	if (r < 0)
		msend_fail(s, r, "cannot read the dirty log: %s", strerror(-r));
	if (r == 0) {
		s->st->remaining_bytes = count_bits(s->dirty, s->words) * MIG_PAGE_SIZE;
		last_bytes = s->st->remaining_bytes;
		r = pass_dirty(s, false);
	}
	if (r == 0)
		r = pass_end(s, s->st->pages_sent - pages0);
	t[1] = mono_ms();
	/*
	 * Dirty tracking and the throttle stay on until the VM runs there (or
	 * here again): turning KVM's log off changes every memory slot, each
	 * change waiting for an SRCU grace period (1 to 15 ms seen), which the
	 * guest would spend stopped. migrate_source_run() turns them off.
	 */
	if (r == 0)
		r = state_send(s);
	t[2] = mono_ms();
	if (r == 0)
		r = pass_acked(s);
	if (r == 0)
		r = expect(s, MIG_MSG_READY, MIGRATE_ACK_TIMEOUT_MS, NULL);
	if (r < 0)
		goto resume;
	t[3] = mono_ms();
	/*
	 * From GO on there is no going back: a cancel no longer applies, and
	 * without RUNNING the source cannot know whether the VM runs there.
	 */
	s->conn.cancel_fd = -1;
	r = mig_send(&s->conn, MIG_MSG_GO, NULL, 0);
	if (r < 0) {
		/* GO never went out whole: the destination cannot run it. */
		msend_fail(s, r, "sending GO");
		goto resume;
	}
	r = expect(s, MIG_MSG_RUNNING, MIGRATE_ACK_TIMEOUT_MS, NULL);
	s->st->downtime_ms = (uint64_t)(mono_ms() - t0);
	s->st->bytes_sent = s->conn.bytes_tx;
	if (r < 0) {
		char cause[256];

		snprintf(cause, sizeof(cause), "%s", s->why);
		snprintf(s->why, s->why_len,
		         "the destination was told to run the VM but did not confirm (%s): it may "
		         "or may not run there. The VM stays paused here: if it runs on the "
		         "destination, kill it here; if not, resume it here",
		         cause);
		return MIGRATE_UNCERTAIN;
	}
	t[4] = mono_ms();
	/* Where the downtime went, for whoever wants it shorter. */
	log_event("migration: switch-over: stopping the VM %lld ms, the last %llu KiB %lld ms, "
	          "the state (%zu KiB) %lld ms, its check and restore there %lld ms, GO to "
	          "RUNNING %lld ms",
	          (long long)(t[0] - t0), (unsigned long long)(last_bytes >> 10),
	          (long long)(t[1] - t[0]), s->state_len >> 10, (long long)(t[2] - t[1]),
	          (long long)(t[3] - t[2]), (long long)(t[4] - t[3]));
	s->st->phase = "done";
	report(s);
	return MIGRATE_COMPLETED;
resume:
	r = disks_released ? disks_take_back(s->vm) : 0;
	if (r < 0) {
		char cause[256];

		snprintf(cause, sizeof(cause), "%s", s->why);
		snprintf(s->why, s->why_len,
		         "%s; and the disks could not be taken back (%s): the VM stays paused here "
		         "until the process holding them lets go (then resume it)",
		         cause, strerror(-r));
		return MIGRATE_UNCERTAIN;
	}
	vm_dirty_log_stop(s->vm);
	if (vm_set_throttle(s->vm, 0) < 0)
		log_warn("migration: the throttle could not be lifted");
	vm_unquiesce(s->vm);
	log_event("migration: the VM runs on here");
	return MIGRATE_FAILED;
}

/* Connect, authenticate, and offer the machine: 0 once the destination ACCEPTs. */
static int offer(struct msend *s)
{
	struct snapshot_machine m;
	struct mig_hello h;
	char to[160];
	int fd, r;

	s->st->phase = "connecting";
	mig_addr_format(&s->p->to, to, sizeof(to));
	/* Connected by `nestvm migrate` for a monitor that cannot reach the path (a jail). */
	fd = s->p->connected ? s->p->conn_fd
	                     : mig_connect(&s->p->to, MIGRATE_CONNECT_TIMEOUT_MS, s->p->cancel_fd,
	                                   s->why, s->why_len);
	if (fd < 0)
		return fd;
	r = mig_conn_init(&s->conn, fd, NULL, NULL, true);
	if (r < 0) {
		close(fd);
		return msend_fail(s, r, "out of memory");
	}
	s->conn.cancel_fd = s->p->cancel_fd;
	r = mig_handshake(&s->conn, s->p->secret, s->p->secret_len);
	if (r < 0)
		return msend_fail(s, r, "handshake");
	r = vm_snapshot_machine(s->vm, &m);
	if (r < 0)
		return msend_fail(s, r, "cannot read this host's CPU model: %s", strerror(-r));
	if (s->p->def_len > MIG_DEF_MAX)
		return msend_fail(s, -EFBIG, "the definition is larger than %u bytes", MIG_DEF_MAX);
	h = (struct mig_hello){
	    .page_size = MIG_PAGE_SIZE,
	    .ram_size = m.ram_size,
	    .nr_vcpus = m.nr_vcpus,
	    .nested = m.nested,
	    .cpu_signature = m.cpu_signature,
	    .def = (const uint8_t *)s->p->def,
	    .def_len = (uint32_t)s->p->def_len,
	};
	memcpy(h.cpu_vendor, m.cpu_vendor, sizeof(h.cpu_vendor));
	r = mig_send_built(&s->conn, MIG_MSG_HELLO,
	                   mig_hello_encode(&h, mig_frame_payload(&s->conn)));
	if (r == 0)
		r = expect(s, MIG_MSG_ACCEPT, MIGRATE_ACK_TIMEOUT_MS, NULL);
	if (r < 0)
		return msend_fail(s, r, "offering the VM");
	s->conn.timeout_ms = MIGRATE_ACK_TIMEOUT_MS;
	log_event("migration to %s: accepted; copying memory (%llu MiB)", to,
	          (unsigned long long)(m.ram_size >> 20));
	return 0;
}

enum migrate_outcome migrate_source_run(struct vm *vm, const struct migrate_source_params *p,
                                        struct migrate_stats *st, char *why, size_t len)
{
	struct msend *s = calloc(1, sizeof(*s));
	enum migrate_outcome out = MIGRATE_FAILED;
	int r;

	memset(st, 0, sizeof(*st));
	st->phase = "connecting";
	why[0] = 0;
	if (!s) {
		if (p->connected)
			close(p->conn_fd);
		snprintf(why, len, "out of memory");
		return MIGRATE_FAILED;
	}
	*s = (struct msend){.vm = vm, .p = p, .st = st, .why = why, .why_len = len};
	s->conn.fd = -1;
	s->start_ms = s->collect_ms = mono_ms();
	s->next_report = PROGRESS_STEP;
	s->words = guest_mem_dirty_words(&vm->mem);
	s->dirty = calloc(s->words ? s->words : 1, sizeof(*s->dirty));
	if (!s->dirty) {
		if (p->connected)
			close(p->conn_fd);
		snprintf(why, len, "out of memory");
		goto out;
	}
	r = offer(s); /* takes p->conn_fd */
	if (r == 0) {
		r = vm_dirty_log_start(vm);
		if (r < 0)
			msend_fail(s, r, "cannot track dirty pages (KVM_MEM_LOG_DIRTY_PAGES): %s",
			           strerror(-r));
	}
	if (r == 0)
		r = precopy(s);
	if (r == 0)
		out = switchover(s);
	if (out == MIGRATE_FAILED && atomic_load(&vm->stopping)) {
		/* Whatever cut it short (a check, a cancel, the quiesce), this is why. */
		snprintf(why, len, "the VM %s during the migration; nothing was migrated",
		         vm_stop_cause(vm));
		r = -ESHUTDOWN;
	}
	if (out == MIGRATE_FAILED) {
		/* Tell the destination why, so that it says so too (best effort). */
		mig_send_error(&s->conn, r < 0 ? -r : EIO, why);
		st->error = r < 0 ? r : s->conn.err ? s->conn.err : -EIO;
	}
out:
	vm_dirty_log_stop(vm);
	if (vm_set_throttle(vm, 0) < 0)
		log_warn("migration: the throttle could not be lifted");
	st->bytes_sent = s->conn.bytes_tx;
	st->elapsed_ms = (uint64_t)(mono_ms() - s->start_ms);
	if (s->conn.tx)
		mig_conn_release(&s->conn);
	free(s->dirty);
	free(s);
	return out;
}
