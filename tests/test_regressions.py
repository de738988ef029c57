"""analysis.regressions on simulated series: false alarms, power, gradual changes, the BH family.

Series are built in memory (one run per point, 8 rounds per run), seeded; the bounds sit a few
binomial standard errors above the rates measured (stated beside each).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import lfilter

from orchestrator.analysis.candidates import Candidate
from orchestrator.analysis.changepoints import ChangePoint
from orchestrator.analysis.regressions import Confirmation, analyze, confirm, judge
from orchestrator.analysis.series import Point, Series, SeriesKey
from orchestrator.settings import HISTORY


def _series(sid: int, rounds: np.ndarray) -> Series:
    key = SeriesKey("f", f"w{sid}", "v", "{}", "compact", 1, 1, 1, "weak", "m", "ops/s", True, "h")
    values = np.median(rounds, axis=1)
    return Series(key, tuple(Point(f"p{i}", None, None, (f"{sid}-{i}",), (float(v),), float(v), None, None, None)
                             for i, v in enumerate(values)), "time")


def _history(levels: list[np.ndarray], seed: int, noise: float = 0.01, rho: float = 0.0):
    """Return the history of series with these run levels: AR(1) run noise, rounds about each run."""
    rng = np.random.default_rng(seed)
    series, store = [], {}
    for sid, level in enumerate(levels):
        drift = lfilter([1], [1, -rho], rng.normal(0, noise, len(level))) * np.sqrt(1 - rho**2)
        rounds = (level * (1 + drift))[:, None] * (1 + rng.normal(0, noise / 2, (len(level), 8)))
        series.append(_series(sid, rounds))
        store.update({f"{sid}-{i}": [list(r)] for i, r in enumerate(rounds)})
    return analyze(series, lambda needed: store, lambda s, run: run, HISTORY)


def _confirmed(history):
    return [[(c.good_index, c.index) for c in s.changes if c.confirmed] for s in history.series]


@pytest.mark.parametrize(("n", "rho", "bound"), [(50, 0.0, 3), (100, 0.0, 4), (60, 0.5, 5)])
def test_steady_series_rarely_get_a_confirmed_change(n, rho, bound):
    # Measured 0/150 (50 points), 1/200 (100), 2/200 (50 points, rho 0.5: drifting runs).
    history = _history([np.full(n, 100.0)] * 150, seed=n, rho=rho)
    assert sum(1 for c in _confirmed(history) if c) <= bound
    assert history.family >= 150  # every series scanned is a hypothesis, flagged or not


def test_a_15_percent_step_is_found_where_it_is():
    levels = [np.r_[np.full(20, 100.0), np.full(20, 85.0)]] * 100
    found = _confirmed(_history(levels, seed=1))
    assert sum(1 for c in found if c == [(19, 20)]) >= 97  # measured 100/100


@pytest.mark.parametrize("shape", ["ramp", "stairs"])
def test_a_gradual_regression_is_one_change_spanning_the_transition(shape):
    transition = np.linspace(100, 85, 12) if shape == "ramp" else np.repeat([95.0, 90.0], 6)
    level = np.r_[np.full(20, 100.0), transition, np.full(20, 85.0)]
    history = _history([level] * 5, seed=2, noise=0.005)
    for s in history.series:
        (change,) = s.changes  # the detector alone reports nothing here: its residuals look dependent
        assert change.confirmed and change.kind == "regression" and change.shape == "gradual"
        assert 18 <= change.good_index <= 21 and 30 <= change.index <= 32
        assert change.ratio == pytest.approx(0.85, abs=0.01) and change.level_before == pytest.approx(100, rel=0.01)


def test_the_family_counts_series_without_a_candidate():
    lone = Confirmation(0.9, 0.85, 0.95, 0.001, "runs", 10, 10)
    assert judge([lone], 0.05)[0].confirmed
    crowded = judge([lone], 0.05, quiet=99)[0]  # 100 series scanned: 0.001 × 100 = 0.1
    assert crowded.p_adjusted == pytest.approx(0.1) and not crowded.confirmed


def _candidate(rho: float, splits: int = 1) -> Candidate:
    cp = ChangePoint(10, 0, 20, 1.0, 1.1, 1.0, 1.1, 0.1, 1.0, 3.0, 0.001, 1.0)
    return Candidate(cp, range(10), range(10, 20), 9, splits, rho)


def test_confirmation_deflates_for_dependence_and_the_scan():
    rng = np.random.default_rng(4)
    rounds = {f"r{i}": [list((1.0 if i < 10 else 1.02) * (1 + rng.normal(0, 0.01, 8)))] for i in range(20)}
    series = Series(SeriesKey("f", "w", "v", "{}", "compact", 1, 1, 1, "weak", "m", "u", True, "h"),
                    tuple(Point(f"p{i}", None, None, (f"r{i}",), (1.0,), 1.0, None, None, None) for i in range(20)),
                    "time")
    plain = confirm(series, _candidate(0.0), rounds, lambda r: r, HISTORY)
    dependent = confirm(series, _candidate(0.5), rounds, lambda r: r, HISTORY)
    scanned = confirm(series, _candidate(0.0, splits=11), rounds, lambda r: r, HISTORY)
    assert plain.basis == "runs" and (plain.runs_before, plain.runs_after) == (10, 10)
    assert plain.p_value < dependent.p_value and scanned.p_value == pytest.approx(min(1, 11 * plain.p_value))
    assert dependent.ci_low < plain.ci_low < plain.ratio < plain.ci_high < dependent.ci_high
    missing = confirm(series, _candidate(0.0), {}, lambda r: r, HISTORY)
    assert missing.p_value is None and missing.basis.startswith("untestable")


def test_values_at_zero_fall_back_to_ranks_of_run_figures():
    rounds = {f"r{i}": [[5.0, 6.0, 7.0] if i < 10 else [0.0, 0.0, 1.0]] for i in range(20)}  # errors: 6, then 0
    series = Series(SeriesKey("f", "w", "v", "{}", "compact", 1, 1, 1, "weak", "m", "u", False, "h"),
                    tuple(Point(f"p{i}", None, None, (f"r{i}",), (1.0,), 1.0, None, None, None) for i in range(20)),
                    "time")
    found = confirm(series, _candidate(0.0), rounds, lambda r: r, HISTORY)
    assert found.basis == "run figures" and found.ratio == 0.0 and found.p_value < 0.001
    zero_before = {f"r{i}": [[0.0, 0.0, 1.0] if i < 10 else [5.0, 6.0, 7.0]] for i in range(20)}
    assert confirm(series, _candidate(0.0), zero_before, lambda r: r, HISTORY).basis == \
        "untestable: the median before is 0"
