/* SPDX-License-Identifier: MIT */
/*
 * Saved states and checkpoints: `nestvm save` (Hyper-V's Save-VM) and
 * `nestvm checkpoint` (Checkpoint-VM, Get-VMCheckpoint, Restore-VMCheckpoint,
 * Remove-VMCheckpoint). A running VM is saved or checkpointed by its monitor
 * (docs/api.md: save, checkpoint); an off VM's checkpoint is made here.
 * The store's layout is manager/store_snap.h's.
 */
#include "cli/cli.h"
#include "cli/cli_vm.h"
#include "core/clock.h"
#include "core/exit_status.h"
#include "manager/store_snap.h"
#include "snapshot/vm_snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SNAPSHOT_TIMEOUT_MS (10 * 60 * 1000) /* without a progress line */
#define SAVE_END_WAIT_MS 15000
#define PROGRESS_AFTER_MS 1000 /* draw a bar only for what lasts longer */
#define PROGRESS_BAR_WIDTH 30

/* ---- the progress bar ---- */

struct progress_bar {
	const char *what;
	int64_t start_ms;
	bool drawn;
	bool tty;
};

/* On a terminal: "saving memory [#####....] 45% 115/256 MiB 310 MiB/s 0:01 left". */
static void progress_draw(void *opaque, json_t *p)
{
	struct progress_bar *bar = opaque;
	json_int_t done = 0, total = 0;
	const char *phase = "";
	int64_t elapsed = mono_ms() - bar->start_ms;
	double rate, left;
	char fill[PROGRESS_BAR_WIDTH + 1];
	int filled;

	if (!bar->tty || elapsed < PROGRESS_AFTER_MS)
		return;
	json_unpack(p, "{s?s, s?I, s?I}", "phase", &phase, "done", &done, "total", &total);
	if (total <= 0 || done < 0 || done > total)
		return;
	filled = (int)(PROGRESS_BAR_WIDTH * (double)done / (double)total);
	memset(fill, '#', (size_t)filled);
	memset(fill + filled, '.', (size_t)(PROGRESS_BAR_WIDTH - filled));
	fill[PROGRESS_BAR_WIDTH] = 0;
	rate = (double)done / (1 << 20) / ((double)elapsed / 1000.0);
	left = rate > 0 ? (double)(total - done) / (1 << 20) / rate : 0;
	fprintf(stderr, "\r%s %s [%s] %3d%% %lld/%lld MiB %.0f MiB/s %d:%02d left ", bar->what,
	        phase, fill, (int)(100 * done / total), (long long)(done >> 20),
	        (long long)(total >> 20), rate, (int)left / 60, (int)left % 60);
	bar->drawn = true;
}

static void progress_end(struct progress_bar *bar)
{
	if (bar->drawn)
		fprintf(stderr, "\r%*s\r", 100, "");
}

/* Ask the monitor for a save or checkpoint, with a progress bar on a terminal. */
static int snapshot_call(struct client *c, const char *cmd, const char *what, json_t *args,
                         json_t **res, struct mgr_err *err)
{
	struct progress_bar bar = {what, mono_ms(), false, isatty(STDERR_FILENO) == 1};
	int r;

	if (!args)
		args = json_object();
	json_object_set_new(args, "progress", json_true());
	r = client_call_progress(c, cmd, args, SNAPSHOT_TIMEOUT_MS, progress_draw, &bar, res, err);
	progress_end(&bar);
	return r;
}

/* ---- save ---- */

/* Wait until NAME's monitor has let go of the run lock: `start` may follow at once. */
static bool monitor_gone(const struct store *st, const char *name)
{
	for (int waited = 0; waited < SAVE_END_WAIT_MS; waited += 10) {
		if (store_lock_held(st, name, STORE_LOCK_RUN) == 0)
			return true;
		usleep(10000);
	}
	return false;
}

static const char save_usage[] =
    "usage: nestvm save NAME\n"
    "\n"
    "Save a running or paused VM (Save-VM): its memory, vCPUs (a guest\n"
    "hypervisor's nested state included) and devices go to disk and the VM\n"
    "stops, 'saved'. 'nestvm start NAME' carries on from there;\n"
    "'nestvm start --discard-saved NAME' boots afresh instead.\n";

