"""The numba kernels themselves: STREAM loops, the pointer chase, the cache-line ping-pong.

Import this module only through ``workloads.kernels.numba_kernels()``: it imports numba at
the top (about 0.5 s) and its ``cache=True`` decorators pick their cache folder on import,
after ``workloads.kernels`` has chosen a writable one. Every kernel is compiled lazily, for
the signatures in ``workloads.kernels``, in a workload's ``setup``.

Serial and parallel STREAM loops are separate functions on purpose: numba's cache is keyed
by function (qualified name and line), so one Python function jitted twice with different
flags would share, and confuse, one cache entry.
"""

from __future__ import annotations

import platform

import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from workloads.kernels import caching_enabled

CACHE = caching_enabled()

_I64 = ir.IntType(64)
_I32 = ir.IntType(32)
_CLOCK_MONOTONIC = 1  # Linux <time.h>

# --------------------------------------------------------------------------------------------
# intrinsics: exact loads and stores the optimizer may neither merge, hoist nor drop
# --------------------------------------------------------------------------------------------


@intrinsic
def load_acquire(typingctx, addr):
    """Return the int64 at address ``addr``, loaded atomically with acquire ordering."""
    def codegen(context, builder, signature, args):
        ptr = builder.inttoptr(args[0], _I64.as_pointer())
        return builder.load_atomic(ptr, "acquire", 8)
    return types.int64(types.int64), codegen


@intrinsic
def store_release(typingctx, addr, value):
    """Store the int64 ``value`` at address ``addr`` atomically with release ordering."""
    def codegen(context, builder, signature, args):
        ptr = builder.inttoptr(args[0], _I64.as_pointer())
        builder.store_atomic(args[1], ptr, "release", 8)
        return context.get_dummy_value()
    return types.void(types.int64, types.int64), codegen


@intrinsic
def load_word(typingctx, addr):
    """Return the int64 at address ``addr``: one plain load, as C's ``p = *(void **)p``."""
    def codegen(context, builder, signature, args):
        return builder.load(builder.inttoptr(args[0], _I64.as_pointer()), align=8)
    return types.int64(types.int64), codegen


@intrinsic
def monotonic_ns(typingctx):
    """Return CLOCK_MONOTONIC in ns (libc ``clock_gettime``, a vDSO call on Linux)."""
    def codegen(context, builder, signature, args):
        timespec = ir.LiteralStructType([_I64, _I64])
        fnty = ir.FunctionType(_I32, [_I32, timespec.as_pointer()])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "clock_gettime")
        ts = cgutils.alloca_once(builder, timespec)
        builder.call(fn, [ir.Constant(_I32, _CLOCK_MONOTONIC), ts])
        sec = builder.load(cgutils.gep_inbounds(builder, ts, 0, 0))
        nsec = builder.load(cgutils.gep_inbounds(builder, ts, 0, 1))
        return builder.add(builder.mul(sec, ir.Constant(_I64, 1_000_000_000)), nsec)
    return types.int64(), codegen


CHAIN_ADDS = 64
"""Dependent integer adds per ``add_chain`` call: 64 core cycles on every x86-64 and AArch64."""

_CHAIN_ASM = {"x86_64": "addq $$1, $0\n", "amd64": "addq $$1, $0\n",
              "aarch64": "add $0, $0, #1\n", "arm64": "add $0, $0, #1\n"}


def chain_supported() -> bool:
    """Return whether ``add_chain`` has an assembly form for this machine (x86-64, AArch64)."""
    return platform.machine().lower() in _CHAIN_ASM


if chain_supported():
    llvm.initialize_native_asmparser()  # numba does not; inline assembly needs it


@intrinsic
def add_chain(typingctx, x):
    """Return ``x + CHAIN_ADDS`` through CHAIN_ADDS dependent one-cycle adds (inline assembly)."""
    def codegen(context, builder, signature, args):
        asm = _CHAIN_ASM[platform.machine().lower()] * CHAIN_ADDS
        fnty = ir.FunctionType(_I64, [_I64])
        return builder.asm(fnty, asm, "=r,0", [args[0]], side_effect=True)
    return types.int64(types.int64), codegen


# --------------------------------------------------------------------------------------------
# STREAM (McCalpin 1995): one fused loop per kernel, in place
# --------------------------------------------------------------------------------------------


@njit(cache=CACHE, nogil=True)
def stream_copy(a, c):
    """c = a."""
    for i in range(a.size):
        c[i] = a[i]


