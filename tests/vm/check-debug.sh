#!/bin/bash
# Host side of `make check-debug`: the whole suite (tests/vm/check.sh) on a
# debug kernel instead of Debian's.
#
#   1. scripts/build-debug-kernel.sh: linux-source-6.1 + kernel/debug.config
#      (KASAN, lockdep, kmemleak, DEBUG_VM, DEBUG_ATOMIC_SLEEP,
#      DEBUG_OBJECTS, fault injection), cached in /var/cache/rxe-odp;
#      the first build takes long (see README), later runs reuse it;
#   2. scripts/build-rxe.sh against that kernel's tree: our rdma_rxe.ko
#      for it, in BUILD/KERNELRELEASE/;
#   3. tests/vm/check.sh with --kernel/--modroot: every tests/guest script,
#      including 95-inject.sh (failslab/fail_page_alloc aimed at rdma_rxe;
#      the kernel boots with slub_debug=A,kmalloc-* so that failslab may
#      fail kmalloc) and 99-kmemleak.sh (unload, scan), which skip on
#      Debian's kernel.  98-deb-install.sh skips (RXE_DEB_SKIP).
#
# Output and exit status are check.sh's: TAP, then the artifacts, then the
# last line "N passed, N failed, N skipped".  When the kernel log has
# reports, DIR/dmesg-decoded.log has them with file:line
# (scripts/decode_stacktrace.sh).  Any KASAN, lockdep, DEBUG_VM,
# sleeping-in-atomic or debugobjects report in the guest's kernel log
# fails "vm: kernel log clean"; kmemleak reports fail 99-kmemleak.sh.
#
# Usage:
#   tests/vm/check-debug.sh [--out DIR] [--timeout SEC] [--quiet] [--stock]
#   --out      results (default BUILD/check-debug)
#   --timeout  guest time limit in seconds (default 14400: TCG + KASAN)
# Environment: BUILD (default TOP/build), TESTS, TEST_TIMEOUT (default
# here 7200 per script), RDMA_CORE_TESTS, RXE_INJECT_* (95-inject.sh), as
# for check.sh; RXE_DEBUG_KERNEL_CACHE (build-debug-kernel.sh).
# Expects `make tests` to have been run (the Makefile's check-debug does).
set -euo pipefail

TOP=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$TOP/build}
OUT="" TIMEOUT=14400 ARGS=()
while [ $# -gt 0 ]; do
	case "$1" in
	--out) OUT=${2:?}; shift 2 ;;
	--timeout) TIMEOUT=${2:?}; shift 2 ;;
	--quiet|--stock) ARGS+=("$1"); shift ;;
	*) echo "check-debug: usage: check-debug.sh [--out DIR] [--timeout SEC] [--quiet] [--stock]" >&2; exit 64 ;;
	esac
done
OUT=${OUT:-$BUILD/check-debug}

# 1. the kernel (cached; the last line of output is its directory)
t0=$(date +%s)
D=$("$TOP/scripts/build-debug-kernel.sh" | tail -n 1)
[ -f "$D/.complete" ] || { echo "check-debug: error: no debug kernel" >&2; exit 1; }
KREL=$(cat "$D/kernelrelease")
echo "check-debug: kernel $KREL from $D (built in $(cat "$D/build-seconds")s wall," \
	"$(cat "$D/build-cpu-seconds" 2>/dev/null || echo '?')s CPU; this step $(( $(date +%s) - t0 ))s)" >&2

# 2. our module for it
KDIR=$D/build RXE_KDIR_SOURCE_VERSION=$(cat "$D/source-version") \
	"$TOP/scripts/build-rxe.sh" "$KREL" "$BUILD/$KREL" >&2

# 3. the suite
# KASAN and lockdep under TCG make everything several times slower: give
# each verbs operation (a swap-in of 8 MiB from zram, say), each test
# program and each script more time, and do not compare perftest's
# retransmission counts, which measure timing, not correctness (make check
# does).  On the harness every test sets up afresh, so the verbs programs
# together need more than an hour there; each may take 2400 s.
export TEST_TIMEOUT=${TEST_TIMEOUT:-7200}
export T_TIMEOUT_MS=${T_TIMEOUT_MS:-60000}
export ODP_TEST_TIMEOUT=${ODP_TEST_TIMEOUT:-2400}
export PERFTEST_RETRY_CHECK=${PERFTEST_RETRY_CHECK:-0}
# The package install test builds, through DKMS, the same sources that were
# just built and are tested here; under KASAN and TCG that build alone
# takes hours.  make check runs it on Debian's kernel.
export RXE_DEB_SKIP=${RXE_DEB_SKIP-"the DKMS build of the package is tested by make check (Debian's kernel); on the debug kernel it takes hours"}
rc=0
"$TOP/tests/vm/check.sh" --kver "$KREL" --module "$BUILD/$KREL/rdma_rxe.ko" \
	--out "$OUT" --timeout "$TIMEOUT" --kernel "$D/vmlinuz" --modroot "$D/root" \
	--append "no_hash_pointers slub_debug=A,kmalloc-*" "${ARGS[@]+"${ARGS[@]}"}" || rc=$?

# 4. reports with file:line (stderr: the last line of stdout stays
# check.sh's closing line)
if [ -s "$OUT/log-issues.txt" ] && [ -s "$OUT/dmesg.log" ]; then
	"$D/src/scripts/decode_stacktrace.sh" "$D/build/vmlinux" "$D/src" "$BUILD/$KREL" \
		<"$OUT/dmesg.log" >"$OUT/dmesg-decoded.log" 2>/dev/null || true
	echo "check-debug: kernel reports with file:line: $OUT/dmesg-decoded.log" >&2
fi
exit "$rc"
