#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0 OR Linux-OpenIB
"""rdma-core's python suite on a guest whose rxe0 is on its NIC, as TAP.

The suite finds a device's net interface through its parent device
(/sys/class/infiniband/rxe0/device/net/); rxe has none, so every test
that needs an IP address (the rdma_cm ones, RDMACMBaseTest) skips on any
rxe with "Device rxe0 doesn't have net interface".  Here rxe0 is on A's
virtio NIC, and 90-rdma-core.sh finds the interface from the GID instead
(RDMA_CORE_NETDEV_FROM_GID=1), so those tests run, at the link's MTU.
Every rdma_cm test of the suite runs its two sides as two processes of
one host; none needs a second one, so B only holds up its end of the
link (and serves nothing) until A is done.

A runs tests/guest/90-rdma-core.sh (known failures, TAP per test): the
whole suite, so test_odp.py and the rest run at the link's IB MTU (1024
at MTU 1500) as well as the rdma_cm tests, or the unittest -k patterns
in PAIR_RDMA_CORE_TESTS (e.g. test_rdmacm.CMTestCase); each result is
named "rdma-core ...".  A test that still skips for want of a net
interface fails: that is what this stage is for.
"""
import os
import re
import subprocess

import pairlib
from pairlib import Peer

SCRIPT = pairlib.TOP + "/tests/guest/90-rdma-core.sh"
TESTS = os.environ.get("PAIR_RDMA_CORE_TESTS", "")
RESULT = re.compile(r"^((?:not )?ok) (\d+) (.*)$")
NO_NET = "doesn't have net interface"


def drive():
    """A: the suite over the NIC, with B's end of the link up."""
    peer = Peer()
    env = dict(os.environ, RDMA_CORE_TESTS=TESTS,
               RDMA_CORE_NETDEV_FROM_GID="1")
    p = subprocess.Popen(["bash", SCRIPT], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    bad = 0
    for line in p.stdout:
        line = line.rstrip("\n")
        m = RESULT.match(line)
        if not m:
            print(line, flush=True)
            continue
        verdict, n, what = m.groups()
        if NO_NET in what:
            verdict = "not ok"
            what = what.replace("# SKIP", "# (skipped)", 1)
        bad += verdict == "not ok"
        print("%s %s rdma-core %s" % (verdict, n, what), flush=True)
    rc = p.wait()
    peer.close()
    if rc == 0 and bad:
        rc = 1
    return rc


if __name__ == "__main__":
    pairlib.main(drive, "rdma_core.py")
