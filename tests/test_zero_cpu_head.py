"""A head started with ``ray start --head --num-cpus 0`` (the usual advice for large clusters) works.

A real two-node cluster from ``ray start`` subprocesses (the head with 0 CPUs, one node with 2)
and the CLI in a subprocess with ``--address``: a run places nothing on the head, a plan
that would need the head says so in one sentence, and a server on the head serves a client
on the other node.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from dataset import run_query

from cluster.local_cluster import ensure_token, make_temp_dir, start_node, stop_cluster

pytestmark = pytest.mark.ray

OBJECT_STORE = 100 * 2**20


@pytest.fixture(scope="module")
def address():
    """A head of 0 CPUs and a node of 2 CPUs, started with `ray start`; stopped without `ray stop`."""
    ensure_token()
    temp_dir, since, nodes = make_temp_dir(), time.time(), []
    try:
        nodes.append(start_node(temp_dir, num_cpus=0, object_store_bytes=OBJECT_STORE))
        nodes.append(start_node(temp_dir, num_cpus=2, head_address=nodes[0].address, object_store_bytes=OBJECT_STORE))
        yield nodes[0].address
    finally:
        stop_cluster(temp_dir, tuple(p for n in nodes for p in n.pids), sessions=[n.session for n in nodes],
                     since=since)


def topobench(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(RAY_AUTH_MODE="token", COLUMNS="200")
    return subprocess.run([sys.executable, "-m", "orchestrator.cli", *args], env=env, capture_output=True, text=True,
                          timeout=300, check=False)


TINY = ("--repetitions", "3", "--min-time", "0.02", "--warmup", "0")


def test_a_pinned_locked_run_places_nothing_on_the_head(address, tmp_path):
    done = topobench("run", "cpu.sqrt_mod", "--workers", "2", "--lock-timeout", "120", *TINY,
                     "--address", address, "--results", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    head = run_query(tmp_path, "SELECT node_id, ray_cpus FROM nodes WHERE is_head").to_pylist()
    assert [h["ray_cpus"] for h in head] == [0]
    ran = run_query(tmp_path, "SELECT DISTINCT node_id, cpus FROM samples").to_pylist()
    assert {r["node_id"] for r in ran} == {
        r["node_id"] for r in run_query(tmp_path, "SELECT node_id FROM nodes WHERE NOT is_head").to_pylist()}
    assert sorted(c for r in ran for c in r["cpus"]) == [0, 1]  # pinned, each worker its CPU (locks taken)
    assert run_query(tmp_path, "SELECT status FROM runs").to_pylist() == [{"status": "complete"}]


def test_a_plan_that_needs_the_head_is_refused_in_one_sentence(address, tmp_path):
    done = topobench("run", "cpu.sqrt_mod", "--nodes", "2", *TINY, "--address", address,
                     "--results", str(tmp_path / "r"))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "topobench: error: The plan needs 2 nodes but the cluster has 1 alive with CPUs (2 alive, 1 of them "
        "offering Ray no CPUs, such as a head started with --num-cpus 0); ask for fewer nodes (--nodes, or the "
        "sweep key nodes) or add nodes to the cluster.")
    assert not (tmp_path / "r").exists()


def test_a_server_on_the_0_cpu_head_serves_a_client_on_the_other_node(address, tmp_path):
    done = topobench("run", "net.http", "--param", "net.http.server_node=head", "--param", "net.http.concurrency=2",
                     "--placement", "none", *TINY, "--address", address, "--results", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    clients = run_query(tmp_path, "SELECT DISTINCT s.node_id, n.is_head FROM samples s JOIN nodes n USING (node_id)")
    assert clients.to_pylist() and not any(r["is_head"] for r in clients.to_pylist())
    errors = run_query(tmp_path, "SELECT median FROM trials WHERE metric = 'error_rate'").to_pylist()
    assert errors == [{"median": 0.0}]
