#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0 OR Linux-OpenIB
"""Real engines on ODP memory between the two guests of run-pair.sh, as TAP.

Runs in both guests (RXE_ROLE=A or B, see pairlib): B runs the server
side of every case, A the client side, and A judges each case from both.

- rdma-core's examples: ibv_rc_pingpong and ibv_srq_pingpong with -c (the
  receiver checks every byte), pinned, with ODP MRs (-o), with an implicit
  ODP MR (-O), and with prefetch (-P, through librxeodp-preload.so since
  rdma-core 44's rxe provider has no advise_mr).
- UCX 1.13's ucx_perftest over rc_verbs: UCP tag_bw, ucp_put_bw, ucp_get
  and tag_lat, and UCT put_bw and get (zcopy), with the registration cache
  (pinned, the control), with UCX's implicit ODP MR
  (UCX_IB_REG_METHODS=odp: UCX registers [0, 2^64) once and hands out its
  keys for every region; it says "using odp global key"), and with
  explicit ODP MRs of the test's buffers (ucx_perftest -B maps them
  UCP_MEM_MAP_NONBLOCK; UCX_IB_ODP_MAX_SIZE=inf lets them be ODP).

An ODP case must show ODP at work on both hosts: rxe0's odp_page_faults or
odp_page_prefetch counters moved over the run, and the per-MR counters
("rdma statistic mr", sampled while the case runs) show the faults on an
ODP MR of the kind the case is about: the implicit MR ([0, 2^64)), or
MRs of their buffers' own lengths and no implicit MR.  Faults are
required where the case's data lands in user memory (bandwidth cases; a
small latency message goes through UCX's pinned bounce buffers).  A
pinned case must move neither and show no ODP MR.

- Open MPI 4.1.4 with pml ucx, one rank per guest (launched through
  tests/pair/rsh-agent, the bed's remote shell, in place of ssh):
  NetPIPE's integrity run (NPopenmpi -i, every message checked), with
  UCX's registration cache and with its implicit ODP MR.
- libfabric 1.17's verbs provider: fi_pingpong -c (the receiver checks
  the data) over MSG endpoints (rdma_cm) and RDM endpoints (verbs;ofi_rxm),
  pinned and with FI_VERBS_USE_ODP=1, which registers every MR ON_DEMAND.
- Our data checkers on those engines (tests/engines/): ucp_check (UCP tag
  send, put and get) and mpi_check (MPI_Send/Recv, MPI_Put/Get with osc
  ucx) move fresh buffers to and from a long-lived buffer on B while B
  migrates it between NUMA nodes, pages it out to zram or merges it with
  KSM, and check every byte.  With ODP the stress must have moved B's
  pages (--expect-moved); with the registration cache they are pinned and
  none may move (--expect-pinned).

UCX 1.13.1 has a known bug at exit with its implicit ODP MR
(openucx/ucx#8735, #9392: uct_ib_md_release_reg_method() passes the
memory handle where uct_ib_mem_dereg() takes its parameters, so an odd
lkey makes it read a pointer at address 0x11): a process that used
UCX_IB_REG_METHODS=odp dies of SIGSEGV in uct_ib_md_close() once its work
is done, about every other run.  That exit,
and only that one (the signal, and uct_ib_md_close in its backtrace), is
reported as a diagnostic instead of a failure; every other check of the
case still holds.

PAIR_ENGINES_CASES selects cases by name prefix (default: all);
PAIR_ENGINES_REPEAT=N runs each selected case N times (to chase a rare
failure).  Each case has a time budget: PAIR_ENGINES_TIMEOUT seconds (150),
plus, for the data checkers, the time their bytes take at CHECK_RATE.
"""
import copy
import os
import re
import subprocess

import pairlib
from pairlib import DEV, GID, PEER, Peer, Tap, run_client

