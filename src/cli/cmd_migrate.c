/* SPDX-License-Identifier: MIT */
/*
 * Live migration of managed VMs (snapshot/migrate.h, docs/migration.md):
 * `nestvm migrate NAME --to ADDR` asks NAME's monitor to migrate it (the
 * monitor's `migrate` command, docs/api.md) and draws its progress;
 * `nestvm receive NAME --listen ADDR` waits for one, judges the machine and
 * definition it brings, and hands the stream to a monitor of its own.
 */
#include "cli/cli.h"
#include "cli/cli_vm.h"
#include "core/clock.h"
#include "core/exit_status.h"
#include "manager/monitor.h"
#include "manager/store_snap.h"
#include "snapshot/migrate.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define MIGRATE_LINE_TIMEOUT_MS (10 * 60 * 1000) /* without a progress line */
#define MIGRATE_END_WAIT_MS 15000
#define RECEIVE_DEFAULT_WAIT_S 600

/* ---- migrate ---- */

static const char migrate_usage[] =
    "usage: nestvm migrate NAME --to tcp:HOST:PORT|unix:PATH --secret-file FILE\n"
    "                      [--downtime MS] [--timeout S]\n"
    "       nestvm migrate --cancel NAME\n"
    "\n"
    "Move the running VM NAME, live, to a nestvm waiting for it there ('nestvm receive\n"
    "NAME --listen ...' or 'nestvm run --incoming ...'). Memory is copied while the\n"
    "guest runs, then the pages it wrote meanwhile, over and over, until what is left\n"
    "goes in the downtime; then the VM stops here, the rest and its state go over, and\n"
    "it runs there. Disks are not copied: both sides must see them at the same paths.\n"
    "\n"
    "  --to ADDR            where the destination listens\n"
    "  --secret-file FILE   the secret both ends were given (16 to 4096 bytes, a file\n"
    "                       of yours, mode 0600 or 0400)\n"
    "  --downtime MS        the longest the VM may stand still (default 100)\n"
    "  --timeout S          give up after S seconds if memory does not converge; the\n"
    "                       VM keeps running here (default 300)\n"
    "  --cancel             stop a migration under way; the VM keeps running here\n";

struct migrate_bar {
	const char *to;
	int64_t start_ms;
	bool tty, drawn;
};

static void bytes_human(uint64_t b, char *buf, size_t len)
{
	if (b >= (10ull << 30))
		snprintf(buf, len, "%llu GiB", (unsigned long long)(b >> 30));
	else
		snprintf(buf, len, "%llu MiB", (unsigned long long)(b >> 20));
}

/* "pass 3: 312 MiB sent, 12 MiB left, guest writes 40 MiB/s, link 500 MiB/s, ~24 ms down, throttle
 * 30%" */
static void migrate_draw(void *opaque, json_t *p)
{
	struct migrate_bar *bar = opaque;
	json_int_t pass = 0, sent = 0, left = 0, rate = 0, bw = 0, down = 0, thr = 0;
	const char *phase = "";
	char s[32], l[32];

	if (!bar->tty || mono_ms() - bar->start_ms < 500)
		return;
	json_unpack(p, "{s?s, s?I, s?I, s?I, s?I, s?I, s?I, s?I}", "phase", &phase, "pass", &pass,
	            "bytes_sent", &sent, "remaining_bytes", &left, "dirty_rate", &rate, "bandwidth",
	            &bw, "expected_downtime_ms", &down, "throttle", &thr);
	bytes_human((uint64_t)sent, s, sizeof(s));
	bytes_human((uint64_t)left, l, sizeof(l));
	fprintf(stderr,
	        "\rmigrating to %s: %s, pass %lld: %s sent, %s left, guest writes %lld MiB/s, "
	        "link %lld MiB/s, ~%lld ms down, throttle %lld%%   ",
	        bar->to, phase, (long long)pass, s, l, (long long)(rate >> 20),
	        (long long)(bw >> 20), (long long)down, (long long)thr);
	bar->drawn = true;
}

