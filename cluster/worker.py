"""The worker actor: pinned to its CPUs, runs one workload per trial, returns Arrow samples.

Lifecycle per trial (driven by ``orchestrator/runner.py``):
``prepare(spec)`` sets up the workload and calibrates (those runs warm it up too), and
returns its iteration count; the driver gives every worker the largest one. Then, once
per sample, ``measure(start_at_ns, 1, finish=False, iterations)`` waits for the instant
the driver chose for all workers and takes the sample (warm-up rounds first), so sample r
of every worker runs together. ``finish()`` tears down and returns the resource rows
(CPU%, RSS) sampled from the first measured sample on.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import ray
from threadpoolctl import threadpool_limits

from cluster.affinity import pin_process
from cluster.resource_monitor import DEFAULT_INTERVAL_S, ResourceMonitor
from workloads.base import WorkerContext
from workloads.harness import TimedRun, calibrate_timed, sleep_until, time_run
from workloads.params import split_params
from workloads.registry import get_workload


@dataclass(frozen=True, slots=True)
class TrialSpec:
    """What a worker needs to run its part of a trial (plain data, sent through Ray)."""

    workload: str
    params: dict[str, Any]
    worker_rank: int
    workers: int
    min_time_s: float
    work_share: float = 1.0
    scratch_dir: str | None = None
    cache_sizes_bytes: dict[str, int] = field(default_factory=dict)
    resource_interval_s: float = DEFAULT_INTERVAL_S
    record_node_cpus: bool = False  # this worker records every CPU of its node (one per node)
    service_endpoint: dict[str, Any] | None = None  # the trial's shared server, when on another node


def _samples_table(runs: list[TimedRun], warmup: bool, first_repetition: int) -> pa.Table:
    """Return one row per timed run: timing columns plus one float64 column per extra metric."""
    columns: dict[str, list] = {
        "repetition": [first_repetition + i for i in range(len(runs))],
        "warmup": [warmup] * len(runs),
        "iterations": [r.iterations for r in runs],
        "ops": [r.measurement.ops for r in runs],
        "elapsed_ns": [r.elapsed_ns for r in runs],
        "start_ns": [r.start_ns for r in runs],
        "end_ns": [r.end_ns for r in runs],
    }
    names = sorted({k for r in runs for k in r.measurement.metrics})
    for name in names:
        columns[f"metric:{name}"] = [float(r.measurement.metrics.get(name, float("nan"))) for r in runs]
    return pa.table(columns)


@ray.remote
class Worker:
    """A Ray actor pinned to ``cpus`` (all its threads) with BLAS/OpenMP limited to ``threads``.

    Args:
        cpus: CPUs to pin to; empty means unpinned (placement ``none``).
        threads: BLAS/OpenMP thread count (threadpoolctl and ``OMP_NUM_THREADS``).

    Raises (at creation, surfacing on the first call as ``RayActorError``):
        RuntimeError: the affinity read back differs from ``cpus``.
    """

    def __init__(self, cpus: tuple[int, ...], threads: int) -> None:
        os.environ["OMP_NUM_THREADS"] = str(threads)
        if cpus:
            actual = pin_process(tuple(cpus))
            if actual != tuple(sorted(cpus)):
                raise RuntimeError(
                    f"worker pinned to CPUs {list(cpus)} but reads back {list(actual)}; "
                    "the node's cgroup or another tool changed the affinity"
                )
        self._cpus = tuple(sorted(os.sched_getaffinity(0)))
        self._threads = threads
        self._blas_limits = threadpool_limits(limits=threads)  # kept for the actor's life
        self._workload = None
        self._n = 1
        self._next_repetition = 0
        self._monitor = ResourceMonitor()
        self._resource_parts: list[pa.Table] = []

    def identity(self) -> dict[str, Any]:
        """Return where this worker runs: node id, hostname, ip, pid and read-back CPUs."""
        ctx = ray.get_runtime_context()
        return {
            "node_id": ctx.get_node_id(),
            "hostname": socket.gethostname(),
            "ip": ray.util.get_node_ip_address(),
            "pid": os.getpid(),
            "cpus": list(self._cpus),
        }

    def prepare(self, spec: TrialSpec) -> dict[str, int]:
        """Set up the workload and calibrate; return {"iterations", "sample_ns"} of this worker.

        The driver then gives every worker of the trial one common iteration count and one
        schedule (``measure``), so their samples run together.
        """
        self._finish()
        cls = get_workload(spec.workload)
        self._workload = cls(split_params(cls, spec.params, spec.work_share))
        self._monitor = ResourceMonitor(spec.resource_interval_s, spec.record_node_cpus)
        self._resource_parts = []
        self._next_repetition = 0
        ctx = WorkerContext(
            worker_rank=spec.worker_rank,
            workers=spec.workers,
            cpus=self._cpus,
            scratch_dir=Path(spec.scratch_dir) if spec.scratch_dir else None,
            cache_sizes_bytes=dict(spec.cache_sizes_bytes),
            work_share=spec.work_share,
            node_ip=ray.util.get_node_ip_address(),
            threads=self._threads,
            service_endpoint=spec.service_endpoint,
        )
        try:
            self._workload.setup(ctx)
            self._n, sample_ns = calibrate_timed(self._workload.run, spec.min_time_s)
        except BaseException:
            self._finish()
            raise
        return {"iterations": self._n, "sample_ns": sample_ns}

    def measure(self, start_at_ns: int, repetitions: int, finish: bool = True, iterations: int = 0,
                warmup: int = 0, first_warmup: int = 0) -> pa.Table:
        """Wait for the shared start instant, then take ``warmup`` and ``repetitions`` samples.

        ``start_at_ns`` is wall-clock ns since the epoch, chosen by the driver for every
        worker of the trial; ``iterations`` is the trial's common count (0: this worker's
        own calibrated count). Measured repetitions are numbered on from the previous call;
        warm-up rows are flagged and numbered from ``first_warmup`` (the driver numbers a
        trial's warm-ups -W..-1 in the order they run). CPU% and RSS are sampled during the
        measured samples only, never in the idle gaps between rounds. With ``finish`` the
        workload is torn down afterwards; otherwise more calls may follow and ``finish()``
        ends the trial. Errors tear down.
        """
        first = self._next_repetition
        n = iterations or self._n
        try:
            if self._workload is None:
                raise RuntimeError("measure() called before prepare()")
            run = self._workload.run
            sleep_until(start_at_ns)
            warm = [time_run(run, n) for _ in range(warmup)]
            runs = []
            if repetitions:
                self._monitor.start()
                runs = [time_run(run, n) for _ in range(repetitions)]
                self._resource_parts.append(self._monitor.stop())
        except BaseException:
            self._finish()
            raise
        self._next_repetition = first + repetitions
        if finish:
            self._finish()
        tables = [_samples_table(warm, warmup=True, first_repetition=first_warmup)] if warm else []
        return pa.concat_tables([*tables, _samples_table(runs, warmup=False, first_repetition=first)],
                                promote_options="default")

    def finish(self) -> pa.Table:
        """Tear the workload down and return the trial's resource rows (``RESOURCE_COLUMNS``)."""
        self._finish()
        parts, self._resource_parts = self._resource_parts, []
        return pa.concat_tables(parts) if parts else ResourceMonitor().stop()

    def _finish(self) -> None:
        if self._monitor is not None and self._monitor.running:  # an error mid-sample
            self._resource_parts.append(self._monitor.stop())
        self._teardown()

    def _teardown(self) -> None:
        if self._workload is not None:
            workload, self._workload = self._workload, None
            workload.teardown()
