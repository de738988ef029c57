"""Acquire the run's workers: one pinned worker actor per (node, CPU set, threads), reused across trials."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from cluster.worker import Worker
from orchestrator.pipeline.costs import count_calls
from orchestrator.records import WorkerSlot
from orchestrator.settings import DEADLINES


class ActorsNotStarted(Exception):
    """A trial's worker actors did not start within ``DEADLINES.actor_start_s``; ``str()`` says where and why."""


def _not_started(missing: Sequence[WorkerSlot], threads: int, waited_s: float) -> str:
    """Say which workers did not start, on which nodes, and what Ray has free there."""
    free = {n["NodeID"]: n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")}
    available = ray.available_resources()
    nodes = sorted({s.node_id for s in missing})
    where = "; ".join(f"node {n[:12]} offers {free.get(n, {}).get('CPU', 0):g} CPUs to Ray"
                      if n in free else f"node {n[:12]} is no longer alive" for n in nodes)
    return (f"{len(missing)} worker(s) of {threads} CPU(s) each did not start within {waited_s:g} s ({where}; "
            f"{available.get('CPU', 0):g} CPUs are free in the cluster now): other actors or tasks hold the CPUs "
            "(`ray status` shows them); free them, or ask for fewer workers or threads per worker.")


class ActorPool:
    """Keeps one pinned worker actor per (node, CPU set, threads), reused across trials."""

    def __init__(self) -> None:
        self._actors: dict[tuple, Any] = {}

    @staticmethod
    def _key(slot: WorkerSlot, threads: int) -> tuple:
        # Pinned slots are told apart by their CPUs (placement never repeats a CPU);
        # unpinned ones all share the node's CPUs, so only their rank tells them apart.
        return (slot.node_id, threads, slot.cpus if slot.pinned else ("unpinned", slot.rank))

    def acquire(self, slots: Sequence[WorkerSlot], threads: int, deadline_s: float | None = None) -> list[Any]:
        """Return one started actor per slot, creating what is missing, within ``deadline_s`` (``actor_start_s``).

        Actors of other shapes are released first: their CPUs may be what the new ones need
        (a sweep over threads per worker on a small machine would otherwise wait forever).

        Raises:
            ActorsNotStarted: some did not start in time (the sentence says where and why).
        """
        deadline_s = DEADLINES.actor_start_s if deadline_s is None else deadline_s
        wanted = {self._key(slot, threads) for slot in slots}
        for key in [k for k in self._actors if k not in wanted]:
            ray.kill(self._actors.pop(key))
        actors = [self.get(slot, threads) for slot in slots]
        ready = [a.__ray_ready__.remote() for a in actors]
        count_calls(len(ready))
        done, _ = ray.wait(ready, num_returns=len(ready), timeout=deadline_s)
        if len(done) < len(ready):
            missing = [slot for slot, ref in zip(slots, ready) if ref not in done]
            for slot in missing:
                self.discard(slot, threads)
            raise ActorsNotStarted(_not_started(missing, threads, deadline_s))
        ray.get(done)  # an actor whose constructor failed raises here, with its error
        return actors

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
