# SPDX-License-Identifier: GPL-2.0 OR Linux-OpenIB
"""The two sides of a two-host test (tests/vm/run-pair.sh), as a library.

B serves: it listens on a control TCP port of its link address; for each
request from A it starts a program, says whether (and when) it listens for
its client, and when it ends reports its exit status, the tail of its
output, the lines of its output that match what A asked for, and the
deltas of rxe0's port counters over its run.  A drives: it asks B to start
the server side of a case, runs the client side itself, and judges the
case from both.  The control connection and every program's own
connection go over the guests' one link; nothing else is reachable.

Environment (set by run-pair.sh): RXE_ROLE (A or B), RXE_SELF, RXE_PEER,
RXE_DEV (default rxe0), RXE_GID, RXE_OUT (where whole outputs are kept).
"""
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time

DEV = os.environ.get("RXE_DEV", "rxe0")
GID = os.environ.get("RXE_GID", "1")
ROLE = os.environ.get("RXE_ROLE", "")
PEER = os.environ.get("RXE_PEER", "")
SELF = os.environ.get("RXE_SELF", "")
NETDEV = os.environ.get("RXE_NETDEV", "eth0")
TOP = os.environ.get("RXE_ODP_TOP",
                     os.path.dirname(os.path.abspath(__file__)) + "/../..")
BUILD = os.environ.get("RXE_ODP_BUILD", TOP + "/build")
CTL_PORT = 18400
EXEC_PORT = 18401	# rsh-agent's: a remote shell for MPI launchers

# the port counters a case reports when they move
COUNTERS = ["completer_retry_err", "retry_exceeded_err", "rcvd_seq_err",
            "out_of_seq_request", "duplicate_request", "rcvd_rnr_err",
            "send_rnr_err", "odp_page_faults", "odp_page_prefetch",
            "odp_fault_waits"]


def counters():
    """rxe0's port counters, by name."""
    out = subprocess.run(["rdma", "statistic", "show", "link", DEV + "/1"],
                         capture_output=True, text=True).stdout.split()
    return {name: int(val) for name, val in zip(out, out[1:])
            if val.isdigit()}


IMPLICIT_LEN = 2 ** 64 - 1	# the length "rdma res" shows for an implicit MR


def rdma_json(*args):
    """The parsed output of "rdma -j @args", or [] if it fails."""
    try:
        out = subprocess.run(["rdma", "-j"] + list(args), capture_output=True,
                             text=True, timeout=20).stdout
        return json.loads(out or "[]")
    except (subprocess.TimeoutExpired, ValueError):
        return []


class MrWatch:
    """The ODP MRs of rxe0 seen while a case runs, with their per-MR
    counters ("rdma statistic mr": only ODP MRs have them), sampled four
    times a second: short-lived MRs may be missed, the long-lived MRs that
    engines keep are not."""

    def __init__(self):
        self.seen, self.stop = {}, threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def sample(self):
        res = {m["mrn"]: m for m in rdma_json("res", "show", "mr")
               if m.get("ifname") == DEV}
        for st in rdma_json("statistic", "show", "mr"):
            m = res.get(st.get("mrn"))
            if st.get("ifname") != DEV or "page_faults" not in st or not m:
                continue
            key = (m["mrn"], m.get("rkey"), m.get("pid"))
            old = self.seen.get(key, {})
            self.seen[key] = {
                "mrlen": m.get("mrlen"), "comm": m.get("comm", "?"),
                "page_faults": max(st["page_faults"],
                                   old.get("page_faults", 0)),
                "page_prefetch": max(st.get("page_prefetch", 0),
                                     old.get("page_prefetch", 0))}

    def run(self):
        while not self.stop.is_set():
            self.sample()
            self.stop.wait(0.25)

    def result(self):
        """The ODP MRs seen: mrlen, comm, page_faults, page_prefetch."""
        self.stop.set()
        self.thread.join()
        return list(self.seen.values())


def mr_summary(mrs):
    """@mrs (MrWatch.result()) in a few words."""
    return ", ".join("%s %s MR: %d faults, %d prefetched" % (
        m["comm"], "implicit" if m["mrlen"] == IMPLICIT_LEN else
        "%d-byte" % m["mrlen"], m["page_faults"], m["page_prefetch"])
        for m in mrs) or "no ODP MR"


def deltas(before, after):
    """The counters of COUNTERS that moved from @before to @after."""
    return {c: after.get(c, 0) - before.get(c, 0) for c in COUNTERS
            if after.get(c, 0) != before.get(c, 0)}


def keep(subdir, name, text):
    """Keep a run's whole output where it survives the guest."""
    d = os.environ.get("RXE_OUT")
    if d:
        os.makedirs("%s/%s" % (d, subdir), exist_ok=True)
        with open("%s/%s/%s" % (d, subdir, re.sub(r"[^\w.+-]", "-", name)),
                  "w") as f:
            f.write(text)


