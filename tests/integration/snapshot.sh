#!/bin/sh
# Save, restore and checkpoints of managed VMs on this host's /dev/kvm, with
# the probe guest: save/start cycles each restored in a new monitor (the
# guest's console still answers, its memory and vCPU state intact: with
# test=memgen the final result equals an uninterrupted run's), checkpoints
# of a running and of an off VM with their disks, corrupt and foreign saved
# states refused with a reason while the state is kept, a monitor killed
# in the middle of a save, a full disk during a save.
# Prints "N passed, N failed" last; exit 77 without /dev/kvm.
NAME_OF_TEST=snapshot
. "$(dirname "$0")/../lib/manager.sh"
CYCLES=${SNAPSHOT_CYCLES:-100}

# echo_check VM WORD: the guest (test=idle echo=on) echoes WORD back.
echo_check() {
	(printf '%s\n' "$2"; sleep 1) | timeout 5 "$NESTVM" console "$1" >"$T/echo" 2>&1
	grep -q "probe: echo: $2" "$T/echo"
}

# ---- save and start, the console answering across each ----
expect "new" 0 "created VM 'idle'" -- new idle --kernel "$PROBE" --cmdline "test=idle echo=on" \
	--cpus 2 --memory 64M
expect "save: not running" 1 "is off, not running" -- save idle
expect "start" 0 "started VM 'idle'" -- start idle
wait_console idle "test=idle: up" || bad "the guest did not come up"
expect "save" 0 "saved VM 'idle' in [0-9]* ms" -- save idle
check_state "after save" idle saved
expect "list shows saved" 0 "^idle *saved" -- list
if [ -f "$NESTVM_HOME/idle/saved/state" ] && [ -f "$NESTVM_HOME/idle/saved/memory" ] &&
	[ -f "$NESTVM_HOME/idle/saved/vm.json" ]; then ok "saved/ holds state, memory, vm.json"
else bad "saved/: $(ls "$NESTVM_HOME/idle/saved" 2>&1)"; fi
mem_alloc=$(du -k "$NESTVM_HOME/idle/saved/memory" | cut -f1)
if [ "$mem_alloc" -lt 8192 ]; then ok "memory file is sparse (${mem_alloc} KiB of 64 MiB)"
else bad "memory file takes ${mem_alloc} KiB of 64 MiB"; fi
good=0
for i in 1 2 3 4 5; do
	nv start idle || { bad "cycle $i: start: $(cat "$T/out")"; break; }
	echo_check idle "cycle$i" || { bad "cycle $i: no echo after restore"; break; }
	nv save idle || { bad "cycle $i: save"; break; }
	good=$i
done
[ "$good" -eq 5 ] && ok "5 save/start cycles, each guest answering after restore"
grep -q "restored from the saved state" "$NESTVM_HOME/idle/monitor.log" &&
	ok "monitor.log records the restore" || bad "no restore line in monitor.log"

# ---- a paused VM saves too; start --discard-saved boots afresh ----
nv start idle
nv pause idle
expect "save a paused VM" 0 "saved VM 'idle'" -- save idle
expect "start --discard-saved" 0 "started VM 'idle'" -- start --discard-saved idle
wait_console idle "test=idle: up" && ok "--discard-saved boots the guest afresh" ||
	bad "no fresh boot after --discard-saved"
nv save idle

# ---- a saved VM keeps its machine: set refuses what the state depends on ----
expect "set --cpus while saved" 1 "is saved: --cpus can be changed only after" -- set idle --cpus 4
expect "set --cmdline while saved" 0 "VM 'idle'" -- set idle --cmdline "test=idle echo=on"

# ---- corrupt and foreign saved states: refused with a reason, kept ----
cp -a "$NESTVM_HOME/idle/saved" "$T/good-saved"
restore_good() { rm -rf "$NESTVM_HOME/idle/saved"; cp -a "$T/good-saved" "$NESTVM_HOME/idle/saved"; }
# corrupt_case NAME PATTERN COMMAND...: damage saved/, then start must fail naming it.
corrupt_case() {
	name=$1 pattern=$2
	shift 2
	restore_good
	(cd "$NESTVM_HOME/idle/saved" && eval "$*")
	nv start idle
	rc=$?
	sleep 0.2
	if [ "$rc" -ne 0 ] && grep -q -- "$pattern" "$T/out" "$NESTVM_HOME/idle/monitor.log" &&
		[ "$(state_of idle)" = saved ]; then
		ok "refused: $name"
	else
		bad "$name: start exit $rc, state $(state_of idle), want a failure matching '$pattern'"
		tail -3 "$NESTVM_HOME/idle/monitor.log" | sed 's/^/     | /'
	fi
}
size=$(stat -c %s "$T/good-saved/state")
corrupt_case "a flipped byte" "checksum mismatch" \
	"printf 'X' | dd of=state bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null"
