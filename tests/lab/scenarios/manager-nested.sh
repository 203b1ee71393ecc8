# SPDX-License-Identifier: MIT
# lab-timeout: 300
#
# manager-nested — the VM manager with a nested Linux VM on the lab's KVM:
# `nestvm new --nested on` with the Debian kernel, `nestvm start`, the VM
# shows as running, its monitor jailed (chroot: the lab's root is an
# initramfs); once the guest has loaded kvm_amd and runs an L2,
# `nestvm list` reports that its guest runs a hypervisor; `nestvm stop`
# presses the ACPI power button, the guest powers off, the VM is off.
# The guest's part is manager-nested.l1.sh.

. /lab/lib.sh

lab_need_nestvm
[ -r /l1/initrd-nested.cpio ] || lab_skip "no /l1/initrd-nested.cpio in the lab"
export NESTVM_HOME=/tmp/nestvm-home
NV=/lab/bin/nestvm
rm -rf $NESTVM_HOME

# list_col N: column N of the VM's row in `nestvm list` (0: the last, GUEST-HV).
list_col() {
	$NV list 2>/dev/null | awk -v c="$1" '$1 == "l1" { print (c ? $c : $NF) }'
}
# wait_for COLUMN VALUE SECONDS
wait_for() {
	_end=$(($(lab_now_cs) + $3 * 100))
	while [ "$(lab_now_cs)" -lt $_end ]; do
		[ "$(list_col "$1")" = "$2" ] && return 0
		sleep 1
	done
	return 1
}

$NV new l1 --kernel /lab/kernel/vmlinux --initrd /l1/initrd-nested.cpio --cpus 2 \
	--memory 512M --nested on --cmdline "console=ttyS0 quiet panic=-1 nestlab.l1=manager-nested" ||
	lab_fail "nestvm new failed"
t0=$(lab_now_cs)
$NV start l1 || lab_fail "nestvm start failed"
state=$(list_col 2)
[ "$state" = running ] || lab_fail "after start the VM is '$state', want running"
$NV list | sed 's/^/  list| /'
# The monitor's protections: jailed (root in the lab), chroot on the lab's initramfs.
$NV show l1 | grep -E '^(sandbox|jail):' | sed 's/^/  show| /'
$NV show l1 | grep -q '^jail:         user [0-9]*, group [0-9]*, own mount namespace' ||
	lab_fail "the monitor is not jailed"

# GUEST-HV turns yes once the L1 runs its L2.
if wait_for 0 yes 120; then
	lab_info "guest hypervisor reported after $(lab_secs $(($(lab_now_cs) - t0))) s"
	$NV list | sed 's/^/  list| /'
	$NV show l1 | grep -i "guest hypervisor" | sed 's/^/  show| /'
else
	lab_fail "nestvm list never reported the guest's hypervisor"
	echo '{"cmd":"status"}' | $NV api l1 2>&1 | sed 's/^/  api| /' 
	tail -n 20 $NESTVM_HOME/l1/console.log | sed 's/^/  console| /'
fi

# The guest listens for the button once it has said L1-L2-UP.
_end=$(($(lab_now_cs) + 6000))
while ! grep -q L1-L2-UP $NESTVM_HOME/l1/console.log && [ "$(lab_now_cs)" -lt $_end ]; do
	sleep 1
done
sleep 1
t1=$(lab_now_cs)
$NV stop l1 --timeout 60 >/tmp/stop.out 2>&1
rc=$?
sed 's/^/  stop| /' /tmp/stop.out
[ $rc -eq 0 ] || lab_fail "nestvm stop exited $rc"
state=$(list_col 2)
[ "$state" = off ] || lab_fail "after stop the VM is '$state', want off"
grep -q L1-POWER-BUTTON $NESTVM_HOME/l1/console.log ||
	lab_fail "the guest never saw the power button"
grep -q "L1-END rc=0" $NESTVM_HOME/l1/console.log || lab_fail "the guest's part did not end well"
lab_metrics "stop_s=$(lab_secs $(($(lab_now_cs) - t1)))"
$NV remove l1 || lab_fail "nestvm remove failed"
lab_finish
