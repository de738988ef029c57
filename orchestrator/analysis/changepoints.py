"""Change points of one benchmark series: where its level shifted, and the evidence for each.

A detector and nothing more: it never says "regression" (no threshold, no direction, no
acknowledgement, no formatting); the caller decides what a change means.

Method, over the per-point robust estimates (one per commit):

1. Candidates: the e-divisive split (Matteson & James 2014), the one maximizing the energy
   statistic Q̂ (exponent 1) between the points before and after it, is taken in every interval
   of a seeded multi-scale set (lengths n, n/2, n/4, … down to 2·min_size, each level
   overlapping by half: Kovács et al. 2023). The intervals stand in for e-divisive's search over
   the right end κ and for Hunter's sliding window, so a short excursion that reverts (a
   regression fixed a few commits later) is seen at its own scale; segments left between the
   change points so found are bisected again. Q̂ is computed on despiked values (a Hampel filter
   replaces a point lying 3 noise sd off its running median), so one wild point cannot pull a
   split; both sides keep at least ``min_size`` points, so a lone outlier is never a segment.
2. Each split is tested with the Mann-Whitney rank-sum z of its two sides (Mann & Whitney 1947,
   ties corrected): the t-test of Otava/Hunter (Daly et al. 2020; Fleming et al. 2023) assumes
   normal noise, ranks tolerate heavy tails and outliers.
3. The split was placed where the difference is largest, so the two-sided p-value is corrected
   for the scan over the interval's admissible splits: the smaller of Bonferroni over them and
   the tail of the maximum of a standardized Brownian bridge (James, James & Siegmund 1987).
4. Split, then merge (Fleming et al. 2023, as in Otava): candidates with p < 10·alpha are taken
   most significant first, skipping any whose interval already holds a change point (weak change
   points); then the weakest change point is dropped and its neighbours retested on their new
   adjacent segments until every one left has p < alpha. Two close steps in one direction stay
   two change points, for the caller to group.
5. Serial dependence, in the merge: z is divided by √((1+ρ)/(1−ρ)), the variance inflation of a
   mean under AR(1) noise (Zwiers & von Storch 1995), ρ ≥ 0 being the lag-1 autocorrelation of
   the clipped residuals about each segment's median. A drift, a trend or a cycle is then not
   read as a staircase of steps (exchangeability, which a permutation test needs, fails there
   too). On 10-30 points ρ is poorly estimated, which costs power there.
6. Each change point left is moved (by up to min_size) to the best two-segment L1 fit between
   its neighbours, the cost asv's step fit minimizes: e-divisive's split leans toward the middle
   of its interval.

Ranks bound the evidence of a few points: at the defaults even a noiseless step is reported
only once about 9 points lie on each side of it.

The p-value stays optimistic: the location and the segment ends were chosen from the data.
Simulated (seeded), a series of independent noise gets any change point in ≤ 0.3% of series of
50-200 points and 1-5% of 1,000 points (heavy tails, 5% outliers); AR(1) noise with ρ 0.5-0.8,
≤ 2% from 20 points on.
No permutations, so the result is deterministic. NaN or infinite values are refused.

Sources: D. S. Matteson & N. A. James, "A nonparametric approach for multiple change point
analysis of multivariate data", JASA 109 (2014); D. Daly et al., "Change point detection in
software performance testing", ICPE 2020; M. Fleming et al., "Hunter: using change point
detection to hunt for performance regressions", ICPE 2023; S. Kovács, H. Li, P. Bühlmann &
A. Munk, "Seeded binary segmentation", Biometrika 110 (2023); F. W. Zwiers & H. von Storch,
"Taking serial correlation into account in tests of the mean", J. Climate 8 (1995); B. James,
K. L. James & D. Siegmund, "Tests for a change-point", Biometrika 74 (1987); R. K. Pearson,
"Outliers in process modeling and identification", IEEE TCST 10 (2002) (Hampel filter); asv's
step_detect.py (its L1 step cost, and steps found apart from what counts as a regression).
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import erfc

DEFAULT_ALPHA = 0.005
"""Significance level of each change point's scan-corrected p-value."""

