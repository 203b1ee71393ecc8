# SPDX-License-Identifier: MIT
# lab-timeout: 240
# lab-timeout nested: 700
#
# net[:nested] — nestvm's switches and NICs with Debian guests, the lab being
# the host. The guests are `nestvm run` L1s with the agent (exec.l1.sh: they
# only wait until the lab is done); the lab drives them with `nestvm exec`
# and a helper script copied into each (g.sh, below). A web server on the
# lab's loopback (busybox httpd, 127.0.0.1:18000) stands for a service on
# the host.
#
# net: switches nat0 (nat, 10.0.2.0/24, a port forward 127.0.0.1:18080 ->
# 10.0.2.15:8080), priv0 (private) and int0 (internal, 192.168.77.0/24 on a
# tap). L1 a has an adapter on each, L1 b one on priv0:
#   nat: a's DHCP lease on nat0 is 10.0.2.15 with router and DNS; a resolves
#   lab.test through 10.0.2.3 (libslirp asks the lab's tools/dns_stub.c) and
#   fetches the lab's page there through outbound NAT (10.0.2.2 is the host), and the lab
#   fetches a's page through the port forward;
#   private: a and b ping each other; a spoofing its MAC is cut off, and
#   priv0's counters show the dropped frames;
#   internal: a gets a lease on int0 and the lab pings it through the tap;
#   sandbox: the three switches ran confined (seccomp, no_new_privs, a user
#   of their own: src/switch/confine.h).
# nested: an L1 with --nested on and two adapters on nat0 (mac-spoofing on
# and off) runs an L2 with an adapter for each of Hyper-V's two recipes
# (net.l1.sh): the L2 bridged through the L1's spoofing-off adapter gets no
# lease and nat0 counts the spoofed frames; bridged through the
# spoofing-on adapter it gets a lease from nat0 and fetches the lab's page;
# then through the L1's own NAT switch (10.0.3.0/24), through both NATs.
# The same L2 then takes exec's checks through the levels (exec-lib.sh:
# status, 4 MiB through stdin, cp both ways, a pty, the chained form), so
# that one L2 Linux boot in make test's lab serves both.
#
# Metrics: lease_s (a's DHCP), l2_lease_s (bridged);
# nested: l2_first_contact_s, l2_first_byte_ms, l2_in_MBps (exec-lib.sh).

. /lab/lib.sh
. /lab/scenarios/exec-lib.sh

lab_need_nestvm
[ -x /lab/guest/nestvm-agent ] || lab_skip "no nestvm-agent in the lab (make guests)"
[ -r /l1/initrd.cpio ] || lab_skip "no /l1/initrd.cpio in the lab"
NV=$LAB_NESTVM
export NESTVM_HOME=/tmp/nestvm-net
D=/tmp/net-lab
RES=$D/results
# Switches left running by a run of this scenario that its limit killed
# (a switch is no child of the scenario): stopped, or their ports stay taken.
for s in nat0 priv0 int0; do "$NV" switch stop $s --force >/dev/null 2>&1; done
rm -rf $D $NESTVM_HOME
mkdir -p $D/www

case ${1:-} in
"") mode=basic ;;
nested)
	mode=nested
	[ -r /l1/initrd-nested.cpio ] || lab_skip "no /l1/initrd-nested.cpio in the lab"
	;;
*)
	lab_fail "unknown argument '$1' (none, or nested)"
	lab_finish
	;;
esac
lsmod | grep -q '^tun ' || insmod /lab/modules/tun.ko || lab_skip "no tun module in the lab"

# say ok|fail CHECK DETAIL...: one result line, read back at the end.
say() {
	echo "NET-CHECK $*" >>$RES
	echo "net: $*"
}

# The guests' helper (the lab runs it too): g.sh up | ifname MAC | dhcp IF
# [TRIES] | fetch HOST PORT PATH; also
# udhcpc's script (deconfig, bound, ...), which leaves the lease in
# /tmp/lease.IF as "ip=A router=R dns=D".
cat >$D/g.sh <<'EOF'
#!/bin/sh
case $1 in
up)
	for m in failover net_failover virtio_net; do
		[ -d /sys/module/$m ] || insmod /virtio/modules/$m.ko || [ -d /sys/module/$m ] || exit 1
	done
	;;
