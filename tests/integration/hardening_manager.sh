#!/bin/sh
# Regression checks for the VM manager's hardening (issue 9, rows 3, 7, 9,
# 10, 11), against the probe guest (test=idle) on this host's /dev/kvm, in
# temporary NESTVM_HOMEs:
#   3  a store others can write, or another user owns, is refused; files in
#      it are never opened through a link (a victim file stays intact)
#   7  the monitor keeps no descriptor of its caller: `(nestvm start 7>&1) | cat` ends
#   9  16 idle control connections do not lock the owner out; idle ones are closed;
#      a client that sends 3000 requests before it reads a reply gets them all
#   10 run, new and vm.json judge sizes and vCPU counts alike, at parse time
#   11 list creates no store; names escaped and a usage error (2) everywhere;
#      no "final flush failed" for a rejected image; monitor.log rotates;
#      ",," is a comma in a --disk path
# Prints "N passed, N failed" last; exit 77 without /dev/kvm.
NAME_OF_TEST=hardening
. "$(dirname "$0")/../lib/manager.sh"
HOLDERS=
manager_cleanup_extra() { for p in $HOLDERS; do kill "$p" 2>/dev/null; done; }
monitor_pid() { sed -n 's/.*"pid": *\([0-9]*\).*/\1/p' "$NESTVM_HOME/$1/runtime.json" 2>/dev/null; }

victim_intact() { # NAME: $T/victim still holds what it held
	if [ "$(cat "$T/victim" 2>/dev/null)" = precious ]; then ok "$1: the victim file is intact"; else
		bad "$1: the victim file was changed: '$(head -c 80 "$T/victim")'"
	fi
}

echo precious >"$T/victim"

# ---- row 11: list creates no store ----
expect "list without a store" 0 "^NAME" -- list
if [ -e "$NESTVM_HOME" ]; then bad "list created $NESTVM_HOME"; else ok "list did not create the store"; fi
expect "show without a store" 1 "no VM store at" -- show vm1

# ---- row 3: a store others can write, or own ----
nv new vm1 --kernel "$PROBE" --cmdline test=idle --memory 32M
chmod 0777 "$NESTVM_HOME"
expect "a world-writable NESTVM_HOME is refused" 1 "'$NESTVM_HOME' is writable by other users (mode 0777).*chmod go-w '$NESTVM_HOME'" -- list
expect "start in a world-writable NESTVM_HOME" 1 "writable by other users" -- start vm1
expect "new in a world-writable NESTVM_HOME" 1 "writable by other users" -- new vm2 --kernel "$PROBE"
chmod 0700 "$NESTVM_HOME"
chmod 0777 "$NESTVM_HOME/vm1"
expect "a world-writable VM directory is refused" 1 "'$NESTVM_HOME/vm1' is writable by other users" -- show vm1
expect "start with a world-writable VM directory" 1 "chmod go-w" -- start vm1
chmod 0700 "$NESTVM_HOME/vm1"
mkdir -m 0777 "$T/pub"
chmod 0777 "$T/pub"
NESTVM_HOME="$T/pub/home"
expect "a NESTVM_HOME in a directory others can write" 1 "above the VM store" -- new x --kernel "$PROBE"
NESTVM_HOME="$T/home"
if [ "$(id -u)" -eq 0 ]; then
	# The issue's attack: another user's store, with console.log a link to root's file.
	mkdir -p "$T/evil"
	NESTVM_HOME="$T/evil/home"
	nv new ev --kernel "$PROBE" --cmdline test=idle --memory 32M
	ln -s "$T/victim" "$T/evil/home/ev/console.log"
	chown -R 65534:65534 "$T/evil/home"
	chmod 0777 "$T/evil/home"
	expect "another user's world-writable store" 1 "writable by other users\|owned by uid 65534" -- start ev
	chmod 0700 "$T/evil/home"
	expect "a store owned by another user" 1 "owned by uid 65534, not by you (uid 0) or root.*chown 0" -- start ev
	chown 0:0 "$T/evil/home"
	expect "a VM directory owned by another user" 1 "'$T/evil/home/ev' is owned by uid 65534" -- start ev
	victim_intact "another user's store"
	NESTVM_HOME="$T/home"
