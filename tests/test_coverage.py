"""Seeded simulations: do intervals cover, do A/A pairs stay quiet, does stopping keep its level?

The synthetic model of issue 10: a trial of R rounds x W workers; every sample of round r is
1000·(1 + 0.03·z_r + 0.01·e_rw) with z, e standard normal: a round effect of sd 3% hits all W
samples of its round, per-sample noise is 1%. The true median of a round's mean is 1000.
Repetition counts keep the binomial standard error small against each bound asserted: 10,000
trials (se 0.0023) for the coverage of 0.93-0.97, 5,000 A/A pairs (se 0.0014) for alpha + 0.01.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import scipy.stats

from orchestrator.analysis.scaling import fit_usl
from orchestrator.analysis.stats import (
    bootstrap_median_ci,
    compare,
    round_means,
    summarize_rounds,
)
from orchestrator.analysis.stopping import StoppingRule, look_schedule

TRUTH = 1000.0
ROUNDS = 10
ALPHA = 0.01


def _trials(seed: int, reps: int, workers: int, rounds: int = ROUNDS) -> np.ndarray:
    """Return reps x rounds x workers samples of the model (round effect 3%, noise 1%)."""
    rng = np.random.default_rng(seed)
    effect = 0.03 * rng.standard_normal((reps, rounds, 1))
    return TRUTH * (1.0 + effect + 0.01 * rng.standard_normal((reps, rounds, workers)))


def _covers(low: np.ndarray, high: np.ndarray) -> float:
    return float(np.mean((low <= TRUTH) & (TRUTH <= high)))


# --- the CI of a trial's median -----------------------------------------------------------


@pytest.mark.parametrize(("workers", "issue"), [(2, 0.818), (4, 0.744), (8, 0.612)])
def test_pooling_workers_undercovers_as_the_issue_measured(workers, issue):
    values = _trials(100 + workers, 2000, workers)
    pooled = _covers(*bootstrap_median_ci(values.reshape(2000, -1)))  # what trials did before
    assert pooled == pytest.approx(issue, abs=0.06)  # this model: 0.84, 0.71, 0.57


@pytest.mark.parametrize("workers", [1, 2, 4, 8])
def test_round_units_cover_at_every_worker_count(workers):
    values = _trials(200 + workers, 10_000, workers)
    low, high = bootstrap_median_ci(values.mean(axis=2))
    for i in (0, 1, 9999):  # the vectorized rows are exactly what the trial summary reports
        s = summarize_rounds(values[i]).per_worker
        assert (s.ci_low, s.ci_high) == (low[i], high[i])
        assert np.array_equal(round_means(values[i]), values[i].mean(axis=1))
    assert 0.93 <= _covers(low, high) <= 0.97


# --- A/A comparisons at alpha = 0.01 ------------------------------------------------------


def _aa_alarms(base: np.ndarray, new: np.ndarray) -> float:
    """Return the share of pairs `compare` calls significant (only p < alpha can be)."""
    p = scipy.stats.mannwhitneyu(new, base, axis=1).pvalue
    candidates = np.flatnonzero(p < ALPHA)
    verdicts = [compare(base[i], new[i], alpha=ALPHA).verdict for i in candidates]
    return sum(v != "no significant change" for v in verdicts) / base.shape[0]


@pytest.mark.parametrize(("workers", "issue"), [(2, 0.058), (4, 0.144), (8, 0.304)])
def test_pooled_a_a_pairs_cry_wolf_as_the_issue_measured(workers, issue):
    base, new = _trials(300 + workers, 600, workers), _trials(400 + workers, 600, workers)
    rate = _aa_alarms(base.reshape(600, -1), new.reshape(600, -1))
    assert rate == pytest.approx(issue, abs=0.05)  # this model: 0.06, 0.18, 0.33


@pytest.mark.parametrize("workers", [1, 2, 4, 8])
def test_a_a_false_alarms_stay_at_alpha_on_round_units(workers):
    base, new = _trials(500 + workers, 5000, workers), _trials(600 + workers, 5000, workers)
    assert _aa_alarms(base.mean(axis=2), new.mean(axis=2)) <= ALPHA + 0.01


# --- --until-stable -----------------------------------------------------------------------


def test_look_schedule_follows_the_runner():
    # first batch, then ceil(half the rounds so far) each time, the last one cut at the cap
    assert look_schedule(3, 600) == (3, 5, 8, 12, 18, 27, 41, 62, 93, 140, 210, 315, 473, 600)
    assert look_schedule(10, 40) == (10, 15, 23, 35, 40)
    assert look_schedule(10, 5) == ()


def test_a_look_reports_what_it_can():
    rule = StoppingRule(rel_ci=0.5)
    first = rule.look(np.array([10.0, 11.0, 12.0]))
    assert (first.stop, first.ci_low, first.level, first.n, first.median) == (
        False, None, None, 3, 11.0)
    rows = np.column_stack([np.arange(1.0, 41.0), np.arange(1.0, 41.0) + 2.0])  # 40 x 2 workers
    look = rule.look(rows, (10, 20))
    assert look.n == 40 and look.median == 21.5
    assert look.ci_low < 21.5 < look.ci_high and look.level > 0.95 and look.confidence == 0.95
    assert look.stop == ((look.ci_high - look.ci_low) / 2 <= 0.5 * 21.5)
    with pytest.raises(ValueError, match="must increase"):
        rule.look(rows, (20, 10))
    with pytest.raises(ValueError, match="must increase"):
        rule.look(rows, (40,))
    with pytest.raises(ValueError, match="rel_ci"):
        StoppingRule(rel_ci=0.0)


def test_all_looks_cover_at_once_with_the_spent_level():
    # Simultaneous coverage of every look's interval, simulated on uniforms (median 0.5):
    # at most alpha·k/(k+2) missed by look k, and most of that budget is used.
    looks = look_schedule(10, 120)  # 10, 15, 23, 35, 53, 80, 120
    rule = StoppingRule(rel_ci=0.01)
    data = np.random.default_rng(3).uniform(size=(20_000, looks[-1]))
    missed = np.zeros(data.shape[0], bool)
    x_row = data[0]
    for k, n in enumerate(looks, 1):
        look = rule.look(x_row[:n], looks[: k - 1])
        r = int(np.flatnonzero(np.sort(x_row[:n]) == look.ci_low)[0])  # its x_(r+1), 0-based
        xs = np.sort(data[:, :n], axis=1)
        missed |= (xs[:, r] > 0.5) | (xs[:, n - 1 - r] < 0.5)
        bound = 0.05 * k / (k + 2)
        assert missed.mean() <= bound + 0.003, k  # se ~0.0015
    assert missed.mean() >= 0.6 * 0.05 * len(looks) / (len(looks) + 2)


def _stop_with_rule(units: np.ndarray, looks: tuple[int, ...], rule: StoppingRule):
    """Return the last look of one simulated trial whose schedule is `looks`."""
    for k, n in enumerate(looks):
        look = rule.look(units[:n], looks[:k])
        if look.stop:
            break
    return look


@pytest.mark.parametrize("noise", [0.03, 0.06])
@pytest.mark.parametrize("first", [3, 10])
def test_until_stable_keeps_its_level(noise, first):
    reps, cap = 1000, 600  # --max-time 60 s at --min-time 0.1 s: at most 600 rounds
    rng = np.random.default_rng(int(noise * 1000) + first)
    data = TRUTH * (1.0 + noise * rng.standard_normal((reps, cap)))
    rule, looks = StoppingRule(rel_ci=0.02), look_schedule(first, cap)
    stops = [_stop_with_rule(data[i], looks, rule) for i in range(reps)]
    assert all(s.ci_low is not None for s in stops)
    coverage = np.mean([s.ci_low <= TRUTH <= s.ci_high for s in stops])
    assert coverage >= 0.95 - 0.02  # 0.98-0.99 measured
    assert all(s.confidence == 0.95 and s.level > 0.95 for s in stops)
    rounds = np.mean([s.n for s in stops])  # fixed-n needs ~14 (3%) and ~55 (6%) rounds
    assert rounds <= {0.03: 40, 0.06: 180}[noise]
    assert np.mean([s.stop for s in stops]) >= 0.99  # stops as stable, not at the cap


def test_optional_stopping_on_a_plain_95_ci_undercovers():
    # Before: stop when the plain 95% bootstrap CI of the median is within 2% (no level kept).
    reps, cap = 500, 600
    data = TRUTH * (1.0 + 0.03 * np.random.default_rng(9).standard_normal((reps, cap)))
    looks = look_schedule(3, cap)
    stopped, covered = np.zeros(reps, bool), np.zeros(reps, bool)
    for n in looks:
        low, high = bootstrap_median_ci(data[:, :n])
        median = np.median(data[:, :n], axis=1)
        now = ((high - low) / 2 <= 0.02 * median) & ~stopped
        covered[now] = (low[now] <= TRUTH) & (TRUTH <= high[now])
        stopped |= now
        if stopped.all():
            break
    assert stopped.all()
    assert covered.mean() <= 0.88  # the issue measured 0.76 from 3 rounds


def _runner(durations: np.ndarray, units: np.ndarray, rule: StoppingRule, first: int,
            max_time_s: float):
    """Drive one trial as runner.py does: batches of ceil(done/2), the last one cut to fit."""
    done, batch, looks = 0, first, ()
    while True:
        done += batch
        look = rule.look(units[:done], looks)
        looks = (*looks, done)
        elapsed = float(durations[:done].sum())
        per_round, left = elapsed / done, max_time_s - elapsed
        if look.stop or left < per_round:
            return look
        batch = max(1, min(math.ceil(done / 2), math.floor(left / per_round)))


def test_until_stable_keeps_its_level_when_max_time_cuts_it_short():
    # Each round does fixed work, so its duration is work / throughput: the looks' round
    # counts depend on measured time when --max-time shortens the last batch.
    reps, noise, max_time_s = 1000, 0.06, 8.0  # ~80 rounds of 0.1 s: most stop at max-time
    rng = np.random.default_rng(77)
    data = TRUTH * (1.0 + noise * rng.standard_normal((reps, 400)))
    durations = 0.1 * TRUTH / data
    rule = StoppingRule(rel_ci=0.02)
    stops = [_runner(durations[i], data[i], rule, 10, max_time_s) for i in range(reps)]
    assert np.mean([not s.stop for s in stops]) >= 0.5
    with_ci = [s for s in stops if s.ci_low is not None]
    assert len(with_ci) == reps
    assert np.mean([s.ci_low <= TRUTH <= s.ci_high for s in with_ci]) >= 0.93


# --- USL intervals under multiplicative noise ----------------------------------------------


def test_usl_intervals_cover_on_log_scale():
    ns = np.repeat(np.array([1, 2, 4, 8, 12, 16, 24, 32]), ROUNDS).astype(float)
    truth = 1000.0 * ns / (1.0 + 0.05 * (ns - 1.0) + 0.002 * ns * (ns - 1.0))
    peak = math.sqrt(0.95 / 0.002)
    rng = np.random.default_rng(12)
    kappa_hits = peak_hits = 0
    reps = 300
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(reps):
            fit = fit_usl(ns, truth * np.exp(0.03 * rng.standard_normal(ns.size)))
            kappa_hits += fit.kappa_ci[0] <= 0.002 <= fit.kappa_ci[1]
            peak_hits += fit.peak_n_ci is not None and fit.peak_n_ci[0] <= peak <= fit.peak_n_ci[1]
    assert kappa_hits / reps >= 0.93  # unweighted on X: 0.875-0.895 (issue 10)
    assert peak_hits / reps >= 0.93
