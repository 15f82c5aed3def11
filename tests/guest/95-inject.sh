#!/bin/bash
# test-timeout: 5400
# Fault injection into rdma_rxe, as TAP.  Runs INSIDE the test guest, on
# the debug kernel of `make check-debug` (CONFIG_FAILSLAB,
# CONFIG_FAIL_PAGE_ALLOC, CONFIG_FAULT_INJECTION_STACKTRACE_FILTER); on
# any other kernel (Debian's, `make check`) it skips.
#
# failslab and fail_page_alloc are aimed with their stack trace filter
# (require-start/require-end): an allocation may fail only if a return
# address in its first 32 stack frames lies in the aimed range.  Two rounds:
#
#   odp  the range is our ODP code (kernel/odp_mirror.c, drivers/rxe_odp_*.c:
#        their functions in the loaded module, found by name in the .o
#        files next to RXE_MODULE): MR registration, the fault worker and
#        everything under it in process context (hmm_range_fault's page
#        table and page allocations, swap-in), the fault slots, the
#        mirror's leaves, prefetch.  High probability: these are few.
#   rxe  the range is all of rdma_rxe's text (.text and friends, where
#        the kernel loaded them): object creation, queues, packets (skbs in softirq
#        context), MRs pinned and ODP.  Low probability: per packet.
#
# vmalloc is excluded in both rounds (reject-start/reject-end around
# __vmalloc_node_range): a failed vmalloc prints a "vmalloc error" stack
# dump by design, which is no bug but would read as a kernel splat.
#
# In each round the workload runs with injection on: the verbs ODP tests
# (BUILD/tests/odp_*, in the rxe round also --pinned; pinned MRs never run
# the code the odp round aims at) and a part of rdma-core's suite.
# odp_migrate and odp_ksm_thp are left out by default: on the debug kernel
# they spend up to 16 minutes each waiting for migrations and ksmd, not
# allocating in rxe, and the whole suite runs them without injection.
# Their own results do not count here (a failed allocation is supposed to
# make operations fail); what counts:
#   - every program ends by itself: no hang (killed by timeout), no death
#     by a signal;
#   - failures were really injected (the count is printed);
#   - and, with injection off again, rxe0 works (odp_traffic passes) and
#     holds no more objects than before (`rdma resource`).
# The kernel log is judged by run-vm.sh/check.sh as for every test (any
# WARNING, BUG, KASAN, lockdep report fails the run), and kmemleak is
# scanned afterwards by 99-kmemleak.sh.
#
# Environment:
#   RXE_INJECT_ROUNDS       rounds to run (default "odp rxe")
#   RXE_INJECT_P_ODP        probability in % for the odp round (default 20)
#   RXE_INJECT_P_RXE        probability in % for the rxe round (default 2)
#   RXE_INJECT_PROGS        verbs programs (default: every BUILD/tests/odp_*
#                           but odp_migrate and odp_ksm_thp)
#   RXE_INJECT_RDMA_CORE    rdma-core -k patterns (default "test_odp test_mr
#                           test_qp test_cq. test_cqex test_srq"; "none" to
#                           skip).  Not test_cq_events: its traffic waits
#                           for completion events in ibv_get_cq_event(),
#                           which has no timeout, and under injection an
#                           event can be lost for good (ib_uverbs'
#                           comp_handler drops it when its GFP_ATOMIC
#                           allocation fails, with rxe's completer on the
#                           stack) or never come (the peer's send failed):
#                           the test then waits until it is killed.
#   RXE_INJECT_TIMEOUT      seconds per program (default 1200)
#
# Alone, in a debug guest (see tests/vm/check-debug.sh):
#   TESTS=inject tests/vm/check-debug.sh
set -u

TOP=${RXE_ODP_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
HERE=$TOP/tests/guest
BIN=${RXE_ODP_BUILD:-$TOP/build}/tests
DEV=${RXE_DEV:-rxe0}
ROUNDS=${RXE_INJECT_ROUNDS:-odp rxe}
if [ -z "${RXE_INJECT_PROGS:-}" ]; then
	RXE_INJECT_PROGS=""
	for f in "$BIN"/odp_*; do
		case "${f##*/}" in odp_migrate|odp_ksm_thp) continue ;; esac
		[ -x "$f" ] && [ -f "$f" ] && RXE_INJECT_PROGS="$RXE_INJECT_PROGS ${f##*/}"
	done
