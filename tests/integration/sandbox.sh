#!/bin/sh
# The monitor's sandbox (src/core/sandbox.c) on this host's /dev/kvm:
#  (a) a running `nestvm run` (probe guest idling, 2 vCPUs, virtio-rng,
#      virtio-vsock, a virtio-blk disk on the thread pool) has every thread in seccomp filter
#      mode ("Seccomp: 2" in /proc/PID/task/*/status), each under exactly one
#      filter (no thread stacks the main thread's under its own), and the
#      expected thread kinds exist; the same for the release build the lab uses;
#  (b) with --sandbox off (and NESTVM_SANDBOX=off) no thread is filtered;
#  (c) a forbidden system call from a device thread, and one from a vCPU
#      thread (NESTVM_SANDBOX_SELFTEST, read only by the ASan build), ends the
#      monitor with exit status 159 and a line naming the thread and the call;
#  (d) a managed VM's monitor: every thread filtered, and `nestvm show` (text
#      and --json) reports the protections (Landlock on where the kernel has it).
# The probe test set under the filters is tests/integration/probe.sh and
# virtio_probe.sh (the sandbox is on by default). Prints "N passed, N failed"
# last; exit 77 without a usable /dev/kvm or without seccomp in the kernel.
set -u
cd "$(dirname "$0")/../.." || exit 1
NESTVM=${NESTVM:-build/asan/nestvm}
case $NESTVM in /*) ;; *) NESTVM=$(pwd)/$NESTVM ;; esac
RELEASE=$(pwd)/build/release/nestvm
PROBE=$(pwd)/build/guest/probe.elf
T=$(mktemp -d /tmp/nestvm-sandbox.XXXXXX)
export NESTVM_HOME="$T/home"
unset NESTVM_SANDBOX NESTVM_SANDBOX_SELFTEST
pass=0
fail=0
bg=""

cleanup() {
	[ -n "$bg" ] && kill -9 "$bg" 2>/dev/null
	if [ -f "$T/home/sbx/runtime.json" ]; then
		pid=$(sed -n 's/.*"pid": *\([0-9]*\).*/\1/p' "$T/home/sbx/runtime.json")
		[ -n "$pid" ] && [ "$pid" -gt 0 ] && kill -9 "$pid" 2>/dev/null
	fi
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

if [ ! -w /dev/kvm ] || [ ! -x "$NESTVM" ] || [ ! -f "$PROBE" ]; then
	echo "skip: needs a writable /dev/kvm, $NESTVM and $PROBE (make asan guests)"
	exit 77
fi
if ! grep -q '^Seccomp:' /proc/self/status; then
	echo "skip: this kernel has no seccomp (no Seccomp: line in /proc/self/status)"
	exit 77
fi

ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() {
	fail=$((fail + 1))
	echo "FAIL $1"
	for f in "$T/err" "$T/tasks"; do
		[ -s "$f" ] && sed 's/^/     | /' "$f" | tail -15
	done
	rm -f "$T/err" "$T/tasks"
}

dd if=/dev/zero of="$T/disk.img" bs=1M count=8 2>/dev/null

# tasks PID: one line per thread: "TID COMM SECCOMP-MODE FILTERS".
tasks() {
	for s in /proc/"$1"/task/*/status; do
		d=${s%/status}
		printf '%s %s %s %s\n' "${d##*/}" "$(cat "$d/comm" 2>/dev/null)" \
			"$(sed -n 's/^Seccomp:[[:space:]]*//p' "$s")" \
			"$(sed -n 's/^Seccomp_filters:[[:space:]]*//p' "$s")"
	done 2>/dev/null
}

# start_idle BINARY [nestvm options...]: the probe idling in the background,
# $bg its pid; waits until its thread count has settled (10 s at most).
start_idle() {
	bin=$1
	shift
	"$bin" run --kernel "$PROBE" --cmdline test=idle --cpus 2 --memory 64M --rng \
		--disk "$T/disk.img,io=threads" --vsock 3,socket="$T/vsock.sock" --console none "$@" \
		</dev/null >/dev/null 2>"$T/err" &
	bg=$!
	i=0 last=0 same=0
	while [ "$i" -lt 100 ] && [ "$same" -lt 4 ] && kill -0 "$bg" 2>/dev/null; do
		sleep 0.1
		n=$(ls /proc/"$bg"/task 2>/dev/null | wc -l)
		if [ "$n" -ge 6 ] && [ "$n" -eq "$last" ]; then same=$((same + 1)); else same=0; fi
		last=$n
		i=$((i + 1))
	done
}

# stop_idle: SIGTERM; the monitor must end with 128+15.
stop_idle() {
	kill -TERM "$bg" 2>/dev/null
	wait "$bg"
	rc=$?
	bg=""
	return $rc
}

