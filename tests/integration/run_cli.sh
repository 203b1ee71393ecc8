#!/bin/sh
# `nestvm run` on bad input: each case must exit with the documented status
# and print a one-line error naming the problem — never crash. Then the
# signal path: SIGTERM/SIGINT stop a running guest with status 128+N.
# Needs /dev/kvm only for the cases marked (kvm); skips those without it.
set -u
cd "$(dirname "$0")/../.."
NESTVM=${NESTVM:-build/asan/nestvm}
PROBE=build/guest/probe.elf
LINUX=$(ls /boot/vmlinuz-* 2>/dev/null | head -1)
T=$(mktemp -d /tmp/nestvm-run-cli.XXXXXX)
trap 'rm -rf "$T"' EXIT
pass=0
fail=0

# expect NAME STATUS PATTERN -- ARGS...: run, check exit status and that
# stderr has exactly one line matching PATTERN (and no sanitizer report).
expect() {
	name=$1 want=$2 pattern=$3
	shift 4
	timeout 30 "$NESTVM" "$@" >"$T/out" 2>"$T/err" </dev/null
	rc=$?
	lines=$(grep -c . "$T/err")
	if [ "$rc" -eq "$want" ] && grep -q -- "$pattern" "$T/err" && [ "$lines" -eq 1 ]; then
		pass=$((pass + 1))
		echo "ok   $name: exit $rc: $(cat "$T/err")"
	else
		fail=$((fail + 1))
		echo "FAIL $name: exit $rc (want $want), stderr ($lines lines, want 1 matching '$pattern'):"
		sed 's/^/     | /' "$T/err" | head -20
	fi
}

head -c 300 /dev/urandom >"$T/random"
: >"$T/empty"
head -c 1000 "$PROBE" >"$T/truncated.elf"
printf '#!/bin/sh\necho hi\n' >"$T/script"
dd if=/dev/zero of="$T/big.img" bs=1M count=0 seek=64 2>/dev/null

expect "no --kernel" 2 "kernel PATH is required" -- run
expect "unknown option" 2 "unknown or incomplete option '--frobnicate'" -- run --kernel "$PROBE" --frobnicate
expect "missing option value" 2 "unknown or incomplete option" -- run --kernel
expect "--cpus 0" 2 "cpus '0'" -- run --kernel "$PROBE" --cpus 0
expect "--cpus 999" 2 "cpus '999'" -- run --kernel "$PROBE" --cpus 999
expect "--cpus abc" 2 "cpus 'abc'" -- run --kernel "$PROBE" --cpus abc
expect "--memory garbage" 2 "memory 'lots'" -- run --kernel "$PROBE" --memory lots
expect "--memory too small" 2 "too small" -- run --kernel "$PROBE" --memory 1M
expect "--memory too large" 2 "more than this host" -- run --kernel "$PROBE" --memory 64T
expect "--nested maybe" 2 "nested 'maybe'" -- run --kernel "$PROBE" --nested maybe
expect "--console bad" 2 "console 'tty9'" -- run --kernel "$PROBE" --console tty9
expect "stray argument" 2 "unexpected argument" -- run --kernel "$PROBE" extra
expect "unknown command" 2 "unknown command 'frob'" -- frob

if [ ! -w /dev/kvm ]; then
	echo "skip: /dev/kvm not usable; the cases that load a kernel need it"
else
	expect "missing kernel (kvm)" 1 "kernel '/nonexistent/bzImage': No such file" -- run --kernel /nonexistent/bzImage
	expect "empty kernel (kvm)" 1 "file is empty" -- run --kernel "$T/empty"
	expect "random bytes (kvm)" 1 "not a kernel image" -- run --kernel "$T/random"
	expect "shell script (kvm)" 1 "not a kernel image" -- run --kernel "$T/script"
	expect "truncated ELF (kvm)" 1 "truncated" -- run --kernel "$T/truncated.elf"
	expect "directory as kernel (kvm)" 1 "not a regular file" -- run --kernel "$T"
	expect "missing initrd (kvm)" 1 "initrd '/nonexistent/initrd'" -- run --kernel "$PROBE" --initrd /nonexistent/initrd
	expect "initrd too big (kvm)" 1 "does not fit in guest memory" -- run --kernel "$PROBE" --initrd "$T/big.img" --memory 32M
	expect "console file in missing dir (kvm)" 1 "console file" -- run --kernel "$PROBE" --console file:/nonexistent/dir/log
	if [ -n "$LINUX" ]; then
		expect "Linux in 16M (kvm)" 1 "needs .* MiB of memory" -- run --kernel "$LINUX" --memory 16M
	fi
	# Only where this host's KVM cannot offer VT-x/AMD-V (as on kvm_pvm).
	if ! grep -q -w -e svm -e vmx /proc/cpuinfo; then
		# This one error lists each failing readiness check with its fix.
		timeout 30 "$NESTVM" run --kernel "$PROBE" --nested on >"$T/out" 2>"$T/err" </dev/null
		rc=$?
		if [ "$rc" -eq 1 ] && grep -q "neither VT-x nor AMD-V" "$T/err" &&
			grep -q "kvm-module: kvm_pvm.*fix:" "$T/err" || { [ "$rc" -eq 1 ] && [ ! -d /sys/module/kvm_pvm ]; }; then
			pass=$((pass + 1))
			echo "ok   --nested on without VT-x/AMD-V (kvm): exit 1, $(grep -c fix: "$T/err") failing checks listed"
		else
			fail=$((fail + 1))
			echo "FAIL --nested on without VT-x/AMD-V: exit $rc"
			sed 's/^/     | /' "$T/err"
		fi
	fi

	# Signals: a Debian kernel on this KVM runs for a long time; stop it.
	if [ -n "$LINUX" ]; then
		for sig in 15 2; do
			"$NESTVM" run --kernel "$LINUX" --memory 256M --cpus 2 --console none \
				--cmdline "console=ttyS0" </dev/null >"$T/out" 2>"$T/err" &
			pid=$!
			sleep 2
			kill -$sig $pid
			want=$((128 + sig))
			t0=$(date +%s)
			wait $pid
			rc=$?
			if [ "$rc" -eq "$want" ] && ! grep -q -i "sanitizer\|runtime error" "$T/err"; then
				pass=$((pass + 1))
				echo "ok   signal $sig stops a running guest: exit $rc in $(($(date +%s) - t0)) s"
			else
				fail=$((fail + 1))
				echo "FAIL signal $sig: exit $rc (want $want)"
				sed 's/^/     | /' "$T/err" | head -20
			fi
		done
	fi
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
