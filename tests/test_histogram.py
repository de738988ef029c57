"""Tests of workloads/histogram.py against the hdrhistogram library itself and numpy.

Record cost on the shared 2-core box (median of 5 runs of 10^6 values across the whole range):
``record`` (numpy indexes + one bincount) 37-77 ns/value; hdrh's ``record_value`` loop 2.6-3.6
us/value, i.e. 40-70x slower. Reproduce: ``python tests/test_histogram.py``.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hdrh.histogram import HdrHistogram

from workloads.histogram import (
    HIGHEST_NS,
    LOWEST_NS,
    SIGNIFICANT_DIGITS,
    LatencyHistogram,
    bucket_matrix,
    coordinated_omission_seen,
    generator_bound,
    latency_summary,
    min_count,
    percentile_from_buckets,
)

EDGES = np.array([0, 1, 2, 1023, 1024, 2047, 2048, 2049, 4095, 4096, 10**6, 10**9,
                  HIGHEST_NS - 1, HIGHEST_NS], dtype=np.int64)


def whole_range(n: int, seed: int = 0) -> np.ndarray:
    """Return ``n`` values log-uniform over 1 ns .. 1 h, plus 0 and the edges of buckets."""
    rng = np.random.default_rng(seed)
    v = np.exp(rng.uniform(0, np.log(HIGHEST_NS), n)).astype(np.int64)
    return np.concatenate([v, EDGES])


def per_value(values) -> HdrHistogram:
    h = HdrHistogram(LOWEST_NS, HIGHEST_NS, SIGNIFICANT_DIGITS)
    for v in values.tolist():
        assert h.record_value(v)
    return h


def test_vectorized_record_equals_record_value_exactly():
    values = whole_range(20_000)
    ours = LatencyHistogram.of(values)
    ref = per_value(values)
    assert np.array_equal(np.ctypeslib.as_array(ref.counts), ours._counts)
    assert ours.count == ref.get_total_count() == values.size
    assert ours.min_ns == ref.get_min_value() == 0
    assert ours.max_ns == ref.get_max_value()
    assert ours.mean_ns == pytest.approx(ref.get_mean_value(), rel=1e-12)
    for q in (0.1, 50, 90, 99, 99.9, 100):
        assert ours.percentile_ns(q) == ref.get_value_at_percentile(q)


def test_small_arrays_take_the_add_at_path_identically():
    values = whole_range(30, seed=3)
    h = LatencyHistogram()
    for part in np.array_split(values, 7):
        h.record(part)
    assert h == LatencyHistogram.of(values)
    assert np.array_equal(np.ctypeslib.as_array(per_value(values).counts), h._counts)


@pytest.mark.parametrize("bad", [[-1], [HIGHEST_NS + 2**32], [5, 2 * HIGHEST_NS], [np.nan]])
def test_values_outside_the_range_raise(bad):
    h = LatencyHistogram()
    with pytest.raises(ValueError, match="range|finite"):
        h.record(np.array(bad))
    assert h.count == 0


def test_percentiles_match_numpy_within_three_digits():
    rng = np.random.default_rng(1)
    values = (rng.lognormal(np.log(50_000), 1.0, 100_000)).astype(np.int64)
    h = LatencyHistogram.of(values)
    s = np.sort(values)
    for q in (50, 90, 99, 99.9):
        rank = max(int(q * s.size / 100 + 0.5), 1)  # HdrHistogram's nearest rank
        assert h.percentile_ns(q) == pytest.approx(s[rank - 1], rel=1e-3)
        assert h.percentile_ns(q) == pytest.approx(np.percentile(values, q), rel=1e-3)
    assert h.mean_ns == pytest.approx(values.mean(), rel=1e-3)
    assert h.max_ns == pytest.approx(values.max(), rel=1e-3) and h.max_ns >= values.max()
    assert h.min_ns <= values.min() and h.min_ns == pytest.approx(values.min(), rel=1e-3)


def test_count_guards():
    assert [min_count(q) for q in (50, 90, 99, 99.9, 99.99, 100)] == [2, 10, 100, 1000, 10_000, 1]
    ten = LatencyHistogram.of(np.arange(1, 11) * 100)  # below 2048 ns every ns is a bucket
    assert ten.percentile_ns(99) is None and ten.percentile_ns(99.9) is None
    assert ten.percentile_ns(90) == 900 and ten.percentile_ns(50) == 500
    assert LatencyHistogram.of(np.arange(100) + 1).percentile_ns(99) == 99
    assert LatencyHistogram.of(np.arange(999) + 1).percentile_ns(99.9) is None
    one = LatencyHistogram.of([7])
    assert one.percentile_ns(50) is None and one.percentile_ns(100) == 7
    empty = LatencyHistogram()
    assert empty.count == 0 and empty.min_ns is None and empty.max_ns is None
    assert empty.mean_ns is None and empty.percentile_ns(50) is None
    with pytest.raises(ValueError):
        min_count(0)


def test_merge_equals_recording_the_union():
    a, b, c = whole_range(3000, 1), whole_range(5000, 2), np.array([123_456], np.int64)
    merged = LatencyHistogram.of(a)
    merged.merge(LatencyHistogram.of(b))
    merged.merge(LatencyHistogram())  # an empty side changes nothing
    merged.merge(LatencyHistogram.of(c))
    union = LatencyHistogram.of(np.concatenate([a, b, c]))
    assert merged == union
    assert LatencyHistogram.merged(LatencyHistogram.of(x) for x in (a, b, c)) == union
    # min of a merge into an empty histogram is the other side's (hdrh alone would say 0)
    into_empty = LatencyHistogram()
    into_empty.merge(LatencyHistogram.of([5000, 9000]))
    assert into_empty.min_ns == 5000
    assert LatencyHistogram.merged([]).count == 0


def test_encode_decode_round_trip():
    h = LatencyHistogram.of(whole_range(10_000, 4))
    data = h.encode()
    assert isinstance(data, bytes) and len(data) < 60_000
    back = LatencyHistogram.decode(data)
    assert back == h and back.percentile_ns(99.9) == h.percentile_ns(99.9)
    assert back.mean_ns == h.mean_ns
    assert pickle.loads(pickle.dumps(h)) == h
    assert LatencyHistogram.decode(LatencyHistogram().encode()).count == 0
    other = HdrHistogram(1, 10**6, 2)
    other.record_value(5)
    with pytest.raises(ValueError, match="range"):
        LatencyHistogram.decode(__import__("base64").b64decode(other.encode()))


def test_buckets_round_trip_and_reproduce_percentiles():
    h = LatencyHistogram.of(whole_range(5000, 5))
    values, counts = h.buckets()
    assert np.all(np.diff(values) > 0) and counts.sum() == h.count and np.all(counts > 0)
    assert LatencyHistogram.from_buckets(values, counts) == h
    for q in (50, 90, 99, 99.9):
        assert percentile_from_buckets(values, counts, q) == h.percentile_ns(q)
    assert percentile_from_buckets(values, counts * 0, 50) is None


def test_bucket_matrix_rows_sum_to_the_merge():
    hs = [LatencyHistogram.of(whole_range(500, s)) for s in range(4)]
    values, matrix = bucket_matrix(hs)
    assert matrix.shape == (4, values.size)
    for h, row in zip(hs, matrix):
        assert LatencyHistogram.from_buckets(values, row) == h
    total = LatencyHistogram.merged(hs)
    assert percentile_from_buckets(values, matrix.sum(axis=0), 99) == total.percentile_ns(99)


def reference_corrected(values, interval) -> HdrHistogram:
    """HdrHistogram Java's recordValueWithExpectedInterval, one value at a time."""
    h = HdrHistogram(LOWEST_NS, HIGHEST_NS, SIGNIFICANT_DIGITS)
    for v in values:
        h.record_value(v)
        missing = v - interval
        while interval > 0 and missing >= interval:
            h.record_value(missing)
            missing -= interval
    return h


