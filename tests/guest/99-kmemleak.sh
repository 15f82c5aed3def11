#!/bin/bash
# kmemleak after the whole suite, as TAP.  Runs INSIDE the test guest, LAST
# (after every other tests/guest script), on the debug kernel of
# `make check-debug` (CONFIG_DEBUG_KMEMLEAK, scanning on demand only); on
# a kernel without kmemleak (Debian's, `make check`) it skips.
#
#   1. rdma link delete rxe0 and rmmod rdma_rxe: the module must let go
#      (no object left holding a reference) and everything it still held
#      is freed, so what it lost becomes visible to kmemleak; rxe warns
#      itself (WARN_ON in its pool cleanup) if objects are left in a pool,
#      which the kernel log check turns into a failure.  A process that
#      registered an ODP MR and let it go lives on across the unload, and
#      then has reclaim ask about its pages (MADV_PAGEOUT): the notifier
#      the core subscribed for its address space went with the module;
#   2. scan twice (objects younger than 5 s are never reported) and read
#      /sys/kernel/debug/kmemleak: any "unreferenced object" fails, and the
#      whole report is printed as diagnostics.
#
# The unload is skipped with RXE_KMEMLEAK_UNLOAD=0 (leaks are then only
# those already unreachable while the module is loaded).
#
# Alone, in a debug guest (see tests/vm/check-debug.sh):
#   TESTS="odp-verbs kmemleak" tests/vm/check-debug.sh
set -u

DEV=${RXE_DEV:-rxe0}
DBG=/sys/kernel/debug
KML=$DBG/kmemleak
UNLOAD=${RXE_KMEMLEAK_UNLOAD:-1}

n=0 bad=0
ok() { n=$((n + 1)); echo "ok $n $*"; }
not_ok() { n=$((n + 1)); bad=$((bad + 1)); echo "not ok $n $*"; }
skip() { n=$((n + 1)); echo "ok $n $1 # SKIP $2"; }
diag() { sed 's/^/# /'; }

echo "TAP version 13"
mountpoint -q $DBG 2>/dev/null || mount -t debugfs debugfs $DBG 2>/dev/null
if [ ! -e $KML ]; then
	echo "1..0 # SKIP kernel without kmemleak (make check-debug)"
	exit 0
fi
echo "1..5"

# 1-3: unload ------------------------------------------------------------------
# outlive: registers an ODP MR, lets it and the device go, waits for
# rdma_rxe to go, then MADV_PAGEOUTs fresh memory of its own
outlive() {
	python3 - "$1" <<'PY'
import ctypes, mmap, os, sys, time
import pyverbs.device as d, pyverbs.pd as pd_, pyverbs.mr as mr_
from pyverbs.enums import IBV_ACCESS_LOCAL_WRITE, IBV_ACCESS_ON_DEMAND
ctx = d.Context(name=os.environ.get("RXE_DEV", "rxe0"))
p = pd_.PD(ctx)
mr_.MR(p, 1 << 20, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_ON_DEMAND).close()
p.close()
ctx.close()
open(sys.argv[1], "w").write("registered\n")
for _ in range(600):
    if not os.path.isdir("/sys/module/rdma_rxe"):
        break
    time.sleep(0.2)
n = 16 << 20
buf = mmap.mmap(-1, n)
buf.write(b"x" * n)
addr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
sys.exit(ctypes.CDLL(None).madvise(ctypes.c_void_p(addr), ctypes.c_size_t(n), 21) != 0)
PY
}
if [ "$UNLOAD" = 1 ]; then
	ready=$(mktemp)
	outlive "$ready" &
	opid=$!
	for _ in $(seq 300); do [ -s "$ready" ] || ! kill -0 $opid 2>/dev/null && break; sleep 0.2; done
	if out=$(timeout 120 rdma link delete "$DEV" 2>&1); then
		ok "rdma link delete $DEV"
	else
		not_ok "rdma link delete $DEV"
		echo "$out" | diag
	fi
	if out=$(timeout 120 rmmod rdma_rxe 2>&1) && [ ! -d /sys/module/rdma_rxe ]; then
		ok "rmmod rdma_rxe"
	else
		not_ok "rmmod rdma_rxe (refcount $(cat /sys/module/rdma_rxe/refcnt 2>/dev/null || echo ?))"
		echo "$out" | diag
	fi
	if [ -s "$ready" ] && timeout 120 tail --pid=$opid -f /dev/null && wait $opid; then
		ok "a process whose ODP MR is gone outlives rdma_rxe; reclaim then asks about its pages"
	else
		not_ok "a process whose ODP MR is gone outlives rdma_rxe; reclaim then asks about its pages (registered: $(cat "$ready"))"
		kill -9 $opid 2>/dev/null
	fi
	rm -f "$ready"
else
	skip "rdma link delete $DEV" "RXE_KMEMLEAK_UNLOAD=0"
	skip "rmmod rdma_rxe" "RXE_KMEMLEAK_UNLOAD=0"
	skip "a process outlives rdma_rxe" "RXE_KMEMLEAK_UNLOAD=0"
fi

# 4-5: scan ----------------------------------------------------------------------
t0=$(date +%s)
# Objects allocated in the last 5 s are not reported: let the freed
# module's memory age, and scan twice (the second scan confirms what the
# first one found, as Documentation/dev-tools/kmemleak.rst advises).
sleep 6
if echo scan >$KML 2>/dev/null && sleep 6 && echo scan >$KML 2>/dev/null; then
	ok "kmemleak scanned ($(( $(date +%s) - t0 ))s)"
else
	not_ok "kmemleak scanned (is it disabled? see the kernel log)"
	dmesg | grep -i kmemleak | tail -n 5 | diag
fi
report=$(cat $KML 2>&1)
leaks=$(grep -c '^unreferenced object' <<<"$report")
if [ "$leaks" = 0 ]; then
	ok "kmemleak: no leak"
else
	ours=$(awk '/^unreferenced object/ { if (o) n++; o = 0 } /rdma_rxe|ib_core|ib_uverbs|odp_|rxe_/ { o = 1 } END { if (o) n++; print n + 0 }' <<<"$report")
	not_ok "kmemleak: no leak ($leaks unreferenced objects, $ours with rdma_rxe/ib_* in their backtrace)"
	echo "$report" | diag
fi
[ "$bad" = 0 ]
