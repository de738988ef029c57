"""Resource figures of a trial (CPU utilization, RSS) and the flags that warn about its figures.

Flags, after pyperf's and Phoronix's practice of warning instead of silently averaging:

- ``unstable``: the metric's coefficient of variation is above ``--max-cv`` (5% by default).
- ``noisy``: a CPU outside the plan averaged more than ``NOISY_CPU_PERCENT`` while the
  trial measured (other load on the node competes for memory bandwidth, caches and power).
- ``underused``: a planned CPU averaged less than ``UNDERUSED_CPU_PERCENT`` (the workload
  waited on I/O, locks or the network, or the pinning did not take).

Thresholds are module constants, overridable per call. On a 2-CPU machine with 2 workers
no CPU lies outside the plan, so ``noisy`` cannot fire; with 1 worker the other CPU carries
Ray's own processes (and anything else running), usually well under 50%. Unpinned trials
(placement ``none``) have no plan, so they get neither ``noisy`` nor ``underused``.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Hashable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from orchestrator.settings import DEFAULTS, Sampling

NOISY_CPU_PERCENT = 50.0
"""Mean utilization (0-100) above which a CPU outside the plan makes a trial ``noisy``."""

UNDERUSED_CPU_PERCENT = 50.0
"""Mean utilization (0-100) below which a planned CPU makes a trial ``underused``."""

MIN_OVERLAP = 0.9
"""Overlap (0..1) below which a trial is flagged ``desynchronized``: its workers' samples,
though started together, did not run together for most of their time."""

FLAG_ORDER = ("unstable", "desynchronized", "noisy", "underused")


@dataclass(frozen=True, slots=True)
class FlagThresholds:
    """The limits the flags compare against (CV as a fraction, utilization in percent)."""

    max_cv: float = DEFAULTS.max_cv
    noisy_cpu_percent: float = NOISY_CPU_PERCENT
    underused_cpu_percent: float = UNDERUSED_CPU_PERCENT
    min_overlap: float = MIN_OVERLAP


DEFAULT_THRESHOLDS = FlagThresholds()


def thresholds(sampling: Sampling) -> FlagThresholds:
    """Return the flag thresholds a trial measured with ``sampling`` is judged by."""
    return FlagThresholds(max_cv=sampling.max_cv)


def peak_rss(resources: pa.Table) -> float | None:
    """Return the largest ``rss_bytes`` value in ``resources`` (bytes); None when there is none."""
    rows = resources.filter(pc.equal(resources["kind"], "rss_bytes"))
    return float(pc.max(rows["value"]).as_py()) if rows.num_rows else None


def flag_trial(
    cpu_means_by_cpu: Mapping[Hashable, float],
    pinned: Collection[Hashable],
    cv: float | None,
    thresholds: FlagThresholds = DEFAULT_THRESHOLDS,
) -> tuple[str, ...]:
    """Return the flags (in ``FLAG_ORDER``) of a metric with ``cv`` measured on ``pinned`` CPUs.

    ``cpu_means_by_cpu`` maps each CPU seen (any key: a CPU number, or ``(node, cpu)`` across
    nodes) to its mean utilization in percent; ``pinned`` is the plan's CPUs (empty: unpinned,
    no resource flags). A ``cv`` of None (fewer than 2 samples) is never ``unstable``; a planned
    CPU without utilization samples is not judged.
    """
    flags = []
    if cv is not None and math.isfinite(cv) and cv > thresholds.max_cv:
        flags.append("unstable")
    if pinned:
        plan = set(pinned)
        if any(v > thresholds.noisy_cpu_percent for c, v in cpu_means_by_cpu.items() if c not in plan):
            flags.append("noisy")
        if any(cpu_means_by_cpu[c] < thresholds.underused_cpu_percent for c in plan if c in cpu_means_by_cpu):
            flags.append("underused")
    return tuple(flags)


def resource_columns(
    cpu_means_by_cpu: Mapping[Hashable, float],
    pinned: Collection[Hashable],
    peak_rss_by_rank: Mapping[int, float | None],
) -> dict[str, Any]:
    """Return a trial's resource columns of ``trials`` (percent 0-100, bytes); None where unmeasured."""
    plan = set(pinned)
    mine = [v for c, v in cpu_means_by_cpu.items() if c in plan]
    other = [v for c, v in cpu_means_by_cpu.items() if c not in plan] if plan else []
    peaks = [None if peak_rss_by_rank.get(r) is None else int(peak_rss_by_rank[r]) for r in sorted(peak_rss_by_rank)]
    known = [p for p in peaks if p is not None]
    return {
        "pinned_cpu_percent": float(np.mean(mine)) if mine else None,
        "idlest_pinned_cpu_percent": min(mine) if mine else None,
        "busiest_other_cpu_percent": max(other) if other else None,
        "peak_rss_bytes": max(known) if known else None,
        "worker_peak_rss_bytes": peaks,
    }
