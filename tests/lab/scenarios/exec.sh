# SPDX-License-Identifier: MIT
# lab-timeout: 240
# lab-timeout heavy: 1500
# lab-timeout l2: 600
# lab-timeout ssh: 360
#
# exec[:ssh|:heavy|:l2] — nestvm exec and nestvm cp into a Debian guest through its
# agent over vsock (docs/agent.md). The guest is a `nestvm run --vsock
# 3,socket=SOCK` L1 whose init starts nestvm-agent (nestlab.agent=1); its
# part (exec.l1.sh) only waits until the lab is done. Meanwhile the lab,
# through SOCK (`--vsock-socket`):
#   waits for the agent (--wait), then checks an exit status with stdout and
#   stderr apart, 127 for a missing command, 4 MiB in through stdin and out
#   through stdout (checksums), cp in and back (checksums), a signal ending
#   a sleep (SIGUSR1, 138), a pty (tty says /dev/pts/N), 20 sessions at once;
#   measures the time from `nestvm exec` to its first output byte (median of
#   5 `echo`s) and the rate each way, and the same over the lab's own
#   loopback: the agent on the lab host with --unix, driven the same way
#   (what differs is vsock and the guest).
# ssh (make lab-exec): the same checks, then the L1 on an internal switch runs
# dropbear (put in with nestvm cp) and the lab times the same commands over
# ssh and over nestvm exec, from outside (metrics ssh_* and exec_*).
# heavy (make lab-exec): a --nested on L1 that starts its own managed VM l2
# (a Linux guest with the agent, exec.l1.sh again), and 1 GiB each way into
# the L1, then exec, stdin, cp and a pty into l2 through the L1's agent
# (`nestvm exec --vsock-socket SOCK l2 -- ...`), and the chained form
# (`nestvm exec L1 -- nestvm exec l2 -- ...`).
# l2 (make lab-exec): heavy without the 1 GiB transfers (exec-lib.sh; make
# test's net:nested runs the same L2 checks).
#
# Metrics: first_contact_s; vm_first_byte_ms, vm_in_MBps, vm_out_MBps and
# lo_* the same over the loopback; heavy: gib_in_MBps, gib_out_MBps, l2_first_contact_s,
# l2_first_byte_ms, l2_in_MBps.

. /lab/lib.sh
. /lab/scenarios/exec-lib.sh

lab_need_nestvm
AGENT=/lab/guest/nestvm-agent
[ -x $AGENT ] || lab_skip "no $AGENT in the lab (make guests)"
NV=$LAB_NESTVM
SOCK=/tmp/exec-vm.sock
D=/tmp/exec-lab
RES=$D/results
rm -rf $D $SOCK
mkdir -p $D

case ${1:-} in
"")
	mode=basic l1_limit=200 size=4194304
	run_args="--initrd /l1/initrd.cpio --memory 256M"
	cmdline="console=ttyS0 quiet panic=-1 nestlab.l1=exec nestlab.agent=1 nestexec.limit=170"
	;;
ssh)
	[ -r /lab/ssh/dropbear.cpio ] && [ -x /usr/bin/dbclient ] ||
		lab_skip "no dropbear in the lab (Debian's dropbear-bin: scripts/install-deps.sh)"
	mode=ssh l1_limit=300 size=4194304
	lsmod | grep -q '^tun ' || insmod /lab/modules/tun.ko || lab_skip "no tun module in the lab"
	export NESTVM_HOME=/tmp/nestvm-execssh
	rm -rf $NESTVM_HOME
	"$NV" switch new ssh0 --type internal --subnet 192.168.78.0/24 >/dev/null ||
		lab_fail "switch new ssh0 failed"
	run_args="--initrd /l1/initrd.cpio --memory 256M --nic switch=ssh0,mac=02:00:00:00:0c:01"
	cmdline="console=ttyS0 quiet panic=-1 nestlab.l1=exec nestlab.agent=1 nestexec.limit=270"
	;;
heavy | l2)
	[ -r /l1/initrd-nested.cpio ] || lab_skip "no /l1/initrd-nested.cpio in the lab"
	mode=$1 l1_limit=1400 size=4194304
	run_args="--nested on --initrd /l1/initrd-nested.cpio --memory 512M"
	cmdline="console=ttyS0 quiet panic=-1 nestlab.l1=exec nestlab.agent=1 nestexec.l2=1"
	cmdline="$cmdline nestexec.limit=1300"
	if [ $mode = l2 ]; then
		l1_limit=560
		cmdline="${cmdline%limit=1300}limit=520"
	fi
	;;
