#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# soak.sh — the same lab scenarios, lab after lab: finds what fails rarely
# (an L1 triple fault, a wedged lab). Outside `make test` (`make lab-soak`).
#
# usage: tests/lab/soak.sh [-n LABS] [-t SECS] SCENARIO[:ARG]...
#   -n LABS   lab boots (default 10); each runs all the scenarios once
#   -t SECS   limit of one lab boot (lab.sh --timeout; default 900)
#
# Each lab's log is kept as build/lab/soak-I.log. Prints one line per lab,
# the per-scenario tally, and "soak: N passed, N failed, N lab failures"
# (a lab failure that lab.sh's one retry made up for counts there too).
# Exit status 0 if every lab passed, 1 otherwise.

set -u
LAB_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=${LAB_BUILD_DIR:-$(cd "$LAB_SRC/../.." && pwd)/build/lab}
labs=10 limit=900
while getopts n:t: o; do
	case $o in
	n) labs=$OPTARG ;;
	t) limit=$OPTARG ;;
	*) sed -n 's/^# usage: //p' "${BASH_SOURCE[0]}" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
[ $# -gt 0 ] && [[ $labs =~ ^[0-9]+$ && $limit =~ ^[0-9]+$ ]] || {
	sed -n 's/^# usage: //p' "${BASH_SOURCE[0]}" >&2
	exit 2
}

declare -A pass fail none
npass=0 nfail=0 nlab=0 t0=$SECONDS
for i in $(seq 1 "$labs"); do
	s0=$SECONDS
	timeout -k 10 $((limit + 120)) "$LAB_SRC/lab.sh" --name "soak-$i" --timeout "$limit" "$@" \
		>"$OUT/soak-$i.out" 2>&1
	rc=$?
	retried=0
	while read -r name verdict _ why; do
		[ "$name" = lab ] && continue
		[[ $why == *"retried after a LAB FAILURE"* ]] && retried=1
		case $verdict in
		pass) pass[$name]=$((${pass[$name]:-0} + 1)) ;;
		fail) fail[$name]=$((${fail[$name]:-0} + 1)) ;;
		*) none[$name]=$((${none[$name]:-0} + 1)) ;;
		esac
	done < <(cat "$OUT/soak-$i.results" 2>/dev/null)
	[ "$rc" = 0 ] && [ $retried -eq 1 ] && rc=125 # a wedge the retry hid
	case $rc in
	0) npass=$((npass + 1)); what=pass ;;
	125) nlab=$((nlab + 1)); what="LAB FAILURE" ;;
	*) nfail=$((nfail + 1)); what="fail (exit $rc)" ;;
	esac
	echo "soak: lab $i/$labs: $what in $((SECONDS - s0)) s (build/lab/soak-$i.log)"
	[ "$rc" = 0 ] || grep -E 'FAIL|lab vCPU|LAB FAILURE|timeout' "$OUT/soak-$i.out" | head -n 12 | sed 's/^/soak:   /'
done
for name in $(printf '%s\n' "${!pass[@]}" "${!fail[@]}" "${!none[@]}" | sort -u); do
	echo "soak: $name: ${pass[$name]:-0} passed, ${fail[$name]:-0} failed, ${none[$name]:-0} did not run to a result"
done
echo "soak: $npass passed, $nfail failed, $nlab lab failures ($labs labs, $((SECONDS - t0)) s)"
[ $npass -eq "$labs" ]
