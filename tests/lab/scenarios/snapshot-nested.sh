# SPDX-License-Identifier: MIT
# lab-timeout: 300
# lab-budget: 340
#
# snapshot-nested[:SPEC] — save, restore and checkpoints of a guest
# hypervisor caught while its L2 runs. A managed VM (`nestvm new --nested
# on`) runs the probe as an L1 hypervisor whose L2 computes a long chain
# (test=svm l2work=ROUNDS: "round R/N" after each round, the chain
# checked by the L1 at the end, "l2work=N result=0x..."). While the L2 runs:
#
#   `nestvm save` (the VM must be 'saved', monitor.log must say "vCPU 0
#   saved in guest mode") then `nestvm start` in a new monitor ("restored
#   in guest mode"), and the L2 goes on: the console.logs of all the
#   monitors, put end to end, show every round once, in order. Until CYCLES
#   saves caught the L2 running: one in 8 or so lands while the L1 runs
#   between two L2 entries (4 of 6 once); that cycle is checked all the
#   same, but does not count (at most 4 x CYCLES cycles);
#
#   `nestvm checkpoint` (taken again, up to 6 times, until one catches the
#   L2 running), more rounds, `nestvm checkpoint restore`: the VM goes back
#   (its first round after the restore follows the checkpoint's moment,
#   below the rounds seen before the restore) and runs to the end.
#
# The L1 must then PASS (its own check of the whole chain), and the VM end
# with exit status 0. SPEC: words joined by '.', cN cycles (3), rN rounds
# (ROUNDS_DEFAULT), trace and mmutrace (trace-lib.sh: the lab KVM traced,
# the end of its trace shown when the L1 shuts down or a check fails; the
# L1's triple faults after a restore in guest mode, README "Snapshots"),
# norestore (the control for those: no save, no checkpoint, the same L1
# and L2 run from start to end), iN (after the rounds, N round trips of an
# L2 VMMCALL through the L1: test=svm iterations=N, 0 by default; each one
# the L1's CLGI, VMSAVE, VMLOAD, VMRUN, VMSAVE, VMLOAD, STGI, all emulated
# by the lab KVM, some 2000 a second against the rounds' 65 exits).
# Metrics: round_ms (one L2 round, L1 time), save_ms and
# restore_s (the slowest of the cycles), checkpoint_ms, cp_restore_s,
# guest_mode_saves (of the saves and checkpoints), cycles (caught in guest
# mode / done), total_s.

. /lab/lib.sh
. /lab/scenarios/trace-lib.sh

lab_need_probe

ROUNDS_DEFAULT=320
# Rounds kept for the checkpoint and the run to the end: the save cycles stop
# before they eat into these (a fast lab runs an L2 round in under 50 ms).
ROUNDS_RESERVE=100
cycles=3
rounds=$ROUNDS_DEFAULT
norestore=0 iterations=0
for w in $(echo "${1:-}" | tr '.' ' '); do
	case $w in
	c[0-9]*) cycles=${w#c} ;;
	r[0-9]*) rounds=${w#r} ;;
	norestore) norestore=1 cycles=0 ;;
	i[0-9]*) iterations=${w#i} ;;
	*) trace_word "$w" || { lab_fail "unknown word '$w' in '$1' (cN, rN, iN, norestore, trace, mmutrace)"; lab_finish; } ;;
	esac
done

export NESTVM_HOME=/tmp/nestvm-snap
NV=/lab/bin/nestvm
VM=sn
rm -rf $NESTVM_HOME
. /lab/scenarios/snapshot-lib.sh

fin() {
	$NV kill $VM >/dev/null 2>&1
	trace_finish
	lab_finish
}
trace_setup

$NV new $VM --kernel $probe --memory 64M --nested on \
	--cmdline "test=svm iterations=$iterations l2work=$rounds" >/dev/null || { lab_fail "nestvm new failed"; fin; }
lab_info "test=svm iterations=$iterations l2work=$rounds under a managed VM, --nested on, 64 MiB; $cycles save cycles"
t_start=$(lab_now_cs)
trace_start
trace_mark "start"
$NV start $VM >/dev/null || { lab_fail "nestvm start failed"; snap_show; fin; }
snap_wait_gt 0 60 || { lab_fail "no L2 round within 60 s"; snap_show; fin; }
t1=$(lab_now_cs)
r1=$(snap_last $con)
snap_wait_gt $((r1 + 1)) 60 || { lab_fail "the L2 did not get past round $((r1 + 1))"; snap_show; fin; }
round_ms=$(((($(lab_now_cs) - t1) * 10) / ($(snap_last $con) - r1)))
lab_info "an L2 round (16 x 1M xorshift64 steps and 5 exits) takes about $round_ms ms"

