"""Model the driver's cost per trial and the start skew up to 1,000 nodes, without Ray; check it against many_nodes.py.

Measured here, by running the real code on synthetic inputs (no Ray): for a trial of one
worker on each of N nodes (each node its own host, this machine's topology), the planner
(``plan_trials``), pickling what each agent is sent to start and prepare its workers (the
part of a call's cost that could grow with N), a node's own rows and parts (``node_record`` and the ``samples`` and
``resources`` parts: each agent builds and writes its node's, in parallel, so it is a cost per
node off the driver), the driver's record from the N parts (``build_record``), the commit to
the dataset (``RunLog.commit``: the trial's rows and the manifest entry; seconds and bytes) and
reading it back as ``topobench query`` does. Taken from ``many_nodes.py --json`` (what needs Ray): the driver CPU each Ray call
costs and the calls per node per trial, each node's clock-offset error (one machine: the
true offset is 0) and how late a lone worker starts after its instant.

    driver CPU per trial(N) = a + calls_per_node * N * cpu_per_call + plan(N) + args(N) + record(N) + write(N)
                              (a: the median of what the measured trials spent beyond these)
    start skew(N)           = range over N nodes of (offset error + wake lateness), each drawn
                              from the measured values; no call arrives late (the margin is
                              sized from the measured time to reach the last worker)

The check: the modelled CPU at the measured N beside the measured one, and the skew model at
1 and 2 nodes (no CPU contention on this machine) beside the measured physical skew.

Usage: python benchmarks/node_model.py --measured many_nodes.json [--nodes 1,2,4,...,1000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import note, print_table

import cluster  # noqa: F401  (token authentication on, as everywhere)

SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000)


def synthetic_nodes(count: int) -> list[Any]:
    """Return ``count`` nodes of one CPU each, every one its own host, with this machine's topology."""
    from cluster.environment import capture_environment
    from cluster.nodes import NodeInfo
    from cluster.topology import read_topology

    topology = read_topology("/")
    topology = replace(topology, usable_cpus=topology.usable_cpus[:1])
    env = capture_environment("/")
    return [NodeInfo(f"{i:056x}", f"host{i}", f"10.{i // 65536}.{i // 256 % 256}.{i % 256}", False, 1, topology,
                     {**env, "hostname": f"host{i}", "host_id": f"host{i}"}) for i in range(count)]


def wide_samples(rounds: int, warmup: int, start_ns: int) -> Any:
    """Return one worker's wide sample table as ``cluster.worker.sample_row`` makes it, one row per round."""
    import pyarrow as pa

    reps = list(range(-warmup, rounds))
    starts = [start_ns + i * 50_000_000 for i in range(len(reps))]
    return pa.table({"repetition": reps, "warmup": [r < 0 for r in reps], "iterations": [1000] * len(reps),
                     "ops": [256_000] * len(reps), "elapsed_ns": [10_000_000 + r for r in range(len(reps))],
                     "start_ns": starts, "end_ns": [s + 10_000_000 for s in starts], "called_ns": starts,
                     "flags": pa.array([[] for _ in reps], pa.list_(pa.string()))})


def resources(rounds: int, start_ns: int) -> Any:
    """Return a worker's resource rows: its CPU's busy share and its RSS over each measured round."""
    import pyarrow as pa

    from cluster.resource_monitor import RESOURCE_COLUMNS

    rows = {"t_ns": [], "since_ns": [], "kind": [], "cpu": [], "value": []}
    for r in range(rounds):
        at = start_ns + r * 50_000_000
        for kind, cpu, value in (("cpu_percent", 0, 99.0), ("rss_bytes", None, 1.5e8)):
            for key, v in zip(rows, (at + 10_000_000, at, kind, cpu, value)):
                rows[key].append(v)
    return pa.table(rows, schema=RESOURCE_COLUMNS)


def measured_trial(trial: Any, rounds: int, warmup: int, topology: Any, writer: Any) -> tuple[Any, float]:
    """Return what N one-worker nodes' agents would hand the driver for ``trial``, and one node's CPU seconds.

    Each agent builds its node's rows and writes its samples and resources parts (``writer``,
    a ``PartWriter``), as ``NodeAgent.finish`` does where it reaches the results.
    """
    from cluster.clock import ClockOffset
    from orchestrator.pipeline.record import node_record
    from orchestrator.records import MeasuredTrial, WorkerResult
    from workloads.registry import get_workload

    start = time.time_ns()
    workload = get_workload(trial.workload)
    parts, spent = [], []
    for s in trial.slots:
        worker = WorkerResult(s.rank, s.node_id, f"host{s.rank}", s.cpus, s.pinned, wide_samples(rounds, warmup, start),
                              resources(rounds, start), 0.01, {0: 99.0}, ClockOffset(0, 100_000, 16))
        cpu = time.process_time()
        part = node_record(writer.run_id, trial, [worker], topology, workload)
        parts.append(replace(part, parts=tuple(writer.write_trial(trial.trial_id, table, data, part.node_id)
                                               for table, data in (("samples", part.samples),
                                                                   ("resources", part.resources)))))
        spent.append(time.process_time() - cpu)
    return MeasuredTrial(trial, (), "repetitions", rounds * 0.05, nodes=tuple(parts)), statistics.median(spent)


