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
# rdma_rxe on one side and ODP MRs on the other; rdma-core's rdma_cm
# tests with rxe0 on the NIC (tests/pair/rdma_core.py); perftest under
# 1 % loss; and real engines (rdma-core's pingpong examples, UCX's ucx_perftest) on ODP
# memory and pinned (tests/pair/engines.py).
# RXE_PAIR=0 leaves them out; --stock and a --kernel of our own do too.
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

n=0 passed=0 failed=0 skipped=0 known=0 failures=()
out() { printf '%s\n' "$1" >>"$TAPF"; [ "$QUIET" = 1 ] && [ "${2:-}" != always ] || printf '%s\n' "$1"; }
count() {	# count LINE: tally one TAP result line (builtins only)
	local l=$1 dir=""
	[[ $l =~ [[:space:]]#[[:space:]]*([A-Za-z]{4}) ]] && dir=${BASH_REMATCH[1]^^}
	case "$l" in
	"not ok"*) if [ "$dir" = TODO ]; then skipped=$((skipped + 1)); known=$((known + 1)); else failed=$((failed + 1)); failures+=("$l"); fi ;;
	ok*) if [ "$dir" = SKIP ]; then skipped=$((skipped + 1)); else passed=$((passed + 1)); fi ;;
	esac
}
diag_lines() {	# diag_lines PREFIX: stdin as diagnostics, always shown
	local l
	while IFS= read -r l; do out "$1$l" always; done
}
host_result() {	# host_result ok|notok DESCRIPTION
	n=$((n + 1))
	local l="ok $n $2"
	[ "$1" = ok ] || l="not ok $n $2"
	count "$l"
	out "$l" always
}

out "TAP version 13" always
t0=$(date +%s)
# run-vm.sh prints the guest's output.log as it grows on stdout and its own
# messages on stderr: both become part of the stream (the latter as
# diagnostics).  Its verdict is read back from DIR/status below.
while IFS= read -r line; do
	case "$line" in
	"TAP version"*|1..[0-9]*) ;;	# ours are printed instead
	ok*|"not ok"*)
		n=$((n + 1))
		count "$line"
		case "$line" in "not ok"*) out "$line" always ;; *) out "$line" ;; esac ;;
	\#*) out "$line" ;;
	*[0-9]" passed, "*[0-9]" failed, "*[0-9]" skipped") out "# guest: $line" ;;
	"") ;;
	*) out "# $line" ;;
	esac
done < <("$TOP/tests/vm/run-vm.sh" --kver "$KVER" --module "$MODULE" \
	--out "$OUT" --timeout "$TIMEOUT" --brief "${STOCK[@]+"${STOCK[@]}"}" \
	"${VMARGS[@]+"${VMARGS[@]}"}" -- tests/guest/run-all.sh 2>&1 || true)
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

# run-all.sh failing without a failed test line means its stream broke.
if [ -n "$rc" ] && [ "$rc" != 0 ] && [ "$failed" = 0 ]; then
	host_result notok "vm: run-all.sh exited with status $rc but reported no failure"
fi

# Two hosts: guests A and B joined by one Ethernet link (run-pair.sh),
# rxe0 over each one's NIC; A runs the client side of every case, B the
# server side (tests/pair/pairlib.py).
pair_stage() {	# pair_stage NAME SCRIPT [run-pair.sh options] -- [VAR=VALUE...]
	local name=$1 script=$2 pdir opts=() envs=() line st what before=$failed
	shift 2
	while [ "$1" != -- ]; do opts+=("$1"); shift; done
	shift
	envs=("$@")
	pdir=$OUT/pair-$name
	rm -rf "$pdir"
	out "# ---- two hosts, $name: ${opts[*]} ${envs[*]}" always
	while IFS= read -r line; do
		case "$line" in
		"TAP version"*|1..[0-9]*) ;;
		ok*|"not ok"*)
			n=$((n + 1))
			line="${line%%two-host *}two-host $name:${line#*two-host}"
			line=$(printf '%s' "$line" | sed "s/^\(\(not \)\{0,1\}ok\) [0-9]*/\1 $n/")
			count "$line"
			case "$line" in "not ok"*) out "$line" always ;; *) out "$line" ;; esac ;;
		"") ;;
		*) out "# $line" ;;
		esac
	done < <(env "${envs[@]+"${envs[@]}"}" "$TOP/tests/vm/run-pair.sh" --kver "$KVER" \
		--module "$MODULE" --out "$pdir" --timeout 1200 "${opts[@]}" \
		-- python3 "$script" 2>&1 || true)
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
	st=$(sed -n 's/^rc=//p' "$pdir/A/status" 2>/dev/null || true)
	if [ -n "$st" ] && [ "$st" != 0 ] && [ "$failed" = "$before" ]; then
		host_result notok "two-host $name: ${script##*/} exited with status $st but reported no failure"
	fi
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
	# rdma-core's rdma_cm tests, which need rxe0 on a net interface
	pair_stage rdma-core tests/pair/rdma_core.py --mtu 1500 --
	pair_stage loss1 tests/pair/perftest.py --mtu 1500 --netem "loss 1%" -- \
		PAIR_PERFTEST_PROGS="ib_write_bw ib_read_bw" PAIR_PERFTEST_CM=oob \
		PAIR_PERFTEST_ITERS=50
	# about 900 s when all pass; room for one case to use up its budget
	pair_stage engines tests/pair/engines.py --mtu 1500 --timeout 2400 --
	# the control: what ODP users of each engine see on Debian's rdma_rxe
	pair_stage engines-stock tests/pair/engines.py --mtu 1500 --stock-a \
		--stock-b -- PAIR_ENGINES_STOCK=1
fi

secs=$(( $(date +%s) - t0 ))
out "1..$n" always
[ "$known" = 0 ] || out "# $known known failure(s) (not ok ... # TODO) are counted as skipped" always
for f in tap.txt output.log console.log dmesg.log setup.log log-issues.txt; do
	[ -s "$OUT/$f" ] && out "# artifact: $OUT/$f" always
done
out "# check: ${secs}s" always
# The failures again, next to the closing line: a CI log is often read
# from its end.
for l in "${failures[@]+"${failures[@]}"}"; do out "# FAILED: $l" always; done
out "$passed passed, $failed failed, $skipped skipped" always
[ "$failed" = 0 ]
