"""Tests for orchestrator.analysis.stats against hand-worked and independently computed values."""

from __future__ import annotations

import dataclasses
import math
import statistics

import numpy as np
import pytest
import scipy.stats

from orchestrator.analysis.stats import (
    MIN_UNITS_FOR_CI,
    Comparison,
    bootstrap_median_ci,
    bootstrap_ratio_ci,
    compare,
    count_outliers,
    holm,
    holm_adjust,
    judge_family,
    median_order_ci,
    min_units_for_ci,
    regression,
    round_means,
    smallest_p,
    summarize,
    summarize_rounds,
    summarize_workers,
)

# --- summarize ---------------------------------------------------------------------------


def test_summarize_hand_worked():
    s = summarize([1.0, 2.0, 3.0, 4.0, 5.0, 100.0])
    assert s.n == 6
    assert s.mean == 115.0 / 6
    assert s.median == 3.5
    assert s.stdev == pytest.approx(statistics.stdev([1, 2, 3, 4, 5, 100]), rel=1e-12)
    # |x - 3.5| = 2.5, 1.5, 0.5, 0.5, 1.5, 96.5 -> median 1.5
    assert s.mad == 1.5
    assert s.cv == pytest.approx(statistics.stdev([1, 2, 3, 4, 5, 100]) / (115.0 / 6), rel=1e-12)
    assert (s.min, s.max) == (1.0, 100.0)
    assert (s.p5, s.p95, s.p99) == (None, None, None)
    # 100 has modified z 0.6745 * 96.5 / 1.5 = 43.4 > 3.5; 1 has 1.12
    assert s.outliers == 1
    assert 1.0 <= s.ci_low <= s.median <= s.ci_high <= 100.0


def test_summarize_matches_statistics_module():
    x = np.random.default_rng(7).lognormal(3.0, 0.4, size=57)
    s = summarize(x)
    assert s.mean == pytest.approx(statistics.fmean(x.tolist()), rel=1e-12)
    assert s.median == statistics.median(x.tolist())
    assert s.stdev == pytest.approx(statistics.stdev(x.tolist()), rel=1e-12)
    assert s.mad == pytest.approx(statistics.median([abs(v - s.median) for v in x]), rel=1e-12)


def test_no_ci_below_six_units():
    assert MIN_UNITS_FOR_CI == 6 == min_units_for_ci(0.95)
    assert min_units_for_ci(0.99) == 8  # 2^(1-7) = 0.0156 > 0.01, 2^(1-8) = 0.0078
    assert min_units_for_ci(0.75) == 3  # 2^(1-3) = 0.25 exactly
    for n in range(1, 6):
        s = summarize(np.arange(1.0, n + 1.0))
        assert (s.ci_low, s.ci_high) == (None, None), n
    s = summarize(np.arange(1.0, 7.0))
    assert 1.0 <= s.ci_low < s.median < s.ci_high <= 6.0
    assert summarize(np.arange(7.0), confidence=0.99).ci_low is None
    assert summarize(np.arange(8.0), confidence=0.99).ci_low is not None


def test_summarize_small_samples():
    one = summarize([5.0])
    assert (one.stdev, one.cv, one.ci_low, one.ci_high) == (None, None, None, None)
    assert (one.mad, one.outliers) == (0.0, 0)
    two = summarize([4.0, 6.0])
    assert two.stdev == pytest.approx(math.sqrt(2.0))


def test_summarize_all_equal_gives_point_ci():
    s = summarize([7.0] * 6)
    assert (s.ci_low, s.ci_high) == (7.0, 7.0)
    assert (s.stdev, s.mad, s.cv, s.outliers) == (0.0, 0.0, 0.0, 0)


def test_summarize_zero_mean_has_no_cv():
    assert summarize([-1.0, 1.0]).cv is None


def test_summarize_rejects_empty_and_nan():
    with pytest.raises(ValueError, match="empty"):
        summarize([])
    with pytest.raises(ValueError, match="NaN"):
        summarize([1.0, math.nan])
    with pytest.raises(ValueError, match="confidence"):
        summarize([1.0] * 6, confidence=1.0)


@pytest.mark.parametrize(
    ("n", "has_p5_p95", "has_p99"),
    [(19, False, False), (20, True, False), (99, True, False), (100, True, True)],
)
def test_percentiles_only_when_unit_count_supports_them(n, has_p5_p95, has_p99):
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


def test_ci_level_widens_interval():
    x = np.random.default_rng(11).normal(size=40)
    narrow = summarize(x, confidence=0.80)
    wide = summarize(x, confidence=0.99)
    assert wide.ci_low <= narrow.ci_low and narrow.ci_high <= wide.ci_high


# --- the bootstrap against scipy ---------------------------------------------------------


@pytest.mark.parametrize("n", [6, 31, 200])
def test_median_ci_matches_scipy_bootstrap(n):
    x = np.random.default_rng(n).lognormal(0.0, 0.3, size=n)
    low, high = bootstrap_median_ci(x)
    ref = scipy.stats.bootstrap((x,), np.median, n_resamples=49_999, method="percentile",
                                rng=np.random.default_rng(1)).confidence_interval
    width = ref.high - ref.low
    assert abs(low - ref.low) <= 0.05 * width and abs(high - ref.high) <= 0.05 * width


