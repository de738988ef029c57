"""Trial statistics over rounds and A/B comparison with a family-wise level, over numpy arrays.

The unit is the round: all workers start a round together, so whatever hits a round hits all
its samples, and only rounds are independent. A trial's headline per-worker figure is the
median over rounds of the per-round mean over workers; its CI resamples rounds, which is the
cluster bootstrap (Davison & Hinkley 1997, §3.8) applied to the per-round means.

Sources: percentile bootstrap CIs (Efron 1979; Efron & Tibshirani 1993, ch. 13) with
BOOTSTRAP_RESAMPLES seeded resamples, each resample's median read off its two middle resampled
ranks, so one set of resamples serves every row of an array and only distinct rank pairs are
evaluated; no CI below the n at which a distribution-free CI of the median exists (6 units at
95%: Le Boudec 2010, Thm 2.1); outliers
by the modified z-score on the MAD (Iglewicz & Hoaglin 1993); the two-sided Mann-Whitney U test
with ties (Mann & Whitney 1947); Holm's step-down across a comparison's metrics (Holm 1979);
Benjamini-Hochberg's false discovery rate across a history's changes (Benjamini & Hochberg 1995).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    from workloads.base import Better

BOOTSTRAP_RESAMPLES = 9999
"""Number of bootstrap resamples for every confidence interval in this module."""

P5_P95_MIN_N = 20
"""p5/p95 are reported only from this many units on (one unit beyond each 5% tail)."""

P99_MIN_N = 100
"""p99 is reported only from this many units on (no p99 from 10 rounds)."""

OUTLIER_Z = 3.5
"""Modified z-score above which a unit counts as an outlier (Iglewicz & Hoaglin 1993)."""

_BOOTSTRAP_BATCH_VALUES = 2_000_000
"""Resampled indices drawn per batch (bounds memory to ~16 MB however many units there are)."""

Verdict = Literal["faster", "slower", "no significant change", "too few samples to tell",
                  "descriptive"]
"""A comparison's verdict; "descriptive" metrics (no better direction) never get another."""

Basis = Literal["rounds", "invocations", "runs", "prior"]
"""The variation a comparison's CI and test account for (analysis/hierarchical.py chooses it).

"rounds": rounds of one invocation per side (what a process start changes is left out);
"invocations": invocations, runs assumed to add nothing beyond them; "runs": runs, from the
runs compared; "prior": these data plus a between-run (or invocation) variance measured elsewhere.
"""


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")


@functools.lru_cache(maxsize=32)
def min_units_for_ci(confidence: float = 0.95) -> int:
    """Return the fewest units from which a distribution-free CI of the median exists.

    [min, max] of n units covers the median with probability 1 − 2^(1−n), so the CI needs
    2^(1−n) <= 1 − confidence: 6 units at 95%, 8 at 99% (Le Boudec 2010, Thm 2.1).
    """
    _check_confidence(confidence)
    return max(2, math.ceil(1.0 - math.log2(1.0 - confidence) - 1e-12))


MIN_UNITS_FOR_CI = min_units_for_ci(0.95)
"""Units (rounds) below which no 95% CI is reported: 6."""


@dataclass(frozen=True, slots=True)
class Summary:
    """Robust statistics of one set of units (rounds), in the unit of the values."""

    n: int
    """Number of units."""
    mean: float
    median: float
    stdev: float | None
    """Sample standard deviation (ddof=1); None when n < 2."""
    mad: float
    """Median absolute deviation from the median, raw (not scaled by 1.4826)."""
    cv: float | None
    """Coefficient of variation stdev/|mean|; None when stdev is None or mean is 0."""
    min: float
    max: float
    p5: float | None
    """5th percentile (linear interpolation); None when n < P5_P95_MIN_N."""
    p95: float | None
    """95th percentile; None when n < P5_P95_MIN_N."""
    p99: float | None
    """99th percentile; None when n < P99_MIN_N."""
    ci_low: float | None
    """Lower bound of the bootstrap CI of the median; None when n < min_units_for_ci (6 at 95%)."""
    ci_high: float | None
    """Upper bound of the bootstrap CI of the median; None when n < min_units_for_ci (6 at 95%)."""
    outliers: int
    """Count of units with modified z-score above OUTLIER_Z; 0 when MAD is 0."""


