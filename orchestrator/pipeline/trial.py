"""Run one trial on its worker actors: service, setup and calibration, rounds, teardown.

Ray-facing only: what the workers return goes to ``analysis.trial_record`` to become rows.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from cluster.clock import SAME_CLOCK
from cluster.cpu_lock import CpuLockTimeout
from cluster.cpulist import format_cpulist
from cluster.messages import TrialSpec
from cluster.nodes import NodeInfo
from cluster.service import ServiceHost
from orchestrator.pipeline.costs import phase
from orchestrator.pipeline.margin import Margin
from orchestrator.pipeline.rounds import measure_rounds
from orchestrator.pipeline.waits import Expect, Sender, gather
from orchestrator.records import MeasuredTrial, Trial, WorkerResult
from orchestrator.settings import DEADLINES, START_MARGIN, Mode, Sampling

if TYPE_CHECKING:
    from orchestrator.pipeline.actors import ActorPool
    from orchestrator.pipeline.clocks import ClockBook


def _stop_service(service: Any) -> None:
    """Stop and kill a trial's ``ServiceHost``; a service already gone is not an error."""
    try:
        ray.get(service.stop.remote(), timeout=DEADLINES.call_s)
    except ray.exceptions.RayError:
        pass
    ray.kill(service)


def _specs(trial: Trial, identities: list[dict[str, Any]], nodes: Mapping[str, NodeInfo], sampling: Sampling,
           endpoint: dict[str, Any] | None) -> list[TrialSpec]:
    first_on_node = {}
    for slot in trial.slots:
        first_on_node.setdefault(slot.node_id, slot.rank)
    share = 1.0 if trial.shape.mode is Mode.WEAK else 1.0 / len(trial.slots)

    def caches(node_id: str, cpus: tuple[int, ...]) -> dict[str, int]:
        topology = nodes[node_id].topology
        cpus = cpus or topology.usable_cpus
        return {**topology.cache_sizes_bytes(cpus), "L3_total": topology.l3_total_bytes(cpus)}

    return [
        TrialSpec(
            workload=trial.workload, params=dict(trial.params), worker_rank=slot.rank,
            workers=len(trial.slots), min_time_s=sampling.min_time_s,
            resource_interval_s=sampling.resource_interval_s, work_share=share, scratch_dir=sampling.scratch,
            cache_sizes_bytes=caches(slot.node_id, tuple(identity["cpus"])),
            record_node_cpus=first_on_node[slot.node_id] == slot.rank,
            service_endpoint=endpoint,
        )
        for slot, identity in zip(trial.slots, identities)
    ]


def senders(trial: Trial, nodes: Mapping[str, NodeInfo]) -> list[Sender]:
    """Return who owes each worker's results, in slot order (for a missed deadline's sentence)."""
    return [Sender(f"worker {s.rank}", s.node_id, nodes[s.node_id].hostname if s.node_id in nodes else "")
            for s in trial.slots]


def lock_cpus(trial: Trial, actors: Sequence[Any], sampling: Sampling, run_id: str,
              say: Callable[[str], None], named: Sequence[Sender] = ()) -> set[str]:
    """Take the host-wide lock of every pinned CPU of the trial, waiting for other runs; return flags.

    All or nothing across workers (one worker's CPUs held: release everyone's and wait), up to
    ``sampling.lock_timeout_s``; ``say`` tells once whom the trial waits for. Without
    ``lock_cpus`` nothing is taken and a trial whose CPUs another run holds gets ``shared_cpus``.

    Raises:
        CpuLockTimeout: the CPUs stayed held past the timeout (a one-sentence user error).
        WaitExpired: a worker did not answer a lock call within ``DEADLINES.lock_s``.
    """
    if not any(slot.pinned for slot in trial.slots):
        return set()
    expect = Expect("answers to the CPU lock", DEADLINES.lock_s, named)
    if not sampling.lock_cpus:
        return {"shared_cpus"} if any(gather([a.cpus_held_by.remote() for a in actors], None, expect)) else set()
    deadline, told = time.monotonic() + sampling.lock_timeout_s, False
    while True:
        busy = [h for h in gather([a.lock_cpus.remote(run_id) for a in actors], None, expect) if h is not None]
        if not busy:
            return set()
        gather([a.unlock_cpus.remote() for a in actors], None, expect)
        if not told:  # before the deadline check: a slow first attempt still says whom it waited for
            say(f"Waiting for CPUs {format_cpulist(busy[0].cpus)}, held by run {busy[0].run_id} "
                f"(pid {busy[0].pid} on {busy[0].hostname}), up to --lock-timeout {sampling.lock_timeout_s:g} s.")
            told = True
        if time.monotonic() >= deadline:
            raise CpuLockTimeout(busy[0], sampling.lock_timeout_s)
        time.sleep(0.2 + random.random() * 0.1)  # jitter: two waiting runs do not retry in step


