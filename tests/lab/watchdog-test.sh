#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# watchdog-test.sh — lab.sh's watchdog of each scenario. Runs
# `lab.sh lab-wedge lab-selftest`: lab-wedge spins both lab vCPUs in the
# kernel and never ends (its limit inside the lab is an hour, its budget on
# the host 10 s). Asserts that lab.sh cut it near its budget, not at the
# run's timeout; reported it as a lab failure (exit 125, verdict "lab" in the
# results, "lab failure" last) with the vCPUs' registers in the log and their
# RIPs named by kernel symbols that the lab itself listed; and ran
# lab-selftest afterwards, in a second, fresh lab boot, to a pass.
#
# usage: tests/lab/watchdog-test.sh [--fresh]
#   --fresh  a new build directory (mktemp -d) instead of build/lab: the lab
#            then builds its initramfs and sends its kernel symbols first
#            (about 25 s more)
#
# About 40 s (60 s with --fresh). Prints "N passed, N failed" last; exit 0
# pass, 1 fail, 77 skip (no QEMU, kernel, kvm-amd module or busybox-static).

set -u -o pipefail
export LC_ALL=C
LAB_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP=$(cd "$LAB_SRC/../.." && pwd)
QEMU=${LAB_QEMU:-qemu-system-x86_64}
BUSYBOX=${LAB_BUSYBOX:-/bin/busybox}
RUN_TIMEOUT=240 # lab.sh --timeout: far from the budget, so a cut there shows

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
budget=$(sed -n 's/^# lab-budget: *\([0-9][0-9]*\).*/\1/p' "$LAB_SRC/scenarios/lab-wedge.sh")
[ -n "$budget" ] || { echo "FAIL: no '# lab-budget:' in scenarios/lab-wedge.sh"; echo "0 passed, 1 failed"; exit 1; }

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

# ------------------------------------------------------------------- the run

echo "watchdog-test: lab.sh lab-wedge lab-selftest (lab-wedge budget $budget s, run timeout $RUN_TIMEOUT s)"
t0=${EPOCHREALTIME/[.,]/}
timeout -k 10 $((RUN_TIMEOUT + 60)) "$LAB_SRC/lab.sh" --name watchdog-test --timeout $RUN_TIMEOUT \
	lab-wedge lab-selftest >"$T/lab.out" 2>&1
rc=$?
t1=${EPOCHREALTIME/[.,]/}
wall=$(((t1 - t0) / 1000000))
sed 's/^/  | /' "$T/lab.out"
results=$OUT/watchdog-test.results
log=$OUT/watchdog-test.log

[ $rc -eq 125 ]
verdict "lab.sh exits 125, a lab failure (got $rc)" $?
lines=()
[ -f "$results" ] && mapfile -t lines <"$results"
[ ${#lines[@]} -eq 3 ]
verdict "results: 3 lines (got ${#lines[@]})" $?
read -r w_name w_verdict _ w_why <<<"${lines[0]:-}"
[[ ${w_name:-} == lab-wedge && ${w_verdict:-} == lab ]]
verdict "results: lab-wedge has verdict 'lab' (a lab failure)" $?
[[ ${w_why:-} == *"overran its budget of $budget s"* ]]
verdict "results: lab-wedge overran its budget of $budget s" $?

# Cut near its budget: lab.sh looks at least once a second; the register
# dump (1 to 3 s before QEMU is killed) is not counted here.
cut=$(sed -n 's/.*, cut \([0-9]*\.[0-9]\) s after its LAB-BEGIN.*/\1/p' <<<"${w_why:-}")
cut_ds=${cut/./}
cut_ds=${cut_ds:-0}
[[ -n $cut && $((10#$cut_ds)) -ge $((budget * 10)) && $((10#$cut_ds)) -lt $(((budget + 3) * 10)) ]]
verdict "lab-wedge cut ${cut:-?} s after its LAB-BEGIN: within [$budget, $((budget + 3))) s" $?
[ $wall -lt $((RUN_TIMEOUT / 2)) ]
verdict "whole run ${wall} s: well under the run's timeout of $RUN_TIMEOUT s" $?

# The registers: in the log, and each vCPU's RIP in the results, at least
# one named by a kernel symbol that the lab listed.
[ "$(grep -c '^#   RIP=' "$log" 2>/dev/null)" = 2 ]
verdict "log: QEMU's 'info registers -a' of 2 vCPUs" $?
[ "$(grep -o 'vCPU [0-9] at RIP [0-9a-f]\{16\}' <<<"${w_why:-}" | wc -l)" = 2 ]
verdict "results: both vCPUs' RIPs" $?
sym=$(grep -o 'at RIP ffff[0-9a-f]\{12\} in [A-Za-z0-9_.]*+0x[0-9a-f]*' <<<"${w_why:-}" |
	head -n 1 | sed 's/.* in \([^+]*\)+.*/\1/')
symfile=$OUT/symbols-$kver
[ -n "$sym" ] && grep -q " $sym\( \|\$\)" "$symfile"
verdict "a vCPU's RIP named by kernel symbol '${sym:-none}', one of the lab's $(wc -l 2>/dev/null <"$symfile" || echo no) symbols" $?

# The next scenario, in a fresh lab.
read -r s_name s_verdict _ <<<"${lines[1]:-}"
[[ ${s_name:-} == lab-selftest && ${s_verdict:-} == pass ]]
verdict "results: lab-selftest passed" $?
[[ ${lines[2]:-} == "lab failure boot 1: "*"lab-wedge overran its budget"* ]]
verdict "results: last line 'lab failure' naming the budget" $?
[[ $(grep -c '^# .* lab boot [0-9]*:' "$log" 2>/dev/null) == 2 && $(grep -c ' LAB-READY ' "$log") == 2 ]]
verdict "log: 2 lab boots, 2 LAB-READY" $?
sed -n '/^# .* lab boot 2:/,$p' "$log" 2>/dev/null | grep -q 'LAB-BEGIN lab-selftest'
verdict "log: lab-selftest began in lab boot 2" $?
boot2=$(sed -n 's/^lab: boot 2: QEMU start to LAB-READY \([0-9.]*\) s.*/\1/p' "$T/lab.out")

echo "watchdog-test: budget $budget s, cut after ${cut:-?} s; fresh lab ready in ${boot2:-?} s; whole run $wall s"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
