#!/bin/sh
# The jail of a root-started managed monitor (src/manager/jail.c) and
# Landlock on its main and control threads (src/core/sandbox.c), on this
# host's /dev/kvm with the probe guest idling:
#  (a) the monitor runs as the VM's own uid and gid (from the jail range),
#      no supplementary groups, no capabilities, NoNewPrivs 1, every thread
#      under seccomp, in a mount namespace that is not the host's; the uid is
#      recorded in HOME/.jail and kept across starts; `show` and
#      `show --json` say so;
#  (b) its control thread cannot open a host file outside the VM directory
#      (NESTVM_JAIL_SELFTEST, read by the ASan build only): not there in the
#      jail; with --jail off, Landlock refuses to open it for writing (the
#      ASan build may read files anywhere, for its reports);
#  (c) checkpoint, save and restore (start from the saved state) work in the
#      jail, and `checkpoint restore` by root takes the jail-written files;
#  (d) what a hijacked monitor could leave for root is refused: a vm.json of
#      the jail's user, a saved state whose definition names another kernel;
#  (e) `start --jail off` keeps the monitor root and `show` says why;
#  (f) one image given as two disks is still refused.
# Exit 77 (skip) when not root, without a usable /dev/kvm, or without
# Landlock. Prints "N passed, N failed" last.
set -u
cd "$(dirname "$0")/../.." || exit 1
NESTVM=${NESTVM:-build/asan/nestvm}
case $NESTVM in /*) ;; *) NESTVM=$(pwd)/$NESTVM ;; esac
PROBE=$(pwd)/build/guest/probe.elf
mkdir -p build/test-tmp
T=$(mktemp -d "$(pwd)/build/test-tmp/jail.XXXXXX")
export NESTVM_HOME="$T/home"
unset NESTVM_SANDBOX NESTVM_SANDBOX_SELFTEST NESTVM_JAIL NESTVM_JAIL_UIDS NESTVM_JAIL_SELFTEST
pass=0
fail=0

cleanup() {
	for rt in "$T"/home/*/runtime.json; do
		[ -f "$rt" ] || continue
		pid=$(sed -n 's/.*"pid": *\([0-9]*\).*/\1/p' "$rt")
		[ -n "$pid" ] && [ "$pid" -gt 0 ] && kill -9 "$pid" 2>/dev/null
	done
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

if [ "$(id -u)" != 0 ]; then
	echo "skip: the jail is for monitors started as root (uid $(id -u) here)"
	echo "0 passed, 0 failed"
	exit 77
fi
if [ ! -w /dev/kvm ] || [ ! -x "$NESTVM" ] || [ ! -f "$PROBE" ]; then
	echo "skip: needs a writable /dev/kvm, $NESTVM and $PROBE (make asan guests)"
	echo "0 passed, 0 failed"
	exit 77
fi
if ! python3 -c 'import ctypes,sys; sys.exit(0 if ctypes.CDLL(None).syscall(444, None, 0, 1) >= 1 else 1)' 2>/dev/null; then
	echo "skip: this kernel has no Landlock (landlock_create_ruleset reports no ABI)"
	echo "0 passed, 0 failed"
	exit 77
fi

ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() {
	fail=$((fail + 1))
	echo "FAIL $1"
	[ -s "$T/err" ] && sed 's/^/     | /' "$T/err" | tail -15
	rm -f "$T/err"
}
nv() { timeout 60 "$NESTVM" "$@"; }
pid_of() { sed -n 's/.*"pid": *\([0-9]*\).*/\1/p' "$NESTVM_HOME/$1/runtime.json" 2>/dev/null; }
field() { sed -n "s/^$2:[[:space:]]*//p" "/proc/$1/status"; }

truncate -s 4M "$T/disk.img"
echo "a host file" >"$T/host-file"
chmod 644 "$T/host-file"
nv new j --kernel "$PROBE" --cmdline test=idle --memory 32M --disk "$T/disk.img" \
	--vsock 7 >"$T/err" 2>&1 || bad "new j"

