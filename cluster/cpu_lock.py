"""A host-wide advisory lock per CPU, so two benchmark runs never pin the same CPU unknowingly.

pyperf lists a system-wide lock as missing; BenchExec assigns cores so that runs never share
them. Here each CPU has one lock file under a folder every user of the host shares
(``/tmp/topobench-locks``, or ``$TOPOBENCH_LOCK_DIR``), locked with ``flock(LOCK_EX | LOCK_NB)``:
the kernel drops a lock when its holder dies, so a stale file never blocks. The holder writes
one line of JSON into each file it holds so that a waiter can name it.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from cluster.cpulist import format_cpulist
from workloads.errors import UserError

if TYPE_CHECKING:
    from typing_extensions import Self

DEFAULT_LOCK_DIR = Path("/tmp/topobench-locks")
_READ_RETRIES = 5  # a holder writes its line just after it locks; a reader may be that quick


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds CPU locks: run id, pid and hostname of that process, the CPUs, since (UTC ISO)."""

    run_id: str
    pid: int
    hostname: str
    cpus: tuple[int, ...]
    since: str


class CpuLockTimeout(UserError):
    """CPUs stayed locked by another run for longer than the caller would wait."""

    def __init__(self, holder: Holder, timeout_s: float) -> None:
        cpus = f"CPU {holder.cpus[0]} is" if len(holder.cpus) == 1 else \
            f"CPUs {format_cpulist(holder.cpus)} are"
        super().__init__(
            f"{cpus} locked by run {holder.run_id} "
            f"(pid {holder.pid} on {holder.hostname}, since {holder.since}) and stayed locked "
            f"for {timeout_s:g} s; wait for that run to finish, stop it, run anyway with "
            f"--no-lock (its trials are flagged shared_cpus), or raise --lock-timeout.")
        self.holder = holder


def lock_dir() -> Path:
    """Return the shared lock folder: ``$TOPOBENCH_LOCK_DIR`` or ``/tmp/topobench-locks``."""
    override = os.environ.get("TOPOBENCH_LOCK_DIR")
    return Path(override) if override else DEFAULT_LOCK_DIR


def lock_path(directory: Path, cpu: int) -> Path:
    """Return the lock file of logical CPU ``cpu`` under ``directory``."""
    return directory / f"cpu{cpu}.lock"


def _ensure_dir(directory: Path) -> None:
    """Create ``directory`` mode 1777 (like /tmp) so that every user can add lock files to it."""
    if not directory.is_dir():
        directory.mkdir(parents=True, exist_ok=True)
        try:
            os.chmod(directory, 0o1777)  # mkdir's mode is masked by the umask
        except PermissionError:
            pass  # another user created it at the same instant; they set the mode


def _open(path: Path) -> int:
    """Open (creating mode 0o666) a lock file; read-only when another user's file refuses writes.

    An existing file is opened without O_CREAT: with ``fs.protected_regular`` the kernel
    refuses O_CREAT on another user's file in a sticky world-writable folder.
    """
    flags = os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(3):
        try:
            return os.open(path, os.O_RDWR | flags)
        except PermissionError:
            return os.open(path, os.O_RDONLY | flags)  # flock works on any descriptor
        except FileNotFoundError:
            pass
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | flags, 0o666)
        except FileExistsError:
            continue  # created by someone else meanwhile: open theirs
        os.fchmod(fd, 0o666)  # regardless of the umask, so other users' runs can lock it
        return fd
    raise OSError(errno.EAGAIN, f"could not open lock file {path}")


