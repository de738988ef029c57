"""Database workloads: YCSB's core workloads on a real SQLite file in WAL mode.

Method after YCSB (Cooper et al. 2010, "Benchmarking Cloud Serving Systems with YCSB"): a
table of ``record_count`` rows is loaded, then client threads, each with its own connection,
issue the operation mix of core workload A-F with keys from YCSB's own generators: the
scrambled Zipfian of CoreWorkload (Gray et al. 1994's Zipfian over 10^16 items, theta 0.99,
hashed onto the table with FNV-1a 64), "latest" (SkewedLatestGenerator) or uniform.
Transactions run closed loop (each client issues its next one when the last is done) or open
loop at a fixed ``rate``; response time counts from when a client was ready (or due) to issue.
"""

from __future__ import annotations

import itertools
import math
import queue
import shutil
import sqlite3
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from workloads.base import Measurement, Metric, WorkerContext, Workload
from workloads.histogram import LatencyHistogram
from workloads.open_loop import BACKLOG, backlog_growth
from workloads.params import Param
from workloads.registry import register

READ, UPDATE, INSERT, SCAN, RMW = range(5)
OP_NAMES = ("read", "update", "insert", "scan", "read-modify-write")

# Share of each operation (read, update, insert, scan, read-modify-write) per workload, from
# YCSB's workloads/workloada..workloadf, plus a 2:1 read/update mix.
MIXES: dict[str, tuple[float, float, float, float, float]] = {
    "A": (0.5, 0.5, 0.0, 0.0, 0.0),
    "B": (0.95, 0.05, 0.0, 0.0, 0.0),
    "C": (1.0, 0.0, 0.0, 0.0, 0.0),
    "D": (0.95, 0.0, 0.05, 0.0, 0.0),
    "E": (0.0, 0.0, 0.05, 0.95, 0.0),
    "F": (0.5, 0.0, 0.0, 0.0, 0.5),
    "RW21": (2 / 3, 1 / 3, 0.0, 0.0, 0.0),
}
READ_SHARE: dict[str, float] = {name: mix[READ] for name, mix in MIXES.items()}
YCSB_DISTRIBUTION: dict[str, str] = {"D": "latest"}  # requestdistribution; zipfian otherwise
MAX_SCAN_LENGTH = 100  # workloade: maxscanlength=100, scanlengthdistribution=uniform
ZIPF_THETA = 0.99
SCRAMBLED_ITEM_COUNT = 10**16  # ScrambledZipfianGenerator.ITEM_COUNT
SCRAMBLED_ZETAN = 26.46902820178302  # ScrambledZipfianGenerator.ZETAN: zeta(10^16, 0.99)
FNV_OFFSET_BASIS_64 = 0xCBF29CE484222325
FNV_PRIME_64 = 1099511628211
SPIN_NS = 1_000_000  # open loop: clients sleep to this long before a due time, then spin

SELECT_ONE = "SELECT field FROM usertable WHERE key = ?"
UPDATE_ONE = "UPDATE usertable SET field = ? WHERE key = ?"
INSERT_ONE = "INSERT INTO usertable VALUES (?, ?)"
SCAN_FROM = "SELECT key, field FROM usertable WHERE key >= ? ORDER BY key LIMIT ?"


def zeta(n_items: int, theta: float, start: int = 0, initial: float = 0.0) -> float:
    """Return H(n, theta) = sum_{i=1..n} i^-theta, adding terms start+1..n to ``initial``."""
    total = initial
    for lo in range(start + 1, n_items + 1, 1 << 22):  # bounded memory for 10^8 rows
        terms = np.arange(lo, min(n_items, lo + (1 << 22) - 1) + 1, dtype=np.float64)
        total += float(np.sum(terms ** -theta))
    return total


