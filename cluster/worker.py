"""The worker actor: pinned to its CPUs, runs one workload per trial, returns Arrow samples.

Lifecycle per trial (driven by its node's agent, ``orchestrator/pipeline/node_agent.py``):
``prepare(spec)`` sets up the workload and calibrates (those runs warm it up too) and returns
its iteration count and what a sample of it took; the driver gives every worker the largest one. Then, once per round,
``sample(start_at_ns, iterations, repetition, warmup)`` waits for the round's instant, the
same for all workers, and takes one sample, so sample r of every worker runs together. ``finish()`` tears down and returns the
resource rows (CPU% over each measured sample, RSS) and the CPUs' mean busy shares.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

import pyarrow as pa
import ray
from threadpoolctl import threadpool_limits

from cluster.affinity import pin_process
from cluster.cpu_lock import CpuLock, Holder, held_by
from cluster.messages import TrialSpec
from cluster.resource_monitor import ResourceMonitor
from workloads.base import WorkerContext
from workloads.harness import TimedRun, calibration, sleep_until, time_run
from workloads.params import split_params
from workloads.registry import get_workload


def sample_row(run: TimedRun, repetition: int, warmup: bool, called_ns: int = 0) -> pa.Table:
    """Return one sample as a one-row wide table: timing columns, flags, one column per extra metric.

    ``called_ns`` is when the worker began the sample's call (its node's clock): for a batch's
    first round, when the call arrived; for a later one, when the sample before it ended. After
    the start instant, the round started late here (``pipeline.rounds.window_held``).
    """
    columns: dict[str, Any] = {
        "repetition": [repetition], "warmup": [warmup], "iterations": [run.iterations],
        "ops": [run.measurement.ops], "elapsed_ns": [run.elapsed_ns], "start_ns": [run.start_ns],
        "end_ns": [run.end_ns], "called_ns": [called_ns],
        "flags": pa.array([sorted(run.measurement.flags)], pa.list_(pa.string())),
    }
    for name, value in sorted(run.measurement.metrics.items()):
        columns[f"metric:{name}"] = [float(value)]
    for name, histogram in sorted(run.measurement.histograms.items()):
        columns[f"hist:{name}"] = pa.array([histogram.encode()], pa.binary())
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
        self._pinned = bool(cpus)
        self._workload = None
        self._monitor = ResourceMonitor()
        self._cpu_lock = CpuLock()

    def wall_ns(self) -> int:
        """Return this node's wall clock, ns since the epoch (for ``cluster.clock.measure_offset``)."""
        return time.time_ns()

    def lock_cpus(self, run_id: str) -> Holder | None:
        """Lock this worker's CPUs host-wide for ``run_id``; return the blocking run's ``Holder``, None when taken.

        The lock lives in this process, so the kernel drops it if the worker dies.
        """
        self._cpu_lock.release()
        return self._cpu_lock.acquire(self._cpus, run_id) if self._pinned else None

    def unlock_cpus(self) -> None:
        """Release the CPUs ``lock_cpus`` took; nothing when none."""
        self._cpu_lock.release()

    def cpus_held_by(self) -> Holder | None:
        """Return which other run holds any of this worker's CPUs now, without taking them."""
        return held_by(self._cpus) if self._pinned else None

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

    def prepare(self, spec: TrialSpec) -> dict[str, float]:
        """Set up the workload and calibrate; return {"iterations", "setup_s", "sample_s"} of this worker.

        ``setup_s`` is the seconds ``setup`` took (a numba kernel's compile time shows there);
        ``sample_s`` what a sample of ``iterations`` took in calibration (it sizes the first
        rounds' window).
        The driver then gives every worker of the trial one common iteration count and one
        schedule (``sample``), so their samples run together.
        """
        self._teardown()
        cls = get_workload(spec.workload)
        self._workload = cls(split_params(cls, spec.params, spec.work_share))
        self._monitor = ResourceMonitor(spec.resource_interval_s, spec.record_node_cpus)
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
            t0 = time.perf_counter()
            self._workload.setup(ctx)
            setup_s = time.perf_counter() - t0
            calibrated = calibration(self._workload.run, spec.min_time_s)
        except BaseException:
            self._teardown()
            raise
        return {"iterations": calibrated.iterations, "setup_s": setup_s, "sample_s": calibrated.sample_ns / 1e9}

    def sample(self, start_at_ns: int, iterations: int, repetition: int, warmup: bool) -> pa.Table:
        """Wait for the shared start instant (this node's wall clock, ns), take one sample of ``iterations``.

        The driver converts the round's instant to this node's clock (``cluster.clock``), and
        the sample's start/end stamps are this node's; the driver converts them back.
        ``repetition`` numbers the sample (warm-ups -W..-1, in the order they run). CPU% and
        RSS are read over measured samples only (just outside their timed region), never over
        the idle gaps between rounds. Errors tear the workload down.
        """
        called = time.time_ns()
        try:
            if self._workload is None:
                raise RuntimeError("sample() called before prepare()")
            sleep_until(start_at_ns)
            if warmup:
                return sample_row(time_run(self._workload.run, iterations), repetition, True, called)
            self._monitor.start(repetition)
            try:
                run = time_run(self._workload.run, iterations)
            finally:
                self._monitor.stop()
        except BaseException:
            self._teardown()
            raise
        return sample_row(run, repetition, False, called)

    def finish(self, missed: Collection[int] = ()) -> dict[str, Any]:
        """Tear the workload down; return the trial's resource rows and each CPU's mean busy share.

        Returns {"resources": table (``RESOURCE_COLUMNS``), "cpu_means": {cpu: percent}}; both
        are over the measured samples, but those of the rounds in ``missed`` (repetitions: they
        missed their window, so they are not measured); the means are empty unless this worker
        recorded the node's CPUs.
        """
        self._teardown()
        monitor, self._monitor = self._monitor, ResourceMonitor()
        return {"resources": monitor.table(missed), "cpu_means": monitor.cpu_means(missed)}

    def _teardown(self) -> None:
        self._monitor.stop()  # a sample that failed midway
        if self._workload is not None:
            workload, self._workload = self._workload, None
            workload.teardown()
