#!/bin/bash
# test-timeout: 2400
# The verbs-level ODP tests (tests/odp/*.c, built into BUILD/tests/) as ONE
# TAP stream.  Runs INSIDE the test guest, as root, with rxe0 up.
#
# Each program is itself a TAP producer, on kselftest_harness.h
# (tests/lib/odpharness.h); here (tests/lib/tap.sh) its results are
# renumbered and prefixed with its name, e.g.
# "ok 7 odp_traffic: traffic.odp.rc_read".  A program that dies, times
# out, prints fewer results than it planned or exits non-zero without a
# failed result adds a "not ok" line.  These tests
# check every byte the device moves (perftest, in 30-perftest-odp.sh, does
# not).
#
# Environment:
#   ODP_TEST_MODES     "odp" (default), "pinned", or "odp pinned"
#   ODP_TEST_PROGS     programs to run (default: all of them, below)
#   ODP_TEST_TIMEOUT   seconds per program (default 240)
#   RXE_ODP_BUILD      build directory (default: TOP/build)
#
# Alone, in a guest:
#   tests/vm/run-vm.sh --kver KVER --module M.ko --out DIR -- tests/guest/20-odp-verbs.sh
# One program by hand (in the guest): build/tests/odp_traffic [--pinned] [-v]
set -u

TOP=${RXE_ODP_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
BIN=${RXE_ODP_BUILD:-$TOP/build}/tests
MODES=${ODP_TEST_MODES:-odp}
PROGS=${ODP_TEST_PROGS:-odp_traffic odp_mprotect odp_dontneed odp_events odp_aging odp_pressure odp_huge_mr odp_migrate odp_prefetch odp_lifetime odp_vmops odp_ksm_thp odp_file odp_race odp_badinput odp_fuse odp_contend}
TMO=${ODP_TEST_TIMEOUT:-240}
# shellcheck source=tests/lib/tap.sh
. "$TOP/tests/lib/tap.sh"

echo "TAP version 13"
echo "# 20-odp-verbs: kernel $(uname -r), modes: $MODES, binaries in $BIN"
for prog in $PROGS; do
	for mode in $MODES; do
		args=()
		label=$prog
		if [ "$mode" = pinned ]; then
			args=(--pinned)
			label="$prog --pinned"
		fi
		if [ ! -x "$BIN/$prog" ]; then
			tap_result notok "$label: $BIN/$prog not built (make tests)"
			continue
		fi
		tap_run "$label" "$TMO" "$BIN/$prog" "${args[@]}"
		echo "# $label: exit $TAP_RUN_RC, $TAP_RUN_SEEN results, ${TAP_RUN_SECS}s"
	done
done
echo "1..$TAP_N"
[ "$TAP_FAILED" = 0 ]
