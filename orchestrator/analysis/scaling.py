"""Scaling analysis: speedup and efficiency with CIs, Karp-Flatt, Amdahl and USL fits, a verdict.

Throughput X(N) for N workers, cores, L3 domains or nodes is the aggregate of all N workers
(their ops over each synchronized round's wall time), one value per round. Speedup
S(N) = X(N)/X(1) and parallel efficiency E(N) = S(N)/N get percentile-bootstrap CIs of the
ratio of medians, the rounds at each N resampled independently (Efron & Tibshirani 1993).

Strong scaling (fixed total work) and weak scaling (fixed work per worker) share the formulas,
not the words: under weak scaling S(N) is a scaled speedup (Gustafson 1988) and the Amdahl
parameter fitted to it is a contention coefficient, not a serial fraction; the Karp-Flatt
serial fraction e = (1/S − 1/N)/(1 − 1/N) is defined for fixed-size speedup only (Karp &
Flatt 1990), so weak rows have none.

Fits: Amdahl's law X(N) = X1·N/(1 + s(N−1)) (Amdahl 1967) and the Universal Scalability Law
X(N) = λN/(1 + σ(N−1) + κN(N−1)) (Gunther 1993), by `scipy.optimize.curve_fit` on log X by
default, because measurement noise is multiplicative (a round 3% slow is 3% at any N); scale
"linear" is unweighted least squares on X, as R's `usl` package fits. Parameter CIs come from
the fit covariance and Student's t. The USL peak N* = sqrt((1 − σ)/κ) is reported only when
κ's CI excludes 0, with a delta-method interval on log N* (Casella & Berger 2002, §5.5.4).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from orchestrator.analysis.stats import (
    MIN_UNITS_FOR_CI,
    bootstrap_ratio_ci,
    min_units_for_ci,
    summarize,
)

LINEAR_EFFICIENCY = 0.9
"""Efficiency the verdict compares the largest N's CI with: linear above, sub-linear below."""

SUPERLINEAR_EFFICIENCY = 1.1
"""Efficiency above which (the whole CI) the verdict warns of superlinear scaling."""

RETROGRADE_DROP = 0.05
"""Relative drop of the median below the best point that, when significant, is retrograde."""

FIT_CONFIDENCE = 0.95
"""Confidence level of the fitted parameters' intervals."""

KAPPA_NEGLIGIBLE = 1e-6
"""κ is treated as 0 when its term changes the fitted X at the largest N by less than this."""

MODES = ("strong", "weak")

Scale = Literal["log", "linear"]


class NotEnoughPoints(ValueError):
    """Raised when a fit has fewer distinct N than its parameters + 1."""


@dataclass(frozen=True, slots=True)
class AmdahlFit:
    """Amdahl's law X(N) = X1·N/(1 + s(N−1)) fitted to throughput (Amdahl 1967)."""

    serial_fraction: float
    """s in [0, 1]: the serial fraction (strong scaling) or contention coefficient (weak)."""
    serial_fraction_ci: tuple[float, float]
    """95% CI of s from the covariance and Student's t, clipped to [0, 1]."""
    x1: float
    """Fitted single-worker throughput X1, in the unit of the data (e.g. ops/s)."""
    rmse: float
    """Root-mean-square residual of the fit, in the unit of the data."""
    x1_ci: tuple[float, float] | None = None
    """95% CI of X1, clipped at 0 from below."""
    scale: Scale = "log"
    """What was least-squared: "log" (log X) or "linear" (X)."""


@dataclass(frozen=True, slots=True)
class USLFit:
    """Universal Scalability Law X(N) = λN/(1 + σ(N−1) + κN(N−1)) fitted (Gunther 1993)."""

    lambda_: float
    """λ: throughput of one worker without contention, in the unit of the data."""
    sigma: float
    """σ in [0, 1]: contention (serialization)."""
    kappa: float
    """κ >= 0: coherency (crosstalk) cost."""
    lambda_ci: tuple[float, float]
    sigma_ci: tuple[float, float]
    """95% CI of σ, clipped to [0, 1]."""
    kappa_ci: tuple[float, float]
    """95% CI of κ, clipped at 0 from below."""
    peak_n: float | None
    """N* = sqrt((1 − σ)/κ) where throughput peaks; None unless κ's CI excludes 0."""
    rmse: float
    """Root-mean-square residual of the fit, in the unit of the data."""
    peak_n_ci: tuple[float, float] | None = None
    """95% delta-method CI of N* (on log N*); None with peak_n."""
    scale: Scale = "log"
    """What was least-squared: "log" (log X) or "linear" (X, as R's usl)."""


