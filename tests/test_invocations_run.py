"""Invocations end to end: fresh workers per invocation, interleaved, equal work, figures over invocations."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from dataset import run_query
from test_compare import as_version_2
from typer.testing import CliRunner

from orchestrator.analysis.invocations import summarize_invocations
from orchestrator.cli import app
from orchestrator.pipeline.jobs import run_sweep
from orchestrator.pipeline.schedule import invocation_order
from orchestrator.pipeline.sweep_file import parse_sweep
from orchestrator.store.reader import Dataset
from orchestrator.store.writer import RunStore

FAST = ["--min-time", "0.02", "--param", "cpu.sqrt_mod.elements=2048", "--no-lock"]


def test_invocations_take_turns_within_windows_of_trials():
    assert invocation_order([2, 2, 2]) == [(0, 0), (1, 0), (2, 0), (0, 1), (1, 1), (2, 1)]
    assert invocation_order([1, 3]) == [(0, 0), (1, 0), (1, 1), (1, 2)]  # a trial asking fewer drops out
    assert invocation_order([2, 2, 2], window=2) == [(0, 0), (1, 0), (0, 1), (1, 1), (2, 0), (2, 1)]
    assert invocation_order([]) == []


def test_a_search_runs_each_trials_invocations_in_a_row_and_skips_stored_trials():
    from orchestrator.pipeline.schedule import invocation_steps
    from orchestrator.records import Shape, Trial

    trials = [Trial(f"t{i}", "w", {}, Shape(), ()) for i in range(3)]
    planned = [(i, t.trial_id, k) for i, t, k in invocation_steps(trials, lambda t: 2, skip={"t1"})]
    assert planned == [(0, "t0", 0), (2, "t2", 0), (0, "t0", 1), (2, "t2", 1)]  # indices stay the plan's
    searched = [(i, t.trial_id, k) for i, t, k in invocation_steps(iter(trials), lambda t: 2)]
    assert searched == [(0, "t0", 0), (0, "t0", 1), (1, "t1", 0), (1, "t1", 1), (2, "t2", 0), (2, "t2", 1)]


@pytest.mark.ray
def test_each_invocation_is_fresh_workers_interleaved_with_the_other_trials(ray_local, tmp_path):
    # The command's shell writes its parent's pid: the worker process that ran it, in calibration and every round.
    pids = tmp_path / "pids"
    result = CliRunner().invoke(app, ["run", "cpu.sqrt_mod", "command", "--invocations", "3", "--repetitions", "2",
                                      *FAST, "--param", "command.shell=true",
                                      "--param", f"command.cmd=echo $PPID >> {pids}", "--results", str(tmp_path)])
    assert result.exit_code == 0, result.output
    ran_in = pids.read_text().split()
    assert len(set(ran_in)) == 3  # 3 invocations, a new process each
    assert [pid for pid, _ in itertools.groupby(ran_in)] == list(dict.fromkeys(ran_in))  # one after the other
    rows = run_query(tmp_path, """
        SELECT workload, invocation, min(start_ns) AS first, max(end_ns) AS last,
               list(DISTINCT iterations) AS iterations, list(repetition ORDER BY repetition) AS reps
        FROM samples WHERE NOT warmup AND metric IN ('element_ops_per_s', 'runs_per_s')
        GROUP BY ALL ORDER BY first""").to_pylist()
    assert [(r["workload"], r["invocation"]) for r in rows] == [
        ("cpu.sqrt_mod", 0), ("command", 0), ("cpu.sqrt_mod", 1), ("command", 1),
        ("cpu.sqrt_mod", 2), ("command", 2)]  # interleaved: drift hits both workloads alike
    assert all(a["last"] <= b["first"] for a, b in itertools.pairwise(rows))
    for workload in ("cpu.sqrt_mod", "command"):
        mine = [r for r in rows if r["workload"] == workload]
        assert len({tuple(r["iterations"]) for r in mine}) == 1 and len(mine[0]["iterations"]) == 1  # equal work
        # Unique round numbers in the trial, in the order the rounds ran; a round that missed its window
        # (stored not measured) keeps its number and the one re-run for it gets the next.
        reps = [rep for r in mine for rep in r["reps"]]
        missed = run_query(tmp_path, f"SELECT list(repetition ORDER BY repetition) AS reps FROM samples WHERE warmup "
                                     f"AND repetition >= 0 AND workload = '{workload}'").to_pylist()[0]["reps"] or []
        assert len(reps) == 6 and sorted(set(reps) | set(missed)) == list(range(6 + len(set(missed))))
    assert "3×2" in result.stdout


@pytest.mark.ray
def test_the_figure_is_the_median_of_the_invocations_and_its_ci_is_over_them(ray_local, tmp_path):
    result = CliRunner().invoke(app, ["run", "cpu.sqrt_mod", "--invocations", "3", "--repetitions", "3", *FAST,
                                      "--results", str(tmp_path)])
    assert result.exit_code == 0, result.output
    (row,) = run_query(tmp_path, "SELECT * FROM trials WHERE metric = 'element_ops_per_s'").to_pylist()
    units = run_query(tmp_path, """SELECT invocation, list(value ORDER BY repetition) AS v FROM samples
                                   WHERE NOT warmup AND metric = 'element_ops_per_s' GROUP BY 1 ORDER BY 1""")
    expected = summarize_invocations([np.array(v) for v in units["v"].to_pylist()])
    assert (row["invocations"], row["invocations_planned"], row["n"]) == (3, 3, 9)
    assert row["median"] == pytest.approx(expected.median) and row["ci_low"] == pytest.approx(expected.ci_low)
    assert row["ci_method"] == "t over invocations" and row["ci_level"] == 0.95
    assert row["sd_between_invocations"] is not None and row["sd_between_rounds"] is not None
    assert row["invocation_cost_s"] > 0 and row["round_cost_s"] > 0
    assert "spread between invocations" in result.stdout


@pytest.mark.ray
def test_two_invocations_state_no_ci_and_say_why(ray_local, tmp_path):
    result = CliRunner().invoke(app, ["run", "cpu.sqrt_mod", "--invocations", "2", "--repetitions", "3", *FAST,
                                      "--results", str(tmp_path)], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "K<3: no 95% CI" in result.stdout
    (row,) = run_query(tmp_path, "SELECT ci_low, ci_method, invocations FROM trials "
                                 "WHERE metric = 'element_ops_per_s'").to_pylist()
    assert row == {"ci_low": None, "ci_method": None, "invocations": 2}


@pytest.mark.ray
def test_a_run_is_labelled_and_finds_its_commit(ray_local, tmp_path):
    result = CliRunner().invoke(app, ["run", "cpu.sqrt_mod", "--invocations", "1", "--repetitions", "1", *FAST,
                                      "--label", "v2", "--commit", "ABC1234", "--results", str(tmp_path)])
    assert result.exit_code == 0, result.output
    (run,) = run_query(tmp_path, "SELECT label, git_commit, commit_source FROM runs").to_pylist()
    assert run == {"label": "v2", "git_commit": "abc1234", "commit_source": "--commit"}


@pytest.mark.ray
def test_a_sweep_started_before_invocations_resumes_as_it_was_measured(ray_local, tmp_path):
    data = {"invocations": 1, "repetitions": 10, "min_time": 0.02, "warmup": 0, "placement": "none",
            "workloads": {"cpu.sqrt_mod": {"elements": [1024, 2048]}}}
    def stop_after_the_first(i, trial, record):
        if record is not None:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(parse_sweep(data), None, tmp_path, on_trial=stop_after_the_first)
    (run_id,) = [r["run_id"] for r in Dataset(tmp_path).rows("SELECT run_id FROM runs")]
    store = RunStore(tmp_path, run_id)
    # As a version-2 run: no invocations anywhere, the old default of 10 rounds in its spec.
    stored = json.loads(store.read_run()["spec"])
    del stored["sampling"]["invocations"]
    store.write_run({**store.read_run(), "spec": json.dumps(stored, sort_keys=True)})
    as_version_2(tmp_path)
    resumed = run_sweep(parse_sweep({k: v for k, v in data.items() if k not in ("invocations", "repetitions")}),
                        None, tmp_path, resume=run_id).session
    assert resumed.status == "complete" and resumed.resumed == 1
    (second,) = [r.trial.trial_id for r in resumed.outcome.records]
    rows = {r["trial_id"]: r for r in Dataset(tmp_path).trials(run_id) if r["metric"] == "element_ops_per_s"}
    assert len(rows) == 2 and second in rows
    assert rows[second]["n"] == 10 and rows[second]["invocations"] == 1  # measured as the first part was
    assert not list(tmp_path.glob("runs/*/v2-*"))  # the run row now lives in one file
