"""How many invocations and rounds: a stated precision at least cost, and the A/A rate they give.

From variance components (analysis/components.py, log scale), as Kalibera & Jones (2013) plan
repetitions: an invocation's figure (the median of R rounds) has variance
between_invocations + e_R · between_rounds / R, with e_R = 1 for R <= 2 (a mean) and π/2 from
3 on (the asymptotic relative variance of a normal median, an upper bound for small R: so a plan
never promises more than it delivers). K invocations cost K × (invocation_cost_s + R ×
round_cost_s); the cheapest (K, R) whose expected CI half-width meets the target is searched on
the integer grid (their closed form R* = sqrt(c_inv·σ²_round / (c_round·σ²_inv)) is its
continuous optimum).

`false_pair_rate` is the chance that two single runs of the same code get a false
faster/slower (the A/A goal of issue 20) when compared on basis "invocations" although runs do
add variance of their own: the test's variance misses K · between_runs / var(figure) of it.

Choosing the default K: measure the components of every metric over about 10 runs of a few
invocations each on the target machine; `largest_safe_invocations` caps K where single runs
still meet the A/A goal (at most one false pair in 20: goal 0.05 over all tested metrics);
below the cap take the K `plan_repetitions` finds for the precision wanted. A precision the cap
does not allow comes from a history prior (analysis/hierarchical.py), not from more invocations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from orchestrator.analysis.components import VarianceComponents
from orchestrator.analysis.invocations import MIN_INVOCATIONS_FOR_CI, TrialInterval
from orchestrator.analysis.stats import min_units_for_ci


@dataclass(frozen=True, slots=True)
class RepetitionPlan:
    """The cheapest invocations × rounds that meet a CI half-width target."""

    invocations: int
    rounds_per_invocation: int
    cost_s: float
    """invocations × (invocation_cost_s + rounds_per_invocation × round_cost_s), seconds."""
    half_width_rel: float
    """Expected half-width of the trial's CI as a fraction of its figure (expected_half_width)."""
    interval: TrialInterval
    """The CI the trial will state at that many invocations ("t" or "bootstrap")."""


def _needed(components: VarianceComponents) -> tuple[float, float]:
    if components.between_invocations is None or components.between_rounds is None:
        raise ValueError("between_invocations and between_rounds are needed: measure with at "
                         "least two invocations of at least two rounds")
    return components.between_invocations, components.between_rounds


def figure_variance(components: VarianceComponents, rounds_per_invocation: int) -> float:
    """Return the variance of the log of one invocation's figure (the median of its rounds)."""
    invocation, rounds = _needed(components)
    r = int(rounds_per_invocation)
    if r < 1:
        raise ValueError(f"rounds_per_invocation must be at least 1, got {r}")
    return invocation + (1.0 if r <= 2 else math.pi / 2.0) * rounds / r


def _half_widths(variance: np.ndarray, k: np.ndarray, confidence: float) -> np.ndarray:
    """Return the expected log half-width of the trial CI for figure variances and counts k."""
    import scipy.special
    import scipy.stats  # here, not at import: scipy costs ~1 s before the first sample
    k = np.asarray(k, dtype=float)
    tail = 0.5 + confidence / 2.0
    c4 = np.sqrt(2.0 / (k - 1.0)) * np.exp(scipy.special.gammaln(k / 2.0)
                                           - scipy.special.gammaln((k - 1.0) / 2.0))
    t = scipy.stats.t.ppf(tail, k - 1.0) * c4 * np.sqrt(variance / k)
    boot = scipy.stats.norm.ppf(tail) * np.sqrt(math.pi / 2.0 * variance / k)
    return np.where(k < min_units_for_ci(confidence), t, boot)


def expected_half_width(components: VarianceComponents, invocations: int,
                        rounds_per_invocation: int, confidence: float = 0.95) -> float:
    """Return the expected half-width of a trial's CI as a fraction of its figure.

    Student t below min_units_for_ci invocations: t · c4(K) · sd/sqrt(K), with c4 the mean of
    a sample sd over sd; the bootstrap from there: z · sqrt(π/2 · var/K), that of a median.
    """
    k = int(invocations)
    if k < MIN_INVOCATIONS_FOR_CI:
        raise ValueError(f"invocations must be at least {MIN_INVOCATIONS_FOR_CI} for a CI, got {k}")
    variance = figure_variance(components, rounds_per_invocation)
    return float(math.expm1(_half_widths(np.asarray(variance), np.asarray(k), confidence)))


