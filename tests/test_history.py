"""``topobench history``: series and points, detection confirmed on raw rounds, alerts, the gate, acks, detect.

Datasets are synthetic (``dataset.write_run`` through the product's writer), so every expected
change is known; commits come from a real git repository made in tmp.
"""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from dataset import NODE, run_query, write_run
from typer.testing import CliRunner

from orchestrator.analysis.regressions import open_regressions
from orchestrator.analysis.series import build_series, host_fingerprint
from orchestrator.analysis.stats import benjamini_hochberg
from orchestrator.cli import app
from orchestrator.pipeline.history import HistoryFilter, run_history
from orchestrator.store.layout import new_run_id
from orchestrator.store.writer import RunStore

T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)
runner = CliRunner()


def git_repo(path, commits: int) -> list[str]:
    """Make a git repository of ``commits`` first-parent commits; return their SHAs, oldest first."""
    path.mkdir(parents=True, exist_ok=True)
    env = ["-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    shas = []
    for i in range(commits):
        (path / "prog.txt").write_text(f"version {i}\n")
        subprocess.run(["git", "-C", str(path), "add", "prog.txt"], check=True)
        subprocess.run(["git", "-C", str(path), *env, "commit", "-qm", f"c{i}"], check=True)
        shas.append(subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], check=True, capture_output=True,
                                   text=True).stdout.strip())
    return shas


def write_series(root, levels, *, commits=None, seed=0, noise=0.01, rounds=8, node=None, when=None, extra=None):
    """Write one run per level (a throughput, higher is better) and a steady latency series beside it."""
    rng = np.random.default_rng(seed)
    for i, level in enumerate(levels):
        started = (when or (lambda j: T0 + timedelta(hours=j)))(i)
        trials = [{"workload": "cpu.x", "metric": "ops_per_s", "rounds": level * (1 + rng.normal(0, noise, rounds))},
                  {"workload": "cpu.y", "metric": "lat_ms", "unit": "ms", "higher_is_better": False,
                   "rounds": 5.0 * (1 + rng.normal(0, noise, rounds))}]
        write_run(root, new_run_id(started), started, trials + list(extra(i) if extra else ()),
                  commit=commits[i] if commits else None, node=(node(i) if callable(node) else node))


def series_of(outcome, workload="cpu.x"):
    return next(s for s in outcome.history.series if s.series.key.workload == workload)


@pytest.fixture(scope="module")
def stepped(tmp_path_factory):
    """30 of 34 commits benchmarked; the throughput drops 10% at the 21st point; the kernel changes there too."""
    base = tmp_path_factory.mktemp("stepped")
    shas = git_repo(base / "repo", 34)
    # Commits 20-23 were never benchmarked, and two runs went in out of time order.
    picked = shas[:20] + shas[24:34]
    order = list(range(30))
    order[3], order[4] = order[4], order[3]
    write_series(base / "results", [100.0 if i < 20 else 90.0 for i in range(30)], commits=picked,
                 when=lambda i: T0 + timedelta(hours=order[i]),
                 node=lambda i: {"kernel": "6.1.0" if i < 20 else "6.5.0"})
    return base, picked


def test_a_step_is_one_confirmed_regression_with_its_alert(stepped):
    base, shas = stepped
    outcome = run_history(base / "results", repo=base / "repo")
    s = series_of(outcome)
    assert s.series.order == "git first-parent" and "git first-parent" in outcome.order
    assert [p.commit for p in s.series.points] == shas  # git order, not the runs' time order
    (change,) = s.changes
    assert change.index == 20 and change.confirmed and change.kind == "regression" and change.shape == "step"
    assert change.last_good.commit == shas[19] and change.first_bad.commit == shas[20]
    assert change.unbenchmarked == 4  # commits 20-23 of the repository lie between, never run
    assert 0.88 < change.confirmation.ci_low < change.ratio < change.confirmation.ci_high < 0.92
    assert change.shift == pytest.approx(-10, abs=1)
    assert change.confirmation.basis == "runs" and change.confirmation.runs_before == 20
    assert change.environment == ("kernel 6.1.0 → 6.5.0",)
    assert series_of(outcome, "cpu.y").changes == ()  # the steady series beside it
    assert 0.002 < s.noise_cv < 0.02


