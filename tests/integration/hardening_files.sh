#!/bin/sh
# Files and sockets nestvm creates or reads, against a hostile local user and
# a careless one (issue 9, rows 2, 4, 5, 6, 8), with the ASan build and the
# probe guest on this host's /dev/kvm:
#   row 2  --console file:PATH never follows a symlink, never empties a file
#          with other links or another user's file;
#   row 4  the default vsock socket is in $XDG_RUNTIME_DIR/nestvm or the VM
#          store's .run, never in /tmp;
#   row 5  every socket nestvm listens on is mode 0600, umask 000 or not;
#   row 6  a live socket is never unlinked, the same path twice is an error,
#          a stale socket of ours is replaced;
#   row 8  a FIFO as kernel, initrd or disk (run, and start of a managed VM)
#          is a clear error within 2 s, not a hang.
# The "another user" cases run as nobody (setpriv) when this runs as root and
# are skipped otherwise. The vsock PATH_PORT owner check is in the unit tests
# (test_virtio_vsock, test_fsutil): the probe guest has no vsock driver.
# Prints "N passed, N failed" last; exit 77 without /dev/kvm.
set -u
cd "$(dirname "$0")/../.."
NESTVM=${NESTVM:-build/asan/nestvm}
case $NESTVM in /*) ;; *) NESTVM=$(pwd)/$NESTVM ;; esac
PROBE=$(pwd)/build/guest/probe.elf
T=$(mktemp -d /tmp/nestvm-hardening-files.XXXXXX)
export NESTVM_HOME="$T/home"
CID=$((1000 + $$ % 50000)) # not the CID of another test running now
pass=0
fail=0
skipped=0
bg_pids=

if [ ! -w /dev/kvm ] || [ ! -x "$NESTVM" ] || [ ! -f "$PROBE" ]; then
	echo "skip: needs a writable /dev/kvm, $NESTVM and $PROBE"
	rm -rf "$T"
	exit 77
fi

# Kill what this test started, by pid: background runs and managed monitors.
cleanup() {
	for p in $bg_pids; do
		kill -9 "$p" 2>/dev/null
	done
	for rt in "$T"/home/*/runtime.json; do
		[ -f "$rt" ] || continue
		pid=$(sed -n 's/.*"pid": *\([0-9]*\).*/\1/p' "$rt")
		[ -n "$pid" ] && [ "$pid" -gt 0 ] && kill -9 "$pid" 2>/dev/null
	done
	wait 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

