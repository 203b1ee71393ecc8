#!/bin/sh
# Save and restore of the virtio devices with a guest driving them, on this
# host's /dev/kvm: a managed VM running the probe's test=memgen disk=on (a
# virtio-blk write stream whose every request must complete exactly once,
# guest/probe/memgen_disk.c) is saved and started again from its saved
# state SNAPSHOT_CYCLES times while it writes; each restore is a new
# monitor. The stream must still see each write complete once, read every
# block back, and end with memgen-expect's result line.
# Prints "N passed, N failed" last; exit 77 without /dev/kvm.
NAME_OF_TEST=virtio_snapshot
. "$(dirname "$0")/../lib/manager.sh"
CYCLES=${SNAPSHOT_CYCLES:-8}
PASSES=6000

if ! grep -q "disk=on" guest/probe/*.c 2>/dev/null; then
	echo "skip: the probe has no test=memgen disk=on"
	exit 77
fi
dd if=/dev/zero of="$T/d0.img" bs=1M count=0 seek=16 2>/dev/null
expect "new" 0 "created VM 'mg'" -- new mg --kernel "$PROBE" \
	--cmdline "test=memgen passes=$PASSES disk=on" --cpus 2 --memory 64M --disk "$T/d0.img"
expect "start" 0 "started VM 'mg'" -- start mg
wait_console mg "memgen: pass" 30 || bad "memgen did not start"
good=0
for i in $(seq "$CYCLES"); do
	sleep 0.3
	grep -q "test=memgen: " "$NESTVM_HOME/mg/console.log" && break
	nv save mg || { bad "cycle $i: save"; break; }
	nv start mg || { bad "cycle $i: start"; break; }
	good=$i
done
[ "$good" -ge 3 ] && ok "$good save/start cycles while the guest writes" ||
	bad "only $good save/start cycles before the stream ended"
restores=$(grep -c "restored from the saved state" "$NESTVM_HOME/mg/monitor.log")
[ "$restores" -eq "$good" ] && ok "monitor.log records $restores restores" ||
	bad "monitor.log records $restores restores, not $good"
wait_console mg "test=memgen: PASS\|test=memgen: FAIL" 120 || bad "no result from memgen"
log="$NESTVM_HOME/mg/console.log"
grep -a "memgen: disk:\|test=memgen: PASS\|test=memgen: FAIL" "$log" | sed 's/^/     | /'
grep -aq "test=memgen: PASS .*disk writes each completed once" "$log" &&
	ok "every disk write completed exactly once across the restores" ||
	bad "memgen: $(grep -a 'test=memgen: \(PASS\|FAIL\)\|memgen: disk' "$log" | tail -2)"
want="probe: test=memgen: $(build/guest/memgen-expect "$PASSES" 2)"
got=$(grep -a "^probe: test=memgen: result=" "$log" | tail -1)
[ "$got" = "$want" ] && ok "the result line is memgen-expect's" ||
	bad "result \"$got\", want \"$want\""
if grep -a "virtio" "$NESTVM_HOME/mg/monitor.log" | grep -aqi "error\|cannot"; then
	bad "virtio errors in monitor.log: $(grep -a virtio "$NESTVM_HOME/mg/monitor.log" | grep -ai 'error\|cannot' | head -3)"
else ok "no virtio error in monitor.log"; fi
nv kill mg
summary