ifname)
	# Not a bridge: br0 takes the MAC of a port it has.
	for f in /sys/class/net/*/address; do
		[ -d "${f%/address}/bridge" ] && continue
		[ "$(cat "$f")" = "$2" ] && { basename "${f%/address}"; exit 0; }
	done
	exit 1
	;;
dhcp)
	rm -f /tmp/lease.$2
	ip link set "$2" up
	udhcpc -i "$2" -n -q -t "${3:-5}" -T 2 -s /tmp/g.sh >/dev/null 2>&1
	cat /tmp/lease.$2
	;;
fetch)
	# fetch HOST PORT PATH: the body of an HTTP/1.0 GET (busybox wget has
	# segfaulted in the lab on a failed connection)
	printf 'GET %s HTTP/1.0\r\n\r\n' "$4" | nc -w 15 "$2" "$3" | tr -d '\r' | sed '1,/^$/d'
	;;
deconfig) ifconfig "$interface" 0.0.0.0 ;;
bound | renew)
	ifconfig "$interface" "$ip" netmask "$subnet"
	[ -n "$router" ] && route add default gw "${router%% *}" dev "$interface"
	echo "ip=$ip router=${router%% *} dns=${dns%% *}" >/tmp/lease.$interface
	;;
esac
exit 0
EOF

# x SOCK ARGS: nestvm exec through a VM's vsock socket.
x() {
	_s=$1
	shift
	"$NV" exec --vsock-socket "$_s" "$@" </dev/null
}

# ready SOCK [VM]: the agent answers, g.sh is in, virtio_net is loaded.
ready() {
	x "$1" --wait 300 ${2:+"$2"} -- true 2>$D/err || { cat $D/err; return 1; }
	"$NV" cp --vsock-socket "$1" $D/g.sh "${2:-}:/tmp/g.sh" &&
		x "$1" ${2:+"$2"} -- chmod 755 /tmp/g.sh && x "$1" ${2:+"$2"} -- /tmp/g.sh up
}

# counter SWITCH KEY: a counter of the switch's totals (switch show --json).
counter() {
	"$NV" switch show "$1" --json 2>/dev/null | tr -d ' \n' |
		sed -n "s/.*\"totals\":{[^}]*\"$2\":\([0-9]*\).*/\1/p"
}

# The lab's init leaves the loopback down: the service and the forwards live there.
ip link set lo up
echo hello-from-the-lab >$D/www/hello
httpd -f -p 127.0.0.1:18000 -h $D/www &
httpd_pid=$!
# A name for it: the lab's resolver is a stub on the loopback, which nat0's
# libslirp asks for its guests' queries to 10.0.2.3.
dns_pid=
if [ -x /lab/bin/dns_stub ]; then
	mkdir -p /etc
	echo "nameserver 127.0.0.1" >/etc/resolv.conf
	/lab/bin/dns_stub 127.0.0.1 lab.test 10.0.2.2 &
	dns_pid=$!
fi

"$NV" switch new nat0 --type nat --forward tcp:18080:10.0.2.15:8080 >/dev/null ||
	{ lab_fail "switch new nat0 failed"; lab_finish; }