@dataclass(frozen=True, slots=True)
class ScalingRow:
    """One scaling point: throughput at N and the derived ratios, with CIs over rounds."""

    n: int
    throughput_median: float
    throughput_ci_low: float | None
    """Bootstrap 95% CI of the median throughput; None with fewer than 6 rounds."""
    throughput_ci_high: float | None
    speedup: float
    """S(N) = X(N)/X(N0)·N0 where N0 is the smallest N measured (X(N)/X(1) when N0 = 1)."""
    efficiency: float
    """E(N) = S(N)/N; 1.0 is ideal."""
    karp_flatt: float | None
    """Experimentally determined serial fraction; None for N = 1, S <= 0, S > N (superlinear) or weak scaling."""
    speedup_ci_low: float | None = None
    """Bootstrap 95% CI of S(N); None when N or N0 has fewer than 6 rounds; exact at N0."""
    speedup_ci_high: float | None = None
    efficiency_ci_low: float | None = None
    """The speedup CI divided by N."""
    efficiency_ci_high: float | None = None


def mode_name(mode: object) -> str:
    """Return "strong" or "weak" from a str or an enum member (its `.value`)."""
    value = getattr(mode, "value", mode)
    if value not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {value!r}")
    return str(value)


def speedup_name(mode: object) -> str:
    """Return what S(N) is called in `mode`: "speedup" or "scaled speedup" (Gustafson 1988)."""
    return "scaled speedup" if mode_name(mode) == "weak" else "speedup"


def amdahl_name(mode: object) -> str:
    """Return what Amdahl's s is called in `mode`: "serial fraction" or "contention coefficient"."""
    return "contention coefficient" if mode_name(mode) == "weak" else "serial fraction"


def _amdahl(n: np.ndarray, x1: float, s: float) -> np.ndarray:
    return x1 * n / (1.0 + s * (n - 1.0))


def _usl(n: np.ndarray, lam: float, sigma: float, kappa: float) -> np.ndarray:
    return lam * n / (1.0 + sigma * (n - 1.0) + kappa * n * (n - 1.0))


def _log_amdahl(n: np.ndarray, x1: float, s: float) -> np.ndarray:
    return np.log(x1) + np.log(n) - np.log1p(s * (n - 1.0))


def _log_usl(n: np.ndarray, lam: float, sigma: float, kappa: float) -> np.ndarray:
    return np.log(lam) + np.log(n) - np.log1p(sigma * (n - 1.0) + kappa * n * (n - 1.0))


def _fit_points(
    n: Sequence[float] | np.ndarray, x: Sequence[float] | np.ndarray, params: int, name: str,
    scale: Scale,
) -> tuple[np.ndarray, np.ndarray]:
    """Return (n, x) as float arrays; raise NotEnoughPoints below params + 1 distinct N."""
    if scale not in ("log", "linear"):
        raise ValueError(f"scale must be 'log' or 'linear', got {scale!r}")
    n_arr = np.asarray(n, dtype=float).ravel()
    x_arr = np.asarray(x, dtype=float).ravel()
    if n_arr.shape != x_arr.shape:
        raise ValueError(f"n and x have {n_arr.size} and {x_arr.size} values; they must match")
    if not (np.all(np.isfinite(n_arr)) and np.all(np.isfinite(x_arr))):
        raise ValueError("n and x must be finite")
    if np.any(n_arr < 1):
        raise ValueError("every N must be >= 1")
    if scale == "log" and np.any(x_arr <= 0):
        raise ValueError("a fit on log X needs positive throughputs; pass scale='linear' otherwise")
    distinct = int(np.unique(n_arr).size)
    if distinct < params + 1:
        raise NotEnoughPoints(
            f"{name} fit needs at least {params + 1} distinct N ({params} parameters + 1), "
            f"got {distinct}"
        )
    return n_arr, x_arr


