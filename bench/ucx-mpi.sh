#!/bin/bash
# `make bench` (second part): UCX and Open MPI between two guests, UCX's
# registration cache against its implicit ODP MR (bench/ucx_mpi.py), and
# the report bench/results/ucx-mpi.md (medians, ratios) and ucx-mpi.csv.
#
# Usage:
#   bench/ucx-mpi.sh --kver KVER --module PATH.ko [--out DIR] [--results DIR]
#                    [--reps N]
#
# Takes about 5 minutes per repetition under TCG on an idle host.
set -euo pipefail

TOP=$(cd "$(dirname "$0")/.." && pwd)
KVER="" MODULE="" OUT="" RESULTS="$TOP/bench/results" REPS=3
while [ $# -gt 0 ]; do
	case "$1" in
	--kver) KVER=${2:?}; shift 2 ;;
	--module) MODULE=${2:?}; shift 2 ;;
	--out) OUT=${2:?}; shift 2 ;;
	--results) RESULTS=${2:?}; shift 2 ;;
	--reps) REPS=${2:?}; shift 2 ;;
	*) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 64 ;;
	esac
done
[ -n "$KVER" ] && [ -n "$MODULE" ] || { echo "bench: --kver and --module are required" >&2; exit 64; }
case "$REPS" in ''|*[!0-9]*) echo "bench: --reps takes a number" >&2; exit 64 ;; esac
OUT=${OUT:-$TOP/build/bench-ucx-mpi}
rm -rf "$OUT"
mkdir -p "$OUT" "$RESULTS"
OUT=$(cd "$OUT" && pwd)
RESULTS=$(cd "$RESULTS" && pwd)
BUILD=$(cd "$(dirname "$MODULE")/.." && pwd)
export RXE_ODP_BUILD=$BUILD
[ -x "$BUILD/tests/ucp_check" ] || { echo "bench: $BUILD/tests/ucp_check missing (make tests)" >&2; exit 1; }
cp "$MODULE" "$OUT/rdma_rxe.ko"

start=$(date +%s)
rc=0
"$TOP/tests/vm/run-pair.sh" --kver "$KVER" --module "$OUT/rdma_rxe.ko" \
	--out "$OUT" --timeout 3600 --env "BENCH_REPS=$REPS" \
	-- python3 bench/ucx_mpi.py || rc=$?
secs=$(($(date +%s) - start))
raw=$OUT/A/ucx-mpi-raw.csv
if [ ! -s "$raw" ]; then
	echo "bench: no UCX/MPI measurements (exit $rc); see $OUT/A/output.log" >&2
	exit 1
fi
cp "$raw" "$RESULTS/ucx-mpi-raw.csv"
python3 "$TOP/bench/ucx_mpi.py" --report "$RESULTS/ucx-mpi-raw.csv" "$RESULTS"
echo "bench: UCX/MPI ran $((secs / 60)) min $((secs % 60)) s; results in $RESULTS/ucx-mpi.md"
exit "$rc"
