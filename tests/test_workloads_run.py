"""Every registered workload runs through `topobench run` with 1 and 2 workers on real Ray."""

from __future__ import annotations

import pytest
from conftest import RAY_TEST_CPUS
from dataset import run_query
from typer.testing import CliRunner

from orchestrator.cli import app
from workloads.registry import load_workloads

pytestmark = pytest.mark.ray

# Small settings per workload so the whole matrix stays near a minute on 2 cores.
TINY: dict[str, list[str]] = {
    "cpu.sqrt_mod": ["elements=4096"],
    "cpu.matmul": ["n=64"],
    "memory.stream": ["size_mib=8"],
    "memory.random_access": ["working_set=1MiB"],
    "memory.alloc": ["size_mib=8"],
    "cache.lru": ["keys=2000", "sequence=4096"],
    "gc.churn": ["graph_nodes=500"],
    "io.sequential": ["size_mib=2", "block_kib=256"],
    "db.sqlite": ["record_count=2000"],
    "net.http": ["concurrency=2"],
    "command": ["cmd=true"],
    "memory.latency": ["working_set=64KiB", "hops=1024"],
    "cpu.c2c": [],
}
THREADS = {"cpu.c2c": 2}  # a pair of CPUs per worker: on this 2-CPU machine, one worker only


def test_every_workload_has_tiny_settings():
    assert set(TINY) == set(load_workloads())


@pytest.mark.parametrize("workload, workers", [(w, n) for w in sorted(TINY) for n in (1, 2)
                                               if n * THREADS.get(w, 1) <= RAY_TEST_CPUS])
def test_workload_runs_and_lands_in_tables(ray_local, tmp_path, workload, workers):
    threads = THREADS.get(workload, 1)
    params = [a for p in TINY[workload] for a in ("--param", f"{workload}.{p}")]
    result = CliRunner().invoke(app, ["run", workload, "--workers", str(workers), "--invocations", "1", "--repetitions", "2",
                                      "--warmup", "0", "--min-time", "0.01", "--results", str(tmp_path),
                                      "--threads-per-worker", str(threads), *params], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    primary = load_workloads()[workload].throughput.name
    rows = run_query(tmp_path, f"""
        SELECT count(*) AS n, count(DISTINCT worker_rank) AS workers, min(value) AS lo
        FROM samples WHERE metric = '{primary}' AND NOT warmup""").to_pylist()[0]
    assert rows == {"n": 2 * workers, "workers": workers, "lo": rows["lo"]} and rows["lo"] > 0
    trial = run_query(tmp_path, f"SELECT status, n FROM trials WHERE metric = '{primary}'").to_pylist()
    assert trial == [{"status": "ok", "n": 2}]  # n counts rounds: 2 rounds of every worker
