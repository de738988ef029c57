"""CPU workloads: vectorized arithmetic in cache, BLAS GEMM, and core-to-core cache-line latency."""

from __future__ import annotations

import itertools
import os
import re
import statistics
import threading
from collections.abc import Mapping
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from workloads.base import Measurement, Metric, WorkerContext, Workload
from workloads.errors import UserError
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


# --------------------------------------------------------------------------------------------
# cpu.c2c
# --------------------------------------------------------------------------------------------

Pair = tuple[int, int]

MAX_FULL_CPUS = 64
"""Above this many CPUs, ``pairs=auto`` measures a seeded sample of pairs, not all of them."""
SAMPLED_PAIRS = MAX_FULL_CPUS * (MAX_FULL_CPUS - 1) // 2
BATCH_ROUND_TRIPS = 100
"""Round trips per timed batch: two clock reads (~25 ns each) are <= 1% of a batch."""
WARMUP_ROUND_TRIPS = 100
LINE_ALIGN_BYTES = 128  # the flag's line alone in its 128-byte pair (adjacent-line prefetch)

_PAIRS = re.compile(r"^\s*\d+\s*-\s*\d+\s*(,\s*\d+\s*-\s*\d+\s*)*$")


def parse_pairs(text: str, workload: str = "cpu.c2c") -> tuple[Pair, ...] | None:
    """Return the CPU pairs of "0-1,0-2" in order, or None for "auto".

    Raises:
        UserError: not "auto" nor "A-B" items joined by commas, a CPU paired with itself,
            or a pair given twice (in either order).
    """
    if text.strip().lower() == "auto":
        return None
    if not _PAIRS.match(text):
        raise UserError(f"Parameter {workload}.pairs={text!r} is not a list of CPU pairs; give "
                        '"auto" or pairs such as "0-1,0-2".')
    pairs = tuple(tuple(int(x) for x in item.split("-")) for item in text.split(","))
    seen: set[frozenset[int]] = set()
    for a, b in pairs:
        if a == b:
            raise UserError(f"Parameter {workload}.pairs={text!r} pairs CPU {a} with itself; "
                            "give two different CPUs per pair.")
        if frozenset((a, b)) in seen:
            raise UserError(f"Parameter {workload}.pairs={text!r} gives {a}-{b} twice; "
                            "give each pair once.")
        seen.add(frozenset((a, b)))
    return pairs  # type: ignore[return-value]


def auto_pairs(cpus: tuple[int, ...], seed: int = 0) -> tuple[Pair, ...]:
    """Return every unordered pair (a < b) of ``cpus``, or a seeded sample above MAX_FULL_CPUS.

    The sample keeps every pair of the first CPU (each CPU appears at least once) and
    fills up to SAMPLED_PAIRS with pairs drawn uniformly without replacement
    (``numpy.random.default_rng(seed)``); sorted. Empty for fewer than 2 CPUs.
    """
    cpus = tuple(sorted(set(cpus)))
    every = list(itertools.combinations(cpus, 2))
    if len(cpus) <= MAX_FULL_CPUS:
        return tuple(every)
    first = [p for p in every if p[0] == cpus[0]]
    rest = [p for p in every if p[0] != cpus[0]]
    rng = np.random.default_rng(seed)
    picked = rng.choice(len(rest), size=SAMPLED_PAIRS - len(first), replace=False)
    return tuple(sorted(first + [rest[i] for i in picked]))


def pair_label(pair: Pair) -> str:
    """Return the metric suffix of a pair: "3-7" (ping on CPU 3, pong on CPU 7)."""
    return f"{pair[0]}-{pair[1]}"


def parse_pair_label(label: str) -> Pair:
    """Return the pair of a ``one_way_ns@<a>-<b>`` suffix: "3-7" -> (3, 7)."""
    a, _, b = label.partition("-")
    return int(a), int(b)


def _flag_address(buffer: np.ndarray) -> int:
    """Return the first LINE_ALIGN_BYTES-aligned address inside ``buffer``."""
    start = buffer.__array_interface__["data"][0]
    return start + (-start % LINE_ALIGN_BYTES)


