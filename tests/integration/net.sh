#!/bin/sh
# virtio-net on this host's /dev/kvm: probe VMs (test=net, guest/probe/test_net.c)
# with --nic switch=lan on a fake switch (tests/integration/fake_switch.c)
# listening on $NESTVM_HOME/.switches/lan/ports.sock, which forwards every
# frame between its two ports and counts what it sees:
#  - two `run` VMs: 2000 UDP frames one way with checksum offload, each
#    echoed back; both guests check every checksum, pattern and the order,
#    the switch counts the frames, their NEEDS_CSUM and no foreign source MAC;
#  - full-size frames (1514 bytes, two receive buffers each) with the
#    checksums done in the guest;
#  - spoof=1: frames from a foreign source MAC reach the switch as such;
#  - a hostile guest: malformed transmit chains each reset only its
#    adapter (DEVICE_NEEDS_RESET), the VM goes on, the adapter sends again;
#  - a switch that is not there: the VM does not start, the error names it;
#  - a managed VM: `new --nic` records MAC and slot, `set` adds and removes
#    NICs while it is off; it runs as the receiver, is saved and restored in
#    a new monitor that joins the switch again, and then gets every frame;
#  - a live migration of a receiving VM to a second store (another "host",
#    its own switch lan): its adapter leaves the first switch and joins the
#    second, where it then gets every frame;
#  - with nestvm's own switches (`nestvm switch`, skipped without them): two
#    VMs over a private switch started on demand (each frame intact and in
#    order, at least 90% through: that switch drops when a port's queue is
#    full), and 10,000 frames from a
#    foreign MAC all dropped by the spoofing guard while the same from an
#    adapter with mac-spoofing=on all pass; a VM whose switch another
#    monitor is still starting (switch_peer runlock) waits for it, then
#    starts it itself.
# Prints "N passed, N failed" last; exit 77 without /dev/kvm.
NAME_OF_TEST=net
. "$(dirname "$0")/../lib/manager.sh"
SWITCH=$(pwd)/build/tests/fake_switch
PEER=$(pwd)/build/tests/switch_peer
for tool in "$SWITCH" "$PEER"; do
	[ -x "$tool" ] || { echo "FAIL missing $tool (make test-tools)"; echo "0 passed, 1 failed"; exit 1; }
done

SW_DIR=$NESTVM_HOME/.switches/lan
STATS=$T/switch.stats
sw_pid=
sw2_pid=
B=$T/homeB
manager_cleanup_extra() {
	# Waited for: a switch writes its counters as it goes.
	for p in $sw_pid $sw2_pid; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
	for rt in "$B"/*/runtime.json; do
		[ -f "$rt" ] || continue
		pid=$(sed -n 's/.*"pid": *\([0-9]*\).*/\1/p' "$rt")
		[ -n "$pid" ] && [ "$pid" -gt 0 ] && kill -9 "$pid" 2>/dev/null
	done
}

# switch_start: a fresh fake switch (counters at zero).
switch_start() {
	[ -n "$sw_pid" ] && { kill "$sw_pid"; wait "$sw_pid" 2>/dev/null; }
	rm -f "$STATS"
	"$SWITCH" "$SW_DIR" "$STATS" 2>>"$T/switch.err" &
	sw_pid=$!
	for _i in $(seq 50); do [ -S "$SW_DIR/ports.sock" ] && [ -f "$STATS" ] && return 0; sleep 0.1; done
	bad "the fake switch did not start"
	return 1
}

# swstat VM FIELD: FIELD of the switch port VM's adapter was on ("-": none).
swstat() { awk -v vm="$1" -v f="$2" '$4 == vm { for (i = 1; i < NF; i++) if ($i == f) print $(i + 1) }' "$STATS"; }

# probe NAME CMDLINE [nestvm run options]: a run VM in the background, output in $T/NAME.*
probe() {
	_n=$1 _c=$2
	shift 2
	timeout 60 "$NESTVM" run --kernel "$PROBE" --memory 64M --cmdline "test=net $_c" "$@" \
		</dev/null >"$T/$_n.out" 2>"$T/$_n.err" &
}

result() { grep -a "^probe: test=net: " "$T/$1.out" | tail -1; }

