"""The node agent: one actor of 0 CPUs per node of a run, which runs its node's part of every invocation.

It starts its node's fresh worker actors, takes and gives back their CPU locks, prepares them
(the three in one call, ``begin``, where nothing stands between them), starts each batch's rounds at their instants (a batch sent once, on this node's clock), keeps
their rows and answers with a few numbers per worker and round, and at the end builds its node's rows,
merges its node's latency histograms and releases the workers. So the driver makes one call
per node where it made one per worker, and gets a summary per batch of rounds; the node's rows come once,
at the invocation's end (the driver's statistics need them), and the agent writes them to the
results itself where it can reach them (object storage, or the driver's folder on its disk or a
shared file system), so the driver does not write a node's samples.
Every wait here has a deadline given by the driver; past it, the error is one sentence.
"""

from __future__ import annotations

import contextlib
import enum
import os
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, NamedTuple

import pyarrow as pa
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from orchestrator.pipeline.margin import Margin
from orchestrator.pipeline.waits import Sentence, TrialTimeout
from orchestrator.settings import LOCAL_LEAD

if TYPE_CHECKING:
    from cluster.clock import ClockOffset
    from cluster.cpu_lock import Holder
    from cluster.messages import TrialSpec
    from cluster.topology import Topology
    from orchestrator.records import NodeResult, Trial, WorkerSlot

BatchAnswer = tuple[tuple[int, tuple[tuple[int, int, int, int, int], ...]], ...]
"""A batch's answer: per round, its instant and per worker (called_ns, start_ns, end_ns, ops, elapsed_ns), all on
this node's clock."""


def window_missed(sample: pa.Table, missed: Collection[int]) -> pa.Table:
    """Return a worker's one-row sample, marked not measured (``warmup``, flag ``window_missed``) if its round missed.

    ``missed`` holds the repetition numbers of the rounds that missed their window on some
    node (``rounds.window_held``): kept, as warm-ups are, and left out of every statistic.
    """
    if sample["warmup"][0].as_py() or sample["repetition"][0].as_py() not in missed:
        return sample
    flags = sorted({*(sample["flags"][0].as_py() or ()), "window_missed"})
    sample = sample.set_column(sample.schema.get_field_index("warmup"), "warmup", pa.array([True]))
    return sample.set_column(sample.schema.get_field_index("flags"), "flags", pa.array([flags], pa.list_(pa.string())))


class LockStep(enum.Enum):
    """What an invocation does with its workers' CPU locks once they start."""

    NONE = "none"  # no worker is pinned: there is nothing to lock
    READ = "read"  # --no-lock: only read who holds them (the trial is flagged shared_cpus)
    TAKE = "take"  # take them, all or nothing (the driver waits for another run's, up to --lock-timeout)


@dataclass(frozen=True, slots=True)
class Begin:
    """An invocation's start on one node, in one call: start its workers, then lock their CPUs, then prepare them.

    Attributes:
        trial: the trial, with this node's slots only (``trial.per_node_trials``).
        start_s: deadline for the workers to start and say who they are.
        lock: what to do with the workers' CPU locks.
        run_id: the run that takes them.
        lock_s: deadline for the lock calls.
        specs: each worker's ``TrialSpec``, in slot order, to prepare them with; None: the driver
            prepares them later (a service must start first: the specs carry its address).
        prepare_s: deadline for setup and calibration.
        trial_timeout_s: the trial's ``--trial-timeout`` (0: none): it replaces ``prepare_s``
            and, once passed, fails the trial as its timeout (``TrialTimeout``).
    """

    trial: Trial
    start_s: float
    lock: LockStep = LockStep.NONE
    run_id: str = ""
    lock_s: float = 0.0
    specs: tuple[TrialSpec, ...] | None = None
    prepare_s: float = 0.0
    trial_timeout_s: float = 0.0


class Begun(NamedTuple):
    """What ``NodeAgent.begin`` did: per worker, the other run holding its CPUs (None: free or taken); per worker
    what ``prepare`` returned (None: not prepared: no specs, or a lock to take was held, and the driver waits);
    and the seconds since the workers started (what the trial's watchdog has used up)."""

    holders: list[Holder | None]
    prepared: list[dict[str, float]] | None
    since_start_s: float


class WorkersNotStarted(Sentence):
    """Some of a node's workers did not start in time; ``str()`` says how many, where and what Ray has free."""


class WorkersLate(Sentence):
    """Some of a node's workers did not answer within the deadline; ``str()`` names them."""


