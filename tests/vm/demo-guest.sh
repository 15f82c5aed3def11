#!/bin/bash
# Guest half of `make demo` (started by tests/vm/demo.sh through run-vm.sh):
# ib_write_bw (perftest) over rxe0 on the guest's loopback, once per MR
# mode (pinned, --odp) and message size, server and client in the guest.
#
# Writes one tab-separated row per run to $RXE_OUT/demo-results.tsv:
#   mode  size  bw_MBps  status      (status "ok" or "failed: <reason>")
# and keeps each run's logs as $RXE_OUT/demo-<mode>-<size>-{server,client}.log.
#
# Then the registration time of a 1 GiB MR, pinned and ODP, three times
# each, with odp_bench (make bench-build) into $RXE_OUT/demo-reg.csv
# (bench/src/odp_bench.c's rows; its progress in demo-reg.log; a failure
# leaves demo-reg.failed with the reason).
#
# Environment: DEMO_SIZES (default "65536"), DEMO_DURATION seconds per run
# (default 5), DEMO_MODES (default "pinned odp"), DEMO_REG (default 1; 0
# skips the registration), RXE_DEV, RXE_GID.
set -eu

DEV=${RXE_DEV:-rxe0}
GID=${RXE_GID:-1}
OUT=${RXE_OUT:?RXE_OUT must name the results directory}
SIZES=${DEMO_SIZES:-65536}
DURATION=${DEMO_DURATION:-5}
MODES=${DEMO_MODES:-pinned odp}
RES=$OUT/demo-results.tsv
# A run must finish within this even if a peer hangs (setup is slow under TCG).
LIMIT=$((DURATION + 60))

: >"$RES"
port=18515
server_pid=""
cleanup() { [ -z "$server_pid" ] || kill "$server_pid" 2>/dev/null || true; }
trap cleanup EXIT

listening() {	# listening PORT: is a TCP listener on PORT?
	ss -Hltn "sport = :$1" 2>/dev/null | grep -q .
}

reason_of() {	# reason_of LOG...: the first two distinct error lines of a run
	local r
	r=$(cat "$@" 2>/dev/null | sed 's/^[[:space:]]*//; s/[.[:space:]]*$//' |
		grep -iE "not supported|couldn't|could not|unable|failed|error|invalid|timed out|denied" |
		awk '!seen[tolower($0)]++' | head -n 2 | paste -sd ';' - | sed 's/;/; /g')
	[ -n "$r" ] || r=$(cat "$@" 2>/dev/null | grep -v '^[[:space:]]*$' | tail -n 1 | sed 's/^[[:space:]]*//')
	echo "${r:-no output}" | tr '\t' ' ' | cut -c1-120
}

run_pair() {	# run_pair ARGS...: one server + client run; sets crc, src
	timeout -k 5 "$LIMIT" ib_write_bw "$@" >"$slog" 2>&1 &
	server_pid=$!
	# Wait (bounded) for the server's TCP rendezvous port.
	for _ in $(seq 1 40); do
		listening "$port" && break
		kill -0 "$server_pid" 2>/dev/null || break
		sleep 0.25
	done
	crc=0
	if listening "$port"; then
		timeout -k 5 "$LIMIT" ib_write_bw "$@" 127.0.0.1 >"$clog" 2>&1 || crc=$?
	else
		echo "server did not start listening on port $port" >"$clog"
		crc=1
	fi
	# The server exits by itself after a good run; never leave it behind.
	src=0
	if [ "$crc" = 0 ]; then
		wait "$server_pid" || src=$?
	else
		kill "$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || src=$?
	fi
	server_pid=""
}

for size in $SIZES; do
	for mode in $MODES; do
		extra=()
		[ "$mode" = odp ] && extra=(--odp)
		slog=$OUT/demo-$mode-$size-server.log
		clog=$OUT/demo-$mode-$size-client.log
		# perftest times the run with the CPU's cycle counter, calibrated
		# against the clock; in a busy TCG guest that calibration can fail
		# ("Can't produce a report") or come out absurd (0.00 MB/s).  That
		# says nothing about RDMA: try again, a bounded number of times.
		for attempt in 1 2 3; do
			port=$((port + 1))
			args=(-d "$DEV" -x "$GID" -s "$size" -D "$DURATION" -F -p "$port" "${extra[@]+"${extra[@]}"}")
			echo "demo: $mode, $size bytes: ib_write_bw ${args[*]}"
			run_pair "${args[@]}"
			# Result line: "#bytes #iterations BW-peak BW-average MsgRate".
			bw=$(awk -v s="$size" '$1 == s && NF >= 5 { print $4 }' "$clog" | tail -n 1)
			clock_trouble=0
			if [ "$crc" = 0 ] && [ -n "$bw" ]; then
				awk -v b="$bw" 'BEGIN { exit !(b + 0 > 0) }' || clock_trouble=1
			elif grep -q "Can't produce a report" "$clog" "$slog" 2>/dev/null; then
				clock_trouble=1
			fi
			[ "$clock_trouble" = 1 ] || break
			echo "demo: $mode, $size bytes: perftest could not time the run (attempt $attempt)"
		done

		if [ "$clock_trouble" = 1 ]; then
			bw="-" status="failed: perftest could not time the run (cycle counter calibration in a busy TCG guest), $attempt attempts"
		elif [ "$crc" = 0 ] && [ -n "$bw" ]; then
			status=ok
		elif [ "$crc" = 124 ] || [ "$crc" = 137 ]; then
			bw="-" status="failed: client timed out after ${LIMIT}s"
		else
			bw="-" status="failed: $(reason_of "$clog" "$slog")"
		fi
		[ "$status" != ok ] || [ "$src" = 0 ] || status="ok (server exit $src)"
		printf '%s\t%s\t%s\t%s\n' "$mode" "$size" "$bw" "$status" >>"$RES"
		echo "demo: $mode, $size bytes: $bw MB/s, $status"
	done
done

# Registration of a 1 GiB MR both ways (populated memory; the first ODP MR
# of the process, which also sets up the mm's notifier, is measured apart).
REG_BIN=${RXE_ODP_BUILD:-$PWD/build}/bench/odp_bench
rm -f "$OUT/demo-reg.csv" "$OUT/demo-reg.log" "$OUT/demo-reg.failed"
if [ "${DEMO_REG:-1}" = 1 ]; then
	if [ -x "$REG_BIN" ]; then
		echo "demo: registration of a 1 GiB MR, pinned and ODP, 3 times each"
		timeout -k 5 600 "$REG_BIN" reg --sizes 1G --reps 3 --csv "$OUT/demo-reg.csv" \
			>"$OUT/demo-reg.log" 2>&1 ||
			echo "odp_bench reg exited with status $?: see demo-reg.log" >"$OUT/demo-reg.failed"
	else
		echo "$REG_BIN missing (make bench-build)" >"$OUT/demo-reg.failed"
	fi
fi
