"""Run one invocation of a trial through its nodes' agents: fresh workers, locks, service, prepare, rounds, finish.

Ray-facing only: each node's agent builds its node's rows (``record.node_record``); once all
the trial's invocations are measured, the session turns their nodes' parts into the trial's
record (``record.build_record``). The driver makes one call per node for each step, never
one per worker.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from cluster.clock import SAME_CLOCK
from cluster.cpu_lock import CpuLockTimeout, Holder
from cluster.cpulist import format_cpulist
from cluster.messages import TrialSpec
from cluster.nodes import NodeInfo
from cluster.service import ServiceHost
from orchestrator.analysis.stopping import preload
from orchestrator.pipeline.costs import phase
from orchestrator.pipeline.margin import Margin
from orchestrator.pipeline.node_agent import Begin, LockStep
from orchestrator.pipeline.rounds import measure_rounds
from orchestrator.pipeline.waits import Expect, Sender, gather
from orchestrator.records import MeasuredTrial, Trial, WorkerSlot
from orchestrator.settings import DEADLINES, START_MARGIN, Mode, Sampling

if TYPE_CHECKING:
    from orchestrator.pipeline.agents import NodeAgents
    from orchestrator.pipeline.clocks import ClockBook


def _stop_service(service: Any) -> None:
    """Stop and kill a trial's ``ServiceHost``; a service already gone is not an error."""
    try:
        ray.get(service.stop.remote(), timeout=DEADLINES.call_s)
    except ray.exceptions.RayError:
        pass
    ray.kill(service)


def _specs(trial: Trial, nodes: Mapping[str, NodeInfo], sampling: Sampling,
           endpoint: dict[str, Any] | None) -> list[TrialSpec]:
    """Return each worker's ``TrialSpec``, in slot order (an unpinned worker's cache sizes are its node's)."""
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
            cache_sizes_bytes=caches(slot.node_id, slot.cpus),
            record_node_cpus=first_on_node[slot.node_id] == slot.rank,
            service_endpoint=endpoint,
        )
        for slot in trial.slots
    ]


def by_node(trial: Trial) -> dict[str, list[WorkerSlot]]:
    """Return the trial's slots grouped by node, nodes and slots in plan order (ranks run node by node)."""
    out: dict[str, list[WorkerSlot]] = {}
    for slot in trial.slots:
        out.setdefault(slot.node_id, []).append(slot)
    return out


def per_node_trials(trial: Trial, slots: Mapping[str, Sequence[WorkerSlot]]) -> list[Trial]:
    """Return the trial as each node's agent gets it (nodes in ``slots``' order): with that node's slots only.

    The whole trial to every agent would be O(N^2) bytes a step: at 1,000 nodes, 3 s of the
    driver's CPU pickling it (``benchmarks/node_model.py``).
    """
    return [replace(trial, slots=tuple(mine)) for mine in slots.values()]


def agents_named(trial: Trial, nodes: Mapping[str, NodeInfo]) -> list[Sender]:
    """Return who owes each node's answers, in node order (for a missed deadline's sentence)."""
    return [Sender("the agent", n, nodes[n].hostname if n in nodes else "") for n in trial.node_ids]


