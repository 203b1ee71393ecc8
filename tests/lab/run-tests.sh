#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# run-tests.sh — the lab part of `make test`: one lab boot (tests/lab/lab.sh)
# runs every lab test, under a total time limit. Ends with a summary line
# "lab: N passed, N failed, N skipped".
#
# usage: tests/lab/run-tests.sh [SCENARIO...]   (default: $LAB_TESTS)
#
# Environment: LAB_TESTS (the scenarios), LAB_TIMEOUT (seconds over all lab
# boots, default 1200).
#
# Exit status: 0 no test failed, 1 a test failed, 125 lab failure (a test in
# which the lab wedged or died, and tests that did not run, count as failed,
# marked "LAB FAILURE (not a test failure)"; lab.sh runs the tests after a
# wedged one in a fresh lab). The first test a lab failure cuts runs once
# more (lab.sh): it counts by that retry's verdict, printed with the lab
# failure, which alone does not make the exit status 125.

set -u
LAB_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP=$(cd "$LAB_SRC/../.." && pwd)
RESULTS=${LAB_BUILD_DIR:-$TOP/build/lab}/tests.results

# nested:linux: a Linux L1 running the probe L2s (2-vCPU ones too) and the
# Debian kernel as an L2. The lab's L1 triple fault while an L2 Linux boots
# (tests/lab/README.md, "The L2-Linux crash") came in 1 of 4-7 boots while
# the L1 mapped its L2's RAM 4 KiB at a time; with the L1's huge pages on
# (tests/lab/l1/init), 0 in 40 (README.md, "The L2 Linux boot"). Not 0
# everywhere: net:nested (the same L2 Linux, with an L1 busy with two
# switches, a bridge and its agent) had it once in its first three runs
# that got that far. net:nested is here all the same: its one L2 Linux
# serves Hyper-V's two nested networking recipes and exec's checks through
# the levels (exec-lib.sh), the only place make test has either.
# snapshot-nested (the probe as a guest hypervisor saved, restored and
# checkpointed while its L2 runs; 28-85 s) and snapshot-linux (a Linux L1
# whose own nestvm runs an L2, checkpointed and saved; 1.5-6 min while the
# L1 had no huge pages and its L2 crawled at first, 116 s with them on a
# loaded host) are here (tests/lab/README.md, "Snapshots"). So is
# migrate-nested, the same guest hypervisor live-migrated
# back and forth while its L2 runs (about a minute: its L2's work is sized
# to the lab's speed); migrate-linux (2-7 min) is in `make lab-migrate`
# (README, "Migration").
LAB_TESTS=${LAB_TESTS:-"lab-selftest linux-boot:bzimage linux-boot:pvh nested-probe virtio-devices manager-nested vcpu-state snapshot-nested snapshot-linux nested:linux exec migrate-nested net net:nested"}
LAB_TIMEOUT=${LAB_TIMEOUT:-1200}
# shellcheck disable=SC2206 # word splitting of the list is intended
tests=(${*:-$LAB_TESTS})

echo "lab tests: ${tests[*]} (one lab boot, limit $LAB_TIMEOUT s)"
t0=$SECONDS
"$LAB_SRC/lab.sh" --name tests --timeout "$LAB_TIMEOUT" "${tests[@]}"
rc=$?

passed=0 failed=0 skipped=0
lab_failure=
recovered=()
if [ -f "$RESULTS" ]; then
	lab_failure=$(sed -n 's/^lab failure //p' "$RESULTS")
else
	lab_failure="lab.sh exit status $rc, no results"
fi
echo
# One line "SCENARIO VERDICT SECONDS [WHY]" per test, in order, then
# "lab ..." (tests/lab/lab.sh).
lines=()
[ -f "$RESULTS" ] && mapfile -t lines < <(grep -v '^lab ' "$RESULTS")
for i in "${!tests[@]}"; do
	t=${tests[i]}
	r=
	read -r name verdict _ why <<<"${lines[i]:-}"
	[ "${name:-}" = "$t" ] && r=$verdict
	# A test retried after a lab failure: its verdict is the retry's.
	retry=
	if [[ ${why:-} == *"retried after a LAB FAILURE: "* ]]; then
		retry=", retried after a LAB FAILURE (not a test failure): ${why#*retried after a LAB FAILURE: }"
		[[ $r == pass || $r == skip || $r == fail ]] && recovered+=("$t: ${why#*retried after a LAB FAILURE: }")
	fi
	case $r in
	pass) passed=$((passed + 1)); echo "lab test $t: PASS$retry" ;;
	skip) skipped=$((skipped + 1)); echo "lab test $t: SKIP$retry" ;;
	fail) failed=$((failed + 1)); echo "lab test $t: FAIL$retry" ;;
	lab)
		# The lab wedged or died in this test: the tests after it ran in
		# a fresh lab.
		failed=$((failed + 1))
		echo "lab test $t: FAIL: LAB FAILURE (not a test failure): ${why:-the lab failed during the test}"
		;;
	*)
		failed=$((failed + 1))
		echo "lab test $t: FAIL: LAB FAILURE (not a test failure): the test did not run to a result"
		;;
	esac
done
for r in "${recovered[@]}"; do
	echo "LAB FAILURE (not a test failure), the test then retried to a verdict: $r"
done
if [ -n "$lab_failure" ]; then
	echo "LAB FAILURE (not a test failure): $lab_failure"
	echo "  see build/lab/tests.log; rerun with tests/lab/run-tests.sh"
fi
echo "lab: $passed passed, $failed failed, $skipped skipped ($((SECONDS - t0)) s)"

if [ -n "$lab_failure" ] || [ $rc -eq 125 ]; then
	exit 125
fi
[ $failed -eq 0 ] || exit 1
exit 0
