# SPDX-License-Identifier: MIT
# lab-timeout: 7200
#
# nested-soak[:SPEC] — the nested scenario's 2-vCPU L2 probe, many times:
# nestvm run --nested on boots a Linux L1 (2 vCPUs) whose nestvm runs the
# probe's test=smp cpus=2 as L2 in a loop (nested-soak.l1.sh). An L1 that
# crashes (nestvm exit 4: the L1 triple-faulted, KVM_EXIT_SHUTDOWN) is
# counted and a new L1 boots, until the runs are done or the time is up; so
# is an L1 that prints nothing for 120 s, 930 s with linux (hung: killed;
# the end of its console is shown). Fails if any L1 crashed or hung or any
# L2 run failed.
#
# SPEC: words joined by '.', in any order:
#   N            L2 runs wanted (default 100)
#   sSECS        time budget of the soak (default 1500; a new L1 is not
#                booted with less than 60 s left)
#   trace        trace the lab KVM (kvm:* events, tracefs) and print the
#                end of the trace ring when an L1 crashes or hangs
#   mmutrace     with trace, the lab KVM's kvmmmu:* events as well (its
#                nested page tables for the L1)
#   nohuge       no transparent huge pages in the lab (enabled and defrag
#                never, restored at the end) and the L1's RAM without them
#                (--hugepages off): no collapses or splits of the L1's RAM
#                under the lab KVM's nested page tables
#   nohold       no VM held open, neither in the lab nor in the L1 (the
#                baseline of the wedge's workaround: lib.sh, lab_kvm_hold_start)
#   PARAM-VALUE  reload the lab's kvm-amd with PARAM=VALUE (nested=1 kept),
#                e.g. vgif-0; restored at the end
#   l1kvm-PARAM-VALUE  the L1's kvm-amd parameter PARAM=VALUE
#   l1-OPTION    an L1 kernel command-line word (l1-nopti; "--" for "=":
#                l1-nohz_full--1)
#   pin-N        the L2 runs on the L1's CPU N (--cpu-affinity), altpin-N on the
#                even-numbered runs (A/B: pin-1.altpin-0.l1-nohz_full--1)
#   linux        the L2 is the Debian kernel (1 vCPU, 192 MiB, the plain L1
#                initramfs, no quiet) instead of the probe, as in
#                nested:linux; a failed L2 run shows the end of its console
#   l2-OPTION    an L2 kernel command-line word, with linux (l2-nowatchdog;
#                "--" for "=": l2-nohz--off)
#   l2alt-OPTION an L2 kernel word on the even-numbered L2 runs only (A/B)
#   l2prof       a profile of each L2 run: the L1 KVM's exits of its L2 by
#                reason, port, MSR, page-fault address and exit to user
#                space, the L1's huge pages, the L2's whole console and its
#                kernel log with timestamps (nested-soak.l1.sh), and the lab
#                KVM's exits of the L1 by reason and MSR for each L1 boot
#                ("prof|")
#   l1trace      the L1 traces its own KVM (kvm:*) during each L2 run and
#                prints the end of that trace when the run failed
# Example: tests/lab/lab.sh --timeout 3600 nested-soak:500.s3000.trace
#          tests/lab/lab.sh --timeout 1800 nested-soak:100.s1500.linux.l1trace.l2alt-nowatchdog
# Metrics: l2_runs, l1_crashes, l1_hangs, l2_failures, l1_boots, run_s
# (mean L1 time of one L2 run).

. /lab/lib.sh

lab_need_nestvm
[ -r /l1/initrd-nested.cpio ] || lab_skip "no /l1/initrd-nested.cpio in the lab"

runs=100 budget=1500 trace=0 mmutrace=0 hold=1 nohuge=0 kvmopts= l1kvm= l1opts= l2pin= l2altpin= l2kind= l2args= l2alt= l1trace=0 l2prof=0
for w in $(echo "${1:-}" | tr '.' ' '); do
	case $w in
	*[!0-9]*) ;;
	*) runs=$w; continue ;;
	esac
	case $w in
	s[0-9]*) budget=${w#s} ;;
	trace) trace=1 ;;
	mmutrace) mmutrace=1 ;;
	nohold) hold=0 ;;
	nohuge) nohuge=1 ;;
	l1kvm-*-*) w=${w#l1kvm-}; l1kvm="$l1kvm${l1kvm:+,}${w%%-*}=${w#*-}" ;;
	l1-*) l1opts="$l1opts $(echo "${w#l1-}" | sed "s/--/=/g")" ;;
	pin-[0-9]*) l2pin=${w#pin-} ;;
	altpin-[0-9]*) l2altpin=${w#altpin-} ;;
	linux) l2kind=linux ;;
	l2alt-*) w=$(echo "${w#l2alt-}" | sed "s/--/=/g"); l2alt="$l2alt${l2alt:+,}$w" ;;
	l2-*) w=$(echo "${w#l2-}" | sed "s/--/=/g"); l2args="$l2args${l2args:+,}$w" ;;
	l1trace) l1trace=1 ;;
	l2prof) l2prof=1 ;;
	*-*) kvmopts="$kvmopts ${w%%-*}=${w#*-}" ;;
	*) lab_fail "unknown word '$w' in '$1'"; lab_finish ;;
	esac