@dataclass(frozen=True, slots=True)
class RoundSummary:
    """A trial's statistics over its rounds: the headline per-worker figure and each worker's."""

    per_worker: Summary
    """Over the per-round means across workers (n = rounds): the trial's per-worker figure."""
    workers: tuple[Summary, ...]
    """Each worker's own statistics over its rounds, in column order of the input."""


@dataclass(frozen=True, slots=True)
class Comparison:
    """Result of comparing a metric's NEW units (per-round values) against its BASE units."""

    base_n: int
    """Units (rounds) on the BASE side."""
    new_n: int
    """Units (rounds) on the NEW side."""
    base_median: float
    new_median: float
    ratio: float
    """new_median / base_median."""
    ratio_ci_low: float | None
    """Lower bound of the bootstrap CI of the ratio; None when a side has too few units for a CI."""
    ratio_ci_high: float | None
    """Upper bound of the bootstrap CI of the ratio; None when a side has too few units for a CI."""
    p_value: float
    """Two-sided Mann-Whitney U p-value (1.0 when every value is equal)."""
    p_adjusted: float | None
    """Holm-adjusted p-value within its family (judge_family); None when not tested."""
    verdict: Verdict
    better: Better
    """Direction of the metric: "higher", "lower", or None (descriptive: no verdict)."""
    basis: Basis = "rounds"
    """The variation the CI and p-value account for; base_n/new_n count units of that level
    (rounds, invocations or runs; invocations for "prior")."""

    @property
    def higher_is_better(self) -> bool | None:
        """Return True (higher is better), False (lower is), None (descriptive)."""
        return None if self.better is None else self.better == "higher"


def _as_values(values: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    """Return `values` as a finite 1-D float array; raise ValueError when empty or non-finite."""
    x = np.asarray(values, dtype=float).ravel()
    if x.size == 0:
        raise ValueError(f"{name} is empty; at least one value is needed")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or infinite values; drop them before summarizing")
    return x


def _as_rounds(values: np.ndarray, name: str = "values") -> np.ndarray:
    """Return `values` as a finite rounds x workers float array; raise ValueError otherwise."""
    x = np.asarray(values, dtype=float)
    if x.ndim != 2 or x.size == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array (rounds x workers), "
                         f"got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or infinite values; drop incomplete rounds first")
    return x


