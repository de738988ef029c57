"""``topobench run``: measure workloads on pinned Ray workers and store every sample."""

from __future__ import annotations

from typing import Annotated

import typer

from orchestrator.commands.options import (
    AddressOption,
    CommitOption,
    LabelOption,
    MetricsOption,
    MinTimeOption,
    ParamOption,
    PlacementOption,
    ReserveOption,
    ResultsOption,
    ThreadsOption,
    command_line,
)
from orchestrator.records import DEFAULT_SHAPE
from orchestrator.settings import DEFAULTS, RESULTS_DIR, Sampling


def run(
    workloads: Annotated[list[str] | None, typer.Argument(
        help="Workloads to run (default: cpu.sqrt_mod memory.stream cache.lru).")] = None,
    workers: Annotated[int, typer.Option(help="Workers per node.")] = DEFAULT_SHAPE.workers,
    nodes: Annotated[int, typer.Option(help="Nodes of the cluster to use (other nodes first, head last).")] = DEFAULT_SHAPE.nodes,
    invocations: Annotated[int, typer.Option(
        help="Fresh sets of worker processes per trial, each with its own setup, calibration and rounds; the "
             "figure is the median over them (3 or more for a CI that includes what a process start changes).")] = (
        DEFAULTS.invocations),
    repetitions: Annotated[int, typer.Option(
        help="Measured rounds per invocation (a trial has invocations x repetitions rounds).")] = DEFAULTS.repetitions,
    warmup: Annotated[int, typer.Option(help="Warm-up rounds per invocation, after calibration.")] = DEFAULTS.warmup,
    min_time: MinTimeOption = DEFAULTS.min_time_s,
    param: ParamOption = None,
    placement: PlacementOption = str(DEFAULT_SHAPE.placement),
    threads_per_worker: ThreadsOption = DEFAULT_SHAPE.threads_per_worker,
    reserve_cpus: ReserveOption = DEFAULT_SHAPE.reserve_cpus,
    mode: Annotated[str, typer.Option(help="weak: every worker does the full work; strong: the work is split.")] = DEFAULT_SHAPE.mode.value,
    scratch: Annotated[str | None, typer.Option(help="Folder on each node for workloads that write files.")] = None,
    until_stable: Annotated[bool, typer.Option(
        "--until-stable", help="After --repetitions, each invocation adds rounds until its median's 95% CI is within "
                               "--rel-ci, or its share of --max-time.")] = DEFAULTS.until_stable,
    max_time: Annotated[float, typer.Option(help="With --until-stable: seconds of measuring per trial at most "
                                                 "(split among its invocations).")] = DEFAULTS.max_time_s,
    rel_ci: Annotated[float, typer.Option(help="With --until-stable: CI half-width target, a fraction of the median.")] = (
        DEFAULTS.rel_ci),
    max_cv: Annotated[float, typer.Option(help="Flag a metric 'unstable' when its CV (a fraction) is above this.")] = (
        DEFAULTS.max_cv),
    resource_interval: Annotated[float, typer.Option(help="Seconds between RSS samples while measuring.")] = (
        DEFAULTS.resource_interval_s),
    lock: Annotated[bool, typer.Option("--lock/--no-lock", help="Lock each trial's CPUs host-wide so runs never "
                                       "share them; --no-lock runs anyway and flags shared_cpus.")] = DEFAULTS.lock_cpus,
    lock_timeout: Annotated[float, typer.Option(help="Seconds a trial waits for CPUs another run holds.")] = (
        DEFAULTS.lock_timeout_s),
    trial_timeout: Annotated[float, typer.Option(help="Fail a trial whose invocation is still running after this many "
                                                 "seconds and go on (0: no limit).")] = DEFAULTS.trial_timeout_s,
    target: Annotated[list[str] | None, typer.Option(
        "--target", help='Service-level target WORKLOAD:METRIC OP VALUE on the median, e.g. '
                         '"memory.stream:triad_gbs>=20"; repeatable; a miss exits 1.')] = None,
    metrics: MetricsOption = "headline",
    label: LabelOption = None,
    commit: CommitOption = None,
    results: ResultsOption = str(RESULTS_DIR),
    address: AddressOption = None,
) -> None:
    """Run workloads on pinned Ray workers and store every sample in the results dataset."""
    from orchestrator.commands.options import check_metrics, run_labels
    from orchestrator.pipeline.jobs import run_benchmarks
    from orchestrator.pipeline.request import build_request, build_shape
    from orchestrator.render.console import stdout_console
    from orchestrator.render.session_view import print_session

    all_metrics = check_metrics(metrics)
    labels = run_labels(label, commit)
    sampling = Sampling(invocations=invocations, repetitions=repetitions, warmup=warmup, min_time_s=min_time,
                        until_stable=until_stable,
                        max_time_s=max_time, rel_ci=rel_ci, max_cv=max_cv, resource_interval_s=resource_interval,
                        scratch=scratch, lock_cpus=lock, lock_timeout_s=lock_timeout, trial_timeout_s=trial_timeout)
    shape = build_shape(workers, nodes, placement, threads_per_worker, reserve_cpus, mode)
    request = build_request(workloads or (), param or (), shape, sampling, target or (), results)
    session = run_benchmarks(request, address, command_line(), labels)
    print_session(stdout_console(), session, "run", request.sampling, all_metrics=all_metrics)
    if session.status != "complete" or session.targets_missed:
        raise typer.Exit(1)
