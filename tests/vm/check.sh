#!/bin/bash
# Host side of `make check`: boot one test guest (tests/vm/run-vm.sh),
# run tests/guest/run-all.sh in it and print its TAP stream as it arrives,
# followed by host-side results:
#   vm: guest loaded rdma_rxe and set up rxe0
#   vm: guest finished before the timeout
#   vm: kernel log clean        (no WARNING/BUG/Oops/lockdep/KASAN/... line
#                                in the guest's dmesg or console; the lines
#                                are printed as diagnostics)
# Every failed result is repeated, as "# FAILED: not ok ...", just before
# the closing line.  The LAST line of output is the closing line
#   N passed, N failed, N skipped
# ("not ok ... # TODO" known failures count as skipped).  Exit status is
# non-zero when anything failed.
#
# Usage:
#   tests/vm/check.sh --kver KVER --module PATH.ko --out DIR
#                     [--stock] [--timeout SEC] [--quiet]
#                     [--kernel IMAGE --modroot DIR] [--append ARGS]
#   --stock       test the distribution's rdma_rxe (baseline numbers)
#   --timeout     guest time limit in seconds (default 4800: the whole
#                 suite under TCG; each script also has TEST_TIMEOUT)
#   --quiet       print only failures, the host results and the summary
#   --kernel, --modroot, --append   passed to run-vm.sh: boot a kernel
#                 built here instead of Debian's (tests/vm/check-debug.sh)
# Environment: TESTS and TEST_TIMEOUT select scripts / set their time limit
# (see tests/guest/run-all.sh); RDMA_CORE_TESTS picks rdma-core tests (see
# tests/guest/90-rdma-core.sh).  E.g. only the module checks and the
# rdma-core ODP tests:
#   TESTS="module rdma-core" RDMA_CORE_TESTS=test_odp make check
#
# Then stages on two guests joined by one Ethernet link
# (tests/vm/run-pair.sh, tests/pair/): perftest across it at MTU 1500
# and 9000, pinned and ODP, with and without rdma_cm; the same with Debian's
# rdma_rxe on one side and ODP MRs on the other; rdma-core's suite with
# rxe0 on the NIC (tests/pair/rdma_core.py); perftest under 1 % loss;
# odp_remote (B's memory changed under A's traffic) under 1 % loss;
# and real engines (rdma-core's pingpong examples, UCX's ucx_perftest) on
# ODP memory and pinned (tests/pair/engines.py).
# RXE_PAIR=0 leaves them out; --stock and a --kernel of our own do too;
# RXE_PAIR_STAGES="NAME..." runs only those (mtu1500 mtu9000 mixed-odp-a
# mixed-odp-b rdma-core loss1 remote-loss1 engines engines-stock).
#
# Artifacts in DIR: tap.txt (this output), output.log (guest stream),
# console.log, dmesg.log, setup.log, log-issues.txt, status; pair-*/A and
# pair-*/B for the two-host stages.
set -euo pipefail

TOP=$(cd "$(dirname "$0")/../.." && pwd)
KVER="" MODULE="" OUT="" STOCK=() TIMEOUT=4800 QUIET=0 VMARGS=()
while [ $# -gt 0 ]; do
	case "$1" in
	--kver) KVER=${2:?}; shift 2 ;;
	--module) MODULE=${2:?}; shift 2 ;;
	--out) OUT=${2:?}; shift 2 ;;
	--stock) STOCK=(--stock); shift ;;
	--timeout) TIMEOUT=${2:?}; shift 2 ;;
	--quiet) QUIET=1; shift ;;
	--kernel|--modroot|--append) VMARGS+=("$1" "${2?}"); shift 2 ;;
	*) echo "check: usage: check.sh --kver KVER --module PATH.ko --out DIR [--stock] [--timeout SEC] [--quiet] [--kernel IMAGE --modroot DIR] [--append ARGS]" >&2; exit 64 ;;
	esac
done
if [ -z "$KVER" ] || [ -z "$MODULE" ] || [ -z "$OUT" ]; then
	echo "check: --kver, --module and --out are required" >&2; exit 64
fi
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
TAPF=$OUT/tap.txt
: >"$TAPF"
# Stale verdicts of an earlier run must not count for this one.
rm -f "$OUT"/{status,rc,log-issues.txt,guest-status,dmesg.log,setup.log}

