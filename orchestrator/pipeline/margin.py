"""How far ahead a batch of rounds' first instant is chosen: sized from measured submit and delivery times.

A batch's calls take time to submit (one per agent) and to reach their workers; a worker
reached after the first instant starts late, and that round is re-run (``pipeline.rounds``).
So the margin is the floor plus a safety factor times the longest time the last few batches
took to reach their last worker (from choosing the instant to that call's arrival, on the
driver's clock), capped by a ceiling (``StartMargin``). Waking up once reached is the
machine's part and is not the margin's to cover.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from orchestrator.settings import StartMargin

WINDOW = 8
"""Batches whose submit and delivery times size the next margin (one slow batch does not stay forever)."""


class Margin:
    """The start margin of a run's batches of rounds, learned from each batch (ns)."""

    def __init__(self, settings: StartMargin) -> None:
        self._settings = settings
        self._seen: deque[tuple[int, int]] = deque(maxlen=WINDOW)  # (reach ns, calls)

    def ns(self, calls: int) -> int:
        """Return the margin for a round of ``calls`` calls (the floor until a round was seen)."""
        s = self._settings
        reach = max((max(r, r * calls // n) for r, n in self._seen), default=0)  # a bigger round takes longer
        return int(min(s.ceiling_ns, s.floor_ns + s.factor * reach))

    def observe(self, reach_ns: int, calls: int) -> None:
        """Take how long a round of ``calls`` calls took from choosing its instant until its last call arrived."""
        self._seen.append((max(0, reach_ns), max(1, calls)))
