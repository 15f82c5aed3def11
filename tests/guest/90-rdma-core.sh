#!/bin/bash
# rdma-core's own python test suite (shipped by python3-pyverbs in
# /usr/share/doc/rdma-core/tests, partly gzipped) against rxe0, as TAP.
# Runs INSIDE the test guest (see tests/vm/run-vm.sh); as root.
#
# The suite is copied into a temporary directory as the package `tests`
# (every *.gz unpacked), and ALL of it is run with --dev $RXE_DEV
# --port 1 --gid $RXE_GID.  Each unittest result becomes one TAP line:
#   ok N tests.test_x.Class.test_y
#   not ok N tests.test_x.Class.test_y          (traceback as # lines)
#   ok N tests.test_x.Class.test_y # SKIP reason
# Tests listed in tests/guest/rdma-core-known-failures.txt fail on the
# stock 6.1 rxe too; when they fail they are reported as skipped,
#   ok N ... # SKIP known failure on stock 6.1 rxe: reason
# with the exception as one diagnostic line, so that "not ok" in the
# stream always means a failure of ours (CI logs are searched for it).
# A listed test that passes is reported as passed, with a note.
#
# Environment:
#   RXE_DEV, RXE_GID    device and GID index (default rxe0, 1)
#   RDMA_CORE_TESTS     optional space-separated unittest -k patterns, to
#                       run a subset, e.g. RDMA_CORE_TESTS="test_odp Mr"
#   RDMA_CORE_NETDEV_FROM_GID=1  find the device's net interface from its
#                       GID rather than its parent device, which rxe lacks
#                       (tests/pair/rdma_core.py: rxe0 on a NIC)
#
# Alone, in a guest:
#   tests/vm/run-vm.sh --kver KVER --module M.ko --out DIR \
#       --env RDMA_CORE_TESTS=test_odp -- tests/guest/90-rdma-core.sh
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
SRC=${RDMA_CORE_TESTS_DIR:-/usr/share/doc/rdma-core/tests}
KNOWN=$HERE/rdma-core-known-failures.txt
DEV=${RXE_DEV:-rxe0}
GID=${RXE_GID:-1}

echo "TAP version 13"
if [ ! -f "$SRC/__init__.py" ] || ! python3 -c 'import pyverbs' 2>/dev/null; then
	echo "1..0 # SKIP rdma-core tests or pyverbs not installed (apt install python3-pyverbs)"
	exit 0
fi

