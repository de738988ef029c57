"""The plain data the driver sends a node's workers through Ray (no Ray, no workload code here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class TrialSpec:
    """What a worker needs to run its part of a trial (plain data, sent through Ray).

    ``min_time_s``, ``resource_interval_s`` and ``scratch_dir`` come from the run's
    ``Sampling``; the rest from the trial's plan.
    """

    workload: str
    params: dict[str, Any]
    worker_rank: int
    workers: int
    min_time_s: float
    resource_interval_s: float
    work_share: float = 1.0
    scratch_dir: str | None = None
    cache_sizes_bytes: dict[str, int] = field(default_factory=dict)
    record_node_cpus: bool = False  # this worker records every CPU of its node (one per node)
    service_endpoint: dict[str, Any] | None = None  # the trial's shared server, when there is one
