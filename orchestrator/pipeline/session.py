"""The one pipeline of ``run`` and ``sweep``: check the folder, connect, probe, plan, execute, judge.

folder check → connect → probe → plan (refused before any file is written) → warnings →
run id → execute (each trial stored as it ends) → targets. The commands supply their points
and print the ``Session`` it returns; no command imports another.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence, Sized
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from cluster.connection import ray_session
from cluster.nodes import NodeInfo
from orchestrator.analysis.targets import Target, TargetResult, check_targets
from orchestrator.pipeline.interrupts import terminated_on_sigterm
from orchestrator.pipeline.planner import plan_trials
from orchestrator.pipeline.runner import OnTrial, RunContext, RunOutcome, execute
from orchestrator.records import Point, Trial
from orchestrator.render.notes import print_warnings
from orchestrator.render.progress import trial_progress
from orchestrator.settings import Sampling
from orchestrator.store.layout import new_run_id, validate_run_id
from orchestrator.store.reader import Dataset
from orchestrator.store.writer import RunStore, check_writable
from workloads.errors import UserError


@dataclass(frozen=True, slots=True)
class SessionSpec:
    """What a command hands the pipeline.

    Attributes:
        results: the dataset folder.
        address: the Ray cluster (None: $RAY_ADDRESS, else an embedded Ray).
        command: the command line, stored in ``runs.command``.
        spec_json: the validated request or sweep as JSON, stored in ``runs.spec``.
        points: what to measure, in order.
        sampling: how every trial is measured.
        targets: service-level targets checked on every trial.
        resume: a stored run to continue: its ok trials are kept, the rest run.
        resume_hint: how to continue after an interrupt (shown with the run id), or "".
        describe: the progress line of a trial.
        search: instead of ``points``, a function of the probed nodes returning the trials one
            by one, each planned from the results so far (a capacity search); it sees every
            finished trial through the session's ``on_trial``.
    """

    results: Path
    address: str | None
    command: str
    spec_json: str
    points: tuple[Point, ...]
    sampling: Sampling
    targets: tuple[Target, ...] = ()
    resume: str | None = None
    resume_hint: str = ""
    describe: Callable[[Trial], str] = lambda t: f"{t.workload} · {len(t.slots)} workers"
    search: Callable[[tuple[NodeInfo, ...]], Iterable[Trial]] | None = None


@dataclass(frozen=True, slots=True)
class Session:
    """A finished session: the outcome, every trials row of the run, and the targets' outcomes."""

    results: Path
    outcome: RunOutcome
    trials: tuple[Trial, ...]
    """The trials of the run (a search's: those it ran)."""
    nodes: tuple[NodeInfo, ...]
    rows: tuple[dict[str, Any], ...]
    """Every trials row of the run: the kept rows of a resumed run, then this session's."""
    targets: tuple[TargetResult, ...]
    resumed: int = 0
    """How many trials a resumed run kept instead of running."""

    @property
    def targets_missed(self) -> int:
        """Return how many target checks failed."""
        return sum(1 for t in self.targets if not t.passed)


def _resume_rows(results: Path, run_id: str, spec_json: str) -> list[dict[str, Any]]:
    """Return the stored ok rows of the run to resume, after checking it is the same run.

    Raises:
        UserError: no such run, or it was started from a different spec.
    """
    validate_run_id(run_id)
    stored = Dataset(results).run(run_id) if results.is_dir() else None
    if stored is None:
        raise UserError(f"--resume {run_id}: no such run in {str(results)!r}; pass the run id of an "
                        "earlier sweep (`topobench query \"SELECT run_id, status FROM runs\"`).")
    if stored["spec"] != spec_json:
        raise UserError(f"--resume {run_id}: this sweep file differs from the one that run used, so "
                        "its trials would not be comparable; resume with the same file, or start a new run.")
    return [r for r in RunStore(results, run_id).read_trials() if r["status"] == "ok"]


def plan_only(address: str | None, points: Sequence[Point]) -> tuple[tuple[NodeInfo, ...], tuple[Trial, ...]]:
    """Probe the cluster and plan ``points`` on it; run and write nothing (``--dry-run``)."""
    from cluster.probe import probe_nodes

    with ray_session(address) as ray_:
        nodes = tuple(probe_nodes(ray_.embedded))
        return nodes, plan_trials(points, nodes)


def run_session(spec: SessionSpec, on_trial: OnTrial | None = None) -> Session:
    """Run the pipeline for ``spec`` (see the module docstring) and return what it produced.

    ``on_trial`` is called like the runner's progress callback (a test seam).

    Raises:
        UserError: an unwritable folder, a bad resume, or a plan the cluster cannot hold,
            all before the first file is written.
        KeyboardInterrupt: after the run was marked interrupted and what was kept was said.
    """
    from cluster.probe import probe_nodes

    results = check_writable(spec.results)
    previous = _resume_rows(results, spec.resume, spec.spec_json) if spec.resume else []
    err = Console(stderr=True)
    with ray_session(spec.address) as ray_:
        nodes = tuple(probe_nodes(ray_.embedded))
        trials = spec.search(nodes) if spec.search else plan_trials(spec.points, nodes)
        print_warnings(err, [n.environment for n in nodes])
        store = RunStore(results, spec.resume or new_run_id())
        if isinstance(trials, Sized):  # a search plans as it goes: nothing of it to resume
            wanted = {t.trial_id for t in trials}
            previous = [r for r in previous if r["trial_id"] in wanted]
        skip = frozenset(r["trial_id"] for r in previous)
        if skip:
            err.print(f"Resuming {store.run_id}: {len(skip)} of {len(trials)} trials already stored, "
                      f"running {len(trials) - len(skip)}.", highlight=False)
        total = len(trials) - len(skip) if isinstance(trials, Sized) else None
        with trial_progress(total, spec.describe, also=on_trial) as progress:
            ctx = RunContext(store, spec.command, spec.spec_json, spec.sampling, nodes, spec.targets,
                             skip, tuple(previous), progress, lambda text: err.print(text, highlight=False))
            try:
                with terminated_on_sigterm():
                    outcome = execute(ctx, trials)
            except KeyboardInterrupt:
                kept = len(RunStore(results, store.run_id).read_trial_ids())
                hint = f"; {spec.resume_hint.format(run_id=store.run_id)}" if spec.resume_hint else ""
                planned = len(trials) if isinstance(trials, Sized) else "the"
                err.print(f"Run {store.run_id} interrupted; {kept} of {planned} trials are stored in "
                          f"{results}{hint}.", highlight=False)
                raise
    rows = (*previous, *outcome.rows)
    ran = tuple(trials) if isinstance(trials, Sized) else tuple(r.trial for r in outcome.records)
    return Session(results, outcome, ran, nodes, rows, tuple(check_targets(spec.targets, rows)), len(skip))
