"""The --until-stable rule: stop once the median is known well enough, at a level kept over looks.

Looking after every batch and stopping as soon as a 95% CI happens to be narrow is optional
stopping: the reported interval then covers less than 95% (0.91-0.92 from 10 rounds, 0.76
from 3). This rule reports repeated confidence intervals instead (Jennison & Turnbull 1989):
intervals that cover the median at every look at once with probability >= `confidence`, so the
one reported at whatever look the run stops, as stable or at --max-time, keeps that level.

Each look's interval is an order-statistic interval [x_(r+1), x_(n−r)] of the median. It misses
exactly when C_n, the count of rounds below the median, is <= r or >= n − r. For a continuous
distribution C_n is a random walk with Bernoulli(1/2) steps (for any other, writing the values
as F⁻¹ of uniforms shows the intervals cover at least as often), so the chance that some look
so far missed is computed exactly, by convolving the walk from look to look. Error spending
(Lan & DeMets 1983) picks each look's r: the narrowest interval that keeps that chance within
alpha·k/(k+2) by look k (alpha = 1 − confidence), which tends to alpha however many looks
follow; budget a look cannot use (too few rounds for any interval) stays for later ones. A
look stops when its half-width is at most rel_ci × |median|. The shape k/(k+2) needed the
fewest rounds, over 3% and 6% noise from 3 and 10 rounds on the runner's schedule, of those
tried (2^-k, k/(k+1), k/(k+3), …); all keep the level (tests/test_coverage.py).

The level holds when the looks' round counts do not depend on the values: true of the runner's
schedule (first --repetitions rounds, then half the rounds so far each time, `look_schedule`)
except that its last batch is shortened to fit --max-time, which depends on the values through
measured time; a simulation of exactly that keeps the level too.
"""

from __future__ import annotations

import functools
import importlib
import itertools
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

_FFT_FROM = 1_000_000
"""Convolve by FFT from this many multiply-adds on (np.convolve is exact and faster below)."""


@dataclass(frozen=True, slots=True)
class Look:
    """What one look at the rounds so far decided, and the interval to report if it is the last."""

    stop: bool
    """True when the interval's half-width is at most rel_ci × |median|."""
    n: int
    """Units (rounds) looked at."""
    median: float
    """Median of the units, in their unit."""
    ci_low: float | None
    """Lower bound of this look's interval; None while n is too small for any at this look."""
    ci_high: float | None
    """Upper bound of this look's interval; None while n is too small for any at this look."""
    level: float | None
    """Coverage of this interval taken alone at fixed n, 1 − 2·P(Bin(n, 1/2) <= r); None with it."""
    confidence: float
    """Coverage of the interval of whichever look the run stops at (e.g. 0.95): store this."""


def preload() -> None:
    """Start importing scipy.stats in a thread of its own, for a rule that will look soon.

    The first look needs it: imported there, it took about 0.75 s of the trial's --max-time
    between two batches of rounds; started before the workers prepare, it overlaps the
    driver's wait for them. A run without --until-stable never looks, nor imports it.
    """
    threading.Thread(target=importlib.import_module, args=("scipy.stats",), name="topobench-scipy",
                     daemon=True).start()


