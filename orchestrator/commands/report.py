"""``topobench report RUN``: report.md and a self-contained report.html with figures."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from orchestrator.commands.options import ResultsOption
from orchestrator.settings import RESULTS_DIR


def report(
    run: Annotated[str, typer.Argument(help="Run to report: a run id, 'latest' or 'latest~N'.")],
    vs: Annotated[str | None, typer.Option(
        "--vs", help="Add a comparison of RUN (NEW) against these runs (BASE): a run id, latest~N, a range "
                     "OLDER..NEWER, commit:SHA-PREFIX or label:TEXT, several joined by commas.")] = None,
    prior: Annotated[str, typer.Option(
        help="With --vs: where the spread between runs comes from, as `compare --prior` (auto | none | runs).")] = "auto",
    out: Annotated[Path | None, typer.Option("--out", help="Output folder (default: RESULTS/reports/RUN_ID; reports/RUN_ID here when RESULTS is a URI).")] = None,
    results: ResultsOption = str(RESULTS_DIR),
) -> None:
    """Write report.md and a self-contained report.html with plots of a run (and a comparison)."""
    from orchestrator.render.report import build_report

    files = build_report(results, run, out, vs, prior)
    for skipped in files.skipped:
        typer.echo(f"topobench: warning: skipped {skipped}", err=True)
    typer.echo(f"Wrote {files.markdown}, {files.html} and {len(files.images)} plot(s).")
