"""Simulated nodes: a Cluster of this machine whose nodes count as hosts of their own (the testing seam).

A head of 0 CPUs and three nodes of two (logical) CPUs, each started with ``TOPOBENCH_SIMULATED_HOST``,
run the multi-host paths: per-host CPU pools, node agents in one placement group, clock
offsets measured once per run. The module's Cluster replaces the session's ``ray_local`` and
gives it back afterwards, as ``test_sweep_ray`` does.
"""

from __future__ import annotations

import pytest
import ray
from conftest import connected_cluster
from dataset import run_query

from cluster.environment import SIMULATED_HOST_ENV
from orchestrator.pipeline.jobs import run_sweep
from orchestrator.pipeline.sweep_file import parse_sweep
from orchestrator.settings import CLOCKS, ROUND_WINDOW

pytestmark = pytest.mark.ray

OBJECT_STORE = 80 * 2**20
NODES = 3


@pytest.fixture(scope="module")
def simulated():
    """A 0-CPU head and three simulated hosts of 2 CPUs each (Ray's count; they share this machine's), connected."""
    with connected_cluster({"num_cpus": 0, "object_store_memory": OBJECT_STORE, "include_dashboard": False},
                           [{"num_cpus": 2, "object_store_memory": OBJECT_STORE,
                             "env_vars": {SIMULATED_HOST_ENV: f"sim-{i}"}} for i in range(NODES)]) as c:
        yield c


def test_each_simulated_node_is_a_host_clocked_once_per_run_and_the_head_runs_nothing(simulated, tmp_path):
    spec = parse_sweep({"nodes": [1, NODES], "placement": "none", "invocations": 1, "repetitions": 3, "min_time": 0.02, "warmup": 0,
                        "workloads": {"cpu.sqrt_mod": {"elements": 2048}}})
    costs = []
    session = run_sweep(spec, None, tmp_path, on_trial=lambda i, t, r: r and costs.append(r.costs)).session
    assert session.status == "complete", [r.error for r in session.outcome.records]
    nodes = run_query(tmp_path, "SELECT node_id, host_id, is_head, ray_cpus, clock_offset_ns, clock_uncertainty_ns "
                                "FROM nodes").to_pylist()
    head = next(n for n in nodes if n["is_head"])
    others = [n for n in nodes if not n["is_head"]]
    assert head["ray_cpus"] == 0 and len({n["host_id"] for n in nodes}) == NODES + 1  # every node its own host
    assert all(n["host_id"].endswith(f"/sim-{i}") for i, n in enumerate(sorted(others, key=lambda n: n["host_id"])))
    ran_on = {r["node_id"] for r in run_query(tmp_path, "SELECT DISTINCT node_id FROM samples").to_pylist()}
    assert head["node_id"] not in ran_on and len(ran_on) == NODES
    assert run_query(tmp_path, "SELECT max(hosts) AS h FROM trials").to_pylist() == [{"h": NODES}]
    # One machine: the true offset is 0, so each estimate must hold it within its stated uncertainty.
    assert all(0 < n["clock_uncertainty_ns"] and abs(n["clock_offset_ns"]) <= n["clock_uncertainty_ns"] for n in others)
    # Every node's clock is read at the run's first trial, all nodes at once, and not again.
    assert [c.phases["clocks"].calls for c in costs] == [CLOCKS.exchanges * NODES, 0]


def test_the_driver_makes_one_call_per_node_per_batch_of_rounds_not_one_per_worker_or_round(simulated, tmp_path):
    spec = parse_sweep({"nodes": [2], "workers_per_node": 2, "placement": "none", "invocations": 2, "repetitions": 3,
                        "warmup": 1,
                        "min_time": 0.02, "workloads": {"cpu.sqrt_mod": {"elements": 2048}}})
    costs = []
    session = run_sweep(spec, None, tmp_path, on_trial=lambda i, t, r: r and costs.append(r.costs)).session
    assert session.status == "complete", [r.error for r in session.outcome.records]
    (phases,) = [c.phases for c in costs]  # one meter over both invocations
    # Each node's workers start, prepare and finish in two calls per invocation (no lock, no service: nothing
    # stands between the start and the prepare).
    assert phases["start"].calls == phases["finish"].calls == 2 * 2 and "prepare" not in phases
    counts = run_query(tmp_path, "SELECT node_id, count(DISTINCT worker_rank) AS workers, count(*) AS samples, "
                                 "list(DISTINCT invocation ORDER BY invocation) AS invocations "
                                 "FROM samples WHERE NOT warmup GROUP BY node_id").to_pylist()
    # Every worker, every round of both invocations.
    assert sorted((c["workers"], c["samples"], c["invocations"]) for c in counts) == [(2, 12, [0, 1]), (2, 12, [0, 1])]
    # 2 invocations x 2 nodes x 2 batches (the warm-up, taken together to size the window; the 3 rounds): 8
    # calls, where one per worker and round made 32; a batch whose rounds missed their window adds one re-run
    # batch (2 calls) per invocation at most ``ROUND_WINDOW.retries`` times.
    missed = run_query(tmp_path, "SELECT count(DISTINCT (invocation, repetition)) AS n FROM samples "
                                 "WHERE warmup AND repetition >= 0").to_pylist()[0]["n"]
    calls = phases["rounds"].calls
    assert calls == 8 if not missed else (calls % 2 == 0 and 8 < calls <= 8 + 2 * 2 * ROUND_WINDOW.retries)


