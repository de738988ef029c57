"""How often does ``compare`` cry wolf, and how small a slowdown does it catch?

Takes real ``cpu.sqrt_mod`` samples (one fresh run with many repetitions, or an existing run
with ``--results DIR --run RUN_ID``), then:

* false-alarm rate: 200 A-vs-A pairs, each side drawn with replacement from the same real
  samples, compared with ``stats.compare`` (alpha 0.01): the share with a verdict other than
  "no significant change" (expected at most ~alpha);
* power: for each slowdown s, NEW = resampled real samples x (1 - s) (a real distribution
  shifted by s); the smallest s detected as "slower" in at least 80% of pairs, at 5 and at 20
  samples per side.

Usage: python benchmarks/compare_power.py [--repetitions 80] [--results DIR --run RUN_ID]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orchestrator.analysis.stats import compare

SLOWDOWNS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.10, 0.15, 0.20, 0.30, 0.50)
POWER = 0.8


def real_samples(results: Path | None, run_id: str | None, repetitions: int) -> np.ndarray:
    """Return measured element ops/s samples of cpu.sqrt_mod (running it once when no run is given)."""
    from orchestrator.query import connect

    if results is None:
        results = Path(tempfile.mkdtemp(prefix="compare-power-"))
        subprocess.run(["topobench", "run", "cpu.sqrt_mod", "--repetitions", str(repetitions), "--min-time",
                        "0.02", "--param", "cpu.sqrt_mod.elements=4096", "--results", str(results)],
                       check=True, capture_output=True)
    con = connect(results)
    where = "AND run_id = ?" if run_id else ""
    rows = con.execute(f"SELECT value FROM samples WHERE workload = 'cpu.sqrt_mod' AND NOT warmup "
                       f"AND metric = 'element_ops_per_s' {where}", [run_id] if run_id else []).fetchall()
    return np.array([r[0] for r in rows], dtype=float)


def verdicts(pool: np.ndarray, n: int, pairs: int, slowdown: float, rng: np.random.Generator) -> list[str]:
    """Return the verdicts of `pairs` comparisons of n resampled values against n values x (1 - slowdown)."""
    out = []
    for i in range(pairs):
        base = rng.choice(pool, n, replace=True)
        new = rng.choice(pool, n, replace=True) * (1.0 - slowdown)
        out.append(compare(base, new, higher_is_better=True, alpha=0.01, seed=i).verdict)
    return out


def main() -> None:
    """Print the false-alarm rate and the smallest slowdown detected at 5 and 20 samples per side."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=80)
    parser.add_argument("--results", type=Path)
    parser.add_argument("--run")
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--power-pairs", type=int, default=50)
    args = parser.parse_args()
    t0 = time.perf_counter()
    pool = real_samples(args.results, args.run, args.repetitions)
    median = float(np.median(pool))
    mad = float(np.median(np.abs(pool - median)))
    print(f"real cpu.sqrt_mod samples: {pool.size}, median {median / 1e6:.1f} M element ops/s, "
          f"CV {pool.std(ddof=1) / pool.mean():.2%}, MAD/median {mad / median:.2%}")
    rng = np.random.default_rng(1)
    for n in (5, 20):
        v = verdicts(pool, n, args.pairs, 0.0, rng)
        alarms = sum(x != "no significant change" for x in v)
        print(f"n={n:2d}: false alarms {alarms}/{args.pairs} A-vs-A pairs = {alarms / args.pairs:.1%} (alpha 0.01)")
    for n in (5, 20):
        smallest = None
        rates = []
        for s in SLOWDOWNS:
            v = verdicts(pool, n, args.power_pairs, s, rng)
            rate = sum(x == "slower" for x in v) / len(v)
            rates.append(f"{s:.1%}:{rate:.0%}")
            if smallest is None and rate >= POWER:
                smallest = s
        found = "none of those tried" if smallest is None else f"{smallest:.1%}"
        print(f"n={n:2d}: smallest slowdown detected in >= {POWER:.0%} of {args.power_pairs} pairs: {found}")
        print(f"       detection rate by slowdown: {' '.join(rates)}")
    print(f"elapsed {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
