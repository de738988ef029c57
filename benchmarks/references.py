#!/usr/bin/env python3
"""Checks of topobench's workloads against independent references, side by side.

Issue 4's checks. Each round runs side A, then side B (A B A B ...):
  A  one `topobench run memory.stream io.sequential cpu.matmul net.http --workers 1`;
  B  the independent references, each pinned to the CPU topobench's worker reported:
     (a) a small C STREAM-style triad (a[j] = b[j] + q*c[j], one thread, arrays of the same
         size, STREAM's 24 bytes per element), built with the system's gcc at run time;
         target: topobench's triad_gbs >= 80% of it;
     (b) `dd` with oflag=direct (write, conv=fsync) and iflag=direct (read) of a file of the
         same size and block size in the same folder as io.sequential's files; compared
         with write_mbs and cold_read_mbs (reported; no target);
     (c) numpy's own `a @ b` of the same n, timed directly with BLAS threads limited
         (threadpoolctl) to the worker's CPU count; target: within 3% of cpu.matmul's gflops;
     (d) `wrk -t1 -cC -dDs` against net.http's own server (workloads.network, set up in a
         separate pinned process), compared with net.http's requests_per_s: once with wrk on
         the server's CPU (the same single CPU topobench's worker has for client+server), and
         once with wrk on another CPU when there is one (reported; no target).
A part whose tool is missing (gcc, dd, wrk) says why and the rest go on.

Run:  python benchmarks/references.py [--rounds 3] [--repetitions 10] [--min-time 0.2]
      [--stream-mib 512] [--io-mib 64] [--block-kib 1024] [--matmul-n 512] [--wrk-seconds 5]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import REPO, median, note, pct, print_table, ratio, run_topobench


def si(value: float, unit: str = "") -> str:
    """Format a figure with 4 significant digits and its unit (no SI prefix)."""
    if math.isnan(value):
        return "n/a"
    text = f"{value:.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return f"{text} {unit}".rstrip()

STREAM_C = r"""
/* STREAM-style triad, one thread: a[j] = b[j] + q*c[j]; 24 bytes per element counted. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void triad(double *restrict a, const double *restrict b, const double *restrict c,
                  double q, long n) {
    for (long j = 0; j < n; j++) a[j] = b[j] + q * c[j];
}

int main(int argc, char **argv) {
    long n = atol(argv[1]);
    int reps = atoi(argv[2]);
    double *a, *b, *c;
    if (posix_memalign((void **)&a, 64, n * sizeof(double)) ||
        posix_memalign((void **)&b, 64, n * sizeof(double)) ||
        posix_memalign((void **)&c, 64, n * sizeof(double))) return 2;
    for (long j = 0; j < n; j++) { a[j] = 1.0; b[j] = 2.0; c[j] = 0.0; }
    const double q = 3.0;
    triad(a, b, c, q, n);                        /* warm-up, as STREAM's first pass */
    for (int k = 0; k < reps; k++) {
        double t0 = now();
        triad(a, b, c, q, n);
        double t = now() - t0;
        printf("%.6f\n", 24.0 * (double)n / t / 1e9);   /* GB/s */
    }
    double check = 0;
    for (long j = 0; j < n; j += 4096) check += a[j];
    fprintf(stderr, "check %.1f (expect %.1f)\n", check, 2.0 * ((n + 4095) / 4096));
    return check == 2.0 * ((n + 4095) / 4096) ? 0 : 3;
}
"""

MATMUL_CHILD = r"""
import json, os, sys, time
spec = json.loads(sys.argv[1])
os.sched_setaffinity(0, spec["cpus"])
import numpy as np
from threadpoolctl import threadpool_limits
with threadpool_limits(limits=len(spec["cpus"]), user_api="blas"):
    n = spec["n"]
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n)), rng.standard_normal((n, n))
    def timed(k):
        t0 = time.perf_counter_ns()
        for _ in range(k):
            c = a @ b
        return time.perf_counter_ns() - t0
    k = 1                                    # calibrate as the harness does
    while (t := timed(k)) < spec["min_time"] * 1e9:
        k = max(2 * k, int(k * min(10, 1.2 * spec["min_time"] * 1e9 / max(t, 1))))
    timed(k)                                 # warm-up sample
    out = [2 * n**3 * k / timed(k) for _ in range(spec["repetitions"])]   # FLOP/ns = GFLOP/s
