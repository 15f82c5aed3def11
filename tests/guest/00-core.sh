#!/bin/bash
# The notifier core alone, before anything of rxe: test_odp_mirror.ko (the
# core with a test device, kernel/odp_mirror_test.c, built next to
# rdma_rxe.ko in selftest/) is loaded, tests/core/odp_mirror_tests (on
# kselftest_harness.h) runs, and the module must unload.  TAP from the
# harness.  Runs INSIDE the test guest, as root.
#
# Environment: RXE_MODULE (our rdma_rxe.ko; the test module is looked for
# beside it), RXE_CORE_MODULE (the test module itself, instead),
# RXE_ODP_BUILD (build directory, default TOP/build), RXE_STOCK=1 (the
# stock module is under test: there is no core to test).
#
# Alone, in a guest:
#   tests/vm/run-vm.sh --kver KVER --module M.ko --out DIR -- tests/guest/00-core.sh
set -u

TOP=${RXE_ODP_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
BIN=${RXE_ODP_BUILD:-$TOP/build}/tests/odp_mirror_tests
KO=${RXE_CORE_MODULE:-$(dirname "${RXE_MODULE:-/nonexistent/x}")/selftest/test_odp_mirror.ko}

plan_fail() {	# plan_fail WHY: one failed result
	echo "TAP version 13"
	echo "1..1"
	echo "not ok 1 notifier core self-test: $1"
	exit 1
}

if [ "${RXE_STOCK:-0}" = 1 ]; then
	echo "TAP version 13"
	echo "1..1"
	echo "ok 1 notifier core self-test # SKIP the stock rdma_rxe has no core"
	exit 0
fi
[ -x "$BIN" ] || plan_fail "$BIN not built"
[ -f "$KO" ] || plan_fail "$KO not built"
out=$(insmod "$KO" 2>&1) || plan_fail "insmod $KO: $out"

# The tests count the entries that invalidations take away; NUMA
# balancing's hinting scans invalidate ranges of their own meanwhile.
NB=/proc/sys/kernel/numa_balancing
nb=$(cat "$NB" 2>/dev/null || echo 0)
[ "$nb" = 0 ] || echo 0 >"$NB"

"$BIN"
rc=$?

[ "$nb" = 0 ] || echo "$nb" >"$NB"

if ! out=$(rmmod test_odp_mirror 2>&1); then
	echo "# rmmod test_odp_mirror: $out"
	rc=1
fi
exit $rc
