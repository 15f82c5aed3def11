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
x PAIR_PERFTEST_CM (oob rdma_cm).  The ODP side is the one the test is
about: with --odp both client and server register ODP MRs (for atomics,
whose --odp perftest 4.5 refuses, libodp_force.so adds the flag).
"""
import json
import os
import socket
import subprocess
import sys
import time

DEV = os.environ.get("RXE_DEV", "rxe0")
GID = os.environ.get("RXE_GID", "1")
ROLE = os.environ.get("RXE_ROLE", "")
PEER = os.environ.get("RXE_PEER", "")
SELF = os.environ.get("RXE_SELF", "")
TOP = os.environ.get("RXE_ODP_TOP", os.path.dirname(os.path.abspath(__file__)) + "/../..")
SHIM = os.environ.get("RXE_ODP_BUILD", TOP + "/build") + "/tests/libodp_force.so"
CTL_PORT = 18400
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
COUNTERS = ["completer_retry_err", "retry_exceeded_err", "rcvd_seq_err",
            "out_of_seq_request", "duplicate_request", "rcvd_rnr_err",
            "send_rnr_err", "odp_fault_waits"]


def counters():
    """The port's hw counters, by name."""
    out = subprocess.run(["rdma", "statistic", "show", "link", DEV + "/1"],
                         capture_output=True, text=True).stdout.split()
    vals = {}
    for name, val in zip(out, out[1:]):
        if val.isdigit():
            vals[name] = int(val)
    return vals


def deltas(before, after):
    return {c: after.get(c, 0) - before.get(c, 0) for c in COUNTERS
            if after.get(c, 0) != before.get(c, 0)}


def perftest_cmd(case, port, server):
    prog, mode, cm = case
    cmd = [prog, "-d", DEV, "-x", GID, "-n", ITERS, "-p", str(port), "-F",
           "-u", QP_TIMEOUT]
    if prog.endswith("_bw") and prog != "ib_atomic_bw":
        cmd += ["-s", "65536"]
    env = dict(os.environ)
    if mode == "odp":
        if prog == "ib_atomic_bw":
            env["LD_PRELOAD"] = SHIM
        else:
            cmd.append("--odp")
    if cm == "rdma_cm":
        cmd.append("-R")
    if not server:
        cmd.append(PEER)
    return cmd, env


def keep(name, text):
    """Keep a run's whole output where it survives the guest."""
    d = os.environ.get("RXE_OUT")
    if d:
        os.makedirs(d + "/perftest", exist_ok=True)
        with open("%s/perftest/%s" % (d, name.replace(" ", "-")), "w") as f:
            f.write(text)


def tail(text, n=12):
    lines = [l for l in text.splitlines() if l.strip() and not set(l.strip()) <= set("-*")]
    return lines[-n:]


def serve():
    """B: run servers for A, until A says it is done."""
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((SELF, CTL_PORT))
    ls.listen(1)
    ls.settimeout(600)
    conn, _ = ls.accept()
    f = conn.makefile("rw")
    for line in f:
        req = json.loads(line)
        if req["op"] == "done":
            break
        case, port = tuple(req["case"]), req["port"]
        cmd, env = perftest_cmd(case, port, True)
        before = counters()
        p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
        # listening: perftest's TCP port, or its rdma_cm ID on the port
        t0 = time.time()
        listening = False
        while time.time() - t0 < 30 and p.poll() is None and not listening:
            if case[2] == "rdma_cm":
                res = subprocess.run(["rdma", "resource", "show", "cm_id"],
                                     capture_output=True, text=True).stdout
                listening = any("LISTEN" in l and (":%d " % port) in l + " "
                                for l in res.splitlines())
            else:
                ss = subprocess.run(["ss", "-ltnH", "sport = :%d" % port],
                                    capture_output=True, text=True).stdout
                listening = bool(ss.strip())
            if not listening:
                time.sleep(0.1)
        f.write(json.dumps({"listening": listening}) + "\n")
        f.flush()
        try:
            out, _ = p.communicate(timeout=TMO)
        except subprocess.TimeoutExpired:
            p.kill()
            out, _ = p.communicate()
        keep("%s-%d.server" % (" ".join(case), port), out)
        f.write(json.dumps({"rc": p.returncode, "tail": tail(out),
                            "deltas": deltas(before, counters())}) + "\n")
        f.flush()
    conn.close()
    return 0