def call_args(trial: Any, nodes: list[Any], sampling: Any) -> int:
    """Pickle what the driver sends each node's agent to start and prepare its workers, as Ray does; return bytes.

    What grows with N in a call's arguments is the cost the per-call constant (measured at up
    to 32 nodes) would miss: each agent gets its own node's part (``trial.per_node_trials``).
    """
    from ray import cloudpickle

    from orchestrator.pipeline.node_agent import Begin
    from orchestrator.pipeline.trial import _specs, by_node, per_node_trials

    slots = by_node(trial)
    specs = iter(_specs(trial, {n.node_id: n for n in nodes}, sampling, None))
    sent = 0
    for part, mine in zip(per_node_trials(trial, slots), slots.values()):
        sent += len(cloudpickle.dumps((Begin(part, 60.0, specs=tuple(next(specs) for _ in mine), prepare_s=1800.0),)))
    return sent


def costs_at(count: int, rounds: int, warmup: int, folder: Path) -> dict[str, float]:
    """Return the driver's plan, record, write (s and bytes) and query costs for a trial on ``count`` nodes."""
    from orchestrator.pipeline.planner import plan_trials
    from orchestrator.pipeline.record import build_record
    from orchestrator.pipeline.runlog import RunLog
    from orchestrator.records import Point, Shape
    from orchestrator.settings import Sampling
    from orchestrator.store.layout import new_run_id
    from orchestrator.store.reader import Dataset
    from orchestrator.store.writer import RunStore
    from workloads.registry import get_workload

    nodes = synthetic_nodes(count)
    from cluster.placement_policy import parse_placement

    point = Point("cpu.sqrt_mod", {"elements": 256}, Shape(nodes=count, placement=parse_placement("none")))
    out: dict[str, float] = {}

    def timed(name: str, fn: Any) -> Any:
        cpu = time.process_time()
        result = fn()
        out[f"{name}_cpu_s"] = time.process_time() - cpu
        return result

    (trial,) = timed("plan", lambda: plan_trials([point], nodes))
    sampling = Sampling(repetitions=rounds, warmup=warmup)
    timed("args", lambda: call_args(trial, nodes, sampling))
    store = RunStore(folder, new_run_id())
    log = RunLog(store, "model", "{}", nodes, 1)
    before = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    measured, out["agent_cpu_s"] = measured_trial(trial, rounds, warmup, nodes[0].topology, store.parts)
    agents_wrote = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) - before
    topologies = {n.node_id: n.topology for n in nodes}
    record = timed("record", lambda: build_record(store.run_id, [measured], topologies,
                                                  get_workload("cpu.sqrt_mod"), sampling))
    timed("write", lambda: log.commit(trial, record))
    out["write_bytes"] = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) - before - agents_wrote
    log.close("complete", 1, 0, 0)

    def query() -> None:
        dataset = Dataset(folder)
        try:
            dataset.rows("SELECT metric, median, overlap FROM trials WHERE run_id = ?", [store.run_id])
            dataset.rows("SELECT node_id, median(value) AS v FROM samples WHERE run_id = ? AND NOT warmup "
                         "GROUP BY node_id", [store.run_id])
        finally:
            dataset.close()

    timed("query", query)
    return out


def skew_model(errors_ms: list[float], lateness_ms: list[float], count: int, draws: int = 200,
               seed: int = 1) -> tuple[float, float]:
    """Return the median and 95th percentile of the start skew (ms) of ``count`` nodes, from measured parts.

    Each node's start is its clock-offset error plus its wake lateness, each drawn from the
    measured values; the skew of a round is the range over its nodes.
    """
    rng = random.Random(seed)
    ranges = []
    for _ in range(draws):
        starts = [rng.choice(errors_ms) + rng.choice(lateness_ms) for _ in range(count)]
        ranges.append(max(starts) - min(starts))
    ranges.sort()
    return statistics.median(ranges), ranges[int(0.95 * (len(ranges) - 1))]


RAY_PHASES = ("start", "acquire", "lock", "service", "prepare", "rounds", "finish")
"""A trial's phases made of Ray calls (clock offsets are measured once per run, not per trial)."""


