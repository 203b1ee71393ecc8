#!/bin/sh
# Run every nestvm test: unit tests (no KVM), integration tests on this host's
# /dev/kvm, and the lab tests (QEMU with emulated AMD-V). Each suite prints its
# own results; this prints one line per suite and a final summary line.
# Exit status: 0 if nothing failed.
set -u
cd "$(dirname "$0")/.."
# make test's -j and jobserver are the build's: a make run by a suite here
# (fuzz-smoke) runs as it would from a shell.
unset MAKEFLAGS MFLAGS

passed=0
failed=0
skipped=0
failed_names=""
total_start=$(date +%s)
mkdir -p build/test-logs
skips=build/test-logs/skipped-cases
: >"$skips"

suite_log() { echo "build/test-logs/$(echo "$1" | tr '/' '_').log"; }

# account NAME RC SECS: count a finished suite, collect its "skip CASE:
# REASON" lines, print its verdict line.
account() {
	name=$1 rc=$2 secs=$3
	grep -a "^skip [^:]*: " "$(suite_log "$name")" | sed "s|^skip |$name: |" >>"$skips"
	case $rc in
	0) passed=$((passed + 1)); echo "== suite $name: PASS (${secs}s)" ;;
	77) skipped=$((skipped + 1)); echo "== suite $name: SKIP (${secs}s)" ;;
	*) failed=$((failed + 1)); failed_names="$failed_names $name"
	   echo "== suite $name: FAIL, exit $rc (${secs}s)" ;;
	esac
}

# run_suite NAME CMD...: runs one suite, shows and logs its output
# (build/test-logs/NAME.log), and accounts for it.
run_suite() {
	name=$1
	shift
	start=$(date +%s)
	log=$(suite_log "$name")
	{ "$@"; echo "$?" >"$log.rc"; } 2>&1 | tee "$log"
	rc=$(cat "$log.rc")
	rm -f "$log.rc"
	account "$name" "$rc" $(($(date +%s) - start))
}

# run_quiet NAME CMD...: runs one suite into its log only, leaving its status
# and seconds in LOG.rc and LOG.secs, for shown_suite to account for later.
run_quiet() {
	name=$1
	shift
	start=$(date +%s)
	log=$(suite_log "$name")
	"$@" >"$log" 2>&1
	echo "$?" >"$log.rc"
	echo $(($(date +%s) - start)) >"$log.secs"
}

shown_suite() {
	log=$(suite_log "$1")
	cat "$log"
	account "$1" "$(cat "$log.rc" 2>/dev/null || echo 1)" "$(cat "$log.secs" 2>/dev/null || echo 0)"
	rm -f "$log.rc" "$log.secs"
}

# The lab (QEMU emulating AMD-V) runs beside the host's suites, its output
# shown when they are done: it is most of make test's time, and mostly
# waiting on the emulated machine. Its scenarios and its watchdog stay one
# after the other.
lab_pid=
if [ "${NESTVM_SKIP_LAB:-0}" != 1 ]; then
	(
		run_quiet lab tests/lab/run-tests.sh
		# The lab's own watchdog: a scenario that wedges the lab is cut at
		# its budget and the next scenario runs in a fresh lab.
		run_quiet lab-watchdog tests/lab/watchdog-test.sh
	) &
	lab_pid=$!
	echo "== the lab runs in the background (build/test-logs/lab.log, lab-watchdog.log)"
fi

for t in build/asan/tests/test_*; do
	[ -x "$t" ] || continue
	run_suite "unit/$(basename "$t")" "$t"
done
for t in tests/integration/*.sh; do
	# A suite that cannot run is a failure, not a quiet omission.
	[ -x "$t" ] || { run_suite "integration/$(basename "$t" .sh)" sh -c "echo '$t is not executable'; exit 1"; continue; }
	run_suite "integration/$(basename "$t" .sh)" "$t"
done
# A short run of every fuzz target (a longer one: make fuzz FUZZ_SECONDS=600).
if command -v clang >/dev/null; then
	run_suite fuzz-smoke sh -c 'make -s fuzz FUZZ_SECONDS="${NESTVM_FUZZ_SECONDS:-3}" \
		>build/fuzz-smoke.log 2>&1; rc=$?; grep -E "^Done|ERROR|SUMMARY" build/fuzz-smoke.log; exit $rc'
fi
if [ -z "$lab_pid" ]; then
	echo "== suite lab: SKIP (NESTVM_SKIP_LAB=1)"
	skipped=$((skipped + 1))
else
	echo "== waiting for the lab"
	wait "$lab_pid"
	shown_suite lab
	shown_suite lab-watchdog
fi

ncases=$(grep -c . "$skips")
if [ "$ncases" -gt 0 ]; then
	echo "cases skipped because this host lacks what they need:"
	sed 's/^/  /' "$skips"
fi
if [ -n "$failed_names" ]; then
	echo "failed suites:$failed_names"
	# What failed in each, here at the end where a short tail of make
	# test's output (a CI summary) still shows it: the suite's own failure
	# lines (a case's "FAIL NAME", cmocka's "[  FAILED  ]", the lab's "lab
	# test NAME: FAIL ..." and "LAB FAILURE ..."), the first 6, cut to 400
	# characters.
	for name in $failed_names; do
		grep -a -E '^FAIL |\[  FAILED  \]|^lab test [^ ]*: FAIL|^LAB FAILURE|^not ok|^FAIL:' \
			"$(suite_log "$name")" | head -n 6 | cut -c 1-400 | sed "s|^|  $name: |"
	done
fi
echo "time: $(($(date +%s) - total_start)) s"
echo "$passed passed, $failed failed, $skipped skipped (suites; $ncases cases skipped)"
[ "$failed" -eq 0 ]
