#!/bin/sh
# The VM manager (new, list, show, set, start, stop, kill, pause, resume,
# console, remove, nested enable) against the probe guest on this host's
# /dev/kvm, in a temporary NESTVM_HOME. Covers the lifecycle, Hyper-V's
# rules (CPUs, memory, nesting change only while off), two CLIs racing on one
# VM, a monitor killed with SIGKILL, malformed control requests, and broken
# definitions. Prints "N passed, N failed" last; exit 77 without /dev/kvm.
NAME_OF_TEST=manager
. "$(dirname "$0")/../lib/manager.sh"
LINUX=$(ls /boot/vmlinuz-* 2>/dev/null | head -1)
monitor_pid() { timeout 30 "$NESTVM" show "$1" 2>/dev/null | sed -n 's/^state:.*monitor pid \([0-9]*\).*/\1/p'; }

# ---- every verb has --help ----
for verb in new list show set start stop kill pause resume console remove; do
	nv "$verb" --help
	rc=$?
	if [ "$rc" -eq 0 ] && grep -q "^usage: nestvm $verb" "$T/out"; then :; else
		bad "$verb --help (exit $rc)"
		continue
	fi
done
nv nested --help && grep -q "nested enable NAME" "$T/out" && ok "--help of every verb" || bad "nested --help"

# ---- new and its input errors ----
expect "new" 0 "created VM 'vm1': 2 vCPUs, 64 MiB, nested off" -- \
	new vm1 --kernel "$PROBE" --cmdline "test=idle" --cpus 2 --memory 64M
expect "new: duplicate name" 1 "a VM named 'vm1' already exists" -- new vm1 --kernel "$PROBE"
expect "new: bad name" 2 "invalid VM name '../x'" -- new ../x --kernel "$PROBE"
expect "new: missing kernel file" 2 "kernel '/nonexistent': No such file" -- new x --kernel /nonexistent
expect "new: no --kernel" 2 "kernel PATH is required" -- new x
expect "new: --cpus 0" 2 "cpus '0'" -- new x --kernel "$PROBE" --cpus 0
expect "new: --memory 1M" 2 "too small" -- new x --kernel "$PROBE" --memory 1M
expect "new: --memory 64T" 2 "more than this host" -- new x --kernel "$PROBE" --memory 64T
expect "new: bad --nic" 2 "nic 'xx'" -- new x --kernel "$PROBE" --nic xx
expect "new: unknown option" 2 "unknown or incomplete option '--frob'" -- new x --kernel "$PROBE" --frob
expect "new with a disk and NICs" 0 "created VM 'dev'" -- \
	new dev --kernel "$PROBE" --memory 32M --disk "$PROBE,ro" --nic switch=lan --nic switch=lan,mac=02:00:00:00:00:01,mac-spoofing=on
expect "show lists devices" 0 "nic 1: *02:00:00:00:00:01 switch lan, mac-spoofing on" -- show dev
expect "list: off" 0 "^vm1 *off *2 *64 MiB *off *-" -- list
expect "list --json" 0 '"state": "off"' -- list --json
expect "show: off" 0 "^state: *off" -- show vm1
expect "show: no such VM" 1 "no VM named 'nosuch'" -- show nosuch
expect "start: no such VM" 1 "no VM named 'nosuch'" -- start nosuch

# ---- lifecycle: start, pause, resume, stop, kill, remove ----
expect "start" 0 "started VM 'vm1' (monitor pid [0-9]*)" -- start vm1
check_state "after start" vm1 running
expect "list: running, no guest hypervisor" 0 "^vm1 *running *2 *64 MiB *off *no" -- list
expect "show: running with pid" 0 "^state: *running (monitor pid [0-9]*, up" -- show vm1
expect "show: guest hypervisor" 0 "^guest hypervisor: no" -- show vm1
sock="$NESTVM_HOME/vm1/control.sock"
if [ "$(stat -c %a "$sock" 2>/dev/null)" = 600 ]; then ok "control socket mode 0600"; else bad "control socket mode $(stat -c %a "$sock" 2>&1)"; fi
expect "pause" 0 "VM 'vm1' is paused" -- pause vm1
check_state "after pause" vm1 paused
expect "list: paused, guest state still readable" 0 "^vm1 *paused .* no" -- list
expect "pause twice" 0 "paused" -- pause vm1
expect "stop while paused needs --force" 1 "paused" -- stop vm1
expect "resume" 0 "VM 'vm1' is running" -- resume vm1
check_state "after resume" vm1 running
expect "stop: guest ignores the power button" 1 "does not listen for the ACPI power button" -- stop vm1
check_state "stop without --force leaves it" vm1 running
expect "stop --force" 0 "is off: forced off" -- stop --force --timeout 5 vm1
check_state "after stop --force" vm1 off
expect "show: last exit" 0 "^last exit: .*forced off" -- show vm1
expect "start again" 0 "started VM 'vm1'" -- start vm1
expect "kill" 0 "VM 'vm1' is off: killed" -- kill vm1
check_state "after kill" vm1 off
expect "kill when off" 0 "already off" -- kill vm1
expect "pause when off" 1 "is off, not running" -- pause vm1
expect "resume when off" 1 "is off, not running" -- resume vm1
expect "console when off" 1 "is off, not running" -- console vm1

