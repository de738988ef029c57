"""``topobench query``: read-only SQL over every run in the results folder (DuckDB)."""

from __future__ import annotations

from typing import Annotated

import typer

from orchestrator.commands.options import ResultsOption
from orchestrator.settings import RESULTS_DIR
from workloads.errors import UserError

FORMATS = ("table", "csv", "json")


def query(
    sql: Annotated[str, typer.Argument(help="One SELECT over the views runs, nodes, trials, samples, "
                                            "resources, scaling.")],
    results: ResultsOption = str(RESULTS_DIR),
    format: Annotated[str, typer.Option("--format", help="table | csv | json")] = "table",
) -> None:
    """Answer a read-only SQL query over every run in the results folder (DuckDB)."""
    from orchestrator.render.export import table_csv, table_json
    from orchestrator.store.reader import Dataset

    if format not in FORMATS:
        raise UserError(f"--format {format!r} is not one of {', '.join(FORMATS)}; pick one of those.")
    dataset = Dataset(results)
    table = dataset.query(sql)
    for skipped in dataset.skipped:
        typer.echo(f"topobench: warning: skipped {skipped}", err=True)
    if format == "csv":
        typer.echo(table_csv(table), nl=False)
    elif format == "json":
        typer.echo(table_json(table))
    else:
        from orchestrator.render.console import stdout_console
        from orchestrator.render.export import table_rich

        stdout_console().print(table_rich(table))
