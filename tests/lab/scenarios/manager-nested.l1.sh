# SPDX-License-Identifier: MIT
#
# L1 part of manager-nested: a Linux guest that becomes a hypervisor and
# powers off when its ACPI power button is pressed (what `nestvm stop` does).
# Loads kvm-amd, starts an L2 (the probe guest, staying up) with its own
# nestvm, then waits for the power button on the input device the ACPI
# button driver creates, stops the L2 and returns (l1/init powers off).

grep -qw svm /proc/cpuinfo && svm=yes || svm=no
echo "L1-INFO cpus=$(grep -c ^processor /proc/cpuinfo) uptime=$L1_INIT_UPTIME svm=$svm"
for m in button evdev; do
	insmod /virtio/modules/$m.ko || echo "L1: insmod $m.ko failed"
done
button=
for d in /sys/class/input/event*; do
	grep -q "Power Button" "$d/device/name" 2>/dev/null && button=/dev/input/${d##*/}
done
[ -c "$button" ] || { echo "L1: no power button input device"; exit 1; }
. /l1lib.sh
l1_kvm_start nohold || exit 1
/l1/bin/nestvm run --kernel /l1/guest/probe.elf --memory 64M --cmdline "test=idle" \
	</dev/null >/tmp/l2.out 2>&1 &
l2=$!
sleep 1
kill -0 $l2 2>/dev/null || { echo "L1: the L2 did not stay up:"; cat /tmp/l2.out; exit 1; }
echo "L1-L2-UP"
# One input event from the power button (24 bytes: struct input_event).
head -c 24 "$button" >/dev/null
echo "L1-POWER-BUTTON"
kill $l2
wait $l2
echo "L1: L2 ended with status $?"
exit 0
