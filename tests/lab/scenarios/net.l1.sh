# SPDX-License-Identifier: MIT
#
# L1 part of net:nested: the guest becomes a host whose L2 has two adapters,
# one for each of Hyper-V's recipes for nested guests' networking:
#
#   bridge: switch br (internal, no subnet: a bare tap, nestvm-br) joined by
#   a Linux bridge br0 to one of this L1's own adapters, so that the L2's
#   frames leave through the L1's adapter on the lab's NAT switch;
#   NAT: switch l1nat (nat, 10.0.3.0/24) in this L1, whose outbound
#   connections go out through br0's address on the lab's NAT switch.
#
# The L1's adapters (MACs set by net.sh): 02:00:00:00:0b:01 with
# mac-spoofing=on and 02:00:00:00:0b:02 with it off. br0 starts with the
# second: the lab checks that the L2's frames are dropped there, then moves
# br0 to the first (`nestnet-bridge PORT`, below). The lab drives everything
# else through the agents (exec.l1.sh runs in the L2) and ends with
# /tmp/exec-done here.

echo "L1-INFO cpus=$(grep -c ^processor /proc/cpuinfo) uptime=$L1_INIT_UPTIME"
limit=600
for w in $(cat /proc/cmdline); do
	case $w in nestexec.limit=*) limit=${w#*=} ;; esac
done
limit=$((limit * 10)) # tenths of a second

. /l1lib.sh
l1_kvm_start hold || exit 1
insmod /l1/modules/tun.ko || { echo "L1: insmod tun.ko failed"; exit 1; }
# (the lab's g.sh may be loading the first three at the same time)
for m in failover net_failover virtio_net llc stp bridge; do
	[ -d /sys/module/$m ] || insmod /virtio/modules/$m.ko || [ -d /sys/module/$m ] ||
		{ echo "L1: insmod $m.ko failed"; exit 1; }
done

# ifname MAC: the interface with that address.
ifname() {
	for f in /sys/class/net/*/address; do
		[ "$(cat "$f")" = "$1" ] && basename "${f%/address}" && return 0
	done
	return 1
}
spoof_on=$(ifname 02:00:00:00:0b:01) && spoof_off=$(ifname 02:00:00:00:0b:02) ||
	{ echo "L1: adapters 02:00:00:00:0b:0[12] not found: $(cat /sys/class/net/*/address)"; exit 1; }
echo "L1-INFO adapters spoof_on=$spoof_on spoof_off=$spoof_off"

NV=/l1/bin/nestvm
export NESTVM_HOME=/tmp/nestvm
$NV switch new br --type internal --tap nestvm-br || exit 1
$NV switch new l1nat --type nat --subnet 10.0.3.0/24 || exit 1
# On the L1's tickless CPU, as nested.l1.sh runs its L2 Linux (net.sh boots
# this L1 with nohz_full=1): the L1's timer ticks were three quarters of the
# L2's interrupt exits, and each L2 exit is a chance for the lab's L1 triple
# fault (tests/lab/README.md, "net:nested").
pin=
grep -qw nohz_full=1 /proc/cmdline && pin=1
$NV new l2 --kernel /l1/l2/bzImage --initrd /l1/l2/initrd.cpio --cpus 1 --memory 192M --vsock 3 \
	${pin:+--cpu-affinity $pin} \
	--nic switch=br,mac=02:00:00:00:0c:01 --nic switch=l1nat,mac=02:00:00:00:0c:02 \
	--cmdline "console=ttyS0 quiet panic=-1 nestlab.l1=exec nestlab.agent=1 nestexec.limit=900" ||
	exit 1
$NV start l2 || { tail -n 20 $NESTVM_HOME/l2/monitor.log; exit 1; }

# (busybox's brctl has no setfd: the forward delay through sysfs)
brctl addbr br0 && echo 0 >/sys/class/net/br0/bridge/forward_delay &&
	brctl addif br0 nestvm-br && brctl addif br0 "$spoof_off" ||
	{ echo "L1: br0 could not be made"; exit 1; }
for i in br0 nestvm-br "$spoof_on" "$spoof_off"; do ip link set "$i" up; done
echo "L1-L2-STARTED"

n=0
while [ ! -e /tmp/exec-done ] && [ $n -lt "$limit" ]; do
	sleep 0.1
	n=$((n + 1))
done
echo "L1: the L2's console, last lines:"
tail -n 15 $NESTVM_HOME/l2/console.log | tr -d '\r' | sed 's/^/L2| /'
$NV kill l2 >/dev/null 2>&1
if [ ! -e /tmp/exec-done ]; then
	echo "L1: the lab never created /tmp/exec-done"
	exit 1
fi
exit 0
