#!/usr/bin/env python3
"""How long does ``topobench history`` take over 1,000 and 10,000 runs?

Synthetic datasets are written with tests/dataset.py's ``write_run`` (the product's writer):
every run holds one trial (two metrics, eight rounds, samples stored) of one of ``--configs``
configurations, one run per configuration and commit, so 1,000 runs over 20 configurations
are 40 series of 50 points (10,000 runs: of 500 points). A few series step down 10% two thirds
of the way, so candidates are confirmed on raw rounds as in real use. The shape "long" puts
all runs in one configuration instead: 2 series of 1,000 or 10,000 points.

Each ``topobench history --format json`` is a fresh process, timed three ways: cold (no history
index: every run's files read), warm (the index current) and after one new run (the index
reads that run). The table gives wall and CPU seconds (user + system: what a busy machine does
not inflate), the median of ``--samples`` warm and incremental calls.
Target (issue 21): 10,000 runs in under 2 s.

Run:  python benchmarks/history_speed.py [--sizes 1000,10000] [--configs 20] [--samples 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
from _common import REPO, TOPOBENCH, note, print_table

sys.path.insert(0, str(REPO / "tests"))
from dataset import write_run

from orchestrator.store.layout import new_run_id

T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)


def build(root: Path, runs: int, configs: int, seed: int = 0) -> None:
    """Write ``runs`` synthetic runs: one per configuration and commit, a 10% step in every fifth config."""
    rng = np.random.default_rng(seed)
    commits = runs // configs
    for i in range(runs):
        commit, config = divmod(i, configs)
        level = 100.0 * (0.9 if config % 5 == 0 and commit >= 2 * commits // 3 else 1.0)
        started = T0 + timedelta(minutes=i)
        write_run(root, new_run_id(started), started, [
            {"workload": f"bench.{config:03d}", "metric": "ops_per_s", "rounds": level * (1 + rng.normal(0, 0.01, 8))},
            {"workload": f"bench.{config:03d}", "metric": "latency_ms", "unit": "ms", "higher_is_better": False,
             "rounds": 2.0 * (1 + rng.normal(0, 0.01, 8))}], commit=f"{commit:040x}")


def timed(root: Path) -> tuple[float, float]:
    """Return (wall, CPU) seconds of one fresh ``topobench history`` process; raise if it fails.

    CPU (user + system of the process) is what a busy shared machine does not inflate.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([TOPOBENCH, "history", "--results", str(root), "--format", "json"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False, cwd=root)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _median(samples: list[tuple[float, float]]) -> str:
    return "{:.2f} / {:.2f}".format(*(statistics.median(x) for x in zip(*samples)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--configs", type=int, default=20)
    parser.add_argument("--shapes", default="wide,long", help="wide: --configs configurations; long: one")
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="keep (and reuse) the datasets under this folder")
    args = parser.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="tb-history-speed-"))
    rows = []
    try:
        for shape in args.shapes.split(","):
            for size in (int(s) for s in args.sizes.split(",")):
                configs = args.configs if shape == "wide" else 1
                root = base / f"{shape}-{size}"
                if not (root / "runs").is_dir():
                    note(f"writing {size} runs ({shape}) under {root} ...")
                    t0 = time.perf_counter()
                    build(root, size, configs)
                    note(f"  {time.perf_counter() - t0:.0f} s")
                shutil.rmtree(root / "_history", ignore_errors=True)
                cold = timed(root)
                warm = [timed(root) for _ in range(args.samples)]
                incremental = []
                for k in range(args.samples):
                    started = T0 + timedelta(days=400, minutes=k)
                    write_run(root, new_run_id(started), started, [
                        {"workload": "bench.000", "metric": "ops_per_s", "rounds": [100.0] * 8}], commit=f"{k:039x}f")
                    incremental.append(timed(root))
                series = 2 * configs
                rows.append([shape, size, series, size // configs, _median([cold]), _median(warm),
                             _median(incremental)])
                note(f"{shape} {size}: cold {_median([cold])}, warm {_median(warm)} (wall / CPU s)")
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)
    note(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print_table(["shape", "runs", "series", "points/series", "cold wall/CPU s", "warm wall/CPU s",
                 "+1 run wall/CPU s"], rows)


if __name__ == "__main__":
    main()
