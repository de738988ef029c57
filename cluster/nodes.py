"""A Ray node as the planner sees it, and the stable order nodes are used in (no Ray import)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cluster.topology import Topology


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """One Ray node: identity, CPUs Ray offers, topology and environment facts."""

    node_id: str
    hostname: str
    ip: str
    is_head: bool
    ray_cpus: int
    topology: Topology
    environment: dict[str, Any]

    @property
    def host_id(self) -> str:
        """Return which machine this node runs on: the kernel's boot id (else the hostname).

        Nodes in containers of one machine share the kernel, so they share its boot id even
        when their hostnames differ; their workers compete for the same CPUs. A node under
        the simulated-host seam (``cluster.environment.SIMULATED_HOST_ENV``) is its own host.
        """
        env = self.environment
        return env.get("host_id") or env.get("boot_id") or self.hostname


def node_order(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return alive ``ray.nodes()`` entries in a stable order: workers by (ip, node id), the head last."""
    alive = [n for n in nodes if n.get("Alive")]

    def key(n: dict[str, Any]) -> tuple:
        is_head = "node:__internal_head__" in n.get("Resources", {})
        return (is_head, n["NodeManagerAddress"], n["NodeID"])

    return sorted(alive, key=key)