done

# kvm-amd with parameters "$@" (and nested=1).
lab_kvm_reload() {
	rmmod kvm_amd || return 1
	# shellcheck disable=SC2068 # one word per parameter
	insmod /lab/modules/kvm-amd.ko nested=1 $@ || return 1
	[ -c /dev/kvm ]
}
lab_kvm_hold_stop
THP=/sys/kernel/mm/transparent_hugepage
l1huge=
if [ $nohuge -eq 1 ]; then
	thp_was="$(sed 's/.*\[\(.*\)\].*/\1/' $THP/enabled) $(sed 's/.*\[\(.*\)\].*/\1/' $THP/defrag)"
	echo never >$THP/enabled && echo never >$THP/defrag || { lab_fail "cannot turn THP off in the lab"; lab_finish; }
	l1huge="--hugepages off"
fi
lab_info "lab THP: $(cat $THP/enabled), defrag $(cat $THP/defrag)"
if [ -n "$kvmopts" ]; then
	lab_kvm_reload $kvmopts || { lab_fail "cannot reload kvm-amd with$kvmopts"; lab_finish; }
fi
held=no
[ $hold -eq 1 ] && lab_kvm_hold_start && held=yes
lab_info "a VM held open in the lab: $held"
params=
for p in /sys/module/kvm_amd/parameters/*; do
	params="$params ${p##*/}=$(cat "$p")"
done
lab_info "lab kvm-amd:$params"

# The L1's state at its triple fault. On a SHUTDOWN intercept the lab's
# kvm-amd clears the VMCB before it exits to nestvm (which then shows the
# reset state), but shutdown_interception() still finds it as it was: a
# kprobe there prints the L1's RIP, CR2 (the address of the first #PF),
# CR3, RSP, RFLAGS and GS base from the VMCB (struct vmcb: save area at
# 0x400, Linux's arch/x86/include/asm/svm.h). The offset of vmcb in struct
# vcpu_svm depends on the kernel build: objdump -d kvm-amd.ko, the load
# before shutdown_interception's first call (clear_page(svm->vmcb)).
shutdown_probe() {
	case $(uname -r) in
	6.1.0-57-cloud-amd64) _vmcb=0x1998 ;;
	*)
		lab_info "no L1 shutdown probe: the offset of the VMCB is not known for $(uname -r)"
		return 0
		;;
	esac
	_v="+$_vmcb(%di)"
	if echo "p:nestlab/l1_shutdown shutdown_interception rip=+0x578($_v):x64" \
		"cr2=+0x640($_v):x64 cr3=+0x550($_v):x64 rsp=+0x5d8($_v):x64" \
		"rflags=+0x570($_v):x64 cr0=+0x558($_v):x64 cr4=+0x548($_v):x64" \
		"efer=+0x4d0($_v):x64 gsbase=+0x458($_v):x64 trbase=+0x498($_v):x64" \
		"idtbase=+0x488($_v):x64" >>$T/kprobe_events 2>/dev/null &&
		echo 1 >$T/events/nestlab/l1_shutdown/enable 2>/dev/null; then
		lab_info "kprobe nestlab/l1_shutdown: the L1's registers at a triple fault"
	else
		lab_info "no L1 shutdown probe: kprobe_events refused it"
	fi
}

T=/sys/kernel/tracing
if [ $trace -eq 1 ]; then
	[ -d $T/events ] || mount -t tracefs tracefs $T 2>/dev/null ||
		T=/sys/kernel/debug/tracing
	if [ -w $T/tracing_on ]; then
		echo 0 >$T/tracing_on
		echo 16384 >$T/buffer_size_kb
		echo 1 >$T/events/kvm/enable
		[ $mmutrace -eq 1 ] && echo 1 >$T/events/kvmmmu/enable
		lab_info "tracing kvm:* in $T ($(cat $T/buffer_size_kb) KiB per CPU)"
		shutdown_probe
	else
		lab_info "no tracefs: tracing off"
		trace=0
	fi
fi

