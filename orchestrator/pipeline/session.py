"""One session of the pipeline, the same for ``run``, ``sweep`` and ``capacity``.

    check the folder → connect → probe → plan (refused before any file is written) → warnings
    → open the run (``RunLog``) → place one agent on every node the plan uses (``NodeAgents``)
    and keep their clocks (``ClockBook``) → per trial: measure through the agents
    (``trial.run_trial``), record (``record.build_record``), commit → close the run → targets.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping, Sequence, Sized
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import ray
from rich.console import Console

from cluster.connection import ray_session
from cluster.cpu_lock import CpuLockTimeout
from cluster.nodes import NodeInfo
from orchestrator.analysis.targets import Target, check_targets
from orchestrator.pipeline.agents import AgentsNotPlaced, NodeAgents, used_nodes
from orchestrator.pipeline.clocks import ClockBook, measure_offsets
from orchestrator.pipeline.costs import metering, phase
from orchestrator.pipeline.interrupts import terminated_on_sigterm
from orchestrator.pipeline.margin import Margin
from orchestrator.pipeline.planner import plan_trials
from orchestrator.pipeline.record import build_record, failed_record
from orchestrator.pipeline.runlog import RunLog
from orchestrator.pipeline.trial import run_trial
from orchestrator.pipeline.waits import TrialTimeout, WaitExpired, describe_error
from orchestrator.records import OnTrial, Point, RunOutcome, Session, Trial, TrialRecord
from orchestrator.render.notes import print_warnings
from orchestrator.render.progress import trial_progress
from orchestrator.settings import CLOCKS, DEADLINES, START_MARGIN, Sampling
from orchestrator.store.layout import new_run_id, validate_run_id
from orchestrator.store.reader import Dataset
from orchestrator.store.writer import RunStore, StoreError, check_writable
from workloads.errors import UserError
from workloads.registry import get_workload


@dataclass(frozen=True, slots=True)
class SessionSpec:
    """What a job hands the pipeline.

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
        nodes = tuple(probe_nodes(DEADLINES.probe_s, ray_.embedded))
        return nodes, plan_trials(points, nodes)


def lost_nodes(trial: Trial, nodes: Sequence[NodeInfo]) -> list[NodeInfo]:
    """Return the trial's nodes that Ray no longer counts as alive."""
    alive = {n["NodeID"] for n in ray.nodes() if n.get("Alive")}
    return [n for n in nodes if n.node_id in trial.node_ids and n.node_id not in alive]


def measure(trial: Trial, sampling: Sampling, agents: NodeAgents, nodes: Mapping[str, NodeInfo], run_id: str,
            targets: Sequence[Target], say: Callable[[str], None], clocks: ClockBook | None = None,
            margin: Margin | None = None) -> TrialRecord:
    """Measure one trial and return its record; a workload error or a lost node fails it, never the run.

    Raises:
        CpuLockTimeout: another run held the CPUs past --lock-timeout (the run stops, one sentence).
    """
    workload = get_workload(trial.workload)
    sampling = trial.sampling or sampling
    try:
        measured = run_trial(trial, sampling, agents, nodes, run_id, say, clocks, margin)
    except CpuLockTimeout:
        raise
    except TrialTimeout:
        return failed_record(run_id, trial, workload, f"the trial ran past --trial-timeout "
                                                      f"{sampling.trial_timeout_s:g} s and was stopped")
    except WaitExpired as exc:
        return failed_record(run_id, trial, workload, str(exc))
    except Exception as exc:  # noqa: BLE001 -- a workload error (RayTaskError) or a lost actor/node
        error = describe_error(exc)
        lost = lost_nodes(trial, tuple(nodes.values())) if isinstance(exc, ray.exceptions.RayError) else []
        if lost:
            names = ", ".join(f"{n.node_id[:12]} ({n.hostname}, {n.ip})" for n in lost)
            error = f"node {names} left the cluster during the trial ({error})"
        return failed_record(run_id, trial, workload, error)
    with phase("record"):
        return build_record(run_id, measured, {n: node.topology for n, node in nodes.items()}, workload, sampling,
                            targets)


