#!/usr/bin/env python3
"""Load references for net.http and db.sqlite: wrk side by side, stalls, the generator, Little.

Drives the workloads directly in this process (Workload class: setup, run, teardown; no
`topobench run`). Each round runs every side once, in turn (A B A B ...); figures are
medians over rounds (throughput) and percentiles of the histograms merged over all rounds.

  (a) net.http closed loop vs `wrk -t1 -cC --latency` against the same server (net.http's
      HttpServer in a separate process pinned to CPU 0; clients on CPU 1 when there is one):
      requests/s, p50 and p99. wrk 4 prints latency after its stats_correct (coordinated-
      omission corrected), so net.http's raw and corrected figures are both shown.
  (b) net.http's open-loop generator, before (asyncio.sleep to each due time, the old code)
      and after (sleep to 1 ms before, then spin), on the idle server: latency from the
      intended send time, send lag, and the true round trip (closed loop, 1 connection).
  (c) net.http with an injected stall (stall_ms every stall_every_s) vs none: open loop at
      --rate, p99 from the actual send (uncorrected) vs from the intended time (corrected);
      closed loop, raw vs HdrHistogram-corrected p99 and the coordinated_omission flag.
  (d) db.sqlite YCSB --db-workload closed loop at 1, 2 and 4 connections: transactions/s,
      p50/p99 response time, p99 service time, and throughput x mean response time per sample
      (Little's law: = connections; the median over samples is shown).
  (e) db.sqlite open loop at --db-rate over 2 connections: p50/p99 and send lag.
  (f) net.http saturated (closed loop, 4 connections) by a server with service_ms = 2 and 4,
      in-worker and in a separate process: requests/s against the nominal 1000/service_ms.

Run:  python benchmarks/load_references.py [--rounds 3] [--sample-s 0.5] [--samples 4]
      [--concurrency 8] [--rate 1000] [--stall-ms 20] [--stall-every-s 1]
      [--db-workload A] [--db-records 100000] [--db-rate 2000]
(`apt-get install -y wrk` for part (a); without it that part says so and the rest run.)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from _common import REPO, median, note, print_table, si

from workloads import WorkerContext, network
from workloads.database import SQLiteYCSB
from workloads.harness import calibrate, time_run
from workloads.histogram import LatencyHistogram
from workloads.network import HttpLoad

SERVER_CHILD = r"""
import json, os, sys
spec = json.loads(sys.argv[1])
sys.path.insert(0, spec["repo"])
if spec["cpus"]:
    os.sched_setaffinity(0, spec["cpus"])
