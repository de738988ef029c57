"""Tests for orchestrator.analysis.scaling on synthetic data with known parameters."""

from __future__ import annotations

import math

import numpy as np
import pytest

from orchestrator.analysis.scaling import (
    AmdahlFit,
    NotEnoughPoints,
    ScalingRow,
    USLFit,
    fit_amdahl,
    fit_usl,
    karp_flatt,
    scaling_table,
    verdict,
)

N = np.arange(1, 17)


def _usl(n, lam=1000.0, sigma=0.05, kappa=0.002):
    return lam * n / (1.0 + sigma * (n - 1) + kappa * n * (n - 1))


def _amdahl(n, x1=500.0, s=0.1):
    return x1 * n / (1.0 + s * (n - 1))


def _row(n, median, n0=1, ref=None):
    ref = ref if ref is not None else median
    s = median / ref * n0
    return ScalingRow(n, median, None, None, s, s / n, karp_flatt(s, n))


# --- USL ---------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_usl_recovers_known_parameters(seed):
    rng = np.random.default_rng(seed)
    x = _usl(N) * (1.0 + 0.01 * rng.standard_normal(N.size))
    fit = fit_usl(N, x)
    assert fit.sigma == pytest.approx(0.05, abs=0.02)
    assert fit.kappa == pytest.approx(0.002, abs=0.001)
    assert fit.lambda_ == pytest.approx(1000.0, rel=0.05)
    assert fit.peak_n == pytest.approx(math.sqrt(0.95 / 0.002), rel=0.15)
    assert 0.0 < fit.rmse < 0.03 * x.max()


def test_usl_ci_contains_truth():
    rng = np.random.default_rng(0)
    fit = fit_usl(N, _usl(N) * (1.0 + 0.01 * rng.standard_normal(N.size)))
    assert fit.sigma_ci[0] <= 0.05 <= fit.sigma_ci[1]
    assert fit.kappa_ci[0] <= 0.002 <= fit.kappa_ci[1]
    assert fit.lambda_ci[0] <= 1000.0 <= fit.lambda_ci[1]
    assert fit.sigma_ci[0] <= fit.sigma <= fit.sigma_ci[1]


def test_usl_accepts_several_samples_per_n():
    rng = np.random.default_rng(5)
    n = np.repeat(np.array([1, 2, 4, 8, 12, 16]), 5)
    x = _usl(n) * (1.0 + 0.01 * rng.standard_normal(n.size))
    fit = fit_usl(n, x)
    assert fit.sigma == pytest.approx(0.05, abs=0.02)
    assert fit.kappa == pytest.approx(0.002, abs=0.001)


def test_usl_exact_data_is_exact():
    fit = fit_usl(N, _usl(N))
    assert fit.sigma == pytest.approx(0.05, abs=1e-6)
    assert fit.kappa == pytest.approx(0.002, abs=1e-7)
    assert fit.peak_n == pytest.approx(math.sqrt(0.95 / 0.002), rel=1e-4)


def test_usl_linear_data_has_no_contention_or_coherency():
    fit = fit_usl(N, 1000.0 * N)
    assert fit.sigma == pytest.approx(0.0, abs=1e-4)
    assert fit.kappa == pytest.approx(0.0, abs=1e-6)
    assert fit.lambda_ == pytest.approx(1000.0, rel=1e-6)
    assert fit.rmse < 1e-3


# --- Amdahl ------------------------------------------------------------------------------


def test_amdahl_recovers_serial_fraction():
    rng = np.random.default_rng(1)
    x = _amdahl(N) * (1.0 + 0.01 * rng.standard_normal(N.size))
    fit = fit_amdahl(N, x)
    assert fit.serial_fraction == pytest.approx(0.1, abs=0.01)
    assert fit.x1 == pytest.approx(500.0, rel=0.03)
    low, high = fit.serial_fraction_ci
    assert low <= 0.1 <= high
    assert 0.0 <= low <= fit.serial_fraction <= high <= 1.0


def test_amdahl_exact_and_linear():
    assert fit_amdahl(N, _amdahl(N)).serial_fraction == pytest.approx(0.1, abs=1e-9)
    linear = fit_amdahl(N, 250.0 * N)
    assert linear.serial_fraction == pytest.approx(0.0, abs=1e-6)
    assert linear.x1 == pytest.approx(250.0)


# --- too few points ----------------------------------------------------------------------


def test_usl_needs_four_distinct_n():
    n = np.array([1, 1, 1, 2, 2, 2])
    with pytest.raises(NotEnoughPoints) as info:
        fit_usl(n, 100.0 * n)
    assert str(info.value) == "USL fit needs at least 4 distinct N (3 parameters + 1), got 2"
    assert isinstance(info.value, ValueError)


def test_amdahl_needs_three_distinct_n():
    with pytest.raises(NotEnoughPoints, match=r"Amdahl fit needs at least 3 distinct N .* got 2"):
        fit_amdahl([1, 2], [100.0, 190.0])
    fit_amdahl([1, 2, 4], [100.0, 190.0, 340.0])  # three is enough


def test_fit_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="must match"):
        fit_usl([1, 2, 3, 4], [1.0, 2.0, 3.0])