def run_session(spec: SessionSpec, on_trial: OnTrial | None = None) -> Session:
    """Run the pipeline for ``spec`` (see the module docstring) and return what it produced.

    ``on_trial`` is called before each trial (record None) and after it (a test seam).

    Raises:
        UserError: an unwritable folder, a bad resume, or a plan the cluster cannot hold,
            all before the first file is written.
        StoreError: the folder could not be written mid-run (the run is marked failed).
        KeyboardInterrupt: after the run was marked interrupted and what was kept was said.
    """
    from cluster.probe import probe_nodes

    results = check_writable(spec.results)
    previous = _resume_rows(results, spec.resume, spec.spec_json) if spec.resume else []
    err = Console(stderr=True)

    def say(text: str) -> None:
        err.print(text, highlight=False)

    with ray_session(spec.address) as ray_:
        nodes = tuple(probe_nodes(DEADLINES.probe_s, ray_.embedded))
        by_id = {n.node_id: n for n in nodes}
        trials = spec.search(nodes) if spec.search else plan_trials(spec.points, nodes)
        planned = len(trials) if isinstance(trials, Sized) else None  # a search plans as it goes
        print_warnings(err, [n.environment for n in nodes])
        store = RunStore(results, spec.resume or new_run_id())
        if planned is not None:
            wanted = {t.trial_id for t in trials}
            previous = [r for r in previous if r["trial_id"] in wanted]
        skip = frozenset(r["trial_id"] for r in previous)
        if skip:
            say(f"Resuming {store.run_id}: {len(skip)} of {planned} trials already stored, "
                f"running {planned - len(skip)}.")
        used = used_nodes(nodes, trials)  # each gets an agent: it runs its node's workers and reads its clock
        records: list[TrialRecord] = []
        status = "interrupted"
        with trial_progress(None if planned is None else planned - len(skip), spec.describe,
                            also=on_trial) as progress:
            log = RunLog(store, spec.command, spec.spec_json, nodes, planned, previous)
            try:
                with (terminated_on_sigterm(),
                      contextlib.closing(NodeAgents.place(used, DEADLINES.actor_start_s)) as agents):
                    clocks = ClockBook(used, lambda ids: measure_offsets(
                        agents.by_node, [by_id[i] for i in ids], CLOCKS.exchanges), say=say)
                    margin = Margin(START_MARGIN)  # learned over the run's rounds
                    for i, trial in enumerate(trials):
                        if trial.trial_id in skip:
                            continue
                        progress(i, trial, None)
                        with metering() as meter:
                            record = measure(trial, spec.sampling, agents, by_id, store.run_id, spec.targets, say,
                                             clocks, margin)
                            with phase("commit"):
                                log.commit(trial, record)
                        record = replace(record, costs=meter.costs())
                        records.append(record)
                        progress(i, trial, record)
                status = "failed" if any(r.error for r in records) else "complete"
            except StoreError:
                status = "failed"
                raise
            except AgentsNotPlaced as exc:
                status = "failed"
                raise UserError(str(exc)) from None
            except KeyboardInterrupt:
                hint = f"; {spec.resume_hint.format(run_id=store.run_id)}" if spec.resume_hint else ""
                say(f"Run {store.run_id} interrupted; {len({r['trial_id'] for r in log.rows})} of "
                    f"{planned or 'the'} trials are stored in {results}{hint}.")
                raise
            finally:
                log.close(status, len(records), sum(1 for r in records if r.error), len(skip))
    rows = tuple(log.rows)
    ran = tuple(trials) if planned is not None else tuple(r.trial for r in records)
    outcome = RunOutcome(store.run_id, status, tuple(records))
    return Session(results, outcome, ran, nodes, rows, tuple(check_targets(spec.targets, rows)), len(skip))