*)
	lab_fail "unknown argument '$1' (none, ssh, heavy or l2)"
	lab_finish
	;;
esac

# say ok|fail CHECK DETAIL...: one result line, read back after the VM.
say() {
	echo "EXEC-CHECK $*" >>$RES
	echo "exec: $*"
}

# x ARGS: nestvm exec through the VM's vsock socket.
x() {
	"$NV" exec --vsock-socket $SOCK "$@"
}

# probe NAME FILE CMD...: with CMD (`nestvm exec` and its way to the agent),
# five `echo`s for the time to the first output byte, $D/data in through
# stdin (checksum) and FILE (the same bytes, over there) out through stdout
# into $D/NAME.out; the median and both rates as metrics NAME_*.
probe() {
	_p=$1 _f=$2
	shift 2
	for _i in 1 2 3 4 5; do
		"$@" --stats -- echo hi </dev/null >/dev/null 2>>$D/$_p.lat
	done
	"$@" --stats -- sha256sum <$D/data >$D/$_p.in 2>$D/$_p.in.stats
	[ "$(cut -c1-64 $D/$_p.in)" = "$want" ] || say fail "$_p-stdin" "checksum of $size bytes differs"
	"$@" --stats -- cat "$_f" >$D/$_p.out 2>$D/$_p.out.stats </dev/null
	lab_metrics "${_p}_first_byte_ms=$(median $D/$_p.lat first_byte_ms)" \
		"${_p}_in_MBps=$(stat_of $D/$_p.in.stats MBps)" \
		"${_p}_out_MBps=$(stat_of $D/$_p.out.stats MBps)"
}

# The checks against the L1 (basic and heavy).
drive_l1() {
	t0=$(lab_now_cs)
	if ! x --wait 150 -- true </dev/null 2>$D/err; then
		say fail first-contact "$(cat $D/err)"
		return 1
	fi
	say ok first-contact "after $(lab_secs $(($(lab_now_cs) - t0))) s"
	lab_metric first_contact_s "$(lab_secs $(($(lab_now_cs) - t0)))"

	x -- sh -c 'echo to-out; echo to-err >&2; exit 7' </dev/null >$D/o 2>$D/e
	rc=$?
	if [ $rc = 7 ] && [ "$(cat $D/o)" = to-out ] && [ "$(cat $D/e)" = to-err ]; then
		say ok status "7, stdout and stderr apart"
	else
		say fail status "rc=$rc out='$(cat $D/o)' err='$(cat $D/e)'"
	fi
	x -- /no/such/command </dev/null >/dev/null 2>$D/e
	rc=$?
	[ $rc = 127 ] && say ok not-found 127 || say fail not-found "rc=$rc $(cat $D/e)"

	# cp in, checked in the guest; out through stdout; cp back.
	if "$NV" cp --vsock-socket $SOCK $D/data :/tmp/data 2>$D/e &&
		[ "$(x -- sha256sum /tmp/data </dev/null | cut -c1-64)" = "$want" ]; then
		say ok cp-in "$size bytes"
	else
		say fail cp-in "$(cat $D/e)"
	fi
	probe vm /tmp/data x
	[ "$(sha256sum <$D/vm.out | cut -c1-64)" = "$want" ] && say ok stdout "$size bytes" ||
		say fail stdout "checksum of $size bytes differs"
	rm -f $D/back
	"$NV" cp --vsock-socket $SOCK :/tmp/data $D/back 2>$D/e
	[ "$(sha256sum <$D/back | cut -c1-64)" = "$want" ] && say ok cp-out "$size bytes" ||
		say fail cp-out "$(cat $D/e)"

	# A background job of this shell ignores SIGINT (and nestvm exec leaves
	# an ignored signal ignored, as ssh does): SIGUSR1 shows the forwarding.
	x -- sleep 30 </dev/null >/dev/null 2>&1 &
	p=$!
	sleep 2
	kill -USR1 $p
	wait $p
	rc=$?
	[ $rc = 138 ] && say ok signal "SIGUSR1 ended sleep: 138" || say fail signal "rc=$rc"

	x -t -- tty </dev/null >$D/o 2>$D/e
	grep -q '^/dev/pts/' $D/o && say ok pty "$(tr -d '\r' <$D/o)" || say fail pty "$(cat $D/o $D/e)"

	# 20 sessions at once, each 3 s asleep: together well under the 60 s
	# they would take one after the other.
	pids=
	t0=$(lab_now_cs)
	for i in $(seq 20); do
		x -- sh -c "sleep 3; echo s$i" </dev/null >$D/par.$i 2>&1 &
		pids="$pids $!"
	done
	# shellcheck disable=SC2086 # the list of pids
	wait $pids
	t=$(lab_secs $(($(lab_now_cs) - t0)))
	good=0
	for i in $(seq 20); do [ "$(cat $D/par.$i)" = "s$i" ] && good=$((good + 1)); done
	if [ $good = 20 ] && [ $(($(lab_now_cs) - t0)) -lt 3000 ]; then
		say ok sessions "20 at once, each sleep 3: all done in $t s"
	else
		say fail sessions "$good of 20 right, in $t s (want under 30)"
	fi
}