def test_record_corrected_matches_hdrhistogram_java_semantics():
    rng = np.random.default_rng(6)
    values = np.concatenate([rng.integers(1, 100_000, 2000), [10_000, 20_000, 25_000, 9_999,
                                                             5_000_000]])
    h = LatencyHistogram()
    h.record_corrected(values, 10_000)
    ref = reference_corrected(values.tolist(), 10_000)
    assert np.array_equal(np.ctypeslib.as_array(ref.counts), h._counts)
    assert h.count == ref.get_total_count()
    plain = LatencyHistogram()
    plain.record_corrected(values, 0)
    assert plain == LatencyHistogram.of(values)


def test_record_corrected_chunks_a_very_long_stall(monkeypatch):
    import workloads.histogram as mod

    monkeypatch.setattr(mod, "_CHUNK", 64)
    values = np.array([1000, 50_000, 3_000, 700_000, 2_000], np.int64)
    h = LatencyHistogram()
    h.record_corrected(values, 1000)
    assert np.array_equal(np.ctypeslib.as_array(reference_corrected(values.tolist(), 1000).counts),
                          h._counts)


def test_coordinated_omission_seen():
    rng = np.random.default_rng(8)
    steady = rng.integers(40_000, 60_000, 10_000)
    raw = LatencyHistogram.of(steady)
    fixed = LatencyHistogram()
    fixed.record_corrected(steady, 50_000)
    assert not coordinated_omission_seen(raw, fixed)
    stalled = np.concatenate([steady, [20_000_000] * 8])  # 8 connections held 20 ms once
    raw = LatencyHistogram.of(stalled)
    fixed = LatencyHistogram()
    fixed.record_corrected(stalled, 50_000)
    assert raw.percentile_ns(99) < 100_000 and fixed.percentile_ns(99) > 10_000_000
    assert coordinated_omission_seen(raw, fixed)
    assert not coordinated_omission_seen(LatencyHistogram.of([5]), LatencyHistogram.of([5]))


