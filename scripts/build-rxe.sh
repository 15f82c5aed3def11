#!/bin/sh
# Assemble and build the ODP-capable rdma_rxe.ko for one Debian 6.1 kernel.
#
#   build-rxe.sh KVER OUTDIR
#
# 1. check that linux-source-6.1 and linux-headers-KVER come from the same
#    Debian release (a module built from one release's rxe against another's
#    headers may load and then misbehave, so refuse instead);
# 2. extract drivers/infiniband/sw/rxe from /usr/src/linux-source-6.1.tar.xz;
# 3. apply drivers/patches/series in order (quilt layout, -p1), completed
#    by scripts/series.sh: the patches that add our own sources (kernel/
#    notifier core, drivers/ rxe ODP code) get them from this tree;
# 4. build against /lib/modules/KVER/build with the patched rxe Makefile;
# 5. unless RXE_SELFTEST=0 (DKMS), build OUTDIR/selftest/test_odp_mirror.ko,
#    the notifier core with its test device (kernel/Kbuild, tests/core/).
#
# KDIR=DIR builds against another kernel tree.  For a kernel built from
# linux-source-6.1 itself (the debug kernel of scripts/build-debug-kernel.sh)
# there is no linux-headers package to compare: set also
# RXE_KDIR_SOURCE_VERSION to the Debian version of linux-source-6.1 that
# KDIR was built from, and step 1 compares that with the installed
# linux-source-6.1 instead.
set -eu

die() { echo "build-rxe: error: $*" >&2; exit 1; }

[ $# -eq 2 ] || die "usage: build-rxe.sh KVER OUTDIR"
KVER=$1
mkdir -p "$2"; OUT=$(cd "$2" && pwd)
TOP=$(cd "$(dirname "$0")/.." && pwd)
TARBALL=${LINUX_SOURCE_TARBALL:-/usr/src/linux-source-6.1.tar.xz}
KDIR_GIVEN=${KDIR:+1}
KDIR=${KDIR:-/lib/modules/$KVER/build}

[ -f "$TARBALL" ] || die "$TARBALL missing (apt install linux-source-6.1)"
[ -d "$KDIR" ] || die "$KDIR missing (apt install linux-headers-$KVER)"

src_ver=$(dpkg-query -W -f='${Version}' linux-source-6.1 2>/dev/null) ||
	die "linux-source-6.1 is not an installed Debian package"
if [ -n "${RXE_KDIR_SOURCE_VERSION:-}" ]; then
	# A tree built from linux-source-6.1 (KDIR must be given explicitly).
	[ -n "$KDIR_GIVEN" ] ||
		die "RXE_KDIR_SOURCE_VERSION needs KDIR= (the tree built from linux-source-6.1)"
	[ "$src_ver" = "$RXE_KDIR_SOURCE_VERSION" ] ||
		die "linux-source-6.1 is $src_ver but $KDIR was built from linux-source-6.1 $RXE_KDIR_SOURCE_VERSION: rebuild it"
else
	hdr_ver=$(dpkg-query -W -f='${Version}' "linux-headers-$KVER" 2>/dev/null) ||
		die "linux-headers-$KVER is not an installed Debian package"
	[ "$src_ver" = "$hdr_ver" ] ||
		die "linux-source-6.1 is $src_ver but linux-headers-$KVER is $hdr_ver: install matching versions"
fi

stamp="$src_ver $(cat "$TOP/drivers/patches/series" | tr '\n' ' ')"
rm -rf "$OUT.tmp"
mkdir -p "$OUT.tmp"
tar -xJf "$TARBALL" -C "$OUT.tmp" --strip-components=1 \
	linux-source-6.1/drivers/infiniband/sw/rxe ||
	die "cannot extract rxe from $TARBALL"

# Apply the series; a patch that does not apply cleanly stops the build.
sh "$TOP/scripts/series.sh" "$OUT.tmp/patches"
while read -r p; do
	if ! patch -d "$OUT.tmp" -p1 --batch --forward --no-backup-if-mismatch \
		-s -F0 -i "$OUT.tmp/patches/$p" >"$OUT.tmp/patch.log" 2>&1; then
		echo "build-rxe: error: patch $p does not apply to linux-source-6.1 $src_ver" >&2
		exit 1
	fi
done <"$OUT.tmp/patches/series" || exit 1

rm -rf "$OUT"
mkdir -p "$OUT"
cp "$OUT.tmp"/drivers/infiniband/sw/rxe/*.[ch] \
	"$OUT.tmp"/drivers/infiniband/sw/rxe/Makefile "$OUT/"
# the notifier core alone, with its test device (tests/core/)
mkdir -p "$OUT/selftest"
for f in kernel/Kbuild kernel/odp_mirror.c kernel/odp_mirror.h \
	kernel/odp_aging.c kernel/odp_aging.h kernel/odp_mirror_test.c \
	kernel/test_odp_mirror.h; do
	[ -f "$TOP/$f" ] || die "$f missing from the source tree"
	cp "$TOP/$f" "$OUT/selftest/"
done
rm -rf "$OUT.tmp"
echo "$stamp" >"$OUT/.source"

make -s -C "$KDIR" M="$OUT" ${KBUILD_EXTRA:-} modules
if [ "${RXE_SELFTEST:-1}" != 0 ]; then
	make -s -C "$KDIR" M="$OUT/selftest" ${KBUILD_EXTRA:-} modules
	echo "build-rxe: $OUT/rdma_rxe.ko and $OUT/selftest/test_odp_mirror.ko (linux-source-6.1 $src_ver, $KVER)"
else
	echo "build-rxe: $OUT/rdma_rxe.ko (linux-source-6.1 $src_ver, $KVER)"
fi