# A guest that listens for the power button powers off by itself.
nv new btn --kernel "$PROBE" --cmdline "test=idle button=on echo=on" --memory 32M
expect "start a guest that listens for the button" 0 "started" -- start btn
# Pressed before the guest enabled the event, the button would go unheard.
wait_console btn "test=idle: up" || bad "the btn guest did not come up"
expect "stop: ACPI power button" 0 "VM 'btn' is off: the guest powered off" -- stop btn
expect "show: powered off" 0 "^last exit: .*the guest powered off (status 0)" -- show btn

# Disks in the definition are attached (virtio-blk); a missing image stops the start.
dd if=/dev/zero of="$T/disk.raw" bs=1M count=1 2>/dev/null
nv new disky --kernel "$PROBE" --cmdline "test=idle" --memory 32M --disk "$T/disk.raw"
expect "start a VM with a disk" 0 "started VM 'disky'" -- start disky
expect "show: the disk" 0 "^disk 0: *$T/disk.raw" -- show disky
nv kill disky
rm "$T/disk.raw"
expect "start with a missing disk image" 1 "did not start.*\|disk.raw" -- start disky
check_state "a VM whose disk is missing" disky off
nv remove disky

# ---- devices: one schema for run and new; every PCI device at its recorded slot ----
# pci_of FILE: the probe's PCI functions (test=pci), one "00:SS.0 VVVV:DDDD" per line.
pci_of() { sed -n 's/^probe: pci: \(00:[0-9a-f]*\.[0-7]\) \([0-9a-f:]*\) .*/\1 \2/p' "$1"; }
# run_pci OUT ARGS: `nestvm run` of the probe's test=pci with ARGS; its functions into OUT.
run_pci() {
	out=$1
	shift
	timeout 60 "$NESTVM" run --kernel "$PROBE" --cmdline test=pci --memory 32M \
		--console file:"$T/run-console" "$@" </dev/null >"$T/run-out" 2>&1
	echo "exit $?" >>"$T/run-out"
	pci_of "$T/run-console" >"$out"
}
# start_pci VM OUT: start VM (test=pci), wait for it to end, its functions into OUT.
start_pci() {
	nv start "$1" || bad "start $1 (test=pci)"
	wait_state "$1" off 20 || bad "$1 did not end"
	pci_of "$NESTVM_HOME/$1/console.log" >"$2"
}
dd if=/dev/zero of="$T/dev0.img" bs=1M count=0 seek=1 2>/dev/null
expect "new with a disk, rng, vsock and a console port" 0 "created VM 'devs'" -- \
	new devs --kernel "$PROBE" --cmdline test=pci --memory 32M --disk "$T/dev0.img,io=threads" \
	--rng --vsock 7 --console-port org.nestvm.test,socket="$T/port.sock" --hugepages off --pit off
expect "show: each device at its slot" 0 "^rng: *virtio-rng at 00:02.0" -- show devs
grep -q "^disk 0: *$T/dev0.img at 00:01.0, io threads" "$T/out" &&
	grep -q "^vsock: *CID 7, socket $NESTVM_HOME/devs/vsock.sock (default) at 00:03.0" "$T/out" &&
	grep -q "^virtio-console: .*1 port at 00:04.0" "$T/out" &&
	grep -q "^port 0: *org.nestvm.test on $T/port.sock" "$T/out" &&
	grep -q "^hugepages: *off" "$T/out" && grep -q "^pit: *off" "$T/out" &&
	ok "show: disk, vsock, virtio-console, port, hugepages, pit" || bad "show: the devices"
