# SPDX-License-Identifier: MIT
#
# exec-lib.sh — what exec and net:nested share (not a scenario): nestvm exec
# and nestvm cp into an L2 Linux (VM l2 of the L1's own nestvm, with the
# agent) through the L1's agent, over the L1's vsock socket. Sourced after
# /lab/lib.sh with NV (nestvm) and D (a scratch directory) set and say()
# defined; $D/data holds $size random bytes whose sha256 is $want.

case ${0##*/} in
exec-lib.sh) echo "exec-lib.sh is sourced by the exec and net scenarios, not run"; exit 2 ;;
esac

# stat_of FILE KEY: KEY's value in the --stats line of FILE.
stat_of() {
	lab_word_value "$2" "$(grep 'nestvm exec: stats' "$1" | tail -n 1)"
}

# median FILE KEY: the median of KEY over the --stats lines in FILE.
median() {
	grep 'nestvm exec: stats' "$1" | while read -r line; do
		lab_word_value "$2" "$line"
	done | sort -n | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'
}

# exec_l2_checks SOCK: checks l2-first-contact, l2-status, l2-stdin, l2-cp,
# l2-pty and l2-chained (`nestvm exec L1 -- nestvm exec l2`, the L1's
# NESTVM_HOME being /tmp/nestvm); metrics l2_first_contact_s,
# l2_first_byte_ms, l2_in_MBps. 1 when the L2's agent never answered.
exec_l2_checks() {
	_x() {
		_s=$1
		shift
		"$NV" exec --vsock-socket "$_s" "$@"
	}
	t0=$(lab_now_cs)
	if ! _x "$1" --wait 400 l2 -- true </dev/null 2>$D/err; then
		say fail l2-first-contact "$(cat $D/err)"
		return 1
	fi
	say ok l2-first-contact "after $(lab_secs $(($(lab_now_cs) - t0))) s"
	lab_metric l2_first_contact_s "$(lab_secs $(($(lab_now_cs) - t0)))"
	_x "$1" l2 -- sh -c 'echo l2-out; exit 5' </dev/null >$D/o 2>$D/e
	rc=$?
	[ $rc = 5 ] && [ "$(cat $D/o)" = l2-out ] && say ok l2-status 5 || say fail l2-status "rc=$rc $(cat $D/e)"
	for _i in 1 2 3 4 5; do
		_x "$1" --stats l2 -- echo hi </dev/null >/dev/null 2>>$D/l2.lat
	done
	_x "$1" --stats l2 -- sha256sum <$D/data >$D/o 2>$D/l2in.stats
	[ "$(cut -c1-64 $D/o)" = "$want" ] && say ok l2-stdin "$size bytes" || say fail l2-stdin "$(cat $D/o)"
	lab_metrics "l2_first_byte_ms=$(median $D/l2.lat first_byte_ms)" "l2_in_MBps=$(stat_of $D/l2in.stats MBps)"
	rm -f $D/back
	"$NV" cp --vsock-socket "$1" $D/data l2:/tmp/data 2>$D/e &&
		"$NV" cp --vsock-socket "$1" l2:/tmp/data $D/back 2>>$D/e
	[ "$(sha256sum <$D/back | cut -c1-64)" = "$want" ] && say ok l2-cp "in and back" || say fail l2-cp "$(cat $D/e)"
	_x "$1" -t l2 -- tty </dev/null >$D/o 2>$D/e
	grep -q '^/dev/pts/' $D/o && say ok l2-pty "$(tr -d '\r' <$D/o)" || say fail l2-pty "$(cat $D/o $D/e)"
	_x "$1" -e NESTVM_HOME=/tmp/nestvm -- /l1/bin/nestvm exec l2 -- sha256sum <$D/data >$D/o 2>$D/e
	[ "$(cut -c1-64 $D/o)" = "$want" ] && say ok l2-chained "exec L1 -- nestvm exec l2" ||
		say fail l2-chained "$(cat $D/o $D/e)"
	return 0
}
