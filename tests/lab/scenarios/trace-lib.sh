# SPDX-License-Identifier: MIT
#
# trace-lib.sh — the lab KVM's trace (not a scenario), for the scenarios
# whose L1 may triple-fault (nested-soak, snapshot-nested, migrate-nested):
# the kvm:* events (kvmmmu:* too with mmutrace) in the lab's tracefs, a
# kprobe printing the L1's registers at its shutdown, and the end of the
# ring when it matters. Sourced after /lab/lib.sh. A scenario takes the
# words of trace_word, calls trace_setup once, trace_start before the VM
# that may crash, trace_mark at its steps (a save, a restore, a
# migration), trace_dump after a crash and trace_finish at its end.

case ${0##*/} in
trace-lib.sh) echo "trace-lib.sh is sourced by scenarios, not run"; exit 2 ;;
esac

trace=0 mmutrace=0 trace_stops=0
T=/sys/kernel/tracing

# trace_word WORD: 0 (and notes it) when WORD is one of this file's words:
#   trace      trace the lab KVM (kvm:* events, tracefs) and print the end
#              of the trace ring when an L1 crashes or hangs
#   mmutrace   with trace, the lab KVM's kvmmmu:* events as well (its
#              nested page tables for the L1)
trace_word() {
	case $1 in
	trace) trace=1 ;;
	mmutrace) mmutrace=1 ;;
	*) return 1 ;;
	esac
}

# The L1's state at its triple fault. On a SHUTDOWN intercept the lab's
# kvm-amd clears the VMCB before it exits to nestvm (which then shows the
# reset state), but shutdown_interception() still finds it as it was: a
# kprobe there prints the L1's RIP, CR2 (the address of the first #PF),
# CR3, RSP, RFLAGS and GS base from the VMCB (struct vmcb: save area at
# 0x400, Linux's arch/x86/include/asm/svm.h), and the exit_int_info of the
# control area (0x088: the event being delivered), and its nested CR3 (0x0b0:
# the root of the lab KVM's nested page table). The offset of vmcb in
# struct vcpu_svm depends on the kernel build: lab.sh reads it from the lab's
# kvm-amd.ko (vmcb_offset: 0x1998 in 6.1.0-57-cloud-amd64) into
# /lab/kernel/vmcb-offset. The probe stops the trace (a trigger after the
# event is written), so the ring ends at the first shutdown whenever the
# scenario looks at it.
trace_shutdown_probe() {
	_vmcb=$(cat /lab/kernel/vmcb-offset 2>/dev/null)
	case $_vmcb in
	0x[0-9a-f]*) ;;
	*)
		lab_info "no L1 shutdown probe: lab.sh found no offset of the VMCB in kvm-amd.ko for $(uname -r)"
		return 0
		;;
	esac
	_v="+$_vmcb(%di)"
	# One left by a scenario the lab killed at its limit (no trace_finish).
	trace_probe_remove
	if echo "p:nestlab/l1_shutdown shutdown_interception rip=+0x578($_v):x64" \
		"cr2=+0x640($_v):x64 cr3=+0x550($_v):x64 rsp=+0x5d8($_v):x64" \
		"rflags=+0x570($_v):x64 cr0=+0x558($_v):x64 cr4=+0x548($_v):x64" \
		"efer=+0x4d0($_v):x64 gsbase=+0x458($_v):x64 trbase=+0x498($_v):x64" \
		"idtbase=+0x488($_v):x64 intinfo=+0x88($_v):x32 interr=+0x8c($_v):x32" \
		"ncr3=+0xb0($_v):x64" >>$T/kprobe_events 2>/dev/null &&
		echo 1 >$T/events/nestlab/l1_shutdown/enable 2>/dev/null; then
		# A condition makes the trigger run after the event is recorded.
		if echo 'traceoff if rip != 1' >$T/events/nestlab/l1_shutdown/trigger 2>/dev/null; then
			trace_stops=1
		else
			lab_info "the L1 shutdown probe does not stop the trace"
		fi
		lab_info "kprobe nestlab/l1_shutdown: the L1's registers at a triple fault"
	else
		lab_info "no L1 shutdown probe: kprobe_events refused it"
	fi
	# The same fault's other ending: the emulated CPU, walking the L1's page
	# tables, reads an entry at a guest-physical address outside the L1's
	# RAM, and the lab KVM gets a nested page fault with the reserved bit
	# (an MMIO page) during a guest page-table walk (EXITINFO1 bits 33 and
	# 3), which it can only retry: the L1's vCPU loops there, and its kernel
	# reports an RCU stall (make test 2026-12-08: 862 of the ring's last 2000
	# events, the entry at GPA 0x7eb06fe0, index 508 of a table at 0x7eb06000
	# in an L1 of 512 MiB). trace_guard_arm enables it in the guard's
	# instance, filtered to those, and its watcher walks that L1's tables
	# at the CR3 it read.
	echo "p:nestlab/l1_npf_walk npf_interception rip=+0x578($_v):x64" \
		"cr3=+0x550($_v):x64 cr0=+0x558($_v):x64 cr4=+0x548($_v):x64" \
		"efer=+0x4d0($_v):x64 info1=+0x78($_v):x64 info2=+0x80($_v):x64" \
		"intinfo=+0x88($_v):x32 ncr3=+0xb0($_v):x64" >>$T/kprobe_events 2>/dev/null ||
		lab_info "no L1 page-walk fault probe: kprobe_events refused it"
}