from workloads.network import server_for
server = server_for(spec["params"], "127.0.0.1")
server.start()
print(json.dumps({"port": server.port}), flush=True)
sys.stdin.read()  # serve until the parent closes our stdin
server.stop()
"""


class Server:
    """net.http's server in a separate pinned process, for as long as the ``with`` lasts."""

    def __init__(self, params: Mapping[str, Any], cpus: list[int]) -> None:
        self._spec = {"repo": str(REPO), "cpus": cpus, "params": dict(params)}

    def __enter__(self) -> dict[str, Any]:
        self._proc = subprocess.Popen([sys.executable, "-c", SERVER_CHILD, json.dumps(self._spec)],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError("net.http server child did not start")
        return {"host": "127.0.0.1", "port": json.loads(line)["port"]}

    def __exit__(self, *exc: object) -> None:
        self._proc.stdin.close()
        try:
            self._proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


def http_params(**given: Any) -> dict[str, Any]:
    """Return HttpLoad's full validated parameters (the server child reads its knobs)."""
    return HttpLoad(given).params


def drive(workload: Any, ctx: WorkerContext, sample_s: float, samples: int,
          n: int | None = None) -> dict[str, Any]:
    """Set up, run ``samples`` samples of about ``sample_s`` (or ``n`` ops), tear down."""
    workload.setup(ctx)
    try:
        n = n or calibrate(workload.run, sample_s)
        runs = [time_run(workload.run, n) for _ in range(samples)]
    finally:
        workload.teardown()
    ops = sum(r.measurement.ops for r in runs)
    elapsed = sum(r.elapsed_ns for r in runs) / 1e9
    names = runs[0].measurement.histograms
    little = [r.measurement.ops / (r.elapsed_ns / 1e9)
              * (r.measurement.histograms["latency"].mean_ns or 0.0) / 1e9 for r in runs]
    return {"throughput": ops / elapsed, "little": little,
            "flags": sorted({f for r in runs for f in r.measurement.flags}),
            "hist": {k: LatencyHistogram.merged(r.measurement.histograms[k] for r in runs)
                     for k in names}}


def ms(h: LatencyHistogram, q: float) -> str:
    """Format percentile ``q`` of ``h`` in ms ("n/a" when too few values)."""
    v = h.percentile_ns(q)
    return "n/a" if v is None else f"{v / 1e6:.3f} ms"


def merge_into(acc: dict[str, Any], got: dict[str, Any]) -> None:
    """Accumulate one round's result: throughputs listed, histograms merged, flags joined."""
    acc.setdefault("throughput", []).append(got["throughput"])
    acc.setdefault("little", []).extend(got["little"])
    acc.setdefault("flags", set()).update(got["flags"])
    for k, h in got["hist"].items():
        acc.setdefault("hist", {}).setdefault(k, LatencyHistogram()).merge(h)


# --- (a) wrk ---------------------------------------------------------------------------

WRK_RATE = re.compile(r"Requests/sec:\s*([0-9.]+)")
WRK_PCT = re.compile(r"^\s*(50|99)%\s+([0-9.]+)(us|ms|s)\s*$", re.MULTILINE)


def run_wrk(endpoint: Mapping[str, Any], concurrency: int, seconds: float,
            cpus: list[int]) -> dict[str, float]:
    """Run wrk once; return requests/s and its (corrected) p50/p99 in ms."""
    cmd = ["wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s", "--latency",
           f"http://{endpoint['host']}:{endpoint['port']}/"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False,
                          preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)
    rate = WRK_RATE.search(proc.stdout)
    if proc.returncode != 0 or not rate:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stdout[-300:]}{proc.stderr}")
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}
    pcts = {f"p{q}": float(v) * scale[u] for q, v, u in WRK_PCT.findall(proc.stdout)}
    return {"rps": float(rate.group(1)), **pcts}


def part_a(args: argparse.Namespace, cpus: tuple[list[int], list[int]]) -> None:
    """net.http closed loop vs wrk on the same server."""
    server_cpus, client_cpus = cpus
    params = http_params(concurrency=args.concurrency, body_bytes=args.body_bytes,
                         server_node="shared")
    if shutil.which("wrk") is None:
        print("(a) wrk is not installed (apt-get install -y wrk): skipped")
        return
    ours: dict[str, Any] = {}
    theirs: list[dict[str, float]] = []
    with Server(params, server_cpus) as endpoint:
        for rnd in range(args.rounds):
            note(f"(a) round {rnd + 1}: net.http closed loop, then wrk -c{args.concurrency}")
            merge_into(ours, drive(HttpLoad(params), WorkerContext(service_endpoint=endpoint),
                                   args.sample_s, args.samples))
            theirs.append(run_wrk(endpoint, args.concurrency, args.sample_s * args.samples,
                                  client_cpus))
    h = ours["hist"]
    print(f"\n(a) closed loop, {args.concurrency} connections, same server "
          f"(server CPUs {server_cpus or 'any'}, client CPUs {client_cpus or 'any'})")
    print_table(["", "requests/s", "p50", "p99"], [
        ["net.http, raw", si(median(ours["throughput"]), "req/s"), ms(h["latency"], 50),
         ms(h["latency"], 99)],
        ["net.http, corrected", "", ms(h["latency_corrected"], 50),
         ms(h["latency_corrected"], 99)],
        ["wrk (prints corrected)", si(median(t["rps"] for t in theirs), "req/s"),
         f"{median(t.get('p50', float('nan')) for t in theirs):.3f} ms",
         f"{median(t.get('p99', float('nan')) for t in theirs):.3f} ms"],
    ])


# --- (b) the open-loop generator before and after ---------------------------------------

async def old_wait_until(due_ns: int, clock: Any = time.perf_counter_ns) -> None:
    """The generator before: one asyncio.sleep to the due time (epoll rounds it up to ms)."""
    wait = due_ns - clock()
    if wait > 0:
        await asyncio.sleep(wait / 1e9)