DEFAULT_MIN_SIZE = 5
"""Fewest points a segment may hold: a change needs this many points on each side."""

WEAK_FACTOR = 10.0
"""Candidates are kept while p < WEAK_FACTOR·alpha; the merge then holds them to alpha (Hunter)."""

_CLIP = 2.0
"""Residuals are clipped at this many noise scales before their autocorrelation is taken."""

_RHO_MAX = 0.99
"""Cap of the lag-1 autocorrelation (the inflation factor stays finite, at 199)."""

_BATCH_LENGTH = 128
"""Intervals up to this length are scored together through their m×m rank distances."""

_BATCH_CELLS = 1_000_000
"""Rank distances held per batch (bounds memory to ~8 MB per array)."""

_MAD_TO_SIGMA = 1.4826
_MEAN_ABS_TO_SIGMA = 1.2533


@dataclass(frozen=True, slots=True)
class ChangePoint:
    """One change: the segment before [start, index) against the segment after [index, end)."""

    index: int
    """0-based index of the first point after the change."""
    start: int
    """First index of the segment before (the previous change point, or 0)."""
    end: int
    """One past the last index of the segment after (the next change point, or n)."""
    median_before: float
    median_after: float
    mean_before: float
    mean_after: float
    relative_change: float | None
    """median_after / median_before − 1; None when median_before is 0."""
    effect_size: float
    """(median_after − median_before) / noise_scale: the shift in noise standard deviations."""
    z: float
    """Mann-Whitney z of after against before, divided by the dependence inflation (signed)."""
    p_value: float
    """Two-sided, scan-corrected; optimistic: the location and segment ends were chosen."""
    energy: float
    """e-divisive Q̂ of the split over [start, end), on despiked values (Matteson & James 2014)."""
    samples_median_before: float | None = None
    """Median of the raw samples pooled over the points before; None without samples."""
    samples_median_after: float | None = None
    samples_before: int = 0
    """Raw samples pooled before (0 without samples)."""
    samples_after: int = 0


@dataclass(frozen=True, slots=True)
class ChangePoints:
    """The change points of one series, in index order, with the noise model that tested them."""

    change_points: tuple[ChangePoint, ...]
    n: int
    """Points in the series."""
    noise_scale: float
    """Robust standard deviation (1.4826·MAD) of the residuals about each segment's median."""
    autocorrelation: float
    """Lag-1 autocorrelation ρ of the clipped residuals (≥ 0) that deflated every z."""
    alpha: float
    min_size: int

    @property
    def indices(self) -> tuple[int, ...]:
        """Return the index of the first point after each change."""
        return tuple(c.index for c in self.change_points)


def detect_change_points(values: ArrayLike, samples: Sequence[ArrayLike] | None = None, *,
                         alpha: float = DEFAULT_ALPHA,
                         min_size: int = DEFAULT_MIN_SIZE) -> ChangePoints:
    """Find the change points of a series of per-point estimates (none below 2·min_size points).

    Args:
        values: one robust estimate per point (commit), in order; NaN or inf raises ValueError.
        samples: optionally, per point, the raw samples behind its estimate (rounds, runs); they
            add the pooled raw medians before and after each change, never move a change point.
        alpha: significance level of the scan-corrected p-value of each change point.
        min_size: fewest points on each side of a change (at least 2).

    Returns:
        The change points in index order with their statistics and the noise model.
    """
    x = _as_series(values)
    pooled = _as_samples(samples, len(x))
    _check_settings(alpha, min_size)
    cps: list[int] = []
    f = x
    if len(x) >= 2 * min_size and np.ptp(x) > 0:
        f = _despiked(x, min_size)
        cps = _merge(x, _select(x, f, WEAK_FACTOR * alpha, min_size), alpha, min_size)
        cps = _refine(x, cps, min_size)
    scale, rho = _Residuals(x, cps).model() if len(x) > 1 else (0.0, 0.0)
    points = tuple(_describe(x, f, pooled, cps, i, scale, rho, min_size)
                   for i in range(len(cps)))
    return ChangePoints(points, len(x), scale, rho, alpha, min_size)


