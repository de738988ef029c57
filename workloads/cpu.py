"""CPU-bound workloads: vectorized arithmetic on arrays that fit in cache."""

from __future__ import annotations

import numpy as np

from workloads.base import Measurement, Metric, Param, Workload, WorkerContext
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
              minimum=1, maximum=1 << 28),
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
