"""``topobench compare BASE NEW``: metric by metric, did anything change significantly?"""

from __future__ import annotations

from typing import Annotated

import typer

from orchestrator.commands.options import RESULTS, ResultsOption
from workloads.errors import UserError

FORMATS = ("table", "csv", "json", "markdown")


def compare(
    base: Annotated[str, typer.Argument(help="BASE run: a run id, 'latest' or 'latest~N'.")],
    new: Annotated[str, typer.Argument(help="NEW run: a run id, 'latest' or 'latest~N'.")],
    results: ResultsOption = RESULTS,
    format: Annotated[str, typer.Option("--format", help="table | csv | json | markdown")] = "table",
    fail_on_regression: Annotated[str | None, typer.Option(
        "--fail-on-regression", help="Exit 1 when a metric is significantly worse by more than this (5% or 0.05).")] = None,
    alpha: Annotated[float, typer.Option(help="Significance level of the Mann-Whitney U test.")] = 0.01,
) -> None:
    """Compare two runs metric by metric: medians, NEW/BASE ratio with CI, p-value, verdict."""
    from orchestrator.analysis.compare import compare_runs, parse_threshold
    from orchestrator.render import comparison
    from orchestrator.store.reader import Dataset

    if format not in FORMATS:
        raise UserError(f"--format {format!r} is not one of {', '.join(FORMATS)}; pick one of those.")
    if not 0.0 < alpha < 1.0:
        raise UserError(f"--alpha {alpha} is not in (0, 1); give a level such as 0.01.")
    threshold = None if fail_on_regression is None else parse_threshold(fail_on_regression)
    dataset = Dataset(results)
    result = compare_runs(dataset, base, new, threshold=threshold, alpha=alpha)
    for line in (*(f"skipped {s}" for s in dataset.skipped), *result.notes):
        typer.echo(f"topobench: warning: {line}", err=True)
    if format == "table":
        from orchestrator.render.console import stdout_console

        console = stdout_console()
        console.print(comparison.comparison_table(result))
        for label, items in (("only in BASE", result.only_base), ("only in NEW", result.only_new)):
            for item in items:
                console.print(f"{label}: {item}", highlight=False)
    else:
        text = {"csv": comparison.comparison_csv, "json": comparison.comparison_json,
                "markdown": comparison.comparison_markdown}[format](result)
        typer.echo(text, nl=not text.endswith("\n"))
    if result.regressions:
        names = ", ".join(f"{r.workload}:{r.metric} ({r.ratio:.3f}x)" for r in result.regressions)
        typer.echo(f"topobench: {len(result.regressions)} regression(s) beyond {threshold:.1%}: {names}", err=True)
        raise typer.Exit(1)