# (a) and (b): started jailed, with the self-test.
if NESTVM_JAIL_SELFTEST="$T/host-file" nv start j >"$T/err" 2>&1; then
	pid=$(pid_of j)
	uid=$(readlink "$NESTVM_HOME/.jail/vm-j")
	owner=$(readlink "$NESTVM_HOME/.jail/uid-$uid")
	ids=$(field "$pid" Uid | tr -s '\t ' ' ')
	gids=$(field "$pid" Gid | tr -s '\t ' ' ')
	unjailed=$(grep -L "^Uid:[[:space:]]*$uid[[:space:]]" /proc/"$pid"/task/*/status | wc -l)
	unfiltered=$(grep -L '^Seccomp:[[:space:]]*2' /proc/"$pid"/task/*/status | wc -l)
	if [ -n "$uid" ] && [ "$uid" -ge 1879048192 ] && [ "$owner" = j ] &&
		[ "$ids" = "$uid $uid $uid $uid" ] && [ "$gids" = "$uid $uid $uid $uid" ] &&
		[ -z "$(field "$pid" Groups | tr -d ' \t')" ] &&
		[ "$(field "$pid" CapEff)" = 0000000000000000 ] &&
		[ "$(field "$pid" CapPrm)" = 0000000000000000 ] &&
		[ "$(field "$pid" NoNewPrivs)" = 1 ] && [ "$unjailed" -eq 0 ] &&
		[ "$unfiltered" -eq 0 ]; then
		ok "monitor runs as uid/gid $uid (every thread), no groups or capabilities, NoNewPrivs, seccomp"
	else
		grep -E '^(Uid|Gid|Groups|CapEff|CapPrm|NoNewPrivs|Seccomp):' /proc/"$pid"/status >"$T/err"
		echo "uid record '$uid' -> '$owner'; $unjailed threads not $uid, $unfiltered unfiltered" >>"$T/err"
		bad "monitor credentials"
	fi
	if [ -n "$pid" ] && [ "$(readlink /proc/"$pid"/ns/mnt)" != "$(readlink /proc/self/ns/mnt)" ]; then
		ok "its mount namespace is its own ($(readlink /proc/"$pid"/ns/mnt))"
	else
		bad "mount namespace shared with the host"
	fi
	# Its root holds the VM directory and nothing of the host's.
	if [ -n "$pid" ] && [ -d "/proc/$pid/root$NESTVM_HOME/j" ] &&
		[ ! -e "/proc/$pid/root$T/host-file" ] && [ ! -e "/proc/$pid/root/etc" ] &&
		[ ! -e "/proc/$pid/root/dev/kvm" ]; then
		ok "its root: the VM directory, no /etc, no /dev/kvm path, no host file"
	else
		ls -la "/proc/$pid/root/" >"$T/err" 2>&1
		bad "its root shows more than the VM directory"
	fi
	if grep -q "jail self-test: the control thread opens '$T/host-file': No such file" \
		"$NESTVM_HOME/j/monitor.log" &&
		grep -q "jail self-test: the control thread opens '$T/host-file' for writing: No such file" \
			"$NESTVM_HOME/j/monitor.log"; then
		ok "the control thread cannot open a host file (not in its namespace)"
	else
		grep "self-test" "$NESTVM_HOME/j/monitor.log" >"$T/err"
		bad "jail self-test line"
	fi
	text=$(nv show j 2>&1)
	json=$(nv show j --json 2>&1 | tr -d ' \n')
	if echo "$text" | grep -q "^jail:         user $uid, group $uid, own mount namespace (pivot_root), no_new_privs$" &&
		echo "$text" | grep -q "^sandbox:      seccomp on, landlock on (.*main and control: the VM's directory)$" &&
		echo "$json" | grep -q "\"jail\":{\"active\":true,\"uid\":$uid,\"gid\":$uid,\"mount_namespace\":true,\"root\":\"pivot_root\",\"no_new_privs\":true}" &&
		echo "$json" | grep -q '"landlock_files":true'; then
		ok "show and show --json list the jail and Landlock"
	else
		echo "$text" | grep -E '^(sandbox|jail):' >"$T/err"
		echo "$json" | grep -o '"jail":{[^}]*}' >>"$T/err"
		bad "show does not list the protections"
	fi
	# (c) checkpoint, save, restore.
	if nv checkpoint j c1 >"$T/err" 2>&1 &&
		[ "$(stat -c %u "$NESTVM_HOME/j/checkpoints/c1")" = "$uid" ]; then
		ok "checkpoint in the jail (written by uid $uid)"
	else
		bad "checkpoint in the jail"
	fi
	if nv save j >"$T/err" 2>&1 && nv start j >>"$T/err" 2>&1 &&
		grep -q "restored from the saved state" "$NESTVM_HOME/j/monitor.log" &&
		[ "$(field "$(pid_of j)" Uid | cut -f1)" = "$uid" ]; then
		ok "save, and start from the saved state, in the jail (same uid)"
	else
		tail -5 "$NESTVM_HOME/j/monitor.log" >>"$T/err"
		bad "save and restore in the jail"
	fi
	nv kill j >/dev/null 2>&1
	if nv checkpoint restore j c1 >"$T/err" 2>&1 && nv start j >>"$T/err" 2>&1 &&
		nv kill j >>"$T/err" 2>&1; then
		ok "checkpoint restore of a jail-written checkpoint, and a start from it"
	else
		bad "checkpoint restore"
	fi
