"""``topobench compare``: matched trials, verdicts and their basis, run selectors, the history prior, formats."""

from __future__ import annotations

import csv
import io
import json
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from orchestrator.analysis.compare import compare_runs, parse_threshold
from orchestrator.analysis.prior_runs import choose_history
from orchestrator.cli import app
from orchestrator.render.comparison import text_rows
from orchestrator.store.queries import run_index, run_rounds, select_runs
from orchestrator.store.reader import Dataset
from orchestrator.store.schemas import NODES_SCHEMA, SAMPLES_SCHEMA
from orchestrator.store.writer import RunStore
from workloads.errors import UserError

PARAMS = json.dumps({"elements": 4096, "modulus": 7.0}, sort_keys=True)
COMMIT_A = "a" * 40
COMMIT_B = "b" * 40


def run_id(day: int) -> str:
    """Return the id of the run started on day ``day`` of 2026 (ids sort as their start times)."""
    return f"2026{(datetime(2026, 1, 1) + timedelta(days=day)):%m%d}T000000Z-{day:06x}"


RUN_A, RUN_B, RUN_C = run_id(0), run_id(1), run_id(2)


def _compare(root, base: str, new: str, prior: str = "none", **kwargs):
    """Compare stored runs as ``topobench compare BASE NEW --prior PRIOR`` does."""
    dataset = Dataset(root)
    b, n = select_runs(dataset, base), select_runs(dataset, new)
    history = choose_history(run_index(dataset), prior, b, n, 10, lambda t: select_runs(dataset, t))
    return compare_runs([run_rounds(dataset, r) for r in b], [run_rounds(dataset, r) for r in n],
                        prior=[run_rounds(dataset, r) for r in history.run_ids], prior_note=history.note, **kwargs)


def write_run(root, rid, throughputs, latencies=None, *, workers=1, warmup_value=1.0, extra=(), commit=None,
              label=None, dirty=False, host="h", status="complete", flags=()):
    """Write a run with one cpu.sqrt_mod trial: throughputs (higher is better), latencies (lower).

    Each of ``throughputs``, ``latencies`` and ``extra``'s values is one invocation's rounds (a
    flat list) or a list of invocations; with ``workers`` > 1 every worker reports the same
    value per round; ``extra`` adds (metric, unit, higher_is_better, values) tuples; ``flags``
    are the throughput row's flags.
    """
    store = RunStore(root, rid)
    day = int(rid.split("-")[1], 16)
    store.write_run({"run_id": rid, "started_at": datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(days=day),
                     "command": "test", "status": status, "trials_total": 1, "trials_failed": 0,
                     "git_commit": commit, "label": label, "git_dirty": dirty if commit else None,
                     "commit_source": "current folder" if commit else None})
    store.write_nodes([{**dict.fromkeys(NODES_SCHEMA.names), "run_id": rid, "node_id": "n0", "hostname": host,
                        "is_head": True, "cpu_model": "cpu"}])
    metrics = [("element_ops_per_s", "element ops/s", True, throughputs)]
    if latencies is not None:
        metrics.append(("latency_ms", "ms", False, latencies))
    metrics += list(extra)
    trials, samples = [], []
    base = {"run_id": rid, "trial_id": "t0", "workload": "cpu.sqrt_mod", "params": PARAMS, "nodes": 1,
            "workers": workers, "placement": "compact", "threads_per_worker": 1, "mode": "weak"}
    for index, (metric, unit, hib, values) in enumerate(metrics):
        invocations = [list(values)] if np.ndim(values[0]) == 0 else [list(v) for v in values]
        trials.append({**base, "metric": metric, "unit": unit, "higher_is_better": hib,
                       "n": sum(map(len, invocations)), "median": float(np.median([np.median(v) for v in invocations])),
                       "status": "ok", "overlap": 1.0 if index == 0 else None, "invocations": len(invocations),
                       "flags": list(flags) if index == 0 else []})
        rep = 0
        for k, rounds in enumerate(invocations):
            for warm, v in [(True, warmup_value)] + [(False, v) for v in rounds]:
                for rank in range(workers):
                    samples.append({"run_id": rid, "trial_id": "t0", "workload": "cpu.sqrt_mod", "params": PARAMS,
                                    "node_id": "n0", "hostname": host, "worker_rank": rank, "cpus": [rank],
                                    "repetition": -1 if warm else rep, "warmup": warm, "iterations": 1, "ops": 1,
                                    "elapsed_ns": 1, "start_ns": rep, "end_ns": rep + 1, "metric": metric,
                                    "value": float(v), "unit": unit, "invocation": k})
                rep += not warm
    store.write_trials(trials)
    store.write_trial_tables("t0", {"samples": {"n0": pa.Table.from_pylist(samples, SAMPLES_SCHEMA)}})