# pair NAME SENDER_ARGS RECEIVER_ARGS [SENDER_NIC_OPTIONS]: receiver and sender on the
# switch; both must pass.
pair() {
	probe "$1-recv" "role=recv $3" --nic switch=lan
	rpid=$!
	sleep 0.3
	probe "$1-send" "role=send $2" --nic "switch=lan${4:-}"
	spid=$!
	wait "$spid"
	src=$?
	wait "$rpid"
	rrc=$?
	if [ "$src" -eq 0 ] && [ "$rrc" -eq 0 ] && result "$1-send" | grep -q PASS &&
		result "$1-recv" | grep -q PASS; then
		ok "$1: $(result "$1-send" | sed 's/.*PASS //'); $(result "$1-recv" | sed 's/.*PASS //')"
	else
		bad "$1: sender exit $src: $(result "$1-send"); receiver exit $rrc: $(result "$1-recv")"
		for f in "$T/$1-send.out" "$T/$1-recv.out"; do grep -a "probe: net:" "$f"; done | sed 's/^/     | /'
		for f in "$T/$1-send.err" "$T/$1-recv.err"; do tail -n 3 "$f"; done | sed 's/^/     | /'
		sed 's/^/     | switch: /' "$STATS"
	fi
	sleep 0.3 # the switch writes its counters as the ports close
}

mkdir -p "$SW_DIR"
chmod 700 "$NESTVM_HOME" "$NESTVM_HOME/.switches" "$SW_DIR"

# ---- two VMs, both directions, checksum offload ----
switch_start
pair echo "count=2000 size=1000 echo=1" "count=2000 echo=1"
sender=$(sed -n 's/.*vm \(run-[0-9]*\) mac .* partial \([0-9]*\).*/\1/p' "$STATS" | while read -r vm; do
	[ "$(swstat "$vm" partial)" -ge 2000 ] && echo "$vm"; done | head -1)
if [ -n "$sender" ] && [ "$(swstat "$sender" frames)" -eq 2000 ] &&
	[ "$(swstat "$sender" bytes)" -eq 2000000 ] && [ "$(swstat "$sender" spoofed)" -eq 0 ] &&
	! grep -q "spoofed [1-9]" "$STATS" && ! grep -q "bad [1-9]" "$STATS"; then
	ok "the switch saw 2000 frames, 2000000 bytes, each with NEEDS_CSUM, none spoofed or malformed"
else
	bad "switch counters: $(cat "$STATS")"
fi

# ---- full-size frames, checksums done by the guest; a larger MTU ----
switch_start
pair full "count=1000 size=1514 csum=0" "count=1000" ,mtu=9000
if grep -q "MTU 9000" "$T/full-send.out" && grep -q "MTU 1500" "$T/full-recv.out"; then
	ok "mtu=9000: the guest's adapter says MTU 9000 (the other's 1500)"
else
	bad "MTU: $(grep -h 'probe: net:' "$T/full-send.out" "$T/full-recv.out")"
fi
if ! grep -q "partial [1-9][0-9][0-9]" "$STATS"; then
	ok "csum=0: frames leave without NEEDS_CSUM"
else
	bad "csum=0 frames marked NEEDS_CSUM: $(cat "$STATS")"
fi

# ---- a foreign source MAC is what the switch sees ----
switch_start
pair spoof "count=100 size=200 spoof=1" "count=100"
if grep -q "spoofed 100 " "$STATS"; then ok "spoof=1: the switch saw 100 frames from a foreign MAC"
else bad "spoof counters: $(cat "$STATS")"; fi

# ---- a hostile guest resets only its adapter ----
switch_start
probe hostile "role=hostile size=100" --nic switch=lan
wait $!
hrc=$?
resets=$(grep -c "virtio-net0: malformed transmit queue or header" "$T/hostile.err")
if [ "$hrc" -eq 0 ] && result hostile | grep -q PASS && [ "$resets" -ge 1 ]; then
	ok "hostile: $(result hostile | sed 's/.*PASS //') (nestvm warned $resets time(s))"
else
	bad "hostile: exit $hrc: $(result hostile)"
	tail -5 "$T/hostile.err" | sed 's/^/     | /'
