"""``topobench report RUN``: report.md and a self-contained report.html with figures."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from orchestrator.commands.options import ResultsOption
from orchestrator.settings import RESULTS_DIR


def report(
    run: Annotated[str, typer.Argument(help="Run to report: a run id, 'latest' or 'latest~N'.")],
    vs: Annotated[str | None, typer.Option("--vs", help="Add a comparison of RUN (NEW) against this run (BASE).")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Output folder (default: RESULTS/reports/RUN_ID; reports/RUN_ID here when RESULTS is a URI).")] = None,
    results: ResultsOption = str(RESULTS_DIR),
) -> None:
    """Write report.md and a self-contained report.html with plots of a run (and a comparison)."""
    from orchestrator.render.report import build_report

    files = build_report(results, run, out, vs)
    for skipped in files.skipped:
        typer.echo(f"topobench: warning: skipped {skipped}", err=True)
    typer.echo(f"Wrote {files.markdown}, {files.html} and {len(files.images)} plot(s).")
