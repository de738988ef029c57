"""The node agent: one actor of 0 CPUs per node of a run, placed by the run's placement group.

It reads its node's clock for the driver's offset estimates (``wall_ns``), so offsets are
measured once per run rather than once per trial.
"""

from __future__ import annotations

import time

import ray


@ray.remote(num_cpus=0)
class NodeAgent:
    """An actor of 0 CPUs on one node (its memory is reserved by its placement group bundle)."""

    def wall_ns(self) -> int:
        """Return this node's wall clock, ns since the epoch (``cluster.clock``)."""
        return time.time_ns()