# The shutdown probe, its trigger and its event gone (if there).
trace_probe_remove() {
	[ -d $T/events/nestlab/l1_shutdown ] || return 0
	echo '!traceoff if rip != 1' >$T/events/nestlab/l1_shutdown/trigger 2>/dev/null
	echo 0 >$T/events/nestlab/l1_shutdown/enable 2>/dev/null
	echo 0 >$T/instances/guard/events/nestlab/l1_shutdown/enable 2>/dev/null
	echo "-:nestlab/l1_shutdown" >>$T/kprobe_events 2>/dev/null
	echo 0 >$T/instances/guard/events/nestlab/l1_npf_walk/enable 2>/dev/null
	echo "-:nestlab/l1_npf_walk" >>$T/kprobe_events 2>/dev/null
}

# tracefs at $T, mounted if need be (else debugfs's copy); 0 when it can be
# written.
trace_mount() {
	[ -d $T/events ] || mount -t tracefs tracefs $T 2>/dev/null || T=/sys/kernel/debug/tracing
	[ -w $T/tracing_on ]
}

# With trace: tracefs, the ring (TRACE_KB per CPU, 4 MiB: some 80,000
# events; reading a 16 MiB ring took the lab two minutes), the events and
# the probe.
# Sets trace=0 when there is no tracefs.
trace_setup() {
	[ $trace -eq 1 ] || return 0
	if ! trace_mount; then
		lab_info "no tracefs: tracing off"
		trace=0
		return 0
	fi
	echo 0 >$T/tracing_on
	echo "${TRACE_KB:-4096}" >$T/buffer_size_kb
	echo 1 >$T/events/kvm/enable
	[ $mmutrace -eq 1 ] && echo 1 >$T/events/kvmmmu/enable
	lab_info "tracing kvm:*$([ $mmutrace -eq 1 ] && echo ' kvmmmu:*') in $T ($(cat $T/buffer_size_kb) KiB per CPU)"
	trace_shutdown_probe
}

# An empty ring, tracing on.
trace_start() {
	[ $trace -eq 1 ] || return 0
	echo >$T/trace
	echo 1 >$T/tracing_on
}

# trace_mark TEXT: a line in the ring ("tracing_mark_write: TEXT") between
# the lab KVM's events, to find a scenario's steps in a dump.
trace_mark() {
	[ $trace -eq 1 ] || return 0
	echo "nestlab: $*" >$T/trace_marker 2>/dev/null
	return 0
}

# 0 when the ring holds an L1 shutdown (the probe's event or a SHUTDOWN exit).
# With the probe's trigger, tracing off says so: reading the whole ring
# takes the lab most of a minute.
trace_has_shutdown() {
	[ $trace -eq 1 ] || return 1
	if [ $trace_stops -eq 1 ]; then
		[ "$(cat $T/tracing_on)" = 0 ]
		return
	fi
	grep -q -e 'l1_shutdown:' -e 'reason shutdown' $T/trace 2>/dev/null
}

