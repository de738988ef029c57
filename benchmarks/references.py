#!/usr/bin/env python3
"""Checks of topobench's workloads against independent references, side by side.

Issues 12 and 22 (numba kernels). Each round is one pair per check: a direct run (a plain
pinned process, no Ray: benchmarks/_common.run_direct; it also sets the C side's passes or
hops), then the C reference (gcc -O3 -march=native, pinned) and topobench, which of the two
goes first alternating by round. A check's figure is the median over rounds of the pair
ratios (topobench / reference), each ratio printed beside it:
  kernels  the numba kernels and the same C kernels through ctypes on the same arrays and
           buffers, in one process, in turn: the triad in each memory.stream variant (loop,
           vector, nt) vs gcc's loop, nt also vs gcc's streaming-store loop; the chase at
           each --latency-sizes size; the c2c ping-pong (reported / 90-110%);
  stream   memory.stream triad (size --stream-mib per array, variant --stream-variant) vs
           C STREAM (four kernels in STREAM's order, same passes per sample, huge pages
           advised as numpy does): 1 worker vs 1 thread; 2 workers (placement cores,
           summed per round) and 1 worker x 2 numba threads vs C with OpenMP 2 threads
           (targets >= 95%); mean rate (median of samples) and best rate (STREAM's: fastest
           pass) each; 2 direct processes and 1 direct process x 2 threads beside;
  latency  memory.latency at each --latency-sizes working set (default 16KiB, 256KiB, 8MiB,
           256MiB; a pair per size and round, back to back) vs a C pointer chase over the same
           Sattolo cycle with the same hops; median and fastest sample (target 90-110%);
  c2c      cpu.c2c one-way ns on CPUs 0<->1 vs a C11-atomics ping-pong (acquire/release,
           same batches of 100 round trips, median of all rounds; target 90-110%).
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

Run:  python benchmarks/references.py [--parts kernels,stream,latency,c2c,others] [--rounds 5]
      [--repetitions 10] [--min-time 0.2] [--stream-mib 512] [--stream-variant nt]
      [--latency-sizes 16KiB,256KiB,8MiB,256MiB] [--latency-hops 262144]
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
from contextlib import contextmanager
from functools import partial
from pathlib import Path

from _common import (
    REPO,
    median,
    nice_as_worker,
    note,
    pct,
    print_table,
    ratio,
    run_direct,
    run_topobench,
)


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

#ifdef __AVX__
#include <immintrin.h>
#include <omp.h>
/* The triad with 32-byte streaming stores after a scalar head to 32-byte alignment (what
   Intel's compilers emit with -qopt-streaming-stores): the like-for-like reference of
   memory.stream's variant nt. */
void triad_nt(double *restrict a, const double *restrict b, const double *restrict c,
              double q, long n) {
    long j = 0;
    for (; j < n && ((uintptr_t)(a + j) & 31); j++) a[j] = b[j] + q * c[j];
    __m256d vq = _mm256_set1_pd(q);
    for (; j + 4 <= n; j += 4)
        _mm256_stream_pd(a + j, _mm256_add_pd(_mm256_loadu_pd(b + j),
                                              _mm256_mul_pd(vq, _mm256_loadu_pd(c + j))));
    for (; j < n; j++) a[j] = b[j] + q * c[j];
    _mm_sfence();
}

void triad_nt_omp(double *restrict a, const double *restrict b, const double *restrict c,
                  double q, long n) {
#pragma omp parallel
    {
        long t = omp_get_thread_num(), T = omp_get_num_threads();
        long lo = n * t / T, hi = n * (t + 1) / T;
        triad_nt(a + lo, b + lo, c + lo, q, hi - lo);
    }
}
#endif

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
from workloads.memory import STREAM_SCALAR, chase_cycle, map_buffer, plan_points, write_chase

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


def ab(numba_call, c_call):  # reps pairs, each side first in turn; return (numba ns, C ns)
    ns = {numba_call: [], c_call: []}
    for rep in range(reps):
        for call in ((numba_call, c_call) if rep % 2 else (c_call, numba_call)):
            t0 = now(); call(); ns[call].append(now() - t0)
    return ns[numba_call], ns[c_call]


part = spec["part"]
if part in ("triad1", "triad2"):
    from workloads.kernels import STREAM_VARIANTS
    k, _ = compiled("stream_triad", "stream_triad_par", "fill", "fill_par")
    threads = 2 if part == "triad2" else 1
    if threads > 1:
        set_threads(threads)
    n = spec["mib"] * (1 << 20) // 8
    a, b, c = (np.empty(n) for _ in range(3))
    for x, v in zip((a, b, c), (1.0, 2.0, 0.5)):
        k.fill_par(x, v, STREAM_VARIANTS.index("nt"), threads) if threads > 1 else k.fill(x, v)
    q = STREAM_SCALAR
    nk = k.stream_triad_par if threads > 1 else k.stream_triad
    tail = (threads,) if threads > 1 else ()
    pa, pb, pc = (x.ctypes.data for x in (a, b, c))
    calls = {f"numba {v}": (lambda i=i: nk(a, b, c, q, i, *tail))
             for i, v in enumerate(STREAM_VARIANTS)}
    calls["C"] = lambda: (lib.triad_omp if threads > 1 else lib.triad)(pa, pb, pc, q, n)
    if hasattr(lib, "triad_nt"):
        cnt = lib.triad_nt_omp if threads > 1 else lib.triad_nt
        cnt.argtypes = [P, P, P, D, L]
        calls["C nt"] = lambda: cnt(pa, pb, pc, q, n)
    names = list(calls)
    gbs = {name: [] for name in names}
    for rep in range(-1, reps):  # the first turn warms every kernel up
        turn = names[rep % len(names):] + names[:rep % len(names)]
        for name in turn:
            t0 = now(); calls[name](); t1 = now()
            if rep >= 0:
                gbs[name].append(24 * n / (t1 - t0))
    out = gbs
elif part == "chase":
    from workloads.units import parse_size
    k, _ = compiled("chase", "sattolo_swaps")
    for size in spec["sizes"]:
        (p,) = plan_points({size: parse_size(size) // 64 * 64})
        mapping, view = map_buffer(p.size_bytes, "default")
        start = write_chase(view, p, chase_cycle(p.lines, np.random.default_rng(0), k.sattolo_swaps))
        hops = spec["hops"]
        k.chase(start, p.lines); lib.chase(start, p.lines)  # warm both
        tn, tc = ab(lambda: k.chase(start, hops), lambda: lib.chase(start, hops))
        out[size] = {"numba_ns": [t / hops for t in tn], "c_ns": [t / hops for t in tc],
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


LOCK_WAIT_S = 600.0


@contextmanager
def holding(cpus):
    """Hold topobench's host-wide locks on ``cpus`` while a reference runs there.

    topobench's own runs take these locks (cluster/cpu_lock.py), so other runs on the host
    keep off its CPUs; without them the reference side alone would share its CPUs with
    them, and the pairs would favour topobench.
    """
    from cluster.cpu_lock import wait_for

    lock = wait_for(cpus, "benchmarks/references.py", LOCK_WAIT_S,
                    lambda h: note(f"waiting for CPUs {list(h.cpus)}, held by run {h.run_id}"))
    try:
        yield
    finally:
        lock.release()


def as_worker(cpus):
    """Return a preexec_fn that runs the child as topobench runs a worker: pinned, nice 15."""
    def setup() -> None:
        os.sched_setaffinity(0, set(cpus))
        nice_as_worker()
    return setup


def run_c(binary: Path, args: list, cpus, env: dict | None = None) -> list[list[float]]:
    """Run a reference binary as a worker on ``cpus`` (their locks held); return its rows."""
    with holding(cpus):
        proc = subprocess.run([str(binary), *map(str, args)], capture_output=True, text=True,
                              check=False, preexec_fn=as_worker(cpus),
                              env={**os.environ, **(env or {})})
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

STREAM = "memory.stream"
LATENCY = "memory.latency"
OMP_2 = {"OMP_NUM_THREADS": "2", "OMP_PROC_BIND": "false"}


def best(values) -> float:
    """Return the largest value (STREAM's best rate over all passes), NaN for none."""
    values = [v for v in values if not math.isnan(v)]
    return max(values) if values else float("nan")


def per_round_sum(run, workload: str, metric: str) -> list[float]:
    """Return, per measured repetition, the sum over workers of ``metric`` (aggregate)."""
    sums: dict[int, float] = {}
    for row in run.rows(workload, metric, warmup=False):
        sums[row["repetition"]] = sums.get(row["repetition"], 0.0) + row["value"]
    return list(sums.values())


def direct(workload: str, params: dict, *, cpus, **options) -> dict:
    """Run ``workload`` directly (benchmarks/_common.run_direct) with ``cpus``' locks held."""
    with holding(cpus):
        return run_direct(workload, params, cpus=cpus, **options)


def direct_pair(workload: str, params: dict, cpus, args, iterations: int) -> list[dict]:
    """Run one direct child per CPU of ``cpus`` at once, ``iterations`` per sample each."""
    from concurrent.futures import ThreadPoolExecutor

    with holding(cpus), ThreadPoolExecutor(len(cpus)) as pool:
        futures = [pool.submit(run_direct, workload, params, cpus=[c], iterations=iterations,
                               repetitions=args.repetitions, min_time=args.min_time)
                   for c in cpus]
        return [f.result() for f in futures]


class Pairs:
    """One check's figures: a (topobench, reference) pair per round, measured back to back."""

    def __init__(self) -> None:
        self.tb: list[float] = []
        self.ref: list[float] = []

    def add(self, tb: float, ref: float) -> None:
        """Append one round's pair."""
        self.tb.append(tb)
        self.ref.append(ref)

    def ratios(self) -> list[float]:
        """Return each round's topobench / reference."""
        return [ratio(x, y) for x, y in zip(self.tb, self.ref)]


def pair_row(label: str, pairs: Pairs, unit: str, low: float, high: float | None = None) -> list[str]:
    """Return a row: each side's median, the median of the pair ratios, every ratio, the verdict."""
    ratios = pairs.ratios()
    r = median(ratios)
    inside = not math.isnan(r) and r >= low and (high is None or r <= high)
    target = f">={low:.0%}" if high is None else f"{low:.0%}-{high:.0%}"
    verdict = "ok" if inside else ("BELOW" if high is None else "OUTSIDE")
    shown = " ".join("n/a" if math.isnan(x) else f"{x:.2f}" for x in ratios)
    return [label, si(median(pairs.tb), unit), si(median(pairs.ref), unit), pct(r), shown,
            f"{target}: {verdict}"]


def in_turn(rnd: int, sides: dict) -> dict:
    """Call each of ``sides`` once, starting one further along each round (no side always first)."""
    names = list(sides)
    k = rnd % len(names)
    return {name: sides[name]() for name in names[k:] + names[:k]}


# --- memory.stream's triad ------------------------------------------------------------------


def c_triad(binary: Path, n: int, passes: int, args, cpus, env: dict | None = None) -> tuple:
    """Return C STREAM's triad over ``args.repetitions`` samples: (median mean rate, best pass)."""
    rows = run_c(binary, [n, passes, args.repetitions], cpus, env)
    return median(r[6] for r in rows), best(r[7] for r in rows)


def tb_triad(run, fails: dict, key: str, aggregate: bool = False) -> tuple:
    """Return a topobench run's triad: (median mean rate, best pass); workers summed per round."""
    if run.returncode != 0:
        fails.setdefault(f"topobench {key}", f"exit {run.returncode}: {run.output[-400:]}")
    if aggregate:
        return (median(per_round_sum(run, STREAM, "triad_gbs")),
                best(per_round_sum(run, STREAM, "triad_best_gbs")))
    return median(run.values(STREAM, "triad_gbs")), best(run.values(STREAM, "triad_best_gbs"))


def tb_stream(args, params: dict, fails: dict, key: str, workers: int = 1,
              placement: str | None = None, extra: tuple = (), aggregate: bool = False) -> tuple:
    """Run `topobench run memory.stream` once; return its triad as ``tb_triad`` does."""
    run = run_topobench([STREAM], workers=workers, placement=placement,
                        repetitions=args.repetitions, min_time=args.min_time, params=params,
                        extra=extra, check=False)
    return tb_triad(run, fails, key, aggregate)


def direct_triad(*results: dict) -> tuple:
    """Return direct runs' triad: (median mean rate, best pass), summed over concurrent runs."""
    return (sum(median(s["triad_gbs"] for s in r["samples"]) for r in results),
            sum(best(s["triad_best_gbs"] for s in r["samples"]) for r in results))


def direct_pair_triad(given: dict, cpus, args, iterations: int) -> tuple:
    """Run one direct memory.stream per CPU at once; return their summed triad."""
    return direct_triad(*direct_pair(STREAM, given, cpus, args, iterations))


def stream_part(args, work: Path, cpus, fails: dict) -> list[list[str]]:
    """memory.stream triad vs C STREAM, a pair per round: 1 worker vs 1 thread, 2 vs OpenMP 2."""
    serial, why = build_c(work, "stream", STREAM_C)
    omp, why_omp = build_c(work, "stream_omp", STREAM_C, ("-fopenmp",))
    if serial is None:
        return [["memory.stream vs C STREAM", "", "skipped", "n/a", "", why]]
    n = args.stream_mib * (1 << 20) // 8
    given = {"size_mib": args.stream_mib, "variant": args.stream_variant}
    params = {f"{STREAM}.{k}": v for k, v in given.items()}
    two = tuple(cpus[:2]) if len(cpus) >= 2 and omp is not None else None
    checks = {key: (Pairs(), Pairs()) for key in ("tb1", "d1", "tb2", "d2", "tbT", "dT")}

    def record(key: str, tb: tuple, ref: tuple) -> None:  # (mean, best) of each side
        for pairs, x, y in zip(checks[key], tb, ref):
            pairs.add(x, y)

    for rnd in range(args.rounds):
        note(f"stream round {rnd + 1}/{args.rounds}: direct, then C and topobench in turn (1 CPU)")
        d1 = direct(STREAM, given, cpus=[cpus[0]], repetitions=args.repetitions,
                        min_time=args.min_time)
        got = in_turn(rnd, {
            "c": partial(c_triad, serial, n, d1["iterations"], args, [cpus[0]]),
            "tb": partial(tb_stream, args, params, fails, "1 worker", placement=str(cpus[0]))})
        record("tb1", got["tb"], got["c"])
        record("d1", direct_triad(d1), got["c"])
        if two is None:
            continue
        note(f"stream round {rnd + 1}: 2 CPUs {list(two)}: direct, then C OpenMP and topobench")
        dT = direct(STREAM, given, cpus=two, repetitions=args.repetitions,
                        min_time=args.min_time, threads=2)
        got = in_turn(rnd, {
            "c": partial(c_triad, omp, n, dT["iterations"], args, two, OMP_2),
            "tb2": partial(tb_stream, args, params, fails, "2 workers", workers=2,
                           placement="cores", aggregate=True),
            "tbT": partial(tb_stream, args, params, fails, "1 worker x 2 threads",
                           extra=("--threads-per-worker", "2")),
            "d2": partial(direct_pair_triad, given, two, args, d1["iterations"])})
        for key in ("tb2", "tbT", "d2"):
            record(key, got[key], got["c"])
        record("dT", direct_triad(dT), got["c"])

    c1 = f"C STREAM (gcc {why}, 1 thread)"
    rows = []
    for key, who in (("tb1", f"topobench 1 worker ({args.stream_variant})"),
                     ("d1", "direct 1 process")):
        rows += [pair_row(f"(s1) triad mean, {who} vs {c1}", checks[key][0], "GB/s", 0.95),
                 pair_row("(s1) triad best (fastest pass), same", checks[key][1], "GB/s", 0.95)]
    if two is None:
        rows.append(["(s2) 2 CPUs", "", "skipped", "n/a", "",
                     why_omp if omp is None else "fewer than 2 CPUs"])
        return rows
    c2 = "C STREAM OpenMP 2 threads"
    for key, who in (("tb2", "topobench 2 workers (cores), summed per round"),
                     ("tbT", "topobench 1 worker x 2 numba threads"),
                     ("d2", "2 direct processes, summed"),
                     ("dT", "direct 1 process x 2 numba threads")):
        rows += [pair_row(f"(s2) triad mean, {who} vs {c2}", checks[key][0], "GB/s", 0.95),
                 pair_row("(s2) triad best, same", checks[key][1], "GB/s", 0.95)]
    return rows


# --- memory.latency -------------------------------------------------------------------------


def chase_permutation(work: Path, size: str, seed: int) -> tuple[Path, int]:
    """Write the cycle memory.latency draws for ``working_set=size``; return (file, lines).

    Latency.setup's draw for one point: ``chase_cycle`` with a fresh generator of ``seed``.
    """
    import numpy as np

    from workloads.kernels import compiled
    from workloads.memory import CACHE_LINE_BYTES, chase_cycle
    from workloads.units import parse_size

    kernels, _ = compiled("sattolo_swaps")
    lines = max(CACHE_LINE_BYTES, parse_size(size) // CACHE_LINE_BYTES * CACHE_LINE_BYTES) // 64
    successor = chase_cycle(lines, np.random.default_rng(seed), kernels.sattolo_swaps)
    path = work / f"chase-{size}.bin"
    successor.astype("<i8").tofile(path)
    return path, lines


def spread(values) -> tuple[float, float]:
    """Return (median, fastest) of per-sample ns: the fastest is the one least disturbed."""
    values = [v for v in values if not math.isnan(v)]
    return median(values), (min(values) if values else float("nan"))


def c_latency(binary: Path, perm: tuple[Path, int], hops: int, args, cpu: int) -> tuple:
    """Run the C chase over one cycle, ``hops`` timed hops per sample; (median, fastest) ns."""
    path, lines = perm
    return spread(r[0] for r in run_c(binary, [path, lines, hops, args.repetitions, "default"],
                                      [cpu]))


def tb_latency(args, size: str, cpu: int, fails: dict) -> tuple:
    """Run `topobench run memory.latency` at one working set on ``cpu``; (median, fastest) ns."""
    run = run_topobench([LATENCY], workers=1, placement=str(cpu), repetitions=args.repetitions,
                        min_time=args.min_time, check=False,
                        params={f"{LATENCY}.working_set": size, f"{LATENCY}.hops": args.latency_hops})
    if run.returncode != 0:
        fails.setdefault("topobench latency", f"exit {run.returncode}: {run.output[-400:]}")
    return spread(run.values(LATENCY, "ns_per_load"))


def latency_sizes(args) -> list[str]:
    """Return the working sets of --latency-sizes, in order."""
    return [size.strip() for size in args.latency_sizes.split(",") if size.strip()]


def latency_part(args, work: Path, cpus, fails: dict) -> list[list[str]]:
    """memory.latency vs a C pointer chase over the same cycle, a pair per round and size."""
    binary, why = build_c(work, "chase", CHASE_C)
    if binary is None:
        return [["memory.latency vs C chase", "", "skipped", "n/a", "", why]]
    sizes, cpu = latency_sizes(args), cpus[0]
    perms = {size: chase_permutation(work, size, seed=0) for size in sizes}
    checks = {(side, size): (Pairs(), Pairs()) for side in ("tb", "d") for size in sizes}
    for rnd in range(args.rounds):
        note(f"latency round {rnd + 1}/{args.rounds}: per size, direct, then C chase and "
             "topobench in turn")
        for size in sizes:
            d = direct(LATENCY, {"working_set": size, "hops": args.latency_hops}, cpus=[cpu],
                       repetitions=args.repetitions, min_time=args.min_time)
            got = in_turn(rnd, {
                "c": partial(c_latency, binary, perms[size], d["iterations"] * args.latency_hops,
                             args, cpu),
                "tb": partial(tb_latency, args, size, cpu, fails)})
            got["d"] = spread(s["ns_per_load"] for s in d["samples"])
            for side in ("tb", "d"):
                for pairs, x, y in zip(checks[side, size], got[side], got["c"]):
                    pairs.add(x, y)
    rows = []
    for size in sizes:
        for side, who in (("tb", "topobench"), ("d", "direct")):
            median_pairs, fastest_pairs = checks[side, size]
            rows += [pair_row(f"(l) ns/load at {size}, {who} vs C chase (gcc {why}), median "
                              "sample", median_pairs, "ns", 0.90, 1.10),
                     pair_row("(l) same, fastest sample", fastest_pairs, "ns", 0.90, 1.10)]
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
        d = direct("cpu.c2c", {"pairs": f"{a}-{b}"}, cpus=[a, b],
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
        return [["kernel A/B", "", "skipped", "n/a", "", why]]
    two = list(cpus[:2])
    runs = [("triad1", [cpus[0]], 1), ("chase", [cpus[0]], 1)]
    if len(two) == 2:
        runs += [("triad2", two, 2), ("c2c", two, 1)]
    rows = []
    for part, pinned, threads in runs:
        note(f"kernel A/B: {part} on CPUs {pinned}")
        spec = {"part": part, "cpus": pinned, "repo": str(REPO), "lib": str(lib),
                "reps": args.ab_reps, "mib": args.stream_mib, "hops": args.latency_hops,
                "batches": 2000, "sizes": latency_sizes(args)}
        with holding(pinned):
            proc = subprocess.run([sys.executable, "-c", AB_CHILD, json.dumps(spec)],
                                  capture_output=True, text=True, check=False,
                                  env={**os.environ, "OMP_NUM_THREADS": str(threads)})
        if proc.returncode != 0:
            fails.setdefault(f"kernel A/B {part}", proc.stderr.strip()[-400:])
            continue
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        if part.startswith("triad"):
            rows += triad_ab_rows(out, threads)
            continue
        points = out.items() if part == "chase" else [(f"{two[0]}<->{two[1]}", out)]
        for label, v in points:
            x, y = median(v["numba_ns"]), median(v["c_ns"])
            r = ratio(x, y)
            what = "chase ns/load at " + label if part == "chase" else "c2c one-way ns " + label
            rows.append([f"(k) {what}, numba vs C (same buffer)", si(x, "ns"), si(y, "ns"),
                         pct(r), "", "90-110%: " + ("ok" if 0.9 <= r <= 1.1 else "OUTSIDE")])
    return rows


def triad_ab_rows(gbs: dict[str, list[float]], threads: int) -> list[list[str]]:
    """Rows of the triad A/B: each numba variant vs gcc's plain loop (and nt vs gcc's nt loop)."""
    rows = []
    where = f"{threads} thread{'s' * (threads > 1)}, same arrays, median of {len(gbs['C'])} turns"
    refs = [("C", "gcc -O3 -march=native loop")]
    if "C nt" in gbs:
        refs.append(("C nt", "gcc streaming-store loop"))
    for name in (n for n in gbs if n.startswith("numba")):
        for ref, what in refs:
            if ref == "C nt" and name != "numba nt":
                continue
            pairs = Pairs()
            for x, y in zip(gbs[name], gbs[ref]):
                pairs.add(x, y)
            row = pair_row(f"(k) triad {name} vs {what} ({where})", pairs, "GB/s", 0.95)
            rows.append([*row[:4], "", "reported"])
    return rows


HEADERS = ["check", "topobench", "reference", "tb/ref", "pair ratios", "target"]


def with_pairs(row: list[str]) -> list[str]:
    """Return ``row`` with an empty pair-ratios cell where it has none (checks of pooled medians)."""
    return row if len(row) == len(HEADERS) else [*row[:4], "", *row[4:]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--rounds", type=int, default=5,
                    help="A/B rounds, one pair of each check per round (default 5)")
    ap.add_argument("--repetitions", type=int, default=10, help="samples per side per round")
    ap.add_argument("--min-time", type=float, default=0.2, help="calibration target, s")
    ap.add_argument("--stream-mib", type=int, default=512, help="size of each STREAM array")
    ap.add_argument("--stream-variant", default="nt", choices=("nt", "vector", "loop"),
                    help="memory.stream.variant of topobench's and the direct runs (default nt)")
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
    ap.add_argument("--latency-sizes", default="16KiB,256KiB,8MiB,256MiB",
                    help="memory.latency.working_set of each latency check (comma list)")
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
        print_table(HEADERS, [with_pairs(row) for row in rows])
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
    print_table(HEADERS, [with_pairs(row) for row in rows])
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
