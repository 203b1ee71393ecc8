# SPDX-License-Identifier: MIT
# lab-timeout: 420
#
# virtio-devices — a Debian L1 guest of nestvm uses its virtio devices:
#   virtio-blk   formats /dev/vda (ext2), writes a file, reads it back; after
#                nestvm exits, the lab reads the file from the image
#   read-only    /dev/vdb (--disk PATH,readonly) is read-only, readable, and a
#                write fails with an I/O error
#   virtio-rng   /dev/hwrng is backed by virtio_rng and gives bytes
#   vsock        a 1 MiB round trip guest -> host (the lab's echo server on
#                SOCKET_5000) and host -> guest (CONNECT 1234 through SOCKET)
#   console      the guest writes to hvc0 (--virtio-console) and the lab reads
#                it; a named port (--console-port) carries text both ways
# The guest's part is virtio-devices.l1.sh. Needs in the L1 initramfs the
# virtio modules and nestvm-vsock (tests/lab/README.md); the lab side uses
# /lab/guest/nestvm-vsock, and /lab/modules/loop.ko if present to mount the
# image (else it finds the file's contents in the raw image).
#
# Metrics: the guest's ext2 write/read of 16 MiB, vsock MB/s both ways.

. /lab/lib.sh

TOOL=/lab/guest/nestvm-vsock
DISK=/tmp/virtio-data.img
RO=/tmp/virtio-ro.img
SOCK=/tmp/virtio-vm.sock
HVC=/tmp/virtio-hvc.sock
PORT=/tmp/virtio-port.sock
OUT=/tmp/l1-virtio.out
RUN_LIMIT_S=300

lab_need_nestvm
[ -x $TOOL ] || lab_skip "no $TOOL (make guests)"

rm -f $DISK $RO $SOCK ${SOCK}_5000 $HVC $PORT $OUT /tmp/virtio-host-*.out
dd if=/dev/zero of=$DISK bs=1M count=0 seek=64 2>/dev/null
printf 'nestvm-readonly-disk' >$RO
dd if=/dev/zero of=$RO bs=1M count=0 seek=1 2>/dev/null
token="nestvm-token-$(lab_now_cs)-$$"

# The host's two ends of the vsock round trips.
$TOOL host-serve ${SOCK}_5000 >/tmp/virtio-host-serve.out 2>&1 &
serve_pid=$!
(
	for i in $(seq 1 $((RUN_LIMIT_S * 2))); do
		grep -q '^VIRTIO-VSOCK-LISTENING' $OUT 2>/dev/null && break
		sleep 0.5
	done
	$TOOL host-send $SOCK 1234 1048576
) >/tmp/virtio-host-send.out 2>&1 &
send_pid=$!
$TOOL host-chat $HVC "" >/tmp/virtio-host-hvc.out 2>&1 &
hvc_pid=$!
$TOOL host-chat $PORT from-host >/tmp/virtio-host-port.out 2>&1 &
port_pid=$!

cmdline="console=ttyS0 quiet panic=-1 nestlab.l1=virtio-devices virtio.token=$token"
lab_info "nestvm run --disk $DISK --disk $RO,readonly --rng --vsock 3,socket=$SOCK" \
	"--virtio-console $HVC --console-port org.nestvm.lab,socket=$PORT"
lab_l1_run virtio $RUN_LIMIT_S --kernel /lab/kernel/bzImage --initrd /l1/initrd.cpio --cpus 2 \
	--memory 256M --cmdline "$cmdline" --disk $DISK --disk $RO,readonly --rng \
	--vsock 3,socket=$SOCK --virtio-console $HVC --console-port org.nestvm.lab,socket=$PORT
kill $serve_pid $send_pid $hvc_pid $port_pid 2>/dev/null
wait $serve_pid $send_pid $hvc_pid $port_pid 2>/dev/null

[ "$l1_rc" -eq 0 ] || lab_fail "nestvm exit status $l1_rc ($(lab_exit_status_name $l1_rc)), want 0"
grep '^VIRTIO-FAIL' $OUT | tr -d '\r' | while read -r line; do lab_info "guest: $line"; done
for check in PCI BLK RO RNG HVC PORT VSOCK-G2H VSOCK-H2G; do
	grep -q "^VIRTIO-$check ok" $OUT || lab_fail "the guest did not report VIRTIO-$check ok"
done
grep -q '^vsock-ok' /tmp/virtio-host-send.out ||
	lab_fail "host -> guest round trip: $(cat /tmp/virtio-host-send.out)"
grep -q 'vsock-echo-done' /tmp/virtio-host-serve.out ||
	lab_fail "guest -> host: the lab's echo server saw no complete stream"
grep -q "hello-hvc-$token" /tmp/virtio-host-hvc.out ||
	lab_fail "the lab did not read the guest's line from hvc0: $(head -c 200 /tmp/virtio-host-hvc.out)"
grep -q "hello-port-$token" /tmp/virtio-host-port.out ||
	lab_fail "the lab did not read the guest's line from the named port"

# After the VM: the file is in the image.
if [ -f /lab/modules/loop.ko ]; then
	insmod /lab/modules/loop.ko 2>/dev/null
	mkdir -p /tmp/virtio-mnt
	if mount -t ext2 -o loop,ro $DISK /tmp/virtio-mnt; then
		got=$(cat /tmp/virtio-mnt/hello.txt 2>/dev/null)
		umount /tmp/virtio-mnt
		[ "$got" = "$token" ] || lab_fail "hello.txt in the image holds '$got', want '$token'"
		lab_metric image_check mount
	else
		lab_fail "cannot mount the guest's ext2 image"
	fi
else
	grep -q "$token" $DISK || lab_fail "the token the guest wrote is not in the image"
	lab_metric image_check raw
fi

line=$(tr -d '\r' <$OUT | grep '^VIRTIO-BLK ok')
lab_metrics "blk_write_16MiB_s=$(lab_secs "$(lab_word_value write_16MiB_cs "$line")")" \
	"blk_read_16MiB_s=$(lab_secs "$(lab_word_value read_16MiB_cs "$line")")"
line=$(tr -d '\r' <$OUT | grep '^VIRTIO-VSOCK-G2H ok')
lab_metric vsock_g2h_MBps "$(lab_word_value MBps "$line")"
lab_metric vsock_h2g_MBps "$(lab_word_value MBps "$(cat /tmp/virtio-host-send.out)")"
rm -f $DISK $RO
lab_finish