expect "show --json: the devices" 0 '"virtio_console": {' -- show --json devs
grep -q '"cid": 7' "$T/out" && grep -q '"io": "threads"' "$T/out" && grep -q '"pci_slot": 4' "$T/out" &&
	ok "show --json: cid, io, pci_slot" || bad "show --json: the devices' fields"
start_pci devs "$T/pci-managed"
# (its own port socket: the managed monitor may still be closing port.sock)
run_pci "$T/pci-run" --disk "$T/dev0.img,io=threads" --rng --vsock 7,socket="$T/run-vsock.sock" \
	--console-port org.nestvm.test,socket="$T/run-port.sock" --hugepages off --pit off
virtio=$(grep -c " 1af4:" "$T/pci-managed")
if [ "$virtio" -eq 4 ] && cmp -s "$T/pci-managed" "$T/pci-run"; then
	ok "a managed VM's guest sees its 4 virtio devices at the slots 'run' gives: $(tr '\n' ' ' <"$T/pci-managed")"
else
	{
		echo "managed:"; cat "$T/pci-managed"; echo "run:"; cat "$T/pci-run"
		echo "run's output:"; tail -n 5 "$T/run-out"
	} >"$T/out"
	bad "managed and run PCI functions differ ($virtio virtio functions)"
fi
# The disk removed: the others stay where they are; added again, it takes the free slot.
expect "set --remove-disk" 0 "0 disk(s)" -- set devs --remove-disk "$T/dev0.img"
start_pci devs "$T/pci-removed"
if ! grep -q "^00:01.0" "$T/pci-removed" && [ "$(grep -v '^00:01.0' "$T/pci-managed")" = "$(cat "$T/pci-removed")" ]; then
	ok "a disk removed: rng, vsock and console keep 00:02.0, 00:03.0, 00:04.0"
else
	cat "$T/pci-removed" >"$T/out"
	bad "devices moved when the disk was removed"
fi
# Turned off, the rng gives up 00:02.0; turned on, it takes the lowest free slot, then the disk.
expect "set --rng off" 0 "0 disk(s), 0 NIC(s), vsock, virtio-console" -- set devs --rng off
nv set devs --rng on
expect "set --rng on: the lowest free slot" 0 "^rng: *virtio-rng at 00:01.0" -- show devs
nv set devs --disk "$T/dev0.img,io=threads"
expect "set --disk: the next free slot" 0 "^disk 0: .* at 00:02.0, io threads" -- show devs
grep -q "^vsock: .* at 00:03.0" "$T/out" && grep -q "^virtio-console: .* at 00:04.0" "$T/out" &&
	ok "vsock and console stayed at 00:03.0 and 00:04.0" || bad "vsock or console moved"
expect "set: --rng needs on or off" 2 "rng 'yes please'" -- set devs --rng "yes please"
expect "set: bad --vsock" 2 "vsock '2'" -- set devs --vsock 2
expect "set: a port name twice" 2 "port named 'org.nestvm.test' already" -- \
	set devs --console-port org.nestvm.test,socket="$T/p2.sock"
expect "set: no such port" 2 "no such port" -- set devs --remove-console-port nosuch
# Running: the vsock socket is in the VM's directory, mode 0600; devices change only while off.
nv set devs --cmdline "test=idle"
nv start devs
vs="$NESTVM_HOME/devs/vsock.sock"
if [ -S "$vs" ] && [ "$(stat -c %a "$vs")" = 600 ] && [ -S "$T/port.sock" ]; then
	ok "vsock socket $vs (mode 0600) and the port's socket while running"
else
	ls -la "$NESTVM_HOME/devs" "$T" >"$T/out" 2>&1
	bad "vsock or port socket missing while running"
fi
expect "set --rng while running" 1 "--rng can be changed only while it is off" -- set devs --rng off
expect "set --vsock none while running" 1 "--vsock can be changed only while it is off" -- set devs --vsock none
nv kill devs
# `kill` returns when the monitor has closed its connections; the devices go just after.
for _ in $(seq 50); do [ -e "$vs" ] || break; sleep 0.1; done
[ ! -e "$vs" ] && ok "the vsock socket is removed at exit" || bad "vsock socket left behind"
expect "set --vsock none --remove-console-port" 0 "0 NIC(s), rng, virtio-console$" -- \
	set devs --vsock none --remove-console-port org.nestvm.test --virtio-console "$T/hvc.sock"