def _curve_fit(
    model: Callable[..., np.ndarray], log_model: Callable[..., np.ndarray], n: np.ndarray,
    x: np.ndarray, p0: list[float], bounds: tuple[list[float], list[float]], scale: Scale,
) -> tuple[np.ndarray, np.ndarray]:
    """Return curve_fit's (popt, pcov) on log X or on X, with tolerances near machine precision."""
    import scipy.optimize  # here, not at import: scipy costs ~1 s before the first sample
    f, y = (log_model, np.log(x)) if scale == "log" else (model, x)
    return scipy.optimize.curve_fit(f, n, y, p0=p0, bounds=bounds, x_scale="jac",
                                    ftol=1e-12, xtol=1e-12, gtol=1e-12)


def _t(dof: int) -> float:
    import scipy.stats  # here, not at import: scipy costs ~1 s before the first sample
    return float(scipy.stats.t.ppf(0.5 + FIT_CONFIDENCE / 2.0, dof))


def _cis(popt: np.ndarray, pcov: np.ndarray, dof: int) -> list[tuple[float, float]]:
    """Return symmetric t-intervals popt ± t·sqrt(diag(pcov)) (inf-wide when pcov is unknown)."""
    with np.errstate(invalid="ignore"):
        se = np.sqrt(np.diag(pcov))
    se = np.where(np.isfinite(se), se, np.inf)
    t = _t(dof)
    return [(float(p - t * e), float(p + t * e)) for p, e in zip(popt, se, strict=True)]


def _clip(ci: tuple[float, float], low: float, high: float) -> tuple[float, float]:
    return (min(max(ci[0], low), high), min(max(ci[1], low), high))


def _rmse(residuals: np.ndarray) -> float:
    return float(np.sqrt(np.mean(residuals**2)))


def fit_amdahl(
    n: Sequence[float] | np.ndarray, x: Sequence[float] | np.ndarray, *, scale: Scale = "log"
) -> AmdahlFit:
    """Fit Amdahl's law X(N) = X1·N/(1 + s(N−1)) to throughputs x at worker counts n (Amdahl 1967).

    Several points per N (one per round) are allowed; all are fitted. The start values come
    from the linearization N/X = ((1 − s) + sN)/X1.

    Args:
        n: worker counts, shape (points,).
        x: aggregate throughput at each n (any unit, e.g. ops/s), shape (points,).
        scale: "log" (least squares on log X, for multiplicative noise) or "linear" (on X).

    Returns:
        The fit; s bounded to [0, 1], its CI from the covariance with t at points − 2 dof.

    Raises:
        NotEnoughPoints: fewer than 3 distinct N.
    """
    n_arr, x_arr = _fit_points(n, x, 2, "Amdahl", scale)
    c1, c0 = np.polyfit(n_arr, n_arr / x_arr, 1)
    x1_0 = 1.0 / (c0 + c1) if c0 + c1 > 0 else float(np.max(x_arr / n_arr))
    s0 = float(np.clip(c1 * x1_0, 0.0, 1.0))
    popt, pcov = _curve_fit(_amdahl, _log_amdahl, n_arr, x_arr, [x1_0, s0],
                            ([0.0, 0.0], [np.inf, 1.0]), scale)
    x1_ci, s_ci = _cis(popt, pcov, n_arr.size - 2)
    return AmdahlFit(
        serial_fraction=float(popt[1]),
        serial_fraction_ci=_clip(s_ci, 0.0, 1.0),
        x1=float(popt[0]),
        rmse=_rmse(x_arr - _amdahl(n_arr, *popt)),
        x1_ci=_clip(x1_ci, 0.0, math.inf),
        scale=scale,
    )


