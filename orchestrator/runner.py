"""Drive trials on worker actors: create/reuse pinned actors, synchronize, gather, store.

The runner decides when to write; the store only serializes. Every trial's samples and
the trials file are written as soon as the trial ends, so an interruption loses nothing
that finished.
"""

from __future__ import annotations

import json
import math
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib.metadata import version
from typing import Any

import pyarrow as pa
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from cluster.probe import NodeInfo
from cluster.resource_monitor import DEFAULT_INTERVAL_S
from cluster.service import ServiceHost
from cluster.worker import TrialSpec, Worker
from orchestrator.planner import Trial, WorkerSlot
from orchestrator.resources import (
    MAX_CV,
    FlagThresholds,
    cpu_means,
    flag_trial,
    peak_rss,
    resource_columns,
)
from orchestrator.samples import WorkerMeta, sample_metrics, to_long
from orchestrator.store import RunStore
from orchestrator.trial_stats import failed_rows, is_stable, trial_rows
from workloads.registry import get_workload

# Margin between the driver choosing a shared start instant and that instant: covers the
# ~1 ms actor call latency and cross-node delivery. A worker reached late starts late, which
# the trial's overlap shows.
SYNC_MARGIN_NS = 10_000_000
GATHER_BATCH = 16


@dataclass(frozen=True, slots=True)
class Measured:
    """The measured phase of one trial: each worker's samples, and why measuring stopped."""

    tables: tuple[pa.Table, ...]
    """Per worker (slot order), its warm-up and measured samples (wide, repetitions numbered across batches)."""
    stop_reason: str
    """repetitions (fixed count) | stable (CI half-width within rel_ci) | max-time."""
    measure_s: float
    """Seconds from the first shared start to the last sample's end."""


@dataclass(frozen=True, slots=True)
class TrialResult:
    """What one trial produced: its trials rows and, when it failed, the reason."""

    trial: Trial
    rows: tuple[dict[str, Any], ...]
    error: str | None


class ActorPool:
    """Keeps one pinned worker actor per (node, CPU set, threads), reused across trials."""

    def __init__(self) -> None:
        self._actors: dict[tuple, Any] = {}

    @staticmethod
    def _key(slot: WorkerSlot, threads: int) -> tuple:
        # Pinned slots are told apart by their CPUs (placement never repeats a CPU);
        # unpinned ones all share the node's CPUs, so only their rank tells them apart.
        return (slot.node_id, threads, slot.cpus if slot.pinned else ("unpinned", slot.rank))

    def get(self, slot: WorkerSlot, threads: int) -> Any:
        """Return the actor for ``slot``, creating it (hard node affinity) when new."""
        key = self._key(slot, threads)
        if key not in self._actors:
            self._actors[key] = Worker.options(
                num_cpus=threads,
                scheduling_strategy=NodeAffinitySchedulingStrategy(slot.node_id, soft=False),
            ).remote(slot.cpus if slot.pinned else (), threads)
        return self._actors[key]

    def discard(self, slot: WorkerSlot, threads: int) -> None:
        """Kill and forget the actor of ``slot`` (after a failure its state is unknown)."""
        actor = self._actors.pop(self._key(slot, threads), None)
        if actor is not None:
            ray.kill(actor)

    def close(self) -> None:
        """Kill every actor."""
        for actor in self._actors.values():
            ray.kill(actor)
        self._actors.clear()


def gather(refs: Sequence[ray.ObjectRef]) -> list[Any]:
    """Return ``ray.get`` of ``refs`` in their order, fetching in batches with ``ray.wait``."""
    pending = list(refs)
    done: dict[ray.ObjectRef, Any] = {}
    while pending:
        ready, pending = ray.wait(pending, num_returns=min(GATHER_BATCH, len(pending)))
        done.update(zip(ready, ray.get(ready)))
    return [done[r] for r in refs]


def _describe(exc: BaseException) -> str:
    """Return the root cause of a Ray error as one line (the workload's own message)."""
    cause = getattr(exc, "cause", None) or exc
    text = f"{type(cause).__name__}: {cause}".strip()
    return text.splitlines()[-1] if "\n" in text else text


def common_iterations(calibrations: Sequence[dict[str, int]]) -> int:
    """Return the iteration count every worker uses: the largest any of them calibrated.

    So each sample lasts at least ``min_time`` on every worker, and all workers do the
    same work per sample.
    """
    return max(c["iterations"] for c in calibrations)


