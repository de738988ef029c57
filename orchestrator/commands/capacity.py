"""``topobench capacity``: the highest open-loop rate that meets a latency SLO, per worker or node count."""

from __future__ import annotations

from typing import Annotated

import typer

from orchestrator.commands.options import (
    AddressOption,
    CommitOption,
    LabelOption,
    ParamOption,
    PlacementOption,
    ResultsOption,
    command_line,
    run_labels,
)
from orchestrator.records import DEFAULT_SHAPE
from orchestrator.settings import CAPACITY, DEFAULTS, RESULTS_DIR
from workloads.errors import UserError


def parse_counts(text: str, option: str) -> tuple[int, ...]:
    """Parse "1,2,4" into distinct positive counts.

    Raises:
        UserError: not a comma-separated list of distinct integers >= 1.
    """
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if not values or min(values) < 1 or len(set(values)) != len(values):
        raise UserError(f"{option} {text!r} is not a list of distinct counts >= 1; write e.g. {option} 1,2,4.")
    return values


def capacity(
    workload: Annotated[str, typer.Argument(help="A workload with an open-loop rate parameter (net.http, db.sqlite).")],
    slo: Annotated[str, typer.Option(help='Latency objective(s), e.g. "p99<=5ms" or "p50<1ms,p99.9<=20ms".')],
    workers: Annotated[str, typer.Option(help="Worker counts per node to search, e.g. 1,2,4.")] = str(
        DEFAULT_SHAPE.workers),
    nodes: Annotated[str, typer.Option(help="Node counts to search, e.g. 1,2,3 (then --workers is one count).")] = str(
        DEFAULT_SHAPE.nodes),
    load: Annotated[str | None, typer.Option(help="A load to place, e.g. 20000/s: how many N it needs.")] = None,
    resolution: Annotated[str, typer.Option(help="Stop bisecting when the bracket is this narrow (5% or 0.05).")] = (
        CAPACITY.resolution),
    start_rate: Annotated[float, typer.Option(help="First offered rate, requests/s in total (0: a quarter of "
                                                   "the closed-loop throughput).")] = CAPACITY.start_rate_per_s,
    param: ParamOption = None,
    placement: PlacementOption = str(DEFAULT_SHAPE.placement),
    repetitions: Annotated[int, typer.Option(help="Rounds per step (at least 6: an upper bound needs them; with "
                                                  "10 one disturbed round does not fail a step).")] = (
        CAPACITY.repetitions),
    min_time: Annotated[float, typer.Option(help="Seconds one sample lasts at least (lengthened as the "
                                                 "percentile needs).")] = DEFAULTS.min_time_s,
    label: LabelOption = None,
    commit: CommitOption = None,
    results: ResultsOption = str(RESULTS_DIR),
    address: AddressOption = None,
) -> None:
    """Search the highest open-loop rate meeting --slo, per worker or node count; say what a --load needs."""
    from orchestrator.analysis.capacity import parse_goal
    from orchestrator.pipeline.capacity import build_search
    from orchestrator.pipeline.jobs import run_capacity
    from orchestrator.pipeline.request import build_request, build_shape, parse_param_options
    from orchestrator.render.capacity_view import print_capacity
    from orchestrator.render.console import stdout_console
    from orchestrator.settings import Sampling

    labels = run_labels(label, commit)
    goal = parse_goal(slo, resolution, start_rate, load)
    counts_w, counts_n = parse_counts(workers, "--workers"), parse_counts(nodes, "--nodes")
    sampling = Sampling(repetitions=repetitions, warmup=CAPACITY.warmup, min_time_s=min_time)
    shape = build_shape(counts_w[0], counts_n[0], placement, DEFAULT_SHAPE.threads_per_worker,
                        DEFAULT_SHAPE.reserve_cpus, DEFAULT_SHAPE.mode.value)
    request = build_request((workload,), param or (), shape, sampling, (), results)
    given = parse_param_options(param or (), (workload,)).get(workload, {})
    search = build_search(workload, request.params[workload], tuple(given), counts_w, counts_n, shape, goal, sampling)
    found = run_capacity(search, request.to_json(), address, results, command_line(), labels)
    print_capacity(stdout_console(), found)
    if found.session.status != "complete" or not found.met:
        raise typer.Exit(1)
