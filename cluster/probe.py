"""Ask every alive Ray node for its topology and environment (one zero-CPU task per node)."""

from __future__ import annotations

from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from cluster.environment import capture_environment
from cluster.nodes import NodeInfo, node_order
from cluster.topology import Topology, read_topology


def _facts() -> dict[str, Any]:
    # On a node started with `taskset`, the worker inherits the node's CPU set: the live
    # reader intersects the cgroup set with sched_getaffinity, so the plan stays inside it.
    return {"topology": read_topology("/").to_dict(), "environment": capture_environment("/")}


_probe = ray.remote(num_cpus=0)(_facts)


def probe_nodes(embedded: bool = False) -> list[NodeInfo]:
    """Return a ``NodeInfo`` for every alive node of the connected cluster, in ``node_order``.

    With ``embedded`` (a Ray this process started: one node, whose workers inherit this
    process's CPUs) the facts are read here instead of by a task, which saves starting a
    worker process before the first trial.
    """
    nodes = node_order(ray.nodes())
    if embedded and len(nodes) == 1:
        facts = [_facts()]
    else:
        facts = ray.get([
            _probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote()
            for n in nodes
        ])
    return [
        NodeInfo(
            node_id=n["NodeID"],
            hostname=result["environment"]["hostname"],
            ip=n["NodeManagerAddress"],
            is_head="node:__internal_head__" in n.get("Resources", {}),
            ray_cpus=int(n.get("Resources", {}).get("CPU", 0)),
            topology=Topology.from_dict(result["topology"]),
            environment=result["environment"],
        )
        for n, result in zip(nodes, facts)
    ]
