#!/bin/sh
# virtio-net with the probe guest's CPL3 driver (test=net bench=1,
# guest/probe/test_net.c) under nestvm and under QEMU, side by side in one
# run, on this host's KVM:
#
#  - VM to VM: a receiver and a sender probe VM on a nestvm private switch,
#    against two QEMUs joined by -netdev stream over a UNIX socket (one
#    server=on, the other connecting). The receiver counts and times the
#    frames (TSC, first to last); a switch that drops shows as "lost".
#  - VM to host: one probe VM sends UDP to 10.0.2.2 (libslirp's way to the
#    host's loopback) through a nestvm NAT switch, against QEMU's -netdev
#    user (libslirp too); bench/udp_sink.c on 127.0.0.1 counts and times
#    what arrives.
#
# Each at BENCH_SIZES frame sizes (bytes of Ethernet frame, without the
# virtio header): 1514 gives the throughput, 60 the packet rate. The UDP
# checksum is left out (0) everywhere, so no side does checksum work: QEMU
# offers no checksum offload to a guest over user or stream networking.
#
# Environment: BENCH_SECONDS each sender sends (2), BENCH_SIZES ("1514 60"),
# BENCH_ROUNDS (1: every case runs that many times, in turn, and the table
# shows the best), BENCH_CASES ("vm2vm vm2host"), NESTVM (build/release/nestvm),
# BENCH_PROBE (build/guest/probe.elf: the guest of both sides), QEMU (qemu-system-x86_64;
# BENCH_QEMU=0 leaves it out), BENCH_PORT (UDP port of the host's sink;
# 20000 + pid % 10000), BENCH_KEEP (1: keep the run's directory, the VMs' and the
# sink's output, under build/bench/). The load average is taken with every figure: the
# table shows it for the figure kept.
set -u
cd "$(dirname "$0")/.." || exit 1
SECS=${BENCH_SECONDS:-2}
SIZES=${BENCH_SIZES:-1514 60}
CASES=${BENCH_CASES:-vm2vm vm2host}
ROUNDS=${BENCH_ROUNDS:-1}
NESTVM=${NESTVM:-build/release/nestvm}
QEMU=${QEMU:-qemu-system-x86_64}
PORT=${BENCH_PORT:-$((20000 + $$ % 10000))}
PROBE=${BENCH_PROBE:-build/guest/probe.elf}
SINK=build/release/bench/udp_sink
mkdir -p build/bench
T=$(mktemp -d "$(pwd)/build/bench/net.XXXXXX")
cleanup() {
	NESTVM_HOME=$T/home timeout 10 "$NESTVM" switch stop bpriv --force >/dev/null 2>&1
	NESTVM_HOME=$T/home timeout 10 "$NESTVM" switch stop bnat --force >/dev/null 2>&1
	[ -n "${BENCH_KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

die() {
	echo "net: $*" >&2
	exit 1
}

[ -x "$NESTVM" ] && [ -e "$PROBE" ] || die "build first: make release guests"
[ -r /dev/kvm ] && [ -w /dev/kvm ] || die "/dev/kvm is not usable"
if [ ! -x "$SINK" ] || [ bench/udp_sink.c -nt "$SINK" ]; then
	mkdir -p "$(dirname "$SINK")"
	cc -std=gnu11 -O2 -Wall -Wextra -Werror -o "$SINK" bench/udp_sink.c || die "cannot build $SINK"
fi
HAVE_QEMU=1
[ "${BENCH_QEMU:-1}" != 0 ] && command -v "$QEMU" >/dev/null || HAVE_QEMU=0

export NESTVM_HOME=$T/home
mkdir -p "$NESTVM_HOME"
chmod 700 "$NESTVM_HOME"
"$NESTVM" switch new bpriv --type private >/dev/null || die "cannot make a private switch"
"$NESTVM" switch new bnat --type nat >/dev/null || die "cannot make a NAT switch"
budget=$((SECS + 40))

load() { cut -d' ' -f1 /proc/loadavg; }

# record SIDE CASE SIZE PPS: one figure, with the load as it is now.
record() { echo "$1 $2 $3 $4 $(load)" >>"$T/figures"; }

# bench_line FILE: "pps" of the probe's "probe: bench: net role=recv" line.
recv_pps() { sed -n 's/.*probe: bench: net role=recv .* pps=\([0-9]*\).*/\1/p' "$1" | tail -1; }
sink_pps() { sed -n 's/^sink: packets=.* pps=\([0-9]*\).*/\1/p' "$1" | tail -1; }

# nv NAME ARGS SWITCH: a nestvm probe VM in the background, output in $T/NAME.out.
nv() {
	timeout "$budget" "$NESTVM" run --kernel "$PROBE" --memory 64M --cmdline "test=net csum=0 $2" \
		--nic "switch=$3" </dev/null >"$T/$1.out" 2>"$T/$1.err" &
}

# qv NAME ARGS NETDEV MAC: a QEMU probe VM in the background (q35 with SeaBIOS,
# as in bench/virtio_guest.sh; the probe's status s ends QEMU with 2s+1).
qv() {
	timeout "$budget" "$QEMU" -accel kvm -M q35 -m 256 -smp 1 -nodefaults -display none \
		-serial stdio -device isa-debug-exit,iobase=0xf4,iosize=4 \
		-kernel "$PROBE" -append "test=net csum=0 $2" -netdev "$3" \
		-device "virtio-net-pci,netdev=n0,disable-legacy=on,mac=$4" \
		</dev/null >"$T/$1.out" 2>"$T/$1.err" &
}

# failed NAME: show why a VM's figure is missing.
failed() {
	echo "net: $1: no figure" >&2
	grep -a "probe: test=net\|error" "$T/$1.out" "$T/$1.err" 2>/dev/null | tail -3 >&2
}

vm2vm_nestvm() {
	nv n-recv "role=recv bench=1" bpriv
	rx=$!
	sleep 0.5
	nv n-send "role=send bench=1 size=$1 seconds=$SECS" bpriv
	wait $! $rx
	pps=$(recv_pps "$T/n-recv.out")
	[ -n "$pps" ] && record nestvm vm2vm "$1" "$pps" || failed n-recv
	grep -a "probe: bench: net role=recv" "$T/n-recv.out" | sed 's/.*lost=\([0-9]*\).*/\1/' >>"$T/n-lost.$1"
}

vm2vm_qemu() {
	sock=$T/q.sock
	rm -f "$sock"
	qv q-recv "role=recv bench=1" "stream,id=n0,server=on,addr.type=unix,addr.path=$sock" \
		52:54:00:be:00:01
	rx=$!
	for _i in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done
	qv q-send "role=send bench=1 size=$1 seconds=$SECS" \
		"stream,id=n0,server=off,addr.type=unix,addr.path=$sock" 52:54:00:be:00:02
	wait $! $rx
	pps=$(recv_pps "$T/q-recv.out")
	[ -n "$pps" ] && record qemu vm2vm "$1" "$pps" || failed q-recv
}

# QEMU 7.2's stream receiver now and then dies of SIGSEGV as the frames come
# in (seen with 60-byte frames): once more, and counted.
vm2vm_qemu_retry() {
	vm2vm_qemu "$1"
	[ -n "$pps" ] && return
	echo "qemu vm2vm size $1: the receiver died ($(grep -a "test=net" "$T/q-recv.out" | tail -1)); running it again" >&2
	vm2vm_qemu "$1"
}

# vm2host SIDE SIZE: the sink, then a sender through libslirp.
vm2host() {
	"$SINK" "$PORT" 1000 "$budget" >"$T/sink.out" 2>&1 &
	s=$!
	for _i in $(seq 100); do grep -q listening "$T/sink.out" && break; sleep 0.05; done
	args="role=send bench=1 size=$2 seconds=$SECS dst=10.0.2.2 dport=$PORT"
	if [ "$1" = nestvm ]; then
		nv n-host "$args" bnat
	else
		qv q-host "$args" user,id=n0 52:54:00:be:00:03
	fi
	wait $! $s
	pps=$(sink_pps "$T/sink.out")
	[ -n "$pps" ] && record "$1" vm2host "$2" "$pps" || failed "$(echo "$1" | cut -c1)-host"
}

echo "host: $(uname -r), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg); ${SECS} s per" \
	"sender, frame sizes $SIZES, best of $ROUNDS round(s); $("$QEMU" --version 2>/dev/null | head -1)"
: >"$T/figures"
r=0
while [ $r -lt "$ROUNDS" ]; do
	for size in $SIZES; do
		case " $CASES " in *" vm2vm "*)
			vm2vm_nestvm "$size"
			[ $HAVE_QEMU = 1 ] && vm2vm_qemu_retry "$size" ;;
		esac
		case " $CASES " in *" vm2host "*)
			vm2host nestvm "$size"
			[ $HAVE_QEMU = 1 ] && vm2host qemu "$size" ;;
		esac
	done
	r=$((r + 1))