expect "show: the console device keeps its slot with hvc0 alone" 0 "^virtio-console: hvc0 $T/hvc.sock, 0 ports at 00:04.0" -- show devs
nv remove devs

# A format 1 vm.json (before devices and slots) reads as it ran, and is rewritten as format 2.
nv new old --kernel "$PROBE" --memory 32M
printf '{"format": 1, "name": "old", "cpus": 1, "memory_mib": 32, "nested": false, "kernel": "%s",\n "initrd": null, "cmdline": "test=pci", "disks": [{"path": "%s", "readonly": true}], "nics": []}\n' \
	"$PROBE" "$T/dev0.img" >"$NESTVM_HOME/old/vm.json"
expect "show a format 1 definition" 0 "^disk 0: .*(read-only) at 00:01.0, io auto" -- show old
grep -q "^hugepages: *on" "$T/out" && grep -q "^pit: *on" "$T/out" && ok "format 1: hugepages and pit on" ||
	bad "format 1 defaults"
expect "set --rng on a format 1 definition" 0 "rng" -- set old --rng on
grep -q '"format": 4' "$NESTVM_HOME/old/vm.json" && grep -q '"pci_slot": 2' "$NESTVM_HOME/old/vm.json" &&
	ok "rewritten as format 4 with the disk at slot 1, the rng at 2" || bad "format 1 rewritten"
nv remove old

# A guest that listens for the button but does not power off: the timeout, then --force.
nv new deaf --kernel "$PROBE" --cmdline "test=idle button=ignore" --memory 32M
nv start deaf
wait_console deaf "test=idle: up" || bad "the deaf guest did not come up"
expect "stop: the guest does not power off in time" 1 "did not power off within 1s and keeps running" -- \
	stop --timeout 1 deaf
check_state "stop timed out without --force" deaf running
expect "stop --force after the timeout" 0 "forced off: the guest did not power off within 1 s" -- \
	stop --timeout 1 --force deaf
check_state "stop --force after the timeout" deaf off
nv remove deaf

# ---- console ----
nv start btn
{ sleep 1; printf 'hello console\n'; sleep 2; } | timeout 20 "$NESTVM" console btn >"$T/out" 2>&1
rc=$?
if [ "$rc" -eq 0 ] && grep -q "probe: test=idle: up" "$T/out" && grep -q "probe: echo: hello console" "$T/out"; then
	ok "console: replay and typed input echoed by the guest"
else
	bad "console (exit $rc)"
fi
if grep -q "probe: echo: hello console" "$NESTVM_HOME/btn/console.log"; then ok "console.log keeps the console"; else bad "console.log"; fi
{ sleep 3; } | timeout 20 "$NESTVM" console --no-replay btn >"$T/c1" 2>&1 &
c1=$!
sleep 1
expect "second console is refused" 1 "another client has the console attached" -- console btn
wait $c1
expect "console detached, VM still runs" 0 "^state: *running" -- show btn
nv kill btn

# ---- Hyper-V's rules: CPUs, memory and nesting only while off ----
nv start vm1
expect "set --cpus while running" 1 "VM 'vm1' is running: --cpus can be changed only while it is off" -- set vm1 --cpus 4
expect "set --memory while running" 1 "--memory can be changed only while it is off" -- set vm1 --memory 128M
expect "set --nested while running" 1 "--nested can be changed only while it is off" -- set vm1 --nested on
expect "set --add-disk while running" 1 "--add-disk can be changed only while it is off" -- set vm1 --add-disk "$PROBE"
expect "set the same value while running" 0 "cpus 2" -- set vm1 --cpus 2
expect "set --cmdline while running" 0 "apply at the next start" -- set vm1 --cmdline "test=idle x=1"
expect "remove while running" 1 "it can be removed only while it is off" -- remove vm1
expect "start while running" 1 "VM 'vm1' is already running" -- start vm1
expect "running VM keeps its CPUs" 0 "^vm1 *running *2 " -- list
nv kill vm1
expect "set while off" 0 "VM 'vm1': cpus 3, memory 128 MiB, nested on" -- set vm1 --cpus 3 --memory 128M --nested on
expect "set: bad value" 2 "cpus '300'" -- set vm1 --cpus 300
expect "set: nothing to change" 2 "nothing to change" -- set vm1
nv set vm1 --nested off

