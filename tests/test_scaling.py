"""Tests for orchestrator.analysis.scaling on synthetic data with known parameters and R's usl."""

from __future__ import annotations

import enum
import math

import numpy as np
import pytest

from orchestrator.analysis.scaling import (
    AmdahlFit,
    NotEnoughPoints,
    ScalingRow,
    USLFit,
    amdahl_name,
    fit_amdahl,
    fit_usl,
    karp_flatt,
    mode_name,
    scaling_table,
    speedup_name,
    verdict,
)
from orchestrator.analysis.stats import bootstrap_ratio_ci

N = np.arange(1, 17)

# Gunther's SPEC SDM91 data, as shipped in R's usl package (data(specsdm91)).
SDM91_LOAD = np.array([1, 18, 36, 72, 108, 144, 216], dtype=float)
SDM91_X = np.array([64.9, 995.9, 1652.4, 1853.2, 1828.9, 1775.0, 1702.2])


def _usl(n, lam=1000.0, sigma=0.05, kappa=0.002):
    return lam * n / (1.0 + sigma * (n - 1) + kappa * n * (n - 1))


def _amdahl(n, x1=500.0, s=0.1):
    return x1 * n / (1.0 + s * (n - 1))


def _rounds(center, rounds=8, spread=0.01):
    """Per-round throughputs with median exactly `center` (symmetric offsets)."""
    offsets = np.linspace(-spread, spread, rounds)
    return center * (1.0 + offsets)


def _row(n, median, eff_ci, x_ci=None):
    """A ScalingRow with speedup = median / 100 and the given efficiency and throughput CIs."""
    s = median / 100.0
    x_ci = x_ci or (median * 0.99, median * 1.01)
    return ScalingRow(n, median, x_ci[0], x_ci[1], s, s / n, karp_flatt(s, n),
                      eff_ci[0] * n, eff_ci[1] * n, eff_ci[0], eff_ci[1])


# --- USL ---------------------------------------------------------------------------------


def test_usl_matches_r_usl_on_specsdm91():
    # R: usl(throughput ~ load, specsdm91): sigma 0.0277285 (se 0.0091217), kappa 0.0001044
    # (se 0.0000199), lambda 89.9952 (se 14.2135), residual standard error 82.8 on 4 dof;
    # peak.scalability 96.52. R fits unweighted least squares on X: scale="linear".
    fit = fit_usl(SDM91_LOAD, SDM91_X, scale="linear")
    t4 = 2.7764451051977987  # Student's t, 0.975 quantile, 4 dof
    assert fit.lambda_ == pytest.approx(89.995, rel=1e-4)
    assert fit.sigma == pytest.approx(0.027728, rel=1e-4)
    assert fit.kappa == pytest.approx(0.00010437, rel=1e-3)
    assert fit.peak_n == pytest.approx(96.52, abs=0.01)
    assert (fit.sigma_ci[1] - fit.sigma) / t4 == pytest.approx(0.0091217, rel=1e-3)
    assert (fit.kappa_ci[1] - fit.kappa) / t4 == pytest.approx(0.0000199, rel=1e-2)
    assert (fit.lambda_ci[1] - fit.lambda_) / t4 == pytest.approx(14.2135, rel=1e-3)
    assert fit.rmse * math.sqrt(7 / 4) == pytest.approx(82.8, abs=0.05)
    low, high = fit.peak_n_ci
    assert low < 96.52 < high and fit.scale == "linear"


def test_usl_on_log_scale_fits_specsdm91_differently():
    fit = fit_usl(SDM91_LOAD, SDM91_X)  # relative residuals: the N=1 point weighs as much
    assert fit.scale == "log"
    assert fit.lambda_ == pytest.approx(67.9, rel=0.01)  # close to X(1) = 64.9, unlike R's 90
    assert fit.peak_n_ci[0] < fit.peak_n < fit.peak_n_ci[1]


@pytest.mark.parametrize("seed", range(5))
def test_usl_recovers_known_parameters(seed):
    rng = np.random.default_rng(seed)
    x = _usl(N) * np.exp(0.01 * rng.standard_normal(N.size))
    fit = fit_usl(N, x)
    assert fit.sigma == pytest.approx(0.05, abs=0.02)
    assert fit.kappa == pytest.approx(0.002, abs=0.001)
    assert fit.lambda_ == pytest.approx(1000.0, rel=0.05)
    assert fit.peak_n == pytest.approx(math.sqrt(0.95 / 0.002), rel=0.15)
    assert fit.peak_n_ci[0] < fit.peak_n < fit.peak_n_ci[1]
    assert 0.0 < fit.rmse < 0.03 * x.max()