def part_b(args: argparse.Namespace, cpus: tuple[list[int], list[int]]) -> None:
    """Open loop on an idle server: old generator vs sleep-then-spin; and the true round trip."""
    params = http_params(concurrency=args.concurrency, body_bytes=args.body_bytes,
                         rate=args.rate, server_node="shared")
    rtt_params = http_params(concurrency=1, body_bytes=args.body_bytes, server_node="shared")
    n = int(args.rate * args.sample_s)
    sides: dict[str, dict[str, Any]] = {"before": {}, "after": {}, "rtt": {}}
    new_wait = network.wait_until
    with Server(params, cpus[0]) as endpoint:
        ctx = WorkerContext(service_endpoint=endpoint)
        for rnd in range(args.rounds):
            note(f"(b) round {rnd + 1}: old generator, new generator, round trip")
            network.wait_until = old_wait_until
            try:
                merge_into(sides["before"], drive(HttpLoad(params), ctx, 0, args.samples, n))
            finally:
                network.wait_until = new_wait
            merge_into(sides["after"], drive(HttpLoad(params), ctx, 0, args.samples, n))
            merge_into(sides["rtt"], drive(HttpLoad(rtt_params), ctx, args.sample_s,
                                           args.samples))
    rtt = sides["rtt"]["hist"]["latency_uncorrected"]
    print(f"\n(b) open loop at {args.rate:g} requests/s, {args.concurrency} connections, idle "
          f"server; true round trip (closed loop, 1 connection): p50 {ms(rtt, 50)}, "
          f"p99 {ms(rtt, 99)}")
    rows = []
    for label in ("before", "after"):
        h = sides[label]["hist"]
        rows.append([f"{label}: " + ("asyncio.sleep" if label == "before" else "sleep + spin"),
                     ms(h["latency"], 50), ms(h["latency"], 99), ms(h["send_lag"], 50),
                     ms(h["send_lag"], 99)])
    print_table(["generator", "latency p50", "latency p99", "send lag p50", "send lag p99"],
                rows)


# --- (c) stalls -------------------------------------------------------------------------

def part_c(args: argparse.Namespace, cpus: tuple[list[int], list[int]]) -> None:
    """Open and closed loop with and without an injected stall."""
    stall = {"stall_ms": args.stall_ms, "stall_every_s": args.stall_every_s}
    cases = {("open", False): {"rate": args.rate}, ("open", True): {"rate": args.rate, **stall},
             ("closed", False): {}, ("closed", True): dict(stall)}
    acc: dict[tuple[str, bool], dict[str, Any]] = {k: {} for k in cases}
    for rnd in range(args.rounds):
        for key, extra in cases.items():
            note(f"(c) round {rnd + 1}: {key[0]} loop, stall {key[1]}")
            params = http_params(concurrency=args.concurrency, body_bytes=args.body_bytes,
                                 server_node="shared", **extra)
            with Server(params, cpus[0]) as endpoint:
                n = int(args.rate * args.sample_s) if key[0] == "open" else None
                merge_into(acc[key], drive(HttpLoad(params),
                                           WorkerContext(service_endpoint=endpoint),
                                           args.sample_s, args.samples, n))
    print(f"\n(c) injected stall of {args.stall_ms:g} ms every {args.stall_every_s:g} s, "
          f"{args.concurrency} connections (open loop at {args.rate:g} requests/s)")
    rows = []
    for (mode, stalled), a in acc.items():
        h = a["hist"]
        uncorrected = h["latency_uncorrected"] if mode == "open" else h["latency"]
        rows.append([f"{mode} loop, {'stall' if stalled else 'no stall'}",
                     si(median(a["throughput"]), "req/s"), ms(uncorrected, 99),
                     ms(h["latency_corrected"], 99), ",".join(sorted(a["flags"])) or "-"])
    print_table(["", "requests/s", "p99 uncorrected", "p99 corrected", "flags"], rows)


# --- (f) known capacity -------------------------------------------------------------------