@ray.remote(num_cpus=0)
class NodeAgent:
    """An actor of 0 CPUs on one node (its placement group bundle reserves a little memory, no CPU)."""

    def __init__(self) -> None:
        self._node = ray.get_runtime_context().get_node_id()
        self._host = os.uname().nodename
        self._slots: list[WorkerSlot] = []
        self._workers: list[Any] = []
        self._rows: list[list[pa.Table]] = []
        self._identities: list[dict[str, Any]] = []
        self._prepared: list[dict[str, float]] = []
        self._trial: Trial | None = None
        self._topology: Topology | None = None
        self._lead = Margin(LOCAL_LEAD)  # a one-node trial's lead between rounds, learned over the agent's life
        self._reaches: dict[str, Any] = {}
        """Per run: the ``PartWriter`` this node writes its parts with; False: the results are not reachable
        from here (the driver writes); a sentence: writing failed (the driver writes, and is told why)."""

    def wall_ns(self) -> int:
        """Return this node's wall clock, ns since the epoch (``cluster.clock``)."""
        return time.time_ns()

    def _wait(self, refs: list[Any], within_s: float, what: str) -> list[Any]:
        """Return the results of ``refs`` (per worker, or per round and worker) within ``within_s``, else raise
        ``WorkersLate``; a failed call is raised as soon as it is seen (not after a batch's other rounds)."""
        ends, pending, got = time.monotonic() + within_s, list(refs), {}
        while pending and (left := ends - time.monotonic()) > 0:
            ready, pending = ray.wait(pending, num_returns=len(pending), timeout=min(left, 0.5))
            got.update(zip(ready, ray.get(ready)))
        if pending:
            done, n = set(got), len(self._slots)
            # ``refs`` may hold several calls per worker, worker by worker in each round
            late = sorted({self._slots[i % n].rank for i, ref in enumerate(refs) if ref not in done})
            one = len(late) == 1
            raise WorkersLate(f"worker{'' if one else 's'} {', '.join(map(str, late))} of node {self._node[:12]} "
                              f"({self._host}) did not answer {what} within {within_s:g} s ({len(late)} of the node's "
                              f"{n}); {'it is' if one else 'they are'} alive, so the call{' is' if one else 's are'}"
                              " still running or stalled (a slow workload, or CPUs another process holds).")
        return [got[r] for r in refs]

    def start(self, trial: Trial, within_s: float) -> list[dict[str, Any]]:
        """Start fresh workers for this node's slots of ``trial`` (those of before are released); return who they are.

        Raises:
            WorkersNotStarted: not all started within ``within_s`` (none is kept).
        """
        from cluster.worker import Worker

        self.release()
        here = NodeAffinitySchedulingStrategy(self._node, soft=False)
        self._trial, self._slots = trial, [s for s in trial.slots if s.node_id == self._node]
        slots, threads = self._slots, trial.shape.threads_per_worker
        self._workers = [Worker.options(num_cpus=threads, scheduling_strategy=here).remote(
            s.cpus if s.pinned else (), threads) for s in slots]
        refs = [w.__ray_ready__.remote() for w in self._workers]
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=within_s)
        if len(ready) < len(refs):
            free = ray.available_resources().get("CPU", 0)
            mine = next((n.get("Resources", {}).get("CPU", 0) for n in ray.nodes() if n["NodeID"] == self._node), 0)
            missing = len(refs) - len(ready)
            self.release()
            raise WorkersNotStarted(
                f"{missing} worker(s) of {threads} CPU(s) each did not start within {within_s:g} s on node "
                f"{self._node[:12]} ({self._host}, which offers {mine:g} CPUs to Ray; {free:g} CPUs are free in the "
                "cluster now): other actors or tasks hold the CPUs (`ray status` shows them); free them, or ask for "
                "fewer workers or threads per worker.")
        ray.get(ready)  # a worker whose constructor failed (pinning refused) raises here, with its error
        self._rows = [[] for _ in slots]
        self._identities = self._wait([w.identity.remote() for w in self._workers], within_s, "who they are")
        return self._identities

    def begin(self, step: Begin) -> Begun:
        """Start this node's workers, lock their CPUs, prepare them: ``start``, ``lock`` or ``held_by``, ``prepare``.

        A lock another run holds stops it before ``prepare``: the driver releases every node's
        locks, waits for the CPUs, and prepares every node's workers once they are all its.
        """
        self.start(step.trial, step.start_s)
        started = time.monotonic()  # the watchdog counts from here: a worker's start is Ray's time, not the trial's
        holders: list[Holder | None] = []
        if step.lock is LockStep.TAKE:
            holders = self.lock(step.run_id, step.lock_s)
        elif step.lock is LockStep.READ:
            holders = self.held_by(step.lock_s)
        if step.specs is None or (step.lock is LockStep.TAKE and any(holders)):
            return Begun(holders, None, time.monotonic() - started)
        try:
            prepared = self.prepare(step.specs, step.trial_timeout_s or step.prepare_s)
        except WorkersLate:
            if step.trial_timeout_s:
                raise TrialTimeout from None
            raise
        return Begun(holders, prepared, time.monotonic() - started)

    def lock(self, run_id: str, within_s: float) -> list[Holder | None]:
        """Lock every worker's CPUs host-wide for ``run_id``; return per worker the blocking run (None: taken)."""
        return self._wait([w.lock_cpus.remote(run_id) for w in self._workers], within_s, "the CPU lock")

    def unlock(self, within_s: float) -> None:
        """Release the CPU locks of every worker."""
        self._wait([w.unlock_cpus.remote() for w in self._workers], within_s, "the CPU unlock")

    def held_by(self, within_s: float) -> list[Holder | None]:
        """Return per worker which other run holds any of its CPUs, without taking them."""
        return self._wait([w.cpus_held_by.remote() for w in self._workers], within_s, "who holds their CPUs")

    def prepare(self, specs: Sequence[TrialSpec], within_s: float) -> list[dict[str, float]]:
        """Set up and calibrate every worker (``Worker.prepare``); return each one's iterations and setup seconds."""
        self._prepared = self._wait([w.prepare.remote(s) for w, s in zip(self._workers, specs)], within_s,
                                    "setup and calibration")
        return self._prepared

    def rounds(self, first_ns: int, window_ns: int, iterations: int, plan: Sequence[tuple[int, bool]],
               within_s: float) -> BatchAnswer:
        """Have every worker start round k of ``plan`` (repetition, warmup) at its instant; return each instant
        with a summary of each worker's sample (the rows are kept).

        The instants are on this node's clock: ``first_ns + k * window_ns``, every call sent at
        once (each worker takes them in order, so a sample whose previous one ran past its
        instant starts late, and its stamps show it: ``rounds.window_held``). With
        ``window_ns`` 0 this node is the trial's only one and is the barrier itself: round
        k+1 starts a lead after every sample of round k ended (``LOCAL_LEAD``, learned as the
        driver's margin is).
        """
        what = f"rounds {plan[0][0]}..{plan[-1][0]}"
        if window_ns:
            instants = [first_ns + k * window_ns for k in range(len(plan))]
            tables = self._wait([w.sample.remote(at, iterations, repetition, warmup)
                                 for at, (repetition, warmup) in zip(instants, plan) for w in self._workers],
                                within_s, what)
        else:
            instants, tables, at = [], [], first_ns
            ends = time.monotonic() + within_s
            for repetition, warmup in plan:
                instants.append(at)
                sent = time.time_ns()
                got = self._wait([w.sample.remote(at, iterations, repetition, warmup) for w in self._workers],
                                 max(0.0, ends - time.monotonic()), what)
                tables += got
                self._lead.observe(max(t["called_ns"][0].as_py() for t in got) - sent, len(got))
                at = time.time_ns() + self._lead.ns(len(got))
        n = len(self._workers)
        for i, table in enumerate(tables):
            self._rows[i % n].append(table)
        stamps = [tuple(t.select(["called_ns", "start_ns", "end_ns", "ops", "elapsed_ns"]).to_pylist()[0].values())
                  for t in tables]
        return tuple((at, tuple(stamps[k * n:(k + 1) * n])) for k, at in enumerate(instants))

    def finish(self, run_id: str, invocation: int, clock: ClockOffset, within_s: float,
               writes_to: str | None = None, missed: Collection[int] = ()) -> NodeResult:
        """Tear the workers down, build this node's part of ``invocation`` (``record.node_record``), release them.

        The part holds the node's rows and its latency histograms merged per round. The node's
        topology (for each row's L3 domain and NUMA node) is read here, once per run, as the
        probe read it: by a process of this node. With ``writes_to`` (the run's results) the
        node's samples and resources are written there as parts of the run, which the driver
        commits with the trial: on object storage, and in a folder this node sees as the driver
        does (the run's manifest folder is there: the same host, or a shared file system). A
        folder the node does not see is left to the driver; when the node cannot write (no
        credentials for the bucket here, say) the driver writes them, and ``unwritten`` says why.
        The samples of the rounds in ``missed`` (repetition numbers) are kept marked not
        measured (``window_missed``); their CPU and RSS readings are left out.
        """
        from cluster.topology import read_topology
        from orchestrator.pipeline.record import node_record
        from orchestrator.records import WorkerResult
        from workloads.registry import get_workload

        trial = self._trial
        self._topology = self._topology or read_topology("/")
        try:
            finished = self._wait([w.finish.remote(tuple(missed)) for w in self._workers], within_s, "the finish")
            workers = [WorkerResult(s.rank, self._node, who["hostname"], tuple(who["cpus"]), s.pinned,
                                    pa.concat_tables([window_missed(r, missed) for r in rows],
                                                     promote_options="default"), res["resources"],
                                    float(p["setup_s"]), res["cpu_means"], clock)
                       for s, who, rows, res, p in zip(self._slots, self._identities, self._rows, finished,
                                                       self._prepared)]
            node = node_record(run_id, trial, workers, self._topology, get_workload(trial.workload), invocation)
        finally:
            self.release()
        return node if writes_to is None else self._write(node, writes_to, run_id, trial.trial_id)

    def _write(self, node: NodeResult, writes_to: str, run_id: str, trial_id: str) -> NodeResult:
        """Write ``node``'s samples and resources as parts under ``writes_to``; return it with their entries.

        First, once per run, the run's manifest folder must be there as the driver made it: a
        folder on another disk, or a bucket behind another endpoint, is not the driver's, and
        the driver writes. A failed write is not tried again in the run's later invocations.
        """
        from orchestrator.store import files
        from orchestrator.store.layout import manifest_folder
        from orchestrator.store.parts import PartWriter

        if run_id not in self._reaches:
            try:
                writer = PartWriter(writes_to, run_id)
                folder = writer.location.path(manifest_folder(run_id))
                if writer.location.fs.get_file_info(folder).type.name == "Directory":
                    self._reaches[run_id] = writer
                elif writer.location.local:
                    self._reaches[run_id] = False  # another disk than the driver's: no shared file system
                else:  # a bucket is shared by design: not finding the run there is a setting to fix
                    self._reaches[run_id] = self._cannot_write(writes_to, FileNotFoundError(
                        "the run's folder is not there: another endpoint or bucket from this node?"))
            except (OSError, ValueError) as exc:  # ValueError: pyarrow could not resolve the location here
                self._reaches[run_id] = self._cannot_write(writes_to, exc)
        writer = self._reaches[run_id]
        if writer is False:
            return node  # the driver's folder is not on this node's disk: the driver writes
        if isinstance(writer, str):
            return replace(node, unwritten=writer)
        written = []
        try:
            for table, data in (("samples", node.samples), ("resources", node.resources)):
                written.append(writer.write_trial(trial_id, table, data, node.node_id))
        except (OSError, ValueError) as exc:
            with contextlib.suppress(OSError, ValueError):
                files.delete(writer.location, [e.path for e in written])
            self._reaches[run_id] = self._cannot_write(writes_to, exc)
            return replace(node, unwritten=self._reaches[run_id])
        return replace(node, parts=tuple(written))

    def _cannot_write(self, writes_to: str, exc: BaseException) -> str:
        """Return the sentence (without credentials) for this node failing to write to ``writes_to``."""
        from orchestrator.store.location import describe_failure, is_uri, redact

        fix = ("give every node credentials for the bucket (the AWS variables or files, or an instance role)"
               if is_uri(writes_to) else "make the folder writable by Ray's user on every node")
        return redact(f"node {self._node[:12]} ({self._host}) could not write its samples to {writes_to} "
                      f"({describe_failure(exc)}), so the driver wrote them; {fix} and its samples need not "
                      "pass through the driver's writes")

    def release(self) -> None:
        """Give back the workers' CPU locks, kill the workers and forget their rows.

        The locks are given back first: a killed process drops its locks only once it is gone,
        which ``ray.kill`` does not wait for.
        """
        if self._workers:
            ray.wait([w.unlock_cpus.remote() for w in self._workers], num_returns=len(self._workers), timeout=5)
        for worker in self._workers:
            ray.kill(worker)
        self._workers, self._rows, self._identities, self._prepared = [], [], [], []
