# SPDX-License-Identifier: MIT
#
# lib.sh — what the L1 parts (tests/lab/scenarios/*.l1.sh) share, at
# /l1lib.sh in the L1's initramfs: ". /l1lib.sh". Run by busybox sh.

# l1_cpus 0|1: takes the L1's CPUs other than CPU 0 offline (0) or brings
# them online again (1); returns 1 if one did not come online.
l1_cpus() {
	local c
	for c in /sys/devices/system/cpu/cpu[1-9]*/online; do
		[ -w "$c" ] || continue
		echo "$1" >"$c" 2>/dev/null
		[ "$1" = 0 ] || [ "$(cat "$c")" = 1 ] || {
			echo "L1: ${c%/online} did not come online again"
			return 1
		}
	done
}

# l1_kvm_start HOLD [KVM-AMD-PARAM...]: loads KVM into the L1 (kvm-amd with
# the parameters) and, with HOLD "hold", starts a VM that stays open (the
# probe, halted, 16 MiB; its second vCPU never starts) and waits until it
# is up. The VM keeps the L1's VM count above 0, so that the L2s coming and
# going never make the L1's KVM flip static keys and Linux patch its text,
# which QEMU's TCG can miss on another vCPU, running a stale INT3 for good
# (tests/lab/README.md, "The lab's wedge"). Loading KVM and the VM's start
# patch it too, so they run with the L1's other CPUs offline. Prints why
# and returns 1 if anything failed.
l1_kvm_start() {
	local hold=$1 m i=0
	shift
	l1_cpus 0
	for m in irqbypass kvm kvm-amd; do
		# shellcheck disable=SC2046 # one word per module parameter
		insmod /l1/modules/$m.ko $([ $m = kvm-amd ] && echo "$@") || {
			echo "L1: insmod $m.ko failed"
			dmesg | tail -n 5
			l1_cpus 1
			return 1
		}
	done
	[ -c /dev/kvm ] || {
		echo "L1: no /dev/kvm after loading kvm-amd"
		l1_cpus 1
		return 1
	}
	if [ "$hold" = hold ]; then
		/l1/bin/nestvm run --kernel /l1/guest/probe.elf --memory 16M --cpus 2 --pit off \
			--console file:/tmp/hold.out --cmdline "test=idle" </dev/null >/dev/null 2>&1 &
		until grep -q 'test=idle: up' /tmp/hold.out 2>/dev/null; do
			i=$((i + 1))
			[ $i -le 20 ] || {
				echo "L1: the VM that keeps KVM's keys set did not come up"
				l1_cpus 1
				return 1
			}
			sleep 0.5
		done
	fi
	l1_cpus 1
}
