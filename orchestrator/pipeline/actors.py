"""Acquire the run's workers: one pinned worker actor per (node, CPU set, threads), reused across trials."""

from __future__ import annotations

from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from cluster.worker import Worker
from orchestrator.records import WorkerSlot


class ActorPool:
    """Keeps one pinned worker actor per (node, CPU set, threads), reused across trials."""

    def __init__(self) -> None:
        self._actors: dict[tuple, Any] = {}

    @staticmethod
    def _key(slot: WorkerSlot, threads: int) -> tuple:
        # Pinned slots are told apart by their CPUs (placement never repeats a CPU);
        # unpinned ones all share the node's CPUs, so only their rank tells them apart.
        return (slot.node_id, threads, slot.cpus if slot.pinned else ("unpinned", slot.rank))

    def get(self, slot: WorkerSlot, threads: int) -> Any:
        """Return the actor for ``slot``, creating it (hard node affinity) when new."""
        key = self._key(slot, threads)
        if key not in self._actors:
            self._actors[key] = Worker.options(
                num_cpus=threads,
                scheduling_strategy=NodeAffinitySchedulingStrategy(slot.node_id, soft=False),
            ).remote(slot.cpus if slot.pinned else (), threads)
        return self._actors[key]

    def discard(self, slot: WorkerSlot, threads: int) -> None:
        """Kill and forget the actor of ``slot`` (after a failure its state is unknown)."""
        actor = self._actors.pop(self._key(slot, threads), None)
        if actor is not None:
            ray.kill(actor)

    def close(self) -> None:
        """Kill every actor."""
        for actor in self._actors.values():
            ray.kill(actor)
        self._actors.clear()
