#!/bin/sh
# Virtual switches (src/switch/, docs/api.md "Switches") on this host, no
# KVM needed: the CLI (new, list, show, start, stop, remove and their
# errors), a switch started on demand by an adapter (switch_link_connect),
# and build/tests/switch_peer playing VM adapters: forwarding and learning
# on a private switch, 10,000 spoofed frames and the other guards dropped and
# counted, a peer that never reads, DHCP leases on a NAT switch (stable across
# a restart), a TCP port forward into a fake guest, a fake guest's connection
# out through NAT, DNS forwarding (to a resolver of the tool's, in namespaces
# of its own), and an internal switch's
# tap (in a network namespace of its own, when root). The switch's process
# runs confined (src/switch/confine.h): seccomp, no_new_privs, its own uid
# when started as root, Landlock (a sanitizer build's self-test hooks try to make a
# file outside its directory and a forbidden system call). Traffic stays on this
# machine: loopback and that namespace. Prints "N passed, N failed" last.
set -u
cd "$(dirname "$0")/../.."
NESTVM=${NESTVM:-build/asan/nestvm}
PEER=${SWITCH_PEER:-build/tests/switch_peer}
case $NESTVM in /*) ;; *) NESTVM=$(pwd)/$NESTVM ;; esac
case $PEER in /*) ;; *) PEER=$(pwd)/$PEER ;; esac
if [ ! -x "$NESTVM" ] || [ ! -x "$PEER" ]; then
	echo "skip: needs $NESTVM and $PEER (make build/asan/nestvm test-tools)"
	exit 77
fi
mkdir -p build/test-tmp
# Short: socket paths must fit in 108 bytes.
T=$(mktemp -d "$(pwd)/build/test-tmp/sw.XXXXXX")
export NESTVM_HOME="$T/h"
SW="$NESTVM_HOME/.switches"
pass=0
fail=0
bg=""
ok() { pass=$((pass + 1)); echo "ok: $*"; }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; [ -f "$T/out" ] && sed 's/^/    /' "$T/out" | tail -n 15; }
skip() { echo "skip $1: $2"; }
nv() { timeout 30 "$NESTVM" "$@" >"$T/out" 2>&1; }
# expect NAME RC PATTERN -- ARGS: nestvm ARGS exits RC and prints a line matching PATTERN.
expect() {
	name=$1 rc=$2 pat=$3
	shift 4
	nv "$@"
	got=$?
	if [ "$got" -eq "$rc" ] && grep -q -- "$pat" "$T/out"; then ok "$name"; else bad "$name (exit $got, want $rc, /$pat/)"; fi
}
# peer NAME ARGS: switch_peer ARGS passes all its checks.
peer() {
	name=$1
	shift
	timeout 30 "$PEER" "$@" >"$T/out" 2>&1
	rc=$?
	sed 's/^/    /' "$T/out"
	if [ "$rc" -eq 0 ] && ! grep -q "^FAIL" "$T/out"; then ok "$name"; else bad "$name (exit $rc)"; fi
}
cleanup() {
	for p in $bg; do kill "$p" 2>/dev/null; done
	for rt in $(find "$T" -name runtime.json 2>/dev/null); do
		pid=$(sed -n 's/.*"pid": *\([0-9]*\).*/\1/p' "$rt")
		[ -n "$pid" ] && kill "$pid" 2>/dev/null
	done
	rm -rf "$T"
}
trap cleanup EXIT
start_time=$(date +%s)

# ---- the CLI ----
expect "switch --help" 0 "new NAME --type private|internal|nat" -- switch --help
expect "list without a store" 0 "" -- switch list
expect "new private" 0 "switch 'p' (private) created" -- switch new p --type private
expect "new: duplicate" 1 "a switch named 'p' already exists" -- switch new p --type private
expect "new: bad name" 2 "invalid switch name" -- switch new ../x --type private
expect "new: no type" 2 "--type private|internal|nat is required" -- switch new x
expect "new: private with a subnet" 1 "a private switch has no subnet" -- \
	switch new x --type private --subnet 10.9.0.0/24
