#!/bin/bash
# Host side of `make demo`: boot the test guest with our rdma_rxe and run
# perftest's ib_write_bw over rxe0 on the guest's loopback, once with a
# pinned MR and once with an ODP MR (--odp), then print a table:
#
#   mode    size   BW MB/s   status
#   pinned  65536  123.45    ok
#   odp     65536  -         failed: <reason>
#
# and the headline of bench/ (make bench has the full picture):
#
#   ODP / pinned bandwidth, 65536 B: 0.99
#   registration of a 1 GiB MR (median of 3): pinned 118.3 ms, ODP 0.19 ms (ODP 620x faster)
#
# Usage:
#   tests/vm/demo.sh --kver KVER --module PATH.ko --out DIR
#                    [--stock] [--sizes "4096 65536"] [--duration SEC]
# The guest part is tests/vm/demo-guest.sh; each run's server and client
# logs stay in DIR (demo-<mode>-<size>-{server,client}.log), next to
# console.log, dmesg.log and demo-results.tsv.  Bandwidth under TCG
# emulation is far below real hardware: compare the rows, not absolutes.
# Exit status: 0 when every run succeeded and the kernel log is clean.
set -euo pipefail

TOP=$(cd "$(dirname "$0")/../.." && pwd)
KVER="" MODULE="" OUT="" STOCK=() SIZES=65536 DURATION=5
while [ $# -gt 0 ]; do
	case "$1" in
	--kver) KVER=${2:?}; shift 2 ;;
	--module) MODULE=${2:?}; shift 2 ;;
	--out) OUT=${2:?}; shift 2 ;;
	--stock) STOCK=(--stock); shift ;;
	--sizes) SIZES=${2:?}; shift 2 ;;
	--duration) DURATION=${2:?}; shift 2 ;;
	*) echo "demo: usage: demo.sh --kver KVER --module PATH.ko --out DIR [--stock] [--sizes LIST] [--duration SEC]" >&2; exit 64 ;;
	esac
done
if [ -z "$KVER" ] || [ -z "$MODULE" ] || [ -z "$OUT" ]; then
	echo "demo: --kver, --module and --out are required" >&2; exit 64
fi
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
rm -f "$OUT"/demo-*.log "$OUT/demo-results.tsv" "$OUT/demo-reg.csv" "$OUT/demo-reg.failed"

vmrc=0
"$TOP/tests/vm/run-vm.sh" --kver "$KVER" --module "$MODULE" --out "$OUT" --timeout 900 \
	"${STOCK[@]+"${STOCK[@]}"}" --env "DEMO_SIZES=$SIZES" --env "DEMO_DURATION=$DURATION" \
	-- tests/vm/demo-guest.sh || vmrc=$?

echo
echo "ib_write_bw over rxe0 (loopback in a QEMU guest, $(sed -n 's/^accel=//p' "$OUT/status" 2>/dev/null || echo '?'))"
fail=0
if [ -s "$OUT/demo-results.tsv" ]; then
	printf '%-8s %-8s %-10s %s\n' mode size "BW MB/s" status
	while IFS=$'\t' read -r mode size bw status; do
		printf '%-8s %-8s %-10s %s\n' "$mode" "$size" "$bw" "$status"
		case "$status" in ok*) ;; *) fail=1 ;; esac
	done <"$OUT/demo-results.tsv"
else
	echo "no results: the guest did not run the demo (see below)"
	fail=1
fi
if [ -s "$OUT/demo-results.tsv" ]; then
	awk -F'\t' '$4 ~ /^ok/ { bw[$1 " " $2] = $3; if (!($2 in seen)) { seen[$2] = 1; sizes[++n] = $2 } }
		END { for (i = 1; i <= n; i++) { s = sizes[i]; p = bw["pinned " s]; o = bw["odp " s]
			if (p > 0 && o != "") printf "ODP / pinned bandwidth, %s B: %.2f\n", s, o / p } }' \
		"$OUT/demo-results.tsv"
fi
# median of the reg_time rows (us) of one mode in odp_bench's CSV
reg_median() {
	awk -F, -v m="$1" '$2 == "reg" && $3 == m && $5 == "reg_time" { print $8 }' "$OUT/demo-reg.csv" |
		sort -g | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}
if [ -s "$OUT/demo-reg.csv" ]; then
	rp=$(reg_median pinned) ro=$(reg_median odp)
	if [ -n "$rp" ] && [ -n "$ro" ]; then
		awk -v p="$rp" -v o="$ro" 'BEGIN { printf "registration of a 1 GiB MR (median of 3): pinned %.1f ms, ODP %.2f ms (ODP %.0fx faster)\n", p / 1000, o / 1000, p / o }'
	else
		echo "registration of a 1 GiB MR: incomplete (pinned: ${rp:-failed}, ODP: ${ro:-failed}); see $OUT/demo-reg.log"
		fail=1
	fi
elif [ -f "$OUT/demo-reg.failed" ]; then
	echo "registration of a 1 GiB MR: not measured: $(cat "$OUT/demo-reg.failed")"
	grep -q 'missing' "$OUT/demo-reg.failed" || fail=1
fi
issues=$(sed -n 's/^log_issues=//p' "$OUT/status" 2>/dev/null || echo '?')
echo "kernel log: $([ "$issues" = 0 ] && echo clean || echo "$issues suspicious line(s), see $OUT/log-issues.txt")"
echo "logs: $OUT (demo-*.log, console.log, dmesg.log)"
[ "$issues" = 0 ] || fail=1
[ "$vmrc" = 0 ] || fail=1
exit "$fail"
