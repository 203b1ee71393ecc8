# SPDX-License-Identifier: MIT
#
# L1 part of nested-soak: loads kvm-amd (with the parameters of
# nestlab.l1kvm=P=V,P=V if given) and runs the 2-vCPU L2 probe (test=smp
# cpus=2) again and again, nestlab.soakruns times at most and until the L1's
# uptime reaches nestlab.soaksecs. One line per L2 run:
#   L1-SOAK i=N rc=R secs=S
# (the L2's output only when it failed), then "L1-SOAK-END runs=N". One more
# L2 stays open meanwhile (l1_kvm_hold) unless nestlab.hold=0.
# nestlab.soakl2=linux: the L2 is the Debian kernel with the plain L1
# initramfs (as in nested:linux, but without quiet), plus the words of
# nestlab.l2args=W,W on its command line (and those of nestlab.l2alt=W,W on
# the even-numbered runs only: an A/B comparison in one L1); a failed run prints the last 60
# lines of the L2's console and the L1's kernel messages ("L1-DMESG|").
# nestlab.l1trace=1: the L1 traces its own KVM (kvm:*, tracefs) during each
# L2 run and prints the end of that trace ("L1-TRACE|") when the run failed.
# nestlab.l2pin=N: the Linux L2 runs on the L1's CPU N (nestlab.l2altpin=N:
# on the even-numbered runs).
# nestlab.l2prof=1: a profile of each L2 run from the L1's side: the L1 KVM's
# exits of its L2 counted by reason, port, MSR and exit to user space (tracefs
# histograms, "L1-PROF|"), and the L2's whole console with its timestamps.

arg() {
	for w in $(cat /proc/cmdline); do
		case "$w" in "$1="*) echo "${w#*=}"; return ;; esac
	done
}
runs=$(arg nestlab.soakruns)
secs=$(arg nestlab.soaksecs)
l2kind=$(arg nestlab.soakl2)
l2args=$(arg nestlab.l2args | tr ',' ' ')
l2alt=$(arg nestlab.l2alt | tr ',' ' ')
l2pin=$(arg nestlab.l2pin)
l2altpin=$(arg nestlab.l2altpin)
l1trace=$(arg nestlab.l1trace)
l2prof=$(arg nestlab.l2prof)
dmesg=
[ "$l2prof" = 1 ] && dmesg=" nestlab.dmesg=1"
runs=${runs:-100}
secs=${secs:-600}

grep -qw svm /proc/cpuinfo || { echo "L1: no svm in the L1's /proc/cpuinfo"; exit 1; }
kvmopts=$(arg nestlab.l1kvm | tr ',' ' ')
hold=yes
[ "$(arg nestlab.hold)" = 0 ] && hold=no
. /l1lib.sh
# shellcheck disable=SC2086 # one word per module parameter
l1_kvm_start "$([ $hold = yes ] && echo hold)" $kvmopts || exit 1
echo "L1: kvm-amd loaded${kvmopts:+ ($kvmopts)}, VM held open: $hold; L2 runs: at most $runs, until uptime $secs s"

T=/sys/kernel/tracing
if [ "$l1trace" = 1 ]; then
	mount -t tracefs tracefs $T 2>/dev/null
	if [ -w $T/tracing_on ]; then
		echo 0 >$T/tracing_on
		echo 8192 >$T/buffer_size_kb
		echo 1 >$T/events/kvm/enable
		echo "L1: tracing kvm:* of the L1's KVM"
	else
		echo "L1: no tracefs in the L1: tracing off"
		l1trace=0
	fi
fi

# The L1's trace of a failed L2 run: its end, the exits by kind, the
# injected exceptions and the nested exits other than the frequent ones.
l1_trace_dump() {
	echo 0 >$T/tracing_on
	grep -v '^#' $T/trace >/tmp/l1trace.txt
	echo "L1-TRACE| $(wc -l </tmp/l1trace.txt) events kept; the last ${L1_TRACE_LINES:-150}:"
	tail -n "${L1_TRACE_LINES:-150}" /tmp/l1trace.txt | sed 's/^/L1-TRACE| /'
	echo "L1-TRACE| events by kind (exit reason) over the whole trace:"
	sed -n 's/.* \(kvm_[a-z_]*\): *\(vcpu [0-9]*\)\{0,1\}[ ,]*\(reason [A-Za-z_]*\)\{0,1\}.*/\1 \3/p' /tmp/l1trace.txt |
		sort | uniq -c | sort -rn | head -n 30 | sed 's/^/L1-TRACE| /'
	echo "L1-TRACE| exception injections, MSR and unusual exits (last 60):"
	grep -E 'kvm_inj_exception|kvm_msr|kvm_nested_vmexit_inject|triple|shutdown|SHUTDOWN' /tmp/l1trace.txt |
		grep -vE 'msr_read|msr_write.*(0x83f|0x838|0x6e0|0x830)' | tail -n 60 | sed 's/^/L1-TRACE| /'
}

