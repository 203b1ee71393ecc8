#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# lab.sh — run scenarios in the lab: a Debian kernel under QEMU TCG emulating
# AMD-V (SVM + NPT), whose own KVM (kvm-amd nested=1) runs nestvm. This host's
# /dev/kvm cannot boot Linux or nest (tests/lab/README.md), the lab can.
#
# usage: tests/lab/lab.sh [--timeout SECS] [--boot-timeout SECS] [--keep]
#                         [--name NAME] SCENARIO[:ARG]...
#        tests/lab/lab.sh --build-only
#
#   SCENARIO      tests/lab/scenarios/SCENARIO.sh, run inside the lab with ARG
#   --timeout     limit of the whole run, all lab boots (default 900)
#   --boot-timeout  limit from QEMU start to LAB-READY (default 60; a lab
#                 is ready in 5 to 12 s; 60 s more for the boot that sends
#                 the kernel's symbols, once per kernel and build directory)
#   --keep        keep the initramfs staging trees under build/lab/stage/
#   --build-only  build build/lab/lab.cpio (and build/lab/l1-nested.cpio, the
#                 nested L1's initramfs) and stop
#   --name        name of the log build/lab/NAME.log and results
#                 build/lab/NAME.results (default: from the scenarios)
#
# One lab boot runs all the scenarios in order, each under two limits: its
# own inside the lab ("# lab-timeout: SECS" in the scenario, or "# lab-timeout
# ARG: SECS" for SCENARIO:ARG; default 300 s),
# after which the lab kills it and reports a test failure, and a budget on
# the host counted from its LAB-BEGIN line ("# lab-budget: SECS", default
# the lab's limit + 30 s) for a lab that wedges: then lab.sh dumps the lab's
# vCPUs (registers in the log, RIPs resolved to the lab kernel's symbols),
# kills QEMU, reports that scenario as a lab failure and runs the ones after
# it in a fresh lab boot. A lab that dies during a scenario, or goes silent
# (no console line, not even the heartbeat, for SILENCE_S), is handled the
# same way, and so is a scenario that fails after an L1 triple fault of the
# lab's own (the lab's /init says so: LAB-ERROR). A scenario cut by a lab
# failure is run once more, first in that fresh lab boot: its verdict is the
# retry's, noted "retried after a LAB FAILURE: REASON" (each scenario once,
# twice when the lab named each of its failures itself: LAB-ERROR or a lab
# kernel panic; LAB_RETRIES retries at most per run, default 3). The lab initramfs
# (build/lab/lab.cpio) is rebuilt only when one of its inputs changed: busybox,
# the kernel and its kvm modules, build/release/nestvm and the shared
# libraries it needs, build/guest/*,
# guest/probe/memgen_expect.c (built static as /lab/bin/memgen-expect),
# src/arch/x86/layout.h (for tools/ptwalk.c) and the files under tests/lab/.
#
# Exit status:
#   0    every scenario passed or was skipped
#   1    a scenario failed (a test failure)
#   2    bad command line
#   125  lab failure: the initramfs could not be built, QEMU died or timed
#        out, a scenario overran its budget, the lab went silent, or a lab
#        boot never reached LAB-READY or LAB-END. A lab boot in which no
#        scenario began is retried once, and so is a scenario cut by a lab
#        failure (lab runs are not perfectly repeatable; LAB_RETRIES): when
#        its retry gets a verdict, that lab failure no longer counts here.
#
# Results (build/lab/NAME.results): a line "SCENARIO VERDICT SECONDS [WHY]"
# per scenario, VERDICT pass, fail, skip, lab (a lab failure: SECONDS on the
# host from LAB-BEGIN to the cut, WHY with the vCPUs' places) or none (did
# not run), WHY ending "retried after a LAB FAILURE: REASON" for a retried
# scenario, then "lab ok" or "lab failure REASON | REASON...".
#
# Environment: LAB_KERNEL (default the newest /boot/vmlinuz-*; one unpacked
# with dpkg -x as ROOT/boot/vmlinuz-R takes its modules from ROOT/lib/modules/R), LAB_QEMU,
# LAB_BUSYBOX (a static busybox, default /bin/busybox), LAB_NESTVM (default
# build/release/nestvm), LAB_KVM (kvm parameters for the lab, e.g.
# "tdp_mmu=0"), LAB_KVM_AMD (more kvm-amd parameters for the lab,
# e.g. "vgif=0 vls=0"), LAB_TCG (QEMU's -accel tcg options, default
# thread=multi; thread=single runs both lab vCPUs on one host thread),
# LAB_SMP (the lab's vCPUs, default 2), LAB_TICK (the lab kernel's timer
# tick: periodic, the default, or oneshot, the kernel's own default),
# LAB_CPU (QEMU's -cpu, default EPYC,+svm,+npt), LAB_CMDLINE (more words
# for the lab kernel's command line, e.g. tsc=reliable), LAB_BUILD_DIR (default build/lab), LAB_SILENCE_S
# (SILENCE_S, for tests/lab/watchdog-test.sh; the heartbeat then beats
# SILENCE_S / 5 s apart, at most 5 s), LAB_RETRIES (retries after a lab
# failure, at most, per run; default 3).

set -u -o pipefail
export LC_ALL=C

readonly EXIT_PASS=0 EXIT_FAIL=1 EXIT_USAGE=2 EXIT_LAB=125

LAB_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP=$(cd "$LAB_SRC/../.." && pwd)
OUT=${LAB_BUILD_DIR:-$TOP/build/lab}
QEMU=${LAB_QEMU:-qemu-system-x86_64}
BUSYBOX=${LAB_BUSYBOX:-/bin/busybox}
NESTVM=${LAB_NESTVM:-$TOP/build/release/nestvm}
GUEST_DIR=$TOP/build/guest
MEMGEN_EXPECT_SRC=$TOP/guest/probe/memgen_expect.c
DNS_STUB_SRC=$LAB_SRC/tools/dns_stub.c
PTWALK_SRC=$LAB_SRC/tools/ptwalk.c

# What the lab machine is (tests/lab/README.md). LAB_TCG: QEMU's TCG
# accelerator options (thread=multi: one host thread per lab vCPU;
# thread=single: one host thread for all, round-robin); LAB_SMP: the lab's
# vCPUs; LAB_CPU: QEMU's -cpu (QEMU's TCG also offers vgif: +vgif gives
# the lab's KVM vgif=1; tried against the L2-Linux crash, no workaround).
LAB_TCG=${LAB_TCG:-thread=multi}
LAB_SMP=${LAB_SMP:-2}
LAB_TICK=${LAB_TICK:-periodic}
LAB_CPU=${LAB_CPU:-EPYC,+svm,+npt}
if [[ ! $LAB_TCG =~ ^[a-z0-9_=,-]+$ ]]; then
	echo "lab: bad LAB_TCG '$LAB_TCG' (QEMU's -accel tcg options, e.g. thread=single)" >&2
	exit $EXIT_USAGE
fi
if [[ ! ${LAB_CMDLINE:-} =~ ^[A-Za-z0-9_.=,:\ -]*$ ]]; then
	echo "lab: bad LAB_CMDLINE '$LAB_CMDLINE' (lab kernel words, e.g. tsc=reliable)" >&2
	exit $EXIT_USAGE
fi
if [[ ! $LAB_CPU =~ ^[A-Za-z0-9_.=,+-]+$ ]]; then
	echo "lab: bad LAB_CPU '$LAB_CPU' (QEMU's -cpu, e.g. EPYC,+svm,+npt,+vgif)" >&2
	exit $EXIT_USAGE
fi
if [[ ! $LAB_TICK =~ ^(periodic|oneshot)$ ]]; then
	echo "lab: bad LAB_TICK '$LAB_TICK' (periodic or oneshot)" >&2
	exit $EXIT_USAGE
fi
if [[ ! $LAB_SMP =~ ^[1-8]$ ]]; then
	echo "lab: bad LAB_SMP '$LAB_SMP' (the lab's vCPUs, 1 to 8)" >&2
	exit $EXIT_USAGE
