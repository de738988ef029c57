"""``topobench compare BASE NEW``: metric by metric, did anything change significantly?"""

from __future__ import annotations

from typing import Annotated

import typer

from orchestrator.commands.options import ResultsOption
from orchestrator.settings import RESULTS_DIR
from workloads.errors import UserError

FORMATS = ("table", "csv", "json", "markdown")


def compare(
    base: Annotated[str, typer.Argument(help="BASE run: a run id, 'latest' or 'latest~N'.")],
    new: Annotated[str, typer.Argument(help="NEW run: a run id, 'latest' or 'latest~N'.")],
    results: ResultsOption = str(RESULTS_DIR),
    format: Annotated[str, typer.Option("--format", help="table | csv | json | markdown")] = "table",
    fail_on_regression: Annotated[str | None, typer.Option(
        "--fail-on-regression", help="Exit 1 when a metric is significantly worse by more than this (5% or 0.05).")] = None,
    alpha: Annotated[float, typer.Option(help="Significance level of the Mann-Whitney U test.")] = 0.01,
) -> None:
    """Compare two runs metric by metric: medians, NEW/BASE ratio with CI, p-value, verdict."""
    from orchestrator.analysis.compare import compare_runs, parse_threshold
    from orchestrator.render.comparison import print_comparison
    from orchestrator.store.queries import run_rounds
    from orchestrator.store.reader import Dataset

    if format not in FORMATS:
        raise UserError(f"--format {format!r} is not one of {', '.join(FORMATS)}; pick one of those.")
    if not 0.0 < alpha < 1.0:
        raise UserError(f"--alpha {alpha} is not in (0, 1); give a level such as 0.01.")
    threshold = None if fail_on_regression is None else parse_threshold(fail_on_regression)
    dataset = Dataset(results)
    result = compare_runs(run_rounds(dataset, base), run_rounds(dataset, new), threshold=threshold, alpha=alpha)
    print_comparison(result, format, dataset.skipped)
    if result.regressions:
        raise typer.Exit(1)