expect "new: internal without a subnet (a bare tap)" 0 "created" -- switch new bare --type internal
expect "new: bad subnet" 2 "is not A.B.C.D/N" -- switch new x --type nat --subnet 10.0.2.5/24
expect "new: bad forward" 2 "is not tcp|udp" -- switch new x --type nat --forward tcp:1:2
expect "new: forward outside the subnet" 1 "must be a VM's address in the switch's subnet" -- \
	switch new x --type nat --forward tcp:8080:192.168.1.5:80
expect "list" 0 "^p  *private  *-  *stopped  *0" -- switch list
expect "show: stopped" 0 "^state: stopped" -- switch show p
expect "show: no such switch" 1 "no switch named 'nosuch'" -- switch show nosuch
# The store's rules: no links followed, only the user's own regular files.
nv switch new q --type private
echo '{"name":"q","type":"private"}' >"$T/elsewhere.json"
mv "$SW/q/switch.json" "$T/q.json" && ln -s "$T/elsewhere.json" "$SW/q/switch.json"
expect "switch.json as a symbolic link is refused" 1 "is a symbolic link" -- switch show q
rm "$SW/q/switch.json" && ln "$T/elsewhere.json" "$SW/q/switch.json"
expect "switch.json with two hard links is refused" 1 "has 2 hard links" -- switch show q
expect "a broken switch can be removed" 0 "switch 'q' removed" -- switch remove q
if [ "$(stat -c %a "$SW/p")" = 700 ] && [ "$(stat -c %a "$SW/p/switch.json")" = 600 ]; then
	ok "the switch's directory is 0700, switch.json 0600"
else bad "modes: $(stat -c %a "$SW/p" "$SW/p/switch.json" | tr '\n' ' ')"; fi

# ---- started on demand by the first adapter ----
expect "an adapter starts the switch (switch_link_connect)" 0 "joined switch 'p' as port 1" -- \
	switch link p vm-one
expect "list: running" 0 "^p  *private  *-  *running  *0" -- switch list
if [ "$(stat -c %a "$SW/p/ports.sock")" = 600 ] && [ "$(stat -c %a "$SW/p/control.sock")" = 600 ]; then
	ok "ports.sock and control.sock are 0600"
else bad "socket modes: $(stat -c %a "$SW/p/ports.sock" "$SW/p/control.sock" | tr '\n' ' ')"; fi
expect "an adapter of a switch that does not exist" 1 "no switch named 'nosuch'" -- switch link nosuch

# ---- the switch process's sandbox (src/switch/confine.h) ----
nv switch show p --json
swpid=$(sed -n 's/^ *"pid": \([0-9]*\),*$/\1/p' "$T/out" | head -n 1)
st=/proc/${swpid:-0}/status
if [ -z "$swpid" ] || [ ! -r "$st" ]; then
	bad "the running switch's pid (show --json: '$swpid')"
elif ! grep -q '^Seccomp:' /proc/self/status || ! pkg-config --exists libseccomp 2>/dev/null; then
	skip "switch-seccomp" "no seccomp in this kernel or no libseccomp at build time"
else
	if [ "$(sed -n 's/^Seccomp:[[:space:]]*//p' "$st")" = 2 ] &&
		[ "$(sed -n 's/^NoNewPrivs:[[:space:]]*//p' "$st")" = 1 ] &&
		grep -q '"seccomp": true' "$T/out" && grep -q '"no_new_privs": true' "$T/out"; then
		ok "the switch runs under its seccomp filter (Seccomp: 2), NoNewPrivs 1, and says so"
	else bad "switch $swpid: $(grep -E '^(Seccomp|NoNewPrivs):' "$st" | tr '\n' ' ')"; fi
