# SPDX-License-Identifier: MIT
#
# snapshot-lib.sh — what the snapshot-* scenarios share (not a scenario):
# a managed VM whose console shows the progress of a computation as lines
# "... round R/N" or "... pass P/N", saved, checkpointed and restored while
# it runs. Sourced after /lab/lib.sh with NV (nestvm), VM (its name) and
# NESTVM_HOME set. Sets con (its console.log), mon (its monitor.log) and
# all (the console.logs of its monitors, end to end, as snap_save_cycle
# keeps them).

case ${0##*/} in
snapshot-lib.sh) echo "snapshot-lib.sh is sourced by the snapshot-* scenarios, not run"; exit 2 ;;
esac

con=$NESTVM_HOME/$VM/console.log
mon=$NESTVM_HOME/$VM/monitor.log
all=/tmp/$VM-all.log
rm -f "$all"

# The progress numbers in file $1, one a line. A line cut in two by a save
# is completed at the start of the next console.log: the pattern still finds
# its number in the second half.
snap_progress_in() {
	tr -d '\r' <"$1" 2>/dev/null | sed -En 's/.*(round|pass) ([0-9]+)\/[0-9].*/\2/p'
}
snap_last() {
	_p=$(snap_progress_in "$1" | tail -n 1)
	echo "${_p:-0}"
}
snap_first() {
	_p=$(snap_progress_in "$1" | head -n 1)
	echo "${_p:-0}"
}
snap_state() {
	$NV list 2>/dev/null | awk -v n="$VM" '$1 == n { print $2 }'
}
# snap_wait_gt P SECONDS: until console.log shows progress above P; 1 if the
# time ran out or the VM stopped running. With SNAP_STREAM set, shows the
# new "probe:" lines of console.log as they come (where a slow guest is).
snap_wait_gt() {
	_end=$(($(lab_now_cs) + $2 * 100))
	while [ "$(lab_now_cs)" -lt $_end ]; do
		[ -n "${SNAP_STREAM:-}" ] && snap_stream
		[ "$(snap_last "$con")" -gt "$1" ] && return 0
		[ "$(snap_state)" = running ] || return 1
		sleep 0.5
	done
	return 1
}
# The "probe:" lines of console.log not shown yet (complete lines only).
snap_stream() {
	[ -r "$con" ] || return 0
	_n=$(wc -l <"$con")
	[ "$_n" -lt "${snap_shown:-0}" ] && snap_shown=0 # a new console.log
	[ "$_n" -gt "${snap_shown:-0}" ] &&
		sed -n "$((${snap_shown:-0} + 1)),${_n}p" "$con" | tr -d '\r' | grep 'probe:' | sed 's/^/  L2| /'
	snap_shown=$_n
}
snap_mon_lines() {
	wc -l <"$mon"
}
# Lines of monitor.log after line $1.
snap_mon_since() {
	tail -n +$(($1 + 1)) "$mon"
}
# Shows what went wrong: the ends of console.log and monitor.log.
snap_show() {
	tail -n 8 "$con" 2>/dev/null | tr -d '\r' | sed 's/^/  console| /'
	tail -n 12 "$mon" 2>/dev/null | sed 's/^/  monitor| /'
}
# snap_check_sequence FILE WHAT: the progress numbers in FILE go up by the
# same step (the first difference) with none missing or repeated; says
# where not.
snap_check_sequence() {
	snap_progress_in "$1" | awk -v what="$2" '
		n == 1 { step = $1 - prev }
		n >= 1 && (step <= 0 || $1 != prev + step) {
			printf "%s: %d after %d (step %d)\n", what, $1, prev, step; bad = 1; exit
		}
		{ prev = $1; n++ }
		END { exit bad }'
}

# snap_save_cycle LABEL: `nestvm save`, then `nestvm start` in a new
# monitor, with the checks of a save and a restore. Appends the console.log
# of the monitor that was saved to $all. Sets snap_gm (1: a vCPU was saved
# in guest mode, running an L2), snap_save_ms, snap_restore_cs, snap_saved_at
# (the last progress before the save). Returns 1 after lab_fail.
snap_save_cycle() {
	_m0=$(snap_mon_lines)
	_out=$($NV save "$VM" 2>&1)
	_rc=$?
	echo "$_out" | sed "s/^/  save $1| /"
	[ $_rc -eq 0 ] || { lab_fail "$1: nestvm save exited $_rc"; snap_show; return 1; }
	_st=$(snap_state)
	[ "$_st" = saved ] || { lab_fail "$1: after save the VM is '$_st', want saved"; snap_show; return 1; }
	snap_save_ms=$(echo "$_out" | sed -n 's/.* in \([0-9]*\) ms.*/\1/p')
	cat "$con" >>"$all"
	snap_saved_at=$(snap_last "$all")
	snap_gm=0
	snap_mon_since "$_m0" | grep -q "vCPU [0-9]* saved in guest mode" && snap_gm=1
	_m0=$(snap_mon_lines)
	_t0=$(lab_now_cs)
	$NV start "$VM" >/tmp/snap-start.out 2>&1
	_rc=$?
	snap_restore_cs=$(($(lab_now_cs) - _t0))
	if [ $_rc -ne 0 ]; then
		lab_fail "$1: nestvm start of the saved VM exited $_rc"
		sed 's/^/  start| /' /tmp/snap-start.out
		snap_show
		return 1
	fi
	snap_mon_since "$_m0" | grep -q "restored from the saved state" ||
		{ lab_fail "$1: monitor.log does not say 'restored from the saved state'"; return 1; }
	if [ $snap_gm -eq 1 ] && ! snap_mon_since "$_m0" | grep -q "vCPU [0-9]* restored in guest mode"; then
		lab_fail "$1: saved in guest mode, but not restored in guest mode"
		return 1
	fi
	return 0
}