ok() { pass=$((pass + 1)); echo "ok   $*"; }
bad() {
	fail=$((fail + 1))
	echo "FAIL $*"
	[ -f "$T/err" ] && sed 's/^/     | /' "$T/err" | head -10
}
skip() { skipped=$((skipped + 1)); echo "skip $*"; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
mode_of() { stat -c %a "$1" 2>/dev/null; }
inode_of() { stat -c %i "$1" 2>/dev/null; }

# nv ARGS: nestvm in the foreground (30 s at most), stderr to $T/err; sets rc and ms.
# $RUN_ENV: env(1) arguments for it, e.g. XDG_RUNTIME_DIR=... or -u XDG_RUNTIME_DIR.
RUN_ENV=
nv() {
	t0=$(now_ms)
	# shellcheck disable=SC2086
	env $RUN_ENV timeout 30 "$NESTVM" "$@" </dev/null >"$T/out" 2>"$T/err"
	rc=$?
	ms=$(($(now_ms) - t0))
}

# expect NAME STATUS PATTERN -- ARGS: exit status and an error line matching PATTERN.
expect() {
	name=$1 want=$2 pattern=$3
	shift 4
	nv "$@"
	if [ "$rc" -eq "$want" ] && grep -q -- "$pattern" "$T/err"; then
		ok "$name: exit $rc in ${ms} ms: $(head -1 "$T/err")"
	else
		bad "$name: exit $rc (want $want), stderr should match '$pattern':"
	fi
}

# bg ARGS: nestvm run in the background (idle guest); its pid in $bg. No
# timeout(1) in between: a SIGKILL must reach nestvm itself.
bg() {
	# shellcheck disable=SC2086
	env $RUN_ENV "$NESTVM" run --kernel "$PROBE" --cmdline test=idle --memory 16M \
		--console none "$@" </dev/null >/dev/null 2>"$T/bg.err" &
	bg=$!
	bg_pids="$bg_pids $bg"
}

# wait_sock PATH: until PATH is a socket (10 s at most).
wait_sock() {
	i=0
	while [ "$i" -lt 100 ]; do
		[ -S "$1" ] && return 0
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}

stop_bg() {
	kill "$1" 2>/dev/null
	wait "$1" 2>/dev/null
}

as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null && as_nobody true 2>/dev/null; then
	other_user=1
else
	other_user=0
fi
chmod 755 "$T"
mkdir -m 1777 "$T/pub" # like /tmp: anyone may create, only the owner removes

# ---- row 2: the console file ----
printf 'precious\n' >"$T/victim"
ln -s "$T/victim" "$T/c.log"
expect "console file is a symlink: refused" 1 "symbolic link" -- \
	run --kernel "$PROBE" --cmdline test=exit --memory 16M --console file:"$T/c.log"
[ "$(cat "$T/victim")" = precious ] && ok "symlink target kept its contents" ||
	bad "symlink target truncated to $(wc -c <"$T/victim") bytes"
ln "$T/victim" "$T/hard.log"
expect "console file with a second hard link: refused" 1 "other hard links" -- \
	run --kernel "$PROBE" --cmdline test=exit --memory 16M --console file:"$T/hard.log"
[ "$(cat "$T/victim")" = precious ] && ok "hard-linked file kept its contents" ||
	bad "hard-linked file truncated"
mkfifo "$T/fifo.log"
expect "console file is a FIFO: refused at once" 1 "not nestvm's to replace" -- \
	run --kernel "$PROBE" --cmdline test=exit --memory 16M --console file:"$T/fifo.log"
[ "$ms" -lt 2000 ] && ok "FIFO console refused in ${ms} ms" || bad "FIFO console took ${ms} ms"
printf 'last run\n' >"$T/own.log"
nv run --kernel "$PROBE" --cmdline test=exit --memory 16M --console file:"$T/own.log"
if [ "$rc" -eq 0 ] && ! grep -q 'last run' "$T/own.log"; then
	ok "own console file emptied and reused (exit 0, $(wc -c <"$T/own.log") bytes)"
else
	bad "own console file: exit $rc, $(wc -c <"$T/own.log") bytes"
fi
nv run --kernel "$PROBE" --cmdline test=exit --memory 16M --console file:"$T/new.log"
[ "$rc" -eq 0 ] && [ -f "$T/new.log" ] && [ ! -L "$T/new.log" ] &&
	ok "new console file created (exit 0)" || bad "new console file: exit $rc"
if [ "$other_user" -eq 1 ]; then
	as_nobody ln -s "$T/victim" "$T/pub/c.log"
	expect "another user's symlink in a sticky directory: refused" 1 "symbolic link" -- \
		run --kernel "$PROBE" --cmdline test=exit --memory 16M --console file:"$T/pub/c.log"
	[ "$(cat "$T/victim")" = precious ] && ok "root's file kept its contents" ||
		bad "root's file truncated through nobody's symlink"
	as_nobody sh -c "printf 'theirs\n' >'$T/pub/theirs.log'"
	expect "another user's file: refused" 1 "belongs to another user" -- \
		run --kernel "$PROBE" --cmdline test=exit --memory 16M --console file:"$T/pub/theirs.log"
	[ "$(cat "$T/pub/theirs.log")" = theirs ] && ok "their file kept its contents" ||
		bad "their file truncated"
else
	skip "another user's symlink and file: needs root and setpriv"
fi

# ---- row 8: FIFOs as inputs ----
mkfifo "$T/fifo"
expect "kernel is a FIFO" 1 "kernel '$T/fifo': not a regular file" -- \
	run --kernel "$T/fifo" --memory 16M
[ "$ms" -lt 2000 ] && ok "FIFO kernel refused in ${ms} ms" || bad "FIFO kernel took ${ms} ms"
expect "initrd is a FIFO" 1 "initrd '$T/fifo': not a regular file" -- \
	run --kernel "$PROBE" --initrd "$T/fifo" --memory 16M --console none
[ "$ms" -lt 2000 ] && ok "FIFO initrd refused in ${ms} ms" || bad "FIFO initrd took ${ms} ms"
expect "disk is a FIFO" 1 "disk '$T/fifo': not a regular file or block device" -- \
	run --kernel "$PROBE" --cmdline test=exit --memory 16M --console none --disk "$T/fifo"
[ "$ms" -lt 2000 ] && ok "FIFO disk refused in ${ms} ms" || bad "FIFO disk took ${ms} ms"
expect "read-only disk is a FIFO" 1 "not a regular file or block device" -- \
	run --kernel "$PROBE" --cmdline test=exit --memory 16M --console none --disk "$T/fifo,readonly"
expect "--kvm is a FIFO" 1 "not the KVM character device" -- \
	run --kernel "$PROBE" --memory 16M --kvm "$T/fifo"
[ "$ms" -lt 2000 ] && ok "FIFO --kvm refused in ${ms} ms" || bad "FIFO --kvm took ${ms} ms"

# A managed VM whose disk (then kernel) became a FIFO after `new`.
truncate -s 1M "$T/i.img"
cp "$PROBE" "$T/k.elf"
nv new ff --kernel "$T/k.elf" --cmdline test=idle --memory 16M --disk "$T/i.img,ro"
[ "$rc" -eq 0 ] || bad "new ff: exit $rc"
rm -f "$T/i.img"
mkfifo "$T/i.img"
t0=$(now_ms)
timeout 20 "$NESTVM" start ff </dev/null >"$T/err" 2>&1
rc=$?
ms=$(($(now_ms) - t0))
if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && grep -q "not a regular file or block device" "$T/err"; then
	ok "start with a FIFO disk fails (exit $rc) in ${ms} ms: $(grep -m1 'not a regular' "$T/err" | sed 's/^ *//')"
else
	bad "start with a FIFO disk: exit $rc after ${ms} ms"
fi
[ "$ms" -lt 5000 ] && ok "FIFO disk start returned in ${ms} ms" || bad "FIFO disk start took ${ms} ms"
state=$(timeout 10 "$NESTVM" show ff 2>/dev/null | sed -n 's/^state: *\([a-z]*\).*/\1/p')
[ "$state" != starting ] && [ "$state" != running ] && ok "ff is '$state' afterwards, not starting" ||
	bad "ff is '$state' afterwards"
rm -f "$T/i.img"
truncate -s 1M "$T/i.img"
rm -f "$T/k.elf"
mkfifo "$T/k.elf"
t0=$(now_ms)
timeout 20 "$NESTVM" start ff </dev/null >"$T/err" 2>&1
rc=$?
ms=$(($(now_ms) - t0))
if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [ "$ms" -lt 5000 ] && grep -q "not a regular file" "$T/err"; then
	ok "start with a FIFO kernel fails (exit $rc) in ${ms} ms"
else
	bad "start with a FIFO kernel: exit $rc after ${ms} ms"
fi

# ---- row 4: the default vsock socket ----
mkdir -m 700 "$T/xdg"
rm -f "/tmp/nestvm-vsock-$CID.sock" 2>/dev/null
RUN_ENV="XDG_RUNTIME_DIR=$T/xdg"
bg --vsock "$CID"
if wait_sock "$T/xdg/nestvm/vsock-$CID.sock"; then
	ok "default vsock socket in \$XDG_RUNTIME_DIR/nestvm (mode $(mode_of "$T/xdg/nestvm/vsock-$CID.sock"), dir $(mode_of "$T/xdg/nestvm"))"
else
	bad "no socket at \$XDG_RUNTIME_DIR/nestvm/vsock-$CID.sock: $(cat "$T/bg.err")"
fi
[ -e "/tmp/nestvm-vsock-$CID.sock" ] && bad "a vsock socket in /tmp: /tmp/nestvm-vsock-$CID.sock" ||
	ok "no vsock socket in /tmp"
stop_bg "$bg"
[ -e "$T/xdg/nestvm/vsock-$CID.sock" ] && bad "vsock socket left behind" || ok "vsock socket removed at exit"
RUN_ENV="-u XDG_RUNTIME_DIR"
bg --vsock "$CID"
if wait_sock "$NESTVM_HOME/.run/vsock-$CID.sock"; then
	ok "without XDG_RUNTIME_DIR: in the VM store's .run (mode $(mode_of "$NESTVM_HOME/.run/vsock-$CID.sock"), dir $(mode_of "$NESTVM_HOME/.run"))"
else
	bad "no socket at \$NESTVM_HOME/.run/vsock-$CID.sock: $(cat "$T/bg.err")"
fi
[ -e "/tmp/nestvm-vsock-$CID.sock" ] && bad "a vsock socket in /tmp" || ok "still none in /tmp"
stop_bg "$bg"
mkdir -m 777 "$T/xdg-open"
chmod 777 "$T/xdg-open"
mkdir -m 777 "$T/xdg-open/nestvm"
chmod 777 "$T/xdg-open/nestvm"
RUN_ENV="XDG_RUNTIME_DIR=$T/xdg-open"
expect "runtime directory others can write to: refused" 1 \
	"another user could write to it" -- run --kernel "$PROBE" --cmdline test=exit --memory 16M --vsock "$CID"
RUN_ENV=

# ---- row 5: socket modes under umask 000 ----
umask 000
bg --virtio-console "$T/pub/vc.sock" --console-port p,socket="$T/pub/port.sock" \
	--vsock "$CID",socket="$T/pub/vs.sock"
umask 022
if wait_sock "$T/pub/vs.sock"; then
	for s in vc.sock port.sock vs.sock; do
		m=$(mode_of "$T/pub/$s")
		[ "$m" = 600 ] && ok "umask 000: $s is mode $m" || bad "umask 000: $s is mode '$m', want 600"
	done
else
	bad "umask 000: the sockets did not appear: $(cat "$T/bg.err")"
fi
stop_bg "$bg"
(umask 000; timeout 30 "$NESTVM" new ctl --kernel "$PROBE" --cmdline test=idle --memory 16M \
	</dev/null >/dev/null 2>&1 && timeout 30 "$NESTVM" start ctl </dev/null >/dev/null 2>&1)
m=$(mode_of "$NESTVM_HOME/ctl/control.sock")
[ "$m" = 600 ] && ok "umask 000: the control socket is mode $m" || bad "umask 000: control.sock mode '$m'"
timeout 30 "$NESTVM" kill ctl </dev/null >/dev/null 2>&1

# ---- row 6: existing paths ----
bg --virtio-console "$T/live.sock"
live=$bg
if wait_sock "$T/live.sock"; then
	ino=$(inode_of "$T/live.sock")
	expect "a live socket is not taken over" 1 "a program is listening on it" -- \
		run --kernel "$PROBE" --cmdline test=exit --memory 16M --console none \
		--virtio-console "$T/live.sock"
	[ "$(inode_of "$T/live.sock")" = "$ino" ] && ok "the live socket is still the service's (inode $ino)" ||
		bad "the live socket was replaced (inode $ino -> $(inode_of "$T/live.sock"))"
	expect "a live socket as vsock socket" 1 "a program is listening on it" -- \
		run --kernel "$PROBE" --cmdline test=exit --memory 16M --console none \
		--vsock "$CID",socket="$T/live.sock"
else
	bad "the live service did not start: $(cat "$T/bg.err")"
fi
stop_bg "$live"
expect "the same socket path twice" 1 "same.sock" -- \
	run --kernel "$PROBE" --cmdline test=exit --memory 16M --console none \
	--virtio-console "$T/same.sock" --console-port p,socket="$T/same.sock"
printf 'data\n' >"$T/file.sock"
expect "a regular file as socket path" 1 "not nestvm's to replace" -- \
	run --kernel "$PROBE" --cmdline test=exit --memory 16M --console none --virtio-console "$T/file.sock"
[ "$(cat "$T/file.sock")" = data ] && ok "the file is still there" || bad "the file was removed"
ln -s "$T/elsewhere.sock" "$T/link.sock"
expect "a symlink as socket path" 1 "symbolic link" -- \
	run --kernel "$PROBE" --cmdline test=exit --memory 16M --console none --virtio-console "$T/link.sock"
# A nestvm killed with SIGKILL leaves its socket: the next run replaces it.
bg --virtio-console "$T/stale.sock"
if wait_sock "$T/stale.sock"; then
	kill -9 "$bg"
	wait "$bg" 2>/dev/null
	nv run --kernel "$PROBE" --cmdline test=exit --memory 16M --console none --virtio-console "$T/stale.sock"
	[ "$rc" -eq 0 ] && ok "a stale socket of ours is replaced (exit 0)" || bad "stale socket: exit $rc"
else
	bad "the first run did not create its socket: $(cat "$T/bg.err")"
fi
if [ "$other_user" -eq 1 ]; then
	# A dead program's socket, given to nobody: theirs to remove, not ours.
	bg --virtio-console "$T/pub/nobody.sock"
	if wait_sock "$T/pub/nobody.sock"; then
		kill -9 "$bg"
		wait "$bg" 2>/dev/null
		chown 65534:65534 "$T/pub/nobody.sock"
		expect "another user's stale socket is not removed" 1 "belongs to another user" -- \
			run --kernel "$PROBE" --cmdline test=exit --memory 16M --console none \
			--virtio-console "$T/pub/nobody.sock"
		[ -S "$T/pub/nobody.sock" ] && ok "nobody's socket is still there" || bad "nobody's socket was removed"
	else
		bad "the socket to give to nobody did not appear: $(cat "$T/bg.err")"
	fi
else
	skip "another user's stale socket: needs root and setpriv"
fi

[ -e "/tmp/nestvm-vsock-$CID.sock" ] && rm -f "/tmp/nestvm-vsock-$CID.sock"
echo "hardening_files: $pass passed, $fail failed, $skipped skipped"
[ "$fail" -eq 0 ]
