"""Tests for orchestrator.analysis.hierarchical against hand-worked and scipy-computed values."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import scipy.stats

from orchestrator.analysis.hierarchical import (
    PriorVariance,
    available_bases,
    compare_hierarchical,
    hierarchical_test,
)
from orchestrator.analysis.stats import bootstrap_ratio_ci, compare, judge_family


def _side(rng, runs, invocations, rounds=10, factor=1.0):
    """Return runs of invocations of rounds: run sd 1%, invocation sd 3%, round sd 1%."""
    return [[factor * 100.0 * np.exp(0.01 * run + 0.03 * rng.standard_normal()
                                     + 0.01 * rng.standard_normal(rounds))
             for _ in range(invocations)]
            for run in rng.standard_normal(runs)]


def _log_figures(run):
    return np.log([np.median(x) for x in run])


# --- one run of one invocation per side ---------------------------------------------------


def test_one_invocation_per_side_gives_no_verdict_but_todays_numbers():
    rng = np.random.default_rng(0)
    base, new = _side(rng, 1, 1), _side(rng, 1, 1, factor=1.2)
    today = compare(base[0][0], new[0][0], better="higher")
    c = compare_hierarchical(base, new, better="higher")
    assert today.verdict == "faster"  # what rounds alone claim
    assert c.verdict == "too few samples to tell" and c.basis == "rounds"
    assert (c.ratio, c.ratio_ci_low, c.ratio_ci_high, c.p_value) == (
        today.ratio, today.ratio_ci_low, today.ratio_ci_high, today.p_value)
    assert c.p_adjusted is None and (c.base_n, c.new_n) == (10, 10)  # rounds
    assert compare_hierarchical(base, new, better=None) == compare(base[0][0], new[0][0],
                                                                   better=None)
    assert compare(base[0][0], new[0][0]).basis == "rounds"  # the record's new field defaults


# --- single runs: invocations -------------------------------------------------------------


def test_single_runs_compare_invocations_with_student_t():
    rng = np.random.default_rng(1)
    base, new = _side(rng, 1, 5), _side(rng, 1, 5, factor=1.1)
    c = compare_hierarchical(base, new, better="lower")
    xb, xn = _log_figures(base[0]), _log_figures(new[0])
    ref = scipy.stats.ttest_ind(xn, xb)
    assert c.basis == "invocations" and (c.base_n, c.new_n) == (5, 5)
    assert c.p_value == pytest.approx(ref.pvalue, rel=1e-10)
    assert c.base_median == np.median([np.median(x) for x in base[0]])
    assert c.ratio == c.new_median / c.base_median
    delta = xn.mean() - xb.mean()
    se = delta / ref.statistic
    half = scipy.stats.t.ppf(0.975, 8) * se
    low, high = math.exp(min(delta - half, math.log(c.ratio))), math.exp(max(delta + half,
                                                                             math.log(c.ratio)))
    assert (c.ratio_ci_low, c.ratio_ci_high) == pytest.approx((low, high), rel=1e-12)
    assert c.verdict == ("slower" if c.p_value < 0.01 and low > 1 else "no significant change")


def test_many_invocations_get_the_bootstrap_ratio_ci():
    rng = np.random.default_rng(2)
    base, new = _side(rng, 1, 8), _side(rng, 1, 7)
    c = compare_hierarchical(base, new, seed=3)
    fb = np.array([np.median(x) for x in base[0]])
    fn = np.array([np.median(x) for x in new[0]])
    low, high = bootstrap_ratio_ci(fb, fn, seed=3)
    assert (c.ratio_ci_low, c.ratio_ci_high) == (low, high)


# --- several runs: runs -------------------------------------------------------------------


def test_two_runs_per_side_compare_run_figures_with_student_t():
    rng = np.random.default_rng(3)
    base, new = _side(rng, 2, 5), _side(rng, 3, 4, factor=0.7)
    c = compare_hierarchical(base, new, better="higher")
    ub = [_log_figures(run).mean() for run in base]
    un = [_log_figures(run).mean() for run in new]
    assert c.basis == "runs" and (c.base_n, c.new_n) == (2, 3)
    assert c.p_value == pytest.approx(scipy.stats.ttest_ind(un, ub).pvalue, rel=1e-10)
    runs_b = [np.median([np.median(x) for x in run]) for run in base]
    assert c.base_median == np.median(runs_b)
    assert c.verdict == "slower" and c.p_value < 0.01  # 30% down, 3 df


def test_invocations_on_request_pool_runs():
    rng = np.random.default_rng(4)
    base, new = _side(rng, 2, 3), _side(rng, 2, 3)
    c = compare_hierarchical(base, new, basis="invocations")
    xb = np.concatenate([_log_figures(run) for run in base])
    xn = np.concatenate([_log_figures(run) for run in new])
    assert c.basis == "invocations" and (c.base_n, c.new_n) == (6, 6)
    assert c.p_value == pytest.approx(scipy.stats.ttest_ind(xn, xb).pvalue, rel=1e-10)


def test_available_bases_by_what_was_repeated():
    rng = np.random.default_rng(5)
    one, five = _side(rng, 1, 1), _side(rng, 1, 5)
    prior = PriorVariance(0.0004, 5, 9.0)
    assert available_bases(one, one) == ("rounds",)
    assert available_bases(one, one, prior) == ("prior", "rounds")
    assert available_bases(five, five) == ("invocations", "rounds")
    assert available_bases(_side(rng, 2, 1), _side(rng, 2, 1)) == ("runs", "invocations",
                                                                   "rounds")
    assert available_bases(_side(rng, 1, 2), one) == ("rounds",)  # 1 df: no t test
    assert available_bases(one, one, dataclasses.replace(prior, df=1.0)) == ("rounds",)
    with pytest.raises(ValueError, match="not available here; these are: invocations"):
        compare_hierarchical(five, five, basis="runs")
    with pytest.raises(ValueError, match='not available'):
        hierarchical_test(five, five, basis="rounds")


# --- a prior from the history -------------------------------------------------------------


def test_prior_from_runs_is_the_variance_of_run_figures():
    rng = np.random.default_rng(6)
    history = _side(rng, 6, 5)
    prior = PriorVariance.from_runs(history)
    means = [_log_figures(run).mean() for run in history]
    assert prior.run_var == pytest.approx(np.var(means, ddof=1), rel=1e-12)
    assert (prior.invocations, prior.df) == (5, 5.0)
    with pytest.raises(ValueError, match="at least 2 runs"):
        PriorVariance.from_runs(history[:1])
    with pytest.raises(ValueError, match="run_var"):
        PriorVariance(-1.0, 5, 3.0)


def test_prior_is_pooled_with_the_runs_own_spread():
    rng = np.random.default_rng(7)
    base, new = _side(rng, 1, 5), _side(rng, 2, 5)
    prior = PriorVariance(0.0003, 5, 8.0)
    c = compare_hierarchical(base, new, prior=prior)
    ub = [_log_figures(run).mean() for run in base]
    un = [_log_figures(run).mean() for run in new]
    own = np.var(un, ddof=1)  # 1 df; BASE's one run has none
    pooled = (8.0 * 0.0003 + own) / 9.0
    t = (np.mean(un) - np.mean(ub)) / math.sqrt(pooled * (1 + 1 / 2))
    assert c.basis == "prior" and (c.base_n, c.new_n) == (5, 10)
    assert c.p_value == pytest.approx(2 * scipy.stats.t.sf(abs(t), 9), rel=1e-10)


def test_prior_measured_with_more_invocations_is_scaled_up_never_down():
    rng = np.random.default_rng(8)
    one, three = _side(rng, 1, 1), _side(rng, 1, 3)
    delta = _log_figures(one[0]).mean() - _log_figures(three[0]).mean()
    for prior, var in [(PriorVariance(0.001, 6, math.inf), 0.006),  # 1 invocation: x 6
                       (PriorVariance(0.001, 1, math.inf), 0.001)]:  # 6 -> 1: never down
        test, _, _ = hierarchical_test(three, one, basis="prior", prior=prior)
        z = delta / math.sqrt(2 * var)
        assert float(test.p_value) == pytest.approx(2 * scipy.stats.norm.sf(abs(z)), rel=1e-10)
        assert float(test.df) == math.inf


def test_one_invocation_with_a_prior_gets_a_verdict_that_includes_invocations():
    rng = np.random.default_rng(9)
    base, new = _side(rng, 1, 1), _side(rng, 1, 1, factor=1.2)
    history = _side(rng, 10, 1)
    c = compare_hierarchical(base, new, prior=PriorVariance.from_runs(history))
    assert c.basis == "prior" and (c.base_n, c.new_n) == (1, 1)
    rounds_only = compare(base[0][0], new[0][0])
    assert (c.ratio_ci_high - c.ratio_ci_low) > 3 * (rounds_only.ratio_ci_high
                                                     - rounds_only.ratio_ci_low)


# --- records, families, vectorized rows ---------------------------------------------------


def test_results_join_holms_family_and_keep_their_basis():
    rng = np.random.default_rng(10)
    base, new = _side(rng, 1, 5), _side(rng, 1, 5, factor=1.5)
    strong = compare_hierarchical(base, new, better="higher")
    same = compare_hierarchical(base, _side(rng, 1, 5), better="higher")
    rounds = compare_hierarchical([base[0][:1]], [new[0][:1]], better="higher")
    judged = judge_family([strong, same, rounds], 0.01)
    assert [c.basis for c in judged] == ["invocations", "invocations", "rounds"]
    assert judged[0].verdict == "faster" and judged[2] == rounds
    assert judged[0].p_adjusted == pytest.approx(min(1.0, 2 * strong.p_value))
    descriptive = compare_hierarchical(base, new, better=None)
    assert (descriptive.verdict, descriptive.p_adjusted) == ("descriptive", None)


def test_vectorized_rows_equal_single_comparisons():
    rng = np.random.default_rng(11)
    base = [100.0 * np.exp(0.03 * rng.standard_normal((4, 6, 1))
                           + 0.01 * rng.standard_normal((4, 6, 10))) for _ in range(2)]
    new = [100.0 * np.exp(0.03 * rng.standard_normal((4, 6, 1))
                          + 0.01 * rng.standard_normal((4, 6, 10))) for _ in range(2)]
    history = [100.0 * np.exp(0.03 * rng.standard_normal((4, 6, 10))) for _ in range(5)]
    for basis, prior in [("runs", None), ("invocations", None),
                         ("prior", PriorVariance.from_runs(history))]:
        test, low, high = hierarchical_test(base, new, basis=basis, prior=prior)
        for i in range(4):
            row_prior = prior and dataclasses.replace(prior, run_var=float(prior.run_var[i]))
            c = compare_hierarchical([run[i] for run in base], [run[i] for run in new],
                                     basis=basis, prior=row_prior)
            assert (c.p_value, c.ratio_ci_low, c.ratio_ci_high) == pytest.approx(
                (test.p_value[i], low[i], high[i]), rel=1e-12)


def test_bad_input_is_refused():
    rng = np.random.default_rng(12)
    five = _side(rng, 1, 5)
    with pytest.raises(ValueError, match="no run"):
        compare_hierarchical([], five)
    with pytest.raises(ValueError, match=r"base has a value <= 0"):
        compare_hierarchical([[np.array([1.0, -1.0, 0.0])] * 3], five)
    with pytest.raises(ValueError, match="better"):
        compare_hierarchical(five, five, better="faster")
    with pytest.raises(ValueError, match=r"new\[0\]\[0\] contains NaN"):
        compare_hierarchical(five, [[np.array([1.0, math.nan])]])
