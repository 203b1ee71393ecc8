#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Live migration benchmark: nestvm (`nestvm receive` in one store,
# `nestvm migrate` from another: two NESTVM_HOMEs standing for two hosts,
# as tests/integration/migrate.sh does) and QEMU with KVM (a destination
# with `-incoming defer` and `migrate-incoming`, the source's `migrate`),
# side by side in one run, over loopback TCP, on the same probe guest with
# 1 vCPU, 256 MiB and 1 GiB of memory:
#   idle    test=idle fill=on: every word of RAM written once at boot, then
#           nothing (every page must go once, none again)
#   memgen  test=memgen clear=on with PASSES passes: the guest rewrites two
#           cache lines of every page above the probe, pass after pass,
#           without end during the migration (guest/probe/README.md), so
#           memory converges only as fast as the guest is throttled
#
# Settings, the same on both sides: the downtime allowed is DOWNTIME ms
# (nestvm --downtime; QEMU's downtime-limit); no bandwidth limit (QEMU's
# max-bandwidth raised from 7.2's 128 MiB/s to 128 GiB/s; nestvm has
# none); a guest that dirties memory faster than half the link is throttled
# (nestvm's own throttle; QEMU's auto-converge capability, which is off by
# default and without which memgen never converges: both start at 20% and
# add 10% per pass, up to 99%); MIG_TIMEOUT seconds at most.
#
# Per case and side, the median of RUNS runs (interleaved: nestvm and QEMU
# take turns going first) of:
#   total, to running there  from the migrate command (bash's
#                   EPOCHREALTIME before `nestvm migrate` starts / before
#                   QMP `migrate` is sent) to the moment the VM runs on the
#                   destination (nestvm: the destination monitor's
#                   "the VM runs here from T" in its monitor.log; QEMU: the
#                   timestamp of the destination's RESUME event)
#   total, the monitor's own  nestvm: "ms" of the reply (connect to RUNNING
#                   heard back); QEMU: query-migrate's total-time (migrate
#                   to completed at the source)
#   source done     nestvm: `nestvm migrate` until it returns (the source's
#                   monitor has ended); QEMU: until the source's MIGRATION
#                   "completed" event
#   downtime        from the guest's last instruction on the source to its
#                   first on the destination, both CLOCK_REALTIME on this
#                   one machine. The last instruction there lies between
#                   the moment the monitor starts stopping the vCPUs and the
#                   moment they all have stopped, so two figures, both to
#                   the destination's start (nestvm: "the VM runs here from
#                   T", logged just before its vCPU threads start; QEMU: the
#                   timestamp of its RESUME event):
#     from the stop asked  nestvm: the source's "switch-over: stopping the VM
#                   at T"; QEMU: its downtime_start (just before vm_stop),
#                   which is start + total-time - downtime of query-migrate,
#                   in ms, its start taken as our sending of `migrate` (so
#                   this figure is QEMU's by up to a ms or two too large)
#     from all stopped  nestvm: "switch-over: the VM stopped here at T"
#                   (vCPUs parked, devices quiesced); QEMU: its STOP event
#   downtime, the monitor's own  nestvm: "downtime_ms" (quiesce begun to
#                   RUNNING heard back: one round trip more than the above);
#                   QEMU: query-migrate's "downtime" (stop to the last byte
#                   sent: not the destination's loading)
#   sent            nestvm: the reply's bytes (whole MiB: what `nestvm
#                   migrate` prints); QEMU: query-migrate's ram.transferred
#                   (its device state, a few KiB, not counted)
#   passes          nestvm: the reply's passes (the switch-over's included);
#                   QEMU: ram.dirty-sync-count
#   throttle        the highest reached: nestvm's monitor.log ("vCPUs
#                   throttled to N%"); QEMU: query-migrate's
#                   cpu-throttle-percentage, read every 0.2 s meanwhile
# After each migration the destination must run and, for memgen, keep
# writing for a second without a FAIL on its console (memgen checks every
# page's markers before each pass: a page lost or stale fails at once).
#
# The destination fills fresh memory. On a virtual machine with free page
# reporting (this development VM) fresh memory costs 1-3 s per GiB more
# when the host took it back, which it does a few seconds after it was
# freed, so the monitor that ran second in a run was several times faster
# (the same memory, still warm). Right before each migration
# bench/memwarm.c touches and frees the destination's memory size plus
# 128 MiB, so that both start warm (WARM=0: not; see memwarm.c).
#
# QMP goes over FIFOs to QEMU's stdin and stdout (no socat or python
# needed). All files (the two stores, the secret, the FIFOs, QEMU's
# consoles) live in a temporary directory under $BUILD/bench, removed at
# exit with every VM, QEMU and `nestvm receive` this script started.
#
# Usage: bench/migrate.sh            (or `make bench-migrate`)
# Environment: RUNS (3), SIZES (MiB, "256 1024"), CASES ("idle memgen"),
#   DOWNTIME (ms, 50: the target's; nestvm's default is 100), PASSES (memgen, 1000000),
#   MIG_TIMEOUT (s, 300), WARM (1), BUILD (build), NESTVM, QEMU; BENCH_STRICT=1 makes
#   a missed target exit with status 1; DETAILS=FILE appends the source's log
#   lines on each nestvm migration (where its downtime went, its passes).
# Installs nothing: the monitor and the guest come from `make`, QEMU from
# scripts/install-deps.sh. Needs read-write access to /dev/kvm.

