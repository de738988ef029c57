"""Shared helpers of the benchmark scripts: run `topobench`, read its dataset, time a
workload directly in a plain pinned process, and print tables.

Benchmarks are run by hand (never from pytest). Each script measures its two sides
interleaved (A B A B ...) in one invocation so that machine drift hits both sides alike.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# The console script beside this interpreter (a venv's bin/), not a version manager's shim in
# front of it: pyenv's bash shim alone adds ~0.2 s to every start.
_BESIDE = Path(sys.executable).parent / "topobench"
TOPOBENCH = str(_BESIDE) if _BESIDE.exists() else shutil.which("topobench") or "topobench"


# ---------------------------------------------------------------------------------------
# topobench through its CLI
# ---------------------------------------------------------------------------------------


@dataclass
class TopobenchRun:
    """One `topobench run` invocation: its wall-clock start/end and the dataset it wrote."""

    results: Path
    start_ns: int  # time.time_ns() just before the subprocess was started
    end_ns: int  # time.time_ns() just after it exited
    returncode: int
    output: str
    samples: list[dict[str, Any]] = field(default_factory=list)
    trials: list[dict[str, Any]] = field(default_factory=list)

    def values(self, workload: str, metric: str, warmup: bool = False) -> list[float]:
        """Return the sample values of one workload and metric (measured ones by default)."""
        return [s["value"] for s in self.samples
                if s["workload"] == workload and s["metric"] == metric
                and bool(s["warmup"]) == warmup]

    def rows(self, workload: str, metric: str, warmup: bool | None = None) -> list[dict]:
        """Return the sample rows of one workload and metric (warm-up ones too when None)."""
        return [s for s in self.samples
                if s["workload"] == workload and s["metric"] == metric
                and (warmup is None or bool(s["warmup"]) == warmup)]

    def trial(self, workload: str, metric: str) -> dict[str, Any] | None:
        """Return the `trials` row of one workload and metric, or None."""
        for t in self.trials:
            if t.get("workload") == workload and t.get("metric") == metric:
                return t
        return None


def _read_table(folder: Path, table: str) -> list[dict[str, Any]]:
    """Return every row of one table of a results folder, read as `topobench query` reads it."""
    from orchestrator.store.reader import Dataset

    dataset = Dataset(folder)
    try:
        return dataset.rows(f"SELECT * FROM {table}")
    finally:
        dataset.close()


def run_topobench(workloads: Sequence[str], *, workers: int = 1, repetitions: int = 10,
                  min_time: float = 0.2, warmup: int = 1, params: Mapping[str, Any] | None = None,
                  placement: str | None = None, extra: Sequence[str] = (),
                  keep: bool = False, check: bool = True) -> TopobenchRun:
    """Run `topobench run` in a fresh results folder and return its samples and trials.

    Raises RuntimeError (with the command's output tail) when topobench exits non-zero and
    ``check`` is true; with ``check`` false the rows of the trials that did finish are read.
    """
    results = Path(tempfile.mkdtemp(prefix="topobench-bench-"))
    cmd = [TOPOBENCH, "run", *workloads, "--workers", str(workers),
           "--repetitions", str(repetitions), "--min-time", str(min_time),
           "--warmup", str(warmup), "--results", str(results)]
    if placement:
        cmd += ["--placement", placement]
    for key, value in (params or {}).items():
        cmd += ["--param", f"{key}={value}"]
    cmd += list(extra)
    env = dict(os.environ, COLUMNS="200", NO_COLOR="1")
    start = time.time_ns()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=env, check=False)
    end = time.time_ns()
    run = TopobenchRun(results, start, end, proc.returncode, proc.stdout)
    try:
        if proc.returncode != 0 and check:
            raise RuntimeError(f"`{' '.join(cmd)}` exited {proc.returncode}:\n"
                               f"{proc.stdout[-3000:]}")
        run.samples = _read_table(results, "samples")
        run.trials = _read_table(results, "trials")
    finally:
        if not keep:
            shutil.rmtree(results, ignore_errors=True)
    return run


# ---------------------------------------------------------------------------------------
# the same workload timed directly, in a plain process pinned like a worker
# ---------------------------------------------------------------------------------------


def run_direct(workload: str, params: Mapping[str, Any], *, cpus: Sequence[int],
               repetitions: int, min_time: float, warmup: int = 1,
               iterations: int | None = None, threads: int = 0) -> dict[str, Any]:
    """Time ``workload`` in a fresh plain Python process pinned to ``cpus``; no Ray.

    The child does what a topobench worker does, minus Ray: OMP_NUM_THREADS and
    threadpoolctl limited to len(cpus), ``os.sched_setaffinity``, a Ray worker's niceness
    (``RAY_WORKER_NICENESS``), setup with the same
    WorkerContext cache sizes, calibration to ``min_time`` (or ``iterations`` when given,
    e.g. the count topobench calibrated), ``warmup`` warm-up samples, then
    ``repetitions`` samples with the same harness (``workloads.harness.time_run``).
    ``threads`` is the WorkerContext's ``threads`` (``--threads-per-worker``; 0: none).
    Returns {"iterations": n, "samples": [{metric: value, ...}, ...]} where the primary
    metric is ops/elapsed as topobench stores it.
    """
    spec = {"workload": workload, "params": dict(params), "cpus": list(cpus),
            "repetitions": repetitions, "min_time": min_time, "warmup": warmup,
            "iterations": iterations, "threads": threads}
    env = dict(os.environ, OMP_NUM_THREADS=str(max(1, len(cpus))),
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO),
                                                        os.environ.get("PYTHONPATH")])))
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--direct-child",
                           json.dumps(spec)], capture_output=True, text=True, env=env,
                          cwd=str(REPO), check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"direct run of {workload} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


RAY_WORKER_NICENESS = int(os.environ.get("RAY_worker_niceness", "15"))
"""The niceness Ray's raylet gives the worker processes it starts (RayConfig worker_niceness,
15 unless RAY_worker_niceness says otherwise; `ps -o ni` shows it on topobench's workers).
On a busy host a nice-15 process gets a small share of a CPU that a nice-0 one also wants,
so a reference meant to run as a worker does runs at the same niceness."""


def nice_as_worker() -> None:
    """Raise the calling process's niceness to a Ray worker's (never lowers it)."""
    os.nice(max(0, RAY_WORKER_NICENESS - os.nice(0)))


def _direct_child(spec: dict[str, Any]) -> None:
    cpus = tuple(spec["cpus"])
    if cpus:
        os.sched_setaffinity(0, cpus)
    nice_as_worker()
    from threadpoolctl import threadpool_limits

    from cluster.topology import read_topology
    from workloads.base import WorkerContext
    from workloads.harness import calibrate, time_run
    from workloads.registry import get_workload

    limits = threadpool_limits(limits=max(1, len(cpus)))  # as the worker actor does
    cls = get_workload(spec["workload"])
    wl = cls(spec["params"])
    topo = read_topology("/")
    ctx = WorkerContext(cpus=tuple(sorted(os.sched_getaffinity(0))),
                        cache_sizes_bytes=topo.cache_sizes_bytes(cpus or topo.usable_cpus),
                        threads=spec.get("threads", 0))
    wl.setup(ctx)
    try:
        n = spec["iterations"] or calibrate(wl.run, spec["min_time"])
        for _ in range(spec["warmup"]):
            time_run(wl.run, n)
        runs = [time_run(wl.run, n) for _ in range(spec["repetitions"])]
    finally:
        wl.teardown()
    limits.restore_original_limits()
    primary = cls.throughput.name
    samples = []
    for r in runs:
        row = {primary: r.measurement.ops / r.elapsed_ns * 1e9}
        row.update({k: float(v) for k, v in r.measurement.metrics.items()})
        row["start_ns"] = r.start_ns
        samples.append(row)
    print(json.dumps({"iterations": n, "cpus": list(os.sched_getaffinity(0)),
                      "samples": samples}))


# ---------------------------------------------------------------------------------------
# statistics and printing
# ---------------------------------------------------------------------------------------


def median(values: Iterable[float]) -> float:
    """Return the median, NaN for no values."""
    values = [v for v in values if not math.isnan(v)]
    return statistics.median(values) if values else float("nan")


def ratio(a: float, b: float) -> float:
    """Return a/b, NaN when b is zero or NaN."""
    return a / b if b and not math.isnan(b) and not math.isnan(a) else float("nan")


def si(value: float, unit: str = "") -> str:
    """Format with an SI prefix: 44.7 M, 12.3 G."""
    if math.isnan(value):
        return "n/a"
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.4g} {prefix}{unit}".rstrip()
    return f"{value:.4g} {unit}".rstrip()


def pct(r: float) -> str:
    """Format a ratio as a percentage."""
    return "n/a" if math.isnan(r) else f"{100 * r:.1f}%"


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print a plain fixed-width table."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    line = "  ".join("-" * w for w in widths)
    for i, row in enumerate(cells):
        print("  ".join(c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in
                        enumerate(zip(row, widths))))
        if i == 0:
            print(line)
    sys.stdout.flush()


def note(text: str) -> None:
    """Print a progress line to stderr (the table goes to stdout)."""
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "--direct-child":
    _direct_child(json.loads(sys.argv[2]))