def test_ratio_ci_matches_scipy_bootstrap():
    rng = np.random.default_rng(5)
    base, new = rng.normal(100.0, 3.0, 40), rng.normal(90.0, 3.0, 30)
    low, high = bootstrap_ratio_ci(base, new)
    ref = scipy.stats.bootstrap(
        (base, new), lambda b, x, axis=-1: np.median(x, axis=axis) / np.median(b, axis=axis),
        n_resamples=49_999, method="percentile", rng=np.random.default_rng(1),
    ).confidence_interval
    width = ref.high - ref.low
    assert abs(low - ref.low) <= 0.05 * width and abs(high - ref.high) <= 0.05 * width


def test_vectorized_rows_equal_single_calls():
    x = np.random.default_rng(2).normal(50.0, 2.0, size=(5, 10))
    low, high = bootstrap_median_ci(x, seed=3)
    for i in range(5):
        s = summarize(x[i], seed=3)
        assert (s.ci_low, s.ci_high) == (low[i], high[i])


# --- distribution-free interval of the median --------------------------------------------


@pytest.mark.parametrize(
    ("n", "ranks"),  # 1-based order statistics, Le Boudec 2010, Table A.1 / Thm 2.1
    [(6, (1, 6)), (9, (2, 8)), (10, (2, 9)), (12, (3, 10)), (20, (6, 15)), (30, (10, 21))],
)
def test_order_ci_ranks(n, ranks):
    x = np.arange(1.0, n + 1.0)[::-1]  # order of input does not matter
    assert median_order_ci(x) == ranks
    j = ranks[0]
    assert 1 - 2 * scipy.stats.binom.cdf(j - 1, n, 0.5) >= 0.95  # covers
    assert 1 - 2 * scipy.stats.binom.cdf(j, n, 0.5) < 0.95  # and is the narrowest that does


def test_order_ci_needs_six_units_at_95():
    assert median_order_ci([1.0, 2.0, 3.0, 4.0, 5.0]) is None
    assert median_order_ci(np.arange(7.0), 0.99) is None
    assert median_order_ci(np.arange(8.0), 0.99) == (0.0, 7.0)


# --- rounds and workers ------------------------------------------------------------------


def test_summarize_rounds_uses_round_means_and_keeps_workers():
    # Two workers that differ (15 vs 22 GB/s) over 8 rounds with a shared round effect.
    effect = np.array([0.0, 1.0, -1.0, 0.5, -0.5, 2.0, -2.0, 0.25])
    values = np.column_stack([15.0 + effect, 22.0 + effect])
    s = summarize_rounds(values, seed=4)
    assert s.per_worker == summarize((37.0 + 2 * effect) / 2, seed=4)
    assert s.per_worker.n == 8
    assert s.per_worker.median == pytest.approx(18.5 + np.median(effect))
    assert [w.median for w in s.workers] == pytest.approx([15.125, 22.125])
    assert s.workers == summarize_workers(values, seed=4)
    assert s.workers[0] == summarize(values[:, 0], seed=4)
    assert round_means(values) == pytest.approx(18.5 + effect)


def test_one_worker_round_summary_is_its_own():
    values = np.random.default_rng(0).normal(10.0, 1.0, size=(12, 1))
    s = summarize_rounds(values)
    assert s.workers == (s.per_worker,)


def test_summarize_rounds_counts_rounds_as_units():
    values = np.ones((5, 8))  # 40 samples, but only 5 rounds: no CI
    s = summarize_rounds(values)
    assert s.per_worker.n == 5
    assert (s.per_worker.ci_low, s.workers[0].ci_low) == (None, None)


def test_summarize_rounds_rejects_bad_shapes():
    with pytest.raises(ValueError, match="2-D"):
        summarize_rounds(np.ones(6))
    with pytest.raises(ValueError, match="2-D"):
        summarize_rounds(np.ones((0, 2)))
    with pytest.raises(ValueError, match="incomplete rounds"):
        summarize_rounds(np.array([[1.0, math.nan]] * 6))


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
        c = compare(_noisy(rng, 1000.0), _noisy(rng, 1000.0))
        alarms += c.verdict != "no significant change"
    assert alarms <= 3


@pytest.mark.parametrize(
    ("new_center", "better", "expected"),
    [(900.0, "higher", "slower"), (1100.0, "higher", "faster"),
     (900.0, "lower", "faster"), (1100.0, "lower", "slower")],
)
def test_compare_detects_ten_percent_shift(new_center, better, expected):
    rng = np.random.default_rng(42)
    base = _noisy(rng, 1000.0)
    new = _noisy(rng, new_center)
    c = compare(base, new, better=better)
    assert c.verdict == expected
    assert c.p_value < 0.01 and c.p_adjusted == c.p_value
    assert (c.base_n, c.new_n, c.better) == (20, 20, better)
    assert c.ratio == pytest.approx(np.median(new) / np.median(base))
    assert c.ratio_ci_low <= c.ratio <= c.ratio_ci_high
    assert c.ratio == pytest.approx(new_center / 1000.0, rel=0.02)
    assert regression(c, 0.05) is (expected == "slower")
    assert regression(c, 0.15) is False


