#!/bin/sh
# nestvm exec and nestvm cp against the guest agent, without a guest: the
# agent (build/asan/nestvm-agent) runs on this host in its test mode,
# listening on a UNIX socket (--unix) instead of vsock, and the real client
# code (build/asan/nestvm exec|cp --agent-socket) drives it. Both are
# ASan+UBSan builds. Covers: exit statuses and signals, stdout/stderr kept
# apart, stdin, 100 MiB in and out with checksums, a signal ending `sleep`,
# a hangup ending the remote command, --timeout, --user, --cwd, --env, a pty
# session (script(1) as the terminal: window size, Ctrl-C), cp both ways
# with checksums and into directories, 20 sessions at once, through the
# levels (L1/L2 relayed by the first agent's `nestvm agent-relay`, and the
# chained form), the socket's mode and another user refused. Garbage, oversized frames and half-open
# connections are tests/unit/test_agent_serve.c. Prints "N passed, N failed".
set -u
cd "$(dirname "$0")/../.."
NESTVM=${NESTVM:-build/asan/nestvm}
AGENT=${NESTVM_AGENT:-build/asan/nestvm-agent}
case $NESTVM in /*) ;; *) NESTVM=$(pwd)/$NESTVM ;; esac
case $AGENT in /*) ;; *) AGENT=$(pwd)/$AGENT ;; esac
mkdir -p build
T=$(mktemp -d "$(pwd)/build/exec-test.XXXXXX")
SOCK=$T/agent.sock
pass=0
fail=0
agent_pid=

if [ ! -x "$NESTVM" ] || [ ! -x "$AGENT" ]; then
	echo "skip: needs $NESTVM and $AGENT (make asan guests)"
	rm -rf "$T"
	exit 77
fi

cleanup() {
	[ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null && wait "$agent_pid" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() {
	fail=$((fail + 1))
	echo "FAIL $1"
	for f in "$T/out" "$T/err"; do
		[ -s "$f" ] && sed 's/^/     | /' "$f" | head -20
	done
	return 0
}

# nx ARGS: nestvm exec through the agent's socket; stdout $T/out, stderr $T/err.
nx() { timeout 60 "$NESTVM" exec --agent-socket "$SOCK" "$@" >"$T/out" 2>"$T/err"; }

# check NAME COND: ok or bad.
check() {
	if eval "$2"; then ok "$1"; else bad "$1"; fi
}

sum() { sha256sum "$1" | cut -c1-64; }

"$AGENT" --unix "$SOCK" 2>"$T/agent.log" &
agent_pid=$!
for i in $(seq 1 100); do
	[ -S "$SOCK" ] && break
	sleep 0.05
done

# ---- exit statuses, streams, stdin
nx -- sh -c 'echo to-out; echo to-err >&2; exit 3' </dev/null
rc=$?
check "exit status 3, stdout and stderr apart" \
	'[ $rc -eq 3 ] && [ "$(cat $T/out)" = to-out ] && [ "$(cat $T/err)" = to-err ]'
nx -- true </dev/null
rc=$?
check "exit status 0" '[ $rc -eq 0 ] && [ ! -s $T/err ]'
nx -- sh -c 'kill -TERM $$' </dev/null
rc=$?
check "killed by SIGTERM: 143" '[ $rc -eq 143 ]'
nx -- /nonexistent/command </dev/null
rc=$?
check "no such command: 127 and why" '[ $rc -eq 127 ] && grep -q "No such file" $T/err'
nx -w "$T/none" -- true </dev/null
rc=$?
check "bad --cwd: 126 and why" '[ $rc -eq 126 ] && grep -q "directory" $T/err'
printf 'line one\nline two\n' | nx -- sh -c 'wc -l; cat >/dev/null'
rc=$?
check "stdin reaches the command, EOF ends it" '[ $rc -eq 0 ] && [ "$(cat $T/out)" = 2 ]'
nx -w "$T" -e FOO=bar -e 'SPACE=a b' -- sh -c 'pwd; echo "$FOO|$SPACE"' </dev/null
check "--cwd and --env" '[ "$(cat $T/out)" = "$T
bar|a b" ]'
nx -- 'sh' '-c' 'printf "%s|" "$@"' x 'a b' '' '$HOME' '*' </dev/null
check "argv passed as is, no shell in between" '[ "$(cat $T/out)" = "a b||\$HOME|*|" ]'
if [ "$(id -u)" -eq 0 ]; then
	nx -u 65534:65534 -- id -u </dev/null
	check "--user 65534:65534" '[ "$(cat $T/out)" = 65534 ]'
	nx -u no-such-user-here -- true </dev/null
	rc=$?
	check "--user unknown: 126" '[ $rc -eq 126 ] && grep -q "no such user" $T/err'
fi

# ---- signals, hangup, timeout
t0=$(date +%s)
timeout 60 "$NESTVM" exec --agent-socket "$SOCK" -- sleep 30 </dev/null >"$T/out" 2>"$T/err" &
p=$!
sleep 1
kill -INT $p
wait $p
rc=$?
check "SIGINT forwarded ends sleep: 130, at once" '[ $rc -eq 130 ] && [ $(($(date +%s) - t0)) -lt 10 ]'
timeout 60 "$NESTVM" exec --agent-socket "$SOCK" -- sh -c 'echo $$; exec sleep 60' </dev/null \
	>"$T/hup.out" 2>"$T/err" &
p=$!
for i in $(seq 1 100); do [ -s "$T/hup.out" ] && break; sleep 0.05; done
remote=$(cat "$T/hup.out")
kill -HUP $p
wait $p
rc=$?
sleep 0.5
check "a hangup ends the remote command (129, remote pid gone)" \
	'[ $rc -eq 129 ] && [ -n "$remote" ] && ! kill -0 "$remote" 2>/dev/null'
t0=$(date +%s)
nx --timeout 1 -- sleep 30 </dev/null
rc=$?
check "--timeout 1 kills sleep: 124" '[ $rc -eq 124 ] && [ $(($(date +%s) - t0)) -lt 10 ] && grep -q "timed out" $T/err'
nx --timeout 1 -- sh -c 'trap "" TERM; sleep 30' </dev/null
rc=$?
check "--timeout: SIGKILL when SIGTERM is ignored" '[ $rc -eq 124 ]'

# ---- 100 MiB both ways
head -c 104857600 /dev/urandom >"$T/big"
want=$(sum "$T/big")
t0=$(date +%s%N)
timeout 120 "$NESTVM" exec --agent-socket "$SOCK" -- sha256sum <"$T/big" >"$T/out" 2>"$T/err"
t1=$(date +%s%N)
check "100 MiB in through stdin, checksum ($(((t1 - t0) / 1000000)) ms)" \
	'[ "$(cut -c1-64 $T/out)" = "$want" ]'
t0=$(date +%s%N)
timeout 120 "$NESTVM" exec --agent-socket "$SOCK" -- cat "$T/big" >"$T/big.out" 2>"$T/err" </dev/null
t1=$(date +%s%N)
check "100 MiB out through stdout, checksum ($(((t1 - t0) / 1000000)) ms)" \
	'[ "$(sum $T/big.out)" = "$want" ]'
t0=$(date +%s%N)
timeout 120 "$NESTVM" exec --agent-socket "$SOCK" -- cat <"$T/big" 2>"$T/err" | sha256sum >"$T/out"
t1=$(date +%s%N)
check "100 MiB through cat and back at once, checksum ($(((t1 - t0) / 1000000)) ms)" \
	'[ "$(cut -c1-64 $T/out)" = "$want" ]'
rm -f "$T/big.out"
# A slow reader: the command blocks on its output, nothing is lost or piled up.
timeout 60 "$NESTVM" exec --agent-socket "$SOCK" -- head -c 8388608 /dev/zero </dev/null 2>"$T/err" |
	(sleep 2; wc -c) >"$T/out"
check "a reader 2 s late gets all 8 MiB" '[ "$(cat $T/out)" = 8388608 ]'

# ---- pty
if command -v script >/dev/null; then
	(sleep 1; printf 'stty size; tty\n'; sleep 1; printf 'sleep 20\n'; sleep 1; printf '\003'
	 sleep 1; printf 'exit 7\n'; sleep 1) |
		timeout 30 script -qec "stty rows 33 cols 101; $NESTVM exec --agent-socket $SOCK -t -- sh" \
			/dev/null >"$T/out" 2>&1
	rc=$?
	check "pty: window size 33x101, a pts, Ctrl-C ends sleep, exit 7" \
		'[ $rc -eq 7 ] && grep -q "^33 101" $T/out && grep -q "/dev/pts/" $T/out && grep -q "\^C" $T/out'
else
	echo "skip pty: no script(1)"
fi
echo 'echo from-pty' | nx -t -- sh
check "pty without a terminal here: runs, EOF ends it" '[ $? -eq 0 ] && grep -q from-pty $T/out'

# ---- cp
mkdir -p "$T/into" "$T/back"
timeout 60 "$NESTVM" cp --agent-socket "$SOCK" "$T/big" ":$T/into/" 2>"$T/err"
check "cp LOCAL :DIR/ (100 MiB), checksum" '[ $? -eq 0 ] && [ "$(sum $T/into/big)" = "$want" ]'
chmod 750 "$T/into/big"
timeout 60 "$NESTVM" cp --agent-socket "$SOCK" ":$T/into/big" "$T/back/copy" 2>"$T/err"
check "cp :PATH LOCAL, checksum and mode" \
	'[ $? -eq 0 ] && [ "$(sum $T/back/copy)" = "$want" ] && [ "$(stat -c %a $T/back/copy)" = 750 ]'
printf 'small\n' >"$T/small"
timeout 60 "$NESTVM" cp --agent-socket "$SOCK" "$T/small" ":$T/back/copy" 2>"$T/err"
check "cp replaces a file" '[ $? -eq 0 ] && [ "$(cat $T/back/copy)" = small ]'
: >"$T/empty"
timeout 60 "$NESTVM" cp --agent-socket "$SOCK" "$T/empty" ":$T/back/e2" 2>"$T/err" &&
	timeout 60 "$NESTVM" cp --agent-socket "$SOCK" ":$T/back/e2" "$T/back/e3" 2>>"$T/err"
check "cp an empty file both ways" '[ $? -eq 0 ] && [ -f $T/back/e3 ] && [ ! -s $T/back/e3 ]'
timeout 60 "$NESTVM" cp --agent-socket "$SOCK" ":$T/nope" "$T/back/x" 2>"$T/err"
check "cp a missing file: 1 and why" '[ $? -eq 1 ] && grep -q "No such file" $T/err && [ ! -e $T/back/x ]'
timeout 60 "$NESTVM" cp --agent-socket "$SOCK" ":$T" "$T/back/x" 2>"$T/err"
check "cp a directory: refused" '[ $? -eq 1 ] && grep -q "regular file" $T/err'
timeout 60 "$NESTVM" cp --agent-socket "$SOCK" "$T/small" "$T/other" 2>"$T/err"
check "cp with no side in a VM: usage" '[ $? -eq 2 ]'
leftover=$(find "$T" -name '.*.nestvm-*' | wc -l)
check "no temporary files left behind" '[ "$leftover" -eq 0 ]'

# ---- 20 sessions at once
pids=
for i in $(seq 1 20); do
	(timeout 60 "$NESTVM" exec --agent-socket "$SOCK" -- sh -c "sleep 1; echo session-$i; exit $i" \
		</dev/null >"$T/par.$i" 2>&1; echo $? >"$T/par.$i.rc") &
	pids="$pids $!"
done
# shellcheck disable=SC2086 # the list of pids
wait $pids
good=0
for i in $(seq 1 20); do
	[ "$(cat "$T/par.$i")" = "session-$i" ] && [ "$(cat "$T/par.$i.rc")" = "$i" ] && good=$((good + 1))
done
check "20 sessions at once, each its own output and status ($good of 20)" '[ $good -eq 20 ]'

# ---- through the levels: two managed VMs (in a store of their own) whose
# vsock sockets are agents playing a VM's vsock socket (--vsock-connect); the
# first one relays to the second with `nestvm agent-relay` (our nestvm).
export NESTVM_HOME="$T/home"
PROBE=$(pwd)/build/guest/probe.elf
"$NESTVM" new l1 --kernel "$PROBE" --vsock 5,socket="$T/l1.sock" >/dev/null &&
	"$NESTVM" new l2 --kernel "$PROBE" --vsock 6,socket="$T/l2.sock" >/dev/null
check "nestvm new with --vsock for the relay VMs" '[ $? -eq 0 ]'
"$AGENT" --unix "$T/l1.sock" --vsock-connect --nestvm "$NESTVM" -v 2>"$T/l1.log" &
l1_pid=$!
"$AGENT" --unix "$T/l2.sock" --vsock-connect -v 2>"$T/l2.log" &
l2_pid=$!
for i in $(seq 1 100); do
	[ -S "$T/l1.sock" ] && [ -S "$T/l2.sock" ] && break
	sleep 0.05
done
timeout 60 "$NESTVM" exec l1 -- echo level-one </dev/null >"$T/out" 2>"$T/err"
check "exec l1: through the VM's vsock socket (CONNECT)" '[ $? -eq 0 ] && [ "$(cat $T/out)" = level-one ]'
timeout 60 "$NESTVM" exec l1/l2 -- sh -c 'echo level-two; exit 4' </dev/null >"$T/out" 2>"$T/err"
rc=$?
check "exec l1/l2: relayed, status 4, served by l2's agent" \
	'[ $rc -eq 4 ] && [ "$(cat $T/out)" = level-two ] && grep -q "relay to VM .l2." $T/l1.log && grep -q "command .*: sh" $T/l2.log'
timeout 60 "$NESTVM" exec l1/l2 -- sha256sum <"$T/small" >"$T/out" 2>"$T/err"
check "exec l1/l2: stdin through the relay" '[ "$(cut -c1-64 $T/out)" = "$(sum $T/small)" ]'
timeout 60 "$NESTVM" exec l1/l3 -- true </dev/null >"$T/out" 2>"$T/err"
rc=$?
check "exec l1/l3: no such VM in l1, 255 and why" '[ $rc -eq 255 ] && grep -q "no VM named .l3." $T/err'
head -c 10485760 /dev/urandom >"$T/ten"
timeout 60 "$NESTVM" cp "$T/ten" "l1/l2:$T/ten.l2" 2>"$T/err" &&
	timeout 60 "$NESTVM" cp "l1/l2:$T/ten.l2" "$T/ten.back" 2>>"$T/err"
check "cp through l1 into l2 and back (10 MiB), checksum" '[ $? -eq 0 ] && [ "$(sum $T/ten.back)" = "$(sum $T/ten)" ]'
echo chained | timeout 60 "$NESTVM" exec -e NESTVM_HOME="$NESTVM_HOME" l1 -- "$NESTVM" exec l2 -- cat >"$T/out" 2>"$T/err"
check "the chained form: exec l1 -- nestvm exec l2 -- cat" '[ $? -eq 0 ] && [ "$(cat $T/out)" = chained ]'
"$NESTVM" new l9 --kernel "$PROBE" >/dev/null
timeout 60 "$NESTVM" exec l9 -- true </dev/null >"$T/out" 2>"$T/err"
check "a VM without vsock: 255 and how to add it" '[ $? -eq 255 ] && grep -q -- "--vsock CID" $T/err'
timeout 60 "$NESTVM" exec --vsock-socket "$T/l2.sock" -- echo by-socket </dev/null >"$T/out" 2>"$T/err"
check "--vsock-socket PATH (a nestvm run VM)" '[ $? -eq 0 ] && [ "$(cat $T/out)" = by-socket ]'
kill "$l1_pid" "$l2_pid"
wait "$l1_pid" "$l2_pid" 2>/dev/null
timeout 60 "$NESTVM" exec l1 -- true </dev/null >"$T/out" 2>"$T/err"
check "exec into a VM that is off: 255, says so" '[ $? -eq 255 ] && grep -q "is off" $T/err'
unset NESTVM_HOME

# ---- a VM's vsock socket under many connections (the release build: glibc's
# malloc, whose heap trimming once read a file from the sandboxed vsock thread)
RELEASE=$(pwd)/build/release/nestvm
if [ -w /dev/kvm ] && [ -x "$RELEASE" ]; then
	"$RELEASE" run --kernel "$PROBE" --cmdline test=idle --memory 64M --vsock 3,socket="$T/vm.sock" \
		</dev/null >"$T/vm.out" 2>&1 &
	vm=$!
	for i in $(seq 1 100); do [ -S "$T/vm.sock" ] && break; sleep 0.05; done
	for round in 1 2 3; do
		pids=
		for i in $(seq 1 60); do
			timeout 20 "$NESTVM" exec --vsock-socket "$T/vm.sock" -- true </dev/null \
				>/dev/null 2>&1 &
			pids="$pids $!"
		done
		# shellcheck disable=SC2086 # the list of pids
		wait $pids
	done
	kill -0 $vm 2>/dev/null
	alive=$?
	kill $vm 2>/dev/null
	wait $vm 2>/dev/null
	check "a VM's vsock socket: 180 connections (the guest has no agent), the monitor lives" \
		'[ $alive -eq 0 ] && ! grep -q seccomp $T/vm.out'
else
	echo "skip vsock-connections: needs /dev/kvm and $RELEASE"
fi

# ---- who may connect
check "the agent's socket is mode 0600" '[ "$(stat -c %a $SOCK)" = 600 ]'
if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null; then
	chmod 711 "$T"
	chmod 666 "$SOCK"
	timeout 20 setpriv --reuid=65534 --regid=65534 --clear-groups "$NESTVM" exec \
		--agent-socket "$SOCK" -- true </dev/null >"$T/out" 2>"$T/err"
	rc=$?
	chmod 600 "$SOCK"
	check "another user's client refuses a socket not its own (255)" \
		'[ $rc -eq 255 ] && grep -q "agent socket" $T/err'
fi
kill -0 "$agent_pid" 2>/dev/null
check "the agent is still up and serving" '[ $? -eq 0 ] && nx -- echo alive </dev/null && [ "$(cat $T/out)" = alive ]'
if grep -q "ERROR: AddressSanitizer\|runtime error" "$T/agent.log"; then
	bad "sanitizer report in the agent's log"
	sed 's/^/     | /' "$T/agent.log" | head -30
fi

echo "exec: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
