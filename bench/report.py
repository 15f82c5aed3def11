#!/usr/bin/python3
"""Turn bench/guest.sh's raw.csv into bench.csv, results.md and plot data.

  report.py --raw raw.csv --meta meta.txt --out DIR

bench.csv: group,bench,mode,size,metric,unit,n,median,min,max
results.md: the targets of issue 4 and where we stand, then every table.
plot-*.dat: data for bench/plots.gp (deleted by run.sh after plotting).

Only the Python standard library is used.
"""
import argparse
import csv
import os
import statistics
from collections import defaultdict

ap = argparse.ArgumentParser()
ap.add_argument("--raw", required=True)
ap.add_argument("--meta", required=True)
ap.add_argument("--out", required=True)
args = ap.parse_args()

# ---- load -------------------------------------------------------------------

vals = defaultdict(dict)   # key -> {rep: value}
units = {}
order = []
with open(args.raw) as f:
    for r in csv.reader(f):
        if len(r) != 8:
            continue
        g, b, m, s, met, u, rep, v = r
        try:
            key = (g, b, m, int(s), met)
            vals[key][int(rep)] = float(v)
        except ValueError:
            continue
        if key not in units:
            units[key] = u
            order.append(key)

meta = {}
with open(args.meta) as f:
    for line in f:
        if "=" in line:
            k, v = line.rstrip("\n").split("=", 1)
            meta[k] = v


def stats(key):
    v = list(vals.get(key, {}).values())
    if not v:
        return None
    return statistics.median(v), min(v), max(v), len(v)


def med(*key):
    s = stats(key)
    return s[0] if s else None


def ratio_reps(num, den):
    """Per-repetition ratios num/den (the runs of a repetition are
    interleaved, so they saw the same host), and the ratio of medians."""
    a, b = vals.get(num, {}), vals.get(den, {})
    per = [a[r] / b[r] for r in a if r in b and b[r] > 0]
    ma, mb = med(*num), med(*den)
    whole = ma / mb if ma is not None and mb else None
    return whole, per


# ---- formatting -----------------------------------------------------------


def fnum(x, digits=3):
    if x is None:
        return "–"
    if x == 0:
        return "0"
    ax = abs(x)
    if ax >= 1000:
        return f"{x:,.0f}"
    if ax >= 100:
        return f"{x:.0f}"
    if ax >= 10:
        return f"{x:.1f}"
    if ax >= 1:
        return f"{x:.2f}"
    return f"{x:.{digits}g}"


def cell(*key, spread=True):
    s = stats(key)
    if not s:
        return "–"
    m, lo, hi, n = s
    if not spread or n < 2 or lo == hi:
        return fnum(m)
    return f"{fnum(m)} ({fnum(lo)}–{fnum(hi)})"


def rcell(num, den, fmt="{:.2f}"):
    whole, per = ratio_reps(num, den)
    if whole is None:
        return "–"
    s = fmt.format(whole)
    if len(per) > 1:
        s += f" ({fmt.format(min(per))}–{fmt.format(max(per))})"
    return s


def hsize(n):
    for u, sh in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << sh and n % (1 << sh) == 0:
            return f"{n >> sh} {u}"
    return f"{n} B"


def table(head, rows):
    out = ["| " + " | ".join(head) + " |",
           "|" + "|".join(" --- " for _ in head) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out) + "\n"


def verdict(value, target, higher_is_better, per=None):
    """met / not met; 'inconclusive' when the repetitions straddle it."""
    if value is None:
        return "not measured"
    ok = value >= target if higher_is_better else value <= target
    if per and len(per) > 1:
        lo, hi = min(per), max(per)
        if higher_is_better and lo < target <= hi or \
           not higher_is_better and lo <= target < hi:
            return ("met" if ok else "not met") + \
                " (repetitions straddle the target)"
    return "**met**" if ok else "**not met**"


# ---- bench.csv ----------------------------------------------------------------

with open(os.path.join(args.out, "bench.csv"), "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["group", "bench", "mode", "size", "metric", "unit", "n",
                "median", "min", "max"])
    for key in order:
        m, lo, hi, n = stats(key)
        w.writerow(list(key[:4]) + [key[4], units[key], n,
                                    f"{m:.6g}", f"{lo:.6g}", f"{hi:.6g}"])

# ---- results.md -------------------------------------------------------------

