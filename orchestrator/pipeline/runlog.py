"""The stored account of a run: its run row (true at every moment), its nodes rows and each trial.

The session decides when to write; the store only serializes. A trial is committed as soon as
it ends, so an interruption loses nothing that finished. The run row says ``running`` (with
this host and pid) until ``close``; a reader shows a running run whose driver is gone as
interrupted. A resumed run keeps its first start time and command (the resuming one is added
to ``resumed_by``) and the nodes rows of nodes it no longer uses.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from importlib.metadata import version
from typing import Any

import ray

from cluster.clock import ClockOffset
from cluster.environment import local_host_id
from cluster.nodes import NodeInfo
from orchestrator.records import Trial, TrialRecord
from orchestrator.store.writer import RunStore


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
            **{k: env.get(k) for k in ("cpu_count", "memory_available_bytes", "vm", "container",
                                       "cpu_quota_cpus", "cpu_family", "cpu_model_number", "cpu_stepping",
                                       "microcode", "arch")},
        })
    return rows


class RunLog:
    """Keeps one run's stored rows: opened before the first trial, a commit per trial, closed once."""

    def __init__(self, store: RunStore, command: str, spec_json: str, nodes: Sequence[NodeInfo],
                 trials_total: int | None, kept_rows: Sequence[Mapping[str, Any]] = ()) -> None:
        """Write the run row (``running``) and the nodes rows; ``kept_rows`` are a resumed run's ok trials."""
        self.store, self.nodes = store, tuple(nodes)
        earlier = store.read_run()
        self.run_row: dict[str, Any] = {
            "run_id": store.run_id, "started_at": earlier["started_at"] if earlier else datetime.now(timezone.utc),
            "finished_at": None, "command": earlier["command"] if earlier else command, "spec": spec_json,
            "status": "running", "trials_total": trials_total, "trials_failed": 0,
            "topobench_version": version("topobench"), "ray_version": ray.__version__,
            "python_version": platform.python_version(), "git_commit": _git_commit(), "host": local_host_id(),
            "pid": os.getpid(),
            "resumed_by": [*(earlier.get("resumed_by") or [])] + [command] if earlier else [],
        }
        store.write_run(self.run_row)
        store.reserve()
        probed = {n.node_id for n in self.nodes}
        self._kept_nodes = [r for r in store.read_nodes() if r["node_id"] not in probed]
        self._used: dict[str, set[int]] = {}
        self._clocks: dict[str, ClockOffset] = {}
        self._write_nodes()
        kept = {r["trial_id"] for r in kept_rows}
        self.rows: list[dict[str, Any]] = list(kept_rows)
        """Every ``trials`` row stored so far: the kept ones of a resumed run, then each commit's."""
        self._workers = [r for r in store.read_workers() if r["trial_id"] in kept]
        self._latency = [r for r in store.read_latency() if r["trial_id"] in kept]

    def _write_nodes(self) -> None:
        self.store.write_nodes(self._kept_nodes + node_rows(self.store.run_id, self.nodes, self._used, self._clocks))

    def commit(self, trial: Trial, record: TrialRecord) -> None:
        """Store one finished trial; the nodes rows follow a node's first clock estimate or new CPUs.

        Raises:
            StoreError: the trial could not be written (nothing of it is left behind).
        """
        self.store.commit_trial(trial.trial_id, record.tables, [*self.rows, *record.rows],
                                [*self._workers, *record.workers], [*self._latency, *record.latency])
        self.rows.extend(record.rows)
        self._workers.extend(record.workers)
        self._latency.extend(record.latency)
        fresh = {n: c for n, c in record.clocks.items() if n not in self._clocks}
        cpus_of: dict[str, set[int]] = {}
        for slot in trial.slots:
            cpus_of.setdefault(slot.node_id, set()).update(slot.cpus)
        planned = {node: cpus for node, cpus in cpus_of.items() if not cpus <= self._used.get(node, set())}
        if fresh or planned:
            self._clocks.update(fresh)
            for node, cpus in planned.items():
                self._used.setdefault(node, set()).update(cpus)
            self._write_nodes()

    def close(self, status: str, ran: int, failed: int, kept: int) -> None:
        """Write the final run row (``status``) and compact each node's per-trial files.

        A folder turned read-only leaves the row ``running``, which readers show as interrupted.
        """
        self.run_row.update(status=status, finished_at=datetime.now(timezone.utc),
                            trials_total=self.run_row["trials_total"] or ran + kept, trials_failed=failed)
        with contextlib.suppress(OSError):
            self.store.write_final_run(self.run_row)
            self.store.compact()
