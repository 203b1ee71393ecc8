# SPDX-License-Identifier: MIT
#
# L1 part of nested: the L1 (booted by nestvm --nested on) loads KVM and its
# own nestvm runs probe guests as L2 (lab KVM -> nestvm -> L1 Linux + KVM ->
# nestvm -> L2); with nestlab.l2=linux on its command line, a Linux L2 too.
# Prints "L1-L2 name=N rc=R want=W secs=S" per L2 run, and for the Linux L2
# "L1-L2INFO" with what that L2 saw (linux-boot.l1.sh).

cpus=$(grep -c ^processor /proc/cpuinfo)
svm=no
grep -qw svm /proc/cpuinfo && svm=yes
echo "L1-INFO cpus=$cpus uptime=$L1_INIT_UPTIME svm=$svm kernel=$(uname -r)"
if [ $svm = no ]; then
	echo "L1: no svm in the L1's /proc/cpuinfo: nestvm --nested on did not expose AMD-V"
	exit 1
fi
. /l1lib.sh
l1_kvm_start hold || exit 1
echo "L1: kvm-amd loaded, /dev/kvm present, a VM held open"

# The L1 is a host that can nest now: nestvm's readiness report must say so.
/l1/bin/nestvm nested status >/tmp/status.out 2>&1
status_rc=$?
sed 's/^/L1-STATUS| /' /tmp/status.out
echo "L1-NESTED-STATUS rc=$status_rc"

fails=0
# l2 NAME WANT_STATUS NESTVM_ARGS...: one L2 guest, its output marked "L2|".
l2() {
	name=$1 want=$2
	shift 2
	echo "L1: nestvm run $*"
	read -r u0 _ </proc/uptime
	timeout "${L2_TIMEOUT:-120}" /l1/bin/nestvm run ${L2_PIN:+--cpu-affinity "$L2_PIN"} "$@" \
		</dev/null >/tmp/l2.out 2>&1
	rc=$?
	read -r u1 _ </proc/uptime
	tr -d '\r' </tmp/l2.out | sed 's/^/L2| /'
	secs=$(awk -v a="$u0" -v b="$u1" 'BEGIN { printf "%.2f", b - a }')
	echo "L1-L2 name=$name rc=$rc want=$want secs=$secs"
	[ "$rc" = "$want" ] || fails=$((fails + 1))
}

probe=/l1/guest/probe.elf
l2 exit 0 --kernel $probe --memory 64M --cmdline "console=ttyS0 test=exit"
l2 cpuid 0 --kernel $probe --memory 64M --cpus 2 --cmdline "console=ttyS0 test=cpuid nested=off cpus=2"
l2 smp 0 --kernel $probe --memory 64M --cpus 2 --cmdline "console=ttyS0 test=smp cpus=2"
l2 poweroff 0 --kernel /l1/guest/probe.bzImage --memory 64M --cmdline "console=ttyS0 test=poweroff"
case " $(cat /proc/cmdline) " in
*" nestlab.l2=linux "*)
	# Linux as L2, with the plain L1 initramfs: its markers come out as
	# "L2| L1-INFO ..." and so on.
	# Every level is emulated in software here: the L2 Linux takes 30 to 90 s
	# on an idle lab host. Past its limit it is reported, not failed.
	L2_TIMEOUT=${L2_LINUX_TIMEOUT:-200}
	# On the L1's tickless CPU (nestlab.l1=nested:linux boots the L1 with
	# nohz_full=1): the L1's own timer ticks no longer take the L2 out to
	# the L1, three quarters of its interrupt exits (README.md, "The L2
	# Linux boot").
	grep -qw nohz_full=1 /proc/cmdline && L2_PIN=1
	fails_before=$fails
	l2 linux 0 --kernel /l1/l2/bzImage --initrd /l1/l2/initrd.cpio --cpus 1 --memory 192M \
		--cmdline "console=ttyS0 quiet panic=-1 nestlab.l1=linux-boot"
	if [ "$rc" = 124 ]; then
		fails=$fails_before
		echo "L1-L2SLOW the L2 Linux did not finish within ${L2_TIMEOUT} s (a busy lab host); not counted"
	fi
	info=$(tr -d '\r' </tmp/l2.out | grep '^L1-INFO ' | head -n 1)
	echo "L1-L2INFO ${info#L1-INFO }"
	;;
esac
exit $fails
