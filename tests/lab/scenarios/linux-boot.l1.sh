# SPDX-License-Identifier: MIT
#
# L1 part of linux-boot: what the guest sees of its virtual machine.

cpus=$(grep -c ^processor /proc/cpuinfo)
mem=$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo)
svm=no
grep -qw svm /proc/cpuinfo && svm=yes
echo "L1-INFO cpus=$cpus memtotal_kb=$mem uptime=$L1_INIT_UPTIME svm=$svm kernel=$(uname -r)"
