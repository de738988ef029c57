"""Scaling analysis: speedup, efficiency, Karp-Flatt, Amdahl and USL fits, a one-line verdict.

Throughput X(N) for N workers, cores, L3 domains or nodes. Speedup S(N) = X(N)/X(1), parallel
efficiency E(N) = S(N)/N, Karp-Flatt serial fraction e = (1/S − 1/N)/(1 − 1/N) (Karp & Flatt
1990). Fits: Amdahl's law X(N) = X1·N/(1 + s(N−1)) (Amdahl 1967) and the Universal Scalability
Law X(N) = λN/(1 + σ(N−1) + κN(N−1)) (Gunther 1993), by `scipy.optimize.curve_fit` with
confidence intervals from the fit covariance and Student's t.

Strong scaling (fixed total work) and weak scaling (fixed work per worker) use the same
formulas here, because X(N) is always the aggregate throughput of all N workers (their ops
over each synchronized round's wall time): under weak scaling ideal X(N) is still N·X(1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.optimize
import scipy.stats

from orchestrator.analysis.stats import summarize

LINEAR_EFFICIENCY = 0.9
SUPERLINEAR_EFFICIENCY = 1.1
"""Parallel efficiency at the largest N from which the verdict calls the scaling linear."""

RETROGRADE_DROP = 0.05
"""Relative drop of throughput below the best point that makes the verdict say retrograde."""

FIT_CONFIDENCE = 0.95
"""Confidence level of the fitted parameters' intervals."""

MODES = ("strong", "weak")


class NotEnoughPoints(ValueError):
    """Raised when a fit has fewer distinct N than its parameters + 1."""


@dataclass(frozen=True, slots=True)
class AmdahlFit:
    """Amdahl's law X(N) = X1·N/(1 + s(N−1)) fitted to throughput (Amdahl 1967)."""

    serial_fraction: float
    """s in [0, 1]."""
    serial_fraction_ci: tuple[float, float]
    """95% CI of s from the covariance and Student's t, clipped to [0, 1]."""
    x1: float
    """Fitted single-worker throughput X1, in the unit of the data (e.g. ops/s)."""
    rmse: float
    """Root-mean-square residual of the fit, in the unit of the data."""


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
    """N* = sqrt((1 − σ)/κ) where throughput peaks; None when κ = 0."""
    rmse: float
    """Root-mean-square residual of the fit, in the unit of the data."""


@dataclass(frozen=True, slots=True)
class ScalingRow:
    """One scaling point: throughput at N and the derived ratios."""

    n: int
    throughput_median: float
    throughput_ci_low: float | None
    """Bootstrap 95% CI of the median throughput; None with fewer than 3 samples."""
    throughput_ci_high: float | None
    speedup: float
    """S(N) = X(N)/X(N0)·N0 where N0 is the smallest N measured (X(N)/X(1) when N0 = 1)."""
    efficiency: float
    """E(N) = S(N)/N; 1.0 is ideal."""
    karp_flatt: float | None
    """Experimentally determined serial fraction; None for N = 1 or a zero speedup."""


def _amdahl(n: np.ndarray, x1: float, s: float) -> np.ndarray:
    return x1 * n / (1.0 + s * (n - 1.0))


def _usl(n: np.ndarray, lam: float, sigma: float, kappa: float) -> np.ndarray:
    return lam * n / (1.0 + sigma * (n - 1.0) + kappa * n * (n - 1.0))


def _fit_points(
    n: Sequence[float] | np.ndarray, x: Sequence[float] | np.ndarray, params: int, name: str
) -> tuple[np.ndarray, np.ndarray]:
    """Return (n, x) as float arrays; raise NotEnoughPoints with fewer than params + 1 distinct N."""
    n_arr = np.asarray(n, dtype=float).ravel()
    x_arr = np.asarray(x, dtype=float).ravel()
    if n_arr.shape != x_arr.shape:
        raise ValueError(f"n and x have {n_arr.size} and {x_arr.size} values; they must match")
    if not (np.all(np.isfinite(n_arr)) and np.all(np.isfinite(x_arr))):
        raise ValueError("n and x must be finite")
    if np.any(n_arr < 1):
        raise ValueError("every N must be >= 1")
    distinct = int(np.unique(n_arr).size)
    if distinct < params + 1:
        raise NotEnoughPoints(
            f"{name} fit needs at least {params + 1} distinct N ({params} parameters + 1), "
            f"got {distinct}"
        )
    return n_arr, x_arr


def _cis(popt: np.ndarray, pcov: np.ndarray, dof: int) -> list[tuple[float, float]]:
    """Return symmetric t-intervals popt ± t·sqrt(diag(pcov)) (inf-wide when pcov is unknown)."""
    t = float(scipy.stats.t.ppf(0.5 + FIT_CONFIDENCE / 2.0, dof))
    with np.errstate(invalid="ignore"):
        se = np.sqrt(np.diag(pcov))
    se = np.where(np.isfinite(se), se, np.inf)
    return [(float(p - t * e), float(p + t * e)) for p, e in zip(popt, se, strict=True)]


