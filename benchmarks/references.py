#!/usr/bin/env python3
"""Checks of topobench's workloads against independent references, side by side.

Issue 12's checks (numba kernels), each round: a direct run (a plain pinned process, no
Ray: benchmarks/_common.run_direct), the C reference (gcc -O3 -march=native, pinned), then
`topobench run`; ratios of medians over all rounds:
  stream   memory.stream triad (size --stream-mib per array) vs C STREAM (four kernels in
           STREAM's order, same passes per sample, huge pages advised as numpy does): 1
           worker vs 1 thread (target >= 95%); 2 workers (placement cores, aggregate per
           round), 2 concurrent direct processes, and 1 worker x 2 numba threads vs C with
           OpenMP 2 threads (target >= 90%); mean rate (median of samples) and best rate
           (STREAM's: fastest pass of all) both shown;
  latency  memory.latency's auto sweep at L1d/2, L2/2, L3/2, 4xL3 vs a C pointer chase over
           the same Sattolo permutations (the sweep's draws, same hops; target 90-110%);
  c2c      cpu.c2c one-way ns on CPUs 0<->1 vs a C11-atomics ping-pong (acquire/release,
           same batches of 100 round trips, median; target 90-110%).
Issue 4's checks ("others"), each round side A, then side B (A B A B ...):
  A  one `topobench run io.sequential cpu.matmul net.http --workers 1`;
  B  the independent references, each pinned to the CPU topobench's worker reported:
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

Run:  python benchmarks/references.py [--parts stream,latency,c2c,others] [--rounds 3]
      [--repetitions 10] [--min-time 0.2] [--stream-mib 512] [--latency-hops 262144]
      [--io-mib 64] [--block-kib 1024] [--matmul-n 512] [--wrk-seconds 5]
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

from _common import REPO, median, note, pct, print_table, ratio, run_direct, run_topobench


def si(value: float, unit: str = "") -> str:
    """Format a figure with 4 significant digits and its unit (no SI prefix)."""
    if math.isnan(value):
        return "n/a"
    text = f"{value:.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return f"{text} {unit}".rstrip()

STREAM_C = r"""
/* STREAM's four kernels in STREAM's order, each one loop in place; per sample of P passes
   prints mean and best GB/s per kernel (copy scale add triad). OpenMP when built -fopenmp. */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double *alloc(long n) {          /* 2 MiB aligned, huge pages advised (as numpy does) */
    size_t huge = 2u << 20, bytes = ((size_t)n * 8 + huge - 1) / huge * huge;
    double *p = aligned_alloc(huge, bytes);
    if (p) madvise(p, bytes, MADV_HUGEPAGE);
    return p;
}

