# SPDX-License-Identifier: MIT
# lab-timeout: 120
#
# vcpu-state — save and restore of everything KVM holds for a vCPU and a VM
# (src/arch/x86/vcpu_state.c) on the lab's KVM, which, unlike the
# development host's, has nested SVM (KVM_CAP_NESTED_STATE > 0). The same
# program as the host's unit test test_vcpu_state, built statically without
# cmocka: a CPL3 guest saved in the middle of a port read (nested state
# header-only, with GIF), and an L1 hypervisor caught while its L2 runs
# (guest mode, 4 KiB VMCB12), each written through the snapshot format,
# restored into a second VM, checked GET by GET, and run on.
# Metrics: the snapshot's size.

. /lab/lib.sh

prog=/lab/guest/test-vcpu-state
[ -x $prog ] || lab_skip "no $prog in the lab (make build/guest/test-vcpu-state)"
t0=$(lab_now_cs)
timeout 60 $prog </dev/null >/tmp/vcpu-state.out 2>&1
rc=$?
secs=$(lab_secs $(($(lab_now_cs) - t0)))
sed 's/^/  vcpu-state| /' /tmp/vcpu-state.out
case $rc in
0) ;;
77) lab_skip "$(sed -n 's/^skip [^:]*: //p' /tmp/vcpu-state.out)" ;;
*) lab_fail "test-vcpu-state exit $rc after $secs s" ;;
esac
grep -q "nested state [1-9]" /tmp/vcpu-state.out ||
	lab_fail "the lab's KVM reports no KVM_CAP_NESTED_STATE: nested state untested"
grep -q "nested saved" /tmp/vcpu-state.out || lab_fail "no nested state was saved"
grep -q "caught in guest mode" /tmp/vcpu-state.out ||
	lab_fail "the L2 was never saved in guest mode (test_nested_guest_mode skipped?)"
lab_metric vcpu_state_bytes "$(sed -n 's/^state: \([0-9]*\) bytes.*/\1/p' /tmp/vcpu-state.out)"
lab_info "ran in $secs s"
lab_finish
