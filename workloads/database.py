"""Database workloads: a YCSB-style key-value load on a real SQLite file in WAL mode.

Method after YCSB (Cooper et al. 2010, "Benchmarking Cloud Serving Systems with YCSB"):
a table of ``record_count`` rows is loaded, then a pool of client threads, each with its own
connection, issues reads and updates in the mix of the chosen core workload, with keys drawn
uniformly or from YCSB's Zipfian generator (Gray et al. 1994, "Quickly Generating
Billion-Record Synthetic Databases", theta = 0.99).
"""

from __future__ import annotations

import math
import queue
import shutil
import sqlite3
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workloads.base import Measurement, Metric, WorkerContext, Workload
from workloads.params import Param
from workloads.registry import register

# Read share of each workload: YCSB core workloads A, B, C and a 2:1 read/write mix.
READ_SHARE: dict[str, float] = {"A": 0.5, "B": 0.95, "C": 1.0, "RW21": 2 / 3}
ZIPF_THETA = 0.99


def zeta(n_items: int, theta: float) -> float:
    """Return the generalized harmonic number H(n, theta) = sum_{i=1..n} i^-theta."""
    return float(np.sum(np.arange(1, n_items + 1, dtype=np.float64) ** -theta))


class ZipfianGenerator:
    """YCSB's ZipfianGenerator (Gray et al. 1994): ranks 0..n-1, rank 0 the most popular.

    Rank 0 is drawn with probability exactly 1/H(n, theta) and rank 1 with 2^-theta/H(n,
    theta); higher ranks follow Gray's closed-form approximation of the Zipf tail, as in YCSB.
    """

    def __init__(self, n_items: int, theta: float = ZIPF_THETA) -> None:
        self.n_items = n_items
        self.theta = theta
        self.zetan = zeta(n_items, theta)
        zeta2 = zeta(min(2, n_items), theta)
        self.alpha = 1.0 / (1.0 - theta)
        self.eta = ((1.0 - (2.0 / n_items) ** (1.0 - theta)) / (1.0 - zeta2 / self.zetan)
                    if n_items > 2 else 0.0)

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """Return ``size`` ranks (int64 in [0, n_items)) drawn with ``rng``."""
        u = rng.random(size)
        uz = u * self.zetan
        tail = self.n_items * (self.eta * u - self.eta + 1.0) ** self.alpha
        ranks = np.where(uz < 1.0, 0.0, np.where(uz < 1.0 + 0.5 ** self.theta, 1.0, tail))
        return np.minimum(ranks.astype(np.int64), self.n_items - 1)


