"""Tests of db.sqlite: updates land, reads are checked, Zipfian frequencies, cleanup."""

from __future__ import annotations

import math
import re
import sqlite3
import threading

import numpy as np
import pytest

from workloads import UserError, WorkerContext
from workloads.database import (
    READ_SHARE,
    SQLiteYCSB,
    ZipfianGenerator,
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
    m = w.run(2000)
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


@pytest.mark.parametrize("letter", sorted(READ_SHARE))
def test_each_mix_runs_with_several_connections(make, letter):
    w = make(workload=letter, connections=3)
    m = time_run(w.run, 3000).measurement
    assert m.ops == 3000 and m.metrics["errors"] == 0
    assert abs(m.metrics["read_fraction"] - READ_SHARE[letter]) < 0.06
    p = [m.metrics[f"latency_p{q}_ms"] for q in (50, 95, 99)]
    assert all(math.isfinite(x) and x > 0 for x in p) and p == sorted(p)


def test_missed_read_fails_the_run(make):
    w = make(workload="C", distribution="uniform")
    conn = sqlite3.connect(w.path)
    conn.execute("DELETE FROM usertable WHERE key < 150")
    conn.commit()
    conn.close()
    with pytest.raises(RuntimeError, match=r"db.sqlite: \d+ reads missed loaded keys"):
        w.run(500)


def test_zipfian_head_matches_theory():
    n, theta, draws = 1000, 0.99, 400_000
    gen = ZipfianGenerator(n, theta)
    assert gen.zetan == pytest.approx(sum(i ** -theta for i in range(1, n + 1)))
    counts = np.bincount(gen.sample(np.random.default_rng(7), draws), minlength=n)
    assert counts.size == n
    freq = counts / draws
    theory = np.arange(1, n + 1) ** -theta / gen.zetan
    for rank in (0, 1):  # exact in Gray's generator
        sigma = math.sqrt(theory[rank] * (1 - theory[rank]) / draws)
        assert abs(freq[rank] - theory[rank]) < 5 * sigma
    assert 0.5 * np.abs(freq - theory).sum() < 0.05  # the tail is Gray's approximation


def test_zipfian_keys_are_a_permutation_of_ranks(make):
    w = make(distribution="zipfian")
    keys = w.keys(20_000)
    assert keys.min() >= 0 and keys.max() < 300
    hottest = np.bincount(keys, minlength=300).argmax()
    assert hottest == w._perm[0]


def test_tiny_tables():
    assert zeta(1, 0.99) == 1.0
    for n in (1, 2, 3):
        ranks = ZipfianGenerator(n).sample(np.random.default_rng(0), 1000)
        assert ranks.min() >= 0 and ranks.max() < n


@pytest.mark.parametrize("params", [{"workload": "D"}, {"workload": "a"},
                                    {"record_count": -5}, {"record_count": 0},
                                    {"connections": 0}, {"distribution": "hotspot"},
                                    {"field_bytes": -1}])
def test_bad_params_are_refused(params):
    with pytest.raises(UserError):
        SQLiteYCSB(params)


def test_teardown_leaves_no_threads_or_files(tmp_path):
    before = set(threading.enumerate())
    w = SQLiteYCSB({**SMALL, "connections": 3})
    w.setup(WorkerContext(scratch_dir=tmp_path))
    assert len(set(threading.enumerate()) - before) == 3
    w.run(300)
    assert list(tmp_path.iterdir())
    w.teardown()
    assert set(threading.enumerate()) == before
    assert list(tmp_path.iterdir()) == []


def test_teardown_after_failed_setup_is_safe():
    SQLiteYCSB(SMALL).teardown()