P = "perftest"
M = "micro"
K64 = 65536
md = []
add = md.append

add("# rxe ODP benchmarks\n")
add(f"One run of `make bench` on {meta.get('date', '?')} (commit "
    f"{meta.get('commit', '?')}), in the QEMU test guest: kernel "
    f"{meta.get('kernel', '?')}, {meta.get('cpus', '?')} vCPUs on "
    f"{len(meta.get('numa_nodes', '0-1').split('-'))} NUMA nodes, "
    f"{int(meta.get('mem_total_kib', '0')) // 1024} MiB, accelerator "
    f"{meta.get('accel', '?')}, guest CPU \"{meta.get('cpu_model', '?')}\" on "
    f"host CPU \"{meta.get('host_cpu', '?')}\"; perftest "
    f"{meta.get('perftest', '?')}, rdma-core {meta.get('rdma_core', '?')}, "
    f"active MTU {meta.get('active_mtu', '?')}.  "
    f"Host before the run: {meta.get('host_before', '?')}; after: "
    f"{meta.get('host_after', '?')}.  `make bench` took "
    f"{int(meta.get('runtime_s', '0')) // 60} min "
    f"{int(meta.get('runtime_s', '0')) % 60} s.\n")
add("Every number is the median of the repetitions "
    f"({meta.get('reps', '?').split()[0].replace('reps=', '')}), with the "
    "minimum and maximum in parentheses.  Ratios are computed per "
    "repetition (the pinned and ODP runs of a repetition are interleaved, "
    "so they saw the same host) and given as ratio of medians (min–max of "
    "the per-repetition ratios).  Bandwidths are MiB/s (2^20 bytes/s, "
    "perftest's \"MB/sec\").  The absolute numbers are those of an emulated "
    "CPU on a shared host; only the ratios carry over to other machines.\n")
if "tcg" in meta.get("accel", ""):
    add("Under TCG the guest's vCPUs are host threads competing with "
        "everything else on the host: other guests running at the same time "
        "show up as spread (see the host load above).\n")

# -- targets --
add("## Headline\n")
rows = []
wp = {}
for tool, name in (("ib_write_bw", "WRITE"), ("ib_read_bw", "READ"),
                   ("ib_send_bw", "SEND")):
    whole, per = ratio_reps((P, tool, "odp-warm", K64, "bw"),
                            (P, tool, "pinned", K64, "bw"))
    wp[tool] = whole
    rows.append([f"warm ODP / pinned bandwidth, {name} 64 KiB", "≥ 0.98",
                 rcell((P, tool, "odp-warm", K64, "bw"),
                       (P, tool, "pinned", K64, "bw")),
                 verdict(whole, 0.98, True, per)])
def bimodal(*keys):
    """perftest's latency under TCG is bimodal from run to run (a run
    either answers in tens of µs or waits for a 4 ms tick every time,
    pinned and ODP alike, stock rxe too): say so when the repetitions of a
    point differ by more than 5x."""
    for k in keys:
        v = list(vals.get(k, {}).values())
        if len(v) > 1 and min(v) > 0 and max(v) / min(v) > 5:
            return True
    return False


for tool, name in (("ib_write_lat", "WRITE"), ("ib_read_lat", "READ")):
    for size in (64, K64):
        kw = (P, tool, "odp-warm", size, "lat_typical")
        kp = (P, tool, "pinned", size, "lat_typical")
        whole, per = ratio_reps(kw, kp)
        v = verdict(whole, 1.05, False, per)
        if whole is not None and bimodal(kw, kp):
            v = "inconclusive: bimodal runs (see the latency table)"
        rows.append([f"warm ODP / pinned latency (typical), {name} "
                     f"{hsize(size)}", "≤ 1.05", rcell(kw, kp), v])
        kw = (P, tool, "odp-warm", size, "lat_min")
        kp = (P, tool, "pinned", size, "lat_min")
        whole, per = ratio_reps(kw, kp)
        rows.append([f"warm ODP / pinned latency (minimum), {name} "
                     f"{hsize(size)}", "≤ 1.05", rcell(kw, kp),
                     verdict(whole, 1.05, False, per)])
