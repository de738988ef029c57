"""The questions the other layers ask the dataset, each one function over ``Dataset``: the only SQL outside the reader.

Each returns plain rows (dicts) or an Arrow table, in a stated order; analysis and render
never see SQL. ``run_id`` is always a resolved id (``Dataset.resolve``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from orchestrator.records import COMPARE_KEY, MetricRounds, RunRounds
from orchestrator.store.reader import Dataset


def run_samples(dataset: Dataset, run_id: str) -> pa.Table:
    """Return every sample of a run with its timing: what a sweep's scaling analysis reads."""
    return dataset.table("SELECT trial_id, worker_rank, repetition, warmup, metric, value, ops, start_ns, end_ns "
                         "FROM samples WHERE run_id = ?", [run_id])


def round_units(dataset: Dataset, run_id: str) -> list[dict[str, Any]]:
    """Return per ok trial, metric and round: the mean over workers and how many workers reported it.

    Rows carry ``COMPARE_KEY``, ``metric``, ``unit``, ``hib`` (higher is better), ``repetition``,
    ``value`` (the round's mean), ``reported`` and ``expected`` (the trial's workers), ordered by
    configuration, metric and round.
    """
    keys = ", ".join("t." + k for k in COMPARE_KEY)
    return dataset.rows(f"""
        SELECT {keys}, t.metric, any_value(t.unit) AS unit, any_value(t.higher_is_better) AS hib,
               s.repetition, avg(s.value) AS value, count(*) AS reported, any_value(t.workers) AS expected
        FROM samples s JOIN trials t
          ON s.run_id = t.run_id AND s.trial_id = t.trial_id AND s.metric = t.metric
        WHERE s.run_id = ? AND NOT s.warmup AND t.status = 'ok' AND isfinite(s.value)
        GROUP BY ALL ORDER BY {keys}, t.metric, s.repetition""", [run_id])


def run_rounds(dataset: Dataset, ref: str) -> RunRounds:
    """Return the run ``ref`` names (an id, ``latest`` or ``latest~N``) with its rounds per metric.

    Raises:
        UserError: a malformed or unknown run reference.
    """
    run_id = dataset.resolve(ref)
    metrics: dict[tuple, tuple[str, bool | None, list[float]]] = {}
    for row in round_units(dataset, run_id):
        key = (*(row[k] for k in COMPARE_KEY), row["metric"])
        entry = metrics.setdefault(key, (row["unit"], row["hib"], []))
        if row["reported"] == row["expected"]:
            entry[2].append(row["value"])
    run = dataset.run(run_id) or {}
    flags = metric_flags(dataset, run_id)
    return RunRounds(run_id, run.get("status"), stored_trials(dataset, run_id), run.get("trials_total"),
                     {k: MetricRounds(unit, hib, tuple(units), flags.get(k, ())) for k, (unit, hib, units) in metrics.items()})


def metric_flags(dataset: Dataset, run_id: str) -> dict[tuple, tuple[str, ...]]:
    """Return per ok configuration (``COMPARE_KEY`` values) and metric the flags its trials carry, sorted."""
    keys = ", ".join(COMPARE_KEY)
    rows = dataset.rows(f"""
        SELECT {keys}, metric, list_sort(list_distinct(flatten(list(flags) FILTER (WHERE flags IS NOT NULL)))) AS flags
        FROM trials WHERE run_id = ? AND status = 'ok' GROUP BY ALL""", [run_id])
    return {(*(r[k] for k in COMPARE_KEY), r["metric"]): tuple(r["flags"] or ()) for r in rows}


def stored_trials(dataset: Dataset, run_id: str) -> int:
    """Return how many distinct trials a run has stored (any status)."""
    return dataset.rows("SELECT count(DISTINCT trial_id) AS n FROM trials WHERE run_id = ?", [run_id])[0]["n"]


