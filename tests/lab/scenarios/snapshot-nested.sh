# SPDX-License-Identifier: MIT
# lab-timeout: 300
# lab-budget: 340
#
# snapshot-nested[:SPEC] — save, restore and checkpoints of a guest
# hypervisor caught while its L2 runs. A managed VM (`nestvm new --nested
# on`) runs the probe as an L1 hypervisor whose L2 computes a long chain
# (test=svm l2work=ROUNDS: "l2work round R/N" after each round, the chain
# checked by the L1 at the end, "l2work=N result=0x..."). While the L2 runs:
#
#   `nestvm save` (the VM must be 'saved', monitor.log must say "vCPU 0
#   saved in guest mode") then `nestvm start` in a new monitor ("restored
#   in guest mode"), and the L2 goes on: the console.logs of all the
#   monitors, put end to end, show every round once, in order. Until CYCLES
#   saves caught the L2 running: one in 20 or so lands while the L1 runs
#   between two L2 entries; that cycle is checked all the same, but does not
#   count (at most 2 x CYCLES cycles);
#
#   `nestvm checkpoint` (taken again, up to 3 times, until one catches the
#   L2 running), more rounds, `nestvm checkpoint restore`: the VM goes back
#   (its first round after the restore follows the checkpoint's moment,
#   below the rounds seen before the restore) and runs to the end.
#
# The L1 must then PASS (its own check of the whole chain), and the VM end
# with exit status 0. SPEC: words joined by '.', cN cycles (5), rN rounds
# (ROUNDS_DEFAULT). Metrics: round_ms (one L2 round, L1 time), save_ms and
# restore_s (the slowest of the cycles), checkpoint_ms, cp_restore_s,
# guest_mode_saves (of the saves and checkpoints), cycles (caught in guest
# mode / done), total_s.

. /lab/lib.sh

lab_need_nestvm
probe=/lab/guest/probe.elf
[ -r $probe ] || lab_skip "no probe guest in the lab (make guests)"

ROUNDS_DEFAULT=200
cycles=5
rounds=$ROUNDS_DEFAULT
for w in $(echo "${1:-}" | tr '.' ' '); do
	case $w in
	c[0-9]*) cycles=${w#c} ;;
	r[0-9]*) rounds=${w#r} ;;
	*) lab_fail "unknown word '$w' in '$1' (cN, rN)"; lab_finish ;;
	esac
done

export NESTVM_HOME=/tmp/nestvm-snap
NV=/lab/bin/nestvm
VM=sn
con=$NESTVM_HOME/$VM/console.log
mon=$NESTVM_HOME/$VM/monitor.log
all=/tmp/sn-all.log # the console.logs of the monitors, end to end
rm -rf $NESTVM_HOME $all

# The rounds "round R/N" in file $1, one a line. A line cut by a save is
# completed in the next console.log; the pattern then still finds its number.
rounds_in() {
	tr -d '\r' <"$1" 2>/dev/null | sed -n 's/.*round \([0-9][0-9]*\)\/[0-9].*/\1/p'
}
last_round() {
	_r=$(rounds_in "$1" | tail -n 1)
	echo "${_r:-0}"
}
first_round() {
	_r=$(rounds_in "$1" | head -n 1)
	echo "${_r:-0}"
}
vm_state() {
	$NV list 2>/dev/null | awk -v n=$VM '$1 == n { print $2 }'
}
# wait_round_gt R SECONDS: until console.log shows a round above R; 1 if
# the time ran out or the VM stopped running.
wait_round_gt() {
	_end=$(($(lab_now_cs) + $2 * 100))
	while [ "$(lab_now_cs)" -lt $_end ]; do
		[ "$(last_round $con)" -gt "$1" ] && return 0
		[ "$(vm_state)" = running ] || return 1
		sleep 0.5
	done
	return 1
}
# Lines of monitor.log after line $1.
mon_since() {
	tail -n +$(($1 + 1)) $mon
}
mon_lines() {
	wc -l <$mon
}
# Shows what went wrong: the end of the console and of monitor.log.
show_vm() {
	tail -n 5 $con 2>/dev/null | tr -d '\r' | sed 's/^/  console| /'
	tail -n 12 $mon 2>/dev/null | sed 's/^/  monitor| /'
}
# check_sequence FILE FIRST: the rounds in FILE are FIRST, FIRST + 1, ...
# with none missing or repeated; says where not.
check_sequence() {
	rounds_in "$1" | awk -v want="$2" -v what="$3" '
		$1 != want { printf "%s: round %d where %d was due\n", what, $1, want; bad = 1; exit }
		{ want++ }
		END { exit bad }'
}
fin() {
	$NV kill $VM >/dev/null 2>&1
	lab_finish
}

$NV new $VM --kernel $probe --memory 64M --nested on \
	--cmdline "test=svm iterations=0 l2work=$rounds" >/dev/null || { lab_fail "nestvm new failed"; fin; }
