#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0 OR Linux-OpenIB
"""perftest between the two guests of tests/vm/run-pair.sh, as TAP.

Runs in both guests (RXE_ROLE=A or B).  B serves: it listens on a control
TCP port of its link address, and for every case A asks for it starts the
perftest server, says when it listens, and reports the server's exit
status, output and counter deltas when it ends.  A drives: for each case
it has B start the server, runs the client against RXE_PEER, and prints
one TAP line from both sides' results.  perftest's own connection (its
TCP exchange, or rdma_cm with -R) goes over the same link.

Cases: PAIR_PERFTEST_PROGS (default ib_write_bw ib_read_bw ib_send_bw
ib_atomic_bw ib_write_lat ib_read_lat) x PAIR_PERFTEST_MODES (pinned odp)
x PAIR_PERFTEST_CM (oob rdma_cm), PAIR_PERFTEST_REPS times (default 1,
the modes in turns).  With PAIR_PERFTEST_COMPARE=F, one more result per
program and connection: the ODP runs' retransmissions and duplicate
requests (counted on both hosts, summed over the repetitions) are at most
F times the pinned runs', beyond counting noise (exceeds()).  The ODP side is the one the test is
about: with --odp both client and server register ODP MRs (for atomics,
whose --odp perftest 4.5 refuses, libodp_force.so adds the flag).  Mixed
modes: odp-a registers ODP MRs on A (the client) only, odp-b on B (the
server) only, for a peer that has no ODP (Debian's rdma_rxe, run-pair.sh
--stock-a / --stock-b); the ODP side's page-fault or prefetch counters
must move, so that the case cannot pass with pinned memory on both sides.
"""
import os
import time

import pairlib
from pairlib import DEV, GID, PEER, SELF, Peer, Tap, run_client

SHIM = pairlib.BUILD + "/tests/libodp_force.so"
PORT0 = 18500
TMO = int(os.environ.get("PAIR_PERFTEST_TIMEOUT", "120"))
ITERS = os.environ.get("PAIR_PERFTEST_ITERS", "200")
# the QPs' transport timeout, 4.096 us * 2^N: perftest's 14 (67 ms) by
# default, as a user's run has it; a lost packet costs that much
QP_TIMEOUT = os.environ.get("PAIR_PERFTEST_QP_TIMEOUT", "14")
PROGS = os.environ.get("PAIR_PERFTEST_PROGS",
                       "ib_write_bw ib_read_bw ib_send_bw ib_atomic_bw ib_write_lat ib_read_lat").split()
MODES = os.environ.get("PAIR_PERFTEST_MODES", "pinned odp").split()
CMS = os.environ.get("PAIR_PERFTEST_CM", "oob rdma_cm").split()
REPS = int(os.environ.get("PAIR_PERFTEST_REPS", "1"))
# ODP against pinned: at most this many times the pinned runs'
# retransmissions and duplicate requests (unset: no comparison)
COMPARE = float(os.environ.get("PAIR_PERFTEST_COMPARE", "0") or 0)

# what a lost, late or refused packet costs, counted on both hosts: the
# requester's retries (timeouts and sequence NAKs) and RNR retries, and
# the requests the responder saw twice
RETRANSMISSIONS = ("completer_retry_err", "rcvd_rnr_err")
DUPLICATES = ("duplicate_request",)


def tally(mine, srv, names):
    return sum((side["deltas"] or {}).get(c, 0)
               for side in (mine, srv) for c in names)


def exceeds(odp, pinned, factor):
    """Is @odp more than @factor times @pinned, beyond counting noise?

    Lost packets are random, so two runs of the same workload count
    different numbers of them: as Poisson counts, odp - factor * pinned
    has a variance of about odp + factor^2 * pinned.  A difference within
    three standard deviations (and one event) is noise."""
    return odp - factor * pinned > 3 * (odp + factor ** 2 * pinned) ** 0.5 + 1


def perftest_cmd(case, port, server):
    prog, mode, cm = case
    cmd = [prog, "-d", DEV, "-x", GID, "-n", ITERS, "-p", str(port), "-F",
           "-u", QP_TIMEOUT]
    if prog.endswith("_bw") and prog != "ib_atomic_bw":
        cmd += ["-s", "65536"]
    env = {}
    if odp_side(mode, server):
        if prog == "ib_atomic_bw":
            env["LD_PRELOAD"] = SHIM
        else:
            cmd.append("--odp")
    if cm == "rdma_cm":
        cmd.append("-R")
    if not server:
        cmd.append(PEER)
    return cmd, env


def odp_side(mode, server):
    """Does the server (B) or the client (A) register ODP MRs in @mode?"""
    return mode == "odp" or mode == ("odp-b" if server else "odp-a")


ODP_COUNTERS = ("odp_page_faults", "odp_page_prefetch")