fi
if [ -n "$swpid" ] && [ "$(id -u)" -eq 0 ]; then
	# Uid: real, effective, saved, fs; CapEff: none; the uid is the store's record.
	uids=$(sed -n 's/^Uid:[[:space:]]*//p' "$st" | tr -s '\t ' ' ')
	u=${uids%% *}
	rec=$(readlink "$NESTVM_HOME/.jail/switch-p" 2>/dev/null)
	if [ "$u" != 0 ] && [ "$uids" = "$u $u $u $u" ] && [ "$rec" = "$u" ] &&
		[ "$(sed -n 's/^CapEff:[[:space:]]*//p' "$st")" = 0000000000000000 ] &&
		[ "$(sed -n 's/^Groups:[[:space:]]*//p' "$st")" = "" ] &&
		grep -q "\"uid\": $u" "$T/out" && grep -q '"own_user": true' "$T/out" &&
		[ "$(stat -c %u "$SW/p")" = "$u" ] && [ "$(stat -c %u "$SW/p/switch.json")" = 0 ]; then
		ok "started as root, the switch runs as its own uid $u (.jail/switch-p), no capabilities, no groups"
	else bad "switch user: Uid '$uids', record '$rec', CapEff $(sed -n 's/^CapEff:[[:space:]]*//p' "$st")"; fi
	expect "show: the protections" 0 "^user: $u, group $u (its own), no capabilities" -- switch show p
else
	skip "switch-user" "not root: the switch keeps its starter's uid"
	expect "show: the protections" 0 "^user: $(id -u), not its own (not started as root)" -- switch show p
fi
expect "show: the sandbox line" 0 "^sandbox: seccomp on, landlock \(on (files: the switch's directory)\|off\), no_new_privs on" -- \
	switch show p
# Landlock: a switch started with a (sanitizer build's) self-test hook tries to make a file
# outside its directory, in one its user may write to (1777): only Landlock stands in the way.
mkdir -m 1777 "$T/open"
chmod 711 "$T"
nv switch new ll --type private
NESTVM_SWITCH_SELFTEST_CREATE="$T/open/made" timeout 30 "$NESTVM" switch start ll >"$T/out" 2>&1
line=$(grep "sandbox self-test: create" "$SW/ll/switch.log")
nv switch show ll --json
if [ -z "$line" ]; then
	skip "switch-landlock" "this build has no self-test hook (a sanitizer or debug build has)"
elif grep -q '"landlock": false' "$T/out"; then
	skip "switch-landlock" "no Landlock in this kernel ($line)"
elif echo "$line" | grep -q "Permission denied" && [ ! -e "$T/open/made" ]; then
	ok "the switch cannot make a file outside its directory (Landlock)"
else bad "Landlock: $line"; fi
nv switch stop ll
# A forbidden system call ends the switch with a line naming it (sanitizer builds' self-test).
NESTVM_SANDBOX_SELFTEST=switch timeout 30 "$NESTVM" switch start ll >"$T/out" 2>&1
if grep -q "sandbox self-test: thread switch calls personality" "$SW/ll/switch.log"; then
	if grep -q "made forbidden syscall [0-9]* (personality); the switch ends (exit status 159)" "$T/out" &&
		! timeout 10 "$NESTVM" switch list | grep -q "^ll .*running"; then
		ok "a forbidden system call ends the switch, named in switch.log"
	else bad "forbidden call: $(tail -n 3 "$SW/ll/switch.log")"; fi
else
	skip "switch-sigsys" "this build has no self-test hook (a sanitizer or debug build has)"
