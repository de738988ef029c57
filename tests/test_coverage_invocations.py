"""Seeded simulations of issue 20: do trial CIs cover over invocations, do A/A runs stay quiet?

The model, on the log scale: a round's unit (its mean over 2 workers) is
1000·exp(run + invocation + round + noise), with run sd 1% (what differs between runs beyond
their invocations), invocation sd 3% (a fresh set of worker processes), round sd 1% and
per-sample noise 1% (0.71% in the mean of 2 workers); 10 rounds per invocation, 5
invocations per run unless said. The true median of a trial's figure, and of a run's, is 1000;
in A/A pairs the true ratio is 1. Repetition counts keep the binomial standard error small
against each bound asserted: 10,000 trials (se 0.0022) for coverage in 0.93-0.97, 5,000 pairs
(se 0.0014) for false verdicts within alpha + 0.005, 2,000 for rates near a bound of 0.8
(se 0.009) or for a rate against its formula (within 4 se).
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats

from orchestrator.analysis.components import VarianceComponents
from orchestrator.analysis.hierarchical import (
    PriorVariance,
    compare_hierarchical,
    hierarchical_test,
)
from orchestrator.analysis.invocations import invocation_ci, summarize_invocations
from orchestrator.analysis.planning import false_pair_rate
from orchestrator.analysis.stats import bootstrap_median_ci, bootstrap_ratio_ci, compare

TRUTH = 1000.0
RUN_SD, INVOCATION_SD, ROUND_SD, NOISE_SD, WORKERS = 0.01, 0.03, 0.01, 0.01, 2
ROUNDS = 10
INVOCATIONS = 5
"""The default K recommended for `topobench run` (issue 20's report)."""
ALPHA = 0.01
SLACK = 0.005


def _runs(rng: np.random.Generator, reps: int, runs: int, invocations: int = INVOCATIONS, *,
          run_sd: float = RUN_SD, invocation_sd: float = INVOCATION_SD,
          factor: float = 1.0) -> list[np.ndarray]:
    """Return `runs` arrays of reps x invocations x ROUNDS round units of the model."""
    out = []
    for _ in range(runs):
        log = (run_sd * rng.standard_normal((reps, 1, 1))
               + invocation_sd * rng.standard_normal((reps, invocations, 1))
               + ROUND_SD * rng.standard_normal((reps, invocations, ROUNDS))
               + NOISE_SD / np.sqrt(WORKERS) * rng.standard_normal((reps, invocations, ROUNDS)))
        out.append(factor * TRUTH * np.exp(log))
    return out


def _row(prior: PriorVariance, i: int) -> PriorVariance:
    """Return the prior of row i of a vectorized history."""
    return PriorVariance(float(prior.run_var[i]), prior.invocations, prior.df)


def _covers(low, high, truth=TRUTH) -> float:
    return float(np.mean((low <= truth) & (truth <= high)))


def _false(test, low, high) -> float:
    """Return the share of A/A pairs with a verdict: p < alpha and the CI excludes 1."""
    return float(np.mean((test.p_value < ALPHA) & ((low > 1.0) | (high < 1.0))))


# --- a trial's CI over invocations --------------------------------------------------------


@pytest.mark.parametrize("invocation_sd", [INVOCATION_SD, 0.0])
@pytest.mark.parametrize("k", [3, 5, 6, 10])
def test_trial_ci_covers_over_invocations(k, invocation_sd):
    rng = np.random.default_rng(100 * k + int(invocation_sd * 100))
    units = _runs(rng, 10_000, 1, k, run_sd=0.0, invocation_sd=invocation_sd)[0]
    low, high, kind = invocation_ci(np.median(units, axis=-1))
    assert kind == ("t" if k < 6 else "bootstrap")
    for i in (0, 1, 9999):  # the vectorized rows are what a trial's summary reports
        s = summarize_invocations(list(units[i]))
        assert (s.ci_low, s.ci_high) == (low[i], high[i])
    assert 0.93 <= _covers(low, high) <= 0.97


def test_round_cis_miss_what_invocations_change():
    # Before invocations: one invocation's rounds, or 5 invocations' rounds pooled as one.
    rng = np.random.default_rng(7)
    one = _runs(rng, 10_000, 1, 1, run_sd=0.0)[0]
    five = _runs(rng, 10_000, 1, 5, run_sd=0.0)[0]
    assert _covers(*bootstrap_median_ci(one[:, 0, :])) <= 0.30  # measured 0.23
    assert _covers(*bootstrap_median_ci(five.reshape(10_000, -1))) <= 0.60  # measured 0.53


# --- A/A comparisons ----------------------------------------------------------------------


def test_one_invocation_per_side_cries_wolf_on_rounds_but_not_here():
    # Issue 20: 4 of 11 consecutive pairs judged on rounds got a verdict.
    rng = np.random.default_rng(8)
    base, new = (_runs(rng, 2000, 1, 1)[0][:, 0, :] for _ in range(2))
    p = scipy.stats.mannwhitneyu(new, base, axis=1).pvalue
    low, high = bootstrap_ratio_ci(base, new)
    alarms = (p < ALPHA) & ((low > 1.0) | (high < 1.0))  # what compare's verdict requires
    assert alarms.mean() >= 0.5  # measured 0.72
    for i in np.flatnonzero(alarms)[:5]:
        assert compare(base[i], new[i]).verdict in ("faster", "slower")
        assert compare_hierarchical([[base[i]]], [[new[i]]]).verdict == "too few samples to tell"


def test_a_a_runs_stay_at_alpha_on_basis_runs():
    rng = np.random.default_rng(9)
    base, new = _runs(rng, 5000, 2), _runs(rng, 5000, 2)
    test, low, high = hierarchical_test(base, new, basis="runs")
    assert _false(test, low, high) <= ALPHA + SLACK  # measured 0.009 over 20,000
    for i in (0, 4999):
        c = compare_hierarchical([r[i] for r in base], [r[i] for r in new])
        assert (c.basis, c.p_value) == ("runs", pytest.approx(float(test.p_value[i])))


def test_a_a_single_runs_stay_at_alpha_on_invocations_when_runs_add_nothing():
    rng = np.random.default_rng(10)
    base, new = _runs(rng, 5000, 1, run_sd=0.0), _runs(rng, 5000, 1, run_sd=0.0)
    test, low, high = hierarchical_test(base, new, basis="invocations")
    assert _false(test, low, high) <= ALPHA + SLACK


@pytest.mark.parametrize("run_sd", [0.01, 0.02])
def test_single_runs_on_invocations_exceed_alpha_as_false_pair_rate_says(run_sd):
    rng = np.random.default_rng(int(run_sd * 1000))
    base, new = _runs(rng, 2000, 1, run_sd=run_sd), _runs(rng, 2000, 1, run_sd=run_sd)
    test, _, _ = hierarchical_test(base, new, basis="invocations")
    components = VarianceComponents(run_sd**2, INVOCATION_SD**2, ROUND_SD**2 + NOISE_SD**2 / 2,
                                    None, None, None, 2, 10, 100, 1, 8, 90)
    expected = false_pair_rate(components, INVOCATIONS, ROUNDS)  # 0.027 and 0.096
    rate = float(np.mean(test.p_value < ALPHA))
    assert rate > ALPHA + 2 * SLACK
    assert abs(rate - expected) <= 4 * np.sqrt(expected * (1 - expected) / 2000)


@pytest.mark.parametrize(("runs", "invocations"), [(1, INVOCATIONS), (2, INVOCATIONS), (1, 1)])
def test_a_a_with_a_history_prior_stay_at_alpha(runs, invocations):
    # The run variance measured over 10 earlier runs measured alike (one history per pair).
    rng = np.random.default_rng(20 + 10 * runs + invocations)
    history = PriorVariance.from_runs(_runs(rng, 5000, 10, invocations))
    base, new = _runs(rng, 5000, runs, invocations), _runs(rng, 5000, runs, invocations)
    test, low, high = hierarchical_test(base, new, basis="prior", prior=history)
    assert _false(test, low, high) <= ALPHA + SLACK  # measured 0.009
    assert 0.93 <= _covers(low, high, 1.0) <= 0.97  # measured 0.95


@pytest.mark.parametrize(("runs", "invocations", "basis"),
                         [(1, 10, "invocations"), (6, 3, "runs")])
def test_bootstrap_ratio_ci_covers_from_six_units(runs, invocations, basis):
    rng = np.random.default_rng(30 + runs)
    base = _runs(rng, 5000, runs, invocations, run_sd=RUN_SD if runs > 1 else 0.0)
    new = _runs(rng, 5000, runs, invocations, run_sd=RUN_SD if runs > 1 else 0.0)
    test, low, high = hierarchical_test(base, new, basis=basis)
    assert _false(test, low, high) <= ALPHA + SLACK
    assert 0.93 <= _covers(low, high, 1.0) <= 0.98  # measured 0.96-0.97: a little wide


# --- power: a planted 10% change ----------------------------------------------------------


def test_ten_percent_with_two_runs_per_side_and_a_history():
    rng = np.random.default_rng(40)
    history = PriorVariance.from_runs(_runs(rng, 2000, 10))
    base, new = _runs(rng, 2000, 2), _runs(rng, 2000, 2, factor=1.10)  # latency: 10% slower
    test, low, high = hierarchical_test(base, new, basis="prior", prior=history)
    slower = (test.p_value < ALPHA) & (low > 1.0)
    assert slower.mean() >= 0.80  # measured 0.98
    assert _covers(low, high, 1.10) >= 0.80  # measured 0.95
    i = int(np.flatnonzero(slower)[0])
    c = compare_hierarchical([r[i] for r in base], [r[i] for r in new], better="lower",
                             prior=_row(history, i))
    assert (c.verdict, c.basis) == ("slower", "prior")


def test_two_runs_per_side_alone_have_two_df():
    # Valid whatever runs add, but t with 2 df: the same 10% is caught about a third of the time.
    rng = np.random.default_rng(41)
    base, new = _runs(rng, 2000, 2), _runs(rng, 2000, 2, factor=1.10)
    test, low, high = hierarchical_test(base, new, basis="runs")
    assert 0.15 <= float(np.mean((test.p_value < ALPHA) & (low > 1.0))) <= 0.45  # measured 0.28
    assert _covers(low, high, 1.10) >= 0.93


def test_ten_percent_between_single_runs_when_runs_add_nothing():
    rng = np.random.default_rng(42)
    base, new = _runs(rng, 2000, 1, 10, run_sd=0.0), _runs(rng, 2000, 1, 10, run_sd=0.0,
                                                            factor=1.10)
    test, low, high = hierarchical_test(base, new, basis="invocations")
    assert float(np.mean((test.p_value < ALPHA) & (low > 1.0))) >= 0.80
    assert _covers(low, high, 1.10) >= 0.93