print(json.dumps({"iterations": k, "gflops": out}))
"""

HTTP_SERVER_CHILD = r"""
import json, os, sys
spec = json.loads(sys.argv[1])
os.sched_setaffinity(0, spec["cpus"])       # the server thread inherits it
sys.path.insert(0, spec["repo"])
from workloads.base import WorkerContext
from workloads.network import HttpLoad
wl = HttpLoad({"concurrency": spec["concurrency"], "body_bytes": spec["body_bytes"]})
wl.setup(WorkerContext(cpus=tuple(spec["cpus"])))
print(json.dumps({"port": wl.port}), flush=True)
sys.stdin.read()                            # until the parent closes stdin
wl.teardown()
print(json.dumps({"stopped": True}), flush=True)
"""


def pin(cpus):
    """Return a preexec_fn that pins the child to ``cpus``."""
    return lambda: os.sched_setaffinity(0, set(cpus))


# ---------------------------------------------------------------------------------------
# the references
# ---------------------------------------------------------------------------------------


def build_stream(workdir: Path) -> tuple[Path | None, str]:
    """Compile the C triad; return (binary, flags) or (None, why)."""
    gcc = shutil.which("gcc")
    if gcc is None:
        return None, "gcc not found on PATH"
    src = workdir / "triad.c"
    src.write_text(STREAM_C)
    binary = workdir / "triad"
    for flags in (["-O3", "-march=native"], ["-O3"]):
        proc = subprocess.run([gcc, *flags, "-o", str(binary), str(src)], capture_output=True,
                              text=True, check=False)
        if proc.returncode == 0:
            return binary, " ".join(flags)
    return None, f"gcc failed: {proc.stderr.strip()[-300:]}"


def c_triad(binary: Path, mib: int, reps: int, cpus) -> list[float]:
    """Run the C triad pinned to ``cpus``; return GB/s per repetition."""
    n = mib * (1 << 20) // 8
    proc = subprocess.run([str(binary), str(n), str(reps)], capture_output=True, text=True, check=False,
                          preexec_fn=pin(cpus))
    if proc.returncode != 0:
        raise RuntimeError(f"C triad exited {proc.returncode}: {proc.stderr.strip()}")
    return [float(x) for x in proc.stdout.split()]


DD_RE = re.compile(r"(\d+) bytes.*copied, ([0-9.eE+-]+) s")


def dd(args: list[str], cpus) -> float:
    """Run dd; return MB/s (1e6 bytes/s) from the bytes and seconds it prints on stderr."""
    proc = subprocess.run(["dd", *args], capture_output=True, text=True, check=False, preexec_fn=pin(cpus),
                          env=dict(os.environ, LC_ALL="C"))
    match = DD_RE.search(proc.stderr)
    if proc.returncode != 0 or not match:
        raise RuntimeError(f"dd {' '.join(args)} failed ({proc.returncode}): "
                           f"{proc.stderr.strip()[-300:]}")
    return int(match.group(1)) / float(match.group(2)) / 1e6


def dd_pair(folder: Path, mib: int, block_kib: int, cpus) -> tuple[float, float]:
    """dd write (oflag=direct, conv=fsync) then read (iflag=direct); the file is removed."""
    path = folder / f"dd-reference-{os.getpid()}.dat"
    count = mib * 1024 // block_kib
    try:
        w = dd(["if=/dev/zero", f"of={path}", f"bs={block_kib}K", f"count={count}",
                "oflag=direct", "conv=fsync"], cpus)
        r = dd([f"if={path}", "of=/dev/null", f"bs={block_kib}K", "iflag=direct"], cpus)
        return w, r
    finally:
        path.unlink(missing_ok=True)


def numpy_matmul(n: int, cpus, reps: int, min_time: float) -> dict:
    """numpy's own ``a @ b`` timed in a fresh pinned process; GFLOP/s per sample."""
    proc = subprocess.run([sys.executable, "-c", MATMUL_CHILD, json.dumps(
        {"n": n, "cpus": list(cpus), "repetitions": reps, "min_time": min_time})],
        capture_output=True, text=True, check=False, env=dict(os.environ, OMP_NUM_THREADS=str(len(cpus))))
    if proc.returncode != 0:
        raise RuntimeError(f"numpy matmul child failed: {proc.stderr.strip()[-500:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


WRK_RE = re.compile(r"Requests/sec:\s*([0-9.]+)")


def wrk_against_server(cpus_server, cpus_wrk_list, concurrency: int, body_bytes: int,
                       seconds: int) -> dict[str, float]:
    """Start net.http's server pinned to ``cpus_server``; load it with wrk once per CPU set."""
    server = subprocess.Popen([sys.executable, "-c", HTTP_SERVER_CHILD, json.dumps(
        {"cpus": list(cpus_server), "repo": str(REPO), "concurrency": concurrency,
         "body_bytes": body_bytes})], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    out: dict[str, float] = {}
    try:
        line = server.stdout.readline()
        if not line:
            raise RuntimeError(f"net.http server did not start: {server.stderr.read()[-500:]}")
        port = json.loads(line)["port"]
        for label, cpus in cpus_wrk_list:
            proc = subprocess.run(["wrk", "-t1", f"-c{concurrency}", f"-d{seconds}s",
                                   f"http://127.0.0.1:{port}/"], capture_output=True, text=True, check=False,
                                  preexec_fn=pin(cpus))
            match = WRK_RE.search(proc.stdout)
            if proc.returncode != 0 or not match:
                raise RuntimeError(f"wrk failed ({proc.returncode}): "
                                   f"{(proc.stdout + proc.stderr).strip()[-300:]}")
            errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)",
                               proc.stdout)
            if errors:
                note(f"  wrk reported: {errors.group(0)}")
            out[label] = float(match.group(1))
    finally:
        server.stdin.close()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    return out