fi
if [ "$(id -u)" -eq 0 ]; then
	cp "$SW/ll/switch.json" "$T/ll.json"
	chown 4242 "$SW/ll/switch.json"
	expect "a switch.json the switch's user could have written is refused" 1 "is owned by uid 4242" -- \
		switch start ll
	cp "$T/ll.json" "$SW/ll/switch.json.new" && mv "$SW/ll/switch.json.new" "$SW/ll/switch.json"
	expect "remove" 0 "switch 'll' removed" -- switch remove ll
	if [ ! -e "$NESTVM_HOME/.jail/switch-ll" ]; then ok "remove forgets the switch's uid"; else bad "the uid record is left"; fi
else
	nv switch remove ll
fi

# ---- a private switch ----
peer "private: flooding, learning, no hairpin, 1000 frames in order" forward "$SW/p/ports.sock"
peer "private: 10,000 spoofed frames dropped and counted, DHCP and router guards, malformed" \
	guards "$SW/p/ports.sock" 10000
peer "private: a peer that never reads does not wedge the switch" stuck "$SW/p/ports.sock" 2000
peer "private: silent adapters and bad hellos are refused with a reason" hostile "$SW/p/ports.sock"
nv switch show p --json
if grep -q '"running": true' "$T/out"; then ok "the switch survived the hostile peers"; else bad "switch gone"; fi
# api NAME LINE PATTERN: the control socket answers LINE with a reply matching PATTERN.
api() {
	timeout 10 "$PEER" api "$SW/p/control.sock" "$2" >"$T/out" 2>&1
	if grep -q -- "$3" "$T/out"; then ok "api: $1"; else bad "api: $1"; fi
}
api "status, id echoed" '{"id":7,"cmd":"status"}' '"ok":true,"result":{"name":"p","type":"private".*"id":7'
api "not JSON" 'status' '"code":"parse-error"'
api "no cmd" '{"id":"x"}' '"code":"invalid-request".*"id":"x"'
api "unknown command" '{"cmd":"frob"}' '"code":"unknown-command"'
# As for a monitor (hardening_manager.sh): requests in one go, replies read late.
r=$(timeout 60 "$PEER" pipeline "$SW/p/control.sock" '{"cmd":"status"}' 3000 1000 2>&1)
[ "$r" = "replies=3000 ok=3000" ] && ok "api: 3000 pipelined requests, replies read late: all answered" ||
	bad "api: 3000 pipelined requests, replies read late: $r"
api "unknown field" '{"cmd":"status","x":1}' '"code":"invalid-request"'
api "a repeated key" '{"cmd":"status","cmd":"stop"}' '"code":"parse-error"'
if switch_running=$(timeout 10 "$NESTVM" switch list | grep -c "^p .*running"); [ "$switch_running" = 1 ]; then
	ok "api: a bad request changes nothing"; else bad "api: the switch stopped"; fi

# ---- stop and remove refuse while VMs are connected ----
"$PEER" hold "$SW/p/ports.sock" held-vm 02:00:00:00:00:77 30 >"$T/hold" 2>&1 &
bg="$bg $!"
for _ in 1 2 3 4 5 6 7 8 9 10; do grep -q connected "$T/hold" && break; sleep 0.1; done
expect "show: a connected port" 0 "held-vm/0 *02:00:00:00:00:77 *MDR" -- switch show p
expect "remove refuses while a VM is connected" 1 "has 1 VM adapter connected (VM 'held-vm')" -- \
	switch remove p
expect "stop refuses too" 1 "disconnect them, or --force" -- switch stop p
expect "remove --force" 0 "switch 'p' removed" -- switch remove p --force
if [ ! -e "$SW/p" ]; then ok "the switch's directory is gone"; else bad "$SW/p is left"; fi

# ---- a NAT switch ----
if ! pkg-config --exists slirp 2>/dev/null; then
	skip "nat" "nestvm was built without libslirp (libslirp-dev)"
