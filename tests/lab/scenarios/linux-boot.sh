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

INITRD=/l1/initrd.cpio
CPUS=2
MEMORY=256M
MEM_MIN_KB=$((200 * 1024)) # 256 MiB less the kernel's own reservations
MEM_MAX_KB=$((256 * 1024))
RUN_LIMIT_S=180 # one nestvm run

# One nestvm run of variant $1; sets wall_cs_$1.
boot_once() {
	variant=$1
	opts=${variant#"${variant%%-*}"}
	quiet=" quiet"
	early=
	vflag=
	case $opts in *-verbose*) quiet='' vflag=-v ;; esac
	case $opts in *-early*) quiet='' early=" earlyprintk=serial,ttyS0,115200" ;; esac
	case ${variant%%-*} in
	bzimage) kernel=/lab/kernel/bzImage ;;
	pvh) kernel=/lab/kernel/vmlinux ;;
	*)
		lab_fail "unknown variant '$variant' (bzimage or pvh, then -verbose, -early)"
		return
		;;
	esac
	cmdline="console=ttyS0$quiet$early panic=-1 nestlab.l1=linux-boot"
	lab_info "$variant: nestvm run${vflag:+ $vflag} --kernel $kernel --initrd $INITRD --cpus $CPUS" \
		"--memory $MEMORY --cmdline \"$cmdline\""

	lab_l1_run "$variant" $RUN_LIMIT_S $vflag --kernel "$kernel" --initrd "$INITRD" \
		--cpus $CPUS --memory $MEMORY --cmdline "$cmdline"
	rc=$l1_rc
	info=$l1_info
	l1_end=$l1_endline

	[ $rc -eq 0 ] || lab_fail "$variant: nestvm exit status $rc ($(lab_exit_status_name $rc)), want 0 (guest poweroff)"
	if [ -z "$info" ]; then
		lab_fail "$variant: the L1 never printed L1-INFO"
	else
		cpus=$(lab_word_value cpus "$info")
		mem=$(lab_word_value memtotal_kb "$info")
		[ "$cpus" = "$CPUS" ] || lab_fail "$variant: the L1 sees cpus=$cpus, want $CPUS"
		# nestvm's default is --nested off: AMD-V must be hidden from the L1.
		[ "$(lab_word_value svm "$info")" = no ] ||
			lab_fail "$variant: the L1 sees svm in /proc/cpuinfo with nesting off"
		if [ -z "$mem" ] || [ "$mem" -lt $MEM_MIN_KB ] || [ "$mem" -gt $MEM_MAX_KB ]; then
			lab_fail "$variant: the L1 has MemTotal ${mem:-?} kB, want $MEM_MIN_KB..$MEM_MAX_KB for $MEMORY"
		fi
		lab_metrics "$variant.guest_init_s=$(lab_word_value uptime "$info")" \
			"$variant.l1_cpus=$cpus" "$variant.l1_memtotal_kb=$mem" \
			"$variant.l1_svm=$(lab_word_value svm "$info")"
	fi
	[ -n "$l1_end" ] || lab_fail "$variant: the L1 never printed L1-END"
	case "$l1_end" in *" rc=0 "*) ;; "") ;; *) lab_fail "$variant: L1 part failed: $l1_end" ;; esac

	# Only successful runs take part in the comparison.
	case $variant in *-*) ;; *) [ $rc -eq 0 ] && [ -n "$info" ] && eval "wall_cs_$variant=$l1_wall_cs" ;; esac
	m="$variant.nestvm_rc=$rc $variant.wall_s=$(lab_secs $l1_wall_cs)"
	[ -n "$l1_end_cs" ] && m="$m $variant.wall_to_end_s=$(lab_secs $l1_end_cs)"
	[ -n "$l1_end" ] && m="$m $variant.guest_end_s=$(lab_word_value uptime "$l1_end")"
	lab_metrics $m
	lab_kvm_stats_report before peak "$variant"
}

lab_need_nestvm

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