corrupt_case "a truncated state" "truncated" "truncate -s $((size - 100)) state"
corrupt_case "not a snapshot" "not a nestvm snapshot" "printf 'garbage-garbage-garbage-garbage-garbage-garbage' >state"
corrupt_case "an empty state" "truncated" ": >state"
corrupt_case "a short memory file" "memory file holds" "truncate -s 1M memory"
corrupt_case "a missing memory file" "memory file" "rm memory"
corrupt_case "state through a symlink" "state file" "mv state s2 && ln -s s2 state"
corrupt_case "another machine's definition" "saved with 1 vCPUs\\|saved with 2 vCPUs" \
	"sed -i 's/\"cpus\": 2/\"cpus\": 1/' vm.json"
restore_good
expect "the good state still restores" 0 "started VM 'idle'" -- start idle
echo_check idle after-corruption && ok "guest answers after the refused ones" ||
	bad "no echo after restoring the good state"

# ---- progress lines in the API ----
printf '{"cmd":"save","progress":true,"id":1}\n' | timeout 20 "$NESTVM" api idle >"$T/out" 2>&1
if grep -q '"progress"' "$T/out" && grep -q '"phase": *"memory"' "$T/out" &&
	grep -q '"state": *"saved"' "$T/out"; then ok "save with progress lines over the API"
else bad "api save with progress:"; fi
wait_state idle saved 10 || bad "api save: not saved"

# ---- checkpoints: running and off, disks included ----
dd if=/dev/zero of="$T/disk.img" bs=1M count=0 seek=16 2>/dev/null
printf 'ORIGINAL' | dd of="$T/disk.img" conv=notrunc 2>/dev/null
expect "new with a disk" 0 "created VM 'cp'" -- new cp --kernel "$PROBE" \
	--cmdline "test=idle echo=on" --memory 64M --disk "$T/disk.img"
expect "checkpoint of an off VM" 0 "checkpoint 'off1' of VM 'cp' taken (disks" -- checkpoint cp off1
nv start cp
wait_console cp "test=idle: up" || bad "cp did not come up"
expect "checkpoint a running VM" 0 "checkpoint 'run1' of VM 'cp' taken in [0-9]* ms (running" -- \
	checkpoint cp run1
check_state "runs on after a checkpoint" cp running
echo_check cp after-checkpoint && ok "guest answers after a checkpoint" || bad "no echo after checkpoint"
expect "checkpoint: the name is taken" 1 "already has a checkpoint 'run1'" -- checkpoint cp run1
expect "checkpoint: a bad name" 2 "invalid checkpoint name" -- checkpoint cp ../x
expect "checkpoint with a generated name" 0 "checkpoint '[0-9]*-[0-9]*' of VM 'cp'" -- checkpoint cp
expect "checkpoint list" 0 "^run1 .* running" -- checkpoint list cp
grep -q "^off1 .* off" "$T/out" && ok "list shows the off checkpoint" || bad "off1 not listed"
expect "checkpoint list --json" 0 '"kind": "running"' -- checkpoint list cp --json
printf 'CHANGED!' | dd of="$T/disk.img" conv=notrunc 2>/dev/null
expect "restore a running checkpoint" 0 "restored to checkpoint 'run1': saved" -- \
	checkpoint restore cp run1
[ "$(head -c 8 "$T/disk.img")" = ORIGINAL ] && ok "the disk is back as it was" ||
	bad "disk holds '$(head -c 8 "$T/disk.img")'"
