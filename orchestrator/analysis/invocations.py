"""A trial's figure and CI over invocations: fresh sets of worker processes, each with its rounds.

What a process start changes (physical pages, huge pages, ASLR, allocator and JIT state, vCPU
placement) holds for every round of one invocation, so the rounds of different invocations are
not exchangeable (Mytkowicz et al. 2009; Kalibera & Jones 2013). A trial's figure is the median
over invocations of each invocation's figure, the median of its rounds (a round's unit is its
mean over workers). Its CI depends on the invocation count K:

- K = 1: the round statistics of ``stats.summarize`` exactly (bootstrap over rounds, none below
  6 rounds); they leave the between-invocation variation out, and ``interval`` says "rounds".
- K = 2: none. Student t with 1 df is ±12.7 standard errors: nine times the gap between the two
  figures, resting wholly on the normal tails of one difference.
- 3 <= K < 6: Student t on the log figures, K − 1 df (parametric: normal log figures); below 6
  units no resampling interval covers (the bootstrap below covered 0.80 at K = 3, 0.90 at 4).
- K >= 6 (`min_units_for_ci`, the round rule: 8 at 99%): the bootstrap over invocations
  (Davison & Hinkley 1997, §3.8, Strategy 1: resample the top level, keep what is below it;
  so too Ren et al. 2010), each figure's distance from the median scaled by sqrt(K/(K−1)) so
  the resampled figures have the unbiased variance rather than (K−1)/K of it.

The rounds are not resampled again below an invocation: its figure already carries their
variation, and the two-stage bootstrap that does (Strategy 2) covered 0.99 where invocations do
not differ, and with the excess shrunk away, 0.90 at K = 20 where rounds dominate (a median of
resampled rounds ties the original one often). In simulation (invocation sd 3%, 1% or 0; round
sd 1%): t 0.95 at K = 3-10, the scaled bootstrap 0.94-0.95 at K = 6-20 (tests/
test_coverage_invocations.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from orchestrator.analysis.stats import bootstrap_median_ci, min_units_for_ci, summarize

MIN_INVOCATIONS_FOR_CI = 3
"""Invocations (K >= 2) below which a trial states no CI: Student t needs 2 df to be usable."""

TrialInterval = Literal["rounds", "t", "bootstrap", "none"]
"""Which CI a trial states: over rounds (K = 1), Student t or bootstrap over invocations, none."""


@dataclass(frozen=True, slots=True)
class InvocationSummary:
    """A trial's figure over its invocations, in the unit of the rounds, and its CI."""

    invocations: int
    """Invocations (K): fresh sets of worker processes, each measured over its own rounds."""
    rounds: int
    """Rounds over all invocations."""
    median: float
    """Median over invocations of each invocation's median of rounds (the trial's figure)."""
    ci_low: float | None
    """Lower bound of the CI of the figure; None when `interval` is "none"."""
    ci_high: float | None
    """Upper bound of the CI of the figure; None when `interval` is "none"."""
    interval: TrialInterval
    """"rounds" (K = 1: leaves the between-invocation variation out), "t" (3 <= K < 6),
    "bootstrap" (K >= 6 at 95%) or "none" (K = 2, or K = 1 below 6 rounds)."""
    figures: tuple[float, ...]
    """Each invocation's figure (median of its rounds), in input order."""


