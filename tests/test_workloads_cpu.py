"""Tests of workloads/cpu.py: GEMM, BLAS thread limits, core-to-core latency, parameters, cleanup."""

from __future__ import annotations

import math
import os
import threading
import time

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from workloads import UserError, WorkerContext, get_workload
from workloads.base import Measurement
from workloads.cpu import (
    BATCH_ROUND_TRIPS,
    SAMPLED_PAIRS,
    CoreToCore,
    Matmul,
    SqrtMod,
    auto_pairs,
    bounce,
    pair_label,
    parse_pair_label,
    parse_pairs,
)
from workloads.harness import calibrate, time_run
from workloads.kernels import compiled

TWO_CPUS = tuple(sorted(os.sched_getaffinity(0)))[:2]
needs_two_cpus = pytest.mark.skipif(len(TWO_CPUS) < 2, reason="needs 2 CPUs in the affinity mask")


def blas_threads():
    """Return the thread counts of the loaded BLAS libraries."""
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


def test_registered():
    assert get_workload("cpu.c2c") is CoreToCore
    assert get_workload("cpu.matmul") is Matmul
    assert get_workload("cpu.sqrt_mod") is SqrtMod


def test_matmul_product_matches_reference():
    w = Matmul({"n": 7, "seed": 5})
    w.setup(WorkerContext())
    m = w.run(3)
    reference = np.einsum("ij,jk->ik", w.a, w.b)  # no BLAS
    looped = [[sum(w.a[i, k] * w.b[k, j] for k in range(7)) for j in range(7)] for i in range(7)]
    np.testing.assert_allclose(w.c, reference, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(w.c, looped, rtol=1e-12, atol=1e-12)
    assert m.ops == 3 * 2 * 7**3
    w.teardown()


def test_matmul_limits_blas_threads_and_restores():
    before = blas_threads()
    if not before:
        pytest.skip("no BLAS library seen by threadpoolctl")
    w = Matmul({"n": 8})
    w.setup(WorkerContext(cpus=(0,)))
    assert w.threads == 1 and blas_threads() == [1] * len(before)
    w.teardown()
    assert blas_threads() == before
    w.setup(WorkerContext())  # unpinned: the affinity mask
    assert w.threads == len(os.sched_getaffinity(0))
    w.teardown()
    assert blas_threads() == before
    # In a worker, --threads-per-worker wins even when it sees more CPUs (placement none).
    w.setup(WorkerContext(cpus=tuple(range(8)), threads=1))
    assert w.threads == 1 and blas_threads() == [1] * len(before)
    w.teardown()
    assert blas_threads() == before


def test_matmul_harness_run():
    threads = threading.active_count()
    w = Matmul({"n": 32})
    w.setup(WorkerContext(cpus=(0,)))
    n = calibrate(w.run, 0.01)
    timed = time_run(w.run, n)
    w.teardown()
    assert timed.measurement.ops == n * 2 * 32**3
    assert threading.active_count() == threads


@pytest.mark.parametrize("given", [{"n": 0}, {"n": -3}, {"n": "x"}, {"seed": -1}])
def test_matmul_bad_params(given):
    with pytest.raises(UserError):
        Matmul(given)


def test_sqrt_mod_harness_run():
    w = SqrtMod({"elements": 64})
    w.setup(WorkerContext())
    timed = time_run(w.run, calibrate(w.run, 0.01))
    w.teardown()
    assert timed.measurement.ops == timed.iterations * 64


# ------------------------------------------------------------------------------------------
# cpu.c2c
# ------------------------------------------------------------------------------------------


def test_parse_pairs():
    assert parse_pairs("auto") is None and parse_pairs(" AUTO ") is None
    assert parse_pairs("0-1,0-2") == ((0, 1), (0, 2))
    assert parse_pairs(" 3 - 7 , 7-4") == ((3, 7), (7, 4))
    assert parse_pair_label(pair_label((3, 7))) == (3, 7)


@pytest.mark.parametrize("text", ["0", "0-", "a-b", "0-1,", "0-1;2-3", "-1-2", "1-1", "0-1,1-0"])
def test_c2c_bad_pairs(text):
    with pytest.raises(UserError, match="pairs"):
        CoreToCore({"pairs": text})


def test_auto_pairs_all_then_sampled():
    assert auto_pairs((3, 1, 2, 0)) == ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))
    assert auto_pairs((5,)) == ()
    cpus = tuple(range(100))
    sample = auto_pairs(cpus, seed=1)
    assert len(sample) == len(set(sample)) == SAMPLED_PAIRS
    assert all(a < b < 100 for a, b in sample)
    assert {b for a, b in sample if a == 0} == set(range(1, 100))  # every CPU appears
    assert sample == auto_pairs(cpus, seed=1) != auto_pairs(cpus, seed=2)