def _convolve(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Return the convolution of two probability vectors (FFT for large ones, clipped at 0)."""
    import scipy.signal  # here, not at import: scipy costs ~1 s before the first sample
    if p.size * q.size < _FFT_FROM:
        return np.convolve(p, q)
    return np.clip(scipy.signal.fftconvolve(p, q), 0.0, None)


def _spent(look_index: int, alpha: float) -> float:
    """Return the error that looks 1..k may spend together: alpha·k/(k+2)."""
    return alpha * look_index / (look_index + 2)


@functools.lru_cache(maxsize=128)
def _ranks(looks: tuple[int, ...], alpha: float) -> tuple[int | None, ...]:
    """Return per look the r of its interval [x_(r+1), x_(n−r)]; None where none fits the budget."""
    import scipy.stats  # here, not at import: scipy costs ~1 s before the first sample
    walk = np.ones(1)  # P(C_n = c, no interval missed so far), c = 0..n
    done, missed = 0, 0.0
    out: list[int | None] = []
    for k, n in enumerate(looks, 1):
        walk = _convolve(walk, scipy.stats.binom.pmf(np.arange(n - done + 1), n - done, 0.5))
        done = n
        half = (n + 1) // 2  # r <= (n − 1) // 2 keeps the two tails apart
        tails = np.cumsum(walk)[:half] + np.cumsum(walk[::-1])[:half]
        fits = np.flatnonzero(tails <= _spent(k, alpha) - missed)
        r = int(fits[-1]) if fits.size and fits[0] == 0 else None
        if r is not None:
            missed += float(tails[r])
            walk[: r + 1] = 0.0
            walk[n - r:] = 0.0
        out.append(r)
    return tuple(out)


@functools.lru_cache(maxsize=256)
def _level(n: int, r: int) -> float:
    """Return the fixed-n coverage 1 − 2·P(Bin(n, 1/2) <= r) of [x_(r+1), x_(n−r)]."""
    import scipy.stats  # here, not at import: scipy costs ~1 s before the first sample
    return 1.0 - 2.0 * float(scipy.stats.binom.cdf(r, n, 0.5))


def _check_looks(looks_before: Sequence[int], n: int) -> tuple[int, ...]:
    """Return the looks' round counts with this one; raise ValueError unless strictly increasing."""
    looks = (*(int(v) for v in looks_before), n)
    if looks[0] < 1 or any(b <= a for a, b in itertools.pairwise(looks)):
        raise ValueError(f"round counts at the looks must increase from 1, got {looks}")
    return looks


@dataclass(frozen=True, slots=True)
class StoppingRule:
    """Stop when the median's interval half-width is within rel_ci of it, level kept over looks."""

    rel_ci: float
    """Target interval half-width as a fraction of |median| (0.02 = 2%)."""
    confidence: float = 0.95
    """Coverage of the reported interval under the stopping, in (0, 1)."""

    def __post_init__(self) -> None:
        if not 0.0 < self.rel_ci < 1.0 or math.isnan(self.rel_ci):
            raise ValueError(f"rel_ci must be in (0, 1), got {self.rel_ci!r}")
        if not 0.0 < self.confidence < 1.0:
            raise ValueError(f"confidence must be in (0, 1), got {self.confidence!r}")

    def look(self, values_per_round: np.ndarray, looks_before: Sequence[int] = ()) -> Look:
        """Judge the rounds so far, given the round counts of the earlier looks of this trial.

        Args:
            values_per_round: one value per round so far (shape (rounds,), e.g. the per-round
                mean over workers of the primary throughput) or rounds x workers (averaged).
            looks_before: the round counts at this trial's earlier looks, in order (() at the
                first look); every look must be passed on, stopping or not.

        Returns:
            The decision and the interval to store if the run stops here, as stable or for
            --max-time; its coverage under the stopping is `confidence`.

        Raises:
            ValueError: no rounds, non-finite values, or looks_before not increasing below n.
        """
        x = np.asarray(values_per_round, dtype=float)
        units = x.mean(axis=1) if x.ndim == 2 else x.ravel()
        if units.size == 0 or not np.all(np.isfinite(units)):
            raise ValueError("values_per_round must be a non-empty array of finite values")
        looks = _check_looks(looks_before, int(units.size))
        r = _ranks(looks, 1.0 - self.confidence)[-1]
        xs = np.sort(units)
        n = int(xs.size)
        median = float(0.5 * (xs[(n - 1) // 2] + xs[n // 2]))
        if r is None:
            return Look(False, n, median, None, None, None, self.confidence)
        low, high = float(xs[r]), float(xs[n - 1 - r])
        stop = (high - low) / 2.0 <= self.rel_ci * abs(median)
        return Look(stop, n, median, low, high, _level(n, r), self.confidence)


def look_schedule(first: int, cap: int) -> tuple[int, ...]:
    """Return the runner's round counts at its looks: first, then + ceil(half) each, up to cap.

    Models --max-time as a cap on rounds (the last look is at `cap`); () when cap < first.
    """
    if first < 1:
        raise ValueError(f"first must be at least 1 round, got {first}")
    out: list[int] = []
    done = first
    while done <= cap:
        out.append(done)
        if done == cap:
            break
        done = min(cap, done + math.ceil(done / 2))
    return tuple(out)