# --- Karp-Flatt and the scaling table ----------------------------------------------------


def test_karp_flatt_hand_computed():
    # S = 3 at N = 4: (1/3 - 1/4) / (1 - 1/4) = (1/12) / (3/4) = 1/9
    assert karp_flatt(3.0, 4) == pytest.approx(1.0 / 9.0)
    assert karp_flatt(2.0, 2) == 0.0
    assert karp_flatt(1.0, 1) is None
    assert karp_flatt(0.0, 4) is None


def test_scaling_table_hand_computed():
    # Amdahl with s = 1/9: S(2) = 2 / (1 + 1/9) = 1.8, S(4) = 4 / (1 + 3/9) = 3
    rows = scaling_table([4, 1, 2], [np.array([300.0] * 3), np.array([100.0]), np.array([180.0])])
    assert [r.n for r in rows] == [1, 2, 4]
    assert [r.speedup for r in rows] == pytest.approx([1.0, 1.8, 3.0])
    assert [r.efficiency for r in rows] == pytest.approx([1.0, 0.9, 0.75])
    assert rows[0].karp_flatt is None
    assert rows[1].karp_flatt == pytest.approx(1.0 / 9.0)
    assert rows[2].karp_flatt == pytest.approx(1.0 / 9.0)
    assert (rows[0].throughput_ci_low, rows[0].throughput_ci_high) == (None, None)
    assert (rows[2].throughput_ci_low, rows[2].throughput_ci_high) == (300.0, 300.0)


def test_scaling_table_linear_efficiency_is_one():
    rng = np.random.default_rng(2)
    samples = [1000.0 * n * (1.0 + 0.01 * rng.standard_normal(9)) for n in (1, 2, 4, 8)]
    # make every median exactly linear
    samples = [s - np.median(s) + 1000.0 * n for s, n in zip(samples, (1, 2, 4, 8), strict=True)]
    rows = scaling_table([1, 2, 4, 8], samples)
    assert [r.efficiency for r in rows] == pytest.approx([1.0] * 4, rel=1e-12)
    for r in rows:
        assert r.throughput_ci_low <= r.throughput_median <= r.throughput_ci_high


def test_scaling_table_smallest_n_above_one_scales_reference():
    rows = scaling_table([2, 4, 8], [np.array([200.0]), np.array([400.0]), np.array([700.0])])
    assert [r.speedup for r in rows] == pytest.approx([2.0, 4.0, 7.0])
    assert [r.efficiency for r in rows] == pytest.approx([1.0, 1.0, 0.875])
    assert rows[0].karp_flatt == 0.0


def test_scaling_table_weak_mode_uses_same_formulas():
    args = ([1, 2], [np.array([10.0]), np.array([19.0])])
    assert scaling_table(*args, mode="weak") == scaling_table(*args, mode="strong")


def test_scaling_table_rejects_bad_input():
    with pytest.raises(ValueError, match="mode must be one of strong, weak"):
        scaling_table([1], [np.array([1.0])], mode="diagonal")
    with pytest.raises(ValueError, match="distinct"):
        scaling_table([1, 1], [np.array([1.0]), np.array([2.0])])
    with pytest.raises(ValueError, match="throughput arrays"):
        scaling_table([1, 2], [np.array([1.0])])


# --- verdict -----------------------------------------------------------------------------


def test_verdict_linear():
    rows = scaling_table(list(N), [np.array([1000.0 * n]) for n in N])
    text = verdict(rows, fit_usl(N, 1000.0 * N), fit_amdahl(N, 1000.0 * N), "nodes")
    assert text == "scales linearly to 16 nodes (efficiency 1.00)"


def test_verdict_sub_linear_with_usl_peak():
    x = _usl(N)
    rows = scaling_table(list(N), [np.array([v]) for v in x])
    text = verdict(rows, fit_usl(N, x), None, "workers")
    assert text.startswith(f"sub-linear: efficiency {x[-1] / x[0] / 16:.2f} at 16 workers (USL σ=")
    assert text.endswith("USL peak at 21.8 workers")


def test_verdict_sub_linear_with_amdahl_only():
    rows = scaling_table([1, 2, 4], [np.array([100.0]), np.array([180.0]), np.array([300.0])])
    fit = AmdahlFit(1.0 / 9.0, (0.1, 0.12), 100.0, 0.0)
    text = verdict(rows, None, fit, "cores")
    assert text == "sub-linear: efficiency 0.75 at 4 cores (Amdahl serial fraction 0.111)"


def test_verdict_retrograde():
    rows = tuple(_row(n, m, ref=100.0) for n, m in [(1, 100.0), (2, 190.0), (4, 300.0), (8, 250.0)])
    usl = USLFit(100.0, 0.1, 0.05, (90, 110), (0, 0.2), (0.01, 0.1), 4.24, 5.0)
    assert verdict(rows, usl, None, "workers") == (
        "retrograde after 4 workers (throughput 300 there, 250 at 8 workers); "
        "USL peak at 4.2 workers"
    )


def test_verdict_single_point_uses_singular():
    assert verdict((_row(1, 100.0),), None, None, "nodes") == (
        "only one point (1 node); no scaling verdict"
    )