TMO = int(os.environ.get("PAIR_ENGINES_TIMEOUT", "150"))
# The slowest rate a data checker's transfers may run at before its case
# times out, in bytes per second: under TCG they move 4-8 MB/s.  A case
# that moves 876 MiB (64K,4M,32M,256M sent, put and got) takes 110-160 s.
CHECK_RATE = 2 << 20
PRELOAD = pairlib.BUILD + "/userspace/librxeodp-preload.so"
GLOBAL_KEY = r"using odp global key"
UCX_EXIT_BUG = r"uct_ib_md_close"
NP_LINE = r"^\s*\d+:\s+\d+ bytes\s+\d+ times -->"
UCP_CHECK = pairlib.BUILD + "/tests/ucp_check"
MPI_CHECK = pairlib.BUILD + "/tests/mpi_check"

PP_MODES = {		# name: (options, the ODP MR kind that carries the data)
    "pinned": ([], None),
    "odp": (["-o"], "explicit"),
    "implicit": (["-O"], "implicit"),
    "odp-prefetch": (["-o", "-P"], "explicit"),
    "implicit-prefetch": (["-O", "-P"], "implicit"),
}

UCX_ENV = {"UCX_TLS": "rc_v,self", "UCX_NET_DEVICES": DEV + ":1",
           # rxe's UD packets over IPv4 do not carry the destination GID
           # where UCX's UD transport (wireup) looks for it on Ethernet
           "UCX_UD_VERBS_ETH_DGID_CHECK": "n", "UCX_LOG_LEVEL": "debug",
           "UCX_IB_GID_INDEX": GID}
UCX_MODES = {		# name: (environment, ucx_perftest options, ODP MR kind)
    "rcache": ({"UCX_IB_REG_METHODS": "rcache"}, [], None),
    "odp-implicit": ({"UCX_IB_REG_METHODS": "odp"}, [], "implicit"),
    # UCX registers a region with ON_DEMAND when it is mapped with
    # UCP_MEM_MAP_NONBLOCK (-B) and no larger than UCX_IB_ODP_MAX_SIZE,
    # whose "auto" is 0 on any device but Mellanox's
    "odp-explicit": ({"UCX_IB_ODP_MAX_SIZE": "inf"}, ["-B"], "explicit"),
}
UCX_TESTS = [		# (name, options, moves user data through an MR)
    ("tag_bw", ["-t", "tag_bw", "-s", "1048576", "-n", "40"], True),
    ("ucp_put_bw", ["-t", "ucp_put_bw", "-s", "1048576", "-n", "40"], True),
    ("ucp_get", ["-t", "ucp_get", "-s", "1048576", "-n", "40"], True),
    ("tag_lat", ["-t", "tag_lat", "-s", "8", "-n", "500"], False),
    ("uct put_bw", ["-t", "put_bw", "-x", "rc_verbs", "-d", DEV + ":1",
                    "-D", "zcopy", "-s", "65536", "-n", "200"], True),
    ("uct get", ["-t", "get", "-x", "rc_verbs", "-d", DEV + ":1",
                 "-D", "zcopy", "-s", "65536", "-n", "200"], True),
]
FI_MODES = {		# name: (environment, ODP MR kind)
    "pinned": ({"FI_VERBS_USE_ODP": "0"}, None),
    # the verbs provider registers every MR of system memory ON_DEMAND
    "odp": ({"FI_VERBS_USE_ODP": "1"}, "explicit"),
}
CHECK_CASES = [		# (UCX mode, stress, client sizes)
    ("rcache", "migrate", "64K,4M,32M"),
    ("odp-implicit", "none", "64K,4M,32M,256M"),
    ("odp-implicit", "migrate", "64K,4M,256M"),
    ("odp-implicit", "pageout", "64K,4M,32M"),
    ("odp-implicit", "ksm", "64K,4M"),
]
MPI_CHECK_CASES = [("rcache", "migrate", "64K,4M,32M"),
                   ("odp-implicit", "migrate", "64K,4M,32M")]


# Debian's stock rdma_rxe between two hosts: an RC exchange that stops for
# good now and then.  In 40 runs of the pinned ibv_rc_pingpong case on the
# bed, 3 hung with neither side ever completing its next message (no
# packet dropped on either NIC, no retry_exceeded_err; every run
# retransmits: completer_retry_err ~60, duplicate_request ~1000 per run),
# and none of 40 did with our series on both sides (its fixes to stock
# rxe's retransmit timer and requester wakeup, "Fix a lost wakeup of a
# requester at its PSN window" and "Restart the retransmit timer ...").
# A timeout of both sides of such a case is this defect, not ours.
STOCK_HANG = ("Debian's stock rdma_rxe stopped the exchange (a stock defect, "
              "fixed by our series: tests/pair/engines.py STOCK_HANG)")

