# SPDX-License-Identifier: MIT
# lab-timeout: 3600
# lab-budget: 10
#
# lab-flaky — wedges the lab in its first run only, for
# tests/lab/watchdog-test.sh: as lab-wedge, both lab vCPUs spin in the kernel
# and only lab.sh's budget of 10 s ends it (a lab failure, the vCPUs' RIPs
# named by kernel symbols). lab.sh then runs it once more in a fresh lab, with
# LAB_RETRY=1 (nestlab.retry=1 from lab.sh, through /init), and that run
# passes: a run that recovers from a lab failure.

. /lab/lib.sh

lab_pass_on_retry
n=$(nproc)
cpu=0
while [ $cpu -lt "$n" ]; do
	taskset -c $cpu dd if=/dev/zero of=/dev/null bs=32M 2>/dev/null &
	cpu=$((cpu + 1))
done
lab_info "first run (LAB_RETRY=${LAB_RETRY:-unset}): spinning in the kernel on $n CPUs; only the host's budget ends this"
wait