def run_trial(trial: Trial, sampling: Sampling, pool: ActorPool, nodes: Mapping[str, NodeInfo], run_id: str,
              say: Callable[[str], None] = lambda text: None, clocks: ClockBook | None = None) -> MeasuredTrial:
    """Measure ``trial`` on pinned actors from ``pool`` and return what every worker produced.

    Steps: the trial's CPUs are locked host-wide (``lock_cpus``); each node's clock offset is
    taken from the run's ``clocks`` (re-measured there when due; without a book, every node
    counts as the driver's clock); the workload's shared service starts on its node (if it
    has one); every worker prepares (setup, calibration) in parallel; all get the largest
    calibrated iteration count; the warm-up and measured rounds follow (``measure_rounds``);
    ``finish`` tears down and returns each worker's resource rows; the locks are released.
    Every wait has its deadline (``DEADLINES``; ``--trial-timeout`` bounds them all and
    replaces the prepare one). On any error the trial's actors are discarded (their state is
    unknown) and the error propagates.

    Raises:
        WaitExpired: a phase's results did not come within its deadline (the sentence says which, where, why).
        TrialTimeout: the trial ran past ``--trial-timeout``.
    """
    threads = trial.shape.threads_per_worker
    named = senders(trial, nodes)
    with phase("acquire"):
        actors = pool.acquire(trial.slots, threads)
    service = None
    locked = False
    try:
        with phase("lock"):
            flags = lock_cpus(trial, actors, sampling, run_id, say, named)
        locked = sampling.lock_cpus
        # The watchdog starts once the CPUs are ours: waiting for another run is not this trial's time.
        deadline = time.monotonic() + sampling.trial_timeout_s if sampling.trial_timeout_s else None
        with phase("clocks"):
            book = clocks.offsets() if clocks is not None else {}
            offsets = [book.get(slot.node_id, SAME_CLOCK) for slot in trial.slots]
        endpoint = None
        if trial.service_node_id is not None:  # one shared server on its node, for every worker
            with phase("service"):
                service = ServiceHost.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
                    trial.service_node_id, soft=False)).remote(trial.workload, dict(trial.params))
                server = nodes.get(trial.service_node_id)
                (endpoint,) = gather([service.start.remote()], deadline, Expect(
                    f"{trial.workload} server start", DEADLINES.service_s,
                    [Sender("the server", trial.service_node_id, server.hostname if server else "")]))
        with phase("prepare"):
            asked = time.time_ns()
            identities = gather([a.identity.remote() for a in actors], deadline, Expect(
                "worker identities", DEADLINES.call_s, named))
            # Submitting every worker's call and hearing back: what the first round's margin must cover.
            margin = Margin(START_MARGIN, time.time_ns() - asked)
            prepared = gather([a.prepare.remote(s) for a, s in
                               zip(actors, _specs(trial, identities, nodes, sampling, endpoint))], deadline, Expect(
                "prepared workers (setup and calibration)", sampling.trial_timeout_s or DEADLINES.prepare_s, named))
        iterations = [int(p["iterations"]) for p in prepared]
        with phase("rounds"):
            rounds = measure_rounds(actors, sampling, max(iterations), [o.offset_ns for o in offsets], deadline,
                                    margin, named, sampling.min_time_s * max(iterations) / max(1, min(iterations)))
        with phase("finish"):
            resources = gather([a.finish.remote() for a in actors], deadline, Expect(
                "finished workers (teardown and resource rows)", DEADLINES.finish_s, named))
    except BaseException:
        for slot in trial.slots:
            pool.discard(slot, threads)  # a killed worker's locks go with it
        raise
    finally:
        if service is not None:
            _stop_service(service)
    if locked:
        with phase("finish"):
            gather([a.unlock_cpus.remote() for a in actors], None, Expect("CPU unlocks", DEADLINES.lock_s, named))
    workers = tuple(
        WorkerResult(slot.rank, slot.node_id, identity["hostname"], tuple(identity["cpus"]), slot.pinned,
                     table, res["resources"], float(p["setup_s"]), res["cpu_means"], offset)
        for slot, identity, table, res, p, offset in zip(trial.slots, identities, rounds.tables, resources,
                                                         prepared, offsets)
    )
    return MeasuredTrial(trial, workers, rounds.stop_reason, rounds.measure_s, rounds.stop, frozenset(flags))
