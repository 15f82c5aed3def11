#!/bin/sh
# Install, idempotently, every Debian package rxe-odp needs to build, boot
# its test VM and run the test suite.  Nothing is fetched outside apt.
set -eu

PKGS="linux-image-amd64 linux-headers-amd64 linux-source-6.1
qemu-system-x86 busybox-static cpio kmod
rdma-core ibverbs-utils rdmacm-utils perftest infiniband-diags
libibverbs-dev librdmacm-dev python3-pyverbs
numactl libnuma-dev iproute2
build-essential bc flex bison libelf-dev libssl-dev xz-utils patch
sparse gnuplot-nox python3
dkms dh-dkms debhelper lintian pkgconf
fuse3 libfuse3-dev
ucx-utils libucx0 libucx-dev openmpi-bin libopenmpi-dev netpipe-openmpi
libfabric-bin"

missing=""
for p in $PKGS; do
	st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case "$st" in
	*" installed") ;;
	*) missing="$missing $p" ;;
	esac
done

[ -z "$missing" ] && exit 0

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
echo "deps: installing:$missing"
$SUDO apt-get update -qq
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
	--no-install-recommends $missing >/dev/null
echo "deps: done"
