# SPDX-License-Identifier: MIT
# lab-timeout: 180
#
# nested-probe — the probe guest as an L1 hypervisor on the lab's KVM:
#  --nested on:  test=svm builds a VMCB (nested paging when offered) and runs
#                an L2 that computes, touches memory, does port I/O and ends
#                with VMMCALL; every #VMEXIT and the result are checked. Also
#                without nested paging (npt=off) and with 2 vCPUs.
#                test=vmmcall times an L1 VMMCALL handled by L0 (the lab KVM).
#  --nested off: test=svm nested=off must see no SVM and a #GP on EFER.SVME;
#                test=vmx nested=off the same for VMX and CR4.VMXE.
# Metrics: the L2 VMMCALL round trip handled by L1, the L1 VMMCALL round
# trip handled by L0 (median ns of 1000), and their ratio.

. /lab/lib.sh

lab_need_probe

# run NAME WANT NESTVM_ARGS...: one probe run; its output in /tmp/NAME.out.
run() {
	name=$1 want=$2
	shift 2
	t0=$(lab_now_cs)
	timeout 60 /lab/bin/nestvm run "$@" </dev/null >/tmp/$name.out 2>&1
	rc=$?
	secs=$(lab_secs $(($(lab_now_cs) - t0)))
	tr -d '\r' </tmp/$name.out | grep -E 'test=|round trip|error' | sed "s/^/  $name| /"
	if [ "$rc" = "$want" ]; then
		lab_info "$name: exit $rc as expected ($secs s)"
	else
		lab_fail "$name: nestvm exit $rc ($(lab_exit_status_name $rc)), want $want"
	fi
}

# The median round trip in ns from a probe's "... round trip N ns" line.
round_trip_ns() {
	tr -d '\r' <"/tmp/$1.out" | sed -n 's/.*round trip \([0-9]*\) ns.*/\1/p' | head -n 1
}

run svm-npt 0 --nested on --kernel $probe --memory 64M --cmdline "test=svm nested=on"
run svm-nonpt 0 --nested on --kernel $probe --memory 64M --cmdline "test=svm nested=on npt=off"
run svm-2cpu 0 --nested on --cpus 2 --kernel /lab/guest/probe.bzImage --memory 64M \
	--cmdline "test=svm nested=on"
run vmmcall 0 --nested on --kernel $probe --memory 64M --cmdline "test=vmmcall"
run svm-off 0 --nested off --kernel $probe --memory 64M --cmdline "test=svm nested=off"
run vmx-off 0 --nested off --kernel $probe --memory 64M --cmdline "test=vmx nested=off"

l2=$(round_trip_ns svm-npt)
l1=$(round_trip_ns vmmcall)
if [ -n "$l2" ] && [ -n "$l1" ] && [ "$l1" -gt 0 ]; then
	ratio=$(awk -v a="$l2" -v b="$l1" 'BEGIN { printf "%.1f", a / b }')
	lab_info "L2 VMMCALL handled by L1: $l2 ns; L1 VMMCALL handled by L0: $l1 ns; ratio $ratio"
	lab_metrics "l2_vmmcall_ns=$l2" "l1_vmmcall_ns=$l1" "ratio=$ratio"
else
	lab_fail "no round-trip figures (l2='$l2' l1='$l1')"
fi
lab_finish
