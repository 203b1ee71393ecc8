#!/bin/sh
# Run every nestvm test: unit tests (no KVM), integration tests on this host's
# /dev/kvm, and the lab tests (QEMU with emulated AMD-V). Each suite prints its
# own results; this prints one line per suite and a final summary line.
# Exit status: 0 if nothing failed.
set -u
cd "$(dirname "$0")/.."

passed=0
failed=0
skipped=0
failed_names=""
total_start=$(date +%s)
mkdir -p build/test-logs
skips=build/test-logs/skipped-cases
: >"$skips"

# run_suite NAME CMD...: runs one suite, shows and logs its output
# (build/test-logs/NAME.log), collects its "skip CASE: REASON" lines.
run_suite() {
	name=$1
	shift
	start=$(date +%s)
	log=build/test-logs/$(echo "$name" | tr '/' '_').log
	{ "$@"; echo "$?" >"$log.rc"; } 2>&1 | tee "$log"
	rc=$(cat "$log.rc")
	rm -f "$log.rc"
	secs=$(($(date +%s) - start))
	grep -a "^skip [^:]*: " "$log" | sed "s|^skip |$name: |" >>"$skips"
	case $rc in
	0) passed=$((passed + 1)); echo "== suite $name: PASS (${secs}s)" ;;
	77) skipped=$((skipped + 1)); echo "== suite $name: SKIP (${secs}s)" ;;
	*) failed=$((failed + 1)); failed_names="$failed_names $name"
	   echo "== suite $name: FAIL, exit $rc (${secs}s)" ;;
	esac
}

for t in build/asan/tests/test_*; do
	[ -x "$t" ] || continue
	run_suite "unit/$(basename "$t")" "$t"
done
for t in tests/integration/*.sh; do
	[ -x "$t" ] || continue
	run_suite "integration/$(basename "$t" .sh)" "$t"
done
# A short run of every fuzz target (a longer one: make fuzz FUZZ_SECONDS=600).
if command -v clang >/dev/null; then
	run_suite fuzz-smoke sh -c 'make -s fuzz FUZZ_SECONDS="${NESTVM_FUZZ_SECONDS:-3}" \
		>build/fuzz-smoke.log 2>&1; rc=$?; grep -E "^Done|ERROR|SUMMARY" build/fuzz-smoke.log; exit $rc'
fi
if [ "${NESTVM_SKIP_LAB:-0}" = 1 ]; then
	echo "== suite lab: SKIP (NESTVM_SKIP_LAB=1)"
	skipped=$((skipped + 1))
else
	run_suite lab tests/lab/run-tests.sh
	# The lab's own watchdog: a scenario that wedges the lab is cut at its
	# budget and the next scenario runs in a fresh lab.
	run_suite lab-watchdog tests/lab/watchdog-test.sh
fi

ncases=$(grep -c . "$skips")
if [ "$ncases" -gt 0 ]; then
	echo "cases skipped because this host lacks what they need:"
	sed 's/^/  /' "$skips"
fi
[ -n "$failed_names" ] && echo "failed suites:$failed_names"
echo "time: $(($(date +%s) - total_start)) s"
echo "$passed passed, $failed failed, $skipped skipped (suites; $ncases cases skipped)"
[ "$failed" -eq 0 ]
