"""``topobench compare``: matched trials, verdicts, regression gate, run id resolution, formats."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from orchestrator.analysis.compare import compare_runs, parse_threshold
from orchestrator.cli import app
from orchestrator.render.comparison import text_rows
from orchestrator.store.queries import run_rounds
from orchestrator.store.reader import Dataset
from orchestrator.store.schemas import SAMPLES_SCHEMA
from orchestrator.store.writer import RunStore
from workloads.errors import UserError

RUN_A = "20260101T000000Z-aaaaaa"
RUN_B = "20260102T000000Z-bbbbbb"
RUN_C = "20260103T000000Z-cccccc"
PARAMS = json.dumps({"elements": 4096, "modulus": 7.0}, sort_keys=True)


def _compare(root, base: str, new: str, **kwargs):
    """Compare two stored runs as ``topobench compare`` does."""
    dataset = Dataset(root)
    return compare_runs(run_rounds(dataset, base), run_rounds(dataset, new), **kwargs)


def write_run(root, run_id, throughputs, latencies=None, *, workers=1, warmup_value=1.0, extra=(), flags=()):
    """Write a run with one cpu.sqrt_mod trial: throughputs (higher is better), latencies (lower).

    With ``workers`` > 1 every worker reports the same value per round; ``extra`` adds
    (metric, unit, higher_is_better, values) tuples; ``flags`` are the throughput row's flags.
    """
    store = RunStore(root, run_id)
    store.write_run({"run_id": run_id, "started_at": datetime(2026, 1, 1, tzinfo=timezone.utc),
                     "command": "test", "status": "complete", "trials_total": 1, "trials_failed": 0})
    metrics = [("element_ops_per_s", "element ops/s", True, throughputs)]
    if latencies is not None:
        metrics.append(("latency_ms", "ms", False, latencies))
    metrics += list(extra)
    trials, samples = [], []
    base = {"run_id": run_id, "trial_id": "t0", "workload": "cpu.sqrt_mod", "params": PARAMS, "nodes": 1,
            "workers": workers, "placement": "compact", "threads_per_worker": 1, "mode": "weak"}
    for index, (metric, unit, hib, values) in enumerate(metrics):
        trials.append({**base, "metric": metric, "unit": unit, "higher_is_better": hib, "n": len(values),
                       "median": float(np.median(values)), "status": "ok",
                       "overlap": 1.0 if index == 0 else None, "flags": list(flags) if index == 0 else []})
        rows = [(True, warmup_value)] + [(False, v) for v in values]
        for rep, (warm, v) in enumerate(rows):
            for rank in range(workers):
                samples.append({"run_id": run_id, "trial_id": "t0", "workload": "cpu.sqrt_mod", "params": PARAMS,
                                "node_id": "n0", "hostname": "h", "worker_rank": rank, "cpus": [rank],
                                "repetition": rep - 1, "warmup": warm, "iterations": 1, "ops": 1, "elapsed_ns": 1,
                                "start_ns": rep, "end_ns": rep + 1, "metric": metric, "value": float(v),
                                "unit": unit})
    store.write_trials(trials)
    store.write_trial_tables("t0", {"samples": {"n0": pa.Table.from_pylist(samples, SAMPLES_SCHEMA)}})


def noisy(median, n=20, rel=0.01, seed=0):
    return median * (1 + rel * np.random.default_rng(seed).standard_normal(n))


def test_a_vs_a_is_no_significant_change(tmp_path):
    values = noisy(100e6)
    write_run(tmp_path, RUN_A, values, noisy(2.0, seed=1))
    write_run(tmp_path, RUN_B, values, noisy(2.0, seed=1))
    result = _compare(tmp_path, RUN_A, RUN_B, threshold=0.05)
    assert [r.metric for r in result.rows] == ["element_ops_per_s", "latency_ms"]
    for r in result.rows:
        assert r.verdict == "no significant change" and r.ratio == 1.0 and not r.regression
        assert r.base_n == r.new_n == 20  # warm-up excluded


def test_same_distribution_different_draws_no_false_alarm(tmp_path):
    write_run(tmp_path, RUN_A, noisy(100e6, seed=1))
    write_run(tmp_path, RUN_B, noisy(100e6, seed=2))
    (row,) = _compare(tmp_path, RUN_A, RUN_B).rows
    assert row.verdict == "no significant change"


def test_slowdown_detected_in_both_directions(tmp_path):
    write_run(tmp_path, RUN_A, noisy(100e6, seed=1), noisy(2.0, seed=3))
    write_run(tmp_path, RUN_B, noisy(90e6, seed=2), noisy(2.4, seed=4))  # 10% fewer ops/s, 20% more ms
    thr, lat = _compare(tmp_path, RUN_A, RUN_B, threshold=0.05).rows
    assert thr.verdict == "slower" and thr.regression and 0.88 < thr.ratio < 0.92
    assert thr.ratio_ci_high < 1.0 and thr.p_value < 0.01
    assert lat.verdict == "slower" and lat.regression and lat.ratio > 1.15
    back = _compare(tmp_path, RUN_B, RUN_A, threshold=0.05).rows
    assert [r.verdict for r in back] == ["faster", "faster"] and not any(r.regression for r in back)


def test_small_significant_change_below_threshold_is_no_regression(tmp_path):
    write_run(tmp_path, RUN_A, noisy(100e6, rel=0.001, seed=1))
    write_run(tmp_path, RUN_B, noisy(98e6, rel=0.001, seed=2))
    (row,) = _compare(tmp_path, RUN_A, RUN_B, threshold=0.05).rows
    assert row.verdict == "slower" and not row.regression


def test_cli_fail_on_regression_exit_codes_and_formats(tmp_path):
    write_run(tmp_path, RUN_A, noisy(100e6, seed=1))
    write_run(tmp_path, RUN_B, noisy(80e6, seed=2))
    runner = CliRunner()
    args = ["compare", RUN_A, RUN_B, "--results", str(tmp_path)]
    assert runner.invoke(app, args).exit_code == 0
    result = runner.invoke(app, [*args, "--fail-on-regression", "5%"])
    assert result.exit_code == 1
    assert "1 regression(s) beyond 5.0%: cpu.sqrt_mod:element_ops_per_s" in result.output
    assert runner.invoke(app, [*args, "--fail-on-regression", "30%"]).exit_code == 0
    data = json.loads(runner.invoke(app, [*args, "--format", "json"]).output)
    assert data["rows"][0]["verdict"] == "slower" and data["base_run"] == RUN_A
    rows = list(csv.DictReader(io.StringIO(runner.invoke(app, [*args, "--format", "csv"]).output)))
    assert rows[0]["metric"] == "element_ops_per_s" and rows[0]["verdict"] == "slower"
    md = runner.invoke(app, [*args, "--format", "markdown"]).output
    assert "| cpu.sqrt_mod | elements=4096 modulus=7.0 | 1 | compact | element_ops_per_s |" in md
    table = runner.invoke(app, [*args], terminal_width=250).output
    assert "slower" in table and RUN_A in table


def test_latest_resolution(tmp_path):
    for run_id, median in ((RUN_A, 100e6), (RUN_B, 100e6), (RUN_C, 50e6)):
        write_run(tmp_path, run_id, noisy(median))
    result = _compare(tmp_path, "latest~1", "latest")
    assert (result.base_run, result.new_run) == (RUN_B, RUN_C)
    assert _compare(tmp_path, "latest~2", "latest~1").base_run == RUN_A
    with pytest.raises(UserError, match="'latest~3' does not exist: the results folder has 3 complete run"):
        _compare(tmp_path, "latest~3", "latest")


def test_unmatched_configurations_are_listed(tmp_path):
    write_run(tmp_path, RUN_A, noisy(100e6))
    write_run(tmp_path, RUN_B, noisy(100e6), workers=2)
    with pytest.raises(UserError, match="no trial in common"):
        _compare(tmp_path, RUN_A, RUN_B)


@pytest.mark.parametrize("bad", ["../etc", "2026", "latest~x", "x/y"])
def test_bad_run_ids_exit_2(tmp_path, bad):
    write_run(tmp_path, RUN_A, noisy(100e6))
    result = CliRunner().invoke(app, ["compare", RUN_A, bad, "--results", str(tmp_path)])
    assert result.exit_code == 2
    assert f"Run id {bad!r} is not valid" in result.output


def test_unknown_run_id_named(tmp_path):
    write_run(tmp_path, RUN_A, noisy(100e6))
    result = CliRunner().invoke(app, ["compare", RUN_A, RUN_C, "--results", str(tmp_path)])
    assert result.exit_code == 2
    assert f"Run '{RUN_C}' is not in the results folder" in result.output


def test_bad_options_exit_2(tmp_path):
    write_run(tmp_path, RUN_A, noisy(100e6))
    runner = CliRunner()
    assert runner.invoke(app, ["compare", RUN_A, RUN_A, "--results", str(tmp_path), "--format", "xml"]).exit_code == 2
    result = runner.invoke(app, ["compare", RUN_A, RUN_A, "--results", str(tmp_path), "--fail-on-regression", "abc"])
    assert result.exit_code == 2 and "--fail-on-regression 'abc' is not a percentage" in result.output
    result = runner.invoke(app, ["compare", RUN_A, RUN_A, "--results", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "does not exist" in result.output


def test_parse_threshold():
    assert parse_threshold("5%") == pytest.approx(0.05)
    assert parse_threshold("0.1") == pytest.approx(0.1)
    for bad in ("-1%", "100%", "nan", ""):
        with pytest.raises(UserError):
            parse_threshold(bad)


def test_real_runs_compare(ray_local, tmp_path):
    runner = CliRunner()
    args = ["run", "cpu.sqrt_mod", "--repetitions", "6", "--min-time", "0.02",
            "--param", "cpu.sqrt_mod.elements=4096", "--results", str(tmp_path)]
    for _ in range(2):
        assert runner.invoke(app, args).exit_code == 0
    result = runner.invoke(app, ["compare", "latest~1", "latest", "--results", str(tmp_path), "--format", "json"])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.output)["rows"]
    assert row["metric"] == "element_ops_per_s" and row["base_n"] == row["new_n"] == 6
    assert row["verdict"] in ("faster", "slower", "no significant change")


def test_three_vs_three_samples_says_too_few_to_tell(tmp_path):
    # Fully separated 3 vs 3: Mann-Whitney's smallest p is 0.1, never below alpha = 0.01.
    write_run(tmp_path, RUN_A, [100.0, 101.0, 102.0])
    write_run(tmp_path, RUN_B, [50.0, 51.0, 52.0])
    (row,) = _compare(tmp_path, RUN_A, RUN_B).rows
    assert row.verdict == "too few samples to tell (n=3 vs 3)" and not row.regression


def test_descriptive_metrics_get_no_verdict(tmp_path):
    # read_fraction-like: it doubled, but it is a property of the workload mix, not a speed.
    extra = [("read_fraction", "fraction", None, noisy(0.5, seed=5))]
    write_run(tmp_path, RUN_A, noisy(100e6, seed=1), extra=extra)
    write_run(tmp_path, RUN_B, noisy(100e6, seed=2), extra=[("read_fraction", "fraction", None, noisy(1.0, seed=6))])
    rows = {r.metric: r for r in _compare(tmp_path, RUN_A, RUN_B, threshold=0.05).rows}
    assert rows["read_fraction"].verdict == "descriptive" and not rows["read_fraction"].regression
    assert rows["read_fraction"].ratio == pytest.approx(2.0, rel=0.02)


def test_units_are_rounds_not_pooled_worker_samples(tmp_path):
    """4 workers per round: 10 rounds are 10 units, not 40 samples."""
    write_run(tmp_path, RUN_A, noisy(100e6, n=10, seed=1), workers=4)
    write_run(tmp_path, RUN_B, noisy(100e6, n=10, seed=2), workers=4)
    (row,) = _compare(tmp_path, RUN_A, RUN_B).rows
    assert (row.base_n, row.new_n) == (10, 10)


def test_holm_adjusts_across_every_metric_of_the_comparison(tmp_path):
    extra = [(f"m{i}", "x", True, noisy(10.0, seed=10 + i)) for i in range(6)]
    write_run(tmp_path, RUN_A, noisy(100e6, seed=1), extra=extra)
    write_run(tmp_path, RUN_B, noisy(90e6, seed=2), extra=[(m, u, h, noisy(10.0, seed=30 + i))
                                                              for i, (m, u, h, _) in enumerate(extra)])
    rows = _compare(tmp_path, RUN_A, RUN_B).rows
    tested = [r for r in rows if r.p_value is not None]
    assert len(tested) == 7
    assert all(r.p_adjusted >= r.p_value for r in tested)
    assert max(r.p_adjusted for r in tested) <= 1.0
    assert next(r for r in rows if r.metric == "element_ops_per_s").verdict == "slower"


def test_an_incomplete_run_is_named_before_its_figures_are_compared(tmp_path):
    write_run(tmp_path, RUN_A, noisy(100e6, seed=1))
    write_run(tmp_path, RUN_B, noisy(100e6, seed=2))
    store = RunStore(tmp_path, RUN_B)
    store.write_run({**store.read_run(), "status": "interrupted", "trials_total": 3})
    result = CliRunner().invoke(app, ["compare", RUN_A, RUN_B, "--results", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (f"topobench: warning: NEW run {RUN_B} is interrupted (1 of 3 trials stored): only what it stored "
            "is compared.") in result.stderr


def test_a_verdict_on_a_flagged_trial_shows_the_flags_and_says_they_weaken_it(tmp_path):
    write_run(tmp_path, RUN_A, noisy(100e6, seed=1), flags=("noisy",))
    write_run(tmp_path, RUN_B, noisy(68e6, rel=0.2, seed=2), flags=("unstable",))
    (row,) = _compare(tmp_path, RUN_A, RUN_B).rows
    assert (row.verdict, row.base_flags, row.new_flags) == ("slower", ("noisy",), ("unstable",))
    assert row.caveat == "BASE noisy; NEW unstable"
    runner, args = CliRunner(), ["compare", RUN_A, RUN_B, "--results", str(tmp_path)]
    data = json.loads(runner.invoke(app, [*args, "--format", "json"]).output)
    assert (data["rows"][0]["verdict"], data["rows"][0]["new_flags"], data["rows"][0]["caveat"]) == (
        "slower", ["unstable"], "BASE noisy; NEW unstable")
    (line,) = csv.DictReader(io.StringIO(runner.invoke(app, [*args, "--format", "csv"]).output))
    assert (line["base_flags"], line["new_flags"], line["caveat"]) == ("noisy", "unstable", "BASE noisy; NEW unstable")
    md = runner.invoke(app, [*args, "--format", "markdown"]).output
    assert "| BASE noisy; NEW unstable | slower, weakened by the flags |" in md
    assert "A verdict beside a flag is weaker: the test assumes rounds that differ only by chance" in md
    assert text_rows(_compare(tmp_path, RUN_A, RUN_B))[0][-2:] == ["BASE noisy; NEW unstable",
                                                                   "slower, weakened by the flags"]
    assert "A verdict beside a flag is weaker" in " ".join(runner.invoke(app, args).output.split())
    gate = runner.invoke(app, [*args, "--fail-on-regression", "5%"])
    assert gate.exit_code == 1 and ("1 regression(s) beyond 5.0%: cpu.sqrt_mod:element_ops_per_s (0.651x, weakened "
                                    "by BASE noisy; NEW unstable)") in " ".join(gate.stderr.split())
    write_run(tmp_path, RUN_C, noisy(68e6, rel=0.2, seed=2))
    (clean,) = _compare(tmp_path, RUN_A, RUN_C).rows
    assert clean.caveat == "BASE noisy" and clean.new_flags == ()


def test_a_running_run_with_nothing_stored_is_named_as_running_not_as_another_benchmark(tmp_path):
    write_run(tmp_path, RUN_A, noisy(100e6))
    RunStore(tmp_path, RUN_B).write_run({"run_id": RUN_B, "started_at": datetime(2026, 1, 2, tzinfo=timezone.utc),
                                         "command": "test", "status": "running", "trials_total": 12})
    result = CliRunner().invoke(app, ["compare", RUN_A, RUN_B, "--results", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert (f"Runs {RUN_A} and {RUN_B} have no trial in common yet: NEW run {RUN_B} is running and has stored 0 "
            "of 12 trials; compare again when it has completed.") in " ".join(result.stderr.split())
    from orchestrator.render.report import build_report

    with pytest.raises(UserError, match=f"BASE run {RUN_B} is running and has stored 0 of 12 trials"):
        build_report(tmp_path, RUN_A, tmp_path / "report", vs=RUN_B)
    assert not (tmp_path / "report").exists()  # refused before any file is written
    alone = build_report(tmp_path, RUN_B, tmp_path / "alone").markdown.read_text()
    assert "**This run is running**: the figures below are of the trials it stored (0 of 12)." in alone


def test_a_threshold_out_of_range_is_told_its_range(tmp_path):
    write_run(tmp_path, RUN_A, noisy(100e6))
    result = CliRunner().invoke(app, ["compare", RUN_A, RUN_A, "--results", str(tmp_path),
                                      "--fail-on-regression", "500%"])
    assert result.exit_code == 2
    assert ("--fail-on-regression '500%' is out of range; give a percentage from 0% to below 100%, such as 5% or "
            "0.05.") in " ".join(result.stderr.split())
