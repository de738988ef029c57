"""The synchronized rounds and ``--until-stable``: the stopping rule and the CLI end to end."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from dataset import run_query
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.pipeline.node_agent import window_missed
from orchestrator.pipeline.rounds import round_values, window_held
from orchestrator.settings import RoundWindow


def run_cli(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


# --- pure parts -------------------------------------------------------------------------------

MS = 1_000_000


def stamps(called: int, start: int, end: int, ops: int = 10, elapsed: int = 10**9) -> tuple[int, ...]:
    return (called, start, end, ops, elapsed)


def test_a_rounds_values_are_every_workers_throughput_in_slot_order():
    # Two agents' answers (node order), per round its instant, then per worker (called, start, end, ops, elapsed).
    answers = [((0, (stamps(0, 0, 1, 10), stamps(0, 0, 1, 20, 2 * 10**9))), (5, (stamps(0, 0, 1, 40),))),
               ((0, (stamps(0, 0, 1, 30),)), (5, (stamps(0, 0, 1, 50),)))]
    np.testing.assert_allclose(round_values(answers, 0), [10.0, 10.0, 30.0])
    np.testing.assert_allclose(round_values(answers, 1), [40.0, 50.0])


def test_a_round_holds_its_window_only_if_every_workers_call_began_by_its_instant():
    # Rounds at 100, 200, 300 ms on node 1's clock; node 2's clock is 1 s ahead: its agent answers its instants.
    ahead = 1000 * MS

    def node(rounds, shift=0):
        return tuple((at + shift, tuple(tuple(x + shift if i < 3 else x for i, x in enumerate(w)) for w in ws))
                     for at, ws in rounds)

    on_time = [(100 * MS, [stamps(90 * MS, 100 * MS, 150 * MS)]), (200 * MS, [stamps(190 * MS, 200 * MS, 250 * MS)]),
               (300 * MS, [stamps(290 * MS, 300 * MS, 350 * MS)])]
    assert window_held([node(on_time), node(on_time, ahead)]) == [True, True, True]
    # Node 2's round 1 runs past round 2's instant: round 2 began late there and is missed; round 1 is kept
    # (a slow round is never dropped for its own time).
    overran = [on_time[0], (200 * MS, [stamps(190 * MS, 200 * MS, 310 * MS)]),
               (300 * MS, [stamps(310 * MS, 310 * MS, 360 * MS)])]
    assert window_held([node(on_time), node(overran, ahead)]) == [True, True, False]
    # The first call arrived after the instant (the driver's margin too short): that round only.
    late = [(100 * MS, [stamps(101 * MS, 101 * MS, 150 * MS)]), *on_time[1:]]
    assert window_held([node(late)]) == [False, True, True]


def test_a_missed_rounds_samples_are_kept_not_measured_and_flagged():
    def row(repetition: int, warmup: bool, flags: list[str]) -> pa.Table:
        return pa.table({"repetition": [repetition], "warmup": [warmup], "ops": [5],
                         "flags": pa.array([flags], pa.list_(pa.string()))})

    marked = window_missed(row(3, False, ["x"]), {3})
    assert marked.to_pylist() == [{"repetition": 3, "warmup": True, "ops": 5, "flags": ["window_missed", "x"]}]
    assert window_missed(row(4, False, []), {3}).to_pylist()[0]["warmup"] is False
    assert window_missed(row(-1, True, []), {-1}).to_pylist()[0]["flags"] == []  # a warm-up stays as it was


def test_the_window_is_the_longest_sample_with_room():
    window = RoundWindow(factor=1.25, guard_ns=5 * MS, retries=3)
    assert window.ns(0.1) == 130 * MS
    assert window.ns(0.0) == 5 * MS


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
    # Batches keep adding rounds, numbered 0..k-1 in the order they ran without gaps: measured ones, and
    # any that missed its window (stored not measured, as warmup, with its number >= 0).
    reps = run_query(tmp_path, f"""
        SELECT worker_rank, count(*) FILTER (NOT warmup) AS n, min(repetition) AS lo, max(repetition) AS hi,
               count(DISTINCT repetition) AS distinct_reps, count(*) AS ran
        FROM samples WHERE repetition >= 0 AND metric = '{row["metric"]}' GROUP BY worker_rank
        ORDER BY worker_rank""").to_pylist()
    assert [r["worker_rank"] for r in reps] == [0, 1]
    assert all(r["n"] > 2 and r["lo"] == 0 and r["hi"] == r["ran"] - 1 == r["distinct_reps"] - 1 for r in reps)
    assert row["n"] == reps[0]["n"] == reps[1]["n"]  # n counts rounds; each round has both workers' samples
    missed = run_query(tmp_path, "SELECT DISTINCT repetition, worker_rank FROM samples WHERE warmup AND repetition >= 0")
    assert missed.num_rows in (0, 2 * len(set(missed["repetition"].to_pylist())))  # a missed round: every worker's