for tool, name in (("ib_write_bw", "WRITE"), ("ib_read_bw", "READ"),
                   ("ib_send_bw", "SEND")):
    whole, per = ratio_reps((P, tool, "odp-cold", K64, "bw"),
                            (P, tool, "odp-warm", K64, "bw"))
    rows.append([f"cold / warm ODP bandwidth, perftest {name} 64 KiB "
                 "(cold: fresh MR, first touch in the timed loop)", "≥ 0.5",
                 rcell((P, tool, "odp-cold", K64, "bw"),
                       (P, tool, "odp-warm", K64, "bw")),
                 verdict(whole, 0.5, True, per)])
for op in ("write", "read", "send"):
    b = f"stream_{op}"
    whole, per = ratio_reps((M, b, "odp-cold", K64, "bw"),
                            (M, b, "odp-warm", K64, "bw"))
    rows.append([f"cold / warm ODP bandwidth, {op.upper()} stream of 64 KiB "
                 "messages over fresh memory (every page cold)", "≥ 0.5",
                 rcell((M, b, "odp-cold", K64, "bw"),
                       (M, b, "odp-warm", K64, "bw")),
                 verdict(whole, 0.5, True, per)])
G = 1 << 30
whole, per = ratio_reps((M, "reg", "pinned", G, "reg_time"),
                        (M, "reg", "odp", G, "reg_time"))
rows.append(["pinned / ODP registration time, 1 GiB", "≥ 1000",
             rcell((M, "reg", "pinned", G, "reg_time"),
                   (M, "reg", "odp", G, "reg_time"), "{:.0f}"),
             verdict(whole, 1000, True, per)])
sizes_odp = sorted({k[3] for k in vals if k[:3] == (M, "reg", "odp")
                    and k[4] == "reg_time"})
if sizes_odp:
    lo_s, hi_s = sizes_odp[0], sizes_odp[-1]
    whole, per = ratio_reps((M, "reg", "odp", hi_s, "reg_time"),
                            (M, "reg", "odp", lo_s, "reg_time"))
    rows.append([f"ODP registration time, {hsize(hi_s)} / {hsize(lo_s)} "
                 "(independent of size)", "≈ 1",
                 rcell((M, "reg", "odp", hi_s, "reg_time"),
                       (M, "reg", "odp", lo_s, "reg_time")),
                 "**met**" if whole is not None and whole <= 1.5 else
                 ("not measured" if whole is None else "**not met**")])
for op, name in (("munmap", "munmap"), ("dontneed", "MADV_DONTNEED")):
    whole, per = ratio_reps((M, op, "odp", G, "time"),
                            (M, op, "nomr", G, "time"))
    rows.append([f"{name} of a faulted 1 GiB, with / without an ODP MR",
                 "≤ 1.2" if op == "munmap" else "(reported)",
                 rcell((M, op, "odp", G, "time"), (M, op, "nomr", G, "time")),
                 verdict(whole, 1.2, False, per) if op == "munmap" else ""])
mk = med(M, "memcpy", "movsb", 4096, "bw")
mg = med(M, "memcpy", "glibc", K64, "bw")
for mode in ("pinned", "odp-warm"):
    for tool in ("ib_write_bw", "ib_read_bw", "ib_send_bw"):
        bw = med(P, tool, mode, K64, "bw")
        rows.append([f"rxe {mode} {tool} 64 KiB / guest copy bandwidth "
                     "(rep movsb, the kernel's memcpy, over 4 KiB blocks; "
                     "glibc memcpy over 64 KiB)", "(reported)",
                     f"{bw / mk:.2f}; {bw / mg:.2f}" if bw and mk and mg
                     else "–",
                     f"{fnum(bw)} / {fnum(mk)}; {fnum(mg)} MiB/s"
                     if bw and mk and mg else ""])
add(table(["target", "goal", "measured", "verdict"], rows))
add("\nThe ceiling: rxe copies every payload byte twice on loopback (from "
    "the sender's buffer into a packet, from the packet into the "
    "receiver's buffer) with the kernel's memcpy(), which is `rep movsb` "
    "on this CPU model (ERMS), and computes the ICRC over it, all on the "
    "guest's CPUs: half the `rep movsb` bandwidth (ratio 0.5) is a hard "
    "upper bound.  Under TCG the two copy loops differ a lot, because QEMU "
    "emulates `rep movsb` and glibc's vector loops very differently; see "
    "the memcpy table.\n")

