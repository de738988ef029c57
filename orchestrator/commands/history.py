"""``topobench history [SERIES]``, ``history ack ID``, ``history detect``: every series over commits."""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperGroup

from orchestrator.commands.errors import user_errors
from orchestrator.commands.options import ResultsOption
from orchestrator.settings import RESULTS_DIR
from workloads.errors import UserError


class _ShowByDefault(TyperGroup):
    """``history`` and ``history SERIES`` mean ``history show [SERIES]``; ``ack`` and ``detect`` are subcommands."""

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ("--help", "-h")):
            args = ["show", *args]
        return super().parse_args(ctx, args)


history_app = typer.Typer(cls=_ShowByDefault, rich_markup_mode=None, add_completion=False,
                          help="Every series over commits: change points found, confirmed and gated "
                               "(`history`, `history SERIES`), acknowledged (`history ack`), or found in "
                               "any series of numbers (`history detect`).")

RepoOption = Annotated[Path | None, typer.Option(
    "--repo", help="Git checkout the runs' commits come from (first-parent order, commits between "
                   "changes); default: the current folder.")]
_DAYS = re.compile(r"^(\d+)d$")


def parse_since(text: str | None) -> datetime | None:
    """Return ``--since`` as a UTC instant: an ISO date or date-time, or N days ago ("30d").

    Raises:
        UserError: anything else.
    """
    if text is None:
        return None
    days = _DAYS.match(text.strip())
    if days:
        return datetime.now(timezone.utc) - timedelta(days=int(days.group(1)))
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UserError(f"--since {text!r} is not a date; give an ISO date such as 2026-11-01 (UTC), a date-time, "
                        "or a number of days such as 30d.") from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


@history_app.command("show")
@user_errors
def show(
    series: Annotated[str | None, typer.Argument(help="A series id (or its start) to print point by point.")] = None,
    results: ResultsOption = str(RESULTS_DIR),
    format: Annotated[str, typer.Option("--format", help="table | json | csv")] = "table",
    workload: Annotated[str | None, typer.Option("--workload", help="Only this workload's series.")] = None,
    metric: Annotated[str | None, typer.Option("--metric", help="Only this metric's series.")] = None,
    host: Annotated[str | None, typer.Option(
        "--host", help="Only hosts whose description contains this (CPU model, ...) or whose fingerprint "
                       "starts so.")] = None,
    since: Annotated[str | None, typer.Option(
        "--since", help="Only points from this date on: 2026-11-01, a date-time, or 30d.")] = None,
    repo: RepoOption = None,
    fail_on_regression: Annotated[str | None, typer.Option(
        "--fail-on-regression", help="Exit 1 when a confirmed, unacknowledged regression worse than this "
                                     "(5% or 0.05) is still open in a series' latest segment.")] = None,
    html: Annotated[Path | None, typer.Option(
        "--html", help="Also write the dashboard (index.html, offline) into this folder.")] = None,
) -> None:
    """List every series with its latest value and last change, or print one series point by point."""
    from orchestrator.analysis.compare import parse_threshold
    from orchestrator.pipeline.history import HistoryFilter, run_history
    from orchestrator.render.history_view import FORMATS, print_history, print_series

    if format not in FORMATS:
        raise UserError(f"--format {format!r} is not one of {', '.join(FORMATS)}; pick one of those.")
    threshold = None if fail_on_regression is None else parse_threshold(fail_on_regression)
    if html is not None and html.exists() and not html.is_dir():
        raise UserError(f"--html {str(html)!r} is a file; give a folder for the dashboard (it is created).")
    if repo is not None and not repo.is_dir():
        raise UserError(f"--repo {str(repo)!r} is not a folder; give the git checkout the runs' commits come from.")
    filters = HistoryFilter(workload, metric, host, parse_since(since), series)
    outcome = run_history(results, filters, repo=repo)
    regressions = outcome.history.regressions(threshold or 0.0)
    notes = [f"warning: skipped {s}" for s in outcome.skipped]
    notes.append(f"{outcome.runs} run(s), {outcome.indexed} read from their files this time; points in "
                 f"{outcome.order}")
    if series is not None:
        print_series(outcome.history.series[0], format, notes)
    else:
        print_history(outcome.history, regressions, format, notes, threshold)
    if html is not None:
        from orchestrator.render.dashboard import write_dashboard

        page = write_dashboard(outcome.history, regressions, html)
        typer.echo(f"Wrote {page}", err=True)
    if threshold is not None and regressions:
        raise typer.Exit(1)


