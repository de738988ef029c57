"""Verdicts between runs: A/A false alarms, the power to catch a planted 10% change, variance components.

Three parts, each a separate command (issue 20):

* ``aa``: the same `topobench run` (the default suite, or the workloads given) RUNS times in a
  row, each in a fresh process with its own embedded Ray, as a user would; then every
  consecutive pair is compared as `topobench compare latest~1 latest` does (Holm inside each
  pair, alpha 0.01), with ``--prior none`` and with ``--prior auto`` (earlier runs of the same
  commit). It prints each pair's verdicts and the share of pairs with any false
  "faster"/"slower", and the variance components of every headline metric over all the runs
  (between runs, between invocations, between rounds; relative sds), with each run's wall time.
* ``power``: a small C program in a git checkout of its own, run by the ``command`` workload
  (``cwd`` = the checkout, so each run is labelled by its commit). Commit A does W units of
  work, commit B 1.10 W, nothing else changes (the command line is the same). ``--history`` runs
  of A come first; then REPS times: 2 runs of A, 2 runs of B, compared A vs B (2 runs per side)
  without a prior and with the automatic prior (the earlier runs of A). Printed: how often
  ``wall_s`` and ``user_s`` were called "slower" and how often their ratio CI held 1.10.
* ``walltime``: the default `topobench run` of this tree against one of an older tree
  (``--before DIR``, e.g. a ``git archive`` of main), alternated, wall time of each.

Usage:
    python benchmarks/between_runs.py aa [--runs 12] [--results DIR] [-- WORKLOAD ... / run options]
    python benchmarks/between_runs.py power [--reps 5] [--history 4] [--work-ms 60] [--analyze RESULTS]
    python benchmarks/between_runs.py walltime --before DIR [--repeats 3]

The machine's load (``uptime``) is printed before and after each part: on a shared machine
every figure depends on it.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from orchestrator.analysis.compare import CompareResult, compare_runs
from orchestrator.analysis.components import variance_components
from orchestrator.analysis.prior_runs import choose_history
from orchestrator.settings import COMPARE_HISTORY
from orchestrator.store.queries import run_index, run_rounds, select_runs
from orchestrator.store.reader import Dataset
from workloads.registry import get_workload

ALPHA = 0.01
FALSE = ("faster", "slower")


def load() -> str:
    """Return the machine's load averages, as uptime prints them."""
    return " ".join(f"{v:.2f}" for v in os.getloadavg()) + f" (1, 5, 15 min; {os.cpu_count()} CPUs)"