int cmd_save(int argc, char **argv)
{
	const char *name = NULL;
	json_int_t ms = 0;
	struct mgr_err err;
	json_t *res = NULL;
	struct client c;
	struct store st;
	int r;

	r = cli_vm_parse(argc, argv, save_usage, &name);
	if (r < 0)
		r = cli_vm_open_store("save", &st);
	if (r < 0)
		r = cli_vm_connect("save", &st, name, &c, false);
	if (r >= 0)
		return r;
	if (snapshot_call(&c, "save", "saving", NULL, &res, &err) < 0) {
		r = cli_vm_error("save", "VM '%s': %s", name, err.msg);
	} else if (client_wait_closed(&c, SAVE_END_WAIT_MS) < 0 || !monitor_gone(&st, name)) {
		r = cli_vm_error("save", "VM '%s': saved, but the monitor did not end", name);
	} else {
		json_unpack(res, "{s?I}", "ms", &ms);
		printf("saved VM '%s' in %lld ms; 'nestvm start %s' resumes it\n", name,
		       (long long)ms, name);
		r = 0;
	}
	json_decref(res);
	client_close(&c);
	return r;
}

/* ---- checkpoint ---- */

static const char checkpoint_usage[] =
    "usage: nestvm checkpoint NAME [CHECKPOINT]\n"
    "       nestvm checkpoint list NAME [--json]\n"
    "       nestvm checkpoint restore NAME CHECKPOINT\n"
    "       nestvm checkpoint remove NAME CHECKPOINT\n"
    "\n"
    "A checkpoint (Checkpoint-VM) records a VM's disks and definition, and if it\n"
    "runs, its memory, vCPUs (a guest hypervisor's nested state included) and\n"
    "devices, after a pause of the time the memory takes to write. Its name is\n"
    "the time (UTC) unless given. The disks are copied as reflinks where the\n"
    "file system can, else as sparse copies.\n"
    "\n"
    "  list      the checkpoints, oldest first\n"
    "  restore   make the VM what the checkpoint recorded: a running VM is turned\n"
    "            off first; disks and definition go back; a checkpoint of a\n"
    "            running VM leaves it saved at that moment, and a VM that was\n"
    "            running is started again from there\n"
    "  remove    delete the checkpoint\n";

/* An off (or saved) VM's checkpoint: definition, disks, and the saved state if any. */
static int checkpoint_off(const struct store *st, const char *name, const char *cp)
{
	static const char *const state_files[] = {SNAPSHOT_STATE_FILE, SNAPSHOT_MEMORY_FILE};
	struct store_snap_tmp t = {.vm_fd = -1, .fd = -1};
	struct vm_def def = {0};
	struct mgr_err err;
	char dest[STORE_CHECKPOINT_NAME_MAX + 16];
	int lock, saved = -1, r;

	lock = cli_vm_lock_off("checkpoint", st, name, "a checkpoint is taken here");
	if (lock < 0)
		return NESTVM_EXIT_ERROR;
	r = store_load(st, name, &def, &err);
	if (r == 0 && store_has_saved(st, name)) {
		saved = store_snap_open(st, name, NULL, &err);
		r = saved < 0 ? saved : 0;
	}
	if (r == 0)
		r = store_snap_begin(st, name, &t, &err);
	if (r == 0)
		r = store_snap_write_def(&t, &def, &err);
	if (r == 0)
		r = store_snap_copy_disks(&t, &def, &err);
	for (unsigned int i = 0; r == 0 && saved >= 0 && i < 2; i++) {
		if (linkat(saved, state_files[i], t.fd, state_files[i], 0) < 0)
			r = mgr_err_set(&err, -errno, "cannot link the saved state's %s: %s",
			                state_files[i], strerror(errno));
	}
	snprintf(dest, sizeof(dest), "%s/%s", STORE_CHECKPOINTS, cp);
	if (r == 0)
		r = store_snap_commit(&t, dest, &err);
	else if (t.vm_fd >= 0)
		store_snap_abort(&t);
	if (saved >= 0)
		close(saved);
	vm_def_clear(&def);
	store_lock_release(lock);
	if (r < 0)
		return cli_vm_error("checkpoint", "VM '%s': %s", name, err.msg);
	printf("checkpoint '%s' of VM '%s' taken (%s)\n", cp, name,
	       saved >= 0 ? "disks and saved state" : "disks: the VM is off");
	return 0;
}