class ZipfianGenerator:
    """YCSB's ZipfianGenerator (Gray et al. 1994): ranks 0..n-1, rank 0 the most popular.

    Rank 0 is drawn with probability exactly 1/H(n, theta) and rank 1 with 2^-theta/H(n,
    theta); higher ranks follow Gray's closed-form approximation of the Zipf tail, as in YCSB
    (so not exact Zipf frequencies: rank 2 ~x1.19, rank 3 ~x1.13). ``zetan`` may be given
    precomputed, as YCSB's four-argument constructor takes it.
    """

    def __init__(self, n_items: int, theta: float = ZIPF_THETA, zetan: float | None = None) -> None:
        self.n_items = n_items
        self.theta = theta
        self.zetan = zeta(n_items, theta) if zetan is None else zetan
        zeta2 = zeta(min(2, n_items), theta)
        self.alpha = 1.0 / (1.0 - theta)
        self.eta = ((1.0 - (2.0 / n_items) ** (1.0 - theta)) / (1.0 - zeta2 / self.zetan)
                    if n_items > 2 else 0.0)

    def grown(self, n_items: int) -> ZipfianGenerator:
        """Return the generator for ``n_items`` >= n, zeta extended incrementally (as YCSB)."""
        if n_items == self.n_items:
            return self
        return ZipfianGenerator(n_items, self.theta,
                                zeta(n_items, self.theta, self.n_items, self.zetan))

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """Return ``size`` ranks (int64 in [0, n_items)) drawn with ``rng``."""
        u = rng.random(size)
        uz = u * self.zetan
        tail = self.n_items * (self.eta * u - self.eta + 1.0) ** self.alpha
        ranks = np.where(uz < 1.0, 0.0, np.where(uz < 1.0 + 0.5 ** self.theta, 1.0, tail))
        return np.minimum(ranks.astype(np.int64), self.n_items - 1)


def fnvhash64(values: np.ndarray) -> np.ndarray:
    """Return YCSB's ``Utils.fnvhash64`` of each int64: FNV-1a 64 over its 8 bytes, low first, |.|."""
    val = np.asarray(values, dtype=np.int64).astype(np.uint64)
    h = np.full(val.shape, FNV_OFFSET_BASIS_64, dtype=np.uint64)
    prime = np.uint64(FNV_PRIME_64)
    for _ in range(8):
        h = (h ^ (val & np.uint64(0xFF))) * prime  # wraps mod 2^64, as Java's long
        val = val >> np.uint64(8)
    return np.abs(h.view(np.int64))


class ScrambledZipfianGenerator:
    """YCSB's ScrambledZipfianGenerator: item = fnvhash64(Zipfian rank over 10^16) mod item_count.

    The Zipfian runs over 10^16 + 1 items with YCSB's precomputed zeta (theta 0.99), so the
    hottest item gets 1/26.469 = 3.78% of draws for any item count, and hashing scatters the
    popular items over the table. Source: YCSB core/.../generator/ScrambledZipfianGenerator.java.
    """

    def __init__(self, item_count: int) -> None:
        self.item_count = item_count
        self.zipfian = ZipfianGenerator(SCRAMBLED_ITEM_COUNT + 1, ZIPF_THETA, SCRAMBLED_ZETAN)

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """Return ``size`` items (int64 in [0, item_count)) drawn with ``rng``."""
        return np.fmod(fnvhash64(self.zipfian.sample(rng, size)), self.item_count)


class TableKeys:
    """The table's keys 0..last: loaded rows, then inserts appended in order.

    ``last`` is the highest key below which every insert has committed, as YCSB's
    AcknowledgedCounterGenerator: reads and scans choose keys up to it, so they never miss a
    row another client is still inserting. Thread-safe.
    """

    def __init__(self, record_count: int) -> None:
        self.last = record_count - 1
        self._next = record_count
        self._done: set[int] = set()
        self._lock = threading.Lock()

    def allocate(self) -> int:
        """Return the next key to insert."""
        with self._lock:
            key, self._next = self._next, self._next + 1
            return key

    def acknowledge(self, key: int) -> None:
        """Mark ``key``'s insert committed; advance ``last`` over every contiguous committed key."""
        with self._lock:
            self._done.add(key)
            while self.last + 1 in self._done:
                self._done.remove(self.last + 1)
                self.last += 1


