"""Latency figures from every request: merged histograms, count guards, round CIs, generator flags."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from sysfs_builder import vm_no_smt

from cluster.resource_monitor import RESOURCE_COLUMNS
from cluster.topology import read_topology
from orchestrator.analysis.latency import merged_percentile_ci, round_histograms
from orchestrator.pipeline.record import build_record
from orchestrator.records import MeasuredTrial, Shape, Trial, WorkerResult, WorkerSlot
from orchestrator.settings import Sampling
from workloads.histogram import LatencyHistogram
from workloads.registry import get_workload

RUN = "20261129T085512Z-1a2b3c"
MS = 1_000_000


def wide(latencies_ns: list[np.ndarray], extra: dict[str, list[np.ndarray]] | None = None) -> pa.Table:
    """One worker's wide samples: sample r holds the requests latencies_ns[r] (no warm-up)."""
    n = len(latencies_ns)
    columns = {"repetition": list(range(n)), "warmup": [False] * n, "iterations": [len(x) for x in latencies_ns],
               "ops": [len(x) for x in latencies_ns], "elapsed_ns": [10**8] * n,
               "start_ns": [i * 10**9 for i in range(n)], "end_ns": [i * 10**9 + 10**8 for i in range(n)],
               "flags": pa.array([[]] * n, pa.list_(pa.string())),
               "hist:latency": pa.array([LatencyHistogram.of(x).encode() for x in latencies_ns], pa.binary())}
    for name, arrays in (extra or {}).items():
        columns[f"hist:{name}"] = pa.array([LatencyHistogram.of(x).encode() for x in arrays], pa.binary())
    return pa.table(columns)


def record(tmp_path, samples: list[pa.Table], params: dict | None = None):
    trial = Trial("t", "net.http", params or {}, Shape(workers=len(samples)),
                  tuple(WorkerSlot(r, "n", (r,), True) for r in range(len(samples))))
    workers = tuple(WorkerResult(r, "n", "h", (r,), True, s, RESOURCE_COLUMNS.empty_table())
                    for r, s in enumerate(samples))
    return build_record(RUN, (MeasuredTrial(trial, workers, "repetitions", 1.0),),
                        {"n": read_topology(vm_no_smt(tmp_path, 2))}, get_workload("net.http"), Sampling())


def rows_by_metric(rec) -> dict[str, dict]:
    return {r["metric"]: r for r in rec.rows}


def test_a_stall_in_two_samples_shows_in_the_trial_p99(tmp_path):
    """The issue's case: 10 samples of 20k requests, 2 with 6% of requests stalled by 40 ms."""
    rng = np.random.default_rng(0)
    samples = []
    for r in range(10):
        x = rng.normal(1.0, 0.2, 20_000).clip(0.2) * MS
        if r in (3, 7):
            x[rng.choice(x.size, 1200, replace=False)] += 40 * MS
        samples.append(x.astype(np.int64))
    rows = rows_by_metric(record(tmp_path, [wide(samples)]))
    p99 = rows["latency_p99_ms"]
    everything = np.percentile(np.concatenate(samples), 99) / MS
    assert p99["median"] == pytest.approx(everything, rel=0.01) and p99["median"] > 40
    assert p99["requests"] == 200_000
    # The old figure, a median of per-sample p99s, hides the stall entirely:
    assert np.median([np.percentile(x, 99) for x in samples]) / MS < 2
    assert p99["ci_low"] <= p99["median"] <= p99["ci_high"] and p99["ci_method"].startswith("round bootstrap")


def test_percentiles_need_their_request_counts(tmp_path):
    """10-request samples: no per-sample p99; 100 requests over the trial give a p99 but no p99.9."""
    samples = [np.full(10, (i + 1) * MS, dtype=np.int64) for i in range(10)]
    rec = record(tmp_path, [wide(samples)])
    stored = set(rec.tables["samples"]["n"]["metric"].to_pylist())
    assert "latency_p90_ms" in stored and "latency_p99_ms" not in stored
    rows = rows_by_metric(rec)
    assert rows["latency_p99_ms"]["median"] == pytest.approx(10.0, rel=0.001)
    assert rows["latency_p99_ms"]["n"] == 10  # no sample's own p99, but its CI resamples the 10 rounds
    assert "latency_p999_ms" not in rows  # 100 requests cannot support a p99.9
    assert rows["latency_max_ms"]["median"] == pytest.approx(10.0, rel=0.001)
    (latency,) = [r for r in rec.latency if r["metric"] == "latency"]
    assert latency["requests"] == 100 and LatencyHistogram.decode(latency["histogram"]).count == 100


def test_round_cis_merge_workers_and_need_six_rounds():
    rng = np.random.default_rng(1)
    two = [wide([rng.integers(MS, 2 * MS, 500) for _ in range(8)]) for _ in range(2)]
    rounds = round_histograms(two, "latency")
    assert len(rounds) == 8 and all(h.count == 1000 for h in rounds)
    low, high = merged_percentile_ci(rounds, 50)
    assert MS < low < 1.5 * MS < high < 2 * MS
    assert merged_percentile_ci(rounds[:5], 50) is None


def test_an_open_loop_generator_that_falls_behind_is_flagged(tmp_path):
    latency = [np.full(1000, MS, dtype=np.int64) for _ in range(6)]
    late = [np.full(1000, MS // 2, dtype=np.int64) for _ in range(6)]  # send lag p99 0.5 ms > 10% of 1 ms
    on_time = [np.full(1000, MS // 100, dtype=np.int64) for _ in range(6)]
    flagged = rows_by_metric(record(tmp_path, [wide(latency, {"send_lag": late})], {"rate": 1000.0}))
    fine = rows_by_metric(record(tmp_path, [wide(latency, {"send_lag": on_time})], {"rate": 1000.0}))
    closed = rows_by_metric(record(tmp_path, [wide(latency, {"send_lag": late})], {"rate": 0.0}))
    assert "generator_bound" in flagged["requests_per_s"]["flags"]
    assert "generator_bound" not in fine["requests_per_s"]["flags"]
    assert "generator_bound" not in closed["requests_per_s"]["flags"]  # a closed loop has no schedule to miss