def measure_trial(actors: Sequence[Any], settings: dict[str, Any], iterations: int) -> Measured:
    """Measure on ``actors``, every sample started by all workers at one shared instant.

    Each sample (warm-up first) is one round: the driver picks a wall-clock instant
    ``SYNC_MARGIN_NS`` ahead, every worker starts its sample of ``iterations`` iterations
    then, and the next round begins when all have finished. So sample r of every worker
    runs together however noisy the machine is; the idle gap between rounds is never
    measured. Without ``until_stable`` ``repetitions`` rounds are taken (stop reason
    "repetitions"). With it, more rounds follow (in batches of half the samples so far,
    shrunk to fit the time left) until the bootstrap 95% CI of the median of the primary
    throughput, pooled over workers, is within ``rel_ci`` of the median ("stable") or the
    next batch would end after ``max_time_s`` seconds of measuring ("max-time"). The workers
    are not torn down here: the caller calls ``finish``.
    """
    until_stable = bool(settings.get("until_stable", False))
    rel_ci = float(settings.get("rel_ci", 0.02))
    max_time_s = float(settings.get("max_time_s", 60.0))
    per_worker: list[list[pa.Table]] = [[] for _ in actors]

    def round_(warmup_number: int = 0) -> int:
        """Run one round (a warm-up when ``warmup_number`` < 0); return its shared start instant."""
        start_at = time.time_ns() + SYNC_MARGIN_NS
        warm = warmup_number < 0
        tables = gather([a.measure.remote(start_at, 0 if warm else 1, False, iterations, int(warm), warmup_number)
                         for a in actors])
        for kept, table in zip(per_worker, tables):
            kept.append(table)
        return start_at

    warmups = int(settings.get("warmup", 0))
    for i in range(warmups):
        round_(warmup_number=i - warmups)  # -W .. -1, in the order they run
    done, batch, first_start = 0, int(settings["repetitions"]), None
    while True:
        for _ in range(batch):
            start_at = round_()
            first_start = first_start or start_at
        done += batch
        # Both ends on the driver's clock: worker clocks on other nodes may differ.
        elapsed_s = (time.time_ns() - first_start) / 1e9
        if not until_stable:
            reason = "repetitions"
            break
        values = [v for w in per_worker for t in w
                  for v, warm in zip(t["ops"].to_numpy() / t["elapsed_ns"].to_numpy() * 1e9,
                                     t["warmup"].to_pylist()) if not warm]
        if is_stable(values, rel_ci):
            reason = "stable"
            break
        per_repetition_s = elapsed_s / done
        left_s = max_time_s - elapsed_s
        if left_s < per_repetition_s:
            reason = "max-time"
            break
        batch = max(1, min(math.ceil(done / 2), math.floor(left_s / per_repetition_s)))
    return Measured(tuple(pa.concat_tables(w, promote_options="default") for w in per_worker), reason, elapsed_s)


def _resources_long(table: pa.Table, run_id: str, trial_id: str, node_id: str, rank: int) -> pa.Table:
    """Return a worker's resource rows with run, trial, node and rank (null on node-wide rows)."""
    n = table.num_rows
    ranks = [None if kind == "cpu_percent" else rank for kind in table["kind"].to_pylist()]
    return table.append_column("run_id", pa.array([run_id] * n, pa.string())) \
        .append_column("trial_id", pa.array([trial_id] * n, pa.string())) \
        .append_column("node_id", pa.array([node_id] * n, pa.string())) \
        .append_column("worker_rank", pa.array(ranks, pa.int32()))


def _stop_service(service: Any) -> None:
    """Stop and kill a trial's ``ServiceHost``; a service already gone is not an error."""
    try:
        ray.get(service.stop.remote(), timeout=30)
    except ray.exceptions.RayError:
        pass
    ray.kill(service)


