"""The resource monitor (CPU%, RSS while samples run) and the ``resources`` table of a real run."""

from __future__ import annotations

import os
import time

import pyarrow.parquet as pq
import pytest
from dataset import run_query
from typer.testing import CliRunner

from cluster.resource_monitor import RESOURCE_COLUMNS, ResourceMonitor
from orchestrator.analysis.flags import flag_trial
from orchestrator.cli import app
from orchestrator.store.schemas import RESOURCES_SCHEMA

# --- the monitor thread, without Ray --------------------------------------------------------

class FakeProcStat:
    """A /proc/stat of two CPUs whose jiffies the test advances: psutil reads it through PROCFS_PATH."""

    def __init__(self, root):
        self.root = root
        self.jiffies = {0: [0, 0], 1: [0, 0]}  # cpu: [busy (user), idle]
        self.write()

    def advance(self, busy_cpus: set[int], ticks: int = 100) -> None:
        for cpu, (busy, idle) in self.jiffies.items():
            self.jiffies[cpu] = [busy + ticks, idle] if cpu in busy_cpus else [busy, idle + ticks]
        self.write()

    def write(self) -> None:
        busy, idle = (sum(v[k] for v in self.jiffies.values()) for k in (0, 1))
        lines = [f"cpu  {busy} 0 0 {idle} 0 0 0 0 0 0"]
        lines += [f"cpu{c} {b} 0 0 {i} 0 0 0 0 0 0" for c, (b, i) in sorted(self.jiffies.items())]
        (self.root / "stat").write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("busy_in_samples, busy_in_gaps, flags", [
    ({0}, {1}, ()),  # the planned CPU works while measuring; the other only between rounds: quiet
    ({1}, {0}, ("noisy", "underused")),  # the other CPU competes while measuring; the planned one idles
])
def test_cpu_readings_cover_the_samples_only(tmp_path, monkeypatch, busy_in_samples, busy_in_gaps, flags):
    """A fake /proc/stat: each window reads 100% or 0% exactly, whatever happens in the gaps."""
    import psutil

    monitor = ResourceMonitor(interval_s=10, record_cpus=True, cpu_ids=(0, 1))  # reads the real /proc/self
    stat = FakeProcStat(tmp_path)
    monkeypatch.setattr(psutil, "PROCFS_PATH", str(tmp_path))
    for _ in range(5):  # five rounds: a sample, then a gap of three times its length
        monitor.start()
        stat.advance(busy_in_samples)
        monitor.stop()
        stat.advance(busy_in_gaps, ticks=300)
    means = monitor.cpu_means()
    assert means == {c: (100.0 if c in busy_in_samples else 0.0) for c in (0, 1)}
    rows = [r for r in monitor.table().to_pylist() if r["kind"] == "cpu_percent"]
    assert len(rows) == 10 and all(r["since_ns"] <= r["t_ns"] for r in rows)  # one reading per sample and CPU
    assert flag_trial(means, {0}, None) == flags


def test_a_missed_rounds_readings_are_left_out_of_rows_and_means(tmp_path, monkeypatch):
    """Round 1 missed its window (not measured): its CPU-busy readings count neither in the rows nor in the means."""
    import psutil

    monitor = ResourceMonitor(interval_s=10, record_cpus=True, cpu_ids=(0, 1))
    stat = FakeProcStat(tmp_path)
    monkeypatch.setattr(psutil, "PROCFS_PATH", str(tmp_path))
    for repetition, busy in ((0, {0}), (1, {0, 1}), (2, {0})):  # the missed round 1 also kept CPU 1 busy
        monitor.start(repetition)
        stat.advance(busy)
        monitor.stop()
    assert monitor.cpu_means() == {0: 100.0, 1: pytest.approx(100 / 3)}  # all rounds, as before
    assert monitor.cpu_means(leave_out=(1,)) == {0: 100.0, 1: 0.0}
    kept = monitor.table(leave_out=(1,)).to_pylist()
    cpu_rows = [r for r in kept if r["kind"] == "cpu_percent"]
    assert len(cpu_rows) == 4 and {r["value"] for r in cpu_rows if r["cpu"] == 1} == {0.0}
    rss = [r for r in kept if r["kind"] == "rss_bytes"]
    assert len(rss) == 4 and len(monitor.table().to_pylist()) == 12  # each window: 2 CPU rows, 2 RSS reads


def test_a_sample_shorter_than_a_tick_still_counts(tmp_path, monkeypatch):
    import psutil

    monitor = ResourceMonitor(record_cpus=True, cpu_ids=(0, 1))
    stat = FakeProcStat(tmp_path)
    monkeypatch.setattr(psutil, "PROCFS_PATH", str(tmp_path))
    monitor.start()
    monitor.stop()  # no tick passed: no row for it, nothing divided by zero
    monitor.start()
    stat.advance({0}, ticks=1)
    monitor.stop()
    assert monitor.cpu_means() == {0: 100.0, 1: 0.0}


