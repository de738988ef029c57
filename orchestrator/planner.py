"""Expand a request into trials, each with a node and CPU set for every worker.

Pure: takes the probed nodes (``NodeInfo``), never calls Ray. A plan that cannot be met
raises ``UserError`` before any work starts.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cluster.placement import plan_workers
from cluster.probe import NodeInfo
from orchestrator.request import RunRequest
from workloads.errors import UserError


@dataclass(frozen=True, slots=True)
class WorkerSlot:
    """One worker of a trial: its rank, node and CPUs (empty ``cpus`` when unpinned)."""

    rank: int
    node_id: str
    hostname: str
    cpus: tuple[int, ...]
    pinned: bool
    l3_domain: int | None
    numa_node: int | None


@dataclass(frozen=True, slots=True)
class Trial:
    """One measured point: a workload with parameters on a set of worker slots."""

    trial_id: str
    workload: str
    params: Mapping[str, Any]
    placement: str
    threads_per_worker: int
    mode: str
    slots: tuple[WorkerSlot, ...]

    @property
    def node_ids(self) -> tuple[str, ...]:
        """Return the distinct node ids taking part, in slot order."""
        return tuple(dict.fromkeys(s.node_id for s in self.slots))


def make_trial_id(workload: str, params: Mapping[str, Any], nodes: int, workers: int,
                  placement: str, threads_per_worker: int, mode: str) -> str:
    """Return a stable id for a sweep point: the workload name plus 10 hex digits of a hash.

    The same point gives the same id in every run, which is what ``--resume`` matches on.
    """
    key = json.dumps([workload, dict(params), nodes, workers, placement, threads_per_worker, mode],
                     sort_keys=True, default=str)
    return f"{workload}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"


def select_nodes(nodes: Sequence[NodeInfo], count: int) -> tuple[NodeInfo, ...]:
    """Return the first ``count`` nodes of the probe order (other nodes first, the head last).

    The head runs Ray's GCS, so it is the noisiest node and is used only when needed.

    Raises:
        UserError: the cluster has fewer alive nodes than ``count``.
    """
    if count > len(nodes):
        raise UserError(f"--nodes {count} asks for more nodes than the cluster has ({len(nodes)} alive); "
                        "use fewer nodes or add nodes to the cluster.")
    return tuple(nodes[:count])


def plan_point(
    workload: str,
    params: Mapping[str, Any],
    nodes: Sequence[NodeInfo],
    workers_per_node: int,
    placement: str,
    threads_per_worker: int,
    reserve_cpus: int,
    mode: str,
) -> Trial:
    """Return the trial for one point: ``workers_per_node`` workers on each of ``nodes``.

    Raises:
        UserError: a node cannot hold the workers (placement refused, or Ray offers fewer
            CPUs there than the workers request).
    """
    slots: list[WorkerSlot] = []
    for node in nodes:
        need = workers_per_node * threads_per_worker
        if need > node.ray_cpus:
            raise UserError(
                f"--workers {workers_per_node} x --threads-per-worker {threads_per_worker} needs {need} CPUs "
                f"on node {node.hostname} ({node.ip}), but Ray offers {node.ray_cpus} there; "
                "use fewer workers or start that node with more --num-cpus."
            )
        plan = plan_workers(node.topology, placement, workers_per_node, threads_per_worker, reserve_cpus)
        for p in plan:
            slots.append(WorkerSlot(len(slots), node.node_id, node.hostname, tuple(p.cpus), p.pinned,
                                    p.l3_domain, p.numa_node))
    trial_id = make_trial_id(workload, params, len(nodes), len(slots), placement, threads_per_worker, mode)
    return Trial(trial_id, workload, dict(params), placement, threads_per_worker, mode, tuple(slots))


def plan_trials(request: RunRequest, nodes: Sequence[NodeInfo]) -> tuple[Trial, ...]:
    """Return one trial per workload of ``request`` on its selected nodes, in request order."""
    chosen = select_nodes(nodes, request.nodes)
    return tuple(
        plan_point(name, request.params[name], chosen, request.workers, request.placement,
                   request.threads_per_worker, request.reserve_cpus, request.mode)
        for name in request.workloads
    )
