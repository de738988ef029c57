"""The stored account of a run: its run row (true at every moment), its nodes rows and each trial.

The session decides when to write; the store only serializes. A trial is committed as soon as
it ends (its parts and one manifest entry; nothing earlier is rewritten), so an interruption
loses nothing that finished. The run row says ``running`` (with
this host and pid) until ``close``; a reader shows a running run whose driver is gone as
interrupted. A resumed run keeps its first start time and command (the resuming one is added
to ``resumed_by``) and the nodes rows of nodes it no longer uses.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from importlib.metadata import version
from typing import TYPE_CHECKING, Any

import ray

from cluster.clock import ClockOffset
from cluster.environment import local_host_id
from cluster.nodes import NodeInfo
from orchestrator.pipeline.provenance import NO_COMMIT, Commit
from orchestrator.records import Trial, TrialRecord
from orchestrator.store.live import mark_closed, mark_open

if TYPE_CHECKING:
    from orchestrator.store.writer import RunStore


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
                                       "cpu_quota_cpus", "cpu_family", "cpu_model_number", "cpu_stepping",
                                       "microcode", "arch")},
        })
    return rows


class RunLog:
    """Keeps one run's stored rows: opened before the first trial, a commit per trial, closed once."""

    def __init__(self, store: RunStore, command: str, spec_json: str, nodes: Sequence[NodeInfo],
                 trials_total: int | None, kept_rows: Sequence[Mapping[str, Any]] = (), label: str | None = None,
                 commit: Commit = NO_COMMIT) -> None:
        """Write the run row (``running``) and the nodes rows; ``kept_rows`` are a resumed run's ok trials.

        A resumed run keeps its label and commit (it measures the code it started with).

        Raises:
            StoreError: the first rows could not be written.
        """
        self.store, self.nodes = store, tuple(nodes)
        earlier = store.read_run()
        self.run_row: dict[str, Any] = {
            "run_id": store.run_id, "started_at": earlier["started_at"] if earlier else datetime.now(timezone.utc),
            "finished_at": None, "command": earlier["command"] if earlier else command, "spec": spec_json,
            "status": "running", "trials_total": trials_total, "trials_failed": 0,
            "topobench_version": version("topobench"), "ray_version": ray.__version__,
            "python_version": platform.python_version(), "host": local_host_id(), "pid": os.getpid(),
            "resumed_by": [*(earlier.get("resumed_by") or [])] + [command] if earlier else [],
            "label": earlier.get("label") if earlier else label,
            **({k: earlier.get(k) for k in ("git_commit", "commit_source", "git_dirty")} if earlier else
               {"git_commit": commit.sha, "commit_source": commit.source, "git_dirty": commit.dirty}),
        }
        self._used: dict[str, set[int]] = {}
        self._clocks: dict[str, ClockOffset] = {}
        # A resumed run keeps its ok trials only (the rest run again) and the rows of nodes it no longer uses.
        store.open_run(self.run_row, node_rows(store.run_id, self.nodes, self._used, self._clocks),
                       keep={r["trial_id"] for r in kept_rows} if earlier else None)
        mark_open(store.run_id)
        with contextlib.suppress(OSError):
            store.reserve()
        self.rows: list[dict[str, Any]] = list(kept_rows)
        """Every ``trials`` row stored so far: the kept ones of a resumed run, then each commit's."""

    def commit(self, trial: Trial, record: TrialRecord) -> None:
        """Store one finished trial, with the rows of nodes seen for the first time or on new CPUs.

        Raises:
            StoreError: the trial could not be written (nothing of it is visible).
        """
        clocks = {**{n: c for n, c in record.clocks.items() if n not in self._clocks}, **self._clocks}
        used = {node: set(cpus) for node, cpus in self._used.items()}
        for slot in trial.slots:
            used.setdefault(slot.node_id, set()).update(slot.cpus)
        changed = {n for n in clocks if n not in self._clocks} | {n for n, cpus in used.items()
                                                                   if cpus != self._used.get(n)}
        nodes = node_rows(self.store.run_id, [n for n in self.nodes if n.node_id in changed], used, clocks)
        self.store.commit_trial(trial.trial_id, record.tables, record.rows, record.workers, record.latency, nodes,
                                record.parts)
        self.rows.extend(record.rows)
        self._clocks, self._used = clocks, used

    def close(self, status: str, ran: int, failed: int, kept: int) -> bool:
        """Write the final run row (``status``) and compact the run's parts; return whether the row was written.

        A location that can no longer be written leaves the row ``running``, which readers show
        as interrupted.
        """
        self.run_row.update(status=status, finished_at=datetime.now(timezone.utc),
                            trials_total=self.run_row["trials_total"] or ran + kept, trials_failed=failed)
        try:
            self.store.write_final_run(self.run_row)
        except OSError:
            return False
        finally:
            mark_closed(self.store.run_id)
        with contextlib.suppress(OSError):
            self.store.compact()
        return True
