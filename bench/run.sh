#!/bin/bash
# `make bench`: boot the test VM once, run bench/guest.sh in it (perftest
# pinned against ODP, and the micro-benchmarks of bench/src/odp_bench.c),
# then turn the raw measurements into bench/results/: bench.csv (median,
# min, max per measurement), raw.csv, results.md and PNG plots.
#
# Usage:
#   bench/run.sh --kver KVER --module PATH.ko [--out DIR] [--results DIR]
#                [--reps N] [--quick] [--steps "perftest reg ..."]
#
#   --out DIR      the VM's results directory (default build/bench-run)
#   --results DIR  where the report goes (default bench/results)
#   --reps N       repetitions of every measurement (default 3)
#   --quick        a small matrix, to try the harness (not for results)
#   --steps LIST   only these steps: perftest memcpy reg fault inval aging
#                  contend migrate stream numabal
#
# Ratios within one run on one VM are what the results are about; the
# absolute numbers are those of QEMU (TCG if KVM is unusable) on this host.
# Takes about 20-25 minutes under TCG on an otherwise idle host.
set -euo pipefail

TOP=$(cd "$(dirname "$0")/.." && pwd)
KVER="" MODULE="" OUT="" RESULTS="$TOP/bench/results" REPS=3 QUICK=0 STEPS=""
while [ $# -gt 0 ]; do
	case "$1" in
	--kver) KVER=${2:?}; shift 2 ;;
	--module) MODULE=${2:?}; shift 2 ;;
	--out) OUT=${2:?}; shift 2 ;;
	--results) RESULTS=${2:?}; shift 2 ;;
	--reps) REPS=${2:?}; shift 2 ;;
	--quick) QUICK=1; shift ;;
	--steps) STEPS=${2:?}; shift 2 ;;
	*) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 64 ;;
	esac
done
[ -n "$KVER" ] && [ -n "$MODULE" ] || { echo "bench: --kver and --module are required" >&2; exit 64; }
OUT=${OUT:-$TOP/build/bench-run}
mkdir -p "$OUT" "$RESULTS"
OUT=$(cd "$OUT" && pwd)
RESULTS=$(cd "$RESULTS" && pwd)
# where odp_bench and the shim are (the Makefile's BUILD); the guest gets
# it as RXE_ODP_BUILD
BUILD=$(cd "$(dirname "$MODULE")/.." && pwd)
export RXE_ODP_BUILD=$BUILD
[ -x "$BUILD/bench/odp_bench" ] || { echo "bench: $BUILD/bench/odp_bench missing (make bench-build)" >&2; exit 1; }

hostinfo() {	# the host's load: other guests running now skew every number
	local others
	others=$(pgrep -c qemu-system 2>/dev/null) || true
	echo "load $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs, $others QEMU process(es)"
}

# Boot a copy of the module: a rebuild during the run must not pull it
# away from under the guest.
cp "$MODULE" "$OUT/rdma_rxe.ko"
MODULE=$OUT/rdma_rxe.ko

start=$(date +%s)
host_before=$(hostinfo)
echo "bench: host: $host_before"
env=(--env "BENCH_REPS=$REPS" --env "BENCH_QUICK=$QUICK")
[ -z "$STEPS" ] || env+=(--env "BENCH_STEPS=$STEPS")
vmrc=0
"$TOP/tests/vm/run-vm.sh" --kver "$KVER" --module "$MODULE" --out "$OUT" \
	--mem 3072 --timeout 3600 "${env[@]}" -- bench/guest.sh || vmrc=$?
host_after=$(hostinfo)
end=$(date +%s)
secs=$((end - start))

if [ ! -s "$OUT/raw.csv" ]; then
	echo "bench: no measurements (guest exit $vmrc); see $OUT/output.log and console.log" >&2
	exit 1
fi

{
	cat "$OUT/env.txt" 2>/dev/null
	echo "accel=$(sed -n 's/^accel=//p' "$OUT/status" 2>/dev/null)"
	echo "host_cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
	echo "host_before=$host_before"
	echo "host_after=$host_after"
	echo "runtime_s=$secs"
	echo "date=$(date -u +%FT%TZ)"
	echo "commit=$(git -C "$TOP" rev-parse --short HEAD 2>/dev/null)$(git -C "$TOP" diff --quiet HEAD -- kernel drivers 2>/dev/null || echo '+dirty(kernel/drivers)')"
	echo "module_build_id=$(sed -n 's/^build_id_loaded=//p' "$OUT/module-id" 2>/dev/null)"
} >"$OUT/meta.txt"

cp "$OUT/raw.csv" "$RESULTS/raw.csv"
cp "$OUT/meta.txt" "$RESULTS/meta.txt"
/usr/bin/python3 "$TOP/bench/report.py" --raw "$RESULTS/raw.csv" --meta "$RESULTS/meta.txt" --out "$RESULTS"
if command -v gnuplot >/dev/null; then
	(cd "$RESULTS" && gnuplot "$TOP/bench/plots.gp") || echo "bench: gnuplot failed; no plots" >&2
else
	echo "bench: gnuplot missing (apt install gnuplot-nox): no plots" >&2
fi
rm -f "$RESULTS"/plot-*.dat

echo
sed -n '/^## Headline/,/^## /p' "$RESULTS/results.md" | sed '$d'
echo "bench: ran $((secs / 60)) min $((secs % 60)) s; results in $RESULTS (results.md, bench.csv, raw.csv, *.png); guest logs in $OUT"
[ "$vmrc" = 0 ] || echo "bench: the guest reported failures (exit $vmrc): see $OUT/output.log" >&2
exit "$vmrc"