# ---- two CLIs racing on one VM ----
# Monitor processes of this test's vm1 (other test runs may have a vm1 of
# their own). A stopped monitor's VM teardown runs in a short-lived child
# that carries the same command line: wait for it to go before each round.
vm1_monitors() {
	ps -eo args | grep -F -- "monitor --home $NESTVM_HOME " | grep -c -- "-- vm1$"
}
for round in 1 2 3; do
	for _ in $(seq 50); do [ "$(vm1_monitors)" -eq 0 ] && break; sleep 0.1; done
	"$NESTVM" start vm1 >"$T/s1" 2>&1 &
	p1=$!
	"$NESTVM" start vm1 >"$T/s2" 2>&1 &
	p2=$!
	wait $p1
	r1=$?
	wait $p2
	r2=$?
	monitors=$(vm1_monitors)
	if [ $((r1 + r2)) -eq 1 ] && [ "$monitors" -eq 1 ] && cat "$T/s1" "$T/s2" | grep -q "already"; then
		ok "racing starts, round $round: one started, one refused, one monitor"
	else
		cat "$T/s1" "$T/s2" >"$T/out"
		bad "racing starts, round $round: exits $r1 and $r2, $monitors monitors"
	fi
	nv kill vm1
done
"$NESTVM" set vm1 --cpus 1 >/dev/null 2>&1 &
p1=$!
"$NESTVM" set vm1 --cpus 2 >/dev/null 2>&1 &
p2=$!
wait $p1
r1=$?
wait $p2
r2=$?
cpus=$(sed -n 's/.*"cpus": *\([0-9]*\).*/\1/p' "$NESTVM_HOME/vm1/vm.json")
if [ "$r1" -eq 0 ] && [ "$r2" -eq 0 ] && { [ "$cpus" = 1 ] || [ "$cpus" = 2 ]; } && nv show vm1; then
	ok "racing sets are serialized (cpus $cpus, definition intact)"
else
	bad "racing sets: exits $r1 $r2, cpus '$cpus'"
fi
for delay in 0 0.02 0.05; do
	"$NESTVM" start vm1 >"$T/s1" 2>&1 &
	p1=$!
	sleep $delay
	expect "kill racing a start (after ${delay}s)" 0 "is off\|already off" -- kill vm1
	wait $p1
	nv kill vm1
	check_state "kill racing a start (after ${delay}s)" vm1 off
done

# ---- a monitor killed with SIGKILL shows as crashed, and starts again ----
nv start vm1
pid=$(monitor_pid vm1)
if [ -n "$pid" ] && kill -9 "$pid"; then
	wait_state vm1 crashed 5
	check_state "monitor killed with SIGKILL" vm1 crashed
	expect "show: crashed with the last log lines" 0 "died without recording why" -- show vm1
	grep -q "^last monitor log lines:" "$T/out" && grep -q "monitor pid $pid starting" "$T/out" &&
		ok "show: the crashed run's log lines" || bad "show: log lines of the crashed run"
	expect "list: crashed" 0 "^vm1 *crashed" -- list
	expect "start after a crash" 0 "started VM 'vm1'" -- start vm1
	check_state "after restart" vm1 running
else
	bad "no monitor pid for vm1"
fi

# ---- malformed requests get an error reply; the VM keeps running ----
{
	echo '{"cmd":"status","id":1}'
	echo 'not json'
	echo '{"cmd":"frobnicate","id":"x"}'
	echo '[1,2,3]'
	echo '{"cmd":5}'
	echo '{"cmd":"stop","timeout":-1}'
	echo '{"cmd":"stop","force":"yes"}'
	echo '{"cmd":"pause","extra":true}'
	echo '{"cmd":"status","cmd":"kill"}'
	printf '{"cmd":"kill\\u0000"}\n'
	printf '{"cmd":"kill"\0}\n'
	echo '{"cmd":"status","id":{"deep":[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]}}'
	echo '{"id":"'"$(head -c 300 /dev/zero | tr '\0' x)"'","cmd":"status"}'
	echo
	echo '{"cmd":"status","id":2}'
} >"$T/requests"
nv api vm1 <"$T/requests"
timeout 30 "$NESTVM" api vm1 <"$T/requests" >"$T/out" 2>&1
lines=$(wc -l <"$T/requests")
replies=$(grep -c '^{"ok":' "$T/out")
errors=$(grep -c '^{"ok":false,.*"error":{"code":"[a-z-]*","message":' "$T/out")
if [ "$replies" -eq "$lines" ] && [ "$errors" -eq $((lines - 2)) ] && tail -1 "$T/out" | grep -q '"ok":true,"id":2'; then
	ok "malformed requests: $errors error replies, one per line, and the next request works"
