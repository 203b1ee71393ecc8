#!/bin/sh
# Install the Debian packages nestvm's build, tests, lab and benchmarks need.
# Idempotent: does nothing when everything is already there.
set -eu

PKGS="build-essential clang libcmocka-dev libjansson-dev qemu-system-x86 busybox-static
linux-image-cloud-amd64 cpio lz4 xz-utils kmod acpica-tools liburing-dev pkg-config"

missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "install-deps: installing:$missing"
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing
