#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# watchdog-test.sh — lab.sh's watchdogs of each scenario, and its retries
# of a scenario a lab failure cut, and its guard against the lab's own L1
# triple fault. Two runs:
#
# 1. `lab.sh lab-l1fault:twice lab-flaky lab-selftest`: lab-l1fault:twice's
#    first run and first retry fail after an L1 triple fault that ends as the
#    lab's own does (the probe's test=triplefault fault=pf); lab-flaky's
#    first run spins both lab vCPUs in the kernel and never ends (its limit
#    inside the lab is an hour, its budget on the host 10 s; the heartbeat
#    goes on). Asserts that the lab's guard took each fault for a lab failure
#    (LAB-ERROR) and lab.sh retried lab-l1fault:twice in a fresh lab boot
#    twice (nestlab.retry=1, then 2: LAB_RETRY) to a pass; that lab.sh cut
#    lab-flaky near its budget, not at the run's timeout, with the vCPUs'
#    registers in the log and their RIPs named by kernel symbols that the lab
#    itself listed, then ran it again in a fourth lab boot (a second scenario
#    cut in one run, retried too) to a pass, and
#    lab-selftest after it. Verdicts: pass, pass noting "retried after a LAB
#    FAILURE: ... overran its budget", pass, "lab ok", exit 0. A lab with no
#    guard skips lab-l1fault:twice (lab-flaky then wedges its first boot).
# 2. `LAB_SILENCE_S=10 lab.sh lab-silent lab-selftest lab-l1fault:plain
#    lab-l1fault:timer lab-stuck lab-l1fault:cr3`:
#    lab-silent stops the heartbeat and prints nothing more. Asserts that
#    lab.sh cut it for its silence within 10 to 14 s of its LAB-BEGIN, twice
#    (its retry goes silent too, and a lab failure that is not the L1 triple
#    fault gets no second retry), then ran lab-selftest in a third lab boot
#    to a pass, and lab-l1fault:plain, failing with no L1 triple fault
#    before, to a failure that stays one, and lab-l1fault:timer, an L1
#    whose console says its timer stopped (the lab's own L1 hang), cut by
#    lab_l1_run and retried in a fourth lab boot to a pass, and lab-stuck,
#    a lab kernel that reports a hung task, ended by /init's heartbeat and
#    retried in a fifth to a pass, and lab-l1fault:cr3, an L1 whose CR3 is
#    outside its RAM, which passes when the guard's watcher reported the
#    emulated CPU's walk there (the lab's other ending of its L1 fault):
#    lab-silent verdict lab, "lab failure" naming both silences, exit 125.
#
# run-tests.sh's counting of both runs' results is checked too,
# with a stub for lab.sh (no lab).
#
# A lab failure that no scenario here forges (the lab's own: a boot that
# never got ready, an L1 triple fault in lab-selftest) changes the boots
# and retries the checks count, so a run that meets one runs once more,
# saying so; a second one is left for the checks to fail.
#
# usage: tests/lab/watchdog-test.sh [--fresh]
#   --fresh  a new build directory (mktemp -d) instead of build/lab: the lab
#            then builds its initramfs and sends its kernel symbols first
#            (about 25 s more)
#
# 9 lab boots: about 110 s on a quiet host, 200 s on a busy one (20 s more
# with --fresh). Prints "N passed, N failed" last; exit 0 pass, 1 fail,
# 77 skip (no QEMU, kernel, kvm-amd module or busybox-static).

set -u -o pipefail
export LC_ALL=C
LAB_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP=$(cd "$LAB_SRC/../.." && pwd)
QEMU=${LAB_QEMU:-qemu-system-x86_64}
BUSYBOX=${LAB_BUSYBOX:-/bin/busybox}
RUN_TIMEOUT=240 # lab.sh --timeout: far from the budget, so a cut there shows
SILENCE=10      # LAB_SILENCE_S of run 2 (the heartbeat then beats every 2 s)

