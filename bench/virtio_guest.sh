#!/bin/sh
# virtio-blk with a guest on this host's KVM: the probe guest's CPL3 virtio
# driver (test=virtio-bench: 4 KiB sequential and random reads and writes,
# polled, at queue depths 1 and 32) under nestvm and under QEMU's
# virtio-blk-pci on the same raw image, and the same patterns done by a
# host process directly on the image file (bench/host_rw.c: pread/pwrite at
# depth 1, io_uring at deeper depths). Prints IOPS side by side with the
# ratios nestvm/host and nestvm/QEMU.
#
# The image is written in full first and read once, so that every side
# works from the page cache (buffered I/O everywhere: nestvm's default,
# QEMU's cache=writeback, host_rw): what is compared is the virtio path and
# its exits, not the disk.
#
# Environment: BENCH_SECONDS per pattern (2), BENCH_SPAN_MIB (256: image
# size and the region used), BENCH_QD (1,32), BENCH_ROUNDS (1: each side
# runs that many times, in turn, and the table shows the best), BENCH_IMAGE
# (/var/tmp/nestvm-bench-guest.img), NESTVM (build/release/nestvm), BENCH_IO
# (nestvm's disk engine: auto, uring or threads; default auto), QEMU
# (qemu-system-x86_64; BENCH_QEMU=0 leaves it out). Installs nothing.
set -u
cd "$(dirname "$0")/.." || exit 1
SECONDS_PER=${BENCH_SECONDS:-2}
SPAN=${BENCH_SPAN_MIB:-256}
QD=${BENCH_QD:-1,32}
ROUNDS=${BENCH_ROUNDS:-1}
IMG=${BENCH_IMAGE:-/var/tmp/nestvm-bench-guest.img}
IO_OPT=${BENCH_IO:+,io=$BENCH_IO}
NESTVM=${NESTVM:-build/release/nestvm}
QEMU=${QEMU:-qemu-system-x86_64}
PROBE=build/guest/probe.elf
T=$(mktemp -d /tmp/nestvm-bench-guest.XXXXXX)
trap 'rm -rf "$T"' EXIT

die() {
	echo "virtio_guest: $*" >&2
	exit 1
}

[ -x "$NESTVM" ] && [ -e "$PROBE" ] || die "build first: make release guests"
[ -r /dev/kvm ] && [ -w /dev/kvm ] || die "/dev/kvm is not usable"
command -v cc >/dev/null || die "cc not found: run scripts/install-deps.sh"

mkdir -p build/bench
HOST_RW=build/bench/host_rw
if [ ! -x "$HOST_RW" ] || [ bench/host_rw.c -nt "$HOST_RW" ]; then
	if pkg-config --exists liburing 2>/dev/null; then
		cc -std=gnu11 -O2 -Wall -Wextra -Werror -DHAVE_LIBURING -o "$HOST_RW" bench/host_rw.c \
			$(pkg-config --libs liburing) || die "cannot build $HOST_RW"
	else
		cc -std=gnu11 -O2 -Wall -Wextra -Werror -o "$HOST_RW" bench/host_rw.c ||
			die "cannot build $HOST_RW"
	fi
fi

want=$((SPAN * 1024 * 1024))
if [ ! -f "$IMG" ] || [ "$(stat -c %s "$IMG")" -ne "$want" ]; then
	echo "writing a ${SPAN} MiB image $IMG"
	dd if=/dev/urandom of="$IMG" bs=1M count="$SPAN" status=none || die "cannot write $IMG"
fi
cat "$IMG" >/dev/null

n_qd=$(echo "$QD" | tr ',' '\n' | grep -c .)
budget=$((SECONDS_PER * 4 * n_qd + 60))
args="test=virtio-bench seconds=$SECONDS_PER span_mb=$SPAN qd=$QD"

echo "host: $(uname -r), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg); ${SECONDS_PER} s per pattern," \
	"${SPAN} MiB span, 4 KiB blocks, best of $ROUNDS round(s), nestvm disk engine ${BENCH_IO:-auto}"

