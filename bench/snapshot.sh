#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Save/restore benchmark: a managed nestvm VM (`nestvm save`, then
# `nestvm start` from the saved state) and QEMU with KVM (QMP `stop` and
# `migrate` into a file, then a new QEMU with `-incoming defer`,
# `migrate-incoming` from that file and `cont`, as `virsh save`/`restore`
# do), side by side in one run, on the same probe guest (test=idle), with
# 256 MiB and 2 GiB of memory, left untouched by the guest and fully written
# (test=idle fill=on: every word above the probe, no zero page). In the same
# run, the disk's write speed for as many bytes, which a save of written
# memory is held against: bench/diskwrite.c writes them as a save does
# (O_DIRECT, 8 MiB writes from huge pages, fsync); and dd conv=fsync writes
# them through the page cache, for comparison (on the development VM,
# copying into new page-cache pages made that the slower way).
#
# Per case and side, the median of RUNS runs (interleaved: nestvm and QEMU
# take turns going first), and for restore to running also the fastest, of:
#   save            nestvm: the "ms" of the save reply (quiesce, state and
#                   memory written and fsynced, put in place); QEMU: `stop`
#                   until the MIGRATION event says completed, plus an fsync
#                   of the file (`sync FILE`: QEMU's exec: target does not)
#   save, command   nestvm: `nestvm save` until it returns (the monitor has
#                   ended); QEMU: the above plus `quit` until the process is
#                   gone
#   restore to running  nestvm: `nestvm start` until it returns (it does when
#                   the VM runs); QEMU: process spawn until the RESUME event
#   restore inside  nestvm: the monitor's own figure (monitor.log, "restored
#                   from the saved state in N ms": open and check, build the
#                   VM, remove the spent state); QEMU: `migrate-incoming`
#                   until RESUME
#   on disk         allocated bytes (du) and apparent size of the saved
#                   directory / QEMU's file
# Wall times of commands come from bench/runstat.c; QEMU's from bash's
# EPOCHREALTIME around the QMP exchange (QMP on QEMU's stdin/stdout, a bash
# coprocess: no socat or python needed). All files (the VM store, QEMU's
# state files, the disk test's file) live in a temporary directory under
# $BUILD/bench, on the file system of the worktree, removed at exit with
# every VM and QEMU this script started. The page cache is not dropped:
# QEMU restores from a file it has just written through the page cache;
# nestvm's memory file was written with O_DIRECT, but a restore reads none
# of it (the guest does, page by page, once it runs).
#
# Usage: bench/snapshot.sh            (or `make bench-snapshot`)
# Environment: RUNS (5), SIZES (MiB, "256 2048"), BUILD (build), NESTVM,
#   QEMU; BENCH_STRICT=1 makes a missed target exit with status 1.
# Installs nothing: the monitor and the guest come from `make`, QEMU and cc
# from scripts/install-deps.sh. Needs read-write access to /dev/kvm.

set -euo pipefail

cd "$(dirname "$0")/.."

RUNS=${RUNS:-5}
SIZES=${SIZES:-256 2048}
BUILD=${BUILD:-build}
NESTVM=${NESTVM:-$BUILD/release/nestvm}
QEMU=${QEMU:-qemu-system-x86_64}
ELF=$BUILD/guest/probe.elf
TIMEOUT_S=600 # one fill, save or restore of the largest size, on a busy host

# Targets (project issue): restore to running at 256 MiB; save throughput of
# fully written memory as a share of the disk's write speed.
TARGET_RESTORE_MS=10
TARGET_RESTORE_MIB=256
TARGET_SAVE_SHARE=90 # percent of bench/diskwrite's MiB/s

die() {
	echo "bench/snapshot.sh: $*" >&2
	exit 1
}