# The end of the trace ring: what the lab KVM saw up to the crash.
trace_dump() {
	echo 0 >$T/tracing_on
	cat $T/trace >/tmp/trace.txt
	# Up to the L1's shutdown when there is one: the VM's teardown after
	# it floods the ring (with mmutrace, all of the last 500 events).
	grep -v '^#' /tmp/trace.txt >/tmp/trace.events
	_end=$(grep -n 'reason shutdown' /tmp/trace.events | tail -n 1 | cut -d: -f1)
	[ -n "$_end" ] || _end=$(wc -l </tmp/trace.events)
	lab_info "trace: $(wc -l </tmp/trace.events) events kept; the last ${TRACE_LINES:-500} up to event $_end:"
	head -n "$_end" /tmp/trace.events | tail -n "${TRACE_LINES:-500}" | sed 's/^/  trace| /'
	grep 'l1_shutdown:' /tmp/trace.events | tail -n 4 | sed 's/^/  trace| /'
	lab_info "trace: the last 20000 events by kind (exit reason, vCPU):"
	grep -v '^#' /tmp/trace.txt | tail -n 20000 |
		sed -n 's/.* \(kvm_[a-z_]*\): *\(vcpu [0-9]*\)\{0,1\}[ ,]*\(reason [A-Za-z_]*\)\{0,1\}.*/\1 \2 \3/p' |
		sort | uniq -c | sort -rn | head -n 40 | sed 's/^/  trace| /'
	lab_info "trace: exits other than npf/intr/vmrun/vmmcall/io/msr/hlt in the last 20000:"
	grep -v '^#' /tmp/trace.txt | tail -n 20000 | grep -E 'kvm_exit|kvm_nested_vmexit' |
		grep -vE 'reason (EXIT_)?(npf|NPF|intr|INTR|vmrun|VMRUN|vmmcall|VMMCALL|io|IOIO|msr|MSR|hlt|HLT)[ :]' |
		tail -n 60 | sed 's/^/  trace| /'
}

# Histograms of the lab KVM's exits of the L1 over one L1 boot: "start"
# (cleared) or "dump".
lab_prof() {
	[ -d $T/events ] || mount -t tracefs tracefs $T 2>/dev/null || return 0
	for _ev in kvm_exit kvm_nested_vmexit kvm_nested_vmexit_inject kvm_msr; do
		_keys=exit_reason.hex
		grep -q 'field:.* exit_reason;' $T/events/kvm/$_ev/format || _keys=exit_code.hex
		[ $_ev = kvm_msr ] && _keys=ecx.hex,write
		if [ "$1" = start ]; then
			echo "hist:keys=$_keys:sort=hitcount.descending:size=256" >$T/events/kvm/$_ev/trigger 2>/dev/null ||
				lab_info "no histogram on kvm:$_ev ($(grep -o 'field:[^;]*' $T/events/kvm/$_ev/format | tr '\n' ' '))"
			echo "hist:keys=$_keys:sort=hitcount.descending:size=256:clear" >>$T/events/kvm/$_ev/trigger 2>/dev/null
		else
			lab_info "prof: lab KVM kvm:$_ev by $_keys over L1 boot $boots:"
			grep -v '^#' $T/events/kvm/$_ev/hist | grep . | head -n 30 | sed 's/^/  prof| /'
		fi
	done
}

