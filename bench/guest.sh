#!/bin/bash
# Guest half of `make bench` (started by bench/run.sh through
# tests/vm/run-vm.sh): every measurement, one progress line per step.
#
# Writes to $RXE_OUT:
#   raw.csv     one row per measurement and repetition:
#               group,bench,mode,size,metric,unit,rep,value
#   env.txt     what the guest is (kernel, CPUs, THP, NUMA balancing, ...)
#   perftest/   the logs of the perftest runs that failed
#
# Steps (BENCH_STEPS, default all): perftest memcpy reg fault inval migrate
# aging contend stream numabal.  BENCH_REPS (3) repetitions; BENCH_QUICK=1 runs a small
# matrix (to try the harness, not for results).
#
# perftest modes:
#   pinned    perftest as is
#   odp-cold  --odp: a fresh process, fresh buffers and a fresh ODP MR; the
#             pages are faulted in by the timed loop itself
#   odp-warm  --odp, and the LD_PRELOAD shim libbench_odp_shim.so prefetches
#             each ODP MR completely (advise_mr PREFETCH_WRITE, synchronous)
#             right after its registration: no fault in the timed loop
# ib_atomic_bw: perftest 4.5 refuses --odp for atomics, so the shim adds
# IBV_ACCESS_ON_DEMAND to its registrations instead (BENCH_ODP_FORCE=1).
#
# Automatic NUMA balancing is switched off for every step but "numabal":
# its periodic PTE scans invalidate ODP translations (a protection change
# is an invalidation), which would make "warm" meaningless; the numabal
# step measures exactly that effect.
set -u

