# SPDX-License-Identifier: MIT
#
# L1 part of virtio-devices: the Debian guest loads the virtio modules and
# uses every virtio device nestvm gave it. One line per check:
#   VIRTIO-<CHECK> ok [details]      or      VIRTIO-FAIL <check>: why
# The lab side (virtio-devices.sh) reads them, and the VIRTIO-VSOCK-LISTENING
# marker tells it when to connect to the guest.
#
# Needs in the L1 initramfs: /virtio/modules/*.ko (see tests/lab/README.md)
# and /bin/nestvm-vsock (build/guest/nestvm-vsock).

MODS=/virtio/modules
TOOL=/bin/nestvm-vsock
rc=0

ok() {
	echo "VIRTIO-$1 ok${2:+ $2}"
}

bad() {
	echo "VIRTIO-FAIL $1: $2"
	rc=1
}

# Centiseconds of uptime.
now_cs() {
	read -r _up _ </proc/uptime
	echo $((${_up%.*} * 100 + 1${_up#*.} - 100))
}

if [ ! -d $MODS ] || [ ! -x $TOOL ]; then
	echo "VIRTIO-FAIL setup: the L1 initramfs lacks $MODS or $TOOL"
	exit 1
fi
for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_blk \
	virtio-rng vsock vmw_vsock_virtio_transport_common vmw_vsock_virtio_transport virtio_console; do
	[ -f $MODS/$m.ko ] || continue
	insmod $MODS/$m.ko || bad insmod "$m.ko did not load"
done

# The PCI functions and what bound to them.
n=0
for d in /sys/bus/virtio/devices/*; do
	[ -e "$d" ] || continue
	n=$((n + 1))
	drv=$(readlink "$d/driver" 2>/dev/null)
	echo "VIRTIO-DEV ${d##*/} id=$(cat "$d/device") driver=${drv##*/}"
done
for i in $(seq 1 50); do
	[ -b /dev/vda ] && [ -b /dev/vdb ] && break
	sleep 0.1
done
[ "$n" -ge 5 ] && ok PCI "devices=$n" || bad PCI "found $n virtio devices, want 5 (blk, blk, rng, vsock, console)"

# virtio-blk: format, mount, write a file, read it back after a remount.
token=$(sed -n 's/.*virtio\.token=\([^ ]*\).*/\1/p' /proc/cmdline)
mkdir -p /mnt
if [ ! -b /dev/vda ]; then
	bad BLK "no /dev/vda"
elif ! mke2fs -q /dev/vda >/tmp/mke2fs.out 2>&1; then
	bad BLK "mke2fs /dev/vda: $(cat /tmp/mke2fs.out)"
elif ! mount -t ext2 /dev/vda /mnt; then
	bad BLK "mount /dev/vda"
else
	echo "$token" >/mnt/hello.txt
	t0=$(now_cs)
	dd if=/dev/zero of=/mnt/big bs=1M count=16 conv=fsync 2>/dev/null
	t1=$(now_cs)
	sync
	umount /mnt
	mount -t ext2 -o ro /dev/vda /mnt
	got=$(cat /mnt/hello.txt 2>/dev/null)
	t2=$(now_cs)
	dd if=/mnt/big of=/dev/null bs=1M 2>/dev/null
	t3=$(now_cs)
	umount /mnt
	if [ "$got" = "$token" ] && [ -n "$token" ]; then
		ok BLK "write_16MiB_cs=$((t1 - t0)) read_16MiB_cs=$((t3 - t2)) serial=$(cat /sys/block/vda/serial 2>/dev/null)"
	else
		bad BLK "read back '$got', wrote '$token'"
	fi
fi

# The read-only disk: flagged read-only, readable, and a write fails (no crash).
if [ ! -b /dev/vdb ]; then
	bad RO "no /dev/vdb"
else
	ro=$(cat /sys/block/vdb/ro)
	head=$(head -c 20 /dev/vdb)
	if dd if=/dev/zero of=/dev/vdb bs=512 count=1 conv=fsync 2>/dev/null; then
		bad RO "a write to the read-only disk succeeded"
	elif [ "$ro" != 1 ]; then
		bad RO "/sys/block/vdb/ro is '$ro'"
	elif [ "$head" != nestvm-readonly-disk ]; then
		bad RO "read '$head'"
	else
		ok RO
	fi
fi

# virtio-rng behind /dev/hwrng.
cur=$(cat /sys/class/misc/hw_random/rng_current 2>/dev/null)
bytes=$(dd if=/dev/hwrng bs=64 count=4 2>/dev/null | od -An -tx1 | tr -s ' \n' '\n\n' | grep -c .)
nonzero=$(dd if=/dev/hwrng bs=64 count=1 2>/dev/null | od -An -tx1 | tr -s ' \n' '\n\n' | grep -vc '^00$')
case $cur in
virtio_rng*)
	if [ "$bytes" -ge 256 ] && [ "$nonzero" -ge 32 ]; then
		ok RNG "source=$cur bytes=$bytes"
	else
		bad RNG "read $bytes bytes from /dev/hwrng, $nonzero of 64 non-zero"
	fi
	;;
*) bad RNG "rng_current is '$cur'" ;;
esac

# virtio-console: hvc0 is a second console; the named port carries text both ways.
token=${token:-none}
if [ -c /dev/hvc0 ] && echo "hello-hvc-$token" >/dev/hvc0; then
	ok HVC
else
	bad HVC "cannot write to /dev/hvc0"
fi
port=
for d in /sys/class/virtio-ports/*; do
	[ "$(cat "$d/name" 2>/dev/null)" = org.nestvm.lab ] && port=/dev/${d##*/}
done
if [ -z "$port" ] || [ ! -c "$port" ]; then
	bad PORT "no port named org.nestvm.lab under /sys/class/virtio-ports"
else
	got=$(timeout 20 head -c 9 "$port")
	if ! timeout 20 sh -c "echo hello-port-$token >$port"; then
		bad PORT "cannot write to $port"
	elif [ "$got" != from-host ]; then
		bad PORT "read '$got' from $port, want from-host"
	else
		ok PORT "device=$port"
	fi
fi

# vsock, guest -> host: the lab listens on SOCKET_5000.
out=$($TOOL send 2 5000 1048576 2>&1)
case $out in
vsock-ok*) ok VSOCK-G2H "${out#vsock-ok }" ;;
*) bad VSOCK-G2H "$out" ;;
esac

# vsock, host -> guest: listen on port 1234, the lab connects.
$TOOL serve 1234 >/tmp/serve.out 2>&1 &
pid=$!
for i in $(seq 1 50); do
	grep -q vsock-listening /tmp/serve.out && break
	sleep 0.1
done
echo "VIRTIO-VSOCK-LISTENING port=1234"
for i in $(seq 1 600); do
	[ -d /proc/$pid ] || break
	sleep 0.1
done
if [ -d /proc/$pid ]; then
	kill $pid
	bad VSOCK-H2G "nobody connected within 60 s"
elif grep -q vsock-echo-done /tmp/serve.out; then
	ok VSOCK-H2G
else
	bad VSOCK-H2G "$(cat /tmp/serve.out)"
fi
exit $rc
