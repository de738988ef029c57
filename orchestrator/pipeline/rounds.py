"""The synchronized rounds of a trial: every sample started by all workers at one shared instant.

Each sample (warm-up first) is one round: the driver picks a wall-clock instant a margin
ahead (``margin.Margin``: sized from how long earlier rounds took to reach their last worker),
every worker starts its sample of the trial's common iteration count then, and the next
round begins when all have finished. So sample r of every worker runs together however
noisy the machine is; the idle gap between rounds is never measured. Each round waits at
most its deadline (``DEADLINES.round_floor_s`` plus ``round_factor`` longest samples).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from orchestrator.analysis.stopping import Look, StoppingRule
from orchestrator.pipeline.costs import note_round
from orchestrator.pipeline.margin import Margin
from orchestrator.pipeline.waits import Expect, Sender, gather
from orchestrator.settings import DEADLINES, Sampling


@dataclass(frozen=True, slots=True)
class Rounds:
    """The measured phase of one trial: each worker's samples, and why measuring stopped."""

    tables: tuple[pa.Table, ...]
    """Per worker (slot order), its warm-up and measured samples (wide, one row per round)."""
    stop_reason: str
    """repetitions (fixed count) | stable (CI half-width within rel_ci) | max-time."""
    measure_s: float
    """Seconds from the first measured round's shared start to the last round's end (driver clock)."""
    stop: Look | None = None
    """With --until-stable, the last look of the stopping rule (its interval is the one to report)."""


def round_values(rows: Sequence[Sequence[pa.Table]]) -> np.ndarray:
    """Return the measured rounds so far as rounds x workers of ops/s (each worker's primary throughput)."""
    per_worker = [[t["ops"][0].as_py() / t["elapsed_ns"][0].as_py() * 1e9 for t in w if not t["warmup"][0].as_py()]
                  for w in rows]
    return np.array(per_worker, dtype=float).T


def measure_rounds(actors: Sequence[Any], sampling: Sampling, iterations: int,
                   clock_offsets_ns: Sequence[int], deadline: float | None, margin: Margin,
                   senders: Sequence[Sender] = (), sample_s: float = 0.0) -> Rounds:
    """Run the trial's warm-up and measured rounds on ``actors``; see the module docstring.

    Without ``until_stable`` ``repetitions`` rounds are taken (stop reason "repetitions").
    With it, more rounds follow (in batches of half the rounds so far, shrunk to fit the
    time left) until the interval of the primary throughput's median is within ``rel_ci`` of
    it ("stable") or the next batch would end after ``max_time_s`` of measuring ("max-time").
    Every batch is a look of ``StoppingRule``, whose interval keeps its 95% level however
    the run stops; the last look is returned with the rounds. ``clock_offsets_ns`` (per
    actor, its node's clock minus the driver's) turn the shared instant into each node's time.
    ``margin`` sizes the lead of each start instant and learns from every round; ``senders``
    name the workers in a missed round's sentence; ``sample_s`` is the expected longest
    sample (seconds) until one is measured.

    Raises:
        WaitExpired: a round's samples did not all come within its deadline.
    """
    offsets = list(clock_offsets_ns) or [0] * len(actors)
    rows: list[list[pa.Table]] = [[] for _ in actors]
    longest_s = sample_s

    def round_(repetition: int, warmup: bool) -> int:
        nonlocal longest_s
        lead = margin.ns()
        submitted = time.time_ns()
        start_at = submitted + lead
        refs = [a.sample.remote(start_at + off, iterations, repetition, warmup) for a, off in zip(actors, offsets)]
        within = lead / 1e9 + DEADLINES.round_floor_s + DEADLINES.round_factor * longest_s
        tables = gather(refs, deadline, Expect(f"round {repetition} samples", within, senders))
        # When the last call arrived, on the driver's clock: what the next margin must cover.
        reached = max(t["called_ns"][0].as_py() - off for t, off in zip(tables, offsets))
        margin.observe(reached - submitted)
        note_round(lead, start_at - reached,
                   max(t["start_ns"][0].as_py() - (start_at + off) for t, off in zip(tables, offsets)))
        longest_s = max(longest_s, max(t["elapsed_ns"][0].as_py() for t in tables) / 1e9)
        for kept, table in zip(rows, tables):
            kept.append(table)
        return start_at

    for i in range(sampling.warmup):
        round_(i - sampling.warmup, warmup=True)  # -W .. -1, in the order they run
    done, batch, first_start = 0, sampling.repetitions, None
    rule, looks, look = StoppingRule(sampling.rel_ci), (), None
    while True:
        for _ in range(batch):
            start_at = round_(done, warmup=False)
            first_start = first_start or start_at
            done += 1
        # Both ends on the driver's clock: worker clocks on other nodes may differ.
        elapsed_s = (time.time_ns() - first_start) / 1e9
        if not sampling.until_stable:
            reason = "repetitions"
            break
        look = rule.look(round_values(rows), looks)
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
    tables = tuple(pa.concat_tables(w, promote_options="default") for w in rows)
    return Rounds(tables, reason, elapsed_s, look)