drive_basic() {
	A=$D/a.sock B=$D/b.sock
	ready $A || { say fail agent-a "L1 a's agent or virtio_net"; return 1; }
	ready $B || { say fail agent-b "L1 b's agent or virtio_net"; return 1; }

	# nat0: a lease, outbound NAT to the lab, a port forward into a.
	ia=$(x $A -- /tmp/g.sh ifname 02:00:00:00:0a:01)
	t0=$(lab_now_cs)
	lease=$(x $A -- /tmp/g.sh dhcp "$ia")
	lab_metric lease_s "$(lab_secs $(($(lab_now_cs) - t0)))"
	case $lease in
	"ip=10.0.2.15 router=10.0.2.2 dns=10.0.2.3") say ok dhcp "$lease" ;;
	*) say fail dhcp "lease '$lease', want ip=10.0.2.15 router=10.0.2.2 dns=10.0.2.3" ;;
	esac
	# The lab's name, through 10.0.2.3, then its page at that address.
	addr=$(x $A -- nslookup lab.test 10.0.2.3 2>&1 | sed -n '/^Name:/,$ s/^Address: *\([0-9.]*\).*/\1/p' | head -n 1)
	[ "$addr" = 10.0.2.2 ] && say ok dns "a resolved lab.test to $addr through 10.0.2.3" ||
		say fail dns "lab.test: '$addr', want 10.0.2.2"
	got=$(x $A -- /tmp/g.sh fetch "${addr:-10.0.2.2}" 18000 /hello 2>&1)
	[ "$got" = hello-from-the-lab ] && say ok nat-out "a fetched the lab's page at lab.test" ||
		say fail nat-out "got '$got'"
	x $A -- sh -c 'mkdir -p /tmp/www && echo page-of-a >/tmp/www/p && httpd -p 8080 -h /tmp/www'
	got=$(sh $D/g.sh fetch 127.0.0.1 18080 /p 2>&1)
	[ "$got" = page-of-a ] && say ok forward "the lab fetched a's page through 127.0.0.1:18080" ||
		say fail forward "got '$got'"

	# priv0: a and b; then a spoofs its MAC.
	ip_=$(x $A -- /tmp/g.sh ifname 02:00:00:00:0a:02)
	ib=$(x $B -- /tmp/g.sh ifname 02:00:00:00:0a:11)
	x $A -- sh -c "ip link set $ip_ up && ip addr add 192.168.50.1/24 dev $ip_"
	x $B -- sh -c "ip link set $ib up && ip addr add 192.168.50.2/24 dev $ib"
	x $A -- ping -c 3 -W 3 192.168.50.2 >$D/o 2>&1 && x $B -- ping -c 3 -W 3 192.168.50.1 >>$D/o 2>&1 &&
		say ok private "a and b ping each other" || say fail private "$(tail -n 3 $D/o)"
	before=$(counter priv0 spoofed_mac)
	x $A -- sh -c "ip link set $ip_ down; ip link set $ip_ address 02:00:00:00:99:99; ip link set $ip_ up"
	if x $A -- ping -c 3 -W 2 192.168.50.2 >$D/o 2>&1; then
		say fail spoof-guard "a still reaches b with a spoofed MAC"
	else
		after=$(counter priv0 spoofed_mac)
		[ "$after" -gt "$before" ] && say ok spoof-guard "cut off; priv0 dropped $((after - before)) spoofed frames" ||
			say fail spoof-guard "cut off, but the spoofed counter went $before -> $after"
	fi

	# int0: a lease on the internal switch, the lab reaches a through the tap.
	ii=$(x $A -- /tmp/g.sh ifname 02:00:00:00:0a:03)
	lease=$(x $A -- /tmp/g.sh dhcp "$ii")
	ipa=$(lab_word_value ip "$lease")
	case $ipa in
	192.168.77.*) ping -c 3 -W 3 "$ipa" >$D/o 2>&1 && say ok internal "the lab pings a at $ipa" ||
		say fail internal "no answer from $ipa: $(tail -n 2 $D/o)" ;;
	*) say fail internal "lease on int0: '$lease'" ;;
	esac
	"$NV" switch show priv0 >$D/priv0.show 2>&1
	sed 's/^/  priv0| /' $D/priv0.show

	# All three ran confined (src/switch/confine.h) while the checks above passed.
	bad=
	for s in nat0 priv0 int0; do
		"$NV" switch show $s >$D/o 2>&1
		grep -q "^sandbox: seccomp on, landlock .*, no_new_privs on" $D/o &&
			grep -q "^user: [0-9]*, group [0-9]* (its own), no capabilities" $D/o ||
			bad="$bad $s: $(grep -E '^(sandbox|user):' $D/o | tr '\n' ' ')"
	done
	[ -z "$bad" ] && say ok sandbox "nat0, priv0, int0: seccomp, no_new_privs, own user" ||
		say fail sandbox "$bad"
}