def test_history_lists_and_prints_the_series_with_its_alert(stepped):
    base, shas = stepped
    args = ["history", "--results", str(base / "results"), "--repo", str(base / "repo")]
    listed = runner.invoke(app, [*args, "--format", "json"])
    assert listed.exit_code == 0, listed.output
    data = json.loads(listed.stdout)
    x = next(s for s in data["series"] if s["workload"] == "cpu.x")
    (change,) = x["changes"]
    assert change["first_bad"]["commit"] == shas[20] and change["environment_changed"] is True
    assert change["unbenchmarked_commits"] == 4 and change["basis"] == "runs"
    assert change["detection_p"] < 0.01 and change["confirmation_p_adjusted"] < 0.05
    assert data["open_regressions"] == [change["id"]]
    one = runner.invoke(app, [*args, x["series"][:6]])
    assert one.exit_code == 0, one.output
    assert f"REGRESSION {change['id']} (confirmed) at point 20" in one.stdout
    assert f"git bisect start {shas[20]} {shas[19]}" in one.stdout
    assert "environment changed: kernel 6.1.0 → 6.5.0" in one.stdout
    assert "optimistic" in one.stdout
    csv = runner.invoke(app, [*args, x["series"], "--format", "csv"])
    assert csv.stdout.splitlines()[21].startswith("20,") and "regression" in csv.stdout.splitlines()[21]


def test_gate_fails_on_an_open_regression_and_ack_clears_it(stepped, tmp_path):
    base, _ = stepped
    from dataset import copy_run

    results = tmp_path / "r"
    for run in sorted(p.name.split("=")[1] for p in (base / "results" / "runs").iterdir()):
        copy_run(base / "results", run, run, results)
    args = ["history", "--results", str(results), "--repo", str(base / "repo")]
    assert runner.invoke(app, [*args, "--fail-on-regression", "5%"]).exit_code == 1
    assert runner.invoke(app, [*args, "--fail-on-regression", "15%"]).exit_code == 0  # a 10% drop
    change = json.loads(runner.invoke(app, [*args, "--format", "json"]).stdout)["open_regressions"][0]
    bad = runner.invoke(app, ["history", "ack", "0000000000", "--reason", "x", "--results", str(results)])
    assert bad.exit_code == 2 and "matches no change" in bad.stderr
    empty = runner.invoke(app, ["history", "ack", change, "--reason", " ", "--results", str(results)])
    assert empty.exit_code == 2 and "--reason is empty" in empty.stderr
    assert not (results / "acks").exists()
    done = runner.invoke(app, ["history", "ack", change, "--reason", "new buffer size (#12)",
                               "--results", str(results), "--repo", str(base / "repo")])
    assert done.exit_code == 0, done.output
    assert runner.invoke(app, [*args, "--fail-on-regression", "5%"]).exit_code == 0
    stored = run_query(results, "SELECT change_id, reason FROM acks").to_pylist()
    assert stored == [{"change_id": change, "reason": "new buffer size (#12)"}]
    shown = runner.invoke(app, [*args, json.loads(runner.invoke(app, [*args, "--format", "json"]).stdout)
                                ["series"][0]["series"]])
    assert "acknowledged by" in shown.stdout and "new buffer size (#12)" in shown.stdout


def test_a_regression_undone_later_no_longer_fails(tmp_path):
    write_series(tmp_path, [100.0] * 15 + [85.0] * 12 + [100.0] * 13)
    outcome = run_history(tmp_path, repo=tmp_path)
    s = series_of(outcome)
    assert [c.index for c in s.changes] == [15, 27] and all(c.confirmed for c in s.changes)
    assert [c.kind for c in s.changes] == ["regression", "improvement"]
    assert outcome.history.regressions(0.05) == ()
    assert outcome.order.startswith("time order")


def test_no_change_and_one_outlier_point_give_nothing(tmp_path):
    levels = [100.0] * 30
    levels[12] = 70.0  # one wild point (a run on a busy machine)
    write_series(tmp_path, levels)
    outcome = run_history(tmp_path, repo=tmp_path)
    assert all(s.changes == () for s in outcome.history.series)
    assert runner.invoke(app, ["history", "--results", str(tmp_path), "--fail-on-regression", "1%"]).exit_code == 0


def test_two_steps_of_one_sign_are_one_two_step_regression(tmp_path):
    write_series(tmp_path, [100.0] * 15 + [92.0] * 12 + [84.0] * 15, noise=0.005)
    s = series_of(run_history(tmp_path, repo=tmp_path))
    assert [c.index for c in s.changes] == [15, 27]
    assert all(c.confirmed and c.kind == "regression" for c in s.changes)
    assert {c.shape for c in s.changes} == {"two-step"} and len({c.group for c in s.changes}) == 1
    (regression,) = open_regressions(s, 0.1)  # 16% in all: the group counts, not each 8% step
    assert regression.ratio_now == pytest.approx(0.84, abs=0.01) and len(regression.changes) == 2