static int checkpoint_take(const struct store *st, const char *name, const char *cp_arg)
{
	char cp[STORE_CHECKPOINT_NAME_MAX + 1];
	struct vm_status vs;
	struct mgr_err err;
	json_t *res = NULL;
	json_int_t ms = 0;
	const char *taken = cp;
	struct client c;
	bool up;
	int fd, r;

	if (cp_arg) {
		snprintf(cp, sizeof(cp), "%s", cp_arg);
	} else {
		time_t now = time(NULL);
		struct tm tm;

		strftime(cp, sizeof(cp), "%Y%m%d-%H%M%S", gmtime_r(&now, &tm));
	}
	if (store_check_checkpoint_name(cp, &err) < 0)
		return cli_vm_usage("checkpoint", "%s", err.msg);
	fd = store_snap_open(st, name, cp, &err);
	if (fd >= 0) {
		close(fd);
		return cli_vm_error("checkpoint", "VM '%s' already has a checkpoint '%s'", name, cp);
	}
	if (client_vm_status(st, name, &vs, &err) < 0)
		return cli_vm_error("checkpoint", "%s", err.msg);
	up = cli_vm_is_up(vs.state);
	client_vm_status_clear(&vs);
	if (!up)
		return checkpoint_off(st, name, cp);
	r = cli_vm_connect("checkpoint", st, name, &c, false);
	if (r >= 0)
		return r;
	if (snapshot_call(&c, "checkpoint", "checkpoint", json_pack("{s:s}", "name", cp), &res,
	                  &err) < 0) {
		r = cli_vm_error("checkpoint", "VM '%s': %s", name, err.msg);
	} else {
		json_unpack(res, "{s?s, s?I}", "checkpoint", &taken, "ms", &ms);
		printf("checkpoint '%s' of VM '%s' taken in %lld ms (running state and disks)\n",
		       taken, name, (long long)ms);
		r = 0;
	}
	json_decref(res);
	client_close(&c);
	return r;
}

static void format_bytes(uint64_t b, char *buf, size_t len)
{
	if (b >= (10ull << 30))
		snprintf(buf, len, "%llu GiB", (unsigned long long)(b >> 30));
	else if (b >= (10ull << 20))
		snprintf(buf, len, "%llu MiB", (unsigned long long)(b >> 20));
	else
		snprintf(buf, len, "%llu KiB", (unsigned long long)(b >> 10));
}

static int checkpoint_list(const struct store *st, const char *name, bool as_json)
{
	struct store_checkpoint *cps = NULL;
	struct mgr_err err;
	json_t *arr;
	int n;

	n = store_checkpoint_list(st, name, &cps, &err);
	if (n < 0)
		return cli_vm_error("checkpoint", "%s", err.msg);
	if (as_json) {
		arr = json_array();
		for (int i = 0; arr && i < n; i++)
			json_array_append_new(arr, json_pack("{s:s, s:I, s:s, s:I}", "name",
			                                     cps[i].name, "created",
			                                     (json_int_t)cps[i].created, "kind",
			                                     cps[i].running ? "running" : "off",
			                                     "bytes", (json_int_t)cps[i].bytes));
		if (arr)
			json_dumpf(arr, stdout, JSON_INDENT(2));
		printf("\n");
		json_decref(arr);
	} else if (n == 0) {
		printf("VM '%s' has no checkpoints\n", name);
	} else {
		printf("%-24s %-20s %-8s %s\n", "CHECKPOINT", "CREATED (UTC)", "KIND", "SIZE");
		for (int i = 0; i < n; i++) {
			char when[32], size[32];
			time_t t = (time_t)cps[i].created;
			struct tm tm;

			strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", gmtime_r(&t, &tm));
			format_bytes(cps[i].bytes, size, sizeof(size));
			printf("%-24s %-20s %-8s %s\n", cps[i].name, when,
			       cps[i].running ? "running" : "off", size);
		}
	}
	free(cps);
	return 0;
}

