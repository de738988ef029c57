"""The `ray start --head` path: `topobench run --address` uses that cluster and leaves it running."""

from __future__ import annotations

import json
import os
import socket
import subprocess

import pytest

from cluster.local_cluster import (
    ensure_token,
    make_temp_dir,
    processes_under,
    start_node,
    stop_cluster,
)

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def head():
    """A real `ray start --head` cluster (2 CPUs, token auth on), stopped by its own pids."""
    ensure_token()
    temp = make_temp_dir()
    node = start_node(temp, num_cpus=2, object_store_bytes=128 * 2**20)
    yield node.address, temp
    stop_cluster(temp, node.pids)
    assert processes_under(temp) == ()


def topobench(*args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(env_extra or {})
    return subprocess.run(["topobench", *args], capture_output=True, text=True, env=env, timeout=300, check=False)


def gcs_alive(address: str) -> bool:
    host, _, port = address.rpartition(":")
    with socket.socket() as s:
        s.settimeout(3)
        return s.connect_ex((host, int(port))) == 0


@pytest.mark.parametrize("how", ["option", "env"])
def test_run_on_started_cluster_leaves_it_running(head, tmp_path, how):
    address, temp = head
    args = ["run", "cpu.sqrt_mod", "--workers", "2", "--invocations", "1", "--repetitions", "2", "--min-time", "0.02",
            "--param", "cpu.sqrt_mod.elements=4096", "--results", str(tmp_path)]
    if how == "option":
        done = topobench(*args, "--address", address)
    else:
        done = topobench(*args, env_extra={"RAY_ADDRESS": address})
    assert done.returncode == 0, done.stdout + done.stderr
    assert list((tmp_path / "samples").rglob("*.parquet"))
    # The samples come from the started cluster's node, and the cluster is still up.
    nodes = topobench("query", "SELECT DISTINCT node_id FROM samples", "--results", str(tmp_path), "--format", "csv")
    assert len(nodes.stdout.strip().splitlines()) == 2
    assert gcs_alive(address)
    assert processes_under(temp)


def test_topology_shows_every_cluster_node(head):
    address, _ = head
    done = topobench("topology", "--address", address, "--json")
    assert done.returncode == 0, done.stderr
    nodes = json.loads(done.stdout)
    assert len(nodes) == 1 and "head" in nodes[0]["name"]
    assert nodes[0]["topology"]["usable_cpus"]


def test_processes_under_never_returns_the_caller():
    # This process's own command line names the interpreter; stopping "everything under"
    # a path must never signal the caller itself.
    import sys
    from pathlib import Path

    assert os.getpid() not in processes_under(Path(sys.executable))


def test_a_raylet_port_is_refused_at_once_as_not_a_gcs(head, tmp_path):
    """A gRPC port of the cluster that is not its GCS: one sentence within seconds, not Ray's 20 s wait."""
    import sys
    import time

    address, _ = head
    ask = f"import cluster, ray; ray.init(address='{address}'); print(ray.nodes()[0]['NodeManagerPort'])"
    port = subprocess.run([sys.executable, "-c", ask], capture_output=True, text=True, check=True).stdout.split()[-1]
    raylet = f"{address.rpartition(':')[0]}:{port}"
    t0 = time.monotonic()
    done = topobench("run", "cpu.sqrt_mod", "--address", raylet, "--results", str(tmp_path / "r"))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "answers gRPC but is not a Ray GCS" in done.stderr and time.monotonic() - t0 < 15
    assert not (tmp_path / "r").exists()


def test_errors_of_ray_address_name_ray_address(tmp_path):
    done = topobench("run", "cpu.sqrt_mod", "--results", str(tmp_path), env_extra={"RAY_ADDRESS": "auto-ish"})
    assert done.returncode == 2 and "RAY_ADDRESS 'auto-ish' is not host:port" in done.stderr