def as_version_2(root: Path) -> None:
    """Rewrite the dataset as schema 2 wrote it: one file per run and table under its v2 name, no
    manifest, without the columns schema 3 added (every part here is committed: no run crashed)."""
    added = {"invocation", "invocations", "invocations_planned", "sd_between_invocations", "sd_between_rounds",
             "invocation_cost_s", "round_cost_s", "plan_invocations", "plan_rounds", "plan_cost_s", "label",
             "commit_source", "git_dirty"}
    folders = {path.parent for path in Path(root).rglob("v3-*.parquet") if "_manifests" not in path.parts}
    for folder in sorted(folders):
        parts = sorted(folder.glob("v3-*.parquet"))
        table = pa.concat_tables([pq.read_table(p, partitioning=None) for p in parts], promote_options="default")
        table = table.select([c for c in table.column_names if c not in added])
        meta = {**(table.schema.metadata or {}), b"topobench.schema_version": b"2"}
        name = folder.parent.name  # the table, for a run folder
        legacy = "v2-part.parquet" if folder.name.startswith("node=") else \
            {"runs": "v2-run.parquet"}.get(name, f"v2-{name}.parquet")
        pq.write_table(table.replace_schema_metadata(meta), folder / legacy)
        for p in parts:
            p.unlink()
    shutil.rmtree(Path(root) / "_manifests", ignore_errors=True)


def noisy(median, n=20, rel=0.01, seed=0):
    return median * (1 + rel * np.random.default_rng(seed).standard_normal(n))


def invocations(median, k=5, rounds=3, rel_inv=0.01, rel=0.003, seed=0):
    """Return k invocations of rounds around ``median``: each invocation shifted by rel_inv, rounds by rel."""
    rng = np.random.default_rng(seed)
    return [median * (1 + rel_inv * rng.standard_normal()) * (1 + rel * rng.standard_normal(rounds))
            for _ in range(k)]


# --- one run per side: the basis follows the invocations ----------------------------------


def test_a_vs_a_over_invocations_is_no_significant_change(tmp_path):
    write_run(tmp_path, RUN_A, invocations(100e6, seed=1), invocations(2.0, seed=2))
    write_run(tmp_path, RUN_B, invocations(100e6, seed=1), invocations(2.0, seed=2))
    result = _compare(tmp_path, RUN_A, RUN_B, threshold=0.05)
    assert [r.metric for r in result.rows] == ["element_ops_per_s", "latency_ms"]
    for r in result.rows:
        assert r.verdict == "no significant change" and r.ratio == 1.0 and not r.regression
        assert r.basis == "invocations" and (r.base_n, r.new_n) == (5, 5) and r.base_rounds == 15
    assert result.bases == ("invocations",)
    assert any("basis invocations: one run per side" in n for n in result.notes)


def test_a_slowdown_beyond_the_invocations_spread_is_caught_both_ways(tmp_path):
    write_run(tmp_path, RUN_A, invocations(100e6, seed=1), invocations(2.0, seed=2))
    write_run(tmp_path, RUN_B, invocations(80e6, seed=3), invocations(2.5, seed=4))
    rows = {r.metric: r for r in _compare(tmp_path, RUN_A, RUN_B, threshold=0.05).rows}
    assert rows["element_ops_per_s"].verdict == "slower" and rows["element_ops_per_s"].regression
    assert rows["latency_ms"].verdict == "slower"  # lower is better, and it rose
    assert rows["element_ops_per_s"].ratio_ci_low <= 0.8 <= rows["element_ops_per_s"].ratio_ci_high


def test_one_invocation_per_side_gives_no_verdict_however_far_apart(tmp_path):
    # 20 rounds each, 20% apart: within one process the rounds say "slower", but what a fresh
    # process changes is not in the data, so the comparison must not pretend.
    write_run(tmp_path, RUN_A, noisy(100e6, seed=1))
    write_run(tmp_path, RUN_B, noisy(80e6, seed=2))
    (row,) = _compare(tmp_path, RUN_A, RUN_B, threshold=0.05).rows
    assert row.basis == "rounds" and row.verdict == "too few samples to tell (invocations 1 vs 1)"
    assert not row.regression and row.ratio == pytest.approx(0.8, rel=0.02) and (row.base_n, row.new_n) == (20, 20)


