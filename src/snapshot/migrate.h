/* SPDX-License-Identifier: MIT */
#ifndef NESTVM_SNAPSHOT_MIGRATE_H
#define NESTVM_SNAPSHOT_MIGRATE_H

/*
 * Live migration, pre-copy (docs/migration.md), over the stream of
 * snapshot/migrate_stream.h.
 *
 * Source (migrate_source_run(), on a thread of the monitor while the VM
 * runs): HELLO with the machine and its definition, then, once the
 * destination ACCEPTs, dirty tracking on (core/vm_dirty.c) and passes over
 * memory: the first sends every non-zero page, each later one the pages
 * written since the previous pass (KVM's log and the devices' marks). When
 * what is left would go in less than the target downtime at the bandwidth
 * measured, the switch-over: the VM is quiesced (vm_snapshot_quiesce()),
 * the last dirty pages and the state file follow, and the destination
 * checks and restores it and says READY; GO; the source stops for good
 * when the destination says RUNNING. A guest that dirties memory faster
 * than it goes is throttled in steps; past the timeout the source gives up.
 *
 * Destination (migrate_dest_*(), in `nestvm receive`'s monitor or `run
 * --incoming`): accept and authenticate, take HELLO (the caller judges the
 * definition and answers), fill anonymous RAM from the stream, check and
 * restore the state into a VM built on that RAM, READY, and run it only
 * after GO.
 *
 * Nothing ever runs on both sides: the destination runs only after GO, and
 * the source resumes only if the link failed before GO was sent whole. The
 * one window left open is after GO and before RUNNING: the source cannot
 * tell whether the destination runs, so it stays paused and says so
 * (MIGRATE_UNCERTAIN).
 */

#include "core/vm.h"
#include "snapshot/migrate_net.h"
#include "snapshot/migrate_stream.h"
#include "snapshot/vm_snapshot.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MIGRATE_DEFAULT_DOWNTIME_MS 100
#define MIGRATE_DEFAULT_TIMEOUT_S 300
#define MIGRATE_CONNECT_TIMEOUT_MS 10000
#define MIGRATE_THROTTLE_FIRST 20 /* percent, the first step */
#define MIGRATE_THROTTLE_STEP 10  /* percent, each later step */
/* Within the target, passes go on while each halves what is left, down to this, */
#define MIGRATE_DOWNTIME_FLOOR_MS 5
/* and up to this many passes (the target alone decides beyond). */
#define MIGRATE_EXTRA_PASSES_MAX 30

/* Where a migration stands, for progress lines and `status`. */
struct migrate_stats {
	const char *phase;   /* "connecting", "memory", "switch-over", "done" */
	unsigned int pass;   /* 1 = the first, full one */
	uint64_t bytes_sent; /* on the wire */
	uint64_t pages_sent;
	uint64_t remaining_bytes;      /* dirty at the last look */
	uint64_t dirty_rate;           /* bytes/s written by the guest in the last pass */
	uint64_t bandwidth;            /* bytes/s measured */
	uint64_t expected_downtime_ms; /* what is left at that bandwidth */
	unsigned int throttle;         /* percent of vCPU time taken away */
	uint64_t elapsed_ms;
	uint64_t downtime_ms; /* at the end: the VM stopped here until it ran there */
	int error;            /* at the end: -errno of a failure (-ECANCELED: cancelled) */
};

struct migrate_source_params {
	struct mig_addr to;
	const uint8_t *secret;
	size_t secret_len;
	unsigned int downtime_ms;
	unsigned int timeout_s;
	const char *def; /* the definition (vm.json) */
	size_t def_len;
	int cancel_fd; /* an eventfd: readable = cancel (before GO); or -1 */
	bool connected; /* conn_fd is the stream to @to, already connected (taken, even on failure) */
	int conn_fd;
	void (*progress)(void *opaque, const struct migrate_stats *st);
	void *opaque;
};

enum migrate_outcome {
	MIGRATE_FAILED,    /* nothing moved: the VM runs on here */
	MIGRATE_COMPLETED, /* it runs on the destination: stop it here for good */
	MIGRATE_UNCERTAIN, /* GO sent, RUNNING never came: paused here, the user decides */
};

