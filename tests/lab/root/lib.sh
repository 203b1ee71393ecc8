# SPDX-License-Identifier: MIT
#
# Helpers for lab scenarios (tests/lab/scenarios/*.sh), sourced with
# `. /lab/lib.sh` inside the lab, run by busybox sh.
#
# A scenario exits 0 (pass), 77 (skip) or anything else (fail). It reports
# measurements with lab_metric; tests/lab/lab.sh collects them.

LAB_KVM_DEBUGFS=/sys/kernel/debug/kvm
# KVM's statistics (Documentation/virt/kvm/api.rst, "KVM_GET_STATS_FD") that
# tell where a guest spends its exits. The top-level debugfs files sum over
# the VMs that exist at the time of reading.
LAB_KVM_STATS="exits io_exits mmio_exits pf_fixed pf_taken halt_exits halt_wakeup
irq_injections irq_exits irq_window_exits request_irq_exits signal_exits
insn_emulation hypercalls nmi_injections nested_run"

lab_failed=0

# Lab uptime in centiseconds (an integer, so busybox sh can do arithmetic).
# Shell builtins only: scenarios call it in polling loops. /proc/uptime
# always has two decimals.
lab_now_cs() {
	read -r _up _ </proc/uptime
	echo $((${_up%.*} * 100 + 1${_up#*.} - 100))
}

# True while process $1 runs (a zombie counts as ended: busybox sh may not
# have reaped it yet, and kill -0 succeeds on zombies).
lab_alive() {
	[ -r "/proc/$1/stat" ] || return 1
	read -r _ _ _state _ <"/proc/$1/stat" 2>/dev/null || return 1
	[ "$_state" != Z ]
}

# Centiseconds $1 as seconds with two decimals.
lab_secs() {
	awk -v c="$1" 'BEGIN { printf "%.2f\n", c / 100 }'
}

# Records a measurement: lab_metric KEY VALUE.
lab_metric() {
	echo "LAB-METRIC ${LAB_SCENARIO:-?} $1=$2"
}

# Records several measurements on one line: lab_metrics KEY=VALUE...
lab_metrics() {
	echo "LAB-METRIC ${LAB_SCENARIO:-?} $*"
}

lab_info() {
	echo "${LAB_SCENARIO:-lab}: $*"
}

# Records a failed check; the scenario goes on and fails at lab_finish.
lab_fail() {
	echo "${LAB_SCENARIO:-lab}: FAIL: $*"
	lab_failed=1
}

lab_skip() {
	echo "${LAB_SCENARIO:-lab}: SKIP: $*"
	exit 77
}

# lab_pass_on_retry [N]: for the scenarios that fail the lab on purpose
# (tests/lab/watchdog-test.sh): pass, and end, in retry N (default 1) or a
# later one after a lab failure (LAB_RETRY, from /init).
lab_pass_on_retry() {
	[ "${LAB_RETRY:-0}" -ge "${1:-1}" ] || return 0
	lab_info "retry $LAB_RETRY after a lab failure: passing"
	lab_finish
}

# Ends the scenario: status 0 unless a check failed.
lab_finish() {
	if [ "$lab_failed" -ne 0 ]; then
		exit 1
	fi
	exit 0
}

# Reads KVM's debugfs counters into shell variables PREFIX_<stat>.
lab_kvm_stats_read() {
	for _st in $LAB_KVM_STATS; do
		_v=0
		[ -r "$LAB_KVM_DEBUGFS/$_st" ] && read -r _v <"$LAB_KVM_DEBUGFS/$_st"
		eval "$1_$_st=\$_v"
	done
}

# Keeps in PREFIX_<stat> the larger of its value and the current counter: the
# counters fall back when a VM is destroyed, so a run's totals are the highest
# values seen while its VM lived.
lab_kvm_stats_max() {
	for _st in $LAB_KVM_STATS; do
		_v=0
		[ -r "$LAB_KVM_DEBUGFS/$_st" ] && read -r _v <"$LAB_KVM_DEBUGFS/$_st"
		eval "_old=\${$1_$_st:-0}"
		[ "$_v" -gt "$_old" ] && eval "$1_$_st=\$_v"
	done
}

# Records metrics [KEYPREFIX.]kvm.<stat> = AFTER_<stat> - BEFORE_<stat>:
# lab_kvm_stats_report BEFORE AFTER [KEYPREFIX].
lab_kvm_stats_report() {
	_line=
	for _st in $LAB_KVM_STATS; do
		[ -r "$LAB_KVM_DEBUGFS/$_st" ] || continue
		eval "_d=\$((\${$2_$_st:-0} - \${$1_$_st:-0}))"
		_line="$_line ${3:+$3.}kvm.$_st=$_d"
	done
	[ -n "$_line" ] && lab_metrics $_line
}

# ------------------------------------------------- nestvm and its L1 guest

LAB_NESTVM=/lab/bin/nestvm

# Skips the scenario when the lab has no nestvm.
lab_need_nestvm() {
	[ -x "$LAB_NESTVM" ] ||
		lab_skip "no $LAB_NESTVM in the lab (make release, then tests/lab/lab.sh)"
}

# nestvm and the probe guest in the lab, or a skip; sets probe.
lab_need_probe() {
	lab_need_nestvm
	probe=/lab/guest/probe.elf
	[ -r $probe ] || lab_skip "no probe guest in the lab (make guests)"
}

# Meaning of nestvm's exit status $1 (src/core/exit_status.h).
lab_exit_status_name() {
	case $1 in
	0) echo "NESTVM_EXIT_POWEROFF" ;;
	1) echo "NESTVM_EXIT_ERROR (monitor error)" ;;
	2) echo "NESTVM_EXIT_USAGE (bad command line)" ;;
	3) echo "NESTVM_EXIT_REBOOT (guest reset; a Linux guest with panic=-1 panicked)" ;;
	4) echo "NESTVM_EXIT_CRASH (triple fault, KVM internal error, bad exit)" ;;
	127) echo "not executable / not found" ;;
	*) if [ "$1" -gt 128 ]; then echo "killed by signal $(($1 - 128))"; else echo "unknown"; fi ;;
	esac
}