# trace_signature FILE: whether the last L1 shutdown in FILE (trace events)
# is the lab's own fault (README, "The L2-Linux crash" and "Snapshots"): the
# lab KVM re-entered the vCPU after completing an exit (an SVM instruction
# or WRMSR it emulated, an OUT to user space: with nrips=0 it skips each one
# by decoding it; a HLT it woke the vCPU from) and the vCPU shut down at
# that very RIP, delivering a #PF (exit_int_info 0x80000b0e) or the external
# interrupt the lab KVM injected (0x800000VV: the IDT unreachable at once;
# the guard's walk of such an L1's page tables found its IDT mapped). Prints
# one line naming the exit before; 0 when it is that signature.
# The vCPU is known by its thread (the event's first field, COMM-PID): two
# VMs (a migration's source and destination) both have a vCPU 0.
trace_signature() {
	_sd=$(grep -n 'kvm_exit: vcpu [0-9]* reason shutdown' "$1" | tail -n 1)
	[ -n "$_sd" ] || { echo "no SHUTDOWN exit in the trace"; return 1; }
	_n=${_sd%%:*}
	_task=$(echo "${_sd#*:}" | awk '{ print $1 }')
	_v=$(echo "$_sd" | sed 's/.*kvm_exit: vcpu \([0-9]*\) .*/\1/')
	_rip=$(echo "$_sd" | sed 's/.* rip \(0x[0-9a-f]*\) .*/\1/')
	_info=$(echo "$_sd" | sed 's/.* intr_info \(0x[0-9a-f]*\) .*/\1/')
	head -n $((_n - 1)) "$1" | awk -v t="$_task" '$1 == t' >"$1.task"
	_prev=$(grep "kvm_exit: vcpu $_v reason" "$1.task" | tail -n 1 |
		sed -n 's/.* reason \(.*\) rip \(0x[0-9a-f]*\) info1.*/\1 at \2/p')
	_entry=$(grep "kvm_entry: vcpu $_v," "$1.task" | tail -n 1 |
		sed 's/.* rip \(0x[0-9a-f]*\).*/\1/')
	rm -f "$1.task"
	_what="vCPU $_v shut down at rip $_rip delivering $_info; its exit before: ${_prev:-none}, re-entered at ${_entry:-?}"
	if [ -n "$_prev" ] && [ "$_entry" = "$_rip" ] &&
		{ [ "$_info" = 0x80000b0e ] || expr "$_info" : '0x800000[0-9a-f][0-9a-f]$' >/dev/null; }; then
		echo "the lab's fault: $_what"
		return 0
	fi
	echo "not the lab's known fault: $_what"
	return 1
}

# The end of the trace ring: what the lab KVM saw up to the crash.
trace_dump() {
	[ $trace -eq 1 ] || return 0
	echo 0 >$T/tracing_on
	cat $T/trace >/tmp/trace.txt
	# Up to the L1's shutdown when there is one: the VM's teardown after
	# it floods the ring (with mmutrace, all of the last 500 events).
	grep -v '^#' /tmp/trace.txt >/tmp/trace.events
	_end=$(grep -n 'reason shutdown' /tmp/trace.events | tail -n 1 | cut -d: -f1)
	[ -n "$_end" ] || _end=$(grep -n 'l1_shutdown:' /tmp/trace.events | tail -n 1 | cut -d: -f1)
	[ -n "$_end" ] || _end=$(wc -l </tmp/trace.events)
	lab_info "trace: $(wc -l </tmp/trace.events) events kept, from $(head -n 1 /tmp/trace.events |
		awk '{ print $4 }') to $(tail -n 1 /tmp/trace.events | awk '{ print $4 }');" \
		"the last ${TRACE_LINES:-500} up to event $_end:"
	head -n "$_end" /tmp/trace.events | tail -n "${TRACE_LINES:-500}" | sed 's/^/  trace| /'
	grep 'l1_shutdown:' /tmp/trace.events | tail -n 4 | sed 's/^/  trace| /'
	grep -q 'reason shutdown' /tmp/trace.events && lab_info "trace: $(trace_signature /tmp/trace.events)"
	lab_info "trace: the scenario's marks:"
	grep 'tracing_mark_write: nestlab:' /tmp/trace.events | tail -n 40 | sed 's/^/  trace| /'
	lab_info "trace: the last 20000 events by kind (exit reason, vCPU):"
	tail -n 20000 /tmp/trace.events |
		sed -n 's/.* \(kvm_[a-z_]*\): *\(vcpu [0-9]*\)\{0,1\}[ ,]*\(reason [A-Za-z_]*\)\{0,1\}.*/\1 \2 \3/p' |
		sort | uniq -c | sort -rn | head -n 40 | sed 's/^/  trace| /'
	lab_info "trace: exits other than npf/intr/vmrun/vmmcall/io/msr/hlt in the last 20000:"
	tail -n 20000 /tmp/trace.events | grep -E 'kvm_exit|kvm_nested_vmexit' |
		grep -vE 'reason (EXIT_)?(npf|NPF|intr|INTR|vmrun|VMRUN|vmmcall|VMMCALL|io|IOIO|msr|MSR|hlt|HLT)[ :]' |
		tail -n 60 | sed 's/^/  trace| /'
}