int main(int argc, char **argv) {
    long n = atol(argv[1]);
    int passes = atoi(argv[2]), samples = atoi(argv[3]);
    double *a = alloc(n), *b = alloc(n), *c = alloc(n);
    if (!a || !b || !c) return 2;
    const double q = sqrt(2.0) - 1.0;
    long j;
#pragma omp parallel for schedule(static)
    for (j = 0; j < n; j++) { a[j] = 1.0; b[j] = 2.0; c[j] = 0.0; }
    double ea = 1.0, eb = 2.0, ec = 0.0;
    const double bytes[4] = {16.0 * n, 16.0 * n, 24.0 * n, 24.0 * n};
    for (int k = 0; k < passes; k++) {   /* one untimed warm-up sample, as topobench's */
#pragma omp parallel for schedule(static)
        for (j = 0; j < n; j++) c[j] = a[j];
#pragma omp parallel for schedule(static)
        for (j = 0; j < n; j++) b[j] = q * c[j];
#pragma omp parallel for schedule(static)
        for (j = 0; j < n; j++) c[j] = a[j] + b[j];
#pragma omp parallel for schedule(static)
        for (j = 0; j < n; j++) a[j] = b[j] + q * c[j];
        ec = ea; eb = q * ec; ec = ea + eb; ea = eb + q * ec;
    }
    for (int s = 0; s < samples; s++) {
        double total[4] = {0}, best[4] = {1e30, 1e30, 1e30, 1e30}, t[5];
        for (int k = 0; k < passes; k++) {
            t[0] = now();
#pragma omp parallel for schedule(static)
            for (j = 0; j < n; j++) c[j] = a[j];
            t[1] = now();
#pragma omp parallel for schedule(static)
            for (j = 0; j < n; j++) b[j] = q * c[j];
            t[2] = now();
#pragma omp parallel for schedule(static)
            for (j = 0; j < n; j++) c[j] = a[j] + b[j];
            t[3] = now();
#pragma omp parallel for schedule(static)
            for (j = 0; j < n; j++) a[j] = b[j] + q * c[j];
            t[4] = now();
            for (int i = 0; i < 4; i++) {
                double d = t[i + 1] - t[i];
                total[i] += d;
                if (d < best[i]) best[i] = d;
            }
            ec = ea; eb = q * ec; ec = ea + eb; ea = eb + q * ec;
        }
        for (int i = 0; i < 4; i++)
            printf("%.6f %.6f ", bytes[i] * passes / total[i] / 1e9, bytes[i] / best[i] / 1e9);
        printf("\n");
        fflush(stdout);
    }
    double worst = 0;
    for (j = 0; j < n; j++) {
        double e = fabs(a[j] - ea) / ea + fabs(b[j] - eb) / eb + fabs(c[j] - ec) / ec;
        if (e > worst) worst = e;
    }
    fprintf(stderr, "max relative error %.3g\n", worst);
    return worst > 1e-13 ? 3 : 0;
}
"""

CHASE_C = r"""
/* Pointer chase over a given cyclic permutation of cache lines (lmbench lat_mem_rd style).
   args: successor-file lines hops samples pages(default|thp|base); prints ns per load per sample. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static void **chase(void **p, long hops) {
    for (long i = 0; i < hops; i++) p = (void **)*p;
    return p;
}

int main(int argc, char **argv) {
    long lines = atol(argv[2]), hops = atol(argv[3]);
    int samples = atoi(argv[4]);
    size_t huge = 2u << 20, bytes = (size_t)lines * 64;
    int64_t *next = malloc(lines * sizeof(int64_t));
    FILE *f = fopen(argv[1], "rb");
    if (!f || !next || fread(next, sizeof(int64_t), lines, f) != (size_t)lines) return 2;
    fclose(f);
    char *map = mmap(NULL, bytes + huge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED) return 2;
    if (!strcmp(argv[5], "thp")) madvise(map, bytes + huge, MADV_HUGEPAGE);
    if (!strcmp(argv[5], "base")) madvise(map, bytes + huge, MADV_NOHUGEPAGE);
    void **buf = (void **)(map + (huge - (uintptr_t)map % huge) % huge);
    for (long k = 0; k < lines; k++) buf[k * 8] = &buf[next[k] * 8];
    void **p = buf;
    for (int s = 0; s < samples; s++) {
        p = chase(p, lines < hops ? lines : hops);          /* warm walk, untimed */
        double t0 = now_ns();
        p = chase(p, hops);
        double t1 = now_ns();
        printf("%.4f\n", (t1 - t0) / hops);
        fflush(stdout);
    }
    fprintf(stderr, "end %p\n", (void *)p);
    return 0;
}
"""

C2C_C = r"""
/* Cache-line ping-pong between two pinned threads with C11 acquire/release atomics.
   args: cpuA cpuB batches samples; prints one-way ns (median over batches of 100 round trips). */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define BATCH 100
#define WARM 100
static struct { _Alignas(128) _Atomic int64_t v; char pad[120]; } line;
static pthread_barrier_t barrier;
static long batches;
static int64_t *out;

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (pthread_setaffinity_np(pthread_self(), sizeof set, &set)) exit(4);
}

static void *ping(void *arg) {
    pin((int)(intptr_t)arg);
    pthread_barrier_wait(&barrier);
    int64_t v = 0;
    for (int i = 0; i < WARM; i++) {
        atomic_store_explicit(&line.v, ++v, memory_order_release);
        ++v;
        while (atomic_load_explicit(&line.v, memory_order_acquire) != v) {}
    }
    for (long b = 0; b < batches; b++) {
        int64_t t0 = now_ns();
        for (int i = 0; i < BATCH; i++) {
            atomic_store_explicit(&line.v, ++v, memory_order_release);
            ++v;
            while (atomic_load_explicit(&line.v, memory_order_acquire) != v) {}
        }
        out[b] = now_ns() - t0;
    }
    return NULL;
}

static void *pong(void *arg) {
    pin((int)(intptr_t)arg);
    pthread_barrier_wait(&barrier);
    int64_t v = 0;
    for (long i = 0; i < WARM + batches * BATCH; i++) {
        ++v;
        while (atomic_load_explicit(&line.v, memory_order_acquire) != v) {}
        atomic_store_explicit(&line.v, ++v, memory_order_release);
    }
    return NULL;
}

static int cmp(const void *x, const void *y) {
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
    return (a > b) - (a < b);
}

