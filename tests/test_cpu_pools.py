"""Which nodes share CPUs: nodes of one host whose usable CPUs overlap are planned as one pool."""

from __future__ import annotations

from dataclasses import replace

import pytest

from cluster.nodes import NodeInfo
from cluster.topology import read_topology
from orchestrator.pipeline.planner import cpu_pools


@pytest.fixture(scope="module")
def node():
    topology = read_topology("/")

    def make(i: int, host: str, cpus: tuple[int, ...]) -> NodeInfo:
        return NodeInfo(f"{i:056x}", f"n{i}", f"10.0.0.{i}", False, len(cpus), replace(topology, usable_cpus=cpus),
                        {"host_id": host})
    return make


def test_nodes_of_one_host_on_the_same_cpus_pool_together_other_hosts_apart_in_node_order(node):
    a0, b1, a2, a3 = node(0, "A", (0,)), node(1, "B", (0,)), node(2, "A", (0,)), node(3, "A", (1,))
    pools = cpu_pools([a0, b1, a2, a3])
    assert [[n.hostname for n in p] for p in pools] == [["n0", "n2"], ["n1"], ["n3"]]


def test_a_node_touching_two_pools_merges_them(node):
    x, y, z = node(0, "A", (0,)), node(1, "A", (1,)), node(2, "A", (0, 1))
    assert [[n.hostname for n in p] for p in cpu_pools([x, y, z])] == [["n0", "n1", "n2"]]


def test_a_thousand_one_node_hosts_are_a_thousand_pools(node):
    nodes = [node(i, f"h{i}", (0,)) for i in range(1000)]  # was O(N^2): every node against every pool
    assert [p[0].node_id for p in cpu_pools(nodes)] == [n.node_id for n in nodes]
