#!/bin/sh
# Cut rxe's directory out of /usr/src/linux-source-6.1.tar.xz into a small
# tarball with the same layout, for make check's package test
# (tests/guest/98-deb-install.sh):
#
#   rxe-source-subset.sh OUTDIR   -> OUTDIR/linux-source-6.1_VERSION_rxe.tar.xz
#
# The guest's DKMS build reads it instead of the full tarball
# (LINUX_SOURCE_TARBALL, honoured by scripts/build-rxe.sh): under QEMU's TCG,
# xz-decompressing all 1.3 GB of linux-source-6.1 takes the guest many
# minutes, and `make module` already runs the extraction itself on the host.
# VERSION is the installed linux-source-6.1's; the file is kept while that
# does not change.
set -eu

die() { echo "rxe-source-subset: error: $*" >&2; exit 1; }

[ $# -eq 1 ] || die "usage: rxe-source-subset.sh OUTDIR"
TARBALL=/usr/src/linux-source-6.1.tar.xz
[ -f "$TARBALL" ] || die "$TARBALL missing (apt install linux-source-6.1)"
ver=$(dpkg-query -W -f='${Version}' linux-source-6.1) ||
	die "linux-source-6.1 is not an installed Debian package"
mkdir -p "$1"
OUT=$(cd "$1" && pwd)/linux-source-6.1_${ver}_rxe.tar.xz
[ -s "$OUT" ] && [ "$OUT" -nt "$TARBALL" ] && exit 0

rm -f "$(dirname "$OUT")"/linux-source-6.1_*_rxe.tar.xz
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
tar -xJf "$TARBALL" -C "$tmp" linux-source-6.1/drivers/infiniband/sw/rxe ||
	die "cannot extract rxe from $TARBALL"
tar -cJf "$OUT.tmp" -C "$tmp" linux-source-6.1
mv -f "$OUT.tmp" "$OUT"
echo "rxe-source-subset: $OUT"
