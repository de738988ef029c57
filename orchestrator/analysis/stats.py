"""Robust trial statistics and A/B comparison over numpy arrays.

Sources: bootstrap confidence intervals (Efron 1979; Efron & Tibshirani 1993) via
`scipy.stats.bootstrap` with the percentile method, which stays defined for small samples and
ties (BCa degenerates to NaN there); outliers by the modified z-score on the MAD
(Iglewicz & Hoaglin 1993); the rank test is Mann-Whitney U (Mann & Whitney 1947).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.stats

BOOTSTRAP_RESAMPLES = 9999
"""Number of bootstrap resamples for every confidence interval in this module."""

P5_P95_MIN_N = 20
"""p5/p95 are reported only from this many samples on (one sample beyond each 5% tail)."""

P99_MIN_N = 100
"""p99 is reported only from this many samples on (no p99 from 10 samples)."""

OUTLIER_Z = 3.5
"""Modified z-score above which a sample counts as an outlier (Iglewicz & Hoaglin 1993)."""

_BOOTSTRAP_PARAMS = frozenset(inspect.signature(scipy.stats.bootstrap).parameters)

_BOOTSTRAP_BATCH_VALUES = 2_000_000
"""Values resampled per batch (bounds memory to ~16 MB per sample for long trials)."""

Verdict = Literal["faster", "slower", "no significant change"]


@dataclass(frozen=True, slots=True)
class Summary:
    """Robust statistics of one sample set, in the unit of the values."""

    n: int
    """Number of values."""
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
    """Lower bound of the bootstrap CI of the median; None when n < 3."""
    ci_high: float | None
    """Upper bound of the bootstrap CI of the median; None when n < 3."""
    outliers: int
    """Count of values with modified z-score above OUTLIER_Z; 0 when MAD is 0."""


@dataclass(frozen=True, slots=True)
class Comparison:
    """Result of comparing a metric's NEW samples against its BASE samples."""

    base_median: float
    new_median: float
    ratio: float
    """new_median / base_median."""
    ratio_ci_low: float | None
    """Lower bound of the bootstrap CI of the ratio; None when a side has fewer than 2 values."""
    ratio_ci_high: float | None
    """Upper bound of the bootstrap CI of the ratio; None when a side has fewer than 2 values."""
    p_value: float
    """Two-sided Mann-Whitney U p-value (1.0 when every value is equal)."""
    verdict: Verdict
    higher_is_better: bool
    """Direction of the metric (True for throughput, False for latency)."""


def _bootstrap_ci(
    data: tuple[np.ndarray, ...],
    statistic: Callable[..., np.ndarray],
    confidence: float,
    seed: int,
) -> tuple[float, float]:
    """Return the percentile-bootstrap CI of `statistic` over independently resampled `data`."""
    kwargs: dict[str, object] = {}
    rng = np.random.default_rng(seed)
    if "rng" in _BOOTSTRAP_PARAMS:
        kwargs["rng"] = rng
    else:  # scipy < 1.15
        kwargs["random_state"] = rng
    with np.errstate(divide="ignore", invalid="ignore"):
        result = scipy.stats.bootstrap(
            data,
            statistic,
            n_resamples=BOOTSTRAP_RESAMPLES,
            batch=max(1, _BOOTSTRAP_BATCH_VALUES // max(a.size for a in data)),
            vectorized=True,
            paired=False,
            confidence_level=confidence,
            method="percentile",
            **kwargs,
        )
    ci = result.confidence_interval
    return float(ci.low), float(ci.high)


def _as_values(values: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    """Return `values` as a finite 1-D float array; raise ValueError when empty or non-finite."""
    x = np.asarray(values, dtype=float).ravel()
    if x.size == 0:
        raise ValueError(f"{name} is empty; at least one value is needed")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or infinite values; drop them before summarizing")
    return x


def _median_stat(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.median(x, axis=axis)


def _ratio_stat(base: np.ndarray, new: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.median(new, axis=axis) / np.median(base, axis=axis)


def count_outliers(values: Sequence[float] | np.ndarray) -> int:
    """Count values with |0.6745 (x − median) / MAD| > 3.5; 0 when MAD is 0 (Iglewicz & Hoaglin 1993)."""
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
    """Summarize 1-D values (any unit) robustly; raise ValueError on empty or non-finite input.

    Percentiles are reported only when the sample count supports them: p5/p95 from 20 values,
    p99 from 100 values, else None. The CI is a percentile bootstrap of the median (Efron),
    None for n < 3 and (median, median) when all values are equal.

    Args:
        values: the samples, e.g. per-sample throughputs in ops/s.
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
    if n >= 3:
        if np.all(x == x[0]):
            ci_low = ci_high = median
        else:
            ci_low, ci_high = _bootstrap_ci((x,), _median_stat, confidence, seed)
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


def compare(
    base: Sequence[float] | np.ndarray,
    new: Sequence[float] | np.ndarray,
    *,
    higher_is_better: bool = True,
    alpha: float = 0.01,
    confidence: float = 0.95,
    seed: int = 0,
) -> Comparison:
    """Compare NEW against BASE samples of one metric: ratio of medians, CI, p-value, verdict.

    The ratio NEW/BASE of medians gets a percentile-bootstrap CI with each side resampled
    independently (Efron); the p-value is the two-sided Mann-Whitney U test. The change is
    significant when p < alpha AND the ratio's CI excludes 1; its direction with
    `higher_is_better` gives "faster" or "slower", else "no significant change". With fewer than
    2 values on a side the CI is None and the verdict is "no significant change".

    Raises:
        ValueError: a side is empty or non-finite, or BASE's median is 0 (ratio undefined).
    """
    b = _as_values(base, "base")
    x = _as_values(new, "new")
    base_median = float(np.median(b))
    new_median = float(np.median(x))
    if base_median == 0.0:
        raise ValueError("base median is 0, so the ratio NEW/BASE is undefined")
    ratio = new_median / base_median
    ci_low = ci_high = None
    if b.size >= 2 and x.size >= 2:
        ci_low, ci_high = _bootstrap_ci((b, x), _ratio_stat, confidence, seed)
    p_value = float(scipy.stats.mannwhitneyu(x, b, alternative="two-sided").pvalue)
    if math.isnan(p_value):
        p_value = 1.0
    verdict: Verdict = "no significant change"
    ci_excludes_one = ci_low is not None and ci_high is not None and (ci_low > 1 or ci_high < 1)
    if ci_excludes_one and p_value < alpha:
        verdict = "faster" if (ratio > 1.0) == higher_is_better else "slower"
    return Comparison(
        base_median=base_median,
        new_median=new_median,
        ratio=ratio,
        ratio_ci_low=ci_low,
        ratio_ci_high=ci_high,
        p_value=p_value,
        verdict=verdict,
        higher_is_better=higher_is_better,
    )


def regression(comparison: Comparison, threshold: float) -> bool:
    """Return True when the verdict is "slower" and the median moved by more than `threshold`.

    `threshold` is a fraction (0.05 = 5%): for a higher-is-better metric a regression means
    ratio < 1 − threshold, for a lower-is-better metric ratio > 1 + threshold. The point
    estimate of the ratio is used; significance is already part of the verdict.
    """
    return comparison.verdict == "slower" and abs(comparison.ratio - 1.0) > threshold
