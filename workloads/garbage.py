"""Garbage-collector workloads: object-graph churn under CPython's cyclic collector."""

from __future__ import annotations

import gc
from collections import deque
from time import perf_counter_ns

import numpy as np

from workloads.base import Measurement, Metric, WorkerContext, Workload
from workloads.histogram import LatencyHistogram
from workloads.params import Param
from workloads.registry import register


class Node:
    """One graph node: a parent back-reference (a cycle with the parent's list) and children."""

    __slots__ = ("children", "parent")

    def __init__(self, parent: Node | None) -> None:
        self.parent = parent
        self.children: list[Node] = []


def build_graph(nodes: int, fanout: int) -> Node:
    """Return the root of a tree of ``nodes`` Nodes, each with up to ``fanout`` children.

    Every child points back at its parent, so the whole tree is one reference cycle that only
    the cyclic collector can free.
    """
    root = Node(None)
    built = [root]
    for i in range(1, nodes):
        parent = built[(i - 1) // fanout]
        child = Node(parent)
        parent.children.append(child)
        built.append(child)
    return root


class PauseRecorder:
    """A ``gc.callbacks`` hook recording each collection's pause in ns (start to stop)."""

    def __init__(self) -> None:
        self.pauses_ns: list[int] = []
        self.collected = 0
        self._start_ns = 0

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._start_ns = perf_counter_ns()
        else:
            self.pauses_ns.append(perf_counter_ns() - self._start_ns)
            self.collected += info.get("collected", 0)

    def reset(self) -> None:
        """Forget the pauses and collected count recorded so far."""
        self.pauses_ns = []
        self.collected = 0


@register
class Churn(Workload):
    """Build and drop cyclic object graphs with the collector on; objects/s and GC pauses.

    One op is one graph node built: a slotted object plus its children list, linked to its
    parent both ways (a reference cycle). Each iteration builds a tree of ``graph_nodes``
    nodes and keeps the last ``live_graphs`` trees alive, dropping the oldest, so the cyclic
    collector (thresholds as the process has them) has garbage in every generation. Every
    collection's pause comes from a ``gc.callbacks`` hook (``perf_counter_ns`` from "start"
    to "stop") into the ``gc_pause`` histogram (empty when none happened; the orchestrator
    derives its percentiles), with the count of collections and of objects they freed. The
    hook is removed in ``teardown``.
    Source: CPython's generational cyclic GC (``gc`` module; ``gc.callbacks`` since 3.3);
    churn in the spirit of pyperformance's ``gc_collect``/``gc_traversal`` benchmarks.
    """

    name = "gc.churn"
    summary = "build and drop cyclic Python object graphs with gc on: objects/s, GC pause times"
    source = "CPython cyclic GC via gc.callbacks; after pyperformance gc_collect/gc_traversal"
    op = "one graph node built (a slotted object, its children list and a parent cycle)"
    throughput = Metric("objects_per_s", "objects/s", "graph nodes built per second")
    metrics = (
        Metric("gc_collections", "collections", "collections during the sample", better=None),
        Metric("gc_collected", "objects", "objects freed by the collector during the sample",
               better=None),
    )
    latencies = (Metric("gc_pause", "ms", "collector pause", better="lower"),)
    params = (
        Param("graph_nodes", 10_000, "nodes per graph", "objects", minimum=1, maximum=1 << 24),
        Param("fanout", 4, "children per node", "", minimum=1, maximum=1 << 16),
        Param("live_graphs", 4, "graphs kept alive before the oldest is dropped", "graphs",
              minimum=0, maximum=1024),
    )

    def setup(self, ctx: WorkerContext) -> None:
        self._was_enabled = gc.isenabled()
        gc.enable()
        gc.collect()
        self._live: deque[Node] = deque(maxlen=self.params["live_graphs"] or None)
        self.recorder = PauseRecorder()
        gc.callbacks.append(self.recorder)

    def run(self, n: int) -> Measurement:
        nodes, fanout = self.params["graph_nodes"], self.params["fanout"]
        keep = self.params["live_graphs"] > 0
        live, recorder = self._live, self.recorder
        recorder.reset()
        for _ in range(n):
            root = build_graph(nodes, fanout)
            if keep:
                live.append(root)
            del root
        pauses = np.asarray(recorder.pauses_ns, dtype=np.int64)
        collected = float(recorder.collected)
        return Measurement(ops=n * nodes, finish=lambda: Measurement(
            ops=n * nodes, metrics={"gc_collections": float(pauses.size), "gc_collected": collected},
            histograms={"gc_pause": LatencyHistogram.of(pauses)}))

    def teardown(self) -> None:
        gc.callbacks.remove(self.recorder)
        self._live.clear()
        del self._live
        gc.collect()
        if not self._was_enabled:
            gc.disable()
