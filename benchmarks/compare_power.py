"""How often does ``compare`` cry wolf on round units, and how small a slowdown does it catch?

Rounds x workers throughputs come from two sources:

* synthetic: the model of issue 10, every sample 1000·(1 + 0.03·z_round + 0.01·e), a round
  effect of sd 3% shared by the round's workers and 1% per-sample noise, drawn afresh;
* real: ``cpu.sqrt_mod`` measured on this machine in 1 and 2 plain processes pinned one per
  CPU, all starting each round at a barrier with the same iteration count, as the runner's
  synchronized rounds do (no Ray, no CLI); pairs draw rounds with replacement from them.

At 1 and 2 workers and ``--rounds`` rounds per side it prints, at alpha 0.01, the false-alarm
rate of A/A pairs (verdict other than "no significant change") with the per-round means as
units (``stats.compare`` as now) and with every sample pooled (as trials did before), and the
smallest slowdown s (NEW = rounds x (1 − s)) called "slower" in >= 80% of pairs. The real part
also compares adjacent disjoint blocks of consecutive rounds, which keeps the machine's drift.

Usage: python benchmarks/compare_power.py [--rounds 10] [--pairs 2000] [--power-pairs 300]
       [--real-rounds 300] [--min-time 0.02] [--no-real]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy.stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orchestrator.analysis.stats import compare

ALPHA = 0.01
POWER = 0.8
SLOWDOWNS = (0.005, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.06, 0.075, 0.10, 0.15, 0.20, 0.30)
WORKLOAD, PARAMS = "cpu.sqrt_mod", {"elements": 4096}

Draw = Callable[[np.random.Generator, int], np.ndarray]
"""Return `pairs` trials of rounds x workers throughputs, shape (pairs, rounds, workers)."""


def verdicts(base: np.ndarray, new: np.ndarray) -> list[str]:
    """Return compare's verdict for each row pair of units (only p < alpha can be significant)."""
    p = scipy.stats.mannwhitneyu(new, base, axis=1).pvalue
    out = ["no significant change"] * base.shape[0]
    for i in np.flatnonzero(p < ALPHA):
        out[i] = compare(base[i], new[i], alpha=ALPHA).verdict
    return out


def units(trials: np.ndarray, pooled: bool) -> np.ndarray:
    """Return per pair the units compared: per-round means, or every sample pooled (before)."""
    return trials.reshape(trials.shape[0], -1) if pooled else trials.mean(axis=2)


def false_alarms(draw: Draw, pairs: int, pooled: bool, rng: np.random.Generator) -> float:
    """Return the share of A/A pairs called significant."""
    base, new = units(draw(rng, pairs), pooled), units(draw(rng, pairs), pooled)
    return sum(v != "no significant change" for v in verdicts(base, new)) / pairs


def smallest_slowdown(draw: Draw, pairs: int, rng: np.random.Generator) -> tuple[float | None, str]:
    """Return the smallest slowdown detected as "slower" in >= POWER of pairs, and the rates."""
    found, rates = None, []
    for s in SLOWDOWNS:
        base, new = units(draw(rng, pairs), False), units(draw(rng, pairs), False) * (1.0 - s)
        rate = sum(v == "slower" for v in verdicts(base, new)) / pairs
        rates.append(f"{s:.1%}:{rate:.0%}")
        if rate >= POWER:
            found = s
            break
    return found, " ".join(rates)


def synthetic(workers: int, rounds: int) -> Draw:
    """Return a draw from the issue-10 model at `workers` workers."""
    def draw(rng: np.random.Generator, pairs: int) -> np.ndarray:
        effect = 0.03 * rng.standard_normal((pairs, rounds, 1))
        return 1000.0 * (1.0 + effect + 0.01 * rng.standard_normal((pairs, rounds, workers)))
    return draw


def resampled(pool: np.ndarray, rounds: int) -> Draw:
    """Return a draw of `rounds` rounds (rows of `pool`, rounds x workers) with replacement."""
    def draw(rng: np.random.Generator, pairs: int) -> np.ndarray:
        return pool[rng.integers(0, pool.shape[0], (pairs, rounds))]
    return draw


# --- real rounds ------------------------------------------------------------------------


def _workload(cpu: int, rank: int, workers: int):
    """Return the set-up workload of one worker pinned to `cpu` with one BLAS/OpenMP thread."""
    from threadpoolctl import threadpool_limits

    from workloads.base import WorkerContext
    from workloads.registry import get_workload

    os.sched_setaffinity(0, {cpu})
    threadpool_limits(limits=1)
    wl = get_workload(WORKLOAD)(PARAMS)
    wl.setup(WorkerContext(worker_rank=rank, workers=workers, cpus=(cpu,), threads=1))
    return wl


def _timed(wl, n: int) -> float:
    """Return ops/s of one run(n) (perf_counter_ns, as the harness)."""
    t0 = time.perf_counter_ns()
    m = wl.run(n)
    return m.ops / (time.perf_counter_ns() - t0) * 1e9