def measured_samples(dataset: Dataset, run_id: str) -> list[dict[str, Any]]:
    """Return each measured sample of a run's trials with the trial's shape, by workload, shape and worker."""
    return dataset.rows("""
        SELECT s.workload, t.workers, t.placement, t.params, s.hostname, s.worker_rank, s.metric, s.unit, s.value
        FROM samples s JOIN trials t ON s.run_id = t.run_id AND s.trial_id = t.trial_id AND s.metric = t.metric
        WHERE s.run_id = ? AND NOT s.warmup AND t.overlap IS NOT NULL
        ORDER BY s.workload, t.workers, t.placement, t.params, s.hostname, s.worker_rank""", [run_id])


def scaling(dataset: Dataset, run_id: str) -> list[dict[str, Any]]:
    """Return a run's ``scaling`` rows by workload, parameters, series and N."""
    return dataset.rows("SELECT * FROM scaling WHERE run_id = ? ORDER BY workload, params, series, n", [run_id])


def topologies(dataset: Dataset, run_id: str) -> list[str]:
    """Return the stored topology JSON of each node of a run, the head's first."""
    return [r["topology"] for r in dataset.rows(
        "SELECT topology FROM nodes WHERE run_id = ? ORDER BY is_head DESC", [run_id])]


def point_medians(dataset: Dataset, run_id: str, workload: str, kinds: Sequence[str]) -> list[dict[str, Any]]:
    """Return the ok medians of a workload's per-point metrics (``<kind>@<point>``) of the given kinds."""
    likes = " OR ".join("metric LIKE ?" for _ in kinds)
    return dataset.rows(f"""
        SELECT trial_id, workers, placement, metric, median FROM trials
        WHERE run_id = ? AND workload = ? AND status = 'ok' AND ({likes})""",
                        [run_id, workload, *(f"{k}@%" for k in kinds)])


def latency_histograms(dataset: Dataset, run_id: str, metrics: Sequence[str]) -> list[dict[str, Any]]:
    """Return the merged histograms of a run's latency distributions named ``metrics``, with each trial's shape."""
    return dataset.rows("""
        SELECT l.workload, l.metric, l.unit, l.requests, l.histogram, t.workers, t.placement, t.params
        FROM latency l JOIN (SELECT DISTINCT run_id, trial_id, workers, placement, params FROM trials) t
          ON l.run_id = t.run_id AND l.trial_id = t.trial_id
        WHERE l.run_id = ? AND list_contains(?, l.metric)
        ORDER BY l.workload, l.metric, t.workers""", [run_id, list(metrics)])


def capacity(dataset: Dataset, run_id: str) -> list[dict[str, Any]]:
    """Return a run's ``capacity`` rows by N."""
    return dataset.rows("SELECT * FROM capacity WHERE run_id = ? ORDER BY n", [run_id])


def throughput_unit(dataset: Dataset, run_id: str) -> str | None:
    """Return the unit of the first higher-is-better metric of a run (its throughput), None without one."""
    found = dataset.rows("SELECT unit FROM trials WHERE run_id = ? AND higher_is_better LIMIT 1", [run_id])
    return found[0]["unit"] if found else None


def capacity_steps(dataset: Dataset, run_id: str, trial_ids: Sequence[str], metric: str) -> list[dict[str, Any]]:
    """Return each open-loop step among ``trial_ids``: offered rate (total/s) and ``metric``'s median and CI."""
    return dataset.rows("""
        SELECT t.trial_id, any_value(json_extract(t.params, '$.rate')::DOUBLE * t.workers) AS offered_per_s,
               any_value(median) AS value_ms, any_value(ci_low) AS ci_low_ms, any_value(ci_high) AS ci_high_ms
        FROM trials t WHERE t.run_id = ? AND list_contains(?, t.trial_id)
          AND t.metric = ? AND json_extract(t.params, '$.rate')::DOUBLE > 0
        GROUP BY t.trial_id""", [run_id, list(trial_ids), metric])


def nodes(dataset: Dataset, run_id: str) -> list[dict[str, Any]]:
    """Return a run's ``nodes`` rows, the head's last."""
    return dataset.rows("SELECT * FROM nodes WHERE run_id = ? ORDER BY is_head, hostname, node_id", [run_id])
