#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# demo.sh — `make demo`: in the lab (QEMU TCG with AMD-V), nestvm boots Linux
# from the bzImage and from the vmlinux (PVH), then boots a Linux L1 with
# --nested on in which a second nestvm runs probe guests as L2. Prints the
# lab console as it goes and a timing summary at the end.

LAB_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
exec "$LAB_SRC/lab.sh" --name demo --timeout 900 lab-selftest linux-boot nested
