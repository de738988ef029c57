"""The ``topobench`` command line: turns options into requests and prints results.

Every command is a thin adapter over a plain function; a ``UserError`` raised anywhere is
printed once, here, as one sentence on stderr with exit code 2.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from workloads.errors import UserError

app = typer.Typer(
    help="Topology-aware, distributed benchmarks on Ray: pinned workers, honest units, Parquet results.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()

AddressOption = Annotated[Optional[str], typer.Option(
    "--address", help="Ray cluster to use: host:port or 'auto' (default: $RAY_ADDRESS, else an embedded local Ray).")]
ResultsOption = Annotated[Path, typer.Option("--results", help="Results dataset folder.")]


def user_errors(func):
    """Print a ``UserError`` as one line on stderr and exit 2, as every command does."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except UserError as exc:
            typer.echo(f"topobench: error: {exc}", err=True)
            raise typer.Exit(2) from None

    return wrapper


@app.command()
@user_errors
def run(
    workloads: Annotated[Optional[list[str]], typer.Argument(
        help="Workloads to run (default: cpu.sqrt_mod memory.stream cache.lru).")] = None,
    workers: Annotated[int, typer.Option(help="Workers per node.")] = 1,
    nodes: Annotated[int, typer.Option(help="Nodes of the cluster to use (other nodes first, head last).")] = 1,
    repetitions: Annotated[int, typer.Option(help="Measured samples per worker.")] = 10,
    warmup: Annotated[int, typer.Option(help="Warm-up samples per worker after calibration.")] = 1,
    min_time: Annotated[float, typer.Option(help="Seconds one sample must last (calibration target).")] = 0.1,
    param: Annotated[Optional[list[str]], typer.Option(
        "--param", help="Workload parameter WORKLOAD.PARAM=VALUE, e.g. memory.stream.size_mib=512; repeatable.")] = None,
    placement: Annotated[str, typer.Option(
        help="compact | spread | cores | largest-l3 | none | a likwid-style CPU expression (0,2-5, N:0-3, S0:0-3, M0:0-3, C1:0-3).")] = "compact",
    threads_per_worker: Annotated[int, typer.Option(help="CPUs and BLAS/OpenMP threads per worker.")] = 1,
    reserve_cpus: Annotated[int, typer.Option(help="CPUs per node left free for Ray's own processes.")] = 0,
    mode: Annotated[str, typer.Option(help="weak: every worker does the full work; strong: the work is split.")] = "weak",
    scratch: Annotated[Optional[str], typer.Option(help="Folder on each node for workloads that write files.")] = None,
    results: ResultsOption = Path("results"),
    address: AddressOption = None,
) -> None:
    """Run workloads on pinned Ray workers and store every sample in the results dataset."""
    from orchestrator.request import build_request
    from orchestrator.run_command import execute_run

    request = build_request(tuple(workloads or ()), list(param or ()), workers=workers, nodes=nodes,
                            repetitions=repetitions, warmup=warmup, min_time_s=min_time,
                            placement=placement, threads_per_worker=threads_per_worker,
                            reserve_cpus=reserve_cpus, mode=mode, results=results, scratch=scratch)
    outcome = execute_run(request, address, console, command=" ".join(["topobench", *sys.argv[1:]]))
    if outcome.status != "complete":
        raise typer.Exit(1)


@app.command("workloads")
@user_errors
def list_workloads(
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List every registered workload with its parameters, units and metrics."""
    from orchestrator.workload_list import workload_catalog, workload_table

    if json_output:
        import json

        typer.echo(json.dumps(workload_catalog(), indent=1))
    else:
        console.print(workload_table())


@app.command()
@user_errors
def query(
    sql: Annotated[str, typer.Argument(help="One SELECT over the views runs, nodes, trials, samples.")],
    results: ResultsOption = Path("results"),
    format: Annotated[str, typer.Option("--format", help="table | csv | json")] = "table",
) -> None:
    """Answer a read-only SQL query over every run in the results folder (DuckDB)."""
    from orchestrator.query import format_csv, format_json, run_query

    if format not in ("table", "csv", "json"):
        raise UserError(f"--format {format!r} is not one of table, csv, json; pick one of those.")
    table = run_query(results, sql)
    if format == "csv":
        typer.echo(format_csv(table), nl=False)
    elif format == "json":
        typer.echo(format_json(table))
    else:
        from rich.table import Table

        out = Table(*table.column_names)
        for row in table.to_pylist():
            out.add_row(*("" if v is None else str(v) for v in row.values()))
        console.print(out)


@app.command()
@user_errors
def topology(
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON instead of a tree.")] = False,
    sysfs: Annotated[Optional[Path], typer.Option(
        "--sysfs", help="Read an extracted sysfs/procfs snapshot (a folder holding sys/ and proc/) instead of /.")] = None,
    plan: Annotated[Optional[str], typer.Option(
        help="Show the CPU sets this placement would give (compact, spread, cores, largest-l3, none, or an expression).")] = None,
    workers: Annotated[int, typer.Option(help="Workers per node, with --plan.")] = 1,
    threads_per_worker: Annotated[int, typer.Option(help="CPUs per worker, with --plan.")] = 1,
    reserve_cpus: Annotated[int, typer.Option(help="CPUs per node kept free, with --plan.")] = 0,
    address: AddressOption = None,
) -> None:
    """Show CPU topology: packages, NUMA nodes, L3 domains, cores and SMT siblings, usable CPUs."""
    from orchestrator.topology_command import show_topology

    show_topology(console, json_output=json_output, sysfs=sysfs, plan=plan, workers=workers,
                  threads_per_worker=threads_per_worker, reserve_cpus=reserve_cpus, address=address)


# --- commands registered by feature modules: one line each, below this marker ---
from orchestrator import cluster_command, sweep_command  # noqa: E402
app.command("sweep")(user_errors(sweep_command.sweep))
app.add_typer(cluster_command.cluster_app, name="cluster")
from orchestrator.env_command import env_command
app.command("env")(user_errors(env_command))
from orchestrator.compare import compare_command
app.command("compare")(user_errors(compare_command))
from orchestrator.report import report_command
app.command("report")(user_errors(report_command))


def main() -> None:
    """Entry point of the ``topobench`` console script."""
    app()


if __name__ == "__main__":
    main()
