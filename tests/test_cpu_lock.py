"""The host-wide CPU lock: real lock files, held by real other processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from cluster.cpu_lock import CpuLock, CpuLockTimeout, Holder, held_by, lock_path, wait_for
from workloads.errors import UserError

# A holder process: lock CPUs argv[1] as run argv[2] (as uid argv[4] when given), say so, hold
# for argv[3] seconds.
HOLDER = """
import os, sys, time
from cluster.cpu_lock import CpuLock
if len(sys.argv) > 4:
    os.setgid(int(sys.argv[4])); os.setuid(int(sys.argv[4]))
lock = CpuLock()
busy = lock.acquire([int(c) for c in sys.argv[1].split(",")], sys.argv[2])
print("held" if busy is None else f"busy {busy.run_id}", flush=True)
time.sleep(float(sys.argv[3]))
"""


@pytest.fixture
def lock_dir(monkeypatch) -> Iterator[Path]:
    """A fresh lock folder (not created yet) under a traversable /tmp dir, for us and children."""
    parent = Path(tempfile.mkdtemp(prefix="tb-locks-", dir="/tmp"))
    parent.chmod(0o755)
    directory = parent / "locks"
    monkeypatch.setenv("TOPOBENCH_LOCK_DIR", str(directory))
    yield directory
    for f in directory.glob("*") if directory.exists() else ():
        f.unlink()
    if directory.exists():
        directory.rmdir()
    parent.rmdir()


@contextmanager
def holder(cpus: str, run_id: str, hold_s: float = 60, uid: int | None = None):
    """Run a process that locks ``cpus`` (e.g. "0,1"); yield (process, its first line)."""
    args = [sys.executable, "-c", HOLDER, cpus, run_id, str(hold_s)] + ([str(uid)] if uid else [])
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    try:
        yield proc, proc.stdout.readline().strip()
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


def test_a_cpu_held_by_another_process_blocks_and_names_it(lock_dir):
    with holder("0,1", "run-A") as (proc, said):
        assert said == "held"
        lock = CpuLock()
        busy = lock.acquire([1, 2], "run-B")
        assert busy is not None and lock.cpus == ()
        assert (busy.run_id, busy.pid, busy.hostname, busy.cpus) == ("run-A", proc.pid,
                                                                     socket.gethostname(), (1,))
        assert busy.since.endswith("+00:00")  # an ISO instant in UTC
        assert lock.acquire([0, 1, 5], "run-B").cpus == (0, 1)  # every CPU it holds is named
        message = str(CpuLockTimeout(held_by([0, 1]), 30))
        assert message.startswith("CPUs 0-1 are locked by run run-A ")
        assert held_by([3, 1]) == busy
        assert held_by([2, 3]) is None


def test_wait_for_times_out_with_one_sentence_naming_the_other_run(lock_dir):
    waits: list[Holder] = []
    with holder("2", "run-A") as (proc, _):
        start = time.monotonic()
        with pytest.raises(CpuLockTimeout) as caught:
            wait_for([2, 3], "run-B", timeout_s=0.5, on_wait=waits.append, poll_s=0.05)
        assert time.monotonic() - start >= 0.5
        since = caught.value.holder.since
    assert isinstance(caught.value, UserError)
    assert len(waits) == 1 and waits[0].pid == proc.pid
    assert str(caught.value) == (
        f"CPU 2 is locked by run run-A (pid {proc.pid} on {socket.gethostname()}, since {since}) "
        "and stayed locked for 0.5 s; wait for that run to finish, stop it, run anyway with "
        "--no-lock (its trials are flagged shared_cpus), or raise --lock-timeout.")
    assert held_by([3]) is None  # the CPU it could take is not left locked


def test_wait_for_takes_the_cpus_once_the_other_run_ends(lock_dir):
    waits: list[Holder] = []
    with holder("0", "run-A", hold_s=0.5):
        lock = wait_for([0, 1], "run-B", timeout_s=30, on_wait=waits.append, poll_s=0.05)
    assert [w.run_id for w in waits] == ["run-A"]
    assert lock.cpus == (0, 1) and held_by([0]).run_id == "run-B"
    lock.release()
    assert wait_for([0], "run-C", timeout_s=0, on_wait=waits.append).cpus == (0,)
    assert len(waits) == 1  # no wait, no message


def test_a_sigkilled_holder_never_blocks(lock_dir):
    with holder("0,1", "run-dead") as (proc, said):
        assert said == "held"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        stale = json.loads(lock_path(lock_dir, 0).read_text())
        assert (stale["run_id"], stale["pid"]) == ("run-dead", proc.pid)  # its line is still there
        assert held_by([0, 1]) is None
        with CpuLock() as lock:
            assert lock.acquire([0, 1], "run-B") is None
            assert json.loads(lock_path(lock_dir, 1).read_text())["run_id"] == "run-B"


def test_partial_overlap_blocks_and_a_failed_acquire_leaves_nothing_locked(lock_dir):
    with holder("2,3", "run-A"):
        lock = CpuLock()
        assert lock.acquire([0, 1, 2], "run-B").cpus == (2,)
        assert lock.cpus == ()
        with holder("0,1", "run-C") as (_, said):  # another process can take what B let go
            assert said == "held"


def test_release_is_idempotent_and_the_lock_can_be_taken_again(lock_dir):
    lock = CpuLock()
    assert lock.acquire([], "run-A") is None and lock.cpus == ()
    assert lock.acquire([3, 1, 1], "run-A") is None and lock.cpus == (1, 3)
    with pytest.raises(RuntimeError, match="already holds CPUs 1,3"):
        lock.acquire([5], "run-A")
    other = CpuLock()  # flock is per open file: a second lock in one process is excluded too
    assert other.acquire([3], "run-B").run_id == "run-A"
    lock.release()
    lock.release()
    assert lock_path(lock_dir, 1).read_text() == ""  # a clean release clears the holder line
    assert other.acquire([3], "run-B") is None
    with holder("3", "run-C") as (_, said):
        assert said == "busy run-B"
    other.release()
    with holder("1,3", "run-C") as (_, said):
        assert said == "held"


def test_a_holder_that_has_not_written_its_line_yet_is_unknown(lock_dir):
    lock_dir.mkdir(mode=0o777)
    script = ("import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
              "fcntl.flock(fd, fcntl.LOCK_EX); print(flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", script, str(lock_path(lock_dir, 4))],
                            stdout=subprocess.PIPE)
    try:
        proc.stdout.readline()
        assert held_by([4]) == Holder("(unknown)", 0, "(unknown host)", (4,), "(unknown)")
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


def test_folder_is_1777_and_files_0666_whatever_the_umask(lock_dir):
    old = os.umask(0o077)
    try:
        with CpuLock() as lock:
            lock.acquire([0, 1], "run-A")
    finally:
        os.umask(old)
    assert stat.S_IMODE(lock_dir.stat().st_mode) == 0o1777
    assert {stat.S_IMODE(f.stat().st_mode) for f in lock_dir.iterdir()} == {0o666}


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a holder as another user")
def test_another_user_can_lock_files_this_user_created(lock_dir):
    old = os.umask(0o077)
    try:
        with CpuLock() as lock:
            lock.acquire([0], "run-root")
    finally:
        os.umask(old)
    nobody = 65534
    with holder("0,7", "run-nobody", uid=nobody) as (proc, said):
        assert said == "held"
        busy = CpuLock().acquire([0, 7], "run-root")
        assert (busy.run_id, busy.pid, busy.cpus) == ("run-nobody", proc.pid, (0, 7))
        assert lock_path(lock_dir, 7).stat().st_uid == nobody