# -- perftest bandwidth --
add("## perftest bandwidth (MiB/s)\n")
add("`pinned`: perftest as is.  `odp-warm`: `--odp`, and every ODP MR is "
    "prefetched completely (advise_mr PREFETCH_WRITE, synchronous, by the "
    "LD_PRELOAD shim `libbench_odp_shim.so`) before perftest starts "
    "timing: no page fault in the timed loop.  `odp-cold`: `--odp` alone, "
    "so a fresh process with a fresh MR over fresh buffers; perftest's "
    "buffers are small (2 × max(message, 4 KiB) per side), so the faults "
    "happen in the first iterations and are then amortised over the run.  "
    "ib_atomic_bw: perftest 4.5 refuses `--odp` for atomics, so the shim "
    "adds IBV_ACCESS_ON_DEMAND to its registrations.  Iterations: 3000 "
    "(64 B), 2000 (4 KiB, atomics), 1000 (64 KiB), 100 (1 MiB); `-u 19`.\n")
rows = []
for tool in ("ib_write_bw", "ib_read_bw", "ib_send_bw", "ib_atomic_bw"):
    sizes = sorted({k[3] for k in vals if k[:2] == (P, tool) and
                    k[4] == "bw"})
    for s in sizes:
        rows.append([tool, hsize(s),
                     cell(P, tool, "pinned", s, "bw"),
                     cell(P, tool, "odp-warm", s, "bw"),
                     cell(P, tool, "odp-cold", s, "bw"),
                     rcell((P, tool, "odp-warm", s, "bw"),
                           (P, tool, "pinned", s, "bw")),
                     rcell((P, tool, "odp-cold", s, "bw"),
                           (P, tool, "odp-warm", s, "bw")),
                     cell(P, tool, "odp-cold", s, "fault_waits",
                          spread=False),
                     cell(P, tool, "pinned", s, "retries", spread=False) +
                     " / " + cell(P, tool, "odp-warm", s, "retries",
                                  spread=False)])
add(table(["test", "size", "pinned", "odp-warm", "odp-cold",
           "warm/pinned", "cold/warm", "cold: fault waits",
           "retries pinned / warm"], rows))

add("\n## perftest latency (µs)\n")
add("`typical` is perftest's median over the iterations of a run, `min` "
    "its fastest iteration.  Under TCG a latency run is bimodal: it either "
    "answers in tens of µs or every iteration waits for a timer tick (about "
    "4 ms at HZ=250), for reasons outside rxe (stock rxe does the same, "
    "and pinning server and client to different vCPUs does not help); "
    "which mode a run falls into is a coin toss, so the typical values of "
    "the repetitions are listed one by one (in repetition order), and the "
    "minimum, which does not depend on it, is the better comparison of "
    "the data paths.\n")


def reps_list(*key):
    v = vals.get(key, {})
    return ", ".join(fnum(v[r]) for r in sorted(v)) or "–"


rows = []
for tool in ("ib_write_lat", "ib_read_lat"):
    sizes = sorted({k[3] for k in vals if k[:2] == (P, tool) and
                    k[4] == "lat_typical"})
    for s in sizes:
        rows.append([tool, hsize(s),
                     reps_list(P, tool, "pinned", s, "lat_typical"),
                     reps_list(P, tool, "odp-warm", s, "lat_typical"),
                     reps_list(P, tool, "odp-cold", s, "lat_typical"),
                     rcell((P, tool, "odp-warm", s, "lat_typical"),
                           (P, tool, "pinned", s, "lat_typical"), "{:.3f}"),
                     cell(P, tool, "pinned", s, "lat_min"),
                     cell(P, tool, "odp-warm", s, "lat_min"),
                     rcell((P, tool, "odp-warm", s, "lat_min"),
                           (P, tool, "pinned", s, "lat_min"), "{:.3f}"),
                     cell(P, tool, "pinned", s, "lat_avg", spread=False) +
                     " / " + cell(P, tool, "odp-warm", s, "lat_avg",
                                  spread=False)])
add(table(["test", "size", "typical pinned", "typical odp-warm",
           "typical odp-cold", "typical warm/pinned", "min pinned",
           "min odp-warm", "min warm/pinned", "avg pinned / warm"], rows))

# -- streams --
add("\n## Cold against warm: RDMA streams over fresh memory (C, "
    "`odp_bench stream`)\n")