# ---------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--rounds", type=int, default=3, help="A/B rounds (default 3)")
    ap.add_argument("--repetitions", type=int, default=10, help="samples per side per round")
    ap.add_argument("--min-time", type=float, default=0.2, help="calibration target, s")
    ap.add_argument("--stream-mib", type=int, default=512, help="size of each STREAM array")
    ap.add_argument("--io-mib", type=int, default=64, help="io.sequential / dd file size")
    ap.add_argument("--block-kib", type=int, default=1024, help="io / dd block size")
    ap.add_argument("--scratch", default=None,
                    help="folder for io.sequential's and dd's files (default: a new folder "
                         "under the current directory's filesystem temp, removed at the end)")
    ap.add_argument("--matmul-n", type=int, default=512, help="cpu.matmul.n")
    ap.add_argument("--concurrency", type=int, default=8, help="net.http.concurrency / wrk -c")
    ap.add_argument("--body-bytes", type=int, default=1024, help="net.http.body_bytes")
    ap.add_argument("--wrk-seconds", type=int, default=5, help="wrk -d")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="topobench-refs-"))
    scratch = Path(args.scratch) if args.scratch else work / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    params = {"memory.stream.size_mib": args.stream_mib,
              "io.sequential.size_mib": args.io_mib,
              "io.sequential.block_kib": args.block_kib,
              "io.sequential.scratch": str(scratch),
              "cpu.matmul.n": args.matmul_n,
              "net.http.concurrency": args.concurrency,
              "net.http.body_bytes": args.body_bytes}
    workloads = ["memory.stream", "io.sequential", "cpu.matmul", "net.http"]

    binary, stream_why = build_stream(work)
    have_dd = shutil.which("dd") is not None
    have_wrk = shutil.which("wrk") is not None
    all_cpus = sorted(os.sched_getaffinity(0))

    A: dict[str, list[float]] = {k: [] for k in
                                 ("triad", "write", "cold", "dropped", "gflops", "rps")}
    B: dict[str, list[float]] = {k: [] for k in
                                 ("triad", "write", "read", "gflops", "wrk_same", "wrk_other")}
    fails: dict[str, str] = {}
    worker_cpus: dict[str, tuple[int, ...]] = {}
    try:
        for rnd in range(args.rounds):
            note(f"round {rnd + 1}/{args.rounds}: topobench run {' '.join(workloads)}")
            run = run_topobench(workloads, workers=1, repetitions=args.repetitions,
                                min_time=args.min_time, params=params, check=False)
            if run.returncode != 0:
                fails.setdefault("topobench", f"exit {run.returncode}; some trials failed: "
                                 + "; ".join(f"{t['workload']}: {t.get('error')}"
                                             for t in run.trials if t.get("status") != "ok"
                                             and t.get("error")))
            for key, (w, m) in {"triad": ("memory.stream", "triad_gbs"),
                                "write": ("io.sequential", "write_mbs"),
                                "cold": ("io.sequential", "cold_read_mbs"),
                                "dropped": ("io.sequential", "cold_read_dropped"),
                                "gflops": ("cpu.matmul", "flop_per_s"),
                                "rps": ("net.http", "requests_per_s")}.items():
                values = run.values(w, m)
                A[key] += [v / 1e9 for v in values] if m == "flop_per_s" else values  # GFLOP/s
                rows = run.rows(w, m, warmup=False)
                if rows:
                    worker_cpus[w] = tuple(rows[0]["cpus"])
            cpu = lambda w: worker_cpus.get(w) or (all_cpus[0],)

            # B: the references, same CPU as the worker.
            if binary is not None:
                note(f"round {rnd + 1}: C triad on CPUs {list(cpu('memory.stream'))}")
                try:
                    B["triad"] += c_triad(binary, args.stream_mib, args.repetitions,
                                          cpu("memory.stream"))
                except RuntimeError as exc:
                    fails.setdefault("stream", str(exc))
            if have_dd:
                note(f"round {rnd + 1}: dd direct write/read in {scratch}")
                try:
                    for _ in range(3):  # a few files per round: dd runs are short
                        w, r = dd_pair(scratch, args.io_mib, args.block_kib, cpu("io.sequential"))
                        B["write"].append(w)
                        B["read"].append(r)
                except RuntimeError as exc:
                    fails.setdefault("dd", str(exc))
            note(f"round {rnd + 1}: numpy a @ b, n={args.matmul_n}")
            try:
                B["gflops"] += list(numpy_matmul(
                    args.matmul_n, cpu("cpu.matmul"), args.repetitions, args.min_time)["gflops"])
            except RuntimeError as exc:
                fails.setdefault("matmul", str(exc))
            if have_wrk:
                same = cpu("net.http")
                others = [c for c in all_cpus if c not in same]
                loads = [("wrk_same", same)] + ([("wrk_other", (others[0],))] if others else [])
                note(f"round {rnd + 1}: wrk against net.http's server on CPUs {list(same)}")
                try:
                    for k, v in wrk_against_server(same, loads, args.concurrency,
                                                   args.body_bytes, args.wrk_seconds).items():
                        B[k].append(v)
                except RuntimeError as exc:
                    fails.setdefault("wrk", str(exc))
    finally:
        shutil.rmtree(work, ignore_errors=True)
        leftovers = list(scratch.glob("*")) if scratch.exists() else []
        if leftovers:
            print(f"WARNING: files left in {scratch}: {leftovers}", file=sys.stderr)

    print(f"\n## references: {args.rounds} rounds, topobench 1 worker, {args.repetitions} "
          f"samples per round, min-time {args.min_time} s, interleaved A/B\n")
    rows = []
    # (a) STREAM triad
    tb, ref = median(A["triad"]), median(B["triad"])
    if binary is None:
        rows.append(["(a) memory.stream triad vs C triad", si(tb, "GB/s"), "skipped", "n/a",
                     f">=80%: {stream_why}"])
    else:
        r = ratio(tb, ref)
        best = max(B["triad"]) if B["triad"] else float("nan")
        rows.append([(f"(a) memory.stream triad_gbs vs C triad (gcc {stream_why}, 1 thread, "
                      f"{args.stream_mib} MiB arrays)"), si(tb, "GB/s"), si(ref, "GB/s"), pct(r),
                     ">=80%: " + ("ok" if r >= 0.8 else "BELOW") + f" (C best {best:.2f})"])
    # (b) io.sequential vs dd
    if have_dd:
        for label, a_key, b_key in (("write (tb: write+fsync; dd: oflag=direct conv=fsync)",
                                     "write", "write"),
                                    ("cold read (tb: fadvise DONTNEED; dd: iflag=direct)",
                                     "cold", "read")):
            tb, ref = median(A[a_key]), median(B[b_key])
            rows.append([(f"(b) io.sequential {label}, {args.io_mib} MiB, "
                          f"{args.block_kib} KiB blocks"), si(tb, "MB/s"), si(ref, "MB/s"), pct(ratio(tb, ref)),
                         "reported"])
    else:
        rows.append(["(b) io.sequential vs dd", "", "skipped", "n/a", "dd not found on PATH"])
    # (c) matmul
    tb, ref = median(A["gflops"]), median(B["gflops"])
    r = ratio(tb, ref)
    rows.append([f"(c) cpu.matmul gflops vs numpy a @ b (n={args.matmul_n}, 1 BLAS thread)",
                 si(tb, "GFLOP/s"), si(ref, "GFLOP/s"), pct(r),
                 "97-103%: " + ("ok" if 0.97 <= r <= 1.03 else "OUTSIDE")])
    # (d) http
    tb = median(A["rps"])
    if have_wrk:
        rows.append([(f"(d) net.http requests/s vs wrk -t1 -c{args.concurrency}, wrk on "
                      "the server's CPU"), si(tb, "req/s"), si(median(B["wrk_same"]), "req/s"),
                     pct(ratio(tb, median(B["wrk_same"]))), "reported"])
        if B["wrk_other"]:
            rows.append([("(d) net.http requests/s vs wrk on another CPU (server has a CPU "
                          "to itself)"), si(tb, "req/s"), si(median(B["wrk_other"]), "req/s"),
                         pct(ratio(tb, median(B["wrk_other"]))), "reported"])
    else:
        rows.append(["(d) net.http vs wrk", si(tb, "req/s"), "skipped", "n/a",
                     "wrk not found (apt-get install -y wrk)"])
    print_table(["check", "topobench", "reference", "tb/ref", "target"], rows)
    print(f"\n  samples: triad {len(A['triad'])}/{len(B['triad'])}, io {len(A['write'])}/"
          f"{len(B['write'])}, matmul {len(A['gflops'])}/{len(B['gflops'])}, http "
          f"{len(A['rps'])}/{len(B['wrk_same'])} (topobench/reference)")
    if A["dropped"]:
        print(f"  io.sequential cold_read_dropped (share of cycles whose page drop held): "
              f"{median(A['dropped']):.2f}")
    print(f"  worker CPUs: {json.dumps({w: list(c) for w, c in worker_cpus.items()})}")
    for part, why in fails.items():
        print(f"  {part} FAILED (at least once): {why}")


if __name__ == "__main__":
    main()
