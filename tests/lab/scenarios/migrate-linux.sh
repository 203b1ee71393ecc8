# SPDX-License-Identifier: MIT
# lab-timeout: 900
# lab-budget: 940
#
# migrate-linux[:SPEC] — live migration of a Linux guest hypervisor while
# its own L2 computes, between two hosts in one lab (migrate-lib.sh: two
# network namespaces joined by a veth pair, a nestvm store each, TCP
# between them). A managed VM (`nestvm new --nested on`, 2 vCPUs, 512 MiB)
# boots the Debian kernel on host A; its part (migrate-linux.l1.sh, which
# is snapshot-linux's) loads kvm-amd and runs one L2 probe, test=memgen
# (every page of its 16 MiB rewritten each pass, a deterministic result),
# with the L1's nestvm, the L2's console on the L1's: the lab reads the
# L2's progress ("probe: memgen: pass P/N", every tenth) in the L1 VM's
# console.log. Once the L2 has made progress, the VM is migrated to the
# other host and back, MOVES times, and more (at most TRIES in all) while
# none caught the L2 running and the L2 has passes enough left: a vCPU of
# the L1 saved in guest mode at the switch-over (a Linux L1 leaves guest
# mode for each of its own interrupts: 4 migrations in 12 caught it). One
# that did not moves the L2's state in the L1's memory, which the test
# checks all the same; how many did is said and counted (guest_mode), not
# required. Each migration is checked as in migrate-nested (the VM off at
# the source, running at the destination, monitor.logs). Then
# the L2 must run to the end on the last host with no tenth lost or
# repeated across the console.logs of all the monitors, and PASS with the
# result an uninterrupted run prints (memgen-expect); the L1 must power
# off and the VM end with status 0 there.
#
# The L2's slow start (90 to more than 300 s before its first tenth, README
# "Snapshots") comes before any migration; an L1 that crashes in it (the
# lab's open L1 triple fault) is booted once more, as in snapshot-linux.
#
# A migration of the L1 takes 15 to 25 s in the lab (150 MiB or so at
# about 10 MiB/s: HMAC-SHA256 and copies under TCG; the vCPUs throttled
# to converge), during which the L2 slows down with its L1. Past its slow
# start a tenth of 80000 passes took about 3 s: 200000 passes leave room
# for several migrations.
#
# SPEC: words joined by '.': nN passes (200000), mN migrations at least
# (2: A -> B -> A), tN TRIES (6), dN the migrations' --downtime in ms (the
# default, 100, unless given). Metrics: net, l1_boot_s, first_s (L2 start
# to its first tenth), step_s (a tenth), migrate_ms (the slowest migrate
# command), downtime_ms (the longest), mib (the most sent), passes (the
# most passes over memory), guest_mode (caught / migrations), l1_crashes,
# total_s.

. /lab/lib.sh

lab_need_nestvm
[ -r /l1/initrd-nested.cpio ] || lab_skip "no /l1/initrd-nested.cpio in the lab"
grep -q memgen /lab/guest/probe.elf || lab_skip "the probe has no test=memgen"
[ -x /lab/bin/memgen-expect ] || lab_skip "no /lab/bin/memgen-expect (tests/lab/lab.sh builds it)"

passes=200000 moves=2 tries=6 downtime='' l1_crashes=0
FIRST_MAX_S=420 # L2 start to its first tenth
for w in $(echo "${1:-}" | tr '.' ' '); do
	case $w in
	n[0-9]*) passes=${w#n} ;;
	m[0-9]*) moves=${w#m} ;;
	t[0-9]*) tries=${w#t} ;;
	d[0-9]*) downtime=${w#d} ;;
	*) lab_fail "unknown word '$w' in '$1' (nN, mN, tN, dN)"; lab_finish ;;
	esac
done
want=$(/lab/bin/memgen-expect "$passes" 1 | sed -n 's/^result=\(0x[0-9a-f]*\) .*/\1/p')
[ -n "$want" ] || { lab_fail "memgen-expect $passes 1 said nothing"; lab_finish; }

NV=/lab/bin/nestvm
VM=l1m
export NESTVM_HOME=/tmp/nestvm-migA
. /lab/scenarios/snapshot-lib.sh
. /lab/scenarios/migrate-lib.sh
MIG_MIGRATE_ARGS="--timeout 600${downtime:+ --downtime $downtime}"

