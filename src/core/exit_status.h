/* SPDX-License-Identifier: MIT */
#ifndef NESTVM_CORE_EXIT_STATUS_H
#define NESTVM_CORE_EXIT_STATUS_H

/*
 * Exit statuses of `nestvm run`. A value the guest writes to the debug-exit
 * port (PORT_DEBUG_EXIT) becomes the exit status as is (low 8 bits); the
 * probe guest uses PROBE_PASS/PROBE_FAIL/PROBE_SKIP for that.
 */
enum nestvm_exit_status {
	NESTVM_EXIT_POWEROFF = 0,      /* guest powered off (ACPI S5) */
	NESTVM_EXIT_ERROR = 1,         /* monitor error: bad input, KVM failure */
	NESTVM_EXIT_USAGE = 2,         /* bad command line */
	NESTVM_EXIT_REBOOT = 3,        /* guest asked for a reset */
	NESTVM_EXIT_CRASH = 4,         /* triple fault, KVM internal error, bad exit */
	NESTVM_EXIT_SIGNAL_BASE = 128, /* + signal number: SIGINT/SIGTERM */
};

/* Values the probe guest writes to PORT_DEBUG_EXIT. */
#define PROBE_PASS 0
#define PROBE_FAIL 10
#define PROBE_SKIP 11

#endif