else
	echo "skip: chown to another user needs root"
fi
ln -s "$T/victim" "$NESTVM_HOME/vm1/console.log"
expect "console.log a link: start refused" 1 "console.log' is a symbolic link" -- start vm1
victim_intact "console.log a link"
rm "$NESTVM_HOME/vm1/console.log"
mv "$NESTVM_HOME/vm1/monitor.log" "$T/ml" 2>/dev/null
ln -s "$T/victim" "$NESTVM_HOME/vm1/monitor.log"
expect "monitor.log a link: start refused" 1 "monitor.log' is a symbolic link" -- start vm1
victim_intact "monitor.log a link"
rm "$NESTVM_HOME/vm1/monitor.log"
mv "$NESTVM_HOME/vm1/vm.json" "$T/def.json"
ln -s "$T/def.json" "$NESTVM_HOME/vm1/vm.json"
expect "vm.json a link: refused" 1 "vm.json: cannot read: a symbolic link" -- start vm1
rm "$NESTVM_HOME/vm1/vm.json"
mv "$T/def.json" "$NESTVM_HOME/vm1/vm.json"
chmod 0666 "$NESTVM_HOME/vm1/vm.json"
expect "a world-writable vm.json is refused" 1 "vm.json' is writable by other users" -- start vm1
chmod 0600 "$NESTVM_HOME/vm1/vm.json"
mkfifo "$NESTVM_HOME/vm1/console.log"
expect "console.log a FIFO: start refused, not hung" 1 "console.log' is not a regular file" -- start vm1
rm "$NESTVM_HOME/vm1/console.log"

# ---- row 7: the monitor closes what it inherits ----
start=$(date +%s)
# The repro: the pipe to `cat` is also the caller's descriptor 7; its name goes to pipe7.
timeout 30 sh -c '( exec 7>&1; readlink /proc/self/fd/7 >&8; "$1" start vm1 ) 8>"$2" | cat' \
	sh "$NESTVM" "$T/pipe7" >"$T/out" 2>&1
rc=$?
took=$(($(date +%s) - start))
if [ "$rc" -eq 0 ] && [ "$took" -lt 20 ] && grep -q "started VM 'vm1'" "$T/out"; then
	ok "(nestvm start 7>&1) | cat ends (${took}s)"
else
	bad "(nestvm start 7>&1) | cat: exit $rc after ${took}s"