def test_monitor_reads_a_busy_pinned_cpu_as_busy():
    before = os.sched_getaffinity(0)
    cpu = min(before)
    os.sched_setaffinity(0, {cpu})
    try:
        monitor = ResourceMonitor(interval_s=0.05, record_cpus=True)
        for _ in range(3):
            monitor.start()
            end = time.perf_counter() + 0.1
            while time.perf_counter() < end:
                pass
            monitor.stop()
            time.sleep(0.1)  # an idle gap: never read
    finally:
        os.sched_setaffinity(0, before)
    assert monitor.cpu_means()[cpu] > 80.0, monitor.cpu_means()
    table = monitor.table()
    assert table.schema.equals(RESOURCE_COLUMNS)
    rss = [r for r in table.to_pylist() if r["kind"] == "rss_bytes"]
    assert len(rss) >= 6 and all(r["value"] > 0 and r["cpu"] is None for r in rss)


def test_monitor_without_cpus_records_only_rss():
    monitor = ResourceMonitor(interval_s=0.02)
    monitor.start()
    time.sleep(0.1)
    monitor.stop()
    assert set(monitor.table()["kind"].to_pylist()) == {"rss_bytes"} and monitor.cpu_means() == {}


def test_reading_256_cpus_costs_little_and_happens_outside_the_sample(tmp_path, monkeypatch):
    """The window reads /proc/stat twice per sample, outside the timed region; at 256 CPUs that is cheap."""
    import psutil

    lines = ["cpu  1 0 0 1 0 0 0 0 0 0"] + [f"cpu{c} {c} 0 0 {1000 - c} 0 0 0 0 0 0" for c in range(256)]
    (tmp_path / "stat").write_text("\n".join(lines) + "\n")
    monitor = ResourceMonitor(interval_s=10, record_cpus=True, cpu_ids=range(256))
    monkeypatch.setattr(psutil, "PROCFS_PATH", str(tmp_path))
    t0 = time.perf_counter()
    for _ in range(20):
        monitor.start()
        monitor.stop()
    per_sample_s = (time.perf_counter() - t0) / 20
    assert len(monitor.cpu_means()) == 0  # the fake counters did not move: no reading to divide
    assert per_sample_s < 0.05, per_sample_s  # generous: a few ms per sample on this box


# --- end to end on real Ray -------------------------------------------------------------------

@pytest.mark.ray
def test_run_stores_resources_and_trial_figures(ray_local, tmp_path):
    result = CliRunner().invoke(app, [
        "run", "cpu.sqrt_mod", "--workers", "2", "--invocations", "1", "--repetitions", "4", "--min-time", "0.1",
        "--resource-interval", "0.05", "--param", "cpu.sqrt_mod.elements=4096",
        "--results", str(tmp_path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "peak RSS" in " ".join(result.output.split())

    files = list((tmp_path / "resources").rglob("*.parquet"))
    assert len(files) == 1  # one node: its trial files compacted into one part
    assert pq.read_schema(files[0]).remove_metadata().equals(RESOURCES_SCHEMA)

    pinned = {c for row in run_query(tmp_path, "SELECT DISTINCT cpus FROM samples").to_pylist()
              for c in row["cpus"]}
    cpu = run_query(tmp_path, """
        SELECT cpu, count(*) AS n, min(value) AS lo, max(value) AS hi, count(DISTINCT worker_rank) AS ranks
        FROM resources WHERE kind = 'cpu_percent' GROUP BY cpu ORDER BY cpu""").to_pylist()
    assert pinned <= {r["cpu"] for r in cpu}
    assert all(r["n"] >= 3 and 0.0 <= r["lo"] <= r["hi"] <= 100.0 and r["ranks"] == 0 for r in cpu)
    rss = run_query(tmp_path, """
        SELECT worker_rank, count(*) AS n, min(value) AS lo FROM resources WHERE kind = 'rss_bytes'
        GROUP BY worker_rank ORDER BY worker_rank""").to_pylist()
    assert [r["worker_rank"] for r in rss] == [0, 1]
    assert all(r["n"] >= 3 and r["lo"] > 0 for r in rss)

    rows = run_query(tmp_path, "SELECT * FROM trials").to_pylist()
    for row in rows:
        assert row["stop_reason"] == "repetitions"
        assert 0.0 <= row["pinned_cpu_percent"] <= 100.0
        assert row["busiest_other_cpu_percent"] is None  # 2 workers on 2 CPUs: nothing outside the plan
        assert len(row["worker_peak_rss_bytes"]) == 2 and row["peak_rss_bytes"] == max(row["worker_peak_rss_bytes"])
        assert set(row["flags"]) <= {"unstable", "desynchronized", "underused"}
        assert ("unstable" in row["flags"]) == (row["cv"] > 0.05)
        if row["overlap"] is not None:  # the primary metric's row: 2 workers, so judged
            assert ("desynchronized" in row["flags"]) == (row["overlap"] < 0.9)
