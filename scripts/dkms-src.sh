#!/bin/sh
# Populate a DKMS source tree (what goes to /usr/src/rxe-odp-VERSION):
#
#   dkms-src.sh DIR [VERSION]
#
# DIR gets the repo layout that scripts/build-rxe.sh expects:
# kernel/*.[ch], drivers/*.[ch], drivers/patches/ (series and patches),
# scripts/build-rxe.sh, scripts/series.sh and scripts/dkms-build.sh.
# With VERSION, DIR also gets dkms.conf with PACKAGE_VERSION set to it
# (the Debian package has dh_dkms install dkms.conf instead).  Used by `make install` and
# debian/rules.
set -eu

[ $# -ge 1 ] && [ $# -le 2 ] || { echo "dkms-src: usage: dkms-src.sh DIR [VERSION]" >&2; exit 2; }
DIR=$1 VERSION=${2:-}
TOP=$(cd "$(dirname "$0")/.." && pwd)

install -d -m 755 "$DIR/kernel" "$DIR/drivers/patches" "$DIR/scripts"
install -m 644 "$TOP"/kernel/*.[ch] "$TOP/kernel/Kbuild" "$DIR/kernel/"
install -m 644 "$TOP"/drivers/*.[ch] "$DIR/drivers/"
install -m 644 "$TOP/drivers/patches/series" "$DIR/drivers/patches/"
# Only the patches the series names (and exactly those).
grep -v '^[[:space:]]*\(#\|$\)' "$TOP/drivers/patches/series" | while read -r p; do
	install -m 644 "$TOP/drivers/patches/$p" "$DIR/drivers/patches/$p"
done
install -m 755 "$TOP/scripts/build-rxe.sh" "$TOP/scripts/series.sh" \
	"$TOP/scripts/dkms-build.sh" "$DIR/scripts/"
if [ -n "$VERSION" ]; then
	sed "s/#MODULE_VERSION#/$VERSION/" "$TOP/dkms.conf" >"$DIR/dkms.conf"
	chmod 644 "$DIR/dkms.conf"
fi