else
	# A free port on loopback for the forward.
	hp=$((20000 + $$ % 20000))
	expect "new nat with a port forward" 0 "switch 'lan' (nat) created" -- \
		switch new lan --type nat --forward "tcp:$hp:10.0.2.15:80"
	expect "start" 0 "started switch 'lan'" -- switch start lan
	expect "start again" 0 "already running" -- switch start lan
	peer "nat: DHCP DISCOVER/OFFER/REQUEST/ACK" dhcp "$SW/lan/ports.sock" 02:00:00:00:01:01
	a1=$(sed -n 's/^ *address //p' "$T/out")
	peer "nat: DHCP for a second MAC" dhcp "$SW/lan/ports.sock" 02:00:00:00:01:02
	a2=$(sed -n 's/^ *address //p' "$T/out")
	if [ "$a1" = 10.0.2.15 ] && [ "$a2" = 10.0.2.16 ]; then ok "leases from .15: $a1, $a2"; else bad "leases $a1 $a2"; fi
	expect "stop" 0 "switch 'lan' is stopped" -- switch stop lan
	if grep -q 02:00:00:00:01:02 "$SW/lan/leases.json"; then ok "leases.json holds the leases"; else bad "leases.json: $(cat "$SW/lan/leases.json")"; fi
	nv switch start lan
	peer "nat: DHCP after a restart" dhcp "$SW/lan/ports.sock" 02:00:00:00:01:02
	a3=$(sed -n 's/^ *address //p' "$T/out")
	if [ "$a3" = "$a2" ]; then ok "the same MAC gets the same address after a restart ($a3)"; else bad "after a restart: $a3, before: $a2"; fi
	peer "nat: a host connection to the forwarded port reaches a fake guest (SYN, data)" \
		syn "$SW/lan/ports.sock" 02:00:00:00:01:01 10.0.2.15 10.0.2.2 "$hp" 80
	peer "nat: a 1 s download into a fake guest (a window's segments a turn, batched), intact" \
		download "$SW/lan/ports.sock" 02:00:00:00:01:01 10.0.2.15 10.0.2.2 "$hp" 80 1
	peer "nat: a fake guest connects out to the host's loopback through NAT (TCP, both ways)" \
		outbound "$SW/lan/ports.sock" 02:00:00:00:01:02 10.0.2.16 10.0.2.2
	# DNS forwarding: .3 goes to the host's resolver; in namespaces of our own,
	# that is a DNS server of the tool's on 127.0.0.1 (resolv.conf bind-mounted).
	if [ "$(id -u)" -ne 0 ] || ! command -v unshare >/dev/null; then
		skip "nat-dns" "needs root and unshare for a resolver in a namespace of its own"
	else
		echo "nameserver 127.0.0.1" >"$T/resolv.conf"
		timeout 30 unshare -n -m sh -c '
			N=$1 P=$2 T=$3
			mount --bind "$T/resolv.conf" /etc/resolv.conf || exit 1
			"$P" lo-up || exit 1
			"$P" dns-server 192.0.2.7 20 & srv=$!
			sleep 0.2
			"$N" switch new dn --type nat >/dev/null &&
			"$N" switch start dn >/dev/null &&
			"$P" dns "$NESTVM_HOME/.switches/dn/ports.sock" 02:00:00:00:03:01 10.0.2.15 \
				10.0.2.2 10.0.2.3 example.test
			rc=$?
			"$N" switch remove dn --force >/dev/null
			kill $srv
			exit $rc
		' sh "$NESTVM" "$PEER" "$T" >"$T/out" 2>&1
		rc=$?
		sed 's/^/    /' "$T/out"
		if [ $rc -eq 0 ] && grep -q "^answer 192.0.2.7" "$T/out"; then
			ok "nat: a guest's DNS question to .3 is forwarded to the host's resolver and answered"
		else bad "nat: DNS forwarding (exit $rc)"; fi
	fi
	expect "show: the NAT port and the leases" 0 "02:00:00:00:01:02  10.0.2.16" -- switch show lan
	expect "remove (no VM connected)" 0 "switch 'lan' removed" -- switch remove lan
fi