static int migrate_cancel(const char *name)
{
	struct mgr_err err;
	json_t *res = NULL;
	struct client c;
	struct store st;
	int r = cli_vm_open_store("migrate", &st);

	if (r < 0)
		r = cli_vm_connect("migrate", &st, name, &c, false);
	if (r >= 0)
		return r;
	if (client_call(&c, "migrate-cancel", NULL, CLIENT_TIMEOUT_MS, &res, &err) < 0)
		r = cli_vm_error("migrate", "VM '%s': %s", name, err.msg);
	else {
		printf("cancelling the migration of VM '%s'; it keeps running here\n", name);
		r = 0;
	}
	json_decref(res);
	client_close(&c);
	return r;
}

/* Wait until NAME's monitor has let go of the run lock: the VM is off here. */
static bool migrate_monitor_gone(const struct store *st, const char *name)
{
	for (int waited = 0; waited < MIGRATE_END_WAIT_MS; waited += 10) {
		if (store_lock_held(st, name, STORE_LOCK_RUN) == 0)
			return true;
		usleep(10000);
	}
	return false;
}

struct migrate_args {
	const char *name, *to, *secret_file;
	unsigned long downtime_ms, timeout_s;
	bool cancel;
	int fds[2]; /* passed with the request: the secret file, a UNIX stream */
	unsigned int nr_fds;
};

static int migrate_parse(int argc, char **argv, struct migrate_args *a)
{
	static const struct option opts[] = {
	    {"to", required_argument, NULL, 't'},
	    {"secret-file", required_argument, NULL, 's'},
	    {"downtime", required_argument, NULL, 'd'},
	    {"timeout", required_argument, NULL, 'T'},
	    {"cancel", no_argument, NULL, 'c'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int opt, r;

	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 't':
			a->to = optarg;
			break;
		case 's':
			a->secret_file = optarg;
			break;
		case 'd':
			if (cli_parse_uint(optarg, 1, API_MAX_DOWNTIME_MS, &a->downtime_ms) < 0)
				return cli_vm_usage("migrate",
				                    "--downtime '%s': milliseconds, 1 to %d",
				                    optarg, API_MAX_DOWNTIME_MS);
			break;
		case 'T':
			if (cli_parse_uint(optarg, 1, API_MAX_MIGRATE_TIMEOUT, &a->timeout_s) < 0)
				return cli_vm_usage("migrate", "--timeout '%s': seconds, 1 to %d",
				                    optarg, API_MAX_MIGRATE_TIMEOUT);
			break;
		case 'c':
			a->cancel = true;
			break;
		case 'h':
			fputs(migrate_usage, stdout);
			return 0;
		default:
			return cli_vm_usage("migrate", "unknown or incomplete option '%s'",
			                    argv[optind - 1]);
		}
	}
	r = cli_vm_name_arg("migrate", argc, argv, &a->name);
	if (r >= 0)
		return r;
	if (a->cancel && (a->to || a->secret_file || a->downtime_ms || a->timeout_s))
		return cli_vm_usage("migrate", "--cancel takes only the VM's name");
	if (!a->cancel && (!a->to || !a->secret_file))
		return cli_vm_usage("migrate", "--to and --secret-file are required");
	return -1;
}

