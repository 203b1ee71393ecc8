/* SPDX-License-Identifier: MIT */
/*
 * runstat: run one command once and print what bench/boot.sh needs to know
 * about it, on one line:
 *
 *   <wall_ns> <maxrss_kib> exit:<N> | signal:<N> | timeout
 *
 * wall_ns is CLOCK_MONOTONIC from just before the spawn to the return of
 * wait4(), so it covers the whole process: exec, dynamic linking, the
 * monitor's set-up, the guest, and the teardown of the VM at exit (the
 * kernel reaps the process only after its file descriptors are closed).
 * maxrss_kib is ru_maxrss of the child from wait4() (getrusage(2)).
 *
 * Note on ru_maxrss: Linux carries the RSS high-water mark of the process
 * image replaced by execve() into the new image's ru_maxrss, so the figure is
 * max(this spawner's RSS, the command's own peak). runstat is linked
 * statically and spawns with posix_spawn() (a vfork-style clone) to keep
 * that floor low; `runstat --noop` exits at once, so running
 * `runstat -- runstat --noop` measures the floor itself.
 *
 * Options: --timeout SEC (default 10; the child is killed with SIGKILL and
 * "timeout" is printed), --log FILE (the child's stdout and stderr; default
 * /dev/null). The child's stdin is always /dev/null. runstat's own exit
 * status is 0 when it measured something (whatever the child did), 2 on a
 * usage or spawn error.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define NSEC_PER_SEC 1000000000LL

static long long clock_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * NSEC_PER_SEC + ts.tv_nsec;
}

static int usage(void)
{
	fprintf(stderr, "usage: runstat [--timeout SEC] [--log FILE] -- COMMAND [ARG...]\n"
	                "       runstat --noop\n");
	return 2;
}

int main(int argc, char **argv)
{
	const char *log_path = "/dev/null";
	double timeout_s = 10.0;
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	struct timespec timeout;
	struct rusage ru;
	sigset_t chld, empty;
	long long t0, t1;
	int argi = 1, status, err;
	pid_t pid;

	if (argc == 2 && strcmp(argv[1], "--noop") == 0)
		return 0;
	for (; argi < argc; argi++) {
		if (strcmp(argv[argi], "--") == 0) {
			argi++;
			break;
		} else if (strcmp(argv[argi], "--timeout") == 0 && argi + 1 < argc) {
			timeout_s = strtod(argv[++argi], NULL);
		} else if (strcmp(argv[argi], "--log") == 0 && argi + 1 < argc) {
			log_path = argv[++argi];
		} else {
			return usage();
		}
	}
	if (argi >= argc || timeout_s <= 0)
		return usage();

	/* SIGCHLD stays blocked so that sigtimedwait() can wait for it. */
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, NULL);
	sigemptyset(&empty);

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, log_path, O_WRONLY | O_CREAT | O_TRUNC,
	                                 0644);
	posix_spawn_file_actions_adddup2(&fa, STDOUT_FILENO, STDERR_FILENO);
	posix_spawnattr_init(&attr);
	posix_spawnattr_setsigmask(&attr, &empty);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);

	t0 = clock_ns();
	err = posix_spawnp(&pid, argv[argi], &fa, &attr, &argv[argi], environ);
	if (err) {
		fprintf(stderr, "runstat: cannot run %s: %s\n", argv[argi], strerror(err));
		return 2;
	}

	timeout.tv_sec = (time_t)timeout_s;
	timeout.tv_nsec = (long)((timeout_s - (double)timeout.tv_sec) * 1e9);
	for (;;) {
		if (sigtimedwait(&chld, NULL, &timeout) == SIGCHLD)
			break;
		if (errno == EAGAIN) {
			kill(pid, SIGKILL);
			wait4(pid, &status, 0, &ru);
			printf("%lld %ld timeout\n", clock_ns() - t0, ru.ru_maxrss);
			return 0;
		}
		/* EINTR: a stray signal; keep waiting (the timeout restarts). */
	}
	while (wait4(pid, &status, 0, &ru) < 0)
		if (errno != EINTR) {
			perror("runstat: wait4");
			return 2;
		}
	t1 = clock_ns();

	if (WIFEXITED(status))
		printf("%lld %ld exit:%d\n", t1 - t0, ru.ru_maxrss, WEXITSTATUS(status));
	else
		printf("%lld %ld signal:%d\n", t1 - t0, ru.ru_maxrss, WTERMSIG(status));
	return 0;
}
