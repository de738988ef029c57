#!/usr/bin/env python3
"""Overhead of topobench: its median against the same kernel timed in a plain process.

Issue 2's benchmark. Per round, side by side (A B A B ...):
  A  `topobench run cpu.sqrt_mod memory.stream --workers 1` on an embedded Ray;
  B  the same workload classes, same parameters, driven directly in a fresh Python process
     pinned (os.sched_setaffinity) to the CPU topobench's worker reported, with the
     iteration count topobench calibrated in that round, the same warm-up count and the
     same number of samples (the harness's own calibrate/time_run).
Reported: the median of cpu.sqrt_mod element_ops_per_s and memory.stream triad_gbs over all
rounds' samples, per side, and topobench/direct (target: within 3%, i.e. 97%..103%).
Also the start-up cost of the embedded Ray: from the moment the `topobench run` subprocess
is started to min(start_ns) of its samples, warm-up included (the first sample of any
kind), and to the first measured sample; beside it, in the same rounds, a bare
`ray.init` with the same arguments in a fresh process (start to init returned). Target
(issue 9): time to first sample at most 1.5 x the bare init.

Run:  python benchmarks/overhead.py [--rounds 3] [--repetitions 10] [--min-time 0.2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from _common import REPO, median, note, pct, print_table, ratio, run_direct, run_topobench, si

# What `cluster.connection.ray_session` passes for an embedded Ray (num_cpus: the usable CPUs).
BARE_INIT = """
import os, sys, time, tempfile
os.environ.setdefault("RAY_AUTH_MODE", "token")
import ray
ray.init("local", num_cpus=len(os.sched_getaffinity(0)), object_store_memory=256 * 2**20,
         include_dashboard=False, log_to_driver=False, configure_logging=False,
         _temp_dir=tempfile.mkdtemp(prefix="tb-ray-", dir="/tmp"))
