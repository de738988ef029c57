"""``topobench sweep``: run a matrix from a TOML file (or resume it) and analyze how throughput scales."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from orchestrator.commands.options import RESULTS, AddressOption, ResultsOption
from orchestrator.settings import MAX_TRIALS
from workloads.errors import UserError

if TYPE_CHECKING:
    from orchestrator.analysis.scaling_series import SeriesAnalysis
    from orchestrator.pipeline.runner import OnTrial
    from orchestrator.pipeline.session import Session
    from orchestrator.pipeline.sweep_file import SweepSpec
    from orchestrator.records import Trial

MAX_TRIALS_HELP = "Refuse a matrix of more trials than this (a typo in a list can make millions)."


def sweep(
    file: Annotated[Path, typer.Argument(help="TOML sweep file (see examples/sweep-*.toml).")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the expanded trials and CPU plans; run nothing.")] = False,
    resume: Annotated[str | None, typer.Option(
        "--resume", help="Run id of an earlier sweep: skip its stored trials, run the rest.")] = None,
    max_trials: Annotated[int, typer.Option(help=MAX_TRIALS_HELP)] = MAX_TRIALS,
    results: ResultsOption = RESULTS,
    address: AddressOption = None,
) -> None:
    """Run a sweep (workloads x nodes x workers x placements) and analyze how throughput scales.

    With a [capacity] table the sweep searches the capacity at an SLO per N instead (as `topobench capacity`).
    """
    from orchestrator.pipeline.sweep_file import load_sweep
    from orchestrator.render.console import stdout_console

    spec = load_sweep(file, max_trials)
    if dry_run:
        from orchestrator.pipeline.session import plan_only
        from orchestrator.render.run_tables import plan_table

        nodes, trials = plan_only(address, spec.points())
        console = stdout_console()
        console.print(plan_table(trials, nodes, spec.sampling))
        if spec.capacity is not None:
            start = (f"open loop at {spec.capacity.start_per_s:g}/s" if spec.capacity.start_per_s
                     else "with the closed-loop trial shown")
            console.print(f"A capacity sweep plans each step from the one before: each N's search starts {start} "
                          "(the time shown is one such trial's).")
        return
    command = " ".join(["topobench", *sys.argv[1:]])
    if spec.capacity is not None:
        from orchestrator.commands.capacity import execute_capacity

        if resume:
            raise UserError("--resume does not apply to a sweep with a [capacity] table (each step is planned "
                            "from the last); run the sweep again.")
        execute_capacity(spec.capacity_search(), spec.to_json(), address, results, command)
        return
    session, _ = execute_sweep(spec, address, results, resume, command)
    if session.outcome.status != "complete" or session.targets_missed:
        raise typer.Exit(1)


def describe(trial: Trial) -> str:
    """Return the progress line of a sweep trial."""
    return (f"{trial.workload} · {len(trial.node_ids)} nodes · {len(trial.slots)} workers · "
            f"{trial.shape.placement}")


def no_series_text(session: Session) -> str:
    """Say why a sweep has no scaling series: nothing varied, or too few points completed."""
    by_trial = {r["trial_id"]: r for r in session.rows}
    done = [f"{r['nodes']} nodes x {r['workers']} workers" for r in by_trial.values() if r["status"] == "ok"]
    failed = [f"{r['nodes']} nodes x {r['workers']} workers ({r['error']})" for r in by_trial.values()
              if r["status"] != "ok"]
    if not failed:
        return "No scaling series: vary nodes or workers_per_node over two or more values."
    return (f"No scaling series: a series needs two completed points; completed: {', '.join(done) or 'none'}; "
            f"failed: {'; '.join(failed)}.")


def execute_sweep(spec: SweepSpec, address: str | None, results: Path = RESULTS, resume: str | None = None,
                  command: str = "topobench sweep", on_trial: OnTrial | None = None,
                  ) -> tuple[Session, tuple[SeriesAnalysis, ...]]:
    """Run ``spec`` through the session pipeline, store and print its scaling analysis.

    Returns the session and the analysis (also stored in the ``scaling`` table).
    """
    from orchestrator.analysis.scaling_series import analyze_run, scaling_rows
    from orchestrator.pipeline.session import SessionSpec, run_session
    from orchestrator.render.console import stdout_console
    from orchestrator.render.run_tables import scaling_tables
    from orchestrator.render.session_view import print_session
    from orchestrator.store.reader import Dataset
    from orchestrator.store.writer import RunStore

    session_spec = SessionSpec(results, address, command, spec.to_json(), spec.points(), spec.sampling,
                               spec.targets, resume, "continue with `topobench sweep FILE --resume {run_id}`",
                               describe)
    session = run_session(session_spec, on_trial)
    run_id = session.outcome.run_id
    analyses = analyze_run(Dataset(session.results), run_id, spec.workloads)
    RunStore(session.results, run_id).write_scaling(scaling_rows(run_id, analyses))
    extra: list = list(scaling_tables(analyses))
    if not analyses:
        extra.append(no_series_text(session))
    print_session(stdout_console(), session, "sweep", spec.sampling, extra, query_table="scaling")
    return session, analyses
