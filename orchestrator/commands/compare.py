"""``topobench compare BASE NEW``: metric by metric, did anything change significantly?"""

from __future__ import annotations

from typing import Annotated

import typer

from orchestrator.commands.options import ResultsOption
from orchestrator.settings import COMPARE_HISTORY, RESULTS_DIR
from workloads.errors import UserError

FORMATS = ("table", "csv", "json", "markdown")
SELECTOR = ("a run id, 'latest', 'latest~N', a range 'latest~5..latest~3', 'commit:SHA-PREFIX' or 'label:TEXT'; "
            "several joined by commas")


def compare(
    base: Annotated[str, typer.Argument(help=f"BASE runs: {SELECTOR}.")],
    new: Annotated[str, typer.Argument(help=f"NEW runs: {SELECTOR}.")],
    results: ResultsOption = str(RESULTS_DIR),
    format: Annotated[str, typer.Option("--format", help="table | csv | json | markdown")] = "table",
    fail_on_regression: Annotated[str | None, typer.Option(
        "--fail-on-regression", help="Exit 1 when a metric is significantly worse by more than this (5% or 0.05).")] = None,
    alpha: Annotated[float, typer.Option(help="Family-wise significance level (Holm across all metrics).")] = 0.01,
    prior: Annotated[str, typer.Option(
        help="Where the spread between runs comes from when a side has too few runs to show it: 'auto' (earlier "
             "complete runs of BASE's commit and label on its machine), 'none', or runs (a selector).")] = "auto",
    history: Annotated[int, typer.Option(help="With --prior auto: earlier runs taken at most.")] = COMPARE_HISTORY,
) -> None:
    """Compare runs metric by metric: figures, NEW/BASE ratio with CI, p-value, verdict and its basis."""
    from orchestrator.analysis.compare import compare_runs, parse_threshold
    from orchestrator.analysis.prior_runs import choose_history
    from orchestrator.render.comparison import print_comparison
    from orchestrator.store.queries import run_index, run_rounds, select_runs
    from orchestrator.store.reader import Dataset

    if format not in FORMATS:
        raise UserError(f"--format {format!r} is not one of {', '.join(FORMATS)}; pick one of those.")
    if not 0.0 < alpha < 1.0:
        raise UserError(f"--alpha {alpha} is not in (0, 1); give a level such as 0.01.")
    if history < 2:
        raise UserError(f"--history {history} is too few: a prior needs 2 runs or more; give e.g. --history 10.")
    threshold = None if fail_on_regression is None else parse_threshold(fail_on_regression)
    dataset = Dataset(results)
    base_ids, new_ids = select_runs(dataset, base), select_runs(dataset, new)
    found = choose_history(run_index(dataset), prior, base_ids, new_ids, history, lambda t: select_runs(dataset, t))
    result = compare_runs([run_rounds(dataset, r) for r in base_ids], [run_rounds(dataset, r) for r in new_ids],
                          threshold=threshold, alpha=alpha, prior=[run_rounds(dataset, r) for r in found.run_ids],
                          prior_note=found.note)
    print_comparison(result, format, dataset.skipped)
    if result.regressions:
        raise typer.Exit(1)