def _try_lock(fd: int) -> bool:
    """Take ``fd``'s exclusive lock without blocking; False when someone else holds it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _read_holder(path: Path, cpu: int) -> Holder:
    """Return the holder named in ``path`` (unknown fields when the file is empty or partial)."""
    for attempt in range(_READ_RETRIES):
        try:
            record = json.loads(path.read_text())
            return Holder(str(record["run_id"]), int(record["pid"]), str(record["hostname"]),
                          (cpu,), str(record["since"]))
        except (OSError, ValueError, KeyError, TypeError):
            time.sleep(0.002 * (attempt + 1))
    return Holder("(unknown)", 0, "(unknown host)", (cpu,), "(unknown)")


def _is_held(directory: Path, cpu: int) -> bool:
    """Return whether CPU ``cpu``'s lock is held (probed with a shared lock, dropped at once)."""
    path = lock_path(directory, cpu)
    if not path.exists():
        return False
    fd = _open(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the probe's shared lock
    return False


def _with_all_cpus(directory: Path, first: Holder, cpus: Iterable[int]) -> Holder:
    """Return ``first`` with every CPU of ``cpus`` that the same run and pid hold now."""
    same = [c for c in cpus if c in first.cpus or (
        _is_held(directory, c) and _same_holder(_read_holder(lock_path(directory, c), c), first))]
    return Holder(first.run_id, first.pid, first.hostname, tuple(sorted(set(same))), first.since)


def _same_holder(a: Holder, b: Holder) -> bool:
    return (a.run_id, a.pid, a.hostname) == (b.run_id, b.pid, b.hostname)


def _cpu_ids(cpus: Iterable[int]) -> tuple[int, ...]:
    ids = tuple(sorted({int(c) for c in cpus}))
    if ids and ids[0] < 0:
        raise ValueError(f"CPU ids must be >= 0, got {ids[0]}")
    return ids


class CpuLock:
    """Exclusive advisory locks on a set of this host's CPUs, held until ``release``.

    Usable as a context manager (``with CpuLock() as lock: lock.acquire(...)``). Locks
    belong to the open file, so two ``CpuLock`` objects exclude each other even in one process.
    """

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory if directory is not None else lock_dir()
        self._fds: dict[int, int] = {}
        self.run_id: str | None = None

    @property
    def cpus(self) -> tuple[int, ...]:
        """The CPUs held now, ascending; () when none."""
        return tuple(sorted(self._fds))

    def acquire(self, cpus: Iterable[int], run_id: str) -> Holder | None:
        """Lock every CPU of ``cpus`` (ascending, never blocking); None on success.

        All or nothing: when any CPU is held, release what this call took and return that
        run's ``Holder`` (with all of ``cpus`` it holds). No CPUs: None, nothing held.
        """
        if self._fds:
            raise RuntimeError(f"this CpuLock already holds CPUs {format_cpulist(self.cpus)}")
        wanted = _cpu_ids(cpus)
        if not wanted:
            return None
        _ensure_dir(self.directory)
        line = json.dumps({"run_id": run_id, "pid": os.getpid(), "hostname": socket.gethostname(),
                           "since": datetime.now(timezone.utc).isoformat(timespec="seconds")})
        for cpu in wanted:
            path = lock_path(self.directory, cpu)
            fd = _open(path)
            if not _try_lock(fd):
                os.close(fd)
                self.release()
                return _with_all_cpus(self.directory, _read_holder(path, cpu), wanted)
            self._fds[cpu] = fd
            _write_line(fd, line)
        self.run_id = run_id
        return None

    def release(self) -> None:
        """Unlock and close every CPU held (clearing the holder line); no-op when none."""
        for fd in self._fds.values():
            try:
                os.ftruncate(fd, 0)
            except OSError:
                pass  # opened read-only (another user's file): nothing was written
            os.close(fd)  # closing the only descriptor drops the flock
        self._fds.clear()
        self.run_id = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __del__(self) -> None:
        self.release()


def _write_line(fd: int, line: str) -> None:
    """Replace ``fd``'s content with ``line`` (skipped on a read-only descriptor)."""
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, (line + "\n").encode(), 0)
    except OSError:
        pass


def held_by(cpus: Iterable[int], directory: Path | None = None) -> Holder | None:
    """Return who holds any of ``cpus`` (the lowest held CPU's holder); None if all are free."""
    directory = directory if directory is not None else lock_dir()
    wanted = _cpu_ids(cpus)
    for cpu in wanted:
        if _is_held(directory, cpu):
            return _with_all_cpus(directory, _read_holder(lock_path(directory, cpu), cpu), wanted)
    return None


def wait_for(cpus: Iterable[int], run_id: str, timeout_s: float,
             on_wait: Callable[[Holder], None], poll_s: float = 0.2,
             directory: Path | None = None) -> CpuLock:
    """Acquire ``cpus``, polling every ``poll_s`` s for up to ``timeout_s`` s, and return the lock.

    ``on_wait`` is called once, with the holder, when the first attempt finds a CPU held.

    Raises:
        CpuLockTimeout: the CPUs were still held after ``timeout_s`` s.
    """
    lock = CpuLock(directory)
    deadline = time.monotonic() + timeout_s
    waited = False
    while True:
        holder = lock.acquire(cpus, run_id)
        if holder is None:
            return lock
        if time.monotonic() >= deadline:
            raise CpuLockTimeout(holder, timeout_s)
        if not waited:
            on_wait(holder)
            waited = True
        time.sleep(max(0.0, min(poll_s, deadline - time.monotonic())))