# ---- an internal switch: a tap device, in a network namespace of our own ----
if [ "$(id -u)" -ne 0 ] || [ ! -c /dev/net/tun ] || ! command -v unshare >/dev/null; then
	nv switch new hn --type internal --subnet 10.77.0.0/24
	expect "internal: the error names CAP_NET_ADMIN or the device" 1 "CAP_NET_ADMIN\|/dev/net/tun" -- \
		switch start hn
	skip "internal-tap" "needs root, /dev/net/tun and unshare to make a tap in a namespace"
else
	nv switch new hn --type internal --subnet 10.77.0.0/24
	if command -v setpriv >/dev/null; then
		timeout 30 setpriv --bounding-set=-net_admin "$NESTVM" switch start hn >"$T/out" 2>&1
		rc=$?
		if [ $rc -eq 1 ] && grep -q "CAP_NET_ADMIN" "$T/out"; then
			ok "internal without CAP_NET_ADMIN: the error says what is missing"
		else bad "internal without CAP_NET_ADMIN (exit $rc)"; fi
		# At once again: the refused switch let go of its lock before its
		# starter heard, so this one is refused too, not "already running".
		timeout 30 setpriv --bounding-set=-net_admin "$NESTVM" switch start hn >"$T/out" 2>&1
		rc=$?
		if [ $rc -eq 1 ] && grep -q "CAP_NET_ADMIN" "$T/out"; then
			ok "internal without CAP_NET_ADMIN, again at once: refused again, not 'already running'"
		else bad "internal without CAP_NET_ADMIN, again at once (exit $rc: $(head -n 1 "$T/out"))"; fi
	else
		skip "internal-nocap" "no setpriv to drop CAP_NET_ADMIN"
	fi
	# A mount namespace too, for a /sys that shows the new network namespace.
	unshare -n -m sh -c '
		set -u
		N=$1 P=$2 S=$3 out=$4
		r() { echo "== $*"; "$@"; echo "rc=$?"; }
		{
		mount -t sysfs none /sys || echo "cannot mount /sys"
		r "$N" switch start hn
		echo "tap: $(cat /sys/class/net/nestvm-hn/operstate 2>&1)"
		r "$P" arp "$S/hn/ports.sock" 02:00:00:00:02:01 10.77.0.20 10.77.0.1
		r "$P" dhcp "$S/hn/ports.sock" 02:00:00:00:02:01
		r "$N" switch stop hn
		echo "tap after stop: $(ls /sys/class/net | grep -c nestvm-hn)"
		r "$N" switch start bare
		echo "bare tap: $(cat /sys/class/net/nestvm-bare/operstate 2>&1)," \
			"$(ip -4 -o addr show dev nestvm-bare 2>/dev/null | wc -l) address(es)"
		r "$N" switch stop bare
		} >"$out" 2>&1
	' sh "$NESTVM" "$PEER" "$SW" "$T/ns" 
	sed 's/^/    /' "$T/ns"
	if grep -q "started switch 'hn'" "$T/ns" && grep -q "^tap: \(up\|unknown\)" "$T/ns"; then
		ok "internal: the switch starts and makes its tap, up"
	else bad "internal: start"; fi
	if grep -q "^ok: ARP for 10.77.0.1 answered" "$T/ns"; then ok "internal: the host (10.77.0.1) answers ARP through the switch"; else bad "internal: ARP to the host"; fi
	if grep -q "^address 10.77.0.15" "$T/ns"; then ok "internal: DHCP hands out .15"; else bad "internal: DHCP"; fi
	if grep -q "tap after stop: 0" "$T/ns"; then ok "internal: the tap goes with the switch"; else bad "internal: tap left"; fi
	if grep -q "^bare tap: \(up\|unknown\), 0 address" "$T/ns"; then ok "internal without a subnet: a bare tap, up, no address"; else bad "internal: bare tap"; fi
fi

echo "time: $(($(date +%s) - start_time)) s"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
