# SPDX-License-Identifier: MIT
#
# check NAME COMMAND...: run COMMAND, print "ok   NAME" or "FAIL NAME" and
# count it in $pass or $fail (the runner's "N passed, N failed" line).
pass=0
fail=0
check() {
	name=$1
	shift
	if "$@"; then pass=$((pass + 1)); echo "ok   $name"; else fail=$((fail + 1)); echo "FAIL $name"; fi
}