@history_app.command("ack")
@user_errors
def ack(
    change: Annotated[str, typer.Argument(help="The change's id, as `topobench history` prints it.")],
    reason: Annotated[str, typer.Option("--reason", help="Why the change is expected (stored and shown).")],
    results: ResultsOption = str(RESULTS_DIR),
    repo: RepoOption = None,
) -> None:
    """Record that a change is expected: shown with it, and no longer failing --fail-on-regression."""
    from orchestrator.pipeline.history import acknowledge

    series, found = acknowledge(results, change, reason, repo=repo)
    typer.echo(f"Acknowledged {found.id} ({found.kind} at {found.first_bad.name}) in {series.series.key.describe()}")


@history_app.command("detect")
@user_errors
def detect(
    csv: Annotated[Path | None, typer.Option("--csv", help="A CSV file with a header line.")] = None,
    column: Annotated[str | None, typer.Option(
        "--column", help="The CSV column (or JSON key) holding the values.")] = None,
    json_file: Annotated[Path | None, typer.Option(
        "--json", help="A JSON file: a list of numbers, a list of objects (--column names the key), or an "
                       "object whose --column key holds the list.")] = None,
    alpha: Annotated[float | None, typer.Option(
        "--alpha", help="Level of each change point's scan-corrected p-value (default: the detector's, 0.005).")] = None,
    min_size: Annotated[int | None, typer.Option(
        "--min-size", help="Fewest points on each side of a change (default: the detector's, 5).")] = None,
) -> None:
    """Print the change points of a plain series of numbers as JSON (0-based index of the first point after each)."""
    from orchestrator.render.history_view import change_points_json

    values = read_values(csv, json_file, column)
    try:
        from orchestrator.analysis.changepoints import detect_change_points

        settings = {k: v for k, v in (("alpha", alpha), ("min_size", min_size)) if v is not None}
        found = detect_change_points(values, **settings)
    except ValueError as exc:
        raise UserError(f"--alpha/--min-size: {exc}; give --alpha in (0, 1) and --min-size of 2 or more.") from None
    typer.echo(change_points_json(found))


def _number(text: object, where: str) -> float:
    try:
        value = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        value = float("nan")
    if not math.isfinite(value):
        raise UserError(f"{where} is {text!r}, not a finite number; fix or drop that point.")
    return value


def read_values(csv_path: Path | None, json_path: Path | None, column: str | None) -> list[float]:
    """Return the series a user points at: a CSV column, or a JSON list (of numbers or objects).

    Raises:
        UserError: neither or both files, a missing file or column, or a value that is not a number.
    """
    import csv
    import json

    if (csv_path is None) == (json_path is None):
        raise UserError("Give the series with exactly one of --csv FILE --column NAME or --json FILE.")
    path = csv_path or json_path
    try:
        text = path.read_text()
    except OSError as exc:
        raise UserError(f"{'--csv' if csv_path else '--json'} {str(path)!r} cannot be read ({exc.strerror or exc}); "
                        "give an existing file.") from None
    if csv_path is not None:
        if column is None:
            raise UserError("--csv needs --column NAME: the column holding the values.")
        reader = csv.DictReader(text.splitlines())
        if column not in (reader.fieldnames or []):
            names = ", ".join(reader.fieldnames or []) or "none"
            raise UserError(f"--column {column!r} is not a column of {str(path)!r} (columns: {names}); give one of those.")
        rows = list(reader)
        return [_number(r[column], f"{path} line {i + 2} column {column!r}") for i, r in enumerate(rows)]
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise UserError(f"--json {str(path)!r} is not JSON ({exc}); give a list of numbers.") from None
    if isinstance(data, dict):
        if column is None or column not in data:
            raise UserError(f"--json {str(path)!r} holds an object; give --column KEY naming its list of values "
                            f"(keys: {', '.join(map(str, data)) or 'none'}).")
        data = data[column]
    if not isinstance(data, list):
        raise UserError(f"--json {str(path)!r} holds no list; give a list of numbers or of objects.")
    if column is not None and all(isinstance(d, dict) for d in data):
        return [_number(d.get(column), f"{path} item {i} key {column!r}") for i, d in enumerate(data)]
    return [_number(d, f"{path} item {i}") for i, d in enumerate(data)]
