# SPDX-License-Identifier: MIT
# lab-timeout: 420
#
# linux-boot[:bzimage|:pvh][-verbose][-early] — nestvm boots the Debian kernel
# as an L1 guest with 2 vCPUs and 256 MiB, from the bzImage (Linux boot
# protocol) or from the extracted vmlinux (PVH entry); without an argument,
# both in turn. To see how far a failing boot gets: "-verbose" drops "quiet"
# from the L1's command line and runs nestvm -v; "-early" drops "quiet" and
# adds earlyprintk on the serial port (the L1 is slower then: every console
# byte is an exit). The
# /init (tests/lab/l1/init + linux-boot.l1.sh) prints what it sees and powers
# off, which must end nestvm with exit status 0.
#
# Metrics: guest_init_s (L1 uptime when /init started), wall_s (the nestvm
# run), wall_to_end_s (start to the L1's end marker), kvm.* (the lab KVM's
# exit counters over the run).

. /lab/lib.sh

NESTVM=/lab/bin/nestvm
INITRD=/l1/initrd.cpio
CPUS=2
MEMORY=256M
MEM_MIN_KB=$((200 * 1024)) # 256 MiB less the kernel's own reservations
MEM_MAX_KB=$((256 * 1024))
RUN_LIMIT_CS=$((180 * 100)) # one nestvm run
END_GRACE_CS=$((10 * 100))  # from the guest's end marker to nestvm's exit
# Each poll forks a few busybox processes, CPU time the L1 on the lab's two
# vCPUs then lacks: poll slowly while the guest boots, fast once it ends
# (nestvm's exit time is taken at the first poll after it).
POLL_BOOT=0.5
POLL_END=0.1

# Meaning of nestvm's exit status (src/core/exit_status.h).
exit_status_name() {
	case $1 in
	0) echo "NESTVM_EXIT_POWEROFF" ;;
	1) echo "NESTVM_EXIT_ERROR (monitor error)" ;;
	2) echo "NESTVM_EXIT_USAGE (bad command line)" ;;
	3) echo "NESTVM_EXIT_REBOOT (guest reset; the L1 panics with panic=-1)" ;;
	4) echo "NESTVM_EXIT_CRASH (triple fault, KVM internal error, bad exit)" ;;
	127) echo "not executable / not found" ;;
	*) [ "$1" -gt 128 ] && echo "killed by signal $(($1 - 128))" || echo "unknown" ;;
	esac
}

# Value of KEY in a line of KEY=VALUE words.
word_value() {
	echo " $2" | sed -n "s/.* $1=\([^ ]*\).*/\1/p"
}

# Prints lines $1.. of file $2 (complete lines only unless $3 is "all"),
# marked as the L1's, and echoes the number of complete lines.
show_output() {
	_n=$(wc -l <"$2")
	if [ "$3" = all ]; then
		sed -n "$(($1 + 1)),\$p" "$2" | tr -d '\r' | sed 's/^/  L1| /' >&2
	elif [ "$_n" -gt "$1" ]; then
		sed -n "$(($1 + 1)),${_n}p" "$2" | tr -d '\r' | sed 's/^/  L1| /' >&2
	fi
	echo "$_n"
}