[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive number, not '$RUNS'"
for mib in $SIZES; do
	[[ $mib =~ ^[1-9][0-9]*$ ]] || die "SIZES must be numbers of MiB, not '$SIZES'"
done
[[ -x $NESTVM ]] || die "$NESTVM is missing: run 'make release'"
[[ -f $ELF ]] || die "$ELF is missing: run 'make guests'"
[[ -r /dev/kvm && -w /dev/kvm ]] || die "/dev/kvm is not usable by $(id -un)"
command -v "$QEMU" >/dev/null || die "$QEMU not found: run scripts/install-deps.sh"
command -v cc >/dev/null || die "cc not found: run scripts/install-deps.sh"
((BASH_VERSINFO[0] >= 5)) || die "needs bash 5 (EPOCHREALTIME)"

# The helpers, rebuilt when their sources change (runstat static, as in bench/boot.sh).
RUNSTAT=$BUILD/bench/runstat
DISKWRITE=$BUILD/bench/diskwrite
build_helper() { # OUTPUT SOURCE FLAGS...
	local out=$1 src=$2
	shift 2
	if [[ ! -x $out || $src -nt $out ]]; then
		mkdir -p "$(dirname "$out")"
		cc -std=gnu11 -O2 -Wall -Wextra -Werror "$@" -o "$out" "$src" ||
			die "cannot build $out"
	fi
}
build_helper "$RUNSTAT" bench/runstat.c -static
build_helper "$DISKWRITE" bench/diskwrite.c

mkdir -p "$BUILD/bench"
WORK=$(mktemp -d "$BUILD/bench/snapshot.XXXXXX")
WORK=$(cd "$WORK" && pwd)
# It goes into QMP's JSON and QEMU's exec: shell commands unquoted.
[[ $WORK =~ ^[A-Za-z0-9/._+-]+$ ]] || die "the path $WORK needs quoting: use a plainer BUILD"
export NESTVM_HOME=$WORK/home
VMS=()
QPID=
cleanup() {
	local vm
	if [[ -n $QPID ]] && kill -0 "$QPID" 2>/dev/null; then
		kill -KILL "$QPID" 2>/dev/null || true
		wait "$QPID" 2>/dev/null || true
	fi
	for vm in "${VMS[@]}"; do
		"$NESTVM" kill "$vm" >/dev/null 2>&1 || true
	done
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now_us() { # -> microseconds since the epoch, in REPLY (no subshell)
	REPLY=${EPOCHREALTIME/[.,]/}
}

# wait_for FILE TEXT: until FILE holds TEXT (the guest's console line).
wait_for() {
	local i
	for ((i = 0; i < TIMEOUT_S * 20; i++)); do
		grep -qF -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.05
	done
	die "no '$2' in $1 after $TIMEOUT_S s"
}

# runstat_ok LOG CMD...: run CMD under runstat, which must say exit:0;
# prints its wall time in ns (an error ends the script: set -e).
runstat_ok() {
	local log=$1 wall status
	shift
	read -r wall _ status < <("$RUNSTAT" --timeout $TIMEOUT_S --log "$log" -- "$@")
	if [[ $status != exit:0 ]]; then
		echo "bench/snapshot.sh: '$*' ended with $status; its output:" >&2
		head -c 4000 "$log" >&2
		exit 1
	fi
	echo "$wall"
}

disk_bytes() { # PATH -> "allocated apparent" bytes
	echo "$(du -s -B1 "$1" | cut -f1) $(du -s -B1 --apparent-size "$1" | cut -f1)"
}

# ---- nestvm ----

nestvm_define() { # NAME MiB CMDLINE
	"$NESTVM" new "$1" --kernel "$ELF" --cmdline "$3" --memory "$2M" >/dev/null ||
		die "cannot define VM $1"
	VMS+=("$1")
}

# nestvm_run NAME RESULTS: boot, wait for the guest, save, measure, restore,
# kill; appends one result line.
nestvm_run() {
	local name=$1 res=$2 dir=$NESTVM_HOME/$1 log=$WORK/nestvm.log
	local save_ns start_ns ms restored sizes lines

	"$NESTVM" start "$name" >"$log" 2>&1 || {
		cat "$log" "$dir/monitor.log" >&2
		die "nestvm start $name failed"
	}
	wait_for "$dir/console.log" "probe: test=idle: up"
	sync
	save_ns=$(runstat_ok "$log" "$NESTVM" save "$name")
	ms=$(sed -n 's/^saved VM .* in \([0-9]*\) ms;.*/\1/p' "$log")
	[[ -n $ms ]] || die "no 'in N ms' in nestvm save's output: $(cat "$log")"
	sizes=$(disk_bytes "$dir/saved")
	lines=$(wc -l <"$dir/monitor.log")
	start_ns=$(runstat_ok "$log" "$NESTVM" start "$name")
	restored=$(tail -n +$((lines + 1)) "$dir/monitor.log" |
		sed -n 's/.*restored from the saved state in \([0-9.]*\) ms.*/\1/p')
	[[ -n $restored ]] || die "no restore line in $dir/monitor.log"
	"$NESTVM" kill "$name" >/dev/null || die "nestvm kill $name failed"
	echo "$ms $((save_ns / 1000)) $((start_ns / 1000)) $restored $sizes" >>"$res"
}

# ---- QEMU, through QMP on its stdin and stdout ----

QMP_EVENTS=
qmp_read() { # one line from QEMU into QMP_LINE; events are kept in QMP_EVENTS
	IFS= read -r -t $TIMEOUT_S -u "$QMP_OUT" QMP_LINE ||
		die "QEMU said nothing for $TIMEOUT_S s, or ended (stderr: $(cat "$WORK/qemu.err"))"
	[[ $QMP_LINE != *'"event"'* ]] || QMP_EVENTS+=$QMP_LINE$'\n'
}

qmp_cmd() { # JSON: send it, wait for its reply, which must not be an error
	printf '%s\n' "$1" >&"$QMP_IN"
	while qmp_read; do
		case $QMP_LINE in
		*'"return"'*) return 0 ;;
		*'"error"'*) die "QMP $1: $QMP_LINE" ;;
		esac
	done
}