class KeyChooser:
    """YCSB's request distributions over a growing table: uniform, zipfian or latest.

    ``candidates`` draws a batch ahead (vectorized); ``key`` turns one candidate into a key
    at the moment of the operation: uniform and zipfian candidates above ``last`` are drawn
    again (CoreWorkload.nextKeynum), a latest candidate is an offset back from ``last``
    (SkewedLatestGenerator: last - Zipfian(last)).
    """

    def __init__(self, distribution: str, record_count: int, insert_share: float) -> None:
        self.distribution = distribution
        self.record_count = record_count
        # CoreWorkload: ScrambledZipfianGenerator(0, recordcount + expectednewkeys), where
        # expectednewkeys = operationcount * insertproportion * 2, with operationcount =
        # recordcount as in YCSB's workload files; the maximum is inclusive, hence + 1.
        expected_new = int(record_count * insert_share * 2.0)
        self.scrambled = ScrambledZipfianGenerator(record_count + expected_new + 1)
        self._latest = (ZipfianGenerator(max(1, record_count - 1)) if distribution == "latest"
                        else None)
        self._lock = threading.Lock()

    def candidates(self, rng: np.random.Generator, size: int, last: int) -> np.ndarray:
        """Return ``size`` candidates for a table whose keys are 0..``last``."""
        if self.distribution == "uniform":  # UniformLongGenerator over the loaded records
            return rng.integers(0, self.record_count, size)
        if self.distribution == "zipfian":
            return self.scrambled.sample(rng, size)
        with self._lock:
            self._latest = self._latest.grown(max(1, last, self._latest.n_items))
            return self._latest.sample(rng, size)

    def key(self, candidate: int, last: int, rng: np.random.Generator) -> int:
        """Return the key for ``candidate`` given the committed keys 0..``last``."""
        if self.distribution == "latest":
            return max(0, last - candidate)
        while candidate > last:
            candidate = int(self.candidates(rng, 1, last)[0])
        return candidate