def as_invocations(invocations: Sequence[Sequence[float] | np.ndarray],
                   name: str = "invocations") -> list[np.ndarray]:
    """Return each invocation's round units as a finite 1-D float array; raise ValueError if none."""
    out = [np.asarray(x, dtype=float) for x in invocations]
    if not out:
        raise ValueError(f"{name} is empty; at least one invocation is needed")
    for i, x in enumerate(out):
        if x.ndim != 1 or x.size == 0:
            raise ValueError(f"{name}[{i}] must be a non-empty 1-D array of per-round units "
                             f"(means over workers), got shape {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError(f"{name}[{i}] contains NaN or infinite values; drop incomplete rounds")
    return out


def scale_spread(figures: np.ndarray) -> np.ndarray:
    """Return the figures moved from their median by sqrt(K/(K−1)) along the last axis (K >= 2).

    Resampling K values draws from a spread of (K−1)/K of their unbiased variance; scaled, the
    resampled values have all of it. The median is unchanged.
    """
    x = np.asarray(figures, dtype=float)
    k = x.shape[-1]
    center = np.median(x, axis=-1, keepdims=True)
    return center + math.sqrt(k / (k - 1)) * (x - center)


def t_interval(figures: np.ndarray, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Return the Student t CI of the figures' center along the last axis (K − 1 df).

    On the log scale (a geometric interval) where every figure of a row is positive, else on
    the values; widened to contain the row's median ((median, median) when all are equal);
    vectorized over leading axes.
    """
    import scipy.stats  # here, not at import: scipy costs ~1 s before the first sample
    x = np.asarray(figures, dtype=float)
    k = x.shape[-1]
    if k < 2:
        raise ValueError(f"a t interval needs at least 2 figures, got {k}")
    positive = np.all(x > 0.0, axis=-1, keepdims=True)
    y = np.where(positive, np.log(np.where(positive, x, 1.0)), x)
    center = y.mean(axis=-1, keepdims=True)
    half = (scipy.stats.t.ppf(0.5 + confidence / 2.0, k - 1)
            * y.std(axis=-1, ddof=1, keepdims=True) / math.sqrt(k))
    low = np.where(positive, np.exp(center - half), center - half)
    high = np.where(positive, np.exp(center + half), center + half)
    median = np.median(x, axis=-1, keepdims=True)
    low, high = np.where(half > 0, low, median), np.where(half > 0, high, median)
    return np.minimum(low, median)[..., 0], np.maximum(high, median)[..., 0]


def invocation_ci(figures: np.ndarray, *, confidence: float = 0.95,
                  seed: int = 0) -> tuple[np.ndarray, np.ndarray, TrialInterval]:
    """Return the CI of the median of K >= 3 figures along the last axis, and which one it is.

    Student t below min_units_for_ci(confidence) figures, the scaled bootstrap from there
    (module docstring); vectorized over leading axes, rows as `summarize_invocations` reports.
    """
    x = np.asarray(figures, dtype=float)
    k = x.shape[-1]
    if k < MIN_INVOCATIONS_FOR_CI:
        raise ValueError(f"a CI over invocations needs at least {MIN_INVOCATIONS_FOR_CI}, got {k}")
    if k < min_units_for_ci(confidence):
        low, high = t_interval(x, confidence)
        return low, high, "t"
    low, high = bootstrap_median_ci(scale_spread(x), confidence=confidence, seed=seed)
    return low, high, "bootstrap"


def summarize_invocations(
    invocations: Sequence[Sequence[float] | np.ndarray], *, confidence: float = 0.95,
    seed: int = 0,
) -> InvocationSummary:
    """Summarize one metric of one trial from its per-round units grouped by invocation.

    The figure is the median of the invocations' medians of rounds; the CI follows the module
    docstring (rounds at K = 1, none at K = 2, Student t at 3-5 invocations, the bootstrap over
    invocations from 6). With one invocation the median and CI are those of
    ``stats.summarize_rounds(...).per_worker`` on the same rounds and seed.

    Args:
        invocations: one 1-D array per invocation: its per-round units (means over workers).
        confidence: confidence level of the CI, in (0, 1).
        seed: seed of the bootstrap (results are reproducible).

    Raises:
        ValueError: no invocation, an empty or non-1-D one, non-finite values, or a confidence
            outside (0, 1).
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    runs = as_invocations(invocations)
    figures = np.array([np.median(x) for x in runs])
    low: float | None = None
    high: float | None = None
    interval: TrialInterval = "none"
    if len(runs) == 1:
        s = summarize(runs[0], confidence=confidence, seed=seed)
        if s.ci_low is not None:
            low, high, interval = s.ci_low, s.ci_high, "rounds"
    elif len(runs) >= MIN_INVOCATIONS_FOR_CI:
        lo, hi, interval = invocation_ci(figures, confidence=confidence, seed=seed)
        low, high = float(lo), float(hi)
    return InvocationSummary(
        invocations=len(runs),
        rounds=sum(x.size for x in runs),
        median=float(np.median(figures)),
        ci_low=low,
        ci_high=high,
        interval=interval,
        figures=tuple(float(v) for v in figures),
    )