fi
PROGS=${RXE_INJECT_PROGS:-odp_traffic}
RDMA_CORE=${RXE_INJECT_RDMA_CORE:-test_odp test_mr test_qp test_cq. test_cqex test_srq}
TMO=${RXE_INJECT_TIMEOUT:-1200}
DBG=/sys/kernel/debug
TIMES=1000000

# shellcheck source=tests/lib/tap.sh
. "$TOP/tests/lib/tap.sh"
ok() { tap_result ok "$*"; }
not_ok() { tap_result notok "$*"; }
diag() { sed 's/^/# /'; }

echo "TAP version 13"
mountpoint -q $DBG 2>/dev/null || mount -t debugfs debugfs $DBG 2>/dev/null
if [ ! -d $DBG/failslab ] || [ ! -d $DBG/fail_page_alloc ] ||
	[ ! -e $DBG/failslab/require-start ]; then
	echo "1..0 # SKIP kernel without failslab/fail_page_alloc and their stack filter (make check-debug)"
	exit 0
fi
if [ ! -d /sys/module/rdma_rxe ]; then
	echo "1..1"
	not_ok "rdma_rxe is loaded"
	exit 1
fi

# ---------------------------------------------------------------------------
# Address ranges (root sees real addresses).
# ---------------------------------------------------------------------------
# Addresses are kept as bash integers (signed 64 bits: kernel addresses
# are negative, but they compare the same way) and written out in hex.
# /proc/kallsyms is read as little as possible: on the debug kernel under
# TCG one read of its module part takes minutes (each module symbol is
# found by walking the modules from the start).  rdma_rxe's functions
# come from its .ko (objdump) placed at the section addresses the kernel
# loaded it at (/sys/module/rdma_rxe/sections, root only).
hx() { printf '%#x' "$1"; }
t0=$(date +%s)
# Our ODP code: the functions of odp_*.o and rxe_odp*.o (built next to
# the module by scripts/build-rxe.sh).
objs=()
declare -A odp_fn=()
mdir=$(dirname "${RXE_MODULE:-/nonexistent/x}")
for o in "$mdir"/odp_*.o "$mdir"/rxe_odp*.o; do
	case "$o" in *.mod.o|*'*'*) ;; *) [ -f "$o" ] && objs+=("$o") ;; esac
done
if [ "${#objs[@]}" -gt 0 ]; then
	while read -r _ t name; do
		case "$t" in t|T) odp_fn[$name]=1 ;; esac
	done < <(nm --defined-only "${objs[@]}" 2>/dev/null | awk 'NF == 3')
