"""``topobench capacity``: the highest open-loop rate that meets a latency SLO, per worker or node count."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from orchestrator.commands.options import RESULTS, AddressOption, ResultsOption
from orchestrator.commands.run import PLACEMENT_HELP
from orchestrator.settings import DEFAULTS, Sampling
from workloads.errors import UserError

if TYPE_CHECKING:
    from orchestrator.pipeline.capacity import CapacitySearch
    from orchestrator.pipeline.session import Session
    from orchestrator.records import Trial


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
    workers: Annotated[str, typer.Option(help="Worker counts per node to search, e.g. 1,2,4.")] = "1",
    nodes: Annotated[str, typer.Option(help="Node counts to search, e.g. 1,2,3 (then --workers is one count).")] = "1",
    load: Annotated[str | None, typer.Option(help="A load to place, e.g. 20000/s: how many N it needs.")] = None,
    resolution: Annotated[str, typer.Option(help="Stop bisecting when the bracket is this narrow (5% or 0.05).")] = "5%",
    start_rate: Annotated[float, typer.Option(help="First offered rate, requests/s in total (0: a quarter of "
                                                   "the closed-loop throughput).")] = 0.0,
    param: Annotated[list[str] | None, typer.Option(
        "--param", help="Workload parameter WORKLOAD.PARAM=VALUE; repeatable (rate is searched).")] = None,
    placement: Annotated[str, typer.Option(help=PLACEMENT_HELP)] = "compact",
    repetitions: Annotated[int, typer.Option(help="Rounds per step (at least 6: an upper bound needs them; with "
                                                  "10 one disturbed round does not fail a step).")] = 10,
    min_time: Annotated[float, typer.Option(help="Seconds one sample lasts at least (lengthened as the "
                                                 "percentile needs).")] = DEFAULTS.min_time_s,
    results: ResultsOption = RESULTS,
    address: AddressOption = None,
) -> None:
    """Search the highest open-loop rate meeting --slo, per worker or node count; say what a --load needs."""
    from orchestrator.analysis.capacity import check_rounds, parse_goal
    from orchestrator.pipeline.capacity import CapacitySearch, check_searchable
    from orchestrator.pipeline.request import build_request, build_shape

    goal = parse_goal(slo, resolution, start_rate, load)
    counts_w, counts_n = parse_counts(workers, "--workers"), parse_counts(nodes, "--nodes")
    if len(counts_w) > 1 and len(counts_n) > 1:
        raise UserError("--workers and --nodes both list several counts; search over one of them at a time.")
    check_searchable(workload)
    check_rounds(repetitions)
    if any(p.startswith(f"{workload}.rate=") for p in param or ()):
        raise UserError(f"--param {workload}.rate is what the capacity search sets; remove it "
                        "(--start-rate sets the first rate).")
    sampling = Sampling(repetitions=repetitions, warmup=1, min_time_s=min_time)
    dimension = "nodes" if len(counts_n) > 1 else "workers"
    shapes = tuple(build_shape(w, n, placement, 1, 0, "weak") for n in counts_n for w in counts_w)
    request = build_request((workload,), param or (), shapes[0], sampling, (), results)
    search = CapacitySearch(workload, dict(request.params[workload]), shapes, dimension, goal, sampling)
    execute_capacity(search, request.to_json(), address, results, " ".join(["topobench", *sys.argv[1:]]))


def execute_capacity(search: CapacitySearch, spec_json: str, address: str | None, results=RESULTS,
                     command: str = "topobench capacity") -> Session:
    """Run ``search`` through the session pipeline, store its capacity table and print the answer.

    Raises:
        typer.Exit: 1 when the run did not complete or no point met the SLO.
    """
    from orchestrator.pipeline.capacity import capacity_rows, total_rate
    from orchestrator.pipeline.session import SessionSpec, run_session
    from orchestrator.render.console import stdout_console
    from orchestrator.render.run_tables import capacity_lines, capacity_table
    from orchestrator.store.writer import RunStore
    from workloads.registry import get_workload

    def describe(trial: Trial) -> str:
        rate = total_rate(trial)
        return f"{trial.workload} · {len(trial.slots)} workers · " + (f"{rate:.4g}/s" if rate else "closed loop")

    spec = SessionSpec(results, address, command, spec_json, (), search.sampling, describe=describe,
                       search=search.trials)
    session = run_session(spec, search.observe)
    params = json.dumps({k: v for k, v in search.params.items() if k != "rate"}, sort_keys=True, default=str)
    rows = capacity_rows(session.outcome.run_id, search, params)
    RunStore(session.results, session.outcome.run_id).write_capacity(rows)
    unit = get_workload(search.workload).throughput.unit
    console = stdout_console()
    console.print(capacity_table(rows, unit))
    for line in capacity_lines(rows, search.answer(), search.goal.load_per_s, search.dimension, unit):
        console.print(line, highlight=False)
    console.print(f"Results: {session.results} (run_id={session.outcome.run_id}); every step is a trial: "
                  f"`topobench query \"SELECT * FROM capacity WHERE run_id='{session.outcome.run_id}'\"`")
    if session.outcome.status != "complete" or not any(r.capacity_per_s for r in search.results):
        raise typer.Exit(1)
    return session