# snap_pause: sleeps 0.2 to 1.1 s, so that a save lands at no fixed point.
snap_pause() {
	_d=$(($(lab_now_cs) % 10 + 2))
	sleep "$((_d / 10)).$((_d % 10))"
}

# snap_checkpoint_take PREFIX TRIES: `nestvm checkpoint VM PREFIXn` until one
# catches an L2 running (a vCPU saved in guest mode; the others are
# removed), at most TRIES times, the first after new progress. Sets snap_cp
# (its name, empty if none did), snap_cp_ms, snap_cp_pre and snap_cp_post
# (the progress seen before and after it), snap_cp_tries. Returns 1 when no
# checkpoint caught the L2 running or one failed (lab_fail).
snap_checkpoint_take() {
	snap_cp=
	snap_cp_tries=0
	_p=$(snap_last "$con")
	snap_wait_gt "$_p" 300 || { lab_fail "checkpoint: no progress past $_p"; snap_show; return 1; }
	while [ $snap_cp_tries -lt "$2" ]; do
		snap_cp_tries=$((snap_cp_tries + 1))
		snap_pause
		snap_cp_pre=$(snap_last "$con")
		_m0=$(snap_mon_lines)
		_out=$($NV checkpoint "$VM" "$1$snap_cp_tries" 2>&1)
		_rc=$?
		snap_cp_post=$(snap_last "$con")
		echo "$_out" | sed 's/^/  checkpoint| /'
		[ $_rc -eq 0 ] || { lab_fail "nestvm checkpoint exited $_rc"; snap_show; return 1; }
		snap_cp_ms=$(echo "$_out" | sed -n 's/.* in \([0-9]*\) ms.*/\1/p')
		[ "$(snap_state)" = running ] ||
			{ lab_fail "after the checkpoint the VM is '$(snap_state)', want running"; snap_show; return 1; }
		if snap_mon_since "$_m0" | grep -q "vCPU [0-9]* saved in guest mode"; then
			snap_cp=$1$snap_cp_tries
			return 0
		fi
		lab_info "checkpoint $1$snap_cp_tries: taken while no L2 ran (not in guest mode); another"
		$NV checkpoint remove "$VM" "$1$snap_cp_tries" >/dev/null ||
			{ lab_fail "nestvm checkpoint remove failed"; return 1; }
	done
	lab_fail "no checkpoint of $2 caught the L2 running"
	return 1
}

# snap_checkpoint_back STEP SECONDS: after snap_checkpoint_take, waits for
# progress 2 STEPs past the checkpoint, then `nestvm checkpoint restore`:
# the VM must run again, from the checkpoint's moment: its first progress
# after the restore one STEP (two if the checkpoint cut that line) past what
# was seen before the checkpoint, and below what was seen before the
# restore. Appends the console.log before the restore to $all (cut short:
# lines printed between that copy and the restore are not in it). Sets
# snap_back_from, snap_back_to, snap_cp_restore_cs.
snap_checkpoint_back() {
	snap_wait_gt $((snap_cp_post + 2 * $1)) "$2" ||
		{ lab_fail "after the checkpoint the guest did not run on"; snap_show; return 1; }
	cat "$con" >>"$all"
	snap_back_from=$(snap_last "$con")
	_m0=$(snap_mon_lines)
	_t0=$(lab_now_cs)
	$NV checkpoint restore "$VM" "$snap_cp" >/tmp/snap-cprestore.out 2>&1
	_rc=$?
	snap_cp_restore_cs=$(($(lab_now_cs) - _t0))
	sed 's/^/  restore| /' /tmp/snap-cprestore.out
	[ $_rc -eq 0 ] || { lab_fail "nestvm checkpoint restore exited $_rc"; snap_show; return 1; }
	[ "$(snap_state)" = running ] ||
		{ lab_fail "after the checkpoint's restore the VM is '$(snap_state)', want running"; snap_show; return 1; }
	snap_mon_since "$_m0" | grep -q "restored from the saved state" ||
		{ lab_fail "checkpoint restore: monitor.log does not say 'restored from the saved state'"; return 1; }
	snap_mon_since "$_m0" | grep -q "vCPU [0-9]* restored in guest mode" ||
		{ lab_fail "checkpoint restore: no vCPU restored in guest mode"; return 1; }
	snap_wait_gt 0 "$2" || { lab_fail "no progress after the checkpoint's restore"; snap_show; return 1; }
	snap_back_to=$(snap_first "$con")
	if [ "$snap_back_to" -le "$snap_cp_pre" ] || [ "$snap_back_to" -gt $((snap_cp_post + 2 * $1)) ]; then
		lab_fail "after the checkpoint's restore the guest went on at $snap_back_to, want $((snap_cp_pre + 1))..$((snap_cp_post + 2 * $1))"
		return 1
	fi
	[ "$snap_back_to" -lt "$snap_back_from" ] ||
		{ lab_fail "the checkpoint's restore did not go back: $snap_back_to after $snap_back_from"; return 1; }
	return 0
}
