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
