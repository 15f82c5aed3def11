#!/bin/bash
# Run every guest test script, tests/guest/[0-9][0-9]-*.sh, in sort order
# and merge their TAP output into ONE flat TAP stream.  Runs INSIDE the
# test guest (make check boots it with tests/vm/check.sh).
#
# Each script prints TAP (kselftest style: "TAP version 13", "1..N",
# "ok N name", "not ok N name", "ok N name # SKIP why", "# diagnostics").
# Here (tests/lib/tap.sh) every result is renumbered and prefixed with
# the script's short name (NN-short-name.sh -> "short-name"), e.g.
#   ok 12 rdma-core: tests.test_odp.OdpTestCase.test_odp_rc_traffic
# Any other output of a script becomes a "# short-name: ..." diagnostic.
# A script fails (one extra "not ok" line) when it times out, exits
# non-zero without reporting a failed test, prints fewer results than it
# planned, or prints no result at all.  "not ok ... # TODO" lines (known
# failures, e.g. on stock 6.1 rxe) are counted as skipped.
#
# The stream ends with the plan, then, alone on the last line:
#   N passed, N failed, N skipped
# Exit status: 0 when nothing failed, 1 otherwise.
#
# Environment:
#   TESTS         space/comma separated globs; run only the scripts whose
#                 short name, file name or number matches one of them,
#                 e.g. TESTS="module rdma-core" or TESTS="2*,30"
#   TEST_TIMEOUT  seconds per script (default 900); a script that needs
#                 more says so in a header line "# test-timeout: SECONDS",
#                 which counts when it is the larger of the two
#
# From the host (one VM, only two scripts):
#   TESTS="module rdma-core" make check
#   tests/vm/run-vm.sh --kver KVER --module M.ko --out DIR \
#       --env TESTS=module -- tests/guest/run-all.sh
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
TEST_TIMEOUT=${TEST_TIMEOUT:-900}
SELECT=$(echo "${TESTS:-}" | tr ',' ' ')

selected() {	# selected FILE SHORT
	local base num pat
	[ -n "$SELECT" ] || return 0
	base=$(basename "$1")
	num=${base%%-*}
	set -f
	for pat in $SELECT; do
		set +f
		# shellcheck disable=SC2254  # glob matching is the point
		case "$2" in $pat) return 0 ;; esac
		# shellcheck disable=SC2254
		case "$base" in $pat) return 0 ;; esac
		# shellcheck disable=SC2254
		case "$num" in $pat) return 0 ;; esac
	done
	set +f
	return 1
}

# shellcheck source=tests/lib/tap.sh
. "$HERE/../lib/tap.sh"

echo "TAP version 13"
echo "# run-all: kernel $(uname -r), rdma_rxe $( [ "${RXE_STOCK:-0}" = 1 ] && echo stock || echo "${RXE_MODULE:-?}")"
t_all=$(date +%s)
nscripts=0
for script in "$HERE"/[0-9][0-9]-*.sh; do
	[ -e "$script" ] || continue
	base=$(basename "$script" .sh)
	short=${base#[0-9][0-9]-}
	selected "$script" "$short" || continue
	nscripts=$((nscripts + 1))
	echo "# ---- $base"
	tmo=$(sed -n 's/^# test-timeout: *\([0-9][0-9]*\)$/\1/p' "$script" | head -n 1)
	[ -n "$tmo" ] && [ "$tmo" -gt "$TEST_TIMEOUT" ] || tmo=$TEST_TIMEOUT
	if [ -x "$script" ]; then
		tap_run "$short" "$tmo" "$script" || true
	else
		tap_run "$short" "$tmo" bash "$script" || true
	fi
	echo "# ---- $base: $TAP_RUN_SEEN results, exit $TAP_RUN_RC, ${TAP_RUN_SECS}s"
done

if [ "$nscripts" = 0 ]; then
	tap_result notok "run-all: no test script matched TESTS='${TESTS:-}'"
fi
echo "# run-all: $(( $(date +%s) - t_all ))s"
tap_summary
[ "$TAP_FAILED" = 0 ]
