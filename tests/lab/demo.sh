#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# demo.sh — `make demo`: show nestvm booting Linux as a nested guest in the
# lab (QEMU TCG with AMD-V), from the bzImage and from the vmlinux (PVH).
# Prints the lab console as it goes and a timing summary at the end.

LAB_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
exec "$LAB_SRC/lab.sh" --name demo --timeout 900 lab-selftest linux-boot
