#!/bin/sh
# `nestvm nested status` on this machine: when /dev/kvm is backed by kvm_pvm
# (the development and CI machines), it must exit non-zero and name PVM as
# the reason; --json must agree. On other hosts it checks the report is
# consistent with its exit status.
set -u
cd "$(dirname "$0")/../.."
NESTVM=${NESTVM:-build/asan/nestvm}
. tests/lib/check.sh

out=$($NESTVM nested status 2>&1)
rc=$?
json=$($NESTVM nested status --json 2>&1)
jrc=$?
echo "$out" | sed 's/^/     | /'
check "exit status is 0 or 1 (rc=$rc)" [ "$rc" -le 1 ]
check "--json exit status matches" [ "$rc" -eq "$jrc" ]
has() { printf '%s\n' "$1" | grep -q "$2"; }
if [ "$rc" -eq 0 ]; then
	check "--json says available" has "$json" '"nesting_available": true'
else
	check "--json says unavailable" has "$json" '"nesting_available": false'
	check "a failing check has a fix" has "$json" '"fix"'
fi
if [ -d /sys/module/kvm_pvm ]; then
	check "PVM host: exits non-zero" [ "$rc" -ne 0 ]
	check "PVM host: names kvm_pvm as the reason" has "$out" 'FAIL.*kvm-module.*kvm_pvm'
fi
check "unknown option is a usage error" sh -c "$NESTVM nested status --bogus >/dev/null 2>&1; [ \$? -eq 2 ]"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
