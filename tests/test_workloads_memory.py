"""Tests of workloads/memory.py: STREAM results, gathers, allocation, parameters, cleanup."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from workloads import UserError, WorkerContext, get_workload
from workloads.harness import calibrate, time_run
from workloads.memory import (
    SWEEP_LABELS,
    Alloc,
    RandomAccess,
    Stream,
    cache_sizes,
    gather,
    line_permutation,
    stream_expected,
    sweep_sizes,
)

SMALL_CACHES = WorkerContext(cache_sizes_bytes={"L1d": 4096, "L2": 16384, "L3": 65536})


def measure(workload, ctx=None):
    """Set up, calibrate to 10 ms, time one sample, tear down; return the measurement."""
    threads = threading.active_count()
    workload.setup(ctx or WorkerContext())
    try:
        n = calibrate(workload.run, 0.01)
        timed = time_run(workload.run, n)
    finally:
        workload.teardown()
    assert threading.active_count() == threads
    assert timed.elapsed_ns > 0 and timed.measurement.ops > 0
    return timed.measurement


def test_registered():
    assert get_workload("memory.stream") is Stream
    assert get_workload("memory.random_access") is RandomAccess
    assert get_workload("memory.alloc") is Alloc


def test_stream_matches_closed_form_bit_for_bit():
    w = Stream({"size_mib": 1})
    w.setup(SMALL_CACHES)  # 4 KiB L2 floor: many triad blocks, last one short
    assert len(w._triad_blocks) > 1
    for passes in (1, 3, 7):
        m = w.run(passes)
        assert m.ops == passes * 80 * w.a.size  # STREAM's byte count: 16+16+24+24 per element
    a, b, c = stream_expected(11)
    assert w.passes_done == 11
    assert np.all(w.a == a) and np.all(w.b == b) and np.all(w.c == c)
    assert w.check_results() == 0.0
    w.b[5] += 1e-6
    with pytest.raises(RuntimeError, match="STREAM results wrong"):
        w.check_results()
    with pytest.raises(RuntimeError, match="STREAM results wrong"):
        w.teardown()  # a wrong answer fails the trial, and the arrays are still freed
    assert not hasattr(w, "a")


def test_stream_expected_first_pass():
    q = np.sqrt(2.0) - 1.0
    a, b, c = stream_expected(1)
    assert (c, b) == (1.0 + q, q)
    assert a == q + q * (1.0 + q)
    # 2q + q^2 = 1: values stay bounded over many passes.
    assert abs(stream_expected(10_000)[0] - 1.0) < 1e-9


def test_stream_measurement():
    m = measure(Stream({"size_mib": 2}))
    assert set(m.metrics) == {"copy_gbs", "scale_gbs", "add_gbs", "triad_gbs"}
    assert all(v > 0 for v in m.metrics.values())
    assert {x.name for x in Stream.metrics} == set(m.metrics)


@pytest.mark.parametrize("given", [{"size_mib": -1}, {"size_mib": 0}, {"size_mib": "big"}])
def test_stream_bad_params(given):
    with pytest.raises(UserError, match="size_mib"):
        Stream(given)


@pytest.mark.parametrize("text", ["-1MiB", "lots", "0", "32", "2TiB"])
def test_random_access_bad_working_set(text):
    with pytest.raises(UserError, match="working_set"):
        RandomAccess({"working_set": text})


def test_random_access_accepts_auto_and_sizes():
    assert RandomAccess({"working_set": "AUTO"}).params["working_set"] == "AUTO"
    assert RandomAccess({"working_set": "64KiB"}).params["working_set"] == "64KiB"


def test_gather_equals_fancy_indexing():
    rng = np.random.default_rng(1)
    data = rng.standard_normal(1000)
    idx = rng.integers(0, data.size, size=777).astype(np.intp)
    out = np.empty(777)
    gather(data, idx, out)
    assert np.array_equal(out, data[idx])
    chunked = np.empty(100)  # 8 chunks, the last one 77 long
    gather(data, idx, chunked)
    assert np.array_equal(chunked[:77], data[idx[700:]])


def test_line_permutation_visits_every_line():
    idx = line_permutation(64 * 100, np.random.default_rng(0), min_accesses=250)
    assert idx.dtype == np.intp and idx.size == 300
    for rep in range(3):
        assert sorted(idx[rep * 100:(rep + 1) * 100]) == list(range(0, 800, 8))


def test_sweep_sizes_and_fallback():
    assert cache_sizes(WorkerContext()) == {"L1d": 32 << 10, "L2": 1 << 20, "L3": 32 << 20}
    assert cache_sizes(WorkerContext(cache_sizes_bytes={"L3": 96 << 20}))["L3"] == 96 << 20
    sizes = sweep_sizes({"L1d": 32 << 10, "L2": 1 << 20, "L3": 96 << 20})
    assert tuple(sizes) == SWEEP_LABELS
    assert sizes["L1d/4"] == 8 << 10 and sizes["L1d"] == 32 << 10 and sizes["L2"] == 1 << 20
    assert sizes["L3"] == 96 << 20 and sizes["4xL3"] == 384 << 20
    assert sizes["L1d~L2"] == 181 << 10  # sqrt(32 KiB * 1 MiB) rounded down to 64 B
    assert all(s % 64 == 0 for s in sizes.values())


def test_random_access_gathers_the_working_set():
    w = RandomAccess({"working_set": "64KiB"})
    w.setup(WorkerContext())
    (idx,) = w.indices.values()
    assert w.data.nbytes == 64 << 10 and idx.max() < w.data.size
    m = w.run(2)
    assert m.ops == 2 * idx.size
    last = idx[(idx.size - 1) // w.out.size * w.out.size:]
    assert np.array_equal(w.out[:last.size], w.data[last])
    assert set(m.metrics) == {"ns_per_access"}
    w.teardown()


def test_random_access_auto_reports_every_point():
    m = measure(RandomAccess({"working_set": "auto"}), SMALL_CACHES)
    declared = {x.name for x in RandomAccess.metrics}
    assert set(m.metrics) <= declared
    for label in SWEEP_LABELS:
        assert m.metrics[f"ns_per_access@{label}"] > 0
    assert m.metrics["working_set_bytes@4xL3"] == 4 * 65536
    assert m.metrics["working_set_bytes@L1d/4"] == 1024


def test_random_access_fixed_measurement():
    m = measure(RandomAccess({"working_set": "256KiB"}))
    assert set(m.metrics) == {"ns_per_access"} and m.metrics["ns_per_access"] > 0


def test_alloc_measurement():
    m = measure(Alloc({"size_mib": 4}))
    assert m.ops % (4 << 20) == 0
    assert m.metrics["touch_gbs"] > 0
    assert m.metrics["peak_rss_bytes"] >= 4 << 20
    assert m.metrics["minor_faults_per_mib"] >= 0
    peak = next(x for x in Alloc.metrics if x.name == "peak_rss_bytes")
    assert not peak.higher_is_better


def test_alloc_fill_touches_every_byte():
    m = measure(Alloc({"size_mib": 1, "touch": "fill"}))
    assert m.metrics["touch_gbs"] > 0


@pytest.mark.parametrize("given", [{"size_mib": -5}, {"touch": "none"}])
def test_alloc_bad_params(given):
    with pytest.raises(UserError):
        Alloc(given)