add("One process, one RC QP pair (loopback, `timeout` 19), a window of "
    "messages in flight.  Per repetition and message size, fresh buffers "
    "are mapped: the source is written by the CPU (as an application "
    "fills it), the destination is untouched; both are registered (pinned, "
    "or ODP with nothing faulted), then streamed twice.  For ODP the first "
    "pass is **cold** (every page of both buffers is faulted by the "
    "traffic) and the second **warm**; for pinned both passes are shown.  "
    "The buffer is 256 messages, at least 4 MiB and at most 16 MiB.  Each "
    "pass is checked byte for byte.  `parks`: QP parks for a fault "
    "(odp_fault_waits) per MiB moved; `wait`: their mean duration "
    "(odp_fault_wait_us / odp_fault_waits); `faults/s`: pages faulted per "
    "second of the cold pass.\n")
rows = []
for op in ("write", "read", "send"):
    b = f"stream_{op}"
    sizes = sorted({k[3] for k in vals if k[:2] == (M, b)})
    for s in sizes:
        rows.append([op.upper(), hsize(s),
                     cell(M, b, "pinned", s, "bw"),
                     cell(M, b, "odp-warm", s, "bw"),
                     cell(M, b, "odp-cold", s, "bw"),
                     rcell((M, b, "odp-warm", s, "bw"),
                           (M, b, "pinned", s, "bw")),
                     rcell((M, b, "odp-cold", s, "bw"),
                           (M, b, "odp-warm", s, "bw")),
                     cell(M, b, "odp-cold", s, "waits_per_MiB",
                          spread=False),
                     cell(M, b, "odp-cold", s, "fault_wait_mean"),
                     cell(M, b, "odp-cold", s, "faulted_pages_rate"),
                     cell(M, b, "odp-warm", s, "fault_waits", spread=False)])
add(table(["op", "message", "pinned", "odp-warm", "odp-cold", "warm/pinned",
           "cold/warm", "cold: parks/MiB", "cold: wait (µs)",
           "cold: faults/s", "warm: parks"], rows))

# -- NUMA balancing --
b = "stream_write_numabal"
if any(k[:2] == (M, b) for k in vals):
    add("\n## Automatic NUMA balancing\n")
    add("All other steps run with `kernel.numa_balancing=0` (the guest's "
        f"default is {meta.get('numa_balancing_default', '?')}).  The same "
        "64 KiB WRITE stream with it on: the balancer's periodic scans "
        "change the protection of the process's pages to catch NUMA "
        "hinting faults, every such change is an invalidation for the ODP "
        "mirror, and the \"warm\" pass faults again.\n")
    rows = []
    for bb, what in (("stream_write", "off"), (b, "on")):
        rows.append([what, cell(M, bb, "pinned", K64, "bw"),
                     cell(M, bb, "odp-warm", K64, "bw"),
                     rcell((M, bb, "odp-warm", K64, "bw"),
                           (M, bb, "pinned", K64, "bw")),
                     cell(M, bb, "odp-warm", K64, "fault_waits"),
                     cell(M, bb, "odp-warm", K64, "invalidated_pages")])
    add(table(["NUMA balancing", "pinned", "odp-warm", "warm/pinned",
               "warm pass: parks", "warm pass: pages invalidated"], rows))

# -- aging --
A = "aging"
if any(k[2].startswith("odp-warm-aging") for k in vals if k[0] == P) or \
        any(k[0] == A for k in vals):
    add("\n## Aging: reclaim asks the device which pages it used\n")
    add("The data path marks each translation it uses (`odp_aging`, on by "
        "default); with `odp_aging=0` it neither marks nor answers.  "
        "perftest odp-warm with aging on and off, interleaved in each "
        "repetition; the ratio is on/off:\n")
    rows = []
    for tool, size, met, what in (("ib_write_bw", K64, "bw", "MiB/s"),
                                  ("ib_write_lat", 64, "lat_typical", "µs")):
        on, off = (P, tool, "odp-warm-aging1", size, met), \
            (P, tool, "odp-warm-aging0", size, met)
        rows.append([f"{tool} {hsize(size)} ({what})", cell(*on), cell(*off),
                     rcell(on, off)])
    add(table(["measurement", "aging on", "aging off", "on/off"], rows))
    add("\n`tests/odp/odp_pressure` as a benchmark: a cgroup with "
        "`memory.max` 96 MiB, a 128 MiB ODP buffer whose hot 48 MiB only "
        "the device uses (READ and WRITE, 256 KiB messages) while the CPU "
        "fills the cold 80 MiB past the limit and `memory.reclaim` asks for "
        "1 MiB a second.  Pinned memory cannot take part: a pinned 128 MiB "
        "stays resident whatever the cgroup allows, and does not fit under "
        "this `memory.max` at all.\n")
    rows = []
    for mode, what in (("aging-on", "classic LRU, aging on"),
                       ("aging-off", "classic LRU, aging off"),
                       ("mglru-aging-on", "MGLRU, aging on")):
        k = (A, "pressure", mode, 0)
        rows.append([what, cell(*k, "mbps"), cell(*k, "hot_resident"),
                     cell(*k, "hot_faults"), cell(*k, "hot_faults_after_fill"),
                     cell(*k, "pswpin_per_s")])
    add(table(["reclaim", "RDMA MB/s", "hot resident (%)",
               "hot pages faulted", "… once the cold part is in",
               "swap-ins/s"], rows))

