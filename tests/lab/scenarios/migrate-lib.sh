# SPDX-License-Identifier: MIT
#
# migrate-lib.sh — what the migrate-* scenarios share (not a scenario): two
# hosts, A and B, in one lab, each a network namespace of its own with its
# own nestvm store (NESTVM_HOME), joined by a veth pair (A 10.77.0.1, B
# 10.77.0.2); a managed VM live-migrated between them over TCP with `nestvm
# receive` on one side and `nestvm migrate` on the other, each run inside
# its host's namespace, so that the monitors and the stream live there too.
# Without the veth module or namespaces, both hosts share the lab's loopback
# (said on the console and in the metric net=loopback).
#
# Sourced after /lab/lib.sh and snapshot-lib.sh (whose progress helpers read
# $con and $mon: mig_move points them at the VM's current host) with NV and
# VM set. Sets here (the host the VM is on: A or B), con, mon and all (the
# console.logs of every monitor that ran the VM, end to end).

case ${0##*/} in
migrate-lib.sh) echo "migrate-lib.sh is sourced by the migrate-* scenarios, not run"; exit 2 ;;
esac

MIG_HOME_A=/tmp/nestvm-migA
MIG_HOME_B=/tmp/nestvm-migB
MIG_SECRET=/tmp/nestvm-mig.secret
MIG_IP_A=10.77.0.1
MIG_IP_B=10.77.0.2
mig_pid_A='' mig_pid_B='' mig_port=47000 MIG_NET=loopback
here=A

# The other host.
mig_other() {
	[ "$1" = A ] && echo B || echo A
}

# mig_at HOST ARGS...: nestvm ARGS with HOST's store, in HOST's namespace.
mig_at() {
	_h=$1
	shift
	eval "_home=\$MIG_HOME_$_h _pid=\$mig_pid_$_h"
	if [ -n "$_pid" ]; then
		NESTVM_HOME=$_home nsenter -t "$_pid" -n "$NV" "$@"
	else
		NESTVM_HOME=$_home "$NV" "$@"
	fi
}

# Points con, mon (snapshot-lib.sh's helpers read them) and NESTVM_HOME at
# host $1 and makes it $here.
mig_here() {
	here=$1
	eval "NESTVM_HOME=\$MIG_HOME_$1"
	export NESTVM_HOME
	con=$NESTVM_HOME/$VM/console.log
	mon=$NESTVM_HOME/$VM/monitor.log
}

# The VM's state on host $1 ("off", "running", ...), empty if it has none.
mig_state_at() {
	mig_at "$1" list 2>/dev/null | awk -v n="$VM" '$1 == n { print $2 }'
}

# Lines in file $1 (0 if it does not exist).
mig_lines() {
	if [ -r "$1" ]; then wc -l <"$1"; else echo 0; fi
}

# mig_ns_start HOST: a process holding a new network namespace for HOST.
mig_ns_start() {
	unshare -n sleep 100000 </dev/null >/dev/null 2>&1 &
	eval "mig_pid_$1=$!"
}

# Brings up the two hosts: their stores, the secret, and (if the lab can)
# their namespaces and the veth pair. Sets MIG_NET (netns or loopback),
# MIG_IP_A and MIG_IP_B.
mig_net_up() {
	rm -rf $MIG_HOME_A $MIG_HOME_B
	mkdir -p $MIG_HOME_A $MIG_HOME_B
	head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >$MIG_SECRET
	chmod 600 $MIG_SECRET
	ip link del mig-a 2>/dev/null
	if ip link add mig-a type veth 2>/dev/null ||
		{ insmod /lab/modules/veth.ko 2>/dev/null && ip link add mig-a type veth 2>/dev/null; }; then
		# busybox ip takes no peer name: the kernel names it vethN.
		_peer=$(ip -o link show | sed -n 's/^[0-9]*: *\([^@:]*\)@mig-a.*/\1/p')
		mig_ns_start A
		mig_ns_start B
		sleep 0.2
		if [ -n "$_peer" ] && ip link set mig-a netns "$mig_pid_A" &&
			ip link set "$_peer" netns "$mig_pid_B" &&
			nsenter -t "$mig_pid_B" -n ip link set "$_peer" name mig-b &&
			nsenter -t "$mig_pid_A" -n sh -c "ip link set lo up && ip addr add $MIG_IP_A/24 dev mig-a &&
				ip link set mig-a up" &&
			nsenter -t "$mig_pid_B" -n sh -c "ip link set lo up && ip addr add $MIG_IP_B/24 dev mig-b &&
				ip link set mig-b up" &&
			nsenter -t "$mig_pid_A" -n ping -c 1 -W 5 $MIG_IP_B >/dev/null; then
			MIG_NET=netns
			lab_info "hosts A and B: two network namespaces, a veth pair, A $MIG_IP_A, B $MIG_IP_B;" \
				"stores $MIG_HOME_A and $MIG_HOME_B"
			return 0
		fi
		lab_info "the network namespaces did not come up: $(ip -o link show 2>&1 | tr '\n' ' ')"
		kill -KILL "$mig_pid_A" "$mig_pid_B" 2>/dev/null
		ip link del mig-a 2>/dev/null
	fi
	mig_pid_A='' mig_pid_B=''
	MIG_NET=loopback MIG_IP_A=127.0.0.1 MIG_IP_B=127.0.0.1
	ip link set lo up 2>/dev/null
	lab_info "hosts A and B: no veth pair or network namespace in this lab; TCP over the lab's" \
		"loopback, stores $MIG_HOME_A and $MIG_HOME_B"
}

