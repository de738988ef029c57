"""Bytes the store writes per trial over one sweep: does a run's cost grow with its trial count?

Runs one sweep of a tiny ``cpu.sqrt_mod`` (``--trials`` parameter sets, 1 worker, 2 rounds
each) in-process on an embedded Ray and, after every trial, looks at the results folder:
every file that is new since the last look (a new path, or a new inode: a file replaced by a
rename) counts as written, with its size. Temporary files count once, under the name they
were renamed to. The last look is after the run closed, so compaction counts too. The same
measure works on any version of the store, so its figures compare before and after a change.

Run:  python benchmarks/store_writes.py [--trials 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

from _common import note, print_table

os.environ.setdefault("RAY_AUTH_MODE", "token")  # read when Ray is imported (see README, On a Ray cluster)
os.environ.pop("RAY_ADDRESS", None)  # an embedded Ray of its own, never a cluster running here


def snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    """Return {path: (inode, mtime ns, size)} of every file under ``root``."""
    out = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = os.path.join(dirpath, name)
            try:
                st = os.stat(path)
            except FileNotFoundError:
                continue  # removed while walking (a temporary file)
            out[path] = (st.st_ino, st.st_mtime_ns, st.st_size)
    return out


def written(before: dict, after: dict) -> tuple[int, int]:
    """Return (bytes, files) of the files in ``after`` that are new or replaced since ``before``."""
    fresh = [size for path, (ino, mtime, size) in after.items() if before.get(path, (None, None))[:2] != (ino, mtime)]
    return sum(fresh), len(fresh)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=30, help="trials of the sweep (default 30)")
    args = ap.parse_args()

    import ray

    from orchestrator.pipeline.jobs import run_sweep
    from orchestrator.pipeline.sweep_file import parse_sweep

    spec = parse_sweep({"repetitions": 2, "min_time": 0.01, "warmup": 0, "placement": "none",
                        "workloads": {"cpu.sqrt_mod": {"elements": [1024 + i for i in range(args.trials)]}}})
    per_trial: list[tuple[int, int]] = []
    with tempfile.TemporaryDirectory(prefix="topobench-writes-") as tmp:
        results = Path(tmp) / "r"
        seen: dict = {}

        def look(i, trial, record) -> None:
            nonlocal seen
            now = snapshot(results)
            if record is not None:
                per_trial.append(written(seen, now))
            seen = now

        ray.init("local", num_cpus=2, object_store_memory=200 * 2**20, include_dashboard=False,
                 log_to_driver=False, configure_logging=False)
        try:
            note(f"a sweep of {args.trials} trials")
            run_sweep(spec, None, results, on_trial=look)
        finally:
            ray.shutdown()
        final_bytes, final_files = written(seen, snapshot(results))
        stored = sum(size for _, _, size in snapshot(results).values())
    rows = []
    for k in sorted({1, 2, 5, 10, 20, len(per_trial)} & set(range(1, len(per_trial) + 1))):
        size, files = per_trial[k - 1]
        rows.append([str(k), str(size), str(files)])
    total = sum(b for b, _ in per_trial) + final_bytes
    print(f"\n## Bytes written by the store over a sweep of {len(per_trial)} trials\n")
    print_table(["trial", "bytes written by its commit", "files"], rows)
    first, last = per_trial[0][0], per_trial[-1][0]
    print(f"\nclose (final run row, compaction): {final_bytes} bytes in {final_files} files")
    print(f"total written: {total} bytes; stored at the end: {stored} bytes; "
          f"written/stored: {total / stored:.1f}x")
    # From the second trial on: the first also writes the run's first nodes rows.
    slope = statistics.linear_regression(range(2, len(per_trial) + 1), [b for b, _ in per_trial[1:]]).slope
    print(f"last trial / first trial: {last / first:.2f}x; median per trial "
          f"{statistics.median(b for b, _ in per_trial):.0f} bytes; growth {slope:+.0f} bytes per trial per "
          "trial stored before it (0: linear total; above 0: quadratic)")


if __name__ == "__main__":
    main()