# Everything is in main(), which bash parses completely before running it:
# the script can be edited while a run is going on.
main() {
	DEV=${RXE_DEV:-rxe0}
	GID=${RXE_GID:-1}
	OUT=${RXE_OUT:?RXE_OUT must name the results directory}
	BUILD=${RXE_ODP_BUILD:?}
	BIN=$BUILD/bench/odp_bench
	SHIM=$BUILD/bench/libbench_odp_shim.so
	REPS=${BENCH_REPS:-3}
	QUICK=${BENCH_QUICK:-0}
	STEPS=${BENCH_STEPS:-perftest memcpy reg fault inval migrate aging contend stream numabal}
	QP_TIMEOUT=${BENCH_QP_TIMEOUT:-19}
	PT_TIMEOUT=${BENCH_PT_TIMEOUT:-120}
	RAW=$OUT/raw.csv
	CTRS=/sys/class/infiniband/$DEV/ports/1/hw_counters
	PTLOG=$OUT/perftest
	WORK=$(mktemp -d /tmp/bench.XXXXXX)

	: >"$RAW"
	rm -rf "$PTLOG"
	mkdir -p "$PTLOG"
	server_pid=""
	cleanup() {
		[ -z "$server_pid" ] || kill "$server_pid" 2>/dev/null
		rm -rf "$WORK"
	}
	trap cleanup EXIT

	for f in "$BIN" "$SHIM"; do
		[ -e "$f" ] || { echo "bench: $f missing (make bench builds it)"; exit 1; }
	done

	# ---- progress ---------------------------------------------------------------

	T0=$SECONDS
	NSTEPS=0 STEP=0
	clock() {	# elapsed time as m:ss (builtins only: forks are slow under TCG)
		local s=$((SECONDS - T0))
		printf -v CLOCK '%d:%02d' $((s / 60)) $((s % 60))
	}
	progress() {	# progress TEXT: one line per step
		clock
		echo "[bench $CLOCK] ($STEP/$NSTEPS) $*"
	}
	# Prefix the lines of a micro-benchmark with the clock.
	relay() {
		local l
		while IFS= read -r l; do
			clock
			echo "[bench $CLOCK]   ${l#bench: }"
		done
	}

	# ---- counters -------------------------------------------------------------

	CTR_NAMES="odp_page_faults odp_page_invalidations odp_page_prefetch odp_fault_waits odp_fault_wait_us completer_retry_err"
	declare -A C0 C1
	ctr_read() {	# ctr_read ARRAYNAME
		local -n arr=$1
		local n v
		for n in $CTR_NAMES; do
			v=0
			[ -r "$CTRS/$n" ] && read -r v <"$CTRS/$n"
			arr[$n]=$v
		done
	}
	ctr_delta() { DELTA=$(( C1[$1] - C0[$1] )); }

	row() {	# row GROUP BENCH MODE SIZE METRIC UNIT REP VALUE
		local IFS=,
		echo "$*" >>"$RAW"
	}

	# ---- perftest -------------------------------------------------------------

	port=18700
	listening() {	# listening PORT: a TCP socket in LISTEN state on PORT? (no fork)
		local hex f sl local_addr rem st rest
		printf -v hex ':%04X' "$1"
		for f in /proc/net/tcp /proc/net/tcp6; do
			[ -r "$f" ] || continue
			while read -r sl local_addr rem st rest; do
				[ "$st" = 0A ] && [ "${local_addr%"$hex"}" != "$local_addr" ] && return 0
			done <"$f"
		done
		return 1
	}

	# scan_result bw|lat SIZE LOG: perftest's result line into $line:
	#   bw:  "#bytes #iterations BW-peak BW-average MsgRate" -> "avg rate"
	#        (only a non-zero average)
	#   lat: "#bytes #iter t_min t_max t_typical t_avg t_stdev p99 p99.9"
	#        -> "typical avg p99 min"
	scan_result() {
		local f
		[ -r "$3" ] || return 0
		while read -r -a f; do
			[ "${f[0]:-}" = "$2" ] || continue
			if [ "$1" = bw ] && [ "${#f[@]}" -ge 5 ]; then
				case ${f[3]} in 0|0.0|0.00|0.000) continue ;; esac
				line="${f[3]} ${f[4]}"
				return 0
			elif [ "$1" = lat ] && [ "${#f[@]}" -ge 9 ]; then
				# a failed clock calibration prints inf
				case "${f[4]} ${f[5]} ${f[2]}" in *inf*|*nan*) continue ;; esac
				line="${f[4]} ${f[5]} ${f[7]} ${f[2]}"
				return 0
			fi
		done <"$3"
	}

	# shim_ok LOG MODE: the shim's report says it registered ODP MRs, none
	# failed, and (odp-warm) it prefetched them
	shim_ok() {
		local l re='bench_odp_shim: ([0-9]+) ODP MRs, ([0-9]+) prefetched .* ([0-9]+) failed'
		while IFS= read -r l; do
			[[ $l =~ $re ]] || continue
			[ "${BASH_REMATCH[1]}" -gt 0 ] && [ "${BASH_REMATCH[3]}" = 0 ] || return 1
			case $2 in
			odp-warm*) [ "${BASH_REMATCH[2]}" -gt 0 ] || return 1 ;;
			esac
			return 0
		done <"$1"
		return 1
	}

	# pt TOOL MODE SIZE ITERS REP: one perftest run; once more if perftest
	# could not time it (its cycle-counter calibration fails now and then in a
	# busy TCG guest: "Can't produce a report", or 0.00)
	pt() {
		local attempt
		for attempt in 1 2; do
			pt_once "$@" && return
		done
		pt_fail "$@"
	}

	pt_once() {
		local tool=$1 mode=$2 size=$3 iters=$4 rep=$5
		local args=(-d "$DEV" -x "$GID" -F -u "$QP_TIMEOUT" -n "$iters")
		local pre=(env) kind=bw what val ok=1 i f crc=0 src=0 line
		local slog=$WORK/server.log clog=$WORK/client.log
		case $tool in *_lat) kind=lat ;; esac
		[ "$tool" = ib_atomic_bw ] || args+=(-s "$size")
		case $mode in
		pinned) ;;
		odp-cold)
			if [ "$tool" = ib_atomic_bw ]; then
				pre=(env "LD_PRELOAD=$SHIM" BENCH_ODP_FORCE=1)
			else
				args+=(--odp)
			fi ;;
		odp-warm|odp-warm-aging*)
			if [ "$tool" = ib_atomic_bw ]; then
				pre=(env "LD_PRELOAD=$SHIM" BENCH_ODP_FORCE=1 BENCH_ODP_PREFETCH=1)
			else
				args+=(--odp)
				pre=(env "LD_PRELOAD=$SHIM" BENCH_ODP_PREFETCH=1)
			fi ;;
		esac
		port=$((port + 1))
		args+=(-p "$port")
		ctr_read C0
		timeout -k 5 "$PT_TIMEOUT" "${pre[@]}" "$tool" "${args[@]}" >"$slog" 2>&1 &
		server_pid=$!
		for ((i = 0; i < 300; i++)); do
			listening "$port" && break
			kill -0 "$server_pid" 2>/dev/null || break
			sleep 0.1
		done
		if listening "$port"; then
			timeout -k 5 "$PT_TIMEOUT" "${pre[@]}" "$tool" "${args[@]}" 127.0.0.1 >"$clog" 2>&1 || crc=$?
		else
			echo "server did not listen on port $port" >"$clog"
			crc=1
		fi
		if [ "$crc" = 0 ]; then
			wait "$server_pid" || src=$?
		else
			kill "$server_pid" 2>/dev/null
			wait "$server_pid" 2>/dev/null
		fi
		server_pid=""
		ctr_read C1

		[ "$tool" = ib_atomic_bw ] && size=8
		# the result line (no fork: builtins only)
		line=""
		scan_result "$kind" "$size" "$clog"
		# the sender of ib_send_bw prints 0, the receiver (server) the result
		[ -n "$line" ] || [ "$kind" != bw ] || scan_result bw "$size" "$slog"
		if [ "$crc" = 0 ] && [ "$src" = 0 ] && [ -z "$line" ] && [ "$attempt" = 1 ]; then
			progress "$tool $mode $size B rep $rep/$REPS: perftest gave no result, once more"
			return 1
		fi
		[ "$crc" = 0 ] && [ "$src" = 0 ] && [ -n "$line" ] || ok=0
		if [ "${pre[1]:-}" ]; then
			# the shim must have been active on both sides
			for f in "$slog" "$clog"; do
				shim_ok "$f" "$mode" || ok=0
			done
		fi
		if [ "$ok" = 0 ]; then
			cp "$slog" "$PTLOG/$tool-$mode-$size-$rep.server.log"
			cp "$clog" "$PTLOG/$tool-$mode-$size-$rep.client.log"
			FAIL_WHY="client exit $crc, server exit $src"
			return 1
		fi
		set -- $line
		if [ "$kind" = bw ]; then
			row perftest "$tool" "$mode" "$size" bw MiB/s "$rep" "$1"
			row perftest "$tool" "$mode" "$size" msg_rate Mpps "$rep" "$2"
			what="$1 MiB/s"
		else
			row perftest "$tool" "$mode" "$size" lat_typical us "$rep" "$1"
			row perftest "$tool" "$mode" "$size" lat_avg us "$rep" "$2"
			row perftest "$tool" "$mode" "$size" lat_p99 us "$rep" "$3"
			row perftest "$tool" "$mode" "$size" lat_min us "$rep" "$4"
			what="typical $1 us, avg $2 us, min $4 us"
		fi
		local faults waits pref retries
		ctr_delta odp_page_faults; faults=$DELTA
		ctr_delta odp_fault_waits; waits=$DELTA
		ctr_delta odp_page_prefetch; pref=$DELTA
		ctr_delta completer_retry_err; retries=$DELTA
		row perftest "$tool" "$mode" "$size" faulted_pages pages "$rep" "$faults"
		row perftest "$tool" "$mode" "$size" fault_waits count "$rep" "$waits"
		row perftest "$tool" "$mode" "$size" prefetched_pages pages "$rep" "$pref"
		row perftest "$tool" "$mode" "$size" retries count "$rep" "$retries"
		val=""
		[ "$mode" = pinned ] || val=", $waits fault waits, $faults pages faulted, $pref prefetched"
		progress "$tool $mode $size B rep $rep/$REPS: $what$val, $retries retries"
	}

	pt_fail() {
		local tool=$1 mode=$2 size=$3 rep=$5
		[ "$tool" = ib_atomic_bw ] && size=8
		row perftest "$tool" "$mode" "$size" failed count "$rep" 1
		progress "$tool $mode $size B rep $rep/$REPS: FAILED ($FAIL_WHY; logs in perftest/)"
	}

	# ---- the plan ---------------------------------------------------------------

	BW_TOOLS="ib_write_bw ib_read_bw ib_send_bw"
	LAT_TOOLS="ib_write_lat ib_read_lat"
	BW_SIZES="64 4096 65536 1048576"
	LAT_SIZES="64 4096 65536 1048576"
	COLD_SIZES="65536"
	MICRO_REPS=$REPS
	if [ "$QUICK" = 1 ]; then
		BW_SIZES="65536" LAT_SIZES="64" COLD_SIZES="65536"
	fi
	iters_bw() {	# about a second of traffic each under TCG
		case $1 in
		64) echo 3000 ;; 4096) echo 2000 ;; 65536) echo 1000 ;; *) echo 100 ;;
		esac
	}
	iters_lat() {
		case $1 in
		1048576) echo 50 ;; 65536) echo 200 ;; *) echo 500 ;;
		esac
	}

	PLAN=()
	has_step() { case " $STEPS " in *" $1 "*) return 0 ;; esac; return 1; }
	if has_step perftest; then
		for ((rep = 1; rep <= REPS; rep++)); do
			for tool in $BW_TOOLS; do
				for size in $BW_SIZES; do
					modes="pinned odp-warm"
					case " $COLD_SIZES " in *" $size "*) modes="pinned odp-warm odp-cold" ;; esac
					for mode in $modes; do
						PLAN+=("pt $tool $mode $size $(iters_bw "$size") $rep")
					done
				done
			done
			for mode in pinned odp-warm odp-cold; do
				PLAN+=("pt ib_atomic_bw $mode 8 2000 $rep")
			done
			for tool in $LAT_TOOLS; do
				for size in $LAT_SIZES; do
					modes="pinned odp-warm"
					[ "$size" = 64 ] && modes="pinned odp-warm odp-cold"
					for mode in $modes; do
						PLAN+=("pt $tool $mode $size $(iters_lat "$size") $rep")
					done
				done
			done
		done
	fi
	for s in memcpy reg fault inval migrate; do
		has_step "$s" && PLAN+=("micro $s")
	done
	if has_step aging; then
		# the data path's cost of marking entries used, interleaved
		for ((rep = 1; rep <= REPS; rep++)); do
			for state in 1 0; do
				PLAN+=("aging_pt ib_write_bw 65536 $(iters_bw 65536) $rep $state")
				PLAN+=("aging_pt ib_write_lat 64 $(iters_lat 64) $rep $state")
			done
		done
		PLAN+=("micro pressure")
	fi
	has_step contend && PLAN+=("micro contend")
	if has_step stream; then
		for op in write read send; do PLAN+=("micro stream $op"); done
	fi
	has_step numabal && PLAN+=("micro numabal")
	NSTEPS=${#PLAN[@]}

	# ---- environment ----------------------------------------------------------

	# hw_counters reads are cached for "lifespan" ms (10): as short as it goes
	echo 0 >"$CTRS/lifespan" 2>/dev/null
	NUMABAL_DEFAULT=$(cat /proc/sys/kernel/numa_balancing 2>/dev/null || echo n/a)
	echo 0 >/proc/sys/kernel/numa_balancing 2>/dev/null
	{
		echo "kernel=$(uname -r)"
		echo "cpus=$(nproc)"
		echo "cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
		echo "numa_nodes=$(cat /sys/devices/system/node/online)"
		echo "mem_total_kib=$(sed -n 's/^MemTotal: *\([0-9]*\).*/\1/p' /proc/meminfo)"
		echo "thp=$(cat /sys/kernel/mm/transparent_hugepage/enabled)"
		echo "numa_balancing_default=$NUMABAL_DEFAULT"
		echo "perftest=$(dpkg-query -W -f='${Version}' perftest 2>/dev/null)"
		echo "rdma_core=$(dpkg-query -W -f='${Version}' rdma-core 2>/dev/null)"
		echo "active_mtu=$(ibv_devinfo -d "$DEV" 2>/dev/null | sed -n 's/.*active_mtu:[[:space:]]*//p' | head -n 1)"
		echo "odp_param=$(cat /sys/module/rdma_rxe/parameters/odp 2>/dev/null)"
		echo "reps=$REPS quick=$QUICK steps=$STEPS"
	} >"$OUT/env.txt"
	clock
	echo "[bench $CLOCK] $NSTEPS steps, $REPS repetitions; $(sed -n 's/^cpu_model=//p' "$OUT/env.txt"), $(nproc) CPUs; NUMA balancing off (default $NUMABAL_DEFAULT)"

	# ---- run --------------------------------------------------------------------

	AGING=/sys/module/rdma_rxe/parameters/odp_aging
	# aging_pt TOOL SIZE ITERS REP STATE: pt odp-warm with odp_aging=STATE
	aging_pt() {
		echo "$5" >"$AGING"
		pt "$1" "odp-warm-aging$5" "$2" "$3" "$4"
		echo 1 >"$AGING"
	}

	# test_reps REPS PROG PARSE: run tests/PROG REPS times and pass each
	# line of its output to the function PARSE (LINE REP; REP 0 once
	# before each run, to start afresh).  A run with a failed test, or
	# that exits with an error (a bail out), ends it: its log is kept as
	# PROG-REP.log and the status is 1.
	test_reps() {	# test_reps REPS PROG LINEFN [ARG...]
		local rep l st out=$WORK/$2.log
		for ((rep = 1; rep <= $1; rep++)); do
			st=0
			"$BUILD/tests/$2" "${@:4}" >"$out" 2>&1 || st=$?
			"$3" "" 0
			while IFS= read -r l; do
				"$3" "$l" "$rep"
			done <"$out"
			if [ "$st" != 0 ] || grep -q '^not ok' "$out"; then
				cp "$out" "$OUT/$2-$rep.log"
				return 1
			fi
		done
		return 0
	}

	# contend_line LINE: tests/odp_contend's time and fault waits of its
	# WRITE streams, with and without the prefetch, as rows of mode
	# CONTEND_MODE, repetition CONTEND_REP (a bucket's bound in ms; 8192
	# for "longer")
	contend_line() {
		local b v rep=$CONTEND_REP
		local re='^# the (unprefetched )?WRITE streams: ([0-9]+) fault waits, mean ([0-9]+) us; median <= ([0-9a-z-]+), p99 <= ([0-9a-z-]+), max <= ([0-9a-z-]+)'
		local took='^# the (unprefetched )?WRITE streams took ([0-9]+) ms: ([0-9-]+) pages faulted, ([0-9-]+) prefetched'
		local bench=write_streams
		if [[ $1 =~ $took ]]; then
			[ -z "${BASH_REMATCH[1]}" ] || bench=write_streams_unprefetched
			row contend "$bench" "$CONTEND_MODE" 0 time ms "$rep" "${BASH_REMATCH[2]}"
			row contend "$bench" "$CONTEND_MODE" 0 faulted_pages pages "$rep" "${BASH_REMATCH[3]}"
			row contend "$bench" "$CONTEND_MODE" 0 prefetched_pages pages "$rep" "${BASH_REMATCH[4]}"
		fi
		[[ $1 =~ $re ]] || return 0
		[ -z "${BASH_REMATCH[1]}" ] || bench=write_streams_unprefetched
		row contend "$bench" "$CONTEND_MODE" 0 fault_waits count "$rep" "${BASH_REMATCH[2]}"
		row contend "$bench" "$CONTEND_MODE" 0 wait_mean us "$rep" "${BASH_REMATCH[3]}"
		for b in 4:median 5:p99 6:max; do
			v=${BASH_REMATCH[${b%%:*}]}
			v=${v%ms}
			[ "$v" = longer ] && v=8192
			# no waits at all: no quantiles
			[ "$v" = - ] || row contend "$bench" "$CONTEND_MODE" 0 "wait_${b#*:}" ms "$rep" "$v"
		done
		clock
		echo "[bench $CLOCK]   rep $rep $CONTEND_MODE: ${1#\# }"
	}

	# contend_reps REPS: odp_contend's WRITE streams with the core's
	# sharing of overlapping faults (odp_fault_sharing) on and off, in
	# turns: the fault path as it is against one where every faulter
	# faults its own pages
	CONTEND_SHARING=/sys/module/rdma_rxe/parameters/odp_fault_sharing
	contend_reps() {
		local rep sharing st=0
		for ((rep = 1; rep <= $1; rep++)); do
			for sharing in 1 0; do
				echo "$sharing" >"$CONTEND_SHARING" || return 1
				CONTEND_MODE=odp
				[ "$sharing" = 1 ] || CONTEND_MODE=odp-unshared
				CONTEND_REP=$rep
				test_reps 1 odp_contend contend_line \
					--only write_streams,write_streams_unprefetched ||
					st=1
			done
		done
		echo 1 >"$CONTEND_SHARING"
		return "$st"
	}

	# pressure_line LINE REP: tests/odp_pressure's measurements as rows;
	# PRESSURE_FILLED keeps, per mode, the hot pages faulted by the time
	# the cold part was filled
	declare -A PRESSURE_FILLED=()
	pressure_line() {
		local mode
		local re='^# (odp_aging=1|odp_aging=0|MGLRU, odp_aging=1): ([0-9.]+) s, [0-9]+ passes, [0-9]+ memory.reclaim of [0-9A-Z]+: hot ([0-9.]+)% resident, cold ([0-9.]+)%; ([0-9]+) hot pages faulted, pswpin \+([0-9]+), ([0-9.]+) MB/s'
		local fre='^# (odp_aging=1|odp_aging=0|MGLRU, odp_aging=1): cold part filled after [0-9.]+ s: ([0-9]+) hot pages faulted so far'
		if [ "$2" = 0 ]; then
			PRESSURE_FILLED=()
			return 0
		fi
		if [[ $1 =~ $fre ]]; then
			PRESSURE_FILLED[${BASH_REMATCH[1]}]=${BASH_REMATCH[2]}
			return 0
		fi
		[[ $1 =~ $re ]] || return 0
		case ${BASH_REMATCH[1]} in
		odp_aging=1) mode=aging-on ;;
		odp_aging=0) mode=aging-off ;;
		*) mode=mglru-aging-on ;;
		esac
		row aging pressure "$mode" 0 mbps MB/s "$2" "${BASH_REMATCH[7]}"
		row aging pressure "$mode" 0 hot_resident % "$2" "${BASH_REMATCH[3]}"
		row aging pressure "$mode" 0 cold_resident % "$2" "${BASH_REMATCH[4]}"
		row aging pressure "$mode" 0 hot_faults pages "$2" "${BASH_REMATCH[5]}"
		row aging pressure "$mode" 0 hot_faults_after_fill pages "$2" \
			$(( BASH_REMATCH[5] - ${PRESSURE_FILLED[${BASH_REMATCH[1]}]:-0} ))
		row aging pressure "$mode" 0 pswpin_per_s "1/s" "$2" \
			"$(awk -v n="${BASH_REMATCH[6]}" -v t="${BASH_REMATCH[2]}" 'BEGIN { printf "%.1f", n / t }')"
		clock
		echo "[bench $CLOCK]   rep $2 $mode: ${BASH_REMATCH[7]} MB/s, hot ${BASH_REMATCH[3]}% resident, ${BASH_REMATCH[5]} hot pages faulted, pswpin +${BASH_REMATCH[6]} in ${BASH_REMATCH[2]} s"
	}

	micro() {	# micro NAME [ARG]
		local r=$MICRO_REPS
		case $1 in
		memcpy) progress "memcpy bandwidth (the ceiling)"
			"$BIN" memcpy --reps "$r" --csv "$RAW" | relay ;;
		reg) progress "registration time and kernel memory, 4 KiB .. 1 TiB (pinned up to 1 GiB)"
			"$BIN" reg --reps "$r" --csv "$RAW" | relay ;;
		fault) progress "page-fault throughput of a synchronous prefetch of 256 MiB, kernel memory per faulted page"
			"$BIN" fault --reps "$r" --size 256M --csv "$RAW" | relay ;;
		inval) progress "munmap / MADV_DONTNEED of a faulted 1 GiB, with and without an ODP MR"
			"$BIN" inval --reps "$r" --size 1G --csv "$RAW" | relay ;;
		migrate) progress "move_pages of 64 MiB node 0 -> 1: no MR, ODP MR idle, ODP MR under WRITE traffic, pinned MR"
			"$BIN" migrate --reps "$r" --size 64M --csv "$RAW" | relay ;;
		stream) local msgs="4K,64K,1M"
			[ "$QUICK" = 1 ] && msgs=64K
			progress "RDMA $2 streams over fresh memory, cold pass then warm pass ($msgs messages)"
			"$BIN" stream --ops "$2" --msg "$msgs" --reps "$r" --qp-timeout "$QP_TIMEOUT" --csv "$RAW" | relay ;;
		contend) progress "4 QPs, an async prefetch and a CPU writer on one cold 32 MiB ODP MR: fault waits, odp_fault_sharing on and off"
			# a run takes seconds, and has few waits
			contend_reps $((3 * r)) ;;
		pressure) progress "reclaim under memory.max 96 MiB: RDMA over the hot 48 MiB of 128 MiB, odp_aging on and off, MGLRU"
			test_reps "$r" odp_pressure pressure_line ;;
		numabal) progress "RDMA write stream (64 KiB) with automatic NUMA balancing on"
			echo 1 >/proc/sys/kernel/numa_balancing
			"$BIN" stream --ops write --msg 64K --reps "$r" --qp-timeout "$QP_TIMEOUT" --tag numabal --csv "$RAW" | relay
			echo 0 >/proc/sys/kernel/numa_balancing ;;
		esac
		[ "${PIPESTATUS[0]}" = 0 ] || { progress "$1 ${2:-}: FAILED"; row micro "$1" all 0 failed count 0 1; }
	}

	for entry in "${PLAN[@]}"; do
		STEP=$((STEP + 1))
		# shellcheck disable=SC2086  # one word per argument
		$entry
	done
	echo "$NUMABAL_DEFAULT" >/proc/sys/kernel/numa_balancing 2>/dev/null
	clock
	echo "[bench $CLOCK] done: $(wc -l <"$RAW") measurements in raw.csv"
	fails=$(grep -c ',failed,' "$RAW")
	[ "$fails" = 0 ] || echo "[bench $CLOCK] $fails step(s) failed"
	[ "$fails" = 0 ]
}

main "$@"
exit $?