/* The request: a numeric address (the monitor resolves no names) and an absolute secret path. */
static json_t *migrate_request(struct migrate_args *a, char *to, size_t to_len)
{
	char why[512], path[PATH_MAX];
	uint8_t secret[MIG_SECRET_MAX];
	struct mig_addr addr;
	json_t *args;
	int n;

	if (mig_addr_parse(a->to, true, &addr, why, sizeof(why)) < 0) {
		cli_vm_usage("migrate", "--to %s", why);
		return NULL;
	}
	mig_addr_format(&addr, to, to_len);
	/* Checked here for a plain message; the monitor reads it again. */
	n = mig_secret_read(a->secret_file, secret, sizeof(secret), why, sizeof(why));
	explicit_bzero(secret, sizeof(secret));
	if (n < 0 || !realpath(a->secret_file, path)) {
		cli_vm_error("migrate", "%s", n < 0 ? why : strerror(errno));
		return NULL;
	}
	/*
	 * The monitor gets the file open, and a UNIX stream connected: a
	 * jailed monitor sees neither path (manager/jail.h).
	 */
	a->fds[0] = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (a->fds[0] < 0) {
		cli_vm_error("migrate", "secret file '%s': %s", path, strerror(errno));
		return NULL;
	}
	a->nr_fds = 1;
	if (addr.is_unix) {
		a->fds[1] = mig_connect(&addr, MIGRATE_CONNECT_TIMEOUT_MS, -1, why, sizeof(why));
		if (a->fds[1] < 0) {
			cli_vm_error("migrate", "%s", why);
			return NULL;
		}
		a->nr_fds = 2;
	}
	args = json_pack("{s:s, s:s}", "to", to, "secret_file", path);
	if (args && a->downtime_ms)
		json_object_set_new(args, "downtime", json_integer((json_int_t)a->downtime_ms));
	if (args && a->timeout_s)
		json_object_set_new(args, "timeout", json_integer((json_int_t)a->timeout_s));
	if (args)
		json_object_set_new(args, "progress", json_true());
	return args;
}

int cmd_migrate(int argc, char **argv)
{
	struct migrate_args a = {0};
	struct migrate_bar bar = {.start_ms = mono_ms(), .tty = isatty(STDERR_FILENO) == 1};
	json_int_t ms = 0, down = 0, bytes = 0, passes = 0;
	char to[200];
	struct mgr_err err;
	json_t *args, *res = NULL;
	struct client c;
	struct store st;
	int r = migrate_parse(argc, argv, &a);

	if (r >= 0)
		return r;
	if (a.cancel)
		return migrate_cancel(a.name);
	args = migrate_request(&a, to, sizeof(to));
	if (!args)
		return NESTVM_EXIT_ERROR;
	bar.to = to;
	r = cli_vm_open_store("migrate", &st);
	if (r < 0)
		r = cli_vm_connect("migrate", &st, a.name, &c, false);
	if (r >= 0) {
		json_decref(args);
		return r;
	}
	c.pass_fds = a.fds;
	c.nr_pass_fds = a.nr_fds;
	r = client_call_progress(&c, "migrate", args, MIGRATE_LINE_TIMEOUT_MS, migrate_draw, &bar,
	                         &res, &err);
	for (unsigned int i = 0; i < a.nr_fds; i++)
		close(a.fds[i]);
	if (bar.drawn)
		fprintf(stderr, "\r%*s\r", 150, "");
	if (r < 0) {
		r = cli_vm_error("migrate", "VM '%s': %s", a.name, err.msg);
	} else {
		json_unpack(res, "{s?I, s?I, s?I, s?I}", "ms", &ms, "downtime_ms", &down, "bytes",
		            &bytes, "passes", &passes);
		printf("VM '%s' migrated to %s in %lld ms: %lld MiB in %lld passes, stopped for "
		       "%lld ms\n",
		       a.name, to, (long long)ms, (long long)(bytes >> 20), (long long)passes,
		       (long long)down);
		fflush(stdout);
		if (client_wait_closed(&c, MIGRATE_END_WAIT_MS) < 0 ||
		    !migrate_monitor_gone(&st, a.name))
			r = cli_vm_error("migrate",
			                 "VM '%s': migrated, but its monitor here did not "
			                 "end",
			                 a.name);
		else
			r = 0;
	}
	json_decref(res);
	client_close(&c);
	return r;
}

/* ---- receive ---- */