# shellcheck source=tests/lib/tap.sh
. "$TOP/tests/lib/tap.sh"
# Every line goes to tap.txt; to the terminal too unless --quiet, which
# shows only failures, the host results and what is printed "always".
out() { printf '%s\n' "$1" >>"$TAPF"; [ "$QUIET" = 1 ] && [ "${2:-}" != always ] || printf '%s\n' "$1"; }
TAP_ALWAYS=""
tap_emit() {
	case "$1" in
	"not ok"*) out "$1" always ;;
	*) out "$1" "$TAP_ALWAYS" ;;
	esac
}
diag_lines() {	# diag_lines PREFIX: stdin as diagnostics, always shown
	local l
	while IFS= read -r l; do out "$1$l" always; done
}
host_result() {	# host_result ok|notok DESCRIPTION
	TAP_ALWAYS=always
	tap_result "$1" "$2"
	TAP_ALWAYS=""
}

out "TAP version 13" always
t0=$(date +%s)
# run-vm.sh prints the guest's output.log as it grows on stdout and its own
# messages on stderr: both become part of the stream (the latter as
# diagnostics), the guest's results as they are.  tap_run also fails the
# stream if it breaks off, or if run-vm.sh fails without a failed result
# (a guest that died, a dirty kernel log).  Its verdict is read back from
# DIR/status below.
tap_run "" $((TIMEOUT + 600)) "$TOP/tests/vm/run-vm.sh" --kver "$KVER" \
	--module "$MODULE" --out "$OUT" --timeout "$TIMEOUT" --brief \
	"${STOCK[@]+"${STOCK[@]}"}" "${VMARGS[@]+"${VMARGS[@]}"}" \
	-- tests/guest/run-all.sh || true
secs=$(( $(date +%s) - t0 ))

status() { sed -n "s/^$1=//p" "$OUT/status" 2>/dev/null || true; }
rc=$(status rc) timed_out=$(status timed_out) setup_ok=$(status setup_ok)

if [ "$setup_ok" = 1 ]; then
	host_result ok "vm: guest loaded rdma_rxe and set up rxe0"
else
	host_result notok "vm: guest loaded rdma_rxe and set up rxe0"
	{ tail -n 20 "$OUT/setup.log" 2>/dev/null || true; } | diag_lines "#   "
fi

if [ "$timed_out" = 0 ] && [ -n "$rc" ]; then
	host_result ok "vm: guest finished before the timeout (${secs}s of ${TIMEOUT}s)"
else
	if [ "$timed_out" = 1 ]; then
		host_result notok "vm: guest finished before the timeout (killed after ${TIMEOUT}s)"
	else
		host_result notok "vm: guest finished before the timeout (no result: the guest did not start or died)"
	fi
	[ ! -s "$OUT/console.log" ] || out "#   last 50 lines of $OUT/console.log:" always
	{ tail -n 50 "$OUT/console.log" 2>/dev/null || true; } | diag_lines "#   | "
fi

if [ -s "$OUT/log-issues.txt" ] || [ ! -f "$OUT/status" ]; then
	host_result notok "vm: kernel log clean"
	{ head -n 60 "$OUT/log-issues.txt" 2>/dev/null || true; } | diag_lines "#   "
elif [ ! -s "$OUT/dmesg.log" ]; then
	host_result notok "vm: kernel log clean (no dmesg.log saved; console.log only)"
else
	host_result ok "vm: kernel log clean"
fi