@njit(cache=CACHE, nogil=True)
def stream_scale(b, c, q):
    """b = q*c."""
    for i in range(c.size):
        b[i] = q * c[i]


@njit(cache=CACHE, nogil=True)
def stream_add(a, b, c):
    """c = a + b."""
    for i in range(a.size):
        c[i] = a[i] + b[i]


@njit(cache=CACHE, nogil=True)
def stream_triad(a, b, c, q):
    """a = b + q*c."""
    for i in range(a.size):
        a[i] = b[i] + q * c[i]


@njit(cache=CACHE, parallel=True)
def stream_copy_par(a, c):
    """c = a, on numba's threads."""
    for i in prange(a.size):
        c[i] = a[i]


@njit(cache=CACHE, parallel=True)
def stream_scale_par(b, c, q):
    """b = q*c, on numba's threads."""
    for i in prange(c.size):
        b[i] = q * c[i]


@njit(cache=CACHE, parallel=True)
def stream_add_par(a, b, c):
    """c = a + b, on numba's threads."""
    for i in prange(a.size):
        c[i] = a[i] + b[i]


@njit(cache=CACHE, parallel=True)
def stream_triad_par(a, b, c, q):
    """a = b + q*c, on numba's threads."""
    for i in prange(a.size):
        a[i] = b[i] + q * c[i]


@njit(cache=CACHE, nogil=True)
def fill(x, value):
    """x[:] = value (first touch from the calling thread)."""
    for i in range(x.size):
        x[i] = value


@njit(cache=CACHE, parallel=True)
def fill_par(x, value):
    """x[:] = value on numba's threads, with the loops' static split (first touch where used)."""
    for i in prange(x.size):
        x[i] = value


@njit(cache=CACHE, nogil=True)
def max_relative_error(x, expected):
    """Return max |x[i] - expected| / |expected| (absolute error when expected is 0); 0 if empty."""
    scale = abs(expected) if expected != 0.0 else 1.0
    worst = 0.0
    for i in range(x.size):
        err = abs(x[i] - expected) / scale
        if not err <= worst:  # larger, or NaN (a NaN counts as infinitely wrong)
            worst = np.inf if np.isnan(err) else err
    return worst


# --------------------------------------------------------------------------------------------
# pointer chase (lmbench lat_mem_rd) and Sattolo's cyclic permutation
# --------------------------------------------------------------------------------------------


@njit(cache=CACHE, nogil=True)
def chase(address, hops):
    """Follow ``hops`` pointers from ``address`` (each load's address is the last value); return the last."""
    p = address
    for _ in range(hops):
        p = load_word(p)
    return p


@njit(cache=CACHE, nogil=True)
def sattolo_swaps(items, picks):
    """Apply Sattolo's swaps: for i = n-1 .. 1, swap items[i] with items[picks[n-1-i]] (< i)."""
    n = items.size
    for k in range(n - 1):
        i = n - 1 - k
        j = picks[k]
        items[i], items[j] = items[j], items[i]


@njit(cache=CACHE, nogil=True)
def clock_chain(iterations):
    """Run ``iterations`` x CHAIN_ADDS dependent adds; return the sum (keeps them live)."""
    x = 0
    for _ in range(iterations):
        x = add_chain(x)
    return x


# --------------------------------------------------------------------------------------------
# cache-line ping-pong (nviennot's core-to-core-latency; Anandtech's core-to-core tests)
# --------------------------------------------------------------------------------------------


@njit(cache=CACHE, nogil=True)
def ping(flag, warmup, batch, out_ns):
    """Bounce the line at ``flag`` with ``pong``: ``warmup`` untimed round trips, then one batch
    of ``batch`` round trips per element of ``out_ns``, each batch's ns stored there.

    A round trip: store 2k+1 (release), spin until the line reads 2k+2 (acquire).
    """
    value = 0
    for _ in range(warmup):
        value += 1
        store_release(flag, value)
        value += 1
        while load_acquire(flag) != value:
            pass
    for b in range(out_ns.size):
        t0 = monotonic_ns()
        for _ in range(batch):
            value += 1
            store_release(flag, value)
            value += 1
            while load_acquire(flag) != value:
                pass
        out_ns[b] = monotonic_ns() - t0
    return value


@njit(cache=CACHE, nogil=True)
def pong(flag, round_trips):
    """Answer ``round_trips`` of ``ping``'s round trips: spin until 2k+1 (acquire), store 2k+2."""
    value = 0
    for _ in range(round_trips):
        value += 1
        while load_acquire(flag) != value:
            pass
        value += 1
        store_release(flag, value)
    return value
