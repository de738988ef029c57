"""The ``topobench`` command line: turns options into requests and prints results.

Every command is a thin adapter over a plain function; a ``UserError`` raised anywhere is
printed once, here, as one sentence on stderr with exit code 2.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from orchestrator.cli_errors import user_errors
from orchestrator.console import stdout_console
from workloads.errors import UserError

app = typer.Typer(
    help="Topology-aware, distributed benchmarks on Ray: pinned workers, honest units, Parquet results.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = stdout_console()

AddressOption = Annotated[str | None, typer.Option(
    "--address", help="Ray cluster to use: host:port or 'auto' (default: $RAY_ADDRESS, else an embedded local Ray).")]
ResultsOption = Annotated[Path, typer.Option("--results", help="Results dataset folder.")]


@app.command()
@user_errors
def run(
    workloads: Annotated[list[str] | None, typer.Argument(
        help="Workloads to run (default: cpu.sqrt_mod memory.stream cache.lru).")] = None,
    workers: Annotated[int, typer.Option(help="Workers per node.")] = 1,
    nodes: Annotated[int, typer.Option(help="Nodes of the cluster to use (other nodes first, head last).")] = 1,
    repetitions: Annotated[int, typer.Option(help="Measured samples per worker.")] = 10,
    warmup: Annotated[int, typer.Option(help="Warm-up samples per worker after calibration.")] = 1,
    min_time: Annotated[float, typer.Option(help="Seconds one sample must last (calibration target).")] = 0.1,
    param: Annotated[list[str] | None, typer.Option(
        "--param", help="Workload parameter WORKLOAD.PARAM=VALUE, e.g. memory.stream.size_mib=512; repeatable.")] = None,
    placement: Annotated[str, typer.Option(
        help="compact | spread | cores | largest-l3 | none | a likwid-style CPU expression (0,2-5, N:0-3, S0:0-3, M0:0-3, C1:0-3).")] = "compact",
    threads_per_worker: Annotated[int, typer.Option(help="CPUs and BLAS/OpenMP threads per worker.")] = 1,
    reserve_cpus: Annotated[int, typer.Option(help="CPUs per node left free for Ray's own processes.")] = 0,
    mode: Annotated[str, typer.Option(help="weak: every worker does the full work; strong: the work is split.")] = "weak",
    scratch: Annotated[str | None, typer.Option(help="Folder on each node for workloads that write files.")] = None,
    until_stable: Annotated[bool, typer.Option(
        "--until-stable", help="After --repetitions, add samples until the median's 95% CI is within --rel-ci, or --max-time.")] = False,
    max_time: Annotated[float, typer.Option(help="With --until-stable: seconds of measuring per trial at most.")] = 60.0,
    rel_ci: Annotated[float, typer.Option(help="With --until-stable: CI half-width target, a fraction of the median.")] = 0.02,
    max_cv: Annotated[float, typer.Option(help="Flag a metric 'unstable' when its CV (a fraction) is above this.")] = 0.05,
    resource_interval: Annotated[float, typer.Option(help="Seconds between CPU%/RSS samples while measuring.")] = 0.2,
    target: Annotated[list[str] | None, typer.Option(
        "--target", help='Service-level target WORKLOAD:METRIC OP VALUE on the median, e.g. '
                         '"memory.stream:triad_gbs>=20"; repeatable; a miss exits 1.')] = None,
    results: ResultsOption = Path("results"),
    address: AddressOption = None,
) -> None:
    """Run workloads on pinned Ray workers and store every sample in the results dataset."""
    from orchestrator.request import build_request
    from orchestrator.run_command import execute_run

    request = build_request(tuple(workloads or ()), list(param or ()), workers=workers, nodes=nodes,
                            repetitions=repetitions, warmup=warmup, min_time_s=min_time,
                            placement=placement, threads_per_worker=threads_per_worker,
                            reserve_cpus=reserve_cpus, mode=mode, results=results, scratch=scratch,
                            until_stable=until_stable, max_time_s=max_time, rel_ci=rel_ci, max_cv=max_cv,
                            resource_interval_s=resource_interval, targets=tuple(target or ()))
    outcome = execute_run(request, address, console, command=" ".join(["topobench", *sys.argv[1:]]))
    if outcome.status != "complete" or outcome.targets_missed:
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
    sysfs: Annotated[Path | None, typer.Option(
        "--sysfs", help="Read an extracted sysfs/procfs snapshot (a folder holding sys/ and proc/) instead of /.")] = None,
    plan: Annotated[str | None, typer.Option(
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
from orchestrator import cluster_command, compare, env_command, report, sweep_command

app.command("sweep")(user_errors(sweep_command.sweep))
app.add_typer(cluster_command.cluster_app, name="cluster")
app.command("env")(user_errors(env_command.env_command))
app.command("compare")(user_errors(compare.compare_command))
app.command("report")(user_errors(report.report_command))


def main() -> None:
    """Entry point of the ``topobench`` console script."""
    app()


if __name__ == "__main__":
    main()
