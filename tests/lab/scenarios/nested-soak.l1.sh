# SPDX-License-Identifier: MIT
#
# L1 part of nested-soak: loads kvm-amd (with the parameters of
# nestlab.l1kvm=P=V,P=V if given) and runs the 2-vCPU L2 probe (test=smp
# cpus=2) again and again, nestlab.soakruns times at most and until the L1's
# uptime reaches nestlab.soaksecs. One line per L2 run:
#   L1-SOAK i=N rc=R secs=S
# (the L2's output only when it failed), then "L1-SOAK-END runs=N". One more
# L2 stays open meanwhile (l1_kvm_hold) unless nestlab.hold=0.

arg() {
	for w in $(cat /proc/cmdline); do
		case "$w" in "$1="*) echo "${w#*=}"; return ;; esac
	done
}
runs=$(arg nestlab.soakruns)
secs=$(arg nestlab.soaksecs)
runs=${runs:-100}
secs=${secs:-600}

grep -qw svm /proc/cpuinfo || { echo "L1: no svm in the L1's /proc/cpuinfo"; exit 1; }
kvmopts=$(arg nestlab.l1kvm | tr ',' ' ')
for m in irqbypass kvm kvm-amd; do
	opts=
	[ $m = kvm-amd ] && opts=$kvmopts
	# shellcheck disable=SC2086 # one word per module parameter
	insmod /l1/modules/$m.ko $opts || { echo "L1: insmod $m.ko $opts failed"; dmesg | tail -n 5; exit 1; }
done
[ -c /dev/kvm ] || { echo "L1: no /dev/kvm after loading kvm-amd"; exit 1; }
# One L2 that stays open (the probe, halted; its second vCPU never starts) so
# that the L2 runs below never take the L1's VM count 0 -> 1 -> 0: each such
# flip makes the L1's KVM flip static keys and Linux patch its scheduler's
# text with an INT3, and QEMU's TCG can run a stale copy of that INT3 for good
# (tests/lab/README.md, "The lab's wedge").
l1_kvm_hold() {
	/l1/bin/nestvm run --kernel /l1/guest/probe.elf --memory 16M --cpus 2 --pit off \
		--console file:/tmp/hold.out --cmdline "test=idle" </dev/null >/dev/null 2>&1 &
	for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
		grep -q 'test=idle: up' /tmp/hold.out 2>/dev/null && return 0
		sleep 0.5
	done
	echo "L1: the VM that keeps KVM's keys set did not come up"
	return 1
}
hold=no
[ "$(arg nestlab.hold)" = 0 ] || { l1_kvm_hold && hold=yes; }
echo "L1: kvm-amd loaded${kvmopts:+ ($kvmopts)}, VM held open: $hold; L2 runs: at most $runs, until uptime $secs s"

probe=/l1/guest/probe.elf
i=0
while [ $i -lt "$runs" ]; do
	read -r u0 _ </proc/uptime
	[ "${u0%.*}" -ge "$secs" ] && break
	i=$((i + 1))
	timeout 60 /l1/bin/nestvm run --kernel $probe --memory 64M --cpus 2 \
		--cmdline "console=ttyS0 test=smp cpus=2" </dev/null >/tmp/l2.out 2>&1
	rc=$?
	read -r u1 _ </proc/uptime
	echo "L1-SOAK i=$i rc=$rc secs=$(awk -v a="$u0" -v b="$u1" 'BEGIN { printf "%.2f", b - a }')"
	[ $rc = 0 ] || tr -d '\r' </tmp/l2.out | tail -n 30 | sed 's/^/L2| /'
done
echo "L1-SOAK-END runs=$i"