# Save cycles until $cycles of them caught the L2 running, 4 tries each (a
# clean-clone CI on an idle machine caught it in 2 of 6 saves, where the
# other runs of 2026-12 did in 60 of 69; the rounds left bound it too).
gm_saves=0 saves=0 save_ms_max=0 restore_cs_max=0 gm_cycles=0
c=1
while [ $gm_cycles -lt "$cycles" ] && [ $c -le $((4 * cycles)) ]; do
	# A round or so of running between two saves, ending at no fixed point.
	r=$(snap_last $con)
	[ $((rounds - r)) -ge $ROUNDS_RESERVE ] || break
	snap_wait_gt "$r" 60 || { lab_fail "cycle $c: the L2 made no progress (all $rounds rounds done? rN)"; snap_show; fin; }
	snap_pause
	saves=$((saves + 1))
	trace_mark "cycle $c: save after round $(snap_last $con)"
	snap_save_cycle "cycle $c" || fin
	trace_mark "cycle $c: restored (guest mode: $snap_gm)"
	[ "${snap_save_ms:-0}" -gt $save_ms_max ] && save_ms_max=$snap_save_ms
	[ $snap_restore_cs -gt $restore_cs_max ] && restore_cs_max=$snap_restore_cs
	if [ $snap_gm -eq 1 ]; then
		gm_saves=$((gm_saves + 1))
		gm_cycles=$((gm_cycles + 1))
		how="in guest mode"
	else
		how="while the L1 ran between two L2 entries (not counted)"
	fi
	snap_wait_gt 0 60 || { lab_fail "cycle $c: no L2 round after the restore"; snap_show; fin; }
	lab_info "cycle $c: saved in ${snap_save_ms:-?} ms after round $snap_saved_at, $how;" \
		"restored in $(lab_secs $snap_restore_cs) s, on to round $(snap_first $con)"
	c=$((c + 1))
done
done_cycles=$((c - 1))
[ $gm_cycles -eq "$cycles" ] ||
	{ lab_fail "only $gm_cycles of $done_cycles saves caught the L2 running, want $cycles" \
		"(at round $(snap_last $con) of $rounds)"; fin; }

# The checkpoint: taken while the L2 runs, then more rounds, then restored.
r=$(snap_last $con)
if [ $norestore -eq 1 ]; then
	lab_info "norestore: no save and no checkpoint; the L1 runs on from round $r"
	snap_back_to=$r snap_cp=none snap_cp_restore_cs=0
else
	[ $((rounds - r)) -ge 60 ] ||
		{ lab_fail "only $((rounds - r)) rounds left for the checkpoint (the cycles took more): raise rN"; fin; }
	trace_mark "checkpoint after round $r"
	snap_checkpoint_take cp 6 || fin
	saves=$((saves + snap_cp_tries))
	gm_saves=$((gm_saves + 1))
	trace_mark "checkpoint $snap_cp taken; restore after round $(snap_last $con)"
	snap_checkpoint_back 1 90 || fin
	trace_mark "checkpoint $snap_cp restored"
	snap_check_sequence $all "the rounds across the saves" || lab_fail "the rounds across the saves are not each once, in order"
	lab_info "checkpoint $snap_cp taken in ${snap_cp_ms:-?} ms between rounds $snap_cp_pre and $snap_cp_post;" \
		"restored in $(lab_secs $snap_cp_restore_cs) s after round $snap_back_from; on to round $snap_back_to"
fi

# Run to the end: the rest of the rounds, then the L1's check of the chain.
left=$((rounds - snap_back_to + 1))
# A round trip takes 0.45 to 1 ms in the lab.
limit=$((left * round_ms * 3 / 1000 + rounds * round_ms * 2 / 1000 + iterations * 3 / 1000 + 60))
lab_info "waiting for the $left rounds left and the L1's check (at most $limit s)"
end=$(($(lab_now_cs) + limit * 100))
while [ "$(snap_state)" = running ] && [ "$(lab_now_cs)" -lt $end ]; do
	sleep 1
done
[ "$(snap_state)" = off ] || { lab_fail "the VM is '$(snap_state)' after $limit s, want off"; snap_show; fin; }
total_s=$(lab_secs $(($(lab_now_cs) - t_start)))
tr -d '\r' <$con | grep -E 'l2work(=|: the)|test=svm' | sed 's/^/  console| /'
snap_check_sequence $con "after the checkpoint's restore" ||
	lab_fail "the rounds after the checkpoint's restore are not each once, in order"
[ "$(snap_last $con)" = "$rounds" ] || lab_fail "the last round is $(snap_last $con), want $rounds"
result=$(tr -d '\r' <$con | sed -n "s/.*l2work=$rounds result=\(0x[0-9a-f]*\).*/\1/p")
tr -d '\r' <$con | grep -q 'test=svm: PASS' ||
	lab_fail "the L1 did not PASS: $(tr -d '\r' <$con | grep 'test=svm' | tail -n 1)"
[ -n "$result" ] || lab_fail "no 'l2work=$rounds result=' line"
$NV show $VM --json | grep -q '"status": *0' ||
	lab_fail "the VM did not end with exit status 0: $($NV show $VM | grep -i 'last exit')"
lab_info "$done_cycles save/restore cycles ($gm_cycles in guest mode) and checkpoint $snap_cp passed;" \
	"$gm_saves of $saves saves in guest mode; result $result; $total_s s"
lab_metrics "round_ms=$round_ms" "save_ms=$save_ms_max" "restore_s=$(lab_secs $restore_cs_max)" \
	"checkpoint_ms=${snap_cp_ms:-0}" "cp_restore_s=$(lab_secs $snap_cp_restore_cs)" \
	"guest_mode_saves=$gm_saves/$saves" "cycles=$gm_cycles/$done_cycles" "total_s=$total_s"
[ $norestore -eq 1 ] || $NV checkpoint remove $VM $snap_cp >/dev/null || lab_fail "nestvm checkpoint remove failed"
$NV remove $VM >/dev/null || lab_fail "nestvm remove failed"
trace_finish
lab_finish