# The L1 prints a line after each L2 run: a probe run takes seconds, an L2
# Linux boot 95-120 s of L1 time on a loaded host, 300 s at load 6, more
# than 420 s at load 12, under the L1's own limit of 900 s.
stall=120
[ "$l2kind" = linux ] && stall=930
done_runs=0 crashes=0 hangs=0 l2fails=0 boots=0 run_cs_sum=0
t_start=$(lab_now_cs)
while [ $done_runs -lt "$runs" ]; do
	left=$((budget - ($(lab_now_cs) - t_start) / 100))
	[ $left -ge 60 ] || break
	boots=$((boots + 1))
	cmdline="console=ttyS0 quiet panic=-1 nokaslr$l1opts nestlab.l1=nested-soak"
	cmdline="$cmdline nestlab.soakruns=$((runs - done_runs)) nestlab.soaksecs=$((left - 30))"
	[ -n "$l1kvm" ] && cmdline="$cmdline nestlab.l1kvm=$l1kvm"
	[ $hold -eq 0 ] && cmdline="$cmdline nestlab.hold=0"
	[ -n "$l2kind" ] && cmdline="$cmdline nestlab.soakl2=$l2kind"
	[ -n "$l2args" ] && cmdline="$cmdline nestlab.l2args=$l2args"
	[ -n "$l2alt" ] && cmdline="$cmdline nestlab.l2alt=$l2alt"
	[ -n "$l2pin" ] && cmdline="$cmdline nestlab.l2pin=$l2pin"
	[ -n "$l2altpin" ] && cmdline="$cmdline nestlab.l2altpin=$l2altpin"
	[ $l1trace -eq 1 ] && cmdline="$cmdline nestlab.l1trace=1"
	[ $l2prof -eq 1 ] && cmdline="$cmdline nestlab.l2prof=1" && lab_prof start
	if [ $trace -eq 1 ]; then
		echo >$T/trace
		echo 1 >$T/tracing_on
	fi
	lab_info "L1 boot $boots: $((runs - done_runs)) L2 runs to go, $left s left"
	# shellcheck disable=SC2086 # $l1huge: two words or none
	L1_STALL_SECS=$stall lab_l1_run soak $((left + 60)) --nested on $l1huge --kernel /lab/kernel/vmlinux \
		--initrd /l1/initrd-nested.cpio --cpus 2 --memory 512M --cmdline "$cmdline"
	tr -d '\r' <"$l1_out" | grep '^L1-SOAK ' >/tmp/soak.lines
	n=$(wc -l </tmp/soak.lines)
	bad=$(grep -vc ' rc=0 ' /tmp/soak.lines)
	cs=$(awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^secs=/) s += substr($i, 6) } END { printf "%d", s * 100 }' /tmp/soak.lines)
	done_runs=$((done_runs + n)) l2fails=$((l2fails + bad)) run_cs_sum=$((run_cs_sum + cs))
	[ "$bad" -gt 0 ] && tr -d '\r' <"$l1_out" | grep -E '^L1-SOAK |^L2\||^L1-DMESG\|' |
		grep -v ' rc=0 ' | sed 's/^/  /'
	case $l1_rc in
	0) ;;
	4)
		crashes=$((crashes + 1))
		done_runs=$((done_runs + 1)) # the L2 run under way
		lab_fail "L1 crashed (nestvm exit 4) during L2 run $((n + 1)) of L1 boot $boots (soak run $done_runs)"
		tr -d '\r' <"$l1_out" | grep -v '^L1-SOAK ' | tail -n 25 | sed 's/^/  L1| /'
		[ $trace -eq 1 ] && trace_dump
		;;
	*)
		if [ "$l1_stalled" = 1 ]; then
			hangs=$((hangs + 1))
			done_runs=$((done_runs + 1))
			lab_info "the L1 hung during L2 run $((n + 1)) of L1 boot $boots (soak run $done_runs)"
			tr -d '\r' <"$l1_out" | grep -v '^L1-SOAK ' | tail -n 25 | sed 's/^/  L1| /'
			[ $trace -eq 1 ] && trace_dump
			continue
		fi
		lab_fail "L1 boot $boots: nestvm exit status $l1_rc ($(lab_exit_status_name $l1_rc))"
		tr -d '\r' <"$l1_out" | grep -v '^L1-SOAK ' | tail -n 25 | sed 's/^/  L1| /'
		break
		;;
	esac
	[ $l2prof -eq 1 ] && lab_prof dump
	lab_info "so far: $done_runs L2 runs, $crashes L1 crashes, $hangs L1 hangs, $l2fails L2 failures, $boots L1 boots"
done
if [ $trace -eq 1 ]; then
	echo 0 >$T/tracing_on
	echo 0 >$T/events/kvm/enable
	echo 0 >$T/events/kvmmmu/enable
	# The probe holds kvm-amd's text: off before kvm-amd is reloaded.
	echo 0 >$T/events/nestlab/l1_shutdown/enable 2>/dev/null
	echo "-:nestlab/l1_shutdown" >>$T/kprobe_events 2>/dev/null
fi
lab_kvm_hold_stop
if [ $nohuge -eq 1 ]; then
	set -- $thp_was
	echo "$1" >$THP/enabled
	echo "$2" >$THP/defrag
fi
if [ -n "$kvmopts" ]; then
	lab_kvm_reload || lab_fail "cannot reload kvm-amd with nested=1"
fi
lab_kvm_hold_start || lab_info "warning: the lab's held-open VM did not come back"

mean=-
[ $done_runs -gt $crashes ] && mean=$(lab_secs $((run_cs_sum / (done_runs - crashes))))
[ $hangs -gt 0 ] && lab_fail "$hangs L1 hang(s)"
lab_info "soak: $done_runs L2 runs, $crashes L1 crashes, $hangs L1 hangs, $l2fails L2 failures, $boots L1 boots," \
	"$(lab_secs $(($(lab_now_cs) - t_start))) s"
lab_metrics "l2_runs=$done_runs" "l1_crashes=$crashes" "l1_hangs=$hangs" "l2_failures=$l2fails" "l1_boots=$boots" "run_s=$mean"
[ $done_runs -ge "$runs" ] || lab_info "only $done_runs of $runs L2 runs within the budget of $budget s"
lab_finish