set -euo pipefail

cd "$(dirname "$0")/.."

# Target (project issue): downtime at 256 MiB over loopback, and below QEMU's.
TARGET_DOWNTIME_MS=50
TARGET_MIB=256

RUNS=${RUNS:-3}
SIZES=${SIZES:-256 1024}
KINDS=${CASES:-idle memgen}
DOWNTIME=${DOWNTIME:-$TARGET_DOWNTIME_MS}
PASSES=${PASSES:-1000000}
MIG_TIMEOUT=${MIG_TIMEOUT:-300}
WARM=${WARM:-1}
BUILD=${BUILD:-build}
NESTVM=${NESTVM:-$BUILD/release/nestvm}
QEMU=${QEMU:-qemu-system-x86_64}
ELF=$BUILD/guest/probe.elf
TIMEOUT_S=120 # a boot, a fill of the largest size, a reply, on a busy host


die() {
	echo "bench/migrate.sh: $*" >&2
	exit 1
}

for v in RUNS DOWNTIME PASSES MIG_TIMEOUT; do
	[[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive number, not '${!v}'"
done
for mib in $SIZES; do
	[[ $mib =~ ^[1-9][0-9]*$ ]] || die "SIZES must be numbers of MiB, not '$SIZES'"
done
for k in $KINDS; do
	[[ $k == idle || $k == memgen ]] || die "CASES are idle and memgen, not '$k'"
done
[[ -x $NESTVM ]] || die "$NESTVM is missing: run 'make release'"
[[ -f $ELF ]] || die "$ELF is missing: run 'make guests'"
[[ -r /dev/kvm && -w /dev/kvm ]] || die "/dev/kvm is not usable by $(id -un)"
command -v "$QEMU" >/dev/null || die "$QEMU not found: run scripts/install-deps.sh"
command -v ss >/dev/null || die "ss (iproute2) not found: it finds free ports"
command -v cc >/dev/null || die "cc not found: run scripts/install-deps.sh"
((BASH_VERSINFO[0] >= 5)) || die "needs bash 5 (EPOCHREALTIME)"

MEMWARM=$BUILD/bench/memwarm
if [[ ! -x $MEMWARM || bench/memwarm.c -nt $MEMWARM ]]; then
	mkdir -p "$BUILD/bench"
	cc -std=gnu11 -O2 -Wall -Wextra -Werror -o "$MEMWARM" bench/memwarm.c ||
		die "cannot build $MEMWARM"
fi

mkdir -p "$BUILD/bench"
WORK=$(mktemp -d "$BUILD/bench/migrate.XXXXXX")
WORK=$(cd "$WORK" && pwd)
# It goes into QMP's JSON unquoted.
[[ $WARM == 0 || $WARM == 1 ]] || die "WARM is 0 or 1, not '$WARM'"
[[ $WORK =~ ^[A-Za-z0-9/._+-]+$ ]] || die "the path $WORK needs quoting: use a plainer BUILD"
HOME_A=$WORK/a
HOME_B=$WORK/b
SECRET=$WORK/secret
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$SECRET"
chmod 600 "$SECRET"

VMS=()	  # names defined in both stores
QPIDS=()  # QEMU processes, by side (0: source, 1: destination)
RPID=	  # a `nestvm receive` in the background
cleanup() {
	local vm pid
	for pid in "${QPIDS[@]}" $RPID; do
		[[ -n $pid ]] && kill -KILL "$pid" 2>/dev/null || true
	done
	for pid in "${QPIDS[@]}" $RPID; do
		[[ -n $pid ]] && wait "$pid" 2>/dev/null || true
	done
	for vm in "${VMS[@]}"; do
		NESTVM_HOME=$HOME_A "$NESTVM" kill "$vm" >/dev/null 2>&1 || true
		NESTVM_HOME=$HOME_B "$NESTVM" kill "$vm" >/dev/null 2>&1 || true
	done
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now_us() { # -> microseconds since the epoch, in REPLY (no subshell)
	REPLY=${EPOCHREALTIME/[.,]/}
}

# wait_for FILE TEXT [SKIP]: until FILE holds TEXT (a console or log line)
# after its first SKIP lines.
wait_for() {
	local i
	for ((i = 0; i < TIMEOUT_S * 100; i++)); do
		tail -n +$((${3:-0} + 1)) "$1" 2>/dev/null | grep -qF -- "$2" && return 0
		sleep 0.01
	done
	die "no '$2' in $1 after $TIMEOUT_S s"
}

# no_fail FILE WHAT: the guest's console has no FAIL.
no_fail() {
	! grep -q 'FAIL' "$1" || die "$2: the guest failed after the migration: $(grep -m1 FAIL "$1")"
}

# us_of SECONDS.MICROS -> microseconds (the logs' and events' CLOCK_REALTIME).
us_of() {
	local s=${1%.*} u=${1#*.}
	echo $((s * 1000000 + 10#$u))
}

PORT=$((30000 + $$ % 20000))
next_port() { # a port nobody listens on, in PORT
	local i
	for ((i = 0; i < 1000; i++)); do
		PORT=$((PORT + 1 > 60000 ? 30000 : PORT + 1))
		[[ -z $(ss -Hltn "sport = :$PORT") ]] && return 0
	done
	die "no free TCP port found"
}

warm() { # MiB: the destination's memory, warm (see above)
	[[ $WARM == 1 ]] || return 0
	"$MEMWARM" $(($1 + 128)) || die "memwarm failed"
}

cmdline_of() { # KIND -> the guest's command line
	case $1 in
	idle) echo "test=idle fill=on" ;;
	memgen) echo "test=memgen passes=$PASSES clear=on" ;;
	esac
}

# wait_guest CONSOLE KIND: until the guest is in the state it migrates in:
# filled and idle, or a second into memgen's passes (all memory touched).
wait_guest() {
	case $2 in
	idle) wait_for "$1" "probe: test=idle: filled" ;;
	memgen)
		wait_for "$1" "probe: memgen: $PASSES passes over"
		sleep 1
		no_fail "$1" "before the migration"
		;;
	esac
}

# ---- nestvm ----

nestvm_define() { # NAME MiB CMDLINE, in store A (B gets it with the first migration)
	NESTVM_HOME=$HOME_A "$NESTVM" new "$1" --kernel "$ELF" --cmdline "$3" --memory "$2M" \
		--cpus 1 >/dev/null || die "cannot define VM $1"
	VMS+=("$1")
}

# nestvm_run NAME KIND RESULTS: start in A, receive in B, migrate, check, kill
# in B; appends one result line.
nestvm_run() {
	local name=$1 kind=$2 res=$3 a=$HOME_A/$1 b=$HOME_B/$1 mib=${1#bench-}
	mib=${mib%-*}
	local out=$WORK/nestvm.out recv=$WORK/recv.out alines=0 blines=0
	local t0 t1 ms down sent passes stop stopreq run thr

	NESTVM_HOME=$HOME_A "$NESTVM" start "$name" >"$out" 2>&1 || {
		cat "$out" "$a/monitor.log" >&2
		die "nestvm start $name failed"
	}
	wait_guest "$a/console.log" "$kind"
	[[ -f $b/monitor.log ]] && blines=$(wc -l <"$b/monitor.log")
	alines=$(wc -l <"$a/monitor.log")
	next_port
	NESTVM_HOME=$HOME_B "$NESTVM" receive "$name" --listen "tcp:127.0.0.1:$PORT" \
		--secret-file "$SECRET" --wait $TIMEOUT_S >"$recv" 2>&1 </dev/null &
	RPID=$!
	wait_for "$recv" "waiting for VM"

	warm "$mib"
	now_us && t0=$REPLY
	NESTVM_HOME=$HOME_A timeout $((MIG_TIMEOUT + 60)) "$NESTVM" migrate "$name" \
		--to "tcp:127.0.0.1:$PORT" --secret-file "$SECRET" --downtime "$DOWNTIME" \
		--timeout "$MIG_TIMEOUT" >"$out" 2>&1 </dev/null ||
		die "nestvm migrate $name failed: $(cat "$out")"
	now_us && t1=$REPLY
	wait "$RPID" || die "nestvm receive $name failed: $(cat "$recv")"
	RPID=

	read -r ms sent passes down < <(sed -n \
		's/.* in \([0-9]*\) ms: \([0-9]*\) MiB in \([0-9]*\) passes, stopped for \([0-9]*\) ms$/\1 \2 \3 \4/p' "$out") || true
	[[ -n $down ]] || die "cannot read nestvm migrate's output: $(cat "$out")"
	stop=$(tail -n +$((alines + 1)) "$a/monitor.log" |
		sed -n 's/.*the VM stopped here at \([0-9.]*\) (CLOCK_REALTIME).*/\1/p')
	stopreq=$(tail -n +$((alines + 1)) "$a/monitor.log" |
		sed -n 's/.*stopping the VM at \([0-9.]*\) (CLOCK_REALTIME).*/\1/p')
	thr=$(tail -n +$((alines + 1)) "$a/monitor.log" |
		sed -n 's/.*vCPUs throttled to \([0-9]*\)%.*/\1/p' | sort -n | tail -n 1)
	# Where the source's downtime went, and its passes, for whoever wants them shorter.
	[[ -z ${DETAILS:-} ]] || tail -n +$((alines + 1)) "$a/monitor.log" |
		grep "switch-over: stopping the VM [0-9]* ms\|pass [0-9]*:\|completed in" |
		sed "s/^/$name: /" >>"$DETAILS"
	wait_for "$b/monitor.log" "the VM runs here from" "$blines"
	run=$(tail -n +$((blines + 1)) "$b/monitor.log" |
		sed -n 's/.*the VM runs here from \([0-9.]*\) (CLOCK_REALTIME).*/\1/p')
	[[ -n $stop && -n $stopreq && -n $run ]] ||
		die "no switch-over times in $a/monitor.log and $b/monitor.log"
	stop=$(us_of "$stop") stopreq=$(us_of "$stopreq") run=$(us_of "$run")

	# The guest goes on there.
	if [[ $kind == memgen ]]; then
		sleep 1
		no_fail "$b/console.log" "nestvm, $name"
	fi
	NESTVM_HOME=$HOME_B "$NESTVM" show "$name" | grep -q '^state: *running' ||
		die "nestvm: $name does not run on the destination: $(tail -n 5 "$b/monitor.log")"
	NESTVM_HOME=$HOME_B "$NESTVM" kill "$name" >/dev/null || die "nestvm kill $name failed"
	echo "$((run - t0)) $ms $((t1 - t0)) $((run - stop)) $down $((sent * 1048576)) $passes" \
		"${thr:-0} $((run - stopreq))" >>"$res"
}

# ---- QEMU, through QMP on FIFOs to its stdin and stdout ----

declare -a QIN QOUT QEV # per side: QMP's write and read descriptors, events seen
QMP_LINE=

qmp_read() { # SIDE [TIMEOUT]: one line into QMP_LINE (1: none in time); events kept
	local t=${2:-$TIMEOUT_S} rc=0
	IFS= read -r -t "$t" -u "${QOUT[$1]}" QMP_LINE || rc=$?
	if ((rc > 128)); then
		return 1
	elif ((rc != 0)); then
		die "QEMU ($1) ended (stderr: $(cat "$WORK/qemu$1.err"))"
	fi
	[[ $QMP_LINE != *'"event"'* ]] || QEV[$1]+=$QMP_LINE$'\n'
	return 0
}

qmp_cmd() { # SIDE JSON: send it, wait for its reply (in QMP_LINE), which must not be an error
	printf '%s\n' "$2" >&"${QIN[$1]}"
	while true; do
		qmp_read "$1" || die "QEMU ($1) did not answer $2 in $TIMEOUT_S s"
		case $QMP_LINE in
		*'"return"'*) return 0 ;;
		*'"error"'*) die "QMP $2: $QMP_LINE" ;;
		esac
	done
}

# qmp_event_ts SIDE EVENT: the timestamp (microseconds) of the first EVENT
# seen on SIDE, waiting for it; "" if QEMU's migration failed meanwhile.
qmp_event_ts() {
	local line
	until [[ ${QEV[$1]} == *"\"event\": \"$2\""* ]]; do
		qmp_read "$1" || die "no $2 from QEMU ($1) in $TIMEOUT_S s"
		[[ $QMP_LINE != *'"MIGRATION"'*'"failed"'* ]] || die "QEMU ($1): $QMP_LINE"
	done
	line=$(grep -m1 -F "\"event\": \"$2\"" <<<"${QEV[$1]}")
	[[ $line =~ \"seconds\":\ *([0-9]+),\ *\"microseconds\":\ *([0-9]+) ]] ||
		die "no timestamp in $line"
	echo $((BASH_REMATCH[1] * 1000000 + BASH_REMATCH[2]))
}

json_num() { # KEY: the first number after "KEY": in QMP_LINE ("" if none)
	[[ $QMP_LINE =~ \"$1\":\ *([0-9]+) ]] && echo "${BASH_REMATCH[1]}" || true
}

# qemu_spawn SIDE MiB CMDLINE [ARG...]: QEMU with QMP on two FIFOs, negotiated.
qemu_spawn() {
	local side=$1 mib=$2 cmdline=$3 in=$WORK/qmp$1.in out=$WORK/qmp$1.out fd
	shift 3
	rm -f "$in" "$out" "$WORK/qemu$side.console"
	mkfifo -m 600 "$in" "$out"
	"$QEMU" -accel kvm -M microvm -m "${mib}M" -smp 1 \
		-nodefaults -no-user-config -display none -monitor none \
		-serial "file:$WORK/qemu$side.console" -qmp stdio \
		-kernel "$ELF" -append "$cmdline" "$@" <"$in" >"$out" 2>"$WORK/qemu$side.err" &
	QPIDS[side]=$!
	# In the order QEMU's shell opens them: stdin, then stdout.
	exec {fd}>"$in"
	QIN[side]=$fd
	exec {fd}<"$out"
	QOUT[side]=$fd
	QEV[side]=
	qmp_read "$side" || die "no QMP greeting from QEMU ($side)"
	qmp_cmd "$side" '{"execute":"qmp_capabilities"}'
	qmp_cmd "$side" '{"execute":"migrate-set-capabilities","arguments":{"capabilities":[{"capability":"events","state":true},{"capability":"auto-converge","state":true}]}}'
	qmp_cmd "$side" "{\"execute\":\"migrate-set-parameters\",\"arguments\":{\"max-bandwidth\":137438953472,\"downtime-limit\":$DOWNTIME}}"
}

qemu_end() { # SIDE: quit, and wait for the process
	local in=${QIN[$1]} out=${QOUT[$1]}
	qmp_cmd "$1" '{"execute":"quit"}'
	wait "${QPIDS[$1]}" 2>/dev/null || true
	exec {in}>&- {out}<&-
	QPIDS[$1]=
}

# qemu_run MiB KIND RESULTS: boot the source, a destination waiting, migrate,
# check, quit both; appends one result line.
qemu_run() {
	local mib=$1 kind=$2 res=$3 cmdline
	local t0 t1 stop run total down bytes passes thr=0 p

	cmdline=$(cmdline_of "$kind")
	qemu_spawn 0 "$mib" "$cmdline"
	wait_guest "$WORK/qemu0.console" "$kind"
	qemu_spawn 1 "$mib" "$cmdline" -incoming defer
	next_port
	qmp_cmd 1 "{\"execute\":\"migrate-incoming\",\"arguments\":{\"uri\":\"tcp:127.0.0.1:$PORT\"}}"

	warm "$mib"
	now_us && t0=$REPLY
	qmp_cmd 0 "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"tcp:127.0.0.1:$PORT\"}}"
	# Until completed; meanwhile the throttle, every 0.2 s.
	until [[ ${QEV[0]} == *'"MIGRATION"'*'"completed"'* ]]; do
		if ! qmp_read 0 0.2; then
			qmp_cmd 0 '{"execute":"query-migrate"}'
			p=$(json_num cpu-throttle-percentage)
			((${p:-0} > thr)) && thr=$p
			now_us
			((REPLY - t0 < MIG_TIMEOUT * 1000000)) || {
				qmp_cmd 0 '{"execute":"migrate_cancel"}'
				die "QEMU: memory did not converge in $MIG_TIMEOUT s"
			}
			continue
		fi
		[[ $QMP_LINE != *'"MIGRATION"'*'"failed"'* ]] || die "QEMU: $QMP_LINE"
	done
	now_us && t1=$REPLY
	stop=$(qmp_event_ts 0 STOP)
	run=$(qmp_event_ts 1 RESUME)
	qmp_cmd 0 '{"execute":"query-migrate"}'
	[[ $QMP_LINE == *'"status": "completed"'* ]] || die "QEMU: $QMP_LINE"
	total=$(json_num total-time) down=$(json_num downtime)
	bytes=$(json_num transferred) passes=$(json_num dirty-sync-count)
	[[ -n $total && -n $down && -n $bytes && -n $passes ]] || die "QEMU's query-migrate: $QMP_LINE"

	if [[ $kind == memgen ]]; then
		sleep 1
		no_fail "$WORK/qemu1.console" "QEMU"
	fi
	qmp_cmd 1 '{"execute":"query-status"}'
	[[ $QMP_LINE == *'"running": true'* ]] || die "QEMU does not run on the destination: $QMP_LINE"
	qemu_end 1
	qemu_end 0
	echo "$((run - t0)) $total $((t1 - t0)) $((run - stop)) $down $bytes $passes $thr" \
		"$((run - t0 - (total - down) * 1000))" >>"$res"
}

# ---- the runs ----

# cpu_busy SECONDS -> percent of all CPUs busy over that time (as bench/boot.sh).
cpu_busy() {
	local a b
	a=$(head -n 1 /proc/stat)
	sleep "$1"
	b=$(head -n 1 /proc/stat)
	awk -v a="$a" -v b="$b" 'BEGIN {
		n = split(a, x, " "); split(b, y, " ")
		for (i = 2; i <= n; i++) { t += y[i] - x[i]; if (i == 5 || i == 6) idle += y[i] - x[i] }
		printf "%.0f", (t > 0 ? 100 * (1 - idle / t) : 0)
	}'
}

CASES=()
for mib in $SIZES; do
	for kind in $KINDS; do
		CASES+=("$mib-$kind")
		nestvm_define "bench-$mib-$kind" "$mib" "$(cmdline_of "$kind")"
	done
done

BUSY_BEFORE=$(cpu_busy 0.5)
LOAD_BEFORE=$(cut -d' ' -f1 /proc/loadavg)
START_S=$(date +%s.%N)
for ((r = 0; r < RUNS; r++)); do
	echo "run $((r + 1))/$RUNS ..." >&2
	for c in "${CASES[@]}"; do
		mib=${c%-*} kind=${c#*-}
		if ((r % 2 == 0)); then
			nestvm_run "bench-$c" "$kind" "$WORK/nestvm-$c.txt"
			qemu_run "$mib" "$kind" "$WORK/qemu-$c.txt"
		else
			qemu_run "$mib" "$kind" "$WORK/qemu-$c.txt"
			nestvm_run "bench-$c" "$kind" "$WORK/nestvm-$c.txt"
		fi
	done
done
ELAPSED_S=$(awk -v a="$START_S" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }')
BUSY_AFTER=$(cpu_busy 0.5)
LOAD_AFTER=$(cut -d' ' -f1 /proc/loadavg)

# ---- the table ----

# med: the median of the numbers on stdin, one a line.
med() {
	sort -g | awk '{ v[NR] = $1 }
	END { printf "%.6f\n", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
median() { # FILE COLUMN SCALE: the median of a column, divided by SCALE
	cut -d' ' -f"$2" "$1" | awk -v s="$3" '{ print $1 / s }' | med
}
range() { # FILE COLUMN SCALE DIGITS: "lowest-highest" of a column
	cut -d' ' -f"$2" "$1" | awk -v s="$3" -v d="$4" '{ v = $1 / s
		if (NR == 1 || v < lo) lo = v; if (NR == 1 || v > hi) hi = v }
		END { printf "%.*f-%.*f", d, lo, d, hi }'
}
fmt() { awk -v v="$1" -v d="$2" 'BEGIN { printf "%.*f", d, v }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
kvm_kind=unknown
for m in kvm_pvm kvm_intel kvm_amd; do
	if [[ -d /sys/module/$m ]]; then
		kvm_kind=$m
		break
	fi
done

echo "nestvm live migration benchmark: probe guest, 1 vCPU, loopback TCP, median of $RUNS runs" \
	"(lowest-highest), nestvm and QEMU interleaved"
echo "date:    $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "machine: $cpu_model, $(nproc) CPUs," \
	"$(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)," \
	"Linux $(uname -r), KVM via $kvm_kind"
echo "load:    CPUs ${BUSY_BEFORE}% busy just before the runs, ${BUSY_AFTER}% just after$(awk \
	-v a="$BUSY_BEFORE" -v b="$BUSY_AFTER" \
	'BEGIN { if (a > 10 || b > 10) print " (other work is running: figures inflated)" }');" \
	"load average $LOAD_BEFORE before, $LOAD_AFTER after"
echo "nestvm:  $NESTVM (commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')):" \
	"receive + migrate --downtime $DOWNTIME"
echo "qemu:    $("$QEMU" --version | head -n 1), -accel kvm -M microvm; -incoming defer +" \
	"migrate-incoming, migrate; downtime-limit $DOWNTIME ms, max-bandwidth 128 GiB/s," \
	"auto-converge on"
echo "guests:  idle = test=idle fill=on; memgen = test=memgen passes=$PASSES clear=on"

row() { # LABEL NESTVM QEMU UNIT
	printf '  %-34s %16s %-3s %16s %-3s %7s\n' "$1" "$2" "$4" "$3" "$4" "$(ratio "${2%% *}" "${3%% *}")"
}
cell() { # FILE COLUMN SCALE DIGITS: "median (lowest-highest)"
	echo "$(fmt "$(median "$1" "$2" "$3")" "$4") ($(range "$1" "$2" "$3" "$4"))"
}

declare -A DOWN_N DOWN_Q
for c in "${CASES[@]}"; do
	n=$WORK/nestvm-$c.txt q=$WORK/qemu-$c.txt
	echo
	printf '%-36s %20s %20s %7s\n' "${c%-*} MiB, ${c#*-}" nestvm QEMU nestvm/QEMU
	row "total, migrate to running there" "$(cell "$n" 1 1000 0)" "$(cell "$q" 1 1000 0)" ms
	row "total, the monitor's own figure" "$(cell "$n" 2 1 0)" "$(cell "$q" 2 1 0)" ms
	row "source done" "$(cell "$n" 3 1000 0)" "$(cell "$q" 3 1000 0)" ms
	row "downtime, from the stop asked" "$(cell "$n" 9 1000 1)" "$(cell "$q" 9 1000 1)" ms
	row "downtime, from all stopped" "$(cell "$n" 4 1000 1)" "$(cell "$q" 4 1000 1)" ms
	row "downtime, the monitor's own figure" "$(cell "$n" 5 1 0)" "$(cell "$q" 5 1 0)" ms
	row "sent" "$(cell "$n" 6 1048576 0)" "$(cell "$q" 6 1048576 0)" MiB
	row "passes" "$(cell "$n" 7 1 0)" "$(cell "$q" 7 1 0)" ""
	row "throttle, the highest" "$(cell "$n" 8 1 0)" "$(cell "$q" 8 1 0)" "%"
	DOWN_N[$c]=$(median "$n" 9 1000)
	DOWN_Q[$c]=$(median "$q" 9 1000)
done
echo

missed=0
for c in "${CASES[@]}"; do
	[[ $c == $TARGET_MIB-* ]] || continue
	if awk -v n="${DOWN_N[$c]}" -v q="${DOWN_Q[$c]}" -v t=$TARGET_DOWNTIME_MS \
		'BEGIN { exit !(n <= t && n < q) }'; then
		v=met
	else
		v=MISSED
		missed=1
	fi
	echo "target, $c: downtime (from the stop asked) <= $TARGET_DOWNTIME_MS ms and below QEMU's: $v" \
		"(nestvm $(fmt "${DOWN_N[$c]}" 1) ms, QEMU $(fmt "${DOWN_Q[$c]}" 1) ms)"
done
echo "the runs took $ELAPSED_S s"

if [[ ${BENCH_STRICT:-0} == 1 && $missed == 1 ]]; then
	exit 1
fi
exit 0
