"""The synchronized rounds of a trial: every sample started by all workers at one shared instant.

Each sample (warm-up first) is one round. The driver sends a batch of rounds to each node's
agent in one call: the batch's first instant, a margin ahead (``margin.Margin``: sized from
how long earlier batches took to reach their last worker) and converted to that node's
clock, and the window between rounds (``settings.RoundWindow``). The agent has every
worker start round k at the first instant plus k windows and answers with a few numbers per
worker and round (the rows stay on the node). So the driver makes one call per node per
batch, not one per round, and sample r of every worker starts together however noisy the
machine is: a round in which any sample started late (its call, or the worker's previous
sample, still busy at the instant) missed its window (``window_held``) and is not
measured: it stays in the rows as not measured (flag ``window_missed``) and is re-run in a
batch with twice the window. Whether a round is measured never depends on its own
samples' times, so no slow round is dropped for being slow: a sample that ran past the
next instant is kept, and the round after it, which then started late on its worker, is
re-run. Unlike a barrier between rounds, other workers may start the next round while such
a straggler finishes (rare: the window is 1.25 times the longest sample seen). The
warm-ups of a trial on several nodes form a batch of their own: taken together, they size
the first window. A trial on one node needs no window: its agent is the barrier and starts
each round a lead after the last one ended everywhere (``NodeAgent.rounds``), and its
warm-ups open the first batch. The idle gap between rounds is never measured. Each batch
waits at most its deadline (``DEADLINES.round_floor_s`` plus its windows plus
``round_factor`` longest samples).
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
from orchestrator.pipeline.waits import Expect, Sender, Sentence, gather
from orchestrator.settings import DEADLINES, ROUND_WINDOW, RoundWindow, Sampling

if TYPE_CHECKING:
    from orchestrator.pipeline.node_agent import BatchAnswer


class WindowsMissed(Sentence):
    """Every measured round of an invocation missed its window, however widened; ``str()`` says so and why."""


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
    missed: tuple[int, ...] = ()
    """Repetition numbers of the rounds that missed their window (not measured; re-run)."""


def round_values(answers: Sequence[BatchAnswer], k: int) -> list[float]:
    """Return round ``k``'s throughput (ops/s) of every worker of a batch, in slot order, from its agents' answers."""
    return [ops / elapsed * 1e9 for node in answers for _, _, _, ops, elapsed in node[k][1]]


def window_held(answers: Sequence[BatchAnswer]) -> list[bool]:
    """Return, per round of a batch, whether every worker's call for it began by its instant.

    Each agent answers each round's instant and its workers' stamps on its own node's clock.
    A call that began after the instant started late: it arrived late, or the worker's
    previous sample was still running. The round's own times play no part.
    """
    rounds = len(answers[0]) if answers else 0
    return [all(w[0] <= node[k][0] for node in answers for w in node[k][1]) for k in range(rounds)]


def measure_rounds(agents: Sequence[Any], sampling: Sampling, iterations: int,
                   clock_offsets_ns: Sequence[int], deadline: float | None, margin: Margin,
                   senders: Sequence[Sender] = (), sample_s: float = 0.0, first: int = 0,
                   window: RoundWindow = ROUND_WINDOW) -> Rounds:
    """Run the trial's warm-up and measured rounds through its nodes' ``agents``; see the module docstring.

    Without ``until_stable`` ``repetitions`` rounds are measured (stop reason "repetitions").
    With it, more rounds follow (in batches of half the rounds so far, shrunk to fit the
    time left) until the interval of the primary throughput's median is within ``rel_ci`` of
    it ("stable") or the next batch would end after ``max_time_s`` of measuring ("max-time").
    Every batch is a look of ``StoppingRule``, whose interval keeps its 95% level however
    the run stops; the last look is returned with the rounds. ``clock_offsets_ns`` (per
    agent, its node's clock minus the driver's) turn the shared instants into each node's
    time. ``margin`` sizes the lead of each batch's first instant and learns from every
    batch; ``senders`` name the agents in a missed deadline's sentence; ``sample_s`` is the
    longest sample expected (seconds: calibration's, scaled to ``iterations``), which sizes
    the first batch's window until warm-ups taken together replace it.
    Rounds are numbered from ``first`` in the order they run, measured or missed (a trial's
    later invocations go on counting, so a round's repetition number is unique in its
    trial); warm-ups are -W..-1 in each invocation. A batch's missed rounds are re-run (up
    to ``window.retries`` batches in a row, each with twice the window); those still
    missing are not measured, and the invocation has fewer rounds.

    Raises:
        WaitExpired: a batch's answers did not all come within its deadline.
        WindowsMissed: not one measured round held its window.
    """
    offsets = list(clock_offsets_ns) or [0] * len(agents)
    measured: list[list[float]] = []
    missed: list[int] = []
    longest_s = sample_s
    window_ns = window.ns(longest_s)
    next_round = first
    first_start: int | None = None

    def batch(plan: list[tuple[int, bool]]) -> tuple[int, float]:
        """Run one batch of rounds ``(repetition, warmup)``; return how many measured ones missed, and its longest
        sample (s)."""
        nonlocal longest_s, first_start
        lead = margin.ns(len(agents))
        submitted = time.time_ns()
        first_at = submitted + lead
        span_s = len(plan) * window_ns / 1e9
        # The agent's own wait ends before the driver's: a late worker is named by the agent that waited for it.
        inner = DEADLINES.round_floor_s + span_s + DEADLINES.round_factor * longest_s
        # One node is its own barrier (window 0): its agent starts each round once the last one ended.
        sent_window = window_ns if len(agents) > 1 else 0
        refs = [a.rounds.remote(first_at + off, sent_window, iterations, plan, inner)
                for a, off in zip(agents, offsets)]
        what = f"rounds {plan[0][0]}..{plan[-1][0]} answers"
        answers = gather(refs, deadline, Expect(what, lead / 1e9 + inner + DEADLINES.call_s, senders))
        # When the first round's last call began, on the driver's clock: what the next margin must cover.
        reached = max(max(w[0] for w in node[0][1]) - off for node, off in zip(answers, offsets))
        margin.observe(reached - submitted, len(agents))
        lost, seen_s = 0, 0.0
        for k, ((repetition, warmup), ok) in enumerate(zip(plan, window_held(answers))):
            at = answers[0][k][0] - offsets[0]  # the round's instant, on the driver's clock
            workers = [(w, node[k][0]) for node in answers for w in node[k][1]]  # each with its node's instant
            note_round(at - submitted, min(instant - w[0] for w, instant in workers),
                       max(w[1] - instant for w, instant in workers))
            seen_s = max(seen_s, max(w[4] for w, _ in workers) / 1e9)
            if warmup:
                continue
            first_start = first_start or at
            if ok:
                measured.append(round_values(answers, k))
            else:
                missed.append(repetition)
                lost += 1
        longest_s = max(longest_s, seen_s)
        return lost, seen_s

    def take(count: int, ends_at_ns: int | None = None, lead_in: Sequence[tuple[int, bool]] = ()) -> int:
        """Measure ``count`` more rounds in batches of at most ``window.most_rounds``, re-running missed ones, and
        none that would end after ``ends_at_ns`` (driver clock); return the window of the last batch (ns).

        ``lead_in`` (warm-ups) runs first, in the first batch. Each batch that missed rounds
        doubles the window for the next; after ``window.retries`` such batches in a row the
        rest is given up (the invocation has fewer rounds).
        """
        nonlocal next_round, window_ns
        lossy, used = 0, window_ns
        while count > 0:
            size = min(count, window.most_rounds - len(lead_in))
            if ends_at_ns is not None:
                size = min(size, (ends_at_ns - time.time_ns() - margin.ns(len(agents))) // window_ns)
                if size < 1:
                    break
            plan = [*lead_in, *((next_round + i, False) for i in range(size))]
            next_round += size
            used, lead_in = window_ns, ()
            lost, _ = batch(plan)
            count -= size - lost
            window_ns = max(window.ns(longest_s), window_ns * (2 if lost else 1))
            lossy = lossy + 1 if lost else 0
            if lossy > window.retries:
                break
        return used

    warmups = [(i - sampling.warmup, True) for i in range(sampling.warmup)]
    # Across nodes the window needs samples taken together: calibration's ran each alone, and workers that
    # share a node's memory or CPUs slow each other down. So the warm-ups go first, in batches of their own,
    # and size the first window. One node is its own barrier (no window): its warm-ups open the first batch.
    apart, seen_s = len(agents) > 1, 0.0
    while warmups and (apart or len(warmups) >= window.most_rounds):
        seen_s = max(seen_s, batch(warmups[:window.most_rounds])[1])
        warmups = warmups[window.most_rounds:]
        longest_s = seen_s  # samples taken together, not calibration's taken alone
        window_ns = window.ns(longest_s)
    used = take(sampling.repetitions, lead_in=warmups)
    if not measured:
        raise WindowsMissed(
            f"all {len(missed)} measured rounds started late (some worker began a round after its instant: its "
            f"previous sample still ran, or the call came late) in {window.retries + 1} batches, the last with "
            f"{used / 1e9:.3g} s between rounds; the samples' times vary more than doubling the window covers, or "
            "the nodes' clocks moved (another load on the machine, or a workload whose samples differ a lot): "
            "measure on a quieter machine, or with a longer --min-time.")
    rule, looks, look = StoppingRule(sampling.rel_ci), (), None
    while True:
        # Both ends on the driver's clock: worker clocks on other nodes may differ.
        elapsed_s = (time.time_ns() - (first_start or time.time_ns())) / 1e9
        done = len(measured)
        if not sampling.until_stable:
            reason = "repetitions"
            break
        if not looks or done > looks[-1]:  # a batch whose every round missed is no new look
            look = rule.look(np.array(measured, dtype=float), looks)
            looks = (*looks, done)
            if look.stop:
                reason = "stable"
                break
        elapsed_s = (time.time_ns() - (first_start or time.time_ns())) / 1e9  # the look takes time too
        # A round costs its window now (windows only grow), whatever the rounds before cost.
        per_round_s = max(elapsed_s / (done + len(missed)), window_ns / 1e9)
        left_s = sampling.max_time_s - elapsed_s
        if left_s < per_round_s:
            reason = "max-time"
            break
        before = next_round
        take(max(1, min(math.ceil(done / 2), math.floor(left_s / per_round_s))),
             (first_start or time.time_ns()) + int(sampling.max_time_s * 1e9))
        if next_round == before:  # not one more round fits before --max-time
            reason = "max-time"
            break
    return Rounds(np.array(measured, dtype=float), reason, elapsed_s, look, tuple(missed))