def tail(text, n=12):
    """The last @n lines of @text that say something, after its failed
    checks: UCX's debug log (asked for by the cases that look for "using
    odp global key") would otherwise push a checker's "not ok" line out."""
    lines = [l for l in text.splitlines()
             if l.strip() and not set(l.strip()) <= set("-*+|")
             and not re.search(r"\sUCX\s+(DEBUG|TRACE)\s", l)]
    last = lines[-n:]
    failed = [l for l in lines[:-n] if re.match(r"\s*not ok ", l)]
    return failed[:8] + last


def matches(text, patterns):
    """For each regular expression of @patterns, its matching lines."""
    return {p: [l for l in text.splitlines() if re.search(p, l)][:20]
            for p in patterns}


DYNDBG = "/sys/kernel/debug/dynamic_debug/control"


def hang_snapshot(secs=3):
    """What a hung run leaves to read, taken before the program is killed:
    this host's QPs (state, PSNs), rxe0's counters, and @secs of rxe's
    own debug messages (its tasks' states as they run: a retransmit timer
    that still fires shows there)."""
    qps = subprocess.run(["rdma", "-d", "resource", "show", "qp"],
                         capture_output=True, text=True)
    trace = ""
    if not os.path.exists(DYNDBG):
        subprocess.run(["mount", "-t", "debugfs", "debugfs",
                        "/sys/kernel/debug"], check=False)
    try:
        with open(DYNDBG, "w") as f:
            f.write("module rdma_rxe +p\n")
        t0 = time.time()
        time.sleep(secs)
        with open(DYNDBG, "w") as f:
            f.write("module rdma_rxe -p\n")
        since = time.clock_gettime(time.CLOCK_MONOTONIC) - \
            (time.time() - t0)
        lines = subprocess.run(["dmesg"], capture_output=True,
                               text=True).stdout.splitlines()
        picked = [l for l in lines if re.match(r"\[\s*(\d+\.\d+)\]", l) and
                  float(re.match(r"\[\s*(\d+\.\d+)\]", l).group(1))
                  >= since - 0.5]
        trace = "(at the timeout) rxe's debug messages for %d s (%d):\n%s\n" \
            % (secs, len(picked), "\n".join(picked[:200]))
    except OSError as ex:
        trace = "(at the timeout) no rxe debug messages: %s\n" % ex
    return "\n(at the timeout) rdma -d resource show qp:\n%s%s" \
           "(at the timeout) rxe0 counters: %s\n%s" % (
               qps.stdout, qps.stderr,
               {k: v for k, v in counters().items() if v}, trace)


def listening(listen, t0, secs=30, proc=None):
    """Wait until a server listens: {"tcp": port} or {"cm": port}."""
    while time.time() - t0 < secs and (proc is None or proc.poll() is None):
        if "cm" in listen:
            res = subprocess.run(["rdma", "resource", "show", "cm_id"],
                                 capture_output=True, text=True).stdout
            if any("LISTEN" in l and (":%d " % listen["cm"]) in l + " "
                   for l in res.splitlines()):
                return True
        else:
            ss = subprocess.run(["ss", "-ltnH", "sport = :%d" % listen["tcp"]],
                                capture_output=True, text=True).stdout
            if ss.strip():
                return True
        time.sleep(0.1)
    return False


def exec_one(conn):
    """Run the shell command a connection sends; its output goes back."""
    with conn:
        f = conn.makefile("rb")
        cmd = f.readline().decode().rstrip("\n")
        p = subprocess.Popen(["sh", "-c", cmd], stdin=subprocess.DEVNULL,
                             stdout=conn.fileno(), stderr=conn.fileno())
        rc = p.wait()
        keep("exec", "%d-%s" % (p.pid, cmd.split()[0] if cmd else "none"),
             "%s\nexit %d\n" % (cmd, rc))


def exec_server():
    """B: a remote shell on EXEC_PORT of the link address, for the MPI
    launchers' rsh agent (tests/pair/rsh-agent): one command per
    connection, output back over it, until the guest ends."""
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((SELF, EXEC_PORT))
    ls.listen(8)
    while True:
        conn, _ = ls.accept()
        threading.Thread(target=exec_one, args=(conn,), daemon=True).start()