def topobench(args: list[str], env: dict[str, str] | None = None, tree: Path = REPO) -> tuple[float, str]:
    """Run `topobench ARGS` from ``tree`` in a fresh process; return its wall seconds and output."""
    env = {**os.environ, **(env or {}), "PYTHONPATH": str(tree)}
    env.pop("RAY_ADDRESS", None)
    t0 = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "orchestrator.cli", *args], capture_output=True, text=True,
                          env=env, check=False)
    if done.returncode not in (0, 1):
        raise SystemExit(f"topobench {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return time.monotonic() - t0, done.stdout + done.stderr


def compare(dataset: Dataset, base: list[str], new: list[str], prior: str) -> CompareResult:
    """Compare as `topobench compare` does, with ``--prior`` ``prior``."""
    history = choose_history(run_index(dataset), prior, base, new, COMPARE_HISTORY,
                             lambda text: select_runs(dataset, text))
    return compare_runs([run_rounds(dataset, r) for r in base], [run_rounds(dataset, r) for r in new],
                        alpha=ALPHA, prior=[run_rounds(dataset, r) for r in history.run_ids], prior_note=history.note)


def headline(dataset: Dataset, runs: list[str], metric: str | None = None) -> dict[tuple, list]:
    """Return per (workload, metric) of each headline metric (or ``metric``): per run, its rounds by invocation."""
    out: dict[tuple, list] = {}
    for run in runs:
        for key, m in run_rounds(dataset, run).metrics.items():
            if key[-1] == (metric or get_workload(key[0]).throughput.name) and m.invocations:
                out.setdefault((key[0], key[-1]), []).append([list(i) for i in m.invocations if i])
    return out


def print_components(dataset: Dataset, runs: list[str], metric: str | None = None) -> None:
    """Print the variance components of every headline metric (or ``metric``) over ``runs`` (relative sds)."""
    print(f"variance components of {metric or 'each headline metric'} (relative sd: sqrt of the log-scale variance):")
    for (workload, name), per_run in headline(dataset, runs, metric).items():
        c = variance_components(per_run)

        def pct(v: float | None) -> str:
            return "   -  " if v is None else f"{100 * v ** 0.5:5.2f}%"

        shares = "/".join("-" if f is None else f"{100 * f:.0f}" for f in
                          (c.run_fraction, c.invocation_fraction, c.round_fraction))
        print(f"  {workload:14s} {name:20s} runs {pct(c.between_runs)}  invocations "
              f"{pct(c.between_invocations)}  rounds {pct(c.between_rounds)}  (shares {shares} %; "
              f"{c.runs} runs, {c.invocations} invocations, {c.rounds} rounds)")


def aa(args: argparse.Namespace) -> None:
    """Run the same command RUNS times and compare every consecutive pair."""
    results = Path(args.results or tempfile.mkdtemp(prefix="topobench-aa-"))
    print(f"A/A: {args.runs} x `topobench run {' '.join(args.extra)}` into {results}; load {load()}", flush=True)
    walls = []
    for i in range(args.runs):
        wall, _ = topobench(["run", *args.extra, "--results", str(results)])
        walls.append(wall)
        print(f"  run {i + 1}/{args.runs}: {wall:.1f} s; load {load()}", flush=True)
    dataset = Dataset(results)
    runs = [r["run_id"] for r in run_index(dataset) if r["status"] == "complete"][-args.runs:]
    print(f"wall per run: median {statistics.median(walls):.1f} s (min {min(walls):.1f}, max {max(walls):.1f})")
    for prior in ("none", "auto"):
        alarms = tested = pairs_bad = 0
        for a, b in itertools.pairwise(runs):
            result = compare(dataset, [a], [b], prior)
            bad = [r for r in result.rows if r.verdict in FALSE]
            tested += sum(1 for r in result.rows if r.p_adjusted is not None)
            alarms += len(bad)
            pairs_bad += bool(bad)
            named = ", ".join(f"{r.workload}:{r.metric} {r.verdict} {r.ratio:.3f}" for r in bad) or "-"
            print(f"  --prior {prior}: {a} -> {b} [{'/'.join(result.bases)}]: {named}")
        print(f"--prior {prior}: false verdicts in {pairs_bad} of {len(runs) - 1} pairs "
              f"({alarms} of {tested} tested metric comparisons); goal: at most 1 pair in 20")
    print_components(dataset, runs)
    print(f"load after: {load()}")


PROGRAM = """#include <stdio.h>
#include <stdlib.h>
#define WORK {work}UL
int main(void) {{
    volatile double x = 1.0;
    for (unsigned long i = 0; i < WORK; i++) x = x * 1.0000001 + 1e-9;
    return x < 0;
}}
"""


def git(repo: Path, *args: str) -> str:
    """Run git in ``repo``; return its stdout."""
    env = {**os.environ, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "b@x", "GIT_COMMITTER_NAME": "bench",
           "GIT_COMMITTER_EMAIL": "b@x"}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env=env).stdout.strip()


def build(repo: Path, commit: str) -> None:
    """Check out ``commit`` and compile its program to ./prog (ignored by git)."""
    git(repo, "checkout", "-q", commit)
    subprocess.run(["gcc", "-O1", "-o", str(repo / "prog"), str(repo / "prog.c")], check=True)


def calibrate_work(repo: Path, work_ms: float) -> int:
    """Return the loop count that runs about ``work_ms`` milliseconds here."""
    work = 10_000_000
    (repo / "prog.c").write_text(PROGRAM.format(work=work))
    subprocess.run(["gcc", "-O1", "-o", str(repo / "prog"), str(repo / "prog.c")], check=True)
    t0 = time.perf_counter()
    subprocess.run([str(repo / "prog")], check=False)
    return int(work * work_ms / 1000 / (time.perf_counter() - t0))


METRICS = ("wall_s", "user_s")
"""What the power part reads: wall seconds per run (all that slows a run) and user CPU seconds
(the work alone, hardly moved by other processes sharing the CPU)."""


