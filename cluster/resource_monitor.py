"""Sample CPU utilization and RSS in a background thread while a worker measures.

Per tick (every ``interval_s``) the monitor records this process's resident set size and,
when asked to, the utilization of every CPU of the node (``psutil.cpu_percent(percpu=True)``:
the share of the time since the previous tick each CPU was not idle, 0–100). One worker per
node records the node's CPUs so the rows are not duplicated. The thread only wakes once per
tick (microseconds of work), so it does not disturb the measured loop.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psutil
import pyarrow as pa

from cluster.sysfs import read_cpulist

DEFAULT_INTERVAL_S = 0.2
"""Seconds between two resource samples."""

RESOURCE_COLUMNS = pa.schema([
    ("t_ns", pa.int64()),  # wall clock, ns since the epoch, at the end of the sampled interval
    ("kind", pa.string()),  # cpu_percent | rss_bytes
    ("cpu", pa.int32()),  # the CPU of a cpu_percent row; null for rss_bytes
    ("value", pa.float64()),  # percent (0–100) or bytes
])


def online_cpus(sysfs_root: Path = Path("/")) -> tuple[int, ...] | None:
    """Return the online CPU numbers in ``psutil.cpu_percent(percpu=True)`` order; None when unknown."""
    return read_cpulist(sysfs_root / "sys/devices/system/cpu/online")


class ResourceMonitor:
    """A background thread sampling per-CPU utilization (optional) and this process's RSS.

    Args:
        interval_s: seconds between samples.
        record_cpus: also record every CPU of the node (one worker per node should).
    """

    def __init__(self, interval_s: float = DEFAULT_INTERVAL_S, record_cpus: bool = False) -> None:
        self.interval_s = interval_s
        self.record_cpus = record_cpus
        self._process = psutil.Process()
        self._rows: dict[str, list] = {name: [] for name in RESOURCE_COLUMNS.names}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._cpu_ids = online_cpus()
        self._last_ns = 0

    @property
    def running(self) -> bool:
        """Whether the sampling thread is running."""
        return self._thread is not None

    def start(self) -> None:
        """Prime the CPU counters, take a first RSS sample and start the sampling thread."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._sample(cpus=False)
        self._thread = threading.Thread(target=self._loop, name="topobench-resources", daemon=True)
        self._thread.start()

    def stop(self) -> pa.Table:
        """Stop the thread, take a last sample and return every row since ``start`` (``RESOURCE_COLUMNS``).

        The last CPU sample is skipped when under half an interval has passed since the
        previous one (too short to measure). Returns an empty table when never started.
        """
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
            # A last CPU sample over a sliver of time (under a clock tick) would read 0%.
            since_s = (time.time_ns() - self._last_ns) / 1e9
            self._sample(cpus=self.record_cpus and since_s >= self.interval_s / 2)
        table = pa.table(self._rows, schema=RESOURCE_COLUMNS)
        self._rows = {name: [] for name in RESOURCE_COLUMNS.names}
        return table

    def _loop(self) -> None:
        if self.record_cpus:
            # psutil 7 keeps the cpu_percent baseline per thread: prime it in this thread,
            # or the first reading is a meaningless 0%.
            psutil.cpu_percent(percpu=True)
        while not self._stop.wait(self.interval_s):
            self._sample(cpus=self.record_cpus)

    def _sample(self, cpus: bool) -> None:
        now = time.time_ns()
        self._last_ns = now
        rows = self._rows
        if cpus:
            percents = psutil.cpu_percent(percpu=True)
            ids = self._cpu_ids if self._cpu_ids and len(self._cpu_ids) == len(percents) else range(len(percents))
            for cpu, percent in zip(ids, percents):
                rows["t_ns"].append(now)
                rows["kind"].append("cpu_percent")
                rows["cpu"].append(cpu)
                rows["value"].append(float(percent))
        try:
            rss = self._process.memory_info().rss
        except psutil.Error:
            return
        rows["t_ns"].append(now)
        rows["kind"].append("rss_bytes")
        rows["cpu"].append(None)
        rows["value"].append(float(rss))
