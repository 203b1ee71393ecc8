# SPDX-License-Identifier: MIT
# lab-timeout: 3600
# lab-budget: 10
#
# lab-wedge — wedges the lab on purpose, for tests/lab/watchdog-test.sh: both
# lab vCPUs spin in the kernel (dd zeroing 32 MiB buffers from /dev/zero, one
# per CPU) and the scenario never ends nor prints again. The in-lab limit is
# an hour, so only lab.sh's budget of 10 s, counted on the host, can end it:
# a lab failure with the vCPUs' registers resolved to kernel symbols. Not a
# test: it always ends in a lab failure.

. /lab/lib.sh

n=$(nproc)
cpu=0
while [ $cpu -lt "$n" ]; do
	taskset -c $cpu dd if=/dev/zero of=/dev/null bs=32M 2>/dev/null &
	cpu=$((cpu + 1))
done
lab_info "spinning in the kernel on $n CPUs; only the host's budget ends this"
wait
