"""The synchronized rounds and ``--until-stable``: the stopping rule and the CLI end to end."""

from __future__ import annotations

import numpy as np
import pytest
from dataset import run_query
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.pipeline.rounds import round_values


def run_cli(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


# --- pure parts -------------------------------------------------------------------------------

def test_a_rounds_values_are_every_workers_throughput_in_slot_order():
    # Two agents' answers (node order): when the last call arrived, then (start, end, ops, elapsed) per worker.
    answers = [(5, ((0, 1, 10, 10**9), (0, 1, 20, 2 * 10**9))), (6, ((0, 1, 30, 10**9),))]
    np.testing.assert_allclose(round_values(answers), [10.0, 10.0, 30.0])


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
                     "--invocations", "1", "--repetitions", "3", "--min-time", "0.02", "--param", "cpu.sqrt_mod.elements=4096",
                     "--results", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "stopped: stable" in " ".join(result.output.split())
    row = run_query(tmp_path, "SELECT * FROM trials WHERE aggregate_throughput IS NOT NULL").to_pylist()[0]
    assert row["stop_reason"] == "stable"
    assert (row["ci_high"] - row["ci_low"]) / 2 <= 0.5 * row["median"]
    assert (row["ci_level"], row["ci_method"]) == (0.95, "repeated CI (until-stable)")
    assert row["n"] >= 3 and row["measure_s"] < 30


@pytest.mark.ray
def test_impossible_rel_ci_stops_at_max_time(ray_local, tmp_path):
    result = run_cli("run", "cpu.sqrt_mod", "--workers", "2", "--until-stable", "--rel-ci", "1e-9",
                     "--max-time", "1.5", "--invocations", "1", "--repetitions", "2", "--min-time", "0.02",
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
    assert row["n"] == reps[0]["n"] == reps[1]["n"]  # n counts rounds; each round has both workers' samples
