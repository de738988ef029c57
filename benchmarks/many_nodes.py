"""Benchmark the driver over many nodes: a cpu.sqrt_mod sweep on up to 32 simulated nodes of this machine.

A ``ray.cluster_utils.Cluster`` with a head of 0 CPUs and up to ``--max-nodes`` nodes of one
CPU each (object store at Ray's minimum, 75 MiB), every node its own host through the
simulated-host seam (``TOPOBENCH_SIMULATED_HOST``), so clock offsets and per-host paths run
as on a real cluster. A sweep nodes = 1, 2, 4, ... of a tiny cpu.sqrt_mod (one invocation,
one worker per node, ``placement none``) runs ``--repeats`` times. Per trial it prints the driver's wall time per
phase, the driver process's CPU time, the Ray calls it waited on, the bytes it wrote, the
start skew of each round that ran (last worker's start minus the first's; measured rounds and those that
missed their window alike), how many missed it, the overlap, and the memory
per node (USS of each raylet with its workers and agents, at the largest N). The driver CPU
per trial is fitted as a + b*N (targets: b under 5 ms per node; skew under 10 ms at 32 nodes), also net
of the CPU Ray's threads in any connected driver burn per wall second (measured idle, beside the sweep).
``--json PATH`` keeps every figure for ``benchmarks/node_model.py``.

Usage: python benchmarks/many_nodes.py [--max-nodes 32] [--repeats 2] [--repetitions 5] [--json many_nodes.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.pop("RAY_ADDRESS", None)
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import note, print_table

import cluster  # noqa: F401  (token authentication on, before ray is imported)
from cluster.environment import SIMULATED_HOST_ENV

OBJECT_STORE = 75 * 2**20  # Ray's minimum
PHASES = ("start", "acquire", "lock", "clocks", "service", "prepare", "rounds", "finish", "record", "commit")


def start_cluster(nodes: int) -> Any:
    """Start a 0-CPU head and up to ``nodes`` simulated one-CPU nodes; stop adding at the first that fails."""
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "object_store_memory": OBJECT_STORE, "include_dashboard": False})
    for i in range(nodes):
        try:
            c.add_node(num_cpus=1, object_store_memory=OBJECT_STORE, env_vars={SIMULATED_HOST_ENV: f"sim-{i}"})
        except Exception as exc:  # noqa: BLE001 -- memory or ports ran out: report the largest N that started
            note(f"node {i + 1} did not start ({type(exc).__name__}: {exc}); going on with {i}")
            break
        note(f"node {i + 1}/{nodes} started")
    c.wait_for_nodes()
    return c


def node_memory(c: Any) -> list[float]:
    """Return the USS (MiB) of each worker node: its raylet and every process under it."""
    import psutil

    out = []
    for node in c.worker_nodes:
        total = 0
        for info in node.all_processes.get("raylet", []):
            try:
                root = psutil.Process(info.process.pid)
                for p in [root, *root.children(recursive=True)]:
                    total += p.memory_full_info().uss
            except psutil.Error:
                continue
        out.append(total / 2**20)
    return out


def written_bytes() -> int:
    """Return the bytes this process has passed to write() so far (/proc/self/io wchar)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    return 0


