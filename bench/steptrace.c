/* SPDX-License-Identifier: MIT */
/*
 * steptrace: run a command with every instruction of every thread and child
 * single-stepped (ptrace), and write each distinct instruction address it
 * executed, in hex, one a line, to OUT:
 *
 *   steptrace OUT -- COMMAND [ARG...]
 *
 * bench/startup-order.sh maps these addresses to functions of a static
 * nestvm to learn which code a start touches (src/startup.order). Sampling
 * would miss the functions run once, which is most of a start; a nestvm
 * start is ~0.4 M instructions, ~10 s single-stepped.
 *
 * Addresses are recorded from the command's execve() on (not the tracer's
 * fork in between). Signals other than the tracer's own traps are passed on.
 * Exits with the command's exit status (128 + N for a signal N), 2 on a
 * usage or tracing error.
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

/* Open addressing; a start touches ~20,000 distinct addresses. */
#define SET_BITS 20
#define SET_SIZE (1u << SET_BITS)
static uint64_t set[SET_SIZE];
static size_t set_count;

static int set_add(uint64_t a)
{
	uint64_t h = (a * 0x9e3779b97f4a7c15ull) >> (64 - SET_BITS);

	if (!a)
		return 0;
	while (set[h] && set[h] != a)
		h = (h + 1) & (SET_SIZE - 1);
	if (!set[h]) {
		if (set_count >= SET_SIZE / 2)
			return -1;
		set[h] = a;
		set_count++;
	}
	return 0;
}

int main(int argc, char **argv)
{
	int status, cmd_status = -1;
	bool exec_seen = false;
	unsigned long steps = 0;
	pid_t cmd, t;
	FILE *out;

	if (argc < 4 || strcmp(argv[2], "--")) {
		fprintf(stderr, "usage: steptrace OUT -- COMMAND [ARG...]\n");
		return 2;
	}
	cmd = fork();
	if (cmd < 0) {
		perror("steptrace: fork");
		return 2;
	}
	if (!cmd) {
		/* Stop before the exec, so that the options are set by then. */
		ptrace(PTRACE_TRACEME, 0, 0, 0);
		raise(SIGSTOP);
		execvp(argv[3], argv + 3);
		fprintf(stderr, "steptrace: %s: %s\n", argv[3], strerror(errno));
		_exit(127);
	}
	if (waitpid(cmd, &status, 0) != cmd || !WIFSTOPPED(status) ||
	    ptrace(PTRACE_SETOPTIONS, cmd, 0,
	           PTRACE_O_TRACECLONE | PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK |
	               PTRACE_O_TRACEEXEC | PTRACE_O_EXITKILL) ||
	    ptrace(PTRACE_CONT, cmd, 0, 0)) {
		perror("steptrace: cannot trace the command");
		return 2;
	}
	/* Every thread and child is traced (the options are inherited). */
	while ((t = waitpid(-1, &status, __WALL)) > 0) {
		struct user_regs_struct regs;
		int sig, event;

		if (WIFEXITED(status) || WIFSIGNALED(status)) {
			if (t == cmd)
				cmd_status = status;
			continue;
		}
		sig = WSTOPSIG(status);
		event = status >> 16;
		if (event == PTRACE_EVENT_EXEC)
			exec_seen = true;
		/* Ours: the single-step traps, events, a new thread's first stop. */
		if (event || sig == SIGTRAP || sig == SIGSTOP)
			sig = 0;
		if (!exec_seen) {
			ptrace(PTRACE_CONT, t, 0, sig);
			continue;
		}
		if (!ptrace(PTRACE_GETREGS, t, 0, &regs)) {
			if (set_add(regs.rip)) {
				fprintf(stderr, "steptrace: more than %u addresses\n",
				        SET_SIZE / 2);
				kill(cmd, SIGKILL);
				return 2;
			}
			steps++;
		}
		ptrace(PTRACE_SINGLESTEP, t, 0, sig);
	}
	out = fopen(argv[1], "w");
	if (!out) {
		perror(argv[1]);
		return 2;
	}
	for (size_t i = 0; i < SET_SIZE; i++)
		if (set[i])
			fprintf(out, "%llx\n", (unsigned long long)set[i]);
	if (fclose(out)) {
		perror(argv[1]);
		return 2;
	}
	fprintf(stderr, "steptrace: %lu steps, %zu distinct addresses\n", steps, set_count);
	if (WIFEXITED(cmd_status))
		return WEXITSTATUS(cmd_status);
	return 128 + (WIFSIGNALED(cmd_status) ? WTERMSIG(cmd_status) : 0);
}
