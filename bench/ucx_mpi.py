#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0 OR Linux-OpenIB
"""UCX and Open MPI between the two guests, UCX's registration cache against
its implicit ODP MR, in one run (bench/ucx-mpi.sh).

In the guests (RXE_ROLE=A or B, tests/vm/run-pair.sh): B serves, A runs
every measurement BENCH_REPS times, the two modes interleaved so that both
see the same host, and writes $RXE_OUT/ucx-mpi-raw.csv:
group,bench,mode,size,metric,unit,rep,value.

- ucx_perftest over rc_verbs: tag_bw, ucp_put_bw and ucp_get of 1 MiB
  (overall bandwidth), tag_lat of 8 B and 64 KiB (average latency).
- NetPIPE (NPopenmpi, pml ucx): its bandwidth curve up to 4 MiB.
- The case ODP exists for: a stream of tag sends, each from a buffer
  mmap()ed for it (ucp_check --stream): with the registration cache every
  message registers (pins) memory new to it; with ODP none does.  Time per
  message, and the largest VmPin and VmLck of the sending process, with
  each buffer unmapped after its send (the cache drops it) and with all
  of them kept mapped (the cache keeps them all registered).

On the host: ucx_mpi.py --report RAW OUT writes OUT/ucx-mpi.md (medians,
ODP against rcache) and OUT/ucx-mpi.csv.
"""
import csv
import os
import re
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "tests", "pair"))
import engines  # noqa: E402  tests/pair/engines.py: the cases' settings
import pairlib  # noqa: E402

MODES = ["rcache", "odp-implicit"]
PERFTESTS = [	# (bench, size, options, metric)
    ("tag_bw", 1048576, ["-t", "tag_bw", "-n", "40"], "bw"),
    ("ucp_put_bw", 1048576, ["-t", "ucp_put_bw", "-n", "40"], "bw"),
    ("ucp_get", 1048576, ["-t", "ucp_get", "-n", "40"], "bw"),
    ("tag_lat", 8, ["-t", "tag_lat", "-n", "500"], "lat"),
    ("tag_lat", 65536, ["-t", "tag_lat", "-n", "100"], "lat"),
]
STREAMS = [	# (kind, sizes, ucp_check options)
    ("unmapped", ["64K", "1M"], []),	# each buffer unmapped after its send
    ("kept", ["1M"], ["--keep"]),	# all stay mapped until the stream ends
]
STREAM_N = 100
NP_MAX = 4194304
NP_SIZES = [1024, 16384, 65536, 262144, 1048576, 4194304]	# reported
TMO = 400


def ucx_env(mode):
    """The environment of engines.py's UCX cases, without the debug log."""
    env = dict(engines.UCX_ENV, **engines.UCX_MODES[mode][0])
    env.pop("UCX_LOG_LEVEL")
    return env


class Raw:
    def __init__(self, path):
        self.f = open(path, "w")

    def add(self, group, bench, mode, size, metric, unit, rep, value):
        self.f.write("%s,%s,%s,%s,%s,%s,%d,%s\n" % (
            group, bench, mode, size, metric, unit, rep, value))
        self.f.flush()


def perftest(peer, raw, rep, port):
    for bench, size, opts, metric in PERFTESTS:
        for mode in MODES:
            port += 1
            argv = ["ucx_perftest", "-p", str(port), "-s", str(size)] + opts
            name = "%s-%d-%s-%d" % (bench, size, mode, rep)
            env = ucx_env(mode)
            up = peer.start(name, argv, env, {"tcp": port}, (), TMO, "bench")
            mine = pairlib.run_client(name, argv + [pairlib.PEER], env, (),
                                      TMO, "bench")
            peer.result()
            fin = [l.split() for l in mine["out"].splitlines()
                   if l.startswith("Final:")]
            if not up or not fin or len(fin[-1]) < 9:
                print("# %s: no result (rc %s)" % (name, mine["rc"]),
                      flush=True)
                continue
            w = fin[-1]	# iters, lat 50%, avg, overall, bw avg, overall
            if metric == "bw":
                raw.add("ucx", bench, mode, size, "bw", "MB/s", rep, w[6])
            else:
                raw.add("ucx", bench, mode, size, "lat", "usec", rep, w[3])
            print("# %s: %s" % (name, " ".join(w)), flush=True)
    return port


def netpipe(raw, rep):
    for mode in MODES:
        out = "%s/np-%s-%d.out" % (os.environ.get("RXE_OUT", "/tmp"), mode,
                                   rep)
        argv = engines.mpirun(ucx_env(mode), [
            "NPopenmpi", "-u", str(NP_MAX), "-o", out])
        r = pairlib.run_client("netpipe-%s-%d" % (mode, rep), argv,
                               engines.MPI_ENV, (), 2 * TMO, "bench")
        try:
            rows = [l.split() for l in open(out) if l.strip()]
        except OSError:
            rows = []
        if not rows:
            print("# netpipe %s: no output (rc %s)" % (mode, r["rc"]),
                  flush=True)
        for row in rows:	# bytes, Mbps, seconds per one-way
            raw.add("netpipe", "NPopenmpi", mode, row[0], "bw", "Mbps", rep,
                    row[1])
        print("# netpipe %s: %d sizes" % (mode, len(rows)), flush=True)


