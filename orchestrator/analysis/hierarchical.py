"""Compare one metric NEW against BASE where each side is runs > invocations > rounds.

The model is that of analysis/components.py on the log scale: a round's unit is
mu_side + run + invocation + round. Each side's figure is the median over its runs of each
run's median over invocations of each invocation's median of rounds; the estimate is their
ratio NEW/BASE. What the interval and the test can account for depends on what was repeated,
stated in the result's ``basis`` (stats.Basis):

- "runs" (>= 2 df between runs: 2 runs per side): Student t on the runs' means of log
  invocation figures, pooled, J_base + J_new − 2 df: valid whatever runs add, but 2 vs 2 runs
  is 2 df (t_0.995 = 9.9): in simulation (run sd 1%, invocation sd 3%, 5 invocations) a 10%
  change was caught in 26% of pairs; with a history's prior, in 99%.
- "invocations" (one run per side, or runs asserted to add nothing): Student t on all log
  invocation figures, N_base + N_new − 2 df. Valid when runs add nothing beyond invocations;
  where they do, the level grows with K (planning.false_pair_rate).
- "prior": how much run figures vary, measured over other runs of the same code and machine
  (a series' history, ``PriorVariance.from_runs``), pooled with these runs' own spread:
  Student t with the history's runs − 1 plus these runs' df, exact when the history was
  measured as these runs were. With one run of one invocation per side this is the only way to
  a verdict: the between-invocation variation comes from the history. (Components estimated
  by moments are no substitute: the between-run one from 10 runs of 5 invocations has about
  1 effective df, and with it as a 9-df prior the A/A rate was 0.02 at alpha 0.01.)
- "rounds" (one run of one invocation per side, no prior): no verdict ("too few samples to
  tell"): what a process start changes is not in the data. Ratio, CI and Mann-Whitney p-value
  are ``stats.compare``'s over the rounds, as before invocations.

Why Student t rather than a rank or resampling test: with the few top-level units there are
(2-10 runs or invocations per side) a rank test cannot reach alpha / metrics under Holm (2 vs 2:
p >= 0.33; 5 vs 5: p >= 0.008), nor a bootstrap or permutation p-value below 1/(B+1); the t test
on log figures is exact for normal log effects and its p-value can be as small as the data say.

The CI is the hierarchical bootstrap at the level the basis resamples where it has at least
`min_units_for_ci` units on each side (6 at 95%): ``stats.bootstrap_ratio_ci`` over the run
figures ("runs") or the invocation figures (one run per side, "invocations"), the levels below
kept as they are (Davison & Hinkley 1997, §3.8, Strategy 1; Ren et al. 2010). It covered
0.96-0.97 in simulation at 6-20 units per side (scaled as a trial's bootstrap is: 0.97-0.975;
the two sides' convolution already smooths what the scaling is for). Below 6 units, and with a
prior, it is the t interval of the test, exp(Δ ± t·se), widened to contain the ratio: 0.95.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from orchestrator.analysis.invocations import as_invocations
from orchestrator.analysis.stats import (
    Basis,
    Comparison,
    bootstrap_ratio_ci,
    compare,
    judge_family,
    min_units_for_ci,
)

if TYPE_CHECKING:
    from workloads.base import Better

Run = Sequence[Sequence[float] | np.ndarray] | np.ndarray
"""One run's invocations: 1-D arrays of per-round units, or one array (..., K, R) (vectorized)."""

Side = Sequence[Run]
"""One side of a comparison: its runs."""

MIN_DF = 2
"""Fewest degrees of freedom of a t test this module reports (t with 1 df is Cauchy)."""


