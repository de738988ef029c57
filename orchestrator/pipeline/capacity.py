"""The capacity search of ``topobench capacity``: trials planned one at a time from the results so far.

For each point (a worker or node count) a closed-loop trial first measures roughly what the
system carries; the open-loop search starts at a quarter of that (or at the given start rate)
and ramps and bisects (``analysis.capacity.RateSearch``), probing above an answer far below
the closed-loop figure before trusting it. Every step is a trial stored like any other. A step too
short to bound its SLO percentile is run again longer, never judged on too few requests.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from cluster.nodes import NodeInfo
from orchestrator.analysis.capacity import (
    MIN_ROUNDS,
    CapacityGoal,
    RateSearch,
    StepVerdict,
    judge_step,
    search_note,
)
from orchestrator.pipeline.planner import plan_point
from orchestrator.records import Point, Shape, Trial
from orchestrator.settings import Sampling
from workloads.errors import UserError
from workloads.registry import get_workload

if TYPE_CHECKING:  # the record (pyarrow, scipy) is only read here, never built
    from orchestrator.records import TrialRecord

MAX_LENGTHENINGS = 3
"""Times a step is run again longer before it is given up as unjudgeable."""


def searchable(name: str) -> str | None:
    """Return why workload ``name`` cannot be capacity-searched, or None when it can."""
    cls = get_workload(name)
    if "rate" not in {p.name for p in cls.params}:
        return "it has no open-loop rate parameter"
    if "latency" not in {m.name for m in cls.latencies}:
        return "it records no request latencies"
    return None


def check_searchable(name: str) -> None:
    """Refuse a workload the search cannot drive, naming those that it can.

    Raises:
        UserError: the workload lacks a ``rate`` parameter or latency histograms.
    """
    from workloads.registry import load_workloads

    why = searchable(name)
    if why:
        can = [w for w in load_workloads() if searchable(w) is None]
        raise UserError(f"{name} cannot be capacity-searched ({why}); choose one of: {', '.join(can)}.")


@dataclass
class PointResult:
    """The search of one point: its N, the closed-loop throughput, and every judged step."""

    shape: Shape
    n: int
    closed_loop_per_s: float | None = None
    search: RateSearch | None = None
    trial_ids: list[str] = field(default_factory=list)

    @property
    def capacity_per_s(self) -> float | None:
        """Return the highest offered rate that met the SLO (total, per second); None when none did."""
        return self.search.passed_per_s if self.search else None

    @property
    def limit(self) -> str:
        """Return what stopped the rate from going higher: the reason of the bracket's failing top."""
        top = self.search.failed_per_s if self.search else None
        return next((s.reason for s in self.search.steps if s.judged and not s.passed
                     and s.offered_per_s == top), "") if top is not None else ""


@dataclass
class CapacitySearch:
    """Plans the steps of every point and reads each finished step back (``observe``).

    Attributes:
        workload: a workload with a ``rate`` parameter and latency histograms.
        params: its validated parameters (``rate`` is set per step).
        shapes: one worker shape per point, in search order.
        dimension: "workers" or "nodes": what N counts.
        goal: the SLOs, resolution, first rate and the load to place.
        sampling: how steps are measured (rounds raised to at least 6).
    """

    workload: str
    params: Mapping[str, Any]
    shapes: Sequence[Shape]
    dimension: str
    goal: CapacityGoal
    sampling: Sampling
    results: list[PointResult] = field(default_factory=list)
    _last: TrialRecord | None = None

    def observe(self, index: int, trial: Trial, record: TrialRecord | None) -> None:
        """Take a finished trial's record (the session calls this after each one)."""
        if record is not None:
            self._last = record

    def _step_sampling(self, total_per_s: float) -> Sampling:
        """Return a step's sampling: at least 6 rounds, each long enough for the strictest percentile."""
        from workloads.histogram import min_count

        rounds = max(MIN_ROUNDS, self.sampling.repetitions)
        need = max(min_count({"p50": 50, "p90": 90, "p99": 99, "p999": 99.9}[s.percentile]) for s in self.goal.slos)
        seconds = 2 * need / (total_per_s * rounds)  # twice the requests the bound needs over the rounds
        return replace(self.sampling, repetitions=rounds, min_time_s=max(self.sampling.min_time_s, seconds),
                       until_stable=False)

    def _trial(self, nodes: Sequence[NodeInfo], shape: Shape, total_per_s: float, label: str,
               sampling: Sampling) -> Trial:
        workers = shape.workers * shape.nodes
        point = Point(self.workload, {**self.params, "rate": total_per_s / workers}, shape, label, sampling)
        return plan_point(point, nodes)

    def trials(self, nodes: Sequence[NodeInfo]) -> Iterator[Trial]:
        """Yield every step of every point, each planned after the previous one's record came back.

        The first trial is planned before this returns, so a plan the cluster cannot hold is
        refused before any work.
        """
        first = [plan_point(Point(self.workload, {**self.params, "rate": 0.0}, shape, "capacity closed loop"),
                            nodes) for shape in self.shapes]  # every point's plan, checked up front
        return self._steps(nodes, first)

    def _steps(self, nodes: Sequence[NodeInfo], closed_loop: Sequence[Trial]) -> Iterator[Trial]:
        for shape, closed in zip(self.shapes, closed_loop):
            point = PointResult(shape, shape.workers if self.dimension == "workers" else shape.nodes)
            self.results.append(point)
            yield closed  # always: the answer is checked against it, even from a given start rate
            point.trial_ids.append(closed.trial_id)
            primary = next((r for r in self._last.rows if r.get("aggregate_throughput")), None)
            if primary is not None:
                point.closed_loop_per_s = primary["aggregate_median"] or primary["aggregate_throughput"]
            start = self.goal.start_per_s or (point.closed_loop_per_s or 0.0) / 4
            if not start:
                continue  # the workload failed even closed loop: nothing to search from
            point.search = RateSearch(start, self.goal.resolution, point.closed_loop_per_s)
            step = 0
            while (rate := point.search.next_rate()) is not None:
                sampling = self._step_sampling(rate)
                for attempt in range(MAX_LENGTHENINGS + 1):
                    step += 1
                    trial = self._trial(nodes, shape, rate, f"capacity step {step}", sampling)
                    yield trial
                    point.trial_ids.append(trial.trial_id)
                    verdict = judge_step(self._last.rows, self.goal.slos, rate)
                    if verdict.judged:
                        break
                    sampling = replace(sampling, min_time_s=sampling.min_time_s * 2)  # lengthened, never judged short
                else:
                    verdict = StepVerdict(rate, verdict.achieved_per_s, False, True,
                                          f"could not be judged: {verdict.reason}", verdict.latency_ns)
                point.search.record(verdict)

    def answer(self) -> dict[str, Any] | None:
        """Return how many N the goal's load needs (``nodes_needed``), None without a load or a capacity."""
        from orchestrator.analysis.capacity import nodes_needed

        done = [r for r in self.results if r.search and r.search.steps]  # an N that met no rate carries 0
        load_per_s = self.goal.load_per_s
        if load_per_s is None or not any(r.capacity_per_s for r in done):
            return None
        ns = [r.n for r in done]
        caps = [r.capacity_per_s or 0.0 for r in done]
        lows = caps
        highs = [r.search.failed_per_s if r.search.failed_per_s is not None else c for r, c in zip(done, caps)]
        return nodes_needed(ns, caps, lows, highs, load_per_s)


