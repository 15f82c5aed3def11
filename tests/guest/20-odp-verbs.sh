#!/bin/bash
# test-timeout: 2400
# The verbs-level ODP tests (tests/odp/*.c, built into BUILD/tests/) as ONE
# TAP stream.  Runs INSIDE the test guest, as root, with rxe0 up.
#
# Each program is itself a TAP producer; here its results are renumbered
# and prefixed with its name, e.g. "ok 7 odp_traffic: RC RDMA READ, ...".
# A program that dies, times out, prints fewer results than it planned or
# exits non-zero without a failed result adds a "not ok" line.  These tests
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
RC_MARK="@@odp-verbs-rc@@"

n=0 bad=0
emit() {	# emit "ok"|"not ok" DESCRIPTION
	n=$((n + 1))
	[ "$1" = ok ] || bad=$((bad + 1))
	echo "$1 $n $2"
}

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
			emit "not ok" "$label: $BIN/$prog not built (make tests)"
			continue
		fi
		t0=$(date +%s)
		planned="" seen=0 failed=0 rc=""
		while IFS= read -r line; do
			case "$line" in
			"$RC_MARK "*)
				rc=${line#"$RC_MARK "}
				;;
			"TAP version"*)
				;;
			1..*)
				planned=${line#1..}
				planned=${planned%% *}
				;;
			"ok "[0-9]*|"not ok "[0-9]*)
				res=ok
				case "$line" in
				"not ok"*) res="not ok"; failed=$((failed + 1)) ;;
				esac
				rest=${line#"$res "}
				rest=${rest#*[0-9] }
				seen=$((seen + 1))
				emit "$res" "$label: $rest"
				;;
			\#*)
				echo "$line"
				;;
			"")
				;;
			*)
				echo "# $label: $line"
				;;
			esac
		done < <(
			timeout -k 5 "$TMO" "$BIN/$prog" "${args[@]}" </dev/null 2>&1
			echo "$RC_MARK $?"
		)
		secs=$(( $(date +%s) - t0 ))
		echo "# $label: exit ${rc:-?}, $seen results, ${secs}s"
		if [ "${rc:-}" = 124 ] || [ "${rc:-}" = 137 ]; then
			emit "not ok" "$label: timed out after ${TMO}s (killed) after $seen of ${planned:-?} results"
		elif [ -z "$planned" ]; then
			emit "not ok" "$label: no TAP plan (exit ${rc:-?})"
		elif [ "$seen" != "$planned" ]; then
			emit "not ok" "$label: planned $planned results but printed $seen (exit ${rc:-?})"
		elif [ "${rc:-1}" != 0 ] && [ "$failed" = 0 ]; then
			emit "not ok" "$label: exited with status ${rc:-?} but reported no failure"
		fi
	done
done
echo "1..$n"
[ "$bad" = 0 ]