fresh=0
case ${1:-} in
--fresh) fresh=1 ;;
'') ;;
*) echo "usage: $0 [--fresh]" >&2; exit 2 ;;
esac

skip() {
	echo "skip: $*"
	echo "0 passed, 0 failed"
	exit 77
}

# --------------------------------------------------------- what the lab needs

kernel=${LAB_KERNEL:-$(find /boot -maxdepth 1 -name 'vmlinuz-*' 2>/dev/null | sort -V | tail -n 1)}
if [ -z "$kernel" ] || [ ! -f "$kernel" ]; then
	skip "no lab kernel /boot/vmlinuz-* (scripts/install-deps.sh)"
fi
kver=${kernel##*/vmlinuz-}
ls /lib/modules/"$kver"/kernel/arch/x86/kvm/kvm-amd.ko* >/dev/null 2>&1 ||
	skip "no kvm-amd module for kernel $kver"
for c in "$QEMU" cpio lz4; do
	command -v "$c" >/dev/null || skip "$c not installed (scripts/install-deps.sh)"
done
[ -x "$BUSYBOX" ] || skip "no $BUSYBOX (busybox-static)"
budget=$(sed -n 's/^# lab-budget: *\([0-9][0-9]*\).*/\1/p' "$LAB_SRC/scenarios/lab-flaky.sh")
[ -n "$budget" ] || { echo "FAIL: no '# lab-budget:' in scenarios/lab-flaky.sh"; echo "0 passed, 1 failed"; exit 1; }

T=$(mktemp -d)
cleanup() { rm -rf "$T"; }
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
if [ $fresh -eq 1 ]; then
	export LAB_BUILD_DIR=$T/build
fi
OUT=${LAB_BUILD_DIR:-$TOP/build/lab}

pass=0 fail=0
# verdict NAME STATUS: a check named NAME passed when STATUS is 0.
verdict() {
	if [ "$2" -eq 0 ]; then
		pass=$((pass + 1))
		echo "ok   $1"
	else
		fail=$((fail + 1))
		echo "FAIL $1"
	fi
}

# ------------------------------------------------------------------ the runs

# lab_run NAME SCENARIO...: runs lab.sh (with the environment of the caller)
# into $T/NAME.out, shown indented. Sets rc, wall (seconds), results (its
# result lines), log (its console log).
lab_run() {
	local n=$1 t0 t1
	shift
	t0=${EPOCHREALTIME/[.,]/}
	timeout -k 10 $((RUN_TIMEOUT + 60)) "$LAB_SRC/lab.sh" --name "$n" --timeout $RUN_TIMEOUT \
		"$@" >"$T/$n.out" 2>&1
	rc=$?
	t1=${EPOCHREALTIME/[.,]/}
	wall=$(((t1 - t0) / 1000000))
	sed 's/^/  | /' "$T/$n.out"
	cp "$OUT/$n.results" "$T/$n.results" 2>/dev/null
	results=()
	[ -f "$OUT/$n.results" ] && mapfile -t results <"$OUT/$n.results"
	log=$OUT/$n.log
}

# lab_own_failures FILE: the lab failures in lab.sh's output FILE that no
# scenario here forges (a lab that never got ready, a lab kernel panic, an
# L1 triple fault or a wedge in another scenario): the lab's own.
lab_own_failures() {
	grep -E '^lab: LAB FAILURE \(not a test failure\) in lab boot [0-9]+: ' "$1" |
		grep -v -E 'during scenario (lab-l1fault:twice\); the lab said: scenario lab-l1fault:twice failed after an L1 triple fault|lab-flaky\); scenario lab-flaky overran its budget|lab-silent\); the lab went silent|lab-l1fault:timer\); the lab said: scenario lab-l1fault:timer failed after an L1 stalled|lab-stuck\); the lab said: scenario lab-stuck: the lab kernel is stuck)'
}

# lab_run_once_more NAME SCENARIO...: lab_run, and once more if the lab
# failed on its own there, which would change the boots and retries each
# check counts (a second such failure is left for the checks to fail).
lab_run_once_more() {
	local own
	lab_run "$@"
	own=$(lab_own_failures "$T/$1.out")
	[ -z "$own" ] && return
	echo "watchdog-test: $1: a lab failure that no scenario here forges, the lab's own; running it once more:"
	echo "$own" | sed 's/^/    /'
	lab_run "$@"
}

# cuts_within WHY LOW HIGH: every "cut S s after its LAB-BEGIN" in WHY is in
# [LOW, HIGH) seconds; echoes the cuts. lab.sh looks at least once a second;
# the register dump (1 to 3 s before QEMU is killed) is not counted.
cuts_within() {
	local c ds ok=0 all
	all=$(grep -o 'cut [0-9]*\.[0-9] s after its LAB-BEGIN' <<<"$1" | cut -d' ' -f2)
	echo "${all//$'\n'/ }"
	[ -n "$all" ] || return 1
	for c in $all; do
		ds=${c/./}
		[ $((10#$ds)) -ge $(($2 * 10)) ] && [ $((10#$ds)) -lt $(($3 * 10)) ] || ok=1
	done
	return $ok
}

# boot_cmdline N: the kernel command line of lab boot N in $log.
boot_cmdline() {
	sed -n "/^# .* lab boot $1:/{n;p;q}" "$log" 2>/dev/null
}

# run_tests_counts RESULTS RC TEST...: run-tests.sh's summary of a lab.sh
# run that ended with status RC and wrote RESULTS, with lab.sh stubbed;
# into $T/rt.out. Sets rt_rc.
run_tests_counts() {
	local res=$1 labrc=$2
	shift 2
	rm -rf "$T/rt"
	mkdir -p "$T/rt/src"
	cp "$LAB_SRC/run-tests.sh" "$T/rt/src/"
	# shellcheck disable=SC2016 # $LAB_BUILD_DIR is the stub's
	printf '#!/bin/sh\ncp "%s" "$LAB_BUILD_DIR/tests.results"\nexit %d\n' "$res" "$labrc" >"$T/rt/src/lab.sh"
	chmod +x "$T/rt/src/lab.sh"
	LAB_BUILD_DIR=$T/rt "$T/rt/src/run-tests.sh" "$@" >"$T/rt.out" 2>&1
	rt_rc=$?
	sed 's/^/  rt| /' "$T/rt.out"
}

# ------------------- run 1: the lab's L1 triple fault and a wedge, retried

echo "watchdog-test: lab.sh lab-l1fault:twice lab-flaky lab-selftest (lab-flaky budget $budget s, run timeout $RUN_TIMEOUT s)"
lab_run_once_more watchdog-test lab-l1fault:twice lab-flaky lab-selftest
wall1=$wall
read -r g_name g_verdict _ g_why <<<"${results[0]:-}"
read -r f_name f_verdict _ f_why <<<"${results[1]:-}"
read -r s_name s_verdict _ <<<"${results[2]:-}"
# The lab boot in which lab-flaky wedged: the third, after lab-l1fault:twice's
# faults ended the first two, or the first in a lab with no guard; the
# scenarios' passes and skips.
fboot=3 npass=3 nskip=0
if [[ ${g_verdict:-} == skip ]]; then
	echo "skip run 1's guard checks: no L1 triple fault guard in this lab (see $log)"
	fboot=1 npass=2 nskip=1
else
	[[ ${g_name:-} == lab-l1fault:twice && ${g_verdict:-} == pass ]]
	verdict "run 1: results: lab-l1fault:twice has its second retry's verdict 'pass' (got '${g_verdict:-}')" $?
	[[ ${g_why:-} == "retried after a LAB FAILURE: the lab never reached LAB-END (during scenario lab-l1fault:twice); the lab said: scenario lab-l1fault:twice failed after an L1 triple fault of the lab's own, not nestvm's: the lab's fault: vCPU 0 shut down at rip "*"delivering 0x80000b0e; its exit before: "*"; and on its first retry: the lab never reached LAB-END (during scenario lab-l1fault:twice); the lab said: scenario lab-l1fault:twice failed after an L1 triple fault of the lab's own"* ]]
	verdict "run 1: results: lab-l1fault:twice 'retried after a LAB FAILURE: ... an L1 triple fault of the lab's own ...; and on its first retry: ...' the same" $?
	grep -q '  guard| .* kvm_exit: vcpu 0 reason shutdown' "$log"
	verdict "run 1: log: the guard printed the vCPU's last events" $?
	# The guard's watcher walked the probe's page tables while nestvm held
	# it: its code mapped (identity), its IDT (CR2) not, each page-table
	# page where the lab KVM's nested page table puts it too.
	[ "$(grep -c '  guard| ptwalk: guest RAM 64 MiB at 0x[0-9a-f]*; cr3 0x119000: 1 of 512 top-level entries present' "$log")" -eq 2 ] &&
		[ "$(grep -c '  guard| ptwalk: va 0x0000000000\(11[0-9a-f]*\): .* -> gpa 0x\1$' "$log")" -eq 2 ] &&
		[ "$(grep -c '  guard| ptwalk: va 0x0000008000000080: pml4e\[1\]=0x0 .*-> not present' "$log")" -eq 2 ]
	verdict "run 1: log: at each forged fault the guard walked the held L1's page tables (its RIP mapped, its IDT not)" $?
	[ "$(grep '  guard| ptwalk: va 0x0000000000110' "$log" | grep -c '\[pml4e page: host pfn 0x[1-9a-f][0-9a-f]* in the NPT, 0x[0-9a-f]* in nestvm.s: same\] .*\[pde page: host pfn 0x[1-9a-f][0-9a-f]* in the NPT, 0x[0-9a-f]* in nestvm.s: same\]')" -eq 2 ]
	verdict "run 1: log: the lab KVM's nested page table maps each of the probe's page-table pages where nestvm's memory has it" $?
fi
[ $rc -eq 0 ]
verdict "run 1: lab.sh exits 0: the retries made up for the lab failures (got $rc)" $?
[ ${#results[@]} -eq 4 ]
verdict "run 1: results: 4 lines (got ${#results[@]})" $?
[[ ${f_name:-} == lab-flaky && ${f_verdict:-} == pass ]]
verdict "run 1: results: lab-flaky has the retry's verdict 'pass' (got '${f_verdict:-}')" $?
[[ ${f_why:-} == "retried after a LAB FAILURE: scenario lab-flaky overran its budget of $budget s"* ]]
verdict "run 1: results: lab-flaky 'retried after a LAB FAILURE: ... overran its budget of $budget s'" $?
cut=$(cuts_within "${f_why:-}" "$budget" $((budget + 3)))
verdict "run 1: lab-flaky cut ${cut:-?} s after its LAB-BEGIN: within [$budget, $((budget + 3))) s" $?
[ "$wall" -lt $((RUN_TIMEOUT / 2)) ]
verdict "run 1: whole run ${wall} s: well under the run's timeout of $RUN_TIMEOUT s" $?

# The registers: in the log, and each vCPU's RIP in the results, at least
# one named by a kernel symbol that the lab listed.
[ "$(grep -c '^#   RIP=' "$log" 2>/dev/null)" = 2 ]
verdict "run 1: log: QEMU's 'info registers -a' of 2 vCPUs" $?
[ "$(grep -o 'vCPU [0-9] at RIP [0-9a-f]\{16\}' <<<"${f_why:-}" | wc -l)" = 2 ]
verdict "run 1: results: both vCPUs' RIPs" $?
sym=$(grep -o 'at RIP ffff[0-9a-f]\{12\} in [A-Za-z0-9_.]*+0x[0-9a-f]*' <<<"${f_why:-}" |
	head -n 1 | sed 's/.* in \([^+]*\)+.*/\1/')
symfile=$OUT/symbols-$kver
[ -n "$sym" ] && grep -q " $sym\( \|\$\)" "$symfile"
verdict "run 1: a vCPU's RIP named by kernel symbol '${sym:-none}', one of the lab's $(wc -l 2>/dev/null <"$symfile" || echo no) symbols" $?
# The heartbeat went on while the vCPUs spun: only the budget cut it.
[ "$(sed -n '/LAB-BEGIN lab-flaky/,/^# QEMU monitor/p;/^# QEMU monitor/q' "$log" 2>/dev/null | grep -c ' LAB-ALIVE ')" -ge 1 ]
verdict "run 1: log: LAB-ALIVE heartbeats while lab-flaky spun" $?

# The retry, first in a fresh lab, then the next scenario.
[[ ${s_name:-} == lab-selftest && ${s_verdict:-} == pass ]]
verdict "run 1: results: lab-selftest passed" $?
[[ ${results[3]:-} == "lab ok" ]]
verdict "run 1: results: last line 'lab ok' (got '${results[3]:-}')" $?
nboots=$((fboot + 1))
[[ $(grep -c '^# .* lab boot [0-9]*:' "$log" 2>/dev/null) == "$nboots" && $(grep -c ' LAB-READY ' "$log") == "$nboots" ]]
verdict "run 1: log: $nboots lab boots, $nboots LAB-READY" $?
# Each boot's retry number: none in the first; lab-l1fault:twice's 1 and
# 2, then lab-flaky's 1.
want_retry="- 1 2 1"
[ $fboot = 1 ] && want_retry="- 1"
got_retry=
for b in $(seq 1 $nboots); do
	r=$(boot_cmdline "$b" | grep -o ' nestlab\.retry=[0-9]*' | sed 's/.*=//')
	got_retry+="${got_retry:+ }${r:--}"
done
[ "$got_retry" = "$want_retry" ]
verdict "run 1: log: nestlab.retry= of each lab boot '$got_retry' (want '$want_retry')" $?
[ "$(sed -n "/^# .* lab boot $nboots:/,\$p" "$log" 2>/dev/null | grep -E -o 'LAB-BEGIN lab-[a-z0-9]+' | tr '\n' ' ')" = \
	"LAB-BEGIN lab-flaky LAB-BEGIN lab-selftest " ]
verdict "run 1: log: lab-flaky, then lab-selftest, began in lab boot $nboots" $?
grep -q "lab-flaky: LAB FAILURE (not a test failure) in boot $fboot: scenario lab-flaky overran" "$T/watchdog-test.out"
verdict "run 1: lab.sh prints lab-flaky's LAB FAILURE" $?
boot2=$(sed -n "s/^lab: boot $nboots: QEMU start to LAB-READY \([0-9.]*\) s.*/\1/p" "$T/watchdog-test.out")
cut1=$cut

run_tests_counts "$T/watchdog-test.results" $rc lab-l1fault:twice lab-flaky lab-selftest
[ $rt_rc -eq 0 ] &&
	grep -q "^lab test lab-flaky: PASS, retried after a LAB FAILURE (not a test failure): scenario lab-flaky overran" "$T/rt.out" &&
	grep -q "^LAB FAILURE (not a test failure), the test then retried to a verdict: .*lab-flaky: " "$T/rt.out" &&
	grep -q "^lab: $npass passed, 0 failed, $nskip skipped" "$T/rt.out"
verdict "run 1: run-tests.sh: exit 0, lab-flaky a PASS with its LAB FAILURE, none failed (exit $rt_rc)" $?

# ---------------------------------- run 2: a silent lab, silent again on retry

# lab-l1fault:plain, a failure with no L1 triple fault before, stays a failure
# (the lab failure's exit status 125 stands above it); lab-l1fault:timer,
# an L1 that says its timer stopped, is cut, and retried to a pass in a
# fourth lab boot; lab-stuck, a lab kernel that reports a hung task, is
# ended by the heartbeat and retried to a pass in a fifth.
echo "watchdog-test: LAB_SILENCE_S=$SILENCE lab.sh lab-silent lab-selftest lab-l1fault:plain lab-l1fault:timer lab-stuck lab-l1fault:cr3 (run timeout $RUN_TIMEOUT s)"
LAB_SILENCE_S=$SILENCE lab_run_once_more watchdog-silent lab-silent lab-selftest lab-l1fault:plain lab-l1fault:timer lab-stuck lab-l1fault:cr3
silent="the lab went silent (no heartbeat for $SILENCE s) during scenario lab-silent"
[ $rc -eq 125 ]
verdict "run 2: lab.sh exits 125, a lab failure (got $rc)" $?
[ ${#results[@]} -eq 7 ]
verdict "run 2: results: 7 lines (got ${#results[@]})" $?
read -r l_name l_verdict _ l_why <<<"${results[0]:-}"
[[ ${l_name:-} == lab-silent && ${l_verdict:-} == lab ]]
verdict "run 2: results: lab-silent has verdict 'lab' (got '${l_verdict:-}')" $?
[[ ${l_why:-} == "$silent, cut "*"; retried after a LAB FAILURE: $silent, cut "* ]]
verdict "run 2: results: lab-silent went silent, was retried, went silent again" $?
cut=$(cuts_within "${l_why:-}" $SILENCE $((SILENCE + 4)))
within=$?
[ $within -eq 0 ] && [ "$(wc -w <<<"$cut")" = 2 ]
verdict "run 2: lab-silent cut ${cut:-?} s after its LAB-BEGIN: within [$SILENCE, $((SILENCE + 4))) s, twice" $?
[ "$wall" -lt $((RUN_TIMEOUT * 3 / 4)) ]
verdict "run 2: whole run ${wall} s: well under the run's timeout of $RUN_TIMEOUT s" $?
read -r s_name s_verdict _ <<<"${results[1]:-}"
[[ ${s_name:-} == lab-selftest && ${s_verdict:-} == pass ]]
verdict "run 2: results: lab-selftest passed" $?
read -r p_name p_verdict _ <<<"${results[2]:-}"
[[ ${p_name:-} == lab-l1fault:plain && ${p_verdict:-} == fail ]]
verdict "run 2: results: lab-l1fault:plain, a failure without an L1 triple fault, stays 'fail' (got '${p_verdict:-}')" $?
read -r t_name t_verdict _ t_why <<<"${results[3]:-}"
[[ ${t_name:-} == lab-l1fault:timer && ${t_verdict:-} == pass &&
	${t_why:-} == "retried after a LAB FAILURE: the lab never reached LAB-END (during scenario lab-l1fault:timer); the lab said: scenario lab-l1fault:timer failed after an L1 stalled, the lab's own hang, not nestvm's: the L1 stalled, the lab's own fault (probe: boot "*"kthread timer wakeup didn't happen"* ]]
verdict "run 2: results: lab-l1fault:timer, an L1 whose timer stopped, retried after a LAB FAILURE to a pass (got '${t_verdict:-}')" $?
read -r k_name k_verdict _ k_why <<<"${results[4]:-}"
[[ ${k_name:-} == lab-stuck && ${k_verdict:-} == pass &&
	${k_why:-} == "retried after a LAB FAILURE: the lab never reached LAB-END (during scenario lab-stuck); the lab said: scenario lab-stuck: the lab kernel is stuck, the lab's own failure: "*"INFO: task forged:1 blocked for more than 120 seconds."* ]]
verdict "run 2: results: lab-stuck, a lab kernel that reported a hung task, ended by the heartbeat and retried to a pass (got '${k_verdict:-}')" $?
read -r c_name c_verdict _ <<<"${results[5]:-}"
[[ ${c_name:-} == lab-l1fault:cr3 && ${c_verdict:-} == pass ]]
verdict "run 2: results: lab-l1fault:cr3, the guard reported the walk outside the L1's RAM (got '${c_verdict:-}')" $?
grep -q '  guard| npf walk: the emulated CPU read .* cr3=0x7f000000 .*info1=0x20000000e .*intinfo=0x80000b0e' "$log" &&
	grep -q '  guard| npf walk: ptwalk: CR3 0x7f000000 is outside the guest.s 64 MiB of RAM' "$log"
verdict "run 2: log: the guard's walk: a reserved-bit nested page fault in the L1's page walk, delivering a #PF, CR3 outside RAM" $?
[[ ${results[6]:-} == "lab failure boot 1: "*"$silent"*" | boot 2: "*"$silent"* ]]
verdict "run 2: results: last line 'lab failure' naming both silences" $?
[[ $(grep -c '^# .* lab boot [0-9]*:' "$log" 2>/dev/null) == 5 && $(grep -c ' LAB-READY ' "$log") == 5 ]]
verdict "run 2: log: 5 lab boots, 5 LAB-READY" $?
[[ $(boot_cmdline 1) == *" nestlab.heartbeat=2"* && $(boot_cmdline 1) != *nestlab.retry=* &&
	$(boot_cmdline 2) == *" nestlab.retry=1"* && $(boot_cmdline 3) != *nestlab.retry=* &&
	$(boot_cmdline 4) == *" nestlab.retry=1"* && $(boot_cmdline 5) == *" nestlab.retry=1"* ]]
verdict "run 2: log: heartbeat every 2 s; nestlab.retry=1 on lab boots 2, 4 and 5 only" $?
[ "$(grep -E -o 'lab boot [0-9]+:|LAB-BEGIN lab-[a-z0-9:]+' "$log" 2>/dev/null | tr '\n' ' ')" = \
	"lab boot 1: LAB-BEGIN lab-silent lab boot 2: LAB-BEGIN lab-silent lab boot 3: LAB-BEGIN lab-selftest LAB-BEGIN lab-l1fault:plain LAB-BEGIN lab-l1fault:timer lab boot 4: LAB-BEGIN lab-l1fault:timer LAB-BEGIN lab-stuck lab boot 5: LAB-BEGIN lab-stuck LAB-BEGIN lab-l1fault:cr3 " ]
verdict "run 2: log: lab-silent began in boots 1 and 2, lab-selftest, lab-l1fault:plain and lab-l1fault:timer in boot 3, lab-l1fault:timer again and lab-stuck in 4, lab-stuck again and lab-l1fault:cr3 in 5" $?
[ "$(grep -c "LAB FAILURE (not a test failure) in boot [12]: $silent" "$T/watchdog-silent.out")" = 2 ]
verdict "run 2: lab.sh prints both LAB FAILUREs of lab-silent" $?

run_tests_counts "$T/watchdog-silent.results" $rc lab-silent lab-selftest lab-l1fault:plain lab-l1fault:timer lab-stuck lab-l1fault:cr3
[ $rt_rc -eq 125 ] &&
	grep -q "^lab test lab-silent: FAIL: LAB FAILURE (not a test failure): $silent.*; retried after a LAB FAILURE: $silent" "$T/rt.out" &&
	grep -q "^lab test lab-l1fault:plain: FAIL" "$T/rt.out" &&
	grep -q "^LAB FAILURE (not a test failure): boot 1: " "$T/rt.out" &&
	grep -q "^lab: 4 passed, 2 failed, 0 skipped" "$T/rt.out"
verdict "run 2: run-tests.sh: exit 125, lab-silent a LAB FAILURE twice, lab-l1fault:plain a FAIL, 4 passed, 2 failed (exit $rt_rc)" $?

echo "watchdog-test: budget $budget s, cut after ${cut1:-?} s, retry passed (fresh lab ready in ${boot2:-?} s," \
	"run $wall1 s); silence $SILENCE s, cut after ${cut:-?} s (run $wall s)"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
