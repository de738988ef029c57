"""Resource sampling (CPU%, RSS), the ``resources`` table and the unstable/noisy/underused flags."""

from __future__ import annotations

import os
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from cluster.resource_monitor import RESOURCE_COLUMNS, ResourceMonitor
from orchestrator.cli import app
from orchestrator.query import run_query
from orchestrator.resources import (
    FlagThresholds,
    cpu_means,
    flag_notes,
    flag_trial,
    peak_rss,
    resource_columns,
)
from orchestrator.store import RESOURCES_SCHEMA, SCHEMAS, TRIALS_SCHEMA


def resource_table(rows: list[tuple[int, str, int | None, float]]) -> pa.Table:
    return pa.Table.from_pylist([dict(zip(RESOURCE_COLUMNS.names, r)) for r in rows], RESOURCE_COLUMNS)


# --- pure functions on hand-made inputs ---------------------------------------------------

def test_flag_trial_quiet_trial_has_no_flags():
    assert flag_trial({0: 99.0, 1: 97.0, 2: 10.0, 3: 49.9}, {0, 1}, 0.01) == ()


def test_flag_trial_unstable_above_max_cv_only():
    assert flag_trial({}, (), 0.051) == ("unstable",)
    assert flag_trial({}, (), 0.05) == ()
    assert flag_trial({}, (), None) == ()
    assert flag_trial({}, (), 0.08, FlagThresholds(max_cv=0.10)) == ()


def test_flag_trial_noisy_when_cpu_outside_plan_is_busy():
    assert flag_trial({0: 100.0, 1: 50.1}, {0}, 0.0) == ("noisy",)
    assert flag_trial({0: 100.0, 1: 50.0}, {0}, 0.0) == ()


def test_flag_trial_underused_when_a_planned_cpu_idles():
    assert flag_trial({0: 100.0, 1: 49.0}, {0, 1}, 0.0) == ("underused",)
    # A planned CPU without utilization samples is not judged.
    assert flag_trial({0: 100.0}, {0, 1}, 0.0) == ()


def test_flag_trial_all_flags_in_order_and_keys_across_nodes():
    means = {("a", 0): 10.0, ("a", 1): 90.0, ("b", 0): 95.0}
    assert flag_trial(means, {("a", 0), ("b", 0)}, 0.2) == ("unstable", "noisy", "underused")


def test_flag_trial_unpinned_gets_no_resource_flags():
    assert flag_trial({0: 5.0, 1: 100.0}, (), 0.2) == ("unstable",)


def test_cpu_means_and_peak_rss():
    table = resource_table([
        (1, "cpu_percent", 0, 100.0), (1, "cpu_percent", 1, 20.0), (1, "rss_bytes", None, 5e6),
        (2, "cpu_percent", 0, 50.0), (2, "cpu_percent", 1, 40.0), (2, "rss_bytes", None, 7e6),
    ])
    assert cpu_means(table) == {0: 75.0, 1: 30.0}
    assert peak_rss(table) == 7e6
    assert cpu_means(resource_table([(1, "rss_bytes", None, 1.0)])) == {}
    assert peak_rss(resource_table([(1, "cpu_percent", 0, 1.0)])) is None


def test_resource_columns():
    cols = resource_columns({0: 90.0, 1: 70.0, 2: 30.0, 3: 60.0}, {0, 1}, {1: 2e6, 0: 3e6})
    assert cols == {"pinned_cpu_percent": 80.0, "idlest_pinned_cpu_percent": 70.0,
                    "busiest_other_cpu_percent": 60.0, "peak_rss_bytes": 3_000_000,
                    "worker_peak_rss_bytes": [3_000_000, 2_000_000]}
    empty = resource_columns({}, (), {0: None})
    assert empty == {"pinned_cpu_percent": None, "idlest_pinned_cpu_percent": None,
                     "busiest_other_cpu_percent": None, "peak_rss_bytes": None,
                     "worker_peak_rss_bytes": [None]}


