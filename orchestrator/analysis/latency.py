"""Latency figures from every request: per-sample percentiles, and a trial's from its merged histogram.

A workload returns each sample's latencies as a ``LatencyHistogram`` (``Measurement.histograms``,
carried in the worker's wide table as ``hist:<name>`` bytes). Each sample gets its own
percentiles (the round's units for comparisons), with the count guards of ``min_count``; the
trial's p50…p99.9, mean and max come from the histogram of all its requests merged, never from
a median of per-sample percentiles, which hides stalls that hit a few samples. The CI of a
merged percentile resamples rounds (each round's workers merged): a cluster bootstrap.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from workloads.base import Metric, Workload, latency_metrics
from workloads.histogram import (
    LATENCY_PERCENTILES,
    NS_PER_UNIT,
    LatencyHistogram,
    bucket_matrix,
    generator_bound,
    latency_summary,
    min_count,
)

RESAMPLES = 2000
"""Bootstrap resamples of a merged percentile (each resample merges whole rounds' histograms)."""

MIN_ROUNDS_FOR_CI = 6
"""Rounds below which a merged percentile gets no CI (as every other figure)."""


def hist_column(name: str) -> str:
    """Return the wide-table column that carries latency histogram ``name`` (encoded bytes)."""
    return f"hist:{name}"


def decode(wide: pa.Table, name: str) -> list[LatencyHistogram | None]:
    """Return each sample's histogram ``name`` (None where the sample has none)."""
    column = hist_column(name)
    if column not in wide.column_names:
        return [None] * wide.num_rows
    return [None if data is None else LatencyHistogram.decode(data) for data in wide[column].to_pylist()]


def with_sample_percentiles(wide: pa.Table, workload: type[Workload]) -> pa.Table:
    """Return ``wide`` with one ``metric:<derived>`` column per latency percentile, mean and max.

    A sample too small for a percentile (``min_count``) gets NaN there, so no value is stored.
    """
    for latency in workload.latencies:
        summaries = [latency_summary(h, latency.unit) if h is not None else {} for h in decode(wide, latency.name)]
        for metric, key in zip(latency_metrics(latency), [k for k, _ in LATENCY_PERCENTILES] + ["mean", "max"]):
            values = [s.get(key) for s in summaries]
            wide = wide.append_column(f"metric:{metric.name}",
                                      pa.array([np.nan if v is None else float(v) for v in values], pa.float64()))
    return wide


def round_histograms(samples: Sequence[pa.Table], name: str) -> list[LatencyHistogram]:
    """Return per measured round the histogram ``name`` of all workers merged (rounds every worker has)."""
    per_round: dict[int, list[LatencyHistogram]] = {}
    for wide in samples:
        for rep, warm, h in zip(wide["repetition"].to_pylist(), wide["warmup"].to_pylist(), decode(wide, name)):
            if not warm and h is not None:
                per_round.setdefault(rep, []).append(h)
    return [LatencyHistogram.merged(hs) for rep, hs in sorted(per_round.items()) if len(hs) == len(samples)]


def node_histograms(samples: Sequence[pa.Table], workload: type[Workload]) -> pa.Table | None:
    """Return one node's latency histograms merged per measured round over its workers' wide tables.

    One row per round every worker measured (repetition, warmup, ``hist:<name>``), so a trial's
    nodes hand on one histogram per round and distribution, not one per worker; None without
    latencies. ``trial_latencies`` reads such tables as it reads a worker's.
    """
    if not workload.latencies:
        return None
    columns: dict[str, Any] = {}
    for latency in workload.latencies:
        per_round: dict[int, list[LatencyHistogram]] = {}
        for wide in samples:
            for rep, warm, h in zip(wide["repetition"].to_pylist(), wide["warmup"].to_pylist(),
                                    decode(wide, latency.name)):
                if not warm and h is not None:
                    per_round.setdefault(rep, []).append(h)
        full = {rep: hs for rep, hs in per_round.items() if len(hs) == len(samples)}
        columns.setdefault("repetition", sorted(full))
        columns[hist_column(latency.name)] = pa.array(
            [LatencyHistogram.merged(full[rep]).encode() if rep in full else None for rep in columns["repetition"]],
            pa.binary())
    columns["warmup"] = [False] * len(columns["repetition"])
    return pa.table(columns)


def merged_percentile_ci(rounds: Sequence[LatencyHistogram], q: float, seed: int = 0,
                         confidence: float = 0.95) -> tuple[float, float] | None:
    """Return a percentile-bootstrap CI (ns) of percentile ``q`` of the merged histogram, resampling rounds.

    None below ``MIN_ROUNDS_FOR_CI`` rounds, or when a resample is too small for the percentile.
    """
    if len(rounds) < MIN_ROUNDS_FOR_CI:
        return None
    values, counts = bucket_matrix(rounds)
    rng = np.random.default_rng(seed)
    n = len(rounds)
    weights = rng.multinomial(n, np.full(n, 1.0 / n), size=RESAMPLES)
    resampled = weights @ counts  # resamples x buckets
    totals = resampled.sum(axis=1)
    if totals.min() < min_count(q):
        return None
    targets = np.maximum((q * totals / 100 + 0.5).astype(np.int64), 1)
    cumulative = np.cumsum(resampled, axis=1)
    index = np.minimum((cumulative < targets[:, None]).sum(axis=1), values.size - 1)
    estimates = values[index].astype(np.float64)
    tail = (1 - confidence) / 2
    low, high = np.quantile(estimates, [tail, 1 - tail])
    return float(low), float(high)


@dataclass(frozen=True, slots=True)
class TrialLatency:
    """One latency distribution of a trial: all its requests merged, and its rounds."""

    metric: Metric
    merged: LatencyHistogram
    rounds: tuple[LatencyHistogram, ...]


def trial_latencies(samples: Sequence[pa.Table], workload: type[Workload]) -> list[TrialLatency]:
    """Return each declared latency of a trial with every request of its measured samples merged."""
    out = []
    for latency in workload.latencies:
        hists = [h for wide in samples
                 for warm, h in zip(wide["warmup"].to_pylist(), decode(wide, latency.name)) if not warm and h]
        if hists:
            out.append(TrialLatency(latency, LatencyHistogram.merged(hists),
                                    tuple(round_histograms(samples, latency.name))))
    return out


def merged_figures(latencies: Sequence[TrialLatency]) -> dict[str, dict[str, Any]]:
    """Return per derived metric name the trial's figure from the merged histogram, its CI and count.

    {"value", "ci_low", "ci_high", "requests", "rounds"}: a percentile or the mean and max of every
    request of the trial, in the latency's unit; the CI (percentiles only) resamples the rounds.
    """
    from workloads.histogram import NS_PER_UNIT

    out: dict[str, dict[str, Any]] = {}
    quantile = dict(LATENCY_PERCENTILES)
    for lat in latencies:
        scale = NS_PER_UNIT[lat.metric.unit]
        summary = latency_summary(lat.merged, lat.metric.unit)
        for metric, key in zip(latency_metrics(lat.metric), [k for k, _ in LATENCY_PERCENTILES] + ["mean", "max"]):
            ci = merged_percentile_ci(lat.rounds, quantile[key]) if key in quantile and summary[key] else None
            out[metric.name] = {"value": summary[key], "requests": lat.merged.count, "rounds": len(lat.rounds),
                                "ci_low": ci and ci[0] / scale, "ci_high": ci and ci[1] / scale}
    return out


def latency_flags(latencies: Sequence[TrialLatency], params: Mapping[str, Any]) -> set[str]:
    """Return ``generator_bound`` when an open-loop trial's send-lag p99 exceeds 10% of its latency p50."""
    by_name = {lat.metric.name: lat.merged for lat in latencies}
    if params.get("rate", 0) and "send_lag" in by_name and "latency" in by_name:
        return {"generator_bound"} if generator_bound(by_name["send_lag"], by_name["latency"]) else set()
    return set()


def latency_table_rows(run_id: str, trial_id: str, workload: str, latencies: Sequence[TrialLatency]) -> list[dict]:
    """Return the ``latency`` rows of a trial: each distribution's merged histogram, encoded."""
    return [{"run_id": run_id, "trial_id": trial_id, "workload": workload, "metric": lat.metric.name,
             "unit": lat.metric.unit, "requests": lat.merged.count, "rounds": len(lat.rounds),
             "histogram": lat.merged.encode()} for lat in latencies]


def percentile_spectrum(histogram: bytes, unit: str) -> tuple[np.ndarray, np.ndarray]:
    """Return (quantiles, latency in ``unit``) of every bucket of an encoded merged histogram."""
    values, counts = LatencyHistogram.decode(histogram).buckets()
    below = np.cumsum(counts) - counts  # values before each bucket
    return below / counts.sum(), values / NS_PER_UNIT[unit]
