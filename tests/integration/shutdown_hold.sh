#!/bin/sh
# SPDX-License-Identifier: MIT
#
# NESTVM_SHUTDOWN_HOLD: a VM that triple-faults is held, its memory mapped,
# for that many seconds before nestvm stops it, and ptwalk
# (tests/lab/tools/ptwalk.c, the lab guard's reader of an L1's page tables)
# walks its page tables through /proc/PID/mem meanwhile: the probe's
# test=triplefault fault=pf maps its own code (identity, 2 MiB pages from
# its static pml4) and faults through an IDT at 0x8000000000, unmapped.
# Needs /dev/kvm and /proc/PID/mem of a child (root, or ptrace allowed).
set -u
cd "$(dirname "$0")/../.."
. tests/lib/check.sh
NESTVM=${NESTVM:-build/asan/nestvm}
PTWALK=build/tests/ptwalk
PROBE=build/guest/probe.elf
mkdir -p build/test-tmp
T=$(mktemp -d build/test-tmp/shutdown-hold.XXXXXX)
trap 'rm -rf "$T"' EXIT

if [ ! -w /dev/kvm ]; then
	echo "skip shutdown_hold: /dev/kvm not usable"
	echo "0 passed, 0 failed"
	exit 77
fi
sym() { nm "$PROBE" | awk -v s="$1" '$3 == s { sub(/^0+/, "", $1); print $1 }'; }
pml4=$(sym pml4)
code=$(sym test_triplefault)

# A triple fault held 2 s, its page tables walked during the hold.
start=$(date +%s%N)
NESTVM_SHUTDOWN_HOLD=2 "$NESTVM" run --kernel "$PROBE" --memory 64M \
	--cmdline "test=triplefault fault=pf" </dev/null >"$T/out" 2>"$T/err" &
pid=$!
i=0
while ! grep -q "holding the VM" "$T/err" && [ $i -lt 100 ]; do
	sleep 0.1
	i=$((i + 1))
done
"$PTWALK" "$pid" "$pml4" "$code" 8000000080 >"$T/walk" 2>&1
walk_rc=$?
wait "$pid"
rc=$?
ms=$((($(date +%s%N) - start) / 1000000))
sed 's/^/  | /' "$T/err" "$T/walk"
check "held: exit 4 (triple fault), got $rc" [ "$rc" -eq 4 ]
check "held: 'holding the VM for 2 s' on stderr" grep -q "vCPU 0: triple fault: holding the VM for 2 s (NESTVM_SHUTDOWN_HOLD)" "$T/err"
check "held: at least 2 s ($ms ms)" [ "$ms" -ge 2000 ]
check "ptwalk: exit 0 (got $walk_rc), 64 MiB of RAM, 1 of 512 top-level entries present at the probe's pml4 $pml4" \
	test "$walk_rc" -eq 0 -a -n "$(grep "^guest RAM 64 MiB at 0x[0-9a-f]*; cr3 0x$pml4: 1 of 512 top-level entries present" "$T/walk")"
check "ptwalk: the probe's code at 0x$code maps to itself through a 2 MiB page" \
	grep -q "^va 0x0*$code: pml4e\[0\]=0x[0-9a-f]* pdpte\[0\]=0x[0-9a-f]* pde\[0\]=0x[0-9a-f]*e7 -> gpa 0x$code\$" "$T/walk"
check "ptwalk: its IDT at 0x8000000080 is not mapped" \
	grep -q "^va 0x0000008000000080: pml4e\[1\]=0x0 -> not present\$" "$T/walk"

# Without the variable, or with a bad value, no hold.
for v in unset abc 0 601; do
	start=$(date +%s%N)
	if [ $v = unset ]; then
		"$NESTVM" run --kernel "$PROBE" --memory 64M --cmdline "test=triplefault" </dev/null >"$T/out" 2>"$T/err"
	else
		NESTVM_SHUTDOWN_HOLD=$v "$NESTVM" run --kernel "$PROBE" --memory 64M \
			--cmdline "test=triplefault" </dev/null >"$T/out" 2>"$T/err"
	fi
	rc=$?
	ms=$((($(date +%s%N) - start) / 1000000))
	check "NESTVM_SHUTDOWN_HOLD $v: exit 4 (got $rc), not held ($ms ms)" \
		sh -c "[ $rc -eq 4 ] && ! grep -q 'holding the VM' '$T/err' && [ $ms -lt 2000 ]"
	[ $v = unset ] || check "NESTVM_SHUTDOWN_HOLD=$v: named as not a number of seconds" \
		grep -q "NESTVM_SHUTDOWN_HOLD=$v: not a number of seconds from 1 to 600; not holding" "$T/err"
done
# A PID with no guest RAM: a clear error, exit 1.
"$PTWALK" $$ 1000 0 >"$T/walk" 2>&1
check "ptwalk of a process with no guest RAM: exit 1 naming it (got $?: $(cat "$T/walk"))" \
	grep -q "^ptwalk: no guest RAM in /proc/$$/smaps" "$T/walk"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
