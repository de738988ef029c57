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

from workloads.kernels import STREAM_VARIANTS, caching_enabled

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
# STREAM (McCalpin 1995): one fused loop per kernel, in place, in three codings
# --------------------------------------------------------------------------------------------
#
# LOOP is the plain Python loop as numba compiles it. On Zen 4 (LLVM 22, target znver4) that
# is a runtime alias check of the three arrays, then 64-byte zmm vectors interleaved 4 times
# (8 loads, 4 multiplies, 4 adds, 4 unaligned stores per 256 bytes) with a scalar remainder;
# its triad ran at 0.88-0.90 of gcc -O3 -march=native's (one zmm FMA per 64 bytes) on the
# same arrays, and the same zmm loop without interleaving at 0.87. VECTOR and NT are the
# loops written in LLVM IR instead: 32-byte vectors (1.10 of gcc's in the same runs), stores
# aligned to the destination's cache lines, no alias check; NT marks the stores !nontemporal
# (vmovntpd: no read for ownership of the destination line, 24 rather than 32 bytes of
# traffic per triad element) and ends with sfence. Measured in benchmarks/references.py.

LINE_BYTES = 64
LINE_DOUBLES = LINE_BYTES // 8
VECTOR_DOUBLES = 4
"""Doubles per vector load and store: 32 bytes (ymm on x86-64 with AVX; LLVM splits it in
two 16-byte halves where there is none)."""

LOOP, VECTOR, NT = (STREAM_VARIANTS.index(v) for v in ("loop", "vector", "nt"))

_F64 = ir.DoubleType()
_VEC = ir.VectorType(_F64, VECTOR_DOUBLES)