def sweep(c: Any, sizes: list[int], repeats: int, repetitions: int,
          results: Path) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Run the sweep; return the session's opening (wall, CPU) and one dict per trial: N, driver wall/CPU, calls,
    bytes, phases."""
    from orchestrator.pipeline.jobs import run_sweep
    from orchestrator.pipeline.sweep_file import parse_sweep

    # One invocation per trial: interleaved invocations would put other trials' work between a trial's marks.
    spec = parse_sweep({"nodes": sizes, "workers_per_node": 1, "placement": "none", "invocations": 1,
                        "repetitions": repetitions, "warmup": 1, "min_time": 0.01, "order": "interleaved",
                        "workloads": {"cpu.sqrt_mod": {"elements": [256 + i for i in range(repeats)]}}})
    trials: list[dict[str, Any]] = []
    used: set[str] = set()  # nodes an earlier trial ran on: their agents' once-per-run work is done
    started: dict[str, float] = {"cpu": time.process_time(), "wall": time.perf_counter()}
    opening: dict[str, float] = {}

    def on_trial(i: int, trial: Any, record: Any) -> None:
        if record is None:
            if not opening:  # connect, probe, plan, agents: once per run
                opening.update(cpu_s=time.process_time() - started["cpu"], wall_s=time.perf_counter() - started["wall"])
                note(f"session opened in {opening['wall_s']:.1f} s (driver CPU {opening['cpu_s'] * 1e3:.0f} ms)")
            started.update(cpu=time.process_time(), thread=time.thread_time(), wall=time.perf_counter(),
                           bytes=written_bytes())
            return
        cpu, wall = time.process_time() - started["cpu"], time.perf_counter() - started["wall"]
        costs = record.costs
        entry = {"trial_id": trial.trial_id, "nodes": len(trial.node_ids), "workers": len(trial.slots),
                 "new_nodes": len(set(trial.node_ids) - used),
                 "cpu_s": cpu, "thread_s": time.thread_time() - started["thread"], "wall_s": wall,
                 "bytes": written_bytes() - started["bytes"], "error": record.error,
                 "phases": {k: {"wall_s": v.wall_s, "cpu_s": v.cpu_s, "thread_s": v.thread_s, "calls": v.calls}
                            for k, v in costs.phases.items()},
                 "margin_ms": [m / 1e6 for m in costs.margin_ns], "slack_ms": [s / 1e6 for s in costs.slack_ns],
                 "late_ms": [x / 1e6 for x in costs.late_ns],
                 # One machine: every true offset is 0, so an estimate is its own error.
                 "offset_error_ms": [c.offset_ns / 1e6 for c in record.clocks.values() if c.exchanges],
                 "offset_uncertainty_ms": [c.uncertainty_ns / 1e6 for c in record.clocks.values() if c.exchanges]}
        used.update(trial.node_ids)
        if len(trial.node_ids) == max(sizes):
            entry["memory_mib"] = node_memory(c)
        trials.append(entry)
        note(f"trial {i + 1}: {entry['nodes']} nodes, driver CPU {cpu * 1e3:.0f} ms, wall {wall:.2f} s"
             f"{', failed: ' + record.error if record.error else ''}")

    session = run_sweep(spec, None, results, on_trial=on_trial).session
    skews = round_skews(results, session.run_id)
    overlap = {r["trial_id"]: r["overlap"] for r in session.rows if r.get("overlap") is not None}
    for t in trials:
        t["skew_ms"], t["physical_skew_ms"], t["deviation_ms"], t["missed_rounds"] = skews.get(
            t["trial_id"], ([], [], [], 0))
        t["overlap"] = overlap.get(t["trial_id"])
    return opening, trials


def round_skews(results: Path, run_id: str) -> dict[str, tuple[list[float], list[float], list[float], int]]:
    """Return per trial each round's start skew (ms) as stored and as it physically was, each worker's start
    minus the round's median, and how many rounds missed their window (``pipeline.rounds``).

    Stored starts are on the driver's clock (corrected by each node's estimated offset); on
    one machine every node reads the same clock, so the raw stamps (start + offset) are the
    physical instants, and an offset's estimation error shows in the physical skew only.
    """
    from orchestrator.store.reader import Dataset

    dataset = Dataset(results)
    try:
        # Every round that ran, measured or not (a round that missed its window is stored as warmup with its
        # number >= 0): leaving the missed ones out would leave out the worst starts.
        rows = dataset.rows("SELECT trial_id, repetition, worker_rank, any_value(start_ns) AS start_ns, "
                            "any_value(clock_offset_ns) AS offset_ns, bool_and(warmup) AS missed FROM samples "
                            "WHERE run_id = ? AND repetition >= 0 GROUP BY ALL", [run_id])
    finally:
        dataset.close()
    by_round: dict[tuple[str, int], list[tuple[int, int]]] = {}
    missed: dict[str, set[int]] = {}
    for r in rows:
        by_round.setdefault((r["trial_id"], r["repetition"]), []).append((r["start_ns"], r["offset_ns"] or 0))
        if r["missed"]:
            missed.setdefault(r["trial_id"], set()).add(r["repetition"])
    out: dict[str, tuple[list[float], list[float], list[float], int]] = {}
    for (trial_id, _), found in sorted(by_round.items()):
        skews, physical, deviations, _ = out.setdefault(trial_id, ([], [], [], len(missed.get(trial_id, ()))))
        starts, raw = [s for s, _ in found], [s + o for s, o in found]
        skews.append((max(starts) - min(starts)) / 1e6)
        physical.append((max(raw) - min(raw)) / 1e6)
        mid = statistics.median(starts)
        deviations.extend((s - mid) / 1e6 for s in starts)
    return out


def _wake(starts: list[int], spin_s: float, out: Any) -> None:
    """Sleep until each instant of ``starts`` as a worker does, stamp it, then compute ``spin_s`` of CPU."""
    from workloads.harness import sleep_until

    late = []
    for at in starts:
        sleep_until(at)
        late.append(time.time_ns() - at)
        end = time.process_time() + spin_s
        while time.process_time() < end:
            pass
    out.put(late)


def wake_floor(processes: int, rounds: int = 5, spin_s: float = 0.01) -> list[float]:
    """Return the start skew (ms) per round of ``processes`` plain processes woken at one instant, no Ray.

    What this machine alone gives: CPU-bound processes more than its CPUs cannot all start
    within a scheduler slice of each other, whoever sends the instant.
    """
    import multiprocessing

    spawn = multiprocessing.get_context("spawn")  # never fork a process that holds Ray's threads
    first = time.time_ns() + 3_000_000_000
    starts = [first + r * int(max(0.3, 2 * spin_s * processes) * 1e9) for r in range(rounds)]
    queue = spawn.Queue()
    procs = [spawn.Process(target=_wake, args=(starts, spin_s, queue)) for _ in range(processes)]
    for p in procs:
        p.start()
    late = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    return [(max(w[r] for w in late) - min(w[r] for w in late)) / 1e6 for r in range(rounds)]


def idle_rate(seconds: float = 20.0, windows: int = 2) -> float:
    """Return the driver process's CPU per wall second (ms/s) while connected and doing nothing.

    Ray's own threads in a driver (gRPC polling, the core worker's io loop, task events) burn
    CPU for every second connected, whatever the driver does: the median of ``windows`` quiet
    windows is that floor, which a trial's process CPU holds for each of its wall seconds.
    """
    rates = []
    for _ in range(windows):
        cpu, wall = time.process_time(), time.perf_counter()
        time.sleep(seconds / windows)
        rates.append((time.process_time() - cpu) / (time.perf_counter() - wall) * 1e3)
    return statistics.median(rates)


def fit_line(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Return (a, b) of the least-squares line y = a + b*x."""
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else 0.0
    return my - b * mx, b