def test_latency_summary_names_and_units():
    from workloads.base import Metric, latency_metrics

    h = LatencyHistogram.of(np.arange(1, 1001) * 1000)  # 1 us .. 1 ms
    got = latency_summary(h, "ms")
    names = [m.name for m in latency_metrics(Metric("latency", "ms"))]
    assert [f"latency_{k}_ms" for k in got] == names
    assert got["p50"] == pytest.approx(0.5, rel=1e-3) and got["p999"] == pytest.approx(0.999, rel=1e-3)
    assert got["max"] == pytest.approx(1.0, rel=1e-3) and got["mean"] == pytest.approx(0.5005, rel=1e-3)
    few = latency_summary(LatencyHistogram.of([2000] * 10), "us")
    assert few["p50"] == 2.0 and few["p90"] == 2.0 and few["p99"] is None and few["p999"] is None
    assert set(latency_summary(LatencyHistogram(), "s").values()) == {None}


def test_generator_bound():
    latency = LatencyHistogram.of(np.full(1000, 1_000_000))  # 1 ms
    assert not generator_bound(LatencyHistogram.of(np.full(1000, 5_000)), latency)
    late = LatencyHistogram.of(np.r_[np.full(980, 5_000), np.full(20, 300_000)])
    assert generator_bound(late, latency)  # p99 0.3 ms > 10% of 1 ms
    assert not generator_bound(LatencyHistogram.of([300_000] * 50), latency)  # no p99 yet


if __name__ == "__main__":  # record cost per value, vectorized vs hdrh's record_value loop
    import statistics
    import time

    values = whole_range(1_000_000)
    vec = []
    for _ in range(5):
        t = time.perf_counter()
        LatencyHistogram.of(values)
        vec.append((time.perf_counter() - t) / values.size * 1e9)
    few = values[:100_000]
    t = time.perf_counter()
    per_value(few)
    loop = (time.perf_counter() - t) / few.size * 1e9
    print(f"record: {statistics.median(vec):.1f} ns/value vectorized, "
          f"{loop:.0f} ns/value record_value loop ({loop / statistics.median(vec):.0f}x)")
