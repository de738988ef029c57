"""The plain records every layer shares: what to measure (``Point`` on a ``Shape``) and the
planned ``Trial`` with its ``WorkerSlot``s.

The planner makes them, the pipeline runs them, analysis and the store read them; this
module imports nothing of those layers, so each can import it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cluster.placement_policy import COMPACT, Placement
from orchestrator.settings import Mode, Sampling


@dataclass(frozen=True, slots=True)
class Shape:
    """How a trial's workers are laid out, shared by ``run`` and every sweep point.

    Attributes:
        workers: workers per node.
        nodes: how many of the cluster's nodes to use (stable order, head last).
        placement: a parsed placement policy or CPU expression.
        threads_per_worker: CPUs (and BLAS/numba threads) per worker.
        reserve_cpus: CPUs per node kept free for Ray's own processes.
        mode: weak (each worker does the full work) or strong (the work is split).
    """

    workers: int = 1
    nodes: int = 1
    placement: Placement = COMPACT
    threads_per_worker: int = 1
    reserve_cpus: int = 0
    mode: Mode = Mode.WEAK


@dataclass(frozen=True, slots=True)
class Point:
    """One point to measure: a workload with a full parameter set, on a worker shape."""

    workload: str
    params: Mapping[str, Any]
    shape: Shape
    label: str = ""
    """Tells apart points that are otherwise equal (a search's repeated steps); part of the trial id."""
    sampling: Sampling | None = None
    """How to measure this point, when not as the run's ``Sampling`` says (a longer search step)."""


@dataclass(frozen=True, slots=True)
class WorkerSlot:
    """One worker of a trial: its rank, node and CPUs (all the node's usable CPUs when unpinned)."""

    rank: int
    node_id: str
    cpus: tuple[int, ...]
    pinned: bool


@dataclass(frozen=True, slots=True)
class Trial:
    """One measured point: a workload with parameters on a set of worker slots."""

    trial_id: str
    workload: str
    params: Mapping[str, Any]
    shape: Shape
    slots: tuple[WorkerSlot, ...]
    service_node_id: str | None = None  # node of the workload's shared server, if any
    hosts: int = 1
    """How many machines the trial's nodes run on (nodes of one host share its CPUs)."""
    sampling: Sampling | None = None
    """This trial's own sampling (a search step's), else None: the run's."""

    @property
    def node_ids(self) -> tuple[str, ...]:
        """Return the distinct node ids taking part, in slot order."""
        return tuple(dict.fromkeys(s.node_id for s in self.slots))
