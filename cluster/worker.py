"""The worker actor: pinned to its CPUs, runs one workload per trial, returns Arrow samples.

Lifecycle per trial (driven by ``orchestrator/runner.py``):
``prepare(spec)`` sets up the workload, calibrates (the calibration runs double as the
first warm-up) and takes ``warmup`` more samples; ``measure(start_at_ns, repetitions)``
waits for the shared wall-clock instant, takes the samples and tears the workload down.
For ``--until-stable`` the runner calls ``measure(..., finish=False)`` once per batch and
then ``finish()``. A resource monitor (CPU%, RSS) runs from the first measured sample to
the teardown; ``finish()`` returns its rows (also after a ``measure`` that finished).
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
from workloads.harness import TimedRun, calibrate, sleep_until, time_run
from workloads.registry import get_workload, split_params


@dataclass(frozen=True, slots=True)
class TrialSpec:
    """What a worker needs to run its part of a trial (plain data, sent through Ray)."""

    workload: str
    params: dict[str, Any]
    worker_rank: int
    workers: int
    min_time_s: float
    warmup: int
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
        self._blas_limits = threadpool_limits(limits=threads)  # kept for the actor's life
        self._workload = None
        self._n = 1
        self._next_repetition = 0
        self._monitor: ResourceMonitor | None = None
        self._resources: pa.Table | None = None

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

    def prepare(self, spec: TrialSpec) -> pa.Table:
        """Set up the workload, calibrate and warm up; return the warm-up samples."""
        self._finish()
        cls = get_workload(spec.workload)
        self._workload = cls(split_params(cls, spec.params, spec.work_share))
        self._monitor = ResourceMonitor(spec.resource_interval_s, spec.record_node_cpus)
        self._resources = None
        self._next_repetition = 0
        ctx = WorkerContext(
            worker_rank=spec.worker_rank,
            workers=spec.workers,
            cpus=self._cpus,
            scratch_dir=Path(spec.scratch_dir) if spec.scratch_dir else None,
            cache_sizes_bytes=dict(spec.cache_sizes_bytes),
            work_share=spec.work_share,
            node_ip=ray.util.get_node_ip_address(),
            service_endpoint=spec.service_endpoint,
        )
        try:
            self._workload.setup(ctx)
            self._n = calibrate(self._workload.run, spec.min_time_s)
            warm = [time_run(self._workload.run, self._n) for _ in range(spec.warmup)]
        except BaseException:
            self._finish()
            raise
        return _samples_table(warm, warmup=True, first_repetition=-len(warm))

    def measure(self, start_at_ns: int, repetitions: int, finish: bool = True) -> pa.Table:
        """Wait for the shared start instant (ns since the epoch) and take ``repetitions`` samples.

        Repetition numbers continue across calls. With ``finish`` (the default) the workload
        is torn down afterwards; without it, more ``measure`` calls may follow and ``finish()``
        ends the trial. Any error tears down.
        """
        first = self._next_repetition
        try:
            sleep_until(start_at_ns)
            if self._monitor is not None:
                self._monitor.start()
            run, n = self._workload.run, self._n
            runs = [time_run(run, n) for _ in range(repetitions)]
        except BaseException:
            self._finish()
            raise
        self._next_repetition = first + len(runs)
        if finish:
            self._finish()
        return _samples_table(runs, warmup=False, first_repetition=first)

    def finish(self) -> pa.Table:
        """Tear the workload down and return the trial's resource rows (``RESOURCE_COLUMNS``)."""
        self._finish()
        table, self._resources = self._resources, None
        return table if table is not None else ResourceMonitor().stop()

    def _finish(self) -> None:
        if self._monitor is not None:
            monitor, self._monitor = self._monitor, None
            self._resources = monitor.stop()
        self._teardown()

    def _teardown(self) -> None:
        if self._workload is not None:
            workload, self._workload = self._workload, None
            workload.teardown()
