#!/bin/sh
# virtio-blk driven by the probe guest's own virtio driver (guest/probe/virtio.c)
# on this host's /dev/kvm, under the ASan nestvm:
#  - test=virtio-blk: the PCI transport, negotiation and the data path, on
#    both I/O engines, on a second disk, and read-only (writes fail with
#    IOERR); afterwards the image holds the probe's pattern at sector 8 (the
#    read-only one is unchanged);
#  - test=virtio-hostile: malformed rings and requests on disk 0 (loops,
#    addresses outside RAM, oversized and nested indirect chains, wrapping
#    lengths, bad queue sizes and ring addresses): each ends in
#    DEVICE_NEEDS_RESET or a failed request, disk 1 keeps working, disk 0
#    works again after a reset, and nestvm logs one warning per reset;
#  - test=virtio-bench briefly: every pattern at depths 1 and 32 completes;
#  - test=memgen disk=on: its write stream's requests each complete once and
#    read back, on a disk that wraps the stream and one that does not, and
#    its result line is still memgen-expect's (the disk does not change it).
# One line per check, then "N passed, N failed".
# Exit status: 0 all passed, 1 a check failed, 77 no usable /dev/kvm.
set -u
cd "$(dirname "$0")/../.." || exit 1
NESTVM=${NESTVM:-build/asan/nestvm}
TIMEOUT=${PROBE_TIMEOUT:-60}
T=$(mktemp -d /tmp/nestvm-virtio-probe.XXXXXX)
trap 'rm -rf "$T"' EXIT
pass=0
fail=0
. tests/lib/hostcaps.sh

if [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then
	echo "skip: /dev/kvm is missing or not usable by $(id -un)"
	exit 77
fi
for f in "$NESTVM" build/guest/probe.elf build/guest/probe.bzImage build/guest/memgen-expect; do
	if [ ! -e "$f" ]; then
		echo "FAIL missing $f (build it: make asan guests)"
		echo "0 passed, 1 failed"
		exit 1
	fi
done

ok() {
	pass=$((pass + 1))
	echo "ok   $*"
}

bad() {
	fail=$((fail + 1))
	echo "FAIL $*"
}

# run NAME IMAGE CMDLINE [nestvm options...]: boot the probe; the result is in
# $rc, $T/out (console) and $T/err; prints the check unless the caller does.
run() {
	image=$1 cmdline=$2
	shift 2
	timeout "$TIMEOUT" "$NESTVM" run --kernel "build/guest/probe.$image" --cmdline "$cmdline" \
		"$@" </dev/null >"$T/out" 2>"$T/err"
	rc=$?
	line=$(grep -a "^probe: test=.*: \(PASS\|FAIL\|SKIP\)" "$T/out" | tail -1)
}

sanitizer() {
	grep -q -i "AddressSanitizer\|LeakSanitizer\|runtime error:" "$T/err"
}

show() {
	tail -n 15 "$T/out" | sed 's/^/     | /'
	tail -n 10 "$T/err" | sed 's/^/     ! /'
}

# expect_pass NAME: exit 0, a PASS line, an empty stderr.
expect_pass() {
	name=$1
	if [ "$rc" -eq 0 ] && [ "${line#*: PASS}" != "$line" ] && [ ! -s "$T/err" ]; then
		ok "$name: ${line#probe: }"
	else
		why="exit $rc"
		[ "$rc" -eq 124 ] && why="timed out after ${TIMEOUT}s"
		sanitizer && why="$why, sanitizer report"
		[ -s "$T/err" ] && why="$why, stderr not empty"
		bad "$name: $why"
		show
	fi
}

# The probe's pattern: 128 x 32 bytes (guest/probe/test_virtio.c).
i=0
while [ $i -lt 128 ]; do
	printf 'nestvm probe virtio-blk pattern\n'
	i=$((i + 1))
done >"$T/pattern"

# image FILE MiB: a sparse image.
image() {
	rm -f "$1"
	dd if=/dev/zero of="$1" bs=1M count=0 seek="$2" 2>/dev/null
}

# Both I/O engines where the host has io_uring, the thread pool alone elsewhere.
engines="uring threads"
if ! hostcap_io_uring; then
	engines=threads
	skip_case "virtio-blk and virtio-hostile with io=uring" "$HOSTCAP_WHY"
fi

# --- test=virtio-blk ---------------------------------------------------------
for img in elf bzImage; do
	for engine in $engines; do
		image "$T/d0.img" 16
		run $img "test=virtio-blk capacity=32768 id=nestvm-disk0" --disk "$T/d0.img,io=$engine"
		expect_pass "virtio-blk $img io=$engine"
		if dd if="$T/d0.img" bs=512 skip=8 count=8 2>/dev/null | cmp -s - "$T/pattern"; then
			ok "virtio-blk $img io=$engine: the image holds the pattern at sector 8"
		else
			bad "virtio-blk $img io=$engine: sector 8 of the image does not hold the pattern"
		fi
	done
done

image "$T/d0.img" 16
image "$T/d1.img" 8
run elf "test=virtio-blk disk=1 capacity=16384 id=nestvm-disk1" --disk "$T/d0.img" --disk "$T/d1.img"
expect_pass "virtio-blk second disk"
if dd if="$T/d1.img" bs=512 skip=8 count=8 2>/dev/null | cmp -s - "$T/pattern" &&
	! dd if="$T/d0.img" bs=512 skip=8 count=8 2>/dev/null | cmp -s - "$T/pattern"; then
	ok "virtio-blk second disk: only the second image was written"
else
	bad "virtio-blk second disk: the pattern is not (only) in the second image"
fi

image "$T/ro.img" 4
cp "$T/ro.img" "$T/ro.orig"
run elf "test=virtio-blk readonly=1 capacity=8192" --disk "$T/ro.img,readonly"
expect_pass "virtio-blk readonly"
cmp -s "$T/ro.img" "$T/ro.orig" && ok "virtio-blk readonly: the image is unchanged" ||
	bad "virtio-blk readonly: the read-only image was modified"

# A read-only disk the probe takes for writable must fail the test (the check works).
run elf "test=virtio-blk" --disk "$T/ro.img,readonly"
if [ "$rc" -eq 10 ] && [ "${line#*: FAIL}" != "$line" ] && ! sanitizer; then
	ok "virtio-blk readonly disk, writable expected: FAIL as it should: ${line#probe: }"
else
	bad "virtio-blk readonly disk, writable expected: exit $rc, want 10"
	show
fi

# --- test=virtio-hostile -----------------------------------------------------
# 3 GiB of RAM: one case needs two overlapping 2 GiB buffers inside RAM.
for engine in $engines; do
	image "$T/d0.img" 16
	image "$T/d1.img" 16
	run elf "test=virtio-hostile" --memory 3G --disk "$T/d0.img,io=$engine" --disk "$T/d1.img"
	name="virtio-hostile io=$engine"
	summary=$(grep -a "^probe: virtio-hostile: cases=" "$T/out")
	seen=$(echo "$summary" | sed -n 's/.*needs_reset_seen=\([0-9]*\).*/\1/p')
	warnings=$(grep -c "virtio-blk: .*the device stops until the guest resets it" "$T/err")
	others=$(grep -v -c "virtio-blk: .*the device stops until the guest resets it" "$T/err")
	if [ "$rc" -eq 0 ] && [ "${line#*: PASS}" != "$line" ] && ! sanitizer &&
		[ -n "$seen" ] && [ "$warnings" -eq "$seen" ] && [ "$others" -eq 0 ]; then
		ok "$name: ${line#probe: }; nestvm warned $warnings times, once per reset"
	else
		bad "$name: exit $rc, ${line:-no result line}; $warnings warnings for ${seen:-?} resets, $others other stderr lines"
		grep -a "FAIL" "$T/out" | sed 's/^/     | /'
		show
	fi
done

# --- test=virtio-bench (briefly) ---------------------------------------------
image "$T/d0.img" 16
run elf "test=virtio-bench seconds=1 qd=1,32 span_mb=16" --disk "$T/d0.img"
lines=$(grep -a -c "^probe: bench: pattern=.* errors=0$" "$T/out")
if [ "$rc" -eq 0 ] && [ "${line#*: PASS}" != "$line" ] && [ "$lines" -eq 8 ] && [ ! -s "$T/err" ]; then
	ok "virtio-bench: 8 patterns: $(grep -a '^probe: bench: pattern=' "$T/out" |
		sed 's/.*pattern=\([a-z]*\) qd=\([0-9]*\).* iops=\([0-9]*\).*/\1@\2=\3/' | tr '\n' ' ')"