def stream(peer, raw, rep, port):
    for mode, (kind, sizes, opts) in [(m, k) for m in MODES
                                      for k in STREAMS]:
        port += 1
        env = ucx_env(mode)
        name = "stream-%s-%s-%d" % (kind, mode, rep)
        srv = [engines.UCP_CHECK, "--server", "--port", str(port), "--size",
               "2M"]
        cli = [engines.UCP_CHECK, "--client", pairlib.PEER, "--port",
               str(port), "--ops", "send", "--sizes", ",".join(sizes),
               "--stream", str(STREAM_N)] + opts
        peer.start(name, srv, env, {"tcp": port}, (), TMO, "bench")
        mine = pairlib.run_client(name, cli, env, (), TMO, "bench")
        peer.result()
        for m in re.finditer(r"^# stream op=(\w+) bytes=(\d+) n=\d+ "
                             r"usec_per_msg=([\d.]+) vmpin_kb=(-?\d+) "
                             r"vmlck_kb=(-?\d+)", mine["out"], re.M):
            op, size = m.group(1), m.group(2)
            raw.add("stream", "fresh_" + op, mode, size, "time_per_msg",
                    "usec", rep, m.group(3))
            raw.add("stream", "fresh_" + op, mode, size, "vmpin_max", "kB",
                    rep, m.group(4))
            raw.add("stream", "fresh_" + op, mode, size, "vmlck_max", "kB",
                    rep, m.group(5))
        bad = re.findall(r"^not ok .*", mine["out"], re.M)
        print("# %s: %s" % (name, bad[0] if bad else "ok"), flush=True)
    return port


def drive():
    reps = int(os.environ.get("BENCH_REPS", "3"))
    raw = Raw(os.environ.get("RXE_OUT", ".") + "/ucx-mpi-raw.csv")
    peer = pairlib.Peer(TMO + 60)
    port = 19600
    for rep in range(1, reps + 1):
        print("# repetition %d of %d" % (rep, reps), flush=True)
        port = perftest(peer, raw, rep, port)
        port = stream(peer, raw, rep, port)
        netpipe(raw, rep)
    peer.close()
    return 0


def report(raw_path, out):
    """ucx-mpi.md and ucx-mpi.csv from the raw measurements."""
    groups = {}
    for row in csv.reader(open(raw_path)):
        key = tuple(row[:6])
        groups.setdefault(key, []).append(float(row[7]))
    med = {k: statistics.median(v) for k, v in groups.items()}
    with open(out + "/ucx-mpi.csv", "w") as f:
        f.write("group,bench,mode,size,metric,unit,n,median,min,max\n")
        for k, v in sorted(groups.items()):
            f.write("%s,%d,%g,%g,%g\n" % (",".join(k), len(v), med[k],
                                          min(v), max(v)))

    def pair(group, bench, size, metric):
        r = [(k, v) for k, v in med.items() if k[0] == group and
             k[1] == bench and k[3] == str(size) and k[4] == metric]
        by = {k[2]: (v, k[5]) for k, v in r}
        return by.get("rcache"), by.get("odp-implicit")

    lines = ["# UCX and Open MPI between two guests: rcache against ODP",
             "",
             "Medians over the repetitions of one run (bench/ucx-mpi.sh); "
             "ratios are ODP / rcache.  Emulated CPUs: only the ratios "
             "mean something.", "",
             "| bench | size | metric | rcache | ODP (implicit MR) | ratio |",
             "| --- | --- | --- | --- | --- | --- |"]

    def row(label, group, bench, size, metric):
        a, b = pair(group, bench, size, metric)
        if not a or not b:
            return
        ratio = "%.2f" % (b[0] / a[0]) if a[0] else "-"
        lines.append("| %s | %s | %s (%s) | %g | %g | %s |" % (
            label, size, metric, a[1], a[0], b[0], ratio))

    for bench, size, _, metric in PERFTESTS:
        row("ucx_perftest " + bench, "ucx", bench, size, metric)
    for size in NP_SIZES:
        row("NetPIPE", "netpipe", "NPopenmpi", size, "bw")
    for kind, sizes, _ in STREAMS:
        for s in sizes:
            size = int(s[:-1]) << {"K": 10, "M": 20}[s[-1]]
            for metric in ("time_per_msg", "vmpin_max", "vmlck_max"):
                row("%d fresh-buffer sends, %s" % (STREAM_N, kind), "stream",
                    "fresh_send" + ("_kept" if kind == "kept" else ""), size,
                    metric)
    with open(out + "/ucx-mpi.md", "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--report"] and len(sys.argv) == 4:
        report(sys.argv[2], sys.argv[3])
        sys.exit(0)
    # Open MPI tells its nodes apart by host name
    subprocess.run(["hostname", "rxe-" + pairlib.ROLE.lower()], check=False)
    if pairlib.ROLE == "B":
        sys.exit(pairlib.serve())
    if pairlib.ROLE == "A" and pairlib.PEER:
        sys.exit(drive())
    print("usage: bench/ucx_mpi.py --report RAW OUTDIR (or run by "
          "bench/ucx-mpi.sh)", file=sys.stderr)
    sys.exit(64)
