# shellcheck shell=sh
# manager.sh — scaffolding for integration tests that drive managed VMs
# (sourced after setting NAME_OF_TEST): a temporary NESTVM_HOME under
# build/, monitors killed on exit, ok/bad counters, and helpers to run
# nestvm and wait for states or console output. The sourcing script ends
# with `summary`, which prints "N passed, N failed" and sets the status.
#
#   nv ARGS                 run nestvm, output in $T/out; its status
#   expect NAME RC PAT -- ARGS   exit status RC and a line matching PAT
#   state_of VM             the state `show` reports
#   wait_state VM STATE [S] until VM is STATE (10 s default)
#   wait_console VM PAT [S] until the guest printed PAT (10 s default)
#   check_state NAME VM STATE
set -u
cd "$(dirname "$0")/../.."
NESTVM=${NESTVM:-build/asan/nestvm}
case $NESTVM in /*) ;; *) NESTVM=$(pwd)/$NESTVM ;; esac
PROBE=$(pwd)/build/guest/probe.elf
mkdir -p build/test-tmp
T=$(mktemp -d "$(pwd)/build/test-tmp/${NAME_OF_TEST:-manager}.XXXXXX")
export NESTVM_HOME="$T/home"
pass=0
fail=0

if [ ! -w /dev/kvm ] || [ ! -x "$NESTVM" ] || [ ! -f "$PROBE" ]; then
	echo "skip: needs a writable /dev/kvm, $NESTVM and $PROBE"
	rm -rf "$T"
	exit 77
fi

# Kill the monitors this test started (by pid, from their runtime records,
# in any store under $T), run the script's own manager_cleanup_extra if it
# has one, and remove $T (made writable first: tests take permissions away).
manager_cleanup() {
	for rt in $(find "$T" -name runtime.json 2>/dev/null); do
		pid=$(sed -n 's/.*"pid": *\([0-9]*\).*/\1/p' "$rt")
		[ -n "$pid" ] && [ "$pid" -gt 0 ] && kill -9 "$pid" 2>/dev/null
	done
	command -v manager_cleanup_extra >/dev/null && manager_cleanup_extra
	chmod -R u+rwx "$T" 2>/dev/null
	rm -rf "$T"
}
trap manager_cleanup EXIT
trap 'exit 130' INT TERM HUP

ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() {
	fail=$((fail + 1))
	echo "FAIL $1"
	[ -f "$T/out" ] && sed 's/^/     | /' "$T/out" | head -30
}

nv() { timeout 120 "$NESTVM" "$@" >"$T/out" 2>&1 </dev/null; }

expect() {
	name=$1 want=$2 pattern=$3
	shift 4
	nv "$@"
	rc=$?
	if [ "$rc" -eq "$want" ] && grep -q -- "$pattern" "$T/out"; then
		ok "$name (exit $rc)"
	else
		bad "$name: exit $rc (want $want), output should match '$pattern':"
	fi
}

state_of() { timeout 30 "$NESTVM" show "$1" 2>/dev/null | sed -n 's/^state: *\([a-z]*\).*/\1/p'; }

wait_state() {
	_i=0
	while [ "$_i" -lt $((${3:-10} * 10)) ]; do
		[ "$(state_of "$1")" = "$2" ] && return 0
		sleep 0.1
		_i=$((_i + 1))
	done
	return 1
}

wait_console() {
	_i=0
	while [ "$_i" -lt $((${3:-10} * 10)) ]; do
		grep -q -- "$2" "$NESTVM_HOME/$1/console.log" 2>/dev/null && return 0
		sleep 0.1
		_i=$((_i + 1))
	done
	return 1
}

check_state() {
	_s=$(state_of "$2")
	if [ "$_s" = "$3" ]; then ok "$1: $2 is $3"; else bad "$1: $2 is '$_s', want $3"; fi
}

summary() {
	echo "$pass passed, $fail failed"
	[ "$fail" -eq 0 ]
}