fi
pid=$(monitor_pid vm1)
if [ -n "$pid" ] && [ -d "/proc/$pid/fd" ] && [ -s "$T/pipe7" ]; then
	kept=
	for fd in /proc/"$pid"/fd/*; do
		[ "$(readlink "$fd")" = "$(cat "$T/pipe7")" ] && kept="$kept $fd"
	done
	[ -z "$kept" ] && ok "the monitor holds none of its caller's pipe" || bad "the monitor kept the caller's pipe:$kept"
else
	bad "no monitor pid for vm1"
fi

# ---- row 9: idle control connections ----
# 16 `nestvm api` clients, each connected and idle: they wait for their stdin, a FIFO.
mkfifo "$T/hold"
i=0
while [ "$i" -lt 16 ]; do
	"$NESTVM" api vm1 <"$T/hold" >"$T/holder.$i" 2>&1 &
	HOLDERS="$HOLDERS $!"
	i=$((i + 1))
done
exec 3>"$T/hold"
sleep 2
start=$(date +%s)
expect "kill with 16 idle connections held" 0 "VM 'vm1' is off: killed" -- kill vm1
took=$(($(date +%s) - start))
[ "$took" -lt 10 ] && ok "kill got through in ${took}s" || bad "kill took ${took}s"
exec 3>&-
for p in $HOLDERS; do wait "$p"; done
HOLDERS=
nv start vm1
(
	sleep 12
	echo '{"cmd":"status","id":"late"}'
) | timeout 30 "$NESTVM" api vm1 >"$T/idle" 2>&1
# The monitor closed it with an idle-timeout line (which `api` prints); the late request got no answer.
if grep -q '"code":"idle-timeout"' "$T/idle" && ! grep -q '"id":"late"' "$T/idle"; then
	ok "an idle connection is closed after 10 s with idle-timeout"
else
	cp "$T/idle" "$T/out"
	bad "idle connection not closed"
fi
# A `stop` waiting for the guest is not idle: it hears the end after more than 10 s.
nv new btn --kernel "$PROBE" --cmdline "test=idle button=ignore" --memory 32M
nv start btn
i=0
while [ "$i" -lt 100 ] && ! grep -q "test=idle: up" "$NESTVM_HOME/btn/console.log" 2>/dev/null; do
	sleep 0.1
	i=$((i + 1))
done
expect "stop --force waiting 12 s is not cut off as idle" 0 "forced off: the guest did not power off within 12 s" -- \
	stop --timeout 12 --force btn
expect "status works after all that" 0 "^state: *running" -- show vm1
# Requests sent in one go, replies read 1 s later: the monitor holds its
# replies and then its reading (it once dropped the client when its socket
# filled, and `pause_stress` lost a hundred answers).
PEER=$(pwd)/build/tests/switch_peer
r=$(timeout 60 "$PEER" pipeline "$NESTVM_HOME/vm1/control.sock" '{"cmd":"status"}' 3000 1000 2>&1)
[ "$r" = "replies=3000 ok=3000" ] && ok "3000 pipelined requests, replies read late: all answered" ||
	bad "3000 pipelined requests, replies read late: $r"
r=$( (i=0; while [ $i -lt 3000 ]; do echo '{"cmd":"status"}'; i=$((i + 1)); done) |
	timeout 60 "$NESTVM" api vm1 2>&1 | grep -c '"ok": *true')
[ "$r" = 3000 ] && ok "nestvm api: 3000 requests, all answered" || bad "nestvm api: $r of 3000 answered"
nv kill vm1

# ---- row 10: one judge of sizes ----
expect "run --memory 16385K" 2 "nestvm run: --memory '16385K': give a whole number of MiB" -- \
	run --kernel "$PROBE" --cmdline test=exit --console none --memory 16385K
expect "new --memory 16385K" 2 "nestvm new: --memory '16385K': give a whole number of MiB" -- \
	new m1 --kernel "$PROBE" --memory 16385K
expect "set --memory 16385K" 2 "nestvm set: --memory '16385K': give a whole number of MiB" -- \
	set vm1 --memory 16385K
expect "run --cpus 255" 2 "nestvm run: --cpus '255': give a number of vCPUs from 1 to 254" -- \
	run --kernel "$PROBE" --cmdline test=exit --console none --cpus 255
expect "new --cpus 255" 2 "nestvm new: --cpus '255': give a number of vCPUs from 1 to 254" -- \
	new m1 --kernel "$PROBE" --cpus 255
expect "run --memory 64T" 2 "64T': 67108864 MiB is more than this host's" -- \
	run --kernel "$PROBE" --cmdline test=exit --console none --memory 64T
nv new big --kernel "$PROBE" --memory 32M
sed -i 's/"memory_mib": 32/"memory_mib": 16777216/' "$NESTVM_HOME/big/vm.json"
expect "vm.json memory_mib 16777216: judged when read" 1 "big/vm.json: field 'memory_mib': 16777216 MiB is more than this host's" -- show big
expect "... and start refuses it before spawning" 1 "field 'memory_mib'" -- start big
nv remove big

# ---- row 11: names, exit statuses, flush, rotation, commas ----
esc=$(printf 'x\033]0;owned\007y')
for verb in show start kill remove new; do
	if [ "$verb" = new ]; then nv new "$esc" --kernel "$PROBE"; else nv "$verb" "$esc"; fi
	rc=$?
	if [ "$rc" -eq 2 ] && grep -q 'x\\x1b\]0;owned\\x07y' "$T/out" && ! grep -q "$(printf '\033')" "$T/out"; then
		ok "$verb: a name with control characters: exit 2, escaped"
	else
		bad "$verb: a name with control characters: exit $rc"
	fi
done
for verb in show kill new; do
	if [ "$verb" = new ]; then nv new ../x --kernel "$PROBE"; else nv "$verb" ../x; fi
	rc=$?
	[ "$rc" -eq 2 ] && ok "$verb ../x: exit 2" || bad "$verb ../x: exit $rc (want 2)"
done
nv run --kernel "$PROBE" --cmdline test=exit --console none --disk /dev/null
rc=$?
if [ "$rc" -eq 1 ] && grep -q "not a regular file" "$T/out" && ! grep -q "final flush failed" "$T/out"; then
	ok "a rejected image: no 'final flush failed'"
else
	bad "a rejected image (exit $rc)"
fi
head -c 1200000 /dev/zero | tr '\0' x >"$NESTVM_HOME/vm1/monitor.log"
echo "the last line of the old log" >>"$NESTVM_HOME/vm1/monitor.log"
nv start vm1
if [ "$(stat -c %s "$NESTVM_HOME/vm1/monitor.log.1" 2>/dev/null)" -gt 1200000 ] &&
	[ "$(stat -c %s "$NESTVM_HOME/vm1/monitor.log")" -lt 100000 ] &&
	grep -q "monitor pid .* starting" "$NESTVM_HOME/vm1/monitor.log"; then
	ok "monitor.log past 1 MiB moves to monitor.log.1 at start"
else
	bad "monitor.log rotation: $(ls -l "$NESTVM_HOME/vm1/" | grep monitor)"
fi
# While the monitor runs: it looks once a second and switches its stderr to a new file.
head -c 1100000 /dev/zero | tr '\0' y >>"$NESTVM_HOME/vm1/monitor.log"
sleep 2.5
nv pause vm1
nv resume vm1
if [ "$(stat -c %s "$NESTVM_HOME/vm1/monitor.log.1" 2>/dev/null)" -gt 1100000 ] &&
	[ "$(stat -c %s "$NESTVM_HOME/vm1/monitor.log")" -lt 100000 ] &&
	grep -q "resumed" "$NESTVM_HOME/vm1/monitor.log"; then
	ok "monitor.log past 1 MiB moves to monitor.log.1 while the monitor runs"
else
	bad "monitor.log rotation while running: $(ls -l "$NESTVM_HOME/vm1/" | grep monitor)"
fi
nv kill vm1
truncate -s 1M "$T/a,b.img"
expect "new --disk with ',,' in the path" 0 "created VM 'comma'" -- \
	new comma --kernel "$PROBE" --cmdline test=idle --memory 32M --disk "$T/a,,b.img,ro"
expect "show: the path with its comma" 0 "^disk 0: *$T/a,b.img (read-only)" -- show comma
expect "run --disk with ',,' in the path" 0 "disk $T/a,b.img: 1048576 bytes, read-only" -- \
	run --kernel "$PROBE" --cmdline test=exit --console none -v --disk "$T/a,,b.img,readonly"

if cat "$NESTVM_HOME"/*/monitor.log 2>/dev/null | grep -q -e "ERROR: AddressSanitizer" -e "runtime error" -e "LeakSanitizer"; then
	grep -h -A5 -e "ERROR: AddressSanitizer" -e "runtime error" -e "LeakSanitizer" "$NESTVM_HOME"/*/monitor.log >"$T/out"
	bad "sanitizer reports in monitor logs"
else
	ok "no sanitizer report in the monitor logs"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
