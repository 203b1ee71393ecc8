#!/bin/sh
# Every probe guest test (guest/probe) under `nestvm run` on this host's
# /dev/kvm, booted once as the PVH ELF and once as the bzImage. Each check
# looks at the exit status (the probe's debug-exit value, or 0 poweroff,
# 3 reset, 4 triple fault), at the probe's result line and at stderr for
# sanitizer reports; test=memgen's result line must also be the one
# build/guest/memgen-expect computes on the host. One line per check, then
# "N passed, N failed".
# Exit status: 0 all passed, 1 a check failed, 77 no usable /dev/kvm.
set -u
cd "$(dirname "$0")/../.." || exit 1
NESTVM=${NESTVM:-build/asan/nestvm}
TIMEOUT=${PROBE_TIMEOUT:-60}
T=$(mktemp -d /tmp/nestvm-probe.XXXXXX)
trap 'rm -rf "$T"' EXIT
pass=0
fail=0
. tests/lib/hostcaps.sh

if [ ! -e /dev/kvm ]; then
	echo "skip: /dev/kvm does not exist; the probe tests need KVM on this host"
	exit 77
fi
if [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then
	echo "skip: /dev/kvm is not readable and writable by $(id -un)"
	exit 77
fi
MEMGEN_EXPECT=build/guest/memgen-expect
for f in "$NESTVM" build/guest/probe.elf build/guest/probe.bzImage "$MEMGEN_EXPECT"; do
	if [ ! -e "$f" ]; then
		echo "FAIL missing $f (build it: make asan guests)"
		echo "0 passed, 1 failed"
		exit 1
	fi
done

# check IMAGE STATUS RESULT CMDLINE [nestvm options...]: boot the probe with
# CMDLINE and expect exit STATUS; RESULT is PASS, FAIL or SKIP for the result line
# the probe must print, "-" if it ends the VM without one (poweroff, reboot,
# triplefault), "quiet" if it must print nothing at all (the test=exit fast
# path).
check() {
	image=$1 want=$2 result=$3 cmdline=$4
	shift 4
	name="$image $cmdline${*:+ ($*)}"
	timeout "$TIMEOUT" "$NESTVM" run --kernel "build/guest/probe.$image" --cmdline "$cmdline" \
		--memory 256M "$@" </dev/null >"$T/out" 2>"$T/err"
	rc=$?
	line=$(grep -a "^probe: test=.*: \(PASS\|FAIL\|SKIP\)" "$T/out" | tail -1)
	why=""
	[ "$rc" -eq "$want" ] || why="exit $rc, want $want"
	case $result in
	PASS | FAIL | SKIP) [ "${line#*: "$result"}" != "$line" ] || why="${why:-no $result line}" ;;
	-) [ -z "$line" ] || why="${why:-unexpected result line}" ;;
	quiet) [ ! -s "$T/out" ] || why="${why:-output where none was expected}" ;;
	esac
	if grep -q -i "AddressSanitizer\|LeakSanitizer\|runtime error:" "$T/err"; then
		why="${why:+$why, }sanitizer report"
	fi
	if [ -z "$why" ]; then
		pass=$((pass + 1))
		echo "ok   $name: exit $rc${line:+: ${line#probe: }}"
	else
		fail=$((fail + 1))
		[ "$rc" -eq 124 ] && why="$why (timed out after ${TIMEOUT}s)"
		echo "FAIL $name: $why"
		tail -n 15 "$T/out" | sed 's/^/     | /'
		tail -n 15 "$T/err" | sed 's/^/     ! /'
	fi
}

# memgen IMAGE PASSES CPUS: an uninterrupted test=memgen run passes and prints
# the result line memgen-expect computes for PASSES and CPUS.
memgen() {
	check "$1" 0 PASS "test=memgen passes=$2" --cpus "$3"
	got=$(grep -a "^probe: test=memgen: result=" "$T/out")
	want="probe: test=memgen: $("$MEMGEN_EXPECT" "$2" "$3")"
	if [ "$got" = "$want" ]; then
		pass=$((pass + 1))
		echo "ok   $1 memgen passes=$2 cpus=$3: the result line is memgen-expect's"
	else
		fail=$((fail + 1))
		echo "FAIL $1 memgen passes=$2 cpus=$3: result line \"$got\", memgen-expect says \"$want\""
	fi
}

# memgen_inject KIND: a page damaged between two passes must FAIL the test,
# naming that page and the pass after the damage.
memgen_inject() {
	check elf 10 FAIL "test=memgen passes=20 inject=$1" --cpus 2
	at=$(sed -n "s/^probe: memgen: inject=$1 at page \(0x[0-9a-f]*\) after pass 10\$/\1/p" "$T/out")
	if [ -n "$at" ] && grep -a -q "^probe: test=memgen: FAIL page $at before pass 11:" "$T/out"; then
		pass=$((pass + 1))
		echo "ok   memgen inject=$1: the FAIL names the damaged page $at"
	else
		fail=$((fail + 1))
		echo "FAIL memgen inject=$1: no FAIL naming the damaged page ${at:-(none injected)}"
		grep -a "memgen" "$T/out" | tail -n 3 | sed 's/^/     | /'
	fi
}

for img in elf bzImage; do
	check $img 0 quiet "test=exit"
	check $img 0 PASS "console=ttyS0 test=exit"
	check $img 0 PASS "test=cpuid nested=off cpus=2" --cpus 2 --nested off
	check $img 0 PASS "test=mem mem_mb=256"
	check $img 0 PASS "test=smp cpus=1"
	check $img 0 PASS "test=smp cpus=4" --cpus 4
	check $img 0 PASS "test=uart"
	check $img 0 PASS "test=pci"
	check $img 0 - "test=poweroff"
	check $img 3 - "test=reboot"
	check $img 3 - "test=reboot method=cf9"
	check $img 3 - "test=reboot method=acpi"
	check $img 4 - "test=triplefault"
	check $img 10 FAIL "test=no-such-test"
	# The probe as an L1 hypervisor (guest/probe/README.md). Without
	# --nested on, SVM and VMX are hidden: the hidden-feature checks pass and
	# the L2 tests skip (the L2 runs in the lab). test=vmmcall needs a
	# VMMCALL at the guest's CPL0 that returns, which some hosts lack
	# (tests/lib/hostcaps.sh probes it once, in seconds).
	check $img 0 PASS "test=svm nested=off" --nested off
	check $img 0 PASS "test=vmx nested=off" --nested off
	check $img 11 SKIP "test=svm"
	check $img 11 SKIP "test=vmx"
	if hostcap_vmmcall_cpl0; then
		check $img 0 PASS "test=vmmcall iterations=100 force=on"
	else
		skip_case "$img test=vmmcall" "$HOSTCAP_WHY"
	fi
	memgen $img 100 2
done
# test=memgen (guest/probe/README.md): 1, 2 and 4 vCPUs give different
# results, each the same in every run; then the damage it must catch.
memgen elf 100 1
memgen elf 100 4
memgen elf 1 2
for kind in zero torn stale moved; do
	memgen_inject $kind
done
echo "$pass passed, $fail failed, $skipped skipped"
[ "$fail" -eq 0 ]
