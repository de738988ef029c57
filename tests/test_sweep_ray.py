"""Sweeps on real multi-node Ray: ``ray.cluster_utils.Cluster`` (3 nodes of 1 CPU) and ``cluster local``.

Ray can be initialized once per process. Other modules share the session fixture
``ray_local``; this module's ``cluster`` fixture therefore shuts down whatever Ray is
connected, runs its tests against the Cluster and, if ``ray_local`` had been started,
re-initializes the same embedded Ray (same settings as conftest) on teardown, so modules
that run later keep working. The end-to-end test runs first and uses subprocesses only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import ray
from conftest import connected_cluster
from dataset import run_query

from cluster.local_cluster import processes_under
from cluster.nodes import node_order
from orchestrator.pipeline.jobs import run_benchmarks, run_sweep
from orchestrator.pipeline.request import build_request
from orchestrator.pipeline.sweep_file import parse_sweep
from orchestrator.records import Shape
from orchestrator.settings import Sampling
from orchestrator.store.writer import RunStore
from workloads.errors import UserError

pytestmark = pytest.mark.ray

OBJECT_STORE = 100 * 2**20
TINY = {"invocations": 1, "repetitions": 3, "min_time": 0.02, "warmup": 0, "placement": "none"}


def topobench(*args: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orchestrator.cli", *args], check=False, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_cluster_local_sweep_stop_end_to_end(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(TOPOBENCH_STATE_DIR=str(tmp_path / "state"), RAY_AUTH_MODE="token", COLUMNS="200")
    sweep_file = tmp_path / "sweep.toml"
    sweep_file.write_text('nodes = [1, 2]\ninvocations = 1\nrepetitions = 3\nmin_time = 0.02\nwarmup = 0\n'
                          '[workloads."cpu.sqrt_mod"]\nelements = 2048\n')
    started = topobench("cluster", "local", "--nodes", "2", "--cpus-per-node", "1", env=env)
    assert started.returncode == 0, started.stdout + started.stderr
    state = json.loads((tmp_path / "state" / "local_cluster.json").read_text())
    temp_dir = Path(state["temp_dir"])
    try:
        assert "stop with: topobench cluster stop" in started.stdout
        assert processes_under(temp_dir)
        again = topobench("cluster", "local", "--nodes", "1", env=env)
        assert again.returncode == 2 and "already running" in again.stderr
        status = topobench("cluster", "status", env=env)
        assert status.returncode == 0, status.stderr
        assert "2 alive nodes" in status.stdout
        run = topobench("sweep", str(sweep_file), "--address", state["address"],
                        "--results", str(tmp_path / "results"), env=env)
        assert run.returncode == 0, run.stdout + run.stderr
        assert "scaling of cpu.sqrt_mod over nodes" in run.stdout
        nodes = list((tmp_path / "results" / "samples").glob("run_id=*/node=*"))
        assert len(nodes) == 2
    finally:
        stop = topobench("cluster", "stop", env=env)
    assert stop.returncode == 0, stop.stderr
    assert "Stopped the local cluster" in stop.stdout
    assert processes_under(temp_dir) == ()
    assert not (tmp_path / "state" / "local_cluster.json").exists()


@pytest.fixture(scope="module")
def cluster():
    """A 3-node Cluster (1 CPU, 100 MiB object store each, the head included), connected."""
    with connected_cluster({"num_cpus": 1, "object_store_memory": OBJECT_STORE, "include_dashboard": False,
                            "_system_config": {"health_check_period_ms": 500, "health_check_failure_threshold": 3}},
                           [{"num_cpus": 1, "object_store_memory": OBJECT_STORE}] * 2) as c:
        yield c


def test_nodes_of_one_host_share_its_cpus(cluster, tmp_path):
    """Three Ray nodes on this 2-CPU host: their workers get distinct CPUs, and 3 of them do not fit."""
    three = parse_sweep({**TINY, "placement": "compact", "nodes": [1, 2, 3],
                         "workloads": {"cpu.sqrt_mod": {"elements": 2048}}})
    with pytest.raises(UserError, match=r"share CPUs 0-1; 3 workers x 1 CPU do not, 2 would"):
        run_sweep(three, None, tmp_path / "refused")
    assert not (tmp_path / "refused").exists()  # refused before any work
    spec = parse_sweep({**TINY, "placement": "compact", "repetitions": 6, "min_time": 0.05,
                        "order": "interleaved", "nodes": [1, 2], "workloads": {"cpu.sqrt_mod": {"elements": 2048}}})
    found = run_sweep(spec, None, tmp_path)
    session, analyses = found.session, found.analyses
    assert session.outcome.status == "complete"
    two = next(r.trial for r in session.outcome.records if len(r.trial.node_ids) == 2)
    cpus = run_query(tmp_path, f"SELECT node_id, any_value(cpus) AS cpus FROM samples WHERE trial_id = "
                               f"'{two.trial_id}' GROUP BY node_id").to_pylist()
    assert len(cpus) == 2 and sorted(c for r in cpus for c in r["cpus"]) == [0, 1]  # distinct CPUs
    (a,) = analyses
    assert a.dimension == "nodes" and [r.n for r in a.rows] == [1, 2]
    assert a.verdict.endswith("nodes share one host: this measures the host, not horizontal scaling")
    assert run_query(tmp_path, "SELECT count(*) AS n FROM scaling").to_pylist() == [{"n": 2}]
    assert run_query(tmp_path, "SELECT count(DISTINCT host_id) AS h, count(*) AS n FROM nodes").to_pylist() == [
        {"h": 1, "n": 3}]



def test_http_server_on_head_clients_on_other_node(cluster, tmp_path):
    # net.http with server_node=head: one shared server on the head, the worker (a client)
    # on the first other node, talking over the node IP rather than loopback.
    from cluster.placement_policy import parse_placement

    request = build_request(("net.http",), ["net.http.server_node=head", "net.http.concurrency=2"],
                            Shape(placement=parse_placement("none")),
                            Sampling(invocations=1, repetitions=2, warmup=0, min_time_s=0.02), results=tmp_path)
    session = run_benchmarks(request, None)
    assert session.outcome.status == "complete", [r.error for r in session.outcome.records]
    head = next(n["NodeID"] for n in node_order(ray.nodes()) if "node:__internal_head__" in n["Resources"])
    client_nodes = {r["node_id"] for r in run_query(tmp_path, "SELECT DISTINCT node_id FROM samples").to_pylist()}
    assert client_nodes and head not in client_nodes
    rates = [r["median"] for r in session.rows if r["metric"] == "error_rate"]
    assert rates == [0.0]


def test_unknown_server_node_is_refused_before_any_work(cluster, tmp_path):
    request = build_request(("net.http",), ["net.http.server_node=nowhere"], Shape(), Sampling(),
                            results=tmp_path / "r")
    with pytest.raises(UserError, match="net.http.server_node='nowhere' matches no node of the cluster"):
        run_benchmarks(request, None)
    assert not (tmp_path / "r").exists()


def test_removed_node_fails_its_trials_then_resume_runs_only_those(cluster, tmp_path):
    import ray

    spec = parse_sweep({**TINY, "nodes": [1, 2], "workloads": {"cpu.sqrt_mod": {"elements": [1024, 2048]}}})
    target = node_order(ray.nodes())[1]["NodeID"]  # used by the 2-node trials only
    second = next(n for n in cluster.worker_nodes if n.node_id == target)

    def remove_before_two_nodes(i, trial, result):
        if result is None and i == 1:  # the first 2-node trial: lose its second node
            cluster.remove_node(second)

    session = run_sweep(spec, None, tmp_path, on_trial=remove_before_two_nodes).session
    outcome = session.outcome
    assert outcome.status == "failed"
    status = {r.trial.trial_id: (len(r.trial.node_ids), r.error) for r in outcome.records}
    assert [n for n, e in status.values() if e is None] == [1, 1]
    errors = [e for n, e in status.values() if e is not None]
    assert len(errors) == 2 and all(errors)
    first = RunStore(tmp_path, outcome.run_id)
    rows = first.read_trials()
    failed = {r["trial_id"] for r in rows if r["status"] == "failed"}
    assert len(failed) == 2 and all(r["error"] for r in rows if r["status"] == "failed")

    started, nodes_before = first.read_run()["started_at"], {r["node_id"] for r in first.read_nodes()}
    cluster.add_node(num_cpus=1, object_store_memory=OBJECT_STORE)
    cluster.wait_for_nodes()
    resumed = run_sweep(spec, None, tmp_path, resume=outcome.run_id).session
    assert first.read_run()["started_at"] == started  # one run, resumed: its first start stays
    assert first.read_run()["command"] == "topobench sweep" and first.read_run()["resumed_by"] == ["topobench sweep"]
    assert nodes_before <= {r["node_id"] for r in first.read_nodes()}  # the removed node's row stays
    assert resumed.outcome.status == "complete" and resumed.resumed == 2
    assert {r.trial.trial_id for r in resumed.outcome.records} == failed
    rows = first.read_trials()
    assert {r["status"] for r in rows} == {"ok"} and len({r["trial_id"] for r in rows}) == 4
    # Compacted after each end: one part file per node and table, samples of all four trials in it.
    assert run_query(tmp_path, "SELECT count(DISTINCT trial_id) AS n FROM samples").to_pylist() == [{"n": 4}]


def test_capacity_per_node_count_and_the_nodes_a_load_needs(cluster, tmp_path):
    """Each node's worker drives its own one-thread server (4 ms: at most 250/s): 2 nodes carry about twice 1."""
    from typer.testing import CliRunner

    from orchestrator.analysis.capacity import BACKLOG_LIMIT
    from orchestrator.cli import app
    from orchestrator.render.report import build_report

    result = CliRunner().invoke(app, [
        "capacity", "net.http", "--slo", "p99<=40ms", "--nodes", "1,2", "--load", "600/s", "--start-rate", "100",
        "--resolution", "15%", "--min-time", "0.1", "--placement", "compact",
        "--param", "net.http.service_ms=4", "--param", "net.http.concurrency=8", "--results", str(tmp_path)],
        env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    rows = {r["n"]: r for r in run_query(tmp_path, "SELECT * FROM capacity").to_pylist()}
    assert set(rows) == {1, 2} and {r["dimension"] for r in rows.values()} == {"nodes"}
    top = 1 + BACKLOG_LIMIT  # a step passes while 99% of the offered rate is served
    assert 0.6 * 250 <= rows[1]["capacity_per_s"] <= 250 * top and 0.6 * 500 <= rows[2]["capacity_per_s"] <= 500 * top
    hosts = run_query(tmp_path, "SELECT count(DISTINCT node_id) AS n FROM workers").to_pylist()
    assert hosts == [{"n": 2}]  # the 2-node point ran a worker on each node
    assert ("A load of 600 requests/s needs 3 nodes (the search brackets give 3 at either end) at p99<=40ms; "
            "capacity over nodes fitted by a line through the origin") in result.output, \
        result.output
    report = build_report(tmp_path, "latest", tmp_path / "report")
    assert {"capacity_net_http_1.png", "capacity_net_http_2.png", "capacity_net_http_over_n.png"} <= {
        p.name for p in report.images}
