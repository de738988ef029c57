"""The ``trials`` rows of one trial: per-metric statistics and aggregate throughput."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from orchestrator.planner import Trial
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
             "higher_is_better": metric.higher_is_better, "n": 0, "status": "failed", "error": error}]


def trial_rows(run_id: str, trial: Trial, samples: pa.Table, metrics: tuple[Metric, ...]) -> list[dict[str, Any]]:
    """Return one row per metric of ``trial`` from its measured (non-warm-up) long samples.

    Statistics run over every worker's samples together (per-worker figures). The first
    metric is the primary throughput: its row also gets ``aggregate_throughput`` (all
    workers' operations per second over the window in which all were measuring) and
    ``overlap`` (see ``stats.aggregate_throughput``).
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
               "ci_high": s.ci_high, "outliers": s.outliers, "status": "ok", "error": None}
        if index == 0:
            per_worker = []
            for rank in sorted(set(subset["worker_rank"].to_pylist())):
                w = subset.filter(pc.equal(subset["worker_rank"], rank))
                per_worker.append((w["start_ns"].to_numpy(), w["end_ns"].to_numpy(),
                                   w["ops"].to_numpy().astype(np.float64)))
            agg, overlap, _, _ = aggregate_throughput(per_worker)
            row["aggregate_throughput"] = None if not np.isfinite(agg) else float(agg)
            row["overlap"] = float(overlap)
        rows.append(row)
    return rows
