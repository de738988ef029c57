"""Memory workloads: STREAM bandwidth, random-gather latency sweep, allocation with first touch.

All three work on numpy arrays in place: no full-size temporary is ever allocated inside
``run``, so what is timed is the memory traffic named, not the allocator.
"""

from __future__ import annotations

import math
import mmap
import resource

import numpy as np
import psutil

from workloads.base import Measurement, Metric, WorkerContext, Workload
from workloads.errors import UserError
from workloads.params import Param
from workloads.registry import register
from workloads.units import KIB, MIB, parse_size

CACHE_LINE_BYTES = 64

# Cache sizes assumed when the worker's topology does not report one.
FALLBACK_CACHE_BYTES: dict[str, int] = {"L1d": 32 * KIB, "L2": 1 * MIB, "L3": 32 * MIB}


def cache_sizes(ctx: WorkerContext) -> dict[str, int]:
    """Return the worker's L1d/L2/L3 sizes in bytes, falling back to 32 KiB/1 MiB/32 MiB."""
    given = ctx.cache_sizes_bytes or {}
    return {
        level: int(given[level]) if given.get(level) else fallback
        for level, fallback in FALLBACK_CACHE_BYTES.items()
    }


# --------------------------------------------------------------------------------------------
# memory.stream
# --------------------------------------------------------------------------------------------

# STREAM's byte counting per element and kernel: copy/scale move 2 words, add/triad 3.
STREAM_BYTES_PER_ELEMENT: dict[str, int] = {"copy": 16, "scale": 16, "add": 24, "triad": 24}

# Initial values as in STREAM (a=1, b=2, c=0). The scalar is sqrt(2)-1 rather than STREAM's
# 3.0: one pass multiplies every value by 2q+q^2, which is 15 for q=3 (overflow to inf after
# ~260 passes, well within a calibrated run) and 1 for q=sqrt(2)-1 (values stay bounded).
STREAM_INITIAL = (1.0, 2.0, 0.0)
STREAM_SCALAR = math.sqrt(2.0) - 1.0


def stream_expected(passes: int, scalar: float = STREAM_SCALAR) -> tuple[float, float, float]:
    """Return (a, b, c) after ``passes`` STREAM passes from STREAM_INITIAL, in float64.

    The scalar recurrence of STREAM's ``checkSTREAMresults``; it rounds exactly as the
    array kernels do, so results should match bit for bit.
    """
    a, b, c = STREAM_INITIAL
    for _ in range(passes):
        c = a
        b = scalar * c
        c = a + b
        a = b + scalar * c
    return a, b, c


def _blocks(array: np.ndarray, block: int) -> list[np.ndarray]:
    """Return views of ``array`` in consecutive slices of ``block`` elements (last may be short)."""
    return [array[i:i + block] for i in range(0, array.size, block)]