# Histograms of the L1 KVM's events (counts only, cheap enough to leave on
# for a whole L2 boot): EVENT KEYS per line.
prof_events='kvm_exit exit_reason.hex
kvm_pio port.hex,rw
kvm_msr ecx.hex,write
kvm_userspace_exit reason
kvm_page_fault error_code.hex
kvm_page_fault fault_address.buckets=0x200000'
if [ "$l2prof" = 1 ]; then
	[ -d $T/events ] || mount -t tracefs tracefs $T 2>/dev/null
	echo "$prof_events" | while read -r ev keys; do
		echo "hist:keys=$keys:sort=hitcount.descending:size=256" >$T/events/kvm/$ev/trigger 2>/dev/null ||
			echo "L1: no histogram on kvm:$ev by $keys (fields: $(grep -o 'field:[^;]*' $T/events/kvm/$ev/format | tr '\n' ' '))"
	done
	echo "L1: transparent huge pages $(cat /sys/kernel/mm/transparent_hugepage/enabled)," \
		"defrag $(cat /sys/kernel/mm/transparent_hugepage/defrag)"
fi
prof_dump() {
	echo "$prof_events" | while read -r ev keys; do
		# An event with two histograms has them both in one file.
		case " $shown " in *" $ev "*) ;; *)
			echo "L1-PROF| kvm:$ev:"
			grep -v '^#' $T/events/kvm/$ev/hist | grep . | head -n 60 | sed 's/^/L1-PROF| /'
			shown="$shown $ev" ;;
		esac
		echo "hist:keys=$keys:sort=hitcount.descending:size=256:clear" >>$T/events/kvm/$ev/trigger
	done
}

probe=/l1/guest/probe.elf
i=0 extra=
while [ $i -lt "$runs" ]; do
	read -r u0 _ </proc/uptime
	[ "${u0%.*}" -ge "$secs" ] && break
	i=$((i + 1))
	if [ "$l1trace" = 1 ]; then
		echo >$T/trace
		echo 1 >$T/tracing_on
	fi
	dmesg -c >/dev/null
	if [ "$l2kind" = linux ]; then
		extra= pin=$l2pin
		[ $((i % 2)) = 0 ] && extra=$l2alt && pin=${l2altpin:-$l2pin}
		# shellcheck disable=SC2086 # one word per kernel argument
		# 95-120 s of L1 time on a loaded host, 300 s at load 6, more than
		# 420 s at load 12 (nice 10).
		if [ "$l2prof" = 1 ]; then
			# The L1's anonymous huge pages while the L2 runs (its RAM).
			(while :; do grep AnonHugePages /proc/meminfo; sleep 5; done) >/tmp/thp.log 2>&1 &
			thp_pid=$!
		fi
		timeout 900 /l1/bin/nestvm run ${pin:+--cpu-affinity "$pin"} --kernel /l1/l2/bzImage --initrd /l1/l2/initrd.cpio \
			--cpus 1 --memory 192M \
			--cmdline "console=ttyS0 panic=-1 $l2args $extra$dmesg nestlab.l1=linux-boot" </dev/null >/tmp/l2.out 2>&1
		rc=$?
		if [ "$l2prof" = 1 ]; then
			kill $thp_pid
			echo "L1-PROF| L1 AnonHugePages during the run: $(sort -u /tmp/thp.log | tr -s ' ' | tr '\n' ' ')"
		fi
		# The L2 ran its /init to the end: powered off on its own.
		[ $rc = 0 ] && ! grep -q '^L1-END rc=0' /tmp/l2.out && rc=99
	else
		timeout 60 /l1/bin/nestvm run --kernel $probe --memory 64M --cpus 2 \
			--cmdline "console=ttyS0 test=smp cpus=2" </dev/null >/tmp/l2.out 2>&1
		rc=$?
	fi
	[ "$l1trace" = 1 ] && echo 0 >$T/tracing_on
	read -r u1 _ </proc/uptime
	echo "L1-SOAK i=$i rc=$rc secs=$(awk -v a="$u0" -v b="$u1" 'BEGIN { printf "%.2f", b - a }')${extra:+ alt=$extra}${pin:+ cpu=$pin}"
	if [ $rc != 0 ]; then
		tr -d '\r' </tmp/l2.out | tail -n 60 | sed 's/^/L2| /'
		dmesg | tail -n 20 | sed 's/^/L1-DMESG| /'
		[ "$l1trace" = 1 ] && l1_trace_dump
	elif [ "$l2prof" = 1 ]; then
		tr -d '\r' </tmp/l2.out | sed 's/^/L2| /'
	elif [ "$l2kind" = linux ]; then
		# What a good run looks like, for comparison: the L2's uptime at its
		# /init and any L1 KVM complaints (unhandled MSRs) during the run.
		tr -d '\r' </tmp/l2.out | grep -m 1 '^L1-INFO ' | sed 's/^/L2| /'
		dmesg | grep -iE 'unhandled|wrmsr|rdmsr' | tail -n 5 | sed 's/^/L1-DMESG| /'
	fi
	[ "$l2prof" = 1 ] && prof_dump
done
echo "L1-SOAK-END runs=$i"
