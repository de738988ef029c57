"""Memory workloads: STREAM bandwidth, load-to-use latency, random-gather throughput, allocation.

``memory.stream`` and ``memory.latency`` run numba kernels (compiled in ``setup``, see
``workloads.kernels``); ``memory.random_access`` and ``memory.alloc`` run numpy. Nothing
inside ``run`` allocates a full-size temporary, so what is timed is the memory traffic named.
"""

from __future__ import annotations

import math
import mmap
import resource
from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

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


STREAM_KERNELS: tuple[str, ...] = ("copy", "scale", "add", "triad")

# STREAM's rule for each array: at least 4x the last-level cache in use, and 1M elements.
STREAM_CACHE_FACTOR = 4
STREAM_MIN_ELEMENTS = 1_000_000


def stream_min_array_bytes(ctx: WorkerContext) -> int:
    """Return STREAM's smallest valid array, in bytes: 4x the L3 in use, at least 1M float64s.

    The L3 in use is ``cache_sizes_bytes["L3_total"]`` (all L3 caches of the worker's CPUs)
    where given, else the L3 of its first CPU (32 MiB when unknown).
    """
    l3 = (ctx.cache_sizes_bytes or {}).get("L3_total") or cache_sizes(ctx)["L3"]
    return max(STREAM_CACHE_FACTOR * int(l3), STREAM_MIN_ELEMENTS * 8)


