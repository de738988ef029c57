"""Tests for orchestrator.analysis.invocations: a trial's figure and CI over invocations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats

from orchestrator.analysis.invocations import (
    MIN_INVOCATIONS_FOR_CI,
    invocation_ci,
    scale_spread,
    summarize_invocations,
    t_interval,
)
from orchestrator.analysis.stats import bootstrap_median_ci, round_means, summarize_rounds


def _invocations(k: int, rounds: int = 10, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [100.0 * (1.0 + 0.03 * rng.standard_normal() + 0.01 * rng.standard_normal(rounds))
            for _ in range(k)]


# --- one invocation reads as the round statistics did ---------------------------------------


@pytest.mark.parametrize(("rounds", "seed"), [(6, 0), (10, 3), (37, 5)])
def test_one_invocation_is_todays_round_summary(rounds, seed):
    values = np.random.default_rng(seed).lognormal(3.0, 0.1, size=(rounds, 4))  # rounds x workers
    today = summarize_rounds(values, seed=seed).per_worker
    s = summarize_invocations([round_means(values)], seed=seed)
    assert (s.median, s.ci_low, s.ci_high) == (today.median, today.ci_low, today.ci_high)
    assert (s.invocations, s.rounds, s.interval, s.figures) == (1, rounds, "rounds", (today.median,))


def test_one_invocation_below_six_rounds_has_no_ci():
    s = summarize_invocations([np.arange(1.0, 6.0)])
    assert (s.median, s.ci_low, s.ci_high, s.interval) == (3.0, None, None, "none")
    assert summarize_invocations([np.arange(1.0, 8.0)], confidence=0.99).interval == "none"


# --- the figure and the rules by invocation count -----------------------------------------


def test_figure_is_the_median_of_invocation_medians():
    # medians 2, 10, 7 (one invocation of 4 rounds: (6 + 8) / 2); ragged round counts are fine
    s = summarize_invocations([[1.0, 2.0, 30.0], [10.0], [6.0, 9.0, 5.0, 8.0]])
    assert s.figures == (2.0, 10.0, 7.0)
    assert (s.median, s.invocations, s.rounds) == (7.0, 3, 8)


def test_two_invocations_state_no_ci():
    s = summarize_invocations(_invocations(2))
    assert MIN_INVOCATIONS_FOR_CI == 3
    assert (s.ci_low, s.ci_high, s.interval) == (None, None, "none")
    assert s.median == pytest.approx(np.mean(s.figures))


@pytest.mark.parametrize("k", [3, 4, 5])
def test_few_invocations_get_a_t_interval_on_log_figures(k):
    s = summarize_invocations(_invocations(k, seed=k))
    logs = np.log(s.figures)
    low, high = scipy.stats.t.interval(0.95, k - 1, loc=logs.mean(),
                                       scale=logs.std(ddof=1) / math.sqrt(k))
    assert s.interval == "t"
    assert (s.ci_low, s.ci_high) == pytest.approx((math.exp(low), math.exp(high)), rel=1e-12)
    assert s.ci_low < s.median < s.ci_high


def test_t_interval_contains_the_median_and_handles_non_positive_figures():
    # values 0, 0, 10 at 80%: the mean-centred interval would stop short of the median 0
    low, high = t_interval(np.array([0.0, 0.0, 10.0]), confidence=0.5)
    assert low == 0.0 and high > 3.33  # raw scale (a 0 has no log), widened to the median
    low, high = t_interval(np.array([-3.0, -1.0, 2.0]))
    half = scipy.stats.t.ppf(0.975, 2) * np.std([-3.0, -1.0, 2.0], ddof=1) / math.sqrt(3)
    assert (low, high) == pytest.approx((-2.0 / 3 - half, -2.0 / 3 + half))


def test_scale_spread_keeps_the_median_and_widens_by_sqrt_k_over_k_minus_1():
    x = np.array([1.0, 2.0, 4.0, 7.0])  # median 3, K = 4: distances x sqrt(4/3)
    f = math.sqrt(4.0 / 3.0)
    assert scale_spread(x) == pytest.approx(3.0 + f * (x - 3.0))
    assert np.median(scale_spread(x)) == 3.0
    # what resampling draws from (the plug-in variance) is the figures' unbiased variance
    assert np.var(scale_spread(x)) == pytest.approx(np.var(x, ddof=1))


@pytest.mark.parametrize("k", [6, 10, 25])
def test_six_or_more_invocations_get_the_scaled_bootstrap(k):
    s = summarize_invocations(_invocations(k, seed=k), seed=7)
    low, high = bootstrap_median_ci(scale_spread(np.array(s.figures)), seed=7)
    assert s.interval == "bootstrap"
    assert (s.ci_low, s.ci_high) == (low, high)
    assert s.ci_low < s.median < s.ci_high


def test_at_99_percent_the_bootstrap_starts_at_eight_invocations():
    assert summarize_invocations(_invocations(7), confidence=0.99).interval == "t"
    assert summarize_invocations(_invocations(8), confidence=0.99).interval == "bootstrap"


def test_invocations_ci_widens_with_the_spread_between_invocations():
    tight = summarize_invocations([x - x.mean() + 100.0 for x in _invocations(8)])
    loose = summarize_invocations(_invocations(8))
    assert tight.ci_high - tight.ci_low < 0.3 * (loose.ci_high - loose.ci_low)


def test_invocation_ci_rows_equal_single_trials():
    rng = np.random.default_rng(4)
    for k in (3, 6):
        figures = 100.0 + rng.standard_normal((5, k))
        low, high, kind = invocation_ci(figures, seed=2)
        for i in range(5):
            s = summarize_invocations([[v] for v in figures[i]], seed=2)
            assert (s.ci_low, s.ci_high, s.interval) == (low[i], high[i], kind)


def test_identical_invocations_give_a_point_interval():
    s = summarize_invocations([np.full(10, 5.0)] * 4)
    assert (s.median, s.ci_low, s.ci_high) == (5.0, 5.0, 5.0)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="empty"):
        summarize_invocations([])
    with pytest.raises(ValueError, match=r"invocations\[1\] must be a non-empty 1-D"):
        summarize_invocations([[1.0, 2.0], np.ones((3, 2))])
    with pytest.raises(ValueError, match="NaN"):
        summarize_invocations([[1.0, math.nan]])
    with pytest.raises(ValueError, match="confidence"):
        summarize_invocations([[1.0]], confidence=1.0)
    with pytest.raises(ValueError, match="at least 3"):
        invocation_ci(np.ones(2))