def test_usl_ci_contains_truth():
    rng = np.random.default_rng(0)
    fit = fit_usl(N, _usl(N) * np.exp(0.01 * rng.standard_normal(N.size)))
    assert fit.sigma_ci[0] <= 0.05 <= fit.sigma_ci[1]
    assert fit.kappa_ci[0] <= 0.002 <= fit.kappa_ci[1]
    assert fit.lambda_ci[0] <= 1000.0 <= fit.lambda_ci[1]
    assert fit.peak_n_ci[0] <= math.sqrt(0.95 / 0.002) <= fit.peak_n_ci[1]


def test_usl_accepts_several_points_per_n():
    rng = np.random.default_rng(5)
    n = np.repeat(np.array([1, 2, 4, 8, 12, 16]), 5)
    x = _usl(n) * np.exp(0.01 * rng.standard_normal(n.size))
    fit = fit_usl(n, x)
    assert fit.sigma == pytest.approx(0.05, abs=0.02)
    assert fit.kappa == pytest.approx(0.002, abs=0.001)


@pytest.mark.parametrize("scale", ["log", "linear"])
def test_usl_exact_data_is_exact(scale):
    fit = fit_usl(N, _usl(N), scale=scale)
    assert fit.sigma == pytest.approx(0.05, abs=1e-6)
    assert fit.kappa == pytest.approx(0.002, abs=1e-7)
    assert fit.peak_n == pytest.approx(math.sqrt(0.95 / 0.002), rel=1e-4)


@pytest.mark.parametrize("scale", ["log", "linear"])
def test_no_peak_without_coherency_exact_data(scale):
    fit = fit_usl(N, _usl(N, kappa=0.0), scale=scale)  # was N* = 4.0e5 before
    assert fit.kappa == pytest.approx(0.0, abs=1e-9)
    assert (fit.peak_n, fit.peak_n_ci) == (None, None)


@pytest.mark.parametrize("seed", range(10))
def test_no_peak_without_coherency_noisy_data(seed):
    rng = np.random.default_rng(seed)
    n = np.repeat(np.array([1, 2, 4, 8, 12, 16]), 6)
    fit = fit_usl(n, _usl(n, kappa=0.0) * np.exp(0.02 * rng.standard_normal(n.size)))
    assert fit.kappa_ci[0] == 0.0  # κ's CI reaches 0 ...
    assert (fit.peak_n, fit.peak_n_ci) == (None, None)  # ... so no N* (was 2.1e10)


def test_usl_linear_data_has_no_contention_or_coherency():
    fit = fit_usl(N, 1000.0 * N)
    assert fit.sigma == pytest.approx(0.0, abs=1e-4)
    assert fit.kappa == pytest.approx(0.0, abs=1e-6)
    assert fit.lambda_ == pytest.approx(1000.0, rel=1e-6)
    assert fit.peak_n is None
    assert fit.rmse < 1e-3


def test_log_fit_needs_positive_throughput():
    with pytest.raises(ValueError, match="scale='linear'"):
        fit_usl(N, _usl(N) - 1500.0)
    with pytest.raises(ValueError, match="scale must be"):
        fit_amdahl(N, _amdahl(N), scale="sqrt")


# --- Amdahl ------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", ["log", "linear"])
def test_amdahl_recovers_serial_fraction(scale):
    rng = np.random.default_rng(1)
    x = _amdahl(N) * np.exp(0.01 * rng.standard_normal(N.size))
    fit = fit_amdahl(N, x, scale=scale)
    assert fit.serial_fraction == pytest.approx(0.1, abs=0.01)
    assert fit.x1 == pytest.approx(500.0, rel=0.03)
    low, high = fit.serial_fraction_ci
    assert low <= 0.1 <= high
    assert 0.0 <= low <= fit.serial_fraction <= high <= 1.0
    assert fit.x1_ci[0] <= 500.0 <= fit.x1_ci[1]
    assert fit.scale == scale


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


# --- Karp-Flatt, modes and the scaling table ---------------------------------------------


def test_karp_flatt_hand_computed():
    # S = 3 at N = 4: (1/3 - 1/4) / (1 - 1/4) = (1/12) / (3/4) = 1/9
    assert karp_flatt(3.0, 4) == pytest.approx(1.0 / 9.0)
    assert karp_flatt(2.0, 2) == 0.0
    assert karp_flatt(1.0, 1) is None
    assert karp_flatt(0.0, 4) is None


class Mode(enum.Enum):
    STRONG = "strong"
    WEAK = "weak"


def test_mode_names():
    assert mode_name(Mode.WEAK) == "weak" and mode_name("strong") == "strong"
    assert (speedup_name("strong"), speedup_name(Mode.WEAK)) == ("speedup", "scaled speedup")
    assert (amdahl_name("strong"), amdahl_name("weak")) == (
        "serial fraction", "contention coefficient")
    with pytest.raises(ValueError, match="mode must be one of strong, weak"):
        mode_name("diagonal")


