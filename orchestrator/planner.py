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
from workloads.registry import get_workload


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
    service_node_id: str | None = None  # node of the workload's shared server, if any

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
        raise UserError(f"The plan needs {count} nodes but the cluster has {len(nodes)} alive; "
                        "ask for fewer nodes (--nodes, or the sweep key nodes) or add nodes to the cluster.")
    return tuple(nodes[:count])


def resolve_node(where: str, nodes: Sequence[NodeInfo], what: str) -> NodeInfo:
    """Return the node ``where`` names: "head", a hostname, an IP, or a node id (or its prefix).

    Raises:
        UserError: it names no node, or several (``what`` names the setting in the message).
    """
    if where == "head":
        found = [n for n in nodes if n.is_head]
    else:
        found = [n for n in nodes if where in (n.hostname, n.ip) or (len(where) >= 6 and n.node_id.startswith(where))]
    if len(found) != 1:
        names = ", ".join(f"{n.hostname} ({n.ip}{', head' if n.is_head else ''})" for n in nodes)
        problem = "matches no node" if not found else f"matches {len(found)} nodes"
        raise UserError(f"{what}={where!r} {problem} of the cluster; give 'head', a node id, or one of: {names}.")
    return found[0]


def plan_point(
    workload: str,
    params: Mapping[str, Any],
    nodes: Sequence[NodeInfo],
    workers_per_node: int,
    placement: str,
    threads_per_worker: int,
    reserve_cpus: int,
    mode: str,
    cluster: Sequence[NodeInfo] = (),
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
    service_node = get_workload(workload).service_node(params)
    service_node_id = (resolve_node(service_node, cluster or nodes, f"{workload}.server_node").node_id
                       if service_node else None)
    return Trial(trial_id, workload, dict(params), placement, threads_per_worker, mode, tuple(slots),
                 service_node_id)


def plan_trials(request: RunRequest, nodes: Sequence[NodeInfo]) -> tuple[Trial, ...]:
    """Return one trial per workload of ``request`` on its selected nodes, in request order."""
    chosen = select_nodes(nodes, request.nodes)
    return tuple(
        plan_point(name, request.params[name], chosen, request.workers, request.placement,
                   request.threads_per_worker, request.reserve_cpus, request.mode, cluster=nodes)
        for name in request.workloads
    )
