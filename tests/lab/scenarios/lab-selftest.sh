# SPDX-License-Identifier: MIT
# lab-timeout: 30
#
# The lab itself works: its KVM is AMD-V based and nests. Needs no nestvm.

. /lab/lib.sh

[ -c /dev/kvm ] || lab_fail "/dev/kvm missing"
grep -qw svm /proc/cpuinfo || lab_fail "the lab CPU does not offer svm (QEMU -cpu ...,+svm?)"
grep -qw npt /proc/cpuinfo || lab_fail "the lab CPU does not offer npt (nested paging)"
nested=$(cat /sys/module/kvm_amd/parameters/nested 2>/dev/null)
case "$nested" in
1 | Y) ;;
*) lab_fail "kvm_amd nested=${nested:-missing}, want 1" ;;
esac
npt=$(cat /sys/module/kvm_amd/parameters/npt 2>/dev/null)
case "$npt" in
1 | Y) ;;
*) lab_fail "kvm_amd npt=${npt:-missing}, want 1" ;;
esac
[ -r "$LAB_KVM_DEBUGFS/exits" ] || lab_fail "no KVM statistics in $LAB_KVM_DEBUGFS"
[ -r /l1/initrd.cpio ] || lab_fail "no L1 initramfs /l1/initrd.cpio"
for k in /lab/kernel/bzImage /lab/kernel/vmlinux; do
	[ -r "$k" ] || lab_fail "no L1 kernel $k"
done

lab_info "kvm_amd nested=$nested npt=$npt, lab cpus=$(nproc)," \
	"memory $(awk '/^MemTotal:/ { print $2 }' /proc/meminfo) kB," \
	"nestvm $([ -x /lab/bin/nestvm ] && echo present || echo absent)"
lab_finish