# heavy: 1 GiB each way into the L1 (not with l2); then l2 through the L1's agent.
drive_heavy() {
	[ $mode = heavy ] && drive_gib
	drive_l2
}

drive_gib() {
	gib=1073741824
	zero=$(head -c $gib /dev/zero | sha256sum | cut -c1-64)
	head -c $gib /dev/zero | x --stats -- sha256sum >$D/o 2>$D/gin.stats
	[ "$(cut -c1-64 $D/o)" = "$zero" ] && say ok gib-in "$(stat_of $D/gin.stats MBps) MB/s" ||
		say fail gib-in "checksum: $(cat $D/o)"
	x --stats -- head -c $gib /dev/zero </dev/null 2>$D/gout.stats | sha256sum >$D/o
	[ "$(cut -c1-64 $D/o)" = "$zero" ] && say ok gib-out "$(stat_of $D/gout.stats MBps) MB/s" ||
		say fail gib-out "checksum: $(cat $D/o)"
	lab_metrics "gib_in_MBps=$(stat_of $D/gin.stats MBps)" "gib_out_MBps=$(stat_of $D/gout.stats MBps)"
}

drive_l2() {
	for _ in $(seq 1 600); do
		grep -q L1-L2-STARTED /tmp/l1-exec.out 2>/dev/null && break
		sleep 1
	done
	exec_l2_checks $SOCK && x l2 -- touch /tmp/exec-done </dev/null
}

# ssh: the same L1 over an internal switch (192.168.78.0/24, the lab's end
# .1), dropbear started in it through the agent: the time from the command to
# its output (median of 5 `echo`s, the whole command: ssh's handshake
# included, as nestvm exec's connection is) and both rates, next to nestvm
# exec's, timed the same way from outside.
DBC="/usr/bin/dbclient -y -y -i $D/key root@192.168.78.2"
drive_ssh() {
	/usr/bin/dropbearkey -t ed25519 -f $D/key >$D/o 2>&1 || { say fail ssh-setup "dropbearkey: $(cat $D/o)"; return 1; }
	/usr/bin/dropbearkey -y -f $D/key 2>/dev/null | grep '^ssh-' >$D/key.pub
	"$NV" cp --vsock-socket $SOCK /lab/ssh/dropbear.cpio :/tmp/dropbear.cpio 2>$D/e ||
		{ say fail ssh-setup "cp: $(cat $D/e)"; return 1; }
	x -- sh -c 'for m in failover net_failover virtio_net; do
			[ -d /sys/module/$m ] || insmod /virtio/modules/$m.ko; done
		cd / && cpio -idm </tmp/dropbear.cpio 2>/dev/null &&
		mkdir -p /etc && echo root:x:0:0:root:/root:/bin/sh >/etc/passwd &&
		mkdir -p /root/.ssh /etc/dropbear && chmod 700 /root /root/.ssh &&
		cat >/root/.ssh/authorized_keys && chmod 600 /root/.ssh/authorized_keys &&
		ip link set eth0 up && ip addr add 192.168.78.2/24 dev eth0 &&
		/usr/sbin/dropbear -R -p 22 -P /tmp/dropbear.pid' <$D/key.pub >$D/o 2>&1 ||
		{ say fail ssh-setup "in the guest: $(cat $D/o)"; return 1; }
	export HOME=$D
	for _ in $(seq 1 30); do
		[ "$($DBC echo up </dev/null 2>/dev/null)" = up ] && break
		sleep 1
	done
	[ "$($DBC echo up </dev/null 2>$D/e)" = up ] || { say fail ssh-setup "no ssh: $(cat $D/e)"; return 1; }
	line=
	for way in ssh exec; do
		case $way in
		ssh) run() { $DBC "$@"; } ;;
		exec) run() { x -- "$@"; } ;;
		esac
		for _i in 1 2 3 4 5; do
			t0=$(lab_now_cs)
			run echo hi </dev/null >/dev/null 2>&1
			echo $((($(lab_now_cs) - t0) * 10)) >>$D/$way.cmd_ms
		done
		t0=$(lab_now_cs)
		run sha256sum <$D/data >$D/o 2>/dev/null
		t1=$(lab_now_cs)
		[ "$(cut -c1-64 $D/o)" = "$want" ] || say fail "$way-stdin" "checksum differs"
		run cat /tmp/data </dev/null 2>/dev/null | sha256sum >$D/o
		t2=$(lab_now_cs)
		[ "$(cut -c1-64 $D/o)" = "$want" ] || say fail "$way-stdout" "checksum differs"
		ms=$(sort -n $D/$way.cmd_ms | sed -n 3p)
		in=$(awk -v b=$size -v t=$((t1 - t0)) 'BEGIN { printf "%.2f", t ? b / (t / 100) / 1e6 : 0 }')
		out=$(awk -v b=$size -v t=$((t2 - t1)) 'BEGIN { printf "%.2f", t ? b / (t / 100) / 1e6 : 0 }')
		lab_metrics "${way}_cmd_ms=$ms" "${way}_in_MBps=$in" "${way}_out_MBps=$out"
		line="$line${line:+; }$way: $ms ms a command (median of 5), $in MB/s in, $out MB/s out"
	done
	say ok ssh "$line"
}