drive_nested() {
	C=$D/c.sock
	ready $C || { say fail agent-l1 "the L1's agent or virtio_net"; return 1; }
	for _ in $(seq 1 600); do
		grep -q L1-L2-STARTED /tmp/l1-net.out 2>/dev/null && break
		sleep 1
	done
	ready $C l2 || { say fail agent-l2 "the L2's agent (through the L1) or virtio_net"; return 1; }
	on=$(x $C -- /tmp/g.sh ifname 02:00:00:00:0b:01)
	off=$(x $C -- /tmp/g.sh ifname 02:00:00:00:0b:02)
	i2=$(x $C l2 -- /tmp/g.sh ifname 02:00:00:00:0c:01)
	n2=$(x $C l2 -- /tmp/g.sh ifname 02:00:00:00:0c:02)

	# Bridged through the spoofing-off adapter: nothing gets through.
	before=$(counter nat0 spoofed_mac)
	lease=$(x $C l2 -- /tmp/g.sh dhcp "$i2" 3)
	after=$(counter nat0 spoofed_mac)
	if [ -n "$lease" ]; then
		say fail bridge-spoof-off "the L2 got '$lease' through an adapter without mac-spoofing"
	elif [ "$after" -gt "$before" ]; then
		say ok bridge-spoof-off "no lease; nat0 dropped $((after - before)) spoofed frames"
	else
		say fail bridge-spoof-off "no lease, but nat0's spoofed counter went $before -> $after"
	fi

	# Bridged through the spoofing-on adapter: a lease from nat0, the lab's page.
	x $C -- sh -c "brctl delif br0 $off && brctl addif br0 $on" >$D/o 2>&1 ||
		say fail bridge-swap "'$off' out of br0, '$on' in: $(cat $D/o)"
	t0=$(lab_now_cs)
	lease=$(x $C l2 -- /tmp/g.sh dhcp "$i2" 8)
	lab_metric l2_lease_s "$(lab_secs $(($(lab_now_cs) - t0)))"
	case $(lab_word_value ip "$lease") in
	10.0.2.*) say ok bridge-lease "the L2 got $lease from nat0 through the L1's bridge" ;;
	*) say fail bridge-lease "lease '$lease'" ;;
	esac
	got=$(x $C l2 -- /tmp/g.sh fetch 10.0.2.2 18000 /hello 2>&1)
	[ "$got" = hello-from-the-lab ] && say ok bridge-fetch "the L2 fetched the lab's page, bridged" ||
		say fail bridge-fetch "got '$got'"

	# Through the L1's NAT: the L1 takes an address on br0 for its own
	# connections, the L2 moves to its adapter on l1nat.
	lease1=$(x $C -- /tmp/g.sh dhcp br0 8)
	x $C l2 -- sh -c "ip addr flush dev $i2; ip link set $i2 down"
	lease=$(x $C l2 -- /tmp/g.sh dhcp "$n2" 8)
	case $(lab_word_value ip "$lease") in
	10.0.3.*) say ok nat-lease "the L2 got $lease from the L1's NAT switch (the L1: $lease1)" ;;
	*) say fail nat-lease "lease '$lease' (the L1: '$lease1')" ;;
	esac
	got=$(x $C l2 -- /tmp/g.sh fetch 10.0.2.2 18000 /hello 2>&1)
	[ "$got" = hello-from-the-lab ] && say ok nat-fetch "the L2 fetched the lab's page through both NATs" ||
		say fail nat-fetch "got '$got'"
	"$NV" switch show nat0 >$D/nat0.show 2>&1
	sed 's/^/  nat0| /' $D/nat0.show

	# The same L2 serves exec's checks through the levels (issue 13).
	size=4194304
	head -c $size /dev/urandom >$D/data
	want=$(sha256sum <$D/data | cut -c1-64)
	exec_l2_checks $C
	x $C l2 -- touch /tmp/exec-done
}