else
	bad "malformed requests: $replies replies and $errors errors for $lines lines"
fi
grep -q '"id":"x".*unknown-command' "$T/out" && ok "an error reply echoes the id" || bad "id echo"
{ head -c 70000 /dev/zero | tr '\0' a; echo; echo '{"cmd":"status"}'; } >"$T/long"
timeout 30 "$NESTVM" api vm1 <"$T/long" >"$T/out" 2>&1
grep -q "request-too-long" "$T/out" && grep -q '"state":"running"' "$T/out" &&
	ok "a 70000-byte line: request-too-long, then the next request works" || bad "long request line"
head -c 20000 /dev/urandom >"$T/random"
timeout 30 "$NESTVM" api vm1 <"$T/random" >/dev/null 2>&1
check_state "after random bytes on the control socket" vm1 running
nv kill vm1

# ---- broken definitions: clear errors, other VMs unaffected ----
nv new broken --kernel "$PROBE" --memory 32M
sed -i 's/"cpus": 1/"cpus": "two"/' "$NESTVM_HOME/broken/vm.json"
nv new torn --kernel "$PROBE" --memory 32M
printf '{"name": "torn", "cpus": ' >"$NESTVM_HOME/torn/vm.json"
nv start vm1
nv list
rc=$?
if [ "$rc" -eq 0 ] && grep -q "broken/vm.json: field 'cpus': expected an integer from 1 to 254, got \"two\"" "$T/out" &&
	grep -q "torn/vm.json:1:.*not valid JSON" "$T/out" && grep -q "^vm1 *running" "$T/out" &&
	grep -q "^broken *off *?" "$T/out"; then
	ok "list: broken definitions named by file and field, other VMs listed"
else
	bad "list with broken definitions (exit $rc)"
fi
expect "show a broken VM" 1 "broken/vm.json: field 'cpus'" -- show broken
expect "start a broken VM" 1 "broken/vm.json: field 'cpus'" -- start broken
expect "set a broken VM" 1 "field 'cpus'" -- set broken --cpus 2
expect "another VM still works" 0 "VM 'vm1' is paused" -- pause vm1
nv kill vm1
expect "remove a broken VM" 0 "removed VM 'broken'" -- remove broken
rm "$NESTVM_HOME/torn/vm.json"
expect "a VM without vm.json" 1 "torn/vm.json: missing" -- start torn
nv remove torn

# ---- nested enable ----
nv new nest --kernel "$PROBE" --memory 256M
expect "nested enable: what is wrong" 1 "\[FAIL\] nested *off" -- nested enable nest
grep -q "\[FAIL\] cpus *1 vCPU" "$T/out" && grep -q "\[FAIL\] memory *256 MiB" "$T/out" &&
	grep -q "nested virtualization on this host" "$T/out" && ok "nested enable: cpus, memory and host checks" ||
	bad "nested enable report"
nv set nest --cmdline "test=idle"
nv start nest
expect "nested enable --yes on a running VM" 1 "its settings can be fixed only while it is off" -- nested enable nest --yes
nv kill nest
nv nested enable nest --yes
expect "nested enable --yes fixed the VM" 0 "^nested: *on" -- show nest
grep -q "^cpus: *2" "$T/out" && grep -q "^memory: *1 GiB" "$T/out" && ok "nested enable --yes: 2 vCPUs, 1 GiB" ||
	bad "nested enable --yes values"
if ! grep -q -w -e svm -e vmx /proc/cpuinfo; then
	expect "start --nested on where KVM cannot nest" 1 "neither VT-x nor AMD-V" -- start nest
	check_state "a VM that could not start" nest off
	expect "show: why it did not start" 0 "could not start" -- show nest
fi

# ---- a long NESTVM_HOME: the control socket path exceeds sun_path ----
long="$T/long-$(head -c 60 /dev/zero | tr '\0' d)/$(head -c 60 /dev/zero | tr '\0' e)"
NESTVM_HOME=$long nv new lv --kernel "$PROBE" --cmdline test=idle --memory 32M
NESTVM_HOME=$long nv start lv
if NESTVM_HOME=$long nv show lv && grep -q "^state: *running" "$T/out" &&
	NESTVM_HOME=$long nv kill lv; then
	ok "a ${#long}-byte NESTVM_HOME works"