lab_info "test=svm iterations=0 l2work=$rounds under a managed VM, --nested on, 64 MiB; $cycles save cycles"
t_start=$(lab_now_cs)
$NV start $VM >/dev/null || { lab_fail "nestvm start failed"; show_vm; fin; }
wait_round_gt 0 60 || { lab_fail "no L2 round within 60 s"; show_vm; fin; }
t1=$(lab_now_cs)
r1=$(last_round $con)
wait_round_gt $((r1 + 1)) 60 || { lab_fail "the L2 did not get past round $((r1 + 1))"; show_vm; fin; }
round_ms=$(((($(lab_now_cs) - t1) * 10) / ($(last_round $con) - r1)))
lab_info "an L2 round (16 x 1M xorshift64 steps and 5 exits) takes about $round_ms ms"

gm_saves=0 saves=0 save_ms_max=0 restore_cs_max=0 gm_cycles=0
c=1
while [ $gm_cycles -lt "$cycles" ] && [ $c -le $((2 * cycles)) ]; do
	# A round or so of running between two saves, ending at no fixed point.
	r=$(last_round $con)
	wait_round_gt "$r" 60 || { lab_fail "cycle $c: the L2 made no progress"; show_vm; break; }
	sleep "0.$(($(lab_now_cs) % 10))"
	m0=$(mon_lines)
	out=$($NV save $VM 2>&1)
	rc=$?
	echo "$out" | sed "s/^/  save $c| /"
	saves=$((saves + 1))
	[ $rc -eq 0 ] || { lab_fail "cycle $c: nestvm save exited $rc"; show_vm; break; }
	st=$(vm_state)
	[ "$st" = saved ] || { lab_fail "cycle $c: after save the VM is '$st', want saved"; show_vm; break; }
	ms=$(echo "$out" | sed -n 's/.* in \([0-9]*\) ms.*/\1/p')
	[ "${ms:-0}" -gt $save_ms_max ] && save_ms_max=$ms
	cat $con >>$all
	s_round=$(last_round $all)
	if mon_since "$m0" | grep -q "vCPU 0 saved in guest mode"; then
		gm=1
		gm_saves=$((gm_saves + 1))
		gm_cycles=$((gm_cycles + 1))
	else
		gm=0
		lab_info "cycle $c: saved while the L1 ran (between two L2 entries), not in guest mode"
	fi
	m0=$(mon_lines)
	t0=$(lab_now_cs)
	$NV start $VM >/tmp/sn-start.out 2>&1
	rc=$?
	cs=$(($(lab_now_cs) - t0))
	[ $cs -gt $restore_cs_max ] && restore_cs_max=$cs
	[ $rc -eq 0 ] || { lab_fail "cycle $c: nestvm start of the saved VM exited $rc"; cat /tmp/sn-start.out; show_vm; break; }
	mon_since "$m0" | grep -q "restored from the saved state" ||
		lab_fail "cycle $c: monitor.log does not say 'restored from the saved state'"
	if [ $gm -eq 1 ] && ! mon_since "$m0" | grep -q "vCPU 0 restored in guest mode"; then
		lab_fail "cycle $c: saved in guest mode, but not restored in guest mode"
	fi
	wait_round_gt 0 60 || { lab_fail "cycle $c: no L2 round after the restore"; show_vm; break; }
	lab_info "cycle $c: saved in ${ms:-?} ms after round $s_round$([ $gm -eq 1 ] && echo ", in guest mode"), restored in $(lab_secs $cs) s, on to round $(first_round $con)"
	c=$((c + 1))
done
done_cycles=$((c - 1))
[ "$lab_failed" -eq 0 ] || fin
[ $gm_cycles -eq "$cycles" ] ||
	{ lab_fail "only $gm_cycles of $done_cycles saves caught the L2 running, want $cycles"; fin; }

# The checkpoint: taken while the L2 runs, then more rounds, then restored.
cp=
for try in 1 2 3; do
	r=$(last_round $con)
	wait_round_gt "$r" 60 || { lab_fail "checkpoint: the L2 made no progress"; show_vm; fin; }
	sleep "0.$(($(lab_now_cs) % 10))"
	k_pre=$(last_round $con)
	m0=$(mon_lines)
	out=$($NV checkpoint $VM cp$try 2>&1)
	rc=$?
	k_post=$(last_round $con)
	echo "$out" | sed 's/^/  checkpoint| /'
	saves=$((saves + 1))
	[ $rc -eq 0 ] || { lab_fail "nestvm checkpoint exited $rc"; show_vm; fin; }
	cp_ms=$(echo "$out" | sed -n 's/.* in \([0-9]*\) ms.*/\1/p')
	if mon_since "$m0" | grep -q "vCPU 0 saved in guest mode"; then
		gm_saves=$((gm_saves + 1))
		cp=cp$try
		break
	fi
	lab_info "checkpoint cp$try: taken while the L1 ran, not in guest mode; another"
	$NV checkpoint remove $VM cp$try >/dev/null || lab_fail "nestvm checkpoint remove failed"
