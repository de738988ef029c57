"""What each trial costs the driver: wall and CPU seconds per phase, and the Ray calls it waited on.

The session keeps one ``Meter`` per trial and opens ``metering(meter)`` around each of its
invocations (they interleave with other trials') and its record; the stages mark their
phases with ``phase(name)`` and ``waits.gather`` counts the calls it collects, so no
signature carries a meter. CPU time is the whole driver process's (Ray's own threads in it
included): on a host shared with many raylets it is what the driver itself spent, where wall
time is not.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from orchestrator.records import TrialCosts

_current: ContextVar[Meter | None] = ContextVar("topobench_meter", default=None)


class Meter:
    """Adds up one trial's phases: wall seconds, driver CPU seconds and calls, by phase name."""

    def __init__(self) -> None:
        self._phases: dict[str, list[float]] = {}
        self._name: str | None = None
        self._rounds: list[tuple[int, int, int]] = []

    def add(self, name: str, wall_s: float = 0.0, cpu_s: float = 0.0, thread_s: float = 0.0, calls: int = 0) -> None:
        """Add to phase ``name`` (created on first use, kept in first-use order)."""
        kept = self._phases.setdefault(name, [0.0, 0.0, 0.0, 0])
        for i, value in enumerate((wall_s, cpu_s, thread_s, calls)):
            kept[i] += value

    def costs(self) -> TrialCosts:
        """Return each phase's totals and the rounds' margins and slacks so far."""
        # Deferred: every stage imports this module, and a chain through records would be too long.
        from orchestrator.records import PhaseCost, TrialCosts

        margins, slacks, lates = zip(*self._rounds) if self._rounds else ((), (), ())
        return TrialCosts({name: PhaseCost(w, c, t, int(n)) for name, (w, c, t, n) in self._phases.items()},
                          tuple(margins), tuple(slacks), tuple(lates))


@contextmanager
def metering(meter: Meter | None = None) -> Iterator[Meter]:
    """Meter everything marked with ``phase`` and every call ``count_calls`` sees, until the block ends.

    ``meter`` goes on adding to one opened before (a trial's next invocation); None starts a new one.
    """
    meter = meter or Meter()
    token = _current.set(meter)
    try:
        yield meter
    finally:
        _current.reset(token)


@contextmanager
def phase(name: str) -> Iterator[None]:
    """Charge the block's wall and CPU time, and the calls counted in it, to phase ``name``."""
    meter = _current.get()
    if meter is None:
        yield
        return
    outer, meter._name = meter._name, name
    wall, cpu, thread = time.perf_counter(), time.process_time(), time.thread_time()
    try:
        yield
    finally:
        meter._name = outer
        spent = (time.perf_counter() - wall, time.process_time() - cpu, time.thread_time() - thread)
        meter.add(name, *spent)
        if outer is not None:  # a nested phase's time is not its parent's too
            meter.add(outer, *(-x for x in spent))


def note_round(margin_ns: int, slack_ns: int, late_ns: int) -> None:
    """Keep one round's margin, slack (how early its latest call arrived) and lateness of its last start."""
    meter = _current.get()
    if meter is not None:
        meter._rounds.append((margin_ns, slack_ns, late_ns))


def count_calls(calls: int) -> None:
    """Count ``calls`` Ray calls against the current phase (nothing when no meter is open)."""
    meter = _current.get()
    if meter is not None:
        meter.add(meter._name or "other", calls=calls)
