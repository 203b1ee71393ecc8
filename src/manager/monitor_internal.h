/* SPDX-License-Identifier: MIT */
#ifndef NESTVM_MANAGER_MONITOR_INTERNAL_H
#define NESTVM_MANAGER_MONITOR_INTERNAL_H

/*
 * The monitor's own state (monitor.c), shared with its live migration
 * (monitor_migrate.c). Not for other users: monitor.h is the interface.
 */

#include "core/log.h"
#include "core/vm.h"
#include "manager/jail.h"
#include "manager/monitor.h"
#include "manager/protocol.h"
#include "snapshot/migrate.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define MONITOR_CONSOLE_PIPE_SIZE (1 << 20)

#define MONITOR_CONSOLE_PENDING 4096
#define MONITOR_LOG_TAIL_LINES 12
#define MONITOR_CLIENT_FDS 2

struct monitor_client {
	int fd;           /* -1: a free slot */
	unsigned int gen; /* counts the clients this slot has had */
	struct api_framer *in;
	bool console;
	bool awaits_end;       /* sent kill, or a stop that waits: it waits for the close */
	bool awaits_migration; /* sent migrate: its reply comes when it ends */
	int64_t active_ms;     /* when it connected or last completed a request */
	char pending[MONITOR_CONSOLE_PENDING]; /* console input the UART pipe has not taken */
	size_t pending_len;
	/*
	 * Descriptors that came with the request being read (SCM_RIGHTS): a
	 * migrate's secret file and connected stream, for a monitor that cannot
	 * open them itself. Closed after that read's requests unless taken (-1).
	 */
	int fds[MONITOR_CLIENT_FDS];
	unsigned int nr_fds;
	struct api_outbox out; /* replies not sent yet (monitor_reply()) */
	bool in_ended;         /* it shut its side: closed once out is sent */
};

/*
 * A live migration of the VM away from here (monitor_migrate.c): the
 * control thread takes the request and the worker thread runs it; the
 * worker reports through event_fd, and the control thread writes the
 * progress lines and the reply. Fields under monitor.lock unless noted.
 */
struct monitor_migration {
	pthread_t thread; /* main thread: created before the VM runs, joined after */
	bool thread_started;
	int cancel_fd;       /* eventfd: stop the running migration */
	int event_fd;        /* eventfd: news for the control thread */
	pthread_cond_t cond; /* a job, or quit, for the worker */
	bool quit;
	bool pending; /* a job waits for the worker */
	bool active;  /* requested and not over */
	bool had_one; /* status shows the last one */
	char to[API_MIGRATE_TO_MAX];
	struct mig_addr addr;
	bool connected; /* conn_fd: the stream, connected by the client (taken by the job) */
	int conn_fd;
	uint8_t secret[MIG_SECRET_MAX];
	size_t secret_len;
	unsigned int downtime_ms, timeout_s;
	char *def; /* the definition sent in HELLO; owned */
	struct migrate_stats stats;
	const char *result; /* "completed", "failed", "cancelled", "uncertain"; NULL while active */
	char error[512];
	/* The client that waits for the reply: its slot and the slot's generation. */
	int client;
	unsigned int client_gen;
	json_t *id;
	bool progress; /* it asked for progress lines */
	bool progress_news, done_news;
};

/* What the destination side of a migration shows in status (a receiving monitor). */
struct monitor_incoming_state {
	bool active;
	int cancel_fd; /* eventfd: a kill while receiving ends the migration */
	char from[160];
	unsigned int pass;
	uint64_t pages;
};

struct monitor {
	const struct store *st;
	const char *name;
	struct vm_def def;
	struct vm *vm;
	int lock_fd, ready_fd;
	int listen_fd, wake_fd, timer_fd;
	int con_out[2]; /* UART -> monitor */
	int con_in[2];  /* monitor -> UART */
	int con_log_fd;
	uint64_t con_log_size;
	int log_fd;             /* monitor.log, if it is our stderr; -1 otherwise */
	int64_t log_checked_ms; /* when monitor.log's size was last looked at */
	char con_log_path[STORE_PATH_MAX];
	char sock_path[STORE_PATH_MAX];
	char ring[MONITOR_CONSOLE_RING];
	size_t ring_head, ring_len;
	struct monitor_client clients[MONITOR_MAX_CLIENTS];
	struct jail jail; /* set before the first thread, read-only afterwards */
	pthread_t thread;
	bool thread_started;
	atomic_bool quit;
	int64_t started;
	/* Control thread only: what the stop deadline does. */
	bool stop_force;
	unsigned int stop_timeout;

	pthread_mutex_t lock;
	enum api_state state;  /* under lock */
	bool abort_start;      /* under lock: killed while starting */
	char stop_reason[200]; /* under lock: set when the monitor kills the VM */
	struct monitor_migration mig;
	struct monitor_incoming_state incoming; /* under lock */
};

/* A lifecycle line in monitor.log (the logger adds the timestamp and prefix). */
#define monitor_log(m, ...) ((void)(m), log_event(__VA_ARGS__))

/* monitor.c: the state (mirrored into runtime.json), and a reply line (@line taken). */
void monitor_set_state(struct monitor *m, enum api_state state);
enum api_state monitor_get_state(struct monitor *m);
int monitor_reply(struct monitor_client *cl, char *line);

/*
 * monitor_migrate.c. monitor_migrate_init - the worker thread and its
 * eventfds (main thread, before the VM runs); monitor_migrate_stop - cut
 * a migration under way short and join the worker (main thread, once the
 * VM has stopped and before the control thread does, so that the client
 * that asked hears why); monitor_migrate_fini - the same if not done yet,
 * then free the rest (after the control thread). 0 or -errno.
 */
int monitor_migrate_init(struct monitor *m) __attribute__((warn_unused_result));
void monitor_migrate_stop(struct monitor *m);
void monitor_migrate_fini(struct monitor *m);

/* Control thread: the migrate and migrate-cancel requests; NULL when the reply comes later. */
char *monitor_do_migrate(struct monitor *m, struct monitor_client *cl,
                         const struct api_request *req, enum api_state state);
char *monitor_do_migrate_cancel(struct monitor *m, const struct api_request *req);

/* Control thread: event_fd is readable (progress, or the end). */
void monitor_migrate_events(struct monitor *m);

/* monitor_migrating - a migration is under way (the commands that would disturb it wait). */
bool monitor_migrating(struct monitor *m);

/*
 * monitor_receive - build m->vm from the incoming migration @in (main
 * thread, instead of booting): receive, check, restore, wait for GO, and
 * tell the source it runs. 0, or -errno with @why (the source was told).
 */
int monitor_receive(struct monitor *m, const struct monitor_incoming *in,
                    const struct vm_config *cfg, char *why, size_t len)
    __attribute__((warn_unused_result));

/* monitor_migrate_status - the "migration" member of status, or NULL if none happened. */
json_t *monitor_migrate_status(struct monitor *m);

#endif