# -- contention --
C = ("contend", "write_streams")
if any(k[:3] == C + ("odp",) for k in vals):
    add("\n## Faulters of the same pages (`tests/odp/odp_contend`)\n")
    add("Four QPs stream WRITEs into one cold 32 MiB ODP MR beside a CPU "
        "writer of the same pages, with an asynchronous prefetch of the "
        "whole MR (`prefetched`) and without (`unprefetched`: the QPs' own "
        "faults and read-aheads meet).  The streams' time, the pages "
        "faulted and prefetched, and how long the QP tasks waited for "
        "their faults, from the device's histogram (`odp_fault_wait_1ms` "
        ".. `_4096ms`, `_longer`): the median, the 99th percentile and the "
        "longest as the bound of their bucket (8192: longer than 4096 ms; "
        "none in a run without waits).  `shared`: the notifier core as it "
        "is, where an overlapping fault waits for the one in flight that "
        "covers it and speculative faults give way; `unshared` "
        "(`odp_fault_sharing=0`, in turns with it): every faulter walks and "
        "faults its own pages, as before the core took this over.\n")
    rows = []
    for bench, case in (("write_streams", "prefetched"),
                        ("write_streams_unprefetched", "unprefetched")):
        for mode, what in (("odp", "shared"), ("odp-unshared", "unshared")):
            k = ("contend", bench, mode, 0)
            rows.append([case, what, cell(*k, "time"),
                         cell(*k, "faulted_pages"),
                         cell(*k, "prefetched_pages"),
                         cell(*k, "fault_waits"), cell(*k, "wait_mean"),
                         cell(*k, "wait_median"), cell(*k, "wait_p99"),
                         cell(*k, "wait_max")])
    add(table(["case", "faults", "streams (ms)", "pages faulted",
               "prefetched", "fault waits", "mean wait (µs)",
               "median ≤ (ms)", "p99 ≤ (ms)", "max ≤ (ms)"], rows))
    for bench, case in (("write_streams", "prefetched"),
                        ("write_streams_unprefetched", "unprefetched")):
        k = ("contend", bench)
        add(f"\n{case}, unshared / shared: streams' time "
            + rcell(k + ("odp-unshared", 0, "time"), k + ("odp", 0, "time"))
            + ", fault waits "
            + rcell(k + ("odp-unshared", 0, "fault_waits"),
                    k + ("odp", 0, "fault_waits"))
            + ", mean fault wait "
            + rcell(k + ("odp-unshared", 0, "wait_mean"),
                    k + ("odp", 0, "wait_mean")) + "\n")

# -- registration --
add("\n## Registration (`odp_bench reg`)\n")
add("ibv_reg_mr and ibv_dereg_mr time (µs) against size.  Up to 1 GiB the "
    "memory is populated before the registration (as an application's "
    "memory would be), for pinned and ODP alike; above, the range is a "
    "`MAP_NORESERVE` mapping nothing has touched, and only ODP can "
    "register it.  `kernel memory`: the drop of MemFree across the "
    "registration (KiB; user memory does not change, so this is what the "
    "kernel allocated), median.\n")
first = med(M, "reg", "odp-first", 4096, "reg_time")
if first is not None:
    add(f"The first ODP MR of a process also sets up the mm's MMU notifier "
        f"subscription: {fnum(first)} µs (once; not in the table).\n")
