#!/bin/bash
# `make check-pair`: the two-host matrix.  perftest's WRITE, READ and SEND
# bandwidth between guests A and B (tests/vm/run-pair.sh,
# tests/pair/perftest.py), pinned and ODP in turns, several repetitions,
# at MTU 1500 (IB MTU 1024) and 9000 (IB MTU 4096), under each link
# setting: none, loss 1 % and 5 %, duplication 1 %, reordering (25 %,
# 2 ms delay), delay 10 ms (tc netem on both NICs).  Every run must
# complete with its data intact, and per program an ODP run may cost at
# most 1.2x the retransmissions and duplicate requests of the pinned
# runs under the same setting (none more on a link without loss or
# duplication), counted on both hosts, beyond counting noise (see
# exceeds() in tests/pair/perftest.py).  Then, under the same setting,
# tests/odp/odp_remote: B's memory unmapped, protected, dropped, freed,
# swapped, migrated, merged, split, forked and truncated, and B's process
# killed, under A's traffic, every byte checked at both ends.
#
# Usage:
#   tests/vm/pair-matrix.sh --kver KVER --module PATH.ko --out DIR
# Environment: PAIR_MATRIX_MTUS (default "1500 9000"), PAIR_MATRIX_NETEM
# (settings, one per line; default the six above), PAIR_MATRIX_REPS (3),
# PAIR_MATRIX_PROGS (ib_write_bw ib_read_bw ib_send_bw), and
# PAIR_PERFTEST_ITERS (100 here).
# Output: TAP, each result labelled with its setting; the last line
# "N passed, N failed, N skipped".  DIR/mtuM-N/{A,B}: each perftest run's
# guests, DIR/mtuM-N/remote/{A,B}: odp_remote's.
set -euo pipefail

TOP=$(cd "$(dirname "$0")/../.." && pwd)
KVER="" MODULE="" OUT=""
while [ $# -gt 0 ]; do
	case "$1" in
	--kver) KVER=${2:?}; shift 2 ;;
	--module) MODULE=${2:?}; shift 2 ;;
	--out) OUT=${2:?}; shift 2 ;;
	*) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 64 ;;
	esac
done
[ -n "$KVER" ] && [ -n "$MODULE" ] && [ -n "$OUT" ] ||
	{ echo "pair-matrix: --kver, --module and --out are required" >&2; exit 64; }
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

# shellcheck source=tests/lib/tap.sh
. "$TOP/tests/lib/tap.sh"

MTUS=${PAIR_MATRIX_MTUS:-1500 9000}
NETEMS=${PAIR_MATRIX_NETEM:-none
loss 1%
loss 5%
duplicate 1%
delay 2ms reorder 25%
delay 10ms}
export PAIR_PERFTEST_ITERS=${PAIR_PERFTEST_ITERS:-100}

echo "TAP version 13"
t0=$SECONDS
for mtu in $MTUS; do
	while IFS= read -r netem; do
		[ -n "$netem" ] || continue
		[ "$netem" = none ] && netem=""
		# without loss or duplication, ODP must add none
		factor=1.2
		case "$netem" in *loss*|*duplicate*) ;; *) factor=1 ;; esac
		dir=$OUT/mtu$mtu-$(printf '%s' "${netem:-none}" | tr -c 'a-z0-9' '-')
		rm -rf "$dir"
		echo "# ---- mtu $mtu, netem '${netem}'"
		tap_run "mtu $mtu netem '${netem:-none}'" 3600 \
			env PAIR_PERFTEST_PROGS="${PAIR_MATRIX_PROGS:-ib_write_bw ib_read_bw ib_send_bw}" \
			PAIR_PERFTEST_MODES="pinned odp" PAIR_PERFTEST_CM=oob \
			PAIR_PERFTEST_REPS="${PAIR_MATRIX_REPS:-3}" \
			PAIR_PERFTEST_COMPARE=$factor \
			"$TOP/tests/vm/run-pair.sh" --kver "$KVER" --module "$MODULE" \
			--out "$dir" --timeout 2400 --mtu "$mtu" --netem "$netem" \
			-- python3 tests/pair/perftest.py || true
		# B's memory changed under A's traffic, every byte checked
		tap_run "mtu $mtu netem '${netem:-none}'" 3600 \
			"$TOP/tests/vm/run-pair.sh" --kver "$KVER" --module "$MODULE" \
			--out "$dir/remote" --timeout 2400 --mtu "$mtu" --netem "$netem" \
			-- bash -c 'exec "$RXE_ODP_BUILD/tests/odp_remote"' || true
		for g in A B remote/A remote/B; do
			if [ -f "$dir/$g/status" ] && [ ! -s "$dir/$g/log-issues.txt" ] && [ -s "$dir/$g/dmesg.log" ]; then
				tap_result ok "mtu $mtu netem '${netem:-none}': guest $g kernel log clean"
			else
				tap_result notok "mtu $mtu netem '${netem:-none}': guest $g kernel log clean"
				head -n 40 "$dir/$g/log-issues.txt" 2>/dev/null | sed 's/^/#   /' || true
			fi
		done
	done <<<"$NETEMS"
done
echo "# pair-matrix: $((SECONDS - t0))s"
for l in "${TAP_FAILURES[@]+"${TAP_FAILURES[@]}"}"; do echo "# FAILED: $l"; done
tap_summary
[ "$TAP_FAILED" = 0 ]
