# SPDX-License-Identifier: MIT
# lab-timeout: 600
# lab-budget: 640
#
# snapshot-linux[:SPEC] — a checkpoint and a save of a Linux guest
# hypervisor while its own L2 computes. A managed VM (`nestvm new --nested
# on`, 2 vCPUs, 512 MiB) boots the Debian kernel; its part
# (snapshot-linux.l1.sh) loads kvm-amd and runs one L2 probe with the
# L1's nestvm, the L2's console on the L1's, so the lab reads the L2's
# progress in the L1 VM's console.log:
#
#   `nestvm checkpoint` while the L2 runs (a vCPU of the L1 saved in guest
#   mode; taken again, up to TRIES times, until one is), the L2 runs on 2
#   progress steps, `nestvm checkpoint restore`: the L2 must carry on from
#   the checkpoint's moment (its next progress line below the progress seen
#   before the restore);
#   then `nestvm save` and `nestvm start` (again until a save caught the L2
#   running, up to TRIES times): the L2 carries on with no progress line
#   lost or repeated;
#
# and the L2 must end with status 0 and its result, the L1 power off, the
# VM end with status 0. SPEC: words joined by '.': the L2's work, memgen
# (test=memgen, the default when the probe has it) or svm (test=svm
# l2work: the L2 is a hypervisor too, its L3 computes), nN its passes or
# rounds, bB svm's blocks per round, tN the TRIES (6). A Linux L1 leaves
# guest mode for each of its own interrupts, and its L2's console lines
# cost it much more time than the L2's work: a save catches its L2 running
# less often than snapshot-nested's. Metrics: l1_boot_s (start to the L2's start), step_s (L2 time
# between two progress lines), checkpoint_ms, cp_restore_s, save_ms,
# restore_s, guest_mode_saves, total_s.

. /lab/lib.sh

lab_need_nestvm
[ -r /l1/initrd-nested.cpio ] || lab_skip "no /l1/initrd-nested.cpio in the lab"

work=svm
grep -q memgen /lab/guest/probe.elf 2>/dev/null && work=memgen
n= blocks=256 tries=6
for w in $(echo "${1:-}" | tr '.' ' '); do
	case $w in
	memgen | svm) work=$w ;;
	n[0-9]*) n=${w#n} ;;
	b[0-9]*) blocks=${w#b} ;;
	t[0-9]*) tries=${w#t} ;;
	*) lab_fail "unknown word '$w' in '$1' (memgen, svm, nN, bB, tN)"; lab_finish ;;
	esac
done
case $work in
memgen) n=${n:-2000} spec=memgen-$n ;;
svm) n=${n:-12} spec=svm-$n-$blocks ;;
esac

export NESTVM_HOME=/tmp/nestvm-snapl
NV=/lab/bin/nestvm
VM=l1
rm -rf $NESTVM_HOME
. /lab/scenarios/snapshot-lib.sh

fin() {
	$NV kill $VM >/dev/null 2>&1
	lab_finish
}

cmdline="console=ttyS0 quiet panic=-1 nestlab.l1=snapshot-linux nestlab.l2=$spec"
$NV new $VM --kernel /lab/kernel/vmlinux --initrd /l1/initrd-nested.cpio --cpus 2 --memory 512M \
	--nested on --cmdline "$cmdline" >/dev/null || { lab_fail "nestvm new failed"; fin; }
lab_info "a managed Linux L1 (--nested on, 2 vCPUs, 512 MiB) running an L2 probe: nestlab.l2=$spec"
t_start=$(lab_now_cs)
$NV start $VM >/dev/null || { lab_fail "nestvm start failed"; snap_show; fin; }
end=$((t_start + 24000))
until grep -q L1-L2-BEGIN $con 2>/dev/null; do
	[ "$(lab_now_cs)" -lt $end ] && [ "$(snap_state)" = running ] ||
		{ lab_fail "the L1 did not start its L2 within 240 s"; snap_show; fin; }
	sleep 1
done
l1_boot_cs=$(($(lab_now_cs) - t_start))
tr -d '\r' <$con | grep -E '^L1' | sed 's/^/  console| /'
snap_wait_gt 0 240 || { lab_fail "no progress line from the L2 within 240 s"; snap_show; fin; }
t1=$(lab_now_cs)
p1=$(snap_last $con)
snap_wait_gt "$p1" 240 || { lab_fail "no second progress line from the L2"; snap_show; fin; }
step=$(($(snap_last $con) - p1))
step_cs=$(($(lab_now_cs) - t1))
wait_s=$((step_cs * 4 / 100 + 60))
lab_info "the L1 ran its L2 after $(lab_secs $l1_boot_cs) s; progress step $step ($(lab_secs $step_cs) s)"

