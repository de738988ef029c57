"""Ask every alive Ray node for its topology and environment (one zero-CPU task per node)."""

from __future__ import annotations

from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from cluster.environment import capture_environment
from cluster.nodes import NodeInfo, node_order
from cluster.topology import Topology, read_topology
from workloads.errors import UserError


def _facts() -> dict[str, Any]:
    # On a node started with `taskset`, the worker inherits the node's CPU set: the live
    # reader intersects the cgroup set with sched_getaffinity, so the plan stays inside it.
    return {"topology": read_topology("/").to_dict(), "environment": capture_environment("/")}


_probe = ray.remote(num_cpus=0)(_facts)


def _gather(nodes: list[dict[str, Any]], within_s: float) -> list[dict[str, Any]]:
    """Run the probe task on every node and return the facts, waiting at most ``within_s``.

    Raises:
        UserError: a node did not answer in time (named, with what to check).
    """
    refs = [_probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote()
            for n in nodes]
    ready, _ = ray.wait(refs, num_returns=len(refs), timeout=within_s)
    if len(ready) < len(refs):
        done = set(ready)
        late = [n for n, ref in zip(nodes, refs) if ref not in done]
        alive = {n["NodeID"] for n in ray.nodes() if n.get("Alive")}
        names = ", ".join(f"{n['NodeID'][:12]} ({n['NodeManagerAddress']}"
                          f"{'' if n['NodeID'] in alive else ', gone since'})" for n in late[:5])
        raise UserError(f"{len(late)} of {len(nodes)} nodes did not answer the probe (a task of 0 CPUs) within "
                        f"{within_s:g} s: {names}; a node that cannot start a worker process (see its raylet.out "
                        "log) or is overloaded does this: fix or remove it (`ray status` lists the nodes).")
    return ray.get(refs)


def probe_nodes(within_s: float, embedded: bool = False) -> list[NodeInfo]:
    """Return a ``NodeInfo`` for every alive node of the connected cluster, in ``node_order``.

    With ``embedded`` (a Ray this process started: one node, whose workers inherit this
    process's CPUs) the facts are read here instead of by a task, which saves starting a
    worker process before the first trial. Other nodes get ``within_s`` to answer.

    Raises:
        UserError: a node did not answer in time.
    """
    nodes = node_order(ray.nodes())
    facts = [_facts()] if embedded and len(nodes) == 1 else _gather(nodes, within_s)
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