int main(int argc, char **argv) {
    int a = atoi(argv[1]), b = atoi(argv[2]), samples = atoi(argv[4]);
    batches = atol(argv[3]);
    out = malloc(batches * sizeof(int64_t));
    for (int s = 0; s < samples; s++) {
        pthread_t t1, t2;
        atomic_store(&line.v, 0);
        pthread_barrier_init(&barrier, NULL, 2);
        pthread_create(&t1, NULL, ping, (void *)(intptr_t)a);
        pthread_create(&t2, NULL, pong, (void *)(intptr_t)b);
        pthread_join(t1, NULL);
        pthread_join(t2, NULL);
        pthread_barrier_destroy(&barrier);
        qsort(out, batches, sizeof(int64_t), cmp);
        double med = batches % 2 ? out[batches / 2] : 0.5 * (out[batches / 2 - 1] + out[batches / 2]);
        printf("%.3f\n", med / (2.0 * BATCH));
        fflush(stdout);
    }
    return 0;
}
"""

AB_C = r"""
/* The reference kernels as a shared library, called through ctypes on topobench's own
   arrays and buffers, alternating with the numba kernels (a kernel-level A/B). */
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

void triad(double *restrict a, const double *restrict b, const double *restrict c, double q,
           long n) {
    for (long j = 0; j < n; j++) a[j] = b[j] + q * c[j];
}

void triad_omp(double *restrict a, const double *restrict b, const double *restrict c,
               double q, long n) {
    long j;
#pragma omp parallel for schedule(static)
    for (j = 0; j < n; j++) a[j] = b[j] + q * c[j];
}

