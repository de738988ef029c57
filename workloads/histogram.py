"""Latency histograms of every request: a thin wrapper over HdrHistogram (``hdrhistogram``).

Range 1 ns .. 1 hour at 3 significant digits (HdrHistogram's usual latency setting, Gil Tene):
every value is kept within 0.1% (a bucket is at most 1/1024 of its value wide), in 33,792
64-bit counters (270 KB). Recording takes a whole numpy array: the library's own counts-array
indexes are computed with numpy and added with one ``bincount``, so no Python call happens per
value (40-75 ns/value against 2.6-3.6 us/value for hdrh's ``record_value`` on a shared 2-core
box, 40-70x faster; ``python tests/test_histogram.py`` measures it).
Percentiles, mean and buckets are read from the same counts array with numpy, by the
library's conventions; ``encode`` gives HdrHistogram's compressed V2 bytes, readable by the
Java and C implementations.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Iterable

import numpy as np
from hdrh.histogram import HdrHistogram

LATENCY_PERCENTILES: tuple[tuple[str, float], ...] = (
    ("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p999", 99.9))
"""The percentiles derived from every latency histogram, by metric-name suffix."""


LOWEST_NS = 1
HIGHEST_NS = 3600 * 10**9
SIGNIFICANT_DIGITS = 3
_CHUNK = 1 << 22  # synthetic values materialized at once by ``record_corrected``
_SMALL = 2048  # below this many values np.add.at beats a full-length bincount
_TOP_NS = HdrHistogram(LOWEST_NS, HIGHEST_NS, SIGNIFICANT_DIGITS).get_highest_equivalent_value(
    HIGHEST_NS)  # the top of 1 hour's bucket: the largest value accepted


def min_count(q: float) -> int:
    """Return the fewest values from which percentile ``q`` (0 < q <= 100) is reported.

    Rule: a percentile q is reported only when at least one value lies above it, i.e. from
    n >= 100 / (100 - q) values: p50 from 2, p90 from 10, p99 from 100, p99.9 from 1000.
    q = 100 is the maximum, known from 1 value.
    """
    if not 0 < q <= 100:
        raise ValueError(f"percentile {q!r} is outside (0, 100]")
    if q == 100:
        return 1
    return max(1, math.ceil(100 / (100 - q) - 1e-9))


def _index_of(h: HdrHistogram, values: np.ndarray) -> np.ndarray:
    """Return the library's counts-array index of each int64 value (vectorized _counts_index_for)."""
    # bit length of (v | sub_bucket_mask): frexp's exponent, exact below 2**53 (HIGHEST_NS < 2**42)
    bits = np.frexp((values | h.sub_bucket_mask).astype(np.float64))[1].astype(np.int64)
    bucket = bits - h.unit_magnitude - (h.sub_bucket_half_count_magnitude + 1)
    sub = values >> (bucket + h.unit_magnitude)
    return ((bucket + 1) << h.sub_bucket_half_count_magnitude) + sub - h.sub_bucket_half_count