def odp_moved(mode, mine, srv):
    """In a mixed mode, did the ODP side fault or prefetch pages?"""
    side = {"odp-a": mine, "odp-b": srv}.get(mode)
    return side is None or any((side["deltas"] or {}).get(c, 0) > 0
                               for c in ODP_COUNTERS)


def result_value(prog, out):
    """BW average (MB/s) or typical latency (usec) from perftest's table."""
    for line in reversed(out.splitlines()):
        w = line.split()
        if len(w) >= 5 and w[0].isdigit() and w[1].isdigit():
            return (w[3] + " MB/sec") if prog.endswith("_bw") else (w[4] + " usec")
    return None


def drive():
    """A: every case, both sides, as TAP."""
    # repetitions interleave the modes, so that they see the same host
    cases = [(p, m, c, r) for r in range(1, REPS + 1) for p in PROGS
             for c in CMS for m in MODES]
    pairs = [(p, c) for p in PROGS for c in CMS] \
        if COMPARE and "pinned" in MODES and "odp" in MODES else []
    costs = {}	# (prog, cm, mode) -> [retransmissions, duplicates]
    tap = Tap(len(cases) + len(pairs))
    mtu = open("/sys/class/net/%s/mtu" % os.environ.get("RXE_NETDEV", "eth0")).read().strip()
    tap.diag("perftest between %s (A, client) and %s (B, server), %s gid %s, link mtu %s, netem '%s', -n %s -u %s"
             % (SELF, PEER, DEV, GID, mtu, os.environ.get("RXE_LINK_NETEM", ""), ITERS, QP_TIMEOUT))
    peer = Peer(TMO + 60)
    port = PORT0
    for prog, mode, cm, rep in cases:
        case = (prog, mode, cm)
        name = "%s %s %s" % case + (" rep %d" % rep if REPS > 1 else "")
        for attempt in range(3):
            port += 1
            cmd, env = perftest_cmd(case, port, True)
            up = peer.start("%s-%d" % (name, port), cmd, env,
                            {"cm" if cm == "rdma_cm" else "tcp": port},
                            timeout=TMO, subdir="perftest")
            cmd, env = perftest_cmd(case, port, False)
            for _ in range(10):	# rdma_cm: the server may not listen yet
                mine = run_client("%s-%d" % (name, port), cmd, env,
                                  timeout=TMO, subdir="perftest")
                out, rc = mine["out"], mine["rc"]
                if rc == 0 or not up or not (
                        "Unable to perform rdma_client" in out or
                        "RDMA_CM_EVENT_REJECTED" in out):
                    break
                time.sleep(0.5)
            srv = peer.result()
            # perftest measures its clock first; under emulation that can
            # fail ("Correlation coefficient r^2 < 0.9"), and then its
            # report says 0.00 MB/sec: run the case again
            calib = "Can't produce a report" in out or \
                any("Can't produce a report" in l for l in srv["tail"]) or \
                ("Correlation coefficient" in out and
                 (result_value(prog, out) or "").startswith("0.00 "))
            if not calib:
                break
            tap.diag("%s: perftest could not calibrate its clock (attempt %d), again" % (name, attempt + 1))
        value = result_value(prog, out)
        if rc == 0 and srv["rc"] == 0 and value and not odp_moved(mode, mine, srv):
            tap.result(False, "perftest %s: %s, but the ODP side faulted no page"
                       % (name, value))
        elif rc == 0 and srv["rc"] == 0 and value:
            tap.result(True, "perftest %s: %s" % (name, value))
        else:
            tap.result(False, "perftest %s (client exit %d, server exit %s%s)"
                       % (name, rc, srv["rc"], "" if up else ", server did not listen"),
                       ["A: " + l for l in mine["tail"]] +
                       ["B: " + l for l in srv["tail"]])
        tap.diag("%s counter deltas: A %s, B %s" % (name, mine["deltas"] or "none", srv["deltas"] or "none"))
        cost = costs.setdefault((prog, cm, mode), [0, 0])
        cost[0] += tally(mine, srv, RETRANSMISSIONS)
        cost[1] += tally(mine, srv, DUPLICATES)
    peer.close()
    for prog, cm in pairs:
        (pr, pd), (orr, od) = costs[(prog, cm, "pinned")], costs[(prog, cm, "odp")]
        bad = [what for what, o, p in (("retransmissions", orr, pr),
                                       ("duplicate requests", od, pd))
               if exceeds(o, p, COMPARE)]
        tap.result(not bad, "perftest %s %s, %d run(s) each: ODP %d retransmissions, %d duplicate requests; pinned %d, %d%s"
                   % (prog, cm, REPS, orr, od, pr, pd,
                      "; more than %gx pinned's: %s" % (COMPARE, ", ".join(bad)) if bad else ""))
    return tap.finish()


if __name__ == "__main__":
    pairlib.main(drive, "perftest.py")