def part_f(args: argparse.Namespace, cpus: tuple[list[int], list[int]]) -> None:
    """Saturated throughput with service_ms = 2 and 4 vs the nominal 1000/service_ms."""
    acc: dict[tuple[float, str], dict[str, Any]] = {}
    for rnd in range(args.rounds):
        for service in (2.0, 4.0):
            params = http_params(concurrency=4, body_bytes=args.body_bytes, service_ms=service)
            note(f"(f) round {rnd + 1}: service_ms={service:g}, in-worker and separate server")
            merge_into(acc.setdefault((service, "in-worker"), {}),
                       drive(HttpLoad(params), WorkerContext(), args.sample_s, args.samples))
            with Server(params, cpus[0]) as endpoint:
                merge_into(acc.setdefault((service, "separate process"), {}),
                           drive(HttpLoad({**params, "server_node": "shared"}),
                                 WorkerContext(service_endpoint=endpoint), args.sample_s,
                                 args.samples))
    print("\n(f) closed loop, 4 connections, against a server of known capacity")
    print_table(["service_ms, server", "requests/s", "nominal", "ratio", "latency p50"],
                [[f"{s:g} ms, {where}", si(median(a["throughput"]), "req/s"),
                  f"{1000 / s:g} req/s", f"{median(a['throughput']) * s / 1000:.3f}",
                  ms(a["hist"]["latency"], 50)] for (s, where), a in acc.items()])


# --- (d), (e) db.sqlite -------------------------------------------------------------------

def part_d(args: argparse.Namespace) -> None:
    """db.sqlite closed loop at 1, 2, 4 connections; open loop at --db-rate."""
    folder = tempfile.mkdtemp(prefix="topobench-loadref-")
    try:
        base = {"workload": args.db_workload, "record_count": args.db_records}
        sides = {f"closed, {c} connection{'s' * (c > 1)}": {**base, "connections": c}
                 for c in (1, 2, 4)}
        sides[f"open at {args.db_rate:g} tx/s, 2 connections"] = {**base, "connections": 2,
                                                                   "rate": args.db_rate}
        acc: dict[str, dict[str, Any]] = {k: {} for k in sides}
        ctx = WorkerContext(scratch_dir=Path(folder))
        for rnd in range(args.rounds):
            for label, params in sides.items():
                note(f"(d) round {rnd + 1}: db.sqlite {label}")
                n = int(args.db_rate * args.sample_s) if "rate" in params else None
                merge_into(acc[label], drive(SQLiteYCSB(params), ctx, args.sample_s,
                                             args.samples, n))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"\n(d)/(e) db.sqlite YCSB {args.db_workload}, {args.db_records} rows")
    rows = []
    for label, a in acc.items():
        h = a["hist"]
        rows.append([label, si(median(a["throughput"]), "tx/s"), ms(h["latency"], 50),
                     ms(h["latency"], 99), ms(h["service_time"], 99), ms(h["send_lag"], 99),
                     f"{median(a['little']):.2f}"])
    print_table(["", "throughput", "p50", "p99", "service p99", "send lag p99",
                 "X x mean W (median/sample)"], rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sample-s", type=float, default=0.5, help="length of one sample")
    ap.add_argument("--samples", type=int, default=4, help="samples per side and round")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--body-bytes", type=int, default=1024)
    ap.add_argument("--rate", type=float, default=1000.0, help="net.http open-loop rate")
    ap.add_argument("--stall-ms", type=float, default=20.0)
    ap.add_argument("--stall-every-s", type=float, default=1.0)
    ap.add_argument("--db-workload", default="A")
    ap.add_argument("--db-records", type=int, default=100_000)
    ap.add_argument("--db-rate", type=float, default=2000.0)
    ap.add_argument("--parts", default="abcdf", help="which parts to run, e.g. 'ad'")
    args = ap.parse_args()
    usable = sorted(os.sched_getaffinity(0))
    cpus = ([usable[0]], usable[1:]) if len(usable) > 1 else ([], [])
    if cpus[1]:
        os.sched_setaffinity(0, cpus[1])  # this process is the client side
    for part, fn in (("a", part_a), ("b", part_b), ("c", part_c), ("f", part_f)):
        if part in args.parts:
            fn(args, cpus)
    if "d" in args.parts:
        part_d(args)


if __name__ == "__main__":
    main()
