# SPDX-License-Identifier: MIT
# lab-timeout: 7200
# lab-guard: off (a soak counts its L1 triple faults; tests/lab/scenarios/trace-lib.sh)
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
. /lab/scenarios/trace-lib.sh

lab_need_nestvm
[ -r /l1/initrd-nested.cpio ] || lab_skip "no /l1/initrd-nested.cpio in the lab"

runs=100 budget=1500 hold=1 nohuge=0 kvmopts= l1kvm= l1opts= l2pin= l2altpin= l2kind= l2args= l2alt= l1trace=0 l2prof=0
for w in $(echo "${1:-}" | tr '.' ' '); do
	case $w in
	*[!0-9]*) ;;
	*) runs=$w; continue ;;
	esac
	trace_word "$w" && continue
	case $w in
	s[0-9]*) budget=${w#s} ;;
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

trace_setup

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
	trace_start
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
		trace_dump
		;;
	*)
		if [ "$l1_stalled" = 1 ]; then
			hangs=$((hangs + 1))
			done_runs=$((done_runs + 1))
			lab_info "the L1 hung during L2 run $((n + 1)) of L1 boot $boots (soak run $done_runs)"
			tr -d '\r' <"$l1_out" | grep -v '^L1-SOAK ' | tail -n 25 | sed 's/^/  L1| /'
			trace_dump
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
trace_finish nodump # dumped after each crash or hang already
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
