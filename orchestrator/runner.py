"""Run a list of planned trials, storing each one as it ends; keep the run row truthful.

The runner decides when to write; the store only serializes. Every trial's samples and
the trials file are written as soon as the trial ends, so an interruption loses nothing
that finished.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence, Sized
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib.metadata import version
from typing import Any

import ray

from cluster.clock import ClockOffset
from cluster.cpu_lock import CpuLockTimeout
from cluster.environment import local_host_id
from cluster.nodes import NodeInfo
from orchestrator.actors import ActorPool, TrialTimeout, describe_error
from orchestrator.analysis.targets import Target
from orchestrator.analysis.trial_record import TrialRecord, build_record, failed_record
from orchestrator.planner import Trial
from orchestrator.settings import Sampling
from orchestrator.store.writer import RunStore, StoreError
from orchestrator.trial_run import run_trial
from workloads.registry import get_workload

OnTrial = Callable[[int, Trial, "TrialRecord | None"], None]
"""Progress callback: (index, trial, None) before a trial, (index, trial, record) after it."""


@dataclass(frozen=True, slots=True)
class RunContext:
    """What every trial of one run shares: where it is stored, how it is measured, on which nodes."""

    store: RunStore
    command: str
    spec_json: str
    sampling: Sampling
    nodes: tuple[NodeInfo, ...]
    targets: tuple[Target, ...] = ()
    skip: frozenset[str] = frozenset()
    """Trial ids already stored ok (``--resume``): not run again."""
    previous_rows: tuple[dict[str, Any], ...] = ()
    """The stored rows of the skipped trials, kept in the trials file."""
    on_trial: OnTrial = field(default=lambda i, t, r: None)
    say: Callable[[str], None] = field(default=lambda text: None)
    """Tells the user something while the run goes on (waiting for CPUs another run holds)."""

    @property
    def run_id(self) -> str:
        """Return the run's id."""
        return self.store.run_id


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """The end of a run: its id, status and every trial's record run this time."""

    run_id: str
    status: str
    records: tuple[TrialRecord, ...]

    @property
    def rows(self) -> list[dict[str, Any]]:
        """Return every ``trials`` row of the trials run this time."""
        return [r for record in self.records for r in record.rows]


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], check=False, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def node_rows(run_id: str, nodes: Sequence[NodeInfo], used_cpus: Mapping[str, set[int]],
              clocks: Mapping[str, ClockOffset]) -> list[dict[str, Any]]:
    """Return the ``nodes`` rows: identity, environment, topology and clock offset of each node."""
    rows = []
    for n in nodes:
        env, topo = n.environment, n.topology
        used = used_cpus.get(n.node_id, set())
        rows.append({
            "run_id": run_id, "node_id": n.node_id, "hostname": n.hostname, "ip": n.ip,
            "is_head": n.is_head, "ray_cpus": n.ray_cpus, "usable_cpus": list(topo.usable_cpus),
            "host_id": n.host_id,
            "clock_offset_ns": clocks[n.node_id].offset_ns if n.node_id in clocks else None,
            "clock_uncertainty_ns": clocks[n.node_id].uncertainty_ns if n.node_id in clocks else None,
            "cpu_model": env.get("cpu_model"), "cpu_flags": env.get("cpu_flags"),
            "kernel": env.get("kernel"), "memory_total_bytes": env.get("memory_total_bytes"),
            "governor": env.get("governor"), "boost": env.get("boost"),
            "smt_active": env.get("smt_active"), "load_avg_1m": env.get("load_avg_1m"),
            "topology_summary": topo.summary(), "topology": json.dumps(topo.to_dict()),
            "amd_x3d_mode": topo.amd_x3d_mode,
            "preferred_core_rank": json.dumps({str(c): r for c, r in topo.preferred_core_rank.items()}),
            "governors": json.dumps({str(c): g for c, g in topo.governors.items() if c in used or not used}),
            "versions": json.dumps(env.get("versions")),
            "compiler": json.dumps(env["compiler"]) if env.get("compiler") else None,
            **{k: env.get(k) for k in ("cpu_count", "memory_available_bytes", "vm", "container",
                                       "cpu_quota_cpus")},
        })
    return rows


def lost_nodes(trial: Trial, nodes: Sequence[NodeInfo]) -> list[NodeInfo]:
    """Return the trial's nodes that Ray no longer counts as alive."""
    alive = {n["NodeID"] for n in ray.nodes() if n.get("Alive")}
    return [n for n in nodes if n.node_id in trial.node_ids and n.node_id not in alive]