# On Debian's stock rdma_rxe (PAIR_ENGINES_STOCK=1, both guests): what a
# user of each engine sees when asking for ODP.  "refused": both sides fail
# and say so (the regular expression); "pinned": the engine quietly runs
# pinned, which is judged as a pinned case.
STOCK_OUTCOMES = {
    "ibv_rc_pingpong pinned": None,
    "ibv_rc_pingpong odp": ("refused", r"The device isn't ODP capable"),
    "ibv_rc_pingpong implicit": ("refused", r"The device isn't ODP capable"),
    "ucx_perftest tag_bw rcache": None,
    # no implicit ODP: no registration method, so no transport
    "ucx_perftest tag_bw odp-implicit":
        ("refused", r"Failed to run test: Destination is unreachable"),
    # ibv_reg_mr(ON_DEMAND) fails, and UCX reports that as ENOMEM
    "ucx_perftest tag_bw odp-explicit":
        ("refused", r"Failed to run test: Out of memory"),
    "fi_pingpong msg pinned": None,
    # the verbs provider asks for ON_DEMAND only where the device has it
    "fi_pingpong msg odp": ("pinned", None),
}
STOCK = os.environ.get("PAIR_ENGINES_STOCK") == "1"


class Case:
    """One case: @kind is how its output reads (pingpong, ucx, mpi, check,
    mpicheck); @mr the kind of ODP MR that must carry its data (implicit,
    explicit, or None for pinned); @data whether user data goes through
    an MR at all; @ucx_odp whether UCX runs with its implicit ODP MR."""

    def __init__(self, name, sargv, cargv, env, port, kind, mr, data=True,
                 ucx_odp=False):
        self.name, self.sargv, self.cargv = name, sargv, cargv
        self.env, self.port, self.kind = env, port, kind
        self.mr, self.data, self.ucx_odp = mr, data, ucx_odp
        self.stock = None	# STOCK_OUTCOMES[name] on the stock driver
        self.budget = TMO	# seconds the server side may run


def sizes_bytes(sizes):
    """The bytes of @sizes ("64K,4M"), one transfer of each."""
    return [int(x[:-1]) << {"K": 10, "M": 20}[x[-1]] if x[-1] in "KM"
            else int(x) for x in sizes.split(",")]


def check_budget(sizes):
    """A data checker's budget: each size sent, put and got."""
    return TMO + 3 * sum(sizes_bytes(sizes)) // CHECK_RATE


def max_size(sizes):
    """The server buffer for @sizes: the largest, and the offsets' slack."""
    return str(max(sizes_bytes(sizes)) + 8192)


def mpirun(env, argv):
    """mpirun of @argv on both guests, one rank each, pml ucx over rxe0."""
    out = ["mpirun", "-np", "2", "-H", "%s,%s" % (pairlib.SELF, PEER),
           "--mca", "plm_rsh_agent", pairlib.TOP + "/tests/pair/rsh-agent",
           "--mca", "pml", "ucx", "--mca", "osc", "ucx", "--mca", "btl",
           "self", "--mca", "oob_tcp_if_include", pairlib.NETDEV]
    for k, v in sorted(env.items()):
        out += ["-x", "%s=%s" % (k, v)]
    return out + argv


MPI_ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}


def odp_moved(d):
    return d.get("odp_page_faults", 0) + d.get("odp_page_prefetch", 0) > 0


