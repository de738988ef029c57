"""Cache workloads: lookups through Python's ``functools.lru_cache`` with a hot-key skew."""

from __future__ import annotations

import functools
import hashlib

import numpy as np

from workloads.base import Measurement, Metric, WorkerContext, Workload
from workloads.params import Param
from workloads.registry import register


def draw_keys(keys: int, hot_keys: int, hot_share: float, count: int, seed: int) -> list[int]:
    """Return ``count`` keys in [0, keys): a ``hot_share`` of draws from a hot set, rest uniform.

    The hot set is ``hot_keys`` distinct keys chosen at random from the key space; a draw goes
    to it with probability ``hot_share`` (uniform within it), otherwise uniform over all
    ``keys``. Seeded numpy ``Generator``, so the sequence is reproducible.
    """
    rng = np.random.default_rng(seed)
    hot = rng.choice(keys, size=min(hot_keys, keys), replace=False)
    uniform = rng.integers(0, keys, size=count)
    pick_hot = rng.random(count) < hot_share
    if hot.size:
        uniform[pick_hot] = hot[rng.integers(0, hot.size, size=int(pick_hot.sum()))]
    return uniform.tolist()


def _compute(key: int) -> bytes:
    """Return a 16-byte BLAKE2b digest of ``key``: the small real work done on a miss."""
    return hashlib.blake2b(key.to_bytes(8, "little"), digest_size=16).digest()


@register
class Lru(Workload):
    """Lookups through a ``functools.lru_cache``-wrapped function; lookups/s and hit rate.

    One op is one call of the cached function with one key. A miss computes a 16-byte
    BLAKE2b digest of the key (so a miss costs more than a hit) and stores it, evicting the
    least recently used entry when ``maxsize`` is reached. Keys are drawn ahead of time in
    ``setup`` (see ``draw_keys``) and replayed in order, wrapping around; the cache stays
    warm across samples. Hit rate is from ``cache_info()`` deltas over the sample.
    Source: Python's ``functools.lru_cache`` (C implementation); skewed key popularity
    after the hot-set distribution of YCSB (Cooper et al., SoCC 2010).
    """

    name = "cache.lru"
    summary = "functools.lru_cache lookups with a tunable share of hot keys: lookups/s, hit rate"
    source = "functools.lru_cache; hot-set key popularity after YCSB (Cooper et al. 2010)"
    op = "one lookup (call) of an lru_cache-wrapped function, hit or miss"
    throughput = Metric("lookups_per_s", "lookups/s", "cached-function calls per second")
    metrics = (
        Metric("hit_rate", "fraction", "hits / lookups over the sample, 0..1 (set by the key "
               "distribution and maxsize)", better=None),
    )
    params = (
        Param("maxsize", 4096, "lru_cache maxsize (0 caches nothing)", "entries",
              minimum=0, maximum=1 << 26),
        Param("keys", 100_000, "size of the key space", "keys", minimum=1, maximum=1 << 30),
        Param("hot_keys", 1000, "size of the hot key set", "keys", minimum=0, maximum=1 << 30),
        Param("hot_share", 0.9, "fraction of lookups that go to the hot set", "fraction",
              minimum=0.0, maximum=1.0),
        Param("sequence", 1 << 18, "length of the pre-drawn key sequence (replayed)", "keys",
              minimum=1, maximum=1 << 26),
        Param("seed", 0, "seed of the key draw", "", minimum=0),
    )

    def setup(self, ctx: WorkerContext) -> None:
        p = self.params
        self.sequence = draw_keys(p["keys"], p["hot_keys"], p["hot_share"], p["sequence"],
                                  p["seed"])
        self.lookup = functools.lru_cache(maxsize=p["maxsize"])(_compute)
        self._pos = 0

    def run(self, n: int) -> Measurement:
        lookup, sequence, pos = self.lookup, self.sequence, self._pos
        hits_before = lookup.cache_info().hits
        left = n
        while left:
            end = min(len(sequence), pos + left)
            for key in sequence[pos:end]:
                lookup(key)
            left -= end - pos
            pos = end % len(sequence)
        self._pos = pos
        hits = lookup.cache_info().hits - hits_before
        return Measurement(ops=n, metrics={"hit_rate": hits / n if n else 0.0})

    def teardown(self) -> None:
        self.lookup.cache_clear()
        del self.lookup, self.sequence
