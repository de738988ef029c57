"""End to end: 20 commits of a real git repository, one real run each of two ``command`` programs.

One program's work rises 15% at commit 12 (its file changes, as a commit would); the other's
never changes. Each run's commit is the git checkout it ran from (``runs.git_commit``). Each
program prints the work it did, scraped as the ``extracted`` metric (lower is better), so that
series is exact; the timing series beside it are as noisy as this machine. The runs take no
host-wide CPU lock (``lock = false``): on a shared test machine they would wait for others'.
Nothing is asserted of where the timing series change: on a shared machine the load on the
other vCPU shifts them for real (a busy sibling once raised the steady program's user_s 28%
from commit 9 on, which the detector rightly confirmed); the detector's false-alarm rate on
stationary noise is checked by simulation in ``test_changepoints``.
"""

from __future__ import annotations

import subprocess

import pytest
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.pipeline.history import run_history

pytestmark = pytest.mark.ray
COMMITS, CHANGE = 20, 12
PROGRAM = """import sys
n = {work}
total = 0
for i in range(n):
    total += i * i
print("work", n)
"""
SWEEP = """repetitions = 3
warmup = 0
min_time = 0.01
lock = false
[workloads.command]
cmd = ["python3 {repo}/changed.py", "python3 {repo}/steady.py"]
metric_regex = "work (\\\\d+)"
direction = "lower"
"""


def _git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t",
                           "-c", "commit.gpgsign=false", *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def history(ray_local, tmp_path_factory):
    """Run the two programs once per commit; return (history, the commits, the results folder)."""
    base = tmp_path_factory.mktemp("e2e")
    repo, results = base / "repo", base / "results"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (base / "sweep.toml").write_text(SWEEP.format(repo=repo))
    runner, shas = CliRunner(), []
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(repo)  # the run's commit is that of the checkout it runs in
        for i in range(COMMITS):
            (repo / "changed.py").write_text(PROGRAM.format(work=200_000 if i < CHANGE else 230_000)
                                             + f"# commit {i}\n")
            (repo / "steady.py").write_text(PROGRAM.format(work=200_000))
            _git(repo, "add", "-A")
            _git(repo, "commit", "-qm", f"commit {i}")
            shas.append(_git(repo, "rev-parse", "HEAD").strip())
            out = runner.invoke(app, ["sweep", str(base / "sweep.toml"), "--results", str(results)])
            assert out.exit_code == 0, out.output
    return run_history(results, repo=repo), shas, results


def _series(history, program, metric):
    return next(s for s in history.series if program in s.series.key.params and s.series.key.metric == metric)


def test_the_changed_program_has_one_confirmed_change_at_commit_12(history):
    outcome, shas, _ = history
    work = _series(outcome.history, "changed.py", "extracted")
    assert [p.commit for p in work.series.points] == shas and work.series.order == "git first-parent"
    assert len(work.series.key.workload_version) == 12  # the command workload's code, hashed when it ran
    (change,) = work.changes
    assert change.index == CHANGE and change.confirmed and change.kind == "regression"
    assert change.ratio == pytest.approx(1.15) and change.last_good.commit == shas[CHANGE - 1]
    assert change.first_bad.commit == shas[CHANGE] and change.unbenchmarked == 0
    assert change.confirmation.basis == "runs" and change.confirmation.runs_before == CHANGE


def test_the_unchanged_program_has_none(history):
    outcome, _, _ = history
    steady = _series(outcome.history, "steady.py", "extracted")
    assert len(steady.series.points) == COMMITS and steady.changes == ()


def test_the_gate_and_the_command_line_agree(history):
    _, _, results = history
    runner = CliRunner()
    gate = runner.invoke(app, ["history", "--results", str(results), "--workload", "command", "--metric",
                               "extracted", "--fail-on-regression", "10%"])
    assert gate.exit_code == 1 and "open regression" in gate.stderr
    assert runner.invoke(app, ["history", "--results", str(results), "--workload", "command", "--metric",
                               "extracted", "--fail-on-regression", "20%"]).exit_code == 0