/*
 * migrate_source_run - migrate the running @vm as @p says. Returns the
 * outcome; @st holds the last statistics, @why the reason of a failure or
 * the explanation of an uncertain end. The VM is left running
 * (MIGRATE_FAILED), quiesced (the two others), dirty logging and throttle
 * off in every case.
 */
enum migrate_outcome migrate_source_run(struct vm *vm, const struct migrate_source_params *p,
                                        struct migrate_stats *st, char *why, size_t len);

/* ---- the destination ---- */

/* The receiving end of one migration. */
struct migrate_dest {
	struct mig_conn conn;
	struct mig_hello hello; /* its def points into def below */
	uint8_t *def;           /* the definition from HELLO, def_len bytes, NUL-terminated */
	char peer[160];
	uint64_t pages; /* received so far */
	unsigned int pass;
	int64_t started_ms;
};

/*
 * migrate_dest_accept - wait on @lfd (up to @timeout_ms, -1 forever; @cancel_fd
 * as for a stream) for a source that knows @secret, and read its HELLO. A
 * connection that fails the handshake is dropped and reported through
 * @refused (may be NULL), and the wait goes on. Returns 0 with @d holding
 * the authenticated connection, or -errno with @why.
 */
int migrate_dest_accept(int lfd, const uint8_t *secret, size_t len, int timeout_ms, int cancel_fd,
                        void (*refused)(void *opaque, const char *why), void *opaque,
                        struct migrate_dest *d, char *why, size_t why_len)
    __attribute__((warn_unused_result));

/*
 * migrate_dest_check_hello - can this host take the machine in HELLO: its
 * CPU model (@kvm_path is asked), and, when @cfg is given, the vCPUs,
 * memory and nesting it is to run with? 0 or -errno with @why.
 */
int migrate_dest_check_hello(const struct migrate_dest *d, const char *kvm_path,
                             const struct vm_config *cfg, char *why, size_t len)
    __attribute__((warn_unused_result));

/*
 * migrate_dest_answer - ACCEPT (@err 0) or refuse with an ERROR saying @msg:
 * the source then keeps the VM. 0 or -errno.
 */
int migrate_dest_answer(struct migrate_dest *d, int err, const char *msg)
    __attribute__((warn_unused_result));

/*
 * migrate_dest_receive - after ACCEPT: receive memory and state, check and
 * restore the VM of @cfg (vm_create_incoming() around the RAM before the
 * memory comes, vm_finish_restored() once the state is there), tell
 * the source READY, and wait for GO. @progress (may be NULL) hears of each
 * pass. Returns 0 and the VM, which the caller runs (after
 * migrate_dest_running()); or -errno with @why, having told the source
 * and freed everything.
 */
int migrate_dest_receive(struct migrate_dest *d, const struct vm_config *cfg, const char *kvm_path,
                         void (*progress)(void *opaque, const struct migrate_dest *d), void *opaque,
                         struct vm **out, char *why, size_t len)
    __attribute__((warn_unused_result));

/* migrate_dest_running - tell the source the VM runs here (best effort: GO decided it). */
void migrate_dest_running(struct migrate_dest *d);

/* migrate_dest_release - close and free; twice is harmless. */
void migrate_dest_release(struct migrate_dest *d);

/*
 * What the destination does with the stream's frames, apart from the
 * network and KVM, so the fuzzer can drive it (tests/fuzz/fuzz_migration.c):
 * PAGES into @mem, each address checked against guest RAM; PASS counted;
 * STATE appended (at most SNAP_MAX_FILE_SIZE) and closed by STATE_END,
 * whose size and CRC32C must match. Any other frame, or one out of order
 * (PAGES after STATE), is a protocol error.
 */
struct migrate_sink {
	struct guest_mem *mem;
	uint8_t *state;
	size_t state_len, state_cap;
	bool state_done;
	uint64_t pages;
	unsigned int pass;
};

/* migrate_sink_frame - one frame: 0 (more to come), 1 (the state is complete), -EPROTO with @why.
 */
int migrate_sink_frame(struct migrate_sink *s, enum mig_msg type, const uint8_t *p, size_t len,
                       char *why, size_t why_len) __attribute__((warn_unused_result));

/* migrate_sink_release - free the state buffer. */
void migrate_sink_release(struct migrate_sink *s);

#endif