fin() {
	mig_net_down
	lab_finish
}
# "STAT=N" for the lab KVM's counters that moved from PREFIX $1 to PREFIX $2.
kvm_deltas() {
	for _st in exits pf_fixed irq_window_exits irq_exits nested_run io_exits insn_emulation; do
		eval "_d=\$((\${$2_$_st:-0} - \${$1_$_st:-0}))"
		printf ' %s=%s' $_st "$_d"
	done
}
show_space() {
	lab_info "$1: lab memory free $(awk '/^MemAvailable/ { print int($2 / 1024) }' /proc/meminfo) MiB," \
		"/tmp used $(df -m /tmp | awk 'NR == 2 { print $3 }') MiB"
}

mig_net_up
mig_here A
cmdline="console=ttyS0 quiet panic=-1 nestlab.l1=migrate-linux nestlab.l2=$passes-1-16"
mig_at A new $VM --kernel /lab/kernel/vmlinux --initrd /l1/initrd-nested.cpio --cpus 2 --memory 512M \
	--nested on --cmdline "$cmdline" >/dev/null || { lab_fail "nestvm new failed"; fin; }
lab_info "a managed Linux L1 (--nested on, 2 vCPUs, 512 MiB) on host A running an L2 probe:" \
	"test=memgen passes=$passes, 1 vCPU, 16 MiB; an uninterrupted run's result is $want"
# l1_boot: starts the L1 on A and waits for its L2's first tenth. 0 when it
# came, 2 when the L1 crashed before (snap_show'n), 1 after lab_fail.
l1_boot() {
	t_start=$(lab_now_cs)
	mig_at A start $VM >/dev/null || { lab_fail "nestvm start failed"; snap_show; return 1; }
	until grep -q L1-L2-BEGIN $con 2>/dev/null; do
		[ "$(snap_state)" = running ] || { snap_show; return 2; }
		[ "$(lab_now_cs)" -lt $((t_start + 24000)) ] ||
			{ lab_fail "the L1 did not start its L2 within 240 s"; snap_show; return 1; }
		sleep 1
	done
	t_l2=$(lab_now_cs)
	l1_boot_cs=$((t_l2 - t_start))
	tr -d '\r' <$con | grep -E '^L1' | sed 's/^/  console| /'
	SNAP_STREAM=1 snap_shown=0
	lab_kvm_stats_read kvm0
	while ! snap_wait_gt 0 20; do
		[ "$(snap_state)" = running ] || { snap_show; return 2; }
		[ $(($(lab_now_cs) - t_l2)) -lt $((FIRST_MAX_S * 100)) ] ||
			{ lab_fail "no progress line from the L2 within $FIRST_MAX_S s"; snap_show; return 1; }
		lab_kvm_stats_read kvm1
		lab_info "the lab KVM in 20 s:$(kvm_deltas kvm0 kvm1)"
		lab_kvm_stats_read kvm0
	done
	SNAP_STREAM=
	return 0
}

t_all=$(lab_now_cs)
l1_boot
rc=$?
if [ $rc -eq 2 ]; then
	lab_info "the L1 VM ended before its L2's first tenth, before any migration" \
		"($(mig_at A show $VM | sed -n 's/^last exit: *//p')); booting it once more"
	l1_crashes=1
	l1_boot
	rc=$?
fi
[ $rc -eq 2 ] && lab_fail "the L1 VM ended before its L2's first tenth, twice"
[ $rc -eq 0 ] || fin
t1=$(lab_now_cs)
first_cs=$((t1 - t_l2))
p1=$(snap_last $con)
snap_wait_gt "$p1" 240 || { lab_fail "no second progress line from the L2"; snap_show; fin; }
step=$(($(snap_last $con) - p1))
step_cs=$(($(lab_now_cs) - t1))
wait_s=$((step_cs * 4 / 100 + 60))
lab_info "the L1 ran its L2 after $(lab_secs $l1_boot_cs) s, its first tenth after $(lab_secs $first_cs) s;" \
	"a tenth ($step passes) takes $(lab_secs $step_cs) s"
show_space "before the migrations"