done
[ -n "$cp" ] || { lab_fail "no checkpoint of 3 caught the L2 running"; fin; }
[ "$(vm_state)" = running ] || { lab_fail "after the checkpoint the VM is '$(vm_state)', want running"; show_vm; fin; }
wait_round_gt $((k_post + 3)) 90 || { lab_fail "checkpoint: the L2 did not run on"; show_vm; fin; }
cat $con >>$all
m_round=$(last_round $all)
check_sequence $all 1 "before the checkpoint's restore" ||
	lab_fail "the rounds across the saves are not each once, in order"
m0=$(mon_lines)
t0=$(lab_now_cs)
$NV checkpoint restore $VM $cp >/tmp/sn-cprestore.out 2>&1
rc=$?
cs=$(($(lab_now_cs) - t0))
sed 's/^/  restore| /' /tmp/sn-cprestore.out
[ $rc -eq 0 ] || { lab_fail "nestvm checkpoint restore exited $rc"; show_vm; fin; }
[ "$(vm_state)" = running ] || { lab_fail "after the checkpoint's restore the VM is '$(vm_state)', want running"; show_vm; fin; }
mon_since "$m0" | grep -q "restored from the saved state" ||
	lab_fail "checkpoint restore: monitor.log does not say 'restored from the saved state'"
wait_round_gt 0 60 || { lab_fail "no L2 round after the checkpoint's restore"; show_vm; fin; }
r0=$(first_round $con)
lab_info "checkpoint taken in ${cp_ms:-?} ms between rounds $k_pre and $k_post; restored in $(lab_secs $cs) s after round $m_round; on to round $r0"
# The round after the checkpoint's (k_pre..k_post), or the one after it when
# the checkpoint cut its line: back from m_round.
if [ "$r0" -le "$k_pre" ] || [ "$r0" -gt $((k_post + 2)) ]; then
	lab_fail "after the checkpoint's restore the L2 went on at round $r0, want $((k_pre + 1))..$((k_post + 2))"
fi
[ "$r0" -lt "$m_round" ] || lab_fail "the checkpoint's restore did not go back: round $r0 after $m_round"

# Run to the end: the rest of the rounds, then the L1's check of the chain.
left=$((rounds - r0 + 1))
limit=$((left * round_ms * 3 / 1000 + rounds * round_ms * 2 / 1000 + 60))
lab_info "waiting for the $left rounds left and the L1's check (at most $limit s)"
end=$(($(lab_now_cs) + limit * 100))
while [ "$(vm_state)" = running ] && [ "$(lab_now_cs)" -lt $end ]; do
	sleep 1
done
[ "$(vm_state)" = off ] || { lab_fail "the VM is '$(vm_state)' after $limit s, want off"; show_vm; fin; }
total_s=$(lab_secs $(($(lab_now_cs) - t_start)))
tr -d '\r' <$con | grep -E 'l2work(=| round [0-9]*/[0-9]* *$|:)' | tail -n 3 | sed 's/^/  console| /'
tr -d '\r' <$con | grep 'test=svm' | sed 's/^/  console| /'
check_sequence $con "$r0" "after the checkpoint's restore" ||
	lab_fail "the rounds after the checkpoint's restore are not each once, in order"
[ "$(last_round $con)" = "$rounds" ] || lab_fail "the last round is $(last_round $con), want $rounds"
result=$(tr -d '\r' <$con | sed -n "s/.*l2work=$rounds result=\(0x[0-9a-f]*\).*/\1/p")
tr -d '\r' <$con | grep -q 'test=svm: PASS' ||
	lab_fail "the L1 did not PASS: $(tr -d '\r' <$con | grep 'test=svm' | tail -n 1)"
[ -n "$result" ] || lab_fail "no 'l2work=$rounds result=' line"
$NV show $VM | grep -i -E 'exit|ended' | sed 's/^/  show| /'
$NV show $VM --json | grep -q '"status": *0' ||
	lab_fail "the VM did not end with exit status 0: $($NV show $VM --json | grep -i status)"
[ $gm_saves -gt 0 ] || lab_fail "no save or checkpoint caught the L2 running (guest mode)"
lab_info "$done_cycles save/restore cycles ($gm_cycles in guest mode) and checkpoint $cp passed; $gm_saves of $saves saves in guest mode; result $result; $total_s s"
lab_metrics "round_ms=$round_ms" "save_ms=$save_ms_max" "restore_s=$(lab_secs $restore_cs_max)" \
	"checkpoint_ms=${cp_ms:-0}" "cp_restore_s=$(lab_secs $cs)" "guest_mode_saves=$gm_saves/$saves" \
	"cycles=$gm_cycles/$done_cycles" "total_s=$total_s"
$NV checkpoint remove $VM $cp >/dev/null || lab_fail "nestvm checkpoint remove failed"
$NV remove $VM >/dev/null || lab_fail "nestvm remove failed"
lab_finish