def cases():
    """Every case, in order; PAIR_ENGINES_CASES selects by name prefix."""
    port = 18600
    out = []
    for prog in ("ibv_rc_pingpong", "ibv_srq_pingpong"):
        for mode, (opts, mr) in PP_MODES.items():
            if prog == "ibv_srq_pingpong" and mode not in ("pinned", "odp"):
                continue
            port += 1
            argv = [prog, "-d", DEV, "-g", GID, "-p", str(port), "-c",
                    "-s", "65536" if prog == "ibv_rc_pingpong" else "4096",
                    "-n", "200" if prog == "ibv_rc_pingpong" else "1000"] + opts
            env = {"LD_PRELOAD": PRELOAD} if "-P" in opts else {}
            out.append(Case("%s %s" % (prog, mode), argv, argv + [PEER], env,
                            port, "pingpong", mr))
    for test, topts, data in UCX_TESTS:
        for mode, (menv, mopts, mr) in UCX_MODES.items():
            if mode == "odp-explicit" and not data:
                continue	# -B maps only the test's own buffers
            port += 1
            argv = ["ucx_perftest", "-p", str(port)] + topts + mopts
            out.append(Case("ucx_perftest %s %s" % (test, mode), argv,
                            argv + [PEER], dict(UCX_ENV, **menv), port,
                            "ucx", mr, data, mode == "odp-implicit"))
    for mode in ("rcache", "odp-implicit"):
        env = dict(UCX_ENV, **UCX_MODES[mode][0])
        env.pop("UCX_LOG_LEVEL")
        argv = mpirun(env, ["NPopenmpi", "-i", "-u", "1048576", "-o",
                            "/dev/null"])
        out.append(Case("openmpi NPopenmpi -i %s" % mode, None, argv,
                        MPI_ENV, None, "mpi", UCX_MODES[mode][2], True,
                        mode == "odp-implicit"))
    for ep in ("msg", "rdm"):
        for mode, (fenv, mr) in FI_MODES.items():
            port += 1
            env = dict(fenv)
            if ep == "rdm":
                # verbs;ofi_rxm sizes its MSG CQ (tx + rx) * universe size:
                # (128 + 128) * 256 is more than rxe's 2^15 CQEs
                env["FI_UNIVERSE_SIZE"] = "64"
            argv = ["fi_pingpong", "-p", "verbs", "-e", ep, "-c", "-S",
                    "65536", "-I", "100"]
            out.append(Case("fi_pingpong %s %s" % (ep, mode),
                            argv + ["-B", str(port)],
                            argv + ["-P", str(port), PEER], env, port,
                            "fabric", mr))
    for mode, stress, sizes in CHECK_CASES:
        port += 1
        mr = UCX_MODES[mode][2]
        srv = [UCP_CHECK, "--server", "--port", str(port), "--size",
               max_size(sizes), "--stress", stress]
        cli = [UCP_CHECK, "--client", PEER, "--port", str(port), "--sizes",
               sizes, "--expect-moved" if mr else "--expect-pinned"]
        out.append(Case("ucp_check %s %s" % (mode, stress), srv, cli,
                        dict(UCX_ENV, **UCX_MODES[mode][0]), port, "check",
                        mr, True, mode == "odp-implicit"))
        out[-1].budget = check_budget(sizes)
    for mode, stress, sizes in MPI_CHECK_CASES:
        mr = UCX_MODES[mode][2]
        env = dict(UCX_ENV, **UCX_MODES[mode][0])
        env.pop("UCX_LOG_LEVEL")
        argv = mpirun(env, [MPI_CHECK, "--size", max_size(sizes), "--stress",
                            stress, "--sizes", sizes,
                            "--expect-moved" if mr else "--expect-pinned"])
        out.append(Case("mpi_check %s %s" % (mode, stress), None, argv,
                        MPI_ENV, None, "mpicheck", mr, True,
                        mode == "odp-implicit"))
        out[-1].budget = check_budget(sizes)
    if STOCK:
        out = [c for c in out if c.name in STOCK_OUTCOMES]
        for c in out:
            c.stock = STOCK_OUTCOMES[c.name]
            if c.stock and c.stock[0] == "pinned":
                c.mr, c.ucx_odp = None, False
    sel = os.environ.get("PAIR_ENGINES_CASES", "").split(",")
    out = [c for c in out if any(c.name.startswith(s) for s in sel)]
    runs = int(os.environ.get("PAIR_ENGINES_REPEAT", "1"))
    if runs > 1:
        out = [copy.copy(c) for c in out for _ in range(runs)]
        for i, c in enumerate(out):
            c.name += " (run %d of %d)" % (i % runs + 1, runs)
    return out


