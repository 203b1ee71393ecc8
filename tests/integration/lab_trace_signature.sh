#!/bin/sh
# SPDX-License-Identifier: MIT
#
# The lab trace's classifier of an L1 triple fault (trace_signature in
# tests/lab/scenarios/trace-lib.sh), on the host, against the lab KVM's
# events of real shutdowns: the probe L1's of 2026-12-07 (build/lab/tr5.log,
# tr16.log: right after the lab KVM emulated its VMLOAD, its VMSAVE, or
# completed its OUT to the UART) are the lab's fault; test=triplefault (#UD
# with an empty IDT), one re-entered elsewhere and one with no exit before
# are not.
set -u
cd "$(dirname "$0")/../.."
. tests/lib/check.sh
mkdir -p build/test-tmp
D=$(mktemp -d build/test-tmp/lab-trace.XXXXXX)
trap 'rm -rf "$D"' EXIT
lab_info() { echo "$*"; }
. tests/lab/scenarios/trace-lib.sh

# A few of the lab KVM's events (tracefs text), then the shutdown.
P='            vcpu0-1459    [000] .....'
cat >"$D/vmload" <<E
$P    96.810258: kvm_exit: vcpu 0 reason clgi rip 0x110cb0 info1 0x0000000000000000 info2 0x0000000000000000 intr_info 0x00000000 error_code 0x00000000
$P    96.810286: kvm_emulate_insn: 0:110cb0:0f 01 dd (prot64)
$P    96.810293: kvm_entry: vcpu 0, rip 0x110cb3
$P    96.810507: kvm_exit: vcpu 0 reason vmload rip 0x110cbc info1 0x0000000000000000 info2 0x0000000000000000 intr_info 0x00000000 error_code 0x00000000
$P    96.810535: kvm_mmu_pagetable_walk: addr 110cbc pferr 10 F
$P    96.810543: kvm_mmu_paging_element: pte e7 level 2
$P    96.810556: kvm_emulate_insn: 0:110cbc:0f 01 da (prot64)
$P    96.810568: kvm_entry: vcpu 0, rip 0x110cbf
$P    96.810673: kvm_exit: vcpu 0 reason shutdown rip 0x110cbf info1 0x0000000000000000 info2 0x0000000000000000 intr_info 0x80000b0e error_code 0x00000000
$P    96.810952: l1_shutdown: (shutdown_interception+0x0/0x50 [kvm_amd]) rip=0x110cbf cr2=0x1324c0 cr3=0x119000 intinfo=0x80000b0e interr=0x0
E
cat >"$D/vmsave" <<E
$P   308.930562: kvm_entry: vcpu 0, rip 0x110cfa
$P   308.930785: kvm_exit: vcpu 0 reason vmsave rip 0x110d35 info1 0x0000000000000000 info2 0x0000000000000000 intr_info 0x00000000 error_code 0x00000000
$P   308.930868: kvm_emulate_insn: 0:110d35:0f 01 db (prot64)
$P   308.931005: kvm_entry: vcpu 0, rip 0x110d38
$P   308.931144: kvm_exit: vcpu 0 reason shutdown rip 0x110d38 info1 0x0000000000000000 info2 0x0000000000000000 intr_info 0x80000b0e error_code 0x00000000
E
# The other vCPU's exit and entry in between must not count.
sed '8a\
            vcpu1-1460    [001] .....    96.810600: kvm_exit: vcpu 1 reason io rip 0x1234 info1 0x0 info2 0x0 intr_info 0x00000000 error_code 0x00000000\
            vcpu1-1460    [001] .....    96.810610: kvm_entry: vcpu 1, rip 0x1236' \
	"$D/vmload" >"$D/vmload-smp"