def test_two_runs_per_side_compare_runs(tmp_path):
    for day, median in ((0, 100e6), (1, 100e6), (2, 80e6), (3, 80e6)):
        write_run(tmp_path, run_id(day), invocations(median, seed=day))
    (row,) = _compare(tmp_path, f"{run_id(0)}..{run_id(1)}", f"{run_id(2)},{run_id(3)}").rows
    assert row.basis == "runs" and (row.base_n, row.new_n) == (2, 2) and row.base_invocations == 10
    assert row.ratio == pytest.approx(0.8, rel=0.03)


def test_descriptive_metrics_get_no_verdict(tmp_path):
    # read_fraction-like: it doubled, but it is a property of the workload mix, not a speed.
    write_run(tmp_path, RUN_A, invocations(100e6, seed=1), extra=[("read_fraction", "fraction", None, noisy(0.5))])
    write_run(tmp_path, RUN_B, invocations(100e6, seed=2), extra=[("read_fraction", "fraction", None, noisy(1.0))])
    rows = {r.metric: r for r in _compare(tmp_path, RUN_A, RUN_B, threshold=0.05).rows}
    assert rows["read_fraction"].verdict == "descriptive" and not rows["read_fraction"].regression
    assert rows["read_fraction"].ratio == pytest.approx(2.0, rel=0.02)


def test_units_are_rounds_not_pooled_worker_samples(tmp_path):
    """4 workers per round: 10 rounds are 10 units, not 40 samples."""
    write_run(tmp_path, RUN_A, noisy(100e6, n=10, seed=1), workers=4)
    write_run(tmp_path, RUN_B, noisy(100e6, n=10, seed=2), workers=4)
    (row,) = _compare(tmp_path, RUN_A, RUN_B).rows
    assert (row.base_n, row.new_n) == (10, 10) and row.base_rounds == 10


def test_holm_adjusts_across_every_metric_of_the_comparison(tmp_path):
    names = [f"m{i}" for i in range(6)]
    write_run(tmp_path, RUN_A, invocations(100e6, seed=1),
              extra=[(m, "x", True, invocations(10.0, seed=10 + i)) for i, m in enumerate(names)])
    write_run(tmp_path, RUN_B, invocations(90e6, seed=2),
              extra=[(m, "x", True, invocations(10.0, seed=30 + i)) for i, m in enumerate(names)])
    rows = _compare(tmp_path, RUN_A, RUN_B).rows
    tested = [r for r in rows if r.p_adjusted is not None]
    assert len(tested) == 7
    assert all(r.p_adjusted >= r.p_value for r in tested) and max(r.p_adjusted for r in tested) <= 1.0
    assert next(r for r in rows if r.metric == "element_ops_per_s").verdict == "slower"


# --- the history prior --------------------------------------------------------------------


def _history(tmp_path, days=range(4), commit=COMMIT_A, **kwargs):
    for day in days:
        write_run(tmp_path, run_id(day), invocations(100e6, seed=day), commit=commit, **kwargs)


def test_auto_prior_takes_earlier_runs_of_bases_commit_and_machine_only(tmp_path):
    _history(tmp_path)  # days 0-3: commit A
    write_run(tmp_path, run_id(4), invocations(100e6, seed=4), commit=COMMIT_B)  # another code: never in the prior
    write_run(tmp_path, run_id(5), invocations(100e6, seed=5), commit=COMMIT_A, host="other")  # another machine
    write_run(tmp_path, run_id(6), invocations(100e6, seed=6), commit=COMMIT_A)  # BASE
    write_run(tmp_path, run_id(7), invocations(90e6, seed=7), commit=COMMIT_B)  # NEW
    result = _compare(tmp_path, run_id(6), run_id(7), prior="auto")
    (row,) = result.rows
    assert row.basis == "prior" and row.prior_runs == 4 and row.verdict == "slower"
    assert result.prior_runs == tuple(run_id(d) for d in (3, 2, 1, 0))
    (note,) = [n for n in result.notes if n.startswith("prior from")]
    assert f"commit {COMMIT_A[:12]}" in note and run_id(4) not in note and run_id(5) not in note


