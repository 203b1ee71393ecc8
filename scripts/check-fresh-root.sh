#!/bin/sh
# check-fresh-root.sh — prove that the README's two commands work on a fresh
# Debian 12 machine: debootstrap a minimal bookworm root, put a clean copy of
# this checkout in it (`git archive HEAD`, as CI has), and run `make test`
# and `make demo` in it as root, in a chroot that shares this host's kernel
# and /dev/kvm. Each command installs the Debian packages it lacks itself
# (scripts/install-deps.sh). Prints how long each step took.
#
# usage: scripts/check-fresh-root.sh [--only test|demo] [--keep] [--reuse-base] [DIR]
#
#   DIR           where the root goes (default build/fresh-root); replaced on
#                 every run. Logs go to DIR.logs/.
#   --only        run only `make test` or only `make demo` (both boot QEMU
#                 TCG and take minutes)
#   --keep        keep the root after a run that passed (one that failed is
#                 always kept, for a look inside: chroot DIR)
#   --reuse-base  start from the root of an earlier run's debootstrap
#                 (DIR.base.tar, saved on every run) instead of a new one:
#                 for iterating; not a measurement of debootstrap
#
# The starting set is what a fresh Debian 12 machine of the development
# kind has: debootstrap's minbase variant plus build-essential, git and
# ca-certificates (a compiler and a few libraries), and APT sources for
# bookworm, bookworm-updates and bookworm-security. Nothing else is
# installed before the README's commands run.
#
# Must run as root (debootstrap, chroot, mounts). The chroot's /proc, /sys
# and /dev are mounted in a mount namespace of their own (unshare), so they
# vanish with it whatever happens, and are unmounted on every exit path
# before that. Environment passed into the chroot when set (for iterating):
# NESTVM_SKIP_LAB, NESTVM_FUZZ_SECONDS, LAB_TIMEOUT. FRESH_MIRROR: the
# Debian mirror (default http://deb.debian.org/debian).
#
# Exit status: 0 every step passed, 1 a step failed, 2 bad usage.
set -eu

# ------------------------------------------------------------ inside the namespace

# Runs as: check-fresh-root.sh --in-namespace ROOT COMMAND, under
# `unshare --mount --propagation private`: bind-mounts the root onto itself
# and mounts the chroot's /proc, /sys and /dev, runs COMMAND in /root/nestvm
# as root with a login-like environment, unmounts on exit.
if [ "${1:-}" = --in-namespace ]; then
	root=$2 cmd=$3
	# shellcheck disable=SC2317 # called by the trap
	umount_all() {
		for m in dev sys proc; do
			mountpoint -q "$root/$m" && umount -R -l "$root/$m"
		done
		mountpoint -q "$root" && umount -l "$root"
		return 0
	}
	trap 'umount_all' EXIT
	trap 'exit 130' INT TERM HUP
	# The root a mount point of its own, as / is on a machine: the jail's
	# mount(/, MS_PRIVATE) fails with EINVAL in a chroot whose / is not one
	# (src/manager/jail.c), and every managed VM would fail to start.
	mount --bind "$root" "$root"
	mount -t proc proc "$root/proc"
	mount --rbind /sys "$root/sys"
	mount --rbind /dev "$root/dev"
	set -- HOME=/root USER=root LOGNAME=root SHELL=/bin/bash TERM="${TERM:-dumb}" \
		PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
	for v in NESTVM_SKIP_LAB NESTVM_FUZZ_SECONDS LAB_TIMEOUT; do
		eval "[ -n \"\${$v+set}\" ] && set -- \"\$@\" $v=\"\$$v\"" || true
	done
	rc=0
	chroot "$root" /usr/bin/env -i "$@" /bin/sh -c "cd /root/nestvm && $cmd" </dev/null || rc=$?
	exit $rc
fi

# ----------------------------------------------------------------- arguments

cd "$(dirname "$0")/.."
TOP=$(pwd)
SELF=$TOP/scripts/check-fresh-root.sh
MIRROR=${FRESH_MIRROR:-http://deb.debian.org/debian}
START_SET=build-essential,git,ca-certificates

usage() {
	sed -n '/^# usage:/,/^# The starting/{/^# The starting/q;s/^# \{0,1\}//p}' "$SELF" >&2
	exit 2
}

only="test demo" keep=0 reuse=0 dir=
while [ $# -gt 0 ]; do
	case $1 in
	--only) [ $# -ge 2 ] || usage; only=$2; shift 2 ;;
	--only=*) only=${1#*=}; shift ;;
	--keep) keep=1; shift ;;
	--reuse-base) reuse=1; shift ;;
	-h | --help) usage ;;
	-*) echo "check-fresh-root: unknown option $1" >&2; usage ;;
	*) [ -z "$dir" ] || usage; dir=$1; shift ;;
	esac
