"""Tests of io.sequential: bytes written, checksums verified, page drop detected, cleanup."""

from __future__ import annotations

import math
import os
import threading

import psutil
import pytest

from workloads import UserError, WorkerContext, storage
from workloads.harness import calibrate, time_run
from workloads.storage import SequentialIO, resident_fraction

MIB = 1 << 20


def _tmpfs_dir() -> str | None:
    for part in psutil.disk_partitions(all=True):
        if part.mountpoint == "/dev/shm" and part.fstype == "tmpfs":
            return part.mountpoint
    return None


def test_cycle_writes_whole_file_and_reports_every_phase(tmp_path, monkeypatch):
    sizes = []
    real_fsync = os.fsync

    def fsync(fd):
        sizes.append(os.fstat(fd).st_size)
        real_fsync(fd)

    monkeypatch.setattr(storage.os, "fsync", fsync)
    w = SequentialIO({"size_mib": 2, "block_kib": 48})  # 48 KiB blocks: last one is short
    w.setup(WorkerContext(scratch_dir=tmp_path))
    try:
        n = calibrate(w.run, 0.01)
        timed = time_run(w.run, n)
    finally:
        w.teardown()
    assert sizes and all(size == 2 * MIB for size in sizes)
    assert timed.measurement.ops == 3 * 2 * MIB * n
    m = timed.measurement.metrics
    for name in ("write_mbs", "cold_read_mbs", "warm_read_mbs"):
        assert m[name] > 0 and math.isfinite(m[name])
    assert math.isnan(m["cold_read_dropped"]) or 0.0 <= m["cold_read_dropped"] <= 1.0
    assert list(tmp_path.iterdir()) == []


def test_corrupted_read_fails_the_checksum(tmp_path, monkeypatch):
    real_preadv = os.preadv

    def preadv(fd, buffers, offset):
        got = real_preadv(fd, buffers, offset)
        if offset == 0:
            buffers[0][0] ^= 0xFF
        return got

    w = SequentialIO({"size_mib": 1, "block_kib": 64})
    w.setup(WorkerContext(scratch_dir=tmp_path))
    try:
        monkeypatch.setattr(storage.os, "preadv", preadv)
        with pytest.raises(RuntimeError, match="checksum"):
            w.run(1)
    finally:
        w.teardown()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(_tmpfs_dir() is None, reason="needs /dev/shm on tmpfs")
def test_drop_is_reported_not_honoured_on_tmpfs():
    w = SequentialIO({"size_mib": 1, "scratch": _tmpfs_dir()})
    w.setup(WorkerContext())
    try:
        m = w.run(1).metrics
    finally:
        w.teardown()
    if not math.isnan(m["cold_read_dropped"]):
        assert m["cold_read_dropped"] == 0.0  # tmpfs pages are the only copy: never dropped


def test_resident_fraction_sees_fresh_pages(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(os.urandom(256 * 1024))
    fd = os.open(path, os.O_RDONLY)
    try:
        frac = resident_fraction(fd, 256 * 1024)
    finally:
        os.close(fd)
    assert math.isnan(frac) or frac == 1.0


def test_missing_scratch_is_created_and_removed(tmp_path):
    scratch = tmp_path / "a" / "b"
    w = SequentialIO({"size_mib": 1, "scratch": str(scratch)})
    w.setup(WorkerContext())
    assert scratch.is_dir()
    w.run(1)
    w.teardown()
    assert list(tmp_path.iterdir()) == []


def test_existing_scratch_is_kept_but_emptied(tmp_path):
    w = SequentialIO({"size_mib": 1, "scratch": str(tmp_path)})
    w.setup(WorkerContext())
    w.run(2)
    w.teardown()
    assert tmp_path.is_dir() and list(tmp_path.iterdir()) == []


def test_unwritable_scratch_is_refused(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    for bad in (blocker, blocker / "sub"):
        with pytest.raises(UserError) as err:
            SequentialIO({"scratch": str(bad)})
        assert str(err.value) == (
            f"scratch folder {bad} is not writable; pass a writable folder with "
            "--param io.sequential.scratch=DIR")


@pytest.mark.parametrize("params", [{"size_mib": -1}, {"size_mib": 0}, {"block_kib": 1},
                                    {"size_mib": "lots"}])
def test_bad_sizes_are_refused(params):
    with pytest.raises(UserError):
        SequentialIO(params)


def test_no_threads_left(tmp_path):
    before = set(threading.enumerate())
    w = SequentialIO({"size_mib": 1})
    w.setup(WorkerContext(scratch_dir=tmp_path))
    w.run(1)
    w.teardown()
    assert set(threading.enumerate()) == before


def test_missing_worker_scratch_dir_is_created_and_removed(tmp_path):
    w = SequentialIO({"size_mib": 1})
    w.setup(WorkerContext(scratch_dir=tmp_path / "node" / "scratch"))
    w.run(1)
    w.teardown()
    assert list(tmp_path.iterdir()) == []


def test_teardown_after_failed_setup_is_safe():
    SequentialIO({"size_mib": 1}).teardown()
