"""Tests for orchestrator.analysis.stats against hand-worked and independently computed values."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest

from orchestrator.analysis.stats import (
    Comparison,
    compare,
    count_outliers,
    regression,
    summarize,
)

EPOCH_NS = 1_700_000_000_000_000_000  # beyond float64's exact integers: checks int64 handling
S = 1_000_000_000  # one second in ns


# --- summarize ---------------------------------------------------------------------------


def test_summarize_hand_worked():
    s = summarize([1.0, 2.0, 3.0, 4.0, 100.0])
    assert s.n == 5
    assert s.mean == 22.0
    assert s.median == 3.0
    assert s.stdev == pytest.approx(statistics.stdev([1, 2, 3, 4, 100]), rel=1e-12)
    # |x - 3| = 2, 1, 0, 1, 97 -> median 1
    assert s.mad == 1.0
    assert s.cv == pytest.approx(statistics.stdev([1, 2, 3, 4, 100]) / 22.0, rel=1e-12)
    assert (s.min, s.max) == (1.0, 100.0)
    assert (s.p5, s.p95, s.p99) == (None, None, None)
    # 100 has modified z 0.6745 * 97 / 1 = 65.4 > 3.5; 1 has 1.35
    assert s.outliers == 1
    assert s.ci_low is not None and s.ci_high is not None
    assert 1.0 <= s.ci_low <= s.median <= s.ci_high <= 100.0


def test_summarize_matches_statistics_module():
    x = np.random.default_rng(7).lognormal(3.0, 0.4, size=57)
    s = summarize(x)
    assert s.mean == pytest.approx(statistics.fmean(x.tolist()), rel=1e-12)
    assert s.median == statistics.median(x.tolist())
    assert s.stdev == pytest.approx(statistics.stdev(x.tolist()), rel=1e-12)
    assert s.mad == pytest.approx(statistics.median([abs(v - s.median) for v in x]), rel=1e-12)


def test_summarize_small_samples():
    one = summarize([5.0])
    assert (one.stdev, one.cv, one.ci_low, one.ci_high) == (None, None, None, None)
    assert (one.mad, one.outliers) == (0.0, 0)
    two = summarize([4.0, 6.0])
    assert two.stdev == pytest.approx(math.sqrt(2.0))
    assert (two.ci_low, two.ci_high) == (None, None)


def test_summarize_all_equal_gives_point_ci():
    s = summarize([7.0, 7.0, 7.0, 7.0])
    assert (s.ci_low, s.ci_high) == (7.0, 7.0)
    assert (s.stdev, s.mad, s.cv, s.outliers) == (0.0, 0.0, 0.0, 0)


def test_summarize_zero_mean_has_no_cv():
    assert summarize([-1.0, 1.0]).cv is None


def test_summarize_rejects_empty_and_nan():
    with pytest.raises(ValueError, match="empty"):
        summarize([])
    with pytest.raises(ValueError, match="NaN"):
        summarize([1.0, math.nan])


@pytest.mark.parametrize(
    ("n", "has_p5_p95", "has_p99"),
    [(19, False, False), (20, True, False), (99, True, False), (100, True, True)],
)
def test_percentiles_only_when_sample_count_supports_them(n, has_p5_p95, has_p99):
    x = np.random.default_rng(n).normal(100.0, 5.0, size=n)
    s = summarize(x)
    if has_p5_p95:
        assert s.p5 == pytest.approx(np.percentile(x, 5))
        assert s.p95 == pytest.approx(np.percentile(x, 95))
    else:
        assert s.p5 is None and s.p95 is None
    if has_p99:
        assert s.p99 == pytest.approx(np.percentile(x, 99))
    else:
        assert s.p99 is None


def test_summarize_is_reproducible_for_a_seed():
    x = np.random.default_rng(3).normal(size=15)
    assert summarize(x, seed=1) == summarize(x, seed=1)


def test_median_ci_coverage_near_nominal():
    hits = 0
    trials = 200
    for seed in range(trials):
        x = np.random.default_rng(1000 + seed).normal(50.0, 2.0, size=31)
        s = summarize(x, seed=seed)
        hits += s.ci_low <= 50.0 <= s.ci_high
    assert 0.88 <= hits / trials <= 0.995


def test_ci_level_widens_interval():
    x = np.random.default_rng(11).normal(size=40)
    narrow = summarize(x, confidence=0.80)
    wide = summarize(x, confidence=0.99)
    assert wide.ci_low <= narrow.ci_low and narrow.ci_high <= wide.ci_high


# --- outliers ----------------------------------------------------------------------------


def test_outliers_hand_made():
    # median 10; |x - 10| = 0,0,1,1,0,2,2,0,20,15 -> MAD 1
    # z(30) = 0.6745 * 20 = 13.5, z(-5) = 10.1, z(12) = 1.35 -> two outliers
    x = [10, 10, 11, 9, 10, 12, 8, 10, 30, -5]
    assert count_outliers(x) == 2
    assert summarize(x).outliers == 2


def test_outlier_threshold_boundary():
    # median 0, MAD 1: |x| > 3.5 / 0.6745 = 5.189 is an outlier
    base = [-1.0, -1.0, 0.0, 0.0, 0.0, 1.0, 1.0]
    assert count_outliers([*base, 5.1, -5.1]) == 0
    assert count_outliers([*base, 5.3, -5.3]) == 2


def test_no_outliers_when_mad_is_zero():
    assert count_outliers([5.0, 5.0, 5.0, 5.0, 100.0]) == 0


# --- compare / regression ----------------------------------------------------------------


def _noisy(rng, center, n=20, noise=0.01):
    return center * (1.0 + noise * rng.standard_normal(n))


def test_compare_a_vs_a_false_alarm_rate():
    alarms = 0
    for seed in range(100):
        rng = np.random.default_rng(seed)
        c = compare(_noisy(rng, 1000.0), _noisy(rng, 1000.0), seed=seed)
        alarms += c.verdict != "no significant change"
    assert alarms <= 5


@pytest.mark.parametrize(
    ("new_center", "higher_is_better", "expected"),
    [
        (900.0, True, "slower"),
        (1100.0, True, "faster"),
        (900.0, False, "faster"),
        (1100.0, False, "slower"),
    ],
)
def test_compare_detects_ten_percent_shift(new_center, higher_is_better, expected):
    rng = np.random.default_rng(42)
    base = _noisy(rng, 1000.0)
    new = _noisy(rng, new_center)
    c = compare(base, new, higher_is_better=higher_is_better)
    assert c.verdict == expected
    assert c.p_value < 0.01
    assert c.ratio == pytest.approx(np.median(new) / np.median(base))
    assert c.ratio_ci_low <= c.ratio <= c.ratio_ci_high
    assert c.ratio == pytest.approx(new_center / 1000.0, rel=0.02)
    assert regression(c, 0.05) is (expected == "slower")
    assert regression(c, 0.15) is False


def test_compare_hand_worked_medians():
    c = compare([1.0, 2.0, 3.0], [2.0, 4.0, 6.0, 8.0])
    assert (c.base_median, c.new_median, c.ratio) == (2.0, 5.0, 2.5)
    assert c.higher_is_better is True


def test_compare_identical_constant_samples():
    c = compare([5.0] * 10, [5.0] * 10)
    assert c.ratio == 1.0
    assert (c.ratio_ci_low, c.ratio_ci_high) == (1.0, 1.0)
    assert c.p_value == 1.0
    assert c.verdict == "no significant change"


def test_compare_single_value_side_has_no_ci():
    c = compare([10.0], [20.0, 21.0, 22.0])
    assert (c.ratio_ci_low, c.ratio_ci_high) == (None, None)
    assert c.verdict == "no significant change"


def test_compare_rejects_zero_base_median():
    with pytest.raises(ValueError, match="base median is 0"):
        compare([0.0, 0.0, 1.0], [1.0, 2.0, 3.0])


def test_regression_needs_slower_verdict():
    faster = Comparison(1.0, 0.5, 0.5, 0.4, 0.6, 1e-6, "faster", False)
    slower = Comparison(1.0, 0.5, 0.5, 0.4, 0.6, 1e-6, "slower", True)
    unchanged = Comparison(1.0, 0.5, 0.5, 0.4, 0.6, 0.5, "no significant change", True)
    assert not regression(faster, 0.05)
    assert regression(slower, 0.05)
    assert not regression(slower, 0.6)
    assert not regression(unchanged, 0.05)
