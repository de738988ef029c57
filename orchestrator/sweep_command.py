"""``topobench sweep``: load the sweep file, connect, probe, expand, run (or resume), analyze scaling."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import pyarrow.parquet as pq
import typer
from rich.console import Console
from rich.table import Table

from cluster.connection import ray_session
from cluster.cpulist import format_cpulist
from cluster.probe import NodeInfo, probe_nodes
from orchestrator.console import stdout_console
from orchestrator.env_command import print_warnings
from orchestrator.format import percent, si
from orchestrator.planner import Trial
from orchestrator.progress import trial_progress
from orchestrator.run_command import apply_targets, summary_table
from orchestrator.runner import RunOutcome, TrialResult, execute
from orchestrator.store import RunStore, check_writable, new_run_id, validate_run_id
from orchestrator.sweep import SweepSpec, expand, load_sweep
from orchestrator.sweep_analysis import SeriesAnalysis, analyze_run, params_text, scaling_rows
from workloads.errors import UserError

OnTrial = Callable[[int, Trial, TrialResult | None], None]


def plan_table(trials: tuple[Trial, ...], nodes: list[NodeInfo]) -> Table:
    """Return the dry-run table: one line per trial with its CPU plan on each node."""
    names = {n.node_id: f"{n.hostname}:{n.node_id[:6]}{'(head)' if n.is_head else ''}" for n in nodes}
    table = Table(title=f"sweep plan: {len(trials)} trials")
    for name in ("#", "trial_id", "params", "nodes", "workers", "placement", "CPUs per node (one set per worker)"):
        table.add_column(name, justify="right" if name in ("#", "nodes", "workers") else "left",
                         no_wrap=name == "trial_id")
    for i, t in enumerate(trials, 1):
        per_node: dict[str, list[str]] = {}
        for s in t.slots:
            per_node.setdefault(s.node_id, []).append(format_cpulist(s.cpus) if s.pinned else "unpinned")
        plan = "\n".join(f"{names[node]} {' | '.join(sets)}" for node, sets in per_node.items())
        params = " ".join(f"{k}={v}" for k, v in t.params.items())
        threads = f" x{t.threads_per_worker}t" if t.threads_per_worker > 1 else ""
        table.add_row(str(i), t.trial_id, params, str(len(t.node_ids)), f"{len(t.slots)}{threads}",
                      t.placement, plan)
    return table


def scaling_tables(analyses: tuple[SeriesAnalysis, ...]) -> list[Table]:
    """Return one rich table per analyzed series (N, throughput, speedup, efficiency, fits)."""
    tables = []
    for a in analyses:
        title = f"scaling of {a.workload} over {a.dimension} ({a.series}; {a.mode}) {params_text(a.params)}"
        table = Table(title=title.strip(), caption=_fit_caption(a))
        for name in ("N", "median", "95% CI", "speedup", "efficiency", "Karp-Flatt", "unit"):
            table.add_column(name, justify="left" if name == "unit" else "right")
        for r in a.rows:
            ci = "-" if r.throughput_ci_low is None else f"{si(r.throughput_ci_low)}– {si(r.throughput_ci_high)}"
            kf = "-" if r.karp_flatt is None else f"{r.karp_flatt:.3f}"
            table.add_row(str(r.n), si(r.throughput_median), ci, f"{r.speedup:.2f}", percent(r.efficiency),
                          kf, a.unit)
        tables.append(table)
    return tables


def _fit_caption(a: SeriesAnalysis) -> str:
    lines = []
    if a.amdahl:
        lo, hi = a.amdahl.serial_fraction_ci
        lines.append(f"Amdahl serial fraction {a.amdahl.serial_fraction:.3g} (95% CI {lo:.3g}–{hi:.3g}), "
                     f"rmse {si(a.amdahl.rmse)}")
    if a.usl:
        u = a.usl
        peak = f", peak N* {u.peak_n:.1f}" if u.peak_n is not None else ", no peak (κ = 0)"
        lines.append(f"USL σ {u.sigma:.3g} ({u.sigma_ci[0]:.3g}–{u.sigma_ci[1]:.3g}), κ {u.kappa:.3g} "
                     f"({u.kappa_ci[0]:.3g}–{u.kappa_ci[1]:.3g}){peak}, rmse {si(u.rmse)}")
    if a.fit_note:
        lines.append(a.fit_note)
    lines.append(f"verdict: {a.verdict}")
    return "\n".join(lines)


def _resume_rows(store: RunStore, wanted: set[str]) -> tuple[frozenset[str], list[dict]]:
    """Return the ok trial ids of a stored run that this sweep still has, and all their rows."""
    done = store.stored_trial_ids() & wanted
    path = store.root / "trials" / f"run_id={store.run_id}" / "trials.parquet"
    rows = [r for r in pq.read_table(path).to_pylist() if r["trial_id"] in done] if done else []
    return frozenset(done), rows


def execute_sweep(spec: SweepSpec, address: str | None, console: Console, results: Path = Path("results"),
                  resume: str | None = None, command: str = "",
                  on_trial: OnTrial | None = None) -> tuple[RunOutcome, tuple[SeriesAnalysis, ...]]:
    """Run ``spec`` on the cluster at ``address`` (None: embedded Ray) and analyze its scaling.

    Every trial is planned before the first file is written. With ``resume``, trials stored
    ok in that run are skipped and their rows kept. ``on_trial`` is a test seam called like
    the runner's callback. Returns the outcome and the scaling analysis (also stored).

    Raises:
        UserError: an unwritable results folder, a bad or unknown run id, or a plan the
            cluster cannot hold.
        KeyboardInterrupt: after the run was marked interrupted.
    """
    results = check_writable(results)
    if resume is not None:
        validate_run_id(resume)
        if not (results / "runs" / f"run_id={resume}").is_dir():
            raise UserError(f"--resume {resume}: no such run in {str(results)!r}; pass the run id of an "
                            "earlier sweep (`topobench query \"SELECT run_id, status FROM runs\"`).")
        stored = RunStore(results, resume).read("runs")
        if stored and stored[0]["spec"] != spec.to_json():
            raise UserError(f"--resume {resume}: this sweep file differs from the one that run used, so "
                            "its trials would not be comparable; resume with the same file, or start a new run.")
    with ray_session(address):
        nodes = probe_nodes()
        trials = expand(spec, nodes)
        print_warnings(Console(stderr=True), nodes)
        run_id = resume or new_run_id()
        store = RunStore(results, run_id)
        skip, previous = _resume_rows(store, {t.trial_id for t in trials}) if resume else (frozenset(), [])
        if skip:
            console.print(f"Resuming {run_id}: {len(skip)} of {len(trials)} trials already stored, "
                          f"running {len(trials) - len(skip)}.")

        def describe(i: int, trial: Trial) -> str:
            return f"{trial.workload} · {len(trial.node_ids)} nodes · {len(trial.slots)} workers · {trial.placement}"

        with trial_progress(len(trials) - len(skip), describe, also=on_trial) as progress_trial:
            try:
                outcome = execute(run_id, command or " ".join(sys.argv), spec.to_json(), spec.settings(),
                                  trials, nodes, store, progress_trial, skip=skip, previous_rows=previous)
            except KeyboardInterrupt:
                Console(stderr=True).print(f"Run {run_id} interrupted; finished trials are stored. "
                                           f"Continue with `topobench sweep FILE --resume {run_id}`.")
                raise
    if spec.targets:
        rows = [*previous, *(r for result in outcome.results for r in result.rows)]
        outcome = replace(outcome, targets_missed=apply_targets(spec.targets, spec.workloads, rows, store,
                                                                console))
    analyses = analyze_run(results, run_id, spec.workloads)
    store.write_scaling(scaling_rows(run_id, analyses))
    console.print(summary_table(outcome, title="topobench sweep"))
    for table in scaling_tables(analyses):
        console.print(table)
    if not analyses:
        console.print("No scaling series: vary nodes or workers_per_node over two or more values.")
    console.print(f"Results: {results} (run_id={run_id}); query with "
                  f"`topobench query \"SELECT * FROM scaling WHERE run_id='{run_id}'\"`")
    return outcome, analyses


def dry_run(spec: SweepSpec, address: str | None, console: Console) -> tuple[Trial, ...]:
    """Probe the cluster, expand ``spec`` and print the plan; writes nothing."""
    with ray_session(address):
        nodes = probe_nodes()
        trials = expand(spec, nodes)
    console.print(plan_table(trials, nodes))
    return trials


def sweep(
    file: Annotated[Path, typer.Argument(help="TOML sweep file (see examples/sweep-*.toml).")],
    dry_run_: Annotated[bool, typer.Option("--dry-run", help="Print the expanded trials and CPU plans; run nothing.")] = False,
    resume: Annotated[str | None, typer.Option(
        "--resume", help="Run id of an earlier sweep: skip its stored trials, run the rest.")] = None,
    results: Annotated[Path, typer.Option("--results", help="Results dataset folder.")] = Path("results"),
    address: Annotated[str | None, typer.Option(
        "--address", help="Ray cluster to use: host:port or 'auto' (default: $RAY_ADDRESS, else an embedded local Ray).")] = None,
) -> None:
    """Run a sweep (workloads x nodes x workers x placements) and analyze how throughput scales."""
    console = stdout_console()
    spec = load_sweep(file)
    if dry_run_:
        dry_run(spec, address, console)
        return
    try:
        outcome, _ = execute_sweep(spec, address, console, results, resume,
                                   command=" ".join(["topobench", *sys.argv[1:]]))
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    if outcome.status != "complete" or outcome.targets_missed:
        raise typer.Exit(1)