fi
sleep 0.3
if grep -q "frames 6 .*dropped 6" "$STATS"; then ok "hostile: its 6 good frames after resets reached the switch"
else bad "hostile counters: $(cat "$STATS")"; fi

# ---- a switch that is not there ----
probe nosuch "role=send count=1" --nic switch=nosuch
wait $!
nrc=$?
if [ "$nrc" -ne 0 ] && grep -q "cannot join.*nosuch" "$T/nosuch.err" && ! grep -q "test=net" "$T/nosuch.out"; then
	ok "no switch 'nosuch': the VM does not start (exit $nrc) and says why"
else
	bad "no switch: exit $nrc, $(tail -2 "$T/nosuch.err")"
fi
expect "run: --nic without switch=" 2 "give switch=NAME" -- run --kernel "$PROBE" --nic mac=02:00:00:00:00:01

# ---- a managed VM: definition, set, save and restore on the switch ----
switch_start
expect "new --nic" 0 "created VM 'rx'" -- new rx --kernel "$PROBE" --memory 64M \
	--cmdline "test=net role=recv count=3000 echo=1 linger=5000" --disk "$PROBE,ro" --nic switch=lan
mac=$(sed -n 's/.*"mac": "\([0-9a-f:]*\)".*/\1/p' "$NESTVM_HOME/rx/vm.json")
slot=$(tr -d '\n ' <"$NESTVM_HOME/rx/vm.json" | sed -n 's/.*"switch":"lan".*"pci_slot":\([0-9]*\)}.*/\1/p')
if [ -n "$mac" ] && [ "$slot" = 2 ]; then ok "vm.json records the NIC's MAC $mac and slot 2"
else bad "vm.json: mac '$mac' slot '$slot': $(cat "$NESTVM_HOME/rx/vm.json")"; fi
expect "set --nic adds one" 0 "2 NIC(s)" -- set rx --nic switch=other,mac=02:00:00:00:00:07,dhcp-guard=off
expect "show: the NICs" 0 "nic 1: *02:00:00:00:00:07 switch other, mac-spoofing off, dhcp-guard off" -- show rx
expect "set --remove-nic" 0 "1 NIC(s)" -- set rx --remove-nic 02:00:00:00:00:07
if grep -q "\"mac\": \"$mac\"" "$NESTVM_HOME/rx/vm.json"; then ok "the first NIC kept its MAC"
else bad "MAC changed: $(cat "$NESTVM_HOME/rx/vm.json")"; fi
expect "start" 0 "started VM 'rx'" -- start rx
wait_console rx "role recv" 10 || bad "the managed receiver did not come up"
expect "set --nic while running" 1 "only while it is off" -- set rx --nic switch=lan
expect "save" 0 "saved VM 'rx'" -- save rx
expect "start restores" 0 "started VM 'rx'" -- start rx
sleep 0.5
# (the fake switch may see the new connection before the old one's end: two port lines)
if [ "$(swstat rx connections | awk '{ s += $1 } END { print s }')" = 2 ]; then
	ok "the restored VM's adapter joined the switch again"
else bad "switch connections of rx: '$(swstat rx connections)': $(cat "$STATS")"; fi
probe managed-send "role=send count=3000 size=600 echo=1" --nic switch=lan
wait $!
src=$?
if [ "$src" -eq 0 ] && result managed-send | grep -q PASS &&
	wait_console rx "test=net: PASS received 3000 frames intact and echoed them" 20; then
	ok "restored receiver: $(grep -a 'test=net: PASS' "$NESTVM_HOME/rx/console.log" | sed 's/.*PASS //')"
else
	bad "after restore: sender exit $src: $(result managed-send); receiver: $(grep -a 'probe: net\|test=net' "$NESTVM_HOME/rx/console.log" | tail -2)"
fi
# The adapter's counters through the API, while the probe lingers after its result.
nv show rx --json
if grep -q '"link": true' "$T/out" && python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
n = d["monitor"]["nics"][0]
sys.exit(not (n["rx"]["frames"] >= 3000 and n["tx"]["frames"] >= 3000 and n["resets"] == 0))
' "$T/out" 2>/dev/null; then
	ok "show --json: rx, link up, 3000 frames or more each way, no resets"
	expect "show: the adapter's counters" 0 "nic 0 link: *up, sent [0-9]*" -- show rx
elif [ "$(state_of rx)" = off ]; then
	echo "skip show-nics: the probe VM had stopped before show"
else
	bad "show --json has no adapter counters: $(head -c 600 "$T/out")"
fi
nv stop rx

# ---- live migration to another store, onto its own switch ----
mkdir -p "$B/.switches/lan" "$T/s"
chmod 700 "$B" "$B/.switches" "$B/.switches/lan" "$T/s"
"$SWITCH" "$B/.switches/lan" "$T/switchB.stats" 2>>"$T/switch.err" &
sw2_pid=$!
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$T/secret"
chmod 600 "$T/secret"
expect "new mv" 0 "created VM 'mv'" -- new mv --kernel "$PROBE" --memory 64M \
	--cmdline "test=net role=recv count=2000 echo=1" --nic switch=lan
expect "start mv" 0 "started VM 'mv'" -- start mv
wait_console mv "role recv" 10 || bad "mv did not come up"
: >"$T/recv.out"
NESTVM_HOME=$B timeout 60 "$NESTVM" receive mv --listen "unix:$T/s/m.sock" --secret-file "$T/secret" \
	--wait 30 >"$T/recv.out" 2>&1 </dev/null &
rpid=$!
for _i in $(seq 100); do grep -q "waiting for VM" "$T/recv.out" && break; sleep 0.05; done
nv migrate mv --to "unix:$T/s/m.sock" --secret-file "$T/secret"
mrc=$?
wait "$rpid"
rrc=$?
# The source's monitor leaves its switch as it exits, just after the migration.
for _i in $(seq 50); do [ "$(swstat mv up)" = 0 ] && break; sleep 0.1; done
b_up=$(awk '$4 == "mv" { for (i = 1; i < NF; i++) if ($i == "up") print $(i + 1) }' "$T/switchB.stats")
if [ "$mrc" -eq 0 ] && [ "$rrc" -eq 0 ] && [ "$b_up" = 1 ] && [ "$(swstat mv up)" = 0 ]; then
	ok "migrated: the adapter left the source's switch and joined the destination's"
else
	bad "migrate exit $mrc, receive exit $rrc; A's switch: $(cat "$STATS"); B's: $(cat "$T/switchB.stats"); $(cat "$T/recv.out")"
fi
NESTVM_HOME=$B probe migrated-send "role=send count=2000 size=800 echo=1" --nic switch=lan
wait $!
src=$?
i=0
until grep -q "test=net: \(PASS\|FAIL\)" "$B/mv/console.log" 2>/dev/null || [ $i -gt 200 ]; do
	sleep 0.1
	i=$((i + 1))
done
if [ "$src" -eq 0 ] && result migrated-send | grep -q PASS &&
	grep -q "test=net: PASS received 2000 frames intact and echoed them" "$B/mv/console.log"; then
	ok "migrated receiver: $(grep -a 'test=net: PASS' "$B/mv/console.log" | sed 's/.*PASS //')"
else
	bad "after migration: sender exit $src: $(result migrated-send); receiver: $(grep -a 'probe: net\|test=net' "$B/mv/console.log" | tail -2)"
fi
NESTVM_HOME=$B timeout 30 "$NESTVM" stop mv >/dev/null 2>&1

# ---- nestvm's own switch: private, started by the first adapter; the spoofing guard ----
if ! timeout 10 "$NESTVM" switch list >/dev/null 2>&1; then
	echo "skip real-switch: this nestvm has no 'switch' command"
	summary
	exit
fi
expect "switch new priv" 0 "priv" -- switch new priv --type private
# The switch drops what a full port cannot take (the fake one holds it back): lossy=1.
probe priv-recv "role=recv count=2000 echo=1 lossy=1" --nic switch=priv
rpid=$!
sleep 0.5
probe priv-send "role=send count=2000 size=1000 echo=1 lossy=1" --nic switch=priv
wait $!
src=$?
wait "$rpid"
rrc=$?
if [ "$src" -eq 0 ] && [ "$rrc" -eq 0 ] && result priv-send | grep -q PASS &&
	result priv-recv | grep -q PASS; then
	ok "private switch: $(result priv-send | sed 's/.*PASS //'); $(result priv-recv | sed 's/.*PASS //')"
