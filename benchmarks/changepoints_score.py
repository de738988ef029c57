#!/usr/bin/env python3
"""How well and how fast does the change-point detector find labelled changes?

Scores ``orchestrator.analysis.changepoints.detect_change_points`` (defaults) on the labelled
development set with the set's own score.py (F1 with a 5-point margin and covering, TCPD), per
series beside "never report a change" (scored here the same way), then the mean beside every
baseline of the set's README. Then the time detection takes over series of 1,000 and 10,000
points and over 500 series of 50 points (noise with a few random steps, seeded).

With ``--loo`` it also gives leave-one-out evidence: for each series, (alpha, min_size) is chosen
on the other 14 from a grid (by mean F1 + covering) and the held-out series is scored with it;
the grid's spread of means is printed too.

The set lives outside the project: ../shared/changepoints beside the repository, or
TOPOBENCH_CHANGEPOINTS_DIR, or --data.

Usage: python benchmarks/changepoints_score.py [--data DIR] [--loo] [--no-timing]
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import os
import sys
import time
from pathlib import Path

import numpy as np
from _common import REPO, note, print_table

from orchestrator.analysis.changepoints import (
    DEFAULT_ALPHA,
    DEFAULT_MIN_SIZE,
    detect_change_points,
)

DEFAULT_DATA = Path(os.environ.get("TOPOBENCH_CHANGEPOINTS_DIR",
                                   REPO.parent / "shared" / "changepoints"))

BASELINES = (  # mean over the 15 series, from the set's README
    ("never report a change", 0.676, 0.584),
    ("ratio to previous point > 10% (two-sided)", 0.324, 0.342),
    ("ruptures PELT, l2, pen = 2·ln(n)·σ²", 0.467, 0.403),
    ("ruptures PELT, rbf, same penalty in feature space", 0.614, 0.527),
    ("Otava compute_change_points defaults (window 50, p 0.001)", 0.600, 0.525),
    ("Otava window 30, p 0.001", 0.570, 0.518),
    ("Otava original e-divisive, 100 permutations, p 0.001", 0.644, 0.546),
)

ALPHAS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05)
MIN_SIZES = (3, 4, 5, 6, 8)


def load_score(folder: Path):
    """Import the set's own score.py."""
    spec = importlib.util.spec_from_file_location("changepoints_score", folder / "score.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def predict(series: list[dict], **settings) -> dict[str, list[int]]:
    """Return the detector's change points of every series."""
    return {s["name"]: list(detect_change_points(s["values"], **settings).indices)
            for s in series}


def score_table(score, folder: Path, series: list[dict]) -> None:
    """Print per-series F1 and covering of the detector beside never reporting a change."""
    ours = score.score(str(folder), predict(series))
    never = score.score(str(folder), {s["name"]: [] for s in series})
    rows = [(o["name"], o["n"], o["predicted"], f"{o['f1']:.3f}", f"{o['cover']:.3f}",
             f"{z['f1']:.3f}", f"{z['cover']:.3f}")
            for o, z in zip(ours["series"], never["series"])]
    rows.append(("mean", "", "", f"{ours['mean_f1']:.3f}", f"{ours['mean_cover']:.3f}",
                 f"{never['mean_f1']:.3f}", f"{never['mean_cover']:.3f}"))
    print(f"detect_change_points(alpha={DEFAULT_ALPHA}, min_size={DEFAULT_MIN_SIZE}) "
          f"against never reporting a change, margin 5")
    print_table(("series", "n", "found", "F1", "cover", "never F1", "never cover"), rows)
    print()
    means = [("this detector (defaults)", f"{ours['mean_f1']:.3f}", f"{ours['mean_cover']:.3f}")]
    means += [(name, f"{f1:.3f}", f"{cover:.3f}") for name, f1, cover in BASELINES]
    print_table(("method (mean over the series)", "F1", "cover"), means)


def leave_one_out(score, folder: Path, series: list[dict]) -> None:
    """Print the leave-one-out score of choosing (alpha, min_size) on the other series."""
    grid = list(itertools.product(ALPHAS, MIN_SIZES))
    f1 = np.empty((len(grid), len(series)))
    cover = np.empty_like(f1)
    for g, (alpha, min_size) in enumerate(grid):
        note(f"grid alpha={alpha} min_size={min_size}")
        rows = score.score(str(folder), predict(series, alpha=alpha, min_size=min_size))["series"]
        f1[g], cover[g] = [r["f1"] for r in rows], [r["cover"] for r in rows]
    held_f1, held_cover, chosen = [], [], []
    for k in range(len(series)):
        rest = np.arange(len(series)) != k
        best = int(np.argmax(f1[:, rest].mean(axis=1) + cover[:, rest].mean(axis=1)))
        held_f1.append(f1[best, k])
        held_cover.append(cover[best, k])
        chosen.append(grid[best])
    default = grid.index((DEFAULT_ALPHA, DEFAULT_MIN_SIZE))
    print()
    print(f"leave-one-out: settings chosen on 14 series, scored on the 15th "
          f"(grid alpha {ALPHAS} x min_size {MIN_SIZES})")
    print_table(("", "F1", "cover"), [
        ("defaults on all 15", f"{f1[default].mean():.3f}", f"{cover[default].mean():.3f}"),
        ("leave-one-out", f"{np.mean(held_f1):.3f}", f"{np.mean(held_cover):.3f}"),
        ("grid: worst mean", f"{f1.mean(axis=1).min():.3f}", f"{cover.mean(axis=1).min():.3f}"),
        ("grid: median mean", f"{np.median(f1.mean(axis=1)):.3f}",
         f"{np.median(cover.mean(axis=1)):.3f}"),
        ("grid: best mean", f"{f1.mean(axis=1).max():.3f}", f"{cover.mean(axis=1).max():.3f}"),
    ])
    print("settings chosen per held-out series:",
          ", ".join(f"{s['name'].removeprefix('tcpd_')}={a}/{m}"
                    for s, (a, m) in zip(series, chosen)))
    print()
    print_table(("alpha \\ min_size", *MIN_SIZES), [
        (alpha, *(f"{f1[grid.index((alpha, m))].mean():.3f}/"
                  f"{cover[grid.index((alpha, m))].mean():.3f}" for m in MIN_SIZES))
        for alpha in ALPHAS])


def _stepped(rng: np.random.Generator, n: int, steps: int) -> np.ndarray:
    """Return n points of unit noise with `steps` random ±3 steps."""
    x = rng.standard_normal(n)
    for c in rng.choice(np.arange(10, n - 10), steps, replace=False):
        x[c:] += rng.choice((-3.0, 3.0))
    return x


def _time(series: list[np.ndarray]) -> float:
    start = time.perf_counter()
    for x in series:
        detect_change_points(x)
    return time.perf_counter() - start


def timings() -> None:
    """Print the time detection takes over long series and over many short ones."""
    rng = np.random.default_rng(2024)
    rows = []
    for n, steps, reps in ((1000, 0, 5), (1000, 5, 5), (1000, 20, 5),
                           (10_000, 0, 2), (10_000, 20, 2), (10_000, 100, 2)):
        batch = [_stepped(rng, n, steps) for _ in range(reps)]
        rows.append((f"1 series of {n} points, {steps} steps", f"{_time(batch) / reps:.3f}"))
    walk = [np.cumsum(rng.standard_normal(1000)) for _ in range(5)]
    rows.append(("1 random walk of 1000 points", f"{_time(walk) / 5:.3f}"))
    short = [_stepped(rng, 50, int(rng.integers(0, 3))) for _ in range(500)]
    rows.append(("500 series of 50 points (0-2 steps), in all", f"{_time(short):.3f}"))
    print()
    print_table(("detection", "seconds"), rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--loo", action="store_true", help="add the leave-one-out evidence")
    parser.add_argument("--no-timing", action="store_true")
    args = parser.parse_args(argv)
    if not (args.data / "score.py").exists():
        print(f"no labelled change-point set at {args.data}: pass --data or set "
              f"TOPOBENCH_CHANGEPOINTS_DIR", file=sys.stderr)
        return 2
    score = load_score(args.data)
    series = score.load_folder(str(args.data))
    score_table(score, args.data, series)
    if args.loo:
        leave_one_out(score, args.data, series)
    if not args.no_timing:
        timings()
    return 0


if __name__ == "__main__":
    sys.exit(main())
