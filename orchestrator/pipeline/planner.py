"""Expand points (a workload, its parameters and a worker shape) into trials with CPU sets per node.

Pure: takes the probed nodes (``NodeInfo``), never calls Ray. A plan that cannot be met
raises ``UserError`` before any work starts.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from cluster.cpulist import format_cpulist
from cluster.placement import WorkerPlacement, plan_workers
from cluster.placement_policy import PlacementError
from orchestrator.records import Point, Shape, Trial, WorkerSlot
from workloads.errors import UserError
from workloads.params import params_text
from workloads.registry import get_workload
from workloads.units import plural

if TYPE_CHECKING:
    from cluster.nodes import NodeInfo


def make_trial_id(point: Point) -> str:
    """Return a stable id for a point: the workload name plus 10 hex digits of a hash.

    The same point gives the same id in every run, which is what ``--resume`` matches on.
    """
    s = point.shape
    key = json.dumps([point.workload, dict(point.params), s.nodes, s.nodes * s.workers, str(s.placement),
                      s.threads_per_worker, s.mode.value, *([point.label] if point.label else [])],
                     sort_keys=True, default=str)
    return f"{point.workload}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"


def select_nodes(nodes: Sequence[NodeInfo], count: int) -> tuple[NodeInfo, ...]:
    """Return the first ``count`` nodes with CPUs, in the probe order (other nodes first, the head last).

    The head runs Ray's GCS, so it is the noisiest node and is used only when needed; a node
    that offers Ray no CPUs (a head started with ``--num-cpus 0``) is never used for workers.

    Raises:
        UserError: the cluster has fewer alive nodes with CPUs than ``count``.
    """
    usable = [n for n in nodes if n.ray_cpus > 0]
    if count > len(usable):
        idle = len(nodes) - len(usable)
        why = (f" ({len(nodes)} alive, {idle} of them offering Ray no CPUs, such as a head started with "
               "--num-cpus 0)") if idle else ""
        raise UserError(f"The plan needs {count} nodes but the cluster has {len(usable)} alive with CPUs{why}; "
                        "ask for fewer nodes (--nodes, or the sweep key nodes) or add nodes to the cluster.")
    return tuple(usable[:count])


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


def cpu_pools(nodes: Sequence[NodeInfo]) -> list[list[NodeInfo]]:
    """Group nodes that compete for CPUs: same host (``host_id``) and overlapping usable CPUs.

    Each group is one CPU pool: its nodes' workers must get disjoint CPUs, planned together.
    Groups keep the nodes' order; a node alone on its CPUs is a group of one.
    """
    by_host: dict[str, list[list[NodeInfo]]] = {}  # only a host's own pools are compared: O(N), not O(N^2)
    for node in nodes:
        mine = set(node.topology.usable_cpus)
        host = by_host.setdefault(node.host_id, [])
        touching = [p for p in host if any(mine & set(n.topology.usable_cpus) for n in p)]
        merged = [n for p in touching for n in p] + [node]
        host[:] = [p for p in host if all(p is not t for t in touching)] + [merged]
    pools = [p for host in by_host.values() for p in host]
    order = {n.node_id: i for i, n in enumerate(nodes)}
    return sorted(([*sorted(p, key=lambda n: order[n.node_id])] for p in pools), key=lambda p: order[p[0].node_id])


def _plan_pool(pool: Sequence[NodeInfo], shape: Shape) -> list[tuple[NodeInfo, WorkerPlacement]]:
    """Plan ``shape.workers`` workers on every node of one CPU pool, all on disjoint CPUs.

    Raises:
        UserError: the pool's CPUs cannot hold every node's workers with this placement.
    """
    if len(pool) == 1:
        node = pool[0]
        return [(node, p) for p in plan_workers(node.topology, shape.placement, shape.workers,
                                                shape.threads_per_worker, shape.reserve_cpus)]
    shared = sorted({c for n in pool for c in n.topology.usable_cpus})
    topology = replace(pool[0].topology, usable_cpus=tuple(shared))
    names = " and ".join(f"{n.node_id[:8]}" for n in pool) if len(pool) < 4 else f"{len(pool)} nodes"
    where = (f"nodes {names} run on host {pool[0].hostname} and share CPUs {format_cpulist(shared)}; "
             f"{plural(len(pool) * shape.workers, 'worker')} x {plural(shape.threads_per_worker, 'CPU')}")
    try:
        plan = plan_workers(topology, shape.placement, len(pool) * shape.workers, shape.threads_per_worker,
                            shape.reserve_cpus)
    except PlacementError as exc:
        fit = (len(shared) - shape.reserve_cpus) // shape.threads_per_worker
        raise UserError(f"The plan does not fit: {where} do not, {fit} would ({exc}) Use fewer workers or "
                        "nodes, or give the nodes disjoint CPUs (ray start under taskset).") from None
    out = []
    for i, placement in enumerate(plan):
        node = pool[i // shape.workers]
        if placement.pinned and not set(placement.cpus) <= set(node.topology.usable_cpus):
            raise UserError(f"The plan does not fit: {where} cannot be placed, because the nodes' CPU sets "
                            "overlap without being equal; start them with identical or disjoint CPU sets.")
        out.append((node, placement))
    return out


def plan_point(point: Point, cluster: Sequence[NodeInfo]) -> Trial:
    """Return the trial for one point: ``shape.workers`` workers on each of its nodes.

    Nodes of one host that share CPUs are planned as one pool (``cpu_pools``), so their
    workers never land on the same CPU.

    Raises:
        UserError: too few nodes, or the nodes cannot hold the workers (placement refused,
            or Ray offers fewer CPUs there than the workers request).
    """
    shape = point.shape
    nodes = select_nodes(cluster, shape.nodes)
    for node in nodes:
        need = shape.workers * shape.threads_per_worker
        if need > node.ray_cpus:
            raise UserError(  # named for both inputs: --workers on the command line, workers_per_node in a file
                f"{plural(shape.workers, 'worker')} x {plural(shape.threads_per_worker, 'thread')} each need "
                f"{need} CPUs "
                f"on node {node.hostname} ({node.ip}), but Ray offers {node.ray_cpus} there; use fewer "
                "workers (--workers, or workers_per_node in a sweep file) or give that node more CPUs "
                "(ray start --num-cpus)."
            )
    planned = [pair for pool in cpu_pools(nodes) for pair in _plan_pool(pool, shape)]
    rank_of_node = {n.node_id: i for i, n in enumerate(nodes)}
    planned.sort(key=lambda pair: rank_of_node[pair[0].node_id])  # ranks node by node, in node order
    slots = [WorkerSlot(i, node.node_id, p.cpus, p.pinned) for i, (node, p) in enumerate(planned)]
    where = get_workload(point.workload).service_node(point.params)
    service = resolve_node(where, cluster, f"{point.workload}.server_node").node_id if where else None
    return Trial(make_trial_id(point), point.workload, dict(point.params), shape, tuple(slots), service,
                 len({n.host_id for n in nodes}), point.sampling)


def plan_trials(points: Sequence[Point], cluster: Sequence[NodeInfo]) -> tuple[Trial, ...]:
    """Plan every point on the probed ``cluster``, in order, before anything runs.

    Raises:
        UserError: a point the cluster cannot hold, or two points that are the same trial
            (the same workload, parameters and shape), whose samples would overwrite each other.
    """
    if points:
        select_nodes(cluster, max(p.shape.nodes for p in points))  # the largest point first, for a clear message
    trials = tuple(plan_point(p, cluster) for p in points)
    seen: dict[str, Trial] = {}
    for t in trials:
        if t.trial_id in seen:
            raise UserError(f"Two points are the same trial: {t.workload} with {params_text(t.params) or 'defaults'} "
                            f"on {len(t.slots)} workers ({t.shape.placement}); list each parameter value once.")
        seen[t.trial_id] = t
    return trials