def test_no_auto_prior_without_a_commit_or_with_uncommitted_changes(tmp_path):
    _history(tmp_path, commit=None)
    write_run(tmp_path, run_id(6), invocations(100e6, seed=6))
    write_run(tmp_path, run_id(7), invocations(100e6, seed=7))
    result = _compare(tmp_path, run_id(6), run_id(7), prior="auto")
    assert result.rows[0].basis == "invocations" and not result.prior_runs
    assert any("carry no commit and no label" in n for n in result.notes)
    write_run(tmp_path, run_id(8), invocations(100e6, seed=8), commit=COMMIT_A, dirty=True)
    result = _compare(tmp_path, run_id(8), run_id(7), prior="auto")
    assert any("uncommitted changes" in n for n in result.notes)


def test_no_auto_prior_from_runs_written_before_labels(tmp_path):
    # Schema 2 stored the working folder's commit, without a source or a word on uncommitted changes.
    _history(tmp_path, days=range(5))
    as_version_2(tmp_path)
    result = _compare(tmp_path, run_id(3), run_id(4), prior="auto")
    assert not result.prior_runs and any("come from before labels" in n for n in result.notes)


def test_a_given_prior_across_a_change_is_refused_in_one_sentence(tmp_path):
    _history(tmp_path, days=(0, 1))
    _history(tmp_path, days=(2, 3, 4), commit=COMMIT_B)
    write_run(tmp_path, run_id(6), invocations(100e6, seed=6))
    write_run(tmp_path, run_id(7), invocations(100e6, seed=7))
    result = CliRunner().invoke(app, ["compare", run_id(6), run_id(7), "--prior", f"{run_id(0)}..{run_id(4)}",
                                      "--results", str(tmp_path)])
    assert result.exit_code == 2
    assert "--prior runs measured different code" in result.output and "--prior commit:SHA" in result.output
    result = CliRunner().invoke(app, ["compare", run_id(6), run_id(7), "--prior", f"commit:{'b' * 7}",
                                      "--results", str(tmp_path), "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["bases"] == ["prior"] and data["prior_runs"] == [run_id(2), run_id(3), run_id(4)]


# --- selectors ----------------------------------------------------------------------------


def test_selectors_name_runs_by_range_commit_and_label(tmp_path):
    for day, commit, label in ((0, COMMIT_A, "v1"), (1, COMMIT_A, "v1"), (2, COMMIT_B, "v2"), (3, "ab" + "c" * 38, None)):
        write_run(tmp_path, run_id(day), invocations(100e6, seed=day), commit=commit, label=label)
    write_run(tmp_path, run_id(4), invocations(100e6), status="interrupted")
    dataset = Dataset(tmp_path)
    assert select_runs(dataset, "latest~2..latest") == tuple(run_id(d) for d in (1, 2, 3))
    assert select_runs(dataset, "latest..latest~1") == (run_id(2), run_id(3))  # either order
    assert select_runs(dataset, f"commit:{'a' * 6}") == (run_id(0), run_id(1))
    assert select_runs(dataset, "label:v2,latest~3") == (run_id(0), run_id(2))  # oldest first
    assert select_runs(dataset, f"{run_id(4)}") == (run_id(4),)  # an id: whatever its status
    assert select_runs(dataset, f"{run_id(0)}..{run_id(4)}") == tuple(run_id(d) for d in range(4))  # complete only
    with pytest.raises(UserError, match=r"Selector 'commit:a' matches 2 commits .*give more digits"):
        select_runs(dataset, "commit:a")
    with pytest.raises(UserError, match=r"Selector 'label:v9' matches no complete run; label runs with `--label`"):
        select_runs(dataset, "label:v9")
    with pytest.raises(UserError, match="is empty somewhere"):
        select_runs(dataset, "latest,")


def test_run_index_lists_runs_oldest_first_with_their_code(tmp_path):
    write_run(tmp_path, RUN_B, invocations(1.0), commit=COMMIT_B, label="v2")
    write_run(tmp_path, RUN_A, invocations(1.0), commit=COMMIT_A)
    rows = run_index(Dataset(tmp_path))
    assert [(r["run_id"], r["git_commit"], r["label"], r["host"]) for r in rows] == [
        (RUN_A, COMMIT_A, None, "h · cpu"), (RUN_B, COMMIT_B, "v2", "h · cpu")]


def test_latest_resolution(tmp_path):
    for rid, median in ((RUN_A, 100e6), (RUN_B, 100e6), (RUN_C, 50e6)):
        write_run(tmp_path, rid, invocations(median))
    result = _compare(tmp_path, "latest~1", "latest")
    assert (result.base_run, result.new_run) == (RUN_B, RUN_C)
    assert _compare(tmp_path, "latest~2", "latest~1").base_run == RUN_A
    with pytest.raises(UserError, match="'latest~3' does not exist: the results folder has 3 complete run"):
        _compare(tmp_path, "latest~3", "latest")


# --- datasets written before invocations ------------------------------------------------------


def test_a_dataset_from_before_invocations_reads_as_one_invocation_per_trial(tmp_path):
    for day, median in ((0, 100e6), (1, 100e6), (2, 80e6), (3, 80e6)):
        write_run(tmp_path, run_id(day), noisy(median, seed=day))
    as_version_2(tmp_path)
    assert not list(tmp_path.rglob("v3-*")) and list(tmp_path.rglob("v2-*"))
    dataset = Dataset(tmp_path)
    rounds = run_rounds(dataset, run_id(0))
    (metric,) = rounds.metrics.values()
    assert len(metric.invocations) == 1 and np.allclose(metric.units, noisy(100e6, seed=0))
    (row,) = _compare(tmp_path, run_id(0), run_id(2)).rows
    assert row.basis == "rounds" and row.verdict.startswith("too few samples to tell")
    (row,) = _compare(tmp_path, "latest~3..latest~2", "latest~1..latest").rows
    assert row.basis == "runs" and row.verdict == "slower"


# --- the command line -----------------------------------------------------------------------


def test_cli_fail_on_regression_exit_codes_and_formats_name_the_basis(tmp_path):
    write_run(tmp_path, RUN_A, invocations(100e6, seed=1))
    write_run(tmp_path, RUN_B, invocations(80e6, seed=2))
    runner = CliRunner()
    args = ["compare", RUN_A, RUN_B, "--results", str(tmp_path)]
    assert runner.invoke(app, args).exit_code == 0
    result = runner.invoke(app, [*args, "--fail-on-regression", "5%"])
    assert result.exit_code == 1
    assert "1 regression(s) beyond 5.0%: cpu.sqrt_mod:element_ops_per_s" in result.output
    assert runner.invoke(app, [*args, "--fail-on-regression", "30%"]).exit_code == 0
    data = json.loads(runner.invoke(app, [*args, "--format", "json"]).stdout)
    assert data["rows"][0]["verdict"] == "slower" and data["base_runs"] == [RUN_A]
    assert data["rows"][0]["basis"] == "invocations" and data["bases"] == ["invocations"]
    rows = list(csv.DictReader(io.StringIO(runner.invoke(app, [*args, "--format", "csv"]).stdout)))
    assert rows[0]["metric"] == "element_ops_per_s" and rows[0]["verdict"] == "slower"
    assert rows[0]["basis"] == "invocations"
    md = runner.invoke(app, [*args, "--format", "markdown"]).stdout
    assert "| cpu.sqrt_mod | elements=4096 modulus=7.0 | 1 | compact | element_ops_per_s |" in md
    assert "basis: invocations" in md and "| invocations | 5/5 inv |" in md
    table = runner.invoke(app, [*args], terminal_width=300)
    assert "slower" in table.stdout and RUN_A in table.stdout and "basis: invocations" in table.stdout
    assert "topobench: note: basis invocations: one run per side" in table.stderr


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


def test_unmatched_configurations_are_listed(tmp_path):
    write_run(tmp_path, RUN_A, noisy(100e6))
    write_run(tmp_path, RUN_B, noisy(100e6), workers=2)
    with pytest.raises(UserError, match="no trial in common"):
        _compare(tmp_path, RUN_A, RUN_B)


def test_bad_options_exit_2(tmp_path):
    write_run(tmp_path, RUN_A, noisy(100e6))
    runner = CliRunner()
    base = ["compare", RUN_A, RUN_A, "--results", str(tmp_path)]
    assert runner.invoke(app, [*base, "--format", "xml"]).exit_code == 2
    result = runner.invoke(app, [*base, "--fail-on-regression", "abc"])
    assert result.exit_code == 2 and "--fail-on-regression 'abc' is not a percentage" in result.output
    result = runner.invoke(app, [*base, "--history", "1"])
    assert result.exit_code == 2 and "--history 1 is too few" in result.output
    result = runner.invoke(app, [*base, "--prior", RUN_A])
    assert result.exit_code == 2 and f"--prior includes run {RUN_A}, which is compared" in result.output
    result = runner.invoke(app, ["compare", RUN_A, RUN_A, "--results", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "does not exist" in result.output


def test_parse_threshold():
    assert parse_threshold("5%") == pytest.approx(0.05)
    assert parse_threshold("0.1") == pytest.approx(0.1)
    for bad in ("-1%", "100%", "nan", ""):
        with pytest.raises(UserError):
            parse_threshold(bad)


def test_an_incomplete_run_is_named_before_its_figures_are_compared(tmp_path):
    write_run(tmp_path, RUN_A, invocations(100e6, seed=1))
    write_run(tmp_path, RUN_B, invocations(100e6, seed=2))
    store = RunStore(tmp_path, RUN_B)
    store.write_run({**store.read_run(), "status": "interrupted", "trials_total": 3})
    result = CliRunner().invoke(app, ["compare", RUN_A, RUN_B, "--results", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (f"topobench: warning: NEW run {RUN_B} is interrupted (1 of 3 trials stored): only what it stored "
            "is compared.") in result.stderr


def test_a_verdict_on_a_flagged_trial_shows_the_flags_and_says_they_weaken_it(tmp_path):
    write_run(tmp_path, RUN_A, invocations(100e6, seed=1), flags=("noisy",))
    write_run(tmp_path, RUN_B, invocations(68e6, rel=0.2, seed=2), flags=("unstable",))
    (row,) = _compare(tmp_path, RUN_A, RUN_B).rows
    assert (row.verdict, row.base_flags, row.new_flags) == ("slower", ("noisy",), ("unstable",))
    assert row.caveat == "BASE noisy; NEW unstable"
    runner, args = CliRunner(), ["compare", RUN_A, RUN_B, "--results", str(tmp_path)]
    data = json.loads(runner.invoke(app, [*args, "--format", "json"]).stdout)
    assert (data["rows"][0]["verdict"], data["rows"][0]["new_flags"], data["rows"][0]["caveat"]) == (
        "slower", ["unstable"], "BASE noisy; NEW unstable")
    (line,) = csv.DictReader(io.StringIO(runner.invoke(app, [*args, "--format", "csv"]).stdout))
    assert (line["base_flags"], line["new_flags"], line["caveat"]) == ("noisy", "unstable", "BASE noisy; NEW unstable")
    md = runner.invoke(app, [*args, "--format", "markdown"]).stdout
    assert "| BASE noisy; NEW unstable | slower, weakened by the flags |" in md
    assert "A verdict beside a flag is weaker: the test assumes rounds that differ only by chance" in md
    assert text_rows(_compare(tmp_path, RUN_A, RUN_B))[0][-2:] == ["BASE noisy; NEW unstable",
                                                                   "slower, weakened by the flags"]
    assert "A verdict beside a flag is weaker" in " ".join(runner.invoke(app, args).output.split())
    gate = runner.invoke(app, [*args, "--fail-on-regression", "5%"])
    assert gate.exit_code == 1 and ("1 regression(s) beyond 5.0%: cpu.sqrt_mod:element_ops_per_s (0.637x, weakened "
                                    "by BASE noisy; NEW unstable)") in " ".join(gate.stderr.split())
    write_run(tmp_path, RUN_C, invocations(68e6, rel=0.2, seed=2))
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
@pytest.mark.ray
def test_real_runs_compare_over_their_invocations(ray_local, tmp_path):
    runner = CliRunner()
    args = ["run", "cpu.sqrt_mod", "--invocations", "3", "--repetitions", "2", "--min-time", "0.02",
            "--param", "cpu.sqrt_mod.elements=4096", "--label", "aa", "--results", str(tmp_path)]
    for _ in range(2):
        assert runner.invoke(app, args).exit_code == 0
    result = runner.invoke(app, ["compare", "latest~1", "latest", "--results", str(tmp_path), "--format", "json"])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)["rows"]
    assert row["metric"] == "element_ops_per_s" and row["base_n"] == row["new_n"] == 3
    assert row["basis"] == "invocations" and row["base_rounds"] == 6
    assert row["verdict"] in ("faster", "slower", "no significant change")
    assert select_runs(Dataset(tmp_path), "label:aa") == tuple(r["run_id"] for r in run_index(Dataset(tmp_path)))