# --- input --------------------------------------------------------------------------------


def _as_series(values: ArrayLike) -> np.ndarray:
    """Return values as a finite 1-D float array; raise ValueError naming the first bad point."""
    x = np.asarray(values, dtype=float)
    if x.ndim != 1:
        raise ValueError(f"values must be 1-D (one estimate per point), got shape {x.shape}")
    bad = np.flatnonzero(~np.isfinite(x))
    if bad.size:
        raise ValueError(f"values[{bad[0]}] is {x[bad[0]]}: drop or fill missing points before "
                         f"detecting ({bad.size} not finite)")
    return x


def _as_samples(samples: Sequence[ArrayLike] | None, n: int) -> tuple[np.ndarray, ...] | None:
    """Return one finite 1-D array per point (empty allowed), or None without samples."""
    if samples is None:
        return None
    if len(samples) != n:
        raise ValueError(f"samples has {len(samples)} entries for {n} values (one per point)")
    out = tuple(np.asarray(s, dtype=float).ravel() for s in samples)
    for i, s in enumerate(out):
        if not np.all(np.isfinite(s)):
            raise ValueError(f"samples[{i}] holds a value that is not finite: drop it first")
    return out


def _check_settings(alpha: float, min_size: int) -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    if isinstance(min_size, bool) or not isinstance(min_size, int) or min_size < 2:
        raise ValueError(f"min_size must be an integer >= 2 (one point is an outlier, not a "
                         f"segment), got {min_size!r}")


# --- ranks and the energy statistic -------------------------------------------------------