qmp_wait_event() { # GLOB: until an event matching it has come; forgets the events
	until [[ $QMP_EVENTS == *$1* ]]; do
		qmp_read
		[[ $QMP_LINE != *'"MIGRATION"'*'"failed"'* ]] || die "QEMU: $QMP_LINE"
	done
	QMP_EVENTS=
}

# qemu_spawn MiB CMDLINE [ARG...]: QEMU as a coprocess, QMP negotiated.
qemu_spawn() {
	local mib=$1 cmdline=$2
	shift 2
	coproc QMP {
		exec "$QEMU" -accel kvm -M microvm -m "${mib}M" -smp 1 \
			-nodefaults -no-user-config -display none -monitor none \
			-serial "file:$WORK/qemu.console" -qmp stdio \
			-kernel "$ELF" -append "$cmdline" "$@" 2>"$WORK/qemu.err"
	}
	QPID=$QMP_PID
	# Copies of its pipes: bash drops QMP[] as soon as the process is reaped.
	[[ -n ${QMP[0]-} ]] || die "QEMU ended at once: $(cat "$WORK/qemu.err")"
	exec {QMP_OUT}<&"${QMP[0]}" {QMP_IN}>&"${QMP[1]}"
	QMP_EVENTS=
	qmp_read # the greeting
	qmp_cmd '{"execute":"qmp_capabilities"}'
	# Migration events, and no bandwidth limit (7.2's default: 128 MiB/s).
	qmp_cmd '{"execute":"migrate-set-capabilities","arguments":{"capabilities":[{"capability":"events","state":true}]}}'
	qmp_cmd '{"execute":"migrate-set-parameters","arguments":{"max-bandwidth":137438953472}}'
}

qemu_end() { # quit, and wait for the process
	qmp_cmd '{"execute":"quit"}'
	wait "$QPID" 2>/dev/null || true
	exec {QMP_OUT}<&- {QMP_IN}>&-
	QPID=
}

# qemu_run MiB CMDLINE RESULTS: boot, wait for the guest, save into a file,
# measure, restore in a new QEMU, quit; appends one result line.
qemu_run() {
	local mib=$1 cmdline=$2 res=$3 file=$WORK/qemu.state
	local t0 t1 t2 sizes

	rm -f "$WORK/qemu.console" "$file"
	qemu_spawn "$mib" "$cmdline"
	wait_for "$WORK/qemu.console" "probe: test=idle: up"
	sync
	now_us && t0=$REPLY
	qmp_cmd '{"execute":"stop"}'
	qmp_cmd "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"exec:cat > $file\"}}"
	qmp_wait_event '"completed"'
	sync "$file"
	now_us && t1=$REPLY
	qemu_end
	now_us && t2=$REPLY
	sizes=$(disk_bytes "$file")
	local save_us=$((t1 - t0)) save_cmd_us=$((t2 - t0))

	now_us && t0=$REPLY
	qemu_spawn "$mib" "$cmdline" -incoming defer
	now_us && t1=$REPLY
	qmp_cmd "{\"execute\":\"migrate-incoming\",\"arguments\":{\"uri\":\"exec:cat $file\"}}"
	qmp_wait_event '"completed"'
	# Saved stopped, it comes back paused (its global state): go on, as virsh restore does.
	qmp_cmd '{"execute":"cont"}'
	qmp_wait_event '"RESUME"'
	now_us && t2=$REPLY
	qmp_cmd '{"execute":"query-status"}'
	[[ $QMP_LINE == *'"running": true'* ]] || die "QEMU after restore: $QMP_LINE"
	qemu_end
	rm -f "$file"
	echo "$(awk -v u=$save_us 'BEGIN { printf "%.0f", u / 1000 }') $save_cmd_us $((t2 - t0))" \
		"$(awk -v u=$((t2 - t1)) 'BEGIN { printf "%.2f", u / 1000 }') $sizes" >>"$res"
}

