"""What the machine did while a worker measured: per-CPU utilization over each sample, and RSS.

CPU utilization comes from ``psutil.cpu_times(percpu=True)`` read right before and right
after each measured sample (outside its timed region), so each reading covers exactly one
sample, however short, and never the idle gaps between rounds. One worker per node records
the node's CPUs; the per-CPU busy and total times of its samples add up into the trial's
means (a short sample weighs what it lasted). A sample whose round was not measured (it
missed its window) is left out of both the rows and the means (``table``, ``cpu_means``). Busy time is total minus idle and iowait, as
psutil and htop count it. RSS is this process's resident set, read by a background thread
every ``interval_s`` while a sample runs (one cheap call per worker, the same on every worker).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Collection, Sequence
from pathlib import Path

import psutil
import pyarrow as pa

from cluster.sysfs import read_cpulist

DEFAULT_INTERVAL_S = 0.2
"""Seconds between two RSS samples."""

RESOURCE_COLUMNS = pa.schema([
    ("t_ns", pa.int64()),  # wall clock, ns since the epoch, at the end of the interval
    ("since_ns", pa.int64()),  # its start: a cpu_percent row covers exactly one sample
    ("kind", pa.string()),  # cpu_percent | rss_bytes
    ("cpu", pa.int32()),  # the CPU of a cpu_percent row; null for rss_bytes
    ("value", pa.float64()),  # percent (0–100) or bytes
])


def online_cpus(sysfs_root: Path = Path("/")) -> tuple[int, ...] | None:
    """Return the online CPU numbers in ``psutil.cpu_times(percpu=True)`` order; None when unknown."""
    return read_cpulist(sysfs_root / "sys/devices/system/cpu/online")


def busy_and_total_s(before: Sequence, after: Sequence) -> list[tuple[float, float]]:
    """Return per CPU (busy, total) seconds between two ``psutil.cpu_times(percpu=True)`` readings."""
    out = []
    for b, a in zip(before, after):
        deltas = {f: getattr(a, f) - getattr(b, f) for f in a._fields}
        total = sum(deltas.values()) - deltas.get("guest", 0.0) - deltas.get("guest_nice", 0.0)
        out.append((max(total - deltas["idle"] - deltas.get("iowait", 0.0), 0.0), max(total, 0.0)))
    return out


class ResourceMonitor:
    """Per-sample CPU utilization windows (when ``record_cpus``) and an RSS thread, for one worker.

    Args:
        interval_s: seconds between RSS samples while a sample runs.
        record_cpus: also record every CPU of the node (one worker per node does).
        cpu_ids: the CPU numbers of psutil's per-CPU list, in order (default: the online CPUs).
    """

    def __init__(self, interval_s: float = DEFAULT_INTERVAL_S, record_cpus: bool = False,
                 cpu_ids: Sequence[int] | None = None) -> None:
        self.interval_s = interval_s
        self.record_cpus = record_cpus
        self._process = psutil.Process()
        self._rows: dict[str, list] = {name: [] for name in RESOURCE_COLUMNS.names}
        self._row_rounds: list[int] = []  # each row's round (repetition): a missed round's rows are left out
        self._cpu_ids = tuple(cpu_ids) if cpu_ids is not None else online_cpus()
        self._windows: list[tuple[int, int, float, float]] = []  # (round, cpu, busy s, total s) per window
        self._round = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._before: tuple[int, list] | None = None

    @property
    def running(self) -> bool:
        """Whether a sample's window is open."""
        return self._thread is not None

    def start(self, repetition: int = 0) -> None:
        """Open the window of round ``repetition``'s sample: read the CPU times and start the RSS thread."""
        if self._thread is not None:
            return
        self._round = repetition
        if self.record_cpus:
            self._before = (time.time_ns(), psutil.cpu_times(percpu=True))
        self._stop.clear()
        self._rss()
        self._thread = threading.Thread(target=self._loop, name="topobench-rss", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Close the window: read the CPU times again and record each CPU's share busy over it."""
        if self._thread is None:
            return
        after = psutil.cpu_times(percpu=True) if self.record_cpus else None
        now = time.time_ns()
        self._stop.set()
        self._thread.join()
        self._thread = None
        self._rss()
        if self._before is not None and after is not None:
            since, before = self._before
            ids = self._cpu_ids if self._cpu_ids and len(self._cpu_ids) == len(after) else range(len(after))
            for cpu, (busy, total) in zip(ids, busy_and_total_s(before, after)):
                self._windows.append((self._round, cpu, busy, total))
                if total > 0:  # shorter than one clock tick: it still counts in the trial's means
                    self._row(now, since, "cpu_percent", cpu, 100.0 * busy / total)
            self._before = None

    def cpu_means(self, leave_out: Collection[int] = ()) -> dict[int, float]:
        """Return each CPU's busy share (0-100) over the windows so far, weighted by their length, but those of
        the rounds in ``leave_out`` (repetitions)."""
        busy: dict[int, float] = {}
        total: dict[int, float] = {}
        for repetition, cpu, b, t in self._windows:
            if repetition not in leave_out:
                busy[cpu], total[cpu] = busy.get(cpu, 0.0) + b, total.get(cpu, 0.0) + t
        return {cpu: 100.0 * busy[cpu] / t for cpu, t in total.items() if t > 0}

    def table(self, leave_out: Collection[int] = ()) -> pa.Table:
        """Return the rows recorded so far (``RESOURCE_COLUMNS``), but those of the rounds in ``leave_out``."""
        table = pa.table(self._rows, schema=RESOURCE_COLUMNS)
        if not leave_out:
            return table
        return table.filter(pa.array([r not in leave_out for r in self._row_rounds], pa.bool_()))

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._rss()

    def _rss(self) -> None:
        try:
            rss = self._process.memory_info().rss
        except psutil.Error:
            return
        now = time.time_ns()
        self._row(now, now, "rss_bytes", None, float(rss))

    def _row(self, t_ns: int, since_ns: int, kind: str, cpu: int | None, value: float) -> None:
        for name, v in zip(RESOURCE_COLUMNS.names, (t_ns, since_ns, kind, cpu, value)):
            self._rows[name].append(v)
        self._row_rounds.append(self._round)
