"""The options several commands share, declared once; their defaults come from ``orchestrator.settings``."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

AddressOption = Annotated[str | None, typer.Option(
    "--address", help="Ray cluster to use: host:port or 'auto' (default: $RAY_ADDRESS, else an embedded local Ray).")]
ResultsOption = Annotated[str, typer.Option(
    "--results", help="Results dataset: a folder, or a URI such as "
                      "'s3://bucket/prefix?endpoint_override=HOST:PORT&scheme=http' (credentials from AWS_* "
                      "variables and ~/.aws).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
PlacementOption = Annotated[str, typer.Option(
    "--placement", help="compact | spread | cores | largest-l3 | none | a likwid-style CPU expression "
                        "(0,2-5, N:0-3, S0:0-3, M0:0-3, C1:0-3).")]
ParamOption = Annotated[list[str] | None, typer.Option(
    "--param", help="Workload parameter WORKLOAD.PARAM=VALUE, e.g. memory.stream.size_mib=512; repeatable.")]
MinTimeOption = Annotated[float, typer.Option(
    "--min-time", help="Seconds one sample must last (calibration target).")]
ThreadsOption = Annotated[int, typer.Option(
    "--threads-per-worker", help="CPUs and BLAS/OpenMP threads per worker.")]
ReserveOption = Annotated[int, typer.Option("--reserve-cpus", help="CPUs per node left free for Ray's own processes.")]
LabelOption = Annotated[str | None, typer.Option(
    "--label", help="Name what this run measured (e.g. v2); `compare label:v2 ...` selects such runs.")]
CommitOption = Annotated[str | None, typer.Option(
    "--commit", help="Commit of the code measured (default: the git checkout of a command workload's cwd, "
                     "else of the current folder, else $GITHUB_SHA/$CI_COMMIT_SHA).")]


def run_labels(label: str | None, commit: str | None):  # -> Labels (pipeline.provenance, imported when called)
    """Return the checked ``--label`` and ``--commit`` of a run.

    Raises:
        UserError: a label or commit that cannot be stored or selected (one sentence).
    """
    from orchestrator.pipeline.provenance import Labels, check_commit, check_label

    return Labels(check_label(label), check_commit(commit))


def command_line() -> str:
    """Return the command line as typed, without credentials in any URI (stored in ``runs.command``)."""
    from orchestrator.store.location import redact

    return redact(" ".join(["topobench", *sys.argv[1:]]))

METRICS = ("headline", "all")

MetricsOption = Annotated[str, typer.Option(
    "--metrics", help="headline: one row per trial, its headline metric; all: every metric of every trial.")]


def check_metrics(value: str) -> bool:
    """Return True for ``--metrics all``, False for ``headline``.

    Raises:
        UserError: any other value.
    """
    from workloads.errors import UserError

    if value not in METRICS:
        raise UserError(f"--metrics {value!r} is not one of {', '.join(METRICS)}; pick one of those.")
    return value == "all"
