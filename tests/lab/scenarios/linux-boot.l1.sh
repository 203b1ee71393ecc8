# SPDX-License-Identifier: MIT
#
# L1 part of linux-boot: what the guest sees of its virtual machine.

cpus=$(grep -c ^processor /proc/cpuinfo)
mem=$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo)
svm=no
grep -qw svm /proc/cpuinfo && svm=yes
echo "L1-INFO cpus=$cpus memtotal_kb=$mem uptime=$L1_INIT_UPTIME svm=$svm kernel=$(uname -r)"
# nestlab.dmesg=1: the kernel's log with its timestamps, as "L1-DMESG ..."
# lines (printed after the boot is timed: with quiet, the log is kept but not
# written to the serial console during the boot, where each character exits).
grep -qw nestlab.dmesg=1 /proc/cmdline && dmesg | sed 's/^/L1-DMESG /'
exit 0
