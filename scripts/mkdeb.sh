#!/bin/sh
# Build rxe-odp's Debian packages with Debian's own tools and check them
# with lintian:
#
#   mkdeb.sh OUTDIR
#
# The packaged files (debian/, dkms.conf, kernel/, drivers/,
# include/, userspace/, scripts/) are copied to OUTDIR/rxe-odp-VERSION,
# debian/changelog is written there from git (scripts/version.sh: e.g.
# 0.0~git20261121.12.6f99d5e; the entry names the commit), and
# `dpkg-buildpackage -us -uc -b` builds, into OUTDIR:
#   rxe-odp-dkms_VERSION_all.deb      DKMS source of rdma_rxe with ODP
#   librxeodp1_VERSION_ARCH.deb       librxeodp.so.1, librxeodp-preload.so
#   librxeodp-dev_VERSION_ARCH.deb    header, .so, .a, rxeodp.pc, man page
# and the .changes / .buildinfo.  Packages of earlier runs are removed from
# OUTDIR first, so there is exactly one of each.  lintian then checks the
# .changes; its findings are printed and any error fails the build (exit 1).
# LINTIAN=0 skips lintian.
set -eu

die() { echo "mkdeb: error: $*" >&2; exit 1; }

[ $# -eq 1 ] || die "usage: mkdeb.sh OUTDIR"
TOP=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$1"
OUT=$(cd "$1" && pwd)

for t in dpkg-buildpackage dh dh_dkms; do
	command -v "$t" >/dev/null ||
		die "$t missing (apt install dpkg-dev debhelper dh-dkms; make deps installs them)"
done

VERSION=$(sh "$TOP/scripts/version.sh")
SRC=$OUT/rxe-odp-$VERSION

rm -rf "$OUT"/rxe-odp-* "$OUT"/*.deb "$OUT"/*.changes "$OUT"/*.buildinfo "$OUT"/lintian.txt "$OUT"/lintian.rc
mkdir -p "$SRC"
(cd "$TOP" && cp -a debian dkms.conf kernel drivers include userspace scripts "$SRC/")
# Build products of the developer's tree must not leak in.
rm -rf "$SRC/debian/build" "$SRC/debian/tmp" "$SRC/debian/changelog"
find "$SRC" \( -name '*.o' -o -name '*.ko' -o -name '*.so' -o -name '*.a' \) -delete

# debian/changelog from git: one entry for this snapshot.
if git -C "$TOP" rev-parse --verify -q HEAD >/dev/null 2>&1; then
	date=$(git -C "$TOP" log -1 --format=%cD HEAD)
	what="Snapshot of git commit $(git -C "$TOP" rev-parse --short=12 HEAD): $(git -C "$TOP" log -1 --format=%s HEAD)"
	case "$VERSION" in *.dirty) what="$what (with uncommitted changes)" ;; esac
else
	date=$(date -R)
	what="Build from a tree without git history."
fi
maint=$(sed -n 's/^Maintainer: //p' "$SRC/debian/control")
{
	echo "rxe-odp ($VERSION) unstable; urgency=medium"
	echo
	echo "$what" | fold -s -w 72 | sed '1s/^/  * /; 1!s/^/    /; s/ *$//'
	echo
	echo " -- $maint  $date"
} >"$SRC/debian/changelog"

echo "mkdeb: building rxe-odp $VERSION in $SRC"
# The tree's mtimes are a build's: reproducible enough with the commit date.
SOURCE_DATE_EPOCH=$(date -d "$date" +%s)
export SOURCE_DATE_EPOCH
(cd "$SRC" && dpkg-buildpackage -us -uc -b) >"$OUT/build.log" 2>&1 || {
	tail -n 40 "$OUT/build.log" >&2
	die "dpkg-buildpackage failed (full log: $OUT/build.log)"
}
changes=$(ls "$OUT"/rxe-odp_*.changes)
for f in $(sed -n '/^Files:/,$ s/^ [0-9a-f]\{32\} .* \([^ ]*\.deb\)$/\1/p' "$changes"); do
	echo "mkdeb: $OUT/$f"
done

[ "${LINTIAN:-1}" = 1 ] || exit 0
command -v lintian >/dev/null || die "lintian missing (apt install lintian)"
# Everything down to pedantic tags is reported; only errors are fatal.
{
	lintian --fail-on error --info --display-info --pedantic "$changes" 2>&1
	echo "$?" >"$OUT/lintian.rc"
} | grep -v 'running with root privileges' >"$OUT/lintian.txt" || true
rc=$(cat "$OUT/lintian.rc")
if [ -s "$OUT/lintian.txt" ]; then
	sed 's/^/mkdeb: lintian: /' "$OUT/lintian.txt"
else
	echo "mkdeb: lintian: no findings"
fi
[ "$rc" = 0 ] || die "lintian reported errors (exit $rc)"
