"""The ``topobench`` command line: one thin module per command under ``orchestrator/commands``.

A ``UserError`` raised anywhere is printed once (``commands/errors.py``) as one sentence on
stderr with exit code 2. Commands import their heavy modules (Ray, scipy, DuckDB) only when
they run, so ``--help`` and ``workloads`` answer at once.
"""

from __future__ import annotations

import typer

from orchestrator.commands import (
    capacity,
    compare,
    env,
    export,
    query,
    report,
    run,
    sweep,
    topology,
    workloads,
)
from orchestrator.commands.cluster import cluster_app
from orchestrator.commands.errors import user_errors
from orchestrator.commands.history import history_app

app = typer.Typer(
    help="Topology-aware, distributed benchmarks on Ray: pinned workers, honest units, Parquet results.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: typer's rich help imports markdown and pygments (~80 ms a call)
)
for command in (run.run, workloads.workloads, query.query, topology.topology, sweep.sweep, capacity.capacity,
                env.env, compare.compare, report.report, export.export):
    app.command()(user_errors(command))
app.add_typer(cluster_app, name="cluster")
app.add_typer(history_app, name="history")


def main() -> None:
    """Entry point of the ``topobench`` console script."""
    app()


if __name__ == "__main__":
    main()
