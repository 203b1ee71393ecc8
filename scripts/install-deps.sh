#!/bin/sh
# Install the Debian packages nestvm's build, tests, lab and benchmarks need,
# with apt-get, and nothing else. Only what is missing is installed, with a
# one-line notice; apt's own output goes to build/install-deps.log and is
# shown only when the installation fails. Does nothing when all is there.
#
# usage: scripts/install-deps.sh [EXTRA-PACKAGE...]
set -eu
cd "$(dirname "$0")/.."

# A fresh Debian 12 (debootstrap minbase + build-essential git ca-certificates:
# scripts/check-fresh-root.sh) lacks all of these. Not obvious: procps (ps, in
# tests/integration/manager.sh), libclang-rt-dev (clang's libFuzzer and ASan
# runtimes for `make fuzz`: only recommended by clang), bc (tests/lab/demo.sh),
# libglib2.0-dev (libslirp's pkg-config file requires glib-2.0's), dropbear-bin (the
# lab's exec:ssh compares nestvm exec with ssh into the same guest), lld (the static
# release link lays out the code a start runs first: Makefile, STATIC).
PKGS="build-essential clang lld libclang-rt-dev libcmocka-dev libjansson-dev qemu-system-x86
busybox-static linux-image-cloud-amd64 cpio lz4 xz-utils kmod acpica-tools liburing-dev
libseccomp-dev libssl-dev libslirp-dev libglib2.0-dev pkg-config bc procps dropbear-bin $*"

missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	if ! command -v sudo >/dev/null; then
		echo "install-deps: missing Debian packages:$missing; install them as root" \
			"(apt-get install$missing) or run this as root" >&2
		exit 1
	fi
	SUDO="sudo"
fi
mkdir -p build
log=build/install-deps.log
start=$(date +%s)
echo "install-deps: installing the missing Debian packages:$missing (log: $log)"
if ! { $SUDO apt-get update -q &&
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing; } \
	>"$log" 2>&1; then
	tail -n 20 "$log" >&2
	echo "install-deps: apt-get failed (above; whole log: $log)" >&2
	exit 1
fi
echo "install-deps: done in $(($(date +%s) - start)) s"
