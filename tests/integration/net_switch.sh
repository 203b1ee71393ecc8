#!/bin/sh
# Probe VMs (test=net, guest/probe/test_net.c) on nestvm's own switches, on
# this host's /dev/kvm (tests/integration/net.sh does the device against a
# fake switch; switch.sh the switch against fake adapters):
#  - a private switch: 2000 UDP frames from one VM to another, each echoed
#    back; both guests check every frame, the switch counts them;
#  - the MAC spoofing guard: 10,000 frames from a foreign source MAC, none
#    reaches the other VM, and the switch's totals count every one dropped;
#  - the same sender with mac-spoofing=on on its adapter: they all arrive.
# Prints "N passed, N failed" last; exit 77 without /dev/kvm.
NAME_OF_TEST=net_switch
. "$(dirname "$0")/../lib/manager.sh"

manager_cleanup_extra() {
	for s in lan lan2; do timeout 10 "$NESTVM" switch stop --force "$s" >/dev/null 2>&1; done
}

# vm NAME CMDLINE NIC: a `run` probe VM on a switch, in the background.
vm() {
	timeout 60 "$NESTVM" run --kernel "$PROBE" --memory 64M --cmdline "test=net $2" --nic "$3" \
		</dev/null >"$T/$1.out" 2>"$T/$1.err" &
}
result() { grep -a "^probe: test=net: " "$T/$1.out" | tail -1; }

# total SWITCH KEY: a counter of the switch's totals (switch show --json).
total() {
	"$NESTVM" switch show "$1" --json 2>/dev/null | tr -d ' \n' |
		sed -n "s/.*\"totals\":{[^}]*\"$2\":\([0-9]*\).*/\1/p"
}

nv switch new lan --type private
[ $? -eq 0 ] && ok "switch new lan (private)" || bad "switch new lan"

# ---- two VMs, 2000 frames each way
vm recv "role=recv count=2000 echo=1" switch=lan
r=$!
sleep 0.5
vm send "role=send count=2000 echo=1" switch=lan
s=$!
wait $s
src=$?
wait $r
rrc=$?
case "$(result recv)/$(result send)" in
*PASS*received\ 2000*/*PASS*sent\ 2000*) ok "2000 frames through switch lan and back: $(result send)" ;;
*) bad "private switch: send exit $src '$(result send)', recv exit $rrc '$(result recv)'" ;;
esac
fin=$(total lan frames_in)
[ "${fin:-0}" -ge 4000 ] && ok "switch totals: $fin frames in" || bad "switch totals: frames_in '${fin}'"

# ---- the spoofing guard: 10,000 frames from 02:99:99:99:99:99
before=$(total lan spoofed_mac)
vm recv2 "role=recv count=1" switch=lan
r=$!
sleep 0.5
vm spoof "role=send count=10000 spoof=1" switch=lan
wait $!
src=$?
sleep 1
kill $r 2>/dev/null
wait $r 2>/dev/null
after=$(total lan spoofed_mac)
dropped=$((${after:-0} - ${before:-0}))
if [ $src -eq 0 ] && [ $dropped -eq 10000 ] && ! grep -aq "PASS" "$T/recv2.out"; then
	ok "spoof guard: 10000 of 10000 spoofed frames dropped and counted, none arrived"
else
	bad "spoof guard: sender exit $src '$(result spoof)', dropped $dropped, receiver '$(result recv2)'"
fi

# ---- mac-spoofing=on: the same frames arrive
vm recv3 "role=recv count=500" switch=lan
r=$!
sleep 0.5
vm spoof2 "role=send count=500 spoof=1" switch=lan,mac-spoofing=on
wait $!
wait $r
rrc=$?
[ $rrc -eq 0 ] && ok "mac-spoofing=on: 500 spoofed frames arrive: $(result recv3)" ||
	bad "mac-spoofing=on: receiver exit $rrc '$(result recv3)', sender '$(result spoof2)'"

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