# The checkpoint, run on, back to it.
snap_checkpoint_take cp "$tries" || fin
saves=$snap_cp_tries
snap_checkpoint_back "$step" "$wait_s" || fin
lab_info "checkpoint $snap_cp taken in ${snap_cp_ms:-?} ms between progress $snap_cp_pre and" \
	"$snap_cp_post; restored in $(lab_secs $snap_cp_restore_cs) s at $snap_back_from; on at $snap_back_to"

# The save, until one caught the L2 running.
: >"$all"
gm=0 try=0
p=$(snap_last $con)
snap_wait_gt "$p" "$wait_s" || { lab_fail "save: no progress past $p"; snap_show; fin; }
while [ $try -lt "$tries" ]; do
	try=$((try + 1))
	snap_pause
	saves=$((saves + 1))
	snap_save_cycle "save $try" || fin
	lab_info "save $try: saved in ${snap_save_ms:-?} ms at progress $snap_saved_at$([ $snap_gm -eq 1 ] &&
		echo ", in guest mode"); restored in $(lab_secs $snap_restore_cs) s"
	[ $snap_gm -eq 1 ] && { gm=1; break; }
done
[ $gm -eq 1 ] || { lab_fail "no save of $tries caught the L2 running"; fin; }

# To the end: the L2's result, the L1's poweroff.
# What is left: svm's rounds and the L1's check of them, memgen's tenths.
steps=12
[ $work = svm ] && steps=$((2 * n))
limit=$((step_cs * steps / 100 + 120))
lab_info "waiting for the L2 to finish and the L1 to power off (at most $limit s)"
end=$(($(lab_now_cs) + limit * 100))
while [ "$(snap_state)" = running ] && [ "$(lab_now_cs)" -lt $end ]; do
	sleep 1
done
[ "$(snap_state)" = off ] || { lab_fail "the VM is '$(snap_state)' after $limit s, want off"; snap_show; fin; }
total_s=$(lab_secs $(($(lab_now_cs) - t_start)))
cat $con >>"$all"
tr -d '\r' <$con | grep -E 'test=|result=|^L1-' | sed 's/^/  console| /'
snap_check_sequence "$all" "progress across the save" ||
	lab_fail "the L2's progress across the save is not each step once, in order"
case $work in
memgen)
	result=$(tr -d '\r' <$con | sed -n "s/.*test=memgen: result=\(0x[0-9a-f]*\) passes=$n.*/\1/p")
	[ -n "$result" ] || lab_fail "no 'test=memgen: result=0x... passes=$n' line"
	want=$(/lab/bin/memgen-expect "$n" 1 2>&1 | sed -n 's/.*result=\(0x[0-9a-f]*\).*/\1/p')
	[ -n "$want" ] || lab_fail "no /lab/bin/memgen-expect to say what an uninterrupted run prints"
	[ "$result" = "$want" ] || lab_fail "memgen result $result, an uninterrupted run's is '$want'"
	;;
svm)
	result=$(tr -d '\r' <$con | sed -n "s/.*l2work=$n result=\(0x[0-9a-f]*\).*/\1/p")
	[ -n "$result" ] || lab_fail "no 'l2work=$n result=' line"
	;;
esac
tr -d '\r' <$con | grep -q "test=$work: PASS" || lab_fail "the L2 did not PASS"
tr -d '\r' <$con | grep -q '^L1-L2 rc=0' || lab_fail "the L1's nestvm did not end with status 0"
tr -d '\r' <$con | grep -q '^L1-END rc=0' || lab_fail "the L1's part did not end well"
$NV show $VM --json | grep -q '"status": *0' ||
	lab_fail "the VM did not end with exit status 0: $($NV show $VM | grep -i 'last exit')"
lab_info "checkpoint and save of the L1 with its L2 running passed; result $result; $total_s s"
lab_metrics "l1_boot_s=$(lab_secs $l1_boot_cs)" "step_s=$(lab_secs $step_cs)" \
	"checkpoint_ms=${snap_cp_ms:-0}" "cp_restore_s=$(lab_secs $snap_cp_restore_cs)" \
	"save_ms=${snap_save_ms:-0}" "restore_s=$(lab_secs $snap_restore_cs)" \
	"guest_mode_saves=$((1 + gm))/$saves" "total_s=$total_s"
$NV checkpoint remove $VM "$snap_cp" >/dev/null || lab_fail "nestvm checkpoint remove failed"
$NV remove $VM >/dev/null || lab_fail "nestvm remove failed"
lab_finish