def value(kind, text):
    """The figure a run reports: pingpong's rate, ucx_perftest's final."""
    for l in reversed(text.splitlines()):
        w = l.split()
        if kind == "pingpong" and "Mbit/sec" in l:
            return l.strip()
        if kind == "ucx" and w[:1] == ["Final:"] and len(w) >= 9:
            # iterations, latency 50%ile, average, overall (usec),
            # bandwidth average, overall (MB/s), message rates
            return "%s usec, %s MB/s overall" % (w[4], w[6])
    if kind == "fabric":	# the line under fi_pingpong's header
        m = re.search(r"^bytes\s+#sent.*\n(\S+)\s+(\d+)\s+=(\d+)\s+\S+\s+"
                      r"(\S+)\s+(\S+)\s+(\S+)", text, re.M)
        if m and m.group(2) == m.group(3):
            return "%s x %s checked, %s MB/s, %s usec/xfer" % m.group(
                1, 2, 5, 6)
        return None
    if kind in ("check", "mpicheck"):
        plan = re.search(r"^1\.\.(\d+)$", text, re.M)
        oks = re.findall(r"^ok \d+ ", text, re.M)
        bad = re.findall(r"^not ok \d+ ", text, re.M)
        if plan and not bad and len(oks) == int(plan.group(1)):
            return "%d of %d checks passed" % (len(oks), len(oks))
        return None
    if kind == "mpi":
        sizes = [l for l in text.splitlines() if re.search(NP_LINE, l)]
        if len(sizes) >= 30 and all(l.rstrip().endswith("Integrity check passed")
                                    for l in sizes):
            return "%d message sizes up to %s bytes, integrity passed" % (
                len(sizes), sizes[-1].split()[1])
    return None


def ucx_exit_bug(r):
    """The exit of UCX 1.13.1's known bug (see above), and no other."""
    return r["rc"] in (-11, 139) and bool(r["found"][UCX_EXIT_BUG])


def mr_check(c, mrs):
    """What is wrong with the ODP MRs one side showed for case @c."""
    implicit = [m for m in mrs if m["mrlen"] == pairlib.IMPLICIT_LEN]
    explicit = [m for m in mrs if m["mrlen"] != pairlib.IMPLICIT_LEN]
    used = [m for m in (implicit if c.mr == "implicit" else explicit)
            if m["page_faults"] + m["page_prefetch"] > 0]
    if not c.mr:
        return "an ODP MR on a pinned run" if mrs else None
    if c.mr == "explicit" and implicit:
        return "an implicit ODP MR where UCX should register regions"
    if c.mr == "implicit" and not implicit:
        return "no implicit ODP MR"
    if c.data and not used:
        return "no fault or prefetch on its %s ODP MR" % c.mr
    return None


def judge_refused(c, srv, mine):
    """Stock rdma_rxe: both sides must fail, saying why (STOCK_OUTCOMES)."""
    why, said = [], []
    for side, r in (("A", mine), ("B", srv)):
        if not r["rc"]:
            why.append("%s: ODP was not refused (exit 0)" % side)
        found = r["found"].get(c.stock[1], [])
        if r is mine or c.sargv:
            if not found:
                why.append("%s: did not say '%s'" % (side, c.stock[1]))
            said += ["%s: %s" % (side, l.strip()) for l in found[:1]]
    return why, said, "ODP refused, as stock rdma_rxe refuses it"