def loaded_value(key: int, field_bytes: int) -> str:
    """Return the field loaded for ``key``: its digits repeated to ``field_bytes`` chars."""
    text = f"{key}."
    return (text * (field_bytes // len(text) + 1))[:field_bytes]


def updated_value(thread: int, seq: int, field_bytes: int) -> str:
    """Return the field an update writes: "u<thread>:<seq>:" padded with "x"."""
    return f"u{thread}:{seq}:".ljust(field_bytes, "x")[:max(field_bytes, 1)]


@dataclass(frozen=True, slots=True)
class ThreadResult:
    """What one client thread did in one run: latencies (ns), counts, first error text."""

    latencies_ns: np.ndarray
    reads: int
    read_misses: int
    update_misses: int
    sql_errors: int
    first_error: str

    @property
    def errors(self) -> int:
        """Return all failed transactions: missed reads, missed updates, SQL errors."""
        return self.read_misses + self.update_misses + self.sql_errors


class _Client(threading.Thread):
    """A client thread with its own connection; runs jobs (op count, key/op arrays) queued."""

    def __init__(self, index: int, path: Path, busy_timeout_ms: int, synchronous: str,
                 field_bytes: int) -> None:
        super().__init__(name=f"db.sqlite-client-{index}", daemon=True)
        self.index = index
        self.jobs: queue.Queue = queue.Queue()
        self.results: queue.Queue = queue.Queue()
        self._path = path
        self._busy = busy_timeout_ms
        self._sync = synchronous
        self._field_bytes = field_bytes
        self.updates_done = 0

    def run(self) -> None:
        conn = sqlite3.connect(self._path, timeout=self._busy / 1000, isolation_level=None)
        try:
            conn.execute(f"PRAGMA busy_timeout={self._busy}")
            conn.execute(f"PRAGMA synchronous={self._sync}")
            while (job := self.jobs.get()) is not None:
                keys, is_read = job
                try:
                    self.results.put((self._work(conn, keys, is_read), None))
                except Exception as exc:  # noqa: BLE001 - handed to run(), which raises it
                    self.results.put((None, exc))
        finally:
            conn.close()

    def _work(self, conn: sqlite3.Connection, keys: np.ndarray,
              is_read: np.ndarray) -> ThreadResult:
        lat = np.empty(len(keys), dtype=np.int64)
        fb = self._field_bytes
        misses = [0, 0]  # reads, updates that found no row
        sql_errors = reads = 0
        first = ""
        clock = time.perf_counter_ns
        for i, (key, read) in enumerate(zip(keys.tolist(), is_read.tolist())):
            t0 = clock()
            try:
                if read:
                    row = conn.execute("SELECT field FROM usertable WHERE key = ?",
                                       (key,)).fetchone()
                    ok = row is not None and len(row[0]) == fb
                else:
                    value = updated_value(self.index, self.updates_done, fb)
                    ok = conn.execute("UPDATE usertable SET field = ? WHERE key = ?",
                                      (value, key)).rowcount == 1
                    self.updates_done += 1
            except sqlite3.Error as exc:
                ok = True  # counted here, not as a miss
                sql_errors += 1
                first = first or f"{'read' if read else 'update'} of key {key}: {exc}"
            lat[i] = clock() - t0
            reads += read
            if not ok:
                misses[0 if read else 1] += 1
                first = first or f"{'read' if read else 'update'} of key {key} found no row"
        return ThreadResult(lat, reads, misses[0], misses[1], sql_errors, first)


@register
class SQLiteYCSB(Workload):
    """YCSB core workloads on a SQLite file in WAL mode, one connection per client thread.

    One op is one SQL transaction: a read is one autocommit ``SELECT`` of one row by primary
    key; an update is one autocommit ``UPDATE`` of one row's field. Reads are checked: a
    missing row or a field of the wrong length is an error, and any error fails the sample.
    Keys are uniform, or Zipfian (theta 0.99) with ranks mapped to keys through a fixed
    seeded permutation, so hot keys are scattered over the table as in YCSB's scrambled
    Zipfian but with the exact Zipfian frequencies.
    Source: YCSB (Cooper et al. 2010), workloads A/B/C; ZipfianGenerator (Gray et al. 1994).
    """

    name = "db.sqlite"
    summary = "YCSB A/B/C/2:1 key-value transactions on a SQLite WAL database"
    source = "YCSB (Cooper et al. 2010), Zipfian keys after Gray et al. 1994"
    op = "one SQL transaction (an autocommit SELECT or UPDATE of one row)"
    throughput = Metric("tx_per_s", "transactions/s", "SQL transactions completed per second")
    metrics = (
        Metric("latency_p50_ms", "ms", "median transaction latency", better="lower"),
        Metric("latency_p95_ms", "ms", "95th percentile transaction latency",
               better="lower"),
        Metric("latency_p99_ms", "ms", "99th percentile transaction latency",
               better="lower"),
        Metric("read_fraction", "fraction", "share of transactions that were reads", better=None),
        Metric("errors", "count", "reads or updates that missed a loaded key (fail the sample)",
               better="lower"),
    )
    params = (
        Param("record_count", 100_000, "rows loaded", "rows", minimum=1, maximum=100_000_000,
              split=True),
        Param("field_bytes", 100, "length of each row's field", "B", minimum=1,
              maximum=1 << 20),
        Param("workload", "A", "A 50/50 read/update, B 95/5, C read only, RW21 2:1", "",
              choices=tuple(READ_SHARE)),
        Param("distribution", "zipfian", "key distribution", "",
              choices=("uniform", "zipfian")),
        Param("connections", 2, "client threads, each with its own connection", "",
              minimum=1, maximum=256),
        Param("busy_timeout_ms", 5000, "SQLite busy timeout", "ms", minimum=0,
              maximum=600_000),
        Param("synchronous", "NORMAL", "PRAGMA synchronous (NORMAL is WAL's usual)", "",
              choices=("OFF", "NORMAL", "FULL")),
        Param("seed", 0, "seed of key choices and the key permutation", "", minimum=0),
    )

    _dir: Path | None = None  # folder of the database file; None before setup
    _clients: tuple[_Client, ...] = ()

    def setup(self, ctx: WorkerContext) -> None:
        p = self.params
        self._dir = Path(tempfile.mkdtemp(prefix="topobench-db-", dir=ctx.scratch_dir))
        self.path = self._dir / "ycsb.sqlite"
        self._load(p["record_count"], p["field_bytes"])
        self._rng = np.random.default_rng([p["seed"], ctx.worker_rank])
        n = p["record_count"]
        self._zipf = ZipfianGenerator(n) if p["distribution"] == "zipfian" else None
        self._perm = np.random.default_rng(p["seed"]).permutation(n) if self._zipf else None
        self._clients = tuple(_Client(i, self.path, p["busy_timeout_ms"], p["synchronous"],
                                      p["field_bytes"]) for i in range(p["connections"]))
        for client in self._clients:
            client.start()

    def _load(self, record_count: int, field_bytes: int) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("CREATE TABLE usertable (key INTEGER PRIMARY KEY, field TEXT NOT NULL)")
            conn.execute("BEGIN")
            conn.executemany("INSERT INTO usertable VALUES (?, ?)",
                             ((k, loaded_value(k, field_bytes)) for k in range(record_count)))
            conn.execute("COMMIT")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()

    def keys(self, size: int) -> np.ndarray:
        """Return ``size`` keys from the configured distribution."""
        if self._zipf is None:
            return self._rng.integers(0, self.params["record_count"], size)
        return self._perm[self._zipf.sample(self._rng, size)]

    def run(self, n: int) -> Measurement:
        share = READ_SHARE[self.params["workload"]]
        c = len(self._clients)
        for i, client in enumerate(self._clients):
            count = n // c + (i < n % c)
            client.jobs.put((self.keys(count), self._rng.random(count) < share))
        outcomes = [client.results.get() for client in self._clients]
        for _, exc in outcomes:
            if exc is not None:
                raise RuntimeError(f"db.sqlite: a client thread failed: {exc!r}") from exc
        results = [res for res, _ in outcomes]
        errors = sum(r.errors for r in results)
        if errors:
            first = next(r.first_error for r in results if r.first_error)
            raise RuntimeError(
                f"db.sqlite: {sum(r.read_misses for r in results)} reads missed loaded keys, "
                f"{sum(r.update_misses for r in results)} updates found no row and "
                f"{sum(r.sql_errors for r in results)} SQL errors in {n} transactions; "
                f"first: {first}")
        lat_ms = np.concatenate([r.latencies_ns for r in results]) / 1e6
        p50, p95, p99 = (np.percentile(lat_ms, (50, 95, 99)) if n else (math.nan,) * 3)
        return Measurement(ops=n, metrics={
            "latency_p50_ms": float(p50),
            "latency_p95_ms": float(p95),
            "latency_p99_ms": float(p99),
            "read_fraction": sum(r.reads for r in results) / n if n else math.nan,
            "errors": float(errors),
        })

    def teardown(self) -> None:
        started = [client for client in self._clients if client.ident is not None]
        for client in started:
            client.jobs.put(None)
        for client in started:
            client.join()
        self._clients = ()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
        self._dir = self._perm = self._zipf = None