def calls_and_cost(measured: dict[str, Any], idle_ms_per_s: float = 0.0) -> tuple[float, float]:
    """Return (calls per node per trial, driver CPU per call in ms) from many_nodes.json.

    With ``idle_ms_per_s`` the CPU Ray's threads burn in any connected driver for each wall
    second of those phases is taken off first (on a machine where N nodes share few CPUs
    the phases last longer as N grows, and that floor with them).
    """
    trials = [t for t in measured["trials"] if not t["error"]]
    per_node = statistics.median(sum(t["phases"][k]["calls"] for k in RAY_PHASES if k in t["phases"]) / t["nodes"]
                                 for t in trials)

    def of(t: dict[str, Any], key: str) -> float:
        return sum(t["phases"][k][key] for k in RAY_PHASES if k in t["phases"])

    per_call = statistics.median(
        (1e3 * of(t, "cpu_s") - idle_ms_per_s * of(t, "wall_s")) / max(1, of(t, "calls"))
        for t in trials if t["nodes"] >= min(8, max(x["nodes"] for x in trials)))
    return per_node, per_call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--measured", type=Path, required=True, help="many_nodes.py --json output")
    parser.add_argument("--nodes", default=",".join(map(str, SIZES)))
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    measured = json.loads(args.measured.read_text())
    sizes = [int(n) for n in args.nodes.split(",")]
    per_node, per_call = calls_and_cost(measured)
    idle = measured["fit"].get("idle_ms_per_s", 0.0)
    net_per_call = calls_and_cost(measured, idle)[1]
    trials = [t for t in measured["trials"] if not t["error"]]
    rows, model = [], {}
    with tempfile.TemporaryDirectory(prefix="tb-model-") as tmp:
        costs_at(1, args.rounds, 1, Path(tmp) / "warm")  # imports and first-call caches are not a trial's cost

        def modelled(n: int, intercept: float = 0.0) -> tuple[dict[str, float], float, float]:
            c = costs_at(n, args.rounds, 1, Path(tmp) / str(n))
            ray_ms = per_node * n * per_call
            return c, ray_ms, intercept + ray_ms + 1e3 * (c["plan_cpu_s"] + c["args_cpu_s"] + c["record_cpu_s"]
                                                          + c["write_cpu_s"])

        measured_n = sorted({t["nodes"] for t in trials})
        at_measured = {n: modelled(n)[2] for n in measured_n}
        intercept = statistics.median(1e3 * t["cpu_s"] - at_measured[t["nodes"]] for t in trials)
        for n in sizes:
            c, ray_ms, total = modelled(n, intercept)
            model[n] = {**c, "ray_ms": ray_ms, "total_ms": total}
            rows.append([n, f"{1e3 * c['plan_cpu_s']:.1f}", f"{1e3 * c['args_cpu_s']:.1f}",
                         f"{1e3 * c['agent_cpu_s']:.1f}",
                         f"{1e3 * c['record_cpu_s']:.1f}",
                         f"{1e3 * c['write_cpu_s']:.1f}", f"{c['write_bytes'] / 1e3:.0f}",
                         f"{1e3 * c['query_cpu_s']:.1f}", f"{ray_ms:.0f}", f"{total:.0f}"])
            note(f"{n} nodes modelled")
    print(f"Ray calls: {per_node:.1f} per node per trial at {per_call:.2f} ms of driver CPU each (many_nodes.py, "
          f"N >= 8); the rest of a trial: {intercept:.0f} ms (median residual of the measured trials)")
    if idle:
        print(f"net of the {idle:.2f} ms per wall second Ray's threads burn in an idle connected driver: "
              f"{net_per_call:.2f} ms per call, so {per_node * net_per_call:.2f} ms per node per trial in calls")
    print_table(["N", "plan ms", "call args ms", "node rows+parts ms (agent)", "record ms", "write ms", "driver wrote kB", "query ms",
                 "Ray calls ms", "driver CPU ms"], rows)
    print("\ncheck against many_nodes.py (driver CPU per trial, ms):")
    check = [[n, f"{statistics.median(1e3 * t['cpu_s'] for t in trials if t['nodes'] == n):.0f}",
              f"{intercept + at_measured[n]:.0f}"] for n in measured_n]
    print_table(["N", "measured ms", "modelled ms"], check)
    errors = [e for t in trials for e in t.get("offset_error_ms", [])] or [0.0]
    lone = [x for t in trials if t["nodes"] == 1 for x in t.get("late_ms", [])] or [0.0]
    print(f"\nstart skew model: offset errors from {len(errors)} estimates (median |e| "
          f"{statistics.median(abs(e) for e in errors):.3f} ms), lone-worker wake lateness from {len(lone)} rounds "
          f"(median {statistics.median(lone):.3f} ms)")
    skew_rows = []
    for n in sorted({*sizes, *(t["nodes"] for t in trials)}):
        med, p95 = skew_model(errors, lone, n)
        got = [s for t in trials if t["nodes"] == n for s in t.get("physical_skew_ms", [])]
        floor = measured["fit"].get("wake_floor_ms", {}).get(str(n))
        skew_rows.append([n, f"{med:.2f}", f"{p95:.2f}", f"{statistics.median(got):.2f}" if got else "-",
                          f"{statistics.median(floor):.2f}" if floor else "-"])
    print_table(["N", "model median ms", "model p95 ms", "measured ms", "machine wake floor ms"], skew_rows)
    big = max(sizes)
    print(f"\nat {big} nodes: driver CPU per trial {model[big]['total_ms']:.0f} ms modelled "
          f"({model[big]['ray_ms']:.0f} ms of it Ray calls); start skew {skew_model(errors, lone, big)[0]:.2f} ms "
          "median (target under 5 ms)")


if __name__ == "__main__":
    main()