@dataclass(frozen=True, slots=True)
class PriorVariance:
    """How much runs' figures vary, measured elsewhere: over a series' history (log scale).

    A run's figure here is the mean of its log invocation figures, so `run_var` holds all
    that differs between runs at that many invocations: runs, invocations, rounds. Measured
    on runs of the same code and machine (between change points of a series).
    """

    run_var: float | np.ndarray
    """Variance of a run's figure between runs (0.03² for 3%); an array (one per leading
    row) where the history was given vectorized."""
    invocations: int
    """Invocations per run it was measured at: with fewer now it is scaled up, never down."""
    df: float
    """Degrees of freedom: runs − 1 of the history; inf: known."""

    def __post_init__(self) -> None:
        var = np.asarray(self.run_var)
        if not (np.all(var >= 0.0) and np.all(np.isfinite(var))):
            raise ValueError(f"run_var must be a finite variance >= 0, got {self.run_var!r}")
        if self.invocations < 1:
            raise ValueError(f"invocations must be at least 1, got {self.invocations!r}")
        if not self.df > 0.0:
            raise ValueError(f"df must be > 0, got {self.df!r}")

    @classmethod
    def from_runs(cls, runs: Side) -> PriorVariance:
        """Return the prior of a history's runs: per-round units per invocation per run.

        Runs given as arrays (..., K, R) give one variance per leading row (vectorized).

        Raises:
            ValueError: fewer than 2 runs, or a unit that is not finite and positive.
        """
        prepared = _side(runs, "runs")
        if len(prepared) < 2:
            raise ValueError("a prior needs at least 2 runs of history")
        means = np.stack([_log(f, "runs").mean(axis=-1) for f in prepared], axis=-1)
        var = means.var(axis=-1, ddof=1)
        return cls(float(var) if var.ndim == 0 else var, min(f.shape[-1] for f in prepared),
                   float(len(prepared) - 1))


@dataclass(frozen=True, slots=True)
class TTest:
    """Student t test of the difference of log figures, NEW − BASE (arrays when vectorized)."""

    delta_log: np.ndarray
    """Estimated log ratio: difference of the sides' means of log figures."""
    se_log: np.ndarray
    """Its standard error."""
    df: np.ndarray
    """Degrees of freedom (inf with a known prior and no estimated term)."""
    p_value: np.ndarray
    """Two-sided p-value; 1 where se and delta are 0, 0 where only se is."""