# Ends what mig_net_up and the scenario started: the VM on both hosts, the
# namespaces (their veth pair goes with them).
mig_net_down() {
	mig_at A kill "$VM" >/dev/null 2>&1
	mig_at B kill "$VM" >/dev/null 2>&1
	[ -n "$mig_pid_A" ] && kill -KILL "$mig_pid_A" "$mig_pid_B" 2>/dev/null
	mig_pid_A='' mig_pid_B=''
}

# mig_pause: sleeps 0.1 to 0.6 s, so that a migration starts at no fixed point.
mig_pause() {
	_d=$(($(lab_now_cs) % 6 + 1))
	sleep "0.$_d"
}

# mig_move LABEL: migrates the VM from $here to the other host: `nestvm
# receive` there in the background, `nestvm migrate` here, and the checks:
# both succeed, the VM is off here and runs there, the source's monitor.log
# says how it went, the destination's that it restored what the source
# saved in guest mode. Appends the source's console.log to $all, then
# mig_here's the destination. Sets mig_gm (1: a vCPU was saved in guest
# mode, running an L2), mig_ms (the migrate command's wall time), mig_down_ms,
# mig_mib, mig_passes (from the source's monitor.log), mig_at_progress (the
# last progress before the switch). MIG_MIGRATE_ARGS: more arguments for
# nestvm migrate (--downtime, --timeout). Returns 1 after lab_fail.
mig_move() {
	_from=$here
	_to=$(mig_other "$here")
	eval "_ip=\$MIG_IP_$_to"
	mig_port=$((mig_port + 1))
	_addr=tcp:$_ip:$mig_port
	eval "_tomon=\$MIG_HOME_$_to/$VM/monitor.log"
	_m0=$(mig_lines "$mon")
	_d0=$(mig_lines "$_tomon")
	: >/tmp/mig-recv.out
	mig_at "$_to" receive "$VM" --listen "$_addr" --secret-file $MIG_SECRET --wait 120 \
		</dev/null >/tmp/mig-recv.out 2>&1 &
	_rpid=$!
	_i=0
	until grep -q "waiting for VM" /tmp/mig-recv.out; do
		_i=$((_i + 1))
		if [ $_i -gt 300 ] || ! lab_alive $_rpid; then
			lab_fail "$1: nestvm receive on $_to did not listen on $_addr"
			sed 's/^/  receive| /' /tmp/mig-recv.out
			kill $_rpid 2>/dev/null
			return 1
		fi
		sleep 0.1
	done
	_t0=$(lab_now_cs)
	# shellcheck disable=SC2086 # MIG_MIGRATE_ARGS: more words for nestvm migrate
	mig_at "$_from" migrate "$VM" --to "$_addr" --secret-file $MIG_SECRET ${MIG_MIGRATE_ARGS:-} \
		</dev/null >/tmp/mig-send.out 2>&1
	_rc=$?
	mig_ms=$((($(lab_now_cs) - _t0) * 10))
	# A migrate that failed before it reached the destination leaves the
	# receive waiting: 5 s more, then it goes.
	if [ $_rc -ne 0 ]; then
		_i=0
		while lab_alive $_rpid && [ $_i -lt 50 ]; do sleep 0.1; _i=$((_i + 1)); done
		kill $_rpid 2>/dev/null
	fi
	wait $_rpid
	_rrc=$?
	sed "s/^/  migrate $1| /" /tmp/mig-send.out
	sed "s/^/  receive $1| /" /tmp/mig-recv.out
	if [ $_rc -ne 0 ] || [ $_rrc -ne 0 ]; then
		lab_fail "$1: $_from -> $_to over $_addr: nestvm migrate exited $_rc, nestvm receive $_rrc"
		snap_show
		tail -n 12 "$_tomon" 2>/dev/null | sed 's/^/  monitor there| /'
		return 1
	fi
	_st=$(mig_state_at "$_from")
	[ "$_st" = off ] || { lab_fail "$1: after the migration the VM is '$_st' on $_from, want off"; return 1; }
	_line=$(snap_mon_since "$_m0" | grep "migration to .*: completed in" | tail -n 1)
	[ -n "$_line" ] || { lab_fail "$1: $_from's monitor.log does not say the migration completed"; snap_show; return 1; }
	mig_down_ms=$(echo "$_line" | sed -n 's/.*stopped here for \([0-9]*\) ms.*/\1/p')
	mig_mib=$(echo "$_line" | sed -n 's/.* \([0-9]*\) MiB sent.*/\1/p')
	mig_passes=$(echo "$_line" | sed -n 's/.* in \([0-9]*\) passes.*/\1/p')
	mig_gm=0
	snap_mon_since "$_m0" | grep -q "vCPU [0-9]* saved in guest mode" && mig_gm=1
	cat "$con" >>"$all"
	mig_at_progress=$(snap_last "$all")
	mig_here "$_to"
	_st=$(snap_state)
	[ "$_st" = running ] || { lab_fail "$1: after the migration the VM is '$_st' on $_to, want running"; snap_show; return 1; }
	tail -n +$((_d0 + 1)) "$mon" | grep -q "migration from .*GO" ||
		{ lab_fail "$1: $_to's monitor.log does not say it received the VM"; snap_show; return 1; }
	if [ $mig_gm -eq 1 ] && ! tail -n +$((_d0 + 1)) "$mon" | grep -q "vCPU [0-9]* restored in guest mode"; then
		lab_fail "$1: saved in guest mode on $_from, but not restored in guest mode on $_to"
		snap_show
		return 1
	fi
	return 0
}