# Value of KEY $1 in the line $2 of KEY=VALUE words.
lab_word_value() {
	echo " $2" | sed -n "s/.* $1=\([^ ]*\).*/\1/p"
}

# Prints lines $2.. of file $3 (complete lines only unless $4 is "all")
# prefixed "  $1| " on stderr; echoes the number of complete lines.
lab_show_new_lines() {
	_n=$(wc -l <"$3")
	if [ "${4:-}" = all ]; then
		sed -n "$(($2 + 1)),\$p" "$3" | tr -d '\r' | sed "s/^/  $1| /" >&2
	elif [ "$_n" -gt "$2" ]; then
		sed -n "$(($2 + 1)),${_n}p" "$3" | tr -d '\r' | sed "s/^/  $1| /" >&2
	fi
	echo "$_n"
}

LAB_L1_TIMER_LOST=/tmp/.lab-l1-timer-lost
# What an L1 kernel says when its timer stopped or one of its CPUs stopped
# answering (RCU stall reports): its interrupts lost below it.
LAB_L1_STALL="kthread timer wakeup didn't happen|rcu: INFO: rcu_[a-z]+ (self-)?detected stall"

# Runs `nestvm run ARGS...` (stdin /dev/null) booting an L1 guest whose
# /init is tests/lab/l1/init: lab_l1_run LABEL LIMIT_SECONDS ARGS...
# Markers count at the start of a line only: an L2's own markers come
# prefixed ("L2| L1-END ...").
# Streams its output prefixed "L1|", watches for the guest's L1-INIT and
# L1-END markers, and kills nestvm when it outlives LIMIT_SECONDS or keeps
# running 10 s after L1-END (lab_fail); with L1_STALL_SECS set, also when
# the guest prints no marker line (one starting "L1-") for that long
# (l1_stalled=1; kernel messages such as RCU stall reports do not count).
# An L1 that stalled (its RCU kthread's "timer wakeup didn't happen", or an
# RCU stall report: its timer interrupts, or one CPU's, lost below it; the
# lab KVM delivers them, not nestvm; make test 119: an L1 CPU stuck while
# it ran its L2) is killed at once (l1_stalled=1 too) and noted in
# LAB_L1_TIMER_LOST for /init, which takes the scenario's failure for the
# lab's, unless the scenario counts its L1 faults itself, "# lab-guard: off"
# (the lab's own L1 hang: tests/lab/README.md, "lab.sh"). Sets:
#   l1_rc        nestvm's exit status
#   l1_out       file with its output (stdout and stderr)
#   l1_wall_cs   centiseconds from start to exit
#   l1_end_cs    centiseconds from start to L1-END seen, or empty
#   l1_info      the L1's first "L1-INFO ..." line, or empty
#   l1_endline   its "L1-END rc=N uptime=S" line, or empty
#   before_*, peak_*   KVM counters (lab_kvm_stats_report before peak)
lab_l1_run() {
	_label=$1
	_limit_cs=$(($2 * 100))
	shift 2
	l1_out=/tmp/l1-$_label.out
	lab_kvm_stats_read before
	lab_kvm_stats_read peak
	_t0=$(lab_now_cs)
	"$LAB_NESTVM" run "$@" </dev/null >"$l1_out" 2>&1 &
	_pid=$!
	_shown=0
	_t_init=
	l1_end_cs=
	_why=
	l1_stalled=0
	_t_out=$_t0
	_marks=
	while lab_alive $_pid; do
		lab_kvm_stats_max peak
		_shown=$(lab_show_new_lines L1 "$_shown" "$l1_out")
		_now=$(lab_now_cs)
		if [ -n "${L1_STALL_SECS:-}" ]; then
			_m=$(grep -c '^L1-' "$l1_out")
			[ "$_m" != "${_marks:-}" ] && _marks=$_m && _t_out=$_now
		fi
		if [ -n "${L1_STALL_SECS:-}" ] && [ $((_now - _t_out)) -gt $((L1_STALL_SECS * 100)) ]; then
			_why="no marker line from the L1 for $L1_STALL_SECS s"
			l1_stalled=1
			break
		fi
		if grep -q -E "$LAB_L1_STALL" "$l1_out"; then
			_why="the L1 stalled, the lab's own fault ($(grep -E -m 1 "$LAB_L1_STALL" "$l1_out" | tr -d '\r' | cut -c 1-160))"
			echo "$_why" >"$LAB_L1_TIMER_LOST"
			l1_stalled=1
			break
		fi
		[ -z "$_t_init" ] && grep -q '^L1-INIT' "$l1_out" && _t_init=$_now
		[ -z "$l1_end_cs" ] && grep -q '^L1-END' "$l1_out" && l1_end_cs=$((_now - _t0))
		if [ -n "$l1_end_cs" ] && [ $((_now - _t0 - l1_end_cs)) -gt 1000 ]; then
			_why="nestvm still running 10 s after the guest's L1-END"
			break
		fi
		if [ $((_now - _t0)) -gt $_limit_cs ]; then
			_why="nestvm run exceeded its limit of $(lab_secs $_limit_cs) s"
			[ -z "$_t_init" ] && _why="$_why; the L1 never reached /init"
			break
		fi
		# Each poll forks a few busybox processes, CPU time the guest on
		# the lab's two vCPUs then lacks: poll slowly while the guest
		# runs, fast once it ended (nestvm's exit is seen at a poll).
		if [ -n "$l1_end_cs" ]; then sleep 0.1; else sleep 0.5; fi
	done
	if [ -n "$_why" ]; then
		lab_fail "$_label: $_why; killing it"
		kill -TERM $_pid 2>/dev/null
		sleep 2
		kill -KILL $_pid 2>/dev/null
	fi
	wait $_pid
	l1_rc=$?
	l1_wall_cs=$(($(lab_now_cs) - _t0))
	lab_show_new_lines L1 "$_shown" "$l1_out" all >/dev/null
	[ -z "$l1_end_cs" ] && grep -q '^L1-END' "$l1_out" && l1_end_cs=$l1_wall_cs
	l1_info=$(tr -d '\r' <"$l1_out" | grep '^L1-INFO ' | head -n 1)
	l1_endline=$(tr -d '\r' <"$l1_out" | grep '^L1-END ' | head -n 1)
	lab_info "$_label: nestvm exit status $l1_rc ($(lab_exit_status_name $l1_rc))," \
		"wall $(lab_secs $l1_wall_cs) s"
}

