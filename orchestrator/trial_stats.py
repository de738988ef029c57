"""The ``trials`` rows of one trial: per-metric statistics and aggregate throughput."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from orchestrator.planner import Trial
from orchestrator.resources import DEFAULT_THRESHOLDS, FLAG_ORDER, FlagThresholds, flag_trial
from orchestrator.stats import aggregate_throughput, summarize
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
    batches: Sequence[tuple[int, int]] = (),
    thresholds: FlagThresholds = DEFAULT_THRESHOLDS,
) -> list[dict[str, Any]]:
    """Return one row per metric of ``trial`` from its measured (non-warm-up) long samples.

    Statistics run over every worker's samples together (per-worker figures). The first
    metric is the primary throughput: its row also gets ``aggregate_throughput`` (all
    workers' operations per second over the window in which all were measuring) and
    ``overlap`` (see ``stats.aggregate_throughput``). ``batches`` are the [first, end)
    repetition ranges measured from separate synchronized starts (``--until-stable``): the
    aggregate is then taken per batch and combined over the batches' windows, so the gaps
    between batches do not count as idle time. ``trial_columns`` (stop reason, resources)
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
            agg, overlap = _batched_aggregate(subset, batches)
            row["aggregate_throughput"] = None if not np.isfinite(agg) else float(agg)
            row["overlap"] = float(overlap)
        rows.append(row)
    return rows


def _batched_aggregate(subset: pa.Table, batches: Sequence[tuple[int, int]]) -> tuple[float, float]:
    """Return (ops/s, overlap) over the batches' common windows (no batches: one over all repetitions).

    Each batch's window comes from ``stats.aggregate_throughput``; the throughput is all ops
    inside the windows over their total length, and the overlap is the smallest, over
    workers, of the worker's measuring time inside the windows over its total measuring time.
    """
    reps = subset["repetition"].to_numpy()
    ranges = batches or [(int(reps.min()), int(reps.max()) + 1)]
    ranks = sorted(set(subset["worker_rank"].to_pylist()))
    ops_total, window_total = 0.0, 0.0
    inside = dict.fromkeys(ranks, 0.0)
    duration = dict.fromkeys(ranks, 0.0)
    for first, end in ranges:
        batch = subset.filter(pc.and_(pc.greater_equal(subset["repetition"], first),
                                      pc.less(subset["repetition"], end)))
        per_worker = {}
        for rank in ranks:
            w = batch.filter(pc.equal(batch["worker_rank"], rank))
            if w.num_rows:
                per_worker[rank] = (w["start_ns"].to_numpy(), w["end_ns"].to_numpy(),
                                    w["ops"].to_numpy().astype(np.float64))
        if not per_worker:
            continue
        agg, _, start, end_ns = aggregate_throughput(list(per_worker.values()))
        for rank, (s, e, _) in per_worker.items():
            duration[rank] += float((e - s).sum())
            inside[rank] += float(np.clip(np.minimum(e, end_ns) - np.maximum(s, start), 0, None).sum())
        if np.isfinite(agg):
            window_s = (end_ns - start) / 1e9
            ops_total += agg * window_s
            window_total += window_s
    overlap = min((inside[r] / duration[r] if duration[r] else 0.0) for r in ranks)
    return (ops_total / window_total if window_total > 0 else float("nan")), overlap


def is_stable(values: Sequence[float] | np.ndarray, rel_ci: float) -> bool:
    """Return whether the bootstrap 95% CI half-width of the median is at most ``rel_ci`` × |median|.

    Uses the same CI as the stored trial row (``stats.summarize``); False below 3 values,
    where no CI exists.
    """
    s = summarize(values)
    if s.ci_low is None or s.ci_high is None:
        return False
    return (s.ci_high - s.ci_low) / 2 <= rel_ci * abs(s.median)