def test_c2c_min_cpus():
    assert CoreToCore.min_cpus({"pairs": "auto"}) == 2
    assert CoreToCore.min_cpus({"pairs": "0-1,2-3,0-3"}) == 4


def test_c2c_refuses_a_one_cpu_worker_and_foreign_cpus():
    with pytest.raises(UserError, match="at least 2 CPUs"):
        CoreToCore({}).setup(WorkerContext(cpus=(0,)))
    with pytest.raises(UserError, match="does not hold"):
        CoreToCore({"pairs": "0-5"}).setup(WorkerContext(cpus=(0, 1)))


@needs_two_cpus
def test_c2c_one_finite_value_per_pair():
    threads = threading.active_count()
    a, b = TWO_CPUS
    w = CoreToCore({})
    w.setup(WorkerContext(cpus=TWO_CPUS))
    assert w.pairs == ((a, b),)
    m = w.run(1000)
    w.teardown()
    assert m.ops == 1000
    assert set(m.metrics) == {f"one_way_ns@{a}-{b}", "one_way_ns"}
    value = m.metrics[f"one_way_ns@{a}-{b}"]
    assert math.isfinite(value) and value > 0 and m.metrics["one_way_ns"] == value
    assert w.compile_s > 0
    assert threading.active_count() == threads


@needs_two_cpus
def test_bounce_times_inside_the_wall_time():
    kernels, _ = compiled("ping", "pong")
    flag = np.zeros(32, dtype=np.int64)
    t0 = time.perf_counter_ns()
    batch_ns = bounce(kernels, flag, TWO_CPUS, 20)
    wall = time.perf_counter_ns() - t0
    assert batch_ns.size == 20 and np.all(batch_ns > 0)
    assert batch_ns.sum() < wall
    assert (flag != 0).sum() == 1  # one word of the line bounced
    assert flag.max() == 2 * (100 + 20 * BATCH_ROUND_TRIPS)  # warm-up + timed round trips


@needs_two_cpus
def test_bounce_fails_cleanly_on_a_missing_cpu():
    kernels, _ = compiled("ping", "pong")
    threads = threading.active_count()
    missing = max(os.sched_getaffinity(0)) + 1
    with pytest.raises(OSError):
        bounce(kernels, np.zeros(32, dtype=np.int64), (TWO_CPUS[0], missing), 1)
    assert threading.active_count() == threads  # neither side was left spinning


def test_a_measurements_summary_runs_after_the_clock_stops():
    """Histograms are built in ``finish``: the sample's elapsed time never includes them."""
    ticks = iter(range(0, 10**9, 1000))

    def clock() -> int:
        return next(ticks)

    def run(n: int) -> Measurement:
        clock()  # the work: one tick
        return Measurement(ops=n, finish=lambda: (clock(), clock(), Measurement(ops=n, metrics={"x": 1.0}))[-1])

    timed = time_run(run, 7, clock=clock, wall=lambda: 0)
    assert timed.elapsed_ns == 2000  # start, the work's tick, stop; the finish's two ticks are after
    assert timed.measurement.metrics == {"x": 1.0} and timed.measurement.finish is None
