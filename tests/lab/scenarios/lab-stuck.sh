# SPDX-License-Identifier: MIT
# lab-timeout: 120
# lab-budget: 60
#
# lab-stuck — in its first run, the lab kernel reports a task blocked for
# minutes (a line written to /dev/kmsg, as the kernel's hung-task watch
# writes it), for tests/lab/watchdog-test.sh: /init's heartbeat must take
# the lab kernel for stuck, end the lab with LAB-ERROR within a beat, and
# lab.sh retry the scenario in a fresh lab (LAB_RETRY=1), where it passes.

. /lab/lib.sh

lab_pass_on_retry
lab_info "first run: a forged hung-task report in the kernel's log; the heartbeat ends the lab"
echo "<3>INFO: task forged:1 blocked for more than 120 seconds." >/dev/kmsg
sleep 60
lab_fail "the heartbeat did not end the lab within 60 s of a hung-task report"
lab_finish