rows = []
sizes = sorted({k[3] for k in vals if k[:2] == (M, "reg")
                and k[2] in ("pinned", "odp")})
for s in sizes:
    rows.append([hsize(s),
                 cell(M, "reg", "pinned", s, "reg_time"),
                 cell(M, "reg", "odp", s, "reg_time"),
                 rcell((M, "reg", "pinned", s, "reg_time"),
                       (M, "reg", "odp", s, "reg_time"), "{:.0f}"),
                 cell(M, "reg", "pinned", s, "dereg_time"),
                 cell(M, "reg", "odp", s, "dereg_time"),
                 cell(M, "reg", "pinned", s, "kmem_free_drop", spread=False),
                 cell(M, "reg", "odp", s, "kmem_free_drop", spread=False)])
add(table(["size", "pinned reg", "ODP reg", "pinned/ODP", "pinned dereg",
           "ODP dereg", "kernel memory pinned", "kernel memory ODP"], rows))
kp = med(M, "reg", "pinned", G, "kmem_free_drop")
T = 1 << 40
ko = med(M, "reg", "odp", T, "kmem_free_drop")
if kp is not None or ko is not None:
    add(f"\nKernel memory per registered GiB: pinned {fnum(kp)} KiB "
        f"(1 GiB MR); ODP {fnum(ko / 1024 if ko is not None else None)} "
        "KiB (1 TiB MR / 1024; MemFree moves by a few hundred KiB on its "
        "own, so anything of that order is noise).\n")

# -- faults --
add("\n## Page-fault throughput and memory per faulted page "
    "(`odp_bench fault`)\n")
add("A synchronous prefetch (advise_mr PREFETCH_WRITE with FLUSH) of a "
    "whole 256 MiB ODP MR: `untouched` memory nothing had touched (the "
    "fault allocates and zeroes the pages), `touched` memory the CPU had "
    "populated (the fault only mirrors it), `touched-thp` the same with "
    "transparent huge pages.  Kernel memory per faulted page: drop of "
    "MemFree across the prefetch of touched memory / pages.  Faults taken "
    "by traffic are in the stream table (faults/s, wait).\n")
rows = []
for mode in ("odp-untouched", "odp-touched", "odp-touched-thp"):
    s = 256 << 20
    rows.append([mode.replace("odp-", ""),
                 cell(M, "fault", mode, s, "prefetch_rate"),
                 cell(M, "fault", mode, s, "prefetch_time"),
                 cell(M, "fault", mode, s, "kmem_per_page_free_drop"),
                 cell(M, "fault", mode, s, "kmem_per_page_slab")])
for op in ("munmap", "dontneed"):
    if stats((M, op, "odp", G, "kmem_per_page_slab")):
        rows.append([f"touched, 1 GiB (before the {op} of the "
                     "invalidation step)", "", "",
                     cell(M, op, "odp", G, "kmem_per_page_free_drop"),
                     cell(M, op, "odp", G, "kmem_per_page_slab")])
add(table(["memory", "pages/s", "ms for 256 MiB",
           "kernel B per page (MemFree)", "kernel B per page (slab)"], rows))
add("\nBy design the mirror keeps one 8-byte entry per 4 KiB page in "
    "4 KiB leaves (one per 2 MiB of address space, allocated when first "
    "faulted, kept until the MR goes): 8 B per faulted page, 2 KiB per "
    "faulted MiB, plus the xarray's nodes.  MemFree and slab deltas are "
    "approximate (per-CPU page lists and partially used slabs).\n")

# -- invalidation --
add("\n## Invalidation (`odp_bench inval`)\n")
add("A 1 GiB anonymous range (4 KiB pages) is populated; with an ODP MR it "
    "is also registered and prefetched completely, so that every page has "
    "a device translation.  Then one `munmap` or `madvise(MADV_DONTNEED)` "
    "of the whole range is timed (ms).\n")
rows = []
for op, name in (("munmap", "munmap"), ("dontneed", "MADV_DONTNEED")):
    rows.append([name, cell(M, op, "nomr", G, "time"),
                 cell(M, op, "odp", G, "time"),
                 rcell((M, op, "odp", G, "time"), (M, op, "nomr", G, "time")),
                 cell(M, op, "odp", G, "invalidated_pages", spread=False)])