def _clip(ci: tuple[float, float], low: float, high: float) -> tuple[float, float]:
    return (min(max(ci[0], low), high), min(max(ci[1], low), high))


def _rmse(residuals: np.ndarray) -> float:
    return float(np.sqrt(np.mean(residuals**2)))


def fit_amdahl(n: Sequence[float] | np.ndarray, x: Sequence[float] | np.ndarray) -> AmdahlFit:
    """Fit Amdahl's law X(N) = X1·N/(1 + s(N−1)) to throughputs x at worker counts n (Amdahl 1967).

    Several samples per N are allowed; all points are fitted. The start values come from the
    linearization N/X = ((1 − s) + sN)/X1.

    Args:
        n: worker counts, shape (points,).
        x: aggregate throughput at each n (any unit, e.g. ops/s), shape (points,).

    Returns:
        The fit; s bounded to [0, 1], its CI from the covariance with t at points − 2 dof.

    Raises:
        NotEnoughPoints: fewer than 3 distinct N.
    """
    n_arr, x_arr = _fit_points(n, x, 2, "Amdahl")
    c1, c0 = np.polyfit(n_arr, n_arr / x_arr, 1)
    x1_0 = 1.0 / (c0 + c1) if c0 + c1 > 0 else float(np.max(x_arr / n_arr))
    s0 = float(np.clip(c1 * x1_0, 0.0, 1.0))
    popt, pcov = scipy.optimize.curve_fit(
        _amdahl,
        n_arr,
        x_arr,
        p0=[x1_0, s0],
        bounds=([0.0, 0.0], [np.inf, 1.0]),
        x_scale="jac",
    )
    dof = n_arr.size - 2
    ci = _clip(_cis(popt, pcov, dof)[1], 0.0, 1.0)
    return AmdahlFit(
        serial_fraction=float(popt[1]),
        serial_fraction_ci=ci,
        x1=float(popt[0]),
        rmse=_rmse(x_arr - _amdahl(n_arr, *popt)),
    )


def fit_usl(n: Sequence[float] | np.ndarray, x: Sequence[float] | np.ndarray) -> USLFit:
    """Fit the Universal Scalability Law X(N) = λN/(1 + σ(N−1) + κN(N−1)) (Gunther 1993).

    Several samples per N are allowed; all points are fitted. Bounds: λ > 0, σ in [0, 1],
    κ >= 0. The start values come from the quadratic N/X = ((1−σ) + (σ−κ)N + κN²)/λ.

    Args:
        n: worker counts, shape (points,).
        x: aggregate throughput at each n (any unit, e.g. ops/s), shape (points,).

    Returns:
        The fit with t-intervals from the covariance (points − 3 dof) and the peak
        N* = sqrt((1 − σ)/κ), None when κ = 0.

    Raises:
        NotEnoughPoints: fewer than 4 distinct N.
    """
    n_arr, x_arr = _fit_points(n, x, 3, "USL")
    c2, c1, c0 = np.polyfit(n_arr, n_arr / x_arr, 2)
    total = c0 + c1 + c2
    lam0 = 1.0 / total if total > 0 else float(np.max(x_arr / n_arr))
    kappa0 = float(max(c2 * lam0, 0.0))
    sigma0 = float(np.clip(c1 * lam0 + kappa0, 0.0, 1.0))
    popt, pcov = scipy.optimize.curve_fit(
        _usl,
        n_arr,
        x_arr,
        p0=[lam0, sigma0, kappa0],
        bounds=([0.0, 0.0, 0.0], [np.inf, 1.0, np.inf]),
        x_scale="jac",
    )
    lam, sigma, kappa = (float(v) for v in popt)
    lam_ci, sigma_ci, kappa_ci = _cis(popt, pcov, n_arr.size - 3)
    peak = math.sqrt((1.0 - sigma) / kappa) if kappa > 0.0 else None
    return USLFit(
        lambda_=lam,
        sigma=sigma,
        kappa=kappa,
        lambda_ci=_clip(lam_ci, 0.0, math.inf),
        sigma_ci=_clip(sigma_ci, 0.0, 1.0),
        kappa_ci=_clip(kappa_ci, 0.0, math.inf),
        peak_n=peak,
        rmse=_rmse(x_arr - _usl(n_arr, *popt)),
    )


def karp_flatt(speedup: float, n: int) -> float | None:
    """Return the Karp-Flatt serial fraction (1/S − 1/N)/(1 − 1/N); None for N = 1 or S <= 0."""
    if n <= 1 or speedup <= 0.0:
        return None
    return (1.0 / speedup - 1.0 / n) / (1.0 - 1.0 / n)


