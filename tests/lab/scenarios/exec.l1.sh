# SPDX-License-Identifier: MIT
#
# L1 part of exec: the guest only lives while the lab drives it through its
# agent (l1/init starts nestvm-agent for nestlab.agent=1), until the lab
# creates /tmp/exec-done in it with `nestvm exec`. The same part serves an L2
# (exec:heavy boots the plain L1 initramfs as the L2, with this part).
#
# With nestexec.l2=1 (exec:heavy) the guest first becomes a host: it loads
# kvm-amd and starts VM l2 with its own nestvm's manager (vsock CID 3, the
# Debian kernel, the plain initramfs with the agent), prints L1-L2-STARTED,
# and kills l2 when the lab is done.

echo "L1-INFO cpus=$(grep -c ^processor /proc/cpuinfo) uptime=$L1_INIT_UPTIME"
# nestexec.limit=SECS: how long the lab has to finish (default 150 s).
limit=150
for w in $(cat /proc/cmdline); do
	case $w in nestexec.limit=*) limit=${w#*=} ;; esac
done
limit=$((limit * 10)) # tenths of a second
l2=no
grep -qw nestexec.l2=1 /proc/cmdline && l2=yes

if [ $l2 = yes ]; then
	. /l1lib.sh
	l1_kvm_start hold || exit 1
	NV=/l1/bin/nestvm
	export NESTVM_HOME=/tmp/nestvm
	$NV new l2 --kernel /l1/l2/bzImage --initrd /l1/l2/initrd.cpio --cpus 1 --memory 192M \
		--vsock 3 --cmdline "console=ttyS0 quiet panic=-1 nestlab.l1=exec nestlab.agent=1 nestexec.limit=900" ||
		exit 1
	$NV start l2 || {
		tail -n 20 $NESTVM_HOME/l2/monitor.log
		exit 1
	}
	echo "L1-L2-STARTED"
fi

n=0
while [ ! -e /tmp/exec-done ] && [ $n -lt "$limit" ]; do
	sleep 0.1
	n=$((n + 1))
done
if [ $l2 = yes ]; then
	echo "L1: the L2's console, last lines:"
	tail -n 15 $NESTVM_HOME/l2/console.log | tr -d '\r' | sed 's/^/L2| /'
	$NV kill l2 >/dev/null 2>&1
fi
if [ ! -e /tmp/exec-done ]; then
	echo "L1: the lab never created /tmp/exec-done"
	exit 1
fi
exit 0
