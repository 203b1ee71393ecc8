# SPDX-License-Identifier: MIT
#
# L1 part of migrate-linux: the same as snapshot-linux's (a Linux guest
# hypervisor whose own nestvm runs one L2 probe, test=memgen, its console
# on the L1's; nestlab.l2=PASSES-CPUS-MIB), which it runs.

exec sh /l1parts/snapshot-linux.sh
