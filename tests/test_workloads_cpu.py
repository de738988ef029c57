"""Tests of workloads/cpu.py: GEMM correctness, BLAS thread limits, parameters, cleanup."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from workloads import UserError, WorkerContext, get_workload
from workloads.cpu import Matmul, SqrtMod
from workloads.harness import calibrate, time_run


def blas_threads():
    """Return the thread counts of the loaded BLAS libraries."""
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


def test_registered():
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