static const char receive_usage[] =
    "usage: nestvm receive NAME --listen tcp:HOST:PORT|unix:PATH --secret-file FILE\n"
    "                      [--wait S]\n"
    "\n"
    "Wait for VM NAME to migrate here ('nestvm migrate NAME --to ...' on the source),\n"
    "and run it in a monitor of its own, as 'nestvm start' would. Its definition comes\n"
    "with it: NAME is created if this host has no VM of that name; one that exists must\n"
    "be off and defined the same. A migration that fails leaves nothing here (a VM\n"
    "created for it is removed again), and the VM runs on at the source.\n"
    "\n"
    "  --listen ADDR        where to listen: tcp:HOST:PORT (port 0: any, printed), or\n"
    "                       unix:PATH in a directory only you control (mode 0600)\n"
    "  --secret-file FILE   the secret both ends were given (a file of yours, mode 0600)\n"
    "  --wait S             how long to wait for the source to connect (default 600);\n"
    "                       connections that do not know the secret are refused and\n"
    "                       the wait goes on\n";

/* A field-by-field comparison of two definitions; "" if they are the same. */
static void receive_def_diff(const struct vm_def *here, const struct vm_def *there, char *buf,
                             size_t len)
{
	char *a = vm_def_format(here), *b = vm_def_format(there);
	json_t *ja = a ? json_loads(a, 0, NULL) : NULL, *jb = b ? json_loads(b, 0, NULL) : NULL;
	const char *key;
	json_t *v;

	buf[0] = 0;
	if (!ja || !jb) {
		snprintf(buf, len, "cannot compare the definitions (out of memory)");
	} else {
		json_object_foreach(ja, key, v)
		{
			json_t *w = json_object_get(jb, key);

			if (!w || !json_equal(v, w)) {
				char *x = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
				char *y = w ? json_dumps(w, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;

				snprintf(buf, len,
				         "field '%s' is %.80s here, %.80s in the one migrating",
				         key, x ? x : "?", y ? y : "absent");
				free(x);
				free(y);
				break;
			}
		}
	}
	json_decref(ja);
	json_decref(jb);
	free(a);
	free(b);
}

struct receive_ctx {
	const char *name;
	struct store st;
	struct vm_def here; /* NAME's definition, if it exists */
	bool exists;
	int lock_fd;
};

static void receive_refused(void *opaque, const char *why)
{
	struct receive_ctx *rc = opaque;

	fprintf(stderr, "nestvm receive: VM '%s': %s; still waiting\n", rc->name, why);
}

/* Judge the definition the source sent: 0 with @def ready to run here, or -1 with @why. */
static int receive_judge(struct receive_ctx *rc, struct migrate_dest *d, struct vm_def *def,
                         char *why, size_t len)
{
	struct vm_config cfg;
	struct mgr_err err;

	if (vm_def_parse((const char *)d->def, d->hello.def_len, "the migrating VM's definition",
	                 def, &err) < 0) {
		snprintf(why, len, "%.500s", err.msg);
		return -1;
	}
	snprintf(def->name, sizeof(def->name), "%s", rc->name);
	if (rc->exists) {
		char diff[300];

		receive_def_diff(&rc->here, def, diff, sizeof(diff));
		if (diff[0]) {
			snprintf(why, len, "VM '%s' exists here with another definition: %s",
			         rc->name, diff);
			return -1;
		}
	}
	/* Only the machine is judged here: the vsock socket's place does not matter yet. */
	if (vm_def_to_config(def, STORE_VSOCK_SOCKET, &cfg, &err) < 0) {
		snprintf(why, len, "%.500s", err.msg);
		return -1;
	}
	return migrate_dest_check_hello(d, "/dev/kvm", &cfg, why, len) < 0 ? -1 : 0;
}

/* The session and HELLO, in a memfd for the monitor (monitor.h, struct monitor_incoming). */
static int receive_session_fd(struct migrate_dest *d)
{
	uint8_t *buf = malloc(MIG_SESSION_SIZE + 4 + MIG_HELLO_FIXED + MIG_DEF_MAX);
	size_t n;
	int fd = memfd_create("nestvm-migrate-session", MFD_CLOEXEC), r = 0;

	if (!buf || fd < 0) {
		free(buf);
		if (fd >= 0)
			close(fd);
		return -ENOMEM;
	}
	mig_conn_export(&d->conn, buf);
	n = mig_hello_encode(&d->hello, buf + MIG_SESSION_SIZE + 4);
	for (int i = 0; i < 4; i++)
		buf[MIG_SESSION_SIZE + i] = (uint8_t)(n >> (8 * i));
	n += MIG_SESSION_SIZE + 4;
	if (write(fd, buf, n) != (ssize_t)n)
		r = -EIO;
	explicit_bzero(buf, n);
	free(buf);
	if (r < 0) {
		close(fd);
		return r;
	}
	return fd;
}

/* NAME must be off (its run lock taken) and without a saved state; -1 or an exit status. */
static int receive_prepare(struct receive_ctx *rc)
{
	struct mgr_err err;
	int r = store_load(&rc->st, rc->name, &rc->here, &err);

	rc->lock_fd = -1;
	if (r == -ENOENT)
		return -1;
	if (r < 0)
		return cli_vm_error("receive", "%s", err.msg);
	rc->exists = true;
	rc->lock_fd = cli_vm_lock_off("receive", &rc->st, rc->name, "a migration is received");
	if (rc->lock_fd < 0)
		return NESTVM_EXIT_ERROR;
	if (store_has_saved(&rc->st, rc->name))
		return cli_vm_error("receive",
		                    "VM '%s' has a saved state here; 'nestvm start "
		                    "--discard-saved' or 'nestvm remove' it first",
		                    rc->name);
	return -1;
}

/*
 * The VM this command created for a migration that failed: removed once no
 * monitor holds it (the monitor removes it itself unless it was killed).
 */
static void receive_remove_created(struct receive_ctx *rc)
{
	struct mgr_err err;
	int def_fd;

	store_lock_release(rc->lock_fd);
	rc->lock_fd = store_lock_acquire(&rc->st, rc->name, STORE_LOCK_RUN, 5000, &err);
	if (rc->lock_fd == -ENOENT)
		return; /* gone already */
	def_fd = rc->lock_fd < 0
	             ? rc->lock_fd
	             : store_lock_acquire(&rc->st, rc->name, STORE_LOCK_DEF, 5000, &err);
	if (def_fd < 0 || store_remove(&rc->st, rc->name, &err) < 0) {
		if (def_fd != -ENOENT)
			fprintf(stderr, "nestvm receive: %s\n", err.msg);
	}
	store_lock_release(def_fd);
}

/* Hand the accepted stream to a new monitor for NAME, and wait until the VM runs. */
static int receive_handover(struct receive_ctx *rc, struct migrate_dest *d, struct vm_def *def)
{
	struct monitor_incoming in = {.from = d->peer};
	struct mgr_err err;
	pid_t pid;
	int r;

	if (!rc->exists) {
		if (store_create(&rc->st, def, &err) < 0) {
			mig_send_error(&d->conn, EEXIST, err.msg);
			return cli_vm_error("receive", "%s", err.msg);
		}
		in.created = true;
		rc->lock_fd = store_lock_acquire(&rc->st, rc->name, STORE_LOCK_RUN, 0, &err);
		if (rc->lock_fd < 0) {
			mig_send_error(&d->conn, EBUSY, "the VM was started here meanwhile");
			return cli_vm_error("receive", "%s", err.msg);
		}
	}
	r = migrate_dest_answer(d, 0, NULL);
	in.session_fd = r < 0 ? r : receive_session_fd(d);
	if (in.session_fd < 0)
		r = cli_vm_error("receive", "VM '%s': %s", rc->name,
		                 r < 0 ? d->conn.error : "cannot hand the stream over");
	if (r == 0) {
		in.conn_fd = d->conn.fd;
		r = monitor_spawn_incoming(&rc->st, rc->name, rc->lock_fd, &in, &pid, &err);
		close(in.session_fd);
		if (r < 0) {
			/* A monitor killed midway could not remove what was created for it. */
			if (in.created)
				receive_remove_created(rc);
			r = cli_vm_error("receive", "VM '%s': the migration from %s failed: %s%s",
			                 rc->name, d->peer, err.msg,
			                 in.created ? " (nothing was left here)" : "");
		} else
			printf("VM '%s' migrated here from %s: it runs (monitor pid %d); console: "
			       "nestvm console %s\n",
			       rc->name, d->peer, (int)pid, rc->name);
	}
	/* Never handed over: what was created for it goes again. */
	if (in.created && in.session_fd < 0)
		receive_remove_created(rc);
	return r;
}

int cmd_receive(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"listen", required_argument, NULL, 'l'},
	    {"secret-file", required_argument, NULL, 's'},
	    {"wait", required_argument, NULL, 'w'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct receive_ctx rc = {.lock_fd = -1};
	const char *listen_arg = NULL, *secret_file = NULL;
	unsigned long wait_s = RECEIVE_DEFAULT_WAIT_S;
	uint8_t secret[MIG_SECRET_MAX];
	struct migrate_dest d = {.conn.fd = -1};
	struct vm_def def = {0};
	struct mig_addr addr;
	char why[512], where[200];
	int opt, n, lfd = -1, r;

	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (opt == 'l')
			listen_arg = optarg;
		else if (opt == 's')
			secret_file = optarg;
		else if (opt == 'w' && cli_parse_uint(optarg, 1, 86400, &wait_s) == 0)
			continue;
		else if (opt == 'h') {
			fputs(receive_usage, stdout);
			return 0;
		} else
			return cli_vm_usage("receive", "unknown or incomplete option '%s'",
			                    argv[optind - 1]);
	}
	r = cli_vm_name_arg("receive", argc, argv, &rc.name);
	if (r >= 0)
		return r;
	if (!listen_arg || !secret_file)
		return cli_vm_usage("receive", "--listen and --secret-file are required");
	if (mig_addr_parse(listen_arg, true, &addr, why, sizeof(why)) < 0)
		return cli_vm_usage("receive", "--listen %s", why);
	n = mig_secret_read(secret_file, secret, sizeof(secret), why, sizeof(why));
	if (n < 0)
		return cli_vm_error("receive", "%s", why);
	r = cli_vm_open_store("receive", &rc.st);
	if (r < 0)
		r = receive_prepare(&rc);
	if (r < 0) {
		lfd = mig_listen(&addr, why, sizeof(why));
		if (lfd < 0)
			r = cli_vm_error("receive", "%s", why);
	}
	if (r < 0) {
		mig_addr_format(&addr, where, sizeof(where));
		printf("waiting for VM '%s' on %s\n", rc.name, where);
		fflush(stdout);
		if (migrate_dest_accept(lfd, secret, (size_t)n, (int)wait_s * 1000, -1,
		                        receive_refused, &rc, &d, why, sizeof(why)) < 0)
			r = cli_vm_error("receive", "VM '%s': %s", rc.name, why);
	}
	explicit_bzero(secret, sizeof(secret));
	if (lfd >= 0) {
		close(lfd);
		if (addr.is_unix)
			unlink(addr.path);
	}
	if (r < 0 && receive_judge(&rc, &d, &def, why, sizeof(why)) < 0) {
		mig_send_error(&d.conn, EINVAL, why);
		r = cli_vm_error("receive", "refused VM '%s' from %s: %s", rc.name, d.peer, why);
	}
	if (r < 0)
		r = receive_handover(&rc, &d, &def);
	migrate_dest_release(&d);
	store_lock_release(rc.lock_fd);
	vm_def_clear(&def);
	vm_def_clear(&rc.here);
	return r;
}