# Tracing off, the events and the probe removed (the probe holds kvm-amd's
# text: off before kvm-amd is reloaded). With a failed check or a shutdown
# in the ring, dumps it first, unless told "nodump" (dumped already). Under
# the guard (below), the guard keeps the ring, its events and the probe.
trace_finish() {
	[ $trace -eq 1 ] || return 0
	if [ "${1:-}" != nodump ] && { [ "${lab_failed:-0}" -ne 0 ] || trace_has_shutdown; }; then
		trace_has_shutdown && lab_info "trace: tracing stopped at an L1 shutdown"
		trace_dump
	fi
	if [ "${NESTLAB_GUARD:-0}" = 1 ]; then
		trace=0
		return 0
	fi
	echo 0 >$T/tracing_on
	echo 0 >$T/events/kvm/enable
	echo 0 >$T/events/kvmmmu/enable
	trace_probe_remove
	grep -q l1_shutdown $T/kprobe_events 2>/dev/null &&
		lab_info "warning: the kprobe nestlab/l1_shutdown could not be removed"
	trace=0
}

# The guard, around every scenario of a lab (tests/lab/root/init): a
# scenario that fails after an L1 triple fault of the lab's own
# (trace_signature) fails for the lab's sake, not nestvm's. init then ends
# the lab without LAB-END and lab.sh, as for a lab that wedged, reports a
# LAB FAILURE and runs that scenario once more in a fresh lab, where a
# failure of nestvm's own fails again. Light: only the two events the
# signature reads (kvm_exit, kvm_entry) in a GUARD_KB ring per CPU, and the
# shutdown probe, whose trigger stops the ring at the first L1 shutdown. A
# scenario that wants its shutdowns counted, not retried (a soak), says
# "# lab-guard: off". Without the probe (a lab kernel whose VMCB offset is
# not known) there is no guard: every failure stays a failure.

# Once per lab: 0 and guard=1 when the guard can work; says why not.
trace_guard_setup() {
	guard=0
	trace_mount || { echo "lab: no L1 triple fault guard: no tracefs"; return 1; }
	trace_shutdown_probe >/tmp/guard.setup
	if [ $trace_stops -ne 1 ]; then
		echo "lab: no L1 triple fault guard: $(tail -n 1 /tmp/guard.setup)"
		return 1
	fi
	guard=1
	export NESTLAB_GUARD=1
	# The watcher's ring: the probe's events alone.
	if mkdir -p $T/instances/guard 2>/dev/null && echo 64 >$T/instances/guard/buffer_size_kb; then
		guard_watch=1
		export NESTVM_SHUTDOWN_HOLD=3
	else
		guard_watch=0
		echo "lab: the L1 triple fault guard cannot make a trace instance: no page-table walk at a catch"
	fi
}

# Before each scenario: only the guard's events on (a scenario's trace words
# may have changed them), an empty ring, tracing on.
trace_guard_arm() {
	[ "${guard:-0}" -eq 1 ] || return 0
	echo 0 >$T/tracing_on
	echo 0 >$T/events/enable
	echo "${GUARD_KB:-1024}" >$T/buffer_size_kb
	[ -d $T/events/nestlab/l1_shutdown ] || trace_shutdown_probe >/dev/null
	echo 1 >$T/events/kvm/kvm_exit/enable
	echo 1 >$T/events/kvm/kvm_entry/enable
	echo 1 >$T/events/nestlab/l1_shutdown/enable
	for _e in $GUARD_MM_EVENTS; do
		[ -e $T/events/$_e/enable ] && echo 1 >$T/events/$_e/enable
	done
	echo >$T/trace
	echo 1 >$T/tracing_on
	if [ "${guard_watch:-0}" -eq 1 ]; then
		rm -f /tmp/guard.ptwalk /tmp/guard.npfwalk
		echo >$T/instances/guard/trace
		echo 1 >$T/instances/guard/events/nestlab/l1_shutdown/enable 2>/dev/null
		_f=$T/instances/guard/events/nestlab/l1_npf_walk
		[ -d $_f ] && echo '(info1 & 0x200000000) && (info1 & 0x8)' >$_f/filter 2>/dev/null &&
			echo 1 >$_f/enable 2>/dev/null
		trace_guard_watch &
		guard_watch_pid=$!
	fi
}

