/* SPDX-License-Identifier: MIT */
#ifndef NESTVM_CLI_CLI_H
#define NESTVM_CLI_CLI_H

#include <stdint.h>

/*
 * The command line: `nestvm COMMAND [options]`. Each command group lives in
 * its own file and is listed in main.c's command table.
 */

struct cli_command {
	const char *name;
	const char *summary;
	int (*fn)(int argc, char **argv); /* argv[0] is the command name */
};

int cmd_run(int argc, char **argv);
int cmd_nested(int argc, char **argv);
int cmd_switch(int argc, char **argv); /* cmd_switch.c: virtual switches */

/* The VM manager (cmd_vm.c: definitions; cmd_power.c: the monitor; cmd_console.c). */
int cmd_new(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_show(int argc, char **argv);
int cmd_set(int argc, char **argv);
int cmd_connect(int argc, char **argv);
int cmd_disconnect(int argc, char **argv);
int cmd_remove(int argc, char **argv);
int cmd_start(int argc, char **argv);
int cmd_stop(int argc, char **argv);
int cmd_kill(int argc, char **argv);
int cmd_pause(int argc, char **argv);
int cmd_resume(int argc, char **argv);
int cmd_monitor(int argc, char **argv);
int cmd_console(int argc, char **argv);
int cmd_api(int argc, char **argv);
int cmd_save(int argc, char **argv);	   /* cmd_snapshot.c */
int cmd_checkpoint(int argc, char **argv); /* cmd_snapshot.c */
int cmd_migrate(int argc, char **argv);	   /* cmd_migrate.c */
int cmd_receive(int argc, char **argv);	   /* cmd_migrate.c */
int cmd_exec(int argc, char **argv);       /* cmd_exec.c: the guest agent's client */
int cmd_cp(int argc, char **argv);         /* cmd_exec.c */
int cmd_agent_relay(int argc, char **argv); /* cmd_exec.c */

/*
 * cli_parse_size - "512M", "4G", "1024K", "2T" or a bare number of MiB into
 * bytes. Returns 0 or -EINVAL (garbage, zero, overflow).
 */
int cli_parse_size(const char *s, uint64_t *out) __attribute__((warn_unused_result));

/* cli_parse_uint - a decimal number in [min, max]; 0 or -EINVAL/-ERANGE. */
int cli_parse_uint(const char *s, unsigned long min, unsigned long max, unsigned long *out)
	__attribute__((warn_unused_result));

/* cli_parse_on_off - "on"/"off" (also true/false, yes/no, 1/0); 0 or -EINVAL. */
int cli_parse_on_off(const char *s, int *out) __attribute__((warn_unused_result));

#endif
