"""CPU-bound workloads: vectorized arithmetic on arrays that fit in cache, and BLAS GEMM."""

from __future__ import annotations

import os

import numpy as np
from threadpoolctl import threadpool_limits

from workloads.base import Measurement, Metric, WorkerContext, Workload
from workloads.params import Param
from workloads.registry import register


@register
class SqrtMod(Workload):
    """Vectorized square roots and modulo over a float64 array (numpy ufuncs, in place).

    One element op is one ``sqrt`` plus one ``fmod`` of one float64. The array is sized to
    stay in L2 so the figure is arithmetic throughput, not memory bandwidth.
    Source: the classic "sqrt loop" CPU microbenchmark, done honestly: element ops/s,
    not "requests".
    """

    name = "cpu.sqrt_mod"
    summary = "numpy sqrt + fmod over a cache-resident float64 array"
    source = "sqrt/mod CPU microbenchmark (vectorized with numpy ufuncs)"
    op = "one sqrt and one fmod of a float64 element"
    throughput = Metric("element_ops_per_s", "element ops/s", "sqrt+fmod pairs per second")
    params = (
        Param("elements", 16_384, "array length (float64 elements, 128 KiB default)", "",
              minimum=1, maximum=1 << 28, split=True),
        Param("modulus", 7.0, "divisor of the fmod", "", minimum=1e-12),
    )

    def setup(self, ctx: WorkerContext) -> None:
        n = self.params["elements"]
        self._base = np.linspace(1.0, 1e6, n)
        self._buf = np.empty_like(self._base)

    def run(self, n: int) -> Measurement:
        base, buf, modulus = self._base, self._buf, self.params["modulus"]
        for _ in range(n):
            np.sqrt(base, out=buf)
            np.fmod(buf, modulus, out=buf)
        return Measurement(ops=n * base.size)

    def teardown(self) -> None:
        del self._base, self._buf


@register
class Matmul(Workload):
    """Float64 matrix product ``c = a @ b`` of n x n matrices through numpy's BLAS; FLOP/s.

    One op is one floating-point operation; one product counts 2*n^3 of them (n^3 multiplies
    and n^3 adds, the conventional GEMM count, as LINPACK/HPL count). The product goes into a
    preallocated ``c`` (``np.matmul(a, b, out=c)``). BLAS threads are limited in ``setup``
    (threadpoolctl) to the worker's ``--threads-per-worker`` (outside a worker: its CPUs, or
    its affinity mask) and restored in ``teardown``.
    Source: BLAS level-3 DGEMM (Dongarra et al., ACM TOMS 1990) via numpy; 2n^3 FLOP count.
    """

    name = "cpu.matmul"
    summary = "float64 GEMM (numpy a @ b into a preallocated out) with BLAS threads = worker CPUs"
    source = "BLAS DGEMM (Dongarra et al. 1990) through numpy.matmul; 2*n^3 FLOPs per product"
    op = "one float64 floating-point operation of an n x n GEMM (2*n^3 per product)"
    throughput = Metric("flop_per_s", "FLOP/s", "floating-point operations per second")
    params = (
        Param("n", 512, "rows = columns of the square matrices", "", minimum=1, maximum=32768),
        Param("seed", 0, "seed of the random matrices", "", minimum=0),
    )

    def setup(self, ctx: WorkerContext) -> None:
        size = self.params["n"]
        rng = np.random.default_rng(self.params["seed"])
        self.a = rng.standard_normal((size, size))
        self.b = rng.standard_normal((size, size))
        self.c = np.empty((size, size))
        self.threads = ctx.threads or len(ctx.cpus) or len(os.sched_getaffinity(0)) or 1
        self._limits = threadpool_limits(limits=self.threads, user_api="blas")

    def run(self, n: int) -> Measurement:
        a, b, c = self.a, self.b, self.c
        for _ in range(n):
            np.matmul(a, b, out=c)
        return Measurement(ops=2 * a.shape[0] ** 3 * n)

    def teardown(self) -> None:
        self._limits.restore_original_limits()
        del self._limits, self.a, self.b, self.c