def test_several_runs_of_one_commit_pool_into_one_point(tmp_path):
    shas = git_repo(tmp_path / "repo", 12)
    commits = [c for c in shas for _ in range(3)]
    write_series(tmp_path / "r", [100.0] * 36, commits=commits)
    s = series_of(run_history(tmp_path / "r", repo=tmp_path / "repo"))
    assert len(s.series.points) == 12 and all(len(p.run_ids) == 3 for p in s.series.points)
    p = s.series.points[0]
    assert p.value == pytest.approx(float(np.median(p.figures))) and p.ci_low < p.value < p.ci_high


def test_benjamini_hochberg_keeps_false_changes_rare_across_many_series(tmp_path):
    # 40 steady series and one real 8% step: only the real one is confirmed.
    extra = [lambda i, k=k: {"workload": f"noise.{k}", "metric": "ops_per_s",
                             "rounds": 50.0 * (1 + np.random.default_rng(1000 * k + i).normal(0, 0.02, 8))}
             for k in range(40)]
    write_series(tmp_path, [100.0] * 18 + [92.0] * 12, extra=lambda i: [e(i) for e in extra], seed=3)
    history = run_history(tmp_path, repo=tmp_path).history
    confirmed = [(s.series.key.workload, c.index) for s, c in history.changes() if c.confirmed]
    assert confirmed == [("cpu.x", 18)]
    assert history.family >= 41  # every series scanned is in the family, flagged or not


def test_benjamini_hochberg_against_the_definition():
    p = [0.01, 0.04, 0.03, 0.2, 0.001]
    m = len(p)
    ranked = sorted(range(m), key=lambda i: p[i])
    expected = [0.0] * m
    running = 1.0
    for rank in range(m, 0, -1):  # step-up: the smallest of m p / rank from the top
        i = ranked[rank - 1]
        running = min(running, p[i] * m / rank)
        expected[i] = running
    assert benjamini_hochberg(p) == pytest.approx(expected)
    assert benjamini_hochberg([]) == ()


def test_fingerprint_holds_stable_fields_only():
    same = host_fingerprint([NODE])
    reboot = host_fingerprint([{**NODE, "kernel": "6.5", "microcode": "0xbeef", "governor": "powersave",
                                "memory_total_bytes": NODE["memory_total_bytes"] + 50 * 2**20, "host_id": "b2"}])
    other = host_fingerprint([{**NODE, "cpu_stepping": "2"}])
    assert same == reboot and same.fingerprint != other.fingerprint
    assert "stepping 1" in same.description and "32 GiB" in same.description and "SMT2" in same.description
    old = {k: v for k, v in NODE.items() if k not in ("cpu_family", "cpu_model_number", "cpu_stepping", "arch")}
    assert host_fingerprint([old]).fingerprint != same.fingerprint  # an older dataset's node: its own series


def test_workload_code_version_starts_a_new_series():
    rows = [{"run_id": f"r{i}", "fingerprint": "f", "host": "h", "workload": "w", "workload_version": v,
             "params": "{}", "placement": "compact", "nodes": 1, "workers": 1, "threads_per_worker": 1,
             "mode": "weak", "metric": "m", "unit": "u", "higher_is_better": True, "median": 1.0,
             "commit": None, "label": None, "started_at": T0 + timedelta(hours=i)}
            for i, v in enumerate(["a", "a", "b"])]
    assert sorted(len(s.points) for s in build_series(rows)) == [1, 2]


def test_filters_and_a_dataset_written_before_history(tmp_path):
    import pyarrow.parquet as pq

    write_series(tmp_path, [100.0] * 12)
    new = {"nodes": ["cpu_family", "cpu_model_number", "cpu_stepping", "microcode", "arch"],
           "trials": ["workload_version"]}
    for table, columns in new.items():  # rewrite half the runs' files as an older topobench wrote them
        for path in sorted((tmp_path / table).rglob("*.parquet"))[::2]:
            old = pq.read_table(path)
            pq.write_table(old.drop_columns(columns).replace_schema_metadata(old.schema.metadata), path)
    assert "cpu_stepping" not in pq.read_schema(min((tmp_path / "nodes").rglob("*.parquet"))).names
    outcome = run_history(tmp_path, HistoryFilter(workload="cpu.y"), repo=tmp_path)
    # Old and new files side by side: the columns an old file lacks read null, so its runs make a
    # series of their own (unknown code version, a host fingerprint without the new fields).
    old_runs, new_runs = sorted(outcome.history.series, key=lambda s: s.series.key.workload_version or "")
    assert old_runs.series.key.workload_version is None and new_runs.series.key.workload_version == "0123456789ab"
    assert len(old_runs.series.points) == len(new_runs.series.points) == 6
    assert "stepping" not in old_runs.series.key.host and "stepping 1" in new_runs.series.key.host
    assert run_history(tmp_path, HistoryFilter(host="EPYC"), repo=tmp_path).history.series
    assert not run_history(tmp_path, HistoryFilter(host="Xeon"), repo=tmp_path).history.series
    late = run_history(tmp_path, HistoryFilter(since=T0 + timedelta(hours=6)), repo=tmp_path)
    assert {len(s.series.points) for s in late.history.series} == {3}


