"""Tests of db.sqlite: YCSB A-F land and are checked, YCSB's key generators, Little's law, cleanup."""

from __future__ import annotations

import math
import re
import sqlite3
import threading

import numpy as np
import pytest

from workloads import UserError, WorkerContext
from workloads.database import (
    INSERT,
    MIXES,
    READ_SHARE,
    SCRAMBLED_ITEM_COUNT,
    SCRAMBLED_ZETAN,
    ScrambledZipfianGenerator,
    SQLiteYCSB,
    TableKeys,
    ZipfianGenerator,
    fnvhash64,
    loaded_value,
    zeta,
)
from workloads.harness import calibrate, time_run

SMALL = {"record_count": 300, "field_bytes": 40}


@pytest.fixture
def make(tmp_path):
    made = []

    def _make(**params):
        w = SQLiteYCSB({**SMALL, **params})
        w.setup(WorkerContext(scratch_dir=tmp_path))
        made.append(w)
        return w

    yield _make
    for w in made:
        if w._clients:
            w.teardown()


def _rows(w):
    conn = sqlite3.connect(w.path)
    try:
        return dict(conn.execute("SELECT key, field FROM usertable"))
    finally:
        conn.close()


def test_load_fills_every_row_in_wal_mode(make):
    w = make()
    rows = _rows(w)
    assert rows == {k: loaded_value(k, 40) for k in range(300)}
    conn = sqlite3.connect(w.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_workload_a_updates_land(make):
    w = make(workload="A", distribution="uniform", connections=1)
    m = w.run(2000).finished()
    assert m.ops == 2000 and m.metrics["errors"] == 0
    updates = w._clients[0].updates_done
    assert updates == round(2000 * (1 - m.metrics["read_fraction"]))
    assert 800 < updates < 1200
    changed = {k: v for k, v in _rows(w).items() if v != loaded_value(k, 40)}
    seqs = []
    for value in changed.values():
        match = re.fullmatch(r"u0:(\d+):x*", value)
        assert match and len(value) == 40
        seqs.append(int(match.group(1)))
    assert 0 < len(changed) <= updates
    assert max(seqs) == updates - 1  # the last update is the newest row value: it landed
    assert len(set(seqs)) == len(seqs)


def test_workload_c_only_reads(make):
    w = make(workload="C", connections=2)
    n = calibrate(w.run, 0.02)
    m = time_run(w.run, n).measurement
    assert m.metrics["read_fraction"] == 1.0
    assert _rows(w) == {k: loaded_value(k, 40) for k in range(300)}


@pytest.mark.parametrize("letter", sorted(MIXES))
def test_each_mix_runs_with_several_connections(make, letter):
    w = make(workload=letter, connections=3)
    m = time_run(w.run, 3000).measurement
    assert m.ops == 3000 and m.metrics["errors"] == 0
    assert abs(m.metrics["read_fraction"] - READ_SHARE[letter]) < 0.06
    assert set(m.histograms) == {x.name for x in SQLiteYCSB.latencies}
    assert set(m.metrics) == {x.name for x in SQLiteYCSB.metrics}
    lat, service = m.histograms["latency"], m.histograms["service_time"]
    assert lat.count == service.count == m.histograms["send_lag"].count == 3000
    assert 0 < lat.percentile_ns(50) <= lat.percentile_ns(99) <= lat.max_ns
    assert lat.mean_ns >= service.mean_ns  # response time holds the service time
    rows = _rows(w)
    inserted = len(rows) - 300
    assert inserted == (0 if MIXES[letter][INSERT] == 0 else inserted)
    assert sorted(rows) == list(range(len(rows)))  # inserts append after the last key
    assert all(rows[k] == loaded_value(k, 40) for k in range(300, len(rows)))
    assert w.table.last == len(rows) - 1
    if MIXES[letter][INSERT]:
        assert 0.03 * 3000 < inserted < 0.07 * 3000


def test_missed_read_fails_the_run(make):
    w = make(workload="C", distribution="uniform")
    conn = sqlite3.connect(w.path)
    conn.execute("DELETE FROM usertable WHERE key < 150")
    conn.commit()
    conn.close()
    with pytest.raises(RuntimeError, match=r"db.sqlite: \d+ reads missed loaded keys"):
        w.run(500).finished()


def test_zipfian_head_matches_theory():
    n, theta, draws = 1000, 0.99, 400_000
    gen = ZipfianGenerator(n, theta)
    assert gen.zetan == pytest.approx(sum(i ** -theta for i in range(1, n + 1)))
    counts = np.bincount(gen.sample(np.random.default_rng(7), draws), minlength=n)
    assert counts.size == n
    freq = counts / draws
    theory = np.arange(1, n + 1) ** -theta / gen.zetan
    for rank in (0, 1):  # exact in Gray's generator (the rest is its approximation)
        sigma = math.sqrt(theory[rank] * (1 - theory[rank]) / draws)
        assert abs(freq[rank] - theory[rank]) < 5 * sigma
    assert 0.5 * np.abs(freq - theory).sum() < 0.05  # the tail is Gray's approximation
    grown = ZipfianGenerator(500, theta).grown(n)  # zeta extended term by term, as YCSB
    assert grown.zetan == pytest.approx(gen.zetan, rel=1e-12) and grown.eta == pytest.approx(gen.eta)


def java_fnvhash64(val: int) -> int:
    """YCSB's Utils.fnvhash64, one value at a time with Java's 64-bit wrap-around."""
    h = FNV_BASIS
    for _ in range(8):
        h = ((h ^ (val & 0xFF)) * FNV_PRIME) % 2**64
        val >>= 8
    signed = h - 2**64 if h >= 2**63 else h
    return abs(signed) if signed != -(2**63) else signed


FNV_BASIS, FNV_PRIME = 0xCBF29CE484222325, 1099511628211


def test_fnvhash64_is_ycsbs():
    values = [0, 1, 2, 255, 256, 12345, 2**40 + 7, SCRAMBLED_ITEM_COUNT, 2**62 + 3]
    assert fnvhash64(np.array(values)).tolist() == [java_fnvhash64(v) for v in values]


def gray_rank_probabilities(items: int, zetan: float, ranks: int) -> np.ndarray:
    """P(rank r) for r < ``ranks`` of YCSB's ZipfianGenerator (theta 0.99), from its formula.

    Rank 0 when u*zetan < 1, rank 1 when < 1 + 2^-theta, else floor(items * (eta u - eta +
    1)^alpha), so rank >= r exactly when u >= 1 + ((r / items)^(1/alpha) - 1) / eta.
    """
    theta = 0.99
    alpha = 1 / (1 - theta)
    eta = (1 - (2 / items) ** (1 - theta)) / (1 - (1 + 0.5 ** theta) / zetan)
    u_tail = (1 + 0.5 ** theta) / zetan
    r = np.arange(ranks + 1, dtype=np.float64)
    u_at = np.clip(1 + ((r / items) ** (1 / alpha) - 1) / eta, u_tail, 1.0)
    p = np.diff(u_at)
    p[0] += 1 / zetan
    p[1] += 0.5 ** theta / zetan
    return p


def test_scrambled_zipfian_hot_keys_match_ycsb():
    # Reference: YCSB's ScrambledZipfianGenerator for the same item count, computed from its
    # formula (ZipfianGenerator over 10^16 + 1 items with ZETAN, then fnvhash64 mod items):
    # the exact mass of ranks < 2^20, plus the remaining mass spread evenly over the items.
    items, draws = 1001, 200_000  # record_count 1000 and no inserts: 1000 + 0 + 1
    p = gray_rank_probabilities(SCRAMBLED_ITEM_COUNT + 1, SCRAMBLED_ZETAN, 1 << 20)
    reference = np.bincount(fnvhash64(np.arange(p.size)) % items, weights=p, minlength=items)
    reference += (1 - p.sum()) / items
    got = np.bincount(ScrambledZipfianGenerator(items).sample(np.random.default_rng(3), draws),
                      minlength=items) / draws
    hot = np.argsort(reference)[::-1][:3]
    assert reference[hot[0]] == pytest.approx(0.039, abs=0.002)  # 1/26.47 = 3.78% plus collisions
    assert np.argmax(got) == hot[0] == fnvhash64(np.array([0]))[0] % items
    for key in hot:
        assert got[key] == pytest.approx(reference[key], rel=0.10)


def test_zipfian_keys_stay_in_the_table(make):
    w = make()
    keys = w.keys(20_000)
    assert keys.min() >= 0 and keys.max() < 300  # the item 300 (= record_count) is redrawn
    hottest = np.bincount(keys, minlength=300).argmax()
    assert hottest == fnvhash64(np.array([0]))[0] % 301


def test_latest_favours_the_newest_keys(make):
    w = make(workload="D", connections=2)
    assert w.distribution == "latest"
    w.run(2000).finished()
    last = w.table.last
    keys = w.keys(20_000)
    assert keys.max() == last and keys.min() >= 0
    assert np.mean(keys >= last - 2) > 0.05  # Zipf's head sits on the last keys
    assert np.mean(keys > last - len(_rows(w)) // 10) > 0.3


def test_table_keys_acknowledge_in_order():
    t = TableKeys(10)
    a, b, c = t.allocate(), t.allocate(), t.allocate()
    assert (a, b, c, t.last) == (10, 11, 12, 9)
    t.acknowledge(b)
    assert t.last == 9  # 10 is not committed yet: reads must not choose 11
    t.acknowledge(a)
    assert t.last == 11
    t.acknowledge(c)
    assert t.last == 12


def test_workload_f_read_modify_write_is_one_transaction(make):
    w = make(workload="F", distribution="uniform", connections=2)
    m = w.run(2000).finished()
    assert m.ops == 2000 and m.metrics["errors"] == 0
    rmw = 2000 - round(2000 * m.metrics["read_fraction"])
    assert sum(c.updates_done for c in w._clients) == rmw and 800 < rmw < 1200
    changed = [v for k, v in _rows(w).items() if v != loaded_value(k, 40)]
    assert changed and all(re.fullmatch(r"u[01]:\d+:x*", v) for v in changed)


def test_workload_e_scans_read_ranges(make):
    w = make(workload="E", connections=2)
    m = w.run(1000).finished()
    assert m.ops == 1000 and m.metrics["read_fraction"] == 0.0 and m.metrics["errors"] == 0
    # scans read 1-100 rows: their service time is well above a single-row operation's
    assert m.histograms["service_time"].percentile_ns(50) > 0


@pytest.mark.parametrize("connections", [1, 2, 4])
def test_closed_loop_obeys_littles_law(make, connections):
    # L = X W (Little 1961): every client always has one transaction in flight, so
    # throughput x mean response time = connections, GIL waits included. Each client's
    # response times tile its time from the job's start, so L cannot exceed connections; the
    # timed call also holds the job's set-up and hand-back (a few ms, more when the machine is
    # busy), which the clients do not cover: enough transactions that those edges stay small.
    w = make(workload="A", connections=connections, record_count=1000)
    timed = time_run(w.run, 30_000)
    m = timed.measurement
    throughput = m.ops / (timed.elapsed_ns / 1e9)
    in_system = throughput * m.histograms["latency"].mean_ns / 1e9
    assert 0.9 * connections <= in_system <= 1.01 * connections


def test_open_loop_keeps_the_schedule(make):
    w = make(workload="B", connections=2, rate=2000.0)
    timed = time_run(w.run, 400)
    m = timed.measurement
    assert m.ops == 400 and m.metrics["errors"] == 0
    assert timed.elapsed_ns >= 399 / 2000 * 1e9  # transaction 399 is not issued before its time
    lat, service = m.histograms["latency"], m.histograms["service_time"]
    assert lat.mean_ns >= service.mean_ns
    assert m.histograms["send_lag"].percentile_ns(50) < 1e6


def test_tiny_tables():
    assert zeta(1, 0.99) == 1.0
    for n in (1, 2, 3):
        ranks = ZipfianGenerator(n).sample(np.random.default_rng(0), 1000)
        assert ranks.min() >= 0 and ranks.max() < n


@pytest.mark.parametrize("params", [{"workload": "G"}, {"workload": "a"},
                                    {"record_count": -5}, {"record_count": 0},
                                    {"connections": 0}, {"distribution": "hotspot"},
                                    {"field_bytes": -1}, {"rate": -1.0}])
def test_bad_params_are_refused(params):
    with pytest.raises(UserError):
        SQLiteYCSB(params)


def test_teardown_leaves_no_threads_or_files(tmp_path):
    before = set(threading.enumerate())
    w = SQLiteYCSB({**SMALL, "connections": 3})
    w.setup(WorkerContext(scratch_dir=tmp_path))
    assert len(set(threading.enumerate()) - before) == 3
    w.run(300).finished()
    assert list(tmp_path.iterdir())
    w.teardown()
    assert set(threading.enumerate()) == before
    assert list(tmp_path.iterdir()) == []


def test_teardown_after_failed_setup_is_safe():
    SQLiteYCSB(SMALL).teardown()
