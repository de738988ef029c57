"""Tests of workloads/cache.py: the key draw, exact LRU hit rates, parameters, cleanup."""

from __future__ import annotations

import threading
from collections import OrderedDict

import pytest

from workloads import UserError, WorkerContext, get_workload
from workloads.cache import Lru, _compute, draw_keys
from workloads.harness import calibrate, time_run


def lru_hits(sequence, maxsize, cache=None):
    """Return hits of an independent LRU simulation of ``sequence`` (``cache`` carried over)."""
    cache = OrderedDict() if cache is None else cache
    hits = 0
    for key in sequence:
        if key in cache:
            hits += 1
            cache.move_to_end(key)
        elif maxsize:
            cache[key] = True
            if len(cache) > maxsize:
                cache.popitem(last=False)
    return hits


def test_registered():
    assert get_workload("cache.lru") is Lru


def test_draw_keys_reproducible_and_skewed():
    keys = draw_keys(10_000, 10, 0.9, 20_000, seed=3)
    assert keys == draw_keys(10_000, 10, 0.9, 20_000, seed=3)
    assert keys != draw_keys(10_000, 10, 0.9, 20_000, seed=4)
    assert all(0 <= k < 10_000 for k in keys)
    counts = sorted((keys.count(k) for k in set(keys)), reverse=True)
    top10 = sum(counts[:10]) / len(keys)
    assert 0.88 < top10 < 0.93  # 90% hot plus the uniform draws that land on hot keys


def test_draw_keys_edges():
    assert draw_keys(5, 0, 0.9, 100, seed=0) != []  # no hot set: all uniform
    assert set(draw_keys(5, 50, 1.0, 100, seed=0)) <= set(range(5))


def test_miss_does_real_work():
    assert _compute(7) == _compute(7) and _compute(7) != _compute(8) and len(_compute(7)) == 16


def test_hit_rate_only_cold_misses_when_cache_holds_all_keys():
    w = Lru({"maxsize": 1000, "keys": 500, "hot_keys": 20, "hot_share": 0.5,
             "sequence": 3000, "seed": 1})
    w.setup(WorkerContext())
    seq = w.sequence
    first = w.run(1000)
    assert first.ops == 1000
    assert first.metrics["hit_rate"] == 1 - len(set(seq[:1000])) / 1000
    second = w.run(2500)  # wraps around the sequence
    replay = seq[1000:] + seq[:500]
    seen = set(seq[:1000])
    assert second.metrics["hit_rate"] == 1 - len(set(replay) - seen) / 2500
    assert w.lookup.cache_info().misses == len(set(seq))
    w.teardown()
    assert w.__dict__.get("lookup") is None


def test_hit_rate_equals_exact_lru_and_drops_with_small_cache():
    params = {"keys": 2000, "hot_keys": 50, "hot_share": 0.8, "sequence": 5000, "seed": 2}
    rates = {}
    for maxsize in (2000, 100, 10, 0):
        w = Lru({**params, "maxsize": maxsize})
        w.setup(WorkerContext())
        rates[maxsize] = w.run(5000).metrics["hit_rate"]
        assert rates[maxsize] == lru_hits(w.sequence, maxsize) / 5000
        w.teardown()
    assert rates[2000] > rates[100] > rates[10] > rates[0] == 0.0


def test_harness_run():
    threads = threading.active_count()
    w = Lru({"keys": 1000, "hot_keys": 10, "sequence": 5000, "maxsize": 20})
    w.setup(WorkerContext())
    n = calibrate(w.run, 0.01)
    timed = time_run(w.run, n)
    w.teardown()
    assert timed.measurement.ops == n and 0 < timed.measurement.metrics["hit_rate"] < 1
    assert threading.active_count() == threads


@pytest.mark.parametrize("given", [
    {"maxsize": -1}, {"keys": 0}, {"keys": -10}, {"hot_share": 1.5}, {"hot_share": -0.1},
    {"hot_keys": -1}, {"sequence": 0}, {"maxsize": "many"}, {"nope": 1},
])
def test_bad_params(given):
    with pytest.raises(UserError):
        Lru(given)
