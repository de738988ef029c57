"""The run's clock book: measured once, re-checked at its interval, drift named; the driver's host is exact."""

from __future__ import annotations

import pytest
from sysfs_builder import vm_no_smt

from cluster.clock import SAME_CLOCK, ClockOffset
from cluster.environment import local_host_id
from cluster.nodes import NodeInfo
from cluster.topology import read_topology
from orchestrator.pipeline.clocks import ClockBook
from orchestrator.settings import Clocks


@pytest.fixture
def nodes(tmp_path):
    """Two nodes on other hosts and one on the driver's."""
    topo = read_topology(vm_no_smt(tmp_path, 2))
    other = [NodeInfo(f"node{i}", f"host{i}", f"10.0.0.{i}", False, 2, topo, {"host_id": f"boot-{i}"})
             for i in range(2)]
    return [*other, NodeInfo("here", "driver", "10.0.0.9", True, 2, topo, {"host_id": local_host_id()})]


class FakeRun:
    """A clock that the test moves, and a measure that returns what the test sets and counts its calls."""

    def __init__(self) -> None:
        self.now = 0.0
        self.offsets = {"node0": ClockOffset(1000, 200, 16), "node1": ClockOffset(-500_000, 300_000, 16)}
        self.asked: list[list[str]] = []

    def measure(self, node_ids):
        self.asked.append(list(node_ids))
        return {n: self.offsets[n] for n in node_ids}


def test_offsets_are_measured_once_then_again_only_after_the_recheck_interval(nodes):
    run, said = FakeRun(), []
    book = ClockBook(nodes, run.measure, Clocks(recheck_s=60.0), said.append, lambda: run.now)
    assert book.offsets() == {**run.offsets, "here": SAME_CLOCK}
    run.now = 59.0
    book.offsets()
    assert run.asked == [["node0", "node1"]]  # the driver's own host is never measured
    run.now = 60.0
    run.offsets["node0"] = ClockOffset(1400, 200, 16)  # moved 400 us: within 200 + 200
    assert book.offsets()["node0"].offset_ns == 1400
    assert len(run.asked) == 2 and said == []


def test_a_move_beyond_both_uncertainties_is_named(nodes):
    run, said = FakeRun(), []
    book = ClockBook(nodes, run.measure, Clocks(recheck_s=10.0), said.append, lambda: run.now)
    book.offsets()
    run.now, run.offsets["node1"] = 30.0, ClockOffset(1_500_000, 300_000, 16)
    assert book.offsets()["node1"].offset_ns == 1_500_000
    assert said == [("The clock of node node1 (host1) moved +2000 µs against the driver's in 30 s, more than the "
                     "±600 µs the two measurements allow; its offset is re-measured every 10 s.")]


def test_a_run_on_the_drivers_host_alone_measures_nothing(nodes):
    run = FakeRun()
    book = ClockBook(nodes[2:], run.measure)
    assert book.offsets() == {"here": SAME_CLOCK} and run.asked == []