def bounce(kernels, flag: np.ndarray, pair: Pair, batches: int) -> np.ndarray:
    """Ping-pong the line of ``flag`` between the CPUs of ``pair``; return ns per batch.

    Two threads, each pinned to its CPU (``os.sched_setaffinity(0, ...)`` pins the calling
    thread), meet at a barrier, then run the nogil kernels ``ping`` (timing ``batches``
    batches of BATCH_ROUND_TRIPS) and ``pong``. A thread that cannot pin breaks the
    barrier, so neither enters its spin loop alone.

    Raises:
        OSError: a CPU of ``pair`` is not available to this process.
    """
    flag[:] = 0
    address = _flag_address(flag)
    out = np.zeros(batches, dtype=np.int64)
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []
    round_trips = WARMUP_ROUND_TRIPS + batches * BATCH_ROUND_TRIPS

    def side(cpu: int, work) -> None:
        try:
            os.sched_setaffinity(0, {cpu})
        except OSError as exc:
            errors.append(exc)
            barrier.abort()
            return
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            return
        work()

    threads = [
        threading.Thread(target=side, args=(pair[0], lambda: kernels.ping(
            address, WARMUP_ROUND_TRIPS, BATCH_ROUND_TRIPS, out)), name="c2c-ping"),
        threading.Thread(target=side, args=(pair[1], lambda: kernels.pong(
            address, round_trips)), name="c2c-pong"),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return out


@register
class CoreToCore(Workload):
    """Core-to-core latency: one cache line bounced between two pinned threads; one-way ns per pair.

    For each pair (a, b) of the worker's CPUs, a thread pinned to a stores 2k+1 into a
    shared 64-byte line (atomic release) and spins until it reads 2k+2 (atomic acquire);
    a thread pinned to b waits for 2k+1 and answers 2k+2. One round trip moves the line
    there and back, so the one-way latency is half a round trip. The kernels are numba
    ``nogil`` loops over atomic load/store intrinsics (a plain spin loop could be hoisted
    by the compiler). Per pair and sample: WARMUP_ROUND_TRIPS untimed round trips, then
    batches of BATCH_ROUND_TRIPS, each timed with CLOCK_MONOTONIC inside the kernel;
    ``one_way_ns@<a>-<b>`` is the median over the sample's batches of batch ns / (2 x
    round trips), ``one_way_ns`` the median over pairs. One op is one timed round trip.
    ``pairs=auto``: every unordered pair of the worker's CPUs, above 64 CPUs a seeded
    sample of 2016 pairs that keeps every pair of the first CPU (``auto_pairs``); or a list
    such as "0-1,0-2" (the first CPU of each pair pings). The worker needs both CPUs of
    every pair (at least 2). ``compile_s``: seconds ``setup`` spent on numba and kernels.
    Source: nviennot/core-to-core-latency (github.com/nviennot/core-to-core-latency), the
    cache-line ping-pong of Anandtech's CPU reviews; C11 acquire/release atomics.
    """

    name = "cpu.c2c"
    summary = "core-to-core latency: a cache line ping-ponged between two pinned CPUs, per pair"
    source = "nviennot core-to-core-latency; Anandtech core-to-core ping-pong; numba atomics"
    op = "one timed round trip of a cache line between the two CPUs of a pair"
    throughput = Metric("round_trips_per_s", "round trips/s", "timed round trips per second, "
                        "all pairs (thread start and warm-up in the time)")
    metrics = (
        Metric("one_way_ns", "ns", "one-way cache-line transfer, median over pairs; per pair as "
               "one_way_ns@<cpuA>-<cpuB> (median over the sample's batches)", better="lower"),
    )
    params = (
        Param("pairs", "auto", 'CPU pairs: "auto" (all pairs of the worker\'s CPUs, sampled '
              'above 64 CPUs) or a list such as "0-1,0-2"'),
        Param("seed", 0, "seed of the pair sample above 64 CPUs", "", minimum=0),
    )

    @classmethod
    def validate(cls, params: Mapping[str, Any]) -> None:
        parse_pairs(params["pairs"], cls.name)

    @classmethod
    def min_cpus(cls, params: Mapping[str, Any]) -> int:
        """Return 2, or the distinct CPUs an explicit ``pairs`` list names."""
        pairs = parse_pairs(params.get("pairs", "auto"), cls.name)
        return max(2, len({c for p in pairs for c in p})) if pairs else 2

    def setup(self, ctx: WorkerContext) -> None:
        from workloads.kernels import compiled

        cpus = tuple(ctx.cpus) or tuple(sorted(os.sched_getaffinity(0)))
        given = parse_pairs(self.params["pairs"], self.name)
        if given is None:
            if len(cpus) < 2:
                raise UserError(f"{self.name} needs a worker with at least 2 CPUs, this one has "
                                f"{list(cpus)}; give --threads-per-worker 2 or more.")
            self.pairs = auto_pairs(cpus, self.params["seed"])
        else:
            outside = sorted({c for p in given for c in p} - set(cpus))
            if outside:
                raise UserError(f"Parameter {self.name}.pairs={self.params['pairs']!r} names CPU "
                                f"{outside[0]}, which this worker does not hold ({list(cpus)}); "
                                "pair only the worker's CPUs or use pairs=auto.")
            self.pairs = given
        self._kernels, self.compile_s = compiled("ping", "pong")
        self._flag = np.zeros(2 * LINE_ALIGN_BYTES // 8, dtype=np.int64)

    def run(self, n: int) -> Measurement:
        batches = max(1, n // BATCH_ROUND_TRIPS)
        metrics: dict[str, float] = {}
        for pair in self.pairs:
            batch_ns = bounce(self._kernels, self._flag, pair, batches)
            metrics[f"one_way_ns@{pair_label(pair)}"] = float(
                np.median(batch_ns)) / (2 * BATCH_ROUND_TRIPS)
        metrics["one_way_ns"] = statistics.median(metrics.values())
        return Measurement(ops=batches * BATCH_ROUND_TRIPS * len(self.pairs), metrics=metrics)

    def teardown(self) -> None:
        del self._flag, self._kernels