def _record(ctx: RunContext, trial: Trial, pool: ActorPool) -> TrialRecord:
    """Run one trial and return its record; a workload error or a lost node fails it, never the run."""
    workload = get_workload(trial.workload)
    sampling = trial.sampling or ctx.sampling
    try:
        measured = run_trial(trial, sampling, pool, {n.node_id: n for n in ctx.nodes}, ctx.run_id, ctx.say)
    except CpuLockTimeout:
        raise  # another run holds the CPUs: stop the run (keeping what finished), one sentence, exit 2
    except TrialTimeout:
        return failed_record(ctx.run_id, trial, workload, f"the trial ran past --trial-timeout "
                                                          f"{sampling.trial_timeout_s:g} s and was stopped")
    except Exception as exc:  # noqa: BLE001 -- a workload error (RayTaskError) or a lost actor/node
        error = describe_error(exc)
        lost = lost_nodes(trial, ctx.nodes) if isinstance(exc, ray.exceptions.RayError) else []
        if lost:
            names = ", ".join(f"{n.node_id[:12]} ({n.hostname}, {n.ip})" for n in lost)
            error = f"node {names} left the cluster during the trial ({error})"
        return failed_record(ctx.run_id, trial, workload, error)
    topologies = {n.node_id: n.topology for n in ctx.nodes}
    return build_record(ctx.run_id, measured, topologies, workload, sampling, ctx.targets)


def execute(ctx: RunContext, trials: Iterable[Trial]) -> RunOutcome:
    """Run ``trials`` in order, storing each one as it ends; return what ran.

    ``trials`` may be a generator that plans its next trial from the records so far
    (``ctx.on_trial`` sees each one first): a capacity search does. The run row says
    ``running`` (with this host and pid) until the end, then complete, failed or
    interrupted; a reader shows a running run whose driver is gone as interrupted. A
    resumed run keeps its first start time and command (the resuming one is added to
    ``resumed_by``) and the node rows of nodes it no longer uses. When the run ends, each
    node's per-trial files are compacted into one.

    Raises:
        StoreError: the results could not be written mid-run (the run is marked failed).
        CpuLockTimeout: another run held the CPUs past --lock-timeout (marked interrupted).
        KeyboardInterrupt: after the run was marked interrupted.
    """
    store = ctx.store
    earlier = store.read_run()
    run_row = {
        "run_id": ctx.run_id, "started_at": earlier["started_at"] if earlier else datetime.now(timezone.utc),
        "finished_at": None, "command": earlier["command"] if earlier else ctx.command, "spec": ctx.spec_json,
        "status": "running", "trials_total": len(trials) if isinstance(trials, Sized) else None,
        "trials_failed": 0, "topobench_version": version("topobench"), "ray_version": ray.__version__,
        "python_version": platform.python_version(), "git_commit": _git_commit(), "host": local_host_id(),
        "pid": os.getpid(), "resumed_by": [*(earlier.get("resumed_by") or [])] + [ctx.command] if earlier else [],
    }
    store.write_run(run_row)
    store.reserve()
    probed = {n.node_id for n in ctx.nodes}
    kept_nodes = [r for r in store.read_nodes() if r["node_id"] not in probed]
    used: dict[str, set[int]] = {}
    clocks: dict[str, ClockOffset] = {}
    store.write_nodes(kept_nodes + node_rows(ctx.run_id, ctx.nodes, used, clocks))
    rows: list[dict[str, Any]] = list(ctx.previous_rows)
    worker_rows = [r for r in store.read_workers() if r["trial_id"] in ctx.skip]
    latency_rows = [r for r in store.read_latency() if r["trial_id"] in ctx.skip]
    records: list[TrialRecord] = []
    pool = ActorPool()
    status = "interrupted"
    try:
        for i, trial in enumerate(trials):
            if trial.trial_id in ctx.skip:
                continue
            ctx.on_trial(i, trial, None)
            record = _record(ctx, trial, pool)
            try:
                store.commit_trial(trial.trial_id, record.tables, [*rows, *record.rows],
                                   [*worker_rows, *record.workers], [*latency_rows, *record.latency])
            except StoreError:
                status = "failed"
                raise
            rows.extend(record.rows)
            worker_rows.extend(record.workers)
            latency_rows.extend(record.latency)
            records.append(record)
            fresh = {n: c for n, c in record.clocks.items() if n not in clocks}
            cpus_of: dict[str, set[int]] = {}
            for slot in trial.slots:
                cpus_of.setdefault(slot.node_id, set()).update(slot.cpus)
            planned = {node: cpus for node, cpus in cpus_of.items() if not cpus <= used.get(node, set())}
            if fresh or planned:  # a node's first clock estimate or new CPUs: its nodes row says so
                clocks.update(fresh)
                for node, cpus in planned.items():
                    used.setdefault(node, set()).update(cpus)
                store.write_nodes(kept_nodes + node_rows(ctx.run_id, ctx.nodes, used, clocks))
            ctx.on_trial(i, trial, record)
        status = "failed" if any(r.error for r in records) else "complete"
    finally:
        pool.close()
        run_row.update(status=status, finished_at=datetime.now(timezone.utc),
                       trials_total=run_row["trials_total"] or len(records) + len(ctx.skip),
                       trials_failed=sum(1 for r in records if r.error))
        with contextlib.suppress(OSError):  # a read-only folder: the row stays "running" (read as interrupted)
            store.write_final_run(run_row)
            store.compact()
    return RunOutcome(ctx.run_id, status, tuple(records))
