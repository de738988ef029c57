"""Ray plumbing of a run: one pinned worker actor per CPU set, gathering results, naming Ray errors."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from cluster.worker import Worker
from orchestrator.records import WorkerSlot

GATHER_BATCH = 16


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


class TrialTimeout(Exception):
    """A trial ran past its ``--trial-timeout``."""


def gather(refs: Sequence[ray.ObjectRef], deadline: float | None = None) -> list[Any]:
    """Return ``ray.get`` of ``refs`` in their order, fetching in batches with ``ray.wait``.

    ``deadline`` (``time.monotonic()`` seconds) bounds the wait.

    Raises:
        TrialTimeout: the deadline passed before every result came.
    """
    pending = list(refs)
    done: dict[ray.ObjectRef, Any] = {}
    while pending:
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            raise TrialTimeout
        ready, pending = ray.wait(pending, num_returns=min(GATHER_BATCH, len(pending)), timeout=left)
        done.update(zip(ready, ray.get(ready)))
    return [done[r] for r in refs]


ERROR_CHARS = 2000
"""Most characters of an error kept in a failed trial's row (the end of a longer one)."""


def describe_error(exc: BaseException) -> str:
    """Return what went wrong: a workload's own message whole (command, exit code, stderr tail), bounded.

    A workload's exception reaches the driver wrapped in a RayTaskError whose ``cause`` is
    the original; Ray's own errors (a lost actor or node) say what happened on their first line.
    """
    cause = getattr(exc, "cause", None)
    if cause is None:
        return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}".strip()
    text = f"{type(cause).__name__}: {cause}".strip()
    return text if len(text) <= ERROR_CHARS else "…" + text[-ERROR_CHARS:]