def test_flag_notes_name_the_figures():
    row = {"metric": "ops", "cv": 0.123, "flags": ["unstable", "noisy", "underused"],
           "busiest_other_cpu_percent": 81.2, "idlest_pinned_cpu_percent": 12.4}
    assert flag_notes(row) == [
        "unstable: CV 12.3% of ops is above 5%; rerun with more --repetitions or --until-stable",
        "noisy: a CPU outside the plan was 81% busy (above 50%); other load shared the node",
        "underused: a planned CPU was only 12% busy (below 50%); the workload waited or was not pinned",
    ]
    assert flag_notes({"flags": []}) == []


def test_schemas_are_additive():
    assert SCHEMAS["resources"] is RESOURCES_SCHEMA
    assert TRIALS_SCHEMA.names[-9:] == ["stop_reason", "measure_s", "pinned_cpu_percent",
                                        "idlest_pinned_cpu_percent", "busiest_other_cpu_percent",
                                        "peak_rss_bytes", "worker_peak_rss_bytes", "flags", "target"]


# --- the monitor thread, without Ray --------------------------------------------------------

def test_monitor_samples_cpus_and_rss_while_busy():
    monitor = ResourceMonitor(interval_s=0.05, record_cpus=True)
    assert monitor.stop().num_rows == 0  # never started: empty
    monitor.start()
    end = time.perf_counter() + 0.4
    while time.perf_counter() < end:
        pass
    table = monitor.stop()
    assert not monitor.running
    assert table.schema.equals(RESOURCE_COLUMNS)
    rows = table.to_pylist()
    cpu_rows = [r for r in rows if r["kind"] == "cpu_percent"]
    rss_rows = [r for r in rows if r["kind"] == "rss_bytes"]
    assert len(rss_rows) >= 4 and all(r["value"] > 0 and r["cpu"] is None for r in rss_rows)
    assert {r["cpu"] for r in cpu_rows} >= set(range(1))
    assert all(0.0 <= r["value"] <= 100.0 for r in cpu_rows)
    assert [r["t_ns"] for r in rows] == sorted(r["t_ns"] for r in rows)


def test_monitor_reads_a_busy_pinned_cpu_as_busy_from_the_first_sample():
    # Regression: psutil 7 keeps cpu_percent's baseline per thread; priming it in another
    # thread made the first reading 0% and halved a busy CPU's mean.
    before = os.sched_getaffinity(0)
    cpu = min(before)
    os.sched_setaffinity(0, {cpu})
    try:
        monitor = ResourceMonitor(interval_s=0.05, record_cpus=True)
        monitor.start()
        end = time.perf_counter() + 0.3
        while time.perf_counter() < end:
            pass
        rows = monitor.stop().to_pylist()
    finally:
        os.sched_setaffinity(0, before)
    busy = [r["value"] for r in rows if r["kind"] == "cpu_percent" and r["cpu"] == cpu]
    assert len(busy) >= 3
    assert min(busy) > 80.0, busy


def test_monitor_without_cpus_records_only_rss():
    monitor = ResourceMonitor(interval_s=0.02)
    monitor.start()
    time.sleep(0.1)
    kinds = set(monitor.stop()["kind"].to_pylist())
    assert kinds == {"rss_bytes"}


# --- end to end on real Ray -------------------------------------------------------------------

@pytest.mark.ray
def test_run_stores_resources_and_trial_figures(ray_local, tmp_path):
    result = CliRunner().invoke(app, [
        "run", "cpu.sqrt_mod", "--workers", "2", "--repetitions", "4", "--min-time", "0.1",
        "--resource-interval", "0.05", "--param", "cpu.sqrt_mod.elements=4096",
        "--results", str(tmp_path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "peak RSS" in " ".join(result.output.split())

    files = list((tmp_path / "resources").rglob("trial-*.parquet"))
    assert len(files) == 1  # one node, one trial
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
