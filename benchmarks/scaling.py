"""Benchmark topobench's sweeps: cpu.sqrt_mod weak scaling over 1 and 2 workers, and per-trial overhead.

Runs on an embedded Ray with this machine's usable CPUs (results go to a temp folder):

1. Weak scaling: a sweep of cpu.sqrt_mod over workers_per_node = [1, 2] (compact placement),
   efficiency at 2 workers (target >= 0.90).
2. Orchestration overhead: a 20-trial sweep (cpu.sqrt_mod, 20 parameter values, 1 worker,
   warm actor reused); per trial, the wall time between consecutive trial ends minus the time
   inside the workload (first measured sample start to last sample end, from the samples'
   start/end ns; setup and calibration, which also run the workload, count as overhead here).
   Median per-trial overhead (target < 0.5 s).

Usage: python benchmarks/scaling.py
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.pop("RAY_ADDRESS", None)

import contextlib

from cluster.connection import ray_session
from orchestrator.pipeline.jobs import run_sweep
from orchestrator.pipeline.sweep_file import parse_sweep
from orchestrator.store.reader import Dataset


@contextlib.contextmanager
def quiet():
    """Send the sweep's own tables to /dev/null (stdout), keeping this script's lines."""
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        yield


def weak_scaling(results: Path) -> float:
    """Return the efficiency at 2 workers of cpu.sqrt_mod weak scaling."""
    spec = parse_sweep({"workers_per_node": [1, 2], "repetitions": 10, "min_time": 0.2, "warmup": 1,
                        "mode": "weak", "workloads": {"cpu.sqrt_mod": {}}})
    with quiet():
        analyses = run_sweep(spec, None, results).analyses
    (a,) = analyses
    for r in a.rows:
        print(f"  N={r.n}: {r.throughput_median / 1e6:8.1f} M element ops/s  "
              f"(95% CI {r.throughput_ci_low / 1e6:.1f}-{r.throughput_ci_high / 1e6:.1f})  "
              f"speedup {r.speedup:.2f}  efficiency {r.efficiency:.3f}")
    return a.rows[-1].efficiency


def overhead(results: Path) -> list[float]:
    """Return per-trial orchestration overhead, seconds, of a 20-trial sweep."""
    spec = parse_sweep({"repetitions": 3, "min_time": 0.05, "warmup": 0,
                        "workloads": {"cpu.sqrt_mod": {"elements": [4096 + 64 * i for i in range(20)]}}})
    ends: list[int] = []
    started = time.time_ns()
    with quiet():
        session = run_sweep(spec, None, results,
                            on_trial=lambda i, t, r: ends.append(time.time_ns()) if r is not None else None).session
    inside = {r["trial_id"]: r["span"] for r in Dataset(results).rows(
        "SELECT trial_id, max(end_ns) - min(start_ns) AS span FROM samples WHERE run_id = ? GROUP BY trial_id",
        [session.outcome.run_id])}
    out = []
    previous = started
    for record, end in zip(session.outcome.records, ends):
        out.append(((end - previous) - inside[record.trial.trial_id]) / 1e9)
        previous = end
    return out


def main() -> None:
    """Run both measurements and print their figures."""
    cpus = len(os.sched_getaffinity(0))
    print(f"topobench scaling benchmark: {cpus} usable CPUs, embedded Ray")
    with tempfile.TemporaryDirectory() as tmp, ray_session(None, num_cpus=cpus):
        print("weak scaling, cpu.sqrt_mod (default 16384 elements), compact, 1 and 2 workers:")
        eff = weak_scaling(Path(tmp) / "weak")
        print(f"  efficiency at 2 workers: {eff:.3f} (target >= 0.90)")
        per_trial = overhead(Path(tmp) / "overhead")
        print(f"orchestration overhead, 20-trial sweep (1 warm worker): median {statistics.median(per_trial):.3f} s"
              f" per trial (min {min(per_trial):.3f}, max {max(per_trial):.3f}; first trial includes actor "
              "start; target < 0.5 s)")


if __name__ == "__main__":
    main()