check_state "restarted from the checkpoint" cp running
echo_check cp after-restore && ok "guest answers after the restore" || bad "no echo after restore"
expect "restore an off checkpoint" 0 "restored to checkpoint 'off1'" -- checkpoint restore cp off1
check_state "an off checkpoint leaves it off" cp off
expect "checkpoint remove" 0 "checkpoint 'off1' of VM 'cp' removed" -- checkpoint remove cp off1
expect "checkpoint remove: no such" 1 "has no checkpoint 'off1'" -- checkpoint remove cp off1
expect "checkpoint restore: no such" 1 "has no checkpoint 'nope'" -- checkpoint restore cp nope

# ---- memgen: CYCLES (100) save/restore cycles in the middle of its run ----
# Every page of its RAM holds a generation marker checked before each pass,
# its vCPUs compute a chain: a page or register lost in any of the cycles
# fails the guest or changes its result, which must equal memgen-expect's.
# memgen_cycles VM PASSES CYCLES CMDLINE-EXTRA [NEW-ARGS]: the cycles done in $cycles_done.
# Each restore starts paused and runs the guest for about 30 ms before the
# next save, so the guest's own progress per cycle is small and bounded
# whatever the host's speed: PASSES outlasts CYCLES cycles, then finishes.
memgen_cycles() {
	cycles_done=0
	nv new "$1" --kernel "$PROBE" --cmdline "test=memgen passes=$2 $4" --cpus 2 --memory 32M \
		${5:-} || { bad "new $1"; return; }
	nv start "$1" || { bad "start $1"; return; }
	while [ "$cycles_done" -lt "$3" ]; do
		sleep 0.03
		nv save "$1" || break
		nv start --paused "$1" || { bad "$1: start after save $((cycles_done + 1)): $(cat "$T/out")"; break; }
		nv resume "$1" || { bad "$1: resume after restore $((cycles_done + 1))"; break; }
		cycles_done=$((cycles_done + 1))
	done
	wait_console "$1" "test=memgen: \(PASS\|FAIL\)" 120 || bad "$1: memgen did not finish"
}
want=$(build/guest/memgen-expect 30000 2)
memgen_cycles mg 30000 "$CYCLES" ""
got=$(grep -o "result=0x[0-9a-f]* passes=[0-9]*" "$NESTVM_HOME/mg/console.log" | head -1)
if [ "$cycles_done" -eq "$CYCLES" ] && [ "$got" = "$want" ] &&
	grep -q "test=memgen: PASS" "$NESTVM_HOME/mg/console.log"; then
	ok "memgen: $CYCLES save/restore cycles, each in a new monitor: no page lost, $got as uninterrupted"
else
	bad "memgen: $cycles_done of $CYCLES cycles, result '$got', want '$want'"
	grep "FAIL" "$NESTVM_HOME/mg/console.log" | head -3 | sed 's/^/     | /'
fi
# The same with virtio-blk writes in flight: each completes exactly once.
dd if=/dev/zero of="$T/mg.img" bs=1M count=0 seek=64 2>/dev/null
memgen_cycles mgd 10000 20 "disk=on" "--disk $T/mg.img"
if [ "$cycles_done" -eq 20 ] && grep -q "test=memgen: PASS" "$NESTVM_HOME/mgd/console.log"; then
	ok "memgen disk=on: 20 cycles with writes in flight, each completed exactly once"
else
	bad "memgen disk=on: $cycles_done of 20 cycles; $(grep -m1 "FAIL\|PASS" "$NESTVM_HOME/mgd/console.log")"
fi

# ---- run --restore: a foreground VM from a checkpoint ----
nv new fg --kernel "$PROBE" --cmdline "test=memgen passes=6000" --cpus 2 --memory 64M
nv start fg
sleep 0.3
nv checkpoint fg mid
nv kill fg
timeout 60 "$NESTVM" run --restore "$NESTVM_HOME/fg/checkpoints/mid" --console stdio >"$T/out" 2>&1
rc=$?
want=$(build/guest/memgen-expect 6000 2)
if [ "$rc" -eq 0 ] && grep -q "$want" "$T/out" && ! grep -q "probe: boot" "$T/out"; then
	ok "run --restore carries on from a checkpoint: $want"
else bad "run --restore: exit $rc, want '$want' and no restart from pass 1"; fi
expect "run --restore with definition options" 2 "give no definition options" -- \
	run --restore "$NESTVM_HOME/fg/checkpoints/mid" --cpus 3
expect "run --restore of no snapshot" 1 "no definition" -- run --restore "$T"

