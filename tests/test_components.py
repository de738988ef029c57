"""Tests for orchestrator.analysis.components: variance components by the method of moments."""

from __future__ import annotations

import math

import numpy as np
import pytest

from orchestrator.analysis.components import variance_components


def _nested(rng, runs, invocations, rounds, sd=(0.02, 0.03, 0.01)):
    """Return runs x invocations x rounds positive units with log sd per level (run, inv, round)."""
    run = sd[0] * rng.standard_normal((runs, 1, 1))
    inv = sd[1] * rng.standard_normal((runs, invocations, 1))
    return 50.0 * np.exp(run + inv + sd[2] * rng.standard_normal((runs, invocations, rounds)))


def test_balanced_estimates_are_the_nested_anova_ones():
    # Classical balanced nested ANOVA (Searle et al. 1992) on the logs, computed independently.
    y = np.log(_nested(np.random.default_rng(2), 4, 3, 5))  # all three estimates > 0
    a, b, n = y.shape
    run_means, inv_means, grand = y.mean(axis=(1, 2)), y.mean(axis=2), y.mean()
    ms_a = b * n * ((run_means - grand) ** 2).sum() / (a - 1)
    ms_b = n * ((inv_means - run_means[:, None]) ** 2).sum() / (a * (b - 1))
    ms_e = ((y - inv_means[..., None]) ** 2).sum() / (a * b * (n - 1))
    c = variance_components(np.exp(y).tolist())
    assert c.between_rounds == pytest.approx(ms_e, rel=1e-10)
    assert c.between_invocations == pytest.approx((ms_b - ms_e) / n, rel=1e-10)
    assert c.between_runs == pytest.approx((ms_a - ms_b) / (b * n), rel=1e-10)
    assert (c.runs, c.invocations, c.rounds) == (4, 12, 60)
    assert (c.runs_df, c.invocations_df, c.rounds_df) == (3, 8, 48)
    shares = (c.run_fraction, c.invocation_fraction, c.round_fraction)
    assert sum(shares) == pytest.approx(1.0)
    assert c.run_fraction == pytest.approx(c.between_runs / (c.between_runs + c.between_invocations
                                                             + c.between_rounds))


@pytest.mark.parametrize("balanced", [True, False])
def test_components_are_recovered_on_average(balanced):
    rng = np.random.default_rng(1 if balanced else 2)
    estimates = []
    for _ in range(300):
        runs = []
        for _ in range(8):
            k = 5 if balanced else int(rng.integers(2, 9))
            rounds = [10 if balanced else int(rng.integers(3, 16)) for _ in range(k)]
            run_effect = 0.02 * rng.standard_normal()
            runs.append([np.exp(run_effect + 0.03 * rng.standard_normal()
                                + 0.01 * rng.standard_normal(r)) for r in rounds])
        c = variance_components(runs)
        estimates.append((c.between_runs, c.between_invocations, c.between_rounds))
    mean = np.mean(estimates, axis=0)
    # unbiased but for the truncation at 0 of the run level (8 runs: a few % low)
    assert mean == pytest.approx([0.02**2, 0.03**2, 0.01**2], rel=0.12)


def test_one_run_has_no_run_component():
    c = variance_components([_nested(np.random.default_rng(3), 1, 6, 10)[0].tolist()])
    assert c.between_runs is None and c.run_fraction is None
    assert c.between_invocations > 0 and c.invocation_fraction + c.round_fraction == 1.0


def test_one_invocation_per_run_holds_runs_and_invocations_together():
    y = _nested(np.random.default_rng(4), 6, 1, 10)
    c = variance_components([[run[0]] for run in y])
    logs = np.log(y[:, 0, :])
    expected = logs.mean(axis=1).var(ddof=1) - logs.var(axis=1, ddof=1).mean() / 10
    assert c.between_runs is None
    assert c.between_invocations == pytest.approx(max(0.0, expected), rel=1e-10)


def test_levels_without_replication_are_none():
    c = variance_components([[[5.0], [6.0], [7.0]]])  # three invocations of one round each
    assert (c.between_rounds, c.between_invocations, c.between_runs) == (None, None, None)
    assert (c.rounds_df, c.invocations_df) == (0, 2)


def test_negative_estimates_are_reported_as_zero():
    # invocations closer together than their rounds allow: MS between < MS within
    c = variance_components([[[1.0, 2.0, 4.0], [1.1, 2.0, 3.7], [0.9, 2.1, 4.1]]])
    assert c.between_invocations == 0.0 and c.invocation_fraction == 0.0
    assert c.between_rounds == pytest.approx(np.var(np.log([1.0, 2.0, 4.0]), ddof=1), rel=0.1)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="empty"):
        variance_components([])
    with pytest.raises(ValueError, match="<= 0"):
        variance_components([[[1.0, 0.0]]])
    with pytest.raises(ValueError, match="NaN"):
        variance_components([[[1.0, math.nan]]])
