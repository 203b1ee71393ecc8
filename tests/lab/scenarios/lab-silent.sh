# SPDX-License-Identifier: MIT
# lab-timeout: 3600
# lab-budget: 120
#
# lab-silent — the lab goes silent on purpose, for tests/lab/watchdog-test.sh:
# stops the heartbeat of /init (SIGSTOP to its process group) and sleeps
# without printing, as a lab whose vCPUs halted for good (timer interrupts
# lost in QEMU's TCG) would. The in-lab limit is an hour and the budget
# (120 s) is well above lab.sh's SILENCE_S (60 s, or LAB_SILENCE_S): only the
# silence watch should end it, a lab failure, retried once, silent again.
# Not a test: it always ends in a lab failure.

. /lab/lib.sh

if [ -z "${LAB_HEARTBEAT_PID:-}" ]; then
	lab_fail "no LAB_HEARTBEAT_PID from /init"
	lab_finish
fi
lab_info "stopping the heartbeat (process group $LAB_HEARTBEAT_PID; LAB_RETRY=${LAB_RETRY:-unset});" \
	"only the host's silence watch ends this"
if ! kill -STOP -"$LAB_HEARTBEAT_PID"; then
	lab_fail "cannot stop the heartbeat"
	lab_finish
fi
sleep 3600