def _ranks(v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (average ranks from 1, stable sort order, tie-group sizes) of v."""
    order = np.argsort(v, kind="stable")
    s = v[order]
    first = np.flatnonzero(np.concatenate(([True], s[1:] != s[:-1])))
    sizes = np.diff(np.concatenate((first, [len(v)])))
    ranks = np.empty(len(v))
    ranks[order] = np.repeat(first + (sizes + 1) / 2, sizes)
    return ranks, order, sizes


def energy_profile(segment: np.ndarray, min_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the admissible splits of a segment and Q̂ of each.

    Q̂(τ) = ab/(a+b)·[2/(ab)·Σ|xᵢ−yⱼ| − Σ|xᵢ−xₖ|/C(a,2) − Σ|yⱼ−yₖ|/C(b,2)] with a = τ,
    b = m − τ (Matteson & James 2014, eq. 3 and 5, exponent 1); empty when m < 2·min_size.
    Costs O(m log² m) time and O(m) memory.
    """
    m = len(segment)
    taus = np.arange(min_size, m - min_size + 1)
    if taus.size == 0:
        return taus, np.empty(0)
    r = np.asarray(segment, dtype=float)
    order = np.argsort(r, kind="stable")
    rank_of = np.empty(m, dtype=np.int64)
    rank_of[order] = np.arange(m)
    return taus, _qhat(_distance_to_all(r, order), _distance_to_earlier(r, rank_of), taus)


def _qhat(to_all: np.ndarray, to_earlier: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """Return Q̂ at taus (last axis) from each point's distance sums to all and to earlier points."""
    m = to_all.shape[-1]
    zero = np.zeros(to_all.shape[:-1] + (1,))
    within_left = np.concatenate((zero, np.cumsum(to_earlier, axis=-1)), axis=-1)[..., taus]
    cum_all = np.concatenate((zero, np.cumsum(to_all, axis=-1)), axis=-1)[..., taus]
    between = cum_all - 2 * within_left
    within_right = to_all.sum(axis=-1, keepdims=True) / 2 - within_left - between
    a = taus.astype(float)
    b = m - a
    e = 2 * between / (a * b) - within_left / (a * (a - 1) / 2) - within_right / (b * (b - 1) / 2)
    return a * b / (a + b) * e


def _distance_to_all(r: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Return Σⱼ|rᵢ − rⱼ| for every i, from the sorted values' prefix sums."""
    m = len(r)
    s = r[order]
    below = np.concatenate(([0.0], np.cumsum(s)))
    k = np.arange(m)
    out = np.empty(m)
    out[order] = s * k - below[:-1] + (below[-1] - below[1:]) - s * (m - 1 - k)
    return out


def _distance_to_earlier(r: np.ndarray, rank_of: np.ndarray) -> np.ndarray:
    """Return Σ_{j<i}|rᵢ − rⱼ| for every i in O(m log² m).

    With c = #{j<i: rⱼ ranked lower} and s their sum, the distance is rᵢc − s + (P − s) − rᵢ(i − c),
    P being the sum of all earlier values (ties add 0 however they are ranked). c and s are
    dominance counts: per bit level, points sharing the higher bits of their rank are grouped in
    time order, and each point with the bit set collects the earlier points of its group without.
    """
    m = len(r)
    count = np.zeros(m)
    total = np.zeros(m)
    time = np.arange(m, dtype=np.int64)
    for level in range(max(1, (m - 1).bit_length())):
        group = rank_of >> (level + 1)
        order = np.argsort(group * m + time)
        low = ((rank_of[order] >> level) & 1) == 0
        low_values = np.where(low, r[order], 0.0)
        lows = np.cumsum(low) - low
        low_sums = np.cumsum(low_values) - low_values
        g = group[order]
        first = np.flatnonzero(np.concatenate(([True], g[1:] != g[:-1])))
        head = np.repeat(first, np.diff(np.concatenate((first, [m]))))
        high = ~low
        count[order[high]] += (lows - lows[head])[high]
        total[order[high]] += (low_sums - low_sums[head])[high]
    earlier = np.concatenate(([0.0], np.cumsum(r)[:-1]))
    return r * count - total + (earlier - total) - r * (time - count)


# --- candidates ---------------------------------------------------------------------------


def _seeded_intervals(n: int, min_size: int) -> list[tuple[int, int]]:
    """Return the intervals [start, end): per level k, 2^(k+1) − 1 of length ⌈n/2^k⌉, evenly spread."""
    out: list[tuple[int, int]] = []
    level = 0
    while (length := math.ceil(n / 2**level)) >= 2 * min_size:
        count = 2 ** (level + 1) - 1
        starts = np.unique(np.linspace(0, n - length, count).astype(np.int64))
        out += [(int(s), int(s) + length) for s in starts]
        level += 1
    return out


def _despiked(x: np.ndarray, min_size: int) -> np.ndarray:
    """Return x with each point replaced by its running median where it lies 3 noise sd off it.

    A Hampel filter (Pearson 2002) over 2·(min_size // 2) + 1 points, the noise sd read off the
    first differences: it locates splits only, so one wild point cannot pull e-divisive's split
    (which needs a finite first moment), while a run of min_size points passes unchanged.
    """
    half = max(1, min_size // 2)
    padded = np.pad(x, half, mode="reflect")
    running = np.median(np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1), axis=1)
    sd = _robust_scale(np.diff(x)) / math.sqrt(2)
    return np.where(np.abs(x - running) > 3 * sd, running, x)


def _candidates(x: np.ndarray, f: np.ndarray,
                min_size: int) -> list[tuple[float, int, int, int, int]]:
    """Return (p, length, index, start, end) of the e-divisive split of every seeded interval.

    Splits are placed on the despiked values f and tested on the ranks of x.
    """
    by_length: dict[int, list[int]] = {}
    for start, end in _seeded_intervals(len(x), min_size):
        by_length.setdefault(end - start, []).append(start)
    out = []
    for length, starts in by_length.items():
        if length <= _BATCH_LENGTH:
            found = _batch_splits(x, f, np.array(starts), length, min_size)
        else:
            found = [_single_split(x, f, s, s + length, min_size) for s in starts]
        out += [(float(_scan_p(z, length, min_size)), length, s + tau, s, s + length)
                for s, (tau, z) in zip(starts, found)]
    return out


def _single_split(x: np.ndarray, f: np.ndarray, start: int, end: int,
                  min_size: int) -> tuple[int, float]:
    """Return (offset of the e-divisive split of f[start:end], the rank-sum z of x there)."""
    taus, q = energy_profile(f[start:end], min_size)
    tau = int(taus[np.argmax(q)])
    return tau, _rank_z(x, start, start + tau, end)


def _batch_splits(x: np.ndarray, f: np.ndarray, starts: np.ndarray, length: int,
                  min_size: int) -> list[tuple[int, float]]:
    """Return _single_split of many intervals of one length, through their m×m distances."""
    out: list[tuple[int, float]] = []
    rows = max(1, _BATCH_CELLS // length**2)
    taus = np.arange(min_size, length - min_size + 1)
    for i in range(0, len(starts), rows):
        window = starts[i:i + rows, None] + np.arange(length)
        v, w = x[window], f[window]
        less = (v[:, None, :] < v[:, :, None]).sum(axis=2)
        same = (v[:, None, :] == v[:, :, None]).sum(axis=2)
        r = less + (same + 1) / 2
        d = np.abs(w[:, :, None] - w[:, None, :])
        q = _qhat(d.sum(axis=2), np.tril(d, -1).sum(axis=2), taus)
        best = taus[np.argmax(q, axis=1)]
        right = np.cumsum(r[:, ::-1], axis=1)[np.arange(len(v)), length - best - 1]
        ties = (same.astype(float) ** 2 - 1).sum(axis=1)  # Σ(t³ − t) over tie groups
        out += [(int(t), _z_from_sums(float(u), int(t), length - int(t), float(tie)))
                for t, u, tie in zip(best, right, ties)]
    return out


# --- the test -----------------------------------------------------------------------------


def _rank_z(x: np.ndarray, start: int, index: int, end: int) -> float:
    """Return the Mann-Whitney z of x[index:end] against x[start:index], ties corrected."""
    r, _, sizes = _ranks(x[start:end])
    ties = float(np.sum(sizes.astype(float) ** 3 - sizes))
    return _z_from_sums(float(r[index - start:].sum()), index - start, end - index, ties)


def _z_from_sums(rank_sum_after: float, a: int, b: int, ties: float) -> float:
    """Return the rank-sum z of b points after against a before (Mann & Whitney 1947)."""
    n = a + b
    u = rank_sum_after - b * (b + 1) / 2
    var = a * b / 12 * ((n + 1) - ties / (n * (n - 1)))
    return 0.0 if var <= 0 else (u - a * b / 2) / math.sqrt(var)


def _scan_p(z: ArrayLike, length: ArrayLike, min_size: int) -> np.ndarray:
    """Return the two-sided p of |z|, corrected for the scan over an interval's admissible splits.

    The smaller of Bonferroni over the splits and P(max |U| > z) for the standardized Brownian
    bridge U over [h, 1−h], h = min_size/length: 2(1−Φ(z)) + z·φ(z)·log((1−h)²/h²)
    (James, James & Siegmund 1987, read as an Ornstein-Uhlenbeck upcrossing rate).
    Elementwise over arrays.
    """
    z = np.abs(np.asarray(z, dtype=float))
    length = np.asarray(length, dtype=float)
    naive = erfc(z / math.sqrt(2))
    splits = length - 2 * min_size + 1
    span = 2 * np.log((length - min_size) / min_size)
    bridge = naive + z * np.exp(-z * z / 2) / math.sqrt(2 * math.pi) * span
    return np.minimum(1.0, np.minimum(splits * naive, bridge))


def _inflation(rho: float) -> float:
    """Return the AR(1) variance inflation of a mean, (1 + ρ)/(1 − ρ) (Zwiers & von Storch 1995)."""
    return (1 + rho) / (1 - rho)


# --- the noise model ----------------------------------------------------------------------


class _Residuals:
    """Residuals about each segment's median, kept current as change points are dropped."""

    def __init__(self, x: np.ndarray, cps: Sequence[int]) -> None:
        self.x = x
        bounds = [0, *cps, len(x)]
        self.label = np.repeat(bounds[:-1], np.diff(bounds))  # each point's segment start
        self.resid = np.empty_like(x)
        for lo, hi in itertools.pairwise(bounds):
            self.resid[lo:hi] = x[lo:hi] - np.median(x[lo:hi])
        self.within = np.ones(max(len(x) - 1, 0), dtype=bool)
        self.within[np.asarray(cps, dtype=np.int64) - 1] = False  # pairs across a change

    def drop(self, start: int, index: int, end: int) -> None:
        """Join the segments [start, index) and [index, end)."""
        self.label[index:end] = start
        self.resid[start:end] = self.x[start:end] - np.median(self.x[start:end])
        self.within[index - 1] = True

    def model(self) -> tuple[float, float]:
        """Return the robust residual scale and the lag-1 autocorrelation ρ (≥ 0)."""
        scale = _robust_scale(self.resid)
        if scale == 0:
            return 0.0, 0.0
        h = np.clip(self.resid, -_CLIP * scale, _CLIP * scale)
        counts = np.bincount(self.label, minlength=len(h))
        h -= (np.bincount(self.label, h, minlength=len(h)) / np.maximum(counts, 1))[self.label]
        den = float(np.dot(h, h))
        num = float(np.dot(h[1:][self.within], h[:-1][self.within]))
        return scale, min(max(num / den if den > 0 else 0.0, 0.0), _RHO_MAX)


def _robust_scale(resid: np.ndarray) -> float:
    """Return 1.4826·MAD, or 1.2533·mean absolute deviation when over half the residuals are 0."""
    mad = float(np.median(np.abs(resid)))
    if mad > 0:
        return _MAD_TO_SIGMA * mad
    return _MEAN_ABS_TO_SIGMA * float(np.mean(np.abs(resid)))


# --- select and merge ---------------------------------------------------------------------


def _select(x: np.ndarray, f: np.ndarray, weak_alpha: float, min_size: int) -> list[int]:
    """Return the weak change points: candidates by p, skipping intervals that hold one already."""
    cps: list[int] = []
    for p, _, index, start, end in sorted(_candidates(x, f, min_size)):
        if p >= weak_alpha:
            break
        i = bisect.bisect_right(cps, start)
        if i == len(cps) or cps[i] >= end:
            bisect.insort(cps, index)
    return _bisect_segments(x, f, cps, weak_alpha, min_size)


def _bisect_segments(x: np.ndarray, f: np.ndarray, cps: list[int], weak_alpha: float,
                     min_size: int) -> list[int]:
    """Return cps plus the e-divisive splits with p < weak_alpha found by bisecting each segment.

    Seeded intervals can miss a step that sits close to another one (no interval holds it
    alone); within the segments between change points it stands alone (Matteson & James 2014).
    """
    cps = list(cps)
    todo = list(itertools.pairwise([0, *cps, len(x)]))
    while todo:
        start, end = todo.pop()
        if end - start < 2 * min_size:
            continue
        tau, z = _single_split(x, f, start, end, min_size)
        if _scan_p(z, end - start, min_size) < weak_alpha:
            bisect.insort(cps, start + tau)
            todo += [(start, start + tau), (start + tau, end)]
    return cps


def _merge(x: np.ndarray, cps: list[int], alpha: float, min_size: int) -> list[int]:
    """Drop the weakest change point and retest its neighbours until all have p < alpha."""
    cps = list(cps)
    z = [_rank_z(x, *_around(cps, i, len(x))) for i in range(len(cps))]
    residuals = _Residuals(x, cps)
    while cps:
        root = math.sqrt(_inflation(residuals.model()[1]))
        bounds = np.array([0, *cps, len(x)])
        p = _scan_p(np.array(z) / root, bounds[2:] - bounds[:-2], min_size)
        weakest = int(np.argmax(p))
        if p[weakest] < alpha:
            break
        residuals.drop(*_around(cps, weakest, len(x)))
        del cps[weakest], z[weakest]
        for i in (weakest - 1, weakest):
            if 0 <= i < len(cps):
                z[i] = _rank_z(x, *_around(cps, i, len(x)))
    return cps


def _refine(x: np.ndarray, cps: list[int], min_size: int) -> list[int]:
    """Return cps with each moved (by up to min_size) to the best two-segment L1 fit between
    its neighbours, as asv's step fit scores steps: the energy statistic leans toward the middle.
    """
    cps = list(cps)
    for i in range(len(cps)):
        start, index, end = _around(cps, i, len(x))
        taus = range(max(start + min_size, index - min_size),
                     min(end - min_size, index + min_size) + 1)
        cost = [_l1(x[start:t]) + _l1(x[t:end]) + 1e-12 * abs(t - index) for t in taus]
        cps[i] = taus[int(np.argmin(cost))]
    return cps


def _l1(v: np.ndarray) -> float:
    return float(np.abs(v - np.median(v)).sum())


def _around(cps: Sequence[int], i: int, n: int) -> tuple[int, int, int]:
    """Return (start, index, end) of change point i between its neighbours."""
    return (cps[i - 1] if i > 0 else 0), cps[i], (cps[i + 1] if i + 1 < len(cps) else n)


def _span(cps: Sequence[int], i: int, n: int) -> int:
    start, _, end = _around(cps, i, n)
    return end - start


# --- the result ---------------------------------------------------------------------------


def _describe(x: np.ndarray, f: np.ndarray, samples: tuple[np.ndarray, ...] | None,
              cps: Sequence[int], i: int, scale: float, rho: float,
              min_size: int) -> ChangePoint:
    """Return change point i of cps with the statistics of its two adjacent segments."""
    start, index, end = _around(cps, i, len(x))
    before, after = x[start:index], x[index:end]
    med_b, med_a = float(np.median(before)), float(np.median(after))
    z = _rank_z(x, start, index, end) / math.sqrt(_inflation(rho))
    _, q = energy_profile(f[start:end], min_size)
    raw_b, raw_a = _pooled(samples, start, index), _pooled(samples, index, end)
    return ChangePoint(
        index=index, start=start, end=end,
        median_before=med_b, median_after=med_a,
        mean_before=float(before.mean()), mean_after=float(after.mean()),
        relative_change=None if med_b == 0 else med_a / med_b - 1,
        effect_size=_ratio(med_a - med_b, scale),
        z=z, p_value=float(_scan_p(z, end - start, min_size)),
        energy=float(q[index - start - min_size]),
        samples_median_before=None if raw_b is None else float(np.median(raw_b)),
        samples_median_after=None if raw_a is None else float(np.median(raw_a)),
        samples_before=0 if raw_b is None else raw_b.size,
        samples_after=0 if raw_a is None else raw_a.size,
    )


def _pooled(samples: tuple[np.ndarray, ...] | None, start: int, end: int) -> np.ndarray | None:
    """Return the raw samples of points [start, end) pooled, or None when there are none."""
    if samples is None:
        return None
    raw = np.concatenate(samples[start:end])
    return raw if raw.size else None


def _ratio(shift: float, scale: float) -> float:
    if scale > 0:
        return shift / scale
    return 0.0 if shift == 0 else math.copysign(math.inf, shift)