drive() {
	if [ $mode = basic ]; then
		drive_basic
		x $D/b.sock -- touch /tmp/exec-done
		x $D/a.sock -- touch /tmp/exec-done
	else
		drive_nested
		x $D/c.sock -- touch /tmp/exec-done
	fi
}

cmd="console=ttyS0 quiet panic=-1 nestlab.agent=1"
drive >$D/drive.log 2>&1 &
driver=$!
if [ $mode = basic ]; then
	"$NV" switch new priv0 --type private >/dev/null || lab_fail "switch new priv0 failed"
	"$NV" switch new int0 --type internal --subnet 192.168.77.0/24 >/dev/null ||
		lab_fail "switch new int0 failed"
	"$NV" run --kernel /lab/kernel/bzImage --initrd /l1/initrd.cpio --memory 192M \
		--vsock 4,socket=$D/b.sock --nic switch=priv0,mac=02:00:00:00:0a:11 \
		--cmdline "$cmd nestlab.l1=exec nestexec.limit=200" </dev/null >$D/b.out 2>&1 &
	b=$!
	lab_l1_run net 220 --kernel /lab/kernel/bzImage --initrd /l1/initrd.cpio --memory 256M \
		--vsock 3,socket=$D/a.sock --nic switch=nat0,mac=02:00:00:00:0a:01 \
		--nic switch=priv0,mac=02:00:00:00:0a:02 --nic switch=int0,mac=02:00:00:00:0a:03 \
		--cmdline "$cmd nestlab.l1=exec nestexec.limit=200"
	# Without L1 a, the driver never tells b it is done: b would wait out its limit.
	[ "$l1_rc" -eq 0 ] || kill $b 2>/dev/null
	wait $b
	b_rc=$?
	[ $b_rc -eq 0 ] || { lab_fail "L1 b: nestvm exit status $b_rc"; tail -n 20 $D/b.out; }
	checks="dhcp dns nat-out forward private spoof-guard internal sandbox"
else
	# The L2 Linux boot under a Linux L1 is where the lab's L1 triple fault
	# was (tests/lab/README.md, "net:nested"), rare since the L1 has huge
	# pages. With 1 vCPU the L1 (its agent, two switches and the L2's
	# monitor beside the L2) did not get its L2 to /init in 300 s.
	lab_l1_run net 680 --kernel /lab/kernel/bzImage --initrd /l1/initrd-nested.cpio --memory 512M \
		--cpus 2 --nested on --vsock 3,socket=$D/c.sock \
		--nic switch=nat0,mac=02:00:00:00:0b:01,mac-spoofing=on --nic switch=nat0,mac=02:00:00:00:0b:02 \
		--cmdline "$cmd nowatchdog nohz_full=1 nestlab.l1=net nestexec.limit=650"
	checks="bridge-spoof-off bridge-lease bridge-fetch nat-lease nat-fetch"
	checks="$checks l2-first-contact l2-status l2-stdin l2-cp l2-pty l2-chained"
fi
kill $driver 2>/dev/null
wait $driver 2>/dev/null
sed 's/^/  drive| /' $D/drive.log
kill $httpd_pid $dns_pid 2>/dev/null

[ "$l1_rc" -eq 0 ] || lab_fail "nestvm exit status $l1_rc ($(lab_exit_status_name $l1_rc)), want 0"
grep '^NET-CHECK fail' $RES 2>/dev/null | while read -r _ _ line; do lab_fail "$line"; done
grep -q '^NET-CHECK fail' $RES 2>/dev/null && lab_failed=1
for c in $checks; do
	grep -q "^NET-CHECK ok $c" $RES 2>/dev/null || lab_fail "check $c did not pass"
done
for s in nat0 priv0 int0; do "$NV" switch stop $s >/dev/null 2>&1; done
rm -rf $D
lab_finish
