"""`topobench run` end to end on a real embedded Ray: every table's rows, types and meaning."""

from __future__ import annotations

import os

import pyarrow.parquet as pq
import pytest
from dataset import run_query
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.store.schemas import SCHEMA_VERSION, SCHEMAS

pytestmark = pytest.mark.ray

# Small sizes so each trial takes a second or two on a 2-core machine.
TINY = {
    "cpu.sqrt_mod": ["cpu.sqrt_mod.elements=4096"],
    "memory.stream": ["memory.stream.size_mib=8"],
    "cache.lru": ["cache.lru.keys=2000", "cache.lru.sequence=4096"],
}


def run_cli(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def tiny_args(workload: str) -> list[str]:
    out = []
    for p in TINY.get(workload, []):
        out += ["--param", p]
    return out


@pytest.mark.parametrize("workload", sorted(TINY))
def test_two_workers_fill_every_table(ray_local, tmp_path, workload):
    result = run_cli("run", workload, "--workers", "2", "--invocations", "1", "--repetitions", "3", "--min-time", "0.02",
                     "--results", str(tmp_path), *tiny_args(workload))
    assert result.exit_code == 0, result.output
    assert "complete" in result.output

    for name, schema in SCHEMAS.items():
        if name not in ("runs", "nodes", "trials", "workers", "samples", "resources"):
            continue
        files = list((tmp_path / name).rglob("*.parquet"))
        assert files, f"no {name} file written"
        for f in files:
            meta = pq.read_schema(f).metadata
            assert meta[b"topobench.schema_version"] == str(SCHEMA_VERSION).encode()
            assert pq.read_schema(f).remove_metadata().equals(schema), f"{name} schema differs"

    runs = run_query(tmp_path, "SELECT status, trials_total, trials_failed FROM runs").to_pylist()
    assert runs == [{"status": "complete", "trials_total": 1, "trials_failed": 0}]

    per_worker = run_query(tmp_path, """
        SELECT worker_rank, any_value(cpus) AS cpus, count(DISTINCT cpus) AS cpu_sets,
               count(*) FILTER (WHERE NOT warmup) AS measured, count(*) FILTER (WHERE repetition < 0) AS warm
        FROM samples WHERE metric = (SELECT metric FROM trials LIMIT 1)
        GROUP BY worker_rank ORDER BY worker_rank""").to_pylist()
    assert [w["worker_rank"] for w in per_worker] == [0, 1]
    assert all(w["cpu_sets"] == 1 and len(w["cpus"]) == 1 for w in per_worker)
    assert per_worker[0]["cpus"] != per_worker[1]["cpus"], "workers must be pinned to distinct CPUs"
    assert all(w["measured"] == 3 and w["warm"] == 1 for w in per_worker)

    trials = run_query(tmp_path, "SELECT * FROM trials ORDER BY metric").to_pylist()
    primary = [t for t in trials if t["aggregate_throughput"] is not None]
    assert len(primary) == 1
    t = primary[0]
    assert t["status"] == "ok" and t["workers"] == 2 and t["n"] == 3  # 3 rounds, each of both workers
    assert 0.0 < t["overlap"] <= 1.0
    assert t["min"] <= t["median"] <= t["max"]
    assert t["aggregate_throughput"] > 0
    # The headline is the median over rounds of each round's mean over the workers.
    rounds = run_query(tmp_path, f"""
        SELECT repetition, avg(value) AS v FROM samples WHERE metric = '{t["metric"]}' AND NOT warmup
        GROUP BY repetition ORDER BY v""").to_pylist()
    assert t["median"] == pytest.approx(rounds[1]["v"], rel=1e-12)
    workers = run_query(tmp_path, f"SELECT worker_rank, n FROM workers WHERE metric = '{t['metric']}' "
                                  "ORDER BY worker_rank").to_pylist()
    assert workers == [{"worker_rank": 0, "n": 3}, {"worker_rank": 1, "n": 3}]

    # The throughput value of each sample is exactly ops / elapsed.
    check = run_query(tmp_path, f"""
        SELECT max(abs(value - ops / (elapsed_ns / 1e9)) / value) AS err FROM samples
        WHERE metric = '{t["metric"]}'""").to_pylist()[0]
    assert check["err"] < 1e-9


def test_stream_reports_all_four_kernels(ray_local, tmp_path):
    result = run_cli("run", "memory.stream", "--invocations", "1", "--repetitions", "2", "--min-time", "0.02",
                     "--results", str(tmp_path), *tiny_args("memory.stream"))
    assert result.exit_code == 0, result.output
    metrics = {r["metric"]: r["unit"] for r in run_query(
        tmp_path, "SELECT DISTINCT metric, unit FROM samples").to_pylist()}
    for kernel in ("copy_gbs", "scale_gbs", "add_gbs", "triad_gbs"):
        assert metrics[kernel] == "GB/s"


def test_param_reaches_the_workload(ray_local, tmp_path):
    result = run_cli("run", "cpu.sqrt_mod", "--invocations", "1", "--repetitions", "2", "--min-time", "0.02",
                     "--param", "cpu.sqrt_mod.elements=1234", "--results", str(tmp_path))
    assert result.exit_code == 0, result.output
    row = run_query(tmp_path, "SELECT DISTINCT params, ops, iterations FROM samples").to_pylist()
    assert all('"elements": 1234' in r["params"] and r["ops"] == 1234 * r["iterations"] for r in row)


def test_failing_workload_fails_trial_keeps_others(ray_local, tmp_path):
    result = run_cli("run", "command", "cpu.sqrt_mod", "--invocations", "1", "--repetitions", "2", "--min-time", "0.02",
                     "--param", "command.cmd=false", "--param", "cpu.sqrt_mod.elements=4096",
                     "--results", str(tmp_path))
    assert result.exit_code == 1
    trials = run_query(tmp_path, "SELECT workload, status, error FROM trials WHERE aggregate_throughput IS NOT NULL "
                                 "OR status = 'failed' ORDER BY workload").to_pylist()
    assert [(t["workload"], t["status"]) for t in trials] == [("command", "failed"), ("cpu.sqrt_mod", "ok")]
    assert "exit" in trials[0]["error"].lower()
    status = run_query(tmp_path, "SELECT status, trials_failed FROM runs").to_pylist()
    assert status == [{"status": "failed", "trials_failed": 1}]


def test_cores_placement_reads_back_distinct_cpus(ray_local, tmp_path):
    result = run_cli("run", "cpu.sqrt_mod", "--workers", "2", "--placement", "cores", "--invocations", "1", "--repetitions", "2",
                     "--min-time", "0.02", "--param", "cpu.sqrt_mod.elements=4096", "--results", str(tmp_path))
    assert result.exit_code == 0, result.output
    cpus = run_query(tmp_path, "SELECT DISTINCT worker_rank, cpus FROM samples ORDER BY 1").to_pylist()
    assert len(cpus) == 2 and all(len(r["cpus"]) == 1 for r in cpus)
    assert cpus[0]["cpus"] != cpus[1]["cpus"]


def test_unpinned_workers_each_get_their_own_actor(ray_local, tmp_path):
    # Regression: unpinned slots shared one pooled actor, so the second measure() found the
    # workload torn down ("'NoneType' object has no attribute 'run'").
    result = run_cli("run", "cpu.sqrt_mod", "--workers", "2", "--placement", "none", "--invocations", "1", "--repetitions", "2",
                     "--min-time", "0.02", "--param", "cpu.sqrt_mod.elements=4096", "--results", str(tmp_path))
    assert result.exit_code == 0, result.output
    rows = run_query(tmp_path, "SELECT worker_rank, count(*) AS n, any_value(cpus) AS cpus FROM samples "
                               "WHERE NOT warmup AND metric = 'element_ops_per_s' GROUP BY 1 ORDER BY 1").to_pylist()
    assert [(r["worker_rank"], r["n"]) for r in rows] == [(0, 2), (1, 2)]
    assert all(len(r["cpus"]) == len(os.sched_getaffinity(0)) for r in rows)  # unpinned: every usable CPU


def test_every_sample_is_a_synchronized_round(ray_local, tmp_path):
    result = run_cli("run", "cpu.sqrt_mod", "--workers", "2", "--invocations", "1", "--repetitions", "3", "--warmup", "2",
                     "--min-time", "0.02", "--param", "cpu.sqrt_mod.elements=4096", "--results", str(tmp_path))
    assert result.exit_code == 0, result.output
    rows = run_query(tmp_path, """
        SELECT repetition, warmup, worker_rank, iterations, start_ns, end_ns FROM samples
        WHERE metric = 'element_ops_per_s' ORDER BY repetition, worker_rank""").to_pylist()
    reps = sorted({r["repetition"] for r in rows})
    measured = sorted({r["repetition"] for r in rows if not r["warmup"]})
    assert len(measured) == 3
    # Warm-ups -W..-1, then every round in the order it ran, 0..k-1: the 3 measured ones and any that
    # missed its window (kept, not measured: warmup with its number >= 0).
    assert reps == [-2, -1, *range(max(reps) + 1)]
    assert len({r["iterations"] for r in rows}) == 1  # one common count for every worker and round
    by_rep = {rep: [r for r in rows if r["repetition"] == rep] for rep in reps}
    assert all(len(by_rep[rep]) == 2 for rep in reps)
    for rep in measured:  # as a barrier between rounds would make it: nothing of another round ran during it
        first, last = min(r["start_ns"] for r in by_rep[rep]), max(r["end_ns"] for r in by_rep[rep])
        assert all(r["end_ns"] <= first or r["start_ns"] >= last for other in reps if other != rep for r in by_rep[other])
