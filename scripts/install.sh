#!/bin/sh
# `make install` / `make uninstall` without the Debian packages: register
# rdma_rxe with DKMS and install librxeodp (userspace/).
#
#   install.sh install     /usr/src/rxe-odp-VERSION (+ dkms.conf), dkms's
#                          version override for rxe-odp, then `dkms install`
#                          for every installed 6.1 kernel with headers
#                          (older rxe-odp versions are removed first, so this
#                          is also the upgrade); librxeodp into PREFIX
#   install.sh uninstall   `dkms remove` of every rxe-odp version, their
#                          /usr/src trees, the override, librxeodp
#
# Environment: DESTDIR (stage the files only: no dkms, no ldconfig),
# PREFIX for librxeodp (default /usr/local), BUILD (the build directory,
# default build/).  Refuses to touch a system where rxe-odp-dkms (the .deb)
# is installed: use apt there.  VERSION comes from scripts/version.sh.
set -eu

die() { echo "install: error: $*" >&2; exit 1; }
msg() { echo "install: $*"; }

TOP=$(cd "$(dirname "$0")/.." && pwd)
DESTDIR=${DESTDIR:-}
PREFIX=${PREFIX:-/usr/local}
BUILD=${BUILD:-$TOP/build}
NAME=rxe-odp
FORCE_FILE=/usr/share/dkms/modules_to_force_install/$NAME

[ $# -eq 1 ] || die "usage: install.sh install|uninstall"
[ -n "$DESTDIR" ] || [ "$(id -u)" -eq 0 ] || die "run as root (sudo make $1), or set DESTDIR"

if [ -z "$DESTDIR" ] &&
	dpkg-query -W -f='${Status}' rxe-odp-dkms 2>/dev/null | grep -q ' installed$'; then
	die "rxe-odp-dkms (the Debian package) is installed: upgrade or remove it with apt/dpkg, not make $1"
fi

# Kernels DKMS can build for: Debian 6.1 kernels whose headers are there.
kernels() {
	for d in /lib/modules/6.1.*; do
		[ -e "$d/build/include" ] && basename "$d"
	done
	return 0
}

remove_all() {	# every registered rxe-odp version and its sources
	v=""
	if [ -z "$DESTDIR" ] && command -v dkms >/dev/null; then
		for d in /var/lib/dkms/$NAME/*; do
			v=${d##*/}
			[ -d "$d/source" ] || [ -L "$d/source" ] || continue
			msg "dkms remove $NAME/$v --all"
			dkms remove -m "$NAME" -v "$v" --all
		done
	fi
	rm -rf "$DESTDIR/usr/src/$NAME"-*
	rm -f "$DESTDIR$FORCE_FILE"
}

case "$1" in
install)
	VERSION=$(sh "$TOP/scripts/version.sh")
	if [ -z "$DESTDIR" ]; then
		command -v dkms >/dev/null || die "dkms missing: apt install dkms"
		[ -f /usr/src/linux-source-6.1.tar.xz ] || die "linux-source-6.1 missing: apt install linux-source-6.1"
		[ -n "$(kernels)" ] || die "no 6.1 kernel with headers: apt install linux-headers-amd64"
	fi
	remove_all
	msg "DKMS sources $DESTDIR/usr/src/$NAME-$VERSION"
	sh "$TOP/scripts/dkms-src.sh" "$DESTDIR/usr/src/$NAME-$VERSION" "$VERSION"
	# Neither module has a MODULE_VERSION: without the override dkms
	# takes them for the same version and keeps the stock one.
	install -d -m 755 "$DESTDIR${FORCE_FILE%/*}"
	echo "${NAME}_version-override" >"$DESTDIR$FORCE_FILE"
	msg "librxeodp into $DESTDIR$PREFIX"
	make -s -C "$TOP/userspace" BUILD="$BUILD" PREFIX="$PREFIX" DESTDIR="$DESTDIR" install
	[ -z "$DESTDIR" ] || exit 0

	ldconfig
	dkms add -m "$NAME" -v "$VERSION"
	for k in $(kernels); do
		msg "building rdma_rxe for $k (a minute or two)"
		dkms install -m "$NAME" -v "$VERSION" -k "$k"
	done
	msg "done: $NAME/$VERSION.  Load it with: modprobe -r rdma_rxe; modprobe rdma_rxe"
	msg "(delete rxe links first: rdma link delete rxe0); check: cat /sys/module/rdma_rxe/parameters/odp"
	;;
uninstall)
	remove_all
	make -s -C "$TOP/userspace" BUILD="$BUILD" PREFIX="$PREFIX" DESTDIR="$DESTDIR" uninstall
	[ -n "$DESTDIR" ] || ldconfig
	msg "removed; the stock rdma_rxe is used from the next modprobe rdma_rxe (modprobe -r rdma_rxe first)"
	;;
*)
	die "usage: install.sh install|uninstall"
	;;
esac