def wait_for_cpus(agents: Sequence[Any], sampling: Sampling, run_id: str, busy: Holder,
                  say: Callable[[str], None], named: Sequence[Sender] = ()) -> float:
    """Wait for the trial's CPUs, which ``busy`` (another run) holds some of; return the seconds waited.

    All or nothing across workers: every node's locks are released, and all are taken again
    every 0.2 to 0.3 s until none is held, up to ``sampling.lock_timeout_s``; ``say`` tells
    once whom the trial waits for. Each node's agent takes its own workers' locks: one call
    per node.

    Raises:
        CpuLockTimeout: the CPUs stayed held past the timeout (a one-sentence user error).
        WaitExpired: an agent did not answer a lock call within ``DEADLINES.lock_s``.
    """
    within, began = DEADLINES.lock_s, time.monotonic()
    expect = Expect("answers to the CPU lock", within + DEADLINES.call_s, named)
    say(f"Waiting for CPUs {format_cpulist(busy.cpus)}, held by run {busy.run_id} "
        f"(pid {busy.pid} on {busy.hostname}), up to --lock-timeout {sampling.lock_timeout_s:g} s.")
    while True:
        gather([a.unlock.remote(within) for a in agents], None, expect)
        if time.monotonic() - began >= sampling.lock_timeout_s:
            raise CpuLockTimeout(busy, sampling.lock_timeout_s)
        time.sleep(0.2 + random.random() * 0.1)  # jitter: two waiting runs do not retry in step
        held = [h for node in gather([a.lock.remote(run_id, within) for a in agents], None, expect)
                for h in node if h is not None]
        if not held:
            return time.monotonic() - began
        busy = held[0]


