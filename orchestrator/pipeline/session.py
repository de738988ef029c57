"""One session of the pipeline, the same for ``run``, ``sweep`` and ``capacity``.

    check the folder → connect → probe → plan (refused before any file is written) → warnings
    → open the run (``RunLog``) → place one agent on every node the plan uses (``NodeAgents``)
    and keep their clocks (``ClockBook``) → per invocation, in the interleaved order of
    ``schedule``: measure through the agents (``trial.run_trial``: fresh workers each time);
    once a trial's invocations are all done: record (``record.build_record``), commit → close
    the run → targets.

An interrupt (Ctrl-C, SIGTERM, CPUs held past --lock-timeout) stores every finished trial and
the finished invocations of the trials still in progress (flagged ``partial``); a resumed sweep
keeps those as they are: a trial's invocations all come from one session.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping, Sequence, Sized
from dataclasses import dataclass, replace
from pathlib import Path

import ray
from rich.console import Console

from cluster.connection import ray_session
from cluster.cpu_lock import CpuLockTimeout
from cluster.nodes import NodeInfo
from orchestrator.analysis.targets import Target, check_targets
from orchestrator.pipeline.agents import AgentsNotPlaced, NodeAgents, used_nodes
from orchestrator.pipeline.clocks import ClockBook, measure_offsets
from orchestrator.pipeline.costs import Meter, metering, phase
from orchestrator.pipeline.interrupts import terminated_on_sigterm
from orchestrator.pipeline.margin import Margin
from orchestrator.pipeline.planner import plan_trials
from orchestrator.pipeline.provenance import NO_COMMIT, Commit
from orchestrator.pipeline.record import build_record, failed_record, rounds_of
from orchestrator.pipeline.resume import resume_rows
from orchestrator.pipeline.runlog import RunLog
from orchestrator.pipeline.schedule import invocation_steps
from orchestrator.pipeline.trial import run_trial
from orchestrator.pipeline.waits import TrialTimeout, WaitExpired, describe_error
from orchestrator.records import (
    MeasuredTrial,
    OnTrial,
    Point,
    RunOutcome,
    Session,
    Trial,
    TrialRecord,
)
from orchestrator.render.notes import print_warnings
from orchestrator.render.progress import trial_progress
from orchestrator.settings import CLOCKS, DEADLINES, START_MARGIN, Sampling
from orchestrator.store.layout import new_run_id
from orchestrator.store.location import Location
from orchestrator.store.writer import RunStore, StoreError, WriteFailed, check_writable
from workloads.errors import UserError
from workloads.registry import get_workload


@dataclass(frozen=True, slots=True)
class SessionSpec:
    """What a job hands the pipeline.

    Attributes:
        results: the dataset: a folder, or a URI such as s3://bucket/prefix (``store.location``).
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
        label: the run's ``--label``, or None.
        commit: the code measured (``provenance.find_commit``); a resumed run keeps its own.
    """

    results: str | Path | Location
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
    label: str | None = None
    commit: Commit = NO_COMMIT


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
            say: Callable[[str], None], clocks: ClockBook, margin: Margin,
            done: Sequence[MeasuredTrial] = ()) -> MeasuredTrial | TrialRecord:
    """Measure the next invocation of ``trial`` after ``done``; a workload error or a lost node fails the trial.

    Returns the invocation, or the failed trial's record (its earlier invocations are dropped).
    With --until-stable each invocation gets its share of --max-time. A deadline that passed
    (workers that did not start, a round that did not come back) fails the trial with its sentence.

    Raises:
        CpuLockTimeout: another run held the CPUs past --lock-timeout (the run stops, one sentence).
    """
    workload = get_workload(trial.workload)
    if sampling.until_stable and sampling.invocations > 1:
        sampling = replace(sampling, max_time_s=sampling.max_time_s / sampling.invocations)
    try:
        return run_trial(trial, sampling, agents, nodes, run_id, say, clocks, margin, invocation=len(done),
                         iterations=done[0].iterations if done else None,
                         first_round=sum(rounds_of(m) + len(m.missed_rounds) for m in done))
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


def record_of(run_id: str, invocations: Sequence[MeasuredTrial], nodes: Mapping[str, NodeInfo],
              sampling: Sampling, targets: Sequence[Target]) -> TrialRecord:
    """Return the stored record of a trial's measured invocations (fewer than asked: flagged partial)."""
    trial = invocations[0].trial
    return build_record(run_id, invocations, {n: node.topology for n, node in nodes.items()},
                        get_workload(trial.workload), sampling, targets, planned=sampling.invocations)