def test_scaling_table_hand_computed():
    # Amdahl with s = 1/9: S(2) = 2 / (1 + 1/9) = 1.8, S(4) = 4 / (1 + 3/9) = 3
    rows = scaling_table([4, 1, 2], [np.array([300.0] * 6), np.array([100.0]), np.array([180.0])])
    assert [r.n for r in rows] == [1, 2, 4]
    assert [r.speedup for r in rows] == pytest.approx([1.0, 1.8, 3.0])
    assert [r.efficiency for r in rows] == pytest.approx([1.0, 0.9, 0.75])
    assert rows[0].karp_flatt is None
    assert rows[1].karp_flatt == pytest.approx(1.0 / 9.0)
    assert rows[2].karp_flatt == pytest.approx(1.0 / 9.0)
    assert (rows[0].throughput_ci_low, rows[0].throughput_ci_high) == (None, None)
    assert (rows[2].throughput_ci_low, rows[2].throughput_ci_high) == (300.0, 300.0)
    assert (rows[0].speedup_ci_low, rows[0].speedup_ci_high) == (1.0, 1.0)  # by definition
    assert (rows[2].speedup_ci_low, rows[2].efficiency_ci_low) == (None, None)  # 1 round at N0


def test_scaling_table_speedup_ci_is_the_ratio_bootstrap():
    rng = np.random.default_rng(3)
    x1, x4 = 100.0 * np.exp(0.02 * rng.standard_normal(10)), 350.0 * np.exp(
        0.02 * rng.standard_normal(12))
    rows = scaling_table([1, 4], [x1, x4], seed=7)
    low, high = bootstrap_ratio_ci(x1, x4, seed=7)
    assert (rows[1].speedup_ci_low, rows[1].speedup_ci_high) == (low, high)
    assert (rows[1].efficiency_ci_low, rows[1].efficiency_ci_high) == (low / 4, high / 4)
    assert low < rows[1].speedup < high
    assert low == pytest.approx(3.5, rel=0.05) and high == pytest.approx(3.5, rel=0.05)


def test_scaling_table_linear_efficiency_is_one():
    samples = [_rounds(1000.0 * n) for n in (1, 2, 4, 8)]
    rows = scaling_table([1, 2, 4, 8], samples)
    assert [r.efficiency for r in rows] == pytest.approx([1.0] * 4, rel=1e-12)
    for r in rows:
        assert r.throughput_ci_low <= r.throughput_median <= r.throughput_ci_high
        assert r.efficiency_ci_low <= 1.0 <= r.efficiency_ci_high


def test_scaling_table_smallest_n_above_one_scales_reference():
    rows = scaling_table([2, 4, 8], [np.array([200.0]), np.array([400.0]), np.array([700.0])])
    assert [r.speedup for r in rows] == pytest.approx([2.0, 4.0, 7.0])
    assert [r.efficiency for r in rows] == pytest.approx([1.0, 1.0, 0.875])
    assert rows[0].karp_flatt == 0.0
    assert (rows[0].speedup_ci_low, rows[0].speedup_ci_high) == (2.0, 2.0)


def test_scaling_table_weak_mode_has_no_karp_flatt():
    args = ([1, 2], [_rounds(10.0), _rounds(19.0)])
    weak, strong = scaling_table(*args, mode="weak"), scaling_table(*args, mode=Mode.STRONG)
    assert [r.speedup for r in weak] == [r.speedup for r in strong]
    assert [r.efficiency_ci_low for r in weak] == [r.efficiency_ci_low for r in strong]
    assert strong[1].karp_flatt == pytest.approx(karp_flatt(1.9, 2))
    assert [r.karp_flatt for r in weak] == [None, None]


def test_scaling_table_rejects_bad_input():
    with pytest.raises(ValueError, match="mode must be one of strong, weak"):
        scaling_table([1], [np.array([1.0])], mode="diagonal")
    with pytest.raises(ValueError, match="distinct"):
        scaling_table([1, 1], [np.array([1.0]), np.array([2.0])])
    with pytest.raises(ValueError, match="throughput arrays"):
        scaling_table([1, 2], [np.array([1.0])])


# --- verdict -----------------------------------------------------------------------------


def test_verdict_linear():
    rows = scaling_table(list(N), [_rounds(1000.0 * n) for n in N])
    text = verdict(rows, fit_usl(N, 1000.0 * N), fit_amdahl(N, 1000.0 * N), "nodes")
    assert text == "scales linearly to 16 nodes: efficiency 1.00 (95% CI 0.99–1.01)"