# One nestvm run of variant $1; sets wall_cs_$1.
boot_once() {
	variant=$1
	opts=${variant#${variant%%-*}}
	quiet=" quiet"
	early=
	vflag=
	case $opts in *-verbose*) quiet= vflag=-v ;; esac
	case $opts in *-early*) quiet= early=" earlyprintk=serial,ttyS0,115200" ;; esac
	case ${variant%%-*} in
	bzimage) kernel=/lab/kernel/bzImage ;;
	pvh) kernel=/lab/kernel/vmlinux ;;
	*)
		lab_fail "unknown variant '$variant' (bzimage or pvh, then -verbose, -early)"
		return
		;;
	esac
	out=/tmp/linux-boot-$variant.out
	cmdline="console=ttyS0$quiet$early panic=-1 nestlab.l1=linux-boot"
	lab_info "$variant: nestvm run${vflag:+ $vflag} --kernel $kernel --initrd $INITRD --cpus $CPUS" \
		"--memory $MEMORY --cmdline \"$cmdline\""

	lab_kvm_stats_read before
	lab_kvm_stats_read peak
	t0=$(lab_now_cs)
	"$NESTVM" run $vflag --kernel "$kernel" --initrd "$INITRD" --cpus $CPUS --memory $MEMORY \
		--cmdline "$cmdline" </dev/null >"$out" 2>&1 &
	pid=$!

	shown=0
	t_init=
	t_end=
	why=
	while lab_alive $pid; do
		lab_kvm_stats_max peak
		shown=$(show_output "$shown" "$out")
		now=$(lab_now_cs)
		[ -z "$t_init" ] && grep -q 'L1-INIT' "$out" && t_init=$now
		[ -z "$t_end" ] && grep -q 'L1-END' "$out" && t_end=$now
		if [ -n "$t_end" ] && [ $((now - t_end)) -gt $END_GRACE_CS ]; then
			why="nestvm still running $(lab_secs $END_GRACE_CS) s after the guest's L1-END"
			break
		fi
		if [ $((now - t0)) -gt $RUN_LIMIT_CS ]; then
			why="nestvm run exceeded $(lab_secs $RUN_LIMIT_CS) s"
			[ -z "$t_init" ] && why="$why; the L1 never reached /init"
			break
		fi
		if [ -n "$t_end" ]; then sleep $POLL_END; else sleep $POLL_BOOT; fi
	done
	if [ -n "$why" ]; then
		lab_fail "$variant: $why; killing it"
		kill -TERM $pid 2>/dev/null
		sleep 2
		kill -KILL $pid 2>/dev/null
	fi
	wait $pid
	rc=$?
	t1=$(lab_now_cs)
	show_output "$shown" "$out" all >/dev/null
	[ -z "$t_end" ] && grep -q 'L1-END' "$out" && t_end=$t1

	info=$(tr -d '\r' <"$out" | grep -o 'L1-INFO .*' | head -n 1)
	l1_end=$(tr -d '\r' <"$out" | grep -o 'L1-END .*' | head -n 1)
	lab_info "$variant: nestvm exit status $rc ($(exit_status_name $rc)), wall $(lab_secs $((t1 - t0))) s"

	[ $rc -eq 0 ] || lab_fail "$variant: nestvm exit status $rc ($(exit_status_name $rc)), want 0 (guest poweroff)"
	if [ -z "$info" ]; then
		lab_fail "$variant: the L1 never printed L1-INFO"
	else
		cpus=$(word_value cpus "$info")
		mem=$(word_value memtotal_kb "$info")
		[ "$cpus" = "$CPUS" ] || lab_fail "$variant: the L1 sees cpus=$cpus, want $CPUS"
		if [ -z "$mem" ] || [ "$mem" -lt $MEM_MIN_KB ] || [ "$mem" -gt $MEM_MAX_KB ]; then
			lab_fail "$variant: the L1 has MemTotal ${mem:-?} kB, want $MEM_MIN_KB..$MEM_MAX_KB for $MEMORY"
		fi
		lab_metrics "$variant.guest_init_s=$(word_value uptime "$info")" \
			"$variant.l1_cpus=$cpus" "$variant.l1_memtotal_kb=$mem" \
			"$variant.l1_svm=$(word_value svm "$info")"
	fi
	[ -n "$l1_end" ] || lab_fail "$variant: the L1 never printed L1-END"
	case "$l1_end" in *" rc=0 "*) ;; "") ;; *) lab_fail "$variant: L1 part failed: $l1_end" ;; esac

	# Only successful runs take part in the comparison.
	case $variant in *-*) ;; *) [ $rc -eq 0 ] && [ -n "$info" ] && eval "wall_cs_$variant=$((t1 - t0))" ;; esac
	m="$variant.nestvm_rc=$rc $variant.wall_s=$(lab_secs $((t1 - t0)))"
	[ -n "$t_end" ] && m="$m $variant.wall_to_end_s=$(lab_secs $((t_end - t0)))"
	[ -n "$l1_end" ] && m="$m $variant.guest_end_s=$(word_value uptime "$l1_end")"
	lab_metrics $m
	lab_kvm_stats_report before peak "$variant"
}

[ -x "$NESTVM" ] || lab_skip "no $NESTVM in the lab (run make static before tests/lab/lab.sh)"

variants=${1:-"bzimage pvh"}
for v in $variants; do
	boot_once "$v"
done
if [ -n "${wall_cs_bzimage:-}" ] && [ -n "${wall_cs_pvh:-}" ]; then
	if [ "$wall_cs_pvh" -lt "$wall_cs_bzimage" ]; then
		lab_info "pvh faster than bzimage by $(lab_secs $((wall_cs_bzimage - wall_cs_pvh))) s of wall time"
		lab_metric faster pvh
	else
		lab_info "bzimage faster than pvh by $(lab_secs $((wall_cs_pvh - wall_cs_bzimage))) s of wall time"
		lab_metric faster bzimage
	fi
fi
lab_finish