@register
class Stream(Workload):
    """McCalpin's STREAM (copy, scale, add, triad) on three float64 arrays; GB/s per kernel.

    One pass runs the four kernels once each, in STREAM's order (c=a; b=q*c; c=a+b;
    a=b+q*c). One op is one byte as STREAM counts them (copy and scale 16 bytes per element,
    add and triad 24: 80 per element and pass), so the throughput is the whole pass's
    STREAM bandwidth in B/s, which adds up across workers. Each kernel is also timed with
    ``perf_counter_ns`` inside ``run``: its counted bytes over its total time in the sample,
    in GB/s (1e9 bytes/s), the figures STREAM itself prints.
    Every kernel writes into an existing array (``np.copyto``, ``out=``); triad runs in
    L2-sized blocks so ``q*c`` never needs a full-size temporary. Arrays should each be
    larger than the L3 (STREAM asks for 4x the last-level cache in total). ``teardown``
    checks every element against STREAM's closed-form values and raises on a mismatch.
    Source: J. D. McCalpin, "Memory Bandwidth and Machine Balance in Current High
    Performance Computers", IEEE TCCA Newsletter, 1995; https://www.cs.virginia.edu/stream/
    """

    name = "memory.stream"
    summary = "STREAM copy/scale/add/triad memory bandwidth on numpy float64 arrays"
    source = "McCalpin 1995, STREAM (https://www.cs.virginia.edu/stream/)"
    op = "one byte moved as STREAM counts it, over a pass of copy, scale, add and triad"
    throughput = Metric("stream_bytes_per_s", "B/s", "STREAM-counted bytes of all four kernels per second")
    metrics = (
        Metric("copy_gbs", "GB/s", "copy c=a, 16 bytes per element"),
        Metric("scale_gbs", "GB/s", "scale b=q*c, 16 bytes per element"),
        Metric("add_gbs", "GB/s", "add c=a+b, 24 bytes per element"),
        Metric("triad_gbs", "GB/s", "triad a=b+q*c, 24 bytes per element"),
    )
    params = (
        Param("size_mib", 512, "size of each of the three float64 arrays", "MiB",
              minimum=1, maximum=1 << 20, split=True),
    )

    def setup(self, ctx: WorkerContext) -> None:
        elements = self.params["size_mib"] * MIB // 8
        a0, b0, c0 = STREAM_INITIAL
        self.a = np.full(elements, a0)
        self.b = np.full(elements, b0)
        self.c = np.full(elements, c0)
        self.passes_done = 0
        # Triad block: an eighth of L2 per array (64 KiB..512 KiB). Measured side by side on a
        # 2 MiB-L2 Xeon against a C triad: 128-256 KiB blocks reached 0.79-0.86 of C, a quarter
        # of L2 (512 KiB) 0.67-0.82, 32 KiB 0.71 (call overhead). benchmarks/references.py.
        block_bytes = min(512 * KIB, max(64 * KIB, cache_sizes(ctx)["L2"] // 8))
        block = block_bytes // 8
        self._triad_blocks = list(zip(_blocks(self.a, block), _blocks(self.b, block),
                                      _blocks(self.c, block)))

    def run(self, n: int) -> Measurement:
        from time import perf_counter_ns as now

        a, b, c, q = self.a, self.b, self.c, STREAM_SCALAR
        blocks = self._triad_blocks
        copy_ns = scale_ns = add_ns = triad_ns = 0
        for _ in range(n):
            t0 = now()
            np.copyto(c, a)
            t1 = now()
            np.multiply(c, q, out=b)
            t2 = now()
            np.add(a, b, out=c)
            t3 = now()
            for ab, bb, cb in blocks:
                np.multiply(cb, q, out=ab)
                ab += bb
            t4 = now()
            copy_ns += t1 - t0
            scale_ns += t2 - t1
            add_ns += t3 - t2
            triad_ns += t4 - t3
        self.passes_done += n
        elements = a.size * n
        pass_bytes = sum(STREAM_BYTES_PER_ELEMENT.values()) * elements
        kernel_ns = {"copy": copy_ns, "scale": scale_ns, "add": add_ns, "triad": triad_ns}
        return Measurement(ops=pass_bytes, metrics={
            f"{kernel}_gbs": STREAM_BYTES_PER_ELEMENT[kernel] * elements / max(ns, 1)
            for kernel, ns in kernel_ns.items()
        })

    def check_results(self) -> float:
        """Return the largest relative error of a, b, c against ``stream_expected``.

        Checks block by block (no full-size temporary), as STREAM's ``checkSTREAMresults``.

        Raises:
            RuntimeError: an error above 1e-13 (STREAM's epsilon for float64).
        """
        expected = stream_expected(self.passes_done)
        worst = 0.0
        for blocks in self._triad_blocks:
            for block, value in zip(blocks, expected):
                err = float(np.max(np.abs(block - value)))
                worst = max(worst, err / abs(value) if value else err)
        if worst > 1e-13:
            raise RuntimeError(f"STREAM results wrong after {self.passes_done} passes: "
                               f"relative error {worst:.3g}")
        return worst

    def teardown(self) -> None:
        """Check the arrays against STREAM's expected values, then free them."""
        try:
            self.check_results()
        finally:
            del self._triad_blocks, self.a, self.b, self.c


# --------------------------------------------------------------------------------------------
# memory.random_access
# --------------------------------------------------------------------------------------------

# The auto sweep: stable labels (metric-name suffixes) placed at, below and between the
# cache levels; "A~B" is the geometric mean of A and B. Sizes come from the worker's caches.
SWEEP_LABELS: tuple[str, ...] = (
    "L1d/4", "L1d/2", "L1d", "L1d~L2", "L2/2", "L2", "L2~L3", "L3/2", "L3", "2xL3", "4xL3",
)


def sweep_sizes(caches: dict[str, int]) -> dict[str, int]:
    """Return the working-set bytes of each SWEEP_LABELS point, rounded down to a cache line.

    ``caches`` holds "L1d", "L2" and "L3" in bytes; every size is at least one cache line.
    """
    l1, l2, l3 = caches["L1d"], caches["L2"], caches["L3"]
    raw = (l1 / 4, l1 / 2, l1, math.sqrt(l1 * l2), l2 / 2, l2, math.sqrt(l2 * l3),
           l3 / 2, l3, 2 * l3, 4 * l3)
    return {label: max(CACHE_LINE_BYTES, int(size) // CACHE_LINE_BYTES * CACHE_LINE_BYTES)
            for label, size in zip(SWEEP_LABELS, raw)}


# Fewest gathers per index array (small sets repeat their permutation), and the gather chunk.
MIN_ACCESSES = 1 << 16
GATHER_CHUNK = 1 << 14


def line_permutation(size_bytes: int, rng: np.random.Generator,
                     min_accesses: int = MIN_ACCESSES) -> np.ndarray:
    """Return float64 element indices of the cache lines of a ``size_bytes`` array, shuffled.

    Each line appears once per permutation; permutations are concatenated until there are at
    least ``min_accesses`` indices. dtype intp, so ``np.take`` uses it without a copy.
    """
    lines = max(1, size_bytes // CACHE_LINE_BYTES)
    reps = -(-min_accesses // lines)
    per_line = CACHE_LINE_BYTES // 8
    return np.concatenate([rng.permutation(lines) for _ in range(reps)]).astype(np.intp) * per_line


def gather(data: np.ndarray, idx: np.ndarray, out: np.ndarray) -> None:
    """Gather ``data[idx]`` into ``out`` in chunks of ``out.size``; last chunk left in ``out``.

    ``mode="clip"`` avoids the buffered copy numpy makes for ``mode="raise"`` with ``out``.
    """
    chunk = out.size
    for i in range(0, idx.size, chunk):
        part = idx[i:i + chunk]
        np.take(data, part, out=out[:part.size], mode="clip")


@register
class RandomAccess(Workload):
    """Random gathers over a working set: accesses/s and ns/access (throughput, not latency).

    The working set is a float64 array; each access loads one float64 from a distinct cache
    line chosen by a random permutation of the set's 64-byte lines (``np.take(data, idx,
    out=buf)``). The gathers are independent, so the CPU overlaps their misses: ns/access is
    the inverse throughput of independent random loads, not the latency of a dependent
    pointer chase (which numpy cannot do without a Python loop per access).
    ``working_set=auto`` sweeps sizes at, below and between the worker's L1d, L2 and L3 (from
    its topology; 32 KiB/1 MiB/32 MiB when unknown) up to 4x L3 and reports one
    ``ns_per_access@<point>`` and ``working_set_bytes@<point>`` per point, so the cliff at
    each cache level shows. Memory held: the largest set, plus 1/8 of the sum of the sets as
    indices, plus a 128 KiB output buffer.
    Source: random-access (gather) microbenchmarks after lmbench's lat_mem_rd (McVoy & Staelin,
    USENIX 1996) and the HPCC RandomAccess idea, done as independent gathers.
    """

    name = "memory.random_access"
    summary = "random gathers over a working set (or an L1-to-4xL3 sweep): accesses/s, ns/access"
    source = "lmbench lat_mem_rd (McVoy & Staelin 1996), done as independent numpy gathers"
    op = "one float64 load from a random cache line of the working set (np.take gather)"
    throughput = Metric("accesses_per_s", "accesses/s", "random gathers per second")
    metrics = (
        Metric("ns_per_access", "ns", "mean time per access over the sample",
               better="lower"),
        *(Metric(f"ns_per_access@{label}", "ns", f"mean time per access at the {label} point",
                 better="lower") for label in SWEEP_LABELS),
        *(Metric(f"working_set_bytes@{label}", "bytes", f"working-set size of the {label} point",
                 better=None)
          for label in SWEEP_LABELS),
    )
    params = (
        Param("working_set", "auto", 'working-set size, e.g. "64MiB", "32KiB", "1GiB", or '
              '"auto" to sweep L1d/4 .. 4xL3'),
        Param("seed", 0, "seed of the index permutation", "", minimum=0),
    )

    @classmethod
    def validate(cls, params) -> None:
        text = params["working_set"]
        if text.strip().lower() == "auto":
            return
        try:
            size = parse_size(text)
        except ValueError:
            raise UserError(
                f"Parameter {cls.name}.working_set={text!r} is not a size; give one such as "
                '"64MiB", "32KiB", "1GiB", or "auto".'
            ) from None
        if not CACHE_LINE_BYTES <= size <= 1 << 40:
            raise UserError(
                f"Parameter {cls.name}.working_set={text!r} is out of range; give a size from "
                "64B (one cache line) to 1TiB."
            )

    def setup(self, ctx: WorkerContext) -> None:
        text = self.params["working_set"].strip()
        rng = np.random.default_rng(self.params["seed"])
        if text.lower() == "auto":
            self.sizes = sweep_sizes(cache_sizes(ctx))
        else:
            self.sizes = {"": parse_size(text) // CACHE_LINE_BYTES * CACHE_LINE_BYTES}
        self.data = np.arange(max(self.sizes.values()) // 8, dtype=np.float64)
        self.indices = {label: line_permutation(size, rng) for label, size in self.sizes.items()}
        self.out = np.empty(GATHER_CHUNK)

    def run(self, n: int) -> Measurement:
        from time import perf_counter_ns as now

        data, out = self.data, self.out
        points = [(label, data[:self.sizes[label] // 8], idx)
                  for label, idx in self.indices.items()]
        point_ns = dict.fromkeys(self.indices, 0)
        for _ in range(n):
            for label, view, idx in points:
                t0 = now()
                gather(view, idx, out)
                point_ns[label] += now() - t0
        accesses = n * sum(idx.size for idx in self.indices.values())
        metrics = {"ns_per_access": sum(point_ns.values()) / max(accesses, 1)}
        if "" not in self.sizes:
            for label, idx in self.indices.items():
                metrics[f"ns_per_access@{label}"] = point_ns[label] / (n * idx.size)
                metrics[f"working_set_bytes@{label}"] = float(self.sizes[label])
        return Measurement(ops=accesses, metrics=metrics)

    def teardown(self) -> None:
        del self.data, self.indices, self.out


# --------------------------------------------------------------------------------------------
# memory.alloc
# --------------------------------------------------------------------------------------------


def _minor_faults() -> int:
    """Return this thread's minor page faults so far (the process's where threads are not told)."""
    who = getattr(resource, "RUSAGE_THREAD", resource.RUSAGE_SELF)
    return resource.getrusage(who).ru_minflt


@register
class Alloc(Workload):
    """Allocate a large array and first-touch every page; GB/s of touched memory, peak RSS.

    One op is one byte of fresh memory allocated (``np.empty``) and faulted in. ``touch=page``
    writes one byte per page (the kernel's fault and page zeroing are the cost);
    ``touch=fill`` writes every byte. The array is dropped at the end of each iteration, so
    each one faults anew (numpy asks for transparent huge pages on large arrays, so the fault
    count per MiB says whether 4 KiB or 2 MiB pages were used). Peak RSS is the process's
    resident set (psutil) right after each touch, the maximum over the sample.
    Source: first-touch allocation microbenchmark (page-fault cost, cf. Linux
    ``mm/memory.c`` fault path); RSS from psutil.
    """

    name = "memory.alloc"
    summary = "allocate and first-touch large numpy arrays (page faults included): GB/s, peak RSS"
    source = "first-touch page-fault microbenchmark; RSS via psutil"
    op = "one byte of a fresh array allocated and first-touched"
    throughput = Metric("touched_bytes_per_s", "B/s", "fresh bytes allocated and touched per s")
    metrics = (
        Metric("touch_gbs", "GB/s", "touched bytes per second, 1e9 bytes/s"),
        Metric("peak_rss_bytes", "bytes", "largest process RSS right after a touch", better=None),
        Metric("minor_faults_per_mib", "faults/MiB", "minor page faults per MiB touched "
               "(256 with 4 KiB pages, 0.5 with 2 MiB huge pages)", better=None),
    )
    params = (
        Param("size_mib", 256, "size of the array allocated per iteration", "MiB",
              minimum=1, maximum=1 << 20, split=True),
        Param("touch", "page", "page: one byte per page; fill: every byte", "",
              choices=("page", "fill")),
    )

    def setup(self, ctx: WorkerContext) -> None:
        self._process = psutil.Process()
        self._page = mmap.PAGESIZE

    def run(self, n: int) -> Measurement:
        from time import perf_counter_ns as now

        size = self.params["size_mib"] * MIB
        step = self._page if self.params["touch"] == "page" else 1
        peak_rss = 0
        touch_ns = 0
        faults0 = _minor_faults()
        for _ in range(n):
            t0 = now()
            array = np.empty(size, dtype=np.uint8)
            array[::step] = 1
            touch_ns += now() - t0
            peak_rss = max(peak_rss, self._process.memory_info().rss)
            del array
        faults = _minor_faults() - faults0
        return Measurement(ops=n * size, metrics={
            "touch_gbs": n * size / max(touch_ns, 1),
            "peak_rss_bytes": float(peak_rss),
            "minor_faults_per_mib": faults / (n * size / MIB),
        })

    def teardown(self) -> None:
        del self._process