def test_verdict_sub_linear_with_usl_peak_and_its_interval():
    rng = np.random.default_rng(4)
    n = np.repeat(N, 8)
    x = _usl(n) * np.exp(0.01 * rng.standard_normal(n.size))
    rows = scaling_table(list(N), [x[n == k] for k in N])
    fit = fit_usl(n, x)
    text = verdict(rows, fit, None, "workers")
    low, high = fit.peak_n_ci
    assert text.startswith(f"sub-linear: efficiency {rows[-1].efficiency:.2f} (95% CI ")
    assert f"at 16 workers (USL σ={fit.sigma:.3g}, κ={fit.kappa:.3g})" in text
    peak = f"USL peak at {round(fit.peak_n, 1):g} workers (95% CI {low:.1f}–{high:.1f})"
    assert text.endswith(peak)


def test_verdict_names_amdahl_s_by_mode():
    rows = (_row(1, 100.0, (1.0, 1.0)), _row(2, 180.0, (0.88, 0.92)), _row(4, 300.0, (0.7, 0.8)))
    fit = AmdahlFit(1.0 / 9.0, (0.1, 0.12), 100.0, 0.0)
    assert verdict(rows, None, fit, "cores") == (
        "sub-linear: efficiency 0.75 (95% CI 0.70–0.80) at 4 cores (Amdahl serial fraction 0.111)")
    assert verdict(rows, None, fit, "cores", mode="weak").endswith(
        "(Amdahl contention coefficient 0.111)")


def test_verdict_cannot_tell_when_ci_straddles_the_line():
    rows = (_row(1, 100.0, (1.0, 1.0)), _row(8, 728.0, (0.85, 0.97)))
    assert verdict(rows, None, None, "workers") == (
        "cannot tell linear from sub-linear: efficiency 0.91 (95% CI 0.85–0.97) at 8 workers; "
        "the CI contains 0.9")


def test_verdict_superlinear_needs_whole_ci_above():
    high = (_row(1, 100.0, (1.0, 1.0)), _row(4, 500.0, (1.15, 1.35)))
    assert verdict(high, None, None, "workers") == (
        "superlinear: efficiency 1.25 (95% CI 1.15–1.35) at 4 workers; check the baseline at "
        "1 worker (noisy or slowed?) before trusting it")
    wide = (_row(1, 100.0, (1.0, 1.0)), _row(4, 500.0, (0.95, 1.55)))
    assert verdict(wide, None, None, "workers").startswith("scales linearly to 4 workers:")


def test_verdict_retrograde_needs_disjoint_cis():
    points = [(1, 100.0), (2, 190.0), (4, 300.0)]
    rows = [_row(n, m, (0.7, 1.0)) for n, m in points]
    drop = (*rows, _row(8, 250.0, (0.2, 0.4), x_ci=(240.0, 260.0)))
    usl = USLFit(100.0, 0.1, 0.05, (90, 110), (0, 0.2), (0.01, 0.1), 4.24, 5.0, (3.9, 4.6))
    assert verdict(drop, usl, None, "workers") == (
        "retrograde after 4 workers (throughput 300 there, 250 at 8 workers); "
        "USL peak at 4.2 workers (95% CI 3.9–4.6)"
    )
    overlapping = (*rows, _row(8, 250.0, (0.2, 0.4), x_ci=(200.0, 310.0)))
    assert not verdict(overlapping, usl, None, "workers").startswith("retrograde")


def test_a_retrograde_verdict_names_no_peak_the_drop_measured_contradicts():
    points = [(1, 100.0), (2, 190.0), (4, 300.0)]
    drop = (*(_row(n, m, (0.7, 1.0)) for n, m in points), _row(8, 250.0, (0.2, 0.4), x_ci=(240.0, 260.0)))
    beyond = USLFit(100.0, 0.1, 0.01, (90, 110), (0, 0.2), (0.005, 0.02), 9.5, 5.0, (8.0, 11.0))
    below = USLFit(100.0, 0.1, 2.0, (90, 110), (0, 0.2), (1.0, 3.0), 0.67, 5.0, (0.5, 0.9))
    for usl in (beyond, below):  # a peak past the largest N, or under the smallest, is not where it fell
        assert verdict(drop, usl, None, "workers") == "retrograde after 4 workers (throughput 300 there, 250 at 8 workers)"


def test_karp_flatt_states_no_serial_fraction_for_a_superlinear_speedup():
    assert karp_flatt(5.0, 4) is None  # (1/5 - 1/4)/(3/4) = -0.067: not a fraction of anything
    assert karp_flatt(4.0, 4) == 0.0


def test_verdict_needs_cis():
    rows = scaling_table([1, 2, 4], [np.array([100.0]), np.array([180.0]), np.array([300.0])])
    assert verdict(rows, None, None, "cores") == (
        "efficiency 0.75 at 4 cores; no verdict without CIs (every point needs 6 rounds)")


def test_verdict_single_point_uses_singular():
    assert verdict((_row(1, 100.0, (1.0, 1.0)),), None, None, "nodes") == (
        "only one point (1 node); no scaling verdict"
    )