def test_the_index_reads_each_run_once(tmp_path):
    write_series(tmp_path, [100.0] * 10)
    first = run_history(tmp_path, repo=tmp_path)
    assert (first.runs, first.indexed) == (10, 10) and list((tmp_path / "_history").glob("*.parquet"))
    again = run_history(tmp_path, repo=tmp_path)
    assert (again.runs, again.indexed) == (10, 0)
    write_run(tmp_path, new_run_id(T0 + timedelta(days=3)), T0 + timedelta(days=3),
              [{"workload": "cpu.x", "metric": "ops_per_s", "rounds": [100.0] * 8}])
    third = run_history(tmp_path, repo=tmp_path)
    assert (third.runs, third.indexed) == (11, 1)
    assert len(series_of(third).series.points) == 11
    first_run = run_query(tmp_path, "SELECT min(run_id) AS r FROM runs").to_pylist()[0]["r"]
    store = RunStore(tmp_path, first_run)
    store.write_run({**store.read_run(), "label": "relabelled"})  # a commit to the run: its signature moves
    fourth = run_history(tmp_path, repo=tmp_path)
    assert (fourth.runs, fourth.indexed) == (11, 1)
    assert series_of(fourth).series.points[0].label == "relabelled"


@pytest.mark.parametrize(("args", "message"), [
    (["--format", "xml"], "--format 'xml' is not one of table, json, csv"),
    (["--since", "yesterday"], "--since 'yesterday' is not a date"),
    (["--fail-on-regression", "lots"], "--fail-on-regression 'lots' is not a percentage"),
    (["abcdef"], "Series 'abcdef' matches no series"),
])
def test_bad_input_is_one_sentence_and_exit_2(stepped, args, message):
    base, _ = stepped
    result = runner.invoke(app, ["history", "--results", str(base / "results"), *args])
    assert result.exit_code == 2 and message in result.stderr and "Traceback" not in result.output


def test_history_of_a_missing_folder_is_exit_2(tmp_path):
    result = runner.invoke(app, ["history", "--results", str(tmp_path / "none")])
    assert result.exit_code == 2 and "does not exist" in result.stderr


def test_detect_on_a_plain_csv_or_json_series(tmp_path):
    values = [10.0] * 15 + [12.0] * 15
    (tmp_path / "s.csv").write_text("commit,time_s\n" + "".join(f"c{i},{v}\n" for i, v in enumerate(values)))
    (tmp_path / "s.json").write_text(json.dumps([{"t": v} for v in values]))
    (tmp_path / "flat.json").write_text(json.dumps([1.0] * 30))
    out = runner.invoke(app, ["history", "detect", "--csv", str(tmp_path / "s.csv"), "--column", "time_s"])
    assert out.exit_code == 0, out.output
    found = json.loads(out.stdout)
    assert [c["index"] for c in found] == [15] and found[0]["median_after"] == 12.0 and found[0]["p_value"] < 0.005
    assert json.loads(runner.invoke(app, ["history", "detect", "--json", str(tmp_path / "s.json"),
                                          "--column", "t"]).stdout)[0]["index"] == 15
    assert json.loads(runner.invoke(app, ["history", "detect", "--json", str(tmp_path / "flat.json")]).stdout) == []


@pytest.mark.parametrize(("args", "message"), [
    ([], "exactly one of --csv FILE --column NAME or --json FILE"),
    (["--csv", "s.csv"], "--csv needs --column NAME"),
    (["--csv", "s.csv", "--column", "nope"], "--column 'nope' is not a column of"),
    (["--csv", "bad.csv", "--column", "v"], "line 3 column 'v' is 'n/a', not a finite number"),
    (["--json", "missing.json"], "cannot be read"),
    (["--csv", "s.csv", "--column", "v", "--alpha", "2"], "--alpha/--min-size"),
])
def test_detect_bad_input(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.csv").write_text("v\n1\n2\n")
    (tmp_path / "bad.csv").write_text("v\n1\nn/a\n")
    result = runner.invoke(app, ["history", "detect", *args])
    assert result.exit_code == 2 and message in result.stderr, result.output