# One round: each side once, in turn. Before each side, write back what the
# previous one dirtied, so that no side pays for another's writeback.
round() {
	sync
	"$HOST_RW" "$IMG" "$SECONDS_PER" "$SPAN" "$QD" | sed 's/^host: //' >>"$T/host" ||
		die "host_rw failed"

	sync
	timeout "$budget" "$NESTVM" run --kernel "$PROBE" --cmdline "$args" --disk "$IMG$IO_OPT" \
		</dev/null >"$T/nestvm.out" 2>"$T/nestvm.err"
	rc=$?
	[ "$rc" -eq 0 ] || {
		cat "$T/nestvm.out" "$T/nestvm.err" >&2
		die "nestvm: exit $rc"
	}
	sed -n 's/^probe: bench: \(pattern=.*\)/\1/p' "$T/nestvm.out" >>"$T/nestvm"

	[ "${BENCH_QEMU:-1}" != 0 ] && command -v "$QEMU" >/dev/null || return 0
	sync
	# q35 with SeaBIOS (which places the BARs; the probe takes them as they
	# are). The probe's exit status s ends QEMU with 2s+1.
	timeout "$budget" "$QEMU" -accel kvm -M q35 -m 256 -smp 1 -nodefaults -display none \
		-serial stdio -device isa-debug-exit,iobase=0xf4,iosize=4 \
		-kernel "$PROBE" -append "$args" \
		-drive file="$IMG",if=none,id=d0,format=raw,cache=writeback \
		-device virtio-blk-pci,drive=d0,disable-legacy=on \
		</dev/null >"$T/qemu.out" 2>"$T/qemu.err"
	rc=$?
	if [ "$rc" -eq 1 ]; then
		sed -n 's/^probe: bench: \(pattern=.*\)/\1/p' "$T/qemu.out" >>"$T/qemu"
	else
		echo "QEMU: exit $rc (probe status $(((rc - 1) / 2))); its column stays empty" >&2
		tail -5 "$T/qemu.out" "$T/qemu.err" >&2
	fi
}

: >"$T/host"
: >"$T/nestvm"
: >"$T/qemu"
r=0
while [ $r -lt "$ROUNDS" ]; do
	round
	r=$((r + 1))
done

# One row per pattern and depth: IOPS of each side (the best of the rounds),
# MB/s of nestvm, ratios.
awk -v H="$T/host" -v N="$T/nestvm" -v Q="$T/qemu" '
function load(file, tab,    line, f, i, kv, key) {
	while ((getline line < file) > 0) {
		split(line, f, " ")
		delete kv
		for (i in f) { split(f[i], p, "="); kv[p[1]] = p[2] }
		key = kv["pattern"] " " kv["qd"]
		if (!(key in tab) || kv["iops"] + 0 > tab[key] + 0) tab[key] = kv["iops"]
		if (kv["errors"] != 0) err[key] = 1
		if (!(key in seen)) { seen[key] = 1; order[++n] = key }
	}
}
function ratio(a, b) { return (a == "" || b == "" || b == 0) ? "-" : sprintf("%.2f", a / b) }
function show(v) { return v == "" ? "-" : v }
BEGIN {
	load(N, nv); load(H, hv); load(Q, qv)
	printf "%-10s %3s %10s %10s %10s %9s %12s %12s\n", "pattern", "qd", "host", "nestvm", "qemu",
		"nestvm", "nestvm/host", "nestvm/qemu"
	printf "%-10s %3s %10s %10s %10s %9s %12s %12s\n", "", "", "IOPS", "IOPS", "IOPS", "MB/s", "", ""
	for (i = 1; i <= n; i++) {
		split(order[i], k, " ")
		printf "%-10s %3s %10s %10s %10s %9.1f %12s %12s%s\n", k[1], k[2], show(hv[order[i]]),
			show(nv[order[i]]), show(qv[order[i]]), nv[order[i]] * 4096 / 1e6,
			ratio(nv[order[i]], hv[order[i]]), ratio(nv[order[i]], qv[order[i]]),
			(order[i] in err) ? "  (errors)" : ""
	}
}'
