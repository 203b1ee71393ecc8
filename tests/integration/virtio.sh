#!/bin/sh
# The virtio devices on this host's /dev/kvm with the ASan build: every
# virtio option together, with the probe guest (test=pci) enumerating bus 0,
# must run and exit cleanly (no sanitizer report, sockets removed, images
# unlocked); bad virtio options and unusable backends fail with one line and
# the documented status. The devices' behaviour under a Linux guest is the
# lab's virtio-devices scenario; their rings are the unit tests'.
set -u
cd "$(dirname "$0")/../.."
NESTVM=${NESTVM:-build/asan/nestvm}
PROBE=build/guest/probe.elf
T=$(mktemp -d /tmp/nestvm-virtio.XXXXXX)
trap 'rm -rf "$T"' EXIT
pass=0
fail=0

ok() {
	pass=$((pass + 1))
	echo "ok   $*"
}

bad() {
	fail=$((fail + 1))
	echo "FAIL $*"
}

# expect NAME STATUS PATTERN -- ARGS...: exit status and one stderr line matching PATTERN.
expect() {
	name=$1 want=$2 pattern=$3
	shift 4
	timeout 30 "$NESTVM" "$@" >"$T/out" 2>"$T/err" </dev/null
	rc=$?
	lines=$(grep -c . "$T/err")
	if [ "$rc" -eq "$want" ] && grep -q -- "$pattern" "$T/err" && [ "$lines" -eq 1 ]; then
		ok "$name: exit $rc: $(cat "$T/err")"
	else
		bad "$name: exit $rc (want $want), stderr ($lines lines, want 1 matching '$pattern'):"
		sed 's/^/     | /' "$T/err" | head -20
	fi
}

dd if=/dev/zero of="$T/disk.img" bs=1M count=0 seek=16 2>/dev/null
dd if=/dev/zero of="$T/ro.img" bs=1M count=0 seek=1 2>/dev/null

expect "--disk bad word" 2 "disk '$T/disk.img,fast'" -- run --kernel "$PROBE" --disk "$T/disk.img,fast"
expect "--disk empty" 2 "disk ''" -- run --kernel "$PROBE" --disk ""
expect "--vsock cid 2" 2 "vsock '2'" -- run --kernel "$PROBE" --vsock 2
expect "--vsock bad word" 2 "vsock '9,port=1'" -- run --kernel "$PROBE" --vsock 9,port=1
expect "--console-port no socket" 2 "console-port 'agent'" -- run --kernel "$PROBE" --console-port agent

if [ ! -w /dev/kvm ]; then
	echo "skip: /dev/kvm not usable"
	echo "virtio: $pass passed, $fail failed"
	[ "$fail" -eq 0 ] && exit 77
	exit 1
fi

expect "missing image (kvm)" 1 "disk '$T/none.img': No such file" -- run --kernel "$PROBE" --disk "$T/none.img"
expect "directory as image (kvm)" 1 "Is a directory" -- run --kernel "$PROBE" --disk "$T"
expect "vsock socket in a missing dir (kvm)" 1 "vsock socket '$T/no/dir.sock'" -- \
	run --kernel "$PROBE" --vsock 5,socket="$T/no/dir.sock"

# Everything at once: the probe guest sees the host bridge and six virtio functions.
dd if=/dev/zero of="$T/disk2.img" bs=1M count=0 seek=1 2>/dev/null
timeout 60 "$NESTVM" run --kernel "$PROBE" --cmdline test=pci --console file:"$T/console" \
	--disk "$T/disk.img" --disk "$T/ro.img,readonly" --disk "$T/disk2.img,io=threads" \
	--rng --vsock 7,socket="$T/vm.sock" --virtio-console "$T/hvc.sock" \
	--console-port org.nestvm.test,socket="$T/port.sock" </dev/null >"$T/out" 2>"$T/err"
rc=$?
functions=$(grep -c 'pci: 00:.*1af4:' "$T/console")
if [ "$rc" -eq 0 ] && [ "$functions" -eq 6 ] && [ ! -s "$T/err" ]; then
	ok "all virtio devices (kvm): probe sees $functions virtio functions, exit 0, stderr empty"
else
	bad "all virtio devices (kvm): exit $rc, $functions virtio functions (want 6), stderr:"
	sed 's/^/     | /' "$T/err" "$T/console" | head -30
fi
for s in vm.sock hvc.sock port.sock; do
	[ -e "$T/$s" ] && bad "socket $s left behind" || ok "socket $s removed at exit"
done

# The image is unlocked at exit: runs back to back can each take it.
rcs=
for i in 1 2 3; do
	timeout 30 "$NESTVM" run --kernel "$PROBE" --cmdline test=exit --console none \
		--disk "$T/disk.img" </dev/null >/dev/null 2>"$T/err"
	rcs="$rcs $?"
done
[ "$rcs" = " 0 0 0" ] && ok "image reusable right after exit (kvm): exit statuses$rcs" ||
	bad "image reusable right after exit (kvm): exit statuses$rcs: $(cat "$T/err")"
echo "virtio: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