# The migrations: $moves, and more while none caught the L2 running.
gm=0 n=0 ms_max=0 down_max=0 mib_max=0 passes_max=0
while { [ $n -lt "$moves" ] || [ $gm -eq 0 ]; } && [ $n -lt "$tries" ]; do
	# The L2 has made progress on this host (a tenth since the VM came,
	# below): a little more, then the migration, at no fixed point.
	p=$(snap_last $con)
	if [ $((passes - p)) -lt $((3 * step)) ]; then
		[ $n -ge "$moves" ] && break
		lab_fail "migration $((n + 1)): the L2 is at pass $p of $passes already (raise nN)"
		fin
	fi
	n=$((n + 1))
	mig_pause
	from=$here
	mig_move "migration $n" || { show_space "migration $n"; fin; }
	[ $mig_ms -gt $ms_max ] && ms_max=$mig_ms
	[ "${mig_down_ms:-0}" -gt $down_max ] && down_max=$mig_down_ms
	[ "${mig_mib:-0}" -gt $mib_max ] && mib_max=$mig_mib
	[ "${mig_passes:-0}" -gt $passes_max ] && passes_max=$mig_passes
	how=
	if [ $mig_gm -eq 1 ]; then
		gm=$((gm + 1))
		how=", in guest mode"
	fi
	snap_wait_gt 0 "$wait_s" || { lab_fail "migration $n: no L2 progress on $here after it"; snap_show; fin; }
	lab_info "migration $n: $from -> $here after pass $mig_at_progress$how: ${mig_ms} ms" \
		"(${mig_mib:-?} MiB in ${mig_passes:-?} passes, stopped for ${mig_down_ms:-?} ms);" \
		"on at pass $(snap_first $con) on $here"
done
[ $gm -ge 1 ] || lab_info "none of the $n migrations caught the L2 running (in guest mode)"
show_space "after the migrations"

# To the end on the last host: the L2's result, the L1's poweroff.
limit=$((step_cs * 12 / 100 + 120))
lab_info "waiting on $here for the L2 to finish and the L1 to power off (at most $limit s)"
end=$(($(lab_now_cs) + limit * 100))
while [ "$(snap_state)" = running ] && [ "$(lab_now_cs)" -lt $end ]; do
	sleep 1
done
[ "$(snap_state)" = off ] || { lab_fail "the VM is '$(snap_state)' on $here after $limit s, want off"; snap_show; fin; }
total_s=$(lab_secs $(($(lab_now_cs) - t_all)))
cat $con >>"$all"
tr -d '\r' <$con | grep -E 'test=memgen|memgen: the|^L1-' | sed 's/^/  console| /'
snap_check_sequence "$all" "progress across the migrations" ||
	lab_fail "the L2's progress across the migrations is not each tenth once, in order"
[ "$(snap_last "$all")" = "$passes" ] || lab_fail "the last pass seen is $(snap_last "$all"), want $passes"
result=$(tr -d '\r' <$con | sed -n "s/.*test=memgen: result=\(0x[0-9a-f]*\) passes=$passes.*/\1/p")
[ -n "$result" ] || lab_fail "no 'test=memgen: result=0x... passes=$passes' line on $here"
[ "$result" = "$want" ] || lab_fail "memgen result $result, an uninterrupted run's is $want"
tr -d '\r' <$con | grep -q "test=memgen: PASS" || lab_fail "the L2 did not PASS"
tr -d '\r' <$con | grep -q '^L1-L2 rc=0' || lab_fail "the L1's nestvm did not end with status 0"
tr -d '\r' <$con | grep -q '^L1-END rc=0' || lab_fail "the L1's part did not end well"
mig_at $here show $VM --json | grep -q '"status": *0' ||
	lab_fail "the VM did not end with exit status 0 on $here: $(mig_at $here show $VM | grep -i 'last exit')"
lab_info "$n migrations ($gm in guest mode) of the L1 over $MIG_NET with its L2 running passed;" \
	"result $result as expected, on $here; $total_s s"
lab_metrics "net=$MIG_NET" "l1_boot_s=$(lab_secs $l1_boot_cs)" "first_s=$(lab_secs $first_cs)" \
	"step_s=$(lab_secs $step_cs)" "migrate_ms=$ms_max" "downtime_ms=$down_max" "mib=$mib_max" \
	"passes=$passes_max" "guest_mode=$gm/$n" "l1_crashes=$l1_crashes" "total_s=$total_s"
mig_at A remove $VM >/dev/null || lab_fail "nestvm remove on A failed"
mig_at B remove $VM >/dev/null || lab_fail "nestvm remove on B failed"
fin