def run_trial(run_id: str, trial: Trial, request_settings: dict[str, Any], pool: ActorPool,
              store: RunStore, nodes: dict[str, NodeInfo]) -> TrialResult:
    """Run ``trial`` on its slots and store its samples per node; failures are returned, not raised.

    Steps: every worker prepares (setup, calibration) in parallel; the driver gives all the
    largest calibrated iteration count; then warm-up and measured rounds follow, each
    started by all workers at one shared instant (``measure_trial``), with CPU% and RSS
    sampled during the samples; ``finish`` tears down and returns the resource rows, stored
    per node in ``resources``. The trials rows get the stop reason, the resource figures and
    the unstable/desynchronized/noisy/underused flags.
    """
    workload = get_workload(trial.workload)
    threads = trial.threads_per_worker
    actors = [pool.get(slot, threads) for slot in trial.slots]
    service = None
    try:
        endpoint = None
        if trial.service_node_id is not None:  # one shared server on its node, for every worker
            service = ServiceHost.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
                trial.service_node_id, soft=False)).remote(trial.workload, dict(trial.params))
            endpoint = ray.get(service.start.remote())
        identities = gather([a.identity.remote() for a in actors])
        specs = [
            TrialSpec(
                workload=trial.workload,
                params=dict(trial.params),
                worker_rank=slot.rank,
                workers=len(trial.slots),
                min_time_s=request_settings["min_time_s"],
                work_share=1.0 if trial.mode == "weak" else 1.0 / len(trial.slots),
                scratch_dir=request_settings.get("scratch"),
                cache_sizes_bytes=nodes[slot.node_id].topology.cache_sizes_bytes(
                    tuple(identity["cpus"]) or nodes[slot.node_id].topology.usable_cpus),
                resource_interval_s=request_settings.get("resource_interval_s", DEFAULT_INTERVAL_S),
                record_node_cpus=slot.rank == min(s.rank for s in trial.slots if s.node_id == slot.node_id),
                service_endpoint=endpoint,
            )
            for slot, identity in zip(trial.slots, identities)
        ]
        iterations = common_iterations(gather([a.prepare.remote(s) for a, s in zip(actors, specs)]))
        phase = measure_trial(actors, request_settings, iterations)
        resources = gather([a.finish.remote() for a in actors])
        measured = phase.tables
    except Exception as exc:  # noqa: BLE001 -- a workload error (RayTaskError) or a lost actor/node
        for slot in trial.slots:
            pool.discard(slot, threads)
        error = _describe(exc)
        return TrialResult(trial, tuple(failed_rows(run_id, trial, workload.throughput, error)), error)
    finally:
        if service is not None:
            _stop_service(service)

    per_node: dict[str, list[pa.Table]] = {}
    for slot, identity, m in zip(trial.slots, identities, measured):
        topo = nodes[slot.node_id].topology
        cpus = tuple(identity["cpus"])
        domains = {topo.l3_domain_of(c) for c in cpus}
        numas = {topo.numa_node_of(c) for c in cpus}
        meta = WorkerMeta(run_id, trial.trial_id, trial.workload, trial.params, slot.node_id,
                          identity["hostname"], slot.rank, cpus,
                          domains.pop() if len(domains) == 1 else None,
                          numas.pop() if len(numas) == 1 else None)
        per_node.setdefault(slot.node_id, []).append(
            to_long(m, meta, workload.throughput, workload.metrics))
    tables = {node: pa.concat_tables(t) for node, t in per_node.items()}
    seen = {m.name: m for wide in measured for m in sample_metrics(wide, workload.throughput, workload.metrics)}
    metrics = (workload.throughput, *(m for name, m in seen.items() if name != workload.throughput.name))
    for node, table in tables.items():
        store.write_samples(node, trial.trial_id, table)

    per_node_resources: dict[str, list[pa.Table]] = {}
    peaks: dict[int, float | None] = {}
    pinned: set[tuple[str, int]] = set()
    for slot, identity, res in zip(trial.slots, identities, resources):
        per_node_resources.setdefault(slot.node_id, []).append(
            _resources_long(res, run_id, trial.trial_id, slot.node_id, slot.rank))
        peaks[slot.rank] = peak_rss(res)
        if slot.pinned:
            pinned.update((slot.node_id, c) for c in identity["cpus"])
    means: dict[tuple[str, int], float] = {}
    for node, parts in per_node_resources.items():
        table = pa.concat_tables(parts)
        store.write_resources(node, trial.trial_id, table)
        means.update(((node, cpu), m) for cpu, m in cpu_means(table).items())
    thresholds = FlagThresholds(max_cv=float(request_settings.get("max_cv", MAX_CV)))
    columns = {"stop_reason": phase.stop_reason, "measure_s": phase.measure_s,
               **resource_columns(means, pinned, peaks)}
    rows = trial_rows(run_id, trial, pa.concat_tables(tables.values()), metrics, columns,
                      flag_trial(means, pinned, None, thresholds), thresholds)
    return TrialResult(trial, tuple(rows), None)


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], check=False, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def node_rows(run_id: str, nodes: Sequence[NodeInfo], used_cpus: dict[str, set[int]]) -> list[dict[str, Any]]:
    """Return the ``nodes`` rows: identity, environment and topology of each node."""
    rows = []
    for n in nodes:
        env, topo = n.environment, n.topology
        used = sorted(used_cpus.get(n.node_id, ()))
        rows.append({
            "run_id": run_id, "node_id": n.node_id, "hostname": n.hostname, "ip": n.ip,
            "is_head": n.is_head, "ray_cpus": n.ray_cpus, "usable_cpus": list(topo.usable_cpus),
            "cpu_model": env.get("cpu_model"), "cpu_flags": env.get("cpu_flags"),
            "kernel": env.get("kernel"), "memory_total_bytes": env.get("memory_total_bytes"),
            "governor": env.get("governor"), "boost": env.get("boost"),
            "smt_active": env.get("smt_active"), "load_avg_1m": env.get("load_avg_1m"),
            "topology_summary": topo.summary(), "topology": json.dumps(topo.to_dict()),
            "amd_x3d_mode": topo.amd_x3d_mode,
            "preferred_core_rank": json.dumps({str(c): r for c, r in topo.preferred_core_rank.items()}),
            "governors": json.dumps({str(c): g for c, g in topo.governors.items() if c in used or not used}),
            "versions": json.dumps(env.get("versions")),
            **{k: env.get(k) for k in ("cpu_count", "memory_available_bytes", "vm", "container",
                                       "cpu_quota_cpus")},
        })
    return rows


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """The end of a run: its id, status and every trial's result."""

    run_id: str
    status: str
    results: tuple[TrialResult, ...]
    targets_missed: int = 0