else
	bad "long NESTVM_HOME"
fi

# ---- --cpu-affinity: the VM's vCPU threads on the host CPUs named ----
# vcpu_cpus PID: the Cpus_allowed_list of each of PID's vCPU threads, one per line.
vcpu_cpus() {
	for t in /proc/"$1"/task/*; do
		case $(cat "$t/comm" 2>/dev/null) in vcpu*) sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' "$t/status" ;; esac
	done
}
last=$(($(nproc) - 1))
"$NESTVM" run --kernel "$PROBE" --cmdline test=idle --memory 32M --cpus 2 --console none \
	--cpu-affinity "$last" >"$T/aff.out" 2>&1 &
aff=$!
i=0
while [ "$i" -lt 50 ] && [ "$(vcpu_cpus $aff | wc -l)" -lt 2 ]; do sleep 0.1; i=$((i + 1)); done
got=$(vcpu_cpus $aff | sort -u | tr '\n' ' ')
kill $aff 2>/dev/null
wait $aff 2>/dev/null
[ "$got" = "$last " ] && ok "run --cpu-affinity $last: both vCPU threads on host CPU $last" ||
	bad "run --cpu-affinity $last: vCPU threads allowed '$got'"
expect "run --cpu-affinity 3-1: a usage error" 2 "cpu-affinity '3-1': 3-1: a range is low-high" -- \
	run --kernel "$PROBE" --cmdline test=exit --memory 32M --cpu-affinity 3-1
expect "run --cpu-affinity 1023: no such CPU here" 1 "cpu affinity 1023: none of these host CPUs" -- \
	run --kernel "$PROBE" --cmdline test=exit --memory 32M --cpu-affinity 1023
nv new pin --kernel "$PROBE" --cmdline test=idle --memory 32M --cpus 2 --cpu-affinity "$last,$last"
expect "new --cpu-affinity: show lists it" 0 "^cpu affinity: *$last\$" -- show pin
grep -q "\"cpu_affinity\": \"$last\"" "$NESTVM_HOME/pin/vm.json" && ok "vm.json: cpu_affinity \"$last\"" ||
	bad "vm.json: cpu_affinity: $(grep cpu_affinity "$NESTVM_HOME/pin/vm.json")"
nv start pin
got=$(vcpu_cpus "$(monitor_pid pin)" | sort -u | tr '\n' ' ')
[ "$got" = "$last " ] && ok "start: the monitor's vCPU threads on host CPU $last" ||
	bad "start: vCPU threads allowed '$got'"
expect "set --cpu-affinity while running: refused" 1 "cpu-affinity" -- set pin --cpu-affinity none
nv kill pin
expect "set --cpu-affinity none" 0 "" -- set pin --cpu-affinity none
expect "show: any CPU again" 0 "^cpu affinity: *any" -- show pin
nv remove pin

# ---- a Linux kernel as a running guest (it crawls here, but runs) ----
if [ -n "$LINUX" ]; then
	nv new linux --kernel "$LINUX" --cmdline "console=ttyS0" --cpus 2 --memory 256M
	expect "start a Linux guest" 0 "started VM 'linux'" -- start linux
	expect "show: Linux guest running" 0 "^state: *running" -- show linux
	expect "list: Linux guest's hypervisor state" 0 "^linux *running *2 *256 MiB *off *no" -- list
	expect "kill the Linux guest" 0 "is off: killed" -- kill linux
fi

expect "remove" 0 "removed VM 'vm1'" -- remove vm1
expect "list after remove" 0 "^NAME" -- list
if grep -q "^vm1 " "$T/out"; then bad "vm1 still listed"; else ok "vm1 is gone"; fi
expect "remove again" 1 "no VM named 'vm1'" -- remove vm1

# No sanitizer report in any monitor's log.
if cat "$NESTVM_HOME"/*/monitor.log | grep -q -e "ERROR: AddressSanitizer" -e "runtime error" -e "LeakSanitizer"; then
	grep -h -A5 -e "ERROR: AddressSanitizer" -e "runtime error" -e "LeakSanitizer" "$NESTVM_HOME"/*/monitor.log >"$T/out"
	bad "sanitizer reports in monitor logs"
else
	ok "no sanitizer report in the monitor logs"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