intptr_t chase(intptr_t start, long hops) {
    void **p = (void **)start;
    for (long i = 0; i < hops; i++) p = (void **)*p;
    return (intptr_t)p;
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int64_t ping(intptr_t flag, int64_t warm, int64_t batch, int64_t *out, int64_t batches) {
    _Atomic int64_t *line = (_Atomic int64_t *)flag;
    int64_t v = 0;
    for (int64_t i = 0; i < warm; i++) {
        atomic_store_explicit(line, ++v, memory_order_release);
        ++v;
        while (atomic_load_explicit(line, memory_order_acquire) != v) {}
    }
    for (int64_t b = 0; b < batches; b++) {
        int64_t t0 = now_ns();
        for (int64_t i = 0; i < batch; i++) {
            atomic_store_explicit(line, ++v, memory_order_release);
            ++v;
            while (atomic_load_explicit(line, memory_order_acquire) != v) {}
        }
        out[b] = now_ns() - t0;
    }
    return v;
}

int64_t pong(intptr_t flag, int64_t round_trips) {
    _Atomic int64_t *line = (_Atomic int64_t *)flag;
    int64_t v = 0;
    for (int64_t i = 0; i < round_trips; i++) {
        ++v;
        while (atomic_load_explicit(line, memory_order_acquire) != v) {}
        atomic_store_explicit(line, ++v, memory_order_release);
    }
    return v;
}
"""

# The kernel-level A/B child: numba kernel and C kernel alternately on the same data.
AB_CHILD = r"""
import ctypes, json, os, sys, time
spec = json.loads(sys.argv[1])
os.sched_setaffinity(0, spec["cpus"])
sys.path.insert(0, spec["repo"])
import numpy as np
from workloads.cpu import BATCH_ROUND_TRIPS, bounce
from workloads.kernels import compiled, set_threads
from workloads.memory import (LATENCY_LABELS, STREAM_SCALAR, cache_sizes, chase_cycle,
                              latency_sweep_sizes, map_buffer, plan_points, write_chase)
from workloads.base import WorkerContext

lib = ctypes.CDLL(spec["lib"])
P, L, D = ctypes.c_void_p, ctypes.c_long, ctypes.c_double
lib.triad.argtypes = lib.triad_omp.argtypes = [P, P, P, D, L]
lib.chase.argtypes, lib.chase.restype = [ctypes.c_ssize_t, L], ctypes.c_ssize_t
lib.ping.argtypes, lib.ping.restype = [ctypes.c_ssize_t, ctypes.c_int64, ctypes.c_int64, P,
                                       ctypes.c_int64], ctypes.c_int64
lib.pong.argtypes, lib.pong.restype = [ctypes.c_ssize_t, ctypes.c_int64], ctypes.c_int64
now = time.perf_counter_ns
reps = spec["reps"]
out = {}


def ab(numba_call, c_call):  # alternate reps times; return (numba ns list, C ns list)
    tn, tc = [], []
    for _ in range(reps):
        t0 = now(); numba_call(); t1 = now(); c_call(); t2 = now()
        tn.append(t1 - t0); tc.append(t2 - t1)
    return tn, tc


part = spec["part"]
if part in ("triad1", "triad2"):
    k, _ = compiled("stream_triad", "stream_triad_par", "fill", "fill_par")
    threads = 2 if part == "triad2" else 1
    if threads > 1:
        set_threads(threads)
    fill = k.fill_par if threads > 1 else k.fill
    n = spec["mib"] * (1 << 20) // 8
    a, b, c = (np.empty(n) for _ in range(3))
    for x, v in zip((a, b, c), (1.0, 2.0, 0.5)):
        fill(x, v)
    q = STREAM_SCALAR
    nk = k.stream_triad_par if threads > 1 else k.stream_triad
    ck = lib.triad_omp if threads > 1 else lib.triad
    pa, pb, pc = (x.ctypes.data for x in (a, b, c))
    ab(lambda: nk(a, b, c, q), lambda: ck(pa, pb, pc, q, n))  # warm-up
    tn, tc = ab(lambda: nk(a, b, c, q), lambda: ck(pa, pb, pc, q, n))
    gb = lambda t: 24 * n / t  # GB/s from ns
    out = {"numba_gbs": [gb(t) for t in tn], "c_gbs": [gb(t) for t in tc]}
elif part == "chase":
    k, _ = compiled("chase", "sattolo_swaps")
    caches = cache_sizes(WorkerContext(cache_sizes_bytes=spec["caches"]))
    sizes = latency_sweep_sizes(caches)
    rng = np.random.default_rng(0)
    for label in spec["points"]:
        (p,) = plan_points({label: sizes[label]})
        mapping, view = map_buffer(p.size_bytes, "default")
        start = write_chase(view, p, chase_cycle(p.lines, rng, k.sattolo_swaps))
        hops = spec["hops"]
        k.chase(start, p.lines); lib.chase(start, p.lines)  # warm both
        tn, tc = ab(lambda: k.chase(start, hops), lambda: lib.chase(start, hops))
        out[label] = {"numba_ns": [t / hops for t in tn], "c_ns": [t / hops for t in tc],
                      "bytes": p.size_bytes}
        del view
        mapping.close()
elif part == "c2c":
    k, _ = compiled("ping", "pong")

    class C:
        @staticmethod
        def ping(addr, warm, batch, buf):
            return lib.ping(addr, warm, batch, buf.ctypes.data, buf.size)

        @staticmethod
        def pong(addr, rounds):
            return lib.pong(addr, rounds)

    flag = np.zeros(32, dtype=np.int64)
    pair = tuple(spec["cpus"][:2])
    med = lambda kern: float(np.median(bounce(kern, flag, pair, spec["batches"]))) / (
        2 * BATCH_ROUND_TRIPS)
    vn, vc = [], []
    for _ in range(reps):
        vn.append(med(k)); vc.append(med(C))
    out = {"numba_ns": vn, "c_ns": vc}
print(json.dumps(out))
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


def build_c(workdir: Path, name: str, source: str, extra: tuple[str, ...] = ()) -> tuple[Path | None, str]:
    """Compile ``source`` with gcc -O3 -march=native (else -O3); return (binary, flags) or (None, why)."""
    gcc = shutil.which("gcc")
    if gcc is None:
        return None, "gcc not found on PATH"
    src = workdir / f"{name}.c"
    src.write_text(source)
    binary = workdir / name
    for flags in (["-O3", "-march=native"], ["-O3"]):
        proc = subprocess.run([gcc, *flags, "-o", str(binary), str(src), *extra, "-lm"],
                              capture_output=True, text=True, check=False)
        if proc.returncode == 0:
            return binary, " ".join([*flags, *extra])
    return None, f"gcc failed: {proc.stderr.strip()[-300:]}"


def run_c(binary: Path, args: list, cpus, env: dict | None = None) -> list[list[float]]:
    """Run a reference binary pinned to ``cpus``; return its stdout rows as floats."""
    proc = subprocess.run([str(binary), *map(str, args)], capture_output=True, text=True,
                          check=False, preexec_fn=pin(cpus), env={**os.environ, **(env or {})})
    if proc.returncode != 0:
        raise RuntimeError(f"{binary.name} exited {proc.returncode}: {proc.stderr.strip()[-300:]}")
    return [[float(x) for x in line.split()] for line in proc.stdout.splitlines() if line.strip()]


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


# ---------------------------------------------------------------------------------------
# memory.stream, memory.latency, cpu.c2c against C (issue 12): topobench, direct, C
# ---------------------------------------------------------------------------------------

TRIAD = ("triad_gbs", "triad_best_gbs")
LATENCY_POINTS = ("L1d/2", "L2/2", "L3/2", "4xL3")


def best(values: list[float]) -> float:
    """Return the largest value (STREAM's best rate over all passes), NaN for none."""
    return max(values) if values else float("nan")


def per_round_sum(run, workload: str, metric: str) -> list[float]:
    """Return, per measured repetition, the sum over workers of ``metric`` (aggregate)."""
    sums: dict[int, float] = {}
    for row in run.rows(workload, metric, warmup=False):
        sums[row["repetition"]] = sums.get(row["repetition"], 0.0) + row["value"]
    return list(sums.values())


def direct_pair(workload: str, params: dict, cpus, args, iterations: int) -> list[dict]:
    """Run one direct child per CPU of ``cpus`` at once, ``iterations`` per sample each."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(len(cpus)) as pool:
        futures = [pool.submit(run_direct, workload, params, cpus=[c], iterations=iterations,
                               repetitions=args.repetitions, min_time=args.min_time)
                   for c in cpus]
        return [f.result() for f in futures]


def topobench_part(values: dict, key: str, fails: dict, run, pairs) -> None:
    """Append ``run``'s values of each (workload, metric, reducer) in ``pairs`` to ``values``."""
    if run.returncode != 0:
        fails.setdefault(f"topobench {key}", f"exit {run.returncode}: {run.output[-400:]}")
    for suffix, (workload, metric, reduce) in pairs.items():
        values[f"{key}{suffix}"] += reduce(run, workload, metric)


def vals(run, workload: str, metric: str) -> list[float]:
    """Return ``run``'s measured sample values of one workload and metric."""
    return run.values(workload, metric)


def stream_part(args, work: Path, cpus, fails: dict) -> list[list[str]]:
    """memory.stream triad vs C STREAM: 1 worker vs 1 thread, 2 workers/threads vs OpenMP 2."""
    serial, why = build_c(work, "stream", STREAM_C)
    omp, why_omp = build_c(work, "stream_omp", STREAM_C, ("-fopenmp",))
    if serial is None:
        return [["memory.stream vs C STREAM", "", "skipped", "n/a", why]]
    n = args.stream_mib * (1 << 20) // 8
    params = {"memory.stream.size_mib": args.stream_mib}
    two = tuple(cpus[:2]) if len(cpus) >= 2 else None
    v: dict[str, list[float]] = {k: [] for k in (
        "c1", "c1_best", "d1", "d1_best", "tb1", "tb1_best", "c2", "c2_best", "d2",
        "dT", "dT_best", "tb2", "tbT", "tbT_best")}
    for rnd in range(args.rounds):
        note(f"stream round {rnd + 1}/{args.rounds}: direct, C, topobench (1 CPU)")
        d1 = run_direct("memory.stream", {"size_mib": args.stream_mib}, cpus=[cpus[0]],
                        repetitions=args.repetitions, min_time=args.min_time)
        v["d1"] += [s["triad_gbs"] for s in d1["samples"]]
        v["d1_best"] += [s["triad_best_gbs"] for s in d1["samples"]]
        for row in run_c(serial, [n, d1["iterations"], args.repetitions], [cpus[0]]):
            v["c1"].append(row[6])
            v["c1_best"].append(row[7])
        topobench_part(v, "tb1", fails, run_topobench(
            ["memory.stream"], workers=1, repetitions=args.repetitions, min_time=args.min_time,
            params=params, check=False), {"": ("memory.stream", "triad_gbs", vals),
                                          "_best": ("memory.stream", "triad_best_gbs", vals)})
        if two is None or omp is None:
            continue
        note(f"stream round {rnd + 1}: 2 CPUs {list(two)}: direct, C OpenMP, topobench")
        dT = run_direct("memory.stream", {"size_mib": args.stream_mib}, cpus=two,
                        repetitions=args.repetitions, min_time=args.min_time, threads=2)
        v["dT"] += [s["triad_gbs"] for s in dT["samples"]]
        v["dT_best"] += [s["triad_best_gbs"] for s in dT["samples"]]
        for row in run_c(omp, [n, dT["iterations"], args.repetitions], two,
                         env={"OMP_NUM_THREADS": "2", "OMP_PROC_BIND": "false"}):
            v["c2"].append(row[6])
            v["c2_best"].append(row[7])
        v["d2"].append(sum(median(s["triad_gbs"] for s in d["samples"])
                           for d in direct_pair("memory.stream", {"size_mib": args.stream_mib},
                                                two, args, d1["iterations"])))
        topobench_part(v, "tb2", fails, run_topobench(
            ["memory.stream"], workers=2, placement="cores", repetitions=args.repetitions,
            min_time=args.min_time, params=params, check=False),
            {"": ("memory.stream", "triad_gbs", per_round_sum)})
        topobench_part(v, "tbT", fails, run_topobench(
            ["memory.stream"], workers=1, repetitions=args.repetitions, min_time=args.min_time,
            params=params, extra=["--threads-per-worker", "2"], check=False),
            {"": ("memory.stream", "triad_gbs", vals),
             "_best": ("memory.stream", "triad_best_gbs", vals)})

    def row(label, a, b, target=None, mean=True):
        x, y = (median(a), median(b)) if mean else (best(a), best(b))
        r = ratio(x, y)
        verdict = "reported" if target is None else (
            f">={target:.0%}: " + ("ok" if r >= target else "BELOW"))
        return [label, si(x, "GB/s"), si(y, "GB/s"), pct(r), verdict]

    c1 = f"C STREAM (gcc {why}, 1 thread)"
    rows = [row(f"(s1) triad mean, topobench 1 worker vs {c1}", v["tb1"], v["c1"], 0.95),
            row("(s1) triad best (max over passes), same", v["tb1_best"], v["c1_best"], 0.95,
                mean=False),
            row(f"(s1) triad mean, direct 1 process vs {c1}", v["d1"], v["c1"], 0.95),
            row("(s1) triad best, direct vs C", v["d1_best"], v["c1_best"], 0.95, mean=False)]
    if two is None or omp is None:
        rows.append(["(s2) 2 CPUs", "", "skipped", "n/a",
                     why_omp if omp is None else "fewer than 2 CPUs"])
        return rows
    c2 = "C STREAM OpenMP 2 threads"
    rows += [row(f"(s2) triad aggregate, topobench 2 workers (cores) vs {c2}", v["tb2"], v["c2"],
                 0.90),
             row(f"(s2) triad aggregate, 2 direct processes vs {c2}", v["d2"], v["c2"], 0.90),
             row(f"(s2) triad mean, topobench 1 worker x 2 numba threads vs {c2}", v["tbT"],
                 v["c2"], 0.90),
             row("(s2) triad best, same", v["tbT_best"], v["c2_best"], 0.90, mean=False),
             row(f"(s2) triad mean, direct 1 process x 2 numba threads vs {c2}", v["dT"],
                 v["c2"], 0.90),
             row("(s2) triad best, same", v["dT_best"], v["c2_best"], 0.90, mean=False)]
    return rows


def latency_permutations(work: Path, cpu: int, seed: int) -> dict[str, tuple[Path, int]]:
    """Write the auto sweep's LATENCY_POINTS permutations as memory.latency draws them.

    Returns {label: (file of int64 successors, lines)}; the sizes come from ``cpu``'s
    caches as the direct child and a topobench worker see them.
    """
    import numpy as np

    from cluster.topology import read_topology
    from workloads.base import WorkerContext
    from workloads.kernels import compiled
    from workloads.memory import LATENCY_LABELS, cache_sizes, chase_cycle, latency_sweep_sizes

    caches = read_topology("/").cache_sizes_bytes((cpu,))
    sizes = latency_sweep_sizes(cache_sizes(WorkerContext(cache_sizes_bytes=caches)))
    kernels, _ = compiled("sattolo_swaps")
    rng = np.random.default_rng(seed)
    out = {}
    for label in LATENCY_LABELS:  # every point draws, in order, as in Latency.setup
        successor = chase_cycle(sizes[label] // 64, rng, kernels.sattolo_swaps)
        if label in LATENCY_POINTS:
            path = work / f"chase-{label.replace('/', '_')}.bin"
            successor.astype("<i8").tofile(path)
            out[label] = (path, successor.size)
    return out


def latency_part(args, work: Path, cpus, fails: dict) -> list[list[str]]:
    """memory.latency (auto sweep) vs a C pointer chase over the same permutations."""
    binary, why = build_c(work, "chase", CHASE_C)
    if binary is None:
        return [["memory.latency vs C chase", "", "skipped", "n/a", why]]
    perms = latency_permutations(work, cpus[0], seed=0)
    params = {"memory.latency.hops": args.latency_hops}
    v: dict[str, list[float]] = {f"{side}{p}": [] for side in ("c", "d", "tb")
                                 for p in LATENCY_POINTS}
    for rnd in range(args.rounds):
        note(f"latency round {rnd + 1}/{args.rounds}: direct sweep, C chase, topobench sweep")
        d = run_direct("memory.latency", {"hops": args.latency_hops}, cpus=[cpus[0]],
                       repetitions=args.repetitions, min_time=args.min_time)
        hops = d["iterations"] * args.latency_hops
        for label, (path, lines) in perms.items():
            v[f"d{label}"] += [s[f"ns_per_load@{label}"] for s in d["samples"]]
            v[f"c{label}"] += [r[0] for r in run_c(binary, [path, lines, hops, args.repetitions,
                                                            "default"], [cpus[0]])]
        run = run_topobench(["memory.latency"], workers=1, repetitions=args.repetitions,
                            min_time=args.min_time, params=params, check=False)
        if run.returncode != 0:
            fails.setdefault("topobench latency", f"exit {run.returncode}: {run.output[-400:]}")
        for label, (_, lines) in perms.items():
            v[f"tb{label}"] += run.values("memory.latency", f"ns_per_load@{label}")
            seen = run.values("memory.latency", f"working_set_bytes@{label}")
            if seen and seen[0] != lines * 64:
                fails.setdefault("latency sizes", f"topobench's {label} is {seen[0]:.0f} B, "
                                 f"the C chase's {lines * 64} B")
    rows = []
    for label, (_, lines) in perms.items():
        size = f"{label} = {lines * 64 / 1024:.0f} KiB"
        for side, name in (("tb", "topobench"), ("d", "direct")):
            x, y = median(v[f"{side}{label}"]), median(v[f"c{label}"])
            r = ratio(x, y)
            rows.append([f"(l) ns/load {size}, {name} vs C chase (gcc {why})", si(x, "ns"),
                         si(y, "ns"), pct(r), "90-110%: " + ("ok" if 0.9 <= r <= 1.1 else
                                                             "OUTSIDE")])
    return rows


def c2c_part(args, work: Path, cpus, fails: dict) -> list[list[str]]:
    """cpu.c2c one-way ns on one CPU pair vs a C11-atomics ping-pong on the same pair."""
    if len(cpus) < 2:
        return [["cpu.c2c vs C ping-pong", "", "skipped", "n/a", "fewer than 2 CPUs"]]
    binary, why = build_c(work, "c2c", C2C_C, ("-pthread",))
    if binary is None:
        return [["cpu.c2c vs C ping-pong", "", "skipped", "n/a", why]]
    a, b = cpus[:2]
    v: dict[str, list[float]] = {"c": [], "d": [], "tb": []}
    for rnd in range(args.rounds):
        note(f"c2c round {rnd + 1}/{args.rounds}: direct, C, topobench on CPUs {a}-{b}")
        d = run_direct("cpu.c2c", {"pairs": f"{a}-{b}"}, cpus=[a, b],
                       repetitions=args.repetitions, min_time=args.min_time)
        v["d"] += [s[f"one_way_ns@{a}-{b}"] for s in d["samples"]]
        v["c"] += [r[0] for r in run_c(binary, [a, b, max(1, d["iterations"] // 100),
                                                 args.repetitions], [a, b])]
        run = run_topobench(["cpu.c2c"], workers=1, repetitions=args.repetitions,
                            min_time=args.min_time, extra=["--threads-per-worker", "2"],
                            check=False)
        if run.returncode != 0:
            fails.setdefault("topobench c2c", f"exit {run.returncode}: {run.output[-400:]}")
        got = {m for s in run.samples if (m := s["metric"]).startswith("one_way_ns@")}
        for metric in sorted(got):
            v["tb"] += run.values("cpu.c2c", metric)
            if metric != f"one_way_ns@{a}-{b}":
                fails.setdefault("c2c pair", f"topobench's worker measured {metric}")
    rows = []
    for side, name in (("tb", "topobench (1 worker, 2 CPUs)"), ("d", "direct")):
        x, y = median(v[side]), median(v["c"])
        r = ratio(x, y)
        rows.append([f"(c) one-way ns {a}<->{b}, {name} vs C11 atomics ping-pong", si(x, "ns"),
                     si(y, "ns"), pct(r), "90-110%: " + ("ok" if 0.9 <= r <= 1.1 else "OUTSIDE")])
    return rows


def kernels_part(args, work: Path, cpus, fails: dict) -> list[list[str]]:
    """numba kernels vs the same C kernels (ctypes) alternating on the same data, one process."""
    lib, why = build_c(work, "libab.so", AB_C, ("-fPIC", "-shared", "-fopenmp"))
    if lib is None:
        return [["kernel A/B", "", "skipped", "n/a", why]]
    from cluster.topology import read_topology

    caches = read_topology("/").cache_sizes_bytes((cpus[0],))
    two = list(cpus[:2])
    runs = [("triad1", [cpus[0]], 1), ("chase", [cpus[0]], 1)]
    if len(two) == 2:
        runs += [("triad2", two, 2), ("c2c", two, 1)]
    rows = []
    for part, pinned, threads in runs:
        note(f"kernel A/B: {part} on CPUs {pinned}")
        spec = {"part": part, "cpus": pinned, "repo": str(REPO), "lib": str(lib),
                "reps": args.ab_reps, "mib": args.stream_mib, "hops": args.latency_hops,
                "batches": 2000, "points": list(LATENCY_POINTS), "caches": caches}
        proc = subprocess.run([sys.executable, "-c", AB_CHILD, json.dumps(spec)],
                              capture_output=True, text=True, check=False,
                              env={**os.environ, "OMP_NUM_THREADS": str(threads)})
        if proc.returncode != 0:
            fails.setdefault(f"kernel A/B {part}", proc.stderr.strip()[-400:])
            continue
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        if part.startswith("triad"):
            label = f"(k) triad numba vs C ({threads} thread{'s' * (threads > 1)}, same arrays)"
            for what, pick in (("median", median), ("best", best)):
                x, y = pick(out["numba_gbs"]), pick(out["c_gbs"])
                rows.append([f"{label}, {what}", si(x, "GB/s"), si(y, "GB/s"),
                             pct(ratio(x, y)), "reported"])
            continue
        points = out.items() if part == "chase" else [(f"{two[0]}<->{two[1]}", out)]
        for label, v in points:
            x, y = median(v["numba_ns"]), median(v["c_ns"])
            r = ratio(x, y)
            what = "chase ns/load " + label if part == "chase" else "c2c one-way ns " + label
            rows.append([f"(k) {what}, numba vs C (same buffer)", si(x, "ns"), si(y, "ns"),
                         pct(r), "90-110%: " + ("ok" if 0.9 <= r <= 1.1 else "OUTSIDE")])
    return rows


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
    ap.add_argument("--parts", default="kernels,stream,latency,c2c,others",
                    help="comma list of kernels, stream, latency, c2c, others (io, matmul, http)")
    ap.add_argument("--ab-reps", type=int, default=30, help="alternations per kernel A/B")
    ap.add_argument("--latency-hops", type=int, default=1 << 18, help="memory.latency.hops")
    args = ap.parse_args()
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}

    work = Path(tempfile.mkdtemp(prefix="topobench-refs-"))
    scratch = Path(args.scratch) if args.scratch else work / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    params = {"io.sequential.size_mib": args.io_mib,
              "io.sequential.block_kib": args.block_kib,
              "io.sequential.scratch": str(scratch),
              "cpu.matmul.n": args.matmul_n,
              "net.http.concurrency": args.concurrency,
              "net.http.body_bytes": args.body_bytes}
    workloads = ["io.sequential", "cpu.matmul", "net.http"]
    have_dd = shutil.which("dd") is not None
    have_wrk = shutil.which("wrk") is not None
    all_cpus = sorted(os.sched_getaffinity(0))

    A: dict[str, list[float]] = {k: [] for k in ("write", "cold", "dropped", "gflops", "rps")}
    B: dict[str, list[float]] = {k: [] for k in
                                 ("write", "read", "gflops", "wrk_same", "wrk_other")}
    fails: dict[str, str] = {}
    worker_cpus: dict[str, tuple[int, ...]] = {}
    kernel_rows: list[list[str]] = []
    try:
        for name, part in (("kernels", kernels_part), ("stream", stream_part),
                           ("latency", latency_part), ("c2c", c2c_part)):
            if name in parts:
                try:
                    kernel_rows += part(args, work, all_cpus, fails)
                except RuntimeError as exc:
                    fails.setdefault(name, str(exc))
        for rnd in range(args.rounds if "others" in parts else 0):
            note(f"round {rnd + 1}/{args.rounds}: topobench run {' '.join(workloads)}")
            run = run_topobench(workloads, workers=1, repetitions=args.repetitions,
                                min_time=args.min_time, params=params, check=False)
            if run.returncode != 0:
                fails.setdefault("topobench", f"exit {run.returncode}; some trials failed: "
                                 + "; ".join(f"{t['workload']}: {t.get('error')}"
                                             for t in run.trials if t.get("status") != "ok"
                                             and t.get("error")))
            for key, (w, m) in {"write": ("io.sequential", "write_mbs"),
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
    rows = list(kernel_rows)
    if "others" not in parts:
        print_table(["check", "topobench", "reference", "tb/ref", "target"], rows)
        for part, why in fails.items():
            print(f"  {part} FAILED (at least once): {why}")
        return
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
    print(f"\n  samples: io {len(A['write'])}/"
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