def test_descriptive_metric_gets_no_verdict():
    rng = np.random.default_rng(1)
    c = compare(_noisy(rng, 1000.0), _noisy(rng, 500.0), better=None)
    assert c.verdict == "descriptive"
    assert c.p_value < 1e-6 and c.p_adjusted is None and c.higher_is_better is None
    assert c.ratio_ci_high < 0.6  # still measured, just not judged


def test_legacy_higher_is_better_flag():
    rng = np.random.default_rng(2)
    base, new = _noisy(rng, 1000.0), _noisy(rng, 1100.0)
    assert compare(base, new, higher_is_better=False).verdict == "slower"
    assert compare(base, new, higher_is_better=False).better == "lower"
    with pytest.raises(ValueError, match="contradicts"):
        compare(base, new, better="lower", higher_is_better=True)


def test_too_few_samples_to_tell():
    five = compare([1.0, 2.0, 3.0, 4.0, 5.0], [10.0, 11.0, 12.0, 13.0, 14.0])
    assert five.verdict == "too few samples to tell"
    assert (five.ratio_ci_low, five.ratio_ci_high, five.p_adjusted) == (None, None, None)
    # 6 vs 6 can reach p = 2/924 = 0.0022: enough at alpha 0.01, not at 0.001
    base, new = np.arange(6.0) + 10, np.arange(6.0) + 20
    assert compare(base, new, alpha=0.01).verdict == "faster"
    assert compare(base, new, alpha=0.001).verdict == "too few samples to tell"


def test_smallest_p_hand_worked():
    assert smallest_p(3, 3) == pytest.approx(0.1)  # 2 / C(6, 3)
    assert smallest_p(6, 6) == pytest.approx(2 / 924)


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


def test_compare_rejects_zero_base_median():
    with pytest.raises(ValueError, match="base median is 0"):
        compare([0.0, 0.0, 1.0], [1.0, 2.0, 3.0])


def _comparison(p, low=0.8, high=0.9, better="higher", verdict="slower"):
    return Comparison(10, 10, 1.0, 0.85, 0.85, low, high, p, p, verdict, better)


def test_regression_needs_slower_verdict():
    faster = dataclasses.replace(_comparison(1e-6), verdict="faster", better="lower")
    slower = _comparison(1e-6)
    unchanged = dataclasses.replace(_comparison(0.5), verdict="no significant change")
    assert not regression(faster, 0.05)
    assert regression(slower, 0.05)
    assert not regression(slower, 0.6)
    assert not regression(unchanged, 0.05)


# --- Holm across a comparison ------------------------------------------------------------


def test_holm_adjust_hand_worked():
    # sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04 -> running max
    assert holm_adjust([0.01, 0.04, 0.03, 0.005]) == pytest.approx((0.03, 0.06, 0.06, 0.02))
    assert holm([0.01, 0.04, 0.03, 0.005], 0.05) == (True, False, False, True)
    assert holm_adjust([0.6, 0.9]) == pytest.approx((1.0, 1.0))
    assert holm_adjust([]) == ()
    with pytest.raises(ValueError, match="p-values"):
        holm_adjust([0.5, 1.5])


def test_holm_keeps_family_wise_level():
    p = np.random.default_rng(0).uniform(size=(20_000, 20))  # 20 true nulls per family
    order = np.sort(p, axis=1)
    rejects_any = order[:, 0] * 20 < 0.05  # the first step decides whether any is rejected
    assert rejects_any.mean() <= 0.05 + 0.005
    assert all(not any(holm(row, 0.05)) for row in p[~rejects_any][:50])
    assert all(any(holm(row, 0.05)) for row in p[rejects_any][:50])


def test_judge_family_applies_holm_then_the_ci():
    family = [
        _comparison(0.006),  # alone significant at 0.01; 3 tested -> 0.018
        _comparison(0.007),
        _comparison(0.5, low=0.95, high=1.05, verdict="no significant change"),
        dataclasses.replace(_comparison(1e-9), better=None, verdict="descriptive",
                            p_adjusted=None),
        dataclasses.replace(_comparison(0.2), verdict="too few samples to tell", p_adjusted=None),
    ]
    judged = judge_family(family, 0.01)
    assert [c.verdict for c in judged] == ["no significant change"] * 3 + [
        "descriptive", "too few samples to tell"]
    assert [c.p_adjusted for c in judged[:3]] == pytest.approx([0.018, 0.018, 0.5])
    assert judged[3:] == tuple(family[3:])
    strong = judge_family([_comparison(1e-6), _comparison(0.004), family[2]], 0.01)
    assert [c.verdict for c in strong] == ["slower", "slower", "no significant change"]
    assert [c.p_adjusted for c in strong] == pytest.approx([3e-6, 0.008, 0.5])
    no_ci = judge_family([_comparison(1e-6, low=0.9, high=1.01)], 0.01)
    assert no_ci[0].verdict == "no significant change"  # Holm rejects, the CI contains 1
