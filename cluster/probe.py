"""Ask every alive Ray node for its topology and environment (one zero-CPU task per node)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from cluster.environment import capture_environment
from cluster.topology import Topology, read_topology


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """One Ray node as the planner sees it."""

    node_id: str
    hostname: str
    ip: str
    is_head: bool
    ray_cpus: int
    topology: Topology
    environment: dict[str, Any]


@ray.remote(num_cpus=0)
def _probe() -> dict[str, Any]:
    # On a node started with `taskset`, the worker inherits the node's CPU set: the live
    # reader intersects the cgroup set with sched_getaffinity, so the plan stays inside it.
    return {"topology": read_topology("/").to_dict(), "environment": capture_environment("/")}


def node_order(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return alive nodes in a stable order: workers by (ip, node id), the head last."""
    alive = [n for n in nodes if n.get("Alive")]

    def key(n: dict[str, Any]) -> tuple:
        is_head = "node:__internal_head__" in n.get("Resources", {})
        return (is_head, n["NodeManagerAddress"], n["NodeID"])

    return sorted(alive, key=key)


def probe_nodes() -> list[NodeInfo]:
    """Return a ``NodeInfo`` for every alive node of the connected cluster, in ``node_order``."""
    nodes = node_order(ray.nodes())
    refs = [
        _probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote()
        for n in nodes
    ]
    out = []
    for n, result in zip(nodes, ray.get(refs)):
        out.append(
            NodeInfo(
                node_id=n["NodeID"],
                hostname=result["environment"]["hostname"],
                ip=n["NodeManagerAddress"],
                is_head="node:__internal_head__" in n.get("Resources", {}),
                ray_cpus=int(n.get("Resources", {}).get("CPU", 0)),
                topology=Topology.from_dict(result["topology"]),
                environment=result["environment"],
            )
        )
    return out