def scaling_table(
    n_values: Sequence[int],
    throughputs_per_n: Sequence[np.ndarray],
    *,
    mode: str = "strong",
) -> tuple[ScalingRow, ...]:
    """Build one ScalingRow per N, sorted by N, from per-N throughput samples.

    X(N) is the median of the samples at N (stats.summarize, with its bootstrap CI). The
    reference is the smallest N measured, N0: S(N) = X(N)/X(N0)·N0, which is X(N)/X(1) when
    N0 = 1 and otherwise assumes ideal scaling up to N0. Strong and weak scaling use the same
    formulas because the throughput is the aggregate over all workers; `mode` is validated
    and recorded by the caller.

    Args:
        n_values: distinct worker counts (>= 1).
        throughputs_per_n: for each N, a 1-D array of aggregate throughputs (e.g. ops/s).
        mode: "strong" (fixed total work) or "weak" (fixed work per worker).

    Raises:
        ValueError: unknown mode, mismatched lengths, duplicate or non-positive N, empty
            samples, or a zero median at the smallest N.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if len(n_values) != len(throughputs_per_n):
        raise ValueError(f"{len(n_values)} N values but {len(throughputs_per_n)} throughput arrays")
    if len(n_values) == 0:
        raise ValueError("scaling_table needs at least one N")
    ns = [int(v) for v in n_values]
    if len(set(ns)) != len(ns):
        raise ValueError(f"N values must be distinct, got {ns}")
    if min(ns) < 1:
        raise ValueError(f"N values must be >= 1, got {ns}")
    order = sorted(range(len(ns)), key=ns.__getitem__)
    summaries = [(ns[i], summarize(throughputs_per_n[i])) for i in order]
    n0, ref = summaries[0][0], summaries[0][1].median
    if ref == 0.0:
        raise ValueError(f"median throughput at N={n0} is 0; speedup is undefined")
    rows = []
    for n, summary in summaries:
        speedup = summary.median / ref * n0
        rows.append(
            ScalingRow(
                n=n,
                throughput_median=summary.median,
                throughput_ci_low=summary.ci_low,
                throughput_ci_high=summary.ci_high,
                speedup=speedup,
                efficiency=speedup / n,
                karp_flatt=karp_flatt(speedup, n),
            )
        )
    return tuple(rows)


def _count(n: float, dimension: str) -> str:
    """Format "4 workers" / "1 worker" (singular by dropping a trailing 's')."""
    text = f"{n:g}"
    noun = dimension[:-1] if text == "1" and dimension.endswith("s") else dimension
    return f"{text} {noun}"


def verdict(
    rows: Sequence[ScalingRow],
    usl: USLFit | None,
    amdahl: AmdahlFit | None,
    dimension: str,
) -> str:
    """Say in one line how throughput scales over `dimension` (plural noun, e.g. "workers").

    Retrograde when the largest N is more than 5% below the best median; superlinear (a
    warning: usually a slow or noisy baseline, sometimes a real cache effect) when any
    efficiency exceeds 1.1; linear when the
    efficiency at the largest N is >= 0.9; otherwise sub-linear, with the USL σ, κ (and its
    peak when within twice the largest N measured) or else the Amdahl serial fraction.
    """
    if not rows:
        return "no scaling points"
    rows = sorted(rows, key=lambda r: r.n)
    last = rows[-1]
    if len(rows) == 1:
        return f"only one point ({_count(last.n, dimension)}); no scaling verdict"
    best = max(rows, key=lambda r: r.throughput_median)
    if best.n < last.n and last.throughput_median < best.throughput_median * (
        1.0 - RETROGRADE_DROP
    ):
        text = (
            f"retrograde after {_count(best.n, dimension)} (throughput {best.throughput_median:.4g}"
            f" there, {last.throughput_median:.4g} at {_count(last.n, dimension)})"
        )
        if usl is not None and usl.peak_n is not None:
            text += f"; USL peak at {_count(round(usl.peak_n, 1), dimension)}"
        return text
    peak_eff = max(rows[1:], key=lambda r: r.efficiency)
    if peak_eff.efficiency > SUPERLINEAR_EFFICIENCY:
        return (f"superlinear: efficiency {peak_eff.efficiency:.2f} at {_count(peak_eff.n, dimension)}; "
                f"check the baseline at {_count(rows[0].n, dimension)} (noisy or slowed?) before trusting it")
    if last.efficiency >= LINEAR_EFFICIENCY:
        return f"scales linearly to {_count(last.n, dimension)} (efficiency {last.efficiency:.2f})"
    text = f"sub-linear: efficiency {last.efficiency:.2f} at {_count(last.n, dimension)}"
    if usl is not None:
        text += f" (USL σ={usl.sigma:.3g}, κ={usl.kappa:.3g})"
        if usl.peak_n is not None and usl.peak_n <= 2 * last.n:
            text += f"; USL peak at {_count(round(usl.peak_n, 1), dimension)}"
    elif amdahl is not None:
        text += f" (Amdahl serial fraction {amdahl.serial_fraction:.3g})"
    return text
