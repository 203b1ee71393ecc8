# shellcheck shell=sh
# hostcaps.sh — what this host can do, probed in seconds, for the
# integration tests (sourced). Machines differ from one day to the next:
# io_uring may be ENOSYS, a guest's VMMCALL at CPL0 may never return (KVM's
# PVM mode), THP may be off. A test asks here, and when the host lacks what
# a case needs, reports that case as skipped with the reason:
#
#   skip_case NAME REASON    prints "skip NAME: REASON", counts it in $skipped
#
# Each probe caches its answer in the environment of the sourcing script.
# Probes use the nestvm binary under test ($NESTVM) and the probe guest, and
# tell a host that lacks a feature from a nestvm that fails: only the host's
# own answer (ENOSYS, EINVAL from io_uring_setup; a guest that does not come
# back from one hypercall while the same guest without it exits at once)
# counts as "lacking".

skipped=${skipped:-0}

skip_case() {
	skipped=$((skipped + 1))
	echo "skip $1: $2"
}

# hostcap_io_uring: 0 when nestvm can use io_uring here; otherwise 1 and
# $HOSTCAP_WHY says why (the kernel's error, as nestvm reports it).
hostcap_io_uring() {
	if [ -z "${HOSTCAP_IO_URING:-}" ]; then
		_hc=$(mktemp -d "${TMPDIR:-/tmp}/nestvm-hostcap.XXXXXX")
		dd if=/dev/zero of="$_hc/d.img" bs=1M count=0 seek=1 2>/dev/null
		timeout 10 "$NESTVM" run --kernel build/guest/probe.elf --cmdline test=exit \
			--memory 16M --disk "$_hc/d.img,io=uring" </dev/null >/dev/null 2>"$_hc/err"
		_rc=$?
		HOSTCAP_IO_URING_WHY=$(sed -n 's/.*\(io_uring unavailable: .*\)/\1/p' "$_hc/err" | head -n 1)
		if [ "$_rc" -eq 0 ]; then
			HOSTCAP_IO_URING=yes
		elif [ -n "$HOSTCAP_IO_URING_WHY" ]; then
			HOSTCAP_IO_URING=no
		else
			# nestvm failed for another reason: not the host's lack; let the
			# tests run and show the failure.
			HOSTCAP_IO_URING=yes
		fi
		rm -rf "$_hc"
	fi
	HOSTCAP_WHY="this host's kernel refuses io_uring (${HOSTCAP_IO_URING_WHY:-?}); the thread pool is tested instead"
	[ "$HOSTCAP_IO_URING" = yes ]
}

# hostcap_vmmcall_cpl0: 0 when a guest's VMMCALL/VMCALL at CPL0 returns here.
# On kvm_pvm it never does (the guest spins, no exit): one hypercall with a
# 5 s limit tells, where test=exit of the same image ends in milliseconds.
# Its vCPU thread may never come back from KVM_RUN, not even for the
# monitor's kick: LeakSanitizer's stop of every thread at exit then waits
# for it forever (seen once in 2026-12-07's make test: 7 minutes, the
# monitor spinning in sched_yield(), its tracer in wait4()), so no leak
# check here, and a KILL 2 s after the TERM in any case.
hostcap_vmmcall_cpl0() {
	if [ -z "${HOSTCAP_VMMCALL:-}" ]; then
		ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
			timeout -k 2 5 "$NESTVM" run --kernel build/guest/probe.elf --memory 16M \
			--cmdline "test=vmmcall iterations=1 force=on" </dev/null >/dev/null 2>&1
		_rc=$?
		if [ "$_rc" -eq 124 ] &&
			timeout 5 "$NESTVM" run --kernel build/guest/probe.elf --memory 16M \
				--cmdline test=exit </dev/null >/dev/null 2>&1; then
			HOSTCAP_VMMCALL=no
		else
			HOSTCAP_VMMCALL=yes
		fi
	fi
	HOSTCAP_WHY="a guest's VMMCALL at CPL0 never returns on this host's KVM (one hypercall did not come back in 5 s; kvm_pvm does this)"
	[ "$HOSTCAP_VMMCALL" = yes ]
}
