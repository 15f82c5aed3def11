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
  keys for every region; it says "using odp global key").

An ODP case must show ODP at work on both hosts: rxe0's odp_page_faults or
odp_page_prefetch counters moved over the run (where the case's data
lands in user memory: bandwidth cases; a small latency message goes
through UCX's pinned bounce buffers).  A pinned case must not move them.

- Open MPI 4.1.4 with pml ucx, one rank per guest (launched through
  tests/pair/rsh-agent, the bed's remote shell, in place of ssh):
  NetPIPE's integrity run (NPopenmpi -i, every message checked), with
  UCX's registration cache and with its implicit ODP MR.
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

PAIR_ENGINES_CASES selects cases by name prefix (default: all).
"""
import os
import re
import subprocess
import sys

import pairlib
from pairlib import DEV, GID, PEER, Peer, Tap, run_client

TMO = int(os.environ.get("PAIR_ENGINES_TIMEOUT", "150"))
PRELOAD = pairlib.BUILD + "/userspace/librxeodp-preload.so"
GLOBAL_KEY = r"using odp global key"
UCX_EXIT_BUG = r"uct_ib_md_close"
NP_LINE = r"^\s*\d+:\s+\d+ bytes\s+\d+ times -->"
UCP_CHECK = pairlib.BUILD + "/tests/ucp_check"
MPI_CHECK = pairlib.BUILD + "/tests/mpi_check"

PP_MODES = {		# name: (options, ODP expected)
    "pinned": ([], False),
    "odp": (["-o"], True),
    "implicit": (["-O"], True),
    "odp-prefetch": (["-o", "-P"], True),
    "implicit-prefetch": (["-O", "-P"], True),
}

UCX_ENV = {"UCX_TLS": "rc_v,self", "UCX_NET_DEVICES": DEV + ":1",
           # rxe's UD packets over IPv4 do not carry the destination GID
           # where UCX's UD transport (wireup) looks for it on Ethernet
           "UCX_UD_VERBS_ETH_DGID_CHECK": "n", "UCX_LOG_LEVEL": "debug",
           "UCX_IB_GID_INDEX": GID}
UCX_MODES = {		# name: (environment, ODP expected)
    "rcache": ({"UCX_IB_REG_METHODS": "rcache"}, False),
    "odp-implicit": ({"UCX_IB_REG_METHODS": "odp"}, True),
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


CHECK_CASES = [		# (UCX mode, stress, client sizes)
    ("rcache", "migrate", "64K,4M,32M"),
    ("odp-implicit", "none", "64K,4M,32M,256M"),
    ("odp-implicit", "migrate", "64K,4M,32M"),
    ("odp-implicit", "pageout", "64K,4M,32M"),
    ("odp-implicit", "ksm", "64K,4M"),
]
MPI_CHECK_CASES = [("rcache", "migrate", "64K,4M,32M"),
                   ("odp-implicit", "migrate", "64K,4M,32M")]


def max_size(sizes):
    """The server buffer for @sizes: the largest, and the offsets' slack."""
    n = [int(x[:-1]) << {"K": 10, "M": 20}[x[-1]] if x[-1] in "KM"
         else int(x) for x in sizes.split(",")]
    return str(max(n) + 8192)


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
    """(name, server argv, client argv, env, port, check) for each case."""
    port = 18600
    out = []
    for prog in ("ibv_rc_pingpong", "ibv_srq_pingpong"):
        for mode, (opts, odp) in PP_MODES.items():
            if prog == "ibv_srq_pingpong" and mode not in ("pinned", "odp"):
                continue
            port += 1
            argv = [prog, "-d", DEV, "-g", GID, "-p", str(port), "-c",
                    "-s", "65536" if prog == "ibv_rc_pingpong" else "4096",
                    "-n", "200" if prog == "ibv_rc_pingpong" else "50"] + opts
            env = {"LD_PRELOAD": PRELOAD} if "-P" in opts else {}
            out.append(("%s %s" % (prog, mode), argv, argv + [PEER], env,
                        port, ("pingpong", odp, True, False)))
    for test, topts, data in UCX_TESTS:
        for mode, (menv, odp) in UCX_MODES.items():
            port += 1
            argv = ["ucx_perftest", "-p", str(port)] + topts
            env = dict(UCX_ENV, **menv)
            out.append(("ucx_perftest %s %s" % (test, mode), argv,
                        argv + [PEER], env, port,
                        ("ucx", odp, data, mode == "odp-implicit")))
    for mode in ("rcache", "odp-implicit"):
        env = dict(UCX_ENV, **UCX_MODES[mode][0])
        env.pop("UCX_LOG_LEVEL")
        argv = mpirun(env, ["NPopenmpi", "-i", "-u", "1048576", "-o",
                            "/dev/null"])
        out.append(("openmpi NPopenmpi -i %s" % mode, None, argv, MPI_ENV,
                    None, ("mpi", UCX_MODES[mode][1], True,
                           mode == "odp-implicit")))
    for mode, stress, sizes in CHECK_CASES:
        port += 1
        odp = UCX_MODES[mode][1]
        env = dict(UCX_ENV, **UCX_MODES[mode][0])
        srv = [UCP_CHECK, "--server", "--port", str(port), "--size",
               max_size(sizes), "--stress", stress]
        cli = [UCP_CHECK, "--client", PEER, "--port", str(port), "--sizes",
               sizes, "--expect-moved" if odp else "--expect-pinned"]
        out.append(("ucp_check %s %s" % (mode, stress), srv, cli, env, port,
                    ("check", odp, True, odp)))
    for mode, stress, sizes in MPI_CHECK_CASES:
        odp = UCX_MODES[mode][1]
        env = dict(UCX_ENV, **UCX_MODES[mode][0])
        env.pop("UCX_LOG_LEVEL")
        argv = mpirun(env, [MPI_CHECK, "--size", max_size(sizes), "--stress",
                            stress, "--sizes", sizes,
                            "--expect-moved" if odp else "--expect-pinned"])
        out.append(("mpi_check %s %s" % (mode, stress), None, argv, MPI_ENV,
                    None, ("mpicheck", odp, True, odp)))
    sel = os.environ.get("PAIR_ENGINES_CASES", "").split(",")
    return [c for c in out if any(c[0].startswith(s) for s in sel)]


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


def judge(name, kind, srv, mine):
    """The case's verdict and what went wrong, from both sides."""
    odp, data, implicit = kind[1], kind[2], kind[3]
    why, notes = [], []
    for side, r in (("A", mine), ("B", srv)):
        if r["rc"] and kind[3] and ucx_exit_bug(r):
            notes.append("%s: exit %d in uct_ib_md_close(), UCX 1.13.1's "
                         "known bug (openucx/ucx#8735)" % (side, r["rc"]))
        elif r["rc"]:
            why.append("%s: exit %s" % (side, r["rc"]))
    fig = value(kind[0], mine["out"])
    if not fig:
        why.append("the client reported no result")
    for side, r in (("A", mine), ("B", srv)):
        moved = odp_moved(r["deltas"])
        if odp and data and not moved:
            why.append("%s: no ODP page fault or prefetch" % side)
        if not odp and moved:
            why.append("%s: ODP counters moved on a pinned run" % side)
        if kind[0] in ("ucx", "check"):
            said = bool(r["found"][GLOBAL_KEY])
            if said != implicit:
                why.append("%s: UCX %s '%s'" % (side, "did not say" if implicit
                                                else "said", GLOBAL_KEY))
    return why, notes, fig


def drive():
    todo = cases()
    tap = Tap(len(todo))
    tap.diag("engines between %s (A, client) and %s (B, server), %s gid %s"
             % (pairlib.SELF, PEER, DEV, GID))
    peer = Peer(TMO + 60)
    for name, sargv, cargv, env, port, kind in todo:
        find = [GLOBAL_KEY, UCX_EXIT_BUG] if kind[0] in ("ucx", "check") \
            else [UCX_EXIT_BUG]
        if sargv:
            up = peer.start(name, sargv, env, {"tcp": port}, find, TMO,
                            "engines")
        else:	# mpirun starts B's side itself (tests/pair/rsh-agent)
            up, before = True, peer.counters()
        mine = run_client(name, cargv, env, find, 2 * TMO, "engines")
        if sargv:
            srv = peer.result()
        else:
            srv = {"rc": 0, "tail": [], "found": {}, "deltas":
                   pairlib.deltas(before, peer.counters())}
        if kind[0] in ("mpi", "mpicheck"):
            # both ranks' output (and exits) reach A through mpirun
            mine["found"][GLOBAL_KEY] = srv["found"][GLOBAL_KEY] = []
        why, notes, fig = judge(name, kind, srv, mine)
        if not up:
            why.append("the server did not listen")
        diag = []
        if why:
            diag = ["A: " + l for l in mine["tail"]] + \
                   ["B: " + l for l in srv["tail"]]
        elif kind[0] in ("check", "mpicheck"):	# what was checked
            diag = [l for l in mine["out"].splitlines()
                    if re.match(r"(ok \d+ |# server stress)", l)]
        tap.result(not why, "two-host %s: %s" % (name, fig if not why
                                                 else "; ".join(why)),
                   notes + diag)
        tap.diag("%s counter deltas: A %s, B %s"
                 % (name, mine["deltas"] or "none", srv["deltas"] or "none"))
    peer.close()
    return tap.finish()


if __name__ == "__main__":
    # Open MPI tells its nodes apart by host name
    subprocess.run(["hostname", "rxe-" + pairlib.ROLE.lower()], check=False)
    if pairlib.ROLE == "B":
        sys.exit(pairlib.serve())
    if pairlib.ROLE == "A" and PEER:
        sys.exit(drive())
    print("engines.py: run by tests/vm/run-pair.sh (RXE_ROLE, RXE_PEER)",
          file=sys.stderr)
    sys.exit(64)
