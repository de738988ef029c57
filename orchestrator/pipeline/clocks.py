"""Each node's clock offset to the driver: measured once per run, every node at once, re-checked for drift.

One exchange round sends a ``wall_ns`` call to every node's agent together, each stamped
when sent (t0) and when its result arrives (t1, in the reference's completion callback), so a
node's reading lies between its own t0 and t1 whatever else was in flight (Cristian 1989).
The order rotates between rounds, so every node goes out early in some; the smallest round
trip of each node is kept (``cluster.clock.estimate_offset``, NTP's minimum-delay filter).
Nodes on the driver's own machine read its clock: their offset is exactly 0.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from cluster.clock import SAME_CLOCK, ClockOffset, Exchange, estimate_offset
from cluster.environment import local_host_id
from cluster.nodes import NodeInfo
from orchestrator.pipeline.waits import Expect, Sender, gather
from orchestrator.settings import CLOCKS, DEADLINES, Clocks

Measure = Callable[[Sequence[str]], dict[str, ClockOffset]]


def _round(agents: Mapping[str, Any], order: Sequence[str], senders: Sequence[Sender]) -> dict[str, Exchange]:
    """Run one exchange with every agent at once; return each node's (t0, remote, t1)."""
    sent: dict[str, int] = {}
    arrived: dict[str, int] = {}
    refs, futures = [], []
    for node in order:
        sent[node] = time.time_ns()
        ref = agents[node].wall_ns.remote()
        future = ref.future()
        future.add_done_callback(lambda _, n=node: arrived.setdefault(n, time.time_ns()))
        refs.append(ref)
        futures.append(future)
    remote = gather(refs, None, Expect("clock readings", DEADLINES.clock_s, senders))
    concurrent.futures.wait(futures, timeout=DEADLINES.clock_s)  # the callbacks ran, or run now
    return {n: (sent[n], r, arrived.get(n, time.time_ns())) for n, r in zip(order, remote)}


def measure_offsets(agents: Mapping[str, Any], nodes: Sequence[NodeInfo], exchanges: int) -> dict[str, ClockOffset]:
    """Return the offset of every node in ``nodes`` (each with an agent), from ``exchanges`` parallel rounds."""
    order = [n.node_id for n in nodes]
    named = {n.node_id: Sender("the agent", n.node_id, n.hostname) for n in nodes}
    seen: dict[str, list[Exchange]] = {n: [] for n in order}
    for r in range(exchanges):
        shift = (r * len(order)) // max(1, exchanges)
        rotated = order[shift:] + order[:shift]
        for node, exchange in _round(agents, rotated, [named[n] for n in rotated]).items():
            seen[node].append(exchange)
    return {node: estimate_offset(found) for node, found in seen.items()}


class ClockBook:
    """The run's clock offsets by node, measured at the first use and again once older than ``recheck_s``."""

    def __init__(self, nodes: Sequence[NodeInfo], measure: Measure, settings: Clocks = CLOCKS,
                 say: Callable[[str], None] = lambda text: None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        """Keep ``nodes``: those off the driver's machine are measured with ``measure`` (their node ids)."""
        here = local_host_id()
        self._nodes = {n.node_id: n for n in nodes}
        self._remote = [n.node_id for n in nodes if n.host_id != here]
        self._measure, self._settings, self._say, self._now = measure, settings, say, monotonic
        self._offsets: dict[str, ClockOffset] = {n.node_id: SAME_CLOCK for n in nodes if n.host_id == here}
        self._at: float | None = None

    def offsets(self) -> dict[str, ClockOffset]:
        """Return every node's offset, measuring first when none is known or they are older than ``recheck_s``.

        Raises:
            WaitExpired: an agent did not answer within ``DEADLINES.clock_s``.
        """
        now = self._now()
        if self._remote and (self._at is None or now - self._at >= self._settings.recheck_s):
            fresh = self._measure(self._remote)
            if self._at is not None:
                self._tell_drift(fresh, now - self._at)
            self._offsets.update(fresh)
            self._at = now
        return dict(self._offsets)

    def _tell_drift(self, fresh: Mapping[str, ClockOffset], elapsed_s: float) -> None:
        """Say which nodes' offsets moved by more than both estimates' uncertainty."""
        for node_id, new in fresh.items():
            old = self._offsets.get(node_id)
            if old is None:
                continue
            moved = new.offset_ns - old.offset_ns
            if abs(moved) > old.uncertainty_ns + new.uncertainty_ns:
                node = self._nodes[node_id]
                self._say(f"The clock of node {node_id[:12]} ({node.hostname}) moved {moved / 1e3:+.0f} µs against "
                          f"the driver's in {elapsed_s:.0f} s, more than the ±"
                          f"{(old.uncertainty_ns + new.uncertainty_ns) / 1e3:.0f} µs the two measurements allow; "
                          f"its offset is re-measured every {self._settings.recheck_s:g} s.")

