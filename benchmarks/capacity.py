#!/usr/bin/env python3
"""Capacity at p99 <= 5 ms of net.http (default handler) and db.sqlite (YCSB A), 1 worker.

Issue 15's benchmark. Each repeat runs `topobench capacity WORKLOAD --slo "p99<=5ms"` in a
fresh results folder (embedded Ray), the two workloads alternating (A B A B ...), and reads
its `capacity` table back. Reported per workload: the capacity of every repeat, their median
and spread (max/min), the bracket, the steps and the search's wall time.

Run:  python benchmarks/capacity.py [--repeats 3] [--slo "p99<=5ms"] [--resolution 5%]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from _common import TOPOBENCH, _read_table, median, note, print_table, si

WORKLOADS = {"net.http": (), "db.sqlite": ("--param", "db.sqlite.workload=A")}


def search(workload: str, slo: str, resolution: str) -> dict:
    """Run one capacity search; return its capacity row with the wall time."""
    results = Path(tempfile.mkdtemp(prefix="topobench-capacity-"))
    cmd = [TOPOBENCH, "capacity", workload, "--slo", slo, "--resolution", resolution, "--results", str(results),
           *WORKLOADS[workload]]
    start = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False,
                          env=dict(os.environ, COLUMNS="200", NO_COLOR="1"))
    wall = time.perf_counter() - start
    try:
        if proc.returncode not in (0, 1):
            raise RuntimeError(f"`{' '.join(cmd)}` exited {proc.returncode}:\n{proc.stdout[-3000:]}")
        (row,) = _read_table(results, "capacity")
    finally:
        shutil.rmtree(results, ignore_errors=True)
    return {**row, "wall_s": wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--slo", default="p99<=5ms")
    ap.add_argument("--resolution", default="5%")
    args = ap.parse_args()
    found: dict[str, list[dict]] = {w: [] for w in WORKLOADS}
    for repeat in range(args.repeats):
        for workload in WORKLOADS:
            note(f"repeat {repeat + 1}/{args.repeats}: {workload}")
            found[workload].append(search(workload, args.slo, args.resolution))
    rows = []
    for workload, runs in found.items():
        caps = [r["capacity_per_s"] for r in runs if r["capacity_per_s"]]
        rows.append([workload, ", ".join(si(c) for c in caps) or "not met", si(median(caps)) if caps else "-",
                     f"{max(caps) / min(caps):.3f}" if caps else "-",
                     ", ".join(f"{si(r['bracket_low_per_s'] or 0)}–{si(r['bracket_high_per_s'] or 0)}" for r in runs),
                     ", ".join(f"{r['latency_at_capacity_ms']:.2f}" if r["latency_at_capacity_ms"] else "-"
                               for r in runs),
                     ", ".join(str(r["steps"]) for r in runs), ", ".join(f"{r['wall_s']:.0f}" for r in runs),
                     "; ".join(sorted({r["limited_by"] or "" for r in runs}))[:120]])
    print(f"capacity at {args.slo}, 1 worker, resolution {args.resolution}, {args.repeats} repeats (A B A B ...)")
    print_table(["workload", "capacity per repeat (/s)", "median", "max/min", "brackets", "p99 at cap (ms)",
                 "steps", "wall (s)", "limited by"], rows)


if __name__ == "__main__":
    main()