def serve():
    """B: run server sides for A until A says it is done."""
    threading.Thread(target=exec_server, daemon=True).start()
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
        if req["op"] == "counters":
            f.write(json.dumps(counters()) + "\n")
            f.flush()
            continue
        if req["op"] == "watch":	# ODP MRs of programs started elsewhere
            watch = MrWatch()
            continue
        if req["op"] == "watched":
            f.write(json.dumps(watch.result()) + "\n")
            f.flush()
            continue
        env = dict(os.environ)
        env.update(req.get("env", {}))
        before = counters()
        mrs = MrWatch()
        t0 = time.time()
        p = subprocess.Popen(req["argv"], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
        up = listening(req["listen"], t0, proc=p) if req.get("listen") else True
        f.write(json.dumps({"listening": up}) + "\n")
        f.flush()
        try:
            out, _ = p.communicate(timeout=req.get("timeout", 120))
        except subprocess.TimeoutExpired:
            snap = hang_snapshot()
            p.kill()
            out, _ = p.communicate()
            out += snap + "(killed after %d s)\n" % req.get("timeout", 120)
        keep(req.get("subdir", "pair"), req["name"] + ".server", out)
        f.write(json.dumps({"rc": p.returncode, "tail": tail(out),
                            "found": matches(out, req.get("find", [])),
                            "deltas": deltas(before, counters()),
                            "odp_mrs": mrs.result()}) + "\n")
        f.flush()
    conn.close()
    return 0


class Peer:
    """A's end of the control connection to B."""

    def __init__(self, timeout=600):
        t0 = time.time()
        while True:
            try:
                self.sock = socket.create_connection((PEER, CTL_PORT),
                                                     timeout=timeout)
                break
            except OSError:
                if time.time() - t0 > 300:
                    raise
                time.sleep(0.5)
        self.f = self.sock.makefile("rw")

    def start(self, name, argv, env=None, listen=None, find=(), timeout=120,
              subdir="pair"):
        """Start @argv on B; True once it listens (see listening())."""
        self.f.write(json.dumps({"op": "run", "name": name, "argv": argv,
                                 "env": env or {}, "listen": listen,
                                 "find": list(find), "timeout": timeout,
                                 "subdir": subdir}) + "\n")
        self.f.flush()
        return json.loads(self.f.readline())["listening"]

    def counters(self):
        """B's rxe0 counters now."""
        self.f.write(json.dumps({"op": "counters"}) + "\n")
        self.f.flush()
        return json.loads(self.f.readline())

    def result(self):
        """B's report of the program start() began, once it ended."""
        return json.loads(self.f.readline())

    def watch(self):
        """Start watching B's ODP MRs (see MrWatch)."""
        self.f.write(json.dumps({"op": "watch"}) + "\n")
        self.f.flush()

    def watched(self):
        """B's ODP MRs seen since watch()."""
        self.f.write(json.dumps({"op": "watched"}) + "\n")
        self.f.flush()
        return json.loads(self.f.readline())

    def close(self):
        self.f.write(json.dumps({"op": "done"}) + "\n")
        self.f.flush()
        self.sock.close()


def run_client(name, argv, env=None, find=(), timeout=120, subdir="pair"):
    """A: run one client side; its report in the form of Peer.result()."""
    e = dict(os.environ)
    e.update(env or {})
    before = counters()
    mrs = MrWatch()
    p = subprocess.Popen(argv, env=e, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = p.communicate(timeout=timeout)
        rc = p.returncode
    except subprocess.TimeoutExpired:
        snap = hang_snapshot()
        p.kill()
        out, _ = p.communicate()
        out, rc = out + snap + "(killed after %d s)\n" % timeout, 124
    keep(subdir, name + ".client", out)
    return {"rc": rc, "tail": tail(out), "out": out,
            "found": matches(out, find), "deltas": deltas(before, counters()),
            "odp_mrs": mrs.result()}


class Tap:
    """TAP output: one line per case, diagnostics under it."""

    def __init__(self, n):
        self.n, self.bad = 0, 0
        print("TAP version 13")
        print("1..%d" % n, flush=True)

    def result(self, ok, what, diag=(), todo=None):
        """One result; a failure with @todo (the reason) is a known one:
        "not ok ... # TODO reason", which does not fail the run."""
        self.n += 1
        self.bad += not ok and not todo
        print("%s %d %s%s" % ("ok" if ok else "not ok", self.n, what,
                              " # TODO " + todo if todo and not ok else ""))
        for l in diag:
            print("#   " + l)
        print(end="", flush=True)

    def diag(self, text):
        print("# " + text, flush=True)

    def finish(self):
        return 1 if self.bad else 0


def main(drive, name):
    """A script's entry: B serves (serve()), A runs @drive(); exits."""
    if ROLE == "B":
        sys.exit(serve())
    if ROLE == "A" and PEER:
        sys.exit(drive())
    print("%s: run by tests/vm/run-pair.sh (RXE_ROLE, RXE_PEER)" % name,
          file=sys.stderr)
    sys.exit(64)