def _splat(builder: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """Return a vector with ``x`` in every lane."""
    undef = ir.Constant(_VEC, ir.Undefined)
    first = builder.insert_element(undef, x, _I32(0))
    lanes = ir.Constant(ir.VectorType(_I32, VECTOR_DOUBLES), [0] * VECTOR_DOUBLES)
    return builder.shuffle_vector(first, undef, lanes)


def _store_fence(builder: ir.IRBuilder) -> None:
    """Order the streaming stores before later stores: sfence on x86-64, a full fence elsewhere."""
    if platform.machine().lower() in ("x86_64", "amd64"):
        fnty = ir.FunctionType(ir.VoidType(), [])
        sfence = cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.sse.sfence")
        builder.call(sfence, [])
    else:
        builder.fence("seq_cst")


def _element(builder, ptrs, q, i, expr) -> None:
    """Emit dst[i] = expr(x[i], y[i], q) on scalars."""
    dst, x, y = (builder.gep(p, [i]) for p in ptrs)
    value = expr(builder, q, builder.load(x, align=8), builder.load(y, align=8))
    builder.store(value, dst, align=8)


def _elements(builder, ptrs, q, start, count, expr) -> None:
    """Emit the scalar op for start .. start+count-1 (count < LINE_DOUBLES), unrolled, no loop.

    No loop, so LLVM does not vectorize it behind an alias check of its own.
    """
    for k in range(LINE_DOUBLES - 1):
        with builder.if_then(builder.icmp_signed(">", count, _I64(k))):
            _element(builder, ptrs, q, builder.add(start, _I64(k)), expr)


def _vectors(builder, ptrs, q, start, stop, expr, streaming: bool) -> None:
    """Emit the vector loop over [start, stop): unaligned loads, stores aligned to 32 bytes."""
    qv = _splat(builder, q)
    step = _I64(VECTOR_DOUBLES)
    with cgutils.for_range_slice(builder, start, stop, step) as (i, _):
        dst, x, y = (builder.bitcast(builder.gep(p, [i]), _VEC.as_pointer()) for p in ptrs)
        value = expr(builder, qv, builder.load(x, align=8), builder.load(y, align=8))
        store = builder.store(value, dst, align=VECTOR_DOUBLES * 8)
        if streaming:
            store.set_metadata("nontemporal", builder.module.add_metadata([_I32(1)]))


def _stream_range(expr, streaming: bool):
    """Return an intrinsic ``(dst, x, y, q, lo, hi)``: dst[i] = expr(x[i], y[i], q) for lo <= i < hi.

    Scalars up to dst's first cache-line boundary, 32-byte vectors over its whole lines
    (``!nontemporal`` stores when ``streaming``, then a store fence), scalars after its last.
    ``expr(builder, q, x, y)`` builds the value from scalars or vectors alike.
    """
    @intrinsic
    def stream_range(typingctx, dst, x, y, q, lo, hi):
        def codegen(context, builder, signature, args):
            ptrs = [context.make_array(t)(context, builder, v).data
                    for t, v in zip(signature.args[:3], args[:3])]
            q, lo, hi = args[3:]
            size = builder.select(builder.icmp_signed("<", hi, lo), _I64(0),
                                  builder.sub(hi, lo))
            address = builder.ptrtoint(builder.gep(ptrs[0], [lo]), _I64)
            to_line = builder.lshr(builder.and_(builder.neg(address), _I64(LINE_BYTES - 1)),
                                   _I64(3))  # elements before dst's next line boundary
            head = builder.select(builder.icmp_unsigned("<", size, to_line), size, to_line)
            _elements(builder, ptrs, q, lo, head, expr)
            start = builder.add(lo, head)
            whole = builder.and_(builder.sub(size, head), _I64(-LINE_DOUBLES))
            stop = builder.add(start, whole)
            _vectors(builder, ptrs, q, start, stop, expr, streaming)
            _elements(builder, ptrs, q, stop, builder.sub(builder.add(lo, size), stop), expr)
            if streaming:
                _store_fence(builder)
            return context.get_dummy_value()
        return types.void(dst, x, y, q, lo, hi), codegen
    return stream_range


def _copy(b, q, x, y):
    return x


def _scale(b, q, x, y):
    return b.fmul(q, x)


def _add(b, q, x, y):
    return b.fadd(x, y)


def _triad(b, q, x, y):
    return b.fadd(x, b.fmul(q, y))  # no FMA contraction: the results stay STREAM's bit for bit


def _fill(b, q, x, y):
    return q


_copy_vector, _copy_nt = _stream_range(_copy, False), _stream_range(_copy, True)
_scale_vector, _scale_nt = _stream_range(_scale, False), _stream_range(_scale, True)
_add_vector, _add_nt = _stream_range(_add, False), _stream_range(_add, True)
_triad_vector, _triad_nt = _stream_range(_triad, False), _stream_range(_triad, True)
_fill_vector = _stream_range(_fill, False)


@njit(cache=CACHE)
def line_part(dst, parts, t):
    """Return [lo, hi) of part ``t`` of dst's indices, cut in ``parts`` runs of whole cache lines."""
    n = dst.size
    head = min(n, (LINE_BYTES - dst.ctypes.data % LINE_BYTES) % LINE_BYTES // 8)
    lines = (n - head + LINE_DOUBLES - 1) // LINE_DOUBLES
    lo = 0 if t == 0 else min(n, head + lines * t // parts * LINE_DOUBLES)
    hi = n if t == parts - 1 else min(n, head + lines * (t + 1) // parts * LINE_DOUBLES)
    return lo, hi


@njit(cache=CACHE, nogil=True)
def stream_copy(a, c, variant):
    """c = a, coded as ``variant`` (LOOP, VECTOR, NT)."""
    if variant == NT:
        _copy_nt(c, a, a, 0.0, 0, c.size)
    elif variant == VECTOR:
        _copy_vector(c, a, a, 0.0, 0, c.size)
    else:
        for i in range(a.size):
            c[i] = a[i]


@njit(cache=CACHE, nogil=True)
def stream_scale(b, c, q, variant):
    """b = q*c, coded as ``variant``."""
    if variant == NT:
        _scale_nt(b, c, c, q, 0, b.size)
    elif variant == VECTOR:
        _scale_vector(b, c, c, q, 0, b.size)
    else:
        for i in range(c.size):
            b[i] = q * c[i]


@njit(cache=CACHE, nogil=True)
def stream_add(a, b, c, variant):
    """c = a + b, coded as ``variant``."""
    if variant == NT:
        _add_nt(c, a, b, 0.0, 0, c.size)
    elif variant == VECTOR:
        _add_vector(c, a, b, 0.0, 0, c.size)
    else:
        for i in range(a.size):
            c[i] = a[i] + b[i]


@njit(cache=CACHE, nogil=True)
def stream_triad(a, b, c, q, variant):
    """a = b + q*c, coded as ``variant``."""
    if variant == NT:
        _triad_nt(a, b, c, q, 0, a.size)
    elif variant == VECTOR:
        _triad_vector(a, b, c, q, 0, a.size)
    else:
        for i in range(a.size):
            a[i] = b[i] + q * c[i]


# The parallel kernels: LOOP is numba's prange (its own static split of the indices); VECTOR
# and NT cut the destination into ``parts`` runs of whole lines (line_part), one per thread
# when ``parts`` is numba's thread count (given by the caller: get_num_threads inside a
# kernel is a dynamic global, which numba cannot cache).


@njit(cache=CACHE, parallel=True)
def stream_copy_par(a, c, variant, parts):
    """c = a, on numba's threads."""
    if variant == LOOP:
        for i in prange(a.size):
            c[i] = a[i]
    else:
        for t in prange(parts):
            lo, hi = line_part(c, parts, t)
            if variant == NT:
                _copy_nt(c, a, a, 0.0, lo, hi)
            else:
                _copy_vector(c, a, a, 0.0, lo, hi)


@njit(cache=CACHE, parallel=True)
def stream_scale_par(b, c, q, variant, parts):
    """b = q*c, on numba's threads."""
    if variant == LOOP:
        for i in prange(c.size):
            b[i] = q * c[i]
    else:
        for t in prange(parts):
            lo, hi = line_part(b, parts, t)
            if variant == NT:
                _scale_nt(b, c, c, q, lo, hi)
            else:
                _scale_vector(b, c, c, q, lo, hi)


@njit(cache=CACHE, parallel=True)
def stream_add_par(a, b, c, variant, parts):
    """c = a + b, on numba's threads."""
    if variant == LOOP:
        for i in prange(a.size):
            c[i] = a[i] + b[i]
    else:
        for t in prange(parts):
            lo, hi = line_part(c, parts, t)
            if variant == NT:
                _add_nt(c, a, b, 0.0, lo, hi)
            else:
                _add_vector(c, a, b, 0.0, lo, hi)


@njit(cache=CACHE, parallel=True)
def stream_triad_par(a, b, c, q, variant, parts):
    """a = b + q*c, on numba's threads."""
    if variant == LOOP:
        for i in prange(a.size):
            a[i] = b[i] + q * c[i]
    else:
        for t in prange(parts):
            lo, hi = line_part(a, parts, t)
            if variant == NT:
                _triad_nt(a, b, c, q, lo, hi)
            else:
                _triad_vector(a, b, c, q, lo, hi)


@njit(cache=CACHE, nogil=True)
def fill(x, value):
    """x[:] = value (first touch from the calling thread)."""
    for i in range(x.size):
        x[i] = value


@njit(cache=CACHE, parallel=True)
def fill_par(x, value, variant, parts):
    """x[:] = value on numba's threads, split as the ``variant`` kernels split (first touch)."""
    if variant == LOOP:
        for i in prange(x.size):
            x[i] = value
    else:
        for t in prange(parts):
            lo, hi = line_part(x, parts, t)
            _fill_vector(x, x, x, value, lo, hi)


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
def chase_timed(address, warm, hops):
    """Follow ``warm`` pointers untimed, then ``hops`` timed; return (last address, timed ns).

    Only the dependent loads lie between the two clock reads (each a vDSO clock_gettime, as
    the C reference's): no dispatch, no Python, so even a short chase is timed exactly.
    """
    p = chase(address, warm)
    t0 = monotonic_ns()
    p = chase(p, hops)
    return p, monotonic_ns() - t0


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