def execute(
    run_id: str,
    command: str,
    spec_json: str,
    settings: dict[str, Any],
    trials: Sequence[Trial],
    nodes: Sequence[NodeInfo],
    store: RunStore,
    on_trial: Callable[[int, Trial, TrialResult | None], None] = lambda i, t, r: None,
    skip: frozenset[str] = frozenset(),
    previous_rows: Sequence[dict[str, Any]] = (),
) -> RunOutcome:
    """Run ``trials`` in order, writing each one's results as it ends.

    ``on_trial(i, trial, None)`` is called before trial ``i`` and ``on_trial(i, trial,
    result)`` after it (progress display). Trials whose id is in ``skip`` are not run
    (``--resume``); their stored rows are passed in ``previous_rows`` and kept.
    The run row is first written as ``interrupted`` and replaced at the end, so a killed
    driver leaves a truthful status. Ctrl-C marks the run interrupted and re-raises. A
    resumed run keeps its first start time and the node rows of nodes it no longer uses.
    """
    earlier = store.read("runs")
    started = earlier[0]["started_at"] if earlier else datetime.now(timezone.utc)
    run_row = {
        "run_id": run_id, "started_at": started, "finished_at": None, "command": command,
        "spec": spec_json, "status": "interrupted", "trials_total": len(trials), "trials_failed": 0,
        "topobench_version": version("topobench"), "ray_version": ray.__version__,
        "python_version": ".".join(map(str, __import__("sys").version_info[:3])),
        "git_commit": _git_commit(),
    }
    store.write_run(run_row)
    used: dict[str, set[int]] = {}
    for t in trials:
        for s in t.slots:
            used.setdefault(s.node_id, set()).update(s.cpus)
    fresh = node_rows(run_id, nodes, used)
    kept = [row for row in store.read("nodes") if row["node_id"] not in {n.node_id for n in nodes}]
    store.write_nodes(kept + fresh)
    by_id = {n.node_id: n for n in nodes}
    rows: list[dict[str, Any]] = list(previous_rows)
    results: list[TrialResult] = []
    pool = ActorPool()
    status = "interrupted"
    try:
        for i, trial in enumerate(trials):
            if trial.trial_id in skip:
                continue
            on_trial(i, trial, None)
            result = run_trial(run_id, trial, settings, pool, store, by_id)
            results.append(result)
            rows.extend(result.rows)
            store.write_trials(rows)
            on_trial(i, trial, result)
        status = "failed" if any(r.error for r in results) else "complete"
    finally:
        pool.close()
        run_row.update(status=status, finished_at=datetime.now(timezone.utc),
                       trials_failed=sum(1 for r in results if r.error))
        store.write_run(run_row)
    return RunOutcome(run_id, status, tuple(results))
