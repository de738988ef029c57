"""Benchmark clock offset estimation: each node's offset to the driver, and what one estimate costs.

On a 3-node ``ray.cluster_utils.Cluster`` (one host, so every node shares the driver's clock
and the true offset is 0), an actor on each node returns ``time.time_ns()``; each round
estimates every node's offset from 16 exchanges (Cristian 1989, NTP minimum-delay filter),
nodes interleaved. Prints per node the median offset, the median and best uncertainty, how
many estimates missed the true offset 0 by more than their uncertainty (should be none), and
the median wall time of one estimate. The cluster is torn down at the end.

Usage: python benchmarks/clock_offsets.py [--rounds 30] [--exchanges 16]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.pop("RAY_ADDRESS", None)

import cluster  # noqa: F401  (token authentication on, before ray is imported)
from cluster.clock import ClockOffset, measure_offset

NODES = 3
OBJECT_STORE = 100 * 2**20


def start_cluster():
    """Start a 3-node Cluster (1 CPU each, bounded object store) and connect to it."""
    import ray
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "object_store_memory": OBJECT_STORE, "include_dashboard": False})
    for _ in range(NODES - 1):
        c.add_node(num_cpus=1, object_store_memory=OBJECT_STORE)
    c.wait_for_nodes()
    ray.init(address=c.address, log_to_driver=False, configure_logging=False)
    return c


def clock_actors() -> list[tuple[str, object]]:
    """Return (node id, actor) with one wall-clock actor (0 CPUs) pinned on each alive node."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    @ray.remote(num_cpus=0)
    class Clock:
        def wall_ns(self) -> int:
            return time.time_ns()

    out = []
    for node in sorted((n for n in ray.nodes() if n["Alive"]), key=lambda n: n["NodeID"]):
        strategy = NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
        actor = Clock.options(scheduling_strategy=strategy).remote()
        ray.get(actor.wall_ns.remote())  # started before anything is timed
        out.append((node["NodeID"], actor))
    return out


def measure(actors, rounds: int, exchanges: int) -> dict[str, list[tuple[ClockOffset, float]]]:
    """Return per node the (estimate, seconds it took) of ``rounds`` interleaved estimates."""
    import ray

    results: dict[str, list[tuple[ClockOffset, float]]] = {node: [] for node, _ in actors}
    for r in range(rounds):
        for node, actor in actors:
            start = time.perf_counter()
            est = measure_offset(lambda a=actor: ray.get(a.wall_ns.remote()), exchanges)
            results[node].append((est, time.perf_counter() - start))
        print(f"round {r + 1}/{rounds}", file=sys.stderr)
    return results


def report(results: dict[str, list[tuple[ClockOffset, float]]], exchanges: int) -> None:
    """Print one row per node: offset, uncertainty, misses of the true offset 0, cost."""
    print(f"{'node':<14}{'offset med us':>14}{'offset range us':>20}{'unc med us':>12}"
          f"{'unc min us':>12}{'misses':>8}{'estimate ms':>13}{'per exch ms':>13}")
    for node, rows in results.items():
        offsets = [e.offset_ns / 1e3 for e, _ in rows]
        uncs = [e.uncertainty_ns / 1e3 for e, _ in rows]
        misses = sum(abs(e.offset_ns) > e.uncertainty_ns for e, _ in rows)
        cost = statistics.median(s for _, s in rows) * 1e3
        print(f"{node[:12]:<14}{statistics.median(offsets):>14.1f}"
              f"{f'{min(offsets):.1f} .. {max(offsets):.1f}':>20}{statistics.median(uncs):>12.1f}"
              f"{min(uncs):>12.1f}{misses:>5}/{len(rows):<2}{cost:>13.2f}{cost / exchanges:>13.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--exchanges", type=int, default=16)
    args = parser.parse_args()
    import ray

    c = start_cluster()
    try:
        results = measure(clock_actors(), args.rounds, args.exchanges)
    finally:
        ray.shutdown()
        c.shutdown()
    print(f"{NODES} nodes on one host, {args.rounds} estimates per node of {args.exchanges} "
          "exchanges each (true offset 0)")
    report(results, args.exchanges)


if __name__ == "__main__":
    main()