t0=$(date +%s)
WORK=$(mktemp -d /tmp/rdma-core-tests.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
cp -r "$SRC" "$WORK/tests"
find "$WORK/tests" -name '*.gz' -exec gunzip -f {} +
echo "# rdma-core: suite copied from $SRC in $(( $(date +%s) - t0 ))s"

cat >"$WORK/tap_runner.py" <<'EOF'
# Run rdma-core's tests package with a unittest result class that prints
# TAP.  argv: known-failures-file [-k pattern]...  (--dev/--port/--gid are
# taken by rdma-core's own args_parser from sys.argv).
import fnmatch
import os
import sys
import time
import traceback
import unittest

work = os.path.dirname(os.path.abspath(__file__))
# run_tests.py runs from inside tests/, so `args_parser` is imported as a
# top-level module while the rest is imported as `tests.*`.
sys.path[0:0] = [os.path.join(work, 'tests'), work]

known_file = sys.argv[1]
patterns = []
rest = []
args = sys.argv[2:]
while args:
    a = args.pop(0)
    if a == '-k':
        patterns.append(args.pop(0))
    else:
        rest.append(a)
sys.argv = [sys.argv[0]] + rest

known = []
with open(known_file) as f:
    for line in f:
        line = line.split('#', 1)[0].strip()
        if line:
            name, _, why = line.partition(' ')
            known.append((name, why.strip()))

# TAP goes to the original stdout; anything the tests print goes to
# stderr so that it cannot be mistaken for a TAP line.
tap = os.fdopen(os.dup(1), 'w', buffering=1)
os.dup2(2, 1)
sys.stdout = sys.stderr

t_import = time.monotonic()
from args_parser import parser  # noqa: E402
parser.parse_args()
import tests  # noqa: E402
tap.write('# rdma-core: test modules imported in %.0fs\n' % (time.monotonic() - t_import))

# rdma-core finds a device's net interface through its parent device
# (/sys/class/infiniband/DEV/device/net/), and rxe has no parent device, so
# every test that needs an IP address skips on rxe ("doesn't have net
# interface").  With RDMA_CORE_NETDEV_FROM_GID=1 the net interface is the
# one the GID belongs to (ports/PORT/gid_attrs/ndevs/INDEX), as rdma_cm
# itself finds it.
if os.environ.get('RDMA_CORE_NETDEV_FROM_GID') == '1':
    import subprocess
    from tests.base import RDMATestCase
    parent_get_ip_mac = RDMATestCase._get_ip_mac

    def gid_get_ip_mac(self, dev, port, idx):
        ndevs = '/sys/class/infiniband/%s/ports/%s/gid_attrs/ndevs/%s' % (
            dev, port, idx)
        try:
            with open(ndevs) as f:
                ndev = f.read().strip()
        except OSError:
            return parent_get_ip_mac(self, dev, port, idx)
        try:
            ip, mac = self.get_ip_mac_address(ndev)
        except (KeyError, IndexError, subprocess.CalledProcessError):
            ip = mac = None
        self.args.append([dev, port, idx, ip, mac])

    RDMATestCase._get_ip_mac = gid_get_ip_mac
    tap.write('# rdma-core: net interfaces from the GIDs (RDMA_CORE_NETDEV_FROM_GID)\n')


def known_reason(test_id):
    for name, why in known:
        if fnmatch.fnmatchcase(test_id, name):
            return why or 'listed in rdma-core-known-failures.txt'
    return None


def oneline(s):
    return ' '.join(str(s).split())


class TapResult(unittest.TestResult):
    n = 0
    counts = {'pass': 0, 'fail': 0, 'skip': 0, 'known': 0}

    def _id(self, test):
        return test.id() if hasattr(test, 'id') else str(test)

    def startTest(self, test):
        super().startTest(test)
        self.t0 = time.monotonic()

    def _emit(self, line, diag=None):
        TapResult.n += 1
        tap.write('%s\n' % line.replace('%N', str(TapResult.n)))
        for d in (diag or '').rstrip('\n').splitlines():
            tap.write('#   %s\n' % d)

    def addSuccess(self, test):
        super().addSuccess(test)
        tid = self._id(test)
        self.counts['pass'] += 1
        self._emit('ok %%N %s' % tid)
        if known_reason(tid):
            tap.write('# note: %s is listed as a known failure but passed\n' % tid)

    def _failed(self, test, err):
        tid = self._id(test)
        why = known_reason(tid)
        text = ''.join(traceback.format_exception(*err))
        if why:
            self.counts['known'] += 1
            last = text.rstrip('\n').splitlines()[-1:] or ['']
            self._emit('ok %%N %s # SKIP known failure on stock 6.1 rxe: %s'
                       % (tid, oneline(why)), 'failed as expected: ' + last[0])
        else:
            self.counts['fail'] += 1
            self._emit('not ok %%N %s' % tid, text)

    def addError(self, test, err):
        super().addError(test, err)
        self._failed(test, err)

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._failed(test, err)

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            self._failed(subtest, err)

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self.counts['skip'] += 1
        self._emit('ok %%N %s # SKIP %s' % (self._id(test), oneline(reason) or 'skipped'))

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self.counts['pass'] += 1
        self._emit('ok %%N %s # expected failure' % self._id(test))

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self.counts['fail'] += 1
        self._emit('not ok %%N %s # unexpected success' % self._id(test))


loader = unittest.TestLoader()
if patterns:
    loader.testNamePatterns = ['*%s*' % p if '*' not in p else p for p in patterns]
suite = loader.loadTestsFromModule(tests)
result = TapResult()
t0 = time.monotonic()
suite.run(result)
c = TapResult.counts
tap.write('1..%d\n' % TapResult.n)
tap.write('# rdma-core: %d passed, %d failed, %d skipped, %d known failures '
          'in %.0fs\n' % (c['pass'], c['fail'], c['skip'], c['known'],
                          time.monotonic() - t0))
sys.exit(1 if c['fail'] else 0)
EOF

set -- "$KNOWN"
for p in ${RDMA_CORE_TESTS:-}; do
	set -- "$@" -k "$p"
done
cd "$WORK"
# -u: stream results as they come; stdin closed: no test reads it.
# rdma-core 44's rxe provider has no advise_mr, so its prefetch tests skip
# ("Advise MR ... is not supported").  librxeodp supplies it: preloaded, it
# makes ibv_advise_mr() work on rxe contexts (and changes nothing else), so
# those tests run against our kernel's advise_mr.  Not with the stock
# module, which has none.  RDMA_CORE_PRELOAD=0 turns it off.
PRELOAD=${RXE_ODP_BUILD:-$HERE/../../build}/userspace/librxeodp-preload.so
if [ "${RDMA_CORE_PRELOAD:-1}" = 1 ] && [ "${RXE_STOCK:-0}" != 1 ] &&
   [ -f "$PRELOAD" ]; then
	echo "# rdma-core: ibv_advise_mr from $PRELOAD (LD_PRELOAD)"
	export LD_PRELOAD=$PRELOAD${LD_PRELOAD:+:$LD_PRELOAD}
fi
python3 -u "$WORK/tap_runner.py" "$@" --dev "$DEV" --port 1 --gid "$GID" </dev/null
