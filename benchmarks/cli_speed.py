"""How fast the CLI answers: --help, workloads, and query over datasets of 10, 100 and 1000 runs.

Each command runs as a fresh process (as a user types it), ``--samples`` times, interleaved
command by command; the table gives medians. The datasets are copies of one real run
(``topobench run cpu.sqrt_mod``, made first) under new run ids, so every file is one
topobench wrote. Targets (issue 9): --help and workloads under 0.3 s; query over 1,000 runs
under 1 s, and its cost growing no faster than the number of runs.

With ``--busy`` a second process spins on one CPU the whole time (issue 19's condition: --help
under 0.3 s while another process keeps one CPU busy).

With ``--s3`` the datasets are on a moto S3 server started here on 127.0.0.1 (``moto[server]``,
the test extra) and ``query`` reads them through ``--results s3://...?endpoint_override=...``;
moto is a Python server, so each request costs milliseconds more than a local file: the figure
is an upper bound for an S3 service on the same network, not a prediction.

Run:  python benchmarks/cli_speed.py [--samples 7] [--busy] [--s3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, TOPOBENCH, note, print_table

sys.path.insert(0, str(REPO / "tests"))
from dataset import copy_run

QUERY = "SELECT workload, metric, count(*) AS n, median(value) AS median FROM samples GROUP BY ALL"
SIZES = (10, 100, 1000)


def timed(cmd: list[str]) -> float:
    """Return the wall seconds of one run of ``cmd`` (a fresh process); raise if it fails."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False,
                          env=dict(os.environ, COLUMNS="200"))
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"`{' '.join(cmd)}` exited {proc.returncode}: {proc.stderr[-2000:]}")
    return elapsed


def make_datasets(root: Path, s3: str | None = None) -> dict[int, str]:
    """Return {runs: location}: one real run, copied to 10, 100 and 1000 runs (in folders, or on ``s3``)."""
    from concurrent.futures import ThreadPoolExecutor

    base = root / "base"
    note("one real run: topobench run cpu.sqrt_mod")
    subprocess.run([TOPOBENCH, "run", "cpu.sqrt_mod", "--repetitions", "3", "--min-time", "0.02",
                    "--results", str(base)], check=True, stdout=subprocess.DEVNULL)
    (run_id,) = [p.name.split("=", 1)[1] for p in (base / "runs").iterdir()]
    out = {}
    for size in SIZES:
        note(f"copying it to {size} runs")
        out[size] = str(root / f"runs-{size}") if s3 is None else s3.format(prefix=f"runs-{size}")
        ids = [f"20270101T{i // 3600:02d}{i // 60 % 60:02d}{i % 60:02d}Z-{i:06x}" for i in range(size)]
        with ThreadPoolExecutor(1 if s3 is None else 16) as pool:  # a request per file on S3: many at once
            list(pool.map(copy_run, [base] * size, [run_id] * size, ids, [out[size]] * size))
    return out


def start_moto() -> tuple[object, str]:
    """Start a moto S3 server on 127.0.0.1 with a bucket; return it and a URI template ({prefix})."""
    import logging
    import socket

    import pyarrow.fs as pafs
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1",
                      AWS_EC2_METADATA_DISABLED="true")  # the query processes inherit them
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    pafs.S3FileSystem(endpoint_override=f"127.0.0.1:{port}", scheme="http", allow_bucket_creation=True).create_dir(
        "bench")
    return server, f"s3://bench/{{prefix}}?endpoint_override=127.0.0.1:{port}&scheme=http"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--samples", type=int, default=7, help="runs of each command (default 7)")
    ap.add_argument("--busy", action="store_true", help="keep one CPU busy with a spinning process meanwhile")
    ap.add_argument("--s3", action="store_true", help="keep the datasets on a moto S3 server started here")
    args = ap.parse_args()
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.busy else None
    try:
        run_all(args)
    finally:
        if spinner is not None:
            spinner.kill()


def run_all(args: argparse.Namespace) -> None:
    """Time every command and print the table."""
    server, s3 = start_moto() if args.s3 else (None, None)
    with tempfile.TemporaryDirectory(prefix="topobench-cli-") as tmp:
        datasets = make_datasets(Path(tmp), s3)
        commands = {"topobench --help": [TOPOBENCH, "--help"], "topobench workloads": [TOPOBENCH, "workloads"]}
        for size, location in datasets.items():
            where = "on moto S3" if s3 else f"{sum(1 for _ in Path(location).rglob('*.parquet'))} files"
            commands[f"query, {size} runs ({where})"] = [TOPOBENCH, "query", QUERY, "--results", location]
        times: dict[str, list[float]] = {name: [] for name in commands}
        for i in range(args.samples):
            note(f"round {i + 1}/{args.samples}")
            for name, cmd in commands.items():
                times[name].append(timed(cmd))
        python = [timed([sys.executable, "-c", "pass"]) for _ in range(args.samples)]
    if server is not None:
        server.stop()
    medians = {name: statistics.median(t) for name, t in times.items()}
    busy = ", one CPU kept busy by another process" if args.busy else ""
    print(f"\n## CLI speed: medians of {args.samples} fresh processes each, interleaved{busy}\n")
    print_table(["command", "median s", "min s", "max s"],
                [[name, f"{medians[name]:.3f}", f"{min(t):.3f}", f"{max(t):.3f}"] for name, t in times.items()]
                + [["python -c pass (interpreter start alone)", f"{statistics.median(python):.3f}",
                    f"{min(python):.3f}", f"{max(python):.3f}"]])
    small, large = medians[next(k for k in medians if k.startswith("query, 10 "))], \
        medians[next(k for k in medians if k.startswith("query, 1000 "))]
    print(f"\nquery 1000 runs / 10 runs: {large / small:.2f}x for 100x the runs "
          f"(linear would be 100x); 1000-run query {'under' if large < 1 else 'OVER'} 1 s")


if __name__ == "__main__":
    main()