fi
# shellcheck disable=SC2054 # the commas belong to QEMU's option values
QEMU_MACHINE=(-accel "tcg,$LAB_TCG" -M q35 -cpu "$LAB_CPU" -m 2048 -smp "$LAB_SMP"
	-nodefaults -display none -serial stdio -no-reboot)
SCENARIO_TIMEOUT=300 # default limit of one scenario inside the lab
BUDGET_GRACE=30      # default budget on the host: the lab's limit + this
GAP_S=30             # LAB-READY or LAB-RESULT to the next LAB-BEGIN or LAB-END
END_GRACE=30         # LAB-END to QEMU exit
# While a scenario runs, the lab's /init prints "LAB-ALIVE UPTIME" every
# HEARTBEAT_S s, and a lab that shows no console line at all for SILENCE_S s
# is cut like one that overran its budget. A lab can go silent with both
# vCPUs halted (IF=1, in native_safe_halt: its timer interrupts lost in
# QEMU's TCG), which only the budget (510 s for nested then) ended. The
# heartbeat keeps time with the host even on a busy one: on 2 cores at load
# 7 to 12 (run-tests.sh's eight tests twice, nested four times more) the
# longest gap between console lines during a scenario was 5.6 s, and 7.2 s
# between heartbeats with both lab vCPUs spinning in the kernel (lab-flaky).
# SILENCE_S is eight times that: it never fires while the lab runs, and it
# costs a silent lab 60 s instead of its budget.
HEARTBEAT_S=5
SILENCE_S=60
LAB_RETRIES=${LAB_RETRIES:-3}
[[ $LAB_RETRIES =~ ^[0-9]+$ ]] || { echo "lab: LAB_RETRIES must be a number" >&2; exit $EXIT_USAGE; }
if [ -n "${LAB_SILENCE_S:-}" ]; then
	[[ $LAB_SILENCE_S =~ ^[0-9]+$ && $LAB_SILENCE_S -ge 5 ]] ||
		{ echo "lab: LAB_SILENCE_S must be 5 or more seconds" >&2; exit $EXIT_USAGE; }
	SILENCE_S=$LAB_SILENCE_S
	HEARTBEAT_S=$((SILENCE_S / 5 < 5 ? SILENCE_S / 5 : 5))
fi

timeout_s=900
boot_timeout_s=60
keep=0
build_only=0
name=
scenarios=()

log() { echo "lab: $*"; }

usage() {
	sed -n '/^# usage:/,/^# Environment/{/^# Environment/q;s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}" >&2
	exit $EXIT_USAGE
}

# ---------------------------------------------------------------- arguments

while [ $# -gt 0 ]; do
	case $1 in
	--timeout) timeout_s=${2:-}; shift 2 || usage ;;
	--timeout=*) timeout_s=${1#*=}; shift ;;
	--boot-timeout) boot_timeout_s=${2:-}; shift 2 || usage ;;
	--boot-timeout=*) boot_timeout_s=${1#*=}; shift ;;
	--keep) keep=1; shift ;;
	--build-only) build_only=1; shift ;;
	--name) name=${2:-}; shift 2 || usage ;;
	--name=*) name=${1#*=}; shift ;;
	-h | --help) usage ;;
	--) shift; scenarios+=("$@"); break ;;
	-*) echo "lab: unknown option $1" >&2; usage ;;
	*) scenarios+=("$1"); shift ;;
	esac
done
[[ $timeout_s =~ ^[0-9]+$ && $boot_timeout_s =~ ^[0-9]+$ ]] || usage
[ ${#scenarios[@]} -gt 0 ] || [ $build_only -eq 1 ] || usage
for s in "${scenarios[@]}"; do
	if [[ ! $s =~ ^[A-Za-z0-9_-]+(:[A-Za-z0-9_.-]+)?$ ]]; then
		echo "lab: bad scenario name '$s'" >&2
		exit $EXIT_USAGE
	fi
	if [ ! -f "$LAB_SRC/scenarios/${s%%:*}.sh" ]; then
		echo "lab: no scenario tests/lab/scenarios/${s%%:*}.sh" >&2
		exit $EXIT_USAGE
	fi
done
if [ -z "$name" ]; then
	name=$(IFS=+; echo "${scenarios[*]}" | tr ':/' '-_')
	[ ${#name} -le 60 ] || name=run
fi
[[ $name =~ ^[A-Za-z0-9_.+-]+$ ]] || { echo "lab: bad --name '$name'" >&2; exit $EXIT_USAGE; }

mkdir -p "$OUT"
RESULTS=$OUT/$name.results
LOG=$OUT/$name.log
rm -f "$RESULTS"

# Ends the script on a lab failure found before QEMU ran.
lab_abort() {
	log "LAB FAILURE (not a test failure): $*"
	{
		for s in "${scenarios[@]}"; do echo "$s none -"; done
		echo "lab failure $*"
	} >"$RESULTS"
	exit $EXIT_LAB
}

# ------------------------------------------------------------ the initramfs

# Newest installed kernel, or $LAB_KERNEL.
find_kernel() {
	if [ -n "${LAB_KERNEL:-}" ]; then
		echo "$LAB_KERNEL"
		return
	fi
	ls -1 /boot/vmlinuz-* 2>/dev/null | sort -V | tail -n 1
}

# Path of module $2 (path below kernel/, without .ko) of kernel release $1,
# compressed or not, under $MODULES (build_initramfs).
find_module() {
	local f
	for f in "$MODULES/$1/kernel/$2".ko{,.xz,.zst,.gz}; do
		[ -f "$f" ] && { echo "$f"; return 0; }
	done
	return 1
}

# Copies module $1 to $2, decompressing it: busybox insmod wants a plain .ko.
install_module() {
	case $1 in
	*.ko) cp "$1" "$2" ;;
	*.ko.xz) xz -dc "$1" >"$2" ;;
	*.ko.zst) zstd -qdc "$1" >"$2" ;;
	*.ko.gz) gzip -dc "$1" >"$2" ;;
	esac
}

# vmcb_offset KO: the offset of vmcb in struct vcpu_svm in kvm-amd module KO
# (uncompressed), for the lab's L1 triple fault guard (trace_shutdown_probe
# in scenarios/trace-lib.sh): shutdown_interception() loads svm->vmcb into
# %rdi for its first call, clear_page(). Prints nothing when it cannot tell
# (no objdump, another code shape): the lab then has no guard, and says so.
vmcb_offset() {
	command -v objdump >/dev/null || return 0
	objdump -d --no-show-raw-insn "$1" 2>/dev/null | awk '
		/^[0-9a-f]+ <shutdown_interception>:/ { on = 1; next }
		on && /^$/ { exit }
		on && match($0, /mov[ \t]+0x[0-9a-f]+\(%rdi\),%rdi/) {
			s = substr($0, RSTART, RLENGTH)
			sub(/^mov[ \t]+/, "", s)
			sub(/\(.*/, "", s)
			print s
			exit
		}'
}

# Reads an unsigned little-endian integer of $3 bytes at offset $2 of file $1.
read_le() {
	od -An -tu"$3" -j "$2" -N "$3" "$1" | tr -d ' '
}

# Extracts the vmlinux (ELF, with a PVH entry note) from bzImage $1 into $2.
# The Linux boot protocol (Documentation/x86/boot.rst) puts the compressed
# kernel at payload_offset (0x248) from the protected-mode code, which starts
# after the (setup_sects (0x1f1) + 1) * 512 bytes of real-mode setup, with
# payload_length (0x24c). The payload's last 4 bytes hold the uncompressed
# size; Debian compresses it with lz4 (legacy frame format, magic 0x184c2102;
# its 6.12 kernels from bookworm-backports with zstd, magic 0xfd2fb528).
extract_vmlinux() {
	local bz=$1 out=$2 sects off len start magic size dec=lz4
	sects=$(read_le "$bz" $((0x1f1)) 1)
	[ "$sects" -eq 0 ] && sects=4
	off=$(read_le "$bz" $((0x248)) 4)
	len=$(read_le "$bz" $((0x24c)) 4)
	start=$(((sects + 1) * 512 + off))
	magic=$(od -An -tx1 -j "$start" -N 4 "$bz" | tr -d ' ')
	case $magic in
	02214c18 | 04224d18) ;;
	28b52ffd) dec=zstd ;; # Debian's 6.12 kernels (bookworm-backports)
	*)
		# Not where the header says: look for the first lz4 magic instead.
		start=$(grep -obUaP '\x02\x21\x4c\x18|\x04\x22\x4d\x18' "$bz" | head -n 1 | cut -d: -f1)
		if [ -z "$start" ]; then
			log "no lz4 payload in $bz (header says offset $off, magic $magic)"
			return 1
		fi
		len=$(($(stat -c %s "$bz") - start))
		;;
	esac
	size=$(tail -c +$((start + len - 3)) "$bz" | head -c 4 | od -An -tu4 | tr -d ' ')
	tail -c +$((start + 1)) "$bz" | head -c $((len - 4)) | $dec -dc >"$out.tmp" 2>/dev/null
	if [ "$(head -c 4 "$out.tmp" | od -An -tx1 | tr -d ' ')" != 7f454c46 ]; then
		log "the payload of $bz at $start does not decompress to an ELF file"
		rm -f "$out.tmp"
		return 1
	fi
	if [ "$(stat -c %s "$out.tmp")" != "$size" ]; then
		log "vmlinux from $bz: $(stat -c %s "$out.tmp") bytes, the payload says $size"
		rm -f "$out.tmp"
		return 1
	fi
	# XEN_ELFNOTE_PHYS32_ENTRY (18) is the PVH entry point.
	if command -v readelf >/dev/null &&
		! readelf -nW "$out.tmp" | grep -Eq 'Xen.*(0x00000012|PHYS32_ENTRY)'; then
		log "warning: $out has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY)"
	fi
	mv "$out.tmp" "$out"
}