def connect_ctl():
    t0 = time.time()
    while True:
        try:
            return socket.create_connection((PEER, CTL_PORT), timeout=TMO + 60)
        except OSError:
            if time.time() - t0 > 300:
                raise
            time.sleep(0.5)


def result_value(prog, out):
    """BW average (MB/s) or typical latency (usec) from perftest's table."""
    for line in reversed(out.splitlines()):
        w = line.split()
        if len(w) >= 5 and w[0].isdigit() and w[1].isdigit():
            return (w[3] + " MB/sec") if prog.endswith("_bw") else (w[4] + " usec")
    return None


def drive():
    """A: every case, both sides, as TAP."""
    cases = [(p, m, c) for p in PROGS for m in MODES for c in CMS]
    print("TAP version 13")
    print("1..%d" % len(cases))
    mtu = open("/sys/class/net/%s/mtu" % os.environ.get("RXE_NETDEV", "eth0")).read().strip()
    print("# perftest between %s (A, client) and %s (B, server), %s gid %s, link mtu %s, netem '%s', -n %s -u %s"
          % (SELF, PEER, DEV, GID, mtu, os.environ.get("RXE_LINK_NETEM", ""), ITERS, QP_TIMEOUT), flush=True)
    sock = connect_ctl()
    f = sock.makefile("rw")
    bad = 0
    port = PORT0
    for n, case in enumerate(cases, 1):
        prog, mode, cm = case
        name = "%s %s %s" % (prog, mode, cm)
        for attempt in range(3):
            port += 1
            f.write(json.dumps({"op": "run", "case": case, "port": port}) + "\n")
            f.flush()
            listening = json.loads(f.readline())["listening"]
            cmd, env = perftest_cmd(case, port, False)
            before = counters()
            out, rc = "", -1
            for _ in range(10):	# rdma_cm: the server may not listen yet
                try:
                    r = subprocess.run(cmd, env=env, capture_output=True,
                                       text=True, timeout=TMO)
                    out, rc = r.stdout + r.stderr, r.returncode
                except subprocess.TimeoutExpired as e:
                    out, rc = str(e.stdout or ""), 124
                if rc == 0 or not listening or not (
                        "Unable to perform rdma_client" in out or
                        "RDMA_CM_EVENT_REJECTED" in out):
                    break
                time.sleep(0.5)
            mine = deltas(before, counters())
            keep("%s-%d.client" % (name, port), out)
            srv = json.loads(f.readline())
            calib = "Can't produce a report" in out or \
                any("Can't produce a report" in l for l in srv["tail"])
            if not calib:
                break
            print("# %s: perftest could not calibrate its clock (attempt %d), again" % (name, attempt + 1))
        value = result_value(prog, out)
        if rc == 0 and srv["rc"] == 0 and value:
            print("ok %d two-host perftest %s: %s" % (n, name, value))
        else:
            bad += 1
            print("not ok %d two-host perftest %s (client exit %d, server exit %s%s)"
                  % (n, name, rc, srv["rc"], "" if listening else ", server did not listen"))
            for l in tail(out):
                print("#   A: " + l)
            for l in srv["tail"]:
                print("#   B: " + l)
        print("# %s counter deltas: A %s, B %s" % (name, mine or "none", srv["deltas"] or "none"), flush=True)
    f.write(json.dumps({"op": "done"}) + "\n")
    f.flush()
    sock.close()
    return 1 if bad else 0


if __name__ == "__main__":
    if ROLE == "B":
        sys.exit(serve())
    if ROLE == "A" and PEER:
        sys.exit(drive())
    print("perftest.py: run by tests/vm/run-pair.sh (RXE_ROLE, RXE_PEER)", file=sys.stderr)
    sys.exit(64)