cat >"$D/ud" <<E
$P    15.600000: kvm_exit: vcpu 0 reason io rip 0x1109c0 info1 0x0000000003f80000 info2 0x0000000000000000 intr_info 0x00000000 error_code 0x00000000
$P    15.600100: kvm_entry: vcpu 0, rip 0x1109d3
$P    15.609919: kvm_exit: vcpu 0 reason shutdown rip 0x1109d3 info1 0x0000000000000000 info2 0x0000000000000000 intr_info 0x80000306 error_code 0x00000000
E
cat >"$D/io" <<E
$P    11.538692: kvm_exit: vcpu 0 reason io rip 0x10145f info1 0x0000000003f80010 info2 0x0000000000101460 intr_info 0x00000000 error_code 0x00000000
$P    11.538733: kvm_userspace_exit: reason KVM_EXIT_IO (2)
$P    11.538972: kvm_entry: vcpu 0, rip 0x101460
$P    11.539126: kvm_exit: vcpu 0 reason shutdown rip 0x101460 info1 0x0000000000000000 info2 0x0000000000000000 intr_info 0x80000b0e error_code 0x00000000
E
# A Linux L1 woken from HLT, shut down delivering its timer interrupt
# (make test 113, 2026-12-07: its page tables, read from its memory, mapped
# both the RIP and the IDT).
P2='            vcpu0-210     [000] .....'
cat >"$D/hlt" <<E
$P2    20.600665: kvm_exit: vcpu 0 reason msr rip 0xffffffff8fe73914 info1 0x0000000000000001 info2 0x0000000000000000 intr_info 0x00000000 error_code 0x00000000
$P2    20.600749: kvm_entry: vcpu 0, rip 0xffffffff8fe73916
$P2    20.600977: kvm_exit: vcpu 0 reason hlt rip 0xffffffff90817a0a info1 0x0000000000000000 info2 0x0000000000000000 intr_info 0x00000000 error_code 0x00000000
$P2    20.604309: kvm_entry: vcpu 0, rip 0xffffffff90817a0b
$P2    20.604373: kvm_exit: vcpu 0 reason shutdown rip 0xffffffff90817a0b info1 0x0000000000000000 info2 0x0000000000000000 intr_info 0x800000ec error_code 0x00000000
E
# The same with a software interrupt (type 4) or an NMI (type 2) being
# delivered: not.
sed 's/intr_info 0x800000ec/intr_info 0x800004ec/' "$D/hlt" >"$D/softint"
sed 's/intr_info 0x800000ec/intr_info 0x80000202/' "$D/hlt" >"$D/nmi"
grep -v 'reason vmsave' "$D/vmsave" >"$D/noexit"
sed 's/kvm_entry: vcpu 0, rip 0x110d38/kvm_entry: vcpu 0, rip 0x110d40/' "$D/vmsave" >"$D/elsewhere"
: >"$D/empty"

sig() { trace_signature "$D/$1" >"$D/$1.out"; }
check "after an emulated VMLOAD: the lab's fault" sig vmload
check "  and says so" grep -q "^the lab's fault: vCPU 0 shut down at rip 0x110cbf delivering 0x80000b0e; its exit before: vmload at 0x110cbc" "$D/vmload.out"
check "after an emulated VMSAVE: the lab's fault" sig vmsave
check "another vCPU's exit in between: still the lab's fault" sig vmload-smp
check "test=triplefault (#UD, empty IDT): not" eval '! sig ud'
check "after its OUT to user space: the lab's fault" sig io
check "after a HLT, delivering its external interrupt 0xec: the lab's fault" sig hlt
check "  and says so" grep -q "^the lab's fault: vCPU 0 shut down at rip 0xffffffff90817a0b delivering 0x800000ec; its exit before: hlt at 0xffffffff90817a0a" "$D/hlt.out"
check "the same delivering a software interrupt: not" eval '! sig softint'
check "the same delivering an NMI: not" eval '! sig nmi'
check "no exit before the shutdown: not" eval '! sig noexit'
check "re-entered elsewhere: not" eval '! sig elsewhere'
check "  and says why" grep -q "^not the lab's known fault: .*re-entered at 0x110d40" "$D/elsewhere.out"
check "no shutdown: not" eval '! sig empty'
# The summary of a ring with no shutdown: each vCPU thread's last event and
# its age, the exit reasons of the last events.
grep -v 'reason shutdown\|l1_shutdown' "$D/vmload-smp" >"$D/alive"
trace_guard_summary "$D/alive" 100.0 >"$D/alive.out"
sed 's/^/  | /' "$D/alive.out"
check "summary: the ring's span" \
	grep -q "^  guard| the ring: events from 3.2 s to 3.2 s before\$" "$D/alive.out"
check "summary: vcpu0's events, last event 3.2 s before" \
	grep -q "^  guard| vcpu0-1459: 4 events, the longest silence 0.0 s (to 3.2 s before); last event 3.2 s before: kvm_entry: vcpu 0, rip 0x110cbf\$" "$D/alive.out"
check "summary: vcpu1's events, last event 3.2 s before" \
	grep -q "^  guard| vcpu1-1460: 2 events, the longest silence 0.0 s (to 3.2 s before); last event 3.2 s before: kvm_entry: vcpu 1, rip 0x1236\$" "$D/alive.out"
# An L1 vCPU that stopped running for 25 s (an L1 that stalled), then
# exited when the L1 was killed.
sed -n '/vcpu1-1460 .* kvm_exit/{p;s/96\.81/121.81/p}' "$D/alive" >"$D/gap"
trace_guard_summary "$D/gap" 125.0 >"$D/gap.out"
sed 's/^/  | /' "$D/gap.out"
check "summary: vcpu1 silent 25 s, up to 3.2 s before" \
	grep -q "^  guard| vcpu1-1460: 2 events, the longest silence 25.0 s (to 3.2 s before); last event 3.2 s before: kvm_exit: vcpu 1 reason io" "$D/gap.out"
check "summary: exit reasons counted" \
	grep -q "^  guard| last 2000 events: 1 vcpu 0 vmload\$" "$D/alive.out"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
