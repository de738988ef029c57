"""What measured capacities per N advise: a step to more N only where capacity rises beyond the brackets.

Each N's capacity lies in its search bracket, from its highest passing rate up to its lowest
failing one. One more N adds capacity only when its highest pass reaches the smaller N's lowest
fail (the brackets do not overlap); it carries less when its lowest fail is at or below the
smaller N's highest pass; otherwise the search cannot tell them apart. Amdahl's law and a line
through the origin only rise with N, so they are fitted (and extrapolated) only over the N up to
where capacity stops rising; the USL, which can bend down, gives the peak N* over every N.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from orchestrator.analysis.capacity import fit_capacity


@dataclass(frozen=True, slots=True)
class ScaleStep:
    """One step from an N to the next one measured, and what it did to capacity."""

    lower_n: int
    upper_n: int
    lower_per_s: float
    """Capacity at ``lower_n`` (its highest passing rate, total per second)."""
    upper_per_s: float
    change: str
    """adds (brackets apart, upper above) | none (brackets overlap) | less (brackets apart, upper below)."""


def scale_steps(ns: Sequence[int], capacities: Sequence[float],
                highs: Sequence[float | None]) -> tuple[ScaleStep, ...]:
    """Return each neighbouring pair of measured N (ascending) with what one more N did to capacity.

    ``capacities`` are the brackets' low ends (highest passes), ``highs`` their high ends (lowest
    fails; None: never failed, so unbounded above).
    """
    points = sorted(zip(ns, capacities, highs))
    steps = []
    for (n0, c0, h0), (n1, c1, h1) in itertools.pairwise(points):
        change = ("adds" if h0 is not None and c1 >= h0 else "less" if h1 is not None and h1 <= c0 else "none")
        steps.append(ScaleStep(n0, n1, c0, c1, change))
    return tuple(steps)


def rising_until(ns: Sequence[int], steps: Sequence[ScaleStep]) -> int:
    """Return the largest N up to which every step added capacity (the smallest N when the first did not)."""
    top = min(ns)
    for step in steps:
        if step.change != "adds":
            break
        top = step.upper_n
    return top


def fitted_peak(ns: Sequence[int], capacities: Sequence[float]) -> float | None:
    """Return the USL's peak N* over every measured N (four or more; κ's CI excluding 0), else None."""
    return fit_capacity(ns, capacities).peak_n if len(set(ns)) >= 4 else None
