# SPDX-License-Identifier: MIT
# lab-timeout: 120
#
# lab-l1fault — fails in its first run after an L1 triple fault that ends
# as the lab's own does (the probe's test=triplefault fault=pf), for
# tests/lab/watchdog-test.sh: the lab's guard (tests/lab/root/init,
# trace_guard_verdict in scenarios/trace-lib.sh) must take it for the lab's
# fault, end the lab with LAB-ERROR, and lab.sh run it once more in a fresh
# lab (LAB_RETRY=1), where it passes. With the word "twice" it faults in
# its first retry too, and passes in the second (LAB_RETRY=2), which only a
# scenario failed twice by the lab's own fault gets. A failure without such
# a fault (the word "plain") stays a failure. With the word "timer", its
# first run forges the lab's other L1 fault instead: an L1 whose console
# says its timer stopped (the probe echoes its command line, which holds
# the RCU report's words), which lab_l1_run must cut and /init take for the
# lab's (LAB-ERROR), so that it passes on its retry. With the word "cr3",
# the probe loads CR3 with a page outside its RAM (test=triplefault
# fault=cr3), so that the emulated CPU walks its tables through a
# reserved-bit nested page fault as in the lab's other ending of the L1
# fault: passes when the guard's watcher reported that walk
# (/tmp/guard.npfwalk) with that CR3.

. /lab/lib.sh

lab_need_probe
if [ "${1:-}" = twice ]; then lab_pass_on_retry 2; else lab_pass_on_retry 1; fi
if [ "${1:-}" = plain ]; then
	lab_fail "failing on purpose, no L1 triple fault before"
	lab_finish
fi
if [ "${1:-}" = timer ]; then
	lab_l1_run timer 60 --kernel $probe --memory 64M \
		--cmdline "test=idle note=forged: kthread timer wakeup didn't happen"
	lab_finish
fi
[ "${NESTLAB_GUARD:-0}" = 1 ] || lab_skip "no L1 triple fault guard in this lab"
if [ "${1:-}" = cr3 ]; then
	[ -d /sys/kernel/tracing/instances/guard/events/nestlab/l1_npf_walk ] ||
		lab_skip "no L1 page-walk fault probe in this lab"
	timeout 20 /lab/bin/nestvm run --kernel $probe --memory 64M --cmdline "test=triplefault fault=cr3" \
		</dev/null >/tmp/l1fault.out 2>&1 &
	for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15; do
		grep -q 'cr3=0x7f000000' /tmp/guard.npfwalk 2>/dev/null && break
		sleep 1
	done
	kill %1 2>/dev/null
	wait
	grep -q 'npf walk: the emulated CPU read .* cr3=0x7f000000 .*info1=0x20000000[0-9a-f]' /tmp/guard.npfwalk 2>/dev/null ||
		lab_fail "the guard reported no page-table walk outside RAM at CR3 0x7f000000: $(head -n 3 /tmp/guard.npfwalk 2>/dev/null)"
	lab_finish
fi
timeout 60 /lab/bin/nestvm run --kernel $probe --memory 64M --cmdline "test=triplefault fault=pf" \
	</dev/null >/tmp/l1fault.out 2>&1
rc=$?
[ $rc -eq 4 ] || lab_info "nestvm exit $rc ($(lab_exit_status_name $rc)), want 4 (triple fault)"
lab_fail "failing on purpose after the L1's triple fault (LAB_RETRY=${LAB_RETRY:-unset})"
lab_finish