def test_a_node_short_of_memory_for_its_agent_is_named_before_anything_is_reserved(simulated):
    from cluster.probe import probe_nodes
    from orchestrator.pipeline.agents import AGENT_MEMORY_BYTES, AgentsNotPlaced, NodeAgents

    small = simulated.add_node(num_cpus=1, object_store_memory=OBJECT_STORE, memory=AGENT_MEMORY_BYTES // 2,
                               env_vars={SIMULATED_HOST_ENV: "sim-small"})
    try:
        simulated.wait_for_nodes()
        nodes = probe_nodes(60)
        target = next(n for n in nodes if n.host_id.endswith("/sim-small"))
        groups = len(ray.util.placement_group_table())
        with pytest.raises(AgentsNotPlaced) as raised:
            NodeAgents.place(nodes, 30)
        assert str(raised.value) == (f"The node agents cannot be placed: node {target.node_id[:12]} ({target.hostname}) "
                                     "offers Ray less than 64 MiB of memory.")
        assert len(ray.util.placement_group_table()) == groups  # refused before any group was asked for
    finally:
        simulated.remove_node(small)


@pytest.mark.parametrize("where", ["bucket", "folder"])
def test_each_agent_writes_its_nodes_samples_and_the_driver_commits_them(simulated, where, request, tmp_path):
    # A folder of this machine is on every simulated node's disk, as a shared file system would be.
    results = request.getfixturevalue("s3_results") if where == "bucket" else tmp_path
    spec = parse_sweep({"nodes": [2], "workers_per_node": 1, "placement": "none", "invocations": 2,
                        "repetitions": 2, "warmup": 0, "min_time": 0.02,
                        "workloads": {"cpu.sqrt_mod": {"elements": 2048}}})
    records = []
    session = run_sweep(spec, None, results, on_trial=lambda i, t, r: r and records.append(r)).session
    assert session.status == "complete", [r.error for r in session.outcome.records]
    (record,) = records
    # Per invocation and node, a samples and a resources part that the node's agent wrote; the
    # driver wrote neither table.
    assert sorted((e.table, len(e.nodes)) for e in record.parts) == [("resources", 1)] * 4 + [("samples", 1)] * 4
    assert {n for e in record.parts for n in e.nodes} == set(record.trial.node_ids)
    assert record.tables == {"samples": {}, "resources": {}}
    stored = run_query(results, "SELECT node_id, count(*) AS n, list(DISTINCT invocation ORDER BY invocation) "
                                   "AS invocations FROM samples GROUP BY node_id").to_pylist()
    assert sorted((r["n"] > 0, r["invocations"]) for r in stored) == [(True, [0, 1])] * 2
    assert {r["node_id"] for r in stored} == set(record.trial.node_ids)


def _plain_agent_and_node():
    """Return a ``NodeAgent`` as a plain object (only its writing is under test) and a node's small part."""
    import pyarrow as pa

    from orchestrator.pipeline.node_agent import NodeAgent
    from orchestrator.records import NodeResult

    agent = object.__new__(NodeAgent.__ray_actor_class__)
    agent._node, agent._host, agent._reaches = "f" * 56, "sim-x", {}
    return agent, NodeResult("f" * 56, pa.table({"value": [1.0]}), pa.table({"value": [2.0]}), None, ("x",),
                             frozenset(), {}, {}, 0.1)


def test_an_agent_that_cannot_write_hands_its_rows_to_the_driver_with_a_sentence(s3_server):
    agent, node = _plain_agent_and_node()
    uri = s3_server.uri("r").replace(f"s3://{s3_server.BUCKET}/", "s3://no-such-bucket/")
    out = agent._write(node, uri + "&access_key=AKIDSECRET", "20261203T000000Z-abcdef", "t0001")
    assert out.parts == () and out.samples is node.samples  # the driver writes them, as without agents
    assert out.unwritten.startswith(f"node {'f' * 12} (sim-x) could not write its samples to "
                                    f"s3://no-such-bucket/r?endpoint_override={s3_server.endpoint}")
    assert "AKIDSECRET" not in out.unwritten and "give every node credentials for the bucket" in out.unwritten


def test_a_folder_an_agent_does_not_see_is_left_to_the_driver(tmp_path):
    agent, node = _plain_agent_and_node()
    # No manifest folder of this run here: the driver's folder is on another disk; nothing is written.
    out = agent._write(node, str(tmp_path), "20261203T000000Z-abcdef", "t0001")
    assert out is node and list(tmp_path.iterdir()) == []
