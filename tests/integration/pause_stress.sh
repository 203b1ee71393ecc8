#!/bin/sh
# Pause/resume stress on a managed VM (issue: pause lost its wake-up and the
# monitor wedged for good). A test=idle probe guest with 1 and with 4 vCPUs
# (halted vCPUs stay in KVM_RUN, where a lost kick is never made up for);
# CLIENTS parallel clients send batches of pause/resume pairs to its control
# socket for SECONDS. Every request must be answered "ok", and afterwards the
# VM must answer `show` at once and die on `kill`.
# Before the fix this wedged within seconds: a resume followed at once by a
# pause let a vCPU clear the pause's immediate_exit and sleep in KVM_RUN.
# Then PAUSE_STRESS_CYCLES pause/resume cycles (default 1,000; the issue's
# 100,000 with `make stress-pause`) on a busy 2-vCPU guest (test=memgen:
# every page written while the other vCPU computes, when the probe has it),
# one client, each pause's quiesce_us collected: no hang, every reply ok,
# the guest's result still right, and the pause latency's median and 99th
# percentile printed.
# Prints "N passed, N failed" last; exit 77 without /dev/kvm.
SECONDS_EACH=${PAUSE_STRESS_SECONDS:-8}
CYCLES=${PAUSE_STRESS_CYCLES:-1000}
CLIENTS=${PAUSE_STRESS_CLIENTS:-3}
BATCH=100
NAME_OF_TEST=pause
. "$(dirname "$0")/../lib/manager.sh"

# One client: batches of BATCH pause/resume pairs until $1 (epoch seconds).
# Writes "<requests> <ok replies>" to $2.
client() {
	sent=0 good=0
	while [ "$(date +%s)" -lt "$1" ]; do
		i=0
		while [ $i -lt $BATCH ]; do
			echo '{"cmd":"pause"}'
			echo '{"cmd":"resume"}'
			i=$((i + 1))
		done >"$2.req"
		timeout 60 "$NESTVM" api "$3" <"$2.req" >"$2.out" 2>&1
		rc=$?
		sent=$((sent + 2 * BATCH))
		n=$(grep -c '"ok": *true' "$2.out")
		good=$((good + n))
		if [ "$n" -ne $((2 * BATCH)) ] && [ ! -f "$2.err" ]; then
			{
				echo "a batch: api exit $rc, $n of $((2 * BATCH)) ok; first other line:"
				grep -v -m1 '"ok": *true' "$2.out"
			} >"$2.err"
		fi
	done
	echo "$sent $good" >"$2"
}

for cpus in 1 4; do
	vm=p$cpus
	if ! timeout 30 "$NESTVM" new $vm --kernel "$PROBE" --cmdline test=idle --memory 16M \
		--cpus $cpus >"$T/out" 2>&1 || ! timeout 30 "$NESTVM" start $vm >>"$T/out" 2>&1; then
		bad "$cpus vCPUs: new/start failed: $(tail -n 3 "$T/out")"
		continue
	fi
	rm -f "$T"/c*
	end=$(($(date +%s) + SECONDS_EACH))
	pids=""
	c=1
	while [ $c -le $CLIENTS ]; do
		client $end "$T/c$c" $vm &
		pids="$pids $!"
		c=$((c + 1))
	done
	wait $pids
	sent=0 good=0
	c=1
	while [ $c -le $CLIENTS ]; do
		read -r s g <"$T/c$c" || { s=0 g=0; }
		sent=$((sent + s)) good=$((good + g))
		[ -f "$T/c$c.err" ] && sed "s/^/     | client $c: /" "$T/c$c.err"
		c=$((c + 1))
	done
	if [ "$sent" -gt 0 ] && [ "$good" -eq "$sent" ]; then
		ok "$cpus vCPUs: $CLIENTS clients, $((sent / 2)) pause/resume pairs in ${SECONDS_EACH} s, all answered ok"
	else
		bad "$cpus vCPUs: $good of $sent requests answered ok"
	fi
	t0=$(date +%s%N)
	if timeout 5 "$NESTVM" show $vm >"$T/out" 2>&1 && grep -q '^state: *running' "$T/out"; then
		ok "$cpus vCPUs: show answers afterwards: running ($((($(date +%s%N) - t0) / 1000000)) ms)"
	else
		bad "$cpus vCPUs: show after the stress: $(head -n 3 "$T/out")"
	fi
	if timeout 10 "$NESTVM" kill $vm >"$T/out" 2>&1; then
		ok "$cpus vCPUs: kill works"
	else
		bad "$cpus vCPUs: kill after the stress: $(head -n 3 "$T/out")"
	fi
done

# ---- latency: CYCLES pause/resume pairs on a busy guest ----
if grep -q "test=memgen" guest/probe/*.c 2>/dev/null; then
	busy="test=memgen passes=16000000"
else
	busy="test=idle echo=on" # polls its UART: exits all the time
fi
if timeout 30 "$NESTVM" new busy --kernel "$PROBE" --cmdline "$busy" --memory 64M --cpus 2 \
	>"$T/out" 2>&1 && timeout 30 "$NESTVM" start busy >>"$T/out" 2>&1; then
	done_pairs=0 good=0
	: >"$T/lat"
	t0=$(date +%s)
	while [ "$done_pairs" -lt "$CYCLES" ]; do
		n=$((CYCLES - done_pairs))
		[ "$n" -gt 500 ] && n=500
		i=0
		while [ $i -lt "$n" ]; do
			echo '{"cmd":"pause"}'
			echo '{"cmd":"resume"}'
			i=$((i + 1))
		done >"$T/lreq"
		timeout 120 "$NESTVM" api busy <"$T/lreq" >"$T/lout" 2>&1
		good=$((good + $(grep -c '"ok": *true' "$T/lout")))
		sed -n 's/.*"quiesce_us": *\([0-9]*\).*/\1/p' "$T/lout" >>"$T/lat"
		done_pairs=$((done_pairs + n))
	done
	secs=$(($(date +%s) - t0))
	if [ "$good" -eq $((2 * CYCLES)) ]; then
		ok "busy guest: $CYCLES pause/resume cycles in ${secs} s, all answered ok"
	else
		bad "busy guest: $good of $((2 * CYCLES)) requests answered ok; the last batch's other answers:
$(grep -v '"ok": *true' "$T/lout" | sort | uniq -c | head -n 5)"
	fi
	n=$(wc -l <"$T/lat")
	if [ "$n" -eq "$CYCLES" ]; then
		sort -n "$T/lat" >"$T/lat.sorted"
		med=$(sed -n "$(((n + 1) / 2))p" "$T/lat.sorted")
		p99=$(sed -n "$(((n * 99 + 99) / 100))p" "$T/lat.sorted")
		max=$(tail -n 1 "$T/lat.sorted")
		ok "pause latency over $n pauses: median ${med} us, p99 ${p99} us, max ${max} us"
	else
		bad "pause latency: $n of $CYCLES pauses reported quiesce_us"
	fi
	if timeout 5 "$NESTVM" show busy >"$T/out" 2>&1 && grep -q '^state: *running' "$T/out" &&
		! grep -q "FAIL" "$NESTVM_HOME/busy/console.log"; then
		ok "busy guest: running and not failing after the cycles"
	else
		bad "busy guest after the cycles: $(head -n 3 "$T/out"; grep FAIL "$NESTVM_HOME/busy/console.log")"
	fi
	timeout 10 "$NESTVM" kill busy >/dev/null 2>&1
else
	bad "busy guest: new/start failed: $(tail -n 3 "$T/out")"
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