else
	bad "start j (jailed)"
fi
if grep -q -e "ERROR: AddressSanitizer" -e "LeakSanitizer" -e "seccomp: thread" "$NESTVM_HOME/j/monitor.log"; then
	grep -e "Sanitizer" -e "seccomp: thread" "$NESTVM_HOME/j/monitor.log" >"$T/err"
	bad "a sanitizer report or forbidden call in monitor.log"
else
	ok "no sanitizer report or forbidden call in monitor.log"
fi

# (d) a saved state whose definition names another kernel, written by the jail's user.
if nv start j >"$T/err" 2>&1 && nv save j >>"$T/err" 2>&1; then
	d="$NESTVM_HOME/j/saved/vm.json"
	sed "s|$PROBE|$T/host-file|" "$d" >"$T/forged" && cat "$T/forged" >"$d"
	if [ "$(stat -c %u "$d")" != 0 ] &&
		nv start j >"$T/out" 2>&1; then
		cat "$T/out" >"$T/err"
		bad "a jail-written saved state naming another kernel was started"
	elif grep -q "names other host files (kernel)" "$T/out"; then
		ok "a jail-written saved state naming another kernel is refused"
	else
		cp "$T/out" "$T/err"
		bad "forged saved state: unexpected outcome"
	fi
	# Right after the refused start: its monitor has let go of the VM.
	nv start j --discard-saved >"$T/out" 2>&1 || { cp "$T/out" "$T/err"; bad "start --discard-saved after the refused start"; }
	nv kill j >/dev/null 2>&1
else
	bad "start and save for the forged state"
fi
cp "$NESTVM_HOME/j/vm.json" "$T/vm.json.good"
chown "$(readlink "$NESTVM_HOME/.jail/vm-j")" "$NESTVM_HOME/j/vm.json"
if nv start j >"$T/out" 2>&1; then
	nv kill j >/dev/null 2>&1
	bad "a vm.json owned by the jail's user was used"
elif grep -q "does not take a definition from it" "$T/out"; then
	ok "a vm.json owned by the jail's user is refused"
else
	cp "$T/out" "$T/err"
	bad "vm.json of the jail's user: unexpected outcome"
fi
chown 0 "$NESTVM_HOME/j/vm.json"

# (e) --jail off: root, Landlock alone keeps the control thread out of host files.
if NESTVM_JAIL_SELFTEST="$T/host-file" nv start j --jail off >"$T/err" 2>&1; then
	pid=$(pid_of j)
	text=$(nv show j 2>&1 | grep '^jail:')
	if [ "$(field "$pid" Uid | cut -f1)" = 0 ] &&
		[ "$text" = "jail:         off (turned off (NESTVM_JAIL=off))" ] &&
		grep -q "jail self-test: the control thread opens '$T/host-file' for writing: Permission denied" \
			"$NESTVM_HOME/j/monitor.log"; then
		ok "--jail off: root, show says '$text', Landlock refuses to write the host file"
	else
		echo "show: '$text'" >"$T/err"
		grep "self-test" "$NESTVM_HOME/j/monitor.log" | tail -1 >>"$T/err"
		bad "--jail off"
	fi
	nv kill j >/dev/null 2>&1
else
	bad "start --jail off"
fi

# One image as two disks (a hard link): each disk's own open and lock kept them
# apart; the descriptors kept for the jail must not let both through.
ln "$T/disk.img" "$T/disk-link.img"
nv new twice --kernel "$PROBE" --cmdline test=idle --memory 16M --disk "$T/disk.img" \
	--disk "$T/disk-link.img" >"$T/err" 2>&1
if nv start twice >"$T/out" 2>&1; then
	nv kill twice >/dev/null 2>&1
	bad "one image as two disks was started"
elif grep -q "the same image as disk 0" "$T/out"; then
	ok "one image as two disks is refused"
else
	cp "$T/out" "$T/err"
	bad "one image as two disks: unexpected outcome"
fi
nv remove twice >/dev/null 2>&1

# remove frees the uid.
if nv remove j >"$T/err" 2>&1 && [ -z "$(ls -A "$NESTVM_HOME/.jail")" ]; then
	ok "remove frees the VM's jail uid"
else
	ls -la "$NESTVM_HOME/.jail" >>"$T/err" 2>&1
	bad "remove left the jail records"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