def _peak(popt: np.ndarray, pcov: np.ndarray, kappa_ci: tuple[float, float], n_max: float,
          dof: int) -> tuple[float | None, tuple[float, float] | None]:
    """Return N* and its delta-method CI on log N*, or (None, None) unless κ's CI excludes 0.

    log N* = (log(1 − σ) − log κ)/2, so its gradient in (λ, σ, κ) is (0, −1/(2(1−σ)), −1/(2κ)).
    κ is also treated as 0 when its term moves the fitted X at the largest N by less than
    KAPPA_NEGLIGIBLE (an optimizer residue on exact data, not a measured effect).
    """
    _, sigma, kappa = (float(v) for v in popt)
    negligible = kappa * n_max * (n_max - 1.0) <= KAPPA_NEGLIGIBLE * (1.0 + sigma * (n_max - 1.0))
    if kappa_ci[0] <= 0.0 or sigma >= 1.0 or negligible:
        return None, None
    peak = math.sqrt((1.0 - sigma) / kappa)
    grad = np.array([0.0, -0.5 / (1.0 - sigma), -0.5 / kappa])
    var = float(grad @ pcov @ grad)
    if not math.isfinite(var) or var < 0.0:
        return peak, (0.0, math.inf)
    half = _t(dof) * math.sqrt(var)
    return peak, (peak * math.exp(-half), peak * math.exp(half))


def fit_usl(
    n: Sequence[float] | np.ndarray, x: Sequence[float] | np.ndarray, *, scale: Scale = "log"
) -> USLFit:
    """Fit the Universal Scalability Law X(N) = λN/(1 + σ(N−1) + κN(N−1)) (Gunther 1993).

    Several points per N (one per round) are allowed; all are fitted. Bounds: λ > 0, σ in
    [0, 1], κ >= 0. The start values come from the quadratic N/X = ((1−σ) + (σ−κ)N + κN²)/λ.
    scale="linear" reproduces R's `usl` (unweighted least squares on X).

    Args:
        n: worker counts, shape (points,).
        x: aggregate throughput at each n (any unit, e.g. ops/s), shape (points,).
        scale: "log" (least squares on log X, for multiplicative noise) or "linear" (on X).

    Returns:
        The fit with t-intervals from the covariance (points − 3 dof); the peak N* and its
        interval only when κ's CI excludes 0, else None.

    Raises:
        NotEnoughPoints: fewer than 4 distinct N.
    """
    n_arr, x_arr = _fit_points(n, x, 3, "USL", scale)
    c2, c1, c0 = np.polyfit(n_arr, n_arr / x_arr, 2)
    total = c0 + c1 + c2
    lam0 = 1.0 / total if total > 0 else float(np.max(x_arr / n_arr))
    kappa0 = float(max(c2 * lam0, 0.0))
    sigma0 = float(np.clip(c1 * lam0 + kappa0, 0.0, 1.0))
    popt, pcov = _curve_fit(_usl, _log_usl, n_arr, x_arr, [lam0, sigma0, kappa0],
                            ([0.0, 0.0, 0.0], [np.inf, 1.0, np.inf]), scale)
    dof = n_arr.size - 3
    lam_ci, sigma_ci, kappa_ci = _cis(popt, pcov, dof)
    kappa_ci = _clip(kappa_ci, 0.0, math.inf)
    peak, peak_ci = _peak(popt, pcov, kappa_ci, float(np.max(n_arr)), dof)
    return USLFit(
        lambda_=float(popt[0]),
        sigma=float(popt[1]),
        kappa=float(popt[2]),
        lambda_ci=_clip(lam_ci, 0.0, math.inf),
        sigma_ci=_clip(sigma_ci, 0.0, 1.0),
        kappa_ci=kappa_ci,
        peak_n=peak,
        rmse=_rmse(x_arr - _usl(n_arr, *popt)),
        peak_n_ci=peak_ci,
        scale=scale,
    )


def karp_flatt(speedup: float, n: int) -> float | None:
    """Return the Karp-Flatt serial fraction (1/S − 1/N)/(1 − 1/N); None for N = 1, S <= 0 or S > N.

    A superlinear S > N (caches, a slow baseline) would give a negative "serial fraction": the
    metric assumes S <= N (Karp & Flatt 1990), so none is stated and the verdict warns instead.
    """
    if n <= 1 or speedup <= 0.0 or speedup > n:
        return None
    return (1.0 / speedup - 1.0 / n) / (1.0 - 1.0 / n)


