#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# demo.sh — `make demo`, nestvm's main job: L0 -> L1 (Linux with KVM and
# nestvm inside) -> L2 (probe guests, and the Debian kernel).
#
# On a host whose KVM can nest (`nestvm nested status` passes), nestvm runs
# the L1 directly here. Elsewhere — like the development machines, whose
# kvm_pvm cannot nest — the same L1 runs inside the lab (QEMU TCG emulating
# AMD-V), with nestvm on the lab's KVM. Prints what ran at each level and how
# long it took.

set -u
LAB_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$LAB_SRC/../.." && pwd)
NESTVM=$ROOT/build/release/nestvm

echo "demo: L0 is $(uname -n), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)"
STATUS=$ROOT/build/demo-nested-status.txt
mkdir -p "$ROOT/build"
if "$NESTVM" nested status >"$STATUS" 2>&1; then
	echo "demo: this host can nest: running the L1 directly on its KVM"
	"$LAB_SRC/lab.sh" --build-only || exit 125
	vmlinux=$(ls "$ROOT"/build/lab/vmlinux-* | grep -v '\.key$' | head -1)
	start=$(date +%s.%N)
	"$NESTVM" run --nested on --kernel "$vmlinux" --initrd "$ROOT/build/lab/l1-nested.cpio" \
		--cpus 2 --memory 1G \
		--cmdline "console=ttyS0 quiet panic=-1 nestlab.l1=nested nestlab.l2=linux" </dev/null
	rc=$?
	echo "demo: L1 ended with status $rc after $(echo "$(date +%s.%N) - $start" | bc) s"
	exit $rc
fi
echo "demo: this host cannot nest ('nestvm nested status' says why:)"
sed 's/^/demo:   /' "$STATUS" | grep -E 'FAIL|fix:' | head -6
echo "demo: running the L1 inside the lab instead (QEMU TCG with AMD-V as L0)"
exec "$LAB_SRC/lab.sh" --name demo --timeout 900 lab-selftest linux-boot nested:linux