def run_session(spec: SessionSpec, on_trial: OnTrial | None = None) -> Session:
    """Run the pipeline for ``spec`` (see the module docstring) and return what it produced.

    ``on_trial`` is called before each trial's first invocation (record None) and once its
    record is stored (a test seam; a capacity search plans its next step there).

    Raises:
        UserError: a bad or unwritable results location, a bad resume, or a plan the cluster
            cannot hold, all before Ray starts or the first file is written.
        StoreError: the results could not be written mid-run (the run is marked failed when it can be).
        KeyboardInterrupt: after the run was marked interrupted and what was kept was said.
    """
    from cluster.probe import probe_nodes

    results = check_writable(spec.results)
    previous = resume_rows(results, spec.resume, spec.spec_json) if spec.resume else []
    err = Console(stderr=True)

    def say(text: str) -> None:
        err.print(text, highlight=False)

    with ray_session(spec.address) as ray_:
        nodes = tuple(probe_nodes(DEADLINES.probe_s, ray_.embedded))
        by_id = {n.node_id: n for n in nodes}
        trials = spec.search(nodes) if spec.search else plan_trials(spec.points, nodes)
        planned = len(trials) if isinstance(trials, Sized) else None  # a search plans as it goes
        print_warnings(err, [n.environment for n in nodes])
        store_ = RunStore(results, spec.resume or new_run_id(), new=not spec.resume)
        shown = Path(results.root) if results.local else results.shown
        if planned is not None:
            wanted = {t.trial_id for t in trials}
            previous = [r for r in previous if r["trial_id"] in wanted]
        skip = frozenset(r["trial_id"] for r in previous)
        if skip:
            say(f"Resuming {store_.run_id}: {len(skip)} of {planned} trials already stored, "
                f"running {planned - len(skip)}.")
        used = used_nodes(nodes, trials)  # each gets an agent: it runs its node's workers and reads its clock
        records: list[TrialRecord] = []
        running: dict[str, list[MeasuredTrial]] = {}  # the invocations of trials not yet stored
        meters: dict[str, Meter] = {}  # what each trial not yet stored has cost the driver so far
        status, failure = "interrupted", None
        unwritten_told: set[str] = set()  # nodes whose agents could not write their parts, said once

        def sampling_of(trial: Trial) -> Sampling:
            return trial.sampling or spec.sampling

        def store(i: int, trial: Trial, record: TrialRecord | None = None) -> None:
            """Commit the trial: ``record`` (a failed trial's), else that of its measured invocations; its meter ends."""
            done = running.pop(trial.trial_id, [])
            for node in (n for m in done for n in m.nodes if n.unwritten and n.node_id not in unwritten_told):
                unwritten_told.add(node.node_id)  # once per node and run: the driver goes on writing its parts
                say(f"{node.unwritten[0].upper()}{node.unwritten[1:]}.")
            with metering(meters.pop(trial.trial_id, None)) as meter:
                if record is None:
                    with phase("record"):
                        record = record_of(store_.run_id, done, by_id, sampling_of(trial), spec.targets)
                with phase("commit"):
                    log.commit(trial, record)
            record = replace(record, costs=meter.costs())
            records.append(record)
            if on_trial is not None and i >= 0:
                on_trial(i, trial, record)

        total = None if planned is None else sum(sampling_of(t).invocations for t in trials
                                                 if t.trial_id not in skip)
        with trial_progress(total, spec.describe) as progress:
            log = RunLog(store_, spec.command, spec.spec_json, nodes, planned, previous, spec.label, spec.commit)
            try:
                with (terminated_on_sigterm(),
                      contextlib.closing(NodeAgents.place(used, DEADLINES.actor_start_s,
                                                          results.root if results.local else results.given)) as agents):
                    clocks = ClockBook(used, lambda ids: measure_offsets(
                        agents.by_node, [by_id[i] for i in ids], CLOCKS.exchanges), say=say)
                    margin = Margin(START_MARGIN)  # learned over the run's rounds
                    failed: set[str] = set()
                    for i, trial, k in invocation_steps(trials, lambda t: sampling_of(t).invocations, skip):
                        if trial.trial_id in failed:
                            continue
                        sampling = sampling_of(trial)
                        if k == 0 and on_trial is not None:
                            on_trial(i, trial, None)
                        progress(trial, k, sampling.invocations)
                        done = running.setdefault(trial.trial_id, [])
                        with metering(meters.setdefault(trial.trial_id, Meter())):
                            outcome = measure(trial, sampling, agents, by_id, store_.run_id, say, clocks, margin, done)
                        if isinstance(outcome, TrialRecord):
                            failed.add(trial.trial_id)
                            progress(trial, k, sampling.invocations, done=sampling.invocations - k)
                            store(i, trial, outcome)
                            continue
                        done.append(outcome)
                        progress(trial, k, sampling.invocations, done=1)
                        if len(done) == sampling.invocations:
                            store(i, trial)
                status = "failed" if any(r.error for r in records) else "complete"
            except StoreError as exc:
                status, failure = "failed", exc
                raise
            except AgentsNotPlaced as exc:
                status = "failed"
                raise UserError(str(exc)) from None
            except (KeyboardInterrupt, CpuLockTimeout):
                for trial in [d[0].trial for d in running.values() if d]:  # finished invocations of unfinished trials
                    with contextlib.suppress(StoreError):  # best effort: the interrupt is what to report
                        store(-1, trial)
                hint = f"; {spec.resume_hint.format(run_id=store_.run_id)}" if spec.resume_hint else ""
                partial = sum(1 for r in records if r.rows and "partial" in (r.rows[0].get("flags") or ()))
                kept = f" ({partial} of them partial: fewer invocations than asked)" if partial else ""
                say(f"Run {store_.run_id} interrupted; {len({r['trial_id'] for r in log.rows})} of "
                    f"{planned or 'the'} trials are stored in {shown}{kept}{hint}.")
                raise
            finally:
                marked = log.close(status, len(records), sum(1 for r in records if r.error), len(skip))
                if isinstance(failure, WriteFailed):
                    failure.marked = marked  # its sentence says whether the run could be marked failed
    rows = tuple(log.rows)
    ran = tuple(trials) if planned is not None else tuple(r.trial for r in records)
    outcome = RunOutcome(store_.run_id, status, tuple(records))
    return Session(shown, outcome, ran, nodes, rows, tuple(check_targets(spec.targets, rows)), len(skip))