# ------------------------------------------- a VM that keeps KVM's keys set
#
# The lab's wedge: QEMU 7.2's multi-threaded TCG can go on running a stale
# translation of kernel text that Linux has just patched back. KVM flips
# static keys whenever the number of VMs goes 0 -> 1 -> 0
# (preempt_notifier_key in kvm_create_vm()/kvm_destroy_vm(), apic_sw_disabled
# per vCPU), and each flip patches the scheduler's text with an INT3 first
# (text_poke_bp()). A vCPU that keeps executing that INT3 after it is gone
# from memory loops for good: exc_int3 -> poke_int3_handler (no patch under
# way) -> kprobe_int3_handler (no INT3 at the address any more: rewind and
# retry) -> the same stale INT3. Both lab vCPUs then spin in exc_int3 with
# IF=0 and the lab prints nothing (tests/lab/README.md, "The lab's wedge").
# A VM that stays open holds those keys at 1 or more: no more flips, no more
# patching. lab_kvm_hold_start starts one (the probe, halted, 16 MiB, a
# second vCPU that never starts, so its local APIC stays software-disabled);
# its pid is in $LAB_KVM_HOLD_PIDFILE. Returns 1 if it did not come up.
LAB_KVM_HOLD_PIDFILE=/tmp/.lab-kvm-hold.pid
lab_kvm_hold_start() {
	[ -x "$LAB_NESTVM" ] && [ -r /lab/guest/probe.elf ] || return 1
	rm -f /tmp/.lab-kvm-hold.out
	setsid "$LAB_NESTVM" run --kernel /lab/guest/probe.elf --memory 16M --cpus 2 --pit off \
		--console file:/tmp/.lab-kvm-hold.out --cmdline "test=idle" </dev/null >/dev/null 2>&1 &
	echo $! >$LAB_KVM_HOLD_PIDFILE
	_i=0
	while [ $_i -lt 100 ]; do
		grep -q 'test=idle: up' /tmp/.lab-kvm-hold.out 2>/dev/null && return 0
		lab_alive "$(cat $LAB_KVM_HOLD_PIDFILE)" || break
		sleep 0.1
		_i=$((_i + 1))
	done
	lab_kvm_hold_stop
	return 1
}

# Ends the VM of lab_kvm_hold_start, if any.
lab_kvm_hold_stop() {
	[ -r $LAB_KVM_HOLD_PIDFILE ] || return 0
	_p=$(cat $LAB_KVM_HOLD_PIDFILE)
	rm -f $LAB_KVM_HOLD_PIDFILE
	kill -KILL "$_p" 2>/dev/null
	while lab_alive "$_p"; do sleep 0.1; done
	return 0
}
