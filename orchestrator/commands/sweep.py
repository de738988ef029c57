"""``topobench sweep``: run a matrix from a TOML file (or resume it) and analyze how throughput scales."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from orchestrator.commands.options import (
    AddressOption,
    CommitOption,
    LabelOption,
    MetricsOption,
    ResultsOption,
    check_metrics,
    command_line,
    run_labels,
)
from orchestrator.settings import MAX_TRIALS, RESULTS_DIR
from workloads.errors import UserError

MAX_TRIALS_HELP = "Refuse a matrix of more trials than this (a typo in a list can make millions)."


def sweep(
    file: Annotated[Path, typer.Argument(help="TOML sweep file (see examples/sweep-*.toml).")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the expanded trials and CPU plans; run nothing.")] = False,
    resume: Annotated[str | None, typer.Option(
        "--resume", help="Run id of an earlier sweep: skip its stored trials, run the rest.")] = None,
    max_trials: Annotated[int, typer.Option(help=MAX_TRIALS_HELP)] = MAX_TRIALS,
    metrics: MetricsOption = "headline",
    label: LabelOption = None,
    commit: CommitOption = None,
    results: ResultsOption = str(RESULTS_DIR),
    address: AddressOption = None,
) -> None:
    """Run a sweep (workloads x nodes x workers x placements) and analyze how throughput scales.

    With a [capacity] table the sweep searches the capacity at an SLO per N instead (as `topobench capacity`).
    """
    from orchestrator.pipeline.sweep_file import load_sweep
    from orchestrator.render.console import stdout_console

    all_metrics = check_metrics(metrics)
    labels = run_labels(label, commit)
    spec = load_sweep(file, max_trials)
    console = stdout_console()
    if dry_run:
        from orchestrator.pipeline.session import plan_only
        from orchestrator.render.run_tables import dry_run_lines, plan_table

        nodes, trials = plan_only(address, spec.points())
        console.print(plan_table(trials, nodes, spec.sampling))
        for line in dry_run_lines(spec.capacity):
            console.print(line)
        return
    if spec.capacity is not None:
        from orchestrator.pipeline.jobs import run_capacity
        from orchestrator.render.capacity_view import print_capacity

        if resume:
            raise UserError("--resume does not apply to a sweep with a [capacity] table (each step is planned "
                            "from the last); run the sweep again.")
        found = run_capacity(spec.capacity_search(), spec.to_json(), address, results, command_line(), labels)
        print_capacity(console, found)
        if found.session.status != "complete" or not found.met:
            raise typer.Exit(1)
        return
    from orchestrator.pipeline.jobs import run_sweep
    from orchestrator.render.run_tables import scaling_tables
    from orchestrator.render.session_view import no_series_text, print_session

    found = run_sweep(spec, address, results, resume, command_line(), labels=labels)
    extra: list = list(scaling_tables(found.analyses)) or [no_series_text(found.session)]
    print_session(console, found.session, "sweep", spec.sampling, extra, query_table="scaling",
                  all_metrics=all_metrics)
    if found.session.status != "complete" or found.session.targets_missed:
        raise typer.Exit(1)