drive() {
	drive_l1 && case $mode in heavy | l2) drive_heavy ;; ssh) drive_ssh ;; esac
	x -- touch /tmp/exec-done </dev/null 2>/dev/null
}

head -c $size /dev/urandom >$D/data
want=$(sha256sum <$D/data | cut -c1-64)
drive >$D/drive.log 2>&1 &
driver=$!
lab_info "nestvm run $run_args --vsock 3,socket=$SOCK --cmdline \"$cmdline\""
# shellcheck disable=SC2086 # run_args is a list of words
lab_l1_run exec $l1_limit --kernel /lab/kernel/bzImage --cpus 2 $run_args --vsock 3,socket=$SOCK \
	--cmdline "$cmdline"
kill $driver 2>/dev/null
wait $driver 2>/dev/null
sed 's/^/  drive| /' $D/drive.log

[ "$l1_rc" -eq 0 ] || lab_fail "nestvm exit status $l1_rc ($(lab_exit_status_name $l1_rc)), want 0"
[ -s $RES ] || lab_fail "no check ran"
grep '^EXEC-CHECK fail' $RES | while read -r _ _ line; do lab_fail "$line"; done
grep -q '^EXEC-CHECK fail' $RES && lab_failed=1
for c in first-contact status not-found cp-in stdout cp-out signal pty sessions; do
	grep -q "^EXEC-CHECK ok $c" $RES || lab_fail "check $c did not pass"
done
if [ $mode = ssh ]; then
	grep -q "^EXEC-CHECK ok ssh" $RES || lab_fail "check ssh did not pass"
	"$NV" switch stop ssh0 >/dev/null 2>&1
fi
if [ $mode = heavy ] || [ $mode = l2 ]; then
	checks=
	[ $mode = heavy ] && checks="gib-in gib-out"
	for c in $checks l2-first-contact l2-status l2-stdin l2-cp l2-pty l2-chained; do
		grep -q "^EXEC-CHECK ok $c" $RES || lab_fail "check $c did not pass"
	done
fi

# The same over the lab's own loopback: the agent on this host, a UNIX socket.
if [ $mode = basic ]; then
	$AGENT --unix $D/lo.sock </dev/null 2>$D/lo.log &
	lo=$!
	for _ in $(seq 1 50); do
		[ -S $D/lo.sock ] && break
		sleep 0.1
	done
	cp $D/data $D/lo-data
	probe lo $D/lo-data "$NV" exec --agent-socket $D/lo.sock
	[ "$(sha256sum <$D/lo.out | cut -c1-64)" = "$want" ] || lab_fail "loopback: stdout checksum differs"
	kill $lo
	wait $lo 2>/dev/null
fi
rm -rf $D
lab_finish
