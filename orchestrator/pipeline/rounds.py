"""The synchronized rounds of a trial: every sample started by all workers at one shared instant.

Each sample (warm-up first) is one round: the driver picks a wall-clock instant a margin
ahead (``margin.Margin``: sized from how long earlier rounds took to reach their last worker)
and sends it to each node's agent, one call per node, converted to that node's clock; every
agent starts its workers' samples of the trial's common iteration count then and answers
with a few numbers per worker (the rows stay on the node). The next round begins when all
have answered. So sample r of every worker runs together however noisy the machine is; the
idle gap between rounds is never measured. Each round waits at most its deadline
(``DEADLINES.round_floor_s`` plus ``round_factor`` longest samples).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from orchestrator.analysis.stopping import Look, StoppingRule
from orchestrator.pipeline.costs import note_round
from orchestrator.pipeline.margin import Margin
from orchestrator.pipeline.waits import Expect, Sender, gather
from orchestrator.settings import DEADLINES, Sampling

if TYPE_CHECKING:
    from orchestrator.pipeline.node_agent import RoundAnswer


@dataclass(frozen=True, slots=True)
class Rounds:
    """The measured phase of one trial: each round's throughput per worker, and why measuring stopped."""

    values: np.ndarray
    """Measured rounds x workers (slot order): each worker's primary throughput, ops/s."""
    stop_reason: str
    """repetitions (fixed count) | stable (CI half-width within rel_ci) | max-time."""
    measure_s: float
    """Seconds from the first measured round's shared start to the last round's end (driver clock)."""
    stop: Look | None = None
    """With --until-stable, the last look of the stopping rule (its interval is the one to report)."""


def round_values(answers: Sequence[RoundAnswer]) -> list[float]:
    """Return one round's throughput (ops/s) of every worker, in slot order, from its agents' answers (node order)."""
    return [ops / elapsed * 1e9 for _, workers in answers for _, _, ops, elapsed in workers]


def measure_rounds(agents: Sequence[Any], sampling: Sampling, iterations: int,
                   clock_offsets_ns: Sequence[int], deadline: float | None, margin: Margin,
                   senders: Sequence[Sender] = (), sample_s: float = 0.0, first: int = 0) -> Rounds:
    """Run the trial's warm-up and measured rounds through its nodes' ``agents``; see the module docstring.

    Without ``until_stable`` ``repetitions`` rounds are taken (stop reason "repetitions").
    With it, more rounds follow (in batches of half the rounds so far, shrunk to fit the
    time left) until the interval of the primary throughput's median is within ``rel_ci`` of
    it ("stable") or the next batch would end after ``max_time_s`` of measuring ("max-time").
    Every batch is a look of ``StoppingRule``, whose interval keeps its 95% level however
    the run stops; the last look is returned with the rounds. ``clock_offsets_ns`` (per
    agent, its node's clock minus the driver's) turn the shared instant into each node's time.
    ``margin`` sizes the lead of each start instant and learns from every round; ``senders``
    name the agents in a missed round's sentence; ``sample_s`` is the expected longest
    sample (seconds) until one is measured. Measured rounds are numbered from ``first`` (a
    trial's later invocations go on counting, so a round's repetition number is unique in its
    trial); warm-ups are -W..-1 in each invocation.

    Raises:
        WaitExpired: a round's answers did not all come within its deadline.
    """
    offsets = list(clock_offsets_ns) or [0] * len(agents)
    measured: list[list[float]] = []
    longest_s = sample_s

    def round_(repetition: int, warmup: bool) -> int:
        nonlocal longest_s
        lead = margin.ns(len(agents))
        submitted = time.time_ns()
        start_at = submitted + lead
        # The agent's own wait ends before the driver's: a late worker is named by the agent that waited for it.
        inner = DEADLINES.round_floor_s + DEADLINES.round_factor * longest_s
        refs = [a.round.remote(start_at + off, iterations, repetition, warmup, inner)
                for a, off in zip(agents, offsets)]
        what = f"{'warm-up ' if warmup else ''}round {repetition} answers"
        answers = gather(refs, deadline, Expect(what, lead / 1e9 + inner + DEADLINES.call_s, senders))
        # When the last call reached its worker, on the driver's clock: what the next margin must cover.
        reached = max(called - off for (called, _), off in zip(answers, offsets))
        margin.observe(reached - submitted, len(agents))
        note_round(lead, start_at - reached, max(start - (start_at + off) for (_, workers), off in
                                                 zip(answers, offsets) for start, _, _, _ in workers))
        longest_s = max(longest_s, max(e for _, workers in answers for _, _, _, e in workers) / 1e9)
        if not warmup:
            measured.append(round_values(answers))
        return start_at

    for i in range(sampling.warmup):
        round_(i - sampling.warmup, warmup=True)  # -W .. -1, in the order they run
    done, batch, first_start = 0, sampling.repetitions, None
    rule, looks, look = StoppingRule(sampling.rel_ci), (), None
    while True:
        for _ in range(batch):
            start_at = round_(first + done, warmup=False)
            first_start = first_start or start_at
            done += 1
        # Both ends on the driver's clock: worker clocks on other nodes may differ.
        elapsed_s = (time.time_ns() - first_start) / 1e9
        if not sampling.until_stable:
            reason = "repetitions"
            break
        look = rule.look(np.array(measured, dtype=float), looks)
        looks = (*looks, done)
        if look.stop:
            reason = "stable"
            break
        per_round_s = elapsed_s / done
        left_s = sampling.max_time_s - elapsed_s
        if left_s < per_round_s:
            reason = "max-time"
            break
        batch = max(1, min(math.ceil(done / 2), math.floor(left_s / per_round_s)))
    return Rounds(np.array(measured, dtype=float), reason, elapsed_s, look)