def report(trials: list[dict[str, Any]], idle_ms_per_s: float) -> dict[str, float]:
    """Print the per-trial table, the per-N medians and the CPU fits; return them.

    Besides the process CPU, the fit is given net of Ray's idle floor (``idle_ms_per_s``
    times each trial's wall time): on a machine where N nodes share few CPUs a trial's wall
    time grows with N, and that floor with it, though the driver does nothing more.
    """
    rows = []
    for t in trials:
        p = t["phases"]
        rows.append([t["nodes"], f"{t['cpu_s'] * 1e3:.0f}", f"{t['wall_s']:.2f}",
                     sum(v["calls"] for v in p.values()), f"{t['bytes'] / 1e3:.0f}",
                     *(f"{p[k]['wall_s'] * 1e3:.0f}" if k in p else "-" for k in PHASES),
                     f"{statistics.median(t['skew_ms']):.1f}" if t["skew_ms"] else "-",
                     f"{statistics.median(t['physical_skew_ms']):.1f}" if t["skew_ms"] else "-",
                     f"{max(t['physical_skew_ms']):.1f}" if t["skew_ms"] else "-",
                     f"{statistics.median(t['margin_ms']):.1f}" if t.get("margin_ms") else "-",
                     f"{min(t['slack_ms']):.1f}" if t.get("slack_ms") else "-",
                     f"{t['overlap']:.3f}" if t.get("overlap") is not None else "-", t.get("missed_rounds", "-")])
    print_table(["N", "CPU ms", "wall s", "calls", "kB", *(f"{k} ms" for k in PHASES), "skew ms", "phys skew ms",
                 "phys max ms", "margin ms", "min slack ms", "overlap", "missed"], rows)
    ok = [t for t in trials if not t["error"]]
    # Clock offsets are measured once per run (and re-checked every few minutes), in whichever trial is
    # running then: a cost per run, stated apart, not one of the trial it lands in.
    clocks = [t for t in ok if t["phases"].get("clocks", {}).get("calls")]
    for t in clocks:
        c = t["phases"]["clocks"]
        print(f"clock offsets measured in trial at N={t['nodes']}: {c['calls']} calls, driver CPU "
              f"{c['cpu_s'] * 1e3:.0f} ms, wall {c['wall_s']:.2f} s (left out of the per-trial fit)")

    def less_clocks(t: dict[str, Any], key: str) -> float:
        return (t[key] - t["phases"].get("clocks", {}).get(key, 0.0)) * 1e3

    ns = [t["nodes"] for t in ok]
    a, b = fit_line(ns, [less_clocks(t, "cpu_s") for t in ok])
    ta, tb = fit_line(ns, [less_clocks(t, "thread_s") for t in ok])
    na, nb = fit_line(ns, [less_clocks(t, "cpu_s") - idle_ms_per_s * less_clocks(t, "wall_s") / 1e3 for t in ok])
    fits = {"a_ms": a, "b_ms": b, "thread_a_ms": ta, "thread_b_ms": tb, "net_a_ms": na, "net_b_ms": nb,
            "idle_ms_per_s": idle_ms_per_s}
    print(f"\ndriver CPU per trial = {a:.1f} ms + {b:.2f} ms x N (process, least squares over {len(ok)} trials; "
          f"target b < 5 ms per node); its own thread alone: {ta:.1f} ms + {tb:.2f} ms x N")
    print(f"net of Ray's idle floor ({idle_ms_per_s:.2f} ms per wall second, measured connected and idle beside "
          f"the sweep): {na:.1f} ms + {nb:.2f} ms x N")
    # A node's first trial also holds its agent's once-per-run work (imports, the topology read, the
    # first write); the trials on nodes used before are the steady cost a longer run pays per trial.
    steady = [t for t in ok if t.get("new_nodes") == 0]
    if len({t["nodes"] for t in steady}) >= 2:
        xs = [t["nodes"] for t in steady]
        sa, sb = fit_line(xs, [less_clocks(t, "cpu_s") for t in steady])
        qa, qb = fit_line(xs, [less_clocks(t, "thread_s") for t in steady])
        ma, mb = fit_line(xs, [less_clocks(t, "cpu_s") - idle_ms_per_s * less_clocks(t, "wall_s") / 1e3
                               for t in steady])
        print(f"trials on nodes used before ({len(steady)}): process {sa:.1f} + {sb:.2f} x N, own thread "
              f"{qa:.1f} + {qb:.2f} x N, net of the idle floor {ma:.1f} + {mb:.2f} x N")
        fits.update(steady_b_ms=sb, steady_thread_b_ms=qb, steady_net_b_ms=mb)
    largest = max(t["nodes"] for t in trials)
    at_largest = [t for t in ok if t["nodes"] == largest]
    skews = [s for t in at_largest for s in t["physical_skew_ms"]]
    if skews:
        slack = min(s for t in at_largest for s in t.get("slack_ms") or [0.0])
        print(f"start skew at {largest} nodes: median {statistics.median(skews):.1f} ms, max {max(skews):.1f} ms "
              f"(physical; target under 10 ms); every worker began its call for a round at least {slack:.1f} ms "
              "before the round's instant (the batch's call arriving, or its previous sample ending)")
    memory = next((t["memory_mib"] for t in trials if "memory_mib" in t), [])
    if memory:
        print(f"memory per node at {largest} nodes (raylet, agents, workers; USS): median "
              f"{statistics.median(memory):.0f} MiB, max {max(memory):.0f} MiB")
    return fits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-nodes", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    import psutil
    import ray

    before = psutil.virtual_memory().used
    t0 = time.perf_counter()
    c = start_cluster(args.max_nodes)
    started = len(c.worker_nodes)
    note(f"{started} nodes in {time.perf_counter() - t0:.0f} s; machine memory used "
         f"{(psutil.virtual_memory().used - before) / 2**30:.1f} GiB more")
    sizes = [n for n in (1, 2, 4, 8, 16, 32, 64) if n <= started]
    try:
        ray.init(address=c.address, log_to_driver=False, configure_logging=False)
        idle_before = idle_rate()
        with tempfile.TemporaryDirectory(prefix="tb-many-") as tmp:
            opening, trials = sweep(c, sizes, args.repeats, args.repetitions, Path(tmp))
        idle_after = idle_rate()
        floors = {n: wake_floor(n) for n in sizes}  # beside the same idle raylets
    finally:
        ray.shutdown()
        c.shutdown()
    print(f"{started} simulated nodes of 1 CPU (head: 0 CPUs), sweep nodes = {sizes}, {args.repeats} trials per N, "
          f"{args.repetitions} rounds each")
    print(f"session opened (connect, probe, plan, agents) in {opening['wall_s']:.1f} s, driver CPU "
          f"{opening['cpu_s'] * 1e3:.0f} ms")
    print(f"driver connected and idle: {idle_before:.2f} ms of CPU per wall second before the sweep, "
          f"{idle_after:.2f} after")
    # The smaller: what a driver burns idle cannot exceed either, while the machine may still be busy
    # with the sweep's teardown (killed workers, raylets settling) when the second is taken.
    fit = report(trials, min(idle_before, idle_after))
    print("this machine alone (plain processes woken at one instant, no Ray): start skew median ms by N: "
          + ", ".join(f"{n}: {statistics.median(f):.1f}" for n, f in floors.items()))
    fit["wake_floor_ms"] = {str(n): f for n, f in floors.items()}
    if args.json:
        args.json.write_text(json.dumps({"nodes_started": started, "opening": opening, "fit": fit,
                                         "trials": trials}, indent=1))


if __name__ == "__main__":
    main()