def judge(c, srv, mine):
    """The case's verdict and what went wrong, from both sides."""
    if c.stock and c.stock[0] == "refused":
        return judge_refused(c, srv, mine)
    why, notes = [], []
    for side, r in (("A", mine), ("B", srv)):
        if r["rc"] and c.ucx_odp and ucx_exit_bug(r):
            notes.append("%s: exit %d in uct_ib_md_close(), UCX 1.13.1's "
                         "known bug (openucx/ucx#8735)" % (side, r["rc"]))
        elif r["rc"]:
            why.append("%s: exit %s" % (side, r["rc"]))
    fig = value(c.kind, mine["out"])
    if not fig:
        why.append("the client reported no result")
        # its first failed check or its bail-out, where a CI log's
        # closing summary shows it
        said = re.search(r"^\s*(not ok \d+ .*|Bail out!.*)$", mine["out"],
                         re.M)
        if said:
            why.append("A said: %s" % said.group(1).strip()[:160])
    for side, r in (("A", mine), ("B", srv)):
        moved = odp_moved(r["deltas"])
        if c.mr and c.data and not moved:
            why.append("%s: no ODP page fault or prefetch" % side)
        if not c.mr and moved:
            why.append("%s: ODP counters moved on a pinned run" % side)
        bad = mr_check(c, r["odp_mrs"])
        if bad:
            why.append("%s: %s" % (side, bad))
        if c.kind in ("ucx", "check"):
            said = bool(r["found"][GLOBAL_KEY])
            if said != c.ucx_odp:
                why.append("%s: UCX %s '%s'" % (side, "did not say"
                                                if c.ucx_odp else "said",
                                                GLOBAL_KEY))
    return why, notes, fig


def drive():
    todo = cases()
    tap = Tap(len(todo))
    tap.diag("engines between %s (A, client) and %s (B, server), %s gid %s%s"
             % (pairlib.SELF, PEER, DEV, GID,
                ", Debian's stock rdma_rxe" if STOCK else ""))
    peer = Peer(max([c.budget for c in todo] + [TMO]) + 60)
    for c in todo:
        find = [GLOBAL_KEY, UCX_EXIT_BUG] if c.kind in ("ucx", "check") \
            else [UCX_EXIT_BUG]
        if c.stock and c.stock[1]:
            find.append(c.stock[1])
        if c.sargv:
            up = peer.start(c.name, c.sargv, c.env, {"tcp": c.port}, find,
                            c.budget, "engines")
        else:	# mpirun starts B's side itself (tests/pair/rsh-agent)
            up, before = True, peer.counters()
            peer.watch()
        # a client whose server was stopped has nothing left to wait for
        mine = run_client(c.name, c.cargv, c.env, find,
                          c.budget + 30 if c.sargv else 2 * c.budget,
                          "engines")
        if c.sargv:
            srv = peer.result()
        else:
            srv = {"rc": 0, "tail": [], "found": {}, "odp_mrs": peer.watched(),
                   "deltas": pairlib.deltas(before, peer.counters())}
            # both ranks' output (and exits) reach A through mpirun
            mine["found"][GLOBAL_KEY] = srv["found"][GLOBAL_KEY] = []
        why, notes, fig = judge(c, srv, mine)
        if not up and not (c.stock and c.stock[0] == "refused"):
            why.append("the server did not listen")
        diag = []
        if why:
            diag = ["A: " + l for l in mine["tail"]] + \
                   ["B: " + l for l in srv["tail"]]
        elif c.kind in ("check", "mpicheck"):	# what was checked
            diag = [l for l in mine["out"].splitlines()
                    if re.match(r"(ok \d+ |# server stress)", l)]
        hung = STOCK and c.kind == "pingpong" and not c.mr and \
            mine["rc"] == 124 and srv["rc"] in (124, -9)
        tap.result(not why, "%s: %s" % (c.name, fig if not why
                                                 else "; ".join(why)),
                   notes + diag, STOCK_HANG if hung else None)
        tap.diag("%s counter deltas: A %s, B %s"
                 % (c.name, mine["deltas"] or "none", srv["deltas"] or "none"))
        tap.diag("%s ODP MRs: A %s; B %s"
                 % (c.name, pairlib.mr_summary(mine["odp_mrs"]),
                    pairlib.mr_summary(srv["odp_mrs"])))
    peer.close()
    return tap.finish()


if __name__ == "__main__":
    # Open MPI tells its nodes apart by host name (a guest's: only as A or B)
    if pairlib.ROLE in ("A", "B"):
        subprocess.run(["hostname", "rxe-" + pairlib.ROLE.lower()],
                       check=False)
    pairlib.main(drive, "engines.py")
