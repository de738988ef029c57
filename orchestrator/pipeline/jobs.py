"""The three jobs of the command line, each one session and its conclusion: run, sweep, capacity search.

Commands, tests and benchmarks call these; they print nothing after the run (``render`` does).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from orchestrator.analysis.scaling_series import SeriesAnalysis, analyze_run, scaling_rows
from orchestrator.pipeline.capacity import CapacitySearch, capacity_rows
from orchestrator.pipeline.provenance import NO_LABELS, Commit, Labels, find_commit, program_folders
from orchestrator.pipeline.request import RunRequest
from orchestrator.pipeline.resume import as_started
from orchestrator.pipeline.session import SessionSpec, run_session
from orchestrator.pipeline.sweep_file import SweepSpec
from orchestrator.records import CapacityResult, OnTrial, Point, Session
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


def _commit(labels: Labels, points: Sequence[Point]) -> Commit:
    """Return the commit of the code ``points`` measure (``provenance.find_commit``)."""
    return find_commit(labels.commit, program_folders((p.workload, p.params) for p in points))


def run_benchmarks(request: RunRequest, address: str | None, command: str = "topobench run",
                   labels: Labels = NO_LABELS) -> Session:
    """Measure every workload of ``request`` (each trial's invocations interleaved) and store every sample."""
    points = request.points()
    return run_session(SessionSpec(request.results, address, command, request.to_json(), points,
                                   request.sampling, request.targets, label=labels.label,
                                   commit=_commit(labels, points)))


def run_sweep(spec: SweepSpec, address: str | None, results: str | Path = RESULTS_DIR, resume: str | None = None,
              command: str = "topobench sweep", on_trial: OnTrial | None = None,
              labels: Labels = NO_LABELS) -> SweepResult:
    """Run the sweep's matrix (or the rest of run ``resume``), then analyze and store how it scales.

    A run resumed from before invocations existed goes on as it was measured (``as_started``).
    """
    if resume:
        spec = replace(spec, sampling=as_started(results, resume, spec.sampling))
    points = spec.points()
    session = run_session(SessionSpec(results, address, command, spec.to_json(), points, spec.sampling,
                                      spec.targets, resume, "continue with `topobench sweep FILE --resume {run_id}`",
                                      describe_sweep_trial, label=labels.label, commit=_commit(labels, points)),
                          on_trial)
    analyses = analyze_run(session.rows, run_samples(Dataset(session.results, [session.run_id]), session.run_id), spec.workloads)
    RunStore(session.results, session.run_id).write_scaling(scaling_rows(session.run_id, analyses))
    return SweepResult(session, analyses)


def run_capacity(search: CapacitySearch, spec_json: str, address: str | None, results: str | Path = RESULTS_DIR,
                 command: str = "topobench capacity", labels: Labels = NO_LABELS) -> CapacityResult:
    """Search the capacity of every N of ``search``, store the ``capacity`` rows and say what a load needs."""
    commit = find_commit(labels.commit, program_folders([(search.workload, search.params)]))
    session = run_session(SessionSpec(results, address, command, spec_json, (), search.sampling,
                                      describe=describe_capacity_step, search=search.trials, label=labels.label,
                                      commit=commit), search.observe)
    params = json.dumps({k: v for k, v in search.params.items() if k != "rate"}, sort_keys=True, default=str)
    rows = capacity_rows(session.run_id, search, params)
    RunStore(session.results, session.run_id).write_capacity(rows)
    return CapacityResult(session, tuple(rows), search.answer(), search.goal.load_per_s, search.dimension,
                          get_workload(search.workload).throughput.unit)