def _bounds_of_index(h: HdrHistogram, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (lowest, highest) equivalent value of each counts-array index (vectorized)."""
    index = index.astype(np.int64)
    bucket = (index >> h.sub_bucket_half_count_magnitude) - 1
    sub = (index & (h.sub_bucket_half_count - 1)) + h.sub_bucket_half_count
    first = bucket < 0
    sub = np.where(first, sub - h.sub_bucket_half_count, sub)
    bucket = np.where(first, 0, bucket)
    lowest = sub << (bucket + h.unit_magnitude)
    width = np.left_shift(1, h.unit_magnitude + bucket)
    return lowest, lowest + width - 1


def _as_ns(values_ns: np.ndarray | Iterable[int]) -> np.ndarray:
    """Return ``values_ns`` as int64 ns, checked against the range 0 .. 1 hour (its bucket's top)."""
    v = np.asarray(values_ns)
    if v.dtype.kind == "f":
        if not np.all(np.isfinite(v)):
            raise ValueError("latency values must be finite numbers of nanoseconds")
        v = v.astype(np.int64)  # truncated toward zero, as Java's (long) cast
    elif v.dtype.kind not in "iub" and v.size:
        raise TypeError(f"latency values must be numbers of nanoseconds, not {v.dtype}")
    v = v.astype(np.int64, copy=False).ravel()
    if v.size and (v.min() < 0 or v.max() > _TOP_NS):
        bad = int(v.min()) if v.min() < 0 else int(v.max())
        raise ValueError(f"latency {bad} ns is outside the histogram's range "
                         f"0 .. {_TOP_NS} ns (1 hour)")
    return v


def percentile_from_buckets(values_ns: np.ndarray, counts: np.ndarray, q: float) -> float | None:
    """Return percentile ``q`` of a distribution given as sorted bucket values and counts.

    Same rule as ``LatencyHistogram.percentile_ns`` (HdrHistogram's nearest rank: the value of
    the bucket holding the round(q% of n)-th value), so on ``h.buckets()`` it returns exactly
    ``h.percentile_ns(q)``. None when the counts sum below ``min_count(q)``.
    """
    counts = np.asarray(counts)
    total = float(counts.sum())
    if total < min_count(q):
        return None
    target = max(int(q * total / 100 + 0.5), 1)
    i = int(np.searchsorted(np.cumsum(counts), target, side="left"))
    return float(np.asarray(values_ns)[min(i, len(counts) - 1)])


class LatencyHistogram:
    """A mergeable histogram of latencies in ns (1 ns .. 1 h, 3 significant digits).

    Wraps ``hdrh.histogram.HdrHistogram``; record numpy arrays with ``record``. Values are
    whole nanoseconds (floats are truncated); negative values or values above 1 hour raise
    ``ValueError``. Pickles as its encoding.
    """

    __slots__ = ("_counts", "_h")

    def __init__(self) -> None:
        self._wrap(HdrHistogram(LOWEST_NS, HIGHEST_NS, SIGNIFICANT_DIGITS))

    def _wrap(self, h: HdrHistogram) -> LatencyHistogram:
        self._h = h
        self._counts = np.ctypeslib.as_array(h.counts)  # a view: numpy writes the library's counters
        return self

    @classmethod
    def of(cls, values_ns: np.ndarray) -> LatencyHistogram:
        """Return a histogram of ``values_ns`` (ns)."""
        out = cls()
        out.record(values_ns)
        return out

    # --- recording -----------------------------------------------------------------------

    def record(self, values_ns: np.ndarray) -> None:
        """Record every value of ``values_ns`` (ns) once, without a Python call per value."""
        v = _as_ns(values_ns)
        if v.size:
            self._add(_index_of(self._h, v), None, int(v.min()), int(v.max()), v.size)

    def _add(self, index: np.ndarray, weights: np.ndarray | None, low: int, high: int,
             total: int) -> None:
        counts = self._counts
        if weights is None and index.size >= _SMALL:
            np.add(counts, np.bincount(index, minlength=counts.size).astype(np.uint64),
                   out=counts)
        else:
            np.add.at(counts, index, np.uint64(1) if weights is None else weights)
        h = self._h
        h.total_count += total
        h.min_value = min(h.min_value, low)
        h.max_value = max(h.max_value, high)

    def record_corrected(self, values_ns: np.ndarray, expected_interval_ns: int) -> None:
        """Record ``values_ns`` plus the values a stall hid (coordinated-omission correction).

        As HdrHistogram's recordValueWithExpectedInterval (and wrk's stats_correct): for each
        value v above ``expected_interval_ns`` (I), also record v - I, v - 2I, ... while they
        are >= I, the latencies that requests due every I ns behind the stalled one would have
        seen. I <= 0 records ``values_ns`` unchanged.
        """
        v = _as_ns(values_ns)
        self.record(v)
        interval = int(expected_interval_ns)
        if interval <= 0 or not v.size:
            return
        extra = np.maximum(v // interval - 1, 0)
        hit = extra > 0
        for chunk in _synthetic(v[hit], extra[hit], interval):
            self.record(chunk)

    # --- combining and transport ---------------------------------------------------------

    def merge(self, other: LatencyHistogram) -> None:
        """Add ``other``'s counts into this histogram."""
        if other.count == 0:
            return
        low = other._h.min_value if self.count == 0 else min(self._h.min_value, other._h.min_value)
        self._h.add(other._h)
        self._h.min_value = low  # hdrh's add() takes 0 for an empty side's minimum

    @classmethod
    def merged(cls, histograms: Iterable[LatencyHistogram]) -> LatencyHistogram:
        """Return one histogram holding the counts of all ``histograms`` (empty when none)."""
        out = cls()
        for h in histograms:
            out.merge(h)
        return out

    def encode(self) -> bytes:
        """Return HdrHistogram's compressed V2 encoding (bytes, no base64)."""
        return base64.b64decode(self._h.encode())

    @classmethod
    def decode(cls, data: bytes) -> LatencyHistogram:
        """Return the histogram that ``encode`` wrote into ``data``.

        Raises:
            ValueError: ``data`` is not a histogram of this range and precision.
        """
        h = HdrHistogram.decode(base64.b64encode(bytes(data)))
        if (h.lowest_trackable_value, h.highest_trackable_value, h.significant_figures) != (
                LOWEST_NS, HIGHEST_NS, SIGNIFICANT_DIGITS):
            raise ValueError(f"histogram of range {h.lowest_trackable_value}.."
                             f"{h.highest_trackable_value} ns at {h.significant_figures} digits; "
                             f"expected {LOWEST_NS}..{HIGHEST_NS} at {SIGNIFICANT_DIGITS}")
        return cls.__new__(cls)._wrap(h)

    def __reduce__(self) -> tuple:
        return (LatencyHistogram.decode, (self.encode(),))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LatencyHistogram):
            return NotImplemented
        return (self.count == other.count and self.min_ns == other.min_ns
                and self.max_ns == other.max_ns and np.array_equal(self._counts, other._counts))

    __hash__ = None  # mutable

    def __repr__(self) -> str:
        return f"LatencyHistogram(count={self.count}, p50_ns={self.percentile_ns(50)}, " \
               f"max_ns={self.max_ns})"

    # --- reading -------------------------------------------------------------------------

    @property
    def count(self) -> int:
        """Return the number of recorded values."""
        return int(self._h.total_count)

    @property
    def min_ns(self) -> int | None:
        """Return the smallest value (its bucket's lowest equivalent), None when empty."""
        return int(self._h.get_min_value()) if self.count else None

    @property
    def max_ns(self) -> int | None:
        """Return the largest value (its bucket's highest equivalent), None when empty."""
        return int(self._h.get_max_value()) if self.count else None

    @property
    def mean_ns(self) -> float | None:
        """Return the mean in ns (each bucket at its middle, as hdrh's get_mean_value), None when empty."""
        if not self.count:
            return None
        index = np.flatnonzero(self._counts)
        low, high = _bounds_of_index(self._h, index)
        middle = low + ((high - low + 1) >> 1)
        return float(np.dot(self._counts[index].astype(np.float64), middle.astype(np.float64))
                     / self.count)

    def percentile_ns(self, q: float) -> float | None:
        """Return the value at percentile ``q`` (0 < q <= 100) in ns; None below ``min_count(q)`` values.

        HdrHistogram's getValueAtPercentile: the highest equivalent value of the bucket that
        holds the max(1, round(q% of n))-th smallest value (within 0.1% of that value).
        """
        if self.count < min_count(q):
            return None
        return percentile_from_buckets(*self.buckets(), q)

    def buckets(self) -> tuple[np.ndarray, np.ndarray]:
        """Return (value in ns, count) of every non-empty bucket, sorted by value (int64 arrays).

        Each bucket is represented by its highest equivalent value, the value HdrHistogram
        reports for a percentile that falls in it; recording it again lands in the same bucket.
        """
        index = np.flatnonzero(self._counts)
        return _bounds_of_index(self._h, index)[1], self._counts[index].astype(np.int64)

    @classmethod
    def from_buckets(cls, values_ns: np.ndarray, counts: np.ndarray) -> LatencyHistogram:
        """Return a histogram holding ``counts[i]`` values equal to ``values_ns[i]`` (ns)."""
        v = _as_ns(values_ns)
        c = np.asarray(counts).astype(np.int64).ravel()
        if c.shape != v.shape or (c.size and c.min() < 0):
            raise ValueError("counts must be non-negative and as many as the values")
        keep = c > 0
        v, c = v[keep], c[keep]
        out = cls()
        if v.size:
            out._add(_index_of(out._h, v), c.astype(np.uint64), int(v.min()), int(v.max()),
                     int(c.sum()))
        return out


def bucket_matrix(histograms: Iterable[LatencyHistogram]) -> tuple[np.ndarray, np.ndarray]:
    """Return (bucket values in ns, counts of shape histograms x buckets) over the union of buckets.

    For a bootstrap over rounds: ``weights @ counts`` gives the counts of a resampled set of
    rounds, to read with ``percentile_from_buckets(values, row, q)``.
    """
    hs = list(histograms)
    if not hs:
        return np.zeros(0, np.int64), np.zeros((0, 0), np.int64)
    nonzero = np.flatnonzero(np.any(np.stack([h._counts for h in hs]) > 0, axis=0))
    values = _bounds_of_index(hs[0]._h, nonzero)[1]
    return values, np.stack([h._counts[nonzero].astype(np.int64) for h in hs])


def coordinated_omission_seen(raw: LatencyHistogram, corrected: LatencyHistogram,
                              factor: float = 2.0) -> bool:
    """Return True when the corrected p90 or p99 is more than ``factor`` times the raw one.

    Each percentile is compared only when the raw count allows it (``min_count``); False when
    neither can be read. A closed loop hides a stall from its raw histogram (coordinated
    omission, Gil Tene); the corrected one (``record_corrected``) shows it: at p99 when the
    stalls are rare, at p90 when they are frequent (then the raw p99 itself holds stalled
    requests). A machine that deschedules the process for many ms is a stall too.
    """
    for q in (90.0, 99.0):
        if raw.count >= min_count(q) and corrected.percentile_ns(q) > factor * raw.percentile_ns(q):
            return True
    return False


NS_PER_UNIT: dict[str, float] = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}


def latency_summary(h: LatencyHistogram, unit: str) -> dict[str, float | None]:
    """Return p50, p90, p99, p999, mean and max of ``h`` in ``unit`` (ns, us, ms, s).

    Keys are the suffixes of ``base.latency_metrics`` ("p50" ... "p999", "mean", "max"); a
    value is None when ``h`` has too few values for it (``min_count``) or is empty.
    """
    scale = NS_PER_UNIT[unit]
    out: dict[str, float | None] = {}
    for label, q in LATENCY_PERCENTILES:
        v = h.percentile_ns(q)
        out[label] = None if v is None else v / scale
    out["mean"] = None if h.mean_ns is None else h.mean_ns / scale
    out["max"] = None if h.max_ns is None else h.max_ns / scale
    return out


def generator_bound(send_lag: LatencyHistogram, latency: LatencyHistogram,
                    share: float = 0.1) -> bool:
    """Return True when the send-lag p99 exceeds ``share`` of the latency p50 (issue 11's rule).

    An open-loop generator that sends this late measures itself, not the server. False when
    either percentile cannot be read (too few values).
    """
    lag, typical = send_lag.percentile_ns(99), latency.percentile_ns(50)
    return lag is not None and typical is not None and lag > share * typical


def _synthetic(values: np.ndarray, extra: np.ndarray, interval: int) -> Iterable[np.ndarray]:
    """Yield v - j*interval for j = 1..extra[i] of every values[i], in chunks of about _CHUNK."""
    start = 0
    while start < values.size:
        if extra[start] > _CHUNK:  # one long stall: its own arithmetic progression, chunked
            v, k = int(values[start]), int(extra[start])
            for j0 in range(1, k + 1, _CHUNK):
                yield v - interval * np.arange(j0, min(k, j0 + _CHUNK - 1) + 1, dtype=np.int64)
            start += 1
            continue
        stop = start + max(1, int(np.searchsorted(np.cumsum(extra[start:]), _CHUNK, "right")))
        v, k = values[start:stop], extra[start:stop]
        if np.any(k > _CHUNK):
            stop = start + int(np.argmax(k > _CHUNK))
            v, k = values[start:stop], extra[start:stop]
        offsets = np.arange(int(k.sum())) - np.repeat(np.cumsum(k) - k, k) + 1
        yield np.repeat(v, k) - interval * offsets
        start = stop