else
	bad "private switch: sender exit $src: $(result priv-send); receiver exit $rrc: $(result priv-recv)"
	tail -3 "$T/priv-send.err" "$T/priv-recv.err" | sed 's/^/     | /'
fi
# Two senders of 10,000 frames from 02:99:99:99:99:99, one guarded; read while they linger.
probe guarded "role=send ready=0 spoof=1 count=10000 size=200 linger=4000" --nic switch=priv
gpid=$!
probe spoofer "role=send ready=0 spoof=1 count=10000 size=200 linger=4000" \
	--nic switch=priv,mac-spoofing=on
spid=$!
i=0
until [ "$(cat "$T/guarded.out" "$T/spoofer.out" 2>/dev/null | grep -c 'test=net: PASS')" = 2 ] ||
	[ $i -gt 200 ]; do
	sleep 0.1
	i=$((i + 1))
done
timeout 10 "$NESTVM" switch show priv --json >"$T/priv.json" 2>&1
wait "$gpid" "$spid"
counts=$(python3 -c '
import json, sys
ports = json.load(open(sys.argv[1]))["status"]["ports"]
for p in ports:
    c = p["counters"]
    print("%s %d %d" % ("on" if p["mac_spoofing"] else "off", c["drops"]["spoofed_mac"], c["frames_in"]))
' "$T/priv.json" 2>&1 | sort | tr '\n' ' ')
if [ "$counts" = "off 10000 0 on 0 10000 " ]; then
	ok "spoofing guard: 10000 of 10000 foreign-MAC frames dropped; with mac-spoofing=on 10000 of 10000 passed"
else
	bad "spoofing counters (guard, dropped, in): '$counts' $(result guarded) $(result spoofer)"
fi
nv switch stop priv --force

# ---- a switch another VM's monitor is still starting (its run lock taken,
# no ports socket yet): an adapter waits for it, and when that start comes to
# nothing (the lock freed, no socket), starts the switch itself
"$PEER" runlock "$NESTVM_HOME/.switches/priv/lock" 1500 >"$T/runlock.out" 2>&1 &
lpid=$!
i=0
until grep -q locked "$T/runlock.out" || [ $i -gt 50 ]; do sleep 0.1; i=$((i + 1)); done
t0=$(date +%s%N)
probe late "role=send ready=0 count=100 size=200" --nic switch=priv
wait $!
lrc=$?
ms=$((($(date +%s%N) - t0) / 1000000))
wait "$lpid"
if [ "$lrc" -eq 0 ] && result late | grep -q PASS && [ "$ms" -ge 1000 ]; then
	ok "a switch still starting elsewhere: the adapter waited, then joined it (VM done after $ms ms; $(result late | sed 's/.*PASS //'))"
else
	bad "a switch still starting elsewhere: exit $lrc after $ms ms: $(result late); $(grep -m1 'NIC 0' "$T/late.err")"
fi
nv switch stop priv --force

# ---- nestvm connect / disconnect: a running receiver moved to another switch
expect "switch new other" 0 "other" -- switch new other --type private
expect "new mover on priv" 0 "created" -- new mover --kernel "$PROBE" --memory 64M \
	--cmdline "test=net role=recv count=300" --nic switch=priv
expect "start mover" 0 "started" -- start mover
expect "connect: a running VM's NIC onto switch other" 0 "on switch 'other'" -- connect mover other
grep -q '"switch": "other"' "$NESTVM_HOME/mover/vm.json" && ok "vm.json follows: switch other" ||
	bad "vm.json: $(grep -A4 nics "$NESTVM_HOME/mover/vm.json")"
probe moved-sender "role=send count=300" --nic switch=other
wait $!
if wait_console mover "test=net: PASS received 300" 20; then
	ok "the moved VM received 300 frames from switch other"
else bad "moved VM: $(grep -a test=net "$NESTVM_HOME/mover/console.log")"; fi
expect "disconnect an off VM's NIC" 0 "on no switch" -- disconnect mover
expect "connect: no NIC 3" 1 "no NIC 3" -- connect mover other --nic 3
expect "connect: no such switch" 1 "no switch named 'nosuch'" -- connect mover nosuch
nv switch stop other --force

summary