def _figures(run: Run, name: str) -> np.ndarray:
    """Return a run's invocation figures, the medians of their rounds: (..., K)."""
    if isinstance(run, np.ndarray):
        x = np.asarray(run, dtype=float)
        if x.ndim < 2 or x.shape[-1] == 0 or x.shape[-2] == 0:
            raise ValueError(f"{name} must be (..., invocations, rounds), got shape {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError(f"{name} contains NaN or infinite values; drop incomplete rounds")
        return np.median(x, axis=-1)
    return np.array([np.median(x) for x in as_invocations(run, name)])


def _log(x: np.ndarray, name: str) -> np.ndarray:
    if np.any(x <= 0.0):
        raise ValueError(f"{name} has a value <= 0; comparisons are of ratios, of positive units")
    return np.log(x)


def _side(side: Side, name: str) -> list[np.ndarray]:
    """Return each run's invocation figures; raise ValueError when the side has no run."""
    if len(side) == 0:
        raise ValueError(f"{name} has no run")
    return [_figures(run, f"{name}[{j}]") for j, run in enumerate(side)]


def _counts(side: list[np.ndarray]) -> tuple[int, int]:
    """Return (runs, invocations) of a side."""
    return len(side), sum(f.shape[-1] for f in side)


def _available(base: list[np.ndarray], new: list[np.ndarray],
               prior: PriorVariance | None) -> list[Basis]:
    """Return the bases the data support, most informative first."""
    (jb, nb), (jn, nn) = _counts(base), _counts(new)
    out: list[Basis] = []
    if prior is not None and prior.df + jb + jn - 2 >= MIN_DF:
        out.append("prior")
    if jb + jn - 2 >= MIN_DF:
        out.append("runs")
    if nb + nn - 2 >= MIN_DF:
        out.append("invocations")
    return [*out, "rounds"]


def _t_test(base: list[np.ndarray], new: list[np.ndarray], basis: Basis,
            prior: PriorVariance | None) -> TTest:
    """Return the Student t test of `basis` on the log invocation figures (module docstring)."""
    from scipy.special import stdtr  # here, not at import; not scipy.stats, which costs ~1 s more
    logs = [[_log(f, name) for f in side] for side, name in ((base, "base"), (new, "new"))]
    if basis == "invocations":
        pooled = [np.concatenate(side, axis=-1) for side in logs]
        means = [x.mean(axis=-1) for x in pooled]
        n = [x.shape[-1] for x in pooled]
        df = float(sum(n) - 2)
        s2 = sum(((x - m[..., None]) ** 2).sum(axis=-1) for x, m in zip(pooled, means)) / df
        var = s2 * (1.0 / n[0] + 1.0 / n[1])
        dfs = np.full(np.shape(var), df)
    else:
        runs = [np.stack([x.mean(axis=-1) for x in side], axis=-1) for side in logs]
        means = [u.mean(axis=-1) for u in runs]
        j = [u.shape[-1] for u in runs]
        if basis == "runs":
            df = float(sum(j) - 2)
            s2 = sum(((u - m[..., None]) ** 2).sum(axis=-1) for u, m in zip(runs, means)) / df
            var = s2 * (1.0 / j[0] + 1.0 / j[1])
            dfs = np.full(np.shape(var), df)
        else:
            var, dfs = _prior_variance(base + new, runs, prior)
    delta = means[1] - means[0]
    se = np.sqrt(var)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = 2.0 * stdtr(dfs, -np.abs(delta) / se)
    p = np.where(se > 0, p, np.where(delta == 0, 1.0, 0.0))
    return TTest(delta, se, dfs, p)


def _prior_variance(figures: list[np.ndarray], runs: list[np.ndarray],
                    prior: PriorVariance | None) -> tuple[np.ndarray, np.ndarray]:
    """Return Var(Δ) from the prior pooled with these runs' own spread, and its df.

    The prior is scaled by max(1, its invocations / the fewest here): a run's figure varies
    as between_runs + var(figure) / K, so with fewer invocations at most by that factor.
    """
    if prior is None:
        raise ValueError('basis "prior" needs a PriorVariance')
    fewest = min(f.shape[-1] for f in figures)
    scaled = prior.run_var * max(1.0, prior.invocations / fewest)
    own_df = sum(u.shape[-1] - 1 for u in runs)
    own_ss = sum(((u - u.mean(axis=-1, keepdims=True)) ** 2).sum(axis=-1) for u in runs)
    if math.isinf(prior.df):
        pooled, df = np.asarray(scaled), math.inf
    else:
        pooled, df = (prior.df * scaled + own_ss) / (prior.df + own_df), prior.df + own_df
    var = pooled * sum(1.0 / u.shape[-1] for u in runs)
    return var, np.full(np.shape(var), df)


def _run_figures(side: list[np.ndarray]) -> np.ndarray:
    """Return each run's figure, the median of its invocation figures: (..., J)."""
    return np.stack([np.median(f, axis=-1) for f in side], axis=-1)


def _bootstrap_units(base: list[np.ndarray], new: list[np.ndarray], basis: Basis,
                     confidence: float) -> tuple[np.ndarray, np.ndarray] | None:
    """Return the figures the bootstrap resamples per side, or None when a side has too few."""
    least = min_units_for_ci(confidence)
    if basis == "runs":
        units = [_run_figures(base), _run_figures(new)]
    elif basis == "invocations" and len(base) == 1 and len(new) == 1:
        units = [base[0], new[0]]
    else:
        return None
    if min(u.shape[-1] for u in units) < least:
        return None
    return units[0], units[1]


def _ratio_ci(base: list[np.ndarray], new: list[np.ndarray], basis: Basis, test: TTest,
              confidence: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the CI of the ratio of side figures (module docstring), vectorized."""
    from scipy.special import stdtrit  # here, not at import; not scipy.stats, which costs ~1 s more
    units = _bootstrap_units(base, new, basis, confidence)
    if units is not None:
        return bootstrap_ratio_ci(units[0], units[1], confidence=confidence, seed=seed)
    half = stdtrit(test.df, 0.5 + confidence / 2.0) * test.se_log
    log_ratio = np.log(np.median(_run_figures(new), axis=-1)
                       / np.median(_run_figures(base), axis=-1))
    return (np.exp(np.minimum(test.delta_log - half, log_ratio)),
            np.exp(np.maximum(test.delta_log + half, log_ratio)))


def _checked(b: list[np.ndarray], n: list[np.ndarray], basis: Basis,
             prior: PriorVariance | None) -> None:
    available = _available(b, n, prior)
    if basis == "rounds" or basis not in available:
        raise ValueError(f"basis {basis!r} is not available here; these are: "
                         f"{', '.join(b for b in available if b != 'rounds')}")


def hierarchical_test(base: Side, new: Side, *, basis: Basis, prior: PriorVariance | None = None,
                      confidence: float = 0.95,
                      seed: int = 0) -> tuple[TTest, np.ndarray, np.ndarray]:
    """Return the t test and the ratio CI (low, high) of NEW against BASE on `basis`.

    Vectorized: a run given as an array (..., K, R) makes every result an array over the
    leading axes, each row as `compare_hierarchical` reports it. Not for basis "rounds".

    Raises:
        ValueError: the basis is "rounds" or the data lack it (see `available_bases`), or a
            value is not finite and positive.
    """
    b, n = _side(base, "base"), _side(new, "new")
    _checked(b, n, basis, prior)
    test = _t_test(b, n, basis, prior)
    low, high = _ratio_ci(b, n, basis, test, confidence, seed)
    return test, low, high


def available_bases(base: Side, new: Side, prior: PriorVariance | None = None) -> tuple[Basis, ...]:
    """Return the bases these sides support, the one `compare_hierarchical` picks first.

    "prior" with a prior of 2 df with these runs' own; "runs" from 2 df between runs (2 runs
    per side); "invocations" from 2 df between invocations (with several runs per side: an
    assertion that runs add nothing, so only on request); "rounds" always.
    """
    return tuple(_available(_side(base, "base"), _side(new, "new"), prior))


def _pooled_rounds(side: Side) -> np.ndarray:
    return np.concatenate([np.ravel(x) for run in side for x in run])


def compare_hierarchical(
    base: Side,
    new: Side,
    *,
    better: Better = "higher",
    alpha: float = 0.01,
    confidence: float = 0.95,
    seed: int = 0,
    prior: PriorVariance | None = None,
    basis: Basis | None = None,
) -> Comparison:
    """Compare NEW against BASE runs of one metric: ratio of figures, CI, p-value, verdict.

    A family of one, as ``stats.compare``: pass every metric's result through
    ``stats.judge_family`` for Holm. Verdict: "descriptive" when `better` is None; "too few
    samples to tell" on basis "rounds"; "faster"/"slower" when p < alpha AND the CI excludes 1;
    else "no significant change". base_n/new_n count runs on basis "runs", else invocations.

    Args:
        base, new: per run, per invocation, the per-round units (means over workers).
        better: "higher", "lower" or None (descriptive).
        alpha: significance level of this one comparison.
        confidence: confidence level of the ratio's CI.
        seed: seed of the bootstrap.
        prior: the variance of run figures over a history; with it, the basis is "prior".
        basis: None picks the first of `available_bases`; "invocations" with several runs per
            side asserts that runs add nothing beyond invocations; "rounds" asks for no verdict
            (``stats.compare`` over all rounds of a side pooled, as before invocations).

    Raises:
        ValueError: empty or non-finite data, a requested basis the data lack, a value <= 0
            (other than on basis "rounds"), or BASE's median 0 there.
    """
    if better not in ("higher", "lower", None):
        raise ValueError(f"better must be 'higher', 'lower' or None, got {better!r}")
    b, n = _side(base, "base"), _side(new, "new")
    chosen = basis or _available(b, n, prior)[0]
    if chosen == "rounds":
        c = compare(_pooled_rounds(base), _pooled_rounds(new), better=better, alpha=alpha,
                    confidence=confidence, seed=seed)
        if c.better is None:
            return c
        return dataclasses.replace(c, p_adjusted=None, verdict="too few samples to tell")
    _checked(b, n, chosen, prior)
    test = _t_test(b, n, chosen, prior)
    low, high = _ratio_ci(b, n, chosen, test, confidence, seed)
    base_figure = float(np.median(_run_figures(b)))
    new_figure = float(np.median(_run_figures(n)))
    level = 0 if chosen == "runs" else 1
    result = Comparison(
        base_n=_counts(b)[level],
        new_n=_counts(n)[level],
        base_median=base_figure,
        new_median=new_figure,
        ratio=new_figure / base_figure,
        ratio_ci_low=float(low),
        ratio_ci_high=float(high),
        p_value=float(test.p_value),
        p_adjusted=None if better is None else float(test.p_value),
        verdict="descriptive" if better is None else "no significant change",
        better=better,
        basis=chosen,
    )
    return judge_family((result,), alpha)[0]