def plan_repetitions(
    components: VarianceComponents, *, half_width_rel: float, invocation_cost_s: float,
    round_cost_s: float, confidence: float = 0.95, max_invocations: int = 100,
    max_rounds: int = 1000,
) -> RepetitionPlan | None:
    """Return the cheapest invocations and rounds whose trial CI meets `half_width_rel`.

    Args:
        components: of the metric on the machine (between_invocations and between_rounds).
        half_width_rel: target half-width of the trial's CI, a fraction of the figure (0.02).
        invocation_cost_s: seconds per invocation besides its rounds: process start, setup
            (kernel compilation), warm-up and calibration.
        round_cost_s: seconds per round.
        confidence: confidence level of the CI.
        max_invocations, max_rounds: the largest counts considered.

    Returns:
        The plan, at least MIN_INVOCATIONS_FOR_CI invocations (a CI that includes invocations);
        None when no counts within the limits meet the target.
    """
    if not 0.0 < half_width_rel < 1.0:
        raise ValueError(f"half_width_rel must be in (0, 1), got {half_width_rel!r}")
    if invocation_cost_s < 0 or round_cost_s <= 0:
        raise ValueError("costs must be >= 0 s per invocation and > 0 s per round")
    k = np.arange(MIN_INVOCATIONS_FOR_CI, max(MIN_INVOCATIONS_FOR_CI, max_invocations) + 1)
    r = np.arange(1, max(1, max_rounds) + 1)
    variance = np.array([figure_variance(components, int(n)) for n in r])
    width = _half_widths(variance[None, :], k[:, None], confidence)
    cost = k[:, None] * (invocation_cost_s + r[None, :] * round_cost_s)
    cost = np.where(width <= math.log1p(half_width_rel), cost, np.inf)
    i, j = np.unravel_index(np.argmin(cost), cost.shape)
    if not np.isfinite(cost[i, j]):
        return None
    interval: TrialInterval = "t" if k[i] < min_units_for_ci(confidence) else "bootstrap"
    return RepetitionPlan(int(k[i]), int(r[j]), float(cost[i, j]),
                          float(math.expm1(width[i, j])), interval)


def false_pair_rate(components: VarianceComponents, invocations: int,
                    rounds_per_invocation: int, *, metrics: int = 1, alpha: float = 0.01) -> float:
    """Return an upper bound on P(any false faster/slower) comparing two single runs A/A.

    Each side has `invocations` invocations of `rounds_per_invocation` rounds, compared on
    basis "invocations" (Student t on log figures, 2K − 2 df) with Holm over `metrics` metrics
    of these components. The test's variance lacks between_runs, inflating the statistic's
    variance by λ = 1 + K · between_runs / figure_variance; Holm rejects anything only if some
    p < alpha/m, so the rate is at most m · P(|T| > t_(1−alpha/2m) / sqrt(λ)) (Bonferroni).
    alpha (the level) when between_runs is 0.
    """
    import scipy.stats  # here, not at import: scipy costs ~1 s before the first sample
    if components.between_runs is None:
        raise ValueError("between_runs is needed: measure over at least two runs of two "
                         "invocations each")
    k = int(invocations)
    if k < 2:
        raise ValueError(f"invocations must be at least 2 for a test, got {k}")
    df = 2 * k - 2
    inflation = 1.0 + k * components.between_runs / figure_variance(components,
                                                                    rounds_per_invocation)
    critical = scipy.stats.t.isf(alpha / (2.0 * metrics), df)
    per_metric = 2.0 * scipy.stats.t.sf(critical / math.sqrt(inflation), df)
    return float(min(1.0, metrics * per_metric))


def largest_safe_invocations(components: VarianceComponents, rounds_per_invocation: int, *,
                             metrics: int = 1, alpha: float = 0.01, goal: float = 0.05,
                             max_invocations: int = 100) -> int | None:
    """Return the most invocations (<= max_invocations) whose false_pair_rate is within goal.

    max_invocations when runs add nothing (the rate is alpha at any K, if alpha <= goal); None
    when even 2 invocations exceed the goal. The rate grows with K, so the answer is a cap.
    """
    safe = [k for k in range(2, max(2, max_invocations) + 1)
            if false_pair_rate(components, k, rounds_per_invocation, metrics=metrics,
                               alpha=alpha) <= goal]
    return max(safe) if safe else None
