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

probe_has() { grep -q "$1" guest/probe/*.c 2>/dev/null; }

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
for i in 1 2 3 4 5 6 7 8 9 10; do
	nv start idle || { bad "cycle $i: start: $(cat "$T/out")"; break; }
	echo_check idle "cycle$i" || { bad "cycle $i: no echo after restore"; break; }
	nv save idle || { bad "cycle $i: save"; break; }
	good=$i
done
[ "$good" -eq 10 ] && ok "10 save/start cycles, each guest answering after restore"
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

# ---- a monitor killed in the middle of a save ----
# A guest that dirties all its RAM makes the save long enough to be cut.
if probe_has "test=memgen"; then
	expect "new memgen" 0 "created VM 'big'" -- new big --kernel "$PROBE" \
		--cmdline "test=memgen passes=1000000" --memory 1024M
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
else
	echo "note: probe has no test=memgen: the SIGKILL case is not run"
fi

summary