def loaded_value(key: int, field_bytes: int) -> str:
    """Return the field loaded for ``key``: its digits repeated to ``field_bytes`` chars."""
    text = f"{key}."
    return (text * (field_bytes // len(text) + 1))[:field_bytes]


def updated_value(thread: int, seq: int, field_bytes: int) -> str:
    """Return the field an update writes: "u<thread>:<seq>:" padded with "x"."""
    return f"u{thread}:{seq}:".ljust(field_bytes, "x")[:max(field_bytes, 1)]


def wait_until(due_ns: int, clock: Any = time.perf_counter_ns) -> None:
    """Sleep until ``clock`` reads ``due_ns``; spin the last millisecond on ``time.sleep(0)``.

    ``time.sleep(0)`` releases the GIL on every turn, so the other clients' SQLite calls can
    return while this one spins (a bare busy loop would hold the GIL for up to 5 ms).
    """
    left = due_ns - clock()
    if left > SPIN_NS:
        time.sleep((left - SPIN_NS) / 1e9)
    while clock() < due_ns:
        time.sleep(0)


@dataclass(frozen=True, slots=True)
class Job:
    """One ``run(n)``, shared by every client: the operations and where their times go (ns)."""

    ops: list[int]
    candidates: list[int]
    scan_lengths: list[int]
    start_ns: int
    rate: float  # transactions/s; 0 = closed loop
    response_ns: np.ndarray
    service_ns: np.ndarray
    lag_ns: np.ndarray
    next_index: Any  # itertools.count shared by the clients of a closed loop

    @property
    def size(self) -> int:
        """Return the number of operations."""
        return len(self.ops)


@dataclass(frozen=True, slots=True)
class ThreadResult:
    """What one client thread did in one run: counts and the first error's text."""

    reads: int
    read_misses: int
    other_misses: int
    sql_errors: int
    first_error: str

    @property
    def errors(self) -> int:
        """Return all failed transactions: missed reads, other missed rows, SQL errors."""
        return self.read_misses + self.other_misses + self.sql_errors


class _Client(threading.Thread):
    """A client thread with its own connection; runs the jobs put on its queue."""

    def __init__(self, index: int, clients: int, path: Path, params: Mapping[str, Any],
                 keys: TableKeys, chooser: KeyChooser, seed: list[int]) -> None:
        super().__init__(name=f"db.sqlite-client-{index}", daemon=True)
        self.index = index
        self.clients = clients
        self.jobs: queue.Queue = queue.Queue()
        self.results: queue.Queue = queue.Queue()
        self._path = path
        self._busy = params["busy_timeout_ms"]
        self._sync = params["synchronous"]
        self._field_bytes = params["field_bytes"]
        self._keys = keys
        self._chooser = chooser
        self._rng = np.random.default_rng([*seed, index])  # redraws of rejected candidates
        self.updates_done = 0

    def run(self) -> None:
        conn = sqlite3.connect(self._path, timeout=self._busy / 1000, isolation_level=None)
        try:
            conn.execute(f"PRAGMA busy_timeout={self._busy}")
            conn.execute(f"PRAGMA synchronous={self._sync}")
            while (job := self.jobs.get()) is not None:
                try:
                    self.results.put((self._work(conn, job), None))
                except Exception as exc:  # noqa: BLE001 - handed to run(), which raises it
                    self.results.put((None, exc))
        finally:
            conn.close()

    def _indexes(self, job: Job) -> Any:
        """Yield this client's operation indexes: a shared counter (closed) or i mod clients (open)."""
        if job.rate > 0:
            yield from range(self.index, job.size, self.clients)
            return
        while (i := next(job.next_index)) < job.size:
            yield i

    def _work(self, conn: sqlite3.Connection, job: Job) -> ThreadResult:
        clock = time.perf_counter_ns
        ready = job.start_ns  # closed: the end of this client's previous op; open: when it was free
        reads = read_misses = other_misses = sql_errors = 0
        first = ""
        for i in self._indexes(job):
            due = ready
            if job.rate > 0:
                due = job.start_ns + int(i * 1e9 / job.rate)
                wait_until(due, clock)
            op, last = job.ops[i], self._keys.last
            key = (self._keys.allocate() if op == INSERT
                   else self._chooser.key(job.candidates[i], last, self._rng))
            value = self._value(op, key)
            t0 = clock()
            try:
                ok = self._execute(conn, op, key, value, job.scan_lengths[i], last)
            except sqlite3.Error as exc:
                ok = True  # counted here, not as a miss
                sql_errors += 1
                first = first or f"{OP_NAMES[op]} of key {key}: {exc}"
            t1 = clock()
            job.response_ns[i], job.service_ns[i] = t1 - due, t1 - t0
            job.lag_ns[i] = t0 - max(due, ready)
            ready = t1
            if op == INSERT and ok:
                self._keys.acknowledge(key)
            reads += op == READ
            if not ok:
                read_misses += op == READ
                other_misses += op != READ
                first = first or f"{OP_NAMES[op]} of key {key} found no row"
        return ThreadResult(reads, read_misses, other_misses, sql_errors, first)

    def _value(self, op: int, key: int) -> str:
        """Return the field an update, insert or read-modify-write writes ("" for the others)."""
        if op in (UPDATE, RMW):
            self.updates_done += 1
            return updated_value(self.index, self.updates_done - 1, self._field_bytes)
        return loaded_value(key, self._field_bytes) if op == INSERT else ""

    def _execute(self, conn: sqlite3.Connection, op: int, key: int, value: str,
                 scan_length: int, last: int) -> bool:
        """Run one transaction; return False when its check fails (a missing or short row)."""
        fb = self._field_bytes
        if op == READ:
            row = conn.execute(SELECT_ONE, (key,)).fetchone()
            return row is not None and len(row[0]) == fb
        if op == UPDATE:
            return conn.execute(UPDATE_ONE, (value, key)).rowcount == 1
        if op == INSERT:
            return conn.execute(INSERT_ONE, (key, value)).rowcount == 1
        if op == SCAN:
            rows = conn.execute(SCAN_FROM, (key, scan_length)).fetchall()
            committed = [k for k, _ in rows if k <= last]  # later inserts may commit out of order
            return (committed == list(range(key, min(key + scan_length, last + 1)))
                    and all(len(field) == fb for _, field in rows))
        conn.execute("BEGIN IMMEDIATE")  # read-modify-write: one transaction, writer lock first
        try:
            row = conn.execute(SELECT_ONE, (key,)).fetchone()
            ok = (row is not None and len(row[0]) == fb
                  and conn.execute(UPDATE_ONE, (value, key)).rowcount == 1)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return ok


@register
class SQLiteYCSB(Workload):
    """YCSB core workloads A-F on a SQLite file in WAL mode, one connection per client thread.

    One op is one SQL transaction, each autocommit: a read SELECTs one row by primary key, an
    update UPDATEs one row's field, an insert appends the row after the last key, a scan
    SELECTs 1-100 rows (uniform) in key order from a start key, and a read-modify-write
    SELECTs then UPDATEs one row inside one BEGIN IMMEDIATE ... COMMIT. Every op is checked
    (a missing row, a short field, a gap in a scan is an error) and any error fails the sample.
    Keys (``distribution``; "ycsb" = the workload file's: latest for D, zipfian otherwise):
    uniform over the loaded rows; YCSB's scrambled Zipfian (theta 0.99 over 10^16 items,
    FNV-1a hashed onto record_count + expected inserts + 1 items, drawn again above the
    last committed key; the hottest key gets ~3.8% of requests, as in YCSB); or latest
    (last committed key minus a Zipfian offset).
    Timing: ``latency`` is the response time, from when the client was ready to issue (closed
    loop: the end of its previous transaction, or the sample start) or from the intended
    start (open loop at ``rate``: transaction i is due at start + i/rate on client i mod
    connections); it includes waits for the GIL and for the other clients, so throughput x
    mean latency = connections (Little's law) in a closed loop. ``service_time`` spans the
    SQLite calls only; ``send_lag`` is how late a client issued behind when it could have.
    Source: YCSB (Cooper et al. 2010), workloads A-F and CoreWorkload's generators;
    ZipfianGenerator after Gray et al. 1994.
    """

    name = "db.sqlite"
    summary = "YCSB A-F and 2:1 key-value transactions on a SQLite WAL database"
    source = "YCSB (Cooper et al. 2010): CoreWorkload's mixes and scrambled Zipfian/latest keys"
    op = "one SQL transaction (a read, update, insert, scan or read-modify-write of rows)"
    throughput = Metric("tx_per_s", "transactions/s", "SQL transactions completed per second")
    metrics = (
        Metric("read_fraction", "fraction", "share of transactions that were reads", better=None),
        Metric("errors", "count", "transactions whose check failed: a missing row, a short "
               "field, a gap in a scan (fail the sample)", better="lower"),
    )
    latencies = (
        Metric("latency", "ms", "transaction response time, from when its client was ready "
               "(open loop: from its intended start)", better="lower"),
        Metric("service_time", "ms", "time inside a transaction's SQLite calls", better="lower"),
        Metric("send_lag", "ms", "client lateness behind when it could have issued",
               better="lower"),
    )
    params = (
        Param("record_count", 100_000, "rows loaded", "rows", minimum=1, maximum=100_000_000,
              split=True),
        Param("field_bytes", 100, "length of each row's field", "B", minimum=1,
              maximum=1 << 20),
        Param("workload", "A", "YCSB A 50/50 read/update, B 95/5, C read only, D 95/5 "
              "read/insert latest, E 95/5 scan/insert, F 50/50 read/read-modify-write; "
              "RW21 2:1 read/update", "", choices=tuple(MIXES)),
        Param("distribution", "ycsb", "key distribution; ycsb = the workload's (latest for "
              "D, zipfian otherwise)", "", choices=("ycsb", "uniform", "zipfian", "latest")),
        Param("connections", 2, "client threads, each with its own connection", "",
              minimum=1, maximum=256),
        Param("rate", 0.0, "open-loop arrival rate over all connections; 0 = closed loop",
              "transactions/s", minimum=0.0, maximum=1e7),
        Param("busy_timeout_ms", 5000, "SQLite busy timeout", "ms", minimum=0,
              maximum=600_000),
        Param("synchronous", "NORMAL", "PRAGMA synchronous (NORMAL is WAL's usual)", "",
              choices=("OFF", "NORMAL", "FULL")),
        Param("seed", 0, "seed of the operation mix and the key choices", "", minimum=0),
    )

    @classmethod
    def extra_metrics(cls, params: Mapping[str, Any]) -> tuple[Metric, ...]:
        return (*cls.metrics, BACKLOG) if params.get("rate", 0) > 0 else cls.metrics

    _dir: Path | None = None  # folder of the database file; None before setup
    _clients: tuple[_Client, ...] = ()

    def setup(self, ctx: WorkerContext) -> None:
        p = self.params
        self._dir = Path(tempfile.mkdtemp(prefix="topobench-db-", dir=ctx.scratch_dir))
        self.path = self._dir / "ycsb.sqlite"
        self._load(p["record_count"], p["field_bytes"])
        self._rng = np.random.default_rng([p["seed"], ctx.worker_rank])
        mix = MIXES[p["workload"]]
        cumulative = np.cumsum(mix) / sum(mix)
        cumulative[cumulative > 1 - 1e-9] = 1.0  # rounding never picks an op of share 0
        self._cumulative = cumulative
        self.table = TableKeys(p["record_count"])
        self.chooser = KeyChooser(self.distribution, p["record_count"], mix[INSERT])
        self._clients = tuple(
            _Client(i, p["connections"], self.path, p, self.table, self.chooser,
                    [p["seed"], ctx.worker_rank])
            for i in range(p["connections"]))
        for client in self._clients:
            client.start()

    @property
    def distribution(self) -> str:
        """Return the key distribution in force (``ycsb`` resolved per workload)."""
        d = self.params["distribution"]
        return YCSB_DISTRIBUTION.get(self.params["workload"], "zipfian") if d == "ycsb" else d

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
        """Return ``size`` keys from the configured distribution for the table as it is now."""
        last = self.table.last
        cand = self.chooser.candidates(self._rng, size, last)
        return np.array([self.chooser.key(int(c), last, self._rng) for c in cand], np.int64)

    def run(self, n: int) -> Measurement:
        ops = np.minimum(np.searchsorted(self._cumulative, self._rng.random(n), side="right"),
                         RMW)
        job = Job(ops=ops.tolist(),
                  candidates=self.chooser.candidates(self._rng, n, self.table.last).tolist(),
                  scan_lengths=self._rng.integers(1, MAX_SCAN_LENGTH + 1, n).tolist(),
                  start_ns=time.perf_counter_ns(), rate=self.params["rate"],
                  response_ns=np.zeros(n, np.int64), service_ns=np.zeros(n, np.int64),
                  lag_ns=np.zeros(n, np.int64), next_index=itertools.count())
        for client in self._clients:
            client.jobs.put(job)
        outcomes = [client.results.get() for client in self._clients]
        for _, exc in outcomes:
            if exc is not None:
                raise RuntimeError(f"db.sqlite: a client thread failed: {exc!r}") from exc
        return Measurement(ops=n, finish=lambda: self._summary(job, [res for res, _ in outcomes], n))

    def _summary(self, job: Job, results: list[ThreadResult], n: int) -> Measurement:
        """Return the sample's figures and histograms (after the clock stopped); raise on a failed check."""
        errors = sum(r.errors for r in results)
        if errors:
            first = next(r.first_error for r in results if r.first_error)
            raise RuntimeError(
                f"db.sqlite: {sum(r.read_misses for r in results)} reads missed loaded keys, "
                f"{sum(r.other_misses for r in results)} other transactions found no row and "
                f"{sum(r.sql_errors for r in results)} SQL errors in {n} transactions; "
                f"first: {first}")
        metrics = {"read_fraction": sum(r.reads for r in results) / n if n else math.nan,
                   "errors": float(errors)}
        if job.rate > 0:
            metrics[BACKLOG.name] = backlog_growth(job.response_ns, job.rate)
        return Measurement(
            ops=n,
            metrics=metrics,
            histograms={"latency": LatencyHistogram.of(job.response_ns),
                        "service_time": LatencyHistogram.of(job.service_ns),
                        "send_lag": LatencyHistogram.of(job.lag_ns)})

    def teardown(self) -> None:
        started = [client for client in self._clients if client.ident is not None]
        for client in started:
            client.jobs.put(None)
        for client in started:
            client.join()
        self._clients = ()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
        self._dir = None