# Writes one newc cpio header and name (the "new ASCII" format of cpio(5)):
# cpio_newc_header NAME MODE RDEVMAJOR RDEVMINOR INO.
cpio_newc_header() {
	local nsz=$((${#1} + 1))
	printf '070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X' \
		"$5" "$2" 0 0 1 0 0 0 0 "$3" "$4" "$nsz" 0
	printf '%s\0' "$1"
	head -c $(((4 - (110 + nsz) % 4) % 4)) /dev/zero
}

# Packs directory $1 into the newc cpio $2, plus a /dev/console node: the
# kernel opens it for init's stdio before anything is mounted. A second
# archive appended to the first (the kernel unpacks them in turn) makes the
# node without root privileges or mknod.
make_cpio() {
	(cd "$1" && find . -mindepth 1 | sort | cpio -o -H newc -R 0:0 --quiet) >"$2.tmp" || return 1
	{
		cpio_newc_header dev/console $((8#0020600)) 5 1 1
		cpio_newc_header 'TRAILER!!!' 0 0 0 0
	} >>"$2.tmp"
	mv "$2.tmp" "$2"
}

# Installs busybox into $1/bin with a symlink per applet.
stage_busybox() {
	local a
	mkdir -p "$1/bin"
	cp "$BUSYBOX" "$1/bin/busybox"
	for a in $("$BUSYBOX" --list); do
		[ "$a" = busybox ] || ln -sf busybox "$1/bin/$a"
	done
}

# The shared libraries of program $1 (its ELF interpreter included), one
# path a line, as this machine's loader finds them. A static program has none.
shared_libs() {
	ldd "$1" 2>/dev/null | sed -n 's|.*=> \(/[^ ]*\) .*|\1|p; s|^[[:space:]]*\(/[^ ]*\) (0x.*|\1|p'
}

# What nestvm loads: its shared libraries, and those it loads with dlopen()
# with their own: libslirp in a NAT switch's process (src/switch/nat.c),
# libcrypto for a migration (src/snapshot/migrate_stream.c). The loader
# too under its name in the library directory: the static release nestvm's
# dlopen() looks it up there (the lab has no ld.so.cache), not at /lib64.
nestvm_libs() {
	local lib
	shared_libs "$NESTVM"
	for lib in libslirp.so.0 libcrypto.so.3 ld-linux-x86-64.so.2; do
		lib=$(ldconfig -p 2>/dev/null | awk -v l="$lib" '$1 == l && /x86-64/ { print $NF; exit }')
		if [ -n "$lib" ]; then
			echo "$lib"
			shared_libs "$lib"
		fi
	done
}

# Installs nestvm as $2 under root $1, with the libraries it loads at the
# same paths as here (Debian has no static libslirp: the lab runs the
# release build).
stage_nestvm() {
	install -D -m 755 "$NESTVM" "$1/$2"
	nestvm_libs | sort -u | stage_libs "$1"
}

# Installs the libraries named on stdin under root $1, at the same paths.
stage_libs() {
	local lib
	while IFS= read -r lib; do
		[ -e "$1$lib" ] || install -D -m 755 "$(readlink -f "$lib")" "$1$lib"
	done
}

# Installs program $2 under root $1 at the same path, with its shared libraries.
stage_prog() {
	install -D -m 755 "$2" "$1$2"
	shared_libs "$2" | stage_libs "$1"
}

# Dropbear for exec:ssh (Debian's dropbear-bin; none: no ssh comparison): its
# client and key tool in the lab, its server for a guest in /lab/ssh/dropbear.cpio
# (nestvm cp puts it into the guest, so the L1 initramfs stays as small).
DROPBEAR=/usr/sbin/dropbear DBCLIENT=/usr/bin/dbclient DROPBEARKEY=/usr/bin/dropbearkey
stage_dropbear() {
	local root=$OUT/stage/dropbear
	[ -x $DROPBEAR ] && [ -x $DBCLIENT ] && [ -x $DROPBEARKEY ] || return 0
	stage_prog "$1" $DBCLIENT
	stage_prog "$1" $DROPBEARKEY
	rm -rf "$root"
	stage_prog "$root" $DROPBEAR
	mkdir -p "$1/lab/ssh"
	(cd "$root" && find . -mindepth 1 | sort | cpio -o -H newc -R 0:0 --quiet) >"$1/lab/ssh/dropbear.cpio"
}

# Builds $OUT/lab.cpio unless it is up to date. Sets KERNEL.
build_initramfs() {
	local kver m f mods=() inputs=() key vmlinux stage l1 l1n t0 lockfd
	KERNEL=$(find_kernel)
	if [ -z "$KERNEL" ] || [ ! -f "$KERNEL" ]; then
		lab_abort "no kernel /boot/vmlinuz-* (scripts/install-deps.sh installs linux-image-cloud-amd64)"
	fi
	kver=${KERNEL##*/vmlinuz-}
	# A kernel unpacked from its Debian package (dpkg -x DEB ROOT, LAB_KERNEL=
	# ROOT/boot/vmlinuz-R) brings its modules along, in ROOT/lib/modules/R.
	MODULES=${KERNEL%/boot/vmlinuz-*}/lib/modules
	[ -d "$MODULES/$kver" ] || MODULES=/lib/modules
	for m in virt/lib/irqbypass arch/x86/kvm/kvm arch/x86/kvm/kvm-amd; do
		f=$(find_module "$kver" "$m") ||
			lab_abort "no module $m.ko under $MODULES/$kver (linux-image-cloud-amd64)"
		mods+=("$f")
	done
	# The L1's virtio drivers, in load order (virtio-devices scenario), and
	# the loop driver with which the lab mounts a disk image afterwards.
	local vmods=() vm loop_mod veth_mod tun_mod
	for m in drivers/virtio/virtio_ring drivers/virtio/virtio drivers/virtio/virtio_pci_legacy_dev \
		drivers/virtio/virtio_pci_modern_dev drivers/virtio/virtio_pci drivers/block/virtio_blk \
		drivers/char/hw_random/virtio-rng net/vmw_vsock/vsock \
		net/vmw_vsock/vmw_vsock_virtio_transport_common net/vmw_vsock/vmw_vsock_virtio_transport \
		drivers/char/virtio_console net/core/failover drivers/net/net_failover drivers/net/virtio_net \
		net/llc/llc net/802/stp net/bridge/bridge; do
		f=$(find_module "$kver" "$m") && vmods+=("$f")
	done
	loop_mod=$(find_module "$kver" drivers/block/loop) || loop_mod=
	# The veth pair between the two network namespaces that stand for two
	# hosts in the migration scenarios (scenarios/migrate-lib.sh).
	veth_mod=$(find_module "$kver" drivers/net/veth) || veth_mod=
	# The tap device of an internal switch (scenarios/net.sh).
	tun_mod=$(find_module "$kver" drivers/net/tun) || tun_mod=
	# The ACPI power button as an input device, for `nestvm stop` (manager-nested).
	for m in drivers/acpi/button drivers/input/evdev; do
		f=$(find_module "$kver" "$m") && vmods+=("$f")
	done
	[ -x "$BUSYBOX" ] || lab_abort "no $BUSYBOX (busybox-static)"
	readelf -lW "$BUSYBOX" 2>/dev/null | grep -q 'Requesting program interpreter' &&
		lab_abort "$BUSYBOX is dynamically linked; the lab needs busybox-static"
	for m in cpio lz4 "$QEMU"; do
		command -v "$m" >/dev/null || lab_abort "$m not installed (scripts/install-deps.sh)"
	done

	inputs=("$BUSYBOX" "$KERNEL" "${mods[@]}" "${vmods[@]}" ${loop_mod:+"$loop_mod"} ${veth_mod:+"$veth_mod"} ${tun_mod:+"$tun_mod"}
		"${BASH_SOURCE[0]}")
	if [ -f "$NESTVM" ]; then
		inputs+=("$NESTVM")
		while IFS= read -r f; do inputs+=("$f"); done < <(nestvm_libs | sort -u)
	fi
	[ -f "$MEMGEN_EXPECT_SRC" ] && inputs+=("$MEMGEN_EXPECT_SRC" "$TOP/guest/probe/memgen_chain.h")
	inputs+=("$TOP/src/arch/x86/layout.h") # ptwalk's
	for f in $DROPBEAR $DBCLIENT $DROPBEARKEY; do [ -x "$f" ] && inputs+=("$f"); done
	# build/guest/: the images, not the object files in its subdirectories.
	[ -d "$GUEST_DIR" ] && while IFS= read -r f; do inputs+=("$f"); done \
		< <(find "$GUEST_DIR" -maxdepth 1 -type f | sort)
	while IFS= read -r f; do inputs+=("$f"); done \
		< <(find "$LAB_SRC/root" "$LAB_SRC/l1" "$LAB_SRC/scenarios" "$LAB_SRC/tools" -type f | sort)

	exec {lockfd}>"$OUT/.build.lock"
	flock "$lockfd"
	key=$(sha256sum "${inputs[@]}" | sha256sum | cut -c1-64)
	if [ -f "$OUT/lab.cpio" ] && [ "$(cat "$OUT/lab.cpio.key" 2>/dev/null)" = "$key" ]; then
		log "initramfs: build/lab/lab.cpio is up to date ($(($(stat -c %s "$OUT/lab.cpio") >> 20)) MiB)"
		exec {lockfd}>&-
		return
	fi
	t0=${EPOCHREALTIME/[.,]/}

	# The vmlinux only depends on the kernel.
	vmlinux=$OUT/vmlinux-$kver
	local kkey
	kkey=$(sha256sum "$KERNEL" | cut -c1-64)
	if [ ! -f "$vmlinux" ] || [ "$(cat "$vmlinux.key" 2>/dev/null)" != "$kkey" ]; then
		extract_vmlinux "$KERNEL" "$vmlinux" || lab_abort "cannot extract the vmlinux from $KERNEL"
		echo "$kkey" >"$vmlinux.key"
	fi

	stage=$OUT/stage/lab
	l1=$OUT/stage/l1
	rm -rf "$OUT/stage"
	mkdir -p "$l1"/{dev,proc,sys,tmp,l1parts}
	stage_busybox "$l1"
	install -m 755 "$LAB_SRC/l1/init" "$l1/init"
	install -m 644 "$LAB_SRC/l1/lib.sh" "$l1/l1lib.sh"
	mkdir -p "$l1/virtio/modules"
	for vm in "${vmods[@]}"; do
		f=${vm##*/}
		install_module "$vm" "$l1/virtio/modules/${f%%.ko*}.ko"
	done
	[ -x "$GUEST_DIR/nestvm-vsock" ] && install -m 755 "$GUEST_DIR/nestvm-vsock" "$l1/bin/nestvm-vsock"
	[ -x "$GUEST_DIR/nestvm-agent" ] && install -m 755 "$GUEST_DIR/nestvm-agent" "$l1/bin/nestvm-agent"
	for f in "$LAB_SRC"/scenarios/*.l1.sh; do
		[ -f "$f" ] && cp "$f" "$l1/l1parts/$(basename "$f" .l1.sh).sh"
	done

	mkdir -p "$stage"/{dev,proc,sys,tmp,l1} "$stage"/lab/{modules,bin,guest,kernel,scenarios}
	stage_busybox "$stage"
	install -m 755 "$LAB_SRC/root/init" "$stage/init"
	cp "$LAB_SRC/root/lib.sh" "$stage/lab/lib.sh"
	install_module "${mods[0]}" "$stage/lab/modules/irqbypass.ko"
	install_module "${mods[1]}" "$stage/lab/modules/kvm.ko"
	install_module "${mods[2]}" "$stage/lab/modules/kvm-amd.ko"
	vmcb_offset "$stage/lab/modules/kvm-amd.ko" >"$stage/lab/kernel/vmcb-offset"
	[ -n "$loop_mod" ] && install_module "$loop_mod" "$stage/lab/modules/loop.ko"
	[ -n "$veth_mod" ] && install_module "$veth_mod" "$stage/lab/modules/veth.ko"
	[ -n "$tun_mod" ] && install_module "$tun_mod" "$stage/lab/modules/tun.ko"
	[ -f "$NESTVM" ] && stage_nestvm "$stage" lab/bin/nestvm
	stage_dropbear "$stage"
	# What an uninterrupted test=memgen prints (the snapshot scenarios): the
	# host's build/guest/memgen-expect, linked statically for the lab.
	if [ -f "$MEMGEN_EXPECT_SRC" ]; then
		"${CC:-cc}" -std=gnu11 -O2 -static -o "$stage/lab/bin/memgen-expect" "$MEMGEN_EXPECT_SRC" ||
			lab_abort "cannot build a static memgen-expect from $MEMGEN_EXPECT_SRC"
	fi
	# The lab's name server for the NAT scenario (net.sh: busybox has none).
	"${CC:-cc}" -std=gnu11 -O2 -static -o "$stage/lab/bin/dns_stub" "$DNS_STUB_SRC" ||
		lab_abort "cannot build a static dns_stub from $DNS_STUB_SRC"
	# The guard's walk of an L1's page tables at its triple fault (trace-lib.sh).
	"${CC:-cc}" -std=gnu11 -O2 -static -I"$TOP/src" -o "$stage/lab/bin/ptwalk" "$PTWALK_SRC" ||
		lab_abort "cannot build a static ptwalk from $PTWALK_SRC"
	[ -d "$GUEST_DIR" ] && find "$GUEST_DIR" -maxdepth 1 -type f -exec cp {} "$stage/lab/guest/" \;
	cp "$KERNEL" "$stage/lab/kernel/bzImage"
	cp "$vmlinux" "$stage/lab/kernel/vmlinux"
	for f in "$LAB_SRC"/scenarios/*.sh; do
		case $f in *.l1.sh) continue ;; esac
		cp "$f" "$stage/lab/scenarios/"
	done
	make_cpio "$l1" "$stage/l1/initrd.cpio" || lab_abort "cpio of the L1 initramfs failed"

	# The nested L1 initramfs adds what an L1 needs to be a KVM host itself:
	# the kvm modules, nestvm, the guest images, and for an L2 Linux the
	# bzImage (the smaller kernel file) and the plain L1 initramfs.
	if [ -f "$NESTVM" ]; then
		l1n=$OUT/stage/l1-nested
		cp -a "$l1" "$l1n"
		mkdir -p "$l1n"/l1/{modules,bin,guest,l2}
		cp "$stage"/lab/modules/*.ko "$l1n/l1/modules/"
		stage_nestvm "$l1n" l1/bin/nestvm
		cp -a "$stage/lab/guest/." "$l1n/l1/guest/"
		cp "$KERNEL" "$l1n/l1/l2/bzImage"
		cp "$stage/l1/initrd.cpio" "$l1n/l1/l2/initrd.cpio"
		make_cpio "$l1n" "$stage/l1/initrd-nested.cpio" ||
			lab_abort "cpio of the nested L1 initramfs failed"
		# For running the same L1 directly on a host that can nest (demo.sh).
		cp "$stage/l1/initrd-nested.cpio" "$OUT/l1-nested.cpio"
	fi
	make_cpio "$stage" "$OUT/lab.cpio" || lab_abort "cpio of the lab initramfs failed"
	echo "$key" >"$OUT/lab.cpio.key"
	[ $keep -eq 1 ] || rm -rf "$OUT/stage"
	exec {lockfd}>&-

	local t1=${EPOCHREALTIME/[.,]/}
	log "initramfs: built build/lab/lab.cpio ($(($(stat -c %s "$OUT/lab.cpio") >> 20)) MiB) in" \
		"$(fmt_us $((t1 - t0))) s: kernel $kver, nestvm $([ -f "$NESTVM" ] && echo yes || echo "no (make release)")," \
		"$(find "$GUEST_DIR" -maxdepth 1 -type f 2>/dev/null | wc -l) guest image(s)"
}

# ----------------------------------------------------------------- the run

# Microseconds $1 as seconds with one decimal.
fmt_us() {
	local ds=$(($1 / 100000))
	printf '%d.%d' $((ds / 10)) $((ds % 10))
}

# The host's budget in seconds for scenario file $1 run with argument $2: its
# "# lab-budget: SECS" line, else its limit inside the lab ("# lab-timeout
# ARG: SECS" for argument ARG, else "# lab-timeout: SECS", else
# $SCENARIO_TIMEOUT) plus $BUDGET_GRACE, the time the lab needs to kill a
# scenario at its own limit and report it. root/init reads the limit alike.
scenario_budget() {
	local b t=''
	b=$(sed -n 's/^# lab-budget: *\([0-9][0-9]*\).*/\1/p' "$1" | head -n 1)
	if [ -n "$b" ]; then
		echo "$b"
		return
	fi
	[ -n "$2" ] && t=$(sed -n "s/^# lab-timeout ${2//./\\.}: *\([0-9][0-9]*\).*/\1/p" "$1" | head -n 1)
	[ -n "$t" ] || t=$(sed -n 's/^# lab-timeout: *\([0-9][0-9]*\).*/\1/p' "$1" | head -n 1)
	echo $((${t:-$SCENARIO_TIMEOUT} + BUDGET_GRACE))
}

# Per scenario, by its position in $scenarios (a scenario may run twice):
# verdict (pass, fail, skip, or lab for a lab failure), the lab's seconds,
# metrics, host microseconds of LAB-BEGIN and of LAB-RESULT (or of the cut)
# since its boot's QEMU start, why it was a lab failure, its lab boot, its
# budget in seconds, the longest console silence while it ran
# (microseconds), and for a retried scenario the lab failure of its first
# run and that run's boot.
declare -a result rtime metrics hbegin hend lwhy sboot budget silence rwhy rboot rfail rcount rquick
for i in "${!scenarios[@]}"; do
	arg=
	[[ ${scenarios[i]} == *:* ]] && arg=${scenarios[i]#*:}
	budget[i]=$(scenario_budget "$LAB_SRC/scenarios/${scenarios[i]%%:*}.sh" "$arg")
done
ci=-1 # position of the scenario that began last
boot=0
# Per lab boot (run_lab_once resets them).
saw_ready=0 saw_end=0 lab_error='' qemu_rc='' ready_us='' end_us='' exit_us=''
ready_uptime='' end_uptime='' killed_why='' panic='' current='' saw_init=0
kallsyms_tmp='' mark_us='' cut_us='' kill_us='' dump_summary='' line_us=0 timed_out=0

# Handles one line of the lab console: shows it, logs it, follows markers.
# $1: the line, $2: microseconds since QEMU start.
handle_line() {
	local line=${1//$'\r'/} us=$2 stamp re
	if [ -n "$kallsyms_tmp" ]; then # the lab's symbols, base64 of gzip
		case $line in
		*LAB-KALLSYMS-END*)
			# "ADDRESS t|T NAME [MODULE]" lines; kept as "ADDRESS NAME
			# [MODULE]", sorted.
			if base64 -d "$kallsyms_tmp" 2>/dev/null | gzip -dc 2>/dev/null |
				awk 'NF >= 3 { print $1, $3, $4 }' | sort >"$KALLSYMS.tmp" &&
				[ -s "$KALLSYMS.tmp" ]; then
				mv "$KALLSYMS.tmp" "$KALLSYMS"
				echo "$(printf '[%6s]' "$(fmt_us "$us")") (the lab's kernel symbols:" \
					"$(wc -l <"$KALLSYMS") kept in build/lab/${KALLSYMS##*/})" >>"$LOG"
			else
				log "warning: the lab's kernel symbols did not decode; the next lab boot sends them again"
			fi
			rm -f "$kallsyms_tmp" "$KALLSYMS.tmp"
			kallsyms_tmp=
			;;
		*) echo "$line" >>"$kallsyms_tmp" ;;
		esac
		return
	fi
	if [[ $line == *LAB-KALLSYMS-BEGIN* ]]; then
		kallsyms_tmp=$KALLSYMS.b64
		: >"$kallsyms_tmp"
		return
	fi
	stamp=$(printf '[%6s]' "$(fmt_us "$us")")
	if [[ $line =~ ^@@LAB-HOST\ qemu-exit\ ([0-9]+)$ ]]; then
		qemu_rc=${BASH_REMATCH[1]}
		exit_us=$us
		echo "$stamp (QEMU exited with status $qemu_rc)" >>"$LOG"
		return
	fi
	[ -z "$line" ] && return
	# The longest silence of the console while a scenario runs, heartbeat
	# included: what SILENCE_S must stay well above (until a cut).
	if [ -n "$current" ] && [ -z "$killed_why" ] && [ $((us - line_us)) -gt "${silence[ci]:-0}" ]; then
		silence[ci]=$((us - line_us))
	fi
	line_us=$us
	echo "$stamp $line" >>"$LOG"
	[[ $line == *LAB-INIT* ]] && saw_init=1
	# The log keeps the lab kernel's boot messages (shown when the lab does
	# not become ready) and the EPYC features TCG lacks, listed twice by QEMU.
	# The heartbeat (LAB-ALIVE) goes to the log only.
	if [[ $line == *"TCG doesn't support requested feature"* || $line == LAB-ALIVE* ]]; then
		:
	elif [ $saw_init -eq 1 ] || [[ $line == qemu-system* ]]; then
		echo "$stamp $line"
	fi
	re='LAB-READY uptime=([0-9.]+)'
	if [[ $line =~ $re ]]; then
		saw_ready=1 ready_us=$us ready_uptime=${BASH_REMATCH[1]} mark_us=$us
	fi
	re='LAB-BEGIN ([^ ]+)'
	if [[ $line =~ $re ]] && [ $((ci + 1)) -lt ${#scenarios[@]} ]; then
		ci=$((ci + 1))
		current=${BASH_REMATCH[1]}
		hbegin[ci]=$us
		sboot[ci]=$boot
		silence[ci]=0
		[ "$current" = "${scenarios[ci]}" ] ||
			echo "lab: warning: the lab began '$current', expected '${scenarios[ci]}'"
	fi
	re='LAB-RESULT ([^ ]+) (pass|fail|skip) ([0-9.]+)'
	if [[ $line =~ $re ]] && [ $ci -ge 0 ] && [ "${BASH_REMATCH[1]}" = "${scenarios[ci]}" ]; then
		result[ci]=${BASH_REMATCH[2]}
		rtime[ci]=${BASH_REMATCH[3]}
		hend[ci]=$us
		current=
		mark_us=$us
		echo "$stamp (longest console silence during ${scenarios[ci]}: $(fmt_us "${silence[ci]}") s;" \
			"SILENCE_S $SILENCE_S s)" >>"$LOG"
	fi
	re='LAB-METRIC ([^ ]+) (.*)'
	if [[ $line =~ $re ]] && [ $ci -ge 0 ] && [ "${BASH_REMATCH[1]}" = "${scenarios[ci]}" ]; then
		local kv
		for kv in ${BASH_REMATCH[2]}; do
			[[ $kv == ?*=* ]] && metrics[ci]+="$kv "
		done
	fi
	re='LAB-END uptime=([0-9.]+)'
	if [[ $line =~ $re ]]; then
		saw_end=1 end_us=$us end_uptime=${BASH_REMATCH[1]}
	fi
	re='LAB-ERROR (.*)'
	[[ $line =~ $re ]] && lab_error=${BASH_REMATCH[1]}
	[[ $line == *"Kernel panic"* ]] && panic=$line
}

# Where address $1 (16 hex digits) is in the lab kernel, which runs without
# KASLR: "FUNCTION+0xOFFSET", with " [MODULE]" in a module, from the symbols
# a lab sent once ($KALLSYMS, sorted). Nothing without symbols, below the
# kernel's half of the address space, or too far past the nearest function
# (data, or a module loaded after the symbols were taken).
kernel_symbol() {
	local addr='' sym='' mod='' off
	[ -r "$KALLSYMS" ] && [[ $1 == ffff* ]] || return 0
	# Fixed-width hex strings compare like the numbers they spell (mawk has
	# no strtonum); none of them looks like a decimal number.
	read -r addr sym mod < <(awk -v a="$1" 'length($1) == 16 {
			if ($1 > a) exit
			last = $0
		}
		END { print last }' "$KALLSYMS")
	[ -n "$sym" ] || return 0
	off=$((16#$1 - 16#$addr))
	[ $off -ge 0 ] && [ $off -lt $((0x10000)) ] || return 0
	printf '%s+0x%x%s\n' "$sym" "$off" "${mod:+ $mod}"
}

# Asks QEMU's monitor (-monitor pipe:) for every vCPU's registers and says
# where each one is: what a lab that hangs is doing. The registers go to the
# log, one line per vCPU to the console and to $dump_summary.
qemu_dump_state() {
	local line cpu='' rip where flags entry
	dump_summary=
	echo 'info registers -a' >&"$MON_IN" || return 0
	sleep 1
	echo "# QEMU monitor: info registers -a" >>"$LOG"
	while IFS= read -r -t 1 -u "$MON_OUT" line; do
		line=${line//$'\r'/}
		[[ $line == *"(qemu)"* ]] && continue # the echo of the command
		echo "#   $line" >>"$LOG"
		[[ $line =~ ^CPU#([0-9]+) ]] && cpu=${BASH_REMATCH[1]}
		# RIP=... RFL=... [flags] CPL=n II=n A20=n SMM=n HLT=n
		if [[ $line =~ RIP=([0-9a-f]{16})\ RFL=([0-9a-f]+) ]]; then
			rip=${BASH_REMATCH[1]}
			flags="IF=$(((16#${BASH_REMATCH[2]} >> 9) & 1))"
			[[ $line =~ (CPL=[0-3]) ]] && flags+=" ${BASH_REMATCH[1]}"
			[[ $line =~ (HLT=[01]) ]] && flags+=" ${BASH_REMATCH[1]}"
			where=$(kernel_symbol "$rip")
			if [ -n "$where" ]; then
				where="in $where"
			elif [ ! -r "$KALLSYMS" ]; then
				where="(no kernel symbols yet)"
			elif [[ $rip == ffff* ]]; then
				where="(no kernel symbol)"
			else
				where="(user space)"
			fi
			entry="vCPU ${cpu:-?} at RIP $rip $where ($flags)"
			log "$entry" | tee -a "$LOG"
			dump_summary+="${dump_summary:+, }$entry"
		fi
	done
}

# Kills the QEMU of this run (by the pid it wrote) with signal $1.
kill_qemu() {
	local pid
	pid=$(cat "$PIDFILE" 2>/dev/null) && [ -n "$pid" ] && kill -"$1" "$pid" 2>/dev/null
}

# Ends a lab that hangs, for reason $1: dumps its vCPUs, then kills QEMU.
# $2: microseconds since QEMU start.
lab_stop() {
	killed_why=$1
	cut_us=$2
	log "$1; killing the lab, whose vCPUs are:"
	qemu_dump_state
	kill_us=${EPOCHREALTIME/[.,]/}
	kill_qemu TERM
}

# One lab boot running the scenarios from position $1 on, limited to $2
# seconds. Sets the per-boot globals above.
run_lab_once() {
	local first=$1 limit=$2 cmdline qfd line buf='' rc t0 now us el mon boot_limit
	ci=$((first - 1))
	saw_ready=0 saw_end=0 lab_error='' qemu_rc='' ready_us='' end_us='' exit_us=''
	ready_uptime='' end_uptime='' killed_why='' panic='' current='' saw_init=0
	mark_us='' cut_us='' kill_us='' dump_summary='' line_us=0 timed_out=0
	# Not quiet: the boot messages go to the log, to show where a lab that
	# never becomes ready stopped (the lab's /init quietens the console).
	# No KASLR: the RIPs of a hung lab then match the symbols of any boot.
	cmdline="console=ttyS0 nokaslr panic=-1 nestlab.run=$(IFS=,; echo "${scenarios[*]:first}")"
	cmdline+=" nestlab.stimeout=$SCENARIO_TIMEOUT nestlab.heartbeat=$HEARTBEAT_S"
	# The first scenario of this boot is the retry (the first or the second)
	# of one a lab failure cut.
	[ -n "${rboot[first]:-}" ] && cmdline+=" nestlab.retry=${rcount[first]}"
	# The lab's timer tick (LAB_TICK): periodic by default. QEMU 7.2's TCG
	# can lose a lab CPU's interrupt (its VMRUN and #VMEXIT update the CPU's
	# pending-interrupt flags without the lock another thread's interrupt
	# takes); the local APIC timer in periodic mode raises that flag again at
	# each tick, so a lost interrupt waits 4 ms, where in one-shot mode a lost
	# timer interrupt stops the CPU's timer until some other interrupt comes.
	[ "$LAB_TICK" = periodic ] && cmdline+=" nohz=off highres=off"
	# More words for the lab kernel's command line (LAB_CMDLINE="tsc=reliable").
	[ -n "${LAB_CMDLINE:-}" ] && cmdline+=" $LAB_CMDLINE"
	# Parameters for the lab's kvm (LAB_KVM="tdp_mmu=0").
	[ -n "${LAB_KVM:-}" ] && cmdline+=" nestlab.kvm=$(echo "$LAB_KVM" | tr ' ' ',')"
	# Extra kvm-amd parameters for the lab's KVM (LAB_KVM_AMD="vgif=0 vls=0").
	[ -n "${LAB_KVM_AMD:-}" ] && cmdline+=" nestlab.kvm_amd=$(echo "$LAB_KVM_AMD" | tr ' ' ',')"
	KALLSYMS=$OUT/symbols-${KERNEL##*/vmlinuz-}
	boot_limit=$boot_timeout_s
	if [ ! -s "$KALLSYMS" ]; then
		# The symbols take 6 to 20 s of console before LAB-READY.
		cmdline+=" nestlab.kallsyms=1"
		boot_limit=$((boot_timeout_s + 60))
	fi
	kallsyms_tmp=
	PIDFILE=$OUT/$name.qemu.pid
	rm -f "$PIDFILE"
	[ "$boot" -eq 1 ] && : >"$LOG"
	{
		echo "# $(date -u '+%Y-%m-%d %H:%M:%S UTC') lab run '$name', lab boot $boot: ${scenarios[*]:first}"
		echo "# $QEMU ${QEMU_MACHINE[*]} -kernel $KERNEL -initrd $OUT/lab.cpio -append \"$cmdline\""
	} >>"$LOG"
	log "lab boot $boot: QEMU TCG ($LAB_TCG), $LAB_CPU, $LAB_SMP vCPU(s), 2 GiB, tick $LAB_TICK; kernel ${KERNEL##*/};" \
		"limit ${limit} s; scenarios: ${scenarios[*]:first}"

	# QEMU's monitor on a pair of FIFOs, opened read-write here so that
	# neither side blocks; only used to dump a hung lab's registers.
	mon=$OUT/$name.mon
	rm -f "$mon.in" "$mon.out"
	mkfifo "$mon.in" "$mon.out"
	exec {MON_IN}<>"$mon.in" {MON_OUT}<>"$mon.out"

	t0=${EPOCHREALTIME/[.,]/}
	exec {qfd}< <(
		exec 2>&1 </dev/null
		timeout -k 10 $((limit + 20)) "$QEMU" "${QEMU_MACHINE[@]}" -kernel "$KERNEL" \
			-initrd "$OUT/lab.cpio" -append "$cmdline" -pidfile "$PIDFILE" \
			-monitor "pipe:$mon"
		printf '\n@@LAB-HOST qemu-exit %d\n' $?
	)
	while :; do
		IFS= read -r -t 1 -u "$qfd" line
		rc=$?
		now=${EPOCHREALTIME/[.,]/}
		us=$((now - t0))
		if [ $rc -eq 0 ]; then
			handle_line "$buf$line" $us
			buf=
		elif [ $rc -le 128 ]; then # end of output: QEMU and timeout are gone
			[ -n "$buf$line" ] && handle_line "$buf$line" $us
			break
		else
			buf+=$line # read timed out, maybe in the middle of a line
			[ -n "$line" ] && line_us=$us # which is not silence
		fi
		el=$((us / 1000000))
		if [ -n "$killed_why" ]; then
			# Told to stop: it must be gone soon.
			[ $((now - kill_us)) -ge 10000000 ] && kill_qemu KILL
			[ $((now - kill_us)) -ge 40000000 ] && break
		elif [ $saw_ready -eq 0 ] && [ $el -ge "$boot_limit" ]; then
			log "no LAB-READY after $boot_limit s; the lab console's last lines:"
			grep -v "TCG doesn't support" "$LOG" | tail -n 15 | sed 's/^/lab:   /'
			lab_stop "no LAB-READY within the boot timeout of $boot_limit s" $us
		elif [ $saw_end -eq 0 ] && [ $el -ge "$limit" ]; then
			timed_out=1
			lab_stop "the run's timeout of $timeout_s s${current:+ during scenario $current}" $us
		elif [ -n "$current" ] && [ $((us - hbegin[ci])) -ge $((budget[ci] * 1000000)) ]; then
			lab_stop "scenario $current overran its budget of ${budget[ci]} s" $us
		elif [ -n "$current" ] && [ $((us - line_us)) -ge $((SILENCE_S * 1000000)) ]; then
			silence[ci]=$((us - line_us))
			lab_stop "the lab went silent (no heartbeat for $SILENCE_S s) during scenario $current" $us
		elif [ $saw_ready -eq 1 ] && [ $saw_end -eq 0 ] && [ -z "$current" ] &&
			[ $((us - mark_us)) -ge $((GAP_S * 1000000)) ]; then
			lab_stop "no LAB-BEGIN or LAB-END within $GAP_S s of the previous marker" $us
		elif [ $saw_end -eq 1 ] && [ $((us - end_us)) -ge $((END_GRACE * 1000000)) ]; then
			killed_why="QEMU still running $END_GRACE s after LAB-END"
			kill_us=$now
			kill_qemu TERM
		fi
	done
	exec {qfd}<&- {MON_IN}>&- {MON_OUT}<&-
	rm -f "$PIDFILE" "$mon.in" "$mon.out"
	[ -z "$qemu_rc" ] && qemu_rc=unknown
	[ -z "$exit_us" ] && exit_us=$((${EPOCHREALTIME/[.,]/} - t0))
	if [ "$qemu_rc" = 124 ] && [ -z "$killed_why" ]; then
		killed_why="the run's timeout of $timeout_s s"
		timed_out=1
	fi
	echo "# QEMU exit status $qemu_rc after $(fmt_us "$exit_us") s${killed_why:+ ($killed_why)}" >>"$LOG"
}

# Prints metrics $1 (KEY=VALUE words) grouped by the variant their key starts
# with ("pvh.wall_s"), KVM's counters ("pvh.kvm.exits") on a line of their own.
print_metrics() {
	echo "$1" | tr ' ' '\n' | awk -F= '
		NF < 2 { next }
		{
			k = $1; v = substr($0, length($1) + 2); g = ""
			if (index(k, ".")) { g = k; sub(/\..*/, "", g); k = substr(k, length(g) + 2) }
			if (g == "kvm") { g = ""; k = "kvm." k }
			if (k ~ /^kvm\./) { g = g (g == "" ? "" : " ") "kvm"; sub(/^kvm\./, "", k) }
			if (!(g in line)) order[n++] = g
			line[g] = line[g] " " k "=" v
		}
		END { for (i = 0; i < n; i++) printf "lab:     %s%s\n", order[i] == "" ? "" : "[" order[i] "]", line[order[i]] }'
}

# Why this lab boot is a lab failure, or nothing when the lab worked.
lab_failure_reason() {
	local why=
	if [ $saw_end -eq 1 ]; then
		return
	fi
	if [ $saw_ready -eq 0 ]; then
		why="the lab never reached LAB-READY"
	else
		why="the lab never reached LAB-END${current:+ (during scenario $current)}"
	fi
	[ -n "$lab_error" ] && why+="; the lab said: $lab_error"
	[ -n "$killed_why" ] && why+="; $killed_why"
	[ -n "$panic" ] && why+="; lab kernel: $panic"
	why+="; QEMU exit status $qemu_rc"
	echo "$why"
}

build_initramfs
[ $build_only -eq 1 ] && exit 0

# Lab boots until every scenario ran: a scenario that wedges, silences or
# kills its lab is a lab failure, and the scenarios after it run in a fresh
# lab. A boot in which no scenario began is retried once, and so is a
# scenario a lab failure cut (not the run's timeout), LAB_RETRIES (3)
# retries at most in a run: it runs first in that fresh lab, and once it
# has a verdict there, that lab failure is reported with it (rwhy) instead
# of failing the run. A scenario is retried once, or twice when the lab
# ended by itself at each of its lab failures (LAB-ERROR: the lab's own L1
# triple fault or L1 stall, the lab kernel stuck; a lab kernel panic; a lab
# that reset with no word, its kernel's own triple fault: faults of the
# emulated machine, about one a make test lab on some days, seen in a
# retry too, and quick to see, unlike a wedge or a silence that lab.sh
# cuts at a budget each time); --timeout bounds them all.
t_start=${EPOCHREALTIME/[.,]/}
first=0 retried=0
# retries so far; of each retried scenario: rboot the boot of its first
# failure, rwhy and rfail its failures, rcount its retries, rquick 1 if
# the lab ended by itself at its first failure
retries=0
lab_failures=() boot_notes=()
while [ "$first" -lt ${#scenarios[@]} ]; do
	left=$((timeout_s - (${EPOCHREALTIME/[.,]/} - t_start) / 1000000))
	if [ $left -lt 10 ]; then
		lab_failures+=("no time left for ${scenarios[*]:first} within the run's timeout of $timeout_s s")
		break
	fi
	boot=$((boot + 1))
	run_lab_once "$first" $left
	note="boot $boot:"
	[ -n "$ready_us" ] && note+=" QEMU start to LAB-READY $(fmt_us "$ready_us") s (lab uptime $ready_uptime s),"
	[ -n "$end_us" ] && note+=" LAB-END at $(fmt_us "$end_us") s (lab uptime $end_uptime s),"
	note+=" QEMU exit $qemu_rc at $(fmt_us "$exit_us") s"
	failure=$(lab_failure_reason)
	[ -z "$failure" ] && [ "$qemu_rc" != 0 ] && note+=" (warning: after LAB-END)"
	boot_notes+=("$note")
	[ -z "$failure" ] && break
	log "LAB FAILURE (not a test failure) in lab boot $boot: $failure"
	if [ $ci -lt "$first" ]; then # no scenario began
		if [ $retried -eq 0 ]; then
			retried=1
			log "retrying the lab once"
			continue
		fi
		lab_failures+=("boot $boot: $failure")
		break
	fi
	if [ -n "${result[ci]:-}" ]; then # the lab failed between scenarios
		lab_failures+=("boot $boot: $failure")
		first=$((ci + 1))
		[ "$first" -lt ${#scenarios[@]} ] && log "the remaining scenarios run in a fresh lab: ${scenarios[*]:first}"
		continue
	fi
	# The scenario that was running.
	result[ci]=lab
	hend[ci]=${cut_us:-$exit_us}
	lwhy[ci]=${killed_why:-$failure}
	[ -n "$cut_us" ] && lwhy[ci]+=", cut $(fmt_us $((cut_us - hbegin[ci]))) s after its LAB-BEGIN"
	[ -n "$dump_summary" ] && lwhy[ci]+="; $dump_summary"
	quick=0
	[ -z "$killed_why" ] && quick=1
	if [ $retries -lt "$LAB_RETRIES" ] && [ $timed_out -eq 0 ] &&
		{ [ -z "${rboot[ci]:-}" ] || { [ "${rcount[ci]}" -eq 1 ] && [ "${rquick[ci]}" -eq 1 ] && [ $quick -eq 1 ]; }; }; then
		# The lab, not the scenario, may be at fault.
		retries=$((retries + 1))
		if [ -z "${rboot[ci]:-}" ]; then
			rcount[ci]=1 rquick[ci]=$quick rboot[ci]=$boot
			rfail[ci]="boot $boot: $failure"
			rwhy[ci]=${lwhy[ci]}
		else
			rcount[ci]=2
			rfail[ci]+=" | boot $boot: $failure"
			rwhy[ci]+="; and on its first retry: ${lwhy[ci]}"
		fi
		unset 'result[ci]' 'rtime[ci]' 'metrics[ci]' 'hbegin[ci]' 'hend[ci]' 'lwhy[ci]'
		first=$ci
		log "LAB FAILURE (not a test failure): retrying ${scenarios[ci]} (retry ${rcount[ci]}), in a fresh lab with the scenarios after it"
		continue
	fi
	lab_failures+=("boot $boot: $failure")
	first=$((ci + 1))
	[ "$first" -lt ${#scenarios[@]} ] && log "the remaining scenarios run in a fresh lab: ${scenarios[*]:first}"
done
# A retry that got no verdict of its own makes up for nothing.
for i in "${!rboot[@]}"; do
	case ${result[i]:-} in
	pass | fail | skip) ;;
	*) lab_failures=("${rfail[i]}" "${lab_failures[@]}") ;;
	esac
done

# ---------------------------------------------------------------- summary

echo
log "---- summary of '$name' (log: build/lab/$name.log, $boot lab boot(s)) ----"
for note in "${boot_notes[@]}"; do log "$note"; done
# "silent s": the longest gap between console lines while it ran (the
# heartbeat keeps it near HEARTBEAT_S; SILENCE_S cuts the lab).
printf 'lab: %-28s %-6s %9s %9s %9s\n' scenario result "lab s" "host s" "silent s"
npass=0 nfail=0 nskip=0 nlab=0 nnone=0
: >"$RESULTS.tmp"
for i in "${!scenarios[@]}"; do
	s=${scenarios[i]}
	r=${result[i]:-none}
	hs=-
	[ -n "${hbegin[i]:-}" ] && [ -n "${hend[i]:-}" ] && hs=$(fmt_us $((hend[i] - hbegin[i])))
	case $r in
	pass) npass=$((npass + 1)) ;;
	fail) nfail=$((nfail + 1)) ;;
	skip) nskip=$((nskip + 1)) ;;
	lab) nlab=$((nlab + 1)) ;;
	*) nnone=$((nnone + 1)) ;;
	esac
	qs=-
	[ -n "${silence[i]:-}" ] && [ -n "${hbegin[i]:-}" ] && qs=$(fmt_us "${silence[i]}")
	printf 'lab: %-28s %-6s %9s %9s %9s\n' "$s" "${r/none/-}" "${rtime[i]:--}" "$hs" "$qs"
	# SCENARIO VERDICT SECONDS [WHY]: the lab's seconds, or for a lab
	# failure the host's from LAB-BEGIN to the cut; a retried scenario's
	# WHY ends with the lab failure of its first run.
	why=
	[ "$r" = lab ] && why=${lwhy[i]}
	if [ -n "${rboot[i]:-}" ]; then
		why+="${why:+; }retried after a LAB FAILURE: ${rwhy[i]}"
	fi
	if [ "$r" = lab ]; then
		echo "$s lab $hs $why" >>"$RESULTS.tmp"
	else
		echo "$s $r ${rtime[i]:--}${why:+ $why}" >>"$RESULTS.tmp"
	fi
	[ -n "${metrics[i]:-}" ] && print_metrics "${metrics[i]}"
done
for i in "${!scenarios[@]}"; do
	if [ -n "${rboot[i]:-}" ]; then
		log "${scenarios[i]}: LAB FAILURE (not a test failure) in boot ${rboot[i]}: ${rwhy[i]}"
		log "${scenarios[i]}: retried ${rcount[i]} time(s), last in boot ${sboot[i]:-?}: ${result[i]:-no result}"
	fi
	[ "${result[i]:-}" = lab ] &&
		log "${scenarios[i]}: LAB FAILURE (not a test failure) in boot ${sboot[i]:-?}: ${lwhy[i]}"
done

# Compare variants of a scenario by their wall_s metrics (linux-boot: bzimage
# against pvh).
declare -A cmp
for i in "${!scenarios[@]}"; do
	s=${scenarios[i]}
	for kv in ${metrics[i]:-}; do
		k=${kv%%=*} v=${kv#*=}
		[[ $k == wall_s || $k == *.wall_s ]] || continue
		[[ " ${metrics[i]}" == *" ${k%wall_s}nestvm_rc=0 "* ]] || continue # failed runs
		label=${k%wall_s}
		label=${label%.}
		[ -z "$label" ] && label=${s#*:}
		init=$(echo " ${metrics[i]}" | sed -n "s/.* ${label}.guest_init_s=\([^ ]*\).*/\1/p")
		cmp[${s%%:*}]+="$v $label ${init:--}"$'\n'
	done
done
for base in "${!cmp[@]}"; do
	[ "$(printf '%s' "${cmp[$base]}" | grep -c .)" -ge 2 ] || continue
	log "$base, fastest first: $(printf '%s' "${cmp[$base]}" | sort -n |
		awk 'NF { printf "%s%s %s s wall (guest to /init %s s)", sep, $2, $1, $3; sep = ", " }')"
done

if [ ${#lab_failures[@]} -gt 0 ]; then
	failure=$(printf '%s\n' "${lab_failures[@]}" | paste -sd '|' | sed 's/|/ | /g')
	echo "lab failure $failure" >>"$RESULTS.tmp"
	mv "$RESULTS.tmp" "$RESULTS"
	log "LAB FAILURE (not a test failure): $failure"
	log "$npass passed, $((nfail + nlab + nnone)) failed ($nlab lab failure(s), $nnone without a result), $nskip skipped"
	log "exit $EXIT_LAB"
	exit $EXIT_LAB
fi
echo "lab ok" >>"$RESULTS.tmp"
mv "$RESULTS.tmp" "$RESULTS"
retry_note=
for i in "${!rboot[@]}"; do
	retry_note+="${retry_note:+, }${scenarios[i]}: ${result[i]:-none} on its retry after a LAB FAILURE"
done
[ -n "$retry_note" ] && retry_note=" ($retry_note, see above)"
if [ $nfail -gt 0 ] || [ $nnone -gt 0 ]; then
	log "FAIL: $npass passed, $((nfail + nnone)) failed, $nskip skipped$retry_note; exit $EXIT_FAIL"
	exit $EXIT_FAIL
fi
log "PASS: $npass passed, $nskip skipped$retry_note; exit $EXIT_PASS"
exit $EXIT_PASS
