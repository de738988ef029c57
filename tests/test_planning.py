"""Tests for orchestrator.analysis.planning: repetitions for a precision, and the A/A rate."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import scipy.stats

from orchestrator.analysis.components import VarianceComponents
from orchestrator.analysis.planning import (
    expected_half_width,
    false_pair_rate,
    figure_variance,
    largest_safe_invocations,
    plan_repetitions,
)


def _components(run=0.0, invocation=0.03**2, rounds=0.01**2) -> VarianceComponents:
    return VarianceComponents(run, invocation, rounds, None, None, None, 10, 50, 500, 9, 40, 450)


def test_figure_variance_is_invocations_plus_a_median_of_rounds():
    c = _components()
    assert figure_variance(c, 1) == pytest.approx(0.03**2 + 0.01**2)
    assert figure_variance(c, 2) == pytest.approx(0.03**2 + 0.01**2 / 2)
    assert figure_variance(c, 10) == pytest.approx(0.03**2 + math.pi / 2 * 0.01**2 / 10)
    with pytest.raises(ValueError, match="between_invocations"):
        figure_variance(dataclasses.replace(c, between_invocations=None), 10)


def test_expected_half_width_hand_worked():
    c = _components(invocation=0.0, rounds=0.02**2)  # figure variance 0.0004 at 2 rounds / 2
    var = 0.02**2 / 2
    c4 = math.sqrt(2 / 4) * math.gamma(5 / 2) / math.gamma(2)  # K = 5
    t = scipy.stats.t.ppf(0.975, 4) * c4 * math.sqrt(var / 5)
    assert expected_half_width(c, 5, 2) == pytest.approx(math.expm1(t))
    z = 1.959964 * math.sqrt(math.pi / 2 * var / 12)
    assert expected_half_width(c, 12, 2) == pytest.approx(math.expm1(z), rel=1e-6)
    with pytest.raises(ValueError, match="at least 3"):
        expected_half_width(c, 2, 10)


@pytest.mark.parametrize(("inv_cost", "round_cost", "target"),
                         [(5.0, 0.1, 0.02), (60.0, 0.1, 0.02), (5.0, 1.0, 0.015), (0.0, 0.1, 0.03)])
def test_plan_is_the_cheapest_that_meets_the_target(inv_cost, round_cost, target):
    c = _components()
    plan = plan_repetitions(c, half_width_rel=target, invocation_cost_s=inv_cost,
                            round_cost_s=round_cost, max_invocations=40, max_rounds=60)
    assert plan.half_width_rel == pytest.approx(expected_half_width(
        c, plan.invocations, plan.rounds_per_invocation))
    assert plan.half_width_rel <= target
    assert plan.cost_s == pytest.approx(plan.invocations * (inv_cost + plan.rounds_per_invocation
                                                            * round_cost))
    cheapest = min(k * (inv_cost + r * round_cost) for k in range(3, 41) for r in range(1, 61)
                   if expected_half_width(c, k, r) <= target)
    assert plan.cost_s == pytest.approx(cheapest)
    assert plan.interval == ("t" if plan.invocations < 6 else "bootstrap")


def test_plan_follows_kalibera_and_jones():
    # Costly invocations buy more rounds each; rounds that do not vary buy none.
    c = _components()
    cheap = plan_repetitions(c, half_width_rel=0.02, invocation_cost_s=1.0, round_cost_s=0.1)
    dear = plan_repetitions(c, half_width_rel=0.02, invocation_cost_s=100.0, round_cost_s=0.1)
    assert dear.rounds_per_invocation > cheap.rounds_per_invocation
    assert dear.invocations <= cheap.invocations
    flat = plan_repetitions(_components(rounds=0.0), half_width_rel=0.02, invocation_cost_s=10.0,
                            round_cost_s=0.1)
    assert flat.rounds_per_invocation == 1
    # many invocations: the rounds per invocation approach the continuous optimum
    many = plan_repetitions(c, half_width_rel=0.003, invocation_cost_s=30.0, round_cost_s=0.1,
                            max_invocations=1000)
    optimum = math.sqrt(30.0 * math.pi / 2 * 0.01**2 / (0.1 * 0.03**2))  # 13.2
    assert abs(many.rounds_per_invocation - optimum) <= 2


def test_plan_is_none_when_the_limits_cannot_meet_the_target():
    assert plan_repetitions(_components(), half_width_rel=0.001, invocation_cost_s=1.0,
                            round_cost_s=0.1, max_invocations=10) is None
    with pytest.raises(ValueError, match="half_width_rel"):
        plan_repetitions(_components(), half_width_rel=0.0, invocation_cost_s=1.0,
                         round_cost_s=0.1)


@pytest.mark.parametrize("metrics", [1, 20, 100])
def test_false_pair_rate_is_alpha_when_runs_add_nothing(metrics):
    assert false_pair_rate(_components(), 5, 10, metrics=metrics) == pytest.approx(0.01)


def test_false_pair_rate_grows_with_invocations_when_runs_add_variance():
    c = _components(run=0.01**2)
    rates = [false_pair_rate(c, k, 10) for k in (2, 3, 5, 10, 20)]
    assert np.all(np.diff(rates) > 0) and rates[0] > 0.01
    k, var = 5, figure_variance(c, 10)
    inflation = 1 + k * 0.01**2 / var
    expected = 2 * scipy.stats.t.sf(scipy.stats.t.isf(0.005, 8) / math.sqrt(inflation), 8)
    assert rates[2] == pytest.approx(expected)
    with pytest.raises(ValueError, match="between_runs"):
        false_pair_rate(dataclasses.replace(c, between_runs=None), 5, 10)


def test_largest_safe_invocations_caps_k_by_the_a_a_goal():
    # Today's run-to-run sd 5%, a tenth of its variance between runs beyond invocations.
    c = _components(run=0.1 * 0.05**2, invocation=0.9 * 0.05**2)
    cap = largest_safe_invocations(c, 10, metrics=100)
    assert false_pair_rate(c, cap, 10, metrics=100) <= 0.05 < false_pair_rate(c, cap + 1, 10,
                                                                             metrics=100)
    assert cap == 5
    assert largest_safe_invocations(c, 10, metrics=1) > cap  # fewer metrics, fewer chances
    assert largest_safe_invocations(_components(), 10, max_invocations=30) == 30
    assert largest_safe_invocations(_components(run=0.05**2, invocation=0.001**2), 10,
                                    metrics=100, goal=0.01) is None
