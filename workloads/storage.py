"""Storage workloads: sequential file write, fsync, cold and warm read-back with a checksum.

Method after ``dd``/fio's sequential ``rw=write``/``rw=read`` jobs: blocks of ``block_kib``
written with ``os.write`` from a seeded random buffer (not trivially compressible), then
``os.fsync`` (like ``dd conv=fsync``), then the file's pages are dropped with
``posix_fadvise(POSIX_FADV_DONTNEED)`` so the first read comes from the device, then a second
read of the same file comes from the page cache. Whether the kernel honoured the drop is
checked with ``mincore(2)`` (via ctypes) and reported, since tmpfs and some filesystems keep
the pages.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import hashlib
import math
import mmap
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from workloads.base import Measurement, Metric, WorkerContext, Workload
from workloads.errors import UserError
from workloads.params import Param
from workloads.registry import register

MIB = 1 << 20
# Longest stretch of distinct random bytes; the file repeats it (32 MiB defeats compressors'
# windows; a file no longer than this is fully random).
POOL_LIMIT_BYTES = 32 * MIB
# Share of pages still resident after the drop below which the drop counts as honoured.
RESIDENT_LIMIT = 0.01


def _writable_error(scratch: str) -> UserError:
    return UserError(
        f"scratch folder {scratch} is not writable; pass a writable folder with "
        "--param io.sequential.scratch=DIR"
    )


def check_scratch(scratch: str) -> None:
    """Raise ``UserError`` unless ``scratch`` is a writable folder or one that can be created.

    Tries a real file (or, for a missing folder, a real subfolder of its nearest existing
    ancestor) rather than ``os.access``, which says yes to root on a read-only mount.
    """
    path = Path(scratch).expanduser()
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            raise _writable_error(scratch)
        probe = probe.parent
    if not probe.is_dir():
        raise _writable_error(scratch)
    try:
        if probe == path:
            with tempfile.TemporaryFile(dir=probe):
                pass
        else:
            os.rmdir(tempfile.mkdtemp(dir=probe))
    except OSError:
        raise _writable_error(scratch) from None


def _load_libc() -> Any:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    libc = ctypes.CDLL(name, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long)
    libc.munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
    libc.mincore.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p)
    return libc


_LIBC = _load_libc() if hasattr(os, "posix_fadvise") else None


def resident_fraction(fd: int, size_bytes: int) -> float:
    """Return the share of the file's pages in the page cache (mincore); NaN when unknown."""
    if _LIBC is None or size_bytes <= 0:
        return math.nan
    addr = _LIBC.mmap(None, size_bytes, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
    if addr is None or addr == ctypes.c_void_p(-1).value:
        return math.nan
    try:
        pages = (size_bytes + mmap.PAGESIZE - 1) // mmap.PAGESIZE
        vec = (ctypes.c_ubyte * pages)()
        if _LIBC.mincore(addr, size_bytes, vec) != 0:
            return math.nan
        return sum(b & 1 for b in vec) / pages
    finally:
        _LIBC.munmap(addr, size_bytes)


def make_pool(size_bytes: int, block_bytes: int, seed: int) -> bytes:
    """Return seeded random bytes: a whole number of blocks covering min(file, 32 MiB)."""
    blocks = -(-min(size_bytes, POOL_LIMIT_BYTES) // block_bytes)
    return np.random.default_rng(seed).bytes(blocks * block_bytes)


def chunks(size_bytes: int, block_bytes: int, pool: bytes):
    """Yield (offset, memoryview) blocks of the file: ``pool`` repeated, last block short."""
    view = memoryview(pool)
    for offset in range(0, size_bytes, block_bytes):
        start = offset % len(pool)
        yield offset, view[start:start + min(block_bytes, size_bytes - offset)]


@register
class SequentialIO(Workload):
    """Write a file sequentially, fsync it, then read it back cold and warm, verifying it.

    One op is one byte moved: each file cycle writes ``size_mib`` MiB and reads it twice
    (cold, then warm), so one cycle is 3 x size bytes. ``io_bytes_per_s`` is over the whole
    cycle as the harness times it (including checksum verification, the page drop and file
    creation/removal); the per-phase MB/s metrics time only the system calls of their phase
    (write+fsync, cold reads, warm reads) and are the figures to compare with ``dd``/fio.
    Source: dd (conv=fsync) and fio sequential read/write jobs.
    """

    name = "io.sequential"
    summary = "sequential write+fsync, then cold (pages dropped) and warm read-back of a file"
    source = "dd conv=fsync / fio rw=write,read; cold reads via posix_fadvise(DONTNEED)"
    op = "one byte written or read (a cycle writes the file once and reads it twice)"
    throughput = Metric("io_bytes_per_s", "B/s",
                        "bytes written plus bytes read cold and warm, per second of the cycle")
    metrics = (
        Metric("write_mbs", "MB/s", "write+fsync throughput, 1e6 bytes/s"),
        Metric("cold_read_mbs", "MB/s",
               "read throughput after dropping the file's pages (device reads when honoured)"),
        Metric("warm_read_mbs", "MB/s (page cache)", "second read, served from the page cache"),
        Metric("cold_read_dropped", "fraction",
               "share of cycles whose page drop was honoured (mincore: <1% pages resident); "
               "NaN when mincore is unavailable", better=None),
    )
    params = (
        Param("size_mib", 64, "file size", "MiB", minimum=1, maximum=1 << 20, split=True),
        Param("block_kib", 1024, "size of one write/read call", "KiB", minimum=4,
              maximum=1 << 20),
        Param("scratch", "", "folder for the file; empty = the worker's scratch folder or a "
              "temporary folder", ""),
        Param("seed", 0, "seed of the random file contents", "", minimum=0),
    )

    _dir: Path | None = None  # this instance's folder of files; None before setup
    _created: tuple[Path, ...] = ()  # folders setup made, deepest first

    @classmethod
    def validate(cls, params: Mapping[str, Any]) -> None:
        """Refuse a scratch folder that is not writable (and cannot be created)."""
        if params["scratch"]:
            check_scratch(params["scratch"])

    def setup(self, ctx: WorkerContext) -> None:
        self._size = self.params["size_mib"] * MIB
        self._block = self.params["block_kib"] * 1024
        self._pool = make_pool(self._size, self._block, self.params["seed"])
        digest = hashlib.blake2b(digest_size=16)
        for _, data in chunks(self._size, self._block, self._pool):
            digest.update(data)
        self._expected = digest.digest()
        self._buf = bytearray(self._block)
        created = []
        scratch = self.params["scratch"] or ctx.scratch_dir
        parent = Path(scratch).expanduser() if scratch else None
        if parent is not None:
            missing = parent
            while not missing.exists():
                created.append(missing)
                missing = missing.parent
            self._created = tuple(created)
            parent.mkdir(parents=True, exist_ok=True)
        self._dir = Path(tempfile.mkdtemp(prefix="topobench-io-", dir=parent))
        self._count = 0

    def run(self, n: int) -> Measurement:
        totals = {"write": 0, "cold": 0, "warm": 0}
        dropped: list[float] = []
        for _ in range(n):
            path = self._dir / f"cycle-{self._count}.dat"
            self._count += 1
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                totals["write"] += self._write(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                resident = resident_fraction(fd, self._size)
                dropped.append(math.nan if math.isnan(resident)
                               else float(resident < RESIDENT_LIMIT))
                totals["cold"] += self._read(fd, path, "cold")
                totals["warm"] += self._read(fd, path, "warm")
            finally:
                os.close(fd)
                path.unlink()
        moved = self._size * n
        return Measurement(ops=3 * moved, metrics={
            "write_mbs": moved / totals["write"] * 1e3,
            "cold_read_mbs": moved / totals["cold"] * 1e3,
            "warm_read_mbs": moved / totals["warm"] * 1e3,
            "cold_read_dropped": float(np.mean(dropped)),
        })

    def _write(self, fd: int) -> int:
        """Write the whole file and fsync it; return ns spent in write and fsync calls."""
        t0 = time.perf_counter_ns()
        for _, data in chunks(self._size, self._block, self._pool):
            while data:
                data = data[os.write(fd, data):]
        os.fsync(fd)
        return time.perf_counter_ns() - t0

    def _read(self, fd: int, path: Path, which: str) -> int:
        """Read the whole file, verify its blake2b digest; return ns spent in read calls."""
        digest = hashlib.blake2b(digest_size=16)
        view = memoryview(self._buf)
        elapsed = 0
        offset = 0
        while offset < self._size:
            want = view[:min(self._block, self._size - offset)]
            t0 = time.perf_counter_ns()
            got = os.preadv(fd, [want], offset)
            elapsed += time.perf_counter_ns() - t0
            if got == 0:
                raise RuntimeError(f"io.sequential: {path} ended at {offset} bytes during the "
                                   f"{which} read; expected {self._size}")
            digest.update(want[:got])
            offset += got
        if digest.digest() != self._expected:
            raise RuntimeError(f"io.sequential: checksum of {path} differs on the {which} read "
                               "from the data written; the storage returned wrong bytes")
        return elapsed

    def teardown(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
        for folder in self._created:
            with contextlib.suppress(OSError):
                folder.rmdir()
        self._dir, self._created, self._pool, self._buf = None, (), b"", bytearray()