def _check_table(n_values: Sequence[int], throughputs_per_n: Sequence[np.ndarray]) -> list[int]:
    """Return the N values as ints; raise ValueError on mismatched, duplicate or bad N."""
    if len(n_values) != len(throughputs_per_n):
        raise ValueError(f"{len(n_values)} N values but {len(throughputs_per_n)} throughput arrays")
    if len(n_values) == 0:
        raise ValueError("scaling_table needs at least one N")
    ns = [int(v) for v in n_values]
    if len(set(ns)) != len(ns):
        raise ValueError(f"N values must be distinct, got {ns}")
    if min(ns) < 1:
        raise ValueError(f"N values must be >= 1, got {ns}")
    return ns


def scaling_table(
    n_values: Sequence[int],
    throughputs_per_n: Sequence[np.ndarray],
    *,
    mode: object = "strong",
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[ScalingRow, ...]:
    """Build one ScalingRow per N, sorted by N, from per-N per-round aggregate throughputs.

    X(N) is the median over rounds at N (stats.summarize, with its bootstrap CI). The
    reference is the smallest N measured, N0: S(N) = X(N)/X(N0)·N0, which is X(N)/X(1) when
    N0 = 1 and otherwise assumes ideal scaling up to N0. The CI of S(N) is the bootstrap CI of
    the ratio of medians, each N's rounds resampled independently; E(N)'s is S's over N. In
    weak mode S is the scaled speedup and Karp-Flatt is None (defined for strong scaling only).

    Args:
        n_values: distinct worker counts (>= 1).
        throughputs_per_n: for each N, a 1-D array of per-round aggregate throughputs (ops/s).
        mode: "strong" (fixed total work) or "weak" (fixed work per worker), or an enum of them.
        confidence: level of every CI; seed: the bootstrap's seed (reproducible).

    Raises:
        ValueError: unknown mode, mismatched lengths, duplicate or non-positive N, empty
            samples, or a zero median at the smallest N.
    """
    strong = mode_name(mode) == "strong"
    ns = _check_table(n_values, throughputs_per_n)
    order = sorted(range(len(ns)), key=ns.__getitem__)
    points = [(ns[i], np.asarray(throughputs_per_n[i], dtype=float).ravel()) for i in order]
    summaries = [summarize(x, confidence=confidence, seed=seed) for _, x in points]
    (n0, x0), ref = points[0], summaries[0].median
    if ref == 0.0:
        raise ValueError(f"median throughput at N={n0} is 0; speedup is undefined")
    enough = min_units_for_ci(confidence)
    rows = []
    for (n, x), summary in zip(points, summaries, strict=True):
        speedup = summary.median / ref * n0
        ci: tuple[float | None, float | None] = (None, None)
        if n == n0:
            ci = (speedup, speedup)
        elif min(x.size, x0.size) >= enough:
            low, high = bootstrap_ratio_ci(x0, x, confidence=confidence, seed=seed)
            ci = (float(low) * n0, float(high) * n0)
        rows.append(ScalingRow(
            n=n,
            throughput_median=summary.median,
            throughput_ci_low=summary.ci_low,
            throughput_ci_high=summary.ci_high,
            speedup=speedup,
            efficiency=speedup / n,
            karp_flatt=karp_flatt(speedup, n) if strong else None,
            speedup_ci_low=ci[0],
            speedup_ci_high=ci[1],
            efficiency_ci_low=None if ci[0] is None else ci[0] / n,
            efficiency_ci_high=None if ci[1] is None else ci[1] / n,
        ))
    return tuple(rows)


def _count(n: float, dimension: str) -> str:
    """Format "4 workers" / "1 worker" (singular by dropping a trailing 's')."""
    text = f"{n:g}"
    noun = dimension[:-1] if text == "1" and dimension.endswith("s") else dimension
    return f"{text} {noun}"


def _efficiency_text(row: ScalingRow) -> str:
    return (f"efficiency {row.efficiency:.2f} (95% CI {row.efficiency_ci_low:.2f}–"
            f"{row.efficiency_ci_high:.2f})")


def _peak_text(usl: USLFit | None, dimension: str, lowest: float, highest: float = math.inf) -> str:
    """Return "; USL peak at N* ..." when the fitted peak lies from ``lowest`` to ``highest``, else ""."""
    if usl is None or usl.peak_n is None or usl.peak_n_ci is None or not lowest <= usl.peak_n <= highest:
        return ""
    low, high = usl.peak_n_ci
    return (f"; USL peak at {_count(round(usl.peak_n, 1), dimension)} "
            f"(95% CI {low:.1f}–{high:.1f})")


def _has_cis(rows: Sequence[ScalingRow]) -> bool:
    return all(r.throughput_ci_low is not None and r.efficiency_ci_low is not None for r in rows)


def retrograde(rows: Sequence[ScalingRow]) -> ScalingRow | None:
    """Return the best point when the largest N is significantly and materially below it; None without CIs.

    Significant: the two throughput CIs do not overlap (a conservative test, Schenker &
    Gentleman 2001); material: the median dropped by more than RETROGRADE_DROP.
    """
    rows = sorted(rows, key=lambda r: r.n)
    last = rows[-1]
    best = max(rows, key=lambda r: r.throughput_median)
    if last.throughput_ci_high is None or best.throughput_ci_low is None:
        return None
    drop = last.throughput_median < best.throughput_median * (1.0 - RETROGRADE_DROP)
    if best.n < last.n and drop and last.throughput_ci_high < best.throughput_ci_low:
        return best
    return None


def verdict(
    rows: Sequence[ScalingRow],
    usl: USLFit | None,
    amdahl: AmdahlFit | None,
    dimension: str,
    *,
    mode: object = "strong",
) -> str:
    """Say in one line how throughput scales over `dimension` (plural noun, e.g. "workers").

    Judged on the 95% CIs, each claim needing its whole interval past its threshold: retrograde
    when the largest N's throughput CI lies below the best point's and the median dropped more
    than 5% (with the USL's N* only when it lies within the N measured); superlinear (a warning: usually a slow or noisy baseline) when some efficiency CI
    lies above 1.1; linear when the largest N's efficiency CI lies at or above 0.9; sub-linear
    when it lies below 0.9, with the USL σ, κ (and N* when reported, from the smallest N to twice
    the largest) or else Amdahl's s named for `mode`; otherwise the CI straddles 0.9 and the
    verdict says it cannot tell. Without CIs (fewer than 6 rounds at a point) no verdict.
    """
    if not rows:
        return "no scaling points"
    rows = sorted(rows, key=lambda r: r.n)
    last = rows[-1]
    if len(rows) == 1:
        return f"only one point ({_count(last.n, dimension)}); no scaling verdict"
    at_last = f"at {_count(last.n, dimension)}"
    if not _has_cis(rows):
        return (f"efficiency {last.efficiency:.2f} {at_last}; no verdict without CIs "
                f"(every point needs {MIN_UNITS_FOR_CI} rounds)")
    best = retrograde(rows)
    if best is not None:  # a fitted peak outside the measured range would contradict the drop measured
        return (f"retrograde after {_count(best.n, dimension)} (throughput "
                f"{best.throughput_median:.4g} there, {last.throughput_median:.4g} {at_last})"
                + _peak_text(usl, dimension, rows[0].n, last.n))
    superlinear = [r for r in rows[1:] if r.efficiency_ci_low > SUPERLINEAR_EFFICIENCY]
    if superlinear:
        top = max(superlinear, key=lambda r: r.efficiency)
        return (f"superlinear: {_efficiency_text(top)} at {_count(top.n, dimension)}; check the "
                f"baseline at {_count(rows[0].n, dimension)} (noisy or slowed?) before trusting it")
    if last.efficiency_ci_low >= LINEAR_EFFICIENCY:
        return f"scales linearly to {_count(last.n, dimension)}: {_efficiency_text(last)}"
    if last.efficiency_ci_high >= LINEAR_EFFICIENCY:
        return (f"cannot tell linear from sub-linear: {_efficiency_text(last)} {at_last}; "
                f"the CI contains {LINEAR_EFFICIENCY:g}")
    text = f"sub-linear: {_efficiency_text(last)} {at_last}"
    if usl is not None:
        text += f" (USL σ={usl.sigma:.3g}, κ={usl.kappa:.3g})"
        text += _peak_text(usl, dimension, rows[0].n, 2 * last.n)
    elif amdahl is not None:
        text += f" (Amdahl {amdahl_name(mode)} {amdahl.serial_fraction:.3g})"
    return text
