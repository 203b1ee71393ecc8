# SPDX-License-Identifier: MIT
# lab-timeout: 90
#
# trace-selftest — the lab KVM's trace (trace-lib.sh) catches an L1 triple
# fault: the probe's test=triplefault (an empty IDT, then ud2) runs as an L1
# under `nestvm run` with the trace on. The ring must hold the kprobe's
# event with the probe's RIP at triple_fault's ud2 and the SHUTDOWN exit,
# tracing must have stopped itself there (the trigger), and trace_dump must
# print them and the scenario's mark, and trace_signature must not take it
# for the lab's fault; then test=triplefault fault=pf, which ends as the
# lab's own L1 triple fault does, and which trace_signature must take for
# it. Metrics: events (kept in the ring).

. /lab/lib.sh
. /lab/scenarios/trace-lib.sh

lab_need_probe

trace=1
trace_setup
[ $trace -eq 1 ] || lab_skip "no tracefs in the lab"
# tf_run ARGS: the probe's test=triplefault ARGS as an L1, the trace on.
tf_run() {
	trace_start
	trace_mark "test=triplefault $*"
	timeout 60 /lab/bin/nestvm run --kernel $probe --memory 64M --cmdline "test=triplefault $*" \
		</dev/null >/tmp/tf.out 2>&1
	_rc=$?
	[ $_rc -eq 4 ] || lab_fail "test=triplefault $*: nestvm exit $_rc ($(lab_exit_status_name $_rc)), want 4 (triple fault)"
}

tf_run
[ "$(cat $T/tracing_on)" = 0 ] || lab_fail "tracing still on after the shutdown: the trigger did not fire"
grep -q 'reason shutdown' $T/trace || lab_fail "no SHUTDOWN exit in the ring"
trace_dump >/tmp/tf.dump
grep -E 'l1_shutdown:|reason shutdown|nestlab: test=' /tmp/tf.dump | head -n 6
grep -q 'l1_shutdown:' /tmp/tf.dump || lab_info "no kprobe event (unknown kernel build?)"
if grep -q 'l1_shutdown:' /tmp/tf.dump; then
	# The VMCB before KVM clears it: the probe's ud2 in triple_fault
	# (build/guest/probe.elf), not the reset state's 0xfff0.
	rip=$(sed -n 's/.*l1_shutdown:.* rip=\(0x[0-9a-f]*\).*/\1/p' /tmp/tf.dump | tail -n 1)
	lab_info "the kprobe saw the L1 at rip $rip"
	case $rip in
	0x1[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]) ;;
	*) lab_fail "the L1's rip at the shutdown is $rip, want one in the probe's text (0x1xxxxx)" ;;
	esac
fi
grep -q 'tracing_mark_write: nestlab: test=triplefault' /tmp/tf.dump || lab_fail "the mark is not in the dump"
# A #UD with an empty IDT is the guest's own doing, not the lab's fault.
trace_signature /tmp/trace.events && lab_fail "test=triplefault taken for the lab's fault"
lab_metrics "events=$(wc -l </tmp/trace.events)"

# One that ends as the lab's own does (an exit to user space, then at the
# next instruction a #PF through an unmapped IDT): the signature the lab's
# guard (trace_guard_verdict, /init) takes for the lab's fault.
tf_run fault=pf
grep -v '^#' $T/trace >/tmp/pf.events
grep -E 'reason (io|shutdown)|kvm_entry' /tmp/pf.events | tail -n 3
sig=$(trace_signature /tmp/pf.events) || lab_fail "fault=pf: $sig"
lab_info "fault=pf: $sig"
trace_finish nodump
lab_finish
