#!/bin/sh
# DKMS's build step for rxe-odp (dkms.conf's MAKE[0]); runs in DKMS's copy
# of the sources, /var/lib/dkms/rxe-odp/VERSION/build:
#
#   dkms-build.sh KVER KDIR OUTDIR [MAKEVAR=VALUE...]
#
# Builds OUTDIR/rdma_rxe.ko for kernel KVER against the headers in KDIR with
# scripts/build-rxe.sh, the same step as `make module`: rxe is extracted
# from /usr/src/linux-source-6.1.tar.xz and patched with drivers/patches.
# Extra arguments (dkms appends CC=clang/LD=ld.lld for clang-built kernels)
# are passed to the kernel's make.  Jobs: DKMS's own -j does not reach us
# (our command is not "make ..."), so use every CPU unless MAKEFLAGS says.
set -eu

[ $# -ge 3 ] || { echo "dkms-build: usage: dkms-build.sh KVER KDIR OUTDIR [VAR=VALUE...]" >&2; exit 2; }
KVER=$1 KDIR=$2 OUTDIR=$3
shift 3
HERE=$(cd "$(dirname "$0")" && pwd)

case "${MAKEFLAGS:-}" in
*j*) ;;
*) MAKEFLAGS="-j$(nproc 2>/dev/null || echo 1)${MAKEFLAGS:+ $MAKEFLAGS}"; export MAKEFLAGS ;;
esac

KBUILD_EXTRA="${KBUILD_EXTRA:-}${*:+ $*}"
# an installed system needs no test module of the core
RXE_SELFTEST=0
export KDIR KBUILD_EXTRA RXE_SELFTEST
echo "dkms-build: rdma_rxe for $KVER (headers $KDIR, MAKEFLAGS=$MAKEFLAGS)"
exec sh "$HERE/build-rxe.sh" "$KVER" "$OUTDIR"
