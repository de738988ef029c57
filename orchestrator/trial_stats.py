"""The ``trials`` rows of one trial: per-metric statistics and aggregate throughput."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from orchestrator.analysis.stats import summarize
from orchestrator.planner import Trial
from orchestrator.resources import DEFAULT_THRESHOLDS, FLAG_ORDER, FlagThresholds, flag_trial
from workloads.base import Metric


def _base_row(run_id: str, trial: Trial) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "trial_id": trial.trial_id,
        "workload": trial.workload,
        "params": json.dumps(dict(trial.params), sort_keys=True, default=str),
        "nodes": len(trial.node_ids),
        "node_ids": list(trial.node_ids),
        "workers": len(trial.slots),
        "placement": trial.placement,
        "threads_per_worker": trial.threads_per_worker,
        "mode": trial.mode,
    }


def failed_rows(run_id: str, trial: Trial, metric: Metric, error: str) -> list[dict[str, Any]]:
    """Return the single row recording that ``trial`` failed with ``error``."""
    return [{**_base_row(run_id, trial), "metric": metric.name, "unit": metric.unit,
             "higher_is_better": metric.higher_is_better, "n": 0, "status": "failed", "error": error,
             "flags": []}]


def trial_rows(
    run_id: str,
    trial: Trial,
    samples: pa.Table,
    metrics: tuple[Metric, ...],
    trial_columns: Mapping[str, Any] | None = None,
    trial_flags: tuple[str, ...] = (),
    thresholds: FlagThresholds = DEFAULT_THRESHOLDS,
) -> list[dict[str, Any]]:
    """Return one row per metric of ``trial`` from its measured (non-warm-up) long samples.

    Statistics run over every worker's samples together (per-worker figures). The first
    metric is the primary throughput: its row also gets ``aggregate_throughput`` (all
    workers' operations per second over the wall time of their synchronized rounds) and
    ``overlap`` (see ``concurrent_throughput``; gaps between rounds never count as idle time). ``trial_columns`` (stop reason, resources)
    are copied onto every row; ``trial_flags`` (noisy/underused) join each row's own
    ``unstable`` flag (its CV above ``thresholds.max_cv``).
    """
    measured = samples.filter(pc.invert(samples["warmup"]))
    rows = []
    for index, metric in enumerate(metrics):
        subset = measured.filter(pc.equal(measured["metric"], metric.name))
        if subset.num_rows == 0:
            continue
        values = subset["value"].to_numpy()
        s = summarize(values)
        row = {**_base_row(run_id, trial), "metric": metric.name, "unit": metric.unit,
               "higher_is_better": metric.higher_is_better, "n": s.n, "mean": s.mean,
               "median": s.median, "stdev": s.stdev, "mad": s.mad, "cv": s.cv, "min": s.min,
               "max": s.max, "p5": s.p5, "p95": s.p95, "p99": s.p99, "ci_low": s.ci_low,
               "ci_high": s.ci_high, "outliers": s.outliers, "status": "ok", "error": None,
               **dict(trial_columns or {})}
        own = flag_trial({}, (), s.cv, thresholds)
        row["flags"] = [f for f in FLAG_ORDER if f in own or f in trial_flags]
        if index == 0:
            together = concurrent_throughput(subset)
            agg = together.aggregate
            row["aggregate_throughput"] = None if not np.isfinite(agg) else float(agg)
            row["overlap"] = float(together.overlap)
            if len(trial.slots) > 1 and together.overlap < thresholds.min_overlap:
                row["flags"] = [f for f in FLAG_ORDER if f in row["flags"] or f == "desynchronized"]
        rows.append(row)
    return rows


@dataclass(frozen=True, slots=True)
class Concurrency:
    """How much the workers of a trial achieved together.

    Attributes:
        per_repetition: for each repetition measured by every worker, all workers' ops over
            the round's wall time, from the first start to the last end (ops/s).
        aggregate: all those ops over the rounds' total wall time (ops/s); NaN when none.
        overlap: the smallest, over workers, of the share of its measuring time during which
            every worker was running (0..1; 1 = the workers always ran together).
    """

    per_repetition: np.ndarray
    aggregate: float
    overlap: float


def concurrent_throughput(subset: pa.Table) -> Concurrency:
    """Return the ``Concurrency`` of one metric's measured samples of one trial.

    Every worker starts repetition r at one shared instant with the same iteration count,
    so repetition r is a round of equal work; its throughput is the work of all workers
    over the round's makespan. Nothing assumes a worker's rate was uniform within its
    sample (it is not when workers share CPUs: the last ones speed up once others finish),
    and stragglers count against the round, as in any parallel step that waits for all.
    Gaps between rounds are never counted.
    """
    ranks = sorted(set(subset["worker_rank"].to_pylist()))
    reps = subset["repetition"].to_numpy()
    starts, ends = subset["start_ns"].to_numpy(), subset["end_ns"].to_numpy()
    ops = subset["ops"].to_numpy().astype(np.float64)
    rank_of = np.asarray(subset["worker_rank"].to_numpy())
    per_rep: list[float] = []
    ops_total = wall_total = 0.0
    inside = dict.fromkeys(ranks, 0.0)
    duration = dict.fromkeys(ranks, 0.0)
    for rep in np.unique(reps):
        here = reps == rep
        if len(set(rank_of[here].tolist())) != len(ranks):
            continue  # not measured by every worker (a failed or partial batch)
        s, e = starts[here], ends[here]
        wall_ns = int(e.max() - s.min())
        if wall_ns <= 0:
            continue
        common_start, common_end = s.max(), e.min()
        for r in ranks:
            mine = rank_of[here] == r
            duration[r] += float((e[mine] - s[mine]).sum())
            inside[r] += float(np.clip(np.minimum(e[mine], common_end) - np.maximum(s[mine], common_start),
                                       0, None).sum())
        per_rep.append(float(ops[here].sum() / (wall_ns / 1e9)))
        ops_total += float(ops[here].sum())
        wall_total += wall_ns / 1e9
    overlap = min((inside[r] / duration[r] if duration[r] else 0.0) for r in ranks) if ranks else 0.0
    return Concurrency(np.array(per_rep), ops_total / wall_total if wall_total > 0 else float("nan"), overlap)


def is_stable(values: Sequence[float] | np.ndarray, rel_ci: float) -> bool:
    """Return whether the bootstrap 95% CI half-width of the median is at most ``rel_ci`` × |median|.

    Uses the same CI as the stored trial row (``stats.summarize``); False below 3 values,
    where no CI exists.
    """
    s = summarize(values)
    if s.ci_low is None or s.ci_high is None:
        return False
    return (s.ci_high - s.ci_low) / 2 <= rel_ci * abs(s.median)
