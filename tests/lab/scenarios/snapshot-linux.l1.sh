# SPDX-License-Identifier: MIT
#
# L1 part of snapshot-linux: a Linux guest hypervisor whose own nestvm runs
# one L2 probe that computes for a while and prints a deterministic result,
# its console straight to the L1's (so the lab sees the L2's progress lines
# in the L1 VM's console.log). nestlab.l2=WORKLOAD on the kernel command line:
#   memgen-PASSES   test=memgen passes=PASSES ("probe: memgen: pass P/N",
#                   "probe: test=memgen: result=0x... passes=N")
#   svm-ROUNDS[-BLOCKS]  test=svm l2work=ROUNDS l2blocks=BLOCKS under
#                   --nested on: the L2 is itself a hypervisor, its L3
#                   computes ("l2work round R/N")
# Prints "L1-L2-BEGIN" before the L2 starts and "L1-L2 rc=N secs=S" after.

cpus=$(grep -c ^processor /proc/cpuinfo)
svm=no
grep -qw svm /proc/cpuinfo && svm=yes
echo "L1-INFO cpus=$cpus uptime=$L1_INIT_UPTIME svm=$svm kernel=$(uname -r)"
[ $svm = yes ] || { echo "L1: no svm in the L1's /proc/cpuinfo"; exit 1; }
for m in irqbypass kvm kvm-amd; do
	insmod /l1/modules/$m.ko || { echo "L1: insmod $m.ko failed"; dmesg | tail -n 5; exit 1; }
done
[ -c /dev/kvm ] || { echo "L1: no /dev/kvm after loading kvm-amd"; exit 1; }

# One L2 held open (halted), as in nested.l1.sh: the L1's VM count then never
# goes 0 -> 1 -> 0 (tests/lab/README.md, "The lab's wedge").
/l1/bin/nestvm run --kernel /l1/guest/probe.elf --memory 16M --cpus 2 --pit off \
	--console file:/tmp/hold.out --cmdline "test=idle" </dev/null >/dev/null 2>&1 &
i=0
until grep -q 'test=idle: up' /tmp/hold.out 2>/dev/null; do
	i=$((i + 1))
	[ $i -le 20 ] || { echo "L1: the VM that keeps KVM's keys set did not come up"; exit 1; }
	sleep 0.5
done

work=
for w in $(cat /proc/cmdline); do
	case "$w" in nestlab.l2=*) work=${w#*=} ;; esac
done
case "$work" in
memgen-[0-9]*) opts= cl="test=memgen passes=${work#memgen-}" ;;
svm-[0-9]*-[0-9]*)
	r=${work#svm-}
	opts="--nested on" cl="test=svm iterations=0 l2work=${r%-*} l2blocks=${r#*-}"
	;;
svm-[0-9]*) opts="--nested on" cl="test=svm iterations=0 l2work=${work#svm-}" ;;
*) echo "L1: nestlab.l2='$work': want memgen-PASSES or svm-ROUNDS[-BLOCKS]"; exit 2 ;;
esac
echo "L1: nestvm run $opts --kernel /l1/guest/probe.elf --memory 64M --cmdline \"$cl\""
echo "L1-L2-BEGIN"
read -r u0 _ </proc/uptime
# shellcheck disable=SC2086 # $opts: words
/l1/bin/nestvm run $opts --kernel /l1/guest/probe.elf --memory 64M --cmdline "$cl" </dev/null
rc=$?
read -r u1 _ </proc/uptime
echo "L1-L2 rc=$rc secs=$(awk -v a="$u0" -v b="$u1" 'BEGIN { printf "%.2f", b - a }')"
exit $rc