# ---- a full disk during a save: an error, the VM runs on, nothing half-written ----
# The store on a 40 MiB tmpfs in a mount namespace of its own (the monitor
# that `start` spawns lives there too); the guest dirties all its 64 MiB.
# Exit codes of the inner script: 0 ok, 77 no tmpfs, else the failed step.
cat >"$T/full.sh" <<'EOS'
set -u
mount -t tmpfs -o size=40M,mode=0700 tmpfs "$1" || exit 77
export NESTVM_HOME="$1/home"
# The monitor lives in this namespace only: it goes when this script does.
trap 'timeout 10 "$NESTVM" kill full >/dev/null 2>&1' EXIT
# console_has TEXT SECS: TEXT shows on full's console within SECS (manager.sh's
# wait_console, which this script, run apart under unshare, does not have).
console_has() {
	i=0
	until grep -q -- "$1" "$NESTVM_HOME/full/console.log" 2>/dev/null; do
		i=$((i + 1))
		[ "$i" -gt $(($2 * 10)) ] && return 1
		sleep 0.1
	done
}
"$NESTVM" new full --kernel "$PROBE" --cmdline "test=memgen passes=16000" --memory 64M \
	--cpus 2 >"$2" 2>&1 || exit 1
"$NESTVM" checkpoint full off1 >>"$2" 2>&1 || exit 2
"$NESTVM" start full >>"$2" 2>&1 || exit 3
# Not before memgen's first progress line: its passes have then written all
# of its RAM (a fixed second was not always enough on a loaded host, and the
# save then fitted).
console_has "probe: memgen: pass " 30 || exit 10
"$NESTVM" save full >>"$2" 2>&1 && exit 4
grep -q "No space left on device" "$2" || exit 5
"$NESTVM" show full 2>&1 | grep -q "^state: *running" || exit 6
[ ! -e "$NESTVM_HOME/full/saved" ] && [ ! -e "$NESTVM_HOME/full/.snap-tmp" ] || exit 7
[ -f "$NESTVM_HOME/full/checkpoints/off1/vm.json" ] || exit 8
console_has "test=memgen: PASS" 60 || exit 9
exit 0
EOS
mkdir -p "$T/small"
if unshare -m true 2>/dev/null; then
	NESTVM=$NESTVM PROBE=$PROBE unshare -m sh "$T/full.sh" "$T/small" "$T/full.out"
	rc=$?
	case $rc in
	0) ok "full disk during a save: ENOSPC, the VM ran on to PASS, no saved state, checkpoint kept" ;;
	77) echo "skip full disk: cannot mount a tmpfs here" ;;
	*) bad "full disk during a save: step $rc failed"; sed 's/^/     | /' "$T/full.out" ;;
	esac
else
	echo "skip full disk: no mount namespaces here (unshare -m)"
fi

# ---- a monitor killed in the middle of a save ----
# A guest that dirties all its RAM makes the save long enough to be cut.
if true; then
	expect "new memgen" 0 "created VM 'big'" -- new big --kernel "$PROBE" \
		--cmdline "test=memgen passes=1000000" --memory 256M
	nv start big
	wait_console big "memgen" 20 || bad "memgen did not start"
	sleep 2
	nv checkpoint big before
	pid=$(sed -n 's/.*"pid": *\([0-9]*\).*/\1/p' "$NESTVM_HOME/big/runtime.json")
	timeout 60 "$NESTVM" save big >"$T/out" 2>&1 &
	i=0
	while [ ! -d "$NESTVM_HOME/big/.snap-tmp" ] && [ "$i" -lt 2000 ]; do i=$((i + 1)); done
	kill -9 "$pid" 2>/dev/null
	wait
	if [ ! -d "$NESTVM_HOME/big/saved" ] && [ -f "$NESTVM_HOME/big/checkpoints/before/state" ]; then
		ok "SIGKILL during a save: no saved state, the checkpoint intact"
	else bad "after SIGKILL: $(ls "$NESTVM_HOME/big" "$NESTVM_HOME/big/checkpoints" 2>&1 | tr '\n' ' ')"; fi
	expect "startable after the kill" 0 "started VM 'big'" -- start big
	nv kill big
	expect "the checkpoint restores after the kill" 0 "restored to checkpoint 'before'" -- \
		checkpoint restore big before
	nv start big
	check_state "running from the checkpoint" big running
	nv kill big
fi

summary
