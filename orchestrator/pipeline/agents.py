"""Place the run's node agents (``node_agent.NodeAgent``): one per node, all at once, one STRICT_SPREAD group.

Each bundle asks for a little of Ray's ``memory`` resource and no CPU, so an agent never takes
a CPU a worker needs (a fraction of one would leave a one-CPU node unable to hold a one-CPU
worker) and fits on any node, a head started with ``--num-cpus 0`` included. Each bundle is
tied to its node by the ``ray.io/node-id`` label; the group is reserved whole or not at all,
so a run learns at once, not one actor at a time, that a node cannot hold its agent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence, Sized
from typing import Any

import ray
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from cluster.nodes import NodeInfo
from orchestrator.pipeline.costs import count_calls
from orchestrator.pipeline.node_agent import NodeAgent
from orchestrator.pipeline.waits import Expect, Sender, gather
from orchestrator.records import Trial

AGENT_MEMORY_BYTES = 64 * 2**20
"""Ray ``memory`` each agent's bundle reserves: about what one idle actor process holds."""

NODE_ID_LABEL = "ray.io/node-id"
"""The label Ray gives every node with its id (``ray.util.placement_group.NODE_ID_LABEL_KEY``)."""


def used_nodes(nodes: Sequence[NodeInfo], trials: Iterable[Trial]) -> list[NodeInfo]:
    """Return the nodes the planned ``trials`` use, in probe order; every node with CPUs for a search."""
    if not isinstance(trials, Sized):  # a capacity search plans its trials as it goes
        return [n for n in nodes if n.ray_cpus > 0]
    used = {node_id for t in trials for node_id in t.node_ids}
    return [n for n in nodes if n.node_id in used]


class AgentsNotPlaced(Exception):
    """The run's agents could not be placed in time; ``str()`` says on which nodes and why."""


def _unfit(nodes: Sequence[NodeInfo]) -> list[str]:
    """Return a phrase per node that cannot take a bundle now: gone, or short of Ray memory."""
    state = {n["NodeID"]: n for n in ray.nodes()}
    out = []
    for node in nodes:
        entry = state.get(node.node_id)
        if entry is None or not entry.get("Alive"):
            out.append(f"node {node.node_id[:12]} ({node.hostname}) is no longer alive")
        elif entry.get("Resources", {}).get("memory", 0) < AGENT_MEMORY_BYTES:
            out.append(f"node {node.node_id[:12]} ({node.hostname}) offers Ray less than "
                       f"{AGENT_MEMORY_BYTES // 2**20} MiB of memory")
    return out


class NodeAgents:
    """The run's agents by node id (its workers' nodes, on every host); ``close`` removes them with their group."""

    def __init__(self, group: Any, agents: Mapping[str, Any], writes_to: str | None = None) -> None:
        self._group, self.by_node = group, dict(agents)
        self.writes_to = writes_to
        """The results location the agents write their nodes' parts to, where they reach it (a URI, or a
        folder's absolute path); None: the driver writes them."""

    @classmethod
    def place(cls, nodes: Sequence[NodeInfo], within_s: float, writes_to: str | None = None) -> NodeAgents:
        """Reserve one bundle per node at once and start an agent in each, within ``within_s``.

        ``writes_to``: the run's results location, where each agent writes its node's samples and
        resources itself if it reaches it (``NodeAgent.finish``).

        Raises:
            AgentsNotPlaced: a node is gone or short of memory (said before anything is
                reserved), or the group or the agents did not come up in time.
        """
        if not nodes:
            return cls(None, {}, writes_to)
        unfit = _unfit(nodes)
        if unfit:
            raise AgentsNotPlaced(f"The node agents cannot be placed: {'; '.join(unfit)}.")
        group = placement_group([{"memory": AGENT_MEMORY_BYTES}] * len(nodes), strategy="STRICT_SPREAD",
                                bundle_label_selector=[{NODE_ID_LABEL: n.node_id} for n in nodes])
        count_calls(1)
        ready, _ = ray.wait([group.ready()], timeout=within_s)
        if not ready:
            remove_placement_group(group)
            why = "; ".join(_unfit(nodes)) or "Ray kept the group pending (`ray status` shows its demands)"
            raise AgentsNotPlaced(f"The {len(nodes)} node agents were not placed within {within_s:g} s: {why}.")
        agents = {n.node_id: NodeAgent.options(memory=AGENT_MEMORY_BYTES, scheduling_strategy=(
            PlacementGroupSchedulingStrategy(group, placement_group_bundle_index=i))).remote()
                  for i, n in enumerate(nodes)}
        placed = cls(group, agents, writes_to)
        try:
            gather([a.__ray_ready__.remote() for a in agents.values()], None, Expect(
                "node agents", within_s, [Sender("the agent", n.node_id, n.hostname) for n in nodes]))
        except BaseException:
            placed.close()
            raise
        return placed

    def close(self) -> None:
        """Kill the agents and release their placement group."""
        for agent in self.by_node.values():
            ray.kill(agent)
        self.by_node.clear()
        if self._group is not None:
            remove_placement_group(self._group)
            self._group = None