# (a) every thread filtered, once; the thread kinds are there.
check_filtered() {
	label=$1 bin=$2
	if [ ! -x "$bin" ]; then
		echo "skip $label: $bin not built"
		return
	fi
	start_idle "$bin"
	tasks "$bg" >"$T/tasks"
	why=""
	[ "$(wc -l <"$T/tasks")" -ge 6 ] || why="only $(wc -l <"$T/tasks") threads"
	unfiltered=$(awk '$3 != 2' "$T/tasks" | wc -l)
	[ "$unfiltered" -eq 0 ] && [ -s "$T/tasks" ] || why="${why:+$why, }$unfiltered threads without Seccomp: 2"
	stacked=$(awk '$2 !~ /^kvm-/ && $4 != 1' "$T/tasks" | wc -l)
	[ "$stacked" -eq 0 ] || why="${why:+$why, }$stacked threads with more than one filter"
	for kind in vcpu0 vcpu1 virtio-blk virtio-rng virtio-vsock disk-worker; do
		grep -q " $kind " "$T/tasks" || why="${why:+$why, }no $kind thread"
	done
	threads=$(wc -l <"$T/tasks")
	stop_idle
	rc=$?
	[ "$rc" -eq 143 ] || why="${why:+$why, }exit $rc after SIGTERM, want 143"
	grep -q "seccomp:" "$T/err" && why="${why:+$why, }a forbidden call"
	if [ -z "$why" ]; then
		ok "$label: all $threads threads in seccomp filter mode, one filter each; exit 143 on SIGTERM"
		rm -f "$T/err" "$T/tasks"
	else
		bad "$label: $why"
	fi
}
check_filtered "asan run" "$NESTVM"
check_filtered "release run" "$RELEASE"

# (b) --sandbox off, NESTVM_SANDBOX=off: nothing filtered.
check_off() {
	label=$1
	shift
	start_idle "$@"
	tasks "$bg" >"$T/tasks"
	filtered=$(awk '$3 != 0' "$T/tasks" | wc -l)
	threads=$(wc -l <"$T/tasks")
	stop_idle
	rc=$?
	if [ "$filtered" -eq 0 ] && [ "$threads" -ge 6 ] && [ "$rc" -eq 143 ]; then
		ok "$label: $threads threads, none filtered"
		rm -f "$T/err" "$T/tasks"
	else
		bad "$label: $filtered of $threads threads filtered, exit $rc"
	fi
}
check_off "--sandbox off" "$NESTVM" --sandbox off
NESTVM_SANDBOX=off check_off "NESTVM_SANDBOX=off" "$NESTVM"

# (c) a forbidden call: exit 159 and the line that names thread and call.
check_forbidden() {
	kind=$1 pattern=$2
	NESTVM_SANDBOX_SELFTEST=$kind timeout -k 5 60 "$NESTVM" run --kernel "$PROBE" \
		--cmdline test=idle --cpus 2 --memory 64M --rng --disk "$T/disk.img" \
		--console none </dev/null >/dev/null 2>"$T/err"
	rc=$?
	line=$(grep -a "^nestvm: seccomp: " "$T/err" | head -1)
	if [ "$rc" -eq 159 ] && printf '%s\n' "$line" | grep -q -- "$pattern"; then
		ok "forbidden call from a $kind thread: exit 159: ${line#nestvm: }"
		rm -f "$T/err"
	else
		bad "forbidden call from a $kind thread: exit $rc (want 159), line '$line'"
	fi
}
if strings "$NESTVM" | grep -q NESTVM_SANDBOX_SELFTEST; then
	check_forbidden device \
		"thread [a-z-]* (device, tid [0-9]*) made forbidden syscall 135 (personality)"
	check_forbidden vcpu \
		"thread vcpu[01] (vcpu, tid [0-9]*) made forbidden syscall 135 (personality)"
else
	echo "skip forbidden-call checks: $NESTVM has no self-test trigger (not an ASan build)"
fi

# (d) a managed VM.
if timeout 30 "$NESTVM" new sbx --kernel "$PROBE" --cmdline test=idle --cpus 2 --memory 64M \
	--disk "$T/disk.img" >"$T/err" 2>&1 && timeout 60 "$NESTVM" start sbx >>"$T/err" 2>&1; then
	pid=$(sed -n 's/.*"pid": *\([0-9]*\).*/\1/p' "$T/home/sbx/runtime.json")
	i=0
	while [ "$i" -lt 50 ] && [ "$(grep -l '^vcpu[01]$' /proc/"$pid"/task/*/comm 2>/dev/null | wc -l)" -lt 2 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	tasks "$pid" >"$T/tasks"
	unfiltered=$(awk '$3 != 2' "$T/tasks" | wc -l)
	threads=$(wc -l <"$T/tasks")
	text=$(timeout 30 "$NESTVM" show sbx 2>&1 | grep '^sandbox:')
	json=$(timeout 30 "$NESTVM" show sbx --json 2>&1 | tr -d ' \n' |
		grep -o '"sandbox":{"seccomp":true,"landlock":[a-z]*,"landlock_files":[a-z]*}')
	# Landlock is on where the kernel has it: text and JSON must agree.
	ll=${json##*\"landlock\":}
	ll=${ll%%,*}
	[ "$ll" = true ] && ll=on || ll=off
	if [ -n "$pid" ] && [ "$threads" -ge 4 ] && [ "$unfiltered" -eq 0 ] &&
		[ "${text%% (*}" = "sandbox:      seccomp on, landlock $ll" ] && [ -n "$json" ]; then
		ok "managed VM: all $threads monitor threads filtered; show says '$text'"
	else
		echo "show: '$text' json: '$json'" >>"$T/err"
		bad "managed VM: pid '$pid', $unfiltered of $threads threads unfiltered"
	fi
	timeout 60 "$NESTVM" kill sbx >/dev/null 2>&1
	if grep -q "seccomp: thread" "$T/home/sbx/monitor.log" 2>/dev/null; then
		cp "$T/home/sbx/monitor.log" "$T/err"
		bad "managed VM: a forbidden call in monitor.log"
	else
		ok "managed VM: no forbidden call logged from start to kill"
	fi
else
	bad "managed VM: new/start failed"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
