#!/usr/bin/env python3
"""Placement: what pinning buys, measured through `topobench run` with 2 workers.

Issue 3's benchmark. Side by side in one invocation, rounds interleaved (A B A B ...):
  part 1 (any machine with 2 cores): `--placement cores` (one worker per physical core,
         pinned) vs `--placement none` (unpinned, the scheduler decides), for cpu.sqrt_mod
         (element_ops_per_s) and memory.stream (triad_gbs);
  part 2 (only with two or more L3 domains, from `topobench topology --json`):
         `--placement spread` (workers on different L3 domains) vs `--placement compact`
         (both in one L3 domain), for memory.stream (triad_gbs) and cache.lru (lookups_per_s);
         skipped with a note on a machine with a single L3 domain.
Reported per workload and placement: the median of all workers' samples, the median of the
trials' aggregate throughput (all workers' ops over their synchronized rounds), the CPU sets the
workers reported, and the ratio of the two placements.

Run:  python benchmarks/placement.py [--rounds 3] [--repetitions 10] [--min-time 0.2]
"""

from __future__ import annotations

import argparse
import json
import subprocess

from _common import TOPOBENCH, median, note, pct, print_table, ratio, run_topobench, si


def l3_domains() -> list[dict]:
    """Return this machine's L3 domains as `topobench topology --json` reports them."""
    out = subprocess.run([TOPOBENCH, "topology", "--json"], capture_output=True, text=True,
                         check=True).stdout
    data = json.loads(out)
    topo = data.get("topology", data)
    return list(topo.get("l3_domains") or [])


def failure_line(text: str) -> str:
    """Return the most telling line of a failed `topobench run` output (the error cell)."""
    for line in text.splitlines():
        if "Error" in line or "error" in line:
            cells = [c.strip() for c in line.split("\u2502") if c.strip()]
            return cells[-1] if cells else line.strip()
    return text.strip().splitlines()[0] if text.strip() else "no output"


def compare(title: str, cases: list[tuple[str, str]], sides: tuple[str, str], params: dict,
            args: argparse.Namespace) -> None:
    """Run `cases` with 2 workers under the two placements, interleaved, and print a table."""
    workloads = list(dict.fromkeys(w for w, _ in cases))
    per_sample = {(s, w): [] for s in sides for w, _ in cases}
    aggregate = {(s, w): [] for s in sides for w, _ in cases}
    cpusets = {(s, w): set() for s in sides for w, _ in cases}
    errors: dict[str, str] = {}
    summed: set[str] = set()
    for rnd in range(args.rounds):
        for side in sides:  # A B A B ...
            note(f"{title}: round {rnd + 1}/{args.rounds}, --placement {side}")
            try:
                run = run_topobench(workloads, workers=2, repetitions=args.repetitions,
                                    min_time=args.min_time, params=params, placement=side)
            except RuntimeError as exc:
                errors.setdefault(side, failure_line(str(exc)))
                note(f"  --placement {side} failed: {errors[side]}")
                continue
            for workload, metric in cases:
                per_sample[side, workload] += run.values(workload, metric)
                for row in run.rows(workload, metric, warmup=False):
                    cpusets[side, workload].add((row["worker_rank"], tuple(row["cpus"])))
                trial = run.trial(workload, metric)
                if trial and trial.get("aggregate_throughput") is not None:
                    aggregate[side, workload].append(trial["aggregate_throughput"])
                else:  # topobench aggregates the primary metric only: sum of worker medians
                    summed.add(workload)
                    ranks = {r["worker_rank"] for r in run.rows(workload, metric, warmup=False)}
                    if ranks:
                        aggregate[side, workload].append(sum(
                            median(r["value"] for r in run.rows(workload, metric, warmup=False)
                                   if r["worker_rank"] == k) for k in ranks))
    a, b = sides
    print(f"\n## {title}: 2 workers, --placement {a} vs {b}, {args.rounds} rounds x "
          f"{args.repetitions} samples per worker, interleaved\n")
    rows = []
    for workload, metric in cases:
        ma, mb = median(per_sample[a, workload]), median(per_sample[b, workload])
        ga, gb = median(aggregate[a, workload]), median(aggregate[b, workload])
        star = "*" if workload in summed else ""
        rows.append([f"{workload} {metric}", si(ma), si(mb), pct(ratio(ma, mb)),
                     si(ga) + star, si(gb) + star, pct(ratio(ga, gb))])
    print_table(["workload metric", f"{a} median/worker", f"{b} median/worker",
                 f"{a}/{b}", f"{a} aggregate", f"{b} aggregate", f"{a}/{b} agg"], rows)
    print("\n  aggregate: the trials' aggregate_throughput (all workers over their common "
          "window), median over rounds;\n  * = not a primary metric, so the sum of the "
          "workers' medians per run instead.")
    for side in sides:
        for workload, _ in cases:
            sets = sorted(cpusets[side, workload])
            print(f"  CPUs ({side}, {workload}): "
                  + (", ".join(f"worker {r}: {list(c)}" for r, c in sets) or "no samples"))
    for side, error in errors.items():
        print(f"  --placement {side}: topobench run FAILED (at least once): {error}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--rounds", type=int, default=3, help="A/B rounds (default 3)")
    ap.add_argument("--repetitions", type=int, default=10, help="samples per worker per run")
    ap.add_argument("--min-time", type=float, default=0.2, help="calibration target, s")
    ap.add_argument("--stream-mib", type=int, default=512, help="memory.stream.size_mib")
    args = ap.parse_args()
    params = {"memory.stream.size_mib": args.stream_mib}

    compare("cores vs none",
            [("cpu.sqrt_mod", "element_ops_per_s"), ("memory.stream", "triad_gbs")],
            ("cores", "none"), params, args)

    domains = l3_domains()
    if len(domains) >= 2:
        compare("spread vs compact",
                [("memory.stream", "triad_gbs"), ("cache.lru", "lookups_per_s")],
                ("spread", "compact"), params, args)
    else:
        print(f"\n## spread vs compact: skipped. This machine has {len(domains)} L3 domain(s) "
              f"({', '.join(str(d.get('cpus')) for d in domains) or 'none reported'}); "
              "the comparison needs two or more (rerun on e.g. a 16-core Ryzen/EPYC).")


if __name__ == "__main__":
    main()