# Two hosts: guests A and B joined by one Ethernet link (run-pair.sh),
# rxe0 over each one's NIC; A runs the client side of every case, B the
# server side (tests/pair/pairlib.py).
# SCRIPT is a tests/pair/*.py, or the name of a test program in BUILD/tests.
pair_stage() {	# pair_stage NAME SCRIPT [run-pair.sh options] -- [VAR=VALUE...]
	local name=$1 script=$2 pdir opts=() envs=() what g cmd
	shift 2
	case "$script" in
	*.py) cmd=(python3 "$script") ;;
	*) cmd=(bash -c "exec \"\$RXE_ODP_BUILD/tests/$script\"") ;;
	esac
	case " ${RXE_PAIR_STAGES:-$name} " in
	*" $name "*) ;;
	*) return 0 ;;
	esac
	while [ "$1" != -- ]; do opts+=("$1"); shift; done
	shift
	envs=("$@")
	pdir=$OUT/pair-$name
	rm -rf "$pdir"
	out "# ---- two hosts, $name: ${opts[*]} ${envs[*]}" always
	# run-pair.sh has the guests' own time limits (--timeout 1200 unless
	# the stage says otherwise); this one only ends a host side that hangs
	tap_run "two-host $name" 7200 env "${envs[@]+"${envs[@]}"}" \
		"$TOP/tests/vm/run-pair.sh" --kver "$KVER" --module "$MODULE" \
		--out "$pdir" --timeout 1200 "${opts[@]}" \
		-- "${cmd[@]}" || true
	for g in A B; do
		st() { sed -n "s/^$1=//p" "$pdir/$g/status" 2>/dev/null || true; }
		what="two-host $name: guest $g set up rxe0 over its NIC and finished"
		if [ "$(st setup_ok)" = 1 ] && [ "$(st timed_out)" = 0 ] && [ -n "$(st rc)" ]; then
			host_result ok "$what"
		else
			host_result notok "$what"
			{ tail -n 20 "$pdir/$g/setup.log" "$pdir/$g/console.log" 2>/dev/null || true; } | diag_lines "#   "
		fi
		if [ -f "$pdir/$g/status" ] && [ ! -s "$pdir/$g/log-issues.txt" ] && [ -s "$pdir/$g/dmesg.log" ]; then
			host_result ok "two-host $name: guest $g kernel log clean"
		else
			host_result notok "two-host $name: guest $g kernel log clean"
			{ head -n 40 "$pdir/$g/log-issues.txt" 2>/dev/null || true; } | diag_lines "#   "
		fi
	done
}
if [ "${RXE_PAIR:-1}" = 1 ] && [ "${#STOCK[@]}" = 0 ] && [ "${#VMARGS[@]}" = 0 ]; then
	pair_stage mtu1500 tests/pair/perftest.py --mtu 1500 -- \
		PAIR_PERFTEST_PROGS="ib_write_bw ib_read_bw ib_send_bw ib_atomic_bw ib_write_lat"
	# jumbo frames: IB MTU 4096, one page per packet
	pair_stage mtu9000 tests/pair/perftest.py --mtu 9000 -- \
		PAIR_PERFTEST_PROGS="ib_write_bw ib_read_bw ib_send_bw"
	# a peer without ODP (Debian's rdma_rxe) against our ODP MRs, on
	# the requester's side (A) and on the responder's (B)
	pair_stage mixed-odp-a tests/pair/perftest.py --mtu 1500 --stock-b -- \
		PAIR_PERFTEST_PROGS="ib_write_bw ib_read_bw ib_send_bw ib_atomic_bw" \
		PAIR_PERFTEST_MODES=odp-a
	pair_stage mixed-odp-b tests/pair/perftest.py --mtu 1500 --stock-a -- \
		PAIR_PERFTEST_PROGS="ib_write_bw ib_read_bw ib_send_bw ib_atomic_bw" \
		PAIR_PERFTEST_MODES=odp-b
	# rdma-core's suite with rxe0 on a NIC: IB MTU 1024, and the rdma_cm
	# tests, which need a net interface
	pair_stage rdma-core tests/pair/rdma_core.py --mtu 1500 --
	pair_stage loss1 tests/pair/perftest.py --mtu 1500 --netem "loss 1%" -- \
		PAIR_PERFTEST_PROGS="ib_write_bw ib_read_bw" PAIR_PERFTEST_CM=oob \
		PAIR_PERFTEST_ITERS=50
	# B's memory changes under A's traffic, under 1 % loss
	pair_stage remote-loss1 odp_remote --mtu 1500 --netem "loss 1%" --
	# about 900 s when all pass; room for one case to use up its budget
	pair_stage engines tests/pair/engines.py --mtu 1500 --timeout 2400 --
	# the control: what ODP users of each engine see on Debian's rdma_rxe
	pair_stage engines-stock tests/pair/engines.py --mtu 1500 --stock-a \
		--stock-b -- PAIR_ENGINES_STOCK=1
fi

secs=$(( $(date +%s) - t0 ))
TAP_ALWAYS=always
tap_emit "1..$TAP_N"
[ "$TAP_KNOWN" = 0 ] || tap_emit "# $TAP_KNOWN known failure(s) (not ok ... # TODO) are counted as skipped"
for f in tap.txt output.log console.log dmesg.log setup.log log-issues.txt; do
	[ -s "$OUT/$f" ] && tap_emit "# artifact: $OUT/$f"
done
tap_emit "# check: ${secs}s"
# The failures again, next to the closing line: a CI log is often read
# from its end.
for l in "${TAP_FAILURES[@]+"${TAP_FAILURES[@]}"}"; do tap_emit "# FAILED: $l"; done
tap_emit "$TAP_PASSED passed, $TAP_FAILED failed, $TAP_SKIPPED skipped"
[ "$TAP_FAILED" = 0 ]
