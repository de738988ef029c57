"""Tests of workloads/garbage.py: graph shape, cycles freed, pause hook, parameters, cleanup."""

from __future__ import annotations

import gc
import threading

import pytest

from workloads import UserError, WorkerContext, get_workload
from workloads.garbage import Churn, Node, PauseRecorder, build_graph
from workloads.harness import calibrate, time_run


def walk(root):
    """Return every node under ``root``, root first (breadth first)."""
    out, i = [root], 0
    while i < len(out):
        out.extend(out[i].children)
        i += 1
    return out


def test_registered():
    assert get_workload("gc.churn") is Churn


def test_graph_shape_and_cycles():
    root = build_graph(100, 3)
    nodes = walk(root)
    assert len(nodes) == 100 and root.parent is None
    assert all(len(x.children) <= 3 for x in nodes)
    assert all(c.parent is x for x in nodes for c in x.children)
    gc.collect()
    del root, nodes
    assert gc.collect() >= 200  # 100 nodes and their lists, freed only by the collector


def test_pause_recorder():
    rec = PauseRecorder()
    rec("start", {"generation": 0})
    rec("stop", {"generation": 0, "collected": 5})
    assert len(rec.pauses_ns) == 1 and rec.pauses_ns[0] >= 0 and rec.collected == 5
    rec.reset()
    assert rec.pauses_ns == [] and rec.collected == 0


def test_churn_records_pauses_and_removes_callback():
    callbacks = list(gc.callbacks)
    w = Churn({"graph_nodes": 2000, "live_graphs": 2})
    w.setup(WorkerContext())
    assert w.recorder in gc.callbacks
    m = w.run(50).finished()
    assert m.ops == 50 * 2000
    assert m.metrics["gc_collections"] > 0
    assert m.metrics["gc_collected"] > 0  # dropped graphs were cyclic garbage
    pauses = m.histograms["gc_pause"]
    assert pauses.count == m.metrics["gc_collections"]  # every collection's pause, once
    assert 0 < pauses.min_ns <= pauses.percentile_ns(50) <= pauses.max_ns
    assert set(m.histograms) == {x.name for x in Churn.latencies} == {"gc_pause"}
    assert all(x.better is None for x in Churn.metrics)
    assert len(w._live) == 2
    w.teardown()
    assert gc.callbacks == callbacks and gc.isenabled()


def test_churn_restores_disabled_gc():
    gc.disable()
    try:
        w = Churn({"graph_nodes": 10})
        w.setup(WorkerContext())
        assert gc.isenabled()
        w.teardown()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_no_pauses_without_collections():
    w = Churn({"graph_nodes": 1, "live_graphs": 0})
    w.setup(WorkerContext())
    gc.collect()
    gc.disable()  # the churn of one node would trigger no collection; make sure none happens
    try:
        m = w.run(1).finished()
    finally:
        gc.enable()
        w.teardown()
    assert m.metrics["gc_collections"] == 0 and m.histograms["gc_pause"].count == 0
    assert m.histograms["gc_pause"].percentile_ns(50) is None


def test_harness_run():
    threads = threading.active_count()
    callbacks = list(gc.callbacks)
    w = Churn({"graph_nodes": 500})
    w.setup(WorkerContext())
    n = calibrate(w.run, 0.01)
    timed = time_run(w.run, n)
    w.teardown()
    assert timed.measurement.ops == n * 500
    assert gc.callbacks == callbacks and threading.active_count() == threads
    declared = {x.name for x in Churn.metrics}
    assert set(timed.measurement.metrics) <= declared


@pytest.mark.parametrize("given", [
    {"graph_nodes": 0}, {"graph_nodes": -1}, {"fanout": 0}, {"live_graphs": -1},
])
def test_bad_params(given):
    with pytest.raises(UserError):
        Churn(given)


def test_node_is_tracked_by_gc():
    assert gc.is_tracked(Node(None))