def _worker(rank: int, cpu: int, workers: int, iterations: int, rounds: int, barrier, queue) -> None:
    wl = _workload(cpu, rank, workers)
    try:
        barrier.wait()
        _timed(wl, iterations)  # warm-up round
        out = []
        for _ in range(rounds):
            barrier.wait()
            out.append(_timed(wl, iterations))
    finally:
        wl.teardown()
    queue.put((rank, out))


def _calibrate(cpu: int, min_time_s: float) -> int:
    """Return the iteration count whose run lasts at least `min_time_s` (doubling)."""
    wl = _workload(cpu, 0, 1)
    try:
        n = 1
        while True:
            t0 = time.perf_counter_ns()
            wl.run(n)
            if time.perf_counter_ns() - t0 >= min_time_s * 1e9:
                return n
            n *= 2
    finally:
        wl.teardown()


def real_rounds(workers: int, rounds: int, min_time_s: float) -> np.ndarray:
    """Return rounds x workers ops/s of cpu.sqrt_mod in synchronized rounds, one CPU per worker."""
    cpus = sorted(os.sched_getaffinity(0))[:workers]
    if len(cpus) < workers:
        raise SystemExit(f"{workers} workers need {workers} usable CPUs; this process has {len(cpus)}")
    ctx = mp.get_context("spawn")
    with ctx.Pool(1) as pool:
        iterations = pool.apply(_calibrate, (cpus[0], min_time_s))
    barrier, queue = ctx.Barrier(workers), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(r, c, workers, iterations, rounds, barrier, queue))
             for r, c in enumerate(cpus)]
    for p in procs:
        p.start()
    results = dict(queue.get() for _ in procs)
    for p in procs:
        p.join()
    return np.column_stack([results[r] for r in range(workers)])


def adjacent_blocks(pool: np.ndarray, rounds: int) -> tuple[int, int]:
    """Return (alarms, pairs) comparing disjoint consecutive blocks 2k vs 2k+1 of `rounds`."""
    means = pool.mean(axis=1)
    blocks = means[: means.size // (2 * rounds) * 2 * rounds].reshape(-1, 2, rounds)
    v = verdicts(blocks[:, 0], blocks[:, 1])
    return sum(x != "no significant change" for x in v), len(v)


# --- report -----------------------------------------------------------------------------


def report(name: str, draw: Draw, args: argparse.Namespace, rng: np.random.Generator) -> None:
    """Print one source's false-alarm rates and smallest detected slowdown."""
    after = false_alarms(draw, args.pairs, False, rng)
    before = false_alarms(draw, args.pairs, True, rng)
    found, rates = smallest_slowdown(draw, args.power_pairs, rng)
    detected = "none of those tried" if found is None else f"{found:.1%}"
    print(f"{name}: false alarms {after:.2%} on round means (before, pooled: {before:.2%}); "
          f"smallest slowdown detected in >= {POWER:.0%}: {detected}")
    print(f"    detection rate by slowdown: {rates}")


def main() -> None:
    """Print false alarms and power on synthetic and real rounds at 1 and 2 workers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10, help="rounds per side of a pair")
    parser.add_argument("--pairs", type=int, default=2000, help="A/A pairs per figure")
    parser.add_argument("--power-pairs", type=int, default=300, help="pairs per slowdown")
    parser.add_argument("--real-rounds", type=int, default=300, help="rounds measured per W")
    parser.add_argument("--min-time", type=float, default=0.02, help="seconds per real sample")
    parser.add_argument("--no-real", action="store_true", help="skip the real measurements")
    args = parser.parse_args()
    t0 = time.perf_counter()
    rng = np.random.default_rng(1)
    print(f"alpha {ALPHA}, {args.rounds} rounds per side, {args.pairs} A/A pairs, "
          f"{args.power_pairs} pairs per slowdown")
    for workers in (1, 2):
        report(f"synthetic W={workers}", synthetic(workers, args.rounds), args, rng)
    if not args.no_real:
        for workers in (1, 2):
            pool = real_rounds(workers, args.real_rounds, args.min_time)
            means = pool.mean(axis=1)
            spread = np.median(np.abs(means - np.median(means))) / np.median(means)
            per_worker = " ".join(f"{np.median(pool[:, w]) / 1e6:.1f}" for w in range(workers))
            print(f"real {WORKLOAD} W={workers}: {pool.shape[0]} rounds, per-worker medians "
                  f"{per_worker} M ops/s, round-mean CV {means.std(ddof=1) / means.mean():.2%}, "
                  f"MAD/median {spread:.2%}")
            report(f"real W={workers} (rounds resampled)", resampled(pool, args.rounds), args, rng)
            alarms, pairs = adjacent_blocks(pool, args.rounds)
            print(f"    adjacent blocks of {args.rounds} consecutive rounds: {alarms}/{pairs} "
                  f"called significant")
    print(f"elapsed {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