done
case $only in test | demo | "test demo") ;; *) usage ;; esac

if [ "$(id -u)" -ne 0 ]; then
	echo "check-fresh-root: needs root (debootstrap, chroot, mounts): sudo $0" >&2
	exit 1
fi

dir=${dir:-build/fresh-root}
mkdir -p "$(dirname "$dir")"
dir=$(cd "$(dirname "$dir")" && pwd)/$(basename "$dir")
dir=$(printf "%s" "$dir" | tr -s /) # no "//etc"
dir=${dir%/}
[ -n "$dir" ] || dir=/
case $dir in
/ | /bin | /boot | /dev | /etc | /home | /lib | /proc | /root | /sys | /usr | /var | /tmp)
	echo "check-fresh-root: refusing to use $dir" >&2
	exit 2
	;;
esac
bg_pid=
MARK=.nestvm-fresh-root # only a directory with this mark is ever removed
LOGS=$dir.logs
BASE_TAR=$dir.base.tar

# Mounts under $dir in this namespace (none, normally: they live in the
# step's namespace).
mounts_under() {
	findmnt -rn -o TARGET | grep -F "$dir/" | sort -r || true
}

# Ends what is left of a step: processes whose root is the chroot (daemons a
# package may have started; only processes this script started can be
# there), then any mount under it.
# shellcheck disable=SC2317 # called by the trap
cleanup() {
	if [ -n "$bg_pid" ]; then # debootstrap, and the commands it runs outside the root
		kill "$bg_pid" 2>/dev/null || true
		pkill -TERM -P "$bg_pid" 2>/dev/null || true
	fi
	round=0
	while [ $round -lt 20 ]; do # a parent may fork while its children die
		left=0
		for p in /proc/[0-9]*; do
			[ "$(readlink "$p/root" 2>/dev/null)" = "$dir" ] || continue
			left=1
			[ $round -eq 0 ] && echo "check-fresh-root: killing process ${p#/proc/} in the root" \
				"($(tr '\0' ' ' <"$p/cmdline" 2>/dev/null | cut -c1-60))"
			kill -9 "${p#/proc/}" 2>/dev/null || true
		done
		[ $left -eq 0 ] && break
		round=$((round + 1))
		sleep 0.2
	done
	for m in $(mounts_under); do
		umount -l "$m" 2>/dev/null || true
	done
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

remove_root() {
	[ -e "$dir" ] || return 0
	if [ ! -f "$dir/$MARK" ]; then
		echo "check-fresh-root: $dir exists but was not made by this script; not removing it" >&2
		exit 2
	fi
	if [ -n "$(mounts_under)" ]; then
		echo "check-fresh-root: something is mounted under $dir; not removing it" >&2
		exit 1
	fi
	rm -rf --one-file-system "$dir"
}

# Seconds $1 as "M min S s".
fmt_s() { printf '%d min %02d s' $(($1 / 60)) $(($1 % 60)); }

# What a Debian 12 installer configures and debootstrap does not: APT sources
# for the release, its updates and security archives, and /etc/hosts (without
# it "localhost" does not resolve: test_migrate_stream's test_addresses). No
# service starts inside the chroot. Also run on a --reuse-base root, whose
# tar may come from before a line here was added.
configure_root() {
	cat >"$dir/etc/apt/sources.list" <<-EOF
		deb $MIRROR bookworm main
		deb $MIRROR bookworm-updates main
		deb http://security.debian.org/debian-security bookworm-security main
	EOF
	name=$(cat "$dir/etc/hostname" 2>/dev/null || echo debian)
	cat >"$dir/etc/hosts" <<-EOF
		127.0.0.1	localhost
		127.0.1.1	$name

		::1	localhost ip6-localhost ip6-loopback
		ff02::1	ip6-allnodes
		ff02::2	ip6-allrouters
	EOF
	printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d"
	chmod 755 "$dir/usr/sbin/policy-rc.d"
}

# ------------------------------------------------------------------ the root

if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
	echo "check-fresh-root: warning: uncommitted changes are not checked (git archive HEAD)"
fi
command -v debootstrap >/dev/null || scripts/install-deps.sh debootstrap

remove_root
rm -rf "$LOGS"
mkdir -p "$LOGS"
t_boot=-
if [ $reuse -eq 1 ] && [ -f "$BASE_TAR" ]; then
	echo "check-fresh-root: unpacking the base root of an earlier run ($BASE_TAR; --reuse-base)"
	mkdir -p "$dir"
	tar -xpf "$BASE_TAR" --numeric-owner -C "$dir"
	configure_root
else
	echo "check-fresh-root: debootstrap bookworm (minbase + $START_SET) into $dir from $MIRROR" \
		"(log: $LOGS/debootstrap.log)"
	t0=$(date +%s)
	mkdir -p "$dir"
	touch "$dir/$MARK"
	# In a mount namespace of its own (it mounts the root's /proc and /sys)
	# and in the background, so that a signal ends it at once.
	unshare --mount --propagation private debootstrap --variant=minbase --include=$START_SET \
		bookworm "$dir" "$MIRROR" >"$LOGS/debootstrap.log" 2>&1 &
	bg_pid=$!
	rc=0
	wait $bg_pid || rc=$?
	bg_pid=
	if [ $rc -ne 0 ]; then
		tail -n 20 "$LOGS/debootstrap.log" >&2
		echo "check-fresh-root: debootstrap failed (log: $LOGS/debootstrap.log)" >&2
		exit 1
	fi
	t_boot=$(($(date +%s) - t0))
	echo "check-fresh-root: debootstrap done in $(fmt_s "$t_boot")"
	configure_root
	tar -cpf "$BASE_TAR.tmp" --numeric-owner -C "$dir" . && mv "$BASE_TAR.tmp" "$BASE_TAR"
fi
touch "$dir/$MARK"
rev=$(git rev-parse --short HEAD)
# With the modes `git clone` gives under Debian's umask 022: git archive's
# default (tar.umask 0002) makes the directories 0775, which root's tar keeps,
# and the VM store's check refuses a store below a group-writable directory
# (src/manager/store.c), failing every managed-VM test.
git -c tar.umask=0022 archive --prefix=nestvm/ HEAD | tar -x -C "$dir/root"
echo "check-fresh-root: copied commit $rev (git archive HEAD) to $dir/root/nestvm"

# ------------------------------------------------------------------ the steps

summary=""
failed=0
for step in $only; do
	echo "check-fresh-root: ---- make $step in the fresh root (log: $LOGS/$step.log) ----"
	t0=$(date +%s)
	# In the background, so that a signal's trap runs at once (and kills
	# what runs in the root) rather than when the step ends.
	{
		rc=0
		unshare --mount --propagation private "$SELF" --in-namespace "$dir" "make $step" 2>&1 || rc=$?
		echo "$rc" >"$LOGS/$step.rc"
	} | tee "$LOGS/$step.log" &
	wait $! || true
	secs=$(($(date +%s) - t0))
	cleanup
	rc=$(cat "$LOGS/$step.rc")
	[ "$rc" -eq 0 ] || failed=1
	deps=$(sed -n 's/^install-deps: done in \([0-9]*\) s$/\1/p' "$LOGS/$step.log" | tail -n 1)
	[ -n "$deps" ] && cp "$dir/root/nestvm/build/install-deps.log" "$LOGS/$step.install-deps.log"
	last=$(grep -E '[0-9]+ passed, [0-9]+ failed|^lab: (PASS|FAIL)|LAB FAILURE' "$LOGS/$step.log" |
		tail -n 1 | sed 's/^[[][^]]*[]] //')
	summary="$summary$(printf '  %-34s %-14s exit %s%s' "make $step" "$(fmt_s "$secs")" "$rc" \
		"${last:+: $last}")
"
	if [ -n "$deps" ]; then
		summary="$summary$(printf '    %-32s %s' "of which install-deps.sh" "$(fmt_s "$deps")")
"
	fi
	tests=$(sed -n 's/^time: \([0-9]*\) s$/\1/p' "$LOGS/$step.log" | tail -n 1)
	if [ -n "$tests" ]; then
		summary="$summary$(printf '    %-32s %s' "of which the build" "$(fmt_s $((secs - ${deps:-0} - tests)))")
$(printf '    %-32s %s' "of which tests/run-all.sh" "$(fmt_s "$tests")")
"
	fi
done

echo
echo "check-fresh-root: ---- summary: commit $rev in a fresh Debian 12 root ($dir) ----"
echo "check-fresh-root: host $(uname -r), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "check-fresh-root: starting set: debootstrap minbase + $START_SET"
if [ "$t_boot" = - ]; then
	printf '  %-34s %s\n' "debootstrap" "- (--reuse-base)"
else
	printf '  %-34s %s\n' "debootstrap" "$(fmt_s "$t_boot")"
fi
printf '%s' "$summary"
echo "  root size: $(du -sh --one-file-system "$dir" | cut -f1)"
if [ $failed -ne 0 ]; then
	echo "check-fresh-root: FAIL; the root is kept: $dir (logs: $LOGS)"
	exit 1
fi
if [ $keep -eq 1 ]; then
	echo "check-fresh-root: PASS; the root is kept: $dir (logs: $LOGS)"
else
	remove_root
	echo "check-fresh-root: PASS (logs: $LOGS)"
fi
