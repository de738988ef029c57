"""The three jobs of the command line, each one session and its conclusion: run, sweep, capacity search.

Commands, tests and benchmarks call these; they print nothing after the run (``render`` does).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from orchestrator.analysis.scaling_series import SeriesAnalysis, analyze_run, scaling_rows
from orchestrator.pipeline.capacity import CapacitySearch, capacity_rows
from orchestrator.pipeline.request import RunRequest
from orchestrator.pipeline.session import SessionSpec, run_session
from orchestrator.pipeline.sweep_file import SweepSpec
from orchestrator.records import CapacityResult, OnTrial, Session
from orchestrator.render.progress import describe_capacity_step, describe_sweep_trial
from orchestrator.settings import RESULTS_DIR
from orchestrator.store.queries import run_samples
from orchestrator.store.reader import Dataset
from orchestrator.store.writer import RunStore
from workloads.registry import get_workload


@dataclass(frozen=True, slots=True)
class SweepResult:
    """A finished sweep: its session and the scaling analysis of every series (stored in ``scaling``)."""

    session: Session
    analyses: tuple[SeriesAnalysis, ...]


def run_benchmarks(request: RunRequest, address: str | None, command: str = "topobench run") -> Session:
    """Measure every workload of ``request`` once, in order, and store every sample."""
    return run_session(SessionSpec(request.results, address, command, request.to_json(), request.points(),
                                   request.sampling, request.targets))


def run_sweep(spec: SweepSpec, address: str | None, results: str | Path = RESULTS_DIR, resume: str | None = None,
              command: str = "topobench sweep", on_trial: OnTrial | None = None) -> SweepResult:
    """Run the sweep's matrix (or the rest of run ``resume``), then analyze and store how it scales."""
    session = run_session(SessionSpec(results, address, command, spec.to_json(), spec.points(), spec.sampling,
                                      spec.targets, resume, "continue with `topobench sweep FILE --resume {run_id}`",
                                      describe_sweep_trial), on_trial)
    analyses = analyze_run(session.rows, run_samples(Dataset(results, [session.run_id]), session.run_id), spec.workloads)
    RunStore(results, session.run_id).write_scaling(scaling_rows(session.run_id, analyses))
    return SweepResult(session, analyses)


def run_capacity(search: CapacitySearch, spec_json: str, address: str | None, results: str | Path = RESULTS_DIR,
                 command: str = "topobench capacity") -> CapacityResult:
    """Search the capacity of every N of ``search``, store the ``capacity`` rows and say what a load needs."""
    session = run_session(SessionSpec(results, address, command, spec_json, (), search.sampling,
                                      describe=describe_capacity_step, search=search.trials), search.observe)
    params = json.dumps({k: v for k, v in search.params.items() if k != "rate"}, sort_keys=True, default=str)
    rows = capacity_rows(session.run_id, search, params)
    RunStore(results, session.run_id).write_capacity(rows)
    return CapacityResult(session, tuple(rows), search.answer(), search.goal.load_per_s, search.dimension,
                          get_workload(search.workload).throughput.unit)
