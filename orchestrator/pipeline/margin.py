"""How far ahead a round's shared start instant is chosen: sized from measured submit and delivery times.

A round's calls take time to submit (one per worker, or per agent) and to reach their
processes; a worker reached after the instant starts late, and the round's skew shows it.
So the margin is the floor plus a safety factor times the longest of the last few rounds'
submit time plus the lateness of their latest worker, capped by a ceiling (``StartMargin``).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from orchestrator.settings import StartMargin

WINDOW = 8
"""Rounds whose submit and lateness times size the next margin (one slow round does not stay forever)."""


class Margin:
    """The start margin of a trial's rounds, learned from each round (ns)."""

    def __init__(self, settings: StartMargin, first_ns: int = 0) -> None:
        """Start from ``first_ns``: a measured time to submit calls and hear back (an upper bound of delivery)."""
        self._settings = settings
        self._seen: deque[int] = deque([max(0, first_ns)], maxlen=WINDOW)

    def ns(self) -> int:
        """Return the margin for the next round."""
        s = self._settings
        return int(min(s.ceiling_ns, s.floor_ns + s.factor * max(self._seen)))

    def observe(self, submit_ns: int, late_ns: int) -> None:
        """Take one round's submit time and its latest worker's lateness (ns after the shared instant; <= 0: on time)."""
        self._seen.append(max(0, submit_ns) + max(0, late_ns))
