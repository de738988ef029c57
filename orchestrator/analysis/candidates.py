"""Where a series may have changed: the detector's steps, widened where they sit in a ramp, and the
gradual changes it leaves inside a segment.

The detector (``changepoints``) models steps. A ramp, or steps too close together to tell apart,
leave residuals it reads as serial dependence, so it may report nothing there, or one step in
the middle of a ramp. So a step with ``RAMP_POINTS`` or more points trending between its two
levels becomes one gradual change spanning the ramp, and each segment it leaves whole is also
compared end to end (``_drift``). Each candidate carries what confirming it needs: the points
on either side, the places it was chosen among (a Bonferroni factor) and the serial dependence
it is tested under. Pure over a series' point values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from orchestrator.analysis.series import Series
from orchestrator.settings import HistorySettings

if TYPE_CHECKING:  # imported where used: scipy loads with the detector, and a memoized history needs neither
    from orchestrator.analysis.changepoints import ChangePoint

RAMP_POINTS = 5
"""Fewest points between two levels that make a ramp: from 5 a trend among them can be significant
(Kendall's tau, p < 0.05); fewer is a step for bisecting."""



@dataclass(frozen=True, slots=True)
class Candidate:
    """A possible change and how to confirm it: the points compared, the scan it came from."""

    cp: ChangePoint
    before: range
    """Point indices confirmed before it."""
    after: range
    good_index: int
    """The last-good point."""
    splits: int
    """How many places the candidate was chosen among (Bonferroni factor of its p-value)."""
    rho: float
    """Lag-1 autocorrelation of the noise it is tested under."""
    gradual: bool = False


def step_candidate(cp: ChangePoint, rho: float, settings: HistorySettings) -> Candidate:
    """Return a detector change point as a candidate: the nearest ``confirm_points`` of each side."""
    limit = settings.confirm_points
    return Candidate(cp, range(max(cp.start, cp.index - limit), cp.index), range(cp.index, min(cp.end, cp.index + limit)),
                     cp.index - 1, max(1, cp.end - cp.start - 2 * settings.min_size + 1), rho)


def _refined(values: np.ndarray, cp: ChangePoint, rho: float, settings: HistorySettings) -> Candidate:
    """Return a detector change point as a candidate; a ramp it sits in (``RAMP_POINTS`` or more
    points between the two levels that trend on their own) becomes one gradual change from where
    the ramp starts to where it ends.
    """
    step = step_candidate(cp, rho, settings)
    k = min(settings.confirm_points, max(settings.min_size, (cp.end - cp.start) // 4))
    good, bad = _transition(values, cp.start, cp.end, k, settings.min_size)
    sign = 1.0 if cp.median_after > cp.median_before else -1.0
    if not good < cp.index <= bad or bad - good - 1 < RAMP_POINTS or not trends(values[good + 1:bad], sign):
        return step
    limit = settings.confirm_points
    return Candidate(replace(cp, index=bad), range(max(cp.start, good + 1 - limit), good + 1),
                      range(bad, min(cp.end, bad + limit)), good, step.splits, rho, gradual=True)


def _lag1(windows: Sequence[np.ndarray]) -> float:
    """Return the lag-1 autocorrelation (≥ 0) of values about their window's median, pairs within windows."""
    resid = [w - np.median(w) for w in windows if len(w) > 1]
    den = sum(float(np.dot(r, r)) for r in resid)
    num = sum(float(np.dot(r[1:], r[:-1])) for r in resid)
    return min(max(num / den, 0.0), 0.99) if den > 0 else 0.0


def _transition(values: np.ndarray, start: int, end: int, k: int, smooth: int) -> tuple[int, int]:
    """Return (last-good, first-bad) of a gradual change in values[start:end] between its first and
    last k points: where the running median leaves the first level (under 10% of the way) and
    where it reaches the last (over 90%).
    """
    v = values[start:end]
    low, high = float(np.median(v[:k])), float(np.median(v[-k:]))
    half = smooth // 2
    padded = np.pad(v, half, mode="edge")
    running = np.median(np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1), axis=1)
    progress = (running - low) / (high - low)
    reached = np.flatnonzero(progress >= 0.5)
    middle = int(reached[0]) if reached.size else len(v) // 2
    good = middle - 1
    while good > 0 and progress[good] > 0.1:
        good -= 1
    bad = middle
    while bad < len(v) - 1 and progress[bad] < 0.9:
        bad += 1
    return start + max(good, 0), start + max(bad, good + 1)


def _drift(values: np.ndarray, start: int, end: int, scale: float, settings: HistorySettings) -> Candidate | None:
    """Return a gradual change within one of the detector's segments, or None.

    The detector models steps: a ramp, or steps too close to tell apart, leave residuals it reads
    as serial dependence, and it may report nothing. So within each segment long enough, its first
    and last k points (k: a quarter of it, at least min_size, at most confirm_points) are compared
    by rank; below the detector's level, the change is a candidate, tested under the lag-1
    autocorrelation of those windows alone (flat where the change is a ramp; a drift is not).
    """
    length = end - start
    k = min(settings.confirm_points, max(settings.min_size, length // 4))
    if length < 2 * k + 1 or np.ptp(values[start:end]) == 0:
        return None
    first, last = values[start:start + k], values[end - k:end]
    rho = _lag1([first, last])
    z = abs(_rank_sum_z(first, last)) / math.sqrt((1 + rho) / (1 - rho))
    p = math.erfc(z / math.sqrt(2))
    if p >= settings.detect_alpha:
        return None
    from orchestrator.analysis.changepoints import ChangePoint

    good, bad = _transition(values, start, end, k, settings.min_size)
    before, after = float(np.median(first)), float(np.median(last))
    sign = 1.0 if after > before else -1.0
    cp = ChangePoint(index=bad, start=start, end=end, median_before=before, median_after=after,
                     mean_before=float(first.mean()), mean_after=float(last.mean()),
                     relative_change=None if before == 0 else after / before - 1,
                     effect_size=(after - before) / scale if scale > 0 else sign * math.inf,
                     z=sign * z, p_value=p, energy=math.nan)
    return Candidate(cp, range(start, start + k), range(end - k, end), good, 1, rho, gradual=True)


@dataclass(frozen=True, slots=True)
class Noise:
    """The detector's noise model of a series: robust scale and lag-1 autocorrelation."""

    scale: float
    autocorrelation: float


def candidates(series: Series, settings: HistorySettings) -> tuple[list[Candidate], Noise]:
    """Return a series' candidates (the detector's steps, then gradual changes between them) and the
    detector's noise model.
    """
    from orchestrator.analysis.changepoints import detect_change_points

    values = np.array([p.value for p in series.points])
    samples = [np.asarray(p.figures) for p in series.points]
    result = detect_change_points(values, samples, alpha=settings.detect_alpha, min_size=settings.min_size)
    steps = [_refined(values, cp, result.autocorrelation, settings) for cp in result.change_points]
    # Between the changes found (and their ramps): where a gradual change may still hide.
    bounds = [0, *(b for c in steps for b in (c.good_index + 1, c.cp.index)), len(values)]
    drifts = [_drift(values, a, b, result.noise_scale, settings) for a, b in zip(bounds[::2], bounds[1::2])]
    found = steps + [d for d in drifts if d is not None]
    return sorted(found, key=lambda c: c.cp.index), Noise(result.noise_scale, result.autocorrelation)


def _rank_sum_z(before: np.ndarray, after: np.ndarray) -> float:
    """Return the Mann-Whitney z of ``after`` against ``before`` (normal approximation, ties corrected)."""
    x = np.concatenate([before, after])
    order = np.argsort(x, kind="stable")
    s = x[order]
    first = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    sizes = np.diff(np.r_[first, len(x)])
    ranks = np.empty(len(x))
    ranks[order] = np.repeat(first + (sizes + 1) / 2, sizes)
    a, b, n = len(before), len(after), len(x)
    u = ranks[a:].sum() - b * (b + 1) / 2
    var = a * b / 12 * ((n + 1) - float(np.sum(sizes.astype(float) ** 3 - sizes)) / (n * (n - 1)))
    return 0.0 if var <= 0 else float((u - a * b / 2) / math.sqrt(var))


def trends(values: np.ndarray, sign: float) -> bool:
    """Return whether values rise (sign > 0) or fall along their order: Kendall's S, normal approximation,
    p < 0.05 (Kendall 1938).
    """
    n = len(values)
    if n < 3 or np.ptp(values) == 0:
        return False
    s = float(np.sign(values[None, :] - values[:, None])[np.triu_indices(n, 1)].sum())
    z = s / math.sqrt(n * (n - 1) * (2 * n + 5) / 18)
    return bool(math.erfc(abs(z) / math.sqrt(2)) < 0.05 and np.sign(z) == sign)