else
	bad "virtio-bench: exit $rc, $lines of 8 pattern lines without errors"
	show
fi

# --- test=memgen disk=on ------------------------------------------------------
# A 16 MiB disk (the stream's 4096 sectors fit) on 2 vCPUs, and an 8-sector
# one on 1 vCPU (more writes: no AP competes with nestvm's I/O thread),
# rewritten over and over: each sector must end with its last write.
for spec in 16M:2 4K:1; do
	size=${spec%:*} cpus=${spec#*:}
	rm -f "$T/d0.img"
	dd if=/dev/zero of="$T/d0.img" bs=1 count=0 seek=$size 2>/dev/null
	run elf "test=memgen passes=300 disk=on" --cpus "$cpus" --memory 64M --disk "$T/d0.img"
	name="memgen disk=on, $size disk, $cpus vCPUs"
	expect_pass "$name"
	got=$(grep -a "^probe: test=memgen: result=" "$T/out")
	want="probe: test=memgen: $(build/guest/memgen-expect 300 "$cpus")"
	writes=$(sed -n 's/^probe: memgen: disk: \([0-9]*\) writes .*each completed once, read back$/\1/p' "$T/out")
	if [ "$got" = "$want" ] && [ "${writes:-0}" -gt 0 ] &&
		[ "$(dd if="$T/d0.img" bs=8 count=1 2>/dev/null)" = mgendisk ]; then
		ok "$name: $writes writes, the result line is memgen-expect's, sector 0 holds a memgen block"
	else
		bad "$name: result \"$got\" (want \"$want\"), ${writes:-no} writes, or sector 0 is no memgen block"
		show
	fi
done

echo "$pass passed, $fail failed, $skipped skipped"
[ "$fail" -eq 0 ]
