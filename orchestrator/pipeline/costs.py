"""What each trial costs the driver: wall and CPU seconds per phase, and the Ray calls it waited on.

The session opens one ``metering()`` per trial; the stages mark their phases with
``phase(name)`` and ``waits.gather`` counts the calls it collects, so no signature carries a
meter. CPU time is the whole driver process's (Ray's own threads in it included): on a host
shared with many raylets it is what the driver itself spent, where wall time is not.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from orchestrator.records import PhaseCost

_current: ContextVar[Meter | None] = ContextVar("topobench_meter", default=None)


class Meter:
    """Adds up one trial's phases: wall seconds, driver CPU seconds and calls, by phase name."""

    def __init__(self) -> None:
        self._phases: dict[str, list[float]] = {}
        self._name: str | None = None

    def add(self, name: str, wall_s: float = 0.0, cpu_s: float = 0.0, calls: int = 0) -> None:
        """Add to phase ``name`` (created on first use, kept in first-use order)."""
        kept = self._phases.setdefault(name, [0.0, 0.0, 0])
        kept[0] += wall_s
        kept[1] += cpu_s
        kept[2] += calls

    def costs(self) -> dict[str, PhaseCost]:
        """Return each phase's totals so far."""
        from orchestrator.records import PhaseCost  # deferred: every stage imports this module

        return {name: PhaseCost(w, c, int(n)) for name, (w, c, n) in self._phases.items()}


@contextmanager
def metering() -> Iterator[Meter]:
    """Meter everything marked with ``phase`` and every call ``count_calls`` sees, until the block ends."""
    meter = Meter()
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
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        yield
    finally:
        meter._name = outer
        meter.add(name, time.perf_counter() - wall, time.process_time() - cpu)
        if outer is not None:  # a nested phase's time is not its parent's too
            meter.add(outer, wall - time.perf_counter(), cpu - time.process_time())


def count_calls(calls: int) -> None:
    """Count ``calls`` Ray calls against the current phase (nothing when no meter is open)."""
    meter = _current.get()
    if meter is not None:
        meter.add(meter._name or "other", calls=calls)
