#!/bin/bash
# Build (or find in the cache) rxe-odp's debug test kernel: linux-source-6.1
# configured with `make tinyconfig` + kernel/debug.config (KASAN, lockdep,
# kmemleak, DEBUG_VM, DEBUG_ATOMIC_SLEEP, DEBUG_OBJECTS, fault injection,
# and what the test VM needs), with kernel/debug-kernel.patch applied.
#
#   build-debug-kernel.sh [--jobs N] [--quiet] [--config-only]
#
# The kernel is cached OUTSIDE the repository, in
#   ${RXE_DEBUG_KERNEL_CACHE:-/var/cache/rxe-odp/debug-kernel}/SRCVER-HASH/
# where SRCVER is the Debian version of the installed linux-source-6.1
# package and HASH covers kernel/debug.config, kernel/debug-kernel.patch,
# the compiler's version and RECIPE below.  A complete entry is reused as
# is; a build interrupted half way is resumed (make is incremental).
#
# The LAST line of stdout is the entry's directory, which holds:
#   vmlinuz            the kernel image (bzImage)
#   kernelrelease      `uname -r` of that kernel (6.1.N-rxeodp-debug)
#   source-version     SRCVER, for scripts/build-rxe.sh
#   root/lib/modules/KERNELRELEASE/   modules_install output (INSTALL_MOD_PATH)
#   build/             the O= object tree: KDIR for out-of-tree modules,
#                      vmlinux for scripts/decode_stacktrace.sh
#   src/               the patched source tree (build/ refers to it)
#   build.log, build-seconds (wall), build-cpu-seconds (make's user+sys
#   of the last run), config (the final .config)
#
# Environment: RXE_DEBUG_KERNEL_CACHE (cache root), LINUX_SOURCE_TARBALL.
# Builds with `nice -n 10` and 2 jobs unless told otherwise.
set -euo pipefail

# Bump when the way the tree is configured or built changes (not for
# changes to debug.config or the patch: those are hashed).
RECIPE=1

TOP=$(cd "$(dirname "$0")/.." && pwd)
die() { echo "build-debug-kernel: error: $*" >&2; exit 1; }
msg() { [ "$QUIET" = 1 ] || echo "build-debug-kernel: $*" >&2; }

JOBS=2 QUIET=0 CONFIG_ONLY=0
while [ $# -gt 0 ]; do
	case "$1" in
	--jobs) JOBS=${2:?}; shift 2 ;;
	--quiet) QUIET=1; shift ;;
	--config-only) CONFIG_ONLY=1; shift ;;	# stop after checking the .config
	*) die "usage: build-debug-kernel.sh [--jobs N] [--quiet] [--config-only]" ;;
	esac
done

TARBALL=${LINUX_SOURCE_TARBALL:-/usr/src/linux-source-6.1.tar.xz}
CACHE=${RXE_DEBUG_KERNEL_CACHE:-/var/cache/rxe-odp/debug-kernel}
FRAG=$TOP/kernel/debug.config
PATCHF=$TOP/kernel/debug-kernel.patch