def capacity_rows(run_id: str, search: CapacitySearch, params_json: str) -> list[dict[str, Any]]:
    """Return the ``capacity`` table rows: one per point, with its bracket, latency and what limited it."""
    rows = []
    slo_text = ", ".join(str(s) for s in search.goal.slos)
    first = search.goal.slos[0]
    for r in search.results:
        cap = r.capacity_per_s
        at = next((s for s in (r.search.steps if r.search else []) if s.judged and s.passed
                   and s.offered_per_s == cap), None)
        value, high = at.latency_ns.get(first.percentile, (None, None)) if at else (None, None)
        status = ("met" if cap else "not met even at the lowest rate" if r.search and r.search.steps
                  else "not searched (the closed-loop trial failed)")
        rows.append({"run_id": run_id, "workload": search.workload, "params": params_json,
                     "dimension": search.dimension, "n": r.n, "slo": slo_text,
                     "capacity_per_s": cap, "bracket_low_per_s": cap,
                     "bracket_high_per_s": r.search.failed_per_s if r.search else None,
                     "closed_loop_per_s": r.closed_loop_per_s,
                     "steps": len(r.search.steps) if r.search else 0,
                     "latency_at_capacity_ms": value and value / 1e6,
                     "latency_ci_high_at_capacity_ms": high and high / 1e6,
                     "limited_by": r.limit or None, "status": status, "trial_ids": list(r.trial_ids),
                     "non_monotone": bool(r.search and r.search.non_monotone),
                     "non_monotone_per_s": list(r.search.non_monotone) if r.search else [],
                     "probes_per_s": list(r.search.probes) if r.search else [],
                     "note": search_note(r.search) if r.search else None})
    return rows


_MESSAGES = {
    "cli": {
        "both": "--workers and --nodes both list several counts; search over one of them at a time.",
        "rate": "--param {w}.rate is what the capacity search sets; remove it (--start-rate sets the first rate).",
        "rounds": "--repetitions",
    },
    "file": {
        "both": "Sweep keys nodes and workers_per_node both list several values; a capacity sweep searches over "
                "one of them at a time.",
        "rate": "Sweep parameter {w}.rate is what the capacity search sets; remove it (capacity.start_rate sets "
                "the first rate).",
        "rounds": "Sweep key repetitions =",
    },
}


def build_search(workload: str, params: Mapping[str, Any], given: Sequence[str], workers: Sequence[int],
                 nodes: Sequence[int], shape: Shape, goal: CapacityGoal, sampling: Sampling,
                 source: str = "cli") -> CapacitySearch:
    """Return the capacity search of ``workload`` over the worker or node counts; the one builder of both inputs.

    ``params`` are the validated parameters, ``given`` the names the user set (``rate`` is the
    search's own); ``shape`` gives placement, threads, reserve and mode; ``source`` ("cli" or
    "file") names the inputs in messages as the user wrote them.

    Raises:
        UserError: both counts vary, the workload cannot be searched, its rate was given, or
            fewer rounds than an upper bound needs.
    """
    from orchestrator.analysis.capacity import check_rounds

    say = _MESSAGES[source]
    if len(workers) > 1 and len(nodes) > 1:
        raise UserError(say["both"])
    check_searchable(workload)
    if "rate" in given:
        raise UserError(say["rate"].format(w=workload))
    check_rounds(sampling.repetitions, say["rounds"])
    dimension = "nodes" if len(nodes) > 1 else "workers"
    shapes = tuple(replace(shape, workers=w, nodes=n) for n in nodes for w in workers)
    return CapacitySearch(workload, dict(params), shapes, dimension, goal, sampling)