@functools.lru_cache(maxsize=64)
def _resample_pairs(n: int, seed: int, stream: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the distinct (low, high) middle ranks of the resamples and each resample's pair.

    A resample draws n of the sorted units with replacement; its median is the mean of the
    sorted units at its two middle ranks (equal for odd n), so BOOTSTRAP_RESAMPLES resamples
    need only their distinct rank pairs (at most n(n+1)/2) and how often each occurs. Cached
    per (n, seed, stream); read-only.
    """
    rng = np.random.default_rng((seed, stream))
    lo, hi = (n - 1) // 2, n // 2
    rows = max(1, _BOOTSTRAP_BATCH_VALUES // n)
    keys = []
    for start in range(0, BOOTSTRAP_RESAMPLES, rows):
        idx = rng.integers(0, n, (min(rows, BOOTSTRAP_RESAMPLES - start), n))
        idx.partition((lo, hi) if hi != lo else lo, axis=1)
        keys.append(idx[:, lo] * n + idx[:, hi])
    distinct, pair = np.unique(np.concatenate(keys), return_inverse=True)
    out = (distinct // n, distinct % n, pair)
    for a in out:
        a.flags.writeable = False
    return out


@functools.lru_cache(maxsize=64)
def _joint_pairs(n1: int, n2: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the distinct (base pair, new pair) of independent resamples and their counts."""
    _, _, base = _resample_pairs(n1, seed, 1)
    low2, _, new = _resample_pairs(n2, seed, 2)
    joint, counts = np.unique(base * low2.size + new, return_counts=True)
    out = (joint // low2.size, joint % low2.size, counts)
    for a in out:
        a.flags.writeable = False
    return out


def _distinct_medians(units: np.ndarray, seed: int, stream: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the resample medians at the distinct rank pairs (..., P) and each pair's resamples."""
    x = np.sort(units, axis=-1)
    low, high, pair = _resample_pairs(x.shape[-1], seed, stream)
    return 0.5 * (x[..., low] + x[..., high]), pair


def _percentile_interval(
    values: np.ndarray, counts: np.ndarray, confidence: float
) -> tuple[np.ndarray, np.ndarray]:
    """Return the (1 ± confidence)/2 quantiles along the last axis of `values` repeated `counts`.

    Linear interpolation between order statistics, as np.quantile and scipy.stats.bootstrap.
    """
    total = int(counts.sum())
    order = np.argsort(values, axis=-1, kind="stable")
    ordered = np.take_along_axis(values, order, axis=-1)
    cumulative = np.cumsum(counts[order], axis=-1)

    def at(position: int) -> np.ndarray:
        index = np.count_nonzero(cumulative <= position, axis=-1)[..., None]
        return np.take_along_axis(ordered, index, axis=-1)[..., 0]

    tail = (1.0 - confidence) / 2.0
    bounds = []
    for q in (tail, 1.0 - tail):
        h = (total - 1) * q
        j = math.floor(h)
        low, high = at(j), at(min(j + 1, total - 1))
        bounds.append(low + (h - j) * (high - low))
    return bounds[0], bounds[1]


def bootstrap_median_ci(
    units: np.ndarray, *, confidence: float = 0.95, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Return the percentile-bootstrap CI of the median along the last axis of `units`.

    Vectorized over leading axes (one row per trial or per simulated repetition); each row
    gets the same resampled ranks, so a row's CI equals that of the row alone with the same
    seed. The method of `scipy.stats.bootstrap(method="percentile")` (Efron & Tibshirani 1993).
    """
    _check_confidence(confidence)
    medians, pair = _distinct_medians(np.asarray(units, dtype=float), seed, 0)
    return _percentile_interval(medians, np.bincount(pair, minlength=medians.shape[-1]),
                                confidence)


def bootstrap_ratio_ci(
    base: np.ndarray, new: np.ndarray, *, confidence: float = 0.95, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Return the percentile-bootstrap CI of median(new)/median(base) along the last axis.

    Each side is resampled independently (two samples, not paired); vectorized over leading
    axes, which must broadcast. NaN or inf where a resampled base median is 0.
    """
    _check_confidence(confidence)
    b, _ = _distinct_medians(np.asarray(base, dtype=float), seed, 1)
    x, _ = _distinct_medians(np.asarray(new, dtype=float), seed, 2)
    base_pair, new_pair, counts = _joint_pairs(np.shape(base)[-1], np.shape(new)[-1], seed)
    with np.errstate(divide="ignore", invalid="ignore"):  # a resampled base median of 0: NaN or inf, as said
        ratios = x[..., new_pair] / b[..., base_pair]
        return _percentile_interval(ratios, counts, confidence)


@functools.lru_cache(maxsize=256)
def _order_rank(n: int, confidence: float) -> int | None:
    """Return the largest 0-based k with P(Bin(n, 1/2) <= k) <= (1 − confidence)/2, else None."""
    import scipy.stats  # here, not at import: scipy costs ~1 s before the first sample
    tail = (1.0 - confidence) / 2.0
    k = int(scipy.stats.binom.ppf(tail, n, 0.5))
    while k >= 0 and scipy.stats.binom.cdf(k, n, 0.5) > tail:
        k -= 1
    while scipy.stats.binom.cdf(k + 1, n, 0.5) <= tail:
        k += 1
    return k if k >= 0 else None


def median_order_ci(
    units: Sequence[float] | np.ndarray, confidence: float = 0.95
) -> tuple[float, float] | None:
    """Return the distribution-free CI [x_(k+1), x_(n−k)] of the median; None when n is too small.

    k is the largest count with P(Bin(n, 1/2) <= k) <= (1 − confidence)/2, so the interval
    covers the median with probability >= confidence for any continuous distribution and any
    level, however extreme (Le Boudec 2010, Thm 2.1; exact binomial, not its normal approximation).
    """
    _check_confidence(confidence)
    x = np.sort(_as_values(units, "units"))
    k = _order_rank(int(x.size), float(confidence))
    if k is None:
        return None
    return float(x[k]), float(x[x.size - 1 - k])


def count_outliers(values: Sequence[float] | np.ndarray) -> int:
    """Count values with |0.6745 (x − median) / MAD| > 3.5; 0 when MAD is 0.

    The modified z-score of Iglewicz & Hoaglin (1993).
    """
    x = _as_values(values, "values")
    median = np.median(x)
    mad = float(np.median(np.abs(x - median)))
    if mad == 0.0:
        return 0
    z = 0.6745 * (x - median) / mad
    return int(np.count_nonzero(np.abs(z) > OUTLIER_Z))


def summarize(
    values: Sequence[float] | np.ndarray, *, confidence: float = 0.95, seed: int = 0
) -> Summary:
    """Summarize independent units (any unit, e.g. per-round ops/s); raise ValueError when empty.

    Percentiles are reported only when the unit count supports them: p5/p95 from 20 units,
    p99 from 100, else None. The CI is a percentile bootstrap of the median (Efron), None
    below min_units_for_ci(confidence) units (6 at 95%), (median, median) when all are equal.

    Args:
        values: one value per independent unit: per-round means, a worker's per-round values,
            or per-round aggregate throughputs.
        confidence: confidence level of the median's CI, in (0, 1).
        seed: seed of the bootstrap's random generator (results are reproducible).

    Returns:
        A Summary in the unit of `values`.
    """
    x = _as_values(values, "values")
    n = int(x.size)
    mean = float(np.mean(x))
    median = float(np.median(x))
    stdev = float(np.std(x, ddof=1)) if n >= 2 else None
    cv = stdev / abs(mean) if stdev is not None and mean != 0.0 else None
    mad = float(np.median(np.abs(x - median)))
    p5 = p95 = p99 = None
    if n >= P5_P95_MIN_N:
        p5, p95 = (float(v) for v in np.percentile(x, [5.0, 95.0]))
    if n >= P99_MIN_N:
        p99 = float(np.percentile(x, 99.0))
    ci_low = ci_high = None
    if n >= min_units_for_ci(confidence):
        if np.all(x == x[0]):
            ci_low = ci_high = median
        else:
            low, high = bootstrap_median_ci(x, confidence=confidence, seed=seed)
            ci_low, ci_high = float(low), float(high)
    return Summary(
        n=n,
        mean=mean,
        median=median,
        stdev=stdev,
        mad=mad,
        cv=cv,
        min=float(np.min(x)),
        max=float(np.max(x)),
        p5=p5,
        p95=p95,
        p99=p99,
        ci_low=ci_low,
        ci_high=ci_high,
        outliers=count_outliers(x),
    )


def round_means(values: np.ndarray) -> np.ndarray:
    """Return the per-round mean over workers of a rounds x workers array (shape (rounds,))."""
    return _as_rounds(values).mean(axis=1)


def summarize_workers(
    values: np.ndarray, *, confidence: float = 0.95, seed: int = 0
) -> tuple[Summary, ...]:
    """Summarize each worker (column) of a rounds x workers array over its rounds.

    Each worker's rounds are its independent units, so its median and CI are its own: a
    user sees 15 vs 22 GB/s instead of one blended figure. Raises ValueError on bad shape.
    """
    x = _as_rounds(values)
    return tuple(summarize(x[:, w], confidence=confidence, seed=seed) for w in range(x.shape[1]))


def summarize_rounds(
    values: np.ndarray, *, confidence: float = 0.95, seed: int = 0
) -> RoundSummary:
    """Summarize one metric of one trial from its rounds x workers values (any unit).

    The headline is over the per-round means across workers: median over rounds, its CI by
    resampling rounds (the cluster bootstrap, Davison & Hinkley 1997, §3.8), n = rounds; each
    worker also gets its own summary. Drop rounds not measured by every worker beforehand.

    Raises:
        ValueError: `values` is not a non-empty finite 2-D array.
    """
    x = _as_rounds(values)
    return RoundSummary(
        per_worker=summarize(x.mean(axis=1), confidence=confidence, seed=seed),
        workers=summarize_workers(x, confidence=confidence, seed=seed),
    )


def smallest_p(n1: int, n2: int) -> float:
    """Return the smallest two-sided Mann-Whitney U p-value possible with n1 and n2 units.

    Reached when the samples do not overlap; computed by the same scipy call as `compare`, so
    it follows scipy's exact (2 / C(n1+n2, n1)) or asymptotic choice. At or above alpha no
    change can ever be significant: 3 vs 3 units give 0.1.
    """
    import scipy.stats  # here, not at import: scipy costs ~1 s before the first sample
    return float(scipy.stats.mannwhitneyu(range(n1), range(n1, n1 + n2),
                                          alternative="two-sided").pvalue)


def _direction(better: Better, higher_is_better: bool | None) -> Better:
    """Return the metric's direction from `better` or the older `higher_is_better` flag."""
    if better not in ("higher", "lower", None):
        raise ValueError(f"better must be 'higher', 'lower' or None, got {better!r}")
    if higher_is_better is None:
        return better
    legacy: Better = "higher" if higher_is_better else "lower"
    if better not in (legacy, "higher"):
        raise ValueError(f"better={better!r} contradicts higher_is_better={higher_is_better!r}")
    return legacy


def _significant_verdict(ratio: float, ci: tuple[float | None, float | None], better: Better,
                         significant: bool) -> Verdict:
    """Return faster/slower when `significant` and the ratio's CI excludes 1, else no change."""
    low, high = ci
    if significant and low is not None and high is not None and (low > 1.0 or high < 1.0):
        return "faster" if (ratio > 1.0) == (better == "higher") else "slower"
    return "no significant change"


def compare(
    base: Sequence[float] | np.ndarray,
    new: Sequence[float] | np.ndarray,
    *,
    better: Better = "higher",
    alpha: float = 0.01,
    confidence: float = 0.95,
    seed: int = 0,
    higher_is_better: bool | None = None,
) -> Comparison:
    """Compare NEW against BASE units of one metric: ratio of medians, CI, p-value, verdict.

    Units are independent per-round values (per-round means over workers, or per-round
    aggregates), never pooled worker samples. The ratio NEW/BASE of medians gets a
    percentile-bootstrap CI with each side resampled independently (Efron); the p-value is the
    two-sided Mann-Whitney U test with ties. Verdict: "descriptive" when `better` is None;
    "too few samples to tell" when a side has fewer than min_units_for_ci(confidence) units
    or no overlap-free split could reach p < alpha (smallest_p); "faster"/"slower" when
    p < alpha AND the ratio's CI excludes 1; else "no significant change". This is a family
    of one: judge_family re-judges a whole comparison's metrics with Holm's step-down.

    Args:
        better: "higher", "lower" or None (descriptive); `higher_is_better` is its older
            spelling (True/False), used when given.

    Raises:
        ValueError: a side is empty or non-finite, or BASE's median is 0 (ratio undefined).
    """
    import scipy.stats  # here, not at import: scipy costs ~1 s before the first sample
    direction = _direction(better, higher_is_better)
    b = _as_values(base, "base")
    x = _as_values(new, "new")
    base_median = float(np.median(b))
    new_median = float(np.median(x))
    if base_median == 0.0:
        raise ValueError("base median is 0, so the ratio NEW/BASE is undefined")
    ratio = new_median / base_median
    ci: tuple[float | None, float | None] = (None, None)
    enough = min(b.size, x.size) >= min_units_for_ci(confidence)
    if enough:
        low, high = bootstrap_ratio_ci(b, x, confidence=confidence, seed=seed)
        ci = (float(low), float(high))
    p_value = float(scipy.stats.mannwhitneyu(x, b, alternative="two-sided").pvalue)
    if math.isnan(p_value):
        p_value = 1.0
    verdict: Verdict
    if direction is None:
        verdict = "descriptive"
    elif not enough or smallest_p(b.size, x.size) >= alpha:
        verdict = "too few samples to tell"
    else:
        verdict = _significant_verdict(ratio, ci, direction, p_value < alpha)
    return Comparison(
        base_n=int(b.size),
        new_n=int(x.size),
        base_median=base_median,
        new_median=new_median,
        ratio=ratio,
        ratio_ci_low=ci[0],
        ratio_ci_high=ci[1],
        p_value=p_value,
        p_adjusted=p_value if verdict not in ("descriptive", "too few samples to tell") else None,
        verdict=verdict,
        better=direction,
    )


def holm_adjust(p_values: Sequence[float]) -> tuple[float, ...]:
    """Return Holm's adjusted p-values max_{j<=i} min(1, (m − j + 1) p_(j)), in input order.

    Rejecting where the adjusted p-value is below alpha is Holm's step-down procedure, which
    keeps the family-wise error rate at alpha for any dependence (Holm 1979). () for no input.
    """
    p = np.asarray(p_values, dtype=float)
    if p.size == 0:
        return ()
    if np.any(np.isnan(p)) or np.any((p < 0) | (p > 1)):
        raise ValueError("p-values must be in [0, 1]")
    order = np.argsort(p, kind="stable")
    m = p.size
    stepped = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    adjusted = np.empty(m)
    adjusted[order] = stepped
    return tuple(float(v) for v in adjusted)


def benjamini_hochberg(p_values: Sequence[float]) -> tuple[float, ...]:
    """Return Benjamini-Hochberg adjusted p-values min_{j>=i} min(1, m p_(j) / j), in input order.

    Rejecting where the adjusted p-value is below q keeps the false discovery rate (the
    expected share of false rejections among all rejections) at q for independent or
    positively dependent tests (Benjamini & Hochberg 1995; Benjamini & Yekutieli 2001); the
    adjustment is scipy's ``false_discovery_control(method="bh")``. () for no input.
    """
    from scipy.stats import false_discovery_control

    p = np.asarray(p_values, dtype=float)
    if p.size == 0:
        return ()
    if np.any(np.isnan(p)) or np.any((p < 0) | (p > 1)):
        raise ValueError("p-values must be in [0, 1]")
    return tuple(float(v) for v in false_discovery_control(p, method="bh"))


def holm(p_values: Sequence[float], alpha: float) -> tuple[bool, ...]:
    """Return which hypotheses Holm's step-down rejects at family-wise level alpha (Holm 1979)."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    return tuple(a < alpha for a in holm_adjust(p_values))


def judge_family(comparisons: Sequence[Comparison], alpha: float) -> tuple[Comparison, ...]:
    """Return the comparisons re-judged together: Holm across the family, then the ratio CI.

    The family is every metric and workload of one comparison (of two runs) that can be
    tested: not "descriptive", not "too few samples to tell" (those can never be significant,
    and leaving them out, a choice fixed by unit counts alone, keeps the level: Tarone 1990).
    A change is significant when Holm rejects it at `alpha` AND its ratio CI excludes 1; the
    others get "no significant change". Use the result for the verdicts and for
    --fail-on-regression (`regression`), so a regression is a family-wise claim.
    """
    untested = ("descriptive", "too few samples to tell")
    tested = [i for i, c in enumerate(comparisons) if c.verdict not in untested]
    adjusted = holm_adjust([comparisons[i].p_value for i in tested])
    out = list(comparisons)
    for i, p_adj in zip(tested, adjusted, strict=True):
        c = comparisons[i]
        verdict = _significant_verdict(c.ratio, (c.ratio_ci_low, c.ratio_ci_high), c.better,
                                       p_adj < alpha)
        out[i] = dataclasses.replace(c, p_adjusted=p_adj, verdict=verdict)
    return tuple(out)


def regression(comparison: Comparison, threshold: float) -> bool:
    """Return True when the verdict is "slower" and the median moved by more than `threshold`.

    `threshold` is a fraction (0.05 = 5%): for a higher-is-better metric a regression means
    ratio < 1 − threshold, for a lower-is-better metric ratio > 1 + threshold. The point
    estimate of the ratio is used; significance is already part of the verdict (pass the
    comparisons through judge_family first for a family-wise level).
    """
    return comparison.verdict == "slower" and abs(comparison.ratio - 1.0) > threshold