# The guard's watcher, for a scenario's time: at the first L1 shutdown the
# probe reports, it walks that L1's page tables as they are in its memory
# (nestvm holds a VM that triple-faulted: NESTVM_SHUTDOWN_HOLD, 3 s), at the
# RIP and at the address that faulted last (CR2), with /lab/bin/ptwalk
# (tests/lab/tools/ptwalk.c), into the console and /tmp/guard.ptwalk. Where
# the emulated CPU found them unmapped, a walk that finds them mapped says
# the page tables were right and the walk below the L1 was wrong. With the
# VMCB's nested CR3 it also says, for each page-table page, whether the lab
# KVM's nested page table maps it to the page nestvm's memory holds.
# trace_guard_fields EVENT: of a probe's event, the thread id and the hex
# digits of its rip, cr2, cr3 and ncr3 (empty when the event has none) in
# _tid, _rip, _cr2, _cr3 and _ncr3: one awk for all.
trace_guard_fields() {
	_tid= _rip= _cr2= _cr3= _ncr3=
	eval "$(echo "$1" | awk '{
		n = split($1, f, "-"); if (f[n] ~ /^[0-9]+$/) printf "_tid=%s", f[n]
		for (i = 2; i <= NF; i++)
			if (split($i, kv, "=0x") == 2 && kv[1] ~ /^(rip|cr2|cr3|ncr3)$/ && kv[2] ~ /^[0-9a-f]+$/)
				printf " _%s=%s", kv[1], kv[2]
		print ""
	}')"
}

trace_guard_watch() {
	_npf=0
	# Polled once a second: a fork in the emulated lab is not free.
	while sleep 1; do
		if [ $_npf = 0 ] && _l=$(grep -m 1 'l1_npf_walk:' $T/instances/guard/trace); then
			# Once: the L1 loops on that fault until it is stopped.
			_npf=1
			trace_guard_fields "$_l"
			{
				echo "the emulated CPU read the L1's page tables outside its RAM: ${_l#*l1_npf_walk: }"
				echo "the L1's page tables in its memory (thread $_tid): at rip $_rip"
				/lab/bin/ptwalk ${_ncr3:+-n "$_ncr3"} "$_tid" "$_cr3" "$_rip" 2>&1
			} | sed 's/^/  guard| npf walk: /' >/tmp/guard.npfwalk
			cat /tmp/guard.npfwalk
		fi
		_l=$(grep -m 1 'l1_shutdown:' $T/instances/guard/trace) || continue
		trace_guard_fields "$_l"
		{
			echo "the L1's page tables in its memory after its shutdown (thread $_tid): at rip $_rip and cr2 $_cr2"
			/lab/bin/ptwalk ${_ncr3:+-n "$_ncr3"} "$_tid" "$_cr3" "$_rip" "$_cr2" 2>&1
		} | sed 's/^/  guard| ptwalk: /' >/tmp/guard.ptwalk
		cat /tmp/guard.ptwalk
		return 0
	done
}

# An awk function for the guard's readers of the ring: ts(EVENT), the
# event's timestamp in seconds.
TRACE_AWK_TS='function ts(e) { match(e, / [0-9]+\.[0-9]+: /); return substr(e, RSTART + 1, RLENGTH - 3) }'

# What moves or unmaps the lab's memory under an L1 (rare events): KVM's
# MMU notifier on the L1's memory, khugepaged's collapses, page migration
# and compaction. An L1 triple fault of the lab's own finds its page tables
# gone right after an exit: if these come just before it, a stale
# translation of QEMU's TCG after such a change is the suspect.
GUARD_MM_EVENTS="kvm/kvm_unmap_hva_range huge_memory/mm_collapse_huge_page migrate/mm_migrate_pages compaction/mm_compaction_migratepages"

