# SPDX-License-Identifier: MIT
#
# L1 part of snapshot-linux: a Linux guest hypervisor whose own nestvm runs
# one L2 probe with test=memgen (every page of its RAM rewritten each pass,
# a deterministic result at the end), its console straight to the L1's, so
# that the lab reads the L2's "probe: memgen: pass P/N" lines in the L1
# VM's console.log. nestlab.l2=PASSES-CPUS-MIB on the kernel command line:
# test=memgen passes=PASSES on CPUS vCPUs and MIB MiB.
# Prints "L1-L2-BEGIN" before the L2 starts and "L1-L2 rc=N secs=S" after.

cpus=$(grep -c ^processor /proc/cpuinfo)
svm=no
grep -qw svm /proc/cpuinfo && svm=yes
echo "L1-INFO cpus=$cpus uptime=$L1_INIT_UPTIME svm=$svm kernel=$(uname -r)"
[ $svm = yes ] || { echo "L1: no svm in the L1's /proc/cpuinfo"; exit 1; }
. /l1lib.sh
l1_kvm_start hold || exit 1

work=
for w in $(cat /proc/cmdline); do
	case "$w" in nestlab.l2=*) work=${w#*=} ;; esac
done
case "$work" in
[0-9]*-[0-9]*-[0-9]*) ;;
*) echo "L1: nestlab.l2='$work': want PASSES-CPUS-MIB"; exit 2 ;;
esac
passes=${work%%-*} mib=${work##*-}
l2cpus=${work#*-}
l2cpus=${l2cpus%-*}
echo "L1: nestvm run --kernel /l1/guest/probe.elf --cpus $l2cpus --memory ${mib}M --cmdline \"test=memgen passes=$passes\""
echo "L1-L2-BEGIN"
read -r u0 _ </proc/uptime
/l1/bin/nestvm run --kernel /l1/guest/probe.elf --cpus "$l2cpus" --memory "${mib}M" \
	--cmdline "test=memgen passes=$passes" </dev/null
rc=$?
read -r u1 _ </proc/uptime
echo "L1-L2 rc=$rc secs=$(awk -v a="$u0" -v b="$u1" 'BEGIN { printf "%.2f", b - a }')"
exit $rc
