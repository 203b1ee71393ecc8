#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Writes src/startup.order: the functions a start of nestvm runs, which the
# static release link puts first, next to each other (lld's
# --symbol-ordering-file; Makefile, STATIC). The kernel maps the 64 KiB
# around each page of code a process touches, so the code of a start spread
# over a 1.2 MiB text costs all of it in RSS; gathered, ~0.3 MiB.
#
# What a start runs is learnt by single-stepping (bench/steptrace.c) the
# release nestvm through the starts bench/boot.sh measures (the probe's
# test=exit with 1 and 2 vCPUs) and `nestvm version`, every thread and the
# teardown child included, and mapping each instruction's address to its
# function in the static binary's symbol table (glibc's functions too).
# Run it again when the start-up path changes; an outdated list costs RSS,
# never correctness (a name no longer there is ignored).
#
# Usage: bench/startup-order.sh   (after `make release guests`)
# Environment: BUILD (build), NESTVM (BUILD/release/nestvm, linked
#   statically), OUT (src/startup.order). Needs /dev/kvm and ptrace.

set -euo pipefail

cd "$(dirname "$0")/.."

BUILD=${BUILD:-build}
NESTVM=${NESTVM:-$BUILD/release/nestvm}
OUT=${OUT:-src/startup.order}
ELF=$BUILD/guest/probe.elf

die() {
	echo "bench/startup-order.sh: $*" >&2
	exit 1
}

[[ -x $NESTVM ]] || die "$NESTVM is missing: run 'make release'"
[[ -f $ELF ]] || die "$ELF is missing: run 'make guests'"
# A static, non-PIE binary: the addresses traced are its symbols' addresses.
readelf -lW "$NESTVM" | grep -q INTERP && die "$NESTVM is not linked statically (make STATIC=1)"
readelf -hW "$NESTVM" | grep -q 'Type:.*EXEC' || die "$NESTVM is position-independent"

STEPTRACE=$BUILD/bench/steptrace
if [[ ! -x $STEPTRACE || bench/steptrace.c -nt $STEPTRACE ]]; then
	mkdir -p "$(dirname "$STEPTRACE")"
	cc -std=gnu11 -O2 -Wall -Wextra -Werror -o "$STEPTRACE" bench/steptrace.c ||
		die "cannot build $STEPTRACE"
fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

trace() { # NAME ARG...: single-step one nestvm command, which must exit 0
	local name=$1
	shift
	"$STEPTRACE" "$WORK/$name.addr" -- "$NESTVM" "$@" </dev/null >"$WORK/$name.log" 2>&1 ||
		{ cat "$WORK/$name.log" >&2; die "nestvm $* failed under steptrace"; }
}
trace version version
for cpus in 1 2; do
	trace run$cpus run --kernel "$ELF" --cmdline test=exit --memory 256M --cpus $cpus --console none
done

# Function symbols "start end name" and addresses "addr", in decimal (mawk
# has no hex), merged in address order, symbols before addresses at a tie;
# aliases (names at one address) are all kept.
nm -S --defined-only "$NESTVM" | while read -r addr size type name; do
	[[ -n $name && $type == [tTwWi] ]] || continue
	echo "$((16#$addr)) 0 $((16#$addr + 16#$size)) $name"
done >"$WORK/syms"
sort -u "$WORK"/*.addr | while read -r addr; do
	echo "$((16#$addr)) 1"
done >"$WORK/addrs"
sort -n -k1,1 -k2,2 "$WORK/syms" "$WORK/addrs" | awk '
	$2 == 0 {
		if ($1 != start) { start = $1; end = 0; n = 0 }
		if ($3 > end) end = $3
		names[++n] = $4
		next
	}
	$1 < end { for (i = 1; i <= n; i++) used[names[i]] = 1 }
	END { for (f in used) print f }' | LC_ALL=C sort >"$WORK/order"

[[ -s $WORK/order ]] || die "no function found (is $NESTVM stripped?)"
{
	echo "# The functions a start of nestvm runs, put first by the static release"
	echo "# link (Makefile, STATIC). Made by bench/startup-order.sh: do not edit."
	cat "$WORK/order"
} >"$OUT"
echo "bench/startup-order.sh: $(wc -l <"$WORK/order") functions in $OUT"