def power(args: argparse.Namespace) -> None:
    """Plant a 10% slowdown as a commit and count how often compare catches it (2 runs per side)."""
    if args.analyze:
        return judge_power(Path(args.analyze))
    root = Path(tempfile.mkdtemp(prefix="topobench-power-"))
    repo, results = root / "program", root / "results"
    repo.mkdir()
    git(repo, "init", "-q")
    work = calibrate_work(repo, args.work_ms)
    (repo / ".gitignore").write_text("prog\n")
    commits = {}
    for name, factor in (("A", 1.0), ("B", 1.10)):
        (repo / "prog.c").write_text(PROGRAM.format(work=int(work * factor)))
        git(repo, "add", "prog.c", ".gitignore")
        git(repo, "commit", "-qm", f"work x{factor}")
        commits[name] = git(repo, "rev-parse", "HEAD")
    run = ["run", "command", "--param", "command.cmd=./prog", "--param", f"command.cwd={repo}",
           "--results", str(results), *args.extra]
    print(f"power: loop {work} (~{args.work_ms:g} ms) vs x1.10 in {repo}; A={commits['A'][:10]} "
          f"B={commits['B'][:10]}; load {load()}", flush=True)
    for name, count in [("A", args.history)] + [(n, 2) for _ in range(args.reps) for n in ("A", "B")]:
        build(repo, commits[name])
        for _ in range(count):
            topobench(run)
        print(f"  {count} run(s) of {name} done; load {load()}", flush=True)
    judge_power(results)


def judge_power(results: Path) -> None:
    """Compare, in a power dataset, each pair of A runs with the pair of B runs after it."""
    dataset = Dataset(results)
    index = [r for r in run_index(dataset) if r["status"] == "complete"]
    first = index[0]["git_commit"]
    history = 0
    while history < len(index) and index[history]["git_commit"] == first and (
            history + 2 >= len(index) or index[history + 2]["git_commit"] == first):
        history += 1
    reps = [index[i:i + 4] for i in range(history, len(index) - 3, 4)]
    print(f"power: {history} history runs, {len(reps)} comparisons of 2 runs of A against 2 of B")
    tallies = {(p, m): [0, 0] for p in ("none", "auto") for m in METRICS}
    for rep, runs in enumerate(reps, 1):
        base, new = [r["run_id"] for r in runs[:2]], [r["run_id"] for r in runs[2:]]
        for prior in ("none", "auto"):
            rows = {r.metric: r for r in compare(dataset, base, new, prior).rows}
            for metric in METRICS:
                row = rows[metric]
                covers = row.ratio_ci_low is not None and row.ratio_ci_low <= 1.10 <= row.ratio_ci_high
                tallies[prior, metric][0] += row.verdict == "slower"
                tallies[prior, metric][1] += covers
                ci = "-" if row.ratio_ci_low is None else f"{row.ratio_ci_low:.3f}-{row.ratio_ci_high:.3f}"
                print(f"  rep {rep} --prior {prior} {metric}: ratio {row.ratio:.3f} CI {ci} basis {row.basis} "
                      f"p(Holm) {row.p_adjusted if row.p_adjusted is None else f'{row.p_adjusted:.2g}'} "
                      f"-> {row.verdict}")
    for (prior, metric), (slower, covers) in tallies.items():
        print(f"--prior {prior} {metric}: 'slower' in {slower} of {len(reps)}; ratio CI held 1.10 in {covers} "
              f"of {len(reps)} (goal: 4 of 5 each)")
    print_components(dataset, [r["run_id"] for r in index])
    for metric in METRICS:
        print_components(dataset, [r["run_id"] for r in index], metric)


def walltime(args: argparse.Namespace) -> None:
    """Time the default `topobench run` of this tree against an older one, alternated."""
    before, after = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            for tree, kept in ((Path(args.before), before), (REPO, after)):
                wall, _ = topobench(["run", *args.extra, "--results", f"{tmp}/{len(before) + len(after)}"], tree=tree)
                kept.append(wall)
                print(f"  {tree}: {wall:.1f} s; load {load()}", flush=True)
    print(f"default run: before median {statistics.median(before):.1f} s {before}, "
          f"after median {statistics.median(after):.1f} s {after}")


def main() -> None:
    """Parse the part to run and its options; everything after `--` goes to `topobench run`."""
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parts = parser.add_subparsers(dest="part", required=True)
    p = parts.add_parser("aa")
    p.add_argument("--runs", type=int, default=12)
    p.add_argument("--results", default=None, help="dataset folder (default: a new temporary one)")
    p = parts.add_parser("power")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--history", type=int, default=4, help="runs of A before the first comparison (the prior)")
    p.add_argument("--work-ms", type=float, default=60.0)
    p.add_argument("--analyze", default=None, help="only judge the runs of an earlier power dataset (its results/)")
    p = parts.add_parser("walltime")
    p.add_argument("--before", required=True, help="a tree of the older topobench (git archive of main)")
    p.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    args.extra = extra
    {"aa": aa, "power": power, "walltime": walltime}[args.part](args)


if __name__ == "__main__":
    main()