fi
declare -A sec_base=()
for f in /sys/module/rdma_rxe/sections/.text*; do
	[ -r "$f" ] && sec_base[${f##*/}]=$(( $(<"$f") ))
done
# rdma_rxe's text: from its lowest function to the end of its highest.
rxe_lo="" rxe_hi="" odp_lo="" odp_hi="" odp_n=0
if [ -n "${RXE_MODULE:-}" ] && [ "${#sec_base[@]}" -gt 0 ]; then
	while read -r val sec sz name; do
		[ -n "${sec_base[$sec]:-}" ] || continue
		v=$((sec_base[$sec] + 16#$val))
		e=$((v + 16#$sz))
		{ [ -z "$rxe_lo" ] || [ "$v" -lt "$rxe_lo" ]; } && rxe_lo=$v
		{ [ -z "$rxe_hi" ] || [ "$e" -gt "$rxe_hi" ]; } && rxe_hi=$e
		[ -n "${odp_fn[$name]:-}" ] || continue
		odp_n=$((odp_n + 1))
		{ [ -z "$odp_lo" ] || [ "$v" -lt "$odp_lo" ]; } && odp_lo=$v
		{ [ -z "$odp_hi" ] || [ "$e" -gt "$odp_hi" ]; } && odp_hi=$e
	done < <(objdump -t "$RXE_MODULE" 2>/dev/null |
		awk 'NF >= 6 && $(NF - 3) == "F" { print $1, $(NF - 2), $(NF - 1), $NF }')
fi
# vmalloc: __vmalloc_node_range up to the next symbol (the lowest
# address above it; addresses are 16 hex digits, compared as strings),
# from the kernel's own symbols, which come before the modules'.
vm_lo="" vm_hi=""
read -r vm_lo vm_hi < <(awk '
	NF > 3 { exit }
	$3 == "__vmalloc_node_range" { lo = $1 ""; next }
	{ a[NR] = $1 "" }
	END {
		if (lo == "") exit
		for (i in a)
			if (a[i] > lo && (hi == "" || a[i] < hi))
				hi = a[i]
		if (hi != "") print lo, hi
	}' /proc/kallsyms) || true
echo "# address ranges found in $(( $(date +%s) - t0 ))s"

ROUND_LIST=""
for r in $ROUNDS; do
	case "$r" in
	odp|rxe) ROUND_LIST="$ROUND_LIST $r" ;;
	*) echo "# unknown round '$r' (odp, rxe)" ;;
	esac
done
# plan: ranges and caches (3) + per round (arm, the verbs programs, in
# the rxe round in both modes, rdma-core, injected) + after (disarmed,
# odp_traffic, resources)
set -f
# shellcheck disable=SC2086  # counting words
nprogs=$(set -- $PROGS; echo $#)
set +f
round_size() {	# round_size ROUND: results a round reports
	local size=$((2 + nprogs + 1))
	[ "$1" = rxe ] && size=$((size + nprogs))
	[ "$RDMA_CORE" = none ] && size=$((size - 1))
	echo "$size"
}
planned=6
for r in $ROUND_LIST; do
	planned=$((planned + $(round_size "$r")))
done
echo "1..$planned"

if [ -n "$rxe_lo" ] && [ "$rxe_hi" -gt "$rxe_lo" ]; then
	ok "rdma_rxe text $(hx "$rxe_lo")-$(hx "$rxe_hi") ($(( (rxe_hi - rxe_lo) / 1024 )) KiB)"
else
	not_ok "rdma_rxe functions placed (objdump -t ${RXE_MODULE:-?}, /sys/module/rdma_rxe/sections)"
fi
if [ "$odp_n" -gt 0 ]; then
	ok "ODP code $(hx "$odp_lo")-$(hx "$odp_hi") ($odp_n functions of ${objs[*]##*/})"
else
	not_ok "ODP code found (odp_*.o, rxe_odp*.o next to ${RXE_MODULE:-?}, in the module)"
fi
[ -n "$vm_lo" ] && echo "# vmalloc excluded: __vmalloc_node_range 0x$vm_lo-0x$vm_hi"
# failslab may only fail caches marked SLAB_FAILSLAB (cache-filter): the
# kmalloc caches, by slub_debug=A,kmalloc-* on the kernel command line.
marked="" nmarked=0
for c in /sys/kernel/slab/*/failslab; do
	[ "$(cat "$c" 2>/dev/null)" = 1 ] || continue
	c=${c%/failslab}
	nmarked=$((nmarked + 1)) marked="$marked ${c##*/}"
done
if [ "$nmarked" -gt 0 ] && [[ " $marked " == *" kmalloc-64 "* ]]; then
	ok "slab caches marked for failslab: $nmarked (kmalloc-*)"
else
	not_ok "slab caches marked for failslab (boot with slub_debug=A,kmalloc-*; marked:${marked:- none})"
fi

# ---------------------------------------------------------------------------
# Arming.
# ---------------------------------------------------------------------------
setattr() {	# setattr ATTR FILE VALUE
	echo "$3" >"$DBG/$1/$2" 2>/dev/null || { echo "# cannot write $3 to $DBG/$1/$2"; return 1; }
}
arm() {	# arm LO HI PROBABILITY
	local a rc=0
	for a in failslab fail_page_alloc; do
		setattr $a probability 0 || rc=1
		setattr $a interval 1 || rc=1
		setattr $a space 0 || rc=1
		setattr $a times $TIMES || rc=1
		# one line per injection in the log, rate limited, no stack dump
		setattr $a verbose 1 || rc=1
		setattr $a task-filter N || rc=1
		setattr $a ignore-gfp-wait N || rc=1
		setattr $a stacktrace-depth 32 || rc=1
		setattr $a require-start "$(hx "$1")" || rc=1
		setattr $a require-end "$(hx "$2")" || rc=1
		if [ -n "$vm_lo" ]; then
			setattr $a reject-start "0x$vm_lo" || rc=1
			setattr $a reject-end "0x$vm_hi" || rc=1
		fi
	done
	setattr fail_page_alloc ignore-gfp-highmem N || rc=1
	setattr fail_page_alloc min-order 0 || rc=1
	# Only caches marked SLAB_FAILSLAB: the kmalloc caches, marked at
	# boot by slub_debug=A,kmalloc-* (check-debug.sh; since 5.9 the
	# sysfs failslab attribute is read-only).  Not the checkers' own
	# caches: a failed kmemleak or debugobjects metadata allocation
	# (made inside our kmalloc, so under the stack filter) would switch
	# the checker off, and tests nothing of ours.
	setattr failslab cache-filter Y || rc=1
	setattr failslab probability "$3" || rc=1
	setattr fail_page_alloc probability "$3" || rc=1
	return $rc
}
disarm() {
	local a
	for a in failslab fail_page_alloc; do
		echo 0 >"$DBG/$a/probability" 2>/dev/null
		echo 0 >"$DBG/$a/times" 2>/dev/null
	done
}
injected() {	# injected ATTR: failures injected since arm()
	local t
	t=$(cat "$DBG/$1/times" 2>/dev/null || echo "$TIMES")
	echo $((TIMES - t))
}
trap disarm EXIT

# ---------------------------------------------------------------------------
# Workloads.  Each program must end by itself: exit status 124/137 is a
# hang killed by timeout, > 128 a death by signal.
# ---------------------------------------------------------------------------
judge() {	# judge LABEL RC SECS SUMMARY
	local label=$1 rc=$2 secs=$3 summary=$4
	if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
		not_ok "$label: ended by itself under injection (hung: killed after ${TMO}s; $summary)"
	elif [ "$rc" -gt 128 ]; then
		not_ok "$label: ended by itself under injection (killed by signal $((rc - 128)); $summary)"
	else
		ok "$label: ended by itself under injection (exit $rc, ${secs}s; $summary)"
	fi
}
run_prog() {	# run_prog LABEL CMD...: run, keep its output as diagnostics
	local label=$1 log wrong
	shift
	# The whole output survives the guest, to tell failed operations
	# from wrong data.
	log=${RXE_OUT:-/tmp}/inject/$(echo "$label" | tr -c 'A-Za-z0-9_.-' '_').log
	mkdir -p "${log%/*}" 2>/dev/null || log=$(mktemp)
	tap_run --quiet --log "$log" "$label" "$TMO" "$@"
	wrong=$(grep -c 'first mismatch at' "$log")
	grep -E '^not ok |first mismatch at' "$log" | head -n 20 | sed "s/^/# $label: /"
	judge "$label" "$TAP_RUN_RC" "$TAP_RUN_SECS" "$TAP_RUN_PASSED passed, $TAP_RUN_FAILED failed, $wrong data mismatches"
}
run_round() {	# run_round NAME LO HI PROBABILITY
	local name=$1 lo=$2 hi=$3 p=$4 prog mode modes=odp s0 s1
	if ! arm "$lo" "$hi" "$p"; then
		not_ok "round $name: armed failslab and fail_page_alloc"
	else
		ok "round $name: armed failslab and fail_page_alloc at ${p}% on $(hx "$lo")-$(hx "$hi")"
	fi
	[ "$name" = rxe ] && modes="odp pinned"
	for prog in $PROGS; do
		for mode in $modes; do
			if [ ! -x "$BIN/$prog" ]; then
				not_ok "round $name: $prog ($mode): $BIN/$prog not built (make tests)"
				continue
			fi
			s0=$(injected failslab) p0=$(injected fail_page_alloc)
			if [ "$mode" = odp ]; then
				run_prog "round $name: $prog" "$BIN/$prog"
			else
				run_prog "round $name: $prog --pinned" "$BIN/$prog" --pinned
			fi
			echo "# round $name: $prog ($mode): injected $(( $(injected failslab) - s0 )) slab, $(( $(injected fail_page_alloc) - p0 )) page allocation failures"
		done
	done
	if [ "$RDMA_CORE" != none ]; then
		local pats="" k
		for k in $RDMA_CORE; do pats="$pats $k"; done
		s0=$(injected failslab) p0=$(injected fail_page_alloc)
		export RDMA_CORE_TESTS="${pats# }"
		run_prog "round $name: rdma-core ($RDMA_CORE_TESTS)" "$HERE/90-rdma-core.sh"
		unset RDMA_CORE_TESTS
		echo "# round $name: rdma-core: injected $(( $(injected failslab) - s0 )) slab, $(( $(injected fail_page_alloc) - p0 )) page allocation failures"
	fi
	s1=$(injected failslab) p1=$(injected fail_page_alloc)
	disarm
	TOTAL_SLAB=$((TOTAL_SLAB + s1)) TOTAL_PAGE=$((TOTAL_PAGE + p1))
	if [ $((s1 + p1)) -gt 0 ]; then
		ok "round $name: failures injected: $s1 slab, $p1 page allocations"
	else
		not_ok "round $name: failures injected (none: the filter never matched)"
	fi
}

res_counts() {	# the object counts of rxe0 in `rdma resource`
	rdma resource show 2>/dev/null | sed -n "s/^[0-9]*: $DEV: //p"
}

before=$(res_counts)
echo "# rdma resource before: $before"
TOTAL_SLAB=0 TOTAL_PAGE=0
for r in $ROUND_LIST; do
	case "$r" in
	odp)
		if [ "$odp_n" -gt 0 ]; then
			run_round odp "$odp_lo" "$odp_hi" "${RXE_INJECT_P_ODP:-20}"
		else
			for _ in $(seq 1 "$(round_size odp)"); do not_ok "round odp: no ODP code range"; done
		fi ;;
	rxe)
		if [ -n "$rxe_lo" ]; then
			run_round rxe "$rxe_lo" "$rxe_hi" "${RXE_INJECT_P_RXE:-2}"
		else
			for _ in $(seq 1 "$(round_size rxe)"); do not_ok "round rxe: no rdma_rxe range"; done
		fi ;;
	esac
done
disarm
echo "# fault injection: $TOTAL_SLAB slab + $TOTAL_PAGE page allocation failures injected in total"
echo "# FAULT_INJECTION lines in the kernel log (rate limited): $(dmesg | grep -c 'FAULT_INJECTION: forcing a failure')"

# ---------------------------------------------------------------------------
# After: injection off, the device must work and hold nothing more.
# ---------------------------------------------------------------------------
if [ "$(cat $DBG/failslab/probability)" = 0 ] && [ "$(cat $DBG/fail_page_alloc/probability)" = 0 ]; then
	ok "injection disarmed ($TOTAL_SLAB slab + $TOTAL_PAGE page allocation failures injected)"
else
	not_ok "injection disarmed"
fi
if [ -x "$BIN/odp_traffic" ]; then
	out=$(timeout -k 10 "$TMO" "$BIN/odp_traffic" </dev/null 2>&1)
	rc=$?
	if [ "$rc" = 0 ]; then
		ok "$DEV works after injection (odp_traffic passes)"
	else
		not_ok "$DEV works after injection (odp_traffic exit $rc)"
		echo "$out" | tail -n 30 | diag
	fi
else
	not_ok "$DEV works after injection ($BIN/odp_traffic not built)"
fi
# uverbs releases a dead process's objects asynchronously: give it time.
after=""
for _ in 1 2 3 4 5 6 7 8 9 10; do
	after=$(res_counts)
	[ "$after" = "$before" ] && break
	sleep 2
done
if [ "$after" = "$before" ]; then
	ok "$DEV holds as many objects as before injection ($after)"
else
	not_ok "$DEV holds as many objects as before injection"
	echo "# before: $before"
	echo "# after:  $after"
fi
[ "$TAP_FAILED" = 0 ]