def run_trial(trial: Trial, sampling: Sampling, agents: NodeAgents, nodes: Mapping[str, NodeInfo], run_id: str,
              say: Callable[[str], None] = lambda text: None, clocks: ClockBook | None = None,
              margin: Margin | None = None, invocation: int = 0, iterations: int | None = None,
              first_round: int = 0) -> MeasuredTrial:
    """Measure one invocation of ``trial`` through the agents of its nodes and return every node's part.

    Steps: the agents start fresh worker processes (every invocation its own: new
    allocations, ASLR, allocator and JIT state) within ``DEADLINES.actor_start_s``, take the
    host-wide locks of the trial's pinned CPUs (or, with ``--no-lock``, read who holds them)
    and prepare them (setup, calibration: every invocation the same, so each starts
    measuring equally warm), all in one call per node (``NodeAgent.begin``); CPUs another
    run holds are waited for (``wait_for_cpus``) and the workers then prepared, as they are
    when the workload's shared service must start on its node first (the workers need its
    address). Each node's clock offset comes from the run's ``clocks`` (re-measured there
    when due; without a book every node counts as the driver's clock). All workers take
    ``iterations`` per sample (the first invocation: the largest calibrated count, which the
    later ones reuse, so every sample of the trial does equal work); the warm-up and
    measured rounds follow (``measure_rounds``), numbered on from ``first_round`` (the
    rounds of the trial's earlier invocations); ``finish`` tears down, builds each node's
    rows (each agent writes them to the results where it reaches them) and releases its
    workers (their CPU locks go with them), so nothing of the invocation runs on. So a
    trial with neither a service nor a wait costs 3 calls per node and invocation (begin,
    the rounds, finish) on one node, and 4 on several (the warm-ups are a batch of their own). Every wait has its deadline (``DEADLINES``;
    ``--trial-timeout`` bounds them all and replaces the prepare one). On any error every
    agent releases its workers and the error propagates.

    Raises:
        WaitExpired: a phase's answers did not come within its deadline (the sentence says which, where, why).
        TrialTimeout: the trial ran past ``--trial-timeout``.
        CpuLockTimeout: another run held the CPUs past ``--lock-timeout``.
    """
    slots = by_node(trial)
    handles = [agents.by_node[n] for n in trial.node_ids]
    named = agents_named(trial, nodes)
    service = None
    started = time.monotonic()
    within = sampling.trial_timeout_s or DEADLINES.prepare_s
    lock = (LockStep.NONE if not any(s.pinned for s in trial.slots)
            else LockStep.TAKE if sampling.lock_cpus else LockStep.READ)
    flags: set[str] = set()

    def specs_by_node(endpoint: dict[str, Any] | None) -> list[tuple[TrialSpec, ...]]:
        specs = iter(_specs(trial, nodes, sampling, endpoint))
        return [tuple(next(specs) for _ in slots[n]) for n in trial.node_ids]

    if sampling.until_stable:
        preload()  # the rounds' first look needs scipy: imported while the driver waits for the workers
    try:
        with phase("start"):
            early = trial.service_node_id is None  # else the workers need the server's address to prepare
            steps = [Begin(part, DEADLINES.actor_start_s, lock, run_id, DEADLINES.lock_s, specs, DEADLINES.prepare_s,
                           sampling.trial_timeout_s)
                     for part, specs in zip(per_node_trials(trial, slots),
                                            specs_by_node(None) if early else [None] * len(slots))]
            begun = gather([a.begin.remote(step) for a, step in zip(handles, steps)], None, Expect(
                "started workers" + (" (their CPU locks, setup and calibration)" if early else ""),
                DEADLINES.actor_start_s + DEADLINES.lock_s + (within if early else 0) + DEADLINES.call_s, named))
        # The watchdog runs from the workers' start (each agent's), waits for another run's CPUs left out.
        deadline = (time.monotonic() + sampling.trial_timeout_s - max(b.since_start_s for b in begun)
                    if sampling.trial_timeout_s else None)
        held = [h for b in begun for h in b.holders if h is not None]
        if held and lock is LockStep.READ:
            flags.add("shared_cpus")
        elif held:
            with phase("lock"):
                waited = wait_for_cpus(handles, sampling, run_id, held[0], say, named)
                started += waited  # waiting for another run's CPUs is no cost of this one
                deadline = deadline + waited if deadline is not None else None
        with phase("clocks"):
            book = clocks.offsets() if clocks is not None else {}
            offsets = [book.get(n, SAME_CLOCK) for n in trial.node_ids]
        endpoint = None
        if trial.service_node_id is not None:  # one shared server on its node, for every worker
            with phase("service"):
                service = ServiceHost.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
                    trial.service_node_id, soft=False)).remote(trial.workload, dict(trial.params))
                server = nodes.get(trial.service_node_id)
                (endpoint,) = gather([service.start.remote()], deadline, Expect(
                    f"{trial.workload} server start", DEADLINES.service_s,
                    [Sender("the server", trial.service_node_id, server.hostname if server else "")]))
        prepared = [b.prepared for b in begun]
        if held and lock is LockStep.TAKE or not early:  # not prepared with the start: every node's workers now
            with phase("prepare"):
                prepared = gather([a.prepare.remote(specs, within) for a, specs in zip(handles, specs_by_node(endpoint))],
                                  deadline, Expect("prepared workers (setup and calibration)",
                                                   within + DEADLINES.call_s, named))
        calibrated = [(int(p["iterations"]), float(p["sample_s"])) for node in prepared for p in node]
        iterations = iterations or max(n for n, _ in calibrated)
        with phase("rounds"):
            # Calibration's own samples size the first window: each scaled to the count every worker takes.
            expected_s = max(sample_s * iterations / n for n, sample_s in calibrated)
            rounds = measure_rounds(handles, sampling, iterations, [o.offset_ns for o in offsets], deadline,
                                    margin or Margin(START_MARGIN), named, expected_s, first_round)
        with phase("finish"):
            parts = gather([a.finish.remote(run_id, invocation, off, DEADLINES.finish_s, agents.writes_to,
                                            rounds.missed) for a, off in zip(handles, offsets)], deadline,
                           Expect("finished nodes (teardown and rows)", DEADLINES.finish_s + DEADLINES.call_s, named))
    except BaseException:
        for agent in handles:
            agent.release.remote()  # a killed worker's locks go with it; the next invocation starts fresh ones
        raise
    finally:
        if service is not None:
            _stop_service(service)
    overhead_s = max(0.0, time.monotonic() - started - rounds.measure_s)
    if len(rounds.values) < sampling.repetitions:  # re-running did not make up for every missed window
        flags.add("window_missed")
    return MeasuredTrial(trial, (), rounds.stop_reason, rounds.measure_s, rounds.stop, frozenset(flags),
                         tuple(parts), invocation, overhead_s, iterations, rounds.missed)
