#!/bin/sh
# Check that the patch series bisects: apply it one patch at a time to a
# fresh drivers/infiniband/sw/rxe from linux-source-6.1 and build rdma_rxe.ko
# after each one, as a kernel tree that carried the series would be built
# (its own Makefile, against the headers of KVER).
#
#   series-check.sh [KVER]
#
# A patch fails the check if it does not apply with patch -F0, if the build
# fails, or if the build prints a compiler warning that the stock tree's
# build does not.  Exit status: the number of patches that failed (at most
# 1: the check stops at the first failure, since the rest build on it).
set -eu

die() { echo "series-check: error: $*" >&2; exit 1; }

TOP=$(cd "$(dirname "$0")/.." && pwd)
KVER=${1:-$("$TOP/scripts/kver.sh")}
[ -n "$KVER" ] || die "no Debian 6.1 kernel with headers installed"
KDIR=${KDIR:-/lib/modules/$KVER/build}
TARBALL=${LINUX_SOURCE_TARBALL:-/usr/src/linux-source-6.1.tar.xz}
[ -d "$KDIR" ] || die "$KDIR missing (apt install linux-headers-$KVER)"
[ -f "$TARBALL" ] || die "$TARBALL missing (apt install linux-source-6.1)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/series-check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
"$TOP/scripts/series.sh" "$WORK/patches"
mkdir "$WORK/tree"
tar -xJf "$TARBALL" -C "$WORK/tree" --strip-components=1 \
	linux-source-6.1/drivers/infiniband/sw/rxe ||
	die "cannot extract rxe from $TARBALL"
RXE=$WORK/tree/drivers/infiniband/sw/rxe

# build: the compiler's warnings and errors, in $WORK/build.log
build() {
	if ! make -s -C "$KDIR" M="$RXE" modules >"$WORK/build.log" 2>&1; then
		return 1
	fi
	grep -E '(warning|error):' "$WORK/build.log" >"$WORK/diag" || true
	! grep -qvxF -f "$WORK/stock.diag" "$WORK/diag"
}

: >"$WORK/stock.diag"
build || { cat "$WORK/build.log" >&2; die "stock rxe does not build against $KDIR"; }
cp "$WORK/diag" "$WORK/stock.diag"

total=$(grep -c . "$WORK/patches/series")
n=0
while read -r p; do
	n=$((n + 1))
	if ! patch -d "$WORK/tree" -p1 --batch --forward --no-backup-if-mismatch \
		-s -F0 -i "$WORK/patches/$p" >"$WORK/patch.log" 2>&1; then
		echo "not ok $n/$total $p: does not apply"
		sed 's/^/  /' "$WORK/patch.log"
		exit 1
	fi
	if ! build; then
		echo "not ok $n/$total $p: does not build cleanly"
		grep -E '(warning|error):' "$WORK/build.log" | sed 's/^/  /' | head -20
		exit 1
	fi
	echo "ok $n/$total $p"
done <"$WORK/patches/series"
echo "series-check: all $total patches apply and build, one at a time ($KVER)"