done

cp "$T/figures" build/bench/net.figures # "SIDE CASE SIZE FRAMES/S LOAD" per run, kept
# One row per case and size: frames/s and Gbit/s (Ethernet frame bytes) of each
# side, the best of the rounds with the load when it was taken, and nestvm/QEMU.
awk -v SIZES="$SIZES" -v CASES="$CASES" '
{
	key = $1 " " $2 " " $3
	if (!(key in pps) || $4 + 0 > pps[key] + 0) { pps[key] = $4; ld[key] = $5 }
	all[key] = all[key] " " $4
}
function show(k) { return (k in pps) ? pps[k] : "-" }
function gbps(k, size) { return (k in pps) ? sprintf("%.3f", pps[k] * size * 8 / 1e9) : "-" }
function load(k) { return (k in ld) ? ld[k] : "-" }
function median(list,    v, c, i, j, t) {
	c = split(list, v, " ")
	for (i = 2; i <= c; i++)
		for (j = i; j > 1 && v[j - 1] + 0 > v[j] + 0; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
	return c ? (c % 2 ? v[(c + 1) / 2] : (v[c / 2] + v[c / 2 + 1]) / 2) : ""
}
END {
	printf "%-8s %5s %10s %8s %10s %8s %12s %11s\n", "case", "size", "nestvm", "nestvm",
		"qemu", "qemu", "nestvm/qemu", "load"
	printf "%-8s %5s %10s %8s %10s %8s %12s %11s\n", "", "bytes", "frames/s", "Gbit/s",
		"frames/s", "Gbit/s", "", "nestvm/qemu"
	n = split(CASES, cases, " ")
	m = split(SIZES, sizes, " ")
	for (i = 1; i <= n; i++)
		for (j = 1; j <= m; j++) {
			kn = "nestvm " cases[i] " " sizes[j]
			kq = "qemu " cases[i] " " sizes[j]
			printf "%-8s %5s %10s %8s %10s %8s %12s %11s\n", cases[i], sizes[j], show(kn),
				gbps(kn, sizes[j]), show(kq), gbps(kq, sizes[j]),
				((kn in pps) && (kq in pps) && pps[kq] > 0) ? sprintf("%.2f", pps[kn] / pps[kq]) : "-",
				load(kn) "/" load(kq)
		}
	print "every round, frames/s (the spread is other work on the host), and the ratio of the medians:"
	for (i = 1; i <= n; i++)
		for (j = 1; j <= m; j++) {
			an = all["nestvm " cases[i] " " sizes[j]]
			aq = all["qemu " cases[i] " " sizes[j]]
			mn = median(an)
			mq = median(aq)
			printf "  %-8s %5s  nestvm%s  qemu%s  median nestvm/qemu %s\n", cases[i], sizes[j],
				an, aq, (mn != "" && mq + 0 > 0) ? sprintf("%.2f", mn / mq) : "-"
		}
}' "$T/figures"
for size in $SIZES; do
	[ -f "$T/n-lost.$size" ] &&
		echo "nestvm vm2vm size $size: frames lost in the private switch per round: $(tr '\n' ' ' <"$T/n-lost.$size")"
done
exit 0