@register
class Stream(Workload):
    """McCalpin's STREAM (copy, scale, add, triad) on three float64 arrays; GB/s per kernel.

    One pass runs the four kernels once each, in STREAM's order (c=a; b=q*c; c=a+b;
    a=b+q*c), each one fused numba loop writing its array in place (no blocks, no
    temporaries). One op is one byte as STREAM counts them (copy and scale 16 bytes per
    element, add and triad 24: 80 per element and pass), so the throughput is the whole
    pass's STREAM bandwidth in B/s, which adds up across workers. Each kernel is timed with
    ``perf_counter_ns`` around its call: ``<kernel>_gbs`` is its bytes over its total time
    in the sample (the mean rate), ``<kernel>_best_gbs`` its bytes over its fastest pass
    (STREAM's own "Best Rate" figure), in GB/s (1e9 bytes/s). ``variant`` names how the
    loops are coded: ``nt`` (default) a 32-byte vector loop with non-temporal stores (as
    Intel's compilers emit with -qopt-streaming-stores), which write the destination
    without reading it first, so use ``vector`` (the same loop, cached stores) for
    cache-resident arrays; ``loop`` is numba's own compilation of the Python loop, for
    comparison (``workloads/kernels_numba.py`` says what each compiles to, and why).
    With ``--threads-per-worker T > 1`` the loops run on T numba threads (``prange``,
    ``numba.set_num_threads``) inside the worker's CPU set, and the arrays are first
    touched by the same static split. STREAM's size rule holds per array: each at least 4x
    the L3 capacity in use and at least 1M elements; smaller arrays (strong scaling splits
    ``size_mib``) raise the ``cache_resident`` flag. ``teardown`` checks every element
    against STREAM's closed-form values and raises on a mismatch. ``compile_s``: seconds
    ``setup`` spent importing numba and compiling or loading the kernels.
    Source: J. D. McCalpin, "Memory Bandwidth and Machine Balance in Current High
    Performance Computers", IEEE TCCA Newsletter, 1995; https://www.cs.virginia.edu/stream/
    """

    name = "memory.stream"
    summary = "STREAM copy/scale/add/triad memory bandwidth, fused numba loops on float64 arrays"
    source = "McCalpin 1995, STREAM (https://www.cs.virginia.edu/stream/)"
    op = "one byte moved as STREAM counts it, over a pass of copy, scale, add and triad"
    throughput = Metric("stream_bytes_per_s", "B/s", "STREAM-counted bytes of all four kernels per second")
    metrics = (
        *(Metric(f"{kernel}_gbs", "GB/s", f"{what}, {STREAM_BYTES_PER_ELEMENT[kernel]} bytes per "
                 "element: mean rate over the sample's passes")
          for kernel, what in zip(STREAM_KERNELS, ("copy c=a", "scale b=q*c", "add c=a+b",
                                                   "triad a=b+q*c"))),
        *(Metric(f"{kernel}_best_gbs", "GB/s", f"{kernel}: STREAM's best rate, bytes over the "
                 "fastest pass of the sample") for kernel in STREAM_KERNELS),
    )
    params = (
        Param("size_mib", 512, "size of each of the three float64 arrays (STREAM: each at "
              "least 4x the L3 in use)", "MiB", minimum=1, maximum=1 << 20, split=True),
        Param("variant", "nt", "loop coding: nt (vector loop, non-temporal stores), vector "
              "(vector loop, cached stores), loop (numba's own compilation of the Python loop)",
              choices=("nt", "vector", "loop")),
    )
    sample_flags = MappingProxyType({
        "cache_resident": "each STREAM array is smaller than 4x the L3 in use (or 1M "
                          "elements), so the figures are cache bandwidth, not memory bandwidth "
                          "(variant nt still stores to memory: take vector for cache bandwidth)",
    })

    def setup(self, ctx: WorkerContext) -> None:
        from workloads.kernels import STREAM_VARIANTS, compiled, set_threads

        self.threads = ctx.threads if ctx.threads > 0 else 1
        self.variant = STREAM_VARIANTS.index(self.params["variant"])
        suffix = "_par" if self.threads > 1 else ""
        names = [f"stream_{kernel}{suffix}" for kernel in STREAM_KERNELS]
        kernels, self.compile_s = compiled(*names, f"fill{suffix}", "max_relative_error")
        self._previous_threads = set_threads(self.threads) if suffix else None
        self._extra = (self.variant, self.threads) if suffix else (self.variant,)  # kernels' last
        self._kernels = tuple(getattr(kernels, name) for name in names)
        self._max_error = kernels.max_relative_error
        elements = self.params["size_mib"] * MIB // 8
        self.a, self.b, self.c = (np.empty(elements) for _ in range(3))
        for array, value in zip((self.a, self.b, self.c), STREAM_INITIAL):
            if suffix:  # first touch split as the loops split, so each thread's pages are near it
                kernels.fill_par(array, value, self.variant, self.threads)
            else:
                kernels.fill(array, value)
        self.passes_done = 0
        small = elements * 8 < stream_min_array_bytes(ctx)
        self._flags = frozenset({"cache_resident"}) if small else frozenset()

    def run(self, n: int) -> Measurement:
        from time import perf_counter_ns as now

        if self._previous_threads is not None:
            from workloads.kernels import set_threads

            set_threads(self.threads)  # numba's count is per calling thread
        a, b, c, q = self.a, self.b, self.c, STREAM_SCALAR
        copy, scale, add, triad = self._kernels
        extra = self._extra
        total = [0, 0, 0, 0]
        best = [1 << 62] * 4
        for _ in range(n):
            t0 = now()
            copy(a, c, *extra)
            t1 = now()
            scale(b, c, q, *extra)
            t2 = now()
            add(a, b, c, *extra)
            t3 = now()
            triad(a, b, c, q, *extra)
            t4 = now()
            for k, ns in enumerate((t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                total[k] += ns
                best[k] = min(best[k], ns)
        self.passes_done += n
        metrics = {}
        for k, kernel in enumerate(STREAM_KERNELS):
            pass_bytes = STREAM_BYTES_PER_ELEMENT[kernel] * a.size
            metrics[f"{kernel}_gbs"] = pass_bytes * n / max(total[k], 1)
            metrics[f"{kernel}_best_gbs"] = pass_bytes / max(best[k], 1)
        ops = sum(STREAM_BYTES_PER_ELEMENT.values()) * a.size * n
        return Measurement(ops=ops, metrics=metrics, flags=self._flags)

    def check_results(self) -> float:
        """Return the largest relative error of a, b, c against ``stream_expected``.

        Checks every element in one compiled pass per array (no temporary), as STREAM's
        ``checkSTREAMresults``; NaN counts as an infinite error.

        Raises:
            RuntimeError: an error above 1e-13 (STREAM's epsilon for float64).
        """
        expected = stream_expected(self.passes_done)
        worst = max(self._max_error(array, value)
                    for array, value in zip((self.a, self.b, self.c), expected))
        if worst > 1e-13:
            raise RuntimeError(f"STREAM results wrong after {self.passes_done} passes: "
                               f"relative error {worst:.3g}")
        return worst

    def teardown(self) -> None:
        """Check the arrays against STREAM's expected values, then free them."""
        try:
            self.check_results()
        finally:
            del self.a, self.b, self.c, self._kernels
            if self._previous_threads is not None:
                from workloads.kernels import set_threads

                set_threads(self._previous_threads)


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
    the inverse throughput of independent random loads, the counterpart of
    ``memory.latency``, whose dependent pointer chase gives the load-to-use latency.
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
        check_working_set(cls.name, params["working_set"])

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
# memory.latency
# --------------------------------------------------------------------------------------------

# The auto sweep of memory.latency: dense around each cache level (1/2, 3/4, 1, 3/2, 2 of
# it), geometric means between levels, and 4x/8x L3 (mostly DRAM). Labels are metric suffixes.
LATENCY_POINTS: tuple[tuple[str, str, float], ...] = (
    ("L1d/4", "L1d", 0.25), ("L1d/2", "L1d", 0.5), ("0.75xL1d", "L1d", 0.75), ("L1d", "L1d", 1),
    ("1.5xL1d", "L1d", 1.5), ("2xL1d", "L1d", 2), ("L1d~L2", "L1d~L2", 1),
    ("L2/2", "L2", 0.5), ("0.75xL2", "L2", 0.75), ("L2", "L2", 1), ("1.5xL2", "L2", 1.5),
    ("2xL2", "L2", 2), ("L2~L3", "L2~L3", 1),
    ("L3/2", "L3", 0.5), ("0.75xL3", "L3", 0.75), ("L3", "L3", 1), ("1.5xL3", "L3", 1.5),
    ("2xL3", "L3", 2), ("4xL3", "L3", 4), ("8xL3", "L3", 8),
)
LATENCY_LABELS: tuple[str, ...] = tuple(label for label, _, _ in LATENCY_POINTS)

HUGE_PAGE_BYTES = 2 * MIB
WORDS_PER_LINE = CACHE_LINE_BYTES // 8
PAGE_ADVICE = {"default": None, "thp": "MADV_HUGEPAGE", "base": "MADV_NOHUGEPAGE"}


def latency_sweep_sizes(caches: dict[str, int]) -> dict[str, int]:
    """Return the working-set bytes of each LATENCY_LABELS point, whole cache lines, at least one.

    ``caches`` holds "L1d", "L2" and "L3" in bytes; "A~B" is the geometric mean of A and B.
    """
    base = dict(caches)
    base["L1d~L2"] = math.sqrt(caches["L1d"] * caches["L2"])
    base["L2~L3"] = math.sqrt(caches["L2"] * caches["L3"])
    return {label: max(CACHE_LINE_BYTES, int(base[level] * factor) // CACHE_LINE_BYTES
                       * CACHE_LINE_BYTES) for label, level, factor in LATENCY_POINTS}


def chase_cycle(lines: int, rng: np.random.Generator,
                swaps: Callable[[np.ndarray, np.ndarray], None] | None = None) -> np.ndarray:
    """Return ``next`` (int64): line k's successor, one cycle through all ``lines`` lines.

    Sattolo's algorithm (Sattolo 1986; Knuth TAOCP vol. 2, 3.4.2): for i = n-1 .. 1 swap
    item i with a uniform j < i; every n-cycle is equally likely. The picks come from
    ``rng`` (reproducible); ``swaps`` is the compiled ``sattolo_swaps`` kernel (pure
    Python when None, for small n).
    """
    items = np.arange(lines, dtype=np.int64)
    picks = rng.integers(0, np.arange(lines - 1, 0, -1), dtype=np.int64) if lines > 1 else \
        np.empty(0, dtype=np.int64)
    if swaps is not None:
        swaps(items, picks)
    else:
        for k, j in enumerate(picks.tolist()):
            i = lines - 1 - k
            items[i], items[j] = items[j], items[i]
    return items


@dataclass(frozen=True, slots=True)
class ChasePoint:
    """One working set of the chase: its label, bytes, buffer and word slot in each line."""

    label: str
    size_bytes: int
    buffer: int
    slot: int

    @property
    def lines(self) -> int:
        """Return the cache lines of the working set."""
        return self.size_bytes // CACHE_LINE_BYTES


def plan_points(sizes: dict[str, int]) -> tuple[ChasePoint, ...]:
    """Return the points in ``sizes``' order, placed WORDS_PER_LINE to a buffer, largest first.

    A line's 8 words hold the pointers of up to 8 points, each chasing its own prefix of
    the buffer, so the sweep holds its largest set plus a little, not the sum of its sets.
    """
    order = sorted(sizes, key=lambda label: -sizes[label])
    place = {label: divmod(rank, WORDS_PER_LINE) for rank, label in enumerate(order)}
    return tuple(ChasePoint(label, size, *place[label]) for label, size in sizes.items())


def _address(array: np.ndarray) -> int:
    """Return the address of ``array``'s first byte."""
    return array.__array_interface__["data"][0]


def huge_page_bytes(address: int) -> int | None:
    """Return AnonHugePages of the mapping that holds ``address``, in bytes; None when unknown."""
    try:
        with open("/proc/self/smaps") as f:
            inside = False
            for line in f:
                head = line.split(None, 1)[0] if line.strip() else ""
                if "-" in head and not head.endswith(":"):
                    lo, _, hi = head.partition("-")
                    inside = int(lo, 16) <= address < int(hi, 16)
                elif inside and head == "AnonHugePages:":
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


def map_buffer(size_bytes: int, pages: str) -> tuple[mmap.mmap, np.ndarray]:
    """Return an anonymous mapping and an int64 view of ``size_bytes`` on a 2 MiB boundary.

    ``pages``: "default" (the kernel's THP policy), "thp" (``MADV_HUGEPAGE``), "base"
    (``MADV_NOHUGEPAGE``); the advice is given before the first touch.
    """
    mapping = mmap.mmap(-1, size_bytes + HUGE_PAGE_BYTES,
                        flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    advice = PAGE_ADVICE[pages]
    if advice is not None:
        mapping.madvise(getattr(mmap, advice))
    start = _address(np.frombuffer(mapping, dtype=np.uint8, count=1))
    offset = -start % HUGE_PAGE_BYTES
    return mapping, np.frombuffer(mapping, dtype=np.int64, count=size_bytes // 8, offset=offset)


def write_chase(view: np.ndarray, point: ChasePoint, successor: np.ndarray) -> int:
    """Write ``point``'s pointers into ``view`` (line k's slot -> line successor[k]'s slot).

    Returns the address of line 0's slot, where the chase starts.
    """
    base = _address(view) + 8 * point.slot
    view[point.slot:point.lines * WORDS_PER_LINE:WORDS_PER_LINE] = base + successor * CACHE_LINE_BYTES
    return base


def check_working_set(workload: str, text: str) -> None:
    """Raise UserError unless ``text`` is "auto" or a size from one cache line to 1 TiB."""
    if text.strip().lower() == "auto":
        return
    try:
        size = parse_size(text)
    except ValueError:
        raise UserError(
            f"Parameter {workload}.working_set={text!r} is not a size; give one such as "
            '"64MiB", "32KiB", "1GiB", or "auto".'
        ) from None
    if not CACHE_LINE_BYTES <= size <= 1 << 40:
        raise UserError(
            f"Parameter {workload}.working_set={text!r} is out of range; give a size from "
            "64B (one cache line) to 1TiB."
        )


@register
class Latency(Workload):
    """Load-to-use latency by a dependent pointer chase: ns (and cycles) per load.

    The working set's 64-byte lines form one random cycle (Sattolo's algorithm), each line
    holding the next one's address, so each load waits for the last: lmbench's
    ``lat_mem_rd``, Intel MLC's idle latency. The counterpart of ``memory.random_access``
    (independent gathers, a throughput). Per point and sample, in one compiled call:
    min(lines, hops) untimed hops to warm the caches, then n x ``hops`` hops between two
    clock reads inside the kernel, so the dependent loads are all that is timed.
    ``working_set=auto`` sweeps LATENCY_LABELS (L1d/4 to 8x L3, dense around each cache)
    as ``<metric>@<point>``; a size gives one point. Cycles use the core clock
    measured in ``setup`` (``core_ghz``, absent where unknown). ``pages``: thp
    (MADV_HUGEPAGE: TLB misses out), base (MADV_NOHUGEPAGE), default (the kernel's policy);
    ``huge_page_share`` says what the kernel gave. Memory: the largest set, plus one set per
    further 8 points (8 points share a buffer, one word of each line each).
    Source: McVoy & Staelin, "lmbench: Portable Tools for Performance Analysis", USENIX
    1996 (lat_mem_rd); Intel Memory Latency Checker; Sattolo 1986 for the cycle.
    """

    name = "memory.latency"
    summary = "load-to-use latency, dependent pointer chase over a working set or an L1-to-8xL3 sweep"
    source = "lmbench lat_mem_rd (McVoy & Staelin 1996), Intel MLC idle latency; numba chase"
    op = "one dependent load of the chase (a hop to the next cache line), warm-up hops included"
    throughput = Metric("loads_per_s", "loads/s", "dependent loads per second over all points")
    metrics = (
        Metric("ns_per_load", "ns", "load-to-use latency: mean ns per dependent load",
               better="lower"),
        Metric("cycles_per_load", "cycles", "load-to-use latency in core cycles", better="lower"),
        Metric("working_set_bytes", "bytes", "working-set size of the chase", better=None),
        *(Metric(f"{name}@{label}", unit, f"{what} at the {label} point", better=better)
          for label in LATENCY_LABELS
          for name, unit, what, better in (
              ("ns_per_load", "ns", "mean ns per dependent load", "lower"),
              ("cycles_per_load", "cycles", "core cycles per dependent load", "lower"),
              ("working_set_bytes", "bytes", "working-set size", None))),
        Metric("core_ghz", "GHz", "core clock measured in setup (dependent add chain)",
               better=None),
        Metric("huge_page_share", "fraction", "share of the working sets on huge pages",
               better=None),
    )
    params = (
        Param("working_set", "auto", 'working-set size, e.g. "64MiB", "32KiB", "1GiB", or '
              '"auto" to sweep L1d/4 .. 8xL3'),
        Param("pages", "default", "page size: default (kernel policy), thp (madvise huge "
              "pages), base (no huge pages)", choices=tuple(PAGE_ADVICE)),
        Param("hops", 1 << 18, "timed loads per point per iteration", "",
              minimum=1 << 10, maximum=1 << 40),
        Param("seed", 0, "seed of the chase's permutations", "", minimum=0),
    )
    sample_flags = MappingProxyType({
        "huge_pages_missing": "pages=thp was asked but under half of the working set is on "
                              "huge pages (THP disabled or no free 2 MiB pages), so TLB misses "
                              "are still in the latency",
    })

    @classmethod
    def validate(cls, params) -> None:
        check_working_set(cls.name, params["working_set"])

    def setup(self, ctx: WorkerContext) -> None:
        from workloads.kernels import compiled, core_clock_hz

        kernels, self.compile_s = compiled("chase", "chase_timed", "sattolo_swaps", "clock_chain")
        self._chase, self._chase_timed = kernels.chase, kernels.chase_timed
        text = self.params["working_set"].strip()
        if text.lower() == "auto":
            sizes = latency_sweep_sizes(cache_sizes(ctx))
        else:
            sizes = {"": max(CACHE_LINE_BYTES, parse_size(text) // CACHE_LINE_BYTES
                             * CACHE_LINE_BYTES)}
        self.points = plan_points(sizes)
        buffers = {}
        for p in self.points:
            buffers[p.buffer] = max(buffers.get(p.buffer, 0), p.size_bytes)
        self._maps = [map_buffer(buffers[i], self.params["pages"]) for i in sorted(buffers)]
        rng = np.random.default_rng(self.params["seed"])
        self._position = {p.label: write_chase(self._maps[p.buffer][1], p,
                                               chase_cycle(p.lines, rng, kernels.sattolo_swaps))
                          for p in self.points}
        huge = [huge_page_bytes(_address(view)) for _, view in self._maps]
        self.huge_page_share = (None if None in huge else
                                min(1.0, sum(huge) / sum(v.nbytes for _, v in self._maps)))
        hz = core_clock_hz(kernels)
        self.core_ghz = hz / 1e9 if hz else None
        missing = self.params["pages"] == "thp" and (self.huge_page_share or 0.0) < 0.5
        self._flags = frozenset({"huge_pages_missing"}) if missing else frozenset()

    def run(self, n: int) -> Measurement:
        chase, hops, position = self._chase_timed, self.params["hops"], self._position
        metrics: dict[str, float] = {}
        loads = 0
        for p in self.points:
            warm = min(p.lines, hops)
            position[p.label], elapsed_ns = chase(position[p.label], warm, n * hops)
            ns = elapsed_ns / (n * hops)
            loads += warm + n * hops
            at = f"@{p.label}" if p.label else ""
            metrics[f"ns_per_load{at}"] = ns
            metrics[f"working_set_bytes{at}"] = float(p.size_bytes)
            if self.core_ghz:
                metrics[f"cycles_per_load{at}"] = ns * self.core_ghz
        if self.core_ghz:
            metrics["core_ghz"] = self.core_ghz
        if self.huge_page_share is not None:
            metrics["huge_page_share"] = self.huge_page_share
        return Measurement(ops=loads, metrics=metrics, flags=self._flags)

    def teardown(self) -> None:
        mappings = [mapping for mapping, _ in self._maps]
        self._maps = []  # drop the views first: a mapping with exported buffers cannot close
        for mapping in mappings:
            mapping.close()
        del self._position


# --------------------------------------------------------------------------------------------
# memory.alloc
# --------------------------------------------------------------------------------------------


def _minor_faults() -> int:
    """Return this thread's minor page faults so far (the process's where threads are not told)."""
    who = getattr(resource, "RUSAGE_THREAD", resource.RUSAGE_SELF)
    return resource.getrusage(who).ru_minflt


def reset_peak_rss() -> bool:
    """Reset the process's peak RSS (VmHWM) to its current RSS; return whether the kernel allowed it.

    Writes "5" to /proc/self/clear_refs (Linux >= 4.0, proc(5)); nothing else is cleared.
    """
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def peak_rss_bytes() -> int | None:
    """Return the process's peak RSS since the last reset (VmHWM of /proc/self/status); None if unknown."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


@register
class Alloc(Workload):
    """Map a large array, first-touch every page, unmap it; GB/s of touched memory, peak RSS.

    One op is one byte of a fresh anonymous mapping (seen as a numpy array) faulted in and
    unmapped; ``touch=page`` writes one byte per page (fault and zeroing are the cost),
    ``touch=fill`` every byte. A fresh mapping per iteration, not ``np.empty``: glibc
    reuses freed blocks up to 32 MiB, and such arrays took no fault at all. ``pages`` as in
    ``memory.latency``; faults per MiB say which pages were used (256 with 4 KiB, 0.5 with
    2 MiB). One interval is timed, around the whole loop (map, touch, unmap): ``touch_gbs``
    and the harness's ``touched_bytes_per_s`` share it (the unmap is part of the cost and
    inside the harness's time anyway). Peak RSS is read after the loop: the kernel's VmHWM,
    reset before it through /proc/self/clear_refs (absent where not allowed).
    Source: first-touch allocation microbenchmark (page-fault cost, cf. Linux
    ``mm/memory.c`` fault path); peak RSS from /proc (proc(5): VmHWM, clear_refs).
    """

    name = "memory.alloc"
    summary = "map, first-touch and unmap large arrays (page faults included): GB/s, peak RSS"
    source = "first-touch page-fault microbenchmark; peak RSS from /proc VmHWM"
    op = "one byte of a fresh anonymous mapping allocated, first-touched and unmapped"
    throughput = Metric("touched_bytes_per_s", "B/s", "fresh bytes mapped, touched and unmapped per s")
    metrics = (
        Metric("touch_gbs", "GB/s", "touched bytes per second over the same timed loop, 1e9 bytes/s"),
        Metric("peak_rss_bytes", "bytes", "largest process RSS during the sample's loop (VmHWM)",
               better=None),
        Metric("minor_faults_per_mib", "faults/MiB", "minor page faults per MiB touched "
               "(256 with 4 KiB pages, 0.5 with 2 MiB huge pages)", better=None),
    )
    params = (
        Param("size_mib", 256, "size of the array allocated per iteration", "MiB",
              minimum=1, maximum=1 << 20, split=True),
        Param("touch", "page", "page: one byte per page; fill: every byte", "",
              choices=("page", "fill")),
        Param("pages", "default", "page size: default (kernel policy), thp (madvise huge "
              "pages), base (no huge pages)", choices=tuple(PAGE_ADVICE)),
    )

    def setup(self, ctx: WorkerContext) -> None:
        self._page = mmap.PAGESIZE
        advice = PAGE_ADVICE[self.params["pages"]]
        self._advice = None if advice is None else getattr(mmap, advice)

    def run(self, n: int) -> Measurement:
        from time import perf_counter_ns as now

        size = self.params["size_mib"] * MIB
        step = self._page if self.params["touch"] == "page" else 1
        reset = reset_peak_rss()
        faults0 = _minor_faults()
        advice = self._advice
        t0 = now()
        for _ in range(n):
            mapping = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
            if advice is not None:
                mapping.madvise(advice)
            array = np.frombuffer(mapping, dtype=np.uint8)
            array[::step] = 1
            del array
            mapping.close()
        elapsed = now() - t0
        faults = _minor_faults() - faults0
        metrics = {"touch_gbs": n * size / max(elapsed, 1),
                   "minor_faults_per_mib": faults / (n * size / MIB)}
        peak = peak_rss_bytes() if reset else None
        if peak is not None:
            metrics["peak_rss_bytes"] = float(peak)
        return Measurement(ops=n * size, metrics=metrics)