print(time.time_ns(), flush=True)
ray.shutdown()
"""


def bare_init_s() -> float:
    """Return the seconds from starting a fresh Python process to its ``ray.init`` returning."""
    start = time.time_ns()
    out = subprocess.run([sys.executable, "-c", BARE_INIT], capture_output=True, text=True, check=True,
                         env=dict(os.environ, PYTHONPATH=str(REPO)))
    return (int(out.stdout.split()[0]) - start) / 1e9

CASES = (
    # workload, metric reported, unit
    ("cpu.sqrt_mod", "element_ops_per_s", "element ops/s"),
    ("memory.stream", "triad_gbs", "GB/s"),
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--rounds", type=int, default=3, help="A/B rounds (default 3)")
    ap.add_argument("--repetitions", type=int, default=10, help="samples per side per round")
    ap.add_argument("--min-time", type=float, default=0.2, help="calibration target, s")
    ap.add_argument("--warmup", type=int, default=1, help="warm-up samples after calibration")
    ap.add_argument("--elements", type=int, default=16384, help="cpu.sqrt_mod.elements")
    ap.add_argument("--stream-mib", type=int, default=512, help="memory.stream.size_mib")
    args = ap.parse_args()

    params = {"cpu.sqrt_mod": {"elements": args.elements},
              "memory.stream": {"size_mib": args.stream_mib}}
    cli_params = {f"{w}.{k}": v for w, p in params.items() for k, v in p.items()}
    tb: dict[str, list[float]] = {w: [] for w, _, _ in CASES}
    direct: dict[str, list[float]] = {w: [] for w, _, _ in CASES}
    iters: dict[str, list[tuple[int, int]]] = {w: [] for w, _, _ in CASES}
    startup_any: list[float] = []
    startup_measured: list[float] = []
    total_s: list[float] = []
    bare: list[float] = []

    for rnd in range(args.rounds):
        note(f"round {rnd + 1}/{args.rounds}: bare ray.init")
        bare.append(bare_init_s())
        # A: through topobench (both workloads in one command, as a user runs them).
        note(f"round {rnd + 1}/{args.rounds}: topobench run")
        run = run_topobench([w for w, _, _ in CASES], workers=1, repetitions=args.repetitions,
                            min_time=args.min_time, warmup=args.warmup, params=cli_params)
        all_rows = run.samples
        startup_any.append((min(r["start_ns"] for r in all_rows) - run.start_ns) / 1e9)
        startup_measured.append(
            (min(r["start_ns"] for r in all_rows if not r["warmup"]) - run.start_ns) / 1e9)
        total_s.append((run.end_ns - run.start_ns) / 1e9)
        plan = {}
        for workload, metric, _ in CASES:
            tb[workload] += run.values(workload, metric)
            rows = run.rows(workload, metric, warmup=False)
            plan[workload] = (tuple(rows[0]["cpus"]), int(rows[0]["iterations"]))
        # B: directly, same CPU, same iteration count, same number of samples.
        for workload, metric, _ in CASES:
            cpus, n = plan[workload]
            note(f"round {rnd + 1}/{args.rounds}: direct {workload} on CPUs {list(cpus)}, "
                 f"{n} iterations")
            res = run_direct(workload, params[workload], cpus=cpus,
                             repetitions=args.repetitions, min_time=args.min_time,
                             warmup=args.warmup, iterations=n)
            direct[workload] += [s[metric] for s in res["samples"]]
            iters[workload].append((n, res["iterations"]))

    print(f"\n## overhead: topobench (1 worker, embedded Ray) vs direct, {args.rounds} rounds x "
          f"{args.repetitions} samples per side, min-time {args.min_time} s, interleaved\n")
    rows = []
    per = args.repetitions
    for workload, metric, unit in CASES:
        a, b = median(tb[workload]), median(direct[workload])
        r = ratio(a, b)
        # Paired: each round's topobench median over the direct median taken right after it.
        paired = median(ratio(median(tb[workload][i * per:(i + 1) * per]),
                              median(direct[workload][i * per:(i + 1) * per]))
                        for i in range(args.rounds))
        verdict = "ok" if 0.97 <= r <= 1.03 else "OUTSIDE 3%"
        rows.append([f"{workload} {metric}", si(a, ""), si(b, ""), unit, pct(r), pct(paired),
                     verdict, f"{len(tb[workload])}/{len(direct[workload])}"])
    print_table(["workload metric", "topobench", "direct", "unit", "tb/direct",
                 "median of round ratios", "target 97-103%", "n tb/direct"], rows)
    print("\nper-round medians (topobench | direct):")
    for workload, metric, _ in CASES:
        parts = []
        for i in range(args.rounds):
            parts.append(f"{si(median(tb[workload][i * per:(i + 1) * per]))} | "
                         f"{si(median(direct[workload][i * per:(i + 1) * per]))}")
        print(f"  {workload:14s} " + ";  ".join(parts)
              + f"   (iterations per sample: {[n for n, _ in iters[workload]]})")
    print("\n## embedded Ray start-up: `topobench run` subprocess start -> first sample\n")
    print_table(["measure", "median s", "min s", "max s"], [
        ["bare ray.init, same arguments (process start -> init returned)", f"{median(bare):.2f}",
         f"{min(bare):.2f}", f"{max(bare):.2f}"],
        ["to first sample (warm-up incl.)", f"{median(startup_any):.2f}",
         f"{min(startup_any):.2f}", f"{max(startup_any):.2f}"],
        ["to first measured sample", f"{median(startup_measured):.2f}",
         f"{min(startup_measured):.2f}", f"{max(startup_measured):.2f}"],
        ["whole command (both workloads)", f"{median(total_s):.2f}",
         f"{min(total_s):.2f}", f"{max(total_s):.2f}"],
    ])
    paired = median(a / b for a, b in zip(startup_any, bare))
    print(f"\nfirst sample / bare ray.init: {median(startup_any) / median(bare):.2f}x (medians), "
          f"{paired:.2f}x (median of round ratios); target <= 1.5x")


if __name__ == "__main__":
    main()