# trace_guard_mm EVENTS: the memory events of the ring (GUARD_MM_EVENTS)
# before the L1's shutdown: how many, and the last 4, each with its
# distance in ms from the shutdown.
trace_guard_mm() {
	awk -v names="$(echo $GUARD_MM_EVENTS | sed 's|[a-z_]*/||g; s/ /|/g')" "$TRACE_AWK_TS"'
	BEGIN { mm = " (" names "):" }
	/kvm_exit: vcpu [0-9]* reason shutdown/ && !sd { sd = $0 }
	$0 ~ mm && !sd { n++; last[n % 4] = $0 }
	END {
		if (!sd) exit
		printf "  guard| memory events before the shutdown: %d\n", n
		for (i = (n > 4 ? n - 3 : 1); i <= n; i++)
			printf "  guard| %.1f ms before: %s\n", (ts(sd) - ts(last[i % 4])) * 1000, last[i % 4]
	}' "$1"
}

# After a failed scenario: 0 when an L1 shut down the lab's way, printing
# the vCPU's last events and the verdict's line (last); 1 otherwise, with
# the same for an L1 shutdown of another kind (for the log), or silent
# when the ring holds none.
trace_guard_verdict() {
	rm -f /tmp/guard.events
	[ "${guard:-0}" -eq 1 ] && [ "$(cat $T/tracing_on)" = 0 ] || return 1
	grep -v '^#' $T/trace >/tmp/guard.events
	grep -q 'l1_shutdown:' /tmp/guard.events || return 1
	trace_signature /tmp/guard.events >/tmp/guard.why
	_rc=$?
	_sd=$(grep 'kvm_exit: vcpu [0-9]* reason shutdown' /tmp/guard.events | tail -n 1 | awk '{ print $1 }')
	awk -v t="$_sd" '$1 == t' /tmp/guard.events | tail -n 12 | sed 's/^/  guard| /'
	trace_guard_mm /tmp/guard.events
	# The watcher's walk of the address that faulted last (CR2).
	_pt=$(grep 'ptwalk: va ' /tmp/guard.ptwalk 2>/dev/null | tail -n 1 | sed 's/.*ptwalk: //')
	echo "$(cat /tmp/guard.why)${_pt:+; in the L1's page tables: $_pt}"
	return $_rc
}

# trace_guard_summary EVENTS NOW: after a failure with no L1 shutdown or
# after an L1 stalled, what the lab KVM's vCPU threads did last (an L1 that
# hangs: still exiting, or silent; halting, or stuck in one exit): the span
# of time the ring holds, each thread's events in it, its longest silence
# and its last event, with how many seconds before NOW (the lab's uptime)
# each came, then the exit reasons of the last 2000 events.
trace_guard_summary() {
	[ -s "$1" ] || return 0
	awk -v now="$2" "$TRACE_AWK_TS"'
	/ kvm_(exit|entry): / {
		t = ts($0)
		if (!n) first = t
		if (!($1 in last)) order[++n] = $1
		else if (t - prev[$1] > gap[$1]) { gap[$1] = t - prev[$1]; gapend[$1] = t }
		last[$1] = $0; prev[$1] = t; count[$1]++; end = t
	}
	END {
		if (n) printf "  guard| the ring: events from %.1f s to %.1f s before\n", now - first, now - end
		for (i = 1; i <= n; i++) {
			th = order[i]; e = last[th]
			printf "  guard| %s: %d events, the longest silence %.1f s (to %.1f s before); last event %.1f s before: %s\n",
				th, count[th], gap[th], (th in gapend) ? now - gapend[th] : now - ts(e), now - ts(e),
				substr(e, index(e, "kvm_"))
		}
	}' "$1"
	tail -n 2000 "$1" | sed -n 's/.* kvm_exit: vcpu \([0-9]*\) reason \([a-z_]*\) .*/vcpu \1 \2/p' |
		sort | uniq -c | sort -rn | head -n 8 | sed 's/^ */  guard| last 2000 events: /'
}

# Tracing off between scenarios.
trace_guard_disarm() {
	[ "${guard:-0}" -eq 1 ] || return 0
	echo 0 >$T/tracing_on
	if [ -n "${guard_watch_pid:-}" ]; then
		kill "$guard_watch_pid" 2>/dev/null
		wait "$guard_watch_pid" 2>/dev/null
		guard_watch_pid=
	fi
}