# disk_run MiB RESULTS: the disk's write speed for that many bytes, synced:
# appends "diskwrite_ns dd_ns".
disk_run() {
	local direct buffered
	sync
	direct=$(runstat_ok "$WORK/disk.log" "$DISKWRITE" "$WORK/disk.img" "$1")
	rm -f "$WORK/disk.img"
	sync
	buffered=$(runstat_ok "$WORK/disk.log" dd if=/dev/zero of="$WORK/disk.img" bs=1M \
		count="$1" conv=fsync status=none)
	rm -f "$WORK/disk.img"
	echo "$direct $buffered" >>"$2"
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
	for fill in untouched written; do
		c=$mib-$fill
		CASES+=("$c")
		cmdline=test=idle
		[[ $fill == untouched ]] || cmdline="test=idle fill=on"
		nestvm_define "bench-$c" "$mib" "$cmdline"
	done
done

BUSY_BEFORE=$(cpu_busy 0.5)
START_S=$(date +%s.%N)
for ((r = 0; r < RUNS; r++)); do
	echo "run $((r + 1))/$RUNS ..." >&2
	for mib in $SIZES; do
		disk_run "$mib" "$WORK/disk-$mib.txt"
		for fill in untouched written; do
			c=$mib-$fill
			cmdline=test=idle
			[[ $fill == untouched ]] || cmdline="test=idle fill=on"
			if ((r % 2 == 0)); then
				nestvm_run "bench-$c" "$WORK/nestvm-$c.txt"
				qemu_run "$mib" "$cmdline" "$WORK/qemu-$c.txt"
			else
				qemu_run "$mib" "$cmdline" "$WORK/qemu-$c.txt"
				nestvm_run "bench-$c" "$WORK/nestvm-$c.txt"
			fi
		done
	done
done
ELAPSED_S=$(awk -v a="$START_S" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }')
BUSY_AFTER=$(cpu_busy 0.5)

# ---- the table ----

# med: the median of the numbers on stdin, one a line.
med() {
	sort -g | awk '{ v[NR] = $1 }
	END { printf "%.6f\n", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
median() { # FILE COLUMN SCALE: the median of a column, divided by SCALE
	cut -d' ' -f"$2" "$1" | awk -v s="$3" '{ print $1 / s }' | med
}
lowest() { # FILE COLUMN SCALE: the smallest value of a column, divided by SCALE
	cut -d' ' -f"$2" "$1" | awk -v s="$3" '{ print $1 / s }' | sort -g | head -n 1
}
rate() { # FILE: the median save throughput, MiB (allocated) per second
	awk '{ print ($1 > 0 ? $5 / 1048576 * 1000 / $1 : 0) }' "$1" | med
}
fmt() { awk -v v="$1" -v d="$2" 'BEGIN { printf "%.*f", d, v }'; }
share() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", 100 * a / b }'; } # percent
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
kvm_kind=unknown
for m in kvm_pvm kvm_intel kvm_amd; do
	if [[ -d /sys/module/$m ]]; then
		kvm_kind=$m
		break
	fi
done

echo "nestvm save/restore benchmark: probe guest test=idle, 1 vCPU, median of $RUNS runs," \
	"nestvm and QEMU interleaved"
echo "date:    $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "machine: $cpu_model, $(nproc) CPUs," \
	"$(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)," \
	"Linux $(uname -r), KVM via $kvm_kind"
echo "disk:    $(df -T "$WORK" | awk 'NR == 2 { print $1 ", " $2 }') (the store, QEMU's files and the disk test's, in $BUILD/bench)"
echo "load:    CPUs ${BUSY_BEFORE}% busy just before the runs, ${BUSY_AFTER}% just after$(awk \
	-v a="$BUSY_BEFORE" -v b="$BUSY_AFTER" \
	'BEGIN { if (a > 10 || b > 10) print " (other work is running: figures inflated)" }')"
echo "nestvm:  $NESTVM (commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'))"
echo "qemu:    $("$QEMU" --version | head -n 1), -accel kvm -M microvm;" \
	"save: stop + migrate exec:cat + fsync; restore: -incoming defer + migrate-incoming + cont"

row() { # LABEL NESTVM QEMU UNIT
	printf '  %-28s %10s %-4s %10s %-4s %7s\n' "$1" "$2" "$4" "$3" "$4" "$(ratio "$2" "$3")"
}

declare -A RESTORE_MS SAVE_SHARE
for mib in $SIZES; do
	disk_mibs=$(awk -v m="$mib" -v s="$(median "$WORK/disk-$mib.txt" 1 1e9)" \
		'BEGIN { printf "%.0f", m / s }')
	dd_mibs=$(awk -v m="$mib" -v s="$(median "$WORK/disk-$mib.txt" 2 1e9)" \
		'BEGIN { printf "%.0f", m / s }')
	for fill in untouched written; do
		c=$mib-$fill n=$WORK/nestvm-$c.txt q=$WORK/qemu-$c.txt
		echo
		printf '%-30s %15s %15s %7s\n' "$mib MiB, memory $fill" nestvm QEMU nestvm/QEMU
		ns=$(median "$n" 1 1) qs=$(median "$q" 1 1)
		row "save" "$(fmt "$ns" 0)" "$(fmt "$qs" 0)" ms
		row "save, whole command" "$(fmt "$(median "$n" 2 1000)" 0)" \
			"$(fmt "$(median "$q" 2 1000)" 0)" ms
		nr=$(median "$n" 3 1000)
		row "restore to running" "$(fmt "$nr" 1)" "$(fmt "$(median "$q" 3 1000)" 1)" ms
		row "  the fastest run" "$(fmt "$(lowest "$n" 3 1000)" 1)" \
			"$(fmt "$(lowest "$q" 3 1000)" 1)" ms
		row "restore inside the monitor" "$(fmt "$(median "$n" 4 1)" 2)" \
			"$(fmt "$(median "$q" 4 1)" 2)" ms
		na=$(median "$n" 5 1048576) qa=$(median "$q" 5 1048576)
		row "on disk, allocated" "$(fmt "$na" 1)" "$(fmt "$qa" 1)" MiB
		row "on disk, apparent size" "$(fmt "$(median "$n" 6 1048576)" 1)" \
			"$(fmt "$(median "$q" 6 1048576)" 1)" MiB
		RESTORE_MS[$c]=$nr
		[[ $fill == written ]] || continue
		nt=$(fmt "$(rate "$n")" 0) qt=$(fmt "$(rate "$q")" 0)
		row "save throughput (allocated)" "$nt" "$qt" MiB/s
		printf '  %-28s %10s MiB/s: nestvm at %s%%, QEMU at %s%%\n' \
			"disk (bench/diskwrite)" "$disk_mibs" "$(share "$nt" "$disk_mibs")" \
			"$(share "$qt" "$disk_mibs")"
		printf '  %-28s %10s MiB/s: nestvm at %s%%, QEMU at %s%%\n' \
			"disk, dd conv=fsync" "$dd_mibs" "$(share "$nt" "$dd_mibs")" \
			"$(share "$qt" "$dd_mibs")"
		SAVE_SHARE[$c]=$(share "$nt" "$disk_mibs")
	done
done
echo

missed=0
for c in "${CASES[@]}"; do
	if [[ $c == $TARGET_RESTORE_MIB-* ]]; then
		if awk -v v="${RESTORE_MS[$c]}" -v t=$TARGET_RESTORE_MS 'BEGIN { exit !(v <= t) }'; then
			v=met
		else
			v=MISSED
			missed=1
		fi
		echo "target, $c: restore to running <= $TARGET_RESTORE_MS ms $v" \
			"($(fmt "${RESTORE_MS[$c]}" 1) ms)"
	fi
	if [[ $c == *-written ]]; then
		if ((SAVE_SHARE[$c] >= TARGET_SAVE_SHARE)); then
			v=met
		else
			v=MISSED
			missed=1
		fi
		echo "target, $c: save at the disk's write speed (>= $TARGET_SAVE_SHARE% of diskwrite's) $v" \
			"(${SAVE_SHARE[$c]}%)"
	fi
done
echo "the runs took $ELAPSED_S s"

if [[ ${BENCH_STRICT:-0} == 1 && $missed == 1 ]]; then
	exit 1
fi
exit 0