[ -f "$TARBALL" ] || die "$TARBALL missing (apt install linux-source-6.1)"
[ -f "$FRAG" ] && [ -f "$PATCHF" ] || die "kernel/debug.config or kernel/debug-kernel.patch missing"
case "$TOP" in "$CACHE"|"$CACHE"/*) die "the cache must be outside the repository" ;; esac
for t in gcc make flex bison bc xz patch depmod; do
	command -v "$t" >/dev/null || die "$t missing (run: sh scripts/deps.sh)"
done
SRCVER=$(dpkg-query -W -f='${Version}' linux-source-6.1 2>/dev/null) ||
	die "linux-source-6.1 is not an installed Debian package"

HASH=$( { echo "recipe $RECIPE"; gcc --version | head -n 1; cat "$FRAG" "$PATCHF"; } |
	sha256sum | cut -c1-12)
D=$CACHE/$SRCVER-$HASH
mkdir -p "$CACHE"

# One builder per entry; others wait for it (and then find it complete).
exec 8>"$CACHE/.lock-$SRCVER-$HASH"
if ! flock -n 8; then
	msg "another build of $D is running; waiting for it"
	flock 8
fi

if [ -f "$D/.complete" ]; then
	msg "cached: $D ($(cat "$D/kernelrelease"), built in $(cat "$D/build-seconds")s)"
	echo "$D"
	exit 0
fi

mkdir -p "$D"
start=$(date +%s)
[ ! -f "$D/build-seconds.partial" ] || start=$((start - $(cat "$D/build-seconds.partial")))

# 1. source: extract once, patch, and record what it is.
if [ ! -f "$D/src/.rxeodp-extracted" ]; then
	msg "extracting $TARBALL ($SRCVER)"
	rm -rf "$D/src" "$D/src.tmp"
	mkdir -p "$D/src.tmp"
	nice -n 10 tar -xJf "$TARBALL" -C "$D/src.tmp" --strip-components=1 ||
		die "cannot extract $TARBALL"
	patch -d "$D/src.tmp" -p1 --batch --forward -s -F0 -i "$PATCHF" ||
		die "kernel/debug-kernel.patch does not apply to linux-source-6.1 $SRCVER"
	echo "$SRCVER" >"$D/src.tmp/.rxeodp-extracted"
	mv "$D/src.tmp" "$D/src"
fi
echo "$SRCVER" >"$D/source-version"

# 2. configuration: tinyconfig + our fragment, then check that every line
# of the fragment made it (Kconfig drops what it cannot satisfy quietly).
K=(make -s -C "$D/src" O="$D/build" ARCH=x86_64)
if [ ! -f "$D/build/.rxeodp-configured" ]; then
	msg "configuring (tinyconfig + kernel/debug.config)"
	mkdir -p "$D/build"
	"${K[@]}" tinyconfig >"$D/build/tinyconfig.log" 2>&1
	(cd "$D/build" && "$D/src/scripts/kconfig/merge_config.sh" -m -O "$D/build" \
		"$D/build/.config" "$FRAG" >/dev/null)
	"${K[@]}" olddefconfig >"$D/build/olddefconfig.log" 2>&1
	bad=0
	while IFS= read -r line; do
		case "$line" in
		CONFIG_*=*) want=$line; sym=${line%%=*} ;;
		"# CONFIG_"*" is not set") want=$line; sym=${line#\# }; sym=${sym%% *} ;;
		*) continue ;;
		esac
		have=$(grep -E "^($sym=|# $sym is not set)" "$D/build/.config" || true)
		# "not set" is also satisfied by the symbol being absent.
		if [ "$have" != "$want" ] && ! { [ -z "$have" ] && [ "${want#\# }" != "$want" ]; }; then
			echo "build-debug-kernel: kernel/debug.config: wanted '$want', got '${have:-<absent>}'" >&2
			bad=1
		fi
	done <"$FRAG"
	[ "$bad" = 0 ] || die "kernel/debug.config does not apply as written (see above)"
	touch "$D/build/.rxeodp-configured"
fi
cp "$D/build/.config" "$D/config"
if [ "$CONFIG_ONLY" = 1 ]; then
	msg "configured: $D/config"
	echo "$D"
	exit 0
fi

# 3. build and install the modules into a staging root.
msg "building in $D/build (nice -n 10, -j$JOBS; log: $D/build.log)"
# CPU seconds of make and its children (user+sys), for the record: wall
# time depends on whatever else the machine runs.
TIMEFORMAT='%U %S'
if ! { time nice -n 10 make -C "$D/src" O="$D/build" ARCH=x86_64 -j"$JOBS" bzImage modules \
	>"$D/build.log" 2>&1; } 2>"$D/build-cpu.tmp"; then
	echo $(( $(date +%s) - start )) >"$D/build-seconds.partial"
	tail -n 30 "$D/build.log" >&2
	die "kernel build failed (log: $D/build.log)"
fi
KREL=$(cat "$D/build/include/config/kernel.release")
rm -rf "$D/root.tmp"
nice -n 10 make -s -C "$D/src" O="$D/build" ARCH=x86_64 INSTALL_MOD_PATH="$D/root.tmp" \
	modules_install >>"$D/build.log" 2>&1 || die "modules_install failed (log: $D/build.log)"
# the build/source links would point into the cache anyway; drop them so
# that nothing in the guest follows them.
rm -f "$D/root.tmp/lib/modules/$KREL/build" "$D/root.tmp/lib/modules/$KREL/source"
rm -rf "$D/root"
mv "$D/root.tmp" "$D/root"
cp "$D/build/arch/x86/boot/bzImage" "$D/vmlinuz"
echo "$KREL" >"$D/kernelrelease"
secs=$(( $(date +%s) - start ))
echo "$secs" >"$D/build-seconds"
read -r u sy <"$D/build-cpu.tmp" && echo "${u%.*} ${sy%.*}" | awk '{print $1 + $2}' >"$D/build-cpu-seconds"
rm -f "$D/build-cpu.tmp"
rm -f "$D/build-seconds.partial"
touch "$D/.complete"
msg "built $KREL in ${secs}s wall ($(cat "$D/build-cpu-seconds")s CPU in make): $D"
echo "$D"