/* Turn a VM that is up off at once, and wait until its monitor is gone. */
static int checkpoint_turn_off(const struct store *st, const char *name)
{
	struct mgr_err err;
	json_t *res = NULL;
	struct client c;
	int r = cli_vm_connect("checkpoint", st, name, &c, true);

	if (r == 0)
		return -1; /* off already */
	if (r > 0)
		return r;
	if (client_call(&c, "kill", NULL, CLIENT_TIMEOUT_MS, &res, &err) < 0)
		r = cli_vm_error("checkpoint", "VM '%s': cannot turn it off: %s", name, err.msg);
	else if (client_wait_closed(&c, SAVE_END_WAIT_MS) < 0)
		r = cli_vm_error("checkpoint", "VM '%s': the monitor did not end the VM", name);
	json_decref(res);
	client_close(&c);
	for (int waited = 0; r < 0 && waited < SAVE_END_WAIT_MS; waited += 20) {
		if (store_lock_held(st, name, STORE_LOCK_RUN) == 0)
			return -1;
		usleep(20000);
	}
	return r < 0 ? cli_vm_error("checkpoint", "VM '%s' did not stop", name) : r;
}

static int checkpoint_restore(const struct store *st, const char *name, const char *cp)
{
	char *start_argv[] = {"start", (char *)name, NULL};
	struct vm_status vs;
	struct mgr_err err;
	bool was_up;
	int fd, lock, r;

	fd = store_snap_open(st, name, cp, &err);
	if (fd < 0)
		return cli_vm_error("checkpoint", "%s", err.msg);
	close(fd);
	if (client_vm_status(st, name, &vs, &err) < 0)
		return cli_vm_error("checkpoint", "%s", err.msg);
	was_up = cli_vm_is_up(vs.state);
	client_vm_status_clear(&vs);
	if (was_up) {
		printf("turning VM '%s' off to restore checkpoint '%s'\n", name, cp);
		r = checkpoint_turn_off(st, name);
		if (r >= 0)
			return r;
	}
	lock = cli_vm_lock_off("checkpoint", st, name, "a checkpoint is restored");
	if (lock < 0)
		return NESTVM_EXIT_ERROR;
	r = store_checkpoint_apply(st, name, cp, &err);
	store_lock_release(lock);
	if (r < 0)
		return cli_vm_error("checkpoint", "VM '%s': %s", name, err.msg);
	printf("VM '%s' restored to checkpoint '%s'%s\n", name, cp,
	       store_has_saved(st, name) ? ": saved at that moment" : "");
	if (was_up && store_has_saved(st, name)) {
		fflush(stdout);
		return cmd_start(2, start_argv);
	}
	return 0;
}

int cmd_checkpoint(int argc, char **argv)
{
	const char *sub = argc > 1 ? argv[1] : NULL, *name, *cp = NULL;
	struct mgr_err err;
	struct store st;
	bool as_json = false;
	int r, first = 2, nargs;

	if (!sub || !strcmp(sub, "--help") || !strcmp(sub, "-h")) {
		fputs(checkpoint_usage, sub ? stdout : stderr);
		return sub ? 0 : NESTVM_EXIT_USAGE;
	}
	if (strcmp(sub, "list") && strcmp(sub, "restore") && strcmp(sub, "remove")) {
		sub = NULL; /* `checkpoint NAME [CHECKPOINT]` */
		first = 1;
	}
	nargs = argc - first;
	if (sub && !strcmp(sub, "list") && nargs == 2 && !strcmp(argv[first + 1], "--json")) {
		as_json = true;
		nargs = 1;
	}
	if (nargs < 1 || nargs > 2 || (sub && !strcmp(sub, "list") && nargs != 1) ||
	    (sub && strcmp(sub, "list") && nargs != 2))
		return cli_vm_usage("checkpoint", "see 'nestvm checkpoint --help' for its forms");
	name = argv[first];
	if (nargs == 2)
		cp = argv[first + 1];
	if (store_check_name(name, &err) < 0)
		return cli_vm_usage("checkpoint", "%s", err.msg);
	if (cp && store_check_checkpoint_name(cp, &err) < 0)
		return cli_vm_usage("checkpoint", "%s", err.msg);
	r = cli_vm_open_store("checkpoint", &st);
	if (r >= 0)
		return r;
	if (!sub)
		return checkpoint_take(&st, name, cp);
	if (!strcmp(sub, "list"))
		return checkpoint_list(&st, name, as_json);
	if (!strcmp(sub, "restore"))
		return checkpoint_restore(&st, name, cp);
	if (store_checkpoint_remove(&st, name, cp, &err) < 0)
		return cli_vm_error("checkpoint", "%s", err.msg);
	printf("checkpoint '%s' of VM '%s' removed\n", cp, name);
	return 0;
}
