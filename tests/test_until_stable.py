"""``topobench run --until-stable``: the stopping rule, batched aggregates and the CLI end to end."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.planner import Trial, WorkerSlot
from orchestrator.query import run_query
from orchestrator.trial_stats import is_stable, trial_rows
from workloads.base import Metric


def run_cli(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


# --- pure parts -------------------------------------------------------------------------------

def test_is_stable_compares_ci_half_width_with_rel_ci():
    rng = np.random.default_rng(1)
    values = 100 + rng.normal(0, 1, 200)  # CI of the median about ±0.2
    assert is_stable(values, 0.01)
    assert not is_stable(values, 0.0001)
    assert not is_stable([1.0, 2.0], 0.9)  # no CI below 3 values
    assert is_stable([5.0, 5.0, 5.0], 1e-9)  # identical values: zero width


def make_trial() -> Trial:
    slot = WorkerSlot(rank=0, node_id="n", hostname="h", cpus=(0,), pinned=True, l3_domain=0, numa_node=0)
    return Trial(trial_id="t", workload="w", params={}, slots=(slot,), placement="compact",
                 threads_per_worker=1, mode="weak")


def long_samples(reps: list[int], starts_s: list[float], ops: float = 100.0) -> pa.Table:
    n = len(reps)
    return pa.table({
        "metric": ["ops_per_s"] * n, "warmup": [False] * n, "worker_rank": [0] * n,
        "repetition": reps, "value": [ops] * n, "ops": [int(ops)] * n,
        "start_ns": [int(s * 1e9) for s in starts_s], "end_ns": [int((s + 1) * 1e9) for s in starts_s],
    })


def test_gaps_between_repetitions_are_not_idle_time():
    # Four 1-s samples of 100 ops on the shared schedule, with a 10-s gap after the second
    # (e.g. two --until-stable batches): every repetition is its own window.
    samples = long_samples([0, 1, 2, 3], [0.0, 1.0, 12.0, 13.0])
    row = trial_rows("r", make_trial(), samples, (Metric("ops_per_s", "ops/s", "", True),))[0]
    assert row["aggregate_throughput"] == pytest.approx(100.0)
    assert row["overlap"] == 1.0


def test_trial_columns_and_flags_reach_every_row():
    samples = long_samples([0, 1, 2], [0.0, 1.0, 2.0])
    rows = trial_rows("r", make_trial(), samples, (Metric("ops_per_s", "ops/s", "", True),),
                      {"stop_reason": "stable", "measure_s": 3.0}, ("underused",))
    assert rows[0]["stop_reason"] == "stable" and rows[0]["measure_s"] == 3.0
    assert rows[0]["flags"] == ["underused"]  # CV 0: not unstable


def test_bad_rel_ci_and_max_time_are_user_errors(tmp_path):
    result = CliRunner().invoke(app, ["run", "cpu.sqrt_mod", "--until-stable", "--rel-ci", "0",
                                      "--results", str(tmp_path)])
    assert result.exit_code == 2
    assert "--rel-ci 0.0 must be a fraction of the median between 0 and 1, e.g. 0.02." in result.output
    result = CliRunner().invoke(app, ["run", "cpu.sqrt_mod", "--until-stable", "--max-time", "-1",
                                      "--results", str(tmp_path)])
    assert result.exit_code == 2
    assert "--max-time -1.0 must be more than 0 seconds." in result.output
    assert not any(tmp_path.iterdir())


# --- end to end on real Ray -------------------------------------------------------------------

@pytest.mark.ray
def test_loose_rel_ci_stops_as_stable(ray_local, tmp_path):
    result = run_cli("run", "cpu.sqrt_mod", "--until-stable", "--rel-ci", "0.5", "--max-time", "30",
                     "--repetitions", "3", "--min-time", "0.02", "--param", "cpu.sqrt_mod.elements=4096",
                     "--results", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "stopped: stable" in " ".join(result.output.split())
    row = run_query(tmp_path, "SELECT * FROM trials WHERE aggregate_throughput IS NOT NULL").to_pylist()[0]
    assert row["stop_reason"] == "stable"
    assert (row["ci_high"] - row["ci_low"]) / 2 <= 0.5 * row["median"]
    assert row["n"] >= 3 and row["measure_s"] < 30


@pytest.mark.ray
def test_impossible_rel_ci_stops_at_max_time(ray_local, tmp_path):
    result = run_cli("run", "cpu.sqrt_mod", "--workers", "2", "--until-stable", "--rel-ci", "1e-9",
                     "--max-time", "1.5", "--repetitions", "2", "--min-time", "0.02",
                     "--param", "cpu.sqrt_mod.elements=4096", "--results", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "stopped: max-time" in " ".join(result.output.split())
    row = run_query(tmp_path, "SELECT * FROM trials WHERE aggregate_throughput IS NOT NULL").to_pylist()[0]
    assert row["stop_reason"] == "max-time"
    assert 1.0 <= row["measure_s"] < 3.0
    assert 0.0 < row["overlap"] <= 1.0
    # Batches keep adding samples; every worker's repetitions are numbered 0..k-1 without gaps.
    reps = run_query(tmp_path, f"""
        SELECT worker_rank, count(*) AS n, min(repetition) AS lo, max(repetition) AS hi,
               count(DISTINCT repetition) AS distinct_reps
        FROM samples WHERE NOT warmup AND metric = '{row["metric"]}' GROUP BY worker_rank
        ORDER BY worker_rank""").to_pylist()
    assert [r["worker_rank"] for r in reps] == [0, 1]
    assert all(r["n"] > 2 and r["lo"] == 0 and r["hi"] == r["n"] - 1 == r["distinct_reps"] - 1 for r in reps)
    assert row["n"] == sum(r["n"] for r in reps)


def test_two_workers_out_of_step_are_flagged_desynchronized():
    two = Trial(trial_id="t", workload="w", params={}, placement="compact", threads_per_worker=1, mode="weak",
                slots=tuple(WorkerSlot(rank=r, node_id="n", hostname="h", cpus=(r,), pinned=True,
                                       l3_domain=0, numa_node=0) for r in (0, 1)))
    rows = pa.table({"metric": ["ops_per_s"] * 2, "warmup": [False] * 2, "worker_rank": [0, 1],
                     "repetition": [0, 0], "value": [100.0, 100.0], "ops": [100, 100],
                     "start_ns": [0, int(0.5e9)], "end_ns": [int(1e9), int(1.5e9)]})
    row = trial_rows("r", two, rows, (Metric("ops_per_s", "ops/s", "", True),))[0]
    assert row["overlap"] == pytest.approx(0.5) and "desynchronized" in row["flags"]