add(table(["operation", "without MR", "with ODP MR", "with/without",
           "pages invalidated"], rows))

# -- migration --
add("\n## Migration (`odp_bench migrate`)\n")
add("`move_pages()` of a 64 MiB buffer (16384 pages of 4 KiB) from node 0 "
    "to node 1: no MR; an ODP MR, faulted, idle; an ODP MR under a "
    "continuous stream of 64 KiB RDMA WRITEs into the buffer; a pinned MR "
    "(its pages cannot move).  Pages/s counts the pages the kernel reports "
    "on node 1 afterwards.\n")
rows = []
S = 64 << 20
for mode in ("nomr", "odp", "odp-traffic", "pinned"):
    rows.append([mode, cell(M, "migrate", mode, S, "rate"),
                 cell(M, "migrate", mode, S, "moved_pages", spread=False),
                 cell(M, "migrate", mode, S, "time"),
                 (cell(M, "migrate", mode, S, "traffic_bw_before") + " / " +
                  cell(M, "migrate", mode, S, "traffic_bw_during"))
                 if mode == "odp-traffic" else ""])
add(table(["MR", "pages/s", "pages moved", "ms", "WRITE MiB/s alone / "
           "during the move"], rows))

# -- memcpy --
add("\n## The ceiling: guest memcpy (`odp_bench memcpy`)\n")
rows = [[hsize(s), cell(M, "memcpy", "glibc", s, "bw"),
         cell(M, "memcpy", "movsb", s, "bw")]
        for s in sorted({k[3] for k in vals if k[:2] == (M, "memcpy")})]
add("glibc's memcpy (what user space gets; vector loops) and `rep movsb` "
    "(what the guest kernel's memcpy() executes with ERMS: rxe's copies "
    "of 4 KiB packets).\n")
add(table(["block", "glibc memcpy (MiB/s)", "rep movsb (MiB/s)"], rows))

fails = [k for k in vals if k[4] == "failed"]
if fails:
    add("\n## Failed steps\n")
    for k in fails:
        add(f"- {k[0]} {k[1]} {k[2]} {hsize(k[3])}: "
            f"{len(vals[k])} repetition(s) failed\n")

with open(os.path.join(args.out, "results.md"), "w") as f:
    f.write("\n".join(md))

# ---- plot data ----------------------------------------------------------------


def dat(name, xs, cols):
    """One line per x, one column per series; no file when there is no
    data at all (the plot is then skipped)."""
    path = os.path.join(args.out, name)
    lines, any_val = [], False
    for x in xs:
        line = [str(x)]
        for key in cols:
            v = med(*key(x))
            any_val = any_val or v is not None
            line.append("NaN" if v is None else f"{v:.6g}")
        lines.append(" ".join(line) + "\n")
    if os.path.exists(path):
        os.unlink(path)
    if any_val:
        with open(path, "w") as f:
            f.writelines(lines)


bws = sorted({k[3] for k in vals if k[0] == P and k[4] == "bw"
              and k[1] != "ib_atomic_bw"})
dat("plot-pt-bw.dat", bws,
    [lambda s, t=t, m=m: (P, t, m, s, "bw")
     for t in ("ib_write_bw", "ib_read_bw", "ib_send_bw")
     for m in ("pinned", "odp-warm")])
lats = sorted({k[3] for k in vals if k[0] == P and k[4] == "lat_min"})
dat("plot-pt-lat.dat", lats,
    [lambda s, t=t, m=m: (P, t, m, s, "lat_min")
     for t in ("ib_write_lat", "ib_read_lat")
     for m in ("pinned", "odp-warm")])
regs = sorted({k[3] for k in vals if k[:2] == (M, "reg")
               and k[2] in ("pinned", "odp")})
dat("plot-reg.dat", regs,
    [lambda s, m=m: (M, "reg", m, s, "reg_time") for m in ("pinned", "odp")])
sts = sorted({k[3] for k in vals if k[1].startswith("stream_")
              and "numabal" not in k[1]})
dat("plot-stream.dat", sts,
    [lambda s, o=o, m=m: (M, f"stream_{o}", m, s, "bw")
     for o in ("write", "read", "send")
     for m in ("pinned", "odp-warm", "odp-cold")])
print(f"report: {len(order)} series, {sum(len(v) for v in vals.values())} "
      f"measurements -> {args.out}/results.md, bench.csv")
